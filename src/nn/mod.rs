//! A fully connected layer in PyTorch's layout, built from [`Kernels::gemm`].
//!
//! With x (batch x in), W (out x in, as `torch.nn.Linear.weight`), b (out):
//!
//! ```text
//! forward   y  = x W^T + b
//! backward  dx = dy W,   dW = dy^T x,   db = sum over the batch of dy
//! ```
//!
//! Transposes are views, so no operand is copied.
//!
//! [`SparseLinear`] is the same layer for inputs that are mostly zero before an
//! affine normalisation (MNIST's pixels): it multiplies only the non-zeros.

mod sparse;
mod sum_of_rows;
pub use sparse::SparseLinear;
use sum_of_rows::SumOfRows;

use crate::error::check_len;
use crate::simd::{LaneFn2, Simd};
use crate::{Error, Kernels, MatMut, MatRef, gemm_workspace_len};

/// The shape of a linear layer and how many threads its products may use.
///
/// ```
/// use mlp_kernels::{Kernels, Linear};
/// let layer = Linear::new(3, 2);
/// let w = [1.0f32, 0.0, 0.0, 0.0, 1.0, 1.0]; // 2 x 3
/// let x = [1.0f32, 2.0, 3.0]; // batch of 1
/// let mut y = [0.0f32; 2];
/// let mut ws = vec![0.0; layer.workspace_len(1)];
/// layer.forward(&Kernels::detect(), &x, &w, Some(&[0.5, -0.5]), &mut y, &mut ws)?;
/// assert_eq!(y, [1.5, 4.5]);
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// Inputs per sample.
    pub in_features: usize,
    /// Outputs per sample.
    pub out_features: usize,
    /// Threads for the products (1 without the `std` feature).
    pub threads: usize,
}

/// Where [`Linear::backward`] writes.
#[derive(Debug)]
pub struct LinearGrads<'a> {
    /// d(loss)/dW, out x in.
    pub weight: &'a mut [f32],
    /// d(loss)/db, out; skipped when `None`.
    pub bias: Option<&'a mut [f32]>,
    /// d(loss)/dx, batch x in; skipped when `None` (the first layer needs none).
    pub input: Option<&'a mut [f32]>,
    /// Add into `weight` and `bias` (as PyTorch accumulates `.grad`) instead of
    /// overwriting them. `input` is always overwritten.
    pub accumulate: bool,
}

impl Linear {
    /// A single-threaded layer of the given shape.
    pub fn new(in_features: usize, out_features: usize) -> Linear {
        Linear {
            in_features,
            out_features,
            threads: 1,
        }
    }

    /// The same layer using `threads` threads for its products (`std` only).
    pub fn with_threads(self, threads: usize) -> Linear {
        Linear {
            threads: threads.max(1),
            ..self
        }
    }

    /// Workspace, in f32, for forward and backward on `batch` samples.
    pub fn workspace_len(&self, batch: usize) -> usize {
        let (i, o) = (self.in_features, self.out_features);
        let one = gemm_workspace_len(batch, o, i)
            .max(gemm_workspace_len(batch, i, o))
            .max(gemm_workspace_len(o, i, batch));
        one.saturating_mul(self.threads_used())
    }

    fn threads_used(&self) -> usize {
        if cfg!(feature = "std") {
            self.threads.max(1)
        } else {
            1
        }
    }

    /// `a * b`, or an error naming what overflowed.
    fn size(what: &'static str, a: usize, b: usize) -> Result<usize, Error> {
        a.checked_mul(b).ok_or(Error::InvalidParameter {
            name: what,
            reason: "size overflows usize",
        })
    }

    fn batch(&self, x: &[f32]) -> Result<usize, Error> {
        if self.in_features == 0 || self.out_features == 0 {
            return Err(Error::InvalidParameter {
                name: "features",
                reason: "must be > 0",
            });
        }
        if !x.len().is_multiple_of(self.in_features) {
            let want = x.len().div_ceil(self.in_features) * self.in_features;
            return Err(Error::ShapeMismatch {
                what: "x (batch x in)",
                expected: want,
                found: x.len(),
            });
        }
        Ok(x.len() / self.in_features)
    }

