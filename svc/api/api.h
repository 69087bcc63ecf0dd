/* The api: HTTP+JSON sign-up, log-in (returns a JWT and the edge URL to
 * use) and the list of edges. Passwords are hashed (argon2id) on a worker
 * pool, never on the libwebsockets service thread. See docs/PROTOCOL.md. */
#ifndef API_H
#define API_H

#include <stddef.h>

typedef struct api_edge {
	const char *id;
	const char *url;  /* ws://host:port/ws */
} api_edge;

typedef struct api_config {
	const char *host;       /* default 127.0.0.1 */
	int port;               /* 0 = pick a free one */
	const char *store_url;  /* chat.Store RPC */
	const unsigned char *jwt_key;
	size_t jwt_key_len;
	int token_ttl_s;        /* default 86400 */
	const api_edge *edges;  /* static edge list (embedded mode) */
	int n_edges;
	int workers;            /* default 2 */
} api_config;

typedef struct api api;

int api_start(const api_config *cfg, api **out, char *err, size_t errlen);
int api_port(api *a);
void api_stop(api *a);

#endif
