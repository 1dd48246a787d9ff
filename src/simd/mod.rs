//! The only place that knows about instruction sets.
//!
//! A kernel is written once, generic over [`Simd`], and marked `#[inline(always)]`.
//! A [`WithSimd`] value carries it and its arguments; [`Isa::vectorize`] runs it inside
//! a `#[target_feature]` function for the chosen backend, so the same source compiles to
//! SSE2 (portable, through `wide`), AVX2+FMA or AVX-512.
//!
//! A backend value is a zero-sized token. Tokens for the x86 backends are only made
//! by their `try_new`, after the CPU was checked, which is what makes their safe
//! methods sound; [`Isa`] holds one, and `Kernels` holds an `Isa`.

mod dispatch;
pub(crate) mod exp;
mod portable;

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx512;

pub use dispatch::Backend;
pub(crate) use dispatch::{Isa, WithSimd};
pub(crate) use portable::Portable;

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub(crate) use avx2::Avx2;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub(crate) use avx512::Avx512;

/// The widest vector any backend has, in f32 lanes; sizes the stack buffers of the
/// partial loads and stores.
pub(crate) const MAX_LANES: usize = 16;

/// One instruction set, seen as vectors of `LANES` f32.
///
/// Comparisons return a lane mask `M`; `select(m, a, b)` takes `a` where `m` is set.
/// `max` and `min` follow x86: when either lane is NaN the *second* operand is
/// returned, which every backend reproduces so that results agree bit for bit.
pub(crate) trait Simd: Copy {
    /// f32 lanes in one vector.
    const LANES: usize;
    /// A vector of `LANES` f32.
    type V: Copy;
    /// A lane mask.
    type M: Copy;

