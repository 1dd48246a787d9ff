//! The sparse kernels against an f64 reference written here from the definition
//! (C = alpha * S * B + beta * C, element by element), against the dense `gemm`, and
//! `SparseLinear` against `Linear` on the normalised dense input.

mod common;

use common::{SplitMix, kernels};
use mlp_kernels::{
    CsrRef, Error, Kernels, Linear, LinearGrads, MatMut, MatRef, SparseLinear, gemm_workspace_len,
    sparse_gemm_workspace_len,
};
use proptest::prelude::*;

/// A sparse matrix as owned CSR parts, and the same matrix dense (row-major).
struct Sparse {
    rows: usize,
    cols: usize,
    offsets: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
    dense: Vec<f32>,
}

impl Sparse {
    /// Each element stored with probability `density`; some rows forced empty.
    fn random(rows: usize, cols: usize, density: f64, rng: &mut SplitMix) -> Sparse {
        let mut s = Sparse {
            rows,
            cols,
            offsets: vec![0],
            indices: vec![],
            values: vec![],
            dense: vec![0.0; rows * cols],
        };
        for i in 0..rows {
            let empty = rng.uniform(0.0, 1.0) < 0.1;
            for j in 0..cols {
                if !empty && rng.uniform(0.0, 1.0) < density {
                    let v = rng.uniform(-2.0, 2.0) as f32;
                    s.indices.push(j as u32);
                    s.values.push(v);
                    s.dense[i * cols + j] = v;
                }
            }
            s.offsets.push(s.indices.len());
        }
        s
    }
    fn view(&self) -> CsrRef<'_> {
        CsrRef::new(
            self.rows,
            self.cols,
            &self.offsets,
            &self.indices,
            &self.values,
        )
        .unwrap()
    }
}

fn random_vec(n: usize, rng: &mut SplitMix) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

/// C = alpha * A * B + beta * C in f64 from dense row-major A (m x k) and B given by
/// element (k x n), with the bound on the f32 result's error: a few ulps of the sum
/// of the terms' magnitudes.
#[allow(clippy::too_many_arguments)]
fn reference(
    alpha: f32,
    a: &[f32],
    m: usize,
    k: usize,
    b: &dyn Fn(usize, usize) -> f32,
    n: usize,
    beta: f32,
    c: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; m * n];
    let mut bound = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut sum, mut mag) = (0.0f64, 0.0f64);
            for p in 0..k {
                let t = f64::from(a[i * k + p]) * f64::from(b(p, j));
                sum += t;
                mag += t.abs();
            }
            let base = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta) * f64::from(c[i * n + j])
            };
            out[i * n + j] = f64::from(alpha) * sum + base;
            let tol = (k as f64 + 4.0) * f64::from(f32::EPSILON);
            bound[i * n + j] = tol * (f64::from(alpha).abs() * mag + base.abs()) + 1e-30;
        }
    }
    (out, bound)
}

fn assert_close(what: &str, got: &[f32], want: &[f64], bound: &[f64]) {
    for (idx, ((&g, &w), &b)) in got.iter().zip(want).zip(bound).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= b,
            "{what}: element {idx}: {g} vs {w} (bound {b})"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// C = alpha * S * op(B) + beta * C on every backend, for B as given and as a
    /// transposed view, on one thread and on two, sparse and (with room) dense paths.
    #[test]
    fn sparse_gemm_matches_the_definition(
        m in 0usize..40, k in 0usize..50, n in 0usize..300,
        density in prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
        alpha in prop_oneof![Just(1.0f32), Just(0.0), -2.0f32..2.0],
        beta in prop_oneof![Just(0.0f32), Just(1.0), -2.0f32..2.0],
        seed in any::<u64>(),
    ) {
        let mut rng = SplitMix(seed);
        let s = Sparse::random(m, k, density, &mut rng);
        let b = random_vec(k * n, &mut rng);
        let c0: Vec<f32> = random_vec(m * n, &mut rng);
        let (want, bound) = reference(alpha, &s.dense, m, k, &|p, j| b[p * n + j], n, beta, &c0);
        let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect(); // B^T, n x k
        for kern in kernels() {
            for (transposed, room) in [(false, false), (false, true), (true, true)] {
                let bv = if transposed {
                    MatRef::row_major(&bt, n, k).unwrap().t()
                } else {
                    MatRef::row_major(&b, k, n).unwrap()
                };
                let mut ws = vec![0.0; if room { sparse_gemm_workspace_len(m, n, k) } else { 0 }];
                let mut c = c0.clone();
                kern.sparse_gemm(alpha, s.view(), bv, beta, MatMut::row_major(&mut c, m, n).unwrap(), &mut ws).unwrap();
                assert_close(&format!("{} t={transposed} room={room}", kern.backend()), &c, &want, &bound);
                let mut ws2 = vec![0.0; sparse_gemm_workspace_len(m, n, k) + gemm_workspace_len(m, n, k)];
                let mut c2 = c0.clone();
                kern.sparse_gemm_threaded(2, alpha, s.view(), bv, beta, MatMut::row_major(&mut c2, m, n).unwrap(), &mut ws2).unwrap();
                assert_close(&format!("{} threaded", kern.backend()), &c2, &want, &bound);
            }
        }
    }

    /// C = alpha * S^T * B + beta * C, with C row-major and column-major.
    #[test]
    fn sparse_t_gemm_matches_the_definition(
        m in 0usize..150, k in 0usize..50, n in 0usize..300,
        density in prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
        alpha in prop_oneof![Just(1.0f32), Just(0.0), -2.0f32..2.0],
        beta in prop_oneof![Just(0.0f32), Just(1.0), -2.0f32..2.0],
        seed in any::<u64>(),
    ) {
        let mut rng = SplitMix(seed);
        let s = Sparse::random(m, k, density, &mut rng);
        let st: Vec<f32> = (0..k * m).map(|x| s.dense[(x % m) * k + x / m]).collect(); // k x m
        let b = random_vec(m * n, &mut rng);
        let c0: Vec<f32> = random_vec(k * n, &mut rng);
        let (want, bound) = reference(alpha, &st, k, m, &|p, j| b[p * n + j], n, beta, &c0);
        for kern in kernels() {
            let mut c = c0.clone();
            kern.sparse_t_gemm(alpha, s.view(), MatRef::row_major(&b, m, n).unwrap(), beta, MatMut::row_major(&mut c, k, n).unwrap(), &mut []).unwrap();
            assert_close(&format!("{}", kern.backend()), &c, &want, &bound);
            // With room for the dense path (taken above the break-even density).
            let mut c = c0.clone();
            let mut ws = vec![0.0; sparse_gemm_workspace_len(k, n, m)];
            kern.sparse_t_gemm(alpha, s.view(), MatRef::row_major(&b, m, n).unwrap(), beta, MatMut::row_major(&mut c, k, n).unwrap(), &mut ws).unwrap();
            assert_close(&format!("{} room", kern.backend()), &c, &want, &bound);
            // On two threads (C's rows split), with and without the dense path's room.
            for room in [false, true] {
                let mut c = c0.clone();
                let mut ws = vec![0.0; if room { sparse_gemm_workspace_len(k, n, m) + 2 * gemm_workspace_len(k, n, m) } else { 0 }];
                kern.sparse_t_gemm_threaded(2, alpha, s.view(), MatRef::row_major(&b, m, n).unwrap(), beta, MatMut::row_major(&mut c, k, n).unwrap(), &mut ws).unwrap();
                assert_close(&format!("{} threaded room={room}", kern.backend()), &c, &want, &bound);
            }
            // Column-major C: the same numbers stored transposed.
            let mut ct: Vec<f32> = (0..n * k).map(|x| c0[(x % k) * n + x / k]).collect();
            kern.sparse_t_gemm(alpha, s.view(), MatRef::row_major(&b, m, n).unwrap(), beta, MatMut::row_major(&mut ct, n, k).unwrap().t(), &mut []).unwrap();
            let back: Vec<f32> = (0..k * n).map(|x| ct[(x % n) * k + x / n]).collect();
            assert_close(&format!("{} column-major C", kern.backend()), &back, &want, &bound);
        }
    }
}

