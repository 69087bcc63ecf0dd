/* The client frame codec as a client and the edge see it: round trips of
 * every request kind through the arena, truncated and garbage input, the
 * arena itself, JSON, UTF-8 validation, the map and the queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_arena.h"
#include "chat_buf.h"
#include "chat_json.h"
#include "chat_map.h"
#include "chat_queue.h"
#include "chat_util.h"
#include "client.pb-c.h"

static void test_frame_roundtrip(void **state)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__SendReq s = CHAT__SEND_REQ__INIT;
	Chat__ClientFrame *g;
	chat_arena *a = chat_arena_new();
	uint8_t *buf;
	size_t n;
	(void)state;
	f.req_id = 99;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_SEND;
	f.send = &s;
	s.channel_id = 12;
	s.client_msg_id = (char *)"abc";
	s.body = (char *)"héllo";
	buf = chat_arena_pack(a, &f.base, &n);
	assert_non_null(buf);
	g = (Chat__ClientFrame *)chat_arena_unpack(a, &chat__client_frame__descriptor,
	                                           buf, n);
	assert_non_null(g);
	assert_int_equal(g->req_id, 99);
	assert_int_equal(g->kind_case, CHAT__CLIENT_FRAME__KIND_SEND);
	assert_int_equal(g->send->channel_id, 12);
	assert_string_equal(g->send->body, "héllo");
	/* Every proper prefix that cuts a field is refused, never a crash. */
	for (size_t cut = 1; cut < n; cut++) {
		Chat__ClientFrame *h = (Chat__ClientFrame *)chat_arena_unpack(
		    a, &chat__client_frame__descriptor, buf, cut);
		if (h)
			assert_true(h->kind_case != CHAT__CLIENT_FRAME__KIND_SEND ||
			            cut == n);
	}
	/* Garbage. */
	assert_null(chat_arena_unpack(a, &chat__client_frame__descriptor,
	                              "\xff\xff\xff\xff\xff", 5));
	/* An empty frame is valid and has no kind. */
	g = (Chat__ClientFrame *)chat_arena_unpack(a, &chat__client_frame__descriptor,
	                                           "", 0);
	assert_non_null(g);
	assert_int_equal(g->kind_case, CHAT__CLIENT_FRAME__KIND__NOT_SET);
	/* An unknown field number (kind 99) decodes with no kind set. */
	g = (Chat__ClientFrame *)chat_arena_unpack(
	    a, &chat__client_frame__descriptor, "\x08\x05\x9a\x06\x00", 5);
	assert_non_null(g);
	assert_int_equal(g->req_id, 5);
	assert_int_equal(g->kind_case, CHAT__CLIENT_FRAME__KIND__NOT_SET);
	chat_arena_free(a);
}

static void test_arena(void **state)
{
	chat_arena *a = chat_arena_new();
	char *big;
	(void)state;
	for (int i = 0; i < 10000; i++) {
		char *p = chat_arena_printf(a, "item-%d", i);
		assert_non_null(p);
		assert_int_equal(((uintptr_t)p) % 16, 0);
	}
	big = chat_arena_alloc(a, 1 << 20);
	assert_non_null(big);
	memset(big, 1, 1 << 20);
	assert_string_equal(chat_arena_strndup(a, "abcdef", 3), "abc");
	chat_arena_reset(a);
	assert_string_equal(chat_arena_strdup(a, NULL), "");
	chat_arena_free(a);
	chat_arena_free(NULL);
}

static void test_json(void **state)
{
	char out[64];
	int64_t v;
	const char *doc = " { \"name\" : \"al\\u00e9\\n\", \"n\": -42, \"x\":[1,{\"y\":null}],"
	                  "\"f\": 1.5, \"t\": true } ";
	(void)state;
	assert_true(chat_json_valid(doc, strlen(doc)));
	assert_int_equal(chat_json_get_string(doc, strlen(doc), "name", out,
	                                      sizeof out), 5);
	assert_string_equal(out, "al\xc3\xa9\n");
	assert_int_equal(chat_json_get_int(doc, strlen(doc), "n", &v), 0);
	assert_int_equal(v, -42);
	assert_int_equal(chat_json_get_int(doc, strlen(doc), "f", &v), -2);
	assert_int_equal(chat_json_get_string(doc, strlen(doc), "n", out, sizeof out),
	                 -2);
	assert_int_equal(chat_json_get_string(doc, strlen(doc), "zz", out,
	                                      sizeof out), -1);
	assert_int_equal(chat_json_get_string(doc, strlen(doc), "name", out, 3), -3);
	assert_int_equal(chat_json_get_string("{\"a\":\"\\u0000\"}", 14, "a", out,
	                                      sizeof out), -3);
	{
		const char *bad[] = {"", "{", "{\"a\":}", "{\"a\" 1}", "[1,]",
		                     "{\"a\":1,}", "\"\\x\"", "01", "1.", "-",
		                     "{\"a\":\"\\ud800\"}", "nul", "{} x",
		                     "\"a\nb\""};
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
			assert_false(chat_json_valid(bad[i], strlen(bad[i])));
	}
	{
		char deep[200];
		memset(deep, '[', 100);
		memset(deep + 100, ']', 100);
		assert_false(chat_json_valid(deep, 200));
	}
	assert_int_equal(chat_json_quote("a\"b\\c\n\x01", out, sizeof out), 17);
	assert_string_equal(out, "\"a\\\"b\\\\c\\n\\u0001\"");
	assert_int_equal(chat_json_quote("abcdef", out, 4), -1);
}