    fn splat(self, x: f32) -> Self::V;
    /// Loads the first `LANES` elements of `s`; `s` must hold at least that many
    /// (checked in debug builds; rather than keep a panic path, a release build
    /// loads zeros from a shorter `s`).
    fn load(self, s: &[f32]) -> Self::V;
    /// Stores into the first `LANES` elements of `s`; `s` must hold at least that
    /// many (checked in debug builds; a release build stores nothing into a shorter
    /// `s`).
    fn store(self, s: &mut [f32], v: Self::V);
    /// Loads `LANES` elements from `p`.
    ///
    /// # Safety
    /// `p..p + LANES` must be readable.
    unsafe fn load_ptr(self, p: *const f32) -> Self::V;
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`, fused where the backend has FMA, two roundings where it has not.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    fn lt(self, a: Self::V, b: Self::V) -> Self::M;
    fn le(self, a: Self::V, b: Self::V) -> Self::M;
    fn eq(self, a: Self::V, b: Self::V) -> Self::M;
    fn select(self, m: Self::M, a: Self::V, b: Self::V) -> Self::V;
    /// Rounds to the nearest integer, ties to even.
    fn round(self, a: Self::V) -> Self::V;
    /// 2^n for lanes holding an integral `n` in `-126..=127`.
    fn pow2i(self, n: Self::V) -> Self::V;
    /// Sum of the lanes (a fixed pairwise tree per backend).
    fn reduce_sum(self, a: Self::V) -> f32;
    /// Maximum of the lanes. Whether a NaN lane shows through is unspecified: callers
    /// that care find NaN another way (it poisons the sum that follows every max).
    fn reduce_max(self, a: Self::V) -> f32;

    /// `x * 2^n` rounded once, for lanes holding an integral `n` in `-150..=129`
    /// and an `x` in `[0.5, 2]` (so that both halves of the scale are normal); a NaN
    /// `x` (with any `n`) gives NaN.
    /// Two exact-or-last-rounding products here; AVX-512 has it as one instruction.
    #[inline(always)]
    fn mul_pow2(self, x: Self::V, n: Self::V) -> Self::V {
        let n1 = self.round(self.mul(n, self.splat(0.5)));
        let n2 = self.sub(n, n1);
        self.mul(self.mul(x, self.pow2i(n1)), self.pow2i(n2))
    }

    /// e^x, see [`exp::exp`].
    #[inline(always)]
    fn exp(self, x: Self::V) -> Self::V {
        exp::exp(self, x)
    }

    /// Loads `s.len() < LANES` elements, the other lanes set to `fill`.
    #[inline(always)]
    fn load_partial(self, s: &[f32], fill: f32) -> Self::V {
        load_partial_buffered(self, s, fill)
    }

    /// Stores the first `s.len() < LANES` lanes of `v` into `s`.
    #[inline(always)]
    fn store_partial(self, s: &mut [f32], v: Self::V) {
        store_partial_buffered(self, s, v)
    }
}

/// A partial load through a stack buffer: touches `s` and nothing else, on any CPU.
#[inline(always)]
pub(crate) fn load_partial_buffered<S: Simd>(simd: S, s: &[f32], fill: f32) -> S::V {
    let mut buf = [fill; MAX_LANES];
    let n = s.len().min(S::LANES);
    buf[..n].copy_from_slice(&s[..n]);
    simd.load(&buf)
}

/// A partial store through a stack buffer, as [`load_partial_buffered`].
#[inline(always)]
pub(crate) fn store_partial_buffered<S: Simd>(simd: S, s: &mut [f32], v: S::V) {
    let mut buf = [0.0f32; MAX_LANES];
    simd.store(&mut buf, v);
    let n = s.len().min(S::LANES);
    s[..n].copy_from_slice(&buf[..n]);
}

/// `x` as a vector: whole, or its first `x.len()` lanes (the rest 0).
#[inline(always)]
pub(crate) fn load_any<S: Simd>(s: S, x: &[f32]) -> S::V {
    if x.len() == S::LANES {
        s.load(x)
    } else {
        s.load_partial(x, 0.0)
    }
}

/// `v` into `x`: a whole vector, or its first `x.len()` lanes.
#[inline(always)]
pub(crate) fn store_any<S: Simd>(s: S, x: &mut [f32], v: S::V) {
    if x.len() == S::LANES {
        s.store(x, v)
    } else {
        s.store_partial(x, v)
    }
}

/// Applies `f` lane-wise from `src` into `dst` (equal lengths), tails through a
/// padded vector so that every element sees the same instructions.
#[inline(always)]
pub(crate) fn map_into<S: Simd>(s: S, src: &[f32], dst: &mut [f32], f: impl Fn(S::V) -> S::V) {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let mut d = dst.chunks_exact_mut(S::LANES);
    let mut c = src.chunks_exact(S::LANES);
    for (x, y) in (&mut c).zip(&mut d) {
        s.store(y, f(s.load(x)));
    }
    let (xt, yt) = (c.remainder(), d.into_remainder());
    if !xt.is_empty() {
        s.store_partial(yt, f(s.load_partial(xt, 0.0)));
    }
}

/// Applies `f` lane-wise in place.
#[inline(always)]
pub(crate) fn map_in_place<S: Simd>(s: S, x: &mut [f32], f: impl Fn(S::V) -> S::V) {
    let mut c = x.chunks_exact_mut(S::LANES);
    for y in &mut c {
        s.store(y, f(s.load(y)));
    }
    let t = c.into_remainder();
    if !t.is_empty() {
        s.store_partial(t, f(s.load_partial(t, 0.0)));
    }
}

/// `dst[i] = f(a[i], b[i])` lane-wise, in place on `dst`, `a` as long as `dst`.
#[inline(always)]
pub(crate) fn zip_in_place<S: Simd>(
    s: S,
    a: &[f32],
    dst: &mut [f32],
    f: impl Fn(S::V, S::V) -> S::V,
) {
    let n = a.len().min(dst.len());
    let (a, dst) = (&a[..n], &mut dst[..n]);
    let mut d = dst.chunks_exact_mut(S::LANES);
    let mut c = a.chunks_exact(S::LANES);
    for (x, y) in (&mut c).zip(&mut d) {
        s.store(y, f(s.load(x), s.load(y)));
    }
    let (xt, yt) = (c.remainder(), d.into_remainder());
    if !xt.is_empty() {
        let v = f(s.load_partial(xt, 0.0), s.load_partial(yt, 0.0));
        s.store_partial(yt, v);
    }
}

/// `out[i] = f(a[i], b[i])` lane-wise; the three slices as long as `out`.
#[inline(always)]
pub(crate) fn zip_into<S: Simd>(
    s: S,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(S::V, S::V) -> S::V,
) {
    let n = a.len().min(b.len()).min(out.len());
    let (a, b, out) = (&a[..n], &b[..n], &mut out[..n]);
    let mut o = out.chunks_exact_mut(S::LANES);
    let mut ca = a.chunks_exact(S::LANES);
    let mut cb = b.chunks_exact(S::LANES);
    for ((x, y), z) in (&mut ca).zip(&mut cb).zip(&mut o) {
        s.store(z, f(s.load(x), s.load(y)));
    }
    let (xt, yt, zt) = (ca.remainder(), cb.remainder(), o.into_remainder());
    if !zt.is_empty() {
        s.store_partial(zt, f(s.load_partial(xt, 0.0), s.load_partial(yt, 0.0)));
    }
}

/// A function of one vector, written once over [`Simd`] (a closure cannot be generic
/// over the backend).
pub(crate) trait LaneFn {
    fn apply<S: Simd>(&self, s: S, x: S::V) -> S::V;
}

/// A function of two vectors, as [`LaneFn`].
pub(crate) trait LaneFn2 {
    fn apply<S: Simd>(&self, s: S, a: S::V, b: S::V) -> S::V;
}

/// [`map_into`] as a [`WithSimd`].
pub(crate) struct MapInto<'a, F> {
    pub src: &'a [f32],
    pub dst: &'a mut [f32],
    pub f: F,
}

impl<F: LaneFn> WithSimd for MapInto<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: crate::gemm::GemmKernel>(self, s: S) {
        let f = self.f;
        map_into(
            s,
            self.src,
            self.dst,
            #[inline(always)]
            |v| f.apply(s, v),
        )
    }
}

/// [`map_in_place`] as a [`WithSimd`].
pub(crate) struct MapInPlace<'a, F> {
    pub x: &'a mut [f32],
    pub f: F,
}

impl<F: LaneFn> WithSimd for MapInPlace<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: crate::gemm::GemmKernel>(self, s: S) {
        let f = self.f;
        map_in_place(
            s,
            self.x,
            #[inline(always)]
            |v| f.apply(s, v),
        )
    }
}

/// [`zip_into`] as a [`WithSimd`].
pub(crate) struct ZipInto<'a, F> {
    pub a: &'a [f32],
    pub b: &'a [f32],
    pub out: &'a mut [f32],
    pub f: F,
}

impl<F: LaneFn2> WithSimd for ZipInto<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: crate::gemm::GemmKernel>(self, s: S) {
        let f = self.f;
        zip_into(
            s,
            self.a,
            self.b,
            self.out,
            #[inline(always)]
            |a, b| f.apply(s, a, b),
        )
    }
}

/// [`zip_in_place`] as a [`WithSimd`].
pub(crate) struct ZipInPlace<'a, F> {
    pub a: &'a [f32],
    pub dst: &'a mut [f32],
    pub f: F,
}

impl<F: LaneFn2> WithSimd for ZipInPlace<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: crate::gemm::GemmKernel>(self, s: S) {
        let f = self.f;
        zip_in_place(
            s,
            self.a,
            self.dst,
            #[inline(always)]
            |a, b| f.apply(s, a, b),
        )
    }
}
