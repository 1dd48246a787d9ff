//! The loss family against plain f64 reference code written here (not calling the
//! crate), on every backend: log-sum-exp, softmax, log-softmax, cross-entropy with
//! every option and its fused gradient, nll_loss, BCE with logits, entropy, KL.
//! The reference's own analytic gradients are checked against central differences.

mod common;
use common::{SplitMix, kernels};
use mlp_kernels::{
    BceWithLogits, CrossEntropy, Kernels, KlReduction, Reduction, Target,
    distribution_cross_entropy, entropy,
};
use proptest::prelude::*;

const EPS: f64 = f32::EPSILON as f64;

// ---------------------------------------------------------------- f64 reference

fn to64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// The max m and log sum exp(x - m) of a finite row: lse = m + l, and the log of a
/// softmax entry is (x - m) - l, which stays exact when m is huge.
fn r_shifted(x: &[f64]) -> (f64, f64) {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (m, x.iter().map(|v| (v - m).exp()).sum::<f64>().ln())
}

fn r_lse(x: &[f64]) -> f64 {
    let (m, l) = r_shifted(x);
    m + l
}

#[derive(Clone, Copy, Debug)]
struct Opts {
    weighted: bool,
    ignore: Option<i64>,
    eps: f32,
    reduction: Reduction,
}

enum RTarget<'a> {
    Idx(&'a [i64]),
    Prob(&'a [f32]),
}

/// Reference cross-entropy: the smoothed, weighted target vector written out, the loss
/// -sum t log p, its gradient p sum t - t, PyTorch's mean. Returns (reduced loss,
/// row losses, gradient of the reduced loss (None: of each row's own loss)).
fn r_ce(
    x: &[f64],
    c: usize,
    target: &RTarget,
    w: Option<&[f32]>,
    o: &Opts,
) -> (f64, Vec<f64>, Vec<f64>) {
    let rows = x.len() / c;
    let eps = f64::from(o.eps);
    let wc = |j: usize| w.map_or(1.0, |w| f64::from(w[j]));
    let (mut losses, mut grad) = (vec![0.0; rows], vec![0.0; x.len()]);
    let mut denom = 0.0;
    for r in 0..rows {
        let xr = &x[r * c..(r + 1) * c];
        let t: Vec<f64> = match target {
            RTarget::Idx(y) => {
                if Some(y[r]) == o.ignore {
                    continue;
                }
                let y = y[r] as usize;
                denom += wc(y);
                (0..c)
                    .map(|j| {
                        let hot = if j == y { 1.0 } else { 0.0 };
                        (1.0 - eps) * wc(y) * hot + eps / c as f64 * wc(j)
                    })
                    .collect()
            }
            RTarget::Prob(q) => {
                denom += 1.0;
                (0..c)
                    .map(|j| wc(j) * ((1.0 - eps) * f64::from(q[r * c + j]) + eps / c as f64))
                    .collect()
            }
        };
        let (m, l) = r_shifted(xr);
        losses[r] = (0..c).map(|j| -t[j] * ((xr[j] - m) - l)).sum();
        let tsum: f64 = t.iter().sum();
        for j in 0..c {
            grad[r * c + j] = ((xr[j] - m) - l).exp() * tsum - t[j];
        }
    }
    let d = if o.reduction == Reduction::Mean {
        denom
    } else {
        1.0
    };
    grad.iter_mut().for_each(|g| *g /= d);
    (losses.iter().sum::<f64>() / d, losses, grad)
}

/// Central differences of `f` at `x`, step relative to each coordinate.
fn finite_diff(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-5 * x[i].abs().max(1.0);
            xp[i] = x[i] + h;
            let up = f(&xp);
            xp[i] = x[i] - h;
            let dn = f(&xp);
            xp[i] = x[i];
            (up - dn) / (2.0 * h)
        })
        .collect()
}

/// Textbook BCE in f64: -w (p y log s + (1 - y) log(1 - s)) with s = sigmoid(x),
/// through -log s = softplus(-x) and -log(1 - s) = softplus(x) so that its finite
/// differences stay accurate where s rounds near 1.
fn r_bce(x: f64, y: f64, w: f64, p: f64) -> f64 {
    let softplus = |z: f64| z.max(0.0) + (-z.abs()).exp().ln_1p();
    w * (p * y * softplus(-x) + (1.0 - y) * softplus(x))
}

// ---------------------------------------------------------------- generators

/// Logits in [-scale, scale]; with `ties`, values drawn from a few levels.
fn logits(rng: &mut SplitMix, n: usize, scale: f64, ties: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if ties {
                (rng.uniform(0.0, 4.0).floor() * scale / 4.0) as f32
            } else {
                rng.uniform(-scale, scale) as f32
            }
        })
        .collect()
}

fn probabilities(rng: &mut SplitMix, rows: usize, c: usize) -> Vec<f32> {
    let mut q = Vec::with_capacity(rows * c);
    for _ in 0..rows {
        let raw: Vec<f64> = (0..c)
            .map(|_| {
                if rng.uniform(0.0, 1.0) < 0.3 {
                    0.0
                } else {
                    rng.uniform(0.0, 1.0)
                }
            })
            .collect();
        let s: f64 = raw.iter().sum::<f64>().max(1e-12);
        q.extend(raw.iter().map(|v| (v / s) as f32));
    }
    q
}

fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![
        Just(Reduction::None),
        Just(Reduction::Sum),
        Just(Reduction::Mean)
    ]
}

fn smoothing() -> impl Strategy<Value = f32> {
    prop_oneof![Just(0.0f32), Just(1.0f32), 0.0f32..1.0]
}

