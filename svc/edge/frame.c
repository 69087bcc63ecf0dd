/* Client frame decisions and server frame encoding (no lws here). */
#include "edge_frame.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat_status.h"
#include "chat_util.h"

void edge_bucket_init(edge_bucket *b, int burst, int64_t now_us)
{
	b->tokens = burst;
	b->last_us = now_us;
}

int edge_bucket_take(edge_bucket *b, int rate, int burst, int64_t now_us)
{
	if (now_us > b->last_us) {
		b->tokens += (double)(now_us - b->last_us) * rate / 1e6;
		if (b->tokens > burst)
			b->tokens = burst;
	}
	b->last_us = now_us;
	if (b->tokens < 1.0)
		return 0;
	b->tokens -= 1.0;
	return 1;
}

static void fail(edge_act *act, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(edge_act *act, int code, const char *fmt, ...)
{
	va_list ap;
	act->kind = EDGE_ACT_ERROR;
	act->code = code;
	va_start(ap, fmt);
	vsnprintf(act->reason, sizeof act->reason, fmt, ap);
	va_end(ap);
}

static int member(const edge_sess_view *v, uint64_t channel_id)
{
	return channel_id && chat_u64map_get(v->channels, channel_id) != NULL;
}

static void decide_send(const Chat__SendReq *s, const edge_sess_view *v,
                        edge_act *act)
{
	size_t idlen = strlen(s->client_msg_id), blen = strlen(s->body);

	act->channel_id = s->channel_id;
	act->client_msg_id = s->client_msg_id;
	if (!member(v, s->channel_id))
		fail(act, CHAT_PERMISSION_DENIED,
		     "not a member of channel %" PRIu64, s->channel_id);
	else if (idlen < 1 || idlen > EDGE_MAX_CMID)
		fail(act, CHAT_INVALID_ARGUMENT,
		     "client_msg_id must be 1..%d bytes", EDGE_MAX_CMID);
	else if (!chat_utf8_valid_text(s->client_msg_id, idlen))
		fail(act, CHAT_INVALID_ARGUMENT,
		     "client_msg_id is not valid UTF-8 text");
	else if (blen == 0)
		fail(act, CHAT_INVALID_ARGUMENT, "empty message");
	else if (blen > EDGE_MAX_BODY)
		fail(act, CHAT_INVALID_ARGUMENT, "message exceeds %d bytes",
		     EDGE_MAX_BODY);
	else if (!chat_utf8_valid_text(s->body, blen))
		fail(act, CHAT_INVALID_ARGUMENT,
		     "message is not valid UTF-8 text");
	else if (!edge_bucket_take(v->bucket, v->send_rate, v->send_burst,
	                           v->now_us))
		fail(act, CHAT_RESOURCE_EXHAUSTED, "sending too fast");
	else
		act->kind = EDGE_ACT_SEND;
}

void edge_act_oversize(edge_act *act)
{
	memset(act, 0, sizeof *act);
	fail(act, CHAT_RESOURCE_EXHAUSTED, "frame exceeds %d bytes",
	     EDGE_MAX_FRAME);
}

void edge_frame_decide(chat_arena *a, const uint8_t *data, size_t len,
                       int is_text, const edge_sess_view *v, edge_act *act)
{
	Chat__ClientFrame *f;
	int dir;

	memset(act, 0, sizeof *act);
	if (is_text) {
		fail(act, CHAT_INVALID_ARGUMENT,
		     "text frames are not supported; send binary protobuf");
		return;
	}
	if (len > EDGE_MAX_FRAME) {
		edge_act_oversize(act);
		return;
	}
	f = (Chat__ClientFrame *)chat_arena_unpack(
	    a, &chat__client_frame__descriptor, data, len);
	if (!f) {
		fail(act, CHAT_INVALID_ARGUMENT, "malformed ClientFrame");
		return;
	}
	act->frame = f;
	act->req_id = f->req_id;
	act->kind = EDGE_ACT_RPC;
	switch (f->kind_case) {
	case CHAT__CLIENT_FRAME__KIND_SEND:
		if (!f->send)
			break;
		decide_send(f->send, v, act);
		return;
	case CHAT__CLIENT_FRAME__KIND_CREATE_CHANNEL:
	case CHAT__CLIENT_FRAME__KIND_OPEN_DM:
	case CHAT__CLIENT_FRAME__KIND_JOIN:
	case CHAT__CLIENT_FRAME__KIND_LEAVE:
	case CHAT__CLIENT_FRAME__KIND_LIST_CHANNELS:
	case CHAT__CLIENT_FRAME__KIND_MARK_READ:
	case CHAT__CLIENT_FRAME__KIND_WHO:
		/* The union holds one pointer; any member tells. */
		if (!f->join)
			break;
		return;
	case CHAT__CLIENT_FRAME__KIND_HISTORY:
		if (!f->history)
			break;
		act->channel_id = f->history->channel_id;
		dir = f->history->direction;
		if (dir != CHAT__HISTORY_REQ__DIRECTION__BEFORE &&
		    dir != CHAT__HISTORY_REQ__DIRECTION__AFTER)
			fail(act, CHAT_INVALID_ARGUMENT,
			     "unknown history direction %d",
			     dir);
		else if (f->history->limit > EDGE_MAX_HISTORY)
			fail(act, CHAT_INVALID_ARGUMENT,
			     "history limit must be 0..%d", EDGE_MAX_HISTORY);
		return;
	case CHAT__CLIENT_FRAME__KIND_SET_STATUS:
		if (!f->set_status)
			break;
		if ((int)f->set_status->status < CHAT__STATUS__STATUS_OFFLINE ||
		    (int)f->set_status->status > CHAT__STATUS__STATUS_BUSY)
			fail(act, CHAT_INVALID_ARGUMENT, "unknown status %d",
			     (int)f->set_status->status);
		return;
	case CHAT__CLIENT_FRAME__KIND_TYPING:
		if (!f->typing)
			break;
		act->kind = member(v, f->typing->channel_id) ? EDGE_ACT_TYPING
		                                              : EDGE_ACT_DROP;
		return;
	case CHAT__CLIENT_FRAME__KIND_RESUME:
		if (!f->resume)
			break;
		act->kind = EDGE_ACT_RESUME;
		return;
	case CHAT__CLIENT_FRAME__KIND_PING:
		if (!f->ping)
			break;
		act->kind = EDGE_ACT_PING;
		return;
	default:
		fail(act, CHAT_UNIMPLEMENTED, "unknown request type");
		return;
	}
	fail(act, CHAT_INVALID_ARGUMENT, "malformed ClientFrame");
}

chat_buf *edge_pack(const Chat__ServerFrame *f, uint8_t kind)
{
	size_t n = protobuf_c_message_get_packed_size(&f->base);
	chat_buf *b = chat_buf_new(n);
	if (!b)
		return NULL;
	protobuf_c_message_pack(&f->base, chat_buf_data(b));
	b->kind = kind;
	return b;
}

chat_buf *edge_pack_error(uint64_t req_id, int code, const char *reason,
                          uint64_t channel_id, const char *client_msg_id)
{
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__Error e = CHAT__ERROR__INIT;

	e.code = (Chat__Code)code;
	e.reason = (char *)(reason ? reason : chat_strerror(code));
	e.retryable = chat_status_retryable(code);
	e.channel_id = channel_id;
	if (client_msg_id)
		e.client_msg_id = (char *)client_msg_id;
	f.req_id = req_id;
	f.kind_case = CHAT__SERVER_FRAME__KIND_ERROR;
	f.error = &e;
	return edge_pack(&f, EDGE_BUF_NORMAL);
}

chat_buf *edge_pack_act_error(const edge_act *act)
{
	return edge_pack_error(act->req_id, act->code, act->reason,
	                       act->channel_id, act->client_msg_id);
}

chat_buf *edge_pack_pong(uint64_t req_id, int64_t client_time_ms,
                         int64_t server_time_ms)
{
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__Pong p = CHAT__PONG__INIT;

	p.client_time_ms = client_time_ms;
	p.server_time_ms = server_time_ms;
	f.req_id = req_id;
	f.kind_case = CHAT__SERVER_FRAME__KIND_PONG;
	f.pong = &p;
	return edge_pack(&f, EDGE_BUF_NORMAL);
}
