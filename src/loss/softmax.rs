//! Log-sum-exp, softmax and log-softmax over the rows of a row-major matrix.
//!
//! Algorithm: the shifted form of Blanchard, Higham & Higham, "Accurately computing the
//! log-sum-exp and softmax functions", IMA J. Numer. Anal. 41 (2021):
//! lse(x) = m + log sum exp(x_i - m) with m = max x. Every term is <= 1 and one is
//! exactly 1, so nothing overflows, the sum lies in [1, n] and the log of it is
//! well conditioned; the error is about (n + 1)u plus u|lse|. Two passes (max, then
//! sum) rather than the one-pass online max-and-sum: the online form needs a second
//! exp per element to rescale, and a row read twice comes from L1/L2 the second time.
//!
//! Special values follow PyTorch. `torch.logsumexp` shifts by 0 when the max is
//! infinite, so a +inf gives +inf and an all -inf row gives -inf; softmax and
//! log_softmax shift by the max itself, so a +inf or an all -inf row gives NaN
//! everywhere (inf - inf). A NaN gives NaN in every case.

use super::rows_of;
use crate::checked::part;
use crate::error::check_len;
use crate::gemm::GemmKernel;
use crate::simd::{MAX_LANES, Simd, WithSimd, map_in_place, map_into};
use crate::{Error, Kernels};

const NEG_INF: f32 = f32::NEG_INFINITY;

/// The largest element of `x`, -inf for an empty row.
///
/// Whether a NaN shows through is unspecified (x86 `max` keeps the second operand);
/// every caller subtracts the result inside exp and sums, which NaN poisons anyway.
#[inline(always)]
pub(super) fn row_max<S: Simd>(s: S, x: &[f32]) -> f32 {
    let l = S::LANES;
    let mut acc = [s.splat(NEG_INF); 4];
    // Four chains hide the latency of max; the loop is bound by loads.
    let mut blocks = x.chunks_exact(4 * l);
    for b in &mut blocks {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = s.max(*a, s.load(&b[k * l..]));
        }
    }
    let mut rest = blocks.remainder().chunks_exact(l);
    for v in &mut rest {
        acc[0] = s.max(acc[0], s.load(v));
    }
    let t = rest.remainder();
    if !t.is_empty() {
        acc[1] = s.max(acc[1], s.load_partial(t, NEG_INF));
    }
    s.reduce_max(s.max(s.max(acc[0], acc[1]), s.max(acc[2], acc[3])))
}

/// A mask of the first `n` lanes.
#[inline(always)]
pub(super) fn first_lanes<S: Simd>(s: S, n: usize) -> S::M {
    const ONES: [f32; MAX_LANES] = [1.0; MAX_LANES];
    s.lt(
        s.splat(0.0),
        s.load_partial(&ONES[..n.min(S::LANES).min(MAX_LANES)], 0.0),
    )
}

/// exp(v - shift) in the `valid` lanes, 0 in the others.
///
/// The other lanes are computed as exp(shift - shift) = exp(0) and then zeroed rather
/// than fed -inf: an exp that underflows through the subnormals takes a microcode
/// assist (over 100 cycles) on Intel cores, which at one partial vector per row
/// cost more than the rest of a 10-class row.
#[inline(always)]
pub(super) fn exp_masked<S: Simd>(s: S, v: S::V, shift: S::V, valid: S::M) -> S::V {
    let e = s.exp(s.sub(s.select(valid, v, shift), shift));
    s.select(valid, e, s.splat(0.0))
}

/// exp(x_i - shift) of a partial vector (`x` shorter than a vector), 0 beyond it.
#[inline(always)]
fn exp_tail<S: Simd>(s: S, x: &[f32], shift: S::V) -> S::V {
    exp_masked(s, s.load_partial(x, 0.0), shift, first_lanes(s, x.len()))
}

