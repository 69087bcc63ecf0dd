/* A Redis connection shared by threads (hiredis 0.14, RESP2 only).
 *
 * One synchronous hiredis context behind a mutex, connected lazily with a
 * connect timeout, every read and write bounded by a command timeout
 * (redisSetTimeout). Any I/O error or timeout drops the connection; the
 * next call reconnects (except for a short backoff after a connect that
 * timed out, when calls fail at once; a refused connect costs nothing).
 * A call that fails on a connection made before it started (a Redis
 * restart leaves a dead socket behind) is retried once on a fresh one, so
 * the first call after a restart works: send only commands that are safe
 * to run twice.
 *
 * So a call returns within 4 x timeout at worst (waiting for the mutex,
 * an exchange on a stale connection, a connect and an exchange on a fresh
 * one), and at once while Redis refuses connections. Commands are
 * collected in a batch and sent as one pipeline. */
#ifndef CHAT_REDIS_H
#define CHAT_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* After a connect that timed out (not one refused at once), calls fail
 * at once for this long. */
#define CHAT_REDIS_BACKOFF_MS 100

typedef struct chat_redis chat_redis;

/* A connection to addr ("host:port"; an IPv4/IPv6 literal or a name).
 * timeout_ms (<= 0: 500) bounds the connect and each command exchange.
 * Does not connect yet. NULL with a reason in err on a bad address. */
chat_redis *chat_redis_new(const char *addr, int timeout_ms, char *err,
                           size_t errlen);

/* Close and free. Accepts NULL. No call may be in progress. */
void chat_redis_free(chat_redis *r);

/* Commands to send in one pipeline, in hiredis format syntax (%s a C
 * string, %b a pointer and a size_t length, %d/%lld/%llu integers). */
typedef struct chat_redis_batch {
	char *buf;
	size_t len, cap;
	size_t n;   /* commands */
	int failed; /* a command could not be added (memory, format) */
} chat_redis_batch;

void chat_redis_batch_init(chat_redis_batch *b);
/* Forget the commands, keep the memory. */
void chat_redis_batch_reset(chat_redis_batch *b);
void chat_redis_batch_fini(chat_redis_batch *b);
/* Append one command. Returns 0, or -1 (then b->failed is set and
 * chat_redis_exec refuses the batch). */
int chat_redis_batch_add(chat_redis_batch *b, const char *fmt, ...);
/* Append one command from an argument vector (lens may be NULL for C
 * strings). */
int chat_redis_batch_argv(chat_redis_batch *b, int argc, const char **argv,
                          const size_t *lens);

/* Send the batch and read its b->n replies into *replies (a malloc'ed
 * array; a reply may be of type REDIS_REPLY_ERROR: that is Redis
 * answering, not a failure). Returns 0, or -1 when Redis could not be
 * reached or did not answer in time (nothing in *replies; the reason is
 * in err, which may be NULL). Thread-safe; bounded in time as above. */
int chat_redis_exec(chat_redis *r, const chat_redis_batch *b,
                    redisReply ***replies, char *err, size_t errlen);

/* Free the replies of chat_redis_exec. Accepts NULL. */
void chat_redis_replies_free(redisReply **replies, size_t n);

/* One command; the reply (free with freeReplyObject), or NULL when Redis
 * could not be reached or did not answer in time. */
redisReply *chat_redis_command(chat_redis *r, const char *fmt, ...);

/* The address given to chat_redis_new. */
const char *chat_redis_addr(const chat_redis *r);

/* Connections made so far, and calls that failed on I/O (for counters
 * and tests). */
uint64_t chat_redis_connects(chat_redis *r);
uint64_t chat_redis_failures(chat_redis *r);

/* Reply helpers: whether rep is an error reply (or NULL), and the integer
 * of an integer reply (or of a string holding one); def otherwise. */
int chat_redis_is_error(const redisReply *rep);
long long chat_redis_int(const redisReply *rep, long long def);

#endif
