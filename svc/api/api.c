/* The HTTP+JSON api on libwebsockets: sign-up, log-in, edge discovery.
 *
 * One lws service thread owns every connection. Work that blocks (argon2id,
 * store RPCs) runs on a chat_workers pool: the service thread parses and
 * validates the body, gives the request an id and submits a job; the worker
 * builds the whole response, pushes it on the `done` queue and calls
 * lws_cancel_service(). Back on the service thread
 * (LWS_CALLBACK_EVENT_WAIT_CANCELLED) the response finds its connection by
 * id in `waiting` (never by pointer: the client may have gone, and the
 * close callback removes the id), and is written from HTTP_WRITEABLE:
 * headers in one callback, the body with LWS_WRITE_HTTP_FINAL in the next.
 *
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE is deliberately not handled
 * (CVE-2025-11677 in lws 4.1). */
#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_body.h"
#include "api_edges.h"
#include "chat_arena.h"
#include "chat_auth.h"
#include "chat_discovery.h"
#include "chat_json.h"
#include "chat_log.h"
#include "chat_map.h"
#include "chat_queue.h"
#include "chat_rpc.h"
#include "chat_status.h"
#include "chat_util.h"
#include "chat_workers.h"
#include "store.pb-c.h"

#define SVC "api"
#define BACKLOG_MAX 256 /* queued sign-ups/log-ins before answering 503 */

enum route { ROUTE_NONE, ROUTE_SIGNUP, ROUTE_LOGIN };

enum state {
	ST_IDLE,     /* nothing yet */
	ST_BODY,     /* collecting the body of a sign-up / log-in */
	ST_DISCARD,  /* answer ready, waiting for the unwanted body to end */
	ST_WAIT,     /* a worker has the request */
	ST_READY,    /* answer ready: headers go out on the next WRITEABLE */
	ST_HEADERS,  /* headers sent: the body goes out on the next one */
	ST_DONE,
};

/* Per connection (and per transaction: lws hands a zeroed one to each). */
struct pss {
	enum state state;
	enum route route;
	uint64_t req_id;     /* while ST_WAIT: the key in api->waiting */
	char *body;          /* request body received so far */
	size_t body_len;
	int close_after;     /* the request body was not read: close */
	const char *allow;   /* Allow header of a 405 */
	int status;
	char *resp;          /* response body after LWS_PRE bytes */
	size_t resp_len;
};

/* One sign-up or log-in on its way through a worker and back. */
struct api_req {
	chat_job job;        /* first: the worker hands us &job */
	chat_qnode done;
	api *a;
	uint64_t req_id;
	enum route route;
	api_creds creds;
	int status;
	char *resp;          /* LWS_PRE headroom, like pss->resp */
	size_t resp_len;
};

struct api {
	char *host, *store_url;
	unsigned char *jwt_key;
	size_t jwt_key_len;
	int token_ttl_s, rpc_timeout_ms;
	api_edges *edges;    /* what log-ins hand out */
	chat_disc *disc;     /* fleet: edges, stores, our registration */
	chat_rpc_server *rpc; /* chat.Admin/Health */
	char rpc_adv[CHAT_URL_MAX];
	char *instance, *public_url, *rpc_url;

	chat_rpc_client *store;
	chat_workers *workers;
	chat_queue done;     /* finished api_req, for the service thread */
	struct lws_context *ctx;
	struct lws_protocols protocols[2];
	pthread_t thread;
	int thread_started;
	atomic_int stop, stopping;
	int port;

	/* Fleet: the edge probe (api_edges_probe) every probe_ms. */
	int probe_ms;
	pthread_t prober;
	int probing;
	int probe_stop;            /* under probe_mu */
	pthread_mutex_t probe_mu;
	pthread_cond_t probe_cv;

	/* Service thread only. */
	chat_u64map waiting; /* req id -> struct lws * */
	uint64_t next_id;
};

static const char *status_code_name(int http)
{
	switch (http) {
	case 400:
	case 411:
		return "INVALID_ARGUMENT";
	case 401:
		return "UNAUTHENTICATED";
	case 404:
		return "NOT_FOUND";
	case 405:
		return "UNIMPLEMENTED";
	case 409:
		return "ALREADY_EXISTS";
	case 413:
		return "RESOURCE_EXHAUSTED";
	case 503:
		return "UNAVAILABLE";
	default:
		return "INTERNAL";
	}
}

/* ---- workers ----------------------------------------------------------- */

