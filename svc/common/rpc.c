#include "chat_rpc.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_log.h"
#include "chat_util.h"
#include "rpc.pb-c.h"

#define MAX_SERVICES 8

struct service {
	const ProtobufCServiceDescriptor *d;
	const chat_rpc_fn *fns;
	size_t n_fns;
	void *arg;
};

/* One handler thread with its own nng context. */
struct worker {
	chat_rpc_server *s;
	pthread_t thread;
	nng_ctx ctx;
	nng_aio *aio;
	chat_arena *arena;
	int running;
	atomic_int done; /* the thread left its loop */
};

struct chat_rpc_server {
	nng_socket sock;
	char svc[32];
	char instance[64];
	int nthreads, started;
	struct worker *workers;
	struct service services[MAX_SERVICES];
	int nservices;
	chat_rpc_health_fn health;
	void *health_arg;
	int64_t started_ms;
	atomic_uint_fast64_t calls, errors;
	atomic_int closing;
};

int chat_rpc_fail(chat_rpc_call *call, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(call->reason, sizeof call->reason, fmt, ap);
	va_end(ap);
	return status;
}

static int health(void *arg, chat_rpc_call *call)
{
	chat_rpc_server *s = arg;
	Chat__HealthReply *r = (Chat__HealthReply *)call->out;
	r->service = s->svc;
	r->instance = s->instance;
	r->version = (char *)CHAT_VERSION;
	r->uptime_ms = chat_now_ms() - s->started_ms;
	if (s->health)
		s->health(s->health_arg, call->arena, &r->n_counters,
		          (void ***)&r->counters);
	return CHAT_OK;
}

static const chat_rpc_fn admin_fns[] = {health};

chat_rpc_server *chat_rpc_server_new(const char *svc, const char *instance,
                                     int nthreads)
{
	chat_rpc_server *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	if (nng_rep0_open(&s->sock) != 0) {
		free(s);
		return NULL;
	}
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, CHAT_RPC_MAX_MSG);
	chat_strlcpy(s->svc, svc, sizeof s->svc);
	chat_strlcpy(s->instance, instance ? instance : svc, sizeof s->instance);
	s->nthreads = nthreads < 1 ? 1 : nthreads;
	s->started_ms = chat_now_ms();
	chat_rpc_server_add(s, &chat__admin__descriptor, CHAT_RPC_TABLE(admin_fns), s);
	return s;
}

int chat_rpc_server_add(chat_rpc_server *s, const ProtobufCServiceDescriptor *d,
                        const chat_rpc_fn *fns, size_t n_fns, void *arg)
{
	if (s->nservices == MAX_SERVICES || s->started)
		return -1;
	s->services[s->nservices].d = d;
	s->services[s->nservices].fns = fns;
	s->services[s->nservices].n_fns = n_fns;
	s->services[s->nservices].arg = arg;
	s->nservices++;
	return 0;
}

void chat_rpc_server_set_health(chat_rpc_server *s, chat_rpc_health_fn fn,
                                void *arg)
{
	s->health = fn;
	s->health_arg = arg;
}

int chat_rpc_server_listen(chat_rpc_server *s, const char *url, int *port,
                           char *err, size_t errlen)
{
	nng_listener l;
	int rv = nng_listen(s->sock, url, &l, 0);
	if (rv != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", url,
		         nng_strerror(rv));
		return -1;
	}
	if (port) {
		int p = 0;
		if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &p) != 0)
			p = 0;
		*port = p;
	}
	return 0;
}

