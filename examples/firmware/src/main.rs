//! Trains the 196-32-10 MLP of `train.rs` on a Cortex-M, under QEMU or on a board,
//! with every byte of memory static and output over semihosting.
//!
//! Run it with `scripts/firmware.sh run an386` (Cortex-M4F) or `... run an547`
//! (Cortex-M55); see the README's "Firmware" section.
#![no_std]
#![no_main]

mod stack;
mod train;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use mlp_kernels::{Backend, Kernels};

macro_rules! data {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}
static TRAIN_PIXELS: &[u8] = data!("train-pixels.bin");
static TRAIN_LABELS: &[u8] = data!("train-labels.bin");
static TEST_PIXELS: &[u8] = data!("test-pixels.bin");
static TEST_LABELS: &[u8] = data!("test-labels.bin");

/// The seed of the initial weights and of the shuffles; the host test uses it too.
const SEED: u64 = 0;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns this into a `&'static mut`, once, before anything else runs.
    static mut STATE: train::State = train::State::ZERO;
    // SAFETY: called once, first thing, with nothing on the stack below this frame
    // worth keeping.
    unsafe { stack::paint() };
    let status = match run(STATE) {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            hprintln!("error: {}", e);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(status);
    #[allow(clippy::empty_loop)]
    loop {}
}

fn run(state: &mut train::State) -> Result<(), mlp_kernels::Error> {
    let k = Kernels::new(Backend::Portable)?;
    let train_set = train::Images {
        pixels: TRAIN_PIXELS,
        labels: TRAIN_LABELS,
    };
    let test_set = train::Images {
        pixels: TEST_PIXELS,
        labels: TEST_LABELS,
    };
    hprintln!(
        "firmware: {}-{}-{} MLP, batch {}, {} train / {} test images, backend {}",
        train::INPUTS,
        train::HIDDEN,
        train::CLASSES,
        train::BATCH,
        TRAIN_LABELS.len(),
        TEST_LABELS.len(),
        k.backend()
    );
    let summary = train::train(&k, state, train_set, test_set, SEED, |epoch, loss| {
        hprintln!("epoch {}: mean training loss {}", epoch, loss);
    })?;
    hprintln!(
        "test: mean loss {}, accuracy {}.{:02}% ({}/{})",
        summary.test_loss,
        summary.correct * 100 / summary.tested,
        summary.correct * 10_000 / summary.tested % 100,
        summary.correct,
        summary.tested
    );
    hprintln!("weights hash: {:016x}", summary.hash);
    hprintln!(
        "memory: peak stack {} bytes, static RAM {} bytes",
        stack::peak(),
        stack::static_ram()
    );
    Ok(())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
