/* The store's database layer on a real SQLite file: the shared scenarios
 * of store_db_scenarios.c (users, channels, DMs, membership rules, ingress
 * sequencing, dedupe and fencing, history paging, read positions, offsets,
 * data surviving a reopen), plus SQLite's own open errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "chat_log.h"
#include "store_db.h"
#include "store_db_scenarios.h"

struct sq_db {
	char dir[64];
	char path[96];
};

static int sq_create(void **priv)
{
	struct sq_db *d = calloc(1, sizeof *d);
	if (!d)
		return -1;
	snprintf(d->dir, sizeof d->dir, "/tmp/store_db_test.XXXXXX");
	if (!mkdtemp(d->dir)) {
		free(d);
		return -1;
	}
	snprintf(d->path, sizeof d->path, "%s/store.db", d->dir);
	*priv = d;
	return 0;
}

static int sq_open(void *priv, store_db **db)
{
	struct sq_db *d = priv;
	char err[256];
	if (store_db_open(d->path, db, err, sizeof err)) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	return 0;
}

static void sq_destroy(void *priv)
{
	struct sq_db *d = priv;
	char p[128];
	if (!d)
		return;
	snprintf(p, sizeof p, "%s-wal", d->path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", d->path);
	unlink(p);
	unlink(d->path);
	rmdir(d->dir);
	free(d);
}

static const store_engine sqlite_engine = {
    .name = "sqlite",
    .create = sq_create,
    .open = sq_open,
    .destroy = sq_destroy,
};

static void test_open_errors(void **state)
{
	store_db *db = NULL;
	char err[256];
	(void)state;
	assert_int_equal(store_db_open(":memory:", &db, err, sizeof err), -1);
	assert_null(db);
	assert_int_equal(store_db_open("", &db, err, sizeof err), -1);
	assert_int_equal(store_db_open("/nonexistent-dir/x/store.db", &db, err,
	                               sizeof err),
	                 -1);
	assert_non_null(strstr(err, "cannot open"));
	/* a PostgreSQL URL goes to that engine: nothing listens here */
	assert_int_equal(store_db_open("postgres://chat@127.0.0.1:1/x", &db,
	                               err, sizeof err),
	                 -1);
	assert_null(db);
	assert_non_null(strstr(err, "database unavailable"));
}

static void test_url_redact(void **state)
{
	char out[128];
	(void)state;
	store_db_url_redact("postgresql://chat:s3cret@127.0.0.1:5432/chat",
	                    out, sizeof out);
	assert_string_equal(out, "postgresql://chat:***@127.0.0.1:5432/chat");
	store_db_url_redact("postgres://chat@h/db?password=x&sslmode=off", out,
	                    sizeof out);
	assert_string_equal(out,
	                    "postgres://chat@h/db?password=***&sslmode=off");
	store_db_url_redact("postgres://h:5432/db", out, sizeof out);
	assert_string_equal(out, "postgres://h:5432/db");
	store_db_url_redact("/var/lib/chat/store.db", out, sizeof out);
	assert_string_equal(out, "/var/lib/chat/store.db");
	store_db_url_redact("postgres://u:p@h/d", out, 12);
	assert_string_equal(out, "postgres://");
}

/* A version 1 database (before the departures table) holding data is
 * migrated at open, keeping the data; a newer one is refused. */
static void test_migration(void **state)
{
	struct sq_db *d = NULL;
	store_db *db = NULL;
	sqlite3 *raw = NULL;
	sqlite3_stmt *st = NULL;
	char err[256];
	(void)state;

	assert_int_equal(sq_create((void **)&d), 0);
	assert_int_equal(sq_open(d, &db), 0);
	store_db_close(db);
	db = NULL;
	assert_int_equal(sqlite3_open(d->path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw,
	                              "DROP TABLE departures;"
	                              "DELETE FROM schema_version"
	                              " WHERE version = 2;"
	                              "INSERT INTO users(name, pass_hash,"
	                              " created_at_ms) VALUES ('old', 'x', 1)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(raw);

	assert_int_equal(sq_open(d, &db), 0);
	store_db_close(db);
	db = NULL;
	assert_int_equal(sqlite3_open(d->path, &raw), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(raw,
	                       "SELECT (SELECT max(version) FROM schema_version),"
	                       " (SELECT count(*) FROM departures),"
	                       " (SELECT count(*) FROM users WHERE name = 'old')",
	                       -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	assert_int_equal(sqlite3_column_int(st, 1), 0);
	assert_int_equal(sqlite3_column_int(st, 2), 1);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_exec(raw,
	                              "INSERT INTO schema_version"
	                              " VALUES (99, 0)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(raw);
	assert_int_equal(store_db_open(d->path, &db, err, sizeof err), -1);
	assert_null(db);
	assert_non_null(strstr(err, "newer than this program"));
	sq_destroy(d);
}

int main(void)
{
	const struct CMUnitTest extra[] = {
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test(test_url_redact),
	    cmocka_unit_test(test_migration),
	};
	chat_log_set_level(getenv("STORE_TEST_LOG") ? "debug" : "error");
	store_scen_engine = &sqlite_engine;
	return store_scenarios_run("store_db_sqlite", extra,
	                           sizeof extra / sizeof extra[0]);
}
