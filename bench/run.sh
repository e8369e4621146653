#!/usr/bin/env bash
# bench/run.sh — backupd beside restic and borg, on the same data in the same
# run, all with zstd compression. See bench/README.md for what it measures.
#
# Settings (environment):
#   RUNS=3                     runs per tool and case; the report gives medians
#   CASES="A B"                A = go toolchain, B = many small files
#   TOOLS="backupd restic borg"     tools for case A
#   B_TOOLS="backupd restic borg"   tools for case B
#   BENCH_DIR=/tmp/backupd-bench    scratch dir (outside the repo; removed at exit)
#   BACKUPD_BIN=bin/backupd    relative to the repo root, or absolute
#   SRC_A=/usr/local/go        tree copied for case A
#   CHANGE_PCT=1 SEED=1        case A change set (deterministic, seeded)
#   B_FILES=200000 B_DIRS=1000 case B size
#   CACHE=auto                 auto | drop | warm (auto: drop if the kernel lets us)
#   INSTALL=auto               auto: apt-get install missing restic/borg/time as root; no: never
#   KEEP=0                     1 keeps BENCH_DIR for a look afterwards
#   RETIRE_MIN_FREE_MB=4000    a finished run's trees are set aside (deleted at
#                              exit) while this much space stays free; below
#                              it they are deleted at once (see retire())
#   RESULTS_DIR=bench/results  where the report is saved
set -euo pipefail
export LC_ALL=C

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB=$REPO_ROOT/bench/lib
# shellcheck source=bench/lib/backupd_bin.sh
. "$LIB/backupd_bin.sh"

RUNS=${RUNS:-3}
CASES=${CASES:-A B}
TOOLS=${TOOLS:-backupd restic borg}
B_TOOLS=${B_TOOLS:-backupd restic borg}
BENCH_DIR=${BENCH_DIR:-/tmp/backupd-bench}
BACKUPD_BIN=${BACKUPD_BIN:-bin/backupd}
SRC_A=${SRC_A:-/usr/local/go}
CHANGE_PCT=${CHANGE_PCT:-1}
SEED=${SEED:-1}
B_FILES=${B_FILES:-200000}
B_DIRS=${B_DIRS:-1000}
CACHE=${CACHE:-auto}
INSTALL=${INSTALL:-auto}
KEEP=${KEEP:-0}
RETIRE_MIN_FREE_MB=${RETIRE_MIN_FREE_MB:-4000}
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/bench/results}

export RESTIC_PASSWORD=backupd-bench
export BORG_PASSPHRASE=backupd-bench
export BACKUPD_PASSWORD=backupd-bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- checks
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ $B_FILES =~ ^[1-9][0-9]*$ && $B_DIRS =~ ^[1-9][0-9]*$ ]] || die "B_FILES and B_DIRS must be positive integers"
[[ $RETIRE_MIN_FREE_MB =~ ^[0-9]+$ ]] || die "RETIRE_MIN_FREE_MB must be a number of MB (got '$RETIRE_MIN_FREE_MB')"
[[ $CHANGE_PCT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "CHANGE_PCT must be a number (got '$CHANGE_PCT')"
case $CACHE in auto | drop | warm) ;; *) die "CACHE must be auto, drop or warm (got '$CACHE')" ;; esac
for c in $CASES; do [[ $c == A || $c == B ]] || die "unknown case '$c' in CASES (A, B)"; done
for t in $TOOLS $B_TOOLS; do
	case $t in backupd | restic | borg) ;; *) die "unknown tool '$t' (backupd, restic, borg)" ;; esac
