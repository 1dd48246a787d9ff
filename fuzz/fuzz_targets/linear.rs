//! Fuzzes `Linear` forward and backward against naive f64 products.
//!
//! Input: three shape bytes (batch, in, out; 0 included), a flag byte (bias, dx,
//! accumulate, backend, a wrong length to inject), then values as little-endian f32
//! for x, W, b and dy in turn (cycled when short). Asserts: no panic; a wrong length or
//! a short workspace is `Err` with y and the gradients untouched; otherwise y = x W^T + b,
//! dW = dy^T x (+ the old dW with accumulate), db = column sums of dy and dx = dy W,
//! each within (in or batch) * 4 eps of the f64 sums of absolute products.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlp_kernels::{Linear, LinearGrads};
use mlp_kernels_fuzz::{floats, kernels};

fuzz_target!(|data: &[u8]| {
    let [b, i, o, flags, rest @ ..] = data else {
        return;
    };
    let (batch, inp, out) = (usize::from(b % 9), usize::from(i % 40), usize::from(o % 40));
    let k = kernels(flags >> 4);
    let vals: Vec<f32> = floats(rest)
        .into_iter()
        .map(|v| {
            if v.is_finite() {
                v.clamp(-1e6, 1e6)
            } else {
                0.5
            }
        })
        .collect();
    let mut next = {
        let mut j = 0usize;
        move || {
            j += 1;
            vals.get(j % vals.len().max(1)).copied().unwrap_or(0.25)
        }
    };
    let mut fill = |n: usize| (0..n).map(|_| next()).collect::<Vec<f32>>();
    let (x, w, bias, dy) = (
        fill(batch * inp),
        fill(out * inp),
        fill(out),
        fill(batch * out),
    );
    let layer = Linear::new(inp, out);
    let mut ws = vec![0.0f32; layer.workspace_len(batch)];
    // One injected fault: x one short, W one short, or the workspace one short.
    let fault = flags & 3;
    let xs = if fault == 1 && !x.is_empty() {
        &x[..x.len() - 1]
    } else {
        &x[..]
    };
    let wsl = if fault == 2 && !w.is_empty() {
        &w[..w.len() - 1]
    } else {
        &w[..]
    };
    // The forward product's own workspace, one short (backward needs more; the whole
    // buffer serves it below).
    let fwd_need = mlp_kernels::gemm_workspace_len(batch, out, inp);
    let wsp = if fault == 3 && fwd_need > 0 {
        fwd_need - 1
    } else {
        ws.len()
    };
    let mut y = vec![f32::NAN; batch * out];
    let with_bias = flags & 4 != 0;
    let r = layer.forward(
        &k,
        xs,
        wsl,
        with_bias.then_some(&bias[..]),
        &mut y,
        &mut ws[..wsp],
    );
    let broken = (fault == 1 && !x.is_empty())
        || (fault == 2 && !w.is_empty())
        || (fault == 3 && fwd_need > 0);
    let degenerate = inp == 0 || out == 0;
    if broken || degenerate {
        if r.is_err() {
            assert!(y.iter().all(|v| v.is_nan()), "y written before the error");
        }
        if broken && !degenerate {
            assert!(r.is_err(), "fault {fault} accepted");
        }
        return;
    }
    r.expect("valid shapes");
    let tol = |n: usize, mag: f64| 4.0 * (n as f64 + 2.0) * f64::from(f32::EPSILON) * mag + 1e-30;
    for r in 0..batch {
        for c in 0..out {
            let (mut s, mut m) = (
                if with_bias { f64::from(bias[c]) } else { 0.0 },
                f64::from(bias[c]).abs(),
            );
            for q in 0..inp {
                let t = f64::from(x[r * inp + q]) * f64::from(w[c * inp + q]);
                s += t;
                m += t.abs();
            }
            assert!(
                (f64::from(y[r * out + c]) - s).abs() <= tol(inp, m),
                "y[{r},{c}] {} vs {s}",
                y[r * out + c]
            );
        }
    }
    let accumulate = flags & 8 != 0;
    let old: Vec<f32> = fill(out * inp);
    let (mut dw, mut db, mut dx) = (old.clone(), vec![1.0f32; out], vec![0.0f32; batch * inp]);
    let grads = LinearGrads {
        weight: &mut dw,
        bias: Some(&mut db),
        input: (flags & 64 != 0).then_some(&mut dx[..]),
        accumulate,
    };
    layer
        .backward(&k, &x, &w, &dy, grads, &mut ws)
        .expect("valid shapes");
    for c in 0..out {
        for q in 0..inp {
            let base = if accumulate {
                f64::from(old[c * inp + q])
            } else {
                0.0
            };
            let (mut s, mut m) = (base, base.abs());
            for r in 0..batch {
                let t = f64::from(dy[r * out + c]) * f64::from(x[r * inp + q]);
                s += t;
                m += t.abs();
            }
            assert!(
                (f64::from(dw[c * inp + q]) - s).abs() <= tol(batch, m),
                "dW[{c},{q}] {} vs {s}",
                dw[c * inp + q]
            );
        }
        let base = if accumulate { 1.0 } else { 0.0 };
        let s: f64 = base + (0..batch).map(|r| f64::from(dy[r * out + c])).sum::<f64>();
        let m: f64 = base
            + (0..batch)
                .map(|r| f64::from(dy[r * out + c]).abs())
                .sum::<f64>();
        assert!(
            (f64::from(db[c]) - s).abs() <= tol(batch, m),
            "db[{c}] {} vs {s}",
            db[c]
        );
    }
    if flags & 64 != 0 {
        for r in 0..batch {
            for q in 0..inp {
                let (mut s, mut m) = (0.0f64, 0.0f64);
                for c in 0..out {
                    let t = f64::from(dy[r * out + c]) * f64::from(w[c * inp + q]);
                    s += t;
                    m += t.abs();
                }
                assert!(
                    (f64::from(dx[r * inp + q]) - s).abs() <= tol(out, m),
                    "dx[{r},{q}] {} vs {s}",
                    dx[r * inp + q]
                );
            }
        }
    }
});
