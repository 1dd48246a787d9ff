//! C = alpha * A * B + beta * C for a B that is a transposed view with more columns
//! than A has rows (a layer's x.W^T at a batch smaller than its outputs: B's
//! columns are W's rows, contiguous in depth), computed as C^T = W.A^T into the
//! workspace and copied into C transposed. On AVX-512, where it was measured.
//!
//! Directly, B is packed by a transposing copy of all of W (n x k floats), and a C
//! that is n = 200 wide ends in an 8-column panel that fills half of each vector.
//! Transposed, W is read in place as the rows of the product's A (unless its rows are
//! 4 KiB apart, as for any A), the transposing pack is of A (m x k, the smaller), and
//! at a batch of 64 C^T's columns are two whole 32-column panels. The copies cost one
//! pass over C, two when beta is not 0.
//!
//! Each element of C is still the same FMAs in the same order, block of depth by
//! block of depth (the depth blocks depend on k and the backend, not on which side is
//! A), and each block is stored as `alpha * acc + beta * c` as before: the bits are
//! those of the direct product (`tests/gemm.rs` compares the two). (But for NaN
//! payloads: where x and W hold NaNs with different payloads at the same step of
//! depth, which one survives depends on the operands' order in the instruction.)

use super::{Caches, GemmKernel, MatRef, RawMat};

/// The fewest rows of A: below that, C's copies cost more than the pack they save
/// (and one row is `gemv`'s, which sums the depth in one chain).
const MIN_ROWS: usize = 16;
/// The most rows of A. Sapphire Rapids, as below (x.W^T, depth 784 unless said):
/// 64 x 784 1.45x the direct product, 96 x 400 1.20x, 128 x 400 1.17x, 150 x 200
/// 1.03x, 200 x 400 0.93x, 480 x 600 1.00x. Rows that are not whole vectors leave
/// C^T a narrow last panel: 100 x 784 x 300 0.86x, 96 x 784 x 300 1.06x.
const MAX_ROWS: usize = 128;
/// The least depth: each element of C is copied once or twice whatever k is, and
/// computed in k FMAs. Sapphire Rapids, avx512, one thread, this route against the
/// direct one interleaved in one process (medians of 300, GFLOP/s): 64 x 200 x 784
/// 162 against 120, 64 x 200 x 200 171 against 136, depth 64 141 against 132, depth
/// 32 117 against 119.
const MIN_DEPTH: usize = 64;

/// Whether this product takes the route: a backend where it was measured
/// ([`GemmKernel::TRANSPOSES_SMALL_BATCH`]), a row-major A and C, a B that is a
/// transposed view, 16 to 128 rows in whole vectors and more columns than rows, a
/// depth of 64 or more, and room in `ws_len` for C^T beside the transposed product's
/// own blocks. [`gemm_workspace_len`](crate::gemm_workspace_len) sizes the direct
/// product for the largest blocks of any CPU, which leaves that room for most such
/// shapes (64 x 200 x 784 needs 25 of the 116 thousand floats on Sapphire Rapids);
/// otherwise the product runs directly, with the same bits.
pub(super) fn applies<S: GemmKernel>(
    caches: &Caches,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    c: &RawMat,
    ws_len: usize,
) -> bool {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    S::TRANSPOSES_SMALL_BATCH
        && (MIN_ROWS..=MAX_ROWS).contains(&m)
        && m.is_multiple_of(S::LANES)
        && m < n
        && k >= MIN_DEPTH
        && a.cs == 1
        && b.rs == 1
        && b.cs != 1
        && c.cs == 1
        && m.checked_mul(n)
            .and_then(|t| {
                let blocks = super::Blocks::new::<S>(caches, n, m, k);
                t.checked_add(blocks.workspace_len(super::packs_a(&b.t(), m, S::NR)))
            })
            .is_some_and(|need| need <= ws_len)
}

/// C^T over `c_t` (n x m, row-major), holding C^T when beta is not 0; otherwise
/// left as it is, since the product with beta 0 never reads it.
///
/// # Safety
/// C must be valid m x n with unit column stride, and `c_t` must not overlap it and
/// hold m * n floats.
#[inline(always)]
pub(super) unsafe fn c_transposed<S: GemmKernel>(
    s: S,
    c: RawMat,
    beta: f32,
    c_t: &mut [f32],
) -> RawMat {
    let (m, n) = (c.rows, c.cols);
    debug_assert!(c.cs == 1 && c_t.len() == m * n);
    let ct = RawMat {
        ptr: c_t.as_mut_ptr(),
        rows: n,
        cols: m,
        rs: m,
        cs: 1,
    };
    if beta != 0.0 {
        // SAFETY: the caller's contract, for C and for C^T.
        unsafe { transpose_into(s, c.ptr, c.rs, ct.ptr, ct.rs, m, n) };
    }
    ct
}

