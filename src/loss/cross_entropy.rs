//! Softmax cross-entropy from logits, its fused gradient, and `nll_loss`.
//!
//! Definitions: `torch.nn.functional.cross_entropy` and `nll_loss` (PyTorch docs and
//! `aten/src/ATen/native/LossNLL.cpp`). Every row i gets a target vector t (class
//! index y: t_c = (1 - e) w_y [c = y] + e/C w_c; probabilities q: t_c = w_c ((1 - e)
//! q_c + e/C), with e the label smoothing and w = 1 without weights), and
//!
//! ```text
//! loss_i = sum_c t_c (lse(x_i) - x_ic) = T log s + sum_c t_c (m - x_ic)
//! dloss_i/dx_ic = softmax(x_i)_c T - t_c,        T = sum_c t_c
//! ```
//!
//! with m the row max and s = sum exp(x - m), so huge logits stay exact (see
//! `softmax.rs`). Mean divides by the summed w_y of the rows not ignored (index
//! targets) or by the row count (probabilities), as PyTorch does. Ignored rows get
//! loss 0 and gradient exactly 0 without being read (PyTorch's gradient there is NaN
//! if the row holds +inf or NaN: the one difference from it that the tests found).
//!
//! The fused kernel is in `fused.rs`.

#[cfg(feature = "std")]
use super::fused::CHUNKS;
use super::fused::{ChunkSums, Chunking, InOrder, Sums, ce_kernel};
use super::infinite_weights;
use super::rows_of;
use crate::error::check_len;
use crate::gemm::GemmKernel;
use crate::simd::WithSimd;
use crate::{Error, Kernels};

/// How the per-row losses become the returned loss (PyTorch's `reduction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// No reduction: the per-row losses go to the caller's `losses` slice, and the
    /// call returns their sum.
    None,
    /// The sum of the per-row losses.
    Sum,
    /// PyTorch's mean: the sum divided by the summed weight of the rows not ignored
    /// (class-index targets), or by the number of rows (probability targets).
    #[default]
    Mean,
}

/// What a row of logits should predict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target<'a> {
    /// One class index per row, in `0..classes` or the ignore index.
    Indices(&'a [i64]),
    /// One probability row per row of logits, as long as the logits (soft targets;
    /// not checked to sum to 1, as in PyTorch).
    Probabilities(&'a [f32]),
}

/// The options of `torch.nn.functional.cross_entropy` (and of [`nll_loss`]).
///
/// [`CrossEntropy::new`] gives PyTorch's defaults except `ignore_index`, which is
/// `None` here (PyTorch's -100 is a value like any other: set it to use it).
///
/// ```
/// use mlp_kernels::{CrossEntropy, Reduction};
/// let w = [1.0f32, 2.0, 0.5];
/// let opts = CrossEntropy::new()
///     .with_weight(&w)
///     .with_ignore_index(-100)
///     .with_label_smoothing(0.1)
///     .with_reduction(Reduction::Sum);
/// assert_eq!(opts.ignore_index, Some(-100));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropy<'a> {
    /// A weight per class (`classes` long), or `None` for all 1.
    pub weight: Option<&'a [f32]>,
    /// Rows whose class index equals this get loss 0 and gradient 0 and do not count
    /// in the mean. Not used with probability targets.
    pub ignore_index: Option<i64>,
    /// e in `[0, 1]`: the target becomes (1 - e) target + e / classes.
    pub label_smoothing: f32,
    /// How the per-row losses are reduced.
    pub reduction: Reduction,
}

