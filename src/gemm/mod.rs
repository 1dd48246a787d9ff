//! C = alpha * op(A) * op(B) + beta * C on f32, cache-blocked after BLIS.
//!
//! The five loops around the micro-kernel (Van Zee & van de Geijn 2015):
//!
//! ```text
//! for jc in 0..n step NC            B block: KC x NC, packed, lives in L3
//!   for pc in 0..k step KC
//!     pack_b(B[pc.., jc..])
//!     for ic in 0..m step MC        A block: MC x KC, read in place, lives in L2
//!       for jr in 0..nc step NR     B micro-panel: KC x NR, lives in L1
//!         for ir in 0..mc step MR   register tile MR x NR of C
//!           micro-kernel
//! ```
//!
//! Operands are strided views ([`MatRef`], [`MatMut`]): a transpose is a view
//! ([`MatRef::t`]), never a copy. Packing space comes from the caller
//! ([`gemm_workspace_len`]). A column-major C is computed as C^T = B^T A^T so that the
//! micro-kernel always stores along rows. One-row products (m = 1, or n = 1 with a
//! column-major C) skip packing: they are matrix-vector products, memory-bound, and
//! take a separate path without packing. On AVX-512, a product x.W^T with fewer rows
//! than columns (a batch of 16 to 128, smaller than the layer's outputs) is computed
//! as W.x^T into the workspace and copied back (`transposed.rs`): W is then read in
//! place (unless its rows are 4 KiB apart), and only x is packed.

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2_tile;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx512_tile;
mod blocking;
mod caches;
mod gemv;
mod kernel;
mod pack;
#[cfg(feature = "std")]
mod pool;
mod transposed;

#[cfg(feature = "std")]
use crate::simd::MAX_LANES as LANES_MAX;
use blocking::{ALIGN_SLACK, KC, MC, MR_MAX, NC, NR_MAX};
pub use caches::Caches;
pub(crate) use caches::intel as cpu_is_intel;
pub(crate) use kernel::GemmKernel;
use kernel::Tile;

use crate::simd::WithSimd;
use crate::{Error, Kernels};

/// A read-only strided matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
///
/// ```
/// use mlp_kernels::MatRef;
/// let w = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let a = MatRef::row_major(&w, 2, 3)?; // [[1, 2, 3], [4, 5, 6]]
/// let at = a.t(); // 3 x 2, no copy
/// assert_eq!((at.rows(), at.cols(), at.get(2, 1)), (3, 2, Some(6.0)));
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// A mutable strided matrix view whose elements do not overlap: C of [`gemm`].
///
/// ```
/// use mlp_kernels::{MatMut, MatRef, gemm, gemm_workspace_len};
/// let a = [1.0f32, 2.0, 3.0, 4.0];
/// // C is the left 2 x 2 block of a 2 x 3 row-major buffer: row stride 3.
/// let mut buf = [0.0f32, 0.0, -1.0, 0.0, 0.0, -1.0];
/// let c = MatMut::new(&mut buf, 2, 2, 3, 1)?;
/// let mut ws = vec![0.0; gemm_workspace_len(2, 2, 2)];
/// let id = [1.0f32, 0.0, 0.0, 1.0];
/// gemm(1.0, MatRef::row_major(&a, 2, 2)?, MatRef::row_major(&id, 2, 2)?, 0.0, c, &mut ws)?;
/// assert_eq!(buf, [1.0, 2.0, -1.0, 3.0, 4.0, -1.0]); // the third column untouched
/// // Two elements in one place are refused.
/// assert!(MatMut::new(&mut buf, 2, 2, 1, 1).is_err());
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// The largest offset a view touches, or an error if it does not fit `len`.
fn check_view(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Result<(), Error> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        .ok_or(Error::InvalidParameter {
            name: "strides",
            reason: "offsets overflow usize",
        })?;
    if last < len {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            what: "matrix data",
            expected: last.saturating_add(1),
            found: len,
        })
    }
}

/// `Err` unless `len == rows * cols` (without overflow).
fn check_row_major(len: usize, rows: usize, cols: usize) -> Result<(), Error> {
    let n = rows.checked_mul(cols).ok_or(Error::InvalidParameter {
        name: "shape",
        reason: "rows * cols overflows",
    })?;
    crate::error::check_len("matrix data", n, len)
}

