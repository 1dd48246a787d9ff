//! The lesson's network and its training step, shared by the example and its tests.

use std::path::Path;
use std::sync::Mutex;

use mlp_kernels::init::{FanMode, Nonlinearity, kaiming_normal};
use mlp_kernels::{
    CrossEntropy, CsrRef, Kernels, Linear, LinearGrads, Reduction, Sgd, SparseLinear, Target,
};

use crate::aligned::Floats;
use crate::idx;

pub const SIZES: [usize; 4] = [784, 200, 200, 10];
const NAMES: [(&str, &str); 3] = [("w1", "b1"), ("w2", "b2"), ("w3", "b3")];

/// The lesson's normalisation (x / 255 - 0.1307) / 0.3081 as a * x + c.
pub const NORM_SCALE: f32 = 1.0 / (255.0 * 0.3081);
pub const NORM_SHIFT: f32 = -0.1307 / 0.3081;

/// Parameters, gradients and momentum buffers of the three layers.
///
/// With `sparse` set, the first layer is a [`SparseLinear`] on the raw pixels, and
/// `w[0]`, `gw[0]` and `mw[0]` hold W1^T (784 x 200, rows 208 floats apart so that each
/// starts on a cache line; the 8 floats between rows stay 0) instead of W1.
pub struct Net {
    pub layers: [Linear; 3],
    pub sparse: Option<SparseLinear>,
    pub w: [Floats; 3],
    pub b: [Floats; 3],
    pub gw: [Floats; 3],
    pub gb: [Floats; 3],
    pub mw: [Floats; 3],
    pub mb: [Floats; 3],
}

impl Net {
    pub fn new<R: rand::Rng + ?Sized>(
        threads: usize,
        rng: &mut R,
    ) -> Result<Net, mlp_kernels::Error> {
        let layers: [Linear; 3] =
            std::array::from_fn(|l| Linear::new(SIZES[l], SIZES[l + 1]).with_threads(threads));
        let zeros = |f: &dyn Fn(&Linear) -> usize| -> [Floats; 3] {
            std::array::from_fn(|l| Floats::zeros(f(&layers[l])))
        };
        let mut net = Net {
            w: zeros(&|l| l.in_features * l.out_features),
            b: zeros(&|l| l.out_features),
            gw: zeros(&|l| l.in_features * l.out_features),
            gb: zeros(&|l| l.out_features),
            mw: zeros(&|l| l.in_features * l.out_features),
            mb: zeros(&|l| l.out_features),
            layers,
            sparse: None,
        };
        for (w, l) in net.w.iter_mut().zip(&net.layers) {
            kaiming_normal(
                w,
                [l.out_features, l.in_features],
                FanMode::FanIn,
                Nonlinearity::KaimingDefault,
                rng,
            )?;
        }
        Ok(net)
    }

    /// Switches the first layer to the sparse-input form: the same weights, W1 stored
    /// transposed with rows on cache lines (`SparseLinear::line_row_stride`).
    pub fn make_sparse(&mut self) {
        if self.sparse.is_some() {
            return;
        }
        let l = self.layers[0];
        let sl = SparseLinear::new(l.in_features, l.out_features)
            .with_normalisation(NORM_SCALE, NORM_SHIFT)
            .with_threads(l.threads);
        let sl = sl.with_row_stride(sl.line_row_stride());
        let (o, i) = (l.out_features, l.in_features);
        self.w[0] = Floats::from_slice(&transpose(&self.w[0], o, i, (i, sl.row_stride)));
        // Zero between the rows, and so they stay: the layer never writes there, and
        // SGD moves a weight by its gradient and momentum, both 0.
        self.gw[0] = Floats::zeros(sl.weight_t_len());
        self.mw[0] = Floats::zeros(sl.weight_t_len());
        self.sparse = Some(sl);
    }

    /// W1 in PyTorch's layout (out x in), whichever form the layer has.
    pub fn w1(&self) -> Vec<f32> {
        let l = self.layers[0];
        match self.sparse {
            Some(sl) => {
                let (o, i) = (l.out_features, l.in_features);
                transpose(&self.w[0], i, o, (sl.row_stride, i))
            }
            None => self.w[0].to_vec(),
        }
    }

