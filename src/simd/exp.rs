//! e^x on vectors, written once for every backend.
//!
//! Algorithm: Cody–Waite range reduction and the minimax polynomial of Cephes `expf`
//! (S. L. Moshier, Cephes Math Library, `expf.c`):
//! x = n ln2 + r with |r| <= ln2/2, e^r = 1 + r + r^2 P(r), e^x = 2^n e^r.
//! ln2 is split in a 9-bit head (exact product with n) and a tail.
//!
//! What `wide`'s exp lacks and this one has: NaN gives NaN, +inf gives +inf, -inf gives
//! 0, large x overflows to +inf and small x underflows to 0 through the subnormals like
//! `libm::expf`. The scale 2^n is applied by [`Simd::mul_pow2`] with one rounding,
//! into the subnormal range too: as two normal factors 2^(n/2) 2^(n - n/2), or by
//! AVX-512's `vscalefps` (the same bits over all 2^32 inputs, checked against AVX2;
//! 10 vector operations fewer: 30% off a long row's logsumexp on Zen 4).

use super::Simd;

const LOG2E: f32 = core::f32::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO; LN2_HI has 9 significant bits so n * LN2_HI is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes expf's polynomial for (e^r - 1 - r) / r^2, highest degree first.
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];
/// Below this e^x rounds to 0 even as a subnormal; above the other bound it is +inf.
/// Clamping there keeps n in -150..=129 so that both halves of 2^n are normal.
const X_MIN: f32 = -104.0;
const X_MAX: f32 = 89.0;

/// Lane-wise e^x. Max error 1 ulp against the correctly rounded value over the whole
/// finite range (measured: see BENCHMARKS.md), exact specials as described above.
#[inline(always)]
pub(crate) fn exp<S: Simd>(s: S, x: S::V) -> S::V {
    // max/min return their second operand on NaN, so a NaN x goes through the clamp
    // and through every operation after it: NaN in, NaN out (on x86 x's own, quieted),
    // with no compare and blend (they cost 10% of a long row's logsumexp on Zen 4).
    let xc = s.min(s.splat(X_MAX), s.max(s.splat(X_MIN), x));
    let n = s.round(s.mul(xc, s.splat(LOG2E)));
    let r = s.fma(n, s.splat(-LN2_HI), xc);
    let r = s.fma(n, s.splat(-LN2_LO), r);
    let mut p = s.splat(P[0]);
    for &c in &P[1..] {
        p = s.fma(p, r, s.splat(c));
    }
    let r2 = s.mul(r, r);
    let er = s.add(s.fma(p, r2, r), s.splat(1.0));
    s.mul_pow2(er, n)
}
