//! Two rows of S at a time: the row form over the union of their columns.
//!
//! The row form (`kernel::rows_times_dense`) loads a row of B for every entry of S and
//! feeds it to one FMA per vector. Where consecutive rows of S share most of their
//! columns, a pair of rows walks the union of their column indices instead: each load
//! of B's row feeds two FMAs, and the row that lacks the column adds 0 * B[p, ..]. That
//! is the case of the lesson's weight gradient, where S = X^T and its rows are
//! neighbouring pixels, lit in mostly the same images: the union of two rows holds
//! 1.17x their entries on MNIST, against 1.5-1.8x for two images or two random rows
//! (BENCHMARKS.md, "pixels two at a time").
//!
//! Same bits as the row form but for the sign of a zero: each row's accumulators take
//! its own entries in the same order, and between them exact zeros. Adding 0 * x to a
//! sum leaves it unchanged when x is finite and the sum is not -0.0. A sum is -0.0 only
//! when its terms so far cancel or underflow to it (1e-30 * -1e-30, say), and adding
//! +0 then makes it +0.0, equal in value. An infinite or NaN x would give NaN where the
//! row form adds nothing, so B is checked finite first, and a B that is not takes the
//! row form.

use core::mem::MaybeUninit;

use super::CsrRef;
use super::kernel::{Base, Out, Rows, column_block, store_row};
use crate::checked::item;
use crate::gemm::GemmKernel;
use crate::simd::{MAX_LANES, Simd};

/// A column of the union of two rows, with both rows' values there (0 for the row
/// that has none).
#[derive(Clone, Copy)]
struct Cell {
    col: u32,
    values: [f32; 2],
}

/// Cells merged ahead of the products (36 KiB): a run of pairs shares each block of
/// B's columns, which then stays in L1 from one pair to the next. On MNIST a pixel pair
/// has 45 cells on average and at most 177, so a run holds some 68 pairs; runs of 17
/// (9 KiB) took the weight gradient 1.05-1.13x faster than the row form, runs of 68
/// 1.13-1.34x, runs of 136 1.16x (Zen 3, BENCHMARKS.md). Only x86_64 has a backend with
/// pairs; elsewhere the scratch is empty, which keeps a small target's stack as it was.
#[cfg(target_arch = "x86_64")]
const CELLS: usize = 3072;
#[cfg(not(target_arch = "x86_64"))]
const CELLS: usize = 0;

/// Pairs in one run at most (a pair may have no cell).
const PAIRS: usize = if CELLS > 0 { 256 } else { 0 };

/// Where a thread merges its runs: made outside the backend's code (`RowsJob::run`),
/// so that the row form's stack frame stays small.
pub(super) struct Scratch {
    /// Written by `merge_run` before they are read: not zeroed for each call, which
    /// would take tens of KiB of L1 from the product.
    cells: [MaybeUninit<Cell>; CELLS],
    /// Where each pair's cells end in `cells`.
    ends: [u16; PAIRS],
}

impl Scratch {
    pub(super) fn new() -> Scratch {
        Scratch {
            cells: [MaybeUninit::uninit(); CELLS],
            ends: [0; PAIRS],
        }
    }
}

/// The pairs of a run may do at most this many FMAs (two a cell) per 100 entries, or the
/// run goes row by row: a pair's load of B feeds two FMAs, the row form's one. On Zen 3,
/// pixel pairs (117) ran 1.5x faster than the row form, image pairs (154) at 0.98-1.10x
/// with their merge counted (BENCHMARKS.md).
const MAX_FMAS_PER_100_ENTRIES: usize = 130;

