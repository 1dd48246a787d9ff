//! Weight initialisers of `torch.nn.init`, on a random generator the caller passes.
//!
//! Definitions (PyTorch `torch/nn/init.py`): for a weight of shape (out, in),
//! fan_in = in and fan_out = out; `calculate_gain` gives 1 (linear, sigmoid),
//! 5/3 (tanh), sqrt 2 (relu), sqrt(2 / (1 + a^2)) (leaky relu), 3/4 (selu).
//!
//! * kaiming_normal:  N(0, std^2), std = gain / sqrt(fan)
//! * kaiming_uniform: U(-b, b),    b = sqrt 3 * gain / sqrt(fan)
//! * xavier_normal:   N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))
//! * xavier_uniform:  U(-b, b),    b = gain * sqrt(6 / (fan_in + fan_out))
//!
//! Normal draws use the Box–Muller transform (G. E. P. Box and M. E. Muller, 1958) in
//! f64, so the numbers differ from PyTorch's generator but not their distribution.
//!
//! **The generator** is any [`rand_core`] 0.10 `Rng`, the version this crate
//! re-exports as [`crate::rand_core`]: the generators of `rand` 0.10, or a type of
//! your own that implements `rand_core::TryRng` with `Error = Infallible` (no
//! std needed). `rand` 0.9's generators implement rand_core 0.9, a different trait:
//! with them the compiler says that "`DerefMut` is not implemented".
//!
//! ```
//! use mlp_kernels::init::{FanMode, Nonlinearity, kaiming_normal};
//! use rand::SeedableRng; // rand 0.10
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(42);
//! let mut w = vec![0.0f32; 200 * 784]; // torch.nn.Linear(784, 200).weight
//! kaiming_normal(&mut w, [200, 784], FanMode::FanIn, Nonlinearity::Relu, &mut rng)?;
//! let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
//! assert!((std - (2.0f32 / 784.0).sqrt()).abs() < 1e-3);
//! # Ok::<(), mlp_kernels::Error>(())
//! ```
//!
//! Without std, a generator of your own:
//!
//! ```
//! use core::convert::Infallible;
//! use mlp_kernels::init::xavier_uniform;
//! use mlp_kernels::rand_core::TryRng;
//!
//! /// A 64-bit linear congruential generator (Knuth's MMIX constants).
//! struct Lcg(u64);
//!
//! impl TryRng for Lcg {
//!     type Error = Infallible;
//!     fn try_next_u64(&mut self) -> Result<u64, Infallible> {
//!         self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
//!         Ok(self.0)
//!     }
//!     fn try_next_u32(&mut self) -> Result<u32, Infallible> {
//!         Ok((self.try_next_u64()? >> 32) as u32)
//!     }
//!     fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
//!         for b in dst {
//!             *b = self.try_next_u32()? as u8;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let mut w = [0.0f32; 10 * 20];
//! xavier_uniform(&mut w, [10, 20], 1.0, &mut Lcg(7))?;
//! let bound = (6.0f32 / 30.0).sqrt();
//! assert!(w.iter().all(|x| x.abs() <= bound));
//! # Ok::<(), mlp_kernels::Error>(())
//! ```

use rand_core::Rng;

use crate::Error;
use crate::error::check_len;

/// Which fan scales the Kaiming initialisers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FanMode {
    /// The number of inputs (PyTorch's default): keeps the forward variance.
    #[default]
    FanIn,
    /// The number of outputs: keeps the backward variance.
    FanOut,
}

/// The nonlinearity that follows the layer, for `calculate_gain`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Nonlinearity {
    /// No nonlinearity: gain 1.
    Linear,
    /// Sigmoid: gain 1.
    Sigmoid,
    /// Tanh: gain 5/3.
    Tanh,
    /// ReLU: gain sqrt 2.
    Relu,
    /// Leaky ReLU with this negative slope: gain sqrt(2 / (1 + slope^2)). PyTorch's
    /// `kaiming_*_` default is `LeakyRelu(0.0)`, the same as `Relu`.
    LeakyRelu(f32),
    /// SELU: gain 3/4.
    Selu,
    /// The default of `kaiming_normal_`: leaky ReLU with slope 0.
    #[default]
    KaimingDefault,
}

impl Nonlinearity {
    /// PyTorch's `calculate_gain`.
    pub fn gain(self) -> f64 {
        match self {
            Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu | Nonlinearity::KaimingDefault => core::f64::consts::SQRT_2,
            Nonlinearity::LeakyRelu(a) => libm::sqrt(2.0 / (1.0 + f64::from(a) * f64::from(a))),
            Nonlinearity::Selu => 0.75,
        }
    }
}

