/* The presence service (see presence.h): in-memory state under one mutex,
 * the chat.Presence RPCs, and the publishing of visible changes through
 * the dispatcher on a single worker thread (so a user's changes leave in
 * the order they happened, and no RPC reply waits for them). */
#include "presence.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_arena.h"
#include "chat_log.h"
#include "chat_map.h"
#include "chat_routing.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "chat_workers.h"
#include "dispatcher.pb-c.h"
#include "presence.pb-c.h"
#include "rpc.pb-c.h"
#include "store.pb-c.h"

#define SVC "presence"
#define NAME_MAX_LEN 64
#define PUBLISH_BACKLOG_MAX 100000 /* past this, changes go unpublished */

struct psess {
	uint64_t id;
	char edge[CHAT_EDGE_ID_MAX];
};

struct puser {
	char name[NAME_MAX_LEN];
	Chat__Status chosen;  /* sticky while the process lives */
	int64_t last_down_ms; /* the last SessionDown; 0 = never */
	struct psess *sess;
	size_t n, cap;
};

struct pres {
	pthread_mutex_t mu;
	chat_u64map users; /* user id -> struct puser */
	size_t n_sessions;

	chat_rpc_server *srv;
	chat_rpc_client *store, *disp;
	chat_workers *pub;
	int rpc_timeout_ms;
	atomic_int stopping;
	atomic_llong publishes, publish_failed, publish_skipped;
};

/* One visible change on its way to the dispatcher. */
struct pub_job {
	chat_job job;
	pres *p;
	uint64_t user_id;
	char name[NAME_MAX_LEN];
	Chat__Status status;
	int64_t last_seen_ms;
};

static Chat__Status visible(const struct puser *u)
{
	return u && u->n ? u->chosen : CHAT__STATUS__STATUS_OFFLINE;
}

static int64_t last_seen(const struct puser *u, int64_t now)
{
	if (visible(u) != CHAT__STATUS__STATUS_OFFLINE)
		return now;
	return u ? u->last_down_ms : 0;
}

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
		ev.n_channel_ids = ids->n_ids;
		ev.channel_ids = ids->ids;
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

/* Queue the publication of u's visible state. Called with the lock held,
 * so that changes are queued in the order they were made. */
static void publish_locked(pres *p, uint64_t user_id, const struct puser *u,
                           int64_t now)
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
	memcpy(j->name, u->name, sizeof j->name);
	j->status = visible(u);
	j->last_seen_ms = last_seen(u, now);
	if (chat_workers_submit(p->pub, &j->job) != 0) {
		atomic_fetch_add(&p->publish_skipped, 1);
		free(j);
	}
}

/* ---- state ------------------------------------------------------------- */

static struct puser *user_get(pres *p, uint64_t id, int create)
{
	struct puser *u = chat_u64map_get(&p->users, id);
	if (u || !create)
		return u;
	u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->chosen = CHAT__STATUS__STATUS_ONLINE;
	if (chat_u64map_put(&p->users, id, u) != 0) {
		free(u);
		return NULL;
	}
	return u;
}

static void user_set_name(struct puser *u, const char *name)
{
	if (name && name[0])
		chat_strlcpy(u->name, name, sizeof u->name);
}

static int valid_user_id(uint64_t id)
{
	return id != 0 && id != UINT64_MAX;
}

static void fill(chat_rpc_call *call, Chat__PresenceUpdate *out, uint64_t id,
                 const struct puser *u, int64_t now)
{
	out->user_id = id;
	out->user_name = chat_arena_strdup(call->arena, u ? u->name : "");
	out->status = visible(u);
	out->last_seen_ms = last_seen(u, now);
}

/* ---- RPC handlers ------------------------------------------------------ */

