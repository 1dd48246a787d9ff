//! The fused softmax cross-entropy kernel: loss and gradient of a batch of rows in one
//! pass over the logits per row (definitions in `cross_entropy.rs`).
//!
//! A row of one or two vectors stays in registers. A longer row is read once for its
//! max and once more to store exp(x - m) into the gradient while it sums, and the
//! gradient row, still in L1/L2, is then rescaled: one exp per element. The passes
//! are software-pipelined over the rows, as the exps are bound by the FMA units and
//! the reads by memory: the max of row i + 1 and the rescale of row i - 1 ride along
//! with the exps of row i (measured on [64, 32000]: 1.43 ms in three plain passes,
//! 0.85 ms pipelined). Losses are assembled a block of rows later, so that the
//! scalar log of each row's sum stays off the vector code's dependency chain.

use super::cross_entropy::{CrossEntropy, Reduction, Target, class_weight};
use super::softmax::{exp_masked, first_lanes, row_max};
use crate::checked::{item, part, part_mut};
use crate::simd::{MAX_LANES, Simd};
use core::num::NonZeroUsize;

const NEG_INF: f32 = f32::NEG_INFINITY;
/// Lane numbers, to pick one lane of a vector.
const IOTA: [f32; MAX_LANES] = {
    let mut a = [0.0; MAX_LANES];
    let mut i = 0;
    while i < MAX_LANES {
        a[i] = i as f32;
        i += 1;
    }
    a
};

/// Summed row losses, split as PyTorch reduces them: the index targets' nll part
/// (before its (1 - e) factor) and the rest (smoothing, or the whole loss of
/// probability targets).
#[derive(Clone, Copy, Default)]
pub(super) struct Sums {
    pub(super) nll: f64,
    pub(super) rest: f64,
    /// The plain sum of the row losses, which Reduction::None returns.
    pub(super) rows: f64,
}

/// A call's row losses are summed per chunk of rows, and the chunks' sums then in
/// chunk order ([`Sums::in_order`]): the parts of a threaded call take whole chunks,
/// so one thread and any number of them add in the same order and return the same
/// bits. (At most this many parts share a threaded call.)
pub(super) const CHUNKS: usize = 16;

/// Which chunk a row's losses go to: rows `c * per_chunk..(c + 1) * per_chunk` of the
/// whole batch make chunk `c`; a kernel call that starts at row `first_row` of it
/// finds its rows' chunks so.
#[derive(Clone, Copy, Debug)]
pub(super) struct Chunking {
    pub(super) first_row: usize,
    /// (Never 0, and so no division by 0 on any path.)
    pub(super) per_chunk: NonZeroUsize,
}

