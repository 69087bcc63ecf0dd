#!/bin/sh
# compose/fleet.sh with services, on stand-ins: every chat-SERVICE program
# is tests/fleet/fake_service.c (it registers its znode in ZooKeeper and
# listens on --port like the real services will). Checks that `up` starts
# N edges, 2 stores, 2 dispatchers, presence and api, waits for their
# registration, writes their addresses to fleet.env; that kill, start,
# restart and add work on one instance; that `down` stops the services
# with SIGTERM before the servers; and that a failing `up` cleans up.
#
# Usage: fleet_script_test.sh PATH-TO-FAKE-SERVICE
set -u
fake=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
compose=$top/compose
. "$compose/lib.sh"
fleet=$compose/fleet.sh
passed=0
failed=0
t_start=$(now_ms)

run=$(mktemp -d /tmp/chat-fleet-script-XXXXXX)
chmod 755 "$run" # PostgreSQL runs as postgres when we are root
# A build tree of stand-ins.
for s in edge store dispatcher presence api; do
	mkdir -p "$run/fakebuild/svc/$s"
	ln -s "$fake" "$run/fakebuild/svc/$s/chat-$s"
done
export CHAT_FLEET_DIR="$run/fleet" CHAT_BUILD_DIR="$run/fakebuild"
export CHAT_FLEET_EDGES=2 CHAT_FLEET_PARTITIONS=2 CHAT_STOP_TIMEOUT=10
all="store-1 store-2 dispatcher-1 dispatcher-2 presence-1 edge-1 edge-2 api-1"

