/* The chatc session state machine without a socket: sequencing, dedupe,
 * gap fill, history paging, pending sends, resume, errors. Outgoing
 * ClientFrames are captured through the send hook; ServerFrames are fed
 * as bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatc.h"

#define ME 7
#define BOB 8

typedef struct harness {
	chatc *c;
	Chat__ClientFrame *out[256];
	int n_out;
	int ev_types[1024];
	uint64_t ev_seq[1024];   /* MESSAGE: the seq; else the channel */
	int n_ev;
} harness;

static int hook(void *user, const uint8_t *frame, size_t len)
{
	harness *h = user;
	Chat__ClientFrame *f = chat__client_frame__unpack(NULL, len, frame);
	assert_non_null(f);
	assert_true(h->n_out < 256);
	h->out[h->n_out++] = f;
	return 0;
}

static void on_event(void *user, chatc *c, const chatc_event *ev)
{
	harness *h = user;
	(void)c;
	if (h->n_ev >= 1024)
		return;
	h->ev_types[h->n_ev] = ev->type;
	h->ev_seq[h->n_ev] = ev->type == CHATC_EV_MESSAGE ? ev->msg->seq
	                                                   : ev->channel_id;
	h->n_ev++;
}

static void clear_out(harness *h)
{
	for (int i = 0; i < h->n_out; i++)
		chat__client_frame__free_unpacked(h->out[i], NULL);
	h->n_out = 0;
	h->n_ev = 0;
}

static void feed(harness *h, Chat__ServerFrame *f)
{
	size_t len = chat__server_frame__get_packed_size(f);
	uint8_t *buf = malloc(len + 1);
	chat__server_frame__pack(f, buf);
	assert_int_equal(chatc_feed(h->c, buf, len), 0);
	free(buf);
}

static void feed_welcome(harness *h)
{
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__Welcome w = CHAT__WELCOME__INIT;
	w.user_id = ME;
	w.user_name = (char *)"me";
	w.max_body_bytes = 4000;
	w.status = CHAT__STATUS__STATUS_ONLINE;
	f.kind_case = CHAT__SERVER_FRAME__KIND_WELCOME;
	f.welcome = &w;
	feed(h, &f);
}

/* A channel list of n channels: ids[i] with last_seq lasts[i]. */
static void feed_list(harness *h, const uint64_t *ids, const uint64_t *lasts,
                      size_t n)
{
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__ChannelList l = CHAT__CHANNEL_LIST__INIT;
	Chat__ChannelInfo info[8], *pi[8];
	char names[8][16];
	for (size_t i = 0; i < n; i++) {
		chat__channel_info__init(&info[i]);
		snprintf(names[i], sizeof names[i], "ch%llu",
		         (unsigned long long)ids[i]);
		info[i].id = ids[i];
		info[i].name = names[i];
		info[i].kind = CHAT__CHANNEL_KIND__KIND_GROUP;
		info[i].last_seq = lasts[i];
		info[i].member_count = 2;
		pi[i] = &info[i];
	}
	l.n_channels = n;
	l.channels = pi;
	f.kind_case = CHAT__SERVER_FRAME__KIND_CHANNEL_LIST;
	f.channel_list = &l;
	feed(h, &f);
}

static void init_msg(Chat__Message *m, uint64_t ch, uint64_t seq,
                     uint64_t sender, const char *cmid, char *body)
{
	chat__message__init(m);
	m->channel_id = ch;
	m->seq = seq;
	m->sender_id = sender;
	m->sender_name = (char *)(sender == ME ? "me" : "bob");
	m->client_msg_id = (char *)(cmid ? cmid : "x");
	snprintf(body, 32, "m%llu", (unsigned long long)seq);
	m->body = body;
}

static void push(harness *h, uint64_t ch, uint64_t seq, uint64_t sender,
                 const char *cmid)
{
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__Message m;
	char body[32];
	init_msg(&m, ch, seq, sender, cmid, body);
	f.kind_case = CHAT__SERVER_FRAME__KIND_MESSAGE;
	f.message = &m;
	feed(h, &f);
}

/* A history page answering req_id with seqs from..to (none when from >
 * to). */
static void feed_page(harness *h, uint64_t req_id, uint64_t ch, uint64_t from,
                      uint64_t to, int more, uint64_t last)
{
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__HistoryPage p = CHAT__HISTORY_PAGE__INIT;
	size_t n = from <= to ? (size_t)(to - from + 1) : 0;
	Chat__Message *ms = calloc(n + 1, sizeof *ms);
	Chat__Message **pm = calloc(n + 1, sizeof *pm);
	char (*bodies)[32] = calloc(n + 1, 32);
	for (size_t i = 0; i < n; i++) {
		init_msg(&ms[i], ch, from + i, BOB, NULL, bodies[i]);
		pm[i] = &ms[i];
	}
	p.channel_id = ch;
	p.n_messages = n;
	p.messages = pm;
	p.more = more;
	p.last_seq = last;
	f.req_id = req_id;
	f.kind_case = CHAT__SERVER_FRAME__KIND_HISTORY;
	f.history = &p;
	feed(h, &f);
	free(ms);
	free(pm);
	free(bodies);
}

static void feed_simple(harness *h, uint64_t req_id, int kind, void *msg)
{
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	f.req_id = req_id;
	f.kind_case = kind;
	f.error = msg; /* any member of the union */
	feed(h, &f);
}

static harness *setup_h(void)
{
	harness *h = calloc(1, sizeof *h);
	chatc_opts o;
	char err[128];
	memset(&o, 0, sizeof o);
	o.send_hook = hook;
	o.on_event = on_event;
	o.user = h;
	o.no_reconnect = 1;
	h->c = chatc_new(&o, err, sizeof err);
	assert_non_null(h->c);
	chatc_test_online(h->c, 0);
	feed_welcome(h);
	return h;
}

static int setup(void **state)
{
	*state = setup_h();
	return 0;
}

static int teardown(void **state)
{
	harness *h = *state;
	clear_out(h);
	chatc_free(h->c);
	free(h);
	return 0;
}

static const chatc_channel *chan(harness *h, uint64_t id)
{
	const chatc_channel *ch = chatc_channel_get(h->c, id);
	assert_non_null(ch);
	return ch;
}

/* The messages held are exactly first..last. */
static void assert_held(harness *h, uint64_t id, uint64_t first, uint64_t last)
{
	const chatc_channel *ch = chan(h, id);
	assert_int_equal(ch->held_seq, last);
	assert_int_equal(ch->first_seq, first);
	assert_int_equal(ch->n_msgs, last - first + 1);
	for (size_t i = 0; i < ch->n_msgs; i++) {
		char want[32];
		assert_int_equal(ch->msgs[i].seq, first + i);
		snprintf(want, sizeof want, "m%llu",
		         (unsigned long long)(first + i));
		assert_string_equal(ch->msgs[i].body, want);
	}
}

/* The MESSAGE events seen, in order, are exactly from..to. */
static void assert_appended(harness *h, uint64_t from, uint64_t to)
{
	uint64_t want = from;
	for (int i = 0; i < h->n_ev; i++) {
		if (h->ev_types[i] != CHATC_EV_MESSAGE)
			continue;
		assert_int_equal(h->ev_seq[i], want);
		want++;
	}
	assert_int_equal(want, to + 1);
}

static void test_welcome_and_list(void **state)
{
	harness *h = *state;
	uint64_t ids[] = {3, 1}, lasts[] = {10, 0};
	assert_int_equal(chatc_user_id(h->c), ME);
	assert_string_equal(chatc_user_name(h->c), "me");
	assert_int_equal(chatc_max_body(h->c), 4000);
	feed_list(h, ids, lasts, 2);
	assert_int_equal(chatc_channel_count(h->c), 2);
	assert_int_equal(chatc_channel_at(h->c, 0)->id, 1);
	assert_int_equal(chatc_channel_at(h->c, 1)->id, 3);
	/* A channel starts at the server's last seq, holding nothing. */
	assert_int_equal(chan(h, 3)->held_seq, 10);
	assert_int_equal(chan(h, 3)->n_msgs, 0);
	assert_int_equal(chan(h, 3)->more_before, 1);
	assert_string_equal(chan(h, 3)->name, "ch3");
	assert_int_equal(chan(h, 1)->more_before, 0);
	/* A later list without channel 1 removes it. */
	feed_list(h, ids, lasts, 1);
	assert_int_equal(chatc_channel_count(h->c), 1);
	assert_null(chatc_channel_get(h->c, 1));
}

static void test_in_order_and_dupes(void **state)
{
	harness *h = *state;
	uint64_t ids[] = {5}, lasts[] = {0};
	feed_list(h, ids, lasts, 1);
	clear_out(h);
	push(h, 5, 1, BOB, NULL);
	push(h, 5, 2, BOB, NULL);
	push(h, 5, 2, BOB, NULL); /* duplicate */
	push(h, 5, 1, BOB, NULL); /* old */
	push(h, 5, 3, ME, NULL);
	assert_held(h, 5, 1, 3);
	assert_appended(h, 1, 3);
	assert_int_equal(chan(h, 5)->unread, 2); /* my own does not count */
	assert_int_equal(h->n_out, 0);           /* nothing asked */
}

static void test_gap_fill(void **state)
{
	harness *h = *state;
	uint64_t ids[] = {5}, lasts[] = {0};
	Chat__ClientFrame *q;
	feed_list(h, ids, lasts, 1);
	push(h, 5, 1, BOB, NULL);
	push(h, 5, 2, BOB, NULL);
	push(h, 5, 3, BOB, NULL);
	clear_out(h);

	/* 6 after 3: ask for history after 3 and show nothing yet. */
	push(h, 5, 6, BOB, NULL);
	assert_held(h, 5, 1, 3);
	assert_int_equal(h->n_out, 1);
	q = h->out[0];
	assert_int_equal(q->kind_case, CHAT__CLIENT_FRAME__KIND_HISTORY);
	assert_int_equal(q->history->channel_id, 5);
	assert_int_equal(q->history->anchor_seq, 3);
	assert_int_equal(q->history->direction,
	                 CHAT__HISTORY_REQ__DIRECTION__AFTER);
	/* More early ones do not ask again. */
	push(h, 5, 7, BOB, NULL);
	assert_int_equal(h->n_out, 1);
	/* The page brings 4..5 (6 kept) and the kept 6, 7 follow. */
	feed_page(h, q->req_id, 5, 4, 5, 0, 7);
	assert_held(h, 5, 1, 7);
	assert_appended(h, 4, 7);
	assert_int_equal(h->n_out, 1);
	push(h, 5, 8, BOB, NULL);
	assert_held(h, 5, 1, 8);
}

static void test_gap_paged(void **state)
{
	harness *h = *state;
	uint64_t ids[] = {5}, lasts[] = {10};
	Chat__ClientFrame *q;
	feed_list(h, ids, lasts, 1);
	clear_out(h);
	push(h, 5, 20, BOB, NULL);
	assert_int_equal(h->n_out, 1);
	q = h->out[0];
	assert_int_equal(q->history->anchor_seq, 10);
	/* A page with more: ask again after its end. */
	feed_page(h, q->req_id, 5, 11, 15, 1, 20);
	assert_int_equal(h->n_out, 2);
	q = h->out[1];
	assert_int_equal(q->kind_case, CHAT__CLIENT_FRAME__KIND_HISTORY);
	assert_int_equal(q->history->anchor_seq, 15);
	/* The same seqs pushed meanwhile are dropped as duplicates. */
	push(h, 5, 14, BOB, NULL);
	feed_page(h, q->req_id, 5, 16, 20, 0, 20);
	assert_held(h, 5, 11, 20);
	assert_appended(h, 11, 20);
	assert_int_equal(h->n_out, 2);
}

static void test_history_before(void **state)
{
	harness *h = *state;
	uint64_t ids[] = {9}, lasts[] = {100};
	Chat__ClientFrame *q;
	uint64_t req;
	feed_list(h, ids, lasts, 1);
	clear_out(h);
	req = chatc_history_before(h->c, 9, 0, 50);
	assert_true(req > 0);
	/* Asking again while it is out returns the same request. */
	assert_int_equal(chatc_history_before(h->c, 9, 0, 50), req);
	assert_int_equal(h->n_out, 1);
	q = h->out[0];
	assert_int_equal(q->history->anchor_seq, 101);
	assert_int_equal(q->history->direction,
	                 CHAT__HISTORY_REQ__DIRECTION__BEFORE);
	assert_int_equal(q->history->limit, 50);
	feed_page(h, req, 9, 51, 100, 1, 100);
	assert_held(h, 9, 51, 100);
	assert_int_equal(chan(h, 9)->more_before, 1);
	assert_int_equal(h->ev_types[h->n_ev - 1], CHATC_EV_HISTORY);
	req = chatc_history_before(h->c, 9, 0, 50);
	assert_int_equal(h->out[1]->history->anchor_seq, 51);
	feed_page(h, req, 9, 1, 50, 0, 100);
	assert_held(h, 9, 1, 100);
	assert_int_equal(chan(h, 9)->more_before, 0);
	/* New messages still append. */
	push(h, 9, 101, BOB, NULL);
	assert_held(h, 9, 1, 101);
	/* A page that does not end where the held ones start is ignored. */
	{
		uint64_t ids2[] = {9, 4}, lasts2[] = {101, 30};
		feed_list(h, ids2, lasts2, 2);
		req = chatc_history_before(h->c, 4, 0, 10);
		feed_page(h, req, 4, 1, 10, 1, 30);
		assert_int_equal(chan(h, 4)->n_msgs, 0);
	}
}

static void test_pending_sends(void **state)
{
	harness *h = *state;
	uint64_t ids[] = {5}, lasts[] = {0};
	char cmid[CHATC_CMID_LEN];
	Chat__ClientFrame *q;
	Chat__SendAck ack = CHAT__SEND_ACK__INIT;
	feed_list(h, ids, lasts, 1);
	clear_out(h);

	assert_int_equal(chatc_send(h->c, 5, "hello", cmid), 0);
	assert_int_equal(strlen(cmid), 16);
	assert_int_equal(strspn(cmid, "0123456789abcdef"), 16);
	assert_int_equal(h->n_out, 1);
	q = h->out[0];
	assert_int_equal(q->kind_case, CHAT__CLIENT_FRAME__KIND_SEND);
	assert_string_equal(q->send->client_msg_id, cmid);
	assert_string_equal(q->send->body, "hello");
	assert_int_equal(chatc_pending_count(h->c), 1);
	assert_false(chatc_pending_get(h->c, cmid)->acked);

	ack.channel_id = 5;
	ack.client_msg_id = cmid;
	feed_simple(h, q->req_id, CHAT__SERVER_FRAME__KIND_SEND_ACK, &ack);
	assert_true(chatc_pending_get(h->c, cmid)->acked);
	assert_int_equal(h->ev_types[h->n_ev - 1], CHATC_EV_SEND_ACK);
	/* My own copy comes back: no longer pending. */
	push(h, 5, 1, ME, cmid);
	assert_int_equal(chatc_pending_count(h->c), 0);

	/* Bad bodies are refused locally. */
	assert_int_equal(chatc_send(h->c, 5, "", NULL), 3);
	{
		char big[4002];
		memset(big, 'a', sizeof big - 1);
		big[sizeof big - 1] = '\0';
		assert_int_equal(chatc_send(h->c, 5, big, NULL), 3);
		assert_int_equal(chatc_send(h->c, 5, "bad\x01", NULL), 3);
		assert_int_equal(chatc_send(h->c, 5, "\xff\xfe", NULL), 3);
	}
	assert_int_equal(chatc_pending_count(h->c), 0);
}

static void test_send_errors(void **state)
{
	harness *h = *state;
	uint64_t ids[] = {5}, lasts[] = {0};
	char a[CHATC_CMID_LEN], b[CHATC_CMID_LEN];
	Chat__Error e = CHAT__ERROR__INIT;
	feed_list(h, ids, lasts, 1);
	clear_out(h);
	chatc_send(h->c, 5, "one", a);
	chatc_send(h->c, 5, "two", b);
	/* Retryable: kept with a retry time. */
	e.code = CHAT__CODE__RESOURCE_EXHAUSTED;
	e.reason = (char *)"slow down";
	e.retryable = 1;
	e.client_msg_id = a;
	feed_simple(h, h->out[0]->req_id, CHAT__SERVER_FRAME__KIND_ERROR, &e);
	assert_non_null(chatc_pending_get(h->c, a));
	assert_true(chatc_pending_get(h->c, a)->retry_at_ms > 0);
	assert_true(chatc_next_timer_ms(h->c) >= 0);
	/* Not retryable: dropped, SEND_FAILED told. */
	e.code = CHAT__CODE__PERMISSION_DENIED;
	e.retryable = 0;
	e.client_msg_id = (char *)"";
	feed_simple(h, h->out[1]->req_id, CHAT__SERVER_FRAME__KIND_ERROR, &e);
	assert_null(chatc_pending_get(h->c, b));
	assert_int_equal(h->ev_types[h->n_ev - 2], CHATC_EV_ERROR);
	assert_int_equal(h->ev_types[h->n_ev - 1], CHATC_EV_SEND_FAILED);
	/* The retry is sent with the same id once due. */
	{
		int before = h->n_out;
		for (int i = 0; i < 200 && h->n_out == before; i++)
			chatc_process(h->c, 10);
		assert_int_equal(h->n_out, before + 1);
		assert_string_equal(h->out[before]->send->client_msg_id, a);
	}
}

static void test_resume(void **state)
{
	harness *h = *state;
	uint64_t ids[] = {5, 6}, lasts[] = {0, 4};
	char a[CHATC_CMID_LEN], b[CHATC_CMID_LEN], n[CHATC_CMID_LEN];
	Chat__ClientFrame *q;
	Chat__ResumeDone done = CHAT__RESUME_DONE__INIT;
	Chat__ChannelPos pos = CHAT__CHANNEL_POS__INIT, *pp[1] = {&pos};
	Chat__SendAck ack = CHAT__SEND_ACK__INIT;

	feed_list(h, ids, lasts, 2);
	push(h, 5, 1, BOB, NULL);
	push(h, 5, 2, BOB, NULL);
	chatc_send(h->c, 5, "acked", a);
	chatc_send(h->c, 5, "lost", b);
	ack.channel_id = 5;
	ack.client_msg_id = a;
	feed_simple(h, h->out[0]->req_id, CHAT__SERVER_FRAME__KIND_SEND_ACK,
	            &ack);
	clear_out(h);

	/* The connection drops; sends go to the queue. */
	chatc_drop(h->c);
	assert_int_equal(chatc_state(h->c), CHATC_STOPPED);
	assert_int_equal(chatc_send(h->c, 5, "offline", n), 0);
	assert_int_equal(h->n_out, 0);

	/* A new connection: welcome, list, then resume with positions. */
	chatc_test_online(h->c, 1);
	feed_welcome(h);
	assert_int_equal(chatc_send(h->c, 5, "while resuming", NULL), 0);
	assert_int_equal(h->n_out, 0);
	lasts[0] = 4;
	lasts[1] = 4;
	feed_list(h, ids, lasts, 2);
	assert_int_equal(h->n_out, 1);
	q = h->out[0];
	assert_int_equal(q->kind_case, CHAT__CLIENT_FRAME__KIND_RESUME);
	assert_int_equal(q->resume->n_positions, 2);
	assert_int_equal(q->resume->positions[0]->channel_id, 5);
	assert_int_equal(q->resume->positions[0]->last_seq, 2);
	assert_int_equal(q->resume->positions[1]->channel_id, 6);
	assert_int_equal(q->resume->positions[1]->last_seq, 4);
	/* Replay 3 (not 4: say the replay stopped), then done. */
	push(h, 5, 3, BOB, NULL);
	pos.channel_id = 5;
	pos.last_seq = 3;
	done.n_positions = 1;
	done.positions = pp;
	feed_simple(h, q->req_id, CHAT__SERVER_FRAME__KIND_RESUME_DONE, &done);
	/* Then: history for the rest of channel 5, and the unacked sends
	 * in order with their original ids (not the acked one). */
	{
		int hist = 0, sends = 0;
		const char *want[] = {b, n, NULL};
		for (int i = 1; i < h->n_out; i++) {
			Chat__ClientFrame *o = h->out[i];
			if (o->kind_case == CHAT__CLIENT_FRAME__KIND_HISTORY) {
				assert_int_equal(o->history->channel_id, 5);
				assert_int_equal(o->history->anchor_seq, 3);
				hist++;
			} else if (o->kind_case ==
			           CHAT__CLIENT_FRAME__KIND_SEND) {
				if (sends < 2)
					assert_string_equal(
					    o->send->client_msg_id,
					    want[sends]);
				else
					assert_string_equal(o->send->body,
					                    "while resuming");
				sends++;
			}
		}
		assert_int_equal(hist, 1);
		assert_int_equal(sends, 3);
	}
	assert_int_equal(chatc_pending_count(h->c), 4);
}

static void test_reads_and_presence(void **state)
{
	harness *h = *state;
	uint64_t ids[] = {5}, lasts[] = {0};
	Chat__ReadReceipt r = CHAT__READ_RECEIPT__INIT;
	Chat__PresenceUpdate p = CHAT__PRESENCE_UPDATE__INIT;
	feed_list(h, ids, lasts, 1);
	push(h, 5, 1, BOB, NULL);
	push(h, 5, 2, BOB, NULL);
	assert_int_equal(chan(h, 5)->unread, 2);
	r.channel_id = 5;
	r.user_id = BOB;
	r.user_name = (char *)"bob";
	r.seq = 2;
	feed_simple(h, 0, CHAT__SERVER_FRAME__KIND_READ_RECEIPT, &r);
	assert_int_equal(chan(h, 5)->n_readers, 1);
	assert_string_equal(chan(h, 5)->readers[0].name, "bob");
	assert_int_equal(chan(h, 5)->readers[0].seq, 2);
	r.seq = 1; /* positions only move forward */
	feed_simple(h, 0, CHAT__SERVER_FRAME__KIND_READ_RECEIPT, &r);
	assert_int_equal(chan(h, 5)->readers[0].seq, 2);
	r.user_id = ME;
	r.user_name = (char *)"me";
	r.seq = 1;
	feed_simple(h, 0, CHAT__SERVER_FRAME__KIND_READ_RECEIPT, &r);
	assert_int_equal(chan(h, 5)->read_seq, 1);
	assert_int_equal(chan(h, 5)->unread, 1);

	p.user_id = BOB;
	p.user_name = (char *)"bob";
	p.status = CHAT__STATUS__STATUS_AWAY;
	p.last_seen_ms = 1234;
	feed_simple(h, 0, CHAT__SERVER_FRAME__KIND_PRESENCE, &p);
	assert_non_null(chatc_user_by_name(h->c, "bob"));
	assert_int_equal(chatc_user_get(h->c, BOB)->status,
	                 CHAT__STATUS__STATUS_AWAY);
	p.user_id = ME;
	p.user_name = (char *)"me";
	p.status = CHAT__STATUS__STATUS_BUSY;
	feed_simple(h, 0, CHAT__SERVER_FRAME__KIND_PRESENCE, &p);
	assert_int_equal(chatc_my_status(h->c), CHAT__STATUS__STATUS_BUSY);
}

static void test_unknown_channel_and_leave(void **state)
{
	harness *h = *state;
	Chat__Ok ok = CHAT__OK__INIT;
	Chat__Error e = CHAT__ERROR__INIT;
	uint64_t req;
	clear_out(h);
	/* A message for a channel not listed yet starts it there. */
	push(h, 12, 40, BOB, NULL);
	assert_held(h, 12, 40, 40);
	assert_int_equal(h->n_out, 1);
	assert_int_equal(h->out[0]->kind_case,
	                 CHAT__CLIENT_FRAME__KIND_LIST_CHANNELS);
	push(h, 13, 2, BOB, NULL); /* list already asked */
	assert_int_equal(h->n_out, 1);
	req = chatc_leave(h->c, 12);
	assert_true(req > 0);
	feed_simple(h, req, CHAT__SERVER_FRAME__KIND_OK, &ok);
	assert_null(chatc_channel_get(h->c, 12));
	/* An error names its request. */
	req = chatc_join(h->c, 99);
	e.code = CHAT__CODE__NOT_FOUND;
	e.reason = (char *)"no channel 99";
	feed_simple(h, req, CHAT__SERVER_FRAME__KIND_ERROR, &e);
	assert_int_equal(h->ev_types[h->n_ev - 1], CHATC_EV_ERROR);
	/* Garbage never crashes. */
	assert_int_equal(chatc_feed(h->c, (const uint8_t *)"\xff\xff\xff", 3),
	                 3);
	assert_int_equal(chatc_feed(h->c, (const uint8_t *)"", 0), 0);
}

static void test_three_instances(void **state)
{
	harness *hs[3];
	uint64_t ids[] = {1}, lasts[] = {0};
	(void)state;
	for (int i = 0; i < 3; i++) {
		hs[i] = setup_h();
		feed_list(hs[i], ids, lasts, 1);
	}
	push(hs[0], 1, 1, BOB, NULL);
	push(hs[1], 1, 1, BOB, NULL);
	push(hs[1], 1, 2, BOB, NULL);
	assert_int_equal(chan(hs[0], 1)->held_seq, 1);
	assert_int_equal(chan(hs[1], 1)->held_seq, 2);
	assert_int_equal(chan(hs[2], 1)->held_seq, 0);
	for (int i = 0; i < 3; i++) {
		void *s = hs[i];
		teardown(&s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_welcome_and_list, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_in_order_and_dupes, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_gap_fill, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gap_paged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_history_before, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_pending_sends, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_send_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reads_and_presence, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_channel_and_leave,
	                                    setup, teardown),
	    cmocka_unit_test(test_three_instances),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
