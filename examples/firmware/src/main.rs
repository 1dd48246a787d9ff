//! Trains the 196-32-10 MLP of `train.rs` on a Cortex-M, under QEMU or on a board,
//! with every byte of memory static and output over semihosting.
//!
//! Run it with `scripts/firmware.sh run an386` (Cortex-M4F) or `... run an547`
//! (Cortex-M55); see the README's "Firmware" section.
#![no_std]
#![no_main]

mod out;
mod stack;
mod train;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use mlp_kernels::{Backend, Kernels};
use out::Out;

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
    let mut out = Out::open();
    let status = match run(STATE, &mut out) {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            report(&mut out, &e);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(status);
    #[allow(clippy::empty_loop)]
    loop {}
}

fn run(state: &mut train::State, out: &mut Out) -> Result<(), mlp_kernels::Error> {
    let k = Kernels::new(Backend::Portable)?;
    let train_set = train::Images {
        pixels: TRAIN_PIXELS,
        labels: TRAIN_LABELS,
    };
    let test_set = train::Images {
        pixels: TEST_PIXELS,
        labels: TEST_LABELS,
    };
    let n = |x: usize| x as u64;
    out.str("firmware: ")
        .uint(n(train::INPUTS), 1)
        .str("-")
        .uint(n(train::HIDDEN), 1)
        .str("-")
        .uint(n(train::CLASSES), 1)
        .str(" MLP, batch ")
        .uint(n(train::BATCH), 1)
        .str(", ")
        .uint(n(TRAIN_LABELS.len()), 1)
        .str(" train / ")
        .uint(n(TEST_LABELS.len()), 1)
        .str(" test images, backend ")
        .str(k.backend().name())
        .line();
    let summary = train::train(&k, state, train_set, test_set, SEED, |epoch, loss| {
        out.str("epoch ")
            .uint(n(epoch), 1)
            .str(": mean training loss ")
            .float(loss)
            .line();
    })?;
    // Basis points of accuracy; `checked_div` keeps an empty test set from dividing by 0.
    let bp = n(summary.correct * 10_000)
        .checked_div(n(summary.tested))
        .unwrap_or(0);
    out.str("test: mean loss ")
        .float(summary.test_loss)
        .str(", accuracy ")
        .uint(bp / 100, 1)
        .str(".")
        .uint(bp % 100, 2)
        .str("% (")
        .uint(n(summary.correct), 1)
        .str("/")
        .uint(n(summary.tested), 1)
        .str(")")
        .line();
    out.str("weights hash: ").hex(summary.hash, 16).line();
    out.str("memory: peak stack ")
        .uint(n(stack::peak()), 1)
        .str(" bytes, static RAM ")
        .uint(n(stack::static_ram()), 1)
        .str(" bytes")
        .line();
    Ok(())
}

/// One line for an error, from its fields (its `Display` would need `core::fmt`).
fn report(out: &mut Out, e: &mlp_kernels::Error) {
    use mlp_kernels::Error::*;
    let n = |x: usize| x as u64;
    out.str("error: ");
    match *e {
        ShapeMismatch {
            what,
            expected,
            found,
        } => out
            .str(what)
            .str(": expected ")
            .uint(n(expected), 1)
            .str(", found ")
            .uint(n(found), 1),
        WorkspaceTooSmall { needed, found } => out
            .str("workspace: needed ")
            .uint(n(needed), 1)
            .str(", found ")
            .uint(n(found), 1),
        InvalidParameter { name, reason } => out.str(name).str(": ").str(reason),
        UnsupportedBackend(b) => out.str("unsupported backend ").str(b.name()),
        _ => out.str("invalid input"),
    };
    out.line();
}

#[cfg(not(feature = "no-panic-proof"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    cortex_m_semihosting::hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

// With `no-panic-proof` (scripts/firmware.sh builds the boards' binaries so) the
// handler calls a function defined nowhere: any panic path left in the optimised
// firmware keeps it, and the link fails.
#[cfg(feature = "no-panic-proof")]
unsafe extern "C" {
    fn mlp_kernels_reached_a_panic() -> !;
}

#[cfg(feature = "no-panic-proof")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: never runs in a build that links (see above).
    unsafe { mlp_kernels_reached_a_panic() }
}
