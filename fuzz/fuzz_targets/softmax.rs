//! Fuzzes softmax and log_softmax, out of place and in place, on any float bits.
//!
//! Input: one byte (backend, row length), then the matrix as little-endian f32.
//! Asserts: no panic; `cols = 0` and a length `cols` does not divide are `Err`; in place
//! gives the same bits as out of place; on finite rows softmax is in [0, 1], sums to 1
//! within (cols + 4) eps, log_softmax <= 0 and exp(log_softmax) is softmax within a few
//! eps; a row with NaN or +inf is NaN throughout, as PyTorch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlp_kernels_fuzz::{floats, kernels};

const EPS: f64 = f32::EPSILON as f64;

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let k = kernels(head);
    let x = floats(rest);
    let cols = usize::from(head >> 2);
    let mut p = vec![0.0f32; x.len()];
    let fits = cols != 0 && x.len() % cols == 0;
    assert_eq!(
        k.softmax(&x, cols, &mut p).is_ok(),
        fits,
        "{} x {cols}",
        x.len()
    );
    if !fits {
        assert!(k.log_softmax(&x, cols, &mut p).is_err());
        assert!(k.softmax_in_place(&mut x.clone(), cols).is_err());
        return;
    }
    let mut lp = vec![0.0f32; x.len()];
    k.log_softmax(&x, cols, &mut lp).expect("fits");
    let (mut pi, mut lpi) = (x.clone(), x.clone());
    k.softmax_in_place(&mut pi, cols).expect("fits");
    k.log_softmax_in_place(&mut lpi, cols).expect("fits");
    assert!(
        same_bits(&p, &pi) && same_bits(&lp, &lpi),
        "in place differs"
    );
    for ((row, pr), lr) in x
        .chunks_exact(cols)
        .zip(p.chunks_exact(cols))
        .zip(lp.chunks_exact(cols))
    {
        if row.iter().all(|v| v.is_finite()) {
            let sum: f64 = pr.iter().map(|&v| f64::from(v)).sum();
            assert!(
                (sum - 1.0).abs() <= (cols as f64 + 4.0) * EPS,
                "sum {sum}: {row:?}"
            );
            assert!(pr.iter().all(|v| (0.0..=1.0).contains(v)), "{pr:?}");
            assert!(lr.iter().all(|&v| v <= 0.0), "{lr:?}");
            for (&a, &l) in pr.iter().zip(lr) {
                // exp amplifies log_softmax's rounding by |l|; an l that overflowed
                // to -inf has a softmax that underflowed to 0.
                let e = f64::from(l).exp();
                let d = (e - f64::from(a)).abs();
                let tol = 8.0 * EPS * (1.0 + f64::from(l).abs().min(1e30)) * e.max(f64::from(a));
                assert!(
                    d == 0.0 || d <= tol + 1e-38,
                    "exp(log_softmax) {e} vs softmax {a}: {row:?}"
                );
            }
        } else if row.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
            assert!(
                pr.iter().chain(lr).all(|v| v.is_nan()),
                "{row:?}: {pr:?} {lr:?}"
            );
        }
    }
});
