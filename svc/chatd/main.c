/* chatd: every service in one process on the embedded backends — the
 * in-process log (or librdkafka's mock cluster, --message-log mock),
 * SQLite as the store, in-memory routing and presence, nng inproc://
 * between the services. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "api.h"
#include "chat_auth.h"
#include "chat_kafka.h"
#include "chat_log.h"
#include "chat_opts.h"
#include "chat_routing.h"
#include "chat_util.h"
#include "dispatcher.h"
#include "edge.h"
#include "presence.h"
#include "store.h"

#define SVC "chatd"
#define MAX_EDGES 8 /* --edges */

struct cfg {
	const char *data_dir, *host, *secret_file, *ready_file, *log_level;
	const char *admin_url, *message_log;
	int port, api_port, partitions, token_ttl, send_rate, send_burst,
	    ping_secs;
	int queue_frames, queue_bytes, ready_timeout, edges;
};

static const char summary[] =
    "Runs the whole chat backend in one process: api (HTTP+JSON), edge\n"
    "(WebSocket), store (SQLite), dispatcher and presence, with an in-process\n"
    "message log. Data lives in --data-dir.";

static int default_data_dir(char *out, size_t len)
{
	const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	if (x && x[0] == '/')
		return snprintf(out, len, "%s/chat", x) < (int)len ? 0 : -1;
	if (home && home[0] == '/')
		return snprintf(out, len, "%s/.local/share/chat", home) < (int)len
		           ? 0
		           : -1;
	return -1;
}

