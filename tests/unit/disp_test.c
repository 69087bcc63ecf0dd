/* The dispatcher on librdkafka's mock cluster with an in-memory routing
 * table and fake edges (chat.Edge servers in this file on inproc://):
 * routing by channel, channel list and user, once per edge, in order,
 * batched; Publish; a dead edge; an edge that moves; a joiner's edges
 * routed the channel right after the join. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_kafka.h"
#include "chat_routing.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "common.pb-c.h"
#include "dispatcher.h"
#include "dispatcher.pb-c.h"
#include "edge.pb-c.h"
#include "rpc.pb-c.h"

#define DISP_URL "inproc://disp-test"
#define N_MSG 100 /* messages per channel in the burst */

/* ---- fake edges -------------------------------------------------------- */

struct rec {
	uint64_t channel, seq, user;
	int kind;
};

struct fedge {
	const char *id, *url;
	chat_rpc_server *srv;
	pthread_mutex_t mu;
	int calls, n;
	struct rec recs[2048];
};

static struct fedge e1 = {"edge-1", "inproc://disp-test-edge-1", NULL,
                          PTHREAD_MUTEX_INITIALIZER, 0, 0, {{0}}};
static struct fedge e2 = {"edge-2", "inproc://disp-test-edge-2", NULL,
                          PTHREAD_MUTEX_INITIALIZER, 0, 0, {{0}}};

static int deliver(void *arg, chat_rpc_call *call)
{
	struct fedge *f = arg;
	const Chat__EventBatch *in = (const Chat__EventBatch *)call->in;
	pthread_mutex_lock(&f->mu);
	f->calls++;
	for (size_t i = 0; i < in->n_events && f->n < 2048; i++) {
		const Chat__Event *e = in->events[i];
		struct rec *r = &f->recs[f->n++];
		r->kind = (int)e->kind_case;
		r->channel = e->channel_id;
		r->seq = e->kind_case == CHAT__EVENT__KIND_MESSAGE
		             ? e->message->seq
		             : 0;
		r->user = e->n_user_ids ? e->user_ids[0] : 0;
		if (!e->channel_id && e->n_channel_ids)
			r->channel = e->channel_ids[0];
	}
	pthread_mutex_unlock(&f->mu);
	return CHAT_OK;
}

static void fedge_start(struct fedge *f, const char *url)
{
	static const chat_rpc_fn fns[2] = {deliver, NULL};
	char err[256];
	f->url = url;
	f->srv = chat_rpc_server_new("edge", f->id, 2);
	assert_non_null(f->srv);
	assert_int_equal(chat_rpc_server_add(f->srv, &chat__edge__descriptor,
	                                     CHAT_RPC_TABLE(fns), f),
	                 0);
	assert_int_equal(chat_rpc_server_listen(f->srv, url, NULL, err,
	                                        sizeof err),
	                 0);
	assert_int_equal(chat_rpc_server_start(f->srv), 0);
}

static void fedge_reset(struct fedge *f)
{
	pthread_mutex_lock(&f->mu);
	f->n = f->calls = 0;
	pthread_mutex_unlock(&f->mu);
}

