//! The register-blocked sparse kernels, written once over `Simd`.
//!
//! `rows_times_dense`: a row of C = alpha * (a row of S) * B + base. The row of C (or a
//! block of its columns, as many vectors as the backend has registers for) stays in
//! registers while the row's non-zeros stream past: each non-zero (p, v) adds
//! v * B[p, ..], one broadcast and one FMA per vector, and C is written once. This is
//! the "row-wise" (Gustavson 1978) order: B is read by rows, C by rows, S once.
//!
//! Where consecutive rows of S share most of their columns, `pairs.rs` takes them two at
//! a time before this, with the same bits.
//!
//! `scatter_rows`: C += (alpha * v) * B[r, ..] into row p of C for every non-zero
//! (r, p, v) of S, which is C += alpha * S^T * B without forming S^T. Here a block of
//! B's row r stays in registers and C's rows are read and written per non-zero.

use super::CsrRef;
use crate::checked::{item, part};
use crate::gemm::Caches;
use crate::gemm::GemmKernel;
use crate::simd::{MAX_LANES, Simd, load_any, store_any};

/// What the product is added to.
#[derive(Clone, Copy)]
pub(crate) enum Base {
    /// beta * C; beta = 0 never reads C.
    Scale(f32),
    /// The same row of `n` floats added to every row of C (not read from C).
    Row(*const f32),
}

/// A dense operand: element (p, j) at `ptr + p * rs + j`.
#[derive(Clone, Copy)]
pub(crate) struct Rows {
    pub ptr: *const f32,
    pub rs: usize,
}

/// C as raw parts: element (i, j) at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
}

/// How many entries ahead the row that an entry will read is asked for. The rows of B
/// an entry reads are scattered (S's column indices), so the hardware prefetcher
/// cannot guess them: asking three entries early took the 19%-dense forward product
/// from 312 to 252 us on Zen 4 (`cargo bench --bench sparse`; 1 and 6 ahead did no
/// better).
const PREFETCH_AHEAD: usize = 3;

/// The row form asks for every fourth line of a B row ahead and leaves the lines
/// between to the hardware: a prefetch takes a load slot, and one per line held the
/// 19%-dense forward product at 298 us against 274 us (Zen 4, `cargo bench --bench
/// sparse`; every other line, 278 us). The scatter form's C rows are read and
/// written, and keep one per line (fewer did not help there).
const B_ROW_PREFETCH_EVERY: usize = 4;

/// Asks for every `EVERY`-th cache line of `floats` floats from `p` into L1. A hint:
/// it never faults, so `p` need not be valid.
#[inline(always)]
fn prefetch<const EVERY: usize>(p: *const f32, floats: usize) {
    const { assert!(EVERY > 0) };
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    for q in (0..floats).step_by(16 * EVERY) {
        // SAFETY: prefetching has no architectural effect and never faults.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                p.wrapping_add(q).cast(),
            )
        };
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = (p, floats);
}

/// Splits `n` columns into blocks of at most `most` vectors (`S::ROW_VECTORS` for one
/// row, `S::PAIR_VECTORS` for two), no more blocks than that needs and all but the last
/// of one width (200 columns on AVX2: 13 + 12 vectors for one row, six of 4 and one of 1
/// for two).
#[inline(always)]
pub(super) fn column_block<S: GemmKernel>(n: usize, most: usize) -> usize {
    let vecs = n.div_ceil(S::LANES);
    let blocks = vecs.div_ceil(most.max(1)).max(1);
    vecs.div_ceil(blocks) * S::LANES
}

/// Calls `$f::<S, NV>(args)` with NV = `$nv` in 1..=16 (larger values take 16, which
/// the callers never pass: `$nv <= S::ROW_VECTORS <= 16`).
macro_rules! with_nv {
    ($nv:expr, $f:ident::<$S:ty>($($arg:expr),*)) => {
        match $nv {
            1 => $f::<$S, 1>($($arg),*),
            2 => $f::<$S, 2>($($arg),*),
            3 => $f::<$S, 3>($($arg),*),
            4 => $f::<$S, 4>($($arg),*),
            5 => $f::<$S, 5>($($arg),*),
            6 => $f::<$S, 6>($($arg),*),
            7 => $f::<$S, 7>($($arg),*),
            8 => $f::<$S, 8>($($arg),*),
            9 => $f::<$S, 9>($($arg),*),
            10 => $f::<$S, 10>($($arg),*),
            11 => $f::<$S, 11>($($arg),*),
            12 => $f::<$S, 12>($($arg),*),
            13 => $f::<$S, 13>($($arg),*),
            14 => $f::<$S, 14>($($arg),*),
            15 => $f::<$S, 15>($($arg),*),
            _ => $f::<$S, 16>($($arg),*),
        }
    };
}