/// Rows `lo..hi` of C = alpha * S * B + base by pairs where they pay; returns the first
/// row it left to the row form (`hi` when it did them all), at which point it stops.
///
/// # Safety
/// As `kernel::rows_times_dense`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn rows_in_pairs<S: GemmKernel>(
    s: S,
    csr: &CsrRef<'_>,
    lo: usize,
    hi: usize,
    b: Rows,
    n: usize,
    alpha: f32,
    base: Base,
    c: Out,
    scratch: &mut Scratch,
) -> usize {
    if S::PAIR_VECTORS == 0 || hi.saturating_sub(lo) < 2 || n == 0 {
        return lo;
    }
    let Scratch { cells, ends } = scratch;
    let mut b_checked = false;
    let mut r = lo;
    while r < hi {
        // The first run is one pair: where pairs do not pay (a batch by rows of
        // images, say), that is all the merging the call wastes.
        let most = if b_checked { PAIRS } else { 1 };
        let (pairs, used, entries) = merge_run(csr, r, hi, most, cells, ends);
        // Two FMAs a cell against one an entry.
        let pays = pairs > 0
            && used.saturating_mul(200) <= entries.saturating_mul(MAX_FMAS_PER_100_ENTRIES);
        if !pays {
            return r;
        }
        if !b_checked {
            // SAFETY: forwarded; B holds the rows of S's column indices, < cols.
            if !unsafe { rows_are_finite(s, b, csr.cols(), n) } {
                return r;
            }
            b_checked = true;
        }
        let block = column_block::<S>(n, S::PAIR_VECTORS.min(4));
        let mut j0 = 0;
        while j0 < n {
            let w = block.min(n - j0);
            let nv = w.div_ceil(S::LANES);
            let tail = w - (nv - 1) * S::LANES;
            let b_j = Rows {
                ptr: b.ptr.wrapping_add(j0),
                ..b
            };
            let base_j = match base {
                Base::Row(row) => Base::Row(row.wrapping_add(j0)),
                scale => scale,
            };
            let mut from = 0usize;
            for (q, &end) in ends.iter().enumerate().take(pairs) {
                let end = end as usize;
                let run = cells.get(from..end).unwrap_or(&[]);
                // SAFETY: `merge_run` wrote cells 0..used of this run, and end <= used.
                let run = unsafe { &*(core::ptr::from_ref(run) as *const [Cell]) };
                from = end;
                let i = r + 2 * q;
                let c_i = |row: usize| Out {
                    ptr: c.ptr.wrapping_add(row * c.rs + j0 * c.cs),
                    ..c
                };
                let block = PairBlock {
                    b: b_j,
                    tail,
                    alpha,
                    base: base_j,
                    c0: c_i(i),
                    c1: (i + 1 < hi).then(|| c_i(i + 1)),
                };
                // SAFETY: forwarded; columns j0..j0 + w are inside the n columns, and
                // rows i and i + 1 (when there) are in lo..hi.
                unsafe {
                    match nv {
                        1 => pair_block::<S, 1>(s, run, &block),
                        2 => pair_block::<S, 2>(s, run, &block),
                        3 => pair_block::<S, 3>(s, run, &block),
                        _ => pair_block::<S, 4>(s, run, &block),
                    }
                }
            }
            j0 += w;
        }
        r = (r + 2 * pairs).min(hi);
    }
    hi
}

/// Merges rows r, r + 1, r + 2, ... (up to `hi`; a last row alone pairs with an empty
/// one) two at a time into `cells`, as many pairs as fit, `most` at most. Returns the
/// pairs merged, the cells they take and the entries they hold.
fn merge_run(
    csr: &CsrRef<'_>,
    r: usize,
    hi: usize,
    most: usize,
    cells: &mut [MaybeUninit<Cell>; CELLS],
    ends: &mut [u16; PAIRS],
) -> (usize, usize, usize) {
    let (mut pairs, mut used, mut entries) = (0, 0, 0);
    let mut i = r;
    while i < hi && pairs < most.min(PAIRS) {
        let (ia, va) = csr.row(i);
        let (ib, vb) = if i + 1 < hi {
            csr.row(i + 1)
        } else {
            (&[][..], &[][..])
        };
        if used + ia.len() + ib.len() > CELLS {
            break;
        }
        used += merge_pair((ia, va), (ib, vb), cells.get_mut(used..).unwrap_or(&mut []));
        entries += ia.len() + ib.len();
        if let Some(end) = ends.get_mut(pairs) {
            // used <= CELLS < 2^16.
            *end = used as u16;
        }
        pairs += 1;
        i += 2;
    }
    (pairs, used, entries)
}