impl<'a> MatRef<'a> {
    /// A view with explicit strides; `Err` if an element would fall outside `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, Error> {
        check_view(data.len(), rows, cols, row_stride, col_stride)?;
        Ok(MatRef {
            data,
            rows,
            cols,
            rs: row_stride,
            cs: col_stride,
        })
    }

    /// A contiguous row-major view; `Err` unless `data.len() == rows * cols`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self, Error> {
        check_row_major(data.len(), rows, cols)?;
        Ok(MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        })
    }

    /// The transpose, as a view.
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Element (i, j), or `None` outside the view.
    pub fn get(&self, i: usize, j: usize) -> Option<f32> {
        if i < self.rows && j < self.cols {
            self.data.get(self.offset(i, j)).copied()
        } else {
            None
        }
    }
    /// Element (i, j) for a kernel whose loops stay in the view (debug builds assert
    /// it). Outside, 0 instead of a panic: `new` checked that every element of the
    /// view lies in `data`, so no caller within its bounds gets the 0, and release
    /// builds keep no panic path (scripts/no-panic.sh).
    #[inline(always)]
    pub(crate) fn at(&self, i: usize, j: usize) -> f32 {
        debug_assert!(
            i < self.rows && j < self.cols,
            "({i}, {j}) outside the view"
        );
        self.data.get(self.offset(i, j)).copied().unwrap_or(0.0)
    }
    /// The `len` contiguous floats from element (i, j): along row i when the column
    /// stride is 1, down column j when the row stride is 1. Debug builds assert that
    /// they lie in the view; outside it, as for [`MatRef::at`], an empty slice.
    #[inline(always)]
    pub(crate) fn run(&self, i: usize, j: usize, len: usize) -> &'a [f32] {
        debug_assert!(
            len == 0
                || (self.cs == 1 && i < self.rows && j + len <= self.cols)
                || (self.rs == 1 && j < self.cols && i + len <= self.rows),
            "{len} floats from ({i}, {j}) leave the view"
        );
        let start = self.offset(i, j);
        self.data.get(start..start + len).unwrap_or_default()
    }
    /// The address of element (i, j), for the micro-kernel's pointers; a wrapping
    /// offset, so forming it is never undefined and never panics (dereferencing is
    /// the caller's contract).
    #[inline(always)]
    pub(crate) fn ptr_at(&self, i: usize, j: usize) -> *const f32 {
        debug_assert!(
            i < self.rows && j < self.cols,
            "({i}, {j}) outside the view"
        );
        self.data.as_ptr().wrapping_add(self.offset(i, j))
    }
    /// Where element (i, j) is in `data`.
    #[inline(always)]
    fn offset(&self, i: usize, j: usize) -> usize {
        i * self.rs + j * self.cs
    }
    /// Distance between consecutive rows, in elements.
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    /// Distance between consecutive columns, in elements.
    pub fn col_stride(&self) -> usize {
        self.cs
    }
    /// The first element's address (the view's elements are at offsets from it).
    pub(crate) fn data_ptr(&self) -> *const f32 {
        self.data.as_ptr()
    }
    /// Columns `j0..j1` as a view (clamped to the matrix).
    #[cfg(feature = "std")]
    fn cols_range(self, j0: usize, j1: usize) -> MatRef<'a> {
        let (j0, j1) = (j0.min(self.cols), j1.min(self.cols));
        let off = if j0 < j1 && self.rows > 0 {
            j0 * self.cs
        } else {
            0
        };
        MatRef {
            data: &self.data[off..],
            cols: j1 - j0,
            ..self
        }
    }
}

impl<'a> MatMut<'a> {
    /// A view with explicit strides; `Err` if an element would fall outside `data` or
    /// two elements would share a place.
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, Error> {
        check_view(data.len(), rows, cols, row_stride, col_stride)?;
        // An empty matrix has no elements to share a place.
        let distinct = rows == 0
            || cols == 0
            || rows <= 1 && (cols <= 1 || col_stride >= 1)
            || cols <= 1 && row_stride >= 1
            || col_stride >= 1 && row_stride >= cols * col_stride
            || row_stride >= 1 && col_stride >= rows * row_stride;
        if !distinct {
            return Err(Error::InvalidParameter {
                name: "strides",
                reason: "elements of C would overlap",
            });
        }
        Ok(MatMut {
            data,
            rows,
            cols,
            rs: row_stride,
            cs: col_stride,
        })
    }