    /// Reads the six tensors of a safetensors file, refusing anything but finite f32
    /// of PyTorch's shapes.
    pub fn load(&mut self, path: &Path) -> Result<(), String> {
        let name = || format!("--init {}", path.display());
        let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", name()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| format!("{}: not a safetensors file ({e})", name()))?;
        for (l, (wn, bn)) in NAMES.iter().enumerate() {
            let layer = self.layers[l];
            for (name, shape, dst) in [
                (
                    wn,
                    vec![layer.out_features, layer.in_features],
                    &mut self.w[l],
                ),
                (bn, vec![layer.out_features], &mut self.b[l]),
            ] {
                let t = st
                    .tensor(name)
                    .map_err(|e| format!("--init {}: tensor {name}: {e}", path.display()))?;
                if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape.as_slice() {
                    return Err(format!(
                        "--init {}: tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                        path.display(),
                        t.dtype(),
                        t.shape()
                    ));
                }
                for (x, c) in dst.iter_mut().zip(t.data().chunks_exact(4)) {
                    *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                if let Some(bad) = dst.iter().position(|x| !x.is_finite()) {
                    return Err(format!(
                        "--init {}: tensor {name} holds {} at index {bad}; weights must be finite",
                        path.display(),
                        dst[bad]
                    ));
                }
            }
        }
        Ok(())
    }

    /// The six tensors as a safetensors file.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, String> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = NAMES
            .iter()
            .enumerate()
            .flat_map(|(l, (wn, bn))| {
                let ly = self.layers[l];
                let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
                let w = if l == 0 {
                    self.w1()
                } else {
                    self.w[l].to_vec()
                };
                [
                    (
                        wn.to_string(),
                        vec![ly.out_features, ly.in_features],
                        le(&w),
                    ),
                    (bn.to_string(), vec![ly.out_features], le(&self.b[l])),
                ]
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(n, s, d)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .map(|v| (n.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        safetensors::serialize(views, None).map_err(|e| e.to_string())
    }
}

/// `rows x cols` `a` (rows `a_stride` floats apart) transposed: `cols` rows of `rows`
/// floats, `t_stride` apart, zeros between them.
fn transpose(
    a: &[f32],
    rows: usize,
    cols: usize,
    (a_stride, t_stride): (usize, usize),
) -> Vec<f32> {
    let mut t = vec![0.0; cols * t_stride];
    for (i, row) in a.chunks(a_stride).take(rows).enumerate() {
        for (j, &v) in row.iter().take(cols).enumerate() {
            t[j * t_stride + i] = v;
        }
    }
    t
}

/// Every image of a split as CSR rows of its non-zero raw pixels (1..=255), made once
/// before training so that a batch is gathered by copying.
///
/// Held as narrow as the data allows (a pixel's index in 16 bits, its value in 8):
/// a batch's images are scattered over the 9M entries, so the gather waits on their
/// cache lines, and 3 bytes an entry are a third as many lines as the batch's 4 + 4.
pub struct SparseImages {
    pub offsets: Vec<usize>,
    pub indices: Vec<u16>,
    pub values: Vec<u8>,
}

impl SparseImages {
    /// `None` if an image has more pixels than a 16-bit index reaches.
    pub fn new(split: &idx::Split) -> Option<SparseImages> {
        let d = split.pixels_per_image;
        let images = split.images.chunks_exact(d).take(split.count);
        // Counted first, so that the entries' buffers are made at their size, on
        // huge pages where the OS offers them (batches read them at random places).
        let nnz = images.clone().flatten().filter(|&&v| v != 0).count();
        let mut s = SparseImages {
            offsets: Vec::with_capacity(split.count + 1),
            indices: crate::huge_pages::with_capacity(nnz),
            values: crate::huge_pages::with_capacity(nnz),
        };
        s.offsets.push(0);
        for img in images {
            for (p, &v) in img.iter().enumerate() {
                if v != 0 {
                    s.indices.push(u16::try_from(p).ok()?);
                    s.values.push(v);
                }
            }
            s.offsets.push(s.indices.len());
        }
        Some(s)
    }
}

/// Activations and their gradients for one batch of at most `cap` rows.
pub struct Buffers {
    pub x: Floats,
    /// The batch as CSR rows of raw pixels, for the sparse first layer.
    pub csr_offsets: Vec<usize>,
    pub csr_indices: Vec<u32>,
    pub csr_values: Vec<f32>,
    /// The same batch by columns (pixels), for the first layer's weight gradient.
    pub csr_t_offsets: Vec<usize>,
    pub csr_t_indices: Vec<u32>,
    pub csr_t_values: Vec<f32>,
    pub y: Vec<i64>,
    pub h: [Floats; 3],
    pub dh: [Floats; 3],
    pub ws: Floats,
}

impl Buffers {
    pub fn new(cap: usize, net: &Net) -> Buffers {
        let ws = net
            .layers
            .iter()
            .map(|l| l.workspace_len(cap))
            .chain(net.sparse.map(|l| l.fast_workspace_len(cap)))
            .max()
            .unwrap_or(0);
        let sparse_cap = if net.sparse.is_some() {
            cap * SIZES[0]
        } else {
            0
        };
        Buffers {
            x: Floats::zeros(cap * SIZES[0]),
            csr_offsets: vec![0; cap + 1],
            csr_indices: vec![0; sparse_cap],
            csr_values: vec![0.0; sparse_cap],
            csr_t_offsets: vec![0; SIZES[0] + 1],
            csr_t_indices: vec![0; sparse_cap],
            csr_t_values: vec![0.0; sparse_cap],
            y: vec![0; cap],
            h: std::array::from_fn(|l| Floats::zeros(cap * SIZES[l + 1])),
            dh: std::array::from_fn(|l| Floats::zeros(cap * SIZES[l + 1])),
            ws: Floats::zeros(ws),
        }
    }
}

/// Forward pass for the first `n` rows of `buf.x`; the logits end up in `buf.h[2]`.
pub fn forward(
    k: &Kernels,
    net: &Net,
    buf: &mut Buffers,
    n: usize,
    relu_logits: bool,
) -> Result<(), mlp_kernels::Error> {
    let Buffers {
        x,
        csr_offsets,
        csr_indices,
        csr_values,
        h,
        ws,
        ..
    } = buf;
    let xs = match net.sparse {
        Some(_) => Some(batch_csr(csr_offsets, csr_indices, csr_values, n)?),
        None => None,
    };
    forward_parts(k, net, x, xs, None, h, ws, n, relu_logits)?;
    Ok(())
}

/// Buffers for the sparse batch by columns: offsets, indices, values.
type ByColumns<'t> = (&'t mut [usize], &'t mut [u32], &'t mut [f32]);

/// [`forward`] on the batch's parts, the sparse input (when the first layer is
/// sparse) checked once by the caller; given `by_columns`, also the batch transposed
/// into them (made beside the first layer's product).
#[allow(clippy::too_many_arguments)]
fn forward_parts<'t>(
    k: &Kernels,
    net: &Net,
    x: &[f32],
    xs: Option<CsrRef<'_>>,
    mut by_columns: Option<ByColumns<'t>>,
    h: &mut [Floats; 3],
    ws: &mut [f32],
    n: usize,
    relu_logits: bool,
) -> Result<Option<CsrRef<'t>>, mlp_kernels::Error> {
    let mut xs_t = None;
    for l in 0..3 {
        let (prev, rest) = h.split_at_mut(l);
        let input: &[f32] = if l == 0 {
            &x[..n * SIZES[0]]
        } else {
            &prev[l - 1][..n * SIZES[l]]
        };
        let out = &mut rest[0][..n * SIZES[l + 1]];
        match (net.sparse, xs, by_columns.take()) {
            (Some(sl), Some(xs), Some((o, i, v))) if l == 0 => {
                let (w, b) = (&net.w[0], Some(&net.b[0][..]));
                xs_t = Some(sl.forward_transposing(k, xs, w, b, out, ws, o, i, v)?);
            }
            (Some(sl), Some(xs), _) if l == 0 => {
                sl.forward(k, xs, &net.w[0], Some(&net.b[0]), out, ws)?
            }
            _ => net.layers[l].forward(k, input, &net.w[l], Some(&net.b[l]), out, ws)?,
        }
        if l < 2 || relu_logits {
            k.relu_in_place_threaded(net.layers[l].threads, out);
        }
    }
    Ok(xs_t)
}

/// The first `n` rows of the batch's CSR buffers as a checked view.
fn batch_csr<'a>(
    offsets: &'a [usize],
    indices: &'a [u32],
    values: &'a [f32],
    n: usize,
) -> Result<CsrRef<'a>, mlp_kernels::Error> {
    let nnz = offsets[n];
    CsrRef::new(n, SIZES[0], &offsets[..=n], &indices[..nnz], &values[..nnz])
}

