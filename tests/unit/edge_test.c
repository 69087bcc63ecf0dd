/* The edge in isolation: a real edge (libwebsockets, worker pool, chat.Edge
 * server, idempotent producer) against librdkafka's mock cluster and FAKE
 * store / presence / dispatcher RPC servers written here, driven by a small
 * blocking WebSocket client (edge_wsc.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jwt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_arena.h"
#include "chat_auth.h"
#include "chat_kafka.h"
#include "chat_log.h"
#include "chat_routing.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "client.pb-c.h"
#include "dispatcher.pb-c.h"
#include "edge.h"
#include "edge.pb-c.h"
#include "edge_wsc.h"
#include "log.pb-c.h"
#include "presence.pb-c.h"
#include "store.pb-c.h"

static const unsigned char KEY[] = "0123456789abcdef0123456789abcdef";
#define KEYLEN 32
#define WAIT_MS 5000
#define TOO_BIG "frame exceeds 65536 bytes"

enum { ALICE = 1, BOB, CAROL, DAVE, ERIN, FRANK, NUSERS };
static const char *const names[NUSERS] = {"",     "alice", "bob",  "carol",
                                          "dave", "erin",  "frank"};

/* ------------------------------------------------------------------ */
/* The fake store                                                      */

struct fchan {
	uint64_t id;
	char name[32];
	int kind;
	uint64_t members[16];
	int n;
	uint64_t last_seq;
};

static struct {
	pthread_mutex_t mu;
	struct fchan ch[64];
	int n;
	uint64_t next_id;
} fs = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 100};

static struct fchan *fs_chan(uint64_t id)
{
	for (int i = 0; i < fs.n; i++)
		if (fs.ch[i].id == id)
			return &fs.ch[i];
	return NULL;
}

static int fs_member(const struct fchan *c, uint64_t u)
{
	for (int i = 0; c && i < c->n; i++)
		if (c->members[i] == u)
			return 1;
	return 0;
}

static void fs_add_member(struct fchan *c, uint64_t u)
{
	if (!fs_member(c, u) && c->n < 16)
		c->members[c->n++] = u;
}

static void fs_del_member(struct fchan *c, uint64_t u)
{
	for (int i = 0; i < c->n; i++)
		if (c->members[i] == u) {
			c->members[i] = c->members[--c->n];
			return;
		}
}

static struct fchan *fs_new(uint64_t id, const char *name, int kind,
                            uint64_t last_seq)
{
	struct fchan *c = &fs.ch[fs.n++];
	memset(c, 0, sizeof *c);
	c->id = id;
	snprintf(c->name, sizeof c->name, "%s", name);
	c->kind = kind;
	c->last_seq = last_seq;
	return c;
}

static void fs_reset(void)
{
	struct fchan *c;
	pthread_mutex_lock(&fs.mu);
	fs.n = 0;
	fs.next_id = 100;
	c = fs_new(10, "general", CHAT__CHANNEL_KIND__KIND_GROUP, 1200);
	fs_add_member(c, ALICE);
	fs_add_member(c, BOB);
	c = fs_new(20, "", CHAT__CHANNEL_KIND__KIND_DM, 0);
	fs_add_member(c, ALICE);
	fs_add_member(c, BOB);
	c = fs_new(30, "random", CHAT__CHANNEL_KIND__KIND_GROUP, 3);
	fs_add_member(c, BOB);
	c = fs_new(40, "slow", CHAT__CHANNEL_KIND__KIND_GROUP, 0);
	fs_add_member(c, DAVE);
	c = fs_new(60, "big", CHAT__CHANNEL_KIND__KIND_GROUP, 6000);
	fs_add_member(c, ALICE);
	pthread_mutex_unlock(&fs.mu);
}

static uint64_t user_by_name(const char *n)
{
	for (int i = 1; i < NUSERS; i++)
		if (!strcmp(names[i], n))
			return (uint64_t)i;
	return 0;
}

static Chat__ChannelInfo *info(chat_arena *a, const struct fchan *c,
                               uint64_t user)
{
	Chat__ChannelInfo *ci = (Chat__ChannelInfo *)chat_arena_msg(
	    a, &chat__channel_info__descriptor);
	ci->id = c->id;
	ci->name = chat_arena_strdup(a, c->name);
	ci->kind = (Chat__ChannelKind)c->kind;
	ci->last_seq = c->last_seq;
	ci->unread = c->last_seq;
	ci->member_count = (uint32_t)c->n;
	if (c->kind == CHAT__CHANNEL_KIND__KIND_DM) {
		for (int i = 0; i < c->n; i++)
			if (c->members[i] != user) {
				ci->dm_peer_id = c->members[i];
				ci->dm_peer = (char *)names[c->members[i]];
			}
	}
	return ci;
}

static int s_list(void *arg, chat_rpc_call *call)
{
	const Chat__UserReq *in = (const void *)call->in;
	Chat__ChannelList *out = (void *)call->out;
	if (in->user_id == FRANK) /* frank's store shard is down */
		return chat_rpc_fail(call, CHAT_UNAVAILABLE, "shard offline");
	pthread_mutex_lock(&fs.mu);
	out->channels = (Chat__ChannelInfo **)chat_arena_ptrs(call->arena, 64);
	for (int i = 0; i < fs.n; i++)
		if (fs_member(&fs.ch[i], in->user_id))
			out->channels[out->n_channels++] =
			    info(call->arena, &fs.ch[i], in->user_id);
	pthread_mutex_unlock(&fs.mu);
	return CHAT_OK;
}

static int s_create(void *arg, chat_rpc_call *call)
{
	const Chat__StoreCreateChannelReq *in = (const void *)call->in;
	struct fchan *c;
	int st = CHAT_OK;
	pthread_mutex_lock(&fs.mu);
	c = fs_new(fs.next_id++, in->name, CHAT__CHANNEL_KIND__KIND_GROUP, 0);
	fs_add_member(c, in->user_id);
	for (size_t i = 0; i < in->n_members; i++) {
		uint64_t u = user_by_name(in->members[i]);
		if (!u) {
			fs.n--;
			st = chat_rpc_fail(call, CHAT_NOT_FOUND, "no user %s",
			                   in->members[i]);
			goto out;
		}
		fs_add_member(c, u);
	}
	*(Chat__ChannelInfo *)call->out = *info(call->arena, c, in->user_id);
out:
	pthread_mutex_unlock(&fs.mu);
	return st;
}

static int s_open_dm(void *arg, chat_rpc_call *call)
{
	const Chat__StoreOpenDmReq *in = (const void *)call->in;
	uint64_t peer = user_by_name(in->peer_name);
	struct fchan *c = NULL;
	if (!peer)
		return chat_rpc_fail(call, CHAT_NOT_FOUND, "no user %s",
		                     in->peer_name);
	pthread_mutex_lock(&fs.mu);
	for (int i = 0; i < fs.n && !c; i++)
		if (fs.ch[i].kind == CHAT__CHANNEL_KIND__KIND_DM &&
		    fs_member(&fs.ch[i], in->user_id) &&
		    fs_member(&fs.ch[i], peer))
			c = &fs.ch[i];
	if (!c) {
		c = fs_new(fs.next_id++, "", CHAT__CHANNEL_KIND__KIND_DM, 0);
		fs_add_member(c, in->user_id);
		fs_add_member(c, peer);
	}
	*(Chat__ChannelInfo *)call->out = *info(call->arena, c, in->user_id);
	pthread_mutex_unlock(&fs.mu);
	return CHAT_OK;
}

static int s_join(void *arg, chat_rpc_call *call)
{
	const Chat__MembershipReq *in = (const void *)call->in;
	struct fchan *c;
	int st = CHAT_OK;
	pthread_mutex_lock(&fs.mu);
	c = fs_chan(in->channel_id);
	if (!c)
		st = chat_rpc_fail(call, CHAT_NOT_FOUND, "no channel %" PRIu64,
		                   in->channel_id);
	else if (c->kind == CHAT__CHANNEL_KIND__KIND_DM)
		st = chat_rpc_fail(call, CHAT_PERMISSION_DENIED,
		                   "cannot join a DM");
	else {
		fs_add_member(c, in->user_id);
		*(Chat__ChannelInfo *)call->out =
		    *info(call->arena, c, in->user_id);
	}
	pthread_mutex_unlock(&fs.mu);
	return st;
}

static int s_leave(void *arg, chat_rpc_call *call)
{
	const Chat__MembershipReq *in = (const void *)call->in;
	struct fchan *c;
	int st = CHAT_OK;
	pthread_mutex_lock(&fs.mu);
	c = fs_chan(in->channel_id);
	if (!fs_member(c, in->user_id))
		st = chat_rpc_fail(call, CHAT_FAILED_PRECONDITION,
		                   "not a member");
	else
		fs_del_member(c, in->user_id);
	pthread_mutex_unlock(&fs.mu);
	return st;
}

static Chat__Message *fake_msg(chat_arena *a, uint64_t ch, uint64_t seq)
{
	Chat__Message *m = (Chat__Message *)chat_arena_msg(
	    a, &chat__message__descriptor);
	m->channel_id = ch;
	m->seq = seq;
	m->sender_id = BOB;
	m->sender_name = (char *)names[BOB];
	m->client_msg_id = chat_arena_printf(a, "c%" PRIu64, seq);
	m->body = chat_arena_printf(a, "message %" PRIu64, seq);
	return m;
}

static atomic_int history_calls;

