/* The RPC layer: dispatch by method, status codes and reasons, deadlines,
 * an absent server, concurrency, the Admin service, malformed envelopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat_rpc.h"
#include "chat_util.h"
#include "edge.pb-c.h"
#include "rpc.pb-c.h"
#include "store.pb-c.h"

/* A fake chat.Edge: Kick answers strlen(reason), fails on "" and sleeps
 * on "slow". Deliver is left unimplemented. */
static int kick(void *arg, chat_rpc_call *call)
{
	const Chat__KickReq *in = (const Chat__KickReq *)call->in;
	Chat__KickReply *out = (Chat__KickReply *)call->out;
	(void)arg;
	if (!in->reason[0])
		return chat_rpc_fail(call, CHAT_NOT_FOUND, "no reason for %llu",
		                     (unsigned long long)in->user_id);
	if (!strcmp(in->reason, "slow"))
		usleep(400 * 1000);
	out->sessions = (uint32_t)(strlen(in->reason) + in->user_id);
	return CHAT_OK;
}

static const chat_rpc_fn edge_fns[] = {NULL, kick};

static chat_rpc_server *start_server(const char *url, int *port)
{
	char err[256];
	chat_rpc_server *s = chat_rpc_server_new("edge", "edge-test", 4);
	assert_non_null(s);
	assert_int_equal(chat_rpc_server_add(s, &chat__edge__descriptor,
	                                     CHAT_RPC_TABLE(edge_fns), NULL), 0);
	assert_int_equal(chat_rpc_server_listen(s, url, port, err, sizeof err), 0);
	assert_int_equal(chat_rpc_server_start(s), 0);
	return s;
}

static int call_kick(chat_rpc_client *c, uint64_t user, const char *reason,
                     int timeout, uint32_t *sessions, char *why, size_t wl)
{
	Chat__KickReq req = CHAT__KICK_REQ__INIT;
	ProtobufCMessage *out = NULL;
	chat_arena *a = chat_arena_new();
	int st;
	req.user_id = user;
	req.reason = (char *)reason;
	st = chat_rpc_invoke(c, &chat__edge__descriptor, "Kick", &req.base, a,
	                     &out, timeout, why, wl);
	if (st == CHAT_OK)
		*sessions = ((Chat__KickReply *)out)->sessions;
	chat_arena_free(a);
	return st;
}

static void test_roundtrip_and_errors(void **state)
{
	char err[256], why[256];
	uint32_t n = 0;
	chat_rpc_server *s = start_server("inproc://rpc-test-1", NULL);
	chat_rpc_client *c = chat_rpc_client_new("inproc://rpc-test-1", err,
	                                         sizeof err);
	(void)state;
	assert_non_null(c);
	assert_int_equal(call_kick(c, 3, "hello", 2000, &n, why, sizeof why),
	                 CHAT_OK);
	assert_int_equal(n, 8);
	assert_int_equal(call_kick(c, 42, "", 2000, &n, why, sizeof why),
	                 CHAT_NOT_FOUND);
	assert_string_equal(why, "no reason for 42");
	/* Deliver has no handler: UNIMPLEMENTED from the server. */
	{
		Chat__EventBatch b = CHAT__EVENT_BATCH__INIT;
		ProtobufCMessage *out = NULL;
		chat_arena *a = chat_arena_new();
		assert_int_equal(chat_rpc_invoke(c, &chat__edge__descriptor,
		                                 "Deliver", &b.base, a, &out,
		                                 2000, why, sizeof why),
		                 CHAT_UNIMPLEMENTED);
		/* A service the server does not have. */
		Chat__UserReq u = CHAT__USER_REQ__INIT;
		assert_int_equal(chat_rpc_invoke(c, &chat__store__descriptor,
		                                 "ListChannels", &u.base, a,
		                                 &out, 2000, why, sizeof why),
		                 CHAT_UNIMPLEMENTED);
		/* A method name the descriptor does not have: refused locally. */
		assert_int_equal(chat_rpc_invoke(c, &chat__edge__descriptor,
		                                 "kick", &b.base, a, &out, 2000,
		                                 why, sizeof why),
		                 CHAT_INTERNAL);
		chat_arena_free(a);
	}
	chat_rpc_client_free(c);
	chat_rpc_server_free(s);
}

static void test_deadline(void **state)
{
	char err[256], why[256];
	uint32_t n = 0;
	chat_rpc_server *s = start_server("inproc://rpc-test-2", NULL);
	chat_rpc_client *c = chat_rpc_client_new("inproc://rpc-test-2", err,
	                                         sizeof err);
	int64_t t0 = chat_mono_us();
	(void)state;
	assert_int_equal(call_kick(c, 1, "slow", 100, &n, why, sizeof why),
	                 CHAT_DEADLINE_EXCEEDED);
	assert_true(chat_mono_us() - t0 < 350 * 1000);
	/* The server still answers afterwards. */
	assert_int_equal(call_kick(c, 1, "ok", 2000, &n, why, sizeof why), CHAT_OK);
	chat_rpc_client_free(c);
	chat_rpc_server_free(s);
}

