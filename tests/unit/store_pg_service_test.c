/* Two store instances on one PostgreSQL 15 (a throwaway server from
 * tests/lib/pg_server.h) and librdkafka's mock cluster, in one process and
 * one consumer group, as in the fleet: a few thousand IngressRecords (with
 * retried duplicates) over several channels; one store stopped midway
 * (the survivor takes its partitions over from the offsets in the
 * database); then PostgreSQL stopped while records arrive (the batches
 * fail with UNAVAILABLE and are rewound), and before the store can reach
 * it again (TCP off, the unix socket on) "another store" commits the first
 * of those records of one partition: the store's retried batch is fenced
 * off, it re-seeks to the stored offset and stores the rest. In the end
 * every record is stored exactly once, seqs are contiguous from 1 in every
 * channel, every message the store committed was fanned out, and each
 * retried duplicate once more as its stored first copy.
 * The test FAILS when PostgreSQL is not installed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_kafka.h"
#include "chat_log.h"
#include "chat_rpc.h"
#include "chat_status.h"
#include "chat_util.h"
#include "log.pb-c.h"
#include "pg_server.h"
#include "rpc.pb-c.h"
#include "store.h"
#include "store_db.h"
#include "store_ingress.h"
#include "store.pb-c.h"

#define NCHAN 6
#define NUSERS 4
#define PHASE_A 1000 /* both stores running */
#define PHASE_B 600  /* store 2 stopped after half of them */
#define PHASE_C 400  /* produced while PostgreSQL is down */
#define NDUPS 90     /* records sent twice (same client_msg_id) */
#define TOTAL (PHASE_A + PHASE_B + PHASE_C)
#define MAX_SEQ (TOTAL + 1)
#define MAX_SENDS (TOTAL + NDUPS + 16)
#define FOREIGN 5 /* records committed by "another store" */

/* Where each produced record landed (from the delivery reports). */
struct sent {
	int idx; /* the record number given to produce() */
	int32_t part;
	int64_t off;
};

struct t {
	pg_server pg;
	chat_kafka_mock *mock;
	store *s[2];
	char url[2][64];
	chat_rpc_client *rpc[2];
	chat_producer *prod;
	chat_consumer *fan;
	chat_arena *a;
	char log_id[32];
	uint64_t users[NUSERS];
	uint64_t chans[NCHAN];
	size_t sent[NCHAN]; /* distinct records per channel */
	unsigned char *seen[NCHAN]; /* fan-out count per seq */
	unsigned char *foreign[NCHAN]; /* seqs stored by "another store" */
	size_t n_seen, n_fan_dups, n_foreign;
	struct sent sends[MAX_SENDS];
	size_t n_sends;
	pthread_mutex_t sends_mu;
};

static struct t T;

static int64_t mono_ms(void)
{
	return chat_mono_us() / 1000;
}

static int start_store(int i)
{
	store_config cfg;
	char err[512], inst[16];
	snprintf(inst, sizeof inst, "pg%d", i + 1);
	memset(&cfg, 0, sizeof cfg);
	cfg.db_path = T.pg.url;
	cfg.kafka_bootstrap = chat_kafka_mock_bootstraps(T.mock);
	cfg.log_id = T.log_id;
	cfg.rpc_url = T.url[i];
	cfg.instance = inst;
	cfg.rpc_threads = 4;
	cfg.batch_max = 200;
	if (store_start(&cfg, &T.s[i], err, sizeof err)) {
		fprintf(stderr, "store_start %d: %s\n", i, err);
		return -1;
	}
	return 0;
}

static int call(int i, const char *method, const ProtobufCMessage *in,
                void *out, char *reason)
{
	char r[256];
	return chat_rpc_invoke(T.rpc[i], &chat__store__descriptor, method, in,
	                       T.a, (ProtobufCMessage **)out, 10000,
	                       reason ? reason : r, 256);
}

static uint64_t health(int i, const char *name)
{
	Chat__Empty in = CHAT__EMPTY__INIT;
	Chat__HealthReply *h = NULL;
	char reason[256];
	assert_int_equal(chat_rpc_invoke(T.rpc[i], &chat__admin__descriptor,
	                                 "Health", &in.base, T.a,
	                                 (ProtobufCMessage **)&h, 5000, reason,
	                                 sizeof reason),
	                 CHAT_OK);
	for (size_t k = 0; k < h->n_counters; k++)
		if (!strcmp(h->counters[k]->name, name))
			return (uint64_t)h->counters[k]->value;
	fail_msg("no counter %s", name);
	return 0;
}

