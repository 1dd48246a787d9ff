//! A measurement for issue #10: the sparse weight gradient dW1^T = X^T * dY with X^T's
//! rows (pixels) two at a time, built straight from the batch, against the crate's path.
//!
//! The MNIST example transposes the batch's CSR (`CsrRef::transpose_into`) and runs
//! `sparse_gemm`, whose row form loads dY's row i for every entry (pixel p, image i,
//! value v) and feeds it to one FMA per vector. Neighbouring pixels are lit in mostly
//! the same images, so the union of two pixels' image lists is only a little longer
//! than either (1.17x the entries on MNIST's first 4,000 images), and a pair of pixels
//! can walk that union with each load of dY's row feeding two FMAs; the pixel that
//! lacks the image adds v = 0, which leaves the bits of a finite sum as they were.
//! `sparse_gemm` now does this itself where consecutive rows pay for it
//! (`src/sparse/pairs.rs`): it merges runs of pairs from the transposed CSR as it goes
//! and checks B finite first. This program builds the pairs of the whole batch in one
//! go instead of the transpose and runs each block of dY's columns over all of them:
//! the form to measure the crate's against. It checks that both give the same bits on
//! every batch before it times anything.
//!
//! ```text
//! cargo run --release -p mlp-kernels-benches --features ratios --example pixel_pairs [ROUNDS]
//! ```
//!
//! Prints the medians and 90th percentiles of the two, interleaved round by round, each
//! timed over 20 batches of 200 images (the pairs' build counted, as is the transpose).
//! Before the crate paired rows, this form ran 1.50-1.53x as fast as the crate's path on
//! Zen 3; since, 1.07-1.4x (BENCHMARKS.md).
//! x86_64 with AVX2 and FMA only; elsewhere it says so and exits.

// Elsewhere only `main`'s message is built.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]

use std::hint::black_box;
use std::io::Read;
use std::time::Instant;

use mlp_kernels::{CsrRef, Kernels, MatMut, MatRef};

const BATCH: usize = 200;
const BATCHES: usize = 20;
const PIXELS: usize = 784;
const OUT: usize = 200;

/// A batch's CSR (images x pixels) by its parts.
struct Csr {
    offsets: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

/// X^T by pairs of pixels (2q, 2q + 1): for pair q, the images that have either, in
/// order, each with both pixels' values (0 for the one it lacks).
#[derive(Default)]
struct PixelPairs {
    offsets: Vec<usize>,
    images: Vec<u32>,
    values: Vec<[f32; 2]>,
    /// Where each pair's next cell goes while filling.
    next: Vec<usize>,
}

impl PixelPairs {
    /// Rebuilds from `x` in two passes over its entries, like a transpose: count the
    /// (image, pair) cells, then fill them image by image, so each pair's images come
    /// out sorted. Reuses the vectors' capacity.
    fn build(&mut self, x: &Csr) {
        let pairs = PIXELS.div_ceil(2);
        self.offsets.clear();
        self.offsets.resize(pairs + 1, 0);
        let rows = || x.offsets.windows(2).map(|w| &x.indices[w[0]..w[1]]);
        for row in rows() {
            let mut last = usize::MAX;
            for &p in row {
                let q = p as usize / 2;
                if q != last {
                    self.offsets[q + 1] += 1;
                    last = q;
                }
            }
        }
        for q in 0..pairs {
            self.offsets[q + 1] += self.offsets[q];
        }
        let cells = self.offsets[pairs];
        self.images.clear();
        self.images.resize(cells, 0);
        self.values.clear();
        self.values.resize(cells, [0.0; 2]);
        self.next.clear();
        self.next.extend_from_slice(&self.offsets[..pairs]);
        for (i, w) in x.offsets.windows(2).enumerate() {
            let mut last = usize::MAX;
            for e in w[0]..w[1] {
                let p = x.indices[e] as usize;
                let q = p / 2;
                if q != last {
                    self.images[self.next[q]] = i as u32;
                    self.next[q] += 1;
                    last = q;
                }
                self.values[self.next[q] - 1][p % 2] = x.values[e];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::PixelPairs;
    use std::arch::x86_64::*;

    /// Columns j0..j0 + 8 * NV of C (PIXELS x n, row-major) = X^T * B, B row-major with
    /// n columns, two rows of C at a time over their pair's images.
    ///
    /// # Safety
    /// AVX2 and FMA present; B holds a row for every image index, C a row for every
    /// pixel of a pair, both with columns up to j0 + 8 * NV.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const NV: usize>(
        x: &PixelPairs,
        b: &[f32],
        c: &mut [f32],
        n: usize,
        j0: usize,
    ) {
        let c_rows = c.len() / n;
        for (q, w) in x.offsets.windows(2).enumerate() {
            let mut acc = [[_mm256_setzero_ps(); NV]; 2];
            for (&i, v) in x.images[w[0]..w[1]].iter().zip(&x.values[w[0]..w[1]]) {
                let row = &b[i as usize * n + j0..][..8 * NV];
                let (v0, v1) = (_mm256_set1_ps(v[0]), _mm256_set1_ps(v[1]));
                for (l, chunk) in row.chunks_exact(8).enumerate() {
                    // SAFETY: `chunk` holds 8 floats.
                    let bl = unsafe { _mm256_loadu_ps(chunk.as_ptr()) };
                    acc[0][l] = _mm256_fmadd_ps(v0, bl, acc[0][l]);
                    acc[1][l] = _mm256_fmadd_ps(v1, bl, acc[1][l]);
                }
            }
            for (s, sums) in acc.iter().enumerate() {
                let r = 2 * q + s;
                if r < c_rows {
                    let out = &mut c[r * n + j0..][..8 * NV];
                    for (chunk, &a) in out.chunks_exact_mut(8).zip(sums) {
                        // SAFETY: `chunk` holds 8 floats.
                        unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), a) };
                    }
                }
            }
        }
    }

