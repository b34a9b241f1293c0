#!/bin/sh
# bench/ldbc.sh STRATA WORKDIR ROUNDS: bytes stored for a 1% change of
# records of a real graph, restic against strata. bench/bench.sh runs it
# and appends its KEY=VALUE lines (stdout) to results.txt.
#
# The export of the main rounds is generated: its values are random words
# and numbers, which compress differently from a real graph's. So the row
# "bytes stored for a 1% change" is measured here again on the LDBC SNB
# Interactive test set (../shared/data, with its update streams), when it
# is present:
#   1. ldbc2strata.py turns it into three graph tiers and a mutation log;
#   2. graphref.py writes the tiers canonically at lsn 0 (base) and at lsn
#      N, one hundredth of the tiers' record count (changed): the log's
#      first records, the update streams' inserts, which land in the fast
#      tier, as a graph database's recent activity does;
#   3. per round, fresh repositories: restic and strata back base up as
#      files, then changed at the same path (so the first snapshot is the
#      parent); strata also backs both up as graph tiers. The figure is each
#      tool's repository growth (du -b of the files) over the second backup,
#      median over the rounds (each repository draws its own chunker
#      polynomial, so chunk boundaries, and with them the bytes, differ).
# Without the data or the tools it prints ldbc_skipped=REASON and exits 0.
set -eu
STRATA=$1 W=$2 ROUNDS=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${BENCH_LDBC_DATA:-$ROOT/../shared/data/ldbc-snb-interactive-v1-test}
TOOLS=$ROOT/../shared/tools
if [ ! -d "$DATA/vanilla" ] || [ ! -d "$DATA/update_streams" ]; then
	echo "ldbc_skipped=no LDBC SNB test set at $DATA"
	exit 0
fi
if [ ! -f "$TOOLS/ldbc2strata.py" ] || [ ! -f "$TOOLS/graphref.py" ]; then
	echo "ldbc_skipped=no ldbc2strata.py and graphref.py in $TOOLS"
	exit 0
fi
log() { printf '==> ldbc: %s\n' "$*" >&2; }
sizeof() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d\n", s}'; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }

L=$W/ldbc
LOGS=$W/logs/ldbc
rm -rf "$L" "$LOGS"
mkdir -p "$L" "$LOGS"
log "python3 ldbc2strata.py --data $DATA --out $L/in"
python3 "$TOOLS/ldbc2strata.py" --data "$DATA" --out "$L/in" >"$LOGS/ldbc2strata.out"
records=$(cat "$L/in/cold.jsonl" "$L/in/warm.jsonl" "$L/in/fast.jsonl" | grep -c .)
cut=$((records / 100))
tiers_in="--tier cold=$L/in/cold.jsonl --tier warm=$L/in/warm.jsonl --tier fast=$L/in/fast.jsonl"
log "graphref.py state $tiers_in --oplog oplog.jsonl --lsn 0 / --lsn $cut"
# shellcheck disable=SC2086
python3 "$TOOLS/graphref.py" state $tiers_in --oplog "$L/in/oplog.jsonl" --lsn 0 --out "$L/base" >"$LOGS/base.out"
# shellcheck disable=SC2086
python3 "$TOOLS/graphref.py" state $tiers_in --oplog "$L/in/oplog.jsonl" --lsn "$cut" --out "$L/changed" >"$LOGS/changed.out"
applied=$(sed -n 's/^ *applied: *//p' "$LOGS/changed.out")
echo "ldbc_records=$records"
echo "ldbc_changed_records=${applied:-?}"
echo "ldbc_data_bytes=$(sizeof "$L/base")"
echo "ldbc_changed_bytes=$(sizeof "$L/changed")"
n=0
for f in "$L"/base/*; do cmp -s "$f" "$L/changed/$(basename "$f")" || n=$((n + 1)); done
echo "ldbc_changed_files_differ=$n"

export RESTIC_PASSWORD="bench password" STRATA_PASSWORD="bench password"
SRC=$L/src
# backup TOOL: backs up $SRC into TOOL's repository (graph: as tiers).
backup() {
	case $1 in
	restic) restic -r "$L/restic-repo" --cache-dir "$L/restic-cache" backup --json "$SRC" ;;
	strata) STRATA_REPOSITORY="$L/strata-repo" STRATA_CACHE_DIR="$L/strata-cache" "$STRATA" backup --json "$SRC" ;;
	graph)
		STRATA_REPOSITORY="$L/graph-repo" STRATA_CACHE_DIR="$L/graph-cache" "$STRATA" backup --json \
			--tier fast="$SRC/fast.jsonl" --tier warm="$SRC/warm.jsonl" --tier cold="$SRC/cold.jsonl"
		;;
	esac
}
round=1
while [ "$round" -le "$ROUNDS" ]; do
	for t in restic strata graph; do
		rm -rf "$L/$t-repo" "$L/$t-cache"
		case $t in
		restic) restic -r "$L/restic-repo" --cache-dir "$L/restic-cache" init >"$LOGS/${t}_init.out" 2>&1 ;;
		*) STRATA_REPOSITORY="$L/$t-repo" STRATA_CACHE_DIR="$L/$t-cache" "$STRATA" init >"$LOGS/${t}_init.out" 2>&1 ;;
		esac || {
			cat "$LOGS/${t}_init.out" >&2
			exit 1
		}
		mv "$L/base" "$SRC"
		backup $t >"$LOGS/${t}_first$round.out" 2>&1 || {
			cat "$LOGS/${t}_first$round.out" >&2
			exit 1
		}
		first=$(sizeof "$L/$t-repo")
		mv "$SRC" "$L/base"
		mv "$L/changed" "$SRC"
		backup $t >"$LOGS/${t}_change$round.out" 2>&1 || {
			cat "$LOGS/${t}_change$round.out" >&2
			exit 1
		}
		mv "$SRC" "$L/changed"
		echo "$first" >>"$L/${t}_first"
		echo "$(($(sizeof "$L/$t-repo") - first))" >>"$L/${t}_added"
	done
	round=$((round + 1))
done
for t in restic strata graph; do
	echo "ldbc_${t}_first_bytes=$(median <"$L/${t}_first")"
	echo "ldbc_${t}_added_bytes=$(median <"$L/${t}_added")"
	echo "ldbc_${t}_added_bytes__rounds=$(tr '\n' ' ' <"$L/${t}_added" | sed 's/ $//')"
done
S='$W/ldbc/src'
echo "ldbc_cmd=python3 ldbc2strata.py; graphref.py state --lsn 0 / --lsn $cut; restic backup --json $S; strata backup --json $S; strata backup --json --tier fast=$S/fast.jsonl --tier warm=... --tier cold=... (bench/ldbc.sh)"
rm -rf "$L"
