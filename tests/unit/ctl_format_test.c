/* chatctl's output as units: the table (alignment, UTF-8, control
 * characters), the JSON writer (escaping, invalid UTF-8, always valid),
 * durations and times, and every report in both forms with the exit
 * code it returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_json.h"
#include "chat_status.h"
#include "ctl.h"

/* Capture what f receives. */
struct cap {
	FILE *f;
	char *buf;
	size_t len;
};

static void cap_open(struct cap *c)
{
	c->buf = NULL;
	c->len = 0;
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
}

/* Close and return the text (free it). */
static char *cap_close(struct cap *c)
{
	fclose(c->f);
	return c->buf;
}

static void assert_json(const char *s)
{
	size_t n = strlen(s);
	assert_true(n > 1 && s[n - 1] == '\n');
	if (!chat_json_valid(s, n - 1))
		fail_msg("not valid JSON: %s", s);
}

static void test_table(void **state)
{
	static const char *const heads[] = {"ID", "NAME", "N"};
	const char *r1[] = {"1", "général", "5"};
	const char *r2[] = {"1234", "a\tb\nc\x7f", "12"};
	const char *r3[] = {"7", NULL, "0"};
	struct cap c;
	char *s;
	ctl_table *t = ctl_table_new(3, heads, 1u << 2);
	(void)state;

	assert_non_null(t);
	assert_int_equal(ctl_table_add(t, r1), 0);
	assert_int_equal(ctl_table_add(t, r2), 0);
	assert_int_equal(ctl_table_add(t, r3), 0);
	cap_open(&c);
	ctl_table_print(t, c.f);
	s = cap_close(&c);
	/* "général" is 7 columns wide though 9 bytes; the last column
	 * right-aligned; control characters shown as '?' */
	assert_string_equal(s, "ID    NAME      N\n"
	                       "1     général   5\n"
	                       "1234  a?b?c?   12\n"
	                       "7     -         0\n");
	free(s);
	ctl_table_free(t);
	ctl_table_free(NULL);
	assert_null(ctl_table_new(0, heads, 0));
	assert_null(ctl_table_new(9, heads, 0));
}

static void test_json_writer(void **state)
{
	struct cap c;
	ctl_json j;
	char *s;
	(void)state;

	cap_open(&c);
	ctl_json_init(&j, c.f);
	ctl_json_obj(&j, NULL);
	ctl_json_str(&j, "s", "q\"b\\s/\n\t\x01\x7f é €");
	ctl_json_str(&j, "bad",
	             "a\xff"
	             "b\xc3"
	             "c\xed\xa0\x80"
	             "d\xf0\x9f\x98\x80");
	ctl_json_int(&j, "neg", -5);
	ctl_json_uint(&j, "big", UINT64_MAX);
	ctl_json_bool(&j, "t", 1);
	ctl_json_arr(&j, "a");
	ctl_json_int(&j, NULL, 1);
	ctl_json_obj(&j, NULL);
	ctl_json_obj_end(&j);
	ctl_json_arr(&j, NULL);
	ctl_json_arr_end(&j);
	ctl_json_str(&j, NULL, NULL);
	ctl_json_arr_end(&j);
	ctl_json_obj(&j, "empty");
	ctl_json_obj_end(&j);
	ctl_json_obj_end(&j);
	ctl_json_end(&j);
	s = cap_close(&c);
	assert_string_equal(
	    s, "{\"s\":\"q\\\"b\\\\s/\\n\\t\\u0001\\u007f é €\","
	       "\"bad\":"
	       "\"a\\ufffdb\\ufffdc\\ufffd\\ufffd\\ufffdd\xf0\x9f\x98\x80\","
	       "\"neg\":-5,\"big\":18446744073709551615,\"t\":true,"
	       "\"a\":[1,{},[],\"\"],\"empty\":{}}\n");
	assert_json(s);
	free(s);
}

