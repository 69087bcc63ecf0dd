/* End-to-end tests against a real chatd: accounts, channels, ordered
 * delivery to every member, history, read receipts, presence, typing, a
 * retried send stored once, a dropped client resuming with no gap, every
 * kind of bad input, and data surviving a restart.
 *
 * Usage: chatd_test PATH-TO-CHATD. With CHAT_TEST_API_URL set, runs
 * against that server instead (the restart test is then skipped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jwt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_auth.h"
#include "chat_util.h"
#include "itest.h"

static const char *chatd_path;
static it_server srv;

#define OPEN(c, name, signup)                                                  \
	do {                                                                   \
		char e_[256];                                                  \
		if (it_client_open((c), &srv, (name), (signup), e_,            \
		                   sizeof e_) != 0)                            \
			fail_msg("open %s: %s", (name), e_);                   \
	} while (0)

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

static void expect_error(Chat__ServerFrame *f, int code, const char *what)
{
	if (!f)
		fail_msg("%s: no answer", what);
	if (f->kind_case != CHAT__SERVER_FRAME__KIND_ERROR)
		fail_msg("%s: want error %d, got kind %d", what, code, f->kind_case);
	if ((int)f->error->code != code)
		fail_msg("%s: want code %d, got %d (%s)", what, code,
		         f->error->code, f->error->reason);
	assert_true(f->error->reason && f->error->reason[0]);
	chat__server_frame__free_unpacked(f, NULL);
}

/* Open a client and consume its Welcome and first ChannelList. */
static void open_ready(it_client *c, const char *name, int signup)
{
	Chat__ServerFrame *f;
	OPEN(c, name, signup);
	f = expect_kind(it_wait_push(c, CHAT__SERVER_FRAME__KIND_WELCOME, NULL,
	                             NULL, 5000),
	                CHAT__SERVER_FRAME__KIND_WELCOME, "welcome");
	assert_string_equal(f->welcome->user_name, name);
	assert_int_equal(f->welcome->user_id, c->auth.user_id);
	assert_int_equal(f->welcome->max_frame_bytes, 65536);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect_kind(it_wait_push(c, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST,
	                             NULL, NULL, 5000),
	                CHAT__SERVER_FRAME__KIND_CHANNEL_LIST, "channel list");
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

static int list_lacks(const Chat__ServerFrame *f, void *arg)
{
	return !list_has(f, arg);
}

static uint64_t make_channel(it_client *c, const char *name,
                             const char *const *members)
{
	Chat__ServerFrame *f = expect_kind(it_create(c, name, members),
	                                   CHAT__SERVER_FRAME__KIND_CHANNEL,
	                                   "create");
	uint64_t id = f->channel->id;
	assert_string_equal(f->channel->name, name);
	assert_int_equal(f->channel->kind, CHAT__CHANNEL_KIND__KIND_GROUP);
	chat__server_frame__free_unpacked(f, NULL);
	return id;
}

static void send_ok(it_client *c, uint64_t ch, const char *id, const char *body)
{
	Chat__ServerFrame *f = expect_kind(it_send_msg(c, ch, id, body),
	                                   CHAT__SERVER_FRAME__KIND_SEND_ACK,
	                                   "send");
	assert_int_equal(f->send_ack->channel_id, ch);
	if (id)
		assert_string_equal(f->send_ack->client_msg_id, id);
	chat__server_frame__free_unpacked(f, NULL);
}

/* Create, join, send from three people; all three see the same seqs and
 * bodies in the same order; history agrees. */
static void test_conversation(void **state)
{
	it_client a, b, c;
	char na[64], nb[64], nc[64];
	const char *members[2];
	uint64_t ch, seqs[3][30];
	char bodies[3][30][64];
	Chat__ServerFrame *f;
	(void)state;
	it_unique(na, sizeof na, "alice");
	it_unique(nb, sizeof nb, "bob");
	it_unique(nc, sizeof nc, "carol");
	open_ready(&a, na, 1);
	open_ready(&b, nb, 1);
	open_ready(&c, nc, 1);
	members[0] = nb;
	members[1] = NULL;
	ch = make_channel(&a, "general", members);
	/* bob is told without asking */
	f = it_wait_push(&b, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST, list_has, &ch,
	                 5000);
	if (!f)
		fail_msg("bob got no channel list with channel %llu",
		         (unsigned long long)ch);
	chat__server_frame__free_unpacked(f, NULL);
	/* carol joins by id; joining twice is fine */
	f = expect_kind(it_join(&c, ch), CHAT__SERVER_FRAME__KIND_CHANNEL, "join");
	assert_int_equal(f->channel->id, ch);
	assert_int_equal(f->channel->member_count, 3);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect_kind(it_join(&c, ch), CHAT__SERVER_FRAME__KIND_CHANNEL,
	                "join again");
	chat__server_frame__free_unpacked(f, NULL);

	for (int i = 0; i < 30; i++) {
		char body[64];
		it_client *who = i % 3 == 0 ? &a : i % 3 == 1 ? &b : &c;
		snprintf(body, sizeof body, "msg %d from %.40s", i, who->name);
		send_ok(who, ch, NULL, body);
	}
	assert_int_equal(it_collect(&a, ch, 30, seqs[0], bodies[0], 10000), 30);
	assert_int_equal(it_collect(&b, ch, 30, seqs[1], bodies[1], 10000), 30);
	assert_int_equal(it_collect(&c, ch, 30, seqs[2], bodies[2], 10000), 30);
	for (int i = 0; i < 30; i++) {
		char body[64];
		it_client *who = i % 3 == 0 ? &a : i % 3 == 1 ? &b : &c;
		snprintf(body, sizeof body, "msg %d from %.40s", i, who->name);
		for (int k = 0; k < 3; k++) {
			assert_int_equal(seqs[k][i], (uint64_t)i + 1);
			assert_string_equal(bodies[k][i], body);
		}
	}
	/* history: newest 10 BEFORE, then AFTER 25 */
	f = expect_kind(it_history(&b, ch, 0, 0, 10),
	                CHAT__SERVER_FRAME__KIND_HISTORY, "history");
	assert_int_equal(f->history->n_messages, 10);
	assert_true(f->history->more);
	assert_int_equal(f->history->last_seq, 30);
	for (size_t i = 0; i < 10; i++) {
		assert_int_equal(f->history->messages[i]->seq, 21 + i);
		assert_string_equal(f->history->messages[i]->body, bodies[0][20 + i]);
	}
	chat__server_frame__free_unpacked(f, NULL);
	f = expect_kind(it_history(&c, ch, 25, 1, 100),
	                CHAT__SERVER_FRAME__KIND_HISTORY, "history after");
	assert_int_equal(f->history->n_messages, 5);
	assert_false(f->history->more);
	assert_int_equal(f->history->messages[0]->seq, 26);
	chat__server_frame__free_unpacked(f, NULL);

	/* read receipts: bob reads up to 30; alice and carol are told */
	f = expect_kind(it_mark_read(&b, ch, 0),
	                CHAT__SERVER_FRAME__KIND_READ_RECEIPT, "mark read");
	assert_int_equal(f->read_receipt->seq, 30);
	chat__server_frame__free_unpacked(f, NULL);
	f = it_wait_push(&a, CHAT__SERVER_FRAME__KIND_READ_RECEIPT, NULL, NULL,
	                 5000);
	assert_non_null(f);
	assert_int_equal(f->read_receipt->user_id, b.auth.user_id);
	assert_string_equal(f->read_receipt->user_name, nb);
	assert_int_equal(f->read_receipt->seq, 30);
	chat__server_frame__free_unpacked(f, NULL);
	/* unread counts: carol has read her own last message (seq 30 is
	 * carol's), alice's read position is her last message (28) */
	{
		Chat__ClientFrame lf = CHAT__CLIENT_FRAME__INIT;
		Chat__ListChannelsReq lr = CHAT__LIST_CHANNELS_REQ__INIT;
		lf.kind_case = CHAT__CLIENT_FRAME__KIND_LIST_CHANNELS;
		lf.list_channels = &lr;
		f = expect_kind(it_wait_reply(&a, it_send(&a, &lf), 5000),
		                CHAT__SERVER_FRAME__KIND_CHANNEL_LIST, "list");
		assert_true(list_has(f, &ch));
		for (size_t i = 0; i < f->channel_list->n_channels; i++) {
			Chat__ChannelInfo *ci = f->channel_list->channels[i];
			if (ci->id != ch)
				continue;
			assert_int_equal(ci->last_seq, 30);
			assert_int_equal(ci->read_seq, 28);
			assert_int_equal(ci->unread, 2);
		}
		chat__server_frame__free_unpacked(f, NULL);
	}

	/* bob leaves: his list loses it, the others see LEFT, his send is
	 * refused and he cannot read history */
	f = expect_kind(it_leave(&b, ch), CHAT__SERVER_FRAME__KIND_OK, "leave");
	chat__server_frame__free_unpacked(f, NULL);
	f = it_wait_push(&b, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST, list_lacks, &ch,
	                 5000);
	assert_non_null(f);
	chat__server_frame__free_unpacked(f, NULL);
	f = it_wait_push(&a, CHAT__SERVER_FRAME__KIND_MEMBER, NULL, NULL, 5000);
	for (; f && !(f->member->kind == CHAT__MEMBER_EVENT__KIND__LEFT);
	     f = it_wait_push(&a, CHAT__SERVER_FRAME__KIND_MEMBER, NULL, NULL,
	                      5000))
		chat__server_frame__free_unpacked(f, NULL);
	assert_non_null(f);
	assert_int_equal(f->member->user_id, b.auth.user_id);
	chat__server_frame__free_unpacked(f, NULL);
	expect_error(it_send_msg(&b, ch, NULL, "after leaving"),
	             CHAT__CODE__PERMISSION_DENIED, "send after leave");
	expect_error(it_history(&b, ch, 0, 0, 10), CHAT__CODE__PERMISSION_DENIED,
	             "history after leave");
	expect_error(it_leave(&b, ch), CHAT__CODE__FAILED_PRECONDITION,
	             "leave twice");
	it_client_close(&a);
	it_client_close(&b);
	it_client_close(&c);
}

static int presence_is(const Chat__ServerFrame *f, void *arg)
{
	const uint64_t *want = arg; /* user, status */
	return f->presence->user_id == want[0] &&
	       (uint64_t)f->presence->status == want[1];
}

/* DMs (one per pair), typing, status and presence, who. */
static void test_dm_presence_typing(void **state)
{
	it_client a, b;
	char na[64], nb[64];
	uint64_t dm, want[2];
	Chat__ServerFrame *f;
	(void)state;
	it_unique(na, sizeof na, "dana");
	it_unique(nb, sizeof nb, "erin");
	open_ready(&a, na, 1);
	open_ready(&b, nb, 1);
	f = expect_kind(it_open_dm(&a, nb), CHAT__SERVER_FRAME__KIND_CHANNEL, "dm");
	dm = f->channel->id;
	assert_int_equal(f->channel->kind, CHAT__CHANNEL_KIND__KIND_DM);
	assert_string_equal(f->channel->dm_peer, nb);
	assert_int_equal(f->channel->dm_peer_status, CHAT__STATUS__STATUS_ONLINE);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect_kind(it_open_dm(&b, na), CHAT__SERVER_FRAME__KIND_CHANNEL, "dm back");
	assert_int_equal(f->channel->id, dm);
	assert_string_equal(f->channel->dm_peer, na);
	chat__server_frame__free_unpacked(f, NULL);
	expect_error(it_join(&a, dm), CHAT__CODE__PERMISSION_DENIED, "join dm");
	expect_error(it_leave(&a, dm), CHAT__CODE__FAILED_PRECONDITION, "leave dm");
	expect_error(it_open_dm(&a, na), CHAT__CODE__INVALID_ARGUMENT, "dm self");
	expect_error(it_open_dm(&a, "nobody-at-all"), CHAT__CODE__NOT_FOUND,
	             "dm unknown");
	send_ok(&a, dm, NULL, "hi there");
	assert_int_equal(it_collect(&b, dm, 1, NULL, NULL, 5000), 1);

	/* typing reaches the other side only */
	{
		Chat__ClientFrame tf = CHAT__CLIENT_FRAME__INIT;
		Chat__TypingReq tr = CHAT__TYPING_REQ__INIT;
		tr.channel_id = dm;
		tf.kind_case = CHAT__CLIENT_FRAME__KIND_TYPING;
		tf.typing = &tr;
		assert_true(it_send(&a, &tf) != 0);
		f = it_wait_push(&b, CHAT__SERVER_FRAME__KIND_TYPING, NULL, NULL, 5000);
		assert_non_null(f);
		assert_int_equal(f->typing->user_id, a.auth.user_id);
		chat__server_frame__free_unpacked(f, NULL);
		it_pump(&a, 300, NULL, NULL);
		assert_int_equal(it_count(&a, CHAT__SERVER_FRAME__KIND_TYPING), 0);
	}

	/* status: b goes busy; a sees it pushed and in who */
	f = expect_kind(it_set_status(&b, CHAT__STATUS__STATUS_BUSY),
	                CHAT__SERVER_FRAME__KIND_OK, "status");
	chat__server_frame__free_unpacked(f, NULL);
	want[0] = b.auth.user_id;
	want[1] = CHAT__STATUS__STATUS_BUSY;
	f = it_wait_push(&a, CHAT__SERVER_FRAME__KIND_PRESENCE, presence_is, want,
	                 5000);
	assert_non_null(f);
	assert_string_equal(f->presence->user_name, nb);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect_kind(it_who(&a, dm), CHAT__SERVER_FRAME__KIND_WHO, "who");
	assert_int_equal(f->who->n_users, 2);
	for (size_t i = 0; i < f->who->n_users; i++)
		if (f->who->users[i]->user_id == b.auth.user_id)
			assert_int_equal(f->who->users[i]->status,
			                 CHAT__STATUS__STATUS_BUSY);
	chat__server_frame__free_unpacked(f, NULL);
	{
		Chat__ClientFrame sf = CHAT__CLIENT_FRAME__INIT;
		Chat__SetStatusReq sr = CHAT__SET_STATUS_REQ__INIT;
		sr.status = (Chat__Status)42;
		sf.kind_case = CHAT__CLIENT_FRAME__KIND_SET_STATUS;
		sf.set_status = &sr;
		expect_error(it_wait_reply(&b, it_send(&b, &sf), 5000),
		             CHAT__CODE__INVALID_ARGUMENT, "bad status");
	}
	/* b disconnects: a sees offline with a last-seen time */
	it_client_close(&b);
	want[1] = CHAT__STATUS__STATUS_OFFLINE;
	f = it_wait_push(&a, CHAT__SERVER_FRAME__KIND_PRESENCE, presence_is, want,
	                 5000);
	assert_non_null(f);
	assert_true(f->presence->last_seen_ms > 0);
	chat__server_frame__free_unpacked(f, NULL);
	it_client_close(&a);
}

/* The same client_msg_id sent twice (and again after a reconnect) is
 * acknowledged each time but stored and delivered once. */
static void test_retry_stored_once(void **state)
{
	it_client a, b;
	char na[64], nb[64];
	const char *members[] = {NULL, NULL};
	uint64_t ch, seqs[4];
	char bodies[4][64];
	Chat__ServerFrame *f;
	char e[256];
	(void)state;
	it_unique(na, sizeof na, "fay");
	it_unique(nb, sizeof nb, "gus");
	open_ready(&a, na, 1);
	open_ready(&b, nb, 1);
	members[0] = nb;
	ch = make_channel(&a, "retry", members);
	send_ok(&a, ch, "same-id-0001", "first copy");
	send_ok(&a, ch, "same-id-0001", "second copy");
	it_client_drop(&a);
	assert_int_equal(it_client_reconnect(&a, e, sizeof e), 0);
	send_ok(&a, ch, "same-id-0001", "third copy");
	send_ok(&a, ch, "other-id-0002", "next");
	/* b sees seq 1 "first copy" and seq 2 "next"; a retry may bring the
	 * stored first copy again (same seq and body), which a client drops
	 * by its seq. Nothing else may arrive. */
	{
		uint64_t last = 0;
		int64_t deadline = (int64_t)time(NULL) + 10;
		size_t copies = 0;
		while (last < 2 && (int64_t)time(NULL) < deadline) {
			if (it_collect(&b, ch, 1, seqs, bodies, 1000) != 1)
				continue;
			if (seqs[0] == 1)
				assert_string_equal(bodies[0], "first copy");
			else if (seqs[0] == 2)
				assert_string_equal(bodies[0], "next");
			else
				fail_msg("unexpected seq %llu",
				         (unsigned long long)seqs[0]);
			if (seqs[0] <= last) {
				copies++;
				continue;
			}
			assert_int_equal(seqs[0], last + 1);
			last = seqs[0];
		}
		assert_int_equal(last, 2);
		it_pump(&b, 500, NULL, NULL);
		while (it_collect(&b, ch, 1, seqs, bodies, 0) == 1) {
			assert_true(seqs[0] <= 2);
			copies++;
		}
		assert_true(copies <= 2); /* at most one per retry */
	}
	f = expect_kind(it_history(&b, ch, 0, 0, 50),
	                CHAT__SERVER_FRAME__KIND_HISTORY, "history");
	assert_int_equal(f->history->n_messages, 2);
	chat__server_frame__free_unpacked(f, NULL);
	it_client_close(&a);
	it_client_close(&b);
}

/* Sends and then a Leave, pipelined: the Leave can overtake sends that
 * are acknowledged (fleet: the log holds them) but not yet stored. Every
 * acknowledged send must be stored all the same, once, in order. */
static void test_send_then_leave(void **state)
{
	enum { N = 40 };
	it_client a, b;
	char na[64], nb[64], ids[N][24], body[32];
	const char *members[] = {NULL, NULL};
	uint64_t ch, req[N], leave_req;
	Chat__ClientFrame cf = CHAT__CLIENT_FRAME__INIT;
	Chat__SendReq sr = CHAT__SEND_REQ__INIT;
	Chat__LeaveReq lr = CHAT__LEAVE_REQ__INIT;
	Chat__ServerFrame *f;
	int acked[N], nacked = 0;
	size_t k = 0;
	(void)state;
	it_unique(na, sizeof na, "hal");
	it_unique(nb, sizeof nb, "ida");
	open_ready(&a, na, 1);
	open_ready(&b, nb, 1);
	members[0] = nb;
	ch = make_channel(&a, "leaving", members);
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof ids[i], "leave-%04d", i);
		snprintf(body, sizeof body, "last words %d", i);
		sr.channel_id = ch;
		sr.client_msg_id = ids[i];
		sr.body = body;
		cf.req_id = 0;
		cf.kind_case = CHAT__CLIENT_FRAME__KIND_SEND;
		cf.send = &sr;
		req[i] = it_send(&a, &cf);
		assert_true(req[i] != 0);
	}
	lr.channel_id = ch;
	cf.req_id = 0;
	cf.kind_case = CHAT__CLIENT_FRAME__KIND_LEAVE;
	cf.leave = &lr;
	leave_req = it_send(&a, &cf);
	assert_true(leave_req != 0);
	for (int i = 0; i < N; i++) {
		f = it_wait_reply(&a, req[i], 10000);
		assert_non_null(f);
		acked[i] = f->kind_case == CHAT__SERVER_FRAME__KIND_SEND_ACK;
		if (!acked[i])
			assert_int_equal(f->kind_case,
			                 CHAT__SERVER_FRAME__KIND_ERROR);
		nacked += acked[i];
		chat__server_frame__free_unpacked(f, NULL);
	}
	f = it_wait_reply(&a, leave_req, 10000);
	assert_non_null(f);
	assert_int_not_equal(f->kind_case, CHAT__SERVER_FRAME__KIND_ERROR);
	chat__server_frame__free_unpacked(f, NULL);
	assert_true(nacked > 0);
	/* b's history holds every acknowledged send, once, in send order
	 * (the store may take a moment to catch up) */
	for (int tries = 0;; tries++) {
		f = expect_kind(it_history(&b, ch, 0, 0, 100),
		                CHAT__SERVER_FRAME__KIND_HISTORY, "history");
		if (f->history->n_messages >= (size_t)nacked || tries == 50)
			break;
		chat__server_frame__free_unpacked(f, NULL);
		usleep(100 * 1000);
	}
	for (int i = 0; i < N; i++) {
		if (!acked[i])
			continue;
		snprintf(body, sizeof body, "last words %d", i);
		while (k < f->history->n_messages &&
		       strcmp(f->history->messages[k]->body, body) != 0)
			k++;
		if (k == f->history->n_messages)
			fail_msg("acknowledged send %d (%s) is not in history "
			         "(%zu messages)",
			         i, ids[i], f->history->n_messages);
		assert_int_equal(f->history->messages[k]->seq, k + 1);
	}
	assert_int_equal(f->history->n_messages, (size_t)nacked);
	chat__server_frame__free_unpacked(f, NULL);
	it_client_close(&a);
	it_client_close(&b);
}

