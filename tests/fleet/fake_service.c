/*
 * fleet_fake_service: stands in for a chat service (chat-edge, chat-store,
 * ...) in the tests of compose/fleet.sh, so that the script's service part
 * is tested without the real services. Run under the name chat-SERVICE
 * (a symlink): the service is the part after "chat-".
 *
 * It takes the fleet design's flags (--zk, --instance, --host, --port; any
 * other --name value pair is accepted and ignored), registers the
 * EPHEMERAL_SEQUENTIAL znode /chat/services/SERVICE/ID- with the design's
 * JSON, accepts and closes TCP connections on --port when given, and on
 * SIGTERM or SIGINT logs "event=stop" and closes its ZooKeeper session
 * (the znode goes at once) and exits 0.
 *
 * CHAT_FAKE_FAIL_ID=ID makes the instance ID exit 3 at start (to test a
 * failed `fleet.sh up`).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void on_zk_event(zhandle_t *zh, int type, int state, const char *path,
                        void *ctx)
{
	(void)zh;
	(void)type;
	(void)state;
	(void)path;
	(void)ctx;
}

/* Creates a persistent node; an existing one is fine. */
static int ensure_node(zhandle_t *zh, const char *path)
{
	int rc = zoo_create(zh, path, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL,
	                    0);

	return rc == ZOK || rc == ZNODEEXISTS ? 0 : rc;
}

/* A listening socket on host:port, or -1. */
static int listen_on(const char *host, int port)
{
	struct sockaddr_in sa;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 16) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int wait_connected(zhandle_t *zh, int seconds)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	int i;

	for (i = 0; i < seconds * 50; i++) {
		if (zoo_state(zh) == ZOO_CONNECTED_STATE)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *zk = NULL, *id = NULL, *host = "127.0.0.1", *fail;
	const char *prog = strrchr(argv[0], '/');
	char svc[32], path[256], made[256], data[512], pub[128];
	struct sigaction sa;
	zhandle_t *zh = NULL;
	int port = 0, lfd = -1, i, rc, n;

	prog = prog ? prog + 1 : argv[0];
	if (strncmp(prog, "chat-", 5) != 0 || strlen(prog + 5) == 0 ||
	    strlen(prog + 5) >= sizeof(svc)) {
		fprintf(stderr, "fake: run me as chat-SERVICE, not %s\n", prog);
		return 2;
	}
	snprintf(svc, sizeof(svc), "%s", prog + 5);
	for (i = 1; i + 1 < argc; i += 2) {
		if (strncmp(argv[i], "--", 2) != 0) {
			fprintf(stderr, "fake: unexpected argument %s\n",
			        argv[i]);
			return 2;
		}
		if (strcmp(argv[i], "--zk") == 0)
			zk = argv[i + 1];
		else if (strcmp(argv[i], "--instance") == 0)
			id = argv[i + 1];
		else if (strcmp(argv[i], "--host") == 0)
			host = argv[i + 1];
		else if (strcmp(argv[i], "--port") == 0)
			port = atoi(argv[i + 1]);
	}
	if (i != argc || !zk || !id || port < 0 || port > 65535) {
		fprintf(stderr, "fake: need --zk HOSTS --instance ID, flags in "
		                "--name value pairs\n");
		return 2;
	}
	fail = getenv("CHAT_FAKE_FAIL_ID");
	if (fail && strcmp(fail, id) == 0) {
		fprintf(stderr, "fake: event=fail id=%s (CHAT_FAKE_FAIL_ID)\n",
		        id);
		return 3;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (port > 0) {
		lfd = listen_on(host, port);
		if (lfd < 0) {
			fprintf(stderr, "fake: cannot listen on %s:%d: %s\n",
			        host, port, strerror(errno));
			return 1;
		}
		snprintf(pub, sizeof(pub), ",\"public\":\"ws://%s:%d/ws\"",
		         host, port);
	} else {
		pub[0] = '\0';
	}

	zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
	zh = zookeeper_init(zk, on_zk_event, 10000, NULL, NULL, 0);
	if (!zh || wait_connected(zh, 15) != 0) {
		fprintf(stderr, "fake: cannot reach ZooKeeper at %s\n", zk);
		goto fail;
	}
	snprintf(path, sizeof(path), "/chat/services/%s", svc);
	if (ensure_node(zh, "/chat") || ensure_node(zh, "/chat/services") ||
	    ensure_node(zh, path)) {
		fprintf(stderr, "fake: cannot create %s\n", path);
		goto fail;
	}
	n = snprintf(data, sizeof(data),
	             "{\"id\":\"%s\",\"service\":\"%s\",\"rpc\":\"tcp://"
	             "127.0.0.1:0\"%s,\"load\":0,\"version\":\"0.1.0\","
	             "\"pid\":%d}",
	             id, svc, pub, (int)getpid());
	snprintf(path, sizeof(path), "/chat/services/%s/%s-", svc, id);
	rc = zoo_create(zh, path, data, n, &ZOO_OPEN_ACL_UNSAFE,
	                ZOO_EPHEMERAL_SEQUENTIAL, made, sizeof(made));
	if (rc != ZOK) {
		fprintf(stderr, "fake: create %s: %s\n", path, zerror(rc));
		goto fail;
	}
	fprintf(stderr, "fake: event=registered id=%s znode=%s\n", id, made);

	while (!stop_signal) {
		struct pollfd p = {lfd, POLLIN, 0};

		if (lfd < 0) {
			poll(NULL, 0, 100);
			continue;
		}
		if (poll(&p, 1, 100) == 1) {
			int c = accept(lfd, NULL, NULL);

			if (c >= 0)
				close(c);
		}
	}
	/* Whether ZooKeeper still serves us: `fleet.sh down` stops the services
	 * before the servers, and the test checks it. */
	fprintf(stderr, "fake: event=stop id=%s signal=%s zk=%s\n", id,
	        stop_signal == SIGTERM ? "TERM" : "INT",
	        zoo_exists(zh, made, 0, NULL) == ZOK ? "ok" : "lost");
	zookeeper_close(zh);
	if (lfd >= 0)
		close(lfd);
	return 0;
fail:
	if (zh)
		zookeeper_close(zh);
	if (lfd >= 0)
		close(lfd);
	return 1;
}