static void req_error(struct api_req *r, int http, const char *reason,
                      int no_such_user)
{
	r->status = http;
	r->resp = api_error_body(status_code_name(http), reason, no_such_user,
	                         LWS_PRE, &r->resp_len);
}

/* A token for the user and the whole success body. */
static void req_grant(struct api_req *r, int http, uint64_t user_id,
                      const char *name)
{
	api *a = r->a;
	char *tok = chat_jwt_issue(a->jwt_key, a->jwt_key_len, user_id, name,
	                           a->token_ttl_s);
	chat_claims claims;
	char err[128], url[CHAT_URL_MAX];

	/* The least-loaded live edge (api_edges.h). */
	if (api_edges_pick(a->edges, url, sizeof url, NULL, 0) != 0) {
		chat_warn(SVC, "no_edge", "user_id=%llu",
		          (unsigned long long)user_id);
		free(tok);
		req_error(r, 503, "no edge available; retry later", 0);
		return;
	}
	/* Read exp back from the token so expires_at matches it exactly. */
	if (!tok || chat_jwt_verify(a->jwt_key, a->jwt_key_len, tok, 0, &claims,
	                            err, sizeof err) != 0) {
		chat_error(SVC, "token_failed", "user_id=%llu",
		           (unsigned long long)user_id);
		free(tok);
		req_error(r, 500, "cannot issue a token", 0);
		return;
	}
	r->status = http;
	r->resp = api_auth_body(user_id, name, tok, url,
	                        claims.exp, LWS_PRE, &r->resp_len);
	free(tok);
}

/* Map a failed store call to an answer. */
static void req_store_failed(struct api_req *r, const char *method, int st,
                             const char *why)
{
	chat_warn(SVC, "store_failed", "method=%s code=%s reason=\"%s\"",
	          method, chat_strerror(st), why);
	if (chat_status_retryable(st))
		req_error(r, 503, "store unavailable; retry later", 0);
	else if (st == CHAT_INVALID_ARGUMENT)
		req_error(r, 400, why[0] ? why : "invalid request", 0);
	else
		req_error(r, 500, "store error", 0);
}

static void do_signup(struct api_req *r, chat_arena *arena)
{
	api *a = r->a;
	Chat__CreateUserReq in = CHAT__CREATE_USER_REQ__INIT;
	ProtobufCMessage *out = NULL;
	char hash[CHAT_PASS_HASH_MAX], why[256];
	int st;

	if (chat_password_hash(r->creds.password, hash) != 0) {
		chat_error(SVC, "hash_failed", "name=%s", r->creds.name);
		req_error(r, 503, "server busy; retry later", 0);
		return;
	}
	in.name = r->creds.name;
	in.pass_hash = hash;
	st = chat_rpc_invoke(a->store, &chat__store__descriptor, "CreateUser",
	                     &in.base, arena, &out, a->rpc_timeout_ms, why,
	                     sizeof why);
	if (st == CHAT_ALREADY_EXISTS) {
		req_error(r, 409, "name taken", 0);
	} else if (st != CHAT_OK) {
		req_store_failed(r, "CreateUser", st, why);
	} else {
		const Chat__User *u = (const Chat__User *)out;
		chat_info(SVC, "signup", "user_id=%llu name=%s",
		          (unsigned long long)u->id, u->name);
		req_grant(r, 201, u->id, u->name[0] ? u->name : r->creds.name);
	}
}

static void do_login(struct api_req *r, chat_arena *arena)
{
	api *a = r->a;
	Chat__GetUserReq in = CHAT__GET_USER_REQ__INIT;
	ProtobufCMessage *out = NULL;
	const Chat__UserRecord *u;
	char why[256];
	int st;

	in.name = r->creds.name;
	st = chat_rpc_invoke(a->store, &chat__store__descriptor, "GetUser",
	                     &in.base, arena, &out, a->rpc_timeout_ms, why,
	                     sizeof why);
	if (st == CHAT_NOT_FOUND) {
		/* Same answer as a wrong password, plus a hint so that a
		 * client can offer to sign up. */
		req_error(r, 401, "wrong name or password", 1);
		return;
	}
	if (st != CHAT_OK) {
		req_store_failed(r, "GetUser", st, why);
		return;
	}
	u = (const Chat__UserRecord *)out;
	if (!chat_password_verify(u->pass_hash, r->creds.password)) {
		chat_info(SVC, "login_refused", "name=%s", r->creds.name);
		req_error(r, 401, "wrong name or password", 0);
		return;
	}
	req_grant(r, 200, u->id, u->name[0] ? u->name : r->creds.name);
}

