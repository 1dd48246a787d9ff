//! Nothing but the package that holds mlp-kernels' criterion benches (`elementwise.rs`,
//! `gemm.rs`, `loss.rs` beside this file) and their peers as dependencies. Run them
//! with `cargo bench` at the repository root; criterion writes its HTML report to
//! `target/criterion/report/index.html`.
//!
//! What the GEMM bench and `examples/gemm_ratio.rs` share: the shapes and their data.

/// (m, n, k, A transposed, B transposed, what it is)
pub const CASES: &[(usize, usize, usize, bool, bool, &str)] = &[
    (200, 200, 784, false, false, "200x200x784"),
    (200, 784, 200, false, false, "200x784x200"),
    (200, 200, 200, false, false, "200x200x200"),
    (200, 10, 200, false, false, "200x10x200"),
    (1, 200, 784, false, false, "1x200x784"),
    (64, 64, 64, false, false, "64^3"),
    (128, 128, 128, false, false, "128^3"),
    (256, 256, 256, false, false, "256^3"),
    (512, 512, 512, false, false, "512^3"),
    (1024, 1024, 1024, false, false, "1024^3"),
    // The MLP's layers with PyTorch's (out, in) weights, batch 200:
    (200, 200, 784, false, true, "fc1 fwd x.W^T"),
    (200, 784, 200, true, false, "fc1 dW=dy^T.x"),
    (200, 200, 200, false, true, "fc2 fwd x.W^T"),
    (200, 10, 200, false, true, "fc3 fwd x.W^T"),
    (200, 200, 10, false, false, "fc3 dx=dy.W"),
    (10, 200, 200, true, false, "fc3 dW=dy^T.h"),
    // A smaller batch (inference, or a short last batch): x.W^T runs as W.x^T.
    (64, 200, 784, false, true, "fc1 fwd x.W^T, batch 64"),
];

/// `len` deterministic values in [-0.5, 0.5), different for each `seed`.
pub fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i + seed) * 2654435761) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// (row stride, col stride) of an r x c operand stored row-major, or column-major
/// when `trans` (a transposed view of a row-major matrix).
pub fn strides(r: usize, c: usize, trans: bool) -> (usize, usize) {
    if trans { (1, r) } else { (c, 1) }
}
