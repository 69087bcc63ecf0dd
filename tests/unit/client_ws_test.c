/* The client's WebSocket codec, receive state machine, HTTP parser, and a
 * handshake + round trip against a small WebSocket server written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatc.h"
#include "chatc_http.h"
#include "chatc_ws.h"

/* ---- codec ---- */

static void test_accept_key(void **state)
{
	char out[29];
	(void)state;
	assert_int_equal(chatc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out),
	                 0);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_encode_masked(void **state)
{
	/* RFC 6455 5.7: a masked "Hello". */
	static const uint8_t want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
	                               0x9f, 0x4d, 0x51, 0x58};
	const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	uint8_t out[32];
	chatc_ws_frame f;
	size_t n;
	(void)state;

	assert_int_equal(chatc_ws_header_len(5, 1), 6);
	n = chatc_ws_encode(out, 1, CHATC_WS_TEXT, "Hello", 5, mask);
	assert_int_equal(n, sizeof want);
	assert_memory_equal(out, want, sizeof want);
	/* A server-side parse unmasks it. */
	assert_int_equal(chatc_ws_parse_frame(out, n, 1, 100, &f, NULL, 0),
	                 (long)n);
	assert_int_equal(f.opcode, CHATC_WS_TEXT);
	assert_true(f.fin);
	assert_int_equal(f.len, 5);
	assert_memory_equal(f.payload, "Hello", 5);
	/* A client refuses a masked frame. */
	n = chatc_ws_encode(out, 1, CHATC_WS_TEXT, "Hello", 5, mask);
	assert_int_equal(chatc_ws_parse_frame(out, n, 0, 100, &f, NULL, 0),
	                 -1);
}

static void test_header_lengths(void **state)
{
	uint8_t hdr[16];
	(void)state;
	assert_int_equal(chatc_ws_header_len(125, 0), 2);
	assert_int_equal(chatc_ws_header_len(126, 0), 4);
	assert_int_equal(chatc_ws_header_len(65535, 0), 4);
	assert_int_equal(chatc_ws_header_len(65536, 0), 10);
	assert_int_equal(chatc_ws_header_len(65536, 1), 14);
	chatc_ws_encode(hdr, 1, 2, NULL, 0, NULL);
	assert_int_equal(hdr[0], 0x82);
	assert_int_equal(hdr[1], 0);
}

/* Encode a server (unmasked) frame into a fresh buffer. */
static uint8_t *server_frame(int fin, int op, const void *p, size_t len,
                             size_t *out_len)
{
	uint8_t *b = malloc(chatc_ws_header_len(len, 0) + len);
	assert_non_null(b);
	*out_len = chatc_ws_encode(b, fin, op, p, len, NULL);
	return b;
}

static void check_length_class(size_t len)
{
	uint8_t *payload = malloc(len), *fr;
	size_t n;
	chatc_ws_rx *rx = chatc_ws_rx_new(0, 0);
	chatc_ws_event ev;

	assert_non_null(payload);
	for (size_t i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 7);
	fr = server_frame(1, CHATC_WS_BINARY, payload, len, &n);
	assert_int_equal(n, chatc_ws_header_len(len, 0) + len);
	/* Everything but the last byte: not yet. */
	assert_int_equal(chatc_ws_rx_feed(rx, fr, n - 1), 0);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_NONE);
	assert_int_equal(chatc_ws_rx_feed(rx, fr + n - 1, 1), 0);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_MESSAGE);
	assert_int_equal(ev.opcode, CHATC_WS_BINARY);
	assert_int_equal(ev.len, len);
	assert_memory_equal(ev.data, payload, len);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_NONE);
	chatc_ws_rx_free(rx);
	free(fr);
	free(payload);
}

static void test_length_classes(void **state)
{
	(void)state;
	check_length_class(5);      /* 7-bit */
	check_length_class(125);
	check_length_class(126);    /* 16-bit */
	check_length_class(300);
	check_length_class(65535);
	check_length_class(65536);  /* 64-bit */
	check_length_class(70000);
}

static void test_byte_by_byte(void **state)
{
	size_t n;
	uint8_t *fr = server_frame(1, CHATC_WS_BINARY, "abcdefgh", 8, &n);
	chatc_ws_rx *rx = chatc_ws_rx_new(0, 0);
	chatc_ws_event ev;
	(void)state;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_NONE);
		chatc_ws_rx_feed(rx, fr + i, 1);
	}
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_MESSAGE);
	assert_memory_equal(ev.data, "abcdefgh", 8);
	chatc_ws_rx_free(rx);
	free(fr);
}

static void feed_frame(chatc_ws_rx *rx, int fin, int op, const void *p,
                       size_t len)
{
	size_t n;
	uint8_t *fr = server_frame(fin, op, p, len, &n);
	assert_int_equal(chatc_ws_rx_feed(rx, fr, n), 0);
	free(fr);
}

