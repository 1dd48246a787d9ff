//! A compressed-sparse-row view: the layout of `scipy.sparse.csr_matrix` and of
//! `torch.sparse_csr_tensor` (row offsets, column indices, values), checked once when
//! the view is made so that the kernels can trust it.

use crate::Error;
use crate::checked::{item, part};

/// A read-only sparse matrix in compressed-row form.
///
/// Row `i` holds the entries `row_offsets[i]..row_offsets[i + 1]` of `col_indices`
/// and `values`. Within a row the column indices are strictly increasing (sorted,
/// no duplicates) and below `cols`; [`CsrRef::new`] checks all of it.
///
/// ```
/// use mlp_kernels::CsrRef;
/// // [[0, 2, 0],
/// //  [0, 0, 0],
/// //  [1, 0, 3]]
/// let offsets = [0, 1, 1, 3];
/// let cols = [1u32, 0, 2];
/// let vals = [2.0f32, 1.0, 3.0];
/// let s = CsrRef::new(3, 3, &offsets, &cols, &vals)?;
/// assert_eq!((s.nnz(), s.get(2, 2), s.get(1, 1)), (3, Some(3.0), Some(0.0)));
/// // Unsorted columns are refused, with the row that holds them.
/// assert!(CsrRef::new(3, 3, &offsets, &[1, 2, 0], &vals).is_err());
/// # Ok::<(), mlp_kernels::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CsrRef<'a> {
    rows: usize,
    cols: usize,
    offsets: &'a [usize],
    indices: &'a [u32],
    values: &'a [f32],
}

