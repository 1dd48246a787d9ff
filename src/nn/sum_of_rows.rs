//! The sum of a matrix's rows, row 0 first: the bias gradient (the column sums of dy)
//! and the sparse layer's column sums of W^T and of dy.
//!
//! A pass keeps a strip of columns' sums in registers all the way down the rows, so
//! each element is loaded once and no partial sum goes through memory. Adding each
//! row into the output instead loads and stores the output for every row: for W^T
//! (784 x 200) that is three memory operations per vector instead of one. The sums
//! are formed in the same order from the same +0.0 (or the output's values), so the
//! bits are those of adding row after row into the output.

use crate::gemm::GemmKernel;
use crate::simd::{Simd, WithSimd, load_any, store_any};

/// Vectors of sums per pass: eight cover the adds' latency (four cycles, two adds a
/// cycle) and leave AVX2's other eight registers for the loads.
const PASS_VECTORS: usize = 8;

/// `dst` = (`dst` if `accumulate`, else 0) + the sum of the rows of `m`, each `width`
/// long (a partial last row is ignored), at the columns `lo..lo + dst.len()`.
pub(crate) struct SumOfRows<'a> {
    pub m: &'a [f32],
    pub width: usize,
    pub lo: usize,
    pub dst: &'a mut [f32],
    pub accumulate: bool,
}

impl WithSimd for SumOfRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: GemmKernel>(self, s: S) {
        let Self {
            m,
            width,
            lo,
            dst,
            accumulate,
        } = self;
        // (The callers keep the columns inside the rows; else nothing is written.)
        let fits = lo.checked_add(dst.len()).is_some_and(|end| end <= width);
        if width == 0 || !fits {
            debug_assert!(fits, "columns {lo}..+{} outside rows of {width}", dst.len());
            return;
        }
        let pass = PASS_VECTORS * S::LANES;
        for (p, out) in dst.chunks_mut(pass).enumerate() {
            let from = lo.saturating_add(p * pass);
            if out.len() == pass {
                // Constant vector counts: the loop below without its branches.
                down_the_rows(s, m, width, from, out, accumulate, PASS_VECTORS, 0);
            } else {
                let (whole, tail) = (out.len() / S::LANES, out.len() % S::LANES);
                down_the_rows(s, m, width, from, out, accumulate, whole, tail);
            }
        }
    }
}

/// One pass: `out` (at most `PASS_VECTORS` vectors: `whole` whole ones and then `tail`
/// floats) summed over the rows of `m` from column `from`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn down_the_rows<S: Simd>(
    s: S,
    m: &[f32],
    width: usize,
    from: usize,
    out: &mut [f32],
    accumulate: bool,
    whole: usize,
    tail: usize,
) {
    let l = S::LANES;
    let mut sums = [s.splat(0.0); PASS_VECTORS];
    if accumulate {
        for (sum, o) in sums.iter_mut().zip(out.chunks(l)) {
            *sum = load_any(s, o);
        }
    }
    for row in m.chunks_exact(width) {
        let Some(cols) = row.get(from..from.saturating_add(out.len())) else {
            return; // (checked before the first pass)
        };
        for (v, sum) in sums.iter_mut().enumerate() {
            if v < whole {
                if let Some(x) = cols.get(v * l..v * l + l) {
                    *sum = s.add(s.load(x), *sum);
                }
            } else if v == whole
                && tail > 0
                && let Some(x) = cols.get(v * l..)
            {
                *sum = s.add(s.load_partial(x, 0.0), *sum);
            }
        }
    }
    for (sum, o) in sums.iter().zip(out.chunks_mut(l)) {
        store_any(s, o, *sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, Kernels};

    /// Against f64 sums of exactly representable values (so the f32 sums are exact
    /// too) at widths around the passes' edges, with and without accumulate, at every
    /// offset; and the bits of adding row after row into the output, in f32.
    #[test]
    fn sums_match_f64_and_the_row_after_row_loop() -> Result<(), crate::Error> {
        for backend in Backend::supported() {
            let k = Kernels::new(backend)?;
            for (rows, width) in [(0, 5), (1, 1), (3, 17), (50, 200), (784, 200), (7, 300)] {
                let m: Vec<f32> = (0..rows * width)
                    .map(|i| ((i * 7919) % 97) as f32 - 48.0)
                    .collect();
                let odd: Vec<f32> = (0..rows * width)
                    .map(|i| ((i * 7919) % 97) as f32 * 1.37e-3 - 0.05)
                    .collect();
                for (lo, len) in [(0, width), (1, width - 1), (width / 3, width / 2)] {
                    for accumulate in [false, true] {
                        let start: Vec<f32> = (0..len).map(|j| j as f32 * 0.5).collect();
                        let sum = |m: &[f32]| {
                            let mut got = start.clone();
                            k.isa.vectorize(SumOfRows {
                                m,
                                width,
                                lo,
                                dst: &mut got,
                                accumulate,
                            });
                            got
                        };
                        for (j, &g) in sum(&m).iter().enumerate() {
                            let base = if accumulate { start[j] as f64 } else { 0.0 };
                            let want: f64 =
                                base + (0..rows).map(|r| m[r * width + lo + j] as f64).sum::<f64>();
                            assert_eq!(g as f64, want, "{backend} {rows}x{width} [{lo}+{j}]");
                        }
                        // Values that round: the same bits as the loop it replaces.
                        let got = sum(&odd);
                        let mut want = if accumulate {
                            start.clone()
                        } else {
                            vec![0.0; len]
                        };
                        for r in 0..rows {
                            for (j, w) in want.iter_mut().enumerate() {
                                *w += odd[r * width + lo + j];
                            }
                        }
                        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert_eq!(g.to_bits(), w.to_bits(), "{backend} [{lo}+{j}]");
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
