#!/bin/sh
# Run the protocol-level suite (tests/integration/chatd_test) against the
# fleet that run_with_fleet.sh brought up: the api of fleet.env, and its
# first edge for the tests that dial an edge with a token of their own.
# The tests that need a local chatd (restart, crash) skip themselves.
# Usage: run_with_fleet.sh sh chatd_on_fleet.sh PATH-TO-chatd_test
set -u
[ $# -eq 1 ] || {
	echo "usage: $0 PATH-TO-chatd_test" >&2
	exit 2
}
: "${CHAT_API_URL:?run under tests/fleet/run_with_fleet.sh}"
: "${CHAT_EDGE_URLS:?run under tests/fleet/run_with_fleet.sh}"
CHAT_TEST_API_URL=$CHAT_API_URL
CHAT_TEST_EDGE_URL=${CHAT_EDGE_URLS%%,*}
export CHAT_TEST_API_URL CHAT_TEST_EDGE_URL
exec "$1"
