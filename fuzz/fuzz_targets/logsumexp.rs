//! Fuzzes `logsumexp` and the row kernels on the same passes.
//!
//! Input: one byte that picks the backend, the row length of the row form and a shift,
//! then the row as little-endian f32. Asserts: no panic; NaN in gives NaN; +inf gives
//! +inf and an empty or all -inf row -inf; otherwise the result is within 4 ulp + n eps
//! of an f64 reference, at least max(x), and shifts with x: lse(x + c) = lse(x) + c
//! within the two bounds when x + c is exact. The row form gives the same bits as the
//! single row (NaN payloads aside), softmax rows sum to 1 within (n + 4) eps and
//! log_softmax is <= 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlp_kernels::Kernels;
use mlp_kernels_fuzz::{floats, kernels};

const EPS: f64 = f32::EPSILON as f64;

/// The spacing of f32 at `x` (f32::MAX's for infinities).
fn ulp(x: f64) -> f64 {
    let a = (x.abs() as f32).min(f32::MAX);
    f64::from(f32::from_bits(a.to_bits() + 1)) - f64::from(a)
}

/// log sum exp in f64 over a row with no NaN and no +inf, not all -inf.
fn reference(x: &[f32]) -> f64 {
    let m = x
        .iter()
        .map(|&v| f64::from(v))
        .fold(f64::NEG_INFINITY, f64::max);
    m + x
        .iter()
        .map(|&v| (f64::from(v) - m).exp())
        .sum::<f64>()
        .ln()
}

/// DESIGN.md's accuracy bound at a result near `r` over `n` terms.
fn bound(r: f64, n: usize) -> f64 {
    4.0 * ulp(r) + n as f64 * EPS
}

/// Checks one row; returns the result.
fn check_row(k: &Kernels, x: &[f32]) -> f32 {
    let r = k.logsumexp(x);
    if x.iter().any(|v| v.is_nan()) {
        assert!(r.is_nan(), "NaN in, {r} out: {x:?}");
    } else if x.contains(&f32::INFINITY) {
        assert_eq!(r, f32::INFINITY, "{x:?}");
    } else if x.iter().all(|&v| v == f32::NEG_INFINITY) {
        assert_eq!(r, f32::NEG_INFINITY, "{x:?}");
    } else {
        let want = reference(x);
        let err = (f64::from(r) - want).abs();
        assert!(
            err <= bound(want, x.len()),
            "lse {r} vs {want} (err {err:e}) {:?}: {x:?}",
            k.backend()
        );
        let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(r >= m, "lse {r} < max {m}: {x:?}");
    }
    r
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let k = kernels(head);
    let x = floats(rest);
    let n = x.len();
    let r = check_row(&k, &x);

    // Shift invariance where x + c is exact: c a small multiple of the widest spacing.
    if r.is_finite() && x.iter().all(|v| v.is_finite()) {
        let q = x.iter().map(|&v| ulp(f64::from(v))).fold(0.0, f64::max);
        let c = q * f64::from(i32::from(head >> 4) - 8);
        let xs: Vec<f32> = x.iter().map(|&v| (f64::from(v) + c) as f32).collect();
        let exact = x
            .iter()
            .zip(&xs)
            .all(|(&a, &b)| f64::from(a) + c == f64::from(b));
        if exact && xs.iter().all(|v| v.is_finite()) {
            let rs = check_row(&k, &xs);
            let want = reference(&x);
            let tol = bound(want, n) + bound(want + c, n);
            assert!(
                (f64::from(rs) - (f64::from(r) + c)).abs() <= tol,
                "lse(x + {c}) = {rs}, lse(x) + c = {}: {x:?}",
                f64::from(r) + c
            );
        }
    }

    // The row forms: same bits as the single row; softmax sums to 1.
    if n == 0 {
        return;
    }
    let cols = 1 + usize::from(head >> 2) % n;
    let rows = n / cols;
    let x = &x[..rows * cols];
    let mut lse = vec![0.0f32; rows];
    k.logsumexp_rows(x, cols, &mut lse).expect("shapes agree");
    let mut p = vec![0.0f32; x.len()];
    k.softmax(x, cols, &mut p).expect("shapes agree");
    let mut lp = x.to_vec();
    k.log_softmax_in_place(&mut lp, cols).expect("shapes agree");
    for (i, row) in x.chunks_exact(cols).enumerate() {
        let one = k.logsumexp(row);
        // Bit for bit, but for NaN payloads (the row form finds a row's max ahead, in
        // another order, so a NaN may or may not show through the max).
        let same = lse[i].to_bits() == one.to_bits() || (lse[i].is_nan() && one.is_nan());
        assert!(
            same,
            "row {i} of {rows}x{cols}: {} vs {one}: {row:?}",
            lse[i]
        );
        let (pr, lr) = (&p[i * cols..(i + 1) * cols], &lp[i * cols..(i + 1) * cols]);
        if row.iter().all(|v| v.is_finite()) {
            let sum: f64 = pr.iter().map(|&v| f64::from(v)).sum();
            assert!(
                (sum - 1.0).abs() <= (cols as f64 + 4.0) * EPS,
                "softmax sums to {sum}: {row:?}"
            );
            assert!(pr.iter().all(|&v| (0.0..=1.0).contains(&v)), "{pr:?}");
            assert!(
                lr.iter().all(|&v| v <= 0.0),
                "log_softmax {lr:?} of {row:?}"
            );
        } else if row.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
            assert!(
                pr.iter().chain(lr).all(|v| v.is_nan()),
                "{row:?}: {pr:?} {lr:?}"
            );
        }
    }
});
