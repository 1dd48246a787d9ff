//! The MNIST example's parts: the IDX reader on files this test writes, one training
//! step of the full network against central finite differences in f64, and a short
//! training run on the real data.

#[path = "../examples/mnist/aligned.rs"]
mod aligned;
#[path = "../examples/mnist/huge_pages.rs"]
mod huge_pages;
#[path = "../examples/mnist/idx.rs"]
mod idx;
#[path = "../examples/mnist/train.rs"]
#[allow(dead_code)]
mod train;

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use mlp_kernels::{Kernels, Sgd};
use train::{Buffers, Net, SIZES, Step};

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write_split(dir: &Path, split: &str, images: &[u8], labels: &[u8], gzip: bool) {
    let (ip, lp) = (
        format!("{split}-images-idx3-ubyte"),
        format!("{split}-labels-idx1-ubyte"),
    );
    let n = labels.len() as u32;
    let (ib, lb) = (idx_bytes(&[n, 28, 28], images), idx_bytes(&[n], labels));
    if gzip {
        std::fs::write(dir.join(ip + ".gz"), gz(&ib)).unwrap();
        std::fs::write(dir.join(lp + ".gz"), gz(&lb)).unwrap();
    } else {
        std::fs::write(dir.join(ip), ib).unwrap();
        std::fs::write(dir.join(lp), lb).unwrap();
    }
}

