/* The chat.ingress consumer of the store: one thread polls, gathers a
 * batch, stores it with its offsets in one transaction, then fans the new
 * messages out. Offsets live in the database only; the rebalance callback
 * loads them and assigns. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_log.h"
#include "chat_status.h"
#include "chat_util.h"
#include "store_internal.h"

#define POLL_MS 100     /* waiting for the first record of a batch */
#define LINGER_MS 0     /* a batch is what has arrived: waiting for more
                         * only adds latency (under load the queue fills
                         * while the previous batch commits) */
#define BACKOFF_MIN 50  /* ms, after a failed batch */
#define BACKOFF_MAX 2000

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void batch_drop(struct store *s)
{
	for (size_t i = 0; i < s->nbatch; i++)
		chat_rec_release(&s->batch[i]);
	s->nbatch = 0;
	chat_arena_reset(s->batch_arena);
}

/* Seek each partition of l to its offset (chat_consumer_seek falls back to
 * a new assignment when seeking fails). */
static void seek_list(struct store *s, rd_kafka_topic_partition_list_t *l)
{
	if (chat_consumer_seek(s->consumer, l) != 0)
		chat_error(STORE_SVC, "seek_failed", "partitions=%d", l->cnt);
}

/* Put the fetch position of every partition in the (sorted) batch back to
 * its first offset, so the records are read again. */
static void rewind_batch(struct store *s, size_t n)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new((int)n);

	for (size_t i = 0; i < n; i++) {
		const store_ingress_raw *r = &s->raws[i];
		if (i > 0 && r->partition == s->raws[i - 1].partition &&
		    !strcmp(r->topic, s->raws[i - 1].topic))
			continue; /* sorted: the first one has the lowest */
		rd_kafka_topic_partition_list_add(l, r->topic, r->partition)
		    ->offset = r->offset;
	}
	seek_list(s, l);
	rd_kafka_topic_partition_list_destroy(l);
}

/* Record the committed next offset of each partition of the (sorted)
 * batch, for store_drain. */
static void positions_advance(struct store *s, size_t n)
{
	pthread_mutex_lock(&s->pos_lock);
	for (size_t i = 0; s->positions && i < n; i++) {
		const store_ingress_raw *r = &s->raws[i];
		rd_kafka_topic_partition_t *p;
		if (i + 1 < n && r->partition == s->raws[i + 1].partition &&
		    !strcmp(r->topic, s->raws[i + 1].topic))
			continue; /* sorted: the last one has the highest */
		p = rd_kafka_topic_partition_list_find(s->positions, r->topic,
		                                       r->partition);
		if (p)
			p->offset = r->offset + 1;
	}
	pthread_mutex_unlock(&s->pos_lock);
}

static void positions_set(struct store *s,
                          const rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *copy =
	    parts ? rd_kafka_topic_partition_list_copy(parts) : NULL;
	pthread_mutex_lock(&s->pos_lock);
	if (s->positions)
		rd_kafka_topic_partition_list_destroy(s->positions);
	s->positions = copy;
	pthread_mutex_unlock(&s->pos_lock);
}

void store_positions_clear(struct store *s)
{
	positions_set(s, NULL);
}

/* Whether every assigned partition is stored up to its high watermark:
 * 1 yes, 0 not yet, -1 cannot tell now (no assignment, broker query
 * failed). */
static int drained(struct store *s, int timeout_ms)
{
	rd_kafka_topic_partition_list_t *l = NULL;
	int ret = 1;

	pthread_mutex_lock(&s->pos_lock);
	if (s->positions && atomic_load(&s->ready))
		l = rd_kafka_topic_partition_list_copy(s->positions);
	pthread_mutex_unlock(&s->pos_lock);
	if (!l)
		return -1;
	for (int i = 0; i < l->cnt && ret == 1; i++) {
		rd_kafka_topic_partition_t *p = &l->elems[i];
		int64_t lo = 0, hi = 0, pos = p->offset;
		if (chat_consumer_watermarks(s->consumer, p->topic,
		                             p->partition, &lo, &hi,
		                             timeout_ms) != 0) {
			ret = -1;
			break;
		}
		if (pos < 0) /* nothing stored yet: from the log's start */
			pos = lo;
		if (pos < hi)
			ret = 0;
	}
	rd_kafka_topic_partition_list_destroy(l);
	return ret;
}

