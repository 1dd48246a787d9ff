//! The softmax cross-entropy family per backend on logits shaped [200, 10] (the MNIST
//! batch), [256, 1000] and [64, 32000] (a language-model vocabulary): logsumexp per
//! row, the forward cross-entropy (mean), and the fused loss + gradient, with a plain
//! `copy_from_slice` of the logits as the memory-bandwidth reference; and the fused
//! call on two threads, on the best backend.
//!
//! Throughput is in bytes moved: the logits read (logsumexp, forward), or read plus
//! the gradient written (fused, and the copy, which reads and writes as much).
//!
//! `cargo bench --bench loss`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mlp_kernels::{Backend, CrossEntropy, Kernels, Target};

const SHAPES: [(usize, usize); 3] = [(200, 10), (256, 1000), (64, 32000)];

/// Logits in about [-8, 8] and class indices, both deterministic.
fn data(rows: usize, cols: usize) -> (Vec<f32>, Vec<i64>) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let x = (0..rows * cols)
        .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 * 16.0 - 8.0)
        .collect();
    let y = (0..rows).map(|_| (next() % cols as u64) as i64).collect();
    (x, y)
}

fn loss(c: &mut Criterion) {
    let backends: Vec<Kernels> = Backend::supported()
        .filter_map(|b| Kernels::new(b).ok())
        .collect();
    let opts = CrossEntropy::new();
    for (rows, cols) in SHAPES {
        let n = rows * cols;
        let (x, y) = data(rows, cols);
        let mut grad = vec![0.0f32; n];
        let mut lse = vec![0.0f32; rows];
        let bytes = (n * size_of::<f32>()) as u64;
        let mut group = c.benchmark_group(format!("loss/{rows}x{cols}"));
        group.throughput(Throughput::Bytes(2 * bytes));
        group.bench_function("copy", |b| b.iter(|| grad.copy_from_slice(black_box(&x))));
        for k in &backends {
            let name = k.backend().name();
            group.throughput(Throughput::Bytes(bytes));
            group.bench_function(BenchmarkId::new("logsumexp_rows", name), |b| {
                b.iter(|| k.logsumexp_rows(black_box(&x), cols, &mut lse))
            });
            group.bench_function(BenchmarkId::new("cross_entropy", name), |b| {
                b.iter(|| k.cross_entropy(black_box(&x), cols, Target::Indices(&y), &opts, &mut []))
            });
            group.throughput(Throughput::Bytes(2 * bytes));
            group.bench_function(BenchmarkId::new("cross_entropy_with_grad", name), |b| {
                b.iter(|| {
                    k.cross_entropy_with_grad(
                        black_box(&x),
                        cols,
                        Target::Indices(&y),
                        &opts,
                        &mut [],
                        &mut grad,
                    )
                })
            });
        }
        // The best backend on two threads (the same bits; it splits from 32K logits).
        let k = Kernels::detect();
        mlp_kernels::prepare_threads(2);
        group.bench_function(
            BenchmarkId::new("cross_entropy_with_grad_2_threads", k.backend().name()),
            |b| {
                b.iter(|| {
                    k.cross_entropy_with_grad_threaded(
                        2,
                        black_box(&x),
                        cols,
                        Target::Indices(&y),
                        &opts,
                        &mut [],
                        &mut grad,
                    )
                })
            },
        );
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = loss }
criterion_main!(benches);
