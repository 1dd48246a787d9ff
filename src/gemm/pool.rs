//! A small pool of worker threads for [`Kernels::gemm_threaded`](crate::Kernels),
//! started once and kept, so that a product split over threads neither spawns nor
//! allocates. Workers spin briefly between jobs (a training step calls the GEMM
//! several times in a row) and then sleep on a condition variable until the next job;
//! the caller likewise spins briefly, then sleeps until the last part is done.
//!
//! A job is a `&dyn Fn(usize) + Sync` run for parts 0..n: the caller runs parts too
//! and returns only when every part is finished, so the borrow the job carries
//! outlives every use (the same contract as `std::thread::scope`).
//!
//! The caller takes part 0 first and worker w part w + 1 (below part 64), when still
//! free; the rest go to whoever asks. Kernels cut the same way step after step, so a
//! thread then meets again, in its own L2, the block of a weight or an activation it
//! worked on in the last call. First come, first served scattered that: the MNIST
//! example on two threads took 1.02x (dense) and 1.07x (sparse) as long
//! (BENCHMARKS.md).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

type Job = *const (dyn Fn(usize) + Sync);

struct State {
    /// Incremented for each job; a part is claimed only under the same generation.
    generation: u64,
    job: Option<Job>,
    parts: usize,
    next: usize,
    /// Parts below 64 already claimed, so that a thread can take its own part first.
    taken: u64,
    /// Workers asleep on `wake`: a job is announced by a wake-up only when one is, as
    /// the wake is a system call and a training step publishes jobs by the dozen.
    sleeping_workers: usize,
    /// The caller asleep on `done`, for the same reason.
    caller_sleeps: bool,
}

// SAFETY: the job pointer is only dereferenced while the caller that set it waits for
// the job to finish (see `run`), and the closure behind it is Sync.
unsafe impl Send for State {}

struct Pool {
    state: Mutex<State>,
    wake: Condvar,
    /// The generation, readable without the lock, for spinning workers.
    published: AtomicU64,
    remaining: AtomicUsize,
    /// Signalled when the last part of a job finishes and the caller sleeps (read
    /// under `state`'s lock).
    done: Condvar,
    workers: AtomicUsize,
    /// Workers that have entered their loop: past the thread start-up, which allocates.
    started: AtomicUsize,
    spawn_lock: Mutex<()>,
    /// The payload of a part that panicked, re-raised by the caller once every part
    /// has finished (so that no part outlives the borrows its job holds).
    panic: Mutex<Option<Box<dyn core::any::Any + Send>>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::new)
}

impl Pool {
    fn new() -> Pool {
        Pool {
            state: Mutex::new(State {
                generation: 0,
                job: None,
                parts: 0,
                next: 0,
                taken: 0,
                sleeping_workers: 0,
                caller_sleeps: false,
            }),
            wake: Condvar::new(),
            published: AtomicU64::new(0),
            remaining: AtomicUsize::new(0),
            done: Condvar::new(),
            workers: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            spawn_lock: Mutex::new(()),
            panic: Mutex::new(None),
        }
    }
}

/// The machine's cores, asked once: `available_parallelism` reads files (and
/// allocates) on Linux, which a training step must not do.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |c| c.get()))
}

/// Makes sure at least `n` workers exist (they are never stopped). Only this allocates.
pub(crate) fn ensure_workers(n: usize) {
    let _ = cores();
    let p = pool();
    if p.workers.load(Ordering::Acquire) >= n {
        return;
    }
    let _guard = p.spawn_lock.lock().unwrap_or_else(|e| e.into_inner());
    while p.workers.load(Ordering::Acquire) < n {
        let spawned = std::thread::Builder::new()
            .name("mlp-kernels-gemm".into())
            .spawn({
                let id = p.workers.load(Ordering::Acquire);
                move || worker(pool(), id)
            });
        if spawned.is_err() {
            // No more threads to be had: the caller runs the remaining parts itself.
            return;
        }
        p.workers.fetch_add(1, Ordering::AcqRel);
    }
    // A new thread allocates while it starts (its stack-overflow handler): wait for
    // that to be over, so that it is charged to this call and not to a later step.
    while p.started.load(Ordering::Acquire) < p.workers.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
}

/// Claims part `own` of job `generation` if it is below 64 and still free, else the
/// next free one; None when none is left.
fn claim(p: &Pool, generation: u64, own: usize) -> Option<(Job, usize)> {
    let mut s = p.state.lock().unwrap_or_else(|e| e.into_inner());
    if s.generation != generation {
        return None;
    }
    let bit = |i: usize| if i < 64 { 1u64 << i } else { 0 };
    let i = if own < s.parts.min(64) && s.taken & bit(own) == 0 {
        own
    } else {
        loop {
            if s.next >= s.parts {
                return None;
            }
            let i = s.next;
            s.next += 1;
            if s.taken & bit(i) == 0 {
                break i;
            }
        }
    };
    s.taken |= bit(i);
    s.job.map(|j| (j, i))
}

/// Runs parts of job `generation` until none is left, part `own` first if free.
fn run_parts(p: &Pool, generation: u64, mut own: usize) {
    while let Some((job, i)) = claim(p, generation, own) {
        own = usize::MAX;
        // SAFETY: the part was claimed under the job's generation, so its caller is
        // still waiting in `run` and the closure is alive.
        let part = std::panic::AssertUnwindSafe(|| unsafe { (*job)(i) });
        if let Err(payload) = std::panic::catch_unwind(part) {
            *p.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
        }
        if p.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last part: wake the caller if it sleeps. Taking the lock orders this
            // after the caller's check of `remaining` (made under the lock before it
            // sleeps), so either it sees 0 or this sees it asleep: no wake is lost.
            let caller_sleeps = p
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .caller_sleeps;
            if caller_sleeps {
                p.done.notify_all();
            }
        }
    }
}

