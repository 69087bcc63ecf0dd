/* The presence service between a fake chat.Store (UserChannels) and a fake
 * chat.Dispatcher (Publish), both RPC servers in this file: sessions,
 * chosen and invisible status, what gets published and when, Query. */
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
#include "chat_rpc.h"
#include "chat_util.h"
#include "dispatcher.pb-c.h"
#include "presence.h"
#include "presence.pb-c.h"
#include "rpc.pb-c.h"
#include "store.pb-c.h"

#define PRES_URL "inproc://pres-test"
#define STORE_URL "inproc://pres-test-store"
#define DISP_URL "inproc://pres-test-dispatcher"

#define ONLINE CHAT__STATUS__STATUS_ONLINE
#define AWAY CHAT__STATUS__STATUS_AWAY
#define BUSY CHAT__STATUS__STATUS_BUSY
#define OFFLINE CHAT__STATUS__STATUS_OFFLINE

/* ---- fakes ------------------------------------------------------------- */

struct published {
	uint64_t user_id, channel_id;
	char name[64];
	int status;
	int64_t last_seen;
	size_t n_channels, n_users;
	uint64_t channels[8];
};

static struct {
	pthread_mutex_t mu;
	struct published ev[256];
	int n;
} pub = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};

static int user_channels(void *arg, chat_rpc_call *call)
{
	const Chat__UserReq *in = (const Chat__UserReq *)call->in;
	Chat__ChannelIds *out = (Chat__ChannelIds *)call->out;
	(void)arg;
	if (in->user_id == 66)
		return chat_rpc_fail(call, CHAT_INTERNAL, "broken");
	out->ids = chat_arena_alloc(call->arena, 3 * sizeof *out->ids);
	out->member_counts =
	    chat_arena_alloc(call->arena, 3 * sizeof *out->member_counts);
	if (in->user_id == 1) { /* alice: channels 10 and 11, and 12 with
	                         * 501 members: too big for presence */
		out->ids[out->n_ids++] = 10;
		out->ids[out->n_ids++] = 11;
		out->ids[out->n_ids++] = 12;
		out->member_counts[0] = 2;
		out->member_counts[1] = 500;
		out->member_counts[2] = 501;
		out->n_member_counts = 3;
	} else if (in->user_id == 2) { /* bob: channel 11 */
		out->ids[out->n_ids++] = 11;
	}
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
		p->channel_id = e->channel_id;
		p->n_users = e->n_user_ids;
		p->user_id = e->n_user_ids ? e->user_ids[0] : 0;
		p->n_channels = e->n_channel_ids;
		for (size_t k = 0; k < e->n_channel_ids && k < 8; k++)
			p->channels[k] = e->channel_ids[k];
		if (e->kind_case == CHAT__EVENT__KIND_PRESENCE) {
			p->status = e->presence->status;
			p->last_seen = e->presence->last_seen_ms;
			chat_strlcpy(p->name, e->presence->user_name,
			             sizeof p->name);
			if (e->presence->user_id != p->user_id)
				p->status = -1; /* caught by the checks */
		} else {
			p->status = -2;
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

static chat_rpc_server *g_store, *g_disp;
static pres *g_pres;
static chat_rpc_client *g_cli;
static chat_arena *g_arena;

static int setup(void **state)
{
	static chat_rpc_fn store_fns[13], disp_fns[1] = {publish};
	pres_config cfg;
	char err[256];
	(void)state;
	store_fns[12] = user_channels;
	if (strcmp(chat__store__descriptor.methods[12].name, "UserChannels"))
		return -1;
	g_store = start_server("store", STORE_URL, &chat__store__descriptor,
	                       CHAT_RPC_TABLE(store_fns));
	g_disp = start_server("dispatcher", DISP_URL,
	                      &chat__dispatcher__descriptor,
	                      CHAT_RPC_TABLE(disp_fns));
	memset(&cfg, 0, sizeof cfg);
	cfg.rpc_url = PRES_URL;
	cfg.store_url = STORE_URL;
	cfg.dispatcher_url = DISP_URL;
	cfg.instance = "pres-test";
	cfg.rpc_timeout_ms = 1000;
	if (pres_start(&cfg, &g_pres, err, sizeof err) != 0) {
		fprintf(stderr, "pres_start: %s\n", err);
		return -1;
	}
	g_cli = chat_rpc_client_new(PRES_URL, err, sizeof err);
	g_arena = chat_arena_new();
	return g_cli && g_arena ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	chat_rpc_client_free(g_cli);
	pres_stop(g_pres);
	chat_rpc_server_free(g_store);
	chat_rpc_server_free(g_disp);
	chat_arena_free(g_arena);
	return 0;
}

/* ---- calls ------------------------------------------------------------- */

static const Chat__PresenceUpdate *session(const char *method, uint64_t user,
                                           const char *name, uint64_t sess)
{
	Chat__SessionReq in = CHAT__SESSION_REQ__INIT;
	ProtobufCMessage *out = NULL;
	char why[256];
	int st;
	in.user_id = user;
	in.user_name = (char *)name;
	in.session_id = sess;
	in.edge_id = (char *)"edge-1";
	st = chat_rpc_invoke(g_cli, &chat__presence__descriptor, method,
	                     &in.base, g_arena, &out, 2000, why, sizeof why);
	if (st != CHAT_OK)
		fail_msg("%s: %s %s", method, chat_strerror(st), why);
	return (const Chat__PresenceUpdate *)out;
}

static const Chat__PresenceUpdate *up(uint64_t user, const char *name,
                                      uint64_t sess)
{
	return session("SessionUp", user, name, sess);
}

static const Chat__PresenceUpdate *down(uint64_t user, uint64_t sess)
{
	return session("SessionDown", user, "", sess);
}

static int set_status_st(uint64_t user, int status,
                         const Chat__PresenceUpdate **res)
{
	Chat__PresenceSetReq in = CHAT__PRESENCE_SET_REQ__INIT;
	ProtobufCMessage *out = NULL;
	int st;
	in.user_id = user;
	in.status = (Chat__Status)status;
	st = chat_rpc_invoke(g_cli, &chat__presence__descriptor, "SetStatus",
	                     &in.base, g_arena, &out, 2000, NULL, 0);
	if (res)
		*res = st == CHAT_OK ? (const Chat__PresenceUpdate *)out : NULL;
	return st;
}

static const Chat__PresenceUpdate *set_status(uint64_t user, int status)
{
	const Chat__PresenceUpdate *u = NULL;
	assert_int_equal(set_status_st(user, status, &u), CHAT_OK);
	return u;
}

/* Every publish queued so far has reached the fake dispatcher: a change
 * of a fresh user is published after them (one ordered worker). Returns
 * how many arrived before it, and forgets them all. */
static int sync_publishes(struct published *copy, int max)
{
	static uint64_t marker = 5000;
	int64_t deadline = chat_mono_us() + 5 * 1000000;
	uint64_t m = ++marker;
	int n = -1;
	up(m, "marker", 1);
	while (n < 0) {
		assert_true(chat_mono_us() < deadline);
		pthread_mutex_lock(&pub.mu);
		if (pub.n > 0 && pub.ev[pub.n - 1].user_id == m) {
			n = pub.n - 1;
			memcpy(copy, pub.ev, (size_t)(n < max ? n : max) *
			                         sizeof *copy);
			pub.n = 0;
		}
		pthread_mutex_unlock(&pub.mu);
		if (n < 0)
			usleep(2000);
	}
	return n;
}

static void expect_pub(const struct published *p, uint64_t user, int status)
{
	assert_int_equal(p->user_id, user);
	assert_int_equal(p->n_users, 1);
	assert_int_equal(p->status, status);
	assert_int_equal(p->channel_id, 0);
}

/* ---- tests ------------------------------------------------------------- */

static void test_sessions(void **state)
{
	const Chat__PresenceUpdate *u;
	struct published ev[16];
	int64_t t0 = chat_now_ms(), down_at;
	(void)state;
	sync_publishes(ev, 16);

	u = up(1, "alice", 101);
	assert_int_equal(u->status, ONLINE);
	assert_int_equal(u->user_id, 1);
	assert_string_equal(u->user_name, "alice");
	assert_true(u->last_seen_ms >= t0);
	u = up(1, "alice", 102); /* second session: nothing visible */
	assert_int_equal(u->status, ONLINE);
	u = up(1, "alice", 102); /* repeated: idempotent */
	assert_int_equal(u->status, ONLINE);
	u = down(1, 101);
	assert_int_equal(u->status, ONLINE); /* 102 is still there */
	u = down(1, 101);                    /* again: fine */
	assert_int_equal(u->status, ONLINE);
	u = down(1, 102);
	assert_int_equal(u->status, OFFLINE);
	assert_string_equal(u->user_name, "alice");
	down_at = u->last_seen_ms;
	assert_true(down_at >= t0 && down_at <= chat_now_ms());
	u = down(1, 999); /* unknown session */
	assert_int_equal(u->status, OFFLINE);
	assert_int_equal(u->last_seen_ms, down_at);
	u = down(77, 1); /* unknown user */
	assert_int_equal(u->status, OFFLINE);
	assert_int_equal(u->last_seen_ms, 0);

	/* Published: online once, offline once, to her channels. */
	assert_int_equal(sync_publishes(ev, 16), 2);
	expect_pub(&ev[0], 1, ONLINE);
	assert_string_equal(ev[0].name, "alice");
	assert_int_equal(ev[0].n_channels, 2); /* not 12: 501 members */
	assert_int_equal(ev[0].channels[0], 10);
	assert_int_equal(ev[0].channels[1], 11);
	assert_true(ev[0].last_seen >= t0);
	expect_pub(&ev[1], 1, OFFLINE);
	assert_int_equal(ev[1].last_seen, down_at);
	assert_int_equal(ev[1].n_channels, 2);
}

static void test_chosen_status_is_sticky(void **state)
{
	const Chat__PresenceUpdate *u;
	struct published ev[16];
	(void)state;
	sync_publishes(ev, 16);

	assert_int_equal(up(2, "bob", 201)->status, ONLINE);
	assert_int_equal(set_status(2, AWAY)->status, AWAY);
	assert_int_equal(set_status(2, AWAY)->status, AWAY); /* no change */
	assert_int_equal(down(2, 201)->status, OFFLINE);
	u = up(2, "bob", 202); /* comes back away, as chosen */
	assert_int_equal(u->status, AWAY);
	assert_string_equal(u->user_name, "bob");
	assert_int_equal(set_status(2, BUSY)->status, BUSY);
	/* Chosen while offline: visible only once a session is up. */
	assert_int_equal(down(2, 202)->status, OFFLINE);
	assert_int_equal(set_status(2, ONLINE)->status, OFFLINE);
	assert_int_equal(up(2, "bob", 203)->status, ONLINE);

	assert_int_equal(sync_publishes(ev, 16), 7);
	expect_pub(&ev[0], 2, ONLINE);
	assert_int_equal(ev[0].n_channels, 1);
	assert_int_equal(ev[0].channels[0], 11);
	expect_pub(&ev[1], 2, AWAY);
	expect_pub(&ev[2], 2, OFFLINE);
	expect_pub(&ev[3], 2, AWAY);
	expect_pub(&ev[4], 2, BUSY);
	expect_pub(&ev[5], 2, OFFLINE);
	expect_pub(&ev[6], 2, ONLINE);
	down(2, 203);
	sync_publishes(ev, 16);
}

static void test_invisible(void **state)
{
	const Chat__PresenceUpdate *u;
	struct published ev[16];
	int64_t seen;
	(void)state;
	up(3, "carol", 301);
	u = down(3, 301);
	seen = u->last_seen_ms;
	up(3, "carol", 302);
	sync_publishes(ev, 16);

	u = set_status(3, OFFLINE); /* invisible */
	assert_int_equal(u->status, OFFLINE);
	assert_int_equal(u->last_seen_ms, seen); /* not "now": not seen */
	u = up(3, "carol", 303);                 /* still invisible */
	assert_int_equal(u->status, OFFLINE);
	u = down(3, 302);
	assert_int_equal(u->status, OFFLINE);
	u = down(3, 303);
	assert_int_equal(u->status, OFFLINE);
	u = up(3, "carol", 304); /* comes back invisible */
	assert_int_equal(u->status, OFFLINE);
	u = set_status(3, ONLINE);
	assert_int_equal(u->status, ONLINE);

	/* Only the two visible changes were published. */
	assert_int_equal(sync_publishes(ev, 16), 2);
	expect_pub(&ev[0], 3, OFFLINE);
	expect_pub(&ev[1], 3, ONLINE);
}

static void test_bad_requests(void **state)
{
	Chat__SessionReq in = CHAT__SESSION_REQ__INIT;
	ProtobufCMessage *out = NULL;
	(void)state;
	assert_int_equal(set_status_st(2, 7, NULL), CHAT_INVALID_ARGUMENT);
	assert_int_equal(set_status_st(2, -1, NULL), CHAT_INVALID_ARGUMENT);
	assert_int_equal(set_status_st(0, ONLINE, NULL), CHAT_INVALID_ARGUMENT);
	in.user_id = 4; /* no session id */
	assert_int_equal(chat_rpc_invoke(g_cli, &chat__presence__descriptor,
	                                 "SessionUp", &in.base, g_arena, &out,
	                                 2000, NULL, 0),
	                 CHAT_INVALID_ARGUMENT);
}

static void test_query(void **state)
{
	Chat__PresenceQuery in = CHAT__PRESENCE_QUERY__INIT;
	uint64_t ids[] = {999, 1, 3, 0};
	ProtobufCMessage *out = NULL;
	const Chat__PresenceList *l;
	int64_t t0 = chat_now_ms();
	(void)state;
	in.n_user_ids = 4;
	in.user_ids = ids;
	assert_int_equal(chat_rpc_invoke(g_cli, &chat__presence__descriptor,
	                                 "Query", &in.base, g_arena, &out, 2000,
	                                 NULL, 0),
	                 CHAT_OK);
	l = (const Chat__PresenceList *)out;
	assert_int_equal(l->n_users, 4);
	assert_int_equal(l->users[0]->user_id, 999); /* unknown */
	assert_int_equal(l->users[0]->status, OFFLINE);
	assert_int_equal(l->users[0]->last_seen_ms, 0);
	assert_int_equal(l->users[1]->user_id, 1); /* alice went away */
	assert_int_equal(l->users[1]->status, OFFLINE);
	assert_true(l->users[1]->last_seen_ms > 0 &&
	            l->users[1]->last_seen_ms <= t0);
	assert_string_equal(l->users[1]->user_name, "alice");
	assert_int_equal(l->users[2]->user_id, 3); /* carol is online */
	assert_int_equal(l->users[2]->status, ONLINE);
	assert_true(l->users[2]->last_seen_ms >= t0);
	assert_int_equal(l->users[3]->status, OFFLINE);
	/* No ids, no answers. */
	in.n_user_ids = 0;
	assert_int_equal(chat_rpc_invoke(g_cli, &chat__presence__descriptor,
	                                 "Query", &in.base, g_arena, &out, 2000,
	                                 NULL, 0),
	                 CHAT_OK);
	assert_int_equal(((const Chat__PresenceList *)out)->n_users, 0);
}

static void test_store_failure_still_publishes(void **state)
{
	struct published ev[16];
	(void)state;
	sync_publishes(ev, 16);
	up(66, "dave", 1);
	assert_int_equal(sync_publishes(ev, 16), 1);
	expect_pub(&ev[0], 66, ONLINE);
	assert_int_equal(ev[0].n_channels, 0); /* only his own sessions */
}

static void test_health(void **state)
{
	Chat__Empty in = CHAT__EMPTY__INIT;
	ProtobufCMessage *out = NULL;
	const Chat__HealthReply *h;
	int64_t sessions = -1, publishes = -1;
	(void)state;
	assert_int_equal(chat_rpc_invoke(g_cli, &chat__admin__descriptor,
	                                 "Health", &in.base, g_arena, &out,
	                                 2000, NULL, 0),
	                 CHAT_OK);
	h = (const Chat__HealthReply *)out;
	assert_string_equal(h->service, "presence");
	for (size_t i = 0; i < h->n_counters; i++) {
		if (!strcmp(h->counters[i]->name, "sessions"))
			sessions = h->counters[i]->value;
		if (!strcmp(h->counters[i]->name, "publishes"))
			publishes = h->counters[i]->value;
	}
	assert_true(sessions >= 2); /* carol, dave, the markers */
	assert_true(publishes >= 12);
}

/* The dispatcher away: replies do not wait, nothing breaks. */
static void test_dispatcher_down(void **state)
{
	int64_t t0;
	(void)state;
	chat_rpc_server_free(g_disp);
	g_disp = NULL;
	t0 = chat_mono_us();
	for (uint64_t i = 0; i < 3; i++)
		assert_int_equal(up(700 + i, "eve", 1)->status, ONLINE);
	assert_true(chat_mono_us() - t0 < 500 * 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sessions),
	    cmocka_unit_test(test_chosen_status_is_sticky),
	    cmocka_unit_test(test_invisible),
	    cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_query),
	    cmocka_unit_test(test_store_failure_still_publishes),
	    cmocka_unit_test(test_health),
	    cmocka_unit_test(test_dispatcher_down),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