#[test]
fn a_wide_row_crosses_column_blocks_and_a_tail() {
    // n = 1000: several register blocks on every backend, and a tail of 8 lanes.
    let mut rng = SplitMix(7);
    let (m, k, n) = (5, 30, 1000);
    let s = Sparse::random(m, k, 0.3, &mut rng);
    let b = random_vec(k * n, &mut rng);
    let (want, bound) = reference(1.5, &s.dense, m, k, &|p, j| b[p * n + j], n, 0.0, &[]);
    for kern in kernels() {
        let mut c = vec![f32::NAN; m * n];
        kern.sparse_gemm(
            1.5,
            s.view(),
            MatRef::row_major(&b, k, n).unwrap(),
            0.0,
            MatMut::row_major(&mut c, m, n).unwrap(),
            &mut [],
        )
        .unwrap();
        assert_close("wide", &c, &want, &bound);
    }
}

/// Rows of S whose entries sit in one place: empty, only the first columns, only the
/// last ones, every column, or at `density` throughout.
fn banded(rows: usize, cols: usize, density: f64, rng: &mut SplitMix) -> Sparse {
    let mut s = Sparse::random(rows, cols, density, rng);
    let (mut offsets, mut indices, mut values) = (vec![0], vec![], vec![]);
    for i in 0..rows {
        let keep = |j: usize| match i % 5 {
            0 => false,
            1 => j < 7,
            2 => j + 7 >= cols,
            3 => true,
            _ => s.dense[i * cols + j] != 0.0,
        };
        for j in 0..cols {
            if keep(j) {
                let v = if s.dense[i * cols + j] != 0.0 {
                    s.dense[i * cols + j]
                } else {
                    0.75
                };
                indices.push(j as u32);
                values.push(v);
            }
        }
        offsets.push(indices.len());
    }
    s.dense.iter_mut().for_each(|x| *x = 0.0);
    for i in 0..rows {
        for e in offsets[i]..offsets[i + 1] {
            s.dense[i * cols + indices[e] as usize] = values[e];
        }
    }
    (s.offsets, s.indices, s.values) = (offsets, indices, values);
    s
}

#[test]
fn blocks_of_b_rows_keep_the_one_pass_bits() {
    // The lesson's first layer is deep enough (784) for the row form to take B's rows
    // in blocks that stay in cache, carrying each row's sums in C between blocks; a
    // column-major C has no rows to carry them in and takes one pass. Both must be
    // the definition, and the same bits. 150 rows make three chunks of 64.
    let mut rng = SplitMix(29);
    for (m, k, n, density) in [
        (150, 784, 200, 0.19),
        (150, 784, 200, 0.5),
        (70, 600, 37, 0.3),
        (9, 784, 1000, 0.19),
    ] {
        let s = banded(m, k, density, &mut rng);
        let b = random_vec(k * n, &mut rng);
        for kern in kernels() {
            for alpha in [1.0f32, -0.5] {
                let (want, bound) =
                    reference(alpha, &s.dense, m, k, &|p, j| b[p * n + j], n, 0.0, &[]);
                let bv = MatRef::row_major(&b, k, n).unwrap();
                let mut c = vec![f32::NAN; m * n];
                kern.sparse_gemm(
                    alpha,
                    s.view(),
                    bv,
                    0.0,
                    MatMut::row_major(&mut c, m, n).unwrap(),
                    &mut [],
                )
                .unwrap();
                let what = format!("{} {m}x{n}x{k} at {density}", kern.backend());
                assert_close(&what, &c, &want, &bound);
                let mut ct = vec![f32::NAN; n * m];
                kern.sparse_gemm(
                    alpha,
                    s.view(),
                    bv,
                    0.0,
                    MatMut::row_major(&mut ct, n, m).unwrap().t(),
                    &mut [],
                )
                .unwrap();
                for (e, &x) in c.iter().enumerate() {
                    let y = ct[(e % n) * m + e / n];
                    assert_eq!(
                        x.to_bits(),
                        y.to_bits(),
                        "{what}: element {e}: {x} by rows, {y} by columns"
                    );
                }
            }
        }
    }
}

#[test]
fn b_rows_copied_onto_lines_keep_the_in_place_bits() {
    // With room in the workspace, AVX-512 copies B's rows onto cache lines when S reads
    // each at least 64 times a thread (here about 135, 120 and 117: the copy is made on
    // one thread, and for the first shape on two). The copy must change nothing: the
    // definition, and the bits of the product that reads B in place, for B starting off
    // a line and rows of any width. The workspace has room for the copy (k rows of n
    // rounded up to 16, and 15 floats to reach a line) but not for S expanded (m * k),
    // so the dense path, which these densities would take on Intel, cannot run.
    let mut rng = SplitMix(31);
    for (m, k, n, density) in [(300, 40, 200, 0.5), (300, 30, 37, 0.45), (260, 16, 16, 0.5)] {
        let s = Sparse::random(m, k, density, &mut rng);
        let stride = n + 3;
        let buf = random_vec(1 + k * stride, &mut rng);
        let b = &buf[1..];
        let bv = MatRef::new(b, k, n, stride, 1).unwrap();
        let c0 = random_vec(m * n, &mut rng);
        let copy_len = k * n.next_multiple_of(16) + 15;
        assert!(copy_len < m * k);
        let mut ws = vec![0.0f32; copy_len];
        for kern in kernels() {
            for (alpha, beta) in [(1.0f32, 0.0f32), (-0.5, 2.0)] {
                let (want, bound) = reference(
                    alpha,
                    &s.dense,
                    m,
                    k,
                    &|p, j| b[p * stride + j],
                    n,
                    beta,
                    &c0,
                );
                for threads in [1, 2] {
                    let what = format!("{} {m}x{n}x{k}, {threads} threads", kern.backend());
                    let (mut in_place, mut copied) = (c0.clone(), c0.clone());
                    for (c, ws) in [(&mut in_place, &mut [][..]), (&mut copied, &mut ws[..])] {
                        let cv = MatMut::row_major(c, m, n).unwrap();
                        kern.sparse_gemm_threaded(threads, alpha, s.view(), bv, beta, cv, ws)
                            .unwrap();
                    }
                    assert_close(&what, &copied, &want, &bound);
                    for (e, (x, y)) in in_place.iter().zip(&copied).enumerate() {
                        assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {e}");
                    }
                }
            }
        }
    }
}

