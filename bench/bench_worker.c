/* A worker process: many WebSocket sessions in one epoll loop, on one
 * thread. Non-blocking connects (each from its own 127.x.y.z source
 * address, so ephemeral ports never run out; with several edges, session
 * i goes to edge i % nedges), the HTTP upgrade, then
 * frames through the client library's codec (chatc_ws.h) and the
 * hand-coded protobuf of bench_pb.h. Sends follow an open-loop schedule
 * (message j is due at t0 + j / rate, whatever happened before) and carry
 * their intended send time, so a receipt's latency counts any delay of
 * the sender as well (no coordinated omission). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_pb.h"
#include "chat_auth.h"
#include "chatc_ws.h"

#define SCRATCH            (1u << 20)
#define MAX_FRAME          (512u << 10)
#define HS_MAX             8192
#define ATTEMPT_TIMEOUT_NS (30LL * 1000000000)
#define RETRY_DELAY_NS     (500LL * 1000000)
#define MAX_ATTEMPTS       4
#define SCAN_EVERY_NS      (250LL * 1000000)
#define MAX_EVENTS         512
#define SEC                1000000000LL

enum cstate {
	CS_IDLE,       /* not connected; may start */
	CS_CONNECTING, /* TCP connect in progress */
	CS_HANDSHAKE,  /* upgrade sent, waiting for 101 */
	CS_WELCOME,    /* upgraded, waiting for Welcome */
	CS_READY,      /* Welcome received */
	CS_FAILED,     /* gave up (stable) or closed by the server */
};

struct conn {
	int fd;
	uint32_t idx; /* global stable or churn index */
	uint8_t churn, state, nch, attempts;
	uint8_t pollout; /* EPOLLOUT registered */
	uint8_t counted; /* counted as ready or failed (connect phase) */
	uint8_t frag_bin;
	uint8_t edge; /* index into plan.edge */
	uint32_t ch[2];
	uint64_t last_seq[2];
	uint64_t nrecv[2];
	uint64_t req_id, nsent;
	int64_t t_start, t_retry;
	uint8_t *in; /* an incomplete frame or header */
	uint32_t inlen;
	uint8_t *out; /* output the socket did not take */
	uint32_t outoff, outlen, outcap;
	uint8_t *frag; /* a fragmented message being reassembled */
	uint32_t fraglen;
	char accept[29];
};

struct worker {
	int ctl, ep;
	bench_plan plan;
	uint64_t *uid, *cuid, *chan_id;
	uint32_t *members;
	struct conn *c; /* count stable, then churn_count churning */
	uint32_t nconn;
	uint8_t *scratch, *obuf;
	uint32_t src_seq;
	uint64_t rng;

	/* connect phase */
	int connecting;
	uint32_t next_new, inflight;
	struct conn **retry;
	uint32_t nretry, capretry;
	int64_t connect_deadline, next_scan, connect_t0;
	bench_connected cres;

	/* run */
	int running;
	bench_run run;
	double interval, churn_interval;
	uint64_t next_j, next_cj;
	uint32_t churn_rr;
	int64_t ws, we; /* measured window */
	int64_t rt_off; /* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */
	int win_open, win_closed;
	uint64_t cpu_ws, cpu_we;

	/* counters */
	uint64_t sent_total, answered_total, expect_total, deliv_total;
	uint64_t closes_total;    /* stable sessions lost, cumulative */
	uint64_t pushes_total;    /* presence, member events, ... */
	uint64_t *acked, *maxseq; /* per channel, cumulative */
	bench_wreport r;          /* this step */
	bench_done *done;         /* D */
	uint32_t ndone, capdone;
	uint64_t done_base;
	char first_close[160];
};

static void conn_kill(struct worker *w, struct conn *c);

/* ---- small helpers ---- */

static uint64_t rnd(struct worker *w)
{
	uint64_t x = w->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	w->rng = x;
	return x;
}

static void b64_16(const uint8_t in[16], char out[25])
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/";
	int o = 0;
	for (int i = 0; i < 15; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		             in[i + 2];
		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = t[(v >> 6) & 63];
		out[o++] = t[v & 63];
	}
	out[o++] = t[in[15] >> 2];
	out[o++] = t[(in[15] & 3) << 4];
	out[o++] = '=';
	out[o++] = '=';
	out[o] = '\0';
}

static void put_hex(char *o, uint64_t v, int digits)
{
	static const char hx[] = "0123456789abcdef";
	for (int i = digits - 1; i >= 0; i--) {
		o[i] = hx[v & 15];
		v >>= 4;
	}
}

static int get_hex(const uint8_t *p, size_t n, uint64_t *v)
{
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = p[i];
		x <<= 4;
		if (ch >= '0' && ch <= '9')
			x |= (uint64_t)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			x |= (uint64_t)(ch - 'a' + 10);
		else
			return -1;
	}
	*v = x;
	return 0;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void set_pollout(struct worker *w, struct conn *c, int on)
{
	struct epoll_event ev;
	if (c->fd < 0 || c->pollout == on)
		return;
	ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->pollout = (uint8_t)on;
}

/* ---- output ---- */

