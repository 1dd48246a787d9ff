//! Sparse times dense: C = alpha * S * op(B) + beta * C and C = alpha * S^T * B + beta * C
//! for a compressed-row S ([`CsrRef`]), with the BLAS rules of [`Kernels::gemm`].
//!
//! A product with a sparse S does 2 * nnz * n flops instead of 2 * m * k * n. Below the
//! break-even density (measured in BENCHMARKS.md; one for each product) that is faster
//! than any dense GEMM; above it both products expand S and call the dense GEMM, given
//! the workspace for it.

mod csr;
mod kernel;
mod on_lines;
mod pairs;

pub use csr::CsrRef;
use kernel::{Base, Out, Rows};
pub(crate) use on_lines::on_lines_len;

use crate::error::check_len;
use crate::gemm::{GemmKernel, gemm_workspace_len};
use crate::simd::WithSimd;
use crate::{Error, Kernels, MatMut, MatRef};

/// The density (nnz / (m * k)) above which [`Kernels::sparse_gemm`] expands S and runs
/// the dense GEMM, when the workspace allows, on every CPU but Intel's with AVX-512
/// ([`Kernels::sparse_break_even_densities`]): the sparse kernel's flops are
/// 2 * nnz * n at a lower rate than the dense kernel's 2 * m * k * n. On the lesson's
/// first layer (200 x 200 x 784, Zen 4) the two cross at about 62% (`cargo bench
/// --bench sparse`, BENCHMARKS.md).
pub const SPARSE_BREAK_EVEN_DENSITY: f64 = 0.6;

/// The same for [`Kernels::sparse_t_gemm`], whose scatter reads and writes a row of C
/// for every entry: it crosses the dense GEMM at about 33% on the lesson's weight
/// gradient (Zen 4).
pub const SPARSE_T_BREAK_EVEN_DENSITY: f64 = 0.3;

/// [`SPARSE_BREAK_EVEN_DENSITY`] on Intel's AVX-512 cores, measured on Sapphire
/// Rapids, whose two full-width FMA units run the dense GEMM twice as fast as Zen 4's
/// halves while the sparse kernels stay bound by their vector loads (Intel cores with
/// one 512-bit FMA unit get these values too, unmeasured). There the sparse kernel
/// crossed its own dense path (S expanded, then the GEMM) at about 32% on the lesson's
/// forward product (200 x 200 x 784) and at about 42% on its weight gradient by
/// columns (784 x 200 x 200, B's rows copied onto lines); medians of 15 calls at 30,
/// 40 and 50%.
pub const SPARSE_BREAK_EVEN_DENSITY_INTEL_AVX512: f64 = 0.35;

/// [`SPARSE_T_BREAK_EVEN_DENSITY`] on Intel's AVX-512 cores: the scatter crossed its
/// dense path at 17-18% on both of the lesson's shapes on Sapphire Rapids.
pub const SPARSE_T_BREAK_EVEN_DENSITY_INTEL_AVX512: f64 = 0.15;

/// The workspace, in f32, that lets [`Kernels::sparse_gemm`] take every path for an
/// m x n x k product (S is m x k): the dense GEMM above the break-even density (S
/// expanded, m * k, plus [`gemm_workspace_len`]), and the packing of a B whose rows are
/// not contiguous or the copy of B's rows onto cache lines (k * n, rows rounded up to
/// 16 floats, plus 15).
///
/// Less is allowed: with B's rows contiguous the sparse kernel needs none, and
/// without room for the dense path it stays sparse at any density.
pub fn sparse_gemm_workspace_len(m: usize, n: usize, k: usize) -> usize {
    let dense = m
        .saturating_mul(k)
        .saturating_add(gemm_workspace_len(m, n, k));
    dense.max(on_lines::on_lines_len(k, n))
}

/// Work for the threaded row form to run beside its product, in the last part, whose
/// rows are cut so that its entries plus `cost` match each other part's entries:
/// `cost` is the work counted in entries of S (each one row of B's `n` columns).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "std"), allow(dead_code))] // (no parts without threads)
pub(crate) struct Beside<'f> {
    pub run: &'f (dyn Fn() + Sync),
    pub cost: usize,
}