    /// A contiguous row-major view; `Err` unless `data.len() == rows * cols`.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self, Error> {
        check_row_major(data.len(), rows, cols)?;
        Ok(MatMut {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        })
    }

    /// The transpose, as a view.
    pub fn t(self) -> MatMut<'a> {
        MatMut {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Element (i, j), or `None` outside the view.
    pub fn get(&self, i: usize, j: usize) -> Option<f32> {
        self.as_ref().get(i, j)
    }
    /// The same elements, read-only.
    pub fn as_ref(&self) -> MatRef<'_> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }
    /// Pointer, row stride and column stride, for kernels that own the view.
    pub(crate) fn raw_parts(&mut self) -> (*mut f32, usize, usize) {
        (self.data.as_mut_ptr(), self.rs, self.cs)
    }
    fn raw(&mut self) -> RawMat {
        RawMat {
            ptr: self.data.as_mut_ptr(),
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }
}

/// C as raw parts, so that threads can each own a disjoint set of its columns.
#[derive(Clone, Copy)]
struct RawMat {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// C and the workspace as seen by the parts of a threaded product.
#[cfg(feature = "std")]
#[derive(Clone, Copy)]
struct SendMat(RawMat);
#[cfg(feature = "std")]
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: each part of a `Cut` (`gemm_threaded`, `run_side_by_side`) uses a disjoint
// block of C and of the workspace (like a `&mut` to each), and the call returns only
// after every part is done.
#[cfg(feature = "std")]
unsafe impl Sync for SendMat {}
// Methods, not field access: a closure then captures the whole Sync wrapper.
#[cfg(feature = "std")]
impl SendMat {
    fn get(self) -> RawMat {
        self.0
    }
}
#[cfg(feature = "std")]
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}
#[cfg(feature = "std")]
unsafe impl Sync for SendPtr {}

impl RawMat {
    fn t(self) -> RawMat {
        RawMat {
            ptr: self.ptr,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// The workspace, in f32, that [`gemm`] needs for an m x n x k product, on any backend.
///
/// ```
/// // Depth 784 in blocks of at most 392 (AVX2's two), times 200 rows of A in whole
/// // 12-row tiles and 200 columns of B in whole 32-column panels, plus alignment:
/// assert!(mlp_kernels::gemm_workspace_len(200, 200, 784) <= 392 * (204 + 224) + 32);
/// ```
pub fn gemm_workspace_len(m: usize, n: usize, k: usize) -> usize {
    if m == 0 || n == 0 || k == 0 {
        return 0;
    }
    // The deepest depth block any CPU takes: k split evenly in blocks of at most KC
    // (as `blocked` splits it; fewer, deeper blocks on CPUs with larger caches).
    let kc = div_ceil(k, div_ceil(k, KC));
    let one = |m: usize, n: usize| {
        let b = n.min(NC).div_ceil(NR_MAX) * NR_MAX;
        let a = m.min(MC).div_ceil(MR_MAX) * MR_MAX;
        kc * (a + b)
    };
    one(m, n).max(one(n, m)) + 2 * ALIGN_SLACK
}

/// The blocks of an m x n x k product with the blocks of `caches` and `S`'s tile, and
/// the floats each packed block takes from the workspace.
struct Blocks {
    /// Depth of each block: k split evenly in blocks of at most the CPU's KC.
    kc_step: usize,
    /// Rows and columns of C per block, whole tiles.
    mc_max: usize,
    nc_max: usize,
    /// Packed B's block and packed A's block, in floats.
    b_len: usize,
    a_len: usize,
}

impl Blocks {
    fn new<S: GemmKernel>(caches: &Caches, m: usize, n: usize, k: usize) -> Blocks {
        // This CPU's blocks, each at most the constant that sized the workspace.
        let (kc_max, mc_max, nc_max) = blocking::blocks(caches, S::NR);
        // (Non-zero already; `max` shows the compiler so, for the steps below.)
        let (mc_max, nc_max) = (mc_max.max(S::MR), nc_max.max(S::NR));
        debug_assert!(kc_max <= KC && mc_max <= MC && nc_max <= NC);
        debug_assert!(mc_max.is_multiple_of(S::MR) && nc_max.is_multiple_of(S::NR));
        // Equal depth blocks (784 = 4 x 196, not 3 x 256 + 16): a thin last block would
        // pay a full pass over C for little work.
        let kc_step = div_ceil(k, div_ceil(k, kc_max)).max(1);
        Blocks {
            kc_step,
            mc_max,
            nc_max,
            b_len: kc_step * n.min(nc_max).div_ceil(S::NR) * S::NR,
            a_len: kc_step * m.min(mc_max).div_ceil(S::MR) * S::MR,
        }
    }

    /// The floats [`blocked`] takes from its workspace: the alignment, the packed B
    /// block, and the packed A block if `pack_a` ([`packs_a`]). At most
    /// [`gemm_workspace_len`].
    fn workspace_len(&self, pack_a: bool) -> usize {
        ALIGN_SLACK + self.b_len + if pack_a { self.a_len } else { 0 }
    }
}

impl Kernels {
    /// C = alpha * A * B + beta * C, where each operand is a strided view (pass
    /// `a.t()` for A^T).
    ///
    /// BLAS rules: `beta == 0` never reads C (NaN in C does not leak); `k == 0` or
    /// `alpha == 0` only scales C by beta; `m == 0` or `n == 0` does nothing.
    /// `Err` if the shapes disagree or `workspace` is shorter than
    /// [`gemm_workspace_len`]; nothing is written then.
    ///
    /// ```
    /// use mlp_kernels::{Kernels, MatMut, MatRef, gemm_workspace_len};
    /// let a = [1.0f32, 2.0, 3.0, 4.0]; // 2 x 2
    /// let b = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]; // 2 x 3
    /// let mut c = [0.0f32; 6];
    /// let mut ws = vec![0.0; gemm_workspace_len(2, 3, 2)];
    /// Kernels::detect().gemm(
    ///     1.0,
    ///     MatRef::row_major(&a, 2, 2)?,
    ///     MatRef::row_major(&b, 2, 3)?,
    ///     0.0,
    ///     MatMut::row_major(&mut c, 2, 3)?,
    ///     &mut ws,
    /// )?;
    /// assert_eq!(c, [3.0, 2.0, 2.0, 7.0, 4.0, 4.0]);
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    pub fn gemm(
        &self,
        alpha: f32,
        a: MatRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        mut c: MatMut<'_>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        check_shapes(&a, &b, &c)?;
        let need = gemm_workspace_len(a.rows, b.cols, a.cols);
        if workspace.len() < need {
            return Err(Error::WorkspaceTooSmall {
                needed: need,
                found: workspace.len(),
            });
        }
        let raw = c.raw();
        // SAFETY: the views were checked against their slices, C's elements are
        // distinct and exclusively borrowed, and the workspace is long enough.
        unsafe { self.gemm_raw(alpha, a, b, beta, raw, workspace) };
        Ok(())
    }

    /// [`Kernels::gemm`] on `threads` threads (0: as many as the machine has), each
    /// computing a block of columns (or of rows, when C is narrow). The workspace
    /// must be [`gemm_threaded_workspace_len`]: [`gemm_workspace_len`] for each part
    /// that runs (never more parts than cores, nor than the product has vectors).
    ///
    /// The threads come from a pool started on first use and kept; after that a call
    /// allocates nothing. [`prepare_threads`] starts them ahead of time. At most as
    /// many threads as the machine has cores are used.
    ///
    /// ```
    /// use mlp_kernels::{Kernels, MatMut, MatRef, gemm_workspace_len, prepare_threads};
    /// let (m, n, k) = (64, 96, 32);
    /// let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32).collect();
    /// let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32).collect();
    /// let (mut c1, mut c2) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
    /// prepare_threads(2); // optional: start the pool outside the hot loop
    /// let mut ws = vec![0.0; 2 * gemm_workspace_len(m, n, k)];
    /// let kern = Kernels::detect();
    /// let (av, bv) = (MatRef::row_major(&a, m, k)?, MatRef::row_major(&b, k, n)?);
    /// kern.gemm_threaded(2, 1.0, av, bv, 0.0, MatMut::row_major(&mut c2, m, n)?, &mut ws)?;
    /// kern.gemm(1.0, av, bv, 0.0, MatMut::row_major(&mut c1, m, n)?, &mut ws)?;
    /// assert_eq!(c1, c2); // small integers: exact either way
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_threaded(
        &self,
        threads: usize,
        alpha: f32,
        a: MatRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        Cut::new(self, threads, alpha, a, b, beta, c, workspace)?.run();
        Ok(())
    }

    /// # Safety
    /// `c` must describe distinct, exclusively owned, valid elements; `a`, `b` and `c`
    /// must agree in shape; `ws` must hold `gemm_workspace_len(m, n, k)` floats.
    unsafe fn gemm_raw(
        &self,
        alpha: f32,
        a: MatRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: RawMat,
        ws: &mut [f32],
    ) {
        let (m, n, k) = (a.rows, b.cols, a.cols);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 || alpha == 0.0 {
            // SAFETY: forwarded.
            unsafe { scale_c(c, beta) };
            return;
        }
        // Store along rows: a column-major C is computed as C^T = B^T A^T.
        let (a, b, c) = if c.cs != 1 && (c.rs == 1 || c.cols == 1) {
            (b.t(), a.t(), c.t())
        } else {
            (a, b, c)
        };
        // The swap keeps every condition of this function's contract, which is what
        // `Product::with_simd` relies on.
        let p = Product {
            alpha,
            a,
            b,
            beta,
            c,
            ws,
        };
        self.isa.vectorize(p);
    }
}

/// The operands of one product, as `gemm_raw` checked them. Made only there: its
/// fields carry `gemm_raw`'s safety contract.
struct Product<'a, 'w> {
    alpha: f32,
    a: MatRef<'a>,
    b: MatRef<'a>,
    beta: f32,
    c: RawMat,
    ws: &'w mut [f32],
}

impl WithSimd for Product<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, s: S) {
        let Product {
            alpha,
            a,
            b,
            beta,
            c,
            ws,
        } = self;
        if c.rows == 1 && c.cs == 1 && gemv::applies(&a, &b) {
            // SAFETY: a `Product` is made only by `gemm_raw`, whose caller guarantees
            // C's elements, the shapes and the workspace.
            unsafe { gemv::gemv(s, alpha, &a, &b, beta, c.ptr) };
            return;
        }
        // The caches are read once, for the route's room and for the blocks.
        let caches = Caches::detect();
        let routed = transposed::applies::<S>(&caches, &a, &b, &c, ws.len());
        // C^T, n x m, at the workspace's end when the product runs transposed.
        let c_t_len = if routed { c.rows * c.cols } else { 0 };
        let Some((ws, tail)) =
            (ws.len().checked_sub(c_t_len)).and_then(|at| ws.split_at_mut_checked(at))
        else {
            debug_assert!(false, "`applies` checks the room for C^T");
            return;
        };
        // SAFETY (all three): as for `gemv`, and C^T is `tail`, n x m floats apart from
        // C and from `ws`. One call of `blocked` for both routes: each call is a whole
        // loop nest inlined, and the firmware's flash is small.
        let (pa, pb, pc) = if routed {
            (b.t(), a.t(), unsafe {
                transposed::c_transposed(s, c, beta, tail)
            })
        } else {
            (a, b, c)
        };
        unsafe { blocked(s, &caches, alpha, &pa, &pb, beta, pc, ws) };
        if routed {
            unsafe { transposed::copy_back(s, pc, c) };
        }
    }
}

fn check_shapes(a: &MatRef<'_>, b: &MatRef<'_>, c: &MatMut<'_>) -> Result<(), Error> {
    crate::error::check_len("B rows (= A cols, k)", a.cols, b.rows)?;
    crate::error::check_len("C rows (= A rows, m)", a.rows, c.rows)?;
    crate::error::check_len("C cols (= B cols, n)", b.cols, c.cols)
}

/// C = beta * C, with beta = 0 writing zeros without reading.
///
/// # Safety
/// As `gemm_raw`.
unsafe fn scale_c(c: RawMat, beta: f32) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            // SAFETY: (i, j) is an element of C.
            let x = unsafe { &mut *c.ptr.add(i * c.rs + j * c.cs) };
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
    }
}