/* Write what is queued; returns 0 or -1 (connection dead). */
static int conn_flush(struct worker *w, struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff,
		                 c->outlen - c->outoff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				set_pollout(w, c, 1);
				return 0;
			}
			return -1;
		}
		c->outoff += (uint32_t)n;
	}
	c->outoff = c->outlen = 0;
	if (c->outcap > 65536) {
		free(c->out);
		c->out = NULL;
		c->outcap = 0;
	}
	set_pollout(w, c, 0);
	return 0;
}

/* Send bytes, queueing what the socket does not take. Returns 0 or -1
 * (the caller kills the connection). */
static int conn_write(struct worker *w, struct conn *c, const void *p, size_t n)
{
	if (c->outlen == c->outoff) {
		ssize_t k;
		do
			k = send(c->fd, p, n, MSG_NOSIGNAL);
		while (k < 0 && errno == EINTR);
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (k < 0)
			k = 0;
		if ((size_t)k == n)
			return 0;
		p = (const uint8_t *)p + k;
		n -= (size_t)k;
		c->outoff = c->outlen = 0;
	}
	if (c->outlen + n > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;
		uint8_t *nb;
		while (cap < c->outlen + n)
			cap *= 2;
		if (cap > (64u << 20))
			return -1;
		nb = realloc(c->out, cap);
		if (!nb)
			return -1;
		c->out = nb;
		c->outcap = (uint32_t)cap;
	}
	memcpy(c->out + c->outlen, p, n);
	c->outlen += (uint32_t)n;
	set_pollout(w, c, 1);
	return 0;
}

/* One masked client frame. The mask key is zero: legal (RFC 6455 only
 * asks for one), and it spares the bench a pass over every payload. */
static int conn_frame(struct worker *w, struct conn *c, int opcode,
                      const void *payload, size_t len)
{
	static const uint8_t zero[4] = {0, 0, 0, 0};
	size_t h;

	if (len > BENCH_PB_SEND_MAX)
		return -1;
	h = chatc_ws_encode(w->obuf, 1, opcode, payload, len, zero);
	return conn_write(w, c, w->obuf, h);
}

/* ---- connection life ---- */

static void conn_reset_bufs(struct conn *c)
{
	free(c->in);
	free(c->out);
	free(c->frag);
	c->in = c->out = c->frag = NULL;
	c->inlen = c->outoff = c->outlen = c->outcap = c->fraglen = 0;
}

static void conn_kill(struct worker *w, struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->state >= CS_CONNECTING && c->state <= CS_WELCOME &&
	    w->inflight > 0 && !c->churn)
		w->inflight--;
	c->pollout = 0;
	conn_reset_bufs(c);
}

/* The connect phase's answer, once every stable session is up or lost. */
static void connect_check_done(struct worker *w)
{
	if (!w->connecting || w->cres.ready + w->cres.failed < w->plan.count)
		return;
	w->connecting = 0;
	bench_ipc_send(w->ctl, BR_CONNECTED, &w->cres, sizeof w->cres, NULL, 0);
}

static void retry_push(struct worker *w, struct conn *c)
{
	if (w->nretry == w->capretry) {
		uint32_t cap = w->capretry ? w->capretry * 2 : 64;
		struct conn **nr = realloc(w->retry, cap * sizeof *nr);
		if (!nr)
			return;
		w->retry = nr;
		w->capretry = cap;
	}
	w->retry[w->nretry++] = c;
}

/* An attempt failed (why) or the server closed a session. */
static void conn_fail(struct worker *w, struct conn *c, const char *why)
{
	int was_ready = c->state == CS_READY;

	conn_kill(w, c);
	if (c->churn) {
		if (!was_ready)
			w->r.churn_failed++;
		c->state = CS_IDLE;
		return;
	}
	if (was_ready) {
		/* A stable session lost mid-run: its messages count as lost. */
		c->state = CS_FAILED;
		w->closes_total++;
		if (!w->first_close[0])
			snprintf(w->first_close, sizeof w->first_close, "%s",
			         why);
		return;
	}
	if (!w->cres.why[0])
		snprintf(w->cres.why, sizeof w->cres.why, "%s", why);
	if (++c->attempts < MAX_ATTEMPTS && w->connecting &&
	    bench_now_ns() + RETRY_DELAY_NS < w->connect_deadline) {
		c->state = CS_IDLE;
		c->t_retry = bench_now_ns() + RETRY_DELAY_NS;
		w->cres.retries++;
		retry_push(w, c);
		return;
	}
	c->state = CS_FAILED;
	if (!c->counted) {
		c->counted = 1;
		w->cres.failed++;
	}
	connect_check_done(w);
}

