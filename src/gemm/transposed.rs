//! C = alpha * A * B + beta * C for a B that is a transposed view with more columns
//! than A has rows (a layer's x.W^T at a batch smaller than its outputs: B's
//! columns are W's rows, contiguous in depth), computed as C^T = W.A^T into the
//! workspace and copied into C transposed.
//!
//! Directly, B is packed by a transposing copy of all of W (n x k floats), and a C
//! that is n = 200 wide ends in an 8-column panel that fills half of each vector.
//! Transposed, W is read in place as the rows of the product's A, the transposing
//! pack is of A (m x k, the smaller), and at a batch of 64 C^T's columns are two
//! whole 32-column panels. The copies cost one pass over C, two when beta is not 0.
//!
//! Each element of C is still the same FMAs in the same order, block of depth by
//! block of depth (the depth blocks depend on k and the backend, not on which side is
//! A), and each block is stored as `alpha * acc + beta * c` as before: the bits are
//! those of the direct product (`tests/gemm.rs` compares the two).

use super::{GemmKernel, MatRef, RawMat};

/// The fewest rows of A: below that, C's copies cost more than the pack they save
/// (and one row is `gemv`'s, which sums the depth in one chain).
const MIN_ROWS: usize = 16;
/// The least depth: each element of C is copied once or twice whatever k is, and
/// computed in k FMAs. Sapphire Rapids, avx512, one thread, this route against the
/// direct one interleaved in one process (medians of 300, GFLOP/s): 64 x 200 x 784
/// 162 against 120, 64 x 200 x 200 171 against 136, depth 64 141 against 132, depth
/// 32 117 against 119.
const MIN_DEPTH: usize = 64;

/// Whether this product takes the route: a row-major A and C, a B that is a
/// transposed view, more columns than rows, and room in `ws_len` for C^T beside the
/// transposed product's own blocks. [`gemm_workspace_len`](crate::gemm_workspace_len)
/// sizes the direct product for the largest blocks of any CPU, which leaves that
/// room whenever m is at most about the depth of a block (m = 64 with k = 784 needs
/// 25 of the 116 thousand floats on Sapphire Rapids); otherwise the product runs
/// directly, with the same bits.
pub(super) fn applies<S: GemmKernel>(
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    c: &RawMat,
    ws_len: usize,
) -> bool {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    MIN_ROWS <= m
        && m < n
        && k >= MIN_DEPTH
        && a.cs == 1
        && b.rs == 1
        && b.cs != 1
        && c.cs == 1
        && m.checked_mul(n)
            .and_then(|t| {
                t.checked_add(super::blocked_len::<S>(
                    n,
                    m,
                    k,
                    super::packs_a(&b.t(), m, S::NR),
                ))
            })
            .is_some_and(|need| need <= ws_len)
}

/// The product through C^T, as the module says.
///
/// # Safety
/// As `gemm_raw`, but with `applies::<S>(a, b, &c, ws.len())` for the workspace.
#[inline(always)]
pub(super) unsafe fn through_c_transposed<S: GemmKernel>(
    s: S,
    alpha: f32,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    beta: f32,
    c: RawMat,
    ws: &mut [f32],
) {
    let (m, n) = (c.rows, c.cols);
    // C^T at the end of the workspace, the transposed product's own before it.
    let Some((rest, ct)) = ws.split_at_mut_checked(ws.len().saturating_sub(m * n)) else {
        debug_assert!(false, "`applies` checks the workspace");
        return;
    };
    let ct = RawMat {
        ptr: ct.as_mut_ptr(),
        rows: n,
        cols: m,
        rs: m,
        cs: 1,
    };
    // SAFETY: C and C^T are valid m x n and n x m row-major blocks (the caller's
    // contract and the split above), the transposed views agree in shape, and `rest`
    // holds the transposed product's workspace (`applies`).
    unsafe {
        if beta != 0.0 {
            transpose_into(s, c.ptr, c.rs, ct.ptr, ct.rs, m, n);
        }
        super::blocked(s, alpha, &b.t(), &a.t(), beta, ct, rest);
        transpose_into(s, ct.ptr, ct.rs, c.ptr, c.rs, n, m);
    }
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
