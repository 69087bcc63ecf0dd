#!/bin/sh
# The quick start: install what is missing, build, start chatd in the
# background (unless one is already running for this data directory), and
# open the terminal client. Run it again in a second terminal to chat as a
# second person. Arguments go to chat-tui (e.g. --user bob --signup).
#
# Environment: CHAT_DATA_DIR (default ~/.local/share/chat), CHAT_PORT (7001),
# CHAT_API_PORT (7000). `scripts/chat.sh --stop` stops the background chatd.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
data=${CHAT_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/chat}
api_port=${CHAT_API_PORT:-7000}
pidfile=$data/chatd.pid
logfile=$data/chatd.log

running() {
	[ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

if [ "${1:-}" = "--stop" ]; then
	if running; then
		kill "$(cat "$pidfile")"
		echo "chatd stopped"
	else
		echo "chatd is not running"
	fi
	exit 0
fi

"$top/scripts/deps.sh" build
if [ ! -x "$top/build/svc/chatd/chatd" ] || [ ! -x "$top/build/client-tui/chat-tui" ] ||
   [ -n "$(find "$top/svc" "$top/client-tui" "$top/proto" -newer "$top/build/svc/chatd/chatd" -name '*.[ch]' 2>/dev/null | head -1)" ]; then
	echo "building..." >&2
	BUILD_DIR="$top/build" "$top/scripts/build.sh" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi

mkdir -p "$data"
if ! running; then
	rm -f "$data/ready"
	CHAT_DATA_DIR=$data nohup "$top/build/svc/chatd/chatd" \
		--data-dir "$data" --api-port "$api_port" --port "${CHAT_PORT:-7001}" \
		--ready-file "$data/ready" >"$logfile" 2>&1 &
	echo $! >"$pidfile"
	i=0
	while [ ! -f "$data/ready" ]; do
		if ! running; then
			echo "chatd failed to start; its log ($logfile):" >&2
			tail -20 "$logfile" >&2
			exit 1
		fi
		i=$((i + 1))
		[ $i -gt 600 ] && { echo "chatd did not get ready; see $logfile" >&2; exit 1; }
		sleep 0.1
	done
	echo "chatd started (pid $(cat "$pidfile"), data in $data, log in $logfile)" >&2
fi
api_url=$(sed -n 's/^api_url=//p' "$data/ready")
exec "$top/build/client-tui/chat-tui" --server "$api_url" "$@"