int store_drain(store *s, int timeout_ms)
{
	int64_t end;
	if (!s || !s->consumer || !s->thread_started)
		return -1;
	end = chat_mono_us() / 1000 + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		int64_t left = end - chat_mono_us() / 1000;
		if (drained(s, left > 1000 ? 1000 : left > 0 ? (int)left : 1) ==
		    1)
			return 0;
		if (left <= 0) {
			chat_warn(STORE_SVC, "drain_timeout", "timeout_ms=%d",
			          timeout_ms);
			return -1;
		}
		sleep_ms(20);
	}
}

/* Fan out what the committed batch stored, count and log the rest. */
static void batch_done(struct store *s, size_t n)
{
	size_t nnew = 0, ndup = 0, nrej = 0;
	for (size_t i = 0; i < n; i++) {
		store_ingest_item *it = &s->items[i];
		const store_ingress_raw *r = &s->raws[i];
		Chat__Event ev = CHAT__EVENT__INIT;
		switch (it->outcome) {
		case STORE_INGEST_NEW:
			ev.channel_id = it->msg->channel_id;
			ev.kind_case = CHAT__EVENT__KIND_MESSAGE;
			ev.message = it->msg;
			store_emit(s, it->msg->channel_id, &ev);
			nnew++;
			break;
		case STORE_INGEST_DUP:
			/* Send the stored first copy again: the retry may
			 * follow a fan-out that never arrived, and an edge
			 * that acknowledges after store waits for it. Clients
			 * drop the copy by its seq. */
			if (it->msg) {
				ev.channel_id = it->msg->channel_id;
				ev.kind_case = CHAT__EVENT__KIND_MESSAGE;
				ev.message = it->msg;
				store_emit(s, it->msg->channel_id, &ev);
			}
			chat_debug(STORE_SVC, "ingress_duplicate",
			           "channel=%" PRIu64 " sender=%" PRIu64
			           " seq=%" PRIu64,
			           it->rec->channel_id, it->rec->sender_id,
			           it->seq);
			ndup++;
			break;
		default:
			chat_warn(STORE_SVC, "ingress_rejected",
			          "partition=%" PRId32 " offset=%" PRId64
			          " reason=\"%s\"",
			          r->partition, r->offset, it->why);
			nrej++;
			break;
		}
	}
	atomic_fetch_add(&s->stored, nnew);
	atomic_fetch_add(&s->dups, ndup);
	atomic_fetch_add(&s->rejected, nrej);
	atomic_fetch_add(&s->batches, 1);
	chat_debug(STORE_SVC, "batch_commit",
	           "n=%zu new=%zu dup=%zu rejected=%zu", n, nnew, ndup, nrej);
}

/* The fencing expectation of a partition (store_expect_fn): what this
 * consumer loaded at assignment or last committed. */
static int64_t expect_offset(void *arg, const char *topic, int32_t part)
{
	struct store *s = arg;
	int64_t v = STORE_OFFSET_UNKNOWN;
	rd_kafka_topic_partition_t *p;

	pthread_mutex_lock(&s->pos_lock);
	if (s->positions &&
	    (p = rd_kafka_topic_partition_list_find(s->positions, topic,
	                                            part)) != NULL)
		v = p->offset >= 0 ? p->offset : STORE_OFFSET_NONE;
	pthread_mutex_unlock(&s->pos_lock);
	return v;
}

/* The batch was fenced off: another store committed some of its
 * partitions meanwhile. Take the stored offsets as the truth: remember
 * them as this consumer's expectations and, with can_seek, go on reading
 * from there. A partition whose offset cannot be read now is rewound to
 * the batch's first offset instead (the next attempt is fenced again and
 * tries again). */
