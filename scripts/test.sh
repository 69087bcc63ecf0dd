#!/bin/sh
# Install what is missing, build, and run every test:
#   1. gen/ matches proto/
#   2. warnings-as-errors build, all CTests (unit, integration, tmux)
#   3. the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   4. each fuzz target under libFuzzer for FUZZ_SECONDS (default 20)
# Build trees go to build-test/, build-asan/, build-fuzz/.
# Environment: SKIP_ASAN=1, SKIP_FUZZ=1 to leave a stage out (CI does not).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${FUZZ_SECONDS:-20}
start=$(date +%s)

stage() { printf '\n=== %s (%ss)\n' "$1" "$(($(date +%s) - start))"; }

stage "dependencies"
scripts/deps.sh test

stage "generated code is up to date"
scripts/gen-proto.sh --check

run_suite() { # dir, cmake args...
	dir=$1
	shift
	cmake -S "$top" -B "$dir" -DCHAT_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$jobs"
	(cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 300)
}

stage "build with -Werror and run every test"
run_suite "$top/build-test" -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [ "${SKIP_ASAN:-0}" != 1 ]; then
	stage "ASan + UBSan build and every test"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=suppressions=$top/tests/lsan.supp \
		run_suite "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCHAT_SANITIZE=ON
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
	stage "fuzz targets, ${fuzz_seconds}s each"
	CC=clang cmake -S "$top" -B "$top/build-fuzz" -DCHAT_FUZZ=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$top/build-fuzz" -j"$jobs"
	for f in "$top"/build-fuzz/*/fuzz_* "$top"/build-fuzz/*/*/fuzz_*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		case "$f" in *_replay) continue ;; esac
		name=$(basename "$f" | sed 's/^fuzz_//')
		work=$(mktemp -d)
		echo "fuzz $name"
		"$f" -max_total_time="$fuzz_seconds" -print_final_stats=0 \
			"$work" "$top/tests/fuzz/corpus/$name" >"$work.log" 2>&1 || {
			tail -40 "$work.log"
			echo "fuzz target $name failed" >&2
			exit 1
		}
		rm -rf "$work" "$work.log"
	done
fi

stage "all tests passed"
