/* Between kafka.c (the public producer and consumer, librdkafka's side)
 * and memlog.c (the in-process log's side). Not for services. */
#ifndef CHAT_KAFKA_INT_H
#define CHAT_KAFKA_INT_H

#include "chat_kafka.h"

#define CHAT_REC_KAFKA 1
#define CHAT_REC_MEM 2

struct mlog_prod;
struct mlog_cons;

struct chat_consumer {
	rd_kafka_t *rk;        /* Kafka, or NULL */
	struct mlog_cons *mem; /* the in-process log, or NULL */
	chat_assign_fn assign;
	void *opaque;
	int assigned; /* partitions */
};

/* The log named by a "memlog://N" bootstrap: 1 with *out set, 0 when the
 * bootstrap is not one (Kafka then), -1 with err when no such log. */
int mlog_lookup(const char *bootstrap, chat_memlog **out, char *err,
                size_t errlen);

struct mlog_prod *mlog_prod_new(chat_memlog *m, chat_dr_fn dr, void *dr_arg,
                                char *err, size_t errlen);
int mlog_prod_send(struct mlog_prod *p, const char *topic, const void *key,
                   size_t keylen, const void *val, size_t vallen,
                   void *opaque);
int mlog_prod_flush(struct mlog_prod *p, int timeout_ms);
int mlog_prod_outq(struct mlog_prod *p);
void mlog_prod_free(struct mlog_prod *p);

struct mlog_cons *mlog_cons_new(chat_memlog *m, const char *group,
                                const char *topics, char *err,
                                size_t errlen);
/* Every partition of its topics, offsets INVALID (the first poll hands
 * them to the assign callback). */
rd_kafka_topic_partition_list_t *mlog_cons_all(struct mlog_cons *c);
int mlog_cons_poll(struct mlog_cons *c, int timeout_ms, chat_rec *out);
int mlog_cons_assign(struct mlog_cons *c, rd_kafka_resp_err_t what,
                     const rd_kafka_topic_partition_list_t *parts);
/* The partitions assigned now (NULL when none). */
rd_kafka_topic_partition_list_t *mlog_cons_assigned(struct mlog_cons *c);
int mlog_cons_seek(struct mlog_cons *c,
                   const rd_kafka_topic_partition_list_t *parts);
int mlog_cons_watermarks(struct mlog_cons *c, const char *topic,
                         int32_t partition, int64_t *lo, int64_t *hi);
void mlog_cons_free(struct mlog_cons *c);
void mlog_rec_release(void *rec);

#endif
