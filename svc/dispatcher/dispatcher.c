/* The dispatcher (see dispatcher.h).
 *
 * A consumer thread polls chat.fanout in batches (up to batch_max records,
 * or until nothing more arrives for ~2 ms), finds each event's edges in the
 * routing table, and appends the event to each edge's outbound queue,
 * keeping the batch's order. chat.Dispatcher/Publish does the same for the
 * events it is given. Each edge has a sender thread that drains its queue
 * in order and calls chat.Edge/Deliver on it, merging what has piled up
 * into one call: edges are served in parallel, one edge's batches stay in
 * order, and a dead edge only ever holds up its own queue.
 *
 * An event is encoded once. It is kept as its length-prefixed protobuf
 * bytes in a refcounted chat_buf shared by every edge queue it sits in,
 * and each Deliver's EventBatch is assembled from those bytes as "unknown"
 * fields numbered 1 (the `events` field) that protobuf-c packs verbatim:
 * the edge parses an ordinary EventBatch, and nothing is decoded and
 * re-encoded per edge. */
#include "dispatcher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_buf.h"
#include "chat_kafka.h"
#include "chat_discovery.h"
#include "chat_log.h"
#include "chat_map.h"
#include "chat_queue.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "common.pb-c.h"
#include "dispatcher.pb-c.h"
#include "edge.pb-c.h"
#include "rpc.pb-c.h"

#define SVC "dispatcher"
#define MAX_RECORD (1u << 20)       /* larger fan-out records are refused */
#define MAX_DELIVER_BYTES (4u << 20) /* per Deliver call */
#define MAX_EDGES 256
#define LOOKUP_MAX 64               /* edges per routing lookup */
#define BATCH_GAP_MS 0              /* a batch is what has arrived (see the
                                     * store's LINGER_MS) */
#define OVERLAY_SWEEP_MS 1000       /* expired join overlays dropped */
#define ROUTE_SWEEP_MS 2000         /* dead edges dropped from the table */

/* One edge's share of a batch: events in order. */
struct item {
	chat_qnode node;
	size_t n;
	chat_buf *ev[];
};

struct edge {
	char id[CHAT_EDGE_ID_MAX];
	disp *d;
	chat_queue q;
	atomic_long queued;       /* events waiting in q */
	pthread_t thread;
	/* Sender thread only: */
	chat_rpc_client *client;  /* for url; remade when the url changes */
	char url[CHAT_URL_MAX];
	int down;                 /* the last delivery failed twice */
};

/* The edges of a user who just joined a channel, routed with the channel
 * until the routing table shows them (see route_one). */
struct overlay {
	int64_t until_ms;
	size_t n;
	char ids[LOOKUP_MAX][CHAT_EDGE_ID_MAX];
};

struct disp {
	chat_routing *routing;
	char rpc_adv[CHAT_URL_MAX];
	int overlay_ms;
	pthread_mutex_t ov_mu;
	chat_u64map overlay;      /* channel -> struct overlay */
	int64_t ov_swept_ms;
	char instance[64];
	int batch_max, timeout_ms;
	long queue_max;

	chat_consumer *cons;
	pthread_t consumer;
	int consumer_started;
	atomic_int stop, stopping, assigned;

	chat_rpc_server *srv;

	pthread_mutex_t edges_mu;
	struct edge *edges[MAX_EDGES];
	int n_edges;

	atomic_llong consumed, published, delivered, failed, retried, dropped,
	    bad_records, unrouted, deliver_calls;
};

/* ---- encoding ---------------------------------------------------------- */

