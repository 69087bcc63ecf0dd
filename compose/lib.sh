# Shared POSIX sh helpers for compose/kafka.sh, servers.sh and fleet.sh.
# Sourced, not run. Sets `compose` (this directory) and `top` (the repo).
# shellcheck shell=sh

compose=${compose:-$(cd "$(dirname "$0")" && pwd)}
top=${top:-$(cd "$compose/.." && pwd)}

# say MSG...: progress on stderr (CHAT_FLEET_QUIET=1 silences it).
say() {
	[ "${CHAT_FLEET_QUIET:-0}" = 1 ] || printf '%s\n' "$*" >&2
}

# die MSG...: error on stderr, exit 1.
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# now_ms: wall clock in milliseconds (GNU date).
now_ms() {
	date +%s%3N
}

# alive PID: true while PID is a process with a thread not yet dead.
# A zombie answers kill -0 until its parent reaps it (and a process whose
# parent has gone may never be reaped here), so the thread states decide;
# after a SIGKILL the main thread can be a zombie while other threads still
# hold the process's sockets open.
alive() {
	[ -n "${1:-}" ] || return 1
	kill -0 "$1" 2>/dev/null || return 1
	[ -r "/proc/$1/stat" ] || return 0
	al_st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	case "$al_st" in Z | X | '') ;; *) return 0 ;; esac
	for al_t in /proc/"$1"/task/*/stat; do
		al_st=$(sed 's/^.*) //' "$al_t" 2>/dev/null | cut -c1)
		case "$al_st" in Z | X | '') ;; *) return 0 ;; esac
	done
	return 1
}

# pid_of FILE: the pid in FILE, or nothing.
pid_of() {
	[ -f "$1" ] && sed -n '1{s/[^0-9]//g;p;}' "$1"
}

# wait_dead PID TIMEOUT_S: wait until PID is gone; false on timeout.
wait_dead() {
	wd_end=$(($(date +%s) + $2))
	while alive "$1"; do
		[ "$(date +%s)" -ge "$wd_end" ] && return 1
		sleep 0.05
	done
	return 0
}

# stop_pid PID TIMEOUT_S [SIGNAL]: SIGNAL (default TERM), wait, then KILL.
stop_pid() {
	alive "$1" || return 0
	kill "-${3:-TERM}" "$1" 2>/dev/null || true
	wait_dead "$1" "$2" && return 0
	say "pid $1 still running after $2 s: SIGKILL"
	kill -KILL "$1" 2>/dev/null || true
	wait_dead "$1" 10
}

# children PID: the pids whose parent is PID (from /proc, no pgrep).
children() {
	for st in /proc/[0-9]*/stat; do
		# Field 4 is the parent pid; the command name may hold spaces,
		# so cut after the closing parenthesis.
		pp=$(sed 's/^.*) //' "$st" 2>/dev/null | cut -d' ' -f2)
		[ "$pp" = "$1" ] && basename "$(dirname "$st")"
	done
	return 0
}

# freeport_bin: path of the chat-freeport helper, building it from
# compose/freeport.c into the cache when the build tree has none.
freeport_bin() {
	if [ -n "${CHAT_FREEPORT:-}" ] && [ -x "$CHAT_FREEPORT" ]; then
		echo "$CHAT_FREEPORT"
		return 0
	fi
	b=${CHAT_BUILD_DIR:-$top/build}/compose/chat-freeport
	if [ -x "$b" ]; then
		echo "$b"
		return 0
	fi
	c=${XDG_CACHE_HOME:-$HOME/.cache}/chat/bin
	b=$c/chat-freeport
	if [ ! -x "$b" ] || [ "$compose/freeport.c" -nt "$b" ]; then
		mkdir -p "$c"
		${CC:-cc} -O2 -o "$b.tmp.$$" "$compose/freeport.c" >&2 ||
			die "cannot build $compose/freeport.c (install a C compiler: scripts/deps.sh build)"
		mv "$b.tmp.$$" "$b"
	fi
	echo "$b"
}

# freeports N: N distinct free TCP ports on 127.0.0.1, one a line.
freeports() {
	"$(freeport_bin)" "$1"
}

# port_open PORT [TIMEOUT_MS]: true when 127.0.0.1:PORT accepts TCP.
port_open() {
	"$(freeport_bin)" --check 127.0.0.1 "$1" "${2:-500}"
}

# wait_for TIMEOUT_S PID WHAT CMD...: run CMD until it succeeds, PID dies
# (when given) or TIMEOUT_S passes; false on failure, with a message.
wait_for() {
	wf_secs=$1
	wf_end=$(($(date +%s) + wf_secs))
	wf_pid=$2
	wf_what=$3
	shift 3
	while ! "$@" >/dev/null 2>&1; do
		if [ -n "$wf_pid" ] && ! alive "$wf_pid"; then
			printf 'error: %s: process %s exited during start\n' \
				"$wf_what" "$wf_pid" >&2
			return 1
		fi
		if [ "$(date +%s)" -ge "$wf_end" ]; then
			printf 'error: %s: not ready after %s s\n' "$wf_what" \
				"$wf_secs" >&2
			return 1
		fi
		sleep 0.1
	done
	return 0
}

# check_path P: refuse paths the generated configs cannot hold.
check_path() {
	case "$1" in
	*[!A-Za-z0-9/._+-]*) die "path '$1' has characters other than A-Z a-z 0-9 / . _ + -" ;;
	/*) ;;
	*) die "path '$1' must be absolute" ;;
	esac
}

# logdir DIR: where a server in DIR writes its log (CHAT_LOG_DIR or DIR).
logdir() {
	d=${CHAT_LOG_DIR:-$1}
	mkdir -p "$d"
	echo "$d"
}

# spawn LOG CMD...: start CMD in the background in its own session (so a
# Ctrl-C or a closed terminal does not reach it), stdin from /dev/null,
# stdout and stderr appended to LOG. Sets spawned_pid.
spawn() {
	sp_log=$1
	shift
	if command -v setsid >/dev/null 2>&1; then
		setsid "$@" </dev/null >>"$sp_log" 2>&1 &
	else
		"$@" </dev/null >>"$sp_log" 2>&1 &
	fi
	spawned_pid=$!
}
