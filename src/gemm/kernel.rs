//! Micro-kernels: an MR x NR tile of C = alpha * A * B + beta * C, with the tile held in
//! registers over the whole depth kc. Written once over `Simd`; each backend fixes its
//! MR and NV in [`GemmKernel`] (see `blocking.rs` for why those sizes). One exception:
//! the depth loops of AVX2's whole 6 x 16 tile and AVX-512's whole 12 x 32 tile are
//! assembly (`avx2_tile.rs` and `avx512_tile.rs` say why), with the same FMAs in the
//! same order, so the same bits.

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use crate::simd::{Avx2, Avx512};
use crate::simd::{Portable, Simd, load_any, store_any};

// The blocking invariants, checked by the compiler: the workspace is sized with
// MR_MAX and NR_MAX, and MC and NC are cut into whole tiles, for every backend.
const _: () = {
    use super::blocking::{MC, MR_MAX, NC, NR_MAX};
    const fn fits<K: GemmKernel>() -> bool {
        MR_MAX.is_multiple_of(K::MR)
            && NR_MAX.is_multiple_of(K::NR)
            && MC.is_multiple_of(K::MR)
            && NC.is_multiple_of(K::NR)
    }
    assert!(fits::<Portable>());
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    assert!(fits::<Avx2>() && fits::<Avx512>());
};

/// One tile's operands, as raw parts checked by the caller.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    /// Depth.
    pub kc: usize,
    /// A at the tile's first row: element (i, p) at `a + i * ars + p * acs`.
    pub a: *const f32,
    pub ars: usize,
    pub acs: usize,
    /// Packed B micro-panel: element (p, j) at `b + p * brs + j`, zero-padded to NR.
    pub b: *const f32,
    pub brs: usize,
    /// C at the tile's first element: (i, j) at `c + i * crs + j * ccs`.
    pub c: *mut f32,
    pub crs: usize,
    pub ccs: usize,
    /// Columns of C to write (<= NR).
    pub cols: usize,
    pub alpha: f32,
    pub beta: f32,
}

/// A backend's register tile. `tile` computes and stores `rows` (<= MR) rows.
pub(crate) trait GemmKernel: Simd {
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile (NV vectors).
    const NR: usize;
    /// Vectors of one row of C that the sparse kernels keep in registers (at most
    /// 16): the register file less one broadcast and one loaded vector.
    const ROW_VECTORS: usize;
    /// Vectors of a block of two rows of C in the sparse kernels' pairs (at most 4; 0:
    /// no pairs). Set where measured: AVX2 on Zen 3 (BENCHMARKS.md).
    const PAIR_VECTORS: usize = 0;
    /// Whether a small batch's x.W^T runs as W.x^T (`transposed.rs`). Set where
    /// measured: AVX-512 on Sapphire Rapids. Off elsewhere, and so on the firmware,
    /// whose flash the route's code cost 7.5 KiB at opt-level "s".
    const TRANSPOSES_SMALL_BATCH: bool = false;

    /// # Safety
    /// Every address of `t` the tile touches for `rows` rows, `t.kc` depth and
    /// `t.cols` columns must be valid; the B panel must hold `t.kc * t.brs` floats.
    unsafe fn tile(self, t: &Tile, rows: usize);

    /// Columns of a last, narrow panel that [`GemmKernel::tile_with_edge`] takes in
    /// the depth loop of the whole panel before it (0: none).
    const EDGE_COLS: usize = 0;

    /// The tiles of `t`, a whole panel (NR columns), and `edge`, the last panel of at
    /// most `EDGE_COLS` columns to its right, `rows` rows each.
    ///
    /// # Safety
    /// As [`GemmKernel::tile`] for both.
    // Not `inline(always)`: never called where EDGE_COLS is 0, it was still inlined
    // into the loop nest before being found dead, and the AVX2 tile there came out
    // 10% slower (200x200x784 on Zen 4: 89 against 99 GFLOP/s; worse register use).
    #[inline]
    unsafe fn tile_with_edge(self, t: &Tile, edge: &Tile, rows: usize) {
        // SAFETY: forwarded.
        unsafe {
            self.tile(t, rows);
            self.tile(edge, rows);
        }
    }

