/* The edge's routing thread: the only thread that writes the routing
 * table and ZooKeeper for this edge.
 *
 * The service thread queues add/del operations (edge_route) as its
 * sessions subscribe and go. This thread takes them in batches and
 * applies each batch in one round trip (chat_routing apply), keeping a
 * mirror of what it has published. It heartbeats the edge's lease every
 * heartbeat_ms; when the table had lost the edge (heartbeat 1: Redis
 * restarted, or the edge stalled past its lease) or a batch failed, it
 * registers the edge again and publishes the whole mirror, and asks the
 * service thread to announce every session to presence again (presence
 * in Redis forgets sessions with Redis). With ZooKeeper it owns the
 * edge's registration and writes its load every load_ms. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_log.h"
#include "chat_util.h"
#include "edge_int.h"

#define RT_CHUNK 4096        /* ops per apply of a full publish */
#define RT_RETRY_MS 1000     /* after a failed full publish */
#define RT_HB_RETRY_MS 500   /* after a failed heartbeat */
#define RT_LEAVE_WAIT_MS 10000

/* ---- the queue (service thread side) ----------------------------------- */

uint64_t edge_route(edge *e, int is_user, uint64_t key, int add)
{
	edge_rt *rt = &e->rt;
	uint64_t seq;

	pthread_mutex_lock(&rt->mu);
	if (rt->n == rt->cap) {
		size_t cap = rt->cap ? rt->cap * 2 : 256;
		chat_route_op *v = realloc(rt->ops, cap * sizeof *v);
		if (!v) {
			/* Out of memory: this change is lost until the key
			 * changes again. A lost add shows as missed pushes
			 * that clients fill from history; a lost del as
			 * events this edge drops. */
			pthread_mutex_unlock(&rt->mu);
			chat_error(EDGE_SVC, "route_op_lost",
			           "reason=oom key=%" PRIu64, key);
			return rt->queued;
		}
		rt->ops = v;
		rt->cap = cap;
	}
	rt->ops[rt->n].add = (uint8_t)(add ? 1 : 0);
	rt->ops[rt->n].is_user = (uint8_t)(is_user ? 1 : 0);
	rt->ops[rt->n].key = key;
	rt->n++;
	seq = ++rt->queued;
	pthread_cond_signal(&rt->cv);
	pthread_mutex_unlock(&rt->mu);
	return seq;
}

/* ---- ZooKeeper --------------------------------------------------------- */

int edge_disc_json(edge *e, int64_t load, char *out, size_t outlen)
{
	chat_disc_entry d;

	memset(&d, 0, sizeof d);
	chat_strlcpy(d.id, e->cfg.edge_id, sizeof d.id);
	chat_strlcpy(d.service, "edge", sizeof d.service);
	chat_strlcpy(d.rpc, e->rpc_adv, sizeof d.rpc);
	chat_strlcpy(d.pub, e->public_url, sizeof d.pub);
	chat_strlcpy(d.version, CHAT_VERSION, sizeof d.version);
	d.load = load;
	d.pid = (int64_t)getpid();
	return chat_disc_format(&d, out, outlen);
}

static void load_update(edge *e)
{
	edge_rt *rt = &e->rt;
	char json[CHAT_DISC_DATA_MAX];
	int64_t load = atomic_load(&e->nsessions);

	if (!rt->reg || load == rt->last_load)
		return;
	if (edge_disc_json(e, load, json, sizeof json) < 0 ||
	    chat_disc_set_data(rt->reg, json) != 0)
		return;
	rt->last_load = load;
}

static void leave_zk(edge *e)
{
	edge_rt *rt = &e->rt;
	if (rt->reg) {
		chat_disc_free(rt->reg); /* deletes the node */
		rt->reg = NULL;
		chat_info(EDGE_SVC, "left_discovery", "edge=%s",
		          e->cfg.edge_id);
	}
}

/* ---- the routing table ------------------------------------------------- */

static void mirror_apply(edge_rt *rt, const chat_route_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		chat_u64map *m = &rt->mirror[ops[i].is_user ? 1 : 0];
		if (ops[i].add) {
			if (chat_u64map_put(m, ops[i].key, (void *)1) != 0)
				rt->need_full = 1; /* retried later */
		} else {
			chat_u64map_del(m, ops[i].key);
		}
	}
}

/* Register the edge (the table drops whatever it had of it) and publish
 * the whole mirror. 0, or -1 (try again later). */
