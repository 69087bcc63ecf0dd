/* The in-process log of the embedded mode (chat_kafka.h): the chat topics
 * as rings of refcounted records under one lock, consumer groups of one
 * member, delivery reports from a thread per producer.
 *
 * Why not librdkafka's mock cluster: it speaks the Kafka protocol over
 * loopback sockets to broker threads, and its consumers poll it every
 * fetch.wait.max.ms even when idle. In chatd it took 62 % of the process's
 * CPU under load (docs/BENCHMARKS.md) and 12 % of a core when idle. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_log.h"
#include "kafka_int.h"

#define SVC "memlog"
#define NTOPICS 2
#define MAX_LOGS 16
#define MAX_PARTS 256
#define TRIM_EVERY 4096 /* records appended to a partition between trims */

static const char *const topic_names[NTOPICS] = {CHAT_TOPIC_INGRESS,
                                                 CHAT_TOPIC_FANOUT};

struct mrec {
	atomic_int ref;
	int64_t off;
	int32_t part;
	int topic;
	size_t klen, vlen;
	unsigned char data[]; /* key, then value */
};

struct mpart {
	struct mrec **ring; /* cap entries, a power of two */
	size_t cap, first, n;
	int64_t base;       /* offset of ring[first]; end = base + n */
	int64_t since_trim;
};

/* A consumer group: its positions (the next offset to read) outlive its
 * member, as Kafka's committed offsets do; -1 = none yet. */
struct mgroup {
	char name[128];
	int64_t *pos; /* NTOPICS * nparts */
	unsigned topics; /* what its members subscribed to */
	struct mlog_cons *member;
	struct mgroup *next;
};

struct mlog_cons {
	chat_memlog *m;
	struct mgroup *g;
	unsigned topics;   /* bit per topic */
	unsigned char *on; /* NTOPICS * nparts: assigned now */
	int cursor;
	int waiting;
	pthread_cond_t cv;
};

