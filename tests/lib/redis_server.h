/* A throwaway redis-server for tests: a free port on 127.0.0.1, a
 * temporary directory, no persistence, stopped by pid; restarted on the
 * same port as a brand-new EMPTY Redis (what a Redis restart without
 * persistence looks like to clients).
 *
 * Usage:
 *
 *	redis_server rs;
 *	char err[512];
 *	if (redis_server_start(&rs, err, sizeof err))  // never skip: fail
 *		fail_msg("%s", err);
 *	... chat_routing_redis_new(rs.addr, ...) ...   // "127.0.0.1:PORT"
 *	redis_server_kill(&rs);                        // or _stop (SIGTERM)
 *	redis_server_restart(&rs, err, sizeof err);    // same port, empty
 *	redis_server_pause(&rs); redis_server_resume(&rs); // a hung server
 *	redis_server_cleanup(&rs);                     // stop + rm -rf
 *
 * Details:
 * - The binary is $CHAT_REDIS_SERVER or redis-server from PATH; when it
 *   is missing, start FAILS saying so (scripts/deps.sh installs it).
 * - redis-server --port P --bind 127.0.0.1 --save "" --appendonly no
 *   --daemonize no --dir ROOT; its output goes to ROOT/redis.log.
 * - Servers die with the test: the child gets PR_SET_PDEATHSIG=SIGKILL
 *   (so start it from the main thread, or from a thread that outlives
 *   it), and an atexit handler kills every server still running.
 * - Start/restart return once the server answers PING (up to 10 s).
 * None of these functions is thread-safe on one redis_server. */
#ifndef REDIS_SERVER_H
#define REDIS_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct redis_server {
	char root[128];     /* temporary directory */
	char log_file[160]; /* ROOT/redis.log */
	int port;
	char addr[64];      /* "127.0.0.1:PORT" for chat_redis_new */
	pid_t pid;          /* while running, else 0 */
	int paused;
} redis_server;

/* Make the directory, pick a free port, start, wait for PING. Returns 0,
 * or -1 with a reason in err (then nothing runs and the directory is
 * removed). */
int redis_server_start(redis_server *s, char *err, size_t errlen);

/* SIGTERM, wait (up to 3 s, then SIGKILL). 0 also when not running. */
int redis_server_stop(redis_server *s);

/* SIGKILL and reap. 0 also when not running. */
int redis_server_kill(redis_server *s);

/* Start again on the same port, empty. Stops a running server first.
 * Returns 0 once it answers PING, or -1 with a reason in err. */
int redis_server_restart(redis_server *s, char *err, size_t errlen);

/* SIGSTOP / SIGCONT: a server that accepts nothing and answers nothing,
 * with its connections open. */
int redis_server_pause(redis_server *s);
int redis_server_resume(redis_server *s);

/* Kill if running, remove the directory. Accepts NULL and a failed
 * start; safe to call twice. */
void redis_server_cleanup(redis_server *s);

/* ---- helpers shared with zk_server.c (usable by other test helpers) ---- */

/* A TCP port on 127.0.0.1 free right now (bind to 0, read, close), or -1. */
int testsrv_free_port(void);

/* Create a temporary directory /tmp/chat-<tag>-XXXXXX (or under $TMPDIR)
 * into out. 0 or -1. */
int testsrv_mkdtemp(const char *tag, char *out, size_t outlen);

/* rm -rf path (does not follow symlinks). */
void testsrv_rmtree(const char *path);

/* fork+exec argv[0] (searched in PATH) with stdin from /dev/null,
 * stdout/stderr appended to log_path, no other inherited descriptors,
 * PR_SET_PDEATHSIG=SIGKILL; registered for the atexit kill. Returns the
 * pid, or -1 with a reason in err (including "not found"). */
pid_t testsrv_spawn(char *const argv[], const char *log_path, char *err,
                    size_t errlen);

/* Whether pid has exited (reaped if so; *status set when non-NULL). */
int testsrv_exited(pid_t pid, int *status);

/* Send sig to pid, wait up to wait_ms for it to exit (then SIGKILL and
 * wait), reap, forget it for the atexit kill. 0, or -1 if it would not
 * die. pid <= 0: 0. */
int testsrv_terminate(pid_t pid, int sig, int wait_ms);

/* Connect to 127.0.0.1:port, send req, read until the reply starts with
 * want or timeout_ms passes. 1 matched, 0 not. */
int testsrv_probe(int port, const char *req, const char *want,
                  int timeout_ms);

#endif