static size_t varint_put(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* A buffer holding varint(len) followed by the len bytes of an event. */
static chat_buf *event_buf(const void *data, size_t len)
{
	uint8_t pre[10];
	size_t pl = varint_put(pre, len);
	chat_buf *b = chat_buf_new(pl + len);
	if (!b)
		return NULL;
	memcpy(chat_buf_data(b), pre, pl);
	memcpy(chat_buf_data(b) + pl, data, len);
	return b;
}

static chat_buf *event_buf_pack(const Chat__Event *ev)
{
	size_t len = chat__event__get_packed_size(ev);
	uint8_t pre[10];
	size_t pl = varint_put(pre, len);
	chat_buf *b = chat_buf_new(pl + len);
	if (!b)
		return NULL;
	memcpy(chat_buf_data(b), pre, pl);
	chat__event__pack(ev, chat_buf_data(b) + pl);
	return b;
}

/* ---- edge senders ------------------------------------------------------ */

static void item_free(struct item *it)
{
	if (!it)
		return;
	for (size_t i = 0; i < it->n; i++)
		chat_buf_rele(it->ev[i]);
	free(it);
}

/* One Deliver call with n events. Returns a chat_status; *no_route is set
 * when the edge is not (or no longer) in the routing table. */
static int deliver_once(struct edge *e, chat_arena *a, chat_buf **ev,
                        size_t n, int *no_route, char *why, size_t whylen)
{
	disp *d = e->d;
	Chat__EventBatch batch = CHAT__EVENT_BATCH__INIT;
	ProtobufCMessageUnknownField *uf;
	ProtobufCMessage *out = NULL;
	char url[CHAT_URL_MAX], err[256];

	*no_route = 0;
	if (d->routing->ops->edge_url(d->routing, e->id, url, sizeof url) !=
	    0) {
		if (!chat_routing_redis_degraded(d->routing) || !e->url[0]) {
			*no_route = 1;
			snprintf(why, whylen, "edge not in the routing table");
			return CHAT_NOT_FOUND;
		}
		/* the table may have lost it for a moment: where it was */
		chat_strlcpy(url, e->url, sizeof url);
	}
	if (!e->client || strcmp(url, e->url) != 0) {
		chat_rpc_client_free(e->client);
		e->client = chat_rpc_client_new(url, err, sizeof err);
		if (!e->client) {
			snprintf(why, whylen, "%s", err);
			return CHAT_INVALID_ARGUMENT;
		}
		chat_strlcpy(e->url, url, sizeof e->url);
	}
	uf = chat_arena_alloc(a, n * sizeof *uf);
	if (!uf) {
		snprintf(why, whylen, "out of memory");
		return CHAT_RESOURCE_EXHAUSTED;
	}
	for (size_t i = 0; i < n; i++) {
		uf[i].tag = 1; /* EventBatch.events */
		uf[i].wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
		uf[i].len = ev[i]->len;
		uf[i].data = chat_buf_data(ev[i]);
	}
	batch.base.n_unknown_fields = (unsigned)n;
	batch.base.unknown_fields = uf;
	atomic_fetch_add(&d->deliver_calls, 1);
	return chat_rpc_invoke(e->client, &chat__edge__descriptor, "Deliver",
	                       &batch.base, a, &out, d->timeout_ms, why,
	                       whylen);
}

/* Deliver n events, retrying once. A batch that fails twice is dropped:
 * clients notice the gap in seq and fetch the history, or resume after
 * reconnecting, so nothing stored is lost; ephemeral events (typing,
 * presence) are at most once by design. */
static void deliver(struct edge *e, chat_arena *a, chat_buf **ev, size_t n)
{
	disp *d = e->d;
	char why[256];
	int st, no_route = 0, stopping = atomic_load(&d->stopping);

	if (stopping && e->down) {
		atomic_fetch_add(&d->failed, (long long)n);
		return;
	}
	st = deliver_once(e, a, ev, n, &no_route, why, sizeof why);
	if (st != CHAT_OK && !no_route && !stopping) {
		chat_warn(SVC, "deliver_failed", "edge=%s n=%zu code=%s "
		          "reason=\"%s\" retry=1", e->id, n, chat_strerror(st),
		          why);
		atomic_fetch_add(&d->retried, 1);
		chat_arena_reset(a);
		st = deliver_once(e, a, ev, n, &no_route, why, sizeof why);
	}
	chat_arena_reset(a);
	if (st == CHAT_OK) {
		if (e->down)
			chat_info(SVC, "edge_up", "edge=%s", e->id);
		e->down = 0;
		atomic_fetch_add(&d->delivered, (long long)n);
		return;
	}
	e->down = 1;
	atomic_fetch_add(&d->failed, (long long)n);
	chat_warn(SVC, "deliver_failed", "edge=%s n=%zu code=%s reason=\"%s\" "
	          "dropped=1", e->id, n, chat_strerror(st), why);
}

/* Deliver a list of items, merged into calls of at most batch_max events
 * and MAX_DELIVER_BYTES. */
static void deliver_list(struct edge *e, chat_arena *a, chat_qnode *list,
                         chat_buf **ev, size_t cap)
{
	size_t n = 0, bytes = 0;
	while (list) {
		struct item *it = CHAT_CONTAINER_OF(list, struct item, node);
		list = list->next;
		atomic_fetch_sub(&e->queued, (long)it->n);
		for (size_t i = 0; i < it->n; i++) {
			if (n == cap || (n && bytes + it->ev[i]->len >
			                          MAX_DELIVER_BYTES)) {
				deliver(e, a, ev, n);
				for (size_t k = 0; k < n; k++)
					chat_buf_rele(ev[k]);
				n = bytes = 0;
			}
			ev[n++] = it->ev[i];
			bytes += it->ev[i]->len;
			it->ev[i] = NULL;
		}
		free(it);
	}
	if (n)
		deliver(e, a, ev, n);
	for (size_t k = 0; k < n; k++)
		chat_buf_rele(ev[k]);
}

static void *edge_main(void *arg)
{
	struct edge *e = arg;
	size_t cap = (size_t)e->d->batch_max;
	chat_buf **ev = malloc(cap * sizeof *ev);
	chat_arena *a = chat_arena_new();
	chat_qnode *first;

	while ((first = chat_queue_pop_wait(&e->q)) != NULL) {
		chat_qnode *rest = chat_queue_take_all(&e->q);
		first->next = rest;
		if (!ev || !a) { /* out of memory: drop */
			while (first) {
				struct item *it = CHAT_CONTAINER_OF(
				    first, struct item, node);
				first = first->next;
				atomic_fetch_sub(&e->queued, (long)it->n);
				atomic_fetch_add(&e->d->failed,
				                 (long long)it->n);
				item_free(it);
			}
			continue;
		}
		deliver_list(e, a, first, ev, cap);
	}
	chat_arena_free(a);
	free(ev);
	return NULL;
}

/* The edge named id, its sender started on first use. NULL when the table
 * is full or out of memory. */
static struct edge *edge_get(disp *d, const char *id)
{
	struct edge *e = NULL;
	pthread_mutex_lock(&d->edges_mu);
	for (int i = 0; i < d->n_edges; i++)
		if (!strcmp(d->edges[i]->id, id)) {
			e = d->edges[i];
			goto out;
		}
	if (d->n_edges == MAX_EDGES || atomic_load(&d->stopping) ||
	    !(e = calloc(1, sizeof *e)))
		goto out;
	chat_strlcpy(e->id, id, sizeof e->id);
	e->d = d;
	chat_queue_init(&e->q);
	if (pthread_create(&e->thread, NULL, edge_main, e) != 0) {
		chat_queue_fini(&e->q);
		free(e);
		e = NULL;
		goto out;
	}
	d->edges[d->n_edges++] = e;
	chat_info(SVC, "edge_added", "edge=%s", id);
out:
	pthread_mutex_unlock(&d->edges_mu);
	return e;
}

/* ---- routing ----------------------------------------------------------- */

/* An edge's share of the batch being routed. */
struct share {
	char id[CHAT_EDGE_ID_MAX];
	struct item *it;
};

/* One routing lookup's answer, kept for the rest of the batch. */
struct found {
	size_t n;
	char ids[][CHAT_EDGE_ID_MAX];
};

struct router {
	struct share *shares;
	size_t n, cap, nev;
	chat_u64map memo[2]; /* [is_user] key -> struct found */
	/* the edges known to this dispatcher, taken once per batch when the
	 * table is degraded (see route_one) */
	char (*known)[CHAT_EDGE_ID_MAX];
	size_t nknown;
	int known_taken;
};

static void router_init(struct router *r, struct share *shares, size_t cap,
                        size_t nev)
{
	memset(r, 0, sizeof *r);
	r->shares = shares;
	r->cap = cap;
	r->nev = nev;
	chat_u64map_init(&r->memo[0]);
	chat_u64map_init(&r->memo[1]);
}

static void router_fini(struct router *r)
{
	free(r->known);
	for (int k = 0; k < 2; k++) {
		size_t it = 0;
		uint64_t key;
		void *v;
		while (chat_u64map_next(&r->memo[k], &it, &key, &v))
			free(v);
		chat_u64map_fini(&r->memo[k]);
	}
}

/* The edges of a channel or a user: looked up once per batch (one event
 * after another of a channel costs one lookup). Never NULL. */
static const struct found *lookup(disp *d, struct router *r, int is_user,
                                  uint64_t key)
{
	static const struct found none = {0};
	char ids[LOOKUP_MAX][CHAT_EDGE_ID_MAX];
	struct found *f;
	size_t n;

	if (key == 0 || key == UINT64_MAX)
		return &none;
	f = chat_u64map_get(&r->memo[is_user ? 1 : 0], key);
	if (f)
		return f;
	n = d->routing->ops->lookup(d->routing, is_user, key, ids,
	                            LOOKUP_MAX);
	if (n > LOOKUP_MAX)
		n = LOOKUP_MAX;
	f = malloc(sizeof *f + n * CHAT_EDGE_ID_MAX);
	if (!f)
		return &none;
	f->n = n;
	for (size_t i = 0; i < n; i++) {
		memcpy(f->ids[i], ids[i], CHAT_EDGE_ID_MAX);
		f->ids[i][CHAT_EDGE_ID_MAX - 1] = '\0';
	}
	if (chat_u64map_put(&r->memo[is_user ? 1 : 0], key, f) != 0) {
		free(f);
		return &none;
	}
	return f;
}

static int add_ids(char (*ids)[CHAT_EDGE_ID_MAX], size_t *n,
                   const char (*found)[CHAT_EDGE_ID_MAX], size_t k)
{
	for (size_t i = 0; i < k; i++) {
		size_t j;
		for (j = 0; j < *n && strcmp(ids[j], found[i]); j++)
			;
		if (j < *n)
			continue; /* already has it */
		if (*n == MAX_EDGES)
			return -1;
		memcpy(ids[(*n)++], found[i], CHAT_EDGE_ID_MAX);
	}
	return 0;
}

/* A user joined a channel: the edges of their sessions subscribe to it
 * when this event reaches them, and only then tell the routing table,
 * so the channel's next events (right behind this one in its partition)
 * would miss them. Route the channel to those edges too for a while. */
static void overlay_add(disp *d, uint64_t channel, const struct found *f)
{
	struct overlay *o;
	int64_t now = chat_mono_ms();

	if (!f->n || !channel || channel == UINT64_MAX)
		return;
	pthread_mutex_lock(&d->ov_mu);
	o = chat_u64map_get(&d->overlay, channel);
	if (!o || o->until_ms < now) {
		if (!o && (!(o = calloc(1, sizeof *o)) ||
		           chat_u64map_put(&d->overlay, channel, o) != 0)) {
			free(o);
			pthread_mutex_unlock(&d->ov_mu);
			return;
		}
		o->n = 0;
	}
	o->until_ms = now + d->overlay_ms;
	for (size_t i = 0; i < f->n; i++) {
		size_t j;
		for (j = 0; j < o->n && strcmp(o->ids[j], f->ids[i]); j++)
			;
		if (j == o->n && o->n < LOOKUP_MAX)
			memcpy(o->ids[o->n++], f->ids[i], CHAT_EDGE_ID_MAX);
	}
	pthread_mutex_unlock(&d->ov_mu);
}

/* Add the overlay of channel (if any, and current) to ids. */
static void overlay_get(disp *d, uint64_t channel,
                        char (*ids)[CHAT_EDGE_ID_MAX], size_t *n)
{
	struct overlay *o;
	int64_t now = chat_mono_ms();

	pthread_mutex_lock(&d->ov_mu);
	if (d->overlay.len && (o = chat_u64map_get(&d->overlay, channel)) &&
	    o->until_ms >= now)
		add_ids(ids, n, (const char(*)[CHAT_EDGE_ID_MAX])o->ids, o->n);
	if (now - d->ov_swept_ms >= OVERLAY_SWEEP_MS) {
		size_t it = 0;
		uint64_t key;
		void *v;
		d->ov_swept_ms = now;
		while (chat_u64map_next(&d->overlay, &it, &key, &v))
			if (((struct overlay *)v)->until_ms < now)
				free(chat_u64map_del(&d->overlay, key));
	}
	pthread_mutex_unlock(&d->ov_mu);
}

static void add_channel(disp *d, struct router *r,
                        char (*ids)[CHAT_EDGE_ID_MAX], size_t *n,
                        uint64_t channel)
{
	const struct found *f = lookup(d, r, 0, channel);
	add_ids(ids, n, (const char(*)[CHAT_EDGE_ID_MAX])f->ids, f->n);
	overlay_get(d, channel, ids, n);
}

/* The edges this dispatcher has delivered to (their senders exist), once
 * per batch. */
static void take_known(disp *d, struct router *r)
{
	if (r->known_taken)
		return;
	r->known_taken = 1;
	pthread_mutex_lock(&d->edges_mu);
	r->known = d->n_edges ? calloc((size_t)d->n_edges, CHAT_EDGE_ID_MAX)
	                      : NULL;
	for (int i = 0; r->known && i < d->n_edges; i++)
		memcpy(r->known[r->nknown++], d->edges[i]->id,
		       CHAT_EDGE_ID_MAX);
	pthread_mutex_unlock(&d->edges_mu);
}

/* Append ev to the share of every edge interested in it. */
static void route_one(disp *d, struct router *r, const Chat__Event *ev,
                      chat_buf *b)
{
	static _Thread_local char ids[MAX_EDGES][CHAT_EDGE_ID_MAX];
	size_t n = 0;

	for (size_t i = 0; i < ev->n_user_ids; i++) {
		const struct found *f = lookup(d, r, 1, ev->user_ids[i]);
		add_ids(ids, &n, (const char(*)[CHAT_EDGE_ID_MAX])f->ids,
		        f->n);
		if (ev->kind_case == CHAT__EVENT__KIND_MEMBER && ev->member &&
		    ev->member->kind == CHAT__MEMBER_EVENT__KIND__JOINED &&
		    ev->member->user_id == ev->user_ids[i])
			overlay_add(d, ev->member->channel_id, f);
	}
	if (ev->channel_id)
		add_channel(d, r, ids, &n, ev->channel_id);
	for (size_t i = 0; i < ev->n_channel_ids; i++)
		add_channel(d, r, ids, &n, ev->channel_ids[i]);
	/* Redis failed or came back (maybe empty) a moment ago: the table
	 * may miss edges until they heartbeat again, so send to every edge
	 * known here as well (an edge ignores what none of its sessions
	 * wants) rather than drop what clients would only recover at the
	 * channel's next message. */
	if (chat_routing_redis_degraded(d->routing)) {
		take_known(d, r);
		add_ids(ids, &n, (const char(*)[CHAT_EDGE_ID_MAX])r->known,
		        r->nknown);
	}
	if (!n)
		atomic_fetch_add(&d->unrouted, 1);
	for (size_t i = 0; i < n; i++) {
		struct share *s = NULL;
		for (size_t k = 0; k < r->n; k++)
			if (!strcmp(r->shares[k].id, ids[i]))
				s = &r->shares[k];
		if (!s) {
			if (r->n == r->cap)
				continue; /* cap is MAX_EDGES: cannot happen */
			s = &r->shares[r->n++];
			memcpy(s->id, ids[i], sizeof s->id);
			s->it = calloc(1, sizeof *s->it +
			                      r->nev * sizeof(chat_buf *));
		}
		if (s->it)
			s->it->ev[s->it->n++] = chat_buf_hold(b);
	}
}

/* Queue each share on its edge. */
static void router_flush(disp *d, struct router *r)
{
	for (size_t k = 0; k < r->n; k++) {
		struct share *s = &r->shares[k];
		struct edge *e;
		size_t n;
		if (!s->it) {
			chat_error(SVC, "route_failed", "edge=%s reason=oom",
			           s->id);
			continue;
		}
		n = s->it->n;
		e = edge_get(d, s->id);
		if (!e || atomic_load(&e->queued) + (long)n > d->queue_max ||
		    chat_queue_push(&e->q, &s->it->node) != 0) {
			/* Bounded memory: an edge that cannot keep up loses
			 * events; its clients recover them by seq. */
			atomic_fetch_add(&d->dropped, (long long)n);
			chat_warn(SVC, "deliver_dropped",
			          "edge=%s n=%zu reason=%s", s->id, n,
			          e ? "queue_full" : "no_sender");
			item_free(s->it);
		} else {
			atomic_fetch_add(&e->queued, (long)n);
		}
		s->it = NULL;
	}
	r->n = 0;
}

/* Route n events (each with its buffer) to the edges, in order. */
static void route_batch(disp *d, const Chat__Event *const *evs,
                        chat_buf **bufs, size_t n)
{
	struct share shares_stack[8];
	struct share *shares = calloc(MAX_EDGES, sizeof *shares);
	struct router r;

	if (!shares) {
		/* Out of memory: route in batches of one. */
		router_init(&r, shares_stack, 8, 1);
		for (size_t i = 0; i < n; i++) {
			route_one(d, &r, evs[i], bufs[i]);
			router_flush(d, &r);
		}
		router_fini(&r);
		return;
	}
	router_init(&r, shares, MAX_EDGES, n);
	for (size_t i = 0; i < n; i++)
		route_one(d, &r, evs[i], bufs[i]);
	router_flush(d, &r);
	router_fini(&r);
	free(shares);
}

/* ---- the chat.fanout consumer ------------------------------------------ */

static void rebalance(chat_consumer *c, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	disp *d = opaque;
	int n = chat_consumer_assign(c, err, parts);
	atomic_store(&d->assigned, n > 0 ? n : 0);
	chat_info(SVC, "rebalance", "kind=%s partitions=%d assigned=%d",
	          err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assign"
	                                                      : "revoke",
	          parts ? parts->cnt : 0, n);
}

/* Decode a polled batch and route it. Releases the records. */
static void consume_batch(disp *d, chat_arena *a, chat_rec *msgs, size_t n,
                          const Chat__Event **evs, chat_buf **bufs)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		chat_rec *m = &msgs[i];
		Chat__Event *ev;
		if (m->err) {
			chat_warn(SVC, "consume_error", "err=%s",
			          m->errstr ? m->errstr : "?");
			chat_rec_release(m);
			continue;
		}
		atomic_fetch_add(&d->consumed, 1);
		ev = m->len <= MAX_RECORD
		         ? (Chat__Event *)chat_arena_unpack(
		               a, &chat__event__descriptor, m->payload, m->len)
		         : NULL;
		if (!ev || !(bufs[k] = event_buf(m->payload, m->len))) {
			atomic_fetch_add(&d->bad_records, 1);
			chat_warn(SVC, "bad_record", "partition=%d offset=%lld "
			          "len=%zu", (int)m->partition,
			          (long long)m->offset, m->len);
			chat_rec_release(m);
			continue;
		}
		evs[k++] = ev;
		chat_rec_release(m);
	}
	route_batch(d, evs, bufs, k);
	for (size_t i = 0; i < k; i++)
		chat_buf_rele(bufs[i]);
	chat_arena_reset(a);
}

