//! Exhaustive accuracy of the crate's exp: every one of the 2^32 f32 bit patterns, on
//! every backend this CPU has, against `libm::exp` in f64 rounded to f32.
//!
//! `cargo run --release --example exp_accuracy`
//!
//! Prints, per backend, the largest error in ulps (with the input where it occurs),
//! how many results are not the correctly rounded one, and whether the specials
//! (NaN, +-inf, overflow, underflow) are exact.

use mlp_kernels::{Backend, Kernels};

fn ulps(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

fn main() {
    const CHUNK: usize = 1 << 16;
    for b in Backend::supported() {
        let Ok(k) = Kernels::new(b) else { continue };
        let (mut worst, mut worst_x, mut inexact, mut special_errors) = (0u64, 0.0f32, 0u64, 0u64);
        let mut x = vec![0.0f32; CHUNK];
        let mut y = vec![0.0f32; CHUNK];
        for hi in 0..(1u64 << 32) / CHUNK as u64 {
            for (i, v) in x.iter_mut().enumerate() {
                *v = f32::from_bits((hi * CHUNK as u64 + i as u64) as u32);
            }
            k.exp(&x, &mut y).expect("equal lengths");
            for (&xi, &yi) in x.iter().zip(&y) {
                let want = libm::exp(f64::from(xi)) as f32;
                if xi.is_nan() || !want.is_finite() || want == 0.0 {
                    // NaN in, NaN out; overflow to +inf, underflow to 0: exact.
                    let ok = if xi.is_nan() {
                        yi.is_nan()
                    } else {
                        yi.to_bits() == want.to_bits()
                    };
                    special_errors += u64::from(!ok);
                    continue;
                }
                let d = ulps(yi, want);
                inexact += u64::from(d != 0);
                if d > worst {
                    (worst, worst_x) = (d, xi);
                }
            }
        }
        println!(
            "{b}: max error {worst} ulp (at x = {worst_x:e}), {inexact} of 2^32 inputs not correctly rounded, {special_errors} wrong specials"
        );
    }
}
