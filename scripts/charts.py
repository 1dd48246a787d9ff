#!/usr/bin/env python3
"""Draws BENCHMARKS.md's charts as SVG files in docs/charts/, from the last runs:

* gemm.svg: GFLOP/s per GEMM shape for every backend and peer (criterion's
  target/criterion/gemm/*), with the measured FMA peak (group `peak`) as a line;
* mnist-epoch.svg: median epoch time, mlp-kernels against PyTorch, 1 and 2 threads
  (target/compare/results.json from scripts/compare.py);
* mnist-accuracy.svg: test accuracy per epoch, seed 0, one thread, both sides (the
  `--metrics` CSVs that compare.py wrote).

Plain SVG written by hand: no plotting library needed.

    python scripts/charts.py
"""
import csv
import glob
import json
import os
from html import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIT = os.path.join(ROOT, "target", "criterion")
OUT = os.path.join(ROOT, "docs", "charts")
COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1"]


def criterion(group_prefix):
    """{group: {function (value): (median ns, throughput elements)}} of the last run."""
    out = {}
    for path in glob.glob(os.path.join(CRIT, "**", "new", "benchmark.json"), recursive=True):
        b = json.load(open(path))
        if not b["group_id"].startswith(group_prefix):
            continue
        est = json.load(open(os.path.join(os.path.dirname(path), "estimates.json")))
        name = b["function_id"] + (f" {b['value_str']}" if b.get("value_str") else "")
        n = (b.get("throughput") or {}).get("Elements")
        out.setdefault(b["group_id"], {})[name] = (est["median"]["point_estimate"], n)
    return out


class Svg:
    def __init__(self, w, h):
        self.w, self.h, self.items = w, h, []

    def add(self, s):
        self.items.append(s)

    def text(self, x, y, s, size=12, anchor="start", rotate=None, colour="#222"):
        rot = f' transform="rotate({rotate} {x} {y})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'fill="{colour}" font-family="sans-serif"{rot}>{escape(s)}</text>')

    def rect(self, x, y, w, h, colour):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{colour}"/>')

    def line(self, x1, y1, x2, y2, colour="#999", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{colour}" stroke-width="{width}"{d}/>')

    def polyline(self, pts, colour):
        p = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        self.add(f'<polyline points="{p}" fill="none" stroke="{colour}" stroke-width="2"/>')

    def save(self, name):
        os.makedirs(OUT, exist_ok=True)
        body = "\n".join(self.items)
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
               f'viewBox="0 0 {self.w} {self.h}">\n<rect width="100%" height="100%" fill="white"/>\n'
               f"{body}\n</svg>\n")
        open(os.path.join(OUT, name), "w").write(svg)
        print("wrote", os.path.relpath(os.path.join(OUT, name), ROOT))


def axis(svg, left, top, width, height, ymax, label, ticks=5):
    svg.line(left, top + height, left + width, top + height, "#444")
    svg.line(left, top, left, top + height, "#444")
    for i in range(ticks + 1):
        v = ymax * i / ticks
        y = top + height - height * i / ticks
        svg.line(left - 4, y, left + width, y, "#ddd")
        svg.text(left - 8, y + 4, f"{v:.0f}" if ymax >= 10 else f"{v:.2f}", 11, "end")
    svg.text(16, top + height / 2, label, 12, "middle", rotate=-90)


def bars(name, title, groups, series, values, ylabel, hline=None, hlabel=None):
    """Grouped bars: values[(group, series)] -> number; the legend below the axis."""
    bw = 12 if len(series) > 3 else 28
    left, top, height = 70, 40, 300
    gw = bw * len(series) + 18
    width = max(gw * len(groups), 220)
    svg = Svg(left + width + 30, top + height + 80)
    ymax = max([v for v in values.values()] + ([hline] if hline else [])) * 1.1
    axis(svg, left, top, width, height, ymax, ylabel)
    svg.text(left, 22, title, 14)
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + 9
        for si, s in enumerate(series):
            v = values.get((g, s))
            if v is None:
                continue
            h = height * v / ymax
            svg.rect(x0 + si * bw, top + height - h, bw - 2, h, COLOURS[si % len(COLOURS)])
        svg.text(x0 + bw * len(series) / 2, top + height + 16, g, 10, "middle")
    if hline:
        y = top + height - height * hline / ymax
        svg.line(left, y, left + width, y, "#c00", 2, "6,4")
        svg.text(left + 6, y - 5, hlabel, 11, colour="#c00")
    x = left
    for si, s in enumerate(series):
        y = top + height + 44
        svg.rect(x, y - 10, 12, 12, COLOURS[si % len(COLOURS)])
        svg.text(x + 16, y, s, 11)
        x += 24 + 7 * len(s)
    svg.save(name)


