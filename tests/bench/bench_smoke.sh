#!/bin/sh
# Smoke run of chat-bench: every scenario for a few seconds at small N
# against one fresh chatd, so the benchmark cannot rot. Fails when a run
# reports loss or an error, or does not end with a valid JSON result line.
# Latency is not judged here (sanitizer builds are slow): the p99 limit is
# set out of reach.
# Usage: bench_smoke.sh PATH-TO-CHATD PATH-TO-CHAT-BENCH
set -u
chatd=$1
bench=$2
dir=$(mktemp -d /tmp/chat-bench-smoke-XXXXXX)
fail=0

"$chatd" --data-dir "$dir/data" --port 0 --api-port 0 \
	--admin-url tcp://127.0.0.1:0 --ready-file "$dir/ready" \
	--send-rate 100000 --send-burst 100000 --log-level warn \
	>"$dir/chatd.log" 2>&1 &
pid=$!
i=0
while [ ! -f "$dir/ready" ]; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "chatd exited during start:" >&2
		cat "$dir/chatd.log" >&2
		exit 1
	fi
	i=$((i + 1))
	if [ $i -gt 600 ]; then
		echo "chatd not ready after 60 s" >&2
		kill "$pid"
		exit 1
	fi
	sleep 0.1
done

# run NAME ARGS...: one chat-bench run; checks its exit status and its
# last line (valid JSON, loss 0, ok true).
run() {
	name=$1
	shift
	out="$dir/$name.out"
	echo "--- $name: chat-bench $*"
	"$bench" --ready-file "$dir/ready" --quiet --duration 3 --warmup 1 \
		--drain 30 --p99-limit-ms 100000 "$@" >"$out" 2>&1
	rc=$?
	tail -1 "$out"
	check=$("$bench" --check-json "$out")
	crc=$?
	if [ $rc -ne 0 ] || [ $crc -ne 0 ] || [ "$check" != "loss=0 ok=true" ]; then
		echo "FAIL $name: exit $rc, check '$check' (rc $crc)" >&2
		cat "$out" >&2
		fail=1
	fi
}

run A --scenario A --conns 50
run B --scenario B --conns 50 --rate 100
run C --scenario C --conns 100 --rate 200
run D --scenario D --conns 50 --rate 5
run E --scenario E --conns 100 --rate 200 --churn-conns 10 --churn-rate 20
run B-ramp --scenario B --conns 20 --rate 20 --ramp --ramp-factor 2 \
	--ramp-max 40 --duration 2

# The fleet's way in, on chatd: a list of edge URLs (here the same edge
# twice), the secret by file, the pid list.
edge=$(sed -n 's/^edge_url=//p' "$dir/ready")
cpid=$(sed -n 's/^pid=//p' "$dir/ready")
run C-list --scenario C --conns 100 --rate 100 --edge-url "$edge,$edge" \
	--secret-file "$dir/data/jwt.secret" --server-pid "$cpid,$cpid" \
	--backend-pid "$cpid"
if ! tail -1 "$dir/C-list.out" | grep -q '"edges":2,"server_pids":2,"backend_pids":1'; then
	echo "FAIL C-list: the JSON line does not count 2 edges and the pids" >&2
	fail=1
fi

# F is C on the fleet (tests/bench/bench_fleet_smoke.sh): on a chatd ready
# file it must refuse, and produce no result.
if "$bench" --scenario F --ready-file "$dir/ready" >"$dir/F.out" 2>&1; then
	echo "FAIL F: the fleet scenario ran on chatd" >&2
	fail=1
elif ! grep -q "needs the fleet" "$dir/F.out"; then
	echo "FAIL F: no clear refusal" >&2
	cat "$dir/F.out" >&2
	fail=1
fi

# Bad input gets a clear error, not a run.
if "$bench" --scenario C --conns 150 --ready-file "$dir/ready" \
	>"$dir/bad.out" 2>&1 || ! grep -q "multiple of 100" "$dir/bad.out"; then
	echo "FAIL: --conns 150 for C was not refused clearly" >&2
	cat "$dir/bad.out" >&2
	fail=1
fi

kill "$pid" 2>/dev/null
wait "$pid"
stop=$?
if [ $fail -ne 0 ] || [ $stop -ne 0 ]; then
	echo "--- chatd log ($dir/chatd.log), chatd exit=$stop" >&2
	tail -30 "$dir/chatd.log" >&2
	exit 1
fi
rm -rf "$dir"
echo "bench smoke: OK"
exit 0
