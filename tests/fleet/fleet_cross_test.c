/* The fleet end to end (run under run_with_fleet.sh, 3 edges): users on
 * DIFFERENT edges talk in a group and a DM, a third user on a third edge
 * sees their presence and read receipts, and everyone (and the history)
 * agrees on the seqs and the order; the api lists the live edges with
 * their load and hands out the least-loaded one; an edge drained over
 * chat.Edge/Drain leaves the api's list, refuses upgrades, closes its
 * sessions with 1001, and its clients resume on another edge with no gap;
 * after Redis restarts empty the edges publish their routes and sessions
 * again by themselves.
 *
 * Users are put on chosen edges: the token from sign-up is valid on any
 * edge, the edge URLs come from GET /v1/edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_discovery.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "edge.pb-c.h"
#include "fleet_harness.h"
#include "itest.h"

#define MAX_EDGES 8
#define WAIT_MS 10000

struct edge_ref {
	char id[64];
	char url[256];
	long long load;
};

static char api_url[256];

/* ---- helpers ----------------------------------------------------------- */

static Chat__ServerFrame *expect_kind(Chat__ServerFrame *f,
                                      Chat__ServerFrame__KindCase k,
                                      const char *what)
{
	if (!f)
		fail_msg("%s: no answer", what);
	if (f->kind_case != k) {
		if (f->kind_case == CHAT__SERVER_FRAME__KIND_ERROR)
			fail_msg("%s: error %d: %s", what, f->error->code,
			         f->error->reason);
		fail_msg("%s: got kind %d, want %d", what, f->kind_case, k);
	}
	return f;
}

/* Copy the JSON string value after `"key":"` at p into out; the position
 * after it, or NULL. Enough for the api's own edges list. */
static const char *json_str(const char *p, const char *key, char *out,
                            size_t outlen)
{
	char pat[32];
	const char *s, *e;
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	if (!(s = strstr(p, pat)))
		return NULL;
	s += strlen(pat);
	if (!(e = strchr(s, '"')) || (size_t)(e - s) >= outlen)
		return NULL;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return e + 1;
}

/* GET /v1/edges: the edges the api hands out, with their load. */
static size_t get_edges(struct edge_ref *v, size_t max)
{
	chatc_url u;
	chatc_http_resp r;
	char err[256];
	const char *p;
	size_t n = 0;

	memset(&r, 0, sizeof r);
	if (chatc_url_parse(api_url, &u, err, sizeof err) != 0 ||
	    chatc_http_request(u.host, u.port, "GET", "/v1/edges", NULL, 5000,
	                       &r, err, sizeof err) != 0)
		fail_msg("GET /v1/edges: %s", err);
	if (r.head.status != 200)
		fail_msg("GET /v1/edges: HTTP %d", r.head.status);
	p = r.body;
	while (n < max && (p = json_str(p, "id", v[n].id, sizeof v[n].id)) &&
	       (p = json_str(p, "url", v[n].url, sizeof v[n].url))) {
		const char *l = strstr(p, "\"load\":");
		v[n].load = l ? strtoll(l + 7, NULL, 10) : -1;
		n++;
	}
	chatc_http_resp_fini(&r);
	return n;
}

static const struct edge_ref *edge_by_id(const struct edge_ref *v, size_t n,
                                         const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].id, id))
			return &v[i];
	return NULL;
}

/* Wait for Welcome (on edge id) and the first ChannelList. */
static void wait_ready(it_client *c, const char *edge_id)
{
	Chat__ServerFrame *f = expect_kind(
	    it_wait_push(c, CHAT__SERVER_FRAME__KIND_WELCOME, NULL, NULL,
	                 WAIT_MS),
	    CHAT__SERVER_FRAME__KIND_WELCOME, "welcome");
	if (edge_id)
		assert_string_equal(f->welcome->edge_id, edge_id);
	assert_int_equal(f->welcome->user_id, c->auth.user_id);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect_kind(it_wait_push(c, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST,
	                             NULL, NULL, WAIT_MS),
	                CHAT__SERVER_FRAME__KIND_CHANNEL_LIST, "channel list");
	chat__server_frame__free_unpacked(f, NULL);
}

