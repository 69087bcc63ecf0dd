/* store_ingress_bench: rows per second of the store's ingress path
 * (store_ingress_apply: decode, validate, membership, dedupe, seq, insert,
 * offsets, one transaction per batch) on each database engine, without
 * Kafka.
 *
 *   store_ingress_bench [--rows N] [--batch B] [--channels C]
 *                       [--db URL-or-PATH] [--engine sqlite|pg|both]
 *                       [--pg-fsync]
 *
 * Without --db it measures a fresh SQLite file in /tmp (WAL,
 * synchronous=NORMAL, as the store runs it) and/or a throwaway PostgreSQL
 * 15 started by tests/lib/pg_server (fsync=off there: closer to a server
 * with a battery-backed cache than to a laptop disk; say so when quoting
 * the number; --pg-fsync turns fsync back on). --db measures that
 * database instead (it must have no users named bench*). Records are
 * packed before the clock starts; each batch holds B records spread over C
 * channels of 8 partitions, 100-byte bodies, 4 senders. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_log.h"
#include "chat_status.h"
#include "chat_util.h"
#include "log.pb-c.h"
#include "pg_server.h"
#include "store_db.h"
#include "store_ingress.h"

#define NSENDERS 4
#define NPARTS 8

struct opts {
	long rows, batch, channels;
	const char *db, *engine;
	int pg_fsync;
};

static int usage(void)
{
	fprintf(stderr,
	        "usage: store_ingress_bench [--rows N] [--batch B] "
	        "[--channels C] [--db URL-or-PATH] "
	        "[--engine sqlite|pg|both] [--pg-fsync]\n");
	return 2;
}

static int parse(int argc, char **argv, struct opts *o)
{
	o->rows = 100000;
	o->batch = 500;
	o->channels = 32;
	o->db = NULL;
	o->engine = "both";
	o->pg_fsync = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--pg-fsync")) {
			o->pg_fsync = 1;
			continue;
		}
		if (!v)
			return -1;
		if (!strcmp(a, "--rows"))
			o->rows = atol(v);
		else if (!strcmp(a, "--batch"))
			o->batch = atol(v);
		else if (!strcmp(a, "--channels"))
			o->channels = atol(v);
		else if (!strcmp(a, "--db"))
			o->db = v;
		else if (!strcmp(a, "--engine"))
			o->engine = v;
		else
			return -1;
		i++;
	}
	if (o->rows < 1 || o->batch < 1 || o->batch > 100000 ||
	    o->channels < 1 || o->channels > 100000)
		return -1;
	if (strcmp(o->engine, "sqlite") && strcmp(o->engine, "pg") &&
	    strcmp(o->engine, "both"))
		return -1;
	return 0;
}

/* Users, channels and the packed records; then the timed batches. */
static int run(const char *label, const char *url, const struct opts *o)
{
	chat_arena *setup = chat_arena_new(), *a = chat_arena_new();
	store_ingress_raw *raws = calloc((size_t)o->rows, sizeof *raws);
	store_ingest_item *items = calloc((size_t)o->batch, sizeof *items);
	store_ingress_raw *work = calloc((size_t)o->batch, sizeof *work);
	uint64_t senders[NSENDERS], *chans = NULL;
	int64_t next_off[NPARTS] = {0};
	char err[512], body[101];
	store_db *db = NULL;
	store_ctx cx;
	int64_t t0, t1;
	long stored = 0;
	int ret = -1;

	memset(&cx, 0, sizeof cx);
	cx.arena = setup;
	chans = calloc((size_t)o->channels, sizeof *chans);
	if (!setup || !a || !raws || !items || !work || !chans) {
		fprintf(stderr, "out of memory\n");
		goto out;
	}
	if (store_db_open(url, &db, err, sizeof err)) {
		fprintf(stderr, "%s: %s\n", label, err);
		goto out;
	}
	for (int i = 0; i < NSENDERS; i++) {
		char name[32];
		Chat__User *u = NULL;
		snprintf(name, sizeof name, "bench%d", i);
		if (store_db_create_user(db, &cx, name, "x", &u) != CHAT_OK) {
			fprintf(stderr, "%s: create user: %s\n", label, cx.why);
			goto out;
		}
		senders[i] = u->id;
	}
	for (long c = 0; c < o->channels; c++) {
		char *members[NSENDERS - 1];
		Chat__ChannelInfo *ci = NULL;
		Chat__MemberEvent **ev;
		size_t nev;
		for (int i = 1; i < NSENDERS; i++)
			members[i - 1] = chat_arena_printf(setup, "bench%d", i);
		if (store_db_create_channel(db, &cx, senders[0], "bench",
		                            members, NSENDERS - 1, &ci, &ev,
		                            &nev) != CHAT_OK) {
			fprintf(stderr, "%s: create channel: %s\n", label,
			        cx.why);
			goto out;
		}
		chans[c] = ci->id;
	}
	memset(body, 'x', 100);
	body[100] = '\0';
	for (long i = 0; i < o->rows; i++) {
		Chat__IngressRecord r = CHAT__INGRESS_RECORD__INIT;
		long c = i % o->channels;
		int part = (int)(c % NPARTS);
		uint8_t *key = chat_arena_alloc(setup, 8);
		size_t len = 0;
		r.channel_id = chans[c];
		r.sender_id = senders[i % NSENDERS];
		r.client_msg_id = chat_arena_printf(setup, "b%ld", i);
		r.body = body;
		r.sent_at_ms = chat_now_ms();
		chat_put_be64(key, chans[c]);
		raws[i].topic = "chat.ingress";
		raws[i].partition = part;
		raws[i].offset = next_off[part]++;
		raws[i].key = key;
		raws[i].keylen = 8;
		raws[i].val = chat_arena_pack(setup, &r.base, &len);
		raws[i].len = len;
		if (!raws[i].val) {
			fprintf(stderr, "out of memory\n");
			goto out;
		}
	}

	t0 = chat_mono_us();
	for (long i = 0; i < o->rows; i += o->batch) {
		size_t n = (size_t)(o->rows - i < o->batch ? o->rows - i
		                                            : o->batch);
		int st;
		/* apply sorts in place: hand it a copy */
		memcpy(work, raws + i, n * sizeof *work);
		chat_arena_reset(a);
		cx.arena = a;
		st = store_ingress_apply(db, &cx, "bench", work, n, items);
		if (st != CHAT_OK) {
			fprintf(stderr, "%s: batch at %ld: %s (%s)\n", label, i,
			        chat_strerror(st), cx.why);
			goto out;
		}
		for (size_t k = 0; k < n; k++)
			stored += items[k].outcome == STORE_INGEST_NEW;
	}
	t1 = chat_mono_us();
	if (stored != o->rows) {
		fprintf(stderr, "%s: %ld of %ld rows stored\n", label, stored,
		        o->rows);
		goto out;
	}
	printf("engine=%s rows=%ld batch=%ld channels=%ld seconds=%.3f "
	       "rows_per_s=%.0f\n",
	       label, o->rows, o->batch, o->channels,
	       (double)(t1 - t0) / 1e6,
	       (double)o->rows * 1e6 / (double)(t1 - t0));
	fflush(stdout);
	ret = 0;
out:
	store_db_close(db);
	chat_arena_free(setup);
	chat_arena_free(a);
	free(raws);
	free(items);
	free(work);
	free(chans);
	return ret;
}

