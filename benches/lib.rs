//! Nothing but the package that holds mlp-kernels' criterion benches (`elementwise.rs`,
//! `gemm.rs`, `loss.rs` beside this file) and their peers as dependencies. Run them
//! with `cargo bench` at the repository root; criterion writes its HTML report to
//! `target/criterion/report/index.html`.
