/* The presence service on its Redis backend, against a real redis-server
 * (tests/lib/redis_server), between a fake chat.Store and a fake
 * chat.Dispatcher: sessions across two edges, the key layout, chosen
 * status kept in Redis (a second presence instance and a restarted one
 * see it), an edge whose liveness key expires takes its users offline
 * (published), Redis down (calls fail fast) and restarted empty (healed
 * once the edges re-announce their sessions after their heartbeat). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_redis.h"
#include "chat_routing.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "dispatcher.pb-c.h"
#include "presence.h"
#include "presence.pb-c.h"
#include "redis_server.h"
#include "rpc.pb-c.h"
#include "store.pb-c.h"

#define PRES_URL "inproc://pres-redis-test"
#define PRES2_URL "inproc://pres-redis-test-2"
#define STORE_URL "inproc://pres-redis-test-store"
#define DISP_URL "inproc://pres-redis-test-dispatcher"

#define ONLINE CHAT__STATUS__STATUS_ONLINE
#define AWAY CHAT__STATUS__STATUS_AWAY
#define OFFLINE CHAT__STATUS__STATUS_OFFLINE

/* ---- fakes ------------------------------------------------------------- */

struct published {
	uint64_t user_id;
	int status;
	int64_t last_seen;
	size_t n_channels;
	char name[64];
};

static struct {
	pthread_mutex_t mu;
	struct published ev[256];
	int n;
} pub = {PTHREAD_MUTEX_INITIALIZER, {{0, 0, 0, 0, {0}}}, 0};

static int user_channels(void *arg, chat_rpc_call *call)
{
	Chat__ChannelIds *out = (Chat__ChannelIds *)call->out;
	(void)arg;
	out->ids = chat_arena_alloc(call->arena, sizeof *out->ids);
	out->ids[out->n_ids++] = 10;
	return CHAT_OK;
}

static int publish(void *arg, chat_rpc_call *call)
{
	const Chat__EventBatch *in = (const Chat__EventBatch *)call->in;
	(void)arg;
	pthread_mutex_lock(&pub.mu);
	for (size_t i = 0; i < in->n_events && pub.n < 256; i++) {
		const Chat__Event *e = in->events[i];
		struct published *p = &pub.ev[pub.n++];
		memset(p, 0, sizeof *p);
		p->user_id = e->n_user_ids ? e->user_ids[0] : 0;
		p->n_channels = e->n_channel_ids;
		p->status = e->kind_case == CHAT__EVENT__KIND_PRESENCE
		                ? (int)e->presence->status
		                : -2;
		if (e->kind_case == CHAT__EVENT__KIND_PRESENCE) {
			p->last_seen = e->presence->last_seen_ms;
			chat_strlcpy(p->name, e->presence->user_name,
			             sizeof p->name);
		}
	}
	pthread_mutex_unlock(&pub.mu);
	return CHAT_OK;
}

static chat_rpc_server *start_server(const char *svc, const char *url,
                                     const ProtobufCServiceDescriptor *d,
                                     const chat_rpc_fn *fns, size_t n_fns)
{
	char err[256];
	chat_rpc_server *s = chat_rpc_server_new(svc, "fake", 2);
	assert_non_null(s);
	assert_int_equal(chat_rpc_server_add(s, d, fns, n_fns, NULL), 0);
	assert_int_equal(chat_rpc_server_listen(s, url, NULL, err, sizeof err),
	                 0);
	assert_int_equal(chat_rpc_server_start(s), 0);
	return s;
}

/* ---- fixture ----------------------------------------------------------- */

static redis_server g_rs;
static chat_redis *g_raw;
static chat_rpc_server *g_store, *g_disp;
static pres *g_pres;
static chat_rpc_client *g_cli;
static chat_arena *g_arena;
/* Two live edges (heartbeat each) and their routing tables. */
static chat_routing *g_ra, *g_rb;

