//! The firmware example's training (examples/firmware/src/train.rs, included as is) on
//! the host's portable backend, on the same 14x14 data its build script makes.
//!
//! The device and the host must end with bit-identical weights. The portable backend
//! does its float operations in IEEE single precision in a fixed order, with the
//! crate's own exp and libm's log; its multiply-add is `wide`'s, which fuses only
//! where the target has FMA in its vector unit (aarch64 NEON, or an x86 build with
//! `+fma`). On a default x86_64 build (SSE2) and on a Cortex-M (no vector unit) it is
//! two roundings on both sides, so the weights' hash printed here must equal the one
//! the firmware prints under QEMU. `scripts/firmware.sh` passes the firmware's logs in
//! `FIRMWARE_LOGS` (paths separated by `:`), and this test then compares them line by
//! line with its own run; without them it checks the training alone (as on aarch64,
//! where the fused multiply-add gives other bits).

#[allow(dead_code)]
#[path = "../examples/firmware/dataset.rs"]
mod dataset;
#[allow(dead_code)]
#[path = "../examples/firmware/src/train.rs"]
mod train;

use std::path::Path;

use mlp_kernels::{Backend, Kernels};

/// The seed in examples/firmware/src/main.rs.
const SEED: u64 = 0;

fn host_run() -> (Vec<f32>, train::Summary) {
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let split = |prefix: &str, count| {
        dataset::load(
            &mnist.join(format!("{prefix}-images-idx3-ubyte.gz")),
            &mnist.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            count,
        )
        .unwrap()
    };
    let (tr, te) = (
        split("train", dataset::TRAIN_IMAGES),
        split("t10k", dataset::TEST_IMAGES),
    );
    fn images(s: &dataset::Split) -> train::Images<'_> {
        train::Images {
            pixels: &s.pixels,
            labels: &s.labels,
        }
    }
    let k = Kernels::new(Backend::Portable).unwrap();
    let mut state = Box::new(train::State::ZERO);
    let mut losses = Vec::new();
    let summary = train::train(&k, &mut state, images(&tr), images(&te), SEED, |_, l| {
        losses.push(l)
    })
    .unwrap();
    (losses, summary)
}

/// The value after `prefix` on the first line of `log` that starts with it.
fn field<'a>(log: &'a str, prefix: &str) -> Option<&'a str> {
    log.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.split([',', ' ']).next().unwrap_or(v))
}

#[test]
fn firmware_training_learns_and_matches_the_device_bit_for_bit() {
    let (losses, summary) = host_run();
    let accuracy = summary.correct as f64 / summary.tested as f64;
    println!(
        "host: accuracy {:.2}% ({}/{}), weights hash: {:016x}",
        100.0 * accuracy,
        summary.correct,
        summary.tested,
        summary.hash
    );
    assert_eq!(losses.len(), train::EPOCHS);
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(
        losses[train::EPOCHS - 1] < 0.5 * losses[0],
        "training loss did not fall: {losses:?}"
    );
    assert!(accuracy >= 0.85, "test accuracy {accuracy} below 85%");

    let Ok(logs) = std::env::var("FIRMWARE_LOGS") else {
        println!("FIRMWARE_LOGS not set: no device log to compare with");
        return;
    };
    for path in logs.split(':').filter(|p| !p.is_empty()) {
        let log = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            field(&log, "weights hash: "),
            Some(format!("{:016x}", summary.hash).as_str()),
            "{path}: the device's weights differ from the host's"
        );
        for (e, l) in losses.iter().enumerate() {
            // "0.805362 (bits 3f4e2c39)": the firmware prints each float's bits.
            let prefix = format!("epoch {}: mean training loss ", e + 1);
            let bits = log
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|v| v.split_once("(bits ")?.1.strip_suffix(')'))
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            assert_eq!(bits, Some(l.to_bits()), "{path}: epoch {}", e + 1);
        }
        let device_correct = log
            .lines()
            .find_map(|l| {
                l.split_once(" accuracy ")?
                    .1
                    .split_once('(')?
                    .1
                    .split_once('/')
            })
            .and_then(|(c, _)| c.parse::<usize>().ok());
        assert_eq!(
            device_correct,
            Some(summary.correct),
            "{path}: test accuracy"
        );
        println!("{path}: same weights hash, epoch losses and accuracy as the host");
    }
}
