/* The edge's frame logic, free of libwebsockets and sockets: turn one
 * complete client WebSocket message into either an Error to answer or a
 * request to perform, and encode server frames into shareable buffers.
 * The fuzz target tests/fuzz/edge_client_frame.c drives this directly. */
#ifndef EDGE_FRAME_H
#define EDGE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "chat_arena.h"
#include "chat_buf.h"
#include "chat_map.h"
#include "client.pb-c.h"

#define EDGE_MAX_FRAME 65536  /* largest client message accepted */
#define EDGE_MAX_BODY 4000    /* message body bytes */
#define EDGE_MAX_CMID 64      /* client_msg_id bytes */
#define EDGE_MAX_HISTORY 500  /* history limit */

/* chat_buf.kind tags: typing notices may be dropped under pressure. */
enum { EDGE_BUF_NORMAL = 0, EDGE_BUF_TYPING = 1 };

/* A token bucket: rate tokens per second, at most burst. */
typedef struct edge_bucket {
	double tokens;
	int64_t last_us;
} edge_bucket;

/* Start full. */
void edge_bucket_init(edge_bucket *b, int burst, int64_t now_us);

/* Take one token; 1 when there was one, 0 when the caller goes too fast. */
int edge_bucket_take(edge_bucket *b, int rate, int burst, int64_t now_us);

typedef enum edge_act_kind {
	EDGE_ACT_ERROR,  /* answer code/reason (edge_pack_act_error) */
	EDGE_ACT_PING,   /* answer a pong right away */
	EDGE_ACT_SEND,   /* a valid send: produce it to chat.ingress */
	EDGE_ACT_TYPING, /* publish a typing notice (no answer) */
	EDGE_ACT_RESUME, /* replay history (service-thread state machine) */
	EDGE_ACT_RPC,    /* a worker calls the store / presence */
	EDGE_ACT_DROP,   /* nothing to do (typing outside one's channels) */
} edge_act_kind;

typedef struct edge_act {
	edge_act_kind kind;
	uint64_t req_id;
	Chat__ClientFrame *frame; /* in the arena; NULL on a decode error */
	/* EDGE_ACT_ERROR only: */
	int code;
	char reason[128];
	uint64_t channel_id;
	const char *client_msg_id; /* in the arena, or NULL */
} edge_act;

/* What the decision needs to know about the session. */
typedef struct edge_sess_view {
	const chat_u64map *channels; /* the session's channels (any value) */
	edge_bucket *bucket;         /* the session's send bucket */
	int send_rate, send_burst;
	int64_t now_us;              /* monotonic clock */
} edge_sess_view;

/* Decide what to do with one complete client message of len bytes
 * (is_text: it arrived as a text frame). The frame is unpacked into a;
 * act->frame stays valid as long as a does. Never fails: a bad input
 * yields EDGE_ACT_ERROR with the reason meant for the client. Takes a send
 * token from v->bucket for a valid send. */
void edge_frame_decide(chat_arena *a, const uint8_t *data, size_t len,
                       int is_text, const edge_sess_view *v, edge_act *act);

/* The answer to a message that exceeded EDGE_MAX_FRAME. */
void edge_act_oversize(edge_act *act);

/* Pack f into a new buffer tagged kind. NULL when out of memory. */
chat_buf *edge_pack(const Chat__ServerFrame *f, uint8_t kind);

/* An Error frame. reason and client_msg_id may be NULL. */
chat_buf *edge_pack_error(uint64_t req_id, int code, const char *reason,
                          uint64_t channel_id, const char *client_msg_id);

/* The Error frame for an EDGE_ACT_ERROR decision. */
chat_buf *edge_pack_act_error(const edge_act *act);

/* The Pong answering a ping request. */
chat_buf *edge_pack_pong(uint64_t req_id, int64_t client_time_ms,
                         int64_t server_time_ms);

#endif
