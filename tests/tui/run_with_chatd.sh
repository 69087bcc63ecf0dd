#!/bin/sh
# Start a fresh chatd (temporary data dir, free ports), run a test command
# with CHAT_SERVER set to its api URL, stop chatd by pid, and clean up.
# Usage: run_with_chatd.sh PATH-TO-CHATD COMMAND [ARGS...]
set -u
chatd=$1
shift
dir=$(mktemp -d /tmp/chat-tui-XXXXXX)
"$chatd" --data-dir "$dir" --port 0 --api-port 0 --ready-file "$dir/ready" \
	>"$dir/chatd.log" 2>&1 &
pid=$!
i=0
while [ ! -f "$dir/ready" ]; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "chatd exited during start:" >&2
		cat "$dir/chatd.log" >&2
		exit 1
	fi
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "chatd not ready after 30 s" >&2
		kill "$pid"
		exit 1
	fi
	sleep 0.1
done
CHAT_SERVER=$(sed -n 's/^api_url=//p' "$dir/ready")
export CHAT_SERVER
"$@"
rc=$?
kill "$pid" 2>/dev/null
wait "$pid"
stop=$?
if [ $rc -ne 0 ] || [ $stop -ne 0 ]; then
	echo "--- chatd log ($dir/chatd.log), test rc=$rc, chatd exit=$stop" >&2
	tail -50 "$dir/chatd.log" >&2
	[ $rc -eq 0 ] && rc=1
else
	rm -rf "$dir"
fi
exit $rc
