/* chat.Edge: Deliver encodes each event once and hands it to the service
 * thread; Kick closes a user's sessions and waits for the count. Runs on
 * the RPC server's handler threads. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_util.h"
#include "edge.pb-c.h"
#include "edge_int.h"
#include "rpc.pb-c.h"

static uint64_t *copy_ids(chat_arena *a, const uint64_t *ids, size_t n)
{
	uint64_t *v;
	if (!n)
		return NULL;
	v = chat_arena_alloc(a, n * sizeof *v);
	if (v)
		memcpy(v, ids, n * sizeof *v);
	return v;
}

/* The ServerFrame push for one event; 0, or -1 for an unknown kind. */
static int event_frame(const Chat__Event *ev, Chat__ServerFrame *f,
                       uint8_t *kind)
{
	*kind = EDGE_BUF_NORMAL;
	switch (ev->kind_case) {
	case CHAT__EVENT__KIND_MESSAGE:
		f->kind_case = CHAT__SERVER_FRAME__KIND_MESSAGE;
		f->message = ev->message;
		return 0;
	case CHAT__EVENT__KIND_MEMBER:
		f->kind_case = CHAT__SERVER_FRAME__KIND_MEMBER;
		f->member = ev->member;
		return 0;
	case CHAT__EVENT__KIND_READ:
		f->kind_case = CHAT__SERVER_FRAME__KIND_READ_RECEIPT;
		f->read_receipt = ev->read;
		return 0;
	case CHAT__EVENT__KIND_PRESENCE:
		f->kind_case = CHAT__SERVER_FRAME__KIND_PRESENCE;
		f->presence = ev->presence;
		return 0;
	case CHAT__EVENT__KIND_TYPING:
		f->kind_case = CHAT__SERVER_FRAME__KIND_TYPING;
		f->typing = ev->typing;
		*kind = EDGE_BUF_TYPING;
		return 0;
	default:
		return -1;
	}
}

static int deliver(void *arg, chat_rpc_call *call)
{
	edge *e = arg;
	const Chat__EventBatch *batch = (const Chat__EventBatch *)call->in;
	edge_ib *ib;

	if (!batch->n_events)
		return CHAT_OK;
	ib = edge_ib_new(IB_DELIVER);
	if (!ib || !(ib->arena = chat_arena_new()) ||
	    !(ib->evs = chat_arena_alloc(ib->arena,
	                                 batch->n_events * sizeof *ib->evs)))
		goto oom;
	for (size_t i = 0; i < batch->n_events; i++) {
		const Chat__Event *ev = batch->events[i];
		Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
		edge_ev *out = &ib->evs[ib->nevs];
		uint8_t kind;

		if (!ev || event_frame(ev, &f, &kind) != 0 || !f.message)
			continue; /* unknown or empty: nothing to push */
		out->member = -1;
		if (ev->kind_case == CHAT__EVENT__KIND_MEMBER) {
			out->member = (int)ev->member->kind;
			out->member_user = ev->member->user_id;
			out->member_channel = ev->member->channel_id;
			if (out->member != CHAT__MEMBER_EVENT__KIND__JOINED &&
			    out->member != CHAT__MEMBER_EVENT__KIND__LEFT)
				out->member = -1;
		}
		if (ev->kind_case == CHAT__EVENT__KIND_MESSAGE &&
		    ev->message->client_msg_id) {
			out->msg_sender = ev->message->sender_id;
			out->msg_cmid = chat_arena_strdup(
			    ib->arena, ev->message->client_msg_id);
		}
		out->channel_id = ev->channel_id;
		out->skip_user = ev->skip_user_id;
		out->chans = copy_ids(ib->arena, ev->channel_ids,
		                      ev->n_channel_ids);
		out->nchans = out->chans ? ev->n_channel_ids : 0;
		out->users = copy_ids(ib->arena, ev->user_ids, ev->n_user_ids);
		out->nusers = out->users ? ev->n_user_ids : 0;
		out->buf = edge_pack(&f, kind);
		if (!out->buf)
			goto oom;
		ib->nevs++;
	}
	edge_post(e, ib);
	return CHAT_OK;
oom:
	edge_ib_free(ib);
	return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED, "out of memory");
}