static void *consumer_main(void *arg)
{
	disp *d = arg;
	size_t cap = (size_t)d->batch_max;
	chat_rec *msgs = malloc(cap * sizeof *msgs);
	const Chat__Event **evs = malloc(cap * sizeof *evs);
	chat_buf **bufs = malloc(cap * sizeof *bufs);
	chat_arena *a = chat_arena_new();
	int64_t swept_ms = 0;

	if (!msgs || !evs || !bufs || !a) {
		chat_error(SVC, "consumer_failed", "reason=oom");
		goto out;
	}
	while (!atomic_load(&d->stop)) {
		size_t n = 0;
		int64_t now = chat_mono_ms();
		if (now - swept_ms >= ROUTE_SWEEP_MS) {
			/* A killed edge's routes would stay in sets nobody
			 * reads; Redis tables only (no-op otherwise). */
			swept_ms = now;
			chat_routing_redis_sweep(d->routing);
		}
		if (!chat_consumer_poll(d->cons, 100, &msgs[n]))
			continue;
		n++;
		while (n < cap &&
		       chat_consumer_poll(d->cons, BATCH_GAP_MS, &msgs[n]))
			n++;
		consume_batch(d, a, msgs, n, evs, bufs);
	}
out:
	chat_arena_free(a);
	free(msgs);
	free(evs);
	free(bufs);
	return NULL;
}