static void conn_start(struct worker *w, struct conn *c)
{
	const bench_edge *to = &w->plan.edge[c->edge];
	struct sockaddr_in src, dst;
	struct epoll_event ev;
	uint32_t a = w->src_seq++;
	int one = 1, fd;
	char why[96];

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, sizeof why, "socket: %s", strerror(errno));
		c->state = CS_IDLE;
		conn_fail(w, c, why);
		return;
	}
	c->fd = fd;
	c->state = CS_CONNECTING;
	c->t_start = bench_now_ns();
	if (!c->churn)
		w->inflight++;
	if (!w->cres.t_first && !c->churn)
		w->cres.t_first = c->t_start;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	/* 127.S.Y.Z: S = 16 + worker, then a new address per attempt (to
	 * any edge: a source address may serve several destinations). */
	memset(&src, 0, sizeof src);
	src.sin_family = AF_INET;
	src.sin_addr.s_addr =
	    htonl((127u << 24) | ((16u + w->plan.worker) % 256u) << 16 |
	          ((a / 254u) % 256u) << 8 | (a % 254u + 1u));
	memset(&dst, 0, sizeof dst);
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)to->port);
	if (inet_pton(AF_INET, to->host, &dst.sin_addr) != 1)
		dst.sin_addr.s_addr = htonl(0x7f000001);
	/* Spread source addresses only towards a loopback edge. */
	if ((ntohl(dst.sin_addr.s_addr) >> 24) == 127 &&
	    bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
		snprintf(why, sizeof why, "bind: %s", strerror(errno));
		conn_fail(w, c, why);
		return;
	}
	ev.events = EPOLLOUT | EPOLLIN;
	ev.data.ptr = c;
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		snprintf(why, sizeof why, "epoll: %s", strerror(errno));
		conn_fail(w, c, why);
		return;
	}
	c->pollout = 1;
	if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, sizeof why, "connect: %s", strerror(errno));
		conn_fail(w, c, why);
	}
}

static void send_upgrade(struct worker *w, struct conn *c)
{
	char name[BENCH_NAME_MAX + 1], key[25], req[2048];
	uint8_t kb[16];
	uint64_t uid;
	char *tok;
	int n;

	for (int i = 0; i < 16; i += 8) {
		uint64_t r = rnd(w);
		memcpy(kb + i, &r, 8);
	}
	b64_16(kb, key);
	if (chatc_ws_accept_key(key, c->accept) != 0) {
		conn_fail(w, c, "accept key digest failed");
		return;
	}
	bench_user_name(name, w->plan.prefix, c->churn, c->idx);
	uid = c->churn ? w->cuid[c->idx - w->plan.churn_first]
	               : w->uid[c->idx - w->plan.first];
	tok =
	    chat_jwt_issue((const unsigned char *)w->plan.secret,
	                   w->plan.secret_len, uid, name, w->plan.token_ttl_s);
	if (!tok) {
		conn_fail(w, c, "cannot mint a token");
		return;
	}
	n = snprintf(req, sizeof req,
	             "GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
	             "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	             "Sec-WebSocket-Version: 13\r\nUser-Agent: chat-bench\r\n"
	             "Authorization: Bearer %s\r\n\r\n",
	             w->plan.edge[c->edge].host, w->plan.edge[c->edge].port,
	             key, tok);
	free(tok);
	c->state = CS_HANDSHAKE;
	if (n <= 0 || (size_t)n >= sizeof req ||
	    conn_write(w, c, req, (size_t)n) != 0)
		conn_fail(w, c, "cannot send the upgrade");
}

static void on_ready(struct worker *w, struct conn *c)
{
	c->state = CS_READY;
	if (c->churn) {
		w->r.churn_connects++;
		return;
	}
	if (w->inflight > 0)
		w->inflight--;
	if (!c->counted) {
		c->counted = 1;
		w->cres.ready++;
		w->cres.t_last = bench_now_ns();
		connect_check_done(w);
	}
}

/* ---- frames in ---- */

static int slot_of(struct worker *w, const struct conn *c, uint64_t chan)
{
	for (int s = 0; s < c->nch; s++)
		if (w->chan_id[c->ch[s]] == chan)
			return s;
	return -1;
}

static void done_note(struct worker *w, uint64_t seq, int64_t intended,
                      int64_t lat)
{
	uint64_t i;

	if (seq < w->done_base)
		return;
	i = seq - w->done_base;
	if (i > 10000000)
		return;
	while (i >= w->capdone) {
		uint32_t cap = w->capdone ? w->capdone * 2 : 1024;
		bench_done *nd = realloc(w->done, cap * sizeof *nd);
		if (!nd)
			return;
		memset(nd + w->capdone, 0, (cap - w->capdone) * sizeof *nd);
		w->done = nd;
		w->capdone = cap;
	}
	if (i >= w->ndone)
		w->ndone = (uint32_t)i + 1;
	w->done[i].seq = seq;
	w->done[i].intended = intended;
	if (lat > w->done[i].maxlat)
		w->done[i].maxlat = lat;
	w->done[i].nrecv++;
}

/* Where a delivery spent its time, by the server's wall-clock stamps
 * (ms; a stage may read up to 1 ms short or long). */
static void stages(struct worker *w, const bench_sframe *f, int64_t intended,
                   int64_t now)
{
	int64_t t[4];

	if (!f->sent_at_ms || !f->stored_at_ms)
		return;
	t[0] = intended + w->rt_off;
	t[1] = f->sent_at_ms * 1000000;
	t[2] = f->stored_at_ms * 1000000;
	t[3] = now + w->rt_off;
	for (int i = 0; i < 3; i++)
		bench_hist_add(&w->r.stage[i], t[i + 1] > t[i]
		                                   ? (uint64_t)(t[i + 1] - t[i])
		                                   : 0);
}

