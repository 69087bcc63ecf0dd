/* Creating a run's users and channels through the store's admin RPC
 * (chatd --admin-url), many calls in flight from a few threads. Every user
 * gets the same password, hashed once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_setup.h"
#include "chat_arena.h"
#include "chat_auth.h"
#include "chat_rpc.h"
#include "chat_status.h"
#include "store.pb-c.h"

#define SETUP_THREADS      8
#define SETUP_TIMEOUT_MS   30000
#define MEMBERS_PER_CREATE 99 /* the store takes 100 names at most */

struct job;
typedef int (*item_fn)(struct job *j, chat_arena *a, uint32_t i, char *why,
                       size_t whylen);

struct job {
	bench_setup *s;
	item_fn fn;
	uint32_t count;
	atomic_uint next;
	atomic_int failed;
	pthread_mutex_t mu;
	char why[256];
	/* channels: the stable members of each, flattened */
	uint32_t *moff, *mem;
};

static void *job_thread(void *arg)
{
	struct job *j = arg;
	chat_arena *a = chat_arena_new();
	char why[256];

	if (!a) {
		atomic_store(&j->failed, 1);
		return NULL;
	}
	for (;;) {
		uint32_t i = atomic_fetch_add(&j->next, 1);
		if (i >= j->count || atomic_load(&j->failed))
			break;
		chat_arena_reset(a);
		why[0] = '\0';
		if (j->fn(j, a, i, why, sizeof why) != 0) {
			pthread_mutex_lock(&j->mu);
			if (!atomic_load(&j->failed))
				snprintf(j->why, sizeof j->why, "%s", why);
			atomic_store(&j->failed, 1);
			pthread_mutex_unlock(&j->mu);
			break;
		}
	}
	chat_arena_free(a);
	return NULL;
}

/* Run fn(0..count-1) on SETUP_THREADS threads; the first failure stops
 * the rest. Returns 0 or -1 with a reason. */
static int run_parallel(struct job *j, item_fn fn, uint32_t count, char *err,
                        size_t errlen)
{
	pthread_t th[SETUP_THREADS];
	int nth = 0;

	j->fn = fn;
	j->count = count;
	atomic_store(&j->next, 0);
	atomic_store(&j->failed, 0);
	j->why[0] = '\0';
	for (int t = 0; t < SETUP_THREADS && (uint32_t)t < count; t++) {
		if (pthread_create(&th[nth], NULL, job_thread, j) != 0)
			break;
		nth++;
	}
	if (count && !nth) {
		snprintf(err, errlen, "cannot start setup threads");
		return -1;
	}
	for (int t = 0; t < nth; t++)
		pthread_join(th[t], NULL);
	if (atomic_load(&j->failed)) {
		snprintf(err, errlen, "%s",
		         j->why[0] ? j->why : "setup failed");
		return -1;
	}
	return 0;
}

static int call(bench_setup *s, const char *method, const ProtobufCMessage *in,
                chat_arena *a, ProtobufCMessage **out, char *why, size_t whylen)
{
	char reason[200];
	int st =
	    chat_rpc_invoke(s->rpc, &chat__store__descriptor, method, in, a,
	                    out, SETUP_TIMEOUT_MS, reason, sizeof reason);
	if (st != CHAT_OK) {
		snprintf(why, whylen, "Store.%s: %s: %s", method,
		         chat_strerror(st), reason);
		return -1;
	}
	return 0;
}

/* ---- users ---- */

static int create_user(struct job *j, chat_arena *a, uint32_t i, char *why,
                       size_t whylen)
{
	bench_setup *s = j->s;
	int churn = i >= s->topo->n;
	uint32_t k = churn ? i - s->topo->n : i;
	Chat__CreateUserReq rq = CHAT__CREATE_USER_REQ__INIT;
	ProtobufCMessage *out = NULL;
	char name[BENCH_NAME_MAX + 1];

	bench_user_name(name, s->prefix, churn, k);
	rq.name = name;
	rq.pass_hash = s->hash;
	if (call(s, "CreateUser", &rq.base, a, &out, why, whylen) != 0)
		return -1;
	(churn ? s->cuid : s->uid)[k] = ((Chat__User *)out)->id;
	return 0;
}

/* ---- channels ---- */

static int open_dm(struct job *j, chat_arena *a, uint32_t c, char *why,
                   size_t whylen)
{
	bench_setup *s = j->s;
	Chat__StoreOpenDmReq rq = CHAT__STORE_OPEN_DM_REQ__INIT;
	ProtobufCMessage *out = NULL;
	char peer[BENCH_NAME_MAX + 1];

	bench_user_name(peer, s->prefix, 0, 2 * c + 1);
	rq.user_id = s->uid[2 * c];
	rq.peer_name = peer;
	if (call(s, "OpenDm", &rq.base, a, &out, why, whylen) != 0)
		return -1;
	s->chan_id[c] = ((Chat__ChannelInfo *)out)->id;
	return 0;
}

