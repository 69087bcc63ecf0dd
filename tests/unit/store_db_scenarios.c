/* The store's database scenarios (see store_db_scenarios.h): users,
 * channels, DMs, membership rules, ingress sequencing and dedupe, history
 * paging, read positions, offsets and their fencing, data surviving a
 * reopen. Each runs on a fresh database of the engine under test. */
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
#include "chat_status.h"
#include "chat_util.h"
#include "store_db.h"
#include "store_db_scenarios.h"
#include "store_ingress.h"

const store_engine *store_scen_engine;

int fx_reopen(struct fx *f)
{
	store_db_close(f->db);
	f->db = NULL;
	return store_scen_engine->open(f->priv, &f->db);
}

uint64_t fx_user(struct fx *f, const char *name)
{
	Chat__User *u = NULL;
	assert_int_equal(store_db_create_user(f->db, &f->cx, name,
	                                      "$argon2id$opaque", &u),
	                 CHAT_OK);
	assert_string_equal(u->name, name);
	assert_true(u->id > 0);
	return u->id;
}

int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->a = chat_arena_new();
	f->cx.arena = f->a;
	if (store_scen_engine->create(&f->priv) ||
	    store_scen_engine->open(f->priv, &f->db))
		return -1;
	f->alice = fx_user(f, "alice");
	f->bob = fx_user(f, "bob");
	f->carol = fx_user(f, "carol");
	f->dave = fx_user(f, "dave");
	*state = f;
	return 0;
}

int fx_teardown(void **state)
{
	struct fx *f = *state;
	if (!f)
		return 0;
	store_db_close(f->db);
	store_scen_engine->destroy(f->priv);
	chat_arena_free(f->a);
	free(f);
	return 0;
}

uint64_t fx_group(struct fx *f, uint64_t by, const char *name,
                  const char **members, size_t n)
{
	Chat__ChannelInfo *ci = NULL;
	Chat__MemberEvent **ev;
	size_t nev;
	assert_int_equal(store_db_create_channel(f->db, &f->cx, by, name,
	                                         (char *const *)members, n,
	                                         &ci, &ev, &nev),
	                 CHAT_OK);
	return ci->id;
}

store_ingress_raw fx_rec(struct fx *f, int32_t part, int64_t off,
                         uint64_t chan, uint64_t sender, const char *cmid,
                         const char *body)
{
	return fx_rec_at(f, part, off, chan, sender, cmid, body, 1000 + off);
}

/* A packed IngressRecord in the arena, as a raw log record. */
store_ingress_raw fx_rec_at(struct fx *f, int32_t part, int64_t off,
                            uint64_t chan, uint64_t sender, const char *cmid,
                            const char *body, int64_t sent_at_ms)
{
	Chat__IngressRecord r = CHAT__INGRESS_RECORD__INIT;
	store_ingress_raw raw;
	uint8_t *key = chat_arena_alloc(f->a, 8);
	size_t len = 0;
	void *val;
	r.channel_id = chan;
	r.sender_id = sender;
	r.sender_name = (char *)"ignored";
	r.client_msg_id = (char *)cmid;
	r.body = (char *)body;
	r.sent_at_ms = sent_at_ms;
	val = chat_arena_pack(f->a, &r.base, &len);
	chat_put_be64(key, chan);
	memset(&raw, 0, sizeof raw);
	raw.topic = "chat.ingress";
	raw.partition = part;
	raw.offset = off;
	raw.key = key;
	raw.keylen = 8;
	raw.val = val;
	raw.len = len;
	return raw;
}

void fx_apply(struct fx *f, const char *log_id, store_ingress_raw *raws,
              size_t n, store_ingest_item *items)
{
	assert_int_equal(
	    store_ingress_apply(f->db, &f->cx, log_id, raws, n, items),
	    CHAT_OK);
}

Chat__ChannelInfo *fx_info(struct fx *f, uint64_t user, uint64_t chan)
{
	Chat__ChannelInfo *ci = NULL;
	assert_int_equal(store_db_get_channel(f->db, &f->cx, user, chan, &ci),
	                 CHAT_OK);
	return ci;
}

static void test_users(void **state)
{
	struct fx *f = *state;
	Chat__User *u;
	Chat__UserRecord *r = NULL;
	char long_name[40];

	assert_int_equal(store_db_create_user(f->db, &f->cx, "alice", "x", &u),
	                 CHAT_ALREADY_EXISTS);
	assert_string_equal(f->cx.why, "name taken");
	assert_int_equal(store_db_create_user(f->db, &f->cx, "", "x", &u),
	                 CHAT_INVALID_ARGUMENT);
	assert_int_equal(store_db_create_user(f->db, &f->cx, "a b", "x", &u),
	                 CHAT_INVALID_ARGUMENT);
	memset(long_name, 'a', 33);
	long_name[33] = '\0';
	assert_int_equal(
	    store_db_create_user(f->db, &f->cx, long_name, "x", &u),
	    CHAT_INVALID_ARGUMENT);
	long_name[32] = '\0';
	assert_int_equal(
	    store_db_create_user(f->db, &f->cx, long_name, "x", &u), CHAT_OK);
	assert_int_equal(store_db_create_user(f->db, &f->cx, "A.b-c_9", "", &u),
	                 CHAT_INVALID_ARGUMENT);
	/* names are compared exactly */
	assert_int_equal(store_db_create_user(f->db, &f->cx, "Alice", "x", &u),
	                 CHAT_OK);

	assert_int_equal(store_db_get_user(f->db, &f->cx, "bob", 0, &r),
	                 CHAT_OK);
	assert_int_equal(r->id, f->bob);
	assert_string_equal(r->pass_hash, "$argon2id$opaque");
	assert_int_equal(store_db_get_user(f->db, &f->cx, "", f->carol, &r),
	                 CHAT_OK);
	assert_string_equal(r->name, "carol");
	assert_int_equal(store_db_get_user(f->db, &f->cx, "nobody", 0, &r),
	                 CHAT_NOT_FOUND);
	assert_int_equal(store_db_get_user(f->db, &f->cx, NULL, 9999, &r),
	                 CHAT_NOT_FOUND);
	assert_int_equal(store_db_get_user(f->db, &f->cx, "", 0, &r),
	                 CHAT_NOT_FOUND);
	assert_int_equal(store_db_get_user(f->db, &f->cx, "bad name!", 0, &r),
	                 CHAT_NOT_FOUND);
}

