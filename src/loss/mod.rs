//! Losses over logits and probabilities, with PyTorch's definitions and special values.
//!
//! * `softmax.rs`: log-sum-exp, softmax and log-softmax per row.
//! * `cross_entropy.rs`: `torch.nn.functional.cross_entropy` (class indices or
//!   probabilities, weight, ignore index, label smoothing, reductions), its fused
//!   gradient, and `nll_loss` on log-probabilities; `fused.rs` holds the kernel.
//! * `binary.rs`: `binary_cross_entropy_with_logits` and its gradient.
//! * `divergence.rs`: entropy, cross-entropy between distributions, `kl_div`.
//!
//! Matrices are row-major `[rows, cols]` slices; a row is one sample.

mod binary;
mod cross_entropy;
mod divergence;
mod fused;
mod softmax;

pub use binary::{
    BceWithLogits, binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_with_grad,
};
pub use cross_entropy::{
    CrossEntropy, Reduction, Target, cross_entropy, cross_entropy_with_grad, nll_loss,
};
pub use divergence::{KlReduction, distribution_cross_entropy, entropy, kl_div};
pub use softmax::{
    log_softmax, log_softmax_in_place, logsumexp, logsumexp_rows, softmax, softmax_in_place,
};

use crate::Error;

/// The number of rows of a `[rows, cols]` matrix stored in `len` floats: `Err` when
/// `cols` is 0 or does not divide `len`.
fn rows_of(what: &'static str, len: usize, cols: usize) -> Result<usize, Error> {
    if cols == 0 {
        return Err(Error::InvalidParameter {
            name: "cols",
            reason: "must be > 0",
        });
    }
    let rows = len / cols;
    if rows * cols != len {
        // The nearest whole number of rows below what was given.
        return Err(Error::ShapeMismatch {
            what,
            expected: rows * cols,
            found: len,
        });
    }
    Ok(rows)
}