    /// dst[q * dst_stride + r] = src[r * src_stride + q] for r, q < 8.
    ///
    /// # Safety
    /// The 8 rows of 8 floats at `src` and at `dst` must be valid.
    #[inline(always)]
    unsafe fn transpose8(
        self,
        src: *const f32,
        src_stride: usize,
        dst: *mut f32,
        dst_stride: usize,
    ) {
        for r in 0..8 {
            for q in 0..8 {
                // SAFETY: the caller guarantees both 8 x 8 blocks.
                unsafe { *dst.add(q * dst_stride + r) = *src.add(r * src_stride + q) };
            }
        }
    }
}

/// The 8 x 8 transpose in AVX registers: unpack pairs, shuffle quads, swap halves
/// (the classic three-stage network; 24 shuffles for 64 floats).
///
/// # Safety
/// AVX must be available, and the blocks valid as for [`GemmKernel::transpose8`].
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
unsafe fn transpose8_avx(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    use core::arch::x86_64::*;
    // SAFETY: the caller guarantees AVX and the addresses.
    unsafe {
        let r: [__m256; 8] = core::array::from_fn(|i| _mm256_loadu_ps(src.add(i * ss)));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xee>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xee>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xee>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xee>(t5, t7);
        let o = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (q, v) in o.iter().enumerate() {
            _mm256_storeu_ps(dst.add(q * ds), *v);
        }
    }
}

/// The body shared by the backends: full MR-row tiles with NV or 1 vectors, edge rows
/// as 8-, 4-, 2- and 1-row tiles.
macro_rules! tile_body {
    ($S:ty, $s:ident, $t:ident, $rows:ident, $mr:literal, $nv:literal) => {{
        let one_vector = $t.cols <= <$S as Simd>::LANES;
        // SAFETY (each call): the caller guarantees the addresses of `rows` rows.
        unsafe {
            if $rows == $mr {
                if one_vector {
                    run::<$S, $mr, 1>($s, $t)
                } else {
                    run::<$S, $mr, $nv>($s, $t)
                }
                return;
            }
            let mut t = *$t;
            let mut left = $rows;
            if $mr > 8 && left >= 8 {
                if one_vector {
                    run::<$S, 8, 1>($s, &t)
                } else {
                    run::<$S, 8, $nv>($s, &t)
                }
                t.a = t.a.wrapping_add(8 * t.ars);
                t.c = t.c.wrapping_add(8 * t.crs);
                left -= 8;
            }
            while left >= 4 {
                if one_vector {
                    run::<$S, 4, 1>($s, &t)
                } else {
                    run::<$S, 4, $nv>($s, &t)
                }
                t.a = t.a.wrapping_add(4 * t.ars);
                t.c = t.c.wrapping_add(4 * t.crs);
                left -= 4;
            }
            // A 2-row tile, not two 1-row tiles: the depth loop of one row loads
            // more than it multiplies (10 rows on AVX-512, fc3's dW = dy^T.h: 13.4
            // us as 8 + 1 + 1, 11.4 as 8 + 2).
            if left >= 2 {
                if one_vector {
                    run::<$S, 2, 1>($s, &t)
                } else {
                    run::<$S, 2, $nv>($s, &t)
                }
                t.a = t.a.wrapping_add(2 * t.ars);
                t.c = t.c.wrapping_add(2 * t.crs);
                left -= 2;
            }
            while left > 0 {
                if one_vector {
                    run::<$S, 1, 1>($s, &t)
                } else {
                    run::<$S, 1, $nv>($s, &t)
                }
                t.a = t.a.wrapping_add(t.ars);
                t.c = t.c.wrapping_add(t.crs);
                left -= 1;
            }
        }
    }};
}

