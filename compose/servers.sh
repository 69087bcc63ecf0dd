#!/bin/sh
# Redis 7, ZooKeeper 3.8 and PostgreSQL 15 as local processes for the fleet
# and its tests: 127.0.0.1 only, a free port, data under DIR, stopped by pid.
#
#   servers.sh start   redis|zk|pg DIR [PORT]   start (PORT: a free one);
#                                               returns once it answers
#   servers.sh stop    redis|zk|pg DIR          clean stop, SIGKILL after
#                                               CHAT_STOP_TIMEOUT (20 s)
#   servers.sh kill    redis|zk|pg DIR          SIGKILL (a crash)
#   servers.sh restart redis|zk|pg DIR          stop, start on the same port
#                                               and data
#   servers.sh status  redis|zk|pg DIR          "running PID" / "stopped"
#   servers.sh addr    redis|zk|pg DIR          the address clients use
#
# Files in DIR: NAME.pid, NAME.port and the data (zk: zoo.cfg, data/; pg:
# data/, sock/). Logs go to ${CHAT_LOG_DIR:-DIR}/NAME.log.
# Redis keeps nothing on disk (--save "" --appendonly no): a restart empties
# it. PostgreSQL runs with fsync=off unless CHAT_PG_FSYNC=on (a development
# fleet: a process crash loses nothing, a machine crash may).
set -eu
compose=$(cd "$(dirname "$0")" && pwd)
. "$compose/lib.sh"

pgbin=${CHAT_PG_BIN:-/usr/lib/postgresql/15/bin}
zkjars=${CHAT_ZK_CLASSPATH:-/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar}
stop_timeout=${CHAT_STOP_TIMEOUT:-20}
start_timeout=${CHAT_START_TIMEOUT:-60}

need() { # program package
	command -v "$1" >/dev/null 2>&1 ||
		die "$1 not found (scripts/deps.sh fleet installs $2)"
}

# ---- Redis -----------------------------------------------------------------

redis_ready() {
	[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
}

redis_start() { # dir port
	need redis-server redis-server
	need redis-cli redis-tools
	logs=$(logdir "$1")
	spawn "$logs/redis.log" redis-server --port "$2" --bind 127.0.0.1 \
		--save "" --appendonly no --daemonize no --dir "$1"
	echo "$spawned_pid" >"$1/redis.pid"
	wait_for "$start_timeout" "$spawned_pid" redis redis_ready "$2"
}

# ---- ZooKeeper -------------------------------------------------------------

zk_ready() {
	[ "$("$(freeport_bin)" --ask 127.0.0.1 "$1" ruok 2>/dev/null)" = imok ]
}

zk_start() { # dir port
	need java openjdk-17-jre-headless
	[ -f /usr/share/java/zookeeper.jar ] ||
		die "/usr/share/java/zookeeper.jar missing (scripts/deps.sh fleet installs zookeeper)"
	logs=$(logdir "$1")
	mkdir -p "$1/data"
	# tickTime 1000: sessions may time out between 2 and 20 s.
	cat >"$1/zoo.cfg" <<EOF
# Written by compose/servers.sh: a standalone ZooKeeper for the fleet.
tickTime=1000
dataDir=$1/data
clientPort=$2
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,cons,conf,dump
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
	# zookeeper.jar's manifest names the rest of its classpath
	# (zookeeper-jute, netty, slf4j-api, ...); slf4j-simple logs to stderr.
	spawn "$logs/zk.log" java -Xmx128m -XX:+UseSerialGC \
		-Djava.awt.headless=true \
		-Dorg.slf4j.simpleLogger.showDateTime=true \
		-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd\'T\'HH:mm:ss.SSS \
		-cp "$zkjars" org.apache.zookeeper.server.ZooKeeperServerMain \
		"$1/zoo.cfg"
	echo "$spawned_pid" >"$1/zk.pid"
	wait_for "$start_timeout" "$spawned_pid" zookeeper zk_ready "$2"
}

# ---- PostgreSQL ------------------------------------------------------------

# as_pg CMD...: run CMD as the postgres user when we are root (initdb and
# postgres refuse root), as ourselves otherwise.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_ready() {
	"$pgbin/pg_isready" -q -h 127.0.0.1 -p "$1" -U chat -d postgres
}

pg_start() { # dir port
	[ -x "$pgbin/pg_ctl" ] ||
		die "$pgbin/pg_ctl missing (scripts/deps.sh fleet installs postgresql)"
	logs=$(logdir "$1")
	mkdir -p "$1/sock"
	touch "$logs/pg.log"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres "$1" "$1/sock" "$logs/pg.log"
		[ -d "$1/data" ] && chown -R postgres "$1/data"
		runuser -u postgres -- test -w "$1" ||
			die "postgres cannot reach $1: make every parent directory searchable (chmod a+x) or use a run dir under /tmp"
	fi
	if [ ! -f "$1/data/PG_VERSION" ]; then
		rm -rf "$1/data"
		as_pg "$pgbin/initdb" -D "$1/data" -U chat --auth=trust -E UTF8 \
			--locale=C.UTF-8 >"$1/initdb.out" 2>&1 || {
			cat "$1/initdb.out" >&2
			die "postgresql: initdb failed"
		}
	fi
	fsync=${CHAT_PG_FSYNC:-off}
	case "$fsync" in on | off) ;; *) die "CHAT_PG_FSYNC must be on or off" ;; esac
	if ! as_pg "$pgbin/pg_ctl" -D "$1/data" -l "$logs/pg.log" -w \
		-t "$start_timeout" -o "-p $2 -k $1/sock -c listen_addresses=127.0.0.1 -c fsync=$fsync" \
		start >"$1/pg_ctl.out" 2>&1; then
		cat "$1/pg_ctl.out" >&2
		tail -20 "$logs/pg.log" >&2
		return 1
	fi
	sed -n 1p "$1/data/postmaster.pid" >"$1/pg.pid"
	wait_for "$start_timeout" "$(cat "$1/pg.pid")" postgresql pg_ready "$2" ||
		return 1
	# The store's database, once.
	have=$(as_pg "$pgbin/psql" -h 127.0.0.1 -p "$2" -U chat -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'chat'")
	if [ "$have" != 1 ]; then
		as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$2" -U chat chat ||
			die "postgresql: createdb chat failed"
	fi
}

