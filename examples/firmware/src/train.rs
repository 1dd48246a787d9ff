//! The firmware's network and training loop: 196-32-10, ReLU, fused softmax
//! cross-entropy, SGD with momentum, on 14x14 MNIST packed at 4 bits a pixel.
//!
//! `no_std`, no allocation: all state is one [`State`] value that the caller places
//! (a `static` on the device, a `Box` in the host test). The host test
//! `tests/firmware_parity.rs` includes this very file and runs it on
//! `Backend::Portable`, so that the weights' hash printed on the device can be
//! compared with the host's bit for bit.

use mlp_kernels::init::{FanMode, Nonlinearity, kaiming_uniform};
use mlp_kernels::{CrossEntropy, Error, Kernels, Linear, LinearGrads, Reduction, Sgd, Target};

/// Inputs: 14x14 pixels.
pub const INPUTS: usize = 196;
/// Hidden units.
pub const HIDDEN: usize = 32;
/// Classes.
pub const CLASSES: usize = 10;
/// Samples per step.
pub const BATCH: usize = 32;
/// Passes over the training images.
pub const EPOCHS: usize = 10;
/// Workspace for the products, in f32: at least `Linear::workspace_len(BATCH)` of
/// both layers, which `train` checks before the first step.
pub const WORKSPACE: usize = 13_360;
/// Most training images `State` can index.
pub const MAX_TRAIN: usize = 4096;

const LAYER1: Linear = Linear {
    in_features: INPUTS,
    out_features: HIDDEN,
    threads: 1,
};
const LAYER2: Linear = Linear {
    in_features: HIDDEN,
    out_features: CLASSES,
    threads: 1,
};

/// The optimiser: plain momentum, as the lesson's `--momentum 0.9`.
pub fn optimiser() -> Sgd {
    Sgd::new(0.05).with_momentum(0.9)
}

/// Packed images (two 4-bit pixels a byte) and their labels.
#[derive(Clone, Copy)]
pub struct Images<'a> {
    pub pixels: &'a [u8],
    pub labels: &'a [u8],
}

impl Images<'_> {
    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// Parameters, gradients, momentum, activations and scratch: everything training
/// touches. 170 KiB.
pub struct State {
    w1: [f32; HIDDEN * INPUTS],
    b1: [f32; HIDDEN],
    w2: [f32; CLASSES * HIDDEN],
    b2: [f32; CLASSES],
    grad_w1: [f32; HIDDEN * INPUTS],
    grad_b1: [f32; HIDDEN],
    grad_w2: [f32; CLASSES * HIDDEN],
    grad_b2: [f32; CLASSES],
    mom_w1: [f32; HIDDEN * INPUTS],
    mom_b1: [f32; HIDDEN],
    mom_w2: [f32; CLASSES * HIDDEN],
    mom_b2: [f32; CLASSES],
    x: [f32; BATCH * INPUTS],
    y: [i64; BATCH],
    hidden: [f32; BATCH * HIDDEN],
    grad_hidden: [f32; BATCH * HIDDEN],
    logits: [f32; BATCH * CLASSES],
    grad_logits: [f32; BATCH * CLASSES],
    workspace: [f32; WORKSPACE],
    order: [u16; MAX_TRAIN],
}

impl State {
    /// All zeros, so that a `static` of it goes to `.bss`.
    pub const ZERO: State = State {
        w1: [0.0; HIDDEN * INPUTS],
        b1: [0.0; HIDDEN],
        w2: [0.0; CLASSES * HIDDEN],
        b2: [0.0; CLASSES],
        grad_w1: [0.0; HIDDEN * INPUTS],
        grad_b1: [0.0; HIDDEN],
        grad_w2: [0.0; CLASSES * HIDDEN],
        grad_b2: [0.0; CLASSES],
        mom_w1: [0.0; HIDDEN * INPUTS],
        mom_b1: [0.0; HIDDEN],
        mom_w2: [0.0; CLASSES * HIDDEN],
        mom_b2: [0.0; CLASSES],
        x: [0.0; BATCH * INPUTS],
        y: [0; BATCH],
        hidden: [0.0; BATCH * HIDDEN],
        grad_hidden: [0.0; BATCH * HIDDEN],
        logits: [0.0; BATCH * CLASSES],
        grad_logits: [0.0; BATCH * CLASSES],
        workspace: [0.0; WORKSPACE],
        order: [0; MAX_TRAIN],
    };

