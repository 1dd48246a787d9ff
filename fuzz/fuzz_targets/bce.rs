//! Fuzzes binary cross-entropy with logits and its gradient.
//!
//! Input: a header byte (backend, reduction, weight, pos_weight broadcast lengths),
//! then logits, targets, weights and positive weights as little-endian f32 (four
//! equal parts). Asserts: no panic; a weight length that does not divide the element
//! count is `Err` with nothing written; the fused call returns the forward's bits;
//! where logits are finite, |x| <= 80, targets in [0, 1] and weights in [0, 100], every
//! element loss and gradient is within a few eps of an f64 reference of PyTorch's
//! formula.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlp_kernels::{BceWithLogits, Reduction};
use mlp_kernels_fuzz::{floats, kernels};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let k = kernels(head);
    let v = floats(rest);
    let n = v.len() / 4;
    let (x, y) = (&v[..n], &v[n..2 * n]);
    let reduction = [Reduction::None, Reduction::Sum, Reduction::Mean][usize::from(head >> 2) % 3];
    // Broadcast lengths: none, 1, or a divisor-or-not of n.
    let len = |code: u8| match code & 3 {
        0 => None,
        1 => Some(1usize.min(n)),
        2 => Some(n),
        _ => Some((n / 2).max(1).min(n)),
    };
    let (wl, pl) = (len(head >> 4), len(head >> 6));
    let w = wl.map(|l| &v[2 * n..2 * n + l]);
    let pw = pl.map(|l| &v[3 * n..3 * n + l]);
    let mut opts = BceWithLogits::new().with_reduction(reduction);
    if let Some(w) = w {
        opts = opts.with_weight(w);
    }
    if let Some(p) = pw {
        opts = opts.with_pos_weight(p);
    }
    let mut losses = vec![f32::NAN; n];
    let mut grad = vec![f32::NAN; n];
    let fused = k.binary_cross_entropy_with_logits_with_grad(x, y, &opts, &mut losses, &mut grad);
    let ok = |l: Option<usize>| l.is_none_or(|l| if l == 0 { n == 0 } else { n % l == 0 });
    let valid = ok(wl) && ok(pl);
    assert_eq!(
        fused.is_ok(),
        valid,
        "weights {wl:?} pos {pl:?} of {n}: {fused:?}"
    );
    let Ok(loss) = fused else {
        assert!(grad.iter().all(|v| v.is_nan()), "written before the error");
        return;
    };
    let fwd = k
        .binary_cross_entropy_with_logits(x, y, &opts, &mut vec![0.0; n])
        .expect("valid");
    assert!(
        loss.to_bits() == fwd.to_bits() || (loss.is_nan() && fwd.is_nan()),
        "{loss} vs {fwd}"
    );
    let scale = if reduction == Reduction::Mean {
        1.0 / n as f64
    } else {
        1.0
    };
    for i in 0..n {
        let wi = w.map_or(1.0, |w| f64::from(w[i % w.len()]));
        let pi = pw.map_or(1.0, |p| f64::from(p[i % p.len()]));
        let (xi, yi) = (f64::from(x[i]), f64::from(y[i]));
        let tame = xi.abs() <= 80.0
            && (0.0..=1.0).contains(&yi)
            && (0.0..=100.0).contains(&wi)
            && (0.0..=100.0).contains(&pi);
        if !tame {
            continue;
        }
        // PyTorch's form: w ((1 - y) x - (1 + (p - 1) y) log sigmoid(x)).
        let log_sig = xi.min(0.0) - (-xi.abs()).exp().ln_1p();
        let l = wi * ((1.0 - yi) * xi - (1.0 + (pi - 1.0) * yi) * log_sig);
        let sig = 1.0 / (1.0 + (-xi).exp());
        let g = wi * ((pi * yi + 1.0 - yi) * sig - pi * yi) * scale;
        let tol = |v: f64| {
            16.0 * f64::from(f32::EPSILON) * (v.abs() + wi * (1.0 + pi) * (1.0 + xi.abs())) + 1e-30
        };
        if reduction == Reduction::None {
            assert!(
                (f64::from(losses[i]) - l).abs() <= tol(l),
                "loss[{i}] {} vs {l}",
                losses[i]
            );
        }
        assert!(
            (f64::from(grad[i]) - g).abs() <= tol(g) * scale.max(f64::MIN_POSITIVE),
            "grad[{i}] {} vs {g}",
            grad[i]
        );
    }
});