static int s_history(void *arg, chat_rpc_call *call)
{
	const Chat__StoreHistoryReq *in = (const void *)call->in;
	Chat__HistoryPage *out = (void *)call->out;
	struct fchan *c;
	uint64_t lo, hi, last, lim = in->limit ? in->limit : 50;

	atomic_fetch_add(&history_calls, 1);
	if (in->channel_id == 66)
		return chat_rpc_fail(call, CHAT_UNAVAILABLE, "store is down");
	pthread_mutex_lock(&fs.mu);
	c = fs_chan(in->channel_id);
	if (!fs_member(c, in->user_id)) {
		pthread_mutex_unlock(&fs.mu);
		return chat_rpc_fail(call, CHAT_PERMISSION_DENIED,
		                     "not a member of channel %" PRIu64,
		                     in->channel_id);
	}
	last = c->last_seq;
	pthread_mutex_unlock(&fs.mu);
	if (in->direction == CHAT__HISTORY_REQ__DIRECTION__AFTER) {
		lo = in->anchor_seq + 1;
		hi = in->anchor_seq + lim < last ? in->anchor_seq + lim : last;
		out->more = hi < last;
	} else {
		uint64_t a = in->anchor_seq && in->anchor_seq <= last + 1
		                 ? in->anchor_seq
		                 : last + 1;
		hi = a - 1;
		lo = a > lim ? a - lim : 1;
		out->more = lo > 1;
	}
	out->channel_id = in->channel_id;
	out->last_seq = last;
	if (hi >= lo) {
		out->messages = (Chat__Message **)chat_arena_ptrs(
		    call->arena, (size_t)(hi - lo + 1));
		for (uint64_t s = lo; s <= hi; s++)
			out->messages[out->n_messages++] =
			    fake_msg(call->arena, in->channel_id, s);
	}
	return CHAT_OK;
}

static int s_mark_read(void *arg, chat_rpc_call *call)
{
	const Chat__StoreMarkReadReq *in = (const void *)call->in;
	Chat__ReadReceipt *out = (void *)call->out;
	out->channel_id = in->channel_id;
	out->user_id = in->user_id;
	out->user_name = (char *)names[in->user_id < NUSERS ? in->user_id : 0];
	out->seq = in->seq;
	return CHAT_OK;
}

static void users_of(chat_arena *a, Chat__UserList *out, const uint64_t *ids,
                     int n)
{
	out->users = (Chat__User **)chat_arena_ptrs(a, (size_t)n + 1);
	for (int i = 0; i < n; i++) {
		Chat__User *u = (Chat__User *)chat_arena_msg(
		    a, &chat__user__descriptor);
		u->id = ids[i];
		u->name = (char *)names[ids[i]];
		out->users[out->n_users++] = u;
	}
}

static int s_members(void *arg, chat_rpc_call *call)
{
	const Chat__MembershipReq *in = (const void *)call->in;
	struct fchan *c;
	int st = CHAT_OK;
	pthread_mutex_lock(&fs.mu);
	c = fs_chan(in->channel_id);
	if (!fs_member(c, in->user_id))
		st = chat_rpc_fail(call, CHAT_PERMISSION_DENIED,
		                   "not a member");
	else
		users_of(call->arena, (Chat__UserList *)call->out, c->members,
		         c->n);
	pthread_mutex_unlock(&fs.mu);
	return st;
}

static int s_peers(void *arg, chat_rpc_call *call)
{
	const Chat__UserReq *in = (const void *)call->in;
	uint64_t ids[NUSERS];
	int n = 0;
	pthread_mutex_lock(&fs.mu);
	for (uint64_t u = 1; u < NUSERS; u++) {
		if (u == in->user_id)
			continue;
		for (int i = 0; i < fs.n; i++)
			if (fs_member(&fs.ch[i], u) &&
			    fs_member(&fs.ch[i], in->user_id)) {
				ids[n++] = u;
				break;
			}
	}
	pthread_mutex_unlock(&fs.mu);
	users_of(call->arena, (Chat__UserList *)call->out, ids, n);
	return CHAT_OK;
}

static const chat_rpc_fn store_fns[13] = {
    NULL,   NULL,     s_create,    s_open_dm, s_join,   s_leave, NULL,
    s_list, s_history, s_mark_read, s_members, s_peers, NULL,
};

/* ------------------------------------------------------------------ */
/* The fake presence                                                   */

static atomic_int sessions_up, sessions_down, set_status_calls;

/* Session ids seen going up and down (for per-session checks). */
static struct {
	pthread_mutex_t mu;
	uint64_t ids[2][1024];
	int n[2];
} pres_seen = {PTHREAD_MUTEX_INITIALIZER, {{0}}, {0, 0}};

static void seen_add(int down, uint64_t sid)
{
	pthread_mutex_lock(&pres_seen.mu);
	if (pres_seen.n[down] < 1024)
		pres_seen.ids[down][pres_seen.n[down]++] = sid;
	pthread_mutex_unlock(&pres_seen.mu);
}

static int seen_count(int down, uint64_t sid)
{
	int k = 0;
	pthread_mutex_lock(&pres_seen.mu);
	for (int i = 0; i < pres_seen.n[down]; i++)
		k += pres_seen.ids[down][i] == sid;
	pthread_mutex_unlock(&pres_seen.mu);
	return k;
}
static atomic_int status_of[NUSERS];

static Chat__PresenceUpdate *pupdate(chat_arena *a, uint64_t u)
{
	Chat__PresenceUpdate *p = (Chat__PresenceUpdate *)chat_arena_msg(
	    a, &chat__presence_update__descriptor);
	p->user_id = u;
	p->user_name = (char *)names[u < NUSERS ? u : 0];
	p->status = (Chat__Status)(u < NUSERS ? atomic_load(&status_of[u]) : 0);
	p->last_seen_ms = 1234;
	return p;
}

static int p_up(void *arg, chat_rpc_call *call)
{
	const Chat__SessionReq *in = (const void *)call->in;
	atomic_fetch_add(&sessions_up, 1);
	seen_add(0, in->session_id);
	if (in->session_id == 0 || strcmp(in->edge_id, "") == 0)
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "bad session");
	*(Chat__PresenceUpdate *)call->out = *pupdate(call->arena, in->user_id);
	return CHAT_OK;
}

static int p_down(void *arg, chat_rpc_call *call)
{
	const Chat__SessionReq *in = (const void *)call->in;
	atomic_fetch_add(&sessions_down, 1);
	seen_add(1, in->session_id);
	*(Chat__PresenceUpdate *)call->out = *pupdate(call->arena, in->user_id);
	return CHAT_OK;
}

static int p_set(void *arg, chat_rpc_call *call)
{
	const Chat__PresenceSetReq *in = (const void *)call->in;
	atomic_fetch_add(&set_status_calls, 1);
	if (in->user_id < NUSERS)
		atomic_store(&status_of[in->user_id], (int)in->status);
	*(Chat__PresenceUpdate *)call->out = *pupdate(call->arena, in->user_id);
	return CHAT_OK;
}

static int p_query(void *arg, chat_rpc_call *call)
{
	const Chat__PresenceQuery *in = (const void *)call->in;
	Chat__PresenceList *out = (void *)call->out;
	out->users = (Chat__PresenceUpdate **)chat_arena_ptrs(
	    call->arena, in->n_user_ids + 1);
	for (size_t i = 0; i < in->n_user_ids; i++)
		out->users[out->n_users++] =
		    pupdate(call->arena, in->user_ids[i]);
	return CHAT_OK;
}

static const chat_rpc_fn presence_fns[4] = {p_up, p_down, p_set, p_query};

/* ------------------------------------------------------------------ */
/* The fake dispatcher: forwards Publish to the edge, like the real one */

static chat_rpc_client *edge_client;
static atomic_int publishes;

static int d_publish(void *arg, chat_rpc_call *call)
{
	Chat__Empty *out = NULL;
	char reason[200];
	atomic_fetch_add(&publishes, 1);
	return chat_rpc_invoke(edge_client, &chat__edge__descriptor, "Deliver",
	                       call->in, call->arena, (ProtobufCMessage **)&out,
	                       2000, reason, sizeof reason);
}

static const chat_rpc_fn dispatcher_fns[1] = {d_publish};

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

#define STORE_URL "inproc://edge-test-store"
#define PRESENCE_URL "inproc://edge-test-presence"
#define DISPATCHER_URL "inproc://edge-test-dispatcher"
#define EDGE_URL "inproc://edge-test-edge"
#define EDGE2_URL "inproc://edge-test-edge2"
#define EDGE3_URL "inproc://edge-test-edge3"

static struct {
	chat_kafka_mock *kafka;
	chat_routing *routing;
	chat_rpc_server *store, *presence, *dispatcher;
	edge *e;
	int port;
	rd_kafka_t *consumer;
	/* ingress records seen so far (packed) */
	struct rec {
		uint8_t key[8];
		size_t keylen;
		uint8_t *val;
		size_t len;
	} recs[256];
	int nrecs;
} g;

static chat_rpc_server *fake(const char *name, const char *url,
                             const ProtobufCServiceDescriptor *d,
                             const chat_rpc_fn *fns, size_t n_fns)
{
	char err[256];
	chat_rpc_server *s = chat_rpc_server_new(name, name, 4);
	if (!s || chat_rpc_server_add(s, d, fns, n_fns, NULL) ||
	    chat_rpc_server_listen(s, url, NULL, err, sizeof err) ||
	    chat_rpc_server_start(s)) {
		fprintf(stderr, "fake %s: %s\n", name, err);
		chat_rpc_server_free(s);
		return NULL;
	}
	return s;
}

