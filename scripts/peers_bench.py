"""The Python peers of BENCHMARKS.md, timed on one thread in the same sitting as
`cargo bench`: OpenBLAS sgemm through numpy on the GEMM shapes, and PyTorch's
cross-entropy forward+backward and logsumexp on the loss shapes.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python scripts/peers_bench.py

Prints median times and GFLOP/s (GEMM) as Markdown rows. Needs numpy and torch.
"""
import time

import numpy as np


def median_time(f, min_time=0.5, reps=7):
    f()
    n, t = 1, 0.0
    while t < min_time / reps:
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        t = time.perf_counter() - t0
        n *= 2
    n //= 2
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        samples.append((time.perf_counter() - t0) / n)
    return sorted(samples)[reps // 2]


def gemm():
    try:
        from threadpoolctl import threadpool_info
        info = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    except ImportError:
        info = "threadpoolctl not installed"
    print(f"numpy {np.__version__}, BLAS: {info}")
    print("| m,n,k | OpenBLAS (numpy) GFLOP/s |")
    print("|---|---|")
    shapes = [(200, 200, 784), (200, 784, 200), (200, 200, 200), (200, 10, 200), (1, 200, 784),
              (64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512), (1024, 1024, 1024)]
    rng = np.random.default_rng(0)
    for m, n, k in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        t = median_time(lambda: np.matmul(a, b, out=c))
        print(f"| {m},{n},{k} | {2 * m * n * k / t / 1e9:.1f} |")


def loss():
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| logits | F.cross_entropy fwd+bwd | torch.logsumexp |")
    print("|---|---|---|")
    for rows, cols in [(200, 10), (256, 1000), (64, 32000)]:
        x = torch.randn(rows, cols, requires_grad=True)
        y = torch.randint(0, cols, (rows,))

        def step():
            x.grad = None
            F.cross_entropy(x, y).backward()

        t = median_time(step)
        xd = x.detach()
        tl = median_time(lambda: torch.logsumexp(xd, 1))
        print(f"| [{rows},{cols}] | {t * 1e6:.1f} µs | {tl * 1e6:.1f} µs |")


if __name__ == "__main__":
    gemm()
    loss()
