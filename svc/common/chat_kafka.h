/* Kafka helpers over librdkafka 2.0.2: an idempotent acks=all producer with
 * its own poll thread, a consumer that keeps no offsets in Kafka unless
 * asked, and librdkafka's mock cluster for the embedded mode. */
#ifndef CHAT_KAFKA_H
#define CHAT_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#define CHAT_TOPIC_INGRESS "chat.ingress"
#define CHAT_TOPIC_FANOUT "chat.fanout"

/* A delivery report for one produced message; runs on the producer's poll
 * thread. msg->_private is the opaque given to chat_producer_send. */
typedef void (*chat_dr_fn)(void *arg, const rd_kafka_message_t *msg);

typedef struct chat_producer chat_producer;

/* An idempotent producer (acks=all) to bootstrap, with linger_ms batching.
 * A thread polls for delivery reports and calls dr. NULL with err. */
chat_producer *chat_producer_new(const char *bootstrap, const char *client_id,
                                 int linger_ms, chat_dr_fn dr, void *dr_arg,
                                 char *err, size_t errlen);

/* Queue one message (copied). opaque comes back in the delivery report.
 * Returns 0, or an rd_kafka_resp_err_t (the report will not come). */
int chat_producer_send(chat_producer *p, const char *topic, const void *key,
                       size_t keylen, const void *val, size_t vallen,
                       void *opaque);

/* Wait until every queued message is reported or timeout_ms passes.
 * Returns the number still outstanding. */
int chat_producer_flush(chat_producer *p, int timeout_ms);

/* Messages queued and not yet reported. */
int chat_producer_outq(chat_producer *p);

/* Flush (up to 10 s), stop the poll thread, destroy. Accepts NULL. */
void chat_producer_free(chat_producer *p);

/* Tests: with CHAT_TEST_FAULTS=1 in the environment of the process, a
 * SIGUSR2 makes every producer raise a fabricated fatal error
 * (rd_kafka_test_fatal_error), as librdkafka 2.0.2's idempotent producer
 * may after a broker restart; sends then return RD_KAFKA_RESP_ERR__FATAL
 * and the owner must replace the producer. Without it SIGUSR2 is left
 * alone. */

/* A consumer in group for topics (comma-separated). With own_offsets the
 * application stores offsets itself: auto commit is off and rebalance_cb
 * (required) must assign. Otherwise offsets auto-commit after poll and
 * new groups start at the earliest offset. fetch_wait_ms bounds how long
 * the broker holds a fetch that finds nothing (0 = 10): a real broker
 * answers as soon as data arrives, librdkafka's mock cluster always waits
 * it out, so chatd uses 1. NULL with err. */
rd_kafka_t *chat_consumer_new(const char *bootstrap, const char *group,
                              const char *client_id, const char *topics,
                              int own_offsets,
                              void (*rebalance_cb)(rd_kafka_t *,
                                                   rd_kafka_resp_err_t,
                                                   rd_kafka_topic_partition_list_t *,
                                                   void *),
                              void *opaque, int fetch_wait_ms, char *err,
                              size_t errlen);

typedef struct chat_kafka_mock chat_kafka_mock;

/* A mock cluster of nbrokers inside this process (memory only), with the
 * chat topics created with `partitions` partitions. NULL with err. */
chat_kafka_mock *chat_kafka_mock_new(int nbrokers, int partitions, char *err,
                                     size_t errlen);

/* The bootstrap servers string, valid until chat_kafka_mock_free. */
const char *chat_kafka_mock_bootstraps(chat_kafka_mock *m);

void chat_kafka_mock_free(chat_kafka_mock *m);

#endif
