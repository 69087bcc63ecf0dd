/* Acknowledge after store. With a log that is not durable (chatd's
 * in-memory mock cluster), the log accepting a send is no promise: a crash
 * loses what the store had not taken yet. There the edge answers SendAck
 * only when the stored copy of the message comes back through the
 * fan-out; the store re-emits the stored copy of a retried duplicate, so a
 * retry is answered too. Service thread only.
 *
 * Waiters are keyed by a hash of (channel, sender, client_msg_id); a
 * bucket holds a short list, compared field by field. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_util.h"
#include "edge_int.h"

typedef struct ackw {
	struct ackw *next;
	uint64_t sid, req_id, channel, user;
	int64_t deadline_us;
	char cmid[EDGE_MAX_CMID + 1];
} ackw;

static uint64_t key_of(uint64_t channel, uint64_t user, const char *cmid)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	const unsigned char *p = (const unsigned char *)cmid;
	for (int i = 0; i < 8; i++) {
		h = (h ^ ((channel >> (8 * i)) & 0xff)) * 1099511628211ULL;
		h = (h ^ ((user >> (8 * i)) & 0xff)) * 1099511628211ULL;
	}
	while (*p)
		h = (h ^ *p++) * 1099511628211ULL;
	/* 0 and UINT64_MAX are not valid map keys */
	return h == 0 || h == UINT64_MAX ? 1 : h;
}

static int same(const ackw *w, uint64_t channel, uint64_t user,
                const char *cmid)
{
	return w->channel == channel && w->user == user &&
	       strcmp(w->cmid, cmid) == 0;
}

static void answer(edge *e, const ackw *w, chat_buf *b)
{
	edge_sess *s = edge_sess_find(e, w->sid);
	if (s)
		edge_sess_push(s, b);
	else
		chat_buf_rele(b);
}

void edge_acks_add(edge *e, uint64_t sid, uint64_t req_id, uint64_t channel,
                   uint64_t user, const char *cmid)
{
	uint64_t k = key_of(channel, user, cmid);
	ackw *w = calloc(1, sizeof *w);
	if (!w)
		return; /* the client times out and retries with the same id */
	w->sid = sid;
	w->req_id = req_id;
	w->channel = channel;
	w->user = user;
	w->deadline_us = chat_mono_us() + (int64_t)e->cfg.ack_timeout_ms * 1000;
	chat_strlcpy(w->cmid, cmid, sizeof w->cmid);
	w->next = chat_u64map_get(&e->acks, k);
	if (chat_u64map_put(&e->acks, k, w) != 0) {
		free(w);
		return;
	}
	e->nacks++;
}

/* Unlink the waiters matching pred from bucket k; call fn on each. */
static void take(edge *e, uint64_t k, uint64_t channel, uint64_t user,
                 const char *cmid, uint64_t only_sid,
                 void (*fn)(edge *, ackw *))
{
	ackw *head = chat_u64map_get(&e->acks, k), **pp = &head;
	while (*pp) {
		ackw *w = *pp;
		if (same(w, channel, user, cmid) &&
		    (!only_sid || w->sid == only_sid)) {
			*pp = w->next;
			e->nacks--;
			if (fn)
				fn(e, w);
			free(w);
		} else {
			pp = &w->next;
		}
	}
	if (head)
		chat_u64map_put(&e->acks, k, head);
	else
		chat_u64map_del(&e->acks, k);
}

void edge_acks_drop(edge *e, uint64_t sid, uint64_t channel, uint64_t user,
                    const char *cmid)
{
	take(e, key_of(channel, user, cmid), channel, user, cmid, sid, NULL);
}

static void ack_one(edge *e, ackw *w)
{
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__SendAck ack = CHAT__SEND_ACK__INIT;
	ack.channel_id = w->channel;
	ack.client_msg_id = w->cmid;
	f.req_id = w->req_id;
	f.kind_case = CHAT__SERVER_FRAME__KIND_SEND_ACK;
	f.send_ack = &ack;
	atomic_fetch_add(&e->n_acked, 1);
	answer(e, w, edge_pack(&f, EDGE_BUF_NORMAL));
}

void edge_acks_stored(edge *e, uint64_t channel, uint64_t user,
                      const char *cmid)
{
	if (e->nacks)
		take(e, key_of(channel, user, cmid), channel, user, cmid, 0,
		     ack_one);
}

static void expire_one(edge *e, ackw *w)
{
	chat_warn(EDGE_SVC, "ack_timeout", "sid=%" PRIu64 " channel=%" PRIu64,
	          w->sid, w->channel);
	answer(e, w,
	       edge_pack_error(w->req_id, CHAT_UNAVAILABLE,
	                       "message not confirmed stored in time; retry "
	                       "with the same client_msg_id",
	                       w->channel, w->cmid));
}

void edge_acks_sweep(edge *e)
{
	int64_t now = chat_mono_us();
	size_t it = 0;
	uint64_t k;
	void *v;

	if (!e->nacks)
		return;
	while (chat_u64map_next(&e->acks, &it, &k, &v)) {
		ackw *head = v, **pp = &head;
		while (*pp) {
			ackw *w = *pp;
			if (w->deadline_us <= now) {
				*pp = w->next;
				e->nacks--;
				expire_one(e, w);
				free(w);
			} else {
				pp = &w->next;
			}
		}
		if (head)
			chat_u64map_put(&e->acks, k, head);
		else
			chat_u64map_del(&e->acks, k);
	}
}

void edge_acks_fini(edge *e)
{
	size_t it = 0;
	void *v;
	while (chat_u64map_next(&e->acks, &it, NULL, &v)) {
		ackw *w = v;
		while (w) {
			ackw *n = w->next;
			free(w);
			w = n;
		}
	}
	chat_u64map_fini(&e->acks);
	e->nacks = 0;
}
