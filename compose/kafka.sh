#!/bin/sh
# Apache Kafka 3.9.1 for the local fleet: one KRaft broker (combined
# broker+controller) on 127.0.0.1, run from jars fetched from Maven Central.
#
#   kafka.sh fetch                       jars into the cache (idempotent)
#   kafka.sh start DIR PORT CTRL_PORT    format DIR (first time) and start;
#                                        returns once the broker answers
#   kafka.sh topics DIR BOOTSTRAP PARTITIONS
#                                        create chat.ingress, chat.fanout
#   kafka.sh stop DIR                    SIGTERM, wait, SIGKILL after
#                                        CHAT_KAFKA_STOP_TIMEOUT (30 s)
#   kafka.sh kill DIR                    SIGKILL (a crash)
#   kafka.sh restart DIR                 stop, then start on the same data
#                                        and ports
#   kafka.sh status DIR                  "running PID" or "stopped"; exit 0/1
#
# Files in DIR: server.properties, data/ (the log), kafka.pid, kafka.port,
# kafka.controller.port; the log goes to ${CHAT_LOG_DIR:-DIR}/kafka.log.
# Environment: XDG_CACHE_HOME (cache root), CHAT_KAFKA_CACHE (the whole
# cache dir), CHAT_MAVEN_REPO (maven local repository, default ~/.m2),
# CHAT_KAFKA_HEAP (512m), CHAT_KAFKA_START_TIMEOUT (90 s).
#
# Kafka 4.x must not be used: Debian's librdkafka 2.0.2 loses consumer
# groups against it.
set -eu
compose=$(cd "$(dirname "$0")" && pwd)
. "$compose/lib.sh"

version=3.9.1
cache=${CHAT_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chat/kafka-$version}
libs=$cache/libs
marker=$cache/.fetched
# Bump when the pom or the generated files change: older caches are refetched.
recipe="kafka $version recipe 1"
topics="chat.ingress chat.fanout"

write_pom() {
	cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by compose/kafka.sh: the jars of a Kafka $version broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>chat.local</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>$version</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$version</version>
    </dependency>
    <!-- TopicCommand lives in kafka-tools since 3.5. -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.6.1</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

# The broker logs WARN and up to kafka.log, plus its start and stop lines.
write_log4j() {
	cat >"$1" <<'EOF'
# Written by compose/kafka.sh. kafka.logs.dir is set on the java command line.
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/kafka.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.Kafka$=INFO
EOF
	# Command line tools (format, topics): warnings to stderr only.
	cat >"$2" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# fetched: the cache holds the jars of this recipe.
fetched() {
	[ -d "$libs" ] && [ -f "$marker" ] &&
		[ "$(head -1 "$marker")" = "$recipe" ]
}

cmd_fetch() {
	if fetched; then
		return 0
	fi
	command -v mvn >/dev/null 2>&1 ||
		die "mvn not found (scripts/deps.sh fleet installs maven)"
	command -v java >/dev/null 2>&1 ||
		die "java not found (scripts/deps.sh fleet installs openjdk-17-jre-headless)"
	mkdir -p "$cache"
	# Two fetches at once (parallel tests) take turns.
	exec 9>"$cache/.lock"
	flock 9
	if fetched; then
		exec 9>&-
		return 0
	fi
	say "kafka: fetching Kafka $version jars from Maven Central into $cache"
	t0=$(now_ms)
	write_pom "$cache/pom.xml"
	rm -rf "$libs.tmp"
	set -- -q -B -Dstyle.color=never -f "$cache/pom.xml"
	if [ -n "${CHAT_MAVEN_REPO:-}" ]; then
		set -- "$@" "-Dmaven.repo.local=$CHAT_MAVEN_REPO"
	fi
	if ! mvn "$@" dependency:copy-dependencies -DincludeScope=runtime \
		"-DoutputDirectory=$libs.tmp" >"$cache/fetch.log" 2>&1; then
		cat "$cache/fetch.log" >&2
		die "kafka: mvn dependency:copy-dependencies failed (log above)"
	fi
	[ -f "$libs.tmp/kafka_2.13-$version.jar" ] ||
		die "kafka: kafka_2.13-$version.jar missing after the fetch"
	rm -rf "$libs"
	mv "$libs.tmp" "$libs"
	write_log4j "$cache/log4j.properties" "$cache/tools-log4j.properties"
	printf "%s\nfetched %s\n" "$recipe" "$(date -u +%FT%TZ)" >"$marker"
	say "kafka: fetched $(ls "$libs" | wc -l) jars in $(($(now_ms) - t0)) ms"
	exec 9>&-
}

# java_tool CLASS ARGS...: run a Kafka command line tool from the jars.
java_tool() {
	java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
		"-Dlog4j.configuration=file:$cache/tools-log4j.properties" \
		-cp "$libs/*" "$@"
}

# A cluster id: 16 random bytes in URL-safe base64 without padding, as
# `StorageTool random-uuid` prints (this saves a JVM start). Kafka refuses
# ids that start with '-'.
cluster_id() {
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
		case "$id" in -*) ;; *) echo "$id" && return 0 ;; esac
	done
}

write_properties() { # dir port cport
	cat >"$1/server.properties" <<EOF
# Written by compose/kafka.sh: one combined broker+controller for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$3
listeners=PLAINTEXT://127.0.0.1:$2,CONTROLLER://127.0.0.1:$3
advertised.listeners=PLAINTEXT://127.0.0.1:$2
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$1/data
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
# A broker killed with -9 re-registers only after its old session expires.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2500
num.network.threads=2
num.io.threads=4
log.retention.hours=24
EOF
	echo "$2" >"$1/kafka.port"
	echo "$3" >"$1/kafka.controller.port"
}