static void test_create_channel(void **state)
{
	struct fx *f = *state;
	const char *m[] = {"bob", "carol", "bob", "alice"};
	const char *bad[] = {"bob", "zed"};
	const char *many[101];
	Chat__ChannelInfo *ci = NULL;
	Chat__MemberEvent **ev = NULL;
	Chat__ChannelList *l = NULL;
	size_t nev = 0;

	assert_int_equal(store_db_create_channel(f->db, &f->cx, f->alice,
	                                         "général", (char *const *)m,
	                                         4, &ci, &ev, &nev),
	                 CHAT_OK);
	assert_string_equal(ci->name, "général");
	assert_int_equal(ci->kind, CHAT__CHANNEL_KIND__KIND_GROUP);
	assert_int_equal(ci->member_count, 3);
	assert_int_equal(ci->last_seq, 0);
	assert_int_equal(nev, 3);
	assert_int_equal(ev[0]->user_id, f->alice);
	assert_int_equal(ev[1]->user_id, f->bob);
	assert_string_equal(ev[2]->user_name, "carol");
	for (size_t i = 0; i < nev; i++) {
		assert_int_equal(ev[i]->kind, CHAT__MEMBER_EVENT__KIND__JOINED);
		assert_int_equal(ev[i]->by_user_id, f->alice);
		assert_string_equal(ev[i]->by_user_name, "alice");
		assert_int_equal(ev[i]->channel_id, ci->id);
	}
	assert_int_equal(fx_info(f, f->carol, ci->id)->member_count, 3);
	assert_int_equal(store_db_get_channel(f->db, &f->cx, f->dave, ci->id,
	                                      &ci),
	                 CHAT_PERMISSION_DENIED);
	assert_int_equal(store_db_get_channel(f->db, &f->cx, f->dave, 777,
	                                      &ci),
	                 CHAT_NOT_FOUND);

	/* an unknown member: nothing is created */
	assert_int_equal(store_db_create_channel(f->db, &f->cx, f->dave, "x",
	                                         (char *const *)bad, 2, &ci,
	                                         &ev, &nev),
	                 CHAT_NOT_FOUND);
	assert_string_equal(f->cx.why, "no user named zed");
	assert_int_equal(nev, 0);
	assert_int_equal(store_db_list_channels(f->db, &f->cx, f->dave, &l),
	                 CHAT_OK);
	assert_int_equal(l->n_channels, 0);
	assert_int_equal(store_db_list_channels(f->db, &f->cx, f->bob, &l),
	                 CHAT_OK);
	assert_int_equal(l->n_channels, 1);

	/* bad names, too many members */
	assert_int_equal(store_db_create_channel(f->db, &f->cx, f->alice, "",
	                                         NULL, 0, &ci, &ev, &nev),
	                 CHAT_INVALID_ARGUMENT);
	assert_int_equal(store_db_create_channel(f->db, &f->cx, f->alice,
	                                         "a\nb", NULL, 0, &ci, &ev,
	                                         &nev),
	                 CHAT_INVALID_ARGUMENT);
	assert_int_equal(store_db_create_channel(f->db, &f->cx, f->alice,
	                                         "\xc3\x28", NULL, 0, &ci, &ev,
	                                         &nev),
	                 CHAT_INVALID_ARGUMENT);
	assert_int_equal(
	    store_db_create_channel(
	        f->db, &f->cx, f->alice,
	        "01234567890123456789012345678901"
	        "234567890123456789012345678901234",
	        NULL, 0, &ci, &ev, &nev),
	    CHAT_INVALID_ARGUMENT);
	for (int i = 0; i < 101; i++)
		many[i] = "bob";
	assert_int_equal(store_db_create_channel(f->db, &f->cx, f->alice, "big",
	                                         (char *const *)many, 101, &ci,
	                                         &ev, &nev),
	                 CHAT_INVALID_ARGUMENT);
	assert_int_equal(store_db_create_channel(f->db, &f->cx, f->alice, "big",
	                                         (char *const *)many, 100, &ci,
	                                         &ev, &nev),
	                 CHAT_OK);
	assert_int_equal(ci->member_count, 2);
	assert_int_equal(nev, 2);
	/* an unknown creator */
	assert_int_equal(store_db_create_channel(f->db, &f->cx, 4242, "x", NULL,
	                                         0, &ci, &ev, &nev),
	                 CHAT_NOT_FOUND);
}

static void test_dm(void **state)
{
	struct fx *f = *state;
	Chat__ChannelInfo *a = NULL, *b = NULL;
	Chat__MemberEvent **ev = NULL;
	size_t nev = 0;
	uint64_t zoe = fx_user(f, "zoe"), adam = fx_user(f, "adam");

	assert_int_equal(store_db_open_dm(f->db, &f->cx, f->bob, "alice", &a,
	                                  &ev, &nev),
	                 CHAT_OK);
	assert_int_equal(nev, 2);
	assert_int_equal(ev[0]->user_id, f->bob);
	assert_int_equal(ev[1]->user_id, f->alice);
	assert_int_equal(ev[1]->by_user_id, f->bob);
	assert_string_equal(a->name, "alice,bob");
	assert_int_equal(a->kind, CHAT__CHANNEL_KIND__KIND_DM);
	assert_string_equal(a->dm_peer, "alice");
	assert_int_equal(a->dm_peer_id, f->alice);
	assert_int_equal(a->member_count, 2);

	/* the other way round: the same channel, no events */
	assert_int_equal(store_db_open_dm(f->db, &f->cx, f->alice, "bob", &b,
	                                  &ev, &nev),
	                 CHAT_OK);
	assert_int_equal(nev, 0);
	assert_int_equal(b->id, a->id);
	assert_string_equal(b->dm_peer, "bob");
	assert_int_equal(b->dm_peer_id, f->bob);
	assert_int_equal(store_db_open_dm(f->db, &f->cx, f->bob, "alice", &b,
	                                  &ev, &nev),
	                 CHAT_OK);
	assert_int_equal(b->id, a->id);
	assert_int_equal(nev, 0);

	/* another pair is another channel; names sorted */
	assert_int_equal(store_db_open_dm(f->db, &f->cx, zoe, "adam", &b, &ev,
	                                  &nev),
	                 CHAT_OK);
	assert_int_not_equal(b->id, a->id);
	assert_string_equal(b->name, "adam,zoe");
	assert_int_equal(b->dm_peer_id, adam);

	assert_int_equal(store_db_open_dm(f->db, &f->cx, f->bob, "bob", &b, &ev,
	                                  &nev),
	                 CHAT_INVALID_ARGUMENT);
	assert_int_equal(store_db_open_dm(f->db, &f->cx, f->bob, "nobody", &b,
	                                  &ev, &nev),
	                 CHAT_NOT_FOUND);
	assert_int_equal(store_db_open_dm(f->db, &f->cx, f->bob, "", &b, &ev,
	                                  &nev),
	                 CHAT_NOT_FOUND);

	/* nobody joins or leaves a DM */
	assert_int_equal(store_db_join(f->db, &f->cx, f->carol, a->id, &b, &ev,
	                               &nev),
	                 CHAT_PERMISSION_DENIED);
	assert_string_equal(f->cx.why, "cannot join a direct message channel");
	{
		Chat__MemberEvent *left = NULL;
		assert_int_equal(
		    store_db_leave(f->db, &f->cx, f->alice, a->id, &left),
		    CHAT_FAILED_PRECONDITION);
		assert_string_equal(f->cx.why,
		                    "cannot leave a direct message channel");
		assert_null(left);
	}
}

