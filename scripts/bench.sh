#!/bin/sh
# One command per benchmark scenario (docs/BENCHMARKS.md):
#
#   scripts/bench.sh A|B|C|D|E|all [chat-bench flags...]
#
# Builds chatd and chat-bench in Release if needed (BUILD_DIR, default
# build-bench), starts a fresh chatd on free ports with a temporary data
# directory, runs the scenario against it, stops chatd by pid, and prints
# chat-bench's table; the last line is the JSON result. Flags after the
# scenario go to chat-bench and override the presets below (e.g.
# `scripts/bench.sh C --rate 1000 --duration 30`). "all" runs A to E, each
# on its own fresh chatd. F (the fleet) is not available here.
#
# Environment: BUILD_DIR; CHATD_FLAGS (more chatd flags); BENCH_KEEP=1
# keeps the data directory and chatd's log; BENCH_NO_BUILD=1 skips the
# build check.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build-bench}
chatd=$build/svc/chatd/chatd
bench=$build/bench/chat-bench

usage() {
	echo "usage: $0 A|B|C|D|E|all [chat-bench flags...]" >&2
	echo "  (F, C on the fleet, needs the fleet of compose/: not available)" >&2
	exit 2
}

[ $# -ge 1 ] || usage
what=$1
shift
case $what in
A | B | C | D | E | all) ;;
F)
	echo "scenario F (C on the fleet with real Kafka and PostgreSQL) needs" \
		"the fleet of compose/ and is not available yet" >&2
	exit 2
	;;
*) usage ;;
esac

build_if_needed() {
	[ "${BENCH_NO_BUILD:-0}" = 1 ] && return 0
	if [ -x "$chatd" ] && [ -x "$bench" ] &&
		[ -z "$(find "$top/svc" "$top/bench" "$top/client-tui" "$top/proto" \
			"$top/gen" -newer "$bench" \( -name '*.[ch]' -o -name CMakeLists.txt \) \
			2>/dev/null | head -1)" ]; then
		return 0
	fi
	echo "bench.sh: building Release in $build" >&2
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
		--target chatd chat-bench >/dev/null
}

# The presets: the targets of issue 4 on a 2-core box.
#  A: as many idle sessions as one chatd can hold here (its open-files
#     hard limit is 20000; chatd itself needs about 60 descriptors).
#  B: 1000 DM messages/s between 1000 sessions.
#  C: groups of 10, each session in two channels; ramp from 500 sends/s
#     (5000 deliveries/s) until p99 passes 50 ms or a message is lost.
#  D: one channel of 10000 members (connecting 200 a second), one message
#     a second to all of them.
#  E: C at 500 sends/s while 100 more sessions reconnect 100 times a second.
presets() {
	case $1 in
	A) echo "--conns 19900 --duration 10 --settle 3" ;;
	B) echo "--conns 1000 --rate 1000 --duration 20 --warmup 5" ;;
	C) echo "--conns 1000 --rate 500 --ramp --ramp-factor 1.25 --duration 10 --warmup 3" ;;
	D) echo "--conns 10000 --rate 1 --duration 20 --warmup 5 --drain 60 --connect-rate 200 --connect-timeout 900" ;;
	E) echo "--conns 1000 --rate 500 --churn-conns 100 --churn-rate 100 --duration 20 --warmup 5" ;;
	esac
}

pid=
dir=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	pid=
	if [ -n "$dir" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
		rm -rf "$dir"
	fi
	dir=
}
trap cleanup EXIT INT TERM

# run_one X FLAGS...: a fresh chatd, one scenario, chatd stopped.
run_one() {
	s=$1
	shift
	dir=$(mktemp -d /tmp/chat-bench-XXXXXX)
	# A high per-session send limit: the bench measures the server, not
	# its rate limiter (each bench session sends far below it anyway).
	# shellcheck disable=SC2086
	"$chatd" --data-dir "$dir/data" --port 0 --api-port 0 \
		--admin-url tcp://127.0.0.1:0 --ready-file "$dir/ready" \
		--send-rate 1000000 --send-burst 1000000 --log-level warn \
		${CHATD_FLAGS:-} >"$dir/chatd.log" 2>&1 &
	pid=$!
	i=0
	while [ ! -f "$dir/ready" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench.sh: chatd exited during start:" >&2
			cat "$dir/chatd.log" >&2
			return 1
		fi
		i=$((i + 1))
		if [ $i -gt 600 ]; then
			echo "bench.sh: chatd not ready after 60 s" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "bench.sh: scenario $s on chatd pid $pid ($(nproc) cores," \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))" >&2
	rc=0
	# shellcheck disable=SC2046
	"$bench" --scenario "$s" --ready-file "$dir/ready" $(presets "$s") "$@" ||
		rc=$?
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench.sh: kept $dir (chatd log: $dir/chatd.log)" >&2
	fi
	cleanup
	return $rc
}

build_if_needed
if [ "$what" = all ]; then
	status=0
	for s in A B C D E; do
		run_one "$s" "$@" || status=1
	done
	exit $status
fi
run_one "$what" "$@"