static int fedge_count(struct fedge *f)
{
	int n;
	pthread_mutex_lock(&f->mu);
	n = f->n;
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* Wait until f holds at least n events; fails after the deadline. */
static void wait_events(struct fedge *f, int n, int ms)
{
	int64_t deadline = chat_mono_us() + (int64_t)ms * 1000;
	while (fedge_count(f) < n) {
		if (chat_mono_us() > deadline)
			fail_msg("%s: %d events after %d ms, want %d", f->id,
			         fedge_count(f), ms, n);
		usleep(2000);
	}
}

/* ---- fixture ----------------------------------------------------------- */

static chat_kafka_mock *g_mock;
static chat_routing *g_rt;
static disp *g_disp;
static chat_producer *g_prod;
static chat_rpc_client *g_cli;

static int setup(void **state)
{
	disp_config cfg;
	char err[256];
	int64_t deadline;
	(void)state;
	g_mock = chat_kafka_mock_new(1, 4, err, sizeof err);
	g_rt = chat_routing_mem_new();
	if (!g_mock || !g_rt)
		return -1;
	fedge_start(&e1, e1.url);
	fedge_start(&e2, e2.url);
	g_rt->ops->edge_register(g_rt, "edge-1", e1.url);
	g_rt->ops->edge_register(g_rt, "edge-2", e2.url);
	g_rt->ops->edge_register(g_rt, "edge-dead", "inproc://disp-test-dead");
	g_rt->ops->channel_add(g_rt, 1, "edge-1");
	g_rt->ops->channel_add(g_rt, 2, "edge-2");
	g_rt->ops->channel_add(g_rt, 3, "edge-1");
	g_rt->ops->channel_add(g_rt, 3, "edge-2");
	g_rt->ops->channel_add(g_rt, 4, "edge-dead");
	g_rt->ops->channel_add(g_rt, 4, "edge-1");
	g_rt->ops->user_add(g_rt, 100, "edge-1");
	g_rt->ops->user_add(g_rt, 200, "edge-2");

	memset(&cfg, 0, sizeof cfg);
	cfg.kafka_bootstrap = chat_kafka_mock_bootstraps(g_mock);
	cfg.rpc_url = DISP_URL;
	cfg.instance = "disp-test";
	cfg.routing = g_rt;
	cfg.batch_max = 1000;
	cfg.deliver_timeout_ms = 300;
	if (disp_start(&cfg, &g_disp, err, sizeof err) != 0) {
		fprintf(stderr, "disp_start: %s\n", err);
		return -1;
	}
	g_prod = chat_producer_new(chat_kafka_mock_bootstraps(g_mock),
	                           "disp-test", 5, NULL, NULL, err, sizeof err);
	g_cli = chat_rpc_client_new(DISP_URL, err, sizeof err);
	if (!g_prod || !g_cli)
		return -1;
	/* The mock's first group join takes a few seconds. */
	deadline = chat_mono_us() + 30 * 1000000;
	while (!disp_ready(g_disp)) {
		if (chat_mono_us() > deadline) {
			fprintf(stderr,
			        "dispatcher never got its partitions\n");
			return -1;
		}
		usleep(10000);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	chat_producer_free(g_prod);
	chat_rpc_client_free(g_cli);
	disp_stop(g_disp);
	chat_rpc_server_free(e1.srv);
	chat_rpc_server_free(e2.srv);
	chat_routing_free(g_rt);
	chat_kafka_mock_free(g_mock);
	return 0;
}

/* ---- producing --------------------------------------------------------- */

static void produce(const Chat__Event *ev, uint64_t key)
{
	uint8_t buf[512], k[8];
	size_t len = chat__event__get_packed_size(ev);
	assert_true(len <= sizeof buf);
	chat__event__pack(ev, buf);
	chat_put_be64(k, key);
	assert_int_equal(chat_producer_send(g_prod, CHAT_TOPIC_FANOUT, k, 8,
	                                    buf, len, NULL),
	                 0);
}

static void produce_msg(uint64_t channel, uint64_t seq)
{
	Chat__Event ev = CHAT__EVENT__INIT;
	Chat__Message m = CHAT__MESSAGE__INIT;
	m.channel_id = channel;
	m.seq = seq;
	m.body = (char *)"hello";
	ev.channel_id = channel;
	ev.kind_case = CHAT__EVENT__KIND_MESSAGE;
	ev.message = &m;
	produce(&ev, channel);
}

/* A member event for channel_ids and user_ids (no channel_id). */
static void produce_member(uint64_t *chans, size_t nc, uint64_t *users,
                           size_t nu, uint64_t channel_id)
{
	Chat__Event ev = CHAT__EVENT__INIT;
	Chat__MemberEvent m = CHAT__MEMBER_EVENT__INIT;
	m.channel_id = nc ? chans[0] : channel_id;
	m.user_id = nu ? users[0] : 0;
	ev.channel_id = channel_id;
	ev.n_channel_ids = nc;
	ev.channel_ids = chans;
	ev.n_user_ids = nu;
	ev.user_ids = users;
	ev.kind_case = CHAT__EVENT__KIND_MEMBER;
	ev.member = &m;
	produce(&ev, 0);
}

/* Messages of channel ch in f: seqs 1..want, contiguous and in order. */
static void check_channel(struct fedge *f, uint64_t ch, uint64_t want)
{
	uint64_t last = 0;
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < f->n; i++) {
		const struct rec *r = &f->recs[i];
		if (r->kind != CHAT__EVENT__KIND_MESSAGE || r->channel != ch)
			continue;
		if (r->seq != last + 1) {
			pthread_mutex_unlock(&f->mu);
			fail_msg("%s channel %llu: seq %llu after %llu", f->id,
			         (unsigned long long)ch,
			         (unsigned long long)r->seq,
			         (unsigned long long)last);
		}
		last = r->seq;
	}
	pthread_mutex_unlock(&f->mu);
	assert_int_equal(last, want);
}

static int count_kind(struct fedge *f, int kind, uint64_t channel)
{
	int n = 0;
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < f->n; i++)
		if (f->recs[i].kind == kind &&
		    (!channel || f->recs[i].channel == channel))
			n++;
	pthread_mutex_unlock(&f->mu);
	return n;
}

