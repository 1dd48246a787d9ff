//! Packing: copying a block of an operand into the order the micro-kernel reads.
//!
//! B (kc x nc) becomes ceil(nc / NR) micro-panels, each kc rows of NR contiguous
//! floats, zero-padded past nc, so that the kernel's vector loads are unit-stride and
//! never leave the buffer. A is read in place when one of its strides is 1 (the
//! broadcasts do not need contiguity); only A with two non-unit strides is packed,
//! into MR-row panels.

use super::MatRef;

/// Packs B[p0.., j0..] (kc x nc) into `dst`, panel after panel of `kc * nr` floats.
pub(crate) fn pack_b(
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    nr: usize,
    dst: &mut [f32],
) {
    for (jp, panel) in (0..nc).step_by(nr).zip(dst.chunks_exact_mut(kc * nr)) {
        let w = nr.min(nc - jp);
        for (p, out) in panel.chunks_exact_mut(nr).enumerate() {
            let (row, rest) = out.split_at_mut(w);
            if b.cs == 1 {
                let start = (p0 + p) * b.rs + j0 + jp;
                row.copy_from_slice(&b.data[start..start + w]);
            } else {
                let base = (p0 + p) * b.rs + (j0 + jp) * b.cs;
                for (j, x) in row.iter_mut().enumerate() {
                    *x = b.data[base + j * b.cs];
                }
            }
            rest.fill(0.0);
        }
    }
}

/// Packs A[i0.., p0..] (mc x kc) into MR-row panels: element (i, p) of panel q at
/// `q * kc * mr + p * mr + i`, zero-padded past mc.
pub(crate) fn pack_a(
    a: &MatRef<'_>,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    dst: &mut [f32],
) {
    for (ip, panel) in (0..mc).step_by(mr).zip(dst.chunks_exact_mut(kc * mr)) {
        let h = mr.min(mc - ip);
        for (p, col) in panel.chunks_exact_mut(mr).enumerate() {
            let base = (i0 + ip) * a.rs + (p0 + p) * a.cs;
            for (i, x) in col.iter_mut().enumerate() {
                *x = if i < h { a.data[base + i * a.rs] } else { 0.0 };
            }
        }
    }
}
