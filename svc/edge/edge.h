/* The edge: client WebSocket sessions (libwebsockets, one service thread).
 * Checks the JWT on upgrade; answers ClientFrames (docs/PROTOCOL.md) by
 * producing sends to chat.ingress and calling the store and presence over
 * RPC from a worker pool; receives chat.Edge/Deliver batches from
 * dispatchers and writes each event, encoded once, to the local sessions
 * that want it. Each session has a bounded outbound queue.
 *
 * The routing table is written by a routing thread of the edge, never by
 * the service thread: the service thread queues add/del operations, the
 * routing thread applies them in batches, keeps a mirror of everything it
 * published, heartbeats the edge's lease, and re-publishes the whole mirror
 * (and re-announces every session to presence) when the table lost the
 * edge (Redis restarted) or a batch failed.
 *
 * Fleet mode (zk_hosts set): the edge registers in ZooKeeper as service
 * "edge" (id edge_id, rpc, public url, load = live sessions, refreshed
 * every load_ms), and reaches the store, presence and dispatchers through
 * discovery when their URLs are not given. */
#ifndef EDGE_H
#define EDGE_H

#include <stddef.h>

#include "chat_routing.h"

typedef struct edge_config {
	const char *edge_id;         /* unique, e.g. "edge-1" */
	const char *host;            /* listen address, default 127.0.0.1 */
	int port;                    /* WebSocket port; 0 = pick a free one */
	const char *public_url;      /* ws URL handed to clients; NULL = derive */
	const char *rpc_url;         /* where chat.Edge listens (tcp port 0:
	                              * a free one; the bound one is what the
	                              * routing table and ZooKeeper get) */
	const char *store_url;       /* chat.Store RPC; NULL/"" with zk_hosts:
	                              * every registered store */
	const char *presence_url;    /* chat.Presence RPC; same */
	const char *dispatcher_url;  /* chat.Dispatcher RPC (typing); same;
	                              * NULL without zk_hosts: no typing */
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

	/* Fleet (all optional: zero keeps the embedded behaviour). */
	const char *zk_hosts;        /* ZooKeeper ensemble: register and
	                              * discover (see above) */
	int zk_timeout_ms;           /* ZooKeeper session timeout, default
	                              * 10000 */
	int heartbeat_ms;            /* routing heartbeat period, default 3000
	                              * (a third of the Redis lease) */
	int load_ms;                 /* load update period in ZooKeeper,
	                              * default 2000 */
	int route_settle_ms;         /* how long dispatchers may serve a
	                              * cached routing lookup: a resume reads
	                              * history only this long after the
	                              * session's routes were applied, so
	                              * that a message stored after the read
	                              * is routed here. Default 0 */
} edge_config;

typedef struct edge edge;

/* Start listening and serving. Does not wait for the routing table or
 * ZooKeeper (the routing thread registers in the background and retries).
 * Returns 0, or -1 with a reason. */
int edge_start(const edge_config *cfg, edge **out, char *err, size_t errlen);

/* The bound WebSocket port (useful with port 0). */
int edge_port(edge *e);

/* The URL clients should use, e.g. ws://127.0.0.1:7001/ws. */
const char *edge_public_url(edge *e);

/* The chat.Edge address as registered, e.g. tcp://127.0.0.1:40213. */
const char *edge_rpc_url(edge *e);

/* Number of open sessions. Thread-safe. */
int edge_sessions(edge *e);

/* Drain (chat.Edge/Drain does the same): refuse new sessions (HTTP 503),
 * leave ZooKeeper (so the api stops handing this edge out), then close
 * every open session with 1001 and reason (NULL/"": "server draining"),
 * per_second of them a second (0: all at once), so that their clients
 * move to other edges and resume. Returns the number of sessions that
 * will be closed. Blocks until the edge has left ZooKeeper (at most a few
 * seconds while ZooKeeper is away), not until the sessions are closed. A
 * second drain closes only what the first one left. Thread-safe. */
int edge_drain(edge *e, int per_second, const char *reason);

/* Leave ZooKeeper, close every session with 1001, stop the service
 * thread, flush the producer (so every acknowledged send is in the log),
 * drop the edge's routing entries, free. Accepts NULL. */
void edge_stop(edge *e);

#endif
