/* chatctl's RPC fan-out: one thread, one client and one arena per
 * instance, every call bounded by --timeout-ms, so that a dead instance
 * costs one timeout however many there are. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chat_status.h"
#include "chat_util.h"
#include "ctl.h"
#include "edge.pb-c.h"

/* Threads at once; more instances wait for a slot. */
#define FANOUT_MAX 64

void ctl_insts_free(ctl_inst *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		chat_arena_free(v[i].arena);
	free(v);
}

static void fail_inst(ctl_inst *in, int status, const char *reason)
{
	in->called = 1;
	in->status = status;
	chat_strlcpy(in->reason, reason, sizeof in->reason);
}

void ctl_call_health(ctl_inst *in, chat_rpc_client *c, const ctl_args *a)
{
	Chat__Empty req = CHAT__EMPTY__INIT;
	Chat__HealthReply *rep = NULL;

	in->called = 1;
	in->status =
	    chat_rpc_invoke(c, &chat__admin__descriptor, "Health", &req.base,
	                    in->arena, (ProtobufCMessage **)&rep, a->timeout_ms,
	                    in->reason, sizeof in->reason);
	if (in->status != CHAT_OK)
		return;
	/* The instance's own word wins over its znode's (or over nothing,
	 * for --rpc). */
	if (rep->service && rep->service[0])
		chat_strlcpy(in->service, rep->service, sizeof in->service);
	if (!in->id[0] && rep->instance)
		chat_strlcpy(in->id, rep->instance, sizeof in->id);
	if (rep->version && rep->version[0])
		chat_strlcpy(in->version, rep->version, sizeof in->version);
	in->uptime_ms = rep->uptime_ms;
	in->n_counters = rep->n_counters;
	in->counters = rep->counters;
	/* A counter without a name would be a JSON member without one. */
	for (size_t i = 0; i < in->n_counters; i++)
		if (!in->counters[i]->name || !in->counters[i]->name[0])
			in->counters[i]->name = (char *)"?";
}

void ctl_call_kick(ctl_inst *in, chat_rpc_client *c, const ctl_args *a)
{
	Chat__KickReq req = CHAT__KICK_REQ__INIT;
	Chat__KickReply *rep = NULL;

	req.user_id = a->user_id;
	req.reason = (char *)a->reason;
	in->called = 1;
	in->status =
	    chat_rpc_invoke(c, &chat__edge__descriptor, "Kick", &req.base,
	                    in->arena, (ProtobufCMessage **)&rep, a->timeout_ms,
	                    in->reason, sizeof in->reason);
	if (in->status == CHAT_OK)
		in->sessions = rep->sessions;
}

void ctl_call_drain(ctl_inst *in, chat_rpc_client *c, const ctl_args *a)
{
	Chat__DrainReq req = CHAT__DRAIN_REQ__INIT;
	Chat__DrainReply *rep = NULL;

	req.reason = (char *)a->reason;
	req.per_second = a->per_second;
	in->called = 1;
	in->status =
	    chat_rpc_invoke(c, &chat__edge__descriptor, "Drain", &req.base,
	                    in->arena, (ProtobufCMessage **)&rep, a->timeout_ms,
	                    in->reason, sizeof in->reason);
	if (in->status == CHAT_OK)
		in->sessions = rep->sessions;
	else if (in->status == CHAT_UNIMPLEMENTED)
		snprintf(in->reason, sizeof in->reason,
		         "this edge does not implement Edge.Drain (an older "
		         "chat-edge?)");
}

struct job {
	ctl_inst *in;
	chat_rpc_client *c;
	ctl_call_fn fn;
	const ctl_args *a;
	pthread_t th;
	int started;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	j->fn(j->in, j->c, j->a);
	return NULL;
}

/* Start the call of one instance: 0, or -1 (the instance is marked). */
static int job_start(struct job *j)
{
	char err[256];
	if (!j->in->arena && !(j->in->arena = chat_arena_new())) {
		fail_inst(j->in, CHAT_RESOURCE_EXHAUSTED, "out of memory");
		return -1;
	}
	if (!(j->c = chat_rpc_client_new(j->in->rpc, err, sizeof err))) {
		fail_inst(j->in, CHAT_INVALID_ARGUMENT, err);
		return 0; /* a bad URL fails this instance only */
	}
	if (pthread_create(&j->th, NULL, job_main, j) != 0) {
		fail_inst(j->in, CHAT_RESOURCE_EXHAUSTED,
		          "cannot start a thread");
		chat_rpc_client_free(j->c);
		j->c = NULL;
		return -1;
	}
	j->started = 1;
	return 0;
}

static void job_finish(struct job *j)
{
	if (j->started)
		pthread_join(j->th, NULL);
	chat_rpc_client_free(j->c);
	j->c = NULL;
	j->started = 0;
}

int ctl_call_all(ctl_inst *v, size_t n, ctl_call_fn fn, const ctl_args *a)
{
	struct job jobs[FANOUT_MAX];
	int rv = 0;

	for (size_t base = 0; base < n; base += FANOUT_MAX) {
		size_t k = n - base < FANOUT_MAX ? n - base : FANOUT_MAX;
		memset(jobs, 0, sizeof jobs);
		for (size_t i = 0; i < k; i++) {
			jobs[i].in = &v[base + i];
			jobs[i].fn = fn;
			jobs[i].a = a;
			if (job_start(&jobs[i]))
				rv = -1;
		}
		for (size_t i = 0; i < k; i++)
			job_finish(&jobs[i]);
	}
	return rv;
}
