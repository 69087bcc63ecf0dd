/* The store service: users, channels, membership, messages and read
 * positions. It consumes chat.ingress (group "chat-store", offsets kept in
 * its own database, written in the same transaction as the messages),
 * gives each message seq = last_seq(channel) + 1 (a repeated
 * (channel, sender, client_msg_id) keeps its first seq and is not fanned
 * out again), commits a batch in one transaction, then produces the stored
 * messages to chat.fanout as chat.Event. Channel operations are RPCs
 * (service chat.Store in proto/store.proto); after each commit they emit
 * their events (MemberEvent, ReadReceipt) on chat.fanout too. */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>

typedef struct store_config {
	const char *db_path;         /* SQLite file (WAL); created if missing */
	const char *kafka_bootstrap; /* brokers for chat.ingress/chat.fanout */
	const char *log_id;          /* names the log instance; stored offsets
	                              * of another log_id are ignored (a new
	                              * mock cluster starts from offset 0) */
	const char *rpc_url;         /* where chat.Store listens */
	const char *instance;        /* instance name for logs/health */
	int rpc_threads;             /* default 4 */
	int batch_max;               /* messages per transaction, default 500 */
} store_config;

typedef struct store store;

/* Open the database (creating or migrating the schema), start the RPC
 * server and the ingress consumer. Returns 0, or -1 with a reason. */
int store_start(const store_config *cfg, store **out, char *err,
                size_t errlen);

/* Whether the ingress consumer holds its partition assignment (for tests
 * and start-up readiness). */
int store_ready(store *s);

/* Stop consuming (finishing the batch in hand), flush the fan-out
 * producer, stop the RPC server, close the database. Accepts NULL. */
void store_stop(store *s);

#endif
