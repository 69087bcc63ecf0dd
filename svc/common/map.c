#include "chat_map.h"

#include <stdlib.h>
#include <string.h>

#define DELETED UINT64_MAX

static size_t hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (size_t)k;
}

void chat_u64map_init(chat_u64map *m)
{
	memset(m, 0, sizeof *m);
}

void chat_u64map_fini(chat_u64map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

void *chat_u64map_get(const chat_u64map *m, uint64_t key)
{
	size_t i;
	if (!m->cap || key == 0 || key == DELETED)
		return NULL;
	for (i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key)
			return m->vals[i];
		if (m->keys[i] == 0)
			return NULL;
	}
}

static int grow(chat_u64map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	uint64_t *ok = m->keys;
	void **ov = m->vals;
	size_t ocap = m->cap;

	if (m->len * 2 < m->cap)
		ncap = m->cap; /* only tombstones to clear */
	m->keys = calloc(ncap, sizeof *m->keys);
	m->vals = calloc(ncap, sizeof *m->vals);
	if (!m->keys || !m->vals) {
		free(m->keys);
		free(m->vals);
		m->keys = ok;
		m->vals = ov;
		return -1;
	}
	m->cap = ncap;
	m->len = m->used = 0;
	for (size_t i = 0; i < ocap; i++)
		if (ok[i] && ok[i] != DELETED)
			chat_u64map_put(m, ok[i], ov[i]);
	free(ok);
	free(ov);
	return 0;
}

int chat_u64map_put(chat_u64map *m, uint64_t key, void *val)
{
	size_t i, tomb = SIZE_MAX;
	if (key == 0 || key == DELETED)
		return -1;
	/* Replacing never grows, so it is safe while iterating. */
	if (m->cap) {
		for (i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
			if (m->keys[i] == key) {
				m->vals[i] = val;
				return 0;
			}
			if (m->keys[i] == 0)
				break;
		}
	}
	if ((m->used + 1) * 4 >= m->cap * 3 && grow(m))
		return -1;
	for (i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return 0;
		}
		if (m->keys[i] == DELETED && tomb == SIZE_MAX)
			tomb = i;
		if (m->keys[i] == 0)
			break;
	}
	if (tomb != SIZE_MAX)
		i = tomb;
	else
		m->used++;
	m->keys[i] = key;
	m->vals[i] = val;
	m->len++;
	return 0;
}

void *chat_u64map_del(chat_u64map *m, uint64_t key)
{
	size_t i;
	if (!m->cap || key == 0 || key == DELETED)
		return NULL;
	for (i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			void *v = m->vals[i];
			m->keys[i] = DELETED;
			m->vals[i] = NULL;
			m->len--;
			return v;
		}
		if (m->keys[i] == 0)
			return NULL;
	}
}

int chat_u64map_next(const chat_u64map *m, size_t *it, uint64_t *key,
                     void **val)
{
	while (*it < m->cap) {
		size_t i = (*it)++;
		if (m->keys[i] && m->keys[i] != DELETED) {
			if (key)
				*key = m->keys[i];
			if (val)
				*val = m->vals[i];
			return 1;
		}
	}
	return 0;
}
