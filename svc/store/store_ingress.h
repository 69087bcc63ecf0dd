/* The ingress path without Kafka: decode and validate chat.ingress
 * records, then store a batch of them with its consumer offsets in one
 * transaction. The consumer thread feeds it what rd_kafka_consumer_poll
 * returned; the fuzz target and the tests feed it raw bytes. */
#ifndef STORE_INGRESS_H
#define STORE_INGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "chat_arena.h"
#include "log.pb-c.h"
#include "store_db.h"

#define STORE_INGRESS_MAX_RECORD (64u * 1024) /* bytes of one value */
#define STORE_BODY_MAX 4000                   /* bytes of UTF-8 */
#define STORE_CLIENT_MSG_ID_MAX 64            /* bytes */

/* One record as it came off the log. Pointers are borrowed. */
typedef struct store_ingress_raw {
	const char *topic;
	int32_t partition;
	int64_t offset;
	const void *key; /* NULL when the record has none */
	size_t keylen;
	const void *val;
	size_t len;
	void *opaque; /* the caller's (e.g. the rd_kafka_message_t) */
} store_ingress_raw;

/* Decode one record value into arena and check it: at most 64 KiB, a
 * chat.IngressRecord with channel_id and sender_id non-zero, client_msg_id
 * 1..64 bytes and body 1..4000 bytes, both chat_utf8_valid_text (the
 * edge's own checks on Send, so nothing it acknowledged is refused
 * here), and a key that is either absent or the channel id as 8
 * big-endian bytes. Returns CHAT_OK with *out, or CHAT_INVALID_ARGUMENT
 * with a reason in why. Never reads beyond len; safe on any bytes. */
int store_ingress_decode(chat_arena *arena, const void *key, size_t keylen,
                         const void *val, size_t len,
                         Chat__IngressRecord **out, char *why, size_t whylen);

/* Sort raws in place by (topic, partition, offset): the order records
 * are stored in. */
void store_ingress_sort(store_ingress_raw *raws, size_t n);

/* Store a batch: sort raws in place by (topic, partition, offset), decode
 * and validate each (a bad one becomes REJECTED with its reason), then in
 * ONE transaction store the valid ones (store_db_ingest: membership,
 * dedupe, seq) and, for every partition present, next_offset = its last
 * offset + 1 under log_id. items must hold n entries; items[i] is the
 * outcome of raws[i] after sorting. Decoded records and stored messages
 * live in cx->arena. Returns CHAT_OK once committed, else the database's
 * status (nothing stored, no offset moved). n may be 0. Blocks.
 *
 * The offsets are fenced with the simple rule: each partition's stored
 * next_offset must equal the offset of its first record in the batch, or
 * be absent (else ABORTED). A consumer that knows what it loaded at
 * assignment uses store_ingress_apply_fenced instead. */
int store_ingress_apply(store_db *db, store_ctx *cx, const char *log_id,
                        store_ingress_raw *raws, size_t n,
                        store_ingest_item *items);

/* What a writer believes is stored for a partition (see
 * store_ingress_apply_fenced). */
#define STORE_OFFSET_NONE (-1)    /* no row: it found none stored */
#define STORE_OFFSET_UNKNOWN (-2) /* no belief: the simple rule above */

/* Returns the next offset the writer loaded for (topic, partition) at
 * assignment or last committed, STORE_OFFSET_NONE or
 * STORE_OFFSET_UNKNOWN. */
typedef int64_t (*store_expect_fn)(void *arg, const char *topic,
                                   int32_t partition);

/* store_ingress_apply, with each partition's offset update fenced on what
 * expect(arg, topic, partition) says the writer believes is stored: the
 * batch commits only if the stored row still holds that value (or, for
 * STORE_OFFSET_NONE, still does not exist). Otherwise another writer
 * committed this partition meanwhile: nothing is written and the status
 * is CHAT_ABORTED; re-read the stored offset (store_db_load_offset) and
 * resume from it. expect NULL means the simple rule for every
 * partition. */
int store_ingress_apply_fenced(store_db *db, store_ctx *cx,
                               const char *log_id, store_ingress_raw *raws,
                               size_t n, store_ingest_item *items,
                               store_expect_fn expect, void *arg);

#endif
