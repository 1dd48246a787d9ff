//! The depth loop of AVX-512's whole 12 x 32 tile, written in assembly.
//!
//! The layout follows `avx2_tile.rs` (BLIS's Haswell sgemm kernel, Van Zee et al.)
//! at twice the width and twice the rows: 24 accumulators in zmm0-zmm23, each step
//! of depth loads B's row into zmm24/25 and broadcasts A's twelve elements in turn
//! (zmm26, zmm27), 24 `vfmadd231ps`. A's rows are reached from four pointers, at rows
//! 0, 3, 6 and 9, with the row stride as an index register (scales 1 and 2 give the
//! rows between).
//!
//! Why not the generic `run::<Avx512, 12, 2>`: LLVM reaches A's twelve rows by adding
//! the row stride to one register eleven times a step, and every broadcast waits for
//! its add. That chain of 12 dependent adds a step is as long as the step's 24 FMAs
//! take on a core with two 512-bit FMA units (12 cycles), so the product ran at 77%
//! of the FMA peak at 256^3 on Sapphire Rapids (81% in the 90th percentile;
//! BENCHMARKS.md, "The AVX-512 tile's depth loop in assembly"). Here each pointer
//! moves once a step, four chains of one add. Where A's rows are contiguous (the
//! lesson's products, which read A in place), four steps are one block that reaches
//! A's next floats and B's next rows by constant offsets and index scales, and the
//! five pointers move once for the four.
//!
//! Measured against the generic tile in one process (Sapphire Rapids, 300
//! interleaved slices, medians): 12x32x2000 (the depth loop alone) 1.12x, 256^3
//! 1.06x, 512^3 1.08x, 200x784x200 1.07x, 200x200x784 with B transposed 1.04x, 64^3
//! 1.04x. The four-step block gave 1.01-1.04x over two plain steps on most shapes.
//!
//! Each accumulator gets the same FMAs in the same order as in `run`, so the bits
//! are those of the generic tile (`tests/gemm.rs` compares them: a product against
//! the products of its 8-column blocks, which take the generic one-vector tile).

use core::arch::asm;
use core::arch::x86_64::{__m512, _mm512_setzero_ps};

use super::kernel::Tile;

/// One step of depth's loads and FMAs: B's row at address `$b` into zmm24/25, then
/// each of A's twelve elements, at its row's address plus `$a`, broadcast and
/// multiplied into its row's two accumulators.
// (Not formatted: one instruction a line reads as the assembly it is.)
#[rustfmt::skip]
macro_rules! fmas {
    ($b:literal, $a:literal) => {
        concat!(
            "vmovups zmm24, zmmword ptr [", $b, "]\n",
            "vmovups zmm25, zmmword ptr [", $b, " + 64]\n",
            "vbroadcastss zmm26, dword ptr [{a0}", $a, "]\n",
            "vfmadd231ps zmm0, zmm26, zmm24\n",
            "vfmadd231ps zmm1, zmm26, zmm25\n",
            "vbroadcastss zmm27, dword ptr [{a0} + {rs}", $a, "]\n",
            "vfmadd231ps zmm2, zmm27, zmm24\n",
            "vfmadd231ps zmm3, zmm27, zmm25\n",
            "vbroadcastss zmm26, dword ptr [{a0} + {rs} * 2", $a, "]\n",
            "vfmadd231ps zmm4, zmm26, zmm24\n",
            "vfmadd231ps zmm5, zmm26, zmm25\n",
            "vbroadcastss zmm27, dword ptr [{a3}", $a, "]\n",
            "vfmadd231ps zmm6, zmm27, zmm24\n",
            "vfmadd231ps zmm7, zmm27, zmm25\n",
            "vbroadcastss zmm26, dword ptr [{a3} + {rs}", $a, "]\n",
            "vfmadd231ps zmm8, zmm26, zmm24\n",
            "vfmadd231ps zmm9, zmm26, zmm25\n",
            "vbroadcastss zmm27, dword ptr [{a3} + {rs} * 2", $a, "]\n",
            "vfmadd231ps zmm10, zmm27, zmm24\n",
            "vfmadd231ps zmm11, zmm27, zmm25\n",
            "vbroadcastss zmm26, dword ptr [{a6}", $a, "]\n",
            "vfmadd231ps zmm12, zmm26, zmm24\n",
            "vfmadd231ps zmm13, zmm26, zmm25\n",
            "vbroadcastss zmm27, dword ptr [{a6} + {rs}", $a, "]\n",
            "vfmadd231ps zmm14, zmm27, zmm24\n",
            "vfmadd231ps zmm15, zmm27, zmm25\n",
            "vbroadcastss zmm26, dword ptr [{a6} + {rs} * 2", $a, "]\n",
            "vfmadd231ps zmm16, zmm26, zmm24\n",
            "vfmadd231ps zmm17, zmm26, zmm25\n",
            "vbroadcastss zmm27, dword ptr [{a9}", $a, "]\n",
            "vfmadd231ps zmm18, zmm27, zmm24\n",
            "vfmadd231ps zmm19, zmm27, zmm25\n",
            "vbroadcastss zmm26, dword ptr [{a9} + {rs}", $a, "]\n",
            "vfmadd231ps zmm20, zmm26, zmm24\n",
            "vfmadd231ps zmm21, zmm26, zmm25\n",
            "vbroadcastss zmm27, dword ptr [{a9} + {rs} * 2", $a, "]\n",
            "vfmadd231ps zmm22, zmm27, zmm24\n",
            "vfmadd231ps zmm23, zmm27, zmm25\n",
        )
    };
}

