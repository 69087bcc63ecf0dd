/* The edges the api hands out (see api_edges.h). */
#include "api_edges.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_json.h"
#include "chat_util.h"

#define HANDED_SLOTS 3      /* handed counts the last 2-3 s */
#define HANDED_SLOT_MS 1000

struct live_edge {
	char id[CHAT_DISC_ID_MAX];
	char url[CHAT_URL_MAX];
	int64_t load;
	/* handed out recently: per second, newest at [0] */
	int64_t handed[HANDED_SLOTS];
	int64_t slot_ms; /* when handed[0] began */
};

/* Move the slots on to now; returns the recent total. */
static int64_t handed(struct live_edge *e, int64_t now)
{
	int64_t sum = 0;
	while (now - e->slot_ms >= HANDED_SLOT_MS) {
		memmove(&e->handed[1], &e->handed[0],
		        (HANDED_SLOTS - 1) * sizeof e->handed[0]);
		e->handed[0] = 0;
		e->slot_ms = now - e->slot_ms >= HANDED_SLOTS * HANDED_SLOT_MS
		                 ? now
		                 : e->slot_ms + HANDED_SLOT_MS;
	}
	for (int i = 0; i < HANDED_SLOTS; i++)
		sum += e->handed[i];
	return sum;
}

struct api_edges {
	pthread_mutex_t mu;
	int with_load;
	struct live_edge *v;
	size_t n;
};

api_edges *api_edges_new(int with_load)
{
	api_edges *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	pthread_mutex_init(&s->mu, NULL);
	s->with_load = with_load;
	return s;
}

void api_edges_free(api_edges *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s->v);
	free(s);
}

int api_edges_set(api_edges *s, const chat_disc_entry *e, size_t n)
{
	struct live_edge *v = calloc(n ? n : 1, sizeof *v);
	size_t k = 0;

	if (!v)
		return -1;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		if (!e[i].id[0] || !e[i].pub[0])
			continue;
		chat_strlcpy(v[k].id, e[i].id, sizeof v[k].id);
		chat_strlcpy(v[k].url, e[i].pub, sizeof v[k].url);
		v[k].load = e[i].load < 0 ? 0 : e[i].load;
		v[k].slot_ms = chat_mono_ms();
		/* a new report counts what was handed out before it */
		for (size_t j = 0; j < s->n; j++)
			if (!strcmp(s->v[j].id, v[k].id) &&
			    s->v[j].load == v[k].load) {
				memcpy(v[k].handed, s->v[j].handed,
				       sizeof v[k].handed);
				v[k].slot_ms = s->v[j].slot_ms;
			}
		k++;
	}
	free(s->v);
	s->v = v;
	s->n = k;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int api_edges_pick(api_edges *s, char *url, size_t urllen, char *id,
                   size_t idlen)
{
	struct live_edge *best = NULL;
	int64_t now = chat_mono_ms(), best_w = 0;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n; i++) {
		int64_t w = s->v[i].load + handed(&s->v[i], now);
		if (!best || w < best_w) {
			best = &s->v[i];
			best_w = w;
		}
	}
	if (best) {
		best->handed[0]++;
		chat_strlcpy(url, best->url, urllen);
		if (id)
			chat_strlcpy(id, best->id, idlen);
	}
	pthread_mutex_unlock(&s->mu);
	return best ? 0 : -1;
}

size_t api_edges_count(api_edges *s)
{
	size_t n;
	pthread_mutex_lock(&s->mu);
	n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

char *api_edges_json(api_edges *s, size_t pre, size_t *len)
{
	size_t cap, off;
	char *buf, *out;

	pthread_mutex_lock(&s->mu);
	cap = 32;
	for (size_t i = 0; i < s->n; i++)
		cap += 64 + 6 * (strlen(s->v[i].id) + strlen(s->v[i].url));
	buf = malloc(pre + cap);
	if (!buf)
		goto out;
	out = buf + pre;
	off = (size_t)snprintf(out, cap, "{\"edges\":[");
	for (size_t i = 0; i < s->n; i++) {
		int n;
		off += (size_t)snprintf(out + off, cap - off, "%s{\"id\":",
		                        i ? "," : "");
		if ((n = chat_json_quote(s->v[i].id, out + off, cap - off)) < 0)
			goto fail;
		off += (size_t)n;
		off += (size_t)snprintf(out + off, cap - off, ",\"url\":");
		if ((n = chat_json_quote(s->v[i].url, out + off, cap - off)) <
		    0)
			goto fail;
		off += (size_t)n;
		if (s->with_load)
			off += (size_t)snprintf(out + off, cap - off,
			                        ",\"load\":%lld",
			                        (long long)s->v[i].load);
		off += (size_t)snprintf(out + off, cap - off, "}");
	}
	off += (size_t)snprintf(out + off, cap - off, "]}");
	*len = off;
	goto out;
fail:
	free(buf);
	buf = NULL;
out:
	pthread_mutex_unlock(&s->mu);
	return buf;
}
