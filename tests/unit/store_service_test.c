/* The store service end to end on librdkafka's mock cluster: RPCs over
 * inproc://, IngressRecords produced to chat.ingress (with a duplicate,
 * and a first batch whose commit fails and must be read again), Events
 * consumed from chat.fanout (contiguous seqs, the duplicate fanned out
 * again only as its stored first copy, member and read events), then a restart that resumes from the
 * offsets kept in the database. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
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
#include "rpc.pb-c.h"
#include "store.h"
#include "store.pb-c.h"

#define MAX_SEEN 256

struct seen_msg {
	uint64_t channel, seq, sender;
	char cmid[32], body[32];
};

struct seen_member {
	uint64_t channel, user, by, target;
	int kind;
};

struct t {
	char dir[64], path[96], url[64], log_id[32];
	chat_kafka_mock *mock;
	store *s;
	chat_rpc_client *rpc;
	chat_producer *prod;
	chat_consumer *fan;
	chat_arena *a;
	struct seen_msg msgs[MAX_SEEN];
	size_t n_resent; /* message events repeating a seen seq */
	size_t n_msgs;
	struct seen_member members[MAX_SEEN];
	size_t n_members;
	Chat__ReadReceipt reads[16];
	size_t n_reads;
	size_t n_events;
};

static struct t T;

static int64_t mono_ms(void)
{
	return chat_mono_us() / 1000;
}

static int start_store(int fail_commits)
{
	store_config cfg;
	char err[256];
	memset(&cfg, 0, sizeof cfg);
	cfg.db_path = T.path;
	cfg.kafka_bootstrap = chat_kafka_mock_bootstraps(T.mock);
	cfg.log_id = T.log_id;
	cfg.rpc_url = T.url;
	cfg.instance = "test";
	cfg.rpc_threads = 2;
	cfg.test_fail_commits = fail_commits;
	if (store_start(&cfg, &T.s, err, sizeof err)) {
		fprintf(stderr, "store_start: %s\n", err);
		return -1;
	}
	return 0;
}

static int wait_ready(int ms)
{
	int64_t end = mono_ms() + ms;
	while (!store_ready(T.s)) {
		if (mono_ms() > end)
			return -1;
		usleep(20 * 1000);
	}
	return 0;
}

static int call(const char *method, const ProtobufCMessage *in, void *out,
                char *reason)
{
	char r[256];
	return chat_rpc_invoke(T.rpc, &chat__store__descriptor, method, in,
	                       T.a, (ProtobufCMessage **)out, 5000,
	                       reason ? reason : r, 256);
}

static struct seen_msg *find_msg(uint64_t channel, uint64_t seq)
{
	for (size_t i = 0; i < T.n_msgs; i++)
		if (T.msgs[i].channel == channel && T.msgs[i].seq == seq)
			return &T.msgs[i];
	return NULL;
}

/* Read chat.fanout for up to ms, recording every Event. */
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
		assert_int_equal(m->key_len, 8);
		e = chat__event__unpack(NULL, m->len, m->payload);
		assert_non_null(e);
		assert_int_equal(chat_get_be64(m->key), e->channel_id);
		T.n_events++;
		if (e->kind_case == CHAT__EVENT__KIND_MESSAGE) {
			struct seen_msg *old = find_msg(e->message->channel_id,
			                                 e->message->seq);
			if (old) {
				/* a retried duplicate: the first copy again */
				assert_string_equal(old->cmid,
				                    e->message->client_msg_id);
				assert_string_equal(old->body, e->message->body);
				T.n_resent++;
				chat__event__free_unpacked(e, NULL);
				chat_rec_release(m);
				continue;
			}
			struct seen_msg *s = &T.msgs[T.n_msgs++];
			assert_true(T.n_msgs < MAX_SEEN);
			s->channel = e->message->channel_id;
			s->seq = e->message->seq;
			s->sender = e->message->sender_id;
			chat_strlcpy(s->cmid, e->message->client_msg_id,
			             sizeof s->cmid);
			chat_strlcpy(s->body, e->message->body, sizeof s->body);
			assert_true(e->message->stored_at_ms > 0);
			assert_true(e->message->sender_name[0] != '\0');
		} else if (e->kind_case == CHAT__EVENT__KIND_MEMBER) {
			struct seen_member *s = &T.members[T.n_members++];
			assert_true(T.n_members < MAX_SEEN);
			assert_int_equal(e->n_user_ids, 1);
			assert_int_equal(e->user_ids[0], e->member->user_id);
			s->channel = e->member->channel_id;
			s->user = e->member->user_id;
			s->by = e->member->by_user_id;
			s->kind = e->member->kind;
		} else if (e->kind_case == CHAT__EVENT__KIND_READ) {
			assert_true(T.n_reads < 16);
			T.reads[T.n_reads].channel_id = e->read->channel_id;
			T.reads[T.n_reads].user_id = e->read->user_id;
			T.reads[T.n_reads].seq = e->read->seq;
			T.n_reads++;
		}
		chat__event__free_unpacked(e, NULL);
		chat_rec_release(m);
	}
}