struct chat_memlog {
	int id;
	int nparts;
	char bootstrap[32];
	pthread_mutex_t mu;
	struct mpart *parts; /* NTOPICS * nparts */
	struct mgroup *groups;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static chat_memlog *registry[MAX_LOGS];

static int topic_index(const char *name)
{
	for (int t = 0; t < NTOPICS; t++)
		if (!strcmp(name, topic_names[t]))
			return t;
	return -1;
}

static void rec_unref(struct mrec *r)
{
	if (r && atomic_fetch_sub(&r->ref, 1) == 1)
		free(r);
}

void mlog_rec_release(void *rec)
{
	rec_unref(rec);
}

static void cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

static struct timespec deadline_after(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* ---- the log ----------------------------------------------------------- */

chat_memlog *chat_memlog_new(int partitions, char *err, size_t errlen)
{
	chat_memlog *m;
	int id = -1;

	if (partitions < 1 || partitions > MAX_PARTS) {
		snprintf(err, errlen, "memlog: partitions must be 1..%d",
		         MAX_PARTS);
		return NULL;
	}
	m = calloc(1, sizeof *m);
	if (m)
		m->parts = calloc((size_t)(NTOPICS * partitions),
		                  sizeof *m->parts);
	if (!m || !m->parts) {
		free(m);
		snprintf(err, errlen, "memlog: out of memory");
		return NULL;
	}
	m->nparts = partitions;
	pthread_mutex_init(&m->mu, NULL);
	pthread_mutex_lock(&reg_mu);
	for (int i = 0; i < MAX_LOGS && id < 0; i++)
		if (!registry[i]) {
			registry[i] = m;
			id = i;
		}
	pthread_mutex_unlock(&reg_mu);
	if (id < 0) {
		snprintf(err, errlen, "memlog: more than %d logs", MAX_LOGS);
		pthread_mutex_destroy(&m->mu);
		free(m->parts);
		free(m);
		return NULL;
	}
	m->id = id;
	snprintf(m->bootstrap, sizeof m->bootstrap, "memlog://%d", id);
	return m;
}

const char *chat_memlog_bootstrap(chat_memlog *m)
{
	return m->bootstrap;
}

void chat_memlog_free(chat_memlog *m)
{
	struct mgroup *g, *gn;
	if (!m)
		return;
	pthread_mutex_lock(&reg_mu);
	registry[m->id] = NULL;
	pthread_mutex_unlock(&reg_mu);
	for (int i = 0; i < NTOPICS * m->nparts; i++) {
		struct mpart *p = &m->parts[i];
		for (size_t k = 0; k < p->n; k++)
			rec_unref(p->ring[(p->first + k) & (p->cap - 1)]);
		free(p->ring);
	}
	for (g = m->groups; g; g = gn) {
		gn = g->next;
		if (g->member)
			chat_error(SVC, "freed_in_use", "group=%s", g->name);
		free(g->pos);
		free(g);
	}
	pthread_mutex_destroy(&m->mu);
	free(m->parts);
	free(m);
}

int mlog_lookup(const char *bootstrap, chat_memlog **out, char *err,
                size_t errlen)
{
	const char *pre = "memlog://";
	char *end;
	long id;

	if (!bootstrap || strncmp(bootstrap, pre, strlen(pre)) != 0)
		return 0;
	errno = 0;
	id = strtol(bootstrap + strlen(pre), &end, 10);
	pthread_mutex_lock(&reg_mu);
	*out = (!errno && *end == '\0' && id >= 0 && id < MAX_LOGS)
	           ? registry[id]
	           : NULL;
	pthread_mutex_unlock(&reg_mu);
	if (!*out) {
		snprintf(err, errlen, "no in-process log %s", bootstrap);
		return -1;
	}
	return 1;
}

/* The lowest position a group still needs in partition slot k, or end
 * when none does. A group that never read it holds everything. */
static int64_t needed_from(chat_memlog *m, int k, int64_t end)
{
	int64_t low = end;
	for (struct mgroup *g = m->groups; g; g = g->next) {
		int64_t v = g->pos[k];
		if (!(g->topics & (1u << (k / m->nparts))))
			continue;
		if (v < 0)
			return -1;
		if (v < low)
			low = v;
	}
	return low;
}

/* Drop records nobody needs, keeping CHAT_MEMLOG_KEEP behind the slowest
 * group for rewinds, and never more than CHAT_MEMLOG_MAX. */
static void trim(chat_memlog *m, int k)
{
	struct mpart *p = &m->parts[k];
	int64_t end = p->base + (int64_t)p->n;
	int64_t low = needed_from(m, k, end);
	int64_t cut = low < 0 ? p->base : low - CHAT_MEMLOG_KEEP;

	if (end - CHAT_MEMLOG_MAX > cut) {
		cut = end - CHAT_MEMLOG_MAX;
		if (low >= 0 && low < cut)
			chat_warn(SVC, "retention_drop",
			          "topic=%s partition=%d unread=%" PRId64,
			          topic_names[k / m->nparts], k % m->nparts,
			          cut - low);
	}
	while (p->base < cut && p->n > 0) {
		rec_unref(p->ring[p->first]);
		p->ring[p->first] = NULL;
		p->first = (p->first + 1) & (p->cap - 1);
		p->n--;
		p->base++;
	}
	p->since_trim = 0;
}

static int ring_grow(struct mpart *p)
{
	size_t cap = p->cap ? p->cap * 2 : 1024;
	struct mrec **r = malloc(cap * sizeof *r);
	if (!r)
		return -1;
	for (size_t k = 0; k < p->n; k++)
		r[k] = p->ring[(p->first + k) & (p->cap - 1)];
	free(p->ring);
	p->ring = r;
	p->cap = cap;
	p->first = 0;
	return 0;
}

static uint32_t key_hash(const void *key, size_t len)
{
	const unsigned char *k = key;
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= k[i];
		h *= 16777619u;
	}
	return h;
}

/* Append a copy; wake the waiting consumers of the topic. 0 with
 * *part and *off set, or an rd_kafka_resp_err_t. */
static int append(chat_memlog *m, const char *topic, const void *key,
                  size_t klen, const void *val, size_t vlen, int32_t *part,
                  int64_t *off)
{
	int t = topic_index(topic);
	struct mrec *r;
	struct mpart *p;
	int k;

	if (t < 0)
		return RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
	r = malloc(sizeof *r + klen + vlen);
	if (!r)
		return RD_KAFKA_RESP_ERR__QUEUE_FULL;
	atomic_init(&r->ref, 1);
	r->klen = klen;
	r->vlen = vlen;
	r->topic = t;
	if (klen)
		memcpy(r->data, key, klen);
	if (vlen)
		memcpy(r->data + klen, val, vlen);
	r->part = (int32_t)(key_hash(key, klen) % (uint32_t)m->nparts);
	k = t * m->nparts + r->part;
	pthread_mutex_lock(&m->mu);
	p = &m->parts[k];
	if (p->n == p->cap && ring_grow(p) != 0) {
		pthread_mutex_unlock(&m->mu);
		free(r);
		return RD_KAFKA_RESP_ERR__QUEUE_FULL;
	}
	r->off = p->base + (int64_t)p->n;
	p->ring[(p->first + p->n) & (p->cap - 1)] = r;
	p->n++;
	if (++p->since_trim >= TRIM_EVERY && p->n > CHAT_MEMLOG_KEEP)
		trim(m, k);
	for (struct mgroup *g = m->groups; g; g = g->next) {
		struct mlog_cons *c = g->member;
		if (c && c->waiting && c->on[k])
			pthread_cond_signal(&c->cv);
	}
	pthread_mutex_unlock(&m->mu);
	*part = r->part;
	*off = r->off;
	return 0;
}

/* ---- producers ---------------------------------------------------------- */

struct pend {
	void *opaque;
	int32_t part;
	int64_t off;
};

struct mlog_prod {
	chat_memlog *m;
	chat_dr_fn dr;
	void *dr_arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* reports queued, or stop */
	pthread_cond_t idle; /* outq reached 0 */
	struct pend *q;
	size_t qn, qcap;
	int outq; /* queued + being reported */
	int stop;
	pthread_t th;
};

static void *dr_main(void *arg)
{
	struct mlog_prod *p = arg;
	struct pend *mine = NULL;
	size_t mycap = 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		size_t n;
		while (!p->qn && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->qn)
			break; /* stopping with nothing left */
		/* take the whole queue, leave our old buffer in its place */
		{
			struct pend *t = p->q;
			size_t tc = p->qcap;
			p->q = mine;
			p->qcap = mycap;
			mine = t;
			mycap = tc;
		}
		n = p->qn;
		p->qn = 0;
		pthread_mutex_unlock(&p->mu);
		for (size_t i = 0; i < n; i++) {
			rd_kafka_message_t msg;
			memset(&msg, 0, sizeof msg);
			msg.partition = mine[i].part;
			msg.offset = mine[i].off;
			msg._private = mine[i].opaque;
			if (p->dr)
				p->dr(p->dr_arg, &msg);
		}
		pthread_mutex_lock(&p->mu);
		p->outq -= (int)n;
		if (p->outq == 0)
			pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	free(mine);
	return NULL;
}

struct mlog_prod *mlog_prod_new(chat_memlog *m, chat_dr_fn dr, void *dr_arg,
                                char *err, size_t errlen)
{
	struct mlog_prod *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "memlog: out of memory");
		return NULL;
	}
	p->m = m;
	p->dr = dr;
	p->dr_arg = dr_arg;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	cond_init_mono(&p->idle);
	if (pthread_create(&p->th, NULL, dr_main, p) != 0) {
		snprintf(err, errlen, "memlog: cannot start a report thread");
		pthread_cond_destroy(&p->idle);
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return NULL;
	}
	return p;
}

