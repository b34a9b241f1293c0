#!/bin/sh
# make bench: strata against restic on ~1 GiB of generated graph export.
#
# For each tool, on the same data, with a fresh local repository and a fresh
# cache: first backup (wall time, peak RSS, repository size), unchanged
# re-backup (bytes added), `snapshots` (fixed cost of one command), backup
# of a 1%-changed version of the same files (bytes added), restore of the
# first snapshot (wall time, peak RSS, cmp against the source), `check
# --read-data` of the repository (wall time, peak RSS), then many small
# files (BENCH_SMALL_FILES, default 20,000, of 20-30 export lines each):
# first backup, unchanged re-backup and restore. The two
# tools run interleaved, phase by phase, in alternating order, so machine
# noise hits both alike. Beside each backup phase, strata backs the same
# export up as three graph tiers (--tier fast=... --tier warm=... --tier
# cold=...) into a third repository: the first export, a line-shuffled copy
# of it (the same graph) and the 1%-changed export, whose snapshot it then
# verifies (strata verify latest). Then, once, graph-tier
# restore with 8 delta layers against the same final graph stored as one
# base (BENCH_LAYERS_SIZE, default 200MiB), and the Go benchmarks
# BenchmarkPipelineStage (each backup stage's rate on one core, over the
# export's largest file: the pipeline's ceiling) and
# BenchmarkBackupHeapLargeIndex (peak heap of a backup against a repository
# holding BENCH_HEAP_BLOBS=10,000,000 blobs vs an empty one; median of
# BENCH_HEAP_COUNT=3 runs). Point-in-time recovery, strata only, once (see
# the section below):
# RPO of `oplog push --follow`, push and replay throughput of a
# 1,000,000-record log over the export, and `snapshot synthesize` against a
# graph-tier backup of the same 1% change. Then the 1% change again on a
# real graph, the LDBC SNB test set with its update streams, when
# ../shared/data has it (bench/ldbc.sh). Prints the tables, with the
# summary "Targets (issue 8)", and rewrites the results section of
# docs/performance.md and docs/performance.svg.
#
# Environment: BENCH_SIZE (default 1GiB); BENCH_LAYERS_SIZE (default
# 200MiB); BENCH_LAYERS_REPS (restores of each kind, default 5);
# BENCH_HEAP_COUNT (default 3); BENCH_HEAP_BLOBS (blobs in the large
# repository's index, default 10000000); BENCH_SKIP_CEILING=1 skips
# BenchmarkPipelineStage; BENCH_WORK (work directory; default
# bench/work, or /tmp/strata-bench when only /tmp has room);
# BENCH_ROUNDS=N repeats the tool phases N times with fresh repositories
# (default 3; the figures are the medians: one round's wall times swing by
# a third on a shared machine); BENCH_KEEP=1 keeps the data
# and repositories; BENCH_SKIP_GRAPH=1 skips the graph-tier phases and
# BENCH_SKIP_LAYERS=1 the layered restore; BENCH_SKIP_LDBC=1 the real-graph
# phase, whose data BENCH_LDBC_DATA names; BENCH_SKIP_HEAP=1 skips the Go
# benchmark; BENCH_SKIP_PITR=1 the point-in-time recovery phase, whose size
# BENCH_PITR_RECORDS (default 1000000), BENCH_PITR_REPS (restores of each
# kind, default 5) and BENCH_RPO_SAMPLES (default 30) set; BENCH_PITR_CHECK=1
# also checks restore --lsn against ../shared/tools/graphref.py (small runs
# only); BENCH_SMALL_FILES=0 skips the small-files phase; BENCH_NO_DOCS=1
# prints the table without touching docs/.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZE=${BENCH_SIZE:-1GiB}
LSIZE=${BENCH_LAYERS_SIZE:-200MiB}
LREPS=${BENCH_LAYERS_REPS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
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
# Room for three data sets (export, shuffled, 1%-changed), three
# repositories, a restore and the graph sort's spill files: ~8x the data;
# the layered-restore phase needs ~5x its own, smaller, data.
avail_kb() { df -Pk "$1" 2>/dev/null | awk 'NR==2 {print $4}'; }
# The PITR phase adds two copies of the graph repository, restores (two
# at a time) and the mutation logs (~260 bytes a record, twice).
PITR=1
[ "${BENCH_SKIP_PITR:-}" != 1 ] || PITR=
PRECORDS=${BENCH_PITR_RECORDS:-1000000}
PREPS=${BENCH_PITR_REPS:-5}
RPO_SAMPLES=${BENCH_RPO_SAMPLES:-30}
need_kb=$(($(python3 $R size "$SIZE") / 1024 * 8 + $(python3 $R size "$LSIZE") / 1024 * 5 + 1))
[ -z "$PITR" ] || need_kb=$((need_kb + $(python3 $R size "$SIZE") / 1024 * 3 + PRECORDS / 2))
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
# cleanup_data: data, repositories, restores; cleanup: also the binaries.
cleanup_data() {
	if [ "${BENCH_KEEP:-}" != 1 ]; then
		rm -rf "$W/data" "$W/alt" "$W/small" "$W/restic-repo" "$W/strata-repo" "$W/graph-repo" \
			"$W/restic-cache" "$W/strata-cache" "$W/graph-cache" "$W/restore-restic" "$W/restore-strata" \
			"$W/layers" "$W/layers-repo" "$W/flat-repo" "$W/layers-cache" "$W/flat-cache" \
			"$W/restore-layers" "$W/restore-flat" "$W/tmp" \
			"$W/pitr" "$W/rpo-repo" "$W/rpo-cache" "$W/pitr-repo" "$W/pitr-cache" "$W/synth-repo" "$W/synth-cache" \
			"$W/chg-repo" "$W/chg-cache" "$W/restore-plain" "$W/restore-lsn" "$W/restore-synth" "$W/restore-synth-lsn" \
			"$W/restore-chg" "$W/ldbc"
	fi
}
cleanup() {
	cleanup_data
	[ "${BENCH_KEEP:-}" = 1 ] || rm -rf "$W/bin"
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
rec command "$(env | grep '^BENCH_' | sort | tr '\n' ' ')sh bench/bench.sh"
rec layers_size_arg "$LSIZE"
rec loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
rec rounds "$ROUNDS"

# --- build and data ------------------------------------------------------------
# The tag as the Makefile builds it (no gRPC transport for GCS).
log "go build -tags disable_grpc_modules -o $W/bin/strata ./cmd/strata"
go build -tags disable_grpc_modules -o "$W/bin/strata" ./cmd/strata
STRATA=$W/bin/strata
rec strata "$("$STRATA" version | head -1)"
go build -o "$W/bin/gengraph" ./tools/gengraph
[ -z "$PITR" ] || go build -o "$W/bin/genoplog" ./tools/genoplog
# The Go benchmarks (heap, pipeline ceiling) are compiled now, so that the
# whole run measures the same source even when commits land while it runs.
CEILING=1
[ "${BENCH_SKIP_CEILING:-}" != 1 ] || CEILING=
HEAP_BLOBS=${BENCH_HEAP_BLOBS:-10000000}
if [ -n "$CEILING" ] || [ "${BENCH_SKIP_HEAP:-}" != 1 ]; then
	log "go test -c -tags disable_grpc_modules -o $W/bin/repo.test ./repo/"
	go test -c -tags disable_grpc_modules -o "$W/bin/repo.test" ./repo/
fi

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
# largest DIR: the path of DIR's largest file.
largest() { find "$1" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-; }
rec data_bytes "$(filesum "$SRC")"
rec data_files "$(find "$SRC" -type f | wc -l)"
n=0
for f in "$SRC"/*; do cmp -s "$f" "$W/alt/changed/$(basename "$f")" || n=$((n + 1)); done
rec changed_files_differ "$n"
# The same graph with every file's lines in another order (a fixed seed):
# what an export job gives when the database walks its store differently.
if [ "${BENCH_SKIP_GRAPH:-}" != 1 ]; then
	log "python3 $R shuffle $SRC $W/alt/shuffled 1 (every file's lines, fixed seed)"
	python3 $R shuffle "$SRC" "$W/alt/shuffled" 1
	rec shuffled_bytes "$(filesum "$W/alt/shuffled")"
	n=0
	for f in "$SRC"/*; do cmp -s "$f" "$W/alt/shuffled/$(basename "$f")" || n=$((n + 1)); done
	rec shuffled_files_differ "$n"
fi
# Many small files (the export's own lines, 20-30 a file, in 100
# directories) in a directory of their own, so that the big export's
# parent directory never changes.
SMALL_N=${BENCH_SMALL_FILES:-20000}
SMALL=
if [ "$SMALL_N" != 0 ]; then
	SMALL=$W/small/files
	rm -rf "$W/small"
	big=$(largest "$SRC")
	log "python3 $R smallfiles $big $SMALL $SMALL_N"
	python3 $R smallfiles "$big" "$SMALL" "$SMALL_N"
	rec small_files "$SMALL_N"
	rec small_bytes "$(filesum "$SMALL")"
fi
mkdir -p "$W/tmp"

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
# Graph-tier sorts spill into the work directory, not /tmp (the Go
# benchmark below gets the caller's TMPDIR back).
ORIG_TMPDIR=${TMPDIR-}
export TMPDIR="$W/tmp"
# tool TOOL ARGS...: runs restic (with its cache in the work directory) or
# strata; timed TOOL ARGS... does the same under /usr/bin/time, which runs
# programs, not shell functions. Tools other than restic and strata are
# strata on their own repository and cache, $W/TOOL-repo and $W/TOOL-cache:
# graph (graph-tier backups of the same exports), layers and flat (the
# layered-restore phase).
tool() {
	_t=$1
	shift
	case $_t in
	restic) restic --cache-dir "$W/restic-cache" "$@" ;;
	strata) "$STRATA" "$@" ;;
	*) STRATA_REPOSITORY="$W/$_t-repo" STRATA_CACHE_DIR="$W/$_t-cache" "$STRATA" "$@" ;;
	esac
}
timed() {
	_t=$1 _tf=$2
	shift 2
	case $_t in
	restic) /usr/bin/time -f '%e %M %U %S' -o "$_tf" restic --cache-dir "$W/restic-cache" "$@" ;;
	strata) /usr/bin/time -f '%e %M %U %S' -o "$_tf" "$STRATA" "$@" ;;
	*)
		STRATA_REPOSITORY="$W/$_t-repo" STRATA_CACHE_DIR="$W/$_t-cache" \
			/usr/bin/time -f '%e %M %U %S' -o "$_tf" "$STRATA" "$@"
		;;
	esac
}
# tiers DIR: the three --tier flags for the export in DIR.
tiers() { echo "--tier fast=$1/fast.jsonl --tier warm=$1/warm.jsonl --tier cold=$1/cold.jsonl"; }
# layers TOOL: each tier's layer count in the latest snapshot, "cold:N fast:N warm:N".
layers() { tool "$1" cat snapshot latest | python3 $R layers; }
GRAPH=1
[ "${BENCH_SKIP_GRAPH:-}" != 1 ] || GRAPH=

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
	case $tool in restic) _p=restic ;; *) _p=strata ;; esac
	rec "${tool}_${phase}_cmd" "$(echo "$_p $*" | sed "s|$W/|\$W/|g")"
	rec "${tool}_${phase}_secs" "$secs"
	rec "${tool}_${phase}_rss_kib" "$rss"
	rec "${tool}_${phase}_cpu_secs" "$(echo "$usr $sys" | awk '{printf "%.2f", $1 + $2}')"
}
reposize() { filesum "$W/$1-repo"; }

# order K: the two tools in the order for the K-th phase of this round; it
# alternates from phase to phase and from round to round.
order() { if [ $((($1 + ROUND) % 2)) = 0 ]; then echo "restic strata"; else echo "strata restic"; fi; }

# ceiling: BenchmarkPipelineStage (repo/bench_ceiling_test.go, compiled at
# the start) on the export's largest file, once (-benchtime 1x: the read
# stage reads the file once, after the cache drop), on one core (-cpu 1):
# read, chunk, hash, compress, encrypt and write, each in raw bytes per
# second. It runs in every round, right after that round's first backups,
# so that each stage's median over the rounds is measured beside the
# backups it is compared with: once per run, a single pass put one run's
# compress stage at 254 MB/s and the next one's at 369 MB/s, and the
# backup's share of the ceiling swung from 84% to 56% with it. The report
# computes the ceiling, nproc / sum(1 / median rate), and strata's median
# first-backup throughput against it.
ceiling() {
	[ -n "$CEILING" ] || return 0
	big=$(largest "$SRC")
	rec ceiling_file "$(basename "$big")"
	rec ceiling_cmd "STRATA_BENCH_CEILING_FILE=\$SRC/$(basename "$big") STRATA_BENCH_CEILING_DIR=\$W/tmp repo.test -test.bench BenchmarkPipelineStage -test.benchtime 1x -test.cpu 1"
	settle
	log "go test -run '^\$' -bench BenchmarkPipelineStage -benchtime 1x -cpu 1 ./repo/ on $big (compiled at the start)"
	if (cd repo && STRATA_BENCH_CEILING_FILE="$big" STRATA_BENCH_CEILING_DIR="$W/tmp" "$W/bin/repo.test" -test.run '^$' \
		-test.bench '^BenchmarkPipelineStage$' -test.benchtime 1x -test.cpu 1 -test.v -test.timeout 30m) >"$W/logs/ceiling$ROUND.out" 2>&1 &&
		python3 $R ceiling "$W/logs/ceiling$ROUND.out" >>"$RES"; then
		grep -E '^BenchmarkPipelineStage/|bench_ceiling_test' "$W/logs/ceiling$ROUND.out" >&2 || true
	else
		cat "$W/logs/ceiling$ROUND.out" >&2
		log "the pipeline benchmark FAILED (logs/ceiling$ROUND.out); going on without it"
		rec ceiling_failed 1
	fi
}

# one_round: fresh repositories and caches, then the phases.
one_round() {
	rm -rf "$W/restic-repo" "$W/strata-repo" "$W/graph-repo" "$W/restic-cache" "$W/strata-cache" "$W/graph-cache"
	mkdir -p "$W/restic-cache" "$W/strata-cache" "$W/graph-cache"
	log "round $ROUND of $ROUNDS: initialising the repositories (untimed)"
	tool restic init >"$W/logs/restic_init.out" 2>&1 || {
		cat "$W/logs/restic_init.out" >&2
		die "restic init failed"
	}
	tool strata init >"$W/logs/strata_init.out" 2>&1 || {
		cat "$W/logs/strata_init.out" >&2
		die "strata init failed"
	}
	if [ -n "$GRAPH" ]; then
		tool graph init >"$W/logs/graph_init.out" 2>&1 || {
			cat "$W/logs/graph_init.out" >&2
			die "strata init (graph repository) failed"
		}
	fi
	for t in restic strata ${GRAPH:+graph}; do rec "${t}_empty_bytes" "$(reposize $t)"; done

	# (a) first backup
	for t in $(order 1); do
		run $t backup1 backup --json "$SRC"
		rec "${t}_after1_bytes" "$(reposize $t)"
		rec "${t}_after1_du" "$(du -sb "$W/$t-repo" | cut -f1)"
	done
	# (a') the same export as three graph tiers: parsed, sorted, checked,
	# stored as one canonical base per tier
	if [ -n "$GRAPH" ]; then
		# shellcheck disable=SC2046
		run graph backup1 backup --json $(tiers "$SRC")
		rec graph_after1_bytes "$(reposize graph)"
		rec graph_after1_du "$(du -sb "$W/graph-repo" | cut -f1)"
		rec graph_added1_bytes "$(($(reposize graph) - $(grep "^graph_empty_bytes=" "$RES" | cut -d= -f2)))"
		rec graph_layers1 "$(layers graph)"
	fi
	# the pipeline's ceiling, beside the first backups
	ceiling
	s_snap1=$(python3 $R snapshot-id "$W/logs/strata_backup1.out")
	r_snap1=$(python3 $R snapshot-id "$W/logs/restic_backup1.out")

	# (b) unchanged re-backup
	for t in $(order 2); do
		run $t backup2 backup --json "$SRC"
		rec "${t}_after2_bytes" "$(reposize $t)"
		rec "${t}_added2_bytes" "$(($(reposize $t) - $(grep "^${t}_after1_bytes=" "$RES" | cut -d= -f2)))"
	done

	# (b') the same graph, every file's lines shuffled: the canonical form
	# is unchanged, so no layer and (almost) nothing stored
	if [ -n "$GRAPH" ]; then
		# shellcheck disable=SC2046
		run graph backup2 backup --json $(tiers "$W/alt/shuffled")
		rec graph_after2_bytes "$(reposize graph)"
		rec graph_added2_bytes "$(($(reposize graph) - $(grep "^graph_after1_bytes=" "$RES" | cut -d= -f2)))"
		rec graph_layers2 "$(layers graph)"
	fi

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
	# (c') the 1%-changed export as graph tiers: one delta layer per tier
	if [ -n "$GRAPH" ]; then
		# shellcheck disable=SC2046
		run graph backup3 backup --json $(tiers "$SRC")
		rec graph_after3_bytes "$(reposize graph)"
		rec graph_added3_bytes "$(($(reposize graph) - $(grep "^graph_after2_bytes=" "$RES" | cut -d= -f2)))"
		rec graph_layers3 "$(layers graph)"
		# (c'') what a nightly run does next: verify the newest snapshot
		# (its packs read and hashed, a test restore at its cut, the
		# graph check of the restored tiers)
		run graph verify verify --json latest
	fi
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

	# (e) check --read-data of the repository (the three snapshots above):
	# every pack read whole, every blob decrypted, decompressed and hashed.
	# Each tool with its defaults (restic check: a fresh temporary cache;
	# strata check: its cache directory). run fails the bench unless it
	# exits 0.
	for t in $(order 6); do
		rec "${t}_check_du" "$(du -sb "$W/$t-repo" | cut -f1)"
		run $t check check --read-data
	done

	# (f) many small files: first backup (no parent: a path the
	# repository has not seen), unchanged re-backup, restore into a new
	# directory of its own, compared with the source (diff -r). The
	# restores stay until the rounds end: ext4 scans the inodes it freed
	# in the last minutes for every new one, so deleting one tool's
	# 20,000 files just before the other tool restores slows that one.
	if [ -n "$SMALL" ]; then
		for t in $(order 7); do
			run $t small1 backup --json "$SMALL"
		done
		for t in $(order 8); do
			run $t small2 backup --json "$SMALL"
		done
		for t in $(order 9); do
			snap=$(python3 $R snapshot-id "$W/logs/${t}_small1.out")
			dst=$W/small/restore-$t-$ROUND
			run $t smallrestore restore "$snap" --target "$dst"
			diff -r -q "$SMALL" "$dst$SMALL" >&2 || die "$t restore of the small files differs from the source"
			rec "${t}_smallrestore_verified" "diff -r: $SMALL_N files identical"
		done
	fi

	# what the tools say they added, for reference
	for t in restic strata ${GRAPH:+graph}; do
		for p in backup1 backup2 backup3; do
			python3 $R reported "$W/logs/${t}_$p.out" $t $p >>"$RES"
		done
	done
	mkdir -p "$W/logs/round$ROUND"
	mv "$W"/logs/restic_* "$W"/logs/strata_* "$W/logs/round$ROUND/"
	[ -z "$GRAPH" ] || mv "$W"/logs/graph_* "$W/logs/round$ROUND/"
	rm -rf "$W/graph-repo" "$W/graph-cache"
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
rm -rf "$W"/small/restore-*
python3 $R merge "$W" "$ROUNDS" >>"$RES"
rm -rf "$W/alt/shuffled" "$W/restic-repo" "$W/strata-repo" "$W/restic-cache" "$W/strata-cache"
log "tool runs done"

# --- a real graph: the 1% change again, on the LDBC SNB test set -------------------
# (bench/ldbc.sh; skipped, with the reason recorded, without ../shared/data)
if [ "${BENCH_SKIP_LDBC:-}" != 1 ]; then
	log "sh bench/ldbc.sh: bytes for a 1% change of a real graph's records, $ROUNDS rounds"
	sh bench/ldbc.sh "$STRATA" "$W" "$ROUNDS" >>"$RES" 2>"$W/logs/ldbc.err" || {
		cat "$W/logs/ldbc.err" >&2
		die "bench/ldbc.sh failed (logs in $W/logs/ldbc)"
	}
fi

# --- point-in-time recovery (strata only: restic has no mutation log) ----------------
# 1. RPO: `oplog push --follow FILE --json` (default --flush-interval 1s)
#    into a fresh repository, `oplog status --json` polled back to back, and
#    RPO_SAMPLES (30) single-record lines appended at random moments (0.3-2 s
#    apart): time from each append until push's sealed line covers it
#    (durable) and until a status run reports it (visible); bench/rpo.py.
# 2. Replay: the export as graph tiers with a consistent cut at lsn 0 (the
#    PITR base), a plain restore of it before any log exists, then
#    BENCH_PITR_RECORDS (1,000,000) records of a mixed workload
#    (tools/genoplog: updates, inserts, deletes, tier moves, multi-record
#    transactions) pushed in one `oplog push` (records/s), then
#    BENCH_PITR_REPS (5) times, alternating: `restore BASE` and `restore
#    --lsn END` (medians). Replay throughput = records / (PITR restore -
#    plain restore).
# 3. Synthesize: two copies of the base repository. Into one, the log that
#    turns the export into the 1%-changed export (genoplog -changed: one
#    upsert per changed record), `restore --lsn END`, `snapshot synthesize
#    --json` (time, bytes stored, log_bytes) and `restore latest`; into the
#    other, a graph-tier backup of the 1%-changed export (a delta layer on
#    the same base). The three restores must be byte-identical.
if [ -n "$PITR" ]; then
	P=$W/pitr
	rm -rf "$P" "$W/rpo-repo" "$W/rpo-cache" "$W/pitr-repo" "$W/pitr-cache" "$W/synth-repo" "$W/synth-cache" \
		"$W/chg-repo" "$W/chg-cache"
	mkdir -p "$P" "$W/logs/pitr" "$W/rpo-cache" "$W/pitr-cache"
	for t in rpo pitr; do
		tool $t init >"$W/logs/${t}_init.out" 2>&1 || {
			cat "$W/logs/${t}_init.out" >&2
			die "strata init ($t repository) failed"
		}
	done
	rec pitr_records_arg "$PRECORDS"
	rec pitr_reps "$PREPS"

	# 1. RPO, on a small graph's log (the records' content does not matter)
	"$W/bin/gengraph" -out "$P/rpo-graph" -nodes 2000 >&2
	"$W/bin/genoplog" -graph "$P/rpo-graph" -records "$RPO_SAMPLES" -tx-max 1 -out "$P/rpo-src.jsonl" >/dev/null
	settle
	log "rpo: strata oplog push --follow FILE --json; $RPO_SAMPLES lines appended 0.3-2 s apart; oplog status --json in a loop (bench/rpo.py)"
	STRATA_REPOSITORY="$W/rpo-repo" STRATA_CACHE_DIR="$W/rpo-cache" \
		python3 bench/rpo.py "$STRATA" "$P/rpo-src.jsonl" "$P/rpo-follow.jsonl" "$RPO_SAMPLES" 1 "$W/logs/pitr/rpo" >"$P/rpo.txt" ||
		die "the RPO measurement failed (logs in $W/logs/pitr/rpo)"
	cat "$P/rpo.txt" >>"$RES"
	rm -rf "$W/rpo-repo" "$W/rpo-cache"

	# 2. the logs, against the export the rounds backed up
	log "genoplog -graph $SRC -records $PRECORDS -out $P/mixed.jsonl"
	t0=$(date +%s.%N)
	"$W/bin/genoplog" -graph "$SRC" -records "$PRECORDS" -out "$P/mixed.jsonl" | sed 's/^/pitr_log_/' >>"$RES"
	rec pitr_log_gen_secs "$(echo "$t0 $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}')"
	log "genoplog -graph $SRC -changed $W/alt/changed -out $P/diff.jsonl"
	"$W/bin/genoplog" -graph "$SRC" -changed "$W/alt/changed" -out "$P/diff.jsonl" | sed 's/^/synth_src_/' >>"$RES"
	PEND=$(grep '^pitr_log_records=' "$RES" | cut -d= -f2)
	DEND=$(grep '^synth_src_records=' "$RES" | cut -d= -f2)

	# the PITR base: the export as graph tiers, cut at lsn 0
	# shellcheck disable=SC2046
	run pitr base backup --json $(tiers "$SRC") --lsn-start 0 --lsn-end 0
	rec pitr_base_bytes "$(reposize pitr)"
	base=$(python3 $R snapshot-id "$W/logs/pitr_base.out")
	cp -a "$W/pitr-repo" "$W/synth-repo"
	cp -a "$W/pitr-cache" "$W/synth-cache"
	cp -a "$W/pitr-repo" "$W/chg-repo"
	cp -a "$W/pitr-cache" "$W/chg-cache"
	rm -rf "$W/restore-plain"
	run pitr plain0 restore --json "$base" --target "$W/restore-plain"
	rm -rf "$W/restore-plain"

	before=$(reposize pitr)
	run pitr push oplog push --json "$P/mixed.jsonl"
	rec pitr_push_stored_bytes "$(($(reposize pitr) - before))"
	rec pitr_push_segments "$(python3 $R count "$W/logs/pitr_push.out" sealed)"
	python3 $R fields "$W/logs/pitr_push.out" pitr_push records last_lsn >>"$RES"
	[ "$(grep '^pitr_push_last_lsn=' "$RES" | cut -d= -f2)" = "$PEND" ] || die "pitr: push did not store the log up to lsn $PEND"
	run pitr status oplog status --json
	run pitr timeline timeline --json

	rep=1
	while [ $rep -le "$PREPS" ]; do
		if [ $((rep % 2)) = 1 ]; then ks="plain lsn"; else ks="lsn plain"; fi
		for k in $ks; do
			rm -rf "$W/restore-$k"
			if [ $k = plain ]; then
				run pitr plain$rep restore --json "$base" --target "$W/restore-$k"
			else
				run pitr lsn$rep restore --json --lsn "$PEND" --target "$W/restore-$k"
			fi
		done
		rep=$((rep + 1))
	done
	python3 $R fields "$W/logs/pitr_lsn1.out" pitr_lsn records_replayed transactions_replayed lsn bytes_restored >>"$RES"
	python3 $R fields "$W/logs/pitr_plain1.out" pitr_plain bytes_restored >>"$RES"
	[ "$(grep '^pitr_lsn_records_replayed=' "$RES" | cut -d= -f2)" = "$PEND" ] ||
		die "pitr: restore --lsn $PEND did not replay $PEND records (logs/pitr_lsn1.out)"
	if [ "${BENCH_PITR_CHECK:-}" = 1 ] && [ -f "$ROOT/../shared/tools/graphref.py" ]; then
		log "pitr: graphref.py state over the export and the log, compared with restore --lsn $PEND"
		python3 "$ROOT/../shared/tools/graphref.py" state --tier fast="$SRC/fast.jsonl" --tier warm="$SRC/warm.jsonl" \
			--tier cold="$SRC/cold.jsonl" --oplog "$P/mixed.jsonl" --lsn "$PEND" --out "$P/ref" >&2 &&
			python3 "$ROOT/../shared/tools/graphref.py" compare "$P/ref" "$W/restore-lsn" >&2 ||
			die "pitr: restore --lsn $PEND differs from graphref.py's state"
		rec pitr_lsn_verified "graphref.py compare: restore --lsn $PEND equals the reference state"
		rm -rf "$P/ref"
	fi
	rm -rf "$W/restore-plain" "$W/restore-lsn"
	for k in plain lsn; do python3 $R median pitr $k "$RES" >>"$RES"; done

	# 3. synthesize against a graph-tier backup of the same change
	before=$(reposize synth)
	run synth push oplog push --json "$P/diff.jsonl"
	rec synth_push_stored_bytes "$(($(reposize synth) - before))"
	rm -rf "$W/restore-synth-lsn" "$W/restore-synth"
	run synth lsn restore --json --lsn "$DEND" --target "$W/restore-synth-lsn"
	before=$(reposize synth)
	run synth synthesize snapshot synthesize --json
	rec synth_added_bytes "$(($(reposize synth) - before))"
	python3 $R fields "$W/logs/synth_synthesize.out" synth changed records transactions bytes_stored log_bytes lsn duration_seconds >>"$RES"
	rec synth_layers "$(layers synth)"
	run synth restore restore --json latest --target "$W/restore-synth"
	for f in fast warm cold; do
		cmp "$W/restore-synth/$f.jsonl" "$W/restore-synth-lsn/$f.jsonl" >&2 ||
			die "synthesize: restore latest differs from restore --lsn $DEND in $f"
	done
	rm -rf "$W/restore-synth"
	before=$(reposize chg)
	# shellcheck disable=SC2046
	run chg backup backup --json $(tiers "$W/alt/changed")
	rec chg_added_bytes "$(($(reposize chg) - before))"
	python3 $R reported "$W/logs/chg_backup.out" chg backup >>"$RES"
	rec chg_layers "$(layers chg)"
	rm -rf "$W/restore-chg"
	run chg restore restore --json latest --target "$W/restore-chg"
	for f in fast warm cold; do
		cmp "$W/restore-chg/$f.jsonl" "$W/restore-synth-lsn/$f.jsonl" >&2 ||
			die "synthesize: the backup of the changed export restores $f differently from restore --lsn $DEND"
	done
	rec synth_verified "cmp: restore latest after synthesize = restore --lsn $DEND = restore of a backup of the changed export (3 tiers)"
	rm -rf "$W/restore-chg" "$W/restore-synth-lsn"
	mv "$W"/logs/pitr_* "$W"/logs/synth_* "$W"/logs/chg_* "$W"/logs/rpo_* "$W/logs/pitr/" 2>/dev/null || true
	rm -rf "$P" "$W/pitr-repo" "$W/pitr-cache" "$W/synth-repo" "$W/synth-cache" "$W/chg-repo" "$W/chg-cache"
	log "pitr done"
fi
rm -rf "$W/alt"

# --- graph tiers: restore with 8 delta layers vs one base ----------------------------
# A smaller graph (BENCH_LAYERS_SIZE): a base and eight successive versions,
# each with 1% of its records changed (gengraph -change-seed 1..8; each
# version differs from the one before by ~2% of records, the 1% it changes
# and the 1% the one before changed), backed up into one repository: eight
# delta layers per tier, each checked with `strata cat snapshot latest`.
# The final version is also backed up into a fresh repository, where it is
# one base. Then each repository's latest snapshot is restored
# BENCH_LAYERS_REPS (5) times, alternating, page cache dropped each time
# (median), and the two
# restores are compared with each other and with gengraph's canonical form.
# Last, a ninth version goes into the layered repository: past 8 layers it
# must be stored as a fresh base.
if [ -n "$GRAPH" ] && [ "${BENCH_SKIP_LAYERS:-}" != 1 ]; then
	L=$W/layers
	rm -rf "$L" "$W/layers-repo" "$W/flat-repo" "$W/layers-cache" "$W/flat-cache"
	mkdir -p "$L" "$W/layers-cache" "$W/flat-cache"
	for t in layers flat; do
		tool $t init >"$W/logs/${t}_init.out" 2>&1 || {
			cat "$W/logs/${t}_init.out" >&2
			die "strata init ($t repository) failed"
		}
	done
	gen() { # gen DIR [CHANGE-SEED]: the layers phase's graph, version CHANGE-SEED
		rm -rf "$1"
		if [ $# = 1 ]; then
			"$W/bin/gengraph" -out "$1" -bytes "$LSIZE" >&2
		else
			"$W/bin/gengraph" -out "$1" -bytes "$LSIZE" -change 0.01 -change-seed "$2" >&2
		fi
	}
	log "layers: gengraph -out $L/v -bytes $LSIZE [-change 0.01 -change-seed K], K = 1..8 (go build ./tools/gengraph)"
	gen "$L/v"
	rec layers_data_bytes "$(filesum "$L/v")"
	# shellcheck disable=SC2046
	rec layers_empty_bytes "$(reposize layers)"
	run layers backup0 backup --json $(tiers "$L/v")
	rec layers_base_stored_bytes "$(($(reposize layers) - $(grep "^layers_empty_bytes=" "$RES" | cut -d= -f2)))"
	k=1
	while [ $k -le 8 ]; do
		gen "$L/v" $k
		# shellcheck disable=SC2046
		run layers backup$k backup --json $(tiers "$L/v")
		got=$(layers layers)
		[ "$got" = "cold:$k fast:$k warm:$k" ] || die "layers: after backup $k of a changed version the tiers have layers $got, want $k each"
		k=$((k + 1))
	done
	rec layers_count "$(layers layers)"
	rec layers_layer_bytes "$(tool layers cat snapshot latest | python3 $R layer-bytes)"
	rec layers_repo_bytes "$(reposize layers)"
	rec layers_final_data_bytes "$(filesum "$L/v")"
	# shellcheck disable=SC2046
	run flat backup0 backup --json $(tiers "$L/v")
	rec flat_layers "$(layers flat)"
	rec flat_repo_bytes "$(reposize flat)"
	log "layers: gengraph -out $L/canon -bytes $LSIZE -change 0.01 -change-seed 8 -canonical"
	rm -rf "$L/canon"
	"$W/bin/gengraph" -out "$L/canon" -bytes "$LSIZE" -change 0.01 -change-seed 8 -canonical >&2
	rep=1
	while [ $rep -le "$LREPS" ]; do
		if [ $((rep % 2)) = 0 ]; then ts="flat layers"; else ts="layers flat"; fi
		for t in $ts; do
			rm -rf "$W/restore-$t"
			run $t restore$rep restore latest --target "$W/restore-$t"
		done
		for f in fast warm cold; do
			cmp "$W/restore-layers/$f.jsonl" "$W/restore-flat/$f.jsonl" >&2 ||
				die "layers: $f restored from 8 layers differs from $f restored from one base"
			cmp "$W/restore-flat/$f.jsonl" "$L/canon/$f.jsonl" >&2 ||
				die "layers: the restored $f differs from gengraph -canonical"
		done
		rep=$((rep + 1))
	done
	rec layers_restore_bytes "$(filesum "$W/restore-layers")"
	rec layers_restore_reps "$LREPS"
	rec layers_restore_verified "cmp: 3 tiers identical from 8 layers, from one base and from gengraph -canonical, $LREPS times"
	rm -rf "$W/restore-layers" "$W/restore-flat" "$L/canon"
	python3 $R median layers restore "$RES" >>"$RES"
	python3 $R median flat restore "$RES" >>"$RES"
	# the ninth version: the tiers have 8 layers, so this one is a fresh base
	gen "$L/v" 9
	before=$(reposize layers)
	# shellcheck disable=SC2046
	run layers backup9 backup --json $(tiers "$L/v")
	rec layers_count_after9 "$(layers layers)"
	rec layers_added9_bytes "$(($(reposize layers) - before))"
	for p in backup0 backup1 backup8 backup9; do python3 $R reported "$W/logs/layers_$p.out" layers $p >>"$RES"; done
	mkdir -p "$W/logs/layers"
	mv "$W"/logs/layers_* "$W"/logs/flat_* "$W/logs/layers/" 2>/dev/null || true
	rm -rf "$L" "$W/layers-repo" "$W/flat-repo" "$W/layers-cache" "$W/flat-cache"
	log "layers done"
fi
cleanup_data

# --- the Go heap benchmark -------------------------------------------------------
if [ "${BENCH_SKIP_HEAP:-}" != 1 ]; then
	if [ -n "$ORIG_TMPDIR" ]; then export TMPDIR="$ORIG_TMPDIR"; else unset TMPDIR; fi
	# The peak counts garbage not yet swept, so it moves with the GC's timing
	# (+-15% from run to run): the figures are the medians of HEAP_COUNT runs.
	HEAP_COUNT=${BENCH_HEAP_COUNT:-3}
	rec heap_count "$HEAP_COUNT"
	rec heap_blobs_arg "$HEAP_BLOBS"
	rec heap_cmd "STRATA_BENCH_INDEX_BLOBS=$HEAP_BLOBS repo.test -test.bench BenchmarkBackupHeapLargeIndex -test.benchtime 1x -test.count $HEAP_COUNT"
	# A run at 10,000,000 blobs takes about 4 minutes on the reference
	# machine (3.7 of them the cold cache build) and 1.7 GiB of RSS, and
	# leaves ~2 GiB in TMPDIR until it ends; the time limit allows 11
	# minutes a run per 10,000,000 blobs, plus 20.
	heap_min=$((HEAP_COUNT * (HEAP_BLOBS / 1000000 + 1) + 20))
	log "STRATA_BENCH_INDEX_BLOBS=$HEAP_BLOBS go test -run '^\$' -bench BenchmarkBackupHeapLargeIndex -benchtime 1x -count $HEAP_COUNT ./repo/ (compiled at the start)"
	if (cd repo && STRATA_BENCH_INDEX_BLOBS="$HEAP_BLOBS" "$W/bin/repo.test" -test.run '^$' -test.bench BenchmarkBackupHeapLargeIndex \
		-test.benchtime 1x -test.count "$HEAP_COUNT" -test.timeout "${heap_min}m") >"$W/logs/heap.out" 2>&1; then
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