fn close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    (got - want).abs() <= rel * want.abs() + abs
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(config())]

    /// logsumexp and its row form within 4 ulp + n eps of the f64 value; softmax
    /// and log_softmax, out of place and in place, within their conditioning.
    #[test]
    fn lse_softmax_match_reference(
        rows in 1usize..5, cols in 1usize..70, seed: u64, scale in prop_oneof![Just(1.0), Just(30.0), Just(1e4)],
        offset in prop_oneof![Just(0.0f64), Just(1e6), Just(-1e30), Just(1e30)], ties: bool,
    ) {
        let mut rng = SplitMix(seed);
        let x: Vec<f32> = logits(&mut rng, rows * cols, scale, ties).iter().map(|&v| (f64::from(v) + offset) as f32).collect();
        for k in kernels() {
            let mut lse = vec![0.0f32; rows];
            k.logsumexp_rows(&x, cols, &mut lse).unwrap();
            let (mut p, mut lp) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
            k.softmax(&x, cols, &mut p).unwrap();
            k.log_softmax(&x, cols, &mut lp).unwrap();
            let (mut p2, mut lp2) = (x.clone(), x.clone());
            k.softmax_in_place(&mut p2, cols).unwrap();
            k.log_softmax_in_place(&mut lp2, cols).unwrap();
            prop_assert_eq!(&p, &p2);
            prop_assert_eq!(&lp, &lp2);
            for r in 0..rows {
                let xr = &x[r * cols..(r + 1) * cols];
                let xr64 = to64(xr);
                let want = r_lse(&xr64);
                let bound = 4.0 * f64::from(ulp_of(want as f32)) + cols as f64 * EPS;
                prop_assert!((f64::from(lse[r]) - want).abs() <= bound,
                    "{} lse {} vs {want} (bound {bound})", k.backend(), lse[r]);
                prop_assert_eq!(k.logsumexp(xr).to_bits(), lse[r].to_bits());
                let (m, l) = r_shifted(&xr64);
                for j in 0..cols {
                    let d = xr64[j] - m; // rounding of x - m in f32 is the input's conditioning
                    let pw = (d - l).exp();
                    let tol_p = pw * ((cols as f64 + 6.0) * EPS + d.abs() * EPS) + 1e-30;
                    prop_assert!((f64::from(p[r * cols + j]) - pw).abs() <= tol_p,
                        "{} softmax[{r},{j}] {} vs {pw}", k.backend(), p[r * cols + j]);
                    let lw = d - l;
                    let tol_l = 4.0 * f64::from(ulp_of(lw as f32)) + (cols as f64 + 2.0) * EPS;
                    prop_assert!((f64::from(lp[r * cols + j]) - lw).abs() <= tol_l,
                        "{} log_softmax[{r},{j}] {} vs {lw}", k.backend(), lp[r * cols + j]);
                }
            }
        }
    }

    /// Cross-entropy with class indices: every option, loss and fused gradient
    /// against the reference; the reference's gradient against finite differences.
    #[test]
    fn cross_entropy_indices_match_reference(
        rows in 1usize..6, c in 1usize..70, seed: u64, weighted: bool,
        ignore in prop_oneof![Just(None), Just(Some(-100i64)), Just(Some(0))],
        eps in smoothing(), reduction in reduction(), ties: bool,
    ) {
        let mut rng = SplitMix(seed);
        let x = logits(&mut rng, rows * c, 20.0, ties);
        let ignore = if c == 1 && ignore == Some(0) { None } else { ignore };
        let mut y: Vec<i64> = (0..rows).map(|_| {
            if rng.uniform(0.0, 1.0) < 0.2 { -100 } else { (rng.next_u64() % c as u64) as i64 }
        }).collect();
        // Row 0 counts, so that the mean's divisor is not 0 (that case is tested alone).
        if y[0] == -100 || Some(y[0]) == ignore { y[0] = (c - 1) as i64; }
        // -100 must be the ignore index to be legal.
        let ignore = if y.contains(&-100) { Some(-100) } else { ignore };
        let w: Vec<f32> = (0..c).map(|_| rng.uniform(0.1, 2.0) as f32).collect();
        let o = Opts { weighted, ignore, eps, reduction };
        check_ce(&x, c, Target::Indices(&y), RTarget::Idx(&y), &w, &o)?;
    }

    /// Batches longer than the kernel's blocks of rows, some rows ignored, against
    /// the reference (its finite differences are checked on the smaller cases above).
    #[test]
    fn cross_entropy_many_rows_match_reference(
        rows in 15usize..50, c in 1usize..40, seed: u64, weighted: bool, soft: bool,
        eps in smoothing(), reduction in reduction(),
    ) {
        let mut rng = SplitMix(seed);
        let x = logits(&mut rng, rows * c, 20.0, false);
        let y: Vec<i64> = (0..rows).map(|r| {
            if r % 3 == 1 { -100 } else { (rng.next_u64() % c as u64) as i64 }
        }).collect();
        let q = probabilities(&mut rng, rows, c);
        let w: Vec<f32> = (0..c).map(|_| rng.uniform(0.1, 2.0) as f32).collect();
        // PyTorch refuses an ignore index with probability targets.
        let o = Opts { weighted, ignore: (!soft).then_some(-100), eps, reduction };
        if soft {
            check_ce_no_fd(&x, c, Target::Probabilities(&q), RTarget::Prob(&q), &w, &o)?;
        } else {
            check_ce_no_fd(&x, c, Target::Indices(&y), RTarget::Idx(&y), &w, &o)?;
        }
    }

    /// The same with probability targets (soft labels, zeros included).
    #[test]
    fn cross_entropy_probabilities_match_reference(
        rows in 1usize..6, c in 1usize..70, seed: u64, weighted: bool,
        eps in smoothing(), reduction in reduction(),
    ) {
        let mut rng = SplitMix(seed);
        let x = logits(&mut rng, rows * c, 20.0, false);
        let q = probabilities(&mut rng, rows, c);
        let w: Vec<f32> = (0..c).map(|_| rng.uniform(0.1, 2.0) as f32).collect();
        let o = Opts { weighted, ignore: None, eps, reduction };
        check_ce(&x, c, Target::Probabilities(&q), RTarget::Prob(&q), &w, &o)?;
    }

    /// Cross-entropy is shift invariant per row, up to the rounding of x + shift.
    #[test]
    fn cross_entropy_shift_invariant(c in 1usize..40, seed: u64, shift in prop_oneof![Just(64.0f32), Just(-1024.0f32), Just(1e6f32)]) {
        let mut rng = SplitMix(seed);
        let x = logits(&mut rng, 3 * c, 8.0, false);
        // Round x to a grid that the shift keeps exact.
        let x: Vec<f32> = x.iter().map(|v| (v * 16.0).round() / 16.0).collect();
        let xs: Vec<f32> = x.iter().map(|v| v + shift).collect();
        let y = [0i64, (c / 2) as i64, (c - 1) as i64];
        for k in kernels() {
            let opts = CrossEntropy::new();
            let a = k.cross_entropy(&x, c, Target::Indices(&y), &opts, &mut []).unwrap();
            let b = k.cross_entropy(&xs, c, Target::Indices(&y), &opts, &mut []).unwrap();
            prop_assert!(close(f64::from(a), f64::from(b), 1e-6, 1e-6), "{} {a} vs {b}", k.backend());
        }
    }

    /// softmax, then log, then nll_loss (the manual route) equals the fused loss, for
    /// every option; nll_loss on exact log-probabilities equals the reference.
    #[test]
    fn nll_loss_of_log_softmax_is_cross_entropy(
        rows in 1usize..6, c in 1usize..40, seed: u64, weighted: bool,
        eps in smoothing(), reduction in reduction(),
    ) {
        let mut rng = SplitMix(seed);
        let x = logits(&mut rng, rows * c, 10.0, false);
        // Row 1 (if any) is ignored; no other row is, so the mean is defined.
        let y: Vec<i64> = (0..rows).map(|r| match (r, (rng.next_u64() % c as u64) as i64) {
            (1, _) => 7,
            (_, 7) => 0,
            (_, y) => y,
        }).collect();
        let w: Vec<f32> = (0..c).map(|_| rng.uniform(0.1, 2.0) as f32).collect();
        let mut opts = CrossEntropy::new().with_ignore_index(7).with_label_smoothing(eps).with_reduction(reduction);
        if weighted { opts = opts.with_weight(&w); }
        let n = if reduction == Reduction::None { rows } else { 0 };
        for k in kernels() {
            let mut lp = vec![0.0f32; x.len()];
            k.log_softmax(&x, c, &mut lp).unwrap();
            let (mut l1, mut l2) = (vec![0.0f32; n], vec![0.0f32; n]);
            let a = k.nll_loss(&lp, c, &y, &opts, &mut l1).unwrap();
            let b = k.cross_entropy(&x, c, Target::Indices(&y), &opts, &mut l2).unwrap();
            prop_assert!(close(f64::from(a), f64::from(b), 2e-6, 2e-6), "{} nll {a} vs ce {b}", k.backend());
            for (u, v) in l1.iter().zip(&l2) {
                prop_assert!(close(f64::from(*u), f64::from(*v), 2e-6, 2e-6));
            }
        }
    }

    /// BCE with logits against the textbook f64 form, its gradient against the
    /// reference's finite differences, with weight and pos_weight in both broadcasts.
    #[test]
    fn bce_with_logits_matches_reference(
        rows in 1usize..5, c in 1usize..20, seed: u64, reduction in reduction(),
        weight in 0u8..3, pos: bool,
    ) {
        let mut rng = SplitMix(seed);
        let n = rows * c;
        let x = logits(&mut rng, n, 15.0, false);
        let y: Vec<f32> = (0..n).map(|_| match rng.next_u64() % 3 { 0 => 0.0, 1 => 1.0, _ => rng.uniform(0.0, 1.0) as f32 }).collect();
        let wl = [0, c, n][weight as usize];
        let w: Vec<f32> = (0..wl).map(|_| rng.uniform(0.0, 2.0) as f32).collect();
        let pw: Vec<f32> = (0..c).map(|_| rng.uniform(0.2, 4.0) as f32).collect();
        let mut opts = BceWithLogits::new().with_reduction(reduction);
        if wl > 0 { opts = opts.with_weight(&w); }
        if pos { opts = opts.with_pos_weight(&pw); }
        let wi = |i: usize| if wl > 0 { f64::from(w[i % wl]) } else { 1.0 };
        let pi = |i: usize| if pos { f64::from(pw[i % c]) } else { 1.0 };
        let d = if reduction == Reduction::Mean { n as f64 } else { 1.0 };
        let (x64, y64) = (to64(&x), to64(&y));
        let total = |x: &[f64]| (0..n).map(|i| r_bce(x[i], y64[i], wi(i), pi(i))).sum::<f64>() / d;
        let want = total(&x64);
        let fd = finite_diff(&x64, total);
        // PyTorch's form subtracts two terms of size about |x|: its rounding error is
        // a few eps of that size, which dominates where the loss is small.
        let mag = |i: usize| wi(i) * pi(i).max(1.0) * (2.0 * x64[i].abs() + 1.0) * 4.0 * EPS;
        let mag_total = (0..n).map(mag).sum::<f64>() / d;
        let nl = if reduction == Reduction::None { n } else { 0 };
        for k in kernels() {
            let (mut l, mut g) = (vec![0.0f32; nl], vec![0.0f32; n]);
            let got = k.binary_cross_entropy_with_logits_with_grad(&x, &y, &opts, &mut l, &mut g).unwrap();
            let fwd = k.binary_cross_entropy_with_logits(&x, &y, &opts, &mut vec![0.0; nl]).unwrap();
            prop_assert_eq!(got.to_bits(), fwd.to_bits());
            prop_assert!(close(f64::from(got), want, 1e-5, 1e-6 + mag_total), "{} bce {got} vs {want}", k.backend());
            for i in 0..n {
                prop_assert!((f64::from(g[i]) - fd[i]).abs() <= 1e-6 * (1.0 + fd[i].abs()) * wi(i).max(1.0) * pi(i).max(1.0),
                    "{} grad[{i}] {} vs {}", k.backend(), g[i], fd[i]);
            }
            for (i, li) in l.iter().enumerate() {
                let want = r_bce(x64[i], y64[i], wi(i), pi(i));
                prop_assert!(close(f64::from(*li), want, 1e-5, 1e-6 + mag(i)), "{} loss[{i}] {li} vs {want}: x {} y {}", k.backend(), x[i], y[i]);
            }
        }
    }

    /// kl_div in every reduction, with and without log targets, against its textbook
    /// definition; entropy and cross-entropy of distributions likewise.
    #[test]
    fn divergences_match_reference(rows in 1usize..5, c in 1usize..30, seed: u64, log_target: bool,
        reduction in prop_oneof![Just(KlReduction::None), Just(KlReduction::Sum), Just(KlReduction::Mean), Just(KlReduction::BatchMean)],
    ) {
        let mut rng = SplitMix(seed);
        let mut p = probabilities(&mut rng, rows, c);
        if log_target {
            // ln 0 = -inf gives exp(-inf) (-inf - x) = NaN, as PyTorch: keep p > 0 here.
            p.iter_mut().for_each(|v| *v = (*v + 0.01) / (1.0 + 0.01 * c as f32));
        }
        let qx = logits(&mut rng, rows * c, 3.0, false);
        let mut input = vec![0.0f32; rows * c];
        mlp_kernels::log_softmax(&qx, c, &mut input).unwrap();
        let target: Vec<f32> = if log_target { p.iter().map(|v| v.ln()).collect() } else { p.clone() };
        let elem: Vec<f64> = (0..p.len()).map(|i| {
            let (pi, a) = (f64::from(p[i]), f64::from(input[i]));
            if pi == 0.0 { 0.0 } else { pi * (pi.ln() - a) }
        }).collect();
        let sum: f64 = elem.iter().sum();
        let want = match reduction {
            KlReduction::None | KlReduction::Sum => sum,
            KlReduction::Mean => sum / p.len() as f64,
            KlReduction::BatchMean => sum / rows as f64,
        };
        for k in kernels() {
            let mut l = vec![0.0f32; if reduction == KlReduction::None { p.len() } else { 0 }];
            let got = k.kl_div(&input, &target, c, log_target, reduction, &mut l).unwrap();
            prop_assert!(close(f64::from(got), want, 1e-5, 1e-6), "{} kl {got} vs {want}", k.backend());
            for (li, ei) in l.iter().zip(&elem) {
                prop_assert!(close(f64::from(*li), *ei, 1e-5, 1e-6));
            }
        }
        let row = &p[..c];
        let h: f64 = row.iter().map(|&v| f64::from(v)).filter(|&v| v > 0.0).map(|v| -v * v.ln()).sum();
        prop_assert!(close(f64::from(entropy(row)), h, 1e-6, 1e-7));
        let q: Vec<f32> = (0..c).map(|j| input[j].exp()).collect();
        let hq: f64 = (0..c).filter(|&j| row[j] > 0.0).map(|j| -f64::from(row[j]) * f64::from(q[j]).ln()).sum();
        prop_assert!(close(f64::from(distribution_cross_entropy(row, &q).unwrap()), hq, 1e-6, 1e-7));
    }
}