static void req_run(chat_job *job)
{
	struct api_req *r = (struct api_req *)job;
	api *a = r->a;
	chat_arena *arena = chat_arena_new();

	if (atomic_load(&a->stopping))
		req_error(r, 503, "shutting down; retry later", 0);
	else if (api_edges_count(a->edges) == 0)
		req_error(r, 503, "no edge available; retry later", 0);
	else if (!arena)
		req_error(r, 503, "out of memory; retry later", 0);
	else if (r->route == ROUTE_SIGNUP)
		do_signup(r, arena);
	else
		do_login(r, arena);
	api_creds_wipe(&r->creds);
	chat_arena_free(arena);
	if (chat_queue_push(&a->done, &r->done) != 0) {
		free(r->resp);
		free(r);
		return;
	}
	/* r now belongs to the service thread. */
	lws_cancel_service(a->ctx);
}

/* ---- the service thread ------------------------------------------------ */

static void pss_clear(api *a, struct pss *pss)
{
	if (!pss)
		return;
	if (pss->state == ST_WAIT && pss->req_id)
		chat_u64map_del(&a->waiting, pss->req_id);
	if (pss->body) /* it may hold a password */
		explicit_bzero(pss->body, pss->body_len);
	free(pss->body);
	free(pss->resp);
	memset(pss, 0, sizeof *pss);
}

/* Take ownership of resp (LWS_PRE headroom) and write it when writable.
 * Returns 0, or -1 to close the connection (resp NULL: out of memory). */
static int pss_answer(struct lws *wsi, struct pss *pss, int status,
                      char *resp, size_t len, enum state next)
{
	free(pss->resp);
	pss->resp = resp;
	pss->resp_len = len;
	pss->status = status;
	pss->state = next;
	if (!resp)
		return -1;
	if (next == ST_READY)
		lws_callback_on_writable(wsi);
	return 0;
}

static int pss_error(struct lws *wsi, struct pss *pss, int status,
                     const char *reason, enum state next)
{
	size_t len = 0;
	char *b = api_error_body(status_code_name(status), reason, 0, LWS_PRE,
	                         &len);
	return pss_answer(wsi, pss, status, b, len, next);
}

static int pss_static(struct lws *wsi, struct pss *pss, const char *text,
                      size_t len, enum state next)
{
	char *b = malloc(LWS_PRE + len);
	if (b)
		memcpy(b + LWS_PRE, text, len);
	return pss_answer(wsi, pss, 200, b, len, next);
}

static int path_is(const char *in, size_t len, const char *path)
{
	return len == strlen(path) && memcmp(in, path, len) == 0;
}

/* Content-Length as a number, -1 when absent, -2 when not a number. */
static long long content_length(struct lws *wsi)
{
	char v[32], *end;
	long long n;
	int l = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
	if (l <= 0)
		return -1;
	if (l >= (int)sizeof v ||
	    lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0)
		return -2;
	n = strtoll(v, &end, 10);
	if (end == v || *end || n < 0)
		return -2;
	return n;
}

static const char *method_name(int m)
{
	static const char *const names[] = {"GET",   "POST",   "OPTIONS",
	                                    "PUT",   "PATCH",  "DELETE",
	                                    "CONNECT", "HEAD"};
	return m >= 0 && m < 8 ? names[m] : "?";
}

