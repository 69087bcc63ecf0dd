/* The presence service (see presence.h): the chat.Presence RPCs over a
 * state backend (pres_backend.h: memory or Redis), the sweep of dead
 * edges (Redis), and the publishing of visible changes through the
 * dispatcher on a single worker thread (so a user's changes leave in the
 * order they happened, and no RPC reply waits for them). Backend calls
 * and the queueing of their changes happen under one lock, for that
 * order. */
#include "presence.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_log.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "chat_workers.h"
#include "dispatcher.pb-c.h"
#include "pres_backend.h"
#include "presence.pb-c.h"
#include "rpc.pb-c.h"
#include "store.pb-c.h"

#define SVC "presence"
#define PUBLISH_BACKLOG_MAX 100000 /* past this, changes go unpublished */
#define QUERY_MAX 10000            /* users per Query */
#define PRES_CHANNEL_MAX 500       /* presence goes through channels of at
                                    * most this many members (and DMs) */

struct pres {
	pthread_mutex_t mu; /* backend calls and publish order */
	pres_backend *be;

	chat_rpc_server *srv;
	chat_rpc_client *store, *disp;
	chat_disc *disc;
	chat_workers *pub;
	int rpc_timeout_ms;
	atomic_int stopping;
	atomic_llong publishes, publish_failed, publish_skipped;
	atomic_llong swept_offline, backend_errors;

	/* The sweep thread (Redis). */
	pthread_t sweeper;
	int sweeping, sweep_ms, sweep_stop;
	pthread_mutex_t sweep_mu;
	pthread_cond_t sweep_cv;
};

/* One visible change on its way to the dispatcher. */
struct pub_job {
	chat_job job;
	pres *p;
	uint64_t user_id;
	char name[PRES_NAME_MAX];
	Chat__Status status;
	int64_t last_seen_ms;
};

/* ---- publishing -------------------------------------------------------- */

static void pub_run(chat_job *job)
{
	struct pub_job *j = (struct pub_job *)job;
	pres *p = j->p;
	chat_arena *a = chat_arena_new();
	Chat__UserReq ureq = CHAT__USER_REQ__INIT;
	Chat__PresenceUpdate upd = CHAT__PRESENCE_UPDATE__INIT;
	Chat__Event ev = CHAT__EVENT__INIT, *evp = &ev;
	Chat__EventBatch batch = CHAT__EVENT_BATCH__INIT;
	ProtobufCMessage *out = NULL;
	char why[256];
	int st;

	if (!a || atomic_load(&p->stopping)) {
		atomic_fetch_add(&p->publish_skipped, 1);
		goto out;
	}
	ureq.user_id = j->user_id;
	st = chat_rpc_invoke(p->store, &chat__store__descriptor, "UserChannels",
	                     &ureq.base, a, &out, p->rpc_timeout_ms, why,
	                     sizeof why);
	if (st == CHAT_OK) {
		const Chat__ChannelIds *ids = (const Chat__ChannelIds *)out;
		uint64_t *v = chat_arena_alloc(a, (ids->n_ids + 1) * sizeof *v);
		size_t n = 0;
		/* Not through big channels: everyone coming online in a
		 * channel of N would cost N*N pushes. There, who answers. */
		for (size_t i = 0; v && i < ids->n_ids; i++)
			if (i >= ids->n_member_counts ||
			    ids->member_counts[i] <= PRES_CHANNEL_MAX)
				v[n++] = ids->ids[i];
		ev.n_channel_ids = n;
		ev.channel_ids = v;
	} else {
		/* Still tell the user's own other sessions. */
		chat_warn(SVC, "user_channels_failed",
		          "user_id=%llu code=%s reason=\"%s\"",
		          (unsigned long long)j->user_id, chat_strerror(st),
		          why);
	}
	upd.user_id = j->user_id;
	upd.user_name = j->name;
	upd.status = j->status;
	upd.last_seen_ms = j->last_seen_ms;
	ev.n_user_ids = 1;
	ev.user_ids = &j->user_id;
	ev.kind_case = CHAT__EVENT__KIND_PRESENCE;
	ev.presence = &upd;
	batch.n_events = 1;
	batch.events = &evp;
	/* Presence is ephemeral, published at most once: a lost update is
	 * corrected by the next one, or by a Query (who). */
	st = chat_rpc_invoke(p->disp, &chat__dispatcher__descriptor, "Publish",
	                     &batch.base, a, &out, p->rpc_timeout_ms, why,
	                     sizeof why);
	if (st != CHAT_OK) {
		atomic_fetch_add(&p->publish_failed, 1);
		chat_warn(SVC, "publish_failed",
		          "user_id=%llu code=%s reason=\"%s\"",
		          (unsigned long long)j->user_id, chat_strerror(st),
		          why);
	} else {
		atomic_fetch_add(&p->publishes, 1);
		chat_debug(SVC, "published",
		           "user_id=%llu status=%d channels=%zu",
		           (unsigned long long)j->user_id, (int)j->status,
		           ev.n_channel_ids);
	}
out:
	chat_arena_free(a);
	free(j);
}