static int64_t health_counter(const char *name)
{
	Chat__Empty in = CHAT__EMPTY__INIT;
	ProtobufCMessage *out = NULL;
	chat_arena *a = chat_arena_new();
	int64_t v = -1;
	assert_int_equal(chat_rpc_invoke(g_cli, &chat__admin__descriptor,
	                                 "Health", &in.base, a, &out, 2000,
	                                 NULL, 0),
	                 CHAT_OK);
	for (size_t i = 0; i < ((Chat__HealthReply *)out)->n_counters; i++) {
		const Chat__Counter *c =
		    ((Chat__HealthReply *)out)->counters[i];
		if (!strcmp(c->name, name))
			v = c->value;
	}
	chat_arena_free(a);
	return v;
}

/* ---- tests ------------------------------------------------------------- */

static void test_routing_order_batching(void **state)
{
	uint64_t both[] = {1, 2}, u100[] = {100}, u200[] = {200},
	         c3[] = {3, 3};
	int want1, want2;
	(void)state;
	fedge_reset(&e1);
	fedge_reset(&e2);
	/* A burst: channel 1 -> edge-1, 2 -> edge-2, 3 -> both. */
	for (uint64_t s = 1; s <= N_MSG; s++) {
		produce_msg(1, s);
		produce_msg(2, s);
		produce_msg(3, s);
	}
	produce_member(both, 2, NULL, 0, 0);     /* both edges, once each */
	produce_member(NULL, 0, u100, 1, 0);     /* edge-1 only */
	produce_member(NULL, 0, u200, 1, 0);     /* edge-2 only */
	produce_member(c3, 2, u100, 1, 3);       /* once per edge */
	produce_member(NULL, 0, NULL, 0, 999);   /* nobody */
	assert_int_equal(chat_producer_flush(g_prod, 10000), 0);

	want1 = 2 * N_MSG + 3;
	want2 = 2 * N_MSG + 3;
	wait_events(&e1, want1, 15000);
	wait_events(&e2, want2, 15000);
	/* Nothing more is on its way: every consumed event is accounted
	 * for. */
	{
		int64_t deadline = chat_mono_us() + 5 * 1000000;
		while (health_counter("delivered") < want1 + want2 &&
		       chat_mono_us() < deadline)
			usleep(5000);
	}
	assert_int_equal(health_counter("consumed"), 3 * N_MSG + 5);
	assert_int_equal(health_counter("delivered"), want1 + want2);
	assert_int_equal(health_counter("unrouted"), 1);
	assert_int_equal(fedge_count(&e1), want1);
	assert_int_equal(fedge_count(&e2), want2);

	check_channel(&e1, 1, N_MSG);
	check_channel(&e1, 3, N_MSG);
	check_channel(&e1, 2, 0);
	check_channel(&e2, 2, N_MSG);
	check_channel(&e2, 3, N_MSG);
	check_channel(&e2, 1, 0);
	assert_int_equal(count_kind(&e1, CHAT__EVENT__KIND_MEMBER, 0), 3);
	assert_int_equal(count_kind(&e2, CHAT__EVENT__KIND_MEMBER, 0), 3);

	/* Batched: far fewer calls than events. */
	pthread_mutex_lock(&e1.mu);
	assert_true(e1.calls * 4 < e1.n);
	pthread_mutex_unlock(&e1.mu);
	pthread_mutex_lock(&e2.mu);
	assert_true(e2.calls * 4 < e2.n);
	pthread_mutex_unlock(&e2.mu);
}