/* A group channel with its first 100 members (the creator and 99). */
static int create_group(struct job *j, chat_arena *a, uint32_t c, char *why,
                        size_t whylen)
{
	bench_setup *s = j->s;
	Chat__StoreCreateChannelReq rq = CHAT__STORE_CREATE_CHANNEL_REQ__INIT;
	ProtobufCMessage *out = NULL;
	uint32_t *m = j->mem + j->moff[c];
	uint32_t nm = j->moff[c + 1] - j->moff[c];
	char name[64];

	if (!nm) {
		snprintf(why, whylen, "channel %u has no members", c);
		return -1;
	}
	rq.user_id = s->uid[m[0]];
	snprintf(name, sizeof name, "%s_g%u", s->prefix, c);
	rq.name = name;
	rq.n_members =
	    nm - 1 < MEMBERS_PER_CREATE ? nm - 1 : MEMBERS_PER_CREATE;
	rq.members = (char **)chat_arena_ptrs(a, rq.n_members + 1);
	if (!rq.members) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (size_t k = 0; k < rq.n_members; k++) {
		char nb[BENCH_NAME_MAX + 1];
		bench_user_name(nb, s->prefix, 0, m[k + 1]);
		rq.members[k] = chat_arena_strdup(a, nb);
		if (!rq.members[k]) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
	}
	if (call(s, "CreateChannel", &rq.base, a, &out, why, whylen) != 0)
		return -1;
	s->chan_id[c] = ((Chat__ChannelInfo *)out)->id;
	return 0;
}

static int join(bench_setup *s, chat_arena *a, uint64_t user, uint64_t channel,
                char *why, size_t whylen)
{
	Chat__MembershipReq rq = CHAT__MEMBERSHIP_REQ__INIT;
	ProtobufCMessage *out = NULL;

	rq.user_id = user;
	rq.channel_id = channel;
	return call(s, "Join", &rq.base, a, &out, why, whylen);
}

/* D: members beyond the first 100 join one by one. */
static int join_big(struct job *j, chat_arena *a, uint32_t i, char *why,
                    size_t whylen)
{
	bench_setup *s = j->s;
	return join(s, a, s->uid[MEMBERS_PER_CREATE + 1 + i], s->chan_id[0],
	            why, whylen);
}

static int join_churner(struct job *j, chat_arena *a, uint32_t k, char *why,
                        size_t whylen)
{
	bench_setup *s = j->s;
	uint32_t ch[2];
	int n = bench_topo_churn_chans(s->topo, k, ch);

	for (int x = 0; x < n; x++)
		if (join(s, a, s->cuid[k], s->chan_id[ch[x]], why, whylen) != 0)
			return -1;
	return 0;
}

/* The stable members of every channel, in connection order. */
static int member_lists(struct job *j, const bench_topo *t)
{
	uint32_t ch[2];

	j->moff = calloc((size_t)t->nchan + 1, sizeof *j->moff);
	if (!j->moff)
		return -1;
	for (uint32_t i = 0; i < t->n; i++) {
		int n = bench_topo_chans(t, i, ch);
		for (int x = 0; x < n; x++)
			j->moff[ch[x] + 1]++;
	}
	for (uint32_t c = 0; c < t->nchan; c++)
		j->moff[c + 1] += j->moff[c];
	j->mem = malloc(((size_t)j->moff[t->nchan] + 1) * sizeof *j->mem);
	if (!j->mem)
		return -1;
	{
		uint32_t *fill = calloc((size_t)t->nchan + 1, sizeof *fill);
		if (!fill)
			return -1;
		for (uint32_t i = 0; i < t->n; i++) {
			int n = bench_topo_chans(t, i, ch);
			for (int x = 0; x < n; x++)
				j->mem[j->moff[ch[x]] + fill[ch[x]]++] = i;
		}
		free(fill);
	}
	return 0;
}

int bench_setup_run(bench_setup *s, char *err, size_t errlen)
{
	struct job j;
	const bench_topo *t = s->topo;
	int rc = -1;

	memset(&j, 0, sizeof j);
	j.s = s;
	pthread_mutex_init(&j.mu, NULL);
	if (chat_password_hash("bench-password", s->hash) != 0) {
		snprintf(err, errlen, "cannot hash the bench password");
		goto out;
	}
	if (run_parallel(&j, create_user, t->n + t->nchurn, err, errlen) != 0)
		goto out;
	switch (t->scenario) {
	case 'B':
		if (run_parallel(&j, open_dm, t->nchan, err, errlen) != 0)
			goto out;
		break;
	case 'C':
	case 'D':
	case 'E':
		if (member_lists(&j, t) != 0) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		if (run_parallel(&j, create_group, t->nchan, err, errlen) != 0)
			goto out;
		if (t->scenario == 'D' && t->n > MEMBERS_PER_CREATE + 1 &&
		    run_parallel(&j, join_big, t->n - MEMBERS_PER_CREATE - 1,
		                 err, errlen) != 0)
			goto out;
		if (t->nchurn &&
		    run_parallel(&j, join_churner, t->nchurn, err, errlen) != 0)
			goto out;
		break;
	default:
		break;
	}
	rc = 0;
out:
	free(j.moff);
	free(j.mem);
	pthread_mutex_destroy(&j.mu);
	return rc;
}
