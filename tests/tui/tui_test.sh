#!/bin/sh
# Drive two chat-tui instances in one private tmux server against a running
# chat server and check what a person would see.
#
#   CHAT_TUI=/path/to/chat-tui CHAT_SERVER=http://127.0.0.1:PORT \
#       sh tests/tui/tui_test.sh
#
# It does not start the server. Every check polls `tmux capture-pane` until
# the expected text shows up or a deadline passes; on failure it prints the
# screens and the clients' logs. Only the tmux server it created is killed.
# Exit status 0 only when every check passed.
set -u

: "${CHAT_TUI:?set CHAT_TUI to the chat-tui binary}"
: "${CHAT_SERVER:?set CHAT_SERVER to the api URL (http://HOST:PORT)}"
if ! command -v tmux >/dev/null 2>&1; then
	echo "tui_test: tmux is not installed" >&2
	exit 1
fi
if [ ! -x "$CHAT_TUI" ]; then
	echo "tui_test: $CHAT_TUI is not executable" >&2
	exit 1
fi

TIMEOUT=${TUI_TEST_TIMEOUT:-15}  # seconds per check
sock="chat-tui-test-$$"
work=$(mktemp -d /tmp/chat-tui-test-XXXXXX) || exit 1
A="alice-$$"
B="bob-$$"
ROOM="room-$$"
SOLO="solo-$$"
passed=0
failed=0

T() {
	tmux -L "$sock" "$@"
}