static void test_join_leave(void **state)
{
	struct fx *f = *state;
	uint64_t ch = fx_group(f, f->alice, "room", NULL, 0);
	Chat__ChannelInfo *ci = NULL;
	Chat__MemberEvent **ev = NULL, *left = NULL;
	store_ingress_raw raws[3];
	store_ingest_item items[3];
	size_t nev = 0;

	raws[0] = fx_rec(f, 0, 0, ch, f->alice, "m1", "one");
	raws[1] = fx_rec(f, 0, 1, ch, f->alice, "m2", "two");
	fx_apply(f, "log", raws, 2, items);

	assert_int_equal(store_db_join(f->db, &f->cx, f->bob, 999, &ci, &ev,
	                               &nev),
	                 CHAT_NOT_FOUND);
	assert_int_equal(store_db_join(f->db, &f->cx, f->bob, ch, &ci, &ev,
	                               &nev),
	                 CHAT_OK);
	assert_int_equal(nev, 1);
	assert_int_equal(ev[0]->user_id, f->bob);
	assert_int_equal(ev[0]->by_user_id, f->bob);
	assert_int_equal(ev[0]->kind, CHAT__MEMBER_EVENT__KIND__JOINED);
	assert_int_equal(ci->read_seq, 0);
	assert_int_equal(ci->last_seq, 2);
	assert_int_equal(ci->unread, 2);
	assert_int_equal(ci->member_count, 2);
	/* twice: fine, no event */
	assert_int_equal(store_db_join(f->db, &f->cx, f->bob, ch, &ci, &ev,
	                               &nev),
	                 CHAT_OK);
	assert_int_equal(nev, 0);
	assert_int_equal(ci->member_count, 2);

	assert_int_equal(store_db_leave(f->db, &f->cx, f->carol, ch, &left),
	                 CHAT_FAILED_PRECONDITION);
	assert_string_equal(f->cx.why, "not a member");
	assert_int_equal(store_db_leave(f->db, &f->cx, f->carol, 999, &left),
	                 CHAT_NOT_FOUND);
	assert_int_equal(store_db_leave(f->db, &f->cx, f->bob, ch, &left),
	                 CHAT_OK);
	assert_non_null(left);
	assert_int_equal(left->kind, CHAT__MEMBER_EVENT__KIND__LEFT);
	assert_int_equal(left->user_id, f->bob);
	assert_string_equal(left->user_name, "bob");
	assert_int_equal(store_db_get_channel(f->db, &f->cx, f->bob, ch, &ci),
	                 CHAT_PERMISSION_DENIED);
	assert_int_equal(fx_info(f, f->alice, ch)->member_count, 1);
	/* a left member can no longer post (sent well after leaving) */
	raws[0] = fx_rec_at(f, 0, 2, ch, f->bob, "b1", "after leaving",
	                    chat_now_ms() + STORE_LEAVE_GRACE_MS + 60000);
	fx_apply(f, "log", raws, 1, items);
	assert_int_equal(items[0].outcome, STORE_INGEST_REJECTED);
	assert_non_null(strstr(items[0].why, "not a member"));
}

/* A send acknowledged before its sender left (fleet: the edge answers once
 * the log holds it) reaches the store after the Leave: it is stored, and
 * so is one the edge let through up to STORE_LEAVE_GRACE_MS later (its view
 * of membership trails the store's); later ones are rejected. */
static void test_leave_grace(void **state)
{
	struct fx *f = *state;
	const char *bob[] = {"bob"};
	uint64_t ch = fx_group(f, f->alice, "room", bob, 1);
	const int64_t t = 5000000;
	Chat__MemberEvent *left = NULL, **ev = NULL;
	Chat__ChannelInfo *ci = NULL;
	store_ingress_raw raws[4];
	store_ingest_item items[4];
	size_t nev = 0;

	f->cx.now_ms = t; /* bob leaves at t */
	assert_int_equal(store_db_leave(f->db, &f->cx, f->bob, ch, &left),
	                 CHAT_OK);
	raws[0] = fx_rec_at(f, 0, 0, ch, f->bob, "b1", "before", t - 5);
	raws[1] = fx_rec_at(f, 0, 1, ch, f->bob, "b2", "at the margin",
	                    t + STORE_LEAVE_GRACE_MS);
	raws[2] = fx_rec_at(f, 0, 2, ch, f->bob, "b3", "too late",
	                    t + STORE_LEAVE_GRACE_MS + 1);
	raws[3] = fx_rec_at(f, 0, 3, ch, f->bob, "b1", "before", t - 5);
	fx_apply(f, "log", raws, 4, items);
	assert_int_equal(items[0].outcome, STORE_INGEST_NEW);
	assert_int_equal(items[0].seq, 1);
	assert_non_null(items[0].msg);
	assert_string_equal(items[0].msg->sender_name, "bob");
	assert_int_equal(items[1].outcome, STORE_INGEST_NEW);
	assert_int_equal(items[1].seq, 2);
	assert_int_equal(items[2].outcome, STORE_INGEST_REJECTED);
	assert_int_equal(items[3].outcome, STORE_INGEST_DUP);
	assert_int_equal(items[3].seq, 1);
	/* in a later batch too (the retry of a client) */
	raws[0] = fx_rec_at(f, 0, 4, ch, f->bob, "b2", "at the margin",
	                    t + STORE_LEAVE_GRACE_MS);
	fx_apply(f, "log", raws, 1, items);
	assert_int_equal(items[0].outcome, STORE_INGEST_DUP);
	assert_int_equal(items[0].seq, 2);
	assert_int_equal(fx_info(f, f->alice, ch)->last_seq, 2);
	/* still not a member: no channel for bob, no read position */
	assert_int_equal(store_db_get_channel(f->db, &f->cx, f->bob, ch, &ci),
	                 CHAT_PERMISSION_DENIED);
	/* back in: posts as any member, whenever sent */
	f->cx.now_ms = t + 100000;
	assert_int_equal(store_db_join(f->db, &f->cx, f->bob, ch, &ci, &ev,
	                               &nev),
	                 CHAT_OK);
	raws[0] = fx_rec_at(f, 0, 5, ch, f->bob, "b4", "back",
	                    t + 10 * STORE_LEAVE_GRACE_MS);
	fx_apply(f, "log", raws, 1, items);
	assert_int_equal(items[0].outcome, STORE_INGEST_NEW);
	assert_int_equal(items[0].seq, 3);
	/* a user who never was a member gets nothing of the margin */
	raws[0] = fx_rec_at(f, 0, 6, ch, f->carol, "c1", "never in", t - 5);
	fx_apply(f, "log", raws, 1, items);
	assert_int_equal(items[0].outcome, STORE_INGEST_REJECTED);
}