#[test]
fn blas_edge_rules_hold() {
    let s_parts = ([0usize, 1, 2], [0u32, 1], [2.0f32, 3.0]);
    let s = CsrRef::new(2, 2, &s_parts.0, &s_parts.1, &s_parts.2).unwrap();
    let b = [f32::INFINITY, 1.0, 1.0, 1.0];
    for kern in kernels() {
        // beta = 0 never reads C: its NaN does not leak.
        let mut c = [f32::NAN; 4];
        kern.sparse_gemm(
            1.0,
            s,
            MatRef::row_major(&[1.0, 2.0, 3.0, 4.0], 2, 2).unwrap(),
            0.0,
            MatMut::row_major(&mut c, 2, 2).unwrap(),
            &mut [],
        )
        .unwrap();
        assert_eq!(c, [2.0, 4.0, 9.0, 12.0]);
        // alpha = 0 does not read S or B: the infinity in B gives no NaN.
        let mut c = [1.0f32, 2.0, 3.0, 4.0];
        kern.sparse_gemm(
            0.0,
            s,
            MatRef::row_major(&b, 2, 2).unwrap(),
            2.0,
            MatMut::row_major(&mut c, 2, 2).unwrap(),
            &mut [],
        )
        .unwrap();
        assert_eq!(c, [2.0, 4.0, 6.0, 8.0]);
        let mut c = [f32::NAN; 4];
        kern.sparse_t_gemm(
            0.0,
            s,
            MatRef::row_major(&b, 2, 2).unwrap(),
            0.0,
            MatMut::row_major(&mut c, 2, 2).unwrap(),
            &mut [],
        )
        .unwrap();
        assert_eq!(c, [0.0; 4]);
    }
}

