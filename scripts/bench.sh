#!/bin/sh
# One command per benchmark scenario (docs/BENCHMARKS.md):
#
#   scripts/bench.sh A|B|C|D|E|F|all [chat-bench flags...]
#
# Builds chatd and chat-bench in Release if needed (BUILD_DIR, default
# build-bench), starts a fresh chatd on free ports with a temporary data
# directory, runs the scenario against it, stops chatd by pid, and prints
# chat-bench's table; the last line is the JSON result. Flags after the
# scenario go to chat-bench and override the presets below (e.g.
# `scripts/bench.sh C --rate 1000 --duration 30`). "all" runs A to E, each
# on its own fresh chatd.
#
# F is C on the fleet instead of chatd: it also builds the services,
# brings up a fresh fleet (compose/fleet.sh up: ZooKeeper, Redis,
# PostgreSQL, Kafka, 3 edges, 2 stores, 2 dispatchers, presence, api) in
# a temporary run dir, runs C's preset against every edge, and takes the
# fleet down again (also on failure or interrupt). It needs the packages
# of `scripts/deps.sh fleet`.
#
# Environment: BUILD_DIR; CHATD_FLAGS (more chatd flags); BENCH_KEEP=1
# keeps the data directory and chatd's log (F: the fleet's run dir and
# logs); BENCH_NO_BUILD=1 skips the build check. F passes CHAT_FLEET_*
# settings (CHAT_FLEET_EDGES, CHAT_FLEET_PARTITIONS, ...) on to fleet.sh.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build-bench}
chatd=$build/svc/chatd/chatd
bench=$build/bench/chat-bench

fleet=$top/compose/fleet.sh
ctl=$build/svc/chatctl/chatctl

usage() {
	echo "usage: $0 A|B|C|D|E|F|all [chat-bench flags...]" >&2
	echo "  (F: C on a fresh local fleet of compose/, real Kafka and PostgreSQL)" >&2
	exit 2
}

[ $# -ge 1 ] || usage
what=$1
shift
case $what in
A | B | C | D | E | F | all) ;;
*) usage ;;
esac

# What the scenario runs: chatd, or the fleet's programs (fleet.sh also
# wants chat-freeport from the build tree; chatctl finds the stores).
targets="chatd chat-bench"
bins="$chatd $bench"
if [ "$what" = F ]; then
	targets="chat-bench chat-edge chat-api chat-store chat-dispatcher"
	targets="$targets chat-presence chatctl chat-freeport"
	bins="$bench $ctl"
	for s in edge api store dispatcher presence; do
		bins="$bins $build/svc/$s/chat-$s"
	done
fi

build_if_needed() {
	[ "${BENCH_NO_BUILD:-0}" = 1 ] && return 0
	missing=0
	for b in $bins; do
		[ -x "$b" ] || missing=1
	done
	if [ $missing = 0 ] &&
		[ -z "$(find "$top/svc" "$top/bench" "$top/client-tui" "$top/proto" \
			"$top/gen" "$top/compose" -newer "$bench" \
			\( -name '*.[ch]' -o -name CMakeLists.txt \) \
			2>/dev/null | head -1)" ]; then
		return 0
	fi
	echo "bench.sh: building Release in $build" >&2
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	# shellcheck disable=SC2086
	cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
		--target $targets >/dev/null
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
#  F: C on the fleet; the ramp starts at 100 sends/s, so that its first
#     steps warm the broker's JVM (cold, it needs 5x the CPU per message).
presets() {
	case $1 in
	A) echo "--conns 19900 --duration 10 --settle 3" ;;
	B) echo "--conns 1000 --rate 1000 --duration 20 --warmup 5" ;;
	C) echo "--conns 1000 --rate 500 --ramp --ramp-factor 1.25 --duration 10 --warmup 3" ;;
	F) echo "--conns 1000 --rate 100 --ramp --ramp-factor 1.25 --duration 10 --warmup 3" ;;
	D) echo "--conns 10000 --rate 1 --duration 20 --warmup 5 --drain 60 --connect-rate 200 --connect-timeout 900" ;;
	E) echo "--conns 1000 --rate 500 --churn-conns 100 --churn-rate 100 --duration 20 --warmup 5" ;;
	esac
}