/// ceil(a / b), and a for b = 0: through `NonZero`, whose division has no zero check
/// to panic, even where the optimiser keeps `usize::div_ceil` out of line (opt-level
/// "s" on Cortex-M).
#[inline(always)]
fn div_ceil(a: usize, b: usize) -> usize {
    let b = core::num::NonZeroUsize::new(b).unwrap_or(core::num::NonZeroUsize::MIN);
    a / b + usize::from(a % b != 0)
}

/// Whether [`blocked`] packs A (m x k) for a product n wide with `nr`-column panels.
///
/// A is read in place when its rows are contiguous. A^T-like A (columns contiguous)
/// is packed once enough B panels reuse it: in place, each step of depth would
/// touch a new, partly used cache line. Not when its columns are at most a line
/// apart (fc3's dW: A = dy^T, 10 rows, columns 10 floats apart): the steps then
/// walk along whole lines, as packed A's would.
/// Row-major A is packed too when its row stride is a multiple of 4 KiB: the MR
/// rows of a tile would all map to one L1 set and evict each other.
fn packs_a(a: &MatRef<'_>, n: usize, nr: usize) -> bool {
    if a.cs == 1 {
        a.rs.is_multiple_of(1024) && a.rows > 1
    } else {
        const FLOATS_PER_LINE: usize = 64 / 4;
        a.rs != 1 || (n.min(NC) >= 4 * nr && a.cs > FLOATS_PER_LINE)
    }
}

