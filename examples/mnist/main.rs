//! The lesson's network, trained on MNIST: 784-200-200-10, ReLU, softmax cross-entropy,
//! SGD, Kaiming-normal init, batch 200 reshuffled every epoch.
//!
//! ```sh
//! cargo run --release --example mnist -- --help
//! ```

mod aligned;
mod huge_pages;
mod idx;
mod train;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use clap::Parser;
use mlp_kernels::{Backend, Kernels, Sgd};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use train::{
    Buffers, Net, SIZES, SparseImages, Step, evaluate, gather, normalisation_table, train_step,
};

/// Counts allocations while `COUNTING` is set, to prove the training steps allocate
/// nothing.
struct CountingAlloc;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Train the lesson's 784-200-200-10 MLP on MNIST with mlp-kernels.
///
/// Every value is checked before the first step: a bad one gets one line naming the
/// option and what is wrong, and exit code 2; a bad file, a backend this CPU lacks or
/// a run too large to record, exit code 1. Output files are opened (and so checked
/// writable) before training starts.
#[derive(Parser, Debug)]
#[command(name = "mnist", version, about, long_about = None, allow_negative_numbers = true)]
struct Args {
    /// Folder with the four IDX files, gzipped or raw
    #[arg(long, value_name = "DIR", default_value = "data/mnist")]
    data: PathBuf,
    /// Passes over the training set
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=MAX_EPOCHS))]
    epochs: u32,
    /// Samples per SGD step
    #[arg(long = "batch-size", value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH))]
    batch: u32,
    /// Learning rate (finite, >= 0)
    #[arg(long, value_name = "X", default_value_t = 0.01, value_parser = finite_non_negative)]
    lr: f32,
    /// SGD momentum (finite, >= 0)
    #[arg(long, value_name = "X", default_value_t = 0.0, value_parser = finite_non_negative)]
    momentum: f32,
    /// L2 penalty (finite, >= 0)
    #[arg(long = "weight-decay", value_name = "X", default_value_t = 0.0,
          value_parser = finite_non_negative)]
    weight_decay: f32,
    /// Seeds init and shuffling; same seed, same backend: same numbers
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Threads for the matrix products
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=MAX_THREADS))]
    threads: u32,
    /// Backend: portable, avx2 or avx512 [default: the best this CPU has]
    #[arg(long, value_name = "NAME", value_parser = ["portable", "avx2", "avx512"])]
    backend: Option<String>,
    /// Use only the first N training images
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Keep the file's order every epoch
    #[arg(long = "no-shuffle")]
    no_shuffle: bool,
    /// Apply ReLU to the logits, as the original lesson did
    #[arg(long = "relu-logits")]
    relu_logits: bool,
    /// First layer on the raw pixels' non-zeros (same network, same numbers up to
    /// float rounding: the normalisation is folded into the layer)
    #[arg(long = "sparse-input")]
    sparse_input: bool,
    /// Start from these weights (safetensors: w1 b1 w2 b2 w3 b3, PyTorch shapes)
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    /// Write the trained weights there (same format)
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Write a CSV: epoch,train_loss,test_loss,test_acc,seconds
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Write the loss of every training step, one per line
    #[arg(long = "step-losses", value_name = "FILE")]
    step_losses: Option<PathBuf>,
}

const MAX_EPOCHS: i64 = 1_000_000;
const MAX_BATCH: i64 = 1 << 20;
const MAX_THREADS: i64 = 4096;
/// The most step losses `--step-losses` records (512 MB of f32): a fixed limit, so
/// that a huge run is refused whatever the allocator would promise.
const MAX_STEP_LOSSES: usize = 1 << 27;

/// A finite number >= 0, for the optimiser's settings.
fn finite_non_negative(s: &str) -> Result<f32, String> {
    let x: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !x.is_finite() || x < 0.0 {
        return Err(format!("{s} is not a finite number >= 0"));
    }
    Ok(x)
}