void *chat_rpc_server_handle(chat_rpc_server *s, chat_arena *a, const void *data,
                    size_t len, size_t *outlen)
{
	Chat__RpcRequest *req;
	Chat__RpcReply rep = CHAT__RPC_REPLY__INIT;
	const struct service *svc = NULL;
	const ProtobufCMethodDescriptor *m = NULL;
	chat_rpc_call call;
	int st;

	memset(&call, 0, sizeof call);
	call.arena = a;
	req = (Chat__RpcRequest *)chat_arena_unpack(a, &chat__rpc_request__descriptor,
	                                            data, len);
	if (!req) {
		st = chat_rpc_fail(&call, CHAT_INVALID_ARGUMENT,
		                   "malformed RPC envelope");
		goto reply;
	}
	rep.call_id = req->call_id;
	for (int i = 0; i < s->nservices; i++)
		if (strcmp(s->services[i].d->name, req->service) == 0)
			svc = &s->services[i];
	if (!svc) {
		st = chat_rpc_fail(&call, CHAT_UNIMPLEMENTED, "no service %s",
		                   req->service);
		goto reply;
	}
	m = protobuf_c_service_descriptor_get_method_by_name(svc->d, req->method);
	if (!m || (size_t)(m - svc->d->methods) >= svc->n_fns ||
	    !svc->fns[m - svc->d->methods]) {
		st = chat_rpc_fail(&call, CHAT_UNIMPLEMENTED, "no method %s.%s",
		                   req->service, req->method);
		goto reply;
	}
	call.deadline_ms = req->deadline_ms;
	if (call.deadline_ms && chat_now_ms() > call.deadline_ms) {
		st = chat_rpc_fail(&call, CHAT_DEADLINE_EXCEEDED,
		                   "deadline passed before %s ran", req->method);
		goto reply;
	}
	call.in = chat_arena_unpack(a, m->input, req->body.data, req->body.len);
	if (!call.in) {
		st = chat_rpc_fail(&call, CHAT_INVALID_ARGUMENT,
		                   "malformed %s input", req->method);
		goto reply;
	}
	call.out = chat_arena_msg(a, m->output);
	if (!call.out) {
		st = chat_rpc_fail(&call, CHAT_RESOURCE_EXHAUSTED, "out of memory");
		goto reply;
	}
	st = svc->fns[m - svc->d->methods](svc->arg, &call);
	if (st == CHAT_OK) {
		rep.body.data = chat_arena_pack(a, call.out, &rep.body.len);
		if (!rep.body.data)
			st = chat_rpc_fail(&call, CHAT_RESOURCE_EXHAUSTED,
			                   "out of memory");
		else if (rep.body.len > CHAT_RPC_MAX_MSG - 1024)
			st = chat_rpc_fail(&call, CHAT_RESOURCE_EXHAUSTED,
			                   "reply of %zu bytes is too large",
			                   rep.body.len);
	}
reply:
	atomic_fetch_add(&s->calls, 1);
	if (st != CHAT_OK) {
		atomic_fetch_add(&s->errors, 1);
		rep.body.data = NULL;
		rep.body.len = 0;
		rep.message = call.reason[0] ? call.reason : (char *)chat_strerror(st);
		chat_debug(s->svc, "rpc_error", "method=%s code=%s reason=\"%s\"",
		           m ? m->name : "?", chat_strerror(st), rep.message);
	}
	rep.code = (Chat__Code)st;
	return chat_arena_pack(a, &rep.base, outlen);
}

static void *server_thread(void *arg)
{
	struct worker *w = arg;
	chat_rpc_server *s = w->s;
	nng_ctx ctx = w->ctx;
	nng_aio *aio = w->aio;
	chat_arena *a = w->arena;

	for (;;) {
		nng_msg *msg;
		void *rep;
		size_t replen = 0;
		int rv;

		if (atomic_load(&s->closing))
			break;
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		rv = nng_aio_result(aio);
		if (rv == NNG_ECLOSED || (rv != 0 && atomic_load(&s->closing)))
			break;
		if (rv != 0)
			continue;
		msg = nng_aio_get_msg(aio);
		rep = chat_rpc_server_handle(s, a, nng_msg_body(msg), nng_msg_len(msg), &replen);
		nng_msg_clear(msg);
		if (!rep || nng_msg_append(msg, rep, replen) != 0) {
			nng_msg_free(msg);
			chat_arena_reset(a);
			continue;
		}
		nng_aio_set_msg(aio, msg);
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0)
			nng_msg_free(msg);
		chat_arena_reset(a);
	}
	atomic_store(&w->done, 1);
	return NULL;
}

