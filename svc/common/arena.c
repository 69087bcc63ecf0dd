#include "chat_arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 8192

struct chunk {
	struct chunk *next;
	size_t size, used;
	/* data follows, 16-aligned */
	_Alignas(16) unsigned char data[];
};

struct chat_arena {
	struct chunk *head;   /* current chunk, newest first */
	ProtobufCAllocator pa;
};

static void *pa_alloc(void *data, size_t size)
{
	return chat_arena_alloc(data, size ? size : 1);
}

static void pa_free(void *data, void *p)
{
	(void)data;
	(void)p;
}

chat_arena *chat_arena_new(void)
{
	chat_arena *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->pa.alloc = pa_alloc;
	a->pa.free = pa_free;
	a->pa.allocator_data = a;
	return a;
}

void chat_arena_reset(chat_arena *a)
{
	struct chunk *c, *keep = NULL;
	if (!a)
		return;
	c = a->head;
	while (c) {
		struct chunk *n = c->next;
		if (!n && c->size == ARENA_CHUNK) {
			keep = c;
			break;
		}
		free(c);
		c = n;
	}
	if (keep)
		keep->used = 0;
	a->head = keep;
}

void chat_arena_free(chat_arena *a)
{
	struct chunk *c;
	if (!a)
		return;
	c = a->head;
	while (c) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
	free(a);
}

void *chat_arena_alloc(chat_arena *a, size_t size)
{
	struct chunk *c = a->head;
	void *p;

	size = (size + 15) & ~(size_t)15;
	if (size == 0)
		size = 16;
	if (!c || c->size - c->used < size) {
		size_t csize = size > ARENA_CHUNK / 2 ? size : ARENA_CHUNK;
		struct chunk *nc;
		if (size > SIZE_MAX - sizeof *nc)
			return NULL;
		nc = malloc(sizeof *nc + csize);
		if (!nc)
			return NULL;
		nc->size = csize;
		nc->used = 0;
		if (csize != ARENA_CHUNK && c) {
			/* A big one-off: keep the current chunk in front. */
			nc->next = c->next;
			c->next = nc;
			nc->used = size;
			memset(nc->data, 0, size);
			return nc->data;
		}
		nc->next = c;
		a->head = c = nc;
	}
	p = c->data + c->used;
	c->used += size;
	memset(p, 0, size);
	return p;
}

char *chat_arena_strndup(chat_arena *a, const char *s, size_t n)
{
	char *p = chat_arena_alloc(a, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

char *chat_arena_strdup(chat_arena *a, const char *s)
{
	return chat_arena_strndup(a, s ? s : "", s ? strlen(s) : 0);
}

char *chat_arena_printf(chat_arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = chat_arena_alloc(a, (size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

ProtobufCMessage *chat_arena_msg(chat_arena *a,
                                 const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = chat_arena_alloc(a, d->sizeof_message);
	if (m)
		d->message_init(m);
	return m;
}

void **chat_arena_ptrs(chat_arena *a, size_t n)
{
	return chat_arena_alloc(a, (n ? n : 1) * sizeof(void *));
}

ProtobufCAllocator *chat_arena_allocator(chat_arena *a)
{
	return &a->pa;
}

ProtobufCMessage *chat_arena_unpack(chat_arena *a,
                                    const ProtobufCMessageDescriptor *d,
                                    const void *data, size_t len)
{
	return protobuf_c_message_unpack(d, &a->pa, len, data);
}

void *chat_arena_pack(chat_arena *a, const ProtobufCMessage *m, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *p = chat_arena_alloc(a, n ? n : 1);
	if (!p)
		return NULL;
	*len = protobuf_c_message_pack(m, p);
	return p;
}