def gemm_chart():
    res = criterion("gemm/")
    if not res:
        print("no criterion gemm results: run `cargo bench --bench gemm` first")
        return
    peak = max((n / ns for g in criterion("peak").values() for ns, n in g.values() if n),
               default=None)
    groups = sorted(res, key=lambda g: (len(g), g))
    series = sorted({s for g in res.values() for s in g})
    values = {(g[len("gemm/"):], s): n / ns for g, fs in res.items() for s, (ns, n) in fs.items() if n}
    bars("gemm.svg", "GEMM, one thread: GFLOP/s (2mnk / median time)",
         [g[len("gemm/"):] for g in groups], series, values, "GFLOP/s",
         peak, f"FMA peak {peak:.0f}" if peak else None)


def mnist_charts():
    path = os.path.join(ROOT, "target", "compare", "results.json")
    if not os.path.exists(path):
        print("no target/compare/results.json: run scripts/compare.py first")
        return
    r = json.load(open(path))
    runs = r["runs"]
    threads = sorted({x["threads"] for x in runs})
    sides = ["PyTorch", "mlp-kernels"]
    med = lambda s, t: sorted(x["epoch"] for x in runs if x["side"] == s and x["threads"] == t)
    values = {(f"{t} thread{'s' if t > 1 else ''}", s): m[len(m) // 2]
              for t in threads for s in sides if (m := med(s, t))}
    bars("mnist-epoch.svg", f"MNIST lesson: median epoch (s), {r['cpu']}",
         [f"{t} thread{'s' if t > 1 else ''}" for t in threads], sides, values, "seconds")

    left, top, width, height = 70, 40, 480, 300
    svg = Svg(left + width + 190, top + height + 70)
    curves = {}
    for s in sides:
        pick = [x for x in runs if x["side"] == s and x["threads"] == threads[0]]
        if pick:
            rows = list(csv.DictReader(open(os.path.join(ROOT, pick[0]["metrics"]))))
            curves[s] = [(int(row["epoch"]), 100 * float(row["test_acc"])) for row in rows]
    lo = min(a for c in curves.values() for _, a in c) - 1
    hi = max(a for c in curves.values() for _, a in c) + 0.5
    epochs = max(e for c in curves.values() for e, _ in c)
    svg.text(left, 22, f"MNIST lesson: test accuracy per epoch (seed {pick[0]['seed']})", 14)
    svg.line(left, top + height, left + width, top + height, "#444")
    svg.line(left, top, left, top + height, "#444")
    for i in range(6):
        v = lo + (hi - lo) * i / 5
        y = top + height - height * i / 5
        svg.line(left - 4, y, left + width, y, "#ddd")
        svg.text(left - 8, y + 4, f"{v:.1f}%", 11, "end")
    for e in range(1, epochs + 1):
        x = left + width * (e - 1) / max(epochs - 1, 1)
        svg.text(x, top + height + 16, str(e), 11, "middle")
    svg.text(left + width / 2, top + height + 36, "epoch", 12, "middle")
    for si, (s, c) in enumerate(curves.items()):
        pts = [(left + width * (e - 1) / max(epochs - 1, 1),
                top + height - height * (a - lo) / (hi - lo)) for e, a in c]
        svg.polyline(pts, COLOURS[si])
        svg.rect(left + width + 10, top + 10 + si * 18, 12, 12, COLOURS[si])
        svg.text(left + width + 28, top + 20 + si * 18, s, 11)
    svg.save("mnist-accuracy.svg")


if __name__ == "__main__":
    gemm_chart()
    mnist_charts()