static pres *start_pres(const char *url)
{
	pres_config cfg;
	pres *p = NULL;
	char err[256];
	memset(&cfg, 0, sizeof cfg);
	cfg.rpc_url = url;
	cfg.store_url = STORE_URL;
	cfg.dispatcher_url = DISP_URL;
	cfg.instance = "pres-redis-test";
	cfg.rpc_timeout_ms = 1000;
	cfg.redis_addr = g_rs.addr;
	cfg.redis_timeout_ms = 300;
	cfg.sweep_ms = 200;
	if (pres_start(&cfg, &p, err, sizeof err) != 0)
		fail_msg("pres_start: %s", err);
	return p;
}

static chat_routing *edge_table(const char *id, int ttl_s)
{
	char err[256], url[64];
	chat_routing *r = chat_routing_redis_new(g_rs.addr, NULL, ttl_s, 300,
	                                         err, sizeof err);
	assert_non_null(r);
	snprintf(url, sizeof url, "tcp://127.0.0.1:1/%s", id);
	assert_int_equal(r->ops->edge_register(r, id, url), 0);
	return r;
}

/* The edges' routing heartbeat, as an edge runs it: every 300 ms;
 * "lost" remembers a heartbeat that found the edge gone (the edge must
 * then re-announce its sessions). */
static struct {
	pthread_t t;
	pthread_mutex_t mu;
	int stop, lost_a, lost_b;
} g_hb = {0, PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};

static void *hb_main(void *arg)
{
	(void)arg;
	for (;;) {
		int a, b, stop;
		pthread_mutex_lock(&g_hb.mu);
		stop = g_hb.stop;
		pthread_mutex_unlock(&g_hb.mu);
		if (stop)
			break;
		a = chat_routing_heartbeat(g_ra, "edge-a");
		b = chat_routing_heartbeat(g_rb, "edge-b");
		pthread_mutex_lock(&g_hb.mu);
		g_hb.lost_a |= a == 1;
		g_hb.lost_b |= b == 1;
		pthread_mutex_unlock(&g_hb.mu);
		usleep(300 * 1000);
	}
	return NULL;
}

static void beat(void)
{
	/* Nothing to do: the heartbeat thread runs. Kept as a marker of
	 * where the tests rely on it. */
}

static int setup(void **state)
{
	static chat_rpc_fn store_fns[13], disp_fns[1] = {publish};
	char err[512];
	(void)state;
	if (redis_server_start(&g_rs, err, sizeof err) != 0) {
		fprintf(stderr, "redis_server_start: %s\n", err);
		return -1;
	}
	g_raw = chat_redis_new(g_rs.addr, 1000, err, sizeof err);
	store_fns[12] = user_channels;
	if (strcmp(chat__store__descriptor.methods[12].name, "UserChannels"))
		return -1;
	g_store = start_server("store", STORE_URL, &chat__store__descriptor,
	                       CHAT_RPC_TABLE(store_fns));
	g_disp = start_server("dispatcher", DISP_URL,
	                      &chat__dispatcher__descriptor,
	                      CHAT_RPC_TABLE(disp_fns));
	g_ra = edge_table("edge-a", 2);
	g_rb = edge_table("edge-b", 2);
	if (pthread_create(&g_hb.t, NULL, hb_main, NULL) != 0)
		return -1;
	g_pres = start_pres(PRES_URL);
	g_cli = chat_rpc_client_new(PRES_URL, err, sizeof err);
	g_arena = chat_arena_new();
	return g_raw && g_cli && g_arena ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	pthread_mutex_lock(&g_hb.mu);
	g_hb.stop = 1;
	pthread_mutex_unlock(&g_hb.mu);
	pthread_join(g_hb.t, NULL);
	chat_rpc_client_free(g_cli);
	pres_stop(g_pres);
	chat_rpc_server_free(g_store);
	chat_rpc_server_free(g_disp);
	chat_routing_free(g_ra);
	chat_routing_free(g_rb);
	chat_arena_free(g_arena);
	chat_redis_free(g_raw);
	redis_server_cleanup(&g_rs);
	return 0;
}

