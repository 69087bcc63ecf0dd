/* Sessions: outbound queues, subscriptions and the close path. Everything
 * here runs on the lws service thread. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_util.h"
#include "edge_int.h"

/* ---- sets of sessions ---- */

static int set_add(chat_u64map *m, uint64_t key, edge_sess *s, int *first)
{
	edge_set *set = chat_u64map_get(m, key);
	*first = 0;
	if (!set) {
		set = calloc(1, sizeof *set);
		if (!set || chat_u64map_put(m, key, set) != 0) {
			free(set);
			return -1;
		}
		*first = 1;
	}
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i] == s)
			return 0;
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 4;
		edge_sess **v = realloc(set->v, cap * sizeof *v);
		if (!v) {
			if (set->n == 0) {
				chat_u64map_del(m, key);
				free(set);
				*first = 0;
			}
			return -1;
		}
		set->v = v;
		set->cap = cap;
	}
	set->v[set->n++] = s;
	return 0;
}

/* Returns 1 when the set became empty (and was freed). */
static int set_del(chat_u64map *m, uint64_t key, edge_sess *s)
{
	edge_set *set = chat_u64map_get(m, key);
	if (!set)
		return 0;
	for (size_t i = 0; i < set->n; i++) {
		if (set->v[i] == s) {
			set->v[i] = set->v[--set->n];
			break;
		}
	}
	if (set->n)
		return 0;
	chat_u64map_del(m, key);
	free(set->v);
	free(set);
	return 1;
}

edge_set *edge_user_sessions(edge *e, uint64_t user_id)
{
	return chat_u64map_get(&e->user_sess, user_id);
}

edge_set *edge_chan_sessions(edge *e, uint64_t channel_id)
{
	return chat_u64map_get(&e->chan_subs, channel_id);
}

/* ---- lifecycle ---- */

edge_sess *edge_sess_new(edge *e, struct lws *wsi, const chat_claims *c)
{
	edge_sess *s = calloc(1, sizeof *s);
	int first;

	if (!s)
		return NULL;
	s->e = e;
	s->wsi = wsi;
	s->id = ++e->next_sid;
	if (s->id == 0 || s->id == UINT64_MAX)
		s->id = e->next_sid = 1;
	s->user_id = c->user_id;
	chat_strlcpy(s->user_name, c->name, sizeof s->user_name);
	chat_u64map_init(&s->chans);
	edge_bucket_init(&s->bucket, e->cfg.send_burst, chat_mono_us());
	s->rx_ms = chat_mono_ms();
	if (chat_u64map_put(&e->sessions, s->id, s) != 0)
		goto fail;
	if (set_add(&e->user_sess, s->user_id, s, &first) != 0) {
		chat_u64map_del(&e->sessions, s->id);
		goto fail;
	}
	if (first)
		edge_route(e, 1, s->user_id, 1);
	pthread_mutex_lock(&e->live_mu);
	chat_u64map_put(&e->live, s->id, s); /* never dereferenced */
	pthread_mutex_unlock(&e->live_mu);
	atomic_fetch_add(&e->nsessions, 1);
	return s;
fail:
	chat_u64map_fini(&s->chans);
	free(s);
	return NULL;
}

edge_sess *edge_sess_find(edge *e, uint64_t sid)
{
	return sid ? chat_u64map_get(&e->sessions, sid) : NULL;
}

static void queue_clear(edge_sess *s)
{
	while (s->qlen) {
		chat_buf_rele(s->q[s->qhead]);
		s->qhead = (s->qhead + 1) % s->qcap;
		s->qlen--;
	}
	free(s->q);
	s->q = NULL;
	s->qcap = s->qhead = s->qbytes = 0;
}

void edge_sess_free(edge_sess *s)
{
	edge *e;
	size_t it = 0;
	uint64_t ch;
	void *v;

	if (!s)
		return;
	e = s->e;
	while (chat_u64map_next(&s->chans, &it, &ch, &v))
		if (set_del(&e->chan_subs, ch, s))
			edge_route(e, 0, ch, 0);
	chat_u64map_fini(&s->chans);
	if (set_del(&e->user_sess, s->user_id, s))
		edge_route(e, 1, s->user_id, 0);
	chat_u64map_del(&e->sessions, s->id);
	chat_u64map_del(&e->route_wait, s->id);
	/* Out of the live set before SessionDown is queued: a re-announce
	 * no longer sends SessionUp for it (see pres_lock). */
	pthread_mutex_lock(&e->live_mu);
	chat_u64map_del(&e->live, s->id);
	pthread_mutex_unlock(&e->live_mu);
	/* While the setup job is out, the job's answer sends SessionDown, so
	 * that it cannot overtake the SessionUp. */
	if (!s->setup_pending) {
		edge_job *j = edge_job_new(e, JOB_SESSION_DOWN);
		if (j) {
			j->sid = s->id;
			j->user_id = s->user_id;
			chat_strlcpy(j->user_name, s->user_name,
			             sizeof j->user_name);
			edge_job_submit(e, j);
		}
	}
	chat_debug(EDGE_SVC, "session_closed", "sid=%" PRIu64 " user=%" PRIu64
	           " code=%d", s->id, s->user_id, s->close_code);
	queue_clear(s);
	free(s->rx);
	edge_resume_free(s->resume);
	atomic_fetch_sub(&e->nsessions, 1);
	free(s);
}