/// The five loops around the micro-kernel.
///
/// # Safety
/// As `gemm_raw`, except the workspace: `blocked` checks that `ws` holds the
/// [`Blocks::workspace_len`] it uses, and computes nothing otherwise.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn blocked<S: GemmKernel>(
    s: S,
    caches: &Caches,
    alpha: f32,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    beta: f32,
    c: RawMat,
    ws: &mut [f32],
) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    let (mr, nr) = (S::MR, S::NR);
    let blocks = Blocks::new::<S>(caches, m, n, k);
    let Blocks {
        kc_step,
        mc_max,
        nc_max,
        b_len,
        ..
    } = blocks;
    let pack_a_needed = packs_a(a, n, nr);
    // 64-byte alignment of the packed B keeps each vector load within a cache line.
    let skip = ws.as_ptr().align_offset(64).min(ALIGN_SLACK);
    // The contract sized `ws` for these blocks; a shorter one cannot reach here.
    let ws_len = ws.len();
    let enough = ws_len >= blocks.workspace_len(pack_a_needed);
    let split = ws
        .get_mut(skip..)
        .and_then(|w| w.split_at_mut_checked(b_len));
    let Some((bpack, apack)) = split.filter(|_| enough) else {
        debug_assert!(false, "gemm workspace of {ws_len} floats");
        return;
    };
    // B is packed when many row tiles reuse each panel: packed rows are aligned and
    // contiguous, in place they straddle cache lines. With few row tiles the copy
    // costs more than it saves, and contiguous rows are read in place, unless their
    // stride is a multiple of 512 bytes (the rows of a micro-panel would then share a
    // few L1 sets). So is a B that fits in half of L1 whatever m is: it stays there
    // for every row tile (64^3 on Zen 4: 6.25 us packed, 5.60 us in place). A last,
    // partial panel is always packed (zero-padded), so that no load leaves the matrix.
    let b_fits_l1 = k.saturating_mul(n).saturating_mul(4) <= caches.l1d / 2;
    let b_in_place = b.cs == 1 && (m <= 4 * mr || b_fits_l1) && !b.rs.is_multiple_of(128);
    for jc in (0..n).step_by(nc_max) {
        let nc = nc_max.min(n - jc);
        // A last panel of at most EDGE_COLS columns is computed beside the whole
        // panel before it (`GemmKernel::tile_with_edge`), from that panel's column.
        let edge_cols = nc % nr;
        let edge_beside =
            (nc > nr && (1..=S::EDGE_COLS).contains(&edge_cols)).then(|| nc - edge_cols - nr);
        // The panels computed alone; the pair has a loop of its own below.
        let alone = edge_beside.unwrap_or(nc);
        for pc in (0..k).step_by(kc_step) {
            let kc = kc_step.min(k - pc);
            let full = if b_in_place { nc / nr * nr } else { 0 };
            if full < nc {
                pack::pack_b(s, b, pc, kc, jc + full, nc - full, bpack);
            }
            let beta = if pc == 0 { beta } else { 1.0 };
            for ic in (0..m).step_by(mc_max) {
                let mc = mc_max.min(m - ic);
                if pack_a_needed {
                    pack::pack_a(s, a, ic, mc, pc, kc, apack);
                }
                // The B micro-panel from column jr, in place or packed.
                let panel = |jr: usize| {
                    if jr < full {
                        (b.ptr_at(pc, jc + jr), b.rs)
                    } else {
                        (bpack.as_ptr().wrapping_add((jr - full) * kc), nr)
                    }
                };
                // The tile of rows ir.. and of the `cols` columns from jr.
                let tile_at = |ir: usize, jr: usize, cols: usize| {
                    let (ap, ars, acs) = if pack_a_needed {
                        (apack.as_ptr().wrapping_add(ir * kc), 1, mr)
                    } else {
                        (a.ptr_at(ic + ir, pc), a.rs, a.cs)
                    };
                    let (bp, brs) = panel(jr);
                    Tile {
                        kc,
                        a: ap,
                        ars,
                        acs,
                        b: bp,
                        brs,
                        // (ic + ir, jc + jr) is an element of C.
                        c: c.ptr.wrapping_add((ic + ir) * c.rs + (jc + jr) * c.cs),
                        crs: c.rs,
                        ccs: c.cs,
                        cols,
                        alpha,
                        beta,
                    }
                };
                for jr in (0..alone).step_by(nr) {
                    let cols = nr.min(nc - jr);
                    for ir in (0..mc).step_by(mr) {
                        // SAFETY: A's rows ic+ir.. and depth pc..pc+kc are in the view;
                        // the B panel, in place or packed, has kc rows of nr floats
                        // at stride brs; C's tile is in C.
                        unsafe { s.tile(&tile_at(ir, jr, cols), mr.min(mc - ir)) };
                    }
                }
                if let Some(jr) = edge_beside {
                    for ir in (0..mc).step_by(mr) {
                        let (t, edge) = (tile_at(ir, jr, nr), tile_at(ir, jr + nr, nc - jr - nr));
                        // SAFETY: as above, for both panels: the last is nr columns
                        // to the right of the other, as many rows and as deep.
                        unsafe { s.tile_with_edge(&t, &edge, mr.min(mc - ir)) };
                    }
                }
            }
        }
    }
}

/// [`Kernels::gemm`] on the best backend of this CPU.
pub fn gemm(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    workspace: &mut [f32],
) -> Result<(), Error> {
    Kernels::detect().gemm(alpha, a, b, beta, c, workspace)
}