static void test_sequencing(void **state)
{
	struct fx *f = *state;
	const char *m[] = {"bob"};
	uint64_t c1 = fx_group(f, f->alice, "one", m, 1);
	uint64_t c2 = fx_group(f, f->bob, "two", NULL, 0);
	store_ingress_raw raws[8];
	store_ingest_item items[8];
	uint64_t next1 = 1, next2 = 1;
	char cmid[32];
	int64_t off[2] = {0, 0};

	for (int batch = 0; batch < 4; batch++) {
		size_t n = 0;
		for (int k = 0; k < 6; k++) {
			int two = (k % 3 == 2);
			uint64_t ch = two ? c2 : c1;
			uint64_t who = (!two && k % 2) ? f->alice : f->bob;
			snprintf(cmid, sizeof cmid, "b%d-k%d", batch, k);
			raws[n] = fx_rec(f, two ? 1 : 0, off[two]++, ch, who,
			              chat_arena_strdup(f->a, cmid), "hi");
			n++;
		}
		fx_apply(f, "log", raws, n, items);
		/* items follow the sorted raws: partition 0 first */
		for (size_t i = 0; i < n; i++) {
			Chat__IngressRecord *r = (Chat__IngressRecord *)
			    items[i].rec;
			assert_int_equal(items[i].outcome, STORE_INGEST_NEW);
			assert_non_null(items[i].msg);
			if (r->channel_id == c1)
				assert_int_equal(items[i].seq, next1++);
			else
				assert_int_equal(items[i].seq, next2++);
			assert_int_equal(items[i].msg->seq, items[i].seq);
			assert_string_equal(items[i].msg->sender_name,
			                    r->sender_id == f->bob ? "bob"
			                                           : "alice");
			assert_true(items[i].msg->stored_at_ms > 0);
		}
	}
	assert_int_equal(fx_info(f, f->alice, c1)->last_seq, 16);
	assert_int_equal(fx_info(f, f->bob, c2)->last_seq, 8);
	assert_int_equal(next1, 17);
	assert_int_equal(next2, 9);
	{
		int64_t o = -1;
		assert_int_equal(store_db_load_offset(f->db, &f->cx, "log",
		                                      "chat.ingress", 0, &o),
		                 CHAT_OK);
		assert_int_equal(o, 16);
		assert_int_equal(store_db_load_offset(f->db, &f->cx, "log",
		                                      "chat.ingress", 1, &o),
		                 CHAT_OK);
		assert_int_equal(o, 8);
	}
}

static void test_dedupe(void **state)
{
	struct fx *f = *state;
	const char *m[] = {"bob"};
	uint64_t ch = fx_group(f, f->alice, "d", m, 1);
	store_ingress_raw raws[4];
	store_ingest_item items[4];
	Chat__HistoryPage *p = NULL;

	raws[0] = fx_rec(f, 0, 0, ch, f->alice, "same", "first");
	raws[1] = fx_rec(f, 0, 1, ch, f->alice, "same", "second");
	raws[2] = fx_rec(f, 0, 2, ch, f->bob, "same", "bob's own");
	fx_apply(f, "log", raws, 3, items);
	assert_int_equal(items[0].outcome, STORE_INGEST_NEW);
	assert_int_equal(items[0].seq, 1);
	assert_int_equal(items[1].outcome, STORE_INGEST_DUP);
	assert_int_equal(items[1].seq, 1);
	/* the first copy as stored, to be sent again */
	assert_non_null(items[1].msg);
	assert_int_equal(items[1].msg->seq, 1);
	assert_string_equal(items[1].msg->body, "first");
	/* another sender may use the same id */
	assert_int_equal(items[2].outcome, STORE_INGEST_NEW);
	assert_int_equal(items[2].seq, 2);

	raws[0] = fx_rec(f, 0, 3, ch, f->alice, "same", "third");
	raws[1] = fx_rec(f, 0, 4, ch, f->alice, "new", "fourth");
	fx_apply(f, "log", raws, 2, items);
	assert_int_equal(items[0].outcome, STORE_INGEST_DUP);
	assert_int_equal(items[0].seq, 1);
	assert_non_null(items[0].msg);
	assert_string_equal(items[0].msg->body, "first");
	assert_string_equal(items[0].msg->sender_name, "alice");
	assert_int_equal(items[1].outcome, STORE_INGEST_NEW);
	assert_int_equal(items[1].seq, 3);

	assert_int_equal(store_db_history(f->db, &f->cx, f->bob, ch, 0, 0, 0,
	                                  &p),
	                 CHAT_OK);
	assert_int_equal(p->n_messages, 3);
	assert_string_equal(p->messages[0]->body, "first");
	assert_string_equal(p->messages[0]->client_msg_id, "same");
	assert_string_equal(p->messages[1]->body, "bob's own");
	assert_string_equal(p->messages[2]->body, "fourth");
	assert_int_equal(p->last_seq, 3);
}

static void test_rejected(void **state)
{
	struct fx *f = *state;
	uint64_t ch = fx_group(f, f->alice, "r", NULL, 0);
	store_ingress_raw raws[8];
	store_ingest_item items[8];
	int64_t o = 0;

	raws[0] = fx_rec(f, 2, 10, ch, f->bob, "x", "not a member");
	raws[1] = fx_rec(f, 2, 11, 4242, f->alice, "x", "no such channel");
	raws[2] = fx_rec(f, 2, 12, ch, f->alice, "", "empty id");
	raws[3] = fx_rec(f, 2, 13, ch, f->alice, "y", "");
	raws[4] = fx_rec(f, 2, 14, ch, f->alice, "z", "\x01 control");
	raws[5] = fx_rec(f, 2, 15, ch, f->alice, "ok", "fine");
	raws[6] = fx_rec(f, 2, 16, ch, f->alice, "k", "wrong key");
	raws[6].key = "\0\0\0\0\0\0\0\x63";
	raws[7] = fx_rec(f, 2, 17, ch, f->alice, "g", "garbage");
	raws[7].val = "\xff\xff\xff";
	raws[7].len = 3;
	fx_apply(f, "log", raws, 8, items);
	for (int i = 0; i < 8; i++)
		if (i != 5)
			assert_int_equal(items[i].outcome,
			                 STORE_INGEST_REJECTED);
	assert_non_null(strstr(items[0].why, "not a member"));
	assert_non_null(strstr(items[1].why, "no channel"));
	assert_int_equal(items[5].outcome, STORE_INGEST_NEW);
	assert_int_equal(items[5].seq, 1);
	/* rejected records still move the offset */
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "log",
	                                      "chat.ingress", 2, &o),
	                 CHAT_OK);
	assert_int_equal(o, 18);
	/* the sender's own message counts as read */
	assert_int_equal(fx_info(f, f->alice, ch)->read_seq, 1);
	assert_int_equal(fx_info(f, f->alice, ch)->unread, 0);
}

