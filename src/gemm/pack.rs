//! Packing: copying a block of an operand into the order the micro-kernel reads.
//!
//! B (kc x nc) becomes ceil(nc / NR) micro-panels, each kc rows of NR contiguous
//! floats, zero-padded past nc, so that the kernel's vector loads are unit-stride and
//! never leave the buffer. A is mostly read in place (the broadcasts do not need
//! contiguity); `blocked` packs it into MR-row panels when in place would cost more
//! (two non-unit strides, columns contiguous under many B panels, or rows 4 KiB apart).

use super::MatRef;
use super::kernel::GemmKernel;

/// Packs B[p0.., j0..] (kc x nc) into `dst`, panel after panel of `kc * nr` floats.
///
/// B with unit column stride is copied row by row. B with unit row stride (B^T stored
/// row-major, as the weight in x W^T) is transposed in 8 x 8 blocks by the backend's
/// [`GemmKernel::transpose8`]; anything else is gathered element by element.
#[inline(always)]
pub(crate) fn pack_b<S: GemmKernel>(
    s: S,
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    dst: &mut [f32],
) {
    let nr = S::NR;
    debug_assert!(
        dst.len() >= nc.div_ceil(nr) * kc * nr,
        "pack_b: buffer of {} floats for {nc} columns of depth {kc}",
        dst.len()
    );
    debug_assert!(kc > 0);
    // (A zero depth never reaches here; `max` keeps the chunk size legal regardless.)
    for (jp, panel) in (0..nc)
        .step_by(nr)
        .zip(dst.chunks_exact_mut((kc * nr).max(1)))
    {
        let w = nr.min(nc - jp);
        if b.rs == 1 && b.cs != 1 {
            pack_b_transposed(s, b, p0, kc, j0 + jp, w, panel);
            continue;
        }
        for (p, out) in panel.chunks_exact_mut(nr).enumerate() {
            let (row, rest) = out.split_at_mut(w);
            if b.cs == 1 {
                for (x, &y) in row.iter_mut().zip(b.run(p0 + p, j0 + jp, w)) {
                    *x = y;
                }
            } else {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = b.at(p0 + p, j0 + jp + j);
                }
            }
            rest.fill(0.0);
        }
    }
}

/// One panel of B whose columns are contiguous: B(p, j) = data[j * cs + p].
#[inline(always)]
fn pack_b_transposed<S: GemmKernel>(
    s: S,
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    w: usize,
    panel: &mut [f32],
) {
    let nr = S::NR;
    let (full_j, full_p) = (w / 8 * 8, kc / 8 * 8);
    for jb in (0..full_j).step_by(8) {
        for pb in (0..full_p).step_by(8) {
            // The block reads rows j0+jb..+8 at columns p0+pb..+8 of the stored B^T,
            // all inside the view; it writes 8 rows of 8 inside the panel.
            let src = b.data.get((j0 + jb) * b.cs + p0 + pb..).unwrap_or_default();
            let out = panel.get_mut(pb * nr + jb..).unwrap_or_default();
            if !transpose8_in(s, src, b.cs, out, nr) {
                // Unreachable for checked views; kept so that no block is ever skipped.
                for (q, row) in out.chunks_mut(nr).take(8).enumerate() {
                    for (r, x) in row.iter_mut().take(8).enumerate() {
                        *x = b.at(p0 + pb + q, j0 + jb + r);
                    }
                }
            }
        }
    }
    for (p, row) in panel.chunks_exact_mut(nr).take(kc).enumerate().skip(full_p) {
        for (j, x) in row.iter_mut().enumerate().take(full_j) {
            *x = b.at(p0 + p, j0 + j);
        }
    }
    for (p, row) in panel.chunks_exact_mut(nr).take(kc).enumerate() {
        for (j, x) in row.iter_mut().enumerate().skip(full_j) {
            *x = if j < w { b.at(p0 + p, j0 + j) } else { 0.0 };
        }
    }
}

