/* Worker jobs: the blocking RPCs to the store, presence and dispatcher.
 * A job never touches a session: it encodes its answer and posts it to
 * the inbox under the session's id. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_util.h"
#include "dispatcher.pb-c.h"
#include "edge_int.h"
#include "presence.pb-c.h"
#include "store.pb-c.h"

#define STOP_RPC_TIMEOUT_MS 300

typedef struct reply {
	char reason[256];
} reply;

static void job_run(chat_job *cj);

edge_job *edge_job_new(edge *e, int op)
{
	edge_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->arena = chat_arena_new();
	if (!j->arena) {
		free(j);
		return NULL;
	}
	j->e = e;
	j->op = op;
	j->job.run = job_run;
	return j;
}

void edge_job_free(edge_job *j)
{
	if (!j)
		return;
	chat_arena_free(j->arena);
	free(j);
}

int edge_job_submit(edge *e, edge_job *j)
{
	if (chat_workers_submit(e->workers, &j->job) != 0) {
		edge_job_free(j);
		return -1;
	}
	return 0;
}

static int call(edge *e, chat_rpc_client *c,
                const ProtobufCServiceDescriptor *d, const char *method,
                const ProtobufCMessage *in, chat_arena *a,
                ProtobufCMessage **out, reply *r)
{
	if (!c) {
		snprintf(r->reason, sizeof r->reason, "%s is not configured",
		         d->name);
		return CHAT_UNAVAILABLE;
	}
	int st = chat_rpc_invoke(c, d, method, in, a, out,
	                         e->cfg.rpc_timeout_ms, r->reason,
	                         sizeof r->reason);
	if (st != CHAT_OK && !r->reason[0])
		snprintf(r->reason, sizeof r->reason, "%s", chat_strerror(st));
	return st;
}

#define STORE(j, m, in, out, r)                                                \
	call((j)->e, (j)->e->store, &chat__store__descriptor, m, &(in).base,   \
	     (j)->arena, (ProtobufCMessage **)(out), r)
#define PRESENCE(j, m, in, out, r)                                             \
	call((j)->e, (j)->e->presence, &chat__presence__descriptor, m,         \
	     &(in).base, (j)->arena, (ProtobufCMessage **)(out), r)

/* Fill dm_peer_status of the DM channels from presence. Best effort: a
 * presence failure leaves them OFFLINE. */
static void fill_dm_status(edge_job *j, Chat__ChannelInfo **chs, size_t n)
{
	Chat__PresenceQuery q = CHAT__PRESENCE_QUERY__INIT;
	Chat__PresenceList *pl = NULL;
	chat_u64map st;
	reply r;
	size_t k = 0;

	if (!n)
		return;
	q.user_ids = chat_arena_alloc(j->arena, n * sizeof *q.user_ids);
	if (!q.user_ids)
		return;
	for (size_t i = 0; i < n; i++)
		if (chs[i] && chs[i]->kind == CHAT__CHANNEL_KIND__KIND_DM &&
		    chs[i]->dm_peer_id)
			q.user_ids[k++] = chs[i]->dm_peer_id;
	if (!k)
		return;
	q.n_user_ids = k;
	if (PRESENCE(j, "Query", q, &pl, &r) != CHAT_OK) {
		chat_debug(EDGE_SVC, "presence_query_failed", "reason=\"%s\"",
		           r.reason);
		return;
	}
	chat_u64map_init(&st);
	for (size_t i = 0; i < pl->n_users; i++)
		if (pl->users[i] && pl->users[i]->user_id)
			chat_u64map_put(&st, pl->users[i]->user_id,
			                pl->users[i]);
	for (size_t i = 0; i < n; i++) {
		Chat__PresenceUpdate *u;
		if (!chs[i] || chs[i]->kind != CHAT__CHANNEL_KIND__KIND_DM)
			continue;
		u = chat_u64map_get(&st, chs[i]->dm_peer_id);
		if (u)
			chs[i]->dm_peer_status = u->status;
	}
	chat_u64map_fini(&st);
}

static void post_buf(edge *e, edge_ib *ib, chat_buf *b)
{
	if (!ib) {
		chat_buf_rele(b);
		return;
	}
	edge_ib_set_buf(ib, b);
	edge_post(e, ib);
}

