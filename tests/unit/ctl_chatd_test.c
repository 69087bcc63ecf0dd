/* chatctl (the program) against a real chatd started with --admin-url
 * (chat.Store and chat.Admin on tcp): users, a group channel, a DM and
 * messages made through the client protocol (tests/integration/itest),
 * then `chatctl --rpc ADMIN_URL` channels / members / health / counters /
 * kick, in tables and JSON, with their exit codes.
 *
 * Usage: ctl_chatd_test PATH-TO-CHATD PATH-TO-CHATCTL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chat_json.h"
#include "chat_util.h"
#include "itest.h"

static const char *g_chatd, *g_chatctl;
static it_server g_srv;
static char g_admin[256];
static it_client g_a, g_b, g_c;
static char g_na[64], g_nb[64], g_nc[64], g_chname[64];
static uint64_t g_group, g_dm;

/* ---- chatctl as a process ---- */

struct run {
	int rc;
	char *out, *err;
};

static char *slurp(const char *path)
{
	char *data = NULL;
	size_t len = 0;
	if (chat_read_file(path, 1 << 20, &data, &len) != 0)
		return strdup("");
	return data;
}

/* chatctl --rpc ADMIN ARGS... (NULL-terminated); stdout and stderr
 * through files in the data dir. */
static struct run ctl(const char *first, ...)
{
	struct run r = {0};
	const char *argv[32];
	char out[320], err[320];
	int argc = 0, st;
	va_list ap;
	pid_t pid;