/// Packs A[i0.., p0..] (mc x kc) into MR-row panels: element (i, p) of panel q at
/// `q * kc * mr + p * mr + i`, zero-padded past mc.
///
/// Row-major A (packed when its row stride is a multiple of 4 KiB) is transposed in
/// 8 x 8 blocks by the backend's [`GemmKernel::transpose8`]; a panel of 12 rows takes
/// rows 0..8 and 4..12, the four in the middle written twice with the same values.
/// Element by element, hopping between rows that share an L1 set, the packing took 5%
/// of a 1024^3 product on Zen 4.
#[inline(always)]
pub(crate) fn pack_a<S: GemmKernel>(
    s: S,
    a: &MatRef<'_>,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let mr = S::MR;
    debug_assert!(
        dst.len() >= mc.div_ceil(mr) * kc * mr,
        "pack_a: buffer of {} floats for {mc} rows of depth {kc}",
        dst.len()
    );
    debug_assert!(kc > 0);
    for (ip, panel) in (0..mc)
        .step_by(mr)
        .zip(dst.chunks_exact_mut((kc * mr).max(1)))
    {
        let h = mr.min(mc - ip);
        // Columns 0..done of rows 0..h are packed by blocks; the rest element-wise.
        let done = if a.cs == 1 && h >= 8 {
            pack_a_rows_transposed(s, a, i0 + ip, h, p0, kc, panel);
            kc / 8 * 8
        } else {
            0
        };
        for (p, col) in panel.chunks_exact_mut(mr).enumerate() {
            let (head, tail) = col.split_at_mut(h);
            tail.fill(0.0);
            if p < done {
                continue;
            }
            if a.rs == 1 {
                for (x, &y) in head.iter_mut().zip(a.run(i0 + ip, p0 + p, h)) {
                    *x = y;
                }
            } else {
                for (i, x) in head.iter_mut().enumerate() {
                    *x = a.at(i0 + ip + i, p0 + p);
                }
            }
        }
    }
}

/// Columns 0..kc / 8 * 8 of the `h` (8..=MR) rows from `i` of row-major A, into an
/// A panel, by 8 x 8 transposes: row blocks from 0 in steps of 8, and a last one
/// ending at row h when 8 does not divide h.
#[inline(always)]
fn pack_a_rows_transposed<S: GemmKernel>(
    s: S,
    a: &MatRef<'_>,
    i: usize,
    h: usize,
    p0: usize,
    kc: usize,
    panel: &mut [f32],
) {
    let mr = S::MR;
    let last = h - 8;
    let row_blocks = (0..last).step_by(8).chain(core::iter::once(last));
    for rb in row_blocks {
        for pb in (0..kc / 8 * 8).step_by(8) {
            // The block reads rows i+rb..+8 at columns p0+pb..+8 of A, inside the
            // view, and writes 8 columns of 8 rows inside the panel.
            let src = a.data.get((i + rb) * a.rs + p0 + pb..).unwrap_or_default();
            let out = panel.get_mut(pb * mr + rb..).unwrap_or_default();
            if !transpose8_in(s, src, a.rs, out, mr) {
                // Unreachable for checked views; kept so that no block is ever skipped.
                for (q, col) in out.chunks_mut(mr).take(8).enumerate() {
                    for (r, x) in col.iter_mut().take(8).enumerate() {
                        *x = a.at(i + rb + r, p0 + pb + q);
                    }
                }
            }
        }
    }
}

/// `out[q * ds + r] = src[r * ss + q]` for r, q < 8 by the backend's
/// [`GemmKernel::transpose8`], when both slices hold their 8 x 8 block; `false`, and
/// nothing written, when one is short (never for checked views: the caller then
/// copies element by element, so that no block is ever skipped).
#[inline(always)]
fn transpose8_in<S: GemmKernel>(s: S, src: &[f32], ss: usize, out: &mut [f32], ds: usize) -> bool {
    let fits = |len: usize, stride: usize| {
        stride
            .checked_mul(7)
            .and_then(|x| x.checked_add(8))
            .is_some_and(|need| len >= need)
    };
    if !(fits(src.len(), ss) && fits(out.len(), ds)) {
        return false;
    }
    // SAFETY: the two length checks above cover every address touched.
    unsafe { s.transpose8(src.as_ptr(), ss, out.as_mut_ptr(), ds) };
    true
}
