/* Fuzz the client's HTTP response parser (head and body, with and without
 * EOF) and its URL parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatc_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	chatc_http_resp r;
	char err[256];
	char *s;

	for (int eof = 0; eof <= 1; eof++) {
		if (chatc_http_parse_response((const char *)data, size, eof, &r,
		                              err, sizeof err) == 1) {
			(void)chatc_http_header_get(&r.head, "Content-Type");
			if (r.body_len)
				(void)r.body[r.body_len - 1];
			chatc_http_resp_fini(&r);
		}
	}
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	{
		chatc_url u;
		(void)chatc_url_parse(s, &u, err, sizeof err);
	}
	free(s);
	return 0;
}
