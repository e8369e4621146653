#!/usr/bin/env bash
# bench/growth.sh — how a repository grows under retention, backupd beside
# restic, on the same data in the same run (issue 13's first figure).
#
# Each "day": CHANGE_PCT% of the tree's files are rewritten whole with new
# bytes of the same size (bench/lib/mutate.py rewrite, seeded by the day, so both
# tools see the same change; the tree keeps its size), each tool backs
# it up, keeps the last KEEP_LAST backups and collects garbage with no
# safety window (restic: forget --keep-last N --prune). The repositories'
# sizes on disk are printed after every day, with their ratio.
#
# Settings (environment):
#   DAYS=30 CHANGE_PCT=5 KEEP_LAST=3
#   SRC=/usr/local/go/src          the tree (copied; the copy is changed)
#   BENCH_DIR=/tmp/backupd-growth  scratch dir (outside the repo; removed at exit unless KEEP=1)
#   BACKUPD_BIN=bin/backupd        relative to the repo root, or absolute
#   OUT=                           also write the table (CSV) here
set -euo pipefail
export LC_ALL=C

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DAYS=${DAYS:-30}
CHANGE_PCT=${CHANGE_PCT:-5}
KEEP_LAST=${KEEP_LAST:-3}
SRC=${SRC:-/usr/local/go/src}
BENCH_DIR=${BENCH_DIR:-/tmp/backupd-growth}
BACKUPD_BIN=${BACKUPD_BIN:-bin/backupd}
KEEP=${KEEP:-0}
OUT=${OUT:-}

die() { echo "growth: error: $*" >&2; exit 1; }
[[ $DAYS =~ ^[1-9][0-9]*$ && $KEEP_LAST =~ ^[1-9][0-9]*$ ]] || die "DAYS and KEEP_LAST must be positive integers"
[[ $CHANGE_PCT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "CHANGE_PCT must be a number (got '$CHANGE_PCT')"
[[ $BACKUPD_BIN == /* ]] || BACKUPD_BIN=$REPO_ROOT/$BACKUPD_BIN
[[ -x $BACKUPD_BIN ]] || die "no backupd at $BACKUPD_BIN (make build)"
command -v restic >/dev/null || die "restic is missing (apt-get install restic; bench/run.sh installs it too)"
[[ -d $SRC ]] || die "SRC '$SRC' is not a directory"
[[ $BENCH_DIR == /* && $BENCH_DIR != / ]] || die "BENCH_DIR must be an absolute scratch path (got '$BENCH_DIR')"
case $BENCH_DIR/ in "$REPO_ROOT"/*) die "BENCH_DIR '$BENCH_DIR' is inside the repository" ;; esac
if [[ -e $BENCH_DIR && -n $(ls -A "$BENCH_DIR") && ! -e $BENCH_DIR/.backupd-growth ]]; then
	die "BENCH_DIR '$BENCH_DIR' is not empty and was not made by this script; pick another"
fi
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
touch "$BENCH_DIR/.backupd-growth"
[[ $KEEP == 1 ]] || trap 'rm -rf "$BENCH_DIR"' EXIT

export RESTIC_PASSWORD=backupd-growth BACKUPD_PASSWORD=backupd-growth
data=$BENCH_DIR/data b=$BENCH_DIR/backupd r=$BENCH_DIR/restic
cp -a "$SRC" "$data"
"$BACKUPD_BIN" repo init --repo "$b" >/dev/null
restic init --repo "$r" --repository-version 2 >/dev/null

size() { du -sb "$1" | cut -f1; }
mb() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1e6 }'; }
files() { find "$1" -type f | wc -l; }

echo "growth: $(du -sh "$data" | cut -f1) tree ($SRC), $DAYS days, ${CHANGE_PCT}% of files rewritten a day, keep the last $KEEP_LAST"
printf '%4s %12s %12s %7s %14s %14s\n' day backupd_MB restic_MB ratio backupd_files restic_files
[[ -z $OUT ]] || echo "day,backupd_bytes,restic_bytes,backupd_files,restic_files" >"$OUT"
for ((day = 1; day <= DAYS; day++)); do
	((day == 1)) || python3 "$REPO_ROOT/bench/lib/mutate.py" "$data" "$CHANGE_PCT" "growth-$day" rewrite >/dev/null
	"$BACKUPD_BIN" repo backup --repo "$b" --type incremental --component "src=$data" >/dev/null
	mapfile -t ids < <("$BACKUPD_BIN" repo list --repo "$b" --json |
		python3 -c 'import json,sys; print("\n".join(m["id"] for m in sorted(json.load(sys.stdin), key=lambda m: m["started"])))')
	for ((i = 0; i < ${#ids[@]} - KEEP_LAST; i++)); do
		"$BACKUPD_BIN" repo forget --repo "$b" --backup "${ids[i]}" >/dev/null
	done
	"$BACKUPD_BIN" repo gc --repo "$b" --safety-window 0 >/dev/null
	restic --repo "$r" backup --compression auto -q "$data" >/dev/null
	restic --repo "$r" forget -q --keep-last "$KEEP_LAST" --prune >/dev/null
	bs=$(size "$b") rs=$(size "$r")
	printf '%4d %12s %12s %7s %14d %14d\n' "$day" "$(mb "$bs")" "$(mb "$rs")" "$(awk -v a="$bs" -v c="$rs" 'BEGIN { printf "%.2f", a / c }')" "$(files "$b")" "$(files "$r")"
	[[ -z $OUT ]] || echo "$day,$bs,$rs,$(files "$b"),$(files "$r")" >>"$OUT"
done