impl Chunking {
    /// The chunks of a whole batch of `rows`, for a call that starts at its first row.
    pub(super) fn of(rows: usize) -> Chunking {
        Chunking {
            first_row: 0,
            per_chunk: NonZeroUsize::new(rows.div_ceil(CHUNKS)).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// Where a kernel call's rows leave their losses: the sums of each chunk of rows,
/// asked for in increasing chunk order.
pub(super) trait ChunkSums {
    fn chunk(&mut self, c: usize) -> &mut Sums;
}

/// Every chunk's sums, for a part of a threaded call.
impl ChunkSums for [Sums; CHUNKS] {
    #[inline(always)]
    fn chunk(&mut self, c: usize) -> &mut Sums {
        debug_assert!(c < CHUNKS, "chunk {c}");
        &mut self[c.min(CHUNKS - 1)]
    }
}

/// One thread's sums: each chunk added to the total as the next begins, which is
/// [`Sums::in_order`] over all of them (a skipped chunk's zeros add nothing, and a
/// total that starts at +0 never becomes -0), in 48 bytes instead of an array of
/// chunks (the firmware's stack).
#[derive(Default)]
pub(super) struct InOrder {
    total: Sums,
    current: Sums,
    at: usize,
}

impl InOrder {
    pub(super) fn finish(self) -> Sums {
        self.total.plus(self.current)
    }

    /// Out of line: it runs at most 16 times a call, and inlined into every form of
    /// the row loop it cost the firmware 1.6 KiB of code.
    #[inline(never)]
    fn next_chunk(&mut self, c: usize) {
        self.total = self.total.plus(self.current);
        (self.current, self.at) = (Sums::default(), c);
    }
}

impl ChunkSums for InOrder {
    #[inline(always)]
    fn chunk(&mut self, c: usize) -> &mut Sums {
        if c != self.at {
            self.next_chunk(c);
        }
        &mut self.current
    }
}

impl Sums {
    fn plus(self, c: Sums) -> Sums {
        Sums {
            nll: self.nll + c.nll,
            rest: self.rest + c.rest,
            rows: self.rows + c.rows,
        }
    }

    /// The chunks' sums added in chunk order, from 0.
    #[cfg(feature = "std")]
    pub(super) fn in_order(chunks: &[Sums]) -> Sums {
        chunks.iter().fold(Sums::default(), |a, &c| a.plus(c))
    }

    /// (1 - e) nll / d + rest / d. Each sum is rounded to f32 before it is divided
    /// and blended, as PyTorch's are, so that an nll sum that overflows gives inf there
    /// and here (and NaN at e = 1). The divisor stays in f64: class weights whose f32
    /// sum overflows give PyTorch a loss of 0 next to a finite gradient; here loss and
    /// gradient both use the exact divisor (a closer-to-exact answer, documented on
    /// [`crate::Kernels::cross_entropy`]). Each quotient is an f64 division of an f32
    /// by the divisor, rounded once to f32.
    pub(super) fn reduce(self, opts: &CrossEntropy, divisor: f64) -> f32 {
        if opts.reduction == Reduction::None {
            return self.rows as f32;
        }
        let part = |sum: f64| (f64::from(sum as f32) / divisor) as f32;
        if opts.label_smoothing == 0.0 && self.rest == 0.0 {
            // PyTorch's nll_loss alone: no smoothing term whose 0 / 0 would turn the
            // +-inf of a zero weight sum into NaN.
            return part(self.nll);
        }
        (1.0 - opts.label_smoothing) * part(self.nll) + part(self.rest)
    }
}

/// The first `w` lanes from `x` (all `LANES` when `w` reaches it), the rest 0.
#[inline(always)]
fn ld<S: Simd>(s: S, x: &[f32], w: usize) -> S::V {
    if w >= S::LANES {
        s.load(x)
    } else {
        s.load_partial(x.get(..w).unwrap_or(x), 0.0)
    }
}

/// A gradient row that holds exp(x - m) and waits for its rescale by `c` (see
/// [`rescale`]), and the index target's own share `k` to take off class `y`.
struct Pending<'a> {
    row: usize,
    g: &'a mut [f32],
    c: f32,
    own: Option<(usize, f32)>,
}

impl Pending<'_> {
    /// The rescale, whole or from column `from` on, and the own share.
    #[inline(always)]
    fn finish<S: Simd, const ACC: bool>(
        self,
        s: S,
        from: usize,
        scale: f32,
        tv: &impl Fn(usize, usize, usize) -> S::V,
    ) {
        let r = self.row;
        if let Some(g) = self.g.get_mut(from..) {
            rescale::<S, ACC>(
                s,
                g,
                self.c,
                scale,
                #[inline(always)]
                |j, w| tv(r, from + j, w),
            );
        }
        if let Some((y, k)) = self.own
            && let Some(gy) = self.g.get_mut(y)
        {
            *gy -= k;
        }
    }
}

/// A [`Pending`] row, by index: (row, c, own share).
type Waiting = (usize, f32, Option<(usize, f32)>);

/// The sums of row `r`: s = sum exp(x - m), and when `ACC`, T = sum t and
/// A = sum t (m - x). Stores exp(x - m) into `g` when `GRAD`. `tail` masks the
/// last, partial vector.
///
/// Two other rows ride along. The max of `next` (the next row, as long as `x`; else
/// `x` again) is returned: reading the next row from memory while this one's exps
/// keep the FMA units busy hides the max pass (measured: 20% of a [64, 32000] fused
/// call). And the previous row's gradient, if `prev` holds it, is rescaled here
/// rather than in a pass of its own (another 10%).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_sums<S: Simd, const ACC: bool, const GRAD: bool>(
    s: S,
    r: usize,
    x: &[f32],
    m: f32,
    next: &[f32],
    g: &mut [f32],
    prev: Option<Pending>,
    scale: f32,
    tail: S::M,
    tv: &impl Fn(usize, usize, usize) -> S::V,
) -> (f32, f32, f32, f32) {
    let (l, n) = (S::LANES, x.len());
    let nx = if next.len() == n { next } else { x };
    let (mv, zero) = (s.splat(m), s.splat(0.0));
    let (mut se, mut st, mut sa) = (zero, zero, zero);
    let mut mx = s.splat(NEG_INF);
    let (pr, pc) = prev.as_ref().map_or((0, 0.0), |p| (p.row, p.c));
    let (pcv, ns) = (s.splat(pc), s.splat(-scale));
    let mut prev = prev;
    let mut ps = match prev.as_mut() {
        Some(p) if p.g.len() == n => p.g.chunks_exact_mut(l),
        _ => [].chunks_exact_mut(l),
    };
    // Whole vectors through exact chunks, so that no slice bound is checked per vector.
    let mut gs = g.chunks_exact_mut(l);
    // (Not `zip`: its length is a division that the optimiser keeps out of line.)
    let mut next_vectors = nx.chunks_exact(l);
    for (k, xv) in x.chunks_exact(l).enumerate() {
        // `nx` is as long as `x`.
        let nv = next_vectors.next().unwrap_or(xv);
        mx = s.max(mx, s.load(nv));
        let v = s.load(xv);
        let e = s.exp(s.sub(v, mv));
        se = s.add(se, e);
        if GRAD {
            if let Some(o) = gs.next() {
                s.store(o, e);
            }
            if let Some(o) = ps.next() {
                let y = s.mul(s.load(o), pcv);
                let y = if ACC {
                    s.fma(tv(pr, k * l, l), ns, y)
                } else {
                    y
                };
                s.store(o, y);
            }
        }
        if ACC {
            let t = tv(r, k * l, l);
            st = s.add(st, t);
            sa = s.fma(t, s.sub(mv, v), sa);
        }
    }
    let j = n - n % l;
    if let Some(p) = prev {
        // Whatever the loop did not reach (the tail, or all of a row of another
        // length), and the own share.
        let done = if p.g.len() == n { j } else { 0 };
        p.finish::<S, ACC>(s, done, scale, tv);
    }
    if j < n {
        // The tails past the whole vectors: x[j..], nx[j..] and g[j..].
        let (xt, nt) = (
            x.chunks_exact(l).remainder(),
            nx.chunks_exact(l).remainder(),
        );
        mx = s.max(mx, s.load_partial(nt, NEG_INF));
        let v = s.load_partial(xt, NEG_INF);
        let e = exp_masked(s, v, mv, tail);
        se = s.add(se, e);
        if GRAD {
            s.store_partial(gs.into_remainder(), e);
        }
        if ACC {
            // Padding lanes would add 0 * inf: mask them out.
            let t = s.select(tail, tv(r, j, n - j), zero);
            st = s.add(st, t);
            sa = s.add(sa, s.select(tail, s.mul(t, s.sub(mv, v)), zero));
        }
    }
    let mx = s.reduce_max(mx);
    if ACC {
        (s.reduce_sum(se), s.reduce_sum(st), s.reduce_sum(sa), mx)
    } else {
        (s.reduce_sum(se), 0.0, 0.0, mx)
    }
}