/// One step of depth; then the pointers move one step.
macro_rules! step {
    () => {
        concat!(
            fmas!("{b}", ""),
            "add {a0}, {cs}\n",
            "add {a3}, {cs}\n",
            "add {a6}, {cs}\n",
            "add {a9}, {cs}\n",
            "add {b}, {bs}",
        )
    };
}

/// Four steps of depth where A's rows are contiguous (its column stride is one
/// float): step u reads A u floats on and B u rows on, and the pointers move once
/// for the four.
macro_rules! four_steps_contiguous {
    () => {
        concat!(
            fmas!("{b}", ""),
            fmas!("{b} + {bs}", " + 4"),
            fmas!("{b} + {bs} * 2", " + 8"),
            fmas!("{b} + {bs3}", " + 12"),
            "add {a0}, 16\n",
            "add {a3}, 16\n",
            "add {a6}, 16\n",
            "add {a9}, 16\n",
            "lea {b}, [{b} + {bs} * 4]",
        )
    };
}

/// The 12 x 32 tile's sums over the depth `t.kc`: accumulator (i, v) holds row i,
/// columns 16v..16v + 16, of A * B (before alpha, beta and the store).
///
/// A `target_feature` function, not `inline(always)`, for the reason `avx2_tile.rs`
/// gives: the sums leave the assembly in zmm registers. Called from the AVX-512
/// backend's code, it is inlined there.
///
/// # Safety
/// For p < kc and i < 12, `a + i * ars + p * acs` is an element of A and
/// `b + p * brs` starts 32 readable floats. Strides are in floats; the byte strides
/// wrap like the pointers (see `avx2_tile.rs`).
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn depth_loop_12x32(t: &Tile) -> [[__m512; 2]; 12] {
    let zero = _mm512_setzero_ps();
    let mut c = [[zero; 2]; 12];
    // Rows 3, 6 and 9 of the tile: wrapping, as the caller's pointers; read only
    // when kc > 0.
    let a3 = t.a.wrapping_add(t.ars.wrapping_mul(3));
    let a6 = t.a.wrapping_add(t.ars.wrapping_mul(6));
    let a9 = t.a.wrapping_add(t.ars.wrapping_mul(9));
    // SAFETY: the target feature is this function's; the caller guarantees every
    // address read (see above). The block writes no memory; it declares the vector
    // registers it uses as outputs or clobbered, the pointers it moves as in-outs.
    unsafe {
        asm!(
            "vpxord zmm0, zmm0, zmm0",
            "vpxord zmm1, zmm1, zmm1",
            "vpxord zmm2, zmm2, zmm2",
            "vpxord zmm3, zmm3, zmm3",
            "vpxord zmm4, zmm4, zmm4",
            "vpxord zmm5, zmm5, zmm5",
            "vpxord zmm6, zmm6, zmm6",
            "vpxord zmm7, zmm7, zmm7",
            "vpxord zmm8, zmm8, zmm8",
            "vpxord zmm9, zmm9, zmm9",
            "vpxord zmm10, zmm10, zmm10",
            "vpxord zmm11, zmm11, zmm11",
            "vpxord zmm12, zmm12, zmm12",
            "vpxord zmm13, zmm13, zmm13",
            "vpxord zmm14, zmm14, zmm14",
            "vpxord zmm15, zmm15, zmm15",
            "vpxord zmm16, zmm16, zmm16",
            "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18",
            "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20",
            "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22",
            "vpxord zmm23, zmm23, zmm23",
            "cmp {cs}, 4",
            "jne 5f",
            "mov {n}, {k}",
            "shr {n}, 2",
            "jz 7f",
            ".p2align 5",
            "6:",
            four_steps_contiguous!(),
            "dec {n}",
            "jnz 6b",
            "7:",
            "and {k}, 3",
            "jz 4f",
            "8:",
            step!(),
            "dec {k}",
            "jnz 8b",
            "jmp 4f",
            "5:",
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
            a6 = inout(reg) a6 => _,
            a9 = inout(reg) a9 => _,
            b = inout(reg) t.b => _,
            rs = in(reg) t.ars.wrapping_mul(4),
            cs = in(reg) t.acs.wrapping_mul(4),
            bs = in(reg) t.brs.wrapping_mul(4),
            bs3 = in(reg) t.brs.wrapping_mul(12),
            k = inout(reg) t.kc => _,
            n = out(reg) _,
            out("zmm0") c[0][0],
            out("zmm1") c[0][1],
            out("zmm2") c[1][0],
            out("zmm3") c[1][1],
            out("zmm4") c[2][0],
            out("zmm5") c[2][1],
            out("zmm6") c[3][0],
            out("zmm7") c[3][1],
            out("zmm8") c[4][0],
            out("zmm9") c[4][1],
            out("zmm10") c[5][0],
            out("zmm11") c[5][1],
            out("zmm12") c[6][0],
            out("zmm13") c[6][1],
            out("zmm14") c[7][0],
            out("zmm15") c[7][1],
            out("zmm16") c[8][0],
            out("zmm17") c[8][1],
            out("zmm18") c[9][0],
            out("zmm19") c[9][1],
            out("zmm20") c[10][0],
            out("zmm21") c[10][1],
            out("zmm22") c[11][0],
            out("zmm23") c[11][1],
            out("zmm24") _,
            out("zmm25") _,
            out("zmm26") _,
            out("zmm27") _,
            options(nostack, readonly),
        );
    }
    c
}
