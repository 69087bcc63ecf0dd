/* The routing table: which edges hold a session interested in a channel,
 * which edges hold a session of a user, and each edge's RPC address.
 * Edges keep their own reference counts and call add when their first
 * local session subscribes and del when the last one goes. Dispatchers and
 * presence read it. One interface, two implementations: in memory for the
 * embedded mode (routing_mem.c) and in Redis for the fleet
 * (routing_redis.c). All calls thread-safe.
 *
 * The edge's own view is the source of truth; the table is a copy of it.
 * An edge calls heartbeat every few seconds (Redis: a third of the TTL).
 * When heartbeat returns 1 the table had lost the edge (Redis restarted,
 * or the edge stalled past its TTL): the edge's entries were dropped and
 * its liveness re-created, and the edge must add all of its entries again
 * (one apply batch), and, with presence in Redis, send SessionUp again
 * for each of its sessions (presence counts a session only while its
 * edge's P edge:{id} key exists). The same after an add/del that failed
 * (-1): call edge_register (which drops every entry of the edge) and add
 * them all. */
#ifndef CHAT_ROUTING_H
#define CHAT_ROUTING_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_EDGE_ID_MAX 64
#define CHAT_URL_MAX 256

typedef struct chat_routing chat_routing;

/* One change for apply: add (1) or remove (0) edge_id for a channel
 * (is_user 0) or a user (1). */
typedef struct chat_route_op {
	uint8_t add;
	uint8_t is_user;
	uint64_t key;
} chat_route_op;

typedef struct chat_routing_ops {
	/* Make the edge live at rpc_url. Redis: drops every entry it had (an
	 * edge restarting under the same id starts clean), and edge ids must
	 * be 1..63 characters of [A-Za-z0-9._-]. Memory: keeps its entries
	 * (only the url changes). 0 or -1. */
	int (*edge_register)(chat_routing *r, const char *edge_id,
	                     const char *rpc_url);
	/* Drop the edge and all of its entries. 0 or -1. */
	int (*edge_unregister)(chat_routing *r, const char *edge_id);
	int (*channel_add)(chat_routing *r, uint64_t channel_id,
	                   const char *edge_id);
	int (*channel_del)(chat_routing *r, uint64_t channel_id,
	                   const char *edge_id);
	int (*user_add)(chat_routing *r, uint64_t user_id, const char *edge_id);
	int (*user_del)(chat_routing *r, uint64_t user_id, const char *edge_id);
	/* Live edges for a channel (key_is_user 0) or a user (1): copies at
	 * most max ids into ids; returns how many (0 also when the table
	 * cannot be read). */
	size_t (*lookup)(chat_routing *r, int key_is_user, uint64_t key,
	                 char (*ids)[CHAT_EDGE_ID_MAX], size_t max);
	/* The RPC url of a live edge; 0 found, -1 not. */
	int (*edge_url)(chat_routing *r, const char *edge_id, char *url,
	                size_t urllen);
	void (*free)(chat_routing *r);
	/* Keep a registered edge alive. 0 alive, 1 it had been lost and was
	 * re-created empty (re-add everything), -1 error (try again later).
	 * Memory: always 0. */
	int (*heartbeat)(chat_routing *r, const char *edge_id);
	/* Apply n changes of one edge, in order, in one round trip (Redis:
	 * one pipeline). 0, or -1 when some may not have been applied. */
	int (*apply)(chat_routing *r, const char *edge_id,
	             const chat_route_op *ops, size_t n);
} chat_routing_ops;

struct chat_routing {
	const chat_routing_ops *ops;
};

/* The in-memory table for chatd. NULL when out of memory. */
chat_routing *chat_routing_mem_new(void);

/* The Redis table for the fleet, at addr ("host:port"). Keys, with
 * prefix P (NULL: "chat:"):
 *   P route:ch:{channel}   SET of edge ids
 *   P route:user:{user}    SET of edge ids
 *   P edge:{id}            STRING rpc url, expires after edge_ttl_s
 *                          (<= 0: 10) unless heartbeat refreshes it
 *   P edge:{id}:ch         SET of channel ids of the edge (its index)
 *   P edge:{id}:user       SET of user ids of the edge
 *   P route:edges          SET of the edge ids registered (for the sweep)
 * The index sets expire 6 TTLs (at least 60 s) after the edge's last
 * heartbeat or apply. lookup returns only edges whose P edge:{id} exists
 * and removes the others from the set it read; results are cached for at
 * most cache_ms (chat_routing_redis_set_cache_ms, default 1000), and when
 * Redis cannot be reached a cached result up to one TTL old is returned.
 * timeout_ms (<= 0: 500) bounds each Redis step; a call returns within 4
 * times that at worst, at once while Redis refuses connections. Does
 * not connect yet. NULL with a reason in err on a bad address. */
chat_routing *chat_routing_redis_new(const char *addr, const char *prefix,
                                     int edge_ttl_s, int timeout_ms,
                                     char *err, size_t errlen);

/* Change the lookup cache lifetime of a Redis table (0 = no cache).
 * Ignored for other tables. */
void chat_routing_redis_set_cache_ms(chat_routing *r, int cache_ms);

/* Drop every entry (route sets, index) of the edges whose lease ran out:
 * an edge killed with -9 leaves its entries in sets nobody may read again
 * (lookups only clean the sets they read). The edges are those that
 * registered through any table on this Redis (P route:edges). Call it
 * every few seconds from one or more processes (dispatchers do): it is
 * one atomic script, idempotent. Returns how many edges were swept, 0 for
 * other tables, or -1 when Redis could not be reached. */
int chat_routing_redis_sweep(chat_routing *r);

/* Whether this table's lookups may be missing entries: a lookup or
 * edge_url call failed to reach Redis, or reached it on a new connection
 * (it may have restarted empty), less than a heartbeat period (a third of
 * the TTL) plus 1 s ago; the edges re-publish their entries at their next
 * heartbeat. Readers should then also send to the edges they know of
 * (dispatchers do). While Redis cannot be reached, edge_url answers the
 * last url it knew. 0 for other tables. */
int chat_routing_redis_degraded(chat_routing *r);

/* Whether id is a valid edge id (see edge_register). */
int chat_routing_edge_id_valid(const char *id);

static inline void chat_routing_free(chat_routing *r)
{
	if (r)
		r->ops->free(r);
}

static inline int chat_routing_heartbeat(chat_routing *r, const char *edge_id)
{
	return r->ops->heartbeat(r, edge_id);
}

static inline int chat_routing_apply(chat_routing *r, const char *edge_id,
                                     const chat_route_op *ops, size_t n)
{
	return r->ops->apply(r, edge_id, ops, n);
}

#endif