/// `g = g c - scale t` over a row holding exp(x - m).
#[inline(always)]
fn rescale<S: Simd, const ACC: bool>(
    s: S,
    g: &mut [f32],
    c: f32,
    scale: f32,
    tv: impl Fn(usize, usize) -> S::V,
) {
    let (l, n) = (S::LANES, g.len());
    let (cv, ns) = (s.splat(c), s.splat(-scale));
    let mut gs = g.chunks_exact_mut(l);
    for (k, o) in (&mut gs).enumerate() {
        let e = s.mul(s.load(o), cv);
        let y = if ACC { s.fma(tv(k * l, l), ns, e) } else { e };
        s.store(o, y);
    }
    let j = n - n % l;
    let t = gs.into_remainder();
    if !t.is_empty() {
        let e = s.mul(s.load_partial(t, 0.0), cv);
        let y = if ACC { s.fma(tv(j, n - j), ns, e) } else { e };
        s.store_partial(t, y);
    }
}

/// What a row leaves for its loss. Losses are assembled a block of rows at a time, so
/// that the scalar log of each row's sum is off the vector code's dependency chain
/// (measured: a third of a [200, 10] call otherwise).
#[derive(Clone, Copy, Default)]
struct RowStat {
    row: usize,
    /// sum exp(x - m).
    sum: f32,
    /// With an index target: m - x_y and w_y.
    own: Option<(f32, f32)>,
    /// T and A of the rest of the target vector (see `row_sums`).
    tt: f32,
    aa: f32,
}

/// Rows per block of `RowStat`s.
const BLOCK: usize = 16;