static void refence(struct store *s, size_t n, int can_seek)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new((int)n);

	for (size_t i = 0; i < n; i++) {
		const store_ingress_raw *r = &s->raws[i];
		rd_kafka_topic_partition_t *p;
		store_ctx cx;
		int64_t off = 0;
		int st;
		if (i > 0 && r->partition == s->raws[i - 1].partition &&
		    !strcmp(r->topic, s->raws[i - 1].topic))
			continue; /* sorted: the first one has the lowest */
		memset(&cx, 0, sizeof cx);
		cx.arena = s->batch_arena;
		st = store_db_load_offset(s->db, &cx, s->log_id, r->topic,
		                          r->partition, &off);
		if (st == CHAT_NOT_FOUND) {
			off = RD_KAFKA_OFFSET_BEGINNING;
		} else if (st != CHAT_OK) {
			chat_warn(STORE_SVC, "offset_load_failed",
			          "partition=%" PRId32 " reason=\"%s\"",
			          r->partition, cx.why);
			rd_kafka_topic_partition_list_add(l, r->topic,
			                                  r->partition)
			    ->offset = r->offset;
			continue;
		}
		rd_kafka_topic_partition_list_add(l, r->topic, r->partition)
		    ->offset = off;
		pthread_mutex_lock(&s->pos_lock);
		if (s->positions &&
		    (p = rd_kafka_topic_partition_list_find(
		         s->positions, r->topic, r->partition)) != NULL)
			p->offset = off;
		pthread_mutex_unlock(&s->pos_lock);
		chat_info(STORE_SVC, "partition_refenced",
		          "topic=%s partition=%" PRId32 " batch_first=%" PRId64
		          " stored=%" PRId64,
		          r->topic, r->partition, r->offset, off);
	}
	if (can_seek)
		seek_list(s, l);
	rd_kafka_topic_partition_list_destroy(l);
}

/* Store the batch in hand. On failure the batch is dropped and, with
 * can_seek, its partitions are rewound so it is read again (or, when
 * another store committed them meanwhile, moved to the stored offsets).
 * Returns the status of the commit. */
static int batch_flush(struct store *s, int can_seek)
{
	size_t n = s->nbatch;
	store_ctx cx;
	int st;

	if (n == 0)
		return CHAT_OK;
	memset(&cx, 0, sizeof cx);
	cx.arena = s->batch_arena;
	for (size_t i = 0; i < n; i++) {
		chat_rec *m = &s->batch[i];
		s->raws[i] = (store_ingress_raw){
		    .topic = m->topic,
		    .partition = m->partition,
		    .offset = m->offset,
		    .key = m->key,
		    .keylen = m->key_len,
		    .val = m->payload,
		    .len = m->len,
		    .opaque = m,
		};
	}
	/* Sorted here too (apply sorts again, cheaply): a rewind needs the
	 * first offset of each partition even when apply never ran. */
	store_ingress_sort(s->raws, n);
	if (atomic_load(&s->fail_commits) > 0) {
		atomic_fetch_sub(&s->fail_commits, 1);
		st = store_ctx_fail(&cx, CHAT_UNAVAILABLE,
		                    "injected commit failure");
	} else {
		st = store_ingress_apply_fenced(s->db, &cx, s->log_id, s->raws,
		                                n, s->items, expect_offset, s);
	}
	if (st == CHAT_OK) {
		positions_advance(s, n);
		batch_done(s, n);
	} else if (st == CHAT_ABORTED) {
		atomic_fetch_add(&s->fenced, 1);
		chat_warn(STORE_SVC, "batch_fenced",
		          "n=%zu reason=\"%s\" reseek=%d", n, cx.why, can_seek);
		refence(s, n, can_seek);
	} else {
		atomic_fetch_add(&s->batch_failures, 1);
		chat_error(STORE_SVC, "batch_failed",
		           "n=%zu code=%s reason=\"%s\" rewind=%d", n,
		           chat_strerror(st), cx.why, can_seek);
		if (can_seek)
			rewind_batch(s, n);
	}
	batch_drop(s);
	return st;
}

/* Poll one record into the batch; errors are logged and dropped. Returns
 * whether one was kept. */
