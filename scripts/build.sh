#!/bin/sh
# Configure and build into BUILD_DIR (default ./build).
# Extra arguments go to cmake's configure step (e.g. -DCHAT_WERROR=ON).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${BUILD_DIR:-$top/build}
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$top" -B "$dir" "$@" >/dev/null
cmake --build "$dir" -j"$jobs"
