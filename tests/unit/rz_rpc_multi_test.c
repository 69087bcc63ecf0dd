/* chat_rpc_client with a set of URLs (chat_rpc_client_set_urls): calls
 * spread over the servers of the set, a removed server gets no more
 * calls, a killed server costs at most the deadline of the calls it had,
 * an empty or unconnected set fails at once, a new URL gets a short
 * grace to connect. Servers are real nng REP sockets on tcp loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "edge.pb-c.h"

/* A fake chat.Edge whose Kick answers the server's number in sessions,
 * after sleeping user_id milliseconds. */
struct srv {
	int idx;
	atomic_int calls;
	chat_rpc_server *s;
	char url[64];
};

static int kick(void *arg, chat_rpc_call *call)
{
	struct srv *v = arg;
	const Chat__KickReq *in = (const Chat__KickReq *)call->in;
	Chat__KickReply *out = (Chat__KickReply *)call->out;
	atomic_fetch_add(&v->calls, 1);
	if (in->user_id)
		usleep((useconds_t)(in->user_id * 1000));
	out->sessions = (uint32_t)v->idx;
	return CHAT_OK;
}

static const chat_rpc_fn edge_fns[] = {NULL, kick};

/* nng 1.5.2 now and then keeps one request message for ever when a
 * connection closes under load (a dialer removed, a server gone): the
 * message was handed to nng (nng_ctx_send succeeded), so it is nng's to
 * free. LeakSanitizer reads this in ASan builds; common_rpc_test checks
 * chat_rpc_invoke's own frees without it. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libnng.so\n";
}

static void srv_start(struct srv *v, int idx)
{
	char err[256];
	int port = 0;
	v->idx = idx;
	atomic_init(&v->calls, 0);
	v->s = chat_rpc_server_new("edge", "rz-multi", 4);
	assert_non_null(v->s);
	assert_int_equal(chat_rpc_server_add(v->s, &chat__edge__descriptor,
	                                     CHAT_RPC_TABLE(edge_fns), v),
	                 0);
	assert_int_equal(chat_rpc_server_listen(v->s, "tcp://127.0.0.1:0",
	                                        &port, err, sizeof err),
	                 0);
	assert_int_equal(chat_rpc_server_start(v->s), 0);
	snprintf(v->url, sizeof v->url, "tcp://127.0.0.1:%d", port);
}

static void srv_stop(struct srv *v)
{
	chat_rpc_server_free(v->s);
	v->s = NULL;
}

/* Kick: returns the status; *who the server that answered. */
static int call(chat_rpc_client *c, uint64_t sleep_ms, int timeout, int *who)
{
	Chat__KickReq req = CHAT__KICK_REQ__INIT;
	ProtobufCMessage *out = NULL;
	chat_arena *a = chat_arena_new();
	char why[256];
	int st;
	req.user_id = sleep_ms;
	req.reason = (char *)"x";
	st = chat_rpc_invoke(c, &chat__edge__descriptor, "Kick", &req.base, a,
	                     &out, timeout, why, sizeof why);
	if (who)
		*who = st == CHAT_OK ? (int)((Chat__KickReply *)out)->sessions
		                     : -1;
	chat_arena_free(a);
	return st;
}

static void wait_connected(chat_rpc_client *c, size_t n)
{
	int64_t deadline = chat_mono_ms() + 5000;
	size_t got = 0;
	for (;;) {
		chat_rpc_client_state(c, NULL, &got);
		if (got == n)
			return;
		if (chat_mono_ms() > deadline)
			fail_msg("%zu connections, want %zu", got, n);
		usleep(5000);
	}
}

static void test_empty_set_fails_at_once(void **state)
{
	char err[256];
	chat_rpc_client *c = chat_rpc_client_new(NULL, err, sizeof err);
	int64_t t0;
	size_t n = 9;
	(void)state;
	assert_non_null(c);
	chat_rpc_client_state(c, &n, NULL);
	assert_int_equal(n, 0);
	t0 = chat_mono_ms();
	assert_int_equal(call(c, 0, 3000, NULL), CHAT_UNAVAILABLE);
	assert_true(chat_mono_ms() - t0 < 100);
	assert_int_equal(chat_rpc_client_set_urls(c, NULL, 0), 0);
	assert_int_equal(call(c, 0, 3000, NULL), CHAT_UNAVAILABLE);
	assert_true(chat_mono_ms() - t0 < 200);
	/* A bad URL is left out and reported. */
	{
		const char *bad[] = {"bogus://nowhere"};
		assert_int_equal(chat_rpc_client_set_urls(c, bad, 1), -1);
		chat_rpc_client_state(c, &n, NULL);
		assert_int_equal(n, 0);
	}
	chat_rpc_client_free(c);
}

