/* A bump allocator: many small allocations freed all at once. RPC inputs and
 * outputs are unpacked into and built from an arena, so no message needs a
 * field-by-field free. Not thread-safe; one owner at a time. */
#ifndef CHAT_ARENA_H
#define CHAT_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct chat_arena chat_arena;

/* A new empty arena, or NULL when out of memory. */
chat_arena *chat_arena_new(void);

/* Frees every allocation and the arena. Accepts NULL. */
void chat_arena_free(chat_arena *a);

/* Frees every allocation but keeps the first chunk for reuse. */
void chat_arena_reset(chat_arena *a);

/* size bytes aligned to 16, zeroed; NULL when out of memory. */
void *chat_arena_alloc(chat_arena *a, size_t size);

/* Copies of a string / byte range in the arena (NULL when out of memory). */
char *chat_arena_strdup(chat_arena *a, const char *s);
char *chat_arena_strndup(chat_arena *a, const char *s, size_t n);
char *chat_arena_printf(chat_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An initialised, empty message of the descriptor's type in the arena. */
ProtobufCMessage *chat_arena_msg(chat_arena *a,
                                 const ProtobufCMessageDescriptor *d);

/* An array of n pointers (for repeated message fields). */
void **chat_arena_ptrs(chat_arena *a, size_t n);

/* A protobuf-c allocator that allocates from this arena (free is a no-op),
 * for protobuf_c_message_unpack(). */
ProtobufCAllocator *chat_arena_allocator(chat_arena *a);

/* Unpack len bytes as a message of type d into the arena. NULL when the
 * bytes are not a valid message. Input must be size-capped by the caller. */
ProtobufCMessage *chat_arena_unpack(chat_arena *a,
                                    const ProtobufCMessageDescriptor *d,
                                    const void *data, size_t len);

/* Pack m into the arena; *len receives the size. NULL when out of memory. */
void *chat_arena_pack(chat_arena *a, const ProtobufCMessage *m, size_t *len);

#endif
