/* Private to the store service: its state, shared by store.c (start/stop,
 * fan-out), store_rpc.c (the chat.Store handlers) and store_consumer.c
 * (the chat.ingress consumer thread). */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chat_arena.h"
#include "chat_kafka.h"
#include "chat_rpc.h"
#include "common.pb-c.h"
#include "store.h"
#include "store_db.h"
#include "store_ingress.h"

#define STORE_SVC "store"
#define STORE_RPC_FNS_MAX 32

struct store {
	/* configuration, strings owned */
	char *db_path, *kafka, *log_id, *rpc_url, *instance;
	int rpc_threads, batch_max;
	char *admin_url; /* NULL when none */
	int admin_port;

	store_db *db;
	chat_rpc_server *rpc;
	chat_producer *prod;          /* replaced after a fatal error */
	pthread_rwlock_t prod_lock;   /* read: send; write: replace prod */
	int prod_lock_init;
	char client_id[128];
	chat_rpc_fn rpc_fns[STORE_RPC_FNS_MAX]; /* descriptor order */

	/* the ingress consumer, used only by its thread (and by
	 * store_stop after the thread ended) */
	chat_consumer *consumer;
	pthread_t thread;
	int thread_started;
	atomic_int stop;
	atomic_int ready;
	/* the assignment with the next offset committed for each partition
	 * (RD_KAFKA_OFFSET_BEGINNING: none yet), for store_drain */
	pthread_mutex_t pos_lock;
	int pos_lock_init;
	rd_kafka_topic_partition_list_t *positions;
	atomic_int fail_commits; /* test hook: batches still to fail */
	chat_rec *batch; /* batch_max entries */
	size_t nbatch;
	store_ingress_raw *raws;  /* batch_max entries */
	store_ingest_item *items; /* batch_max entries */
	chat_arena *batch_arena;

	/* counters for Admin.Health */
	atomic_uint_fast64_t stored, dups, rejected, batches, batch_failures,
	    events, produce_errors, fenced;
};

/* Produce ev to chat.fanout with key = channel_id (8 big-endian bytes).
 * Logs and counts a failure to queue it; never blocks for long. */
void store_emit(struct store *s, uint64_t channel_id, const Chat__Event *ev);

/* Emit one Event{channel_id, user_ids=[e->user_id], member=e} per e. */
void store_emit_members(struct store *s, Chat__MemberEvent *const *ev,
                        size_t n);

/* Register the chat.Store handlers on s->rpc. Returns 0 or -1. */
int store_rpc_register(struct store *s);

/* Start the consumer thread (s->consumer must exist). Returns 0 or -1. */
int store_consumer_start(struct store *s, char *err, size_t errlen);

/* The rebalance callback given to chat_consumer_new (opaque = store). */
void store_rebalance_cb(chat_consumer *c, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, void *opaque);

/* Ask the consumer thread to finish its batch and end; wait for it. */
void store_consumer_join(struct store *s);

/* Forget the assignment kept for store_drain. */
void store_positions_clear(struct store *s);

#endif
