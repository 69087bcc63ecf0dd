/* Reference-counted byte buffers with headroom, so one encoded frame can be
 * queued on many sessions and written by libwebsockets (which needs LWS_PRE
 * bytes before the payload) without a copy per recipient. */
#ifndef CHAT_BUF_H
#define CHAT_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Headroom reserved before every payload; at least LWS_PRE (16 in lws 4.1). */
#define CHAT_BUF_PRE 32

typedef struct chat_buf {
	atomic_uint refs;
	uint32_t len;   /* payload bytes */
	uint8_t kind;   /* caller's tag (e.g. droppable typing notices) */
	_Alignas(16) uint8_t mem[]; /* CHAT_BUF_PRE headroom, then len bytes */
} chat_buf;

/* A buffer for len payload bytes with one reference; NULL when out of
 * memory. The payload is uninitialised. */
chat_buf *chat_buf_new(size_t len);

/* A buffer holding a copy of data. */
chat_buf *chat_buf_copy(const void *data, size_t len);

static inline uint8_t *chat_buf_data(chat_buf *b)
{
	return b->mem + CHAT_BUF_PRE;
}

/* Take another reference. Thread-safe. */
chat_buf *chat_buf_hold(chat_buf *b);

/* Drop a reference; frees on the last one. Accepts NULL. Thread-safe. */
void chat_buf_rele(chat_buf *b);

#endif
