/* The lws service thread: the protocol callback (auth on upgrade, frames
 * in, frames out), the inbox, resume pacing and shutdown. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat_log.h"
#include "chat_util.h"
#include "edge_int.h"

#define TOKEN_MAX 4096

/* Per-connection data allocated by lws (HTTP and WebSocket alike). */
struct pss {
	edge_sess *s;
	int http_status;
};

/* A resume in progress: positions of the member channels, replayed one
 * page at a time, paced by the session's outbound queue. */
struct edge_resume {
	uint64_t req_id;
	size_t n, i;
	uint64_t *chan, *last;
	size_t count;  /* replayed for position i */
	int job_out;   /* a page is being fetched */
	int waiting;   /* paused until the queue drains */
	int waiting_route; /* paused until the routing table has the
	                    * session's channels */
};

void edge_resume_free(edge_resume *r)
{
	if (!r)
		return;
	free(r->chan);
	free(r->last);
	free(r);
}

/* ---- helpers ---- */

static int too_full(const edge_sess *s)
{
	const edge *e = s->e;
	return s->qlen * 2 > (size_t)e->cfg.max_queue_frames ||
	       s->qbytes * 2 > (size_t)e->cfg.max_queue_bytes;
}

static void push_error(edge_sess *s, uint64_t req_id, int code,
                       const char *reason, uint64_t channel_id)
{
	edge_sess_push(s, edge_pack_error(req_id, code, reason, channel_id,
	                                  NULL));
}

/* A request answered: let rx flow again once the backlog is halved. */
static void req_done(edge_sess *s)
{
	if (s->inflight > 0)
		s->inflight--;
	if (s->rx_paused && s->inflight <= EDGE_MAX_INFLIGHT / 2) {
		s->rx_paused = 0;
		if (s->ready)
			lws_rx_flow_control(s->wsi, 1);
	}
}

static void req_begin(edge_sess *s)
{
	if (++s->inflight >= EDGE_MAX_INFLIGHT && !s->rx_paused) {
		s->rx_paused = 1;
		lws_rx_flow_control(s->wsi, 0);
	}
}

/* ---- auth ---- */

/* Copy the bearer token (header or ?token=) into tok. */
static int get_token(struct lws *wsi, char *tok, size_t toklen)
{
	char buf[TOKEN_MAX + 64];
	const char *v;
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);

	if (n > 0) {
		if (n >= (int)sizeof buf ||
		    lws_hdr_copy(wsi, buf, sizeof buf,
		                 WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
			return -1;
		v = buf;
		if (strncasecmp(v, "Bearer ", 7) != 0)
			return -1;
		v += 7;
		while (*v == ' ')
			v++;
		if (chat_strlcpy(tok, v, toklen) >= toklen)
			return -1;
		return 0;
	}
	/* lws 4.1 copies "token=VALUE" and returns a pointer to VALUE. */
	v = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof buf);
	if (!v)
		return -1;
	if (chat_strlcpy(tok, v, toklen) >= toklen)
		return -1;
	return 0;
}

static int authenticate(edge *e, struct lws *wsi, chat_claims *c,
                        char *reason, size_t rlen)
{
	char tok[TOKEN_MAX + 1];
	if (get_token(wsi, tok, sizeof tok) != 0 || !tok[0]) {
		snprintf(reason, rlen, "missing token");
		return -1;
	}
	return chat_jwt_verify(e->cfg.jwt_key, e->cfg.jwt_key_len, tok,
	                       EDGE_JWT_LEEWAY_S, c, reason, rlen);
}

/* Answer a refused upgrade with an HTTP status and a text/plain reason.
 * lws 4.1.6 lets us write from FILTER_PROTOCOL_CONNECTION; the caller
 * then returns -1 and lws closes the connection. */
static void refuse_http(struct lws *wsi, unsigned code, const char *reason)
{
	unsigned char hb[LWS_PRE + 1024];
	unsigned char *start = hb + LWS_PRE, *p = start, *end = hb + sizeof hb;
	size_t n = strlen(reason);

	if (n > 300)
		n = 300;
	if (lws_add_http_common_headers(wsi, code, "text/plain", n, &p,
	                                end - 400) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
	                                 (const unsigned char *)"close", 5, &p,
	                                 end - 400) ||
	    lws_finalize_write_http_header(wsi, start, &p, end - 400))
		return;
	memcpy(start, reason, n);
	lws_write(wsi, start, n, LWS_WRITE_HTTP_FINAL);
}

static int filter(edge *e, struct lws *wsi)
{
	char uri[128], reason[160];
	chat_claims c;
	unsigned code = 401;

	if (atomic_load(&e->stopping)) {
		code = 503;
		snprintf(reason, sizeof reason, "server shutting down");
		goto refuse;
	}
	if (atomic_load(&e->draining)) {
		code = 503;
		snprintf(reason, sizeof reason, "server draining");
		goto refuse;
	}
	if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
	    strcmp(uri, "/ws") != 0) {
		code = 404;
		snprintf(reason, sizeof reason, "not found");
		goto refuse;
	}
	if (authenticate(e, wsi, &c, reason, sizeof reason) != 0)
		goto refuse;
	return 0;