static void on_delivery(void *arg, const rd_kafka_message_t *m)
{
	(void)arg;
	if (m->err)
		return;
	pthread_mutex_lock(&T.sends_mu);
	if (T.n_sends < MAX_SENDS) {
		T.sends[T.n_sends].idx = (int)(intptr_t)m->_private - 1;
		T.sends[T.n_sends].part = m->partition;
		T.sends[T.n_sends].off = m->offset;
		T.n_sends++;
	}
	pthread_mutex_unlock(&T.sends_mu);
}

/* Record number idx of produce(): channel idx % NCHAN, a member as the
 * sender, client_msg_id "m<idx>". */
static void record_of(int idx, Chat__IngressRecord *r, char *cmid,
                      size_t cmidlen)
{
	size_t ch = (size_t)idx % NCHAN;
	snprintf(cmid, cmidlen, "m%d", idx);
	r->channel_id = T.chans[ch];
	r->sender_id = T.users[(size_t)(idx / NCHAN) % NUSERS];
	r->sender_name = (char *)"whoever";
	r->client_msg_id = cmid;
	r->body = (char *)"hello from the fleet";
	r->sent_at_ms = chat_now_ms();
}

static void send_rec(int idx)
{
	Chat__IngressRecord r = CHAT__INGRESS_RECORD__INIT;
	uint8_t key[8], buf[256];
	char cmid[32];
	size_t len;
	int rc;
	record_of(idx, &r, cmid, sizeof cmid);
	len = chat__ingress_record__pack(&r, buf);
	chat_put_be64(key, r.channel_id);
	/* the local queue may fill: wait for room */
	while ((rc = chat_producer_send(T.prod, CHAT_TOPIC_INGRESS, key, 8,
	                                buf, len,
	                                (void *)(intptr_t)(idx + 1))) ==
	       RD_KAFKA_RESP_ERR__QUEUE_FULL)
		chat_producer_flush(T.prod, 100);
	assert_int_equal(rc, 0);
}

/* Records number first..first+n-1 (see record_of); every 20th is sent
 * again (a client retry). */
static void produce(int first, int n)
{
	for (int i = first; i < first + n; i++) {
		send_rec(i);
		T.sent[(size_t)i % NCHAN]++;
		if (i % 20 == 7 && i / 20 < NDUPS)
			send_rec(i);
	}
}

static size_t chan_index(uint64_t id)
{
	for (size_t i = 0; i < NCHAN; i++)
		if (T.chans[i] == id)
			return i;
	return NCHAN;
}

/* Read chat.fanout for up to ms, counting every message event. */
static void pump(int ms)
{
	int64_t end = mono_ms() + ms;
	while (mono_ms() < end) {
		chat_rec r, *m = &r;
		Chat__Event *e;
		if (!chat_consumer_poll(T.fan, 50, m))
			continue;
		if (m->err) {
			chat_rec_release(m);
			continue;
		}
		e = chat__event__unpack(NULL, m->len, m->payload);
		assert_non_null(e);
		if (e->kind_case == CHAT__EVENT__KIND_MESSAGE) {
			size_t ch = chan_index(e->message->channel_id);
			uint64_t seq = e->message->seq;
			assert_true(ch < NCHAN);
			assert_true(seq >= 1 && seq < MAX_SEQ);
			if (T.seen[ch][seq]++)
				T.n_fan_dups++;
			else
				T.n_seen++;
		}
		chat__event__free_unpacked(e, NULL);
		chat_rec_release(m);
	}
}

static long long sql_i64(const char *sql)
{
	long long v = -1;
	char err[512];
	if (pg_server_query_i64(T.pg.url, sql, &v, err, sizeof err))
		fail_msg("%s", err);
	return v;
}

