#!/bin/sh
# The local fleet's servers: compose/fleet.sh up with services off brings up
# ZooKeeper, Redis, PostgreSQL and Kafka (with both topics); each answers;
# Redis, PostgreSQL and Kafka come back after a restart and after a kill -9
# (PostgreSQL and Kafka keeping their data), ZooKeeper after a stop; down
# stops everything by pid and frees every port. On failure the logs are
# printed and the run dir is kept.
#
# Environment: CHAT_BUILD_DIR / CHAT_FREEPORT (the chat-freeport helper;
# otherwise compose/lib.sh compiles it into ~/.cache/chat/bin).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
compose=$top/compose
. "$compose/lib.sh"
fleet=$compose/fleet.sh
pgbin=${CHAT_PG_BIN:-/usr/lib/postgresql/15/bin}
partitions=3
passed=0
failed=0
t_start=$(now_ms)

run=$(mktemp -d /tmp/chat-fleet-servers-XXXXXX)
export CHAT_FLEET_DIR="$run" CHAT_FLEET_SERVICES=0
export CHAT_FLEET_PARTITIONS=$partitions CHAT_FLEET_QUIET=0

ok() {
	echo "ok - $1"
	passed=$((passed + 1))
}
not_ok() {
	echo "not ok - $1"
	failed=$((failed + 1))
}
check() { # description command...
	d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

# Poll CMD until it succeeds, at most $1 seconds (a restarted server may
# need a moment before it serves every request).
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
	"$fleet" down >"$run/down.out" 2>&1 || not_ok "fleet.sh down exits 0"
	# Nothing may survive down.
	for f in "$run"/*/*.pid; do
		[ -f "$f" ] || continue
		p=$(cat "$f")
		if alive "$p"; then
			not_ok "pid $p ($f) still running after down"
			kill -KILL "$p" 2>/dev/null
		fi
	done
	if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
		echo "--- logs in $run/logs (kept)"
		for l in "$run"/logs/* "$run/down.out"; do
			[ -f "$l" ] || continue
			echo "--- $l"
			tail -40 "$l"
		done
		[ "$failed" -eq 0 ] && failed=1
	else
		rm -rf "$run"
	fi
	echo "servers test: $(($(now_ms) - t_start)) ms"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && exit 0
	exit 1
}
trap finish EXIT
trap 'exit 1' INT TERM

t0=$(now_ms)
if ! "$fleet" up; then
	not_ok "fleet.sh up (servers only)"
	exit 1
fi
ok "fleet.sh up (servers only) in $(($(now_ms) - t0)) ms"
check "fleet.env is written" [ -f "$run/fleet.env" ]
. "$run/fleet.env"
for v in CHAT_ZK CHAT_REDIS CHAT_KAFKA CHAT_STORE_DB CHAT_PG_PORT \
	CHAT_JWT_SECRET_FILE; do
	eval "val=\${$v:-}"
	check "fleet.env has $v" [ -n "$val" ]
done
check "fleet.sh env prints exports" sh -c \
	"'$fleet' env | grep -q '^export CHAT_KAFKA=$CHAT_KAFKA\$'"
check "fleet.sh status: all running" "$fleet" status
check "the JWT secret is private" sh -c \
	"[ \"\$(stat -c %a '$CHAT_JWT_SECRET_FILE')\" = 600 ]"

# ---- probes ----------------------------------------------------------------

redis_ok() {
	[ "$(redis-cli -h 127.0.0.1 -p "${CHAT_REDIS##*:}" ping 2>/dev/null)" = PONG ]
}
redis_set() {
	[ "$(redis-cli -h 127.0.0.1 -p "${CHAT_REDIS##*:}" set chat:test "$1" 2>/dev/null)" = OK ]
}
redis_get_is() {
	[ "$(redis-cli -h 127.0.0.1 -p "${CHAT_REDIS##*:}" get chat:test 2>/dev/null)" = "$1" ]
}
zk_ok() {
	[ "$("$(freeport_bin)" --ask 127.0.0.1 "${CHAT_ZK##*:}" ruok)" = imok ]
}
zk_standalone() {
	"$(freeport_bin)" --ask 127.0.0.1 "${CHAT_ZK##*:}" srvr |
		grep -q '^Mode: standalone'
}
psql_q() {
	"$pgbin/psql" -X -q -h 127.0.0.1 -p "$CHAT_PG_PORT" -U chat -d chat \
		-v ON_ERROR_STOP=1 -tAc "$1"
}
pg_ok() {
	"$pgbin/pg_isready" -q -h 127.0.0.1 -p "$CHAT_PG_PORT" -U chat -d chat &&
		[ "$(psql_q 'SELECT 1')" = 1 ]
}
pg_rows_are() {
	[ "$(psql_q 'SELECT string_agg(v, $$,$$ ORDER BY v) FROM t')" = "$1" ]
}
# Both topics, each with the chosen partition count, each partition led.
kafka_topics_ok() {
	md=$(kcat -L -b "$CHAT_KAFKA" -m 5 2>/dev/null) || return 1
	for t in chat.ingress chat.fanout; do
		echo "$md" | grep -q "topic \"$t\" with $partitions partitions" ||
			return 1
	done
	[ "$(echo "$md" | grep -c 'partition [0-9]*, leader 1,')" -eq \
		$((2 * partitions)) ]
}
kafka_produce() {
	printf '%s\n' "$1" | kcat -P -b "$CHAT_KAFKA" -t chat.ingress -p 0 \
		-X acks=all -X message.timeout.ms=10000 2>/dev/null
}
# The records of partition 0 of chat.ingress, comma-separated.
kafka_records_are() {
	got=$(kcat -C -b "$CHAT_KAFKA" -t chat.ingress -p 0 -o beginning -e \
		-q -m 5 2>/dev/null | paste -sd, -)
	[ "$got" = "$1" ]
}

check "redis answers PING" redis_ok
check "redis SET" redis_set before
check "zookeeper answers ruok" zk_ok
check "zookeeper is standalone" zk_standalone
check "postgresql accepts connections" pg_ok
check "postgresql: a table with a row" psql_q \
	"CREATE TABLE t (v text); INSERT INTO t VALUES ('a')"
check "kafka lists chat.ingress and chat.fanout with $partitions partitions" \
	kafka_topics_ok
check "kafka takes a record (acks=all)" kafka_produce one
check "kafka gives it back" eventually 10 kafka_records_are one

# ---- restarts --------------------------------------------------------------

t0=$(now_ms)
check "fleet.sh restart redis" "$fleet" restart redis
check "redis answers after a restart ($(($(now_ms) - t0)) ms)" redis_ok
check "redis is empty after a restart (nothing on disk)" redis_get_is ""
check "redis SET after a restart" redis_set after

t0=$(now_ms)
check "fleet.sh restart pg" "$fleet" restart pg
check "postgresql answers after a restart ($(($(now_ms) - t0)) ms)" pg_ok
check "postgresql kept the row" pg_rows_are a
check "postgresql takes a write" psql_q "INSERT INTO t VALUES ('b')"

t0=$(now_ms)
check "fleet.sh restart kafka" "$fleet" restart kafka
check "kafka answers after a restart ($(($(now_ms) - t0)) ms)" kafka_topics_ok
check "kafka kept the record" eventually 10 kafka_records_are one
check "kafka takes a record after a restart" eventually 20 kafka_produce two
check "kafka gives both back" eventually 10 kafka_records_are one,two

t0=$(now_ms)
check "fleet.sh stop zk" "$fleet" stop zk
check "zookeeper is down" sh -c "! '$(freeport_bin)' --check 127.0.0.1 ${CHAT_ZK##*:} 300"
check "fleet.sh status fails while zk is down" sh -c "! '$fleet' status >/dev/null"
check "fleet.sh start zk" "$fleet" start zk
check "zookeeper answers again ($(($(now_ms) - t0)) ms)" zk_ok

# ---- crashes ---------------------------------------------------------------

check "fleet.sh kill redis" "$fleet" kill redis
check "redis is down after kill" sh -c "! '$(freeport_bin)' --check 127.0.0.1 ${CHAT_REDIS##*:} 300"
check "fleet.sh start redis" "$fleet" start redis
check "redis answers after a kill -9" redis_ok

t0=$(now_ms)
check "fleet.sh kill pg" "$fleet" kill pg
check "fleet.sh start pg (crash recovery)" "$fleet" start pg
check "postgresql answers after a kill -9 ($(($(now_ms) - t0)) ms)" pg_ok
check "postgresql kept both rows" pg_rows_are a,b

t0=$(now_ms)
check "fleet.sh kill kafka" "$fleet" kill kafka
check "fleet.sh start kafka" "$fleet" start kafka
check "kafka answers after a kill -9 ($(($(now_ms) - t0)) ms)" kafka_topics_ok
check "kafka kept the records" eventually 10 kafka_records_are one,two
check "kafka takes a record after a kill -9" eventually 20 kafka_produce three
check "kafka gives all three back" eventually 10 kafka_records_are one,two,three

check "fleet.sh status: all running again" "$fleet" status

# ---- down ------------------------------------------------------------------

t0=$(now_ms)
check "fleet.sh down" "$fleet" down
ok "down took $(($(now_ms) - t0)) ms"
for a in "$CHAT_ZK" "$CHAT_REDIS" "$CHAT_KAFKA" "127.0.0.1:$CHAT_PG_PORT"; do
	check "port ${a##*:} is closed after down" \
		sh -c "! '$(freeport_bin)' --check 127.0.0.1 ${a##*:} 300"
done
check "fleet.sh status fails after down" sh -c "! '$fleet' status >/dev/null"