static size_t count_msgs(uint64_t channel)
{
	size_t n = 0;
	for (size_t i = 0; i < T.n_msgs; i++)
		n += T.msgs[i].channel == channel;
	return n;
}

/* Pump until channel has n fanned-out messages, or the deadline. */
static void pump_until_msgs(uint64_t channel, size_t n, int ms)
{
	int64_t end = mono_ms() + ms;
	while (count_msgs(channel) < n && mono_ms() < end)
		pump(100);
}

/* Seqs of channel's fanned-out messages are exactly 1..n, each once. */
static void check_contiguous(uint64_t channel, uint64_t first, uint64_t n)
{
	uint64_t want = first;
	for (size_t i = 0; i < T.n_msgs; i++) {
		if (T.msgs[i].channel != channel)
			continue;
		assert_int_equal(T.msgs[i].seq, want);
		want++;
	}
	assert_int_equal(want, first + n);
}

static int has_member(uint64_t channel, uint64_t user, int kind, uint64_t by)
{
	for (size_t i = 0; i < T.n_members; i++)
		if (T.members[i].channel == channel &&
		    T.members[i].user == user && T.members[i].kind == kind &&
		    T.members[i].by == by)
			return 1;
	return 0;
}

static void send_rec(uint64_t channel, uint64_t sender, const char *cmid,
                     const char *body)
{
	Chat__IngressRecord r = CHAT__INGRESS_RECORD__INIT;
	uint8_t key[8], buf[512];
	size_t len;
	r.channel_id = channel;
	r.sender_id = sender;
	r.sender_name = (char *)"whoever";
	r.client_msg_id = (char *)cmid;
	r.body = (char *)body;
	r.sent_at_ms = chat_now_ms();
	r.edge_id = (char *)"edge-test";
	len = chat__ingress_record__pack(&r, buf);
	chat_put_be64(key, channel);
	assert_int_equal(chat_producer_send(T.prod, CHAT_TOPIC_INGRESS, key, 8,
	                                    buf, len, NULL),
	                 0);
}

static uint64_t health_counter(const char *name)
{
	Chat__Empty in = CHAT__EMPTY__INIT;
	Chat__HealthReply *h = NULL;
	char reason[256];
	assert_int_equal(chat_rpc_invoke(T.rpc, &chat__admin__descriptor,
	                                 "Health", &in.base, T.a,
	                                 (ProtobufCMessage **)&h, 5000, reason,
	                                 sizeof reason),
	                 CHAT_OK);
	for (size_t i = 0; i < h->n_counters; i++)
		if (!strcmp(h->counters[i]->name, name))
			return (uint64_t)h->counters[i]->value;
	fail_msg("no counter %s", name);
	return 0;
}

static uint64_t mkuser(const char *name)
{
	Chat__CreateUserReq in = CHAT__CREATE_USER_REQ__INIT;
	Chat__User *u = NULL;
	in.name = (char *)name;
	in.pass_hash = (char *)"$argon2id$v=19$test";
	assert_int_equal(call("CreateUser", &in.base, &u, NULL), CHAT_OK);
	assert_string_equal(u->name, name);
	return u->id;
}