    /// FNV-1a (64 bit) over the bits of every weight and bias, in declaration order:
    /// equal hashes mean bit-identical parameters.
    pub fn weights_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for p in [&self.w1[..], &self.b1, &self.w2, &self.b2] {
            for x in p {
                for byte in x.to_bits().to_le_bytes() {
                    h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
        }
        h
    }
}

/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): the same stream on every target.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` by Lemire's multiply-shift (the tiny bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
}

impl rand_core::TryRng for SplitMix64 {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.next() >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// What one run reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Mean test loss.
    pub test_loss: f32,
    /// Test images classified right.
    pub correct: usize,
    /// Test images.
    pub tested: usize,
    /// [`State::weights_hash`] after the last epoch.
    pub hash: u64,
}

/// Initialises `state` as `torch.nn.Linear` does (Kaiming uniform with a = sqrt(5),
/// that is bound 1/sqrt(fan_in), for the weights; biases zero here) from `seed`,
/// trains for [`EPOCHS`], calling `on_epoch(epoch, mean_loss)` after each, and tests.
pub fn train(
    k: &Kernels,
    state: &mut State,
    train_set: Images<'_>,
    test_set: Images<'_>,
    seed: u64,
    mut on_epoch: impl FnMut(usize, f32),
) -> Result<Summary, Error> {
    check(train_set, MAX_TRAIN, "train images")?;
    check(test_set, usize::MAX, "test images")?;
    for layer in [LAYER1, LAYER2] {
        let need = layer.workspace_len(BATCH);
        if need > WORKSPACE {
            return Err(Error::WorkspaceTooSmall {
                needed: need,
                found: WORKSPACE,
            });
        }
    }
    let mut rng = SplitMix64(seed);
    let a = Nonlinearity::LeakyRelu(2.236_068); // sqrt(5), as torch.nn.Linear
    kaiming_uniform(&mut state.w1, [HIDDEN, INPUTS], FanMode::FanIn, a, &mut rng)?;
    kaiming_uniform(
        &mut state.w2,
        [CLASSES, HIDDEN],
        FanMode::FanIn,
        a,
        &mut rng,
    )?;
    state.b1.fill(0.0);
    state.b2.fill(0.0);

    let n = train_set.len();
    for (i, o) in state.order[..n].iter_mut().enumerate() {
        *o = i as u16;
    }
    let opt = optimiser();
    let mut first = true;
    for epoch in 1..=EPOCHS {
        // Fisher-Yates.
        for i in (1..n).rev() {
            state.order.swap(i, rng.below(i + 1));
        }
        let (mut sum, mut steps) = (0.0f32, 0u32);
        for start in (0..n).step_by(BATCH) {
            let rows = BATCH.min(n - start);
            for r in 0..rows {
                let i = usize::from(state.order[start + r]);
                gather(state, train_set, i, r);
            }
            sum += step(k, state, rows, &opt, first)?;
            first = false;
            steps += 1;
        }
        on_epoch(epoch, sum / steps as f32);
    }
    test(k, state, test_set)
}

fn check(set: Images<'_>, max: usize, what: &'static str) -> Result<(), Error> {
    let n = set.len();
    if n == 0 || n > max {
        return Err(Error::InvalidParameter {
            name: what,
            reason: "count must be in 1..=the capacity of State",
        });
    }
    if set.pixels.len() != n * (INPUTS / 2) {
        return Err(Error::ShapeMismatch {
            what,
            expected: n * (INPUTS / 2),
            found: set.pixels.len(),
        });
    }
    Ok(())
}

/// Unpacks image `i` into row `r` of the batch, normalised as the lesson does,
/// (x - 0.1307) / 0.3081 with x the grey level in [0, 1].
fn gather(state: &mut State, set: Images<'_>, i: usize, r: usize) {
    const HALF: usize = INPUTS / 2;
    let level = |q: u8| (f32::from(q) / 15.0 - 0.1307) / 0.3081;
    // `check` sized the set and the batch holds row r: no `get` below misses (and
    // none can panic, so the firmware keeps no panic path).
    let src = set.pixels.get(i * HALF..(i + 1) * HALF).unwrap_or_default();
    let dst = state
        .x
        .get_mut(r * INPUTS..(r + 1) * INPUTS)
        .unwrap_or_default();
    for (pair, &byte) in dst.chunks_exact_mut(2).zip(src) {
        if let [lo, hi] = pair {
            (*lo, *hi) = (level(byte & 15), level(byte >> 4));
        }
    }
    if let (Some(y), Some(&label)) = (state.y.get_mut(r), set.labels.get(i)) {
        *y = i64::from(label);
    }
}

/// Forward pass of the first `rows` rows of the batch: hidden and logits.
fn forward(k: &Kernels, s: &mut State, rows: usize) -> Result<(), Error> {
    let hidden = &mut s.hidden[..rows * HIDDEN];
    LAYER1.forward(
        k,
        &s.x[..rows * INPUTS],
        &s.w1,
        Some(&s.b1),
        hidden,
        &mut s.workspace,
    )?;
    k.relu_in_place(hidden);
    let logits = &mut s.logits[..rows * CLASSES];
    LAYER2.forward(k, hidden, &s.w2, Some(&s.b2), logits, &mut s.workspace)
}

/// One SGD step on the first `rows` rows of the batch; returns their mean loss.
fn step(k: &Kernels, s: &mut State, rows: usize, opt: &Sgd, first: bool) -> Result<f32, Error> {
    forward(k, s, rows)?;
    let loss = k.cross_entropy_with_grad(
        &s.logits[..rows * CLASSES],
        CLASSES,
        Target::Indices(&s.y[..rows]),
        &CrossEntropy::new(),
        &mut [],
        &mut s.grad_logits[..rows * CLASSES],
    )?;
    let hidden = &s.hidden[..rows * HIDDEN];
    let grad_hidden = &mut s.grad_hidden[..rows * HIDDEN];
    let grads2 = LinearGrads {
        weight: &mut s.grad_w2,
        bias: Some(&mut s.grad_b2),
        input: Some(&mut *grad_hidden),
        accumulate: false,
    };
    LAYER2.backward(
        k,
        hidden,
        &s.w2,
        &s.grad_logits[..rows * CLASSES],
        grads2,
        &mut s.workspace,
    )?;
    k.relu_backward_in_place(hidden, grad_hidden)?;
    let grads1 = LinearGrads {
        weight: &mut s.grad_w1,
        bias: Some(&mut s.grad_b1),
        input: None,
        accumulate: false,
    };
    LAYER1.backward(
        k,
        &s.x[..rows * INPUTS],
        &s.w1,
        grad_hidden,
        grads1,
        &mut s.workspace,
    )?;
    k.sgd_step(opt, &mut s.w1, &s.grad_w1, &mut s.mom_w1, first)?;
    k.sgd_step(opt, &mut s.b1, &s.grad_b1, &mut s.mom_b1, first)?;
    k.sgd_step(opt, &mut s.w2, &s.grad_w2, &mut s.mom_w2, first)?;
    k.sgd_step(opt, &mut s.b2, &s.grad_b2, &mut s.mom_b2, first)?;
    Ok(loss)
}

/// Mean loss and accuracy on `set`, a batch at a time; the first maximum wins, as
/// `torch.argmax`.
fn test(k: &Kernels, s: &mut State, set: Images<'_>) -> Result<Summary, Error> {
    let n = set.len();
    let (mut loss, mut correct) = (0.0f32, 0usize);
    let sum = CrossEntropy::new().with_reduction(Reduction::Sum);
    for start in (0..n).step_by(BATCH) {
        let rows = BATCH.min(n - start);
        for r in 0..rows {
            gather(s, set, start + r, r);
        }
        forward(k, s, rows)?;
        let logits = &s.logits[..rows * CLASSES];
        // The fused kernel that training links anyway, its gradient into scratch: its
        // loss is bit for bit `cross_entropy`'s, and the firmware then carries one
        // cross-entropy kernel instead of two (16 KiB less .text at opt-level "s").
        loss += k.cross_entropy_with_grad(
            logits,
            CLASSES,
            Target::Indices(&s.y[..rows]),
            &sum,
            &mut [],
            &mut s.grad_logits[..rows * CLASSES],
        )?;
        for (row, &y) in logits.chunks_exact(CLASSES).zip(&s.y[..rows]) {
            // The first largest logit (a later one must be strictly larger).
            let mut best = (0, row.first().copied().unwrap_or(f32::NAN));
            for (j, &v) in row.iter().enumerate().skip(1) {
                if v > best.1 {
                    best = (j, v);
                }
            }
            correct += usize::from(best.0 as i64 == y);
        }
    }
    Ok(Summary {
        test_loss: loss / n as f32,
        correct,
        tested: n,
        hash: s.weights_hash(),
    })
}