/// The losses of a block of rows, into `losses` (if long enough) and their chunks'
/// sums.
#[inline(always)]
fn finish_rows<const ACC: bool>(
    stats: &[RowStat],
    keep: f32,
    weight_scale: f32,
    losses: &mut [f32],
    (sums, chunking): (&mut impl ChunkSums, Chunking),
) {
    for st in stats {
        let total = sums.chunk((chunking.first_row + st.row) / chunking.per_chunk.get());
        let ls = libm::logf(st.sum);
        let loss = match st.own {
            Some((d, wy)) => {
                // PyTorch's (1 - e) nll + e/C smooth, with nll = -w_y log p_y and the
                // difference first as in log_softmax; the product order is PyTorch's,
                // so that an nll overflowing to inf times e = 1 is NaN there and here.
                let nll = wy * (d + ls);
                total.nll += f64::from(nll);
                if ACC {
                    let smooth = st.tt * ls + st.aa;
                    total.rest += f64::from(smooth);
                    keep * nll + smooth
                } else {
                    nll
                }
            }
            None => {
                let loss = st.tt * ls + st.aa;
                total.rest += f64::from(loss);
                loss
            }
        };
        // The row's loss without the weight scale: times its inverse, a power of two,
        // one rounding of the exact quotient (and exactly `loss` at scale 1).
        let loss = loss * (1.0 / weight_scale);
        if let Some(l) = losses.get_mut(st.row) {
            *l = loss;
        }
        total.rows += f64::from(loss);
    }
}

/// softmax T - t = exp(x - m) (scale T / s) - scale t for a row: the factor on the
/// exps, with T including the index target's own share (1 - e) w_y, and that share
/// scaled, which comes off its class.
#[inline(always)]
fn grad_factors<const ACC: bool>(
    own: Option<(usize, f32)>,
    keep: f32,
    scale: f32,
    tt: f32,
    sum: f32,
) -> (f32, Option<(usize, f32)>) {
    let t_all = match own {
        Some((_, wy)) if ACC => tt + keep * wy,
        Some((_, wy)) => wy,
        None => tt,
    };
    (
        scale * t_all / sum,
        own.map(|(y, wy)| (y, scale * (keep * wy))),
    )
}

/// A row of `n` (at most `NV` vectors) kept in registers: returns m, s, T and A (see
/// [`row_sums`]) and with `GRAD` writes the row's gradient. `x` and `g` run from the
/// row's start to the end of the batch; `tail` masks the last vector.
///
/// Where the batch goes on, the last vector is loaded and stored whole, across into
/// the next row, which is written after this one: partial loads and stores go
/// through a stack buffer on some backends and stall on store forwarding.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn small_row<S: Simd, const ACC: bool, const GRAD: bool, const NV: usize>(
    s: S,
    r: usize,
    (x, n): (&[f32], usize),
    g: &mut [f32],
    own: Option<(usize, f32)>,
    (keep, scale): (f32, f32),
    tail: S::M,
    tv: &impl Fn(usize, usize, usize) -> S::V,
) -> (f32, f32, f32, f32) {
    let (l, zero, ninf) = (S::LANES, s.splat(0.0), s.splat(NEG_INF));
    let whole = x.len() >= NV * l;
    let mut v = [ninf; NV];
    for (k, vk) in v.iter_mut().enumerate() {
        let xk = part(x, k * l..);
        *vk = if k + 1 < NV {
            s.load(xk)
        } else if whole {
            s.select(tail, s.load(xk), ninf)
        } else {
            s.load_partial(part(xk, ..n - k * l), NEG_INF)
        };
    }
    let m = s.reduce_max(v.iter().fold(s.splat(NEG_INF), |a, &b| s.max(a, b)));
    let mv = s.splat(m);
    let (mut e, mut t) = ([zero; NV], [zero; NV]);
    let (mut se, mut st, mut sa) = (zero, zero, zero);
    for k in 0..NV {
        let last = k + 1 == NV;
        e[k] = if last {
            exp_masked(s, v[k], mv, tail)
        } else {
            s.exp(s.sub(v[k], mv))
        };
        se = s.add(se, e[k]);
        if ACC {
            let tk = tv(r, k * l, if last { n - k * l } else { l });
            // Padding lanes would add 0 * inf: mask them out.
            t[k] = if last { s.select(tail, tk, zero) } else { tk };
            st = s.add(st, t[k]);
            let a = s.mul(t[k], s.sub(mv, v[k]));
            sa = s.add(sa, if last { s.select(tail, a, zero) } else { a });
        }
    }
    let sum = s.reduce_sum(se);
    let (tt, aa) = if ACC {
        (s.reduce_sum(st), s.reduce_sum(sa))
    } else {
        (0.0, 0.0)
    };
    if GRAD {
        let (c, own_g) = grad_factors::<ACC>(own, keep, scale, tt, sum);
        let (cv, ns) = (s.splat(c), s.splat(-scale));
        for k in 0..NV {
            let mut y = s.mul(e[k], cv);
            if ACC {
                y = s.fma(t[k], ns, y);
            }
            // In the register: a scalar read-modify-write right after the vector
            // store would stall on store forwarding.
            if let Some((c, kk)) = own_g {
                let hot = s.eq(s.load(&IOTA), s.splat(c as f32 - (k * l) as f32));
                y = s.sub(y, s.select(hot, s.splat(kk), zero));
            }
            let whole = g.len() >= NV * l;
            let out = part_mut(g, k * l..);
            if k + 1 < NV || whole {
                s.store(out, y);
            } else {
                s.store_partial(part_mut(out, ..n - k * l), y);
            }
        }
    }
    (m, sum, tt, aa)
}

