/* WebSocket client: codec, receive state machine, connection. */
#include "chatc_ws.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat_util.h"
#include "chatc_http.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ---- codec ---- */

int chatc_ws_accept_key(const char *key, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	out[0] = '\0';
	if (!ctx)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
	     EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 chars + NUL */
	return 0;
}

size_t chatc_ws_header_len(size_t len, int masked)
{
	size_t h = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
	return h + (masked ? 4 : 0);
}

size_t chatc_ws_encode(uint8_t *out, int fin, int opcode, const void *payload,
                       size_t len, const uint8_t mask[4])
{
	size_t h = 0;
	const uint8_t *p = payload;

	out[h++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126) {
		out[h++] = (uint8_t)((mask ? 0x80 : 0) | len);
	} else if (len <= 0xffff) {
		out[h++] = (uint8_t)((mask ? 0x80 : 0) | 126);
		out[h++] = (uint8_t)(len >> 8);
		out[h++] = (uint8_t)len;
	} else {
		out[h++] = (uint8_t)((mask ? 0x80 : 0) | 127);
		for (int i = 7; i >= 0; i--)
			out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	if (mask) {
		memcpy(out + h, mask, 4);
		h += 4;
		for (size_t i = 0; i < len; i++)
			out[h + i] = p[i] ^ mask[i & 3];
	} else if (len) {
		memcpy(out + h, p, len);
	}
	return h + len;
}

long chatc_ws_parse_frame(uint8_t *buf, size_t len, int must_mask,
                          uint64_t max_payload, chatc_ws_frame *f, char *err,
                          size_t errlen)
{
	size_t h = 2;
	uint64_t plen;
	uint8_t mask[4] = {0};

	memset(f, 0, sizeof *f);
	if (len < 2)
		return 0;
	f->fin = (buf[0] >> 7) & 1;
	f->rsv = (buf[0] >> 4) & 7;
	f->opcode = buf[0] & 0x0f;
	f->masked = (buf[1] >> 7) & 1;
	plen = buf[1] & 0x7f;
	if (f->rsv) {
		chat_errf(err, errlen, "frame with RSV bits set (no extension "
		                    "was negotiated)");
		return -1;
	}
	if (must_mask == 1 && !f->masked) {
		chat_errf(err, errlen, "unmasked frame from a client");
		return -1;
	}
	if (must_mask == 0 && f->masked) {
		chat_errf(err, errlen, "masked frame from the server");
		return -1;
	}
	if (plen == 126) {
		if (len < 4)
			return 0;
		plen = ((uint64_t)buf[2] << 8) | buf[3];
		h = 4;
	} else if (plen == 127) {
		if (len < 10)
			return 0;
		plen = 0;
		for (int i = 0; i < 8; i++)
			plen = (plen << 8) | buf[2 + i];
		h = 10;
		if (plen >> 63) {
			chat_errf(err, errlen,
			       "frame length with the top bit set");
			return -1;
		}
	}
	if (f->opcode >= 8) {
		if (plen > 125) {
			chat_errf(err, errlen,
			       "control frame with %llu bytes (limit 125)",
			       (unsigned long long)plen);
			return -1;
		}
		if (!f->fin) {
			chat_errf(err, errlen, "fragmented control frame");
			return -1;
		}
	}
	if (plen > max_payload) {
		chat_errf(err, errlen,
		       "message too large: %llu bytes, limit %llu",
		       (unsigned long long)plen,
		       (unsigned long long)max_payload);
		return -2;
	}
	if (f->masked) {
		if (len < h + 4)
			return 0;
		memcpy(mask, buf + h, 4);
		h += 4;
	}
	if (len - h < plen)
		return 0;
	f->payload = buf + h;
	f->len = plen;
	if (f->masked)
		for (uint64_t i = 0; i < plen; i++)
			f->payload[i] ^= mask[i & 3];
	return (long)(h + plen);
}

/* ---- receive state machine ---- */

struct chatc_ws_rx {
	int must_mask;
	size_t max_message;
	uint8_t *in;     /* received bytes */
	size_t in_len;
	size_t in_cap;
	size_t in_off;   /* parsed up to here */
	uint8_t *msg;    /* a fragmented message being reassembled */
	size_t msg_len;
	size_t msg_cap;
	int frag_opcode; /* 0 when no fragmented message is open */
	int msg_done;    /* msg was handed out: reset on the next call */
	int failed;
	int fail_code;
	char fail[160];
};

chatc_ws_rx *chatc_ws_rx_new(int must_mask, size_t max_message)
{
	chatc_ws_rx *rx = calloc(1, sizeof *rx);
	if (!rx)
		return NULL;
	rx->must_mask = must_mask;
	rx->max_message = max_message ? max_message : CHATC_WS_MAX_MESSAGE;
	return rx;
}

void chatc_ws_rx_free(chatc_ws_rx *rx)
{
	if (!rx)
		return;
	free(rx->in);
	free(rx->msg);
	free(rx);
}

int chatc_ws_rx_feed(chatc_ws_rx *rx, const void *data, size_t len)
{
	if (rx->in_off > 0) {
		memmove(rx->in, rx->in + rx->in_off, rx->in_len - rx->in_off);
		rx->in_len -= rx->in_off;
		rx->in_off = 0;
	}
	if (rx->in_len + len > rx->in_cap) {
		size_t nc = rx->in_cap ? rx->in_cap : 4096;
		uint8_t *nb;
		while (nc < rx->in_len + len)
			nc *= 2;
		nb = realloc(rx->in, nc);
		if (!nb)
			return -1;
		rx->in = nb;
		rx->in_cap = nc;
	}
	if (len)
		memcpy(rx->in + rx->in_len, data, len);
	rx->in_len += len;
	return 0;
}

static int rx_fail(chatc_ws_rx *rx, chatc_ws_event *ev, int code,
                   const char *why)
{
	if (!rx->failed) {
		rx->failed = 1;
		rx->fail_code = code;
		snprintf(rx->fail, sizeof rx->fail, "%s", why);
	}
	ev->type = CHATC_WS_EV_ERROR;
	ev->error_code = rx->fail_code;
	snprintf(ev->error, sizeof ev->error, "%s", rx->fail);
	return ev->type;
}

static int msg_append(chatc_ws_rx *rx, const uint8_t *p, size_t n)
{
	if (rx->msg_len + n > rx->msg_cap) {
		size_t nc = rx->msg_cap ? rx->msg_cap : 4096;
		uint8_t *nb;
		while (nc < rx->msg_len + n)
			nc *= 2;
		nb = realloc(rx->msg, nc);
		if (!nb)
			return -1;
		rx->msg = nb;
		rx->msg_cap = nc;
	}
	if (n)
		memcpy(rx->msg + rx->msg_len, p, n);
	rx->msg_len += n;
	return 0;
}

static void parse_close(const chatc_ws_frame *f, chatc_ws_event *ev)
{
	size_t rl;
	ev->type = CHATC_WS_EV_CLOSE;
	ev->close_code = 1005;
	if (f->len < 2)
		return;
	ev->close_code = (f->payload[0] << 8) | f->payload[1];
	rl = (size_t)f->len - 2;
	if (rl >= sizeof ev->close_reason)
		rl = sizeof ev->close_reason - 1;
	for (size_t i = 0; i < rl; i++) {
		uint8_t ch = f->payload[2 + i];
		ev->close_reason[i] =
		    (char)(ch < 0x20 || ch == 0x7f ? '?' : ch);
	}
	ev->close_reason[rl] = '\0';
}

int chatc_ws_rx_next(chatc_ws_rx *rx, chatc_ws_event *ev)
{
	memset(ev, 0, sizeof *ev);
	if (rx->failed)
		return rx_fail(rx, ev, 0, NULL);
	if (rx->msg_done) {
		rx->msg_done = 0;
		rx->msg_len = 0;
	}
	for (;;) {
		chatc_ws_frame f;
		char why[128] = "";
		size_t avail = rx->in_len - rx->in_off;
		uint8_t *p;
		uint64_t limit;
		long n;

		if (avail == 0)
			return CHATC_WS_EV_NONE;
		p = rx->in + rx->in_off;
		if ((p[0] & 0x0f) >= 8)
			limit = 125;
		else if ((p[0] & 0x0f) == CHATC_WS_CONT)
			limit = rx->max_message - rx->msg_len;
		else
			limit = rx->max_message;
		n = chatc_ws_parse_frame(p, avail, rx->must_mask, limit, &f,
		                         why, sizeof why);
		if (n == 0)
			return CHATC_WS_EV_NONE;
		if (n == -2)
			return rx_fail(rx, ev, 1009, why);
		if (n < 0)
			return rx_fail(rx, ev, 1002, why);
		rx->in_off += (size_t)n;
		switch (f.opcode) {
		case CHATC_WS_CONT:
			if (!rx->frag_opcode)
				return rx_fail(rx, ev, 1002,
				               "continuation frame without a "
				               "message to continue");
			if (msg_append(rx, f.payload, (size_t)f.len) != 0)
				return rx_fail(rx, ev, 1011, "out of memory");
			if (!f.fin)
				continue;
			ev->type = CHATC_WS_EV_MESSAGE;
			ev->opcode = rx->frag_opcode;
			ev->data = rx->msg;
			ev->len = rx->msg_len;
			rx->frag_opcode = 0;
			rx->msg_done = 1;
			return ev->type;
		case CHATC_WS_TEXT:
		case CHATC_WS_BINARY:
			if (rx->frag_opcode)
				return rx_fail(rx, ev, 1002,
				               "new message before the "
				               "fragmented one ended");
			if (f.fin) {
				ev->type = CHATC_WS_EV_MESSAGE;
				ev->opcode = f.opcode;
				ev->data = f.payload;
				ev->len = (size_t)f.len;
				return ev->type;
			}
			rx->frag_opcode = f.opcode;
			rx->msg_len = 0;
			if (msg_append(rx, f.payload, (size_t)f.len) != 0)
				return rx_fail(rx, ev, 1011, "out of memory");
			continue;
		case CHATC_WS_CLOSE:
			if (f.len == 1)
				return rx_fail(rx, ev, 1002,
				               "close frame with a 1-byte "
				               "payload");
			parse_close(&f, ev);
			return ev->type;
		case CHATC_WS_PING:
		case CHATC_WS_PONG:
			ev->type = f.opcode == CHATC_WS_PING
			               ? CHATC_WS_EV_PING
			               : CHATC_WS_EV_PONG;
			ev->data = f.payload;
			ev->len = (size_t)f.len;
			return ev->type;
		default:
			snprintf(why, sizeof why, "reserved opcode 0x%x",
			         f.opcode);
			return rx_fail(rx, ev, 1002, why);
		}
	}
}

/* ---- connection ---- */

struct chatc_ws {
	int fd;
	chatc_ws_rx *rx;
	uint8_t *out;
	size_t out_len;
	size_t out_off;
	size_t out_cap;
	uint64_t prng;
	int sent_close;
	int got_close;
	int dead;
	int close_code;
	char close_reason[128];
};

chatc_ws *chatc_ws_from_fd(int fd)
{
	chatc_ws *ws = calloc(1, sizeof *ws);
	if (!ws)
		return NULL;
	ws->rx = chatc_ws_rx_new(0, 0);
	if (!ws->rx) {
		free(ws);
		return NULL;
	}
	ws->fd = fd;
	ws->prng = chat_random_u64();
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
	return ws;
}

void chatc_ws_free(chatc_ws *ws)
{
	if (!ws)
		return;
	if (ws->fd >= 0)
		close(ws->fd);
	chatc_ws_rx_free(ws->rx);
	free(ws->out);
	free(ws);
}

int chatc_ws_fd(const chatc_ws *ws)
{
	return ws ? ws->fd : -1;
}

/* splitmix64: masks need to be unpredictable to intermediaries, not
 * secret; seeded from the system's CSPRNG. */
static void next_mask(chatc_ws *ws, uint8_t mask[4])
{
	uint64_t z = (ws->prng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	memcpy(mask, &z, 4);
}

static uint8_t *out_reserve(chatc_ws *ws, size_t n)
{
	if (ws->out_off > 0 && ws->out_off == ws->out_len) {
		ws->out_off = ws->out_len = 0;
	}
	if (ws->out_len + n > ws->out_cap) {
		size_t nc = ws->out_cap ? ws->out_cap : 4096;
		uint8_t *nb;
		if (ws->out_off > 0) {
			memmove(ws->out, ws->out + ws->out_off,
			        ws->out_len - ws->out_off);
			ws->out_len -= ws->out_off;
			ws->out_off = 0;
		}
		while (nc < ws->out_len + n)
			nc *= 2;
		if (nc != ws->out_cap) {
			nb = realloc(ws->out, nc);
			if (!nb)
				return NULL;
			ws->out = nb;
			ws->out_cap = nc;
		}
	}
	return ws->out + ws->out_len;
}

int chatc_ws_send_frame(chatc_ws *ws, int fin, int opcode, const void *data,
                        size_t len)
{
	uint8_t mask[4], *p;
	if (!ws || ws->dead)
		return -1;
	next_mask(ws, mask);
	p = out_reserve(ws, chatc_ws_header_len(len, 1) + len);
	if (!p)
		return -1;
	ws->out_len += chatc_ws_encode(p, fin, opcode, data, len, mask);
	return 0;
}

int chatc_ws_send(chatc_ws *ws, int opcode, const void *data, size_t len)
{
	if (!ws || ws->sent_close || ws->got_close || ws->dead)
		return -1;
	if (opcode != CHATC_WS_BINARY && opcode != CHATC_WS_TEXT)
		return -1;
	return chatc_ws_send_frame(ws, 1, opcode, data, len);
}

int chatc_ws_send_raw(chatc_ws *ws, const void *data, size_t len)
{
	uint8_t *p;
	if (!ws || ws->dead)
		return -1;
	p = out_reserve(ws, len);
	if (!p)
		return -1;
	memcpy(p, data, len);
	ws->out_len += len;
	return 0;
}

int chatc_ws_want_write(const chatc_ws *ws)
{
	return ws && !ws->dead && ws->out_len > ws->out_off;
}

size_t chatc_ws_pending(const chatc_ws *ws)
{
	return ws ? ws->out_len - ws->out_off : 0;
}

int chatc_ws_flush(chatc_ws *ws, char *err, size_t errlen)
{
	if (!ws || ws->dead) {
		chat_errf(err, errlen, "connection is closed");
		return -1;
	}
	while (ws->out_off < ws->out_len) {
		ssize_t n = send(ws->fd, ws->out + ws->out_off,
		                 ws->out_len - ws->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			chat_errf(err, errlen, "send: %s", strerror(errno));
			ws->dead = 1;
			return -1;
		}
		ws->out_off += (size_t)n;
	}
	ws->out_off = ws->out_len = 0;
	return 0;
}

int chatc_ws_close(chatc_ws *ws, int code, const char *reason)
{
	uint8_t pl[125];
	size_t rl = reason ? strlen(reason) : 0;
	if (!ws || ws->dead || ws->sent_close)
		return -1;
	if (rl > 123)
		rl = 123;
	pl[0] = (uint8_t)(code >> 8);
	pl[1] = (uint8_t)code;
	if (rl)
		memcpy(pl + 2, reason, rl);
	ws->sent_close = 1;
	return chatc_ws_send_frame(ws, 1, CHATC_WS_CLOSE, pl, rl + 2);
}

int chatc_ws_close_code(const chatc_ws *ws)
{
	return ws ? ws->close_code : 0;
}

const char *chatc_ws_close_reason(const chatc_ws *ws)
{
	return ws ? ws->close_reason : "";
}

int chatc_ws_read(chatc_ws *ws, const uint8_t **data, size_t *len,
                  int *opcode, char *err, size_t errlen)
{
	uint8_t buf[65536];

	if (!ws || ws->dead) {
		chat_errf(err, errlen, "connection is closed");
		return -1;
	}
	for (;;) {
		chatc_ws_event ev;
		ssize_t n;

		switch (chatc_ws_rx_next(ws->rx, &ev)) {
		case CHATC_WS_EV_MESSAGE:
			*data = ev.data;
			*len = ev.len;
			*opcode = ev.opcode;
			return 1;
		case CHATC_WS_EV_PING:
			if (!ws->sent_close)
				chatc_ws_send_frame(ws, 1, CHATC_WS_PONG,
				                    ev.data, ev.len);
			chatc_ws_flush(ws, NULL, 0);
			continue;
		case CHATC_WS_EV_PONG:
			continue;
		case CHATC_WS_EV_CLOSE:
			ws->got_close = 1;
			ws->close_code = ev.close_code;
			snprintf(ws->close_reason, sizeof ws->close_reason,
			         "%s", ev.close_reason);
			if (!ws->sent_close) {
				/* Echo the code, as RFC 6455 5.5.1 asks. */
				if (ev.close_code == 1005) {
					ws->sent_close = 1;
					chatc_ws_send_frame(ws, 1,
					                    CHATC_WS_CLOSE,
					                    NULL, 0);
				} else {
					chatc_ws_close(ws, ev.close_code, "");
				}
				chatc_ws_flush(ws, NULL, 0);
			}
			ws->dead = 1;
			chat_errf(err, errlen, "closed by the server: %d%s%s",
			       ev.close_code, ev.close_reason[0] ? " " : "",
			       ev.close_reason);
			return -2;
		case CHATC_WS_EV_ERROR:
			if (!ws->sent_close) {
				chatc_ws_close(ws, ev.error_code, ev.error);
				chatc_ws_flush(ws, NULL, 0);
			}
			ws->dead = 1;
			chat_errf(err, errlen, "%s", ev.error);
			return -1;
		default:
			break;
		}
		n = recv(ws->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			ws->dead = 1;
			chat_errf(err, errlen, "recv: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			ws->dead = 1;
			chat_errf(err, errlen,
			       "connection closed by the server without a "
			       "close frame");
			return -1;
		}
		if (chatc_ws_rx_feed(ws->rx, buf, (size_t)n) != 0) {
			ws->dead = 1;
			chat_errf(err, errlen, "out of memory");
			return -1;
		}
	}
}

/* Make the body of a refused upgrade printable on one line. */
static void body_text(const char *body, size_t len, char *out, size_t outlen)
{
	size_t o = 0;
	while (len > 0 && isspace((unsigned char)body[len - 1]))
		len--;
	for (size_t i = 0; i < len && o + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)body[i];
		out[o++] = (char)(ch == '\n' || ch == '\r' || ch == '\t'
		                      ? ' '
		                      : (ch < 0x20 || ch == 0x7f ? '?' : ch));
	}
	out[o] = '\0';
}

static int has_token(const char *list, const char *tok)
{
	size_t tl = strlen(tok);
	const char *p = list;
	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (strncasecmp(p, tok, tl) == 0 &&
		    (p[tl] == '\0' || p[tl] == ',' || p[tl] == ' '))
			return 1;
		p = strchr(p, ',');
	}
	return 0;
}

/* Read the answer to the upgrade; on 101 verify it, else describe it. */
static int read_upgrade(int fd, const char *accept, int64_t deadline,
                        chatc_ws_rx *rx, int *http_status, char *err,
                        size_t errlen)
{
	char buf[CHATC_HTTP_MAX_HEAD + 4096];
	size_t len = 0;
	chatc_http_head h;
	int rc, eof = 0;
	const char *v;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - chat_mono_ms();
		ssize_t n;
		if (len > 0) {
			rc = chatc_http_parse_head(buf, len, &h, err, errlen);
			if (rc < 0)
				return -1;
			if (rc > 0)
				break;
		}
		if (eof) {
			chat_errf(err, errlen,
			       "connection closed during the WebSocket "
			       "upgrade");
			return -1;
		}
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			chat_errf(err, errlen,
			       "timed out waiting for the WebSocket upgrade");
			return -1;
		}
		n = recv(fd, buf + len, sizeof buf - len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			chat_errf(err, errlen, "recv: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			eof = 1;
		len += (size_t)n;
	}
	if (h.status != 101) {
		/* Collect the body (bounded, briefly) to report it. */
		size_t want = h.content_length >= 0
		                  ? (size_t)h.content_length
		                  : sizeof buf - h.head_len;
		int64_t body_deadline = chat_mono_ms() + 500;
		char text[512];
		if (body_deadline > deadline)
			body_deadline = deadline;
		if (want > sizeof buf - h.head_len)
			want = sizeof buf - h.head_len;
		while (!eof && len - h.head_len < want) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			int64_t left = body_deadline - chat_mono_ms();
			ssize_t n;
			if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
				break;
			n = recv(fd, buf + len, sizeof buf - len, MSG_DONTWAIT);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		if (len - h.head_len > want)
			len = h.head_len + want;
		body_text(buf + h.head_len, len - h.head_len, text,
		          sizeof text);
		if (http_status)
			*http_status = h.status;
		chat_errf(err, errlen, "HTTP %d: %s", h.status,
		       text[0] ? text : h.reason);
		return -1;
	}
	v = chatc_http_header_get(&h, "Upgrade");
	if (!v || strcasecmp(v, "websocket") != 0) {
		chat_errf(err, errlen, "bad upgrade answer: Upgrade is '%s'",
		       v ? v : "(missing)");
		return -1;
	}
	v = chatc_http_header_get(&h, "Connection");
	if (!v || !has_token(v, "upgrade")) {
		chat_errf(err, errlen, "bad upgrade answer: Connection is '%s'",
		       v ? v : "(missing)");
		return -1;
	}
	v = chatc_http_header_get(&h, "Sec-WebSocket-Accept");
	if (!v || strcmp(v, accept) != 0) {
		chat_errf(err, errlen,
		       "bad upgrade answer: Sec-WebSocket-Accept is '%s', "
		       "want '%s'",
		       v ? v : "(missing)", accept);
		return -1;
	}
	if (len > h.head_len &&
	    chatc_ws_rx_feed(rx, buf + h.head_len, len - h.head_len) != 0) {
		chat_errf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int chatc_ws_connect(const char *url, const char *token, int timeout_ms,
                     chatc_ws **out, int *http_status, char *err,
                     size_t errlen)
{
	int64_t deadline = chat_mono_ms() + timeout_ms;
	chatc_url u;
	uint8_t nonce[16];
	char key[32], accept[29], *req = NULL;
	size_t tl = token ? strlen(token) : 0;
	uint64_t r1 = chat_random_u64(), r2 = chat_random_u64();
	chatc_ws *ws = NULL;
	int fd = -1, n;

	*out = NULL;
	if (http_status)
		*http_status = 0;
	if (chatc_url_parse(url, &u, err, errlen) != 0)
		return -1;
	if (strcmp(u.scheme, "ws") != 0) {
		chat_errf(err, errlen, "the edge URL must be ws:// (got '%s')",
		       url);
		return -1;
	}
	for (size_t i = 0; i < tl; i++) {
		if ((unsigned char)token[i] <= ' ' || token[i] == 0x7f) {
			chat_errf(err, errlen, "bad character in the token");
			return -1;
		}
	}
	memcpy(nonce, &r1, 8);
	memcpy(nonce + 8, &r2, 8);
	EVP_EncodeBlock((unsigned char *)key, nonce, 16);
	if (chatc_ws_accept_key(key, accept) != 0) {
		chat_errf(err, errlen, "SHA-1 failed");
		return -1;
	}
	fd = chatc_tcp_connect(u.host, u.port, timeout_ms, err, errlen);
	if (fd < 0)
		return -1;
	req = malloc(tl + strlen(u.path) + strlen(u.host) + 512);
	ws = chatc_ws_from_fd(fd);
	if (!req || !ws) {
		chat_errf(err, errlen, "out of memory");
		goto fail;
	}
	fd = -1; /* owned by ws */
	n = sprintf(req,
	            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
	            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	            "Sec-WebSocket-Version: 13\r\nUser-Agent: chatc\r\n",
	            u.path, u.host, u.port, key);
	if (token)
		n += sprintf(req + n, "Authorization: Bearer %s\r\n", token);
	n += sprintf(req + n, "\r\n");
	if (chatc_write_all(ws->fd, req, (size_t)n,
	                    (int)(deadline - chat_mono_ms()), err, errlen) != 0)
		goto fail;
	if (read_upgrade(ws->fd, accept, deadline, ws->rx, http_status, err,
	                 errlen) != 0)
		goto fail;
	free(req);
	*out = ws;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(req);
	chatc_ws_free(ws);
	return -1;
}