/* Sign up name (or log in) on the api, then open the session on edge e
 * (NULL: the edge the api handed out). */
static void open_on(it_client *c, const char *name, int signup,
                    const struct edge_ref *e)
{
	char err[256];
	int r;
	memset(c, 0, sizeof *c);
	snprintf(c->name, sizeof c->name, "%s", name);
	snprintf(c->password, sizeof c->password, "pw-%.40s-secret", name);
	r = signup ? chatc_signup(api_url, name, c->password, WAIT_MS,
	                          &c->auth, err, sizeof err)
	           : chatc_login(api_url, name, c->password, WAIT_MS,
	                         &c->auth, err, sizeof err);
	if (r != 0)
		fail_msg("%s %s: %s", signup ? "signup" : "login", name, err);
	if (e)
		snprintf(c->auth.edge_url, sizeof c->auth.edge_url, "%s",
		         e->url);
	if (it_client_reconnect(c, err, sizeof err) != 0)
		fail_msg("connect %s to %s: %s", name, c->auth.edge_url, err);
	wait_ready(c, e ? e->id : NULL);
}

static void send_ok(it_client *c, uint64_t ch, const char *body)
{
	char what[128];
	Chat__ServerFrame *f;
	snprintf(what, sizeof what, "%.40s sends \"%.40s\"", c->name, body);
	f = expect_kind(it_send_msg(c, ch, NULL, body),
	                CHAT__SERVER_FRAME__KIND_SEND_ACK, what);
	assert_int_equal(f->send_ack->channel_id, ch);
	chat__server_frame__free_unpacked(f, NULL);
}

static int list_has(const Chat__ServerFrame *f, void *arg)
{
	uint64_t id = *(uint64_t *)arg;
	for (size_t i = 0; i < f->channel_list->n_channels; i++)
		if (f->channel_list->channels[i]->id == id)
			return 1;
	return 0;
}

static int presence_is(const Chat__ServerFrame *f, void *arg)
{
	const uint64_t *want = arg; /* user, status */
	return f->presence->user_id == want[0] &&
	       (uint64_t)f->presence->status == want[1];
}

static int receipt_is(const Chat__ServerFrame *f, void *arg)
{
	const uint64_t *want = arg; /* user, channel, seq */
	return f->read_receipt->user_id == want[0] &&
	       f->read_receipt->channel_id == want[1] &&
	       f->read_receipt->seq == want[2];
}

/* Every member got count messages of ch with seqs 1..count and bodies in
 * the order sent, and the history of each says the same. */
static void check_agree(it_client **cs, size_t ncs, uint64_t ch,
                        char (*want)[64], size_t count)
{
	uint64_t seqs[64];
	char bodies[64][64];
	for (size_t k = 0; k < ncs; k++) {
		Chat__ServerFrame *f;
		assert_int_equal(it_collect(cs[k], ch, count, seqs, bodies,
		                            WAIT_MS),
		                 count);
		for (size_t i = 0; i < count; i++) {
			assert_int_equal(seqs[i], i + 1);
			assert_string_equal(bodies[i], want[i]);
		}
		f = expect_kind(it_history(cs[k], ch, 0, 1, 100),
		                CHAT__SERVER_FRAME__KIND_HISTORY, "history");
		assert_int_equal(f->history->n_messages, count);
		assert_int_equal(f->history->last_seq, count);
		for (size_t i = 0; i < count; i++) {
			assert_int_equal(f->history->messages[i]->seq, i + 1);
			assert_string_equal(f->history->messages[i]->body,
			                    want[i]);
		}
		chat__server_frame__free_unpacked(f, NULL);
	}
}

/* ---- tests ------------------------------------------------------------- */