static void check_page(Chat__HistoryPage *p, uint64_t first, size_t n,
                       int more)
{
	assert_int_equal(p->n_messages, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(p->messages[i]->seq, first + i);
	assert_int_equal(p->more, more);
}

static void test_history(void **state)
{
	struct fx *f = *state;
	const char *m[] = {"bob"};
	uint64_t ch = fx_group(f, f->alice, "h", m, 1);
	store_ingress_raw raws[120];
	store_ingest_item items[120];
	Chat__HistoryPage *p = NULL;
	char cmid[16];

	for (int i = 0; i < 120; i++) {
		snprintf(cmid, sizeof cmid, "c%d", i);
		raws[i] = fx_rec(f, 0, i, ch, i % 2 ? f->bob : f->alice,
		              chat_arena_strdup(f->a, cmid), "msg");
	}
	fx_apply(f, "log", raws, 60, items);
	fx_apply(f, "log", raws + 60, 60, items);

#define HIST(anchor, after, limit)                                             \
	assert_int_equal(store_db_history(f->db, &f->cx, f->bob, ch, anchor,   \
	                                  after, limit, &p),                   \
	                 CHAT_OK)
	HIST(0, 0, 0);
	check_page(p, 71, 50, 1);
	assert_int_equal(p->last_seq, 120);
	assert_int_equal(p->channel_id, ch);
	assert_string_equal(p->messages[0]->sender_name, "alice");
	assert_string_equal(p->messages[1]->sender_name, "bob");
	assert_int_equal(p->messages[0]->channel_id, ch);
	HIST(71, 0, 50);
	check_page(p, 21, 50, 1);
	HIST(21, 0, 50);
	check_page(p, 1, 20, 0);
	HIST(1, 0, 50);
	check_page(p, 1, 0, 0);
	HIST(0, 1, 0);
	check_page(p, 1, 50, 1);
	HIST(50, 1, 50);
	check_page(p, 51, 50, 1);
	HIST(100, 1, 50);
	check_page(p, 101, 20, 0);
	HIST(70, 1, 50);
	check_page(p, 71, 50, 0);
	HIST(120, 1, 10);
	check_page(p, 1, 0, 0);
	HIST(0, 0, 120);
	check_page(p, 1, 120, 0);
	HIST(0, 0, 119);
	check_page(p, 2, 119, 1);
	HIST(0, 0, 100000);
	check_page(p, 1, 120, 0);
	HIST(UINT64_MAX, 0, 5);
	check_page(p, 116, 5, 1);
#undef HIST
	assert_int_equal(store_db_history(f->db, &f->cx, f->carol, ch, 0, 0, 0,
	                                  &p),
	                 CHAT_PERMISSION_DENIED);
	assert_int_equal(store_db_history(f->db, &f->cx, f->bob, 31337, 0, 0,
	                                  0, &p),
	                 CHAT_NOT_FOUND);
}

static void test_history_clamp(void **state)
{
	struct fx *f = *state;
	uint64_t ch = fx_group(f, f->alice, "big", NULL, 0);
	store_ingress_raw *raws = calloc(600, sizeof *raws);
	store_ingest_item *items = calloc(600, sizeof *items);
	Chat__HistoryPage *p = NULL;
	char cmid[16];

	for (int i = 0; i < 600; i++) {
		snprintf(cmid, sizeof cmid, "c%d", i);
		raws[i] = fx_rec(f, 0, i, ch, f->alice,
		              chat_arena_strdup(f->a, cmid), "m");
	}
	fx_apply(f, "log", raws, 600, items);
	assert_int_equal(store_db_history(f->db, &f->cx, f->alice, ch, 0, 1,
	                                  1000, &p),
	                 CHAT_OK);
	check_page(p, 1, 500, 1);
	assert_int_equal(store_db_history(f->db, &f->cx, f->alice, ch, 0, 0,
	                                  501, &p),
	                 CHAT_OK);
	check_page(p, 101, 500, 1);
	free(raws);
	free(items);
}

static void test_mark_read(void **state)
{
	struct fx *f = *state;
	const char *m[] = {"bob"};
	uint64_t ch = fx_group(f, f->alice, "mr", m, 1);
	uint64_t ch2 = fx_group(f, f->bob, "other", NULL, 0);
	store_ingress_raw raws[10];
	store_ingest_item items[10];
	Chat__ReadReceipt *r = NULL;
	Chat__ChannelList *l = NULL;
	char cmid[8];
	int moved = -1;

	for (int i = 0; i < 10; i++) {
		snprintf(cmid, sizeof cmid, "m%d", i);
		raws[i] = fx_rec(f, 0, i, i < 8 ? ch : ch2,
		              i < 8 ? f->alice : f->bob,
		              chat_arena_strdup(f->a, cmid), "x");
	}
	fx_apply(f, "log", raws, 10, items);

	assert_int_equal(store_db_list_channels(f->db, &f->cx, f->bob, &l),
	                 CHAT_OK);
	assert_int_equal(l->n_channels, 2);
	assert_int_equal(l->channels[0]->id, ch);
	assert_int_equal(l->channels[0]->unread, 8);
	assert_int_equal(l->channels[0]->read_seq, 0);
	assert_int_equal(l->channels[0]->last_seq, 8);
	assert_int_equal(l->channels[0]->member_count, 2);
	assert_int_equal(l->channels[1]->id, ch2);
	assert_int_equal(l->channels[1]->unread, 0); /* his own */

	assert_int_equal(store_db_mark_read(f->db, &f->cx, f->bob, ch, 5, &r,
	                                    &moved),
	                 CHAT_OK);
	assert_int_equal(moved, 1);
	assert_int_equal(r->seq, 5);
	assert_int_equal(r->user_id, f->bob);
	assert_string_equal(r->user_name, "bob");
	assert_int_equal(r->channel_id, ch);
	assert_int_equal(fx_info(f, f->bob, ch)->unread, 3);
	/* backwards: unchanged */
	assert_int_equal(store_db_mark_read(f->db, &f->cx, f->bob, ch, 3, &r,
	                                    &moved),
	                 CHAT_OK);
	assert_int_equal(moved, 0);
	assert_int_equal(r->seq, 5);
	assert_int_equal(store_db_mark_read(f->db, &f->cx, f->bob, ch, 5, &r,
	                                    &moved),
	                 CHAT_OK);
	assert_int_equal(moved, 0);
	/* beyond last_seq means last_seq */
	assert_int_equal(store_db_mark_read(f->db, &f->cx, f->bob, ch, 99, &r,
	                                    &moved),
	                 CHAT_OK);
	assert_int_equal(moved, 1);
	assert_int_equal(r->seq, 8);
	assert_int_equal(fx_info(f, f->bob, ch)->unread, 0);
	/* 0 means everything so far */
	raws[0] = fx_rec(f, 0, 10, ch, f->alice, "late", "y");
	fx_apply(f, "log", raws, 1, items);
	assert_int_equal(fx_info(f, f->bob, ch)->unread, 1);
	assert_int_equal(store_db_mark_read(f->db, &f->cx, f->bob, ch, 0, &r,
	                                    &moved),
	                 CHAT_OK);
	assert_int_equal(moved, 1);
	assert_int_equal(r->seq, 9);

	assert_int_equal(store_db_mark_read(f->db, &f->cx, f->carol, ch, 0, &r,
	                                    &moved),
	                 CHAT_PERMISSION_DENIED);
	assert_int_equal(store_db_mark_read(f->db, &f->cx, f->bob, 999, 0, &r,
	                                    &moved),
	                 CHAT_NOT_FOUND);
}

static void test_members_peers(void **state)
{
	struct fx *f = *state;
	const char *m1[] = {"bob", "carol"};
	const char *m2[] = {"bob"};
	uint64_t c1 = fx_group(f, f->alice, "a", m1, 2);
	uint64_t c2 = fx_group(f, f->dave, "b", m2, 1);
	Chat__UserList *ul = NULL;
	Chat__ChannelIds *ids = NULL;

	assert_int_equal(store_db_members(f->db, &f->cx, f->carol, c1, &ul),
	                 CHAT_OK);
	assert_int_equal(ul->n_users, 3);
	assert_int_equal(ul->users[0]->id, f->alice);
	assert_string_equal(ul->users[2]->name, "carol");
	assert_int_equal(store_db_members(f->db, &f->cx, f->dave, c1, &ul),
	                 CHAT_PERMISSION_DENIED);
	assert_int_equal(store_db_members(f->db, &f->cx, f->dave, 999, &ul),
	                 CHAT_NOT_FOUND);

	assert_int_equal(store_db_peers(f->db, &f->cx, f->bob, &ul), CHAT_OK);
	assert_int_equal(ul->n_users, 3); /* alice, carol, dave: once each */
	assert_int_equal(ul->users[0]->id, f->alice);
	assert_int_equal(ul->users[1]->id, f->carol);
	assert_int_equal(ul->users[2]->id, f->dave);
	assert_int_equal(store_db_peers(f->db, &f->cx, f->dave, &ul), CHAT_OK);
	assert_int_equal(ul->n_users, 1);
	assert_string_equal(ul->users[0]->name, "bob");

	assert_int_equal(store_db_user_channels(f->db, &f->cx, f->bob, &ids),
	                 CHAT_OK);
	assert_int_equal(ids->n_ids, 2);
	assert_int_equal(ids->ids[0], c1);
	assert_int_equal(ids->ids[1], c2);
	/* with their sizes (presence skips big channels) */
	assert_int_equal(ids->n_member_counts, 2);
	assert_int_equal(ids->member_counts[0], 3);
	assert_int_equal(ids->member_counts[1], 2);
	assert_int_equal(store_db_user_channels(f->db, &f->cx, 999, &ids),
	                 CHAT_OK);
	assert_int_equal(ids->n_ids, 0);
}

/* The admin listing (chatctl): every channel paged by id with its
 * counts, and any channel's members, with no acting user. */
static void test_admin(void **state)
{
	struct fx *f = *state;
	const char *m1[] = {"bob", "carol"};
	Chat__AdminChannelList *l = NULL;
	Chat__UserList *ul = NULL;
	Chat__ChannelInfo *dm = NULL;
	Chat__MemberEvent **ev, *left = NULL;
	store_ingress_raw raws[3];
	store_ingest_item items[3];
	uint64_t g1, g2, ids[3];
	size_t nev;

	/* nothing yet */
	assert_int_equal(store_db_admin_channels(f->db, &f->cx, 0, 0, &l),
	                 CHAT_OK);
	assert_int_equal(l->n_channels, 0);
	assert_false(l->more);

	g1 = fx_group(f, f->alice, "général", m1, 2);
	assert_int_equal(store_db_open_dm(f->db, &f->cx, f->dave, "alice", &dm,
	                                  &ev, &nev),
	                 CHAT_OK);
	g2 = fx_group(f, f->carol, "quiet", NULL, 0);
	for (int i = 0; i < 3; i++) {
		char *cmid = chat_arena_strdup(f->a, i == 0   ? "a1"
		                                     : i == 1 ? "a2"
		                                              : "a3");
		raws[i] = fx_rec(f, 0, i, g1, i == 1 ? f->bob : f->alice, cmid,
		                 "hello");
	}
	fx_apply(f, "log", raws, 3, items);

	/* one page of everything, ascending, with the counts */
	assert_int_equal(store_db_admin_channels(f->db, &f->cx, 0, 0, &l),
	                 CHAT_OK);
	assert_int_equal(l->n_channels, 3);
	assert_false(l->more);
	assert_int_equal(l->channels[0]->id, g1);
	assert_string_equal(l->channels[0]->name, "général");
	assert_int_equal(l->channels[0]->kind, CHAT__CHANNEL_KIND__KIND_GROUP);
	assert_int_equal(l->channels[0]->last_seq, 3);
	assert_int_equal(l->channels[0]->member_count, 3);
	assert_int_equal(l->channels[1]->id, dm->id);
	assert_string_equal(l->channels[1]->name, "alice,dave");
	assert_int_equal(l->channels[1]->kind, CHAT__CHANNEL_KIND__KIND_DM);
	assert_int_equal(l->channels[1]->last_seq, 0);
	assert_int_equal(l->channels[1]->member_count, 2);
	assert_int_equal(l->channels[2]->id, g2);
	assert_int_equal(l->channels[2]->member_count, 1);
	for (int i = 0; i < 3; i++)
		ids[i] = l->channels[i]->id;
	assert_true(ids[0] < ids[1] && ids[1] < ids[2]);

	/* paged one at a time: more until the last */
	assert_int_equal(store_db_admin_channels(f->db, &f->cx, 0, 1, &l),
	                 CHAT_OK);
	assert_int_equal(l->n_channels, 1);
	assert_int_equal(l->channels[0]->id, ids[0]);
	assert_true(l->more);
	assert_int_equal(
	    store_db_admin_channels(f->db, &f->cx, ids[0], 2, &l), CHAT_OK);
	assert_int_equal(l->n_channels, 2);
	assert_int_equal(l->channels[0]->id, ids[1]);
	assert_int_equal(l->channels[1]->id, ids[2]);
	assert_false(l->more); /* exactly the rest: no more */
	assert_int_equal(
	    store_db_admin_channels(f->db, &f->cx, ids[1], 1, &l), CHAT_OK);
	assert_int_equal(l->n_channels, 1);
	assert_false(l->more);
	assert_int_equal(
	    store_db_admin_channels(f->db, &f->cx, ids[2], 0, &l), CHAT_OK);
	assert_int_equal(l->n_channels, 0);
	assert_false(l->more);
	/* over the maximum is clamped, not refused; huge ids are past all */
	assert_int_equal(store_db_admin_channels(f->db, &f->cx, 0, 1u << 31,
	                                         &l),
	                 CHAT_OK);
	assert_int_equal(l->n_channels, 3);
	assert_int_equal(
	    store_db_admin_channels(f->db, &f->cx, UINT64_MAX, 10, &l),
	    CHAT_OK);
	assert_int_equal(l->n_channels, 0);

	/* members of any channel, by id, whoever asks */
	assert_int_equal(store_db_admin_members(f->db, &f->cx, g1, &ul),
	                 CHAT_OK);
	assert_int_equal(ul->n_users, 3);
	assert_int_equal(ul->users[0]->id, f->alice);
	assert_string_equal(ul->users[0]->name, "alice");
	assert_int_equal(ul->users[1]->id, f->bob);
	assert_int_equal(ul->users[2]->id, f->carol);
	assert_true(ul->users[2]->created_at_ms > 0);
	assert_int_equal(store_db_admin_members(f->db, &f->cx, dm->id, &ul),
	                 CHAT_OK);
	assert_int_equal(ul->n_users, 2);
	assert_int_equal(ul->users[0]->id, f->alice);
	assert_int_equal(ul->users[1]->id, f->dave);
	assert_int_equal(store_db_leave(f->db, &f->cx, f->carol, g2, &left),
	                 CHAT_OK);
	assert_int_equal(store_db_admin_members(f->db, &f->cx, g2, &ul),
	                 CHAT_OK);
	assert_int_equal(ul->n_users, 0);
	assert_int_equal(store_db_admin_channels(f->db, &f->cx, ids[1], 0, &l),
	                 CHAT_OK);
	assert_int_equal(l->channels[0]->member_count, 0);

	assert_int_equal(store_db_admin_members(f->db, &f->cx, 999999, &ul),
	                 CHAT_NOT_FOUND);
	assert_string_equal(f->cx.why, "no channel 999999");
	assert_int_equal(store_db_admin_members(f->db, &f->cx, 0, &ul),
	                 CHAT_NOT_FOUND);
	assert_int_equal(
	    store_db_admin_members(f->db, &f->cx, UINT64_MAX, &ul),
	    CHAT_NOT_FOUND);
}

static void test_offsets(void **state)
{
	struct fx *f = *state;
	uint64_t ch = fx_group(f, f->alice, "o", NULL, 0);
	store_ingress_raw raws[2];
	store_ingest_item items[2];
	int64_t o = -1;

	assert_int_equal(store_db_load_offset(f->db, &f->cx, "k1",
	                                      "chat.ingress", 0, &o),
	                 CHAT_NOT_FOUND);
	raws[0] = fx_rec(f, 0, 41, ch, f->alice, "a", "x");
	fx_apply(f, "k1", raws, 1, items);
	raws[0] = fx_rec(f, 0, 6, ch, f->alice, "b", "y");
	raws[1] = fx_rec(f, 3, 2, ch, f->alice, "c", "z");
	fx_apply(f, "k2", raws, 2, items);
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "k1",
	                                      "chat.ingress", 0, &o),
	                 CHAT_OK);
	assert_int_equal(o, 42);
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "k2",
	                                      "chat.ingress", 0, &o),
	                 CHAT_OK);
	assert_int_equal(o, 7);
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "k2",
	                                      "chat.ingress", 3, &o),
	                 CHAT_OK);
	assert_int_equal(o, 3);
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "k1",
	                                      "chat.ingress", 3, &o),
	                 CHAT_NOT_FOUND);
	/* an empty batch changes nothing and succeeds */
	assert_int_equal(
	    store_ingress_apply(f->db, &f->cx, "k1", raws, 0, items), CHAT_OK);
}