fn check_sparse_shapes(
    s: &CsrRef<'_>,
    s_cols: usize,
    b: &MatRef<'_>,
    c: &MatMut<'_>,
    s_rows: usize,
) -> Result<(), Error> {
    let _ = s;
    check_len("B rows (= S cols, k)", s_cols, b.rows())?;
    check_len("C rows (= S rows, m)", s_rows, c.rows())?;
    check_len("C cols (= B cols, n)", b.cols(), c.cols())
}

impl Kernels {
    /// C = alpha * S * B + beta * C for a sparse S (m x k) and a dense strided B
    /// (k x n; pass `b.t()` for B^T).
    ///
    /// BLAS rules as [`Kernels::gemm`]: `beta == 0` never reads C, `alpha == 0` or
    /// an S without entries only scales C. The sums run over each row's entries in
    /// order, so the result does not depend on the density.
    ///
    /// Where consecutive rows of S share most of their columns (a batch by columns, as
    /// [`CsrRef::transpose_into`] makes it), the AVX2 backend takes them two at a time,
    /// each load of B's row feeding both, with the same bits (but a sum that
    /// underflows to -0.0 may come out +0.0); it merges them in 36 KiB
    /// of stack on x86_64 (none elsewhere).
    ///
    /// `workspace`: none when B's rows are contiguous (`B.t()` of a row-major matrix
    /// is not) and the sparse path is wanted; k * n floats to pack a B whose rows are
    /// strided; [`sparse_gemm_workspace_len`] to let the call run the dense GEMM above
    /// the break-even density ([`Kernels::sparse_break_even_densities`]), and, where a
    /// vector is a 64-byte cache line (AVX-512) and S reads each row of B many times,
    /// copy B's rows onto lines first (same bits; a row off a line makes every load of
    /// it cross two). `Err`, with nothing written, when the shapes disagree or B needs
    /// packing and the workspace is short.
    ///
    /// ```
    /// use mlp_kernels::{CsrRef, Kernels, MatMut, MatRef};
    /// // S = [[0, 2, 0], [1, 0, 3]], B = 3 x 2
    /// let s = CsrRef::new(2, 3, &[0, 1, 3], &[1, 0, 2], &[2.0, 1.0, 3.0])?;
    /// let b = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    /// let mut c = [0.0f32; 4];
    /// Kernels::detect().sparse_gemm(
    ///     1.0,
    ///     s,
    ///     MatRef::row_major(&b, 3, 2)?,
    ///     0.0,
    ///     MatMut::row_major(&mut c, 2, 2)?,
    ///     &mut [],
    /// )?;
    /// assert_eq!(c, [6.0, 8.0, 16.0, 20.0]);
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    pub fn sparse_gemm(
        &self,
        alpha: f32,
        s: CsrRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        self.sparse_gemm_parts(1, alpha, s, b, Base::Scale(beta), c, workspace, None)
    }

    /// [`Kernels::sparse_gemm`] on `threads` threads (0: the core count), each taking
    /// a run of S's rows with about the same number of entries. The same workspace
    /// rules, with [`gemm_workspace_len`] per thread for the dense path.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[allow(clippy::too_many_arguments)]
    pub fn sparse_gemm_threaded(
        &self,
        threads: usize,
        alpha: f32,
        s: CsrRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        self.sparse_gemm_parts(threads, alpha, s, b, Base::Scale(beta), c, workspace, None)
    }

