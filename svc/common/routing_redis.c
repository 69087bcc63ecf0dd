/* The routing table in Redis for the fleet (see chat_routing.h for the
 * keys). Writes come from each edge's routing thread; lookups from
 * dispatchers and presence, cached for about a second. Multi-key steps
 * that must not interleave (drop an edge's entries, filter a set by
 * liveness) are Lua scripts, so they are atomic and one round trip. */
#include "chat_routing.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_map.h"
#include "chat_redis.h"
#include "chat_util.h"

#define SVC "routing"
#define PREFIX_MAX 64
#define MAX_OWN 16          /* edges registered through one table */
#define CACHE_MAX 65536     /* cached keys per kind before a flush */
#define URL_CACHE 256       /* slots of the edge url cache */

/* Drop every entry of an edge. KEYS: index ch, index user.
 * ARGV: prefix, edge id. */
#define PURGE_LUA                                                              \
	"for _, c in ipairs(redis.call('SMEMBERS', KEYS[1])) do "              \
	"redis.call('SREM', ARGV[1] .. 'route:ch:' .. c, ARGV[2]) end "        \
	"for _, u in ipairs(redis.call('SMEMBERS', KEYS[2])) do "              \
	"redis.call('SREM', ARGV[1] .. 'route:user:' .. u, ARGV[2]) end "      \
	"redis.call('DEL', KEYS[1], KEYS[2]) "

/* Register: purge, then set the liveness key and list the edge among the
 * edges the sweep watches. KEYS: index ch, index user, edge key.
 * ARGV: prefix, edge id, url, ttl. */
static const char register_lua[] =
    PURGE_LUA "redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4]) "
    "redis.call('SADD', ARGV[1] .. 'route:edges', ARGV[2]) return 1";

/* Unregister: purge, then delete the liveness key. Same KEYS/ARGV. */
static const char unregister_lua[] =
    PURGE_LUA "redis.call('DEL', KEYS[3]) "
    "redis.call('SREM', ARGV[1] .. 'route:edges', ARGV[2]) return 1";

/* Sweep: drop every entry of the edges whose lease ran out (a killed edge
 * leaves its entries behind; lookups drop them only from the sets they
 * read). Atomic, so an edge that registers again meanwhile keeps what it
 * publishes. ARGV: prefix. Returns the ids swept. */
static const char sweep_lua[] =
    "local out = {} "
    "for _, e in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'route:edges')) do "
    "local ek = ARGV[1] .. 'edge:' .. e "
    "if redis.call('EXISTS', ek) == 0 then "
    "for _, c in ipairs(redis.call('SMEMBERS', ek .. ':ch')) do "
    "redis.call('SREM', ARGV[1] .. 'route:ch:' .. c, e) end "
    "for _, u in ipairs(redis.call('SMEMBERS', ek .. ':user')) do "
    "redis.call('SREM', ARGV[1] .. 'route:user:' .. u, e) end "
    "redis.call('DEL', ek .. ':ch', ek .. ':user') "
    "redis.call('SREM', ARGV[1] .. 'route:edges', e) "
    "out[#out + 1] = e end end "
    "return out";

/* Members of a route set whose edge is alive; the dead are removed.
 * KEYS: the set. ARGV: prefix. */
static const char lookup_lua[] =
    "local out = {} "
    "for _, e in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "if redis.call('EXISTS', ARGV[1] .. 'edge:' .. e) == 1 then "
    "out[#out + 1] = e else redis.call('SREM', KEYS[1], e) end end "
    "return out";

struct own {
	char id[CHAT_EDGE_ID_MAX];
	char url[CHAT_URL_MAX];
};

struct centry {
	int64_t at_ms;
	size_t n;
	char ids[][CHAT_EDGE_ID_MAX];
};

struct uentry {
	char id[CHAT_EDGE_ID_MAX];
	char url[CHAT_URL_MAX];
	int64_t at_ms;
};

struct rr {
	chat_routing base;
	chat_redis *redis;
	char prefix[PREFIX_MAX];
	int ttl_s, index_ttl_s;

