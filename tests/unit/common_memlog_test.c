/* The in-process log (chat_kafka.h) through the same producer and consumer
 * the services use: partition by key, contiguous offsets, delivery
 * reports and flush, the first poll's assignment and the revocation on
 * free, seek and watermarks, one member per group and committed positions
 * that outlive it, retention behind the slowest group, and a producer and
 * a consumer on two threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_kafka.h"
#include "chat_util.h"

#define NPARTS 4

/* ---- delivery reports ---------------------------------------------------- */

struct reports {
	pthread_mutex_t mu;
	int n, errs;
	int32_t part[4096];
	int64_t off[4096];
	intptr_t tag[4096];
};

static void on_report(void *arg, const rd_kafka_message_t *m)
{
	struct reports *r = arg;
	pthread_mutex_lock(&r->mu);
	if (m->err)
		r->errs++;
	if (r->n < 4096) {
		r->part[r->n] = m->partition;
		r->off[r->n] = m->offset;
		r->tag[r->n] = (intptr_t)m->_private;
	}
	r->n++;
	pthread_mutex_unlock(&r->mu);
}

/* ---- assignment callbacks ------------------------------------------------ */

struct assigns {
	int assigned, revoked, calls;
	int64_t start; /* offset to give every partition, or INVALID */
};

static void on_assign(chat_consumer *c, rd_kafka_resp_err_t what,
                      rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct assigns *a = opaque;
	a->calls++;
	if (what == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < parts->cnt; i++)
			parts->elems[i].offset = a->start;
		a->assigned = chat_consumer_assign(c, what, parts);
	} else {
		a->revoked += parts->cnt;
		a->assigned = chat_consumer_assign(c, what, parts);
	}
}

static void key_of(uint64_t ch, uint8_t key[8])
{
	chat_put_be64(key, ch);
}

static void send_n(chat_producer *p, const char *topic, uint64_t ch, int n,
                   int first_tag)
{
	uint8_t key[8];
	char val[64];
	key_of(ch, key);
	for (int i = 0; i < n; i++) {
		int len = snprintf(val, sizeof val, "ch%" PRIu64 "-%d", ch,
		                   first_tag + i);
		assert_int_equal(chat_producer_send(p, topic, key, 8, val,
		                                    (size_t)len,
		                                    (void *)(intptr_t)(first_tag +
		                                                       i)),
		                 0);
	}
}

/* Poll until n records came or 2 s passed; returns how many. Checks
 * each against its channel's next expected number (order per key). */
