//! ReLU, its gradient and the SGD step against plain f64 code written here.

mod common;
use common::{SplitMix, kernels};
use mlp_kernels::{Backend, Error, Kernels, Sgd};
use proptest::prelude::*;

fn floats(max_len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![
            8 => -1e3f32..1e3,
            1 => Just(0.0f32),
            1 => Just(-0.0f32),
            1 => Just(f32::NAN),
            1 => Just(f32::INFINITY),
            1 => Just(f32::NEG_INFINITY),
        ],
        0..max_len,
    )
}

/// PyTorch's relu: NaN stays NaN, everything else max(0, x).
fn relu_ref(x: f32) -> f32 {
    if x.is_nan() || x > 0.0 { x } else { 0.0 }
}

/// threshold_backward(grad, output, 0): grad where output <= 0 is false.
fn relu_backward_ref(out: f32, g: f32) -> f32 {
    if out <= 0.0 { 0.0 } else { g }
}

fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

proptest! {
    #[test]
    fn relu_matches_reference(x in floats(300)) {
        for k in kernels() {
            let mut y = vec![7.0; x.len()];
            k.relu(&x, &mut y).unwrap();
            let mut z = x.clone();
            k.relu_in_place(&mut z);
            for i in 0..x.len() {
                prop_assert!(same(y[i], relu_ref(x[i])), "{} relu({})={}", k.backend(), x[i], y[i]);
                prop_assert_eq!(y[i].to_bits(), z[i].to_bits());
            }
        }
    }

    #[test]
    fn relu_backward_matches_reference(pairs in prop::collection::vec((floats(2), -1e3f32..1e3), 0..300)) {
        let out: Vec<f32> = pairs.iter().map(|p| p.0.first().copied().unwrap_or(0.0)).collect();
        let g: Vec<f32> = pairs.iter().map(|p| p.1).collect();
        for k in kernels() {
            let mut gi = vec![7.0; g.len()];
            k.relu_backward(&out, &g, &mut gi).unwrap();
            let mut gp = g.clone();
            k.relu_backward_in_place(&out, &mut gp).unwrap();
            for i in 0..g.len() {
                prop_assert!(same(gi[i], relu_backward_ref(out[i], g[i])), "{} out {}", k.backend(), out[i]);
                prop_assert_eq!(gi[i].to_bits(), gp[i].to_bits());
            }
        }
    }
}

#[test]
fn relu_gradient_at_zero_is_zero() {
    for k in kernels() {
        let mut g = [0.0; 3];
        k.relu_backward(&[0.0, -0.0, 1e-45], &[1.0, 1.0, 1.0], &mut g)
            .unwrap();
        assert_eq!(g, [0.0, 0.0, 1.0], "{}", k.backend());
    }
}

#[test]
fn relu_shape_errors() {
    let k = Kernels::detect();
    assert!(matches!(
        k.relu(&[1.0; 3], &mut [0.0; 2]),
        Err(Error::ShapeMismatch {
            what: "y",
            expected: 3,
            found: 2
        })
    ));
    assert!(
        k.relu_backward(&[1.0; 3], &[1.0; 2], &mut [0.0; 3])
            .is_err()
    );
    assert!(
        k.relu_backward(&[1.0; 3], &[1.0; 3], &mut [0.0; 4])
            .is_err()
    );
    assert!(k.relu_backward_in_place(&[1.0; 3], &mut [0.0; 4]).is_err());
}

/// A transcription of the algorithm box of torch.optim.SGD, in f64.
#[allow(clippy::too_many_arguments)]
fn sgd_ref(o: &Sgd, p: &mut [f64], g: &[f64], b: &mut [f64], first: bool) {
    let (lr, mu, tau, wd) = (
        o.lr as f64,
        o.momentum as f64,
        o.dampening as f64,
        o.weight_decay as f64,
    );
    for i in 0..p.len() {
        let mut gt = if o.maximize { -g[i] } else { g[i] };
        if wd != 0.0 {
            gt += wd * p[i];
        }
        if mu != 0.0 {
            b[i] = if first {
                gt
            } else {
                mu * b[i] + (1.0 - tau) * gt
            };
            gt = if o.nesterov { gt + mu * b[i] } else { b[i] };
        }
        p[i] -= lr * gt;
    }
}

