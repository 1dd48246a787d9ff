//! Entropy, cross-entropy between two distributions, and KL divergence.
//!
//! Definitions: `torch.special.entr` (entr(p) = -p ln p, 0 at 0, -inf below 0),
//! `torch.special.xlogy` (x ln y, 0 where x = 0 unless y is NaN) and
//! `torch.nn.functional.kl_div` (input as log-probabilities; `log_target`;
//! reductions none, sum, mean over elements and batchmean over rows). Terms are
//! formed and summed in f64, then rounded once: these are short scalar loops.

use super::rows_of;
use crate::error::check_len;
use crate::{Error, Kernels};

/// How `kl_div` reduces its element losses (PyTorch's `reduction` for `kl_div`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KlReduction {
    /// Element losses go to the caller's slice; the call returns their sum.
    None,
    /// The sum of the element losses.
    Sum,
    /// The sum divided by the number of elements (PyTorch's default, which its docs
    /// warn is not the KL divergence of the rows).
    #[default]
    Mean,
    /// The sum divided by the number of rows: the mean KL divergence per sample.
    BatchMean,
}

/// -x ln x, as `torch.special.entr`.
#[inline(always)]
fn entr(x: f64) -> f64 {
    if x > 0.0 {
        -x * libm::log(x)
    } else if x == 0.0 {
        0.0
    } else if x < 0.0 {
        f64::NEG_INFINITY
    } else {
        x // NaN
    }
}

/// x ln y with 0 ln y = 0 (unless y is NaN), as `torch.special.xlogy`.
#[inline(always)]
fn xlogy(x: f64, y: f64) -> f64 {
    if y.is_nan() {
        y
    } else if x == 0.0 {
        0.0
    } else {
        x * libm::log(y)
    }
}

impl Kernels {
    /// The entropy `-sum p_i ln p_i` of one probability row, with 0 ln 0 = 0 (the sum
    /// of `torch.special.entr`): -inf if an element is negative, NaN if one is NaN.
    /// The row is not checked to sum to 1.
    pub fn entropy(&self, p: &[f32]) -> f32 {
        p.iter().map(|&v| entr(f64::from(v))).sum::<f64>() as f32
    }

    /// The cross-entropy `-sum p_i ln q_i` of distribution `q` relative to `p` (the
    /// sum of `-torch.special.xlogy(p, q)`): terms with p_i = 0 count 0 even where
    /// q_i = 0; +inf where q_i = 0 < p_i. `Err` if the lengths differ.
    pub fn distribution_cross_entropy(&self, p: &[f32], q: &[f32]) -> Result<f32, Error> {
        check_len("q", p.len(), q.len())?;
        let h: f64 = p
            .iter()
            .zip(q)
            .map(|(&p, &q)| -xlogy(f64::from(p), f64::from(q)))
            .sum();
        Ok(h as f32)
    }

    /// `torch.nn.functional.kl_div(input, target, reduction, log_target)` over a
    /// `[rows, cols]` matrix: `input` holds log-probabilities, `target` probabilities
    /// (or log-probabilities if `log_target`); element loss
    /// `target (ln target - input)` (0 where target = 0), or
    /// `exp(target) (target - input)` with `log_target`. Returns the reduced loss;
    /// `losses` receives the element losses (as long as `input` with
    /// [`KlReduction::None`], which returns their sum; else empty or that long).
    /// `Err` if `cols` is 0 or does not divide the length, or lengths disagree.
    pub fn kl_div(
        &self,
        input: &[f32],
        target: &[f32],
        cols: usize,
        log_target: bool,
        reduction: KlReduction,
        losses: &mut [f32],
    ) -> Result<f32, Error> {
        let rows = rows_of("input", input.len(), cols)?;
        check_len("target", input.len(), target.len())?;
        if reduction == KlReduction::None || !losses.is_empty() {
            check_len("losses", input.len(), losses.len())?;
        }
        let mut total = 0.0f64;
        for (i, (&a, &t)) in input.iter().zip(target).enumerate() {
            let (a, t) = (f64::from(a), f64::from(t));
            let l = if log_target {
                libm::exp(t) * (t - a)
            } else {
                xlogy(t, t) - t * a
            };
            if let Some(o) = losses.get_mut(i) {
                *o = l as f32;
            }
            total += l;
        }
        let d = match reduction {
            KlReduction::None | KlReduction::Sum => 1.0,
            KlReduction::Mean => input.len() as f64,
            KlReduction::BatchMean => rows as f64,
        };
        Ok((total / d) as f32)
    }
}

/// [`Kernels::entropy`] (the same code on every backend).
///
/// ```
/// let h = mlp_kernels::entropy(&[0.5, 0.5, 0.0]);
/// assert!((h - core::f32::consts::LN_2).abs() < 1e-7);
/// ```
pub fn entropy(p: &[f32]) -> f32 {
    Kernels::detect().entropy(p)
}

/// [`Kernels::distribution_cross_entropy`].
///
/// ```
/// let h = mlp_kernels::distribution_cross_entropy(&[1.0, 0.0], &[0.5, 0.0])?;
/// assert!((h - core::f32::consts::LN_2).abs() < 1e-7);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn distribution_cross_entropy(p: &[f32], q: &[f32]) -> Result<f32, Error> {
    Kernels::detect().distribution_cross_entropy(p, q)
}

/// [`Kernels::kl_div`].
///
/// ```
/// use mlp_kernels::{KlReduction, kl_div};
/// let ln_half = -core::f32::consts::LN_2;
/// // KL(p || q) with q = [0.5, 0.5] given as log-probabilities, p = [1, 0], two rows.
/// let input = [ln_half; 4];
/// let target = [1.0f32, 0.0, 1.0, 0.0];
/// let kl = kl_div(&input, &target, 2, false, KlReduction::BatchMean, &mut [])?;
/// assert!((kl - core::f32::consts::LN_2).abs() < 1e-7);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn kl_div(
    input: &[f32],
    target: &[f32],
    cols: usize,
    log_target: bool,
    reduction: KlReduction,
    losses: &mut [f32],
) -> Result<f32, Error> {
    Kernels::detect().kl_div(input, target, cols, log_target, reduction, losses)
}
