/* Fuzz the api's sign-up / log-in body parsing and validation with raw
 * bytes, and check that whatever it accepts obeys the rules and survives a
 * round trip through the response writer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_body.h"
#include "chat_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *d, size_t size, api_form form)
{
	api_creds c;
	const char *reason = NULL;
	size_t nl, pl, len = 0;
	char *body, out[API_PASS_MAX + 1];

	if (api_parse_creds(d, size, form, &c, &reason) != 0) {
		if (!reason || !reason[0] || c.password[0])
			__builtin_trap(); /* no reason, or a password left */
		body = api_error_body("INVALID_ARGUMENT", reason, 0, 16, &len);
		if (!body || !chat_json_valid(body + 16, len))
			__builtin_trap();
		free(body);
		return;
	}
	nl = strlen(c.name);
	pl = strlen(c.password);
	if (!api_name_valid(c.name, nl) || pl > API_PASS_MAX || pl < 1 ||
	    (form == API_FORM_SIGNUP && pl < API_PASS_MIN))
		__builtin_trap(); /* accepted something the rules refuse */
	/* What was accepted must be written back as the same strings. */
	body = api_auth_body(42, c.name, c.password, "ws://e/ws", 1, 0, &len);
	if (!body || !chat_json_valid(body, len) ||
	    chat_json_get_string(body, len, "token", out, sizeof out) !=
	        (int)pl ||
	    memcmp(out, c.password, pl) != 0)
		__builtin_trap();
	free(body);
	api_creds_wipe(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check((const char *)data, size, API_FORM_SIGNUP);
	check((const char *)data, size, API_FORM_LOGIN);
	return 0;
}