static int run_sqlite(const struct opts *o)
{
	char dir[] = "/tmp/store_ingress_bench.XXXXXX", path[96], p[128];
	int ret;
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(path, sizeof path, "%s/store.db", dir);
	ret = run("sqlite", path, o);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
	unlink(path);
	rmdir(dir);
	return ret;
}

static int run_pg(const struct opts *o)
{
	pg_server pg;
	char err[1024];
	int ret;
	if (pg_server_start(&pg, err, sizeof err)) {
		fprintf(stderr, "postgresql: %s\n", err);
		return -1;
	}
	if (o->pg_fsync &&
	    (pg_server_exec(pg.url, "ALTER SYSTEM SET fsync = on", err,
	                    sizeof err) ||
	     pg_server_exec(pg.url, "SELECT pg_reload_conf()", err,
	                    sizeof err))) {
		fprintf(stderr, "postgresql: %s\n", err);
		pg_server_cleanup(&pg);
		return -1;
	}
	ret = run(o->pg_fsync ? "postgresql(fsync=on)"
	                      : "postgresql(fsync=off)",
	          pg.url, o);
	pg_server_cleanup(&pg);
	return ret;
}

int main(int argc, char **argv)
{
	struct opts o;
	int ret = 0;
	if (parse(argc, argv, &o))
		return usage();
	chat_log_set_level("error");
	if (o.db) {
		const char *label =
		    strncmp(o.db, "postgres", 8) ? "sqlite" : "postgresql";
		return run(label, o.db, &o) ? 1 : 0;
	}
	if (strcmp(o.engine, "pg") && run_sqlite(&o))
		ret = 1;
	if (strcmp(o.engine, "sqlite") && run_pg(&o))
		ret = 1;
	return ret;
}
