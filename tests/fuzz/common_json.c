/* Fuzz the JSON reader used on HTTP request bodies. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chat_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	char out[64];
	int64_t v;
	int valid = chat_json_valid(d, size);
	int r = chat_json_get_string(d, size, "name", out, sizeof out);
	if (r >= 0 && (!valid || strlen(out) != (size_t)r))
		__builtin_trap(); /* found a member in an invalid document */
	(void)chat_json_get_int(d, size, "user_id", &v);
	(void)chat_json_get_string(d, size, "password", out, 8);
	return 0;
}