refuse:
	chat_debug(EDGE_SVC, "upgrade_refused", "code=%u reason=\"%s\"", code,
	           reason);
	refuse_http(wsi, code, reason);
	return -1;
}

/* ---- plain HTTP ---- */

static const char *http_body(int status)
{
	switch (status) {
	case 200:
		return "ok";
	default:
		return "not found";
	}
}

static int http_request(struct lws *wsi, struct pss *p, const char *uri)
{
	unsigned char hb[LWS_PRE + 512];
	unsigned char *start = hb + LWS_PRE, *q = start, *end = hb + sizeof hb;
	int get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	const char *body;

	if (get && !strcmp(uri, "/healthz"))
		p->http_status = 200;
	else
		p->http_status = 404;
	body = http_body(p->http_status);
	if (lws_add_http_common_headers(wsi, (unsigned)p->http_status,
	                                "text/plain", strlen(body), &q, end) ||
	    lws_finalize_write_http_header(wsi, start, &q, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int http_writeable(struct lws *wsi, struct pss *p)
{
	unsigned char hb[LWS_PRE + 64];
	const char *body = http_body(p->http_status);
	size_t n = strlen(body);

	if (!p->http_status)
		return 0;
	memcpy(hb + LWS_PRE, body, n);
	if (lws_write(wsi, hb + LWS_PRE, n, LWS_WRITE_HTTP_FINAL) != (int)n)
		return -1;
	p->http_status = 0;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- session setup ---- */

static int established(edge *e, struct lws *wsi, struct pss *p)
{
	char reason[160];
	chat_claims c;
	edge_sess *s;
	edge_job *j;

	/* FILTER checked the token; the headers are still here, and the
	 * claims are needed now (lws has no user data before this point). */
	if (authenticate(e, wsi, &c, reason, sizeof reason) != 0) {
		reason[EDGE_CLOSE_REASON_MAX] = '\0';
		lws_close_reason(wsi, EDGE_CLOSE_UNAUTHENTICATED,
		                 (unsigned char *)reason, strlen(reason));
		return -1;
	}
	s = edge_sess_new(e, wsi, &c);
	if (!s) {
		static const char oom[] = "out of memory";
		lws_close_reason(wsi, EDGE_CLOSE_INTERNAL, (unsigned char *)oom,
		                 sizeof oom - 1);
		return -1;
	}
	p->s = s;
	chat_debug(EDGE_SVC, "session_open", "sid=%" PRIu64 " user=%" PRIu64
	           " name=%s", s->id, s->user_id, s->user_name);
	if (atomic_load(&e->stopping) || atomic_load(&e->draining)) {
		edge_sess_close(s, EDGE_CLOSE_GOING_AWAY,
		                atomic_load(&e->stopping)
		                    ? "server shutting down"
		                    : "server draining",
		                0);
		return 0;
	}
	/* No requests until Welcome and the channel list are out. */
	lws_rx_flow_control(wsi, 0);
	j = edge_job_new(e, JOB_SETUP);
	if (j) {
		j->sid = s->id;
		j->user_id = s->user_id;
		chat_strlcpy(j->user_name, s->user_name, sizeof j->user_name);
		s->setup_pending = 1;
		if (edge_job_submit(e, j) == 0)
			return 0;
		s->setup_pending = 0;
	}
	edge_sess_close(s, EDGE_CLOSE_TRY_LATER, "server busy", 0);
	return 0;
}

static void setup_done(edge *e, edge_ib *ib)
{
	edge_sess *s = edge_sess_find(e, ib->sid);

	if (!s) {
		/* Closed meanwhile: the close path left SessionDown to us. */
		edge_job *j = edge_job_new(e, JOB_SESSION_DOWN);
		if (j) {
			j->sid = ib->sid;
			j->user_id = ib->user_id;
			chat_strlcpy(j->user_name, ib->user_name,
			             sizeof j->user_name);
			edge_job_submit(e, j);
		}
		return;
	}
	if (ib->ok && s->memb_changed && s->setup_runs < EDGE_SETUP_RUNS &&
	    !s->close_code) {
		/* Its channels changed while the snapshot was taken: load
		 * them again rather than subscribe to a channel just left. */
		edge_job *j = edge_job_new(e, JOB_SETUP);
		s->memb_changed = 0;
		s->setup_runs++;
		if (j) {
			j->sid = s->id;
			j->user_id = s->user_id;
			chat_strlcpy(j->user_name, s->user_name,
			             sizeof j->user_name);
			if (edge_job_submit(e, j) == 0)
				return;
		}
	}
	s->setup_pending = 0;
	if (!ib->ok) {
		/* Tell the client why, then close once that is written. */
		s->ready = 1;
		for (size_t i = 0; i < ib->nbufs; i++) {
			edge_sess_push(s, ib->bufs[i]);
			ib->bufs[i] = NULL;
		}
		edge_sess_close(s,
		                chat_status_retryable(ib->status)
		                    ? EDGE_CLOSE_TRY_LATER
		                    : EDGE_CLOSE_INTERNAL,
		                "cannot load the session; try again later", 1);
		return;
	}
	for (size_t i = 0; i < ib->nchans; i++)
		edge_sess_chan_add(s, ib->chans[i]);
	/* Welcome and ChannelList go ahead of pushes queued meanwhile. */
	edge_sess_push_front(s, ib->bufs, ib->nbufs);
	ib->nbufs = 0;
	s->ready = 1;
	if (s->close_code)
		return;
	if (!s->rx_paused)
		lws_rx_flow_control(s->wsi, 1);
	lws_callback_on_writable(s->wsi);
}

/* ---- resume ---- */

static uint32_t page_limit(const edge *e)
{
	size_t lim = EDGE_MAX_HISTORY;
	size_t by_frames = (size_t)e->cfg.max_queue_frames / 4;
	size_t by_bytes = (size_t)e->cfg.max_queue_bytes / 4 /
	                  (EDGE_MAX_BODY + 256);
	if (by_frames < lim)
		lim = by_frames;
	if (by_bytes < lim)
		lim = by_bytes;
	return lim ? (uint32_t)lim : 1;
}

static void resume_finish(edge_sess *s)
{
	edge_resume *r = s->resume;
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__ResumeDone d = CHAT__RESUME_DONE__INIT;
	Chat__ChannelPos *pos = calloc(r->n ? r->n : 1, sizeof *pos);
	Chat__ChannelPos **pp = calloc(r->n ? r->n : 1, sizeof *pp);

	s->resume = NULL;
	if (!pos || !pp) {
		push_error(s, r->req_id, CHAT_RESOURCE_EXHAUSTED,
		           "out of memory", 0);
	} else {
		for (size_t i = 0; i < r->n; i++) {
			chat__channel_pos__init(&pos[i]);
			pos[i].channel_id = r->chan[i];
			pos[i].last_seq = r->last[i];
			pp[i] = &pos[i];
		}
		d.n_positions = r->n;
		d.positions = pp;
		f.req_id = r->req_id;
		f.kind_case = CHAT__SERVER_FRAME__KIND_RESUME_DONE;
		f.resume_done = &d;
		edge_sess_push(s, edge_pack(&f, EDGE_BUF_NORMAL));
	}
	free(pos);
	free(pp);
	edge_resume_free(r);
	req_done(s);
}

/* Whether the routing table has routed the session's channels here for
 * long enough that no dispatcher answers from an older cached lookup. */
static int route_settled(edge_sess *s)
{
	edge *e = s->e;

	if (s->route_seq > atomic_load(&e->rt.applied))
		return 0;
	if (e->cfg.route_settle_ms <= 0)
		return 1;
	if (!s->route_ready_us)
		s->route_ready_us = atomic_load(&e->rt.applied_us) +
		                    (int64_t)e->cfg.route_settle_ms * 1000;
	return chat_mono_us() >= s->route_ready_us;
}

static void route_tick_arm(edge *e);

static void resume_next(edge_sess *s)
{
	edge_resume *r = s->resume;
	edge *e = s->e;
	edge_job *j;

	if (!r || r->job_out || s->close_code)
		return;
	if (r->i == r->n) {
		resume_finish(s);
		return;
	}
	if (too_full(s)) {
		r->waiting = 1;
		return;
	}
	r->waiting = 0;
	/* A message stored after the history read below reaches this edge
	 * only once the table routes its channels here: read after that. */
	if (!route_settled(s)) {
		if (!r->waiting_route &&
		    chat_u64map_put(&e->route_wait, s->id, (void *)1) == 0)
			r->waiting_route = 1;
		if (r->waiting_route) {
			route_tick_arm(e);
			return;
		}
	}
	if (r->waiting_route) {
		chat_u64map_del(&e->route_wait, s->id);
		r->waiting_route = 0;
	}
	j = edge_job_new(e, JOB_RESUME_PAGE);
	if (j) {
		size_t left = EDGE_RESUME_MAX - r->count;
		j->sid = s->id;
		j->user_id = s->user_id;
		j->req_id = r->req_id;
		j->channel_id = r->chan[r->i];
		j->after_seq = r->last[r->i];
		j->limit = page_limit(e);
		if (j->limit > left)
			j->limit = (uint32_t)left;
		if (edge_job_submit(e, j) == 0) {
			r->job_out = 1;
			return;
		}
	}
	s->resume = NULL;
	push_error(s, r->req_id, CHAT_UNAVAILABLE, "server busy", 0);
	edge_resume_free(r);
	req_done(s);
}

static void resume_start(edge_sess *s, const edge_act *act)
{
	const Chat__ResumeReq *rq = act->frame->resume;
	edge_resume *r;
	chat_u64map seen;

	if (s->resume) {
		push_error(s, act->req_id, CHAT_ABORTED,
		           "a resume is already in progress", 0);
		return;
	}
	r = calloc(1, sizeof *r);
	if (!r)
		goto oom;
	r->req_id = act->req_id;
	r->chan = calloc(rq->n_positions ? rq->n_positions : 1,
	                 sizeof *r->chan);
	r->last = calloc(rq->n_positions ? rq->n_positions : 1,
	                 sizeof *r->last);
	if (!r->chan || !r->last)
		goto oom;
	chat_u64map_init(&seen);
	for (size_t i = 0; i < rq->n_positions; i++) {
		const Chat__ChannelPos *p = rq->positions[i];
		if (!p || !chat_u64map_get(&s->chans, p->channel_id) ||
		    chat_u64map_get(&seen, p->channel_id))
			continue;
		if (chat_u64map_put(&seen, p->channel_id, (void *)1) != 0)
			continue;
		r->chan[r->n] = p->channel_id;
		r->last[r->n] = p->last_seq;
		r->n++;
	}
	chat_u64map_fini(&seen);
	s->resume = r;
	req_begin(s);
	resume_next(s);
	return;
oom:
	edge_resume_free(r);
	push_error(s, act->req_id, CHAT_RESOURCE_EXHAUSTED, "out of memory",
	           0);
}

static void resume_page(edge *e, edge_ib *ib)
{
	edge_sess *s = edge_sess_find(e, ib->sid);
	edge_resume *r = s ? s->resume : NULL;

	if (!r || r->req_id != ib->req_id || !r->job_out)
		return;
	r->job_out = 0;
	for (size_t i = 0; i < ib->nbufs; i++) {
		edge_sess_push(s, ib->bufs[i]);
		ib->bufs[i] = NULL;
	}
	if (!s->resume)
		return; /* the queue overflowed and closed the session */
	if (!ib->ok) {
		s->resume = NULL;
		edge_resume_free(r);
		req_done(s);
		return;
	}
	if (ib->count)
		r->last[r->i] = ib->last_seq;
	r->count += ib->count;
	if (!ib->more || !ib->count || r->count >= EDGE_RESUME_MAX) {
		r->i++;
		r->count = 0;
	}
	resume_next(s);
}

/* ---- frames in ---- */

static void on_message(edge *e, edge_sess *s, const uint8_t *data,
                       size_t len, int text)
{
	chat_arena *a = chat_arena_new();
	int64_t t;
	edge_sess_view v;
	edge_act act;
	edge_job *j;

	if (!a) {
		push_error(s, 0, CHAT_RESOURCE_EXHAUSTED, "out of memory", 0);
		return;
	}
	v.channels = &s->chans;
	v.bucket = &s->bucket;
	v.send_rate = e->cfg.send_rate;
	v.send_burst = e->cfg.send_burst;
	v.now_us = chat_mono_us();
	edge_frame_decide(a, data, len, text, &v, &act);
	switch (act.kind) {
	case EDGE_ACT_ERROR:
		edge_sess_push(s, edge_pack_act_error(&act));
		break;
	case EDGE_ACT_PING:
		t = act.frame->ping->client_time_ms;
		edge_sess_push(s, edge_pack_pong(act.req_id, t, chat_now_ms()));
		break;
	case EDGE_ACT_SEND:
		edge_produce(e, s, &act);
		break;
	case EDGE_ACT_RESUME:
		resume_start(s, &act);
		break;
	case EDGE_ACT_TYPING:
		/* Ephemeral: the first thing dropped under pressure. */
		if (!e->dispatcher ||
		    chat_workers_backlog(e->workers) > EDGE_TYPING_BACKLOG)
			break;
		/* and limited per session: a flood must not hold the
		 * workers every request shares */
		if (chat_mono_us() < s->typing_next_us)
			break;
		s->typing_next_us = chat_mono_us() + EDGE_TYPING_GAP_US;
		/* fall through */
	case EDGE_ACT_RPC:
		j = edge_job_new(e, act.kind == EDGE_ACT_RPC ? JOB_REQ
		                                             : JOB_TYPING);
		if (!j) {
			if (act.kind == EDGE_ACT_RPC)
				push_error(s, act.req_id,
				           CHAT_RESOURCE_EXHAUSTED,
				           "out of memory", 0);
			break;
		}
		chat_arena_free(j->arena);
		j->arena = a;
		a = NULL;
		j->frame = act.frame;
		j->sid = s->id;
		j->user_id = s->user_id;
		j->req_id = act.req_id;
		chat_strlcpy(j->user_name, s->user_name, sizeof j->user_name);
		if (edge_job_submit(e, j) != 0) {
			if (act.kind == EDGE_ACT_RPC)
				push_error(s, act.req_id, CHAT_UNAVAILABLE,
				           "server shutting down", 0);
			break;
		}
		if (act.kind == EDGE_ACT_RPC)
			req_begin(s);
		break;
	case EDGE_ACT_DROP:
		break;
	}
	chat_arena_free(a);
}

static int receive(edge *e, struct lws *wsi, edge_sess *s, const void *in,
                   size_t len)
{
	int final = lws_is_final_fragment(wsi);

	if (!s || s->close_code)
		return 0;
	s->rx_ms = chat_mono_ms();
	if (!s->rx_in_msg) {
		s->rx_in_msg = 1;
		s->rx_text = !lws_frame_is_binary(wsi);
		s->rx_skip = 0;
		s->rxlen = 0;
	}
	if (!s->rx_text && !s->rx_skip) {
		if (s->rxlen + len > EDGE_MAX_FRAME) {
			/* Discard the rest of this message. */
			s->rx_skip = 1;
			free(s->rx);
			s->rx = NULL;
			s->rxlen = s->rxcap = 0;
		} else if (final && s->rxlen == 0) {
			/* Whole message in one piece: no copy. */
			s->rx_in_msg = 0;
			on_message(e, s, in, len, 0);
			return 0;
		} else {
			if (s->rxlen + len > s->rxcap) {
				size_t cap = s->rxcap ? s->rxcap : 4096;
				uint8_t *nb;
				while (cap < s->rxlen + len)
					cap *= 2;
				if (cap > EDGE_MAX_FRAME)
					cap = EDGE_MAX_FRAME;
				nb = realloc(s->rx, cap);
				if (!nb)
					return -1;
				s->rx = nb;
				s->rxcap = cap;
			}
			memcpy(s->rx + s->rxlen, in, len);
			s->rxlen += len;
		}
	}
	if (!final)
		return 0;
	s->rx_in_msg = 0;
	if (s->rx_skip) {
		edge_act act;
		edge_act_oversize(&act);
		edge_sess_push(s, edge_pack_act_error(&act));
	} else if (s->rx_text) {
		on_message(e, s, NULL, 0, 1);
	} else {
		on_message(e, s, s->rx, s->rxlen, 0);
	}
	/* Keep small buffers for the next fragmented message. */
	if (s->rxcap > 16384) {
		free(s->rx);
		s->rx = NULL;
		s->rxcap = 0;
	}
	s->rxlen = 0;
	return 0;
}

/* ---- frames out ---- */

static int writeable(struct lws *wsi, edge_sess *s)
{
	chat_buf *b;
	int n;

	if (!s)
		return -1;
	if (s->close_code && (!s->close_drain || !s->qlen)) {
		lws_close_reason(wsi, (enum lws_close_status)s->close_code,
		                 (unsigned char *)s->close_reason,
		                 strlen(s->close_reason));
		return -1;
	}
	if (s->ping_due) {
		/* a payload: lws 4.1 passes no empty pong to the callback */
		unsigned char ping[LWS_PRE + 1] = {0};
		s->ping_due = 0;
		ping[LWS_PRE] = (unsigned char)'k';
		if (lws_write(wsi, ping + LWS_PRE, 1, LWS_WRITE_PING) < 0)
			return -1;
		if (s->qlen && s->ready)
			lws_callback_on_writable(wsi);
		return 0;
	}
	if (!s->ready || !(b = edge_sess_pop(s)))
		return 0;
	n = lws_write(wsi, chat_buf_data(b), b->len, LWS_WRITE_BINARY);
	chat_buf_rele(b);
	if (n < 0)
		return -1;
	if (s->qlen || s->close_code)
		lws_callback_on_writable(wsi);
	if (s->resume && s->resume->waiting && !too_full(s))
		resume_next(s);
	return 0;
}

/* ---- the inbox ---- */

static void queue_frames(edge_sess *s, edge_ib *ib)
{
	for (size_t i = 0; i < ib->nbufs; i++) {
		edge_sess_push(s, ib->bufs[i]);
		ib->bufs[i] = NULL;
	}
}

/* Push a fresh ChannelList to a user's sessions. One refresh per user is
 * out at a time; a refresh wanted meanwhile runs after it, so an older
 * list never lands after a newer one. */
static void chanlist_refresh(edge *e, uint64_t user_id)
{
	edge_job *j;
	edge_set *us = edge_user_sessions(e, user_id);
	if (!us)
		return;
	if (us->list_inflight) {
		us->list_again = 1;
		return;
	}
	j = edge_job_new(e, JOB_CHANLIST);
	if (!j)
		return;
	j->user_id = user_id;
	if (edge_job_submit(e, j) == 0)
		us->list_inflight = 1;
}

/* A user's channels changed: a session still setting up holds a stale
 * snapshot and must load it again. */
static void membership_moved(edge *e, uint64_t user_id)
{
	edge_set *us = edge_user_sessions(e, user_id);
	for (size_t i = 0; us && i < us->n; i++)
		if (us->v[i]->setup_pending)
			us->v[i]->memb_changed = 1;
}

static void visit(edge *e, const edge_set *set, const edge_ev *ev,
                  size_t *n)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		edge_sess *s = set->v[i];
		if (s->mark == e->gen)
			continue;
		s->mark = e->gen;
		if (ev->skip_user && s->user_id == ev->skip_user)
			continue;
		if (edge_sess_push(s, chat_buf_hold(ev->buf)) == 0)
			(*n)++;
	}
}

static void deliver_one(edge *e, const edge_ev *ev)
{
	edge_set *us = NULL;
	size_t n = 0;

	if (ev->member >= 0)
		membership_moved(e, ev->member_user);
	if (ev->member == CHAT__MEMBER_EVENT__KIND__JOINED &&
	    (us = edge_user_sessions(e, ev->member_user)) != NULL) {
		for (size_t i = 0; i < us->n; i++)
			edge_sess_chan_add(us->v[i], ev->member_channel);
	}
	/* the sender hears "acknowledged" before its copy arrives */
	if (ev->msg_cmid && e->cfg.ack_after_store)
		edge_acks_stored(e, ev->channel_id, ev->msg_sender, ev->msg_cmid);
	e->gen++;
	if (ev->channel_id)
		visit(e, edge_chan_sessions(e, ev->channel_id), ev, &n);
	for (size_t i = 0; i < ev->nchans; i++)
		visit(e, edge_chan_sessions(e, ev->chans[i]), ev, &n);
	for (size_t i = 0; i < ev->nusers; i++)
		visit(e, edge_user_sessions(e, ev->users[i]), ev, &n);
	atomic_fetch_add(&e->n_delivered, n);
	if (ev->member == CHAT__MEMBER_EVENT__KIND__LEFT &&
	    (us = edge_user_sessions(e, ev->member_user)) != NULL) {
		for (size_t i = 0; i < us->n; i++)
			edge_sess_chan_del(us->v[i], ev->member_channel);
	}
	if (ev->member >= 0)
		chanlist_refresh(e, ev->member_user);
}

static void kick(edge *e, edge_ib *ib)
{
	edge_kick *k = ib->kick;
	edge_set *us = edge_user_sessions(e, k->user_id);
	uint32_t n = 0;

	for (size_t i = 0; us && i < us->n; i++) {
		if (us->v[i]->close_code && !us->v[i]->close_drain)
			continue;
		edge_sess_close(us->v[i], EDGE_CLOSE_KICKED, k->reason, 0);
		n++;
	}
	k->count = n;
	chat_info(EDGE_SVC, "kick", "user=%" PRIu64 " sessions=%u", k->user_id,
	          n);
}

/* ---- routing, presence and drain ---- */

void edge_routed(edge *e)
{
	size_t it = 0;
	uint64_t sid;
	void *v;

	while (chat_u64map_next(&e->route_wait, &it, &sid, &v)) {
		edge_sess *s = edge_sess_find(e, sid);
		if (!s || !s->resume || !s->resume->waiting_route) {
			chat_u64map_del(&e->route_wait, sid);
			if (s && s->resume)
				s->resume->waiting_route = 0;
			continue;
		}
		resume_next(s); /* goes on, or waits again */
	}
}

static void route_tick(lws_sorted_usec_list_t *sul)
{
	edge *e = CHAT_CONTAINER_OF(sul, edge, route_tick);
	e->route_tick_on = 0;
	edge_routed(e);
}

/* Look at the waiting resumes again soon (routes settling). */
static void route_tick_arm(edge *e)
{
	if (e->route_tick_on || e->cfg.route_settle_ms <= 0)
		return;
	e->route_tick_on = 1;
	lws_sul_schedule(e->ctx, 0, &e->route_tick, route_tick, 20000);
}

void edge_reannounce(edge *e)
{
	size_t it = 0, n = 0, max = (size_t)atomic_load(&e->nsessions);
	uint64_t sid;
	void *v;
	edge_job *j;

	if (!max || atomic_load(&e->stopping))
		return;
	j = edge_job_new(e, JOB_REANNOUNCE);
	if (!j || !(j->reann = chat_arena_alloc(j->arena,
	                                        max * sizeof *j->reann))) {
		edge_job_free(j);
		chat_error(EDGE_SVC, "reannounce_failed", "reason=oom");
		return;
	}
	while (chat_u64map_next(&e->sessions, &it, &sid, &v) && n < max) {
		edge_sess *s = v;
		/* SessionUp is idempotent: one still setting up may send
		 * its own too (its SessionUp may have gone before the loss) */
		if (s->close_code && !s->close_drain)
			continue;
		j->reann[n].sid = s->id;
		j->reann[n].user_id = s->user_id;
		chat_strlcpy(j->reann[n].user_name, s->user_name,
		             sizeof j->reann[n].user_name);
		n++;
	}
	j->nreann = n;
	chat_info(EDGE_SVC, "reannounce", "edge=%s sessions=%zu",
	          e->cfg.edge_id, n);
	if (!n)
		edge_job_free(j);
	else
		edge_job_submit(e, j);
}

/* Close the drain's share for the time elapsed. */
static void drain_step(edge *e)
{
	size_t want = e->drain_n;

	if (e->drain_rate > 0) {
		int64_t el = chat_mono_us() - e->drain_t0_us;
		uint64_t due =
		    (uint64_t)e->drain_rate * (uint64_t)el / 1000000u + 1;
		if (due < want)
			want = (size_t)due;
	}
	while (e->drain_i < want) {
		edge_sess *s = edge_sess_find(e, e->drain_sids[e->drain_i++]);
		if (s && !(s->close_code && !s->close_drain))
			edge_sess_close(s, EDGE_CLOSE_GOING_AWAY,
			                e->drain_reason, 0);
	}
}

static void drain_tick(lws_sorted_usec_list_t *sul)
{
	edge *e = CHAT_CONTAINER_OF(sul, edge, drain_tick);
	drain_step(e);
	if (e->drain_i < e->drain_n)
		lws_sul_schedule(e->ctx, 0, &e->drain_tick, drain_tick,
		                 EDGE_DRAIN_TICK_US);
}

void edge_drain_begin(edge *e, edge_kick *k)
{
	size_t it = 0, n = 0, cap = (size_t)atomic_load(&e->nsessions) + 1;
	uint64_t *sids = calloc(cap, sizeof *sids);
	uint64_t sid;
	void *v;

	if (!sids) {
		k->count = 0;
		return;
	}
	/* Only the sessions open now: a second drain takes what is left. */
	while (chat_u64map_next(&e->sessions, &it, &sid, &v) && n < cap) {
		edge_sess *s = v;
		if (s->close_code && !s->close_drain)
			continue;
		sids[n++] = sid;
	}
	free(e->drain_sids);
	e->drain_sids = sids;
	e->drain_n = n;
	e->drain_i = 0;
	e->drain_rate = k->per_second;
	e->drain_t0_us = chat_mono_us();
	chat_strlcpy(e->drain_reason, k->reason, sizeof e->drain_reason);
	k->count = (uint32_t)n;
	drain_step(e);
	if (e->drain_i < e->drain_n)
		lws_sul_schedule(e->ctx, 0, &e->drain_tick, drain_tick,
		                 EDGE_DRAIN_TICK_US);
}

static void handle(edge *e, edge_ib *ib)
{
	edge_sess *s;
	edge_set *us;

	switch (ib->op) {
	case IB_FRAMES:
		if ((s = edge_sess_find(e, ib->sid)) != NULL) {
			if (ib->ends_req)
				req_done(s);
			queue_frames(s, ib);
		}
		break;
	case IB_SETUP:
		setup_done(e, ib);
		break;
	case IB_SEND_DONE:
		if (!ib->ok && e->cfg.ack_after_store)
			edge_acks_drop(e, ib->sid, ib->channel_id, ib->user_id,
			               ib->cmid);
		if ((s = edge_sess_find(e, ib->sid)) != NULL)
			queue_frames(s, ib);
		break;
	case IB_CHAN_ADD:
	case IB_CHAN_DEL:
		/* Every local session of the user, before the reply, so that
		 * a send right after it is accepted. */
		membership_moved(e, ib->user_id);
		us = edge_user_sessions(e, ib->user_id);
		for (size_t i = 0; us && i < us->n; i++) {
			if (ib->op == IB_CHAN_ADD)
				edge_sess_chan_add(us->v[i], ib->channel_id);
			else
				edge_sess_chan_del(us->v[i], ib->channel_id);
		}
		if ((s = edge_sess_find(e, ib->sid)) != NULL) {
			if (ib->ends_req)
				req_done(s);
			queue_frames(s, ib);
		}
		break;
	case IB_USER_FRAMES:
		us = edge_user_sessions(e, ib->user_id);
		if (ib->chanlist && us) {
			us->list_inflight = 0;
			if (us->list_again) {
				/* a newer list is wanted: send that one only */
				us->list_again = 0;
				chanlist_refresh(e, ib->user_id);
				break;
			}
		}
		for (size_t i = 0; us && i < us->n; i++)
			for (size_t k = 0; k < ib->nbufs; k++)
				edge_sess_push(us->v[i],
				               chat_buf_hold(ib->bufs[k]));
		break;
	case IB_DELIVER:
		for (size_t i = 0; i < ib->nevs; i++)
			deliver_one(e, &ib->evs[i]);
		break;
	case IB_KICK:
		kick(e, ib);
		break;
	case IB_RESUME_PAGE:
		resume_page(e, ib);
		break;
	case IB_ROUTED:
		edge_routed(e);
		break;
	case IB_REANNOUNCE:
		edge_reannounce(e);
		break;
	case IB_DRAIN:
		edge_drain_begin(e, ib->kick);
		break;
	}
}

void edge_drain_inbox(edge *e)
{
	chat_qnode *n = chat_queue_take_all(&e->inbox);
	while (n) {
		chat_qnode *next = n->next;
		edge_ib *ib = CHAT_CONTAINER_OF(n, edge_ib, node);
		handle(e, ib);
		edge_ib_free(ib);
		n = next;
	}
}

/* ---- keepalive ---- */

/* Ping a session idle (nothing received) for ping_secs, hang up on one
 * idle for twice that plus 10 s. Done here, once a second over every
 * session, rather than by libwebsockets' retry_and_idle_policy: lws 4.1
 * re-arms that policy's per-connection timer in one sorted list on every
 * write, a walk over all the connections each time, which took half of
 * the edge's CPU for a broadcast to 10,000 sessions (docs/BENCHMARKS.md
 * 5.7). */
static void edge_keepalive(edge *e)
{
	int64_t now = chat_mono_ms();
	int64_t ping = (int64_t)e->cfg.ping_secs * 1000;
	int64_t hangup = 2 * ping + 10000;
	size_t it = 0;
	uint64_t id;
	void *v;

	while (chat_u64map_next(&e->sessions, &it, &id, &v)) {
		edge_sess *s = v;
		int64_t idle = now - s->rx_ms;
		if (s->close_code || !s->wsi)
			continue;
		if (idle > hangup) {
			chat_info(EDGE_SVC, "session_timeout",
			          "session=%" PRIu64 " user=%" PRIu64
			          " idle_ms=%" PRId64,
			          s->id, s->user_id, idle);
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK,
			                LWS_TO_KILL_ASYNC);
		} else if (idle > ping && now - s->ping_ms > ping) {
			s->ping_ms = now;
			s->ping_due = 1;
			lws_callback_on_writable(s->wsi);
		}
	}
}

/* ---- the protocol callback ---- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
	struct pss *p = user;
	edge *e = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		edge_drain_inbox(e);
		return 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return filter(e, wsi);
	case LWS_CALLBACK_ESTABLISHED:
		return established(e, wsi, p);
	case LWS_CALLBACK_RECEIVE:
		return receive(e, wsi, p ? p->s : NULL, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return writeable(wsi, p ? p->s : NULL);
	case LWS_CALLBACK_RECEIVE_PONG:
		if (p && p->s)
			p->s->rx_ms = chat_mono_ms();
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (p && p->s) {
			edge_sess_free(p->s);
			p->s = NULL;
		}
		return 0;
	case LWS_CALLBACK_HTTP:
		return http_request(wsi, p, in ? (const char *)in : "");
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writeable(wsi, p);
	default:
		/* Never LWS_CALLBACK_HTTP_CONFIRM_UPGRADE (CVE-2025-11677). */
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{"chat", callback, sizeof(struct pss), 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line)
{
	char msg[512];
	size_t n = chat_strlcpy(msg, line, sizeof msg);
	if (n >= sizeof msg)
		n = sizeof msg - 1;
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	for (char *c = msg; *c; c++)
		if (*c == '"')
			*c = '\'';
	if (level & LLL_ERR)
		chat_warn(EDGE_SVC, "lws", "msg=\"%s\"", msg);
	else
		chat_debug(EDGE_SVC, "lws", "msg=\"%s\"", msg);
}

static void tick(lws_sorted_usec_list_t *sul);

int edge_ws_start(edge *e, char *err, size_t errlen)
{
	struct lws_context_creation_info info;
	void *foreign[1];

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
	memset(&info, 0, sizeof info);
	info.port = e->cfg.port;
	info.iface = e->cfg.host;
	info.protocols = protocols;
	info.user = e;
	info.count_threads = 1;
	info.max_http_header_data = TOKEN_MAX + 1024;
	/* no retry_and_idle_policy: edge_keepalive pings and hangs up */
	info.vhost_name = "edge";
	/* epoll through the libev plugin: the default poll() walks every
	 * socket on every wake (docs/BENCHMARKS.md). The loop is ours
	 * ("foreign" to lws): lws then installs no signal watcher (libev
	 * allows a signal on one loop only, and a process may hold several
	 * contexts), and we run it one pass at a time below. */
	e->evloop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!e->evloop) {
		snprintf(err, errlen, "cannot create an event loop");
		return -1;
	}
	foreign[0] = e->evloop;
	info.foreign_loops = foreign;
	info.options |= LWS_SERVER_OPTION_LIBEV;
	if (!strchr(e->cfg.host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	e->ctx = lws_create_context(&info);
	if (!e->ctx) {
		snprintf(err, errlen, "cannot listen on %s:%d", e->cfg.host,
		         e->cfg.port);
		ev_loop_destroy(e->evloop);
		e->evloop = NULL;
		return -1;
	}
	e->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(e->ctx,
	                                                          "edge"));
	/* A 1 s tick on the service thread (before it runs, so no race). */
	lws_sul_schedule(e->ctx, 0, &e->tick, tick, EDGE_TICK_US);
	/* Items posted before the service thread runs wake it later. */
	pthread_mutex_lock(&e->wake_mu);
	e->ctx_live = 1;
	pthread_mutex_unlock(&e->wake_mu);
	return 0;
}

static void shutdown_check(edge *e)
{
	size_t it = 0;
	uint64_t k;
	void *v;

	if (!atomic_load(&e->stopping) || e->shutdown_begun)
		return;
	e->shutdown_begun = 1;
	e->shutdown_deadline_us = chat_mono_us() +
	                          EDGE_SHUTDOWN_GRACE_MS * 1000;
	while (chat_u64map_next(&e->sessions, &it, &k, &v))
		edge_sess_close(v, EDGE_CLOSE_GOING_AWAY,
		                "server shutting down", 0);
}

/* Periodic work on the service thread: sends waiting too long for the
 * store are answered. */
static void tick(lws_sorted_usec_list_t *sul)
{
	edge *e = CHAT_CONTAINER_OF(sul, edge, tick);
	edge_acks_sweep(e);
	edge_keepalive(e);
	lws_sul_schedule(e->ctx, 0, &e->tick, tick, EDGE_TICK_US);
}

void *edge_ws_main(void *arg)
{
	edge *e = arg;

	for (;;) {
		/* one pass: wait for events (sockets, timers, wakes) and
		 * handle them */
		ev_run(e->evloop, EVRUN_ONCE);
		edge_drain_inbox(e);
		shutdown_check(e);
		if (e->shutdown_begun &&
		    (atomic_load(&e->nsessions) == 0 ||
		     chat_mono_us() > e->shutdown_deadline_us))
			break;
	}
	lws_sul_schedule(e->ctx, 0, &e->tick, tick, LWS_SET_TIMER_USEC_CANCEL);
	lws_sul_schedule(e->ctx, 0, &e->drain_tick, drain_tick,
	                 LWS_SET_TIMER_USEC_CANCEL);
	lws_sul_schedule(e->ctx, 0, &e->route_tick, route_tick,
	                 LWS_SET_TIMER_USEC_CANCEL);
	pthread_mutex_lock(&e->wake_mu);
	e->ctx_live = 0;
	pthread_mutex_unlock(&e->wake_mu);
	/* Runs the close path of any session left. */
	lws_context_destroy(e->ctx);
	e->ctx = NULL;
	ev_loop_destroy(e->evloop);
	e->evloop = NULL;
	edge_drain_inbox(e);
	atomic_store(&e->svc_done, 1);
	return NULL;
}