static void test_durations_times(void **state)
{
	char b[64];
	(void)state;
	ctl_fmt_duration(b, sizeof b, 0);
	assert_string_equal(b, "0ms");
	ctl_fmt_duration(b, sizeof b, -5);
	assert_string_equal(b, "0ms");
	ctl_fmt_duration(b, sizeof b, 999);
	assert_string_equal(b, "999ms");
	ctl_fmt_duration(b, sizeof b, 12500);
	assert_string_equal(b, "12s");
	ctl_fmt_duration(b, sizeof b, 307000);
	assert_string_equal(b, "5m07s");
	ctl_fmt_duration(b, sizeof b, 3723000);
	assert_string_equal(b, "1h02m03s");
	ctl_fmt_duration(b, sizeof b,
	                 (3 * 86400 + 4 * 3600 + 5 * 60 + 9) * 1000LL);
	assert_string_equal(b, "3d04h05m");
	ctl_fmt_time(b, sizeof b, 1735787045123LL);
	assert_string_equal(b, "2025-01-02 03:04:05Z");
	ctl_fmt_time(b, sizeof b, 0);
	assert_string_equal(b, "-");
}

static void test_status_words(void **state)
{
	(void)state;
	assert_string_equal(ctl_status_word(CHAT_OK), "ok");
	assert_string_equal(ctl_status_word(CHAT_UNAVAILABLE), "unreachable");
	assert_string_equal(ctl_status_word(CHAT_DEADLINE_EXCEEDED),
	                    "unreachable");
	assert_string_equal(ctl_status_word(CHAT_UNIMPLEMENTED),
	                    "unimplemented");
	assert_string_equal(ctl_status_word(CHAT_NOT_FOUND), "not_found");
	assert_string_equal(ctl_status_word(99), "unknown");
	assert_string_equal(ctl_status_word(-1), "unknown");
}

/* ---- reports ---- */

static Chat__Counter *counter(const char *name, int64_t v)
{
	Chat__Counter *c = malloc(sizeof *c);
	chat__counter__init(c);
	c->name = (char *)name;
	c->value = v;
	return c;
}

static void inst(ctl_inst *in, const char *svc, const char *id, const char *rpc,
                 int status)
{
	memset(in, 0, sizeof *in);
	strcpy(in->service, svc);
	strcpy(in->id, id);
	strcpy(in->rpc, rpc);
	strcpy(in->version, "0.1.0");
	in->called = 1;
	in->status = status;
	if (status != CHAT_OK)
		strcpy(in->reason, "no answer");
}

static void free_counters(ctl_inst *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < v[i].n_counters; k++)
			free(v[i].counters[k]);
		free(v[i].counters);
	}
}

/* Three edges (one down) and a store, with counters. */
static void fleet(ctl_inst v[4])
{
	inst(&v[0], "edge", "edge-1", "tcp://127.0.0.1:7001", CHAT_OK);
	inst(&v[1], "edge", "edge-2", "tcp://127.0.0.1:7002", CHAT_OK);
	inst(&v[2], "edge", "edge-3", "tcp://127.0.0.1:7003",
	     CHAT_DEADLINE_EXCEEDED);
	inst(&v[3], "store", "store-1", "tcp://127.0.0.1:7101", CHAT_OK);
	strcpy(v[0].node, "edge-1-0000000001");
	v[0].load = 12;
	v[0].pid = 4321;
	v[0].uptime_ms = 3723000;
	v[1].uptime_ms = 5000;
	v[3].uptime_ms = 90061000;
	v[0].n_counters = 2;
	v[0].counters = malloc(2 * sizeof *v[0].counters);
	v[0].counters[0] = counter("sessions", 12);
	v[0].counters[1] = counter("sends", 100);
	v[1].n_counters = 2;
	v[1].counters = malloc(2 * sizeof *v[1].counters);
	v[1].counters[0] = counter("sessions", 4);
	v[1].counters[1] = counter("sends", 3);
	v[3].n_counters = 1;
	v[3].counters = malloc(sizeof *v[3].counters);
	v[3].counters[0] = counter("stored", 77);
}