/// C = (C^T)^T.
///
/// # Safety
/// As [`c_transposed`], with `ct` what it returned.
#[inline(always)]
pub(super) unsafe fn copy_back<S: GemmKernel>(s: S, ct: RawMat, c: RawMat) {
    // SAFETY: the caller's contract.
    unsafe { transpose_into(s, ct.ptr, ct.rs, c.ptr, c.rs, ct.rows, ct.cols) };
}

/// dst[j][i] = src[i][j] for i < rows, j < cols; both row-major with the given row
/// strides. In 8 x 8 blocks of the backend's transpose, the edges element by element.
///
/// # Safety
/// `rows x cols` at `src` and `cols x rows` at `dst` must be valid and not overlap.
#[inline(always)]
unsafe fn transpose_into<S: GemmKernel>(
    s: S,
    src: *const f32,
    src_rs: usize,
    dst: *mut f32,
    dst_rs: usize,
    rows: usize,
    cols: usize,
) {
    let (rows8, cols8) = (rows / 8 * 8, cols / 8 * 8);
    // SAFETY (all three): every (i, j) below has i < rows and j < cols.
    for i in (0..rows8).step_by(8) {
        for j in (0..cols8).step_by(8) {
            unsafe {
                s.transpose8(
                    src.add(i * src_rs + j),
                    src_rs,
                    dst.add(j * dst_rs + i),
                    dst_rs,
                )
            };
        }
        for j in cols8..cols {
            for r in i..i + 8 {
                unsafe { *dst.add(j * dst_rs + r) = *src.add(r * src_rs + j) };
            }
        }
    }
    for i in rows8..rows {
        for j in 0..cols {
            unsafe { *dst.add(j * dst_rs + i) = *src.add(i * src_rs + j) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::Portable;

    /// Whether x.W^T (m x k times the transpose of n x k) takes the route with `S`'s
    /// tile and `ws_len` floats of workspace.
    fn takes_on<S: GemmKernel>(m: usize, n: usize, k: usize, ws_len: usize) -> bool {
        let (x, w, mut c) = (vec![0.0; m * k], vec![0.0; n * k], vec![0.0; m * n]);
        let (Ok(a), Ok(b)) = (MatRef::row_major(&x, m, k), MatRef::row_major(&w, n, k)) else {
            return false;
        };
        let c = RawMat {
            ptr: c.as_mut_ptr(),
            rows: m,
            cols: n,
            rs: n,
            cs: 1,
        };
        applies::<S>(&Caches::detect(), &a, &b.t(), &c, ws_len)
    }

    /// As [`takes_on`], with AVX-512's tile (whether this CPU runs it or not:
    /// `applies` only reads the tile's sizes); `false` where there is no such tile.
    /// The other backends never take the route.
    fn takes(m: usize, n: usize, k: usize, ws_len: usize) -> bool {
        assert!(!takes_on::<Portable>(m, n, k, ws_len));
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        {
            use crate::simd::{Avx2, Avx512};
            assert!(!takes_on::<Avx2>(m, n, k, ws_len));
            takes_on::<Avx512>(m, n, k, ws_len)
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        false
    }

    #[test]
    fn the_shapes_tests_gemm_uses_take_the_route_and_others_do_not() {
        let len = crate::gemm_workspace_len;
        for (m, n, k) in [(64, 200, 784), (16, 200, 64), (32, 203, 65), (48, 100, 300)] {
            let on_x86 = cfg!(all(target_arch = "x86_64", target_feature = "sse2"));
            assert_eq!(takes(m, n, k, len(m, n, k)), on_x86, "{m}x{n}x{k}");
        }
        for (m, n, k, why) in [
            (64, 10, 200, "m > n"),
            (64, 64, 784, "m = n"),
            (64, 200, 32, "shallow"),
            (20, 200, 100, "rows not in whole vectors"),
            (136, 400, 784, "more rows than MAX_ROWS"),
        ] {
            assert!(!takes(m, n, k, len(m, n, k)), "{m}x{n}x{k}: {why}");
        }
        // No room for C^T beside the blocks: directly.
        assert!(!takes(64, 200, 784, 64 * 200));
    }
}