    /// y = x W^T + b for a batch of rows x; `b` may be `None`.
    pub fn forward(
        &self,
        k: &Kernels,
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let (i, o) = (self.in_features, self.out_features);
        let batch = self.batch(x)?;
        check_len(
            "weight (out x in)",
            Self::size("weight", o, i)?,
            weight.len(),
        )?;
        let w = MatRef::row_major(weight, o, i)?;
        check_len("y (batch x out)", Self::size("y", batch, o)?, y.len())?;
        if let Some(b) = bias {
            check_len("bias", o, b.len())?;
        }
        // Every check before `y` is written (the bias goes there first): the forward
        // product's own workspace, per thread.
        let need = gemm_workspace_len(batch, o, i).saturating_mul(self.threads_used());
        if workspace.len() < need {
            return Err(Error::WorkspaceTooSmall {
                needed: need,
                found: workspace.len(),
            });
        }
        let beta = match bias {
            Some(b) => {
                for row in y.chunks_exact_mut(o) {
                    row.copy_from_slice(b);
                }
                1.0
            }
            None => 0.0,
        };
        self.gemm(
            k,
            MatRef::row_major(x, batch, i)?,
            w.t(),
            beta,
            MatMut::row_major(y, batch, o)?,
            workspace,
        )
    }

    /// The gradients of the layer from dy (batch x out), for the input x it saw:
    /// dW = dy^T x and db = the column sums of dy (overwritten, or added to with
    /// `accumulate`), and dx = dy W when `grads.input` asks for it. `Err` before
    /// anything is written if a length or the workspace is wrong.
    ///
    /// On more than one thread, with dx asked for, dW and dx run side by side, each
    /// on half of the threads (one each on two), instead of one after the other on
    /// all of them; the bits are those of one thread.
    ///
    /// ```
    /// use mlp_kernels::{Kernels, Linear, LinearGrads};
    /// let layer = Linear::new(2, 2);
    /// let w = [1.0f32, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
    /// let x = [1.0f32, 1.0, 2.0, 0.0]; // two samples
    /// let dy = [1.0f32, 0.0, 0.0, 1.0]; // d(loss)/dy for each
    /// let (mut dw, mut db, mut dx) = ([0.0f32; 4], [0.0f32; 2], [0.0f32; 4]);
    /// let grads = LinearGrads {
    ///     weight: &mut dw,
    ///     bias: Some(&mut db),
    ///     input: Some(&mut dx),
    ///     accumulate: false,
    /// };
    /// let mut ws = vec![0.0; layer.workspace_len(2)];
    /// layer.backward(&Kernels::detect(), &x, &w, &dy, grads, &mut ws)?;
    /// assert_eq!(dw, [1.0, 1.0, 2.0, 0.0]); // dy^T x
    /// assert_eq!(db, [1.0, 1.0]);
    /// assert_eq!(dx, [1.0, 2.0, 3.0, 4.0]); // dy W
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    pub fn backward(
        &self,
        k: &Kernels,
        x: &[f32],
        weight: &[f32],
        dy: &[f32],
        #[cfg_attr(not(feature = "std"), allow(unused_mut))] mut grads: LinearGrads<'_>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let (i, o) = (self.in_features, self.out_features);
        let batch = self.batch(x)?;
        check_len("dy (batch x out)", Self::size("dy", batch, o)?, dy.len())?;
        check_len(
            "weight (out x in)",
            Self::size("weight", o, i)?,
            weight.len(),
        )?;
        let w = MatRef::row_major(weight, o, i)?;
        let xv = MatRef::row_major(x, batch, i)?;
        let dyv = MatRef::row_major(dy, batch, o)?;
        check_len(
            "grad weight",
            Self::size("grad weight", o, i)?,
            grads.weight.len(),
        )?;
        if let Some(db) = grads.bias.as_deref() {
            check_len("grad bias", o, db.len())?;
        }
        if let Some(dx) = grads.input.as_deref() {
            check_len("grad input", Self::size("grad input", batch, i)?, dx.len())?;
        }
        let need = self.workspace_len(batch);
        if workspace.len() < need {
            return Err(Error::WorkspaceTooSmall {
                needed: need,
                found: workspace.len(),
            });
        }
        let beta = if grads.accumulate { 1.0 } else { 0.0 };
        #[cfg(feature = "std")]
        if crate::gemm::threads_to_use(self.threads_used()) > 1
            && let Some(dx) = grads.input.take()
        {
            let views = (xv, w, dyv);
            return self.backward_side_by_side(k, views, dy, beta, grads, dx, workspace);
        }
        self.gemm(
            k,
            dyv.t(),
            xv,
            beta,
            MatMut::row_major(grads.weight, o, i)?,
            workspace,
        )?;
        if let Some(db) = grads.bias {
            bias_grad(k, dy, db, grads.accumulate);
        }
        if let Some(dx) = grads.input {
            self.gemm(k, dyv, w, 0.0, MatMut::row_major(dx, batch, i)?, workspace)?;
        }
        Ok(())
    }