/// The rows of one call. `tv(row, col, width)` gives the smoothed, weighted target
/// vector t at `col..col + width` (the part of it that is not the index target's own
/// (1 - e) w_y); `ACC` says whether there is such a part. The losses go to `sums`,
/// per chunk of rows.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn ce_rows<S: Simd, const ACC: bool, const GRAD: bool>(
    s: S,
    x: &[f32],
    classes: usize,
    idx: Option<&[i64]>,
    opts: &CrossEntropy,
    (scale, ws): (f32, f32),
    losses: &mut [f32],
    grad: &mut [f32],
    (sums, chunking): (&mut impl ChunkSums, Chunking),
    tv: impl Fn(usize, usize, usize) -> S::V,
) {
    let l = S::LANES;
    // Rows of one or two vectors stay in registers (the MNIST batch's 10 classes are
    // two vectors on the 8-lane backends).
    let vectors = classes.div_ceil(l);
    let tail = first_lanes(
        s,
        if vectors <= 2 {
            classes - (vectors - 1) * l
        } else {
            classes % l
        },
    );
    let keep = 1.0 - opts.label_smoothing;
    let mut stats = [RowStat::default(); BLOCK];
    let mut pending = 0;
    // (row, its max) found ahead by `row_sums` on the row before.
    let mut ahead: Option<(usize, f32)> = None;
    // A gradient row waiting for its rescale: (row, c, own share).
    let mut waiting: Option<Waiting> = None;
    // `plan` refused 0 classes; `max` shows the compiler so.
    for (r, xr) in x.chunks_exact(classes.max(1)).enumerate() {
        // The gradient rows before this one, and from this one on.
        let (done, rest) = grad.split_at_mut((r * classes).min(grad.len()));
        let g_on: &mut [f32] = if GRAD { rest } else { &mut [] };
        // The index target's own class and weight; its share of t is (1 - e) w_y.
        let mut own = None;
        if let Some(&c) = idx.and_then(|t| t.get(r)) {
            if Some(c) == opts.ignore_index {
                if let Some(g) = g_on.get_mut(..classes) {
                    g.fill(0.0);
                }
                if let Some(l) = losses.get_mut(r) {
                    *l = 0.0;
                }
                continue;
            }
            // `plan` checked every index.
            let wc = class_weight(opts.weight, c, classes);
            debug_assert!(wc.is_some());
            let wc = wc.unwrap_or(f32::NAN) * ws;
            own = Some((c as usize, wc));
        }
        let f = (keep, scale);
        // This row and the rest of the batch.
        let x_on = part(x, r * classes..);
        let (m, sum, tt, aa) = match vectors {
            1 => small_row::<S, ACC, GRAD, 1>(s, r, (x_on, classes), g_on, own, f, tail, &tv),
            2 => small_row::<S, ACC, GRAD, 2>(s, r, (x_on, classes), g_on, own, f, tail, &tv),
            _ => {
                let m = match ahead {
                    Some((row, m)) if row == r => m,
                    _ => row_max(s, xr),
                };
                // Empty after the last row.
                let next = x
                    .get((r + 1) * classes..(r + 2) * classes)
                    .unwrap_or_default();
                let prev = waiting.take().and_then(|(row, c, own)| {
                    let g = done.get_mut(row * classes..(row + 1) * classes)?;
                    Some(Pending { row, g, c, own })
                });
                // Empty without a gradient (`g_on` is then empty).
                let g = g_on.get_mut(..classes).unwrap_or_default();
                let (sum, tt, aa, m_next) =
                    row_sums::<S, ACC, GRAD>(s, r, xr, m, next, g, prev, scale, tail, &tv);
                ahead = Some((r + 1, m_next));
                if GRAD {
                    // Rescaled along with the next row's sums, or after the loop.
                    let (c, own_g) = grad_factors::<ACC>(own, keep, scale, tt, sum);
                    waiting = Some((r, c, own_g));
                }
                (m, sum, tt, aa)
            }
        };
        let own_d = own.map(|(c, wy)| (m - item(xr, c, f32::NAN), wy));
        if let Some(slot) = stats.get_mut(pending) {
            *slot = RowStat {
                row: r,
                sum,
                own: own_d,
                tt,
                aa,
            };
            pending += 1;
        }
        if pending == BLOCK {
            finish_rows::<ACC>(&stats, keep, ws, losses, (&mut *sums, chunking));
            pending = 0;
        }
    }
    if let Some((row, c, own)) = waiting
        && let Some(g) = grad.get_mut(row * classes..(row + 1) * classes)
    {
        Pending { row, g, c, own }.finish::<S, ACC>(s, 0, scale, &tv);
    }
    finish_rows::<ACC>(part(&stats, ..pending), keep, ws, losses, (sums, chunking));
}