/// Writes the union of rows a and b (column indices, values) into `out`, a cell per
/// column with 0 for the row that lacks it. Returns n such that `out[..n]` is exactly
/// what was written, which the products' unsafe reads rely on; an `out` shorter than
/// both rows' entries truncates the union (the caller makes room first).
///
/// One test of both ends per step and no end marker (every u32 is a column when S has
/// 2^32), where the loop it replaced tested each row's end for each value; the rest of
/// the row whose last column is larger is copied after. The weight gradient ran at the
/// same speed (1.00-1.02x, Zen 3).
#[inline(always)]
fn merge_pair(a: (&[u32], &[f32]), b: (&[u32], &[f32]), out: &mut [MaybeUninit<Cell>]) -> usize {
    let ((ia, va), (ib, vb)) = (a, b);
    let (la, lb) = (ia.len().min(va.len()), ib.len().min(vb.len()));
    let mut put = |used: usize, col: u32, values: [f32; 2]| {
        if let Some(cell) = out.get_mut(used) {
            cell.write(Cell { col, values });
        }
    };
    let (mut x, mut y, mut used) = (0, 0, 0);
    while x < la && y < lb {
        let (p, q) = (item(ia, x, 0), item(ib, y, 0));
        let col = p.min(q);
        let (in_a, in_b) = (p == col, q == col);
        let (u, v) = (item(va, x, 0.0), item(vb, y, 0.0));
        put(
            used,
            col,
            [if in_a { u } else { 0.0 }, if in_b { v } else { 0.0 }],
        );
        used += 1;
        x += usize::from(in_a);
        y += usize::from(in_b);
    }
    // One row, at most, has columns left.
    for x in x..la {
        put(used, item(ia, x, 0), [item(va, x, 0.0), 0.0]);
        used += 1;
    }
    for y in y..lb {
        put(used, item(ib, y, 0), [0.0, item(vb, y, 0.0)]);
        used += 1;
    }
    used.min(out.len())
}

/// One block of columns of a pair of C's rows: B from the block's first column, C's
/// rows (the second absent for a last row alone) from theirs.
#[derive(Clone, Copy)]
struct PairBlock {
    b: Rows,
    /// Width of the last vector.
    tail: usize,
    alpha: f32,
    base: Base,
    c0: Out,
    c1: Option<Out>,
}

/// The block's columns (NV vectors, the last `tail` wide) of C's rows `c0` and `c1` =
/// alpha * (their sums over `cells`) + base.
///
/// # Safety
/// B holds a row for each cell's column with the block's columns readable; C's rows
/// hold the block's columns, owned; a row base is readable.
#[inline(always)]
unsafe fn pair_block<S: GemmKernel, const NV: usize>(s: S, cells: &[Cell], blk: &PairBlock) {
    let PairBlock {
        b,
        tail,
        alpha,
        base,
        c0,
        c1,
    } = *blk;
    // SAFETY: forwarded.
    let acc = unsafe {
        if tail == S::LANES {
            pair_sums::<S, NV, true>(s, cells, b, tail)
        } else {
            pair_sums::<S, NV, false>(s, cells, b, tail)
        }
    };
    // SAFETY: forwarded.
    unsafe {
        store_row(s, &acc[0], tail, alpha, base, c0);
        if let Some(c1) = c1 {
            store_row(s, &acc[1], tail, alpha, base, c1);
        }
    }
}

/// Both rows' sums over `cells` (a loop for each kind of last vector, without the
/// other's test).
///
/// # Safety
/// As [`pair_block`], and `tail == S::LANES` when `WHOLE_LAST`.
#[inline(always)]
unsafe fn pair_sums<S: Simd, const NV: usize, const WHOLE_LAST: bool>(
    s: S,
    cells: &[Cell],
    b: Rows,
    tail: usize,
) -> [[S::V; NV]; 2] {
    let last = NV - 1;
    let mut acc = [[s.splat(0.0); NV]; 2];
    for cell in cells {
        let row = b.ptr.wrapping_add(cell.col as usize * b.rs);
        let x = [s.splat(cell.values[0]), s.splat(cell.values[1])];
        let [first, second] = &mut acc;
        for (q, (a0, a1)) in first.iter_mut().zip(second.iter_mut()).enumerate() {
            // SAFETY: B's row `col` holds the block's columns; the last vector reads
            // only `tail` of them.
            let bq = unsafe {
                if WHOLE_LAST || q < last {
                    s.load_ptr(row.add(q * S::LANES))
                } else {
                    s.load_partial(
                        core::slice::from_raw_parts(row.add(q * S::LANES), tail),
                        0.0,
                    )
                }
            };
            *a0 = s.fma(x[0], bq, *a0);
            *a1 = s.fma(x[1], bq, *a1);
        }
    }
    acc
}