/* Two servers behind one client; then one removed from the set. */
static void test_spread_and_remove(void **state)
{
	struct srv a, b;
	char err[256];
	chat_rpc_client *c;
	int seen[2] = {0, 0}, who;
	(void)state;
	srv_start(&a, 0);
	srv_start(&b, 1);
	c = chat_rpc_client_new(NULL, err, sizeof err);
	assert_non_null(c);
	{
		const char *urls[] = {a.url, b.url, a.url}; /* a duplicate */
		size_t n = 0;
		assert_int_equal(chat_rpc_client_set_urls(c, urls, 3), 0);
		chat_rpc_client_state(c, &n, NULL);
		assert_int_equal(n, 2);
	}
	wait_connected(c, 2);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(call(c, 0, 2000, &who), CHAT_OK);
		assert_true(who == 0 || who == 1);
		seen[who]++;
	}
	assert_true(seen[0] > 10 && seen[1] > 10);

	/* Remove a: every call keeps succeeding, on b. */
	{
		const char *urls[] = {b.url};
		int before;
		assert_int_equal(chat_rpc_client_set_urls(c, urls, 1), 0);
		wait_connected(c, 1);
		before = atomic_load(&a.calls);
		for (int i = 0; i < 50; i++) {
			assert_int_equal(call(c, 0, 2000, &who), CHAT_OK);
			assert_int_equal(who, 1);
		}
		assert_int_equal(atomic_load(&a.calls), before);
	}
	/* And back: a is used again. */
	{
		const char *urls[] = {b.url, a.url};
		int before = atomic_load(&a.calls);
		assert_int_equal(chat_rpc_client_set_urls(c, urls, 2), 0);
		wait_connected(c, 2);
		for (int i = 0; i < 50; i++)
			assert_int_equal(call(c, 0, 2000, NULL), CHAT_OK);
		assert_true(atomic_load(&a.calls) > before);
	}
	chat_rpc_client_free(c);
	srv_stop(&a);
	srv_stop(&b);
}

struct load {
	chat_rpc_client *c;
	atomic_int stop;
	atomic_int ok, failed, slow_failure;
	int timeout_ms;
	int64_t last_fail_ms;
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	while (!atomic_load(&l->stop)) {
		int64_t t0 = chat_mono_ms();
		int st = call(l->c, 20, l->timeout_ms, NULL);
		int64_t took = chat_mono_ms() - t0;
		if (st == CHAT_OK) {
			atomic_fetch_add(&l->ok, 1);
			continue;
		}
		atomic_fetch_add(&l->failed, 1);
		l->last_fail_ms = chat_mono_ms();
		if ((st != CHAT_DEADLINE_EXCEEDED && st != CHAT_UNAVAILABLE) ||
		    took > l->timeout_ms + 300)
			atomic_fetch_add(&l->slow_failure, 1);
	}
	return NULL;
}

/* A server dies under load: calls in flight to it fail by their deadline
 * at worst (nng moves them to the other server when the pipe closes),
 * later calls succeed on the survivor; then the last one dies and calls
 * fail at once. */
static void test_server_killed(void **state)
{
	struct srv a, b;
	struct load l;
	pthread_t t[4];
	char err[256];
	int who, ok_before;
	int64_t t0;
	(void)state;
	srv_start(&a, 0);
	srv_start(&b, 1);
	memset(&l, 0, sizeof l);
	l.c = chat_rpc_client_new(NULL, err, sizeof err);
	l.timeout_ms = 500;
	assert_non_null(l.c);
	{
		const char *urls[] = {a.url, b.url};
		assert_int_equal(chat_rpc_client_set_urls(l.c, urls, 2), 0);
	}
	wait_connected(l.c, 2);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, load_main, &l), 0);
	usleep(200 * 1000);
	assert_true(atomic_load(&a.calls) > 0 && atomic_load(&b.calls) > 0);
	srv_stop(&a); /* in-process "kill": its connections close */
	t0 = chat_mono_ms();
	usleep(700 * 1000); /* beyond the deadline of anything in flight */
	ok_before = atomic_load(&l.ok);
	usleep(300 * 1000);
	atomic_store(&l.stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&l.slow_failure), 0);
	/* Failures, if any, came within one deadline of the kill. */
	if (atomic_load(&l.failed))
		assert_true(l.last_fail_ms - t0 <= l.timeout_ms + 300);
	assert_true(atomic_load(&l.ok) > ok_before); /* still serving */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(call(l.c, 0, 2000, &who), CHAT_OK);
		assert_int_equal(who, 1);
	}

	/* The last server goes: no connection left, calls fail at once. */
	srv_stop(&b);
	wait_connected(l.c, 0);
	t0 = chat_mono_ms();
	assert_int_equal(call(l.c, 0, 3000, NULL), CHAT_UNAVAILABLE);
	assert_true(chat_mono_ms() - t0 < 100);
	chat_rpc_client_free(l.c);
}

