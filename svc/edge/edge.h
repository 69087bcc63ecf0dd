/* The edge: client WebSocket sessions (libwebsockets, one service thread).
 * Checks the JWT on upgrade; answers ClientFrames (docs/PROTOCOL.md) by
 * producing sends to chat.ingress and calling the store and presence over
 * RPC from a worker pool; receives chat.Edge/Deliver batches from
 * dispatchers and writes each event, encoded once, to the local sessions
 * that want it. Each session has a bounded outbound queue. */
#ifndef EDGE_H
#define EDGE_H

#include <stddef.h>

#include "chat_routing.h"

typedef struct edge_config {
	const char *edge_id;         /* unique, e.g. "edge-1" */
	const char *host;            /* listen address, default 127.0.0.1 */
	int port;                    /* WebSocket port; 0 = pick a free one */
	const char *public_url;      /* ws URL handed to clients; NULL = derive */
	const char *rpc_url;         /* where chat.Edge listens */
	const char *store_url;       /* chat.Store RPC */
	const char *presence_url;    /* chat.Presence RPC */
	const char *dispatcher_url;  /* chat.Dispatcher RPC (typing) */
	const char *kafka_bootstrap; /* produce chat.ingress */
	const unsigned char *jwt_key;
	size_t jwt_key_len;
	chat_routing *routing;       /* shared routing table (not owned) */
	int workers;                 /* RPC worker threads, default 4 */
	int max_queue_frames;        /* per-session outbound cap, default 4096 */
	int max_queue_bytes;         /* default 4 MiB */
	int send_rate;               /* messages/s per session, default 100 */
	int send_burst;              /* default 200 */
	int rpc_threads;             /* chat.Edge handler threads, default 2 */
	int rpc_timeout_ms;          /* backend RPC deadline, default 3000 */
	int ping_secs;               /* idle seconds before a WebSocket ping,
	                              * default 30; hang up after 2x + 10 s */
	int ack_after_store;         /* 1: answer a send only once the store has
	                              * it (its fan-out copy came back), for a
	                              * log that is not durable (chatd's mock
	                              * cluster); 0 (default): when the log has
	                              * it */
	int ack_timeout_ms;          /* with ack_after_store: answer UNAVAILABLE
	                              * (retryable) after this, default 30000 */
} edge_config;

typedef struct edge edge;

/* Start listening and serving. Returns 0, or -1 with a reason. */
int edge_start(const edge_config *cfg, edge **out, char *err, size_t errlen);

/* The bound WebSocket port (useful with port 0). */
int edge_port(edge *e);

/* The URL clients should use, e.g. ws://127.0.0.1:7001/ws. */
const char *edge_public_url(edge *e);

/* Number of open sessions. Thread-safe. */
int edge_sessions(edge *e);

/* Close every session with 1001, stop the service thread, flush the
 * producer (so every acknowledged send is in the log), free. Accepts
 * NULL. */
void edge_stop(edge *e);

#endif
