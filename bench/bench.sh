#!/bin/sh
# make bench: strata against restic on ~1 GiB of generated graph export.
#
# For each tool, on the same data, with a fresh local repository and a fresh
# cache: first backup (wall time, peak RSS, repository size), unchanged
# re-backup (bytes added), `snapshots` (fixed cost of one command), backup
# of a 1%-changed version of the same files (bytes added), restore of the
# first snapshot (wall time, peak RSS, cmp against the source). The two
# tools run interleaved, phase by phase, in alternating order, so machine
# noise hits both alike. Then the Go benchmark BenchmarkBackupHeapLargeIndex
# (peak heap of a backup against a repository holding 2,000,000 blobs vs an
# empty one). Prints the table and rewrites the results section of
# docs/performance.md and docs/performance.svg.
#
# Environment: BENCH_SIZE (default 1GiB); BENCH_WORK (work directory;
# default bench/work, or /tmp/strata-bench when only /tmp has room);
# BENCH_ROUNDS=N repeats the tool phases N times with fresh repositories
# (default 1; the figures are then medians); BENCH_KEEP=1 keeps the data
# and repositories; BENCH_SKIP_HEAP=1 skips the Go benchmark;
# BENCH_NO_DOCS=1 prints the table without touching docs/.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZE=${BENCH_SIZE:-1GiB}
ROUNDS=${BENCH_ROUNDS:-1}
T0=$(date +%s)