/* Replace path atomically with content (tests poll for the file). */
static int write_file_atomic(const char *path, const char *content)
{
	char tmp[4200];
	FILE *f;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	fputs(content, f);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

int main(int argc, char **argv)
{
	struct cfg c;
	char ddir[1024], secret_path[1200], db_path[1200], lock_path[1200];
	char err[512], log_id[17], ready[2048];
	char admin[300] = "";
	const chat_opt opts[] = {
		{"data-dir", "CHAT_DATA_DIR", CHAT_OPT_STR, &c.data_dir, NULL, 0, 0,
		 "where the database and the token secret live (default "
		 "$XDG_DATA_HOME/chat or ~/.local/share/chat)"},
		{"host", "CHAT_HOST", CHAT_OPT_STR, &c.host, "127.0.0.1", 0, 0,
		 "address to listen on"},
		{"port", "CHAT_PORT", CHAT_OPT_INT, &c.port, "7001", 0, 65535,
		 "WebSocket (edge) port; 0 picks a free one"},
		{"api-port", "CHAT_API_PORT", CHAT_OPT_INT, &c.api_port, "7000", 0,
		 65535, "HTTP api port; 0 picks a free one"},
		{"jwt-secret-file", "CHAT_JWT_SECRET_FILE", CHAT_OPT_STR,
		 &c.secret_file, NULL, 0, 0,
		 "HS256 secret (created with mode 0600 if missing; default "
		 "DATA_DIR/jwt.secret)"},
		{"token-ttl", "CHAT_TOKEN_TTL", CHAT_OPT_INT, &c.token_ttl, "86400",
		 60, 31 * 86400, "token lifetime in seconds"},
		{"partitions", "CHAT_PARTITIONS", CHAT_OPT_INT, &c.partitions, "4", 1,
		 64, "partitions of the chat topics"},
		{"send-rate", "CHAT_SEND_RATE", CHAT_OPT_INT, &c.send_rate, "100", 1,
		 1000000, "messages per second one session may send"},
		{"send-burst", "CHAT_SEND_BURST", CHAT_OPT_INT, &c.send_burst, "200",
		 1, 1000000, "burst allowance above --send-rate"},
		{"ping-secs", "CHAT_PING_SECS", CHAT_OPT_INT, &c.ping_secs, "30", 1,
		 3600, "ping a session silent this long; close it after 2x + 10 s"},
		{"edges", "CHAT_EDGES", CHAT_OPT_INT, &c.edges, "1", 1, MAX_EDGES,
		 "edges (service threads), on --port, --port + 1, ..."},
		{"queue-frames", "CHAT_QUEUE_FRAMES", CHAT_OPT_INT, &c.queue_frames,
		 "4096", 16, 1 << 20, "per-session outbound queue cap (frames)"},
		{"queue-bytes", "CHAT_QUEUE_BYTES", CHAT_OPT_INT, &c.queue_bytes,
		 "4194304", 65536, 1 << 30, "per-session outbound queue cap (bytes)"},
		{"ready-file", "CHAT_READY_FILE", CHAT_OPT_STR, &c.ready_file, NULL,
		 0, 0, "write api_url=, edge_url=, pid= lines here once serving"},
		{"ready-timeout", NULL, CHAT_OPT_INT, &c.ready_timeout, "30", 1, 600,
		 "seconds to wait for the log consumers to join"},
		{"admin-url", "CHAT_ADMIN_URL", CHAT_OPT_STR, &c.admin_url, NULL, 0,
		 0, "also serve the chat.Store RPC here for admin tools and "
		 "benchmarks (e.g. tcp://127.0.0.1:0); trusted callers only"},
		{"message-log", "CHAT_MESSAGE_LOG", CHAT_OPT_STR, &c.message_log,
		 "memory", 0, 0,
		 "memory (the in-process log) or mock (librdkafka's mock Kafka "
		 "cluster: the Kafka protocol over loopback, several times the "
		 "CPU)"},
		{"log-level", "CHAT_LOG_LEVEL", CHAT_OPT_STR, &c.log_level, "info", 0,
		 0, "debug, info, warn, error or off"},
		{NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
	};
	chat_kafka_mock *mock = NULL;
	chat_memlog *mlog = NULL;
	const char *log_url;
	int fetch_wait = 0;
	chat_routing *routing = NULL;
	store *st = NULL;
	disp *dp = NULL;
	pres *pr = NULL;
	edge *ed[MAX_EDGES] = {NULL};
	char edge_ids[MAX_EDGES][16], edge_rpcs[MAX_EDGES][32];
	api_edge api_edges[MAX_EDGES];
	api *ap = NULL;
	char *secret = NULL;
	size_t secret_len = 0;
	int lockfd = -1, rc = 1, r;
	sigset_t sigs;

	memset(&c, 0, sizeof c);
	r = chat_opts_parse(opts, argc, argv, summary, err, sizeof err);
	if (r != 0) {
		if (r < 0)
			fprintf(stderr, "chatd: %s\n", err);
		return r < 0 ? 2 : 0;
	}
	if (chat_log_set_level(c.log_level) != 0) {
		fprintf(stderr, "chatd: --log-level: unknown level '%s'\n",
		        c.log_level);
		return 2;
	}
	if (strcmp(c.message_log, "memory") && strcmp(c.message_log, "mock")) {
		fprintf(stderr,
		        "chatd: --message-log: memory or mock, not '%s'\n",
		        c.message_log);
		return 2;
	}
	chat_opts_log(opts, SVC);
	if (!c.data_dir[0]) {
		if (default_data_dir(ddir, sizeof ddir) != 0) {
			fprintf(stderr, "chatd: no HOME: set --data-dir\n");
			return 2;
		}
	} else {
		chat_strlcpy(ddir, c.data_dir, sizeof ddir);
	}
	if (chat_mkdirs(ddir, 0700) != 0) {
		fprintf(stderr, "chatd: cannot create data dir %s: %s\n", ddir,
		        strerror(errno));
		return 1;
	}
	snprintf(lock_path, sizeof lock_path, "%s/chatd.lock", ddir);
	lockfd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
		fprintf(stderr,
		        "chatd: another chatd is using %s (lock %s held)\n", ddir,
		        lock_path);
		return 1;
	}
	snprintf(secret_path, sizeof secret_path, "%s/jwt.secret", ddir);
	snprintf(db_path, sizeof db_path, "%s/chat.db", ddir);
	if (chat_auth_init() != 0) {
		fprintf(stderr, "chatd: libsodium failed to initialise\n");
		return 1;
	}
	if (chat_secret_load_or_create(c.secret_file[0] ? c.secret_file
	                                                : secret_path,
	                               32, &secret, &secret_len, err,
	                               sizeof err) != 0) {
		fprintf(stderr, "chatd: %s\n", err);
		return 1;
	}

	/* Handle SIGINT/SIGTERM by sigwait on this thread; every thread the
	 * services start inherits the blocked mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	{
		long nofile = chat_raise_nofile();
		chat_info(SVC, "fd_limit", "nofile=%ld", nofile);
	}
	if (!strcmp(c.message_log, "mock")) {
		mock = chat_kafka_mock_new(1, c.partitions, err, sizeof err);
		if (!mock)
			goto fail;
		log_url = chat_kafka_mock_bootstraps(mock);
		/* the mock holds every empty fetch for its full wait */
		fetch_wait = 1;
	} else {
		mlog = chat_memlog_new(c.partitions, err, sizeof err);
		if (!mlog)
			goto fail;
		log_url = chat_memlog_bootstrap(mlog);
	}
	routing = chat_routing_mem_new();
	if (!routing) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	/* A new log starts empty: offsets stored under another log
	 * id do not apply to it. */
	chat_random_hex(log_id, sizeof log_id);
	{
		store_config sc = {0};
		sc.db_path = db_path;
		sc.kafka_bootstrap = log_url;
		sc.log_id = log_id;
		sc.rpc_url = "inproc://chat-store";
		sc.instance = "store-1";
		sc.admin_url = c.admin_url;
		sc.fetch_wait_ms = fetch_wait;
		if (store_start(&sc, &st, err, sizeof err) != 0)
			goto fail;
	}
	{
		disp_config dc = {0};
		dc.kafka_bootstrap = log_url;
		dc.rpc_url = "inproc://chat-dispatcher";
		dc.instance = "dispatcher-1";
		dc.routing = routing;
		dc.fetch_wait_ms = fetch_wait;
		if (disp_start(&dc, &dp, err, sizeof err) != 0)
			goto fail;
	}
	{
		pres_config pc = {0};
		pc.rpc_url = "inproc://chat-presence";
		pc.store_url = "inproc://chat-store";
		pc.dispatcher_url = "inproc://chat-dispatcher";
		pc.instance = "presence-1";
		if (pres_start(&pc, &pr, err, sizeof err) != 0)
			goto fail;
	}
	/* --edges N: N edges, each its own service thread on its own port
	 * (--port, --port + 1, ...; any free ones with --port 0); the api
	 * hands out the least loaded, so that writing to many sessions uses
	 * more than one core. (Debian's lws 4.1.6 sets no SO_REUSEPORT, so
	 * they cannot share one port.) */
	for (int i = 0; i < c.edges; i++) {
		edge_config ec = {0};
		snprintf(edge_ids[i], sizeof edge_ids[i], "edge-%d", i + 1);
		snprintf(edge_rpcs[i], sizeof edge_rpcs[i],
		         "inproc://chat-edge-%d", i + 1);
		ec.edge_id = edge_ids[i];
		ec.host = c.host;
		ec.port = c.port ? c.port + i : 0;
		ec.rpc_url = edge_rpcs[i];
		ec.store_url = "inproc://chat-store";
		ec.presence_url = "inproc://chat-presence";
		ec.dispatcher_url = "inproc://chat-dispatcher";
		ec.kafka_bootstrap = log_url;
		ec.jwt_key = (const unsigned char *)secret;
		ec.jwt_key_len = secret_len;
		ec.routing = routing;
		/* the log is memory: acknowledge what SQLite has */
		ec.ack_after_store = 1;
		ec.max_queue_frames = c.queue_frames;
		ec.max_queue_bytes = c.queue_bytes;
		ec.send_rate = c.send_rate;
		ec.send_burst = c.send_burst;
		ec.ping_secs = c.ping_secs;
		if (edge_start(&ec, &ed[i], err, sizeof err) != 0)
			goto fail;
		api_edges[i].id = edge_ids[i];
		api_edges[i].url = edge_public_url(ed[i]);
	}
	{
		api_config ac = {0};
		ac.host = c.host;
		ac.port = c.api_port;
		ac.store_url = "inproc://chat-store";
		ac.jwt_key = (const unsigned char *)secret;
		ac.jwt_key_len = secret_len;
		ac.token_ttl_s = c.token_ttl;
		ac.edges = api_edges;
		ac.n_edges = c.edges;
		if (api_start(&ac, &ap, err, sizeof err) != 0)
			goto fail;
	}
	{
		int64_t deadline = chat_mono_us() + (int64_t)c.ready_timeout * 1000000;
		while (!(store_ready(st) && disp_ready(dp)) &&
		       chat_mono_us() < deadline)
			usleep(20 * 1000);
		if (!store_ready(st) || !disp_ready(dp)) {
			snprintf(err, sizeof err,
			         "the log consumers did not join within %d s",
			         c.ready_timeout);
			goto fail;
		}
	}
	if (store_admin_port(st) > 0)
		snprintf(admin, sizeof admin, "tcp://127.0.0.1:%d",
		         store_admin_port(st));
	else if (c.admin_url[0])
		chat_strlcpy(admin, c.admin_url, sizeof admin);
	snprintf(ready, sizeof ready,
	         "api_url=http://%s:%d\nedge_url=%s\npid=%d\ndata_dir=%s\n"
	         "admin_url=%s\n",
	         c.host, api_port(ap), edge_public_url(ed[0]), (int)getpid(), ddir,
	         admin);
	{ /* every edge, for tools that spread sessions themselves */
		size_t off = strlen(ready);
		off += (size_t)snprintf(ready + off, sizeof ready - off,
		                        "edge_urls=");
		for (int i = 0; i < c.edges && off < sizeof ready; i++)
			off += (size_t)snprintf(ready + off, sizeof ready - off,
			                        "%s%s", i ? "," : "",
			                        edge_public_url(ed[i]));
		if (off < sizeof ready)
			snprintf(ready + off, sizeof ready - off, "\n");
	}
	if (c.ready_file[0] && write_file_atomic(c.ready_file, ready) != 0) {
		snprintf(err, sizeof err, "cannot write --ready-file %s: %s",
		         c.ready_file, strerror(errno));
		goto fail;
	}
	chat_info(SVC, "ready", "api=http://%s:%d edge=%s data_dir=%s", c.host,
	          api_port(ap), edge_public_url(ed[0]), ddir);

	for (;;) {
		int sig = 0;
		if (sigwait(&sigs, &sig) == 0 && (sig == SIGINT || sig == SIGTERM))
			break;
	}
	chat_info(SVC, "stopping", "%s", "");
	rc = 0;
	goto stop;
fail:
	chat_error(SVC, "start_failed", "reason=\"%s\"", err);
	fprintf(stderr, "chatd: %s\n", err);
stop:
	/* Front to back: no new requests, then the edge flushes every
	 * acknowledged send into the log, the store drains the log, and the
	 * fan-out side goes last. */
	api_stop(ap);
	for (int i = 0; i < MAX_EDGES; i++)
		edge_stop(ed[i]);
	if (st)
		store_drain(st, 10000);
	pres_stop(pr);
	disp_stop(dp);
	store_stop(st);
	chat_routing_free(routing);
	chat_kafka_mock_free(mock);
	chat_memlog_free(mlog);
	if (secret) {
		memset(secret, 0, secret_len);
		free(secret);
	}
	if (c.ready_file && c.ready_file[0])
		unlink(c.ready_file);
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}