pid=
dir=
frun=
bpid=
cleanup() {
	# F: chat-bench first (its workers quit when it is gone), then the
	# fleet, by fleet.sh (it stops every process by pid).
	if [ -n "$bpid" ] && kill -0 "$bpid" 2>/dev/null; then
		kill "$bpid" 2>/dev/null || true
		wait "$bpid" 2>/dev/null || true
	fi
	bpid=
	if [ -n "$frun" ]; then
		CHAT_FLEET_DIR=$frun "$fleet" down >"$dir/down.out" 2>&1 ||
			cat "$dir/down.out" >&2
		frun=
	fi
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
# An interrupt ends the script, and the exit cleans up (a fleet is only
# taken down from here: its services run in sessions of their own).
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# pids_of FILE...: the pids in those pid files, comma-separated.
pids_of() {
	out=
	for f in "$@"; do
		[ -f "$f" ] || continue
		out="$out${out:+,}$(cat "$f")"
	done
	echo "$out"
}

# run_fleet FLAGS...: a fresh fleet, scenario F, the fleet taken down.
run_fleet() {
	dir=$(mktemp -d /tmp/chat-bench-XXXXXX)
	chmod 755 "$dir" # PostgreSQL runs as postgres when we are root
	frun=$dir/fleet
	# Edges read CHAT_EDGE_SEND_RATE/BURST (fleet.sh passes no such
	# flag): the high per-session send limit chatd gets in run_one.
	if ! CHAT_FLEET_DIR=$frun CHAT_BUILD_DIR=$build CHAT_LOG_LEVEL=warn \
		CHAT_EDGE_SEND_RATE=1000000 CHAT_EDGE_SEND_BURST=1000000 \
		"$fleet" up >"$dir/up.out" 2>&1; then
		echo "bench.sh: fleet.sh up failed:" >&2
		cat "$dir/up.out" >&2
		return 1
	fi
	sed -n 's/^fleet up in/bench.sh: fleet up in/p' "$dir/up.out" >&2
	# shellcheck disable=SC1091
	. "$frun/fleet.env"
	# The chat services are what "server" means in F; the backing
	# servers' CPU is reported apart.
	spids=$(pids_of "$frun"/svc/*.pid)
	bpids=$(pids_of "$frun/kafka/kafka.pid" "$frun/pg/pg.pid" \
		"$frun/redis/redis.pid" "$frun/zk/zk.pid")
	# Users and channels are made through a store's RPC, found in
	# ZooKeeper (it binds a free port).
	admin=$("$ctl" --zk "$CHAT_ZK" health store |
		awk '$1 == "store" && $2 == "store-1" { print $3 }')
	if [ -z "$admin" ]; then
		echo "bench.sh: store-1 not found in ZooKeeper ($CHAT_ZK)" >&2
		return 1
	fi
	echo "bench.sh: scenario F on the fleet in $frun ($(nproc) cores," \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1));" \
		"edges $CHAT_EDGE_URLS, store $admin, services $spids," \
		"kafka,pg,redis,zk $bpids" >&2
	rc=0
	# In the background, so that a TERM to this script is handled at once
	# (the trap waits for no foreground child) and the fleet goes down.
	# shellcheck disable=SC2046
	"$bench" --scenario F --edge-url "$CHAT_EDGE_URLS" \
		--admin-url "$admin" --secret-file "$CHAT_JWT_SECRET_FILE" \
		--server-pid "$spids" --backend-pid "$bpids" \
		$(presets F) "$@" &
	bpid=$!
	wait "$bpid" || rc=$?
	bpid=
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench.sh: kept $dir (fleet run dir and logs: $frun)" >&2
	fi
	cleanup
	return $rc
}

build_if_needed
if [ "$what" = F ]; then
	run_fleet "$@"
	exit
fi
if [ "$what" = all ]; then
	status=0
	for s in A B C D E; do
		run_one "$s" "$@" || status=1
	done
	exit $status
fi
run_one "$what" "$@"
