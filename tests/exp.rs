//! The vectorised exp against libm's f64 exp rounded to f32.

mod common;
use common::{SplitMix, kernels, ulp_distance};

fn reference(x: f32) -> f32 {
    libm::exp(f64::from(x)) as f32
}

#[test]
fn specials_are_exact_on_every_backend() {
    let cases: [(f32, f32); 10] = [
        (0.0, 1.0),
        (-0.0, 1.0),
        (f32::INFINITY, f32::INFINITY),
        (f32::NEG_INFINITY, 0.0),
        (89.0, f32::INFINITY),
        (88.8, f32::INFINITY),
        (1e30, f32::INFINITY),
        (-104.0, 0.0),
        (-1e30, 0.0),
        (f32::MAX, f32::INFINITY),
    ];
    for k in kernels() {
        let x: Vec<f32> = cases.iter().map(|c| c.0).collect();
        let mut y = vec![0.0; x.len()];
        k.exp(&x, &mut y).unwrap();
        for ((xi, want), got) in cases.iter().zip(&y) {
            assert_eq!(got.to_bits(), want.to_bits(), "{} exp({xi})", k.backend());
        }
        let mut nan = [f32::NAN, -f32::NAN];
        k.exp_in_place(&mut nan);
        assert!(nan.iter().all(|v| v.is_nan()), "{}", k.backend());
    }
}

#[test]
fn boundaries_within_two_ulp() {
    // The overflow and underflow thresholds, the smallest subnormal result, the range
    // reduction's half-way points and their neighbours.
    let mut xs = vec![
        88.72283,
        88.722_84,
        88.722_83,
        -87.33655,
        -87.33654,
        -103.27893,
        -103.97208,
        -103.972_09,
        -103.97207,
        -149.0 * core::f32::consts::LN_2,
    ];
    for k in -150i32..=128 {
        let h = (k as f32 + 0.5) * core::f32::consts::LN_2;
        xs.extend([
            h,
            f32::from_bits(h.to_bits() + 1),
            f32::from_bits(h.to_bits() - 1),
        ]);
    }
    xs.retain(|x| x.is_finite());
    check(&xs);
}

#[test]
fn ten_million_samples_within_two_ulp() {
    let mut rng = SplitMix(7);
    let mut xs = Vec::with_capacity(10_000_000);
    for i in 0..10_000_000u32 {
        // Half uniform over the interesting range, half random bit patterns.
        let x = if i % 2 == 0 {
            rng.uniform(-105.0, 90.0) as f32
        } else {
            f32::from_bits(rng.next_u64() as u32)
        };
        if x.is_finite() {
            xs.push(x);
        }
    }
    check(&xs);
}

fn check(xs: &[f32]) {
    let want: Vec<f32> = xs.iter().map(|&x| reference(x)).collect();
    for k in kernels() {
        let mut y = vec![0.0; xs.len()];
        k.exp(xs, &mut y).unwrap();
        let mut worst = (0, 0.0f32);
        for ((&x, &w), &g) in xs.iter().zip(&want).zip(&y) {
            let d = ulp_distance(g, w);
            if d > worst.0 {
                worst = (d, x);
            }
        }
        eprintln!("{}: max {} ulp at x = {:e}", k.backend(), worst.0, worst.1);
        assert!(
            worst.0 <= 2,
            "{}: {} ulp at x = {:e}",
            k.backend(),
            worst.0,
            worst.1
        );
    }
}

#[test]
fn avx2_and_avx512_agree_bit_for_bit() {
    let ks: Vec<_> = kernels()
        .into_iter()
        .filter(|k| k.backend().name() != "portable")
        .collect();
    if ks.len() < 2 {
        eprintln!("fewer than two FMA backends on this machine; nothing to compare");
        return;
    }
    let mut rng = SplitMix(11);
    // Random inputs, then every f32 whose e^x is subnormal (where the backends scale
    // by 2^n differently: two products, or AVX-512's one vscalefps), then NaNs.
    let subnormal_results = (-87.5f32).to_bits()..=(-104.0f32).to_bits();
    let nans = [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc0_1234),
    ];
    let xs: Vec<f32> = (0..100_003)
        .map(|_| rng.uniform(-105.0, 90.0) as f32)
        .chain(subnormal_results.map(f32::from_bits))
        .chain(nans)
        .collect();
    let mut a = vec![0.0; xs.len()];
    let mut b = vec![0.0; xs.len()];
    ks[0].exp(&xs, &mut a).unwrap();
    ks[1].exp(&xs, &mut b).unwrap();
    for i in 0..xs.len() {
        assert_eq!(a[i].to_bits(), b[i].to_bits(), "x = {}", xs[i]);
    }
}

#[test]
fn length_mismatch_is_an_error() {
    let mut y = [0.0; 2];
    assert!(mlp_kernels::exp(&[1.0, 2.0, 3.0], &mut y).is_err());
}
