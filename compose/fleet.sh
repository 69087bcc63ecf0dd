#!/bin/sh
# The local fleet: ZooKeeper, Redis, PostgreSQL and a Kafka broker, then the
# chat services (edges, stores, dispatchers, presence, api), all as local
# processes on 127.0.0.1 with ports chosen free at run time.
#
#   fleet.sh up                 start everything; prints the addresses and
#                               how to connect chat-tui
#   fleet.sh down [--rm]        stop what `up` started, by pid, services
#                               first; --rm also deletes the run dir
#   fleet.sh status             one line per process: name, state, pid, addr
#   fleet.sh env                `export NAME=VALUE` lines for a shell:
#                               eval "$(compose/fleet.sh env)"
#   fleet.sh stop|kill|start|restart NAME
#                               one server (zk, redis, pg, kafka) or service
#                               instance (edge-2, store-1, ...); kill = -9
#   fleet.sh add SERVICE        one more instance of a service (edge, store,
#                               dispatcher, presence, api); prints its id
#
# The run dir is $CHAT_FLEET_DIR, or a new temporary directory for `up`
# (remembered in ~/.cache/chat/fleet.last for the other commands). Inside:
# fleet.env (every address), logs/ (one log per process), svc/ (pid file,
# command line and public port of each service instance), zk/, redis/, pg/,
# kafka/ (each server's data and pid file), jwt.secret.
#
# Environment (defaults): CHAT_FLEET_SERVICES=1 (0: servers only),
# CHAT_FLEET_EDGES=3, CHAT_FLEET_STORES=2, CHAT_FLEET_DISPATCHERS=2,
# CHAT_FLEET_PRESENCE=1, CHAT_FLEET_APIS=1, CHAT_FLEET_PARTITIONS=8,
# CHAT_API_PORT (free), CHAT_BUILD_DIR=build, CHAT_LOG_LEVEL=info,
# CHAT_FLEET_WAIT=zk (a service is up once its znode exists; "port": once
# its public port answers or, without one, once it stayed up for a second),
# CHAT_STOP_TIMEOUT=20 (seconds before SIGKILL), CHAT_FLEET_KEEP=1 (leave
# what started running when `up` fails).
set -eu
compose=$(cd "$(dirname "$0")" && pwd)
. "$compose/lib.sh"

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/chat
last=$cache_root/fleet.last
build=${CHAT_BUILD_DIR:-$top/build}
stop_timeout=${CHAT_STOP_TIMEOUT:-20}
services="store dispatcher presence edge api"
servers="zk redis pg kafka"

# ---- where ----------------------------------------------------------------

# run_dir_existing: the run dir of a fleet that `up` made.
run_dir_existing() {
	if [ -n "${CHAT_FLEET_DIR:-}" ]; then
		run=$CHAT_FLEET_DIR
	elif [ -f "$last" ]; then
		run=$(cat "$last")
	else
		die "no fleet: set CHAT_FLEET_DIR to the run dir that 'fleet.sh up' printed"
	fi
	[ -d "$run" ] || die "fleet run dir $run does not exist"
	run=$(cd "$run" && pwd)
	logs=$run/logs
	export CHAT_LOG_DIR="$logs"
}

# ---- servers --------------------------------------------------------------

server_cmd() { # verb name
	case "$2" in
	kafka)
		if [ "$1" = start ]; then
			"$compose/kafka.sh" start "$run/kafka" \
				"$(cat "$run/kafka/kafka.port")" \
				"$(cat "$run/kafka/kafka.controller.port")"
		else
			"$compose/kafka.sh" "$1" "$run/kafka"
		fi
		;;
	*) "$compose/servers.sh" "$1" "$2" "$run/$2" ;;
	esac
}

# Kafka takes the longest: it starts in the background while the others
# start here, then its topics are made. A port picked free may be taken
# before the broker binds it: then again with new ports (a fresh broker).
kafka_up() {
	if [ -f "$run/kafka/data/meta.properties" ]; then
		server_cmd start kafka
		return
	fi
	for try in 1 2 3; do
		set -- $(freeports 2)
		if "$compose/kafka.sh" start "$run/kafka" "$1" "$2"; then
			return 0
		fi
		"$compose/kafka.sh" kill "$run/kafka" || true
		[ $try -lt 3 ] && say "kafka: start failed; again on other ports"
		rm -rf "$run/kafka"
	done
	return 1
}