done
[[ $BACKUPD_BIN == /* ]] || BACKUPD_BIN=$REPO_ROOT/$BACKUPD_BIN

# BENCH_DIR: absolute, not /, not in the repo, and ours if it already exists.
[[ $BENCH_DIR == /* ]] || die "BENCH_DIR must be an absolute path (got '$BENCH_DIR')"
BENCH_DIR=$(realpath -m "$BENCH_DIR")
[[ $BENCH_DIR != / && $BENCH_DIR != "$HOME" ]] || die "BENCH_DIR '$BENCH_DIR' is not a scratch dir"
case $BENCH_DIR/ in "$REPO_ROOT"/*) die "BENCH_DIR '$BENCH_DIR' is inside the repository" ;; esac
case $REPO_ROOT/ in "$BENCH_DIR"/*) die "BENCH_DIR '$BENCH_DIR' contains the repository" ;; esac
if [[ -e $BENCH_DIR ]]; then
	[[ -d $BENCH_DIR ]] || die "BENCH_DIR '$BENCH_DIR' exists and is not a directory"
	if [[ -n $(ls -A "$BENCH_DIR") && ! -e $BENCH_DIR/.backupd-bench ]]; then
		die "BENCH_DIR '$BENCH_DIR' is not empty and was not made by this script; pick another"
	fi
fi

# ---------------------------------------------------------------- tools
need_install=()
command -v restic >/dev/null || need_install+=(restic)
command -v borg >/dev/null || need_install+=(borgbackup)
[[ -x /usr/bin/time ]] || need_install+=(time)
command -v python3 >/dev/null || need_install+=(python3)
if ((${#need_install[@]})); then
	if [[ $INSTALL != no && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing ${need_install[*]} with apt-get"
		(export DEBIAN_FRONTEND=noninteractive
			apt-get update -qq && apt-get install -y -qq "${need_install[@]}") >&2 ||
			die "apt-get install ${need_install[*]} failed"
	else
		die "missing ${need_install[*]}; install them (Debian: apt-get install -y ${need_install[*]})"
	fi
fi
RESTIC_VERSION=$(restic version 2>&1 | head -n1)
BORG_VERSION=$(borg --version 2>&1 | head -n1)
rv=$(sed -nE 's/^restic ([0-9]+)\.([0-9]+).*/\1 \2/p' <<<"$RESTIC_VERSION")
read -r rmaj rmin <<<"${rv:-0 0}"
((rmaj > 0 || rmin >= 14)) || die "restic >= 0.14 needed for compression (have: $RESTIC_VERSION)"

HAVE_BACKUPD=0
BACKUPD_DESC="not built ($BACKUPD_BIN missing)"
if [[ -x $BACKUPD_BIN ]]; then
	HAVE_BACKUPD=1
	describe_backupd_bin "$BACKUPD_BIN" "$REPO_ROOT" bench
fi

# ---------------------------------------------------------------- scratch dir
mkdir -p "$BENCH_DIR"
touch "$BENCH_DIR/.backupd-bench"
exec 9>"$BENCH_DIR/.lock"
flock -n 9 || die "another bench run is using $BENCH_DIR"
cleanup() {
	local rc=$?
	if [[ $KEEP == 1 ]]; then
		log "keeping $BENCH_DIR (KEEP=1)"
	else
		rm -rf -- "$BENCH_DIR"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STAMP=$(date +%Y-%m-%d-%H%M%S)
HOST=$(hostname -s 2>/dev/null || hostname)
mkdir -p "$RESULTS_DIR"
REPORT=$RESULTS_DIR/$STAMP-$HOST.md
CSV=$RESULTS_DIR/$STAMP-$HOST.csv
LOGS=$RESULTS_DIR/$STAMP-$HOST-logs # failing phases' logs only
META=$BENCH_DIR/meta.tsv
echo "case,run,tool,phase,status,wall_s,rss_kb,src_bytes,repo_bytes,note" >"$CSV"
: >"$META"
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

avail_mb=$(df -Pm "$BENCH_DIR" | awk 'NR==2{print $4}')
((avail_mb > 3000)) || log "warning: only ${avail_mb} MB free under $BENCH_DIR; a full run needs about 3 GB"

# ---------------------------------------------------------------- cache
CACHE_MODE=$CACHE
if [[ $CACHE_MODE != warm ]]; then
	if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
		CACHE_MODE=drop
	elif [[ $CACHE_MODE == drop ]]; then
		die "CACHE=drop but /proc/sys/vm/drop_caches is not writable"
	else
		CACHE_MODE=warm
	fi
fi
log "cache mode: $CACHE_MODE"

# prep_cache DIR... — before every timed phase: flush dirty pages, then either
# drop the page cache (cold start for every tool) or read DIR... once so that
# every tool starts warm.
prep_cache() {
	sync
	if [[ $CACHE_MODE == drop ]]; then
		echo 3 >/proc/sys/vm/drop_caches
	else
		local d
		for d in "$@"; do find "$d" -type f -print0 | xargs -0r cat >/dev/null; done
	fi
}

# ---------------------------------------------------------------- helpers
# retire PATH... — a finished run's trees are moved aside, not deleted, and
# go with BENCH_DIR at exit. ext4 without a journal (this VM's root fs)
# skips inodes freed in the last minute when it allocates one, rescanning
# them for every new file: a restore started seconds after the previous
# run's 16,000-file trees were deleted spent a third of its CPU time in that
# scan (perf: recently_deleted, find_get_block_common), for every tool, and
# its time doubled from one run to the next. Below RETIRE_MIN_FREE_MB free,
# they are deleted at once and the report says so.
RETIRED=0
retire() {
	local p avail
	avail=$(df -Pm "$BENCH_DIR" | awk 'NR==2{print $4}')
	if ((avail < RETIRE_MIN_FREE_MB)); then
		if [[ -z ${RETIRE_NOTED:-} ]]; then
			meta "deletions, later" "trees of finished runs deleted at once (only ${avail} MB free): later restores may be slowed by ext4's scan of recently freed inodes"
			RETIRE_NOTED=1
		fi
		rm -rf -- "$@"
		return
	fi
	mkdir -p "$BENCH_DIR/retired"
	for p in "$@"; do
		[[ -e $p ]] || continue
		RETIRED=$((RETIRED + 1))
		mv -- "$p" "$BENCH_DIR/retired/$RETIRED"
	done
}

src_bytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END{printf "%d\n", s}'; }
src_files() { find "$1" -type f | wc -l; }
repo_bytes() { du -sb "$1" | cut -f1; }

# timed LOG CMD... — runs CMD with stdout in LOG.out and stderr in LOG.err;
# sets T_WALL (seconds) and T_RSS_KB (peak RSS); returns CMD's status.
timed() {
	local lg=$1 t0 t1 rc=0
	shift
	t0=$EPOCHREALTIME
	/usr/bin/time -f '%M' -o "$lg.time" "$@" >"$lg.out" 2>"$lg.err" || rc=$?
	t1=$EPOCHREALTIME
	T_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
	T_RSS_KB=$(tail -n1 "$lg.time" 2>/dev/null || echo)
	[[ $T_RSS_KB =~ ^[0-9]+$ ]] || T_RSS_KB=
	return $rc
}

# untimed LOG CMD... — setup steps (init, list); output kept in LOG.*
untimed() {
	local lg=$1
	shift
	"$@" >"$lg.out" 2>"$lg.err"
}

# record CASE RUN TOOL PHASE STATUS WALL RSS SRC REPO NOTE
record() {
	local note=${10//,/;}
	echo "$1,$2,$3,$4,$5,$6,$7,$8,$9,$note" >>"$CSV"
}

# keep_log LOG — copy a failing step's output to the results dir and show its tail.
keep_log() {
	mkdir -p "$LOGS"
	# $BENCH_DIR/A/restic-1/full -> $LOGS/A-restic-1-full.err, ...
	local f name
	name=${1#"$BENCH_DIR"/}
	name=${name//\//-}
	for f in "$1".out "$1".err "$1".diff "$1".time "$1".list.out "$1".list.err; do
		if [[ -e $f ]]; then cp -- "$f" "$LOGS/$name${f#"$1"}"; fi
	done
	{
		echo "---- $name: tail of stderr / stdout / diff (full copies in $LOGS)"
		tail -n 15 "$1.err" 2>/dev/null || true
		tail -n 5 "$1.out" 2>/dev/null || true
		head -n 15 "$1.diff" 2>/dev/null || true
	} >&2
}

# verify_restore SRC RESTORED LOG TARGET — content (diff -r) and file type + mode must
# match. Sets V_NOTE (mtime differences are noted, not failed).
verify_restore() {
	local src=$1 got=$2 lg=$3 target=$4
	V_NOTE=
	if [[ ! -d $got ]]; then
		{
			echo "restored tree $got does not exist; the target holds:"
			find "$target" -maxdepth 6 | head -n 20
		} >"$lg.diff"
		return 1
	fi
	diff -r --no-dereference -- "$src" "$got" >"$lg.diff" 2>&1 || return 1
	(cd "$src" && find . -printf '%y %m %P\n' | sort) >"$lg.meta.src"
	(cd "$got" && find . -printf '%y %m %P\n' | sort) >"$lg.meta.got"
	if ! diff "$lg.meta.src" "$lg.meta.got" >"$lg.diff" 2>&1; then
		sed -i '1i type/mode listing differs (< source, > restored):' "$lg.diff"
		return 1
	fi
	# whole seconds: not every tool keeps nanoseconds
	(cd "$src" && find . -type f -printf '%T@ %P\n' | sed 's/^\([0-9]*\)[.][0-9]* /\1 /' | sort) >"$lg.mt.src"
	(cd "$got" && find . -type f -printf '%T@ %P\n' | sed 's/^\([0-9]*\)[.][0-9]* /\1 /' | sort) >"$lg.mt.got"
	local n
	n=$(comm -3 "$lg.mt.src" "$lg.mt.got" | wc -l)
	((n == 0)) || V_NOTE="content ok, $((n / 2)) file mtimes not restored"
	return 0
}

# ---------------------------------------------------------------- the tools
# Each tool: <tool>_init REPO, <tool>_backup REPO SRC KIND LOG (KIND: full,
# unchanged, changed; timed), <tool>_restore REPO TARGET LOG (timed), and
# <tool>_restored SRC TARGET (where SRC ends up under TARGET). Per run, every
# tool gets its own cache/config dirs under RUN_DIR: new_run_dir sets RUN_DIR
# and TENV, the env(1) prefix of every tool command.
new_run_dir() {
	RUN_DIR=$1
	rm -rf -- "$RUN_DIR"
	mkdir -p "$RUN_DIR/cache" "$RUN_DIR/config"
	TENV=(env RESTIC_CACHE_DIR="$RUN_DIR/cache/restic" BORG_BASE_DIR="$RUN_DIR/borg-base"
		XDG_CACHE_HOME="$RUN_DIR/cache" XDG_CONFIG_HOME="$RUN_DIR/config")
}

restic_init() { untimed "$RUN_DIR/init" "${TENV[@]}" restic init --repo "$1" --repository-version 2; }
restic_backup() {
	timed "$4" "${TENV[@]}" restic backup --repo "$1" --compression auto "$2"
}
restic_restore() { timed "$3" "${TENV[@]}" restic restore latest --repo "$1" --target "$2"; }
restic_restored() { echo "$2$1"; }

borg_init() { untimed "$RUN_DIR/init" "${TENV[@]}" borg init --encryption=repokey-blake2 "$1"; }
borg_backup() { timed "$4" "${TENV[@]}" borg create --compression zstd,3 "$1::$3" "$2"; }
borg_restore() { timed "$3" "${TENV[@]}" env -C "$2" borg extract "$1::changed"; }
borg_restored() { echo "$2$1"; }

BACKUPD_LAST_ID=
backupd_init() { untimed "$RUN_DIR/init" "${TENV[@]}" "$BACKUPD_BIN" repo init --repo "$1"; }
backupd_backup() {
	local type=incremental
	[[ $3 == full ]] && type=full
	timed "$4" "${TENV[@]}" "$BACKUPD_BIN" repo backup --repo "$1" --type "$type" \
		--component data="$2" --compression zstd --json || return
	BACKUPD_LAST_ID=$(python3 "$LIB/backupd_id.py" backup "$4.out" 2>>"$4.err") || {
		# fall back on the listing
		untimed "$4.list" "${TENV[@]}" "$BACKUPD_BIN" repo list --repo "$1" --json &&
			BACKUPD_LAST_ID=$(python3 "$LIB/backupd_id.py" list "$4.list.out" 2>>"$4.err")
	} || {
		echo "bench: no backup id in backupd's --json output" >>"$4.err"
		return 1
	}
}
backupd_restore() {
	untimed "$3.list" "${TENV[@]}" "$BACKUPD_BIN" repo list --repo "$1" --json ||
		{ echo "bench: backupd repo list failed" >>"$3.err"; cat "$3.list.err" >>"$3.err"; return 1; }
	timed "$3" "${TENV[@]}" "$BACKUPD_BIN" repo restore --repo "$1" --backup "$BACKUPD_LAST_ID" --target "$2"
}
backupd_restored() { echo "$2/data$1"; }

tool_available() { [[ $1 != backupd || $HAVE_BACKUPD == 1 ]]; }

# ---------------------------------------------------------------- case A
case_a() {
	local caseroot=$BENCH_DIR/A
	local src=$caseroot/src
	mkdir -p "$caseroot"
	[[ -d $SRC_A ]] || die "SRC_A '$SRC_A' is not a directory"
	local a_bytes a_files
	a_bytes=$(src_bytes "$SRC_A")
	a_files=$(src_files "$SRC_A")
	meta "case A source" "copy of $SRC_A: $a_files files, $((a_bytes / 1000000)) MB"
	meta "case A change" "$CHANGE_PCT% of files (seed $SEED): half get bytes appended, half a block of ≤4 KiB rewritten"
	local run tool
	for ((run = 1; run <= RUNS; run++)); do
		for tool in $TOOLS; do
			if ! tool_available "$tool"; then
				((run == 1)) && record A 1 "$tool" full "not built" "" "" "" "" "" && log "A: backupd: not built"
				continue
			fi
			log "A run $run/$RUNS: $tool"
			new_run_dir "$caseroot/$tool-$run"
			retire "$src"
			cp -a -- "$SRC_A" "$src"
			local repo=$RUN_DIR/repo bytes1 lg ok=1 phase
			if ! "${tool}_init" "$repo"; then
				keep_log "$RUN_DIR/init"
				for phase in full unchanged changed restore; do
					record A "$run" "$tool" "$phase" FAIL "" "" "" "" "init failed"
				done
				retire "$RUN_DIR" "$src"
				continue
			fi
			for phase in full unchanged changed; do
				lg=$RUN_DIR/$phase
				if ((!ok)); then
					record A "$run" "$tool" "$phase" skipped "" "" "" "" "earlier phase failed"
					continue
				fi
				if [[ $phase == changed ]]; then
					python3 "$LIB/mutate.py" "$src" "$CHANGE_PCT" "$SEED" >"$RUN_DIR/mutate.log" ||
						die "mutate.py failed: $(cat "$RUN_DIR/mutate.log")"
					if [[ -z ${MUTATE_DONE:-} ]]; then
						meta "case A change made" "$(cat "$RUN_DIR/mutate.log")"
						MUTATE_DONE=1
					fi
				fi
				bytes1=$(src_bytes "$src")
				prep_cache "$src"
				if "${tool}_backup" "$repo" "$src" "$phase" "$lg"; then
					record A "$run" "$tool" "$phase" ok "$T_WALL" "$T_RSS_KB" "$bytes1" "$(repo_bytes "$repo")" ""
				else
					ok=0
					keep_log "$lg"
					record A "$run" "$tool" "$phase" FAIL "${T_WALL:-}" "${T_RSS_KB:-}" "$bytes1" "" "backup exited non-zero; log $LOGS"
				fi
			done
			lg=$RUN_DIR/restore
			if ((ok)); then
				local target=$RUN_DIR/target
				mkdir -p "$target"
				prep_cache "$repo"
				if "${tool}_restore" "$repo" "$target" "$lg"; then
					if verify_restore "$src" "$("${tool}_restored" "$src" "$target")" "$lg" "$target"; then
						record A "$run" "$tool" restore ok "$T_WALL" "$T_RSS_KB" "$bytes1" "" "$V_NOTE"
					else
						keep_log "$lg"
						record A "$run" "$tool" restore FAIL "$T_WALL" "$T_RSS_KB" "$bytes1" "" "restored tree differs from the source; log $LOGS"
					fi
				else
					keep_log "$lg"
					record A "$run" "$tool" restore FAIL "${T_WALL:-}" "${T_RSS_KB:-}" "$bytes1" "" "restore exited non-zero; log $LOGS"
				fi
			else
				record A "$run" "$tool" restore skipped "" "" "" "" "earlier phase failed"
			fi
			retire "$RUN_DIR" "$src"
		done
	done
}

# ---------------------------------------------------------------- case B
case_b() {
	local caseroot=$BENCH_DIR/B
	local src=$caseroot/src
	mkdir -p "$caseroot"
	log "B: generating $B_FILES files in $B_DIRS leaf dirs"
	local t0=$EPOCHREALTIME
	python3 "$LIB/gen_small.py" "$src" "$B_FILES" "$B_DIRS" "$SEED" >"$caseroot/gen.log" ||
		die "gen_small.py failed: $(cat "$caseroot/gen.log")"
	local gen_s bytes
	gen_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}')
	bytes=$(src_bytes "$src")
	meta "case B source" "$(cat "$caseroot/gen.log") (seed $SEED; $(find "$src" -type d | wc -l) dirs in all; generated in ${gen_s}s)"
	local run tool
	for ((run = 1; run <= RUNS; run++)); do
		for tool in $B_TOOLS; do
			if ! tool_available "$tool"; then
				((run == 1)) && record B 1 "$tool" full "not built" "" "" "" "" "" && log "B: backupd: not built"
				continue
			fi
			log "B run $run/$RUNS: $tool"
			new_run_dir "$caseroot/$tool-$run"
			local repo=$RUN_DIR/repo lg=$RUN_DIR/full
			if ! "${tool}_init" "$repo"; then
				keep_log "$RUN_DIR/init"
				record B "$run" "$tool" full FAIL "" "" "" "" "init failed"
			else
				prep_cache "$src"
				if "${tool}_backup" "$repo" "$src" full "$lg"; then
					record B "$run" "$tool" full ok "$T_WALL" "$T_RSS_KB" "$bytes" "$(repo_bytes "$repo")" ""
				else
					keep_log "$lg"
					record B "$run" "$tool" full FAIL "${T_WALL:-}" "${T_RSS_KB:-}" "$bytes" "" "backup exited non-zero; log $LOGS"
				fi
			fi
			rm -rf -- "$RUN_DIR"
		done
	done
	rm -rf -- "$src"
}

# ---------------------------------------------------------------- run
cache_desc="page cache dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every timed phase: all tools run cold"
[[ $CACHE_MODE == warm ]] && cache_desc="page cache NOT dropped (/proc/sys/vm/drop_caches not writable, or CACHE=warm): the data was read once before every timed phase, so all tools run warm"
meta date "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
meta host "$HOST"
meta "CPU" "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
meta memory "$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
meta kernel "$(uname -srm)"
# shellcheck disable=SC1091
meta OS "$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || echo unknown)"
meta filesystem "$(df -PT "$BENCH_DIR" | awk 'NR==2{print $2" on "$1}') (scratch dir $BENCH_DIR)"
meta cache "$cache_desc"
meta deletions "trees of finished runs set aside and deleted at exit (ext4 rescans inodes freed in the last minute on every allocation; see retire() in bench/run.sh)"
meta runs "$RUNS per tool and case (fresh repository and caches each run; median reported)"
meta backupd "$BACKUPD_DESC"
meta restic "$RESTIC_VERSION; repository version 2, --compression auto (zstd)"
meta borg "$BORG_VERSION; repokey-blake2, --compression zstd,3"

for c in $CASES; do
	case $c in
	A) case_a ;;
	B) case_b ;;
	esac
done

python3 "$LIB/report.py" "$META" "$CSV" >"$REPORT"
cat "$REPORT"
log "report: $REPORT (per-run figures: $CSV)"
if grep -q ',FAIL,' "$CSV"; then
	log "some phases FAILED (see the Failures section)"
	exit 1
fi
