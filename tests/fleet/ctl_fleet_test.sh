#!/bin/sh
# chatctl on the local fleet: every registered instance healthy and of the
# expected count, counters summed per service, the store's admin listing,
# kick on every edge, and drain of one edge (it leaves ZooKeeper). Run
# under run_with_fleet.sh, which exports CHAT_ZK and the fleet's sizes.
#
# Usage: run_with_fleet.sh sh ctl_fleet_test.sh PATH-TO-CHATCTL
set -u
ctl=$1
edges=${CHAT_FLEET_EDGES:-3}
stores=${CHAT_FLEET_STORES:-2}
dispatchers=${CHAT_FLEET_DISPATCHERS:-2}
presence=${CHAT_FLEET_PRESENCE:-1}
apis=${CHAT_FLEET_APIS:-1}
total=$((edges + stores + dispatchers + presence + apis))

fail() {
	echo "ctl_fleet_test: FAIL: $*" >&2
	exit 1
}
[ -n "${CHAT_ZK:-}" ] || fail "CHAT_ZK is not set (run under run_with_fleet.sh)"

# run NAME EXPECTED-EXIT ARGS...: chatctl ARGS, output in $out.
run() {
	name=$1
	want=$2
	shift 2
	out=$("$ctl" --timeout-ms 5000 "$@" 2>"${TMPDIR:-/tmp}/ctl-fleet.$$")
	rc=$?
	err=$(cat "${TMPDIR:-/tmp}/ctl-fleet.$$")
	rm -f "${TMPDIR:-/tmp}/ctl-fleet.$$"
	[ "$rc" -eq "$want" ] ||
		fail "$name: exit $rc, wanted $want; stdout: $out; stderr: $err"
}

# count PATTERN: occurrences in $out.
count() {
	printf '%s\n' "$out" | grep -o "$1" | wc -l
}

has() {
	case $out in
	*"$1"*) ;;
	*) fail "$2: '$1' not in: $out" ;;
	esac
}

# health: every instance answers, each service has its instances
run health 0 health --json
has "\"total\":$total,\"ok\":$total,\"failed\":0" "health"
for s in edge:$edges store:$stores dispatcher:$dispatchers \
	presence:$presence api:$apis; do
	n=$(count "\"service\":\"${s%%:*}\"")
	[ "$n" -eq "${s#*:}" ] || fail "health: $n ${s%%:*} instances, wanted ${s#*:}"
done
run health-table 0 health
has "$total instances: $total ok, 0 failed" "health table"

# counters: the edges' sums
run counters 0 counters edge --json
has "\"totals\":{" "counters"
has "\"sessions\":" "counters"

# the store's admin listing (any store answers)
run channels 0 channels --json
has "\"status\":\"ok\",\"channels\":[" "channels"
run members 1 members 999999999 --json
has "\"status\":\"not_found\"" "members"

# kick on every edge: nobody by that id, every edge answers
run kick 0 kick 999999999 --json
has "\"sessions\":0,\"total\":$edges,\"ok\":$edges,\"failed\":0" "kick"

# drain: an unknown edge is refused; a real one leaves ZooKeeper
run drain-unknown 1 drain no-such-edge
last=$("$ctl" health edge --json | grep -o '"id":"[^"]*"' | tail -1 |
	sed 's/"id":"//; s/"$//')
[ -n "$last" ] || fail "no edge id found"
run drain 0 drain "$last" --json
has "\"edge\":\"$last\",\"rpc\":" "drain"
has "\"status\":\"ok\",\"sessions\":" "drain"
i=0
while :; do
	# the drained edge may stop answering before its znode goes
	out=$("$ctl" --timeout-ms 2000 health edge --json 2>/dev/null)
	[ "$(count '"service":"edge"')" -eq $((edges - 1)) ] &&
		[ "$(count '"status":"ok"')" -eq $((edges - 1)) ] && break
	i=$((i + 1))
	[ $i -lt 150 ] || fail "drained $last still registered: $out"
	sleep 0.1
done
case $out in
*"\"id\":\"$last\""*) fail "drained $last still listed: $out" ;;
esac
echo "ctl_fleet_test: ok"
