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
//! Those figures are AVX-512's. AVX2's narrower tile takes blocks twice as deep (see
//! below), so the largest blocks any CPU gets, which size the workspace
//! ([`gemm_workspace_len`](crate::gemm_workspace_len)), are KC = 512, MC and NC. At
//! run time [`blocks`] derives each CPU's own from its caches ([`Caches::detect`]).
//!
//! KC: Low et al.'s model (section 4) keeps the B micro-panel (KC x NR) in L1 beside
//! the A micro-panel, giving A C_A = ceil((W - 1) * MR / (MR + NR)) of L1's W ways
//! and B the rest but one: KC = 160 on Zen 4 (32 KiB, 8 ways) with the AVX-512 tile.
//! Measured there, that lost to KC = 256 at every bench shape (512^3: 89.9 against
//! 104.5 GFLOP/s in one sitting; 224 was level with 256), because this GEMM reads A
//! in place, unpacked, for most shapes: A's rows stream from L2 and claim no L1 ways.
//! So B's micro-panel gets all of L1, up to 32 KiB: KC = min(L1, 32 KiB) / (NR * 4).
//! With AVX-512's NR = 32 that is 256 on Zen 4, Cascade Lake and Sapphire Rapids
//! (whose 48 KiB L1d the cap holds at the 256 it had when KC itself was the cap);
//! 128 on a 16 KiB L1. With AVX2's NR = 16 it is 512: on Zen 3 (32 KiB L1d, 512 KiB
//! L2, AVX2 only), the old and new code interleaved in one process took 200x200x784
//! (two depth blocks of 392 instead of four of 196) 4-5% faster, 512^3 3-9% and
//! 1024^3 9-11%; 384 gave half of that. Each depth block is a pass over C, which a
//! 512 KiB L2 most likely does not keep beside the A and B blocks. (The AVX2 backend
//! on AVX-512 machines, which run it only when asked, was not measured with it.)
//!
//! MC and NC: the A block (MC x KC) fills half of L2, the packed B block (KC x NC)
//! half of L3 (when there is one).

/// Depth of one packed block of k.
pub(crate) const KC: usize = 512;
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

/// The most of L1 that the B micro-panel (KC x NR floats) takes; see above.
const B_PANEL_MAX_BYTES: usize = 32 * 1024;

/// The smallest KC the model may give (a thinner block pays a pass over C for little
/// work).
const KC_MIN: usize = 64;

/// (KC, MC, NC) for a backend with an MR x NR register tile on caches `c`, each at
/// most the constants above.
pub(crate) fn blocks(c: &Caches, nr: usize) -> (usize, usize, usize) {
    // (`max(8)`: already so by the clamp, stated so that the divisions below are
    // visibly by non-zero values.)
    let kc = ((c.l1d.min(B_PANEL_MAX_BYTES) / (nr * 4)).clamp(KC_MIN, KC) / 8 * 8).max(8);
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

    /// The blocks of the machines this crate has run on, worked out by hand.
    #[test]
    fn each_cpu_gets_its_blocks() {
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
        let zen3 = Caches {
            l1d: 32 * KIB,
            l1d_ways: 8,
            l2: 512 * KIB,
            l3: 32 * 1024 * KIB,
        };
        // AVX-512's NR = 32: SPR's B panel at 32 of its 48 KiB, 32 KiB / 128 B = 256;
        // Zen 4 256.
        assert_eq!(blocks(&spr, 32), (256, 480, 4096));
        // Zen 4's MC from half of 1 MiB: 512 KiB / (256 * 4) = 512 -> 504, capped at 480.
        assert_eq!(blocks(&zen4, 32), (256, 480, 4096));
        // AVX2's NR = 16: 32 KiB / 64 B = 512 deep. Zen 3's MC from half of 512 KiB:
        // 256 KiB / (512 * 4) = 128 -> 120 rows; Zen 4's 256 -> 252. NC: half of L3,
        // 16 MiB / 2 KiB = 8192 columns, capped at 4096.
        assert_eq!(blocks(&zen3, 16), (512, 120, 4096));
        assert_eq!(blocks(&zen4, 16), (512, 252, 4096));
        // The portable backend's NR = 8 would take 1024; the cap is KC.
        assert_eq!(blocks(&zen3, 8).0, KC);
        // A 16 KiB L1 and a 256 KiB L2 (older small cores): 128 deep, MC = 128 KiB /
        // 512 B = 256 rows, NC at its cap without an L3.
        let small = Caches {
            l1d: 16 * KIB,
            l1d_ways: 4,
            l2: 256 * KIB,
            l3: 0,
        };
        assert_eq!(blocks(&small, 32), (128, 252, NC));
        // A tiny L2 still gives whole tiles and a useful depth.
        let tiny = Caches {
            l1d: 4 * KIB,
            l1d_ways: 4,
            l2: 8 * KIB,
            l3: 0,
        };
        let (kc, mc, _) = blocks(&tiny, 32);
        assert!(kc == KC_MIN && mc == MR_MAX);
    }
}