static void test_fragments_with_control(void **state)
{
	chatc_ws_rx *rx = chatc_ws_rx_new(0, 0);
	chatc_ws_event ev;
	(void)state;
	feed_frame(rx, 0, CHATC_WS_TEXT, "Hel", 3);
	feed_frame(rx, 1, CHATC_WS_PING, "p1", 2);
	feed_frame(rx, 0, CHATC_WS_CONT, "l", 1);
	feed_frame(rx, 1, CHATC_WS_PONG, "", 0);
	feed_frame(rx, 1, CHATC_WS_CONT, "o!", 2);
	feed_frame(rx, 1, CHATC_WS_BINARY, "x", 1);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_PING);
	assert_int_equal(ev.len, 2);
	assert_memory_equal(ev.data, "p1", 2);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_PONG);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_MESSAGE);
	assert_int_equal(ev.opcode, CHATC_WS_TEXT);
	assert_int_equal(ev.len, 6);
	assert_memory_equal(ev.data, "Hello!", 6);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_MESSAGE);
	assert_int_equal(ev.opcode, CHATC_WS_BINARY);
	assert_memory_equal(ev.data, "x", 1);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_NONE);
	chatc_ws_rx_free(rx);
}

static void test_close_parsing(void **state)
{
	chatc_ws_rx *rx = chatc_ws_rx_new(0, 0);
	chatc_ws_event ev;
	uint8_t pl[32] = {0x03, 0xe9};
	(void)state;
	memcpy(pl + 2, "going away", 10);
	feed_frame(rx, 1, CHATC_WS_CLOSE, pl, 12);
	feed_frame(rx, 1, CHATC_WS_CLOSE, NULL, 0);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_CLOSE);
	assert_int_equal(ev.close_code, 1001);
	assert_string_equal(ev.close_reason, "going away");
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_CLOSE);
	assert_int_equal(ev.close_code, 1005);
	assert_string_equal(ev.close_reason, "");
	/* A 1-byte close payload is a protocol error. */
	feed_frame(rx, 1, CHATC_WS_CLOSE, pl, 1);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_ERROR);
	assert_int_equal(ev.error_code, 1002);
	chatc_ws_rx_free(rx);
}

static void test_oversize(void **state)
{
	uint8_t hdr[14];
	chatc_ws_rx *rx = chatc_ws_rx_new(0, 0);
	chatc_ws_event ev;
	size_t n;
	uint8_t *big;
	(void)state;

	/* A header announcing twice the cap is refused before any payload. */
	n = chatc_ws_encode(hdr, 1, CHATC_WS_BINARY, NULL, 0, NULL);
	hdr[1] = 127;
	memset(hdr + 2, 0, 8);
	{
		uint64_t want = 2 * (uint64_t)CHATC_WS_MAX_MESSAGE;
		for (int i = 0; i < 8; i++)
			hdr[2 + i] = (uint8_t)(want >> (56 - 8 * i));
	}
	n = 10;
	chatc_ws_rx_feed(rx, hdr, n);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_ERROR);
	assert_int_equal(ev.error_code, 1009);
	assert_non_null(strstr(ev.error, "too large"));
	/* Stays failed. */
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_ERROR);
	chatc_ws_rx_free(rx);

	/* Fragments adding up past the cap. */
	rx = chatc_ws_rx_new(0, 0);
	big = calloc(1, CHATC_WS_MAX_MESSAGE / 2 + 1);
	feed_frame(rx, 0, CHATC_WS_BINARY, big, CHATC_WS_MAX_MESSAGE / 2 + 1);
	feed_frame(rx, 1, CHATC_WS_CONT, big, CHATC_WS_MAX_MESSAGE / 2 + 1);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_ERROR);
	assert_int_equal(ev.error_code, 1009);
	chatc_ws_rx_free(rx);

	/* Exactly the cap passes. */
	rx = chatc_ws_rx_new(0, 0);
	feed_frame(rx, 0, CHATC_WS_BINARY, big, CHATC_WS_MAX_MESSAGE / 2);
	feed_frame(rx, 1, CHATC_WS_CONT, big, CHATC_WS_MAX_MESSAGE / 2);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_MESSAGE);
	assert_int_equal(ev.len, CHATC_WS_MAX_MESSAGE);
	chatc_ws_rx_free(rx);
	free(big);
}

static void expect_error(const uint8_t *bytes, size_t n, const char *why)
{
	chatc_ws_rx *rx = chatc_ws_rx_new(0, 0);
	chatc_ws_event ev;
	chatc_ws_rx_feed(rx, bytes, n);
	assert_int_equal(chatc_ws_rx_next(rx, &ev), CHATC_WS_EV_ERROR);
	assert_int_equal(ev.error_code, 1002);
	if (!strstr(ev.error, why))
		fail_msg("error '%s' lacks '%s'", ev.error, why);
	chatc_ws_rx_free(rx);
}