static void base_config(edge_config *c, const char *id, const char *rpc)
{
	memset(c, 0, sizeof *c);
	c->edge_id = id;
	c->host = "127.0.0.1";
	c->port = 0;
	c->rpc_url = rpc;
	c->store_url = STORE_URL;
	c->presence_url = PRESENCE_URL;
	c->dispatcher_url = DISPATCHER_URL;
	c->kafka_bootstrap = chat_kafka_mock_bootstraps(g.kafka);
	c->jwt_key = KEY;
	c->jwt_key_len = KEYLEN;
	c->routing = g.routing;
	c->send_rate = 20;
	c->send_burst = 5;
}

static int group_setup(void **state)
{
	char err[256];
	edge_config cfg;
	rd_kafka_conf_t *kc;
	rd_kafka_topic_partition_list_t *parts;

	(void)state;
	chat_log_set_level(getenv("EDGE_TEST_DEBUG") ? "debug" : "warn");
	if (chat_auth_init() != 0)
		return -1;
	fs_reset();
	for (int u = 0; u < NUSERS; u++)
		atomic_store(&status_of[u], u >= 1 && u <= 4
		                                ? CHAT__STATUS__STATUS_ONLINE
		                                : CHAT__STATUS__STATUS_AWAY);
	g.kafka = chat_kafka_mock_new(1, 4, err, sizeof err);
	if (!g.kafka) {
		fprintf(stderr, "mock: %s\n", err);
		return -1;
	}
	g.routing = chat_routing_mem_new();
	g.store = fake("store", STORE_URL, &chat__store__descriptor,
	               CHAT_RPC_TABLE(store_fns));
	g.presence = fake("presence", PRESENCE_URL, &chat__presence__descriptor,
	                  CHAT_RPC_TABLE(presence_fns));
	g.dispatcher = fake("dispatcher", DISPATCHER_URL,
	                    &chat__dispatcher__descriptor,
	                    CHAT_RPC_TABLE(dispatcher_fns));
	if (!g.routing || !g.store || !g.presence || !g.dispatcher)
		return -1;
	edge_client = chat_rpc_client_new(EDGE_URL, err, sizeof err);
	if (!edge_client)
		return -1;
	base_config(&cfg, "edge-t1", EDGE_URL);
	if (edge_start(&cfg, &g.e, err, sizeof err) != 0) {
		fprintf(stderr, "edge_start: %s\n", err);
		return -1;
	}
	g.port = edge_port(g.e);

	kc = rd_kafka_conf_new();
	if (rd_kafka_conf_set(kc, "bootstrap.servers",
	                      chat_kafka_mock_bootstraps(g.kafka), err,
	                      sizeof err) ||
	    rd_kafka_conf_set(kc, "group.id", "edge-test", err, sizeof err) ||
	    rd_kafka_conf_set(kc, "enable.auto.commit", "false", err,
	                      sizeof err) ||
	    rd_kafka_conf_set(kc, "fetch.wait.max.ms", "10", err, sizeof err))
		return -1;
	g.consumer = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof err);
	if (!g.consumer)
		return -1;
	rd_kafka_poll_set_consumer(g.consumer);
	parts = rd_kafka_topic_partition_list_new(4);
	for (int p = 0; p < 4; p++)
		rd_kafka_topic_partition_list_add(parts, CHAT_TOPIC_INGRESS, p)
		    ->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(g.consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	edge_stop(g.e);
	if (g.consumer) {
		rd_kafka_consumer_close(g.consumer);
		rd_kafka_destroy(g.consumer);
	}
	for (int i = 0; i < g.nrecs; i++)
		free(g.recs[i].val);
	chat_rpc_client_free(edge_client);
	chat_rpc_server_free(g.dispatcher);
	chat_rpc_server_free(g.presence);
	chat_rpc_server_free(g.store);
	chat_routing_free(g.routing);
	chat_kafka_mock_free(g.kafka);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Client helpers                                                      */

static char *token_for(uint64_t user, int64_t ttl)
{
	char *t = chat_jwt_issue(KEY, KEYLEN, user, names[user], ttl);
	assert_non_null(t);
	return t;
}

static int64_t wall_ms(void)
{
	return chat_now_ms();
}

static void wait_until_ms(int (*cond)(void *), void *arg, const char *what,
                          int ms)
{
	int64_t deadline = chat_mono_us() + (int64_t)ms * 1000;
	while (!cond(arg)) {
		struct timespec ts = {0, 5 * 1000 * 1000};
		if (chat_mono_us() > deadline)
			fail_msg("timed out waiting for %s", what);
		nanosleep(&ts, NULL);
	}
}

static void wait_until(int (*cond)(void *), void *arg, const char *what)
{
	wait_until_ms(cond, arg, what, WAIT_MS);
}

struct sess_wait {
	edge *e;
	int n;
};

static int sessions_are(void *arg)
{
	struct sess_wait *w = arg;
	return edge_sessions(w->e) == w->n;
}

static void wait_sessions(edge *e, int n)
{
	struct sess_wait w = {e, n};
	wait_until(sessions_are, &w, "the session count");
}

static Chat__ServerFrame *next_frame(wsc *c, int timeout_ms)
{
	uint8_t *d = NULL;
	size_t n = 0;
	int code = 0;
	char reason[128];
	Chat__ServerFrame *f;
	int op = wsc_recv(c, timeout_ms, &d, &n, &code, reason, sizeof reason);
	if (op != WSC_BINARY) {
		free(d);
		return NULL;
	}
	f = chat__server_frame__unpack(NULL, n, d);
	free(d);
	assert_non_null(f);
	return f;
}

static Chat__ServerFrame *expect(wsc *c, int kind)
{
	Chat__ServerFrame *f = next_frame(c, WAIT_MS);
	if (!f)
		fail_msg("no frame (wanted kind %d)", kind);
	if ((int)f->kind_case != kind) {
		int k = f->kind_case;
		const char *why = k == CHAT__SERVER_FRAME__KIND_ERROR
		                      ? f->error->reason
		                      : "";
		chat__server_frame__free_unpacked(f, NULL);
		fail_msg("got kind %d (%s), wanted %d", k, why, kind);
	}
	return f;
}

static void expect_close(wsc *c, int code, const char *reason)
{
	int64_t deadline = chat_mono_us() + WAIT_MS * 1000;
	for (;;) {
		uint8_t *d = NULL;
		size_t n;
		int got = 0;
		char why[200] = "";
		int op = wsc_recv(c, WAIT_MS, &d, &n, &got, why, sizeof why);
		free(d);
		if (op == WSC_CLOSE) {
			assert_int_equal(got, code);
			if (reason)
				assert_string_equal(why, reason);
			return;
		}
		if (op < 0 || chat_mono_us() > deadline)
			fail_msg("no close frame (wanted %d)", code);
	}
}

static void send_frame(wsc *c, const Chat__ClientFrame *f)
{
	size_t n = chat__client_frame__get_packed_size(f);
	uint8_t *b = malloc(n + 1);
	chat__client_frame__pack(f, b);
	assert_int_equal(wsc_send(c, b, n), 0);
	free(b);
}

static void send_ping(wsc *c, uint64_t req_id, int64_t t)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__PingReq p = CHAT__PING_REQ__INIT;
	p.client_time_ms = t;
	f.req_id = req_id;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_PING;
	f.ping = &p;
	send_frame(c, &f);
}

/* A ping answered by the very next frame: nothing else was queued. */
static void ping_pong(wsc *c, uint64_t req_id)
{
	Chat__ServerFrame *f;
	send_ping(c, req_id, 42);
	f = expect(c, CHAT__SERVER_FRAME__KIND_PONG);
	assert_int_equal(f->req_id, req_id);
	assert_int_equal(f->pong->client_time_ms, 42);
	chat__server_frame__free_unpacked(f, NULL);
}

static void send_msg(wsc *c, uint64_t req_id, uint64_t channel,
                     const char *cmid, const char *body)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__SendReq s = CHAT__SEND_REQ__INIT;
	s.channel_id = channel;
	s.client_msg_id = (char *)cmid;
	s.body = (char *)body;
	f.req_id = req_id;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_SEND;
	f.send = &s;
	send_frame(c, &f);
}

static void expect_error(wsc *c, uint64_t req_id, int code,
                         const char *reason)
{
	Chat__ServerFrame *f = expect(c, CHAT__SERVER_FRAME__KIND_ERROR);
	assert_int_equal(f->req_id, req_id);
	assert_int_equal(f->error->code, code);
	if (reason)
		assert_string_equal(f->error->reason, reason);
	assert_int_equal(!!f->error->retryable, chat_status_retryable(code));
	chat__server_frame__free_unpacked(f, NULL);
}

static void expect_ack(wsc *c, uint64_t req_id, uint64_t channel,
                       const char *cmid)
{
	Chat__ServerFrame *f = expect(c, CHAT__SERVER_FRAME__KIND_SEND_ACK);
	assert_int_equal(f->req_id, req_id);
	assert_int_equal(f->send_ack->channel_id, channel);
	assert_string_equal(f->send_ack->client_msg_id, cmid);
	chat__server_frame__free_unpacked(f, NULL);
}

/* Open a session on port for user; Welcome and ChannelList are read and
 * checked, the channel list returned when wanted. */