static int session_up(void *arg, chat_rpc_call *call)
{
	pres *p = arg;
	const Chat__SessionReq *in = (const Chat__SessionReq *)call->in;
	Chat__PresenceUpdate *out = (Chat__PresenceUpdate *)call->out;
	struct puser *u;
	Chat__Status before;
	int64_t now = chat_now_ms();
	size_t i;

	if (!valid_user_id(in->user_id) || !in->session_id)
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "user_id and session_id are required");
	pthread_mutex_lock(&p->mu);
	u = user_get(p, in->user_id, 1);
	if (!u) {
		pthread_mutex_unlock(&p->mu);
		return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
		                     "out of memory");
	}
	user_set_name(u, in->user_name);
	before = visible(u);
	for (i = 0; i < u->n && u->sess[i].id != in->session_id; i++)
		;
	if (i == u->n) {
		if (u->n == u->cap) {
			size_t cap = u->cap ? 2 * u->cap : 2;
			struct psess *s = realloc(u->sess, cap * sizeof *s);
			if (!s) {
				pthread_mutex_unlock(&p->mu);
				return chat_rpc_fail(call,
				                     CHAT_RESOURCE_EXHAUSTED,
				                     "out of memory");
			}
			u->sess = s;
			u->cap = cap;
		}
		u->sess[u->n].id = in->session_id;
		chat_strlcpy(u->sess[u->n].edge, in->edge_id ? in->edge_id : "",
		             sizeof u->sess[u->n].edge);
		u->n++;
		p->n_sessions++;
	}
	if (visible(u) != before)
		publish_locked(p, in->user_id, u, now);
	fill(call, out, in->user_id, u, now);
	pthread_mutex_unlock(&p->mu);
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
	Chat__PresenceUpdate *out = (Chat__PresenceUpdate *)call->out;
	struct puser *u;
	int64_t now = chat_now_ms();

	if (!valid_user_id(in->user_id))
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "user_id is required");
	pthread_mutex_lock(&p->mu);
	u = user_get(p, in->user_id, 0);
	if (u) {
		Chat__Status before = visible(u);
		user_set_name(u, in->user_name);
		for (size_t i = 0; i < u->n; i++) {
			if (u->sess[i].id != in->session_id)
				continue;
			u->sess[i] = u->sess[--u->n];
			p->n_sessions--;
			u->last_down_ms = now;
			break;
		}
		if (visible(u) != before)
			publish_locked(p, in->user_id, u, now);
	}
	fill(call, out, in->user_id, u, now);
	pthread_mutex_unlock(&p->mu);
	chat_debug(SVC, "session_down", "user_id=%llu session_id=%llu",
	           (unsigned long long)in->user_id,
	           (unsigned long long)in->session_id);
	return CHAT_OK;
}

static int set_status(void *arg, chat_rpc_call *call)
{
	pres *p = arg;
	const Chat__PresenceSetReq *in = (const Chat__PresenceSetReq *)call->in;
	Chat__PresenceUpdate *out = (Chat__PresenceUpdate *)call->out;
	struct puser *u;
	Chat__Status before;
	int64_t now = chat_now_ms();

	if (!valid_user_id(in->user_id))
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "user_id is required");
	/* proto3 enums are open: any number may arrive. */
	if ((int)in->status < CHAT__STATUS__STATUS_OFFLINE ||
	    (int)in->status > CHAT__STATUS__STATUS_BUSY)
		return chat_rpc_fail(call, CHAT_INVALID_ARGUMENT,
		                     "unknown status %d", (int)in->status);
	pthread_mutex_lock(&p->mu);
	u = user_get(p, in->user_id, 1);
	if (!u) {
		pthread_mutex_unlock(&p->mu);
		return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
		                     "out of memory");
	}
	user_set_name(u, in->user_name);
	before = visible(u);
	u->chosen = in->status;
	if (visible(u) != before)
		publish_locked(p, in->user_id, u, now);
	fill(call, out, in->user_id, u, now);
	pthread_mutex_unlock(&p->mu);
	return CHAT_OK;
}