/* A client drops mid-conversation; messages go on; it reconnects,
 * resumes, and ends with every message exactly once, in order. */
static void test_drop_and_resume(void **state)
{
	it_client a, b;
	char na[64], nb[64], e[256];
	const char *members[] = {NULL, NULL};
	uint64_t ch, seqs[64], last;
	char bodies[64][64];
	Chat__ServerFrame *f;
	(void)state;
	it_unique(na, sizeof na, "hal");
	it_unique(nb, sizeof nb, "ivy");
	open_ready(&a, na, 1);
	open_ready(&b, nb, 1);
	members[0] = nb;
	ch = make_channel(&a, "resume", members);
	for (int i = 0; i < 10; i++) {
		char body[32];
		snprintf(body, sizeof body, "m%d", i + 1);
		send_ok(&a, ch, NULL, body);
	}
	assert_int_equal(it_collect(&b, ch, 10, seqs, bodies, 10000), 10);
	last = seqs[9];
	assert_int_equal(last, 10);
	it_client_drop(&b);
	for (int i = 10; i < 40; i++) {
		char body[32];
		snprintf(body, sizeof body, "m%d", i + 1);
		send_ok(&a, ch, NULL, body);
	}
	assert_int_equal(it_client_reconnect(&b, e, sizeof e), 0);
	{
		Chat__ClientFrame rf = CHAT__CLIENT_FRAME__INIT;
		Chat__ResumeReq rr = CHAT__RESUME_REQ__INIT;
		Chat__ChannelPos pos = CHAT__CHANNEL_POS__INIT;
		Chat__ChannelPos *pp = &pos;
		uint64_t id;
		pos.channel_id = ch;
		pos.last_seq = last;
		rr.n_positions = 1;
		rr.positions = &pp;
		rf.kind_case = CHAT__CLIENT_FRAME__KIND_RESUME;
		rf.resume = &rr;
		id = it_send(&b, &rf);
		f = expect_kind(it_wait_reply(&b, id, 10000),
		                CHAT__SERVER_FRAME__KIND_RESUME_DONE, "resume");
		assert_int_equal(f->resume_done->n_positions, 1);
		/* Replay covers what was stored when it ran; acknowledged
		 * messages not yet stored then arrive live. */
		assert_true(f->resume_done->positions[0]->last_seq >= 10);
		assert_true(f->resume_done->positions[0]->last_seq <= 40);
		chat__server_frame__free_unpacked(f, NULL);
	}
	/* meanwhile a sends more; b must see 11..45 once each, in order */
	for (int i = 40; i < 45; i++) {
		char body[32];
		snprintf(body, sizeof body, "m%d", i + 1);
		send_ok(&a, ch, NULL, body);
	}
	/* A client keeps seq == last + 1 and drops seq <= last (a message
	 * stored while the replay ran may come both live and replayed). It
	 * must end with 11..45, each once, with no gap. */
	{
		uint64_t next = 11;
		int64_t deadline = (int64_t)time(NULL) + 15;
		while (next <= 45 && (int64_t)time(NULL) < deadline) {
			if (it_collect(&b, ch, 1, seqs, bodies, 1000) != 1)
				continue;
			if (seqs[0] < next)
				continue; /* duplicate */
			if (seqs[0] > next) {
				/* a gap: fill it from history, as PROTOCOL.md says */
				Chat__ServerFrame *h = expect_kind(
				    it_history(&b, ch, next - 1, 1, 500),
				    CHAT__SERVER_FRAME__KIND_HISTORY, "gap fill");
				for (size_t k = 0; k < h->history->n_messages; k++) {
					Chat__Message *m = h->history->messages[k];
					char body[32];
					if (m->seq != next)
						fail_msg("history gap at %llu",
						         (unsigned long long)next);
					snprintf(body, sizeof body, "m%d", (int)next);
					assert_string_equal(m->body, body);
					next++;
				}
				chat__server_frame__free_unpacked(h, NULL);
				if (seqs[0] < next)
					continue;
				if (seqs[0] > next)
					fail_msg("seq %llu missing from history",
					         (unsigned long long)next);
			}
			char body[32];
			snprintf(body, sizeof body, "m%d", (int)next);
			assert_string_equal(bodies[0], body);
			next++;
		}
		assert_int_equal(next, 46);
	}
	it_pump(&b, 300, NULL, NULL);
	while (it_collect(&b, ch, 1, seqs, NULL, 0) == 1)
		assert_true(seqs[0] <= 45); /* only duplicates may remain */

	it_client_close(&a);
	it_client_close(&b);
}

