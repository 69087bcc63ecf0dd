/* Integration-test harness: start and stop a real chatd on loopback (free
 * ports, a temporary data directory, stopped by pid), and a protocol-level
 * test client that speaks the WebSocket frames of docs/PROTOCOL.md
 * directly, keeping every frame it receives so tests can wait for a reply
 * or a push. */
#ifndef ITEST_H
#define ITEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chatc_http.h"
#include "chatc_ws.h"
#include "client.pb-c.h"

/* ---- the server under test ---- */

typedef struct it_server {
	pid_t pid;
	char data_dir[256];
	char ready_file[300];
	char log_file[300];
	char api_url[128];
	char edge_url[256];
	int external; /* CHAT_TEST_API_URL was given: nothing started */
} it_server;

/* Start `chatd` (path in CHATD env or argv) with a fresh data dir unless
 * data_dir is given (restart on the same data), ports 0, and extra args
 * (NULL-terminated). Waits for its ready file (30 s). Returns 0 or -1.
 * With CHAT_TEST_API_URL set, starts nothing and uses that api (and the
 * edge CHAT_TEST_EDGE_URL for tests that dial an edge themselves). */
int it_server_start(it_server *s, const char *chatd, const char *data_dir,
                    const char *const *extra);

/* SIGTERM and wait (kill -9 after 20 s). sig 9 kills at once. Returns the
 * exit status (0 for a clean stop). Keeps the data dir. */
int it_server_stop(it_server *s, int sig);

/* Remove the data dir (after stop). */
void it_server_cleanup(it_server *s);

/* ---- the protocol-level client ---- */

typedef struct it_client {
	chatc_ws *ws;
	chatc_auth auth;
	uint64_t next_req;
	Chat__ServerFrame **frames; /* received, not yet taken */
	size_t n, cap;
	int closed;                 /* the server closed the connection */
	int close_code;
	char close_reason[128];
	char name[64], password[64];
} it_client;

/* Sign up (or log in when signup is 0) name on the api, then connect.
 * Returns 0, or -1 (err says why). */
int it_client_open(it_client *c, const it_server *s, const char *name,
                   int signup, char *err, size_t errlen);

/* Connect again (new session) with the token already held. */
int it_client_reconnect(it_client *c, char *err, size_t errlen);

/* Drop the TCP connection without a close handshake; frames kept. */
void it_client_drop(it_client *c);

void it_client_close(it_client *c);

/* Send a frame; sets f->req_id from the counter when it is 0. Returns the
 * req_id, or 0 on failure. */
uint64_t it_send(it_client *c, Chat__ClientFrame *f);

/* Read whatever arrives for up to ms milliseconds (stops early when
 * stop(c, arg) returns non-zero). */
void it_pump(it_client *c, int ms, int (*stop)(it_client *, void *),
             void *arg);

/* Wait up to ms for the answer to req_id (reply or Error); remove it from
 * the inbox and return it (free with chat__server_frame__free_unpacked),
 * or NULL on timeout. */
Chat__ServerFrame *it_wait_reply(it_client *c, uint64_t req_id, int ms);

/* Wait for a push of this kind (req_id 0) for which match(frame, arg)
 * holds (match may be NULL); remove and return it, or NULL on timeout. */
Chat__ServerFrame *it_wait_push(it_client *c, Chat__ServerFrame__KindCase kind,
                                int (*match)(const Chat__ServerFrame *, void *),
                                void *arg, int ms);

/* Remove and free every frame of this kind in the inbox; return how many. */
size_t it_drain(it_client *c, Chat__ServerFrame__KindCase kind);

/* Count frames of this kind in the inbox. */
size_t it_count(it_client *c, Chat__ServerFrame__KindCase kind);

/* Convenience requests: each waits for its answer (5 s) and returns it. */
Chat__ServerFrame *it_create(it_client *c, const char *name,
                             const char *const *members);
Chat__ServerFrame *it_join(it_client *c, uint64_t channel);
Chat__ServerFrame *it_leave(it_client *c, uint64_t channel);
Chat__ServerFrame *it_open_dm(it_client *c, const char *user);
Chat__ServerFrame *it_history(it_client *c, uint64_t channel, uint64_t anchor,
                              int after, uint32_t limit);
Chat__ServerFrame *it_mark_read(it_client *c, uint64_t channel, uint64_t seq);
Chat__ServerFrame *it_set_status(it_client *c, Chat__Status st);
Chat__ServerFrame *it_who(it_client *c, uint64_t channel);
Chat__ServerFrame *it_ping(it_client *c);
/* Send with the given client_msg_id (NULL: a fresh one); waits for the
 * ack or error. */
Chat__ServerFrame *it_send_msg(it_client *c, uint64_t channel,
                               const char *client_msg_id, const char *body);

/* Collect `count` message pushes for channel, in arrival order, into out
 * (seq numbers and bodies are checked by the caller). Returns how many
 * arrived within ms. Frames are freed; seqs/bodies copied. */
size_t it_collect(it_client *c, uint64_t channel, size_t count, uint64_t *seqs,
                  char (*bodies)[64], int ms);

/* A unique name for this run: prefix + pid + counter. */
void it_unique(char *out, size_t len, const char *prefix);

#endif