static void test_reopen(void **state)
{
	struct fx *f = *state;
	const char *m[] = {"bob"};
	uint64_t ch = fx_group(f, f->alice, "keep", m, 1);
	store_ingress_raw raws[3];
	store_ingest_item items[3];
	Chat__HistoryPage *p = NULL;
	Chat__UserRecord *u = NULL;
	Chat__ReadReceipt *r = NULL;
	int64_t o = 0;
	int moved;

	raws[0] = fx_rec(f, 1, 0, ch, f->alice, "a", "kept 1");
	raws[1] = fx_rec(f, 1, 1, ch, f->bob, "b", "kept 2");
	fx_apply(f, "log", raws, 2, items);
	assert_int_equal(store_db_mark_read(f->db, &f->cx, f->bob, ch, 0, &r,
	                                    &moved),
	                 CHAT_OK);

	assert_int_equal(fx_reopen(f), 0);

	assert_int_equal(store_db_get_user(f->db, &f->cx, "carol", 0, &u),
	                 CHAT_OK);
	assert_int_equal(u->id, f->carol);
	assert_int_equal(store_db_history(f->db, &f->cx, f->bob, ch, 0, 0, 0,
	                                  &p),
	                 CHAT_OK);
	check_page(p, 1, 2, 0);
	assert_string_equal(p->messages[1]->body, "kept 2");
	assert_int_equal(fx_info(f, f->bob, ch)->read_seq, 2);
	assert_int_equal(fx_info(f, f->alice, ch)->read_seq, 1);
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "log",
	                                      "chat.ingress", 1, &o),
	                 CHAT_OK);
	assert_int_equal(o, 2);
	/* sequencing continues; dedupe remembers across the reopen */
	raws[0] = fx_rec(f, 1, 2, ch, f->alice, "a", "again");
	raws[1] = fx_rec(f, 1, 3, ch, f->alice, "c", "kept 3");
	fx_apply(f, "log", raws, 2, items);
	assert_int_equal(items[0].outcome, STORE_INGEST_DUP);
	assert_int_equal(items[1].seq, 3);
	/* a new user gets a fresh id */
	assert_true(fx_user(f, "erin") > f->dave);
}