static int drain(chat_consumer *c, int n, int *next_of_ch, int nch)
{
	int got = 0;
	int64_t end = chat_mono_ms() + 2000;
	while (got < n && chat_mono_ms() < end) {
		chat_rec r;
		uint64_t ch;
		int k;
		char want[64];
		if (!chat_consumer_poll(c, 50, &r))
			continue;
		assert_int_equal(r.err, 0);
		assert_int_equal(r.key_len, 8);
		ch = chat_get_be64(r.key);
		assert_true(ch < (uint64_t)nch);
		k = snprintf(want, sizeof want, "ch%" PRIu64 "-%d", ch,
		             next_of_ch[ch]);
		assert_int_equal(r.len, (size_t)k);
		assert_memory_equal(r.payload, want, (size_t)k);
		next_of_ch[ch]++;
		chat_rec_release(&r);
		got++;
	}
	return got;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_bad_names(void **state)
{
	char err[256] = "";
	chat_memlog *m = chat_memlog_new(NPARTS, err, sizeof err);
	chat_producer *p;
	(void)state;
	assert_non_null(m);
	assert_null(chat_producer_new("memlog://15", "t", 1, NULL, NULL, err,
	                              sizeof err));
	assert_non_null(strstr(err, "no in-process log"));
	assert_null(chat_consumer_new("memlog://x", "g", "t",
	                              CHAT_TOPIC_FANOUT, 0, NULL, NULL, 0,
	                              err, sizeof err));
	assert_null(chat_consumer_new(chat_memlog_bootstrap(m), "g", "t",
	                              "no.such.topic", 0, NULL, NULL, 0, err,
	                              sizeof err));
	assert_non_null(strstr(err, "no topic"));
	p = chat_producer_new(chat_memlog_bootstrap(m), "t", 1, NULL, NULL,
	                      err, sizeof err);
	assert_non_null(p);
	assert_int_not_equal(chat_producer_send(p, "no.such.topic", "k", 1,
	                                        "v", 1, NULL),
	                     0);
	assert_int_equal(chat_producer_outq(p), 0);
	chat_producer_free(p);
	assert_null(chat_memlog_new(0, err, sizeof err));
	chat_memlog_free(m);
}

static void test_order_reports_assign(void **state)
{
	char err[256];
	chat_memlog *m = chat_memlog_new(NPARTS, err, sizeof err);
	struct reports rep = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct assigns as = {.start = RD_KAFKA_OFFSET_INVALID};
	chat_producer *p;
	chat_consumer *c;
	int next[8] = {0};
	int64_t lo, hi, total = 0;
	(void)state;

	assert_non_null(m);
	p = chat_producer_new(chat_memlog_bootstrap(m), "t", 1, on_report,
	                      &rep, err, sizeof err);
	assert_non_null(p);
	for (int ch = 0; ch < 8; ch++)
		send_n(p, CHAT_TOPIC_INGRESS, (uint64_t)ch, 50, 0);
	assert_int_equal(chat_producer_flush(p, 2000), 0);
	assert_int_equal(chat_producer_outq(p), 0);
	assert_int_equal(rep.n, 400);
	assert_int_equal(rep.errs, 0);
	/* one channel's records: one partition, offsets in send order */
	for (int i = 1; i < 50; i++) {
		assert_int_equal(rep.part[i], rep.part[0]);
		assert_int_equal(rep.off[i], rep.off[i - 1] + 1);
		assert_int_equal(rep.tag[i], i);
	}

	c = chat_consumer_new(chat_memlog_bootstrap(m), "g1", "t",
	                      CHAT_TOPIC_INGRESS, 1, on_assign, &as, 0, err,
	                      sizeof err);
	assert_non_null(c);
	assert_int_equal(as.calls, 0); /* assigned by the first poll */
	assert_int_equal(drain(c, 400, next, 8), 400);
	assert_int_equal(as.calls, 1);
	assert_int_equal(as.assigned, NPARTS);
	for (int ch = 0; ch < 8; ch++)
		assert_int_equal(next[ch], 50);
	for (int i = 0; i < NPARTS; i++) {
		assert_int_equal(chat_consumer_watermarks(c, CHAT_TOPIC_INGRESS,
		                                          i, &lo, &hi, 100),
		                 0);
		assert_int_equal(lo, 0);
		total += hi;
	}
	assert_int_equal(total, 400);
	/* nothing on the other topic reaches this consumer */
	{
		chat_rec r;
		send_n(p, CHAT_TOPIC_FANOUT, 1, 3, 0);
		assert_int_equal(chat_consumer_poll(c, 50, &r), 0);
	}
	chat_consumer_free(c);
	assert_int_equal(as.revoked, NPARTS);
	chat_producer_free(p);
	chat_memlog_free(m);
}

static void test_seek_and_groups(void **state)
{
	char err[256];
	chat_memlog *m = chat_memlog_new(NPARTS, err, sizeof err);
	struct assigns as = {.start = RD_KAFKA_OFFSET_BEGINNING};
	struct assigns as2 = {.start = RD_KAFKA_OFFSET_INVALID};
	chat_producer *p;
	chat_consumer *c, *c2, *other;
	rd_kafka_topic_partition_list_t *l;
	chat_rec r;
	int next[1] = {0};
	int32_t part;
	int64_t lo, hi;
	(void)state;

	p = chat_producer_new(chat_memlog_bootstrap(m), "t", 1, NULL, NULL,
	                      err, sizeof err);
	assert_non_null(p);
	send_n(p, CHAT_TOPIC_FANOUT, 0, 10, 0);
	assert_int_equal(chat_producer_flush(p, 2000), 0);
	c = chat_consumer_new(chat_memlog_bootstrap(m), "g", "t",
	                      CHAT_TOPIC_FANOUT, 0, on_assign, &as, 0, err,
	                      sizeof err);
	assert_non_null(c);
	/* one member per group */
	assert_null(chat_consumer_new(chat_memlog_bootstrap(m), "g", "t2",
	                              CHAT_TOPIC_FANOUT, 0, NULL, NULL, 0, err,
	                              sizeof err));
	assert_non_null(strstr(err, "one member"));
	assert_int_equal(chat_consumer_poll(c, 100, &r), 1);
	part = r.partition;
	assert_int_equal(r.offset, 0);
	chat_rec_release(&r);
	next[0] = 1;
	assert_int_equal(drain(c, 5, next, 1), 5); /* 1..5 read */

	/* seek back to 2: 2.. again */
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, CHAT_TOPIC_FANOUT, part)->offset = 2;
	assert_int_equal(chat_consumer_seek(c, l), 0);
	assert_int_equal(chat_consumer_poll(c, 100, &r), 1);
	assert_int_equal(r.offset, 2);
	chat_rec_release(&r);
	/* beyond the end: from the start, as auto.offset.reset=earliest */
	l->elems[0].offset = 999;
	assert_int_equal(chat_consumer_seek(c, l), 0);
	assert_int_equal(chat_consumer_poll(c, 100, &r), 1);
	assert_int_equal(r.offset, 0);
	chat_rec_release(&r);
	/* a partition of a topic it does not read: refused (the other one
	 * moves, to 1) */
	l->elems[0].offset = 1;
	rd_kafka_topic_partition_list_add(l, CHAT_TOPIC_INGRESS, 0)->offset = 0;
	assert_int_equal(chat_consumer_seek(c, l), -1);
	rd_kafka_topic_partition_list_destroy(l);
	assert_int_equal(chat_consumer_watermarks(c, CHAT_TOPIC_FANOUT, part,
	                                          &lo, &hi, 100),
	                 0);
	assert_int_equal(lo, 0);
	assert_int_equal(hi, 10);
	assert_int_not_equal(chat_consumer_watermarks(c, CHAT_TOPIC_FANOUT,
	                                              NPARTS, &lo, &hi, 100),
	                     0);
	/* read 1..4 again, then leave at position 5 */
	next[0] = 1;
	assert_int_equal(drain(c, 4, next, 1), 4);
	chat_consumer_free(c);

	/* another group reads everything from the start */
	other = chat_consumer_new(chat_memlog_bootstrap(m), "other", "t",
	                          CHAT_TOPIC_FANOUT, 0, NULL, NULL, 0, err,
	                          sizeof err);
	assert_non_null(other);
	next[0] = 0;
	assert_int_equal(drain(other, 10, next, 1), 10);
	chat_consumer_free(other);

	/* a new member of "g" resumes where the group was */
	c2 = chat_consumer_new(chat_memlog_bootstrap(m), "g", "t",
	                       CHAT_TOPIC_FANOUT, 0, on_assign, &as2, 0, err,
	                       sizeof err);
	assert_non_null(c2);
	assert_int_equal(chat_consumer_poll(c2, 100, &r), 1);
	assert_int_equal(r.offset, 5);
	chat_rec_release(&r);
	chat_consumer_free(c2);
	chat_producer_free(p);
	chat_memlog_free(m);
}