/// Rows of S that share each pass over a block of B's rows; how far each has got
/// sits on the stack (256 bytes).
const ROW_CHUNK: usize = 64;

/// A block of B's rows takes about a quarter more than L1d: on Zen 4 (32 KiB L1d,
/// rows of 200 floats, `cargo bench --bench sparse` with W^T on a cache line), blocks
/// of 24, 32, 40, 48, 56 and 64 rows against one pass took the forward product at
/// 19% density 244 -> 265, 241, 226, 222, 217, 217 us; at 35% 430 -> 389, 362, 351,
/// 349, 355, 367; at 50% 598 -> 498, 471, 464, 474, 499, 534. The block is read by the
/// 64 rows of a chunk instead of coming from L2 for every entry; each block costs a C
/// row's store and load per row, which more rows would amortise but L1 not hold.
const DEPTH_BLOCK_BYTES_PER_L1D: (usize, usize) = (5, 4);

/// Fewer stored entries than this per row and block, on average, and one pass wins:
/// each block costs a C row's load and store per row.
const MIN_ENTRIES_PER_BLOCK: usize = 4;

/// How many of B's rows each pass over rows `lo..hi` covers (`usize::MAX`: one pass).
///
/// Blocks need C's rows contiguous to keep partial sums in, and a base that does not
/// read C. Partial sums leave the registers as f32 and come back unchanged, so the
/// result has the same bits whatever the block (and on every CPU).
// Out of line: inlined with the cache reading into the block loops, it left them
// slower (the 19%-dense forward product 243 against 219 us on Zen 4).
#[inline(never)]
fn depth_block(csr: &CsrRef<'_>, lo: usize, hi: usize, width: usize, base: Base, c: Out) -> usize {
    let reads_c = matches!(base, Base::Scale(beta) if beta != 0.0);
    if c.cs != 1 || reads_c || hi <= lo {
        return usize::MAX;
    }
    let (num, den) = DEPTH_BLOCK_BYTES_PER_L1D;
    let bytes = Caches::detect().l1d.saturating_mul(num) / den;
    let rows = (bytes / width.saturating_mul(4).max(1)).max(1);
    let (offsets, _, _) = csr.parts();
    let entries = item(offsets, hi, 0).saturating_sub(item(offsets, lo, 0));
    let cells = (hi - lo).saturating_mul(csr.cols()).max(1);
    let per_block = entries.saturating_mul(rows) / cells;
    if rows >= csr.cols() || per_block < MIN_ENTRIES_PER_BLOCK {
        usize::MAX
    } else {
        rows
    }
}

/// Rows `lo..hi` of C = alpha * S * B + base, for the `n` columns of B.
///
/// Loops, outside in: blocks of C's columns (as many as stay in registers), chunks of
/// `ROW_CHUNK` rows of S, blocks of B's rows (`depth_block`), the chunk's rows. A row
/// of C takes its entries of S in order across the blocks, carried in C between them.
///
/// # Safety
/// B must hold row p for every column index p of S with `n` readable floats; C must
/// hold rows `lo..hi` with `n` columns, owned exclusively; a `Base::Row` must hold `n`
/// floats.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn rows_times_dense<S: GemmKernel>(
    s: S,
    csr: &CsrRef<'_>,
    lo: usize,
    hi: usize,
    b: Rows,
    n: usize,
    alpha: f32,
    base: Base,
    c: Out,
) {
    let block = column_block::<S>(n, S::ROW_VECTORS);
    let mut j0 = 0;
    while j0 < n {
        let w = block.min(n - j0);
        let nv = w.div_ceil(S::LANES);
        let tail = w - (nv - 1) * S::LANES;
        let depth = depth_block(csr, lo, hi, w, base, c);
        let b_j = Rows {
            ptr: b.ptr.wrapping_add(j0),
            ..b
        };
        let base_j = match base {
            Base::Row(r) => Base::Row(r.wrapping_add(j0)),
            scale => scale,
        };
        let mut r0 = lo;
        while r0 < hi {
            let r1 = hi.min(r0 + ROW_CHUNK);
            // Entries of each row of the chunk already added.
            let mut done = [0u32; ROW_CHUNK];
            let mut k1 = 0usize;
            loop {
                k1 = k1.saturating_add(depth);
                let last = k1 >= csr.cols();
                for (i, done) in (r0..r1).zip(done.iter_mut()) {
                    let (idx, val) = csr.row(i);
                    let from = *done as usize;
                    let (idx, val) = (part(idx, from..), part(val, from..));
                    if !last && idx.first().is_none_or(|&p| p as usize >= k1) {
                        continue;
                    }
                    let pass = Pass {
                        resume: from > 0,
                        bound: if last { usize::MAX } else { k1 },
                    };
                    let c_ij = c.ptr.wrapping_add(i * c.rs + j0 * c.cs);
                    // SAFETY: forwarded; columns j0..j0 + w are inside the n columns,
                    // and C's row holds the partial sums of the row's earlier entries
                    // when `resume` (blocks only where C's rows are contiguous).
                    let taken = unsafe {
                        with_nv!(
                            nv,
                            row_block::<S>(
                                s,
                                idx,
                                val,
                                b_j,
                                tail,
                                pass,
                                alpha,
                                base_j,
                                Out { ptr: c_ij, ..c }
                            )
                        )
                    };
                    // A row holds at most `cols` entries, and column indices are u32.
                    *done = (from + taken) as u32;
                }
                if last {
                    break;
                }
            }
            r0 = r1;
        }
        j0 += w;
    }
}