/* alice on the first edge, bob on the second, carol on the third. */
static void test_cross_edge(void **state)
{
	struct edge_ref ev[MAX_EDGES];
	it_client a, b, c;
	it_client *group[3] = {&a, &b, &c}, *pair[2] = {&a, &b};
	char na[64], nb[64], nc[64], want[64][64];
	const char *members[3];
	uint64_t ch, dm, w[3];
	size_t n;
	Chat__ServerFrame *f;
	(void)state;

	n = get_edges(ev, MAX_EDGES);
	assert_true(n >= 3);
	it_unique(na, sizeof na, "alice");
	it_unique(nb, sizeof nb, "bob");
	it_unique(nc, sizeof nc, "carol");
	open_on(&a, na, 1, &ev[0]);
	open_on(&b, nb, 1, &ev[1]);
	open_on(&c, nc, 1, &ev[2]);

	/* a group: alice creates it with bob and carol */
	members[0] = nb;
	members[1] = nc;
	members[2] = NULL;
	f = expect_kind(it_create(&a, "cross-edge", members),
	                CHAT__SERVER_FRAME__KIND_CHANNEL, "create");
	ch = f->channel->id;
	assert_int_equal(f->channel->member_count, 3);
	chat__server_frame__free_unpacked(f, NULL);
	for (int k = 1; k < 3; k++) {
		f = it_wait_push(group[k],
		                 CHAT__SERVER_FRAME__KIND_CHANNEL_LIST,
		                 list_has, &ch, WAIT_MS);
		if (!f)
			fail_msg("%s was not told about the channel",
			         group[k]->name);
		chat__server_frame__free_unpacked(f, NULL);
	}
	/* alice and bob talk right away (no pause after the create) */
	for (int i = 0; i < 20; i++) {
		it_client *who = i % 2 ? &b : &a;
		snprintf(want[i], sizeof want[i], "group %d from %.30s", i,
		         who->name);
		send_ok(who, ch, want[i]);
	}
	check_agree(group, 3, ch, want, 20);

	/* a DM between alice and bob */
	f = expect_kind(it_open_dm(&a, nb), CHAT__SERVER_FRAME__KIND_CHANNEL,
	                "dm");
	dm = f->channel->id;
	assert_int_equal(f->channel->kind, CHAT__CHANNEL_KIND__KIND_DM);
	assert_int_equal(f->channel->dm_peer_status,
	                 CHAT__STATUS__STATUS_ONLINE);
	chat__server_frame__free_unpacked(f, NULL);
	/* bob's edge learns of the DM from its fan-out, and tells him */
	f = it_wait_push(&b, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST, list_has,
	                 &dm, WAIT_MS);
	if (!f)
		fail_msg("bob was not told about the DM");
	chat__server_frame__free_unpacked(f, NULL);
	for (int i = 0; i < 10; i++) {
		it_client *who = i % 2 ? &b : &a;
		snprintf(want[i], sizeof want[i], "dm %d from %.30s", i,
		         who->name);
		send_ok(who, dm, want[i]);
	}
	check_agree(pair, 2, dm, want, 10);
	it_pump(&c, 200, NULL, NULL);
	assert_int_equal(it_collect(&c, dm, 1, NULL, NULL, 0), 0);
	f = it_history(&c, dm, 0, 1, 10);
	assert_non_null(f);
	assert_int_equal(f->kind_case, CHAT__SERVER_FRAME__KIND_ERROR);
	assert_int_equal(f->error->code, CHAT__CODE__PERMISSION_DENIED);
	chat__server_frame__free_unpacked(f, NULL);

	/* read receipts: alice says one more (bob's read position is his
	 * own last message, 20); bob reads it; carol (third edge) and alice
	 * are told */
	send_ok(&a, ch, "one more");
	assert_int_equal(it_collect(&b, ch, 1, w, NULL, WAIT_MS), 1);
	assert_int_equal(w[0], 21);
	f = expect_kind(it_mark_read(&b, ch, 0),
	                CHAT__SERVER_FRAME__KIND_READ_RECEIPT, "mark read");
	assert_int_equal(f->read_receipt->seq, 21);
	chat__server_frame__free_unpacked(f, NULL);
	w[0] = b.auth.user_id;
	w[1] = ch;
	w[2] = 21;
	f = it_wait_push(&c, CHAT__SERVER_FRAME__KIND_READ_RECEIPT, receipt_is,
	                 w, WAIT_MS);
	assert_non_null(f);
	assert_string_equal(f->read_receipt->user_name, nb);
	chat__server_frame__free_unpacked(f, NULL);
	f = it_wait_push(&a, CHAT__SERVER_FRAME__KIND_READ_RECEIPT, receipt_is,
	                 w, WAIT_MS);
	assert_non_null(f);
	chat__server_frame__free_unpacked(f, NULL);

	/* presence: carol sees bob busy, alice away, then bob offline */
	f = expect_kind(it_set_status(&b, CHAT__STATUS__STATUS_BUSY),
	                CHAT__SERVER_FRAME__KIND_OK, "status busy");
	chat__server_frame__free_unpacked(f, NULL);
	w[0] = b.auth.user_id;
	w[1] = CHAT__STATUS__STATUS_BUSY;
	f = it_wait_push(&c, CHAT__SERVER_FRAME__KIND_PRESENCE, presence_is, w,
	                 WAIT_MS);
	assert_non_null(f);
	assert_string_equal(f->presence->user_name, nb);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect_kind(it_set_status(&a, CHAT__STATUS__STATUS_AWAY),
	                CHAT__SERVER_FRAME__KIND_OK, "status away");
	chat__server_frame__free_unpacked(f, NULL);
	w[0] = a.auth.user_id;
	w[1] = CHAT__STATUS__STATUS_AWAY;
	f = it_wait_push(&c, CHAT__SERVER_FRAME__KIND_PRESENCE, presence_is, w,
	                 WAIT_MS);
	assert_non_null(f);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect_kind(it_who(&c, ch), CHAT__SERVER_FRAME__KIND_WHO, "who");
	assert_int_equal(f->who->n_users, 3);
	for (size_t i = 0; i < f->who->n_users; i++) {
		if (f->who->users[i]->user_id == b.auth.user_id)
			assert_int_equal(f->who->users[i]->status,
			                 CHAT__STATUS__STATUS_BUSY);
		if (f->who->users[i]->user_id == a.auth.user_id)
			assert_int_equal(f->who->users[i]->status,
			                 CHAT__STATUS__STATUS_AWAY);
	}
	chat__server_frame__free_unpacked(f, NULL);
	it_client_close(&b);
	w[0] = b.auth.user_id;
	w[1] = CHAT__STATUS__STATUS_OFFLINE;
	f = it_wait_push(&c, CHAT__SERVER_FRAME__KIND_PRESENCE, presence_is, w,
	                 WAIT_MS);
	assert_non_null(f);
	assert_true(f->presence->last_seen_ms > 0);
	chat__server_frame__free_unpacked(f, NULL);
	it_client_close(&a);
	it_client_close(&c);
}