/* ---- chat.Dispatcher --------------------------------------------------- */

static int publish(void *arg, chat_rpc_call *call)
{
	disp *d = arg;
	const Chat__EventBatch *in = (const Chat__EventBatch *)call->in;
	chat_buf **bufs;
	size_t n = 0;

	if (!in->n_events)
		return CHAT_OK;
	bufs = chat_arena_alloc(call->arena, in->n_events * sizeof *bufs);
	if (!bufs)
		return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
		                     "out of memory");
	for (size_t i = 0; i < in->n_events; i++) {
		if (!(bufs[i] = event_buf_pack(in->events[i])))
			break;
		n++;
	}
	if (n == in->n_events)
		route_batch(d, (const Chat__Event *const *)in->events, bufs, n);
	for (size_t i = 0; i < n; i++)
		chat_buf_rele(bufs[i]);
	if (n != in->n_events)
		return chat_rpc_fail(call, CHAT_RESOURCE_EXHAUSTED,
		                     "out of memory");
	atomic_fetch_add(&d->published, (long long)n);
	return CHAT_OK;
}

static const chat_rpc_fn dispatcher_fns[] = {publish};

static void health(void *arg, chat_arena *a, size_t *n, void ***out)
{
	disp *d = arg;
	struct {
		const char *name;
		long long v;
	} c[] = {
	    {"consumed", atomic_load(&d->consumed)},
	    {"published", atomic_load(&d->published)},
	    {"delivered", atomic_load(&d->delivered)},
	    {"failed", atomic_load(&d->failed)},
	    {"retried", atomic_load(&d->retried)},
	    {"dropped", atomic_load(&d->dropped)},
	    {"bad_records", atomic_load(&d->bad_records)},
	    {"unrouted", atomic_load(&d->unrouted)},
	    {"deliver_calls", atomic_load(&d->deliver_calls)},
	    {"assigned_partitions", atomic_load(&d->assigned)},
	};
	size_t k = sizeof c / sizeof *c;
	void **v = chat_arena_ptrs(a, k);
	if (!v)
		return;
	for (size_t i = 0; i < k; i++) {
		Chat__Counter *ct = (Chat__Counter *)chat_arena_msg(
		    a, &chat__counter__descriptor);
		if (!ct)
			return;
		ct->name = (char *)c[i].name;
		ct->value = c[i].v;
		v[i] = ct;
	}
	*n = k;
	*out = v;
}

