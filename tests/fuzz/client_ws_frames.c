/* Fuzz the client's WebSocket frame parser and reassembly: the bytes are
 * fed in two pieces (split where the first byte says) and every event is
 * drained; the single-frame parser runs on the same bytes in each masking
 * mode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatc_ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	chatc_ws_rx *rx;
	chatc_ws_event ev;
	size_t split;
	uint8_t *copy;

	if (size == 0)
		return 0;
	split = size > 1 ? data[0] % size : 0;
	rx = chatc_ws_rx_new(0, 4096 + (size_t)data[0] * 64);
	if (!rx)
		return 0;
	chatc_ws_rx_feed(rx, data + 1, split > 0 ? split - 1 : 0);
	for (int i = 0; i < 10000; i++) {
		int t = chatc_ws_rx_next(rx, &ev);
		if (t == CHATC_WS_EV_NONE || t == CHATC_WS_EV_ERROR)
			break;
		if (t == CHATC_WS_EV_MESSAGE && ev.len)
			(void)ev.data[ev.len - 1];
	}
	chatc_ws_rx_feed(rx, data + (split > 0 ? split : 1),
	                 size - (split > 0 ? split : 1));
	for (int i = 0; i < 10000; i++) {
		int t = chatc_ws_rx_next(rx, &ev);
		if (t == CHATC_WS_EV_NONE || t == CHATC_WS_EV_ERROR)
			break;
		if (t == CHATC_WS_EV_MESSAGE && ev.len)
			(void)ev.data[0];
	}
	chatc_ws_rx_free(rx);

	copy = malloc(size);
	if (!copy)
		return 0;
	for (int mode = -1; mode <= 1; mode++) {
		chatc_ws_frame f;
		long n;
		memcpy(copy, data, size);
		n = chatc_ws_parse_frame(copy, size, mode, 1 << 20, &f, NULL,
		                         0);
		if (n > 0 && f.len)
			(void)f.payload[f.len - 1];
	}
	free(copy);
	return 0;
}
