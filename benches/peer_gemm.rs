//! gemm 0.19 (sarah-ek's) as the GEMM bench and `examples/gemm_ratio.rs` call it. A
//! module they both include by path: gemm is a dev-dependency, which the package's lib
//! cannot use.

/// C = A B into row-major `c` (m x n), with A's element (i, p) at
/// `a[i * ars + p * acs]` and B's (p, j) at `b[p * brs + j * bcs]`.
///
/// # Panics
/// If a slice is too short for its shape and strides (checked before the call).
#[allow(clippy::too_many_arguments)]
pub fn gemm_019(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (ars, acs): (usize, usize),
    b: &[f32],
    (brs, bcs): (usize, usize),
    c: &mut [f32],
    parallelism: gemm::Parallelism,
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs
    };
    assert!(a.len() > last(m, k, ars, acs) && b.len() > last(k, n, brs, bcs));
    assert!(c.len() >= m * n);
    // SAFETY: the asserts put every element of the three views inside its slice;
    // gemm computes dst = alpha dst + beta lhs rhs, here 0 dst + 1 A B.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            acs as isize,
            ars as isize,
            b.as_ptr(),
            bcs as isize,
            brs as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        )
    }
}
