//! Initialiser statistics against PyTorch's fan and gain formulas.

mod common;
use common::SplitMix;
use mlp_kernels::Error;
use mlp_kernels::init::{
    FanMode, Nonlinearity, kaiming_normal, kaiming_uniform, xavier_normal, xavier_uniform,
};

fn moments(w: &[f32]) -> (f64, f64) {
    let n = w.len() as f64;
    let mean = w.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Mean within 3 sigma of 0 and std within 3 sigma of the target, for n draws
/// (the std of the sample std is about std / sqrt(2n) for normal data, and smaller for
/// uniform data).
fn assert_stats(w: &[f32], std: f64, what: &str) {
    let n = w.len() as f64;
    let (mean, s) = moments(w);
    assert!(mean.abs() < 3.0 * std / n.sqrt(), "{what}: mean {mean}");
    assert!(
        (s - std).abs() < 3.0 * std / (2.0 * n).sqrt(),
        "{what}: std {s}, want {std}"
    );
}

const SHAPE: [usize; 2] = [200, 500]; // 100k draws, fan_in 500, fan_out 200

#[test]
fn kaiming_normal_is_pytorchs() {
    let mut w = vec![0.0f32; 100_000];
    let mut rng = SplitMix(1);
    kaiming_normal(
        &mut w,
        SHAPE,
        FanMode::FanIn,
        Nonlinearity::KaimingDefault,
        &mut rng,
    )
    .unwrap();
    assert_stats(&w, (2.0f64).sqrt() / 500f64.sqrt(), "fan_in");
    kaiming_normal(&mut w, SHAPE, FanMode::FanOut, Nonlinearity::Tanh, &mut rng).unwrap();
    assert_stats(&w, 5.0 / 3.0 / 200f64.sqrt(), "fan_out tanh");
    kaiming_normal(
        &mut w,
        SHAPE,
        FanMode::FanIn,
        Nonlinearity::LeakyRelu(0.2),
        &mut rng,
    )
    .unwrap();
    assert_stats(&w, (2.0 / 1.04f64).sqrt() / 500f64.sqrt(), "leaky");
}

#[test]
fn uniform_initialisers_stay_in_bounds() {
    let mut w = vec![0.0f32; 100_000];
    let mut rng = SplitMix(2);
    let b = 3f64.sqrt() * 2f64.sqrt() / 500f64.sqrt();
    kaiming_uniform(&mut w, SHAPE, FanMode::FanIn, Nonlinearity::Relu, &mut rng).unwrap();
    assert!(w.iter().all(|&x| (x as f64).abs() <= b * (1.0 + 1e-7)));
    assert_stats(&w, b / 3f64.sqrt(), "kaiming_uniform");
    let b = (6.0f64 / 700.0).sqrt();
    xavier_uniform(&mut w, SHAPE, 1.0, &mut rng).unwrap();
    assert!(w.iter().all(|&x| (x as f64).abs() <= b * (1.0 + 1e-7)));
    assert_stats(&w, b / 3f64.sqrt(), "xavier_uniform");
}

#[test]
fn xavier_normal_is_pytorchs() {
    let mut w = vec![0.0f32; 100_000];
    xavier_normal(&mut w, SHAPE, 0.75, &mut SplitMix(4)).unwrap();
    assert_stats(&w, 0.75 * (2.0f64 / 700.0).sqrt(), "xavier_normal");
}

#[test]
fn gains_are_calculate_gains() {
    assert_eq!(Nonlinearity::Linear.gain(), 1.0);
    assert_eq!(Nonlinearity::Sigmoid.gain(), 1.0);
    assert_eq!(Nonlinearity::Tanh.gain(), 5.0 / 3.0);
    assert_eq!(Nonlinearity::Selu.gain(), 0.75);
    assert_eq!(Nonlinearity::Relu.gain(), 2f64.sqrt());
    assert!((Nonlinearity::LeakyRelu(0.01).gain() - (2.0 / (1.0 + 1e-4f64)).sqrt()).abs() < 1e-9);
}

#[test]
fn bad_shapes_are_errors() {
    let mut rng = SplitMix(5);
    let mut w = vec![0.0f32; 10];
    assert!(matches!(
        kaiming_normal(&mut w, [3, 4], FanMode::FanIn, Nonlinearity::Relu, &mut rng),
        Err(Error::ShapeMismatch {
            expected: 12,
            found: 10,
            ..
        })
    ));
    assert!(matches!(
        xavier_uniform(&mut [], [0, 4], 1.0, &mut rng),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(xavier_normal(&mut w, [usize::MAX, 2], 1.0, &mut rng).is_err());
}

#[test]
fn non_finite_or_negative_gains_are_errors_and_write_nothing() {
    let mut rng = SplitMix(6);
    let mut w = vec![7.0f32; 12];
    let gain_err =
        |r: Result<(), Error>| matches!(r, Err(Error::InvalidParameter { name: "gain", .. }));
    for g in [f64::NAN, f64::INFINITY, -1.0] {
        assert!(gain_err(xavier_normal(&mut w, [3, 4], g, &mut rng)), "{g}");
        assert!(gain_err(xavier_uniform(&mut w, [3, 4], g, &mut rng)), "{g}");
    }
    // A NaN slope gives a NaN gain.
    let (nl, fan) = (Nonlinearity::LeakyRelu(f32::NAN), FanMode::FanIn);
    assert!(gain_err(kaiming_normal(&mut w, [3, 4], fan, nl, &mut rng)));
    assert!(gain_err(kaiming_uniform(&mut w, [3, 4], fan, nl, &mut rng)));
    assert!(w.iter().all(|&x| x == 7.0), "a refused call wrote");
}