servers_up() {
	t0=$(now_ms)
	"$compose/kafka.sh" fetch
	say "fleet: servers starting in $run"
	: >"$logs/fleet-kafka-start.log"
	kafka_up >>"$logs/fleet-kafka-start.log" 2>&1 &
	kpid=$!
	rc=0
	for s in zk redis pg; do
		"$compose/servers.sh" start "$s" "$run/$s" || rc=1
		[ $rc -eq 0 ] || break
	done
	wait "$kpid" || {
		cat "$logs/fleet-kafka-start.log" >&2
		rc=1
	}
	[ $rc -eq 0 ] || return 1
	sed 's/^/  /' "$logs/fleet-kafka-start.log" >&2
	# The partition count is chosen once, when the topics are made.
	[ -f "$run/kafka/partitions" ] ||
		echo "${CHAT_FLEET_PARTITIONS:-8}" >"$run/kafka/partitions"
	"$compose/kafka.sh" topics "$run/kafka" \
		"127.0.0.1:$(cat "$run/kafka/kafka.port")" \
		"$(cat "$run/kafka/partitions")" || return 1
	say "fleet: servers up in $(($(now_ms) - t0)) ms"
}

write_env() {
	{
		echo "CHAT_FLEET_DIR=$run"
		echo "CHAT_ZK=$("$compose/servers.sh" addr zk "$run/zk")"
		echo "CHAT_REDIS=$("$compose/servers.sh" addr redis "$run/redis")"
		echo "CHAT_KAFKA=127.0.0.1:$(cat "$run/kafka/kafka.port")"
		echo "CHAT_KAFKA_CONTROLLER=127.0.0.1:$(cat "$run/kafka/kafka.controller.port")"
		echo "CHAT_KAFKA_PARTITIONS=$(cat "$run/kafka/partitions")"
		echo "CHAT_STORE_DB=$("$compose/servers.sh" addr pg "$run/pg")"
		echo "CHAT_PG_PORT=$(cat "$run/pg/pg.port")"
		echo "CHAT_PG_SOCKDIR=$run/pg/sock"
		echo "CHAT_JWT_SECRET_FILE=$run/jwt.secret"
		echo "CHAT_LOG_LEVEL=${CHAT_LOG_LEVEL:-info}"
		if [ -f "$run/svc/api-1.port" ]; then
			echo "CHAT_API_URL=http://127.0.0.1:$(cat "$run/svc/api-1.port")"
		fi
		urls=""
		for f in "$run"/svc/edge-*.port; do
			[ -f "$f" ] || continue
			urls="$urls${urls:+,}ws://127.0.0.1:$(cat "$f")/ws"
		done
		[ -z "$urls" ] || echo "CHAT_EDGE_URLS=$urls"
	} >"$run/fleet.env.tmp"
	mv "$run/fleet.env.tmp" "$run/fleet.env"
}

# ---- services -------------------------------------------------------------

# svc_bin SERVICE: its program in the build tree.
svc_bin() {
	echo "$build/svc/$1/chat-$1"
}

# svc_of ID: the service of an instance id (edge-2 -> edge).
svc_of() {
	echo "${1%-*}"
}

# svc_args ID: the command line of an instance, from the fleet design's
# flags. Edges and the api get a public port (kept in svc/ID.port).
svc_args() {
	id=$1
	svc=$(svc_of "$id")
	. "$run/fleet.env"
	set -- "$(svc_bin "$svc")" --zk "$CHAT_ZK" \
		--rpc-url tcp://127.0.0.1:0 --instance "$id" \
		--log-level "$CHAT_LOG_LEVEL"
	case "$svc" in
	store) set -- "$@" --kafka "$CHAT_KAFKA" --db "$CHAT_STORE_DB" ;;
	dispatcher) set -- "$@" --kafka "$CHAT_KAFKA" --redis "$CHAT_REDIS" ;;
	presence) set -- "$@" --redis "$CHAT_REDIS" ;;
	edge)
		set -- "$@" --kafka "$CHAT_KAFKA" --redis "$CHAT_REDIS" \
			--jwt-secret-file "$CHAT_JWT_SECRET_FILE" \
			--host 127.0.0.1 --port "$(svc_port "$id")"
		;;
	api)
		set -- "$@" --jwt-secret-file "$CHAT_JWT_SECRET_FILE" \
			--host 127.0.0.1 --port "$(svc_port "$id")"
		;;
	esac
	# One argument a line: the paths and URLs hold no newlines.
	printf '%s\n' "$@"
}

