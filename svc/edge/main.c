/* chat-edge: one edge as its own process (fleet mode): the routing table
 * in Redis (--redis), registered in ZooKeeper (--zk), where it also finds
 * the stores, presence and dispatchers. SIGTERM leaves ZooKeeper, closes
 * every session with 1001 (clients move to another edge and resume),
 * flushes the producer, drops its routes, and exits 0. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_auth.h"
#include "chat_log.h"
#include "chat_opts.h"
#include "chat_routing.h"
#include "chat_util.h"
#include "edge.h"

static int sig_pipe[2] = {-1, -1};

/* Any thread may run this (sanitizer runtimes keep threads of their own
 * that block nothing): it only writes to a pipe. */
static void on_signal(int sig)
{
	char c = (char)sig;
	ssize_t n = write(sig_pipe[1], &c, 1);
	(void)n;
}

static const char summary[] =
    "The chat edge: client WebSocket sessions. Produces sends to Kafka,\n"
    "calls the store and presence over RPC, receives fan-out on chat.Edge.";

/* Load the JWT key: the file must exist (an edge never creates it; the
 * api and the edges share it). Trailing whitespace is not part of it. */
static int load_key(const char *path, char **key, size_t *len, char *err,
                    size_t errlen)
{
	char *buf = NULL;
	size_t n = 0;

	if (!path || !*path) {
		snprintf(err, errlen, "--jwt-secret-file is required");
		return -1;
	}
	if (chat_read_file(path, 4096, &buf, &n) != 0) {
		snprintf(err, errlen, "--jwt-secret-file: cannot read %s: %s",
		         path, strerror(errno));
		return -1;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	                 buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n < 32) {
		snprintf(err, errlen,
		         "--jwt-secret-file: %s holds %zu bytes; at least 32 "
		         "needed", path, n);
		free(buf);
		return -1;
	}
	*key = buf;
	*len = n;
	return 0;
}

