#!/usr/bin/env bash
# bench/growth.sh — case C, retention churn: how a repository grows under
# retention, backupd beside restic and borg, on the same data in the same run.
#
# Each "day": CHANGE_PCT% of the tree's files are rewritten whole with new
# bytes of the same size (bench/lib/mutate.py rewrite, seeded by the day, so
# every tool sees the same change; the tree keeps its size), each tool backs
# it up, keeps the last KEEP_LAST backups and collects garbage with no
# safety window: backupd repo forget + repo gc --repack (REPACK=0: without
# --repack), restic forget --keep-last N --prune, borg prune --keep-last N +
# compact. The repositories' sizes on disk are printed after every day, with
# the stored size of what backupd's kept backups reference (repo gc's
# referenced_bytes), backupd's ratio to the smaller anchor and the bytes
# repack has rewritten so far (what the smaller size costs). At the end
# backupd's repository is checked with --read-data, and the targets are
# judged at every tenth day and the last: no larger than the smallest
# anchor, within 15% of the referenced bytes.
#
# Settings (environment):
#   DAYS=30 CHANGE_PCT=5 KEEP_LAST=3 REPACK=1
#   BORG=auto                      auto: run borg when installed; no: skip it
#   GC_FLAGS=                      more flags for backupd's repo gc (like --repack-max-unused 2)
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
REPACK=${REPACK:-1}
BORG=${BORG:-auto}
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
# shellcheck source=bench/lib/backupd_bin.sh
. "$REPO_ROOT/bench/lib/backupd_bin.sh"
describe_backupd_bin "$BACKUPD_BIN" "$REPO_ROOT" growth
command -v restic >/dev/null || die "restic is missing (apt-get install restic; bench/run.sh installs it too)"
use_borg=0
if [[ $BORG != no ]] && command -v borg >/dev/null; then use_borg=1; fi
[[ $BORG != yes || $use_borg == 1 ]] || die "BORG=yes but borg is missing (apt-get install borgbackup)"
gc_flags=(--safety-window 0)
[[ $REPACK == 0 ]] || gc_flags+=(--repack)
read -r -a extra <<<"${GC_FLAGS:-}"
gc_flags+=("${extra[@]}")
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

export RESTIC_PASSWORD=backupd-growth BACKUPD_PASSWORD=backupd-growth BORG_PASSPHRASE=backupd-growth
export BORG_BASE_DIR=$BENCH_DIR/borg-base RESTIC_CACHE_DIR=$BENCH_DIR/restic-cache
data=$BENCH_DIR/data b=$BENCH_DIR/backupd r=$BENCH_DIR/restic g=$BENCH_DIR/borg
cp -a "$SRC" "$data"
"$BACKUPD_BIN" repo init --repo "$b" >/dev/null
restic init --repo "$r" --repository-version 2 >/dev/null
((use_borg == 0)) || borg init --encryption=repokey-blake2 "$g" >/dev/null 2>&1

size() { du -sb "$1" | cut -f1; }
mb() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1e6 }'; }
files() { find "$1" -type f | wc -l; }

echo "growth: backupd: $BACKUPD_DESC"
echo "growth: $(du -sh "$data" | cut -f1) tree ($SRC), $DAYS days, ${CHANGE_PCT}% of files rewritten a day, keep the last $KEEP_LAST, backupd gc ${gc_flags[*]}"
printf '%4s %11s %11s %10s %10s %7s %9s %10s\n' day backupd_MB referenced restic_MB borg_MB ratio overhead repacked
[[ -z $OUT ]] || echo "day,backupd_bytes,referenced_bytes,restic_bytes,borg_bytes,backupd_files,repacked_bytes" >"$OUT"
misses=()
rewritten=0
for ((day = 1; day <= DAYS; day++)); do
	((day == 1)) || python3 "$REPO_ROOT/bench/lib/mutate.py" "$data" "$CHANGE_PCT" "growth-$day" rewrite >/dev/null
	"$BACKUPD_BIN" repo backup --repo "$b" --type incremental --component "src=$data" >/dev/null
	mapfile -t ids < <("$BACKUPD_BIN" repo list --all --repo "$b" --json |
		python3 -c 'import json,sys; print("\n".join(m["id"] for m in sorted(json.load(sys.stdin), key=lambda m: m["started"])))')
	for ((i = 0; i < ${#ids[@]} - KEEP_LAST; i++)); do
		"$BACKUPD_BIN" repo forget --repo "$b" --backup "${ids[i]}" >/dev/null
	done
	read -r ref moved < <("$BACKUPD_BIN" repo gc --repo "$b" "${gc_flags[@]}" --json |
		python3 -c 'import json,sys; g=json.load(sys.stdin); print(g["referenced_bytes"], (g.get("repack") or {}).get("written_bytes", 0))')
	rewritten=$((rewritten + moved))
	restic --repo "$r" backup --compression auto -q "$data" >/dev/null
	restic --repo "$r" forget -q --keep-last "$KEEP_LAST" --prune >/dev/null
	gs=0
	if ((use_borg)); then
		borg create --compression zstd,3 "$g::day-$day" "$data"
		borg prune --keep-last "$KEEP_LAST" "$g"
		borg compact "$g"
		gs=$(size "$g")
	fi
	bs=$(size "$b") rs=$(size "$r")
	anchor=$rs
	((use_borg == 0 || gs >= rs)) || anchor=$gs
	ratio=$(awk -v a="$bs" -v c="$anchor" 'BEGIN { printf "%.2f", a / c }')
	over=$(awk -v a="$bs" -v c="$ref" 'BEGIN { printf "%+.1f%%", 100 * (a / c - 1) }')
	printf '%4d %11s %11s %10s %10s %7s %9s %10s\n' "$day" "$(mb "$bs")" "$(mb "$ref")" "$(mb "$rs")" "$( ((use_borg)) && mb "$gs" || echo -)" "$ratio" "$over" "$(mb "$rewritten")"
	[[ -z $OUT ]] || echo "$day,$bs,$ref,$rs,$gs,$(files "$b"),$rewritten" >>"$OUT"
	if ((day % 10 == 0 || day == DAYS)); then
		((bs <= anchor)) || misses+=("day $day: backupd $(mb "$bs") MB > smallest anchor $(mb "$anchor") MB")
		awk -v a="$bs" -v c="$ref" 'BEGIN { exit !(a <= 1.15 * c) }' || misses+=("day $day: backupd $(mb "$bs") MB is more than 15% over the $(mb "$ref") MB its kept backups reference")
	fi
done
"$BACKUPD_BIN" repo check --repo "$b" --read-data >/dev/null || die "backupd's repository does not check clean after $DAYS days"
echo "growth: backupd's repository checks clean (--read-data)"
if ((${#misses[@]})); then
	printf 'growth: target missed: %s\n' "${misses[@]}"
	exit 1
fi
echo "growth: targets met at every tenth day and the last (no larger than the smallest anchor; within 15% of the referenced bytes)"
