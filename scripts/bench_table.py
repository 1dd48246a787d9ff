"""Prints criterion's latest results as Markdown tables, one row per group, one column
per function, with throughput (elements/s as G/s: GFLOP/s for gemm, Gelem/s for the
elementwise kernels) from the median time.

    python3 scripts/bench_table.py [--time] [PREFIX ...]     # e.g. gemm/ peak/ loss/

--time prints the median time instead of the throughput.

Reads target/criterion/**/new/{benchmark,estimates}.json (what the last
`cargo bench` wrote); a PREFIX keeps the groups that start with it.
"""
import glob, json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    args = sys.argv[1:]
    times = "--time" in args
    prefixes = [a for a in args if a != "--time"] or [""]
    rows, cols = {}, []
    for path in glob.glob(os.path.join(ROOT, "target", "criterion", "**", "new", "benchmark.json"), recursive=True):
        b = json.load(open(path))
        if not any(b["group_id"].startswith(p) for p in prefixes):
            continue
        est = json.load(open(os.path.join(os.path.dirname(path), "estimates.json")))
        ns = est["median"]["point_estimate"]
        col = b["function_id"] + (f" {b['value_str']}" if b.get("value_str") else "")
        tp = b.get("throughput") or {}
        n = tp.get("Elements") or tp.get("Bytes")
        cell = f"{n / ns:.1f}" if n and not times else f"{ns / 1000:.2f} µs"
        rows.setdefault(b["group_id"], {})[col] = cell
        if col not in cols:
            cols.append(col)
    cols.sort()
    print("| group | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for g in sorted(rows):
        print(f"| {g} | " + " | ".join(rows[g].get(c, "") for c in cols) + " |")


if __name__ == "__main__":
    main()