/// sum exp(x_i - shift), and with `AHEAD` the max of `next` (the next row, as long
/// as `x`, else `x` again): its read from memory overlaps the exps of this row.
#[inline(always)]
fn row_sum_exp<S: Simd, const AHEAD: bool>(
    s: S,
    x: &[f32],
    shift: f32,
    next: &[f32],
) -> (f32, f32) {
    let l = S::LANES;
    let nx = if next.len() == x.len() { next } else { x };
    let sh = s.splat(shift);
    let mut acc = [s.splat(0.0); 2];
    let mut mx = s.splat(NEG_INF);
    let (mut xs, mut ns) = (x.chunks_exact(2 * l), nx.chunks_exact(2 * l));
    for (xb, nb) in (&mut xs).zip(&mut ns) {
        let (x0, x1) = xb.split_at(l);
        let (n0, n1) = nb.split_at(l);
        for ((a, xv), nv) in acc.iter_mut().zip([x0, x1]).zip([n0, n1]) {
            if AHEAD {
                mx = s.max(mx, s.load(nv));
            }
            *a = s.add(*a, s.exp(s.sub(s.load(xv), sh)));
        }
    }
    let (x, nx) = (xs.remainder(), ns.remainder());
    let (x, nx) = if x.len() >= l {
        if AHEAD {
            mx = s.max(mx, s.load(nx));
        }
        acc[0] = s.add(acc[0], s.exp(s.sub(s.load(x), sh)));
        (x.split_at(l).1, part(nx, l..))
    } else {
        (x, nx)
    };
    if !x.is_empty() {
        if AHEAD {
            mx = s.max(mx, s.load_partial(nx, NEG_INF));
        }
        acc[1] = s.add(acc[1], exp_tail(s, x, sh));
    }
    let m_next = if AHEAD { s.reduce_max(mx) } else { f32::NAN };
    (s.reduce_sum(s.add(acc[0], acc[1])), m_next)
}

/// `out_i = exp(x_i - shift)`, returning their sum; `out` as long as `x`.
#[inline(always)]
pub(super) fn row_exp_into<S: Simd>(s: S, x: &[f32], shift: f32, out: &mut [f32]) -> f32 {
    let sh = s.splat(shift);
    let mut acc = s.splat(0.0);
    let mut xs = x.chunks_exact(S::LANES);
    let mut os = out.chunks_exact_mut(S::LANES);
    for (v, o) in (&mut xs).zip(&mut os) {
        let e = s.exp(s.sub(s.load(v), sh));
        acc = s.add(acc, e);
        s.store(o, e);
    }
    let (t, o) = (xs.remainder(), os.into_remainder());
    if !t.is_empty() {
        let e = exp_tail(s, t, sh);
        acc = s.add(acc, e);
        s.store_partial(o, e);
    }
    s.reduce_sum(acc)
}

/// `x_i = exp(x_i - shift)` in place, returning their sum.
#[inline(always)]
fn row_exp_in_place<S: Simd>(s: S, x: &mut [f32], shift: f32) -> f32 {
    let sh = s.splat(shift);
    let mut acc = s.splat(0.0);
    let mut xs = x.chunks_exact_mut(S::LANES);
    for v in &mut xs {
        let e = s.exp(s.sub(s.load(v), sh));
        acc = s.add(acc, e);
        s.store(v, e);
    }
    let t = xs.into_remainder();
    if !t.is_empty() {
        let e = exp_tail(s, t, sh);
        acc = s.add(acc, e);
        s.store_partial(t, e);
    }
    s.reduce_sum(acc)
}

/// `torch.logsumexp`'s shift: the max, or 0 when the max is infinite (so that +inf
/// stays +inf and all -inf gives log 0 = -inf instead of inf - inf).
#[inline(always)]
fn lse_shift(m: f32) -> f32 {
    if m.is_infinite() { 0.0 } else { m }
}

/// log-sum-exp of one row, given its max if known, and with `AHEAD` the max of the
/// next row (see [`row_sum_exp`]). Returns the sum and the shift: lse = log(sum) +
/// shift.
#[inline(always)]
fn lse_parts<S: Simd, const AHEAD: bool>(
    s: S,
    x: &[f32],
    max: Option<f32>,
    next: &[f32],
) -> (f32, f32, Option<f32>) {
    if x.len() <= S::LANES {
        // The row fits one vector: keep it in a register.
        let v = s.load_partial(x, NEG_INF);
        let sh = lse_shift(s.reduce_max(v));
        let sum = s.reduce_sum(exp_masked(s, v, s.splat(sh), first_lanes(s, x.len())));
        return (sum, sh, None);
    }
    let sh = lse_shift(max.unwrap_or_else(|| row_max(s, x)));
    let (sum, m_next) = row_sum_exp::<S, AHEAD>(s, x, sh, next);
    (sum, sh, AHEAD.then_some(m_next))
}

