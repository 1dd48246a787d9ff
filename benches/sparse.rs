//! Sparse times dense against the dense GEMM on the lesson's first layer, batch 200,
//! at 5%, 19% (MNIST's share of non-zero pixels) and 50% density, single thread.
//!
//! Throughput counts the dense product's flops (2mnk) whatever the path, so that
//! "Gelem/s" reads as the dense-equivalent GFLOP/s and the paths compare directly.
//!
//! * `fwd` 200x200x784: Y = S W^T with S the batch (200 x 784) and W^T stored in x out.
//! * `dW` 200x784x200: dW^T = S^T dY (784 x 200), by scatter (`sparse_t_gemm`) or by
//!   transposing S first (`transpose_into` + `sparse_gemm`, the transpose timed too);
//!   dense: dW = dY^T X.
//!
//! `cargo bench --bench sparse`

#[path = "../examples/mnist/aligned.rs"]
#[allow(dead_code)]
mod aligned;

use std::hint::black_box;
use std::time::Duration;

use aligned::Floats;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mlp_kernels::{
    CsrRef, Kernels, MatMut, MatRef, SparseLinear, gemm_workspace_len, sparse_gemm_workspace_len,
};

/// A reproducible uniform in [0, 1) (SplitMix64).
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// CSR parts and the dense matrix of a rows x cols batch at `density`.
fn batch(rows: usize, cols: usize, density: f64) -> (Vec<usize>, Vec<u32>, Vec<f32>, Vec<f32>) {
    let mut rng = Mix(density.to_bits());
    let (mut off, mut idx, mut val) = (vec![0], vec![], vec![]);
    let mut dense = vec![0.0f32; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            if rng.next() < density {
                let v = (rng.next() * 255.0).floor() as f32 + 1.0;
                idx.push(j as u32);
                val.push(v);
                dense[i * cols + j] = v;
            }
        }
        off.push(idx.len());
    }
    (off, idx, val, dense)
}

/// `len` floats from `seed`, starting `skew` floats past a 64-byte boundary. The
/// MNIST example starts its buffers on one (its `Floats`, used here); a large `Vec`
/// starts 16 bytes past one (glibc's mmap), where every 64-byte row load of the
/// sparse kernels crosses two cache lines.
fn data(len: usize, seed: u64, skew: usize) -> Floats {
    let mut rng = Mix(seed);
    let mut a = Floats::zeros(len + skew);
    a[skew..]
        .iter_mut()
        .for_each(|x| *x = rng.next() as f32 - 0.5);
    a
}