static void test_no_server_then_server(void **state)
{
	char err[256], why[256];
	uint32_t n = 0;
	int port = 0;
	chat_rpc_client *c;
	chat_rpc_server *s;
	(void)state;
	c = chat_rpc_client_new("inproc://rpc-test-3", err, sizeof err);
	assert_non_null(c);
	assert_int_equal(call_kick(c, 1, "x", 150, &n, why, sizeof why),
	                 CHAT_UNAVAILABLE);
	s = start_server("inproc://rpc-test-3", NULL);
	assert_int_equal(call_kick(c, 1, "x", 3000, &n, why, sizeof why), CHAT_OK);
	chat_rpc_client_free(c);
	chat_rpc_server_free(s);

	/* tcp with a port picked by the kernel */
	s = start_server("tcp://127.0.0.1:0", &port);
	assert_true(port > 0);
	{
		char url[64];
		snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
		c = chat_rpc_client_new(url, err, sizeof err);
		assert_non_null(c);
		assert_int_equal(call_kick(c, 2, "abc", 3000, &n, why, sizeof why),
		                 CHAT_OK);
		assert_int_equal(n, 5);
		chat_rpc_client_free(c);
	}
	chat_rpc_server_free(s);
	assert_null(chat_rpc_client_new("bogus://x", err, sizeof err));
}

struct par {
	chat_rpc_client *c;
	int id, ok;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	char why[128], reason[32];
	for (int i = 0; i < 200; i++) {
		uint32_t n = 0;
		snprintf(reason, sizeof reason, "%*s", 1 + (p->id + i) % 20, "r");
		if (call_kick(p->c, (uint64_t)p->id, reason, 5000, &n, why,
		              sizeof why) == CHAT_OK &&
		    n == strlen(reason) + (uint32_t)p->id)
			p->ok++;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	char err[256];
	chat_rpc_server *s = start_server("inproc://rpc-test-4", NULL);
	chat_rpc_client *c = chat_rpc_client_new("inproc://rpc-test-4", err,
	                                         sizeof err);
	pthread_t t[8];
	struct par p[8];
	(void)state;
	for (int i = 0; i < 8; i++) {
		p[i].c = c;
		p[i].id = i + 1;
		p[i].ok = 0;
		pthread_create(&t[i], NULL, par_main, &p[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(p[i].ok, 200);
	}
	assert_true(chat_rpc_server_calls(s) >= 1600);
	chat_rpc_client_free(c);
	chat_rpc_server_free(s);
}

static void test_health_and_garbage(void **state)
{
	char err[256], why[256];
	chat_rpc_server *s = start_server("inproc://rpc-test-5", NULL);
	chat_rpc_client *c = chat_rpc_client_new("inproc://rpc-test-5", err,
	                                         sizeof err);
	Chat__Empty e = CHAT__EMPTY__INIT;
	ProtobufCMessage *out = NULL;
	chat_arena *a = chat_arena_new();
	nng_socket raw;
	nng_msg *m;
	Chat__RpcReply *rep;
	(void)state;
	assert_int_equal(chat_rpc_invoke(c, &chat__admin__descriptor, "Health",
	                                 &e.base, a, &out, 2000, why, sizeof why),
	                 CHAT_OK);
	assert_string_equal(((Chat__HealthReply *)out)->service, "edge");
	assert_string_equal(((Chat__HealthReply *)out)->instance, "edge-test");

	/* Garbage and a valid envelope with a garbage body, on a raw socket. */
	assert_int_equal(nng_req0_open(&raw), 0);
	assert_int_equal(nng_dial(raw, "inproc://rpc-test-5", NULL, 0), 0);
	nng_socket_set_ms(raw, NNG_OPT_RECVTIMEO, 2000);
	assert_int_equal(nng_send(raw, (char[]){"\xff\xff\xff\xff"}, 4, 0), 0);
	assert_int_equal(nng_recvmsg(raw, &m, 0), 0);
	rep = chat__rpc_reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	assert_non_null(rep);
	assert_int_equal(rep->code, CHAT_INVALID_ARGUMENT);
	chat__rpc_reply__free_unpacked(rep, NULL);
	nng_msg_free(m);
	{
		Chat__RpcRequest req = CHAT__RPC_REQUEST__INIT;
		uint8_t buf[256];
		size_t n;
		req.service = (char *)"chat.Edge";
		req.method = (char *)"Kick";
		req.body.data = (uint8_t *)"\x0a\xff";
		req.body.len = 2;
		req.call_id = 77;
		n = chat__rpc_request__pack(&req, buf);
		assert_int_equal(nng_send(raw, buf, n, 0), 0);
		assert_int_equal(nng_recvmsg(raw, &m, 0), 0);
		rep = chat__rpc_reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
		assert_non_null(rep);
		assert_int_equal(rep->code, CHAT_INVALID_ARGUMENT);
		assert_int_equal(rep->call_id, 77);
		chat__rpc_reply__free_unpacked(rep, NULL);
		nng_msg_free(m);
		/* An expired deadline is refused without running the method. */
		req.body.len = 0;
		req.deadline_ms = chat_now_ms() - 1000;
		n = chat__rpc_request__pack(&req, buf);
		assert_int_equal(nng_send(raw, buf, n, 0), 0);
		assert_int_equal(nng_recvmsg(raw, &m, 0), 0);
		rep = chat__rpc_reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
		assert_int_equal(rep->code, CHAT_DEADLINE_EXCEEDED);
		chat__rpc_reply__free_unpacked(rep, NULL);
		nng_msg_free(m);
	}
	nng_close(raw);
	chat_arena_free(a);
	chat_rpc_client_free(c);
	chat_rpc_server_free(s);
}

/* A server freed right after it started must not hang (nng 1.5.2 race
 * between a context opened on a new thread and the socket closing). */
static void test_start_then_free(void **state)
{
	(void)state;
	for (int i = 0; i < 500; i++) {
		chat_rpc_server *s = start_server("inproc://rpc-test-6", NULL);
		chat_rpc_server_free(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_and_errors),
		cmocka_unit_test(test_start_then_free),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_no_server_then_server),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_health_and_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
