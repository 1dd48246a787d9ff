//! The lesson's network, trained on MNIST: 784-200-200-10, ReLU, softmax cross-entropy,
//! SGD, Kaiming-normal init, batch 200 reshuffled every epoch.
//!
//! ```sh
//! cargo run --release --example mnist -- --help
//! ```

mod idx;
mod train;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use mlp_kernels::{Backend, Kernels, Sgd};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use train::{Buffers, Net, SIZES, Step, evaluate, gather, normalisation_table, train_step};

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

const HELP: &str = "\
Train the lesson's 784-200-200-10 MLP on MNIST with mlp-kernels.

USAGE: cargo run --release --example mnist -- [OPTIONS]

OPTIONS:
  --data DIR         folder with the four IDX files, gzipped or raw [default: data/mnist]
  --epochs N         passes over the training set [default: 10]
  --batch-size N     samples per SGD step [default: 200]
  --lr X             learning rate [default: 0.01]
  --momentum X       SGD momentum [default: 0]
  --weight-decay X   L2 penalty [default: 0]
  --seed N           seeds init and shuffling; same seed, same backend: same numbers [default: 0]
  --threads N        threads for the matrix products [default: 1]
  --backend NAME     portable, avx2 or avx512 [default: the best this CPU has]
  --limit N          use only the first N training images
  --no-shuffle       keep the file's order every epoch
  --relu-logits      apply ReLU to the logits, as the original lesson did
  --init FILE        start from these weights (safetensors: w1 b1 w2 b2 w3 b3, PyTorch shapes)
  --save FILE        write the trained weights there (same format)
  --metrics FILE     write a CSV: epoch,train_loss,test_loss,test_acc,seconds
  --step-losses FILE write the loss of every training step, one per line
  -h, --help         print this help
";