/* GET /v1/edges reports each edge's live sessions (refreshed every ~2 s)
 * and a log-in gets the least loaded edge. */
static void test_load_and_least_loaded(void **state)
{
	struct edge_ref ev[MAX_EDGES], now[MAX_EDGES];
	it_client cs[6], d;
	char name[64];
	const struct edge_ref *e;
	int64_t deadline;
	size_t n;
	(void)state;

	n = get_edges(ev, MAX_EDGES);
	assert_true(n >= 3);
	for (int i = 0; i < 6; i++) {
		it_unique(name, sizeof name, "load");
		open_on(&cs[i], name, 1, &ev[0]);
	}
	/* edge 0 reports 6 sessions (or more) within a few seconds */
	deadline = chat_mono_ms() + 10000;
	for (;;) {
		assert_int_equal(get_edges(now, MAX_EDGES), n);
		e = edge_by_id(now, n, ev[0].id);
		assert_non_null(e);
		if (e->load >= 6)
			break;
		if (chat_mono_ms() > deadline)
			fail_msg("%s still reports load %lld", e->id, e->load);
		usleep(100 * 1000);
	}
	/* the next log-in goes to a less loaded edge */
	it_unique(name, sizeof name, "light");
	open_on(&d, name, 1, NULL);
	assert_string_not_equal(d.auth.edge_url, ev[0].url);
	it_client_close(&d);
	for (int i = 0; i < 6; i++)
		it_client_close(&cs[i]);
}