    /// The backward pass's two products on threads of their own, dW on half of them
    /// and dx on the rest, in one job of the pool: a product on fewer threads is cut
    /// into fewer parts, each of which packs the operand the parts share. Same bits:
    /// a product's sums do not depend on how C is cut.
    #[cfg(feature = "std")]
    #[allow(clippy::too_many_arguments)]
    fn backward_side_by_side(
        &self,
        k: &Kernels,
        (x, w, dy): (MatRef<'_>, MatRef<'_>, MatRef<'_>),
        dy_rows: &[f32],
        beta: f32,
        grads: LinearGrads<'_>,
        dx: &mut [f32],
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let (i, o, batch) = (self.in_features, self.out_features, x.rows());
        // `threads_used`, as `workspace_len` counts: 0 threads are 1, not all cores.
        let threads = crate::gemm::threads_to_use(self.threads_used());
        let for_weight = (threads / 2).max(1);
        let for_input = (threads - for_weight).max(1);
        // Within `workspace_len` (checked by the caller), which pays `one` product's
        // workspace per thread: each part here needs at most that.
        let need = crate::gemm_threaded_workspace_len(for_weight, o, i, batch);
        debug_assert!(need <= workspace.len());
        let (ws_weight, ws_input) = workspace.split_at_mut(need.min(workspace.len()));
        let weight = crate::gemm::Cut::new(
            k,
            for_weight,
            1.0,
            dy.t(),
            x,
            beta,
            MatMut::row_major(grads.weight, o, i)?,
            ws_weight,
        )?;
        let input = crate::gemm::Cut::new(
            k,
            for_input,
            1.0,
            dy,
            w,
            0.0,
            MatMut::row_major(dx, batch, i)?,
            ws_input,
        )?;
        if let Some(db) = grads.bias {
            bias_grad(k, dy_rows, db, grads.accumulate);
        }
        crate::gemm::run_side_by_side(weight, input);
        Ok(())
    }

    fn gemm(
        &self,
        k: &Kernels,
        a: MatRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
        ws: &mut [f32],
    ) -> Result<(), Error> {
        #[cfg(feature = "std")]
        if self.threads > 1 {
            return k.gemm_threaded(self.threads, 1.0, a, b, beta, c, ws);
        }
        k.gemm(1.0, a, b, beta, c, ws)
    }
}

/// db = (db +) the sum of dy's rows, in row order.
fn bias_grad(k: &Kernels, dy: &[f32], db: &mut [f32], accumulate: bool) {
    k.isa.vectorize(SumOfRows {
        m: dy,
        width: db.len(),
        lo: 0,
        dst: db,
        accumulate,
    });
}

pub(crate) struct Add;

impl LaneFn2 for Add {
    #[inline(always)]
    fn apply<S: Simd>(&self, s: S, a: S::V, b: S::V) -> S::V {
        s.add(a, b)
    }
}