static int full_publish(edge *e, chat_route_op *buf)
{
	edge_rt *rt = &e->rt;
	chat_routing *r = e->cfg.routing;
	size_t n = 0, total = 0;

	if (r->ops->edge_register(r, e->cfg.edge_id, e->rpc_adv) != 0)
		return -1;
	for (int kind = 0; kind < 2; kind++) {
		size_t it = 0;
		uint64_t key;
		void *v;
		while (chat_u64map_next(&rt->mirror[kind], &it, &key, &v)) {
			buf[n].add = 1;
			buf[n].is_user = (uint8_t)kind;
			buf[n].key = key;
			if (++n == RT_CHUNK) {
				if (chat_routing_apply(r, e->cfg.edge_id, buf,
				                       n) != 0)
					return -1;
				total += n;
				n = 0;
			}
		}
	}
	if (n && chat_routing_apply(r, e->cfg.edge_id, buf, n) != 0)
		return -1;
	total += n;
	chat_info(EDGE_SVC, "routes_published", "edge=%s entries=%zu",
	          e->cfg.edge_id, total);
	return 0;
}

/* Publish everything when needed and due; then let presence hear about
 * every session again. */
static void sync_if_needed(edge *e, chat_route_op *buf, int64_t now,
                           int *failing)
{
	edge_rt *rt = &e->rt;
	edge_ib *ib;

	if (!rt->need_full || now < rt->retry_ms)
		return;
	if (full_publish(e, buf) != 0) {
		rt->retry_ms = now + RT_RETRY_MS;
		if (!*failing)
			chat_warn(EDGE_SVC, "routes_unpublished",
			          "edge=%s retry_ms=%d", e->cfg.edge_id,
			          RT_RETRY_MS);
		*failing = 1;
		return;
	}
	if (*failing)
		chat_info(EDGE_SVC, "routes_recovered", "edge=%s",
		          e->cfg.edge_id);
	*failing = 0;
	rt->need_full = 0;
	rt->next_hb_ms = now + e->cfg.heartbeat_ms;
	/* The first publish has no session to announce; later ones follow
	 * a loss that presence may share. */
	if (rt->announced && (ib = edge_ib_new(IB_REANNOUNCE)) != NULL)
		edge_post(e, ib);
	rt->announced = 1;
}

static void *rt_main(void *arg)
{
	edge *e = arg;
	edge_rt *rt = &e->rt;
	chat_routing *r = e->cfg.routing;
	chat_route_op *batch = NULL, *full = malloc(RT_CHUNK * sizeof *full);
	size_t bcap = 0, n;
	int failing = 0, hb_failing = 0, stop, leave;
	uint64_t upto;

	if (!full) {
		chat_error(EDGE_SVC, "routing_thread_failed", "reason=oom");
		return NULL;
	}
	rt->need_full = 1;
	rt->next_hb_ms = chat_mono_ms() + e->cfg.heartbeat_ms;
	rt->next_load_ms = chat_mono_ms() + e->cfg.load_ms;
	pthread_mutex_lock(&rt->mu);
	for (;;) {
		int64_t now = chat_mono_ms(), wake;
		wake = rt->next_hb_ms < rt->next_load_ms ? rt->next_hb_ms
		                                         : rt->next_load_ms;
		if (rt->need_full && rt->retry_ms < wake)
			wake = rt->retry_ms;
		while (!rt->stop && !rt->n && !(rt->leave && !rt->left) &&
		       now < wake) {
			struct timespec ts;
			int64_t ms = wake - now;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += ms / 1000;
			ts.tv_nsec += (ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&rt->cv, &rt->mu, &ts);
			now = chat_mono_ms();
		}
		/* Take the queue: swap buffers. */
		{
			chat_route_op *t = batch;
			size_t tc = bcap;
			batch = rt->ops;
			bcap = rt->cap;
			n = rt->n;
			rt->ops = t;
			rt->cap = tc;
			rt->n = 0;
		}
		upto = rt->queued;
		stop = rt->stop;
		leave = rt->leave && !rt->left;
		pthread_mutex_unlock(&rt->mu);

		if (leave) {
			leave_zk(e);
			pthread_mutex_lock(&rt->mu);
			rt->left = 1;
			pthread_cond_broadcast(&rt->done);
			pthread_mutex_unlock(&rt->mu);
		}
		mirror_apply(rt, batch, n);
		now = chat_mono_ms();
		if (rt->need_full) {
			sync_if_needed(e, full, now, &failing);
		} else if (n && chat_routing_apply(r, e->cfg.edge_id, batch,
		                                   n) != 0) {
			/* Some may not have landed: publish it all again. */
			rt->need_full = 1;
			rt->retry_ms = now;
			sync_if_needed(e, full, now, &failing);
		}
		atomic_store(&rt->applied_us, chat_mono_us());
		atomic_store(&rt->applied, upto);
		if (n) {
			edge_ib *ib = edge_ib_new(IB_ROUTED);
			edge_post(e, ib);
		}
		now = chat_mono_ms();
		if (!stop && now >= rt->next_hb_ms) {
			rt->next_hb_ms = now + e->cfg.heartbeat_ms;
			if (!rt->need_full) {
				int hb = chat_routing_heartbeat(r,
				                                e->cfg.edge_id);
				if (hb == 1) {
					chat_warn(EDGE_SVC, "routes_lost",
					          "edge=%s action=republish",
					          e->cfg.edge_id);
					rt->need_full = 1;
					rt->retry_ms = now;
					sync_if_needed(e, full, now, &failing);
				} else if (hb < 0 && !hb_failing) {
					chat_warn(EDGE_SVC, "heartbeat_failed",
					          "edge=%s", e->cfg.edge_id);
				} else if (hb == 0 && hb_failing) {
					chat_info(EDGE_SVC, "heartbeat_ok",
					          "edge=%s", e->cfg.edge_id);
				}
				hb_failing = hb < 0;
				/* Redis away: try again soon, so that routes
				 * and sessions are published again within
				 * moments of its return (empty, if it
				 * restarted), not a heartbeat later. */
				if (hb_failing &&
				    e->cfg.heartbeat_ms > RT_HB_RETRY_MS)
					rt->next_hb_ms = now + RT_HB_RETRY_MS;
			}
		}
		if (!stop && now >= rt->next_load_ms) {
			rt->next_load_ms = now + e->cfg.load_ms;
			load_update(e);
		}
		pthread_mutex_lock(&rt->mu);
		if (stop && !rt->n)
			break;
	}
	pthread_mutex_unlock(&rt->mu);
	/* Leaving: the table forgets the edge (Redis: at once, rather than
	 * when its lease runs out). */
	if (r->ops->edge_unregister(r, e->cfg.edge_id) != 0)
		chat_warn(EDGE_SVC, "unregister_failed", "edge=%s",
		          e->cfg.edge_id);
	leave_zk(e);
	free(batch);
	free(full);
	return NULL;
}