fn ulp_of(x: f32) -> f32 {
    let a = x.abs();
    if !a.is_finite() {
        return f32::INFINITY;
    }
    f32::from_bits(a.to_bits() + 1) - a
}

fn check_ce_no_fd(
    x: &[f32],
    c: usize,
    target: Target,
    rt: RTarget,
    w: &[f32],
    o: &Opts,
) -> Result<(), TestCaseError> {
    check_ce_impl(x, c, target, rt, w, o, false)
}

fn check_ce(
    x: &[f32],
    c: usize,
    target: Target,
    rt: RTarget,
    w: &[f32],
    o: &Opts,
) -> Result<(), TestCaseError> {
    check_ce_impl(x, c, target, rt, w, o, true)
}

/// One cross-entropy case on every backend: forward and fused agree bit for bit,
/// loss and row losses match the reference, the fused gradient matches the
/// reference's analytic gradient, which matches its finite differences.
fn check_ce_impl(
    x: &[f32],
    c: usize,
    target: Target,
    rt: RTarget,
    w: &[f32],
    o: &Opts,
    fd_check: bool,
) -> Result<(), TestCaseError> {
    let rows = x.len() / c;
    let wr = if o.weighted { Some(w) } else { None };
    let mut opts = CrossEntropy::new()
        .with_label_smoothing(o.eps)
        .with_reduction(o.reduction);
    if let Some(w) = wr {
        opts = opts.with_weight(w);
    }
    if let Some(i) = o.ignore {
        opts = opts.with_ignore_index(i);
    }
    let x64 = to64(x);
    let (want, want_rows, want_grad) = r_ce(&x64, c, &rt, wr, o);
    // The reference's gradient against its own finite differences.
    let total = |x: &[f64]| r_ce(x, c, &rt, wr, o).0;
    let fd = if fd_check {
        finite_diff(&x64, total)
    } else {
        want_grad.clone()
    };
    let gmax = want_grad.iter().fold(1.0f64, |a, g| a.max(g.abs()));
    for (i, (a, b)) in want_grad.iter().zip(&fd).enumerate() {
        prop_assert!(
            (a - b).abs() <= 1e-7 * gmax,
            "reference grad[{i}] {a} vs fd {b}"
        );
    }
    let nl = if o.reduction == Reduction::None {
        rows
    } else {
        0
    };
    for k in kernels() {
        let (mut l1, mut l2, mut l3) = (vec![0.0f32; nl], vec![0.0f32; nl], vec![0.0f32; rows]);
        let mut g = vec![f32::NAN; x.len()];
        let fwd = k.cross_entropy(x, c, target, &opts, &mut l1).unwrap();
        let fused = k
            .cross_entropy_with_grad(x, c, target, &opts, &mut l2, &mut g)
            .unwrap();
        // A rows-long `losses` is filled whatever the reduction.
        k.cross_entropy(x, c, target, &opts, &mut l3).unwrap();
        prop_assert_eq!(
            fwd.to_bits(),
            fused.to_bits(),
            "{} forward vs fused",
            k.backend()
        );
        prop_assert_eq!(&l1, &l2);
        let tol = |v: f64| 1e-5 * v.abs() + 1e-6 * gmax.max(1.0);
        prop_assert!(
            (f64::from(fwd) - want).abs() <= tol(want),
            "{} loss {fwd} vs {want}",
            k.backend()
        );
        for r in 0..rows {
            prop_assert!(
                (f64::from(l3[r]) - want_rows[r]).abs() <= tol(want_rows[r]) + 1e-5,
                "{} row {r}: {} vs {}",
                k.backend(),
                l3[r],
                want_rows[r]
            );
        }
        for (i, (gv, wv)) in g.iter().zip(&want_grad).enumerate() {
            prop_assert!(
                (f64::from(*gv) - wv).abs() <= 1e-6 * gmax,
                "{} grad[{i}] {gv} vs {wv} (opts {o:?})",
                k.backend()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- fixed cases

#[test]
fn lse_long_rows_within_bound() {
    let mut rng = SplitMix(7);
    for n in [1000usize, 4099, 32000] {
        let x = logits(&mut rng, n, 50.0, false);
        let want = r_lse(&to64(&x));
        for k in kernels() {
            let got = f64::from(k.logsumexp(&x));
            let bound = 4.0 * f64::from(ulp_of(want as f32)) + n as f64 * EPS;
            assert!(
                (got - want).abs() <= bound,
                "{} n={n}: {got} vs {want}",
                k.backend()
            );
        }
    }
}

#[test]
fn lse_special_values() {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    for k in kernels() {
        for n in [1usize, 3, 8, 16, 17, 40] {
            let mut x = vec![0.5f32; n];
            assert!(close(
                f64::from(k.logsumexp(&x)),
                0.5 + (n as f64).ln(),
                0.0,
                1e-6
            ));
            x[n - 1] = inf;
            assert_eq!(k.logsumexp(&x), inf, "{} +inf n={n}", k.backend());
            x[0] = f32::NEG_INFINITY;
            if n > 1 {
                assert_eq!(k.logsumexp(&x), inf);
            }
            x[n / 2] = nan;
            assert!(
                k.logsumexp(&x).is_nan(),
                "{} NaN with inf n={n}",
                k.backend()
            );
            let all = vec![f32::NEG_INFINITY; n];
            assert_eq!(
                k.logsumexp(&all),
                f32::NEG_INFINITY,
                "{} all -inf n={n}",
                k.backend()
            );
            let mut y = vec![1.0f32; n];
            y[n - 1] = nan;
            assert!(k.logsumexp(&y).is_nan(), "{} NaN n={n}", k.backend());
            // Huge rows stay finite and exact.
            let big = vec![1e30f32; n];
            assert_eq!(k.logsumexp(&big), 1e30);
            let mut mixed = vec![-1e30f32; n];
            mixed[0] = 3e38;
            assert_eq!(k.logsumexp(&mixed), 3e38);
            assert_eq!(k.logsumexp(&[f32::MAX; 4]), f32::MAX);
        }
        assert_eq!(k.logsumexp(&[]), f32::NEG_INFINITY);
        let mut out = [0.0f32; 0];
        k.logsumexp_rows(&[], 3, &mut out).unwrap();
    }
}

#[test]
fn softmax_special_values() {
    let (inf, nan, ninf) = (f32::INFINITY, f32::NAN, f32::NEG_INFINITY);
    for k in kernels() {
        for n in [3usize, 4, 16, 17, 33] {
            let mut rows = vec![];
            let mut r = vec![0.0f32; n];
            r[1] = inf;
            rows.push((r.clone(), "inf"));
            rows.push((vec![ninf; n], "all -inf"));
            r[1] = nan;
            rows.push((r, "nan"));
            for (x, what) in rows {
                let (mut p, mut lp) = (vec![0.0f32; n], vec![0.0f32; n]);
                k.softmax(&x, n, &mut p).unwrap();
                k.log_softmax(&x, n, &mut lp).unwrap();
                assert!(
                    p.iter().chain(&lp).all(|v| v.is_nan()),
                    "{} {what} n={n}: {p:?} {lp:?}",
                    k.backend()
                );
            }
            // -inf masks give 0 and -inf; huge rows stay exact.
            let mut x = vec![1e30f32; n];
            x[0] = ninf;
            x[1] = -1e30;
            let (mut p, mut lp) = (vec![0.0f32; n], vec![0.0f32; n]);
            k.softmax(&x, n, &mut p).unwrap();
            k.log_softmax(&x, n, &mut lp).unwrap();
            assert_eq!((p[0], p[1], lp[0]), (0.0, 0.0, ninf));
            assert!(close(f64::from(lp[1]), -2e30, 1e-7, 0.0), "{}", lp[1]);
            let m = (n - 2) as f64;
            for j in 2..n {
                assert!(close(f64::from(p[j]), 1.0 / m, 4.0 * EPS, 0.0));
                assert!(
                    close(f64::from(lp[j]), -m.ln(), 0.0, 4.0 * EPS),
                    "{}",
                    lp[j]
                );
            }
        }
    }
}

/// The numerics table of DESIGN.md and PyTorch's behaviour, for the fused call.
#[test]
fn cross_entropy_special_values() {
    let (inf, nan, ninf) = (f32::INFINITY, f32::NAN, f32::NEG_INFINITY);
    let none = CrossEntropy::new().with_reduction(Reduction::None);
    for k in kernels() {
        for c in [3usize, 16, 19] {
            let run = |x: &[f32], t: Target, o: &CrossEntropy| {
                let rows = x.len() / c;
                let mut l = vec![0.0f32; rows];
                let mut g = vec![0.0f32; x.len()];
                let r = k
                    .cross_entropy_with_grad(x, c, t, o, &mut l, &mut g)
                    .unwrap();
                (r, l, g)
            };
            // Huge finite logits: finite and exact.
            let mut x = vec![-1e30f32; c];
            x[0] = 1e30;
            x[2] = 1e30;
            let (loss, _, g) = run(&x, Target::Indices(&[0]), &none);
            assert!(
                close(f64::from(loss), 2f64.ln(), 2.0 * EPS, 0.0),
                "{} {loss}",
                k.backend()
            );
            assert_eq!((g[0], g[1], g[2]), (-0.5, 0.0, 0.5));
            // +inf, all -inf, NaN: NaN loss and NaN gradient row.
            for (pos, v) in [(1, inf), (usize::MAX, ninf), (2, nan)] {
                let mut x = vec![0.25f32; c];
                if pos == usize::MAX {
                    x.fill(v)
                } else {
                    x[pos] = v
                }
                let (loss, _, g) = run(&x, Target::Indices(&[0]), &none);
                assert!(
                    loss.is_nan() && g.iter().all(|v| v.is_nan()),
                    "{} {v}: {loss} {g:?}",
                    k.backend()
                );
            }
            // A target class at -inf: +inf loss, finite gradient p - onehot.
            let mut x = vec![0.0f32; c];
            x[0] = ninf;
            let (loss, _, g) = run(&x, Target::Indices(&[0]), &none);
            assert_eq!(loss, inf);
            assert_eq!(g[0], -1.0);
            assert!(close(f64::from(g[1]), 1.0 / (c - 1) as f64, 2.0 * EPS, 0.0));
            // ... with label smoothing the masked class makes the loss +inf too.
            let (loss, _, g) = run(&x, Target::Indices(&[1]), &none.with_label_smoothing(0.1));
            assert_eq!(loss, inf);
            assert!(close(f64::from(g[0]), -0.1 / c as f64, 2.0 * EPS, 0.0));
            // Soft targets with 0 probability on a -inf logit: NaN loss (0 * inf, as
            // PyTorch), finite gradient.
            let mut q = vec![1.0 / (c - 1) as f32; c];
            q[0] = 0.0;
            let (loss, _, g) = run(&x, Target::Probabilities(&q), &none);
            assert!(loss.is_nan());
            assert!(g.iter().all(|v| v.is_finite()) && g[0] == 0.0, "{g:?}");
            // A class weight of 0 on a -inf logit under smoothing: NaN as in PyTorch.
            let mut w = vec![1.0f32; c];
            w[0] = 0.0;
            let (loss, _, _) = run(
                &x,
                Target::Indices(&[1]),
                &none.with_label_smoothing(0.1).with_weight(&w),
            );
            assert!(loss.is_nan());
        }
        // Mean over no rows, or over zero weights with a zero weighted loss, is NaN; the
        // gradient of an all-ignored batch is 0, of a zero-weight batch NaN (as PyTorch).
        let x = [1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0];
        let mean = CrossEntropy::new().with_ignore_index(-1);
        let mut g = [1.0f32; 6];
        let l = k
            .cross_entropy_with_grad(&x, 3, Target::Indices(&[-1, -1]), &mean, &mut [], &mut g)
            .unwrap();
        assert!(l.is_nan() && g == [0.0; 6]);
        let w = [0.0f32, 1.0, 1.0];
        let l = k
            .cross_entropy_with_grad(
                &x,
                3,
                Target::Indices(&[0, 0]),
                &mean.with_weight(&w),
                &mut [],
                &mut g,
            )
            .unwrap();
        assert!(l.is_nan() && g.iter().all(|v| v.is_nan()));
        assert!(
            k.cross_entropy(&[], 3, Target::Indices(&[]), &mean, &mut [])
                .unwrap()
                .is_nan()
        );
        assert!(
            k.cross_entropy(
                &[],
                3,
                Target::Probabilities(&[]),
                &CrossEntropy::new(),
                &mut []
            )
            .unwrap()
            .is_nan()
        );
        let sum = mean.with_reduction(Reduction::Sum);
        assert_eq!(
            k.cross_entropy(&[], 3, Target::Indices(&[]), &sum, &mut [])
                .unwrap(),
            0.0
        );
        // An ignored row is never read: loss 0 and gradient exactly 0 even when its
        // logits are NaN (PyTorch's log_softmax backward would give NaN there).
        let x = [nan, 0.0, inf, 1.0, 2.0, 3.0];
        let mut l = [9.0f32; 2];
        let loss = k
            .cross_entropy_with_grad(
                &x,
                3,
                Target::Indices(&[-1, 2]),
                &mean.with_reduction(Reduction::None),
                &mut l,
                &mut g,
            )
            .unwrap();
        assert_eq!(&g[..3], &[0.0; 3]);
        assert_eq!(l[0], 0.0);
        assert!(loss.is_finite() && g[3..].iter().all(|v| v.is_finite()));
    }
}

#[test]
fn cross_entropy_small_cases_by_hand() {
    for k in kernels() {
        // Two classes, uniform: loss ln 2, gradient (0.5 - 1, 0.5).
        let mut g = [0.0f32; 2];
        let l = k
            .cross_entropy_with_grad(
                &[3.0, 3.0],
                2,
                Target::Indices(&[0]),
                &CrossEntropy::new(),
                &mut [],
                &mut g,
            )
            .unwrap();
        assert!(close(f64::from(l), 2f64.ln(), 2.0 * EPS, 0.0));
        assert_eq!(g, [-0.5, 0.5]);
        // One class: loss 0, gradient 0 (softmax is 1).
        let l = k
            .cross_entropy_with_grad(
                &[5.0],
                1,
                Target::Indices(&[0]),
                &CrossEntropy::new(),
                &mut [],
                &mut g[..1],
            )
            .unwrap();
        assert_eq!((l, g[0]), (0.0, 0.0));
        // ignore_index may be a valid class: rows of that class are skipped.
        let x = [0.0f32, 1.0, 2.0, 0.0, 1.0, 2.0];
        let o = CrossEntropy::new().with_ignore_index(1);
        let a = k
            .cross_entropy(&x, 3, Target::Indices(&[1, 2]), &o, &mut [])
            .unwrap();
        let b = k
            .cross_entropy(
                &x[3..],
                3,
                Target::Indices(&[2]),
                &CrossEntropy::new(),
                &mut [],
            )
            .unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn error_paths() {
    use mlp_kernels::Error;
    let x = [0.0f32; 6];
    let mut g = [7.0f32; 6];
    let o = CrossEntropy::new();
    for k in kernels() {
        let ce = |x: &[f32], c, t: Target, o: &CrossEntropy, l: &mut [f32], g: &mut [f32]| {
            k.cross_entropy_with_grad(x, c, t, o, l, g)
        };
        let idx = Target::Indices(&[0, 1]);
        assert!(matches!(
            ce(&x, 0, idx, &o, &mut [], &mut g),
            Err(Error::InvalidParameter {
                name: "classes",
                ..
            })
        ));
        assert!(matches!(
            ce(&x, 4, idx, &o, &mut [], &mut g),
            Err(Error::ShapeMismatch { what: "logits", .. })
        ));
        assert!(matches!(
            ce(&x, 3, Target::Indices(&[0]), &o, &mut [], &mut g),
            Err(Error::ShapeMismatch { what: "target", .. })
        ));
        assert!(matches!(
            ce(&x, 3, Target::Probabilities(&[0.0; 5]), &o, &mut [], &mut g),
            Err(Error::ShapeMismatch { what: "target", .. })
        ));
        assert!(matches!(
            ce(&x, 3, idx, &o.with_weight(&[1.0; 2]), &mut [], &mut g),
            Err(Error::ShapeMismatch { what: "weight", .. })
        ));
        assert!(matches!(
            ce(&x, 3, idx, &o, &mut [], &mut g[..5]),
            Err(Error::ShapeMismatch { what: "grad", .. })
        ));
        assert!(matches!(
            ce(&x, 3, idx, &o, &mut [0.0], &mut g),
            Err(Error::ShapeMismatch { what: "losses", .. })
        ));
        let none = o.with_reduction(Reduction::None);
        assert!(matches!(
            ce(&x, 3, idx, &none, &mut [], &mut g),
            Err(Error::ShapeMismatch { what: "losses", .. })
        ));
        for bad in [-0.1f32, 1.1, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                ce(&x, 3, idx, &o.with_label_smoothing(bad), &mut [], &mut g),
                Err(Error::InvalidParameter {
                    name: "label_smoothing",
                    ..
                })
            ));
        }
        for (t, row) in [
            ([0i64, 3], 1usize),
            ([-1, 0], 0),
            ([-100, 1], 0),
            ([i64::MAX, 0], 0),
            ([i64::MIN, 0], 0),
        ] {
            let e = ce(&x, 3, Target::Indices(&t), &o, &mut [], &mut g);
            assert_eq!(
                e,
                Err(Error::ClassOutOfRange {
                    row,
                    class: t[row],
                    classes: 3
                })
            );
            assert!(k.nll_loss(&x, 3, &t, &o, &mut []).is_err());
        }
        assert!(
            ce(
                &x,
                3,
                Target::Indices(&[-100, 1]),
                &o.with_ignore_index(-100),
                &mut [],
                &mut g
            )
            .is_ok()
        );
        g = [7.0; 6];
        // Nothing was written by the failing calls above.
        assert!(ce(&x, 3, Target::Indices(&[0, 5]), &o, &mut [], &mut g).is_err());
        assert_eq!(g, [7.0; 6]);
        assert!(k.cross_entropy(&x, 4, idx, &o, &mut []).is_err());
        // Row kernels.
        let mut out = [0.0f32; 6];
        assert!(matches!(
            k.logsumexp_rows(&x, 0, &mut out[..2]),
            Err(Error::InvalidParameter { name: "cols", .. })
        ));
        assert!(matches!(
            k.logsumexp_rows(&x, 3, &mut out[..3]),
            Err(Error::ShapeMismatch { what: "out", .. })
        ));
        assert!(matches!(
            k.logsumexp_rows(&x, 4, &mut out[..1]),
            Err(Error::ShapeMismatch { what: "x", .. })
        ));
        assert!(k.softmax(&x, 0, &mut out).is_err());
        assert!(k.softmax(&x, 3, &mut out[..5]).is_err());
        assert!(k.softmax(&x, 4, &mut out).is_err());
        assert!(k.softmax_in_place(&mut out, 4).is_err());
        assert!(k.log_softmax(&x, 3, &mut out[..3]).is_err());
        assert!(k.log_softmax(&x, 0, &mut out).is_err());
        assert!(k.log_softmax_in_place(&mut out, 5).is_err());
        // BCE.
        let b = BceWithLogits::new();
        assert!(
            k.binary_cross_entropy_with_logits(&x, &x[..5], &b, &mut [])
                .is_err()
        );
        assert!(
            k.binary_cross_entropy_with_logits(&x, &x, &b.with_weight(&[1.0; 4]), &mut [])
                .is_err()
        );
        assert!(
            k.binary_cross_entropy_with_logits(&x, &x, &b.with_weight(&[]), &mut [])
                .is_err()
        );
        assert!(
            k.binary_cross_entropy_with_logits(&x, &x, &b.with_pos_weight(&[1.0; 5]), &mut [])
                .is_err()
        );
        assert!(
            k.binary_cross_entropy_with_logits(&x, &x, &b.with_reduction(Reduction::None), &mut [])
                .is_err()
        );
        assert!(
            k.binary_cross_entropy_with_logits(&x, &x, &b, &mut [0.0; 2])
                .is_err()
        );
        assert!(
            k.binary_cross_entropy_with_logits_with_grad(&x, &x, &b, &mut [], &mut g[..2])
                .is_err()
        );
        assert!(
            k.binary_cross_entropy_with_logits(
                &x,
                &x,
                &b.with_weight(&[1.0; 3]).with_pos_weight(&[2.0; 2]),
                &mut []
            )
            .is_ok()
        );
        // KL and distributions.
        assert!(
            k.kl_div(&x, &x, 0, false, KlReduction::Sum, &mut [])
                .is_err()
        );
        assert!(
            k.kl_div(&x, &x, 4, false, KlReduction::Sum, &mut [])
                .is_err()
        );
        assert!(
            k.kl_div(&x, &x[..3], 3, false, KlReduction::Sum, &mut [])
                .is_err()
        );
        assert!(
            k.kl_div(&x, &x, 3, false, KlReduction::None, &mut [])
                .is_err()
        );
        assert!(
            k.kl_div(&x, &x, 3, false, KlReduction::Sum, &mut [0.0])
                .is_err()
        );
        assert!(k.distribution_cross_entropy(&x, &x[..2]).is_err());
    }
}

#[test]
fn bce_and_divergence_special_values() {
    let (inf, nan, ninf) = (f32::INFINITY, f32::NAN, f32::NEG_INFINITY);
    let none = BceWithLogits::new().with_reduction(Reduction::None);
    for k in kernels() {
        let x = [inf, ninf, inf, ninf, 1e30, -1e30, 100.0, -100.0];
        let y = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        let (mut l, mut g) = ([0.0f32; 8], [0.0f32; 8]);
        k.binary_cross_entropy_with_logits_with_grad(&x, &y, &none, &mut l, &mut g)
            .unwrap();
        // PyTorch's form: 0 * inf = NaN where the logit is right and infinite.
        assert!(l[0].is_nan() && l[1].is_nan() && l[3].is_nan());
        assert_eq!((l[2], l[4], l[5]), (inf, 0.0, 0.0));
        assert_eq!(&g[..6], &[0.0, 0.0, 1.0, -1.0, 0.0, 0.0]);
        assert_eq!((l[6], l[7]), (100.0, 100.0));
        assert!(
            k.binary_cross_entropy_with_logits(&[nan], &[1.0], &none, &mut [0.0])
                .unwrap()
                .is_nan()
        );
    }
    assert_eq!(entropy(&[0.0, 1.0]), 0.0);
    assert_eq!(entropy(&[-0.5, 1.0]), ninf);
    assert!(entropy(&[nan, 1.0]).is_nan());
    assert_eq!(entropy(&[]), 0.0);
    assert_eq!(
        distribution_cross_entropy(&[0.0, 1.0], &[0.0, 1.0]).unwrap(),
        0.0
    );
    assert_eq!(
        distribution_cross_entropy(&[0.5, 0.5], &[0.0, 1.0]).unwrap(),
        inf
    );
    assert!(
        distribution_cross_entropy(&[0.0, 1.0], &[nan, 1.0])
            .unwrap()
            .is_nan()
    );
    let k = Kernels::detect();
    let mut l = [0.0f32; 2];
    // target 0 at input -inf: 0 - 0 * (-inf) = NaN (as PyTorch); target 0 elsewhere: 0.
    k.kl_div(
        &[ninf, -1.0],
        &[0.0, 0.0],
        2,
        false,
        KlReduction::None,
        &mut l,
    )
    .unwrap();
    assert!(l[0].is_nan() && l[1] == 0.0);
    // log_target: exp(-inf) (-inf - 0) = 0 * -inf = NaN, as PyTorch.
    k.kl_div(
        &[0.0, -1.0],
        &[ninf, 0.0],
        2,
        true,
        KlReduction::None,
        &mut l,
    )
    .unwrap();
    assert!(l[0].is_nan());
    assert!(close(f64::from(l[1]), 1.0, 0.0, 1e-7));
}

#[test]
fn an_ignore_index_with_probability_targets_is_refused_as_pytorch_does() {
    for k in kernels() {
        let x = [0.5f32, 1.0, -1.0, 2.0];
        let q = [0.25f32, 0.75, 1.0, 0.0];
        let mut g = [7.0f32; 4];
        let o = CrossEntropy::new().with_ignore_index(-100);
        let r = k.cross_entropy_with_grad(&x, 2, Target::Probabilities(&q), &o, &mut [], &mut g);
        assert!(
            matches!(
                r,
                Err(mlp_kernels::Error::InvalidParameter {
                    name: "ignore_index",
                    ..
                })
            ),
            "{r:?}"
        );
        assert_eq!(g, [7.0; 4], "written before the refusal");
        assert!(
            k.cross_entropy(&x, 2, Target::Probabilities(&q), &o, &mut [])
                .is_err()
        );
    }
}

#[test]
fn a_mean_over_weights_that_sum_to_zero_is_infinite_as_pytorch() {
    // Weights 1 and -1 on the two targets: the divisor is 0 and the weighted loss is
    // not, so PyTorch's float32 mean is +-inf (its smoothing-free path is nll_loss).
    let x = [2.0f32, 0.0, 0.0, 0.0, 0.0, 3.0];
    let w = [1.0f32, -1.0, 0.5];
    let y = [0i64, 1];
    // Reference: sum of w_y * (lse - x_y) in f64.
    let lse = |r: &[f32]| r.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
    let nll = (lse(&x[..3]) - 2.0) - (lse(&x[3..]) - 0.0);
    assert!(nll != 0.0);
    for k in kernels() {
        let o = CrossEntropy::new().with_weight(&w);
        let loss = k
            .cross_entropy(&x, 3, Target::Indices(&y), &o, &mut [])
            .unwrap();
        assert_eq!(loss, f32::INFINITY.copysign(nll as f32), "{}", k.backend());
        // A loss of exactly 0 over zero weights stays 0 / 0 = NaN.
        let zero = [0.0f32, 0.5];
        let o = CrossEntropy::new().with_weight(&zero);
        let loss = k
            .cross_entropy(&x[..4], 2, Target::Indices(&[0, 0]), &o, &mut [])
            .unwrap();
        assert!(loss.is_nan(), "{}: {loss}", k.backend());
    }
}

#[test]
fn class_weights_whose_f32_sum_overflows_give_a_loss_and_gradient_that_agree() {
    // PyTorch's float32 weight sum is inf here: its mean loss is 0 (NaN with label
    // smoothing) while its gradient is finite. The crate returns the exact mean, which
    // is what its gradient is the derivative of.
    let x = [2.0f32, 0.0, -1.0, 0.5, 1.5, 0.0];
    let w = [3e38f32, 3e38, 3e38];
    let y = [0i64, 1];
    for eps in [0.0f32, 0.1] {
        // f64 reference: t_c = (1 - e) w_y [c = y] + e/C w_c, mean over sum w_y.
        let (mut loss, mut grad, wsum) = (0.0f64, [0.0f64; 6], 6e38f64);
        for r in 0..2 {
            let row = &x[r * 3..r * 3 + 3];
            let lse = row.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
            for c in 0..3 {
                let t = f64::from(w[c]) * (f64::from(eps) / 3.0)
                    + if c as i64 == y[r] {
                        (1.0 - f64::from(eps)) * f64::from(w[c])
                    } else {
                        0.0
                    };
                let tsum = (1.0 - f64::from(eps)) * f64::from(w[y[r] as usize])
                    + f64::from(eps) / 3.0 * w.iter().map(|&v| f64::from(v)).sum::<f64>();
                loss += t * (lse - f64::from(row[c])) / wsum;
                grad[r * 3 + c] = ((f64::from(row[c]) - lse).exp() * tsum - t) / wsum;
            }
        }
        for k in kernels() {
            let o = CrossEntropy::new()
                .with_weight(&w)
                .with_label_smoothing(eps);
            let mut g = [0.0f32; 6];
            let l = k
                .cross_entropy_with_grad(&x, 3, Target::Indices(&y), &o, &mut [], &mut g)
                .unwrap();
            assert!(
                (f64::from(l) - loss).abs() < 1e-5 * loss.abs(),
                "{}: {l} vs {loss}",
                k.backend()
            );
            for (a, b) in g.iter().zip(&grad) {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-6,
                    "{}: {g:?} vs {grad:?}",
                    k.backend()
                );
            }
        }
    }
}

#[test]
fn subnormal_class_weights_keep_the_smoothing_term_and_a_finite_mean_gradient() {
    // PyTorch's float32 run multiplies subnormal weights as they are: the smoothing
    // term rounds away and 1 / (weight sum) overflows, so its mean gradient is inf or
    // NaN. The crate scales tiny weights by a power of two and undoes it on each
    // loss: every answer here is the f64 definition's, rounded once (or nearly).
    let x = [2.0f32, 0.0, -1.0, 0.5, 1.5, 0.0, -0.25, 3.0, 1.0];
    let q = [0.2f32, 0.5, 0.3, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
    let y = [0i64, 1, 2];
    let x64 = to64(&x);
    let tiny = f32::from_bits(1); // 2^-149, the smallest subnormal
    let weight_sets: [[f32; 3]; 4] = [
        [1e-40, 3e-41, 2e-39],
        [tiny, tiny, tiny],
        [tiny, 2.0 * tiny, 1e-44],
        [1e-30, 4e-25, 2e-20], // normal, below the scaling threshold
    ];
    // Within a few f32 roundings of the exact value; subnormal answers (Sum, None)
    // also within a few of the smallest subnormal's steps.
    let near = |got: f32, want: f64| {
        (f64::from(got) - want).abs() <= 1e-5 * want.abs() + 4.0 * f64::from(tiny)
    };
    for w in &weight_sets {
        for eps in [0.0f32, 0.1, 1.0] {
            for reduction in [Reduction::None, Reduction::Sum, Reduction::Mean] {
                for prob in [false, true] {
                    let o = Opts {
                        weighted: true,
                        ignore: None,
                        eps,
                        reduction,
                    };
                    let rt = if prob {
                        RTarget::Prob(&q)
                    } else {
                        RTarget::Idx(&y)
                    };
                    let (want, want_rows, want_grad) = r_ce(&x64, 3, &rt, Some(w), &o);
                    let target = if prob {
                        Target::Probabilities(&q)
                    } else {
                        Target::Indices(&y)
                    };
                    let ce = CrossEntropy::new()
                        .with_weight(w)
                        .with_label_smoothing(eps)
                        .with_reduction(reduction);
                    for k in kernels() {
                        let what = format!(
                            "{} w={w:?} eps={eps} {reduction:?} prob={prob}",
                            k.backend()
                        );
                        let (mut rows, mut g) = ([0.0f32; 3], [0.0f32; 9]);
                        let loss = k
                            .cross_entropy_with_grad(&x, 3, target, &ce, &mut rows, &mut g)
                            .unwrap();
                        let loss_only = k.cross_entropy(&x, 3, target, &ce, &mut []);
                        if reduction != Reduction::None {
                            assert!(near(loss, want), "{what}: loss {loss} vs {want}");
                            assert_eq!(loss_only, Ok(loss), "{what}");
                        }
                        for (a, b) in rows.iter().zip(&want_rows) {
                            assert!(near(*a, *b), "{what}: rows {rows:?} vs {want_rows:?}");
                        }
                        for (a, b) in g.iter().zip(&want_grad) {
                            assert!(near(*a, *b), "{what}: grad {g:?} vs {want_grad:?}");
                        }
                        if !prob {
                            // nll_loss of the exact log-probabilities gives the same loss.
                            let lp: Vec<f32> = x64
                                .chunks(3)
                                .flat_map(|r| {
                                    let (m, l) = r_shifted(r);
                                    r.iter().map(move |&v| ((v - m) - l) as f32)
                                })
                                .collect();
                            let nll = k.nll_loss(&lp, 3, &y, &ce, &mut [0.0; 3]).unwrap();
                            if reduction != Reduction::None {
                                assert!(near(nll, want), "{what}: nll_loss {nll} vs {want}");
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn subnormal_class_weights_with_huge_logit_gaps_keep_a_finite_loss() {
    // The weight scale stops at 2^-60: a scaled weight times a loss near f32's largest
    // stays finite, so the promise "finite logits give a finite loss" holds here too.
    let x = [1e38f32, -1e38, 0.0, -1e38, 1e38, 5.0];
    let w = [1e-40f32, 3e-41, 2e-39];
    let y = [1i64, 0];
    for eps in [0.0f32, 0.1] {
        for reduction in [Reduction::Sum, Reduction::Mean] {
            let o = Opts {
                weighted: true,
                ignore: None,
                eps,
                reduction,
            };
            let (want, _, _) = r_ce(&to64(&x), 3, &RTarget::Idx(&y), Some(&w), &o);
            let ce = CrossEntropy::new()
                .with_weight(&w)
                .with_label_smoothing(eps)
                .with_reduction(reduction);
            for k in kernels() {
                let mut g = [0.0f32; 6];
                let loss = k
                    .cross_entropy_with_grad(&x, 3, Target::Indices(&y), &ce, &mut [], &mut g)
                    .unwrap();
                let what = format!("{} eps={eps} {reduction:?}", k.backend());
                assert!(loss.is_finite(), "{what}: {loss}");
                assert!(
                    (f64::from(loss) - want).abs() <= 1e-5 * want.abs(),
                    "{what}: {loss} vs {want}"
                );
                assert!(g.iter().all(|v| v.is_finite()), "{what}: {g:?}");
            }
        }
    }
}
