//! A linear layer on sparse raw inputs under an affine normalisation.
//!
//! The input the layer stands for is x_norm = a * x + c (every element, zeros too),
//! with x sparse. Because the normalisation is affine, with W^T stored in x out
//! ("weight_t", the layout the sparse kernel reads by rows):
//!
//! ```text
//! forward   y   = x_norm W^T + b = a * (x W^T) + (b + c * colsum(W^T))     per row
//! backward  dW^T = x_norm^T dy  = a * (x^T dy) + c * 1 colsum(dy)          per row
//!           db  = colsum(dy)
//! ```
//!
//! so only x's non-zeros are multiplied: the mathematics of the dense layer on x_norm,
//! with the float operations in another order.

use crate::error::check_len;
use crate::simd::{MapInPlace, Simd, ZipInPlace};
use crate::sparse::{Beside, on_lines_len};
use crate::{CsrRef, Error, Kernels, MatMut, MatRef};

use super::{Add, SumOfRows};

/// A fully connected layer whose input is a sparse matrix of raw values `x` (batch x
/// in, [`CsrRef`]) that stands for `scale * x + shift` element-wise: the forward pass
/// and the weight gradient of [`Linear`](super::Linear) on that input, at the cost of
/// x's non-zeros.
///
/// The weight is held transposed, `weight_t` = W^T (in x out, by rows: `W[j][i]` at
/// `weight_t[i * row_stride + j]`, `row_stride` = out unless set), because the kernel
/// reads it by rows. The layer gives no input gradient: its input is data.
///
/// Each stored input reads a row of `weight_t`: start it (and the gradient) on a
/// 64-byte boundary, or every vector load crosses two cache lines. A large `Vec`
/// starts 16 bytes past one with glibc, and the lesson's forward product then takes
/// 1.3x as long (BENCHMARKS.md). With [`line_row_stride`](Self::line_row_stride)
/// every row starts on a line too, where 200 floats a row leave every other row 32
/// bytes past one.
///
/// ```
/// use mlp_kernels::{CsrRef, Kernels, Linear, SparseLinear};
/// // Two samples of 3 raw features, mostly 0, normalised as (x - 0.5) / 2.
/// let raw = [0.0f32, 4.0, 0.0, 2.0, 0.0, 0.0];
/// let x = CsrRef::new(2, 3, &[0, 1, 2], &[1, 0], &[4.0, 2.0])?;
/// let w = [1.0f32, 2.0, 3.0, -1.0, 0.5, 0.0]; // W, 2 x 3
/// let w_t = [1.0f32, -1.0, 2.0, 0.5, 3.0, 0.0]; // W^T, 3 x 2
/// let layer = SparseLinear::new(3, 2).with_normalisation(0.5, -0.25);
/// let (k, mut y, mut ws) = (Kernels::detect(), [0.0f32; 4], vec![0.0; layer.workspace_len()]);
/// layer.forward(&k, x, &w_t, Some(&[0.1, 0.2]), &mut y, &mut ws)?;
/// // The dense layer on the normalised input gives the same.
/// let norm: Vec<f32> = raw.iter().map(|v| 0.5 * v - 0.25).collect();
/// let mut y_dense = [0.0f32; 4];
/// let mut ws_dense = vec![0.0; Linear::new(3, 2).workspace_len(2)];
/// Linear::new(3, 2).forward(&k, &norm, &w, Some(&[0.1, 0.2]), &mut y_dense, &mut ws_dense)?;
/// for (a, b) in y.iter().zip(y_dense) {
///     assert!((a - b).abs() < 1e-6);
/// }
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseLinear {
    /// Inputs per sample.
    pub in_features: usize,
    /// Outputs per sample.
    pub out_features: usize,
    /// a of the normalisation a * x + c.
    pub scale: f32,
    /// c of the normalisation a * x + c.
    pub shift: f32,
    /// Threads for the products (1 without the `std` feature).
    pub threads: usize,
    /// Floats from one row of `weight_t`, and of its gradient, to the next: at least
    /// `out_features` (the default); the floats between rows are never read or
    /// written.
    pub row_stride: usize,
}

impl SparseLinear {
    /// A single-threaded layer on inputs taken as they are (scale 1, shift 0).
    pub fn new(in_features: usize, out_features: usize) -> SparseLinear {
        SparseLinear {
            in_features,
            out_features,
            scale: 1.0,
            shift: 0.0,
            threads: 1,
            row_stride: out_features,
        }
    }