cleanup() {
	T kill-server >/dev/null 2>&1
	if [ "$failed" -eq 0 ]; then
		rm -rf "$work"
	else
		echo "tui_test: logs kept in $work" >&2
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

printf 'pass-%s-word\n' "$$" >"$work/pw"
chmod 600 "$work/pw"

screen() {
	T capture-pane -p -t "$1" 2>/dev/null
}

show() {
	echo "----- screen of $1 -----" >&2
	screen "$1" >&2
	echo "----- end of $1 -----" >&2
}

fail() {
	failed=$((failed + 1))
	echo "FAIL: $*" >&2
	show a
	show b
	for l in "$work"/a.log "$work"/b.log; do
		[ -f "$l" ] || continue
		echo "----- last lines of $l -----" >&2
		tail -n 25 "$l" >&2
	done
	echo "$passed passed, $failed failed"
	exit 1
}

ok() {
	passed=$((passed + 1))
	echo "ok $passed - $*"
}

# wait_for SESSION TEXT DESCRIPTION: poll until TEXT (fixed string) is on
# the screen.
wait_for() {
	n=0
	limit=$((TIMEOUT * 10 / 3))
	while [ "$n" -lt "$limit" ]; do
		if screen "$1" | grep -F -q -- "$2"; then
			ok "$3"
			return 0
		fi
		sleep 0.3
		n=$((n + 1))
	done
	fail "$3: '$2' never appeared on $1's screen"
}

# wait_re SESSION REGEX DESCRIPTION: the same with an extended regex.
wait_re() {
	n=0
	limit=$((TIMEOUT * 10 / 3))
	while [ "$n" -lt "$limit" ]; do
		if screen "$1" | grep -E -q -- "$2"; then
			ok "$3"
			return 0
		fi
		sleep 0.3
		n=$((n + 1))
	done
	fail "$3: /$2/ never matched $1's screen"
}

# wait_gone SESSION TEXT DESCRIPTION: poll until TEXT is no longer shown.
wait_gone() {
	n=0
	limit=$((TIMEOUT * 10 / 3))
	while [ "$n" -lt "$limit" ]; do
		if ! screen "$1" | grep -F -q -- "$2"; then
			ok "$3"
			return 0
		fi
		sleep 0.3
		n=$((n + 1))
	done
	fail "$3: '$2' is still on $1's screen"
}

# type SESSION TEXT: type a line and press Enter.
type_line() {
	T send-keys -t "$1" -l -- "$2" || fail "send-keys to $1"
	T send-keys -t "$1" Enter || fail "send-keys to $1"
}

# The channel id shown in SESSION's status bar for a channel named NAME
# ("| #12 NAME (" or "| #12 @NAME").
channel_id() {
	screen "$1" |
		sed -n "s/.*| #\([0-9][0-9]*\) $2\( .*\)\{0,1\}\$/\1/p" |
		head -n 1
}

# Line number of the first line holding TEXT on SESSION's screen.
line_of() {
	screen "$1" | grep -F -n -- "$2" | head -n 1 | cut -d: -f1
}

# no_error SESSION DESCRIPTION: the status line shows no error.
no_error() {
	if screen "$1" | grep -q "| error:"; then
		fail "$2: an error is shown on $1"
	fi
	ok "$2"
}

start_client() {
	# The shell reports how chat-tui ended and keeps the pane open.
	T new-session -d -s "$1" -x 120 -y 35 \
		"'$CHAT_TUI' --server '$CHAT_SERVER' --user '$2' \
--password-file '$work/pw' --signup --log '$work/$1.log'; \
echo \"EXITED rc=\$?\"; sleep 600" || fail "tmux new-session $1"
}

start_client a "$A"
start_client b "$B"
wait_for a "[online] $A" "alice signs up and connects"
wait_for b "[online] $B" "bob signs up and connects"

# alice creates a channel with bob; bob sees it without asking.
type_line a "/create $ROOM $B"
wait_re a "\\| #[0-9]+ $ROOM \\(" "alice's channel is open"
room=$(channel_id a "$ROOM")
[ -n "$room" ] || fail "cannot read the id of $ROOM on alice's screen"
wait_for b "$room $ROOM" "bob sees $ROOM (#$room) appear in his list"

# bob joins it although he is a member already: no error.
type_line b "/join $room"
wait_re b "\\| #$room $ROOM \\(" "bob's /join $room opens the channel"
no_error b "joining a channel twice is not an error"

# alice creates a second channel without bob; bob joins it.
type_line a "/create $SOLO"
wait_re a "\\| #[0-9]+ $SOLO \\(" "alice creates $SOLO"
solo=$(channel_id a "$SOLO")
[ -n "$solo" ] || fail "cannot read the id of $SOLO on alice's screen"
type_line b "/join $solo"
wait_for b "$solo $SOLO" "bob joins $SOLO (#$solo) and it is listed"
wait_re b "\\| #$solo $SOLO \\(" "bob's view switches to $SOLO"
no_error b "bob's /join $solo succeeded"

# Back to the first channel on both sides.
type_line a "/switch $room"
type_line b "/switch $room"
wait_re a "\\| #$room $ROOM \\(" "alice switches to $ROOM"
wait_re b "\\| #$room $ROOM \\(" "bob switches to $ROOM"

# Messages both ways, the same order on both screens.
M1="hello from alice $$"
M2="hi from bob $$"
M3="third one $$"
type_line a "$M1"
wait_for b "$A: $M1" "bob receives alice's message"
type_line b "$M2"
wait_for a "$B: $M2" "alice receives bob's message"
type_line a "$M3"
wait_for b "$A: $M3" "bob receives the third message"
wait_for a "$A: $M3" "alice sees her own third message"
for s in a b; do
	l1=$(line_of $s "$M1")
	l2=$(line_of $s "$M2")
	l3=$(line_of $s "$M3")
	if [ -z "$l1" ] || [ -z "$l2" ] || [ -z "$l3" ] ||
		[ "$l1" -ge "$l2" ] || [ "$l2" -ge "$l3" ]; then
		fail "order on $s: lines $l1, $l2, $l3"
	fi
	ok "messages are in send order on $s's screen"
done

# bob reads the channel; alice sees the receipt.
type_line b "/read $room"
wait_for a "read by $B" "alice sees 'read by $B'"

# bob goes away; alice's /who shows it.
type_line b "/status away"
wait_for b "$B (away)" "bob's status bar shows away"
type_line a "/who"
wait_re a "$B +away" "alice's /who shows bob away"

# A direct channel: alice opens it, writes, bob sees it.
type_line a "/dm $B"
wait_re a "\\| #[0-9]+ @$B" "alice opens the DM with bob"
dm=$(channel_id a "@$B")
[ -n "$dm" ] || fail "cannot read the DM's id on alice's screen"
wait_for b "$dm @$A" "bob's list shows the DM with alice"
M4="psst $$"
type_line a "$M4"
type_line b "/switch $dm"
wait_for b "$A: $M4" "bob reads the DM"

# An error is shown on the status line, and the client goes on.
type_line b "/join 987654321"
wait_for b "| error: " "a bad /join shows an error on the status line"

# bob leaves the second channel; it leaves his list.
type_line b "/leave $solo"
wait_gone b "$SOLO" "$SOLO disappears from bob's list"

# Both quit.
type_line b "/quit"
wait_for b "EXITED rc=0" "bob's /quit ends chat-tui with status 0"
type_line a "/quit"
wait_for a "EXITED rc=0" "alice's /quit ends chat-tui with status 0"

echo "$passed passed, $failed failed"
exit 0
