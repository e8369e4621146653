#!/usr/bin/env python3
"""Deterministically rewrite a percentage of the regular files under a tree.

usage: rewrite.py ROOT PERCENT SEED

The files are listed in sorted order and a seeded RNG picks
max(1, round(n * PERCENT / 100)) of them; each is rewritten whole with new
seeded random bytes of the same size, so the tree keeps its size while its
old contents become garbage in a repository (what retention must reclaim).
Prints one summary line: files rewritten, of total, bytes written.
"""
import os
import random
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    root, pct, seed = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(os.path.relpath(p, root))
    files.sort()
    if not files:
        print(f"rewrite.py: no regular files under {root}", file=sys.stderr)
        return 1
    rng = random.Random(f"backupd-bench-rewrite/{seed}")
    picked = rng.sample(files, max(1, round(len(files) * pct / 100.0)))
    written = 0
    for rel in sorted(picked):
        p = os.path.join(root, rel)
        size = os.path.getsize(p)
        with open(p, "wb") as f:
            f.write(rng.randbytes(size))
        written += size
    print(f"rewrote {len(picked)} of {len(files)} files, {written} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
