//! Fuzzes `CsrRef::new` on raw, possibly broken CSR parts, and the sparse products on
//! what it accepts, against a naive f64 product.
//!
//! Input: a byte each for the backend, m, k, n (1..=24), the form (S B, S B^T view,
//! S^T B, workspace for the dense path or none) and beta; then m + 1 offsets, then
//! column indices, then small-integer values (so that the f64 reference is exact and
//! f32 is within the rounding of the sums). Asserts: no panic; `CsrRef::new` accepts
//! only sorted, in-range, duplicate-free rows; the products agree with the reference;
//! beta = 0 ignores the NaN planted in C; `transpose_into` is the transpose; and
//! `SparseLinear`'s weight gradient by rows (`backward`) and by columns
//! (`backward_transposed`) are both the f64 definition, exactly (small integers), as
//! is its forward pass on two threads with the transpose made beside it
//! (`forward_transposing`), all with the rows of W^T and dW^T up to 3 floats further
//! apart than their length and NaN between them, never read or written; and a product
//! whose odd rows repeat the columns of the row above (some dropped, some of its own
//! added), which the AVX2 backend takes in pairs, with or without an infinity in B.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlp_kernels::{CsrRef, MatMut, MatRef, SparseLinear, sparse_gemm_workspace_len};
use mlp_kernels_fuzz::kernels;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let k = kernels(data[0]);
    let (m, kk, n) = (
        1 + data[1] as usize % 24,
        1 + data[2] as usize % 24,
        1 + data[3] as usize % 24,
    );
    let form = data[4];
    let beta = [0.0f32, 1.0, -2.0][data[5] as usize % 3];
    let mut bytes = data[6..].iter().copied();
    // Offsets grow by 0..=7 per row unless the byte says otherwise: mostly valid,
    // sometimes not.
    let mut offsets = vec![0usize];
    for _ in 0..m {
        let b = bytes.next().unwrap_or(0);
        let last = *offsets.last().unwrap_or(&0);
        offsets.push(if b == 255 {
            last.saturating_sub(1)
        } else {
            last + (b as usize % 8)
        });
    }
    let nnz = *offsets.last().unwrap_or(&0);
    let indices: Vec<u32> = (0..nnz)
        .map(|_| u32::from(bytes.next().unwrap_or(0)) % (kk as u32 + 1))
        .collect();
    let values: Vec<f32> = (0..nnz)
        .map(|_| f32::from(bytes.next().unwrap_or(1) as i8 % 8))
        .collect();
    let Ok(s) = CsrRef::new(m, kk, &offsets, &indices, &values) else {
        return;
    };
    // What was accepted is a valid CSR matrix.
    let mut dense = vec![0.0f64; m * kk];
    for i in 0..m {
        let (idx, val) = s.row(i);
        assert!(idx.windows(2).all(|w| w[0] < w[1]) && idx.iter().all(|&j| (j as usize) < kk));
        for (&j, &v) in idx.iter().zip(val) {
            dense[i * kk + j as usize] = f64::from(v);
        }
    }
    let transposed_s = form & 1 == 1;
    let (rows, inner) = if transposed_s { (kk, m) } else { (m, kk) };
    let b: Vec<f32> = (0..inner * n)
        .map(|_| f32::from(bytes.next().unwrap_or(3) as i8 % 8))
        .collect();
    let mut c: Vec<f32> = (0..rows * n)
        .map(|i| {
            if beta == 0.0 {
                f32::NAN
            } else {
                (i % 5) as f32
            }
        })
        .collect();
    let c0 = c.clone();
    let mut ws = vec![
        0.0;
        if form & 4 == 4 {
            sparse_gemm_workspace_len(rows, n, inner)
        } else {
            0
        }
    ];
    let bt: Vec<f32> = (0..n * inner)
        .map(|x| b[(x % inner) * n + x / inner])
        .collect();
    let bv = if form & 2 == 2 && !transposed_s {
        MatRef::row_major(&bt, n, inner).unwrap().t()
    } else {
        MatRef::row_major(&b, inner, n).unwrap()
    };
    if form & 2 == 2 && !transposed_s && ws.len() < inner * n {
        ws.resize(inner * n, 0.0);
    }
    let cv = MatMut::row_major(&mut c, rows, n).unwrap();
    let r = if transposed_s {
        k.sparse_t_gemm(1.0, s, bv, beta, cv, &mut ws)
    } else {
        k.sparse_gemm(1.0, s, bv, beta, cv, &mut ws)
    };
    r.unwrap();
    for i in 0..rows {
        for j in 0..n {
            let mut want = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta) * f64::from(c0[i * n + j])
            };
            for p in 0..inner {
                let sv = if transposed_s {
                    dense[p * kk + i]
                } else {
                    dense[i * kk + p]
                };
                want += sv * f64::from(b[p * n + j]);
            }
            // Small integers: every partial sum is exact in f32.
            assert_eq!(f64::from(c[i * n + j]), want, "({i}, {j})");
        }
    }

    // The transpose.
    let (mut to, mut ti, mut tv) = (vec![0usize; kk + 1], vec![0u32; nnz], vec![0.0f32; nnz]);
    let t = s.transpose_into(&mut to, &mut ti, &mut tv).unwrap();
    for p in 0..kk {
        for i in 0..m {
            assert_eq!(
                t.get(p, i).map(f64::from),
                Some(dense[i * kk + p]),
                "S^T ({p}, {i})"
            );
        }
    }
    // The layer's gradients from S (batch m x kk inputs) and dy (m x n), by rows and
    // by columns, with an integer normalisation so that both are exact.
    let (scale, shift) = (
        [1.0f32, 2.0][form as usize >> 3 & 1],
        [0.0f32, -1.0][form as usize >> 4 & 1],
    );
    // Rows of W^T and dW^T 0-3 floats further apart than n; NaN between them, where
    // nothing may read or write.
    let stride = n + (form as usize >> 5 & 3);
    let layer = SparseLinear::new(kk, n)
        .with_normalisation(scale, shift)
        .with_row_stride(stride);
    let dy: Vec<f32> = (0..m * n)
        .map(|_| f32::from(bytes.next().unwrap_or(5) as i8 % 8))
        .collect();
    let mut ws = vec![0.0; layer.workspace_len()];
    let (mut g_rows, mut b_rows) = (vec![f32::NAN; kk * stride], vec![f32::NAN; n]);
    layer
        .backward(&k, s, &dy, &mut g_rows, Some(&mut b_rows), false, &mut ws)
        .unwrap();
    let (mut g_cols, mut b_cols) = (vec![f32::NAN; kk * stride], vec![f32::NAN; n]);
    layer
        .backward_transposed(&k, t, &dy, &mut g_cols, Some(&mut b_cols), false, &mut ws)
        .unwrap();
    for j in 0..n {
        let db: f64 = (0..m).map(|r| f64::from(dy[r * n + j])).sum();
        assert_eq!(f64::from(b_rows[j]), db, "db by rows ({j})");
        assert_eq!(f64::from(b_cols[j]), db, "db by columns ({j})");
        for p in 0..kk {
            let sum: f64 = (0..m)
                .map(|r| dense[r * kk + p] * f64::from(dy[r * n + j]))
                .sum();
            let want = f64::from(scale) * sum + f64::from(shift) * db;
            assert_eq!(
                f64::from(g_rows[p * stride + j]),
                want,
                "dW^T by rows ({p}, {j})"
            );
            assert_eq!(
                f64::from(g_cols[p * stride + j]),
                want,
                "dW^T by columns ({p}, {j})"
            );
        }
    }
    let between = |g: &[f32]| {
        g.chunks_exact(stride)
            .all(|r| r[n..].iter().all(|v| v.is_nan()))
    };
    assert!(
        between(&g_rows) && between(&g_cols),
        "written between dW^T's rows"
    );
    // The forward pass with the transpose made beside it (two threads: in the second
    // thread's part): the f64 definition, exactly, and the same transpose.
    let wt: Vec<f32> = (0..kk * stride)
        .map(|e| match e % stride < n {
            true => f32::from(bytes.next().unwrap_or(3) as i8 % 8),
            false => f32::NAN,
        })
        .collect();
    let bias: Vec<f32> = (0..n).map(|j| (j % 5) as f32 - 2.0).collect();
    let mut y = vec![f32::NAN; m * n];
    let (mut uo, mut ui, mut uv) = (vec![0usize; kk + 1], vec![0u32; nnz], vec![0.0f32; nnz]);
    let u = layer
        .with_threads(2)
        .forward_transposing(
            &k,
            s,
            &wt,
            Some(&bias),
            &mut y,
            &mut ws,
            &mut uo,
            &mut ui,
            &mut uv,
        )
        .unwrap();
    assert_eq!(
        u.parts(),
        t.parts(),
        "the transpose beside the forward pass"
    );
    for i in 0..m {
        for j in 0..n {
            let (mut sx, mut sw) = (0.0f64, 0.0f64);
            for p in 0..kk {
                sx += dense[i * kk + p] * f64::from(wt[p * stride + j]);
                sw += f64::from(wt[p * stride + j]);
            }
            let want = f64::from(scale) * sx + f64::from(bias[j]) + f64::from(shift) * sw;
            assert_eq!(f64::from(y[i * n + j]), want, "y ({i}, {j})");
        }
    }

    // Rows in pairs: each odd row takes the columns of the even row above it (values one
    // more) but those a mask byte drops, and, when `form` says so, its own row's
    // columns too; the AVX2 backend multiplies such rows two at a time, adding zeros
    // for the columns one row lacks. Exact against the definition over the stored
    // entries, also when `form` plants an infinity in B, which must not reach a row
    // that has no entry in its row of B.
    let drop = bytes.next().unwrap_or(0) & bytes.next().unwrap_or(0);
    let own = form & 64 == 64;
    let (mut p_off, mut p_idx, mut p_val) = (vec![0usize], vec![], vec![]);
    for i in 0..m {
        let mut row: Vec<Option<f32>> = vec![None; kk];
        let (idx, val) = s.row(i - i % 2);
        for (e, (&p, &v)) in idx.iter().zip(val).enumerate() {
            if i % 2 == 0 || drop >> (e % 8) & 1 == 0 {
                row[p as usize] = Some(v + (i % 2) as f32);
            }
        }
        if i % 2 == 1 && own {
            let (idx, val) = s.row(i);
            for (&p, &v) in idx.iter().zip(val) {
                row[p as usize].get_or_insert(v);
            }
        }
        for (p, v) in row.iter().enumerate() {
            if let Some(v) = v {
                p_idx.push(p as u32);
                p_val.push(*v);
            }
        }
        p_off.push(p_idx.len());
    }
    let paired = CsrRef::new(m, kk, &p_off, &p_idx, &p_val).unwrap();
    let mut b2: Vec<f32> = (0..kk * n).map(|x| (x % 7) as f32 - 3.0).collect();
    if form & 32 == 32 {
        let at = bytes.next().unwrap_or(0) as usize % (kk * n);
        b2[at] = f32::INFINITY;
    }
    let mut c2 = vec![f32::NAN; m * n];
    k.sparse_gemm(
        1.0,
        paired,
        MatRef::row_major(&b2, kk, n).unwrap(),
        0.0,
        MatMut::row_major(&mut c2, m, n).unwrap(),
        &mut [],
    )
    .unwrap();
    for i in 0..m {
        let (idx, val) = paired.row(i);
        for j in 0..n {
            let want: f64 = idx
                .iter()
                .zip(val)
                .map(|(&p, &v)| f64::from(v) * f64::from(b2[p as usize * n + j]))
                .sum();
            let got = f64::from(c2[i * n + j]);
            assert!(
                got == want || (got.is_nan() && want.is_nan()),
                "paired rows ({i}, {j}): {got} against {want}"
            );
        }
    }
});
