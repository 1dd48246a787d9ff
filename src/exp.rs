//! e^x over a slice; the vector algorithm and its accuracy are in `simd/exp.rs`.

use crate::error::check_len;
use crate::simd::{LaneFn, MapInPlace, MapInto, Simd};
use crate::{Error, Kernels};

impl Kernels {
    /// `out[i] = e^x[i]`, within 1 ulp of the correctly rounded result (measured over
    /// all 2^32 inputs on each x86 backend, BENCHMARKS.md); NaN stays NaN,
    /// e^+inf = +inf, e^-inf = 0, overflow gives +inf and underflow goes through the
    /// subnormals to 0. `Err` if the lengths differ.
    pub fn exp(&self, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        check_len("out", x.len(), out.len())?;
        self.isa.vectorize(MapInto {
            src: x,
            dst: out,
            f: Exp,
        });
        Ok(())
    }

    /// `x[i] = e^x[i]`, as [`Kernels::exp`].
    pub fn exp_in_place(&self, x: &mut [f32]) {
        self.isa.vectorize(MapInPlace { x, f: Exp });
    }
}

struct Exp;

impl LaneFn for Exp {
    #[inline(always)]
    fn apply<S: Simd>(&self, s: S, x: S::V) -> S::V {
        s.exp(x)
    }
}

/// `out[i] = e^x[i]` on the best backend; see [`Kernels::exp`].
///
/// ```
/// let mut y = [0.0f32; 3];
/// mlp_kernels::exp(&[0.0, f32::NEG_INFINITY, 1.0], &mut y)?;
/// assert_eq!(y[..2], [1.0, 0.0]);
/// assert!((y[2] - core::f32::consts::E).abs() < 1e-6);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn exp(x: &[f32], out: &mut [f32]) -> Result<(), Error> {
    Kernels::detect().exp(x, out)
}

/// `x[i] = e^x[i]` on the best backend; see [`Kernels::exp`].
pub fn exp_in_place(x: &mut [f32]) {
    Kernels::detect().exp_in_place(x)
}