/* ---- start / stop ------------------------------------------------------ */

int edge_route_start(edge *e, char *err, size_t errlen)
{
	edge_rt *rt = &e->rt;
	char json[CHAT_DISC_DATA_MAX];

	if (e->cfg.zk_hosts) {
		rt->reg = chat_disc_new(e->cfg.zk_hosts, e->cfg.zk_timeout_ms,
		                        err, errlen);
		if (!rt->reg)
			return -1;
		if (edge_disc_json(e, 0, json, sizeof json) < 0 ||
		    chat_disc_register(rt->reg, "edge", e->cfg.edge_id, json,
		                       0) < 0) {
			snprintf(err, errlen, "cannot register edge %s in "
			                      "ZooKeeper", e->cfg.edge_id);
			return -1;
		}
		rt->last_load = 0;
	}
	if (pthread_create(&rt->thread, NULL, rt_main, e) != 0) {
		snprintf(err, errlen, "cannot start the routing thread");
		return -1;
	}
	rt->started = 1;
	pthread_setname_np(rt->thread, "edge-route");
	return 0;
}

void edge_route_leave(edge *e)
{
	edge_rt *rt = &e->rt;
	int64_t deadline = chat_mono_ms() + RT_LEAVE_WAIT_MS;

	if (!rt->started) {
		leave_zk(e);
		return;
	}
	pthread_mutex_lock(&rt->mu);
	rt->leave = 1;
	pthread_cond_signal(&rt->cv);
	while (!rt->left && chat_mono_ms() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&rt->done, &rt->mu, &ts);
	}
	pthread_mutex_unlock(&rt->mu);
}

void edge_route_stop(edge *e)
{
	edge_rt *rt = &e->rt;

	if (rt->started) {
		pthread_mutex_lock(&rt->mu);
		rt->stop = 1;
		pthread_cond_signal(&rt->cv);
		pthread_mutex_unlock(&rt->mu);
		pthread_join(rt->thread, NULL);
		rt->started = 0;
	}
	leave_zk(e);
	free(rt->ops);
	rt->ops = NULL;
	rt->n = rt->cap = 0;
	chat_u64map_fini(&rt->mirror[0]);
	chat_u64map_fini(&rt->mirror[1]);
}
