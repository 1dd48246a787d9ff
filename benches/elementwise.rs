//! Elementwise kernels per backend on 1K, 64K and 4M elements, with a plain slice copy
//! of the same size as the memory-bandwidth reference.
//!
//! `cargo bench --bench elementwise`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mlp_kernels::{Backend, Kernels, Sgd};

const SIZES: [usize; 3] = [1 << 10, 1 << 16, 1 << 22];

fn data(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 100.0 - 10.0)
        .collect()
}

fn elementwise(c: &mut Criterion) {
    let backends: Vec<Kernels> = Backend::supported()
        .filter_map(|b| Kernels::new(b).ok())
        .collect();
    for n in SIZES {
        let x = data(n);
        let g = data(n);
        let mut y = vec![0.0f32; n];
        let mut buf = vec![0.0f32; n];
        let mut p = data(n);
        let mut group = c.benchmark_group(format!("elementwise/{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function("copy", |b| b.iter(|| y.copy_from_slice(black_box(&x))));
        for k in &backends {
            let name = k.backend().name();
            group.bench_function(BenchmarkId::new("relu", name), |b| {
                b.iter(|| k.relu(black_box(&x), &mut y))
            });
            group.bench_function(BenchmarkId::new("relu_backward", name), |b| {
                b.iter(|| k.relu_backward(black_box(&x), &g, &mut y))
            });
            group.bench_function(BenchmarkId::new("exp", name), |b| {
                b.iter(|| k.exp(black_box(&x), &mut y))
            });
            let opt = Sgd::new(1e-6).with_momentum(0.9).with_weight_decay(1e-4);
            group.bench_function(BenchmarkId::new("sgd_momentum", name), |b| {
                b.iter(|| k.sgd_step(&opt, &mut p, black_box(&g), &mut buf, false))
            });
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! { name = benches; config = config(); targets = elementwise }
criterion_main!(benches);
