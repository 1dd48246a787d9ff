//! Fuzzes the fused cross-entropy: any shape, options and target bytes.
//!
//! Input: four header bytes (backend, reduction (one of them Mean with subnormal
//! weights), target kind, weight, ignore index; classes; label smoothing, sometimes
//! invalid; rows and a wrong-length switch), then
//! the weights, the targets and the logits (little-endian f32, zero-filled when the
//! input runs out). Asserts: no panic on any input; errors only as `Err`; the forward
//! and fused losses agree bit for bit (NaN payloads aside); and for logits within
//! +-1e36 with a defined mean: loss >= 0, a finite gradient whose rows each sum to 0
//! within 2 (classes + 8) eps times the row's scaled target sum, and ignored rows
//! exactly 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlp_kernels::{Backend, CrossEntropy, Kernels, Reduction, Target};

const EPS: f64 = f32::EPSILON as f64;

/// Reads bytes in order, 0 once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let (h, c, e, r) = (b.byte(), b.byte(), b.byte(), b.byte());
    let backends: Vec<Backend> = Backend::supported().collect();
    let Ok(k) = Kernels::new(backends[usize::from(h & 3) % backends.len()]) else {
        return;
    };
    let reduction = [
        Reduction::None,
        Reduction::Sum,
        Reduction::Mean,
        Reduction::Mean,
    ][usize::from(h >> 2 & 3)];
    let soft = h & 16 != 0;
    let weighted = h & 32 != 0;
    let ignore = [None, Some(-100), Some(0), Some(3)][usize::from(h >> 6)];
    let classes = if c == 255 { 0 } else { 1 + usize::from(c) % 40 };
    let eps = match e {
        0..=200 => f32::from(e) / 200.0,
        251 => f32::NAN,
        252 => -0.1,
        253 => 1.5,
        254 => 1.0,
        _ => 0.0,
    };
    let rows = usize::from(r) % 9;
    let wrong = r >= 128;

    // The second Mean has subnormal weights (exact multiples of 2^-149), which the
    // crate scales into range: its gradient must stay finite all the same.
    let w_scale = if h >> 2 & 3 == 3 {
        2f32.powi(-140)
    } else {
        1.0
    };
    let w: Vec<f32> = (0..classes)
        .map(|_| f32::from(b.byte()) / 64.0 * w_scale)
        .collect();
    let idx: Vec<i64> = (0..rows)
        .map(|_| match b.byte() {
            250.. => -100,
            v => i64::from(v) % (classes as i64 + 2) - 1,
        })
        .collect();
    let q: Vec<f32> = (0..rows * classes)
        .map(|_| f32::from(b.byte()) / 255.0)
        .collect();
    let n = rows * classes;
    let mut x: Vec<f32> = (0..n).map(|_| b.f32()).collect();
    if wrong {
        x.pop();
    }

    let mut opts = CrossEntropy::new()
        .with_label_smoothing(eps)
        .with_reduction(reduction);
    if weighted {
        opts = opts.with_weight(&w);
    }
    // An ignore index with probability targets is refused (as PyTorch does); keep the
    // soft cases running.
    if let Some(i) = ignore.filter(|_| !soft) {
        opts = opts.with_ignore_index(i);
    }
    let target = if soft {
        Target::Probabilities(&q)
    } else {
        Target::Indices(&idx)
    };
    let nl = if reduction == Reduction::None || h & 8 != 0 {
        rows
    } else {
        0
    };
    let mut losses = vec![0.0f32; nl];
    let mut grad = vec![f32::NAN; x.len()];
    let fused = k.cross_entropy_with_grad(&x, classes, target, &opts, &mut losses, &mut grad);
    let fwd = k.cross_entropy(&x, classes, target, &opts, &mut vec![0.0; nl]);
    let (loss, fwd) = match (fused, fwd) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            return;
        }
        (a, b) => panic!("fused {a:?} but forward {b:?}"),
    };
    // Bit for bit, NaN payloads aside.
    let same = loss.to_bits() == fwd.to_bits() || (loss.is_nan() && fwd.is_nan());
    assert!(same, "fused {loss} vs forward {fwd}");

    // The invariants, where no difference of logits can overflow.
    if !x.iter().all(|v| v.abs() <= 1e36) {
        return;
    }
    let wc = |j: usize| if weighted { f64::from(w[j]) } else { 1.0 };
    let eps = f64::from(eps);
    let keep = |r: usize| !soft && Some(idx[r]) == ignore;
    let divisor = match (reduction, soft) {
        (Reduction::Mean, true) => rows as f64,
        (Reduction::Mean, false) => (0..rows)
            .filter(|&r| !keep(r))
            .map(|r| wc(idx[r] as usize))
            .sum(),
        _ => 1.0,
    };
    if divisor == 0.0 {
        return;
    }
    assert!(loss >= 0.0, "loss {loss}");
    let scale = 1.0 / divisor;
    for (r, g) in grad.chunks_exact(classes).enumerate() {
        if keep(r) {
            assert!(g.iter().all(|&v| v == 0.0), "ignored row {r}: {g:?}");
            continue;
        }
        // The row's target sum T; each gradient row is p T - t, scaled.
        let t: f64 = if soft {
            (0..classes)
                .map(|j| {
                    wc(j) * ((1.0 - eps) * f64::from(q[r * classes + j]) + eps / classes as f64)
                })
                .sum()
        } else {
            let ws: f64 = (0..classes).map(wc).sum();
            (1.0 - eps) * wc(idx[r] as usize) + eps / classes as f64 * ws
        };
        assert!(g.iter().all(|v| v.is_finite()), "row {r}: {g:?}");
        let sum: f64 = g.iter().map(|&v| f64::from(v)).sum();
        let tol = 2.0 * (classes as f64 + 8.0) * EPS * scale * t + 1e-37;
        assert!(
            sum.abs() <= tol,
            "row {r} sums to {sum:e} (tol {tol:e}): {g:?}"
        );
    }
});