struct Args {
    data: PathBuf,
    epochs: usize,
    batch: usize,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    seed: u64,
    threads: usize,
    backend: Option<Backend>,
    limit: Option<usize>,
    shuffle: bool,
    relu_logits: bool,
    init: Option<PathBuf>,
    save: Option<PathBuf>,
    metrics: Option<PathBuf>,
    step_losses: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        data: PathBuf::from("data/mnist"),
        epochs: 10,
        batch: 200,
        lr: 0.01,
        momentum: 0.0,
        weight_decay: 0.0,
        seed: 0,
        threads: 1,
        backend: None,
        limit: None,
        shuffle: true,
        relu_logits: false,
        init: None,
        save: None,
        metrics: None,
        step_losses: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value (see --help)"))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: cannot read {v:?} as a number"))
        }
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            "--data" => a.data = PathBuf::from(value()?),
            "--epochs" => a.epochs = num(&flag, value()?)?,
            "--batch-size" => a.batch = num(&flag, value()?)?,
            "--lr" => a.lr = num(&flag, value()?)?,
            "--momentum" => a.momentum = num(&flag, value()?)?,
            "--weight-decay" => a.weight_decay = num(&flag, value()?)?,
            "--seed" => a.seed = num(&flag, value()?)?,
            "--threads" => a.threads = num(&flag, value()?)?,
            "--backend" => {
                a.backend = Some(value()?.parse().map_err(|e| format!("--backend: {e}"))?)
            }
            "--limit" => a.limit = Some(num(&flag, value()?)?),
            "--no-shuffle" => a.shuffle = false,
            "--relu-logits" => a.relu_logits = true,
            "--init" => a.init = Some(PathBuf::from(value()?)),
            "--save" => a.save = Some(PathBuf::from(value()?)),
            "--metrics" => a.metrics = Some(PathBuf::from(value()?)),
            "--step-losses" => a.step_losses = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    if a.batch == 0 || a.threads == 0 {
        return Err("--batch-size and --threads must be at least 1".into());
    }
    if !a.data.exists() && a.data == Path::new("data/mnist") {
        // Run from elsewhere than the repository root: use the copy beside the example.
        a.data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    }
    Ok(a)
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let k = match a.backend {
        Some(b) => Kernels::new(b).map_err(|e| e.to_string())?,
        None => Kernels::detect(),
    };
    let mut train = idx::load_split(&a.data, "train").map_err(|e| e.to_string())?;
    let test = idx::load_split(&a.data, "t10k").map_err(|e| e.to_string())?;
    if train.pixels_per_image != SIZES[0] || test.pixels_per_image != SIZES[0] {
        return Err(format!(
            "images must have 784 pixels, found {} and {}",
            train.pixels_per_image, test.pixels_per_image
        ));
    }
    if let Some(limit) = a.limit {
        train.count = train.count.min(limit);
    }
    if train.count == 0 {
        return Err("no training images (check --limit)".into());
    }
    let table = normalisation_table();
    let mut rng = StdRng::seed_from_u64(a.seed);
    let mut shuffle_rng = StdRng::seed_from_u64(1000 + a.seed);
    // The pool's threads start now, outside the counted training steps.
    mlp_kernels::prepare_threads(a.threads);
    let mut net = Net::new(a.threads, &mut rng).map_err(|e| e.to_string())?;
    if let Some(p) = &a.init {
        net.load(p)?;
    }
    let opt = Sgd::new(a.lr)
        .with_momentum(a.momentum)
        .with_weight_decay(a.weight_decay);
    opt.validate().map_err(|e| e.to_string())?;
    let step = Step {
        opt,
        relu_logits: a.relu_logits,
    };
    let batch = a.batch.min(train.count);
    let mut buf = Buffers::new(batch.max(1000), &net);
    let mut order: Vec<usize> = (0..train.count).collect();
    let steps = train.count.div_ceil(batch);
    let tty = std::io::stderr().is_terminal();
    let mut metrics = match &a.metrics {
        Some(p) => {
            let mut f = std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
            writeln!(f, "epoch,train_loss,test_loss,test_acc,seconds")
                .map_err(|e| e.to_string())?;
            Some(f)
        }
        None => None,
    };
    println!(
        "mnist: {} train / {} test images, backend {}, threads {}, batch {batch}, lr {}, momentum {}, seed {}",
        train.count,
        test.count,
        k.backend(),
        a.threads,
        a.lr,
        a.momentum,
        a.seed
    );
    let mut times = Vec::with_capacity(a.epochs);
    // Filled during training without allocating (the capacity is reserved here).
    let mut step_losses: Vec<f32> = Vec::with_capacity(if a.step_losses.is_some() {
        steps * a.epochs
    } else {
        0
    });
    let mut acc = 0.0;
    let mut first = true;
    for epoch in 1..=a.epochs {
        let t0 = Instant::now();
        COUNTING.store(true, Ordering::Relaxed);
        if a.shuffle {
            order.shuffle(&mut shuffle_rng);
        }
        let mut loss_sum = 0.0f64;
        for s in 0..steps {
            let rows = &order[s * batch..((s + 1) * batch).min(train.count)];
            gather(&mut buf, &train, rows, &table);
            let loss = train_step(&k, &mut net, &mut buf, rows.len(), &step, first)
                .map_err(|e| e.to_string())?;
            first = false;
            loss_sum += f64::from(loss);
            if a.step_losses.is_some() {
                step_losses.push(loss);
            }
            if tty && (s % 10 == 0 || s + 1 == steps) {
                COUNTING.store(false, Ordering::Relaxed);
                let done = (s + 1) * 30 / steps;
                eprint!(
                    "\repoch {epoch:2} [{}{}] {}/{steps}",
                    "=".repeat(done),
                    " ".repeat(30 - done),
                    s + 1
                );
                COUNTING.store(true, Ordering::Relaxed);
            }
        }
        COUNTING.store(false, Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        times.push(secs);
        if tty {
            eprint!("\r{}\r", " ".repeat(60));
        }
        let (test_loss, test_acc) = evaluate(&k, &net, &mut buf, &test, &table, a.relu_logits)
            .map_err(|e| e.to_string())?;
        acc = test_acc;
        let train_loss = loss_sum / steps as f64;
        println!(
            "epoch {epoch:2}  train loss {train_loss:.4}  test loss {test_loss:.4}  test acc {:.2}%  {secs:.3}s",
            test_acc * 100.0
        );
        if let Some(f) = metrics.as_mut() {
            writeln!(
                f,
                "{epoch},{train_loss:.6},{test_loss:.6},{test_acc:.6},{secs:.6}"
            )
            .map_err(|e| e.to_string())?;
        }
    }
    if let Some(p) = &a.save {
        net.save(p)?;
    }
    if let Some(p) = &a.step_losses {
        let text: String = step_losses.iter().map(|l| format!("{l:.9e}\n")).collect();
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!(
        "summary: median epoch {median:.3}s  final test acc {:.2}%  allocations in training steps {}",
        acc * 100.0,
        ALLOCATIONS.load(Ordering::Relaxed)
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