broker_answers() { # port
	kcat -L -b "127.0.0.1:$1" -m 2 >/dev/null 2>&1
}

cmd_start() { # dir port cport
	[ $# -eq 3 ] || die "usage: kafka.sh start DIR PORT CONTROLLER_PORT"
	dir=$1
	check_path "$dir"
	cmd_fetch
	command -v kcat >/dev/null 2>&1 || die "kcat not found (scripts/deps.sh fleet)"
	mkdir -p "$dir"
	pid=$(pid_of "$dir/kafka.pid" || true)
	if alive "$pid"; then
		die "kafka: already running in $dir (pid $pid)"
	fi
	t0=$(now_ms)
	if [ ! -f "$dir/data/meta.properties" ]; then
		write_properties "$dir" "$2" "$3"
		mkdir -p "$dir/data"
		java_tool kafka.tools.StorageTool format -t "$(cluster_id)" \
			-c "$dir/server.properties" >"$dir/format.out" 2>&1 || {
			cat "$dir/format.out" >&2
			die "kafka: StorageTool format failed"
		}
	fi
	logs=$(logdir "$dir")
	# The JVM's own output (start failures) goes to kafka.out.
	heap=${CHAT_KAFKA_HEAP:-512m}
	echo "--- start $(date -u +%FT%TZ)" >>"$logs/kafka.out"
	spawn "$logs/kafka.out" java "-Xmx$heap" "-Xms$heap" \
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
		"-Dkafka.logs.dir=$logs" \
		"-Dlog4j.configuration=file:$cache/log4j.properties" \
		-cp "$libs/*" kafka.Kafka "$dir/server.properties"
	pid=$spawned_pid
	echo "$pid" >"$dir/kafka.pid"
	port=$(cat "$dir/kafka.port")
	if ! wait_for "${CHAT_KAFKA_START_TIMEOUT:-90}" "$pid" kafka \
		broker_answers "$port"; then
		tail -30 "$logs/kafka.out" "$logs/kafka.log" >&2 2>/dev/null || true
		stop_pid "$pid" 10 || true
		return 1
	fi
	say "kafka: broker on 127.0.0.1:$port (pid $pid) ready in $(($(now_ms) - t0)) ms"
}

cmd_topics() { # dir bootstrap partitions
	[ $# -eq 3 ] || die "usage: kafka.sh topics DIR BOOTSTRAP PARTITIONS"
	case "$3" in '' | *[!0-9]*) die "kafka: partitions '$3' is not a number" ;; esac
	[ "$3" -ge 1 ] || die "kafka: partitions must be at least 1"
	cmd_fetch
	t0=$(now_ms)
	# One JVM per topic, both at once.
	pids=""
	for t in $topics; do
		java_tool org.apache.kafka.tools.TopicCommand \
			--bootstrap-server "$2" --create --if-not-exists \
			--topic "$t" --partitions "$3" --replication-factor 1 \
			--config min.insync.replicas=1 >"$1/topic-$t.out" 2>&1 &
		pids="$pids $!"
	done
	rc=0
	for p in $pids; do
		wait "$p" || rc=1
	done
	if [ $rc -ne 0 ]; then
		for t in $topics; do cat "$1/topic-$t.out" >&2; done
		die "kafka: topic creation failed"
	fi
	# Wait until the metadata shows every partition with a leader.
	for t in $topics; do
		wait_for 30 "" "kafka topic $t" topic_ready "$2" "$t" "$3" ||
			die "kafka: topic $t not ready"
	done
	say "kafka: topics $topics with $3 partitions in $(($(now_ms) - t0)) ms"
}

# topic_ready BOOTSTRAP TOPIC N: the topic has N partitions, each led.
topic_ready() {
	n=$(kcat -L -b "$1" -t "$2" -m 3 2>/dev/null |
		grep -c 'partition [0-9]*, leader [0-9]' || true)
	[ "$n" -eq "$3" ]
}

cmd_stop() { # dir [signal]
	[ $# -ge 1 ] || die "usage: kafka.sh stop DIR"
	pid=$(pid_of "$1/kafka.pid" || true)
	if alive "$pid"; then
		if [ "${2:-TERM}" = KILL ]; then
			kill -KILL "$pid" 2>/dev/null || true
			wait_dead "$pid" 10 || die "kafka: pid $pid survived SIGKILL"
		else
			stop_pid "$pid" "${CHAT_KAFKA_STOP_TIMEOUT:-30}"
		fi
	fi
	rm -f "$1/kafka.pid"
}

cmd_restart() { # dir
	[ $# -eq 1 ] || die "usage: kafka.sh restart DIR"
	[ -f "$1/kafka.port" ] || die "kafka: $1 holds no broker"
	cmd_stop "$1"
	cmd_start "$1" "$(cat "$1/kafka.port")" "$(cat "$1/kafka.controller.port")"
}

cmd_status() { # dir
	pid=$(pid_of "$1/kafka.pid" || true)
	if alive "$pid"; then
		echo "running $pid"
		return 0
	fi
	echo stopped
	return 1
}

[ $# -ge 1 ] || die "usage: kafka.sh fetch|start|topics|stop|kill|restart|status ..."
what=$1
shift
case "$what" in
fetch) cmd_fetch ;;
start) cmd_start "$@" ;;
topics) cmd_topics "$@" ;;
stop) cmd_stop "${1:?DIR}" ;;
kill) cmd_stop "${1:?DIR}" KILL ;;
restart) cmd_restart "$@" ;;
status) cmd_status "${1:?DIR}" ;;
*) die "kafka.sh: unknown command '$what'" ;;
esac