impl<'a> CsrRef<'a> {
    /// A checked view: `row_offsets` has `rows + 1` non-decreasing entries from 0 to
    /// `nnz`, `col_indices` and `values` hold `nnz` entries each, and every row's
    /// column indices are strictly increasing and below `cols`.
    pub fn new(
        rows: usize,
        cols: usize,
        row_offsets: &'a [usize],
        col_indices: &'a [u32],
        values: &'a [f32],
    ) -> Result<Self, Error> {
        let want = rows.checked_add(1).ok_or(Error::InvalidParameter {
            name: "rows",
            reason: "rows + 1 overflows usize",
        })?;
        crate::error::check_len("row_offsets (rows + 1)", want, row_offsets.len())?;
        crate::error::check_len("values (= col_indices)", col_indices.len(), values.len())?;
        // Column indices are u32: a wider matrix could not name all its columns.
        if u32::try_from(cols.saturating_sub(1)).is_err() {
            return Err(Error::InvalidParameter {
                name: "cols",
                reason: "more columns than a u32 index can name",
            });
        }
        if row_offsets.first() != Some(&0) {
            return Err(Error::InvalidSparse {
                row: 0,
                reason: "row_offsets must start at 0",
            });
        }
        for (row, w) in row_offsets.windows(2).enumerate() {
            let (lo, hi) = (w[0], w[1]);
            if hi < lo {
                return Err(Error::InvalidSparse {
                    row,
                    reason: "row_offsets decrease",
                });
            }
            let Some(idx) = col_indices.get(lo..hi) else {
                return Err(Error::InvalidSparse {
                    row,
                    reason: "row_offsets point past col_indices",
                });
            };
            if idx.last().is_some_and(|&j| j as usize >= cols) {
                return Err(Error::InvalidSparse {
                    row,
                    reason: "a column index is out of range",
                });
            }
            if idx.windows(2).any(|p| p[1] <= p[0]) {
                return Err(Error::InvalidSparse {
                    row,
                    reason: "column indices are not strictly increasing (unsorted or repeated)",
                });
            }
        }
        let nnz = row_offsets.last().copied().unwrap_or(0);
        crate::error::check_len("col_indices (= row_offsets[rows])", nnz, col_indices.len())?;
        Ok(CsrRef {
            rows,
            cols,
            offsets: row_offsets,
            indices: col_indices,
            values,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }
    /// The row offsets, column indices and values, as given.
    pub fn parts(&self) -> (&'a [usize], &'a [u32], &'a [f32]) {
        (self.offsets, self.indices, self.values)
    }
    /// The column indices and values of row `i` (empty outside the matrix).
    pub fn row(&self, i: usize) -> (&'a [u32], &'a [f32]) {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            // Checked in `new`: lo <= hi <= nnz.
            (Some(&lo), Some(&hi)) => (part(self.indices, lo..hi), part(self.values, lo..hi)),
            _ => (&[], &[]),
        }
    }
    /// Element (i, j): the stored value, 0 where none is stored, `None` outside.
    pub fn get(&self, i: usize, j: usize) -> Option<f32> {
        if i >= self.rows || j >= self.cols {
            return None;
        }
        let (idx, val) = self.row(i);
        Some(match idx.binary_search(&(j as u32)) {
            Ok(p) => item(val, p, 0.0),
            Err(_) => 0.0,
        })
    }

    /// Stored entries per row and column: nnz / (rows * cols), 0 for an empty shape.
    pub fn density(&self) -> f64 {
        let cells = self.rows as f64 * self.cols as f64;
        if cells == 0.0 {
            0.0
        } else {
            self.nnz() as f64 / cells
        }
    }

    /// The checks of [`transpose_into`](Self::transpose_into) on its buffers' lengths.
    pub(crate) fn check_transpose_buffers(
        &self,
        offsets: usize,
        indices: usize,
        values: usize,
    ) -> Result<(), Error> {
        let nnz = self.nnz();
        let want = self.cols.checked_add(1).ok_or(Error::InvalidParameter {
            name: "cols",
            reason: "cols + 1 overflows usize",
        })?;
        crate::error::check_len("row_offsets (cols + 1)", want, offsets)?;
        crate::error::check_len("col_indices (nnz)", nnz, indices)?;
        crate::error::check_len("values (nnz)", nnz, values)?;
        if u32::try_from(self.rows.saturating_sub(1)).is_err() {
            return Err(Error::InvalidParameter {
                name: "rows",
                reason: "more rows than a u32 index can name",
            });
        }
        Ok(())
    }

    /// The transpose, written into the caller's buffers (`cols + 1` offsets and
    /// `nnz` indices and values), as a view of them. A counting sort by column:
    /// O(nnz + cols), nothing allocated, and rows come out sorted because the rows of
    /// `self` are visited in order.
    ///
    /// ```
    /// use mlp_kernels::CsrRef;
    /// let s = CsrRef::new(2, 3, &[0, 2, 3], &[0, 2, 1], &[1.0, 2.0, 3.0])?; // [[1, 0, 2], [0, 3, 0]]
    /// let (mut o, mut c, mut v) = ([0usize; 4], [0u32; 3], [0.0f32; 3]);
    /// let t = s.transpose_into(&mut o, &mut c, &mut v)?;
    /// assert_eq!((t.rows(), t.cols(), t.get(2, 0), t.get(1, 1)), (3, 2, Some(2.0), Some(3.0)));
    /// # Ok::<(), mlp_kernels::Error>(())
    /// ```
    pub fn transpose_into<'b>(
        &self,
        row_offsets: &'b mut [usize],
        col_indices: &'b mut [u32],
        values: &'b mut [f32],
    ) -> Result<CsrRef<'b>, Error> {
        self.check_transpose_buffers(row_offsets.len(), col_indices.len(), values.len())?;
        // Counts land one place to the right, so that the prefix sum leaves each
        // column's start in offsets[j] and its end in offsets[j + 1].
        row_offsets.fill(0);
        for &j in self.indices {
            // SAFETY: `new` checked every row's column indices below cols, and its
            // offsets run from 0 to nnz = indices.len(), so the rows cover all of
            // `indices`; row_offsets holds cols + 1 (checked above).
            unsafe { *row_offsets.get_unchecked_mut(j as usize + 1) += 1 };
        }
        let mut sum = 0;
        for o in row_offsets.iter_mut() {
            sum += *o;
            *o = sum;
        }
        // Fill: offsets[j] is column j's next free place; afterwards it is the end of
        // column j, i.e. the start of column j + 1, so shift back by one. Unchecked:
        // the three bounds tests per entry cost this loop 15-25% (the lesson's
        // batch, 30K entries: 54-62 us against 46 on Zen 4).
        for (i, w) in self.offsets.windows(2).enumerate() {
            for e in w[0]..w[1] {
                // SAFETY: `new` checked w[0] <= w[1] <= nnz = the length of indices
                // and values, and every index below cols < row_offsets.len(). Column
                // j's places are offsets[j]..offsets[j + 1] of the prefix sum above,
                // and it has exactly that many entries, so each p stays below nnz,
                // the length of col_indices and values (checked above).
                unsafe {
                    let j = *self.indices.get_unchecked(e) as usize;
                    let p = row_offsets.get_unchecked_mut(j);
                    debug_assert!(*p < values.len());
                    *col_indices.get_unchecked_mut(*p) = i as u32;
                    *values.get_unchecked_mut(*p) = *self.values.get_unchecked(e);
                    *p += 1;
                }
            }
        }
        if let Some(last) = row_offsets.len().checked_sub(1) {
            row_offsets.copy_within(..last, 1);
        }
        if let Some(first) = row_offsets.first_mut() {
            *first = 0;
        }
        Ok(CsrRef {
            rows: self.cols,
            cols: self.rows,
            offsets: row_offsets,
            indices: col_indices,
            values,
        })
    }
}