/* Queue the publication of a user's view. Called with the lock held, so
 * that changes are queued in the order they were made. */
static void publish_locked(pres *p, uint64_t user_id, const pres_view *v)
{
	struct pub_job *j;
	if (chat_workers_backlog(p->pub) >= PUBLISH_BACKLOG_MAX ||
	    !(j = calloc(1, sizeof *j))) {
		atomic_fetch_add(&p->publish_skipped, 1);
		return;
	}
	j->job.run = pub_run;
	j->p = p;
	j->user_id = user_id;
	memcpy(j->name, v->name, sizeof j->name);
	j->status = v->status;
	j->last_seen_ms = v->last_seen_ms;
	if (chat_workers_submit(p->pub, &j->job) != 0) {
		atomic_fetch_add(&p->publish_skipped, 1);
		free(j);
	}
}

/* ---- RPC handlers ------------------------------------------------------ */

static int valid_user_id(uint64_t id)
{
	return id != 0 && id != UINT64_MAX;
}

static void fill(chat_rpc_call *call, Chat__PresenceUpdate *out, uint64_t id,
                 const pres_view *v)
{
	out->user_id = id;
	out->user_name = chat_arena_strdup(call->arena, v->name);
	out->status = v->status;
	out->last_seen_ms = v->last_seen_ms;
}

static int backend_failed(pres *p, chat_rpc_call *call, int st,
                          const char *what)
{
	atomic_fetch_add(&p->backend_errors, 1);
	switch (st) {
	case CHAT_RESOURCE_EXHAUSTED:
		return chat_rpc_fail(call, st, "out of memory");
	case CHAT_INVALID_ARGUMENT:
		return chat_rpc_fail(call, st, "%s: a valid edge_id is "
		                               "required", what);
	default:
		return chat_rpc_fail(call, st, "%s: presence state "
		                               "unavailable", what);
	}
}

static int session_up(void *arg, chat_rpc_call *call)
{
	pres *p = arg;
	const Chat__SessionReq *in = (const Chat__SessionReq *)call->in;
	pres_view v;
	int st, changed = 0;

	if (!valid_user_id(in->user_id) || !in->session_id)
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "user_id and session_id are required");
	pthread_mutex_lock(&p->mu);
	st = p->be->ops->session_up(p->be, in->user_id, in->user_name,
	                            in->session_id, in->edge_id,
	                            chat_now_ms(), &v, &changed);
	if (st == CHAT_OK && changed)
		publish_locked(p, in->user_id, &v);
	pthread_mutex_unlock(&p->mu);
	if (st != CHAT_OK)
		return backend_failed(p, call, st, "SessionUp");
	fill(call, (Chat__PresenceUpdate *)call->out, in->user_id, &v);
	chat_debug(SVC, "session_up", "user_id=%llu session_id=%llu edge=%s",
	           (unsigned long long)in->user_id,
	           (unsigned long long)in->session_id, in->edge_id);
	return CHAT_OK;
}