/// The sum and shift of a row of `n` in two vectors, from `x` that runs on to the end
/// of the batch: where it goes on, the second vector is loaded whole and masked, as
/// partial loads stall on some backends (see `small_row` in `fused.rs`).
#[inline(always)]
fn lse_parts_two<S: Simd>(s: S, x: &[f32], n: usize, tail: S::M) -> (f32, f32) {
    let (l, ninf) = (S::LANES, s.splat(NEG_INF));
    let v0 = s.load(x);
    let rest = part(x, l..);
    let v1 = if rest.len() >= l {
        s.select(tail, s.load(rest), ninf)
    } else {
        s.load_partial(part(rest, ..n - l), NEG_INF)
    };
    let sh = lse_shift(s.reduce_max(s.max(v0, v1)));
    let shv = s.splat(sh);
    let e = s.add(s.exp(s.sub(v0, shv)), exp_masked(s, v1, shv, tail));
    (s.reduce_sum(e), sh)
}

/// Rows per block: their logs are taken after the block's sums, off the vector code's
/// dependency chain.
const BLOCK: usize = 16;

/// [`Kernels::logsumexp_rows`] on one backend.
#[inline(always)]
fn lse_rows<S: Simd>(s: S, x: &[f32], cols: usize, out: &mut [f32]) {
    let l = S::LANES;
    let two = cols > l && cols <= 2 * l;
    let tail = first_lanes(s, cols.saturating_sub(l));
    let mut ahead = None;
    for (b, ob) in out.chunks_mut(BLOCK).enumerate() {
        let mut parts = [(0.0f32, 0.0f32); BLOCK];
        for (i, p) in parts.iter_mut().enumerate().take(ob.len()) {
            let r = b * BLOCK + i;
            let x_on = part(x, r * cols..);
            if two {
                *p = lse_parts_two(s, x_on, cols, tail);
            } else {
                let xr = part(x_on, ..cols);
                // Empty after the last row.
                let next = x_on.get(cols..2 * cols).unwrap_or_default();
                let (sum, sh, m_next) = lse_parts::<S, true>(s, xr, ahead, next);
                (*p, ahead) = ((sum, sh), m_next);
            }
        }
        for (o, &(sum, sh)) in ob.iter_mut().zip(&parts) {
            *o = libm::logf(sum) + sh;
        }
    }
}

/// Softmax of `x` into `out` (same length), or in place when `x` is `None`.
#[inline(always)]
fn softmax_row<S: Simd>(s: S, x: Option<&[f32]>, out: &mut [f32]) {
    let n = out.len();
    if n <= S::LANES {
        let v = s.load_partial(x.unwrap_or(out), NEG_INF);
        let e = exp_masked(s, v, s.splat(s.reduce_max(v)), first_lanes(s, n));
        let r = 1.0 / s.reduce_sum(e);
        s.store_partial(out, s.mul(e, s.splat(r)));
        return;
    }
    let sum = match x {
        Some(x) => row_exp_into(s, x, row_max(s, x), out),
        None => {
            let m = row_max(s, out);
            row_exp_in_place(s, out, m)
        }
    };
    let r = s.splat(1.0 / sum);
    map_in_place(
        s,
        out,
        #[inline(always)]
        |e| s.mul(e, r),
    );
}

/// Log-softmax of `x` into `out`, or in place when `x` is `None`:
/// `(x_i - m) - log sum exp(x_j - m)`, the difference first so that rows of huge
/// magnitude keep their small offsets.
#[inline(always)]
fn log_softmax_row<S: Simd>(s: S, x: Option<&[f32]>, out: &mut [f32]) {
    let n = out.len();
    if n <= S::LANES {
        let v = s.load_partial(x.unwrap_or(out), NEG_INF);
        let m = s.splat(s.reduce_max(v));
        let e = exp_masked(s, v, m, first_lanes(s, n));
        let ls = s.splat(libm::logf(s.reduce_sum(e)));
        s.store_partial(out, s.sub(s.sub(v, m), ls));
        return;
    }
    let src = x.unwrap_or(out);
    let m = row_max(s, src);
    let ls = libm::logf(row_sum_exp::<S, false>(s, src, m, &[]).0);
    let (mv, lv) = (s.splat(m), s.splat(ls));
    match x {
        Some(x) => map_into(
            s,
            x,
            out,
            #[inline(always)]
            |v| s.sub(s.sub(v, mv), lv),
        ),
        None => map_in_place(
            s,
            out,
            #[inline(always)]
            |v| s.sub(s.sub(v, mv), lv),
        ),
    }
}