/* ---- start / stop ------------------------------------------------------ */

/* The address others dial for a listener on url bound to port: the url's
 * host (this machine's name for a wildcard host) and the bound port. */
static void advertise(const char *url, int port, char *out, size_t outlen)
{
	const char *h, *colon;
	char host[200];

	if (strncmp(url, "tcp://", 6) != 0 || port <= 0 ||
	    !(colon = strrchr(url + 6, ':'))) {
		chat_strlcpy(out, url, outlen);
		return;
	}
	h = url + 6;
	snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
	if (!host[0] || !strcmp(host, "*") || !strcmp(host, "0.0.0.0") ||
	    !strcmp(host, "[::]")) {
		if (gethostname(host, sizeof host) != 0 || !host[0])
			chat_strlcpy(host, "127.0.0.1", sizeof host);
		host[sizeof host - 1] = '\0';
	}
	snprintf(out, outlen, "tcp://%s:%d", host, port);
}

/* Register in ZooKeeper as service "dispatcher". */
static int announce(disp *d, chat_disc *disc, char *err, size_t errlen)
{
	chat_disc_entry e;
	char json[CHAT_DISC_DATA_MAX];

	memset(&e, 0, sizeof e);
	chat_strlcpy(e.id, d->instance, sizeof e.id);
	chat_strlcpy(e.service, "dispatcher", sizeof e.service);
	chat_strlcpy(e.rpc, d->rpc_adv, sizeof e.rpc);
	chat_strlcpy(e.version, CHAT_VERSION, sizeof e.version);
	e.pid = (int64_t)getpid();
	if (chat_disc_format(&e, json, sizeof json) < 0 ||
	    chat_disc_register(disc, "dispatcher", e.id, json, 0) < 0) {
		snprintf(err, errlen, "dispatcher: cannot register '%s' in "
		                      "ZooKeeper", e.id);
		return -1;
	}
	return 0;
}

