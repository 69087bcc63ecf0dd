/* Discovery against a real ZooKeeper (tests/lib/zk_server): instances
 * register, a watcher sees them come, change load and go; an RPC client
 * follows a service's instances; ZooKeeper killed for a while (caches and
 * calls keep working, a registration made meanwhile happens when it comes
 * back), and restarted with its data wiped (sessions gone: handles start
 * new sessions and register again). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_discovery.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "rpc.pb-c.h"
#include "zk_server.h"

#define TIMEOUT_MS 3000 /* session timeout of the handles */

static zk_server g_zk;

static int setup(void **state)
{
	char err[512];
	(void)state;
	if (zk_server_start(&g_zk, err, sizeof err) != 0) {
		fprintf(stderr, "zk_server_start: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	zk_server_cleanup(&g_zk);
	return 0;
}

static int g_timeout_ms = TIMEOUT_MS; /* for new handles */

static chat_disc *disc(void)
{
	char err[256];
	chat_disc *d = chat_disc_new(g_zk.hosts, g_timeout_ms, err, sizeof err);
	if (!d)
		fail_msg("chat_disc_new: %s", err);
	return d;
}

static void node_json(char *out, size_t len, const char *svc, const char *id,
                      const char *rpc, int64_t load)
{
	chat_disc_entry e;
	memset(&e, 0, sizeof e);
	chat_strlcpy(e.id, id, sizeof e.id);
	chat_strlcpy(e.service, svc, sizeof e.service);
	chat_strlcpy(e.rpc, rpc, sizeof e.rpc);
	if (!strcmp(svc, "edge"))
		snprintf(e.pub, sizeof e.pub, "ws://127.0.0.1:1/ws#%s", id);
	chat_strlcpy(e.version, "0.1.0", sizeof e.version);
	e.load = load;
	e.pid = getpid();
	assert_true(chat_disc_format(&e, out, len) > 0);
}

static chat_disc *registered(const char *svc, const char *id, const char *rpc)
{
	char json[CHAT_DISC_DATA_MAX];
	chat_disc *d = disc();
	node_json(json, sizeof json, svc, id, rpc, 0);
	assert_int_equal(chat_disc_register(d, svc, id, json, 5000), 0);
	return d;
}

/* What a watch callback saw last. */
struct seen {
	pthread_mutex_t mu;
	chat_disc_entry e[8];
	size_t n;
	int calls;
};

static void seen_init(struct seen *s)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
}

static void on_change(void *arg, const char *service,
                      const chat_disc_entry *e, size_t n)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->mu);
	s->n = n < 8 ? n : 8;
	if (s->n)
		memcpy(s->e, e, s->n * sizeof *e);
	s->calls++;
	pthread_mutex_unlock(&s->mu);
	(void)service;
}

/* The ids the callback saw last, joined by ',' (with :load when
 * with_load). */