static void setup_users_and_channels(void)
{
	Chat__CreateUserReq cu = CHAT__CREATE_USER_REQ__INIT;
	Chat__StoreCreateChannelReq cc = CHAT__STORE_CREATE_CHANNEL_REQ__INIT;
	Chat__ChannelInfo *ci = NULL;
	Chat__User *u = NULL;
	char *members[NUSERS];
	char names[NUSERS][16];

	for (int i = 0; i < NUSERS; i++) {
		snprintf(names[i], sizeof names[i], "user%d", i);
		members[i] = names[i];
		cu.name = names[i];
		cu.pass_hash = (char *)"$argon2id$test";
		/* half through each store */
		assert_int_equal(call(i % 2, "CreateUser", &cu.base, &u, NULL),
		                 CHAT_OK);
		T.users[i] = u->id;
	}
	for (int c = 0; c < NCHAN; c++) {
		char name[16];
		snprintf(name, sizeof name, "room%d", c);
		cc.user_id = T.users[0];
		cc.name = name;
		cc.n_members = NUSERS - 1;
		cc.members = members + 1;
		assert_int_equal(call(c % 2, "CreateChannel", &cc.base, &ci,
		                      NULL),
		                 CHAT_OK);
		assert_int_equal(ci->member_count, NUSERS);
		T.chans[c] = ci->id;
	}
}

/* Wait until the database holds n messages (pumping the fan-out). */
static int wait_db_count(long long n, int ms)
{
	int64_t end = mono_ms() + ms;
	while (sql_i64("SELECT count(*) FROM messages") < n) {
		if (mono_ms() > end)
			return -1;
		pump(100);
	}
	return 0;
}

static int wait_until(int (*cond)(void), int ms)
{
	int64_t end = mono_ms() + ms;
	while (!cond()) {
		if (mono_ms() > end)
			return -1;
		pump(50);
	}
	return 0;
}

static int both_ready(void)
{
	return store_ready(T.s[0]) && store_ready(T.s[1]);
}

static int first_ready(void)
{
	return store_ready(T.s[0]);
}

static int failed_batch(void)
{
	return health(0, "batch_failures") > 0;
}

static void check_database(void)
{
	char sql[256];
	for (size_t c = 0; c < NCHAN; c++) {
		long long n, mx, mn, distinct;
		snprintf(sql, sizeof sql,
		         "SELECT count(*) FROM messages"
		         " WHERE channel_id = %" PRIu64,
		         T.chans[c]);
		n = sql_i64(sql);
		snprintf(sql, sizeof sql,
		         "SELECT coalesce(max(seq), 0) FROM messages"
		         " WHERE channel_id = %" PRIu64,
		         T.chans[c]);
		mx = sql_i64(sql);
		snprintf(sql, sizeof sql,
		         "SELECT coalesce(min(seq), 0) FROM messages"
		         " WHERE channel_id = %" PRIu64,
		         T.chans[c]);
		mn = sql_i64(sql);
		snprintf(sql, sizeof sql,
		         "SELECT count(DISTINCT client_msg_id) FROM messages"
		         " WHERE channel_id = %" PRIu64,
		         T.chans[c]);
		distinct = sql_i64(sql);
		/* exactly once: every record once, no more */
		assert_int_equal(n, (long long)T.sent[c]);
		assert_int_equal(distinct, n);
		/* contiguous: n rows with distinct seqs (primary key) from 1
		 * to n */
		assert_int_equal(mn, 1);
		assert_int_equal(mx, n);
		snprintf(sql, sizeof sql,
		         "SELECT last_seq FROM channels WHERE id = %" PRIu64,
		         T.chans[c]);
		assert_int_equal(sql_i64(sql), n);
	}
	assert_int_equal(sql_i64("SELECT count(*) FROM messages"), TOTAL);
}

/* "Another store" that briefly owned a partition too: through the unix
 * socket (the store's TCP is off), commit the first FOREIGN records of
 * the partition of the first record of phase C, fenced like a store
 * (stored offset == the batch's first offset), and remember the seqs it
 * stored: those are not fanned out by the store under test. */