/* Idempotent: an unknown session changes nothing and is not an error. */
static int session_down(void *arg, chat_rpc_call *call)
{
	pres *p = arg;
	const Chat__SessionReq *in = (const Chat__SessionReq *)call->in;
	pres_view v;
	int st, changed = 0;

	if (!valid_user_id(in->user_id))
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "user_id is required");
	pthread_mutex_lock(&p->mu);
	st = p->be->ops->session_down(p->be, in->user_id, in->user_name,
	                              in->session_id, chat_now_ms(), &v,
	                              &changed);
	if (st == CHAT_OK && changed)
		publish_locked(p, in->user_id, &v);
	pthread_mutex_unlock(&p->mu);
	if (st != CHAT_OK)
		return backend_failed(p, call, st, "SessionDown");
	fill(call, (Chat__PresenceUpdate *)call->out, in->user_id, &v);
	chat_debug(SVC, "session_down", "user_id=%llu session_id=%llu",
	           (unsigned long long)in->user_id,
	           (unsigned long long)in->session_id);
	return CHAT_OK;
}

static int set_status(void *arg, chat_rpc_call *call)
{
	pres *p = arg;
	const Chat__PresenceSetReq *in = (const Chat__PresenceSetReq *)call->in;
	pres_view v;
	int st, changed = 0;

	if (!valid_user_id(in->user_id))
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "user_id is required");
	/* proto3 enums are open: any number may arrive. */
	if ((int)in->status < CHAT__STATUS__STATUS_OFFLINE ||
	    (int)in->status > CHAT__STATUS__STATUS_BUSY)
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "unknown status %d", (int)in->status);
	pthread_mutex_lock(&p->mu);
	st = p->be->ops->set_status(p->be, in->user_id, in->user_name,
	                            in->status, chat_now_ms(), &v, &changed);
	if (st == CHAT_OK && changed)
		publish_locked(p, in->user_id, &v);
	pthread_mutex_unlock(&p->mu);
	if (st != CHAT_OK)
		return backend_failed(p, call, st, "SetStatus");
	fill(call, (Chat__PresenceUpdate *)call->out, in->user_id, &v);
	return CHAT_OK;
}

static int query(void *arg, chat_rpc_call *call)
{
	pres *p = arg;
	const Chat__PresenceQuery *in = (const Chat__PresenceQuery *)call->in;
	Chat__PresenceList *out = (Chat__PresenceList *)call->out;
	pres_view *v;
	int st;

	if (!in->n_user_ids)
		return CHAT_OK;
	if (in->n_user_ids > QUERY_MAX)
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "at most %d users per query", QUERY_MAX);
	out->users = (Chat__PresenceUpdate **)chat_arena_ptrs(call->arena,
	                                                      in->n_user_ids);
	v = chat_arena_alloc(call->arena, in->n_user_ids * sizeof *v);
	if (!out->users || !v)
		return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
		                     "out of memory");
	pthread_mutex_lock(&p->mu);
	st = p->be->ops->query(p->be, in->user_ids, in->n_user_ids,
	                       chat_now_ms(), v);
	pthread_mutex_unlock(&p->mu);
	if (st != CHAT_OK)
		return backend_failed(p, call, st, "Query");
	for (size_t i = 0; i < in->n_user_ids; i++) {
		Chat__PresenceUpdate *u =
		    (Chat__PresenceUpdate *)chat_arena_msg(
		        call->arena, &chat__presence_update__descriptor);
		if (!u)
			return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
			                     "out of memory");
		fill(call, u, in->user_ids[i], &v[i]);
		out->users[out->n_users++] = u;
	}
	return CHAT_OK;
}

static const chat_rpc_fn presence_fns[] = {session_up, session_down,
                                           set_status, query};

static Chat__Counter *counter(chat_arena *a, const char *name, int64_t v)
{
	Chat__Counter *c =
	    (Chat__Counter *)chat_arena_msg(a, &chat__counter__descriptor);
	if (c) {
		c->name = (char *)name;
		c->value = v;
	}
	return c;
}

