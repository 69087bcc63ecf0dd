/* A Redis connection shared by threads (see chat_redis.h). */
#include "chat_redis.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_log.h"
#include "chat_util.h"

#define SVC "redis"

struct chat_redis {
	pthread_mutex_t mu;
	redisContext *ctx;
	char addr[256];
	char host[256];
	int port;
	int timeout_ms;
	int64_t retry_at_ms; /* no connect before this (backoff) */
	atomic_uint_fast64_t connects, failures;
	int was_down;        /* for logging transitions once */
};

chat_redis *chat_redis_new(const char *addr, int timeout_ms, char *err,
                           size_t errlen)
{
	chat_redis *r;
	const char *colon;
	char *end;
	long port;
	size_t hlen;

	if (!addr || !(colon = strrchr(addr, ':')) || colon == addr) {
		chat_errf(err, errlen, "redis address '%s' is not host:port",
		          addr ? addr : "");
		return NULL;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 1 || port > 65535) {
		chat_errf(err, errlen, "redis address '%s': bad port", addr);
		return NULL;
	}
	hlen = (size_t)(colon - addr);
	if (addr[0] == '[' && hlen >= 2 && addr[hlen - 1] == ']') {
		addr++; /* [::1]:6379 */
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= 256) {
		chat_errf(err, errlen, "redis address '%s': bad host", addr);
		return NULL;
	}
	r = calloc(1, sizeof *r);
	if (!r) {
		chat_errf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	memcpy(r->host, addr, hlen);
	r->host[hlen] = '\0';
	r->port = (int)port;
	snprintf(r->addr, sizeof r->addr, "%.240s:%d", r->host, r->port);
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : 500;
	return r;
}

void chat_redis_free(chat_redis *r)
{
	if (!r)
		return;
	if (r->ctx)
		redisFree(r->ctx);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

const char *chat_redis_addr(const chat_redis *r)
{
	return r->addr;
}

uint64_t chat_redis_connects(chat_redis *r)
{
	return atomic_load(&r->connects);
}

uint64_t chat_redis_failures(chat_redis *r)
{
	return atomic_load(&r->failures);
}

/* ---- batches ----------------------------------------------------------- */

void chat_redis_batch_init(chat_redis_batch *b)
{
	memset(b, 0, sizeof *b);
}

void chat_redis_batch_reset(chat_redis_batch *b)
{
	b->len = 0;
	b->n = 0;
	b->failed = 0;
}

void chat_redis_batch_fini(chat_redis_batch *b)
{
	free(b->buf);
	memset(b, 0, sizeof *b);
}

static int batch_put(chat_redis_batch *b, const char *cmd, int len)
{
	if (len < 0) {
		b->failed = 1;
		return -1;
	}
	if (b->len + (size_t)len > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *nb;
		while (cap < b->len + (size_t)len)
			cap *= 2;
		if (!(nb = realloc(b->buf, cap))) {
			b->failed = 1;
			return -1;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, cmd, (size_t)len);
	b->len += (size_t)len;
	b->n++;
	return 0;
}

int chat_redis_batch_add(chat_redis_batch *b, const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int len, rv;
	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	rv = batch_put(b, cmd, len);
	if (cmd)
		redisFreeCommand(cmd);
	return rv;
}

int chat_redis_batch_argv(chat_redis_batch *b, int argc, const char **argv,
                          const size_t *lens)
{
	char *cmd = NULL;
	int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
	int rv = batch_put(b, cmd, len);
	if (cmd)
		redisFreeCommand(cmd);
	return rv;
}

void chat_redis_replies_free(redisReply **replies, size_t n)
{
	if (!replies)
		return;
	for (size_t i = 0; i < n; i++)
		if (replies[i])
			freeReplyObject(replies[i]);
	free(replies);
}

/* ---- the exchange ------------------------------------------------------ */

static struct timeval tv_ms(int ms)
{
	struct timeval tv;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

static int connect_locked(chat_redis *r, char *err, size_t errlen)
{
	redisContext *c;
	int64_t t0;
	if (chat_mono_ms() < r->retry_at_ms) {
		chat_errf(err, errlen, "redis %s is down (retrying soon)",
		          r->addr);
		return -1;
	}
	t0 = chat_mono_ms();
	c = redisConnectWithTimeout(r->host, r->port, tv_ms(r->timeout_ms));
	if (!c || c->err ||
	    redisSetTimeout(c, tv_ms(r->timeout_ms)) != REDIS_OK) {
		chat_errf(err, errlen, "redis %s: connect: %s", r->addr,
		          c ? c->errstr : "out of memory");
		if (!r->was_down)
			chat_warn(SVC, "redis_down", "addr=%s reason=\"%s\"",
			          r->addr, c ? c->errstr : "out of memory");
		r->was_down = 1;
		if (c)
			redisFree(c);
		/* A refusal costs nothing: try again on the next call. A
		 * connect that had to time out is not retried for a while,
		 * so that calls stay fast. */
		if (chat_mono_ms() - t0 >= r->timeout_ms / 2)
			r->retry_at_ms = chat_mono_ms() + CHAT_REDIS_BACKOFF_MS;
		return -1;
	}
	redisEnableKeepAlive(c);
	r->ctx = c;
	atomic_fetch_add(&r->connects, 1);
	if (r->was_down)
		chat_info(SVC, "redis_up", "addr=%s", r->addr);
	r->was_down = 0;
	return 0;
}

/* Write the batch, read its replies. hiredis writes with write(2), so a
 * peer that went away raises SIGPIPE: block it on this thread for the
 * exchange and swallow one raised here. */
static int exchange_locked(chat_redis *r, const chat_redis_batch *b,
                           redisReply **reps, char *err, size_t errlen)
{
	sigset_t pipe_set, old, pend;
	int was_pending, rv = 0;
	size_t i;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pend);
	was_pending = sigismember(&pend, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);

	if (redisAppendFormattedCommand(r->ctx, b->buf, b->len) != REDIS_OK)
		rv = -1;
	for (i = 0; rv == 0 && i < b->n; i++) {
		void *rep = NULL;
		if (redisGetReply(r->ctx, &rep) != REDIS_OK || !rep) {
			rv = -1;
			break;
		}
		reps[i] = rep;
	}
	if (rv != 0) {
		chat_errf(err, errlen, "redis %s: %s", r->addr,
		          r->ctx->errstr[0] ? r->ctx->errstr : "I/O error");
		for (size_t k = 0; k < i; k++) {
			freeReplyObject(reps[k]);
			reps[k] = NULL;
		}
	}
	if (!was_pending) {
		struct timespec zero = {0, 0};
		sigpending(&pend);
		if (sigismember(&pend, SIGPIPE))
			sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rv;
}

static int lock_within(chat_redis *r, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_mutex_timedlock(&r->mu, &ts);
}

int chat_redis_exec(chat_redis *r, const chat_redis_batch *b,
                    redisReply ***replies, char *err, size_t errlen)
{
	redisReply **reps;
	int rv = -1;

	*replies = NULL;
	if (b->failed) {
		chat_errf(err, errlen, "redis: bad or oversized batch");
		return -1;
	}
	if (b->n == 0)
		return 0;
	if (!(reps = calloc(b->n, sizeof *reps))) {
		chat_errf(err, errlen, "out of memory");
		return -1;
	}
	if (lock_within(r, r->timeout_ms) != 0) {
		chat_errf(err, errlen, "redis %s: busy for %d ms", r->addr,
		          r->timeout_ms);
		free(reps);
		atomic_fetch_add(&r->failures, 1);
		return -1;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		int fresh = 0;
		if (!r->ctx) {
			if (connect_locked(r, err, errlen) != 0)
				break;
			fresh = 1;
		}
		if (exchange_locked(r, b, reps, err, errlen) == 0) {
			rv = 0;
			break;
		}
		redisFree(r->ctx);
		r->ctx = NULL;
		if (fresh)
			break;
		/* The connection predates this call: maybe a restart. */
	}
	pthread_mutex_unlock(&r->mu);
	if (rv != 0) {
		atomic_fetch_add(&r->failures, 1);
		free(reps);
		return -1;
	}
	*replies = reps;
	return 0;
}

redisReply *chat_redis_command(chat_redis *r, const char *fmt, ...)
{
	chat_redis_batch b;
	redisReply **reps = NULL, *rep = NULL;
	char *cmd = NULL;
	va_list ap;
	int len;

	chat_redis_batch_init(&b);
	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	batch_put(&b, cmd, len);
	if (cmd)
		redisFreeCommand(cmd);
	if (chat_redis_exec(r, &b, &reps, NULL, 0) == 0) {
		rep = reps[0];
		free(reps);
	}
	chat_redis_batch_fini(&b);
	return rep;
}

int chat_redis_is_error(const redisReply *rep)
{
	return !rep || rep->type == REDIS_REPLY_ERROR;
}

long long chat_redis_int(const redisReply *rep, long long def)
{
	char *end;
	long long v;
	if (!rep)
		return def;
	if (rep->type == REDIS_REPLY_INTEGER)
		return rep->integer;
	if (rep->type != REDIS_REPLY_STRING || !rep->len)
		return def;
	errno = 0;
	v = strtoll(rep->str, &end, 10);
	if (errno || *end)
		return def;
	return v;
}
