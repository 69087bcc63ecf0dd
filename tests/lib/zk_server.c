/* A throwaway ZooKeeper for tests (see zk_server.h). */
#include "zk_server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "redis_server.h" /* testsrv_* */

#define ZK_MAIN "org.apache.zookeeper.server.ZooKeeperServerMain"
#define DEFAULT_CP                                                             \
	"/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};
	nanosleep(&ts, NULL);
}

static int write_cfg(zk_server *s, char *err, size_t errlen)
{
	FILE *f = fopen(s->cfg_file, "w");
	if (!f) {
		snprintf(err, errlen, "%s: %s", s->cfg_file, strerror(errno));
		return -1;
	}
	fprintf(f,
	        "tickTime=500\n"
	        "minSessionTimeout=1000\n"
	        "maxSessionTimeout=60000\n"
	        "dataDir=%s\n"
	        "clientPort=%d\n"
	        "clientPortAddress=127.0.0.1\n"
	        "admin.enableServer=false\n"
	        "4lw.commands.whitelist=ruok,srvr\n"
	        "maxClientCnxns=0\n",
	        s->data_dir, s->port);
	return fclose(f) == 0 ? 0 : -1;
}

static int zk_launch(zk_server *s, char *err, size_t errlen)
{
	const char *java = getenv("CHAT_JAVA");
	const char *cp = getenv("CHAT_ZK_CLASSPATH");
	char *argv[] = {(char *)(java && java[0] ? java : "java"),
	                (char *)"-Xmx128m",
	                (char *)"-XX:+UseSerialGC",
	                (char *)"-XX:TieredStopAtLevel=1",
	                (char *)"-cp",
	                (char *)(cp && cp[0] ? cp : DEFAULT_CP),
	                (char *)ZK_MAIN,
	                s->cfg_file,
	                NULL};
	int64_t deadline;

	if (!(cp && cp[0]) && access("/usr/share/java/zookeeper.jar", R_OK)) {
		snprintf(err, errlen,
		         "/usr/share/java/zookeeper.jar is missing: install "
		         "the zookeeper package (scripts/deps.sh)");
		return -1;
	}
	mkdir(s->data_dir, 0700);
	s->pid = testsrv_spawn(argv, s->log_file, err, errlen);
	if (s->pid < 0) {
		s->pid = 0;
		return -1;
	}
	deadline = now_ms() + 30000;
	while (now_ms() < deadline) {
		if (testsrv_exited(s->pid, NULL)) {
			snprintf(err, errlen, "ZooKeeper exited at start "
			                      "(port %d busy?), see %s",
			         s->port, s->log_file);
			s->pid = 0;
			return -1;
		}
		if (testsrv_probe(s->port, "ruok", "imok", 1000))
			return 0;
		nap(20);
	}
	snprintf(err, errlen, "ZooKeeper on port %d not ready in 30 s, see %s",
	         s->port, s->log_file);
	testsrv_terminate(s->pid, SIGKILL, 1000);
	s->pid = 0;
	return -1;
}

int zk_server_start(zk_server *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	if (testsrv_mkdtemp("zk", s->root, sizeof s->root) != 0) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(s->data_dir, sizeof s->data_dir, "%s/data", s->root);
	snprintf(s->cfg_file, sizeof s->cfg_file, "%s/zoo.cfg", s->root);
	snprintf(s->log_file, sizeof s->log_file, "%s/zk.log", s->root);
	for (int attempt = 0; attempt < 3; attempt++) {
		s->port = testsrv_free_port();
		if (s->port <= 0) {
			snprintf(err, errlen, "no free port");
			break;
		}
		snprintf(s->hosts, sizeof s->hosts, "127.0.0.1:%d", s->port);
		if (write_cfg(s, err, errlen) != 0)
			break;
		if (zk_launch(s, err, errlen) == 0)
			return 0;
		if (strstr(err, "cannot run") || strstr(err, "missing"))
			break;
	}
	testsrv_rmtree(s->root);
	s->root[0] = '\0';
	return -1;
}

int zk_server_stop(zk_server *s)
{
	int rv = testsrv_terminate(s->pid, SIGTERM, 5000);
	s->pid = 0;
	return rv;
}

int zk_server_kill(zk_server *s)
{
	int rv = testsrv_terminate(s->pid, SIGKILL, 5000);
	s->pid = 0;
	return rv;
}

int zk_server_restart(zk_server *s, int wipe, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + 10000;
	zk_server_kill(s);
	if (wipe)
		testsrv_rmtree(s->data_dir);
	for (;;) {
		if (zk_launch(s, err, errlen) == 0)
			return 0;
		if (now_ms() >= deadline || strstr(err, "cannot run"))
			return -1;
		nap(200);
	}
}

void zk_server_cleanup(zk_server *s)
{
	if (!s)
		return;
	zk_server_kill(s);
	if (s->root[0])
		testsrv_rmtree(s->root);
	s->root[0] = '\0';
}