static void test_publish(void **state)
{
	Chat__Event ev = CHAT__EVENT__INIT, ev2 = CHAT__EVENT__INIT;
	Chat__Event *evs[2] = {&ev, &ev2};
	Chat__Typing t = CHAT__TYPING__INIT;
	Chat__PresenceUpdate p = CHAT__PRESENCE_UPDATE__INIT;
	Chat__EventBatch b = CHAT__EVENT_BATCH__INIT;
	uint64_t ch2[] = {2}, users[] = {100, 200};
	ProtobufCMessage *out = NULL;
	chat_arena *a = chat_arena_new();
	(void)state;
	fedge_reset(&e1);
	fedge_reset(&e2);
	t.channel_id = 2;
	ev.n_channel_ids = 1;
	ev.channel_ids = ch2;
	ev.kind_case = CHAT__EVENT__KIND_TYPING;
	ev.typing = &t;
	p.user_id = 100;
	p.status = CHAT__STATUS__STATUS_AWAY;
	ev2.n_user_ids = 2;
	ev2.user_ids = users;
	ev2.kind_case = CHAT__EVENT__KIND_PRESENCE;
	ev2.presence = &p;
	b.n_events = 2;
	b.events = evs;
	assert_int_equal(chat_rpc_invoke(g_cli, &chat__dispatcher__descriptor,
	                                 "Publish", &b.base, a, &out, 2000,
	                                 NULL, 0),
	                 CHAT_OK);
	wait_events(&e2, 2, 5000);
	wait_events(&e1, 1, 5000);
	/* edge-2: the typing notice, then the presence, in that order. */
	pthread_mutex_lock(&e2.mu);
	assert_int_equal(e2.n, 2);
	assert_int_equal(e2.recs[0].kind, CHAT__EVENT__KIND_TYPING);
	assert_int_equal(e2.recs[0].channel, 2);
	assert_int_equal(e2.recs[1].kind, CHAT__EVENT__KIND_PRESENCE);
	pthread_mutex_unlock(&e2.mu);
	/* edge-1 only has user 100: no typing for channel 2. */
	usleep(50000);
	assert_int_equal(fedge_count(&e1), 1);
	assert_int_equal(count_kind(&e1, CHAT__EVENT__KIND_PRESENCE, 0), 1);
	/* An empty batch is fine. */
	b.n_events = 0;
	assert_int_equal(chat_rpc_invoke(g_cli, &chat__dispatcher__descriptor,
	                                 "Publish", &b.base, a, &out, 2000,
	                                 NULL, 0),
	                 CHAT_OK);
	chat_arena_free(a);
}

/* edge-dead never answers: edge-1 still gets channel 4 promptly, the
 * failure is retried once and counted. */
static void test_dead_edge(void **state)
{
	int64_t t0;
	(void)state;
	fedge_reset(&e1);
	t0 = chat_mono_us();
	for (uint64_t s = 1; s <= 20; s++)
		produce_msg(4, s);
	assert_int_equal(chat_producer_flush(g_prod, 10000), 0);
	wait_events(&e1, 20, 5000);
	check_channel(&e1, 4, 20);
	/* Faster than a single Deliver timeout to the dead edge would
	 * allow if it were in the way twice over. */
	assert_true(chat_mono_us() - t0 < 2 * 1000 * 1000);
	{
		int64_t deadline = chat_mono_us() + 10 * 1000000;
		while (health_counter("failed") < 20 &&
		       chat_mono_us() < deadline)
			usleep(20000);
	}
	assert_true(health_counter("failed") >= 20);
	assert_true(health_counter("retried") >= 1);
}

/* edge-2 goes away, then comes back at another address. */
static void test_edge_moves(void **state)
{
	(void)state;
	chat_rpc_server_free(e2.srv);
	e2.srv = NULL;
	fedge_reset(&e2);
	fedge_start(&e2, "inproc://disp-test-edge-2b");
	g_rt->ops->edge_register(g_rt, "edge-2", e2.url);
	produce_msg(2, N_MSG + 1);
	assert_int_equal(chat_producer_flush(g_prod, 10000), 0);
	wait_events(&e2, 1, 5000);
	pthread_mutex_lock(&e2.mu);
	assert_int_equal(e2.recs[0].seq, N_MSG + 1);
	pthread_mutex_unlock(&e2.mu);
}

/* User 200 (on edge-2) joins channel 9, which no edge routes yet, and a
 * message follows at once: edge-2 subscribes only when the join reaches
 * it, so the dispatcher routes channel 9 to the joiner's edges for a
 * while by itself. edge-1 gets nothing of it. */