static void on_chat_message(struct worker *w, struct conn *c,
                            const bench_sframe *f, int64_t now)
{
	int s = slot_of(w, c, f->channel_id);
	uint64_t intended;
	uint32_t ch;

	if (c->churn || s < 0) {
		w->r.other_pushes++;
		w->pushes_total++;
		return;
	}
	if (f->seq <= c->last_seq[s]) {
		w->r.dup++;
		return;
	}
	if (f->seq > c->last_seq[s] + 1)
		w->r.gaps += f->seq - c->last_seq[s] - 1;
	c->last_seq[s] = f->seq;
	c->nrecv[s]++;
	ch = c->ch[s];
	if (f->seq > w->maxseq[ch])
		w->maxseq[ch] = f->seq;
	w->deliv_total++;
	w->r.deliv_step++;
	if (now >= w->ws && now < w->we)
		w->r.deliv_win++;
	if (f->body_len < 16 || get_hex(f->body, 16, &intended) != 0)
		return;
	if ((int64_t)intended >= w->ws && (int64_t)intended < w->we) {
		int64_t lat = now - (int64_t)intended;
		if (lat < 0)
			lat = 0;
		bench_hist_add(&w->r.hist, (uint64_t)lat);
		stages(w, f, (int64_t)intended, now);
		if (w->plan.topo.scenario == 'D')
			done_note(w, f->seq, (int64_t)intended, lat);
	}
}

static void on_server_frame(struct worker *w, struct conn *c, const uint8_t *p,
                            size_t len, int64_t now)
{
	bench_sframe f;
	int s;

	if (bench_pb_parse(p, len, &f) != 0) {
		w->r.errors_step++;
		return;
	}
	switch (f.kind) {
	case BENCH_K_MESSAGE:
		on_chat_message(w, c, &f, now);
		break;
	case BENCH_K_WELCOME:
		if (c->state == CS_WELCOME)
			on_ready(w, c);
		break;
	case BENCH_K_SEND_ACK:
		s = slot_of(w, c, f.channel_id);
		w->answered_total++;
		w->r.acked_step++;
		if (s >= 0) {
			w->acked[c->ch[s]]++;
			w->expect_total += w->members[c->ch[s]];
		}
		break;
	case BENCH_K_ERROR:
		w->r.errors_step++;
		if (f.code == 8)
			w->r.rate_limited_step++;
		if (f.req_id)
			w->answered_total++;
		break;
	default:
		w->r.other_pushes++;
		w->pushes_total++;
		break;
	}
}

/* A complete WebSocket message or control frame. Returns 0, or -1 when
 * the connection is to be dropped (why filled). */
static int on_ws_frame(struct worker *w, struct conn *c,
                       const chatc_ws_frame *f, int64_t now, char *why,
                       size_t whylen)
{
	switch (f->opcode) {
	case CHATC_WS_PING:
		return conn_frame(w, c, CHATC_WS_PONG, f->payload,
		                  (size_t)f->len) == 0
		           ? 0
		           : (snprintf(why, whylen, "write failed"), -1);
	case CHATC_WS_PONG:
		return 0;
	case CHATC_WS_CLOSE: {
		int code =
		    f->len >= 2 ? (f->payload[0] << 8 | f->payload[1]) : 1005;
		int rl = f->len > 2 ? (int)f->len - 2 : 0;
		if (rl > 100)
			rl = 100;
		snprintf(why, whylen, "closed by the server: %d %.*s", code, rl,
		         f->len > 2 ? (const char *)f->payload + 2 : "");
		return -1;
	}
	case CHATC_WS_BINARY:
	case CHATC_WS_TEXT:
		if (f->fin && !c->frag) {
			on_server_frame(w, c, f->payload, (size_t)f->len, now);
			return 0;
		}
		if (c->frag) {
			snprintf(why, whylen,
			         "new message inside a fragmented "
			         "one");
			return -1;
		}
		c->frag = malloc(f->len ? f->len : 1);
		if (!c->frag) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		memcpy(c->frag, f->payload, f->len);
		c->fraglen = (uint32_t)f->len;
		return 0;
	case CHATC_WS_CONT: {
		uint8_t *nb;
		if (!c->frag || c->fraglen + f->len > MAX_FRAME) {
			snprintf(why, whylen, "bad continuation frame");
			return -1;
		}
		nb = realloc(c->frag, c->fraglen + f->len + 1);
		if (!nb) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		c->frag = nb;
		memcpy(c->frag + c->fraglen, f->payload, f->len);
		c->fraglen += (uint32_t)f->len;
		if (f->fin) {
			on_server_frame(w, c, c->frag, c->fraglen, now);
			free(c->frag);
			c->frag = NULL;
			c->fraglen = 0;
		}
		return 0;
	}
	default:
		snprintf(why, whylen, "unknown opcode %d", f->opcode);
		return -1;
	}
}

/* The upgrade answer: returns the header length, 0 when incomplete, -1 on
 * a refusal or a bad answer (why filled). */