static void test_protocol_errors(void **state)
{
	static const uint8_t masked[] = {0x82, 0x81, 1, 2, 3, 4, 5};
	static const uint8_t rsv[] = {0xc2, 0x00};
	static const uint8_t reserved[] = {0x83, 0x00};
	static const uint8_t cont[] = {0x80, 0x01, 'x'};
	static const uint8_t bigping[] = {0x89, 0x7e, 0x00, 0x7e};
	static const uint8_t fragping[] = {0x09, 0x00};
	static const uint8_t topbit[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1};
	static const uint8_t twostarts[] = {0x01, 0x01, 'a', 0x01, 0x01, 'b'};
	(void)state;
	expect_error(masked, sizeof masked, "masked");
	expect_error(rsv, sizeof rsv, "RSV");
	expect_error(reserved, sizeof reserved, "reserved opcode");
	expect_error(cont, sizeof cont, "continuation");
	expect_error(bigping, sizeof bigping, "control frame");
	expect_error(fragping, sizeof fragping, "fragmented control");
	expect_error(topbit, sizeof topbit, "top bit");
	expect_error(twostarts, sizeof twostarts, "new message");
}

/* ---- HTTP ---- */

static void test_http_parse(void **state)
{
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                 "Content-Length: 11\r\n\r\n{\"a\":\"bc\"}\n";
	chatc_http_resp r;
	char err[256];
	(void)state;

	for (size_t n = 0; n < strlen(ok); n++)
		assert_int_equal(
		    chatc_http_parse_response(ok, n, 0, &r, err, sizeof err), 0);
	assert_int_equal(chatc_http_parse_response(ok, strlen(ok), 0, &r, err,
	                                           sizeof err),
	                 1);
	assert_int_equal(r.head.status, 200);
	assert_string_equal(r.head.reason, "OK");
	assert_int_equal(r.body_len, 11);
	assert_string_equal(r.body, "{\"a\":\"bc\"}\n");
	assert_string_equal(chatc_http_header_get(&r.head, "content-type"),
	                    "application/json");
	chatc_http_resp_fini(&r);

	/* Truncated body at EOF. */
	assert_int_equal(chatc_http_parse_response(ok, strlen(ok) - 2, 1, &r,
	                                           err, sizeof err),
	                 -1);
	assert_non_null(strstr(err, "closed"));

	/* Read to close. */
	{
		const char *rc = "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nnope";
		assert_int_equal(chatc_http_parse_response(rc, strlen(rc), 0,
		                                           &r, err, sizeof err),
		                 0);
		assert_int_equal(chatc_http_parse_response(rc, strlen(rc), 1,
		                                           &r, err, sizeof err),
		                 1);
		assert_int_equal(r.head.status, 404);
		assert_string_equal(r.body, "nope");
		chatc_http_resp_fini(&r);
	}
	/* 101 has no body. */
	{
		const char *up = "HTTP/1.1 101 Switching Protocols\r\n"
		                 "Upgrade: websocket\r\n\r\n\x82\x00";
		assert_int_equal(chatc_http_parse_response(up, strlen(up) + 1,
		                                           0, &r, err,
		                                           sizeof err),
		                 1);
		assert_int_equal(r.head.status, 101);
		assert_int_equal(r.body_len, 0);
		assert_int_equal(r.head.head_len, strlen(up) - 1);
		chatc_http_resp_fini(&r);
	}
}

static void expect_http_error(const char *text, const char *why)
{
	chatc_http_resp r;
	char err[256] = "";
	assert_int_equal(chatc_http_parse_response(text, strlen(text), 1, &r,
	                                           err, sizeof err),
	                 -1);
	if (!strstr(err, why))
		fail_msg("error '%s' lacks '%s'", err, why);
}

static void test_http_errors(void **state)
{
	char many[8192];
	size_t n;
	(void)state;
	expect_http_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                  "5\r\nhello\r\n0\r\n\r\n",
	                  "chunked");
	expect_http_error("HTTX/1.1 200 OK\r\n", "not an HTTP response");
	expect_http_error("HTTX/1.1 200 OK\r\n\r\n", "status line");
	expect_http_error("HTTP/1.1 2x0 OK\r\n\r\n", "status line");
	expect_http_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	                  "Content-Length: 6\r\n\r\nhello!",
	                  "conflicting");
	expect_http_error("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
	                  "Content-Length");
	expect_http_error("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
	                  "too large");
	expect_http_error("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
	                  "header line");
	expect_http_error("HTTP/1.1 200 OK\r\nA: b\r\n", "closed");
	n = (size_t)snprintf(many, sizeof many, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(many + n, sizeof many - n, "X-%d: y\r\n",
		                      i);
	snprintf(many + n, sizeof many - n, "\r\n");
	expect_http_error(many, "too many");
}

