//! Register tiles and cache blocks per backend.
//!
//! The micro-kernel keeps an MR x NR tile of C in registers, NR = NV vectors along a
//! row of C (so row-major C is stored with plain vector stores), and per step of k
//! loads NV vectors of packed B and broadcasts MR scalars of A: MR*NV FMAs for NV + MR
//! loads. The tile is as large as the register file allows, leaving room for the B
//! vectors and one broadcast:
//!
//! | backend  | registers    | MR x NV (NR)  | accumulators + B + broadcast |
//! |----------|--------------|---------------|------------------------------|
//! | avx512   | 32 x 512 bit | 12 x 2 (32)   | 24 + 2 + 1 = 27              |
//! | avx2     | 16 x 256 bit | 6 x 2 (16)    | 12 + 2 + 1 = 15              |
//! | portable | 16 x 128 bit | 6 x 1 (8)     | 12 + 2 + 1 = 15 (f32x8 = 2 xmm) |
//!
//! Cache blocks, after BLIS (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly
//! Instantiating BLAS Functionality", 2015, and Low et al., "Analytical Modeling Is
//! Enough for High-Performance BLIS", 2016), for a core with 48 KiB L1d and 2 MiB L2
//! (Sapphire Rapids; Skylake-X and Ice Lake servers are close):
//!
//! * KC: the packed B micro-panel, KC x NR floats, is reused by every MR-row tile of
//!   the block and must stay in L1 next to the A rows streaming through:
//!   256 x 32 x 4 B = 32 KiB of the 48 KiB.
//! * MC: the rows of A that one B micro-panel meets, MC x KC floats, stay in L2:
//!   480 x 256 x 4 B = 480 KiB, a quarter of L2, leaving room for C and the B panel.
//! * NC: the packed B block, KC x NC floats, lives in L3: 256 x 4096 x 4 B = 4 MiB.
//!
//! Those are the largest blocks, and they size the workspace
//! ([`gemm_workspace_len`](crate::gemm_workspace_len)) for any CPU. At run time
//! [`blocks`] derives each CPU's own from its caches ([`Caches::detect`]) by the
//! analytical model of Low et al. (section 4): of L1's W ways, the A micro-panel
//! (MR x KC) gets C_A = ceil((W - 1) * MR / (MR + NR)), the B micro-panel the other
//! W - 1 - C_A (one way is left to C), so KC = (W - 1 - C_A) * (L1 / W) / (NR * 4).
//! Sapphire Rapids (48 KiB, 12 ways) gets KC = 256 with the AVX-512 tile; Zen 4 and
//! Cascade Lake (32 KiB, 8 ways) get 160, where 256 filled all of L1 with B.
//! MC and NC fill half of L2 and of L3 (when there is one).

/// Depth of one packed block of k.
pub(crate) const KC: usize = 256;
/// Rows of A per L2 block, a multiple of every MR.
pub(crate) const MC: usize = 480;
/// Columns of B per packed block, a multiple of every NR.
pub(crate) const NC: usize = 4096;
/// The largest MR and NR of any backend (for workspace sizes).
pub(crate) const MR_MAX: usize = 12;
pub(crate) const NR_MAX: usize = 32;
/// Floats of slack to align the packed buffers to 64 bytes.
pub(crate) const ALIGN_SLACK: usize = 16;

use super::caches::Caches;

/// The smallest KC the model may give (a thinner block pays a pass over C for little
/// work).
const KC_MIN: usize = 64;

/// (KC, MC, NC) for a backend with an MR x NR register tile on caches `c`, each at
/// most the constants above.
pub(crate) fn blocks(c: &Caches, mr: usize, nr: usize) -> (usize, usize, usize) {
    let ways = c.l1d_ways.max(2);
    let way_bytes = c.l1d / ways;
    let a_ways = ((ways - 1) * mr).div_ceil(mr + nr);
    let b_ways = (ways - 1).saturating_sub(a_ways).max(1);
    let kc = (b_ways * way_bytes / (nr * 4)).clamp(KC_MIN, KC) / 8 * 8;
    let mc = (c.l2 / 2 / (kc * 4) / MR_MAX * MR_MAX).clamp(MR_MAX, MC);
    let nc = if c.l3 == 0 {
        NC
    } else {
        (c.l3 / 2 / (kc * 4) / NR_MAX * NR_MAX).clamp(NR_MAX, NC)
    };
    (kc, mc, nc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    /// The model's blocks for the three machines this crate has run on, worked out by
    /// hand from Low et al.'s formulas (see the module docs).
    #[test]
    fn the_model_gives_each_cpu_its_blocks() {
        let spr = Caches {
            l1d: 48 * KIB,
            l1d_ways: 12,
            l2: 2048 * KIB,
            l3: 105 * 1024 * KIB,
        };
        let zen4 = Caches {
            l1d: 32 * KIB,
            l1d_ways: 8,
            l2: 1024 * KIB,
            l3: 32 * 1024 * KIB,
        };
        // AVX-512, 12 x 32: SPR C_A = ceil(11 * 12 / 44) = 3 ways, B gets 8 of 4 KiB:
        // KC = 8 * 4096 / 128 = 256; Zen 4 C_A = ceil(7 * 12 / 44) = 2, B gets 5: 160.
        assert_eq!(blocks(&spr, 12, 32), (256, 480, 4096));
        // Zen 4's MC from half of 1 MiB: 512 KiB / (160 * 4) = 819 -> 816, capped at 480.
        assert_eq!(blocks(&zen4, 12, 32), (160, 480, 4096));
        // AVX2, 6 x 16: C_A = ceil(7 * 6 / 22) = 2, B gets 5 ways: 5 * 4096 / 64 = 320,
        // capped at 256.
        assert_eq!(blocks(&zen4, 6, 16).0, 256);
        // A small core without L3 (the fallback): NC stays at its cap.
        let (kc, mc, nc) = blocks(&Caches::FALLBACK, 6, 8);
        assert_eq!((kc, nc), (256, NC));
        assert!(mc.is_multiple_of(MR_MAX) && mc <= MC);
        // A tiny L2 still gives whole tiles.
        let tiny = Caches {
            l1d: 16 * KIB,
            l1d_ways: 4,
            l2: 64 * KIB,
            l3: 0,
        };
        let (kc, mc, _) = blocks(&tiny, 12, 32);
        assert!(kc >= KC_MIN && mc >= MR_MAX && mc.is_multiple_of(MR_MAX));
    }
}