    /// C = alpha * S * B + row (each row of C), as [`SparseLinear`](crate::nn::SparseLinear) needs;
    /// `beside` runs in the last part if the product is cut into parts (else not at all).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sparse_gemm_plus_row(
        &self,
        threads: usize,
        alpha: f32,
        s: CsrRef<'_>,
        b: MatRef<'_>,
        row: &[f32],
        c: MatMut<'_>,
        workspace: &mut [f32],
        beside: Option<Beside<'_>>,
    ) -> Result<(), Error> {
        check_len("row (= C cols)", c.cols(), row.len())?;
        let base = Base::Row(row.as_ptr());
        self.sparse_gemm_parts(threads, alpha, s, b, base, c, workspace, beside)
    }

    /// C = alpha * S * B + beta * C on `threads`, B's rows contiguous (no workspace).
    pub(crate) fn sparse_gemm_scaled(
        &self,
        threads: usize,
        alpha: f32,
        s: CsrRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
    ) -> Result<(), Error> {
        self.sparse_gemm_parts(threads, alpha, s, b, Base::Scale(beta), c, &mut [], None)
    }

    #[allow(clippy::too_many_arguments)]
    fn sparse_gemm_parts(
        &self,
        threads: usize,
        alpha: f32,
        s: CsrRef<'_>,
        b: MatRef<'_>,
        base: Base,
        mut c: MatMut<'_>,
        workspace: &mut [f32],
        beside: Option<Beside<'_>>,
    ) -> Result<(), Error> {
        check_sparse_shapes(&s, s.cols(), &b, &c, s.rows())?;
        let (m, n, k) = (s.rows(), b.cols(), s.cols());
        let threads = threads_for(threads);
        #[cfg(not(feature = "std"))]
        let _ = beside;
        if let Base::Scale(beta) = base
            && dense_fits(self, &s, false, n, threads, workspace.len())
        {
            return self.dense_product(threads, alpha, &s, false, b, beta, c, workspace);
        }
        // B's rows must be contiguous for the kernel; pack B otherwise.
        let contiguous = b.col_stride() == 1 || n <= 1;
        let (mut bptr, mut brs) = if contiguous {
            (b.data_ptr(), b.row_stride())
        } else {
            let need = k.saturating_mul(n);
            if workspace.len() < need {
                return Err(Error::WorkspaceTooSmall {
                    needed: need,
                    found: workspace.len(),
                });
            }
            let packed = &mut workspace[..need];
            for (p, row) in packed.chunks_exact_mut(n.max(1)).enumerate() {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = b.at(p, j);
                }
            }
            (packed.as_ptr(), n)
        };
        if m == 0 || n == 0 {
            return Ok(());
        }
        let (ptr, rs, cs) = c.raw_parts();
        let out = Out { ptr, rs, cs };
        if alpha == 0.0 || k == 0 {
            // BLAS: S and B are not read, C only gets its base.
            match base {
                // SAFETY: C's elements are distinct and exclusively borrowed.
                Base::Scale(beta) => unsafe { scale_rows(out, m, n, beta) },
                Base::Row(row) => {
                    for i in 0..m {
                        for j in 0..n {
                            // SAFETY: (i, j) is C's; the row holds n floats (checked).
                            unsafe { *ptr.add(i * rs + j * cs) = *row.add(j) };
                        }
                    }
                }
            }
            return Ok(());
        }
        // Contiguous rows that are read often go onto cache lines first, where that pays.
        if contiguous
            && let Some(rows) = on_lines::copy_onto_lines(self, &b, s.nnz(), threads, workspace)
        {
            (bptr, brs) = (rows.ptr, rows.rs);
        }
        let job = RowsJob {
            s,
            b: Rows { ptr: bptr, rs: brs },
            n,
            alpha,
            base,
            c: out,
        };
        if s.nnz() == 0 || threads == 1 {
            // SAFETY: the views were checked (every column index of S is a row of B),
            // C is exclusively borrowed, and a row base holds n floats.
            unsafe { job.run(self, 0, m) };
            return Ok(());
        }
        #[cfg(feature = "std")]
        {
            let cuts = balanced_cuts(&s, threads, beside.map_or(0, |w| w.cost));
            let k_ = *self;
            let job = SendJob(job);
            let part = move |t: usize| {
                if let Some(w) = beside
                    && t + 1 == threads
                {
                    (w.run)();
                }
                let job = job.get();
                // SAFETY: part t owns C's rows cuts[t]..cuts[t + 1], disjoint from
                // every other part's, and the caller waits for every part.
                unsafe { job.run(&k_, cuts[t], cuts[t + 1]) };
            };
            crate::gemm::run_parts(threads, &part);
        }
        Ok(())
    }

    /// C = alpha * S^T * B + beta * C for a sparse S (m x k), a dense B (m x n) and C
    /// (k x n): the weight-gradient form, without forming S^T. Each entry (r, p, v) of
    /// S adds alpha * v * B[r, ..] to row p of C, so the sums run in S's row order.
    ///
    /// BLAS rules as [`Kernels::gemm`]. `workspace`: none for the sparse path;
    /// [`sparse_gemm_workspace_len`]`(k, n, m)` to let it run the dense GEMM
    /// (S^T expanded) above the break-even density
    /// ([`Kernels::sparse_break_even_densities`]).
    ///
    /// ```
    /// use mlp_kernels::{CsrRef, Kernels, MatMut, MatRef};
    /// // S = [[0, 2, 0], [1, 0, 3]] (2 x 3), B = 2 x 2, C = S^T B is 3 x 2
    /// let s = CsrRef::new(2, 3, &[0, 1, 3], &[1, 0, 2], &[2.0, 1.0, 3.0])?;
    /// let b = [1.0f32, 2.0, 3.0, 4.0];
    /// let mut c = [0.0f32; 6];
    /// Kernels::detect().sparse_t_gemm(
    ///     1.0,
    ///     s,
    ///     MatRef::row_major(&b, 2, 2)?,
    ///     0.0,
    ///     MatMut::row_major(&mut c, 3, 2)?,
    ///     &mut [],
    /// )?;
    /// assert_eq!(c, [3.0, 4.0, 2.0, 4.0, 9.0, 12.0]);
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    pub fn sparse_t_gemm(
        &self,
        alpha: f32,
        s: CsrRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        self.sparse_t_gemm_parts(1, alpha, s, b, beta, c, workspace)
    }

    /// [`Kernels::sparse_t_gemm`] on `threads` threads (0: the core count), each
    /// taking a run of C's rows (every thread reads all of S, and of each row the
    /// entries that fall in its run). The same workspace
    /// rules, with [`gemm_workspace_len`] per thread for the dense path.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[allow(clippy::too_many_arguments)]
    pub fn sparse_t_gemm_threaded(
        &self,
        threads: usize,
        alpha: f32,
        s: CsrRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        self.sparse_t_gemm_parts(threads, alpha, s, b, beta, c, workspace)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sparse_t_gemm_parts(
        &self,
        threads: usize,
        alpha: f32,
        s: CsrRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        mut c: MatMut<'_>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        // S^T is k x m: its columns are S's rows.
        check_sparse_shapes(&s, s.rows(), &b, &c, s.cols())?;
        let n = b.cols();
        let threads = threads_for(threads);
        if dense_fits(self, &s, true, n, threads, workspace.len()) {
            return self.dense_product(threads, alpha, &s, true, b, beta, c, workspace);
        }
        let (ptr, rs, cs) = c.raw_parts();
        let out = Out { ptr, rs, cs };
        // SAFETY: C's elements are distinct and exclusively borrowed.
        unsafe { scale_rows(out, c.rows(), n, beta) };
        if alpha == 0.0 || s.nnz() == 0 || n == 0 {
            return Ok(());
        }
        if cs != 1 {
            // A C with strided rows: one element at a time.
            for r in 0..s.rows() {
                let (idx, val) = s.row(r);
                for (&p, &v) in idx.iter().zip(val) {
                    for j in 0..n {
                        let bj = b.at(r, j);
                        // SAFETY: (p, j) is an element of C (p < S cols = C rows).
                        unsafe {
                            let x = &mut *ptr.add(p as usize * rs + j * cs);
                            *x = libm::fmaf(alpha * v, bj, *x);
                        }
                    }
                }
            }
            return Ok(());
        }
        let bin = Out {
            ptr: b.data_ptr().cast_mut(),
            rs: b.row_stride(),
            cs: b.col_stride(),
        };
        let job = ScatterJob {
            s,
            b: bin,
            n,
            alpha,
            c: out,
            lo: 0,
            hi: s.cols(),
        };
        // C's rows (S's columns) in even runs, one per thread.
        let rows = s.cols();
        let parts = threads.min(rows).max(1);
        if parts == 1 {
            self.isa.vectorize(job);
            return Ok(());
        }
        #[cfg(feature = "std")]
        {
            let step = rows.div_ceil(parts);
            let k_ = *self;
            let job = SendScatter(job);
            let part = move |t: usize| {
                let job = job.get();
                let (lo, hi) = ((t * step).min(rows), ((t + 1) * step).min(rows));
                if lo < hi {
                    // Part t owns C's rows lo..hi, disjoint from the other parts'.
                    k_.isa.vectorize(ScatterJob { lo, hi, ..job });
                }
            };
            crate::gemm::run_parts(parts, &part);
        }
        Ok(())
    }
}

