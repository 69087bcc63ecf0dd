/* A throwaway standalone ZooKeeper 3.8 for tests: a free port on
 * 127.0.0.1, data in a temporary directory, stopped by pid, restarted on
 * the same port with its data kept (sessions and ephemeral nodes survive
 * a short outage) or wiped (a brand-new ensemble: every session is gone).
 *
 * Usage:
 *
 *	zk_server zk;
 *	char err[512];
 *	if (zk_server_start(&zk, err, sizeof err))     // never skip: fail
 *		fail_msg("%s", err);
 *	... chat_disc_new(zk.hosts, 2000, ...) ...     // "127.0.0.1:PORT"
 *	zk_server_kill(&zk);                           // or _stop (SIGTERM)
 *	zk_server_restart(&zk, 0, err, sizeof err);    // same data
 *	zk_server_restart(&zk, 1, err, sizeof err);    // wiped
 *	zk_server_cleanup(&zk);                        // kill + rm -rf
 *
 * Details:
 * - Runs `java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp CP
 *   org.apache.zookeeper.server.ZooKeeperServerMain ROOT/zoo.cfg`, java
 *   being $CHAT_JAVA or java from PATH and CP $CHAT_ZK_CLASSPATH or
 *   /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar (the
 *   Debian `zookeeper` package; its jar's manifest names the rest). A
 *   missing java or jar FAILS the start with a message saying so.
 * - zoo.cfg: tickTime=500 (sessions may ask for 1000..60000 ms),
 *   clientPortAddress=127.0.0.1, admin.enableServer=false,
 *   4lw.commands.whitelist=ruok,srvr, maxClientCnxns=0. Output goes to
 *   ROOT/zk.log.
 * - Start/restart return once the server answers "ruok" with "imok" (up
 *   to 30 s; usually well under a second).
 * - Servers die with the test (PR_SET_PDEATHSIG and an atexit handler,
 *   see redis_server.h).
 * None of these functions is thread-safe on one zk_server. */
#ifndef ZK_SERVER_H
#define ZK_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct zk_server {
	char root[128];     /* temporary directory */
	char data_dir[160]; /* ROOT/data */
	char cfg_file[160]; /* ROOT/zoo.cfg */
	char log_file[160]; /* ROOT/zk.log */
	int port;
	char hosts[64];     /* "127.0.0.1:PORT" for chat_disc_new */
	pid_t pid;          /* while running, else 0 */
} zk_server;

/* Make the directory, pick a free port, write zoo.cfg, start, wait for
 * imok. Returns 0, or -1 with a reason in err (then nothing runs and the
 * directory is removed). */
int zk_server_start(zk_server *s, char *err, size_t errlen);

/* SIGTERM, wait (up to 5 s, then SIGKILL). 0 also when not running. */
int zk_server_stop(zk_server *s);

/* SIGKILL and reap (a crash). 0 also when not running. */
int zk_server_kill(zk_server *s);

/* Start again on the same port; wipe != 0 removes the data first. Kills a
 * running server first. Returns 0 once it answers, or -1 with a reason. */
int zk_server_restart(zk_server *s, int wipe, char *err, size_t errlen);

/* Kill if running, remove the directory. Accepts NULL and a failed
 * start; safe to call twice. */
void zk_server_cleanup(zk_server *s);

#endif
