//! One test per backend, so that `cargo test`'s output names each backend it ran:
//! a pass of every kernel family on that backend against values computed here. The
//! thorough checks (proptest, fixtures, finite differences) loop over every supported
//! backend in the other test files.

use mlp_kernels::{
    Backend, CrossEntropy, Kernels, MatMut, MatRef, Sgd, Target, gemm_workspace_len,
};

fn every_family(b: Backend) {
    let Ok(k) = Kernels::new(b) else {
        eprintln!("backend {b} is not supported by this CPU: not run here");
        return;
    };
    // relu and its gradient
    let x: Vec<f32> = (0..37).map(|i| i as f32 - 18.0).collect();
    let mut y = vec![0.0; 37];
    k.relu(&x, &mut y).unwrap();
    assert!(y.iter().zip(&x).all(|(r, v)| *r == v.max(0.0)), "{b}: relu");
    let mut g = vec![1.0; 37];
    k.relu_backward_in_place(&y, &mut g).unwrap();
    assert!(
        g.iter()
            .zip(&y)
            .all(|(gi, yi)| *gi == if *yi > 0.0 { 1.0 } else { 0.0 }),
        "{b}: relu_backward"
    );
    // exp against libm
    let mut e = vec![0.0; 37];
    k.exp(&x, &mut e).unwrap();
    for (v, r) in x.iter().zip(&e) {
        let want = libm::exp(f64::from(*v));
        assert!(
            (f64::from(*r) - want).abs() <= 2.5e-7 * want,
            "{b}: exp({v})"
        );
    }
    // an SGD step: p - lr * g
    let mut p = vec![1.0f32; 37];
    k.sgd_step(&Sgd::new(0.5), &mut p, &x, &mut [], true)
        .unwrap();
    assert!(
        p.iter().zip(&x).all(|(pi, gi)| *pi == 1.0 - 0.5 * gi),
        "{b}: sgd"
    );
    // a product: [1..6] (2x3) times ones (3x2) has row sums 6 and 15
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let ones = [1.0f32; 6];
    let mut c = [0.0f32; 4];
    let mut ws = vec![0.0; gemm_workspace_len(2, 2, 3)];
    let (av, bv) = (
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&ones, 3, 2).unwrap(),
    );
    k.gemm(
        1.0,
        av,
        bv,
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        &mut ws,
    )
    .unwrap();
    assert_eq!(c, [6.0, 6.0, 15.0, 15.0], "{b}: gemm");
    // cross-entropy of uniform logits is ln(classes), its gradient 1/classes - onehot
    let logits = [0.5f32; 10];
    let mut grad = [0.0f32; 10];
    let loss = k
        .cross_entropy_with_grad(
            &logits,
            10,
            Target::Indices(&[3]),
            &CrossEntropy::new(),
            &mut [],
            &mut grad,
        )
        .unwrap();
    assert!((loss - 10f32.ln()).abs() < 1e-6, "{b}: loss {loss}");
    for (j, gj) in grad.iter().enumerate() {
        let want = 0.1 - if j == 3 { 1.0 } else { 0.0 };
        assert!((gj - want).abs() < 1e-6, "{b}: grad[{j}] = {gj}");
    }
}

#[test]
fn portable_backend() {
    every_family(Backend::Portable);
}

#[test]
fn avx2_backend() {
    every_family(Backend::Avx2);
}

#[test]
fn avx512_backend() {
    every_family(Backend::Avx512);
}