# svc_port ID: the public port of an edge or api instance, picked once.
svc_port() {
	f=$run/svc/$1.port
	if [ ! -f "$f" ]; then
		if [ "$1" = api-1 ] && [ -n "${CHAT_API_PORT:-}" ]; then
			echo "$CHAT_API_PORT" >"$f"
		else
			freeports 1 >"$f"
		fi
	fi
	cat "$f"
}

has_port() {
	case "$(svc_of "$1")" in edge | api) return 0 ;; esac
	return 1
}

# znodes ID: the instance's ephemeral znodes
# /chat/services/SERVICE/ID-NNNNNNNNNN, one a line, as ZooKeeper's `dump`
# command lists them (nothing when ZooKeeper does not answer).
znodes() {
	"$(freeport_bin)" --ask 127.0.0.1 "${CHAT_ZK##*:}" dump 2>/dev/null |
		grep -o "/chat/services/$(svc_of "$1")/$1-[0-9]*" | sort -u
	return 0
}

# registered ID: the instance has a znode it did not have before its start
# (a predecessor killed with -9 keeps its znode until its session expires).
registered() {
	znodes "$1" >"$run/svc/$1.zk.now"
	grep -qvxF -f "$run/svc/$1.zk.before" "$run/svc/$1.zk.now"
}

# ready ID: the instance answers in the way CHAT_FLEET_WAIT asks for.
ready() {
	case "${CHAT_FLEET_WAIT:-zk}" in
	zk) registered "$1" ;;
	port)
		if has_port "$1"; then
			port_open "$(cat "$run/svc/$1.port")"
		else
			[ -f "$run/svc/$1.t0" ] &&
				[ $(($(now_ms) - $(cat "$run/svc/$1.t0"))) -ge 1000 ]
		fi
		;;
	none) true ;;
	*) die "CHAT_FLEET_WAIT must be zk, port or none" ;;
	esac
}

# svc_spawn ID: start one instance (does not wait).
svc_spawn() {
	id=$1
	pid=$(pid_of "$run/svc/$id.pid" || true)
	alive "$pid" && die "$id: already running (pid $pid)"
	b=$(svc_bin "$(svc_of "$id")")
	[ -x "$b" ] || die "$b missing: build first (scripts/build.sh, or set CHAT_BUILD_DIR)"
	svc_args "$id" >"$run/svc/$id.cmd"
	# Znodes a predecessor left do not count as this instance's registration.
	znodes "$id" >"$run/svc/$id.zk.before"
	# Rebuild "$@" from the saved lines (no word splitting on values).
	set --
	while IFS= read -r a; do
		set -- "$@" "$a"
	done <"$run/svc/$id.cmd"
	echo "--- start $(date -u +%FT%TZ)" >>"$logs/$id.log"
	now_ms >"$run/svc/$id.t0"
	spawn "$logs/$id.log" "$@"
	echo "$spawned_pid" >"$run/svc/$id.pid"
}

# svc_wait ID...: wait until each is ready; false (with its log) if one
# exits or takes longer than CHAT_START_TIMEOUT (60 s).
svc_wait() {
	. "$run/fleet.env"
	for id in "$@"; do
		if ! wait_for "${CHAT_START_TIMEOUT:-60}" \
			"$(cat "$run/svc/$id.pid")" "$id" ready "$id"; then
			tail -20 "$logs/$id.log" >&2
			return 1
		fi
	done
}

# ids SERVICE COUNT: SERVICE-1 .. SERVICE-COUNT
ids() {
	i=1
	while [ "$i" -le "$2" ]; do
		echo "$1-$i"
		i=$((i + 1))
	done
}

# all_ids: every instance ever started in this run dir, in start order.
all_ids() {
	for s in $services; do
		for f in "$run"/svc/"$s"-*.pid; do
			[ -f "$f" ] && basename "$f" .pid
		done
	done
	return 0
}