/* A close reason must be valid UTF-8 and fit a close frame. */
static void close_reason(char *dst, size_t dstlen, const char *src,
                         const char *def)
{
	size_t n;
	if (!src || !*src)
		src = def;
	n = strlen(src);
	if (n > dstlen - 1)
		n = dstlen - 1;
	while (n && !chat_utf8_valid_text(src, n))
		n--;
	if (!n) {
		chat_strlcpy(dst, def, dstlen);
		return;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int kick(void *arg, chat_rpc_call *call)
{
	edge *e = arg;
	const Chat__KickReq *req = (const Chat__KickReq *)call->in;
	Chat__KickReply *rep = (Chat__KickReply *)call->out;
	edge_kick k;
	edge_ib *ib;

	if (!req->user_id)
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "user_id is required");
	memset(&k, 0, sizeof k);
	k.user_id = req->user_id;
	close_reason(k.reason, sizeof k.reason, req->reason,
	             "disconnected by an administrator");
	ib = edge_ib_new(IB_KICK);
	if (!ib)
		return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
		                     "out of memory");
	pthread_mutex_init(&k.mu, NULL);
	pthread_cond_init(&k.cv, NULL);
	ib->kick = &k;
	/* The service thread, or the inbox's disposal at stop, always
	 * completes the item: waiting without a deadline is safe. */
	edge_post(e, ib);
	pthread_mutex_lock(&k.mu);
	while (!k.done)
		pthread_cond_wait(&k.cv, &k.mu);
	pthread_mutex_unlock(&k.mu);
	pthread_mutex_destroy(&k.mu);
	pthread_cond_destroy(&k.cv);
	rep->sessions = k.count;
	return CHAT_OK;
}

/* Stop taking sessions, leave ZooKeeper, close the open ones (paced). */
static int drain(void *arg, chat_rpc_call *call)
{
	edge *e = arg;
	const Chat__DrainReq *req = (const Chat__DrainReq *)call->in;
	Chat__DrainReply *rep = (Chat__DrainReply *)call->out;
	char reason[EDGE_CLOSE_REASON_MAX + 1];
	int n;

	close_reason(reason, sizeof reason, req->reason, "server draining");
	n = edge_drain(e, req->per_second > 1000000 ? 1000000
	                                            : (int)req->per_second,
	               reason);
	if (n < 0)
		return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
		                     "out of memory");
	rep->sessions = (uint32_t)n;
	return CHAT_OK;
}

static const chat_rpc_fn edge_fns[] = {deliver, kick, drain};

static void health(void *arg, chat_arena *a, size_t *n, void ***counters)
{
	edge *e = arg;
	struct {
		const char *name;
		int64_t v;
	} c[] = {
	    {"sessions", atomic_load(&e->nsessions)},
	    {"draining", atomic_load(&e->draining)},
	    {"routes_applied", (int64_t)atomic_load(&e->rt.applied)},
	    {"sends", (int64_t)atomic_load(&e->n_sent)},
	    {"acks", (int64_t)atomic_load(&e->n_acked)},
	    {"delivered", (int64_t)atomic_load(&e->n_delivered)},
	    {"slow_consumers", (int64_t)atomic_load(&e->n_overflow)},
	};
	size_t k = sizeof c / sizeof c[0];
	void **v = chat_arena_ptrs(a, k);

	*n = 0;
	if (!v)
		return;
	for (size_t i = 0; i < k; i++) {
		Chat__Counter *ct = (Chat__Counter *)chat_arena_msg(
		    a, &chat__counter__descriptor);
		if (!ct)
			return;
		ct->name = (char *)c[i].name;
		ct->value = c[i].v;
		v[i] = ct;
		*n = i + 1;
	}
	*counters = v;
}

int edge_rpc_start(edge *e, char *err, size_t errlen)
{
	_Static_assert(sizeof edge_fns / sizeof edge_fns[0] == 3,
	               "chat.Edge has three methods");
	int port = 0;
	e->rpc = chat_rpc_server_new("edge", e->cfg.edge_id,
	                             e->cfg.rpc_threads);
	if (!e->rpc) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (chat_rpc_server_add(e->rpc, &chat__edge__descriptor,
	                        CHAT_RPC_TABLE(edge_fns), e) ||
	    chat_rpc_server_listen(e->rpc, e->cfg.rpc_url, &port, err,
	                           errlen))
		return -1;
	edge_set_rpc_port(e, port);
	chat_rpc_server_set_health(e->rpc, health, e);
	if (chat_rpc_server_start(e->rpc) != 0) {
		snprintf(err, errlen, "cannot start the chat.Edge threads");
		return -1;
	}
	return 0;
}