	argv[argc++] = g_chatctl;
	argv[argc++] = "--rpc";
	argv[argc++] = g_admin;
	argv[argc++] = first;
	va_start(ap, first);
	for (const char *s;
	     (s = va_arg(ap, const char *)) != NULL && argc < 31;)
		argv[argc++] = s;
	va_end(ap);
	argv[argc] = NULL;
	snprintf(out, sizeof out, "%s/ctl.out", g_srv.data_dir);
	snprintf(err, sizeof err, "%s/ctl.err", g_srv.data_dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fo < 0 || fe < 0)
			_exit(126);
		dup2(fo, 1);
		dup2(fe, 2);
		execv(g_chatctl, (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	r.rc = WEXITSTATUS(st);
	r.out = slurp(out);
	r.err = slurp(err);
	return r;
}

#define CTL(...) ctl(__VA_ARGS__, (const char *)NULL)

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void has(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("'%s' not in:\n%s", needle, hay);
}

static int64_t json_int(const char *s, const char *key)
{
	int64_t v = -1;
	if (!chat_json_valid(s, strlen(s)))
		fail_msg("not JSON: %s", s);
	if (chat_json_get_int(s, strlen(s), key, &v) != 0)
		fail_msg("no %s in %s", key, s);
	return v;
}

/* ---- the server and its data ---- */

/* admin_url= from the ready file (written with the others; retried in
 * case it is read half-written). */
static int read_admin_url(void)
{
	int64_t deadline = chat_mono_ms() + 5000;
	while (chat_mono_ms() < deadline) {
		char *s = slurp(g_srv.ready_file), *p = strstr(s, "admin_url=");
		if (p && strchr(p, '\n')) {
			p += 10;
			p[strcspn(p, "\n")] = '\0';
			chat_strlcpy(g_admin, p, sizeof g_admin);
			free(s);
			return g_admin[0] ? 0 : -1;
		}
		free(s);
		usleep(20 * 1000);
	}
	return -1;
}

static void open_ready(it_client *c, const char *name)
{
	char err[256];
	Chat__ServerFrame *f;
	if (it_client_open(c, &g_srv, name, 1, err, sizeof err) != 0)
		fail_msg("open %s: %s", name, err);
	f = it_wait_push(c, CHAT__SERVER_FRAME__KIND_CHANNEL_LIST, NULL, NULL,
	                 5000);
	assert_non_null(f);
	chat__server_frame__free_unpacked(f, NULL);
}

static Chat__ServerFrame *expect(Chat__ServerFrame *f,
                                 Chat__ServerFrame__KindCase k)
{
	assert_non_null(f);
	if (f->kind_case != k)
		fail_msg("got frame kind %d, wanted %d", f->kind_case, k);
	return f;
}

static int setup(void **state)
{
	static const char *const extra[] = {"--admin-url", "tcp://127.0.0.1:0",
	                                    "--log-level", "warn", NULL};
	const char *members[2] = {NULL, NULL};
	Chat__ServerFrame *f;
	uint64_t seqs[2];
	char bodies[2][64];
	(void)state;

	unsetenv("CHAT_TEST_API_URL"); /* this test needs its own chatd */
	unsetenv("CHAT_ZK");
	if (it_server_start(&g_srv, g_chatd, NULL, extra) != 0)
		return -1;
	if (read_admin_url() != 0) {
		fprintf(stderr, "no admin_url in %s\n", g_srv.ready_file);
		return -1;
	}
	it_unique(g_na, sizeof g_na, "alice");
	it_unique(g_nb, sizeof g_nb, "bob");
	it_unique(g_nc, sizeof g_nc, "carol");
	it_unique(g_chname, sizeof g_chname, "ops");
	open_ready(&g_a, g_na);
	open_ready(&g_b, g_nb);
	open_ready(&g_c, g_nc);

	members[0] = g_nb;
	f = expect(it_create(&g_a, g_chname, members),
	           CHAT__SERVER_FRAME__KIND_CHANNEL);
	g_group = f->channel->id;
	chat__server_frame__free_unpacked(f, NULL);
	f = expect(it_open_dm(&g_c, g_na), CHAT__SERVER_FRAME__KIND_CHANNEL);
	g_dm = f->channel->id;
	chat__server_frame__free_unpacked(f, NULL);

	f = expect(it_send_msg(&g_a, g_group, NULL, "one"),
	           CHAT__SERVER_FRAME__KIND_SEND_ACK);
	chat__server_frame__free_unpacked(f, NULL);
	f = expect(it_send_msg(&g_b, g_group, NULL, "two"),
	           CHAT__SERVER_FRAME__KIND_SEND_ACK);
	chat__server_frame__free_unpacked(f, NULL);
	/* Delivered means stored: the fan-out follows the commit. */
	if (it_collect(&g_a, g_group, 2, seqs, bodies, 10000) != 2) {
		fprintf(stderr, "messages not delivered\n");
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	int st;
	(void)state;
	it_client_close(&g_a);
	it_client_close(&g_b);
	it_client_close(&g_c);
	st = it_server_stop(&g_srv, SIGTERM);
	if (st == 0)
		it_server_cleanup(&g_srv);
	else
		fprintf(stderr, "chatd exit %d; log in %s\n", st,
		        g_srv.log_file);
	return st == 0 ? 0 : -1;
}

/* ---- the tests ---- */

static void test_channels(void **state)
{
	struct run r;
	char want[256];
	(void)state;

	r = CTL("channels", "--json");
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.err, "");
	has(r.out, "{\"status\":\"ok\",\"channels\":[");
	snprintf(want, sizeof want,
	         "{\"id\":%" PRIu64 ",\"name\":\"%s\",\"kind\":\"group\","
	         "\"last_seq\":2,\"member_count\":2}",
	         g_group, g_chname);
	has(r.out, want);
	snprintf(want, sizeof want,
	         "{\"id\":%" PRIu64 ",\"name\":\"%s,%s\",\"kind\":\"dm\","
	         "\"last_seq\":0,\"member_count\":2}",
	         g_dm, g_na, g_nc);
	has(r.out, want);
	has(r.out, "\"more\":false}");
	run_free(&r);

	r = CTL("channels");
	assert_int_equal(r.rc, 0);
	has(r.out, "ID  KIND   LAST_SEQ  MEMBERS  NAME\n");
	has(r.out, g_chname);
	run_free(&r);

	/* paging on the real store: one at a time, --after the first */
	r = CTL("channels", "--limit", "1", "--json");
	assert_int_equal(r.rc, 0);
	has(r.out, "\"more\":true,\"next_after\":");
	assert_int_equal(json_int(r.out, "next_after"), g_group);
	run_free(&r);
	snprintf(want, sizeof want, "%" PRIu64, g_group);
	r = CTL("channels", "--after", want, "--json");
	assert_int_equal(r.rc, 0);
	assert_null(strstr(r.out, g_chname));
	has(r.out, "\"kind\":\"dm\"");
	run_free(&r);
	r = CTL("channels", "--limit", "1", "--all");
	assert_int_equal(r.rc, 0);
	has(r.out, g_chname);
	has(r.out, ",");
	has(r.out, "2 channels\n");
	run_free(&r);
}

static void test_members(void **state)
{
	struct run r;
	char id[24], want[256];
	(void)state;

	snprintf(id, sizeof id, "%" PRIu64, g_group);
	r = CTL("members", id);
	assert_int_equal(r.rc, 0);
	has(r.out, "ID  NAME");
	has(r.out, g_na);
	has(r.out, g_nb);
	assert_null(strstr(r.out, g_nc));
	snprintf(want, sizeof want, "channel %s: 2 members\n", id);
	has(r.out, want);
	run_free(&r);

	snprintf(id, sizeof id, "%" PRIu64, g_dm);
	r = CTL("members", id, "--json");
	assert_int_equal(r.rc, 0);
	snprintf(want, sizeof want,
	         "{\"id\":%" PRIu64 ",\"name\":\"%s\",\"created_at_ms\":",
	         g_c.auth.user_id, g_nc);
	has(r.out, want);
	assert_int_equal(json_int(r.out, "channel"), (int64_t)g_dm);
	run_free(&r);

	r = CTL("members", "999999", "--json");
	assert_int_equal(r.rc, 1);
	assert_string_equal(r.out, "{\"channel\":999999,\"status\":"
	                           "\"not_found\",\"error\":\"no channel "
	                           "999999\"}\n");
	run_free(&r);
	r = CTL("members", "999999");
	assert_int_equal(r.rc, 1);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, "chatctl: members 999999: not_found: no "
	                           "channel 999999\n");
	run_free(&r);
}

static void test_health(void **state)
{
	struct run r;
	(void)state;

	r = CTL("health", "--json");
	assert_int_equal(r.rc, 0);
	has(r.out, "\"service\":\"store\"");
	has(r.out, "\"status\":\"ok\"");
	has(r.out, "\"version\":\"" CHAT_VERSION "\"");
	assert_int_equal(json_int(r.out, "ok"), 1);
	assert_int_equal(json_int(r.out, "failed"), 0);
	run_free(&r);

	r = CTL("health");
	assert_int_equal(r.rc, 0);
	has(r.out, "SERVICE  ID");
	has(r.out, g_admin);
	has(r.out, "1 instance: 1 ok, 0 failed\n");
	run_free(&r);

	/* the store's counters: two messages stored */
	r = CTL("counters", "store", "--json");
	assert_int_equal(r.rc, 0);
	has(r.out, "\"stored\":2");
	run_free(&r);

	/* a store is not an edge: kick there is refused, cleanly */
	r = CTL("kick", "1");
	assert_int_equal(r.rc, 1);
	has(r.out, "unimplemented");
	run_free(&r);

	/* usage errors: exit 2, nothing on stdout */
	r = CTL("members");
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.out, "");
	has(r.err, "missing CHANNEL");
	run_free(&r);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_channels),
	    cmocka_unit_test(test_members),
	    cmocka_unit_test(test_health),
	};
	g_chatd = argc > 1 ? argv[1] : getenv("CHATD");
	g_chatctl = argc > 2 ? argv[2] : getenv("CHATCTL");
	if (!g_chatd || !g_chatctl) {
		fprintf(stderr, "usage: %s PATH-TO-CHATD PATH-TO-CHATCTL\n",
		        argv[0]);
		return 2;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