services_up() {
	t0=$(now_ms)
	mkdir -p "$run/svc"
	for b in $services; do
		[ -x "$(svc_bin "$b")" ] ||
			die "$(svc_bin "$b") missing: build first (scripts/build.sh, or set CHAT_BUILD_DIR)"
	done
	# Stores first: they create or migrate the schema.
	stores=$(ids store "${CHAT_FLEET_STORES:-2}")
	for id in $stores; do svc_spawn "$id"; done
	# shellcheck disable=SC2086
	svc_wait $stores || return 1
	rest="$(ids dispatcher "${CHAT_FLEET_DISPATCHERS:-2}")
$(ids presence "${CHAT_FLEET_PRESENCE:-1}")
$(ids edge "${CHAT_FLEET_EDGES:-3}")
$(ids api "${CHAT_FLEET_APIS:-1}")"
	for id in $rest; do svc_spawn "$id"; done
	write_env
	# shellcheck disable=SC2086
	svc_wait $rest || return 1
	say "fleet: services up in $(($(now_ms) - t0)) ms"
}

# svc_stop ID [KILL]
svc_stop() {
	pid=$(pid_of "$run/svc/$1.pid" || true)
	if [ "${2:-}" = KILL ]; then
		if alive "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			wait_dead "$pid" 10 || true
		fi
	else
		stop_pid "$pid" "$stop_timeout" || true
	fi
	echo "--- stopped $(date -u +%FT%TZ)" >>"$logs/$1.log"
}

# Services stop in tiers, each tier in parallel: the doors first (edges,
# api: no new sends), then presence and dispatchers, stores last so that
# what was acknowledged gets stored.
services_down() {
	for tier in "edge api" "presence dispatcher" "store"; do
		pids=""
		for s in $tier; do
			for f in "$run"/svc/"$s"-*.pid; do
				[ -f "$f" ] || continue
				svc_stop "$(basename "$f" .pid)" &
				pids="$pids $!"
			done
		done
		for p in $pids; do wait "$p" || true; done
	done
}

servers_down() {
	pids=""
	for s in kafka redis pg zk; do
		if [ -d "$run/$s" ]; then
			server_cmd stop "$s" &
			pids="$pids $!"
		fi
	done
	rc=0
	for p in $pids; do wait "$p" || rc=1; done
	return $rc
}

# ---- commands -------------------------------------------------------------

cmd_up() {
	t_up=$(now_ms)
	for v in CHAT_FLEET_PARTITIONS CHAT_FLEET_EDGES CHAT_FLEET_STORES \
		CHAT_FLEET_DISPATCHERS CHAT_FLEET_PRESENCE CHAT_FLEET_APIS; do
		eval "val=\${$v:-1}"
		case "$val" in
		'' | *[!0-9]*) die "$v=$val: not a number" ;;
		esac
	done
	[ "${CHAT_FLEET_PARTITIONS:-8}" -ge 1 ] ||
		die "CHAT_FLEET_PARTITIONS must be at least 1"
	if [ -n "${CHAT_FLEET_DIR:-}" ]; then
		run=$CHAT_FLEET_DIR
		mkdir -p "$run"
	else
		run=$(mktemp -d /tmp/chat-fleet-XXXXXX)
		mkdir -p "$cache_root"
		echo "$run" >"$last"
	fi
	run=$(cd "$run" && pwd)
	check_path "$run"
	logs=$run/logs
	mkdir -p "$logs" "$run/svc"
	export CHAT_LOG_DIR="$logs"
	# PostgreSQL runs as the postgres user when we are root: it must be
	# able to reach its directory.
	chmod 755 "$run"
	for s in $servers; do
		if [ -d "$run/$s" ] && server_cmd status "$s" >/dev/null 2>&1; then
			die "a fleet is already running in $run (fleet.sh down first)"
		fi
	done
	if [ ! -f "$run/jwt.secret" ]; then
		(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$run/jwt.secret")
	fi
	trap 'up_failed' EXIT
	servers_up
	write_env
	if [ "${CHAT_FLEET_SERVICES:-1}" = 1 ]; then
		services_up
		write_env
	fi
	trap - EXIT
	. "$run/fleet.env"
	cat <<EOF
fleet up in $(($(now_ms) - t_up)) ms; run dir $run
  ZooKeeper  $CHAT_ZK
  Redis      $CHAT_REDIS
  PostgreSQL $CHAT_STORE_DB
  Kafka      $CHAT_KAFKA (chat.ingress, chat.fanout: $CHAT_KAFKA_PARTITIONS partitions)
  logs       $logs/
  addresses  $run/fleet.env   (eval "\$(compose/fleet.sh env)")
EOF
	if [ -n "${CHAT_API_URL:-}" ]; then
		cat <<EOF
  edges      ${CHAT_EDGE_URLS:-}
  api        $CHAT_API_URL
Connect:     $build/client-tui/chat-tui --server $CHAT_API_URL --user NAME --signup
EOF
	fi
	echo "Stop:        CHAT_FLEET_DIR=$run $compose/fleet.sh down"
}