fn sparse(c: &mut Criterion) {
    let kern = Kernels::detect();
    let (batch_rows, inp, out) = (200, 784, 200);
    let wt = data(inp * out, 1, 0); // W^T, in x out
    let wt_skewed = data(inp * out, 1, 4);
    // W^T's rows 208 floats apart, each on a line (`SparseLinear::line_row_stride`).
    let lined = SparseLinear::new(inp, out).line_row_stride();
    let wt_lined = data(inp * lined, 1, 0);
    let dy = data(batch_rows * out, 2, 0);
    for density in [0.05, 0.19, 0.35, 0.5] {
        let (off, idx, val, dense) = batch(batch_rows, inp, density);
        let s = CsrRef::new(batch_rows, inp, &off, &idx, &val).unwrap();
        let pct = (density * 100.0).round() as u32;

        let mut group = c.benchmark_group(format!("sparse/fwd 200x200x784 {pct}%"));
        group.throughput(Throughput::Elements((2 * batch_rows * out * inp) as u64));
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(2));
        let mut y = Floats::zeros(batch_rows * out);
        let mut ws = vec![0.0f32; gemm_workspace_len(batch_rows, out, inp)];
        // With the workspace for every path: above the CPU's break-even density
        // (`Kernels::sparse_break_even_densities`) S is expanded for the dense GEMM.
        let mut every_path = vec![0.0f32; sparse_gemm_workspace_len(batch_rows, out, inp)];
        let workspaces: [(&str, &mut [f32]); 2] = [
            ("sparse_gemm", &mut []),
            ("sparse_gemm, workspace", &mut every_path),
        ];
        for (name, ws) in workspaces {
            group.bench_function(BenchmarkId::new(name, kern.backend().name()), |b| {
                b.iter(|| {
                    let bv = MatRef::row_major(&wt, inp, out).unwrap();
                    let cv = MatMut::row_major(&mut y, batch_rows, out).unwrap();
                    kern.sparse_gemm(1.0, black_box(s), bv, 0.0, cv, ws)
                        .unwrap();
                })
            });
        }
        if pct == 19 {
            group.bench_function(
                BenchmarkId::new("sparse_gemm, W^T 16 B past a line", kern.backend().name()),
                |b| {
                    b.iter(|| {
                        let bv = MatRef::row_major(&wt_skewed[4..], inp, out).unwrap();
                        let cv = MatMut::row_major(&mut y, batch_rows, out).unwrap();
                        kern.sparse_gemm(1.0, black_box(s), bv, 0.0, cv, &mut [])
                            .unwrap();
                    })
                },
            );
            group.bench_function(
                BenchmarkId::new("sparse_gemm, W^T rows on lines", kern.backend().name()),
                |b| {
                    b.iter(|| {
                        let bv = MatRef::new(&wt_lined, inp, out, lined, 1).unwrap();
                        let cv = MatMut::row_major(&mut y, batch_rows, out).unwrap();
                        kern.sparse_gemm(1.0, black_box(s), bv, 0.0, cv, &mut [])
                            .unwrap();
                    })
                },
            );
        }
        let (mut f_off, mut f_idx, mut f_val) = (
            vec![0; inp + 1],
            vec![0u32; val.len()],
            vec![0.0f32; val.len()],
        );
        group.bench_function(
            BenchmarkId::new("transpose_into + sparse_t_gemm", kern.backend().name()),
            |b| {
                b.iter(|| {
                    let st = black_box(s)
                        .transpose_into(&mut f_off, &mut f_idx, &mut f_val)
                        .unwrap();
                    let bv = MatRef::row_major(&wt, inp, out).unwrap();
                    let cv = MatMut::row_major(&mut y, batch_rows, out).unwrap();
                    kern.sparse_t_gemm(1.0, st, bv, 0.0, cv, &mut []).unwrap();
                })
            },
        );
        group.bench_function(BenchmarkId::new("dense gemm", kern.backend().name()), |b| {
            b.iter(|| {
                let av = MatRef::row_major(black_box(&dense), batch_rows, inp).unwrap();
                let bv = MatRef::row_major(&wt, inp, out).unwrap();
                let cv = MatMut::row_major(&mut y, batch_rows, out).unwrap();
                kern.gemm(1.0, av, bv, 0.0, cv, &mut ws).unwrap();
            })
        });
        group.finish();

        let mut group = c.benchmark_group(format!("sparse/dW 200x784x200 {pct}%"));
        group.throughput(Throughput::Elements((2 * batch_rows * out * inp) as u64));
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(2));
        let mut gwt = Floats::zeros(inp * out);
        let mut gw = Floats::zeros(out * inp);
        let (mut t_off, mut t_idx, mut t_val) = (
            vec![0; inp + 1],
            vec![0u32; val.len()],
            vec![0.0f32; val.len()],
        );
        let mut ws = vec![0.0f32; gemm_workspace_len(out, inp, batch_rows)];
        group.bench_function(
            BenchmarkId::new("sparse_t_gemm (scatter)", kern.backend().name()),
            |b| {
                b.iter(|| {
                    let bv = MatRef::row_major(&dy, batch_rows, out).unwrap();
                    let cv = MatMut::row_major(&mut gwt, inp, out).unwrap();
                    kern.sparse_t_gemm(1.0, black_box(s), bv, 0.0, cv, &mut [])
                        .unwrap();
                })
            },
        );
        // With the workspace for every path: dY's rows copied onto cache lines first
        // (AVX-512, where each row is read often enough: from 19% density up here), and
        // the dense GEMM above the break-even density.
        let mut every_path = vec![0.0f32; sparse_gemm_workspace_len(inp, out, batch_rows)];
        let workspaces: [(&str, &mut [f32]); 2] = [
            ("transpose_into + sparse_gemm", &mut []),
            ("transpose_into + sparse_gemm, workspace", &mut every_path),
        ];
        for (name, ws) in workspaces {
            group.bench_function(BenchmarkId::new(name, kern.backend().name()), |b| {
                b.iter(|| {
                    let st = black_box(s)
                        .transpose_into(&mut t_off, &mut t_idx, &mut t_val)
                        .unwrap();
                    let bv = MatRef::row_major(&dy, batch_rows, out).unwrap();
                    let cv = MatMut::row_major(&mut gwt, inp, out).unwrap();
                    kern.sparse_gemm(1.0, st, bv, 0.0, cv, ws).unwrap();
                })
            });
        }
        group.bench_function(
            BenchmarkId::new("dense gemm dY^T X", kern.backend().name()),
            |b| {
                b.iter(|| {
                    let av = MatRef::row_major(&dy, batch_rows, out).unwrap().t();
                    let bv = MatRef::row_major(black_box(&dense), batch_rows, inp).unwrap();
                    let cv = MatMut::row_major(&mut gw, out, inp).unwrap();
                    kern.gemm(1.0, av, bv, 0.0, cv, &mut ws).unwrap();
                })
            },
        );
        group.finish();
    }
}

criterion_group!(benches, sparse);
criterion_main!(benches);
