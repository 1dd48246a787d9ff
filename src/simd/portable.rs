//! The portable backend on `wide::f32x8`: SSE2 on a default x86_64 build, NEON on
//! aarch64, simd128 on wasm, scalar code elsewhere. Always available.

use wide::{f32x8, i32x8, u32x8};

use super::Simd;

/// The portable backend's token; it can always be made.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Portable;

impl Simd for Portable {
    const LANES: usize = 8;
    type V = f32x8;
    type M = f32x8;

    #[inline(always)]
    fn splat(self, x: f32) -> f32x8 {
        f32x8::splat(x)
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> f32x8 {
        debug_assert!(s.len() >= 8, "load of {} floats", s.len());
        let a: [f32; 8] = match s.get(..8) {
            Some(h) => [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]],
            None => [0.0; 8],
        };
        f32x8::new(a)
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: f32x8) {
        debug_assert!(s.len() >= 8, "store of {} floats", s.len());
        if let Some(h) = s.first_chunk_mut::<8>() {
            *h = v.to_array();
        }
    }
    #[inline(always)]
    unsafe fn load_ptr(self, p: *const f32) -> f32x8 {
        // SAFETY: the caller guarantees 8 readable floats; f32x8 has no alignment
        // need beyond what read_unaligned handles.
        f32x8::new(unsafe { p.cast::<[f32; 8]>().read_unaligned() })
    }
    #[inline(always)]
    fn add(self, a: f32x8, b: f32x8) -> f32x8 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32x8, b: f32x8) -> f32x8 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32x8, b: f32x8) -> f32x8 {
        a * b
    }
    #[inline(always)]
    fn fma(self, a: f32x8, b: f32x8, c: f32x8) -> f32x8 {
        // `wide` fuses only when FMA is enabled at compile time; either way it is
        // this backend's one definition, so results do not depend on call sites.
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn max(self, a: f32x8, b: f32x8) -> f32x8 {
        // x86 semantics: the second operand wins on NaN and on equality.
        b.simd_lt(a).select(a, b)
    }
    #[inline(always)]
    fn min(self, a: f32x8, b: f32x8) -> f32x8 {
        a.simd_lt(b).select(a, b)
    }
    #[inline(always)]
    fn lt(self, a: f32x8, b: f32x8) -> f32x8 {
        a.simd_lt(b)
    }
    #[inline(always)]
    fn le(self, a: f32x8, b: f32x8) -> f32x8 {
        a.simd_le(b)
    }
    #[inline(always)]
    fn eq(self, a: f32x8, b: f32x8) -> f32x8 {
        a.simd_eq(b)
    }
    #[inline(always)]
    fn select(self, m: f32x8, a: f32x8, b: f32x8) -> f32x8 {
        m.select(a, b)
    }
    #[inline(always)]
    fn round(self, a: f32x8) -> f32x8 {
        a.round_ties_even()
    }
    #[inline(always)]
    fn pow2i(self, n: f32x8) -> f32x8 {
        let e: i32x8 = (n.fast_round_int() + i32x8::splat(127)) << 23;
        let e = e.to_array();
        f32x8::from_bits(u32x8::new(e.map(|b| b as u32)))
    }
    #[inline(always)]
    fn reduce_sum(self, a: f32x8) -> f32 {
        // Pairwise, in the same order as the x86 backends' halving trees.
        let x = a.to_array();
        let q = [x[0] + x[4], x[1] + x[5], x[2] + x[6], x[3] + x[7]];
        let p = [q[0] + q[2], q[1] + q[3]];
        p[0] + p[1]
    }
    /// Out of line where `wide` has no vector unit to map to (Cortex-M, soft-float
    /// x86): there each call site would inline eight scalar copies of the polynomial,
    /// which made the loss kernels the bulk of a firmware image. The same operations
    /// in the same order either way, so the bits do not change.
    #[cfg(not(any(
        target_feature = "sse2",
        target_feature = "neon",
        target_feature = "simd128"
    )))]
    #[inline(never)]
    fn exp(self, x: f32x8) -> f32x8 {
        super::exp::exp(self, x)
    }
    #[inline(always)]
    fn reduce_max(self, a: f32x8) -> f32 {
        a.to_array()
            .into_iter()
            .fold(f32::NEG_INFINITY, |m, x| if x > m { x } else { m })
    }
}
