/* RPC over nng REQ/REP, dispatched by method name from protoc-c service
 * descriptors. Requests and replies travel in the chat.RpcRequest /
 * chat.RpcReply envelope (proto/rpc.proto) with a gRPC-style status code, a
 * reason, and an absolute deadline.
 *
 * Server: a REP socket with one nng context per thread, so that a handler
 * may block (a database write, another RPC) without stalling the others.
 * Client: a REQ socket shared by all threads, one context per call. */
#ifndef CHAT_RPC_H
#define CHAT_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_arena.h"
#include "chat_status.h"

/* Largest RPC message accepted either way. */
#define CHAT_RPC_MAX_MSG (8u << 20)

typedef struct chat_rpc_call {
	const ProtobufCMessage *in; /* unpacked input, lives in arena */
	ProtobufCMessage *out;      /* initialised output; fill its fields */
	chat_arena *arena;          /* allocate out's fields here */
	int64_t deadline_ms;        /* absolute wall-clock ms, 0 = none */
	char reason[256];           /* set by chat_rpc_fail() */
} chat_rpc_call;

/* A method handler: fill call->out and return CHAT_OK, or return
 * chat_rpc_fail(call, status, ...). Runs on a server thread; may block. */
typedef int (*chat_rpc_fn)(void *arg, chat_rpc_call *call);

/* Record a reason for the reply and return status. */
int chat_rpc_fail(chat_rpc_call *call, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct chat_rpc_server chat_rpc_server;

/* Fills extra counters for Admin.Health (may be NULL). Allocate in arena. */
typedef void (*chat_rpc_health_fn)(void *arg, chat_arena *arena,
                                   size_t *n_counters, void ***counters);

/* A server named svc ("store") with nthreads handler threads. It answers
 * chat.Admin/Health by itself. NULL when out of memory. */
chat_rpc_server *chat_rpc_server_new(const char *svc, const char *instance,
                                     int nthreads);

/* Register a service. fns holds n_fns handlers in descriptor order; a
 * NULL entry, or a method past n_fns (added to the .proto later), answers
 * UNIMPLEMENTED. Call before chat_rpc_server_start. */
int chat_rpc_server_add(chat_rpc_server *s, const ProtobufCServiceDescriptor *d,
                        const chat_rpc_fn *fns, size_t n_fns, void *arg);

/* fns, n_fns for a handler array. */
#define CHAT_RPC_TABLE(fns) (fns), (sizeof(fns) / sizeof((fns)[0]))

void chat_rpc_server_set_health(chat_rpc_server *s, chat_rpc_health_fn fn,
                                void *arg);

/* Listen on url (inproc://, ipc://, tcp://host:port; tcp port 0 picks a
 * free port). *port receives the bound tcp port when non-NULL. May be
 * called more than once. Returns 0 or -1 with a reason in err. */
int chat_rpc_server_listen(chat_rpc_server *s, const char *url, int *port,
                           char *err, size_t errlen);

/* Start the handler threads. Returns 0 or -1. */
int chat_rpc_server_start(chat_rpc_server *s);

/* Handle one request envelope on the calling thread, as a handler thread
 * would, and return the packed reply envelope (in arena; *outlen its size).
 * For tests and fuzzing; the server need not be started. */
void *chat_rpc_server_handle(chat_rpc_server *s, chat_arena *arena,
                             const void *data, size_t len, size_t *outlen);

/* Counters: calls handled and calls that returned an error. */
uint64_t chat_rpc_server_calls(chat_rpc_server *s);

/* Close the socket, wait for the handlers to return, free. Accepts NULL. */
void chat_rpc_server_free(chat_rpc_server *s);

typedef struct chat_rpc_client chat_rpc_client;

/* After a URL is added, calls of a client in set mode wait this long at
 * most for a first connection before failing with UNAVAILABLE. */
#define CHAT_RPC_CONNECT_GRACE_MS 1000

/* A client of the server at url. Dialing is asynchronous and retried, so
 * the server may start later: a call waits for a connection until its
 * timeout. url NULL or "" makes a client in set mode with no URL (see
 * chat_rpc_client_set_urls). NULL with a reason in err on a bad url. */
chat_rpc_client *chat_rpc_client_new(const char *url, char *err,
                                     size_t errlen);

/* Make the client's URL set equal to urls[0..n) (duplicates ignored):
 * dial the new ones, close the dialers of the removed ones (their calls
 * in flight move to another connection, or fail by their deadline). nng
 * REQ spreads calls over the connected servers. From the first call on,
 * the client is in set mode: a call fails with UNAVAILABLE at once when
 * the set is empty, and when no server of the set is connected (after
 * waiting up to CHAT_RPC_CONNECT_GRACE_MS, within its timeout, when a URL
 * was just added). Thread-safe, also against calls in progress. Returns
 * 0, or -1 when some URL could not be dialed (it is left out; the others
 * are applied). */
int chat_rpc_client_set_urls(chat_rpc_client *c, const char *const *urls,
                             size_t n);

/* How many URLs the client holds and how many connections are up. */
void chat_rpc_client_state(chat_rpc_client *c, size_t *n_urls,
                           size_t *n_connected);

/* Call d's method with input in; on CHAT_OK *out is the unpacked output,
 * allocated in arena. Blocks for at most timeout_ms. On failure the reason
 * is in reason (may be NULL). Thread-safe. Returns a chat_status:
 * UNAVAILABLE when no server answered the send (in set mode also at once
 * when no server of the set is connected), DEADLINE_EXCEEDED on timeout,
 * or the status the handler returned. */
int chat_rpc_invoke(chat_rpc_client *c, const ProtobufCServiceDescriptor *d,
                    const char *method, const ProtobufCMessage *in,
                    chat_arena *arena, ProtobufCMessage **out, int timeout_ms,
                    char *reason, size_t reasonlen);

/* Close the socket; calls in progress fail with UNAVAILABLE. Accepts NULL. */
void chat_rpc_client_free(chat_rpc_client *c);

#endif