/* ---- session setup ---- */

static void job_setup(edge_job *j)
{
	edge *e = j->e;
	Chat__UserReq ur = CHAT__USER_REQ__INIT;
	Chat__SessionReq sr = CHAT__SESSION_REQ__INIT;
	Chat__ChannelList *cl = NULL;
	Chat__PresenceUpdate *pu = NULL;
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__Welcome w = CHAT__WELCOME__INIT;
	edge_ib *ib = edge_ib_new(IB_SETUP);
	reply r;
	int st;

	if (!ib)
		return; /* the session waits for its close timeout */
	ib->sid = j->sid;
	ib->user_id = j->user_id;
	chat_strlcpy(ib->user_name, j->user_name, sizeof ib->user_name);
	ur.user_id = j->user_id;
	st = STORE(j, "ListChannels", ur, &cl, &r);
	if (st != CHAT_OK) {
		char why[320];
		chat_warn(EDGE_SVC, "setup_failed",
		          "sid=%" PRIu64 " user=%" PRIu64
		          " code=%s reason=\"%s\"",
		          j->sid, j->user_id, chat_strerror(st), r.reason);
		snprintf(why, sizeof why, "cannot load your channels: %s",
		         r.reason);
		ib->status = st;
		post_buf(e, ib, edge_pack_error(0, st, why, 0, NULL));
		return;
	}
	sr.user_id = j->user_id;
	sr.user_name = j->user_name;
	sr.session_id = j->sid;
	sr.edge_id = (char *)e->cfg.edge_id;
	if (PRESENCE(j, "SessionUp", sr, &pu, &r) == CHAT_OK)
		ib->status = pu->status;
	else {
		chat_warn(EDGE_SVC, "session_up_failed", "sid=%" PRIu64
		          " reason=\"%s\"", j->sid, r.reason);
		ib->status = CHAT__STATUS__STATUS_ONLINE;
	}
	fill_dm_status(j, cl->channels, cl->n_channels);

	ib->arena = chat_arena_new();
	if (!ib->arena)
		goto oom;
	ib->bufs = chat_arena_alloc(ib->arena, 2 * sizeof *ib->bufs);
	ib->chans = chat_arena_alloc(ib->arena, (cl->n_channels + 1) *
	                                            sizeof *ib->chans);
	if (!ib->bufs || !ib->chans)
		goto oom;
	for (size_t i = 0; i < cl->n_channels; i++)
		if (cl->channels[i])
			ib->chans[ib->nchans++] = cl->channels[i]->id;
	w.user_id = j->user_id;
	w.user_name = j->user_name;
	w.session_id = j->sid;
	w.edge_id = (char *)e->cfg.edge_id;
	w.max_frame_bytes = EDGE_MAX_FRAME;
	w.max_body_bytes = EDGE_MAX_BODY;
	w.status = (Chat__Status)ib->status;
	w.server_time_ms = chat_now_ms();
	f.kind_case = CHAT__SERVER_FRAME__KIND_WELCOME;
	f.welcome = &w;
	ib->bufs[0] = edge_pack(&f, EDGE_BUF_NORMAL);
	if (!ib->bufs[0])
		goto oom;
	ib->nbufs = 1;
	f.kind_case = CHAT__SERVER_FRAME__KIND_CHANNEL_LIST;
	f.channel_list = cl;
	ib->bufs[1] = edge_pack(&f, EDGE_BUF_NORMAL);
	if (!ib->bufs[1])
		goto oom;
	ib->nbufs = 2;
	ib->ok = 1;
	edge_post(e, ib);
	return;
oom:
	for (size_t i = 0; i < ib->nbufs; i++)
		chat_buf_rele(ib->bufs[i]);
	chat_arena_free(ib->arena);
	memset(ib, 0, sizeof *ib);
	ib->op = IB_SETUP;
	ib->sid = j->sid;
	ib->user_id = j->user_id;
	chat_strlcpy(ib->user_name, j->user_name, sizeof ib->user_name);
	ib->status = CHAT_RESOURCE_EXHAUSTED;
	post_buf(e, ib, edge_pack_error(0, CHAT_RESOURCE_EXHAUSTED,
	                                "out of memory", 0, NULL));
}