impl<'a> CrossEntropy<'a> {
    /// Mean reduction, no weight, no ignore index, no label smoothing.
    pub const fn new() -> CrossEntropy<'a> {
        CrossEntropy {
            weight: None,
            ignore_index: None,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
        }
    }
    /// Sets the per-class weights.
    pub const fn with_weight(self, weight: &'a [f32]) -> CrossEntropy<'a> {
        CrossEntropy {
            weight: Some(weight),
            ..self
        }
    }
    /// Sets the ignored class index.
    pub const fn with_ignore_index(self, index: i64) -> CrossEntropy<'a> {
        CrossEntropy {
            ignore_index: Some(index),
            ..self
        }
    }
    /// Sets the label smoothing (checked to be in `[0, 1]` by every call).
    pub const fn with_label_smoothing(self, label_smoothing: f32) -> CrossEntropy<'a> {
        CrossEntropy {
            label_smoothing,
            ..self
        }
    }
    /// Sets the reduction.
    pub const fn with_reduction(self, reduction: Reduction) -> CrossEntropy<'a> {
        CrossEntropy { reduction, ..self }
    }
}

impl Default for CrossEntropy<'_> {
    fn default() -> Self {
        CrossEntropy::new()
    }
}

/// A call's checked shape and its reduction's divisor.
struct Plan {
    /// What the summed row losses are divided by: 1 unless the reduction is Mean,
    /// times `weight_scale`, by which the kernels multiply every class weight.
    divisor: f64,
    /// See [`weight_scale`].
    weight_scale: f32,
    /// Of the logits.
    rows: usize,
}

/// Class weights below this in magnitude are scaled up (see [`weight_scale`]); above
/// it, no product or sum of the loss comes near f32's subnormals, and the kernels
/// read the weights as given, bit for bit as PyTorch.
const TINY_WEIGHTS: f32 = 1.0 / (1u64 << 60) as f32;

/// A power of two by which the kernels multiply every class weight, undone on each
/// row loss and in the divisor, so that the answer is the same mathematics.
///
/// It is 1 except when every weight is finite and below [`TINY_WEIGHTS`]: then it
/// lifts the largest to [`TINY_WEIGHTS`] (by at most 2^89, from the smallest
/// subnormal, 2^-149). PyTorch multiplies subnormal weights as they are, so its
/// smoothing term rounds away to 0 and 1 / (weight sum), its mean gradient's scale,
/// overflows to inf; here both keep f32's full precision. The lift stops at 2^-60 so
/// that a weight times a loss of any finite size stays finite, as it was; a power of
/// two keeps every product exactly the scaled product.
fn weight_scale(weight: Option<&[f32]>) -> f32 {
    let Some(w) = weight else { return 1.0 };
    let mut max = 0.0f32;
    for &x in w {
        if !x.is_finite() {
            return 1.0;
        }
        max = max.max(x.abs());
    }
    if max == 0.0 || max >= TINY_WEIGHTS {
        return 1.0;
    }
    // f64 holds every f32 subnormal as a normal number: its exponent field is
    // floor(log2(max)) + 1023, at most -61 here.
    let exponent = ((f64::from(max).to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let lift = (-60 - exponent).clamp(1, 89);
    f32::from_bits(((127 + lift) as u32) << 23)
}

/// Every check of a cross-entropy or nll call, before anything is written.
fn plan(
    len: usize,
    classes: usize,
    target: Target,
    opts: &CrossEntropy,
    losses: usize,
    grad: Option<usize>,
) -> Result<Plan, Error> {
    if classes == 0 {
        return Err(Error::InvalidParameter {
            name: "classes",
            reason: "must be > 0",
        });
    }
    let e = opts.label_smoothing;
    if !(0.0..=1.0).contains(&e) {
        return Err(Error::InvalidParameter {
            name: "label_smoothing",
            reason: "must be in [0, 1]",
        });
    }
    let rows = rows_of("logits", len, classes)?;
    if let Some(w) = opts.weight {
        check_len("weight", classes, w.len())?;
    }
    let divisor = match target {
        Target::Indices(t) => {
            check_len("target", rows, t.len())?;
            // The mean's divisor needs every row's class anyway: scan the targets once
            // (no logits involved), which also finds bad indices before any write.
            let mut w_sum = 0.0f64;
            for (row, &c) in t.iter().enumerate() {
                if Some(c) == opts.ignore_index {
                    continue;
                }
                let Some(wc) = class_weight(opts.weight, c, classes) else {
                    return Err(Error::ClassOutOfRange {
                        row,
                        class: c,
                        classes,
                    });
                };
                w_sum += f64::from(wc);
            }
            w_sum
        }
        Target::Probabilities(q) => {
            if opts.ignore_index.is_some() {
                return Err(Error::InvalidParameter {
                    name: "ignore_index",
                    reason: "not supported with probability targets (as in PyTorch)",
                });
            }
            check_len("target", len, q.len())?;
            rows as f64
        }
    };
    if opts.reduction == Reduction::None || losses != 0 {
        check_len("losses", rows, losses)?;
    }
    if let Some(g) = grad {
        check_len("grad", len, g)?;
    }
    let divisor = if opts.reduction == Reduction::Mean {
        divisor
    } else {
        1.0
    };
    let weight_scale = weight_scale(opts.weight);
    Ok(Plan {
        divisor: divisor * f64::from(weight_scale),
        weight_scale,
        rows,
    })
}

/// The weight of class `c`, or `None` if `c` is not in `0..classes`.
#[inline(always)]
pub(super) fn class_weight(weight: Option<&[f32]>, c: i64, classes: usize) -> Option<f32> {
    let c = usize::try_from(c).ok().filter(|&c| c < classes)?;
    match weight {
        Some(w) => w.get(c).copied(),
        None => Some(1.0),
    }
}

/// [`ce_kernel`]'s arguments, checked by `plan`; with `GRAD` it writes the gradient.
struct CeRows<'a, const GRAD: bool, C> {
    logits: &'a [f32],
    classes: usize,
    target: Target<'a>,
    opts: &'a CrossEntropy<'a>,
    scale: f32,
    weight_scale: f32,
    losses: &'a mut [f32],
    grad: &'a mut [f32],
    sums: &'a mut C,
    chunking: Chunking,
}

impl<const GRAD: bool, C: ChunkSums> WithSimd for CeRows<'_, GRAD, C> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, s: S) {
        ce_kernel::<_, GRAD>(
            s,
            self.logits,
            self.classes,
            self.target,
            self.opts,
            (self.scale, self.weight_scale),
            self.losses,
            self.grad,
            (self.sums, self.chunking),
        )
    }
}

