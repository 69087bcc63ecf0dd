/* The store's database layer on a real PostgreSQL 15 (a throwaway server
 * from tests/lib/pg_server.h, one fresh database per test): the shared
 * scenarios of store_db_scenarios.c, plus what only a shared server
 * brings: two store instances (two db handles) racing on OpenDm, Join,
 * Leave, CreateUser, MarkRead and ingress into one channel; concurrent
 * schema migration; the server restarted or killed under the store (a
 * call fails with UNAVAILABLE, a later one succeeds). The test FAILS when
 * PostgreSQL is not installed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_log.h"
#include "chat_status.h"
#include "chat_util.h"
#include "pg_server.h"
#include "store_db.h"
#include "store_db_scenarios.h"
#include "store_ingress.h"

static pg_server PG;
static int db_counter;

struct pg_db {
	char name[32];
	char url[256];
};

static int pgdb_create(void **priv)
{
	struct pg_db *d = calloc(1, sizeof *d);
	char err[512];
	if (!d)
		return -1;
	snprintf(d->name, sizeof d->name, "t%d", ++db_counter);
	if (pg_server_create_db(&PG, d->name, d->url, sizeof d->url, err,
	                        sizeof err)) {
		fprintf(stderr, "create db: %s\n", err);
		free(d);
		return -1;
	}
	*priv = d;
	return 0;
}

static int pgdb_open(void *priv, store_db **db)
{
	struct pg_db *d = priv;
	char err[512];
	if (store_db_open(d->url, db, err, sizeof err)) {
		fprintf(stderr, "open %s: %s\n", d->url, err);
		return -1;
	}
	return 0;
}

static void pgdb_destroy(void *priv)
{
	struct pg_db *d = priv;
	char sql[96], err[512];
	if (!d)
		return;
	if (PG.pid > 0) {
		snprintf(sql, sizeof sql,
		         "DROP DATABASE IF EXISTS %s WITH (FORCE)", d->name);
		if (pg_server_exec(PG.url, sql, err, sizeof err))
			fprintf(stderr, "drop: %s\n", err);
	}
	free(d);
}

static const store_engine pg_engine = {
    .name = "postgresql",
    .create = pgdb_create,
    .open = pgdb_open,
    .destroy = pgdb_destroy,
};

/* ---- concurrency: two store instances, several threads each ---- */

#define NTHREADS 12 /* more than one handle's pool (8) */

enum race_op {
	R_OPEN_DM,
	R_JOIN,
	R_LEAVE,
	R_CREATE_USER,
	R_MARK_READ,
	R_CREATE_CHANNEL,
	R_HISTORY,
};

struct worker {
	store_db *db;
	pthread_barrier_t *start;
	int op, idx;
	uint64_t user, peer_user, channel;
	const char *peer;
	/* results */
	int status;
	uint64_t got_channel, got_seq;
	size_t n_joined;
	char why[256];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	chat_arena *a = chat_arena_new();
	store_ctx cx;
	Chat__ChannelInfo *ci = NULL;
	Chat__MemberEvent **ev = NULL, *left = NULL;
	Chat__ReadReceipt *rr = NULL;
	Chat__User *u = NULL;
	Chat__HistoryPage *hp = NULL;
	char *members[1] = {(char *)"carol"};
	int moved = 0;

	memset(&cx, 0, sizeof cx);
	cx.arena = a;
	pthread_barrier_wait(w->start);
	switch (w->op) {
	case R_OPEN_DM:
		/* half of them from each side of the pair */
		w->status = w->idx % 2
		                ? store_db_open_dm(w->db, &cx, w->user, w->peer,
		                                   &ci, &ev, &w->n_joined)
		                : store_db_open_dm(w->db, &cx, w->peer_user,
		                                   "alice", &ci, &ev,
		                                   &w->n_joined);
		break;
	case R_JOIN:
		w->status = store_db_join(w->db, &cx, w->user, w->channel, &ci,
		                          &ev, &w->n_joined);
		break;
	case R_LEAVE:
		w->status = store_db_leave(w->db, &cx, w->user, w->channel,
		                           &left);
		w->n_joined = left ? 1 : 0;
		break;
	case R_CREATE_USER:
		w->status = store_db_create_user(w->db, &cx, "zelda", "h", &u);
		break;
	case R_MARK_READ:
		w->status = store_db_mark_read(w->db, &cx, w->user, w->channel,
		                               (uint64_t)w->idx + 1, &rr,
		                               &moved);
		if (rr)
			w->got_seq = rr->seq;
		break;
	case R_CREATE_CHANNEL:
		w->status = store_db_create_channel(
		    w->db, &cx, w->user, "made together", members, 1, &ci, &ev,
		    &w->n_joined);
		break;
	case R_HISTORY:
		w->status = store_db_history(w->db, &cx, w->user, w->channel, 0,
		                             0, 0, &hp);
		break;
	}
	if (ci)
		w->got_channel = ci->id;
	chat_strlcpy(w->why, cx.why, sizeof w->why);
	chat_arena_free(a);
	return NULL;
}

