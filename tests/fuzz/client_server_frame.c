/* Fuzz the chatc session state machine with ServerFrames. The input is a
 * sequence of records: 2 bytes of big-endian length, then that many bytes
 * of one ServerFrame. A session with a discarding send hook is online and
 * welcomed first; some requests are issued between frames so answers can
 * match them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int discard(void *user, const uint8_t *frame, size_t len)
{
	(void)user;
	(void)frame;
	(void)len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	chatc_opts o;
	chatc *c;
	char err[128];
	size_t off = 0;
	int n = 0;

	memset(&o, 0, sizeof o);
	o.send_hook = discard;
	o.no_reconnect = 1;
	o.max_held = 64;
	c = chatc_new(&o, err, sizeof err);
	if (!c)
		return 0;
	chatc_test_online(c, size > 0 && (data[0] & 1));
	while (off + 2 <= size && n++ < 1000) {
		size_t len = ((size_t)data[off] << 8) | data[off + 1];
		off += 2;
		if (len > size - off)
			len = size - off;
		chatc_feed(c, data + off, len);
		off += len;
		/* Requests whose req_ids the next frames may answer. */
		if (chatc_channel_count(c) > 0) {
			const chatc_channel *ch = chatc_channel_at(c, 0);
			uint64_t id = ch->id;
			chatc_history_before(c, id, 0, 10);
			chatc_send(c, id, "x", NULL);
			chatc_mark_read(c, id, 0);
		}
		chatc_who(c, 0);
	}
	for (size_t i = 0; i < chatc_channel_count(c); i++) {
		const chatc_channel *ch = chatc_channel_at(c, i);
		for (size_t k = 1; k < ch->n_msgs; k++)
			if (ch->msgs[k].seq != ch->msgs[k - 1].seq + 1)
				abort(); /* held messages must be contiguous */
		if (ch->n_msgs &&
		    ch->msgs[ch->n_msgs - 1].seq != ch->held_seq)
			abort();
	}
	chatc_drop(c);
	chatc_free(c);
	return 0;
}