static int query(void *arg, chat_rpc_call *call)
{
	pres *p = arg;
	const Chat__PresenceQuery *in = (const Chat__PresenceQuery *)call->in;
	Chat__PresenceList *out = (Chat__PresenceList *)call->out;
	int64_t now = chat_now_ms();

	if (!in->n_user_ids)
		return CHAT_OK;
	out->users = (Chat__PresenceUpdate **)chat_arena_ptrs(call->arena,
	                                                      in->n_user_ids);
	if (!out->users)
		return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
		                     "out of memory");
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < in->n_user_ids; i++) {
		uint64_t id = in->user_ids[i];
		Chat__PresenceUpdate *u =
		    (Chat__PresenceUpdate *)chat_arena_msg(
		        call->arena, &chat__presence_update__descriptor);
		if (!u) {
			pthread_mutex_unlock(&p->mu);
			return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
			                     "out of memory");
		}
		fill(call, u, id, valid_user_id(id) ? user_get(p, id, 0) : NULL,
		     now);
		out->users[out->n_users++] = u;
	}
	pthread_mutex_unlock(&p->mu);
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
	void **c = chat_arena_ptrs(a, 6);
	int64_t users, sessions;
	if (!c)
		return;
	pthread_mutex_lock(&p->mu);
	users = (int64_t)p->users.len;
	sessions = (int64_t)p->n_sessions;
	pthread_mutex_unlock(&p->mu);
	c[0] = counter(a, "users", users);
	c[1] = counter(a, "sessions", sessions);
	c[2] = counter(a, "publishes", atomic_load(&p->publishes));
	c[3] = counter(a, "publish_failed", atomic_load(&p->publish_failed));
	c[4] = counter(a, "publish_skipped", atomic_load(&p->publish_skipped));
	c[5] = counter(a, "publish_backlog",
	               (int64_t)chat_workers_backlog(p->pub));
	for (int i = 0; i < 6; i++)
		if (!c[i])
			return;
	*n = 6;
	*out = c;
}

/* ---- start / stop ------------------------------------------------------ */

int pres_start(const pres_config *cfg, pres **out, char *err, size_t errlen)
{
	pres *p;
	int port = 0;

	*out = NULL;
	if (!cfg->rpc_url || !cfg->rpc_url[0] || !cfg->store_url ||
	    !cfg->store_url[0] || !cfg->dispatcher_url ||
	    !cfg->dispatcher_url[0]) {
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
	chat_u64map_init(&p->users);
	p->rpc_timeout_ms =
	    cfg->rpc_timeout_ms > 0 ? cfg->rpc_timeout_ms : 2000;
	p->store = chat_rpc_client_new(cfg->store_url, err, errlen);
	if (!p->store)
		goto fail;
	p->disp = chat_rpc_client_new(cfg->dispatcher_url, err, errlen);
	if (!p->disp)
		goto fail;
	p->pub = chat_workers_new(1, "pres-publish");
	p->srv = chat_rpc_server_new("presence", cfg->instance, 4);
	if (!p->pub || !p->srv) {
		snprintf(err, errlen, "presence: out of memory");
		goto fail;
	}
	if (chat_rpc_server_add(p->srv, &chat__presence__descriptor,
	                        presence_fns, p) != 0) {
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
	chat_info(SVC, "started", "rpc=%s port=%d store=%s dispatcher=%s",
	          cfg->rpc_url, port, cfg->store_url, cfg->dispatcher_url);
	*out = p;
	return 0;
fail:
	pres_stop(p);
	return -1;
}

void pres_stop(pres *p)
{
	size_t it = 0;
	uint64_t k;
	void *v;
	if (!p)
		return;
	chat_rpc_server_free(p->srv); /* no handler runs after this */
	atomic_store(&p->stopping, 1);
	chat_workers_free(p->pub);    /* queued publishes are dropped */
	chat_rpc_client_free(p->store);
	chat_rpc_client_free(p->disp);
	while (chat_u64map_next(&p->users, &it, &k, &v)) {
		struct puser *u = v;
		free(u->sess);
		free(u);
	}
	chat_u64map_fini(&p->users);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
