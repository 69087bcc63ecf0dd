/* Presence state in Redis (the fleet; keys in pres_backend.h). Each
 * change of a user is one Lua script, so it is atomic across presence
 * instances and reports the state before and after in one round trip:
 *   {sessions before, sessions after, chosen before, chosen after,
 *    last seen, name}
 * A session counts while its edge is alive (P edge:{id}, kept by the
 * edge's routing heartbeat); the sweep ends the sessions of edges whose
 * key is gone. Redis is not the source of truth: after a Redis restart
 * the edges re-announce their sessions (SessionUp is idempotent) once
 * their heartbeat reports the loss; chosen statuses and last seen times
 * are lost with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_redis.h"
#include "chat_routing.h"
#include "chat_status.h"
#include "chat_util.h"
#include "pres_backend.h"

#define SVC "presence"
#define PREFIX_MAX 64
#define MAX_EDGES 1024 /* swept per round */

/* KEYS: sess, status, seen, name, edge set, edges.
 * ARGV: session, edge, user, name, prefix. */
static const char up_lua[] =
    "local nb = redis.call('HLEN', KEYS[1]) "
    "if ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4]) end "
    "local m = ARGV[3] .. ':' .. ARGV[1] "
    "local old = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if old and old ~= ARGV[2] then "
    "redis.call('SREM', ARGV[5] .. 'pres:edge:' .. old, m) end "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "
    "redis.call('SADD', KEYS[5], m) "
    "redis.call('SADD', KEYS[6], ARGV[2]) "
    "local st = redis.call('GET', KEYS[2]) or '' "
    "return {nb, redis.call('HLEN', KEYS[1]), st, st, "
    "redis.call('GET', KEYS[3]) or '', redis.call('GET', KEYS[4]) or ''}";

/* KEYS: sess, status, seen, name. ARGV: session, user, name, prefix, now. */
static const char down_lua[] =
    "local nb = redis.call('HLEN', KEYS[1]) "
    "if ARGV[3] ~= '' then redis.call('SET', KEYS[4], ARGV[3]) end "
    "local e = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if e then "
    "redis.call('HDEL', KEYS[1], ARGV[1]) "
    "redis.call('SREM', ARGV[4] .. 'pres:edge:' .. e, "
    "ARGV[2] .. ':' .. ARGV[1]) "
    "redis.call('SET', KEYS[3], ARGV[5]) end "
    "local st = redis.call('GET', KEYS[2]) or '' "
    "return {nb, redis.call('HLEN', KEYS[1]), st, st, "
    "redis.call('GET', KEYS[3]) or '', redis.call('GET', KEYS[4]) or ''}";

/* KEYS: sess, status, seen, name. ARGV: status, name. */
static const char set_lua[] =
    "local before = redis.call('GET', KEYS[2]) or '' "
    "redis.call('SET', KEYS[2], ARGV[1]) "
    "if ARGV[2] ~= '' then redis.call('SET', KEYS[4], ARGV[2]) end "
    "local n = redis.call('HLEN', KEYS[1]) "
    "return {n, n, before, ARGV[1], "
    "redis.call('GET', KEYS[3]) or '', redis.call('GET', KEYS[4]) or ''}";

/* End the sessions of a dead edge, unless it came back meanwhile.
 * KEYS: edge set, edges. ARGV: prefix, edge, now.
 * Returns {user, chosen, name, ...} for users left with no session. */
static const char sweep_lua[] =
    "if redis.call('EXISTS', ARGV[1] .. 'edge:' .. ARGV[2]) == 1 then "
    "return {} end "
    "local out = {} "
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "local u, s = string.match(m, '^(%d+):(%d+)$') "
    "if u then "
    "local sk = ARGV[1] .. 'pres:sess:' .. u "
    "if redis.call('HGET', sk, s) == ARGV[2] then "
    "redis.call('HDEL', sk, s) "
    "redis.call('SET', ARGV[1] .. 'pres:seen:' .. u, ARGV[3]) "
    "if redis.call('HLEN', sk) == 0 then "
    "out[#out + 1] = u "
    "out[#out + 1] = redis.call('GET', ARGV[1] .. 'pres:status:' .. u) "
    "or '' "
    "out[#out + 1] = redis.call('GET', ARGV[1] .. 'pres:name:' .. u) "
    "or '' end end end end "
    "redis.call('DEL', KEYS[1]) "
    "redis.call('SREM', KEYS[2], ARGV[2]) "
    "return out";

