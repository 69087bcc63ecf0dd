/* The message log: Kafka through librdkafka 2.0.2 (an idempotent acks=all
 * producer with its own poll thread, a consumer that keeps no offsets in
 * Kafka unless asked, librdkafka's mock cluster), or the in-process log of
 * the embedded mode behind the same producer and consumer. */
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

/* ---- consumers ------------------------------------------------------- */

/* A consumer of one of the two logs: librdkafka's (a bootstrap list of
 * brokers, including the mock cluster's) or the in-process log's
 * ("memlog://N", see below). Used by one thread; the callback runs on it
 * from chat_consumer_poll (and from chat_consumer_free). */
typedef struct chat_consumer chat_consumer;

/* One polled record, or an error (err != 0, errstr says what). The
 * pointers stay valid until chat_rec_release. */
typedef struct chat_rec {
	int err; /* rd_kafka_resp_err_t */
	const char *errstr;
	const char *topic;
	int32_t partition;
	int64_t offset;
	const void *key;
	size_t key_len;
	const void *payload;
	size_t len;
	void *impl_; /* the log's record */
	int kind_;
} chat_rec;

/* Called with RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS and the partitions this
 * consumer gets, RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS and those it loses,
 * or another code on an error; it must call chat_consumer_assign with the
 * same code and list (after setting the offsets to start from, for an
 * assignment; RD_KAFKA_OFFSET_INVALID means the group's committed one or
 * the log's start). */
typedef void (*chat_assign_fn)(chat_consumer *c, rd_kafka_resp_err_t what,
                               rd_kafka_topic_partition_list_t *parts,
                               void *opaque);

/* A consumer in group for topics (comma-separated). With own_offsets the
 * application stores offsets itself: auto commit is off. Otherwise
 * offsets auto-commit after poll and new groups start at the earliest
 * offset. assign may be NULL (then every assignment starts at the
 * committed offsets). fetch_wait_ms bounds how long the broker holds a
 * fetch that finds nothing (0 = 10): a real broker answers as soon as data
 * arrives, librdkafka's mock cluster always waits it out. NULL with err.
 * The in-process log has one member per group (a second one is refused)
 * and gives it every partition. */
chat_consumer *chat_consumer_new(const char *bootstrap, const char *group,
                                 const char *client_id, const char *topics,
                                 int own_offsets, chat_assign_fn assign,
                                 void *opaque, int fetch_wait_ms, char *err,
                                 size_t errlen);

/* Wait up to timeout_ms for a record. 1 with *out filled (release it),
 * 0 when none came. */
int chat_consumer_poll(chat_consumer *c, int timeout_ms, chat_rec *out);

void chat_rec_release(chat_rec *r);

/* In the callback: apply what it was called for. Returns the number of
 * partitions assigned afterwards, or -1 when the log refused. */
int chat_consumer_assign(chat_consumer *c, rd_kafka_resp_err_t what,
                         rd_kafka_topic_partition_list_t *parts);

/* Move the fetch position of each listed partition to its offset (on the
 * consumer's thread). librdkafka's seek is tried first, then a new
 * assignment with those positions. Returns 0, or -1 when neither took. */
int chat_consumer_seek(chat_consumer *c,
                       rd_kafka_topic_partition_list_t *parts);

/* The low and high watermark (next offset to be written) of a partition.
 * 0, or an rd_kafka_resp_err_t. */
int chat_consumer_watermarks(chat_consumer *c, const char *topic,
                             int32_t partition, int64_t *lo, int64_t *hi,
                             int timeout_ms);

/* Leave the group (the callback sees the revocation), then free. Accepts
 * NULL. */
void chat_consumer_free(chat_consumer *c);

/* ---- the in-process log ----------------------------------------------- */

/* For the embedded mode: the two chat topics in this process's memory,
 * with Kafka's shape (partitions chosen by key, per-partition offsets from
 * 0, consumer positions, seek, watermarks, delivery reports on their own
 * thread) and none of its cost: no sockets, no broker threads, no polling
 * while idle. Memory only, like the mock cluster; each partition keeps the
 * records its slowest consumer has not passed plus CHAT_MEMLOG_KEEP behind
 * it (for rewinds), and at most CHAT_MEMLOG_MAX (the oldest go first, as
 * retention would drop them). */
#define CHAT_MEMLOG_KEEP 65536
#define CHAT_MEMLOG_MAX (1 << 21)

typedef struct chat_memlog chat_memlog;

chat_memlog *chat_memlog_new(int partitions, char *err, size_t errlen);

/* "memlog://N": what producers and consumers take as their bootstrap.
 * Valid until chat_memlog_free. */
const char *chat_memlog_bootstrap(chat_memlog *m);

/* Every producer and consumer of it must be freed first. Accepts NULL. */
void chat_memlog_free(chat_memlog *m);


typedef struct chat_kafka_mock chat_kafka_mock;

/* A mock cluster of nbrokers inside this process (memory only), with the
 * chat topics created with `partitions` partitions. NULL with err. */
chat_kafka_mock *chat_kafka_mock_new(int nbrokers, int partitions, char *err,
                                     size_t errlen);

/* The bootstrap servers string, valid until chat_kafka_mock_free. */
const char *chat_kafka_mock_bootstraps(chat_kafka_mock *m);

void chat_kafka_mock_free(chat_kafka_mock *m);

#endif
