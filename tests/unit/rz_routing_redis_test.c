/* The Redis routing table against a real redis-server (tests/lib):
 * add/del/lookup and the exact key layout, the lookup cache, a dead
 * edge's entries hidden once its TTL runs out and swept afterwards,
 * cleanup on unregister and on a restart under the same id, Redis killed
 * (calls fail fast), hung (calls bounded) and restarted empty (the next
 * heartbeat says so and the edge re-adds its view). Also heartbeat/apply
 * of the memory table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat_redis.h"
#include "chat_routing.h"
#include "chat_util.h"
#include "redis_server.h"

#define PFX "t:"

static redis_server g_rs;
static chat_redis *g_raw; /* to look at the keys */

static int setup(void **state)
{
	char err[512];
	(void)state;
	if (redis_server_start(&g_rs, err, sizeof err) != 0) {
		fprintf(stderr, "redis_server_start: %s\n", err);
		return -1;
	}
	g_raw = chat_redis_new(g_rs.addr, 1000, err, sizeof err);
	return g_raw ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	chat_redis_free(g_raw);
	redis_server_cleanup(&g_rs);
	return 0;
}

static chat_routing *table(int ttl_s, int cache_ms)
{
	char err[256];
	chat_routing *r = chat_routing_redis_new(g_rs.addr, PFX, ttl_s, 300,
	                                         err, sizeof err);
	if (!r)
		fail_msg("chat_routing_redis_new: %s", err);
	chat_routing_redis_set_cache_ms(r, cache_ms);
	return r;
}

/* The ids lookup returns, sorted, joined by ','. */
static const char *look(chat_routing *r, int is_user, uint64_t key)
{
	static char out[512];
	char ids[16][CHAT_EDGE_ID_MAX], tmp[CHAT_EDGE_ID_MAX];
	size_t n = r->ops->lookup(r, is_user, key, ids, 16);
	for (size_t i = 0; i < n; i++)
		for (size_t k = i + 1; k < n; k++)
			if (strcmp(ids[k], ids[i]) < 0) {
				memcpy(tmp, ids[i], sizeof tmp);
				memcpy(ids[i], ids[k], sizeof tmp);
				memcpy(ids[k], tmp, sizeof tmp);
			}
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, ",");
		strcat(out, ids[i]);
	}
	return out;
}

/* Members of a Redis set, sorted, joined by ','. */
static const char *smembers(const char *key)
{
	static char out[1024];
	redisReply *rep = chat_redis_command(g_raw, "SORT %s ALPHA", key);
	out[0] = '\0';
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	for (size_t i = 0; i < rep->elements; i++) {
		if (i)
			strcat(out, ",");
		strncat(out, rep->element[i]->str, 100);
	}
	freeReplyObject(rep);
	return out;
}

static long long rint_cmd(const char *fmt, const char *key)
{
	redisReply *rep = chat_redis_command(g_raw, fmt, key);
	long long v;
	assert_non_null(rep);
	v = chat_redis_int(rep, -99);
	freeReplyObject(rep);
	return v;
}