/// Where a row's entries in one block of B's rows stand among all of its entries.
#[derive(Clone, Copy)]
struct Pass {
    /// C's row holds the sums of earlier entries (else they start at 0).
    resume: bool,
    /// The entries to add are those with a column index below this; `usize::MAX` for
    /// the last pass, which applies alpha and the base (the others keep the sums in C).
    bound: usize,
}

/// One row of C, columns of one block: NV vectors, the last with `tail` lanes. Adds
/// the entries below `pass.bound` and returns how many it added.
///
/// # Safety
/// As [`rows_times_dense`], for NV vectors of which the last is `tail` wide; C's row
/// block is contiguous unless `pass` is a whole row (not resumed, last).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_block<S: Simd, const NV: usize>(
    s: S,
    idx: &[u32],
    val: &[f32],
    b: Rows,
    tail: usize,
    pass: Pass,
    alpha: f32,
    base: Base,
    c: Out,
) -> usize {
    let last = NV - 1;
    let width = |q: usize| if q == last { tail } else { S::LANES };
    let acc: [S::V; NV] = if pass.resume {
        // SAFETY: C's row block is contiguous here and holds the partial sums.
        core::array::from_fn(|q| unsafe {
            load_any(
                s,
                core::slice::from_raw_parts(c.ptr.add(q * S::LANES), width(q)),
            )
        })
    } else {
        [s.splat(0.0); NV]
    };
    // One loop for each case, each without the other's tests: the last pass (no
    // bound, B's rows asked for ahead) or a block (B's rows in cache, stop at the
    // bound), and a whole or a partial last vector.
    let bound = pass.bound;
    // SAFETY: forwarded.
    let (acc, taken) = unsafe {
        match (bound == usize::MAX, tail == S::LANES) {
            (true, true) => entries::<S, NV, true, true>(s, acc, idx, val, b, tail, bound),
            (true, false) => entries::<S, NV, true, false>(s, acc, idx, val, b, tail, bound),
            (false, true) => entries::<S, NV, false, true>(s, acc, idx, val, b, tail, bound),
            (false, false) => entries::<S, NV, false, false>(s, acc, idx, val, b, tail, bound),
        }
    };
    if bound == usize::MAX {
        // SAFETY: forwarded.
        unsafe { store_row(s, &acc, tail, alpha, base, c) }
    } else {
        for (q, &a) in acc.iter().enumerate() {
            // SAFETY: C's row block is contiguous here and owned.
            let out = unsafe { core::slice::from_raw_parts_mut(c.ptr.add(q * S::LANES), width(q)) };
            store_any(s, out, a);
        }
    }
    taken
}