/// Chooses the target vector's form once per call and runs the rows, their losses
/// summed into `sums` per chunk of rows (see [`CHUNKS`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn ce_kernel<S: Simd, const GRAD: bool>(
    s: S,
    x: &[f32],
    classes: usize,
    target: Target,
    opts: &CrossEntropy,
    (scale, ws): (f32, f32),
    losses: &mut [f32],
    grad: &mut [f32],
    (sums, chunking): (&mut impl ChunkSums, Chunking),
) {
    let e = opts.label_smoothing;
    let k = e / classes as f32;
    let (kv, av, zero) = (s.splat(k), s.splat(1.0 - e), s.splat(0.0));
    // The weights times the weight scale `ws`, a power of two (1 but for tiny weights):
    // (k ws) w rounds as ws (k w) does, exactly.
    let (kwv, wsv) = (s.splat(k * ws), s.splat(ws));
    let w = opts.weight.unwrap_or(&[]);
    match (target, opts.weight) {
        (Target::Indices(t), _) if e == 0.0 => ce_rows::<S, false, GRAD>(
            s,
            x,
            classes,
            Some(t),
            opts,
            (scale, ws),
            losses,
            grad,
            (&mut *sums, chunking),
            #[inline(always)]
            |_, _, _| zero,
        ),
        (Target::Indices(t), None) => ce_rows::<S, true, GRAD>(
            s,
            x,
            classes,
            Some(t),
            opts,
            (scale, ws),
            losses,
            grad,
            (&mut *sums, chunking),
            #[inline(always)]
            |_, _, _| kv,
        ),
        // The closures must inline into the backend's target-feature context: called,
        // each vector would cross a function boundary (measured 4x slower).
        (Target::Indices(t), Some(_)) => ce_rows::<S, true, GRAD>(
            s,
            x,
            classes,
            Some(t),
            opts,
            (scale, ws),
            losses,
            grad,
            (&mut *sums, chunking),
            #[inline(always)]
            |_, j, n| s.mul(kwv, ld(s, part(w, j..), n)),
        ),
        (Target::Probabilities(q), None) => ce_rows::<S, true, GRAD>(
            s,
            x,
            classes,
            None,
            opts,
            (scale, ws),
            losses,
            grad,
            (&mut *sums, chunking),
            #[inline(always)]
            |r, j, n| s.fma(ld(s, part(q, r * classes + j..), n), av, kv),
        ),
        (Target::Probabilities(q), Some(_)) => ce_rows::<S, true, GRAD>(
            s,
            x,
            classes,
            None,
            opts,
            (scale, ws),
            losses,
            grad,
            (&mut *sums, chunking),
            #[inline(always)]
            |r, j, n| {
                let qv = ld(s, part(q, r * classes + j..), n);
                let wv = s.mul(ld(s, part(w, j..), n), wsv);
                s.mul(wv, s.fma(qv, av, kv))
            },
        ),
    }
}