static long parse_upgrade(struct worker *w, struct conn *c, const uint8_t *b,
                          size_t len, char *why, size_t whylen)
{
	const uint8_t *end = memmem(b, len, "\r\n\r\n", 4);
	char hdr[HS_MAX + 1], *line, *save = NULL;
	size_t hl;
	int status = 0, ok_accept = 0;

	if (!end) {
		if (len > HS_MAX) {
			snprintf(why, whylen, "upgrade answer too long");
			return -1;
		}
		return 0;
	}
	hl = (size_t)(end - b) + 4;
	if (hl > HS_MAX) {
		snprintf(why, whylen, "upgrade answer too long");
		return -1;
	}
	memcpy(hdr, b, hl);
	hdr[hl] = '\0';
	if (sscanf(hdr, "HTTP/1.1 %d", &status) != 1 || status != 101) {
		const char *body = (const char *)end + 4;
		size_t bl = len - hl;
		if (bl > 80)
			bl = 80;
		w->cres.http_refused++;
		snprintf(why, whylen, "upgrade refused: HTTP %d %.*s", status,
		         (int)bl, body);
		return -1;
	}
	for (line = strtok_r(hdr, "\r\n", &save); line;
	     line = strtok_r(NULL, "\r\n", &save)) {
		if (!strncasecmp(line, "Sec-WebSocket-Accept:", 21)) {
			const char *v = line + 21;
			while (*v == ' ')
				v++;
			ok_accept = !strcmp(v, c->accept);
		}
	}
	if (!ok_accept) {
		snprintf(why, whylen, "bad Sec-WebSocket-Accept");
		return -1;
	}
	c->state = CS_WELCOME;
	return (long)hl;
}

/* Consume what b holds; returns the bytes used (the rest is an
 * incomplete frame), or -1 when the connection is to be dropped. */
static long consume(struct worker *w, struct conn *c, uint8_t *b, size_t len,
                    int64_t now, char *why, size_t whylen)
{
	size_t off = 0;

	if (c->state == CS_HANDSHAKE) {
		long h = parse_upgrade(w, c, b, len, why, whylen);
		if (h <= 0)
			return h;
		off = (size_t)h;
	}
	while (off < len && c->fd >= 0) {
		chatc_ws_frame f;
		char err[160];
		long n = chatc_ws_parse_frame(b + off, len - off, 0, MAX_FRAME,
		                              &f, err, sizeof err);
		if (n == 0)
			break;
		if (n < 0) {
			snprintf(why, whylen, "bad frame: %s", err);
			return -1;
		}
		if (on_ws_frame(w, c, &f, now, why, whylen) != 0)
			return -1;
		off += (size_t)n;
	}
	return (long)off;
}

