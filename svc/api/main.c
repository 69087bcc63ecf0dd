/* chat-api: the HTTP+JSON api as a program of its own. With --zk (fleet)
 * it hands out the least-loaded live edge registered in ZooKeeper, calls
 * every registered store, and registers itself (service "api"); without
 * it, the static --edges list and --store-url. SIGTERM leaves ZooKeeper,
 * finishes the requests in hand and exits 0. */
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "chat_log.h"
#include "chat_opts.h"
#include "chat_util.h"

#define MAX_EDGES 64

/* Parse "id=url,id=url" into edges (pointing into buf, which is split in
 * place). Returns how many, or -1 with a reason in err. */
static int parse_edges(char *buf, api_edge *edges, int max, char *err,
                       size_t errlen)
{
	char *save = NULL, *item;
	int n = 0;
	for (item = strtok_r(buf, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (!eq || eq == item || !eq[1]) {
			snprintf(err, errlen,
			         "--edges: '%s' is not ID=URL "
			         "(e.g. edge-1=ws://127.0.0.1:7001/ws)",
			         item);
			return -1;
		}
		if (n == max) {
			snprintf(err, errlen, "--edges: more than %d edges",
			         max);
			return -1;
		}
		*eq = '\0';
		edges[n].id = item;
		edges[n].url = eq + 1;
		n++;
	}
	if (n == 0) {
		snprintf(err, errlen, "--edges: at least one ID=URL is needed");
		return -1;
	}
	return n;
}

static void lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		n--;
	chat_warn("api", "lws", "level=%d msg=\"%.*s\"", level, (int)n, line);
}