/// Worker `id` (0, 1, ...) takes part `id + 1` of a job first, the caller part 0.
fn worker(p: &'static Pool, id: usize) {
    p.started.fetch_add(1, Ordering::AcqRel);
    let mut seen = 0u64;
    loop {
        // Spin a little: the next product of a training step usually comes at once.
        let mut spins = 0u32;
        while p.published.load(Ordering::Acquire) == seen && spins < 20_000 {
            std::hint::spin_loop();
            spins += 1;
        }
        let generation = {
            let mut s = p.state.lock().unwrap_or_else(|e| e.into_inner());
            // `run` publishes a job under this lock and notifies when it finds a
            // worker counted asleep, so a worker that finds no new job here counts
            // itself before it waits and cannot miss the notification.
            while s.generation == seen {
                s.sleeping_workers += 1;
                s = p.wake.wait(s).unwrap_or_else(|e| e.into_inner());
                s.sleeping_workers -= 1;
            }
            s.generation
        };
        seen = generation;
        run_parts(p, generation, id + 1);
    }
}

/// Runs `f(0)`, ..., `f(parts - 1)` on the calling thread and the pool, and returns
/// when all have finished.
pub(crate) fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    if parts <= 1 {
        if parts == 1 {
            f(0);
        }
        return;
    }
    ensure_workers(parts - 1);
    let p = pool();
    // One job at a time: a second caller waits here until the first has finished.
    static JOB_LOCK: Mutex<()> = Mutex::new(());
    let _one = JOB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY (lifetime): the pointer is erased to 'static but only used until this
    // function returns, which it does after every part has run.
    let job: Job = unsafe {
        core::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f)
    };
    let (generation, any_asleep) = {
        let mut s = p.state.lock().unwrap_or_else(|e| e.into_inner());
        s.generation += 1;
        s.job = Some(job);
        s.parts = parts;
        s.next = 0;
        s.taken = 0;
        p.remaining.store(parts, Ordering::Release);
        p.published.store(s.generation, Ordering::Release);
        // A worker counts itself asleep under this lock before it waits, so one that
        // is not counted here will see the new generation before it sleeps.
        (s.generation, s.sleeping_workers > 0)
    };
    if any_asleep {
        p.wake.notify_all();
    }
    run_parts(p, generation, 0);
    // The other parts usually end within microseconds of this one: spin a little,
    // then sleep until the last of them signals.
    let mut spins = 0u32;
    while p.remaining.load(Ordering::Acquire) != 0 && spins < 20_000 {
        std::hint::spin_loop();
        spins += 1;
    }
    if p.remaining.load(Ordering::Acquire) != 0 {
        let mut s = p.state.lock().unwrap_or_else(|e| e.into_inner());
        while p.remaining.load(Ordering::Acquire) != 0 {
            s.caller_sleeps = true;
            s = p.done.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.caller_sleeps = false;
    }
    p.state.lock().unwrap_or_else(|e| e.into_inner()).job = None;
    if let Some(payload) = p.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
        std::panic::resume_unwind(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::{Job, Pool, ensure_workers, run};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A pool of no threads with job `generation` of `parts` parts published.
    fn published(parts: usize, job: Job) -> Pool {
        let p = Pool::new();
        {
            let mut s = p.state.lock().unwrap_or_else(|e| e.into_inner());
            s.generation = 7;
            s.job = Some(job);
            s.parts = parts;
        }
        p
    }

    /// The claims, scripted: a thread's own part first, the others skipped by the run
    /// of the rest once taken, own parts that are not parts (past the job, 64 and up),
    /// a job of another generation, and 130 parts claimed in a shuffled order of own
    /// parts, each exactly once.
    #[test]
    fn each_part_is_claimed_exactly_once() {
        let f = |_: usize| {};
        let job: Job = &f;
        let claim = |p: &Pool, own: usize| super::claim(p, 7, own).map(|(_, i)| i);

        let p = published(4, job);
        assert_eq!(claim(&p, 2), Some(2));
        assert_eq!(claim(&p, 0), Some(0));
        assert_eq!(claim(&p, 2), Some(1), "own part taken: the next free one");
        assert_eq!(
            claim(&p, 9),
            Some(3),
            "own part past the job: the next free one"
        );
        assert_eq!(claim(&p, 1), None);
        assert_eq!(super::claim(&p, 8, 0).map(|(_, i)| i), None, "another job");

        let p = published(130, job);
        assert_eq!(claim(&p, 64), Some(0), "no own part from 64 up");
        let mut seen = vec![0u32; 130];
        seen[0] += 1;
        let mut own = 1usize;
        while let Some(i) = claim(&p, own) {
            seen[i] += 1;
            own = (own * 37 + 11) % 150;
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }

    /// Every part runs once on the pool, whichever thread takes it.
    #[test]
    fn each_part_runs_exactly_once() {
        ensure_workers(3);
        for parts in [2, 3, 4] {
            for _ in 0..200 {
                let runs: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
                run(parts, &|i| {
                    runs[i].fetch_add(1, Ordering::Relaxed);
                });
                for (i, r) in runs.iter().enumerate() {
                    assert_eq!(r.load(Ordering::Relaxed), 1, "part {i} of {parts}");
                }
            }
        }
    }
}
