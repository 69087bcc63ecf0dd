/* The dispatcher: consumes chat.fanout (group "chat-dispatcher"), groups a
 * batch by destination edge using the routing table, and sends each edge
 * one chat.Edge/Deliver holding its whole share. Also serves
 * chat.Dispatcher/Publish for ephemeral events (typing, presence), routed
 * the same way.
 *
 * An event goes to the edges of channel_id (when non-zero), of each of
 * channel_ids and of each of user_ids, once per edge. Each edge gets its
 * events in the order they were consumed or published (Kafka keeps order
 * per partition, i.e. per channel); edges are served in parallel, each by
 * a sender thread of its own, so a slow or dead edge holds up only its own
 * queue. A Deliver that fails is retried once, then dropped (logged as
 * event=deliver_failed): clients recover missed messages from seq gaps and
 * resume.
 *
 * Routing: each batch looks a channel or user up once. A MemberEvent
 * JOINED also routes its channel, for route_cache_ms + 3 s, to the edges
 * of the user who joined: those edges subscribe when the event reaches
 * them and only then tell the routing table, so without this the
 * channel's next events (right behind it in the partition) would miss
 * them. */
#ifndef DISPATCHER_H
#define DISPATCHER_H

#include <stddef.h>

#include "chat_discovery.h"
#include "chat_routing.h"

typedef struct disp_config {
	const char *kafka_bootstrap;  /* NULL or "" = serve Publish only */
	const char *rpc_url;    /* where chat.Dispatcher listens (required) */
	const char *instance;   /* default "dispatcher-1"; Kafka client.id */
	chat_routing *routing;  /* not owned; must outlive disp_stop */
	int batch_max;          /* events per poll batch and per Deliver,
	                         * default 1000 */
	int deliver_timeout_ms; /* per Deliver call, default 2000 */
	int fetch_wait_ms;      /* chat_consumer_new's fetch wait; 0 = 10 ms;
	                         * 1 for the mock cluster */
	int edge_queue_max;     /* events waiting for one edge before new
	                         * ones are dropped, default 100000 */
	int route_cache_ms;     /* how long the routing table caches a
	                         * lookup (the caller set it up so); sizes
	                         * the join overlay above */
	chat_disc *disc;        /* NULL, or register as service
	                         * "dispatcher" (id instance, rpc the bound
	                         * rpc_url); used during disp_start only */
} disp_config;

typedef struct disp disp;

/* Start consuming and serving. Admin.Health on rpc_url reports the
 * counters consumed, published, delivered, failed, retried, dropped,
 * bad_records, unrouted, deliver_calls, assigned_partitions. Returns 0
 * with *out set, or -1 with a reason in err. Does not block; the first
 * group join (disp_ready) may take seconds. */
int disp_start(const disp_config *cfg, disp **out, char *err, size_t errlen);

/* The chat.Dispatcher address as registered (tcp port 0 resolved). */
const char *disp_rpc_url(disp *d);

/* Whether the consumer holds its partition assignment (always 1 without
 * Kafka). Thread-safe. */
int disp_ready(disp *d);

/* Stop consuming and serving, deliver what is queued once (not to edges
 * that are down), leave the group, free. Blocks for at most about one
 * Deliver timeout per edge. Accepts NULL. */
void disp_stop(disp *d);

#endif