impl GemmKernel for Portable {
    const MR: usize = 6;
    const NR: usize = 8;
    // f32x8 is two xmm registers of the 16.
    const ROW_VECTORS: usize = 6;
    #[inline(always)]
    unsafe fn tile(self, t: &Tile, rows: usize) {
        tile_body!(Self, self, t, rows, 6, 1)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
impl GemmKernel for Avx2 {
    #[inline(always)]
    unsafe fn transpose8(self, src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
        // SAFETY: the token proves AVX; the caller guarantees the blocks.
        unsafe { transpose8_avx(src, ss, dst, ds) }
    }
    const MR: usize = 6;
    const NR: usize = 16;
    const ROW_VECTORS: usize = 13;
    // 8 accumulators, 2 broadcasts, B's vector: 4 did best of 3, 4 and 6 on Zen 3.
    const PAIR_VECTORS: usize = 4;
    #[inline(always)]
    unsafe fn tile(self, t: &Tile, rows: usize) {
        // The whole tile's depth loop in assembly (see `avx2_tile.rs` for why), its
        // edges through the generic body.
        if rows == 6 && t.cols > Self::LANES {
            // SAFETY: the token proves AVX2 and FMA; the caller guarantees 6 rows and
            // the panel's 16 columns at every depth.
            unsafe { store(self, &super::avx2_tile::depth_loop_6x16(t), t) };
            return;
        }
        tile_body!(Self, self, t, rows, 6, 2)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
impl GemmKernel for Avx512 {
    #[inline(always)]
    unsafe fn transpose8(self, src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
        // SAFETY: the token proves AVX; the caller guarantees the blocks.
        unsafe { transpose8_avx(src, ss, dst, ds) }
    }
    const MR: usize = 12;
    const NR: usize = 32;
    const ROW_VECTORS: usize = 16;
    const TRANSPOSES_SMALL_BATCH: bool = true;
    #[inline(always)]
    unsafe fn tile(self, t: &Tile, rows: usize) {
        // As AVX2's: the whole tile's depth loop in assembly (`avx512_tile.rs`).
        if rows == 12 && t.cols > Self::LANES {
            // SAFETY: the token proves AVX-512F; the caller guarantees 12 rows and
            // the panel's 32 columns at every depth.
            unsafe { store(self, &super::avx512_tile::depth_loop_12x32(t), t) };
            return;
        }
        tile_body!(Self, self, t, rows, 12, 2)
    }

    // n = 200 is 6 panels of 32 and one of 8. Alone, the 8-column panel's tile is
    // bound by its broadcasts of A, one per row and step of depth whatever the width
    // (12 rows: 8, 16 and 32 columns at 48.5, 106.5 and 110.8 GFLOP/s, Zen 4), and
    // costs half a whole tile for a quarter of its work. Beside the panel before it,
    // with its 8 columns in 256-bit vectors, the two share the broadcasts.
    const EDGE_COLS: usize = 8;

    #[inline(always)]
    unsafe fn tile_with_edge(self, t: &Tile, edge: &Tile, rows: usize) {
        if t.cols != Self::NR || edge.cols > Self::EDGE_COLS {
            // Outside the contract; the separate tiles are right for any shape.
            // SAFETY: forwarded.
            unsafe {
                self.tile(t, rows);
                self.tile(edge, rows);
            }
            return;
        }
        let h = Avx2::from_avx512(self);
        let (mut t, mut e) = (*t, *edge);
        let mut left = rows;
        while left > 0 {
            // 8 rows of 2 + 1 vectors: 24 accumulators of the 32 registers.
            let r = [8, 4, 2, 1].into_iter().find(|&r| r <= left).unwrap_or(1);
            // SAFETY: the caller guarantees `rows` rows of both tiles; r <= left.
            unsafe {
                match r {
                    8 => run_with_edge::<Self, Avx2, 8, 2>(self, h, &t, &e),
                    4 => run_with_edge::<Self, Avx2, 4, 2>(self, h, &t, &e),
                    2 => run_with_edge::<Self, Avx2, 2, 2>(self, h, &t, &e),
                    _ => run_with_edge::<Self, Avx2, 1, 2>(self, h, &t, &e),
                }
            }
            t.a = t.a.wrapping_add(r * t.ars);
            t.c = t.c.wrapping_add(r * t.crs);
            e.a = t.a;
            e.c = e.c.wrapping_add(r * e.crs);
            left -= r;
        }
    }
}

/// [`run`] for an MR x (NV vectors of S) tile `t` and, in the same depth loop, the
/// MR x (one vector of H) tile `edge` beside it: the rows of A are broadcast once for
/// both. Each element's sum is the same FMAs in the same order as in [`run`], so the
/// bits are those of the separate tiles.
///
/// # Safety
/// As [`run`] for each tile; they share A (`edge.a == t.a`, same strides and depth),
/// every vector of `t` is whole, and `edge` has at most H::LANES columns.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
unsafe fn run_with_edge<S: Simd, H: Simd, const MR: usize, const NV: usize>(
    s: S,
    h: H,
    t: &Tile,
    edge: &Tile,
) {
    debug_assert!(edge.a == t.a && edge.kc == t.kc && edge.acs == t.acs);
    let (zero, zero_h) = (s.splat(0.0), h.splat(0.0));
    let mut acc = [[zero; NV]; MR];
    let mut acc_h = [[zero_h; 1]; MR];
    let (mut a, mut b, mut be) = (t.a, t.b, edge.b);
    for _ in 0..t.kc {
        // SAFETY: as in `run`, for both panels.
        unsafe {
            let mut bv = [zero; NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = s.load_ptr(b.add(v * S::LANES));
            }
            let bh = h.load_ptr(be);
            for (i, (row, row_h)) in acc.iter_mut().zip(acc_h.iter_mut()).enumerate() {
                let ai = *a.add(i * t.ars);
                let av = s.splat(ai);
                for (r, x) in row.iter_mut().zip(bv) {
                    *r = s.fma(av, x, *r);
                }
                row_h[0] = h.fma(h.splat(ai), bh, row_h[0]);
            }
            a = a.wrapping_add(t.acs);
            b = b.wrapping_add(t.brs);
            be = be.wrapping_add(edge.brs);
        }
    }
    // SAFETY: the caller guarantees the MR rows of both tiles.
    unsafe {
        store(s, &acc, t);
        store(h, &acc_h, edge);
    }
}

/// Computes an MR x (NV vectors) tile over the depth and stores it.
///
/// # Safety
/// As [`GemmKernel::tile`] for exactly MR rows, with NV such that every vector but
/// the last is whole (`tile_body` picks NV = 1 for at most LANES columns).
/// Otherwise [`store`] writes nothing.
#[inline(always)]
unsafe fn run<S: Simd, const MR: usize, const NV: usize>(s: S, t: &Tile) {
    let zero = s.splat(0.0);
    let mut acc = [[zero; NV]; MR];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        // SAFETY: p < kc, so b + p * brs + NV * LANES <= the panel's end (the panel is
        // NR >= NV * LANES wide), and a + i * ars + p * acs is an element of A.
        unsafe {
            let mut bv = [zero; NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = s.load_ptr(b.add(v * S::LANES));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = s.splat(*a.add(i * t.ars));
                for (r, x) in row.iter_mut().zip(bv) {
                    *r = s.fma(ai, x, *r);
                }
            }
            // Wrapping: after the last step these point past A and B, unused.
            a = a.wrapping_add(t.acs);
            b = b.wrapping_add(t.brs);
        }
    }
    // SAFETY: the caller guarantees the MR rows and `cols` columns of C.
    unsafe { store(s, &acc, t) }
}

/// C tile = alpha * acc + beta * C, never reading C when beta is 0.
///
/// The loops run to MR and NV, constants, and alpha and beta are tested once, outside
/// them: the loops then unroll and the accumulators stay in registers from the depth
/// loop to the stores. A loop that stopped at the tile's last column and tested beta
/// per vector kept them on the stack instead (zeroed by a memset per tile), which at
/// depth 1 to 10 cost more than the products: 200x200x10 took 13.6 us against 9.6
/// now, 200x200x1 7.3 against 3.8 (Zen 4, avx512).
///
/// # Safety
/// As [`run`]; every vector of the tile but the last is whole (`tile_body` picks NV
/// so), the last holds the remaining 1..=LANES of `t.cols` columns.
#[inline(always)]
unsafe fn store<S: Simd, const MR: usize, const NV: usize>(s: S, acc: &[[S::V; NV]; MR], t: &Tile) {
    let (alpha, beta) = (s.splat(t.alpha), s.splat(t.beta));
    let tail = t.cols.wrapping_sub((NV - 1) * S::LANES);
    if !(1..=S::LANES).contains(&tail) {
        // Outside the contract; never so from `tile_body`. Nothing is written.
        debug_assert!(false, "{} columns in {NV} vectors", t.cols);
        return;
    }
    if t.ccs == 1 {
        // SAFETY (each call): forwarded, with the width of the last vector.
        unsafe {
            match (t.beta == 0.0, t.alpha == 1.0) {
                (true, true) => store_rows(s, acc, t, tail, None, None),
                (true, false) => store_rows(s, acc, t, tail, Some(alpha), None),
                (false, true) => store_rows(s, acc, t, tail, None, Some(beta)),
                (false, false) => store_rows(s, acc, t, tail, Some(alpha), Some(beta)),
            }
        }
        return;
    }
    // Strided C (not a layout the lesson uses): element by element, from a copy. The
    // loops here stop at the last column; run over `acc` itself, they would put it in
    // memory on every path of the tile, not only this one (64^3 then took 11.3 us
    // against 4.9, Zen 4).
    let acc: [[S::V; NV]; MR] = *acc;
    let mut buf = [0.0f32; crate::simd::MAX_LANES];
    for (i, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            let j = v * S::LANES;
            let w = if v + 1 == NV { tail } else { S::LANES };
            s.store(&mut buf, x);
            for (jj, &val) in buf.iter().enumerate().take(w) {
                // SAFETY: (i, j + jj) is an element of C.
                let c = unsafe { &mut *t.c.add(i * t.crs + (j + jj) * t.ccs) };
                let y = t.alpha * val;
                *c = if t.beta == 0.0 { y } else { t.beta * *c + y };
            }
        }
    }
}

/// C tile = alpha * acc + beta * C (an absent alpha is 1, an absent beta 0, and C is
/// then not read) for MR rows of NV vectors, the last `tail` wide, C's rows
/// contiguous. The factors are arguments that each caller's arm fixes, not closures:
/// a closure does not take its caller's target features, so the intrinsics in it were
/// left out of line (`scripts/no-panic.sh` now refuses that).
///
/// # Safety
/// As [`store`], with `t.ccs == 1`.
#[inline(always)]
unsafe fn store_rows<S: Simd, const MR: usize, const NV: usize>(
    s: S,
    acc: &[[S::V; NV]; MR],
    t: &Tile,
    tail: usize,
    alpha: Option<S::V>,
    beta: Option<S::V>,
) {
    for (i, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            let w = if v + 1 == NV { tail } else { S::LANES };
            // SAFETY: row i < MR and columns v * LANES.. + w <= cols are elements of C.
            let c =
                unsafe { core::slice::from_raw_parts_mut(t.c.add(i * t.crs + v * S::LANES), w) };
            let y = match alpha {
                Some(a) => s.mul(a, x),
                None => x,
            };
            let y = match beta {
                Some(b) => s.fma(b, load_any(s, c), y),
                None => y,
            };
            store_any(s, c, y);
        }
    }
}
