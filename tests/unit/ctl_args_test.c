/* chatctl's command line (ctl_args_parse): commands and operands, options
 * anywhere and in both forms, the target rules (--rpc, --zk, CHAT_ZK),
 * and a clear refusal of everything malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "ctl.h"

static const char *fake_zk;

static const char *fake_env(const char *name)
{
	if (!strcmp(name, "CHAT_ZK"))
		return fake_zk;
	return NULL;
}

/* Parse a NULL-terminated list of words (argv[0] added). */
static int parse(ctl_args *a, char *err, size_t errlen, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)"chatctl";
	va_start(ap, errlen);
	for (char *s; (s = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = s;
	va_end(ap);
	argv[argc] = NULL;
	err[0] = '\0';
	return ctl_args_parse(a, argc, argv, fake_env, err, errlen);
}

#define P(a, ...) parse((a), err, sizeof err, __VA_ARGS__, (char *)NULL)

static int setup(void **state)
{
	(void)state;
	fake_zk = NULL;
	return 0;
}

static void test_commands(void **state)
{
	ctl_args a;
	char err[512];
	(void)state;

	assert_int_equal(P(&a, "--zk", "127.0.0.1:2181", "health"), 0);
	assert_int_equal(a.cmd, CTL_CMD_HEALTH);
	assert_string_equal(a.zk, "127.0.0.1:2181");
	assert_null(a.service);
	assert_int_equal(a.timeout_ms, CTL_TIMEOUT_DEFAULT);
	assert_false(a.json);
	assert_int_equal(a.n_rpc, 0);

	assert_int_equal(P(&a, "health", "edge", "--zk=h:1"), 0);
	assert_string_equal(a.service, "edge");
	assert_string_equal(a.zk, "h:1");

	assert_int_equal(P(&a, "--zk", "h:1", "counters", "dispatcher"), 0);
	assert_int_equal(a.cmd, CTL_CMD_COUNTERS);
	assert_string_equal(a.service, "dispatcher");

	assert_int_equal(P(&a, "--zk", "h:1", "channels", "--after", "42",
	                   "--limit=7", "--all", "--json"),
	                 0);
	assert_int_equal(a.cmd, CTL_CMD_CHANNELS);
	assert_int_equal(a.after, 42);
	assert_int_equal(a.limit, 7);
	assert_true(a.all);
	assert_true(a.json);

	assert_int_equal(P(&a, "--zk", "h:1", "channels"), 0);
	assert_int_equal(a.after, 0);
	assert_int_equal(a.limit, 0); /* the store's default */
	assert_false(a.all);

	assert_int_equal(P(&a, "--zk", "h:1", "members", "9"), 0);
	assert_int_equal(a.cmd, CTL_CMD_MEMBERS);
	assert_int_equal(a.channel, 9);

	assert_int_equal(P(&a, "--zk", "h:1", "kick", "18446744073", "--reason",
	                   "spam, again"),
	                 0);
	assert_int_equal(a.cmd, CTL_CMD_KICK);
	assert_int_equal(a.user_id, 18446744073ULL);
	assert_string_equal(a.reason, "spam, again");

	assert_int_equal(P(&a, "--zk", "h:1", "kick", "3"), 0);
	assert_string_equal(a.reason, ""); /* the edge's default */

	assert_int_equal(P(&a, "drain", "edge-2", "--per-second", "50",
	                   "--reason=maintenance", "--zk", "h:1",
	                   "--timeout-ms", "750"),
	                 0);
	assert_int_equal(a.cmd, CTL_CMD_DRAIN);
	assert_string_equal(a.edge_id, "edge-2");
	assert_int_equal(a.per_second, 50);
	assert_string_equal(a.reason, "maintenance");
	assert_int_equal(a.timeout_ms, 750);

	/* "--" ends the options: a name starting with a dash */
	assert_int_equal(P(&a, "--zk", "h:1", "drain", "--", "-odd-"), 0);
	assert_string_equal(a.edge_id, "-odd-");

	assert_int_equal(P(&a, "-v", "--zk", "h:1", "health"), 0);
	assert_true(a.verbose);
}

static void test_help_version(void **state)
{
	ctl_args a;
	char err[512];
	(void)state;

	/* no target needed, nothing else checked */
	assert_int_equal(P(&a, "--help"), 0);
	assert_true(a.help);
	assert_int_equal(P(&a, "-h", "kick"), 0);
	assert_true(a.help);
	assert_int_equal(P(&a, "help"), 0);
	assert_true(a.help);
	assert_int_equal(P(&a, "--version"), 0);
	assert_true(a.version);
	assert_int_equal(P(&a, "health", "--version"), 0);
	assert_true(a.version);
}

static void test_targets(void **state)
{
	ctl_args a;
	char err[512];
	(void)state;

	/* none at all */
	assert_int_equal(P(&a, "health"), -1);
	assert_non_null(strstr(err, "no target"));
	/* CHAT_ZK */
	fake_zk = "zk1:2181,zk2:2181";
	assert_int_equal(P(&a, "health"), 0);
	assert_string_equal(a.zk, "zk1:2181,zk2:2181");
	/* the flag beats the environment */
	assert_int_equal(P(&a, "--zk", "other:1", "health"), 0);
	assert_string_equal(a.zk, "other:1");
	/* --rpc beats CHAT_ZK, and may be repeated */
	assert_int_equal(P(&a, "--rpc", "tcp://127.0.0.1:5", "--rpc",
	                   "tcp://127.0.0.1:6", "health"),
	                 0);
	assert_string_equal(a.zk, "");
	assert_int_equal(a.n_rpc, 2);
	assert_string_equal(a.rpc[1], "tcp://127.0.0.1:6");
	/* but not both flags */
	assert_int_equal(
	    P(&a, "--zk", "h:1", "--rpc", "tcp://127.0.0.1:5", "health"), -1);
	assert_non_null(strstr(err, "not both"));
	fake_zk = "";
	assert_int_equal(P(&a, "health"), -1);
	assert_int_equal(P(&a, "--rpc", "http://127.0.0.1:5", "health"), -1);
	assert_non_null(strstr(err, "--rpc"));
	assert_int_equal(P(&a, "--zk", "", "health"), -1);
	assert_non_null(strstr(err, "--zk"));
}

static void test_refusals(void **state)
{
	ctl_args a;
	char err[512];
	char big[CTL_REASON_MAX + 2];
	(void)state;

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';

	assert_int_equal(P(&a, "--zk", "h:1"), -1);
	assert_non_null(strstr(err, "no command"));
	assert_int_equal(P(&a, "--zk", "h:1", "reboot"), -1);
	assert_non_null(strstr(err, "unknown command 'reboot'"));
	assert_int_equal(P(&a, "--zk", "h:1", "health", "--colour"), -1);
	assert_non_null(strstr(err, "unknown option '--colour'"));
	assert_int_equal(P(&a, "--zk", "h:1", "health", "-x"), -1);
	assert_non_null(strstr(err, "unknown option '-x'"));
	assert_int_equal(P(&a, "--zk", "h:1", "health", "web"), -1);
	assert_non_null(strstr(err, "unknown service 'web'"));
	assert_int_equal(P(&a, "--zk", "h:1", "health", "edge", "store"), -1);
	assert_non_null(strstr(err, "unexpected argument 'store'"));
	assert_int_equal(P(&a, "--zk", "h:1", "members"), -1);
	assert_non_null(strstr(err, "missing CHANNEL"));
	assert_int_equal(P(&a, "--zk", "h:1", "members", "abc"), -1);
	assert_non_null(strstr(err, "not a channel id"));
	assert_int_equal(P(&a, "--zk", "h:1", "members", "0"), -1);
	assert_int_equal(P(&a, "--zk", "h:1", "members", "12x"), -1);
	assert_int_equal(
	    P(&a, "--zk", "h:1", "members", "99999999999999999999"), -1);
	assert_int_equal(P(&a, "--zk", "h:1", "kick"), -1);
	assert_non_null(strstr(err, "missing USER_ID"));
	assert_int_equal(P(&a, "--zk", "h:1", "kick", "-3"), -1);
	assert_int_equal(P(&a, "--zk", "h:1", "kick", "+3"), -1);
	assert_int_equal(P(&a, "--zk", "h:1", "kick", "7", "--reason", big),
	                 -1);
	assert_non_null(strstr(err, "--reason"));
	assert_int_equal(P(&a, "--zk", "h:1", "drain"), -1);
	assert_non_null(strstr(err, "missing EDGE_ID"));
	assert_int_equal(P(&a, "--zk", "h:1", "drain", ""), -1);
	/* options of another command */
	assert_int_equal(P(&a, "--zk", "h:1", "health", "--limit", "5"), -1);
	assert_non_null(strstr(err, "--limit does not apply to health"));
	assert_int_equal(P(&a, "--zk", "h:1", "kick", "5", "--per-second", "1"),
	                 -1);
	assert_int_equal(P(&a, "--zk", "h:1", "channels", "--reason", "x"), -1);
	/* values */
	assert_int_equal(P(&a, "--zk", "h:1", "channels", "--limit", "0"), -1);
	assert_non_null(strstr(err, "--limit"));
	assert_int_equal(P(&a, "--zk", "h:1", "channels", "--limit", "1001"),
	                 -1);
	assert_int_equal(P(&a, "--zk", "h:1", "channels", "--after", "x"), -1);
	assert_int_equal(P(&a, "--zk", "h:1", "channels", "--limit"), -1);
	assert_non_null(strstr(err, "--limit needs a value"));
	assert_int_equal(P(&a, "--zk", "h:1", "health", "--timeout-ms", "0"),
	                 -1);
	assert_non_null(strstr(err, "--timeout-ms"));
	assert_int_equal(
	    P(&a, "--zk", "h:1", "health", "--timeout-ms", "600001"), -1);
	assert_int_equal(P(&a, "--zk", "h:1", "health", "--json=yes"), -1);
	assert_non_null(strstr(err, "takes no value"));
	assert_int_equal(P(&a, "--zk", "h:1", "--zk", "h:2", "health"), -1);
	assert_non_null(strstr(err, "given twice"));
	assert_int_equal(
	    P(&a, "--zk", "h:1", "drain", "e", "--per-second", "-1"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_commands, setup),
	    cmocka_unit_test_setup(test_help_version, setup),
	    cmocka_unit_test_setup(test_targets, setup),
	    cmocka_unit_test_setup(test_refusals, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