/// log-sum-exp of one row.
struct Lse<'a> {
    x: &'a [f32],
}

impl WithSimd for Lse<'_> {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, s: S) -> f32 {
        let (sum, sh, _) = lse_parts::<_, false>(s, self.x, None, &[]);
        libm::logf(sum) + sh
    }
}

/// log-sum-exp of every row of `x`, into `out`.
struct LseRows<'a> {
    x: &'a [f32],
    cols: usize,
    out: &'a mut [f32],
}

impl WithSimd for LseRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, s: S) {
        lse_rows(s, self.x, self.cols, self.out)
    }
}

/// Softmax (or with `LOG`, log-softmax) of every row of `src` into `dst`, or of
/// `dst` in place when `src` is `None`.
struct Rows<'a, const LOG: bool> {
    src: Option<&'a [f32]>,
    dst: &'a mut [f32],
    cols: usize,
}

impl<const LOG: bool> WithSimd for Rows<'_, LOG> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, s: S) {
        let row = |src: Option<&[f32]>, dst: &mut [f32]| {
            if LOG {
                log_softmax_row(s, src, dst)
            } else {
                softmax_row(s, src, dst)
            }
        };
        // The entry points refused 0 columns; `max` shows the compiler so.
        let cols = self.cols.max(1);
        match self.src {
            Some(x) => {
                for (r, o) in x.chunks_exact(cols).zip(self.dst.chunks_exact_mut(cols)) {
                    row(Some(r), o);
                }
            }
            None => {
                for r in self.dst.chunks_exact_mut(cols) {
                    row(None, r);
                }
            }
        }
    }
}

impl Kernels {
    /// log(sum exp(x_i)) of one row, as `torch.logsumexp`: within a few ulp plus
    /// `n` eps of the exact value for any finite input (rows of 1e30 included), +inf
    /// if the row holds +inf, -inf if it is empty or all -inf, NaN if it holds NaN.
    pub fn logsumexp(&self, x: &[f32]) -> f32 {
        self.isa.vectorize(Lse { x })
    }

    /// [`Kernels::logsumexp`] of every row of the row-major `[rows, cols]` matrix
    /// `x` into `out` (`rows` long). `Err` if `cols` is 0 or does not divide
    /// `x.len()`, or if `out` has the wrong length.
    pub fn logsumexp_rows(&self, x: &[f32], cols: usize, out: &mut [f32]) -> Result<(), Error> {
        let rows = rows_of("x", x.len(), cols)?;
        check_len("out", rows, out.len())?;
        self.isa.vectorize(LseRows { x, cols, out });
        Ok(())
    }

    /// Softmax of every row of the `[rows, cols]` matrix `x` into `out` (as long as
    /// `x`), as `torch.softmax(x, dim=1)`: a row holding +inf or NaN, or all -inf,
    /// becomes NaN. `Err` if `cols` is 0 or does not divide `x.len()`, or if the
    /// lengths differ.
    pub fn softmax(&self, x: &[f32], cols: usize, out: &mut [f32]) -> Result<(), Error> {
        rows_of("x", x.len(), cols)?;
        check_len("out", x.len(), out.len())?;
        self.isa.vectorize(Rows::<false> {
            src: Some(x),
            dst: out,
            cols,
        });
        Ok(())
    }

    /// [`Kernels::softmax`] in place.
    pub fn softmax_in_place(&self, x: &mut [f32], cols: usize) -> Result<(), Error> {
        rows_of("x", x.len(), cols)?;
        self.isa.vectorize(Rows::<false> {
            src: None,
            dst: x,
            cols,
        });
        Ok(())
    }