/// How a threaded product is cut: along n (columns, in whole 16-lane vectors) when C
/// is at least as wide as tall, else along m (rows, in whole largest register tiles),
/// each share rounded up to a whole unit (200 columns on two threads: 112 + 88). Cuts
/// at the unit nearest an even share (96 + 104) were no faster: the lesson's 200^3
/// product on two threads took 84.5 against 83.6 us (Zen 4, medians of 3000). On
/// Zen 3, whose AVX2 tile is 16 columns wide (7 tiles against 5.5), this cut took
/// 0.95-0.97x the even cut's time at 200^3 and 0.96-1.03x at 200x200x784 (3 runs).
/// [`Split::on_tiles`] then moves a column cut onto the backend's panels where that
/// is as even.
#[cfg(feature = "std")]
struct Split {
    split_n: bool,
    len: usize,
    step: usize,
    parts: usize,
}

#[cfg(feature = "std")]
impl Split {
    fn new(threads: usize, m: usize, n: usize) -> Split {
        Split::with_parts(threads_to_use(threads), m, n)
    }
    /// At most `parts` parts, whatever the machine's cores.
    fn with_parts(parts: usize, m: usize, n: usize) -> Split {
        let split_n = n >= m;
        let (len, unit) = if split_n { (n, LANES_MAX) } else { (m, MR_MAX) };
        let mut parts = parts.min(len.div_ceil(unit)).max(1);
        let step_for = |parts: usize| (len.div_ceil(parts).div_ceil(unit) * unit).max(unit);
        let mut step = step_for(parts);
        // Never a last part one row (or one column of a column-major C) wide: it would
        // be a one-row product, whose path sums the whole depth in one chain where the
        // blocked path sums it block by block, and the bits would depend on the
        // threads (13 rows on two threads were cut 12 + 1; now they are not cut).
        while parts > 1 && len - len.saturating_sub(1) / step * step == 1 {
            parts -= 1;
            step = step_for(parts);
        }
        Split {
            split_n,
            len,
            step,
            parts,
        }
    }
    /// The cut moved onto the backend's panels (`nr` columns, and a last panel of at
    /// most `edge` columns that the tile computes beside a whole one), where a whole
    /// number of panels and such an edge hold an even share: each part but the last
    /// then ends on a panel and an edge, and the last takes the rest (at least two
    /// columns, never more than the others). Otherwise, and
    /// for cuts along m, the cut is unchanged; so is the number of parts, which sizes
    /// the workspace whatever the backend.
    ///
    /// AVX-512 (32-column panels, an 8-column edge): 200 columns on two threads are
    /// cut 104 + 96, three panels and an edge beside three panels, not 112 + 88, of
    /// which the first has a 16-column panel alone that costs a whole one. On
    /// Sapphire Rapids, one thread, x.W^T with 784 deep took 220 us for the 112
    /// columns and 167 for the 88, against 199 for the 104 and 165 for the 96
    /// (medians of 400); at 200 deep, 54.7 and 41.8 against 50.3 and 41.3 us.
    fn on_tiles(self, (nr, edge): (usize, usize)) -> Split {
        if !self.split_n || self.parts < 2 || edge == 0 || nr == 0 {
            return self;
        }
        let share = self.len.div_ceil(self.parts);
        let step = share / nr * nr + edge;
        let last = self.len.saturating_sub((self.parts - 1) * step);
        // A whole panel at least, no wider than the old step (so no part is empty
        // and the last is at least as wide), and never a last part one column wide.
        if share < nr || step < share || step > self.step || last <= 1 {
            return self;
        }
        Split { step, ..self }
    }
    fn one(m: usize, n: usize) -> Split {
        Split {
            split_n: n >= m,
            len: n.max(m),
            step: n.max(m),
            parts: 1,
        }
    }
}

/// A backend's panel width and the widest last panel its tile computes beside a
/// whole one ([`GemmKernel::NR`], [`GemmKernel::EDGE_COLS`]).
#[cfg(feature = "std")]
fn tile_columns(backend: crate::Backend) -> (usize, usize) {
    use crate::simd::Portable;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use crate::simd::{Avx2, Avx512};
        match backend {
            crate::Backend::Avx2 => return (Avx2::NR, Avx2::EDGE_COLS),
            crate::Backend::Avx512 => return (Avx512::NR, Avx512::EDGE_COLS),
            crate::Backend::Portable => {}
        }
    }
    let _ = backend;
    (Portable::NR, Portable::EDGE_COLS)
}

/// A product cut into parts as [`Kernels::gemm_threaded`] cuts it, checked, each part
/// a whole single-threaded product on its own block of C and of the workspace.
#[cfg(feature = "std")]
pub(crate) struct Cut<'a> {
    kernels: Kernels,
    alpha: f32,
    a: MatRef<'a>,
    b: MatRef<'a>,
    beta: f32,
    c: SendMat,
    ws: SendPtr,
    /// Floats of the workspace each part has.
    per: usize,
    plan: Split,
    /// C and the workspace are borrowed for as long as the cut lives.
    _borrows: core::marker::PhantomData<&'a mut [f32]>,
}

