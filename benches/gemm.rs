//! GEMM on the MLP's shapes and squares, single thread, against `matrixmultiply` and
//! `gemm` (sarah-ek's, with its x86-v4 AVX-512 kernels, `Parallelism::None`) in the
//! same run, plus the machine's FMA peak measured by a register-only FMA loop.
//!
//! Throughput is reported in elements/s where one element is one flop (2mnk per
//! product), so criterion's "Gelem/s" reads as GFLOP/s.
//!
//! `cargo bench --bench gemm`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mlp_kernels::{Backend, Kernels, MatMut, MatRef, gemm_workspace_len};
use mlp_kernels_benches::{CASES, data, strides};

#[path = "peer_gemm.rs"]
mod peer_gemm;
use peer_gemm::gemm_019;

fn gemm_single(c: &mut Criterion) {
    let backends: Vec<Kernels> = Backend::supported()
        .filter_map(|b| Kernels::new(b).ok())
        .collect();
    for &(m, n, k, ta, tb, name) in CASES {
        let a = data(m * k, 1);
        let b = data(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        let (ars, acs) = strides(m, k, ta);
        let (brs, bcs) = strides(k, n, tb);
        let mut group = c.benchmark_group(format!("gemm/{name}"));
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        if m * n * k >= 256 * 256 * 256 {
            group.sample_size(10);
        }
        let mut ws = vec![0.0f32; gemm_workspace_len(m, n, k)];
        for kern in &backends {
            group.bench_function(
                BenchmarkId::new("mlp-kernels", kern.backend().name()),
                |bch| {
                    bch.iter(|| {
                        let av = MatRef::new(black_box(&a), m, k, ars, acs).unwrap();
                        let bv = MatRef::new(&b, k, n, brs, bcs).unwrap();
                        let cv = MatMut::row_major(&mut out, m, n).unwrap();
                        kern.gemm(1.0, av, bv, 0.0, cv, &mut ws).unwrap();
                    })
                },
            );
        }
        group.bench_function("matrixmultiply", |bch| {
            bch.iter(|| unsafe {
                // SAFETY: the pointers and strides describe the vectors above.
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    black_box(a.as_ptr()),
                    ars as isize,
                    acs as isize,
                    b.as_ptr(),
                    brs as isize,
                    bcs as isize,
                    0.0,
                    out.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
        group.bench_function("gemm-0.19", |bch| {
            bch.iter(|| {
                gemm_019(
                    (m, n, k),
                    black_box(&a),
                    (ars, acs),
                    &b,
                    (brs, bcs),
                    &mut out,
                    gemm::Parallelism::None,
                )
            })
        });
        group.finish();
    }
}

fn gemm_two_threads(c: &mut Criterion) {
    let kern = Kernels::detect();
    for &(m, n, k, name) in &[
        (512, 512, 512, "512^3"),
        (200, 784, 200, "200x784x200"),
        (200, 200, 784, "200x200x784"),
    ] {
        let a = data(m * k, 1);
        let b = data(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        let mut ws = vec![0.0f32; 2 * gemm_workspace_len(m, n, k)];
        let mut group = c.benchmark_group(format!("gemm-threads/{name}"));
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for threads in [1usize, 2] {
            group.bench_function(BenchmarkId::new("mlp-kernels", threads), |bch| {
                bch.iter(|| {
                    let av = MatRef::row_major(black_box(&a), m, k).unwrap();
                    let bv = MatRef::row_major(&b, k, n).unwrap();
                    let cv = MatMut::row_major(&mut out, m, n).unwrap();
                    kern.gemm_threaded(threads, 1.0, av, bv, 0.0, cv, &mut ws)
                        .unwrap();
                })
            });
        }
        group.bench_function(BenchmarkId::new("gemm-0.19", 2), |bch| {
            bch.iter(|| {
                gemm_019(
                    (m, n, k),
                    black_box(&a),
                    (k, 1),
                    &b,
                    (n, 1),
                    &mut out,
                    gemm::Parallelism::Rayon(2),
                )
            })
        });
        group.finish();
    }
}

/// The single-core FMA peak: 24 independent accumulator chains, enough to cover the
/// FMA latency on two ports, nothing but FMAs in the loop.
fn fma_peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        const ITERS: usize = 100_000;
        #[target_feature(enable = "avx512f")]
        fn peak512(x: __m512) -> __m512 {
            let mut acc = [x; 24];
            let y = _mm512_set1_ps(0.999_999);
            for _ in 0..ITERS {
                for a in acc.iter_mut() {
                    *a = _mm512_fmadd_ps(*a, y, x);
                }
            }
            acc.iter().fold(x, |s, &a| _mm512_add_ps(s, a))
        }
        #[target_feature(enable = "avx2,fma")]
        fn peak256(x: __m256) -> __m256 {
            let mut acc = [x; 12];
            let y = _mm256_set1_ps(0.999_999);
            for _ in 0..ITERS {
                for a in acc.iter_mut() {
                    *a = _mm256_fmadd_ps(*a, y, x);
                }
            }
            acc.iter().fold(x, |s, &a| _mm256_add_ps(s, a))
        }
        let mut group = c.benchmark_group("peak");
        if Backend::Avx512.is_supported() {
            group.throughput(Throughput::Elements((ITERS * 24 * 16 * 2) as u64));
            // SAFETY: AVX-512F was detected.
            group.bench_function("fma-avx512", |b| {
                b.iter(|| unsafe { peak512(_mm512_set1_ps(black_box(1.0))) })
            });
        }
        if Backend::Avx2.is_supported() {
            group.throughput(Throughput::Elements((ITERS * 12 * 8 * 2) as u64));
            // SAFETY: AVX2+FMA were detected.
            group.bench_function("fma-avx2", |b| {
                b.iter(|| unsafe { peak256(_mm256_set1_ps(black_box(1.0))) })
            });
        }
        group.finish();
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = c;
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! { name = benches; config = config(); targets = fma_peak, gemm_single, gemm_two_threads }
criterion_main!(benches);