static void test_service(void **state)
{
	Chat__StoreCreateChannelReq cc = CHAT__STORE_CREATE_CHANNEL_REQ__INIT;
	Chat__StoreOpenDmReq dm = CHAT__STORE_OPEN_DM_REQ__INIT;
	Chat__MembershipReq mr = CHAT__MEMBERSHIP_REQ__INIT;
	Chat__StoreHistoryReq hr = CHAT__STORE_HISTORY_REQ__INIT;
	Chat__StoreMarkReadReq rr = CHAT__STORE_MARK_READ_REQ__INIT;
	Chat__UserReq ur = CHAT__USER_REQ__INIT;
	Chat__GetUserReq gu = CHAT__GET_USER_REQ__INIT;
	Chat__CreateUserReq cu = CHAT__CREATE_USER_REQ__INIT;
	Chat__ChannelInfo *ci = NULL, *dci = NULL;
	Chat__HistoryPage *hp = NULL;
	Chat__ReadReceipt *rcpt = NULL;
	Chat__ChannelList *cl = NULL;
	Chat__UserRecord *urec = NULL;
	Chat__UserList *ul = NULL;
	Chat__ChannelIds *ids = NULL;
	Chat__User *u = NULL;
	char *members[] = {(char *)"bob"};
	char reason[256], cmid[16], body[32];
	uint64_t alice, bob, carol, general, direct;
	(void)state;

	assert_int_equal(wait_ready(20000), 0);

	alice = mkuser("alice");
	bob = mkuser("bob");
	carol = mkuser("carol");
	cu.name = (char *)"alice";
	cu.pass_hash = (char *)"x";
	assert_int_equal(call("CreateUser", &cu.base, &u, reason),
	                 CHAT_ALREADY_EXISTS);
	assert_string_equal(reason, "name taken");
	gu.name = (char *)"bob";
	assert_int_equal(call("GetUser", &gu.base, &urec, NULL), CHAT_OK);
	assert_int_equal(urec->id, bob);
	assert_string_equal(urec->pass_hash, "$argon2id$v=19$test");

	cc.user_id = alice;
	cc.name = (char *)"general";
	cc.n_members = 1;
	cc.members = members;
	assert_int_equal(call("CreateChannel", &cc.base, &ci, NULL), CHAT_OK);
	general = ci->id;
	assert_int_equal(ci->member_count, 2);
	dm.user_id = alice;
	dm.peer_name = (char *)"carol";
	assert_int_equal(call("OpenDm", &dm.base, &dci, NULL), CHAT_OK);
	direct = dci->id;
	assert_string_equal(dci->dm_peer, "carol");
	mr.user_id = carol;
	mr.channel_id = general;
	assert_int_equal(call("Join", &mr.base, &ci, NULL), CHAT_OK);
	assert_int_equal(ci->member_count, 3);
	mr.channel_id = direct;
	mr.user_id = bob;
	assert_int_equal(call("Join", &mr.base, &ci, reason),
	                 CHAT_PERMISSION_DENIED);
	assert_string_equal(reason, "cannot join a direct message channel");
	mr.channel_id = 777;
	assert_int_equal(call("Join", &mr.base, &ci, reason), CHAT_NOT_FOUND);

	/* 10 messages in general (one sent twice), 3 in the DM */
	for (int i = 1; i <= 10; i++) {
		snprintf(cmid, sizeof cmid, "g%d", i);
		snprintf(body, sizeof body, "general %d", i);
		send_rec(general, i % 2 ? alice : bob, cmid, body);
		if (i == 3)
			send_rec(general, alice, "g3", "the retry");
		if (i <= 3) {
			snprintf(cmid, sizeof cmid, "d%d", i);
			send_rec(direct, i % 2 ? carol : alice, cmid, "psst");
		}
	}
	/* a non-member's record is rejected, not stored */
	send_rec(direct, bob, "intruder", "let me in");
	assert_int_equal(chat_producer_flush(T.prod, 10000), 0);
	/* drained: everything in the log is in the database, even though
	 * the first batch failed and was read again */
	assert_int_equal(store_drain(T.s, 15000), 0);
	ur.user_id = alice;
	assert_int_equal(call("ListChannels", &ur.base, &cl, NULL), CHAT_OK);
	assert_int_equal(cl->n_channels, 2);
	assert_int_equal(cl->channels[0]->last_seq, 10);
	assert_int_equal(cl->channels[1]->last_seq, 3);

	pump_until_msgs(general, 10, 20000);
	pump_until_msgs(direct, 3, 5000);
	pump(300); /* anything extra (a re-fanned duplicate) shows now */
	check_contiguous(general, 1, 10);
	check_contiguous(direct, 1, 3);
	for (size_t i = 0; i < T.n_msgs; i++) {
		assert_string_not_equal(T.msgs[i].body, "the retry");
		assert_string_not_equal(T.msgs[i].cmid, "intruder");
	}
	assert_true(has_member(general, alice, 0, alice));
	assert_true(has_member(general, bob, 0, alice));
	assert_true(has_member(general, carol, 0, carol));
	assert_true(has_member(direct, alice, 0, alice));
	assert_true(has_member(direct, carol, 0, alice));
	assert_int_equal(T.n_members, 5);
	/* the first batch failed once and was read again, losing nothing */
	assert_int_equal(health_counter("batch_failures"), 1);
	assert_int_equal(health_counter("duplicates"), 1);
	assert_int_equal(health_counter("rejected"), 1);
	/* the duplicate was fanned out again as its stored first copy */
	assert_int_equal(T.n_resent, 1);
	assert_int_equal(health_counter("stored"), 13);

	/* history through RPC */
	hr.user_id = carol;
	hr.channel_id = general;
	hr.direction = CHAT__HISTORY_REQ__DIRECTION__BEFORE;
	hr.limit = 4;
	assert_int_equal(call("History", &hr.base, &hp, NULL), CHAT_OK);
	assert_int_equal(hp->n_messages, 4);
	assert_int_equal(hp->messages[0]->seq, 7);
	assert_int_equal(hp->messages[3]->seq, 10);
	assert_true(hp->more);
	assert_int_equal(hp->last_seq, 10);
	hr.direction = CHAT__HISTORY_REQ__DIRECTION__AFTER;
	hr.anchor_seq = 2;
	hr.limit = 1;
	assert_int_equal(call("History", &hr.base, &hp, NULL), CHAT_OK);
	assert_int_equal(hp->n_messages, 1);
	assert_string_equal(hp->messages[0]->body, "general 3");
	assert_string_equal(hp->messages[0]->sender_name, "alice");
	hr.user_id = bob;
	hr.channel_id = direct;
	assert_int_equal(call("History", &hr.base, &hp, NULL),
	                 CHAT_PERMISSION_DENIED);

	/* read positions */
	ur.user_id = bob;
	assert_int_equal(call("ListChannels", &ur.base, &cl, NULL), CHAT_OK);
	assert_int_equal(cl->n_channels, 1);
	assert_int_equal(cl->channels[0]->last_seq, 10);
	assert_int_equal(cl->channels[0]->read_seq, 10); /* his own, seq 10 */
	ur.user_id = carol;
	assert_int_equal(call("ListChannels", &ur.base, &cl, NULL), CHAT_OK);
	assert_int_equal(cl->n_channels, 2);
	assert_int_equal(cl->channels[0]->id, general);
	assert_int_equal(cl->channels[0]->unread, 10);
	assert_int_equal(cl->channels[1]->dm_peer_id, alice);
	rr.user_id = carol;
	rr.channel_id = general;
	rr.seq = 6;
	assert_int_equal(call("MarkRead", &rr.base, &rcpt, NULL), CHAT_OK);
	assert_int_equal(rcpt->seq, 6);
	rr.seq = 2; /* behind: no move, no event */
	assert_int_equal(call("MarkRead", &rr.base, &rcpt, NULL), CHAT_OK);
	assert_int_equal(rcpt->seq, 6);
	{
		int64_t end = mono_ms() + 5000;
		while (T.n_reads < 1 && mono_ms() < end)
			pump(100);
		pump(200);
	}
	assert_int_equal(T.n_reads, 1);
	assert_int_equal(T.reads[0].user_id, carol);
	assert_int_equal(T.reads[0].seq, 6);
	assert_int_equal(T.reads[0].channel_id, general);

	mr.user_id = alice;
	mr.channel_id = general;
	assert_int_equal(call("Members", &mr.base, &ul, NULL), CHAT_OK);
	assert_int_equal(ul->n_users, 3);
	ur.user_id = carol;
	assert_int_equal(call("Peers", &ur.base, &ul, NULL), CHAT_OK);
	assert_int_equal(ul->n_users, 2);
	assert_int_equal(call("UserChannels", &ur.base, &ids, NULL), CHAT_OK);
	assert_int_equal(ids->n_ids, 2);
	mr.user_id = carol;
	assert_int_equal(call("GetChannel", &mr.base, &ci, NULL), CHAT_OK);
	assert_int_equal(ci->read_seq, 6);
	assert_int_equal(ci->unread, 4);
	assert_int_equal(call("Leave", &mr.base, &u, NULL), CHAT_OK);
	assert_int_equal(call("Leave", &mr.base, &u, reason),
	                 CHAT_FAILED_PRECONDITION);
	assert_string_equal(reason, "not a member");
	{
		int64_t end = mono_ms() + 5000;
		while (!has_member(general, carol, 1, carol) &&
		       mono_ms() < end)
			pump(100);
	}
	assert_true(has_member(general, carol, 1, carol));

	/* restart: the store resumes after its stored offsets */
	store_stop(T.s);
	T.s = NULL;
	send_rec(general, bob, "after-restart-1", "while down");
	send_rec(general, alice, "g5", "a late retry of g5");
	assert_int_equal(chat_producer_flush(T.prod, 10000), 0);
	assert_int_equal(start_store(0), 0);
	assert_int_equal(wait_ready(20000), 0);
	send_rec(general, alice, "after-restart-2", "back up");
	assert_int_equal(chat_producer_flush(T.prod, 10000), 0);
	pump_until_msgs(general, 12, 20000);
	pump(300);
	check_contiguous(general, 1, 12);
	assert_int_equal(health_counter("duplicates"), 1); /* only g5 */
	assert_int_equal(T.n_resent, 2); /* g5's first copy again */
	assert_int_equal(health_counter("stored"), 2);
	assert_int_equal(health_counter("batch_failures"), 0);
}

