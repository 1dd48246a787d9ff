//! The depth loop of AVX2's whole 6 x 16 tile, written in assembly.
//!
//! The layout is BLIS's Haswell sgemm kernel (`bli_sgemm_haswell_asm_6x16`, Van Zee
//! et al.): 12 accumulators in ymm0-ymm11, each step of depth loads two vectors of B
//! (ymm12, ymm13) and broadcasts the six elements of A's column in turn (ymm14,
//! ymm15), 12 `vfmadd231ps`. A's rows are reached from two pointers, at rows 0 and 3,
//! with the row stride as an index register (scales 1 and 2 give the rows between).
//!
//! Why not the generic `run::<Avx2, 6, 2>`: from it LLVM makes a loop of 34
//! instructions for 12 FMAs, six of them register moves (a rotation of three
//! accumulators that undoes itself within the step) and six dependent pointer adds;
//! where that loop landed relative to 64-byte lines moved it by about 10% on Zen 3.
//! Here a step is 23 instructions and the loop, unrolled by two, starts on a 32-byte
//! boundary whatever the build. In the quiet minutes of a Zen 3 guest both ran at the
//! same speed (the FMAs bound them); in its loaded minutes, and with both of its
//! vCPUs running the product, the shorter loop was 1.05-1.3x faster, as if it shared
//! the core's front end with another thread (BENCHMARKS.md, "The AVX2 tile in
//! assembly").
//!
//! Each accumulator gets the same FMAs in the same order as in `run`, so the bits
//! are those of the generic tile (`tests/gemm.rs` compares the two: a product against
//! the products of its 8-column blocks, which take the generic one-vector tile).

use core::arch::asm;
use core::arch::x86_64::{__m256, _mm256_setzero_ps};

use super::kernel::Tile;

/// One step of depth: B's row into ymm12/13, each of A's six elements broadcast and
/// multiplied into its row's two accumulators; then the pointers move one step.
macro_rules! step {
    () => {
        concat!(
            "vmovups ymm12, ymmword ptr [{b}]\n",
            "vmovups ymm13, ymmword ptr [{b} + 32]\n",
            "vbroadcastss ymm14, dword ptr [{a0}]\n",
            "vfmadd231ps ymm0, ymm14, ymm12\n",
            "vfmadd231ps ymm1, ymm14, ymm13\n",
            "vbroadcastss ymm15, dword ptr [{a0} + {rs}]\n",
            "vfmadd231ps ymm2, ymm15, ymm12\n",
            "vfmadd231ps ymm3, ymm15, ymm13\n",
            "vbroadcastss ymm14, dword ptr [{a0} + {rs} * 2]\n",
            "vfmadd231ps ymm4, ymm14, ymm12\n",
            "vfmadd231ps ymm5, ymm14, ymm13\n",
            "vbroadcastss ymm15, dword ptr [{a3}]\n",
            "vfmadd231ps ymm6, ymm15, ymm12\n",
            "vfmadd231ps ymm7, ymm15, ymm13\n",
            "vbroadcastss ymm14, dword ptr [{a3} + {rs}]\n",
            "vfmadd231ps ymm8, ymm14, ymm12\n",
            "vfmadd231ps ymm9, ymm14, ymm13\n",
            "vbroadcastss ymm15, dword ptr [{a3} + {rs} * 2]\n",
            "vfmadd231ps ymm10, ymm15, ymm12\n",
            "vfmadd231ps ymm11, ymm15, ymm13\n",
            "add {a0}, {cs}\n",
            "add {a3}, {cs}\n",
            "add {b}, {bs}",
        )
    };
}

/// The 6 x 16 tile's sums over the depth `t.kc`: accumulator (i, v) holds row i,
/// columns 8v..8v + 8, of A * B (before alpha, beta and the store).
///
/// A `target_feature` function, not `inline(always)`: the sums leave the assembly in
/// ymm registers, which only code compiled for AVX may name. Called from the AVX2
/// backend's code (compiled for AVX2 and FMA), it is inlined there all the same.
///
/// # Safety
/// For p < kc and i < 6, `a + i * ars + p * acs` is an element of A and
/// `b + p * brs` starts 16 readable floats. Strides are in floats; the byte strides
/// wrap like the pointers, since a stride that is never stepped over (the depth's
/// after its last step, say) may be any value a view allows.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn depth_loop_6x16(t: &Tile) -> [[__m256; 2]; 6] {
    let zero = _mm256_setzero_ps();
    let mut c = [[zero; 2]; 6];
    // Row 3 of the tile: wrapping, as the caller's pointers; read only when kc > 0.
    let a3 = t.a.wrapping_add(t.ars.wrapping_mul(3));
    // SAFETY: the target features are this function's; the caller guarantees every
    // address read (see above). The block writes no memory; it declares the vector
    // registers it uses as outputs or clobbered, the pointers it moves as in-outs.
    unsafe {
        asm!(
            "vxorps ymm0, ymm0, ymm0",
            "vxorps ymm1, ymm1, ymm1",
            "vxorps ymm2, ymm2, ymm2",
            "vxorps ymm3, ymm3, ymm3",
            "vxorps ymm4, ymm4, ymm4",
            "vxorps ymm5, ymm5, ymm5",
            "vxorps ymm6, ymm6, ymm6",
            "vxorps ymm7, ymm7, ymm7",
            "vxorps ymm8, ymm8, ymm8",
            "vxorps ymm9, ymm9, ymm9",
            "vxorps ymm10, ymm10, ymm10",
            "vxorps ymm11, ymm11, ymm11",
            "mov {n}, {k}",
            "shr {n}, 1",
            "jz 3f",
            ".p2align 5",
            "2:",
            step!(),
            step!(),
            "dec {n}",
            "jnz 2b",
            "3:",
            "test {k}, 1",
            "jz 4f",
            step!(),
            "4:",
            a0 = inout(reg) t.a => _,
            a3 = inout(reg) a3 => _,
            b = inout(reg) t.b => _,
            rs = in(reg) t.ars.wrapping_mul(4),
            cs = in(reg) t.acs.wrapping_mul(4),
            bs = in(reg) t.brs.wrapping_mul(4),
            k = in(reg) t.kc,
            n = out(reg) _,
            out("ymm0") c[0][0],
            out("ymm1") c[0][1],
            out("ymm2") c[1][0],
            out("ymm3") c[1][1],
            out("ymm4") c[2][0],
            out("ymm5") c[2][1],
            out("ymm6") c[3][0],
            out("ymm7") c[3][1],
            out("ymm8") c[4][0],
            out("ymm9") c[4][1],
            out("ymm10") c[5][0],
            out("ymm11") c[5][1],
            out("ymm12") _,
            out("ymm13") _,
            out("ymm14") _,
            out("ymm15") _,
            options(nostack, readonly),
        );
    }
    c
}
