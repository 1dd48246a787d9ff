//! Fuzzes `sgd_step` over every option combination and any float bits.
//!
//! Input: a header byte (backend, momentum, dampening, weight decay, nesterov,
//! maximize), a learning-rate byte, a step-count byte, then parameter, gradient and
//! buffer values as little-endian f32 (the parameter count is a third of what is left).
//! Asserts: no panic; options torch.optim.SGD refuses are `Err` with nothing written;
//! otherwise, where every value and every intermediate stays below 1e15 in magnitude,
//! each parameter and buffer value is within a few eps (relative) of an f64 reference of
//! PyTorch's rule, and NaN in the inputs stays NaN in the parameter it reaches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlp_kernels::Sgd;
use mlp_kernels_fuzz::{floats, kernels};

/// torch.optim.SGD's rule in f64 (see src/optim.rs for its source).
fn reference(o: &Sgd, p: &mut [f64], g: &[f64], b: &mut [f64], first: bool) {
    let (lr, mu, damp, wd) = (
        f64::from(o.lr),
        f64::from(o.momentum),
        f64::from(o.dampening),
        f64::from(o.weight_decay),
    );
    for i in 0..p.len() {
        let mut gi = if o.maximize { -g[i] } else { g[i] };
        gi += wd * p[i];
        if mu != 0.0 {
            b[i] = if first {
                gi
            } else {
                mu * b[i] + (1.0 - damp) * gi
            };
            gi = if o.nesterov { gi + mu * b[i] } else { b[i] };
        }
        p[i] -= lr * gi;
    }
}

fuzz_target!(|data: &[u8]| {
    let [head, lr, steps, rest @ ..] = data else {
        return;
    };
    let k = kernels(*head);
    let opt = Sgd::new(f32::from(*lr) / 256.0 - 0.05) // a few negative: refused
        .with_momentum([0.0, 0.9, 0.5, -0.1][usize::from(head >> 2 & 3)])
        .with_dampening([0.0, 0.25][usize::from(head >> 4 & 1)])
        .with_weight_decay([0.0, 0.01][usize::from(head >> 5 & 1)])
        .with_nesterov(head >> 6 & 1 == 1)
        .with_maximize(head >> 7 == 1);
    let v = floats(rest);
    let n = v.len() / 3;
    let (mut p, g, mut b) = (
        v[..n].to_vec(),
        v[n..2 * n].to_vec(),
        v[2 * n..3 * n].to_vec(),
    );
    let valid = opt.validate().is_ok();
    let (p0, b0) = (p.clone(), b.clone());
    let r = k.sgd_step(&opt, &mut p, &g, &mut b, true);
    if !valid {
        assert!(r.is_err(), "{opt:?} accepted");
        let same = |a: &[f32], z: &[f32]| a.iter().zip(z).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same(&p, &p0) && same(&b, &b0), "a refused step wrote");
        return;
    }
    r.expect("valid options and equal lengths");
    let mut p64: Vec<f64> = p0.iter().map(|&x| f64::from(x)).collect();
    let g64: Vec<f64> = g.iter().map(|&x| f64::from(x)).collect();
    let mut b64: Vec<f64> = b0.iter().map(|&x| f64::from(x)).collect();
    reference(&opt, &mut p64, &g64, &mut b64, true);
    for step in 1..1 + usize::from(steps % 3) {
        k.sgd_step(&opt, &mut p, &g, &mut b, false)
            .expect("as above");
        reference(&opt, &mut p64, &g64, &mut b64, false);
        let _ = step;
    }
    let tame = |x: f64| x.is_finite() && x.abs() < 1e15;
    let inputs_tame = p0.iter().chain(&g).all(|&x| tame(f64::from(x)));
    for i in 0..n {
        if inputs_tame && tame(p64[i]) && tame(b64[i]) {
            // Each step rounds a few operations of terms up to the inputs' size.
            let scale = 1.0 + f64::from(p0[i].abs()) + f64::from(g[i].abs()) + b64[i].abs();
            let tol = 64.0 * f64::from(f32::EPSILON) * scale;
            assert!(
                (f64::from(p[i]) - p64[i]).abs() <= tol,
                "{:?} {opt:?} p[{i}] = {} vs {}",
                k.backend(),
                p[i],
                p64[i]
            );
        }
        if p0[i].is_nan() || g[i].is_nan() {
            assert!(p[i].is_nan(), "NaN in, {} out", p[i]);
        }
    }
});