static void test_health(void **state)
{
	ctl_inst v[4];
	struct cap c;
	char *s;
	int64_t n;
	(void)state;

	fleet(v);
	cap_open(&c);
	assert_int_equal(ctl_print_health(c.f, 0, v, 4, NULL), CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(
	    s, "SERVICE  ID       RPC                   VERSION  UPTIME    "
	       "STATUS\n"
	       "edge     edge-1   tcp://127.0.0.1:7001  0.1.0    1h02m03s  ok\n"
	       "edge     edge-2   tcp://127.0.0.1:7002  0.1.0    5s        ok\n"
	       "edge     edge-3   tcp://127.0.0.1:7003  0.1.0    -         "
	       "unreachable (no answer)\n"
	       "store    store-1  tcp://127.0.0.1:7101  0.1.0    1d01h01m  ok\n"
	       "4 instances: 3 ok, 1 failed\n");
	free(s);

	cap_open(&c);
	assert_int_equal(ctl_print_health(c.f, 1, v, 4, NULL), CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_json(s);
	assert_int_equal(chat_json_get_int(s, strlen(s), "total", &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(chat_json_get_int(s, strlen(s), "ok", &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(chat_json_get_int(s, strlen(s), "failed", &n), 0);
	assert_int_equal(n, 1);
	assert_non_null(strstr(
	    s, "{\"service\":\"edge\",\"id\":\"edge-1\",\"node\":"
	       "\"edge-1-0000000001\",\"rpc\":\"tcp://127.0.0.1:7001\","
	       "\"status\":\"ok\",\"version\":\"0.1.0\",\"uptime_ms\":3723000,"
	       "\"load\":12,\"pid\":4321}"));
	assert_non_null(strstr(s, "\"id\":\"edge-3\",\"rpc\":\"tcp://127.0.0.1:"
	                          "7003\",\"status\":\"unreachable\","
	                          "\"error\":\"no answer\""));
	free(s);

	/* all good: exit 0 */
	cap_open(&c);
	assert_int_equal(ctl_print_health(c.f, 0, v, 2, NULL), CTL_EXIT_OK);
	free(cap_close(&c));
	/* nothing found / a failure of the whole command */
	cap_open(&c);
	assert_int_equal(ctl_print_health(c.f, 0, v, 0, NULL), CTL_EXIT_FAIL);
	free(cap_close(&c));
	cap_open(&c);
	assert_int_equal(ctl_print_health(c.f, 0, NULL, 0, "zk down"),
	                 CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(s, ""); /* said on stderr by the caller */
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_health(c.f, 1, NULL, 0, "zk \"down\""),
	                 CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(s, "{\"instances\":[],\"total\":0,\"ok\":0,"
	                       "\"failed\":0,\"error\":\"zk \\\"down\\\"\"}\n");
	free(s);
	free_counters(v, 4);
}

static void test_counters(void **state)
{
	ctl_inst v[4];
	struct cap c;
	char *s;
	(void)state;

	fleet(v);
	cap_open(&c);
	assert_int_equal(ctl_print_counters(c.f, 0, v, 4, NULL), CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(
	    s, "SERVICE  INSTANCE  COUNTER                  VALUE\n"
	       "edge     edge-1    sessions                    12\n"
	       "edge     edge-1    sends                      100\n"
	       "edge     edge-2    sessions                     4\n"
	       "edge     edge-2    sends                        3\n"
	       "edge     edge-3    unreachable (no answer)      -\n"
	       "edge     (total)   sessions                    16\n"
	       "edge     (total)   sends                      103\n"
	       "store    store-1   stored                      77\n"
	       "4 instances: 3 ok, 1 failed\n");
	free(s);

	cap_open(&c);
	assert_int_equal(ctl_print_counters(c.f, 1, v, 4, NULL), CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_json(s);
	assert_non_null(
	    strstr(s, "\"counters\":{\"sessions\":12,\"sends\":100}}"));
	assert_non_null(
	    strstr(s, "\"totals\":{\"sessions\":16,\"sends\":103}}"));
	assert_non_null(strstr(s, "{\"service\":\"store\",\"instances\":[{"));
	assert_non_null(strstr(s, "\"totals\":{\"stored\":77}}"));
	/* services in display order: edge before store */
	assert_true(strstr(s, "\"service\":\"edge\",\"instances\"") <
	            strstr(s, "\"service\":\"store\",\"instances\""));
	free(s);

	/* an --rpc instance that never answered has no service: its own
	 * group, last */
	v[2].service[0] = '\0';
	v[2].id[0] = '\0';
	cap_open(&c);
	ctl_print_counters(c.f, 0, v, 4, NULL);
	s = cap_close(&c);
	assert_non_null(
	    strstr(s, "store    store-1   stored                      77\n"
	              "-        -         unreachable (no answer)      -\n"));
	free(s);
	free_counters(v, 4);
}

static void test_kick(void **state)
{
	ctl_inst v[3];
	struct cap c;
	char *s;
	int64_t n;
	(void)state;

	inst(&v[0], "edge", "edge-1", "tcp://127.0.0.1:7001", CHAT_OK);
	inst(&v[1], "edge", "edge-2", "tcp://127.0.0.1:7002", CHAT_OK);
	inst(&v[2], "edge", "edge-3", "tcp://127.0.0.1:7003", CHAT_UNAVAILABLE);
	v[0].sessions = 2;
	v[1].sessions = 1;
	cap_open(&c);
	assert_int_equal(ctl_print_kick(c.f, 0, 42, v, 3, NULL), CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(
	    s,
	    "EDGE    RPC                   SESSIONS  STATUS\n"
	    "edge-1  tcp://127.0.0.1:7001         2  ok\n"
	    "edge-2  tcp://127.0.0.1:7002         1  ok\n"
	    "edge-3  tcp://127.0.0.1:7003         -  unreachable (no answer)\n"
	    "user 42: 3 sessions closed on 2 edges; 1 edge failed\n");
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_kick(c.f, 1, 42, v, 3, NULL), CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_json(s);
	assert_int_equal(chat_json_get_int(s, strlen(s), "sessions", &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(chat_json_get_int(s, strlen(s), "user_id", &n), 0);
	assert_int_equal(n, 42);
	assert_non_null(strstr(s, "\"status\":\"ok\",\"sessions\":2}"));
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_kick(c.f, 0, 42, v, 1, NULL), CTL_EXIT_OK);
	s = cap_close(&c);
	assert_non_null(strstr(s, "user 42: 2 sessions closed on 1 edge\n"));
	free(s);
}

static void test_drain(void **state)
{
	ctl_inst e;
	struct cap c;
	char *s;
	(void)state;

	inst(&e, "edge", "edge-1", "tcp://127.0.0.1:7001", CHAT_OK);
	e.sessions = 12;
	cap_open(&c);
	assert_int_equal(ctl_print_drain(c.f, 0, "edge-1", 0, &e, NULL),
	                 CTL_EXIT_OK);
	s = cap_close(&c);
	assert_string_equal(s, "edge-1 (tcp://127.0.0.1:7001): draining 12 "
	                       "sessions, all at once\n");
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_drain(c.f, 0, "edge-1", 50, &e, NULL),
	                 CTL_EXIT_OK);
	s = cap_close(&c);
	assert_non_null(strstr(s, "draining 12 sessions, 50 per second\n"));
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_drain(c.f, 1, "edge-1", 50, &e, NULL),
	                 CTL_EXIT_OK);
	s = cap_close(&c);
	assert_string_equal(s, "{\"edge\":\"edge-1\",\"rpc\":\"tcp://127.0.0.1:"
	                       "7001\",\"status\":\"ok\",\"sessions\":12,"
	                       "\"per_second\":50}\n");
	free(s);

	/* not implemented yet by that edge: a clean failure */
	e.status = CHAT_UNIMPLEMENTED;
	strcpy(e.reason, "this edge does not implement Edge.Drain");
	cap_open(&c);
	assert_int_equal(ctl_print_drain(c.f, 0, "edge-1", 0, &e, NULL),
	                 CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(s, "");
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_drain(c.f, 1, "edge-1", 0, &e, NULL),
	                 CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_json(s);
	assert_non_null(strstr(s, "\"status\":\"unimplemented\",\"error\":"
	                          "\"this edge does not implement"));
	free(s);
	cap_open(&c);
	assert_int_equal(
	    ctl_print_drain(c.f, 1, "edge-9", 0, NULL, "no edge 'edge-9'"),
	    CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(s, "{\"edge\":\"edge-9\",\"status\":\"failed\","
	                       "\"error\":\"no edge 'edge-9'\"}\n");
	free(s);
}

static void test_channels_members(void **state)
{
	Chat__AdminChannel a = CHAT__ADMIN_CHANNEL__INIT,
	                   b = CHAT__ADMIN_CHANNEL__INIT;
	Chat__AdminChannel *ch[2] = {&a, &b};
	Chat__User u1 = CHAT__USER__INIT, u2 = CHAT__USER__INIT;
	Chat__User *us[2] = {&u1, &u2};
	Chat__UserList ul = CHAT__USER_LIST__INIT;
	ctl_inst st;
	struct cap c;
	char *s;
	(void)state;

	a.id = 3;
	a.name = (char *)"general";
	a.kind = CHAT__CHANNEL_KIND__KIND_GROUP;
	a.last_seq = 1200;
	a.member_count = 14;
	b.id = 11;
	b.name = (char *)"alice,bob";
	b.kind = CHAT__CHANNEL_KIND__KIND_DM;
	b.last_seq = 0;
	b.member_count = 2;
	inst(&st, "store", "", "tcp://127.0.0.1:7101", CHAT_OK);

	cap_open(&c);
	assert_int_equal(ctl_print_channels(c.f, 0, &st, ch, 2, 1),
	                 CTL_EXIT_OK);
	s = cap_close(&c);
	assert_string_equal(s,
	                    "ID  KIND   LAST_SEQ  MEMBERS  NAME\n"
	                    " 3  group      1200       14  general\n"
	                    "11  dm            0        2  alice,bob\n"
	                    "2 channels; more: chatctl channels --after 11\n");
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_channels(c.f, 1, &st, ch, 2, 1),
	                 CTL_EXIT_OK);
	s = cap_close(&c);
	assert_string_equal(
	    s,
	    "{\"status\":\"ok\",\"channels\":[{\"id\":3,\"name\":\"general\","
	    "\"kind\":\"group\",\"last_seq\":1200,\"member_count\":14},"
	    "{\"id\":11,\"name\":\"alice,bob\",\"kind\":\"dm\","
	    "\"last_seq\":0,\"member_count\":2}],\"more\":true,"
	    "\"next_after\":11}\n");
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_channels(c.f, 0, &st, NULL, 0, 0),
	                 CTL_EXIT_OK);
	s = cap_close(&c);
	assert_string_equal(s, "ID  KIND  LAST_SEQ  MEMBERS  NAME\n"
	                       "0 channels\n");
	free(s);

	u1.id = 1;
	u1.name = (char *)"alice";
	u1.created_at_ms = 1735787045123LL;
	u2.id = 20;
	u2.name = (char *)"bob";
	u2.created_at_ms = 1735787046000LL;
	ul.users = us;
	ul.n_users = 2;
	cap_open(&c);
	assert_int_equal(ctl_print_members(c.f, 0, 3, &st, &ul), CTL_EXIT_OK);
	s = cap_close(&c);
	assert_string_equal(s, "ID  NAME   CREATED\n"
	                       " 1  alice  2025-01-02 03:04:05Z\n"
	                       "20  bob    2025-01-02 03:04:06Z\n"
	                       "channel 3: 2 members\n");
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_members(c.f, 1, 3, &st, &ul), CTL_EXIT_OK);
	s = cap_close(&c);
	assert_string_equal(
	    s, "{\"channel\":3,\"status\":\"ok\",\"members\":[{\"id\":1,"
	       "\"name\":\"alice\",\"created_at_ms\":1735787045123},{\"id\":20,"
	       "\"name\":\"bob\",\"created_at_ms\":1735787046000}]}\n");
	free(s);

	/* a failed call: nothing on stdout in a table run, the status in
	 * JSON, exit 1 */
	st.status = CHAT_NOT_FOUND;
	strcpy(st.reason, "no channel 99");
	cap_open(&c);
	assert_int_equal(ctl_print_members(c.f, 0, 99, &st, NULL),
	                 CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(s, "");
	free(s);
	cap_open(&c);
	assert_int_equal(ctl_print_members(c.f, 1, 99, &st, NULL),
	                 CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(s, "{\"channel\":99,\"status\":\"not_found\","
	                       "\"error\":\"no channel 99\"}\n");
	free(s);
	st.status = CHAT_UNAVAILABLE;
	strcpy(st.reason, "none connected");
	cap_open(&c);
	assert_int_equal(ctl_print_channels(c.f, 1, &st, NULL, 0, 0),
	                 CTL_EXIT_FAIL);
	s = cap_close(&c);
	assert_string_equal(s, "{\"status\":\"unreachable\",\"error\":"
	                       "\"none connected\"}\n");
	free(s);
}

/* ctl_run's own answers: help, version, usage errors (exit 2). */
static void test_run_usage(void **state)
{
	struct cap o, e;
	char *so, *se;
	char *argv_help[] = {(char *)"chatctl", (char *)"--help", NULL};
	char *argv_ver[] = {(char *)"chatctl", (char *)"--version", NULL};
	char *argv_bad[] = {
	    (char *)"chatctl", (char *)"--rpc", (char *)"tcp://127.0.0.1:1",
	    (char *)"members", (char *)"x",     NULL};
	(void)state;

	cap_open(&o);
	cap_open(&e);
	assert_int_equal(ctl_run(2, argv_help, o.f, e.f), CTL_EXIT_OK);
	so = cap_close(&o);
	se = cap_close(&e);
	assert_non_null(strstr(so, "usage: chatctl"));
	assert_non_null(strstr(so, "drain EDGE_ID"));
	assert_string_equal(se, "");
	free(so);
	free(se);

	cap_open(&o);
	cap_open(&e);
	assert_int_equal(ctl_run(2, argv_ver, o.f, e.f), CTL_EXIT_OK);
	so = cap_close(&o);
	se = cap_close(&e);
	assert_string_equal(so, "chatctl " CHAT_VERSION "\n");
	free(so);
	free(se);

	cap_open(&o);
	cap_open(&e);
	assert_int_equal(ctl_run(5, argv_bad, o.f, e.f), CTL_EXIT_USAGE);
	so = cap_close(&o);
	se = cap_close(&e);
	assert_string_equal(so, "");
	assert_string_equal(se, "chatctl: members: 'x' is not a channel id\n");
	free(so);
	free(se);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_json_writer),
	    cmocka_unit_test(test_durations_times),
	    cmocka_unit_test(test_status_words),
	    cmocka_unit_test(test_health),
	    cmocka_unit_test(test_counters),
	    cmocka_unit_test(test_kick),
	    cmocka_unit_test(test_drain),
	    cmocka_unit_test(test_channels_members),
	    cmocka_unit_test(test_run_usage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