#[cfg(feature = "std")]
impl<'a> Cut<'a> {
    /// `Err` if the shapes disagree or `workspace` is shorter than
    /// [`gemm_threaded_workspace_len`] for `threads`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        kernels: &Kernels,
        threads: usize,
        alpha: f32,
        a: MatRef<'a>,
        b: MatRef<'a>,
        beta: f32,
        c: MatMut<'a>,
        workspace: &'a mut [f32],
    ) -> Result<Cut<'a>, Error> {
        check_shapes(&a, &b, &c)?;
        let (m, n, k) = (a.rows, b.cols, a.cols);
        // Products with nothing to multiply (an empty C, k = 0, alpha = 0) are not
        // split at all.
        let plan = if m == 0 || n == 0 || k == 0 || alpha == 0.0 {
            Split::one(m, n)
        } else {
            Split::new(threads, m, n).on_tiles(tile_columns(kernels.backend()))
        };
        Cut::with_plan(kernels, plan, alpha, a, b, beta, c, workspace)
    }

    /// [`Cut::new`] with the cut made; the shapes checked.
    #[allow(clippy::too_many_arguments)]
    fn with_plan(
        kernels: &Kernels,
        plan: Split,
        alpha: f32,
        a: MatRef<'a>,
        b: MatRef<'a>,
        beta: f32,
        mut c: MatMut<'a>,
        workspace: &'a mut [f32],
    ) -> Result<Cut<'a>, Error> {
        let (m, n, k) = (a.rows, b.cols, a.cols);
        let per = gemm_workspace_len(m, n, k);
        let need = per.saturating_mul(plan.parts);
        if workspace.len() < need {
            return Err(Error::WorkspaceTooSmall {
                needed: need,
                found: workspace.len(),
            });
        }
        Ok(Cut {
            kernels: *kernels,
            alpha,
            a,
            b,
            beta,
            c: SendMat(c.raw()),
            ws: SendPtr(workspace.as_mut_ptr()),
            per,
            plan,
            _borrows: core::marker::PhantomData,
        })
    }

    /// The parts the product is cut into.
    pub(crate) fn parts(&self) -> usize {
        self.plan.parts
    }

    /// Runs every part, on the pool and the calling thread.
    pub(crate) fn run(self) {
        if self.parts() == 1 {
            // SAFETY: the only part, run once.
            unsafe { self.part(0) };
            return;
        }
        // SAFETY: `pool::run` gives each part to one thread, once, and returns when
        // all are done.
        pool::run(self.parts(), &|t| unsafe { self.part(t) });
    }

    /// Part `t` of the product (nothing when t is past the last).
    ///
    /// # Safety
    /// No other call of `part(t)` with the same `t` on this cut may run at the same
    /// time: each part writes its own block of C and of the workspace.
    unsafe fn part(&self, t: usize) {
        let Split {
            split_n, len, step, ..
        } = self.plan;
        let (lo, hi) = (
            t.saturating_mul(step),
            (t + 1).saturating_mul(step).min(len),
        );
        if lo >= hi || t >= self.parts() {
            return;
        }
        let (a, b, raw) = (self.a, self.b, self.c.get());
        let (a_t, b_t, c_t) = if split_n {
            let c_t = RawMat {
                ptr: raw.ptr.wrapping_add(lo * raw.cs),
                cols: hi - lo,
                ..raw
            };
            (a, b.cols_range(lo, hi), c_t)
        } else {
            let c_t = RawMat {
                ptr: raw.ptr.wrapping_add(lo * raw.rs),
                rows: hi - lo,
                ..raw
            };
            (a.t().cols_range(lo, hi).t(), b, c_t)
        };
        // SAFETY: part t owns a disjoint block of C's elements (columns or rows lo..hi;
        // C's elements are distinct, checked by `MatMut`) and its own `per` floats of
        // the workspace, which holds `per * parts` (checked in `new`); no other call
        // runs part t at the same time (this function's contract).
        unsafe {
            let w = core::slice::from_raw_parts_mut(self.ws.get().add(t * self.per), self.per);
            self.kernels
                .gemm_raw(self.alpha, a_t, b_t, self.beta, c_t, w)
        }
    }
}

/// Runs two products at once, `first`'s parts and then `second`'s in one job of the
/// pool: the two products of a layer's backward pass on threads of their own, each
/// whole instead of each cut across every thread.
#[cfg(feature = "std")]
pub(crate) fn run_side_by_side(first: Cut<'_>, second: Cut<'_>) {
    let p = first.parts();
    // SAFETY: `pool::run` gives each t to one thread, once (t < p: the first cut's
    // part t, else the second's t - p), and returns when all are done.
    pool::run(p + second.parts(), &|t| unsafe {
        if t < p {
            first.part(t)
        } else {
            second.part(t - p)
        }
    });
}

/// The workspace, in f32, that [`Kernels::gemm_threaded`] needs for an m x n x k
/// product on `threads` threads (0: the core count): [`gemm_workspace_len`] for each
/// part that runs. It depends on the machine (its cores), never on the backend.
///
/// ```
/// use mlp_kernels::{gemm_threaded_workspace_len, gemm_workspace_len};
/// // Asking for 64 threads pays only for those that run.
/// let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
/// let per = gemm_workspace_len(200, 200, 784);
/// assert!(gemm_threaded_workspace_len(64, 200, 200, 784) <= per * cores.min(13));
/// ```
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub fn gemm_threaded_workspace_len(threads: usize, m: usize, n: usize, k: usize) -> usize {
    let parts = if m == 0 || n == 0 || k == 0 {
        1
    } else {
        Split::new(threads, m, n).parts
    };
    gemm_workspace_len(m, n, k).saturating_mul(parts)
}

/// The most parts a threaded call splits into.
#[cfg(feature = "std")]
pub(crate) const MAX_PARTS: usize = 64;

/// The threads a call asking for `threads` (0: all) gets: never more than the
/// machine's cores (more only adds waiting) nor [`MAX_PARTS`].
#[cfg(feature = "std")]
pub(crate) fn threads_to_use(threads: usize) -> usize {
    let cores = pool::cores();
    let t = if threads == 0 { cores } else { threads };
    t.min(cores).clamp(1, MAX_PARTS)
}

/// Runs `f(0..parts)` on the pool and the calling thread; returns when all are done.
#[cfg(feature = "std")]
pub(crate) fn run_parts(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    pool::run(parts, f)
}