static wsc *open_on(int port, uint64_t user, Chat__ServerFrame **list)
{
	char path[1024], body[256];
	char *tok = token_for(user, 3600);
	Chat__ServerFrame *f;
	wsc *c = NULL;
	int st;

	snprintf(path, sizeof path, "/ws?token=%s", tok);
	free(tok);
	st = wsc_connect(port, path, NULL, &c, body, sizeof body);
	if (st != 101)
		fail_msg("upgrade answered %d: %s", st, body);
	f = expect(c, CHAT__SERVER_FRAME__KIND_WELCOME);
	assert_int_equal(f->req_id, 0);
	assert_int_equal(f->welcome->user_id, user);
	assert_string_equal(f->welcome->user_name, names[user]);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect(c, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST);
	assert_int_equal(f->req_id, 0);
	if (list)
		*list = f;
	else
		chat__server_frame__free_unpacked(f, NULL);
	return c;
}

static wsc *open_session(uint64_t user)
{
	return open_on(g.port, user, NULL);
}

static void deliver(const char *url, Chat__Event **evs, size_t n)
{
	Chat__EventBatch b = CHAT__EVENT_BATCH__INIT;
	chat_arena *a = chat_arena_new();
	chat_rpc_client *c = edge_client;
	ProtobufCMessage *out = NULL;
	char err[256];
	int st;

	if (strcmp(url, EDGE_URL) != 0)
		c = chat_rpc_client_new(url, err, sizeof err);
	assert_non_null(c);
	b.n_events = n;
	b.events = evs;
	st = chat_rpc_invoke(c, &chat__edge__descriptor, "Deliver", &b.base, a,
	                     &out, 3000, err, sizeof err);
	if (st != CHAT_OK)
		fail_msg("Deliver: %s", err);
	if (c != edge_client)
		chat_rpc_client_free(c);
	chat_arena_free(a);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static void test_http(void **state)
{
	char body[256];
	(void)state;
	assert_int_equal(wsc_http_get(g.port, "/healthz", body, sizeof body),
	                 200);
	assert_string_equal(body, "ok");
	assert_int_equal(wsc_http_get(g.port, "/nope", body, sizeof body), 404);
	assert_int_equal(wsc_http_get(g.port, "/ws", body, sizeof body), 404);
	assert_string_equal(body, "not found");
	{
		char want[64];
		snprintf(want, sizeof want, "ws://127.0.0.1:%d/ws", g.port);
		assert_string_equal(edge_public_url(g.e), want);
	}
}

static char *b64url(const char *s)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	                          "qrstuvwxyz0123456789-_";
	size_t n = strlen(s), o = 0;
	char *out = malloc(n * 2 + 4);
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = u[i] << 16;
		if (i + 1 < n)
			v |= u[i + 1] << 8;
		if (i + 2 < n)
			v |= u[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0';
	return out;
}

static void refused(const char *path, const char *hdr, int status,
                    const char *reason)
{
	char body[512];
	wsc *c = NULL;
	int st = wsc_connect(g.port, path, hdr, &c, body, sizeof body);
	wsc_free(c);
	assert_int_equal(st, status);
	if (reason && !strstr(body, reason))
		fail_msg("body '%s' lacks '%s'", body, reason);
}

static void test_auth(void **state)
{
	char path[2048], hdr[2048], pl[512];
	char *tok, *h64, *p64;
	jwt_t *j = NULL;
	wsc *c = NULL;
	static const unsigned char other[] = "ffffffffffffffffffffffffffffffff";
	(void)state;

	refused("/ws", NULL, 401, "missing token");
	refused("/ws?token=", NULL, 401, "missing token");
	refused("/ws?token=garbage", NULL, 401, "invalid token");

	tok = chat_jwt_issue(other, 32, ALICE, "alice", 3600);
	snprintf(path, sizeof path, "/ws?token=%s", tok);
	free(tok);
	refused(path, NULL, 401, "invalid token");

	tok = token_for(ALICE, -120);
	snprintf(path, sizeof path, "/ws?token=%s", tok);
	free(tok);
	refused(path, NULL, 401, "token expired");

	/* alg: none with a valid-looking payload */
	h64 = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}");
	snprintf(pl, sizeof pl,
	         "{\"sub\":\"1\",\"name\":\"alice\",\"iss\":\"chat-api\","
	         "\"aud\":\"chat-edge\",\"exp\":%lld}",
	         (long long)(time(NULL) + 3600));
	p64 = b64url(pl);
	snprintf(path, sizeof path, "/ws?token=%s.%s.", h64, p64);
	free(h64);
	free(p64);
	refused(path, NULL, 401, NULL);

	/* HS512 with the right key: wrong algorithm */
	assert_int_equal(jwt_new(&j), 0);
	jwt_add_grant(j, "sub", "1");
	jwt_add_grant(j, "name", "alice");
	jwt_add_grant(j, "iss", CHAT_JWT_ISSUER);
	jwt_add_grant(j, "aud", CHAT_JWT_AUDIENCE);
	jwt_add_grant_int(j, "exp", (long)time(NULL) + 3600);
	jwt_set_alg(j, JWT_ALG_HS512, KEY, KEYLEN);
	tok = jwt_encode_str(j);
	jwt_free(j);
	snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", tok);
	free(tok);
	refused("/ws", hdr, 401, "wrong algorithm");

	/* a good token on the wrong path */
	tok = token_for(ALICE, 3600);
	snprintf(path, sizeof path, "/other?token=%s", tok);
	refused(path, NULL, 404, "not found");

	/* a good token as a bearer header */
	snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", tok);
	free(tok);
	assert_int_equal(wsc_connect(g.port, "/ws", hdr, &c, NULL, 0), 101);
	{
		Chat__ServerFrame *f;
		f = expect(c, CHAT__SERVER_FRAME__KIND_WELCOME);
		chat__server_frame__free_unpacked(f, NULL);
	}
	wsc_free(c);
	wait_sessions(g.e, 0);
}

static void test_welcome(void **state)
{
	char path[1024];
	char *tok = token_for(ALICE, 3600);
	Chat__ServerFrame *f;
	wsc *c = NULL;
	int seen = 0;
	(void)state;

	snprintf(path, sizeof path, "/ws?token=%s", tok);
	free(tok);
	assert_int_equal(wsc_connect(g.port, path, NULL, &c, NULL, 0), 101);
	f = expect(c, CHAT__SERVER_FRAME__KIND_WELCOME);
	assert_int_equal(f->req_id, 0);
	assert_int_equal(f->welcome->user_id, ALICE);
	assert_string_equal(f->welcome->user_name, "alice");
	assert_true(f->welcome->session_id != 0);
	assert_string_equal(f->welcome->edge_id, "edge-t1");
	assert_int_equal(f->welcome->max_frame_bytes, 65536);
	assert_int_equal(f->welcome->max_body_bytes, 4000);
	assert_int_equal(f->welcome->status, CHAT__STATUS__STATUS_ONLINE);
	assert_true(llabs(f->welcome->server_time_ms - wall_ms()) < 10000);
	chat__server_frame__free_unpacked(f, NULL);

	f = expect(c, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST);
	assert_int_equal(f->req_id, 0);
	assert_int_equal(f->channel_list->n_channels, 3);
	for (size_t i = 0; i < f->channel_list->n_channels; i++) {
		Chat__ChannelInfo *ci = f->channel_list->channels[i];
		if (ci->id == 20) {
			assert_int_equal(ci->kind, CHAT__CHANNEL_KIND__KIND_DM);
			assert_string_equal(ci->dm_peer, "bob");
			assert_int_equal(ci->dm_peer_status,
			                 CHAT__STATUS__STATUS_ONLINE);
			seen |= 1;
		} else if (ci->id == 10) {
			assert_int_equal(ci->last_seq, 1200);
			seen |= 2;
		}
	}
	assert_int_equal(seen, 3);
	chat__server_frame__free_unpacked(f, NULL);
	wsc_free(c);

	/* erin's status comes from presence */
	tok = token_for(ERIN, 3600);
	snprintf(path, sizeof path, "/ws?token=%s", tok);
	free(tok);
	assert_int_equal(wsc_connect(g.port, path, NULL, &c, NULL, 0), 101);
	f = expect(c, CHAT__SERVER_FRAME__KIND_WELCOME);
	assert_int_equal(f->welcome->status, CHAT__STATUS__STATUS_AWAY);
	chat__server_frame__free_unpacked(f, NULL);
	wsc_free(c);
	wait_sessions(g.e, 0);
}

static void test_ping(void **state)
{
	wsc *c = open_session(ALICE);
	Chat__ServerFrame *f;
	(void)state;
	send_ping(c, 7, 1234567);
	f = expect(c, CHAT__SERVER_FRAME__KIND_PONG);
	assert_int_equal(f->req_id, 7);
	assert_int_equal(f->pong->client_time_ms, 1234567);
	assert_true(llabs(f->pong->server_time_ms - wall_ms()) < 10000);
	chat__server_frame__free_unpacked(f, NULL);
	wsc_free(c);
	wait_sessions(g.e, 0);
}

/* The ingress record with this client_msg_id, from the log. */
static Chat__IngressRecord *find_ingress(const char *cmid, uint8_t key[8])
{
	int64_t deadline = chat_mono_us() + WAIT_MS * 1000;
	for (;;) {
		rd_kafka_message_t *m;
		for (int i = 0; i < g.nrecs; i++) {
			Chat__IngressRecord *r = chat__ingress_record__unpack(
			    NULL, g.recs[i].len, g.recs[i].val);
			assert_non_null(r);
			if (!strcmp(r->client_msg_id, cmid)) {
				assert_int_equal(g.recs[i].keylen, 8);
				memcpy(key, g.recs[i].key, 8);
				return r;
			}
			chat__ingress_record__free_unpacked(r, NULL);
		}
		if (chat_mono_us() > deadline)
			return NULL;
		m = rd_kafka_consumer_poll(g.consumer, 100);
		if (!m)
			continue;
		if (!m->err && g.nrecs < 256) {
			struct rec *r = &g.recs[g.nrecs++];
			r->keylen = m->key_len <= 8 ? m->key_len : 8;
			memcpy(r->key, m->key, r->keylen);
			r->val = malloc(m->len + 1);
			memcpy(r->val, m->payload, m->len);
			r->len = m->len;
		}
		rd_kafka_message_destroy(m);
	}
}