    /// The same layer with rows of `weight_t` (and of the weight gradient)
    /// `row_stride` floats apart; a stride below `out_features` is refused by every
    /// method.
    ///
    /// ```
    /// use mlp_kernels::SparseLinear;
    /// let layer = SparseLinear::new(784, 200);
    /// let lined = layer.with_row_stride(layer.line_row_stride());
    /// assert_eq!((lined.row_stride, lined.weight_t_len()), (208, 784 * 208));
    /// ```
    pub fn with_row_stride(self, row_stride: usize) -> SparseLinear {
        SparseLinear { row_stride, ..self }
    }

    /// `out_features` rounded up to 16 floats: with this row stride and `weight_t` on
    /// a 64-byte boundary, every row of W^T starts on a cache line. The forward
    /// product loads a row of W^T per stored input, and a load across two lines costs
    /// about two: on Sapphire Rapids the lesson's forward product at 19% density took
    /// 167.7 us with rows of 208 floats against 202.0 us with rows of 200
    /// (`cargo bench --bench sparse`). A weight so laid out, on an aligned buffer, is
    /// never copied onto lines (see [`fast_workspace_len`](Self::fast_workspace_len)).
    pub fn line_row_stride(&self) -> usize {
        // (Near usize::MAX no such weight fits in memory: then out_features, whose
        // weight length the methods refuse anyway.)
        self.out_features
            .checked_next_multiple_of(16)
            .unwrap_or(self.out_features)
    }

    /// The length of `weight_t` and of its gradient: `in_features * row_stride`
    /// (saturating at `usize::MAX`, which the methods refuse).
    pub fn weight_t_len(&self) -> usize {
        self.in_features.saturating_mul(self.row_stride)
    }

    /// The same layer on inputs normalised as `scale * x + shift`. For MNIST's
    /// `(x / 255 - 0.1307) / 0.3081`: scale `1 / (255 * 0.3081)`, shift
    /// `-0.1307 / 0.3081`.
    pub fn with_normalisation(self, scale: f32, shift: f32) -> SparseLinear {
        SparseLinear {
            scale,
            shift,
            ..self
        }
    }

    /// The same layer using `threads` threads for its products (`std` only).
    pub fn with_threads(self, threads: usize) -> SparseLinear {
        SparseLinear {
            threads: threads.max(1),
            ..self
        }
    }

    /// The least workspace, in f32, for every method: a row of `out_features`
    /// (`b + shift * colsum(W^T)` that every output row starts from, or the column
    /// sums of dy). More, up to [`fast_workspace_len`](Self::fast_workspace_len),
    /// lets a product copy its dense operand onto cache lines first where that pays.
    pub fn workspace_len(&self) -> usize {
        self.out_features
    }

    /// The workspace, in f32, with which every method at `batch` samples may take its
    /// fastest path: [`workspace_len`](Self::workspace_len) plus room to copy W^T
    /// (the forward products) or dy (`backward_transposed` without `accumulate`) onto
    /// 64-byte lines. The copy is made only where a vector is a line (AVX-512), the
    /// operand's rows are not on lines already (as W^T's are with
    /// [`line_row_stride`](Self::line_row_stride) on an aligned buffer), and the sparse
    /// input reads each row of the operand many times, as the weight gradient by
    /// columns does; the bits are the same with or without it.
    ///
    /// ```
    /// use mlp_kernels::SparseLinear;
    /// let layer = SparseLinear::new(784, 200);
    /// // The larger copy, W^T's 784 rows of 200 floats, each rounded up to 208; and 15
    /// // floats to reach a line.
    /// assert_eq!(layer.fast_workspace_len(200), 200 + 784 * 208 + 15);
    /// ```
    pub fn fast_workspace_len(&self, batch: usize) -> usize {
        let (i, o) = (self.in_features, self.out_features);
        let copy = on_lines_len(i, o).max(on_lines_len(batch, o));
        o.saturating_add(copy)
    }

    fn check(&self, x: &CsrRef<'_>, weight_t: &[f32]) -> Result<usize, Error> {
        self.check_batch(x.rows(), x.cols(), "x cols (= in_features)", weight_t)
    }

