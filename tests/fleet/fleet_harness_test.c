/* Unit tests of fleet_harness: fleet.env look-ups and fleet.sh control,
 * against a written fleet.env and a stub control script. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fleet_harness.h"

static char dir[64];

static void write_file(const char *name, const char *text, int mode_x)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	if (mode_x)
		assert_int_equal(chmod(path, 0755), 0);
}

static char *read_file(const char *name, char *buf, size_t len)
{
	char path[256];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	char ctl[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fleet-harness-XXXXXX");
	assert_non_null(mkdtemp(dir));
	write_file("fleet.env",
	           "CHAT_FLEET_DIR=/x\n"
	           "CHAT_KAFKA_CONTROLLER=127.0.0.1:2\n"
	           "CHAT_KAFKA=127.0.0.1:1\n"
	           "CHAT_STORE_DB=postgresql://chat@127.0.0.1:3/chat\n"
	           "CHAT_EMPTY=\n"
	           "CHAT_CRLF=v\r\n",
	           0);
	/* The stub records its arguments; "bad" fails. */
	write_file("ctl.sh",
	           "echo \"$*\" >\"$(dirname \"$0\")/args\"\n"
	           "[ \"$2\" != bad ]\n",
	           1);
	snprintf(ctl, sizeof(ctl), "%s/ctl.sh", dir);
	setenv("CHAT_FLEET_DIR", dir, 1);
	setenv("CHAT_FLEET_CTL", ctl, 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void env_reads_the_file(void **state)
{
	char v[64];

	(void)state;
	assert_int_equal(fleet_env("CHAT_KAFKA", v, sizeof(v)), 0);
	assert_string_equal(v, "127.0.0.1:1");
	assert_int_equal(fleet_env("CHAT_KAFKA_CONTROLLER", v, sizeof(v)), 0);
	assert_string_equal(v, "127.0.0.1:2");
	assert_int_equal(fleet_env("CHAT_STORE_DB", v, sizeof(v)), 0);
	assert_string_equal(v, "postgresql://chat@127.0.0.1:3/chat");
	assert_int_equal(fleet_env("CHAT_EMPTY", v, sizeof(v)), 0);
	assert_string_equal(v, "");
	assert_int_equal(fleet_env("CHAT_CRLF", v, sizeof(v)), 0);
	assert_string_equal(v, "v");
}

static void env_prefix_is_not_a_match(void **state)
{
	char v[64];

	(void)state;
	unsetenv("CHAT_KAF");
	assert_int_equal(fleet_env("CHAT_KAF", v, sizeof(v)), -1);
}

static void env_falls_back_to_environment(void **state)
{
	char v[64];

	(void)state;
	setenv("CHAT_ONLY_IN_ENV", "e", 1);
	assert_int_equal(fleet_env("CHAT_ONLY_IN_ENV", v, sizeof(v)), 0);
	assert_string_equal(v, "e");
	unsetenv("CHAT_ONLY_IN_ENV");
	assert_int_equal(fleet_env("CHAT_ONLY_IN_ENV", v, sizeof(v)), -1);
	/* The file wins over the environment. */
	setenv("CHAT_KAFKA", "elsewhere", 1);
	assert_int_equal(fleet_env("CHAT_KAFKA", v, sizeof(v)), 0);
	assert_string_equal(v, "127.0.0.1:1");
	unsetenv("CHAT_KAFKA");
}

static void env_refuses_small_buffers_and_bad_args(void **state)
{
	char v[11];

	(void)state;
	/* "127.0.0.1:1" is 11 bytes: no room for the NUL. */
	assert_int_equal(fleet_env("CHAT_KAFKA", v, sizeof(v)), -1);
	assert_int_equal(fleet_env("", v, sizeof(v)), -1);
	assert_int_equal(fleet_env(NULL, v, sizeof(v)), -1);
	assert_int_equal(fleet_env("CHAT_KAFKA", NULL, 8), -1);
	assert_int_equal(fleet_env("CHAT_KAFKA", v, 0), -1);
}

static void ctl_runs_the_script(void **state)
{
	char buf[128];

	(void)state;
	assert_int_equal(fleet_ctl("kill", "edge-2"), 0);
	assert_non_null(read_file("args", buf, sizeof(buf)));
	assert_string_equal(buf, "kill edge-2\n");
	assert_int_equal(fleet_ctl("add", "edge"), 0);
	assert_non_null(read_file("args", buf, sizeof(buf)));
	assert_string_equal(buf, "add edge\n");
}

static void ctl_reports_failure(void **state)
{
	(void)state;
	assert_int_equal(fleet_ctl("restart", "bad"), -1);
	assert_int_equal(fleet_ctl("explode", "edge-1"), -1);
	assert_int_equal(fleet_ctl(NULL, "edge-1"), -1);
	assert_int_equal(fleet_ctl("stop", NULL), -1);
}

static void ctl_needs_the_script(void **state)
{
	char *saved = strdup(getenv("CHAT_FLEET_CTL"));

	(void)state;
	assert_non_null(saved);
	unsetenv("CHAT_FLEET_CTL");
	assert_int_equal(fleet_ctl("stop", "zk"), -1);
	setenv("CHAT_FLEET_CTL", saved, 1);
	free(saved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(env_reads_the_file),
	    cmocka_unit_test(env_prefix_is_not_a_match),
	    cmocka_unit_test(env_falls_back_to_environment),
	    cmocka_unit_test(env_refuses_small_buffers_and_bad_args),
	    cmocka_unit_test(ctl_runs_the_script),
	    cmocka_unit_test(ctl_reports_failure),
	    cmocka_unit_test(ctl_needs_the_script),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