/* An expectation callback returning a fixed belief for every partition. */
static int64_t expect_fixed(void *arg, const char *topic, int32_t part)
{
	(void)topic;
	(void)part;
	return *(const int64_t *)arg;
}

static size_t history_count(struct fx *f, uint64_t user, uint64_t ch)
{
	Chat__HistoryPage *p = NULL;
	assert_int_equal(store_db_history(f->db, &f->cx, user, ch, 0, 1, 500,
	                                  &p),
	                 CHAT_OK);
	return p->n_messages;
}

static void test_fence(void **state)
{
	struct fx *f = *state;
	uint64_t ch = fx_group(f, f->alice, "fence", NULL, 0);
	store_ingress_raw raws[4];
	store_ingest_item items[4];
	int64_t o = -1, want;

	raws[0] = fx_rec(f, 0, 0, ch, f->alice, "a0", "x");
	raws[1] = fx_rec(f, 0, 1, ch, f->alice, "a1", "x");
	raws[2] = fx_rec(f, 0, 2, ch, f->alice, "a2", "x");
	fx_apply(f, "log", raws, 3, items); /* no row yet: accepted */
	/* the same offsets again (another writer's copy): fenced off, and
	 * nothing of the batch is written */
	raws[0] = fx_rec(f, 0, 0, ch, f->alice, "b0", "x");
	raws[1] = fx_rec(f, 0, 1, ch, f->alice, "b1", "x");
	assert_int_equal(
	    store_ingress_apply(f->db, &f->cx, "log", raws, 2, items),
	    CHAT_ABORTED);
	assert_non_null(strstr(f->cx.why, "moved"));
	assert_int_equal(history_count(f, f->alice, ch), 3);
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "log",
	                                      "chat.ingress", 0, &o),
	                 CHAT_OK);
	assert_int_equal(o, 3);
	/* a batch over two partitions, one of them stale: all or nothing */
	raws[0] = fx_rec(f, 0, 1, ch, f->alice, "c0", "x");
	raws[1] = fx_rec(f, 5, 0, ch, f->alice, "c1", "x");
	assert_int_equal(
	    store_ingress_apply(f->db, &f->cx, "log", raws, 2, items),
	    CHAT_ABORTED);
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "log",
	                                      "chat.ingress", 5, &o),
	                 CHAT_NOT_FOUND);
	assert_int_equal(history_count(f, f->alice, ch), 3);
	/* a writer believing nothing is stored, or something stale: fenced;
	 * the right belief: committed */
	raws[0] = fx_rec(f, 0, 3, ch, f->alice, "d0", "x");
	want = STORE_OFFSET_NONE;
	assert_int_equal(store_ingress_apply_fenced(f->db, &f->cx, "log",
	                                            raws, 1, items,
	                                            expect_fixed, &want),
	                 CHAT_ABORTED);
	want = 2;
	assert_int_equal(store_ingress_apply_fenced(f->db, &f->cx, "log",
	                                            raws, 1, items,
	                                            expect_fixed, &want),
	                 CHAT_ABORTED);
	want = 3;
	assert_int_equal(store_ingress_apply_fenced(f->db, &f->cx, "log",
	                                            raws, 1, items,
	                                            expect_fixed, &want),
	                 CHAT_OK);
	assert_int_equal(items[0].outcome, STORE_INGEST_NEW);
	assert_int_equal(items[0].seq, 4);
	/* the belief is what counts, not the batch's first offset (a gap
	 * in the log, e.g. after retention): stored 4, batch from 9 */
	raws[0] = fx_rec(f, 0, 9, ch, f->alice, "e0", "x");
	want = 4;
	assert_int_equal(store_ingress_apply_fenced(f->db, &f->cx, "log",
	                                            raws, 1, items,
	                                            expect_fixed, &want),
	                 CHAT_OK);
	assert_int_equal(store_db_load_offset(f->db, &f->cx, "log",
	                                      "chat.ingress", 0, &o),
	                 CHAT_OK);
	assert_int_equal(o, 10);
	/* another log_id is another row */
	want = STORE_OFFSET_NONE;
	assert_int_equal(store_ingress_apply_fenced(f->db, &f->cx, "log2",
	                                            raws, 1, items,
	                                            expect_fixed, &want),
	                 CHAT_OK);
	assert_int_equal(items[0].outcome, STORE_INGEST_DUP);
}