/// The optimiser and whether ReLU follows the logits (the original lesson's slip).
pub struct Step {
    pub opt: Sgd,
    pub relu_logits: bool,
}

/// The lesson's input scaling, (x / 255 - 0.1307) / 0.3081, for each grey level.
pub fn normalisation_table() -> [f32; 256] {
    std::array::from_fn(|p| (p as f32 / 255.0 - 0.1307) / 0.3081)
}

/// One SGD step on the first `n` rows of the batch buffers; returns the mean loss.
/// Each layer is updated as soon as its gradients are made, so an `Err` from a lower
/// layer (a shape or workspace error, which the example's buffers rule out) leaves
/// the layers above it updated.
pub fn train_step(
    k: &Kernels,
    net: &mut Net,
    buf: &mut Buffers,
    n: usize,
    step: &Step,
    first: bool,
) -> Result<f32, mlp_kernels::Error> {
    let (opt, relu_logits) = (&step.opt, step.relu_logits);
    let Buffers {
        x,
        y,
        csr_offsets,
        csr_indices,
        csr_values,
        csr_t_offsets,
        csr_t_indices,
        csr_t_values,
        h,
        dh,
        ws,
    } = buf;
    // The sparse batch is checked once, for the forward and the backward pass.
    let xs = match net.sparse {
        Some(_) => Some(batch_csr(csr_offsets, csr_indices, csr_values, n)?),
        None => None,
    };
    // The weight gradient reads the batch by columns: each row of dW1^T is then one
    // sum, written once.
    let by_columns = xs.map(|xs| {
        let nnz = xs.nnz();
        let (i, v) = (&mut csr_t_indices[..nnz], &mut csr_t_values[..nnz]);
        (&mut csr_t_offsets[..], i, v)
    });
    let xs_t = forward_parts(k, net, x, xs, by_columns, h, ws, n, relu_logits)?;
    // Threaded like the rest of the step; [200, 10] is below a thread's worth, so
    // this stays on the calling thread, as the bench shows it should.
    let loss = k.cross_entropy_with_grad_threaded(
        net.layers[2].threads,
        &h[2][..n * 10],
        10,
        Target::Indices(&y[..n]),
        &CrossEntropy::new(),
        &mut [],
        &mut dh[2][..n * 10],
    )?;
    if relu_logits {
        k.relu_backward_in_place(&h[2][..n * 10], &mut dh[2][..n * 10])?;
    }
    for l in (0..3).rev() {
        let (lower, upper) = dh.split_at_mut(l);
        let input: &[f32] = if l == 0 {
            &x[..n * SIZES[0]]
        } else {
            &h[l - 1][..n * SIZES[l]]
        };
        let dx = if l == 0 {
            None
        } else {
            Some(&mut lower[l - 1][..n * SIZES[l]])
        };
        if let (Some(sl), Some(xs_t), 0) = (net.sparse, xs_t, l) {
            sl.backward_transposed(
                k,
                xs_t,
                &upper[0][..n * SIZES[1]],
                &mut net.gw[0],
                Some(&mut net.gb[0]),
                false,
                ws,
            )?;
            update(k, net, 0, opt, first)?;
            continue;
        }
        let grads = LinearGrads {
            weight: &mut net.gw[l],
            bias: Some(&mut net.gb[l]),
            input: dx,
            accumulate: false,
        };
        net.layers[l].backward(
            k,
            input,
            &net.w[l],
            &upper[0][..n * SIZES[l + 1]],
            grads,
            ws,
        )?;
        if l > 0 {
            k.relu_backward_in_place_threaded(
                net.layers[l].threads,
                &h[l - 1][..n * SIZES[l]],
                &mut lower[l - 1][..n * SIZES[l]],
            )?;
        }
        update(k, net, l, opt, first)?;
    }
    Ok(loss)
}

