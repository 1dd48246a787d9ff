#!/usr/bin/env python3
"""Lists the panic call sites left in a staticlib built with debug info, grouped by the
innermost lines of mlp-kernels' own source that inline into them.

    python3 scripts/panic_sites.py path/to/libno_std_consumer.a

scripts/no-panic.sh runs it when the link that proves there is no panic path fails.
Uses binutils' ar, objdump and addr2line (x86_64 objects).
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

PANICS = re.compile(r"panic|slice_\w*fail|str\w*fail|unwrap_failed|expect_failed|len_mismatch")


def sites(obj):
    dis = subprocess.run(["objdump", "-d", "-r", "--no-show-raw-insn", obj],
                         capture_output=True, text=True, check=True).stdout
    section, found = None, collections.defaultdict(list)
    for line in dis.splitlines():
        m = re.match(r"Disassembly of section (\S+):", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"\s+([0-9a-f]+): R_\w+\s+(\S+)", line)
        if m and PANICS.search(m.group(2)) and "rust_begin_unwind" not in section:
            found[section].append(m.group(1))
    return found


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lib = os.path.abspath(sys.argv[1])
    count = collections.Counter()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["ar", "x", lib], cwd=d, check=True)
        for name in sorted(os.listdir(d)):
            if "compiler_builtins" in name:
                continue
            obj = os.path.join(d, name)
            for section, offsets in sites(obj).items():
                out = subprocess.run(["addr2line", "-a", "-i", "-e", obj, "-j", section]
                                     + offsets, capture_output=True, text=True).stdout
                for chunk in out.split("\n0x")[0:]:
                    frames = [l for l in chunk.splitlines()[1:] if l.strip()]
                    ours = [re.sub(r".*/(src/)", r"\1", re.sub(r" \(.*", "", f))
                            for f in frames if "/src/" in f and "/rustc/" not in f
                            and "/.cargo/" not in f]
                    inner = re.sub(r".*/library/", "", re.sub(r" \(.*", "", frames[0])) \
                        if frames else "?"
                    where = " <- ".join(ours[:3]) or inner
                    if ours and "/library/" in (frames[0] if frames else ""):
                        where += f"  [{inner}]"
                    count[where] += 1
    for where, n in sorted(count.items()):
        print(f"{n:4} {where}")
    print(f"{sum(count.values())} panic call sites")


if __name__ == "__main__":
    main()