	pthread_mutex_t mu; /* own, caches */
	struct own own[MAX_OWN];
	int cache_ms;
	chat_u64map cache[2]; /* [is_user] key -> struct centry */
	struct uentry urls[URL_CACHE];
	/* Readers: Redis failed, or came back on a new connection (it may
	 * have restarted empty), until degraded_ms: the table may miss
	 * entries until every edge heartbeats again (a third of the TTL). */
	int64_t degraded_ms;
	uint64_t seen_connects;
};

int chat_routing_edge_id_valid(const char *id)
{
	size_t n = 0;
	if (!id)
		return 0;
	for (; id[n]; n++) {
		char c = id[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return n > 0 && n < CHAT_EDGE_ID_MAX;
}

/* ---- caches (under mu) ------------------------------------------------- */

static void cache_flush(struct rr *t, int kind)
{
	size_t it = 0;
	uint64_t k;
	void *v;
	while (chat_u64map_next(&t->cache[kind], &it, &k, &v))
		free(v);
	chat_u64map_fini(&t->cache[kind]);
	chat_u64map_init(&t->cache[kind]);
}

static void cache_drop(struct rr *t, int kind, uint64_t key)
{
	free(chat_u64map_del(&t->cache[kind], key));
}

static void cache_put(struct rr *t, int kind, uint64_t key,
                      char (*ids)[CHAT_EDGE_ID_MAX], size_t n, int64_t now)
{
	struct centry *e = malloc(sizeof *e + n * CHAT_EDGE_ID_MAX);
	if (!e)
		return;
	e->at_ms = now;
	e->n = n;
	if (n)
		memcpy(e->ids, ids, n * CHAT_EDGE_ID_MAX);
	if (t->cache[kind].len >= CACHE_MAX)
		cache_flush(t, kind);
	free(chat_u64map_del(&t->cache[kind], key));
	if (chat_u64map_put(&t->cache[kind], key, e) != 0)
		free(e);
}

/* Copy a cached entry no older than max_age_ms; -1 when none. */
static long cache_get(struct rr *t, int kind, uint64_t key, int64_t now,
                      int64_t max_age_ms, char (*ids)[CHAT_EDGE_ID_MAX],
                      size_t max)
{
	struct centry *e = chat_u64map_get(&t->cache[kind], key);
	size_t n;
	if (!e || now - e->at_ms > max_age_ms)
		return -1;
	n = e->n < max ? e->n : max;
	memcpy(ids, e->ids, n * CHAT_EDGE_ID_MAX);
	return (long)n;
}

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

static struct uentry *url_slot(struct rr *t, const char *id)
{
	return &t->urls[hash_id(id) % URL_CACHE];
}

static void caches_clear(struct rr *t)
{
	cache_flush(t, 0);
	cache_flush(t, 1);
	memset(t->urls, 0, sizeof t->urls);
}

static struct own *own_find(struct rr *t, const char *id)
{
	for (int i = 0; i < MAX_OWN; i++)
		if (t->own[i].id[0] && strcmp(t->own[i].id, id) == 0)
			return &t->own[i];
	return NULL;
}

/* After a reader's call (under no lock): Redis failed (ok 0), or answered
 * on a connection other than the last one seen. Either way entries may be
 * missing until the edges' next heartbeat re-publishes them. */
static void note_redis(struct rr *t, int ok)
{
	uint64_t c = chat_redis_connects(t->redis);
	int64_t until = chat_mono_ms() + (int64_t)t->ttl_s * 1000 / 3 + 1000;
	int fresh;

	pthread_mutex_lock(&t->mu);
	fresh = !ok || (t->seen_connects && c != t->seen_connects);
	if (ok)
		t->seen_connects = c;
	if (fresh && until > t->degraded_ms) {
		if (t->degraded_ms < chat_mono_ms())
			chat_warn(SVC, "table_degraded",
			          "reason=%s until_ms=%d",
			          ok ? "redis_reconnected" : "redis_failed",
			          t->ttl_s * 1000 / 3 + 1000);
		t->degraded_ms = until;
	}
	pthread_mutex_unlock(&t->mu);
}

/* ---- operations -------------------------------------------------------- */

/* Run the purge-based script (register or unregister) for an edge. */
static int purge_script(struct rr *t, const char *script, const char *id,
                        const char *url)
{
	char k_ch[256], k_user[256], k_edge[256], ttl[16], why[256];
	chat_redis_batch b;
	redisReply **reps = NULL;
	int rv = -1;

	snprintf(k_ch, sizeof k_ch, "%sedge:%s:ch", t->prefix, id);
	snprintf(k_user, sizeof k_user, "%sedge:%s:user", t->prefix, id);
	snprintf(k_edge, sizeof k_edge, "%sedge:%s", t->prefix, id);
	snprintf(ttl, sizeof ttl, "%d", t->ttl_s);
	chat_redis_batch_init(&b);
	chat_redis_batch_add(&b, "EVAL %s 3 %s %s %s %s %s %s %s", script,
	                     k_ch, k_user, k_edge, t->prefix, id, url, ttl);
	if (chat_redis_exec(t->redis, &b, &reps, why, sizeof why) != 0)
		chat_warn(SVC, "redis_failed",
		          "op=register edge=%s reason=\"%s\"", id, why);
	else if (chat_redis_is_error(reps[0]))
		chat_warn(SVC, "redis_error",
		          "op=register edge=%s reply=\"%s\"", id, reps[0]->str);
	else
		rv = 0;
	chat_redis_replies_free(reps, b.n);
	chat_redis_batch_fini(&b);
	return rv;
}

static int rr_register(chat_routing *r, const char *id, const char *url)
{
	struct rr *t = (struct rr *)r;
	struct own *o;
	int rv;

	if (!chat_routing_edge_id_valid(id) || !url || !url[0] ||
	    strlen(url) >= CHAT_URL_MAX)
		return -1;
	pthread_mutex_lock(&t->mu);
	o = own_find(t, id);
	for (int i = 0; !o && i < MAX_OWN; i++)
		if (!t->own[i].id[0])
			o = &t->own[i];
	if (o) {
		chat_strlcpy(o->id, id, sizeof o->id);
		chat_strlcpy(o->url, url, sizeof o->url);
	}
	pthread_mutex_unlock(&t->mu);
	if (!o)
		return -1;
	rv = purge_script(t, register_lua, id, url);
	pthread_mutex_lock(&t->mu);
	caches_clear(t);
	pthread_mutex_unlock(&t->mu);
	return rv;
}

static int rr_unregister(chat_routing *r, const char *id)
{
	struct rr *t = (struct rr *)r;
	struct own *o;
	int rv;

	if (!chat_routing_edge_id_valid(id))
		return -1;
	pthread_mutex_lock(&t->mu);
	if ((o = own_find(t, id)))
		memset(o, 0, sizeof *o);
	pthread_mutex_unlock(&t->mu);
	rv = purge_script(t, unregister_lua, id, "");
	pthread_mutex_lock(&t->mu);
	caches_clear(t);
	pthread_mutex_unlock(&t->mu);
	return rv;
}

static int rr_heartbeat(chat_routing *r, const char *id)
{
	struct rr *t = (struct rr *)r;
	char k_edge[256], url[CHAT_URL_MAX], why[256];
	chat_redis_batch b;
	redisReply **reps = NULL;
	struct own *o;
	int rv = -1;

	pthread_mutex_lock(&t->mu);
	o = chat_routing_edge_id_valid(id) ? own_find(t, id) : NULL;
	if (o)
		chat_strlcpy(url, o->url, sizeof url);
	pthread_mutex_unlock(&t->mu);
	if (!o)
		return -1;
	snprintf(k_edge, sizeof k_edge, "%sedge:%s", t->prefix, id);
	chat_redis_batch_init(&b);
	/* XX: refresh only; a nil reply says the key was gone. */
	chat_redis_batch_add(&b, "SET %s %s XX EX %d", k_edge, url, t->ttl_s);
	chat_redis_batch_add(&b, "EXPIRE %s:ch %d", k_edge, t->index_ttl_s);
	chat_redis_batch_add(&b, "EXPIRE %s:user %d", k_edge, t->index_ttl_s);
	if (chat_redis_exec(t->redis, &b, &reps, why, sizeof why) != 0) {
		chat_debug(SVC, "heartbeat_failed", "edge=%s reason=\"%s\"", id,
		           why);
	} else if (chat_redis_is_error(reps[0])) {
		chat_warn(SVC, "redis_error",
		          "op=heartbeat edge=%s reply=\"%s\"", id,
		          reps[0]->str);
	} else if (reps[0]->type == REDIS_REPLY_NIL) {
		chat_warn(SVC, "edge_lost", "edge=%s action=re-register", id);
		rv = purge_script(t, register_lua, id, url) == 0 ? 1 : -1;
		pthread_mutex_lock(&t->mu);
		caches_clear(t);
		pthread_mutex_unlock(&t->mu);
	} else {
		rv = 0;
	}
	chat_redis_replies_free(reps, b.n);
	chat_redis_batch_fini(&b);
	return rv;
}

static int rr_apply(chat_routing *r, const char *id, const chat_route_op *ops,
                    size_t n)
{
	struct rr *t = (struct rr *)r;
	static const char *const kind[2] = {"ch", "user"};
	chat_redis_batch b;
	redisReply **reps = NULL;
	char why[256];
	int rv = 0;

	if (!chat_routing_edge_id_valid(id))
		return -1;
	if (n == 0)
		return 0;
	chat_redis_batch_init(&b);
	for (size_t i = 0; i < n; i++) {
		const char *k = kind[ops[i].is_user ? 1 : 0];
		const char *cmd = ops[i].add ? "SADD" : "SREM";
		unsigned long long key = (unsigned long long)ops[i].key;
		chat_redis_batch_add(&b, "%s %sroute:%s:%llu %s", cmd,
		                     t->prefix, k, key, id);
		chat_redis_batch_add(&b, "%s %sedge:%s:%s %llu", cmd, t->prefix,
		                     id, k, key);
	}
	chat_redis_batch_add(&b, "EXPIRE %sedge:%s:ch %d", t->prefix, id,
	                     t->index_ttl_s);
	chat_redis_batch_add(&b, "EXPIRE %sedge:%s:user %d", t->prefix, id,
	                     t->index_ttl_s);
	if (chat_redis_exec(t->redis, &b, &reps, why, sizeof why) != 0) {
		chat_warn(SVC, "redis_failed", "op=apply edge=%s n=%zu "
		          "reason=\"%s\"", id, n, why);
		rv = -1;
	} else {
		for (size_t i = 0; i < b.n; i++)
			if (chat_redis_is_error(reps[i]))
				rv = -1;
	}
	chat_redis_replies_free(reps, b.n);
	chat_redis_batch_fini(&b);
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < n; i++)
		cache_drop(t, ops[i].is_user ? 1 : 0, ops[i].key);
	pthread_mutex_unlock(&t->mu);
	return rv;
}

static int one(chat_routing *r, int is_user, int add, uint64_t key,
               const char *id)
{
	chat_route_op op;
	op.add = (uint8_t)add;
	op.is_user = (uint8_t)is_user;
	op.key = key;
	return rr_apply(r, id, &op, 1);
}

static int rr_channel_add(chat_routing *r, uint64_t c, const char *e)
{
	return one(r, 0, 1, c, e);
}

static int rr_channel_del(chat_routing *r, uint64_t c, const char *e)
{
	return one(r, 0, 0, c, e);
}

static int rr_user_add(chat_routing *r, uint64_t u, const char *e)
{
	return one(r, 1, 1, u, e);
}

static int rr_user_del(chat_routing *r, uint64_t u, const char *e)
{
	return one(r, 1, 0, u, e);
}

static size_t rr_lookup(chat_routing *r, int is_user, uint64_t key,
                        char (*ids)[CHAT_EDGE_ID_MAX], size_t max)
{
	struct rr *t = (struct rr *)r;
	int kind = is_user ? 1 : 0;
	int64_t now = chat_mono_ms();
	char (*all)[CHAT_EDGE_ID_MAX] = NULL;
	chat_redis_batch b;
	redisReply **reps = NULL;
	char why[256];
	long got;
	size_t n = 0, total;

	if (key == 0 || key == UINT64_MAX) /* not storable in the cache */
		return 0;
	pthread_mutex_lock(&t->mu);
	got = cache_get(t, kind, key, now, t->cache_ms, ids, max);
	pthread_mutex_unlock(&t->mu);
	if (got >= 0)
		return (size_t)got;

	chat_redis_batch_init(&b);
	chat_redis_batch_add(&b, "EVAL %s 1 %sroute:%s:%llu %s", lookup_lua,
	                     t->prefix, kind ? "user" : "ch",
	                     (unsigned long long)key, t->prefix);
	if (chat_redis_exec(t->redis, &b, &reps, why, sizeof why) != 0 ||
	    chat_redis_is_error(reps[0]) ||
	    reps[0]->type != REDIS_REPLY_ARRAY) {
		note_redis(t, 0);
		if (reps && reps[0] && reps[0]->type == REDIS_REPLY_ERROR)
			chat_warn(SVC, "redis_error", "op=lookup reply=\"%s\"",
			          reps[0]->str);
		chat_redis_replies_free(reps, b.n);
		chat_redis_batch_fini(&b);
		/* Redis away: an older answer beats none. */
		pthread_mutex_lock(&t->mu);
		got = cache_get(t, kind, key, now, (int64_t)t->ttl_s * 1000,
		                ids, max);
		pthread_mutex_unlock(&t->mu);
		return got > 0 ? (size_t)got : 0;
	}
	note_redis(t, 1);
	total = reps[0]->elements;
	all = total ? calloc(total, CHAT_EDGE_ID_MAX) : NULL;
	for (size_t i = 0; all && i < reps[0]->elements; i++) {
		const redisReply *e = reps[0]->element[i];
		if (e->type != REDIS_REPLY_STRING || e->len == 0 ||
		    e->len >= CHAT_EDGE_ID_MAX)
			continue;
		memcpy(all[n], e->str, e->len);
		all[n][e->len] = '\0';
		n++;
	}
	chat_redis_replies_free(reps, b.n);
	chat_redis_batch_fini(&b);
	pthread_mutex_lock(&t->mu);
	if (t->cache_ms > 0 && (all || total == 0))
		cache_put(t, kind, key, all, n, now);
	pthread_mutex_unlock(&t->mu);
	if (n > max)
		n = max;
	if (n)
		memcpy(ids, all, n * CHAT_EDGE_ID_MAX);
	free(all);
	return n;
}

static int rr_edge_url(chat_routing *r, const char *id, char *url, size_t len)
{
	struct rr *t = (struct rr *)r;
	int64_t now = chat_mono_ms();
	struct uentry *u;
	redisReply *rep;
	int rv = -1;

	if (!chat_routing_edge_id_valid(id))
		return -1;
	pthread_mutex_lock(&t->mu);
	u = url_slot(t, id);
	if (t->cache_ms > 0 && strcmp(u->id, id) == 0 &&
	    now - u->at_ms <= t->cache_ms) {
		chat_strlcpy(url, u->url, len);
		rv = 0;
	}
	pthread_mutex_unlock(&t->mu);
	if (rv == 0)
		return 0;
	rep = chat_redis_command(t->redis, "GET %sedge:%s", t->prefix, id);
	note_redis(t, rep && rep->type != REDIS_REPLY_ERROR);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		/* Redis away: the last url known beats none. */
		pthread_mutex_lock(&t->mu);
		u = url_slot(t, id);
		if (!strcmp(u->id, id) && u->url[0]) {
			chat_strlcpy(url, u->url, len);
			rv = 0;
		}
		pthread_mutex_unlock(&t->mu);
	} else if (rep->type == REDIS_REPLY_STRING && rep->len > 0 &&
	           rep->len < CHAT_URL_MAX) {
		pthread_mutex_lock(&t->mu);
		u = url_slot(t, id);
		chat_strlcpy(u->id, id, sizeof u->id);
		memcpy(u->url, rep->str, rep->len);
		u->url[rep->len] = '\0';
		u->at_ms = now;
		chat_strlcpy(url, u->url, len);
		pthread_mutex_unlock(&t->mu);
		rv = 0;
	}
	if (rep)
		freeReplyObject(rep);
	return rv;
}