int main(int argc, char **argv)
{
	const char *edge_id, *host, *public_url, *rpc_url, *store_url,
	    *presence_url, *dispatcher_url, *kafka, *secret_file, *level, *zk,
	    *redis;
	int port, workers, max_frames, max_bytes, rate, burst, ping, zk_timeout,
	    route_ttl, redis_timeout, ack_after_store, route_cache_ms;
	const chat_opt opts[] = {
	    {"instance", "CHAT_INSTANCE", CHAT_OPT_STR, &edge_id, "edge-1", 0,
	     0, "unique id of this edge (routing table, ZooKeeper, logs): "
	        "1-63 of A-Z a-z 0-9 . _ -"},
	    {"host", "CHAT_EDGE_HOST", CHAT_OPT_STR, &host, "127.0.0.1", 0, 0,
	     "WebSocket listen address"},
	    {"port", "CHAT_EDGE_PORT", CHAT_OPT_INT, &port, "7001", 0, 65535,
	     "WebSocket port (0 = any free port)"},
	    {"public-url", "CHAT_EDGE_PUBLIC_URL", CHAT_OPT_STR, &public_url,
	     NULL, 0, 0, "ws URL handed to clients (default derived)"},
	    {"rpc-url", "CHAT_EDGE_RPC_URL", CHAT_OPT_STR, &rpc_url,
	     "tcp://127.0.0.1:7101", 0, 0,
	     "where chat.Edge listens (tcp port 0: any free port; the bound "
	     "one is registered)"},
	    {"store-url", "CHAT_STORE_URL", CHAT_OPT_STR, &store_url, NULL, 0,
	     0, "chat.Store RPC address (default: every store registered in "
	        "--zk, else tcp://127.0.0.1:7201)"},
	    {"presence-url", "CHAT_PRESENCE_URL", CHAT_OPT_STR, &presence_url,
	     NULL, 0, 0, "chat.Presence RPC address (default: from --zk, "
	                 "else tcp://127.0.0.1:7301)"},
	    {"dispatcher-url", "CHAT_DISPATCHER_URL", CHAT_OPT_STR,
	     &dispatcher_url, NULL, 0, 0,
	     "chat.Dispatcher RPC address for typing notices (default: from "
	     "--zk, else tcp://127.0.0.1:7401)"},
	    {"kafka", "CHAT_KAFKA", CHAT_OPT_STR, &kafka, "127.0.0.1:9092", 0,
	     0, "Kafka bootstrap servers"},
	    {"redis", "CHAT_REDIS", CHAT_OPT_STR, &redis, NULL, 0, 0,
	     "HOST:PORT of Redis for the routing table (without it the table "
	     "is in this process only: no dispatcher can see it)"},
	    {"route-ttl", "CHAT_ROUTE_TTL", CHAT_OPT_INT, &route_ttl, "10", 2,
	     3600, "seconds the edge's routing lease lives without a "
	           "heartbeat (heartbeat every third of it)"},
	    {"route-cache-ms", "CHAT_ROUTE_CACHE_MS", CHAT_OPT_INT,
	     &route_cache_ms, "100", 0, 10000,
	     "the dispatchers' routing cache (same setting there): a resume "
	     "reads history only this long after its routes are published"},
	    {"redis-timeout", "CHAT_REDIS_TIMEOUT_MS", CHAT_OPT_INT,
	     &redis_timeout, "500", 10, 60000,
	     "bound of each Redis step in ms"},
	    {"zk", "CHAT_ZK", CHAT_OPT_STR, &zk, NULL, 0, 0,
	     "ZooKeeper hosts: register, and find stores, presence and "
	     "dispatchers"},
	    {"zk-session-timeout", "CHAT_ZK_SESSION_TIMEOUT_MS", CHAT_OPT_INT,
	     &zk_timeout, "10000", 1000, 60000,
	     "ZooKeeper session timeout in ms"},
	    {"jwt-secret-file", "CHAT_JWT_SECRET_FILE", CHAT_OPT_STR,
	     &secret_file, NULL, 0, 0,
	     "file holding the JWT signing key (>= 32 bytes; must exist)"},
	    {"workers", "CHAT_EDGE_WORKERS", CHAT_OPT_INT, &workers, "4", 1,
	     256, "RPC worker threads"},
	    {"max-queue-frames", "CHAT_EDGE_MAX_QUEUE_FRAMES", CHAT_OPT_INT,
	     &max_frames, "4096", 2, 1 << 24, "outbound frames per session"},
	    {"max-queue-bytes", "CHAT_EDGE_MAX_QUEUE_BYTES", CHAT_OPT_INT,
	     &max_bytes, "4194304", 65536, 1 << 30,
	     "outbound bytes per session"},
	    {"send-rate", "CHAT_EDGE_SEND_RATE", CHAT_OPT_INT, &rate, "100", 1,
	     1000000, "messages per second per session"},
	    {"send-burst", "CHAT_EDGE_SEND_BURST", CHAT_OPT_INT, &burst, "200",
	     1, 1000000, "burst of messages per session"},
	    {"ping-secs", "CHAT_EDGE_PING_SECS", CHAT_OPT_INT, &ping, "30", 1,
	     3600, "ping a session silent this long; close it after 2x + 10 s"},
	    {"ack-after-store", "CHAT_EDGE_ACK_AFTER_STORE", CHAT_OPT_BOOL,
	     &ack_after_store, "0", 0, 1,
	     "acknowledge a send once stored, not once in the log (for a log "
	     "that is not durable)"},
	    {"log-level", "CHAT_LOG_LEVEL", CHAT_OPT_STR, &level, "info", 0, 0,
	     "debug, info, warn, error or off"},
	    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
	};
	char err[512];
	char *key = NULL;
	size_t keylen = 0;
	chat_routing *routing = NULL;
	edge_config cfg;
	edge *e = NULL;
	struct sigaction sa;
	sigset_t sigs;
	char sig = 0;
	int rv, fleet;

	rv = chat_opts_parse(opts, argc, argv, summary, err, sizeof err);
	if (rv != 0) {
		if (rv < 0)
			fprintf(stderr, "chat-edge: %s\n", err);
		return rv < 0 ? 2 : 0;
	}
	if (chat_log_set_level(level) != 0) {
		fprintf(stderr, "chat-edge: --log-level: unknown level '%s'\n",
		        level);
		return 2;
	}
	chat_opts_log(opts, "edge");
	if (!chat_routing_edge_id_valid(edge_id)) {
		fprintf(stderr, "chat-edge: --instance '%s': 1-63 characters "
		                "of A-Z a-z 0-9 . _ -\n", edge_id);
		return 2;
	}
	fleet = zk && zk[0];
	if (!fleet) {
		if (!store_url || !store_url[0])
			store_url = "tcp://127.0.0.1:7201";
		if (!presence_url || !presence_url[0])
			presence_url = "tcp://127.0.0.1:7301";
		if (!dispatcher_url || !dispatcher_url[0])
			dispatcher_url = "tcp://127.0.0.1:7401";
	}
	if (chat_auth_init() != 0) {
		fprintf(stderr, "chat-edge: cannot initialise libsodium\n");
		return 1;
	}
	if (load_key(secret_file, &key, &keylen, err, sizeof err) != 0) {
		fprintf(stderr, "chat-edge: %s\n", err);
		return 2;
	}
	if (redis && redis[0]) {
		routing = chat_routing_redis_new(redis, NULL, route_ttl,
		                                 redis_timeout, err,
		                                 sizeof err);
		if (!routing) {
			fprintf(stderr, "chat-edge: --redis: %s\n", err);
			free(key);
			return 2;
		}
	} else {
		chat_warn("edge", "routing_local", "%s",
		          "reason=\"no --redis: dispatchers in other processes "
		          "cannot route to this edge\"");
		routing = chat_routing_mem_new();
	}
	if (!routing) {
		fprintf(stderr, "chat-edge: out of memory\n");
		free(key);
		return 1;
	}

	/* SIGINT/SIGTERM wake main through a pipe; the threads started by
	 * edge_start inherit a mask that blocks them. */
	signal(SIGPIPE, SIG_IGN);
	/* one descriptor per session: as many as the hard limit allows */
	chat_info("edge", "fd_limit", "nofile=%ld", chat_raise_nofile());
	if (pipe(sig_pipe) != 0) {
		perror("chat-edge: pipe");
		chat_routing_free(routing);
		free(key);
		return 1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	memset(&cfg, 0, sizeof cfg);
	cfg.edge_id = edge_id;
	cfg.host = host;
	cfg.port = port;
	cfg.public_url = public_url;
	cfg.rpc_url = rpc_url;
	cfg.store_url = store_url;
	cfg.presence_url = presence_url;
	cfg.dispatcher_url = dispatcher_url;
	cfg.kafka_bootstrap = kafka;
	cfg.jwt_key = (const unsigned char *)key;
	cfg.jwt_key_len = keylen;
	cfg.routing = routing;
	cfg.workers = workers;
	cfg.max_queue_frames = max_frames;
	cfg.max_queue_bytes = max_bytes;
	cfg.send_rate = rate;
	cfg.send_burst = burst;
	cfg.ping_secs = ping;
	cfg.ack_after_store = ack_after_store;
	cfg.zk_hosts = fleet ? zk : NULL;
	cfg.zk_timeout_ms = zk_timeout;
	cfg.heartbeat_ms = route_ttl * 1000 / 3;
	cfg.route_settle_ms = redis && redis[0] ? route_cache_ms : 0;
	if (edge_start(&cfg, &e, err, sizeof err) != 0) {
		fprintf(stderr, "chat-edge: %s\n", err);
		chat_routing_free(routing);
		free(key);
		return 1;
	}
	/* The key lives in the edge now. */
	explicit_bzero(key, keylen);
	printf("chat-edge %s listening on %s rpc %s\n", edge_id,
	       edge_public_url(e), edge_rpc_url(e));
	fflush(stdout);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	while (read(sig_pipe[0], &sig, 1) < 0 && errno == EINTR)
		;
	chat_info("edge", "stopping", "signal=%d sessions=%d", sig,
	          edge_sessions(e));
	edge_stop(e);
	chat_routing_free(routing);
	free(key);
	return 0;
}