#[test]
fn idx_reads_good_files_gzipped_and_raw() {
    let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 251) as u8).collect();
    for gzip in [true, false] {
        let Some(d) = common::temp_dir("idx_reads_good_files", &format!("good{gzip}")) else {
            return;
        };
        write_split(&d, "train", &pixels, &[3, 7], gzip);
        let s = idx::load_split(&d, "train").unwrap();
        assert_eq!((s.count, s.pixels_per_image), (2, 784));
        assert_eq!(s.images, pixels);
        assert_eq!(s.labels, [3, 7]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn idx_errors_name_the_file_and_the_fault() {
    let p = Path::new("x.idx");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0, 0], "shorter than the 4-byte magic"),
        (vec![1, 2, 8, 1, 0, 0, 0, 1, 5], "bad magic"),
        (vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 5], "not unsigned byte"),
        (vec![0, 0, 8, 3, 0, 0, 0, 2], "ends early"),
        (idx_bytes(&[3], &[1, 2]), "truncated"),
        (idx_bytes(&[1], &[1, 2]), "corrupt"),
        (idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]), "overflow"),
    ];
    for (bytes, want) in cases {
        let e = idx::parse(&bytes, p).unwrap_err().to_string();
        assert!(
            e.starts_with("x.idx: ") && e.contains(want),
            "{e:?} should say {want:?}"
        );
    }
    let Some(d) = common::temp_dir("idx_errors_name_the_file_and_the_fault", "bad") else {
        return;
    };
    // Missing files.
    let e = idx::load_split(&d, "train").unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("missing"),
        "{e}"
    );
    // A gzip stream cut short.
    let full = gz(&idx_bytes(&[2, 28, 28], &[0; 2 * 784]));
    std::fs::write(
        d.join("train-images-idx3-ubyte.gz"),
        &full[..full.len() / 2],
    )
    .unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx_bytes(&[2], &[1, 2])).unwrap();
    let e = idx::load_split(&d, "train").unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("gzip"),
        "{e}"
    );
    // Images and labels that disagree, and a label that is not a digit.
    write_split(&d, "t10k", &[0; 2 * 784], &[1, 2], false);
    std::fs::write(
        d.join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[3], &[1, 2, 3]),
    )
    .unwrap();
    let e = idx::load_split(&d, "t10k").unwrap_err().to_string();
    assert!(e.contains("3 labels for 2 images"), "{e}");
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx_bytes(&[2], &[1, 12])).unwrap();
    let e = idx::load_split(&d, "t10k").unwrap_err().to_string();
    assert!(e.contains("label 12"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The network's mean cross-entropy in f64, written out independently of the crate.
fn loss_f64(w: &[Vec<f64>; 3], b: &[Vec<f64>; 3], x: &[f64], y: &[usize]) -> f64 {
    let n = y.len();
    let mut total = 0.0;
    for r in 0..n {
        let mut h: Vec<f64> = x[r * 784..(r + 1) * 784].to_vec();
        for l in 0..3 {
            let (i, o) = (SIZES[l], SIZES[l + 1]);
            let mut z = vec![0.0; o];
            for (j, zj) in z.iter_mut().enumerate() {
                *zj = b[l][j] + (0..i).map(|p| w[l][j * i + p] * h[p]).sum::<f64>();
                if l < 2 {
                    *zj = zj.max(0.0);
                }
            }
            h = z;
        }
        let m = h.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + h.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        total += lse - h[y[r]];
    }
    total / n as f64
}

#[test]
fn the_network_buffers_start_on_cache_lines() {
    let mut net = Net::new(1, &mut common::SplitMix(3)).unwrap();
    net.make_sparse();
    let buf = Buffers::new(5, &net);
    let zeroed = [&net.b, &net.gw, &net.gb, &net.mw, &net.mb, &buf.h, &buf.dh];
    let zeroed = zeroed
        .iter()
        .flat_map(|a| a.iter())
        .chain([&buf.x, &buf.ws]);
    for f in zeroed {
        assert_eq!(
            f.as_ptr() as usize % 64,
            0,
            "a buffer of {} floats",
            f.len()
        );
        assert!(
            f.iter().all(|&v| v == 0.0),
            "a buffer of {} floats",
            f.len()
        );
    }
    for w in &net.w {
        assert_eq!(w.as_ptr() as usize % 64, 0, "weights of {} floats", w.len());
    }
    // A copy is a copy, and an empty buffer is a valid empty slice.
    let w = aligned::Floats::from_slice(&net.w[1]);
    assert_eq!(&w[..], &net.w[1][..]);
    assert_eq!(w.as_ptr() as usize % 64, 0);
    assert!(aligned::Floats::zeros(0).is_empty());
}

#[test]
fn one_step_matches_finite_differences() {
    let mut rng = common::SplitMix(17);
    for k in common::kernels() {
        let mut net = Net::new(1, &mut rng).unwrap();
        for b in net.b.iter_mut() {
            b.iter_mut()
                .for_each(|v| *v = rng.uniform(-0.1, 0.1) as f32);
        }
        let n = 3;
        let mut buf = Buffers::new(n, &net);
        buf.x
            .iter_mut()
            .for_each(|v| *v = rng.uniform(-1.0, 2.0) as f32);
        let y = [3usize, 0, 9];
        for (d, &s) in buf.y.iter_mut().zip(&y) {
            *d = s as i64;
        }
        // lr = 0 leaves the weights where the gradient was taken.
        let step = Step {
            opt: Sgd::new(0.0),
            relu_logits: false,
        };
        let loss = train::train_step(&k, &mut net, &mut buf, n, &step, true).unwrap();
        let w64: [Vec<f64>; 3] =
            std::array::from_fn(|l| net.w[l].iter().map(|&v| v as f64).collect());
        let b64: [Vec<f64>; 3] =
            std::array::from_fn(|l| net.b[l].iter().map(|&v| v as f64).collect());
        let x64: Vec<f64> = buf.x.iter().map(|&v| v as f64).collect();
        let l64 = loss_f64(&w64, &b64, &x64, &y);
        assert!(
            (loss as f64 - l64).abs() < 1e-5 * l64.max(1.0),
            "{}: loss {loss} vs {l64}",
            k.backend()
        );
        let h = 1e-6;
        for l in 0..3 {
            for _ in 0..12 {
                let (is_w, len) = if rng.next_u64().is_multiple_of(3) {
                    (false, b64[l].len())
                } else {
                    (true, w64[l].len())
                };
                let idx = (rng.next_u64() % len as u64) as usize;
                let (mut wp, mut bp) = (w64.clone(), b64.clone());
                let (mut wm, mut bm) = (w64.clone(), b64.clone());
                if is_w {
                    wp[l][idx] += h;
                    wm[l][idx] -= h;
                } else {
                    bp[l][idx] += h;
                    bm[l][idx] -= h;
                }
                let num = (loss_f64(&wp, &bp, &x64, &y) - loss_f64(&wm, &bm, &x64, &y)) / (2.0 * h);
                let got = if is_w { net.gw[l][idx] } else { net.gb[l][idx] } as f64;
                assert!(
                    (got - num).abs() <= 2e-5 + 1e-3 * num.abs(),
                    "{}: layer {l} {} [{idx}]: {got} vs finite difference {num}",
                    k.backend(),
                    if is_w { "weight" } else { "bias" }
                );
            }
        }
    }
}

#[test]
fn five_thousand_images_reach_85_percent() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let mut train_set = idx::load_split(&data, "train").unwrap();
    let test = idx::load_split(&data, "t10k").unwrap();
    train_set.count = 5000;
    let k = Kernels::detect();
    let mut rng = common::SplitMix(0);
    let mut net = Net::new(1, &mut rng).unwrap();
    // 100 steps of 50 with momentum: enough for a network this size to pass 85%.
    let batch = 50;
    let mut buf = Buffers::new(1000, &net);
    let table = train::normalisation_table();
    let step = Step {
        opt: Sgd::new(0.01).with_momentum(0.9),
        relu_logits: false,
    };
    let order: Vec<usize> = (0..train_set.count).collect();
    for (s, rows) in order.chunks(batch).enumerate() {
        train::gather(&mut buf, &train_set, rows, &table, None, 1);
        train::train_step(&k, &mut net, &mut buf, rows.len(), &step, s == 0).unwrap();
    }
    let (loss, acc) = train::evaluate(&k, &net, &mut buf, &test, &table, false, None).unwrap();
    eprintln!(
        "5000 images, 1 epoch: test loss {loss:.4}, accuracy {:.2}%",
        acc * 100.0
    );
    assert!(acc >= 0.85, "accuracy {acc}");
}

/// The example's binary, which `cargo test` builds along with the tests (after
/// `cargo test --test mnist` alone, run `cargo build --example mnist` first).
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join("examples")
        .join(format!("mnist{}", std::env::consts::EXE_SUFFIX))
}