static void rr_free(chat_routing *r)
{
	struct rr *t = (struct rr *)r;
	cache_flush(t, 0);
	cache_flush(t, 1);
	chat_u64map_fini(&t->cache[0]);
	chat_u64map_fini(&t->cache[1]);
	chat_redis_free(t->redis);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static const chat_routing_ops redis_ops = {
    rr_register, rr_unregister, rr_channel_add, rr_channel_del,
    rr_user_add, rr_user_del,   rr_lookup,      rr_edge_url,
    rr_free,     rr_heartbeat,  rr_apply,
};

chat_routing *chat_routing_redis_new(const char *addr, const char *prefix,
                                     int edge_ttl_s, int timeout_ms,
                                     char *err, size_t errlen)
{
	struct rr *t;
	if (!prefix)
		prefix = "chat:";
	if (strlen(prefix) >= PREFIX_MAX || strchr(prefix, ' ')) {
		chat_errf(err, errlen, "routing: bad key prefix '%s'", prefix);
		return NULL;
	}
	t = calloc(1, sizeof *t);
	if (!t) {
		chat_errf(err, errlen, "out of memory");
		return NULL;
	}
	t->redis = chat_redis_new(addr, timeout_ms, err, errlen);
	if (!t->redis) {
		free(t);
		return NULL;
	}
	t->base.ops = &redis_ops;
	chat_strlcpy(t->prefix, prefix, sizeof t->prefix);
	t->ttl_s = edge_ttl_s > 0 ? edge_ttl_s : 10;
	t->index_ttl_s = 6 * t->ttl_s < 60 ? 60 : 6 * t->ttl_s;
	t->cache_ms = 1000;
	pthread_mutex_init(&t->mu, NULL);
	chat_u64map_init(&t->cache[0]);
	chat_u64map_init(&t->cache[1]);
	return &t->base;
}

void chat_routing_redis_set_cache_ms(chat_routing *r, int cache_ms)
{
	struct rr *t = (struct rr *)r;
	if (!r || r->ops != &redis_ops)
		return;
	pthread_mutex_lock(&t->mu);
	t->cache_ms = cache_ms > 0 ? cache_ms : 0;
	caches_clear(t);
	pthread_mutex_unlock(&t->mu);
}

int chat_routing_redis_sweep(chat_routing *r)
{
	struct rr *t = (struct rr *)r;
	chat_redis_batch b;
	redisReply **reps = NULL;
	char why[256];
	int n = -1;

	if (!r || r->ops != &redis_ops)
		return 0;
	chat_redis_batch_init(&b);
	chat_redis_batch_add(&b, "EVAL %s 0 %s", sweep_lua, t->prefix);
	if (chat_redis_exec(t->redis, &b, &reps, why, sizeof why) != 0) {
		chat_debug(SVC, "sweep_failed", "reason=\"%s\"", why);
	} else if (reps[0]->type != REDIS_REPLY_ARRAY) {
		chat_warn(SVC, "redis_error", "op=sweep reply=\"%s\"",
		          reps[0]->type == REDIS_REPLY_ERROR ? reps[0]->str
		                                            : "?");
	} else {
		n = (int)reps[0]->elements;
		for (size_t i = 0; i < reps[0]->elements; i++)
			if (reps[0]->element[i]->type == REDIS_REPLY_STRING)
				chat_info(SVC, "edge_swept",
				          "edge=%s reason=lease_expired",
				          reps[0]->element[i]->str);
	}
	chat_redis_replies_free(reps, b.n);
	chat_redis_batch_fini(&b);
	if (n > 0) {
		pthread_mutex_lock(&t->mu);
		caches_clear(t);
		pthread_mutex_unlock(&t->mu);
	}
	return n;
}

int chat_routing_redis_degraded(chat_routing *r)
{
	struct rr *t = (struct rr *)r;
	int d;

	if (!r || r->ops != &redis_ops)
		return 0;
	pthread_mutex_lock(&t->mu);
	d = chat_mono_ms() < t->degraded_ms;
	pthread_mutex_unlock(&t->mu);
	return d;
}
