#!/bin/sh
# Regenerate gen/ from proto/ with protoc-c. With --check, only report
# whether gen/ is stale (exit 1) without touching it.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$top/proto" && protoc-c --c_out="$tmp" $(find . -name '*.proto' | sort))
if [ "${1:-}" = "--check" ]; then
  for f in "$tmp"/*.pb-c.[ch]; do
    b=$(basename "$f")
    if ! cmp -s "$f" "$top/gen/$b"; then
      echo "gen/$b is stale: run scripts/gen-proto.sh" >&2
      exit 1
    fi
  done
  for f in "$top"/gen/*.pb-c.[ch]; do
    [ -e "$tmp/$(basename "$f")" ] || { echo "gen/$(basename "$f") has no .proto" >&2; exit 1; }
  done
  echo "gen/ is up to date"
  exit 0
fi
rm -f "$top"/gen/*.pb-c.[ch]
cp "$tmp"/*.pb-c.[ch] "$top/gen/"
echo "regenerated gen/"
