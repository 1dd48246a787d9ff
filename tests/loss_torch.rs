//! PyTorch parity: every case of `tests/fixtures/torch_loss.txt` (written by
//! `tests/fixtures/make_torch_fixtures.py` with PyTorch; this test needs no PyTorch)
//! on every backend. Values within 1e-5 relative plus 1e-6 absolute (gradients
//! included); NaN must meet NaN and an infinity the same infinity. SGD steps must be
//! bit-identical to `torch.optim.SGD` on the FMA backends.

mod common;
use std::collections::HashMap;

use common::kernels;
use mlp_kernels::{
    Backend, BceWithLogits, CrossEntropy, Kernels, KlReduction, Reduction, Sgd, Target,
    distribution_cross_entropy, entropy,
};

const FIXTURES: &str = include_str!("fixtures/torch_loss.txt");
const REL: f64 = 1e-5;
const ABS: f64 = 1e-6;

struct Case {
    line: usize,
    op: String,
    params: HashMap<String, String>,
    fields: HashMap<String, Vec<String>>,
}

impl Case {
    fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
    fn usize(&self, k: &str) -> usize {
        self.param(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("line {}: no {k}", self.line))
    }
    fn f32s(&self, k: &str) -> Option<Vec<f32>> {
        self.fields
            .get(k)
            .map(|v| v.iter().map(|s| parse_f32(s)).collect())
    }
    fn need(&self, k: &str) -> Vec<f32> {
        self.f32s(k)
            .unwrap_or_else(|| panic!("line {}: no field {k}", self.line))
    }
    fn i64s(&self, k: &str) -> Vec<i64> {
        self.fields[k].iter().map(|s| s.parse().unwrap()).collect()
    }
    fn reduction(&self) -> Reduction {
        match self.param("reduction") {
            Some("none") => Reduction::None,
            Some("sum") => Reduction::Sum,
            _ => Reduction::Mean,
        }
    }
}

fn parse_f32(s: &str) -> f32 {
    match s {
        "nan" | "-nan" => f32::NAN,
        "inf" => f32::INFINITY,
        "-inf" => f32::NEG_INFINITY,
        _ => s.parse().unwrap_or_else(|e| panic!("bad float {s}: {e}")),
    }
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut cur: Option<Case> = None;
    for (i, line) in FIXTURES.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("case ") {
            let mut it = rest.split_whitespace();
            let op = it.next().unwrap().to_string();
            let params = it
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            cur = Some(Case {
                line: i + 1,
                op,
                params,
                fields: HashMap::new(),
            });
        } else if line == "end" {
            out.push(cur.take().expect("end without case"));
        } else {
            let (k, v) = line
                .split_once(": ")
                .unwrap_or((line.trim_end_matches(':'), ""));
            let c = cur.as_mut().expect("field outside a case");
            c.fields.insert(
                k.to_string(),
                v.split_whitespace().map(str::to_string).collect(),
            );
        }
    }
    out
}

/// Whether `got` matches PyTorch's `want` within `REL`/`ABS` plus `extra`.
fn same(got: f32, want: f32, extra: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    let (g, w) = (f64::from(got), f64::from(want));
    (g - w).abs() <= REL * w.abs() + ABS + extra
}

struct Checker {
    failures: Vec<String>,
    compared: usize,
}

impl Checker {
    fn values(
        &mut self,
        c: &Case,
        k: &Kernels,
        what: &str,
        got: &[f32],
        want: &[f32],
        extra: impl Fn(usize) -> f64,
    ) {
        assert_eq!(got.len(), want.len(), "line {}: {what} length", c.line);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            self.compared += 1;
            if !same(g, w, extra(i)) {
                self.failures.push(format!(
                    "line {} {} {} ({:?}) {what}[{i}]: got {g:e}, torch {w:e}",
                    c.line,
                    c.op,
                    k.backend(),
                    c.params
                ));
            }
        }
    }
    fn value(&mut self, c: &Case, k: &Kernels, what: &str, got: f32, want: f32, extra: f64) {
        self.values(c, k, what, &[got], &[want], |_| extra);
    }
}

