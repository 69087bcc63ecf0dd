/* A throwaway PostgreSQL 15 server for tests: initdb in a temporary
 * directory, started with pg_ctl on 127.0.0.1 and a free port, stopped by
 * pid (cleanly, or with SIGKILL for crash tests), restarted on the same
 * data, removed at the end.
 *
 * Usage:
 *
 *	pg_server pg;
 *	char err[512], url[256];
 *	if (pg_server_start(&pg, err, sizeof err))        // initdb + start
 *		fail_msg("%s", err);                      // (never skip)
 *	pg_server_create_db(&pg, "t1", url, sizeof url, err, sizeof err);
 *	... store_db_open(url, ...) ...
 *	pg_server_stop(&pg, err, sizeof err);             // or pg_server_kill
 *	pg_server_restart(&pg, err, sizeof err);          // same data, port
 *	pg_server_cleanup(&pg);                           // stop + rm -rf
 *
 * Details:
 * - Binaries come from /usr/lib/postgresql/15/bin (CHAT_PG_BIN overrides).
 *   When they are missing, pg_server_start FAILS with a message saying so:
 *   the project installs PostgreSQL (scripts/deps.sh), so a test that
 *   needs it must not silently skip.
 * - initdb and pg_ctl refuse to run as root: when the test runs as root,
 *   the directory is given to the `postgres` user and every server command
 *   runs through `runuser -u postgres --`. Otherwise they run directly as
 *   the current user.
 * - initdb --auth=trust -U chat -E UTF8 --locale=C.UTF-8: the superuser is
 *   `chat`, no password, only reachable on 127.0.0.1 and through the unix
 *   socket in the temporary directory (listen_addresses=127.0.0.1,
 *   unix_socket_directories=ROOT/sock).
 * - For speed, and ONLY because the data is thrown away: fsync=off and
 *   full_page_writes=off. synchronous_commit stays on, so every commit
 *   reaches the kernel before it is acknowledged: a crash of the server
 *   processes (pg_server_kill) loses nothing acknowledged and is recovered
 *   from the WAL; a crash of the machine would lose data. Never use these
 *   settings for real data.
 * - max_connections=200 (several stores with connection pools).
 * - A database `chat` is created; url is
 *   postgresql://chat@127.0.0.1:PORT/chat. The unix socket works too:
 *   postgresql://chat@/chat?host=SOCK_DIR&port=PORT (e.g. to keep a
 *   client that uses TCP out: ALTER SYSTEM SET listen_addresses = '' and
 *   restart).
 * - CHAT_PG_KEEP=1 in the environment keeps the directory (data, server
 *   log, commands.log) at cleanup, for debugging; its path is printed.
 * - pg_server_start makes the calling process a child subreaper
 *   (prctl PR_SET_CHILD_SUBREAPER): pg_ctl leaves the postmaster
 *   orphaned, and this way it (and, after a kill, its children) become
 *   children of the test, which reaps them by pid. Without it a zombie
 *   postmaster (PID 1 here does not reap promptly) would keep its lock
 *   files "in use" and the restart after pg_server_kill would fail. Other
 *   orphans of the test process are left alone (they stay zombies until
 *   it exits, as they would under PID 1).
 * - Child processes get no inherited descriptors beyond 0-2 (the test's
 *   sockets do not leak into the postmaster). Their output, and the
 *   server's log, go to files under root (named in error messages).
 *
 * None of these functions is thread-safe on one pg_server; each blocks
 * (start ~1-2 s, stop ~0.1-0.5 s). */
#ifndef PG_SERVER_H
#define PG_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct pg_server {
	char root[128];     /* temporary directory holding everything */
	char data_dir[160]; /* ROOT/data: the cluster */
	char sock_dir[160]; /* ROOT/sock: the unix socket */
	char log_file[160]; /* ROOT/postgres.log: the server's log */
	char cmd_log[160];  /* ROOT/commands.log: initdb/pg_ctl output */
	char bin_dir[128];  /* where initdb, pg_ctl and postgres are */
	int port;           /* 127.0.0.1 port, chosen free at start */
	pid_t pid;          /* the postmaster while running, else 0 */
	int as_postgres;    /* commands run via runuser -u postgres */
	char url[160];      /* postgresql://chat@127.0.0.1:PORT/chat */
} pg_server;

/* Create a temporary directory, initdb a cluster in it, pick a free port,
 * start the server (pg_ctl -w: it accepts connections on return) and
 * create the database `chat`. Returns 0, or -1 with a reason in err (then
 * nothing is left running and the directory is removed). */
int pg_server_start(pg_server *s, char *err, size_t errlen);

/* Stop the server cleanly (pg_ctl stop -m fast: clients are disconnected,
 * a shutdown checkpoint is written) and wait until the postmaster is
 * gone. The data stays. Returns 0, or -1 with a reason in err. A server
 * that is not running: 0. */
int pg_server_stop(pg_server *s, char *err, size_t errlen);

/* Crash the server: SIGKILL the postmaster and every process it started
 * (found through /proc), by pid, and wait (up to 10 s) until they are
 * gone. The data stays; pg_server_restart recovers it from the WAL.
 * Returns 0, or -1 when some process would not die. */
int pg_server_kill(pg_server *s);

/* Start the server again on the same data directory and port (after
 * pg_server_stop or pg_server_kill). Returns 0 once it accepts
 * connections, or -1 with a reason in err. */
int pg_server_restart(pg_server *s, char *err, size_t errlen);

/* (Re)create database `name` (1..48 bytes of [a-z0-9_]; dropped first if
 * it exists, with its sessions terminated) and write its URL
 * postgresql://chat@127.0.0.1:PORT/NAME into url. Returns 0, or -1 with a
 * reason in err. */
int pg_server_create_db(pg_server *s, const char *name, char *url,
                        size_t urllen, char *err, size_t errlen);

/* Run one or more SQL statements (no results kept) on the database at
 * conninfo url. For test set-up and checks. Returns 0, or -1 with the
 * server's message in err. */
int pg_server_exec(const char *url, const char *sql, char *err,
                   size_t errlen);

/* The first column of the first row of a query on url, as an integer
 * (e.g. "SELECT count(*) FROM messages"). Returns 0 with *out, or -1 with a
 * reason in err (including "no rows" and a NULL value). */
int pg_server_query_i64(const char *url, const char *sql, long long *out,
                        char *err, size_t errlen);

/* Stop the server if it runs (fast, then SIGKILL if that fails) and
 * remove the temporary directory. Accepts NULL and a server whose start
 * failed; safe to call twice. */
void pg_server_cleanup(pg_server *s);

#endif