/// acc += v * B[p, ..] for each entry (p, v) in order, up to the first with p >=
/// `bound` (`ONE_PASS`: all of them); returns the sums and the number added.
///
/// # Safety
/// B's row p holds NV vectors (the last `tail` wide) for every index p, and
/// `tail == S::LANES` when `WHOLE_LAST`.
#[inline(always)]
unsafe fn entries<S: Simd, const NV: usize, const ONE_PASS: bool, const WHOLE_LAST: bool>(
    s: S,
    mut acc: [S::V; NV],
    idx: &[u32],
    val: &[f32],
    b: Rows,
    tail: usize,
    bound: usize,
) -> ([S::V; NV], usize) {
    let last = NV - 1;
    for (e, (&p, &v)) in idx.iter().zip(val).enumerate() {
        if !ONE_PASS && p as usize >= bound {
            return (acc, e);
        }
        if ONE_PASS && let Some(&ahead) = idx.get(e + PREFETCH_AHEAD) {
            prefetch::<B_ROW_PREFETCH_EVERY>(
                b.ptr.wrapping_add(ahead as usize * b.rs),
                NV * S::LANES,
            );
        }
        let row = b.ptr.wrapping_add(p as usize * b.rs);
        let x = s.splat(v);
        // SAFETY: p is a column index of S, so B's row p exists with the block's
        // columns readable; the last vector reads only `tail` of them.
        unsafe {
            if WHOLE_LAST {
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = s.fma(x, s.load_ptr(row.add(q * S::LANES)), *a);
                }
            } else {
                for (q, a) in acc.iter_mut().enumerate().take(last) {
                    *a = s.fma(x, s.load_ptr(row.add(q * S::LANES)), *a);
                }
                let part = core::slice::from_raw_parts(row.add(last * S::LANES), tail);
                acc[last] = s.fma(x, s.load_partial(part, 0.0), acc[last]);
            }
        }
    }
    (acc, idx.len())
}

/// C row block = alpha * acc + base.
///
/// Where C's row is contiguous, only the last vector is tested for its width: the
/// pairs store two rows for every few dozen cells, where a width test for each vector
/// took a tenth of their time, and the forward product ran 1.10-1.16x faster this way
/// (Zen 3, BENCHMARKS.md).
///
/// # Safety
/// C's row block (NV vectors, the last `tail` wide) is owned; a row base is readable.
#[inline(always)]
pub(super) unsafe fn store_row<S: Simd, const NV: usize>(
    s: S,
    acc: &[S::V; NV],
    tail: usize,
    alpha: f32,
    base: Base,
    c: Out,
) {
    if c.cs != 1 {
        // SAFETY: forwarded.
        return unsafe { store_row_strided(s, acc, tail, alpha, base, c) };
    }
    let av = s.splat(alpha);
    let last = NV - 1;
    for (q, &x) in acc.iter().enumerate().take(last) {
        // SAFETY: C's row holds vector q whole (q < last), contiguous and owned; a row
        // base holds the block's columns.
        unsafe {
            let out = core::slice::from_raw_parts_mut(c.ptr.add(q * S::LANES), S::LANES);
            s.store(out, scaled_plus_base(s, x, alpha, av, base, q, out));
        }
    }
    // SAFETY: the last vector's `tail` columns of C's row; a row base holds them.
    unsafe {
        let out = core::slice::from_raw_parts_mut(c.ptr.add(last * S::LANES), tail);
        store_any(
            s,
            out,
            scaled_plus_base(s, acc[last], alpha, av, base, last, out),
        );
    }
}

/// alpha * x + the base's vector q, as wide as `out` (C's vector q); `av` is alpha
/// splat. A function, not a closure, for the reason the GEMM's `store_rows` gives.
///
/// # Safety
/// A row base holds vector q's columns, `out.len()` of them.
#[inline(always)]
unsafe fn scaled_plus_base<S: Simd>(
    s: S,
    x: S::V,
    alpha: f32,
    av: S::V,
    base: Base,
    q: usize,
    out: &[f32],
) -> S::V {
    let y = if alpha == 1.0 { x } else { s.mul(av, x) };
    match base {
        Base::Scale(0.0) => y,
        Base::Scale(beta) => s.add(y, s.mul(s.splat(beta), load_any(s, out))),
        // SAFETY: the caller's.
        Base::Row(r) => s.add(
            y,
            load_any(s, unsafe {
                core::slice::from_raw_parts(r.add(q * S::LANES), out.len())
            }),
        ),
    }
}