int chat_rpc_server_start(chat_rpc_server *s)
{
	/* Contexts and aios are made here, before any thread runs: with nng
	 * 1.5.2, nng_ctx_open on a new thread racing nng_close could hang a
	 * server freed right after it started. */
	s->workers = calloc((size_t)s->nthreads, sizeof *s->workers);
	if (!s->workers)
		return -1;
	s->started = 1;
	for (int i = 0; i < s->nthreads; i++) {
		struct worker *w = &s->workers[i];
		w->s = s;
		w->arena = chat_arena_new();
		if (!w->arena || nng_ctx_open(&w->ctx, s->sock) != 0 ||
		    nng_aio_alloc(&w->aio, NULL, NULL) != 0)
			return -1;
	}
	for (int i = 0; i < s->nthreads; i++) {
		struct worker *w = &s->workers[i];
		if (pthread_create(&w->thread, NULL, server_thread, w) != 0)
			return -1;
		w->running = 1;
	}
	return 0;
}

uint64_t chat_rpc_server_calls(chat_rpc_server *s)
{
	return atomic_load(&s->calls);
}

void chat_rpc_server_free(chat_rpc_server *s)
{
	if (!s)
		return;
	/* Stop the handler threads before closing the socket: with nng
	 * 1.5.2, nng_close racing a thread inside nng_ctx_send can free the
	 * context under it (a "pthread_mutex_lock: Invalid argument" panic).
	 * Each thread leaves its loop once its pending receive or send is
	 * cancelled (or before its next receive); cancel until all are out.
	 * (nng_aio_stop instead can hang the later nng_close.) */
	atomic_store(&s->closing, 1);
	for (;;) {
		int left = 0;
		for (int i = 0; s->workers && i < s->nthreads; i++) {
			struct worker *w = &s->workers[i];
			if (w->running && !atomic_load(&w->done)) {
				nng_aio_cancel(w->aio);
				left++;
			}
		}
		if (!left)
			break;
		usleep(2000);
	}
	for (int i = 0; s->workers && i < s->nthreads; i++)
		if (s->workers[i].running)
			pthread_join(s->workers[i].thread, NULL);
	nng_close(s->sock);
	for (int i = 0; s->workers && i < s->nthreads; i++) {
		struct worker *w = &s->workers[i];
		nng_aio_free(w->aio);
		chat_arena_free(w->arena);
	}
	free(s->workers);
	free(s);
}

struct dial {
	char url[256];
	nng_dialer dialer;
};

/* A client is either in single mode (made with one url, never given a set:
 * calls wait for a connection until their timeout, as always) or in set
 * mode (see chat_rpc_client_set_urls). */
struct chat_rpc_client {
	nng_socket sock;
	int sock_id;
	atomic_uint_fast64_t next_id;
	chat_rpc_client *reg_next; /* in the pipe-event registry */

	pthread_mutex_t set_mu; /* serialises set_urls */
	pthread_mutex_t mu;     /* what follows */
	pthread_cond_t cv;      /* a pipe came up */
	char url[256];          /* for messages: the url, or a summary */
	struct dial *dials;
	size_t n_dials;
	int multi;
	int64_t grace_until_ms; /* mono: calls wait for a first pipe */
	uint32_t *pipes;        /* ids of the connected pipes */
	size_t n_pipes, cap_pipes;
};