#[test]
fn sgd_every_option_combination_over_five_steps() {
    let mut rng = SplitMix(3);
    let n = 37; // not a multiple of any vector width
    let (mut checked, mut valid_combinations) = (0, 0);
    for &momentum in &[0.0f32, 0.9] {
        for &dampening in &[0.0f32, 0.25] {
            for &wd in &[0.0f32, 0.01] {
                for nesterov in [false, true] {
                    for maximize in [false, true] {
                        let o = Sgd::new(0.05)
                            .with_momentum(momentum)
                            .with_dampening(dampening)
                            .with_weight_decay(wd)
                            .with_nesterov(nesterov)
                            .with_maximize(maximize);
                        let valid = !(nesterov && (momentum == 0.0 || dampening != 0.0));
                        valid_combinations += usize::from(valid);
                        for k in kernels() {
                            let mut p: Vec<f32> =
                                (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
                            let mut p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
                            let mut b = vec![0.0f32; n];
                            let mut b64 = vec![0.0f64; n];
                            if !valid {
                                let before = p.clone();
                                let r = k.sgd_step(&o, &mut p, &vec![1.0; n], &mut b, true);
                                assert!(matches!(
                                    r,
                                    Err(Error::InvalidParameter {
                                        name: "nesterov",
                                        ..
                                    })
                                ));
                                assert_eq!(p, before, "an invalid step must not write");
                                continue;
                            }
                            for step in 0..5 {
                                let g: Vec<f32> =
                                    (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
                                let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
                                k.sgd_step(&o, &mut p, &g, &mut b, step == 0).unwrap();
                                sgd_ref(&o, &mut p64, &g64, &mut b64, step == 0);
                            }
                            for i in 0..n {
                                assert!(
                                    (p[i] as f64 - p64[i]).abs() < 1e-5,
                                    "{} {o:?} p[{i}]",
                                    k.backend()
                                );
                                if momentum != 0.0 {
                                    assert!(
                                        (b[i] as f64 - b64[i]).abs() < 1e-5,
                                        "{} {o:?} b[{i}]",
                                        k.backend()
                                    );
                                }
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    // 32 combinations, 12 of them nesterov without momentum or with dampening.
    assert_eq!(valid_combinations, 20);
    assert_eq!(
        checked,
        valid_combinations * kernels().len(),
        "every valid combination on every backend"
    );
}

#[test]
fn sgd_rejects_what_pytorch_rejects() {
    let k = Kernels::detect();
    let mut p = [1.0f32; 4];
    let g = [1.0f32; 4];
    let bad = [
        (Sgd::new(-0.1), "lr"),
        (Sgd::new(f32::NAN), "lr"),
        (Sgd::new(f32::INFINITY), "lr"),
        (Sgd::new(0.1).with_momentum(f32::INFINITY), "momentum"),
        (Sgd::new(0.1).with_momentum(f32::NAN), "momentum"),
        (
            Sgd::new(0.1).with_weight_decay(f32::INFINITY),
            "weight_decay",
        ),
        (Sgd::new(0.1).with_dampening(f32::NEG_INFINITY), "dampening"),
        (Sgd::new(0.1).with_dampening(f32::NAN), "dampening"),
        (Sgd::new(0.1).with_momentum(-0.5), "momentum"),
        (Sgd::new(0.1).with_weight_decay(-1.0), "weight_decay"),
        (Sgd::new(0.1).with_nesterov(true), "nesterov"),
        (
            Sgd::new(0.1)
                .with_momentum(0.9)
                .with_dampening(0.1)
                .with_nesterov(true),
            "nesterov",
        ),
    ];
    for (o, name) in bad {
        match k.sgd_step(&o, &mut p, &g, &mut [0.0; 4], true) {
            Err(Error::InvalidParameter { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{o:?} gave {other:?}"),
        }
    }
    assert_eq!(p, [1.0; 4]);
    // Shapes: the grad, and the buffer only when momentum is used.
    assert!(
        k.sgd_step(&Sgd::new(0.1), &mut p, &g[..3], &mut [], true)
            .is_err()
    );
    assert!(
        k.sgd_step(
            &Sgd::new(0.1).with_momentum(0.9),
            &mut p,
            &g,
            &mut [0.0; 3],
            true
        )
        .is_err()
    );
    assert!(
        k.sgd_step(&Sgd::new(0.1), &mut p, &g, &mut [], true)
            .is_ok()
    );
}

#[test]
fn unsupported_backend_is_an_error() {
    for b in Backend::ALL {
        match Kernels::new(b) {
            Ok(k) => assert!(b.is_supported() && k.backend() == b),
            Err(e) => assert_eq!(e, Error::UnsupportedBackend(b)),
        }
    }
    assert!(Backend::detect().is_supported());
    assert!("avx9".parse::<Backend>().is_err());
    assert_eq!("avx2".parse::<Backend>(), Ok(Backend::Avx2));
}

#[test]
fn backends_are_usable_from_parallel_threads() {
    if !common::threads_available("backends_are_usable_from_parallel_threads") {
        return;
    }
    let ks = kernels();
    std::thread::scope(|sc| {
        for k in ks {
            sc.spawn(move || {
                let x: Vec<f32> = (0..1000).map(|i| i as f32 - 500.0).collect();
                let mut y = vec![0.0; 1000];
                for _ in 0..100 {
                    k.relu(&x, &mut y).unwrap();
                    assert!(y.iter().zip(&x).all(|(a, b)| *a == b.max(0.0)));
                }
            });
        }
    });
}

/// Partial vectors whose 32 bytes would cross into the next 4 KiB page: the AVX2
/// backend then takes the stack-buffer path instead of vmaskmovps (whose masked lanes
/// AMD does not promise never fault). Every tail length at every offset near the end
/// of a page, loads (relu into another buffer) and stores (in place), against the
/// portable backend.
#[test]
fn partial_vectors_at_the_end_of_a_page_match_the_portable_backend() {
    let portable = Kernels::new(mlp_kernels::Backend::Portable).unwrap();
    let mut buf = vec![0.0f32; 4 * 1024];
    // The first float at a page boundary inside the buffer.
    let page_start = buf.as_ptr().align_offset(4096);
    assert!(page_start + 1024 < buf.len());
    for (i, x) in buf.iter_mut().enumerate() {
        *x = (i as f32 * 0.37).sin() - 0.2;
    }
    for k in kernels() {
        for len in 1..8 {
            // Tails that start in the last 32 bytes of a page (and end in the page or
            // just past its boundary).
            for back in 1..=8usize {
                let start = page_start + 1024 - back;
                let src = buf[start..start + len].to_vec();
                let (mut want, mut got) = (vec![0.0f32; len], vec![0.0f32; len]);
                portable.relu(&buf[start..start + len], &mut want).unwrap();
                k.relu(&buf[start..start + len], &mut got).unwrap();
                assert_eq!(got, want, "{} load of {len} at -{back}", k.backend());
                // In place on the same addresses, then put the values back.
                let before = buf.clone();
                k.relu_in_place(&mut buf[start..start + len]);
                assert_eq!(&buf[start..start + len], &want[..], "{} store", k.backend());
                assert_eq!(buf[..start], before[..start], "wrote before the slice");
                assert_eq!(
                    buf[start + len..],
                    before[start + len..],
                    "wrote after the slice"
                );
                buf[start..start + len].copy_from_slice(&src);
                assert_eq!(src, buf[start..start + len].to_vec());
            }
        }
    }
}
