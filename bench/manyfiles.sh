#!/usr/bin/env bash
# bench/manyfiles.sh — case E, many files: peak memory and time of backupd
# beside restic for trees of many small files, in the same run.
#
# For each size in SIZES a seeded tree of small files (bench/lib/gen_small.py:
# 1 to 4 KB each, in 1000 leaf directories) is generated, then each tool
# makes a full backup, an incremental one after CHANGE_PCT% of the files
# were rewritten (bench/lib/mutate.py), a full restore of the latest
# backup, and a check that reads all data. Each phase's wall time and peak
# RSS (/usr/bin/time -f %M) are printed, with backupd's speed-up over
# restic (restic's time / backupd's). Targets (issue 13): peak RSS under
# 300 MB in every phase; full backup at least 2x faster than restic's.
#
# Settings (environment):
#   SIZES="100000 400000 1000000"  file counts
#   CHANGE_PCT=1 SEED=1
#   TOOLS="backupd restic"
#   BENCH_DIR=/tmp/backupd-manyfiles  scratch dir (outside the repo; removed at exit unless KEEP=1)
#   BACKUPD_BIN=bin/backupd           relative to the repo root, or absolute
#   OUT=                              also write the table (CSV) here
set -euo pipefail
export LC_ALL=C

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=${SIZES:-100000 400000 1000000}
CHANGE_PCT=${CHANGE_PCT:-1}
SEED=${SEED:-1}
TOOLS=${TOOLS:-backupd restic}
BENCH_DIR=${BENCH_DIR:-/tmp/backupd-manyfiles}
BACKUPD_BIN=${BACKUPD_BIN:-bin/backupd}
KEEP=${KEEP:-0}
OUT=${OUT:-}

