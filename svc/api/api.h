/* The api: HTTP+JSON sign-up, log-in (returns a JWT and the edge URL to
 * use) and the list of edges. Passwords are hashed (argon2id) on a worker
 * pool, never on the libwebsockets service thread. See docs/PROTOCOL.md.
 *
 * Edges: a static list (embedded mode), or, with zk_hosts, the live
 * instances of service "edge" in ZooKeeper; a log-in gets the least
 * loaded one (api_edges.h), and 503 when there is none. */
#ifndef API_H
#define API_H

#include <stddef.h>

typedef struct api_edge {
	const char *id;
	const char *url;  /* ws://host:port/ws */
} api_edge;

/* Every string and array is copied by api_start; the caller may free its
 * own afterwards. */
typedef struct api_config {
	const char *host;       /* default 127.0.0.1 */
	int port;               /* 0 = pick a free one */
	const char *store_url;  /* chat.Store RPC (required) */
	const unsigned char *jwt_key;  /* HS256 key, at least 32 bytes */
	size_t jwt_key_len;
	int token_ttl_s;        /* default 86400 */
	const api_edge *edges;  /* static edge list (embedded mode), >= 1
	                         * unless zk_hosts */
	int n_edges;
	int workers;            /* default 2 (each hash takes 64 MiB) */
	int rpc_timeout_ms;     /* deadline of each store call, default 3000 */

	/* Fleet (optional). With zk_hosts the edges come from ZooKeeper,
	 * a NULL/"" store_url means every registered store, and the api
	 * registers as service "api" (id instance, rpc the bound rpc_url,
	 * public public_url). */
	const char *zk_hosts;
	int zk_timeout_ms;      /* default 10000 */
	const char *instance;   /* default "api-1" */
	const char *rpc_url;    /* chat.Admin/Health; NULL = none */
	const char *public_url; /* default http://host:port */
	int edge_probe_ms;      /* check the edges' RPC ports this often and
	                         * hand out none that refuses (api_edges_probe);
	                         * 0: 1000, < 0: never */
} api_config;

typedef struct api api;

/* Listen on host:port and serve (docs/PROTOCOL.md section 1) from a
 * service thread of its own. Returns 0 with *out set, or -1 with a reason
 * in err (bad config, port in use). Does not block. */
int api_start(const api_config *cfg, api **out, char *err, size_t errlen);

/* The bound TCP port (the one picked when cfg->port was 0). */
int api_port(api *a);

/* The RPC address as registered ("" without rpc_url). */
const char *api_rpc_url(api *a);

/* How many edges the api can hand out now. */
size_t api_edge_count(api *a);

/* Stop serving: queued requests answer 503, running ones finish (at most
 * one store deadline), connections close, everything is freed. Blocks.
 * Accepts NULL. */
void api_stop(api *a);

#endif