int disp_start(const disp_config *cfg, disp **out, char *err, size_t errlen)
{
	disp *d;
	int port = 0;

	*out = NULL;
	if (!cfg->routing || !cfg->rpc_url || !cfg->rpc_url[0]) {
		snprintf(err, errlen,
		         "dispatcher: routing and rpc_url are required");
		return -1;
	}
	if (cfg->batch_max < 0) {
		snprintf(err, errlen, "dispatcher: batch_max %d < 0",
		         cfg->batch_max);
		return -1;
	}
	d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(err, errlen, "dispatcher: out of memory");
		return -1;
	}
	pthread_mutex_init(&d->edges_mu, NULL);
	pthread_mutex_init(&d->ov_mu, NULL);
	chat_u64map_init(&d->overlay);
	d->routing = cfg->routing;
	d->overlay_ms = (cfg->route_cache_ms > 0 ? cfg->route_cache_ms : 0) +
	                3000;
	chat_strlcpy(d->instance,
	             cfg->instance && cfg->instance[0] ? cfg->instance
	                                               : "dispatcher-1",
	             sizeof d->instance);
	d->batch_max = cfg->batch_max > 0 ? cfg->batch_max : 1000;
	d->timeout_ms = cfg->deliver_timeout_ms > 0 ? cfg->deliver_timeout_ms
	                                            : 2000;
	d->queue_max = cfg->edge_queue_max > 0 ? cfg->edge_queue_max : 100000;

	d->srv = chat_rpc_server_new("dispatcher", d->instance, 4);
	if (!d->srv ||
	    chat_rpc_server_add(d->srv, &chat__dispatcher__descriptor,
	                        CHAT_RPC_TABLE(dispatcher_fns), d) != 0) {
		snprintf(err, errlen, "dispatcher: out of memory");
		goto fail;
	}
	chat_rpc_server_set_health(d->srv, health, d);
	if (chat_rpc_server_listen(d->srv, cfg->rpc_url, &port, err,
	                           errlen) != 0)
		goto fail;
	if (cfg->kafka_bootstrap && cfg->kafka_bootstrap[0]) {
		d->cons = chat_consumer_new(cfg->kafka_bootstrap,
		                          "chat-dispatcher", d->instance,
		                          CHAT_TOPIC_FANOUT, 0, rebalance, d,
		                          cfg->fetch_wait_ms, err, errlen);
		if (!d->cons)
			goto fail;
		if (pthread_create(&d->consumer, NULL, consumer_main, d) != 0) {
			snprintf(err, errlen,
			         "dispatcher: cannot start the consumer");
			goto fail;
		}
		d->consumer_started = 1;
	}
	if (chat_rpc_server_start(d->srv) != 0) {
		snprintf(err, errlen,
		         "dispatcher: cannot start the RPC threads");
		goto fail;
	}
	advertise(cfg->rpc_url, port, d->rpc_adv, sizeof d->rpc_adv);
	if (cfg->disc && announce(d, cfg->disc, err, errlen) != 0)
		goto fail;
	chat_info(SVC, "started", "rpc=%s kafka=%s batch_max=%d discovery=%s",
	          d->rpc_adv, d->cons ? cfg->kafka_bootstrap : "none",
	          d->batch_max, cfg->disc ? "yes" : "no");
	*out = d;
	return 0;