int mlog_prod_send(struct mlog_prod *p, const char *topic, const void *key,
                   size_t keylen, const void *val, size_t vallen,
                   void *opaque)
{
	int32_t part;
	int64_t off;
	int rc;

	/* Counted before the append so that a flush cannot return between
	 * the record's arrival and its report being queued. */
	pthread_mutex_lock(&p->mu);
	p->outq++;
	pthread_mutex_unlock(&p->mu);
	rc = append(p->m, topic, key, keylen, val, vallen, &part, &off);
	pthread_mutex_lock(&p->mu);
	if (rc == 0 && p->qn == p->qcap) {
		size_t cap = p->qcap ? p->qcap * 2 : 256;
		struct pend *q = realloc(p->q, cap * sizeof *q);
		if (q) {
			p->q = q;
			p->qcap = cap;
		} else {
			/* Stored, but no room to report it: the report
			 * would never come, so say it failed (a retry is
			 * stored once). */
			rc = RD_KAFKA_RESP_ERR__QUEUE_FULL;
		}
	}
	if (rc == 0) {
		p->q[p->qn++] = (struct pend){opaque, part, off};
		if (p->qn == 1)
			pthread_cond_signal(&p->cv);
	} else if (--p->outq == 0) {
		pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int mlog_prod_flush(struct mlog_prod *p, int timeout_ms)
{
	struct timespec dl = deadline_after(timeout_ms > 0 ? timeout_ms : 0);
	int left;
	pthread_mutex_lock(&p->mu);
	while (p->outq > 0 &&
	       pthread_cond_timedwait(&p->idle, &p->mu, &dl) != ETIMEDOUT)
		;
	left = p->outq;
	pthread_mutex_unlock(&p->mu);
	return left;
}

int mlog_prod_outq(struct mlog_prod *p)
{
	int n;
	pthread_mutex_lock(&p->mu);
	n = p->outq;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void mlog_prod_free(struct mlog_prod *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1; /* the thread reports what is queued first */
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->th, NULL);
	pthread_cond_destroy(&p->idle);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->q);
	free(p);
}

/* ---- consumers ---------------------------------------------------------- */

struct mlog_cons *mlog_cons_new(chat_memlog *m, const char *group,
                                const char *topics, char *err,
                                size_t errlen)
{
	size_t slots = (size_t)(NTOPICS * m->nparts);
	struct mlog_cons *c = calloc(1, sizeof *c);
	struct mgroup *g;
	char buf[256], *save = NULL, *t;

	if (!c || !(c->on = calloc(slots, 1))) {
		free(c);
		snprintf(err, errlen, "memlog: out of memory");
		return NULL;
	}
	snprintf(buf, sizeof buf, "%s", topics);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int ti = topic_index(t);
		if (ti < 0) {
			snprintf(err, errlen, "memlog: no topic %s", t);
			goto fail;
		}
		c->topics |= 1u << ti;
	}
	c->m = m;
	cond_init_mono(&c->cv);
	pthread_mutex_lock(&m->mu);
	for (g = m->groups; g && strcmp(g->name, group); g = g->next)
		;
	if (g && g->member) {
		pthread_mutex_unlock(&m->mu);
		snprintf(err, errlen,
		         "memlog: group %s already has its one member", group);
		pthread_cond_destroy(&c->cv);
		goto fail;
	}
	if (!g) {
		g = calloc(1, sizeof *g);
		if (g && !(g->pos = malloc(slots * sizeof *g->pos))) {
			free(g);
			g = NULL;
		}
		if (!g) {
			pthread_mutex_unlock(&m->mu);
			snprintf(err, errlen, "memlog: out of memory");
			pthread_cond_destroy(&c->cv);
			goto fail;
		}
		snprintf(g->name, sizeof g->name, "%s", group);
		for (size_t k = 0; k < slots; k++)
			g->pos[k] = -1;
		g->next = m->groups;
		m->groups = g;
	}
	g->member = c;
	g->topics |= c->topics;
	c->g = g;
	pthread_mutex_unlock(&m->mu);
	return c;
fail:
	free(c->on);
	free(c);
	return NULL;
}