static void test_send_ack(void **state)
{
	wsc *c = open_session(ALICE);
	Chat__IngressRecord *r;
	uint8_t key[8];
	int64_t before = wall_ms();
	(void)state;

	send_msg(c, 9, 10, "m-ack-1", "hello, world");
	expect_ack(c, 9, 10, "m-ack-1");
	/* The ack came from the delivery report: the record is in the log. */
	r = find_ingress("m-ack-1", key);
	assert_non_null(r);
	assert_int_equal(chat_get_be64(key), 10);
	assert_int_equal(r->channel_id, 10);
	assert_int_equal(r->sender_id, ALICE);
	assert_string_equal(r->sender_name, "alice");
	assert_string_equal(r->body, "hello, world");
	assert_string_equal(r->edge_id, "edge-t1");
	assert_true(r->sent_at_ms >= before - 1000);
	chat__ingress_record__free_unpacked(r, NULL);
	wsc_free(c);
	wait_sessions(g.e, 0);
}

static void test_send_refused(void **state)
{
	wsc *c = open_session(ALICE);
	char big[4002], longid[66];
	Chat__ServerFrame *f;
	int limited = 0;
	(void)state;

	send_msg(c, 1, 30, "x1", "hi");
	f = expect(c, CHAT__SERVER_FRAME__KIND_ERROR);
	assert_int_equal(f->req_id, 1);
	assert_int_equal(f->error->code, CHAT_PERMISSION_DENIED);
	assert_string_equal(f->error->reason, "not a member of channel 30");
	assert_false(f->error->retryable);
	assert_int_equal(f->error->channel_id, 30);
	assert_string_equal(f->error->client_msg_id, "x1");
	chat__server_frame__free_unpacked(f, NULL);

	send_msg(c, 2, 10, "x2", "");
	expect_error(c, 2, CHAT_INVALID_ARGUMENT, "empty message");
	memset(big, 'a', 4001);
	big[4001] = '\0';
	send_msg(c, 3, 10, "x3", big);
	expect_error(c, 3, CHAT_INVALID_ARGUMENT, "message exceeds 4000 bytes");
	big[4000] = '\0'; /* exactly 4000 is fine */
	send_msg(c, 4, 10, "x4", big);
	expect_ack(c, 4, 10, "x4");
	send_msg(c, 5, 10, "x5", "bad \xff utf-8");
	expect_error(c, 5, CHAT_INVALID_ARGUMENT,
	             "message is not valid UTF-8 text");
	send_msg(c, 6, 10, "", "hi");
	expect_error(c, 6, CHAT_INVALID_ARGUMENT,
	             "client_msg_id must be 1..64 bytes");
	memset(longid, 'i', 65);
	longid[65] = '\0';
	send_msg(c, 7, 10, longid, "hi");
	expect_error(c, 7, CHAT_INVALID_ARGUMENT,
	             "client_msg_id must be 1..64 bytes");

	/* burst 5 at 20/s: a quick run of 12 hits the limit, retryably */
	for (int i = 0; i < 12; i++) {
		char id[16];
		snprintf(id, sizeof id, "r%d", i);
		send_msg(c, 100 + (uint64_t)i, 10, id, "fast");
	}
	for (int i = 0; i < 12; i++) {
		f = next_frame(c, WAIT_MS);
		assert_non_null(f);
		if (f->kind_case == CHAT__SERVER_FRAME__KIND_ERROR) {
			Chat__Error *er = f->error;
			assert_int_equal(er->code, CHAT_RESOURCE_EXHAUSTED);
			assert_string_equal(er->reason, "sending too fast");
			assert_true(f->error->retryable);
			limited++;
		} else {
			assert_int_equal(f->kind_case,
			                 CHAT__SERVER_FRAME__KIND_SEND_ACK);
		}
		chat__server_frame__free_unpacked(f, NULL);
	}
	assert_true(limited >= 1);
	ping_pong(c, 99);
	wsc_free(c);
	wait_sessions(g.e, 0);
}

static void test_bad_frames(void **state)
{
	wsc *c = open_session(ALICE);
	Chat__ClientFrame cf = CHAT__CLIENT_FRAME__INIT;
	Chat__SendReq s = CHAT__SEND_REQ__INIT;
	uint8_t buf[256], *big;
	size_t n;
	(void)state;

	/* garbage */
	assert_int_equal(wsc_send(c, "\xff\xff\xff\xff", 4), 0);
	expect_error(c, 0, CHAT_INVALID_ARGUMENT, "malformed ClientFrame");
	ping_pong(c, 1);

	/* truncated protobuf */
	s.channel_id = 10;
	s.client_msg_id = (char *)"t1";
	s.body = (char *)"a body long enough to cut";
	cf.req_id = 5;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_SEND;
	cf.send = &s;
	n = chat__client_frame__pack(&cf, buf);
	assert_int_equal(wsc_send(c, buf, n - 5), 0);
	expect_error(c, 0, CHAT_INVALID_ARGUMENT, "malformed ClientFrame");
	ping_pong(c, 2);

	/* text frame */
	assert_int_equal(wsc_send_frame(c, WSC_TEXT, 1, "{\"ping\":1}", 10), 0);
	expect_error(c, 0, CHAT_INVALID_ARGUMENT,
	             "text frames are not supported; send binary protobuf");
	ping_pong(c, 3);

	/* 70 KiB in one frame, then in three fragments */
	big = calloc(1, 70 * 1024);
	assert_non_null(big);
	assert_int_equal(wsc_send(c, big, 70 * 1024), 0);
	expect_error(c, 0, CHAT_RESOURCE_EXHAUSTED, TOO_BIG);
	ping_pong(c, 4);
	assert_int_equal(wsc_send_frame(c, WSC_BINARY, 0, big, 30 * 1024), 0);
	assert_int_equal(wsc_send_frame(c, 0, 0, big, 30 * 1024), 0);
	assert_int_equal(wsc_send_frame(c, 0, 1, big, 10 * 1024), 0);
	free(big);
	expect_error(c, 0, CHAT_RESOURCE_EXHAUSTED, TOO_BIG);
	ping_pong(c, 5);

	/* no kind, and an unknown field: UNIMPLEMENTED echoing req_id */
	cf.kind_case = CHAT__CLIENT_FRAME__KIND__NOT_SET;
	cf.req_id = 77;
	n = chat__client_frame__pack(&cf, buf);
	assert_int_equal(wsc_send(c, buf, n), 0);
	expect_error(c, 77, CHAT_UNIMPLEMENTED, "unknown request type");
	buf[n] = 0x98; /* field 99, varint: tag 792 */
	buf[n + 1] = 0x06;
	buf[n + 2] = 1;
	assert_int_equal(wsc_send(c, buf, n + 3), 0);
	expect_error(c, 77, CHAT_UNIMPLEMENTED, "unknown request type");

	/* a valid ping in two fragments */
	{
		Chat__PingReq p = CHAT__PING_REQ__INIT;
		Chat__ServerFrame *f;
		p.client_time_ms = 42;
		cf.req_id = 78;
		cf.kind_case = CHAT__CLIENT_FRAME__KIND_PING;
		cf.ping = &p;
		n = chat__client_frame__pack(&cf, buf);
		assert_int_equal(wsc_send_frame(c, WSC_BINARY, 0, buf, 2), 0);
		assert_int_equal(wsc_send_frame(c, 0, 1, buf + 2, n - 2), 0);
		f = expect(c, CHAT__SERVER_FRAME__KIND_PONG);
		assert_int_equal(f->req_id, 78);
		chat__server_frame__free_unpacked(f, NULL);
	}
	ping_pong(c, 6);
	wsc_free(c);
	wait_sessions(g.e, 0);
}

static Chat__Event *msg_event(chat_arena *a, uint64_t channel, uint64_t seq)
{
	Chat__Event *ev;
	ev = (Chat__Event *)chat_arena_msg(a, &chat__event__descriptor);
	ev->channel_id = channel;
	ev->kind_case = CHAT__EVENT__KIND_MESSAGE;
	ev->message = fake_msg(a, channel, seq);
	return ev;
}

static void expect_message(wsc *c, uint64_t channel, uint64_t seq)
{
	Chat__ServerFrame *f = expect(c, CHAT__SERVER_FRAME__KIND_MESSAGE);
	assert_int_equal(f->req_id, 0);
	assert_int_equal(f->message->channel_id, channel);
	assert_int_equal(f->message->seq, seq);
	chat__server_frame__free_unpacked(f, NULL);
}

