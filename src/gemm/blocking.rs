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
//! The same KC and NC serve every backend so that the workspace length does not
//! depend on the backend chosen at run time.

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
