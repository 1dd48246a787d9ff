//! Element-wise kernels split over the GEMM's thread pool (`std` only).
//!
//! An element-wise kernel gives the same bits however its input is cut, so the
//! threaded forms here return exactly what the single-threaded ones do. Runs are
//! whole 16-float blocks (a vector on every backend) of at least [`MIN_PER_THREAD`]
//! elements: below that, waking a thread costs more than the work.

use crate::error::check_len;
use crate::gemm::{run_parts, threads_to_use};
use crate::{Error, Kernels, Sgd};

/// The fewest elements worth a thread of their own (measured: a ReLU over 16K floats
/// takes about as long as a wake-up of a sleeping worker).
pub(crate) const MIN_PER_THREAD: usize = 1 << 14;

/// Runs `f(part, parts)` for `part` in `0..parts` on the pool that the threaded
/// kernels use (the calling thread takes a part too), where `parts` is `threads` (0:
/// one per core) capped at the machine's cores; returns when every part is done.
/// For the caller's own work between kernels (the MNIST example gathers its batch
/// with it): after [`prepare_threads`](crate::prepare_threads) it neither spawns
/// nor allocates. A panic in a part is re-raised here once all parts have ended.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let sum = AtomicUsize::new(0);
/// mlp_kernels::run_on_threads(2, &|part, parts| {
///     // Each part adds its share of 0..100.
///     let share: usize = (part * 100 / parts..(part + 1) * 100 / parts).sum();
///     sum.fetch_add(share, Ordering::Relaxed);
/// });
/// assert_eq!(sum.into_inner(), 4950);
/// ```
pub fn run_on_threads(threads: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    let parts = threads_to_use(threads);
    run_parts(parts, &|t| f(t, parts));
}

/// Splits `0..len` into at most `threads` runs and calls `f(lo, hi)` for each, on the
/// pool and the calling thread, returning when all are done.
pub(crate) fn split(threads: usize, len: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    split_work(threads, len, 16, 1, f)
}

/// [`split`] for items that each cost `cost` element-steps, in runs of whole `grain`s.
pub(crate) fn split_work(
    threads: usize,
    len: usize,
    grain: usize,
    cost: usize,
    f: &(dyn Fn(usize, usize) + Sync),
) {
    let grain = grain.max(1);
    let parts = threads_to_use(threads)
        .min(len.saturating_mul(cost) / MIN_PER_THREAD)
        .min(len.div_ceil(grain))
        .max(1);
    if parts == 1 {
        f(0, len);
        return;
    }
    let step = len.div_ceil(parts).div_ceil(grain) * grain;
    run_parts(parts, &|t| {
        let (lo, hi) = ((t * step).min(len), ((t + 1) * step).min(len));
        if lo < hi {
            f(lo, hi)
        }
    });
}

/// Cuts `x` into at most `threads` runs of whole `grain`s, each item (`grain`
/// elements) worth `cost` element-steps of work, and calls `f(start, run)` for each
/// run on the pool: the safe face of [`split_work`] for one output slice.
pub(crate) fn split_mut(
    threads: usize,
    x: &mut [f32],
    grain: usize,
    cost: usize,
    f: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let grain = grain.max(1);
    let len = x.len();
    let shared = Shared(x.as_mut_ptr());
    split_work(
        threads,
        len.div_ceil(grain),
        1,
        cost.saturating_mul(grain),
        &|lo, hi| {
            let (lo, hi) = ((lo * grain).min(len), (hi * grain).min(len));
            // SAFETY: each part has its own run lo..hi of `x`, which outlives the job.
            f(lo, unsafe { shared.run(lo, hi) })
        },
    );
}

/// A mutable slice's start, shared by the parts of a [`split`] job, each of which
/// makes a slice of its own disjoint run from it.
#[derive(Clone, Copy)]
pub(crate) struct Shared(pub(crate) *mut f32);
// SAFETY: the parts of a `split` job use disjoint runs, and the job ends before the
// slice's borrow does.
unsafe impl Sync for Shared {}
impl Shared {
    /// # Safety
    /// `lo..hi` must be inside the slice and used by no other part.
    pub(crate) unsafe fn run<'a>(self, lo: usize, hi: usize) -> &'a mut [f32] {
        // SAFETY: the caller's.
        unsafe { core::slice::from_raw_parts_mut(self.0.add(lo), hi - lo) }
    }
}

impl Kernels {
    /// [`Kernels::sgd_step`] on `threads` threads (0: the core count): the same
    /// result, bit for bit.
    ///
    /// ```
    /// use mlp_kernels::{Kernels, Sgd};
    /// let k = Kernels::detect();
    /// let opt = Sgd::new(0.1).with_momentum(0.9);
    /// let (mut w1, mut w2) = (vec![1.0f32; 100_000], vec![1.0f32; 100_000]);
    /// let g: Vec<f32> = (0..100_000).map(|i| i as f32 * 1e-5).collect();
    /// let (mut m1, mut m2) = (vec![0.0f32; 100_000], vec![0.0f32; 100_000]);
    /// k.sgd_step(&opt, &mut w1, &g, &mut m1, true)?;
    /// k.sgd_step_threaded(2, &opt, &mut w2, &g, &mut m2, true)?;
    /// assert_eq!(w1, w2);
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    pub fn sgd_step_threaded(
        &self,
        threads: usize,
        opt: &Sgd,
        param: &mut [f32],
        grad: &[f32],
        momentum_buffer: &mut [f32],
        first_step: bool,
    ) -> Result<(), Error> {
        opt.validate()?;
        check_len("grad", param.len(), grad.len())?;
        let with_buffer = opt.momentum != 0.0;
        if with_buffer {
            check_len("momentum_buffer", param.len(), momentum_buffer.len())?;
        }
        let (p, m) = (
            Shared(param.as_mut_ptr()),
            Shared(momentum_buffer.as_mut_ptr()),
        );
        let k = *self;
        split(threads, param.len(), &|lo, hi| {
            // SAFETY: each part has its own run lo..hi of param (and of the buffer,
            // which is as long when it is used).
            let (param, buffer) = unsafe {
                let b: &mut [f32] = if with_buffer { m.run(lo, hi) } else { &mut [] };
                (p.run(lo, hi), b)
            };
            // Checked above for the whole; the runs inherit it.
            let _ = k.sgd_step(opt, param, &grad[lo..hi], buffer, first_step);
        });
        Ok(())
    }

    /// [`Kernels::relu_in_place`] on `threads` threads (0: the core count).
    pub fn relu_in_place_threaded(&self, threads: usize, x: &mut [f32]) {
        let p = Shared(x.as_mut_ptr());
        let k = *self;
        // SAFETY: each part has its own run.
        split(threads, x.len(), &|lo, hi| {
            k.relu_in_place(unsafe { p.run(lo, hi) })
        });
    }

    /// [`Kernels::relu_backward_in_place`] on `threads` threads (0: the core count).
    pub fn relu_backward_in_place_threaded(
        &self,
        threads: usize,
        output: &[f32],
        grad: &mut [f32],
    ) -> Result<(), Error> {
        check_len("grad", output.len(), grad.len())?;
        let p = Shared(grad.as_mut_ptr());
        let k = *self;
        split(threads, grad.len(), &|lo, hi| {
            // SAFETY: each part has its own run; the lengths were checked.
            let _ = k.relu_backward_in_place(&output[lo..hi], unsafe { p.run(lo, hi) });
        });
        Ok(())
    }
}
