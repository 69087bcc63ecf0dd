/* chat-tui's command parser and input line editor (no terminal needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tui_cmd.h"
#include "tui_input.h"

static void test_create_quotes(void **state)
{
	tui_cmd c;
	(void)state;
	assert_int_equal(tui_cmd_parse("/create \"team chat\" bob carol", &c),
	                 TUI_CMD_CREATE);
	assert_int_equal(c.argc, 3);
	assert_string_equal(c.argv[0], "team chat");
	assert_string_equal(c.argv[1], "bob");
	assert_string_equal(c.argv[2], "carol");
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/create solo", &c), TUI_CMD_CREATE);
	assert_int_equal(c.argc, 1);
	assert_string_equal(c.argv[0], "solo");
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/create \"a \\\"q\\\" b\"", &c),
	                 TUI_CMD_CREATE);
	assert_string_equal(c.argv[0], "a \"q\" b");
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/create \"open", &c), TUI_CMD_ERROR);
	assert_non_null(strstr(c.err, "quote"));
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/create", &c), TUI_CMD_ERROR);
	tui_cmd_fini(&c);
}

static void test_ids(void **state)
{
	tui_cmd c;
	(void)state;
	assert_int_equal(tui_cmd_parse("/join 12", &c), TUI_CMD_JOIN);
	assert_true(c.has_id);
	assert_int_equal(c.id, 12);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/switch #7", &c), TUI_CMD_SWITCH);
	assert_int_equal(c.id, 7);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/read", &c), TUI_CMD_READ);
	assert_false(c.has_id);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/leave 3", &c), TUI_CMD_LEAVE);
	assert_int_equal(c.id, 3);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/join abc", &c), TUI_CMD_ERROR);
	assert_non_null(strstr(c.err, "not a channel id"));
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/join", &c), TUI_CMD_ERROR);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/join 0", &c), TUI_CMD_ERROR);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/join 99999999999999999999999", &c),
	                 TUI_CMD_ERROR);
	tui_cmd_fini(&c);
}

static void test_text_and_others(void **state)
{
	tui_cmd c;
	(void)state;
	assert_int_equal(tui_cmd_parse("  hello world ", &c), TUI_CMD_TEXT);
	assert_string_equal(c.text, "hello world ");
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/msg  hi /there", &c), TUI_CMD_TEXT);
	assert_string_equal(c.text, "hi /there");
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("//slash", &c), TUI_CMD_TEXT);
	assert_string_equal(c.text, "/slash");
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("", &c), TUI_CMD_NONE);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/status away", &c), TUI_CMD_STATUS);
	assert_int_equal(c.status, 2);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/status sleepy", &c), TUI_CMD_ERROR);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/dm bob", &c), TUI_CMD_DM);
	assert_string_equal(c.argv[0], "bob");
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/who", &c), TUI_CMD_WHO);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/quit", &c), TUI_CMD_QUIT);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/help", &c), TUI_CMD_HELP);
	tui_cmd_fini(&c);
	assert_int_equal(tui_cmd_parse("/frobnicate", &c), TUI_CMD_ERROR);
	assert_non_null(strstr(c.err, "unknown command"));
	tui_cmd_fini(&c);
}

static void type(tui_input *in, const wchar_t *s)
{
	while (*s)
		tui_input_insert(in, *s++);
}

static void expect(tui_input *in, const char *want)
{
	char *s = tui_input_text(in);
	assert_string_equal(s, want);
	free(s);
}

static void test_editing(void **state)
{
	tui_input in;
	char *s;
	(void)state;
	tui_input_init(&in);
	type(&in, L"hello wörld");
	expect(&in, "hello wörld");
	tui_input_home(&in);
	tui_input_delete(&in);
	expect(&in, "ello wörld");
	tui_input_end(&in);
	tui_input_backspace(&in);
	expect(&in, "ello wörl");
	tui_input_left(&in);
	tui_input_left(&in);
	tui_input_insert(&in, L'X');
	expect(&in, "ello wöXrl");
	tui_input_end(&in);
	tui_input_kill_word(&in);
	expect(&in, "ello ");
	type(&in, L"日本");
	tui_input_left(&in);
	tui_input_kill_line(&in);
	expect(&in, "本");
	assert_int_equal(in.cur, 0);
	s = tui_input_take(&in);
	assert_string_equal(s, "本");
	free(s);
	expect(&in, "");
	tui_input_fini(&in);
}

static void test_history(void **state)
{
	tui_input in;
	(void)state;
	tui_input_init(&in);
	type(&in, L"one");
	free(tui_input_take(&in));
	type(&in, L"two");
	free(tui_input_take(&in));
	type(&in, L"draft");
	assert_true(tui_input_history_prev(&in));
	expect(&in, "two");
	assert_true(tui_input_history_prev(&in));
	expect(&in, "one");
	assert_false(tui_input_history_prev(&in));
	assert_true(tui_input_history_next(&in));
	expect(&in, "two");
	assert_true(tui_input_history_next(&in));
	expect(&in, "draft");
	assert_false(tui_input_history_next(&in));
	tui_input_fini(&in);
}

static void test_utf8(void **state)
{
	wchar_t w[16];
	char *s;
	(void)state;
	assert_int_equal(tui_utf8_to_wide("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
	                                  10, w, 16),
	                 4);
	assert_int_equal(w[1], 0xe9);
	assert_int_equal(w[2], 0x20ac);
	assert_int_equal(w[3], 0x1f600);
	/* Invalid and truncated sequences become U+FFFD. */
	assert_int_equal(tui_utf8_to_wide("\xff" "a\xe2\x82", 4, w, 16), 3);
	assert_int_equal(w[0], 0xfffd);
	assert_int_equal(w[1], 'a');
	assert_int_equal(w[2], 0xfffd);
	assert_int_equal(tui_utf8_to_wide("\xc0\x80", 2, w, 16), 2);
	assert_int_equal(w[0], 0xfffd);
	s = tui_wide_to_utf8(L"a\u00e9\u20ac", 3);
	assert_string_equal(s, "a\xc3\xa9\xe2\x82\xac");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_quotes),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_text_and_others),
	    cmocka_unit_test(test_editing),
	    cmocka_unit_test(test_history),
	    cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