static void test_add_del_lookup_and_keys(void **state)
{
	chat_routing *r = table(10, 1000);
	char url[CHAT_URL_MAX];
	long long ttl;
	(void)state;
	assert_int_equal(r->ops->edge_register(r, "edge-a", "tcp://a:1"), 0);
	assert_int_equal(r->ops->edge_register(r, "edge-b", "tcp://b:2"), 0);
	assert_int_equal(r->ops->channel_add(r, 10, "edge-a"), 0);
	assert_int_equal(r->ops->channel_add(r, 10, "edge-b"), 0);
	assert_int_equal(r->ops->channel_add(r, 11, "edge-a"), 0);
	assert_int_equal(r->ops->user_add(r, 7, "edge-a"), 0);
	assert_string_equal(look(r, 0, 10), "edge-a,edge-b");
	assert_string_equal(look(r, 0, 11), "edge-a");
	assert_string_equal(look(r, 1, 7), "edge-a");
	assert_string_equal(look(r, 1, 10), ""); /* users and channels apart */
	assert_string_equal(look(r, 0, 12), "");
	assert_int_equal(r->ops->edge_url(r, "edge-b", url, sizeof url), 0);
	assert_string_equal(url, "tcp://b:2");
	assert_int_equal(r->ops->edge_url(r, "edge-c", url, sizeof url), -1);

	/* The key layout, exactly. */
	assert_string_equal(smembers(PFX "route:ch:10"), "edge-a,edge-b");
	assert_string_equal(smembers(PFX "route:user:7"), "edge-a");
	assert_string_equal(smembers(PFX "edge:edge-a:ch"), "10,11");
	assert_string_equal(smembers(PFX "edge:edge-a:user"), "7");
	ttl = rint_cmd("TTL %s", PFX "edge:edge-a");
	assert_true(ttl > 0 && ttl <= 10);
	ttl = rint_cmd("TTL %s", PFX "edge:edge-a:ch");
	assert_true(ttl > 10 && ttl <= 60);
	{
		redisReply *rep = chat_redis_command(g_raw, "GET %s",
		                                     PFX "edge:edge-a");
		assert_non_null(rep);
		assert_string_equal(rep->str, "tcp://a:1");
		freeReplyObject(rep);
	}

	/* Deletes (this table's cache follows its own writes). */
	assert_int_equal(r->ops->channel_del(r, 10, "edge-a"), 0);
	assert_string_equal(look(r, 0, 10), "edge-b");
	assert_int_equal(r->ops->user_del(r, 7, "edge-a"), 0);
	assert_string_equal(look(r, 1, 7), "");
	assert_string_equal(smembers(PFX "edge:edge-a:ch"), "11");
	assert_int_equal(rint_cmd("EXISTS %s", PFX "route:user:7"), 0);

	/* One pipelined batch, applied in order. */
	{
		chat_route_op ops[201];
		for (int i = 0; i < 200; i++) {
			ops[i].add = 1;
			ops[i].is_user = (uint8_t)(i & 1);
			ops[i].key = 1000 + (uint64_t)i;
		}
		ops[200].add = 0; /* removes what ops[0] added */
		ops[200].is_user = 0;
		ops[200].key = 1000;
		assert_int_equal(chat_routing_apply(r, "edge-b", ops, 201), 0);
		assert_string_equal(look(r, 0, 1000), "");
		assert_string_equal(look(r, 1, 1001), "edge-b");
		assert_string_equal(look(r, 0, 1198), "edge-b");
		assert_int_equal(rint_cmd("SCARD %s", PFX "edge:edge-b:user"),
		                 100);
		assert_int_equal(rint_cmd("SCARD %s", PFX "edge:edge-b:ch"),
		                 100); /* 99 of the batch, and 10 */
	}
	/* lookup copies at most max. */
	{
		char ids[1][CHAT_EDGE_ID_MAX];
		assert_int_equal(r->ops->channel_add(r, 10, "edge-a"), 0);
		assert_int_equal(r->ops->lookup(r, 0, 10, ids, 1), 1);
	}
	/* Bad ids are refused before Redis sees them. */
	assert_int_equal(r->ops->edge_register(r, "bad id", "tcp://x:1"), -1);
	assert_int_equal(r->ops->edge_register(r, "a:ch", "tcp://x:1"), -1);
	assert_int_equal(r->ops->channel_add(r, 1, ""), -1);
	assert_int_equal(chat_routing_heartbeat(r, "never-registered"), -1);
	assert_int_equal(r->ops->edge_unregister(r, "edge-a"), 0);
	assert_int_equal(r->ops->edge_unregister(r, "edge-b"), 0);
	chat_routing_free(r);
}

