//! The loss of rows whose target vector holds an infinite class weight.
//!
//! The fused kernel writes a row's loss as T log s + sum_c t_c (m - x_c) (see
//! `cross_entropy.rs`), which turns an infinite t_c at the row's maximum into
//! inf * 0 = NaN. PyTorch multiplies each t_c by -log p_c instead (`-(log_softmax(x) *
//! target * weight).sum()`), which is +inf unless a zero meets the infinity. With label
//! smoothing or probability targets every class's weight enters the loss, so a call
//! with an infinite weight takes this path for its losses (its gradient, softmax T - t,
//! already has PyTorch's inf/NaN pattern). It runs once per row in f64: infinite
//! weights are a corner, not a workload.

use super::cross_entropy::{CrossEntropy, Target};
use super::fused::Sums;
use crate::checked::part;

/// Whether the call must take this path: an infinite weight that reaches every row's
/// loss (with label smoothing, or probability targets).
pub(super) fn applies(target: Target, opts: &CrossEntropy) -> bool {
    let smoothing = opts.label_smoothing != 0.0 || matches!(target, Target::Probabilities(_));
    smoothing
        && opts
            .weight
            .is_some_and(|w| w.iter().any(|w| w.is_infinite()))
}

/// The sums of the row losses in PyTorch's per-class products, each row's loss into
/// `losses` (when it is `rows` long). The call was checked by `plan`.
pub(super) fn sums(
    logits: &[f32],
    classes: usize,
    target: Target,
    opts: &CrossEntropy,
    losses: &mut [f32],
) -> Sums {
    let e = f64::from(opts.label_smoothing);
    let share = e / classes as f64;
    let w = |c: usize| {
        opts.weight
            .and_then(|w| w.get(c))
            .map_or(1.0, |&w| f64::from(w))
    };
    let mut total = Sums::default();
    // (`classes` > 0 was checked; `max` shows the compiler so.)
    for (r, x) in logits.chunks_exact(classes.max(1)).enumerate() {
        // -log p_c = (m - x_c) + log s, as log_softmax forms it: a rounded f32
        // log-sum-exp minus x_c would give an exact 0 (and inf * 0 = NaN) for a class
        // whose probability is just below 1.
        let m = x
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let log_s = libm::log(x.iter().map(|&v| libm::exp(f64::from(v) - m)).sum::<f64>());
        // Every class asked for is below `classes` (`plan` checked the indices).
        let nlp = |c: usize| (m - x.get(c).map_or(f64::NAN, |&v| f64::from(v))) + log_s;
        let loss = match target {
            Target::Indices(y) => {
                let Some(&yr) = y.get(r) else { break };
                if Some(yr) == opts.ignore_index {
                    0.0
                } else {
                    let yc = usize::try_from(yr).unwrap_or(0);
                    let nll = w(yc) * nlp(yc);
                    let smooth: f64 = (0..classes).map(|c| w(c) * nlp(c)).sum();
                    total.nll += nll;
                    total.rest += share * smooth;
                    (1.0 - e) * nll + share * smooth
                }
            }
            Target::Probabilities(q) => {
                let row = part(q, r * classes..(r + 1) * classes);
                let loss: f64 = row
                    .iter()
                    .enumerate()
                    .map(|(c, &qc)| nlp(c) * ((1.0 - e) * f64::from(qc) + share) * w(c))
                    .sum();
                total.rest += loss;
                loss
            }
        };
        if let Some(l) = losses.get_mut(r) {
            *l = loss as f32;
        }
        total.rows += loss;
    }
    total
}