/// Creates (truncates) an output file now, so that a path that cannot be written is
/// reported before training, not after it.
fn output(option: &str, path: &Option<PathBuf>) -> Result<Option<(PathBuf, File)>, String> {
    let Some(p) = path else { return Ok(None) };
    let f = File::create(p).map_err(|e| format!("{option} {}: cannot write: {e}", p.display()))?;
    Ok(Some((p.clone(), f)))
}

fn write_out(out: Option<(PathBuf, File)>, bytes: &[u8]) -> Result<(), String> {
    if let Some((p, mut f)) = out {
        f.write_all(bytes)
            .and_then(|()| f.flush())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn run(a: Args) -> Result<(), String> {
    let k = match &a.backend {
        Some(name) => {
            let b: Backend = name.parse().map_err(|e| format!("--backend: {e}"))?;
            Kernels::new(b).map_err(|e| format!("--backend {name}: {e}"))?
        }
        None => Kernels::detect(),
    };
    let mut data = a.data.clone();
    if !data.exists() && data == Path::new("data/mnist") {
        // Run from elsewhere than the repository root: use the copy beside the example.
        data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    }
    let mut train = idx::load_split(&data, "train").map_err(|e| e.to_string())?;
    let test = idx::load_split(&data, "t10k").map_err(|e| e.to_string())?;
    if train.pixels_per_image != SIZES[0] || test.pixels_per_image != SIZES[0] {
        return Err(format!(
            "{}: images must have 784 pixels, found {} (train) and {} (test)",
            data.display(),
            train.pixels_per_image,
            test.pixels_per_image
        ));
    }
    if let Some(limit) = a.limit {
        train.count = train
            .count
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    if train.count == 0 {
        return Err(format!(
            "{}: the training set holds no images",
            data.display()
        ));
    }
    if test.count == 0 {
        return Err(format!("{}: the test set holds no images", data.display()));
    }
    let (epochs, threads) = (a.epochs as usize, a.threads as usize);
    let table = normalisation_table();
    let mut rng = StdRng::seed_from_u64(a.seed);
    let mut shuffle_rng = StdRng::seed_from_u64(a.seed.wrapping_add(1000));
    let mut net = Net::new(threads, &mut rng).map_err(|e| e.to_string())?;
    if let Some(p) = &a.init {
        net.load(p)?;
    }
    // The raw pixels' non-zeros of both splits, once, before any step.
    let (train_sparse, test_sparse) = if a.sparse_input {
        net.make_sparse();
        // (Unreachable with the 784 pixels checked above; kept as an error, not a panic.)
        let wide = || "images too large for 16-bit pixel indices".to_string();
        (
            Some(SparseImages::new(&train).ok_or_else(wide)?),
            Some(SparseImages::new(&test).ok_or_else(wide)?),
        )
    } else {
        (None, None)
    };
    let opt = Sgd::new(a.lr)
        .with_momentum(a.momentum)
        .with_weight_decay(a.weight_decay);
    opt.validate().map_err(|e| e.to_string())?;
    let step = Step {
        opt,
        relu_logits: a.relu_logits,
    };
    let batch = (a.batch as usize).min(train.count);
    let mut buf = Buffers::new(batch.max(1000), &net);
    let mut order: Vec<usize> = (0..train.count).collect();
    let steps = train.count.div_ceil(batch);
    // Filled during training without allocating: the capacity is reserved here, or
    // the run is refused before it starts.
    let mut step_losses: Vec<f32> = Vec::new();
    if a.step_losses.is_some() {
        let n = steps.saturating_mul(epochs);
        if n > MAX_STEP_LOSSES {
            return Err(format!(
                "--step-losses: {n} steps to record, more than the {MAX_STEP_LOSSES} this \
                 example keeps (fewer --epochs or a larger --batch-size)"
            ));
        }
        step_losses.try_reserve_exact(n).map_err(|_| {
            format!(
                "--step-losses: {n} losses ({} MB) do not fit in memory",
                n / 250_000
            )
        })?;
    }
    let mut times = Vec::new();
    times
        .try_reserve_exact(epochs)
        .map_err(|_| format!("--epochs {epochs}: too many to time"))?;
    // Every output is opened before the first step.
    let save = output("--save", &a.save)?;
    let step_out = output("--step-losses", &a.step_losses)?;
    let mut metrics = output("--metrics", &a.metrics)?;
    if let Some((p, f)) = metrics.as_mut() {
        writeln!(f, "epoch,train_loss,test_loss,test_acc,seconds")
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    // The pool's threads start now, outside the counted training steps.
    mlp_kernels::prepare_threads(threads);
    println!(
        "mnist: {} train / {} test images, backend {}, threads {}, batch {batch}, lr {}, momentum {}, seed {}{}",
        train.count,
        test.count,
        k.backend(),
        threads,
        a.lr,
        a.momentum,
        a.seed,
        if a.sparse_input { ", sparse input" } else { "" }
    );
    let progress = Progress::new(steps);
    let mut acc = 0.0;
    let mut first = true;
    for epoch in 1..=epochs {
        let t0 = Instant::now();
        COUNTING.store(true, Ordering::Relaxed);
        if !a.no_shuffle {
            order.shuffle(&mut shuffle_rng);
        }
        let mut loss_sum = 0.0f64;
        for s in 0..steps {
            let rows = &order[s * batch..((s + 1) * batch).min(train.count)];
            gather(
                &mut buf,
                &train,
                rows,
                &table,
                train_sparse.as_ref(),
                threads,
            );
            let loss = train_step(&k, &mut net, &mut buf, rows.len(), &step, first)
                .map_err(|e| e.to_string())?;
            first = false;
            loss_sum += f64::from(loss);
            if a.step_losses.is_some() {
                step_losses.push(loss);
            }
            progress.step(epoch, s + 1);
        }
        COUNTING.store(false, Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        times.push(secs);
        progress.clear();
        let (test_loss, test_acc) = evaluate(
            &k,
            &net,
            &mut buf,
            &test,
            &table,
            a.relu_logits,
            test_sparse.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        acc = test_acc;
        let train_loss = loss_sum / steps as f64;
        println!(
            "epoch {epoch:2}  train loss {train_loss:.4}  test loss {test_loss:.4}  test acc {:.2}%  {secs:.3}s",
            test_acc * 100.0
        );
        if let Some((p, f)) = metrics.as_mut() {
            writeln!(
                f,
                "{epoch},{train_loss:.6},{test_loss:.6},{test_acc:.6},{secs:.6}"
            )
            .map_err(|e| format!("{}: {e}", p.display()))?;
        }
        if !train_loss.is_finite() {
            return Err(format!(
                "epoch {epoch}: the training loss is {train_loss}; the run diverged \
                 (try a smaller --lr)"
            ));
        }
    }
    write_out(save, &net.to_safetensors()?)?;
    let text: String = step_losses.iter().map(|l| format!("{l:.9e}\n")).collect();
    write_out(step_out, text.as_bytes())?;
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!(
        "summary: median epoch {median:.3}s  final test acc {:.2}%  allocations in training steps {}",
        acc * 100.0,
        ALLOCATIONS.load(Ordering::Relaxed)
    );
    Ok(())
}

/// A progress bar with the step rate and the time left, on a terminal only; logs and
/// CI get the plain per-epoch lines.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(steps: usize) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(steps as u64);
        let style = indicatif::ProgressStyle::with_template(
            "epoch {prefix:>2} [{bar:30}] {pos}/{len} steps  {rate}  {eta} left",
        )
        .map(|s| {
            s.progress_chars("=> ").with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} steps/s", state.per_sec());
                },
            )
        });
        if let Ok(style) = style {
            bar.set_style(style);
        }
        Progress(Some(bar))
    }

    /// Not counted as the training step's allocation: drawing is the bar's business.
    fn step(&self, epoch: usize, done: usize) {
        if let Some(bar) = &self.0 {
            COUNTING.store(false, Ordering::Relaxed);
            if done == 1 {
                bar.reset();
                bar.set_prefix(epoch.to_string());
            }
            bar.set_position(done as u64);
            COUNTING.store(true, Ordering::Relaxed);
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn main() {
    // clap prints its own errors (exit code 2) and --help/--version (exit code 0).
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
