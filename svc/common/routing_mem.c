/* The in-memory routing table for the embedded mode. */
#include "chat_routing.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chat_map.h"
#include "chat_util.h"

#define MAX_EDGES 64

struct edge {
	char id[CHAT_EDGE_ID_MAX];
	char url[CHAT_URL_MAX];
	int used;
};

/* For one key: a bit per edge slot holding it. */
struct mem {
	chat_routing base;
	pthread_mutex_t mu;
	struct edge edges[MAX_EDGES];
	chat_u64map channels, users; /* key -> (uintptr_t) edge bitmap */
};

static int slot(struct mem *m, const char *edge_id)
{
	for (int i = 0; i < MAX_EDGES; i++)
		if (m->edges[i].used && strcmp(m->edges[i].id, edge_id) == 0)
			return i;
	return -1;
}

static void clear_bit(chat_u64map *map, int s)
{
	size_t it = 0;
	uint64_t k;
	void *v;
	while (chat_u64map_next(map, &it, &k, &v)) {
		uintptr_t bits = (uintptr_t)v & ~((uintptr_t)1 << s);
		if (bits)
			chat_u64map_put(map, k, (void *)bits);
		else
			chat_u64map_del(map, k);
	}
}

static int edge_register(chat_routing *r, const char *edge_id, const char *url)
{
	struct mem *m = (struct mem *)r;
	int s, rv = -1;
	pthread_mutex_lock(&m->mu);
	s = slot(m, edge_id);
	for (int i = 0; s < 0 && i < MAX_EDGES; i++)
		if (!m->edges[i].used)
			s = i;
	if (s >= 0) {
		m->edges[s].used = 1;
		chat_strlcpy(m->edges[s].id, edge_id, sizeof m->edges[s].id);
		chat_strlcpy(m->edges[s].url, url, sizeof m->edges[s].url);
		rv = 0;
	}
	pthread_mutex_unlock(&m->mu);
	return rv;
}

static int edge_unregister(chat_routing *r, const char *edge_id)
{
	struct mem *m = (struct mem *)r;
	int s;
	pthread_mutex_lock(&m->mu);
	s = slot(m, edge_id);
	if (s >= 0) {
		m->edges[s].used = 0;
		clear_bit(&m->channels, s);
		clear_bit(&m->users, s);
	}
	pthread_mutex_unlock(&m->mu);
	return s >= 0 ? 0 : -1;
}

static int change(struct mem *m, chat_u64map *map, uint64_t key,
                  const char *edge_id, int add)
{
	int s, rv = -1;
	pthread_mutex_lock(&m->mu);
	s = slot(m, edge_id);
	if (s >= 0) {
		uintptr_t bits = (uintptr_t)chat_u64map_get(map, key);
		if (add)
			bits |= (uintptr_t)1 << s;
		else
			bits &= ~((uintptr_t)1 << s);
		if (bits)
			rv = chat_u64map_put(map, key, (void *)bits);
		else {
			chat_u64map_del(map, key);
			rv = 0;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return rv;
}

static int channel_add(chat_routing *r, uint64_t c, const char *e)
{
	return change((struct mem *)r, &((struct mem *)r)->channels, c, e, 1);
}

static int channel_del(chat_routing *r, uint64_t c, const char *e)
{
	return change((struct mem *)r, &((struct mem *)r)->channels, c, e, 0);
}

static int user_add(chat_routing *r, uint64_t u, const char *e)
{
	return change((struct mem *)r, &((struct mem *)r)->users, u, e, 1);
}

static int user_del(chat_routing *r, uint64_t u, const char *e)
{
	return change((struct mem *)r, &((struct mem *)r)->users, u, e, 0);
}

static size_t lookup(chat_routing *r, int is_user, uint64_t key,
                     char (*ids)[CHAT_EDGE_ID_MAX], size_t max)
{
	struct mem *m = (struct mem *)r;
	size_t n = 0;
	uintptr_t bits;
	pthread_mutex_lock(&m->mu);
	bits = (uintptr_t)chat_u64map_get(is_user ? &m->users : &m->channels, key);
	for (int s = 0; s < MAX_EDGES && n < max; s++)
		if ((bits >> s) & 1)
			chat_strlcpy(ids[n++], m->edges[s].id, CHAT_EDGE_ID_MAX);
	pthread_mutex_unlock(&m->mu);
	return n;
}

static int edge_url(chat_routing *r, const char *edge_id, char *url,
                    size_t len)
{
	struct mem *m = (struct mem *)r;
	int s;
	pthread_mutex_lock(&m->mu);
	s = slot(m, edge_id);
	if (s >= 0)
		chat_strlcpy(url, m->edges[s].url, len);
	pthread_mutex_unlock(&m->mu);
	return s >= 0 ? 0 : -1;
}

static int mem_heartbeat(chat_routing *r, const char *edge_id)
{
	(void)r;
	(void)edge_id;
	return 0;
}

static int mem_apply(chat_routing *r, const char *edge_id,
                     const chat_route_op *ops, size_t n)
{
	struct mem *m = (struct mem *)r;
	int rv = 0;
	for (size_t i = 0; i < n; i++)
		if (change(m, ops[i].is_user ? &m->users : &m->channels,
		           ops[i].key, edge_id, ops[i].add) != 0)
			rv = -1;
	return rv;
}

static void mem_free(chat_routing *r)
{
	struct mem *m = (struct mem *)r;
	chat_u64map_fini(&m->channels);
	chat_u64map_fini(&m->users);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static const chat_routing_ops mem_ops = {
	edge_register, edge_unregister, channel_add, channel_del, user_add,
	user_del, lookup, edge_url, mem_free, mem_heartbeat, mem_apply,
};

chat_routing *chat_routing_mem_new(void)
{
	struct mem *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->base.ops = &mem_ops;
	pthread_mutex_init(&m->mu, NULL);
	chat_u64map_init(&m->channels);
	chat_u64map_init(&m->users);
	return &m->base;
}