    /// The checks of a batch of `rows` samples of `cols` features (`what` names the
    /// features' count in an error); returns the batch size.
    fn check_batch(
        &self,
        rows: usize,
        cols: usize,
        what: &'static str,
        weight_t: &[f32],
    ) -> Result<usize, Error> {
        let (i, o) = (self.in_features, self.out_features);
        if i == 0 || o == 0 {
            return Err(Error::InvalidParameter {
                name: "features",
                reason: "must be > 0",
            });
        }
        if !self.scale.is_finite() || !self.shift.is_finite() {
            return Err(Error::InvalidParameter {
                name: "normalisation",
                reason: "scale and shift must be finite",
            });
        }
        check_len(what, i, cols)?;
        if self.row_stride < o {
            return Err(Error::InvalidParameter {
                name: "row_stride",
                reason: "must be >= out_features",
            });
        }
        let w_len = i
            .checked_mul(self.row_stride)
            .ok_or(Error::InvalidParameter {
                name: "weight_t",
                reason: "size overflows usize",
            })?;
        check_len("weight_t (in x row_stride)", w_len, weight_t.len())?;
        Ok(rows)
    }

    /// y = (scale * x + shift) W^T + b for the batch of sparse rows `x`; `bias` may be
    /// `None`. `Err`, with nothing written, on a wrong length.
    pub fn forward(
        &self,
        k: &Kernels,
        x: CsrRef<'_>,
        weight_t: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let batch = self.check_forward(&x, weight_t, bias, y, workspace)?;
        self.forward_checked(k, x, weight_t, bias, y, workspace, batch, None)
    }