static void health(void *arg, chat_arena *a, size_t *n, void ***out)
{
	pres *p = arg;
	void **c = chat_arena_ptrs(a, 8);
	int64_t users = -1, sessions = -1;
	if (!c)
		return;
	pthread_mutex_lock(&p->mu);
	p->be->ops->counters(p->be, &users, &sessions);
	pthread_mutex_unlock(&p->mu);
	c[0] = counter(a, "users", users);
	c[1] = counter(a, "sessions", sessions);
	c[2] = counter(a, "publishes", atomic_load(&p->publishes));
	c[3] = counter(a, "publish_failed", atomic_load(&p->publish_failed));
	c[4] = counter(a, "publish_skipped", atomic_load(&p->publish_skipped));
	c[5] = counter(a, "publish_backlog",
	               (int64_t)chat_workers_backlog(p->pub));
	c[6] = counter(a, "swept_offline", atomic_load(&p->swept_offline));
	c[7] = counter(a, "backend_errors", atomic_load(&p->backend_errors));
	for (int i = 0; i < 8; i++)
		if (!c[i])
			return;
	*n = 8;
	*out = c;
}

/* ---- the sweep (Redis) ------------------------------------------------- */

static void swept(void *arg, uint64_t user_id, const pres_view *v)
{
	pres *p = arg;
	atomic_fetch_add(&p->swept_offline, 1);
	publish_locked(p, user_id, v);
}

static void *sweep_main(void *arg)
{
	pres *p = arg;
	pthread_mutex_lock(&p->sweep_mu);
	while (!p->sweep_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += p->sweep_ms / 1000;
		ts.tv_nsec += (long)(p->sweep_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->sweep_cv, &p->sweep_mu, &ts);
		if (p->sweep_stop)
			break;
		pthread_mutex_unlock(&p->sweep_mu);
		pthread_mutex_lock(&p->mu);
		if (p->be->ops->sweep(p->be, chat_now_ms(), swept, p) !=
		    CHAT_OK)
			atomic_fetch_add(&p->backend_errors, 1);
		pthread_mutex_unlock(&p->mu);
		pthread_mutex_lock(&p->sweep_mu);
	}
	pthread_mutex_unlock(&p->sweep_mu);
	return NULL;
}

/* ---- start / stop ------------------------------------------------------ */

/* A client of url, or, with discovery and no url, of every instance of
 * service. */
static chat_rpc_client *client(pres *p, const char *url, const char *service,
                               char *err, size_t errlen)
{
	chat_rpc_client *c;
	int bind = (!url || !url[0]) && p->disc;
	c = chat_rpc_client_new(bind ? NULL : url, err, errlen);
	if (c && bind && chat_disc_bind_client(p->disc, service, c) != 0) {
		chat_errf(err, errlen, "presence: cannot follow service %s",
		          service);
		chat_rpc_client_free(c);
		return NULL;
	}
	return c;
}

/* Register with discovery: rpc_url with the bound port. */
static int announce(pres *p, const pres_config *cfg, int port, char *err,
                    size_t errlen)
{
	chat_disc_entry e;
	char json[CHAT_DISC_DATA_MAX];
	const char *colon = strrchr(cfg->rpc_url, ':');
	const char *id = cfg->instance && cfg->instance[0] ? cfg->instance
	                                                   : "presence-1";

	memset(&e, 0, sizeof e);
	if (strncmp(cfg->rpc_url, "tcp://", 6) != 0 || !colon || port <= 0) {
		chat_errf(err, errlen, "presence: with discovery, rpc_url must "
		                       "be tcp://HOST:PORT (got %s)",
		          cfg->rpc_url);
		return -1;
	}
	snprintf(e.rpc, sizeof e.rpc, "%.*s:%d", (int)(colon - cfg->rpc_url),
	         cfg->rpc_url, port);
	chat_strlcpy(e.id, id, sizeof e.id);
	chat_strlcpy(e.service, "presence", sizeof e.service);
	chat_strlcpy(e.version, CHAT_VERSION, sizeof e.version);
	e.pid = (int64_t)getpid();
	if (chat_disc_format(&e, json, sizeof json) < 0 ||
	    chat_disc_register(p->disc, "presence", e.id, json, 0) < 0) {
		chat_errf(err, errlen, "presence: cannot register '%s' in "
		                       "discovery",
		          e.id);
		return -1;
	}
	return 0;
}