/* ---- calls ------------------------------------------------------------- */

static int session_st(chat_rpc_client *c, const char *method, uint64_t user,
                      const char *name, uint64_t sess, const char *edge,
                      const Chat__PresenceUpdate **res)
{
	Chat__SessionReq in = CHAT__SESSION_REQ__INIT;
	ProtobufCMessage *out = NULL;
	int st;
	in.user_id = user;
	in.user_name = (char *)name;
	in.session_id = sess;
	in.edge_id = (char *)edge;
	st = chat_rpc_invoke(c, &chat__presence__descriptor, method, &in.base,
	                     g_arena, &out, 2000, NULL, 0);
	*res = st == CHAT_OK ? (const Chat__PresenceUpdate *)out : NULL;
	return st;
}

static const Chat__PresenceUpdate *up(uint64_t user, const char *name,
                                      uint64_t sess, const char *edge)
{
	const Chat__PresenceUpdate *u;
	assert_int_equal(session_st(g_cli, "SessionUp", user, name, sess, edge,
	                            &u),
	                 CHAT_OK);
	return u;
}

static const Chat__PresenceUpdate *down(uint64_t user, uint64_t sess)
{
	const Chat__PresenceUpdate *u;
	assert_int_equal(session_st(g_cli, "SessionDown", user, "", sess, "",
	                            &u),
	                 CHAT_OK);
	return u;
}

static const Chat__PresenceUpdate *set_status(chat_rpc_client *c,
                                              uint64_t user, int status)
{
	Chat__PresenceSetReq in = CHAT__PRESENCE_SET_REQ__INIT;
	ProtobufCMessage *out = NULL;
	in.user_id = user;
	in.status = (Chat__Status)status;
	assert_int_equal(chat_rpc_invoke(c, &chat__presence__descriptor,
	                                 "SetStatus", &in.base, g_arena, &out,
	                                 2000, NULL, 0),
	                 CHAT_OK);
	return (const Chat__PresenceUpdate *)out;
}

static const Chat__PresenceUpdate *query1(chat_rpc_client *c, uint64_t user)
{
	Chat__PresenceQuery in = CHAT__PRESENCE_QUERY__INIT;
	ProtobufCMessage *out = NULL;
	in.n_user_ids = 1;
	in.user_ids = &user;
	assert_int_equal(chat_rpc_invoke(c, &chat__presence__descriptor,
	                                 "Query", &in.base, g_arena, &out,
	                                 2000, NULL, 0),
	                 CHAT_OK);
	assert_int_equal(((Chat__PresenceList *)out)->n_users, 1);
	return ((Chat__PresenceList *)out)->users[0];
}

/* Every publish queued so far has arrived (a marker user's change comes
 * after them); returns how many came before it, forgets them all. */
static int sync_publishes(struct published *copy, int max)
{
	static uint64_t marker = 5000;
	int64_t deadline = chat_mono_ms() + 5000;
	uint64_t m = ++marker;
	int n = -1;
	up(m, "marker", 1, "edge-a");
	while (n < 0) {
		assert_true(chat_mono_ms() < deadline);
		pthread_mutex_lock(&pub.mu);
		for (int i = 0; i < pub.n; i++)
			if (pub.ev[i].user_id == m) {
				n = i;
				memcpy(copy, pub.ev,
				       (size_t)(n < max ? n : max) *
				           sizeof *copy);
				pub.n = 0;
				break;
			}
		pthread_mutex_unlock(&pub.mu);
		if (n < 0)
			usleep(2000);
	}
	return n; /* the marker stays online */
}

static const char *rstr(const char *fmt, const char *key)
{
	static char out[512];
	redisReply *rep = chat_redis_command(g_raw, fmt, key);
	out[0] = '\0';
	assert_non_null(rep);
	if (rep->type == REDIS_REPLY_STRING)
		chat_strlcpy(out, rep->str, sizeof out);
	else if (rep->type == REDIS_REPLY_INTEGER)
		snprintf(out, sizeof out, "%lld", rep->integer);
	else if (rep->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < rep->elements; i++) {
			if (i)
				strcat(out, ",");
			strncat(out, rep->element[i]->str, 60);
		}
	freeReplyObject(rep);
	return out;
}

