/* Presence state in memory (the embedded mode): lost when the process
 * ends; chosen statuses are sticky while it lives. Not locked: the
 * service serialises calls (pres_backend.h). */
#include <stdlib.h>
#include <string.h>

#include "chat_map.h"
#include "chat_routing.h"
#include "chat_status.h"
#include "chat_util.h"
#include "pres_backend.h"

struct psess {
	uint64_t id;
	char edge[CHAT_EDGE_ID_MAX];
};

struct puser {
	char name[PRES_NAME_MAX];
	Chat__Status chosen;  /* sticky while the process lives */
	int64_t last_down_ms; /* the last SessionDown; 0 = never */
	struct psess *sess;
	size_t n, cap;
};

struct mem {
	pres_backend base;
	chat_u64map users; /* user id -> struct puser */
	size_t n_sessions;
};

static Chat__Status visible(const struct puser *u)
{
	return u && u->n ? u->chosen : CHAT__STATUS__STATUS_OFFLINE;
}

static void view(const struct puser *u, int64_t now, pres_view *v)
{
	chat_strlcpy(v->name, u ? u->name : "", sizeof v->name);
	v->status = visible(u);
	if (v->status != CHAT__STATUS__STATUS_OFFLINE)
		v->last_seen_ms = now;
	else
		v->last_seen_ms = u ? u->last_down_ms : 0;
}

static struct puser *user_get(struct mem *m, uint64_t id, int create)
{
	struct puser *u = chat_u64map_get(&m->users, id);
	if (u || !create)
		return u;
	u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->chosen = CHAT__STATUS__STATUS_ONLINE;
	if (chat_u64map_put(&m->users, id, u) != 0) {
		free(u);
		return NULL;
	}
	return u;
}

static void set_name(struct puser *u, const char *name)
{
	if (name && name[0])
		chat_strlcpy(u->name, name, sizeof u->name);
}

static int mem_up(pres_backend *b, uint64_t user, const char *name,
                  uint64_t session, const char *edge, int64_t now,
                  pres_view *v, int *changed)
{
	struct mem *m = (struct mem *)b;
	struct puser *u = user_get(m, user, 1);
	Chat__Status before;
	size_t i;

	*changed = 0;
	if (!u)
		return CHAT_RESOURCE_EXHAUSTED;
	set_name(u, name);
	before = visible(u);
	for (i = 0; i < u->n && u->sess[i].id != session; i++)
		;
	if (i == u->n) {
		if (u->n == u->cap) {
			size_t cap = u->cap ? 2 * u->cap : 2;
			struct psess *s = realloc(u->sess, cap * sizeof *s);
			if (!s)
				return CHAT_RESOURCE_EXHAUSTED;
			u->sess = s;
			u->cap = cap;
		}
		u->sess[u->n].id = session;
		chat_strlcpy(u->sess[u->n].edge, edge ? edge : "",
		             sizeof u->sess[u->n].edge);
		u->n++;
		m->n_sessions++;
	}
	*changed = visible(u) != before;
	view(u, now, v);
	return CHAT_OK;
}

static int mem_down(pres_backend *b, uint64_t user, const char *name,
                    uint64_t session, int64_t now, pres_view *v,
                    int *changed)
{
	struct mem *m = (struct mem *)b;
	struct puser *u = user_get(m, user, 0);
	*changed = 0;
	if (u) {
		Chat__Status before = visible(u);
		set_name(u, name);
		for (size_t i = 0; i < u->n; i++) {
			if (u->sess[i].id != session)
				continue;
			u->sess[i] = u->sess[--u->n];
			m->n_sessions--;
			u->last_down_ms = now;
			break;
		}
		*changed = visible(u) != before;
	}
	view(u, now, v);
	return CHAT_OK;
}

static int mem_set(pres_backend *b, uint64_t user, const char *name,
                   Chat__Status status, int64_t now, pres_view *v,
                   int *changed)
{
	struct mem *m = (struct mem *)b;
	struct puser *u = user_get(m, user, 1);
	Chat__Status before;
	*changed = 0;
	if (!u)
		return CHAT_RESOURCE_EXHAUSTED;
	set_name(u, name);
	before = visible(u);
	u->chosen = status;
	*changed = visible(u) != before;
	view(u, now, v);
	return CHAT_OK;
}

static int mem_query(pres_backend *b, const uint64_t *users, size_t n,
                     int64_t now, pres_view *out)
{
	struct mem *m = (struct mem *)b;
	for (size_t i = 0; i < n; i++) {
		uint64_t id = users[i];
		int ok = id != 0 && id != UINT64_MAX;
		view(ok ? user_get(m, id, 0) : NULL, now, &out[i]);
	}
	return CHAT_OK;
}

static void mem_counters(pres_backend *b, int64_t *users, int64_t *sessions)
{
	struct mem *m = (struct mem *)b;
	*users = (int64_t)m->users.len;
	*sessions = (int64_t)m->n_sessions;
}

static void mem_free(pres_backend *b)
{
	struct mem *m = (struct mem *)b;
	size_t it = 0;
	uint64_t k;
	void *v;
	while (chat_u64map_next(&m->users, &it, &k, &v)) {
		struct puser *u = v;
		free(u->sess);
		free(u);
	}
	chat_u64map_fini(&m->users);
	free(m);
}

static const pres_backend_ops mem_ops = {
    mem_up, mem_down, mem_set, mem_query, NULL, mem_counters, mem_free,
};

pres_backend *pres_mem_new(void)
{
	struct mem *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->base.ops = &mem_ops;
	chat_u64map_init(&m->users);
	return &m->base;
}