log() { printf '==> [%4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

# --- tools -------------------------------------------------------------------
SUDO=
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
APT_UPDATED=
apt_install() {
	command -v apt-get >/dev/null 2>&1 || die "$* missing and no apt-get to install it"
	if [ -z "$APT_UPDATED" ]; then
		log "apt-get update"
		$SUDO apt-get update -qq >&2 || die "apt-get update failed"
		APT_UPDATED=1
	fi
	log "apt-get install -y $*"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}
command -v restic >/dev/null 2>&1 || apt_install restic
[ -x /usr/bin/time ] || apt_install time
command -v python3 >/dev/null 2>&1 || apt_install python3
command -v go >/dev/null 2>&1 || die "go is required"
R=bench/results.py

# --- work directory ------------------------------------------------------------
# Room for two data sets, two repositories and a restore: ~5x the data.
avail_kb() { df -Pk "$1" 2>/dev/null | awk 'NR==2 {print $4}'; }
need_kb=$(($(python3 $R size "$SIZE") / 1024 * 11 / 2 + 1))
if [ -n "${BENCH_WORK:-}" ]; then
	W=$BENCH_WORK
	mkdir -p "$W"
	[ "$(avail_kb "$W")" -ge "$need_kb" ] || die "need $((need_kb / 1024)) MiB free in $W"
else
	a_bench=$(avail_kb bench)
	a_tmp=$(avail_kb /tmp)
	if [ "${a_bench:-0}" -ge "$need_kb" ]; then
		W=$ROOT/bench/work
	elif [ "${a_tmp:-0}" -ge "$need_kb" ]; then
		W=/tmp/strata-bench
	else
		die "need $((need_kb / 1024)) MiB free in bench/ or /tmp (have $((${a_bench:-0} / 1024)) and $((${a_tmp:-0} / 1024)))"
	fi
fi
case $W in /*) ;; *) W=$ROOT/$W ;; esac
rm -rf "$W"
mkdir -p "$W/logs"
RES=$W/results.txt
: >"$RES"
rec() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }
cleanup() {
	if [ "${BENCH_KEEP:-}" != 1 ]; then
		rm -rf "$W/data" "$W/alt" "$W/restic-repo" "$W/strata-repo" \
			"$W/restic-cache" "$W/strata-cache" "$W/restore-restic" "$W/restore-strata" "$W/bin"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "work directory $W ($(($(avail_kb "$W") / 1024)) MiB free)"

# --- machine -------------------------------------------------------------------
rec date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
rec nproc "$(nproc)"
rec cpu "$(grep -m1 'model name' /proc/cpuinfo | sed 's/^[^:]*: *//')"
rec mem_kib "$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
rec kernel "$(uname -sr)"
rec go "$(go version | sed 's/^go version //')"
rec restic "$(restic version | head -1)"
rec commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$([ -z "$(git status --porcelain 2>/dev/null)" ] || echo ' + uncommitted changes')"
rec fs "$(df -PT "$W" | awk 'NR==2 {print $2}')"
rec size_arg "$SIZE"
rec loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
rec rounds "$ROUNDS"

# --- build and data ------------------------------------------------------------
log "go build -o $W/bin/strata ./cmd/strata"
go build -o "$W/bin/strata" ./cmd/strata
STRATA=$W/bin/strata
rec strata "$("$STRATA" version | head -1)"

# Every backup is of the same path, $SRC, so both tools take the previous
# snapshot as parent. Nothing else is ever written in its directory: both
# tools also record the metadata of the path's ancestors. Phase (c) renames
# the changed files' directory into place: new inodes and mtimes, as when an
# export job rewrites its files.
SRC=$W/data/src
mkdir -p "$W/data" "$W/alt"
log "go run ./tools/gengraph -out $SRC -bytes $SIZE"
go run ./tools/gengraph -out "$SRC" -bytes "$SIZE" >&2
log "go run ./tools/gengraph -out $W/alt/changed -bytes $SIZE -change 0.01 -change-seed 7"
go run ./tools/gengraph -out "$W/alt/changed" -bytes "$SIZE" -change 0.01 -change-seed 7 >&2
filesum() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d\n", s}'; }
rec data_bytes "$(filesum "$SRC")"
rec data_files "$(find "$SRC" -type f | wc -l)"
n=0
for f in "$SRC"/*; do cmp -s "$f" "$W/alt/changed/$(basename "$f")" || n=$((n + 1)); done
rec changed_files_differ "$n"

# --- page cache ----------------------------------------------------------------
if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	DROP=1
	rec cache "cold: page cache dropped before every timed phase"
else
	DROP=
	rec cache "warm: the page cache cannot be dropped here, the source is read from memory"
fi
settle() {
	sync
	if [ -n "$DROP" ]; then echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi
}

# --- the tools' environments ---------------------------------------------------
unset STRATA_INSECURE_TEST_KDF STRATA_PASSWORD_FILE STRATA_PASSWORD_COMMAND STRATA_NO_CACHE \
	STRATA_JSON STRATA_QUIET RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND RESTIC_CACHE_DIR 2>/dev/null || true
export RESTIC_REPOSITORY="$W/restic-repo" RESTIC_PASSWORD="bench password"
export STRATA_REPOSITORY="$W/strata-repo" STRATA_PASSWORD="bench password" STRATA_CACHE_DIR="$W/strata-cache"
# tool TOOL ARGS...: runs restic (with its cache in the work directory) or
# strata; timed TOOL ARGS... does the same under /usr/bin/time, which runs
# programs, not shell functions.
tool() {
	_t=$1
	shift
	if [ "$_t" = restic ]; then restic --cache-dir "$W/restic-cache" "$@"; else "$STRATA" "$@"; fi
}
timed() {
	_t=$1 _tf=$2
	shift 2
	if [ "$_t" = restic ]; then
		/usr/bin/time -f '%e %M %U %S' -o "$_tf" restic --cache-dir "$W/restic-cache" "$@"
	else
		/usr/bin/time -f '%e %M %U %S' -o "$_tf" "$STRATA" "$@"
	fi
}

# run TOOL PHASE ARGS...: runs the tool under /usr/bin/time after settle;
# records TOOL_PHASE_secs and TOOL_PHASE_rss_kib; output in
# logs/TOOL_PHASE.{out,err}.
run() {
	tool=$1 phase=$2
	shift 2
	settle
	log "$tool $*"
	if ! timed "$tool" "$W/logs/${tool}_$phase.time" "$@" \
		>"$W/logs/${tool}_$phase.out" 2>"$W/logs/${tool}_$phase.err"; then
		cat "$W/logs/${tool}_$phase.err" >&2
		die "$tool $phase failed (logs in $W/logs)"
	fi
	read -r secs rss usr sys <"$W/logs/${tool}_$phase.time"
	rec "${tool}_${phase}_secs" "$secs"
	rec "${tool}_${phase}_rss_kib" "$rss"
	rec "${tool}_${phase}_cpu_secs" "$(echo "$usr $sys" | awk '{printf "%.2f", $1 + $2}')"
}
reposize() { filesum "$W/$1-repo"; }

# order K: the two tools in the order for the K-th phase of this round; it
# alternates from phase to phase and from round to round.
order() { if [ $((($1 + ROUND) % 2)) = 0 ]; then echo "restic strata"; else echo "strata restic"; fi; }

# one_round: fresh repositories and caches, then the phases.
one_round() {
	rm -rf "$W/restic-repo" "$W/strata-repo" "$W/restic-cache" "$W/strata-cache"
	mkdir -p "$W/restic-cache" "$W/strata-cache"
	log "round $ROUND of $ROUNDS: initialising the repositories (untimed)"
	tool restic init >"$W/logs/restic_init.out" 2>&1 || {
		cat "$W/logs/restic_init.out" >&2
		die "restic init failed"
	}
	tool strata init >"$W/logs/strata_init.out" 2>&1 || {
		cat "$W/logs/strata_init.out" >&2
		die "strata init failed"
	}
	for t in restic strata; do rec "${t}_empty_bytes" "$(reposize $t)"; done

	# (a) first backup
	for t in $(order 1); do
		run $t backup1 backup --json "$SRC"
		rec "${t}_after1_bytes" "$(reposize $t)"
		rec "${t}_after1_du" "$(du -sb "$W/$t-repo" | cut -f1)"
	done
	s_snap1=$(python3 $R snapshot-id "$W/logs/strata_backup1.out")
	r_snap1=$(python3 $R snapshot-id "$W/logs/restic_backup1.out")

	# (b) unchanged re-backup
	for t in $(order 2); do
		run $t backup2 backup --json "$SRC"
		rec "${t}_after2_bytes" "$(reposize $t)"
		rec "${t}_added2_bytes" "$(($(reposize $t) - $(grep "^${t}_after1_bytes=" "$RES" | cut -d= -f2)))"
	done

	# fixed cost of one command: open the repository, derive the key, list
	for t in $(order 3); do
		run $t snapshots snapshots --json
	done

	# (c) 1% of the records changed, renamed into place at the same path
	mv "$SRC" "$W/alt/orig"
	mv "$W/alt/changed" "$SRC"
	for t in $(order 4); do
		run $t backup3 backup --json "$SRC"
		rec "${t}_after3_bytes" "$(reposize $t)"
		rec "${t}_added3_bytes" "$(($(reposize $t) - $(grep "^${t}_after2_bytes=" "$RES" | cut -d= -f2)))"
	done
	mv "$SRC" "$W/alt/changed"
	mv "$W/alt/orig" "$SRC"

	# (d) restore of the first snapshot, compared with the source
	(cd "$SRC" && find . -type f | sort) >"$W/logs/src.list"
	for t in $(order 5); do
		if [ $t = strata ]; then snap=$s_snap1; else snap=$r_snap1; fi
		rm -rf "$W/restore-$t"
		run $t restore restore "$snap" --target "$W/restore-$t"
		got=$W/restore-$t$SRC
		[ -d "$got" ] || die "$t restore: $got missing"
		(cd "$got" && find . -type f | sort) >"$W/logs/$t.list"
		cmp -s "$W/logs/src.list" "$W/logs/$t.list" || die "$t restore: the file list differs from the source's"
		while read -r f; do
			cmp "$SRC/$f" "$got/$f" >&2 || die "$t restore: $f differs from the source"
		done <"$W/logs/src.list"
		rec "${t}_restore_verified" "cmp: $(wc -l <"$W/logs/src.list") files identical"
		rm -rf "$W/restore-$t"
	done

	# what the tools say they added, for reference
	for t in restic strata; do
		for p in backup1 backup2 backup3; do
			python3 $R reported "$W/logs/${t}_$p.out" $t $p >>"$RES"
		done
	done
	mkdir -p "$W/logs/round$ROUND"
	mv "$W"/logs/restic_* "$W"/logs/strata_* "$W/logs/round$ROUND/"
}

MAIN_RES=$RES
ROUND=1
while [ "$ROUND" -le "$ROUNDS" ]; do
	RES=$W/round$ROUND.txt
	: >"$RES"
	one_round
	ROUND=$((ROUND + 1))
done
RES=$MAIN_RES
python3 $R merge "$W" "$ROUNDS" >>"$RES"
cleanup
log "tool runs done"

# --- the Go heap benchmark -------------------------------------------------------
if [ "${BENCH_SKIP_HEAP:-}" != 1 ]; then
	log "go test -run '^\$' -bench BenchmarkBackupHeapLargeIndex -benchtime 1x ./repo/"
	if go test -run '^$' -bench BenchmarkBackupHeapLargeIndex -benchtime 1x -timeout 10m ./repo/ >"$W/logs/heap.out" 2>&1; then
		cat "$W/logs/heap.out" >&2
		python3 $R heap "$W/logs/heap.out" >>"$RES"
	else
		cat "$W/logs/heap.out" >&2
		log "the heap benchmark FAILED (logs/heap.out); going on without it"
		rec heap_failed 1
	fi
fi
rec total_secs "$(($(date +%s) - T0))"
rec loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# --- table and docs ---------------------------------------------------------------
if [ "${BENCH_NO_DOCS:-}" = 1 ]; then
	python3 bench/report.py "$RES"
else
	python3 bench/report.py "$RES" docs/performance.md docs/performance.svg
fi
log "done in $(($(date +%s) - T0)) s; raw figures in $RES, logs in $W/logs"
