#include "chat_kafka.h"

#include <librdkafka/rdkafka_mock.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "kafka_int.h"

/* librdkafka backs off up to 10 s between reconnects by default: after a
 * broker restart, sends and fan-out would stall that long after the
 * broker is back. One attempt a second costs nothing. */
#define RECONNECT_MAX_MS "1000"

struct chat_producer {
	struct mlog_prod *mem; /* the in-process log, or NULL */
	rd_kafka_t *rk;
	chat_dr_fn dr;
	void *dr_arg;
	pthread_t poller;
	atomic_int stop;
	unsigned fault_seen; /* fault_gen last acted on */
};

static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v,
                    char *err, size_t errlen)
{
	if (rd_kafka_conf_set(c, k, v, err, errlen) != RD_KAFKA_CONF_OK)
		return -1;
	return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
	(void)rk;
	if (level <= 3)
		chat_error("kafka", "rdkafka_log", "fac=%s msg=\"%s\"", fac, buf);
	else if (level <= 4)
		chat_warn("kafka", "rdkafka_log", "fac=%s msg=\"%s\"", fac, buf);
	else
		chat_debug("kafka", "rdkafka_log", "fac=%s msg=\"%s\"", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *op)
{
	(void)op;
	char fatal[256];
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, fatal, sizeof fatal);
		chat_error("kafka", "fatal_error", "reason=\"%s\"", fatal);
		return;
	}
	/* Transport errors are retried by librdkafka; log them quietly. */
	chat_debug("kafka", "error", "err=%s reason=\"%s\"",
	           rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *op)
{
	chat_producer *p = op;
	(void)rk;
	if (p->dr)
		p->dr(p->dr_arg, m);
}

/* ---- fabricated fatal errors, for tests --------------------------------- */

/* With CHAT_TEST_FAULTS=1 in the environment, SIGUSR2 makes every producer
 * of the process raise a fabricated fatal error (rd_kafka_test_fatal_error,
 * librdkafka's way to test the handling of the idempotent producer's fatal
 * errors, which 2.0.2 can hit after a broker restart but which cannot be
 * caused at will). The fleet tests use it to prove that edges and stores
 * replace a failed producer. Without the variable SIGUSR2 is left alone. */
static atomic_uint fault_gen;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static void on_fault_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&fault_gen, 1);
}

static void fault_init(void)
{
	const char *v = getenv("CHAT_TEST_FAULTS");
	struct sigaction sa;

	if (!v || strcmp(v, "1") != 0)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fault_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGUSR2, &sa, NULL) == 0)
		chat_warn("kafka", "test_faults", "%s",
		          "signal=SIGUSR2 action=fabricate_fatal_error");
}

static void fault_check(chat_producer *p)
{
	unsigned g = atomic_load(&fault_gen);
	if (g == p->fault_seen)
		return;
	p->fault_seen = g;
	chat_warn("kafka", "test_fault", "%s", "action=fatal_error");
	rd_kafka_test_fatal_error(p->rk,
	                          RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
	                          "fabricated by SIGUSR2 (CHAT_TEST_FAULTS)");
}

static void *poll_main(void *arg)
{
	chat_producer *p = arg;
	while (!atomic_load(&p->stop)) {
		rd_kafka_poll(p->rk, 50);
		fault_check(p);
	}
	return NULL;
}

chat_producer *chat_producer_new(const char *bootstrap, const char *client_id,
                                 int linger_ms, chat_dr_fn dr, void *dr_arg,
                                 char *err, size_t errlen)
{
	chat_producer *p;
	rd_kafka_conf_t *c;
	chat_memlog *m = NULL;
	char lg[16];
	int mem = mlog_lookup(bootstrap, &m, err, errlen);

	if (mem < 0)
		return NULL;
	if (mem > 0) {
		if (!(p = calloc(1, sizeof *p))) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		if (!(p->mem = mlog_prod_new(m, dr, dr_arg, err, errlen))) {
			free(p);
			return NULL;
		}
		return p;
	}
	p = calloc(1, sizeof *p);
	c = rd_kafka_conf_new();
	if (!p || !c)
		goto fail;
	snprintf(lg, sizeof lg, "%d", linger_ms);
	if (conf_set(c, "bootstrap.servers", bootstrap, err, errlen) ||
	    conf_set(c, "client.id", client_id, err, errlen) ||
	    conf_set(c, "enable.idempotence", "true", err, errlen) ||
	    conf_set(c, "acks", "all", err, errlen) ||
	    conf_set(c, "linger.ms", lg, err, errlen) ||
	    conf_set(c, "message.timeout.ms", "30000", err, errlen) ||
	    conf_set(c, "queue.buffering.max.messages", "1000000", err, errlen) ||
	    conf_set(c, "reconnect.backoff.max.ms", RECONNECT_MAX_MS, err,
	             errlen))
		goto fail;
	rd_kafka_conf_set_opaque(c, p);
	rd_kafka_conf_set_dr_msg_cb(c, dr_msg_cb);
	rd_kafka_conf_set_log_cb(c, log_cb);
	rd_kafka_conf_set_error_cb(c, error_cb);
	p->dr = dr;
	p->dr_arg = dr_arg;
	pthread_once(&fault_once, fault_init);
	p->fault_seen = atomic_load(&fault_gen);
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, errlen);
	if (!p->rk)
		goto fail;
	c = NULL; /* owned by rk now */
	if (pthread_create(&p->poller, NULL, poll_main, p) != 0) {
		snprintf(err, errlen, "cannot start poll thread");
		rd_kafka_destroy(p->rk);
		goto fail;
	}
	return p;