/// Whether a product with S (or S^T, `transpose`) takes the dense GEMM: S above the
/// break-even density, and room for S expanded plus the GEMM's workspace for the
/// product's shape with C's `n` columns.
fn dense_fits(
    k: &Kernels,
    s: &CsrRef<'_>,
    transpose: bool,
    n: usize,
    threads: usize,
    room: usize,
) -> bool {
    let (rows, depth) = if transpose {
        (s.cols(), s.rows())
    } else {
        (s.rows(), s.cols())
    };
    #[cfg(feature = "std")]
    let gemm_len = crate::gemm_threaded_workspace_len(threads, rows, n, depth);
    #[cfg(not(feature = "std"))]
    let gemm_len = {
        let _ = threads;
        gemm_workspace_len(rows, n, depth)
    };
    let (forward, scatter) = k.sparse_break_even_densities();
    let break_even = if transpose { scatter } else { forward };
    s.density() > break_even && room >= rows.saturating_mul(depth).saturating_add(gemm_len)
}

impl Kernels {
    /// The densities above which [`Kernels::sparse_gemm`] and
    /// [`Kernels::sparse_t_gemm`] expand S and run the dense GEMM (given the room), on
    /// this backend and CPU: [`SPARSE_BREAK_EVEN_DENSITY_INTEL_AVX512`] and
    /// [`SPARSE_T_BREAK_EVEN_DENSITY_INTEL_AVX512`] for the AVX-512 backend on an
    /// Intel CPU, [`SPARSE_BREAK_EVEN_DENSITY`] and [`SPARSE_T_BREAK_EVEN_DENSITY`]
    /// (measured on Zen 4) elsewhere.
    ///
    /// ```
    /// let (forward, scatter) = mlp_kernels::Kernels::detect().sparse_break_even_densities();
    /// assert!(0.0 < scatter && scatter <= forward && forward < 1.0);
    /// ```
    pub fn sparse_break_even_densities(&self) -> (f64, f64) {
        if self.backend() == crate::Backend::Avx512 && crate::gemm::cpu_is_intel() {
            (
                SPARSE_BREAK_EVEN_DENSITY_INTEL_AVX512,
                SPARSE_T_BREAK_EVEN_DENSITY_INTEL_AVX512,
            )
        } else {
            (SPARSE_BREAK_EVEN_DENSITY, SPARSE_T_BREAK_EVEN_DENSITY)
        }
    }