static int setup(void **state)
{
	char err[256];
	(void)state;
	chat_log_set_level(getenv("STORE_TEST_LOG") ? "debug" : "warn");
	snprintf(T.dir, sizeof T.dir, "/tmp/store_service_test.XXXXXX");
	if (!mkdtemp(T.dir))
		return -1;
	snprintf(T.path, sizeof T.path, "%s/store.db", T.dir);
	snprintf(T.url, sizeof T.url, "inproc://store-test-%d", (int)getpid());
	snprintf(T.log_id, sizeof T.log_id, "mock-%d", (int)getpid());
	T.a = chat_arena_new();
	T.mock = chat_kafka_mock_new(1, 4, err, sizeof err);
	if (!T.mock) {
		fprintf(stderr, "mock: %s\n", err);
		return -1;
	}
	/* The fan-out reader joins its group while the store joins its. */
	T.fan = chat_consumer_new(chat_kafka_mock_bootstraps(T.mock),
	                          "store-test-fanout", "store-test-fanout",
	                          CHAT_TOPIC_FANOUT, 0, NULL, NULL, 1, err,
	                          sizeof err);
	if (!T.fan) {
		fprintf(stderr, "consumer: %s\n", err);
		return -1;
	}
	T.prod = chat_producer_new(chat_kafka_mock_bootstraps(T.mock),
	                           "store-test-producer", 1, NULL, NULL, err,
	                           sizeof err);
	if (!T.prod || start_store(1))
		return -1;
	T.rpc = chat_rpc_client_new(T.url, err, sizeof err);
	return T.rpc ? 0 : -1;
}

static int teardown(void **state)
{
	char p[128];
	(void)state;
	chat_rpc_client_free(T.rpc);
	store_stop(T.s);
	chat_producer_free(T.prod);
	if (T.fan) {
		chat_consumer_free(T.fan);
	}
	chat_kafka_mock_free(T.mock);
	chat_arena_free(T.a);
	snprintf(p, sizeof p, "%s-wal", T.path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", T.path);
	unlink(p);
	unlink(T.path);
	rmdir(T.dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_service),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