/* Another process's table sees changes within its cache lifetime. */
static void test_cache_is_short(void **state)
{
	chat_routing *edge = table(10, 1000), *disp = table(10, 1000);
	int64_t t0;
	(void)state;
	assert_int_equal(edge->ops->edge_register(edge, "edge-c", "tcp://c:3"),
	                 0);
	assert_string_equal(look(disp, 0, 50), ""); /* cached empty */
	assert_int_equal(edge->ops->channel_add(edge, 50, "edge-c"), 0);
	t0 = chat_mono_ms();
	while (strcmp(look(disp, 0, 50), "edge-c") != 0) {
		assert_true(chat_mono_ms() - t0 < 1500);
		usleep(20 * 1000);
	}
	/* Without a cache: at once. */
	chat_routing_redis_set_cache_ms(disp, 0);
	assert_int_equal(edge->ops->channel_del(edge, 50, "edge-c"), 0);
	assert_string_equal(look(disp, 0, 50), "");
	edge->ops->edge_unregister(edge, "edge-c");
	chat_routing_free(edge);
	chat_routing_free(disp);
}

/* An edge that stops heartbeating vanishes from lookups when its TTL runs
 * out, and its entries are removed lazily; a heartbeating edge stays. */
static void test_ttl_hides_dead_edge(void **state)
{
	chat_routing *dead = table(1, 0), *live = table(1, 0),
	             *disp = table(1, 0);
	int64_t t0;
	(void)state;
	assert_int_equal(dead->ops->edge_register(dead, "edge-x", "tcp://x:9"),
	                 0);
	assert_int_equal(live->ops->edge_register(live, "edge-y", "tcp://y:9"),
	                 0);
	assert_int_equal(dead->ops->channel_add(dead, 20, "edge-x"), 0);
	assert_int_equal(live->ops->channel_add(live, 20, "edge-y"), 0);
	assert_string_equal(look(disp, 0, 20), "edge-x,edge-y");
	t0 = chat_mono_ms();
	while (strcmp(look(disp, 0, 20), "edge-y") != 0) {
		assert_int_equal(chat_routing_heartbeat(live, "edge-y"), 0);
		assert_true(chat_mono_ms() - t0 < 3000);
		usleep(100 * 1000);
	}
	assert_true(chat_mono_ms() - t0 >= 500); /* not before its TTL */
	assert_string_equal(smembers(PFX "route:ch:20"), "edge-y"); /* lazy */
	{
		char url[CHAT_URL_MAX];
		assert_int_equal(disp->ops->edge_url(disp, "edge-x", url,
		                                     sizeof url),
		                 -1);
	}
	/* It comes back: heartbeat says it was lost; it re-adds its view. */
	assert_int_equal(chat_routing_heartbeat(dead, "edge-x"), 1);
	assert_string_equal(look(disp, 0, 20), "edge-y");
	assert_int_equal(dead->ops->channel_add(dead, 20, "edge-x"), 0);
	assert_string_equal(look(disp, 0, 20), "edge-x,edge-y");
	assert_int_equal(chat_routing_heartbeat(dead, "edge-x"), 0);
	dead->ops->edge_unregister(dead, "edge-x");
	live->ops->edge_unregister(live, "edge-y");
	chat_routing_free(dead);
	chat_routing_free(live);
	chat_routing_free(disp);
}

/* An edge killed without unregistering leaves entries in sets nobody may
 * look up again; the sweep drops every entry of an edge whose lease ran
 * out, and only those. */