    /// C = alpha * A * B + beta * C with A = S (or S^T, `transpose`) expanded into
    /// the front of `workspace`, which [`dense_fits`] checked.
    #[allow(clippy::too_many_arguments)]
    fn dense_product(
        &self,
        threads: usize,
        alpha: f32,
        s: &CsrRef<'_>,
        transpose: bool,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let (m, k) = (s.rows(), s.cols());
        // `dense_fits` checked the length.
        let Some((dense, rest)) = workspace.split_at_mut_checked(m * k) else {
            return Err(Error::WorkspaceTooSmall {
                needed: m * k,
                found: workspace.len(),
            });
        };
        // Element (i, p) of S at i * k + p, or, transposed, at p * m + i.
        if transpose {
            dense.fill(0.0);
            for i in 0..m {
                let (idx, val) = s.row(i);
                for (&p, &v) in idx.iter().zip(val) {
                    if let Some(x) = dense.get_mut(i + p as usize * m) {
                        *x = v;
                    }
                }
            }
        } else {
            // Row by row, each filled and written while in L1.
            for (i, row) in dense.chunks_exact_mut(k.max(1)).enumerate() {
                row.fill(0.0);
                let (idx, val) = s.row(i);
                for (&p, &v) in idx.iter().zip(val) {
                    if let Some(x) = row.get_mut(p as usize) {
                        *x = v;
                    }
                }
            }
        }
        let a = if transpose {
            MatRef::row_major(dense, k, m)?
        } else {
            MatRef::row_major(dense, m, k)?
        };
        #[cfg(feature = "std")]
        if threads > 1 {
            return self.gemm_threaded(threads, alpha, a, b, beta, c, rest);
        }
        let _ = threads;
        self.gemm(alpha, a, b, beta, c, rest)
    }
}

