#!/bin/sh
# bench/drill.sh: reproduce the measurements of docs/runbook.md.
#
# Builds strata, generates a 1 GiB graph export (tools/gengraph) and a day of
# mutation log (tools/genoplog: DRILL_RECORDS records DRILL_STEP apart,
# default 864000 x 100ms = 24 h at 10 records/s), backs the export up as
# three graph tiers with a cut at lsn 0, pushes the log, mirrors the
# repository to a second local directory, then runs
#   strata drill --scenario all --from MIRROR --targets latest,-2h,-30m,-2m
#   strata drill --scenario total-loss --fetch-first --from MIRROR
# Every step is timed (wall seconds) into $W/times.txt; tool output goes to
# $W/logs/, the drill reports to $W/drill*.md and $W/drill*.json.
#
# Knobs (environment): DRILL_SIZE (default 1GiB), DRILL_RECORDS (864000),
# DRILL_STEP (100ms), DRILL_START (first record's ts; default 24 h
# and 1 min ago, so the log ends about now), DRILL_WORK (default bench/work/drill),
# DRILL_TEST_KDF=1 (STRATA_INSECURE_TEST_KDF=1: skip the real key
# derivation; default: real KDF), DRILL_KEEP=1 (keep data and repositories).
# Needs about 4x DRILL_SIZE of free disk.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SIZE=${DRILL_SIZE:-1GiB}
RECORDS=${DRILL_RECORDS:-864000}
STEP=${DRILL_STEP:-100ms}
# the log's first record: by default so that the day of log ends about now
# (drill's -2h/-30m/-2m targets count back from min(now, newest mutation))
START=${DRILL_START:-$(date -u -d '-24 hours -1 minute' +%Y-%m-%dT%H:%M:%SZ)}
W=${DRILL_WORK:-$ROOT/bench/work/drill}
BIN=$ROOT/bench/work/bin
mkdir -p "$W/logs" "$BIN"
T=$W/times.txt
: >"$T"

unset STRATA_PASSWORD_FILE STRATA_PASSWORD_COMMAND STRATA_REPOSITORY || true
if [ "${DRILL_TEST_KDF:-}" = 1 ]; then export STRATA_INSECURE_TEST_KDF=1; KDF=test; else unset STRATA_INSECURE_TEST_KDF || true; KDF=real; fi
export STRATA_PASSWORD=drill-password
export STRATA_CACHE_DIR=$W/cache
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR"

now() { date +%s.%N; }
# step NAME CMD...: run CMD, stdout+stderr to logs/NAME.out, wall time to times.txt
step() {
	name=$1; shift
	echo "== $name: $*" >&2
	t0=$(now)
	rc=0
	"$@" >"$W/logs/$name.out" 2>"$W/logs/$name.err" || rc=$?
	t1=$(now)
	secs=$(echo "$t1 $t0" | awk '{printf "%.1f", $1-$2}')
	echo "$name $secs rc=$rc" | tee -a "$T" >&2
	if [ $rc -ne 0 ]; then
		echo "!! $name exited $rc; see $W/logs/$name.err" >&2
		tail -n 20 "$W/logs/$name.err" >&2 || true
	fi
	return 0
}

{
	echo "# machine"
	echo "date: $(date -u +%FT%TZ)"
	echo "nproc: $(nproc)"
	grep -m1 'model name' /proc/cpuinfo || true
	free -g
	df -h "$W"
	go version
	echo "kdf: $KDF"
	echo "load: $(uptime)"
	echo "size: $SIZE records: $RECORDS step: $STEP start: $START"
} >"$W/machine.txt" 2>&1
cat "$W/machine.txt" >&2

S=$BIN/strata
REPO=$W/repo
MIRROR=$W/mirror
SRC=$W/src
LOG=$W/day.jsonl
rm -rf "$REPO" "$MIRROR" "$W/cache"

step build go build -o "$S" ./cmd/strata
go build -o "$BIN/gengraph" ./tools/gengraph
go build -o "$BIN/genoplog" ./tools/genoplog
if [ ! -f "$SRC/cold.jsonl" ] || [ "$(cat "$SRC/.size" 2>/dev/null)" != "$SIZE" ]; then
	rm -rf "$SRC"
	step gengraph "$BIN/gengraph" -out "$SRC" -bytes "$SIZE"
	echo "$SIZE" >"$SRC/.size"
fi
du -sb "$SRC" >>"$W/machine.txt"
step genoplog "$BIN/genoplog" -graph "$SRC" -records "$RECORDS" -step "$STEP" -start "$START" -out "$LOG"
ls -l "$LOG" >>"$W/machine.txt"

step init "$S" -r "$REPO" init
step backup "$S" -r "$REPO" backup --json --tier fast="$SRC/fast.jsonl" --tier warm="$SRC/warm.jsonl" \
	--tier cold="$SRC/cold.jsonl" --lsn-start 0 --lsn-end 0
step push "$S" -r "$REPO" oplog push --json "$LOG"
step timeline "$S" -r "$REPO" timeline
step mirror "$S" -r "$REPO" mirror --to "$MIRROR"
step mirror_status "$S" -r "$REPO" mirror status --to "$MIRROR"
step check "$S" -r "$REPO" check
step check_read_data "$S" -r "$REPO" check --read-data
# restore throughput and replay rate apart, for the extrapolation:
# the snapshot alone, then the snapshot plus the whole day of log
step restore_plain "$S" -r "$REPO" restore latest --target "$W/restore-plain"
rm -rf "$W/restore-plain"
step restore_lsn "$S" -r "$REPO" restore --lsn "$RECORDS" --target "$W/restore-lsn"
step graph_check "$S" graph check "$W/restore-lsn/fast.jsonl" "$W/restore-lsn/warm.jsonl" "$W/restore-lsn/cold.jsonl"
rm -rf "$W/restore-lsn"
step drill_all "$S" -r "$REPO" drill --scenario all --from "$MIRROR" --targets latest,-2h,-30m,-2m \
	--report "$W/drill.md" --json
cp "$W/logs/drill_all.out" "$W/drill.json" 2>/dev/null || true
step drill_fetch_first "$S" -r "$REPO" drill --scenario total-loss --fetch-first --from "$MIRROR" \
	--report "$W/drill-fetch-first.md" --json
cp "$W/logs/drill_fetch_first.out" "$W/drill-fetch-first.json" 2>/dev/null || true
du -sh "$REPO" "$MIRROR" >>"$W/machine.txt"

echo "load at the end: $(uptime)" >>"$W/machine.txt"
echo "== times (s)" >&2
cat "$T" >&2
if [ "${DRILL_KEEP:-}" != 1 ]; then
	rm -rf "$REPO" "$MIRROR" "$LOG" "$W/cache" "$W/tmp" "$SRC"
fi