# Fast shutdown is SIGINT (SIGTERM waits for every client to leave).
pg_stop() { # dir
	pid=$(pid_of "$1/pg.pid" || true)
	alive "$pid" && stop_pid "$pid" "$stop_timeout" INT
	pg_reap "$1"
}

# After the postmaster died: wait for its backends (they exit when they see
# it gone), then drop the stale lock file so the next start is clean.
pg_reap() { # dir [children...]
	d=$1
	shift
	for c in "$@"; do
		wait_dead "$c" 10 || kill -KILL "$c" 2>/dev/null || true
	done
	# A dead postmaster that nobody reaped stays a zombie, and kill -0 on a
	# zombie succeeds: postgres would take its lock files for live ones.
	rm -f "$d/data/postmaster.pid" "$d"/sock/.s.PGSQL.*.lock
}

pg_kill() { # dir
	pid=$(pid_of "$1/pg.pid" || true)
	if alive "$pid"; then
		kids=$(children "$pid")
		kill -KILL "$pid" 2>/dev/null || true
		wait_dead "$pid" 10 || die "postgresql: pid $pid survived SIGKILL"
		# shellcheck disable=SC2086
		pg_reap "$1" $kids
	fi
}

# ---- common ----------------------------------------------------------------

addr() { # name dir
	p=$(cat "$2/$1.port")
	case "$1" in
	pg) echo "postgresql://chat@127.0.0.1:$p/chat" ;;
	*) echo "127.0.0.1:$p" ;;
	esac
}

start() { # name dir [port]
	n=$1
	d=$2
	check_path "$d"
	mkdir -p "$d"
	pid=$(pid_of "$d/$n.pid" || true)
	alive "$pid" && die "$n: already running in $d (pid $pid)"
	t0=$(now_ms)
	tries=1
	if [ -n "${3:-}" ]; then
		port=$3
	elif [ -f "$d/$n.port" ]; then
		port=$(cat "$d/$n.port")
	else
		port=$(freeports 1)
		tries=3 # a port picked here may be taken before the bind
	fi
	while :; do
		echo "$port" >"$d/$n.port"
		if "${n}_start" "$d" "$port"; then
			break
		fi
		stop "$n" "$d" KILL >/dev/null 2>&1 || true
		tries=$((tries - 1))
		[ $tries -gt 0 ] || die "$n: failed to start (log: $(logdir "$d")/$n.log)"
		say "$n: start failed on port $port; another port"
		port=$(freeports 1)
	done
	say "$n: $(addr "$n" "$d") (pid $(cat "$d/$n.pid")) ready in $(($(now_ms) - t0)) ms"
}

stop() { # name dir [KILL]
	n=$1
	d=$2
	if [ "${3:-}" = KILL ]; then
		if [ "$n" = pg ]; then
			pg_kill "$d"
		else
			pid=$(pid_of "$d/$n.pid" || true)
			if alive "$pid"; then
				kill -KILL "$pid" 2>/dev/null || true
				wait_dead "$pid" 10 || die "$n: pid $pid survived SIGKILL"
			fi
		fi
	elif [ "$n" = pg ]; then
		pg_stop "$d"
	else
		pid=$(pid_of "$d/$n.pid" || true)
		alive "$pid" && stop_pid "$pid" "$stop_timeout"
	fi
	rm -f "$d/$n.pid"
}

status() { # name dir
	pid=$(pid_of "$2/$1.pid" || true)
	if alive "$pid"; then
		echo "running $pid"
		return 0
	fi
	echo stopped
	return 1
}

[ $# -ge 3 ] || die "usage: servers.sh start|stop|kill|restart|status|addr redis|zk|pg DIR [PORT]"
cmd=$1
name=$2
dir=$3
case "$name" in redis | zk | pg) ;; *) die "unknown server '$name' (redis, zk, pg)" ;; esac
case "$cmd" in
start) start "$name" "$dir" "${4:-}" ;;
stop) stop "$name" "$dir" ;;
kill) stop "$name" "$dir" KILL ;;
restart)
	[ -f "$dir/$name.port" ] || die "$name: nothing was started in $dir"
	stop "$name" "$dir"
	start "$name" "$dir"
	;;
status) status "$name" "$dir" ;;
addr) addr "$name" "$dir" ;;
*) die "unknown command '$cmd'" ;;
esac