/* Run op on NTHREADS threads, alternating between the two handles, all
 * released at once. */
static void race(store_db *db1, store_db *db2, struct worker *w, int op,
                 uint64_t user, uint64_t peer_user, const char *peer,
                 uint64_t channel)
{
	pthread_t th[NTHREADS];
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].db = i % 2 ? db2 : db1;
		w[i].start = &start;
		w[i].op = op;
		w[i].idx = i;
		w[i].user = user;
		w[i].peer_user = peer_user;
		w[i].peer = peer;
		w[i].channel = channel;
		assert_int_equal(
		    pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
}

static void test_concurrent_rpcs(void **state)
{
	struct fx *f = *state;
	struct worker w[NTHREADS];
	store_db *db2 = NULL;
	size_t joined = 0, ok = 0;
	uint64_t room, chan = 0;
	Chat__UserList *ul = NULL;
	Chat__ChannelInfo *ci = NULL;

	assert_int_equal(pgdb_open(f->priv, &db2), 0);

	/* OpenDm of one pair from both sides, both stores: ONE channel,
	 * its two JOINED events once. Several rounds with new pairs. */
	for (int round = 0; round < 4; round++) {
		char name[16];
		uint64_t peer;
		snprintf(name, sizeof name, "peer%d", round);
		peer = fx_user(f, name);
		race(f->db, db2, w, R_OPEN_DM, f->alice, peer, name, 0);
		joined = 0;
		for (int i = 0; i < NTHREADS; i++) {
			if (w[i].status != CHAT_OK)
				fail_msg("OpenDm %d: %s", w[i].status,
				         w[i].why);
			if (i == 0)
				chan = w[i].got_channel;
			assert_int_equal(w[i].got_channel, chan);
			joined += w[i].n_joined;
		}
		assert_int_equal(joined, 2);
		assert_int_equal(
		    store_db_members(f->db, &f->cx, f->alice, chan, &ul),
		    CHAT_OK);
		assert_int_equal(ul->n_users, 2);
	}

	/* Join of one user from everywhere: one JOINED event. */
	room = fx_group(f, f->alice, "room", NULL, 0);
	race(f->db, db2, w, R_JOIN, f->bob, 0, NULL, room);
	joined = 0;
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(w[i].status, CHAT_OK);
		joined += w[i].n_joined;
	}
	assert_int_equal(joined, 1);
	assert_int_equal(fx_info(f, f->alice, room)->member_count, 2);

	/* MarkRead to 1..12 at once: the position ends at the highest and
	 * every receipt is at least its own target. */
	{
		store_ingress_raw raws[NTHREADS];
		store_ingest_item items[NTHREADS];
		for (int i = 0; i < NTHREADS; i++) {
			char cmid[8];
			snprintf(cmid, sizeof cmid, "m%d", i);
			raws[i] = fx_rec(f, 0, i, room, f->alice,
			                 chat_arena_strdup(f->a, cmid), "x");
		}
		fx_apply(f, "log", raws, NTHREADS, items);
	}
	race(f->db, db2, w, R_MARK_READ, f->bob, 0, NULL, room);
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(w[i].status, CHAT_OK);
		assert_true(w[i].got_seq >= (uint64_t)i + 1);
	}
	assert_int_equal(fx_info(f, f->bob, room)->read_seq, NTHREADS);

	/* History from more threads than a pool holds: all answered. */
	race(f->db, db2, w, R_HISTORY, f->bob, 0, NULL, room);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(w[i].status, CHAT_OK);

	/* Leave from everywhere: one succeeds, the others "not a member". */
	race(f->db, db2, w, R_LEAVE, f->bob, 0, NULL, room);
	ok = 0;
	for (int i = 0; i < NTHREADS; i++) {
		if (w[i].status == CHAT_OK) {
			ok++;
			continue;
		}
		assert_int_equal(w[i].status, CHAT_FAILED_PRECONDITION);
		assert_string_equal(w[i].why, "not a member");
	}
	assert_int_equal(ok, 1);
	assert_int_equal(fx_info(f, f->alice, room)->member_count, 1);

	/* CreateUser of one name everywhere: one user. */
	race(f->db, db2, w, R_CREATE_USER, 0, 0, NULL, 0);
	ok = 0;
	for (int i = 0; i < NTHREADS; i++) {
		if (w[i].status == CHAT_OK) {
			ok++;
			continue;
		}
		assert_int_equal(w[i].status, CHAT_ALREADY_EXISTS);
		assert_string_equal(w[i].why, "name taken");
	}
	assert_int_equal(ok, 1);

	/* CreateChannel with members, concurrently: each its own channel,
	 * each complete. */
	race(f->db, db2, w, R_CREATE_CHANNEL, f->dave, 0, NULL, 0);
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(w[i].status, CHAT_OK);
		assert_int_equal(w[i].n_joined, 2);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(w[i].got_channel,
			                     w[j].got_channel);
		assert_int_equal(store_db_get_channel(f->db, &f->cx, f->carol,
		                                      w[i].got_channel, &ci),
		                 CHAT_OK);
		assert_int_equal(ci->member_count, 2);
	}
	store_db_close(db2);
}

