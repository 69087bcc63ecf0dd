/* The routing table: which edges hold a session interested in a channel,
 * which edges hold a session of a user, and each edge's RPC address.
 * Edges keep their own reference counts and call add when their first
 * local session subscribes and del when the last one goes. Dispatchers and
 * presence read it. One interface; the embedded implementation is in
 * memory (this file), the fleet one lives in Redis. All calls thread-safe. */
#ifndef CHAT_ROUTING_H
#define CHAT_ROUTING_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_EDGE_ID_MAX 64
#define CHAT_URL_MAX 256

typedef struct chat_routing chat_routing;

typedef struct chat_routing_ops {
	int (*edge_register)(chat_routing *r, const char *edge_id,
	                     const char *rpc_url);
	int (*edge_unregister)(chat_routing *r, const char *edge_id);
	int (*channel_add)(chat_routing *r, uint64_t channel_id,
	                   const char *edge_id);
	int (*channel_del)(chat_routing *r, uint64_t channel_id,
	                   const char *edge_id);
	int (*user_add)(chat_routing *r, uint64_t user_id, const char *edge_id);
	int (*user_del)(chat_routing *r, uint64_t user_id, const char *edge_id);
	/* Edges for a channel (key_is_user 0) or a user (1): copies at most
	 * max ids into ids; returns how many. */
	size_t (*lookup)(chat_routing *r, int key_is_user, uint64_t key,
	                 char (*ids)[CHAT_EDGE_ID_MAX], size_t max);
	/* The RPC url of an edge; 0 found, -1 not. */
	int (*edge_url)(chat_routing *r, const char *edge_id, char *url,
	                size_t urllen);
	void (*free)(chat_routing *r);
} chat_routing_ops;

struct chat_routing {
	const chat_routing_ops *ops;
};

/* The in-memory table for chatd. NULL when out of memory. */
chat_routing *chat_routing_mem_new(void);

static inline void chat_routing_free(chat_routing *r)
{
	if (r)
		r->ops->free(r);
}

#endif
