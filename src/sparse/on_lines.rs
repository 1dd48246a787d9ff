//! B's rows copied onto cache lines before the row form reads them, where a vector is
//! a whole line and each row is read often enough to pay for the copy.
//!
//! The row form (`kernel.rs`) reads, for every entry of S, its column's row of B as
//! n / LANES vector loads. With AVX-512 a vector is a 64-byte line, and a row that
//! starts off a line makes every one of its loads cross two: the lesson's rows of 200
//! floats are 800 bytes apart, so every other row starts 32 bytes off. On Sapphire
//! Rapids the row form's loop alone (40 rows of B in L1, 13 vectors an entry) took
//! 16.5 cycles an entry with rows 800 bytes apart and 12.0 with rows 832 bytes apart
//! on line boundaries.
//!
//! The copy costs a read and a write of B; each row saves a little on every read. At
//! 19% density the lesson's weight gradient by columns reads dy (200 x 200) about 150
//! times a row (784 x 0.19): with the copy the product took 302-309 us against
//! 354-356 as it was. Its forward product reads W^T (784 x 200) about 38 times a row
//! (200 x 0.19): there the copy gained 4-9% on one thread (Sapphire Rapids, 400
//! interleaved runs each, BENCHMARKS.md), and on more threads it would run alone
//! before the parts. Hence the bar below, per thread. (On MNIST's batches a bar of 32,
//! which copies W^T for the forward on one thread, made the sparse epoch 1.02-1.03x
//! as long: the forward reads only a few hundred of W^T's 784 rows.)
//! Zen 4, whose AVX-512 loads are two 256-bit halves, lost only 3% to rows off a line.

use super::kernel::Rows;
use crate::gemm::GemmKernel;
use crate::simd::WithSimd;
use crate::{Kernels, MatRef};

/// Floats in a 64-byte cache line.
const LINE_FLOATS: usize = 16;

/// Reads of each row of B, per thread, from which the copy pays (see the module doc).
const MIN_READS_PER_ROW_PER_THREAD: usize = 64;

/// The workspace, in f32, for the copy of a k x n B: rows rounded up to whole lines,
/// and room to start the first on a line.
pub(crate) fn on_lines_len(k: usize, n: usize) -> usize {
    n.checked_next_multiple_of(LINE_FLOATS)
        .map_or(usize::MAX, |row| k.saturating_mul(row))
        .saturating_add(LINE_FLOATS - 1)
}

/// The floats in a vector of the backend.
struct VectorFloats;

impl WithSimd for VectorFloats {
    type Output = usize;
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, _: S) -> usize {
        S::LANES
    }
}

/// B (rows contiguous, `b.col_stride() == 1`) copied into `workspace` with each row on
/// a line, when the backend's vectors are whole lines, B's rows are not all on lines
/// already, S's `nnz` entries read each of B's rows at least
/// `MIN_READS_PER_ROW_PER_THREAD` times per thread, and the workspace has room; else
/// `None`, and B is read where it is. The copy holds the same values, so the product
/// has the same bits either way.
pub(super) fn copy_onto_lines(
    k: &Kernels,
    b: &MatRef<'_>,
    nnz: usize,
    threads: usize,
    workspace: &mut [f32],
) -> Option<Rows> {
    let (rows, n) = (b.rows(), b.cols());
    let ptr = b.data_ptr();
    let on_lines =
        b.row_stride().is_multiple_of(LINE_FLOATS) && ptr.addr().is_multiple_of(4 * LINE_FLOATS);
    let often = nnz / rows.max(1) >= MIN_READS_PER_ROW_PER_THREAD.saturating_mul(threads);
    if b.col_stride() != 1 || n < LINE_FLOATS || on_lines || !often {
        return None;
    }
    if k.isa.vectorize(VectorFloats) != LINE_FLOATS {
        return None;
    }
    // Floats from the workspace's start to its first line.
    let skip = workspace.as_ptr().addr().wrapping_neg() / 4 % LINE_FLOATS;
    let stride = n.checked_next_multiple_of(LINE_FLOATS)?;
    let copy = workspace
        .get_mut(skip..)?
        .get_mut(..rows.checked_mul(stride)?)?;
    for (p, to) in copy.chunks_exact_mut(stride).enumerate() {
        for (t, &x) in to.iter_mut().zip(b.run(p, 0, n)) {
            *t = x;
        }
    }
    Some(Rows {
        ptr: copy.as_ptr(),
        rs: stride,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;

    #[test]
    fn rows_are_copied_onto_lines_only_where_that_pays() -> Result<(), crate::Error> {
        let (k, n) = (40, 200);
        let b: Vec<f32> = (0..k * n + 16).map(|i| i as f32).collect();
        // Rows 800 bytes apart from one float past the buffer's start: most are off.
        let off = MatRef::new(&b[1..], k, n, n, 1)?;
        let mut ws = vec![0.0f32; on_lines_len(k, n)];
        let skip = ws.as_ptr().addr().wrapping_neg() / 4 % LINE_FLOATS;
        let reads = MIN_READS_PER_ROW_PER_THREAD * k;
        for backend in Backend::supported() {
            let kern = Kernels::new(backend)?;
            let lines = kern.isa.vectorize(VectorFloats) == LINE_FLOATS;
            let got = copy_onto_lines(&kern, &off, reads, 1, &mut ws);
            assert_eq!(got.is_some(), lines, "{backend}");
            if let Some(rows) = got {
                assert_eq!((rows.rs, rows.ptr.addr() % 64), (208, 0), "{backend}");
                assert_eq!(rows.ptr, ws[skip..].as_ptr());
                for p in 0..k {
                    let copied = &ws[skip + p * 208..][..n];
                    assert_eq!(copied, &b[1 + p * n..][..n], "{backend}: row {p}");
                }
                // Exactly the room it needs is enough.
                let exact = &mut ws[..skip + k * 208];
                assert!(copy_onto_lines(&kern, &off, reads, 1, exact).is_some());
            }
            // Otherwise B is read in place: too few reads of a row for the threads, a
            // float too little room, rows already on lines, rows narrower than a vector.
            assert!(copy_onto_lines(&kern, &off, reads - 1, 1, &mut ws).is_none());
            assert!(copy_onto_lines(&kern, &off, reads, 2, &mut ws).is_none());
            let short = &mut ws[..skip + k * 208 - 1];
            assert!(copy_onto_lines(&kern, &off, reads, 1, short).is_none());
            let start = b.as_ptr().addr().wrapping_neg() / 4 % LINE_FLOATS;
            let on = MatRef::new(&b[start..], 30, n, 208, 1)?;
            assert!(
                copy_onto_lines(&kern, &on, MIN_READS_PER_ROW_PER_THREAD * 30, 1, &mut ws)
                    .is_none()
            );
            let narrow = MatRef::new(&b[1..], k, 15, 15, 1)?;
            assert!(copy_onto_lines(&kern, &narrow, reads, 1, &mut ws).is_none());
        }
        Ok(())
    }
}
