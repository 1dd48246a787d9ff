//! The AVX2+FMA backend: 8 lanes in `__m256`.

use core::arch::x86_64::*;

use super::{Simd, WithSimd};

/// Token proving that the CPU has AVX2 and FMA (and the OS saves the YMM state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token, if this CPU (and OS) runs AVX2 and FMA.
    pub(crate) fn try_new() -> Option<Avx2> {
        super::Backend::Avx2.is_supported().then_some(Avx2(()))
    }

    /// The AVX2 token of a CPU proven to run AVX-512F: an [`super::Avx512`] token
    /// also proves AVX2 and FMA (its `try_new` checks all three).
    #[inline(always)]
    pub(crate) fn from_avx512(_proof: super::Avx512) -> Avx2 {
        Avx2(())
    }

    /// Runs `w` inside a function compiled for AVX2 and FMA, so that the intrinsics of its
    /// `#[inline(always)]` kernels inline there.
    #[inline(always)]
    pub(crate) fn vectorize<W: WithSimd>(self, w: W) -> W::Output {
        #[target_feature(enable = "avx2,fma")]
        fn run<W: WithSimd>(t: Avx2, w: W) -> W::Output {
            w.with_simd(t)
        }
        // SAFETY: `self` exists, so `try_new` found the CPU features that `run` needs.
        unsafe { run(self, w) }
    }
}

// SAFETY (every `unsafe` block below): an `Avx2` token exists only after the CPU was
// found to support AVX2+FMA, so the intrinsics can execute; the load/store pointers
// come from slices checked to hold 8 elements.
impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;
    type M = __m256;

    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m256 {
        debug_assert!(s.len() >= 8, "load of {} floats", s.len());
        match s.first_chunk::<8>() {
            Some(s) => unsafe { _mm256_loadu_ps(s.as_ptr()) },
            None => unsafe { _mm256_setzero_ps() },
        }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m256) {
        debug_assert!(s.len() >= 8, "store of {} floats", s.len());
        if let Some(s) = s.first_chunk_mut::<8>() {
            unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
        }
    }
    /// `vmaskmovps` where the whole 32-byte span lies in the page of the slice's first
    /// element, the stack-buffer path elsewhere. Intel guarantees that masked-off
    /// lanes never fault; AMD's manual leaves it to the implementation, so the mask
    /// must never reach into a page that the slice does not touch.
    #[inline(always)]
    fn load_partial(self, s: &[f32], fill: f32) -> __m256 {
        if s.is_empty() || !within_one_page(s.as_ptr()) {
            return super::load_partial_buffered(self, s, fill);
        }
        let n = s.len().min(8) as i32;
        // SAFETY: the mask enables lanes 0..n only, so only s[..n] is read, and the
        // disabled lanes lie in the same (mapped) page as s[0].
        unsafe {
            let m = _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            let v = _mm256_maskload_ps(s.as_ptr(), m);
            _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(m))
        }
    }
    /// As `load_partial`: masked within one page, else through a stack buffer.
    #[inline(always)]
    fn store_partial(self, s: &mut [f32], v: __m256) {
        if s.is_empty() || !within_one_page(s.as_ptr()) {
            return super::store_partial_buffered(self, s, v);
        }
        let n = s.len().min(8) as i32;
        // SAFETY: as above, only s[..n] is written, and no disabled lane leaves the
        // page of s[0].
        unsafe {
            let m = _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            _mm256_maskstore_ps(s.as_mut_ptr(), m, v)
        }
    }
    #[inline(always)]
    unsafe fn load_ptr(self, p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats; the token, the CPU support.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn lt(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn le(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn select(self, m: __m256, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_blendv_ps(b, a, m) }
    }
    #[inline(always)]
    fn round(self, a: __m256) -> __m256 {
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn pow2i(self, n: __m256) -> __m256 {
        unsafe {
            let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
        }
    }
    #[inline(always)]
    fn reduce_sum(self, a: __m256) -> f32 {
        unsafe {
            let q = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps::<1>(p, p)))
        }
    }
    #[inline(always)]
    fn reduce_max(self, a: __m256) -> f32 {
        unsafe {
            // max(x, m) keeps m when x is NaN, so NaN lanes drop out.
            let q = _mm_max_ps(_mm256_extractf128_ps::<1>(a), _mm256_castps256_ps128(a));
            let p = _mm_max_ps(_mm_movehl_ps(q, q), q);
            _mm_cvtss_f32(_mm_max_ss(_mm_shuffle_ps::<1>(p, p), p))
        }
    }
}

/// Whether the 8 floats from `p` on lie in one 4 KiB page (the smallest x86 page), so
/// that a masked access there cannot touch a page the unmasked lanes do not.
#[inline(always)]
fn within_one_page(p: *const f32) -> bool {
    (p as usize & 4095) <= 4096 - 32
}
