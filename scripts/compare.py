#!/usr/bin/env python3
"""Runs the MNIST lesson with mlp-kernels and with PyTorch back to back, and writes the
README's results table.

For each thread count (1, 2) and seed (0, 1, 2) it runs
`target/release/examples/mnist --threads T --seed S` and
`scripts/lesson_torch.py --threads T --seed S`, alternating the two so that a change in
the machine's load hits both, each under `/usr/bin/time -v` for the peak resident
memory. The table takes, per side and thread count, the median over seeds of each
run's median epoch, the mean test accuracy and the largest peak memory; it names the
CPU from /proc/cpuinfo. Raw numbers and the per-epoch metrics CSVs go to
target/compare/ (scripts/charts.py draws them).

    python scripts/compare.py [--python /work/venv/bin/python] [--epochs 10] [--seeds 0 1 2]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "compare")
BEGIN, END = "<!-- compare.py: begin -->", "<!-- compare.py: end -->"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def timed(cmd):
    """Runs cmd under /usr/bin/time -v: (stdout, peak RSS in MB)."""
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return r.stdout, int(rss.group(1)) / 1024 if rss else float("nan")


def summary(stdout):
    m = re.search(r"summary: median epoch ([\d.]+)s\s+final test acc ([\d.]+)%", stdout)
    if not m:
        sys.exit(f"no summary line in:\n{stdout}")
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="a Python with torch")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-readme", action="store_true", help="print the table only")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "mnist"],
                   cwd=ROOT, check=True)
    ours_bin = os.path.join(ROOT, "target", "release", "examples", "mnist")
    torch_py = os.path.join(ROOT, "scripts", "lesson_torch.py")
    runs = []
    for threads in args.threads:
        for seed in args.seeds:
            common = ["--threads", str(threads), "--seed", str(seed), "--epochs", str(args.epochs)]
            for side, cmd in [("mlp-kernels", [ours_bin]), ("PyTorch", [args.python, torch_py])]:
                csv = os.path.join(OUT, f"{side.lower()}-t{threads}-s{seed}.csv")
                stdout, rss = timed(cmd + common + ["--metrics", csv])
                epoch, acc = summary(stdout)
                runs.append(dict(side=side, threads=threads, seed=seed, epoch=epoch,
                                 acc=acc, rss_mb=rss, metrics=os.path.relpath(csv, ROOT)))
                print(f"{side:12s} threads {threads} seed {seed}: median epoch {epoch:.3f} s, "
                      f"test acc {acc:.2f}%, peak RSS {rss:.0f} MB", flush=True)
    torch_version = subprocess.run(
        [args.python, "-c", "import torch; print(torch.__version__)"],
        capture_output=True, text=True).stdout.strip()
    cpu = cpu_model()
    json.dump(dict(cpu=cpu, torch=torch_version, epochs=args.epochs, runs=runs),
              open(os.path.join(OUT, "results.json"), "w"), indent=1)

    cols = [(side, t) for t in args.threads for side in ("PyTorch", "mlp-kernels")]
    pick = lambda side, t: [r for r in runs if r["side"] == side and r["threads"] == t]
    head = "| | " + " | ".join(f"{s} {t} thread{'s' if t > 1 else ''}" for s, t in cols) + " |"
    rows = [head, "|---" * (len(cols) + 1) + "|"]
    rows.append("| median epoch | " + " | ".join(
        f"{statistics.median(r['epoch'] for r in pick(s, t)):.3f} s" for s, t in cols) + " |")
    rows.append(f"| test accuracy (mean of seeds {', '.join(map(str, args.seeds))}) | " + " | ".join(
        f"{statistics.mean(r['acc'] for r in pick(s, t)):.2f}%" for s, t in cols) + " |")
    rows.append("| peak resident memory | " + " | ".join(
        f"{max(r['rss_mb'] for r in pick(s, t)):,.0f} MB" for s, t in cols) + " |")
    table = "\n".join([
        f"The lesson's run ({args.epochs} epochs, batch 200, SGD lr 0.01) against PyTorch "
        f"{torch_version} on the same machine ({cpu}, {os.cpu_count()} cores), back to back, "
        f"written by `python scripts/compare.py`:", "", *rows])
    print("\n" + table)
    if args.no_readme:
        return
    readme = os.path.join(ROOT, "README.md")
    text = open(readme).read()
    if BEGIN not in text or END not in text:
        sys.exit(f"README.md lacks the markers {BEGIN} ... {END}")
    pre, rest = text.split(BEGIN, 1)
    _, post = rest.split(END, 1)
    open(readme, "w").write(pre + BEGIN + "\n" + table + "\n" + END + post)
    print("README.md updated")


if __name__ == "__main__":
    main()