impl Kernels {
    /// Softmax cross-entropy of the `[rows, classes]` logits against `target`, as
    /// `torch.nn.functional.cross_entropy(logits, target, weight, ignore_index=...,
    /// reduction=..., label_smoothing=...)`; returns the reduced loss.
    ///
    /// `losses` receives the per-row (weighted, unreduced) losses: it must be `rows`
    /// long with [`Reduction::None`] and may otherwise be empty or `rows` long. Ignored
    /// rows have loss 0. With `Reduction::None` the call returns the sum.
    ///
    /// Special values as PyTorch: finite logits of any magnitude give a finite loss;
    /// a row holding +inf or NaN, or all -inf, gives NaN; a target class at -inf
    /// gives +inf. An empty batch's mean is NaN (0 / 0); a mean whose target weights
    /// sum to 0 (weights may be negative) is +-inf where the weighted loss is not 0,
    /// and NaN where it is, as PyTorch's float32 division gives. The mean's divisor,
    /// the summed target weights, is kept in f64: where its float32 sum would
    /// overflow, PyTorch returns a loss of 0 (or NaN with label smoothing) beside a
    /// finite gradient, and this crate the exact mean that matches its gradient.
    /// Class weights all below 2^-60 (subnormal ones included) are scaled by a power
    /// of two inside the call and the scale undone on every loss: where PyTorch's
    /// float32 run loses the smoothing term and returns an infinite or NaN mean
    /// gradient (1 / weight sum overflows), this crate returns its float64 answer,
    /// rounded to f32. Larger weights are used exactly as given. Known gap: weights
    /// of both kinds in one call (say 1 and 1e-40) whose target weights sum below
    /// f32's normal range still give PyTorch's infinite mean gradient.
    ///
    /// `Err` before anything is written: `classes` is 0 or does not divide the
    /// logits, `label_smoothing` is not in `[0, 1]`, a class index is neither in
    /// `0..classes` nor the ignore index ([`Error::ClassOutOfRange`] with its row),
    /// an ignore index is set with probability targets (PyTorch raises there too),
    /// or a slice has the wrong length.
    #[inline]
    pub fn cross_entropy(
        &self,
        logits: &[f32],
        classes: usize,
        target: Target,
        opts: &CrossEntropy,
        losses: &mut [f32],
    ) -> Result<f32, Error> {
        self.ce_call::<false>(1, logits, classes, target, opts, losses, &mut [])
    }