/* Whether who(ch) on c shows user online. */
static int shows_online(it_client *c, uint64_t ch, uint64_t user)
{
	Chat__ServerFrame *f = it_who(c, ch);
	int on = 0;
	if (f && f->kind_case == CHAT__SERVER_FRAME__KIND_WHO)
		for (size_t i = 0; i < f->who->n_users; i++)
			if (f->who->users[i]->user_id == user)
				on = f->who->users[i]->status ==
				     CHAT__STATUS__STATUS_ONLINE;
	if (f)
		chat__server_frame__free_unpacked(f, NULL);
	return on;
}

/* Redis restarts empty (routes, edge leases, presence gone): the edges
 * notice at their next heartbeat, publish their routes again and tell
 * presence about their sessions again; delivery across edges resumes and
 * the users are online again, without reconnecting. */
static void test_redis_restart(void **state)
{
	struct edge_ref ev[MAX_EDGES];
	it_client a, b;
	char na[64], nb[64], body[64];
	const char *members[2];
	uint64_t ch, seq = 0, last = 0;
	int64_t deadline;
	int sent = 0, got = 0;
	Chat__ServerFrame *f;
	(void)state;

	assert_true(get_edges(ev, MAX_EDGES) >= 2);
	it_unique(na, sizeof na, "before");
	it_unique(nb, sizeof nb, "after");
	open_on(&a, na, 1, &ev[0]);
	open_on(&b, nb, 1, &ev[1]);
	members[0] = na;
	members[1] = NULL;
	f = expect_kind(it_create(&b, "redis", members),
	                CHAT__SERVER_FRAME__KIND_CHANNEL, "create");
	ch = f->channel->id;
	chat__server_frame__free_unpacked(f, NULL);
	f = it_wait_push(&a, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST, list_has,
	                 &ch, WAIT_MS);
	assert_non_null(f);
	chat__server_frame__free_unpacked(f, NULL);
	send_ok(&b, ch, "before the restart");
	assert_int_equal(it_collect(&a, ch, 1, &last, NULL, WAIT_MS), 1);

	assert_int_equal(fleet_ctl("restart", "redis"), 0);
	/* b keeps talking; a hears it live again within a few heartbeats
	 * (sends during the gap are stored; a would fill them from
	 * history) */
	deadline = chat_mono_ms() + 20000;
	while (!got && chat_mono_ms() < deadline) {
		snprintf(body, sizeof body, "after the restart %d", sent++);
		f = it_send_msg(&b, ch, NULL, body);
		assert_non_null(f);
		chat__server_frame__free_unpacked(f, NULL);
		got = (int)it_collect(&a, ch, 1, &seq, NULL, 500);
	}
	if (!got)
		fail_msg("no live delivery 20 s after the Redis restart");
	assert_true(seq > last);
	/* from now on at once */
	send_ok(&b, ch, "steady");
	{
		uint64_t s2[64];
		size_t k = it_collect(&a, ch, 64, s2, NULL, 3000);
		assert_true(k >= 1);
	}
	/* presence heard of both sessions again */
	deadline = chat_mono_ms() + 15000;
	while (!(shows_online(&a, ch, b.auth.user_id) &&
	         shows_online(&b, ch, a.auth.user_id))) {
		if (chat_mono_ms() > deadline)
			fail_msg("presence lost the sessions for good");
		usleep(200 * 1000);
	}
	it_client_close(&a);
	it_client_close(&b);
}

/* The RPC address of an edge, from ZooKeeper. */
static int edge_rpc(const char *id, char *out, size_t outlen)
{
	chat_disc_entry ents[MAX_EDGES];
	char zk[256], err[256];
	chat_disc *d;
	size_t n;
	int rc = -1;

	if (fleet_env("CHAT_ZK", zk, sizeof zk) != 0)
		return -1;
	d = chat_disc_new(zk, 10000, err, sizeof err);
	if (!d)
		return -1;
	n = chat_disc_list(d, "edge", ents, MAX_EDGES, 5000);
	for (size_t i = 0; i < n && i < MAX_EDGES; i++)
		if (!strcmp(ents[i].id, id)) {
			snprintf(out, outlen, "%s", ents[i].rpc);
			rc = 0;
		}
	chat_disc_free(d);
	return rc;
}