static void test_sweep_dead_edge(void **state)
{
	chat_routing *dead = table(1, 0), *live = table(1, 0),
	             *disp = table(1, 0), *mem = chat_routing_mem_new();
	int64_t t0;
	(void)state;
	assert_int_equal(dead->ops->edge_register(dead, "edge-s", "tcp://s:9"),
	                 0);
	assert_int_equal(live->ops->edge_register(live, "edge-t", "tcp://t:9"),
	                 0);
	assert_string_equal(smembers(PFX "route:edges"), "edge-s,edge-t");
	assert_int_equal(dead->ops->channel_add(dead, 30, "edge-s"), 0);
	assert_int_equal(dead->ops->channel_add(dead, 31, "edge-s"), 0);
	assert_int_equal(dead->ops->user_add(dead, 7, "edge-s"), 0);
	assert_int_equal(live->ops->channel_add(live, 30, "edge-t"), 0);
	/* both alive: nothing to sweep */
	assert_int_equal(chat_routing_redis_sweep(disp), 0);
	assert_string_equal(smembers(PFX "route:ch:30"), "edge-s,edge-t");
	/* edge-s stops heartbeating (killed); its lease runs out */
	t0 = chat_mono_ms();
	while (rint_cmd("EXISTS %s", PFX "edge:edge-s") != 0) {
		assert_int_equal(chat_routing_heartbeat(live, "edge-t"), 0);
		assert_true(chat_mono_ms() - t0 < 3000);
		usleep(100 * 1000);
	}
	assert_int_equal(chat_routing_redis_sweep(disp), 1);
	assert_string_equal(smembers(PFX "route:ch:30"), "edge-t");
	assert_string_equal(smembers(PFX "route:ch:31"), "");
	assert_string_equal(smembers(PFX "route:user:7"), "");
	assert_int_equal(rint_cmd("EXISTS %s", PFX "edge:edge-s:ch"), 0);
	assert_int_equal(rint_cmd("EXISTS %s", PFX "edge:edge-s:user"), 0);
	assert_string_equal(smembers(PFX "route:edges"), "edge-t");
	assert_int_equal(chat_routing_redis_sweep(disp), 0);
	/* it comes back: registered and listed again */
	assert_int_equal(chat_routing_heartbeat(dead, "edge-s"), 1);
	assert_string_equal(smembers(PFX "route:edges"), "edge-s,edge-t");
	/* unregister takes it off the list; other tables do not sweep */
	dead->ops->edge_unregister(dead, "edge-s");
	live->ops->edge_unregister(live, "edge-t");
	assert_string_equal(smembers(PFX "route:edges"), "");
	assert_int_equal(chat_routing_redis_sweep(mem), 0);
	assert_int_equal(chat_routing_redis_sweep(NULL), 0);
	chat_routing_free(dead);
	chat_routing_free(live);
	chat_routing_free(disp);
	chat_routing_free(mem);
}

static void test_unregister_and_restart_clean_up(void **state)
{
	chat_routing *r = table(10, 0);
	char url[CHAT_URL_MAX];
	(void)state;
	assert_int_equal(r->ops->edge_register(r, "edge-z", "tcp://z:1"), 0);
	assert_int_equal(r->ops->edge_register(r, "edge-k", "tcp://k:1"), 0);
	for (uint64_t c = 30; c < 40; c++) {
		assert_int_equal(r->ops->channel_add(r, c, "edge-z"), 0);
		assert_int_equal(r->ops->channel_add(r, c, "edge-k"), 0);
		assert_int_equal(r->ops->user_add(r, c + 100, "edge-z"), 0);
	}
	assert_int_equal(r->ops->edge_unregister(r, "edge-z"), 0);
	for (uint64_t c = 30; c < 40; c++) {
		assert_string_equal(look(r, 0, c), "edge-k");
		assert_string_equal(look(r, 1, c + 100), "");
	}
	assert_int_equal(rint_cmd("EXISTS %s", PFX "edge:edge-z"), 0);
	assert_int_equal(rint_cmd("EXISTS %s", PFX "edge:edge-z:ch"), 0);
	assert_int_equal(rint_cmd("EXISTS %s", PFX "edge:edge-z:user"), 0);
	assert_int_equal(rint_cmd("EXISTS %s", PFX "route:user:130"), 0);
	assert_string_equal(smembers(PFX "route:ch:35"), "edge-k");
	assert_int_equal(r->ops->edge_url(r, "edge-z", url, sizeof url), -1);

	/* edge-k restarts under the same id (another process): clean. */
	{
		chat_routing *again = table(10, 0);
		assert_int_equal(again->ops->edge_register(again, "edge-k",
		                                           "tcp://k:2"),
		                 0);
		assert_string_equal(look(again, 0, 33), "");
		assert_int_equal(rint_cmd("EXISTS %s", PFX "edge:edge-k:ch"),
		                 0);
		assert_int_equal(again->ops->edge_url(again, "edge-k", url,
		                                      sizeof url),
		                 0);
		assert_string_equal(url, "tcp://k:2");
		again->ops->edge_unregister(again, "edge-k");
		chat_routing_free(again);
	}
	chat_routing_free(r);
}