    /// [`Kernels::cross_entropy`] and its gradient in one pass over the logits:
    /// `grad` (as long as `logits`) receives d(loss)/d(logits) for the chosen
    /// reduction, that is per row (softmax(x) T - t) times 1 (Sum), 1 / divisor
    /// (Mean) or 1 with each row the gradient of its own loss (None), where t is the
    /// smoothed, weighted target and T its sum. Ignored rows get gradient 0.
    ///
    /// ```
    /// use mlp_kernels::{CrossEntropy, Kernels, Target};
    /// let k = Kernels::detect();
    /// let logits = [2.0f32, 1.0, 0.1, 0.5, 2.5, 0.3];
    /// let mut grad = [0.0f32; 6];
    /// let loss = k.cross_entropy_with_grad(
    ///     &logits, 3, Target::Indices(&[0, 1]), &CrossEntropy::new(), &mut [], &mut grad,
    /// )?;
    /// assert!((loss - 0.3185).abs() < 1e-4);
    /// assert!(grad.chunks(3).all(|g| g.iter().sum::<f32>().abs() < 1e-6));
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    pub fn cross_entropy_with_grad(
        &self,
        logits: &[f32],
        classes: usize,
        target: Target,
        opts: &CrossEntropy,
        losses: &mut [f32],
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        self.ce_call::<true>(1, logits, classes, target, opts, losses, grad)
    }

    /// [`Kernels::cross_entropy_with_grad`] on `threads` threads (0: the core count),
    /// rows split between them: the same loss, gradient and per-row losses, bit for
    /// bit (where a row holds NaN, both give NaN, whose sign may differ: a part's first
    /// row finds its max in another order). Threads take whole chunks of rows, at most
    /// 16 of them, and at least about 16K logits each, or the call stays on the calling
    /// thread: the MNIST batch, [200, 10], always does, and so does a single row.
    /// Many rows of a vocabulary's width is where it pays. After
    /// [`prepare_threads`](crate::prepare_threads) it neither spawns nor allocates.
    ///
    /// ```
    /// use mlp_kernels::{CrossEntropy, Kernels, Target};
    /// let k = Kernels::detect();
    /// let (rows, classes) = (64, 1000);
    /// let logits: Vec<f32> = (0..rows * classes).map(|i| (i % 7) as f32).collect();
    /// let target: Vec<i64> = (0..rows as i64).collect();
    /// let (mut g1, mut g2) = (vec![0.0; logits.len()], vec![0.0; logits.len()]);
    /// let opts = CrossEntropy::new();
    /// let t = Target::Indices(&target);
    /// let one = k.cross_entropy_with_grad(&logits, classes, t, &opts, &mut [], &mut g1)?;
    /// let two = k.cross_entropy_with_grad_threaded(2, &logits, classes, t, &opts, &mut [], &mut g2)?;
    /// assert_eq!((one.to_bits(), &g1), (two.to_bits(), &g2));
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[allow(clippy::too_many_arguments)]
    pub fn cross_entropy_with_grad_threaded(
        &self,
        threads: usize,
        logits: &[f32],
        classes: usize,
        target: Target,
        opts: &CrossEntropy,
        losses: &mut [f32],
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        self.ce_call::<true>(threads, logits, classes, target, opts, losses, grad)
    }