/* Records every group has passed are dropped, CHAT_MEMLOG_KEEP behind the
 * slowest; what a lagging group still needs stays. */
static void test_retention(void **state)
{
	char err[256];
	chat_memlog *m = chat_memlog_new(1, err, sizeof err);
	chat_producer *p;
	chat_consumer *fast, *slow;
	chat_rec r;
	int n = CHAT_MEMLOG_KEEP + 3 * 4096, got = 0;
	int64_t lo, hi;
	(void)state;

	p = chat_producer_new(chat_memlog_bootstrap(m), "t", 1, NULL, NULL,
	                      err, sizeof err);
	fast = chat_consumer_new(chat_memlog_bootstrap(m), "fast", "t",
	                         CHAT_TOPIC_INGRESS, 0, NULL, NULL, 0, err,
	                         sizeof err);
	slow = chat_consumer_new(chat_memlog_bootstrap(m), "slow", "t",
	                         CHAT_TOPIC_INGRESS, 0, NULL, NULL, 0, err,
	                         sizeof err);
	assert_non_null(p);
	assert_non_null(fast);
	assert_non_null(slow);
	/* both assigned and at 0 */
	assert_int_equal(chat_consumer_poll(fast, 0, &r), 0);
	assert_int_equal(chat_consumer_poll(slow, 0, &r), 0);
	for (int i = 0; i < n; i++) {
		assert_int_equal(chat_producer_send(p, CHAT_TOPIC_INGRESS, "k", 1,
		                                    "v", 1, NULL),
		                 0);
		while (chat_consumer_poll(fast, 0, &r)) {
			chat_rec_release(&r);
			got++;
		}
	}
	assert_int_equal(got, n);
	chat_consumer_watermarks(fast, CHAT_TOPIC_INGRESS, 0, &lo, &hi, 0);
	assert_int_equal(hi, n);
	assert_int_equal(lo, 0); /* slow still needs all of it */
	while (chat_consumer_poll(slow, 0, &r)) {
		chat_rec_release(&r);
		got++;
	}
	assert_int_equal(got, 2 * n);
	for (int i = 0; i < 4096; i++)
		chat_producer_send(p, CHAT_TOPIC_INGRESS, "k", 1, "v", 1, NULL);
	chat_consumer_watermarks(fast, CHAT_TOPIC_INGRESS, 0, &lo, &hi, 0);
	assert_true(lo > 0);
	assert_true(lo <= n - CHAT_MEMLOG_KEEP);
	chat_consumer_free(fast);
	chat_consumer_free(slow);
	chat_producer_free(p);
	chat_memlog_free(m);
}