/* ---- tests ------------------------------------------------------------- */

static void test_sessions_on_two_edges(void **state)
{
	const Chat__PresenceUpdate *u;
	struct published ev[16];
	int64_t t0 = chat_now_ms(), seen;
	(void)state;
	beat();
	sync_publishes(ev, 16);
	u = up(1, "alice", 101, "edge-a");
	assert_int_equal(u->status, ONLINE);
	assert_string_equal(u->user_name, "alice");
	assert_true(u->last_seen_ms >= t0);
	assert_int_equal(up(1, "alice", 102, "edge-b")->status, ONLINE);
	assert_int_equal(up(1, "alice", 102, "edge-b")->status, ONLINE);

	/* The keys. */
	assert_string_equal(rstr("HGET %s 101", "chat:pres:sess:1"), "edge-a");
	assert_string_equal(rstr("HGET %s 102", "chat:pres:sess:1"), "edge-b");
	assert_string_equal(rstr("SISMEMBER %s 1:101", "chat:pres:edge:edge-a"),
	                     "1");
	assert_string_equal(rstr("SISMEMBER %s 1:102", "chat:pres:edge:edge-b"),
	                     "1");
	assert_string_equal(rstr("GET %s", "chat:pres:name:1"), "alice");
	assert_string_equal(rstr("SISMEMBER %s edge-b", "chat:pres:edges"),
	                     "1");

	assert_int_equal(down(1, 101)->status, ONLINE);
	assert_int_equal(down(1, 101)->status, ONLINE); /* idempotent */
	u = down(1, 102);
	assert_int_equal(u->status, OFFLINE);
	seen = u->last_seen_ms;
	assert_true(seen >= t0 && seen <= chat_now_ms());
	assert_string_equal(u->user_name, "alice");
	assert_string_equal(rstr("EXISTS %s", "chat:pres:sess:1"), "0");
	assert_string_equal(rstr("SISMEMBER %s 1:102", "chat:pres:edge:edge-b"),
	                     "0");
	u = down(77, 1); /* unknown user */
	assert_int_equal(u->status, OFFLINE);
	assert_int_equal(u->last_seen_ms, 0);
	/* A session moving to another edge (a resumed session id). */
	up(2, "bob", 201, "edge-a");
	up(2, "bob", 201, "edge-b");
	assert_string_equal(rstr("SISMEMBER %s 2:201", "chat:pres:edge:edge-a"),
	                     "0");
	assert_string_equal(rstr("HGET %s 201", "chat:pres:sess:2"), "edge-b");
	assert_int_equal(down(2, 201)->status, OFFLINE);

	assert_int_equal(sync_publishes(ev, 16), 4);
	assert_int_equal(ev[0].user_id, 1);
	assert_int_equal(ev[0].status, ONLINE);
	assert_int_equal(ev[0].n_channels, 1);
	assert_string_equal(ev[0].name, "alice");
	assert_int_equal(ev[1].status, OFFLINE);
	assert_int_equal(ev[1].last_seen, seen);
	assert_int_equal(ev[2].user_id, 2);
	assert_int_equal(ev[3].status, OFFLINE);
	{ /* A session needs a valid edge in Redis mode. */
		const Chat__PresenceUpdate *r;
		assert_int_equal(session_st(g_cli, "SessionUp", 3, "x", 1, "",
		                            &r),
		                 CHAT_INVALID_ARGUMENT);
	}
}

/* The chosen status lives in Redis: another presence instance and a
 * restarted one see it. */