/* Two writers (two handles on one database, as two store instances
 * that both believe they own partition 0) race: each loads the stored
 * offset, reads K records from there and commits them fenced on what it
 * loaded. Every offset must end up stored exactly once. */
#define RACE_TARGET 240
#define RACE_K 6

struct racer {
	store_db *db;
	uint64_t ch, sender;
	int id;
	pthread_barrier_t *start;
	int commits, fenced, errors;
};

static void *race_main(void *arg)
{
	struct racer *r = arg;
	chat_arena *a = chat_arena_new();
	store_ctx cx;
	pthread_barrier_wait(r->start);
	for (int round = 0; round < 10000; round++) {
		store_ingress_raw raws[RACE_K];
		store_ingest_item items[RACE_K];
		int64_t stored = 0, want;
		int st;
		chat_arena_reset(a);
		memset(&cx, 0, sizeof cx);
		cx.arena = a;
		st = store_db_load_offset(r->db, &cx, "race", "chat.ingress", 0,
		                          &stored);
		if (st == CHAT_NOT_FOUND) {
			stored = 0;
			want = STORE_OFFSET_NONE;
		} else if (st == CHAT_OK) {
			want = stored;
		} else {
			r->errors++;
			continue;
		}
		if (stored >= RACE_TARGET)
			break;
		for (int k = 0; k < RACE_K; k++) {
			Chat__IngressRecord rec = CHAT__INGRESS_RECORD__INIT;
			char *cmid = chat_arena_printf(
			    a, "t%d-%lld", r->id, (long long)(stored + k));
			size_t len = 0;
			rec.channel_id = r->ch;
			rec.sender_id = r->sender;
			rec.client_msg_id = cmid;
			rec.body = (char *)"race";
			memset(&raws[k], 0, sizeof raws[k]);
			raws[k].topic = "chat.ingress";
			raws[k].partition = 0;
			raws[k].offset = stored + k;
			raws[k].val = chat_arena_pack(a, &rec.base, &len);
			raws[k].len = len;
		}
		st = store_ingress_apply_fenced(r->db, &cx, "race", raws,
		                                RACE_K, items, expect_fixed,
		                                &want);
		if (st == CHAT_OK)
			r->commits++;
		else if (st == CHAT_ABORTED)
			r->fenced++;
		else
			r->errors++;
	}
	chat_arena_free(a);
	return NULL;
}

static void test_fence_race(void **state)
{
	struct fx *f = *state;
	uint64_t ch = fx_group(f, f->alice, "race", NULL, 0);
	struct racer rs[2];
	pthread_t th[2];
	pthread_barrier_t start;
	store_db *db2 = NULL;
	unsigned char seen[RACE_TARGET + RACE_K];
	uint64_t anchor = 0;
	size_t total = 0;
	int64_t o = 0;

	assert_int_equal(store_scen_engine->open(f->priv, &db2), 0);
	pthread_barrier_init(&start, NULL, 2);
	for (int i = 0; i < 2; i++) {
		memset(&rs[i], 0, sizeof rs[i]);
		rs[i].db = i ? db2 : f->db;
		rs[i].ch = ch;
		rs[i].sender = f->alice;
		rs[i].id = i;
		rs[i].start = &start;
		assert_int_equal(
		    pthread_create(&th[i], NULL, race_main, &rs[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	store_db_close(db2);
	fprintf(stderr,
	        "# fence race (%s): commits %d+%d fenced %d+%d errors %d+%d\n",
	        store_scen_engine->name, rs[0].commits, rs[1].commits,
	        rs[0].fenced, rs[1].fenced, rs[0].errors, rs[1].errors);
	assert_int_equal(rs[0].errors + rs[1].errors, 0);
	assert_int_equal(rs[0].commits + rs[1].commits, RACE_TARGET / RACE_K);

	assert_int_equal(store_db_load_offset(f->db, &f->cx, "race",
	                                      "chat.ingress", 0, &o),
	                 CHAT_OK);
	assert_int_equal(o, RACE_TARGET);
	/* every offset stored once, in order: seq s holds offset s - 1 */
	memset(seen, 0, sizeof seen);
	for (;;) {
		Chat__HistoryPage *p = NULL;
		assert_int_equal(store_db_history(f->db, &f->cx, f->alice, ch,
		                                  anchor, 1, 100, &p),
		                 CHAT_OK);
		for (size_t i = 0; i < p->n_messages; i++) {
			int tid = -1;
			long long off = -1;
			Chat__Message *m = p->messages[i];
			assert_int_equal(sscanf(m->client_msg_id, "t%d-%lld",
			                        &tid, &off),
			                 2);
			assert_true(off >= 0 && off < RACE_TARGET);
			assert_int_equal(seen[off], 0);
			seen[off] = 1;
			assert_int_equal(m->seq, (uint64_t)off + 1);
			anchor = m->seq;
			total++;
		}
		if (!p->more)
			break;
	}
	assert_int_equal(total, RACE_TARGET);
}

const struct CMUnitTest store_scenarios[] = {
    cmocka_unit_test_setup_teardown(test_users, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_create_channel, fx_setup,
                                    fx_teardown),
    cmocka_unit_test_setup_teardown(test_dm, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_join_leave, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_leave_grace, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_sequencing, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_dedupe, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_rejected, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_history, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_history_clamp, fx_setup,
                                    fx_teardown),
    cmocka_unit_test_setup_teardown(test_mark_read, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_members_peers, fx_setup,
                                    fx_teardown),
    cmocka_unit_test_setup_teardown(test_admin, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_offsets, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_reopen, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_fence, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_fence_race, fx_setup, fx_teardown),
};
const size_t store_scenarios_n =
    sizeof store_scenarios / sizeof store_scenarios[0];

int store_scenarios_run(const char *group, const struct CMUnitTest *extra,
                        size_t n_extra)
{
	size_t n = store_scenarios_n + n_extra;
	struct CMUnitTest *all = calloc(n, sizeof *all);
	int rc;
	if (!all)
		return 1;
	memcpy(all, store_scenarios, sizeof store_scenarios);
	if (n_extra)
		memcpy(all + store_scenarios_n, extra, n_extra * sizeof *extra);
	rc = _cmocka_run_group_tests(group, all, n, NULL, NULL);
	free(all);
	return rc;
}
