//! The AVX-512F backend: 16 lanes in `__m512`, masks in `__mmask16`.

use core::arch::x86_64::*;

use super::{Simd, WithSimd};

/// Token proving that the CPU has AVX-512F, AVX2 and FMA (and the OS saves the ZMM
/// state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// The token, if this CPU (and OS) runs AVX-512F (with AVX2 and FMA).
    pub(crate) fn try_new() -> Option<Avx512> {
        super::Backend::Avx512.is_supported().then_some(Avx512(()))
    }

    /// Runs `w` inside a function compiled for AVX-512F (with AVX2 and FMA), so that the intrinsics of its
    /// `#[inline(always)]` kernels inline there.
    #[inline(always)]
    pub(crate) fn vectorize<W: WithSimd>(self, w: W) -> W::Output {
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn run<W: WithSimd>(t: Avx512, w: W) -> W::Output {
            w.with_simd(t)
        }
        // SAFETY: `self` exists, so `try_new` found the CPU features that `run` needs.
        unsafe { run(self, w) }
    }
}

// SAFETY (every `unsafe` block below): an `Avx512` token exists only after the CPU was
// found to support AVX-512F, so the intrinsics can execute; full-width loads and
// stores use slices checked to hold 16 elements, masked ones touch only the lanes
// that the mask (built from the slice length) enables.
impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;
    type M = __mmask16;

    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m512 {
        debug_assert!(s.len() >= 16, "load of {} floats", s.len());
        match s.first_chunk::<16>() {
            Some(s) => unsafe { _mm512_loadu_ps(s.as_ptr()) },
            None => unsafe { _mm512_setzero_ps() },
        }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m512) {
        debug_assert!(s.len() >= 16, "store of {} floats", s.len());
        if let Some(s) = s.first_chunk_mut::<16>() {
            unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
        }
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32], fill: f32) -> __m512 {
        let n = s.len().min(16);
        let m: __mmask16 = ((1u32 << n) - 1) as __mmask16;
        unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), m, s.as_ptr()) }
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32], v: __m512) {
        let n = s.len().min(16);
        let m: __mmask16 = ((1u32 << n) - 1) as __mmask16;
        unsafe { _mm512_mask_storeu_ps(s.as_mut_ptr(), m, v) }
    }
    #[inline(always)]
    unsafe fn load_ptr(self, p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats; the token, the CPU support.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn lt(self, a: __m512, b: __m512) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn le(self, a: __m512, b: __m512) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m512, b: __m512) -> __mmask16 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn select(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mask_blend_ps(m, b, a) }
    }
    #[inline(always)]
    fn round(self, a: __m512) -> __m512 {
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn pow2i(self, n: __m512) -> __m512 {
        unsafe {
            let e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e))
        }
    }
    #[inline(always)]
    fn mul_pow2(self, x: __m512, n: __m512) -> __m512 {
        // vscalefps: x * 2^floor(n), one rounding, subnormal results included (Rust
        // never sets MXCSR's flush-to-zero); the same bits as the two-product default.
        unsafe { _mm512_scalef_ps(x, n) }
    }
    #[inline(always)]
    fn reduce_sum(self, a: __m512) -> f32 {
        unsafe {
            let h = _mm256_add_ps(
                _mm512_castps512_ps256(a),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a))),
            );
            let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps::<1>(p, p)))
        }
    }
    #[inline(always)]
    fn reduce_max(self, a: __m512) -> f32 {
        unsafe {
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a)));
            let h = _mm256_max_ps(hi, _mm512_castps512_ps256(a));
            let q = _mm_max_ps(_mm256_extractf128_ps::<1>(h), _mm256_castps256_ps128(h));
            let p = _mm_max_ps(_mm_movehl_ps(q, q), q);
            _mm_cvtss_f32(_mm_max_ss(_mm_shuffle_ps::<1>(p, p), p))
        }
    }
}