static void test_deliver(void **state)
{
	wsc *a1 = open_session(ALICE), *a2 = open_session(ALICE);
	wsc *b = open_session(BOB), *cz = open_session(CAROL);
	chat_arena *a = chat_arena_new();
	Chat__Event *ev = msg_event(a, 10, 777);
	uint64_t users[] = {ALICE, BOB};
	(void)state;

	/* by channel and by user: still once per session */
	ev->n_user_ids = 2;
	ev->user_ids = users;
	deliver(EDGE_URL, &ev, 1);
	expect_message(a1, 10, 777);
	expect_message(a2, 10, 777);
	expect_message(b, 10, 777);
	ping_pong(a1, 1);
	ping_pong(a2, 1);
	ping_pong(b, 1);
	ping_pong(cz, 1); /* carol is not in channel 10 */

	/* channel_ids targets, with a skipped user */
	ev = msg_event(a, 0, 778);
	ev->message->channel_id = 10;
	ev->n_channel_ids = 1;
	ev->channel_ids = (uint64_t[]){10};
	ev->skip_user_id = BOB;
	deliver(EDGE_URL, &ev, 1);
	expect_message(a1, 10, 778);
	expect_message(a2, 10, 778);
	ping_pong(a1, 2);
	ping_pong(b, 2);
	ping_pong(cz, 2);
	chat_arena_free(a);
	wsc_free(a1);
	wsc_free(a2);
	wsc_free(b);
	wsc_free(cz);
	wait_sessions(g.e, 0);
}

static Chat__Event *member_event(chat_arena *a, uint64_t channel,
                                 uint64_t user, int kind)
{
	Chat__Event *ev;
	ev = (Chat__Event *)chat_arena_msg(a, &chat__event__descriptor);
	Chat__MemberEvent *m = (Chat__MemberEvent *)chat_arena_msg(
	    a, &chat__member_event__descriptor);
	m->channel_id = channel;
	m->user_id = user;
	m->user_name = (char *)names[user];
	m->kind = (Chat__MemberEvent__Kind)kind;
	ev->channel_id = channel;
	ev->user_ids = chat_arena_alloc(a, sizeof *ev->user_ids);
	ev->user_ids[0] = user;
	ev->n_user_ids = 1;
	ev->kind_case = CHAT__EVENT__KIND_MEMBER;
	ev->member = m;
	return ev;
}

static int list_has(const Chat__ServerFrame *f, uint64_t channel)
{
	for (size_t i = 0; i < f->channel_list->n_channels; i++)
		if (f->channel_list->channels[i]->id == channel)
			return 1;
	return 0;
}

static void test_member_events(void **state)
{
	wsc *cz = open_session(CAROL), *b = open_session(BOB);
	chat_arena *a = chat_arena_new();
	Chat__ServerFrame *f;
	Chat__Event *ev;
	(void)state;

	/* the store added carol to 30, then emitted the event */
	pthread_mutex_lock(&fs.mu);
	fs_add_member(fs_chan(30), CAROL);
	pthread_mutex_unlock(&fs.mu);
	ev = member_event(a, 30, CAROL, CHAT__MEMBER_EVENT__KIND__JOINED);
	deliver(EDGE_URL, &ev, 1);
	f = expect(cz, CHAT__SERVER_FRAME__KIND_MEMBER);
	assert_int_equal(f->member->user_id, CAROL);
	assert_int_equal(f->member->kind, CHAT__MEMBER_EVENT__KIND__JOINED);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect(cz, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST);
	assert_int_equal(f->req_id, 0);
	assert_true(list_has(f, 30));
	chat__server_frame__free_unpacked(f, NULL);
	f = expect(b, CHAT__SERVER_FRAME__KIND_MEMBER); /* bob is in 30 */
	chat__server_frame__free_unpacked(f, NULL);

	/* subscribed: carol may send to 30 and gets its messages */
	send_msg(cz, 1, 30, "carol-1", "hi all");
	expect_ack(cz, 1, 30, "carol-1");
	ev = msg_event(a, 30, 4);
	deliver(EDGE_URL, &ev, 1);
	expect_message(cz, 30, 4);
	expect_message(b, 30, 4);

	/* a repeated JOINED is harmless */
	ev = member_event(a, 30, CAROL, CHAT__MEMBER_EVENT__KIND__JOINED);
	deliver(EDGE_URL, &ev, 1);
	f = expect(cz, CHAT__SERVER_FRAME__KIND_MEMBER);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect(cz, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect(b, CHAT__SERVER_FRAME__KIND_MEMBER);
	chat__server_frame__free_unpacked(f, NULL);

	/* LEFT: delivered first, then unsubscribed */
	pthread_mutex_lock(&fs.mu);
	fs_del_member(fs_chan(30), CAROL);
	pthread_mutex_unlock(&fs.mu);
	ev = member_event(a, 30, CAROL, CHAT__MEMBER_EVENT__KIND__LEFT);
	deliver(EDGE_URL, &ev, 1);
	f = expect(cz, CHAT__SERVER_FRAME__KIND_MEMBER);
	assert_int_equal(f->member->kind, CHAT__MEMBER_EVENT__KIND__LEFT);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect(cz, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST);
	assert_false(list_has(f, 30));
	chat__server_frame__free_unpacked(f, NULL);
	f = expect(b, CHAT__SERVER_FRAME__KIND_MEMBER);
	chat__server_frame__free_unpacked(f, NULL);
	send_msg(cz, 2, 30, "carol-2", "still here?");
	expect_error(cz, 2, CHAT_PERMISSION_DENIED,
	             "not a member of channel 30");
	ev = msg_event(a, 30, 5);
	deliver(EDGE_URL, &ev, 1);
	expect_message(b, 30, 5);
	ping_pong(cz, 3);

	chat_arena_free(a);
	wsc_free(cz);
	wsc_free(b);
	wait_sessions(g.e, 0);
}

static void test_typing(void **state)
{
	wsc *al = open_session(ALICE), *b = open_session(BOB);
	Chat__ClientFrame cf = CHAT__CLIENT_FRAME__INIT;
	Chat__TypingReq t = CHAT__TYPING_REQ__INIT;
	Chat__ServerFrame *f;
	int before;
	(void)state;

	t.channel_id = 10;
	cf.req_id = 3;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_TYPING;
	cf.typing = &t;
	send_frame(al, &cf);
	f = expect(b, CHAT__SERVER_FRAME__KIND_TYPING);
	assert_int_equal(f->req_id, 0);
	assert_int_equal(f->typing->channel_id, 10);
	assert_int_equal(f->typing->user_id, ALICE);
	assert_string_equal(f->typing->user_name, "alice");
	chat__server_frame__free_unpacked(f, NULL);
	/* bob got it, so the edge handled it: alice's next frame is her pong */
	ping_pong(al, 4);

	/* typing where alice is not a member is dropped, unanswered */
	before = atomic_load(&publishes);
	t.channel_id = 30;
	send_frame(al, &cf);
	ping_pong(al, 5);
	assert_int_equal(atomic_load(&publishes), before);
	ping_pong(b, 6);
	wsc_free(al);
	wsc_free(b);
	wait_sessions(g.e, 0);
}

static Chat__ServerFrame *request(wsc *c, Chat__ClientFrame *cf, int kind)
{
	Chat__ServerFrame *f;
	send_frame(c, cf);
	f = expect(c, kind);
	assert_int_equal(f->req_id, cf->req_id);
	return f;
}

static void test_requests(void **state)
{
	wsc *a1 = open_session(ALICE), *a2 = open_session(ALICE);
	Chat__ClientFrame cf = CHAT__CLIENT_FRAME__INIT;
	Chat__CreateChannelReq cc = CHAT__CREATE_CHANNEL_REQ__INIT;
	Chat__OpenDmReq dm = CHAT__OPEN_DM_REQ__INIT;
	Chat__JoinReq jr = CHAT__JOIN_REQ__INIT;
	Chat__LeaveReq lr = CHAT__LEAVE_REQ__INIT;
	Chat__HistoryReq hr = CHAT__HISTORY_REQ__INIT;
	Chat__MarkReadReq mr = CHAT__MARK_READ_REQ__INIT;
	Chat__SetStatusReq sr = CHAT__SET_STATUS_REQ__INIT;
	Chat__WhoReq wr = CHAT__WHO_REQ__INIT;
	Chat__ListChannelsReq lc = CHAT__LIST_CHANNELS_REQ__INIT;
	char bobname[] = "bob", *members[] = {bobname};
	Chat__ServerFrame *f;
	uint64_t proj;
	(void)state;

	/* create: the other session of alice may send at once */
	cc.name = (char *)"proj";
	cc.n_members = 1;
	cc.members = members;
	cf.req_id = 11;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_CREATE_CHANNEL;
	cf.create_channel = &cc;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_CHANNEL);
	proj = f->channel->id;
	assert_true(proj >= 100);
	assert_string_equal(f->channel->name, "proj");
	assert_int_equal(f->channel->kind, CHAT__CHANNEL_KIND__KIND_GROUP);
	chat__server_frame__free_unpacked(f, NULL);
	send_msg(a2, 12, proj, "p-1", "first!");
	expect_ack(a2, 12, proj, "p-1");

	/* leave: both sessions lose it */
	lr.channel_id = proj;
	cf.req_id = 13;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_LEAVE;
	cf.leave = &lr;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_OK);
	chat__server_frame__free_unpacked(f, NULL);
	send_msg(a2, 14, proj, "p-2", "gone?");
	expect_error(a2, 14, CHAT_PERMISSION_DENIED, NULL);
	cf.req_id = 15;
	send_frame(a1, &cf); /* leaving again: the store's error */
	f = expect(a1, CHAT__SERVER_FRAME__KIND_ERROR);
	assert_int_equal(f->req_id, 15);
	assert_int_equal(f->error->code, CHAT_FAILED_PRECONDITION);
	assert_int_equal(f->error->channel_id, proj);
	chat__server_frame__free_unpacked(f, NULL);

	/* open_dm fills the peer's status */
	dm.user_name = (char *)"carol";
	cf.req_id = 16;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_OPEN_DM;
	cf.open_dm = &dm;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_CHANNEL);
	assert_int_equal(f->channel->kind, CHAT__CHANNEL_KIND__KIND_DM);
	assert_string_equal(f->channel->dm_peer, "carol");
	assert_int_equal(f->channel->dm_peer_status,
	                 CHAT__STATUS__STATUS_ONLINE);
	chat__server_frame__free_unpacked(f, NULL);
	dm.user_name = (char *)"nobody";
	cf.req_id = 17;
	send_frame(a1, &cf);
	expect_error(a1, 17, CHAT_NOT_FOUND, "no user nobody");

	/* join: twice is fine; an unknown channel is NOT_FOUND */
	jr.channel_id = 10;
	cf.req_id = 18;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_JOIN;
	cf.join = &jr;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_CHANNEL);
	assert_int_equal(f->channel->id, 10);
	chat__server_frame__free_unpacked(f, NULL);
	jr.channel_id = 999;
	cf.req_id = 19;
	send_frame(a1, &cf);
	f = expect(a1, CHAT__SERVER_FRAME__KIND_ERROR);
	assert_int_equal(f->error->code, CHAT_NOT_FOUND);
	assert_int_equal(f->error->channel_id, 999);
	chat__server_frame__free_unpacked(f, NULL);

	/* history */
	hr.channel_id = 10;
	hr.limit = 5;
	cf.req_id = 20;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_HISTORY;
	cf.history = &hr;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_HISTORY);
	assert_int_equal(f->history->n_messages, 5);
	assert_int_equal(f->history->messages[0]->seq, 1196);
	assert_int_equal(f->history->messages[4]->seq, 1200);
	assert_true(f->history->more);
	chat__server_frame__free_unpacked(f, NULL);
	hr.limit = 501;
	cf.req_id = 21;
	send_frame(a1, &cf);
	expect_error(a1, 21, CHAT_INVALID_ARGUMENT,
	             "history limit must be 0..500");
	hr.limit = 5;
	hr.channel_id = 66; /* the fake store fails this one */
	cf.req_id = 22;
	send_frame(a1, &cf);
	expect_error(a1, 22, CHAT_UNAVAILABLE, "store is down");

	/* mark_read */
	mr.channel_id = 10;
	mr.seq = 7;
	cf.req_id = 23;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_MARK_READ;
	cf.mark_read = &mr;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_READ_RECEIPT);
	assert_int_equal(f->read_receipt->channel_id, 10);
	assert_int_equal(f->read_receipt->user_id, ALICE);
	assert_int_equal(f->read_receipt->seq, 7);
	chat__server_frame__free_unpacked(f, NULL);

	/* set_status */
	sr.status = CHAT__STATUS__STATUS_BUSY;
	cf.req_id = 24;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_SET_STATUS;
	cf.set_status = &sr;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_OK);
	chat__server_frame__free_unpacked(f, NULL);
	assert_int_equal(atomic_load(&status_of[ALICE]),
	                 CHAT__STATUS__STATUS_BUSY);
	sr.status = (Chat__Status)9;
	cf.req_id = 25;
	send_frame(a1, &cf);
	expect_error(a1, 25, CHAT_INVALID_ARGUMENT, "unknown status 9");
	atomic_store(&status_of[ALICE], CHAT__STATUS__STATUS_ONLINE);

	/* who: a channel, and everyone sharing one */
	wr.channel_id = 10;
	cf.req_id = 26;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_WHO;
	cf.who = &wr;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_WHO);
	assert_int_equal(f->who->channel_id, 10);
	assert_int_equal(f->who->n_users, 2);
	for (size_t i = 0; i < f->who->n_users; i++) {
		assert_string_equal(f->who->users[i]->user_name,
		                    names[f->who->users[i]->user_id]);
		assert_int_equal(f->who->users[i]->status,
		                 CHAT__STATUS__STATUS_ONLINE);
	}
	chat__server_frame__free_unpacked(f, NULL);
	wr.channel_id = 0;
	cf.req_id = 27;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_WHO);
	assert_true(f->who->n_users >= 2); /* bob, carol (DM) */
	chat__server_frame__free_unpacked(f, NULL);
	wr.channel_id = 40;
	cf.req_id = 28;
	send_frame(a1, &cf);
	expect_error(a1, 28, CHAT_PERMISSION_DENIED, NULL);

	/* list_channels */
	cf.req_id = 29;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_LIST_CHANNELS;
	cf.list_channels = &lc;
	f = request(a1, &cf, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST);
	assert_true(list_has(f, 10));
	assert_false(list_has(f, proj));
	chat__server_frame__free_unpacked(f, NULL);

	ping_pong(a2, 30);
	wsc_free(a1);
	wsc_free(a2);
	wait_sessions(g.e, 0);
}