struct rp {
	pres_backend base;
	chat_redis *redis;
	char prefix[PREFIX_MAX];
};

static Chat__Status parse_status(const redisReply *r)
{
	long long v = chat_redis_int(r, CHAT__STATUS__STATUS_ONLINE);
	if (v < CHAT__STATUS__STATUS_OFFLINE || v > CHAT__STATUS__STATUS_BUSY)
		return CHAT__STATUS__STATUS_ONLINE;
	return (Chat__Status)v;
}

static void copy_str(char *out, size_t len, const redisReply *r)
{
	size_t n = 0;
	if (r && r->type == REDIS_REPLY_STRING) {
		n = r->len < len - 1 ? r->len : len - 1;
		memcpy(out, r->str, n);
	}
	out[n] = '\0';
}

static void make_view(pres_view *v, long long n, Chat__Status chosen,
                      const redisReply *seen, const redisReply *name,
                      int64_t now)
{
	copy_str(v->name, sizeof v->name, name);
	v->status = n > 0 ? chosen : CHAT__STATUS__STATUS_OFFLINE;
	v->last_seen_ms = v->status != CHAT__STATUS__STATUS_OFFLINE
	                      ? now
	                      : chat_redis_int(seen, 0);
}

/* Run one of the user scripts and turn its 6-tuple into a view. */
static int run_user(struct rp *r, chat_redis_batch *b, int64_t now,
                    pres_view *v, int *changed)
{
	redisReply **reps = NULL, *t;
	char why[256];
	int st = CHAT_OK;

	*changed = 0;
	if (chat_redis_exec(r->redis, b, &reps, why, sizeof why) != 0) {
		chat_warn(SVC, "redis_failed", "reason=\"%s\"", why);
		return CHAT_UNAVAILABLE;
	}
	t = reps[0];
	if (t->type != REDIS_REPLY_ARRAY || t->elements != 6) {
		chat_warn(SVC, "redis_error", "reply=\"%s\"",
		          t->type == REDIS_REPLY_ERROR ? t->str : "?");
		st = CHAT_INTERNAL;
	} else {
		long long nb = chat_redis_int(t->element[0], 0);
		long long na = chat_redis_int(t->element[1], 0);
		Chat__Status cb = parse_status(t->element[2]);
		Chat__Status ca = parse_status(t->element[3]);
		Chat__Status vb = nb > 0 ? cb : CHAT__STATUS__STATUS_OFFLINE;
		make_view(v, na, ca, t->element[4], t->element[5], now);
		*changed = v->status != vb;
	}
	chat_redis_replies_free(reps, b->n);
	return st;
}

static int rp_up(pres_backend *b, uint64_t user, const char *name,
                 uint64_t session, const char *edge, int64_t now,
                 pres_view *v, int *changed)
{
	struct rp *r = (struct rp *)b;
	const char *p = r->prefix;
	unsigned long long u = (unsigned long long)user;
	chat_redis_batch bt;
	int st;

	*changed = 0;
	if (!chat_routing_edge_id_valid(edge))
		return CHAT_INVALID_ARGUMENT;
	chat_redis_batch_init(&bt);
	chat_redis_batch_add(&bt,
	                     "EVAL %s 6 %spres:sess:%llu %spres:status:%llu "
	                     "%spres:seen:%llu %spres:name:%llu "
	                     "%spres:edge:%s %spres:edges %llu %s %llu %s %s",
	                     up_lua, p, u, p, u, p, u, p, u, p, edge, p,
	                     (unsigned long long)session, edge, u,
	                     name ? name : "", p);
	st = run_user(r, &bt, now, v, changed);
	chat_redis_batch_fini(&bt);
	return st;
}

static int rp_down(pres_backend *b, uint64_t user, const char *name,
                   uint64_t session, int64_t now, pres_view *v, int *changed)
{
	struct rp *r = (struct rp *)b;
	const char *p = r->prefix;
	unsigned long long u = (unsigned long long)user;
	chat_redis_batch bt;
	int st;

	chat_redis_batch_init(&bt);
	chat_redis_batch_add(&bt,
	                     "EVAL %s 4 %spres:sess:%llu %spres:status:%llu "
	                     "%spres:seen:%llu %spres:name:%llu "
	                     "%llu %llu %s %s %lld",
	                     down_lua, p, u, p, u, p, u, p, u,
	                     (unsigned long long)session, u, name ? name : "",
	                     p, (long long)now);
	st = run_user(r, &bt, now, v, changed);
	chat_redis_batch_fini(&bt);
	return st;
}

