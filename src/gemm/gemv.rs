//! The one-row product c = alpha * a B + beta * c (m = 1), without packing: each
//! element of B is used once, so the product is bound by reading B and packing would
//! only add a second pass over it.

use super::MatRef;
use crate::simd::Simd;

/// Whether B has a unit stride in either direction (else the blocked path packs it).
pub(super) fn applies(_a: &MatRef<'_>, b: &MatRef<'_>) -> bool {
    b.cs == 1 || b.rs == 1
}

/// Columns of c kept in registers at once, in vectors.
const NV: usize = 4;

/// # Safety
/// `c` must point to n = b.cols contiguous, exclusively owned floats; a is 1 x k.
#[inline(always)]
pub(super) unsafe fn gemv<S: Simd>(
    s: S,
    alpha: f32,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    beta: f32,
    c: *mut f32,
) {
    let (n, k) = (b.cols, b.rows);
    // SAFETY: the caller gives n contiguous owned floats.
    let c = unsafe { core::slice::from_raw_parts_mut(c, n) };
    let finish = |acc: S::V, c: &mut [f32]| {
        let y = s.mul(s.splat(alpha), acc);
        let full = c.len() == S::LANES;
        let y = if beta == 0.0 {
            y
        } else {
            let old = if full {
                s.load(c)
            } else {
                s.load_partial(c, 0.0)
            };
            s.fma(s.splat(beta), old, y)
        };
        if full {
            s.store(c, y)
        } else {
            s.store_partial(c, y)
        }
    };
    let a_at = |p: usize| a.data[p * a.cs];
    if b.cs == 1 {
        // Rows of B are contiguous: accumulate a[p] * B[p, j..] over p.
        let mut j = 0;
        while j < n {
            let w = (n - j).min(NV * S::LANES);
            let mut acc = [s.splat(0.0); NV];
            for p in 0..k {
                let ap = s.splat(a_at(p));
                let row = &b.data[p * b.rs + j..p * b.rs + j + w];
                for (v, x) in acc.iter_mut().enumerate() {
                    let lo = v * S::LANES;
                    if lo >= w {
                        break;
                    }
                    let bv = if lo + S::LANES <= w {
                        s.load(&row[lo..])
                    } else {
                        s.load_partial(&row[lo..], 0.0)
                    };
                    *x = s.fma(ap, bv, *x);
                }
            }
            for (v, &x) in acc.iter().enumerate() {
                let lo = v * S::LANES;
                if lo >= w {
                    break;
                }
                finish(x, &mut c[j + lo..j + w.min(lo + S::LANES)]);
            }
            j += w;
        }
    } else {
        // Columns of B are contiguous: c[j] = dot(a, B[.., j]), four columns at a time.
        let mut j = 0;
        let mut buf = [0.0f32; crate::simd::MAX_LANES];
        while j < n {
            let h = (n - j).min(4);
            let mut acc = [s.splat(0.0); 4];
            let mut p = 0;
            while p < k {
                let w = (k - p).min(S::LANES);
                let mut av = [0.0f32; crate::simd::MAX_LANES];
                for (q, x) in av.iter_mut().take(w).enumerate() {
                    *x = a_at(p + q);
                }
                let av = s.load(&av);
                for (r, x) in acc.iter_mut().take(h).enumerate() {
                    let col = &b.data[(j + r) * b.cs + p..(j + r) * b.cs + p + w];
                    let bv = if w == S::LANES {
                        s.load(col)
                    } else {
                        s.load_partial(col, 0.0)
                    };
                    *x = s.fma(av, bv, *x);
                }
                p += w;
            }
            for (r, &x) in acc.iter().take(h).enumerate() {
                buf[r] = s.reduce_sum(x);
            }
            let v = s.load_partial(&buf[..h], 0.0);
            finish(v, &mut c[j..j + h]);
            j += h;
        }
    }
}
