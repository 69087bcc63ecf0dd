/* Fuzz target for the store's ingress path: raw bytes go through the same
 * decode and validation as a record off chat.ingress, and what passes is
 * stored through the real database layer (a SQLite file in /tmp, created
 * once per process with three users and a channel, removed at exit).
 *
 * Input: byte 0 is flags (bit 0: a key follows, bit 1: split the rest in
 * two records at byte 1's position, making a two-record batch), then an
 * 8-byte key when bit 0 is set, then the record value(s). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_log.h"
#include "chat_status.h"
#include "store_db.h"
#include "store_ingress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static store_db *db;
static chat_arena *arena;
static int64_t next_offset;
static char dir[] = "/tmp/fuzz_store_ingress.XXXXXX", path[96];

static void cleanup(void)
{
	char p[128];
	store_db_close(db);
	chat_arena_free(arena);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
	unlink(path);
	rmdir(dir);
}

static int init(void)
{
	char err[256];
	store_ctx cx;
	Chat__User *u;
	Chat__ChannelInfo *ci;
	Chat__MemberEvent **ev;
	size_t nev;
	const char *members[] = {"bob"};

	chat_log_set_level("warn");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof path, "%s/store.db", dir);
	if (store_db_open(path, &db, err, sizeof err)) {
		fprintf(stderr, "fuzz: %s\n", err);
		return -1;
	}
	arena = chat_arena_new();
	memset(&cx, 0, sizeof cx);
	cx.arena = arena;
	if (store_db_create_user(db, &cx, "alice", "h", &u) ||   /* id 1 */
	    store_db_create_user(db, &cx, "bob", "h", &u) ||     /* id 2 */
	    store_db_create_user(db, &cx, "carol", "h", &u) ||   /* id 3 */
	    store_db_create_channel(db, &cx, 1, "fuzz", (char *const *)members,
	                            1, &ci, &ev, &nev)) /* channel 1 */
		return -1;
	chat_arena_reset(arena);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	store_ingress_raw raws[2];
	store_ingest_item items[2];
	store_ctx cx;
	size_t n = 1, pos = 1;
	uint8_t flags;

	if (!db && init())
		abort();
	if (size < 1)
		return 0;
	flags = data[0];
	memset(raws, 0, sizeof raws);
	raws[0].topic = "chat.ingress";
	if (flags & 1) {
		if (size < 9)
			return 0;
		raws[0].key = data + 1;
		raws[0].keylen = 8;
		pos = 9;
	}
	raws[0].val = data + pos;
	raws[0].len = size - pos;
	raws[0].offset = next_offset++;
	if ((flags & 2) && size > pos + 1) {
		size_t cut = 1 + data[pos] % (size - pos - 1);
		raws[0].val = data + pos + 1;
		raws[0].len = cut - 1;
		raws[1] = raws[0];
		raws[1].val = data + pos + cut;
		raws[1].len = size - pos - cut;
		raws[1].offset = next_offset++;
		n = 2;
	}

	memset(&cx, 0, sizeof cx);
	cx.arena = arena;
	if (store_ingress_apply(db, &cx, "fuzz", raws, n, items) != CHAT_OK)
		abort(); /* a healthy database never fails a batch */
	for (size_t i = 0; i < n; i++) {
		const store_ingest_item *it = &items[i];
		if (it->outcome == STORE_INGEST_NEW &&
		    (!it->msg || it->msg->seq != it->seq || it->seq == 0))
			abort();
		if (it->outcome == STORE_INGEST_REJECTED && !it->why[0])
			abort();
	}
	chat_arena_reset(arena);
	return 0;
}
