# bench/lib/backupd_bin.sh — sourced by the bench scripts.
#
# describe_backupd_bin BIN REPO_ROOT PREFIX sets BACKUPD_DESC to what BIN is:
# its checksum and the commit its build info names (`backupd version`), not
# the checkout's: a binary left from an older build was once reported as the
# checkout's commit. When the two differ (or one has uncommitted changes and
# the other not), it says so in BACKUPD_DESC and warns on stderr.
describe_backupd_bin() {
	local bin=$1 root=$2 prefix=$3
	local bin_commit head_commit head_state bin_state
	bin_commit=$("$bin" version 2>/dev/null | sed -nE 's/^commit: +//p' || true)
	head_commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || true)
	head_state=$head_commit
	git -C "$root" diff --quiet HEAD 2>/dev/null || head_state="$head_commit (modified)"
	bin_state=${bin_commit%% *}
	if [[ $bin_commit == *modified* ]]; then bin_state+=" (modified)"; fi
	BACKUPD_DESC="$bin, sha256 $(sha256sum "$bin" | cut -c1-12), built from ${bin_state:-an unknown commit}"
	if [[ -z $bin_commit || $bin_state != "$head_state" ]]; then
		BACKUPD_DESC+="; NOT the checkout (${head_state:-?}): run 'make build' first"
		echo "$prefix: warning: $bin was built from ${bin_state:-an unknown commit}, the checkout is at ${head_state:-?}; run 'make build' (or make bench) first" >&2
	fi
}