fn fans(w: &[f32], shape: [usize; 2]) -> Result<(f64, f64), Error> {
    let [out, inp] = shape;
    let n = out.checked_mul(inp).ok_or(Error::InvalidParameter {
        name: "shape",
        reason: "out * in overflows usize",
    })?;
    check_len("w", n, w.len())?;
    if n == 0 {
        return Err(Error::InvalidParameter {
            name: "shape",
            reason: "fan of zero",
        });
    }
    Ok((inp as f64, out as f64))
}

/// Fills `w`, of shape `[out, in]`, from N(0, std^2) with std = gain / sqrt(fan).
pub fn kaiming_normal<R: Rng + ?Sized>(
    w: &mut [f32],
    shape: [usize; 2],
    mode: FanMode,
    nonlinearity: Nonlinearity,
    rng: &mut R,
) -> Result<(), Error> {
    let std = check_gain(nonlinearity.gain())? / libm::sqrt(kaiming_fan(w, shape, mode)?);
    fill_normal(w, std, rng);
    Ok(())
}

/// Fills `w`, of shape `[out, in]`, from U(-b, b) with b = sqrt 3 * gain / sqrt(fan).
pub fn kaiming_uniform<R: Rng + ?Sized>(
    w: &mut [f32],
    shape: [usize; 2],
    mode: FanMode,
    nonlinearity: Nonlinearity,
    rng: &mut R,
) -> Result<(), Error> {
    let gain = check_gain(nonlinearity.gain())?;
    let bound = libm::sqrt(3.0) * gain / libm::sqrt(kaiming_fan(w, shape, mode)?);
    fill_uniform(w, bound, rng);
    Ok(())
}

/// Fills `w`, of shape `[out, in]`, from N(0, std^2) with
/// std = gain * sqrt(2 / (fan_in + fan_out)).
pub fn xavier_normal<R: Rng + ?Sized>(
    w: &mut [f32],
    shape: [usize; 2],
    gain: f64,
    rng: &mut R,
) -> Result<(), Error> {
    let (fi, fo) = fans(w, shape)?;
    check_gain(gain)?;
    fill_normal(w, gain * libm::sqrt(2.0 / (fi + fo)), rng);
    Ok(())
}

/// Fills `w`, of shape `[out, in]`, from U(-b, b) with
/// b = gain * sqrt(6 / (fan_in + fan_out)).
pub fn xavier_uniform<R: Rng + ?Sized>(
    w: &mut [f32],
    shape: [usize; 2],
    gain: f64,
    rng: &mut R,
) -> Result<(), Error> {
    let (fi, fo) = fans(w, shape)?;
    check_gain(gain)?;
    fill_uniform(w, gain * libm::sqrt(6.0 / (fi + fo)), rng);
    Ok(())
}

/// A gain that scales a distribution must be finite and >= 0 (a NaN slope of
/// `LeakyRelu` gives a NaN gain).
fn check_gain(gain: f64) -> Result<f64, Error> {
    if gain.is_finite() && gain >= 0.0 {
        Ok(gain)
    } else {
        Err(Error::InvalidParameter {
            name: "gain",
            reason: "must be finite and >= 0",
        })
    }
}

fn kaiming_fan(w: &[f32], shape: [usize; 2], mode: FanMode) -> Result<f64, Error> {
    let (fi, fo) = fans(w, shape)?;
    Ok(match mode {
        FanMode::FanIn => fi,
        FanMode::FanOut => fo,
    })
}

/// A uniform f64 in (0, 1], from 53 random bits.
fn open01<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn fill_normal<R: Rng + ?Sized>(w: &mut [f32], std: f64, rng: &mut R) {
    for pair in w.chunks_mut(2) {
        // Box–Muller: two independent N(0, 1) from two uniforms.
        let r = libm::sqrt(-2.0 * libm::log(open01(rng)));
        let (sin, cos) = libm::sincos(core::f64::consts::TAU * open01(rng));
        for (x, z) in pair.iter_mut().zip([r * cos, r * sin]) {
            *x = (z * std) as f32;
        }
    }
}

fn fill_uniform<R: Rng + ?Sized>(w: &mut [f32], bound: f64, rng: &mut R) {
    for x in w.iter_mut() {
        *x = ((2.0 * open01(rng) - 1.0) * bound) as f32;
    }
}