static void job_session_down(edge_job *j)
{
	edge *e = j->e;
	Chat__SessionReq sr = CHAT__SESSION_REQ__INIT;
	Chat__PresenceUpdate *pu = NULL;
	char reason[256];
	int stopping = atomic_load(&e->stopping), st;

	/* At shutdown, one unreachable presence must not cost 3 s per
	 * session. */
	if (stopping && atomic_load(&e->presence_dead))
		return;
	sr.user_id = j->user_id;
	sr.user_name = j->user_name;
	sr.session_id = j->sid;
	sr.edge_id = (char *)e->cfg.edge_id;
	pthread_rwlock_rdlock(&e->pres_lock);
	st = chat_rpc_invoke(e->presence, &chat__presence__descriptor,
	                     "SessionDown", &sr.base, j->arena,
	                     (ProtobufCMessage **)&pu,
	                     stopping ? STOP_RPC_TIMEOUT_MS
	                              : e->cfg.rpc_timeout_ms,
	                     reason, sizeof reason);
	pthread_rwlock_unlock(&e->pres_lock);
	if (st != CHAT_OK) {
		chat_debug(EDGE_SVC, "session_down_failed", "sid=%" PRIu64
		           " reason=\"%s\"", j->sid, reason);
		if (stopping && (st == CHAT_UNAVAILABLE ||
		                 st == CHAT_DEADLINE_EXCEEDED))
			atomic_store(&e->presence_dead, 1);
	}
}

static void job_typing(edge_job *j)
{
	edge *e = j->e;
	Chat__EventBatch b = CHAT__EVENT_BATCH__INIT;
	Chat__Event ev = CHAT__EVENT__INIT, *evp = &ev;
	Chat__Typing t = CHAT__TYPING__INIT;
	Chat__Empty *out = NULL;
	reply r;

	t.channel_id = j->frame->typing->channel_id;
	t.user_id = j->user_id;
	t.user_name = j->user_name;
	ev.channel_id = t.channel_id;
	ev.skip_user_id = j->user_id;
	ev.kind_case = CHAT__EVENT__KIND_TYPING;
	ev.typing = &t;
	b.n_events = 1;
	b.events = &evp;
	if (call(e, e->dispatcher, &chat__dispatcher__descriptor, "Publish",
	         &b.base, j->arena, (ProtobufCMessage **)&out, &r) != CHAT_OK)
		chat_debug(EDGE_SVC, "typing_dropped", "reason=\"%s\"",
		           r.reason);
}

static void job_chanlist(edge_job *j)
{
	Chat__UserReq ur = CHAT__USER_REQ__INIT;
	Chat__ChannelList *cl = NULL;
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	edge_ib *ib;
	reply r;

	/* Always answer, so the service thread knows this refresh is over
	 * (one refresh per user at a time keeps lists in order). */
	ib = edge_ib_new(IB_USER_FRAMES);
	if (ib) {
		ib->user_id = j->user_id;
		ib->chanlist = 1;
	}
	ur.user_id = j->user_id;
	if (STORE(j, "ListChannels", ur, &cl, &r) != CHAT_OK) {
		chat_warn(EDGE_SVC, "channel_list_failed", "user=%" PRIu64
		          " reason=\"%s\"", j->user_id, r.reason);
		post_buf(j->e, ib, NULL);
		return;
	}
	fill_dm_status(j, cl->channels, cl->n_channels);
	f.kind_case = CHAT__SERVER_FRAME__KIND_CHANNEL_LIST;
	f.channel_list = cl;
	post_buf(j->e, ib, edge_pack(&f, EDGE_BUF_NORMAL));
}