/* Pipe events arrive on nng threads, possibly while a client is being
 * freed: the callback finds its client through this registry, and a client
 * leaves it before it is freed. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static chat_rpc_client *registry;

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	int sid = nng_socket_id(nng_pipe_socket(p));
	uint32_t pid = (uint32_t)nng_pipe_id(p);
	chat_rpc_client *c;
	(void)arg;
	pthread_mutex_lock(&registry_mu);
	for (c = registry; c && c->sock_id != sid; c = c->reg_next)
		;
	if (c) {
		size_t i;
		pthread_mutex_lock(&c->mu);
		for (i = 0; i < c->n_pipes && c->pipes[i] != pid; i++)
			;
		if (ev == NNG_PIPE_EV_ADD_POST && i == c->n_pipes) {
			if (c->n_pipes == c->cap_pipes) {
				size_t cap =
				    c->cap_pipes ? 2 * c->cap_pipes : 4;
				uint32_t *np = realloc(c->pipes,
				                       cap * sizeof *np);
				if (np) {
					c->pipes = np;
					c->cap_pipes = cap;
				}
			}
			/* Without memory the pipe goes uncounted: calls
			 * may then fail early, never hang. */
			if (c->n_pipes < c->cap_pipes)
				c->pipes[c->n_pipes++] = pid;
			pthread_cond_broadcast(&c->cv);
		} else if (ev == NNG_PIPE_EV_REM_POST && i < c->n_pipes) {
			c->pipes[i] = c->pipes[--c->n_pipes];
		}
		pthread_mutex_unlock(&c->mu);
	}
	pthread_mutex_unlock(&registry_mu);
}

/* The url summary for messages (under mu). */
static void describe_locked(chat_rpc_client *c)
{
	if (c->n_dials == 0)
		snprintf(c->url, sizeof c->url, "(no url)");
	else if (c->n_dials == 1)
		chat_strlcpy(c->url, c->dials[0].url, sizeof c->url);
	else
		snprintf(c->url, sizeof c->url, "%.200s (+%zu)",
		         c->dials[0].url, c->n_dials - 1);
}

chat_rpc_client *chat_rpc_client_new(const char *url, char *err, size_t errlen)
{
	chat_rpc_client *c = calloc(1, sizeof *c);
	pthread_condattr_t ca;
	int rv;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (url && strlen(url) >= sizeof c->url) {
		snprintf(err, errlen, "url too long");
		free(c);
		return NULL;
	}
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		snprintf(err, errlen, "nng_req0_open: %s", nng_strerror(rv));
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->set_mu, NULL);
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	c->sock_id = nng_socket_id(c->sock);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, CHAT_RPC_MAX_MSG);
	/* Never resend on our own: a resent non-idempotent call could run
	 * twice. Callers have deadlines and retry with request ids. */
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 1000);
	pthread_mutex_lock(&registry_mu);
	c->reg_next = registry;
	registry = c;
	pthread_mutex_unlock(&registry_mu);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_event, NULL);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_event, NULL);
	atomic_init(&c->next_id, chat_random_u64() >> 16);
	if (!url || !url[0]) {
		c->multi = 1;
		describe_locked(c);
		return c;
	}
	if (!(c->dials = calloc(1, sizeof *c->dials))) {
		snprintf(err, errlen, "out of memory");
		chat_rpc_client_free(c);
		return NULL;
	}
	if ((rv = nng_dial(c->sock, url, &c->dials[0].dialer,
	                   NNG_FLAG_NONBLOCK)) != 0) {
		snprintf(err, errlen, "cannot dial %s: %s", url, nng_strerror(rv));
		chat_rpc_client_free(c);
		return NULL;
	}
	chat_strlcpy(c->dials[0].url, url, sizeof c->dials[0].url);
	c->n_dials = 1;
	describe_locked(c);
	return c;
}

static int in_list(const char *url, const char *const *urls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (urls[i] && strcmp(urls[i], url) == 0)
			return 1;
	return 0;
}

