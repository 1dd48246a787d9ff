//! Our GEMM against gemm 0.19 on the bench's shapes, as a ratio that survives a noisy
//! machine: the two alternate in slices of about a millisecond, many times, so that a
//! neighbour's burst slows both alike, and the ratio is taken of the medians and of
//! the 90th percentiles (the quiet slices) of the per-slice GFLOP/s.
//!
//! ```sh
//! # every shape:
//! cargo run --release -p mlp-kernels-benches --features ratios --example gemm_ratio
//! # the shapes whose names contain one of these:
//! cargo run --release -p mlp-kernels-benches --features ratios --example gemm_ratio -- fc3 64^3
//! ```
//!
//! `BACKEND=avx2` (or `avx512`, `portable`) picks our backend, else the best this CPU
//! has; `ROUNDS=n` sets the slices per side (300). gemm 0.19 picks its own kernels
//! (x86-v4 where the CPU has AVX-512, else x86-v3), single thread.
//!
//! Criterion's `cargo bench --bench gemm` measures each function for a second in
//! turn: on a shared 2-vCPU guest the load changed between the two, and ratios moved
//! by up to 30% from one run to the next (256^3: 0.66, then 0.96; Zen 3, 2026-11-28).
//! Interleaved, they moved by up to 10%.

use std::hint::black_box;
use std::time::Instant;

use mlp_kernels::{Backend, Kernels, MatMut, MatRef, gemm_workspace_len};
use mlp_kernels_benches::{CASES, data, strides};

#[path = "../peer_gemm.rs"]
mod peer_gemm;
use peer_gemm::gemm_019;

/// Flops per slice: about a millisecond at 50 GFLOP/s.
const FLOPS_PER_SLICE: f64 = 5e7;

fn main() {
    let kern = match std::env::var("BACKEND").ok().as_deref() {
        None => Kernels::detect(),
        Some(name) => match name.parse::<Backend>().map(Kernels::new) {
            Ok(Ok(k)) => k,
            _ => {
                eprintln!("gemm_ratio: backend {name:?} is not one this CPU runs");
                std::process::exit(2);
            }
        },
    };
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
        .filter(|&r| r > 0)
        .unwrap_or(300);
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "mlp-kernels {} against gemm 0.19, {rounds} interleaved slices each, GFLOP/s\n",
        kern.backend().name()
    );
    println!("| shape | ours, median | gemm, median | ratio | ours, p90 | gemm, p90 | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for &(m, n, k, ta, tb, name) in CASES {
        if !wanted.is_empty() && !wanted.iter().any(|w| name.contains(w.as_str())) {
            continue;
        }
        let a = data(m * k, 1);
        let b = data(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        let (ars, acs) = strides(m, k, ta);
        let (brs, bcs) = strides(k, n, tb);
        let mut ws = vec![0.0f32; gemm_workspace_len(m, n, k)];
        let flops = 2.0 * (m * n * k) as f64;
        let reps = ((FLOPS_PER_SLICE / flops) as usize).max(1);
        let mut ours = Vec::with_capacity(rounds);
        let mut theirs = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..reps {
                let av = MatRef::new(black_box(&a), m, k, ars, acs).expect("A's view");
                let bv = MatRef::new(&b, k, n, brs, bcs).expect("B's view");
                let cv = MatMut::row_major(&mut out, m, n).expect("C's view");
                kern.gemm(1.0, av, bv, 0.0, cv, &mut ws)
                    .expect("the product");
            }
            ours.push(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
            let t = Instant::now();
            for _ in 0..reps {
                gemm_019(
                    (m, n, k),
                    black_box(&a),
                    (ars, acs),
                    &b,
                    (brs, bcs),
                    &mut out,
                    gemm::Parallelism::None,
                );
            }
            theirs.push(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        let (om, o90) = median_and_p90(&mut ours);
        let (gm, g90) = median_and_p90(&mut theirs);
        println!(
            "| {name} | {om:.1} | {gm:.1} | {:.2} | {o90:.1} | {g90:.1} | {:.2} |",
            om / gm,
            o90 / g90
        );
    }
}

/// The median and the 90th percentile of `v` (not empty).
fn median_and_p90(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() * 9 / 10])
}