/* ---- two threads ----------------------------------------------------------- */

#define THREAD_N 100000

struct thr {
	chat_memlog *m;
	chat_consumer *c;
	int got, bad;
};

static void *consume_main(void *arg)
{
	struct thr *t = arg;
	int64_t next[NPARTS] = {0};
	chat_consumer *c = t->c;
	int64_t end = chat_mono_ms() + 20000;
	while (c && t->got < THREAD_N && chat_mono_ms() < end) {
		chat_rec r;
		if (!chat_consumer_poll(c, 100, &r))
			continue;
		if (r.offset != next[r.partition])
			t->bad++;
		next[r.partition] = r.offset + 1;
		chat_rec_release(&r);
		t->got++;
	}
	chat_consumer_free(c);
	return NULL;
}

static void test_threads(void **state)
{
	char err[256];
	struct thr t = {0};
	struct reports rep = {.mu = PTHREAD_MUTEX_INITIALIZER};
	chat_producer *p;
	pthread_t th;
	(void)state;

	t.m = chat_memlog_new(NPARTS, err, sizeof err);
	assert_non_null(t.m);
	p = chat_producer_new(chat_memlog_bootstrap(t.m), "t", 1, on_report,
	                      &rep, err, sizeof err);
	assert_non_null(p);
	/* a group that has not read yet holds the log */
	t.c = chat_consumer_new(chat_memlog_bootstrap(t.m), "thr", "t",
	                        CHAT_TOPIC_FANOUT, 0, NULL, NULL, 0, err,
	                        sizeof err);
	assert_non_null(t.c);
	assert_int_equal(pthread_create(&th, NULL, consume_main, &t), 0);
	for (int i = 0; i < THREAD_N; i++) {
		uint8_t key[8];
		key_of((uint64_t)i % 16, key);
		assert_int_equal(chat_producer_send(p, CHAT_TOPIC_FANOUT, key, 8,
		                                    &i, sizeof i, NULL),
		                 0);
	}
	assert_int_equal(chat_producer_flush(p, 5000), 0);
	pthread_join(th, NULL);
	assert_int_equal(t.got, THREAD_N);
	assert_int_equal(t.bad, 0);
	assert_int_equal(rep.n, THREAD_N);
	chat_producer_free(p);
	chat_memlog_free(t.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_names),
	    cmocka_unit_test(test_order_reports_assign),
	    cmocka_unit_test(test_seek_and_groups),
	    cmocka_unit_test(test_retention),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