static void test_resume(void **state)
{
	wsc *c = open_session(ALICE);
	Chat__ClientFrame cf = CHAT__CLIENT_FRAME__INIT;
	Chat__ResumeReq rr = CHAT__RESUME_REQ__INIT;
	Chat__ChannelPos p[4], *pp[4];
	Chat__ServerFrame *f;
	uint64_t next10 = 101, next60 = 1;
	(void)state;

	for (int i = 0; i < 4; i++) {
		chat__channel_pos__init(&p[i]);
		pp[i] = &p[i];
	}
	p[0].channel_id = 10;
	p[0].last_seq = 100;
	p[1].channel_id = 30; /* not alice's: skipped */
	p[2].channel_id = 60; /* 6000 messages: capped at 5000 */
	p[3].channel_id = 20; /* nothing new */
	rr.n_positions = 4;
	rr.positions = pp;
	cf.req_id = 40;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_RESUME;
	cf.resume = &rr;
	send_frame(c, &cf);
	for (;;) {
		f = next_frame(c, WAIT_MS);
		assert_non_null(f);
		if (f->kind_case == CHAT__SERVER_FRAME__KIND_RESUME_DONE)
			break;
		assert_int_equal(f->kind_case,
		                 CHAT__SERVER_FRAME__KIND_MESSAGE);
		assert_int_equal(f->req_id, 0);
		if (f->message->channel_id == 10)
			assert_int_equal(f->message->seq, next10++);
		else if (f->message->channel_id == 60)
			assert_int_equal(f->message->seq, next60++);
		else
			fail_msg("message for channel %" PRIu64,
			         f->message->channel_id);
		chat__server_frame__free_unpacked(f, NULL);
	}
	assert_int_equal(next10, 1201);
	assert_int_equal(next60, 5001);
	assert_int_equal(f->req_id, 40);
	assert_int_equal(f->resume_done->n_positions, 3);
	assert_int_equal(f->resume_done->positions[0]->channel_id, 10);
	assert_int_equal(f->resume_done->positions[0]->last_seq, 1200);
	assert_int_equal(f->resume_done->positions[1]->channel_id, 60);
	assert_int_equal(f->resume_done->positions[1]->last_seq, 5000);
	assert_int_equal(f->resume_done->positions[2]->channel_id, 20);
	assert_int_equal(f->resume_done->positions[2]->last_seq, 0);
	chat__server_frame__free_unpacked(f, NULL);
	ping_pong(c, 41);
	wsc_free(c);
	wait_sessions(g.e, 0);
}

static void test_kick(void **state)
{
	wsc *e1 = open_session(ERIN), *e2 = open_session(ERIN);
	wsc *al = open_session(ALICE);
	Chat__KickReq k = CHAT__KICK_REQ__INIT;
	Chat__KickReply *rep = NULL;
	chat_arena *a = chat_arena_new();
	char err[256];
	(void)state;

	k.user_id = ERIN;
	k.reason = (char *)"bye now";
	assert_int_equal(chat_rpc_invoke(edge_client, &chat__edge__descriptor,
	                                 "Kick", &k.base, a,
	                                 (ProtobufCMessage **)&rep, 3000, err,
	                                 sizeof err),
	                 CHAT_OK);
	assert_int_equal(rep->sessions, 2);
	expect_close(e1, 4000, "bye now");
	expect_close(e2, 4000, "bye now");
	ping_pong(al, 1);
	chat_arena_free(a);
	wsc_free(e1);
	wsc_free(e2);
	wsc_free(al);
	wait_sessions(g.e, 0);
}

static void *stop_main(void *arg)
{
	edge_stop(arg);
	return NULL;
}

/* A typing flood is cut to one notice a second per session. */
static void test_typing_limited(void **state)
{
	wsc *al = open_session(ALICE), *b = open_session(BOB);
	Chat__ClientFrame cf = CHAT__CLIENT_FRAME__INIT;
	Chat__TypingReq t = CHAT__TYPING_REQ__INIT;
	Chat__ServerFrame *f;
	int before = atomic_load(&publishes), got = 0;
	(void)state;

	t.channel_id = 10;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_TYPING;
	cf.typing = &t;
	for (int i = 0; i < 50; i++) {
		cf.req_id = 100 + (uint64_t)i;
		send_frame(al, &cf);
	}
	ping_pong(al, 200); /* every typing frame was handled before this */
	while ((f = next_frame(b, 300)) != NULL) {
		if (f->kind_case == CHAT__SERVER_FRAME__KIND_TYPING)
			got++;
		chat__server_frame__free_unpacked(f, NULL);
	}
	assert_int_equal(got, 1);
	assert_int_equal(atomic_load(&publishes) - before, 1);
	wsc_free(al);
	wsc_free(b);
	wait_sessions(g.e, 0);
}

/* ack_after_store: a send is answered only when its stored copy comes
 * back; a copy that never comes is answered UNAVAILABLE, retryable. */
