//! GEMM against a naive f64 product, over every transpose, every tail of every tile,
//! padded strides, alpha and beta, on every backend.

mod common;
use common::{SplitMix, kernels};
use mlp_kernels::{Error, Kernels, MatMut, MatRef, gemm_workspace_len};
use proptest::prelude::*;

/// A matrix stored with padding: row-major with `ld >= cols`, or column-major with
/// `ld >= rows` when `trans`, so that the view has non-unit strides either way.
struct Stored {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl Stored {
    fn new(rng: &mut SplitMix, rows: usize, cols: usize, trans: bool, pad: usize) -> Stored {
        let (rs, cs, len) = if trans {
            (1, rows + pad, (rows + pad) * cols.max(1))
        } else {
            (cols + pad, 1, (cols + pad) * rows.max(1))
        };
        let data = (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        Stored {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
    fn view(&self) -> MatRef<'_> {
        MatRef::new(&self.data, self.rows, self.cols, self.rs, self.cs).unwrap()
    }
}

/// alpha * A B + beta * C in f64 with BLAS's beta = 0 rule, and the bound on the f32
/// result: k * eps * sum |a||b| scaled, plus the beta term's rounding.
fn reference(alpha: f32, a: &Stored, b: &Stored, beta: f32, c: &Stored) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for i in 0..a.rows {
        for j in 0..b.cols {
            let (mut dot, mut mag) = (0.0f64, 0.0f64);
            for p in 0..a.cols {
                let t = a.at(i, p) as f64 * b.at(p, j) as f64;
                dot += t;
                mag += t.abs();
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c.at(i, j) as f64
            };
            let val = alpha as f64 * dot + old;
            let bound = 2.0
                * (a.cols as f64 + 2.0)
                * f32::EPSILON as f64
                * (alpha.abs() as f64 * mag + old.abs())
                + 1e-30;
            out.push((val, bound));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check(
    k: &Kernels,
    m: usize,
    n: usize,
    kk: usize,
    ta: bool,
    tb: bool,
    tc: bool,
    pad: usize,
    alpha: f32,
    beta: f32,
    seed: u64,
) {
    let mut rng = SplitMix(seed);
    // Stored so that the view is op(X): transposed storage read through a view.
    let a = Stored::new(&mut rng, m, kk, ta, pad);
    let b = Stored::new(&mut rng, kk, n, tb, pad);
    let mut c = Stored::new(&mut rng, m, n, tc, pad);
    let want = reference(alpha, &a, &b, beta, &c);
    let mut ws = vec![f32::NAN; gemm_workspace_len(m, n, kk)];
    let (rs, cs) = (c.rs, c.cs);
    let cv = MatMut::new(&mut c.data, m, n, rs, cs).unwrap();
    k.gemm(alpha, a.view(), b.view(), beta, cv, &mut ws)
        .unwrap();
    for i in 0..m {
        for j in 0..n {
            let (v, bound) = want[i * n + j];
            let got = c.at(i, j) as f64;
            assert!(
                (got - v).abs() <= bound,
                "{} m{m} n{n} k{kk} ta{ta} tb{tb} tc{tc} pad{pad} alpha{alpha} beta{beta}: C[{i},{j}] = {got}, want {v} +- {bound}",
                k.backend()
            );
        }
    }
    // Padding of C is untouched: compare with a fresh copy of the same seed.
    let mut rng = SplitMix(seed);
    let _ = Stored::new(&mut rng, m, kk, ta, pad);
    let _ = Stored::new(&mut rng, kk, n, tb, pad);
    let fresh = Stored::new(&mut rng, m, n, tc, pad);
    for (idx, (x, y)) in c.data.iter().zip(&fresh.data).enumerate() {
        let (i, j) = if tc {
            (idx % c.cs, idx / c.cs)
        } else {
            (idx / c.rs, idx % c.rs)
        };
        if i >= m || j >= n {
            assert_eq!(x.to_bits(), y.to_bits(), "padding at {idx} was written");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]
    #[test]
    fn matches_f64_reference(
        m in 1usize..70, n in 1usize..70, kk in 1usize..70,
        ta: bool, tb: bool, tc: bool, pad in 0usize..3,
        alpha in prop_oneof![Just(1.0f32), Just(-0.5f32), -2.0f32..2.0],
        beta in prop_oneof![Just(0.0f32), Just(1.0f32), -2.0f32..2.0],
        seed: u64,
    ) {
        for k in kernels() {
            check(&k, m, n, kk, ta, tb, tc, pad, alpha, beta, seed);
        }
    }
}

#[test]
fn every_tail_of_every_tile() {
    // m and n across two full tiles of every backend and their tails (rows as 8, 4,
    // 2 and 1-row tiles), k across the unrolled steps; each way a tile is stored
    // (alpha 1 or not, beta 0 or not).
    for k in kernels() {
        for m in [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 25] {
            for n in [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 65, 72] {
                for (alpha, beta) in [(1.0, 0.0), (-0.5, 0.0), (1.0, 0.75), (2.0, -1.5)] {
                    check(
                        &k,
                        m,
                        n,
                        3,
                        false,
                        false,
                        false,
                        0,
                        alpha,
                        beta,
                        (m * 100 + n) as u64,
                    );
                }
            }
        }
    }
}

/// A last panel of up to 8 columns is computed beside the panel before it on
/// AVX-512 (`tile_with_edge`); each element must still be the same FMAs in the same
/// order, so the product has the bits of the products of its column blocks alone.
#[test]
fn a_narrow_last_panel_keeps_the_bits_of_its_columns_alone() {
    let mut rng = SplitMix(41);
    for k in kernels() {
        // B in place (few rows of A) and packed (many), rows of every tile height;
        // depths that leave 0 to 3 steps after the assembly tiles' blocks of steps.
        for (m, kk) in [(13, 40), (13, 41), (13, 43), (100, 300)] {
            for n in [33, 38, 40, 72, 200] {
                let a = Stored::new(&mut rng, m, kk, false, 0);
                let b = Stored::new(&mut rng, kk, n, false, 0);
                let c0: Vec<f32> = (0..m * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
                let (alpha, beta) = (0.5, -1.25);
                let mut whole = c0.clone();
                let mut ws = vec![0.0; gemm_workspace_len(m, n, kk)];
                k.gemm(
                    alpha,
                    a.view(),
                    b.view(),
                    beta,
                    MatMut::row_major(&mut whole, m, n).unwrap(),
                    &mut ws,
                )
                .unwrap();
                // Columns in blocks of 8, each its own product.
                let mut blocks = c0.clone();
                for j0 in (0..n).step_by(8) {
                    let w = 8.min(n - j0);
                    let bj = MatRef::new(&b.data[j0..], kk, w, n, 1).unwrap();
                    let cj = MatMut::new(&mut blocks[j0..], m, w, n, 1).unwrap();
                    k.gemm(alpha, a.view(), bj, beta, cj, &mut ws).unwrap();
                }
                for (e, (x, y)) in whole.iter().zip(&blocks).enumerate() {
                    assert_eq!(
                        x.to_bits(),
                        y.to_bits(),
                        "{} {m}x{n}x{kk}: C[{}, {}]",
                        k.backend(),
                        e / n,
                        e % n
                    );
                }
            }
        }
    }
}

/// x.W^T with more columns than rows is computed as W.x^T into the workspace and
/// copied back (`src/gemm/transposed.rs`); each element must still be the same FMAs
/// in the same order, so the bits are those of the same product with W^T stored
/// row-major, which runs directly. Beta 0 must not read C (NaN there), and the f64
/// bound holds.
#[test]
fn a_transposed_b_keeps_the_bits_of_the_direct_product() {
    let mut rng = SplitMix(43);
    for k in kernels() {
        // The first four take the route on AVX-512 (`transposed.rs`'s own test of
        // `applies` says so; the other backends run them directly); the last two run
        // directly (m > n; rows not in whole vectors), as controls.
        for (m, n, kk) in [
            (64, 200, 784),
            (16, 200, 64),
            (32, 203, 65),
            (48, 100, 300),
            (64, 10, 200),
            (20, 200, 100),
        ] {
            let x = Stored::new(&mut rng, m, kk, false, 0);
            // W, n x kk row-major, viewed as W^T; and W^T stored row-major.
            let w = Stored::new(&mut rng, kk, n, true, 0);
            let wt: Vec<f32> = (0..kk * n).map(|e| w.at(e / n, e % n)).collect();
            let wt = MatRef::row_major(&wt, kk, n).unwrap();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let mut ws = vec![f32::NAN; gemm_workspace_len(m, n, kk)];
            for (alpha, beta) in [(1.0, 0.0), (1.0, 1.0), (0.5, -1.25)] {
                let (mut route, mut direct) = (c0.clone(), c0.clone());
                if beta == 0.0 {
                    route.fill(f32::NAN);
                }
                let c = MatMut::row_major(&mut route, m, n).unwrap();
                k.gemm(alpha, x.view(), w.view(), beta, c, &mut ws).unwrap();
                let c = MatMut::row_major(&mut direct, m, n).unwrap();
                k.gemm(alpha, x.view(), wt, beta, c, &mut ws).unwrap();
                for (e, (r, d)) in route.iter().zip(&direct).enumerate() {
                    assert_eq!(
                        r.to_bits(),
                        d.to_bits(),
                        "{} {m}x{n}x{kk} alpha {alpha} beta {beta}: C[{}, {}]",
                        k.backend(),
                        e / n,
                        e % n
                    );
                }
            }
            check(&k, m, n, kk, false, true, false, 1, 0.5, -1.25, 7);
        }
    }
}

#[test]
fn large_shapes_cross_every_block() {
    // Bigger than KC, MC and NR in each direction, with transposes.
    for k in kernels() {
        check(&k, 513, 257, 1031, false, false, false, 0, 1.0, 0.0, 1);
        check(&k, 300, 70, 600, true, true, false, 1, 0.5, 2.0, 2);
        check(&k, 1, 200, 784, false, false, false, 0, 1.0, 0.0, 3);
        check(&k, 1, 200, 784, false, true, false, 0, 1.0, 1.0, 4);
        check(&k, 200, 1, 784, false, false, true, 0, 1.0, 0.0, 5);
    }
}

#[test]
fn beta_zero_never_reads_c() {
    for k in kernels() {
        for (m, n, kk) in [(5, 7, 3), (1, 40, 9), (30, 33, 0), (20, 20, 300)] {
            let a = vec![1.0f32; m * kk];
            let b = vec![1.0f32; kk * n];
            let mut c = vec![f32::NAN; m * n];
            let mut ws = vec![0.0; gemm_workspace_len(m, n, kk)];
            let cv = MatMut::row_major(&mut c, m, n).unwrap();
            k.gemm(
                1.0,
                MatRef::row_major(&a, m, kk).unwrap(),
                MatRef::row_major(&b, kk, n).unwrap(),
                0.0,
                cv,
                &mut ws,
            )
            .unwrap();
            assert!(
                c.iter().all(|&x| x == kk as f32),
                "{} {m}x{n}x{kk}",
                k.backend()
            );
        }
    }
}

#[test]
fn alpha_zero_or_k_zero_only_scales_c() {
    let k = Kernels::detect();
    let a = [f32::NAN; 6];
    let b = [f32::NAN; 6];
    let mut c = [1.0f32, 2.0, 3.0, 4.0];
    let mut ws = vec![0.0; gemm_workspace_len(2, 2, 3)];
    let (av, bv) = (
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&b, 3, 2).unwrap(),
    );
    k.gemm(
        0.0,
        av,
        bv,
        2.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        &mut ws,
    )
    .unwrap();
    assert_eq!(c, [2.0, 4.0, 6.0, 8.0]);
    let e: [f32; 0] = [];
    let (av, bv) = (
        MatRef::row_major(&e, 2, 0).unwrap(),
        MatRef::row_major(&e, 0, 2).unwrap(),
    );
    k.gemm(
        1.0,
        av,
        bv,
        0.5,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        &mut ws,
    )
    .unwrap();
    assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
    // m = 0 or n = 0: nothing to do, nothing read.
    let mut none: [f32; 0] = [];
    let av = MatRef::row_major(&e, 0, 3).unwrap();
    let bv = MatRef::row_major(&b, 3, 2).unwrap();
    k.gemm(
        1.0,
        av,
        bv,
        1.0,
        MatMut::row_major(&mut none, 0, 2).unwrap(),
        &mut [],
    )
    .unwrap();
}

#[test]
fn errors_before_any_write() {
    let k = Kernels::detect();
    let a = [1.0f32; 6];
    let mut c = [7.0f32; 4];
    let mut ws = vec![0.0; gemm_workspace_len(2, 2, 3)];
    assert!(matches!(
        MatRef::row_major(&a, 2, 4),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        MatRef::new(&a, 2, 3, 4, 1),
        Err(Error::ShapeMismatch {
            expected: 7,
            found: 6,
            ..
        })
    ));
    assert!(MatRef::new(&a, usize::MAX, 2, usize::MAX, 1).is_err());
    assert!(
        matches!(
            MatMut::new(&mut c, 2, 2, 1, 1),
            Err(Error::InvalidParameter { .. })
        ),
        "overlapping C"
    );
    assert!(MatMut::new(&mut c, 2, 2, 0, 1).is_err());
    let av = MatRef::row_major(&a, 2, 3).unwrap();
    let bad_b = MatRef::row_major(&a, 2, 3).unwrap();
    let r = k.gemm(
        1.0,
        av,
        bad_b,
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        &mut ws,
    );
    assert!(matches!(r, Err(Error::ShapeMismatch { .. })));
    let bv = MatRef::row_major(&a, 3, 2).unwrap();
    let r = k.gemm(
        1.0,
        av,
        bv,
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        &mut ws[..3],
    );
    assert!(matches!(r, Err(Error::WorkspaceTooSmall { .. })));
    let mut c3 = [7.0f32; 6];
    let r = k.gemm(
        1.0,
        av,
        bv,
        0.0,
        MatMut::row_major(&mut c3, 3, 2).unwrap(),
        &mut ws,
    );
    assert!(matches!(r, Err(Error::ShapeMismatch { .. })));
    assert_eq!(c, [7.0; 4]);
    assert_eq!(c3, [7.0; 6]);
}

#[test]
fn threaded_workspace_counts_the_parts_that_run() {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let per = gemm_workspace_len(200, 200, 784);
    // 200 columns are 13 vectors of 16: at most 13 parts, and never more than cores.
    for threads in [1, 2, 3, 64, 0] {
        let want = if threads == 0 {
            cores
        } else {
            threads.min(cores)
        }
        .min(13);
        assert_eq!(
            mlp_kernels::gemm_threaded_workspace_len(threads, 200, 200, 784),
            per * want,
            "threads {threads}"
        );
    }
    // Nothing to multiply: one part's worth (none).
    assert_eq!(mlp_kernels::gemm_threaded_workspace_len(8, 0, 200, 784), 0);
}

#[test]
fn threaded_matches_single_thread() {
    if !common::threads_available("threaded_matches_single_thread") {
        return;
    }
    let mut rng = SplitMix(9);
    // (13, 5, 300) and (25, 5, 300): cut by rows, a last part of one row would take
    // the one-row path, which sums all 300 of the depth in one chain where the
    // blocked path sums two blocks of 150. (64, 200, 784): each part of x.W^T runs
    // as W.x^T (`src/gemm/transposed.rs`).
    for (m, n, kk) in [
        (200, 784, 200),
        (64, 200, 784),
        (300, 40, 50),
        (7, 5, 3),
        (64, 64, 64),
        (13, 5, 300),
        (25, 5, 300),
    ] {
        let a = Stored::new(&mut rng, m, kk, false, 0);
        let b = Stored::new(&mut rng, kk, n, true, 0);
        for k in kernels() {
            let mut c1 = vec![0.0f32; m * n];
            let mut c2 = vec![0.0f32; m * n];
            let per = gemm_workspace_len(m, n, kk);
            let mut ws = vec![0.0; per * 3];
            k.gemm(
                1.0,
                a.view(),
                b.view(),
                0.0,
                MatMut::row_major(&mut c1, m, n).unwrap(),
                &mut ws,
            )
            .unwrap();
            for threads in [2, 3] {
                k.gemm_threaded(
                    threads,
                    1.0,
                    a.view(),
                    b.view(),
                    0.0,
                    MatMut::row_major(&mut c2, m, n).unwrap(),
                    &mut ws,
                )
                .unwrap();
                assert_eq!(c1, c2, "{} {m}x{n}x{kk} threads {threads}", k.backend());
            }
            // One float short of what the parts that run need is refused.
            let need = mlp_kernels::gemm_threaded_workspace_len(2, m, n, kk);
            let r = k.gemm_threaded(
                2,
                1.0,
                a.view(),
                b.view(),
                0.0,
                MatMut::row_major(&mut c2, m, n).unwrap(),
                &mut ws[..need - 1],
            );
            assert_eq!(
                r,
                Err(Error::WorkspaceTooSmall {
                    needed: need,
                    found: need - 1
                })
            );
        }
    }
}

/// A and B with two non-unit strides, and A with a 4 KiB row stride (which the GEMM
/// packs), against the f64 product.
/// C with neither stride 1 (the store path that writes element by element), across
/// the tiles' tails and each way a tile is stored; the floats between C's elements
/// are left as they were.
#[test]
fn c_with_two_non_unit_strides() {
    let mut rng = SplitMix(33);
    for k in kernels() {
        for m in [1, 2, 3, 9, 10, 13] {
            for n in [1, 7, 16, 17, 33] {
                for (alpha, beta) in [(1.0, 0.0), (-0.5, 0.0), (1.0, 0.75), (2.0, -1.5)] {
                    let kk = 3;
                    let a = Stored::new(&mut rng, m, kk, false, 0);
                    let b = Stored::new(&mut rng, kk, n, false, 0);
                    let (rs, cs) = (2 * n + 1, 2);
                    let len = (m - 1) * rs + (n - 1) * cs + 1;
                    let mut c = Stored {
                        data: (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect(),
                        rows: m,
                        cols: n,
                        rs,
                        cs,
                    };
                    let before = c.data.clone();
                    let want = reference(alpha, &a, &b, beta, &c);
                    let mut ws = vec![0.0; gemm_workspace_len(m, n, kk)];
                    let cv = MatMut::new(&mut c.data, m, n, rs, cs).unwrap();
                    k.gemm(alpha, a.view(), b.view(), beta, cv, &mut ws)
                        .unwrap();
                    let what = format!("{} {m}x{n} alpha {alpha} beta {beta}", k.backend());
                    for i in 0..m {
                        for j in 0..n {
                            let (v, bound) = want[i * n + j];
                            let got = f64::from(c.at(i, j));
                            assert!(
                                (got - v).abs() <= bound,
                                "{what}: C[{i},{j}] {got} want {v}"
                            );
                        }
                    }
                    for (e, (x, y)) in c.data.iter().zip(&before).enumerate() {
                        let (i, j) = (e / rs, e % rs);
                        if j % cs != 0 || j / cs >= n || i >= m {
                            assert_eq!(x.to_bits(), y.to_bits(), "{what}: {e} is not C's");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn unusual_strides() {
    let mut rng = SplitMix(21);
    // A with rows 4 KiB apart is packed by 8 x 8 transposes: panels of 12, 10 and 6
    // rows on AVX-512 (blocks at rows 0 and 4, 0 and 2, none), depths that 8 does not
    // divide, a second depth block (300 = 2 x 150) and a second row block (490 rows).
    for &(m, n, kk, ars, acs, brs, bcs) in &[
        (30, 37, 50, 1024, 1, 40, 1),
        (34, 37, 300, 1024, 1, 40, 1),
        (490, 5, 17, 1024, 1, 5, 1),
        (13, 20, 9, 2 * 9 + 1, 2, 3, 3 * 9 + 2),
        (25, 70, 33, 1, 25, 2, 2 * 33),
    ] {
        let a: Vec<f32> = (0..(m - 1) * ars + (kk - 1) * acs + 1)
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect();
        let b: Vec<f32> = (0..(kk - 1) * brs + (n - 1) * bcs + 1)
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect();
        for k in kernels() {
            let mut c = vec![0.0f32; m * n];
            let mut ws = vec![0.0; gemm_workspace_len(m, n, kk)];
            let av = MatRef::new(&a, m, kk, ars, acs).unwrap();
            let bv = MatRef::new(&b, kk, n, brs, bcs).unwrap();
            k.gemm(
                1.0,
                av,
                bv,
                0.0,
                MatMut::row_major(&mut c, m, n).unwrap(),
                &mut ws,
            )
            .unwrap();
            for i in 0..m {
                for j in 0..n {
                    let (mut dot, mut mag) = (0.0f64, 0.0f64);
                    for p in 0..kk {
                        let t = a[i * ars + p * acs] as f64 * b[p * brs + j * bcs] as f64;
                        dot += t;
                        mag += t.abs();
                    }
                    let bound = 2.0 * (kk as f64 + 2.0) * f32::EPSILON as f64 * mag + 1e-30;
                    assert!(
                        (c[i * n + j] as f64 - dot).abs() <= bound,
                        "{} {m}x{n}x{kk} [{i},{j}]",
                        k.backend()
                    );
                }
            }
        }
    }
}

/// Inputs at the edges of usize, which must give errors or do nothing, never panic.
#[test]
fn extreme_shapes_and_strides_do_not_panic() {
    let k = Kernels::detect();
    assert!(MatRef::new(&[], 2, 1, usize::MAX, 0).is_err());
    assert!(MatRef::new(&[1.0], 1, 2, 0, usize::MAX).is_err());
    // An empty C with absurd strides, on many threads: nothing to do.
    let e: [f32; 0] = [];
    let mut none: [f32; 0] = [];
    let c = MatMut::new(&mut none, 0, 64, 1, usize::MAX / 2).unwrap();
    let a = MatRef::new(&e, 0, 0, 0, 0).unwrap();
    let b = MatRef::new(&e, 0, 64, 0, 0).unwrap();
    k.gemm_threaded(4, 1.0, a, b, 0.0, c, &mut []).unwrap();
    // k = 0 on a huge thread count scales C without splitting or spawning.
    let mut c = vec![2.0f32; 1000];
    let (a, b) = (
        MatRef::new(&e, 1, 0, 0, 0).unwrap(),
        MatRef::new(&e, 0, 1000, 0, 0).unwrap(),
    );
    k.gemm_threaded(
        usize::MAX,
        1.0,
        a,
        b,
        0.5,
        MatMut::row_major(&mut c, 1, 1000).unwrap(),
        &mut [],
    )
    .unwrap();
    assert!(c.iter().all(|&x| x == 1.0));
    // A huge thread count with work to do pays only for the parts that run: a 2 x 2
    // product is one part, whose workspace is still more than 64 floats.
    assert_eq!(
        mlp_kernels::gemm_threaded_workspace_len(usize::MAX, 2, 2, 2),
        gemm_workspace_len(2, 2, 2)
    );
    assert!(gemm_workspace_len(2, 2, 2) > 64);
    let x = [1.0f32; 4];
    let r = k.gemm_threaded(
        usize::MAX,
        1.0,
        MatRef::row_major(&x, 2, 2).unwrap(),
        MatRef::row_major(&x, 2, 2).unwrap(),
        0.0,
        MatMut::row_major(&mut c[..4], 2, 2).unwrap(),
        &mut [0.0; 64],
    );
    assert!(matches!(r, Err(Error::WorkspaceTooSmall { .. })));
    // A linear layer whose sizes overflow is an error.
    let layer = mlp_kernels::Linear::new(1, usize::MAX);
    let grads = mlp_kernels::LinearGrads {
        weight: &mut [],
        bias: None,
        input: None,
        accumulate: false,
    };
    assert!(
        layer
            .backward(&k, &[0.0; 2], &[], &[], grads, &mut [])
            .is_err()
    );
}

#[test]
fn linear_checks_everything_before_it_writes_and_names_the_argument() {
    use mlp_kernels::{Linear, LinearGrads};
    let k = Kernels::detect();
    let layer = Linear::new(3, 2);
    let (x, w, b) = ([1.0f32; 6], [0.5f32; 6], [0.25f32; 2]);
    let mut y = [9.0f32; 4];
    let short = layer.workspace_len(2) - 1;
    let r = layer.forward(&k, &x, &w, Some(&b), &mut y, &mut vec![0.0; short]);
    assert!(matches!(r, Err(Error::WorkspaceTooSmall { .. })), "{r:?}");
    assert_eq!(y, [9.0; 4], "y written before the workspace was checked");
    let mut ws = vec![0.0; layer.workspace_len(2)];
    let r = layer.forward(&k, &x, &w[..5], Some(&b), &mut y, &mut ws);
    assert!(
        matches!(r, Err(Error::ShapeMismatch { what, expected: 6, found: 5 }) if what.starts_with("weight")),
        "{r:?}"
    );
    let mut gw = [0.0f32; 6];
    let grads = LinearGrads {
        weight: &mut gw,
        bias: None,
        input: None,
        accumulate: false,
    };
    let r = layer.backward(&k, &x, &w[..4], &[1.0; 4], grads, &mut ws);
    assert!(
        matches!(r, Err(Error::ShapeMismatch { what, .. }) if what.starts_with("weight")),
        "{r:?}"
    );
    assert_eq!(y, [9.0; 4]);
    // The happy path still computes y = x W^T + b.
    layer
        .forward(&k, &x, &w, Some(&b), &mut y, &mut ws)
        .unwrap();
    assert_eq!(y, [1.75; 4]);
}

#[test]
fn an_empty_matrix_never_overlaps() {
    let mut none: [f32; 0] = [];
    for (rows, cols) in [(0, 5), (5, 0), (0, 0)] {
        assert!(
            MatMut::new(&mut none, rows, cols, 0, 0).is_ok(),
            "{rows}x{cols}"
        );
    }
    let mut one = [0.0f32; 4];
    assert!(
        MatMut::new(&mut one, 2, 2, 0, 0).is_err(),
        "2x2 on one place overlaps"
    );
}
