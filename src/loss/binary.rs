//! Binary cross-entropy on logits, with its gradient.
//!
//! Definition: `torch.nn.functional.binary_cross_entropy_with_logits` (PyTorch docs and
//! `aten/src/ATen/native/Loss.cpp`), in PyTorch's stable form
//!
//! ```text
//! loss = w ((1 - y) x - (1 + (p - 1) y) log sigmoid(x)),
//! log sigmoid(x) = min(x, 0) - log1p(exp(-|x|))
//! dloss/dx = w ((p y + 1 - y) sigmoid(x) - p y)
//! ```
//!
//! with p the positive-class weight (`pos_weight`). exp only ever sees -|x|, so
//! nothing overflows. Element-wise and scalar (libm): this is not a hot loop.

use super::Reduction;
use crate::error::check_len;
use crate::{Error, Kernels};

/// The options of `torch.nn.functional.binary_cross_entropy_with_logits`.
///
/// `weight` and `pos_weight` broadcast over the last axis as 1-D tensors do in
/// PyTorch: a slice of length k gives element i the factor `[i % k]`, so k = classes
/// is per class and k = the number of elements is per element. k must divide the
/// number of elements.
///
/// ```
/// use mlp_kernels::{BceWithLogits, Reduction};
/// let pw = [3.0f32, 1.0];
/// let opts = BceWithLogits::new().with_pos_weight(&pw).with_reduction(Reduction::Sum);
/// assert_eq!(opts.pos_weight, Some(&pw[..]));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BceWithLogits<'a> {
    /// A factor on each element's loss, broadcast over the last axis.
    pub weight: Option<&'a [f32]>,
    /// The weight of the positive term, broadcast over the last axis (per class).
    pub pos_weight: Option<&'a [f32]>,
    /// How the element losses are reduced; Mean divides by the number of elements.
    pub reduction: Reduction,
}

impl<'a> BceWithLogits<'a> {
    /// Mean reduction, no weights.
    pub const fn new() -> BceWithLogits<'a> {
        BceWithLogits {
            weight: None,
            pos_weight: None,
            reduction: Reduction::Mean,
        }
    }
    /// Sets the element weights.
    pub const fn with_weight(self, weight: &'a [f32]) -> BceWithLogits<'a> {
        BceWithLogits {
            weight: Some(weight),
            ..self
        }
    }
    /// Sets the positive-class weights.
    pub const fn with_pos_weight(self, pos_weight: &'a [f32]) -> BceWithLogits<'a> {
        BceWithLogits {
            pos_weight: Some(pos_weight),
            ..self
        }
    }
    /// Sets the reduction.
    pub const fn with_reduction(self, reduction: Reduction) -> BceWithLogits<'a> {
        BceWithLogits { reduction, ..self }
    }
}

/// `Err` unless a broadcast slice of length `k` fits `n` elements.
fn check_broadcast(what: &'static str, k: usize, n: usize) -> Result<(), Error> {
    // A length of 0 fits only 0 elements.
    let fits = n.is_multiple_of(k);
    if fits {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            what,
            expected: n,
            found: k,
        })
    }
}

/// The checks of both calls; returns the divisor of the reduction.
fn check(
    x: &[f32],
    y: &[f32],
    opts: &BceWithLogits,
    losses: usize,
    grad: Option<usize>,
) -> Result<f64, Error> {
    let n = x.len();
    check_len("targets", n, y.len())?;
    if let Some(w) = opts.weight {
        check_broadcast("weight", w.len(), n)?;
    }
    if let Some(p) = opts.pos_weight {
        check_broadcast("pos_weight", p.len(), n)?;
    }
    if opts.reduction == Reduction::None || losses != 0 {
        check_len("losses", n, losses)?;
    }
    if let Some(g) = grad {
        check_len("grad", n, g)?;
    }
    Ok(if opts.reduction == Reduction::Mean {
        n as f64
    } else {
        1.0
    })
}

/// `[i % len]` of a broadcast slice, or 1 without one.
#[inline(always)]
fn factor(w: Option<&[f32]>, i: usize) -> f32 {
    match w {
        Some(w) if !w.is_empty() => w[i % w.len()],
        _ => 1.0,
    }
}

/// log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)).
#[inline(always)]
fn log_sigmoid(x: f32) -> f32 {
    let lo = if x < 0.0 { x } else { 0.0 };
    lo - libm::log1pf(libm::expf(-libm::fabsf(x)))
}

/// sigmoid(x), from exp of a non-positive number on both sides.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

