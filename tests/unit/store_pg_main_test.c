/* The chat-store program on PostgreSQL: started as a process with
 * --db postgresql://... (and librdkafka's mock cluster of this process as
 * its brokers), it answers RPCs over tcp:// and exits 0 on SIGTERM; a
 * database it cannot reach makes it exit 1 at once with a clear message
 * that does not show the password. The program's path comes from
 * CHAT_STORE_BIN (set by CTest). The test FAILS when PostgreSQL is not
 * installed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_kafka.h"
#include "chat_log.h"
#include "chat_rpc.h"
#include "chat_status.h"
#include "chat_util.h"
#include "pg_server.h"
#include "store.pb-c.h"

extern char **environ;

static pg_server PG;
static chat_kafka_mock *MOCK;
static char LOG[96];

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static const char *store_bin(void)
{
	const char *b = getenv("CHAT_STORE_BIN");
	return b && *b ? b : "./chat-store";
}

/* chat-store with args, stdout and stderr to LOG. */
static pid_t spawn_store(const char *const *args)
{
	const char *argv[16];
	posix_spawn_file_actions_t fa;
	pid_t pid = -1;
	int n = 0;
	argv[n++] = store_bin();
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, LOG,
	                                 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv,
	                environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

static char *read_log(void)
{
	char *buf = NULL;
	size_t len = 0;
	if (chat_read_file(LOG, 1 << 20, &buf, &len) != 0)
		return NULL;
	return buf;
}

/* Wait up to ms for needle in the log; returns the log (free it) or
 * NULL. */
static char *wait_log(const char *needle, int ms)
{
	for (int t = 0; t < ms; t += 20) {
		char *l = read_log();
		if (l && strstr(l, needle))
			return l;
		free(l);
		sleep_ms(20);
	}
	return NULL;
}

/* Wait up to ms for pid to exit: its exit status, or -1 (then it is
 * killed). */
static int wait_exit(pid_t pid, int ms)
{
	int status = 0;
	for (int t = 0; t < ms; t += 20) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
		sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static void test_runs_and_stops(void **state)
{
	const char *args[] = {"--db", PG.url,
	                      "--kafka", chat_kafka_mock_bootstraps(MOCK),
	                      "--rpc-url", "tcp://127.0.0.1:0",
	                      "--instance", "main-test",
	                      "--log-level", "info",
	                      NULL};
	Chat__CreateUserReq in = CHAT__CREATE_USER_REQ__INIT;
	Chat__User *u = NULL;
	chat_rpc_client *c;
	chat_arena *a = chat_arena_new();
	char url[64], reason[256], err[256], *log, *p;
	long long n = -1;
	int port = 0;
	pid_t pid;
	(void)state;

	pid = spawn_store(args);
	assert_true(pid > 0);
	log = wait_log("event=started", 30000);
	if (!log) {
		char *l = read_log();
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("chat-store did not start: %s", l ? l : "(no log)");
	}
	assert_non_null(strstr(log, "engine=postgresql"));
	p = strstr(log, " port=");
	assert_non_null(p);
	port = atoi(p + 6);
	free(log);
	assert_true(port > 0);

	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
	c = chat_rpc_client_new(url, err, sizeof err);
	assert_non_null(c);
	in.name = (char *)"mainuser";
	in.pass_hash = (char *)"$argon2id$x";
	assert_int_equal(chat_rpc_invoke(c, &chat__store__descriptor,
	                                 "CreateUser", &in.base, a,
	                                 (ProtobufCMessage **)&u, 10000,
	                                 reason, sizeof reason),
	                 CHAT_OK);
	assert_true(u->id > 0);
	chat_rpc_client_free(c);
	chat_arena_free(a);
	assert_int_equal(pg_server_query_i64(PG.url,
	                                     "SELECT count(*) FROM users"
	                                     " WHERE name = 'mainuser'",
	                                     &n, err, sizeof err),
	                 0);
	assert_int_equal(n, 1);

	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(wait_exit(pid, 30000), 0);
	log = read_log();
	assert_non_null(log);
	assert_non_null(strstr(log, "event=stopped"));
	free(log);
}

static void test_bad_database(void **state)
{
	const char *args[] = {"--db",
	                      "postgresql://chat:s3cretpw@127.0.0.1:1/chat",
	                      "--kafka", chat_kafka_mock_bootstraps(MOCK),
	                      "--rpc-url", "tcp://127.0.0.1:0",
	                      "--log-level", "debug",
	                      NULL};
	char *log;
	pid_t pid;
	(void)state;

	pid = spawn_store(args);
	assert_true(pid > 0);
	assert_int_equal(wait_exit(pid, 30000), 1);
	log = read_log();
	assert_non_null(log);
	assert_non_null(strstr(log, "database unavailable"));
	assert_non_null(strstr(log, "chat:***@127.0.0.1:1"));
	assert_null(strstr(log, "s3cretpw"));
	free(log);
}

static int setup(void **state)
{
	char err[1024];
	int fd;
	(void)state;
	chat_log_set_level("off");
	snprintf(LOG, sizeof LOG, "/tmp/store_pg_main_test.XXXXXX");
	fd = mkstemp(LOG);
	if (fd < 0)
		return -1;
	close(fd);
	if (pg_server_start(&PG, err, sizeof err)) {
		fprintf(stderr,
		        "store_pg_main_test: cannot start PostgreSQL: %s\n",
		        err);
		return -1;
	}
	MOCK = chat_kafka_mock_new(1, 4, err, sizeof err);
	if (!MOCK) {
		fprintf(stderr, "mock: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	chat_kafka_mock_free(MOCK);
	pg_server_cleanup(&PG);
	unlink(LOG);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_runs_and_stops),
	    cmocka_unit_test(test_bad_database),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