static int batch_poll(struct store *s, int timeout_ms)
{
	chat_rec r, *m = &r;

	/* polled into a local: a rebalance callback inside the poll may
	 * flush the batch */
	if (!chat_consumer_poll(s->consumer, timeout_ms, m))
		return 0;
	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			chat_warn(STORE_SVC, "consume_error",
			          "err=%s msg=\"%s\"",
			          rd_kafka_err2name((rd_kafka_resp_err_t)m->err),
			          m->errstr ? m->errstr : "");
		chat_rec_release(m);
		return 0;
	}
	s->batch[s->nbatch++] = r;
	return 1;
}

static void *consumer_main(void *arg)
{
	struct store *s = arg;
	int backoff = 0;

	while (!atomic_load(&s->stop)) {
		if (!batch_poll(s, POLL_MS))
			continue;
		while (s->nbatch < (size_t)s->batch_max &&
		       batch_poll(s, LINGER_MS))
			;
		if (batch_flush(s, 1) == CHAT_OK) {
			backoff = 0;
			continue;
		}
		backoff = backoff ? backoff * 2 : BACKOFF_MIN;
		if (backoff > BACKOFF_MAX)
			backoff = BACKOFF_MAX;
		for (int t = 0; t < backoff && !atomic_load(&s->stop); t += 10)
			sleep_ms(10);
	}
	batch_flush(s, 0);
	return NULL;
}

/* The stored next offset of a partition, retried briefly: BEGINNING when
 * none is stored, or when the database cannot answer (then every record
 * is read again, and dedupe keeps the store right). */
static int64_t load_offset(struct store *s, const char *topic, int32_t part)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		store_ctx cx;
		int64_t next = 0;
		int st;
		memset(&cx, 0, sizeof cx);
		cx.arena = s->batch_arena;
		st = store_db_load_offset(s->db, &cx, s->log_id, topic, part,
		                          &next);
		if (st == CHAT_OK)
			return next;
		if (st == CHAT_NOT_FOUND)
			return RD_KAFKA_OFFSET_BEGINNING;
		chat_error(STORE_SVC, "offset_load_failed",
		           "partition=%" PRId32 " reason=\"%s\"", part, cx.why);
		sleep_ms(100);
	}
	return RD_KAFKA_OFFSET_BEGINNING;
}

void store_rebalance_cb(chat_consumer *c, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct store *s = opaque;
	/* A batch gathered before the rebalance is finished first: its
	 * offsets go with it, so the partition's next owner starts after
	 * it. If it fails, the offsets stay and the records are read
	 * again. */
	batch_flush(s, 0);
	switch (err) {
	case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
		for (int i = 0; i < parts->cnt; i++) {
			rd_kafka_topic_partition_t *p = &parts->elems[i];
			p->offset = load_offset(s, p->topic, p->partition);
			chat_debug(STORE_SVC, "partition_assigned",
			           "topic=%s partition=%" PRId32
			           " offset=%" PRId64,
			           p->topic, p->partition, p->offset);
		}
		if (chat_consumer_assign(c, err, parts) < 0) {
			chat_error(STORE_SVC, "assign_failed", "partitions=%d",
			           parts->cnt);
			atomic_store(&s->ready, 0);
			break;
		}
		positions_set(s, parts);
		chat_info(STORE_SVC, "assigned", "partitions=%d", parts->cnt);
		atomic_store(&s->ready, 1);
		break;
	case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
		atomic_store(&s->ready, 0);
		positions_set(s, NULL);
		chat_consumer_assign(c, err, parts);
		chat_info(STORE_SVC, "revoked", "partitions=%d", parts->cnt);
		break;
	default:
		chat_error(STORE_SVC, "rebalance_error", "err=%s",
		           rd_kafka_err2name(err));
		atomic_store(&s->ready, 0);
		positions_set(s, NULL);
		chat_consumer_assign(c, err, NULL);
		break;
	}
}

int store_consumer_start(struct store *s, char *err, size_t errlen)
{
	if (pthread_create(&s->thread, NULL, consumer_main, s) != 0) {
		snprintf(err, errlen, "cannot start the consumer thread");
		return -1;
	}
	s->thread_started = 1;
	return 0;
}

void store_consumer_join(struct store *s)
{
	atomic_store(&s->stop, 1);
	if (s->thread_started) {
		pthread_join(s->thread, NULL);
		s->thread_started = 0;
	}
}