/* LWS_CALLBACK_HTTP: route the request by path, then method. */
static int on_http(api *a, struct lws *wsi, struct pss *pss, const char *in,
                   size_t len)
{
	char *uri = NULL;
	int ulen = 0, meth = lws_http_get_uri_and_method(wsi, &uri, &ulen);
	int has_body = meth == LWSHUMETH_POST || meth == LWSHUMETH_PUT ||
	               meth == LWSHUMETH_PATCH;
	long long cl = content_length(wsi);
	/* An answer decided now waits for a request body to end first, so
	 * that the connection can be kept; the body itself is dropped. */
	enum state next = has_body && cl > 0 ? ST_DISCARD : ST_READY;
	char why[96];

	pss_clear(a, pss);
	chat_debug(SVC, "http_request", "method=%s path=%.*s",
	           method_name(meth), (int)len, in);
	if (cl == -2) {
		pss->close_after = 1;
		return pss_error(wsi, pss, 400, "bad Content-Length", ST_READY);
	}
	if (has_body && cl == -1) {
		/* lws 4.1 would read a body without Content-Length (chunked
		 * included) until the client closes: refuse it at once. */
		pss->close_after = 1;
		return pss_error(wsi, pss, 411, "Content-Length required",
		                 ST_READY);
	}
	if (path_is(in, len, "/v1/signup") || path_is(in, len, "/v1/login")) {
		if (meth != LWSHUMETH_POST) {
			snprintf(why, sizeof why, "use POST for %.*s", (int)len,
			         in);
			pss->allow = "POST";
			return pss_error(wsi, pss, 405, why, next);
		}
		if (cl > API_BODY_MAX) {
			/* Refuse before reading a byte of it, and close. */
			pss->close_after = 1;
			return pss_error(wsi, pss, 413,
			                 "body larger than 16384 bytes",
			                 ST_READY);
		}
		pss->route = path_is(in, len, "/v1/signup") ? ROUTE_SIGNUP
		                                           : ROUTE_LOGIN;
		pss->state = ST_BODY;
		return 0;
	}
	if (path_is(in, len, "/v1/edges") || path_is(in, len, "/healthz")) {
		if (meth != LWSHUMETH_GET) {
			snprintf(why, sizeof why, "use GET for %.*s", (int)len,
			         in);
			pss->allow = "GET";
			return pss_error(wsi, pss, 405, why, next);
		}
		if (path_is(in, len, "/healthz"))
			return pss_static(wsi, pss, "{\"status\":\"ok\"}", 15,
			                  next);
		{
			size_t blen = 0;
			char *b = api_edges_json(a->edges, LWS_PRE, &blen);
			return pss_answer(wsi, pss, 200, b, blen, next);
		}
	}
	return pss_error(wsi, pss, 404, "no such path", next);
}

/* The body is over the limit: answer now and close after. */
static int body_too_large(struct lws *wsi, struct pss *pss)
{
	pss->close_after = 1;
	if (pss->state == ST_DISCARD) {
		pss->state = ST_READY;
		lws_callback_on_writable(wsi);
		return 0;
	}
	free(pss->body);
	pss->body = NULL;
	return pss_error(wsi, pss, 413, "body larger than 16384 bytes",
	                 ST_READY);
}

static int on_body(struct lws *wsi, struct pss *pss, const void *in,
                   size_t len)
{
	if (pss->state == ST_DISCARD) {
		pss->body_len += len;
		return pss->body_len > API_BODY_MAX ? body_too_large(wsi, pss)
		                                    : 0;
	}
	if (pss->state != ST_BODY || !len)
		return 0;
	if (pss->body_len + len > API_BODY_MAX)
		return body_too_large(wsi, pss);
	if (!pss->body && !(pss->body = malloc(API_BODY_MAX)))
		return -1;
	memcpy(pss->body + pss->body_len, in, len);
	pss->body_len += len;
	return 0;
}