/* The edge's own view, the source of truth, re-published on demand. */
struct view {
	chat_routing *r;
	const char *id;
	uint64_t ch[8];
	size_t n;
};

static int republish(struct view *v)
{
	chat_route_op ops[8];
	for (size_t i = 0; i < v->n; i++) {
		ops[i].add = 1;
		ops[i].is_user = 0;
		ops[i].key = v->ch[i];
	}
	return chat_routing_apply(v->r, v->id, ops, v->n);
}

static int64_t took_ms(int64_t t0)
{
	return chat_mono_ms() - t0;
}

/* Redis killed: every call fails within a second (at once, in fact);
 * cached lookups still answer. Restarted empty: the next heartbeat says
 * the edge was lost, the edge re-adds its view, all is back. */
static void test_redis_restart_heals(void **state)
{
	chat_routing *disp = table(10, 1000);
	struct view e1 = {table(10, 0), "edge-1", {60, 61, 62}, 3};
	struct view e2 = {table(10, 0), "edge-2", {61, 63}, 2};
	char err[512], url[CHAT_URL_MAX];
	int64_t t0;
	(void)state;
	assert_int_equal(e1.r->ops->edge_register(e1.r, e1.id, "tcp://1:1"),
	                 0);
	assert_int_equal(e2.r->ops->edge_register(e2.r, e2.id, "tcp://2:2"),
	                 0);
	assert_int_equal(republish(&e1), 0);
	assert_int_equal(republish(&e2), 0);
	assert_string_equal(look(disp, 0, 61), "edge-1,edge-2"); /* cached */

	assert_int_equal(redis_server_kill(&g_rs), 0);
	for (int i = 0; i < 3; i++) {
		t0 = chat_mono_ms();
		assert_int_equal(e1.r->ops->channel_add(e1.r, 64, e1.id), -1);
		assert_int_equal(chat_routing_heartbeat(e1.r, e1.id), -1);
		assert_int_equal(republish(&e2), -1);
		assert_string_equal(look(e1.r, 0, 60), "");
		assert_int_equal(e1.r->ops->edge_url(e1.r, "edge-2", url,
		                                     sizeof url),
		                 -1);
		assert_int_equal(e1.r->ops->edge_register(e1.r, e1.id,
		                                          "tcp://1:1"),
		                 -1);
		assert_true(took_ms(t0) < 1000);
	}
	/* The dispatcher's cached answer outlives the outage a little. */
	usleep(1100 * 1000);
	assert_string_equal(look(disp, 0, 61), "edge-1,edge-2");
	assert_string_equal(look(disp, 0, 60), "");

	assert_int_equal(redis_server_restart(&g_rs, err, sizeof err), 0);
	/* The first call after the restart works (fresh connection). */
	assert_int_equal(chat_routing_heartbeat(e1.r, e1.id), 1);
	assert_int_equal(republish(&e1), 0);
	assert_int_equal(chat_routing_heartbeat(e2.r, e2.id), 1);
	assert_int_equal(republish(&e2), 0);
	assert_int_equal(chat_routing_heartbeat(e1.r, e1.id), 0);
	chat_routing_redis_set_cache_ms(disp, 0);
	assert_string_equal(look(disp, 0, 61), "edge-1,edge-2");
	assert_string_equal(look(disp, 0, 60), "edge-1");
	assert_string_equal(look(disp, 0, 63), "edge-2");
	assert_string_equal(smembers(PFX "edge:edge-1:ch"), "60,61,62");
	assert_int_equal(disp->ops->edge_url(disp, "edge-2", url, sizeof url),
	                 0);
	assert_string_equal(url, "tcp://2:2");

	/* A hung Redis (stopped, connections open): calls are bounded. */
	assert_int_equal(redis_server_pause(&g_rs), 0);
	t0 = chat_mono_ms();
	assert_int_equal(chat_routing_heartbeat(e1.r, e1.id), -1);
	assert_true(took_ms(t0) < 1000);
	t0 = chat_mono_ms();
	assert_string_equal(look(e2.r, 0, 60), "");
	assert_true(took_ms(t0) < 1000);
	assert_int_equal(redis_server_resume(&g_rs), 0);
	t0 = chat_mono_ms();
	while (chat_routing_heartbeat(e1.r, e1.id) != 0) {
		assert_true(took_ms(t0) < 3000);
		usleep(50 * 1000);
	}
	e1.r->ops->edge_unregister(e1.r, e1.id);
	e2.r->ops->edge_unregister(e2.r, e2.id);
	chat_routing_free(e1.r);
	chat_routing_free(e2.r);
	chat_routing_free(disp);
}

