//! Kernels to train and run small multilayer perceptrons with no operating system, no
//! allocator and no framework: the world of one PyTorch lesson (a 784-200-200-10 MLP,
//! ReLU, softmax cross-entropy through a stable log-sum-exp, SGD, Kaiming init),
//! rebuilt on slices that the caller owns.
//!
//! * `#![no_std]` unless the `std` feature is on; nothing here allocates.
//! * SIMD through a portable backend on `wide` and hand-written AVX2+FMA and AVX-512
//!   backends, chosen at run time from `cpuid` (see [`Backend`]).
//! * PyTorch's semantics: the same update rule as `torch.optim.SGD`, the same fan and
//!   gain definitions as `torch.nn.init`, the same masking as `threshold_backward`.
//!
//! | what | where |
//! | --- | --- |
//! | C = alpha op(A) op(B) + beta C, strided views, caller workspace | [`Kernels::gemm`], [`MatRef`], [`gemm_workspace_len`] |
//! | the same on threads (`std`) | [`Kernels::gemm_threaded`], [`prepare_threads`] |
//! | a linear layer in PyTorch's layout, forward and backward | [`Linear`] |
//! | sparse (CSR) times dense, and a layer on sparse raw inputs under an affine normalisation | [`CsrRef`], [`Kernels::sparse_gemm`], [`Kernels::sparse_t_gemm`], [`SparseLinear`] |
//! | log-sum-exp, softmax, log-softmax per row | [`logsumexp`], [`softmax`], [`log_softmax`] |
//! | cross-entropy with its gradient in one pass, nll, BCE, entropy, KL | [`Kernels::cross_entropy_with_grad`], [`nll_loss`], [`binary_cross_entropy_with_logits`], [`entropy`], [`kl_div`] |
//! | ReLU and its gradient | [`relu`], [`relu_backward`] |
//! | an SGD step with PyTorch's rule | [`Sgd`], [`sgd_step`] |
//! | Kaiming and Xavier initialisers | [`init`] |
//! | e^x within 1 ulp (measured over all 2^32 inputs), exact specials | [`exp`] |
//!
//! Every free function runs on the best backend of the CPU. To choose one (to compare
//! them, or to pin results bit for bit), make a [`Kernels`] value:
//!
//! ```
//! use mlp_kernels::{Backend, Kernels};
//!
//! let k = Kernels::new(Backend::Portable)?; // Err if the CPU lacks it
//! let mut x = [-1.0f32, 0.5, 2.0];
//! k.relu_in_place(&mut x);
//! assert_eq!(x, [0.0, 0.5, 2.0]);
//! # Ok::<(), mlp_kernels::Error>(())
//! ```
//!
//! Conventions: matrices are row-major `[rows, cols]` slices, one sample a row;
//! weights are in PyTorch's layout (`[out, in]`, see [`nn`]); scratch space is a slice
//! you pass, sized by a `*_workspace_len` function; every shape error is an [`Error`],
//! checked before anything is written.
//!
//! No panic: in an optimised `no_std` build, no input reaches a panic from the
//! kernels. CI proves it at link time (`scripts/no-panic.sh`): a consumer that calls
//! every kernel on opaque inputs is linked with a panic handler that does not exist,
//! for x86_64 and two Cortex-M targets. Internal invariants are `debug_assert!`s, so
//! tests and fuzzing still stop on a broken one.
//!
//! # A whole training loop
//!
//! A 2-16-3 MLP learns which of three corners a noisy point lies next to: forward,
//! the fused loss and its gradient, backward, SGD with momentum. Every buffer is made
//! once before the loop; the loop allocates nothing (the `vec!`s could as well be
//! arrays or `static`s, as in the crate's firmware example).
//!
//! ```
//! use mlp_kernels::init::{FanMode, Nonlinearity, kaiming_uniform};
//! use mlp_kernels::rand_core::Rng;
//! use mlp_kernels::{CrossEntropy, Kernels, Linear, LinearGrads, Sgd, Target};
//! use rand::SeedableRng;
//!
//! const IN: usize = 2;
//! const HIDDEN: usize = 16;
//! const OUT: usize = 3;
//! const BATCH: usize = 30;
//! let k = Kernels::detect();
//! let (l1, l2) = (Linear::new(IN, HIDDEN), Linear::new(HIDDEN, OUT));
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//!
//! // Parameters in PyTorch's layout, their gradients and momentum buffers.
//! let (mut w1, mut b1) = (vec![0.0f32; HIDDEN * IN], vec![0.0f32; HIDDEN]);
//! let (mut w2, mut b2) = (vec![0.0f32; OUT * HIDDEN], vec![0.0f32; OUT]);
//! kaiming_uniform(&mut w1, [HIDDEN, IN], FanMode::FanIn, Nonlinearity::Relu, &mut rng)?;
//! kaiming_uniform(&mut w2, [OUT, HIDDEN], FanMode::FanIn, Nonlinearity::Relu, &mut rng)?;
//! let (mut gw1, mut gb1, mut gw2, mut gb2) = (w1.clone(), b1.clone(), w2.clone(), b2.clone());
//! let (mut mw1, mut mb1, mut mw2, mut mb2) = (w1.clone(), b1.clone(), w2.clone(), b2.clone());
//!
//! // The batch: points around (0, 0), (3, 0) and (0, 3), labelled 0, 1, 2.
//! let mut x = vec![0.0f32; BATCH * IN];
//! let mut y = vec![0i64; BATCH];
//! for (r, (xr, yr)) in x.chunks_exact_mut(IN).zip(&mut y).enumerate() {
//!     let class = r % OUT;
//!     let jitter = |rng: &mut rand::rngs::StdRng| rng.next_u32() as f32 / u32::MAX as f32 - 0.5;
//!     xr[0] = if class == 1 { 3.0 } else { 0.0 } + jitter(&mut rng);
//!     xr[1] = if class == 2 { 3.0 } else { 0.0 } + jitter(&mut rng);
//!     *yr = class as i64;
//! }
//!
//! // Activations, their gradients and the products' scratch space.
//! let (mut h, mut dh) = (vec![0.0f32; BATCH * HIDDEN], vec![0.0f32; BATCH * HIDDEN]);
//! let (mut logits, mut dlogits) = (vec![0.0f32; BATCH * OUT], vec![0.0f32; BATCH * OUT]);
//! let mut ws = vec![0.0f32; l1.workspace_len(BATCH).max(l2.workspace_len(BATCH))];
//!
//! let opt = Sgd::new(0.1).with_momentum(0.9);
//! let mut losses = Vec::with_capacity(100);
//! for step in 0..100 {
//!     // Forward: h = relu(x W1^T + b1), logits = h W2^T + b2.
//!     l1.forward(&k, &x, &w1, Some(&b1), &mut h, &mut ws)?;
//!     k.relu_in_place(&mut h);
//!     l2.forward(&k, &h, &w2, Some(&b2), &mut logits, &mut ws)?;
//!     // The mean cross-entropy and d(loss)/d(logits), in one pass.
//!     let ce = CrossEntropy::new();
//!     let loss = k.cross_entropy_with_grad(&logits, OUT, Target::Indices(&y), &ce, &mut [], &mut dlogits)?;
//!     losses.push(loss);
//!     // Backward: dW2, db2 and dh; through the ReLU; dW1, db1 (no dx needed).
//!     let g2 = LinearGrads { weight: &mut gw2, bias: Some(&mut gb2), input: Some(&mut dh), accumulate: false };
//!     l2.backward(&k, &h, &w2, &dlogits, g2, &mut ws)?;
//!     k.relu_backward_in_place(&h, &mut dh)?;
//!     let g1 = LinearGrads { weight: &mut gw1, bias: Some(&mut gb1), input: None, accumulate: false };
//!     l1.backward(&k, &x, &w1, &dh, g1, &mut ws)?;
//!     // The update, as torch.optim.SGD(lr=0.1, momentum=0.9).step().
//!     let first = step == 0; // the momentum buffers hold nothing yet
//!     k.sgd_step(&opt, &mut w1, &gw1, &mut mw1, first)?;
//!     k.sgd_step(&opt, &mut b1, &gb1, &mut mb1, first)?;
//!     k.sgd_step(&opt, &mut w2, &gw2, &mut mw2, first)?;
//!     k.sgd_step(&opt, &mut b2, &gb2, &mut mb2, first)?;
//! }
//! assert!(losses[99] < 0.05 * losses[0], "{} -> {}", losses[0], losses[99]);
//! # Ok::<(), mlp_kernels::Error>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod activation;
mod checked;
mod error;
mod exp;
pub mod gemm;
pub mod init;
pub mod nn;
mod optim;
#[cfg(feature = "std")]
mod parallel;
mod simd;
pub mod sparse;

