#!/usr/bin/env python3
"""Generate the "many small files" tree of case B, deterministically.

usage: gen_small.py OUTDIR NFILES NLEAFDIRS SEED

NLEAFDIRS leaf directories nested three deep (c###/b#/a#: for 1000 leaves
that is 10 + 100 + 1000 directories); file j goes to leaf j % NLEAFDIRS.
Sizes are uniform in 1024..4096 bytes. Content, chosen per file by the
seeded RNG: 40% random bytes (incompressible), 40% a slice of a seeded
English-like text corpus, 20% log-like lines (both compressible).
"""
import os
import random
import sys

WORDS = ("the of and to in is that for it as was with be by on not he this are "
         "or his from at which but have an they you were her she there been one "
         "all we their has would when if so no will more can out said up what "
         "about into than them only other new some could time these two may "
         "first then do any like my now over such our man me even most made after "
         "also did many before must through back years where much your way well "
         "backup restore chunk index snapshot repository compression encrypt "
         "deduplicate manifest segment blob tree pack lock key").split()


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    out, nfiles, nleaves, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rng = random.Random(f"backupd-bench-small/{seed}")
    corpus = " ".join(rng.choice(WORDS) for _ in range(400_000)).encode()
    leaves = []
    for i in range(nleaves):
        d = os.path.join(out, f"c{i // 100:03d}", f"b{(i // 10) % 10}", f"a{i % 10}")
        os.makedirs(d, exist_ok=True)
        leaves.append(d)
    total = 0
    for j in range(nfiles):
        size = rng.randint(1024, 4096)
        r = rng.random()
        if r < 0.4:
            data, ext = rng.randbytes(size), "bin"
        elif r < 0.8:
            off = rng.randrange(0, len(corpus) - size)
            data, ext = corpus[off:off + size], "txt"
        else:
            lines, n = [], 0
            while n < size:
                line = (f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z "
                        f"{rng.choice(('INFO', 'INFO', 'INFO', 'WARN', 'DEBUG', 'ERROR'))} "
                        f"worker-{rng.randint(0, 31)} processed item {rng.getrandbits(40):x} "
                        f"in {rng.randint(1, 999)}ms\n").encode()
                lines.append(line)
                n += len(line)
            data, ext = b"".join(lines)[:size], "log"
        with open(os.path.join(leaves[j % nleaves], f"f{j:06d}.{ext}"), "wb") as f:
            f.write(data)
        total += len(data)
    print(f"generated {nfiles} files in {nleaves} leaf dirs, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