/// Whether rows 0..rows of B, `n` columns each, are all finite: 0 * x is 0 for finite
/// x and NaN for an infinity or a NaN, so their sum is 0 exactly when all are.
///
/// # Safety
/// B holds rows 0..rows with `n` readable floats.
#[inline(always)]
unsafe fn rows_are_finite<S: Simd>(s: S, b: Rows, rows: usize, n: usize) -> bool {
    let zero = s.splat(0.0);
    let mut sum = zero;
    let whole = n / S::LANES * S::LANES;
    for p in 0..rows {
        let row = b.ptr.wrapping_add(p * b.rs);
        let mut j = 0;
        while j < whole {
            // SAFETY: j + LANES <= n columns of row p.
            sum = s.fma(zero, unsafe { s.load_ptr(row.add(j)) }, sum);
            j += S::LANES;
        }
        if whole < n {
            // SAFETY: the row's last n - whole columns.
            let part = unsafe { core::slice::from_raw_parts(row.add(whole), n - whole) };
            sum = s.fma(zero, s.load_partial(part, 0.0), sum);
        }
    }
    let mut lanes = [0.0f32; MAX_LANES];
    s.store(&mut lanes, sum);
    lanes.iter().all(|x| *x == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The union by definition: each column of either row once, in order, with both
    /// rows' values (0 where a row lacks it).
    fn union(a: (&[u32], &[f32]), b: (&[u32], &[f32])) -> Vec<(u32, [f32; 2])> {
        let mut cols: Vec<u32> = a.0.iter().chain(b.0).copied().collect();
        cols.sort_unstable();
        cols.dedup();
        let at = |(idx, val): (&[u32], &[f32]), c: u32| {
            idx.iter()
                .zip(val)
                .find(|(p, _)| **p == c)
                .map_or(0.0, |(_, v)| *v)
        };
        cols.into_iter()
            .map(|c| (c, [at(a, c), at(b, c)]))
            .collect()
    }

    fn merged(a: (&[u32], &[f32]), b: (&[u32], &[f32]), room: usize) -> Vec<(u32, [f32; 2])> {
        let mut out = vec![MaybeUninit::<Cell>::uninit(); room];
        let n = merge_pair(a, b, &mut out);
        assert!(n <= room);
        // SAFETY: merge_pair wrote out[..n].
        out[..n]
            .iter()
            .map(|c| unsafe { c.assume_init() })
            .map(|c| (c.col, c.values))
            .collect()
    }

    #[test]
    fn merge_pair_is_the_union_of_two_rows() {
        let max = u32::MAX;
        let rows: [(&[u32], &[f32]); 7] = [
            (&[], &[]),
            (&[3], &[1.0]),
            (&[1, 2, 3], &[2.0, 3.0, 4.0]),
            (&[5], &[5.0]),
            (&[0, max], &[6.0, 7.0]),
            (&[max], &[8.0]),
            (&[2, 4, 9, 11], &[-1.0, -2.0, -3.0, -4.0]),
        ];
        for a in rows {
            for b in rows {
                let want = union(a, b);
                assert_eq!(merged(a, b, a.0.len() + b.0.len()), want, "{a:?} {b:?}");
                // A short `out` keeps a prefix of the union, exactly what it wrote.
                let short = want.len().saturating_sub(1);
                assert_eq!(merged(a, b, short), want[..short], "{a:?} {b:?}, short");
            }
        }
        // Indices and values of different lengths: the shorter bounds the row.
        let got = merged((&[1, 2, 3], &[1.0]), (&[2], &[5.0, 6.0]), 4);
        assert_eq!(got, [(1, [1.0, 0.0]), (2, [0.0, 5.0])]);
    }
}