fn threads_for(threads: usize) -> usize {
    #[cfg(feature = "std")]
    {
        crate::gemm::threads_to_use(threads)
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = threads;
        1
    }
}

/// Row boundaries that give each of `parts` runs about the same work, in entries,
/// when the last run also does `extra` entries' worth of other work.
#[cfg(feature = "std")]
fn balanced_cuts(
    s: &CsrRef<'_>,
    parts: usize,
    extra: usize,
) -> [usize; crate::gemm::MAX_PARTS + 1] {
    let mut cuts = [s.rows(); crate::gemm::MAX_PARTS + 1];
    let (offsets, _, _) = s.parts();
    let nnz = s.nnz();
    let work = nnz.saturating_add(extra);
    cuts[0] = 0;
    for (t, cut) in cuts.iter_mut().enumerate().take(parts).skip(1) {
        let want = (work / parts * t + work % parts * t / parts).min(nnz);
        // The first row whose start is at or past the share.
        *cut = offsets.partition_point(|&o| o < want).min(s.rows());
    }
    cuts
}

/// C = beta * C over `rows` x `n`; beta = 0 writes zeros without reading.
///
/// # Safety
/// The elements must be C's, owned exclusively.
unsafe fn scale_rows(c: Out, rows: usize, n: usize, beta: f32) {
    if beta == 1.0 {
        return;
    }
    for i in 0..rows {
        for j in 0..n {
            // SAFETY: (i, j) is an element of C.
            let x = unsafe { &mut *c.ptr.add(i * c.rs + j * c.cs) };
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
    }
}

/// The operands of [`Kernels::sparse_gemm`], checked; made only there.
#[derive(Clone, Copy)]
struct RowsJob<'a> {
    s: CsrRef<'a>,
    b: Rows,
    n: usize,
    alpha: f32,
    base: Base,
    c: Out,
}

impl RowsJob<'_> {
    /// # Safety
    /// Rows lo..hi of C are owned by the caller; the job was made from checked views.
    unsafe fn run(&self, k: &Kernels, lo: usize, hi: usize) {
        let mut scratch = pairs::Scratch::new();
        k.isa.vectorize(RowRange {
            job: self,
            lo,
            hi,
            scratch: &mut scratch,
        });
    }
}

struct RowRange<'j, 'a> {
    job: &'j RowsJob<'a>,
    lo: usize,
    hi: usize,
    scratch: &'j mut pairs::Scratch,
}

impl WithSimd for RowRange<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, s: S) {
        let j = self.job;
        // SAFETY: a `RowRange` is made only by `RowsJob::run`, whose caller owns the rows.
        unsafe {
            // Consecutive rows that share most columns go two at a time first (same bits).
            let lo = pairs::rows_in_pairs(
                s,
                &j.s,
                self.lo,
                self.hi,
                j.b,
                j.n,
                j.alpha,
                j.base,
                j.c,
                self.scratch,
            );
            kernel::rows_times_dense(s, &j.s, lo, self.hi, j.b, j.n, j.alpha, j.base, j.c)
        }
    }
}

