//! The threaded kernels (element-wise, and the cross-entropy) give the single-threaded
//! kernels' bits, for lengths around the per-thread minimum and odd tails.

mod common;

use common::{SplitMix, kernels};
use mlp_kernels::Sgd;

fn random(n: usize, rng: &mut SplitMix) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-3.0, 3.0) as f32).collect()
}

const LENGTHS: [usize; 5] = [0, 7, 16_384, 40_000, 157_001];

#[test]
fn threaded_sgd_is_the_single_threaded_step() {
    if !common::threads_available("threaded_sgd_is_the_single_threaded_step") {
        return;
    }
    let mut rng = SplitMix(5);
    let opts = [
        Sgd::new(0.01),
        Sgd::new(0.1).with_momentum(0.9).with_weight_decay(1e-4),
        Sgd::new(0.1).with_momentum(0.5).with_nesterov(true),
    ];
    for k in kernels() {
        for &n in &LENGTHS {
            for opt in &opts {
                let (w0, g) = (random(n, &mut rng), random(n, &mut rng));
                let (mut w1, mut w2) = (w0.clone(), w0.clone());
                let (mut m1, mut m2) = (vec![0.0; n], vec![0.0; n]);
                for step in 0..3 {
                    k.sgd_step(opt, &mut w1, &g, &mut m1, step == 0).unwrap();
                    k.sgd_step_threaded(2, opt, &mut w2, &g, &mut m2, step == 0)
                        .unwrap();
                }
                assert!(
                    w1.iter().zip(&w2).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{} n {n} {opt:?}",
                    k.backend()
                );
                assert!(m1.iter().zip(&m2).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
        // Lengths are checked before anything is written.
        let mut w = vec![1.0f32; 20_000];
        assert!(
            k.sgd_step_threaded(2, &opts[1], &mut w, &[0.0; 19_999], &mut [], false)
                .is_err()
        );
        assert!(w.iter().all(|&x| x == 1.0));
    }
}

#[test]
fn threaded_relu_is_the_single_threaded_relu() {
    if !common::threads_available("threaded_relu_is_the_single_threaded_relu") {
        return;
    }
    let mut rng = SplitMix(6);
    for k in kernels() {
        for &n in &LENGTHS {
            let x = random(n, &mut rng);
            let (mut a, mut b) = (x.clone(), x.clone());
            k.relu_in_place(&mut a);
            k.relu_in_place_threaded(3, &mut b);
            assert_eq!(a, b, "{} n {n}", k.backend());
            let g = random(n, &mut rng);
            let (mut ga, mut gb) = (g.clone(), g.clone());
            k.relu_backward_in_place(&a, &mut ga).unwrap();
            k.relu_backward_in_place_threaded(0, &a, &mut gb).unwrap();
            assert_eq!(ga, gb, "{} n {n}", k.backend());
        }
        assert!(
            k.relu_backward_in_place_threaded(2, &[0.0; 3], &mut [0.0; 4])
                .is_err()
        );
    }
}

#[test]
fn threaded_cross_entropy_is_the_single_threaded_call() {
    use mlp_kernels::{CrossEntropy, Reduction, Target};
    if !common::threads_available("threaded_cross_entropy_is_the_single_threaded_call") {
        return;
    }
    let mut rng = SplitMix(7);
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    // Shapes below and above the per-thread minimum (16K logits), rows that do and do
    // not divide into the 16 chunks of the summation order.
    for (rows, classes) in [
        (0, 10),
        (1, 10),
        (200, 10),
        (33, 1000),
        (64, 3000),
        (203, 170),
    ] {
        let n = rows * classes;
        let x = random(n, &mut rng);
        let idx: Vec<i64> = (0..rows)
            .map(|_| (rng.next_u64() % classes as u64) as i64)
            .collect();
        // Every fifth row ignored where the options ask for it.
        let idx_ignored: Vec<i64> = idx
            .iter()
            .enumerate()
            .map(|(r, &c)| if r % 5 == 0 { -100 } else { c })
            .collect();
        let probs: Vec<f32> = (0..n)
            .map(|_| rng.uniform(0.0, 1.0) as f32 / classes as f32)
            .collect();
        let w: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 2.0) as f32).collect();
        // An infinite class weight with smoothing takes the f64 path for the losses.
        let mut w_inf = w.clone();
        w_inf[classes / 2] = f32::INFINITY;
        let base = [
            CrossEntropy::new(),
            CrossEntropy::new()
                .with_label_smoothing(0.1)
                .with_weight(&w),
            CrossEntropy::new()
                .with_label_smoothing(0.1)
                .with_weight(&w_inf),
            CrossEntropy::new().with_reduction(Reduction::Sum),
            CrossEntropy::new().with_reduction(Reduction::None),
        ];
        for k in kernels() {
            for opts in &base {
                let targets = [
                    (Target::Indices(&idx), *opts),
                    (Target::Indices(&idx_ignored), opts.with_ignore_index(-100)),
                    (Target::Probabilities(&probs), *opts),
                ];
                for (t, o) in &targets {
                    let (mut g1, mut g2) = (vec![0.0; n], vec![1.0; n]);
                    let (mut l1, mut l2) = (vec![0.0; rows], vec![1.0; rows]);
                    let one = k
                        .cross_entropy_with_grad(&x, classes, *t, o, &mut l1, &mut g1)
                        .unwrap();
                    let two = k
                        .cross_entropy_with_grad_threaded(2, &x, classes, *t, o, &mut l2, &mut g2)
                        .unwrap();
                    let ctx = format!("{} [{rows}, {classes}] {o:?}", k.backend());
                    assert_eq!(one.to_bits(), two.to_bits(), "{ctx}: {one} {two}");
                    assert!(same(&g1, &g2) && same(&l1, &l2), "{ctx}");
                    let fwd = k
                        .cross_entropy_threaded(0, &x, classes, *t, o, &mut l2)
                        .unwrap();
                    assert_eq!(one.to_bits(), fwd.to_bits(), "{ctx} forward");
                    // Without per-row losses (allowed but for Reduction::None).
                    if o.reduction != Reduction::None {
                        let three = k
                            .cross_entropy_with_grad_threaded(
                                2,
                                &x,
                                classes,
                                *t,
                                o,
                                &mut [],
                                &mut g2,
                            )
                            .unwrap();
                        assert_eq!(one.to_bits(), three.to_bits(), "{ctx} no losses");
                        assert!(same(&g1, &g2), "{ctx} no losses");
                    }
                }
            }
            // A row holding NaN: NaN either way (its sign may differ, as documented).
            if rows > 1 {
                let mut xn = x.clone();
                xn[classes * (rows / 2) + 1] = f32::NAN;
                let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
                let t = Target::Indices(&idx);
                let one = k
                    .cross_entropy_with_grad(&xn, classes, t, &base[0], &mut [], &mut g1)
                    .unwrap();
                let two = k
                    .cross_entropy_with_grad_threaded(
                        2,
                        &xn,
                        classes,
                        t,
                        &base[0],
                        &mut [],
                        &mut g2,
                    )
                    .unwrap();
                assert!(one.is_nan() && two.is_nan());
                let row = classes * (rows / 2)..classes * (rows / 2 + 1);
                assert!(
                    g1[row.clone()].iter().all(|v| v.is_nan())
                        && g2[row].iter().all(|v| v.is_nan())
                );
            }
            // Errors before anything is written.
            let mut g = vec![1.0f32; n + 1];
            let bad = k.cross_entropy_with_grad_threaded(
                2,
                &x,
                classes,
                Target::Indices(&idx),
                &base[0],
                &mut [],
                &mut g,
            );
            assert!(bad.is_err() && g.iter().all(|&v| v == 1.0));
        }
    }
}