static void test_status_sticky_in_redis(void **state)
{
	chat_rpc_client *c2;
	pres *p2;
	char err[256];
	(void)state;
	beat();
	assert_int_equal(up(3, "carol", 301, "edge-a")->status, ONLINE);
	assert_int_equal(set_status(g_cli, 3, AWAY)->status, AWAY);
	assert_string_equal(rstr("GET %s", "chat:pres:status:3"), "2");
	assert_int_equal(down(3, 301)->status, OFFLINE);

	p2 = start_pres(PRES2_URL);
	c2 = chat_rpc_client_new(PRES2_URL, err, sizeof err);
	assert_non_null(c2);
	assert_int_equal(query1(c2, 3)->status, OFFLINE);
	assert_string_equal(query1(c2, 3)->user_name, "carol");
	assert_int_equal(up(3, "carol", 302, "edge-b")->status, AWAY);
	assert_int_equal(query1(c2, 3)->status, AWAY); /* the other instance */
	assert_int_equal(set_status(c2, 3, ONLINE)->status, ONLINE);
	assert_int_equal(query1(g_cli, 3)->status, ONLINE);
	chat_rpc_client_free(c2);
	pres_stop(p2);

	/* This instance restarts: state unchanged. */
	chat_rpc_client_free(g_cli);
	pres_stop(g_pres);
	g_pres = start_pres(PRES_URL);
	g_cli = chat_rpc_client_new(PRES_URL, err, sizeof err);
	assert_non_null(g_cli);
	assert_int_equal(query1(g_cli, 3)->status, ONLINE);
	assert_int_equal(down(3, 302)->status, OFFLINE);
	assert_int_equal(set_status(g_cli, 3, AWAY)->status, OFFLINE);
	assert_int_equal(up(3, "carol", 303, "edge-a")->status, AWAY);
	down(3, 303);
}

/* An edge that stops heartbeating: once its key expires, the sweep ends
 * its sessions; users with no other session go offline, published. */
static void test_dead_edge_takes_users_offline(void **state)
{
	chat_routing *rc = edge_table("edge-c", 1);
	struct published ev[16];
	const Chat__PresenceUpdate *u;
	int64_t t0, went = 0;
	(void)state;
	beat();
	sync_publishes(ev, 16);
	assert_int_equal(up(4, "dave", 401, "edge-c")->status, ONLINE);
	assert_int_equal(up(5, "erin", 501, "edge-c")->status, ONLINE);
	assert_int_equal(up(5, "erin", 502, "edge-a")->status, ONLINE);
	assert_int_equal(up(6, "fay", 601, "edge-c")->status, ONLINE);
	assert_int_equal(set_status(g_cli, 6, OFFLINE)->status, OFFLINE);
	t0 = chat_now_ms();
	/* edge-c is silent; edge-a and edge-b keep beating. */
	while (query1(g_cli, 4)->status != OFFLINE) {
		assert_true(chat_now_ms() - t0 < 4000);
		beat();
		usleep(100 * 1000);
	}
	went = chat_now_ms() - t0;
	assert_true(went >= 500); /* not before the TTL ran out */
	u = query1(g_cli, 4);
	assert_true(u->last_seen_ms >= t0 && u->last_seen_ms <= chat_now_ms());
	assert_int_equal(query1(g_cli, 5)->status, ONLINE); /* edge-a left */
	assert_string_equal(rstr("HGET %s 501", "chat:pres:sess:5"), "");
	assert_string_equal(rstr("HGET %s 502", "chat:pres:sess:5"), "edge-a");
	assert_string_equal(rstr("EXISTS %s", "chat:pres:edge:edge-c"), "0");
	assert_string_equal(rstr("SISMEMBER %s edge-c", "chat:pres:edges"),
	                     "0");
	/* Published: dave ONLINE, erin ONLINE, fay ONLINE then OFFLINE (her
	 * choice), then dave OFFLINE from the sweep; fay was invisible. */
	assert_int_equal(sync_publishes(ev, 16), 5);
	assert_int_equal(ev[4].user_id, 4);
	assert_int_equal(ev[4].status, OFFLINE);
	assert_string_equal(ev[4].name, "dave");
	assert_true(ev[4].last_seen >= t0);
	down(5, 502);
	chat_routing_free(rc);
}