static void conn_read(struct worker *w, struct conn *c)
{
	uint32_t keep = c->inlen;
	char why[200] = "";
	ssize_t n;
	long used;
	int64_t now;

	if (keep)
		memcpy(w->scratch, c->in, keep);
	free(c->in);
	c->in = NULL;
	c->inlen = 0;
	do
		n = recv(c->fd, w->scratch + keep, SCRATCH - keep, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		n = -2;
	if (n == 0 || n == -1) {
		snprintf(why, sizeof why, "%s",
		         n == 0 ? "connection closed by the server"
		                : strerror(errno));
		conn_fail(w, c, why);
		return;
	}
	if (n == -2)
		n = 0;
	now = bench_now_ns();
	used =
	    consume(w, c, w->scratch, keep + (size_t)n, now, why, sizeof why);
	if (used < 0) {
		conn_fail(w, c, why);
		return;
	}
	if (c->fd < 0)
		return;
	if ((size_t)used < keep + (size_t)n) {
		uint32_t rest = keep + (uint32_t)n - (uint32_t)used;
		if (rest >= SCRATCH - 1) {
			conn_fail(w, c, "frame larger than the read buffer");
			return;
		}
		c->in = malloc(rest);
		if (!c->in) {
			conn_fail(w, c, "out of memory");
			return;
		}
		memcpy(c->in, w->scratch + used, rest);
		c->inlen = rest;
	}
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events)
{
	if (c->fd < 0)
		return;
	if (c->state == CS_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof err;
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			char why[96];
			snprintf(why, sizeof why, "connect: %s", strerror(err));
			conn_fail(w, c, why);
			return;
		}
		set_pollout(w, c, 0);
		send_upgrade(w, c);
		return;
	}
	if (events & EPOLLOUT) {
		if (conn_flush(w, c) != 0) {
			conn_fail(w, c, "write failed");
			return;
		}
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_read(w, c);
}

/* ---- sending ---- */

static void send_one(struct worker *w, uint64_t j, int64_t intended,
                     int64_t now)
{
	struct conn *c = &w->c[j % w->plan.count];
	uint8_t frame[BENCH_PB_SEND_MAX];
	char body[BENCH_PB_MAX_BODY], cmid[17];
	size_t blen = w->plan.body_size, flen;
	int s;

	if (intended >= w->ws && intended < w->we)
		w->r.sent_win++;
	w->r.sent_step++;
	if (now - intended > (int64_t)w->r.send_lag_max_ns)
		w->r.send_lag_max_ns = (uint64_t)(now - intended);
	if (c->state != CS_READY || !c->nch) {
		w->r.not_ready_step++;
		return;
	}
	s = (int)((j / w->plan.count) % c->nch);
	/* body: 16 hex digits of the intended send time (CLOCK_MONOTONIC
	 * ns), 8 of the sender, then padding. */
	put_hex(body, (uint64_t)intended, 16);
	put_hex(body + 16, c->idx, 8);
	memset(body + 24, 'x', blen - 24);
	put_hex(cmid, c->nsent++, 16);
	cmid[16] = '\0';
	flen = bench_pb_send(frame, ++c->req_id, w->chan_id[c->ch[s]], cmid, 16,
	                     body, blen);
	w->sent_total++;
	if (conn_frame(w, c, CHATC_WS_BINARY, frame, flen) != 0)
		conn_fail(w, c, "write failed");
}

static void churn_one(struct worker *w)
{
	struct conn *c;

	if (!w->plan.churn_count)
		return;
	c = &w->c[w->plan.count + w->churn_rr++ % w->plan.churn_count];
	if (c->state == CS_READY) {
		/* Half leave politely (close frame), half just drop. */
		if (c->idx % 2 == 0) {
			uint8_t code[2] = {1000 >> 8, 1000 & 0xff};
			conn_frame(w, c, CHATC_WS_CLOSE, code, 2);
		}
		conn_kill(w, c);
		c->state = CS_IDLE;
		w->r.churn_disconnects++;
	}
	if (c->state == CS_IDLE)
		conn_start(w, c);
	else
		w->r.churn_busy++;
}

static int64_t due(const struct worker *w, uint64_t j, double interval)
{
	return w->run.t0_ns + (int64_t)((double)j * interval);
}

/* Everything due by now: sends, churn, window bookkeeping, connects. */
static void tick(struct worker *w, int64_t now)
{
	if (w->running) {
		int64_t end = w->run.t0_ns + w->run.dur_ns;
		if (!w->win_open && now >= w->ws) {
			w->win_open = 1;
			w->cpu_ws = bench_self_cpu_ns();
		}
		if (w->interval > 0) {
			for (;;) {
				int64_t t = due(w, w->next_j, w->interval);
				if (t > now || t >= end)
					break;
				send_one(w, w->next_j, t, now);
				w->next_j++;
			}
		}
		if (w->churn_interval > 0) {
			for (;;) {
				int64_t t =
				    due(w, w->next_cj, w->churn_interval);
				if (t > now || t >= end)
					break;
				churn_one(w);
				w->next_cj++;
			}
		}
		if (!w->win_closed && now >= w->we) {
			w->win_closed = 1;
			w->cpu_we = bench_self_cpu_ns();
		}
		if (now >= end && w->win_closed)
			w->running = 0;
	}
	if (w->connecting) {
		while (w->nretry && w->inflight < w->plan.connect_conc &&
		       w->retry[0]->t_retry <= now) {
			struct conn *c = w->retry[0];
			memmove(w->retry, w->retry + 1,
			        (w->nretry - 1) * sizeof *w->retry);
			w->nretry--;
			if (c->state == CS_IDLE)
				conn_start(w, c);
		}
		while (
		    w->next_new < w->plan.count &&
		    w->inflight < w->plan.connect_conc &&
		    (w->plan.connect_rate <= 0 ||
		     (double)w->next_new < (double)(now - w->connect_t0) / 1e9 *
		                                   w->plan.connect_rate +
		                               1))
			conn_start(w, &w->c[w->next_new++]);
		if (now >= w->connect_deadline) {
			for (uint32_t i = 0; i < w->plan.count; i++) {
				struct conn *c = &w->c[i];
				if (c->counted)
					continue;
				conn_kill(w, c);
				c->state = CS_FAILED;
				c->counted = 1;
				w->cres.failed++;
			}
			if (!w->cres.why[0])
				snprintf(w->cres.why, sizeof w->cres.why,
				         "connect deadline passed");
			connect_check_done(w);
		}
	}
	if (now >= w->next_scan) {
		w->next_scan = now + SCAN_EVERY_NS;
		for (uint32_t i = 0; i < w->nconn; i++) {
			struct conn *c = &w->c[i];
			if (c->state >= CS_CONNECTING &&
			    c->state <= CS_WELCOME &&
			    now - c->t_start > ATTEMPT_TIMEOUT_NS)
				conn_fail(w, c, "session setup timed out");
		}
	}
}

static int64_t next_wake(const struct worker *w, int64_t now)
{
	int64_t t = now + 100 * 1000000LL;

	if (w->running) {
		int64_t end = w->run.t0_ns + w->run.dur_ns;
		if (w->interval > 0) {
			int64_t d = due(w, w->next_j, w->interval);
			if (d < end && d < t)
				t = d;
		}
		if (w->churn_interval > 0) {
			int64_t d = due(w, w->next_cj, w->churn_interval);
			if (d < end && d < t)
				t = d;
		}
		if (!w->win_open && w->ws < t)
			t = w->ws;
		if (!w->win_closed && w->we < t)
			t = w->we;
	}
	if (w->nretry && w->retry[0]->t_retry < t)
		t = w->retry[0]->t_retry;
	if (w->connecting && w->plan.connect_rate > 0 &&
	    w->next_new < w->plan.count) {
		int64_t d =
		    w->connect_t0 +
		    (int64_t)((double)w->next_new / w->plan.connect_rate * 1e9);
		if (d < t)
			t = d;
	}
	return t;
}

/* ---- commands ---- */

static int load_plan(struct worker *w, const uint8_t *p, size_t len)
{
	const bench_plan *pl = (const bench_plan *)p;
	size_t need;
	uint32_t nchan;

	if (len < sizeof *pl)
		return -1;
	memcpy(&w->plan, pl, sizeof *pl);
	nchan = w->plan.topo.nchan;
	need = sizeof *pl +
	       8 * ((size_t)w->plan.count + w->plan.churn_count + nchan);
	if (len != need || w->plan.body_size < 24 ||
	    w->plan.body_size > BENCH_PB_MAX_BODY ||
	    w->plan.secret_len > BENCH_SECRET_MAX || w->plan.nedges < 1 ||
	    w->plan.nedges > BENCH_EDGES_MAX)
		return -1;
	w->nconn = w->plan.count + w->plan.churn_count;
	w->uid = malloc(8 * (w->plan.count + 1));
	w->cuid = malloc(8 * (w->plan.churn_count + 1));
	w->chan_id = malloc(8 * (nchan + 1));
	w->members = malloc(4 * (nchan + 1));
	w->acked = calloc(nchan + 1, 8);
	w->maxseq = calloc(nchan + 1, 8);
	w->c = calloc(w->nconn + 1, sizeof *w->c);
	if (!w->uid || !w->cuid || !w->chan_id || !w->members || !w->acked ||
	    !w->maxseq || !w->c)
		return -1;
	p += sizeof *pl;
	memcpy(w->uid, p, 8 * (size_t)w->plan.count);
	p += 8 * (size_t)w->plan.count;
	memcpy(w->cuid, p, 8 * (size_t)w->plan.churn_count);
	p += 8 * (size_t)w->plan.churn_count;
	memcpy(w->chan_id, p, 8 * (size_t)nchan);
	for (uint32_t c = 0; c < nchan; c++)
		w->members[c] = bench_topo_members(&w->plan.topo, c);
	for (uint32_t i = 0; i < w->nconn; i++) {
		struct conn *c = &w->c[i];
		c->fd = -1;
		c->state = CS_IDLE;
		if (i < w->plan.count) {
			c->idx = w->plan.first + i;
			c->nch = (uint8_t)bench_topo_chans(&w->plan.topo,
			                                   c->idx, c->ch);
		} else {
			c->churn = 1;
			c->idx = w->plan.churn_first + (i - w->plan.count);
			c->nch = (uint8_t)bench_topo_churn_chans(&w->plan.topo,
			                                         c->idx, c->ch);
		}
		c->edge = (uint8_t)(c->idx % w->plan.nedges);
	}
	return 0;
}

static void start_run(struct worker *w, const bench_run *r)
{
	w->run = *r;
	memset(&w->r, 0, sizeof w->r);
	bench_hist_init(&w->r.hist);
	for (int i = 0; i < 3; i++)
		bench_hist_init(&w->r.stage[i]);
	w->rt_off = realtime_ns() - bench_now_ns();
	w->ndone = 0;
	/* D: the messages of this step come after every earlier one. */
	w->done_base = w->maxseq[0] + 1;
	w->interval = r->rate > 0 ? 1e9 / r->rate : 0;
	w->churn_interval = r->churn_rate > 0 ? 1e9 / r->churn_rate : 0;
	w->next_j = w->next_cj = 0;
	w->ws = r->t0_ns + r->warmup_ns;
	w->we = r->t0_ns + r->dur_ns;
	w->win_open = w->win_closed = 0;
	w->cpu_ws = w->cpu_we = 0;
	w->running = 1;
}

static int send_report(struct worker *w)
{
	uint32_t nchan = w->plan.topo.nchan;
	size_t an = 8 * (size_t)nchan, dn;
	uint8_t *buf;
	int rc;

	w->r.cpu_win_ns = w->cpu_we > w->cpu_ws ? w->cpu_we - w->cpu_ws : 0;
	w->r.held = 0;
	for (uint32_t i = 0; i < w->plan.count; i++)
		if (w->c[i].state == CS_READY)
			w->r.held++;
	w->r.ndone = w->ndone;
	w->r.unexpected_closes = w->closes_total;
	memcpy(w->r.first_close, w->first_close, sizeof w->r.first_close);
	dn = (size_t)w->ndone * sizeof(bench_done);
	buf = malloc(2 * an + dn + 1);
	if (!buf)
		return -1;
	memcpy(buf, w->acked, an);
	memcpy(buf + an, w->maxseq, an);
	if (dn)
		memcpy(buf + 2 * an, w->done, dn);
	rc = bench_ipc_send(w->ctl, BR_REPORT, &w->r, sizeof w->r, buf,
	                    2 * an + dn);
	free(buf);
	return rc;
}

/* Every acked message of a channel (global counts from the coordinator)
 * against what each stable member received. */
static int send_loss(struct worker *w, const uint8_t *p, size_t len)
{
	uint32_t nchan = w->plan.topo.nchan;
	const uint64_t *acked = (const uint64_t *)p;
	const uint64_t *maxseq = acked + nchan;
	bench_lossrep lr = {0, 0};

	if (len != 16 * (size_t)nchan)
		return -1;
	for (uint32_t i = 0; i < w->plan.count; i++) {
		struct conn *c = &w->c[i];
		int shortc = 0;
		for (int s = 0; s < c->nch; s++) {
			uint64_t want = maxseq[c->ch[s]];
			if (acked[c->ch[s]] > want)
				want = acked[c->ch[s]];
			if (c->nrecv[s] < want) {
				lr.missing += want - c->nrecv[s];
				shortc = 1;
			}
		}
		lr.members_short += (uint64_t)shortc;
	}
	return bench_ipc_send(w->ctl, BR_LOSS, &lr, sizeof lr, NULL, 0);
}

static void fail_out(struct worker *w, const char *why)
{
	bench_ipc_send(w->ctl, BR_FAIL, why, strlen(why), NULL, 0);
}

/* One command; returns 1 to go on, 0 to quit. */
static int on_command(struct worker *w)
{
	uint32_t type;
	void *buf;
	size_t len;
	int go = 1;

	if (bench_ipc_recv(w->ctl, &type, &buf, &len) != 0)
		return 0;
	switch (type) {
	case BC_PLAN:
		if (load_plan(w, buf, len) != 0) {
			fail_out(w, "bad plan");
			go = 0;
		} else {
			bench_ipc_send(w->ctl, BR_OK, NULL, 0, NULL, 0);
		}
		break;
	case BC_CONNECT:
		if (len != sizeof(int64_t)) {
			fail_out(w, "bad connect command");
			go = 0;
			break;
		}
		memcpy(&w->connect_deadline, buf, sizeof(int64_t));
		memset(&w->cres, 0, sizeof w->cres);
		w->connecting = 1;
		w->next_new = 0;
		w->connect_t0 = bench_now_ns();
		connect_check_done(w); /* nothing to connect */
		break;
	case BC_RUN:
		if (len != sizeof(bench_run)) {
			fail_out(w, "bad run command");
			go = 0;
			break;
		}
		start_run(w, buf);
		bench_ipc_send(w->ctl, BR_OK, NULL, 0, NULL, 0);
		break;
	case BC_STATUS: {
		bench_status st;
		st.sent = w->sent_total;
		st.answered = w->answered_total;
		st.expect = w->expect_total;
		st.delivered = w->deliv_total;
		st.pushes = w->pushes_total;
		bench_ipc_send(w->ctl, BR_STATUS, &st, sizeof st, NULL, 0);
		break;
	}
	case BC_REPORT:
		if (send_report(w) != 0)
			go = 0;
		break;
	case BC_LOSS:
		if (send_loss(w, buf, len) != 0) {
			fail_out(w, "bad loss command");
			go = 0;
		}
		break;
	case BC_QUIT:
	default:
		go = 0;
		break;
	}
	free(buf);
	return go;
}

int bench_worker_main(int fd)
{
	struct worker *w = calloc(1, sizeof *w);
	struct epoll_event ev, evs[MAX_EVENTS];
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	if (!w)
		return 1;
	w->ctl = fd;
	w->rng = (uint64_t)bench_now_ns() ^ ((uint64_t)getpid() << 32) ^
	         0x9e3779b97f4a7c15ull;
	w->scratch = malloc(SCRATCH);
	w->obuf = malloc(BENCH_PB_SEND_MAX + 16);
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	w->ws = w->we = INT64_MAX;
	if (!w->scratch || !w->obuf || w->ep < 0 || chat_auth_init() != 0)
		goto out;
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		goto out;
	for (;;) {
		int64_t now = bench_now_ns(), wake = next_wake(w, now);
		struct timespec ts;
		int n, quit = 0;

		if (wake < now)
			wake = now;
		ts.tv_sec = (wake - now) / SEC;
		ts.tv_nsec = (wake - now) % SEC;
		n = epoll_pwait2(w->ep, evs, MAX_EVENTS, &ts, NULL);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			if (!evs[i].data.ptr) {
				if (!on_command(w)) {
					quit = 1;
					break;
				}
				continue;
			}
			conn_event(w, evs[i].data.ptr, evs[i].events);
		}
		if (quit)
			break;
		tick(w, bench_now_ns());
	}
	rc = 0;
out:
	if (w->c)
		for (uint32_t i = 0; i < w->nconn; i++)
			conn_kill(w, &w->c[i]);
	if (w->ep >= 0)
		close(w->ep);
	free(w->c);
	free(w->uid);
	free(w->cuid);
	free(w->chan_id);
	free(w->members);
	free(w->acked);
	free(w->maxseq);
	free(w->retry);
	free(w->done);
	free(w->scratch);
	free(w->obuf);
	free(w);
	return rc;
}