    /// Log-softmax of every row of the `[rows, cols]` matrix `x` into `out`, as
    /// `torch.log_softmax(x, dim=1)`: finite input gives finite output (-inf where
    /// `x` is -inf), a row holding +inf or NaN, or all -inf, becomes NaN. `Err` as
    /// for [`Kernels::softmax`].
    pub fn log_softmax(&self, x: &[f32], cols: usize, out: &mut [f32]) -> Result<(), Error> {
        rows_of("x", x.len(), cols)?;
        check_len("out", x.len(), out.len())?;
        self.isa.vectorize(Rows::<true> {
            src: Some(x),
            dst: out,
            cols,
        });
        Ok(())
    }

    /// [`Kernels::log_softmax`] in place.
    pub fn log_softmax_in_place(&self, x: &mut [f32], cols: usize) -> Result<(), Error> {
        rows_of("x", x.len(), cols)?;
        self.isa.vectorize(Rows::<true> {
            src: None,
            dst: x,
            cols,
        });
        Ok(())
    }
}

/// [`Kernels::logsumexp`] on the best backend.
///
/// ```
/// use mlp_kernels::logsumexp;
/// assert!((logsumexp(&[1.0, 2.0, 3.0]) - 3.407_606).abs() < 1e-6);
/// assert_eq!(logsumexp(&[1e30, 1e30]), 1e30); // shifted: no overflow
/// assert_eq!(logsumexp(&[]), f32::NEG_INFINITY);
/// assert_eq!(logsumexp(&[f32::INFINITY, 0.0]), f32::INFINITY);
/// assert!(logsumexp(&[f32::NAN, 0.0]).is_nan());
/// ```
pub fn logsumexp(x: &[f32]) -> f32 {
    Kernels::detect().logsumexp(x)
}

/// [`Kernels::logsumexp_rows`] on the best backend.
///
/// ```
/// let x = [0.0f32, 0.0, f32::NEG_INFINITY, f32::NEG_INFINITY];
/// let mut lse = [0.0f32; 2];
/// mlp_kernels::logsumexp_rows(&x, 2, &mut lse)?;
/// assert_eq!(lse, [core::f32::consts::LN_2, f32::NEG_INFINITY]);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn logsumexp_rows(x: &[f32], cols: usize, out: &mut [f32]) -> Result<(), Error> {
    Kernels::detect().logsumexp_rows(x, cols, out)
}

/// [`Kernels::softmax`] on the best backend.
///
/// ```
/// let x = [0.0f32, 0.0, 1e30, f32::NEG_INFINITY];
/// let mut p = [0.0f32; 4];
/// mlp_kernels::softmax(&x, 2, &mut p)?;
/// assert_eq!(p, [0.5, 0.5, 1.0, 0.0]);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn softmax(x: &[f32], cols: usize, out: &mut [f32]) -> Result<(), Error> {
    Kernels::detect().softmax(x, cols, out)
}

/// [`Kernels::softmax_in_place`] on the best backend.
///
/// ```
/// let mut x = [1.0f32, 1.0, 1.0, 1.0];
/// mlp_kernels::softmax_in_place(&mut x, 4)?;
/// assert_eq!(x, [0.25; 4]);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn softmax_in_place(x: &mut [f32], cols: usize) -> Result<(), Error> {
    Kernels::detect().softmax_in_place(x, cols)
}

/// [`Kernels::log_softmax`] on the best backend.
///
/// ```
/// let x = [1e30f32, 1e30];
/// let mut y = [0.0f32; 2];
/// mlp_kernels::log_softmax(&x, 2, &mut y)?;
/// assert_eq!(y, [-core::f32::consts::LN_2; 2]);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn log_softmax(x: &[f32], cols: usize, out: &mut [f32]) -> Result<(), Error> {
    Kernels::detect().log_softmax(x, cols, out)
}

/// [`Kernels::log_softmax_in_place`] on the best backend.
///
/// ```
/// let mut x = [0.0f32, f32::NEG_INFINITY];
/// mlp_kernels::log_softmax_in_place(&mut x, 2)?;
/// assert_eq!(x, [0.0, f32::NEG_INFINITY]);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn log_softmax_in_place(x: &mut [f32], cols: usize) -> Result<(), Error> {
    Kernels::detect().log_softmax_in_place(x, cols)
}
