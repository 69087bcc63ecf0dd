/* Fuzz the parser of discovery node data: ZooKeeper znodes anyone with
 * access to the ensemble can write. A parsed entry must round-trip
 * through chat_disc_format. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chat_discovery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	chat_disc_entry e, back;
	char json[8192];
	int n;

	memset(&e, 0, sizeof e);
	if (chat_disc_parse((const char *)data, size, &e) != 0)
		return 0;
	if (!e.id[0] || !e.rpc[0] || memchr(e.id, 0, sizeof e.id) == NULL)
		__builtin_trap();
	n = chat_disc_format(&e, json, sizeof json);
	if (n < 0)
		__builtin_trap(); /* everything parsed must be writable */
	memset(&back, 0, sizeof back);
	if ((size_t)n < CHAT_DISC_DATA_MAX) {
		if (chat_disc_parse(json, (size_t)n, &back) != 0)
			__builtin_trap();
		if (strcmp(back.id, e.id) || strcmp(back.rpc, e.rpc) ||
		    strcmp(back.pub, e.pub) || back.load != e.load ||
		    back.pid != e.pid || strcmp(back.version, e.version) ||
		    strcmp(back.service, e.service))
			__builtin_trap();
	}
	return 0;
}
