//! The one-row product c = alpha * a B + beta * c (m = 1), without packing: each
//! element of B is used once, so the product is bound by reading B and packing would
//! only add a second pass over it.

use super::MatRef;
use crate::checked::{part, part_mut};
use crate::simd::Simd;

/// Whether B has a unit stride in either direction (else the blocked path packs it).
pub(super) fn applies(_a: &MatRef<'_>, b: &MatRef<'_>) -> bool {
    b.cs == 1 || b.rs == 1
}

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
    let finish = Finish { s, alpha, beta };
    let a_at = |p: usize| a.at(0, p);
    if b.cs == 1 {
        // Rows of B are contiguous: accumulate a[p] * B[p, j..] over p, in strips of
        // 8, 4, 2 and 1 vectors (8 independent FMA chains cover the FMA latency), the
        // last columns through one masked vector.
        let mut j = 0;
        for nv in [8, 4, 2, 1] {
            while n - j >= nv * S::LANES {
                match nv {
                    8 => strip::<S, 8>(s, a, b, j, c, finish),
                    4 => strip::<S, 4>(s, a, b, j, c, finish),
                    2 => strip::<S, 2>(s, a, b, j, c, finish),
                    _ => strip::<S, 1>(s, a, b, j, c, finish),
                }
                j += nv * S::LANES;
            }
        }
        if j < n {
            let mut acc = s.splat(0.0);
            for p in 0..k {
                let row = b.run(p, j, n - j);
                acc = s.fma(s.splat(a_at(p)), s.load_partial(row, 0.0), acc);
            }
            finish.store(acc, part_mut(c, j..));
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
                    let col = b.run(p, j + r, w);
                    let bv = if w == S::LANES {
                        s.load(col)
                    } else {
                        s.load_partial(col, 0.0)
                    };
                    *x = s.fma(av, bv, *x);
                }
                p += w;
            }
            for (o, &x) in buf.iter_mut().zip(&acc).take(h) {
                *o = s.reduce_sum(x);
            }
            let v = s.load_partial(part(&buf, ..h), 0.0);
            finish.store(v, part_mut(c, j..j + h));
            j += h;
        }
    }
}

/// c[j..j + NV * LANES] from NV accumulators held over the whole depth.
#[inline(always)]
fn strip<S: Simd, const NV: usize>(
    s: S,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    j: usize,
    c: &mut [f32],
    finish: Finish<S>,
) {
    let w = NV * S::LANES;
    let mut acc = [s.splat(0.0); NV];
    for p in 0..b.rows {
        let ap = s.splat(a.at(0, p));
        let row = b.run(p, j, w);
        // Always w floats for a checked view; the test shows the compiler the count of
        // vectors, so that the NV chains stay in registers (13% slower without it).
        if row.len() != w {
            continue;
        }
        for (x, chunk) in acc.iter_mut().zip(row.chunks_exact(S::LANES)) {
            *x = s.fma(ap, s.load(chunk), *x);
        }
    }
    let c = part_mut(c, j..j + w);
    for (x, out) in acc.iter().zip(c.chunks_exact_mut(S::LANES)) {
        finish.store(*x, out);
    }
}

/// c = alpha * acc + beta * c for a vector (or less) of C, never reading C when beta
/// is 0. A method, not a closure, so that it inlines into the backend's
/// `#[target_feature]` code whatever the optimiser's mood.
#[derive(Clone, Copy)]
struct Finish<S> {
    s: S,
    alpha: f32,
    beta: f32,
}

impl<S: Simd> Finish<S> {
    #[inline(always)]
    fn store(self, acc: S::V, c: &mut [f32]) {
        let s = self.s;
        let y = s.mul(s.splat(self.alpha), acc);
        let full = c.len() == S::LANES;
        let y = if self.beta == 0.0 {
            y
        } else {
            let old = if full {
                s.load(c)
            } else {
                s.load_partial(c, 0.0)
            };
            s.fma(s.splat(self.beta), old, y)
        };
        if full {
            s.store(c, y)
        } else {
            s.store_partial(c, y)
        }
    }
}