static int rp_set(pres_backend *b, uint64_t user, const char *name,
                  Chat__Status status, int64_t now, pres_view *v,
                  int *changed)
{
	struct rp *r = (struct rp *)b;
	const char *p = r->prefix;
	unsigned long long u = (unsigned long long)user;
	chat_redis_batch bt;
	int st;

	chat_redis_batch_init(&bt);
	chat_redis_batch_add(&bt,
	                     "EVAL %s 4 %spres:sess:%llu %spres:status:%llu "
	                     "%spres:seen:%llu %spres:name:%llu %d %s",
	                     set_lua, p, u, p, u, p, u, p, u, (int)status,
	                     name ? name : "");
	st = run_user(r, &bt, now, v, changed);
	chat_redis_batch_fini(&bt);
	return st;
}

static int rp_query(pres_backend *b, const uint64_t *users, size_t n,
                    int64_t now, pres_view *out)
{
	struct rp *r = (struct rp *)b;
	const char *p = r->prefix;
	chat_redis_batch bt;
	redisReply **reps = NULL;
	char why[256];

	if (n == 0)
		return CHAT_OK;
	chat_redis_batch_init(&bt);
	for (size_t i = 0; i < n; i++) {
		unsigned long long u = (unsigned long long)users[i];
		chat_redis_batch_add(&bt, "HLEN %spres:sess:%llu", p, u);
		chat_redis_batch_add(&bt, "GET %spres:status:%llu", p, u);
		chat_redis_batch_add(&bt, "GET %spres:seen:%llu", p, u);
		chat_redis_batch_add(&bt, "GET %spres:name:%llu", p, u);
	}
	if (chat_redis_exec(r->redis, &bt, &reps, why, sizeof why) != 0) {
		chat_warn(SVC, "redis_failed", "op=query reason=\"%s\"", why);
		chat_redis_batch_fini(&bt);
		return CHAT_UNAVAILABLE;
	}
	for (size_t i = 0; i < n; i++) {
		redisReply **q = &reps[4 * i];
		int ok = users[i] != 0 && users[i] != UINT64_MAX;
		make_view(&out[i], ok ? chat_redis_int(q[0], 0) : 0,
		          parse_status(q[1]), ok ? q[2] : NULL,
		          ok ? q[3] : NULL, now);
	}
	chat_redis_replies_free(reps, bt.n);
	chat_redis_batch_fini(&bt);
	return CHAT_OK;
}

/* The edges with sessions whose liveness key is gone. */
static int dead_edges(struct rp *r, char (**dead)[CHAT_EDGE_ID_MAX],
                      size_t *n_dead)
{
	redisReply *edges, **reps = NULL;
	chat_redis_batch bt;
	char why[256];
	size_t n;

	*dead = NULL;
	*n_dead = 0;
	edges = chat_redis_command(r->redis, "SMEMBERS %spres:edges",
	                           r->prefix);
	if (!edges || edges->type != REDIS_REPLY_ARRAY) {
		if (edges)
			freeReplyObject(edges);
		return CHAT_UNAVAILABLE;
	}
	n = edges->elements < MAX_EDGES ? edges->elements : MAX_EDGES;
	if (n == 0) {
		freeReplyObject(edges);
		return CHAT_OK;
	}
	chat_redis_batch_init(&bt);
	for (size_t i = 0; i < n; i++)
		chat_redis_batch_add(&bt, "EXISTS %sedge:%b", r->prefix,
		                     edges->element[i]->str,
		                     edges->element[i]->len);
	if (chat_redis_exec(r->redis, &bt, &reps, why, sizeof why) != 0 ||
	    !(*dead = calloc(n, CHAT_EDGE_ID_MAX))) {
		chat_redis_replies_free(reps, bt.n);
		chat_redis_batch_fini(&bt);
		freeReplyObject(edges);
		return CHAT_UNAVAILABLE;
	}
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = edges->element[i];
		if (chat_redis_int(reps[i], 1) != 0 ||
		    e->type != REDIS_REPLY_STRING || e->len >= CHAT_EDGE_ID_MAX)
			continue;
		memcpy((*dead)[*n_dead], e->str, e->len);
		(*dead)[*n_dead][e->len] = '\0';
		(*n_dead)++;
	}
	chat_redis_replies_free(reps, bt.n);
	chat_redis_batch_fini(&bt);
	freeReplyObject(edges);
	return CHAT_OK;
}

