#!/bin/sh
# Install the Debian packages the project needs, only those missing.
# Usage: scripts/deps.sh [build|test|all]   (default: build)
#   build: compilers and libraries to build chatd and chat-tui
#   test:  build + tmux and clang (libFuzzer, sanitizers) for the test suite
set -eu

what=${1:-build}
build_pkgs="build-essential cmake pkg-config protobuf-c-compiler
 libprotobuf-c-dev libnng-dev libwebsockets-dev librdkafka-dev libjwt-dev
 libncurses-dev libsqlite3-dev libsodium-dev libssl-dev libcmocka-dev"
test_pkgs="tmux clang libclang-rt-14-dev"

case "$what" in
build) pkgs=$build_pkgs ;;
test | all) pkgs="$build_pkgs $test_pkgs" ;;
*) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
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