    /// [`forward`](Self::forward), and x transposed into the three buffers as
    /// [`CsrRef::transpose_into`] makes it, for
    /// [`backward_transposed`](Self::backward_transposed). On more than one thread
    /// the transpose runs beside the product, in the last thread's part, which takes
    /// fewer of x's rows: on the lesson's batch and two threads the parts took 131
    /// and 133 us, where the product's parts had taken 119 and 123 us with the
    /// transpose's 46 us after them (BENCHMARKS.md). `Err`, with nothing written, on a
    /// wrong length.
    ///
    /// ```
    /// use mlp_kernels::{CsrRef, Kernels, SparseLinear};
    /// let x = CsrRef::new(2, 3, &[0, 1, 3], &[1, 0, 2], &[4.0, 2.0, 1.0])?;
    /// let w_t = [1.0f32, -1.0, 2.0, 0.5, 3.0, 0.0];
    /// let layer = SparseLinear::new(3, 2).with_normalisation(0.5, -0.25);
    /// let (k, mut ws) = (Kernels::detect(), vec![0.0; layer.workspace_len()]);
    /// let (mut off, mut idx, mut val) = ([0; 4], [0u32; 3], [0.0f32; 3]);
    /// let mut y = [0.0f32; 4];
    /// let x_t = layer.forward_transposing(&k, x, &w_t, None, &mut y, &mut ws, &mut off, &mut idx, &mut val)?;
    /// let mut y_alone = [0.0f32; 4];
    /// layer.forward(&k, x, &w_t, None, &mut y_alone, &mut ws)?;
    /// assert_eq!(y, y_alone);
    /// assert_eq!((x_t.rows(), x_t.get(0, 1), x_t.get(2, 1)), (3, Some(2.0), Some(1.0)));
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn forward_transposing<'t>(
        &self,
        k: &Kernels,
        x: CsrRef<'_>,
        weight_t: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
        workspace: &mut [f32],
        x_t_offsets: &'t mut [usize],
        x_t_indices: &'t mut [u32],
        x_t_values: &'t mut [f32],
    ) -> Result<CsrRef<'t>, Error> {
        let batch = self.check_forward(&x, weight_t, bias, y, workspace)?;
        x.check_transpose_buffers(x_t_offsets.len(), x_t_indices.len(), x_t_values.len())?;
        #[cfg(feature = "std")]
        if crate::gemm::threads_to_use(self.threads) > 1 {
            use std::sync::Mutex;
            // The buffers until a part transposes into them, then what that gave.
            enum Transpose<'t> {
                Pending(&'t mut [usize], &'t mut [u32], &'t mut [f32]),
                Done(Result<CsrRef<'t>, Error>),
            }
            let state = Mutex::new(Transpose::Pending(x_t_offsets, x_t_indices, x_t_values));
            // The lock is never poisoned (the transpose cannot panic); `into_inner`
            // takes the value without an unwrap.
            let transpose = || {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                // (Held only while the buffers move out; overwritten at once.)
                let moving = Transpose::Done(Err(Error::InvalidParameter {
                    name: "x_t",
                    reason: "being transposed",
                }));
                *st = match core::mem::replace(&mut *st, moving) {
                    Transpose::Pending(o, i, v) => Transpose::Done(x.transpose_into(o, i, v)),
                    done => done,
                };
            };
            // A transposed entry costs about two fifths of a forward entry on 200
            // outputs, i.e. 5.2 vectors of 16. On uniform batches a microbench gave a
            // fifth (30K entries: 46 against 226 us on Zen 4; 0.24 on Sapphire
            // Rapids), but on MNIST's batches the product reads fewer rows of W^T and
            // runs faster: there, on two threads of Sapphire Rapids, the caller waited
            // 15-21% of the job for the transposing part at a fifth and 1-3% at two
            // fifths, and the job took 3-8% less (its cycles, timed in the pool).
            let vectors = self.out_features.div_ceil(16).max(1);
            let cost = x.nnz().saturating_mul(26) / 5 / vectors;
            let beside = Beside {
                run: &transpose,
                cost,
            };
            self.forward_checked(k, x, weight_t, bias, y, workspace, batch, Some(beside))?;
            return match state.into_inner().unwrap_or_else(|p| p.into_inner()) {
                Transpose::Done(x_t) => x_t,
                // The product was not cut into parts (one row, say): transpose here.
                Transpose::Pending(o, i, v) => x.transpose_into(o, i, v),
            };
        }
        self.forward_checked(k, x, weight_t, bias, y, workspace, batch, None)?;
        x.transpose_into(x_t_offsets, x_t_indices, x_t_values)
    }

    /// The checks of a forward pass; returns the batch size.
    fn check_forward(
        &self,
        x: &CsrRef<'_>,
        weight_t: &[f32],
        bias: Option<&[f32]>,
        y: &[f32],
        workspace: &[f32],
    ) -> Result<usize, Error> {
        let batch = self.check(x, weight_t)?;
        let o = self.out_features;
        let y_len = batch.checked_mul(o).ok_or(Error::InvalidParameter {
            name: "y",
            reason: "size overflows usize",
        })?;
        check_len("y (batch x out)", y_len, y.len())?;
        if let Some(b) = bias {
            check_len("bias", o, b.len())?;
        }
        if workspace.len() < o {
            return Err(Error::WorkspaceTooSmall {
                needed: o,
                found: workspace.len(),
            });
        }
        Ok(batch)
    }

    /// The forward pass after `check_forward`, with work to run beside the product.
    #[allow(clippy::too_many_arguments)]
    fn forward_checked(
        &self,
        k: &Kernels,
        x: CsrRef<'_>,
        weight_t: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
        workspace: &mut [f32],
        batch: usize,
        beside: Option<Beside<'_>>,
    ) -> Result<(), Error> {
        let (i, o) = (self.in_features, self.out_features);
        // (Checked by the caller; a short workspace leaves `row` empty, an `Err` below.)
        let (row, rest) = workspace
            .split_at_mut_checked(o)
            .unwrap_or((&mut [], &mut []));
        // The start row: b + shift * (the column sums of W^T, one per output).
        if self.shift != 0.0 {
            column_sums(k, self.threads, weight_t, self.row_stride, row);
            k.isa.vectorize(MapInPlace {
                x: &mut *row,
                f: Scale(self.shift),
            });
        } else {
            row.fill(0.0);
        }
        if let Some(b) = bias {
            k.isa.vectorize(ZipInPlace {
                a: b,
                dst: &mut *row,
                f: Add,
            });
        }
        let wt = MatRef::new(weight_t, i, o, self.row_stride, 1)?;
        k.sparse_gemm_plus_row(
            self.threads,
            self.scale,
            x,
            wt,
            row,
            MatMut::row_major(y, batch, o)?,
            rest,
            beside,
        )
    }

    /// The weight and bias gradients from dy (batch x out) for the input x the layer
    /// saw: dW^T = scale * x^T dy + shift * (a row of colsum(dy) for every input), and
    /// db = colsum(dy); overwritten, or added to with `accumulate`. `Err`, with
    /// nothing written, on a wrong length.
    ///
    /// Each of x's entries reads and writes a row of dW^T here; when the batch is at
    /// hand by columns too, [`backward_transposed`](Self::backward_transposed) is
    /// faster.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        k: &Kernels,
        x: CsrRef<'_>,
        dy: &[f32],
        grad_weight_t: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        accumulate: bool,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let batch = Batch::Rows(x);
        self.backward_from(
            k,
            batch,
            dy,
            grad_weight_t,
            grad_bias,
            accumulate,
            workspace,
        )
    }

    /// [`backward`](Self::backward) from the batch by columns: `x_t` is x transposed
    /// (in x batch; [`CsrRef::transpose_into`] makes it, or
    /// [`forward_transposing`](Self::forward_transposing) beside the forward pass),
    /// the same numbers up to the order of float operations. Row i of dW^T is then one
    /// sum over the samples that have input i, kept in registers and written once,
    /// where `backward` reads and writes the row once per entry: on the lesson's first
    /// layer at 19% density, the product takes about 0.7 of the time (BENCHMARKS.md,
    /// "the weight gradient by columns").
    ///
    /// ```
    /// use mlp_kernels::{CsrRef, Kernels, SparseLinear};
    /// let x = CsrRef::new(2, 3, &[0, 1, 3], &[1, 0, 2], &[4.0, 2.0, 1.0])?;
    /// let (mut off, mut idx, mut val) = ([0; 4], [0u32; 3], [0.0f32; 3]);
    /// let x_t = x.transpose_into(&mut off, &mut idx, &mut val)?;
    /// let layer = SparseLinear::new(3, 2).with_normalisation(0.5, -0.25);
    /// let (k, dy) = (Kernels::detect(), [1.0f32, -1.0, 0.5, 2.0]);
    /// let mut ws = vec![0.0; layer.workspace_len()];
    /// let (mut gw, mut gb) = ([0.0f32; 6], [0.0f32; 2]);
    /// layer.backward(&k, x, &dy, &mut gw, Some(&mut gb), false, &mut ws)?;
    /// let (mut gw_t, mut gb_t) = ([0.0f32; 6], [0.0f32; 2]);
    /// layer.backward_transposed(&k, x_t, &dy, &mut gw_t, Some(&mut gb_t), false, &mut ws)?;
    /// assert_eq!((gw, gb), (gw_t, gb_t)); // exact here; in general to rounding
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn backward_transposed(
        &self,
        k: &Kernels,
        x_t: CsrRef<'_>,
        dy: &[f32],
        grad_weight_t: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        accumulate: bool,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let batch = Batch::Columns(x_t);
        self.backward_from(
            k,
            batch,
            dy,
            grad_weight_t,
            grad_bias,
            accumulate,
            workspace,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_from(
        &self,
        k: &Kernels,
        x: Batch<'_>,
        dy: &[f32],
        grad_weight_t: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        accumulate: bool,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let weight_len = grad_weight_t.len();
        // The gradient has W^T's shape; check it as the weight would be.
        let batch = {
            let len = self.weight_t_len();
            if self.row_stride >= self.out_features && len != weight_len {
                check_len("grad weight_t (in x row_stride)", len, weight_len)?;
            }
            match x {
                Batch::Rows(x) => self.check(&x, grad_weight_t)?,
                Batch::Columns(x_t) => self.check_batch(
                    x_t.cols(),
                    x_t.rows(),
                    "x_t rows (= in_features)",
                    grad_weight_t,
                )?,
            }
        };
        let (i, o, stride) = (self.in_features, self.out_features, self.row_stride);
        let dy_len = batch.checked_mul(o).ok_or(Error::InvalidParameter {
            name: "dy",
            reason: "size overflows usize",
        })?;
        check_len("dy (batch x out)", dy_len, dy.len())?;
        if let Some(db) = grad_bias.as_deref() {
            check_len("grad bias", o, db.len())?;
        }
        let found = workspace.len();
        let Some((col_sums, rest)) = workspace.split_at_mut_checked(o) else {
            return Err(Error::WorkspaceTooSmall { needed: o, found });
        };
        column_sums(k, self.threads, dy, o, col_sums);
        if let Some(db) = grad_bias {
            if accumulate {
                k.isa.vectorize(ZipInPlace {
                    a: col_sums,
                    dst: db,
                    f: Add,
                });
            } else {
                // Both o long (checked above); a zip has no panic path.
                db.iter_mut().zip(&*col_sums).for_each(|(d, &c)| *d = c);
            }
        }
        // Every row of dW^T starts from shift * colsum(dy) (plus what it held).
        k.isa.vectorize(MapInPlace {
            x: &mut *col_sums,
            f: Scale(self.shift),
        });
        let dy = MatRef::row_major(dy, batch, o)?;
        match x {
            Batch::Columns(x_t) if !accumulate => {
                // Each row of dW^T: scale * (its sum over x_t's row) + the shift row.
                k.sparse_gemm_plus_row(
                    self.threads,
                    self.scale,
                    x_t,
                    dy,
                    col_sums,
                    MatMut::new(grad_weight_t, i, o, stride, 1)?,
                    rest,
                    None,
                )
            }
            Batch::Columns(x_t) => {
                fill_rows(k, self.threads, (grad_weight_t, stride), col_sums, true);
                k.sparse_gemm_scaled(
                    self.threads,
                    self.scale,
                    x_t,
                    dy,
                    1.0,
                    MatMut::new(grad_weight_t, i, o, stride, 1)?,
                )
            }
            Batch::Rows(x) => {
                fill_rows(
                    k,
                    self.threads,
                    (grad_weight_t, stride),
                    col_sums,
                    accumulate,
                );
                k.sparse_t_gemm_parts(
                    self.threads,
                    self.scale,
                    x,
                    dy,
                    1.0,
                    MatMut::new(grad_weight_t, i, o, stride, 1)?,
                    &mut [],
                )
            }
        }
    }
}

/// The batch a gradient comes from: by rows (samples) or by columns (inputs).
#[derive(Clone, Copy)]
enum Batch<'a> {
    Rows(CsrRef<'a>),
    Columns(CsrRef<'a>),
}

/// `row[j] = sum over the rows of m[.., j]` (m by rows `width` floats apart, of which
/// the first `row.len()` are summed), in row order for each column, so that the bits
/// do not depend on the threads (which take runs of columns).
fn column_sums(k: &Kernels, threads: usize, m: &[f32], width: usize, row: &mut [f32]) {
    let sums = |lo: usize, dst: &mut [f32]| {
        k.isa.vectorize(SumOfRows {
            m,
            width,
            lo,
            dst,
            accumulate: false,
        })
    };
    #[cfg(feature = "std")]
    if threads > 1 {
        // Runs of 16 columns, each summed over all of m's rows.
        let rows = m.len() / width.max(1);
        crate::parallel::split_mut(threads, row, 16, rows, &sums);
        return;
    }
    let _ = threads;
    sums(0, row)
}

/// The first `row.len()` floats of every row of `g` (rows `stride` apart) set to
/// `row`, or `row` added to them.
fn fill_rows(
    k: &Kernels,
    threads: usize,
    (g, stride): (&mut [f32], usize),
    row: &[f32],
    accumulate: bool,
) {
    if row.is_empty() || stride < row.len() {
        return; // (the layers refuse both; `chunks_exact_mut(0)` would panic)
    }
    let fill = |g: &mut [f32]| {
        for g_row in g.chunks_exact_mut(stride) {
            // (Never `None`: stride >= row.len(), checked above.)
            let Some(g_row) = g_row.get_mut(..row.len()) else {
                continue;
            };
            if accumulate {
                k.isa.vectorize(ZipInPlace {
                    a: row,
                    dst: g_row,
                    f: Add,
                });
            } else {
                // Equal lengths; a zip, not `copy_from_slice`, has no panic path.
                g_row.iter_mut().zip(row).for_each(|(g, &r)| *g = r);
            }
        }
    };
    #[cfg(feature = "std")]
    if threads > 1 {
        // Runs of whole rows.
        crate::parallel::split_mut(threads, g, stride, 1, &|_, rows| fill(rows));
        return;
    }
    let _ = threads;
    fill(g)
}

struct Scale(f32);

impl crate::simd::LaneFn for Scale {
    #[inline(always)]
    fn apply<S: Simd>(&self, s: S, x: S::V) -> S::V {
        s.mul(s.splat(self.0), x)
    }
}