static void job_resume_page(edge_job *j)
{
	edge *e = j->e;
	Chat__StoreHistoryReq hr = CHAT__STORE_HISTORY_REQ__INIT;
	Chat__HistoryPage *hp = NULL;
	edge_ib *ib = edge_ib_new(IB_RESUME_PAGE);
	reply r;
	int st;

	if (!ib)
		return;
	ib->sid = j->sid;
	ib->req_id = j->req_id;
	ib->channel_id = j->channel_id;
	hr.user_id = j->user_id;
	hr.channel_id = j->channel_id;
	hr.anchor_seq = j->after_seq;
	hr.direction = CHAT__HISTORY_REQ__DIRECTION__AFTER;
	hr.limit = j->limit;
	st = STORE(j, "History", hr, &hp, &r);
	if (st == CHAT_OK) {
		ib->arena = chat_arena_new();
		ib->bufs = ib->arena ? chat_arena_alloc(ib->arena,
		                                        (hp->n_messages + 1) *
		                                            sizeof *ib->bufs)
		                     : NULL;
		if (!ib->bufs) {
			st = CHAT_RESOURCE_EXHAUSTED;
			snprintf(r.reason, sizeof r.reason, "out of memory");
		}
	}
	if (st != CHAT_OK) {
		chat_arena_free(ib->arena);
		ib->arena = NULL;
		ib->bufs = NULL;
		post_buf(e, ib, edge_pack_error(j->req_id, st, r.reason,
		                                j->channel_id, NULL));
		return;
	}
	for (size_t i = 0; i < hp->n_messages; i++) {
		Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
		chat_buf *b;
		if (!hp->messages[i])
			continue;
		f.kind_case = CHAT__SERVER_FRAME__KIND_MESSAGE;
		f.message = hp->messages[i];
		b = edge_pack(&f, EDGE_BUF_NORMAL);
		if (!b)
			break;
		ib->bufs[ib->nbufs++] = b;
		ib->last_seq = hp->messages[i]->seq;
	}
	ib->count = ib->nbufs;
	ib->more = hp->more;
	ib->ok = 1;
	edge_post(e, ib);
}

/* ---- client requests ---- */

static int who(edge_job *j, const Chat__WhoReq *wq, Chat__WhoReply *out,
               reply *r)
{
	Chat__MembershipReq mr = CHAT__MEMBERSHIP_REQ__INIT;
	Chat__UserReq ur = CHAT__USER_REQ__INIT;
	Chat__PresenceQuery q = CHAT__PRESENCE_QUERY__INIT;
	Chat__UserList *ul = NULL;
	Chat__PresenceList *pl = NULL;
	chat_u64map st;
	int rv;

	if (wq->channel_id) {
		mr.user_id = j->user_id;
		mr.channel_id = wq->channel_id;
		rv = STORE(j, "Members", mr, &ul, r);
	} else {
		ur.user_id = j->user_id;
		rv = STORE(j, "Peers", ur, &ul, r);
	}
	if (rv != CHAT_OK)
		return rv;
	out->channel_id = wq->channel_id;
	if (!ul->n_users)
		return CHAT_OK;
	q.user_ids = chat_arena_alloc(j->arena,
	                              ul->n_users * sizeof *q.user_ids);
	out->users = (Chat__PresenceUpdate **)chat_arena_ptrs(j->arena,
	                                                      ul->n_users);
	if (!q.user_ids || !out->users) {
		snprintf(r->reason, sizeof r->reason, "out of memory");
		return CHAT_RESOURCE_EXHAUSTED;
	}
	for (size_t i = 0; i < ul->n_users; i++)
		if (ul->users[i])
			q.user_ids[q.n_user_ids++] = ul->users[i]->id;
	rv = PRESENCE(j, "Query", q, &pl, r);
	if (rv != CHAT_OK)
		return rv;
	chat_u64map_init(&st);
	for (size_t i = 0; i < pl->n_users; i++)
		if (pl->users[i] && pl->users[i]->user_id)
			chat_u64map_put(&st, pl->users[i]->user_id,
			                pl->users[i]);
	for (size_t i = 0; i < ul->n_users; i++) {
		Chat__PresenceUpdate *u, *p;
		if (!ul->users[i])
			continue;
		u = (Chat__PresenceUpdate *)chat_arena_msg(
		    j->arena, &chat__presence_update__descriptor);
		if (!u)
			break;
		u->user_id = ul->users[i]->id;
		u->user_name = ul->users[i]->name;
		p = chat_u64map_get(&st, u->user_id);
		if (p) {
			u->status = p->status;
			u->last_seen_ms = p->last_seen_ms;
		}
		out->users[out->n_users++] = u;
	}
	chat_u64map_fini(&st);
	return CHAT_OK;
}