/// Runs the example; its exit code, stdout and stderr, or `None` where this platform
/// cannot start it (a cross-compiled test under qemu-user without binfmt_misc).
fn run_example(args: &[std::ffi::OsString]) -> Option<(i32, String, String)> {
    let out = std::process::Command::new(example_binary())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{} is missing: run `cargo test` (which builds the examples) or \
             `cargo build --example mnist` first",
            example_binary().display()
        ),
        Err(e) => {
            eprintln!("skipped: cannot start {}: {e}", example_binary().display());
            return None;
        }
    };
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn the_example_refuses_bad_input_before_it_trains() {
    let Some(d) = common::temp_dir("the_example_refuses_bad_input", "cli") else {
        return;
    };
    // A dataset of two training images and none to test on.
    let empty_test = d.join("empty-test");
    std::fs::create_dir_all(&empty_test).unwrap();
    write_split(&empty_test, "train", &[0; 2 * 784], &[3, 7], true);
    write_split(&empty_test, "t10k", &[], &[], true);
    // Text where gzip is promised.
    let text_gz = d.join("text-gz");
    std::fs::create_dir_all(&text_gz).unwrap();
    for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        std::fs::write(text_gz.join(f), "hello, I am text\n").unwrap();
    }
    let text = d.join("weights.txt");
    std::fs::write(&text, "not weights\n").unwrap();
    // Weights of the right shapes with one NaN.
    let nan_init = d.join("nan.safetensors");
    let shapes = [
        ("w1", vec![200, 784]),
        ("b1", vec![200]),
        ("w2", vec![200, 200]),
        ("b2", vec![200]),
        ("w3", vec![10, 200]),
        ("b3", vec![10]),
    ];
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let bad = if *name == "w2" { 5 } else { n };
            (0..n)
                .flat_map(|i| if i == bad { f32::NAN } else { 0.01 }.to_le_bytes())
                .collect()
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = shapes
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes);
            (name.to_string(), v.unwrap())
        })
        .collect();
    std::fs::write(&nan_init, safetensors::serialize(views, None).unwrap()).unwrap();
    let unwritable = d.join("no-such-dir").join("out");

    let os = |s: &str| std::ffi::OsString::from(s);
    let path = |p: &Path| p.as_os_str().to_owned();
    #[cfg(unix)]
    let not_utf8 = {
        use std::os::unix::ffi::OsStringExt;
        std::ffi::OsString::from_vec(vec![b'-', b'-', 0xff, 0xfe])
    };
    #[cfg(not(unix))]
    let not_utf8 = os("--\u{fffd}");
    // (arguments, exit code, what stderr must say)
    let cases: Vec<(Vec<std::ffi::OsString>, i32, Vec<&str>)> = vec![
        (
            vec![os("--epochs"), os("18446744073709551615")],
            2,
            vec!["--epochs"],
        ),
        (
            vec![os("--epochs"), os("100000000000000000")],
            2,
            vec!["--epochs"],
        ),
        (
            vec![
                os("--epochs"),
                os("3000000000"),
                os("--step-losses"),
                os("f"),
            ],
            2,
            vec!["--epochs"],
        ),
        (
            vec![
                os("--epochs=1000000"),
                os("--batch-size=1"),
                os("--step-losses"),
                path(&d.join("losses")),
            ],
            1,
            vec!["--step-losses", "more than the"],
        ),
        (vec![not_utf8], 2, vec!["error"]),
        (vec![os("--epochs"), os("0")], 2, vec!["--epochs", "0"]),
        (vec![os("--lr"), os("inf")], 2, vec!["--lr", "finite"]),
        (vec![os("--lr=nan")], 2, vec!["--lr", "finite"]),
        (vec![os("--momentum"), os("-0.5")], 2, vec!["--momentum"]),
        (vec![os("--threads"), os("0")], 2, vec!["--threads"]),
        (vec![os("--batch-size"), os("0")], 2, vec!["--batch-size"]),
        (
            vec![os("--backend"), os("avx9")],
            2,
            vec!["--backend", "avx512"],
        ),
        (vec![os("--epoch"), os("3")], 2, vec!["--epochs"]),
        (
            vec![os("--data"), path(&empty_test)],
            1,
            vec!["test set holds no images"],
        ),
        (
            vec![os("--data"), path(&text_gz)],
            1,
            vec!["train-images-idx3-ubyte.gz", "not gzip-compressed"],
        ),
        (
            vec![os("--init"), path(&text)],
            1,
            vec!["--init", "not a safetensors file"],
        ),
        (
            vec![os("--init"), path(&nan_init)],
            1,
            vec!["--init", "w2", "NaN", "finite"],
        ),
        (
            vec![os("--lr=0.5"), os("--save"), path(&unwritable)],
            1,
            vec!["--save", "cannot write"],
        ),
        (
            vec![os("--step-losses"), path(&unwritable)],
            1,
            vec!["--step-losses", "cannot write"],
        ),
        (
            vec![os("--metrics"), path(&unwritable)],
            1,
            vec!["--metrics", "cannot write"],
        ),
    ];
    // Where the binary cannot run (a cross-compiled test under qemu-user without
    // binfmt_misc: the spawned child exits 127 before main), say so and stop.
    match run_example(&[os("--version")]) {
        Some((0, stdout, _)) if stdout.starts_with("mnist ") => {}
        other => {
            eprintln!("skipped: the example binary does not run here ({other:?})");
            return;
        }
    }
    for (args, code, needles) in &cases {
        let Some((got, stdout, stderr)) = run_example(args) else {
            return;
        };
        let shown = format!("{args:?}: exit {got}\nstdout: {stdout}\nstderr: {stderr}");
        assert_eq!(got, *code, "{shown}");
        for n in needles {
            assert!(stderr.contains(n), "{shown}\nmissing {n:?}");
        }
        assert!(
            !stdout.contains("epoch"),
            "trained before refusing: {shown}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{shown}"
        );
        assert!(
            !stderr.contains("--limit"),
            "names --limit, which was not given: {shown}"
        );
        assert!(
            !unwritable.exists() && !d.join("losses").exists(),
            "{shown}"
        );
    }
    // --help shows the defaults; --lr=X is accepted.
    let Some((code, stdout, _)) = run_example(&[os("--help")]) else {
        return;
    };
    assert_eq!(code, 0);
    assert!(stdout.contains("[default: 0.01]") && stdout.contains("[default: 200]"));
}

