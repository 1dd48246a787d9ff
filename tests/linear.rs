//! `Linear`'s backward pass on threads: the f64 gradient of y = x W^T + b, with the
//! same bits on every thread count (on more than one thread, dW and dx run side by
//! side, each on threads of its own).

mod common;
use common::{SplitMix, kernels, threads_available};
use mlp_kernels::{Error, Kernels, Linear, LinearGrads};

struct Grads {
    weight: Vec<f32>,
    bias: Vec<f32>,
    input: Vec<f32>,
}

/// Floats in [-1, 1).
fn floats(rng: &mut SplitMix, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

/// The layer's gradients from `start` (what the buffers held before: kept when
/// `accumulate`).
fn backward(
    k: &Kernels,
    layer: Linear,
    (x, w, dy): (&[f32], &[f32], &[f32]),
    start: &Grads,
    accumulate: bool,
) -> Result<Grads, Error> {
    let mut g = Grads {
        weight: start.weight.clone(),
        bias: start.bias.clone(),
        input: start.input.clone(),
    };
    let mut ws = vec![0.0; layer.workspace_len(x.len() / layer.in_features)];
    let grads = LinearGrads {
        weight: &mut g.weight,
        bias: Some(&mut g.bias),
        input: Some(&mut g.input),
        accumulate,
    };
    layer.backward(k, x, w, dy, grads, &mut ws)?;
    Ok(g)
}

/// |got - want| within n roundings of the sum of |terms| (a float sum's bound).
fn assert_near(what: &str, got: &[f32], want: &[(f64, f64)], n: usize) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (j, (&g, &(v, abs))) in got.iter().zip(want).enumerate() {
        let bound = (n as f64 + 2.0) * f64::from(f32::EPSILON) * abs + 1e-30;
        assert!(
            (f64::from(g) - v).abs() <= bound,
            "{what}[{j}]: {g} against {v} (bound {bound:e})"
        );
    }
}

#[test]
fn backward_on_threads_is_the_f64_gradient_with_the_same_bits() -> Result<(), Error> {
    if !threads_available("backward_on_threads_is_the_f64_gradient_with_the_same_bits") {
        return Ok(());
    }
    let mut rng = SplitMix(21);
    // The lesson's two hidden layers, odd sizes, one row; dW and dx cut by rows
    // (13 x 5 and 300 x 5, depth 300 in two blocks) where threads would cut them.
    for (batch, i, o) in [
        (200, 200, 200),
        (200, 200, 10),
        (7, 5, 3),
        (1, 33, 17),
        (25, 5, 3),
        (300, 5, 13),
        // Output widths past the lesson's: several whole vectors and a part of one.
        (9, 4, 100),
        (3, 2, 47),
    ] {
        let x = floats(&mut rng, batch * i);
        let w = floats(&mut rng, o * i);
        let dy = floats(&mut rng, batch * o);
        let start = Grads {
            weight: floats(&mut rng, o * i),
            bias: floats(&mut rng, o),
            input: floats(&mut rng, batch * i),
        };
        // f64 sums with the sum of |terms| of each.
        let sum = |terms: &mut dyn Iterator<Item = f64>| {
            terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()))
        };
        let dw: Vec<(f64, f64)> = (0..o * i)
            .map(|e| {
                let (r, c) = (e / i, e % i);
                sum(&mut (0..batch).map(|b| f64::from(dy[b * o + r]) * f64::from(x[b * i + c])))
            })
            .collect();
        let dx: Vec<(f64, f64)> = (0..batch * i)
            .map(|e| {
                let (b, c) = (e / i, e % i);
                sum(&mut (0..o).map(|r| f64::from(dy[b * o + r]) * f64::from(w[r * i + c])))
            })
            .collect();
        let db: Vec<(f64, f64)> = (0..o)
            .map(|r| sum(&mut (0..batch).map(|b| f64::from(dy[b * o + r]))))
            .collect();
        // The accumulated forms: the start plus the gradient, as one more term.
        let plus = |g: &[(f64, f64)], s: &[f32]| -> Vec<(f64, f64)> {
            g.iter()
                .zip(s)
                .map(|(&(v, a), &s)| (v + f64::from(s), a + f64::from(s).abs()))
                .collect()
        };
        for k in kernels() {
            for accumulate in [false, true] {
                let one = backward(&k, Linear::new(i, o), (&x, &w, &dy), &start, accumulate)?;
                let what = format!("{} {batch}x{i}x{o} accumulate {accumulate}", k.backend());
                if accumulate {
                    assert_near(&what, &one.weight, &plus(&dw, &start.weight), batch + 1);
                    assert_near(&what, &one.bias, &plus(&db, &start.bias), batch + 1);
                } else {
                    assert_near(&what, &one.weight, &dw, batch);
                    assert_near(&what, &one.bias, &db, batch);
                }
                // dx is written, never accumulated (PyTorch's grad_input).
                assert_near(&what, &one.input, &dx, o);
                // 0, set directly (the field is public), is one thread, as
                // `workspace_len` counts it.
                for threads in [0, 2, 3, 4, 64] {
                    let layer = Linear {
                        threads,
                        ..Linear::new(i, o)
                    };
                    let many = backward(&k, layer, (&x, &w, &dy), &start, accumulate)?;
                    let what = format!("{what} threads {threads}");
                    assert_eq!(one.weight, many.weight, "dW, {what}");
                    assert_eq!(one.bias, many.bias, "db, {what}");
                    assert_eq!(one.input, many.input, "dx, {what}");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn backward_on_threads_refuses_a_short_workspace_before_any_write() {
    let k = Kernels::detect();
    let (batch, i, o) = (200, 200, 10);
    let layer = Linear::new(i, o).with_threads(2);
    let (x, w, dy) = (
        vec![1.0f32; batch * i],
        vec![0.5f32; o * i],
        vec![0.25f32; batch * o],
    );
    let (mut gw, mut gb, mut gx) = (
        vec![7.0f32; o * i],
        vec![7.0f32; o],
        vec![7.0f32; batch * i],
    );
    let need = layer.workspace_len(batch);
    let grads = LinearGrads {
        weight: &mut gw,
        bias: Some(&mut gb),
        input: Some(&mut gx),
        accumulate: false,
    };
    let r = layer.backward(&k, &x, &w, &dy, grads, &mut vec![0.0; need - 1]);
    assert_eq!(
        r,
        Err(Error::WorkspaceTooSmall {
            needed: need,
            found: need - 1
        })
    );
    assert!(
        [&gw[..], &gb, &gx]
            .iter()
            .all(|g| g.iter().all(|&v| v == 7.0)),
        "a gradient was written before the workspace was refused"
    );
}
