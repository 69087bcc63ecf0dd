#!/bin/sh
# Bring up a local fleet in a fresh run dir (compose/fleet.sh up), run a test
# command with every address of fleet.env in its environment, then take the
# fleet down by pid. On failure the last lines of every log are printed and
# the run dir is kept; on success it is removed. It fails too when a service
# did not stop by itself on SIGTERM or wrote a sanitizer report in its log.
#
# Usage: run_with_fleet.sh COMMAND [ARGS...]
# The command also gets CHAT_FLEET_CTL (the path of compose/fleet.sh, e.g.
# `"$CHAT_FLEET_CTL" kill edge-2`; fleet_harness.h wraps it for C tests).
# Every CHAT_FLEET_* / CHAT_BUILD_DIR setting of fleet.sh passes through.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
fleet=$top/compose/fleet.sh
[ $# -ge 1 ] || {
	echo "usage: $0 COMMAND [ARGS...]" >&2
	exit 2
}
run=$(mktemp -d /tmp/chat-fleet-test-XXXXXX)
chmod 755 "$run" # PostgreSQL runs as postgres when we are root
CHAT_FLEET_DIR=$run/fleet
CHAT_FLEET_CTL=$fleet
export CHAT_FLEET_DIR CHAT_FLEET_CTL

dump_logs() {
	for l in "$CHAT_FLEET_DIR"/logs/*; do
		[ -f "$l" ] || continue
		echo "--- $l" >&2
		tail -40 "$l" >&2
	done
	echo "--- run dir kept: $run" >&2
}

trap '"$fleet" down >/dev/null 2>&1; exit 1' INT TERM
if ! "$fleet" up >"$run/up.out" 2>&1; then
	cat "$run/up.out" >&2
	"$fleet" down >/dev/null 2>&1
	dump_logs
	exit 1
fi
# Export every NAME=value of fleet.env.
set -a
. "$CHAT_FLEET_DIR/fleet.env"
set +a
"$@"
rc=$?
trap - INT TERM
"$fleet" down >"$run/down.out" 2>&1
down=$?
# Every service must have stopped by itself on SIGTERM, and (sanitizer
# builds) without a report.
if grep -q "SIGKILL" "$run/down.out"; then
	echo "--- a service did not stop on SIGTERM" >&2
	down=1
fi
for l in "$CHAT_FLEET_DIR"/logs/store-*.log "$CHAT_FLEET_DIR"/logs/dispatcher-*.log \
	"$CHAT_FLEET_DIR"/logs/presence-*.log "$CHAT_FLEET_DIR"/logs/edge-*.log \
	"$CHAT_FLEET_DIR"/logs/api-*.log; do
	[ -f "$l" ] || continue
	if grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$l"; then
		echo "--- sanitizer report in $l" >&2
		grep -A30 "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$l" | head -60 >&2
		down=1
	fi
done
if [ $rc -ne 0 ] || [ $down -ne 0 ]; then
	echo "--- test rc=$rc, fleet.sh down rc=$down" >&2
	cat "$run/down.out" >&2
	dump_logs
	[ $rc -eq 0 ] && rc=1
else
	rm -rf "$run"
fi
exit $rc