/// Starts the worker threads that [`Kernels::gemm_threaded`] uses for `threads`
/// threads (the caller's own thread counts as one; 0: one per core), so that no later
/// call spawns or allocates. Never more than the machine's cores: asking for more
/// threads than that only adds waiting. Idempotent.
///
/// ```
/// // Before a training loop that counts its allocations, or has a deadline.
/// mlp_kernels::prepare_threads(2);
/// mlp_kernels::prepare_threads(2); // does nothing the second time
/// ```
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub fn prepare_threads(threads: usize) {
    // No more workers than a call can use: cores less the caller's own thread.
    pool::ensure_workers(threads_to_use(threads) - 1);
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::{Cut, MatMut, MatRef, Split, gemm_workspace_len, run_side_by_side, tile_columns};
    use crate::{Backend, Error, Kernels};

    fn floats(seed: u32, n: usize) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Column cuts move onto AVX-512's panels where a panel count and its 8-column
    /// edge hold an even share, and nowhere else; the number of parts never moves.
    #[test]
    fn column_cuts_fall_on_the_tiles() {
        let (wide, narrow) = ((32, 8), (16, 0));
        // (parts, m, n) -> (step with the 16-lane unit, step on AVX-512's tiles)
        for (parts, m, n, step, on_tiles) in [
            (2, 200, 200, 112, 104), // 3 panels + edge | 3 panels
            (2, 200, 784, 400, 392), // 12 panels + edge, twice
            (3, 40, 200, 80, 72),    // 2 panels + edge, twice, and 56 columns
            (5, 40, 200, 48, 40),    // a panel and an edge, five times
            (2, 200, 240, 128, 128), // 120 is 3 panels and 24 columns: unchanged
            (2, 40, 40, 32, 32),     // less than a panel a share: unchanged
            (2, 784, 200, 396, 396), // cut by rows: unchanged
        ] {
            let plan = Split::with_parts(parts, m, n);
            assert_eq!(plan.step, step, "{parts} parts of {m}x{n}");
            let moved = Split::with_parts(parts, m, n).on_tiles(wide);
            assert_eq!((moved.step, moved.parts), (on_tiles, plan.parts), "{m}x{n}");
            // Every column (or row) in exactly one part, none empty.
            assert!(moved.step * moved.parts >= moved.len);
            assert!((moved.parts - 1) * moved.step < moved.len);
            let kept = Split::with_parts(parts, m, n).on_tiles(narrow);
            assert_eq!((kept.step, kept.parts), (step, plan.parts), "AVX2 {m}x{n}");
        }
    }

    /// Two products side by side, each cut into more parts than this machine may have
    /// cores (the pool runs them all whatever its workers), by columns and by rows:
    /// the bits of each product on one thread.
    #[test]
    fn side_by_side_in_many_parts_gives_one_threads_bits() -> Result<(), Error> {
        // C 40 x 200 (cut by columns) and 200 x 40 (by rows), depth 300 (two blocks).
        let (m0, n0, m1, n1, k) = (40, 200, 200, 40, 300);
        let (a0, b0) = (floats(1, m0 * k), floats(2, k * n0));
        let (a1, b1) = (floats(3, m1 * k), floats(4, k * n1));
        for kern in Backend::supported().filter_map(|b| Kernels::new(b).ok()) {
            let (av0, bv0) = (
                MatRef::row_major(&a0, m0, k)?,
                MatRef::row_major(&b0, k, n0)?,
            );
            let (av1, bv1) = (
                MatRef::row_major(&a1, m1, k)?,
                MatRef::row_major(&b1, k, n1)?,
            );
            let mut ws = vec![0.0; 16 * gemm_workspace_len(200, 200, k)];
            let (mut want0, mut want1) = (vec![0.0f32; m0 * n0], vec![0.0f32; m1 * n1]);
            kern.gemm(
                1.0,
                av0,
                bv0,
                0.0,
                MatMut::row_major(&mut want0, m0, n0)?,
                &mut ws,
            )?;
            kern.gemm(
                1.0,
                av1,
                bv1,
                0.0,
                MatMut::row_major(&mut want1, m1, n1)?,
                &mut ws,
            )?;
            for (p0, p1) in [(1, 1), (3, 2), (2, 3), (5, 4)] {
                let tiles = tile_columns(kern.backend());
                let (plan0, plan1) = (
                    Split::with_parts(p0, m0, n0).on_tiles(tiles),
                    Split::with_parts(p1, m1, n1).on_tiles(tiles),
                );
                assert!(plan0.split_n && !plan1.split_n);
                let (mut c0, mut c1) = (vec![f32::NAN; m0 * n0], vec![f32::NAN; m1 * n1]);
                let (ws0, ws1) = ws.split_at_mut(8 * gemm_workspace_len(200, 200, k));
                let cut0 = Cut::with_plan(
                    &kern,
                    plan0,
                    1.0,
                    av0,
                    bv0,
                    0.0,
                    MatMut::row_major(&mut c0, m0, n0)?,
                    ws0,
                )?;
                let cut1 = Cut::with_plan(
                    &kern,
                    plan1,
                    1.0,
                    av1,
                    bv1,
                    0.0,
                    MatMut::row_major(&mut c1, m1, n1)?,
                    ws1,
                )?;
                assert_eq!((cut0.parts(), cut1.parts()), (p0, p1));
                run_side_by_side(cut0, cut1);
                let what = format!("{} parts {p0} + {p1}", kern.backend().name());
                assert!(c0 == want0, "first product, {what}");
                assert!(c1 == want1, "second product, {what}");
            }
        }
        Ok(())
    }
}