fail:
	if (c)
		rd_kafka_conf_destroy(c);
	free(p);
	return NULL;
}

int chat_producer_send(chat_producer *p, const char *topic, const void *key,
                       size_t keylen, const void *val, size_t vallen,
                       void *opaque)
{
	rd_kafka_resp_err_t e;

	if (p->mem)
		return mlog_prod_send(p->mem, topic, key, keylen, val, vallen,
		                      opaque);
	e = rd_kafka_producev(
	    p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
	    RD_KAFKA_V_VALUE((void *)val, vallen),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque),
	    RD_KAFKA_V_END);
	return (int)e;
}

int chat_producer_flush(chat_producer *p, int timeout_ms)
{
	if (p->mem)
		return mlog_prod_flush(p->mem, timeout_ms);
	rd_kafka_flush(p->rk, timeout_ms);
	return rd_kafka_outq_len(p->rk);
}

int chat_producer_outq(chat_producer *p)
{
	if (p->mem)
		return mlog_prod_outq(p->mem);
	return rd_kafka_outq_len(p->rk);
}

void chat_producer_free(chat_producer *p)
{
	if (!p)
		return;
	if (p->mem) {
		if (mlog_prod_flush(p->mem, 10000) > 0)
			chat_warn("kafka", "flush_incomplete", "outq=%d",
			          mlog_prod_outq(p->mem));
		mlog_prod_free(p->mem);
		free(p);
		return;
	}
	if (rd_kafka_flush(p->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		chat_warn("kafka", "flush_incomplete", "outq=%d",
		          rd_kafka_outq_len(p->rk));
	atomic_store(&p->stop, 1);
	pthread_join(p->poller, NULL);
	rd_kafka_destroy(p->rk);
	free(p);
}

/* ---- consumers ---------------------------------------------------------- */

static void kafka_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts,
                            void *opaque)
{
	chat_consumer *c = opaque;
	(void)rk;
	if (c->assign)
		c->assign(c, err, parts, c->opaque);
	else
		chat_consumer_assign(c, err, parts);
}

static rd_kafka_t *kafka_consumer_new(chat_consumer *cc, const char *bootstrap,
                                      const char *group,
                                      const char *client_id,
                                      const char *topics, int own_offsets,
                                      int fetch_wait_ms, char *err,
                                      size_t errlen)
{
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	char fw[16];
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *tl;
	char buf[256], *save = NULL, *t;

	snprintf(fw, sizeof fw, "%d", fetch_wait_ms > 0 ? fetch_wait_ms : 10);
	if (conf_set(c, "bootstrap.servers", bootstrap, err, errlen) ||
	    conf_set(c, "group.id", group, err, errlen) ||
	    conf_set(c, "client.id", client_id, err, errlen) ||
	    conf_set(c, "enable.auto.commit", own_offsets ? "false" : "true", err,
	             errlen) ||
	    conf_set(c, "auto.offset.reset", "earliest", err, errlen) ||
	    conf_set(c, "enable.partition.eof", "false", err, errlen) ||
	    conf_set(c, "session.timeout.ms", "10000", err, errlen) ||
	    conf_set(c, "heartbeat.interval.ms", "1000", err, errlen) ||
	    conf_set(c, "fetch.wait.max.ms", fw, err, errlen) ||
	    conf_set(c, "isolation.level", "read_committed", err, errlen) ||
	    conf_set(c, "reconnect.backoff.max.ms", RECONNECT_MAX_MS, err,
	             errlen))
		goto fail;
	rd_kafka_conf_set_rebalance_cb(c, kafka_rebalance);
	rd_kafka_conf_set_opaque(c, cc);
	rd_kafka_conf_set_log_cb(c, log_cb);
	rd_kafka_conf_set_error_cb(c, error_cb);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, errlen);
	if (!rk)
		goto fail;
	rd_kafka_poll_set_consumer(rk);
	tl = rd_kafka_topic_partition_list_new(4);
	snprintf(buf, sizeof buf, "%s", topics);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		rd_kafka_topic_partition_list_add(tl, t, RD_KAFKA_PARTITION_UA);
	if (rd_kafka_subscribe(rk, tl) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "cannot subscribe to %s", topics);
		rd_kafka_topic_partition_list_destroy(tl);
		rd_kafka_destroy(rk);
		return NULL;
	}
	rd_kafka_topic_partition_list_destroy(tl);
	return rk;