die() { echo "manyfiles: error: $*" >&2; exit 1; }
for n in $SIZES; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "SIZES must be positive integers (got '$n')"; done
[[ $BACKUPD_BIN == /* ]] || BACKUPD_BIN=$REPO_ROOT/$BACKUPD_BIN
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
for t in $TOOLS; do
	case $t in
	backupd) [[ -x $BACKUPD_BIN ]] || die "no backupd at $BACKUPD_BIN (make build)" ;;
	restic) command -v restic >/dev/null || die "restic is missing (apt-get install restic)" ;;
	*) die "unknown tool '$t' (backupd, restic)" ;;
	esac
done
with_backupd=0
[[ " $TOOLS " != *" backupd "* ]] || with_backupd=1
if ((with_backupd)); then
	# shellcheck source=bench/lib/backupd_bin.sh
	. "$REPO_ROOT/bench/lib/backupd_bin.sh"
	describe_backupd_bin "$BACKUPD_BIN" "$REPO_ROOT" manyfiles
fi
[[ $BENCH_DIR == /* && $BENCH_DIR != / ]] || die "BENCH_DIR must be an absolute scratch path (got '$BENCH_DIR')"
case $BENCH_DIR/ in "$REPO_ROOT"/*) die "BENCH_DIR '$BENCH_DIR' is inside the repository" ;; esac
if [[ -e $BENCH_DIR && -n $(ls -A "$BENCH_DIR") && ! -e $BENCH_DIR/.backupd-manyfiles ]]; then
	die "BENCH_DIR '$BENCH_DIR' is not empty and was not made by this script; pick another"
fi
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
touch "$BENCH_DIR/.backupd-manyfiles"
[[ $KEEP == 1 ]] || trap 'rm -rf "$BENCH_DIR"' EXIT

export RESTIC_PASSWORD=backupd-manyfiles BACKUPD_PASSWORD=backupd-manyfiles
export XDG_CACHE_HOME=$BENCH_DIR/cache RESTIC_CACHE_DIR=$BENCH_DIR/cache/restic

# timed LOG CMD...: runs CMD, sets WALL (s) and RSS (MB)
timed() {
	local log=$1
	shift
	local t0=$EPOCHREALTIME
	if ! /usr/bin/time -f '%M' -o "$log.rss" "$@" >"$log" 2>&1; then
		echo "manyfiles: failed: $* (log $log)" >&2
		tail -5 "$log" >&2
		return 1
	fi
	WALL=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	RSS=$(awk '{ printf "%.0f", $1 / 1024 }' "$log.rss")
}

backupd_phase() { # phase repo src target
	case $1 in
	init) "$BACKUPD_BIN" repo init --repo "$2" >/dev/null ;;
	full) timed "$BENCH_DIR/log" "$BACKUPD_BIN" repo backup --repo "$2" --type full --component "data=$3" ;;
	incremental) timed "$BENCH_DIR/log" "$BACKUPD_BIN" repo backup --repo "$2" --type incremental --component "data=$3" ;;
	restore) timed "$BENCH_DIR/log" "$BACKUPD_BIN" repo restore --repo "$2" --backup latest --target "$4" ;;
	check) timed "$BENCH_DIR/log" "$BACKUPD_BIN" repo check --repo "$2" --read-data ;;
	esac
}

restic_phase() {
	case $1 in
	init) restic init --repo "$2" --repository-version 2 >/dev/null ;;
	full | incremental) timed "$BENCH_DIR/log" restic --repo "$2" backup --compression auto "$3" ;;
	restore) timed "$BENCH_DIR/log" restic --repo "$2" restore latest --target "$4" ;;
	check) timed "$BENCH_DIR/log" restic --repo "$2" check --read-data ;;
	esac
}

((!with_backupd)) || echo "manyfiles: backupd: $BACKUPD_DESC"
echo "manyfiles: sizes $SIZES, ${CHANGE_PCT}% changed for the incremental, tools $TOOLS, $(nproc) cores"
printf '%9s %-8s %-12s %9s %8s %9s\n' files tool phase seconds rss_MB speedup
[[ -z $OUT ]] || echo "files,tool,phase,seconds,rss_mb" >"$OUT"
misses=()
for n in $SIZES; do
	src=$BENCH_DIR/src
	rm -rf "$src"
	python3 "$REPO_ROOT/bench/lib/gen_small.py" "$src" "$n" 1000 "$SEED" >/dev/null
	declare -A took=()
	for phase in full incremental restore check; do
		if [[ $phase == incremental ]]; then
			python3 "$REPO_ROOT/bench/lib/mutate.py" "$src" "$CHANGE_PCT" "manyfiles-$SEED" rewrite >/dev/null
		fi
		for tool in $TOOLS; do
			repo=$BENCH_DIR/$tool-repo target=$BENCH_DIR/$tool-restore
			if [[ $phase == full ]]; then
				rm -rf "$repo" "$target" "$BENCH_DIR/cache"
				"${tool}_phase" init "$repo"
			fi
			sync
			"${tool}_phase" "$phase" "$repo" "$src" "$target" || die "$tool $phase of $n files failed"
			took[$tool.$phase]=$WALL
			speed=-
			if [[ $tool == restic && -n ${took[backupd.$phase]:-} ]]; then
				speed=$(awk -v r="$WALL" -v b="${took[backupd.$phase]}" 'BEGIN { printf "%.2f", r / b }')
			fi
			printf '%9d %-8s %-12s %9s %8s %9s\n' "$n" "$tool" "$phase" "$WALL" "$RSS" "$speed"
			[[ -z $OUT ]] || echo "$n,$tool,$phase,$WALL,$RSS" >>"$OUT"
			if [[ $tool == backupd ]] && ((RSS >= 300)); then
				misses+=("$n files: backupd $phase peak RSS $RSS MB (target under 300)")
			fi
			if [[ $tool == restic && $phase == full && $speed != - ]] && awk -v s="$speed" 'BEGIN { exit !(s < 2) }'; then
				misses+=("$n files: backupd's full backup is ${speed}x restic's speed (target 2x)")
			fi
		done
		[[ $phase != restore ]] || rm -rf "$BENCH_DIR"/*-restore
	done
	unset took
	rm -rf "$BENCH_DIR"/*-repo "$src"
done
if ((${#misses[@]})); then
	printf 'manyfiles: target missed: %s\n' "${misses[@]}"
	exit 1
fi
if ((!with_backupd)); then
	echo "manyfiles: no target judged (backupd is not in TOOLS)"
	exit 0
fi
judged="peak RSS under 300 MB in every phase"
if [[ " $TOOLS " == *" restic "* ]]; then
	judged+="; full backup at least 2x restic"
else
	judged+="; the speed not judged: restic is not in TOOLS"
fi
echo "manyfiles: targets met ($judged)"
