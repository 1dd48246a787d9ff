#!/usr/bin/env python3
"""The lesson's MNIST program in PyTorch, as the yardstick of examples/mnist.

Same network and settings as `cargo run --release --example mnist`: a 784-200-200-10
MLP on weight tensors in nn.Linear's layout, kaiming_normal_ weights and zero biases,
ReLU, F.cross_entropy (mean), torch.optim.SGD(lr=0.01), batch 200 reshuffled every
epoch, inputs (x / 255 - 0.1307) / 0.3081.

The epoch time counts the training steps only (the shuffled copy of the data is made
before the clock starts), PyTorch's most favourable case; the test pass is timed apart.
Prints one line per epoch and a `summary:` line in the example's format, and with
--metrics writes the same CSV as the example.

    python scripts/lesson_torch.py --threads 1 --epochs 10 [--metrics FILE]
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_idx(folder, stem):
    """An IDX array (gzipped or raw) as numpy: magic, dims as big-endian u32, data."""
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            raw = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()
            ndim = raw[3]
            dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise SystemExit(f"error: neither {stem}.gz nor {stem} in {folder}")


def split(folder, prefix):
    images = read_idx(folder, f"{prefix}-images-idx3-ubyte").reshape(-1, 784)
    labels = read_idx(folder, f"{prefix}-labels-idx1-ubyte")
    x = ((images.astype(np.float32) / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "mnist"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--metrics", help="CSV: epoch,train_loss,test_loss,test_acc,seconds")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    x_train, y_train = split(args.data, "train")
    x_test, y_test = split(args.data, "t10k")
    sizes = [784, 200, 200, 10]
    params = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        w = torch.empty(fan_out, fan_in)
        torch.nn.init.kaiming_normal_(w)
        params += [w.requires_grad_(), torch.zeros(fan_out, requires_grad=True)]

    def logits(x):
        for i in range(0, len(params), 2):
            x = F.linear(x, params[i], params[i + 1])
            if i + 2 < len(params):
                x = F.relu(x)
        return x

    opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum)
    shuffle = torch.Generator().manual_seed(1000 + args.seed)
    csv = open(args.metrics, "w") if args.metrics else None
    if csv:
        csv.write("epoch,train_loss,test_loss,test_acc,seconds\n")
    print(f"torch {torch.__version__}: {len(x_train)} train / {len(x_test)} test images, "
          f"threads {args.threads}, batch {args.batch_size}, lr {args.lr}, seed {args.seed}")
    seconds, acc = [], 0.0
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(x_train), generator=shuffle)
        xs, ys = x_train[order], y_train[order]
        total, steps = 0.0, 0
        start = time.perf_counter()
        for i in range(0, len(xs), args.batch_size):
            loss = F.cross_entropy(logits(xs[i:i + args.batch_size]), ys[i:i + args.batch_size])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        seconds.append(time.perf_counter() - start)
        with torch.no_grad():
            out = logits(x_test)
            test_loss = F.cross_entropy(out, y_test).item()
            acc = (out.argmax(dim=1) == y_test).double().mean().item()
        print(f"epoch {epoch:2}  train loss {total / steps:.4f}  test loss {test_loss:.4f}  "
              f"test acc {100 * acc:.2f}%  {seconds[-1]:.3f}s")
        if csv:
            csv.write(f"{epoch},{total / steps:.6f},{test_loss:.6f},{acc:.6f},{seconds[-1]:.6f}\n")
    median = sorted(seconds)[len(seconds) // 2]
    print(f"summary: median epoch {median:.3f}s  final test acc {100 * acc:.2f}%")


if __name__ == "__main__":
    main()