/// The `rand_core` whose `Rng` the [`init`] functions take (0.10).
pub use rand_core;

pub use activation::{relu, relu_backward, relu_backward_in_place, relu_in_place};
pub use error::Error;
pub use exp::{exp, exp_in_place};
pub use gemm::{Caches, MatMut, MatRef, gemm, gemm_workspace_len};
#[cfg(feature = "std")]
pub use gemm::{gemm_threaded_workspace_len, prepare_threads};
pub use nn::{Linear, LinearGrads, SparseLinear};
pub use optim::{Sgd, sgd_step};
#[cfg(feature = "std")]
pub use parallel::run_on_threads;
pub use simd::Backend;
pub use sparse::{
    CsrRef, SPARSE_BREAK_EVEN_DENSITY, SPARSE_BREAK_EVEN_DENSITY_INTEL_AVX512,
    SPARSE_T_BREAK_EVEN_DENSITY, SPARSE_T_BREAK_EVEN_DENSITY_INTEL_AVX512,
    sparse_gemm_workspace_len,
};

pub mod loss;
pub use loss::{
    BceWithLogits, CrossEntropy, KlReduction, Reduction, Target, binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_with_grad, cross_entropy, cross_entropy_with_grad,
    distribution_cross_entropy, entropy, kl_div, log_softmax, log_softmax_in_place, logsumexp,
    logsumexp_rows, nll_loss, softmax, softmax_in_place,
};

/// The kernels bound to one backend that this CPU supports.
///
/// Made by [`Kernels::new`] (checked) or [`Kernels::detect`] (the best). It is a plain
/// `Copy` value, so threads can each use their own backend at the same time. Holding
/// one is the proof that the CPU runs its backend: no other road leads to the
/// AVX2/AVX-512 code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernels {
    isa: simd::Isa,
}

impl Kernels {
    /// Kernels on `backend`, or [`Error::UnsupportedBackend`] if the CPU lacks it.
    pub fn new(backend: Backend) -> Result<Kernels, Error> {
        match simd::Isa::new(backend) {
            Some(isa) => Ok(Kernels { isa }),
            None => Err(Error::UnsupportedBackend(backend)),
        }
    }

    /// Kernels on the best backend of this CPU ([`Backend::detect`]).
    pub fn detect() -> Kernels {
        Kernels {
            isa: simd::Isa::best(),
        }
    }

    /// The backend these kernels run on.
    pub fn backend(&self) -> Backend {
        self.isa.backend()
    }
}

impl Default for Kernels {
    fn default() -> Kernels {
        Kernels::detect()
    }
}