fail:
	rd_kafka_conf_destroy(c);
	return NULL;
}

chat_consumer *chat_consumer_new(const char *bootstrap, const char *group,
                                 const char *client_id, const char *topics,
                                 int own_offsets, chat_assign_fn assign,
                                 void *opaque, int fetch_wait_ms, char *err,
                                 size_t errlen)
{
	chat_consumer *c = calloc(1, sizeof *c);
	chat_memlog *m = NULL;
	int mem;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->assign = assign;
	c->opaque = opaque;
	mem = mlog_lookup(bootstrap, &m, err, errlen);
	if (mem > 0)
		c->mem = mlog_cons_new(m, group, topics, err, errlen);
	else if (mem == 0)
		c->rk = kafka_consumer_new(c, bootstrap, group, client_id,
		                           topics, own_offsets, fetch_wait_ms,
		                           err, errlen);
	if (!c->mem && !c->rk) {
		free(c);
		return NULL;
	}
	if (c->mem)
		c->assigned = -1; /* the first poll assigns */
	return c;
}

int chat_consumer_poll(chat_consumer *c, int timeout_ms, chat_rec *out)
{
	rd_kafka_message_t *m;

	if (c->mem) {
		if (c->assigned < 0) {
			/* the first poll: the whole log is ours (the one
			 * member of the group), as a rebalance says */
			rd_kafka_topic_partition_list_t *all =
			    mlog_cons_all(c->mem);
			c->assigned = 0;
			kafka_rebalance(NULL, RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS,
			                all, c);
			rd_kafka_topic_partition_list_destroy(all);
		}
		return mlog_cons_poll(c->mem, timeout_ms, out);
	}
	if (!(m = rd_kafka_consumer_poll(c->rk, timeout_ms)))
		return 0;
	memset(out, 0, sizeof *out);
	out->err = m->err;
	out->errstr = m->err ? rd_kafka_message_errstr(m) : NULL;
	out->topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
	out->partition = m->partition;
	out->offset = m->offset;
	out->key = m->key;
	out->key_len = m->key_len;
	out->payload = m->payload;
	out->len = m->len;
	out->impl_ = m;
	out->kind_ = CHAT_REC_KAFKA;
	return 1;
}

void chat_rec_release(chat_rec *r)
{
	if (!r || !r->impl_)
		return;
	if (r->kind_ == CHAT_REC_KAFKA)
		rd_kafka_message_destroy(r->impl_);
	else
		mlog_rec_release(r->impl_);
	r->impl_ = NULL;
}

int chat_consumer_assign(chat_consumer *c, rd_kafka_resp_err_t what,
                         rd_kafka_topic_partition_list_t *parts)
{
	int coop;

	if (c->mem) {
		c->assigned = mlog_cons_assign(c->mem, what, parts);
		return c->assigned;
	}
	coop = !strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE");
	if (what == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && parts) {
		if (coop) {
			rd_kafka_error_t *e =
			    rd_kafka_incremental_assign(c->rk, parts);
			if (e) {
				chat_error("kafka", "assign_failed", "err=%s",
				           rd_kafka_error_string(e));
				rd_kafka_error_destroy(e);
				return -1;
			}
			c->assigned += parts->cnt;
		} else {
			if (rd_kafka_assign(c->rk, parts) !=
			    RD_KAFKA_RESP_ERR_NO_ERROR)
				return -1;
			c->assigned = parts->cnt;
		}
	} else if (what == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && parts &&
	           coop) {
		rd_kafka_error_t *e = rd_kafka_incremental_unassign(c->rk, parts);
		if (e)
			rd_kafka_error_destroy(e);
		c->assigned -= parts->cnt;
	} else {
		rd_kafka_assign(c->rk, NULL);
		c->assigned = 0;
	}
	return c->assigned;
}