/* A URL just added gets CHAT_RPC_CONNECT_GRACE_MS to connect: a live
 * server is used at once, a dead address fails after the grace, well
 * before a long timeout. */
static void test_connect_grace(void **state)
{
	struct srv a, dead;
	char err[256], dead_url[64];
	chat_rpc_client *c;
	int64_t t0, took;
	int who;
	(void)state;
	srv_start(&dead, 9);
	chat_strlcpy(dead_url, dead.url, sizeof dead_url);
	srv_stop(&dead); /* a port nobody listens on */
	srv_start(&a, 0);
	c = chat_rpc_client_new(NULL, err, sizeof err);
	assert_non_null(c);
	{
		const char *urls[] = {a.url};
		assert_int_equal(chat_rpc_client_set_urls(c, urls, 1), 0);
	}
	/* No wait_connected: the first call waits for the connection. */
	assert_int_equal(call(c, 0, 2000, &who), CHAT_OK);
	assert_int_equal(who, 0);
	{
		const char *urls[] = {dead_url};
		assert_int_equal(chat_rpc_client_set_urls(c, urls, 1), 0);
	}
	wait_connected(c, 0);
	t0 = chat_mono_ms();
	assert_int_equal(call(c, 0, 10000, NULL), CHAT_UNAVAILABLE);
	took = chat_mono_ms() - t0;
	assert_true(took <= CHAT_RPC_CONNECT_GRACE_MS + 200);
	/* Once the grace is over: at once. */
	t0 = chat_mono_ms();
	assert_int_equal(call(c, 0, 10000, NULL), CHAT_UNAVAILABLE);
	assert_true(chat_mono_ms() - t0 < 100);
	/* A short timeout bounds the grace too. */
	{
		const char *urls[] = {dead_url, "tcp://127.0.0.1:1"};
		assert_int_equal(chat_rpc_client_set_urls(c, urls, 2), 0);
	}
	t0 = chat_mono_ms();
	assert_int_equal(call(c, 0, 150, NULL), CHAT_UNAVAILABLE);
	took = chat_mono_ms() - t0;
	assert_true(took >= 100 && took < 400);
	chat_rpc_client_free(c);
	srv_stop(&a);
}

/* A client made with one URL keeps its old behaviour (waits for the
 * server until the timeout) until it is given a set. */
static void test_single_url_client_then_set(void **state)
{
	struct srv a, b;
	char err[256];
	chat_rpc_client *c;
	int who;
	(void)state;
	srv_start(&a, 0);
	srv_start(&b, 1);
	c = chat_rpc_client_new(a.url, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(call(c, 0, 2000, &who), CHAT_OK);
	assert_int_equal(who, 0);
	{
		const char *urls[] = {b.url};
		assert_int_equal(chat_rpc_client_set_urls(c, urls, 1), 0);
	}
	wait_connected(c, 1);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(call(c, 0, 2000, &who), CHAT_OK);
		assert_int_equal(who, 1);
	}
	chat_rpc_client_free(c);
	srv_stop(&a);
	srv_stop(&b);
}

/* set_urls while calls run on other threads. */
static void test_set_urls_under_calls(void **state)
{
	struct srv a, b;
	struct load l;
	pthread_t t[3];
	char err[256];
	(void)state;
	srv_start(&a, 0);
	srv_start(&b, 1);
	memset(&l, 0, sizeof l);
	l.c = chat_rpc_client_new(NULL, err, sizeof err);
	l.timeout_ms = 1000;
	{
		const char *urls[] = {a.url, b.url};
		assert_int_equal(chat_rpc_client_set_urls(l.c, urls, 2), 0);
	}
	wait_connected(l.c, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, load_main, &l), 0);
	for (int i = 0; i < 40; i++) {
		const char *ab[] = {a.url, b.url}, *ba[] = {b.url};
		if (i % 2)
			chat_rpc_client_set_urls(l.c, ab, 2);
		else
			chat_rpc_client_set_urls(l.c, ba, 1);
		usleep(10 * 1000);
	}
	atomic_store(&l.stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&l.slow_failure), 0);
	assert_true(atomic_load(&l.ok) > 20);
	chat_rpc_client_free(l.c);
	srv_stop(&a);
	srv_stop(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_set_fails_at_once),
	    cmocka_unit_test(test_spread_and_remove),
	    cmocka_unit_test(test_server_killed),
	    cmocka_unit_test(test_connect_grace),
	    cmocka_unit_test(test_single_url_client_then_set),
	    cmocka_unit_test(test_set_urls_under_calls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