static void test_ack_after_store(void **state)
{
	edge_config cfg;
	edge *e3 = NULL;
	char err[256];
	chat_arena *a = chat_arena_new();
	Chat__Event *ev;
	Chat__ServerFrame *f;
	wsc *c;
	(void)state;

	base_config(&cfg, "edge-t3", EDGE3_URL);
	cfg.ack_after_store = 1;
	cfg.ack_timeout_ms = 1500;
	assert_int_equal(edge_start(&cfg, &e3, err, sizeof err), 0);
	c = open_on(edge_port(e3), ALICE, NULL);

	send_msg(c, 21, 10, "stored-1", "wait for the store");
	f = next_frame(c, 400);
	if (f)
		fail_msg("answered before the store had it (kind %d)",
		         f->kind_case);
	/* the record is in the log, yet no ack: now the stored copy */
	ev = msg_event(a, 10, 5);
	ev->message->sender_id = ALICE;
	ev->message->client_msg_id = (char *)"stored-1";
	deliver(EDGE3_URL, &ev, 1);
	expect_ack(c, 21, 10, "stored-1");
	expect_message(c, 10, 5);

	/* another user's copy with the same id does not answer alice */
	send_msg(c, 22, 10, "stored-2", "never stored");
	ev = msg_event(a, 10, 6);
	ev->message->client_msg_id = (char *)"stored-2"; /* sender BOB */
	deliver(EDGE3_URL, &ev, 1);
	expect_message(c, 10, 6);
	f = expect(c, CHAT__SERVER_FRAME__KIND_ERROR);
	assert_int_equal(f->req_id, 22);
	assert_int_equal(f->error->code, CHAT_UNAVAILABLE);
	assert_true(f->error->retryable);
	assert_string_equal(f->error->client_msg_id, "stored-2");
	chat__server_frame__free_unpacked(f, NULL);

	wsc_free(c);
	wait_sessions(e3, 0);
	edge_stop(e3);
	chat_arena_free(a);
}

static void test_slow_consumer(void **state)
{
	edge_config cfg;
	edge *e2 = NULL;
	char err[256];
	chat_arena *a = chat_arena_new();
	Chat__Event *evs[40];
	wsc *d, *other;
	pthread_t stopper;
	int down;
	(void)state;

	base_config(&cfg, "edge-t2", EDGE2_URL);
	cfg.max_queue_frames = 8;
	cfg.max_queue_bytes = 1 << 20;
	assert_int_equal(edge_start(&cfg, &e2, err, sizeof err), 0);
	d = open_on(edge_port(e2), DAVE, NULL);
	other = open_on(edge_port(e2), ALICE, NULL);

	/* dave stops reading; 40 messages at once overflow his 8 frames */
	for (int i = 0; i < 40; i++)
		evs[i] = msg_event(a, 40, (uint64_t)i + 1);
	deliver(EDGE2_URL, evs, 40);
	expect_close(d, 4008, "slow consumer: outbound queue overflow");
	wait_sessions(e2, 1);
	ping_pong(other, 1);

	/* stopping closes the rest with 1001 and says SessionDown */
	down = atomic_load(&sessions_down);
	assert_int_equal(pthread_create(&stopper, NULL, stop_main, e2), 0);
	expect_close(other, 1001, "server shutting down");
	pthread_join(stopper, NULL);
	assert_true(atomic_load(&sessions_down) > down);
	chat_arena_free(a);
	wsc_free(d);
	wsc_free(other);
}

static int down_seen(void *arg)
{
	return seen_count(1, *(uint64_t *)arg) > 0;
}

static void test_session_presence(void **state)
{
	char path[1024];
	char *tok = token_for(BOB, 3600);
	Chat__ServerFrame *f;
	uint64_t sid;
	wsc *c = NULL;
	(void)state;

	snprintf(path, sizeof path, "/ws?token=%s", tok);
	free(tok);
	assert_int_equal(wsc_connect(g.port, path, NULL, &c, NULL, 0), 101);
	f = expect(c, CHAT__SERVER_FRAME__KIND_WELCOME);
	sid = f->welcome->session_id;
	chat__server_frame__free_unpacked(f, NULL);
	/* SessionUp came before the Welcome; SessionDown once closed */
	assert_int_equal(seen_count(0, sid), 1);
	assert_int_equal(seen_count(1, sid), 0);
	wsc_free(c);
	wait_until(down_seen, &sid, "SessionDown");
	assert_int_equal(seen_count(1, sid), 1);
	wait_sessions(g.e, 0);
}

static void test_setup_failure(void **state)
{
	char path[1024];
	char *tok = token_for(FRANK, 3600);
	Chat__ServerFrame *f;
	wsc *c = NULL;
	(void)state;

	/* No Welcome: the reason, then a close asking to come back later. */
	snprintf(path, sizeof path, "/ws?token=%s", tok);
	free(tok);
	assert_int_equal(wsc_connect(g.port, path, NULL, &c, NULL, 0), 101);
	f = expect(c, CHAT__SERVER_FRAME__KIND_ERROR);
	assert_int_equal(f->req_id, 0);
	assert_int_equal(f->error->code, CHAT_UNAVAILABLE);
	assert_true(f->error->retryable);
	assert_string_equal(f->error->reason,
	                    "cannot load your channels: shard offline");
	chat__server_frame__free_unpacked(f, NULL);
	expect_close(c, 1013, NULL);
	wsc_free(c);
	wait_sessions(g.e, 0);
}

static void test_idle_ping(void **state)
{
	edge_config cfg;
	edge *e3 = NULL;
	char err[256];
	uint8_t *d = NULL;
	size_t n;
	wsc *c;
	(void)state;

	/* An idle session is pinged, so that a dead peer is noticed. */
	base_config(&cfg, "edge-t3", "inproc://edge-test-edge3");
	cfg.ping_secs = 1;
	assert_int_equal(edge_start(&cfg, &e3, err, sizeof err), 0);
	c = open_on(edge_port(e3), BOB, NULL);
	for (int i = 0; i < 30 && wsc_pings(c) == 0; i++)
		assert_int_equal(wsc_recv(c, 100, &d, &n, NULL, NULL, 0), -1);
	assert_true(wsc_pings(c) >= 1);
	ping_pong(c, 1); /* and the session is still fine */
	/* A peer that reads but never answers a ping is hung up after
	 * 2 x ping_secs + 10 s of silence; one that answers stays. */
	{
		wsc *mute = open_on(edge_port(e3), CAROL, NULL);
		int64_t t0 = wall_ms(), took;
		int gone = 0;
		while (!gone && wall_ms() - t0 < 20000) {
			if (wsc_recv(c, 50, &d, &n, NULL, NULL, 0) >= 0) {
				free(d);
				d = NULL;
			}
			gone = wsc_wait_eof(mute, 50);
		}
		took = wall_ms() - t0;
		assert_true(gone);
		if (took < 11000)
			fail_msg("hung up after %lld ms, before 12 s of silence",
			         (long long)took);
		wsc_free(mute);
		ping_pong(c, 2);
		assert_true(wsc_pings(c) >= 3);
	}
	/* a stop while the peer neither reads nor answers the close */
	edge_stop(e3);
	expect_close(c, 1001, "server shutting down");
	wsc_free(c);
}

static int no_sessions(void *arg)
{
	return edge_sessions(arg) == 0;
}

static void test_dead_reader(void **state)
{
	edge_config cfg;
	edge *e4 = NULL;
	char err[256];
	chat_arena *a = chat_arena_new();
	Chat__Event *evs[40];
	char *body = malloc(4001);
	wsc *d;
	int k;
	(void)state;

	/* A peer that never reads: the socket fills, frames pile up in its
	 * queue until the cap closes the session, which must go although
	 * the peer reads nothing, not even the close frame. */
	base_config(&cfg, "edge-t4", "inproc://edge-test-edge4");
	cfg.max_queue_bytes = 256 << 10;
	assert_int_equal(edge_start(&cfg, &e4, err, sizeof err), 0);
	wsc_set_rcvbuf(4096);
	d = open_on(edge_port(e4), DAVE, NULL);
	wsc_set_rcvbuf(0);
	memset(body, 'b', 4000);
	body[4000] = '\0';
	for (int i = 0; i < 40; i++) {
		evs[i] = msg_event(a, 40, (uint64_t)i + 1);
		evs[i]->message->body = body;
	}
	for (k = 0; k < 100 && edge_sessions(e4) == 1; k++) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		deliver("inproc://edge-test-edge4", evs, 40); /* 160 KB */
		nanosleep(&ts, NULL);
	}
	assert_true(k < 100);
	/* lws gives up on the close within its close timeouts */
	wait_until_ms(no_sessions, e4, "the dead reader to be dropped", 12000);
	edge_stop(e4);
	free(body);
	chat_arena_free(a);
	wsc_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http),
	    cmocka_unit_test(test_auth),
	    cmocka_unit_test(test_welcome),
	    cmocka_unit_test(test_ping),
	    cmocka_unit_test(test_send_ack),
	    cmocka_unit_test(test_send_refused),
	    cmocka_unit_test(test_bad_frames),
	    cmocka_unit_test(test_deliver),
	    cmocka_unit_test(test_member_events),
	    cmocka_unit_test(test_typing),
	    cmocka_unit_test(test_requests),
	    cmocka_unit_test(test_resume),
	    cmocka_unit_test(test_kick),
	    cmocka_unit_test(test_session_presence),
	    cmocka_unit_test(test_setup_failure),
	    cmocka_unit_test(test_idle_ping),
	    cmocka_unit_test(test_dead_reader),
	    cmocka_unit_test(test_slow_consumer),
	    cmocka_unit_test(test_typing_limited),
	    cmocka_unit_test(test_ack_after_store),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
