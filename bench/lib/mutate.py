#!/usr/bin/env python3
"""Deterministically change a percentage of the regular files under a tree.

usage: mutate.py ROOT PERCENT SEED [edit|rewrite]

The files are listed in sorted order and a seeded RNG picks
max(1, round(n * PERCENT / 100)) of them, so every tool in every run sees
exactly the same change. edit (the default): each picked file either gets
random bytes appended (16 B .. 64 KiB) or has one block of up to 4 KiB
rewritten in place at a seeded offset (size unchanged; an empty file gets
bytes appended instead). rewrite: each picked file is rewritten whole with
new random bytes of the same size, so the tree keeps its size while its old
contents become garbage in a repository (what retention must reclaim).
Prints one summary line: files changed, of total, bytes written.
"""
import os
import random
import sys


def main() -> int:
    if len(sys.argv) not in (4, 5) or sys.argv[4:] not in ([], ["edit"], ["rewrite"]):
        print(__doc__, file=sys.stderr)
        return 2
    root, pct, seed = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    whole = sys.argv[4:] == ["rewrite"]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(os.path.relpath(p, root))
    files.sort()
    if not files:
        print(f"mutate.py: no regular files under {root}", file=sys.stderr)
        return 1
    rng = random.Random(f"backupd-bench/{seed}")
    k = max(1, round(len(files) * pct / 100.0))
    picked = rng.sample(files, k)
    written = appended = rewritten = 0
    for rel in sorted(picked):
        p = os.path.join(root, rel)
        size = os.path.getsize(p)
        if whole:
            data = rng.randbytes(size)
            with open(p, "wb") as f:
                f.write(data)
            rewritten += 1
        elif size == 0 or rng.random() < 0.5:
            data = rng.randbytes(rng.randint(16, 64 * 1024))
            with open(p, "ab") as f:
                f.write(data)
            appended += 1
        else:
            n = min(4096, size)
            off = rng.randrange(0, size - n + 1)
            data = rng.randbytes(n)
            with open(p, "r+b") as f:
                f.seek(off)
                f.write(data)
            rewritten += 1
        written += len(data)
    print(f"changed {k} of {len(files)} files ({appended} appended, "
          f"{rewritten} {'rewritten whole' if whole else 'block-rewritten'}), {written} bytes written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