#[cfg(feature = "std")]
#[derive(Clone, Copy)]
struct SendJob<'a>(RowsJob<'a>);
// SAFETY: the raw parts in the job are C's rows (each part writes only its own) and
// read-only B and base rows; the caller of `run_parts` waits for every part.
#[cfg(feature = "std")]
unsafe impl Sync for SendJob<'_> {}
#[cfg(feature = "std")]
impl<'a> SendJob<'a> {
    fn get(self) -> RowsJob<'a> {
        self.0
    }
}

#[derive(Clone, Copy)]
struct ScatterJob<'a> {
    s: CsrRef<'a>,
    b: Out,
    n: usize,
    alpha: f32,
    c: Out,
    /// The run of C's rows to write.
    lo: usize,
    hi: usize,
}

#[cfg(feature = "std")]
#[derive(Clone, Copy)]
struct SendScatter<'a>(ScatterJob<'a>);
// SAFETY: the parts write disjoint runs of C's rows and only read S and B; the caller
// of `run_parts` waits for every part.
#[cfg(feature = "std")]
unsafe impl Sync for SendScatter<'_> {}
#[cfg(feature = "std")]
impl<'a> SendScatter<'a> {
    fn get(self) -> ScatterJob<'a> {
        self.0
    }
}

impl WithSimd for ScatterJob<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, s: S) {
        // SAFETY: made only by `sparse_t_gemm` from checked views; C's rows are
        // contiguous and exclusively borrowed.
        unsafe {
            kernel::scatter_rows(
                s, &self.s, self.lo, self.hi, self.b, self.n, self.alpha, self.c,
            )
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// 40 rows of 10 entries each (S is 40 x 20, every other column).
    fn even_rows() -> (Vec<usize>, Vec<u32>, Vec<f32>) {
        let offsets = (0..=40).map(|r| r * 10).collect();
        let indices = (0..40).flat_map(|_| (0..20).step_by(2)).collect();
        (offsets, indices, vec![1.0; 400])
    }

    #[test]
    fn the_last_part_takes_fewer_rows_by_the_cost_beside() -> Result<(), Error> {
        let (o, i, v) = even_rows();
        let s = CsrRef::new(40, 20, &o, &i, &v)?;
        // 400 entries + 100 beside over two parts: 250 each, so the first part takes
        // 25 rows and the last 15 rows (150 entries) and the 100.
        assert_eq!(balanced_cuts(&s, 2, 100)[..3], [0, 25, 40]);
        assert_eq!(balanced_cuts(&s, 2, 0)[..3], [0, 20, 40]);
        // More work beside than a share: the last part gets no rows, never past the end.
        assert_eq!(balanced_cuts(&s, 2, 10_000)[..3], [0, 40, 40]);
        Ok(())
    }

    #[test]
    fn work_beside_runs_once_when_the_product_is_cut() -> Result<(), Error> {
        let (o, i, v) = even_rows();
        let s = CsrRef::new(40, 20, &o, &i, &v)?;
        let b = vec![1.0f32; 20 * 3];
        let row = [0.5f32; 3];
        let runs = AtomicUsize::new(0);
        let count = || {
            runs.fetch_add(1, Ordering::Relaxed);
        };
        for threads in [1, 2] {
            runs.store(0, Ordering::Relaxed);
            let mut c = vec![0.0f32; 40 * 3];
            Kernels::detect().sparse_gemm_plus_row(
                threads,
                1.0,
                s,
                MatRef::row_major(&b, 20, 3)?,
                &row,
                MatMut::row_major(&mut c, 40, 3)?,
                &mut [],
                Some(Beside {
                    run: &count,
                    cost: 100,
                }),
            )?;
            // Each row: ten entries of 1 times 1, plus 0.5.
            assert!(c.iter().all(|&x| x == 10.5), "threads {threads}");
            let cut = crate::gemm::threads_to_use(threads) > 1;
            assert_eq!(
                runs.load(Ordering::Relaxed),
                usize::from(cut),
                "threads {threads}"
            );
        }
        Ok(())
    }
}