/// The SGD step of layer `l`, on the same threads as its products. The training step
/// calls it as soon as the layer's gradients are made (its weight is not read again
/// in the step), while the gradient is still in cache: the updates are the same, and
/// in the sparse example they took 0.84x the time on one thread (Sapphire Rapids).
fn update(
    k: &Kernels,
    net: &mut Net,
    l: usize,
    opt: &Sgd,
    first: bool,
) -> Result<(), mlp_kernels::Error> {
    k.sgd_step_threaded(
        net.layers[0].threads,
        opt,
        &mut net.w[l],
        &net.gw[l],
        &mut net.mw[l],
        first,
    )?;
    k.sgd_step(opt, &mut net.b[l], &net.gb[l], &mut net.mb[l], first)
}

/// Copies rows `order[..]` of the dataset into the batch, normalised as the lesson:
/// (x / 255 - 0.1307) / 0.3081, through a table of the 256 possible values; or, with
/// `sparse`, their non-zero raw pixels into the batch's CSR buffers.
pub fn gather(
    buf: &mut Buffers,
    split: &idx::Split,
    order: &[usize],
    table: &[f32; 256],
    sparse: Option<&SparseImages>,
    threads: usize,
) {
    // Runs of rows on the pool (the images are scattered over the dataset, so a run is
    // bound by memory latency and two go faster than one).
    let n = order.len();
    let (per, threads) = if threads > 1 && n >= 64 {
        // Every run the batch may be cut into, taken by whichever thread is free: the
        // runs' entries and misses differ, and two runs for two threads left one
        // waiting for the other for a third of the gather (SPR, two threads).
        (n.div_ceil(MAX_PARTS), threads)
    } else {
        (n.max(1), 1)
    };
    if let Some(images) = sparse {
        // The offsets and labels first (cheap), then the entries copied in runs.
        let mut at = 0;
        buf.csr_offsets[0] = 0;
        for (r, &i) in order.iter().enumerate() {
            at += images.offsets[i + 1] - images.offsets[i];
            buf.csr_offsets[r + 1] = at;
            buf.y[r] = i64::from(split.labels[i]);
        }
        let offsets = &buf.csr_offsets[..=n];
        let (mut idx, mut val) = (&mut buf.csr_indices[..at], &mut buf.csr_values[..at]);
        let runs: [Mutex<Option<SparseRun<'_>>>; MAX_PARTS] = std::array::from_fn(|p| {
            let (lo, hi) = ((p * per).min(n), ((p + 1) * per).min(n));
            let len = offsets[hi] - offsets[lo];
            let (i, i_rest) = std::mem::take(&mut idx).split_at_mut(len);
            let (v, v_rest) = std::mem::take(&mut val).split_at_mut(len);
            (idx, val) = (i_rest, v_rest);
            Mutex::new((lo < hi).then_some((&order[lo..hi], i, v)))
        });
        on_runs(threads, &runs, &|run| copy_sparse_rows(images, run));
        return;
    }
    let d = split.pixels_per_image;
    let (x, y) = (&mut buf.x[..n * d], &mut buf.y[..n]);
    let (mut os, mut xs, mut ys) = (
        order.chunks(per),
        x.chunks_mut((per * d).max(1)),
        y.chunks_mut(per),
    );
    let runs: [Mutex<Option<Run<'_>>>; MAX_PARTS] = std::array::from_fn(|_| {
        let run = os.next().zip(xs.next()).zip(ys.next());
        Mutex::new(run.map(|((o, x), y)| (o, x, y)))
    });
    on_runs(threads, &runs, &|(o, x, y)| {
        gather_rows(x, y, split, o, table)
    });
}