static void foreign_commit(const char *sock_url)
{
	store_ingress_raw raws[FOREIGN];
	store_ingest_item items[FOREIGN];
	chat_arena *a = chat_arena_new();
	store_ctx cx = {.arena = a};
	store_db *db = NULL;
	int32_t part = -1;
	int64_t first = -1;
	size_t n = 0;
	char err[512];

	if (store_db_open(sock_url, &db, err, sizeof err))
		fail_msg("open %s: %s", sock_url, err);
	pthread_mutex_lock(&T.sends_mu);
	for (size_t k = 0; k < T.n_sends && part < 0; k++)
		if (T.sends[k].idx == PHASE_A + PHASE_B)
			part = T.sends[k].part;
	pthread_mutex_unlock(&T.sends_mu);
	assert_true(part >= 0);
	assert_int_equal(store_db_load_offset(db, &cx, T.log_id,
	                                      CHAT_TOPIC_INGRESS, part, &first),
	                 CHAT_OK);
	pthread_mutex_lock(&T.sends_mu);
	for (int64_t off = first; off < first + FOREIGN; off++)
		for (size_t k = 0; k < T.n_sends; k++) {
			Chat__IngressRecord r = CHAT__INGRESS_RECORD__INIT;
			char *cmid = chat_arena_alloc(a, 32);
			uint8_t *key = chat_arena_alloc(a, 8);
			size_t len = 0;
			if (T.sends[k].part != part || T.sends[k].off != off)
				continue;
			record_of(T.sends[k].idx, &r, cmid, 32);
			chat_put_be64(key, r.channel_id);
			memset(&raws[n], 0, sizeof raws[n]);
			raws[n].topic = CHAT_TOPIC_INGRESS;
			raws[n].partition = part;
			raws[n].offset = off;
			raws[n].key = key;
			raws[n].keylen = 8;
			raws[n].val = chat_arena_pack(a, &r.base, &len);
			raws[n].len = len;
			n++;
		}
	pthread_mutex_unlock(&T.sends_mu);
	assert_int_equal(n, FOREIGN);
	if (store_ingress_apply(db, &cx, T.log_id, raws, n, items) != CHAT_OK)
		fail_msg("foreign commit: %s", cx.why);
	for (size_t i = 0; i < n; i++)
		if (items[i].outcome == STORE_INGEST_NEW) {
			size_t ch = chan_index(items[i].msg->channel_id);
			assert_true(ch < NCHAN);
			T.foreign[ch][items[i].seq] = 1;
			T.n_foreign++;
		}
	store_db_close(db);
	chat_arena_free(a);
}

static void test_two_stores(void **state)
{
	Chat__GetUserReq gu = CHAT__GET_USER_REQ__INIT;
	Chat__UserRecord *ur = NULL;
	char reason[256], err[1024], sock_url[256];
	int64_t end;
	(void)state;

	assert_int_equal(wait_until(both_ready, 60000), 0);
	setup_users_and_channels();

	/* A: both stores share the partitions */
	produce(0, PHASE_A);
	assert_int_equal(chat_producer_flush(T.prod, 20000), 0);

	/* B: store 2 stops in the middle of the stream */
	produce(PHASE_A, PHASE_B / 2);
	store_stop(T.s[1]);
	T.s[1] = NULL;
	produce(PHASE_A + PHASE_B / 2, PHASE_B - PHASE_B / 2);
	assert_int_equal(chat_producer_flush(T.prod, 20000), 0);
	/* the survivor takes store 2's partitions over: everything so far
	 * gets stored (store_ready alone would not tell: it may still hold
	 * its old assignment) */
	if (wait_db_count(PHASE_A + PHASE_B, 60000))
		fail_msg("store 1 did not take over after store 2 stopped");
	assert_int_equal(wait_until(first_ready, 60000), 0);

	/* C: PostgreSQL down while records arrive (and, at its next start,
	 * on the unix socket only) */
	snprintf(sock_url, sizeof sock_url,
	         "postgresql://chat@/chat?host=%s&port=%d", T.pg.sock_dir,
	         T.pg.port);
	if (pg_server_exec(T.pg.url, "ALTER SYSTEM SET listen_addresses = ''",
	                   err, sizeof err) ||
	    pg_server_stop(&T.pg, err, sizeof err))
		fail_msg("stop: %s", err);
	produce(PHASE_A + PHASE_B, PHASE_C);
	assert_int_equal(chat_producer_flush(T.prod, 20000), 0);
	assert_int_equal(wait_until(failed_batch, 20000), 0);
	gu.name = (char *)"user1";
	assert_int_equal(call(0, "GetUser", &gu.base, &ur, reason),
	                 CHAT_UNAVAILABLE);
	if (pg_server_restart(&T.pg, err, sizeof err))
		fail_msg("restart: %s", err);
	/* the store still cannot connect; another one commits first */
	foreign_commit(sock_url);
	assert_int_equal(call(0, "GetUser", &gu.base, &ur, reason),
	                 CHAT_UNAVAILABLE);
	if (pg_server_exec(sock_url, "ALTER SYSTEM RESET listen_addresses",
	                   err, sizeof err) ||
	    pg_server_stop(&T.pg, err, sizeof err) ||
	    pg_server_restart(&T.pg, err, sizeof err))
		fail_msg("restart: %s", err);
	if (wait_db_count(TOTAL, 60000) || store_drain(T.s[0], 60000) != 0)
		fail_msg("store 1 did not catch up after PostgreSQL came back");
	assert_int_equal(call(0, "GetUser", &gu.base, &ur, reason), CHAT_OK);
	assert_int_equal(ur->id, T.users[1]);

	check_database();

	/* the store met the foreign commit, and went on after it */
	assert_true(T.n_foreign > 0);
	assert_true(health(0, "fenced") >= 1);

	/* every message the store committed fanned out; the foreign ones
	 * not by it */
	end = mono_ms() + 60000;
	while (T.n_seen < TOTAL - T.n_foreign && mono_ms() < end)
		pump(200);
	pump(500);
	fprintf(stderr,
	        "# fanned out %zu of %d (%zu stored by another), %zu twice;"
	        " store 1: stored %" PRIu64 " duplicates %" PRIu64
	        " failures %" PRIu64 " fenced %" PRIu64 "\n",
	        T.n_seen, TOTAL, T.n_foreign, T.n_fan_dups,
	        health(0, "stored"),
	        health(0, "duplicates"), health(0, "batch_failures"),
	        health(0, "fenced"));
	assert_int_equal(T.n_seen, TOTAL - T.n_foreign);
	/* each retried duplicate is fanned out again once, as its stored
	 * first copy (same seq): nothing else repeats */
	assert_int_equal(T.n_fan_dups, NDUPS);
	for (size_t c = 0; c < NCHAN; c++)
		for (size_t s = 1; s <= T.sent[c]; s++) {
			if (T.foreign[c][s])
				assert_int_equal(T.seen[c][s], 0);
			else
				assert_in_range(T.seen[c][s], 1, 2);
		}
}

