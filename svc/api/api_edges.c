/* The edges the api hands out (see api_edges.h). */
#include "api_edges.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chat_json.h"
#include "chat_log.h"
#include "chat_util.h"

#define SVC "api"
#define HANDED_SLOTS 3      /* handed counts the last 2-3 s */
#define HANDED_SLOT_MS 1000
#define PROBE_MAX 1024      /* edges probed per round */

struct live_edge {
	char id[CHAT_DISC_ID_MAX];
	char url[CHAT_URL_MAX];
	char rpc[CHAT_URL_MAX];
	int64_t load;
	int down;        /* the last probe found its port dead */
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
		chat_strlcpy(v[k].rpc, e[i].rpc, sizeof v[k].rpc);
		v[k].load = e[i].load < 0 ? 0 : e[i].load;
		v[k].slot_ms = chat_mono_ms();
		/* a new report counts what was handed out before it; the
		 * probe's verdict stays while the address does */
		for (size_t j = 0; j < s->n; j++) {
			if (strcmp(s->v[j].id, v[k].id) != 0)
				continue;
			if (!strcmp(s->v[j].rpc, v[k].rpc))
				v[k].down = s->v[j].down;
			if (s->v[j].load == v[k].load) {
				memcpy(v[k].handed, s->v[j].handed,
				       sizeof v[k].handed);
				v[k].slot_ms = s->v[j].slot_ms;
			}
		}
		k++;
	}
	free(s->v);
	s->v = v;
	s->n = k;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* Whether every edge is marked down (under mu). */
static int all_down(const api_edges *s)
{
	for (size_t k = 0; k < s->n; k++)
		if (!s->v[k].down)
			return 0;
	return 1;
}

int api_edges_pick(api_edges *s, char *url, size_t urllen, char *id,
                   size_t idlen)
{
	struct live_edge *best = NULL;
	int64_t now = chat_mono_ms(), best_w = 0;
	int alld;

	pthread_mutex_lock(&s->mu);
	alld = all_down(s);
	for (size_t i = 0; i < s->n; i++) {
		int64_t w;
		if (s->v[i].down && !alld)
			continue;
		w = s->v[i].load + handed(&s->v[i], now);
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
	size_t cap, off, listed = 0;
	int alld;
	char *buf, *out;

	pthread_mutex_lock(&s->mu);
	alld = all_down(s);
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
		if (s->v[i].down && !alld)
			continue;
		off += (size_t)snprintf(out + off, cap - off, "%s{\"id\":",
		                        listed++ ? "," : "");
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

/* ---- the probe --------------------------------------------------------- */

struct probe {
	char id[CHAT_DISC_ID_MAX];
	char rpc[CHAT_URL_MAX];
	int fd;      /* connecting; -1 when decided or not probed */
	int verdict; /* -1 unknown, 0 up, 1 down */
	int err;
};

/* Start a non-blocking connect to the tcp://HOST:PORT of p. */
static void probe_start(struct probe *p)
{
	struct addrinfo hints, *res = NULL;
	char host[CHAT_URL_MAX], *port;
	const char *h;

	p->fd = -1;
	p->verdict = -1;
	if (strncmp(p->rpc, "tcp://", 6) != 0)
		return;
	h = p->rpc + 6;
	if (*h == '[') { /* [v6]:port */
		const char *e = strchr(h, ']');
		if (!e || e[1] != ':')
			return;
		snprintf(host, sizeof host, "%.*s", (int)(e - h - 1), h + 1);
		port = (char *)e + 2;
	} else {
		char *c;
		chat_strlcpy(host, h, sizeof host);
		if (!(c = strrchr(host, ':')))
			return;
		*c = '\0';
		port = (char *)h + (c - host) + 1;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
		return; /* does not resolve: no verdict */
	p->fd = socket(res->ai_family,
	               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd >= 0 && connect(p->fd, res->ai_addr, res->ai_addrlen) == 0) {
		p->verdict = 0;
	} else if (p->fd >= 0 && errno != EINPROGRESS) {
		p->verdict = 1;
		p->err = errno;
	}
	if (p->verdict >= 0 && p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	freeaddrinfo(res);
}

int api_edges_probe(api_edges *s, int timeout_ms)
{
	struct probe *p;
	struct pollfd *pf;
	size_t n, waiting = 0;
	int64_t deadline = chat_mono_ms() + (timeout_ms > 0 ? timeout_ms : 1);
	int down = 0;

	pthread_mutex_lock(&s->mu);
	n = s->n < PROBE_MAX ? s->n : PROBE_MAX;
	p = calloc(n ? n : 1, sizeof *p);
	pf = calloc(n ? n : 1, sizeof *pf);
	for (size_t i = 0; p && pf && i < n; i++) {
		chat_strlcpy(p[i].id, s->v[i].id, sizeof p[i].id);
		chat_strlcpy(p[i].rpc, s->v[i].rpc, sizeof p[i].rpc);
	}
	pthread_mutex_unlock(&s->mu);
	if (!p || !pf) {
		free(p);
		free(pf);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		probe_start(&p[i]);
		waiting += p[i].fd >= 0;
	}
	while (waiting) {
		int64_t left = deadline - chat_mono_ms();
		size_t k = 0;
		int rc;
		if (left <= 0)
			break;
		for (size_t i = 0; i < n; i++) {
			pf[i].fd = p[i].fd; /* < 0: ignored by poll */
			pf[i].events = POLLOUT;
			pf[i].revents = 0;
		}
		rc = poll(pf, n, (int)left);
		if (rc < 0 && errno != EINTR)
			break;
		for (size_t i = 0; rc > 0 && i < n; i++) {
			int e = 0;
			socklen_t el = sizeof e;
			if (p[i].fd < 0 || !pf[i].revents)
				continue;
			if (getsockopt(p[i].fd, SOL_SOCKET, SO_ERROR, &e, &el) !=
			    0)
				e = errno;
			p[i].verdict = e ? 1 : 0;
			p[i].err = e;
			close(p[i].fd);
			p[i].fd = -1;
			k++;
		}
		waiting -= k;
	}
	for (size_t i = 0; i < n; i++)
		if (p[i].fd >= 0) { /* no answer in time */
			close(p[i].fd);
			p[i].fd = -1;
			p[i].verdict = 1;
			p[i].err = ETIMEDOUT;
		}
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < s->n; k++) {
			struct live_edge *e = &s->v[k];
			if (p[i].verdict < 0 || strcmp(e->id, p[i].id) ||
			    strcmp(e->rpc, p[i].rpc) || e->down == p[i].verdict)
				continue;
			e->down = p[i].verdict;
			if (e->down)
				chat_warn(SVC, "edge_unreachable",
				          "edge=%s rpc=%s reason=\"%s\" "
				          "action=not_handed_out",
				          e->id, e->rpc, strerror(p[i].err));
			else
				chat_info(SVC, "edge_reachable",
				          "edge=%s rpc=%s", e->id, e->rpc);
		}
	}
	for (size_t k = 0; k < s->n; k++)
		down += s->v[k].down;
	pthread_mutex_unlock(&s->mu);
	free(p);
	free(pf);
	return down;
}

int api_edges_down(api_edges *s, const char *id)
{
	int down = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t k = 0; k < s->n; k++)
		if (!strcmp(s->v[k].id, id))
			down = s->v[k].down;
	pthread_mutex_unlock(&s->mu);
	return down;
}