ok() {
	echo "ok - $1"
	passed=$((passed + 1))
}
not_ok() {
	echo "not ok - $1"
	failed=$((failed + 1))
}
check() {
	d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
eventually() {
	ev_end=$(($(date +%s) + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$ev_end" ] && return 1
		sleep 0.2
	done
}

finish() {
	rc=$?
	trap - EXIT INT TERM
	CHAT_FLEET_DIR="$run/fleet" "$fleet" down >/dev/null 2>&1
	CHAT_FLEET_DIR="$run/fleet2" "$fleet" down >/dev/null 2>&1
	if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
		for l in "$run"/fleet/logs/* "$run"/fleet2/logs/* "$run"/*.out; do
			[ -f "$l" ] || continue
			echo "--- $l"
			tail -30 "$l"
		done
		echo "--- kept $run"
		[ "$failed" -eq 0 ] && failed=1
	else
		rm -rf "$run"
	fi
	echo "fleet script test: $(($(now_ms) - t_start)) ms"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && exit 0
	exit 1
}
trap finish EXIT
trap 'exit 1' INT TERM

zk_dump() {
	"$(freeport_bin)" --ask 127.0.0.1 "${CHAT_ZK##*:}" dump
}
registered() { # id
	zk_dump | grep -q "/chat/services/${1%-*}/$1-[0-9]"
}
znodes() { # id: its znode paths
	zk_dump | grep -o "/chat/services/${1%-*}/$1-[0-9]*" | sort -u
}
not_registered() {
	! registered "$1"
}
svc_pid() {
	cat "$CHAT_FLEET_DIR/svc/$1.pid"
}

t0=$(now_ms)
if "$fleet" up >"$run/up.out" 2>&1; then
	ok "fleet.sh up with services in $(($(now_ms) - t0)) ms"
else
	not_ok "fleet.sh up with services"
	cat "$run/up.out"
	exit 1
fi
. "$CHAT_FLEET_DIR/fleet.env"
for id in $all; do
	check "$id is registered in ZooKeeper" registered "$id"
	check "$id is running" alive "$(svc_pid "$id")"
	check "$id command line has --instance $id" \
		grep -qx -- "$id" "$CHAT_FLEET_DIR/svc/$id.cmd"
done
check "store command line has --db" grep -qx -- --db "$CHAT_FLEET_DIR/svc/store-1.cmd"
check "edge command line has --kafka" grep -qx -- --kafka "$CHAT_FLEET_DIR/svc/edge-1.cmd"
check "edge command line has --redis" grep -qx -- --redis "$CHAT_FLEET_DIR/svc/edge-1.cmd"
check "every command line has --zk" sh -c \
	"[ \$(grep -lx -- --zk '$CHAT_FLEET_DIR'/svc/*.cmd | wc -l) -eq 8 ]"
check "every command line has --rpc-url tcp://127.0.0.1:0" sh -c \
	"[ \$(grep -lx -- tcp://127.0.0.1:0 '$CHAT_FLEET_DIR'/svc/*.cmd | wc -l) -eq 8 ]"
check "fleet.env has the api url" [ -n "${CHAT_API_URL:-}" ]
check "the api port answers" port_open "${CHAT_API_URL##*:}"
check "fleet.env has both edge urls" sh -c \
	"[ \$(echo '${CHAT_EDGE_URLS:-}' | tr , '\n' | grep -c '^ws://127.0.0.1:[0-9]*/ws\$') -eq 2 ]"
check "up prints how to connect chat-tui" \
	grep -q "chat-tui --server $CHAT_API_URL" "$run/up.out"
check "fleet.sh status: all running" "$fleet" status

# One instance: crash, start, restart, one more.
before_kill=$(znodes edge-2)
old=$(svc_pid edge-2)
check "fleet.sh kill edge-2" "$fleet" kill edge-2
edge2_gone() { ! alive "$old"; }
check "edge-2 is gone" edge2_gone
check "fleet.sh status fails with edge-2 down" sh -c "! '$fleet' status >/dev/null"
check "fleet.sh start edge-2" "$fleet" start edge-2
check "edge-2 runs again under a new pid" sh -c "[ $(svc_pid edge-2) != $old ]"
new_znode() { znodes edge-2 | grep -vxF "$before_kill" | grep -q .; }
check "edge-2 registered again under a new znode" new_znode
old=$(svc_pid store-1)
check "fleet.sh restart store-1" "$fleet" restart store-1
check "store-1 stopped with SIGTERM" grep -q 'event=stop id=store-1 signal=TERM' \
	"$CHAT_FLEET_DIR/logs/store-1.log"
check "store-1 runs under a new pid" sh -c "[ $(svc_pid store-1) != $old ]"
check "fleet.sh add edge prints edge-3" sh -c "[ \"\$('$fleet' add edge 2>/dev/null)\" = edge-3 ]"
check "edge-3 is registered" registered edge-3
. "$CHAT_FLEET_DIR/fleet.env"
check "fleet.env lists edge-3 too" sh -c \
	"[ \$(echo '${CHAT_EDGE_URLS:-}' | tr , '\n' | grep -c ws://) -eq 3 ]"
check "fleet.sh stop dispatcher-2" "$fleet" stop dispatcher-2
check "dispatcher-2 left ZooKeeper" eventually 5 not_registered dispatcher-2

# Down: services with SIGTERM first, then the servers.
pids=""
for f in "$CHAT_FLEET_DIR"/svc/*.pid "$CHAT_FLEET_DIR"/*/*.pid; do
	[ -f "$f" ] && pids="$pids $(cat "$f")"
done
t0=$(now_ms)
check "fleet.sh down" "$fleet" down
ok "down took $(($(now_ms) - t0)) ms"
for id in $all edge-3; do
	[ "$id" = dispatcher-2 ] && continue
	check "$id got SIGTERM while ZooKeeper was up" \
		grep -q "event=stop id=$id signal=TERM zk=ok" \
		"$CHAT_FLEET_DIR/logs/$id.log"
done
left=""
for p in $pids; do alive "$p" && left="$left $p"; done
check "no process left after down ($left)" [ -z "$left" ]

# A failing instance makes `up` fail and stop what it started.
export CHAT_FLEET_DIR="$run/fleet2"
if CHAT_FAKE_FAIL_ID=edge-2 "$fleet" up >"$run/up2.out" 2>&1; then
	not_ok "up fails when an instance exits at start"
else
	ok "up fails when an instance exits at start"
fi
check "the failure names edge-2" grep -q 'edge-2' "$run/up2.out"
left=""
for f in "$CHAT_FLEET_DIR"/svc/*.pid "$CHAT_FLEET_DIR"/*/*.pid; do
	[ -f "$f" ] || continue
	alive "$(cat "$f")" && left="$left $(basename "$f")"
done
check "a failed up leaves nothing running ($left)" [ -z "$left" ]