static const char *seen_ids(struct seen *s, int with_load)
{
	static char out[512];
	out[0] = '\0';
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n; i++) {
		char one[96];
		snprintf(one, sizeof one, "%s%s", i ? "," : "", s->e[i].id);
		strcat(out, one);
		if (with_load) {
			snprintf(one, sizeof one, ":%lld",
			         (long long)s->e[i].load);
			strcat(out, one);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return out;
}

static void wait_seen(struct seen *s, const char *want, int with_load,
                      int ms)
{
	int64_t deadline = chat_mono_ms() + ms;
	while (strcmp(seen_ids(s, with_load), want) != 0) {
		if (chat_mono_ms() > deadline)
			fail_msg("watch saw \"%s\", want \"%s\"",
			         seen_ids(s, with_load), want);
		usleep(20 * 1000);
	}
}

static const char *listed(chat_disc *d, const char *svc)
{
	static char out[512];
	chat_disc_entry e[8];
	size_t n = chat_disc_list(d, svc, e, 8, 0);
	out[0] = '\0';
	for (size_t i = 0; i < n && i < 8; i++) {
		strcat(out, i ? "," : "");
		strcat(out, e[i].id);
	}
	return out;
}

static void test_register_watch_load_leave(void **state)
{
	struct seen s;
	chat_disc *w = disc(), *d1, *d2;
	chat_disc_entry e[4], best;
	char path[256], json[CHAT_DISC_DATA_MAX];
	(void)state;
	seen_init(&s);
	assert_int_equal(chat_disc_watch(w, "edge", on_change, &s), 0);
	d1 = registered("edge", "edge-1", "tcp://127.0.0.1:7001");
	d2 = registered("edge", "edge-2", "tcp://127.0.0.1:7002");
	assert_int_equal(chat_disc_node_path(d1, path, sizeof path), 0);
	assert_int_equal(strncmp(path, "/chat/services/edge/edge-1-", 27), 0);
	assert_int_equal(strlen(path), 27 + 10); /* 10-digit sequence */
	wait_seen(&s, "edge-1,edge-2", 0, 5000);

	assert_int_equal(chat_disc_list(w, "edge", e, 4, 0), 2);
	assert_string_equal(e[0].id, "edge-1");
	assert_string_equal(e[0].service, "edge");
	assert_string_equal(e[0].rpc, "tcp://127.0.0.1:7001");
	assert_string_equal(e[0].pub, "ws://127.0.0.1:1/ws#edge-1");
	assert_string_equal(e[0].version, "0.1.0");
	assert_int_equal(e[0].pid, getpid());
	assert_string_equal(e[0].node, path + 20);
	assert_string_equal(e[1].rpc, "tcp://127.0.0.1:7002");
	/* An instance sees itself too; another service is empty. */
	assert_string_equal(listed(d1, "edge"), "");     /* not waited */
	assert_int_equal(chat_disc_wait(d1, "edge", 2, 5000), 2);
	assert_int_equal(chat_disc_list(d1, "store", e, 4, 2000), 0);

	/* Load updates reach the watchers. */
	node_json(json, sizeof json, "edge", "edge-1", "tcp://127.0.0.1:7001",
	          42);
	assert_int_equal(chat_disc_set_data(d1, json), 0);
	wait_seen(&s, "edge-1:42,edge-2:0", 1, 5000);
	assert_int_equal(chat_disc_least_loaded(w, "edge", &best, 0), 0);
	assert_string_equal(best.id, "edge-2");
	node_json(json, sizeof json, "edge", "edge-2", "tcp://127.0.0.1:7002",
	          50);
	assert_int_equal(chat_disc_set_data(d2, json), 0);
	wait_seen(&s, "edge-1:42,edge-2:50", 1, 5000);
	assert_int_equal(chat_disc_least_loaded(w, "edge", &best, 0), 0);
	assert_string_equal(best.id, "edge-1");

	/* One leaves: gone for the watcher (deleted at once, not at the
	 * session timeout). */
	{
		int64_t t0 = chat_mono_ms();
		chat_disc_free(d2);
		wait_seen(&s, "edge-1", 0, 5000);
		assert_true(chat_mono_ms() - t0 < TIMEOUT_MS);
	}
	chat_disc_free(d1);
	wait_seen(&s, "", 0, 5000);
	chat_disc_unwatch(w, on_change, &s);
	chat_disc_free(w);
}

/* A handle on a ZooKeeper that is not there: nothing blocks, the
 * registration waits, and free returns promptly. */
static void test_nobody_home(void **state)
{
	char err[256];
	chat_disc_entry e;
	chat_disc *d;
	int64_t t0 = chat_mono_ms();
	(void)state;
	d = chat_disc_new("127.0.0.1:1", 2000, err, sizeof err);
	assert_non_null(d);
	assert_int_equal(chat_disc_register(d, "edge", "lonely",
	                                    "{\"id\":\"lonely\","
	                                    "\"rpc\":\"tcp://x:1\"}",
	                                    100),
	                 1);
	assert_int_equal(chat_disc_list(d, "edge", &e, 1, 100), 0);
	assert_int_equal(chat_disc_connected(d), 0);
	chat_disc_free(d);
	assert_true(chat_mono_ms() - t0 < 3000);
}

static void test_bad_arguments(void **state)
{
	char err[256], json[64] = "{\"id\":\"a\",\"rpc\":\"tcp://a:1\"}";
	chat_disc *d;
	chat_disc_entry e;
	(void)state;
	assert_null(chat_disc_new(NULL, 1000, err, sizeof err));
	assert_null(chat_disc_new("", 1000, err, sizeof err));
	d = disc();
	assert_int_equal(chat_disc_set_data(d, json), -1); /* not registered */
	assert_int_equal(chat_disc_register(d, "bad/name", "a", json, 0), -1);
	assert_int_equal(chat_disc_register(d, "edge", "", json, 0), -1);
	assert_int_equal(chat_disc_register(d, "edge", "a b", json, 0), -1);
	assert_int_equal(chat_disc_watch(d, "", on_change, NULL), -1);
	assert_int_equal(chat_disc_register(d, "misc", "a", json, 5000), 0);
	assert_int_equal(chat_disc_register(d, "misc", "b", json, 0), -1);
	assert_int_equal(chat_disc_list(d, "../x", &e, 1, 0), 0);
	chat_disc_free(d);
	chat_disc_free(NULL);

	memset(&e, 0, sizeof e);
	assert_int_equal(chat_disc_parse(json, strlen(json), &e), 0);
	assert_string_equal(e.id, "a");
	assert_string_equal(e.service, "");
	assert_int_equal(chat_disc_parse("{\"id\":\"a\"}", 10, &e), -1);
	{
		const char *bad = "{\"id\":\"a\",\"rpc\":\"x\",\"load\":\"1\"}";
		assert_int_equal(chat_disc_parse(bad, strlen(bad), &e), -1);
	}
}

/* A fake chat.Admin server whose instance name tells who answered. */
static chat_rpc_server *admin_server(const char *instance, char *url,
                                     size_t len)
{
	char err[256];
	int port = 0;
	chat_rpc_server *s = chat_rpc_server_new("store", instance, 2);
	assert_non_null(s);
	assert_int_equal(chat_rpc_server_listen(s, "tcp://127.0.0.1:0", &port,
	                                        err, sizeof err),
	                 0);
	assert_int_equal(chat_rpc_server_start(s), 0);
	snprintf(url, len, "tcp://127.0.0.1:%d", port);
	return s;
}

static int health(chat_rpc_client *c, char *who, size_t len)
{
	Chat__Empty in = CHAT__EMPTY__INIT;
	ProtobufCMessage *out = NULL;
	chat_arena *a = chat_arena_new();
	int st = chat_rpc_invoke(c, &chat__admin__descriptor, "Health",
	                         &in.base, a, &out, 1000, NULL, 0);
	if (st == CHAT_OK && who)
		chat_strlcpy(who, ((Chat__HealthReply *)out)->instance, len);
	chat_arena_free(a);
	return st;
}

static void wait_urls(chat_rpc_client *c, size_t n)
{
	int64_t deadline = chat_mono_ms() + 5000;
	size_t got = 0;
	for (;;) {
		chat_rpc_client_state(c, &got, NULL);
		if (got == n)
			return;
		if (chat_mono_ms() > deadline)
			fail_msg("client has %zu urls, want %zu", got, n);
		usleep(20 * 1000);
	}
}

/* An RPC client bound to a service follows its instances; while
 * ZooKeeper is down, caches and calls carry on; a registration asked for
 * meanwhile happens when it is back; the existing node survives a short
 * outage (same session). */
static void test_bind_client_and_outage(void **state)
{
	char url1[64], url2[64], url3[64], who[64], path[256], err[512];
	chat_rpc_server *s1 = admin_server("store-1", url1, sizeof url1);
	chat_rpc_server *s2 = admin_server("store-2", url2, sizeof url2);
	chat_rpc_server *s3 = admin_server("store-3", url3, sizeof url3);
	chat_disc *w = disc(), *d1, *d2, *d3;
	chat_rpc_client *c = chat_rpc_client_new(NULL, err, sizeof err);
	int got1 = 0, got2 = 0;
	uint64_t sessions;
	(void)state;
	/* Sessions that outlive the outage and the restart by far. */
	g_timeout_ms = 10000;
	assert_int_equal(chat_disc_bind_client(w, "store", c), 0);
	d1 = registered("store", "store-1", url1);
	d2 = registered("store", "store-2", url2);
	wait_urls(c, 2);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(health(c, who, sizeof who), CHAT_OK);
		got1 += !strcmp(who, "store-1");
		got2 += !strcmp(who, "store-2");
	}
	assert_true(got1 > 0 && got2 > 0);
	chat_disc_free(d2);
	wait_urls(c, 1);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(health(c, who, sizeof who), CHAT_OK);
		assert_string_equal(who, "store-1");
	}

	/* ZooKeeper goes away for 2 s (less than the session timeout). */
	assert_int_equal(chat_disc_node_path(d1, path, sizeof path), 0);
	sessions = chat_disc_sessions(d1);
	assert_int_equal(zk_server_kill(&g_zk), 0);
	d3 = disc(); /* created during the outage: does not block */
	{
		char json[CHAT_DISC_DATA_MAX];
		int64_t t0 = chat_mono_ms();
		node_json(json, sizeof json, "store", "store-3", url3, 0);
		assert_int_equal(chat_disc_register(d3, "store", "store-3",
		                                    json, 200),
		                 1);
		assert_true(chat_mono_ms() - t0 < 1000);
	}
	{
		int64_t t0 = chat_mono_ms();
		while (chat_mono_ms() - t0 < 2000) {
			assert_string_equal(listed(w, "store"), "store-1");
			assert_int_equal(health(c, who, sizeof who), CHAT_OK);
			usleep(100 * 1000);
		}
		assert_int_equal(chat_disc_connected(w), 0);
	}
	assert_int_equal(zk_server_restart(&g_zk, 0, err, sizeof err), 0);
	/* store-3 registers; store-1 kept its node and session. */
	wait_urls(c, 2);
	assert_string_equal(listed(w, "store"), "store-1,store-3");
	{
		char again[256];
		assert_int_equal(chat_disc_node_path(d1, again, sizeof again),
		                 0);
		assert_string_equal(again, path);
		assert_int_equal(chat_disc_sessions(d1), sessions);
	}
	got1 = got2 = 0;
	for (int i = 0; i < 40; i++) {
		assert_int_equal(health(c, who, sizeof who), CHAT_OK);
		got1 += !strcmp(who, "store-1");
		got2 += !strcmp(who, "store-3");
	}
	assert_true(got1 > 0 && got2 > 0);
	chat_disc_unbind_client(w, c);
	chat_disc_free(d1);
	chat_disc_free(d3);
	chat_disc_free(w);
	chat_rpc_client_free(c);
	chat_rpc_server_free(s1);
	chat_rpc_server_free(s2);
	chat_rpc_server_free(s3);
	g_timeout_ms = TIMEOUT_MS;
}

