//! Stochastic gradient descent with PyTorch's exact rule.
//!
//! Source: the algorithm box of `torch.optim.SGD` and its `_single_tensor_sgd`. With
//! g the gradient (negated when maximizing), for every element:
//!
//! ```text
//! g = g + weight_decay * p                       if weight_decay != 0
//! b = g                                          on the first step, else
//! b = momentum * b + (1 - dampening) * g         if momentum != 0
//! g = g + momentum * b  (nesterov)  or  g = b    if momentum != 0
//! p = p - lr * g
//! ```
//!
//! in its operation order: every `x + alpha * y` is one fused multiply-add on the FMA
//! backends, as ATen's vectorised `add(self, other, alpha)` computes it
//! (`vec::fmadd(other, alpha, self)`), and `momentum * b` is rounded before the
//! dampened gradient is added, as `buf.mul_(momentum).add_(grad, alpha=1 - dampening)`
//! does. So the AVX2 and AVX-512 backends give torch.optim.SGD's bits.

use crate::error::check_len;
use crate::gemm::GemmKernel;
use crate::simd::{Simd, WithSimd};
use crate::{Error, Kernels};

/// The hyper-parameters of `torch.optim.SGD`, with its defaults (all 0 or false but
/// `lr`). Built with [`Sgd::new`] and the `with_*` methods; checked by every step.
///
/// ```
/// use mlp_kernels::Sgd;
/// let opt = Sgd::new(0.01).with_momentum(0.9).with_nesterov(true);
/// assert!(opt.validate().is_ok());
/// assert!(Sgd::new(0.01).with_nesterov(true).validate().is_err()); // no momentum
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate, >= 0.
    pub lr: f32,
    /// Momentum factor, >= 0.
    pub momentum: f32,
    /// Dampening of the momentum.
    pub dampening: f32,
    /// L2 penalty, >= 0.
    pub weight_decay: f32,
    /// Nesterov momentum; needs momentum > 0 and dampening 0.
    pub nesterov: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> Sgd {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
    /// Sets the momentum factor.
    pub fn with_momentum(self, momentum: f32) -> Sgd {
        Sgd { momentum, ..self }
    }
    /// Sets the dampening.
    pub fn with_dampening(self, dampening: f32) -> Sgd {
        Sgd { dampening, ..self }
    }
    /// Sets the weight decay (L2 penalty).
    pub fn with_weight_decay(self, weight_decay: f32) -> Sgd {
        Sgd {
            weight_decay,
            ..self
        }
    }
    /// Turns Nesterov momentum on or off.
    pub fn with_nesterov(self, nesterov: bool) -> Sgd {
        Sgd { nesterov, ..self }
    }
    /// Maximizes instead of minimizing.
    pub fn with_maximize(self, maximize: bool) -> Sgd {
        Sgd { maximize, ..self }
    }

    /// The checks of `torch.optim.SGD.__init__`, and every non-finite value refused
    /// (PyTorch takes `lr=inf` and trains to NaN; here it is an error up front).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |name, reason| Err(Error::InvalidParameter { name, reason });
        for (name, x) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
        ] {
            if !x.is_finite() || x < 0.0 {
                return bad(name, "must be finite and >= 0");
            }
        }
        if !self.dampening.is_finite() {
            return bad("dampening", "must be finite");
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return bad("nesterov", "needs momentum > 0 and dampening = 0");
        }
        Ok(())
    }
}

impl Kernels {
    /// One SGD step on one parameter tensor, in place.
    ///
    /// `momentum_buffer` must be as long as `param` when `opt.momentum != 0` (it may be
    /// empty otherwise); it is the caller's state between steps. `first_step` says
    /// that the buffer holds nothing yet: PyTorch then sets it to the gradient instead
    /// of blending. `Err` on bad hyper-parameters or lengths, before anything is written.
    pub fn sgd_step(
        &self,
        opt: &Sgd,
        param: &mut [f32],
        grad: &[f32],
        momentum_buffer: &mut [f32],
        first_step: bool,
    ) -> Result<(), Error> {
        opt.validate()?;
        check_len("grad", param.len(), grad.len())?;
        if opt.momentum != 0.0 {
            check_len("momentum_buffer", param.len(), momentum_buffer.len())?;
        }
        self.isa.vectorize(SgdStep {
            opt,
            param,
            grad,
            momentum_buffer,
            first_step,
        });
        Ok(())
    }
}

struct SgdStep<'a> {
    opt: &'a Sgd,
    param: &'a mut [f32],
    grad: &'a [f32],
    momentum_buffer: &'a mut [f32],
    first_step: bool,
}

impl WithSimd for SgdStep<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, s: S) {
        sgd_kernel(
            s,
            self.opt,
            self.param,
            self.grad,
            self.momentum_buffer,
            self.first_step,
        )
    }
}

#[inline(always)]
fn sgd_kernel<S: Simd>(s: S, opt: &Sgd, p: &mut [f32], g: &[f32], b: &mut [f32], first: bool) {
    let momentum = opt.momentum != 0.0;
    // `Kernels::sgd_step` checked the lengths; the loop zips the slices, so that no
    // index can leave them.
    debug_assert!(g.len() == p.len() && (!momentum || b.len() == p.len()));
    let b = if momentum { b } else { &mut [] };
    let lanes = S::LANES;
    let sign = if opt.maximize { -1.0 } else { 1.0 };
    let (wd, mu, damp, neg_lr) = (
        s.splat(opt.weight_decay),
        s.splat(opt.momentum),
        s.splat(1.0 - opt.dampening),
        s.splat(-opt.lr),
    );
    // Empty unless momentum is on, when it is as long as `p`.
    let mut buffers = b.chunks_mut(lanes);
    for (ps, gs) in p.chunks_mut(lanes).zip(g.chunks(lanes)) {
        let full = ps.len() == lanes;
        let ld = |x: &[f32]| {
            if full {
                s.load(x)
            } else {
                s.load_partial(x, 0.0)
            }
        };
        let pv = ld(ps);
        let mut gv = s.mul(ld(gs), s.splat(sign));
        if opt.weight_decay != 0.0 {
            gv = s.fma(wd, pv, gv);
        }
        if let Some(bs) = buffers.next() {
            // torch: buf.mul_(momentum).add_(grad, alpha=1 - dampening); ATen's
            // vectorised add is fmadd(grad, alpha, buf), after the rounded product.
            let bv = if first {
                gv
            } else {
                s.fma(damp, gv, s.mul(mu, ld(bs)))
            };
            if full {
                s.store(bs, bv)
            } else {
                s.store_partial(bs, bv)
            }
            gv = if opt.nesterov { s.fma(mu, bv, gv) } else { bv };
        }
        let pv = s.fma(neg_lr, gv, pv);
        if full {
            s.store(ps, pv)
        } else {
            s.store_partial(ps, pv)
        }
    }
}

/// [`Kernels::sgd_step`] on the best backend.
///
/// ```
/// use mlp_kernels::{Sgd, sgd_step};
/// let mut w = [1.0f32, 2.0];
/// sgd_step(&Sgd::new(0.5), &mut w, &[2.0, -2.0], &mut [], true)?;
/// assert_eq!(w, [0.0, 3.0]);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn sgd_step(
    opt: &Sgd,
    param: &mut [f32],
    grad: &[f32],
    momentum_buffer: &mut [f32],
    first_step: bool,
) -> Result<(), Error> {
    Kernels::detect().sgd_step(opt, param, grad, momentum_buffer, first_step)
}
