/* The store service: users, channels, membership, messages and read
 * positions. It consumes chat.ingress (group "chat-store", offsets kept in
 * its own database, written in the same transaction as the messages),
 * gives each message seq = last_seq(channel) + 1 (a repeated
 * (channel, sender, client_msg_id) keeps its first seq and is not fanned
 * out again), commits a batch in one transaction, then produces the stored
 * messages to chat.fanout as chat.Event. Channel operations are RPCs
 * (service chat.Store in proto/store.proto); after each commit they emit
 * their events (MemberEvent, ReadReceipt) on chat.fanout too. The exact
 * semantics of every RPC (codes, reasons, limits) are the contracts in
 * store_db.h; the ingress record checks are in store_ingress.h. */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>

typedef struct store_config {
	const char *db_path;         /* the database: a PostgreSQL URI
	                              * (postgres://... or postgresql://...,
	                              * see store_db_open_pg) or a SQLite file
	                              * (WAL; created if missing; "sqlite:PATH"
	                              * is accepted); required */
	const char *kafka_bootstrap; /* brokers for chat.ingress/chat.fanout;
	                              * required */
	const char *log_id;          /* names the log instance; stored offsets
	                              * of another log_id are ignored (a new
	                              * mock cluster starts from offset 0);
	                              * NULL/"" = "kafka" */
	const char *rpc_url;         /* where chat.Store listens; NULL/"" =
	                              * tcp://127.0.0.1:7101 (tcp port 0 picks
	                              * one, logged in event=started) */
	const char *admin_url;       /* a second address where chat.Store also
	                              * listens (tcp:// for admin tools and
	                              * benchmarks next to an inproc rpc_url);
	                              * NULL/"" = none; tcp port 0 picks one
	                              * (see store_admin_port) */
	const char *instance;        /* instance name for logs/health and the
	                              * Kafka client id; NULL/"" = "store" */
	int rpc_threads;             /* 1..256, 0 = default 4 */
	int fetch_wait_ms;           /* chat_consumer_new's fetch wait;
	                              * 0 = 10 ms; 1 for the mock cluster */
	int batch_max;               /* records per transaction, 1..100000,
	                              * 0 = default 500 */
	int test_fail_commits;       /* tests only: the first N ingress
	                              * batches fail as if their commit had
	                              * failed (they are rewound and read
	                              * again); default 0 */
} store_config;

typedef struct store store;

/* Open the database (creating or migrating the schema), start the fan-out
 * producer, the RPC server and the ingress consumer (group "chat-store",
 * topic chat.ingress). Strings in cfg are copied. Blocks while the
 * database opens; does not wait for the consumer's assignment (see
 * store_ready). Returns 0 with *out, or -1 with a reason in err (then
 * nothing is left running). */
int store_start(const store_config *cfg, store **out, char *err,
                size_t errlen);

/* The tcp port admin_url is bound to (0 when none). */
int store_admin_port(store *s);

/* Whether the ingress consumer holds its partition assignment (for tests
 * and start-up readiness). */
int store_ready(store *s);

/* Wait until every chat.ingress partition assigned to this store is
 * stored (committed) up to its high watermark as queried from the broker
 * now, i.e. everything already in the log is in the database, or until
 * timeout_ms passes. For an orderly shutdown: stop the producers first
 * (the edge), then drain, then store_stop. Returns 0 when drained, -1 on
 * timeout or when the consumer holds no assignment. Blocks; thread-safe
 * against the consumer; do not call concurrently with store_stop. */
int store_drain(store *s, int timeout_ms);

/* Stop consuming (finishing the batch in hand) and leave the group, stop
 * the RPC server (so no handler emits any more), flush and free the
 * fan-out producer (up to 10 s), close the database, free. Blocks.
 * Accepts NULL. */
void store_stop(store *s);

#endif