int chat_consumer_seek(chat_consumer *c,
                       rd_kafka_topic_partition_list_t *l)
{
	rd_kafka_topic_partition_list_t *a = NULL;
	rd_kafka_error_t *e;
	int rc = -1;

	if (c->mem)
		return mlog_cons_seek(c->mem, l);
	e = rd_kafka_seek_partitions(c->rk, l, 5000);
	for (int i = 0; !e && i < l->cnt; i++)
		if (l->elems[i].err) {
			chat_warn("kafka", "seek_failed",
			          "partition=%" PRId32 " err=%s",
			          l->elems[i].partition,
			          rd_kafka_err2name(l->elems[i].err));
			e = rd_kafka_error_new(l->elems[i].err, "seek");
		}
	if (!e)
		return 0;
	/* Seeking fails on a partition whose fetcher is not started yet:
	 * assign again with those positions. */
	chat_warn("kafka", "seek_failed", "reason=\"%s\" fallback=assign",
	          rd_kafka_error_string(e));
	rd_kafka_error_destroy(e);
	if (rd_kafka_assignment(c->rk, &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a) {
		rd_kafka_position(c->rk, a);
		for (int i = 0; i < l->cnt; i++) {
			rd_kafka_topic_partition_t *p =
			    rd_kafka_topic_partition_list_find(
			        a, l->elems[i].topic, l->elems[i].partition);
			if (p)
				p->offset = l->elems[i].offset;
		}
		if (rd_kafka_assign(c->rk, a) == RD_KAFKA_RESP_ERR_NO_ERROR)
			rc = 0;
		else
			chat_error("kafka", "reassign_failed", "%s", "n=0");
	}
	if (a)
		rd_kafka_topic_partition_list_destroy(a);
	return rc;
}

int chat_consumer_watermarks(chat_consumer *c, const char *topic,
                             int32_t partition, int64_t *lo, int64_t *hi,
                             int timeout_ms)
{
	if (c->mem)
		return mlog_cons_watermarks(c->mem, topic, partition, lo, hi);
	return (int)rd_kafka_query_watermark_offsets(c->rk, topic, partition,
	                                             lo, hi, timeout_ms);
}

void chat_consumer_free(chat_consumer *c)
{
	if (!c)
		return;
	if (c->mem) {
		/* leaving the group revokes, as rd_kafka_consumer_close
		 * does */
		rd_kafka_topic_partition_list_t *l = mlog_cons_assigned(c->mem);
		if (l) {
			kafka_rebalance(NULL, RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS,
			                l, c);
			rd_kafka_topic_partition_list_destroy(l);
		}
		mlog_cons_free(c->mem);
	} else {
		rd_kafka_consumer_close(c->rk);
		rd_kafka_destroy(c->rk);
	}
	free(c);
}

struct chat_kafka_mock {
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
};

chat_kafka_mock *chat_kafka_mock_new(int nbrokers, int partitions, char *err,
                                     size_t errlen)
{
	chat_kafka_mock *m = calloc(1, sizeof *m);
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	if (!m)
		goto fail;
	rd_kafka_conf_set_log_cb(c, log_cb);
	m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, errlen);
	if (!m->rk)
		goto fail;
	c = NULL;
	m->mc = rd_kafka_mock_cluster_new(m->rk, nbrokers);
	if (!m->mc) {
		snprintf(err, errlen, "cannot create the mock cluster");
		goto fail_rk;
	}
	if (rd_kafka_mock_topic_create(m->mc, CHAT_TOPIC_INGRESS, partitions, 1) ||
	    rd_kafka_mock_topic_create(m->mc, CHAT_TOPIC_FANOUT, partitions, 1)) {
		snprintf(err, errlen, "cannot create the mock topics");
		rd_kafka_mock_cluster_destroy(m->mc);
		goto fail_rk;
	}
	return m;
fail_rk:
	rd_kafka_destroy(m->rk);
fail:
	if (c)
		rd_kafka_conf_destroy(c);
	free(m);
	return NULL;
}

const char *chat_kafka_mock_bootstraps(chat_kafka_mock *m)
{
	return rd_kafka_mock_cluster_bootstraps(m->mc);
}

void chat_kafka_mock_free(chat_kafka_mock *m)
{
	if (!m)
		return;
	rd_kafka_mock_cluster_destroy(m->mc);
	rd_kafka_destroy(m->rk);
	free(m);
}