/// Both calls: the loss and, when `grad` is given, the gradient.
fn bce(
    x: &[f32],
    y: &[f32],
    opts: &BceWithLogits,
    divisor: f64,
    losses: &mut [f32],
    mut grad: Option<&mut [f32]>,
) -> f32 {
    let scale = (1.0 / divisor) as f32;
    let mut total = 0.0f64;
    for (i, (&x, &y)) in x.iter().zip(y).enumerate() {
        let w = factor(opts.weight, i);
        let (loss, g) = match opts.pos_weight {
            // PyTorch's two forms, kept apart so that the specials match it.
            Some(pw) => {
                let p = factor(Some(pw), i);
                let lw = (p - 1.0) * y + 1.0;
                let t = p * y;
                (
                    (1.0 - y) * x - lw * log_sigmoid(x),
                    (t + 1.0 - y) * sigmoid(x) - t,
                )
            }
            None => ((1.0 - y) * x - log_sigmoid(x), sigmoid(x) - y),
        };
        let loss = loss * w;
        if let Some(l) = losses.get_mut(i) {
            *l = loss;
        }
        if let Some(gi) = grad.as_deref_mut().and_then(|g| g.get_mut(i)) {
            *gi = g * w * scale;
        }
        total += f64::from(loss);
    }
    (total / divisor) as f32
}

impl Kernels {
    /// Binary cross-entropy of `targets` (in `[0, 1]`) given `logits`, element-wise,
    /// as `torch.nn.functional.binary_cross_entropy_with_logits`; returns the reduced
    /// loss. `losses` receives the element losses: as long as `logits` with
    /// [`Reduction::None`] (the call then returns their sum), else empty or that long.
    /// `Err` if the lengths disagree (see [`BceWithLogits`] for the broadcasts).
    ///
    /// Special values as PyTorch, whose form gives NaN for a logit of +inf with
    /// target 1 and for -inf with target 0 (0 times inf).
    pub fn binary_cross_entropy_with_logits(
        &self,
        logits: &[f32],
        targets: &[f32],
        opts: &BceWithLogits,
        losses: &mut [f32],
    ) -> Result<f32, Error> {
        let d = check(logits, targets, opts, losses.len(), None)?;
        Ok(bce(logits, targets, opts, d, losses, None))
    }

    /// [`Kernels::binary_cross_entropy_with_logits`] and its gradient into `grad` (as
    /// long as `logits`): `w ((p y + 1 - y) sigmoid(x) - p y)` times the reduction's
    /// scale (1, or 1 / n for Mean).
    pub fn binary_cross_entropy_with_logits_with_grad(
        &self,
        logits: &[f32],
        targets: &[f32],
        opts: &BceWithLogits,
        losses: &mut [f32],
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        let d = check(logits, targets, opts, losses.len(), Some(grad.len()))?;
        Ok(bce(logits, targets, opts, d, losses, Some(grad)))
    }
}

/// [`Kernels::binary_cross_entropy_with_logits`] on the best backend.
///
/// ```
/// use mlp_kernels::{BceWithLogits, binary_cross_entropy_with_logits};
/// let loss = binary_cross_entropy_with_logits(&[0.0, 200.0], &[1.0, 1.0], &BceWithLogits::new(), &mut [])?;
/// assert!((loss - core::f32::consts::LN_2 / 2.0).abs() < 1e-7); // no overflow at 200
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn binary_cross_entropy_with_logits(
    logits: &[f32],
    targets: &[f32],
    opts: &BceWithLogits,
    losses: &mut [f32],
) -> Result<f32, Error> {
    Kernels::detect().binary_cross_entropy_with_logits(logits, targets, opts, losses)
}

/// [`Kernels::binary_cross_entropy_with_logits_with_grad`] on the best backend.
///
/// ```
/// use mlp_kernels::{BceWithLogits, Reduction, binary_cross_entropy_with_logits_with_grad};
/// let opts = BceWithLogits::new().with_pos_weight(&[2.0]).with_reduction(Reduction::Sum);
/// let mut g = [0.0f32; 2];
/// binary_cross_entropy_with_logits_with_grad(&[0.0, 0.0], &[1.0, 0.0], &opts, &mut [], &mut g)?;
/// assert_eq!(g, [-1.0, 0.5]); // (2 + 0) / 2 - 2 and 1 / 2
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn binary_cross_entropy_with_logits_with_grad(
    logits: &[f32],
    targets: &[f32],
    opts: &BceWithLogits,
    losses: &mut [f32],
    grad: &mut [f32],
) -> Result<f32, Error> {
    Kernels::detect()
        .binary_cross_entropy_with_logits_with_grad(logits, targets, opts, losses, grad)
}