/* Two writers appending to ONE channel from different partitions at once
 * (records without the channel key could do that): the channel row lock
 * keeps its seqs contiguous and unique. */
struct appender {
	store_db *db;
	uint64_t ch, sender;
	int part;
	pthread_barrier_t *start;
	int failures;
};

static void *append_main(void *arg)
{
	struct appender *p = arg;
	chat_arena *a = chat_arena_new();
	pthread_barrier_wait(p->start);
	for (int b = 0; b < 20; b++) {
		store_ingress_raw raws[10];
		store_ingest_item items[10];
		store_ctx cx;
		memset(&cx, 0, sizeof cx);
		chat_arena_reset(a);
		cx.arena = a;
		for (int k = 0; k < 10; k++) {
			Chat__IngressRecord r = CHAT__INGRESS_RECORD__INIT;
			size_t len = 0;
			r.channel_id = p->ch;
			r.sender_id = p->sender;
			r.client_msg_id =
			    chat_arena_printf(a, "p%d-%d", p->part, b * 10 + k);
			r.body = (char *)"both";
			memset(&raws[k], 0, sizeof raws[k]);
			raws[k].topic = "chat.ingress";
			raws[k].partition = p->part;
			raws[k].offset = b * 10 + k;
			raws[k].val = chat_arena_pack(a, &r.base, &len);
			raws[k].len = len;
		}
		if (store_ingress_apply(p->db, &cx, "two", raws, 10, items) !=
		    CHAT_OK) {
			fprintf(stderr, "append: %s\n", cx.why);
			p->failures++;
		}
	}
	chat_arena_free(a);
	return NULL;
}