    /// [`Kernels::cross_entropy`] on `threads` threads (0: the core count), as
    /// [`Kernels::cross_entropy_with_grad_threaded`]: the same bits as one thread.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn cross_entropy_threaded(
        &self,
        threads: usize,
        logits: &[f32],
        classes: usize,
        target: Target,
        opts: &CrossEntropy,
        losses: &mut [f32],
    ) -> Result<f32, Error> {
        self.ce_call::<false>(threads, logits, classes, target, opts, losses, &mut [])
    }

    /// Every cross-entropy call: the checks, the rows (on `threads` threads under
    /// `std`; `grad` is written with `GRAD`), the sums of infinite class weights, and
    /// the reduction.
    #[allow(clippy::too_many_arguments)]
    fn ce_call<const GRAD: bool>(
        &self,
        threads: usize,
        logits: &[f32],
        classes: usize,
        target: Target,
        opts: &CrossEntropy,
        losses: &mut [f32],
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        let grad_len = if GRAD { Some(grad.len()) } else { None };
        let p = plan(logits.len(), classes, target, opts, losses.len(), grad_len)?;
        let scale = if GRAD { (1.0 / p.divisor) as f32 } else { 1.0 };
        let infinite = infinite_weights::applies(target, opts);
        // Without a gradient to write, infinite weights need only their own sums.
        if infinite && !GRAD {
            let total = infinite_weights::sums(logits, classes, target, opts, losses);
            return Ok(total.reduce(opts, p.divisor));
        }
        #[cfg(feature = "std")]
        let total = if threads == 1 {
            self.ce_one_thread::<GRAD>(logits, classes, target, opts, &p, scale, losses, grad)
        } else {
            self.ce_threaded::<GRAD>(
                threads, logits, classes, target, opts, &p, scale, losses, grad,
            )
        };
        #[cfg(not(feature = "std"))]
        let total = {
            let _ = threads;
            self.ce_one_thread::<GRAD>(logits, classes, target, opts, &p, scale, losses, grad)
        };
        let total = if infinite {
            infinite_weights::sums(logits, classes, target, opts, losses)
        } else {
            total
        };
        Ok(total.reduce(opts, p.divisor))
    }

    /// The fused kernel over all rows on this thread.
    #[allow(clippy::too_many_arguments)]
    fn ce_one_thread<const GRAD: bool>(
        &self,
        logits: &[f32],
        classes: usize,
        target: Target,
        opts: &CrossEntropy,
        p: &Plan,
        scale: f32,
        losses: &mut [f32],
        grad: &mut [f32],
    ) -> Sums {
        let mut sums = InOrder::default();
        self.isa.vectorize(CeRows::<GRAD, _> {
            logits,
            classes,
            target,
            opts,
            scale,
            weight_scale: p.weight_scale,
            losses,
            grad,
            sums: &mut sums,
            chunking: Chunking::of(p.rows),
        });
        sums.finish()
    }

    /// The fused kernel over whole chunks of rows per thread (see [`CHUNKS`]), each
    /// part's chunk sums put in their places and all added in chunk order.
    #[cfg(feature = "std")]
    #[allow(clippy::too_many_arguments)]
    fn ce_threaded<const GRAD: bool>(
        &self,
        threads: usize,
        logits: &[f32],
        classes: usize,
        target: Target,
        opts: &CrossEntropy,
        p: &Plan,
        scale: f32,
        losses: &mut [f32],
        grad: &mut [f32],
    ) -> Sums {
        use crate::checked::part;
        use crate::parallel::{Shared, split_work};
        let per_chunk = Chunking::of(p.rows).per_chunk;
        let per = per_chunk.get();
        let chunks = std::sync::Mutex::new([Sums::default(); CHUNKS]);
        let (with_losses, with_grad) = (!losses.is_empty(), !grad.is_empty());
        let (l, g) = (Shared(losses.as_mut_ptr()), Shared(grad.as_mut_ptr()));
        let k = *self;
        let work = per.saturating_mul(classes);
        split_work(threads, p.rows.div_ceil(per), 1, work, &|lo, hi| {
            let (r0, r1) = (lo * per, (hi * per).min(p.rows));
            let (c0, c1) = (r0 * classes, r1 * classes);
            let target = match target {
                Target::Indices(t) => Target::Indices(part(t, r0..r1)),
                Target::Probabilities(q) => Target::Probabilities(part(q, c0..c1)),
            };
            // SAFETY: each part has its own rows r0..r1 of `losses` and of `grad`
            // (`plan` checked their lengths: rows and rows * classes, when not empty).
            let (losses, grad): (&mut [f32], &mut [f32]) = unsafe {
                (
                    if with_losses { l.run(r0, r1) } else { &mut [] },
                    if with_grad { g.run(c0, c1) } else { &mut [] },
                )
            };
            let mut sums = [Sums::default(); CHUNKS];
            k.isa.vectorize(CeRows::<GRAD, _> {
                logits: part(logits, c0..c1),
                classes,
                target,
                opts,
                scale,
                weight_scale: p.weight_scale,
                losses,
                grad,
                sums: &mut sums,
                chunking: Chunking {
                    first_row: r0,
                    per_chunk,
                },
            });
            let mut all = chunks.lock().unwrap_or_else(|e| e.into_inner());
            for c in lo..hi.min(CHUNKS) {
                all[c] = sums[c];
            }
        });
        Sums::in_order(&chunks.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// The negative log-likelihood of class-index targets given the `[rows, classes]`
    /// log-probabilities, as `torch.nn.functional.nll_loss` with the same `weight`,
    /// `ignore_index` and `reduction`: row loss `-w_y log_probs[y]`. A nonzero
    /// `label_smoothing` (which `nll_loss` lacks) adds cross-entropy's smoothing term,
    /// so that `nll_loss(log_softmax(x))` equals [`Kernels::cross_entropy`] of `x`
    /// for every option. Same `losses` contract and errors as `cross_entropy`.
    pub fn nll_loss(
        &self,
        log_probs: &[f32],
        classes: usize,
        target: &[i64],
        opts: &CrossEntropy,
        losses: &mut [f32],
    ) -> Result<f32, Error> {
        let p = plan(
            log_probs.len(),
            classes,
            Target::Indices(target),
            opts,
            losses.len(),
            None,
        )?;
        let e = opts.label_smoothing;
        let k = f64::from(e) / classes as f64;
        let ws = p.weight_scale;
        let mut total = Sums::default();
        // (`classes` > 0 was checked; `max` shows the compiler so.)
        for (r, (lp, &c)) in log_probs
            .chunks_exact(classes.max(1))
            .zip(target)
            .enumerate()
        {
            let mut loss = 0.0f32;
            if Some(c) != opts.ignore_index {
                // `plan` checked every index.
                let wy = class_weight(opts.weight, c, classes);
                debug_assert!(wy.is_some());
                let wy = wy.unwrap_or(f32::NAN) * ws;
                let lpy = usize::try_from(c).ok().and_then(|c| lp.get(c)).copied();
                // PyTorch's (1 - e) nll + e/C smooth, nll formed in f32 as PyTorch does.
                let nll = wy * -lpy.unwrap_or(f32::NAN);
                total.nll += f64::from(nll);
                loss = (1.0 - e) * nll;
                if e != 0.0 {
                    let smooth: f64 = match opts.weight {
                        Some(w) => lp
                            .iter()
                            .zip(w)
                            .map(|(&l, &w)| f64::from(w * ws) * f64::from(l))
                            .sum(),
                        None => lp.iter().map(|&l| f64::from(l)).sum(),
                    };
                    let smooth = (-k * smooth) as f32;
                    total.rest += f64::from(smooth);
                    loss += smooth;
                }
            }
            // The row's loss without the weight scale: times its inverse, a power of
            // two, one rounding of the exact quotient (and exactly `loss` at scale 1).
            let loss = loss * (1.0 / ws);
            if let Some(l) = losses.get_mut(r) {
                *l = loss;
            }
            total.rows += f64::from(loss);
        }
        Ok(total.reduce(opts, p.divisor))
    }
}

/// [`Kernels::cross_entropy`] on the best backend.
///
/// ```
/// use mlp_kernels::{CrossEntropy, Reduction, Target, cross_entropy};
/// let logits = [0.0f32, 0.0, 1e30, 0.0];
/// let mut rows = [0.0f32; 2];
/// let opts = CrossEntropy::new().with_reduction(Reduction::None);
/// let sum = cross_entropy(&logits, 2, Target::Indices(&[1, 0]), &opts, &mut rows)?;
/// assert_eq!(rows, [core::f32::consts::LN_2, 0.0]);
/// assert_eq!(sum, core::f32::consts::LN_2);
/// // A class index out of range is an error, with its row.
/// let bad = cross_entropy(&logits, 2, Target::Indices(&[0, 2]), &opts, &mut rows);
/// assert!(matches!(bad, Err(mlp_kernels::Error::ClassOutOfRange { row: 1, .. })));
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn cross_entropy(
    logits: &[f32],
    classes: usize,
    target: Target,
    opts: &CrossEntropy,
    losses: &mut [f32],
) -> Result<f32, Error> {
    Kernels::detect().cross_entropy(logits, classes, target, opts, losses)
}

/// [`Kernels::cross_entropy_with_grad`] on the best backend.
///
/// ```
/// use mlp_kernels::{CrossEntropy, Target, cross_entropy_with_grad};
/// // Soft targets with label smoothing: grad = (softmax - smoothed target) / rows.
/// let logits = [0.0f32, 0.0];
/// let q = [1.0f32, 0.0];
/// let opts = CrossEntropy::new().with_label_smoothing(0.2);
/// let mut g = [0.0f32; 2];
/// cross_entropy_with_grad(&logits, 2, Target::Probabilities(&q), &opts, &mut [], &mut g)?;
/// assert!((g[0] + 0.4).abs() < 1e-6 && (g[1] - 0.4).abs() < 1e-6);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn cross_entropy_with_grad(
    logits: &[f32],
    classes: usize,
    target: Target,
    opts: &CrossEntropy,
    losses: &mut [f32],
    grad: &mut [f32],
) -> Result<f32, Error> {
    Kernels::detect().cross_entropy_with_grad(logits, classes, target, opts, losses, grad)
}

/// [`Kernels::nll_loss`]: the manual route softmax, log, nll_loss gives the fused
/// loss.
///
/// ```
/// use mlp_kernels::{CrossEntropy, Target, cross_entropy, nll_loss, softmax};
/// let x = [1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0];
/// let mut p = [0.0f32; 6];
/// softmax(&x, 3, &mut p)?;
/// let logp: Vec<f32> = p.iter().map(|v| v.ln()).collect();
/// let opts = CrossEntropy::new();
/// let manual = nll_loss(&logp, 3, &[1, 2], &opts, &mut [])?;
/// let fused = cross_entropy(&x, 3, Target::Indices(&[1, 2]), &opts, &mut [])?;
/// assert!((manual - fused).abs() < 1e-6);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn nll_loss(
    log_probs: &[f32],
    classes: usize,
    target: &[i64],
    opts: &CrossEntropy,
    losses: &mut [f32],
) -> Result<f32, Error> {
    Kernels::detect().nll_loss(log_probs, classes, target, opts, losses)
}