fail:
	disp_stop(d);
	return -1;
}

const char *disp_rpc_url(disp *d)
{
	return d ? d->rpc_adv : "";
}

int disp_ready(disp *d)
{
	if (!d)
		return 0;
	return d->cons ? atomic_load(&d->assigned) > 0 : 1;
}

void disp_stop(disp *d)
{
	if (!d)
		return;
	chat_rpc_server_free(d->srv); /* no Publish runs after this */
	atomic_store(&d->stop, 1);
	if (d->consumer_started)
		pthread_join(d->consumer, NULL);
	if (d->cons) {
		chat_consumer_free(d->cons);
	}
	/* What is queued still goes out, once, except to edges that are
	 * down. */
	atomic_store(&d->stopping, 1);
	pthread_mutex_lock(&d->edges_mu);
	for (int i = 0; i < d->n_edges; i++)
		chat_queue_close(&d->edges[i]->q);
	pthread_mutex_unlock(&d->edges_mu);
	for (int i = 0; i < d->n_edges; i++) {
		struct edge *e = d->edges[i];
		chat_qnode *n;
		pthread_join(e->thread, NULL);
		n = chat_queue_take_all(&e->q);
		while (n) {
			struct item *it =
			    CHAT_CONTAINER_OF(n, struct item, node);
			n = n->next;
			item_free(it);
		}
		chat_queue_fini(&e->q);
		chat_rpc_client_free(e->client);
		free(e);
	}
	pthread_mutex_destroy(&d->edges_mu);
	{
		size_t it = 0;
		uint64_t key;
		void *v;
		while (chat_u64map_next(&d->overlay, &it, &key, &v))
			free(v);
		chat_u64map_fini(&d->overlay);
		pthread_mutex_destroy(&d->ov_mu);
	}
	chat_info(SVC, "stopped", "consumed=%lld delivered=%lld failed=%lld",
	          (long long)atomic_load(&d->consumed),
	          (long long)atomic_load(&d->delivered),
	          (long long)atomic_load(&d->failed));
	free(d);
}