static int rp_sweep(pres_backend *b, int64_t now, pres_change_fn fn,
                    void *arg)
{
	struct rp *r = (struct rp *)b;
	char (*dead)[CHAT_EDGE_ID_MAX] = NULL;
	size_t n_dead = 0;
	int st = dead_edges(r, &dead, &n_dead);

	for (size_t i = 0; st == CHAT_OK && i < n_dead; i++) {
		redisReply *t = chat_redis_command(
		    r->redis,
		    "EVAL %s 2 %spres:edge:%s %spres:edges %s %s %lld",
		    sweep_lua, r->prefix, dead[i], r->prefix, r->prefix,
		    dead[i], (long long)now);
		size_t users = 0;
		if (!t) {
			st = CHAT_UNAVAILABLE;
			break;
		}
		for (size_t k = 0;
		     t->type == REDIS_REPLY_ARRAY && k + 2 < t->elements;
		     k += 3) {
			unsigned long long u = (unsigned long long)
			    chat_redis_int(t->element[k], 0);
			Chat__Status chosen = parse_status(t->element[k + 1]);
			pres_view v;
			users++;
			if (u == 0 || chosen == CHAT__STATUS__STATUS_OFFLINE)
				continue; /* was invisible: nothing to see */
			make_view(&v, 0, chosen, NULL, t->element[k + 2], now);
			v.last_seen_ms = now;
			fn(arg, (uint64_t)u, &v);
		}
		if (t->type == REDIS_REPLY_ERROR)
			chat_warn(SVC, "redis_error", "op=sweep reply=\"%s\"",
			          t->str);
		else
			chat_info(SVC, "edge_swept",
			          "edge=%s users_offline=%zu", dead[i], users);
		freeReplyObject(t);
	}
	free(dead);
	return st;
}

static void rp_counters(pres_backend *b, int64_t *users, int64_t *sessions)
{
	struct rp *r = (struct rp *)b;
	redisReply *edges =
	    chat_redis_command(r->redis, "SMEMBERS %spres:edges", r->prefix);
	*users = -1;
	*sessions = -1;
	if (edges && edges->type == REDIS_REPLY_ARRAY) {
		chat_redis_batch bt;
		redisReply **reps = NULL;
		size_t n = edges->elements < MAX_EDGES ? edges->elements
		                                       : MAX_EDGES;
		chat_redis_batch_init(&bt);
		for (size_t i = 0; i < n; i++)
			chat_redis_batch_add(&bt, "SCARD %spres:edge:%b",
			                     r->prefix, edges->element[i]->str,
			                     edges->element[i]->len);
		if (n == 0)
			*sessions = 0;
		else if (chat_redis_exec(r->redis, &bt, &reps, NULL, 0) == 0) {
			*sessions = 0;
			for (size_t i = 0; i < n; i++)
				*sessions += chat_redis_int(reps[i], 0);
			chat_redis_replies_free(reps, bt.n);
		}
		chat_redis_batch_fini(&bt);
	}
	if (edges)
		freeReplyObject(edges);
}

static void rp_free(pres_backend *b)
{
	struct rp *r = (struct rp *)b;
	chat_redis_free(r->redis);
	free(r);
}

static const pres_backend_ops redis_ops = {
    rp_up, rp_down, rp_set, rp_query, rp_sweep, rp_counters, rp_free,
};

pres_backend *pres_redis_new(const char *addr, const char *prefix,
                             int timeout_ms, char *err, size_t errlen)
{
	struct rp *r;
	if (!prefix)
		prefix = "chat:";
	if (strlen(prefix) >= PREFIX_MAX || strchr(prefix, ' ')) {
		chat_errf(err, errlen, "presence: bad key prefix '%s'", prefix);
		return NULL;
	}
	r = calloc(1, sizeof *r);
	if (!r) {
		chat_errf(err, errlen, "out of memory");
		return NULL;
	}
	r->redis = chat_redis_new(addr, timeout_ms, err, errlen);
	if (!r->redis) {
		free(r);
		return NULL;
	}
	r->base.ops = &redis_ops;
	chat_strlcpy(r->prefix, prefix, sizeof r->prefix);
	return &r->base;
}