static char *b64url(const char *s)
{
	size_t n = sodium_base64_encoded_len(strlen(s),
	                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *o = malloc(n);
	sodium_bin2base64(o, n, (const unsigned char *)s, strlen(s),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return o;
}

static void expect_refused(const char *token, const char *what)
{
	chatc_ws *ws = NULL;
	int status = 0;
	char e[256];
	if (chatc_ws_connect(srv.edge_url, token, 5000, &ws, &status, e,
	                     sizeof e) == 0) {
		/* Some edges accept, then send UNAUTHENTICATED and close 4401. */
		const uint8_t *d;
		size_t n;
		int op, r = 0;
		for (int i = 0; i < 100 && r == 0; i++) {
			r = chatc_ws_read(ws, &d, &n, &op, e, sizeof e);
			if (r == 0)
				usleep(20000);
		}
		chatc_ws_free(ws);
		if (r != -2 && r != -1)
			fail_msg("%s: session was accepted", what);
		return;
	}
	if (status != 401)
		fail_msg("%s: want HTTP 401, got %d (%s)", what, status, e);
}

/* Every bad input gets a clear error; the session stays usable; nothing
 * stored is lost. */
static void test_bad_input(void **state)
{
	it_client a, b;
	char na[64], nb[64], e[512];
	const char *members[] = {NULL};
	uint64_t ch, seqs[4];
	Chat__ServerFrame *f;
	chatc_auth tmp;
	(void)state;
	it_unique(na, sizeof na, "jay");
	it_unique(nb, sizeof nb, "kim");
	open_ready(&a, na, 1);
	open_ready(&b, nb, 1);
	ch = make_channel(&a, "private", members);
	send_ok(&a, ch, NULL, "precious");

	/* garbage, truncated protobuf, text frame, oversize, unknown kind */
	assert_int_equal(chatc_ws_send(a.ws, CHATC_WS_BINARY, "\xff\xff\xff\xff\x0f", 5), 0);
	expect_error(it_wait_reply(&a, 0, 5000), CHAT__CODE__INVALID_ARGUMENT, "garbage");
	{
		Chat__ClientFrame cf = CHAT__CLIENT_FRAME__INIT;
		Chat__SendReq sr = CHAT__SEND_REQ__INIT;
		uint8_t buf[256];
		size_t n;
		cf.req_id = 777;
		sr.channel_id = ch;
		sr.client_msg_id = (char *)"trunc";
		sr.body = (char *)"truncated frame body";
		cf.kind_case = CHAT__CLIENT_FRAME__KIND_SEND;
		cf.send = &sr;
		n = chat__client_frame__pack(&cf, buf);
		assert_int_equal(chatc_ws_send(a.ws, CHATC_WS_BINARY, buf, n - 5), 0);
		f = it_wait_reply(&a, 0, 5000);
		if (!f)
			f = it_wait_reply(&a, 777, 100);
		expect_error(f, CHAT__CODE__INVALID_ARGUMENT, "truncated");
	}
	assert_int_equal(chatc_ws_send(a.ws, CHATC_WS_TEXT, "{\"hello\":1}", 11), 0);
	expect_error(it_wait_reply(&a, 0, 5000), CHAT__CODE__INVALID_ARGUMENT, "text frame");
	{
		size_t n = 70 * 1024;
		char *big = malloc(n);
		memset(big, 'x', n);
		assert_int_equal(chatc_ws_send(a.ws, CHATC_WS_BINARY, big, n), 0);
		free(big);
		expect_error(it_wait_reply(&a, 0, 5000), CHAT__CODE__RESOURCE_EXHAUSTED,
		             "oversize frame");
	}
	assert_int_equal(chatc_ws_send(a.ws, CHATC_WS_BINARY, "\x08\x2a\xfa\x06\x00", 5), 0);
	expect_error(it_wait_reply(&a, 42, 5000), CHAT__CODE__UNIMPLEMENTED, "unknown kind");
	assert_int_equal(chatc_ws_send(a.ws, CHATC_WS_BINARY, "\x08\x2b", 2), 0);
	expect_error(it_wait_reply(&a, 43, 5000), CHAT__CODE__UNIMPLEMENTED, "no kind");

	/* message rules */
	expect_error(it_send_msg(&a, ch, NULL, ""), CHAT__CODE__INVALID_ARGUMENT, "empty");
	{
		char *longb = malloc(4002);
		memset(longb, 'y', 4001);
		longb[4001] = '\0';
		expect_error(it_send_msg(&a, ch, NULL, longb), CHAT__CODE__INVALID_ARGUMENT,
		             "over-long");
		longb[4000] = '\0';
		send_ok(&a, ch, NULL, longb); /* exactly the limit is fine */
		free(longb);
	}
	expect_error(it_send_msg(&a, ch, "", "no id"), CHAT__CODE__INVALID_ARGUMENT,
	             "empty client_msg_id");
	expect_error(it_send_msg(&a, ch, NULL, "bell\x07"), CHAT__CODE__INVALID_ARGUMENT,
	             "control chars");
	expect_error(it_send_msg(&a, ch, NULL, "\xc3\x28"), CHAT__CODE__INVALID_ARGUMENT,
	             "bad utf-8");

	/* authorisation */
	expect_error(it_send_msg(&b, ch, NULL, "let me in"),
	             CHAT__CODE__PERMISSION_DENIED, "non-member send");
	expect_error(it_history(&b, ch, 0, 0, 10), CHAT__CODE__PERMISSION_DENIED,
	             "non-member history");
	expect_error(it_mark_read(&b, ch, 1), CHAT__CODE__PERMISSION_DENIED,
	             "non-member mark read");
	expect_error(it_join(&b, 987654321), CHAT__CODE__NOT_FOUND, "unknown channel");
	expect_error(it_history(&b, 987654321, 0, 0, 10), CHAT__CODE__NOT_FOUND,
	             "unknown channel history");
	{
		const char *m2[] = {"no-such-user-xyz", NULL};
		expect_error(it_create(&a, "x", m2), CHAT__CODE__NOT_FOUND,
		             "create with unknown member");
		expect_error(it_create(&a, "", NULL), CHAT__CODE__INVALID_ARGUMENT,
		             "create with empty name");
	}

	/* the session still works after all that */
	f = expect_kind(it_ping(&a), CHAT__SERVER_FRAME__KIND_PONG, "ping");
	assert_int_equal(f->pong->client_time_ms, 1234);
	chat__server_frame__free_unpacked(f, NULL);
	assert_false(a.closed);

	/* tokens */
	expect_refused(NULL, "no token");
	expect_refused("garbage.token.here", "garbage token");
	{
		char tok[4096];
		snprintf(tok, sizeof tok, "%s", a.auth.token);
		tok[strlen(tok) - 2] ^= 1; /* break the signature */
		expect_refused(tok, "bad signature");
	}
	{
		char payload[512], tok[2048];
		char *h = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}"), *p;
		snprintf(payload, sizeof payload,
		         "{\"sub\":\"%llu\",\"name\":\"%s\",\"iss\":\"chat-api\","
		         "\"aud\":\"chat-edge\",\"exp\":%ld}",
		         (unsigned long long)a.auth.user_id, na, (long)time(NULL) + 600);
		p = b64url(payload);
		snprintf(tok, sizeof tok, "%s.%s.", h, p);
		expect_refused(tok, "alg none");
		free(h);
		free(p);
	}
	if (!srv.external) {
		/* expired, and HS512, both signed with the server's own key */
		char path[400], *key = NULL, *tok;
		size_t klen = 0;
		jwt_t *j = NULL;
		snprintf(path, sizeof path, "%s/jwt.secret", srv.data_dir);
		assert_int_equal(chat_read_file(path, 4096, &key, &klen), 0);
		while (klen && key[klen - 1] == '\n')
			key[--klen] = '\0';
		tok = chat_jwt_issue((unsigned char *)key, klen, a.auth.user_id, na, -600);
		assert_non_null(tok);
		expect_refused(tok, "expired token");
		free(tok);
		tok = chat_jwt_issue((unsigned char *)key, klen, a.auth.user_id, na, 600);
		chatc_ws *ws = NULL;
		int st = 0;
		assert_int_equal(chatc_ws_connect(srv.edge_url, tok, 5000, &ws, &st, e, sizeof e), 0);
		chatc_ws_free(ws); /* the same key, valid claims: accepted */
		free(tok);
		assert_int_equal(jwt_new(&j), 0);
		jwt_add_grant(j, "sub", "1");
		jwt_add_grant(j, "name", na);
		jwt_add_grant(j, "iss", "chat-api");
		jwt_add_grant(j, "aud", "chat-edge");
		jwt_add_grant_int(j, "exp", (long)time(NULL) + 600);
		jwt_set_alg(j, JWT_ALG_HS512, (unsigned char *)key, (int)klen);
		tok = jwt_encode_str(j);
		expect_refused(tok, "HS512 token");
		free(tok);
		jwt_free(j);
		free(key);
	}

	/* accounts */
	assert_int_equal(chatc_signup(srv.api_url, na, "another-password", 10000,
	                              &tmp, e, sizeof e), 409);
	assert_int_equal(chatc_signup(srv.api_url, "bad name!", "password123",
	                              10000, &tmp, e, sizeof e), 400);
	assert_int_equal(chatc_signup(srv.api_url, "shortpw", "short", 10000,
	                              &tmp, e, sizeof e), 400);
	assert_int_equal(chatc_login(srv.api_url, na, "wrong-password", 10000, &tmp,
	                             e, sizeof e), 401);

	/* nothing stored was lost */
	f = expect_kind(it_history(&a, ch, 0, 0, 50),
	                CHAT__SERVER_FRAME__KIND_HISTORY, "history");
	assert_int_equal(f->history->n_messages, 2);
	assert_string_equal(f->history->messages[0]->body, "precious");
	chat__server_frame__free_unpacked(f, NULL);
	assert_int_equal(it_collect(&a, ch, 2, seqs, NULL, 5000), 2);
	it_client_close(&a);
	it_client_close(&b);
}

/* Stop chatd cleanly and start it again on the same data: accounts,
 * channels and history survive; seqs continue. */
static void test_restart_keeps_data(void **state)
{
	it_client a;
	char na[64];
	const char *members[] = {NULL};
	uint64_t ch, seqs[2];
	Chat__ServerFrame *f;
	(void)state;
	if (srv.external)
		skip();
	it_unique(na, sizeof na, "lee");
	open_ready(&a, na, 1);
	ch = make_channel(&a, "durable", members);
	send_ok(&a, ch, NULL, "before restart 1");
	send_ok(&a, ch, NULL, "before restart 2");
	it_client_close(&a);
	assert_int_equal(it_server_stop(&srv, SIGTERM), 0);
	assert_int_equal(it_server_start(&srv, chatd_path, srv.data_dir, NULL), 0);
	open_ready(&a, na, 0);
	f = expect_kind(it_history(&a, ch, 0, 0, 50),
	                CHAT__SERVER_FRAME__KIND_HISTORY, "history after restart");
	assert_int_equal(f->history->n_messages, 2);
	assert_string_equal(f->history->messages[1]->body, "before restart 2");
	chat__server_frame__free_unpacked(f, NULL);
	send_ok(&a, ch, NULL, "after restart");
	assert_int_equal(it_collect(&a, ch, 1, seqs, NULL, 10000), 1);
	assert_int_equal(seqs[0], 3);
	it_client_close(&a);
}

/* kill -9 right after the acknowledgements: every acknowledged message
 * is there after a restart (chatd acknowledges only what SQLite holds). */
static void test_crash_keeps_acked(void **state)
{
	it_client a;
	char na[64];
	const char *members[] = {NULL};
	uint64_t ch, ids[150];
	size_t acked = 0;
	Chat__ServerFrame *f;
	(void)state;
	if (srv.external)
		skip();
	it_unique(na, sizeof na, "max");
	open_ready(&a, na, 1);
	ch = make_channel(&a, "crash", members);
	for (int i = 0; i < 150; i++) {
		Chat__ClientFrame cf = CHAT__CLIENT_FRAME__INIT;
		Chat__SendReq sr = CHAT__SEND_REQ__INIT;
		char cmid[32], body[32];
		snprintf(cmid, sizeof cmid, "crash-%d", i);
		snprintf(body, sizeof body, "pipelined %d", i);
		sr.channel_id = ch;
		sr.client_msg_id = cmid;
		sr.body = body;
		cf.kind_case = CHAT__CLIENT_FRAME__KIND_SEND;
		cf.send = &sr;
		ids[i] = it_send(&a, &cf);
		assert_true(ids[i] != 0);
	}
	for (int i = 0; i < 150; i++) {
		f = it_wait_reply(&a, ids[i], 10000);
		assert_non_null(f);
		if (f->kind_case == CHAT__SERVER_FRAME__KIND_SEND_ACK)
			acked++;
		chat__server_frame__free_unpacked(f, NULL);
	}
	assert_int_equal(acked, 150);
	assert_true(it_server_stop(&srv, SIGKILL) != 0);
	it_client_close(&a);
	assert_int_equal(it_server_start(&srv, chatd_path, srv.data_dir, NULL), 0);
	open_ready(&a, na, 0);
	f = expect_kind(it_history(&a, ch, 0, 0, 500),
	                CHAT__SERVER_FRAME__KIND_HISTORY, "history after crash");
	assert_int_equal(f->history->n_messages, 150);
	for (size_t i = 0; i < 150; i++)
		assert_int_equal(f->history->messages[i]->seq, i + 1);
	chat__server_frame__free_unpacked(f, NULL);
	it_client_close(&a);
}

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	return it_server_start(&srv, chatd_path, NULL, NULL);
}

static int teardown(void **state)
{
	int rc;
	(void)state;
	rc = it_server_stop(&srv, SIGTERM);
	if (rc != 0)
		fprintf(stderr, "chatd exit status %d; log in %s\n", rc, srv.log_file);
	else
		it_server_cleanup(&srv);
	return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conversation),
		cmocka_unit_test(test_dm_presence_typing),
		cmocka_unit_test(test_retry_stored_once),
		cmocka_unit_test(test_send_then_leave),
		cmocka_unit_test(test_drop_and_resume),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_restart_keeps_data),
		cmocka_unit_test(test_crash_keeps_acked),
	};
	signal(SIGPIPE, SIG_IGN);
	chatd_path = argc > 1 ? argv[1] : getenv("CHATD");
	if (!chatd_path && !getenv("CHAT_TEST_API_URL")) {
		fprintf(stderr, "usage: %s PATH-TO-CHATD\n", argv[0]);
		return 2;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
