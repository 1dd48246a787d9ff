//! The threaded element-wise kernels give the single-threaded kernels' bits, for
//! lengths around the per-thread minimum and odd tails.

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
