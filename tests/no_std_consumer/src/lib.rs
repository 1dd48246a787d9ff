//! Calls every public kernel of mlp-kernels from a `#![no_std]` staticlib.
#![no_std]

use core::convert::Infallible;
use mlp_kernels::init::{FanMode, Nonlinearity};
use mlp_kernels::{
    Backend, BceWithLogits, CrossEntropy, Kernels, KlReduction, Linear, LinearGrads, MatMut,
    MatRef, Sgd, Target,
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

/// Runs each kernel once on a small buffer; returns the number of calls that failed.
#[unsafe(no_mangle)]
pub extern "C" fn mlp_kernels_smoke() -> u32 {
    let mut failures = 0;
    let mut fail = |r: Result<(), mlp_kernels::Error>| {
        if r.is_err() {
            failures += 1
        }
    };
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let mut w = [0.0f32; 6 * 4];
    fail(mlp_kernels::init::kaiming_normal(
        &mut w,
        [6, 4],
        FanMode::FanIn,
        Nonlinearity::Relu,
        &mut rng,
    ));
    fail(mlp_kernels::init::kaiming_uniform(
        &mut w,
        [6, 4],
        FanMode::FanOut,
        Nonlinearity::Tanh,
        &mut rng,
    ));
    fail(mlp_kernels::init::xavier_normal(
        &mut w,
        [6, 4],
        1.0,
        &mut rng,
    ));
    fail(mlp_kernels::init::xavier_uniform(
        &mut w,
        [6, 4],
        1.0,
        &mut rng,
    ));

    for b in Backend::ALL {
        let Ok(k) = Kernels::new(b) else { continue };
        let x = [-1.0f32, 0.5, 2.0, -3.0, 4.0, 0.0];
        let mut y = [0.0f32; 6];
        let mut g = [1.0f32; 6];
        fail(k.relu(&x, &mut y));
        k.relu_in_place(&mut y);
        fail(k.relu_backward(&y, &x, &mut g));
        fail(k.relu_backward_in_place(&y, &mut g));
        fail(k.exp(&x, &mut y));
        k.exp_in_place(&mut y);
        let mut buf = [0.0f32; 24];
        let opt = Sgd::new(0.01).with_momentum(0.9).with_nesterov(true);
        fail(k.sgd_step(&opt, &mut w, &[0.5; 24], &mut buf, true));

        // GEMM and the linear layer, with the workspace on the stack.
        let mut ws = [0.0f32; 4096];
        let mut c = [0.0f32; 4];
        let product = |c: &mut [f32], ws: &mut [f32]| -> Result<(), mlp_kernels::Error> {
            let a = MatRef::row_major(&x, 2, 3)?;
            let b = MatRef::row_major(&x, 3, 2)?;
            k.gemm(1.0, a, b, 0.0, MatMut::row_major(c, 2, 2)?, ws)
        };
        fail(product(&mut c, &mut ws));
        let layer = Linear::new(3, 2);
        let mut yl = [0.0f32; 4];
        fail(layer.forward(&k, &x, &w[..6], Some(&[0.0, 1.0]), &mut yl, &mut ws));
        let (mut dw, mut db, mut dx) = ([0.0f32; 6], [0.0f32; 2], [0.0f32; 6]);
        let grads = LinearGrads {
            weight: &mut dw,
            bias: Some(&mut db),
            input: Some(&mut dx),
            accumulate: false,
        };
        fail(layer.backward(&k, &x, &w[..6], &yl, grads, &mut ws));

        // The loss family.
        let mut row = [0.0f32; 6];
        let _ = k.logsumexp(&x);
        fail(k.logsumexp_rows(&x, 3, &mut row[..2]));
        fail(k.softmax(&x, 3, &mut row));
        fail(k.softmax_in_place(&mut row, 3));
        fail(k.log_softmax(&x, 3, &mut row));
        fail(k.log_softmax_in_place(&mut row, 3));
        let mut grad = [0.0f32; 6];
        let ce = CrossEntropy::new().with_label_smoothing(0.1);
        fail(
            k.cross_entropy(&x, 3, Target::Indices(&[0, 2]), &ce, &mut [])
                .map(|_| ()),
        );
        fail(
            k.cross_entropy_with_grad(&x, 3, Target::Indices(&[0, 2]), &ce, &mut [], &mut grad)
                .map(|_| ()),
        );
        fail(k.nll_loss(&row, 3, &[1, 0], &ce, &mut []).map(|_| ()));
        let bce = BceWithLogits::new();
        fail(
            k.binary_cross_entropy_with_logits(&x, &[0.0, 1.0, 1.0, 0.0, 1.0, 0.0], &bce, &mut [])
                .map(|_| ()),
        );
        fail(
            k.binary_cross_entropy_with_logits_with_grad(&x, &[1.0; 6], &bce, &mut [], &mut grad)
                .map(|_| ()),
        );
        let p = [0.25f32, 0.25, 0.5];
        let _ = k.entropy(&p);
        fail(k.distribution_cross_entropy(&p, &p).map(|_| ()));
        fail(
            k.kl_div(&row[..3], &p, 3, false, KlReduction::BatchMean, &mut [])
                .map(|_| ()),
        );
    }
    let mut y = [0.0f32; 2];
    fail(mlp_kernels::relu(&[1.0, -1.0], &mut y));
    mlp_kernels::relu_in_place(&mut y);
    fail(mlp_kernels::relu_backward(&[1.0, 0.0], &[1.0, 1.0], &mut y));
    fail(mlp_kernels::relu_backward_in_place(&[1.0, 0.0], &mut y));
    fail(mlp_kernels::exp(&[1.0, 0.0], &mut y));
    mlp_kernels::exp_in_place(&mut y);
    fail(mlp_kernels::sgd_step(
        &Sgd::new(0.1),
        &mut y,
        &[1.0, 1.0],
        &mut [],
        true,
    ));
    failures
}