int chat_rpc_client_set_urls(chat_rpc_client *c, const char *const *urls,
                             size_t n)
{
	struct dial *keep;
	size_t nk = 0, i;
	int rv = 0, added = 0;

	pthread_mutex_lock(&c->set_mu);
	keep = calloc(c->n_dials + n + 1, sizeof *keep);
	if (!keep) {
		pthread_mutex_unlock(&c->set_mu);
		return -1;
	}
	/* The dial list changes only here, under set_mu: read it freely,
	 * and call nng (which may run pipe callbacks) without mu. */
	for (i = 0; i < c->n_dials; i++) {
		if (in_list(c->dials[i].url, urls, n))
			keep[nk++] = c->dials[i];
		else
			nng_dialer_close(c->dials[i].dialer);
	}
	for (i = 0; i < n; i++) {
		int have = 0, e;
		if (!urls[i] || !urls[i][0])
			continue;
		for (size_t k = 0; k < nk && !have; k++)
			have = strcmp(keep[k].url, urls[i]) == 0;
		if (have)
			continue;
		if (strlen(urls[i]) >= sizeof keep[nk].url) {
			rv = -1;
			continue;
		}
		e = nng_dial(c->sock, urls[i], &keep[nk].dialer,
		             NNG_FLAG_NONBLOCK);
		if (e != 0) {
			chat_warn("rpc", "dial_failed", "url=%s reason=\"%s\"",
			          urls[i], nng_strerror(e));
			rv = -1;
			continue;
		}
		chat_strlcpy(keep[nk].url, urls[i], sizeof keep[nk].url);
		nk++;
		added++;
	}
	pthread_mutex_lock(&c->mu);
	free(c->dials);
	c->dials = keep;
	c->n_dials = nk;
	c->multi = 1;
	if (added)
		c->grace_until_ms = chat_mono_ms() + CHAT_RPC_CONNECT_GRACE_MS;
	describe_locked(c);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->set_mu);
	return rv;
}

void chat_rpc_client_state(chat_rpc_client *c, size_t *n_urls,
                           size_t *n_connected)
{
	pthread_mutex_lock(&c->mu);
	if (n_urls)
		*n_urls = c->n_dials;
	if (n_connected)
		*n_connected = c->n_pipes;
	pthread_mutex_unlock(&c->mu);
}

/* Set mode: wait (within deadline, and the grace after a URL was added)
 * for a connection. Returns 0 when one is up, or -1; copies the url
 * summary into desc either way. */