/// [`store_row`] for a strided C, element by element.
///
/// # Safety
/// As [`store_row`].
#[inline(always)]
unsafe fn store_row_strided<S: Simd, const NV: usize>(
    s: S,
    acc: &[S::V; NV],
    tail: usize,
    alpha: f32,
    base: Base,
    c: Out,
) {
    let av = s.splat(alpha);
    for (q, &x) in acc.iter().enumerate() {
        let w = if q + 1 == NV { tail } else { S::LANES };
        let y = if alpha == 1.0 { x } else { s.mul(av, x) };
        let mut buf = [0.0f32; MAX_LANES];
        s.store(&mut buf, y);
        for (jj, &v) in buf.iter().enumerate().take(w) {
            let j = q * S::LANES + jj;
            // SAFETY: (row, j) is an element of C; a row base holds column j.
            unsafe {
                let out = &mut *c.ptr.add(j * c.cs);
                *out = match base {
                    Base::Scale(0.0) => v,
                    Base::Scale(beta) => v + beta * *out,
                    Base::Row(r) => v + *r.add(j),
                };
            }
        }
    }
}

/// C += alpha * S^T * B for C's rows `lo..hi` (C already holds beta * C): row r of
/// B, a block at a time in registers, is added into row p of C for each entry
/// (r, p, v) of S with p in `lo..hi`. Threads take runs of C's rows, so that none
/// shares a cache line of C with another (C's rows are 800 bytes in the lesson, not a
/// whole number of lines, so runs of its columns would).
///
/// # Safety
/// B must hold S's rows with `n` readable floats; C must hold rows `lo..hi` (a
/// subset of S's column indices) with `n` columns, contiguous (`c.cs == 1`), owned
/// exclusively.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn scatter_rows<S: GemmKernel>(
    s: S,
    csr: &CsrRef<'_>,
    lo: usize,
    hi: usize,
    b: Out,
    n: usize,
    alpha: f32,
    c: Out,
) {
    let block = column_block::<S>(n, S::ROW_VECTORS);
    let all = lo == 0 && hi >= csr.cols();
    let mut j0 = 0;
    while j0 < n {
        let w = block.min(n - j0);
        let nv = w.div_ceil(S::LANES);
        let tail = w - (nv - 1) * S::LANES;
        for r in 0..csr.rows() {
            let (mut idx, mut val) = csr.row(r);
            if !all {
                // The row's entries are sorted: its run for C's rows lo..hi.
                let a = idx.partition_point(|&p| (p as usize) < lo);
                let z = idx.partition_point(|&p| (p as usize) < hi);
                (idx, val) = (part(idx, a..z), part(val, a..z));
            }
            if idx.is_empty() {
                continue;
            }
            let b_r = Out {
                ptr: b.ptr.wrapping_add(r * b.rs + j0 * b.cs),
                ..b
            };
            let c_j = c.ptr.wrapping_add(j0);
            // SAFETY: forwarded; columns j0..j0 + w are inside the n columns.
            unsafe {
                with_nv!(
                    nv,
                    scatter_block::<S>(s, idx, val, b_r, tail, alpha, c_j, c.rs)
                )
            };
        }
        j0 += w;
    }
}

/// One row of B (NV vectors, the last `tail` wide) scattered into C's rows.
///
/// # Safety
/// As [`scatter_rows`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn scatter_block<S: Simd, const NV: usize>(
    s: S,
    idx: &[u32],
    val: &[f32],
    b: Out,
    tail: usize,
    alpha: f32,
    c: *mut f32,
    crs: usize,
) {
    let mut row = [s.splat(0.0); NV];
    let mut buf = [0.0f32; MAX_LANES];
    for (q, x) in row.iter_mut().enumerate() {
        let w = if q + 1 == NV { tail } else { S::LANES };
        for (jj, slot) in buf.iter_mut().enumerate() {
            // SAFETY: (r, q * LANES + jj) is an element of B for jj < w.
            *slot = if jj < w {
                unsafe { *b.ptr.add((q * S::LANES + jj) * b.cs) }
            } else {
                0.0
            };
        }
        *x = s.load(&buf);
    }
    for (e, (&p, &v)) in idx.iter().zip(val).enumerate() {
        if let Some(&ahead) = idx.get(e + PREFETCH_AHEAD) {
            prefetch::<1>(c.wrapping_add(ahead as usize * crs), NV * S::LANES);
        }
        let x = s.splat(alpha * v);
        let c_p = c.wrapping_add(p as usize * crs);
        for (q, &bq) in row.iter().enumerate() {
            let w = if q + 1 == NV { tail } else { S::LANES };
            // SAFETY: row p of C holds these columns, and no other thread has it.
            let out = unsafe { core::slice::from_raw_parts_mut(c_p.add(q * S::LANES), w) };
            store_any(s, out, s.fma(x, bq, load_any(s, out)));
        }
    }
}
