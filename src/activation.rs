//! ReLU forward and backward, with PyTorch's semantics: relu(NaN) = NaN, and the
//! backward masks the gradient where the forward output is <= 0 (`threshold_backward`
//! with threshold 0: the gradient at exactly 0 is 0).

use crate::error::check_len;
use crate::simd::{LaneFn, LaneFn2, MapInPlace, MapInto, Simd, ZipInPlace, ZipInto};
use crate::{Error, Kernels};

/// max(0, x) with x second, so that a NaN x comes through (x86 max semantics).
struct Relu;

impl LaneFn for Relu {
    #[inline(always)]
    fn apply<S: Simd>(&self, s: S, x: S::V) -> S::V {
        s.max(s.splat(0.0), x)
    }
}

/// The incoming gradient where the output is > 0 (or NaN), else 0.
struct ReluMask;

impl LaneFn2 for ReluMask {
    #[inline(always)]
    fn apply<S: Simd>(&self, s: S, out: S::V, g: S::V) -> S::V {
        let zero = s.splat(0.0);
        s.select(s.le(out, zero), zero, g)
    }
}

impl Kernels {
    /// `y[i] = max(0, x[i])`; `Err` if the lengths differ.
    pub fn relu(&self, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
        check_len("y", x.len(), y.len())?;
        self.isa.vectorize(MapInto {
            src: x,
            dst: y,
            f: Relu,
        });
        Ok(())
    }

    /// `x[i] = max(0, x[i])`.
    pub fn relu_in_place(&self, x: &mut [f32]) {
        self.isa.vectorize(MapInPlace { x, f: Relu });
    }

    /// `grad_in[i] = grad_out[i]` where `output[i] > 0`, else 0, with `output` the
    /// forward's result. `Err` if the lengths differ.
    pub fn relu_backward(
        &self,
        output: &[f32],
        grad_out: &[f32],
        grad_in: &mut [f32],
    ) -> Result<(), Error> {
        check_len("grad_out", output.len(), grad_out.len())?;
        check_len("grad_in", output.len(), grad_in.len())?;
        self.isa.vectorize(ZipInto {
            a: output,
            b: grad_out,
            out: grad_in,
            f: ReluMask,
        });
        Ok(())
    }

    /// `grad[i] = 0` where `output[i] <= 0`, in place. `Err` if the lengths differ.
    pub fn relu_backward_in_place(&self, output: &[f32], grad: &mut [f32]) -> Result<(), Error> {
        check_len("grad", output.len(), grad.len())?;
        self.isa.vectorize(ZipInPlace {
            a: output,
            dst: grad,
            f: ReluMask,
        });
        Ok(())
    }
}

/// `y[i] = max(0, x[i])` on the best backend; `Err` if the lengths differ.
///
/// ```
/// let mut y = [0.0f32; 3];
/// mlp_kernels::relu(&[-2.0, 0.0, 3.0], &mut y)?;
/// assert_eq!(y, [0.0, 0.0, 3.0]);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn relu(x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    Kernels::detect().relu(x, y)
}

/// `x[i] = max(0, x[i])` on the best backend.
pub fn relu_in_place(x: &mut [f32]) {
    Kernels::detect().relu_in_place(x)
}

/// The gradient of ReLU on the best backend: `grad_in = grad_out` where `output > 0`.
///
/// ```
/// let mut g = [0.0f32; 3];
/// mlp_kernels::relu_backward(&[0.0, 1.0, 2.0], &[5.0, 6.0, 7.0], &mut g)?;
/// assert_eq!(g, [0.0, 6.0, 7.0]);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
pub fn relu_backward(output: &[f32], grad_out: &[f32], grad_in: &mut [f32]) -> Result<(), Error> {
    Kernels::detect().relu_backward(output, grad_out, grad_in)
}

/// [`relu_backward`] in place on `grad`.
pub fn relu_backward_in_place(output: &[f32], grad: &mut [f32]) -> Result<(), Error> {
    Kernels::detect().relu_backward_in_place(output, grad)
}