static void test_utf8(void **state)
{
	(void)state;
	assert_true(chat_utf8_valid_text("hello, wörld ✓ 🎉\tx\n", strlen("hello, wörld ✓ 🎉\tx\n")));
	assert_false(chat_utf8_valid_text("a\0b", 3));
	assert_false(chat_utf8_valid_text("\x1b[2J", 4));
	assert_false(chat_utf8_valid_text("\xc3", 1));
	assert_false(chat_utf8_valid_text("\xc0\xaf", 2));      /* overlong */
	assert_false(chat_utf8_valid_text("\xed\xa0\x80", 3));  /* surrogate */
	assert_false(chat_utf8_valid_text("\xf4\x90\x80\x80", 4));
	assert_false(chat_utf8_valid_text("\xc2\x9b", 2));      /* C1 CSI */
	assert_true(chat_utf8_valid_text("", 0));
}

static void test_map(void **state)
{
	chat_u64map m;
	size_t it = 0, n = 0;
	uint64_t k;
	void *v;
	(void)state;
	chat_u64map_init(&m);
	for (uint64_t i = 1; i <= 5000; i++)
		assert_int_equal(chat_u64map_put(&m, i * 7919, (void *)(uintptr_t)i), 0);
	for (uint64_t i = 1; i <= 5000; i += 2)
		assert_ptr_equal(chat_u64map_del(&m, i * 7919), (void *)(uintptr_t)i);
	for (uint64_t i = 1; i <= 5000; i++)
		assert_ptr_equal(chat_u64map_get(&m, i * 7919),
		                 i % 2 ? NULL : (void *)(uintptr_t)i);
	while (chat_u64map_next(&m, &it, &k, &v))
		n++;
	assert_int_equal(n, 2500);
	assert_int_equal(m.len, 2500);
	assert_int_equal(chat_u64map_put(&m, 0, NULL), -1);
	chat_u64map_fini(&m);
}

struct item {
	chat_qnode node;
	int v;
};

static void test_queue_and_buf(void **state)
{
	chat_queue q;
	struct item it[3];
	chat_qnode *n;
	int expect = 0;
	chat_buf *b;
	(void)state;
	chat_queue_init(&q);
	for (int i = 0; i < 3; i++) {
		it[i].v = i;
		assert_int_equal(chat_queue_push(&q, &it[i].node), 0);
	}
	assert_int_equal(chat_queue_len(&q), 3);
	for (n = chat_queue_take_all(&q); n; n = n->next)
		assert_int_equal(CHAT_CONTAINER_OF(n, struct item, node)->v, expect++);
	assert_int_equal(expect, 3);
	chat_queue_close(&q);
	assert_int_equal(chat_queue_push(&q, &it[0].node), -1);
	assert_null(chat_queue_pop_wait(&q));
	chat_queue_fini(&q);

	b = chat_buf_copy("abc", 3);
	assert_memory_equal(chat_buf_data(b), "abc", 3);
	chat_buf_hold(b);
	chat_buf_rele(b);
	chat_buf_rele(b);
	chat_buf_rele(NULL);
}

static void test_be64(void **state)
{
	uint8_t k[8];
	(void)state;
	chat_put_be64(k, 0x0102030405060708ULL);
	assert_int_equal(k[0], 1);
	assert_int_equal(k[7], 8);
	assert_int_equal(chat_get_be64(k), 0x0102030405060708ULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_roundtrip),
		cmocka_unit_test(test_arena),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_queue_and_buf),
		cmocka_unit_test(test_be64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
