/* The store's database scenarios, shared by the engine tests: the same
 * cmocka tests run against SQLite (store_db_test.c) and PostgreSQL
 * (store_pg_db_test.c), each program giving them a way to create, open
 * and destroy a fresh database (a store_engine). Include after cmocka.h. */
#ifndef STORE_DB_SCENARIOS_H
#define STORE_DB_SCENARIOS_H

#include <stddef.h>
#include <stdint.h>

#include "chat_arena.h"
#include "store_db.h"
#include "store_ingress.h"

/* How a test program provides databases. */
typedef struct store_engine {
	const char *name;
	/* A fresh empty database; *priv is the engine's handle on it.
	 * Returns 0 or -1 (printing why). */
	int (*create)(void **priv);
	/* Open (again) the database of priv: store_db_open on its path or
	 * URL. Returns 0 or -1 (printing why). */
	int (*open)(void *priv, store_db **db);
	/* Remove the database and free priv. */
	void (*destroy)(void *priv);
} store_engine;

/* The engine the scenarios use; set by main before running them. */
extern const store_engine *store_scen_engine;

/* The fixture of every scenario: a fresh database with users alice, bob,
 * carol and dave. */
struct fx {
	void *priv; /* the engine's handle */
	store_db *db;
	chat_arena *a;
	store_ctx cx;
	uint64_t alice, bob, carol, dave;
};

int fx_setup(void **state);
int fx_teardown(void **state);

/* Close f->db and open it again. */
int fx_reopen(struct fx *f);

/* A new user (asserts success). */
uint64_t fx_user(struct fx *f, const char *name);

/* A new group channel of `by` with members (asserts success). */
uint64_t fx_group(struct fx *f, uint64_t by, const char *name,
                  const char **members, size_t n);

/* A packed IngressRecord in the arena, as a raw log record (topic
 * chat.ingress, key = channel). */
store_ingress_raw fx_rec(struct fx *f, int32_t part, int64_t off,
                         uint64_t chan, uint64_t sender, const char *cmid,
                         const char *body);

/* fx_rec with the sending edge's time sent_at_ms (fx_rec: 1000 + off). */
store_ingress_raw fx_rec_at(struct fx *f, int32_t part, int64_t off,
                            uint64_t chan, uint64_t sender, const char *cmid,
                            const char *body, int64_t sent_at_ms);

/* store_ingress_apply, asserting CHAT_OK. */
void fx_apply(struct fx *f, const char *log_id, store_ingress_raw *raws,
              size_t n, store_ingest_item *items);

/* The channel as user sees it (asserts success). */
Chat__ChannelInfo *fx_info(struct fx *f, uint64_t user, uint64_t chan);

/* The shared scenarios (each with fx_setup/fx_teardown). */
extern const struct CMUnitTest store_scenarios[];
extern const size_t store_scenarios_n;

/* Run the shared scenarios then extra (n_extra entries) as one group.
 * Returns what cmocka returns (the number of failures). */
int store_scenarios_run(const char *group, const struct CMUnitTest *extra,
                        size_t n_extra);

#endif