static void test_url(void **state)
{
	chatc_url u;
	char err[128];
	(void)state;
	assert_int_equal(chatc_url_parse("ws://127.0.0.1:7001/ws", &u, err,
	                                 sizeof err),
	                 0);
	assert_string_equal(u.scheme, "ws");
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 7001);
	assert_string_equal(u.path, "/ws");
	assert_int_equal(chatc_url_parse("http://localhost", &u, err,
	                                 sizeof err),
	                 0);
	assert_int_equal(u.port, 80);
	assert_string_equal(u.path, "/");
	assert_int_equal(chatc_url_parse("ws://[::1]:9/a?token=x", &u, err,
	                                 sizeof err),
	                 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.path, "/a?token=x");
	assert_int_equal(chatc_url_parse("wss://x/", &u, err, sizeof err), -1);
	assert_int_equal(chatc_url_parse("http://h:0/", &u, err, sizeof err),
	                 -1);
	assert_int_equal(chatc_url_parse("http://h:99999/", &u, err,
	                                 sizeof err),
	                 -1);
	assert_int_equal(chatc_url_parse("http://:80/", &u, err, sizeof err),
	                 -1);
}

/* ---- a tiny server on loopback ---- */

enum script {
	SRV_ECHO,     /* handshake, welcome, echo, ping, close */
	SRV_REFUSE,   /* 401 with a text body */
	SRV_BAD_KEY,  /* 101 with a wrong accept */
	SRV_LOGIN_OK, /* HTTP: a login answer */
	SRV_LOGIN_401,
};

struct server {
	int lfd;
	int port;
	enum script script;
	char request[8192]; /* what the client sent first */
	int ok;             /* the server's own checks passed */
	char why[256];
	pthread_t th;
};

static int read_head(int fd, char *buf, size_t cap, size_t *len)
{
	*len = 0;
	while (*len < cap - 1) {
		ssize_t n = recv(fd, buf + *len, cap - 1 - *len, 0);
		if (n <= 0)
			return -1;
		*len += (size_t)n;
		buf[*len] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			return 0;
	}
	return -1;
}

