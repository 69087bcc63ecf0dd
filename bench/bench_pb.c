/* Hand-coded protobuf wire format for the load generator's hot path. */
#include <string.h>

#include "bench_pb.h"

static size_t put_varint(uint8_t *o, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		o[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	o[n++] = (uint8_t)v;
	return n;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t bench_pb_send(uint8_t *out, uint64_t req_id, uint64_t channel_id,
                     const char *cmid, size_t cmid_len, const char *body,
                     size_t body_len)
{
	size_t inner, n = 0;

	inner = 1 + varint_len(channel_id) + 1 + varint_len(cmid_len) +
	        cmid_len + 1 + varint_len(body_len) + body_len;
	out[n++] = 0x08; /* 1: req_id, varint */
	n += put_varint(out + n, req_id);
	out[n++] = (10 << 3) | 2; /* 10: send, length-delimited */
	n += put_varint(out + n, inner);
	out[n++] = 0x08; /* SendReq.channel_id */
	n += put_varint(out + n, channel_id);
	out[n++] = 0x12; /* SendReq.client_msg_id */
	n += put_varint(out + n, cmid_len);
	memcpy(out + n, cmid, cmid_len);
	n += cmid_len;
	out[n++] = 0x1a; /* SendReq.body */
	n += put_varint(out + n, body_len);
	memcpy(out + n, body, body_len);
	n += body_len;
	return n;
}

/* ---- reading ---- */

struct rd {
	const uint8_t *p, *end;
};

static int get_varint(struct rd *r, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned sh = 0; sh < 70; sh += 7) {
		uint8_t b;
		if (r->p >= r->end)
			return -1;
		b = *r->p++;
		if (sh == 63 && b > 1)
			return -1;
		x |= (uint64_t)(b & 0x7f) << sh;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* The next field: its number and wire type; for length-delimited fields
 * the bytes, for varints the value. Fixed 32/64 are skipped. Returns 1,
 * 0 at the end, -1 on bad input. */
static int next_field(struct rd *r, unsigned *num, unsigned *wt, uint64_t *v,
                      const uint8_t **data, size_t *len)
{
	uint64_t key, l;

	if (r->p >= r->end)
		return 0;
	if (get_varint(r, &key) != 0 || (key >> 3) == 0 ||
	    (key >> 3) > 0x1fffffff)
		return -1;
	*num = (unsigned)(key >> 3);
	*wt = (unsigned)(key & 7);
	switch (*wt) {
	case 0:
		return get_varint(r, v) == 0 ? 1 : -1;
	case 1:
		if (r->end - r->p < 8)
			return -1;
		r->p += 8;
		return 1;
	case 2:
		if (get_varint(r, &l) != 0 || l > (uint64_t)(r->end - r->p))
			return -1;
		*data = r->p;
		*len = (size_t)l;
		r->p += l;
		return 1;
	case 5:
		if (r->end - r->p < 4)
			return -1;
		r->p += 4;
		return 1;
	default:
		return -1;
	}
}

static int parse_inner(int kind, const uint8_t *p, size_t len, bench_sframe *f)
{
	struct rd r = {p, p + len};
	unsigned num, wt;
	uint64_t v = 0;
	const uint8_t *d = NULL;
	size_t dl = 0;
	int rc;

	while ((rc = next_field(&r, &num, &wt, &v, &d, &dl)) == 1) {
		switch (kind) {
		case BENCH_K_MESSAGE:
			if (num == 1 && wt == 0)
				f->channel_id = v;
			else if (num == 2 && wt == 0)
				f->seq = v;
			else if (num == 3 && wt == 0)
				f->sender_id = v;
			else if (num == 7 && wt == 0)
				f->sent_at_ms = (int64_t)v;
			else if (num == 8 && wt == 0)
				f->stored_at_ms = (int64_t)v;
			else if (num == 6 && wt == 2) {
				f->body = d;
				f->body_len = dl;
			}
			break;
		case BENCH_K_SEND_ACK:
			if (num == 1 && wt == 0)
				f->channel_id = v;
			break;
		case BENCH_K_ERROR:
			if (num == 1 && wt == 0)
				f->code = (int)v;
			else if (num == 3 && wt == 0)
				f->retryable = v != 0;
			else if (num == 4 && wt == 0)
				f->channel_id = v;
			break;
		case BENCH_K_WELCOME:
			if (num == 1 && wt == 0)
				f->user_id = v;
			break;
		default:
			break;
		}
	}
	return rc;
}

int bench_pb_parse(const uint8_t *p, size_t len, bench_sframe *f)
{
	struct rd r = {p, p + len};
	unsigned num, wt;
	uint64_t v = 0;
	const uint8_t *d = NULL;
	size_t dl = 0;
	int rc;

	memset(f, 0, sizeof *f);
	while ((rc = next_field(&r, &num, &wt, &v, &d, &dl)) == 1) {
		if (num == 1 && wt == 0) {
			f->req_id = v;
		} else if (num >= 10 && wt == 2) {
			/* proto3 oneof: the last one wins. */
			uint64_t rid = f->req_id;
			memset(f, 0, sizeof *f);
			f->req_id = rid;
			f->kind = (int)num;
			if (parse_inner((int)num, d, dl, f) != 0)
				return -1;
		}
	}
	return rc;
}