rd_kafka_topic_partition_list_t *mlog_cons_all(struct mlog_cons *c)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(NTOPICS * c->m->nparts);
	for (int t = 0; t < NTOPICS; t++)
		for (int i = 0; (c->topics & (1u << t)) && i < c->m->nparts;
		     i++)
			rd_kafka_topic_partition_list_add(l, topic_names[t], i)
			    ->offset = RD_KAFKA_OFFSET_INVALID;
	return l;
}

/* The slot of a topic partition this consumer subscribes to, or -1. */
static int slot_of(struct mlog_cons *c, const char *topic, int32_t part)
{
	int t = topic_index(topic);
	if (t < 0 || !(c->topics & (1u << t)) || part < 0 ||
	    part >= c->m->nparts)
		return -1;
	return t * c->m->nparts + part;
}

/* Where reading offset `want` of slot k starts; under the lock. Offsets
 * outside the log start at its beginning, as auto.offset.reset=earliest
 * does. */
static int64_t resolve(struct mlog_cons *c, int k, int64_t want)
{
	struct mpart *p = &c->m->parts[k];
	int64_t end = p->base + (int64_t)p->n;
	if (want == RD_KAFKA_OFFSET_END)
		return end;
	if (want == RD_KAFKA_OFFSET_INVALID || want == RD_KAFKA_OFFSET_STORED)
		want = c->g->pos[k] >= 0 ? c->g->pos[k]
		                         : RD_KAFKA_OFFSET_BEGINNING;
	if (want == RD_KAFKA_OFFSET_BEGINNING)
		return p->base;
	if (want < p->base || want > end) {
		chat_warn(SVC, "offset_reset",
		          "topic=%s partition=%d offset=%" PRId64
		          " log=%" PRId64 "..%" PRId64 " to=%" PRId64,
		          topic_names[k / c->m->nparts], k % c->m->nparts, want,
		          p->base, end, p->base);
		return p->base;
	}
	return want;
}