#[test]
fn bad_csr_is_refused_with_the_row() {
    let v = [1.0f32; 3];
    // Only whether it is accepted, and where it is not.
    let bad = |offsets: &[usize], idx: &[u32]| {
        CsrRef::new(2, 4, offsets, idx, &v[..idx.len()]).map(|s| s.nnz())
    };
    let row_of = |e: Result<usize, Error>| match e {
        Err(Error::InvalidSparse { row, .. }) => Some(row),
        _ => None,
    };
    assert_eq!(row_of(bad(&[0, 1, 3], &[0, 3, 1])), Some(1)); // unsorted
    assert_eq!(row_of(bad(&[0, 2, 3], &[1, 1, 2])), Some(0)); // repeated
    assert_eq!(row_of(bad(&[0, 1, 3], &[0, 1, 4])), Some(1)); // out of range
    assert_eq!(row_of(bad(&[0, 1, 0], &[0])), Some(1)); // decreasing offsets
    assert_eq!(row_of(bad(&[1, 1, 1], &[0])), Some(0)); // not from 0
    assert!(matches!(
        bad(&[0, 1], &[0]),
        Err(Error::ShapeMismatch { .. })
    )); // rows + 1 offsets
    assert!(matches!(
        bad(&[0, 1, 2], &[0, 1, 2]),
        Err(Error::ShapeMismatch { .. })
    )); // nnz != offsets[rows]
    assert!(matches!(
        CsrRef::new(1, 4, &[0, 1], &[0], &[1.0, 2.0]).map(|s| s.nnz()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(bad(&[0, 1, 3], &[3, 0, 2]).is_ok());
}

#[test]
fn shape_and_workspace_errors_write_nothing() {
    let s = CsrRef::new(2, 3, &[0, 1, 2], &[0, 2], &[1.0, 1.0]).unwrap();
    let b = [1.0f32; 6];
    let k = Kernels::detect();
    let mut c = [7.0f32; 4];
    // B has 2 rows, S 3 columns.
    let r = k.sparse_gemm(
        1.0,
        s,
        MatRef::row_major(&b, 2, 3).unwrap(),
        0.0,
        MatMut::row_major(&mut c[..], 2, 2).unwrap(),
        &mut [],
    );
    assert!(matches!(r, Err(Error::ShapeMismatch { .. })));
    // A transposed B needs packing room.
    let r = k.sparse_gemm(
        1.0,
        s,
        MatRef::row_major(&b, 2, 3).unwrap().t(),
        0.0,
        MatMut::row_major(&mut c[..], 2, 2).unwrap(),
        &mut [0.0; 5],
    );
    assert_eq!(
        r,
        Err(Error::WorkspaceTooSmall {
            needed: 6,
            found: 5
        })
    );
    assert_eq!(c, [7.0; 4]);
}

#[test]
fn transpose_into_is_the_transpose() {
    let mut rng = SplitMix(3);
    for (m, k, d) in [(0, 5, 0.5), (7, 0, 0.5), (13, 29, 0.2), (40, 17, 0.9)] {
        let s = Sparse::random(m, k, d, &mut rng);
        let (mut o, mut i, mut v) = (
            vec![9; k + 1],
            vec![0u32; s.values.len()],
            vec![0.0; s.values.len()],
        );
        let t = s.view().transpose_into(&mut o, &mut i, &mut v).unwrap();
        assert_eq!((t.rows(), t.cols(), t.nnz()), (k, m, s.values.len()));
        for r in 0..k {
            for c in 0..m {
                assert_eq!(t.get(r, c), Some(s.dense[c * k + r]));
            }
        }
        // The result passed CsrRef's own checks (sorted rows) by being returned.
        assert!(CsrRef::new(k, m, &o, &i, &v).is_ok());
    }
}

/// MNIST-like input: raw grey levels, 80% zeros, normalised as the lesson.
#[test]
fn sparse_linear_is_linear_on_the_normalised_input() {
    let (batch, inp, out) = (23, 100, 37);
    let (a, c) = (1.0 / (255.0 * 0.3081), -0.1307f32 / 0.3081);
    let mut rng = SplitMix(11);
    let mut s = Sparse::random(batch, inp, 0.2, &mut rng);
    // Grey levels 1..=254 where stored.
    for v in s.values.iter_mut() {
        *v = (v.abs() * 127.0).round().max(1.0);
    }
    for r in 0..batch {
        for p in s.offsets[r]..s.offsets[r + 1] {
            s.dense[r * inp + s.indices[p] as usize] = s.values[p];
        }
    }
    let norm: Vec<f32> = s.dense.iter().map(|&x| a * x + c).collect();
    let w = random_vec(out * inp, &mut rng); // out x in
    let wt: Vec<f32> = (0..inp * out)
        .map(|x| w[(x % out) * inp + x / out])
        .collect();
    let bias = random_vec(out, &mut rng);
    let dy = random_vec(batch * out, &mut rng);
    for kern in kernels() {
        for threads in [1, 2] {
            let layer = SparseLinear::new(inp, out)
                .with_normalisation(a, c)
                .with_threads(threads);
            let dense = Linear::new(inp, out);
            let mut ws = vec![0.0; layer.workspace_len()];
            let mut dws = vec![0.0; dense.workspace_len(batch)];
            let (mut y, mut yd) = (vec![0.0; batch * out], vec![0.0; batch * out]);
            layer
                .forward(&kern, s.view(), &wt, Some(&bias), &mut y, &mut ws)
                .unwrap();
            dense
                .forward(&kern, &norm, &w, Some(&bias), &mut yd, &mut dws)
                .unwrap();
            // Against f64: y = norm W^T + b.
            for r in 0..batch {
                for j in 0..out {
                    let (mut sum, mut mag) = (f64::from(bias[j]), f64::from(bias[j]).abs());
                    for p in 0..inp {
                        let t = f64::from(norm[r * inp + p]) * f64::from(w[j * inp + p]);
                        sum += t;
                        mag += t.abs();
                    }
                    let tol = 1e-5 * mag + 1e-6;
                    let got = f64::from(y[r * out + j]);
                    assert!((got - sum).abs() <= tol, "y[{r},{j}] {got} vs {sum}");
                    assert!((f64::from(yd[r * out + j]) - sum).abs() <= tol);
                }
            }
            // Backward: dW^T and db against f64, accumulating onto a start value.
            let start = random_vec(inp * out, &mut rng);
            let mut gwt = start.clone();
            let mut gb = vec![0.5f32; out];
            layer
                .backward(&kern, s.view(), &dy, &mut gwt, Some(&mut gb), true, &mut ws)
                .unwrap();
            let mut gw_dense = vec![0.0; out * inp];
            let mut gb_dense = vec![0.0; out];
            let grads = LinearGrads {
                weight: &mut gw_dense,
                bias: Some(&mut gb_dense),
                input: None,
                accumulate: false,
            };
            dense
                .backward(&kern, &norm, &w, &dy, grads, &mut dws)
                .unwrap();
            // dW^T[p, j] in f64 from the normalised input, with the sum of magnitudes.
            let dw_t = |p: usize, j: usize| {
                (0..batch)
                    .map(|r| f64::from(dy[r * out + j]) * f64::from(norm[r * inp + p]))
                    .fold((0.0f64, 0.0f64), |(sum, mag), t| (sum + t, mag + t.abs()))
            };
            let db = |j: usize| -> f64 { (0..batch).map(|r| f64::from(dy[r * out + j])).sum() };
            for j in 0..out {
                assert!((f64::from(gb[j]) - (db(j) + 0.5)).abs() < 1e-5);
                for p in 0..inp {
                    let (sum, mag) = dw_t(p, j);
                    let want = sum + f64::from(start[p * out + j]);
                    let got = f64::from(gwt[p * out + j]);
                    assert!(
                        (got - want).abs() <= 1e-5 * (mag + 1.0),
                        "dW^T[{p},{j}] {got} vs {want}"
                    );
                    assert!((f64::from(gw_dense[j * inp + p]) - sum).abs() <= 1e-5 * (mag + 1.0));
                }
            }
            // The same gradients from the batch by columns, overwritten and added to.
            let (mut t_off, mut t_idx, mut t_val) = (
                vec![0; inp + 1],
                vec![0u32; s.values.len()],
                vec![0.0f32; s.values.len()],
            );
            let x_t = s
                .view()
                .transpose_into(&mut t_off, &mut t_idx, &mut t_val)
                .unwrap();
            for accumulate in [false, true] {
                let mut gwt_t = if accumulate {
                    start.clone()
                } else {
                    vec![f32::NAN; inp * out]
                };
                let mut gb_t = vec![if accumulate { 0.5f32 } else { f32::NAN }; out];
                layer
                    .backward_transposed(
                        &kern,
                        x_t,
                        &dy,
                        &mut gwt_t,
                        Some(&mut gb_t),
                        accumulate,
                        &mut ws,
                    )
                    .unwrap();
                for j in 0..out {
                    let db = db(j) + if accumulate { 0.5 } else { 0.0 };
                    assert!(
                        (f64::from(gb_t[j]) - db).abs() < 1e-5,
                        "by columns: db[{j}]"
                    );
                    for p in 0..inp {
                        let (sum, mag) = dw_t(p, j);
                        let want = sum
                            + if accumulate {
                                f64::from(start[p * out + j])
                            } else {
                                0.0
                            };
                        let got = f64::from(gwt_t[p * out + j]);
                        assert!(
                            (got - want).abs() <= 1e-5 * (mag + 1.0),
                            "by columns, accumulate {accumulate}: dW^T[{p},{j}] {got} vs {want}"
                        );
                    }
                }
            }
            // A transposed batch of the wrong shape is refused, with nothing written.
            let mut untouched = vec![7.0f32; inp * out];
            let wrong = CsrRef::new(
                inp - 1,
                batch,
                &t_off[..inp],
                &t_idx[..t_off[inp - 1]],
                &t_val[..t_off[inp - 1]],
            )
            .unwrap();
            assert!(
                layer
                    .backward_transposed(&kern, wrong, &dy, &mut untouched, None, false, &mut ws)
                    .is_err()
            );
            assert!(untouched.iter().all(|&v| v == 7.0));
        }
    }
}

#[test]
fn sparse_linear_refuses_bad_lengths() {
    let layer = SparseLinear::new(3, 2);
    let x = CsrRef::new(1, 3, &[0, 1], &[2], &[1.0]).unwrap();
    let k = Kernels::detect();
    let mut y = [5.0f32; 2];
    let w = [0.0f32; 6];
    assert!(
        layer
            .forward(&k, x, &w[..5], None, &mut y, &mut [0.0; 2])
            .is_err()
    );
    assert!(
        layer
            .forward(&k, x, &w, None, &mut y, &mut [0.0; 1])
            .is_err()
    );
    assert!(
        layer
            .forward(&k, x, &w, Some(&[1.0]), &mut y, &mut [0.0; 2])
            .is_err()
    );
    let bad = SparseLinear::new(3, 2).with_normalisation(f32::NAN, 0.0);
    assert!(bad.forward(&k, x, &w, None, &mut y, &mut [0.0; 2]).is_err());
    assert_eq!(y, [5.0; 2]);
    let mut g = [3.0f32; 6];
    assert!(
        layer
            .backward(&k, x, &[1.0], &mut g, None, false, &mut [0.0; 2])
            .is_err()
    );
    assert_eq!(g, [3.0; 6]);
}

/// `weight_t` with rows `row_stride` floats apart: the forward pass against the f64
/// definition, and every method with the bits of the packed layout (a stride moves the
/// rows, nothing else), on every backend and on one and two threads. A NaN between the
/// rows of the weight would reach y if it were read, and one between the rows of the
/// gradient must still be there afterwards. The largest case reads each row of W^T
/// about 76 times, so that AVX-512 on one thread copies the strided rows onto lines.
/// A stride below `out_features` and a packed length are refused, with nothing written.
#[test]
fn a_row_stride_moves_the_rows_and_nothing_else() {
    let mut rng = SplitMix(21);
    let (scale, shift) = (0.0127f32, -0.4242f32);
    let cases = [
        (40, 784, 200, 208),
        (400, 784, 200, 203),
        (9, 30, 7, 16),
        (5, 12, 33, 37),
    ];
    for (batch, inp, out, stride) in cases {
        let s = Sparse::random(batch, inp, 0.19, &mut rng);
        let wt = random_vec(inp * out, &mut rng);
        let bias = random_vec(out, &mut rng);
        let dy = random_vec(batch * out, &mut rng);
        // The packed weight's rows `stride` apart, NaN between them.
        let spread = |packed: &[f32]| -> Vec<f32> {
            let mut w = vec![f32::NAN; inp * stride];
            for (row, p) in w.chunks_exact_mut(stride).zip(packed.chunks_exact(out)) {
                row[..out].copy_from_slice(p);
            }
            w
        };
        let rows = |w: &[f32]| -> Vec<f32> {
            w.chunks_exact(stride)
                .flat_map(|r| r[..out].to_vec())
                .collect()
        };
        let between_is_nan = |w: &[f32]| {
            w.chunks_exact(stride)
                .all(|r| r[out..].iter().all(|v| v.is_nan()))
        };
        let nnz = s.values.len();
        let (mut xo, mut xi, mut xv) = (vec![0; inp + 1], vec![0u32; nnz], vec![0.0; nnz]);
        let x_t = s.view().transpose_into(&mut xo, &mut xi, &mut xv).unwrap();
        // y = (scale * x + shift) W^T + b, from the dense x in f64; the sparse form
        // sums scale * (x W^T) and shift * colsum apart, a few more roundings of terms
        // as large.
        let norm: Vec<f32> = s.dense.iter().map(|&x| scale * x + shift).collect();
        let b_at = |p: usize, j: usize| wt[p * out + j];
        let with_bias: Vec<f32> = (0..batch * out).map(|e| bias[e % out]).collect();
        let (want, bound) = reference(1.0, &norm, batch, inp, &b_at, out, 1.0, &with_bias);
        let bound: Vec<f64> = bound.iter().map(|b| 4.0 * b).collect();
        let w_strided = spread(&wt);
        for kern in kernels() {
            for threads in [1, 2] {
                let at = format!("{inp}x{out}, stride {stride}, {kern:?}, {threads} threads");
                let packed = SparseLinear::new(inp, out)
                    .with_normalisation(scale, shift)
                    .with_threads(threads);
                let strided = packed.with_row_stride(stride);
                let mut ws = vec![0.0; packed.fast_workspace_len(batch)];
                let (mut y_p, mut y_s) = (vec![0.0; batch * out], vec![0.0; batch * out]);
                packed
                    .forward(&kern, s.view(), &wt, Some(&bias), &mut y_p, &mut ws)
                    .unwrap();
                strided
                    .forward(&kern, s.view(), &w_strided, Some(&bias), &mut y_s, &mut ws)
                    .unwrap();
                assert!(y_p == y_s, "forward, {at}");
                assert_close(&format!("strided forward, {at}"), &y_s, &want, &bound);
                let (mut uo, mut ui, mut uv) = (vec![0; inp + 1], vec![0u32; nnz], vec![0.0; nnz]);
                let mut y_t = vec![0.0; batch * out];
                let b = Some(&bias[..]);
                let u = strided
                    .forward_transposing(
                        &kern,
                        s.view(),
                        &w_strided,
                        b,
                        &mut y_t,
                        &mut ws,
                        &mut uo,
                        &mut ui,
                        &mut uv,
                    )
                    .unwrap();
                assert!(y_t == y_p && u.nnz() == nnz, "forward_transposing, {at}");
                // By rows and by columns, overwritten and added to.
                for accumulate in [false, true] {
                    let (mut g_p, mut g_s) = (wt.clone(), spread(&wt));
                    let (mut gb_p, mut gb_s) = (vec![0.0; out], vec![0.0; out]);
                    let (gp, gs) = (Some(&mut gb_p[..]), Some(&mut gb_s[..]));
                    packed
                        .backward(&kern, s.view(), &dy, &mut g_p, gp, accumulate, &mut ws)
                        .unwrap();
                    strided
                        .backward(&kern, s.view(), &dy, &mut g_s, gs, accumulate, &mut ws)
                        .unwrap();
                    assert!(
                        rows(&g_s) == g_p && gb_s == gb_p && between_is_nan(&g_s),
                        "by rows, {accumulate}, {at}"
                    );
                    let (mut g_p, mut g_s) = (wt.clone(), spread(&wt));
                    packed
                        .backward_transposed(&kern, x_t, &dy, &mut g_p, None, accumulate, &mut ws)
                        .unwrap();
                    strided
                        .backward_transposed(&kern, x_t, &dy, &mut g_s, None, accumulate, &mut ws)
                        .unwrap();
                    assert!(
                        rows(&g_s) == g_p && between_is_nan(&g_s),
                        "by columns, {accumulate}, {at}"
                    );
                }
            }
        }
        // Refused, with nothing written.
        let kern = Kernels::detect();
        let layer = SparseLinear::new(inp, out).with_row_stride(stride);
        assert_eq!(layer.weight_t_len(), inp * stride);
        let mut y = vec![7.0; batch * out];
        let mut ws = vec![0.0; layer.workspace_len()];
        let narrow = layer.with_row_stride(out - 1);
        assert!(matches!(
            narrow.forward(&kern, s.view(), &w_strided, None, &mut y, &mut ws),
            Err(Error::InvalidParameter {
                name: "row_stride",
                ..
            })
        ));
        assert!(matches!(
            layer.forward(&kern, s.view(), &wt, None, &mut y, &mut ws),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut g = vec![3.0; inp * out];
        assert!(
            layer
                .backward(&kern, s.view(), &dy, &mut g, None, false, &mut ws)
                .is_err()
        );
        assert!(
            layer
                .backward_transposed(&kern, x_t, &dy, &mut g, None, false, &mut ws)
                .is_err()
        );
        assert!(y.iter().all(|&v| v == 7.0) && g.iter().all(|&v| v == 3.0));
    }
}

/// Asking for more threads than cores (or for 0, all of them) gives the one-thread
/// answer; the pool never gets more workers than cores either way.
#[test]
fn any_thread_count_gives_the_same_product() {
    let mut rng = SplitMix(8);
    let (m, k, n) = (60, 90, 200);
    let s = Sparse::random(m, k, 0.2, &mut rng);
    let b = random_vec(k * n, &mut rng);
    let bt = random_vec(m * n, &mut rng);
    let kern = Kernels::detect();
    let one = |threads: usize| {
        let mut c = vec![0.0f32; m * n];
        let mut ct = vec![0.0f32; k * n];
        let b_v = MatRef::row_major(&b, k, n).unwrap();
        let bt_v = MatRef::row_major(&bt, m, n).unwrap();
        kern.sparse_gemm_threaded(
            threads,
            1.0,
            s.view(),
            b_v,
            0.0,
            MatMut::row_major(&mut c, m, n).unwrap(),
            &mut [],
        )
        .unwrap();
        kern.sparse_t_gemm_threaded(
            threads,
            1.0,
            s.view(),
            bt_v,
            0.0,
            MatMut::row_major(&mut ct, k, n).unwrap(),
            &mut [],
        )
        .unwrap();
        (c, ct)
    };
    let want = one(1);
    for threads in [0, 2, 3, 64] {
        assert!(one(threads) == want, "threads {threads}");
    }
}

/// The layer's passes over W^T (the correction row's column sums, the rank-one rows
/// of dW^T) split over threads at the lesson's size; the bits are those of one thread,
/// with or without the room to copy dy onto cache lines.
#[test]
fn sparse_linear_on_threads_gives_the_one_thread_bits() {
    let (batch, inp, out) = (50, 784, 200);
    let mut rng = SplitMix(12);
    let s = Sparse::random(batch, inp, 0.19, &mut rng);
    let wt = random_vec(inp * out, &mut rng);
    let bias = random_vec(out, &mut rng);
    let dy = random_vec(batch * out, &mut rng);
    let kern = Kernels::detect();
    // `fast`: room for dy's copy onto cache lines, which each of dy's rows, read about
    // 134 times by x_t, earns on AVX-512 on one and two threads.
    let run = |threads: usize, fast: bool| {
        let layer = SparseLinear::new(inp, out)
            .with_normalisation(0.0127, -0.4242)
            .with_threads(threads);
        let len = if fast {
            layer.fast_workspace_len(batch)
        } else {
            layer.workspace_len()
        };
        let mut ws = vec![0.0; len];
        let mut y = vec![0.0; batch * out];
        layer
            .forward(&kern, s.view(), &wt, Some(&bias), &mut y, &mut ws)
            .unwrap();
        let (mut g, mut gb) = (wt.clone(), vec![0.0; out]);
        layer
            .backward(&kern, s.view(), &dy, &mut g, Some(&mut gb), true, &mut ws)
            .unwrap();
        // By columns: 784 rows of x_t, split between the threads.
        let (mut o, mut i, mut v) = (
            vec![0; inp + 1],
            vec![0u32; s.values.len()],
            vec![0.0; s.values.len()],
        );
        let x_t = s.view().transpose_into(&mut o, &mut i, &mut v).unwrap();
        let mut g_t = vec![f32::NAN; inp * out];
        layer
            .backward_transposed(&kern, x_t, &dy, &mut g_t, None, false, &mut ws)
            .unwrap();
        (y, g, gb, g_t)
    };
    let one = run(1, false);
    for threads in [1, 2, 0] {
        assert!(
            run(threads, true) == one,
            "threads {threads}, fast workspace"
        );
    }
    assert!(run(2, false) == one && run(0, false) == one);
}

/// The forward pass that also transposes the batch (beside the product, in the last
/// thread's part) gives the forward pass's bits and the transpose, element by element,
/// on 1, 2 and 3 threads; short buffers are refused before anything is written.
#[test]
fn forward_transposing_is_the_forward_pass_and_the_transpose() {
    let (inp, out) = (784, 200);
    let mut rng = SplitMix(13);
    let wt = random_vec(inp * out, &mut rng);
    let bias = random_vec(out, &mut rng);
    let kern = Kernels::detect();
    for (batch, density) in [(200, 0.19), (7, 0.5), (1, 0.0), (64, 1.0)] {
        let s = Sparse::random(batch, inp, density, &mut rng);
        let nnz = s.values.len();
        let layer = |threads| {
            SparseLinear::new(inp, out)
                .with_normalisation(0.0127, -0.4242)
                .with_threads(threads)
        };
        let mut ws = vec![0.0; layer(1).workspace_len()];
        let mut want = vec![0.0; batch * out];
        layer(1)
            .forward(&kern, s.view(), &wt, Some(&bias), &mut want, &mut ws)
            .unwrap();
        for threads in [1, 2, 3] {
            let (mut o, mut i, mut v) = (vec![7; inp + 1], vec![7u32; nnz], vec![7.0; nnz]);
            let mut y = vec![f32::NAN; batch * out];
            let x_t = layer(threads)
                .forward_transposing(
                    &kern,
                    s.view(),
                    &wt,
                    Some(&bias),
                    &mut y,
                    &mut ws,
                    &mut o,
                    &mut i,
                    &mut v,
                )
                .unwrap();
            assert!(y == want, "batch {batch}, threads {threads}: y");
            assert_eq!((x_t.rows(), x_t.cols(), x_t.nnz()), (inp, batch, nnz));
            // Expanded, x_t is the dense batch transposed, rows in order.
            let mut dense_t = vec![0.0f32; inp * batch];
            for c in 0..inp {
                let (idx, val) = x_t.row(c);
                assert!(idx.windows(2).all(|p| p[0] < p[1]));
                for (&r, &x) in idx.iter().zip(val) {
                    dense_t[c * batch + r as usize] = x;
                }
            }
            for (e, &x) in s.dense.iter().enumerate() {
                let (r, c) = (e / inp, e % inp);
                assert_eq!(
                    dense_t[c * batch + r],
                    x,
                    "batch {batch}, threads {threads}"
                );
            }
        }
        if nnz > 0 {
            let (mut o, mut i, mut v) = (vec![7; inp + 1], vec![7u32; nnz - 1], vec![7.0; nnz]);
            let mut y = vec![5.0f32; batch * out];
            ws.fill(6.0);
            let got = layer(2).forward_transposing(
                &kern,
                s.view(),
                &wt,
                Some(&bias),
                &mut y,
                &mut ws,
                &mut o,
                &mut i,
                &mut v,
            );
            assert!(got.is_err());
            assert!(y.iter().all(|&x| x == 5.0) && ws.iter().all(|&x| x == 6.0));
            assert!(o.iter().all(|&x| x == 7) && i.iter().all(|&x| x == 7));
            assert!(v.iter().all(|&x| x == 7.0));
        }
    }
}

/// Rows in pairs that share most columns, like neighbouring pixels of a batch by
/// columns: row 2q at `density`, row 2q + 1 the same columns, each dropped with
/// probability 1/10, plus a few of its own.
fn similar_pairs(rows: usize, cols: usize, density: f64, rng: &mut SplitMix) -> Sparse {
    let mut s = Sparse::random(rows, cols, density, rng);
    for i in (1..rows).step_by(2) {
        for j in 0..cols {
            let above = s.dense[(i - 1) * cols + j] != 0.0;
            let u = rng.uniform(0.0, 1.0);
            let lit = if above { u < 0.9 } else { u < density / 10.0 };
            s.dense[i * cols + j] = if lit {
                rng.uniform(-2.0, 2.0) as f32
            } else {
                0.0
            };
        }
    }
    let (mut offsets, mut indices, mut values) = (vec![0], vec![], vec![]);
    for i in 0..rows {
        for j in 0..cols {
            let v = s.dense[i * cols + j];
            if v != 0.0 {
                indices.push(j as u32);
                values.push(v);
            }
        }
        offsets.push(indices.len());
    }
    (s.offsets, s.indices, s.values) = (offsets, indices, values);
    s
}

/// Row i of alpha * S * B + beta * C computed alone: a one-row product, which the
/// kernels never pair.
fn one_row(
    kern: &Kernels,
    s: &Sparse,
    i: usize,
    (b, n): (&[f32], usize),
    (alpha, beta): (f32, f32),
    c_row: &[f32],
) -> Vec<f32> {
    let (lo, hi) = (s.offsets[i], s.offsets[i + 1]);
    let offsets = [0, hi - lo];
    let row = CsrRef::new(1, s.cols, &offsets, &s.indices[lo..hi], &s.values[lo..hi]).unwrap();
    let mut out = c_row.to_vec();
    let bv = MatRef::row_major(b, s.cols, n).unwrap();
    let cv = MatMut::row_major(&mut out, 1, n).unwrap();
    kern.sparse_gemm(alpha, row, bv, beta, cv, &mut []).unwrap();
    out
}

#[test]
fn rows_taken_in_pairs_keep_each_rows_bits() {
    // The row form takes consecutive rows that share most columns two at a time over
    // the union of their columns (`src/sparse/pairs.rs`), adding exact zeros for the
    // row that lacks a column. Each row must have the bits it has alone, and the
    // definition's value; an odd row count leaves a row without a partner, 37 and 1
    // columns a partial vector, beta != 0 and alpha != 1 the other stores, and an
    // infinity in B (in a column only the first row of a pair has) must not reach the
    // second row as 0 * inf.
    let mut rng = SplitMix(31);
    for (m, k, n, density) in [(151, 784, 200, 0.19), (40, 300, 37, 0.3), (7, 64, 1, 0.5)] {
        let s = similar_pairs(m, k, density, &mut rng);
        let mut b = random_vec(k * n, &mut rng);
        let c0 = random_vec(m * n, &mut rng);
        for infinite in [false, true] {
            if infinite {
                // Row 0's first column that row 1 lacks.
                let (r0, r1) = (
                    &s.indices[s.offsets[0]..s.offsets[1]],
                    &s.indices[s.offsets[1]..s.offsets[2]],
                );
                let p = *r0
                    .iter()
                    .find(|p| !r1.contains(p))
                    .expect("row 1 lacks a column of row 0");
                b[p as usize * n] = f32::INFINITY;
            }
            for kern in kernels() {
                let runs = [(1.0f32, 0.0f32), (-0.5, 0.0), (1.0, 0.5)]
                    .into_iter()
                    .flat_map(|ab| [(ab, false), (ab, true)]);
                for ((alpha, beta), col_major) in runs {
                    let bv = MatRef::row_major(&b, k, n).unwrap();
                    // A column-major C takes the stores element by element; it is read
                    // back into row-major order.
                    let mut c = c0.clone();
                    if col_major {
                        c = (0..m * n).map(|x| c0[(x % m) * n + x / m]).collect();
                    }
                    let cv = if col_major {
                        MatMut::new(&mut c, m, n, 1, m).unwrap()
                    } else {
                        MatMut::row_major(&mut c, m, n).unwrap()
                    };
                    kern.sparse_gemm(alpha, s.view(), bv, beta, cv, &mut [])
                        .unwrap();
                    if col_major {
                        c = (0..m * n).map(|x| c[(x % n) * m + x / n]).collect();
                    }
                    let what = format!(
                        "{} {m}x{n}x{k}, alpha {alpha}, beta {beta}, inf {infinite}, \
                         column-major C {col_major}",
                        kern.backend()
                    );
                    for i in 0..m {
                        let alone =
                            one_row(&kern, &s, i, (&b, n), (alpha, beta), &c0[i * n..][..n]);
                        for (j, (&x, &y)) in c[i * n..][..n].iter().zip(&alone).enumerate() {
                            assert_eq!(
                                x.to_bits(),
                                y.to_bits(),
                                "{what}: ({i}, {j}): {x} in the product, {y} alone"
                            );
                        }
                    }
                    if infinite {
                        assert!(
                            c[n..2 * n].iter().all(|x| x.is_finite()),
                            "{what}: row 1 took row 0's infinity"
                        );
                    } else {
                        let (want, bound) =
                            reference(alpha, &s.dense, m, k, &|p, j| b[p * n + j], n, beta, &c0);
                        assert_close(&what, &c, &want, &bound);
                    }
                }
            }
        }
    }
}

#[test]
fn a_layers_forward_on_similar_rows_keeps_each_rows_bits() {
    // `SparseLinear::forward` starts each output row from b + shift * colsum(W^T), a
    // row base. A batch whose consecutive rows share most pixels is taken in pairs
    // (with this seed rows 0 and 1 pay, so the call pairs); each output row must have
    // the bits of the same row's forward pass alone, which takes the row form, and the
    // definition's value. Both forms store through `store_row`, so a wrong row base
    // there is caught by the f64 check, not the bits.
    let mut rng = SplitMix(37);
    let (batch, inp, out) = (33, 784, 200);
    let x = similar_pairs(batch, inp, 0.19, &mut rng);
    let w_t = random_vec(inp * out, &mut rng);
    let bias = random_vec(out, &mut rng);
    let (scale, shift) = (0.0127f32, -0.4242f32);
    let layer = SparseLinear::new(inp, out).with_normalisation(scale, shift);
    let mut ws = vec![0.0; layer.workspace_len()];
    for kern in kernels() {
        let mut y = vec![f32::NAN; batch * out];
        layer
            .forward(&kern, x.view(), &w_t, Some(&bias), &mut y, &mut ws)
            .unwrap();
        for i in 0..batch {
            let (lo, hi) = (x.offsets[i], x.offsets[i + 1]);
            let offsets = [0, hi - lo];
            let row = CsrRef::new(1, inp, &offsets, &x.indices[lo..hi], &x.values[lo..hi]).unwrap();
            let mut alone = vec![f32::NAN; out];
            layer
                .forward(&kern, row, &w_t, Some(&bias), &mut alone, &mut ws)
                .unwrap();
            for (j, (&got, &want)) in y[i * out..][..out].iter().zip(&alone).enumerate() {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{}: ({i}, {j}): {got} in the batch, {want} alone",
                    kern.backend()
                );
            }
        }
        // The definition, in f64: scale * x W^T + b + shift * colsum(W^T).
        let (want, bound) = reference(
            scale,
            &x.dense,
            batch,
            inp,
            &|p, j| w_t[p * out + j],
            out,
            0.0,
            &[],
        );
        let (colsum, colsum_bound) = reference(
            shift,
            &vec![1.0; inp],
            1,
            inp,
            &|p, j| w_t[p * out + j],
            out,
            0.0,
            &[],
        );
        let want: Vec<f64> = want
            .iter()
            .enumerate()
            .map(|(x, w)| w + colsum[x % out] + f64::from(bias[x % out]))
            .collect();
        // Both products' bounds, and a few roundings of the three terms' sum.
        let bound: Vec<f64> = bound
            .iter()
            .zip(&want)
            .enumerate()
            .map(|(x, (b, w))| {
                let terms = w.abs() + f64::from(bias[x % out].abs()) + colsum[x % out].abs();
                b + colsum_bound[x % out] + 4.0 * f64::from(f32::EPSILON) * terms
            })
            .collect();
        assert_close(kern.backend().name(), &y, &want, &bound);
    }
}

#[test]
fn the_last_u32_column_is_a_column_for_the_pairs() {
    // u32::MAX is a valid column index when S has 2^32 columns, and no kernel may take
    // it for a marker. These two rows do not pay as a pair (2 cells for 3 entries), so
    // this is the row form's case; the pairs' merge is tested on u32::MAX directly
    // (`merge_pair_is_the_union_of_two_rows` in src/sparse/pairs.rs), since rows that
    // did pair would have B's 2^32 rows checked finite first. B repeats one row through
    // a zero row stride.
    let b = [2.0f32];
    let (offsets, indices, values) = ([0usize, 2, 3], [0u32, u32::MAX, 0], [1.0f32, 3.0, 5.0]);
    let s = CsrRef::new(2, 1 << 32, &offsets, &indices, &values).unwrap();
    for kern in kernels() {
        let bv = MatRef::new(&b, 1 << 32, 1, 0, 1).unwrap();
        let mut c = [f32::NAN; 2];
        kern.sparse_gemm(
            1.0,
            s,
            bv,
            0.0,
            MatMut::row_major(&mut c, 2, 1).unwrap(),
            &mut [],
        )
        .unwrap();
        assert_eq!(c, [8.0, 10.0], "{}", kern.backend());
    }
}

/// The break-even densities follow the CPU: Intel's AVX-512 cores take the dense GEMM
/// from a lower density than the rest. Checked against the vendor read here with
/// `cpuid`, and by the bits: above the density, with room, `sparse_gemm` gives the
/// dense GEMM's bits on the expanded S (784 deep: the GEMM adds its depth blocks'
/// sums, the sparse kernel carries one sum across them).
#[test]
fn the_break_even_densities_follow_the_cpu() {
    #[cfg(target_arch = "x86_64")]
    let intel = {
        // SAFETY: cpuid leaf 0 exists on every x86_64 CPU (a safe function in newer
        // Rust, hence the allow).
        #[allow(unused_unsafe)]
        let l0 = unsafe { std::arch::x86_64::__cpuid(0) };
        let name: Vec<u8> = [l0.ebx, l0.edx, l0.ecx]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        name == b"GenuineIntel"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let intel = false;
    let mut rng = SplitMix(37);
    let (m, k, n) = (40, 784, 48);
    for kern in kernels() {
        let wide = kern.backend() == mlp_kernels::Backend::Avx512 && intel;
        let want = if wide {
            (
                mlp_kernels::SPARSE_BREAK_EVEN_DENSITY_INTEL_AVX512,
                mlp_kernels::SPARSE_T_BREAK_EVEN_DENSITY_INTEL_AVX512,
            )
        } else {
            (
                mlp_kernels::SPARSE_BREAK_EVEN_DENSITY,
                mlp_kernels::SPARSE_T_BREAK_EVEN_DENSITY,
            )
        };
        let got = kern.sparse_break_even_densities();
        assert_eq!(got, want, "{}", kern.backend());
        // Well above the forward form's density (a tenth of the rows are empty, and 40
        // rows vary): the dense path, given the room.
        let s = Sparse::random(m, k, (got.0 + 0.1) / 0.9, &mut rng);
        assert!(s.view().density() > got.0, "{}", s.view().density());
        let b = random_vec(k * n, &mut rng);
        let bv = MatRef::row_major(&b, k, n).unwrap();
        let mut via_sparse = vec![0.0f32; m * n];
        let mut ws = vec![0.0f32; sparse_gemm_workspace_len(m, n, k)];
        let cv = MatMut::row_major(&mut via_sparse, m, n).unwrap();
        kern.sparse_gemm(1.0, s.view(), bv, 0.0, cv, &mut ws)
            .unwrap();
        let mut dense = vec![0.0f32; m * n];
        let mut ws = vec![0.0f32; gemm_workspace_len(m, n, k)];
        let av = MatRef::row_major(&s.dense, m, k).unwrap();
        let cv = MatMut::row_major(&mut dense, m, n).unwrap();
        kern.gemm(1.0, av, bv, 0.0, cv, &mut ws).unwrap();
        assert!(
            via_sparse
                .iter()
                .zip(&dense)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{}: not the dense GEMM's bits at density {}",
            kern.backend(),
            s.view().density()
        );
    }
}