/* Drain the last edge, two sessions a second: its clients are closed with
 * 1001 at that pace, the api stops handing it out, it refuses new
 * sessions, and a client logs in again, lands on another edge and resumes
 * with nothing missed. Runs last (the fleet has one edge fewer
 * afterwards). */
/* Collect c's messages of channel ch until it holds seqs 1..last, within
 * WAIT_MS, bodies into bodies[seq - 1]. A repeated seq is allowed (the
 * protocol lets a client drop what it has: a dispatcher may deliver twice
 * after a failure); a seq beyond last, or one missing at the end, fails.
 * The arrival order is printed when it was not exactly 1..last. */
static void collect_upto(it_client *c, uint64_t ch, uint64_t last,
                         char (*bodies)[64])
{
	uint64_t order[32], seq;
	char body[1][64];
	size_t n = 0;
	uint64_t have = 0; /* bit per seq */
	int64_t deadline = chat_mono_ms() + WAIT_MS;

	assert_true(last <= 16);
	while (have != ((1ull << last) - 1) && chat_mono_ms() < deadline) {
		if (it_collect(c, ch, 1, &seq, body, 200) != 1)
			continue;
		if (n < 32)
			order[n++] = seq;
		if (seq < 1 || seq > last)
			fail_msg("seq %llu arrived, expected 1..%llu",
			         (unsigned long long)seq, (unsigned long long)last);
		have |= 1ull << (seq - 1);
		memcpy(bodies[seq - 1], body[0], sizeof body[0]);
	}
	if (n != last || have != ((1ull << last) - 1)) {
		fprintf(stderr, "channel %llu arrived in this order:",
		        (unsigned long long)ch);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %llu", (unsigned long long)order[i]);
		fprintf(stderr, "\n");
	}
	if (have != ((1ull << last) - 1))
		fail_msg("seqs 1..%llu not all delivered in %d ms",
		         (unsigned long long)last, WAIT_MS);
}

