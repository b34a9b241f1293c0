#!/bin/sh
# make demo: a local repository under ./strata-demo, the bundled sample graph
# backed up, restored and compared. Safe to run again (starts afresh).
set -eu
cd "$(dirname "$0")/.."
D=strata-demo
rm -rf "$D"
mkdir -p "$D"
echo "==> building strata"
go build -o bin/strata ./cmd/strata
S=./bin/strata
export STRATA_REPOSITORY="$D/repo" STRATA_PASSWORD="demo password" STRATA_CACHE_DIR="$D/cache"
echo "==> generating the sample graph (three tiers, APOC JSON Lines) in $D/sample"
go run ./tools/gengraph -out "$D/sample" -nodes 20000
echo "==> strata init"
$S init
echo "==> strata backup $D/sample --tag demo"
$S backup "$D/sample" --tag demo
echo "==> strata backup again: unchanged files are not read, next to nothing is stored"
$S backup "$D/sample" --tag demo
echo "==> strata snapshots"
$S snapshots
echo "==> strata restore latest --target $D/restore --verify"
$S restore latest --target "$D/restore" --verify
ABS=$(cd "$D/sample" && pwd)
if diff -r "$D/sample" "$D/restore$ABS" >/dev/null; then
  echo "==> restored files are identical to the sample ($(du -sh "$D/sample" | cut -f1)); repository: $(du -sh "$D/repo" | cut -f1)"
else
  echo "==> restored files DIFFER from the sample" >&2
  exit 1
fi
echo "Done. Try: STRATA_REPOSITORY=$D/repo STRATA_PASSWORD='demo password' ./bin/strata ls latest"
