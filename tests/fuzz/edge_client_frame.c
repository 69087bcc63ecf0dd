/* Fuzz the edge's client frame handling: raw bytes (as one WebSocket
 * message) through edge_frame_decide, then whatever the edge would do next
 * without a socket: encode the Error / Pong answer, or the ingress record
 * of a valid send, and check that it decodes. The first byte picks text
 * vs binary and the session's channel set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_arena.h"
#include "chat_map.h"
#include "chat_status.h"
#include "client.pb-c.h"
#include "edge_frame.h"
#include "log.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_decodes(chat_buf *b)
{
	Chat__ServerFrame *f;
	if (!b)
		return;
	f = chat__server_frame__unpack(NULL, b->len, chat_buf_data(b));
	if (!f)
		abort();
	if (f->kind_case == CHAT__SERVER_FRAME__KIND_ERROR &&
	    (f->error->code == CHAT__CODE__OK || !f->error->reason[0]))
		abort();
	chat__server_frame__free_unpacked(f, NULL);
	chat_buf_rele(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	chat_arena *a;
	chat_u64map chans;
	edge_bucket bucket;
	edge_sess_view v;
	edge_act act;
	uint8_t flags = size ? data[0] : 0;

	if (size)
		data++, size--;
	a = chat_arena_new();
	if (!a)
		return 0;
	chat_u64map_init(&chans);
	if (flags & 2) {
		chat_u64map_put(&chans, 1, (void *)1);
		chat_u64map_put(&chans, 10, (void *)1);
	}
	edge_bucket_init(&bucket, 2, 0);
	v.channels = &chans;
	v.bucket = &bucket;
	v.send_rate = 1;
	v.send_burst = 2;
	v.now_us = (int64_t)(flags >> 4) * 1000000;

	edge_frame_decide(a, data, size, flags & 1, &v, &act);
	switch (act.kind) {
	case EDGE_ACT_ERROR:
		check_decodes(edge_pack_act_error(&act));
		break;
	case EDGE_ACT_PING:
		check_decodes(edge_pack_pong(
		    act.req_id, act.frame->ping->client_time_ms, 1));
		break;
	case EDGE_ACT_SEND: {
		/* What edge_produce builds. */
		Chat__IngressRecord r = CHAT__INGRESS_RECORD__INIT;
		size_t n;
		uint8_t *buf;
		if (!chat_u64map_get(&chans, act.frame->send->channel_id) ||
		    strlen(act.frame->send->body) > EDGE_MAX_BODY)
			abort();
		r.channel_id = act.frame->send->channel_id;
		r.client_msg_id = act.frame->send->client_msg_id;
		r.body = act.frame->send->body;
		n = protobuf_c_message_get_packed_size(&r.base);
		buf = malloc(n + 1);
		if (buf) {
			protobuf_c_message_pack(&r.base, buf);
			free(buf);
		}
		break;
	}
	case EDGE_ACT_TYPING:
	case EDGE_ACT_RESUME:
	case EDGE_ACT_RPC:
		if (!act.frame)
			abort();
		/* Re-encode the request, as a worker would use it. */
		{
			size_t n = 0;
			(void)chat_arena_pack(a, &act.frame->base, &n);
		}
		break;
	case EDGE_ACT_DROP:
		break;
	}
	chat_u64map_fini(&chans);
	chat_arena_free(a);
	return 0;
}