int mlog_cons_assign(struct mlog_cons *c, rd_kafka_resp_err_t what,
                     const rd_kafka_topic_partition_list_t *parts)
{
	int slots = NTOPICS * c->m->nparts, n = 0, bad = 0;

	pthread_mutex_lock(&c->m->mu);
	if (what == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && parts) {
		for (int i = 0; i < parts->cnt; i++) {
			const rd_kafka_topic_partition_t *e = &parts->elems[i];
			int k = slot_of(c, e->topic, e->partition);
			if (k < 0) {
				bad = 1;
				continue;
			}
			c->g->pos[k] = resolve(c, k, e->offset);
			c->on[k] = 1;
		}
	} else if (what == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && parts) {
		for (int i = 0; i < parts->cnt; i++) {
			int k = slot_of(c, parts->elems[i].topic,
			                parts->elems[i].partition);
			if (k >= 0)
				c->on[k] = 0;
		}
	} else {
		memset(c->on, 0, (size_t)slots);
	}
	for (int k = 0; k < slots; k++)
		n += c->on[k];
	pthread_mutex_unlock(&c->m->mu);
	return bad ? -1 : n;
}

rd_kafka_topic_partition_list_t *mlog_cons_assigned(struct mlog_cons *c)
{
	int slots = NTOPICS * c->m->nparts;
	rd_kafka_topic_partition_list_t *l = NULL;

	pthread_mutex_lock(&c->m->mu);
	for (int k = 0; k < slots; k++) {
		if (!c->on[k])
			continue;
		if (!l)
			l = rd_kafka_topic_partition_list_new(slots);
		rd_kafka_topic_partition_list_add(l, topic_names[k / c->m->nparts],
		                                  k % c->m->nparts)
		    ->offset = c->g->pos[k];
	}
	pthread_mutex_unlock(&c->m->mu);
	return l;
}