int main(int argc, char **argv)
{
	const char *host, *store_url, *secret_file, *edges_arg, *level, *zk,
	    *instance, *rpc_url, *public_url;
	int port, ttl, workers, timeout, zk_timeout, probe_ms;
	const chat_opt opts[] = {
	    {"host", "CHAT_API_HOST", CHAT_OPT_STR, &host, "127.0.0.1", 0, 0,
	     "address to listen on"},
	    {"port", "CHAT_API_PORT", CHAT_OPT_INT, &port, "8080", 0, 65535,
	     "TCP port (0 = any free port)"},
	    {"store-url", "CHAT_STORE_URL", CHAT_OPT_STR, &store_url, NULL, 0,
	     0, "chat.Store RPC address (default: every store registered in "
	        "--zk, else tcp://127.0.0.1:7100)"},
	    {"jwt-secret-file", "CHAT_JWT_SECRET_FILE", CHAT_OPT_STR,
	     &secret_file, NULL, 0, 0,
	     "file holding the token signing secret (>= 32 bytes; required)"},
	    {"token-ttl", "CHAT_TOKEN_TTL", CHAT_OPT_INT, &ttl, "86400", 60,
	     31 * 86400, "token lifetime in seconds"},
	    {"edges", "CHAT_EDGES", CHAT_OPT_STR, &edges_arg, NULL, 0, 0,
	     "edges as ID=URL,ID=URL (URL ws://host:port/ws; required "
	     "without --zk)"},
	    {"zk", "CHAT_ZK", CHAT_OPT_STR, &zk, NULL, 0, 0,
	     "ZooKeeper hosts: the live edges and stores, and register"},
	    {"zk-session-timeout", "CHAT_ZK_SESSION_TIMEOUT_MS", CHAT_OPT_INT,
	     &zk_timeout, "10000", 1000, 60000,
	     "ZooKeeper session timeout in ms"},
	    {"instance", "CHAT_INSTANCE", CHAT_OPT_STR, &instance, "api-1", 0,
	     0, "instance name (ZooKeeper, logs)"},
	    {"rpc-url", "CHAT_API_RPC_URL", CHAT_OPT_STR, &rpc_url,
	     "tcp://127.0.0.1:0", 0, 0,
	     "where chat.Admin/Health listens with --zk (tcp port 0: any "
	     "free port; the bound one is registered)"},
	    {"public-url", "CHAT_API_PUBLIC_URL", CHAT_OPT_STR, &public_url,
	     NULL, 0, 0, "http URL registered for clients (default "
	                 "http://HOST:PORT)"},
	    {"workers", "CHAT_API_WORKERS", CHAT_OPT_INT, &workers, "2", 1, 64,
	     "password hashing threads (64 MiB each)"},
	    {"rpc-timeout", "CHAT_RPC_TIMEOUT_MS", CHAT_OPT_INT, &timeout,
	     "3000", 100, 60000, "store call deadline in ms"},
	    {"edge-probe-ms", "CHAT_API_EDGE_PROBE_MS", CHAT_OPT_INT, &probe_ms,
	     "1000", 0, 60000,
	     "with --zk: connect to each edge's RPC port this often (ms); "
	     "one that refuses is not handed out (0: never)"},
	    {"log-level", "CHAT_LOG_LEVEL", CHAT_OPT_STR, &level, "info", 0, 0,
	     "debug, info, warn, error or off"},
	    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
	};
	api_edge edges[MAX_EDGES];
	api_config cfg;
	api *a = NULL;
	char err[512], *secret = NULL, *edges_buf = NULL;
	size_t secret_len = 0;
	struct stat st;
	sigset_t sigs;
	int rv, sig, n_edges = 0, fleet;

	rv = chat_opts_parse(opts, argc, argv,
	                     "The chat api: sign-up, log-in, edge discovery "
	                     "over HTTP+JSON.",
	                     err, sizeof err);
	if (rv != 0) {
		if (rv < 0)
			fprintf(stderr, "chat-api: %s\n", err);
		return rv < 0 ? 2 : 0;
	}
	if (chat_log_set_level(level) != 0) {
		fprintf(stderr, "chat-api: --log-level: unknown level '%s'\n",
		        level);
		return 2;
	}
	chat_opts_log(opts, "api");
	if (!secret_file[0]) {
		fprintf(stderr, "chat-api: --jwt-secret-file is required\n");
		return 2;
	}
	/* The api must never make up a key the edges do not share. */
	if (stat(secret_file, &st) != 0) {
		fprintf(stderr,
		        "chat-api: --jwt-secret-file %s does not exist\n",
		        secret_file);
		return 2;
	}
	if (chat_secret_load_or_create(secret_file, 32, &secret, &secret_len,
	                               err, sizeof err) != 0) {
		fprintf(stderr, "chat-api: --jwt-secret-file: %s\n", err);
		return 2;
	}
	fleet = zk && zk[0];
	if (!fleet && (!store_url || !store_url[0]))
		store_url = "tcp://127.0.0.1:7100";
	if (!fleet || (edges_arg && edges_arg[0])) {
		edges_buf = strdup(edges_arg ? edges_arg : "");
		if (!edges_buf) {
			fprintf(stderr, "chat-api: out of memory\n");
			free(secret);
			return 1;
		}
		n_edges = parse_edges(edges_buf, edges, MAX_EDGES, err,
		                      sizeof err);
	}
	if (n_edges < 0) {
		fprintf(stderr, "chat-api: %s\n", err);
		free(secret);
		free(edges_buf);
		return 2;
	}

	/* Block the stop signals before any thread starts, so that every
	 * thread inherits the mask and only sigwait below sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

	memset(&cfg, 0, sizeof cfg);
	cfg.host = host;
	cfg.port = port;
	cfg.store_url = store_url;
	cfg.jwt_key = (const unsigned char *)secret;
	cfg.jwt_key_len = secret_len;
	cfg.token_ttl_s = ttl;
	cfg.edges = edges;
	cfg.n_edges = n_edges;
	cfg.workers = workers;
	cfg.rpc_timeout_ms = timeout;
	cfg.edge_probe_ms = probe_ms > 0 ? probe_ms : -1;
	if (fleet) {
		cfg.zk_hosts = zk;
		cfg.zk_timeout_ms = zk_timeout;
		cfg.instance = instance;
		cfg.rpc_url = rpc_url;
		cfg.public_url = public_url;
	}
	rv = api_start(&cfg, &a, err, sizeof err);
	explicit_bzero(secret, secret_len);
	free(secret);
	free(edges_buf);
	if (rv != 0) {
		fprintf(stderr, "chat-api: %s\n", err);
		return 1;
	}
	/* Scripts read the bound port from this line. */
	printf("chat-api listening on %s:%d\n", host, api_port(a));
	fflush(stdout);
	sigwait(&sigs, &sig);
	chat_info("api", "stopping", "signal=%d", sig);
	api_stop(a);
	return 0;
}
