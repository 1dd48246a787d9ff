"""Parity of the MNIST example with PyTorch, step by step.

PyTorch initialises the lesson's network (kaiming_normal_, zero biases) and saves it
as safetensors with the names the example reads (w1 b1 w2 b2 w3 b3, PyTorch shapes).
Both then train one epoch on the unshuffled training set with plain SGD, batch 200,
lr 0.01: PyTorch with `nn.CrossEntropyLoss` and `optim.SGD`, the example with
`--init FILE --no-shuffle --epochs 1 --step-losses FILE`. The losses of all steps are
compared; rounding differs between the two, the trajectory must not.

    python scripts/parity_torch.py [--data data/mnist] [--seed 0] [--momentum 0] [--sparse-input]

With --sparse-input the example runs its sparse first layer (raw pixels' non-zeros,
the normalisation folded into the layer) against the same dense PyTorch run, under
the same tolerance: the sparse path changes the order of float operations only.

Needs torch and numpy; builds the example with cargo. PyTorch also trains the same
network in float64; the distance of each float32 run from it shows how much rounding
alone moves this trajectory. PASS when every step's loss is within --tol (relative,
default 1e-3) of PyTorch's float32 run, or when ours is at least as close to the
float64 run as PyTorch's float32 run is: a float32 run that orders its sums
differently (the sparse path does) is as far from PyTorch's float32 as that one is
from exact, so the first test alone would fail it for PyTorch's rounding, not ours.
Exit status 1 otherwise.
"""
import argparse, gzip, json, os, struct, subprocess, sys, tempfile

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def save_safetensors(path, tensors):
    """The safetensors layout: u64 header length, JSON header, raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        b = t.detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "mnist"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--sparse-input", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    x = load_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32)
    y = load_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    x = torch.from_numpy(((x / 255.0 - 0.1307) / 0.3081).astype(np.float32))
    y = torch.from_numpy(y)

    params = []
    for out_f, in_f in [(200, 784), (200, 200), (10, 200)]:
        w = torch.randn(out_f, in_f)
        torch.nn.init.kaiming_normal_(w)
        params += [w.requires_grad_(), torch.zeros(out_f, requires_grad=True)]
    tmp = tempfile.mkdtemp()
    init = os.path.join(tmp, "init.safetensors")
    save_safetensors(init, zip(["w1", "b1", "w2", "b2", "w3", "b3"], params))

    def train(dtype):
        ps = [p.detach().clone().to(dtype).requires_grad_() for p in params]
        w1, b1, w2, b2, w3, b3 = ps
        xs = x.to(dtype)
        opt = torch.optim.SGD(ps, lr=0.01, momentum=args.momentum)
        out = []
        for i in range(0, len(xs), 200):
            h = F.relu(xs[i:i + 200] @ w1.t() + b1)
            h = F.relu(h @ w2.t() + b2)
            loss = F.cross_entropy(h @ w3.t() + b3, y[i:i + 200])
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out

    torch_losses = train(torch.float32)
    # The same run in float64: how far float32 rounding alone moves the trajectory.
    exact = train(torch.float64)

    ours_path = os.path.join(tmp, "ours.txt")
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "mnist", "--", "--data", args.data,
           "--init", init, "--no-shuffle", "--epochs", "1", "--momentum", str(args.momentum),
           "--step-losses", ours_path]
    if args.backend:
        cmd += ["--backend", args.backend]
    if args.sparse_input:
        cmd += ["--sparse-input"]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    ours = [float(v) for v in open(ours_path).read().split()]
    if len(ours) != len(torch_losses):
        sys.exit(f"step counts differ: ours {len(ours)}, torch {len(torch_losses)}")
    def compare(u, v):
        r = [abs(a - b) / abs(b) for a, b in zip(u, v)]
        worst = max(range(len(r)), key=r.__getitem__)
        return r, worst, f"max {r[worst]:.2e} at step {worst + 1}, median {sorted(r)[len(r) // 2]:.2e}"

    rel, worst, text = compare(ours, torch_losses)
    mode = "sparse input" if args.sparse_input else "dense input"
    print(f"steps {len(rel)}  torch {torch.__version__}  momentum {args.momentum}  ours: {mode}")
    for s in [0, 1, 9, 99, 199, len(rel) - 1]:
        print(f"step {s + 1:3d}: torch {torch_losses[s]:.6f}  ours {ours[s]:.6f}  rel diff {rel[s]:.2e}")
    print(f"ours vs torch float32:           {text}")
    print(f"ours vs torch float64:           {compare(ours, exact)[2]}")
    print(f"torch float32 vs torch float64:  {compare(torch_losses, exact)[2]}")
    near_f32 = rel[worst] <= args.tol
    ours_exact = compare(ours, exact)
    torch_exact = compare(torch_losses, exact)
    near_exact = ours_exact[0][ours_exact[1]] <= torch_exact[0][torch_exact[1]]
    if near_f32:
        print(f"PASS (within {args.tol:g} of torch float32)")
    elif near_exact:
        print(f"PASS (not within {args.tol:g} of torch float32, but as close to float64 as torch float32 is)")
    else:
        print(f"FAIL (neither within {args.tol:g} of torch float32 nor as close to float64 as it)")
    sys.exit(0 if near_f32 or near_exact else 1)

if __name__ == "__main__":
    main()