static void test_join_overlay(void **state)
{
	Chat__Event ev = CHAT__EVENT__INIT;
	Chat__MemberEvent m = CHAT__MEMBER_EVENT__INIT;
	uint64_t users[] = {200};
	(void)state;
	fedge_reset(&e1);
	fedge_reset(&e2);
	m.channel_id = 9;
	m.user_id = 200;
	m.kind = CHAT__MEMBER_EVENT__KIND__JOINED;
	ev.channel_id = 9;
	ev.n_user_ids = 1;
	ev.user_ids = users;
	ev.kind_case = CHAT__EVENT__KIND_MEMBER;
	ev.member = &m;
	produce(&ev, 9);
	produce_msg(9, 1);
	produce_msg(9, 2);
	assert_int_equal(chat_producer_flush(g_prod, 10000), 0);
	wait_events(&e2, 3, 5000);
	assert_int_equal(count_kind(&e2, CHAT__EVENT__KIND_MEMBER, 9), 1);
	check_channel(&e2, 9, 2);
	usleep(50000);
	assert_int_equal(count_kind(&e1, CHAT__EVENT__KIND_MESSAGE, 9), 0);
	/* a LEFT adds nothing */
	m.kind = CHAT__MEMBER_EVENT__KIND__LEFT;
	m.channel_id = 10;
	ev.channel_id = 10;
	produce(&ev, 10);
	produce_msg(10, 1);
	assert_int_equal(chat_producer_flush(g_prod, 10000), 0);
	wait_events(&e2, 4, 5000);
	usleep(100000);
	assert_int_equal(count_kind(&e2, CHAT__EVENT__KIND_MESSAGE, 10), 0);
}

static void test_bad_record(void **state)
{
	uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	uint8_t k[8] = {0};
	int64_t before = health_counter("bad_records");
	(void)state;
	fedge_reset(&e1);
	assert_int_equal(chat_producer_send(g_prod, CHAT_TOPIC_FANOUT, k, 8,
	                                    junk, sizeof junk, NULL),
	                 0);
	produce_msg(1, N_MSG + 1); /* still flows after it */
	assert_int_equal(chat_producer_flush(g_prod, 10000), 0);
	wait_events(&e1, 1, 5000);
	{
		int64_t deadline = chat_mono_us() + 5 * 1000000;
		while (health_counter("bad_records") == before &&
		       chat_mono_us() < deadline)
			usleep(5000);
	}
	assert_int_equal(health_counter("bad_records"), before + 1);
}

static void test_bad_config(void **state)
{
	disp_config cfg;
	disp *d = NULL;
	char err[256];
	(void)state;
	memset(&cfg, 0, sizeof cfg);
	cfg.rpc_url = "inproc://disp-test-2";
	assert_int_equal(disp_start(&cfg, &d, err, sizeof err), -1);
	assert_null(d);
	cfg.routing = g_rt;
	cfg.rpc_url = "nonsense://x";
	assert_int_equal(disp_start(&cfg, &d, err, sizeof err), -1);
	assert_null(d);
	/* Without Kafka: Publish only, and ready at once. */
	cfg.rpc_url = "inproc://disp-test-3";
	assert_int_equal(disp_start(&cfg, &d, err, sizeof err), 0);
	assert_true(disp_ready(d));
	/* Serving: answers Health. (Also keeps disp_stop from racing the
	 * RPC threads' start, which can hang nng_close in nng 1.5.2.) */
	{
		chat_rpc_client *c = chat_rpc_client_new(cfg.rpc_url, err,
		                                         sizeof err);
		Chat__Empty in = CHAT__EMPTY__INIT;
		ProtobufCMessage *out = NULL;
		chat_arena *a = chat_arena_new();
		assert_non_null(c);
		assert_int_equal(chat_rpc_invoke(c, &chat__admin__descriptor,
		                                 "Health", &in.base, a, &out,
		                                 2000, NULL, 0),
		                 CHAT_OK);
		chat_rpc_client_free(c);
		chat_arena_free(a);
	}
	disp_stop(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routing_order_batching),
	    cmocka_unit_test(test_publish),
	    cmocka_unit_test(test_dead_edge),
	    cmocka_unit_test(test_edge_moves),
	    cmocka_unit_test(test_join_overlay),
	    cmocka_unit_test(test_bad_record),
	    cmocka_unit_test(test_bad_config),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