static int setup(void **state)
{
	char err[1024];
	(void)state;
	chat_log_set_level(getenv("STORE_TEST_LOG") ? "debug" : "off");
	if (pg_server_start(&T.pg, err, sizeof err)) {
		fprintf(stderr,
		        "store_pg_service_test: cannot start PostgreSQL: %s\n",
		        err);
		return -1;
	}
	snprintf(T.log_id, sizeof T.log_id, "mock-%d", (int)getpid());
	for (int i = 0; i < 2; i++)
		snprintf(T.url[i], sizeof T.url[i], "inproc://pgstore-%d-%d",
		         (int)getpid(), i);
	pthread_mutex_init(&T.sends_mu, NULL);
	for (int c = 0; c < NCHAN; c++)
		if (!(T.seen[c] = calloc(MAX_SEQ + 1, 1)) ||
		    !(T.foreign[c] = calloc(MAX_SEQ + 1, 1)))
			return -1;
	T.a = chat_arena_new();
	T.mock = chat_kafka_mock_new(1, 8, err, sizeof err);
	if (!T.mock) {
		fprintf(stderr, "mock: %s\n", err);
		return -1;
	}
	T.fan = chat_consumer_new(chat_kafka_mock_bootstraps(T.mock),
	                          "pg-test-fanout", "pg-test-fanout",
	                          CHAT_TOPIC_FANOUT, 0, NULL, NULL, 1, err,
	                          sizeof err);
	T.prod = chat_producer_new(chat_kafka_mock_bootstraps(T.mock),
	                           "pg-test-producer", 5, on_delivery, NULL,
	                           err, sizeof err);
	if (!T.fan || !T.prod) {
		fprintf(stderr, "kafka: %s\n", err);
		return -1;
	}
	if (start_store(0) || start_store(1))
		return -1;
	for (int i = 0; i < 2; i++)
		if (!(T.rpc[i] =
		          chat_rpc_client_new(T.url[i], err, sizeof err)))
			return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		chat_rpc_client_free(T.rpc[i]);
		store_stop(T.s[i]);
	}
	chat_producer_free(T.prod);
	if (T.fan) {
		chat_consumer_free(T.fan);
	}
	chat_kafka_mock_free(T.mock);
	chat_arena_free(T.a);
	for (int c = 0; c < NCHAN; c++) {
		free(T.seen[c]);
		free(T.foreign[c]);
	}
	pg_server_cleanup(&T.pg);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_two_stores),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