static void job_req(edge_job *j)
{
	edge *e = j->e;
	const Chat__ClientFrame *cf = j->frame;
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__StoreCreateChannelReq cr = CHAT__STORE_CREATE_CHANNEL_REQ__INIT;
	Chat__StoreOpenDmReq dr = CHAT__STORE_OPEN_DM_REQ__INIT;
	Chat__MembershipReq mr = CHAT__MEMBERSHIP_REQ__INIT;
	Chat__UserReq ur = CHAT__USER_REQ__INIT;
	Chat__StoreHistoryReq hr = CHAT__STORE_HISTORY_REQ__INIT;
	Chat__StoreMarkReadReq rr = CHAT__STORE_MARK_READ_REQ__INIT;
	Chat__PresenceSetReq ps = CHAT__PRESENCE_SET_REQ__INIT;
	Chat__WhoReply wr = CHAT__WHO_REPLY__INIT;
	Chat__Ok ok = CHAT__OK__INIT;
	Chat__ChannelInfo *ci = NULL;
	Chat__ChannelList *cl = NULL;
	Chat__Empty *empty = NULL;
	Chat__PresenceUpdate *pu = NULL;
	int op = IB_FRAMES, st = CHAT_OK;
	uint64_t chan = 0;
	edge_ib *ib;
	chat_buf *b;
	reply r;

	r.reason[0] = '\0';
	f.req_id = j->req_id;
	switch (cf->kind_case) {
	case CHAT__CLIENT_FRAME__KIND_CREATE_CHANNEL:
		cr.user_id = j->user_id;
		cr.name = cf->create_channel->name;
		cr.n_members = cf->create_channel->n_members;
		cr.members = cf->create_channel->members;
		st = STORE(j, "CreateChannel", cr, &ci, &r);
		goto channel;
	case CHAT__CLIENT_FRAME__KIND_OPEN_DM:
		dr.user_id = j->user_id;
		dr.peer_name = cf->open_dm->user_name;
		st = STORE(j, "OpenDm", dr, &ci, &r);
		goto channel;
	case CHAT__CLIENT_FRAME__KIND_JOIN:
		mr.user_id = j->user_id;
		mr.channel_id = chan = cf->join->channel_id;
		st = STORE(j, "Join", mr, &ci, &r);
	channel:
		if (st != CHAT_OK)
			break;
		fill_dm_status(j, &ci, 1);
		f.kind_case = CHAT__SERVER_FRAME__KIND_CHANNEL;
		f.channel = ci;
		op = IB_CHAN_ADD;
		chan = ci->id;
		break;
	case CHAT__CLIENT_FRAME__KIND_LEAVE:
		mr.user_id = j->user_id;
		mr.channel_id = chan = cf->leave->channel_id;
		st = STORE(j, "Leave", mr, &empty, &r);
		f.kind_case = CHAT__SERVER_FRAME__KIND_OK;
		f.ok = &ok;
		op = IB_CHAN_DEL;
		break;
	case CHAT__CLIENT_FRAME__KIND_LIST_CHANNELS:
		ur.user_id = j->user_id;
		st = STORE(j, "ListChannels", ur, &cl, &r);
		if (st != CHAT_OK)
			break;
		fill_dm_status(j, cl->channels, cl->n_channels);
		f.kind_case = CHAT__SERVER_FRAME__KIND_CHANNEL_LIST;
		f.channel_list = cl;
		break;
	case CHAT__CLIENT_FRAME__KIND_HISTORY:
		hr.user_id = j->user_id;
		hr.channel_id = chan = cf->history->channel_id;
		hr.anchor_seq = cf->history->anchor_seq;
		hr.direction = cf->history->direction;
		hr.limit = cf->history->limit;
		st = STORE(j, "History", hr, &f.history, &r);
		f.kind_case = CHAT__SERVER_FRAME__KIND_HISTORY;
		break;
	case CHAT__CLIENT_FRAME__KIND_MARK_READ:
		rr.user_id = j->user_id;
		rr.channel_id = chan = cf->mark_read->channel_id;
		rr.seq = cf->mark_read->seq;
		st = STORE(j, "MarkRead", rr, &f.read_receipt, &r);
		f.kind_case = CHAT__SERVER_FRAME__KIND_READ_RECEIPT;
		break;
	case CHAT__CLIENT_FRAME__KIND_SET_STATUS:
		ps.user_id = j->user_id;
		ps.user_name = j->user_name;
		ps.status = cf->set_status->status;
		st = PRESENCE(j, "SetStatus", ps, &pu, &r);
		f.kind_case = CHAT__SERVER_FRAME__KIND_OK;
		f.ok = &ok;
		break;
	case CHAT__CLIENT_FRAME__KIND_WHO:
		chan = cf->who->channel_id;
		st = who(j, cf->who, &wr, &r);
		f.kind_case = CHAT__SERVER_FRAME__KIND_WHO;
		f.who = &wr;
		break;
	default:
		st = CHAT_UNIMPLEMENTED;
		snprintf(r.reason, sizeof r.reason, "unknown request type");
		break;
	}
	if (st != CHAT_OK) {
		op = IB_FRAMES;
		b = edge_pack_error(j->req_id, st, r.reason, chan, NULL);
	} else {
		b = edge_pack(&f, EDGE_BUF_NORMAL);
	}
	if (!b)
		b = edge_pack_error(j->req_id, CHAT_RESOURCE_EXHAUSTED,
		                    "out of memory", chan, NULL);
	ib = edge_ib_new(op);
	if (ib) {
		ib->sid = j->sid;
		ib->user_id = j->user_id;
		ib->channel_id = chan;
		ib->ends_req = 1;
	}
	post_buf(e, ib, b);
}