struct par {
	chat_routing *r;
	int idx, errors;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	char ids[4][CHAT_EDGE_ID_MAX];
	for (int i = 0; i < 300; i++) {
		uint64_t ch = 70 + (uint64_t)(i % 5);
		if (p->r->ops->channel_add(p->r, ch, "edge-p") != 0)
			p->errors++;
		if (p->r->ops->lookup(p->r, 0, ch, ids, 4) != 1 ||
		    strcmp(ids[0], "edge-p") != 0)
			p->errors++;
	}
	return NULL;
}

/* One table shared by threads. */
static void test_threads(void **state)
{
	chat_routing *r = table(10, 1000);
	pthread_t t[4];
	struct par p[4];
	(void)state;
	assert_int_equal(r->ops->edge_register(r, "edge-p", "tcp://p:1"), 0);
	for (int i = 0; i < 4; i++) {
		p[i].r = r;
		p[i].idx = i;
		p[i].errors = 0;
		assert_int_equal(pthread_create(&t[i], NULL, par_main, &p[i]),
		                 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(p[i].errors, 0);
	}
	r->ops->edge_unregister(r, "edge-p");
	chat_routing_free(r);
}

static void test_memory_table(void **state)
{
	chat_routing *m = chat_routing_mem_new();
	chat_route_op ops[3] = {{1, 0, 5}, {1, 1, 6}, {0, 0, 5}};
	(void)state;
	assert_non_null(m);
	assert_int_equal(m->ops->edge_register(m, "e", "inproc://e"), 0);
	assert_int_equal(chat_routing_heartbeat(m, "e"), 0);
	assert_int_equal(chat_routing_apply(m, "e", ops, 3), 0);
	assert_string_equal(look(m, 0, 5), "");
	assert_string_equal(look(m, 1, 6), "e");
	assert_int_equal(chat_routing_apply(m, "unknown", ops, 1), -1);
	chat_routing_redis_set_cache_ms(m, 5); /* ignored */
	chat_routing_free(m);
}

static void test_bad_address(void **state)
{
	char err[256];
	(void)state;
	assert_null(chat_routing_redis_new("nohostport", NULL, 10, 100, err,
	                                   sizeof err));
	assert_non_null(strstr(err, "host:port"));
	assert_null(chat_routing_redis_new("127.0.0.1:99999", NULL, 10, 100,
	                                   err, sizeof err));
	assert_null(chat_routing_redis_new("127.0.0.1:1", "bad prefix", 10,
	                                   100, err, sizeof err));
	/* Nothing listens: calls fail, quickly. */
	{
		chat_routing *r = chat_routing_redis_new("127.0.0.1:1", NULL,
		                                         10, 100, err,
		                                         sizeof err);
		int64_t t0 = chat_mono_ms();
		assert_non_null(r);
		assert_int_equal(r->ops->edge_register(r, "e", "tcp://e:1"),
		                 -1);
		assert_string_equal(look(r, 0, 1), "");
		assert_true(took_ms(t0) < 500);
		chat_routing_free(r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_del_lookup_and_keys),
	    cmocka_unit_test(test_cache_is_short),
	    cmocka_unit_test(test_ttl_hides_dead_edge),
	    cmocka_unit_test(test_sweep_dead_edge),
	    cmocka_unit_test(test_unregister_and_restart_clean_up),
	    cmocka_unit_test(test_redis_restart_heals),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_memory_table),
	    cmocka_unit_test(test_bad_address),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