static void test_concurrent_ingest_one_channel(void **state)
{
	struct fx *f = *state;
	const char *m[] = {"bob"};
	uint64_t ch = fx_group(f, f->alice, "shared", m, 1);
	struct appender p[2];
	pthread_t th[2];
	pthread_barrier_t start;
	store_db *db2 = NULL;
	uint64_t next = 1, anchor = 0;

	assert_int_equal(pgdb_open(f->priv, &db2), 0);
	pthread_barrier_init(&start, NULL, 2);
	for (int i = 0; i < 2; i++) {
		memset(&p[i], 0, sizeof p[i]);
		p[i].db = i ? db2 : f->db;
		p[i].ch = ch;
		p[i].sender = i ? f->bob : f->alice;
		p[i].part = i;
		p[i].start = &start;
		assert_int_equal(
		    pthread_create(&th[i], NULL, append_main, &p[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	store_db_close(db2);
	assert_int_equal(p[0].failures + p[1].failures, 0);
	for (;;) {
		Chat__HistoryPage *hp = NULL;
		assert_int_equal(store_db_history(f->db, &f->cx, f->alice, ch,
		                                  anchor, 1, 500, &hp),
		                 CHAT_OK);
		for (size_t i = 0; i < hp->n_messages; i++)
			assert_int_equal(hp->messages[i]->seq, next++);
		if (!hp->more)
			break;
		anchor = next - 1;
	}
	assert_int_equal(next, 401);
	assert_int_equal(fx_info(f, f->alice, ch)->last_seq, 400);
	/* each sender's read position is its own last message */
	assert_true(fx_info(f, f->alice, ch)->read_seq > 0);
	assert_true(fx_info(f, f->bob, ch)->read_seq > 0);
}

/* ---- schema ---- */

struct opener {
	const char *url;
	pthread_barrier_t *start;
	int rc;
	char err[256];
};

static void *open_main(void *arg)
{
	struct opener *o = arg;
	store_db *db = NULL;
	pthread_barrier_wait(o->start);
	o->rc = store_db_open(o->url, &db, o->err, sizeof o->err);
	store_db_close(db);
	return NULL;
}

static void test_migration(void **state)
{
	struct pg_db *d = NULL;
	struct opener o[4];
	pthread_t th[4];
	pthread_barrier_t start;
	long long v = -1;
	store_db *db = NULL;
	char err[512];
	(void)state;

	/* four stores starting at once on an empty database */
	assert_int_equal(pgdb_create((void **)&d), 0);
	pthread_barrier_init(&start, NULL, 4);
	for (int i = 0; i < 4; i++) {
		o[i].url = d->url;
		o[i].start = &start;
		o[i].rc = -1;
		assert_int_equal(pthread_create(&th[i], NULL, open_main, &o[i]),
		                 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (o[i].rc)
			fail_msg("open %d: %s", i, o[i].err);
	}
	pthread_barrier_destroy(&start);
	assert_int_equal(pg_server_query_i64(d->url,
	                                     "SELECT count(*) FROM "
	                                     "schema_version",
	                                     &v, err, sizeof err),
	                 0);
	assert_int_equal(v, 2); /* each version applied once */
	/* a version 1 database (before departures) with data is migrated */
	assert_int_equal(pg_server_exec(d->url,
	                                "DROP TABLE departures;"
	                                "DELETE FROM schema_version"
	                                " WHERE version = 2;"
	                                "INSERT INTO users(name, pass_hash,"
	                                " created_at_ms) VALUES ('old', 'x', 1)",
	                                err, sizeof err),
	                 0);
	assert_int_equal(store_db_open(d->url, &db, err, sizeof err), 0);
	store_db_close(db);
	db = NULL;
	assert_int_equal(pg_server_query_i64(d->url,
	                                     "SELECT max(version) FROM"
	                                     " schema_version",
	                                     &v, err, sizeof err),
	                 0);
	assert_int_equal(v, 2);
	assert_int_equal(pg_server_query_i64(d->url,
	                                     "SELECT count(*) FROM departures",
	                                     &v, err, sizeof err),
	                 0);
	assert_int_equal(v, 0);
	assert_int_equal(pg_server_query_i64(d->url,
	                                     "SELECT count(*) FROM users"
	                                     " WHERE name = 'old'",
	                                     &v, err, sizeof err),
	                 0);
	assert_int_equal(v, 1);
	/* a database from a newer program is refused */
	assert_int_equal(pg_server_exec(d->url,
	                                "INSERT INTO schema_version VALUES "
	                                "(99, 0)",
	                                err, sizeof err),
	                 0);
	assert_int_equal(store_db_open(d->url, &db, err, sizeof err), -1);
	assert_null(db);
	assert_non_null(strstr(err, "newer than this program"));
	pgdb_destroy(d);

	/* a database that does not exist: a clear error */
	snprintf(err, sizeof err, "postgresql://chat@127.0.0.1:%d/nosuchdb",
	         PG.port);
	{
		char url[128];
		chat_strlcpy(url, err, sizeof url);
		assert_int_equal(store_db_open(url, &db, err, sizeof err), -1);
		assert_non_null(strstr(err, "database unavailable"));
		assert_non_null(strstr(err, "nosuchdb"));
	}
}

/* ---- the server going away under the store ---- */

static void restart_checks(struct fx *f, uint64_t ch, int64_t *off, int kill9)
{
	Chat__UserRecord *u = NULL;
	Chat__HistoryPage *hp = NULL;
	store_ingress_raw raws[2];
	store_ingest_item items[2];
	char err[512], cmid[16];
	int64_t o = -1;

	if (kill9)
		assert_int_equal(pg_server_kill(&PG), 0);
	else
		assert_int_equal(pg_server_stop(&PG, err, sizeof err), 0);

	/* down: every call fails, retryable */
	assert_int_equal(store_db_get_user(f->db, &f->cx, "bob", 0, &u),
	                 CHAT_UNAVAILABLE);
	assert_non_null(strstr(f->cx.why, "database"));
	snprintf(cmid, sizeof cmid, "down%lld", (long long)*off);
	raws[0] = fx_rec(f, 0, *off, ch, f->alice,
	                 chat_arena_strdup(f->a, cmid), "while down");
	assert_int_equal(
	    store_ingress_apply(f->db, &f->cx, "log", raws, 1, items),
	    CHAT_UNAVAILABLE);
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "log",
	                                      "chat.ingress", 0, &o),
	                 CHAT_UNAVAILABLE);

	if (pg_server_restart(&PG, err, sizeof err))
		fail_msg("restart: %s", err);

	/* up again: the next calls reconnect and succeed */
	assert_int_equal(store_db_get_user(f->db, &f->cx, "bob", 0, &u),
	                 CHAT_OK);
	assert_int_equal(u->id, f->bob);
	raws[0] = fx_rec(f, 0, *off, ch, f->alice,
	                 chat_arena_strdup(f->a, cmid), "after the restart");
	fx_apply(f, "log", raws, 1, items);
	assert_int_equal(items[0].outcome, STORE_INGEST_NEW);
	(*off)++;
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "log",
	                                      "chat.ingress", 0, &o),
	                 CHAT_OK);
	assert_int_equal(o, *off);
	/* nothing committed before was lost */
	assert_int_equal(store_db_history(f->db, &f->cx, f->bob, ch, 0, 1, 0,
	                                  &hp),
	                 CHAT_OK);
	assert_int_equal(hp->n_messages, (size_t)*off);
	for (size_t i = 0; i < hp->n_messages; i++)
		assert_int_equal(hp->messages[i]->seq, i + 1);
}

static void test_restart(void **state)
{
	struct fx *f = *state;
	const char *m[] = {"bob"};
	uint64_t ch = fx_group(f, f->alice, "r", m, 1);
	store_ingress_raw raws[3];
	store_ingest_item items[3];
	Chat__ChannelInfo *ci = NULL;
	Chat__MemberEvent **ev = NULL;
	size_t nev = 0;
	int64_t off = 3;

	raws[0] = fx_rec(f, 0, 0, ch, f->alice, "a", "one");
	raws[1] = fx_rec(f, 0, 1, ch, f->bob, "b", "two");
	raws[2] = fx_rec(f, 0, 2, ch, f->alice, "c", "three");
	fx_apply(f, "log", raws, 3, items);
	/* use several pooled connections, so that several are stale */
	for (int i = 0; i < 3; i++)
		assert_int_equal(fx_info(f, f->bob, ch)->last_seq, 3);

	restart_checks(f, ch, &off, 0); /* pg_ctl stop -m fast */
	restart_checks(f, ch, &off, 1); /* kill -9 of every server process */

	/* the pooled connections all work again */
	for (int i = 0; i < 10; i++)
		assert_int_equal(fx_info(f, f->bob, ch)->last_seq,
		                 (uint64_t)off);
	assert_int_equal(store_db_join(f->db, &f->cx, f->carol, ch, &ci, &ev,
	                               &nev),
	                 CHAT_OK);
	assert_int_equal(nev, 1);
}

static int group_setup(void **state)
{
	char err[1024];
	(void)state;
	if (pg_server_start(&PG, err, sizeof err)) {
		fprintf(stderr,
		        "store_pg_db_test: cannot start PostgreSQL: %s\n", err);
		return -1;
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest extra[] = {
	    cmocka_unit_test_setup_teardown(test_concurrent_rpcs, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_ingest_one_channel,
	                                    fx_setup, fx_teardown),
	    cmocka_unit_test(test_migration),
	    cmocka_unit_test_setup_teardown(test_restart, fx_setup,
	                                    fx_teardown),
	};
	int rc;
	chat_log_set_level(getenv("STORE_TEST_LOG") ? "debug" : "off");
	store_scen_engine = &pg_engine;
	if (group_setup(NULL))
		return 1; /* a failure, not a skip: PostgreSQL is required */
	rc = store_scenarios_run("store_db_postgresql", extra,
	                         sizeof extra / sizeof extra[0]);
	pg_server_cleanup(&PG);
	return rc;
}
