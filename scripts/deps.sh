#!/bin/sh
# Install the Debian packages the project needs, only those missing.
# Usage: scripts/deps.sh [build|fleet|test|all]   (default: build)
#   build: compilers and libraries to build every program (the quick start)
#   fleet: build + the servers of the local fleet (compose/fleet.sh): Redis,
#          ZooKeeper's jars, PostgreSQL 15, Java 17 and Maven (Kafka 3.9 is
#          fetched from Maven Central by compose/kafka.sh), kcat
#   test:  fleet + tmux, clang (libFuzzer, sanitizers) and docker-compose
#          (validates compose/docker-compose.yml): everything the test suite
#          needs on a fresh Debian 12
#   all:   the same as test
set -eu

what=${1:-build}
build_pkgs="build-essential cmake pkg-config protobuf-c-compiler
 libprotobuf-c-dev libnng-dev libwebsockets-dev librdkafka-dev libjwt-dev
 libncurses-dev libsqlite3-dev libsodium-dev libssl-dev libcmocka-dev
 libhiredis-dev libzookeeper-mt-dev libpq-dev"
# ZooKeeper runs from libzookeeper-java's jars on the headless JRE: the
# `zookeeper` package would add a full desktop JRE and a system service.
fleet_pkgs="redis-server redis-tools libzookeeper-java postgresql kcat maven
 openjdk-17-jre-headless"
test_pkgs="tmux clang libclang-rt-14-dev docker-compose"

case "$what" in
build) pkgs=$build_pkgs ;;
fleet) pkgs="$build_pkgs $fleet_pkgs" ;;
test | all) pkgs="$build_pkgs $fleet_pkgs $test_pkgs" ;;
*) echo "usage: $0 [build|fleet|test|all]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1; then
	sudo="sudo"
else
	echo "deps: need root (or sudo) to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null || $sudo apt-get update
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing
