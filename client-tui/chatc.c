/* The protocol session: connection management, state, sequencing. */
#include "chatc.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_status.h"
#include "chat_util.h"
#include "chatc_http.h"

#define MAX_PENDING 10000
#define MAX_REQS 4096
#define MAX_EARLY 5000
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define RESEND_DELAY_MS 500
#define GAP_PAGE 500

/* An outstanding request, to interpret its answer. */
struct req {
	uint64_t id;
	int kind;         /* Chat__ClientFrame__KindCase */
	uint64_t channel;
	uint64_t arg;     /* history: anchor; set_status: status */
	int dir;          /* history direction */
	char cmid[65];    /* send */
};

struct chatc {
	char *api_url, *name, *password, *edge_url, *token;
	int64_t expires_at;
	int signup;
	int timeout_ms;
	size_t max_held;
	int keepalive_ms;
	chatc_event_fn on_event;
	chatc_log_fn log;
	chatc_send_hook send_hook;
	void *user;

	chatc_ws *ws;
	int state;
	int hook_online;     /* test mode: online without a socket */
	uint64_t gen;        /* connection generation */
	int had_session;     /* a session was open before: resume next */
	int need_resume;     /* send Resume on the next ChannelList */
	uint64_t resume_req;
	int resuming;
	int need_login;
	int reconnect_on;
	int backoff_ms;
	int64_t next_attempt_ms;
	int64_t last_rx_ms;
	int64_t last_ping_ms;
	uint64_t next_req;
	int list_req_out;
	int more_input;      /* complete frames may wait in the receiver */

	uint64_t user_id;
	char user_name[64];
	int my_status;
	uint32_t max_body;

	chatc_channel **chans;
	size_t n_chans, cap_chans;
	chatc_user **users;
	size_t n_users, cap_users;
	chatc_pending **pend;
	size_t n_pend, cap_pend;
	struct req *reqs;
	size_t n_reqs, cap_reqs;

	char err[512];
};

static int64_t now_ms(void)
{
	return chat_mono_us() / 1000;
}

static void dlog(chatc *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void dlog(chatc *c, const char *fmt, ...)
{
	char line[768];
	va_list ap;
	if (!c->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	c->log(c->user, line);
}

static void set_err(chatc *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(chatc *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

/* Grow an array of n elements of size sz to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	size_t nc;
	void *na;
	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : 8;
	na = realloc(*arr, nc * sz);
	if (!na)
		return -1;
	*arr = na;
	*cap = nc;
	return 0;
}

static void emit(chatc *c, chatc_event *ev)
{
	if (c->on_event)
		c->on_event(c->user, c, ev);
}

static void emit_simple(chatc *c, int type, uint64_t req_id, int kind,
                        uint64_t channel, const Chat__ServerFrame *f)
{
	chatc_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.req_id = req_id;
	ev.req_kind = kind;
	ev.channel_id = channel;
	ev.channel = chatc_channel_get(c, channel);
	ev.frame = f;
	emit(c, &ev);
}

/* ---- tables ---- */

static void msg_fini(chatc_msg *m)
{
	free(m->sender_name);
	free(m->client_msg_id);
	free(m->body);
	m->sender_name = m->client_msg_id = m->body = NULL;
}

static int msg_copy(chatc_msg *d, const Chat__Message *m)
{
	memset(d, 0, sizeof *d);
	d->channel_id = m->channel_id;
	d->seq = m->seq;
	d->sender_id = m->sender_id;
	d->sent_at_ms = m->sent_at_ms;
	d->stored_at_ms = m->stored_at_ms;
	d->sender_name = xstrdup(m->sender_name);
	d->client_msg_id = xstrdup(m->client_msg_id);
	d->body = xstrdup(m->body);
	if (!d->sender_name || !d->client_msg_id || !d->body) {
		msg_fini(d);
		return -1;
	}
	return 0;
}

static void channel_free(chatc_channel *ch)
{
	if (!ch)
		return;
	for (size_t i = 0; i < ch->n_msgs; i++)
		msg_fini(&ch->msgs[i]);
	for (size_t i = 0; i < ch->n_early; i++)
		msg_fini(&ch->early[i]);
	for (size_t i = 0; i < ch->n_readers; i++)
		free(ch->readers[i].name);
	free(ch->msgs);
	free(ch->early);
	free(ch->readers);
	free(ch->name);
	free(ch->dm_peer);
	free(ch);
}

static size_t chan_index(const chatc *c, uint64_t id, int *found)
{
	size_t lo = 0, hi = c->n_chans;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->chans[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < c->n_chans && c->chans[lo]->id == id;
	return lo;
}

static chatc_channel *chan_find(chatc *c, uint64_t id)
{
	int found;
	size_t i = chan_index(c, id, &found);
	return found ? c->chans[i] : NULL;
}

/* A new empty channel holding nothing up to last (its next seq is
 * last + 1). */
static chatc_channel *chan_add(chatc *c, uint64_t id, uint64_t last)
{
	int found;
	size_t i = chan_index(c, id, &found);
	chatc_channel *ch;
	if (found)
		return c->chans[i];
	if (grow((void **)&c->chans, &c->cap_chans, c->n_chans,
	         sizeof *c->chans) != 0)
		return NULL;
	ch = calloc(1, sizeof *ch);
	if (!ch)
		return NULL;
	ch->name = xstrdup("");
	ch->dm_peer = xstrdup("");
	if (!ch->name || !ch->dm_peer) {
		channel_free(ch);
		return NULL;
	}
	ch->id = id;
	ch->held_seq = last;
	ch->first_seq = last + 1;
	ch->last_seq = last;
	ch->more_before = last > 0;
	memmove(c->chans + i + 1, c->chans + i,
	        (c->n_chans - i) * sizeof *c->chans);
	c->chans[i] = ch;
	c->n_chans++;
	return ch;
}

static void chan_remove(chatc *c, uint64_t id)
{
	int found;
	size_t i = chan_index(c, id, &found);
	if (!found)
		return;
	channel_free(c->chans[i]);
	memmove(c->chans + i, c->chans + i + 1,
	        (c->n_chans - i - 1) * sizeof *c->chans);
	c->n_chans--;
}

static chatc_user *user_upsert(chatc *c, uint64_t id, const char *name)
{
	chatc_user *u = NULL;
	for (size_t i = 0; i < c->n_users; i++)
		if (c->users[i]->id == id)
			u = c->users[i];
	if (!u) {
		if (grow((void **)&c->users, &c->cap_users, c->n_users,
		         sizeof *c->users) != 0)
			return NULL;
		u = calloc(1, sizeof *u);
		if (!u)
			return NULL;
		u->id = id;
		c->users[c->n_users++] = u;
	}
	if (name && name[0] && (!u->name || strcmp(u->name, name) != 0)) {
		char *n = strdup(name);
		if (n) {
			free(u->name);
			u->name = n;
		}
	}
	if (!u->name)
		u->name = xstrdup("");
	return u;
}

static chatc_pending *pend_find(chatc *c, const char *cmid, size_t *idx)
{
	for (size_t i = 0; i < c->n_pend; i++) {
		if (strcmp(c->pend[i]->client_msg_id, cmid) == 0) {
			if (idx)
				*idx = i;
			return c->pend[i];
		}
	}
	return NULL;
}

static void pend_remove(chatc *c, size_t i)
{
	free(c->pend[i]->body);
	free(c->pend[i]);
	memmove(c->pend + i, c->pend + i + 1,
	        (c->n_pend - i - 1) * sizeof *c->pend);
	c->n_pend--;
}

static struct req *req_take(chatc *c, uint64_t id, struct req *out)
{
	if (id == 0)
		return NULL;
	for (size_t i = 0; i < c->n_reqs; i++) {
		if (c->reqs[i].id == id) {
			*out = c->reqs[i];
			memmove(c->reqs + i, c->reqs + i + 1,
			        (c->n_reqs - i - 1) * sizeof *c->reqs);
			c->n_reqs--;
			return out;
		}
	}
	return NULL;
}

static void req_track(chatc *c, const struct req *r)
{
	if (c->n_reqs >= MAX_REQS) {
		/* Unanswered for long: forget the oldest. */
		memmove(c->reqs, c->reqs + 1,
		        (c->n_reqs - 1) * sizeof *c->reqs);
		c->n_reqs--;
	}
	if (grow((void **)&c->reqs, &c->cap_reqs, c->n_reqs,
	         sizeof *c->reqs) != 0)
		return;
	c->reqs[c->n_reqs++] = *r;
}

/* ---- output ---- */

static int is_online(const chatc *c)
{
	return c->state == CHATC_ONLINE && (c->ws || c->hook_online);
}

/* Pack and send one frame. Returns 0 or -1 (err set). */
static int send_frame(chatc *c, Chat__ClientFrame *f)
{
	uint8_t stack[4096], *buf = stack;
	size_t len = chat__client_frame__get_packed_size(f);
	int rc = -1;

	if (!is_online(c)) {
		set_err(c, "not connected");
		return -1;
	}
	if (len > sizeof stack) {
		buf = malloc(len);
		if (!buf) {
			set_err(c, "out of memory");
			return -1;
		}
	}
	chat__client_frame__pack(f, buf);
	if (c->send_hook && !c->ws)
		rc = c->send_hook(c->user, buf, len);
	else
		rc = chatc_ws_send(c->ws, CHATC_WS_BINARY, buf, len);
	if (rc != 0)
		set_err(c, "cannot queue the frame");
	if (buf != stack)
		free(buf);
	return rc;
}

/* Send f with a fresh req_id, tracking it as r (r may be NULL: no answer
 * expected). Returns the req_id or 0. */
static uint64_t request(chatc *c, Chat__ClientFrame *f, struct req *r)
{
	uint64_t id = ++c->next_req;
	f->req_id = id;
	if (send_frame(c, f) != 0)
		return 0;
	if (r) {
		r->id = id;
		r->kind = (int)f->kind_case;
		req_track(c, r);
	}
	return id;
}

static uint64_t send_history(chatc *c, uint64_t channel, uint64_t anchor,
                             int dir, uint32_t limit)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__HistoryReq h = CHAT__HISTORY_REQ__INIT;
	struct req r;
	memset(&r, 0, sizeof r);
	h.channel_id = channel;
	h.anchor_seq = anchor;
	h.direction = dir;
	h.limit = limit;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_HISTORY;
	f.history = &h;
	r.channel = channel;
	r.arg = anchor;
	r.dir = dir;
	return request(c, &f, &r);
}

/* Ask for what follows held_seq, unless already asked. */
static void gap_fill(chatc *c, chatc_channel *ch)
{
	if (ch->gap_req || !is_online(c) || c->resuming)
		return;
	dlog(c, "gap channel=%llu held=%llu", (unsigned long long)ch->id,
	     (unsigned long long)ch->held_seq);
	ch->gap_req = send_history(c, ch->id, ch->held_seq,
	                           CHAT__HISTORY_REQ__DIRECTION__AFTER,
	                           GAP_PAGE);
}

static int transmit(chatc *c, chatc_pending *p)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__SendReq s = CHAT__SEND_REQ__INIT;
	struct req r;
	uint64_t id;

	memset(&r, 0, sizeof r);
	s.channel_id = p->channel_id;
	s.client_msg_id = p->client_msg_id;
	s.body = p->body;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_SEND;
	f.send = &s;
	r.channel = p->channel_id;
	snprintf(r.cmid, sizeof r.cmid, "%s", p->client_msg_id);
	id = request(c, &f, &r);
	if (!id)
		return -1;
	p->req_id = id;
	p->sent_gen = c->gen;
	p->attempts++;
	p->retry_at_ms = 0;
	return 0;
}

/* Resend sends that have no ack and were not sent on this connection
 * (or whose retry time has come). */
static void resend_pending(chatc *c, int due_only)
{
	int64_t now = now_ms();
	for (size_t i = 0; i < c->n_pend; i++) {
		chatc_pending *p = c->pend[i];
		if (p->acked)
			continue;
		if (due_only) {
			if (!p->retry_at_ms || p->retry_at_ms > now)
				continue;
		} else if (p->sent_gen == c->gen && !p->retry_at_ms) {
			continue;
		}
		if (transmit(c, p) != 0)
			return;
	}
}

/* ---- sequencing ---- */

static void recount_unread(chatc *c, chatc_channel *ch)
{
	uint64_t n = 0;
	if (ch->read_seq >= ch->held_seq) {
		ch->unread = 0;
		return;
	}
	if (ch->first_seq > ch->read_seq + 1) {
		ch->unread = ch->held_seq - ch->read_seq;
		return;
	}
	for (size_t i = 0; i < ch->n_msgs; i++)
		if (ch->msgs[i].seq > ch->read_seq &&
		    ch->msgs[i].sender_id != c->user_id)
			n++;
	ch->unread = n;
}

/* Drop the oldest messages when over the cap (a tenth at a time). */
static void trim_held(chatc *c, chatc_channel *ch)
{
	size_t drop;
	if (ch->n_msgs <= c->max_held)
		return;
	drop = ch->n_msgs - c->max_held + c->max_held / 10;
	if (drop > ch->n_msgs)
		drop = ch->n_msgs;
	for (size_t i = 0; i < drop; i++)
		msg_fini(&ch->msgs[i]);
	memmove(ch->msgs, ch->msgs + drop,
	        (ch->n_msgs - drop) * sizeof *ch->msgs);
	ch->n_msgs -= drop;
	ch->first_seq = ch->n_msgs ? ch->msgs[0].seq : ch->held_seq + 1;
	ch->more_before = 1;
}

/* Append a copy of m (seq == held_seq + 1) and tell. */
static int append(chatc *c, chatc_channel *ch, const Chat__Message *m,
                  const Chat__ServerFrame *f)
{
	chatc_event ev;
	size_t pi;

	if (grow((void **)&ch->msgs, &ch->cap, ch->n_msgs,
	         sizeof *ch->msgs) != 0 ||
	    msg_copy(&ch->msgs[ch->n_msgs], m) != 0)
		return -1;
	ch->n_msgs++;
	ch->held_seq = m->seq;
	if (ch->n_msgs == 1)
		ch->first_seq = m->seq;
	if (m->seq > ch->last_seq)
		ch->last_seq = m->seq;
	if (m->sender_id != c->user_id && m->seq > ch->read_seq)
		ch->unread++;
	if (m->sender_id == c->user_id && m->client_msg_id &&
	    pend_find(c, m->client_msg_id, &pi))
		pend_remove(c, pi);
	trim_held(c, ch);
	memset(&ev, 0, sizeof ev);
	ev.type = CHATC_EV_MESSAGE;
	ev.channel_id = ch->id;
	ev.channel = ch;
	ev.msg = &ch->msgs[ch->n_msgs - 1];
	ev.frame = f;
	emit(c, &ev);
	return 0;
}

/* Keep m (seq > held_seq + 1) until the gap before it is filled. */
static void keep_early(chatc_channel *ch, const Chat__Message *m)
{
	size_t i = 0, cap = ch->n_early;
	chatc_msg *na;
	while (i < ch->n_early && ch->early[i].seq < m->seq)
		i++;
	if (i < ch->n_early && ch->early[i].seq == m->seq)
		return;
	if (ch->n_early >= MAX_EARLY)
		return; /* history will bring it */
	na = realloc(ch->early, (cap + 1) * sizeof *na);
	if (!na)
		return;
	ch->early = na;
	memmove(ch->early + i + 1, ch->early + i,
	        (ch->n_early - i) * sizeof *na);
	if (msg_copy(&ch->early[i], m) != 0) {
		memmove(ch->early + i, ch->early + i + 1,
		        (ch->n_early - i) * sizeof *na);
		return;
	}
	ch->n_early++;
}

/* Append the kept messages that now follow held_seq; drop stale ones. */
static void drain_early(chatc *c, chatc_channel *ch)
{
	size_t i = 0;
	uint64_t id = ch->id;
	while (i < ch->n_early && ch->early[i].seq <= ch->held_seq + 1) {
		if (ch->early[i].seq == ch->held_seq + 1) {
			Chat__Message m = CHAT__MESSAGE__INIT;
			chatc_msg *e = &ch->early[i];
			m.channel_id = ch->id;
			m.seq = e->seq;
			m.sender_id = e->sender_id;
			m.sender_name = e->sender_name;
			m.client_msg_id = e->client_msg_id;
			m.body = e->body;
			m.sent_at_ms = e->sent_at_ms;
			m.stored_at_ms = e->stored_at_ms;
			append(c, ch, &m, NULL);
			/* The callback cannot remove channels, but be safe. */
			if (chan_find(c, id) != ch)
				return;
		}
		i++;
	}
	if (i == 0)
		return;
	for (size_t k = 0; k < i; k++)
		msg_fini(&ch->early[k]);
	memmove(ch->early, ch->early + i,
	        (ch->n_early - i) * sizeof *ch->early);
	ch->n_early -= i;
}

/* Apply one message push (or replayed message). */
static void on_message(chatc *c, const Chat__Message *m,
                       const Chat__ServerFrame *f)
{
	chatc_channel *ch;
	if (m->seq == 0)
		return;
	ch = chan_find(c, m->channel_id);
	if (!ch) {
		/* A channel we have not been told of yet: start it here and
		 * ask for the list to learn its name. */
		ch = chan_add(c, m->channel_id, m->seq - 1);
		if (!ch)
			return;
		if (!c->list_req_out && chatc_list_channels(c))
			c->list_req_out = 1;
	}
	if (m->seq > ch->last_seq)
		ch->last_seq = m->seq;
	if (m->seq <= ch->held_seq)
		return; /* duplicate */
	if (m->seq == ch->held_seq + 1) {
		append(c, ch, m, f);
		if ((ch = chan_find(c, m->channel_id)) != NULL)
			drain_early(c, ch);
		return;
	}
	keep_early(ch, m);
	gap_fill(c, ch);
}

static void apply_info(chatc *c, chatc_channel *ch, const Chat__ChannelInfo *i)
{
	char *n;
	if (i->name && (n = strdup(i->name)) != NULL) {
		free(ch->name);
		ch->name = n;
	}
	if (i->dm_peer && (n = strdup(i->dm_peer)) != NULL) {
		free(ch->dm_peer);
		ch->dm_peer = n;
	}
	ch->kind = i->kind;
	if (i->last_seq > ch->last_seq)
		ch->last_seq = i->last_seq;
	if (i->read_seq >= ch->read_seq) {
		ch->read_seq = i->read_seq;
		ch->unread = i->unread;
	}
	ch->member_count = i->member_count;
	ch->dm_peer_id = i->dm_peer_id;
	ch->dm_peer_status = i->dm_peer_status;
	if (ch->kind == CHAT__CHANNEL_KIND__KIND_DM && i->dm_peer_id) {
		chatc_user *u = user_upsert(c, i->dm_peer_id, i->dm_peer);
		if (u)
			u->status = i->dm_peer_status;
	}
}

static chatc_channel *upsert_info(chatc *c, const Chat__ChannelInfo *i)
{
	chatc_channel *ch = chan_find(c, i->id);
	if (!ch)
		ch = chan_add(c, i->id, i->last_seq);
	if (ch)
		apply_info(c, ch, i);
	return ch;
}

static void send_resume(chatc *c)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__ResumeReq r = CHAT__RESUME_REQ__INIT;
	Chat__ChannelPos *pos = calloc(c->n_chans + 1, sizeof *pos);
	Chat__ChannelPos **pp = calloc(c->n_chans + 1, sizeof *pp);
	struct req rq;

	memset(&rq, 0, sizeof rq);
	if (!pos || !pp)
		goto done;
	for (size_t i = 0; i < c->n_chans; i++) {
		chat__channel_pos__init(&pos[i]);
		pos[i].channel_id = c->chans[i]->id;
		pos[i].last_seq = c->chans[i]->held_seq;
		pp[i] = &pos[i];
	}
	r.n_positions = c->n_chans;
	r.positions = pp;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_RESUME;
	f.resume = &r;
	c->resume_req = request(c, &f, &rq);
	if (c->resume_req) {
		/* After a reconnect, new sends wait for the replay and the
		 * resent ones; the first session has nothing to wait for. */
		c->resuming = c->had_session;
		dlog(c, "resume channels=%zu", c->n_chans);
	}
done:
	free(pos);
	free(pp);
}

static void on_channel_list(chatc *c, const Chat__ServerFrame *f)
{
	const Chat__ChannelList *l = f->channel_list;
	size_t i = 0;

	if (f->req_id)
		c->list_req_out = 0;
	/* Remove channels no longer listed. */
	while (i < c->n_chans) {
		int listed = 0;
		for (size_t k = 0; k < l->n_channels; k++)
			if (l->channels[k]->id == c->chans[i]->id)
				listed = 1;
		if (!listed)
			chan_remove(c, c->chans[i]->id);
		else
			i++;
	}
	for (size_t k = 0; k < l->n_channels; k++)
		upsert_info(c, l->channels[k]);
	emit_simple(c, CHATC_EV_CHANNELS, f->req_id,
	            f->req_id ? CHAT__CLIENT_FRAME__KIND_LIST_CHANNELS : 0, 0,
	            f);
	if (c->need_resume && is_online(c)) {
		c->need_resume = 0;
		send_resume(c);
	}
}

static void on_resume_done(chatc *c, const Chat__ServerFrame *f)
{
	const Chat__ResumeDone *d = f->resume_done;
	c->resuming = 0;
	c->resume_req = 0;
	for (size_t i = 0; i < d->n_positions; i++) {
		chatc_channel *ch = chan_find(c, d->positions[i]->channel_id);
		if (ch && d->positions[i]->last_seq > ch->last_seq)
			ch->last_seq = d->positions[i]->last_seq;
	}
	/* Anything still missing (replay capped, or a gap seen while
	 * resuming) comes from history. */
	for (size_t i = 0; i < c->n_chans; i++) {
		chatc_channel *ch = c->chans[i];
		if (ch->held_seq < ch->last_seq || ch->n_early)
			gap_fill(c, ch);
	}
	resend_pending(c, 0);
	emit_simple(c, CHATC_EV_RESUME_DONE, f->req_id,
	            CHAT__CLIENT_FRAME__KIND_RESUME, 0, f);
}

/* Prepend the messages of a BEFORE page that end right before first_seq
 * and are contiguous. *below receives how many page messages are older
 * than first_seq. Returns how many were prepended. */
static size_t prepend_page(chatc_channel *ch, const Chat__HistoryPage *h,
                           size_t *below)
{
	uint64_t want = ch->first_seq - 1;
	size_t k = h->n_messages, j, cnt, nc, ok = 0;
	chatc_msg *nm;

	while (k > 0 && h->messages[k - 1]->seq > want)
		k--;
	*below = k;
	if (want == 0 || k == 0 || h->messages[k - 1]->seq != want)
		return 0;
	/* messages[j..k) must hold want - (k - j) + 1 .. want */
	j = k - 1;
	while (j > 0 && h->messages[j - 1]->seq + 1 == h->messages[j]->seq)
		j--;
	cnt = k - j;
	nc = ch->n_msgs + cnt > ch->cap ? ch->n_msgs + cnt : ch->cap;
	nm = realloc(ch->msgs, nc * sizeof *nm);
	if (!nm)
		return 0;
	ch->msgs = nm;
	ch->cap = nc;
	memmove(nm + cnt, nm, ch->n_msgs * sizeof *nm);
	for (size_t q = 0; q < cnt; q++)
		if (msg_copy(&nm[q], h->messages[j + q]) == 0)
			ok++;
	if (ok != cnt) {
		for (size_t q = 0; q < cnt; q++)
			msg_fini(&nm[q]);
		memmove(nm, nm + cnt, ch->n_msgs * sizeof *nm);
		return 0;
	}
	ch->n_msgs += cnt;
	ch->first_seq = nm[0].seq;
	return cnt;
}

static void on_history(chatc *c, const Chat__ServerFrame *f, struct req *r)
{
	const Chat__HistoryPage *h = f->history;
	uint64_t id = h->channel_id ? h->channel_id : (r ? r->channel : 0);
	chatc_channel *ch = chan_find(c, id);
	chatc_event ev;
	size_t added = 0;
	int older = r && r->dir == CHAT__HISTORY_REQ__DIRECTION__BEFORE;

	if (!ch)
		return;
	if (h->last_seq > ch->last_seq)
		ch->last_seq = h->last_seq;
	if (!older) {
		if (r && ch->gap_req == r->id)
			ch->gap_req = 0;
		for (size_t i = 0; i < h->n_messages; i++) {
			const Chat__Message *m = h->messages[i];
			if (!m || m->seq <= ch->held_seq)
				continue;
			if (m->seq != ch->held_seq + 1) {
				keep_early(ch, m);
				continue;
			}
			if (append(c, ch, m, NULL) != 0)
				break;
			added++;
			if ((ch = chan_find(c, id)) == NULL)
				return;
		}
		drain_early(c, ch);
		if (h->more && added)
			gap_fill(c, ch);
		else if (ch->n_early && added)
			gap_fill(c, ch);
		else if (ch->held_seq < ch->last_seq && added)
			gap_fill(c, ch);
	} else {
		size_t below = 0;
		if (r && ch->before_req == r->id)
			ch->before_req = 0;
		added = prepend_page(ch, h, &below);
		if (ch->first_seq <= 1)
			ch->more_before = 0;
		else if (!h->more && (added || below == 0))
			ch->more_before = 0;
		else
			ch->more_before = 1;
	}
	memset(&ev, 0, sizeof ev);
	ev.type = CHATC_EV_HISTORY;
	ev.req_id = f->req_id;
	ev.req_kind = CHAT__CLIENT_FRAME__KIND_HISTORY;
	ev.channel_id = id;
	ev.channel = ch;
	ev.count = added;
	ev.older = older;
	ev.more = h->more;
	ev.frame = f;
	emit(c, &ev);
}

static void on_read(chatc *c, const Chat__ServerFrame *f)
{
	const Chat__ReadReceipt *r = f->read_receipt;
	chatc_channel *ch = chan_find(c, r->channel_id);
	if (ch) {
		if (r->user_id == c->user_id) {
			if (r->seq > ch->read_seq)
				ch->read_seq = r->seq;
			recount_unread(c, ch);
		} else {
			chatc_reader *rd = NULL;
			for (size_t i = 0; i < ch->n_readers; i++)
				if (ch->readers[i].user_id == r->user_id)
					rd = &ch->readers[i];
			if (!rd) {
				chatc_reader *nr = realloc(
				    ch->readers,
				    (ch->n_readers + 1) * sizeof *nr);
				if (nr) {
					ch->readers = nr;
					rd = &nr[ch->n_readers++];
					rd->user_id = r->user_id;
					rd->name = xstrdup(r->user_name);
					rd->seq = 0;
				}
			}
			if (rd && r->seq > rd->seq)
				rd->seq = r->seq;
		}
	}
	emit_simple(c, CHATC_EV_READ, f->req_id,
	            f->req_id ? CHAT__CLIENT_FRAME__KIND_MARK_READ : 0,
	            r->channel_id, f);
}

static void apply_presence(chatc *c, const Chat__PresenceUpdate *p)
{
	chatc_user *u = user_upsert(c, p->user_id, p->user_name);
	if (u) {
		u->status = p->status;
		if (p->last_seen_ms)
			u->last_seen_ms = p->last_seen_ms;
	}
	if (p->user_id == c->user_id)
		c->my_status = p->status;
	for (size_t i = 0; i < c->n_chans; i++)
		if (c->chans[i]->kind == CHAT__CHANNEL_KIND__KIND_DM &&
		    c->chans[i]->dm_peer_id == p->user_id)
			c->chans[i]->dm_peer_status = p->status;
}

static void on_error(chatc *c, const Chat__ServerFrame *f, struct req *r)
{
	const Chat__Error *e = f->error;
	chatc_event ev;
	const char *cmid = e->client_msg_id && e->client_msg_id[0]
	                       ? e->client_msg_id
	                       : (r && r->cmid[0] ? r->cmid : NULL);
	uint64_t chan = e->channel_id ? e->channel_id : (r ? r->channel : 0);
	char cm[65] = "";

	if (cmid)
		snprintf(cm, sizeof cm, "%s", cmid);
	if (r && r->kind == CHAT__CLIENT_FRAME__KIND_HISTORY) {
		chatc_channel *ch = chan_find(c, r->channel);
		if (ch && ch->gap_req == r->id)
			ch->gap_req = 0;
		if (ch && ch->before_req == r->id)
			ch->before_req = 0;
	}
	if (r && r->kind == CHAT__CLIENT_FRAME__KIND_RESUME) {
		/* Without a resume, fill gaps and resend anyway. */
		c->resuming = 0;
		c->resume_req = 0;
		for (size_t i = 0; i < c->n_chans; i++)
			gap_fill(c, c->chans[i]);
		resend_pending(c, 0);
	}
	if (r && r->kind == CHAT__CLIENT_FRAME__KIND_LIST_CHANNELS)
		c->list_req_out = 0;
	memset(&ev, 0, sizeof ev);
	ev.type = CHATC_EV_ERROR;
	ev.req_id = f->req_id;
	ev.req_kind = r ? r->kind : 0;
	ev.channel_id = chan;
	ev.channel = chatc_channel_get(c, chan);
	ev.code = e->code;
	ev.reason = e->reason ? e->reason : "";
	ev.retryable = e->retryable;
	ev.client_msg_id = cm[0] ? cm : NULL;
	ev.frame = f;
	emit(c, &ev);
	if (cm[0]) {
		size_t pi;
		chatc_pending *p = pend_find(c, cm, &pi);
		if (p && e->retryable) {
			int sh = p->attempts < 5 ? p->attempts : 5;
			int d = RESEND_DELAY_MS << sh;
			p->retry_at_ms = now_ms() + d;
		} else if (p) {
			ev.type = CHATC_EV_SEND_FAILED;
			ev.channel_id = p->channel_id;
			ev.channel = chatc_channel_get(c, p->channel_id);
			emit(c, &ev);
			if ((p = pend_find(c, cm, &pi)) != NULL)
				pend_remove(c, pi);
		}
	}
}

/* Dispatch one decoded frame. */
static void dispatch(chatc *c, const Chat__ServerFrame *f)
{
	struct req rbuf, *r = req_take(c, f->req_id, &rbuf);
	int kind = r ? r->kind : 0;
	chatc_event ev;

	switch (f->kind_case) {
	case CHAT__SERVER_FRAME__KIND_ERROR:
		if (f->error)
			on_error(c, f, r);
		break;
	case CHAT__SERVER_FRAME__KIND_WELCOME: {
		const Chat__Welcome *w = f->welcome;
		if (!w)
			break;
		c->user_id = w->user_id;
		snprintf(c->user_name, sizeof c->user_name, "%s",
		         w->user_name ? w->user_name : "");
		c->my_status = w->status;
		c->max_body = w->max_body_bytes;
		c->backoff_ms = 0;
		emit_simple(c, CHATC_EV_WELCOME, 0, 0, 0, f);
		break;
	}
	case CHAT__SERVER_FRAME__KIND_SEND_ACK: {
		const Chat__SendAck *a = f->send_ack;
		chatc_pending *p;
		if (!a)
			break;
		p = pend_find(c, a->client_msg_id ? a->client_msg_id : "",
		              NULL);
		if (p)
			p->acked = 1;
		memset(&ev, 0, sizeof ev);
		ev.type = CHATC_EV_SEND_ACK;
		ev.req_id = f->req_id;
		ev.req_kind = CHAT__CLIENT_FRAME__KIND_SEND;
		ev.channel_id = a->channel_id;
		ev.channel = chatc_channel_get(c, a->channel_id);
		ev.client_msg_id = a->client_msg_id;
		ev.frame = f;
		emit(c, &ev);
		break;
	}
	case CHAT__SERVER_FRAME__KIND_CHANNEL: {
		chatc_channel *ch;
		if (!f->channel)
			break;
		ch = upsert_info(c, f->channel);
		emit_simple(c, CHATC_EV_CHANNEL, f->req_id, kind,
		            f->channel->id, f);
		if (ch)
			emit_simple(c, CHATC_EV_CHANNELS, 0, 0, ch->id, f);
		break;
	}
	case CHAT__SERVER_FRAME__KIND_CHANNEL_LIST:
		if (f->channel_list)
			on_channel_list(c, f);
		break;
	case CHAT__SERVER_FRAME__KIND_MESSAGE:
		if (f->message)
			on_message(c, f->message, f);
		break;
	case CHAT__SERVER_FRAME__KIND_HISTORY:
		if (f->history)
			on_history(c, f, r && kind ==
			                  CHAT__CLIENT_FRAME__KIND_HISTORY
			              ? r : NULL);
		break;
	case CHAT__SERVER_FRAME__KIND_READ_RECEIPT:
		if (f->read_receipt)
			on_read(c, f);
		break;
	case CHAT__SERVER_FRAME__KIND_PRESENCE:
		if (!f->presence)
			break;
		apply_presence(c, f->presence);
		emit_simple(c, CHATC_EV_PRESENCE, 0, 0, 0, f);
		break;
	case CHAT__SERVER_FRAME__KIND_TYPING:
		if (!f->typing || f->typing->user_id == c->user_id)
			break;
		emit_simple(c, CHATC_EV_TYPING, 0, 0, f->typing->channel_id, f);
		break;
	case CHAT__SERVER_FRAME__KIND_RESUME_DONE:
		if (f->resume_done)
			on_resume_done(c, f);
		break;
	case CHAT__SERVER_FRAME__KIND_WHO:
		if (!f->who)
			break;
		for (size_t i = 0; i < f->who->n_users; i++)
			if (f->who->users[i])
				apply_presence(c, f->who->users[i]);
		emit_simple(c, CHATC_EV_WHO, f->req_id, kind,
		            f->who->channel_id, f);
		break;
	case CHAT__SERVER_FRAME__KIND_PONG:
		emit_simple(c, CHATC_EV_PONG, f->req_id, kind, 0, f);
		break;
	case CHAT__SERVER_FRAME__KIND_OK: {
		uint64_t ch = r ? r->channel : 0;
		if (r && kind == CHAT__CLIENT_FRAME__KIND_LEAVE) {
			chan_remove(c, r->channel);
			emit_simple(c, CHATC_EV_CHANNELS, 0, 0, r->channel, f);
		}
		if (r && kind == CHAT__CLIENT_FRAME__KIND_SET_STATUS)
			c->my_status = (int)r->arg;
		emit_simple(c, CHATC_EV_OK, f->req_id, kind, ch, f);
		break;
	}
	case CHAT__SERVER_FRAME__KIND_MEMBER: {
		const Chat__MemberEvent *m = f->member;
		if (!m)
			break;
		user_upsert(c, m->user_id, m->user_name);
		emit_simple(c, CHATC_EV_MEMBER, 0, 0, m->channel_id, f);
		break;
	}
	default:
		dlog(c, "unknown frame kind=%d", (int)f->kind_case);
		break;
	}
}

int chatc_feed(chatc *c, const uint8_t *data, size_t len)
{
	Chat__ServerFrame *f = chat__server_frame__unpack(NULL, len, data);
	if (!f) {
		dlog(c, "bad frame len=%zu", len);
		return CHAT_INVALID_ARGUMENT;
	}
	dlog(c, "rx kind=%d req=%llu len=%zu", (int)f->kind_case,
	     (unsigned long long)f->req_id, len);
	c->last_rx_ms = now_ms();
	dispatch(c, f);
	chat__server_frame__free_unpacked(f, NULL);
	return 0;
}

/* ---- connection management ---- */

static void set_state(chatc *c, int st)
{
	if (c->state == st)
		return;
	c->state = st;
	emit_simple(c, CHATC_EV_STATE, 0, 0, 0, NULL);
}

static void schedule_reconnect(chatc *c)
{
	int base, d;
	if (!c->reconnect_on || (!c->api_url && !c->edge_url)) {
		set_state(c, CHATC_STOPPED);
		return;
	}
	base = c->backoff_ms ? c->backoff_ms : BACKOFF_MIN_MS;
	/* Jitter: a delay in [base/2, base]. */
	d = base / 2 + (int)(chat_random_u64() % (uint64_t)(base / 2 + 1));
	c->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
	c->next_attempt_ms = now_ms() + d;
	dlog(c, "reconnect in_ms=%d", d);
	set_state(c, CHATC_WAITING);
}

/* Lose the connection: clean up and decide what comes next. */
static void lost(chatc *c, int code, const char *why, int reconnect)
{
	chatc_event ev;
	int was_online = c->state == CHATC_ONLINE;
	char whybuf[512];

	snprintf(whybuf, sizeof whybuf, "%s", why ? why : "");
	why = whybuf;

	chatc_ws_free(c->ws);
	c->ws = NULL;
	c->hook_online = 0;
	c->n_reqs = 0; /* their answers will never come */
	c->resuming = 0;
	c->resume_req = 0;
	c->list_req_out = 0;
	for (size_t i = 0; i < c->n_chans; i++)
		c->chans[i]->gap_req = c->chans[i]->before_req = 0;
	if (was_online)
		c->had_session = 1;
	dlog(c, "disconnected code=%d reason=\"%s\"", code, why);
	set_err(c, "%s", why);
	if (reconnect)
		schedule_reconnect(c);
	else
		set_state(c, CHATC_STOPPED);
	memset(&ev, 0, sizeof ev);
	ev.type = CHATC_EV_DISCONNECTED;
	ev.code = code;
	ev.reason = c->err;
	emit(c, &ev);
}

static int token_fresh(const chatc *c)
{
	if (!c->token || !c->token[0] || !c->edge_url)
		return 0;
	if (c->expires_at && c->expires_at - 60 < chat_now_ms() / 1000)
		return 0;
	return 1;
}

static int set_str(char **dst, const char *s)
{
	char *n = strdup(s);
	if (!n)
		return -1;
	free(*dst);
	*dst = n;
	return 0;
}

/* Log in (or sign up). Returns 0 or a chat.Code. */
static int do_login(chatc *c)
{
	chatc_auth a;
	char e[512];
	int rc;

	if (!c->api_url) {
		set_err(c, "the token was refused and there is no api to log "
		           "in again");
		return CHAT_UNAUTHENTICATED;
	}
	if (c->signup) {
		rc = chatc_signup(c->api_url, c->name, c->password,
		                  c->timeout_ms, &a, e, sizeof e);
		if (rc == 409) {
			rc = chatc_login(c->api_url, c->name, c->password,
			                 c->timeout_ms, &a, e, sizeof e);
		}
	} else {
		rc = chatc_login(c->api_url, c->name, c->password,
		                 c->timeout_ms, &a, e, sizeof e);
	}
	if (rc != 0) {
		set_err(c, "%s", e);
		memset(&a, 0, sizeof a);
		if (rc == 401)
			return CHAT_UNAUTHENTICATED;
		if (rc == 400 || rc == 413)
			return CHAT_INVALID_ARGUMENT;
		if (rc == 409)
			return CHAT_ALREADY_EXISTS;
		return CHAT_UNAVAILABLE;
	}
	c->signup = 0; /* the account exists now */
	if (set_str(&c->token, a.token) != 0 ||
	    set_str(&c->edge_url, a.edge_url) != 0) {
		memset(&a, 0, sizeof a);
		set_err(c, "out of memory");
		return CHAT_INTERNAL;
	}
	c->expires_at = a.expires_at;
	if (!c->user_id)
		c->user_id = a.user_id;
	memset(&a, 0, sizeof a);
	c->need_login = 0;
	dlog(c, "logged in edge=%s", c->edge_url);
	return 0;
}

/* One attempt: log in when needed, open the WebSocket. */
static int attempt(chatc *c)
{
	int rc, status = 0;
	char e[512];

	for (int round = 0; round < 2; round++) {
		if (c->need_login || !token_fresh(c)) {
			rc = do_login(c);
			if (rc != 0)
				return rc;
		}
		dlog(c, "connecting url=%s", c->edge_url);
		if (chatc_ws_connect(c->edge_url, c->token, c->timeout_ms,
		                     &c->ws, &status, e, sizeof e) == 0) {
			c->gen++;
			c->last_rx_ms = now_ms();
			c->last_ping_ms = 0;
			c->need_login = 0;
			return 0;
		}
		set_err(c, "%s", e);
		dlog(c, "connect failed: %s", e);
		if (status == 401 && c->api_url && round == 0) {
			c->need_login = 1;
			continue;
		}
		/* The edge may be gone: ask the api next time. */
		if (c->api_url)
			c->need_login = 1;
		return status == 401 ? CHAT_UNAUTHENTICATED : CHAT_UNAVAILABLE;
	}
	return CHAT_UNAUTHENTICATED;
}

static void read_input(chatc *c);

static void went_online(chatc *c)
{
	int resumed = c->had_session;
	/* After a reconnect, hold new sends until the resume is done so they
	 * follow the ones being resent. */
	c->resuming = resumed;
	set_state(c, CHATC_ONLINE);
	/* Resume after the first ChannelList too: messages stored between
	 * the edge's channel snapshot and its subscription of this session
	 * would otherwise stay unseen until the next message revealed the
	 * gap. */
	c->need_resume = 1;
	emit_simple(c, resumed ? CHATC_EV_RECONNECTED : CHATC_EV_CONNECTED,
	            0, 0, 0, NULL);
	/* Frames that came with the upgrade answer wait in the receiver, not
	 * in the socket: poll() would not tell of them. */
	if (c->ws)
		read_input(c);
}

int chatc_connect(chatc *c, char *err, size_t errlen)
{
	int rc;
	if (c->state == CHATC_ONLINE)
		return 0;
	set_state(c, CHATC_CONNECTING);
	rc = attempt(c);
	if (rc == 0) {
		went_online(c);
		return 0;
	}
	if (err && errlen)
		snprintf(err, errlen, "%s", c->err);
	if (rc == CHAT_UNAVAILABLE && c->reconnect_on)
		schedule_reconnect(c);
	else
		set_state(c, CHATC_STOPPED);
	return rc;
}

void chatc_test_online(chatc *c, int resumed)
{
	c->hook_online = 1;
	c->gen++;
	if (resumed)
		c->had_session = 1;
	went_online(c);
}

void chatc_drop(chatc *c)
{
	if (c->state != CHATC_ONLINE)
		return;
	lost(c, 0, "connection dropped", c->reconnect_on);
}

void chatc_set_reconnect(chatc *c, int on)
{
	c->reconnect_on = on;
	if (!on && c->state == CHATC_WAITING)
		set_state(c, CHATC_STOPPED);
}

void chatc_close(chatc *c)
{
	if (c->ws) {
		chatc_ws_close(c->ws, 1000, "bye");
		chatc_ws_flush(c->ws, NULL, 0);
	}
	c->reconnect_on = 0;
	if (c->state == CHATC_ONLINE)
		lost(c, 1000, "closed", 0);
	else
		set_state(c, CHATC_STOPPED);
}

/* Read everything available; handle a failure. */
static void read_input(chatc *c)
{
	uint64_t gen = c->gen;
	c->more_input = 0;
	for (int n = 0; c->ws && c->gen == gen; n++) {
		const uint8_t *data;
		size_t len;
		int op, rc;
		char e[256];

		if (n == 10000) {
			c->more_input = 1; /* let the caller breathe */
			return;
		}
		rc = chatc_ws_read(c->ws, &data, &len, &op, e, sizeof e);
		if (rc == 0)
			return;
		if (rc == -2) {
			int code = chatc_ws_close_code(c->ws);
			/* 4000: an administrator disconnected us. */
			lost(c, code, e, c->reconnect_on && code != 4000);
			if (code == 1001 && c->api_url)
				c->need_login = 1;
			return;
		}
		if (rc < 0) {
			lost(c, 0, e, c->reconnect_on);
			return;
		}
		if (op != CHATC_WS_BINARY) {
			dlog(c, "ignored text message len=%zu", len);
			continue;
		}
		chatc_feed(c, data, len);
	}
}

static void run_timers(chatc *c)
{
	int64_t now = now_ms();
	if (c->state == CHATC_WAITING && now >= c->next_attempt_ms) {
		int rc;
		set_state(c, CHATC_CONNECTING);
		rc = attempt(c);
		if (rc == 0)
			went_online(c);
		else if (rc == CHAT_UNAVAILABLE ||
		         (rc == CHAT_UNAUTHENTICATED && c->api_url == NULL))
			schedule_reconnect(c);
		else
			lost(c, 0, c->err, 0);
		return;
	}
	if (!is_online(c))
		return;
	resend_pending(c, 1);
	if (c->ws && c->keepalive_ms > 0) {
		if (now - c->last_rx_ms > 2 * (int64_t)c->keepalive_ms + 5000) {
			lost(c, 0, "no answer from the server (keepalive)",
			     c->reconnect_on);
			return;
		}
		if (now - c->last_rx_ms > c->keepalive_ms &&
		    now - c->last_ping_ms > c->keepalive_ms) {
			c->last_ping_ms = now;
			chatc_ping(c);
		}
	}
}

int chatc_next_timer_ms(const chatc *c)
{
	int64_t now = now_ms(), t = -1;
	if (c->ws && c->more_input)
		return 0;
	if (c->state == CHATC_WAITING) {
		t = c->next_attempt_ms - now;
	} else if (is_online(c)) {
		for (size_t i = 0; i < c->n_pend; i++) {
			int64_t d;
			if (!c->pend[i]->retry_at_ms || c->pend[i]->acked)
				continue;
			d = c->pend[i]->retry_at_ms - now;
			if (t < 0 || d < t)
				t = d;
		}
		if (c->ws && c->keepalive_ms > 0) {
			int64_t d = c->last_rx_ms + c->keepalive_ms - now;
			int64_t p = c->last_ping_ms + c->keepalive_ms - now;
			if (p > d)
				d = p;
			if (d < 1000)
				d = 1000;
			if (t < 0 || d < t)
				t = d;
		}
	}
	if (t < 0 && t != -1)
		t = 0;
	if (t > 60000)
		t = 60000;
	return (int)t;
}

int chatc_process(chatc *c, int timeout_ms)
{
	char e[256];
	int t = chatc_next_timer_ms(c);

	if (t >= 0 && (timeout_ms < 0 || t < timeout_ms))
		timeout_ms = t;
	if (c->ws) {
		struct pollfd p = {.fd = chatc_ws_fd(c->ws), .events = POLLIN};
		if (chatc_ws_want_write(c->ws))
			p.events |= POLLOUT;
		if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
			return -1;
		if ((p.revents & (POLLIN | POLLHUP | POLLERR)) || c->more_input)
			read_input(c);
	} else if (timeout_ms > 0) {
		poll(NULL, 0, timeout_ms);
	}
	run_timers(c);
	if (c->ws && chatc_ws_want_write(c->ws) &&
	    chatc_ws_flush(c->ws, e, sizeof e) != 0)
		lost(c, 0, e, c->reconnect_on);
	return c->state == CHATC_STOPPED ? -1 : 0;
}

/* ---- lifecycle and accessors ---- */

chatc *chatc_new(const chatc_opts *o, char *err, size_t errlen)
{
	chatc *c;
	if (!o || (!o->api_url && !o->edge_url && !o->send_hook)) {
		snprintf(err, errlen, "chatc: need an api URL or an edge URL");
		return NULL;
	}
	if (o->api_url && (!o->name || !o->password)) {
		snprintf(err, errlen, "chatc: need a name and a password");
		return NULL;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		goto oom;
	if ((o->api_url && !(c->api_url = strdup(o->api_url))) ||
	    (o->name && !(c->name = strdup(o->name))) ||
	    (o->password && !(c->password = strdup(o->password))) ||
	    (o->edge_url && !(c->edge_url = strdup(o->edge_url))) ||
	    (o->token && !(c->token = strdup(o->token))))
		goto oom;
	c->expires_at = o->expires_at;
	c->signup = o->signup;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
	c->max_held = o->max_held ? o->max_held : 10000;
	c->keepalive_ms = o->keepalive_ms ? o->keepalive_ms : 20000;
	c->on_event = o->on_event;
	c->log = o->log;
	c->send_hook = o->send_hook;
	c->user = o->user;
	c->reconnect_on = !o->no_reconnect;
	c->state = CHATC_IDLE;
	if (c->name)
		snprintf(c->user_name, sizeof c->user_name, "%s", c->name);
	return c;
oom:
	snprintf(err, errlen, "chatc: out of memory");
	chatc_free(c);
	return NULL;
}

void chatc_free(chatc *c)
{
	if (!c)
		return;
	chatc_ws_free(c->ws);
	for (size_t i = 0; i < c->n_chans; i++)
		channel_free(c->chans[i]);
	for (size_t i = 0; i < c->n_users; i++) {
		free(c->users[i]->name);
		free(c->users[i]);
	}
	for (size_t i = 0; i < c->n_pend; i++) {
		free(c->pend[i]->body);
		free(c->pend[i]);
	}
	if (c->password) {
		memset(c->password, 0, strlen(c->password));
		free(c->password);
	}
	if (c->token) {
		memset(c->token, 0, strlen(c->token));
		free(c->token);
	}
	free(c->chans);
	free(c->users);
	free(c->pend);
	free(c->reqs);
	free(c->api_url);
	free(c->name);
	free(c->edge_url);
	free(c);
}

int chatc_fd(const chatc *c)
{
	return c->ws ? chatc_ws_fd(c->ws) : -1;
}

int chatc_want_write(const chatc *c)
{
	return c->ws && chatc_ws_want_write(c->ws);
}

int chatc_state(const chatc *c)
{
	return c->state;
}

const char *chatc_state_name(int state)
{
	switch (state) {
	case CHATC_IDLE:
		return "idle";
	case CHATC_CONNECTING:
		return "connecting";
	case CHATC_ONLINE:
		return "online";
	case CHATC_WAITING:
		return "reconnecting";
	case CHATC_STOPPED:
		return "disconnected";
	default:
		return "?";
	}
}

int64_t chatc_reconnect_in_ms(const chatc *c)
{
	int64_t d;
	if (c->state != CHATC_WAITING)
		return -1;
	d = c->next_attempt_ms - now_ms();
	return d < 0 ? 0 : d;
}

const char *chatc_last_error(const chatc *c)
{
	return c->err;
}

uint64_t chatc_user_id(const chatc *c)
{
	return c->user_id;
}

const char *chatc_user_name(const chatc *c)
{
	return c->user_name;
}

int chatc_my_status(const chatc *c)
{
	return c->my_status;
}

uint32_t chatc_max_body(const chatc *c)
{
	return c->max_body;
}

size_t chatc_channel_count(const chatc *c)
{
	return c->n_chans;
}

const chatc_channel *chatc_channel_at(const chatc *c, size_t i)
{
	return i < c->n_chans ? c->chans[i] : NULL;
}

const chatc_channel *chatc_channel_get(const chatc *c, uint64_t id)
{
	return chan_find((chatc *)c, id);
}

const chatc_user *chatc_user_get(const chatc *c, uint64_t id)
{
	for (size_t i = 0; i < c->n_users; i++)
		if (c->users[i]->id == id)
			return c->users[i];
	return NULL;
}

const chatc_user *chatc_user_by_name(const chatc *c, const char *name)
{
	for (size_t i = 0; i < c->n_users; i++)
		if (c->users[i]->name && strcmp(c->users[i]->name, name) == 0)
			return c->users[i];
	return NULL;
}

size_t chatc_pending_count(const chatc *c)
{
	return c->n_pend;
}

const chatc_pending *chatc_pending_at(const chatc *c, size_t i)
{
	return i < c->n_pend ? c->pend[i] : NULL;
}

const chatc_pending *chatc_pending_get(const chatc *c, const char *cmid)
{
	return pend_find((chatc *)c, cmid, NULL);
}

chatc_ws *chatc_ws_conn(chatc *c)
{
	return c->ws;
}

/* ---- requests ---- */

int chatc_send_with_id(chatc *c, uint64_t channel, const char *body,
                       const char *cmid)
{
	chatc_pending *p;
	size_t bl = body ? strlen(body) : 0, cl = cmid ? strlen(cmid) : 0;
	uint32_t maxb = c->max_body ? c->max_body : 4000;

	if (bl == 0 || bl > maxb) {
		set_err(c, "a message must be 1 to %u bytes", maxb);
		return CHAT_INVALID_ARGUMENT;
	}
	if (!chat_utf8_valid_text(body, bl)) {
		set_err(c, "a message must be UTF-8 text");
		return CHAT_INVALID_ARGUMENT;
	}
	if (cl == 0 || cl > 64) {
		set_err(c, "a client_msg_id must be 1 to 64 bytes");
		return CHAT_INVALID_ARGUMENT;
	}
	if (c->n_pend >= MAX_PENDING) {
		set_err(c, "too many messages waiting to be sent");
		return CHAT_RESOURCE_EXHAUSTED;
	}
	if (pend_find(c, cmid, NULL)) {
		set_err(c, "client_msg_id %s is already pending", cmid);
		return CHAT_ALREADY_EXISTS;
	}
	if (grow((void **)&c->pend, &c->cap_pend, c->n_pend,
	         sizeof *c->pend) != 0)
		goto oom;
	p = calloc(1, sizeof *p);
	if (!p)
		goto oom;
	p->body = strdup(body);
	if (!p->body) {
		free(p);
		goto oom;
	}
	snprintf(p->client_msg_id, sizeof p->client_msg_id, "%s", cmid);
	p->channel_id = channel;
	c->pend[c->n_pend++] = p;
	if (is_online(c) && !c->resuming)
		transmit(c, p);
	return 0;
oom:
	set_err(c, "out of memory");
	return CHAT_RESOURCE_EXHAUSTED;
}

int chatc_send(chatc *c, uint64_t channel, const char *body,
               char cmid_out[CHATC_CMID_LEN])
{
	char id[CHATC_CMID_LEN];
	int rc;
	chat_random_hex(id, sizeof id);
	rc = chatc_send_with_id(c, channel, body, id);
	if (rc == 0 && cmid_out)
		memcpy(cmid_out, id, sizeof id);
	return rc;
}

uint64_t chatc_create(chatc *c, const char *name, const char *const *members,
                      size_t n_members)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__CreateChannelReq r = CHAT__CREATE_CHANNEL_REQ__INIT;
	struct req rq;
	memset(&rq, 0, sizeof rq);
	r.name = (char *)(name ? name : "");
	r.n_members = n_members;
	r.members = (char **)members;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_CREATE_CHANNEL;
	f.create_channel = &r;
	return request(c, &f, &rq);
}

uint64_t chatc_open_dm(chatc *c, const char *user_name)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__OpenDmReq r = CHAT__OPEN_DM_REQ__INIT;
	struct req rq;
	memset(&rq, 0, sizeof rq);
	r.user_name = (char *)(user_name ? user_name : "");
	f.kind_case = CHAT__CLIENT_FRAME__KIND_OPEN_DM;
	f.open_dm = &r;
	return request(c, &f, &rq);
}

uint64_t chatc_join(chatc *c, uint64_t channel)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__JoinReq r = CHAT__JOIN_REQ__INIT;
	struct req rq;
	memset(&rq, 0, sizeof rq);
	r.channel_id = channel;
	rq.channel = channel;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_JOIN;
	f.join = &r;
	return request(c, &f, &rq);
}

uint64_t chatc_leave(chatc *c, uint64_t channel)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__LeaveReq r = CHAT__LEAVE_REQ__INIT;
	struct req rq;
	memset(&rq, 0, sizeof rq);
	r.channel_id = channel;
	rq.channel = channel;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_LEAVE;
	f.leave = &r;
	return request(c, &f, &rq);
}

uint64_t chatc_list_channels(chatc *c)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__ListChannelsReq r = CHAT__LIST_CHANNELS_REQ__INIT;
	struct req rq;
	memset(&rq, 0, sizeof rq);
	f.kind_case = CHAT__CLIENT_FRAME__KIND_LIST_CHANNELS;
	f.list_channels = &r;
	return request(c, &f, &rq);
}

uint64_t chatc_history_before(chatc *c, uint64_t channel, uint64_t anchor,
                              uint32_t limit)
{
	chatc_channel *ch = chan_find(c, channel);
	uint64_t id;
	if (anchor == 0 && ch) {
		if (ch->before_req)
			return ch->before_req; /* already asked */
		anchor = ch->first_seq;
	}
	id = send_history(c, channel, anchor,
	                  CHAT__HISTORY_REQ__DIRECTION__BEFORE, limit);
	if (ch && id && anchor == ch->first_seq)
		ch->before_req = id;
	return id;
}

uint64_t chatc_history_after(chatc *c, uint64_t channel, uint64_t anchor,
                             uint32_t limit)
{
	return send_history(c, channel, anchor,
	                    CHAT__HISTORY_REQ__DIRECTION__AFTER, limit);
}

uint64_t chatc_mark_read(chatc *c, uint64_t channel, uint64_t seq)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__MarkReadReq r = CHAT__MARK_READ_REQ__INIT;
	struct req rq;
	memset(&rq, 0, sizeof rq);
	r.channel_id = channel;
	r.seq = seq;
	rq.channel = channel;
	rq.arg = seq;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_MARK_READ;
	f.mark_read = &r;
	return request(c, &f, &rq);
}

uint64_t chatc_set_status(chatc *c, int status)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__SetStatusReq r = CHAT__SET_STATUS_REQ__INIT;
	struct req rq;
	memset(&rq, 0, sizeof rq);
	r.status = status;
	rq.arg = (uint64_t)status;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_SET_STATUS;
	f.set_status = &r;
	return request(c, &f, &rq);
}

uint64_t chatc_typing(chatc *c, uint64_t channel)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__TypingReq r = CHAT__TYPING_REQ__INIT;
	r.channel_id = channel;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_TYPING;
	f.typing = &r;
	return request(c, &f, NULL);
}

uint64_t chatc_who(chatc *c, uint64_t channel)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__WhoReq r = CHAT__WHO_REQ__INIT;
	struct req rq;
	memset(&rq, 0, sizeof rq);
	r.channel_id = channel;
	rq.channel = channel;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_WHO;
	f.who = &r;
	return request(c, &f, &rq);
}

uint64_t chatc_ping(chatc *c)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__PingReq r = CHAT__PING_REQ__INIT;
	struct req rq;
	memset(&rq, 0, sizeof rq);
	r.client_time_ms = chat_now_ms();
	f.kind_case = CHAT__CLIENT_FRAME__KIND_PING;
	f.ping = &r;
	return request(c, &f, &rq);
}

const char *chatc_status_name(int status)
{
	switch (status) {
	case CHAT__STATUS__STATUS_ONLINE:
		return "online";
	case CHAT__STATUS__STATUS_AWAY:
		return "away";
	case CHAT__STATUS__STATUS_BUSY:
		return "busy";
	case CHAT__STATUS__STATUS_OFFLINE:
		return "offline";
	default:
		return "?";
	}
}

int chatc_status_parse(const char *name)
{
	static const char *const names[] = {"offline", "online", "away",
	                                    "busy"};
	for (int i = 0; i < 4; i++)
		if (name && strcmp(name, names[i]) == 0)
			return i;
	return -1;
}
