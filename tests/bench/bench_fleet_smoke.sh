#!/bin/sh
# Smoke run of scenario F: `scripts/bench.sh F` for a few seconds at 100
# sessions and 20 sends/s on a fresh local fleet (the programs of
# BUILD_DIR), so that the fleet benchmark cannot rot. Fails when the run
# reports loss or an error, does not end with a valid JSON line of
# scenario F over every edge, measured no CPU, or when the fleet did not
# stop cleanly (a service killed, a sanitizer report in a log). Latency
# is not judged (sanitizer builds are slow): the p99 limit is out of
# reach.
# Usage: bench_fleet_smoke.sh BUILD_DIR  (needs scripts/deps.sh fleet)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$1
bench=$build/bench/chat-bench
out=$(mktemp /tmp/chat-bench-fleet-smoke-XXXXXX)
fail=0

CHAT_FLEET_EDGES=3
export CHAT_FLEET_EDGES
BENCH_KEEP=1 BENCH_NO_BUILD=1 BUILD_DIR=$build \
	sh "$top/scripts/bench.sh" F --conns 100 --rate 20 --ramp=0 \
	--duration 3 --warmup 1 --drain 30 --noise-retries 0 \
	--p99-limit-ms 100000 >"$out" 2>"$out.err"
rc=$?
tail -1 "$out"
kept=$(sed -n 's/^bench.sh: kept \([^ ]*\) .*/\1/p' "$out.err" | tail -1)

check=$("$bench" --check-json "$out")
crc=$?
last=$(tail -1 "$out")
if [ $rc -ne 0 ] || [ $crc -ne 0 ] || [ "$check" != "loss=0 ok=true" ]; then
	echo "FAIL F: exit $rc, check '$check' (rc $crc)" >&2
	fail=1
fi
case $last in
*'"scenario":"F"'*'"edges":3,'*) ;;
*)
	echo "FAIL F: the JSON line is not scenario F over 3 edges" >&2
	fail=1
	;;
esac
# Both CPU figures measured: the services' pids and the servers' trees.
case $last in
*'"server_cpu_us_per_msg":0.000,'* | *'"backend_cpu_us_per_msg":null'* | \
	*'"backend_cpu_us_per_msg":0.000,'*)
	echo "FAIL F: no CPU measured for the services or the servers" >&2
	fail=1
	;;
esac
if [ -n "$kept" ]; then
	if grep -q "SIGKILL" "$kept/down.out" 2>/dev/null; then
		echo "FAIL F: a service did not stop on SIGTERM" >&2
		fail=1
	fi
	for l in "$kept"/fleet/logs/*-[0-9]*.log; do
		[ -f "$l" ] || continue
		if grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$l"; then
			echo "FAIL F: sanitizer report in $l" >&2
			fail=1
		fi
	done
else
	echo "FAIL F: bench.sh did not say where the fleet was" >&2
	fail=1
fi
if [ $fail -ne 0 ]; then
	cat "$out.err" "$out" >&2
	echo "--- run dir kept: ${kept:-none}" >&2
	exit 1
fi
rm -rf "$kept" "$out" "$out.err"
echo "bench fleet smoke: OK"
exit 0