/* A ZooKeeper that comes back empty has forgotten every session: each
 * handle gives its session up after the session timeout, starts a new
 * one, registers again (a new node) and reads everything again. */
static void test_wiped_server_sessions_expire(void **state)
{
	struct seen s;
	chat_disc *w = disc(), *d1 = registered("api", "api-1", "tcp://a:1");
	char before[256], after[256], err[512];
	int64_t t0;
	(void)state;
	seen_init(&s);
	assert_int_equal(chat_disc_watch(w, "api", on_change, &s), 0);
	wait_seen(&s, "api-1", 0, 5000);
	assert_int_equal(chat_disc_node_path(d1, before, sizeof before), 0);
	assert_int_equal(chat_disc_sessions(d1), 1);

	assert_int_equal(zk_server_restart(&g_zk, 1, err, sizeof err), 0);
	t0 = chat_mono_ms();
	/* The cache keeps answering meanwhile. */
	assert_string_equal(listed(w, "api"), "api-1");
	while (chat_disc_sessions(d1) < 2 ||
	       chat_disc_node_path(d1, after, sizeof after) != 0) {
		assert_true(chat_mono_ms() - t0 < 4 * TIMEOUT_MS);
		usleep(50 * 1000);
	}
	wait_seen(&s, "api-1", 0, 4 * TIMEOUT_MS);
	/* The node is really there (the wiped server numbers from 0 again,
	 * so the path may well be the same). */
	{
		chat_disc *fresh = disc();
		chat_disc_entry e;
		assert_int_equal(chat_disc_list(fresh, "api", &e, 1, 5000), 1);
		assert_string_equal(e.node, after + 19);
		chat_disc_free(fresh);
	}
	assert_true(chat_disc_sessions(w) >= 2);
	chat_disc_free(d1);
	wait_seen(&s, "", 0, 5000);
	chat_disc_unwatch(w, on_change, &s);
	chat_disc_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_register_watch_load_leave),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_nobody_home),
	    cmocka_unit_test(test_bind_client_and_outage),
	    cmocka_unit_test(test_wiped_server_sessions_expire),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