    /// C = X^T * B in blocks of at most 4 vectors (8 accumulators, two broadcasts, one
    /// row of B: 4 did best of 3, 4 and 6 on Zen 3).
    ///
    /// # Safety
    /// AVX2 and FMA present; `n` a multiple of 8.
    pub unsafe fn pixel_pairs_t_gemm(x: &PixelPairs, b: &[f32], c: &mut [f32], n: usize) {
        let mut j0 = 0;
        while j0 < n {
            let nv = ((n - j0) / 8).min(4);
            // SAFETY: forwarded; the blocks stay inside the n columns.
            unsafe {
                match nv {
                    1 => block::<1>(x, b, c, n, j0),
                    2 => block::<2>(x, b, c, n, j0),
                    3 => block::<3>(x, b, c, n, j0),
                    _ => block::<4>(x, b, c, n, j0),
                }
            }
            j0 += 8 * nv;
        }
    }
}

fn load_images(count: usize) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/mnist/train-images-idx3-ubyte.gz"
    );
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        raw.len() >= 16 + count * PIXELS,
        "{path}: fewer than {count} images"
    );
    raw[16..16 + count * PIXELS].to_vec()
}

fn median_p90(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("pixel_pairs: needs x86_64 with AVX2 and FMA");
}

#[cfg(target_arch = "x86_64")]
fn main() {
    if !std::is_x86_feature_detected!("avx2") || !std::is_x86_feature_detected!("fma") {
        println!("pixel_pairs: needs x86_64 with AVX2 and FMA");
        return;
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(100);
    let pixels = load_images(BATCH * BATCHES);
    let batches: Vec<Csr> = pixels
        .chunks_exact(BATCH * PIXELS)
        .map(|batch| {
            let mut x = Csr {
                offsets: vec![0],
                indices: vec![],
                values: vec![],
            };
            for image in batch.chunks_exact(PIXELS) {
                for (p, &v) in image.iter().enumerate().filter(|(_, v)| **v != 0) {
                    x.indices.push(p as u32);
                    x.values.push(f32::from(v));
                }
                x.offsets.push(x.indices.len());
            }
            x
        })
        .collect();
    let nnz: usize = batches.iter().map(|x| x.values.len()).sum();
    let dy: Vec<f32> = (0..BATCH * OUT)
        .map(|i| (i * 104_729 % 1000) as f32 * 1e-3 - 0.5)
        .collect();
    let kern = Kernels::detect();
    let (mut t_off, mut t_idx, mut t_val) =
        (vec![0; PIXELS + 1], vec![0u32; nnz], vec![0.0f32; nnz]);
    let mut pairs = PixelPairs::default();
    let (mut ours, mut paired) = (vec![0.0f32; PIXELS * OUT], vec![0.0f32; PIXELS * OUT]);

    // The crate's path: transpose, then the row form.
    let mut crate_path = |x: &Csr, c: &mut [f32]| {
        let s = CsrRef::new(BATCH, PIXELS, &x.offsets, &x.indices, &x.values).unwrap();
        let n = x.values.len();
        let st = s
            .transpose_into(&mut t_off, &mut t_idx[..n], &mut t_val[..n])
            .unwrap();
        let b = MatRef::row_major(&dy, BATCH, OUT).unwrap();
        let c = MatMut::row_major(c, PIXELS, OUT).unwrap();
        kern.sparse_gemm(1.0, black_box(st), b, 0.0, c, &mut [])
            .unwrap();
    };
    // Returns the pairs' (image, pair) cells.
    let mut pair_path = |x: &Csr, c: &mut [f32]| {
        pairs.build(black_box(x));
        // SAFETY: AVX2 and FMA detected above; OUT is a multiple of 8.
        unsafe { avx2::pixel_pairs_t_gemm(&pairs, &dy, c, OUT) };
        pairs.images.len()
    };

    let mut cells = 0;
    for x in &batches {
        crate_path(x, &mut ours);
        cells += 2 * pair_path(x, &mut paired);
        let differ = ours
            .iter()
            .zip(&paired)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differ, 0, "the pairs changed the bits of {differ} elements");
    }
    println!(
        "{} images, density {:.3}; the pairs hold {:.2}x the entries; same bits on every batch",
        BATCH * BATCHES,
        nnz as f64 / (BATCH * BATCHES * PIXELS) as f64,
        cells as f64 / nnz as f64
    );

    let flops = 2.0 * (OUT * nnz) as f64;
    let (mut t_crate, mut t_pairs) = (vec![], vec![]);
    for round in 0..rounds {
        for which in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            let start = Instant::now();
            for x in &batches {
                if which == 0 {
                    crate_path(x, &mut ours);
                } else {
                    black_box(pair_path(x, &mut paired));
                }
            }
            let gflops = flops / start.elapsed().as_secs_f64() / 1e9;
            [&mut t_crate, &mut t_pairs][which].push(gflops);
        }
    }
    let (cm, c9) = median_p90(&mut t_crate);
    let (pm, p9) = median_p90(&mut t_pairs);
    println!("GFLOP/s of the sparse work, {rounds} rounds:");
    println!("  transpose_into + sparse_gemm (the crate): median {cm:.1}, p90 {c9:.1}");
    println!("  whole-batch pixel pairs (build included): median {pm:.1}, p90 {p9:.1}");
    println!("  pairs / crate: median {:.2}, p90 {:.2}", pm / cm, p9 / c9);
}
