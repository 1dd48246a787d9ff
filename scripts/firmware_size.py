#!/usr/bin/env python3
"""Splits the .text of a firmware ELF by the source that each instruction came from.

Symbol sizes undercount a library whose generic code is inlined into its caller, so
this asks the debug info instead: every instruction's inlining chain (from
`llvm-symbolizer --inlining`), charged to the innermost frame that is not in `core` or
`compiler_builtins`. A slice iterator inlined into a kernel counts as the kernel's
code; float formatting called by the firmware counts as core. Needs the ELF built with
debug info (the firmware's release profiles have it; debug info does not change .text).

Usage: firmware_size.py ELF
"""
import argparse
import collections
import re
import subprocess

GROUPS = [
    ("mlp-kernels", re.compile(r"/(main|mlp-kernels[^/]*)/src/")),
    ("wide, libm (mlp-kernels' dependencies)", re.compile(r"/(wide|libm|bytemuck|safe_arch)-[0-9][^/]*/")),
    ("firmware example", re.compile(r"/examples/firmware/")),
    ("cortex-m runtime and semihosting", re.compile(r"/cortex-m[^/]*-[0-9]")),
    ("core, compiler_builtins", re.compile(r"/rustlib/src/|/library/")),
]


def group(path):
    for name, pat in GROUPS:
        if pat.search(path):
            return name
    return "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elf")
    args = ap.parse_args()
    out = subprocess.run(
        ["llvm-objdump-22", "-d", "--no-show-raw-insn", "--section=.text", args.elf],
        check=True, capture_output=True, text=True,
    ).stdout
    insn = re.compile(r"^\s*([0-9a-f]+):\s")
    addrs = [int(m.group(1), 16) for line in out.splitlines() if (m := insn.match(line))]
    # One block per address: function and file:line:column lines, innermost first,
    # then a blank line.
    sym = subprocess.run(
        ["llvm-symbolizer-22", "--inlining", "-f", f"--obj={args.elf}"],
        input="".join(f"0x{a:x}\n" for a in addrs),
        check=True, capture_output=True, text=True,
    ).stdout
    blocks = sym.split("\n\n")
    rows = []  # (address, group)
    for a, block in zip(addrs, blocks):
        lines = block.strip().splitlines()
        files = [f.split(":", 1)[0] for f in lines[1::2]]
        groups = [group(f) for f in files if not f.startswith("??")]
        own = [g for g in groups if g != "core, compiler_builtins"]
        rows.append((a, own[0] if own else (groups[0] if groups else "no line info")))
    sizes = collections.Counter()
    for (a, g), (b, _) in zip(rows, rows[1:]):
        sizes[g] += b - a
    if rows:
        sizes[rows[-1][1]] += 2  # the last instruction: at least a halfword
    total = sum(sizes.values())
    for g, n in sizes.most_common():
        print(f"{g:45s} {n:8d} B  {n / 1024:6.1f} KiB")
    print(f"{'.text':45s} {total:8d} B  {total / 1024:6.1f} KiB")


if __name__ == "__main__":
    main()