static int send_all(int fd, const void *p, size_t n)
{
	return send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Read one client frame (must be masked). Returns its opcode or -1. */
static int read_client_frame(int fd, uint8_t *out, size_t *len)
{
	uint8_t buf[70000];
	size_t have = 0;
	for (;;) {
		chatc_ws_frame f;
		long n = chatc_ws_parse_frame(buf, have, 1, 65536, &f, NULL, 0);
		ssize_t r;
		if (n > 0) {
			memcpy(out, f.payload, f.len);
			*len = f.len;
			return f.opcode;
		}
		if (n < 0)
			return -1;
		/* exactly what the frame needs, no more: the next frame
		 * stays in the socket for the next call */
		r = recv(fd, buf + have, 1, 0);
		if (r <= 0)
			return -1;
		have += (size_t)r;
	}
}

static void srv_fail(struct server *s, const char *why)
{
	snprintf(s->why, sizeof s->why, "%s", why);
	s->ok = 0;
}

static void srv_echo(struct server *s, int fd, const char *key)
{
	char accept[29], resp[512];
	uint8_t msg[70000], fr[70100];
	size_t len, n;
	int op;

	chatc_ws_accept_key(key, accept);
	n = (size_t)snprintf(resp, sizeof resp,
	                     "HTTP/1.1 101 Switching Protocols\r\n"
	                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                     "Sec-WebSocket-Accept: %s\r\n\r\n",
	                     accept);
	/* The first message rides in the same segment as the head. */
	n += chatc_ws_encode((uint8_t *)resp + n, 1, CHATC_WS_BINARY,
	                     "welcome", 7, NULL);
	if (send_all(fd, resp, n) != 0)
		return srv_fail(s, "send 101");
	op = read_client_frame(fd, msg, &len);
	if (op != CHATC_WS_BINARY)
		return srv_fail(s, "expected a masked binary frame");
	/* Echo it fragmented, with a ping in between. */
	n = chatc_ws_encode(fr, 0, CHATC_WS_BINARY, msg, len / 2, NULL);
	n += chatc_ws_encode(fr + n, 1, CHATC_WS_PING, "pp", 2, NULL);
	n += chatc_ws_encode(fr + n, 1, CHATC_WS_CONT, msg + len / 2,
	                     len - len / 2, NULL);
	if (send_all(fd, fr, n) != 0)
		return srv_fail(s, "send echo");
	op = read_client_frame(fd, msg, &len);
	if (op != CHATC_WS_PONG || len != 2 || memcmp(msg, "pp", 2) != 0)
		return srv_fail(s, "expected pong pp");
	n = chatc_ws_encode(fr, 1, CHATC_WS_CLOSE, "\x03\xe8" "bye", 5, NULL);
	if (send_all(fd, fr, n) != 0)
		return srv_fail(s, "send close");
	op = read_client_frame(fd, msg, &len);
	if (op != CHATC_WS_CLOSE || len < 2 || msg[0] != 0x03 ||
	    msg[1] != 0xe8)
		return srv_fail(s, "expected the close echoed with 1000");
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	size_t len;
	char key[64] = "";
	const char *k;

	s->ok = 1;
	if (fd < 0 || read_head(fd, s->request, sizeof s->request, &len) != 0) {
		srv_fail(s, "no request");
		goto done;
	}
	k = strcasestr(s->request, "Sec-WebSocket-Key: ");
	if (k)
		sscanf(k + 19, "%63[^\r]", key);
	switch (s->script) {
	case SRV_ECHO:
		if (!key[0]) {
			srv_fail(s, "no key");
			break;
		}
		srv_echo(s, fd, key);
		break;
	case SRV_REFUSE: {
		const char *r = "HTTP/1.1 401 Unauthorized\r\nContent-Type: "
		                "text/plain\r\nContent-Length: 14\r\n\r\n"
		                "token expired\n";
		send_all(fd, r, strlen(r));
		break;
	}
	case SRV_BAD_KEY: {
		const char *r = "HTTP/1.1 101 Switching Protocols\r\n"
		                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		                "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA="
		                "\r\n\r\n";
		send_all(fd, r, strlen(r));
		break;
	}
	case SRV_LOGIN_OK: {
		char r[1024];
		const char *body = "{\"user_id\":42,\"name\":\"al\",\"token\":"
		                   "\"t.o.k\",\"edge_url\":\"ws://127.0.0.1:"
		                   "9/ws\",\"expires_at\":1999999999}";
		/* The body may come in a second segment. */
		if (!strstr(s->request, "\"password\"")) {
			ssize_t m = recv(fd, s->request + len,
			                 sizeof s->request - len - 1, 0);
			if (m > 0)
				s->request[len + (size_t)m] = '\0';
		}
		snprintf(r, sizeof r,
		         "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
		         strlen(body), body);
		send_all(fd, r, strlen(r));
		break;
	}
	case SRV_LOGIN_401: {
		const char *r = "HTTP/1.1 401 Unauthorized\r\nConnection: "
		                "close\r\n\r\n{\"error\":\"UNAUTHENTICATED\","
		                "\"reason\":\"wrong name or password\"}";
		send_all(fd, r, strlen(r));
		break;
	}
	}
done:
	if (fd >= 0) {
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	return NULL;
}

static void server_start(struct server *s, enum script script)
{
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	memset(s, 0, sizeof *s);
	s->script = script;
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	getsockname(s->lfd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_join(struct server *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
	if (!s->ok)
		fail_msg("server: %s", s->why);
}

/* Read until a message, the close, or a deadline. */
static int read_wait(chatc_ws *ws, const uint8_t **d, size_t *n, int *op,
                     char *err, size_t errlen)
{
	for (int i = 0; i < 500; i++) {
		struct pollfd p = {.fd = chatc_ws_fd(ws), .events = POLLIN};
		int rc = chatc_ws_read(ws, d, n, op, err, errlen);
		if (rc != 0)
			return rc;
		chatc_ws_flush(ws, NULL, 0);
		poll(&p, 1, 10);
	}
	return 0;
}

static void test_ws_round_trip(void **state)
{
	struct server s;
	chatc_ws *ws = NULL;
	char url[64], err[256] = "";
	const uint8_t *d;
	size_t n;
	int op, status = -1;
	(void)state;

	server_start(&s, SRV_ECHO);
	snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", s.port);
	if (chatc_ws_connect(url, "tok123", 3000, &ws, &status, err,
	                     sizeof err) != 0)
		fail_msg("connect: %s", err);
	assert_int_equal(status, 0);
	assert_non_null(strstr(s.request, "GET /ws HTTP/1.1\r\n"));
	assert_non_null(strstr(s.request, "Authorization: Bearer tok123\r\n"));
	assert_non_null(strstr(s.request, "Sec-WebSocket-Version: 13\r\n"));
	/* The message that came with the 101. */
	assert_int_equal(read_wait(ws, &d, &n, &op, err, sizeof err), 1);
	assert_int_equal(op, CHATC_WS_BINARY);
	assert_int_equal(n, 7);
	assert_memory_equal(d, "welcome", 7);
	/* Round trip of a 16-bit-length message, reassembled. */
	{
		uint8_t big[1000];
		for (size_t i = 0; i < sizeof big; i++)
			big[i] = (uint8_t)i;
		assert_int_equal(chatc_ws_send(ws, CHATC_WS_BINARY, big,
		                               sizeof big),
		                 0);
		assert_true(chatc_ws_want_write(ws));
		assert_int_equal(chatc_ws_flush(ws, err, sizeof err), 0);
		assert_int_equal(read_wait(ws, &d, &n, &op, err, sizeof err),
		                 1);
		assert_int_equal(n, sizeof big);
		assert_memory_equal(d, big, sizeof big);
	}
	/* The ping was answered; then the server closes. */
	assert_int_equal(read_wait(ws, &d, &n, &op, err, sizeof err), -2);
	assert_int_equal(chatc_ws_close_code(ws), 1000);
	assert_string_equal(chatc_ws_close_reason(ws), "bye");
	assert_non_null(strstr(err, "1000"));
	assert_int_equal(chatc_ws_send(ws, CHATC_WS_BINARY, "x", 1), -1);
	chatc_ws_free(ws);
	server_join(&s);
}

static void test_ws_refused(void **state)
{
	struct server s;
	chatc_ws *ws = NULL;
	char url[64], err[256] = "";
	int status = 0;
	(void)state;

	server_start(&s, SRV_REFUSE);
	snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", s.port);
	assert_int_equal(chatc_ws_connect(url, "bad", 3000, &ws, &status, err,
	                                  sizeof err),
	                 -1);
	assert_null(ws);
	assert_int_equal(status, 401);
	assert_string_equal(err, "HTTP 401: token expired");
	server_join(&s);

	server_start(&s, SRV_BAD_KEY);
	snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", s.port);
	assert_int_equal(chatc_ws_connect(url, NULL, 3000, &ws, &status, err,
	                                  sizeof err),
	                 -1);
	assert_non_null(strstr(err, "Sec-WebSocket-Accept"));
	server_join(&s);

	/* Nobody listening. */
	{
		int port = s.port;
		snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", port);
		assert_int_equal(chatc_ws_connect(url, NULL, 1000, &ws, &status,
		                                  err, sizeof err),
		                 -1);
		assert_non_null(strstr(err, "cannot connect"));
	}
}

/* ---- a chatc session against a scripted edge: frames that come with the
 * 101, a dropped connection, resume and the resent send ---- */

struct edge {
	int lfd;
	int port;
	int ok;
	char why[256];
	char cmid[65];
	pthread_t th;
};

static void edge_fail(struct edge *e, const char *why)
{
	if (e->ok)
		snprintf(e->why, sizeof e->why, "%s", why);
	e->ok = 0;
}

static size_t put_frame(uint8_t *out, Chat__ServerFrame *f)
{
	uint8_t tmp[4096];
	size_t n = chat__server_frame__pack(f, tmp);
	return chatc_ws_encode(out, 1, CHATC_WS_BINARY, tmp, n, NULL);
}

/* Accept, answer the upgrade with Welcome and a ChannelList (channel 1,
 * last_seq last) in the same segment. Returns the socket or -1. */
static int edge_accept(struct edge *e, uint64_t last)
{
	char req[8192], accept_key[29], key[64] = "";
	uint8_t out[16384];
	size_t len, n;
	const char *k;
	int fd = accept(e->lfd, NULL, NULL);
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__Welcome w = CHAT__WELCOME__INIT;
	Chat__ChannelList l = CHAT__CHANNEL_LIST__INIT;
	Chat__ChannelInfo ci = CHAT__CHANNEL_INFO__INIT, *pci[1] = {&ci};

	if (fd < 0 || read_head(fd, req, sizeof req, &len) != 0) {
		edge_fail(e, "no upgrade request");
		return -1;
	}
	if (!strstr(req, "Authorization: Bearer tok\r\n"))
		edge_fail(e, "no token");
	k = strcasestr(req, "Sec-WebSocket-Key: ");
	if (k)
		sscanf(k + 19, "%63[^\r]", key);
	chatc_ws_accept_key(key, accept_key);
	n = (size_t)snprintf((char *)out, sizeof out,
	                     "HTTP/1.1 101 Switching Protocols\r\n"
	                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                     "Sec-WebSocket-Accept: %s\r\n\r\n",
	                     accept_key);
	w.user_id = 42;
	w.user_name = (char *)"al";
	w.status = CHAT__STATUS__STATUS_ONLINE;
	f.kind_case = CHAT__SERVER_FRAME__KIND_WELCOME;
	f.welcome = &w;
	n += put_frame(out + n, &f);
	ci.id = 1;
	ci.name = (char *)"general";
	ci.kind = CHAT__CHANNEL_KIND__KIND_GROUP;
	ci.last_seq = last;
	l.n_channels = 1;
	l.channels = pci;
	f.kind_case = CHAT__SERVER_FRAME__KIND_CHANNEL_LIST;
	f.channel_list = &l;
	n += put_frame(out + n, &f);
	if (send_all(fd, out, n) != 0)
		edge_fail(e, "send 101");
	return fd;
}

/* The next client frame as a ClientFrame (NULL on EOF or garbage). */
static Chat__ClientFrame *edge_read(int fd)
{
	uint8_t buf[70000];
	size_t len;
	int op = read_client_frame(fd, buf, &len);
	if (op != CHATC_WS_BINARY)
		return NULL;
	return chat__client_frame__unpack(NULL, len, buf);
}

static void *edge_main(void *arg)
{
	struct edge *e = arg;
	Chat__ClientFrame *cf;
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	uint8_t out[8192];
	size_t n;
	int fd;

	e->ok = 1;
	/* First connection: the resume that follows the first channel list
	 * (nothing to replay), then a send that is never acknowledged. */
	fd = edge_accept(e, 2);
	if (fd < 0)
		return NULL;
	cf = edge_read(fd);
	if (!cf || cf->kind_case != CHAT__CLIENT_FRAME__KIND_RESUME ||
	    cf->resume->n_positions != 1 ||
	    cf->resume->positions[0]->last_seq != 2) {
		edge_fail(e, "expected resume {1: 2} on the first connection");
	} else {
		Chat__ResumeDone d = CHAT__RESUME_DONE__INIT;
		f.req_id = cf->req_id;
		f.kind_case = CHAT__SERVER_FRAME__KIND_RESUME_DONE;
		f.resume_done = &d;
		n = put_frame(out, &f);
		send_all(fd, out, n);
		f.req_id = 0;
	}
	chat__client_frame__free_unpacked(cf, NULL);
	cf = edge_read(fd);
	if (!cf || cf->kind_case != CHAT__CLIENT_FRAME__KIND_SEND) {
		edge_fail(e, "expected a send on the first connection");
	} else {
		snprintf(e->cmid, sizeof e->cmid, "%s",
		         cf->send->client_msg_id);
	}
	chat__client_frame__free_unpacked(cf, NULL);
	/* The client drops the connection. */
	cf = edge_read(fd);
	if (cf)
		edge_fail(e, "expected the connection to drop");
	chat__client_frame__free_unpacked(cf, NULL);
	close(fd);

	/* Second connection: resume, replay seq 3, then the resent send. */
	fd = edge_accept(e, 3);
	if (fd < 0)
		return NULL;
	cf = edge_read(fd);
	if (!cf || cf->kind_case != CHAT__CLIENT_FRAME__KIND_RESUME ||
	    cf->resume->n_positions != 1 ||
	    cf->resume->positions[0]->channel_id != 1 ||
	    cf->resume->positions[0]->last_seq != 2) {
		edge_fail(e, "expected resume {1: 2}");
	} else {
		Chat__Message m = CHAT__MESSAGE__INIT;
		Chat__ResumeDone d = CHAT__RESUME_DONE__INIT;
		Chat__ChannelPos pos = CHAT__CHANNEL_POS__INIT, *pp[1] = {&pos};
		m.channel_id = 1;
		m.seq = 3;
		m.sender_id = 9;
		m.sender_name = (char *)"bo";
		m.body = (char *)"missed";
		f.kind_case = CHAT__SERVER_FRAME__KIND_MESSAGE;
		f.message = &m;
		n = put_frame(out, &f);
		pos.channel_id = 1;
		pos.last_seq = 3;
		d.n_positions = 1;
		d.positions = pp;
		f.req_id = cf->req_id;
		f.kind_case = CHAT__SERVER_FRAME__KIND_RESUME_DONE;
		f.resume_done = &d;
		n += put_frame(out + n, &f);
		send_all(fd, out, n);
	}
	chat__client_frame__free_unpacked(cf, NULL);
	cf = edge_read(fd);
	if (!cf || cf->kind_case != CHAT__CLIENT_FRAME__KIND_SEND ||
	    strcmp(cf->send->client_msg_id, e->cmid) != 0 ||
	    strcmp(cf->send->body, "hello") != 0) {
		edge_fail(e, "expected the same send again after the resume");
	} else {
		Chat__SendAck a = CHAT__SEND_ACK__INIT;
		a.channel_id = 1;
		a.client_msg_id = e->cmid;
		f.req_id = cf->req_id;
		f.kind_case = CHAT__SERVER_FRAME__KIND_SEND_ACK;
		f.send_ack = &a;
		n = put_frame(out, &f);
		send_all(fd, out, n);
	}
	chat__client_frame__free_unpacked(cf, NULL);
	/* The client closes. */
	{
		uint8_t buf[256];
		size_t len;
		if (read_client_frame(fd, buf, &len) != CHATC_WS_CLOSE)
			edge_fail(e, "expected a close frame");
	}
	close(fd);
	return NULL;
}

struct counts {
	int connected, reconnected, disconnected, resumed, acked;
};

static void count_event(void *user, chatc *c, const chatc_event *ev)
{
	struct counts *k = user;
	(void)c;
	if (ev->type == CHATC_EV_CONNECTED)
		k->connected++;
	if (ev->type == CHATC_EV_RECONNECTED)
		k->reconnected++;
	if (ev->type == CHATC_EV_DISCONNECTED)
		k->disconnected++;
	if (ev->type == CHATC_EV_RESUME_DONE)
		k->resumed++;
	if (ev->type == CHATC_EV_SEND_ACK)
		k->acked++;
}

static void test_session_resume(void **state)
{
	struct edge e;
	struct counts k;
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	chatc_opts o;
	chatc *c;
	char url[64], err[256] = "", cmid[CHATC_CMID_LEN];
	(void)state;

	memset(&e, 0, sizeof e);
	memset(&k, 0, sizeof k);
	e.lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(e.lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(e.lfd, 4), 0);
	getsockname(e.lfd, (struct sockaddr *)&a, &al);
	e.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&e.th, NULL, edge_main, &e), 0);

	snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", e.port);
	memset(&o, 0, sizeof o);
	o.edge_url = url;
	o.token = "tok";
	o.timeout_ms = 3000;
	o.on_event = count_event;
	o.user = &k;
	c = chatc_new(&o, err, sizeof err);
	assert_non_null(c);
	if (chatc_connect(c, err, sizeof err) != 0)
		fail_msg("connect: %s", err);
	/* The Welcome and ChannelList that came with the 101 are handled
	 * at once, with no more bytes on the socket. */
	assert_int_equal(chatc_user_id(c), 42);
	assert_string_equal(chatc_user_name(c), "al");
	assert_non_null(chatc_channel_get(c, 1));
	assert_int_equal(chatc_channel_get(c, 1)->held_seq, 2);
	assert_int_equal(k.connected, 1);

	assert_int_equal(chatc_send(c, 1, "hello", cmid), 0);
	for (int i = 0; i < 100 && chatc_want_write(c); i++)
		chatc_process(c, 10);
	assert_false(chatc_want_write(c));
	/* Let the edge read it before the drop. */
	for (int i = 0; i < 200 && !e.cmid[0]; i++)
		chatc_process(c, 10);
	if (!e.ok)
		fail_msg("scripted edge: %s", e.why);
	assert_string_equal(e.cmid, cmid);
	/* and the first session's resume is answered */
	for (int i = 0; i < 200 && !k.resumed; i++)
		chatc_process(c, 10);
	assert_int_equal(k.resumed, 1);

	chatc_drop(c);
	assert_int_equal(chatc_state(c), CHATC_WAITING);
	assert_int_equal(k.disconnected, 1);
	assert_true(chatc_reconnect_in_ms(c) <= 200);
	for (int i = 0; i < 500 && !k.acked; i++)
		chatc_process(c, 10);
	assert_int_equal(k.reconnected, 1);
	assert_int_equal(k.resumed, 2); /* after the first list, and now */
	assert_int_equal(k.acked, 1);
	assert_int_equal(chatc_channel_get(c, 1)->held_seq, 3);
	assert_string_equal(chatc_channel_get(c, 1)->msgs[0].body, "missed");
	assert_true(chatc_pending_get(c, cmid)->acked);
	chatc_close(c);
	assert_int_equal(chatc_state(c), CHATC_STOPPED);
	pthread_join(e.th, NULL);
	close(e.lfd);
	chatc_free(c);
	if (!e.ok)
		fail_msg("edge: %s", e.why);
}

static void test_login(void **state)
{
	struct server s;
	chatc_auth a;
	char url[64], err[256] = "";
	(void)state;

	server_start(&s, SRV_LOGIN_OK);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
	if (chatc_login(url, "al", "pass\"word", 3000, &a, err, sizeof err) != 0)
		fail_msg("login: %s", err);
	server_join(&s);
	assert_non_null(strstr(s.request, "POST /v1/login HTTP/1.1\r\n"));
	assert_non_null(
	    strstr(s.request, "{\"name\":\"al\",\"password\":\"pass\\\"word\"}"));
	assert_int_equal(a.user_id, 42);
	assert_string_equal(a.token, "t.o.k");
	assert_string_equal(a.edge_url, "ws://127.0.0.1:9/ws");
	assert_int_equal(a.expires_at, 1999999999);

	server_start(&s, SRV_LOGIN_401);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
	assert_int_equal(chatc_signup(url, "al", "password", 3000, &a, err,
	                              sizeof err),
	                 401);
	assert_string_equal(err, "wrong name or password");
	server_join(&s);
	assert_non_null(strstr(s.request, "POST /v1/signup "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accept_key),
	    cmocka_unit_test(test_encode_masked),
	    cmocka_unit_test(test_header_lengths),
	    cmocka_unit_test(test_length_classes),
	    cmocka_unit_test(test_byte_by_byte),
	    cmocka_unit_test(test_fragments_with_control),
	    cmocka_unit_test(test_close_parsing),
	    cmocka_unit_test(test_oversize),
	    cmocka_unit_test(test_protocol_errors),
	    cmocka_unit_test(test_http_parse),
	    cmocka_unit_test(test_http_errors),
	    cmocka_unit_test(test_url),
	    cmocka_unit_test(test_ws_round_trip),
	    cmocka_unit_test(test_ws_refused),
	    cmocka_unit_test(test_login),
	    cmocka_unit_test(test_session_resume),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