/// `--sparse-input`'s network is the dense one: from the same weights, 100 steps on
/// the same batches give per-step losses within float rounding of the dense path's
/// and the same test accuracy within 0.3 points.
#[test]
fn the_sparse_first_layer_trains_as_the_dense_one() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let mut train_set = idx::load_split(&data, "train").unwrap();
    let test = idx::load_split(&data, "t10k").unwrap();
    train_set.count = 5000;
    let k = Kernels::detect();
    let table = train::normalisation_table();
    let step = Step {
        opt: Sgd::new(0.01).with_momentum(0.9),
        relu_logits: false,
    };
    let order: Vec<usize> = (0..train_set.count).collect();
    let mut results = Vec::new();
    for sparse in [false, true] {
        let mut net = Net::new(1, &mut common::SplitMix(0)).unwrap();
        let (tr, te) = if sparse {
            net.make_sparse();
            (
                Some(train::SparseImages::new(&train_set).unwrap()),
                Some(train::SparseImages::new(&test).unwrap()),
            )
        } else {
            (None, None)
        };
        let mut buf = Buffers::new(1000, &net);
        let mut losses = Vec::new();
        for (s, rows) in order.chunks(50).enumerate() {
            train::gather(&mut buf, &train_set, rows, &table, tr.as_ref(), 1);
            losses.push(
                train::train_step(&k, &mut net, &mut buf, rows.len(), &step, s == 0).unwrap(),
            );
        }
        let (_, acc) =
            train::evaluate(&k, &net, &mut buf, &test, &table, false, te.as_ref()).unwrap();
        results.push((losses, acc, net.w1()));
    }
    let (dense, sparse) = (&results[0], &results[1]);
    for (s, (a, b)) in dense.0.iter().zip(&sparse.0).enumerate() {
        assert!(
            (a - b).abs() <= 1e-3 * a.abs(),
            "step {s}: dense loss {a}, sparse {b}"
        );
    }
    assert!(
        (dense.1 - sparse.1).abs() <= 0.003,
        "accuracy {} vs {}",
        dense.1,
        sparse.1
    );
    // The weights are the same tensor in PyTorch's layout, up to rounding.
    let worst = dense
        .2
        .iter()
        .zip(&sparse.2)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "largest weight difference {worst}");
}

/// The batch gathered on the pool's threads is the batch gathered on one.
#[test]
fn the_gather_on_threads_is_the_gather() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let test = idx::load_split(&data, "t10k").unwrap();
    let net = Net::new(2, &mut common::SplitMix(1)).unwrap();
    let (mut one, mut two) = (Buffers::new(200, &net), Buffers::new(200, &net));
    let table = train::normalisation_table();
    // A scattered order, as a shuffled epoch gives.
    let order: Vec<usize> = (0..200).map(|i| i * 37 % test.count).collect();
    train::gather(&mut one, &test, &order, &table, None, 1);
    train::gather(&mut two, &test, &order, &table, None, 2);
    assert!(one.x[..] == two.x[..] && one.y == two.y);
    assert!(one.x.iter().any(|&v| v > 0.0));
    // Each pixel is its table entry, whichever SIMD lookup this CPU took.
    let d = test.pixels_per_image;
    for (r, &i) in order.iter().enumerate() {
        for (j, &p) in test.images[i * d..(i + 1) * d].iter().enumerate() {
            assert_eq!(one.x[r * d + j].to_bits(), table[p as usize].to_bits());
        }
        assert_eq!(one.y[r], i64::from(test.labels[i]));
    }
}
