//! Calls every public kernel of mlp-kernels from a `#![no_std]` staticlib.
#![no_std]

use core::convert::Infallible;
use core::hint::black_box as opaque;
use mlp_kernels::init::{FanMode, Nonlinearity};
use mlp_kernels::{
    Backend, BceWithLogits, Caches, CrossEntropy, CsrRef, Kernels, KlReduction, Linear,
    LinearGrads, MatMut, MatRef, Reduction, Sgd, SparseLinear, Target, sparse_gemm_workspace_len,
};

// No definition of this exists anywhere. The panic handler calls it, so a build that
// keeps any path to a panic fails to link (`scripts/no-panic.sh` links this crate with
// undefined symbols refused, at opt-level 3 with LTO); one that links has none.
unsafe extern "C" {
    fn mlp_kernels_reached_a_panic() -> !;
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: never runs in a build that links (see above).
    unsafe { mlp_kernels_reached_a_panic() }
}

struct Xorshift(u64);

impl rand_core::TryRng for Xorshift {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Infallible> {
        for b in d {
            *b = self.try_next_u32()? as u8;
        }
        Ok(())
    }
}

/// Runs each kernel once on small buffers; returns the number of calls that failed.
///
/// Every argument passes through `opaque` (`black_box`), so the optimiser knows
/// neither lengths nor shapes nor values: a panic path that some input could reach
/// cannot be folded away because these inputs happen not to reach it.
#[unsafe(no_mangle)]
pub extern "C" fn mlp_kernels_smoke() -> u32 {
    let mut failures = 0;
    let mut fail = |r: Result<(), mlp_kernels::Error>| {
        if r.is_err() {
            failures += 1
        }
    };
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let mut w_store = [0.0f32; 6 * 4];
    let w = opaque(&mut w_store[..]);
    let shape = opaque([6, 4]);
    fail(mlp_kernels::init::kaiming_normal(
        w,
        shape,
        FanMode::FanIn,
        opaque(Nonlinearity::Relu),
        &mut rng,
    ));
    fail(mlp_kernels::init::kaiming_uniform(
        w,
        shape,
        FanMode::FanOut,
        opaque(Nonlinearity::LeakyRelu(0.01)),
        &mut rng,
    ));
    let _ = opaque(Nonlinearity::Tanh).gain();
    fail(mlp_kernels::init::xavier_normal(
        w,
        shape,
        opaque(1.0),
        &mut rng,
    ));
    fail(mlp_kernels::init::xavier_uniform(
        w,
        shape,
        opaque(1.0),
        &mut rng,
    ));
    let _ = opaque(Caches::detect());
    let _ = opaque(Backend::detect().name());

    for b in Backend::supported() {
        let Ok(k) = Kernels::new(opaque(b)) else {
            continue;
        };
        let x_store = [-1.0f32, 0.5, 2.0, -3.0, 4.0, 0.0];
        let x = opaque(&x_store[..]);
        let (mut y_store, mut g_store) = ([0.0f32; 6], [1.0f32; 6]);
        let (y, g) = (opaque(&mut y_store[..]), opaque(&mut g_store[..]));
        fail(k.relu(x, y));
        k.relu_in_place(y);
        fail(k.relu_backward(y, x, g));
        fail(k.relu_backward_in_place(y, g));
        fail(k.exp(x, y));
        k.exp_in_place(y);
        let mut buf = [0.0f32; 24];
        let opt = Sgd::new(opaque(0.01))
            .with_momentum(opaque(0.9))
            .with_dampening(opaque(0.0))
            .with_weight_decay(opaque(1e-4))
            .with_nesterov(opaque(true))
            .with_maximize(opaque(false));
        fail(opt.validate());
        fail(k.sgd_step(
            &opt,
            w,
            opaque(&[0.5; 24][..]),
            opaque(&mut buf[..]),
            opaque(true),
        ));

        // GEMM and the linear layer, with the workspace on the stack.
        let mut ws_store = [0.0f32; 4096];
        let ws = opaque(&mut ws_store[..]);
        let (m, n, kk) = (opaque(2), opaque(2), opaque(3));
        let _ = opaque(mlp_kernels::gemm_workspace_len(m, n, kk));
        let mut c_store = [0.0f32; 4];
        let c = opaque(&mut c_store[..]);
        let product = |c: &mut [f32], ws: &mut [f32]| -> Result<(), mlp_kernels::Error> {
            let a = opaque(MatRef::new(x, m, kk, opaque(3), opaque(1))?);
            let b = opaque(MatRef::row_major(x, kk, n)?.t().t());
            let _ = opaque((
                a.get(1, 2),
                a.rows(),
                a.cols(),
                b.row_stride(),
                b.col_stride(),
            ));
            k.gemm(
                opaque(1.0),
                a,
                b,
                opaque(0.0),
                MatMut::new(c, m, n, opaque(2), opaque(1))?,
                ws,
            )
        };
        fail(product(c, ws));
        let layer = Linear::new(opaque(3), opaque(2));
        let (wl, bl) = (
            opaque(w.get(..6).unwrap_or_default()),
            opaque(&[0.0f32, 1.0][..]),
        );
        let mut yl_store = [0.0f32; 4];
        let yl = opaque(&mut yl_store[..]);
        fail(layer.forward(&k, x, wl, Some(bl), yl, ws));
        let (mut dw, mut db, mut dx) = ([0.0f32; 6], [0.0f32; 2], [0.0f32; 6]);
        let grads = LinearGrads {
            weight: opaque(&mut dw[..]),
            bias: Some(opaque(&mut db[..])),
            input: Some(opaque(&mut dx[..])),
            accumulate: opaque(false),
        };
        fail(layer.backward(&k, x, wl, yl, grads, ws));

        // Sparse inputs: the products and the sparse first layer.
        let offsets = opaque(&[0usize, 2, 3][..]);
        let indices = opaque(&[0u32, 2, 1][..]);
        let values = opaque(&[1.0f32, -2.0, 0.5][..]);
        match CsrRef::new(opaque(2), opaque(3), offsets, indices, values) {
            Ok(s) => {
                let _ = opaque((
                    s.get(1, 1),
                    s.row(opaque(1)),
                    s.density(),
                    s.nnz(),
                    s.parts(),
                ));
                let _ = opaque(sparse_gemm_workspace_len(m, n, kk));
                let b = MatRef::row_major(x, kk, n);
                let cm = MatMut::row_major(c, m, n);
                if let (Ok(b), Ok(cm)) = (b, cm) {
                    fail(k.sparse_gemm(opaque(1.0), s, opaque(b), opaque(0.5), cm, ws));
                }
                let b = MatRef::row_major(x, m, kk);
                let mut ct = [0.0f32; 9];
                let cm = MatMut::row_major(opaque(&mut ct[..]), kk, kk);
                if let (Ok(b), Ok(cm)) = (b, cm) {
                    fail(k.sparse_t_gemm(opaque(1.0), s, opaque(b), opaque(0.0), cm, ws));
                }
                let (mut to, mut ti, mut tv) = ([0usize; 4], [0u32; 3], [0.0f32; 3]);
                let t = s.transpose_into(
                    opaque(&mut to[..]),
                    opaque(&mut ti[..]),
                    opaque(&mut tv[..]),
                );
                fail(t.map(|_| ()));
                let layer = SparseLinear::new(opaque(3), opaque(2))
                    .with_normalisation(opaque(0.5), opaque(-0.25));
                let _ = opaque(layer.workspace_len());
                let _ = opaque(layer.line_row_stride());
                let layer = layer.with_row_stride(opaque(2));
                let _ = opaque(layer.weight_t_len());
                fail(layer.forward(&k, s, wl, Some(bl), yl, ws));
                fail(layer.backward(
                    &k,
                    s,
                    yl,
                    opaque(&mut dw[..]),
                    Some(opaque(&mut db[..])),
                    opaque(true),
                    ws,
                ));
                let (mut uo, mut ui, mut uv) = ([0usize; 4], [0u32; 3], [0.0f32; 3]);
                let u = layer.forward_transposing(
                    &k,
                    s,
                    wl,
                    Some(bl),
                    yl,
                    ws,
                    opaque(&mut uo[..]),
                    opaque(&mut ui[..]),
                    opaque(&mut uv[..]),
                );
                fail(u.map(|u| {
                    let _ = opaque(u.nnz());
                }));
                if let Ok(t) = t {
                    fail(layer.backward_transposed(
                        &k,
                        t,
                        yl,
                        opaque(&mut dw[..]),
                        Some(opaque(&mut db[..])),
                        opaque(false),
                        ws,
                    ));
                }
            }
            Err(e) => fail(Err(e)),
        }

        // The loss family.
        let mut row_store = [0.0f32; 6];
        let row = opaque(&mut row_store[..]);
        let cols = opaque(3);
        let _ = k.logsumexp(x);
        fail(k.logsumexp_rows(x, cols, opaque(row.get_mut(..2).unwrap_or_default())));
        fail(k.softmax(x, cols, row));
        fail(k.softmax_in_place(row, cols));
        fail(k.log_softmax(x, cols, row));
        fail(k.log_softmax_in_place(row, cols));
        let mut grad_store = [0.0f32; 6];
        let grad = opaque(&mut grad_store[..]);
        let targets = opaque(&[0i64, 2][..]);
        let class_weights = opaque(&[1.0f32, 0.5, 2.0][..]);
        let ce = opaque(
            CrossEntropy::new()
                .with_label_smoothing(opaque(0.1))
                .with_weight(class_weights)
                .with_ignore_index(opaque(-100))
                .with_reduction(opaque(Reduction::Mean)),
        );
        // Probability targets refuse an ignore index (as PyTorch does).
        let soft = opaque(
            CrossEntropy::new()
                .with_label_smoothing(opaque(0.1))
                .with_weight(class_weights)
                .with_reduction(opaque(Reduction::Sum)),
        );
        let mut losses = [0.0f32; 2];
        let losses = opaque(&mut losses[..]);
        fail(
            k.cross_entropy(x, cols, opaque(Target::Indices(targets)), &ce, losses)
                .map(|_| ()),
        );
        fail(
            k.cross_entropy_with_grad(x, cols, opaque(Target::Indices(targets)), &ce, losses, grad)
                .map(|_| ()),
        );
        let q = opaque(&[0.25f32, 0.25, 0.5, 0.0, 1.0, 0.0][..]);
        fail(
            k.cross_entropy_with_grad(
                x,
                cols,
                opaque(Target::Probabilities(q)),
                &soft,
                losses,
                grad,
            )
            .map(|_| ()),
        );
        fail(
            k.nll_loss(row, cols, opaque(&[1, 0][..]), &ce, losses)
                .map(|_| ()),
        );
        let bce = opaque(BceWithLogits::new().with_reduction(opaque(Reduction::Mean)));
        fail(
            k.binary_cross_entropy_with_logits(
                x,
                opaque(&[0.0, 1.0, 1.0, 0.0, 1.0, 0.0][..]),
                &bce,
                opaque(&mut [][..]),
            )
            .map(|_| ()),
        );
        fail(
            k.binary_cross_entropy_with_logits_with_grad(
                x,
                opaque(&[1.0; 6][..]),
                &bce,
                opaque(&mut [][..]),
                grad,
            )
            .map(|_| ()),
        );
        let p = opaque(&[0.25f32, 0.25, 0.5][..]);
        let _ = k.entropy(p);
        fail(k.distribution_cross_entropy(p, p).map(|_| ()));
        fail(
            k.kl_div(
                opaque(row.get(..3).unwrap_or_default()),
                p,
                cols,
                opaque(false),
                opaque(KlReduction::BatchMean),
                opaque(&mut [][..]),
            )
            .map(|_| ()),
        );
    }
    let mut y_store = [0.0f32; 2];
    let y = opaque(&mut y_store[..]);
    fail(mlp_kernels::relu(opaque(&[1.0, -1.0][..]), y));
    mlp_kernels::relu_in_place(y);
    fail(mlp_kernels::relu_backward(
        opaque(&[1.0, 0.0][..]),
        opaque(&[1.0, 1.0][..]),
        y,
    ));
    fail(mlp_kernels::relu_backward_in_place(
        opaque(&[1.0, 0.0][..]),
        y,
    ));
    fail(mlp_kernels::exp(opaque(&[1.0, 0.0][..]), y));
    mlp_kernels::exp_in_place(y);
    fail(mlp_kernels::sgd_step(
        &Sgd::new(opaque(0.1)),
        y,
        opaque(&[1.0, 1.0][..]),
        opaque(&mut [][..]),
        opaque(true),
    ));
    failures
}

/// The negative control of `scripts/no-panic.sh`: a panic any input can reach.
#[cfg(feature = "reachable-panic")]
#[unsafe(no_mangle)]
pub extern "C" fn mlp_kernels_negative_control(i: usize) -> f32 {
    let x = [1.0f32; 4];
    x[opaque(i)]
}

/// The negative control of `scripts/no-panic.sh`'s inlining check: a function without
/// the AVX feature calls an AVX intrinsic, which therefore stays out of line. Never
/// called (the check only reads the symbols).
#[cfg(all(feature = "outlined-intrinsic", target_arch = "x86_64"))]
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn mlp_kernels_outlined_intrinsic(x: f32) -> f32 {
    use core::arch::x86_64::{_mm256_add_ps, _mm256_cvtss_f32, _mm256_set1_ps};
    // SAFETY: never run; where it were, the CPU would need AVX.
    unsafe {
        let v = _mm256_set1_ps(opaque(x));
        _mm256_cvtss_f32(_mm256_add_ps(v, v))
    }
}