/* The whole body is in: validate it and hand it to a worker. */
static int on_body_done(api *a, struct lws *wsi, struct pss *pss)
{
	struct api_req *r;
	const char *reason = NULL;

	if (pss->state == ST_DISCARD) {
		pss->state = ST_READY;
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (pss->state != ST_BODY)
		return 0;
	r = calloc(1, sizeof *r);
	if (!r)
		return -1;
	if (api_parse_creds(pss->body, pss->body_len,
	                    pss->route == ROUTE_SIGNUP ? API_FORM_SIGNUP
	                                               : API_FORM_LOGIN,
	                    &r->creds, &reason) != 0) {
		free(r);
		return pss_error(wsi, pss, 400, reason, ST_READY);
	}
	explicit_bzero(pss->body, pss->body_len);
	if (chat_workers_backlog(a->workers) >= BACKLOG_MAX) {
		api_creds_wipe(&r->creds);
		free(r);
		chat_warn(SVC, "overloaded", "backlog=%d", BACKLOG_MAX);
		return pss_error(wsi, pss, 503, "server busy; retry later",
		                 ST_READY);
	}
	r->a = a;
	r->route = pss->route;
	r->req_id = ++a->next_id;
	r->job.run = req_run;
	if (chat_u64map_put(&a->waiting, r->req_id, wsi) != 0) {
		api_creds_wipe(&r->creds);
		free(r);
		return -1;
	}
	pss->req_id = r->req_id;
	pss->state = ST_WAIT;
	if (chat_workers_submit(a->workers, &r->job) != 0) {
		chat_u64map_del(&a->waiting, r->req_id);
		api_creds_wipe(&r->creds);
		free(r);
		return pss_error(wsi, pss, 503, "shutting down; retry later",
		                 ST_READY);
	}
	/* The worker always answers within its RPC deadline; no lws
	 * timeout should cut the connection meanwhile. */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	return 0;
}

/* Finished requests from the workers: find their connections. */
static void drain_done(api *a)
{
	chat_qnode *n = chat_queue_take_all(&a->done);
	while (n) {
		struct api_req *r = CHAT_CONTAINER_OF(n, struct api_req, done);
		struct lws *wsi = chat_u64map_del(&a->waiting, r->req_id);
		n = n->next;
		if (wsi) {
			struct pss *pss = lws_wsi_user(wsi);
			if (pss && pss->state == ST_WAIT &&
			    pss->req_id == r->req_id) {
				pss->req_id = 0;
				if (pss_answer(wsi, pss, r->status, r->resp,
				               r->resp_len, ST_READY) != 0)
					lws_set_timeout(
					    wsi, PENDING_TIMEOUT_CLOSE_SEND,
					    LWS_TO_KILL_ASYNC);
				r->resp = NULL;
			}
		}
		free(r->resp);
		free(r);
	}
}

static int on_writeable(struct lws *wsi, struct pss *pss)
{
	unsigned char hbuf[LWS_PRE + 512], *start = hbuf + LWS_PRE, *p = start,
	                                   *end = hbuf + sizeof hbuf - 1;

	if (pss->state == ST_READY) {
		if (lws_add_http_common_headers(wsi, (unsigned)pss->status,
		                                "application/json",
		                                pss->resp_len, &p, end) ||
		    lws_add_http_header_by_name(
		        wsi, (const unsigned char *)"cache-control:",
		        (const unsigned char *)"no-store", 8, &p, end))
			return -1;
		if (pss->close_after &&
		    lws_add_http_header_by_token(
		        wsi, WSI_TOKEN_CONNECTION,
		        (const unsigned char *)"close", 5, &p, end))
			return -1;
		if (pss->allow &&
		    lws_add_http_header_by_name(
		        wsi, (const unsigned char *)"allow:",
		        (const unsigned char *)pss->allow,
		        (int)strlen(pss->allow), &p, end))
			return -1;
		if (pss->status == 503 &&
		    lws_add_http_header_by_name(
		        wsi, (const unsigned char *)"retry-after:",
		        (const unsigned char *)"1", 1, &p, end))
			return -1;
		if (lws_finalize_write_http_header(wsi, start, &p, end))
			return -1;
		pss->state = ST_HEADERS;
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (pss->state != ST_HEADERS)
		return 0;
	if (lws_write(wsi, (unsigned char *)pss->resp + LWS_PRE, pss->resp_len,
	              LWS_WRITE_HTTP_FINAL) != (int)pss->resp_len)
		return -1;
	pss->state = ST_DONE;
	free(pss->resp);
	pss->resp = NULL;
	if (pss->close_after)
		return -1; /* lws flushes what is buffered before closing */
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	api *a = ctx ? lws_context_user(ctx) : NULL;
	struct pss *pss = user;

	if (!a)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return pss ? on_http(a, wsi, pss, in, len) : -1;
	case LWS_CALLBACK_HTTP_BODY:
		return pss ? on_body(wsi, pss, in, len) : -1;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return pss ? on_body_done(a, wsi, pss) : -1;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return pss ? on_writeable(wsi, pss) : 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		drain_done(a);
		return 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return -1; /* the api speaks no WebSocket: refuse upgrades */
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		pss_clear(a, pss);
		return 0;
	default:
		return 0;
	}
}

static void *service_main(void *arg)
{
	api *a = arg;
	while (!atomic_load(&a->stop))
		if (lws_service(a->ctx, 0) < 0)
			break;
	return NULL;
}

/* ---- start / stop ------------------------------------------------------ */

/* Fleet: probe the edges' RPC ports every probe_ms, so that an edge that
 * died (kill -9) stops being handed out at once rather than when its
 * ZooKeeper session expires (api_edges_probe). */
static void *probe_main(void *arg)
{
	api *a = arg;
	pthread_mutex_lock(&a->probe_mu);
	while (!a->probe_stop) {
		struct timespec ts;
		int timeout = a->probe_ms < 1000 ? a->probe_ms : 1000;
		pthread_mutex_unlock(&a->probe_mu);
		api_edges_probe(a->edges, timeout);
		pthread_mutex_lock(&a->probe_mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += a->probe_ms / 1000;
		ts.tv_nsec += (long)(a->probe_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!a->probe_stop)
			pthread_cond_timedwait(&a->probe_cv, &a->probe_mu,
			                       &ts);
	}
	pthread_mutex_unlock(&a->probe_mu);
	return NULL;
}

/* Discovery: the live edges changed. Runs on the discovery thread. */
static void edges_changed(void *arg, const char *service,
                          const chat_disc_entry *entries, size_t n)
{
	api *a = arg;
	(void)service;
	if (api_edges_set(a->edges, entries, n) != 0)
		chat_error(SVC, "edges_update_failed", "reason=oom n=%zu", n);
	else
		chat_info(SVC, "edges", "n=%zu", api_edges_count(a->edges));
}

static char *dup_or_null(const char *s)
{
	return s && s[0] ? strdup(s) : NULL;
}

static int copy_config(api *a, const api_config *cfg, char *err,
                       size_t errlen)
{
	int fleet = cfg->zk_hosts && cfg->zk_hosts[0];

	if (!fleet && (!cfg->store_url || !cfg->store_url[0])) {
		snprintf(err, errlen, "api: store_url is required");
		return -1;
	}
	if (!cfg->jwt_key || cfg->jwt_key_len < 32) {
		snprintf(err, errlen,
		         "api: the JWT key must be at least 32 bytes");
		return -1;
	}
	if (cfg->port < 0 || cfg->port > 65535) {
		snprintf(err, errlen, "api: port %d out of range", cfg->port);
		return -1;
	}
	if (!fleet && (cfg->n_edges < 1 || !cfg->edges)) {
		snprintf(err, errlen, "api: at least one edge is required");
		return -1;
	}
	a->host = strdup(cfg->host && cfg->host[0] ? cfg->host : "127.0.0.1");
	a->store_url = dup_or_null(cfg->store_url);
	a->instance = strdup(cfg->instance && cfg->instance[0] ? cfg->instance
	                                                       : "api-1");
	a->public_url = dup_or_null(cfg->public_url);
	a->rpc_url = dup_or_null(cfg->rpc_url);
	a->jwt_key = malloc(cfg->jwt_key_len);
	a->edges = api_edges_new(fleet);
	if (!a->host || !a->instance || !a->jwt_key || !a->edges ||
	    (cfg->store_url && cfg->store_url[0] && !a->store_url) ||
	    (cfg->public_url && cfg->public_url[0] && !a->public_url) ||
	    (cfg->rpc_url && cfg->rpc_url[0] && !a->rpc_url))
		goto oom;
	memcpy(a->jwt_key, cfg->jwt_key, cfg->jwt_key_len);
	a->jwt_key_len = cfg->jwt_key_len;
	a->token_ttl_s = cfg->token_ttl_s > 0 ? cfg->token_ttl_s : 86400;
	a->rpc_timeout_ms = cfg->rpc_timeout_ms > 0 ? cfg->rpc_timeout_ms
	                                            : 3000;
	a->probe_ms = cfg->edge_probe_ms == 0 ? 1000 : cfg->edge_probe_ms;
	if (cfg->n_edges > 0 && cfg->edges) {
		chat_disc_entry *v = calloc((size_t)cfg->n_edges, sizeof *v);
		if (!v)
			goto oom;
		for (int i = 0; i < cfg->n_edges; i++) {
			const api_edge *e = &cfg->edges[i];
			if (!e->id || !e->id[0] || !e->url || !e->url[0] ||
			    strlen(e->id) >= sizeof v[i].id ||
			    strlen(e->url) >= sizeof v[i].pub) {
				snprintf(err, errlen,
				         "api: edge %d needs an id and a url "
				         "(at most %zu and %zu bytes)",
				         i, sizeof v[i].id - 1,
				         sizeof v[i].pub - 1);
				free(v);
				return -1;
			}
			chat_strlcpy(v[i].id, e->id, sizeof v[i].id);
			chat_strlcpy(v[i].pub, e->url, sizeof v[i].pub);
		}
		if (api_edges_set(a->edges, v, (size_t)cfg->n_edges) != 0) {
			free(v);
			goto oom;
		}
		free(v);
	}
	return 0;
oom:
	snprintf(err, errlen, "api: out of memory");
	return -1;
}

/* The address others dial for a listener on url bound to port: the url's
 * host (this machine's name for a wildcard host) and the bound port. */
static void advertise(const char *url, int port, char *out, size_t outlen)
{
	const char *h, *colon;
	char host[200];

	if (strncmp(url, "tcp://", 6) != 0 || port <= 0 ||
	    !(colon = strrchr(url + 6, ':'))) {
		chat_strlcpy(out, url, outlen);
		return;
	}
	h = url + 6;
	snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
	if (!host[0] || !strcmp(host, "*") || !strcmp(host, "0.0.0.0") ||
	    !strcmp(host, "[::]")) {
		if (gethostname(host, sizeof host) != 0 || !host[0])
			chat_strlcpy(host, "127.0.0.1", sizeof host);
		host[sizeof host - 1] = '\0';
	}
	snprintf(out, outlen, "tcp://%s:%d", host, port);
}

/* Fleet: follow the edges and the stores, serve Admin.Health, and
 * register. */
static int fleet_start(api *a, const api_config *cfg, char *err,
                       size_t errlen)
{
	chat_disc_entry me;
	char json[CHAT_DISC_DATA_MAX];
	int port = 0;

	a->disc = chat_disc_new(cfg->zk_hosts, cfg->zk_timeout_ms, err,
	                        errlen);
	if (!a->disc)
		return -1;
	if (chat_disc_watch(a->disc, "edge", edges_changed, a) != 0) {
		snprintf(err, errlen, "api: cannot watch the edges");
		return -1;
	}
	if (!a->store_url &&
	    chat_disc_bind_client(a->disc, "store", a->store) != 0) {
		snprintf(err, errlen, "api: cannot follow the stores");
		return -1;
	}
	memset(&me, 0, sizeof me);
	if (a->rpc_url) {
		a->rpc = chat_rpc_server_new("api", a->instance, 1);
		if (!a->rpc) {
			snprintf(err, errlen, "api: out of memory");
			return -1;
		}
		if (chat_rpc_server_listen(a->rpc, a->rpc_url, &port, err,
		                           errlen) != 0 ||
		    chat_rpc_server_start(a->rpc) != 0) {
			if (!err[0])
				snprintf(err, errlen, "api: cannot serve RPC");
			return -1;
		}
		advertise(a->rpc_url, port, a->rpc_adv, sizeof a->rpc_adv);
	} else {
		/* The node needs an address: the HTTP one will do. */
		snprintf(a->rpc_adv, sizeof a->rpc_adv, "tcp://%s:%d", a->host,
		         a->port);
	}
	chat_strlcpy(me.id, a->instance, sizeof me.id);
	chat_strlcpy(me.service, "api", sizeof me.service);
	chat_strlcpy(me.rpc, a->rpc_adv, sizeof me.rpc);
	if (a->public_url)
		chat_strlcpy(me.pub, a->public_url, sizeof me.pub);
	else
		snprintf(me.pub, sizeof me.pub, "http://%s:%d", a->host,
		         a->port);
	chat_strlcpy(me.version, CHAT_VERSION, sizeof me.version);
	me.pid = (int64_t)getpid();
	if (chat_disc_format(&me, json, sizeof json) < 0 ||
	    chat_disc_register(a->disc, "api", me.id, json, 0) < 0) {
		snprintf(err, errlen, "api: cannot register '%s' in ZooKeeper",
		         me.id);
		return -1;
	}
	/* Log-ins right after start find the edges and stores already there
	 * (not waiting on ZooKeeper longer). */
	chat_disc_wait(a->disc, "edge", 1, 2000);
	chat_disc_list(a->disc, "store", NULL, 0, 2000);
	if (a->probe_ms > 0) {
		if (pthread_create(&a->prober, NULL, probe_main, a) != 0) {
			snprintf(err, errlen,
			         "api: cannot start the edge probe");
			return -1;
		}
		a->probing = 1;
	}
	return 0;
}

/* Whether host:port can be bound now. Asked before lws is, for a clear
 * error and because a context that fails to bind leaks inside lws 4.1. */
static int port_free(const char *host, int port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	int fd, one = 1, rv;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		sl = sizeof *v4;
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		sl = sizeof *v6;
	} else {
		return 0; /* a name: lws resolves it */
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	rv = bind(fd, (struct sockaddr *)&ss, sl);
	if (rv != 0)
		snprintf(err, errlen, "api: cannot listen on %s:%d: %s", host,
		         port, strerror(errno));
	close(fd);
	return rv == 0 ? 0 : -1;
}

int api_start(const api_config *cfg, api **out, char *err, size_t errlen)
{
	struct lws_context_creation_info info;
	struct lws_vhost *vh;
	api *a = calloc(1, sizeof *a);
	int workers = cfg->workers > 0 ? cfg->workers : 2;

	*out = NULL;
	if (!a) {
		snprintf(err, errlen, "api: out of memory");
		return -1;
	}
	chat_queue_init(&a->done);
	chat_u64map_init(&a->waiting);
	pthread_mutex_init(&a->probe_mu, NULL);
	pthread_cond_init(&a->probe_cv, NULL);
	if (copy_config(a, cfg, err, errlen) != 0)
		goto fail;
	if (chat_auth_init() != 0) {
		snprintf(err, errlen, "api: cannot initialise libsodium");
		goto fail;
	}
	a->store = chat_rpc_client_new(a->store_url, err, errlen);
	if (!a->store)
		goto fail;
	a->workers = chat_workers_new(workers, "api-worker");
	if (!a->workers) {
		snprintf(err, errlen, "api: cannot start %d workers", workers);
		goto fail;
	}

	if (port_free(a->host, cfg->port, err, errlen) != 0)
		goto fail;
	a->protocols[0].name = "http";
	a->protocols[0].callback = callback;
	a->protocols[0].per_session_data_size = sizeof(struct pss);
	memset(&info, 0, sizeof info);
	info.port = cfg->port;
	info.iface = a->host;
	info.protocols = a->protocols;
	info.user = a;
	info.vhost_name = "api";
	info.server_string = "chat-api";
	info.timeout_secs = 10;
	/* lws resolves a literal IPv4 iface only with IPv6 off. */
	if (!strchr(a->host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	a->ctx = lws_create_context(&info);
	vh = a->ctx ? lws_get_vhost_by_name(a->ctx, "api") : NULL;
	if (!vh || lws_get_vhost_listen_port(vh) <= 0) {
		snprintf(err, errlen, "api: cannot listen on %s:%d", a->host,
		         cfg->port);
		goto fail;
	}
	a->port = lws_get_vhost_listen_port(vh);
	if (pthread_create(&a->thread, NULL, service_main, a) != 0) {
		snprintf(err, errlen, "api: cannot start the service thread");
		goto fail;
	}
	a->thread_started = 1;
	if (cfg->zk_hosts && cfg->zk_hosts[0] &&
	    fleet_start(a, cfg, err, errlen) != 0)
		goto fail;
	chat_info(SVC, "listening",
	          "host=%s port=%d store=%s edges=%zu discovery=%s rpc=%s",
	          a->host, a->port,
	          a->store_url ? a->store_url : "(discovery)",
	          api_edges_count(a->edges),
	          a->disc ? cfg->zk_hosts : "none",
	          a->rpc_adv[0] ? a->rpc_adv : "none");
	*out = a;
	return 0;
fail:
	api_stop(a);
	return -1;
}

int api_port(api *a)
{
	return a ? a->port : 0;
}

const char *api_rpc_url(api *a)
{
	return a ? a->rpc_adv : "";
}

size_t api_edge_count(api *a)
{
	return a && a->edges ? api_edges_count(a->edges) : 0;
}

void api_stop(api *a)
{
	chat_qnode *n;
	if (!a)
		return;
	if (a->probing) {
		pthread_mutex_lock(&a->probe_mu);
		a->probe_stop = 1;
		pthread_cond_signal(&a->probe_cv);
		pthread_mutex_unlock(&a->probe_mu);
		pthread_join(a->prober, NULL);
		a->probing = 0;
	}
	/* Out of ZooKeeper first: nobody is sent here any more. */
	if (a->disc) {
		chat_disc_unwatch(a->disc, edges_changed, a);
		if (a->store && !a->store_url)
			chat_disc_unbind_client(a->disc, a->store);
		chat_disc_free(a->disc);
		a->disc = NULL;
	}
	/* Queued jobs answer 503 at once; running ones finish within their
	 * RPC deadline. */
	atomic_store(&a->stopping, 1);
	chat_workers_free(a->workers);
	chat_queue_close(&a->done);
	if (a->thread_started) {
		atomic_store(&a->stop, 1);
		lws_cancel_service(a->ctx);
		pthread_join(a->thread, NULL);
	}
	if (a->ctx)
		lws_context_destroy(a->ctx);
	n = chat_queue_take_all(&a->done);
	while (n) {
		struct api_req *r = CHAT_CONTAINER_OF(n, struct api_req, done);
		n = n->next;
		free(r->resp);
		free(r);
	}
	chat_queue_fini(&a->done);
	chat_u64map_fini(&a->waiting);
	chat_rpc_client_free(a->store);
	chat_rpc_server_free(a->rpc);
	api_edges_free(a->edges);
	free(a->instance);
	free(a->public_url);
	free(a->rpc_url);
	if (a->jwt_key)
		explicit_bzero(a->jwt_key, a->jwt_key_len);
	free(a->jwt_key);
	free(a->host);
	free(a->store_url);
	if (a->thread_started)
		chat_info(SVC, "stopped", "port=%d", a->port);
	pthread_cond_destroy(&a->probe_cv);
	pthread_mutex_destroy(&a->probe_mu);
	free(a);
}
