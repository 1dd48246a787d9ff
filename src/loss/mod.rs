//! Losses over logits and probabilities, with PyTorch's definitions and special values.
//!
//! * [`logsumexp`], [`softmax`], [`log_softmax`]: per row, through the stable shifted
//!   form, log(sum exp(x)) = m + log(sum exp(x - m)) with m the row's maximum.
//! * [`cross_entropy`] as `torch.nn.functional.cross_entropy` (class indices or
//!   probabilities, class weights, ignore index, label smoothing, every reduction),
//!   [`cross_entropy_with_grad`] with d(loss)/d(logits) = softmax(x) T - t written in
//!   the same pass over the logits, and [`nll_loss`] on log-probabilities.
//! * [`binary_cross_entropy_with_logits`] and its gradient.
//! * [`entropy`], [`distribution_cross_entropy`], [`kl_div`] between distributions.
//!
//! Matrices are row-major `[rows, cols]` slices; a row is one sample. Special values
//! follow PyTorch's float32 results: a row holding +inf or NaN gives NaN where
//! PyTorch does, an all -inf row's log-sum-exp is -inf.
//!
//! ```
//! use mlp_kernels::loss::{CrossEntropy, Reduction, Target, cross_entropy_with_grad};
//! // Two samples, three classes; the second sample's label is ignored.
//! let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 0.3];
//! let opts = CrossEntropy::new().with_ignore_index(-100).with_reduction(Reduction::Sum);
//! let mut grad = [0.0f32; 6];
//! let loss = cross_entropy_with_grad(&logits, 3, Target::Indices(&[0, -100]), &opts, &mut [], &mut grad)?;
//! assert!((loss - 0.241_311).abs() < 1e-5);
//! assert_eq!(grad[3..], [0.0; 3]);
//! # Ok::<(), mlp_kernels::Error>(())
//! ```

mod binary;
mod cross_entropy;
mod divergence;
mod fused;
mod infinite_weights;
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
