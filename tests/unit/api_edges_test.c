/* The api's edge set (svc/api/api_edges.c): least loaded first, what was
 * handed out since the last report counts, a new report resets it, ties
 * go to the first by id, entries without a public url are skipped, an
 * empty set picks nothing, the GET /v1/edges body, and the probe that
 * stops handing out an edge whose port refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_edges.h"

static void entry(chat_disc_entry *e, const char *id, const char *pub,
                  int64_t load)
{
	memset(e, 0, sizeof *e);
	snprintf(e->id, sizeof e->id, "%s", id);
	snprintf(e->pub, sizeof e->pub, "%s", pub);
	snprintf(e->rpc, sizeof e->rpc, "tcp://127.0.0.1:1");
	e->load = load;
}

static const char *pick(api_edges *s)
{
	static char id[64];
	char url[256];
	if (api_edges_pick(s, url, sizeof url, id, sizeof id) != 0)
		return "";
	return id;
}

static void test_least_loaded(void **state)
{
	api_edges *s = api_edges_new(1);
	chat_disc_entry e[4];
	int counts[3] = {0, 0, 0};
	(void)state;
	assert_non_null(s);
	assert_string_equal(pick(s), ""); /* empty */
	entry(&e[0], "edge-1", "ws://h:1/ws", 5);
	entry(&e[1], "edge-2", "ws://h:2/ws", 0);
	entry(&e[2], "edge-3", "ws://h:3/ws", 2);
	entry(&e[3], "edge-4", "", 0); /* no public url: skipped */
	assert_int_equal(api_edges_set(s, e, 4), 0);
	assert_int_equal(api_edges_count(s), 3);
	/* edge-2 (0) until it weighs as much as edge-3 (2), then both up to
	 * edge-1 (5), then all three in turn */
	assert_string_equal(pick(s), "edge-2");
	assert_string_equal(pick(s), "edge-2");
	assert_string_equal(pick(s), "edge-2"); /* 2 = 2: the first by id */
	assert_string_equal(pick(s), "edge-3");
	for (int i = 0; i < 20; i++) {
		const char *id = pick(s);
		counts[id[5] - '1']++;
	}
	/* then they take turns: load + handed ends at 11, 10, 10 */
	assert_int_equal(counts[0], 6);
	assert_int_equal(counts[1], 7);
	assert_int_equal(counts[2], 7);
	/* a report with a new load starts over: edge-1 reports 0 now */
	e[0].load = 0;
	assert_int_equal(api_edges_set(s, e, 3), 0);
	assert_string_equal(pick(s), "edge-1");
	/* an edge that leaves is not handed out */
	assert_int_equal(api_edges_set(s, &e[2], 1), 0);
	for (int i = 0; i < 5; i++)
		assert_string_equal(pick(s), "edge-3");
	assert_int_equal(api_edges_set(s, NULL, 0), 0);
	assert_string_equal(pick(s), "");
	api_edges_free(s);
	api_edges_free(NULL);
}

static void test_json(void **state)
{
	api_edges *s = api_edges_new(1), *st = api_edges_new(0);
	chat_disc_entry e[2];
	size_t len = 0;
	char *b;
	(void)state;
	entry(&e[0], "edge-1", "ws://h:1/ws", 3);
	entry(&e[1], "edge-\"2", "ws://h:2/ws", 0);
	assert_int_equal(api_edges_set(s, e, 2), 0);
	assert_int_equal(api_edges_set(st, e, 1), 0);
	b = api_edges_json(s, 16, &len);
	assert_non_null(b);
	assert_int_equal(len, strlen(b + 16));
	assert_string_equal(b + 16,
	                    "{\"edges\":[{\"id\":\"edge-1\",\"url\":"
	                    "\"ws://h:1/ws\",\"load\":3},{\"id\":\"edge-\\\"2\","
	                    "\"url\":\"ws://h:2/ws\",\"load\":0}]}");
	free(b);
	b = api_edges_json(st, 0, &len);
	assert_string_equal(b, "{\"edges\":[{\"id\":\"edge-1\",\"url\":"
	                       "\"ws://h:1/ws\"}]}");
	free(b);
	api_edges_set(st, NULL, 0);
	b = api_edges_json(st, 0, &len);
	assert_string_equal(b, "{\"edges\":[]}");
	free(b);
	api_edges_free(s);
	api_edges_free(st);
}

/* A TCP listener on 127.0.0.1 (port into *port), or -1. */
static int listener(int *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* An edge whose RPC port refuses (its process died) is neither handed out
 * nor listed once probed; it is again when it answers; an address that is not
 * tcp:// gets no verdict; when every edge is down, all are handed
 * out as if none were. */
static void test_probe(void **state)
{
	api_edges *s = api_edges_new(1);
	chat_disc_entry e[3];
	int p1, p2, p3, l1, l2, l3;
	size_t len;
	char *b;
	(void)state;

	l1 = listener(&p1);
	l2 = listener(&p2);
	assert_true(l1 >= 0 && l2 >= 0);
	close(l2); /* nobody listens on p2 any more: refused */
	entry(&e[0], "edge-1", "ws://h:1/ws", 5);
	entry(&e[1], "edge-2", "ws://h:2/ws", 0);
	entry(&e[2], "edge-3", "ws://h:3/ws", 9);
	snprintf(e[0].rpc, sizeof e[0].rpc, "tcp://127.0.0.1:%d", p1);
	snprintf(e[1].rpc, sizeof e[1].rpc, "tcp://127.0.0.1:%d", p2);
	snprintf(e[2].rpc, sizeof e[2].rpc, "inproc://edge-3");
	assert_int_equal(api_edges_set(s, e, 3), 0);
	assert_string_equal(pick(s), "edge-2"); /* not probed yet */
	assert_int_equal(api_edges_probe(s, 1000), 1);
	assert_true(api_edges_down(s, "edge-2"));
	assert_false(api_edges_down(s, "edge-1"));
	assert_false(api_edges_down(s, "edge-3")); /* no verdict */
	for (int i = 0; i < 10; i++)
		assert_string_not_equal(pick(s), "edge-2");
	b = api_edges_json(s, 0, &len);
	assert_non_null(b);
	assert_null(strstr(b, "edge-2"));
	assert_non_null(strstr(b, "edge-1"));
	free(b);
	/* a new load report keeps the verdict */
	e[1].load = 1;
	assert_int_equal(api_edges_set(s, e, 3), 0);
	assert_true(api_edges_down(s, "edge-2"));
	/* edge-2 comes back at another address: up until probed */
	l3 = listener(&p3);
	assert_true(l3 >= 0);
	snprintf(e[1].rpc, sizeof e[1].rpc, "tcp://127.0.0.1:%d", p3);
	assert_int_equal(api_edges_set(s, e, 3), 0);
	assert_false(api_edges_down(s, "edge-2"));
	assert_int_equal(api_edges_probe(s, 1000), 0);
	assert_string_equal(pick(s), "edge-2");
	/* everything down: all are handed out (the probe may be wrong) */
	close(l1);
	close(l3);
	assert_int_equal(api_edges_set(s, e, 2), 0);
	assert_int_equal(api_edges_probe(s, 1000), 2);
	assert_true(api_edges_down(s, "edge-1"));
	assert_string_not_equal(pick(s), "");
	b = api_edges_json(s, 0, &len);
	assert_non_null(strstr(b, "edge-1"));
	assert_non_null(strstr(b, "edge-2"));
	free(b);
	api_edges_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_least_loaded),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
