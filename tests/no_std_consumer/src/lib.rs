//! Calls every public kernel of mlp-kernels from a `#![no_std]` staticlib.
#![no_std]

use core::convert::Infallible;
use mlp_kernels::init::{FanMode, Nonlinearity};
use mlp_kernels::{Backend, Kernels, Sgd};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
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
    fail(mlp_kernels::init::kaiming_normal(&mut w, [6, 4], FanMode::FanIn, Nonlinearity::Relu, &mut rng));
    fail(mlp_kernels::init::kaiming_uniform(&mut w, [6, 4], FanMode::FanOut, Nonlinearity::Tanh, &mut rng));
    fail(mlp_kernels::init::xavier_normal(&mut w, [6, 4], 1.0, &mut rng));
    fail(mlp_kernels::init::xavier_uniform(&mut w, [6, 4], 1.0, &mut rng));

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
    }
    let mut y = [0.0f32; 2];
    fail(mlp_kernels::relu(&[1.0, -1.0], &mut y));
    mlp_kernels::relu_in_place(&mut y);
    fail(mlp_kernels::relu_backward(&[1.0, 0.0], &[1.0, 1.0], &mut y));
    fail(mlp_kernels::relu_backward_in_place(&[1.0, 0.0], &mut y));
    fail(mlp_kernels::exp(&[1.0, 0.0], &mut y));
    mlp_kernels::exp_in_place(&mut y);
    fail(mlp_kernels::sgd_step(&Sgd::new(0.1), &mut y, &[1.0, 1.0], &mut [], true));
    failures
}