static void test_drain(void **state)
{
	struct edge_ref ev[MAX_EDGES], now[MAX_EDGES];
	const struct edge_ref *gone;
	it_client a, b, extra[3];
	char na[64], nb[64], rpc[256], err[256], want[8][64], bodies[8][64];
	const char *members[2];
	uint64_t ch, seqs[8];
	chat_rpc_client *cl;
	chat_arena *arena;
	Chat__DrainReq req = CHAT__DRAIN_REQ__INIT;
	Chat__DrainReply *rep = NULL;
	int64_t deadline, t0;
	size_t n;
	int st;
	(void)state;

	n = get_edges(ev, MAX_EDGES);
	assert_true(n >= 2);
	gone = &ev[n - 1];
	it_unique(na, sizeof na, "drained");
	it_unique(nb, sizeof nb, "stayer");
	open_on(&a, na, 1, gone);
	open_on(&b, nb, 1, &ev[0]);
	members[0] = na;
	members[1] = NULL;
	{
		Chat__ServerFrame *f = expect_kind(
		    it_create(&b, "drain", members),
		    CHAT__SERVER_FRAME__KIND_CHANNEL, "create");
		ch = f->channel->id;
		chat__server_frame__free_unpacked(f, NULL);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(want[i], sizeof want[i], "before drain %d", i);
		send_ok(&b, ch, want[i]);
	}
	collect_upto(&a, ch, 3, bodies);
	for (int i = 0; i < 3; i++)
		assert_string_equal(bodies[i], want[i]);

	/* three more sessions there, so that the pacing shows */
	for (int i = 0; i < 3; i++) {
		char nx[64];
		it_unique(nx, sizeof nx, "paced");
		open_on(&extra[i], nx, 1, gone);
	}

	/* chatctl's way: chat.Edge/Drain on the edge's RPC address, two
	 * sessions a second */
	assert_int_equal(edge_rpc(gone->id, rpc, sizeof rpc), 0);
	cl = chat_rpc_client_new(rpc, err, sizeof err);
	assert_non_null(cl);
	arena = chat_arena_new();
	req.reason = (char *)"test drain";
	req.per_second = 2;
	st = chat_rpc_invoke(cl, &chat__edge__descriptor, "Drain", &req.base,
	                     arena, (ProtobufCMessage **)&rep, 10000, err,
	                     sizeof err);
	t0 = chat_mono_ms();
	if (st != CHAT_OK)
		fail_msg("Drain: %s", err);
	assert_true(rep->sessions >= 4);
	chat_arena_free(arena);
	chat_rpc_client_free(cl);

	/* each client is told to go with 1001, two a second: the first at
	 * once, the last about 1.5 s later */
	{
		it_client *all[4] = {&a, &extra[0], &extra[1], &extra[2]};
		int64_t first = -1, last = -1;
		int left = 4;
		deadline = t0 + WAIT_MS;
		while (left && chat_mono_ms() < deadline) {
			for (int i = 0; i < 4; i++) {
				if (all[i]->closed)
					continue;
				it_pump(all[i], 20, NULL, NULL);
				if (!all[i]->closed)
					continue;
				left--;
				assert_int_equal(all[i]->close_code, 1001);
				assert_string_equal(all[i]->close_reason,
				                    "test drain");
				last = chat_mono_ms() - t0;
				if (first < 0)
					first = last;
			}
		}
		if (left)
			fail_msg("%d sessions still open after the drain",
			         left);
		if (first > 700 || last < 1000 || last > 5000)
			fail_msg("closes not paced: first after %lld ms, last "
			         "after %lld ms", (long long)first,
			         (long long)last);
		for (int i = 0; i < 3; i++)
			it_client_close(&extra[i]);
	}
	/* the api stops handing it out */
	deadline = chat_mono_ms() + 10000;
	while ((n = get_edges(now, MAX_EDGES)) > 0 &&
	       edge_by_id(now, n, gone->id)) {
		if (chat_mono_ms() > deadline)
			fail_msg("%s is still listed", gone->id);
		usleep(100 * 1000);
	}
	/* and it takes no new session */
	{
		chatc_ws *ws = NULL;
		int status = 0;
		assert_int_not_equal(chatc_ws_connect(gone->url, a.auth.token,
		                                      5000, &ws, &status, err,
		                                      sizeof err),
		                     0);
		assert_int_equal(status, 503);
	}
	/* more is said while the client is away */
	for (int i = 3; i < 5; i++) {
		snprintf(want[i], sizeof want[i], "during drain %d", i);
		send_ok(&b, ch, want[i]);
	}
	/* log in again: another edge; resume from seq 3 */
	it_client_close(&a);
	open_on(&a, na, 0, NULL);
	assert_string_not_equal(a.auth.edge_url, gone->url);
	{
		Chat__ClientFrame rf = CHAT__CLIENT_FRAME__INIT;
		Chat__ResumeReq rr = CHAT__RESUME_REQ__INIT;
		Chat__ChannelPos pos = CHAT__CHANNEL_POS__INIT;
		Chat__ChannelPos *pp = &pos;
		Chat__ServerFrame *f;
		pos.channel_id = ch;
		pos.last_seq = 3;
		rr.n_positions = 1;
		rr.positions = &pp;
		rf.kind_case = CHAT__CLIENT_FRAME__KIND_RESUME;
		rf.resume = &rr;
		f = expect_kind(it_wait_reply(&a, it_send(&a, &rf), WAIT_MS),
		                CHAT__SERVER_FRAME__KIND_RESUME_DONE, "resume");
		assert_int_equal(f->resume_done->positions[0]->last_seq, 5);
		chat__server_frame__free_unpacked(f, NULL);
	}
	/* and live after the resume, on the new edge */
	snprintf(want[5], sizeof want[5], "after drain 5");
	send_ok(&b, ch, want[5]);
	assert_int_equal(it_collect(&a, ch, 3, seqs, bodies, WAIT_MS), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(seqs[i], (uint64_t)i + 4);
		assert_string_equal(bodies[i], want[i + 3]);
	}
	it_client_close(&a);
	it_client_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cross_edge),
	    cmocka_unit_test(test_load_and_least_loaded),
	    cmocka_unit_test(test_redis_restart),
	    cmocka_unit_test(test_drain),
	};
	if (fleet_env("CHAT_API_URL", api_url, sizeof api_url) != 0) {
		fprintf(stderr, "CHAT_API_URL unknown: run under "
		                "tests/fleet/run_with_fleet.sh\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