/* Redis down: calls fail fast with UNAVAILABLE. Redis back, empty:
 * edges see the loss on their next heartbeat and re-announce their
 * sessions; presence is whole again. */
static void test_redis_restart_heals(void **state)
{
	const Chat__PresenceUpdate *u;
	struct published ev[16];
	char err[512];
	int64_t t0;
	(void)state;
	beat();
	assert_int_equal(up(7, "gus", 701, "edge-a")->status, ONLINE);
	assert_int_equal(up(8, "hal", 801, "edge-b")->status, ONLINE);
	sync_publishes(ev, 16);
	pthread_mutex_lock(&g_hb.mu);
	g_hb.lost_a = g_hb.lost_b = 0;
	pthread_mutex_unlock(&g_hb.mu);

	assert_int_equal(redis_server_kill(&g_rs), 0);
	t0 = chat_mono_ms();
	assert_int_equal(session_st(g_cli, "SessionUp", 9, "ida", 901,
	                            "edge-a", &u),
	                 CHAT_UNAVAILABLE);
	assert_int_equal(session_st(g_cli, "SessionDown", 7, "", 701, "", &u),
	                 CHAT_UNAVAILABLE);
	assert_true(chat_mono_ms() - t0 < 1000);

	assert_int_equal(redis_server_restart(&g_rs, err, sizeof err), 0);
	/* Empty: nobody is online. */
	assert_int_equal(query1(g_cli, 7)->status, OFFLINE);
	/* The edges' next heartbeat reports the loss; they re-announce. */
	t0 = chat_mono_ms();
	for (;;) {
		int a, b;
		pthread_mutex_lock(&g_hb.mu);
		a = g_hb.lost_a;
		b = g_hb.lost_b;
		pthread_mutex_unlock(&g_hb.mu);
		if (a && b)
			break;
		assert_true(chat_mono_ms() - t0 < 3000);
		usleep(20 * 1000);
	}
	assert_int_equal(up(7, "gus", 701, "edge-a")->status, ONLINE);
	assert_int_equal(up(8, "hal", 801, "edge-b")->status, ONLINE);
	assert_int_equal(query1(g_cli, 7)->status, ONLINE);
	assert_string_equal(query1(g_cli, 8)->user_name, "hal");
	/* And they survive the sweeps (their edges are alive). */
	usleep(600 * 1000);
	beat();
	assert_int_equal(query1(g_cli, 8)->status, ONLINE);
	assert_int_equal(sync_publishes(ev, 16), 2); /* both back online */
	down(7, 701);
	down(8, 801);
}

static void test_health(void **state)
{
	Chat__Empty in = CHAT__EMPTY__INIT;
	ProtobufCMessage *out = NULL;
	const Chat__HealthReply *h;
	int64_t sessions = -9, swept = -9;
	(void)state;
	beat();
	up(10, "jo", 1001, "edge-a");
	assert_int_equal(chat_rpc_invoke(g_cli, &chat__admin__descriptor,
	                                 "Health", &in.base, g_arena, &out,
	                                 2000, NULL, 0),
	                 CHAT_OK);
	h = (const Chat__HealthReply *)out;
	for (size_t i = 0; i < h->n_counters; i++) {
		if (!strcmp(h->counters[i]->name, "sessions"))
			sessions = h->counters[i]->value;
		if (!strcmp(h->counters[i]->name, "swept_offline"))
			swept = h->counters[i]->value;
	}
	assert_true(sessions >= 1);
	assert_true(swept >= 0);
	down(10, 1001);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sessions_on_two_edges),
	    cmocka_unit_test(test_status_sticky_in_redis),
	    cmocka_unit_test(test_dead_edge_takes_users_offline),
	    cmocka_unit_test(test_redis_restart_heals),
	    cmocka_unit_test(test_health),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
