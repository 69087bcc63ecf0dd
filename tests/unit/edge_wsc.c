/* A small blocking WebSocket client for the edge tests. */
#include "edge_wsc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct wsc {
	int fd;
	uint8_t *in;
	size_t inlen, incap;
	int pings;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rcvbuf;

void wsc_set_rcvbuf(int bytes)
{
	rcvbuf = bytes;
}

static int dial(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (fd < 0)
		return -1;
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read more into c->in, waiting up to the deadline. 0, or -1 on timeout,
 * error or EOF. */
static int fill(wsc *c, int64_t deadline)
{
	struct pollfd pfd = {c->fd, POLLIN, 0};
	int64_t left = deadline - now_ms();
	ssize_t r;

	if (left < 0)
		left = 0;
	if (poll(&pfd, 1, (int)left) <= 0)
		return -1;
	if (c->inlen + 1 >= c->incap) {
		size_t cap = c->incap ? c->incap * 2 : 65536;
		uint8_t *nb = realloc(c->in, cap);
		if (!nb)
			return -1;
		c->in = nb;
		c->incap = cap;
	}
	r = recv(c->fd, c->in + c->inlen, c->incap - c->inlen - 1, 0);
	if (r <= 0)
		return -1;
	c->inlen += (size_t)r;
	return 0;
}

static void consume(wsc *c, size_t n)
{
	memmove(c->in, c->in + n, c->inlen - n);
	c->inlen -= n;
}

static int http_exchange(int fd, const char *req, wsc *c, char *body,
                         size_t bodylen, int keep)
{
	int64_t deadline = now_ms() + 5000;
	char *end;
	int status = -1;
	size_t hlen, clen = 0;

	if (body && bodylen)
		body[0] = '\0';
	if (write_all(fd, req, strlen(req)) != 0)
		return -1;
	for (;;) {
		if (c->inlen) {
			c->in[c->inlen] = 0; /* fill() keeps a spare byte */
			end = strstr((char *)c->in, "\r\n\r\n");
			if (end)
				break;
		}
		if (fill(c, deadline) != 0)
			return -1;
	}
	hlen = (size_t)(end - (char *)c->in) + 4;
	if (sscanf((char *)c->in, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	{
		char *cl = strcasestr((char *)c->in, "content-length:");
		if (cl && cl < end)
			clen = strtoul(cl + 15, NULL, 10);
	}
	consume(c, hlen);
	if (status == 101 && keep)
		return status;
	while (c->inlen < clen && fill(c, deadline) == 0)
		;
	if (body && bodylen) {
		size_t n = c->inlen < clen ? c->inlen : clen;
		if (n >= bodylen)
			n = bodylen - 1;
		memcpy(body, c->in, n);
		body[n] = '\0';
	}
	return status;
}

int wsc_connect(int port, const char *path, const char *extra_header,
                wsc **out, char *body, size_t bodylen)
{
	char req[8192];
	wsc *c = calloc(1, sizeof *c);
	int st;

	*out = NULL;
	if (!c)
		return -1;
	c->fd = dial(port);
	if (c->fd < 0) {
		free(c);
		return -1;
	}
	snprintf(req, sizeof req,
	         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	         "Sec-WebSocket-Version: 13\r\n%s%s\r\n",
	         path, port, extra_header ? extra_header : "",
	         extra_header ? "\r\n" : "");
	st = http_exchange(c->fd, req, c, body, bodylen, 1);
	if (st == 101)
		*out = c;
	else
		wsc_free(c);
	return st;
}

int wsc_http_get(int port, const char *path, char *body, size_t bodylen)
{
	char req[1024];
	wsc c;
	int st;

	memset(&c, 0, sizeof c);
	c.fd = dial(port);
	if (c.fd < 0)
		return -1;
	snprintf(req, sizeof req,
	         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	         "Connection: close\r\n\r\n", path, port);
	st = http_exchange(c.fd, req, &c, body, bodylen, 0);
	close(c.fd);
	free(c.in);
	return st;
}

int wsc_send_frame(wsc *c, int opcode, int fin, const void *data, size_t len)
{
	uint8_t hdr[14], mask[4];
	size_t h = 0;
	uint8_t *buf;
	int rv;

	hdr[h++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126) {
		hdr[h++] = (uint8_t)(0x80 | len);
	} else if (len < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(len >> 8);
		hdr[h++] = (uint8_t)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	for (int i = 0; i < 4; i++)
		mask[i] = (uint8_t)rand();
	memcpy(hdr + h, mask, 4);
	h += 4;
	buf = malloc(h + len + 1);
	if (!buf)
		return -1;
	memcpy(buf, hdr, h);
	for (size_t i = 0; i < len; i++)
		buf[h + i] = ((const uint8_t *)data)[i] ^ mask[i & 3];
	rv = write_all(c->fd, buf, h + len);
	free(buf);
	return rv;
}

int wsc_send(wsc *c, const void *data, size_t len)
{
	return wsc_send_frame(c, WSC_BINARY, 1, data, len);
}

/* One frame from the buffer: 1 when complete (fields set), 0 when more
 * bytes are needed. */
static int parse(wsc *c, int *fin, int *op, size_t *off, size_t *plen)
{
	size_t h = 2, n;
	if (c->inlen < 2)
		return 0;
	*fin = c->in[0] >> 7;
	*op = c->in[0] & 0x0f;
	n = c->in[1] & 0x7f;
	if (n == 126) {
		if (c->inlen < 4)
			return 0;
		n = ((size_t)c->in[2] << 8) | c->in[3];
		h = 4;
	} else if (n == 127) {
		if (c->inlen < 10)
			return 0;
		n = 0;
		for (int i = 0; i < 8; i++)
			n = (n << 8) | c->in[2 + i];
		h = 10;
	}
	if (c->inlen < h + n)
		return 0;
	*off = h;
	*plen = n;
	return 1;
}

int wsc_recv(wsc *c, int timeout_ms, uint8_t **data, size_t *len,
             int *close_code, char *reason, size_t reasonlen)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t *msg = NULL;
	size_t mlen = 0;
	int mop = 0;

	*data = NULL;
	*len = 0;
	for (;;) {
		int fin, op;
		size_t off, n;
		while (!parse(c, &fin, &op, &off, &n))
			if (fill(c, deadline) != 0) {
				free(msg);
				return -1;
			}
		if (op == WSC_PING) {
			c->pings++;
			wsc_send_frame(c, WSC_PONG, 1, c->in + off, n);
			consume(c, off + n);
			continue;
		}
		if (op == WSC_PONG) {
			consume(c, off + n);
			continue;
		}
		if (op == WSC_CLOSE) {
			if (close_code)
				*close_code = n >= 2 ? (c->in[off] << 8) |
				                           c->in[off + 1]
				                     : 1005;
			if (reason && reasonlen) {
				size_t r = n > 2 ? n - 2 : 0;
				if (r >= reasonlen)
					r = reasonlen - 1;
				memcpy(reason, c->in + off + 2, r);
				reason[r] = '\0';
			}
			/* Answer the close, as RFC 6455 asks. */
			wsc_send_frame(c, WSC_CLOSE, 1, c->in + off,
			               n >= 2 ? 2 : 0);
			consume(c, off + n);
			free(msg);
			return WSC_CLOSE;
		}
		if (op != 0)
			mop = op;
		{
			uint8_t *nb = realloc(msg, mlen + n + 1);
			if (!nb) {
				free(msg);
				return -1;
			}
			msg = nb;
			memcpy(msg + mlen, c->in + off, n);
			mlen += n;
		}
		consume(c, off + n);
		if (fin) {
			*data = msg;
			*len = mlen;
			return mop;
		}
	}
}

int wsc_wait_eof(wsc *c, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd = {c->fd, POLLIN, 0};
		int64_t left = deadline - now_ms();
		uint8_t buf[4096];
		ssize_t r;
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return 0;
		r = recv(c->fd, buf, sizeof buf, 0);
		if (r <= 0)
			return 1;
	}
}

int wsc_pings(wsc *c)
{
	return c->pings;
}

void wsc_free(wsc *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c);
}