int pres_start(const pres_config *cfg, pres **out, char *err, size_t errlen)
{
	pres *p;
	int port = 0;

	*out = NULL;
	if (!cfg->rpc_url || !cfg->rpc_url[0] ||
	    (!cfg->disc && (!cfg->store_url || !cfg->store_url[0] ||
	                    !cfg->dispatcher_url || !cfg->dispatcher_url[0]))) {
		snprintf(err, errlen, "presence: rpc_url, store_url and "
		                      "dispatcher_url are required");
		return -1;
	}
	p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "presence: out of memory");
		return -1;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->sweep_mu, NULL);
	pthread_cond_init(&p->sweep_cv, NULL);
	p->disc = cfg->disc;
	p->rpc_timeout_ms =
	    cfg->rpc_timeout_ms > 0 ? cfg->rpc_timeout_ms : 2000;
	p->sweep_ms = cfg->sweep_ms > 0 ? cfg->sweep_ms : 2000;
	if (cfg->redis_addr && cfg->redis_addr[0])
		p->be = pres_redis_new(cfg->redis_addr, cfg->redis_prefix,
		                       cfg->redis_timeout_ms, err, errlen);
	else if (!(p->be = pres_mem_new()))
		snprintf(err, errlen, "presence: out of memory");
	if (!p->be)
		goto fail;
	if (!(p->store = client(p, cfg->store_url, "store", err, errlen)) ||
	    !(p->disp = client(p, cfg->dispatcher_url, "dispatcher", err,
	                       errlen)))
		goto fail;
	p->pub = chat_workers_new(1, "pres-publish");
	p->srv = chat_rpc_server_new("presence", cfg->instance, 4);
	if (!p->pub || !p->srv) {
		snprintf(err, errlen, "presence: out of memory");
		goto fail;
	}
	if (chat_rpc_server_add(p->srv, &chat__presence__descriptor,
	                        CHAT_RPC_TABLE(presence_fns), p) != 0) {
		snprintf(err, errlen, "presence: cannot register the service");
		goto fail;
	}
	chat_rpc_server_set_health(p->srv, health, p);
	if (chat_rpc_server_listen(p->srv, cfg->rpc_url, &port, err,
	                           errlen) != 0)
		goto fail;
	if (chat_rpc_server_start(p->srv) != 0) {
		snprintf(err, errlen, "presence: cannot start the RPC threads");
		goto fail;
	}
	if (p->be->ops->sweep) {
		if (pthread_create(&p->sweeper, NULL, sweep_main, p) != 0) {
			snprintf(err, errlen, "presence: cannot start the "
			                      "sweep thread");
			goto fail;
		}
		p->sweeping = 1;
	}
	if (p->disc && announce(p, cfg, port, err, errlen) != 0)
		goto fail;
	chat_info(SVC, "started",
	          "rpc=%s port=%d store=%s dispatcher=%s state=%s",
	          cfg->rpc_url, port,
	          cfg->store_url && cfg->store_url[0] ? cfg->store_url
	                                              : "(discovery)",
	          cfg->dispatcher_url && cfg->dispatcher_url[0]
	              ? cfg->dispatcher_url
	              : "(discovery)",
	          cfg->redis_addr && cfg->redis_addr[0] ? cfg->redis_addr
	                                                : "memory");
	*out = p;
	return 0;
fail:
	pres_stop(p);
	return -1;
}

void pres_stop(pres *p)
{
	if (!p)
		return;
	if (p->sweeping) {
		pthread_mutex_lock(&p->sweep_mu);
		p->sweep_stop = 1;
		pthread_cond_signal(&p->sweep_cv);
		pthread_mutex_unlock(&p->sweep_mu);
		pthread_join(p->sweeper, NULL);
	}
	chat_rpc_server_free(p->srv); /* no handler runs after this */
	atomic_store(&p->stopping, 1);
	chat_workers_free(p->pub);    /* queued publishes are dropped */
	if (p->disc) {
		chat_disc_unbind_client(p->disc, p->store);
		chat_disc_unbind_client(p->disc, p->disp);
	}
	chat_rpc_client_free(p->store);
	chat_rpc_client_free(p->disp);
	if (p->be)
		p->be->ops->free(p->be);
	pthread_cond_destroy(&p->sweep_cv);
	pthread_mutex_destroy(&p->sweep_mu);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
