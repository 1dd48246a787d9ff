//! Fuzzes the GEMM on small shapes against a naive f64 product.
//!
//! Input: a byte each for the backend, m, n, k (1..=40), the transposes of A, B and C,
//! a padding, alpha and beta picked from a few values (0 and 1 among them), then
//! values for A, B and C as small integers (so that the f64 reference is exact and
//! the f32 result is within k rounding steps). Asserts: no panic, shapes accepted,
//! every element of C within the bound, padding of C untouched, beta = 0 ignoring the
//! NaN planted in C.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlp_kernels::{Backend, Kernels, MatMut, MatRef, gemm_workspace_len};

const SCALARS: [f32; 6] = [0.0, 1.0, -1.0, 0.5, 2.0, -0.25];

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let Ok(k) = Kernels::new(Backend::ALL[data[0] as usize % 3]) else {
        return;
    };
    let (m, n, kk) = (
        1 + data[1] as usize % 40,
        1 + data[2] as usize % 40,
        1 + data[3] as usize % 40,
    );
    let (ta, tb, tc) = (data[4] & 1 == 1, data[4] & 2 == 2, data[4] & 4 == 4);
    let pad = data[5] as usize % 3;
    let (alpha, beta) = (SCALARS[data[6] as usize % 6], SCALARS[data[7] as usize % 6]);
    let mut vals = data[8..].iter().cycle().map(|&b| f32::from(b as i8 % 8));
    let mut stored = |rows: usize, cols: usize, trans: bool| {
        let (rs, cs) = if trans {
            (1, rows + pad)
        } else {
            (cols + pad, 1)
        };
        let len = if trans {
            (rows + pad) * cols
        } else {
            rows * (cols + pad)
        };
        let v: Vec<f32> = (0..len).map(|_| vals.next().unwrap_or(0.0)).collect();
        (v, rs, cs)
    };
    let (a, ars, acs) = stored(m, kk, ta);
    let (b, brs, bcs) = stored(kk, n, tb);
    let (mut c, crs, ccs) = stored(m, n, tc);
    let inside = |idx: usize| {
        let (i, j) = if tc {
            (idx % ccs, idx / ccs)
        } else {
            (idx / crs, idx % crs)
        };
        i < m && j < n
    };
    if beta == 0.0 {
        for (idx, x) in c.iter_mut().enumerate() {
            if inside(idx) {
                *x = f32::NAN;
            }
        }
    }
    let before = c.clone();
    let av = MatRef::new(&a, m, kk, ars, acs).expect("A fits its data");
    let bv = MatRef::new(&b, kk, n, brs, bcs).expect("B fits its data");
    let mut ws = vec![0.0; gemm_workspace_len(m, n, kk)];
    let cv = MatMut::new(&mut c, m, n, crs, ccs).expect("C fits its data");
    k.gemm(alpha, av, bv, beta, cv, &mut ws)
        .expect("shapes agree");
    for i in 0..m {
        for j in 0..n {
            let mut dot = 0.0f64;
            let mut mag = 0.0f64;
            for p in 0..kk {
                let t = f64::from(a[i * ars + p * acs]) * f64::from(b[p * brs + j * bcs]);
                dot += t;
                mag += t.abs();
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta) * f64::from(before[i * crs + j * ccs])
            };
            let want = f64::from(alpha) * dot + old;
            let bound = 2.0
                * (kk as f64 + 2.0)
                * f64::from(f32::EPSILON)
                * (f64::from(alpha.abs()) * mag + old.abs());
            let got = f64::from(c[i * crs + j * ccs]);
            assert!(
                (got - want).abs() <= bound,
                "{} C[{i},{j}] = {got}, want {want}",
                k.backend()
            );
        }
    }
    for (idx, (x, y)) in c.iter().zip(&before).enumerate() {
        if !inside(idx) {
            assert_eq!(x.to_bits(), y.to_bits(), "padding at {idx} written");
        }
    }
});