up_failed() {
	up_rc=$?
	[ $up_rc -ne 0 ] || return 0
	echo "fleet: up failed; logs in $logs/" >&2
	if [ "${CHAT_FLEET_KEEP:-0}" != 1 ]; then
		echo "fleet: stopping what started (CHAT_FLEET_KEEP=1 keeps it)" >&2
		services_down >/dev/null 2>&1 || true
		servers_down >/dev/null 2>&1 || true
	fi
	exit $up_rc
}

cmd_down() {
	run_dir_existing
	t0=$(now_ms)
	services_down
	servers_down || echo "fleet: a server did not stop cleanly" >&2
	say "fleet: down in $(($(now_ms) - t0)) ms"
	if [ "${1:-}" = --rm ]; then
		rm -rf "$run"
		[ -f "$last" ] && [ "$(cat "$last")" = "$run" ] && rm -f "$last"
		say "fleet: removed $run"
	else
		say "fleet: data and logs kept in $run"
	fi
}

cmd_status() {
	run_dir_existing
	. "$run/fleet.env"
	rc=0
	for s in $servers; do
		[ -d "$run/$s" ] || continue
		st=$(server_cmd status "$s" 2>/dev/null) || rc=1
		case $s in
		kafka) a=$CHAT_KAFKA ;;
		*) a=$("$compose/servers.sh" addr "$s" "$run/$s") ;;
		esac
		printf '%-14s %-16s %s\n' "$s" "$st" "$a"
	done
	for id in $(all_ids); do
		pid=$(pid_of "$run/svc/$id.pid" || true)
		if alive "$pid"; then st="running $pid"; else st=stopped rc=1; fi
		a=""
		[ -f "$run/svc/$id.port" ] && a=127.0.0.1:$(cat "$run/svc/$id.port")
		printf '%-14s %-16s %s\n' "$id" "$st" "$a"
	done
	return $rc
}

cmd_env() {
	run_dir_existing
	sed 's/^/export /' "$run/fleet.env"
}

# One server or instance: stop|kill|start|restart NAME
cmd_one() {
	verb=$1
	name=$2
	run_dir_existing
	case "$name" in
	zk | redis | pg | kafka)
		[ -d "$run/$name" ] || die "$name is not part of this fleet"
		case "$verb" in
		start) server_cmd start "$name" ;;
		*) server_cmd "$verb" "$name" ;;
		esac
		return
		;;
	esac
	[ -f "$run/svc/$name.cmd" ] || die "no instance '$name' in this fleet"
	case "$verb" in
	stop) svc_stop "$name" ;;
	kill) svc_stop "$name" KILL ;;
	start)
		svc_spawn "$name"
		svc_wait "$name"
		;;
	restart)
		svc_stop "$name"
		svc_spawn "$name"
		svc_wait "$name"
		;;
	esac
}

cmd_add() {
	svc=$1
	case " $services " in *" $svc "*) ;; *) die "unknown service '$svc' ($services)" ;; esac
	run_dir_existing
	i=1
	while [ -f "$run/svc/$svc-$i.cmd" ]; do i=$((i + 1)); done
	svc_spawn "$svc-$i"
	write_env
	svc_wait "$svc-$i"
	echo "$svc-$i"
}

[ $# -ge 1 ] || die "usage: fleet.sh up|down [--rm]|status|env|stop|kill|start|restart NAME|add SERVICE"
cmd=$1
shift
case "$cmd" in
up) cmd_up ;;
down) cmd_down "$@" ;;
status) cmd_status ;;
env) cmd_env ;;
stop | kill | start | restart) cmd_one "$cmd" "${1:?name}" ;;
add) cmd_add "${1:?service}" ;;
*) die "unknown command '$cmd'" ;;
esac
