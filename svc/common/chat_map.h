/* An open-addressing hash map from non-zero uint64 keys to pointers.
 * Not thread-safe: the owner locks if it shares it. */
#ifndef CHAT_MAP_H
#define CHAT_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct chat_u64map {
	uint64_t *keys;  /* 0 = empty, UINT64_MAX = deleted */
	void **vals;
	size_t cap, len, used;
} chat_u64map;

void chat_u64map_init(chat_u64map *m);
void chat_u64map_fini(chat_u64map *m);

/* The value for key, or NULL. */
void *chat_u64map_get(const chat_u64map *m, uint64_t key);

/* Insert or replace. key must not be 0 or UINT64_MAX. Returns 0 or -1
 * (out of memory). Replacing an existing key is safe while iterating. */
int chat_u64map_put(chat_u64map *m, uint64_t key, void *val);

/* Remove key; returns its value or NULL. */
void *chat_u64map_del(chat_u64map *m, uint64_t key);

/* Iterate: start with *it = 0; returns 1 with key/val while entries
 * remain. Do not insert while iterating (deleting the current is fine). */
int chat_u64map_next(const chat_u64map *m, size_t *it, uint64_t *key,
                     void **val);

#endif