void edge_sess_close(edge_sess *s, int code, const char *reason, int drain)
{
	if (s->close_code && !s->close_drain)
		return; /* already closing at once */
	s->close_code = code;
	s->close_drain = drain;
	chat_strlcpy(s->close_reason, reason ? reason : "",
	             sizeof s->close_reason);
	if (!drain) {
		queue_clear(s);
		edge_resume_free(s->resume);
		s->resume = NULL;
	}
	/* A peer that never reads never gets WRITEABLE: drop it anyway. */
	lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, EDGE_CLOSE_TIMEOUT_S);
	lws_callback_on_writable(s->wsi);
	chat_debug(EDGE_SVC, "session_closing", "sid=%" PRIu64 " code=%d "
	           "reason=\"%s\"", s->id, code, s->close_reason);
}

/* ---- the outbound queue ---- */

static int queue_grow(edge_sess *s, size_t need)
{
	size_t cap = s->qcap ? s->qcap : 8;
	chat_buf **q;
	while (cap < need)
		cap *= 2;
	if (cap == s->qcap)
		return 0;
	q = malloc(cap * sizeof *q);
	if (!q)
		return -1;
	for (size_t i = 0; i < s->qlen; i++)
		q[i] = s->q[(s->qhead + i) % s->qcap];
	free(s->q);
	s->q = q;
	s->qcap = cap;
	s->qhead = 0;
	return 0;
}

/* Whether n more frames of bytes would overflow; closes if so. */
static int overflows(edge_sess *s, size_t n, size_t bytes)
{
	edge *e = s->e;
	if (s->qlen + n <= (size_t)e->cfg.max_queue_frames &&
	    s->qbytes + bytes <= (size_t)e->cfg.max_queue_bytes)
		return 0;
	atomic_fetch_add(&e->n_overflow, 1);
	chat_info(EDGE_SVC, "slow_consumer", "sid=%" PRIu64 " user=%" PRIu64
	          " frames=%zu bytes=%zu", s->id, s->user_id, s->qlen,
	          s->qbytes);
	edge_sess_close(s, EDGE_CLOSE_SLOW,
	                "slow consumer: outbound queue overflow", 0);
	return 1;
}

int edge_sess_push(edge_sess *s, chat_buf *b)
{
	edge *e = s->e;
	if (!b)
		return -1;
	if (s->close_code) {
		chat_buf_rele(b);
		return -1;
	}
	if (b->kind == EDGE_BUF_TYPING &&
	    (s->qlen * 2 > (size_t)e->cfg.max_queue_frames ||
	     s->qbytes * 2 > (size_t)e->cfg.max_queue_bytes)) {
		chat_buf_rele(b);
		return -1;
	}
	if (overflows(s, 1, b->len) || queue_grow(s, s->qlen + 1) != 0) {
		if (!s->close_code)
			edge_sess_close(s, EDGE_CLOSE_INTERNAL, "out of memory",
			                0);
		chat_buf_rele(b);
		return -1;
	}
	s->q[(s->qhead + s->qlen) % s->qcap] = b;
	s->qlen++;
	s->qbytes += b->len;
	if (s->ready)
		lws_callback_on_writable(s->wsi);
	return 0;
}

int edge_sess_push_front(edge_sess *s, chat_buf **bufs, size_t n)
{
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += bufs[i]->len;
	if (s->close_code || overflows(s, n, bytes) ||
	    queue_grow(s, s->qlen + n) != 0) {
		for (size_t i = 0; i < n; i++)
			chat_buf_rele(bufs[i]);
		return -1;
	}
	for (size_t i = n; i-- > 0;) {
		s->qhead = (s->qhead + s->qcap - 1) % s->qcap;
		s->q[s->qhead] = bufs[i];
		s->qlen++;
		s->qbytes += bufs[i]->len;
	}
	if (s->ready)
		lws_callback_on_writable(s->wsi);
	return 0;
}

chat_buf *edge_sess_pop(edge_sess *s)
{
	chat_buf *b;
	if (!s->qlen)
		return NULL;
	b = s->q[s->qhead];
	s->qhead = (s->qhead + 1) % s->qcap;
	s->qlen--;
	s->qbytes -= b->len;
	return b;
}

/* ---- subscriptions ---- */

void edge_sess_chan_add(edge_sess *s, uint64_t channel_id)
{
	edge *e = s->e;
	int first;
	if (!channel_id || channel_id == UINT64_MAX ||
	    chat_u64map_get(&s->chans, channel_id))
		return;
	if (chat_u64map_put(&s->chans, channel_id, (void *)1) != 0)
		return;
	if (set_add(&e->chan_subs, channel_id, s, &first) != 0) {
		chat_u64map_del(&s->chans, channel_id);
		return;
	}
	if (first)
		s->route_seq = edge_route(e, 0, channel_id, 1);
	else if (s->route_seq < e->rt.queued)
		s->route_seq = e->rt.queued; /* the add is out already */
	s->route_ready_us = 0;
}

void edge_sess_chan_del(edge_sess *s, uint64_t channel_id)
{
	edge *e = s->e;
	if (!chat_u64map_del(&s->chans, channel_id))
		return;
	if (set_del(&e->chan_subs, channel_id, s))
		edge_route(e, 0, channel_id, 0);
}