/// The most runs a batch is cut into.
const MAX_PARTS: usize = 16;

/// Each run of `runs` taken once and given to `f`, on `threads` threads of the pool
/// (one: here). A thread starts at its own share of the runs and then takes any run
/// still left, so one that is slowed down leaves its runs to the others.
fn on_runs<T: Send>(threads: usize, runs: &[Mutex<Option<T>>; MAX_PARTS], f: &(dyn Fn(T) + Sync)) {
    mlp_kernels::run_on_threads(threads, &|part, parts| {
        let first = part * MAX_PARTS / parts.max(1);
        for r in (first..MAX_PARTS).chain(0..first) {
            if let Some(run) = runs[r].lock().ok().and_then(|mut g| g.take()) {
                f(run);
            }
        }
    });
}

/// A run of the batch's rows: their images, pixels and labels.
type Run<'a> = (&'a [usize], &'a mut [f32], &'a mut [i64]);

/// A run of the sparse batch's rows: their images, and where their entries go.
type SparseRun<'a> = (&'a [usize], &'a mut [u32], &'a mut [f32]);

/// Copies the entries of a run's images, one after the other, into its buffers,
/// widened to the batch's u32 indices and f32 values.
fn copy_sparse_rows(images: &SparseImages, (order, idx, val): SparseRun<'_>) {
    let mut at = 0;
    for (r, &i) in order.iter().enumerate() {
        // (Only the prefetch below reads r.)
        #[cfg(not(target_arch = "x86_64"))]
        let _ = r;
        // As in `gather_rows`: ask early for the entries of an image four ahead, a
        // cache line (32 indices, 64 values) at a time.
        #[cfg(target_arch = "x86_64")]
        if let Some(&next) = order.get(r + 4) {
            let (lo, hi) = (images.offsets[next], images.offsets[next + 1]);
            for e in (lo..hi).step_by(32) {
                // SAFETY: prefetching has no effect on memory and never faults.
                unsafe {
                    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                    _mm_prefetch::<_MM_HINT_T0>(images.indices.as_ptr().wrapping_add(e).cast());
                    _mm_prefetch::<_MM_HINT_T0>(images.values.as_ptr().wrapping_add(e).cast());
                }
            }
        }
        let (lo, hi) = (images.offsets[i], images.offsets[i + 1]);
        let len = hi - lo;
        for (to, &p) in idx[at..at + len].iter_mut().zip(&images.indices[lo..hi]) {
            *to = u32::from(p);
        }
        for (to, &v) in val[at..at + len].iter_mut().zip(&images.values[lo..hi]) {
            *to = f32::from(v);
        }
        at += len;
    }
}