static int await_pipe(chat_rpc_client *c, int64_t deadline_ms, char *desc,
                      size_t desclen, int *no_urls)
{
	int rv = 0;
	pthread_mutex_lock(&c->mu);
	*no_urls = c->multi && c->n_dials == 0;
	while (c->multi && c->n_dials && !c->n_pipes) {
		int64_t now = chat_mono_ms();
		int64_t until = c->grace_until_ms;
		struct timespec ts;
		if (deadline_ms && deadline_ms < until)
			until = deadline_ms;
		if (now >= until) {
			rv = -1;
			break;
		}
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000L;
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	if (*no_urls)
		rv = -1;
	chat_strlcpy(desc, c->url, desclen);
	pthread_mutex_unlock(&c->mu);
	return rv;
}

static int set_reason(char *reason, size_t len, int st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_reason(char *reason, size_t len, int st, const char *fmt, ...)
{
	if (reason && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(reason, len, fmt, ap);
		va_end(ap);
	}
	return st;
}

int chat_rpc_invoke(chat_rpc_client *c, const ProtobufCServiceDescriptor *d,
                    const char *method, const ProtobufCMessage *in,
                    chat_arena *arena, ProtobufCMessage **out, int timeout_ms,
                    char *reason, size_t reasonlen)
{
	const ProtobufCMethodDescriptor *m;
	Chat__RpcRequest req = CHAT__RPC_REQUEST__INIT;
	Chat__RpcReply *rep;
	nng_ctx ctx;
	nng_aio *aio = NULL;
	nng_msg *msg = NULL;
	size_t blen = 0, elen;
	uint8_t *body = NULL, *env = NULL;
	char desc[256];
	int64_t t0 = chat_mono_ms();
	int rv, st, no_urls = 0;

	if (reason && reasonlen)
		reason[0] = '\0';
	m = protobuf_c_service_descriptor_get_method_by_name(d, method);
	if (!m || in->descriptor != m->input)
		return set_reason(reason, reasonlen, CHAT_INTERNAL,
		                  "bad call to %s.%s", d->name, method);
	if (await_pipe(c, timeout_ms > 0 ? t0 + timeout_ms : 0, desc,
	               sizeof desc, &no_urls) != 0)
		return set_reason(reason, reasonlen, CHAT_UNAVAILABLE,
		                  no_urls ? "%s.%s: no server to call (%s)"
		                          : "%s.%s: none of %s is connected",
		                  d->name, method, desc);
	if (timeout_ms > 0) { /* what the wait left */
		int64_t left = t0 + timeout_ms - chat_mono_ms();
		timeout_ms = left < 1 ? 1 : (int)left;
	}
	blen = protobuf_c_message_get_packed_size(in);
	body = malloc(blen ? blen : 1);
	if (!body)
		return set_reason(reason, reasonlen, CHAT_RESOURCE_EXHAUSTED,
		                  "out of memory");
	protobuf_c_message_pack(in, body);
	req.service = (char *)d->name;
	req.method = (char *)method;
	req.body.data = body;
	req.body.len = blen;
	req.deadline_ms = timeout_ms > 0 ? chat_now_ms() + timeout_ms : 0;
	req.call_id = atomic_fetch_add(&c->next_id, 1);
	elen = protobuf_c_message_get_packed_size(&req.base);
	if (nng_msg_alloc(&msg, elen) != 0) {
		free(body);
		return set_reason(reason, reasonlen, CHAT_RESOURCE_EXHAUSTED,
		                  "out of memory");
	}
	env = nng_msg_body(msg);
	protobuf_c_message_pack(&req.base, env);
	free(body);

	if ((rv = nng_ctx_open(&ctx, c->sock)) != 0) {
		nng_msg_free(msg);
		return set_reason(reason, reasonlen, CHAT_UNAVAILABLE,
		                  "%s: %s", desc, nng_strerror(rv));
	}
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		nng_msg_free(msg);
		nng_ctx_close(ctx);
		return set_reason(reason, reasonlen, CHAT_RESOURCE_EXHAUSTED,
		                  "out of memory");
	}
	nng_aio_set_timeout(aio, timeout_ms > 0 ? timeout_ms : NNG_DURATION_INFINITE);
	nng_aio_set_msg(aio, msg);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		nng_msg_free(msg);
		st = set_reason(reason, reasonlen, CHAT_UNAVAILABLE,
		                "%s.%s to %s not sent: %s", d->name, method,
		                desc, nng_strerror(rv));
		goto done;
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		st = set_reason(reason, reasonlen,
		                rv == NNG_ETIMEDOUT ? CHAT_DEADLINE_EXCEEDED
		                                    : CHAT_UNAVAILABLE,
		                "%s.%s to %s: %s", d->name, method, desc,
		                nng_strerror(rv));
		goto done;
	}
	msg = nng_aio_get_msg(aio);
	rep = (Chat__RpcReply *)chat_arena_unpack(
	    arena, &chat__rpc_reply__descriptor, nng_msg_body(msg), nng_msg_len(msg));
	nng_msg_free(msg);
	if (!rep || rep->call_id != req.call_id) {
		st = set_reason(reason, reasonlen, CHAT_INTERNAL,
		                "%s.%s: malformed reply", d->name, method);
		goto done;
	}
	if (rep->code != CHAT__CODE__OK) {
		st = set_reason(reason, reasonlen, (int)rep->code, "%s",
		                rep->message ? rep->message : "");
		goto done;
	}
	*out = chat_arena_unpack(arena, m->output, rep->body.data, rep->body.len);
	st = *out ? CHAT_OK
	          : set_reason(reason, reasonlen, CHAT_INTERNAL,
	                       "%s.%s: malformed output", d->name, method);
done:
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return st;
}

void chat_rpc_client_free(chat_rpc_client *c)
{
	chat_rpc_client **pp;
	if (!c)
		return;
	/* Out of the registry first: no pipe event touches c after this. */
	pthread_mutex_lock(&registry_mu);
	for (pp = &registry; *pp && *pp != c; pp = &(*pp)->reg_next)
		;
	if (*pp)
		*pp = c->reg_next;
	pthread_mutex_unlock(&registry_mu);
	nng_close(c->sock);
	free(c->dials);
	free(c->pipes);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->set_mu);
	free(c);
}