int mlog_cons_seek(struct mlog_cons *c,
                   const rd_kafka_topic_partition_list_t *parts)
{
	int rc = 0;
	pthread_mutex_lock(&c->m->mu);
	for (int i = 0; i < parts->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &parts->elems[i];
		int k = slot_of(c, e->topic, e->partition);
		if (k < 0 || !c->on[k]) {
			rc = -1; /* Kafka: not assigned, cannot seek */
			continue;
		}
		c->g->pos[k] = resolve(c, k, e->offset);
	}
	pthread_mutex_unlock(&c->m->mu);
	return rc;
}

int mlog_cons_watermarks(struct mlog_cons *c, const char *topic,
                         int32_t partition, int64_t *lo, int64_t *hi)
{
	int t = topic_index(topic);
	struct mpart *p;
	if (t < 0 || partition < 0 || partition >= c->m->nparts)
		return RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
	pthread_mutex_lock(&c->m->mu);
	p = &c->m->parts[t * c->m->nparts + partition];
	*lo = p->base;
	*hi = p->base + (int64_t)p->n;
	pthread_mutex_unlock(&c->m->mu);
	return 0;
}

/* The next record of an assigned partition, round robin; under the
 * lock. */
static struct mrec *take(struct mlog_cons *c)
{
	int slots = NTOPICS * c->m->nparts;
	for (int i = 0; i < slots; i++) {
		int k = (c->cursor + i) % slots;
		struct mpart *p = &c->m->parts[k];
		int64_t pos;
		struct mrec *r;
		if (!c->on[k])
			continue;
		pos = c->g->pos[k];
		if (pos < p->base) {
			chat_warn(SVC, "offset_reset",
			          "topic=%s partition=%d offset=%" PRId64
			          " reason=retention to=%" PRId64,
			          topic_names[k / c->m->nparts], k % c->m->nparts,
			          pos, p->base);
			pos = p->base;
		}
		if (pos >= p->base + (int64_t)p->n)
			continue;
		r = p->ring[(p->first + (size_t)(pos - p->base)) &
		            (p->cap - 1)];
		c->g->pos[k] = pos + 1;
		c->cursor = (k + 1) % slots;
		atomic_fetch_add(&r->ref, 1);
		return r;
	}
	return NULL;
}

int mlog_cons_poll(struct mlog_cons *c, int timeout_ms, chat_rec *out)
{
	struct timespec dl;
	struct mrec *r;
	int timed_out = 0;

	pthread_mutex_lock(&c->m->mu);
	if (!(r = take(c)) && timeout_ms > 0) {
		dl = deadline_after(timeout_ms);
		while (!(r = take(c)) && !timed_out) {
			c->waiting = 1;
			timed_out = pthread_cond_timedwait(&c->cv, &c->m->mu,
			                                   &dl) == ETIMEDOUT;
			c->waiting = 0;
		}
	}
	pthread_mutex_unlock(&c->m->mu);
	if (!r)
		return 0;
	memset(out, 0, sizeof *out);
	out->topic = topic_names[r->topic];
	out->partition = r->part;
	out->offset = r->off;
	out->key = r->data;
	out->key_len = r->klen;
	out->payload = r->data + r->klen;
	out->len = r->vlen;
	out->impl_ = r;
	out->kind_ = CHAT_REC_MEM;
	return 1;
}

void mlog_cons_free(struct mlog_cons *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->m->mu);
	c->g->member = NULL;
	pthread_mutex_unlock(&c->m->mu);
	pthread_cond_destroy(&c->cv);
	free(c->on);
	free(c);
}
