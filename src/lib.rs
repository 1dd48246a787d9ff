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
//! | log-sum-exp, softmax, log-softmax per row | [`logsumexp`], [`softmax`], [`log_softmax`] |
//! | cross-entropy with its gradient in one pass, nll, BCE, entropy, KL | [`Kernels::cross_entropy_with_grad`], [`nll_loss`], [`binary_cross_entropy_with_logits`], [`entropy`], [`kl_div`] |
//! | ReLU and its gradient | [`relu`], [`relu_backward`] |
//! | an SGD step with PyTorch's rule | [`Sgd`], [`sgd_step`] |
//! | Kaiming and Xavier initialisers | [`init`] |
//! | e^x within 2 ulp, exact specials | [`exp`] |
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
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod activation;
mod error;
mod exp;
mod gemm;
pub mod init;
mod nn;
mod optim;
mod simd;

pub use activation::{relu, relu_backward, relu_backward_in_place, relu_in_place};
pub use error::Error;
pub use exp::{exp, exp_in_place};
#[cfg(feature = "std")]
pub use gemm::prepare_threads;
pub use gemm::{MatMut, MatRef, gemm, gemm_workspace_len};
pub use nn::{Linear, LinearGrads};
pub use optim::{Sgd, sgd_step};
pub use simd::Backend;

mod loss;
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