/* Presence lost its sessions (Redis restarted): SessionUp again for each
 * session still open. A session that closes meanwhile is skipped, or its
 * SessionDown waits for this SessionUp (pres_lock). */
static void job_reannounce(edge_job *j)
{
	edge *e = j->e;
	size_t ok = 0, failed = 0;
	chat_arena *a = chat_arena_new(); /* j->arena holds the list */

	if (!a)
		return;
	for (size_t i = 0; i < j->nreann && !atomic_load(&e->stopping); i++) {
		const edge_reann *x = &j->reann[i];
		Chat__SessionReq sr = CHAT__SESSION_REQ__INIT;
		Chat__PresenceUpdate *pu = NULL;
		char reason[256];
		int live, st = CHAT_OK;

		pthread_rwlock_wrlock(&e->pres_lock);
		pthread_mutex_lock(&e->live_mu);
		live = chat_u64map_get(&e->live, x->sid) != NULL;
		pthread_mutex_unlock(&e->live_mu);
		if (live) {
			sr.user_id = x->user_id;
			sr.user_name = (char *)x->user_name;
			sr.session_id = x->sid;
			sr.edge_id = (char *)e->cfg.edge_id;
			st = chat_rpc_invoke(e->presence,
			                     &chat__presence__descriptor,
			                     "SessionUp", &sr.base, a,
			                     (ProtobufCMessage **)&pu,
			                     e->cfg.rpc_timeout_ms, reason,
			                     sizeof reason);
		}
		pthread_rwlock_unlock(&e->pres_lock);
		chat_arena_reset(a);
		if (!live)
			continue;
		if (st == CHAT_OK) {
			ok++;
		} else if (failed++ == 0) {
			chat_warn(EDGE_SVC, "reannounce_failed",
			          "sid=%" PRIu64 " reason=\"%s\"", x->sid,
			          reason);
		}
	}
	chat_arena_free(a);
	chat_info(EDGE_SVC, "reannounced", "edge=%s ok=%zu failed=%zu",
	          e->cfg.edge_id, ok, failed);
}

static void job_run(chat_job *cj)
{
	edge_job *j = CHAT_CONTAINER_OF(cj, edge_job, job);

	/* At shutdown only SessionDown still matters (and freeing). */
	if (!atomic_load(&j->e->stopping) || j->op == JOB_SESSION_DOWN) {
		switch (j->op) {
		case JOB_SETUP:
			job_setup(j);
			break;
		case JOB_REQ:
			job_req(j);
			break;
		case JOB_SESSION_DOWN:
			job_session_down(j);
			break;
		case JOB_TYPING:
			job_typing(j);
			break;
		case JOB_CHANLIST:
			job_chanlist(j);
			break;
		case JOB_RESUME_PAGE:
			job_resume_page(j);
			break;
		case JOB_REANNOUNCE:
			job_reannounce(j);
			break;
		}
	}
	if (j->op == JOB_FREE_PRODUCER)
		chat_producer_free(j->ptr);
	edge_job_free(j);
}
