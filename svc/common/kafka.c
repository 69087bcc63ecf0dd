#include "chat_kafka.h"

#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"

/* librdkafka backs off up to 10 s between reconnects by default: after a
 * broker restart, sends and fan-out would stall that long after the
 * broker is back. One attempt a second costs nothing. */
#define RECONNECT_MAX_MS "1000"

struct chat_producer {
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
	chat_producer *p = calloc(1, sizeof *p);
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	char lg[16];

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
	rd_kafka_resp_err_t e = rd_kafka_producev(
	    p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
	    RD_KAFKA_V_VALUE((void *)val, vallen),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque),
	    RD_KAFKA_V_END);
	return (int)e;
}

int chat_producer_flush(chat_producer *p, int timeout_ms)
{
	rd_kafka_flush(p->rk, timeout_ms);
	return rd_kafka_outq_len(p->rk);
}

int chat_producer_outq(chat_producer *p)
{
	return rd_kafka_outq_len(p->rk);
}

void chat_producer_free(chat_producer *p)
{
	if (!p)
		return;
	if (rd_kafka_flush(p->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		chat_warn("kafka", "flush_incomplete", "outq=%d",
		          rd_kafka_outq_len(p->rk));
	atomic_store(&p->stop, 1);
	pthread_join(p->poller, NULL);
	rd_kafka_destroy(p->rk);
	free(p);
}

rd_kafka_t *chat_consumer_new(const char *bootstrap, const char *group,
                              const char *client_id, const char *topics,
                              int own_offsets,
                              void (*rebalance_cb)(rd_kafka_t *,
                                                   rd_kafka_resp_err_t,
                                                   rd_kafka_topic_partition_list_t *,
                                                   void *),
                              void *opaque, int fetch_wait_ms, char *err,
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
	if (rebalance_cb)
		rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
	rd_kafka_conf_set_opaque(c, opaque);
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