/// The dense gather of `order`'s images into `x` and labels into `y`.
fn gather_rows(
    x: &mut [f32],
    y: &mut [i64],
    split: &idx::Split,
    order: &[usize],
    table: &[f32; 256],
) {
    let d = split.pixels_per_image;
    for (r, &i) in order.iter().enumerate() {
        // The images sit at random places in a 47 MB array: ask for the next ones
        // early, or every one of their cache lines is a miss waited for in turn.
        #[cfg(target_arch = "x86_64")]
        if let Some(&next) = order.get(r + 4) {
            for line in (0..d).step_by(64) {
                let p = split.images[next * d..].as_ptr().wrapping_add(line);
                // SAFETY: prefetching has no effect on memory and never faults.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
                };
            }
        }
        let src = &split.images[i * d..(i + 1) * d];
        lookup(table, src, &mut x[r * d..(r + 1) * d]);
        y[r] = i64::from(split.labels[i]);
    }
}

/// dst[i] = table[src[i]]: with AVX-512 sixteen lookups per gather instruction (the
/// table is 1 KiB, always in L1), else one at a time.
fn lookup(table: &[f32; 256], src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was just detected.
        unsafe { lookup_avx512(table, src, dst) };
        return;
    }
    for (x, &p) in dst.iter_mut().zip(src) {
        *x = table[p as usize];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn lookup_avx512(table: &[f32; 256], src: &[u8], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = src.len().min(dst.len());
    let mut c = dst[..n].chunks_exact_mut(16);
    let mut s = src[..n].chunks_exact(16);
    for (out, inp) in (&mut c).zip(&mut s) {
        // SAFETY: `inp` holds 16 bytes and `out` 16 floats; every index is a u8, so
        // each gathered address is inside the 256-entry table.
        unsafe {
            let bytes = _mm_loadu_si128(inp.as_ptr().cast());
            let idx = _mm512_cvtepu8_epi32(bytes);
            let v = _mm512_i32gather_ps::<4>(idx, table.as_ptr());
            _mm512_storeu_ps(out.as_mut_ptr(), v);
        }
    }
    for (x, &p) in c.into_remainder().iter_mut().zip(s.remainder()) {
        *x = table[p as usize];
    }
}

/// Test loss (mean) and accuracy.
pub fn evaluate(
    k: &Kernels,
    net: &Net,
    buf: &mut Buffers,
    test: &idx::Split,
    table: &[f32; 256],
    relu_logits: bool,
    sparse: Option<&SparseImages>,
) -> Result<(f64, f64), mlp_kernels::Error> {
    let cap = buf.y.len();
    let (mut loss, mut correct) = (0.0f64, 0usize);
    let order: Vec<usize> = (0..test.count).collect();
    for chunk in order.chunks(cap) {
        let n = chunk.len();
        gather(buf, test, chunk, table, sparse, net.layers[0].threads);
        forward(k, net, buf, n, relu_logits)?;
        let logits = &buf.h[2][..n * 10];
        let opts = CrossEntropy::new().with_reduction(Reduction::Sum);
        loss +=
            f64::from(k.cross_entropy(logits, 10, Target::Indices(&buf.y[..n]), &opts, &mut [])?);
        for (row, &y) in logits.chunks_exact(10).zip(&buf.y[..n]) {
            // First maximum wins, as torch.argmax.
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (j, &v)| if v > row[b] { j } else { b });
            correct += usize::from(best as i64 == y);
        }
    }
    Ok((loss / test.count as f64, correct as f64 / test.count as f64))
}