#[test]
fn torch_parity() {
    let all = cases();
    assert!(all.len() >= 300, "only {} fixture cases", all.len());
    let mut ck = Checker {
        failures: Vec::new(),
        compared: 0,
    };
    let mut per_op: HashMap<String, usize> = HashMap::new();
    let mut deviations = 0usize;
    for k in kernels() {
        for c in &all {
            *per_op.entry(c.op.clone()).or_default() += 1;
            let x = c.need("x");
            let none = |_| 0.0;
            match c.op.as_str() {
                "logsumexp" | "softmax" | "log_softmax" => {
                    let cols = c.usize("cols");
                    let want = c.need("out");
                    let mut out = vec![0.0f32; want.len()];
                    match c.op.as_str() {
                        "logsumexp" => k.logsumexp_rows(&x, cols, &mut out).unwrap(),
                        "softmax" => k.softmax(&x, cols, &mut out).unwrap(),
                        _ => k.log_softmax(&x, cols, &mut out).unwrap(),
                    }
                    ck.values(c, &k, "out", &out, &want, none);
                }
                "cross_entropy" | "nll_loss" => {
                    let classes = c.usize("classes");
                    let rows = x.len() / classes;
                    let weight = c.f32s("weight");
                    let mut opts = CrossEntropy::new().with_reduction(c.reduction());
                    if let Some(w) = &weight {
                        opts = opts.with_weight(w);
                    }
                    if let Some(i) = c.param("ignore") {
                        opts = opts.with_ignore_index(i.parse().unwrap());
                    }
                    if let Some(e) = c.param("smoothing") {
                        opts = opts.with_label_smoothing(e.parse().unwrap());
                    }
                    let mut losses = vec![0.0f32; rows];
                    if c.op == "nll_loss" {
                        let y = c.i64s("target");
                        let loss = k.nll_loss(&x, classes, &y, &opts, &mut losses).unwrap();
                        ck.value(c, &k, "loss", loss, c.need("loss")[0], 0.0);
                        if let Some(want) = c.f32s("losses") {
                            ck.values(c, &k, "losses", &losses, &want, none);
                        }
                        continue;
                    }
                    let (q, y);
                    let target = if c.param("target") == Some("prob") {
                        q = c.need("target");
                        Target::Probabilities(&q)
                    } else {
                        y = c.i64s("target");
                        Target::Indices(&y)
                    };
                    let mut grad = vec![0.0f32; x.len()];
                    let loss = k
                        .cross_entropy_with_grad(&x, classes, target, &opts, &mut losses, &mut grad)
                        .unwrap();
                    let fwd = k
                        .cross_entropy(&x, classes, target, &opts, &mut [])
                        .unwrap_or_else(|_| {
                            k.cross_entropy(&x, classes, target, &opts, &mut vec![0.0; rows])
                                .unwrap()
                        });
                    assert_eq!(fwd.to_bits(), loss.to_bits(), "line {}", c.line);
                    ck.value(c, &k, "loss", loss, c.need("loss")[0], 0.0);
                    if let Some(want) = c.f32s("losses") {
                        ck.values(c, &k, "losses", &losses, &want, none);
                    }
                    // Cases at a zero divisor carry no gradient (see the script); every
                    // other case must.
                    if c.param("nograd") == Some("1") {
                        continue;
                    }
                    let mut want = c.need("grad");
                    // Known deviation: an ignored row's gradient is exactly 0 here;
                    // PyTorch's log_softmax backward turns non-finite logits in an
                    // ignored row into NaN.
                    if let (Target::Indices(y), Some(ig)) = (target, opts.ignore_index) {
                        for (r, &t) in y.iter().enumerate() {
                            if t == ig {
                                for w in &mut want[r * classes..(r + 1) * classes] {
                                    if w.is_nan() {
                                        deviations += 1;
                                        *w = 0.0;
                                    }
                                }
                            }
                        }
                    }
                    ck.values(c, &k, "grad", &grad, &want, none);
                }
                "bce" => {
                    let y = c.need("target");
                    let (w, pw) = (c.f32s("weight"), c.f32s("pos_weight"));
                    let mut opts = BceWithLogits::new().with_reduction(c.reduction());
                    if let Some(w) = &w {
                        opts = opts.with_weight(w);
                    }
                    if let Some(p) = &pw {
                        opts = opts.with_pos_weight(p);
                    }
                    let mut losses = vec![0.0f32; x.len()];
                    let mut grad = vec![0.0f32; x.len()];
                    let loss = k
                        .binary_cross_entropy_with_logits_with_grad(
                            &x,
                            &y,
                            &opts,
                            &mut losses,
                            &mut grad,
                        )
                        .unwrap();
                    // PyTorch's form subtracts two terms of size |x|: both sides round
                    // them, so allow a few eps of that size.
                    let wi = |i: usize| w.as_ref().map_or(1.0, |w| f64::from(w[i % w.len()]));
                    let pi = |i: usize| {
                        pw.as_ref()
                            .map_or(1.0, |p| f64::from(p[i % p.len()]).max(1.0))
                    };
                    let mag = |i: usize| {
                        8.0 * f64::from(f32::EPSILON)
                            * wi(i)
                            * pi(i)
                            * (f64::from(x[i].abs()) + 1.0)
                    };
                    let d = if c.reduction() == Reduction::Mean {
                        x.len() as f64
                    } else {
                        1.0
                    };
                    let total = (0..x.len()).map(mag).sum::<f64>() / d;
                    ck.value(c, &k, "loss", loss, c.need("loss")[0], total);
                    if let Some(want) = c.f32s("losses") {
                        ck.values(c, &k, "losses", &losses, &want, mag);
                    }
                    ck.values(c, &k, "grad", &grad, &c.need("grad"), none);
                }
                "kl_div" => {
                    let red = match c.param("reduction") {
                        Some("none") => KlReduction::None,
                        Some("sum") => KlReduction::Sum,
                        Some("batchmean") => KlReduction::BatchMean,
                        _ => KlReduction::Mean,
                    };
                    let t = c.need("target");
                    let mut losses = vec![0.0f32; x.len()];
                    let lt = c.param("log_target") == Some("1");
                    let loss = k
                        .kl_div(&x, &t, c.usize("cols"), lt, red, &mut losses)
                        .unwrap();
                    ck.value(c, &k, "loss", loss, c.need("loss")[0], 0.0);
                    if let Some(want) = c.f32s("losses") {
                        ck.values(c, &k, "losses", &losses, &want, none);
                    }
                }
                "entropy" => ck.value(c, &k, "loss", entropy(&x), c.need("loss")[0], 0.0),
                "xent" => {
                    let h = distribution_cross_entropy(&x, &c.need("target")).unwrap();
                    ck.value(c, &k, "loss", h, c.need("loss")[0], 0.0);
                }
                "sgd" => {
                    let f = |key: &str| c.param(key).unwrap().parse::<f32>().unwrap();
                    let opt = Sgd::new(f("lr"))
                        .with_momentum(f("momentum"))
                        .with_dampening(f("dampening"))
                        .with_weight_decay(f("weight_decay"))
                        .with_nesterov(c.param("nesterov") == Some("1"))
                        .with_maximize(c.param("maximize") == Some("1"));
                    let grads = c.need("grad");
                    let mut p = x.clone();
                    let mut buf = vec![0.0f32; p.len()];
                    for (step, g) in grads.chunks_exact(p.len()).enumerate() {
                        k.sgd_step(&opt, &mut p, g, &mut buf, step == 0).unwrap();
                    }
                    // The FMA backends do torch's operations in torch's order, each
                    // fused where ATen's vectorised add fuses it: bit for bit. The
                    // portable backend rounds its products apart: a few ulp.
                    let fused = k.backend() != Backend::Portable;
                    let tol = if fused {
                        0.0
                    } else {
                        4.0 * f64::from(f32::EPSILON)
                    };
                    let ulps = |want: &[f32]| {
                        let scale: Vec<f64> = want
                            .iter()
                            .map(|w| tol * f64::from(w.abs()).max(1.0))
                            .collect();
                        move |i: usize| scale[i]
                    };
                    let exact = |got: &[f32], want: &[f32]| {
                        !fused
                            || got
                                .iter()
                                .zip(want)
                                .all(|(a, b)| a.to_bits() == b.to_bits())
                    };
                    let want = c.need("out");
                    ck.values(c, &k, "param", &p, &want, ulps(&want));
                    if !exact(&p, &want) {
                        ck.failures.push(format!(
                            "line {} sgd {}: param not bit-identical",
                            c.line,
                            k.backend()
                        ));
                    }
                    if let Some(want) = c.f32s("buffer") {
                        ck.values(c, &k, "momentum_buffer", &buf, &want, ulps(&want));
                        if !exact(&buf, &want) {
                            ck.failures.push(format!(
                                "line {} sgd {}: buffer not bit-identical",
                                c.line,
                                k.backend()
                            ));
                        }
                    }
                }
                op => panic!("line {}: unknown op {op}", c.line),
            }
        }
    }
    eprintln!(
        "torch parity: {} cases x {} backends, {} values compared, per op {:?}, {} NaN gradients of ignored rows taken as 0",
        all.len(),
        kernels().len(),
        ck.compared,
        per_op,
        deviations
    );
    let n = ck.failures.len();
    assert!(
        n == 0,
        "{n} mismatches with PyTorch:\n{}",
        ck.failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
