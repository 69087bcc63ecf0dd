/* fleet_traffic: a crowd of chatc clients talking through faults, and the
 * checks against PostgreSQL (see fleet_traffic.h). */
#include "fleet_traffic.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_util.h"
#include "chatc_http.h"
#include "fleet_harness.h"

#define FT_TIMEOUT_MS 5000
#define FT_POLL_MS 20

struct ft_crowd {
	char api_url[256];
	int interval_ms, max_pending;
	pthread_mutex_t mu;
	ft_client cl[FT_MAX_CLIENTS];
	size_t n;
	pthread_t thread;
	int started;
	atomic_int stop, sending;
	uint64_t counter;
};

static int64_t now_ms(void)
{
	return chat_mono_ms();
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- records ----------------------------------------------------------- */

static ft_sent *sent_find(ft_client *k, const char *cmid)
{
	if (!cmid)
		return NULL;
	for (size_t i = k->nsent; i > 0; i--)
		if (!strcmp(k->sent[i - 1].cmid, cmid))
			return &k->sent[i - 1];
	return NULL;
}

static int chan_idx(const ft_client *k, uint64_t ch)
{
	for (size_t i = 0; i < k->nchans; i++)
		if (k->chans[i] == ch)
			return (int)i;
	return -1;
}

static void on_event(void *user, chatc *c, const chatc_event *ev)
{
	ft_client *k = user;
	ft_sent *s;
	int i;
	(void)c;

	switch (ev->type) {
	case CHATC_EV_WELCOME:
		k->welcomes++;
		if (ev->frame && ev->frame->welcome) {
			k->user_id = ev->frame->welcome->user_id;
			snprintf(k->edge_id, sizeof k->edge_id, "%s",
			         ev->frame->welcome->edge_id
			             ? ev->frame->welcome->edge_id
			             : "");
		}
		break;
	case CHATC_EV_DISCONNECTED:
		k->disconnects++;
		k->down_ms = now_ms();
		break;
	case CHATC_EV_RESUME_DONE:
		k->resumes++;
		k->resumed_ms = now_ms();
		break;
	case CHATC_EV_SEND_ACK:
		if ((s = sent_find(k, ev->client_msg_id)) && !s->ack_ms)
			s->ack_ms = now_ms();
		break;
	case CHATC_EV_SEND_FAILED:
		if ((s = sent_find(k, ev->client_msg_id)))
			s->failed_code = ev->code ? ev->code : -1;
		fprintf(stderr, "ft: %s: send %s refused for good: %d %s\n",
		        k->name, ev->client_msg_id ? ev->client_msg_id : "?",
		        ev->code, ev->reason ? ev->reason : "");
		break;
	case CHATC_EV_ERROR:
		if (ev->client_msg_id && ev->retryable &&
		    (s = sent_find(k, ev->client_msg_id))) {
			s->retry_errors++;
			k->retryable_errs++;
		}
		break;
	case CHATC_EV_MESSAGE:
		k->received++;
		if (k->last_rx_ms && now_ms() - k->last_rx_ms > k->max_gap_ms)
			k->max_gap_ms = now_ms() - k->last_rx_ms;
		k->last_rx_ms = now_ms();
		if ((i = chan_idx(k, ev->channel_id)) >= 0) {
			if (ev->msg->seq != k->last_seq[i] + 1)
				k->bad_order++;
			k->last_seq[i] = ev->msg->seq;
		}
		if (ev->msg->sender_id == k->user_id &&
		    (s = sent_find(k, ev->msg->client_msg_id)))
			s->echoed = 1;
		break;
	case CHATC_EV_CHANNEL:
		k->reply_req = ev->req_id;
		k->reply_chan = ev->channel_id;
		break;
	default:
		break;
	}
}

/* ---- driving ----------------------------------------------------------- */

/* One client sends its next message when due (under mu). */
static void maybe_send(ft_crowd *w, ft_client *k, int64_t now)
{
	ft_sent *s;
	char cmid[CHATC_CMID_LEN], body[48];
	uint64_t ch;
	int rc;

	if (!k->sends_on || !k->nchans || now < k->next_send_ms ||
	    (int)chatc_pending_count(k->c) >= w->max_pending)
		return;
	if (k->nsent == k->capsent) {
		size_t cap = k->capsent ? k->capsent * 2 : 256;
		ft_sent *v = realloc(k->sent, cap * sizeof *v);
		if (!v)
			return;
		k->sent = v;
		k->capsent = cap;
	}
	ch = k->chans[k->next_chan++ % k->nchans];
	snprintf(body, sizeof body, "%.24s #%llu", k->name,
	         (unsigned long long)++w->counter);
	rc = chatc_send(k->c, ch, body, cmid);
	k->next_send_ms = now + w->interval_ms -
	                  (int64_t)(chat_random_u64() %
	                            (uint64_t)(w->interval_ms / 4 + 1));
	if (rc != 0)
		return;
	s = &k->sent[k->nsent++];
	memset(s, 0, sizeof *s);
	snprintf(s->cmid, sizeof s->cmid, "%s", cmid);
	snprintf(s->body, sizeof s->body, "%s", body);
	s->channel = ch;
	s->t_ms = now;
}

/* Wait for the sockets up to ms, then let every client work (under mu
 * for the work; not while waiting). */
static void pump(ft_crowd *w, int ms, int locked)
{
	struct pollfd p[FT_MAX_CLIENTS];
	size_t n;
	int64_t now;

	if (!locked)
		pthread_mutex_lock(&w->mu);
	n = w->n;
	for (size_t i = 0; i < n; i++) {
		int t = chatc_next_timer_ms(w->cl[i].c);
		p[i].fd = chatc_fd(w->cl[i].c);
		p[i].events = POLLIN;
		if (p[i].fd >= 0 && chatc_want_write(w->cl[i].c))
			p[i].events |= POLLOUT;
		p[i].revents = 0;
		if (t >= 0 && t < ms)
			ms = t;
	}
	pthread_mutex_unlock(&w->mu);
	if (n)
		poll(p, n, ms);
	else
		sleep_ms(ms);
	pthread_mutex_lock(&w->mu);
	now = now_ms();
	for (size_t i = 0; i < w->n; i++) {
		chatc_process(w->cl[i].c, 0);
		if (atomic_load(&w->sending))
			maybe_send(w, &w->cl[i], now);
	}
	if (!locked)
		pthread_mutex_unlock(&w->mu);
}

static void *run(void *arg)
{
	ft_crowd *w = arg;
	while (!atomic_load(&w->stop))
		pump(w, FT_POLL_MS, 0);
	return NULL;
}

/* Wait until pred (called under mu) holds, pumping ourselves when the
 * thread does not run yet. 0 or -1 on timeout. */
static int wait_for(ft_crowd *w, int (*pred)(ft_crowd *, void *), void *arg,
                    int ms)
{
	int64_t deadline = now_ms() + ms;
	for (;;) {
		int ok;
		pthread_mutex_lock(&w->mu);
		ok = pred(w, arg);
		if (!ok && !w->started && now_ms() < deadline)
			pump(w, FT_POLL_MS, 1);
		pthread_mutex_unlock(&w->mu);
		if (ok)
			return 0;
		if (now_ms() >= deadline)
			return -1;
		if (w->started)
			sleep_ms(10);
	}
}

/* ---- setup ------------------------------------------------------------- */

ft_crowd *ft_new(const char *api_url, int interval_ms, int max_pending)
{
	ft_crowd *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	snprintf(w->api_url, sizeof w->api_url, "%s", api_url);
	w->interval_ms = interval_ms > 4 ? interval_ms : 4;
	w->max_pending = max_pending > 0 ? max_pending : 1;
	pthread_mutex_init(&w->mu, NULL);
	return w;
}

void ft_free(ft_crowd *w)
{
	if (!w)
		return;
	if (w->started) {
		atomic_store(&w->stop, 1);
		pthread_join(w->thread, NULL);
	}
	for (size_t i = 0; i < w->n; i++) {
		chatc_close(w->cl[i].c);
		chatc_free(w->cl[i].c);
		free(w->cl[i].sent);
	}
	pthread_mutex_destroy(&w->mu);
	free(w);
}

static int resumed_once(ft_crowd *w, void *arg)
{
	ft_client *k = arg;
	(void)w;
	return k->resumes > 0 && chatc_state(k->c) == CHATC_ONLINE;
}

int ft_add(ft_crowd *w, const char *prefix, const char *edge_url, char *err,
           size_t errlen)
{
	static int seq;
	chatc_auth a;
	chatc_opts o;
	ft_client *k;
	int idx, rc;

	if (w->n >= FT_MAX_CLIENTS) {
		snprintf(err, errlen, "too many clients");
		return -1;
	}
	pthread_mutex_lock(&w->mu);
	idx = (int)w->n;
	k = &w->cl[idx];
	memset(k, 0, sizeof *k);
	k->idx = idx;
	{
		char nm[64];
		snprintf(nm, sizeof nm, "%.20s%d_%d", prefix,
		         (int)getpid() % 100000, ++seq);
		memcpy(k->name, nm, sizeof nm);
		snprintf(k->password, sizeof k->password, "pw-%.40s-secret",
		         nm);
	}
	pthread_mutex_unlock(&w->mu);

	memset(&a, 0, sizeof a);
	rc = chatc_signup(w->api_url, k->name, k->password, 10000, &a, err,
	                  errlen);
	if (rc != 0)
		return -1;
	memset(&o, 0, sizeof o);
	o.api_url = w->api_url;
	o.name = k->name;
	o.password = k->password;
	o.edge_url = edge_url ? edge_url : a.edge_url;
	o.token = a.token;
	o.expires_at = a.expires_at;
	o.timeout_ms = FT_TIMEOUT_MS;
	o.max_held = 1000000;
	o.on_event = on_event;
	o.user = k;
	k->user_id = a.user_id;
	k->c = chatc_new(&o, err, errlen);
	if (!k->c)
		return -1;
	pthread_mutex_lock(&w->mu);
	rc = chatc_connect(k->c, err, errlen);
	if (rc == 0)
		w->n++;
	pthread_mutex_unlock(&w->mu);
	if (rc != 0) {
		chatc_free(k->c);
		k->c = NULL;
		return -1;
	}
	if (wait_for(w, resumed_once, k, 10000) != 0) {
		snprintf(err, errlen, "%s: no channel list and resume in 10 s",
		         k->name);
		return -1;
	}
	return idx;
}

struct group_wait {
	ft_client *creator;
	uint64_t req, chan;
	const int *members;
	size_t n;
};

static int got_reply(ft_crowd *w, void *arg)
{
	struct group_wait *g = arg;
	(void)w;
	if (g->creator->reply_req != g->req)
		return 0;
	g->chan = g->creator->reply_chan;
	return 1;
}

static int all_hold(ft_crowd *w, void *arg)
{
	struct group_wait *g = arg;
	for (size_t i = 0; i < g->n; i++)
		if (!chatc_channel_get(w->cl[g->members[i]].c, g->chan))
			return 0;
	return 1;
}

static void add_chan(ft_client *k, uint64_t ch, int send)
{
	if (chan_idx(k, ch) >= 0 || k->nchans >= FT_MAX_CHANS)
		return;
	k->last_seq[k->nchans] = 0;
	k->chans[k->nchans++] = ch;
	if (send)
		k->sends_on = 1;
}

uint64_t ft_group(ft_crowd *w, int creator, const int *members, size_t n,
                  int send, int ms)
{
	const char *names[FT_MAX_CLIENTS];
	struct group_wait g;
	char cname[64];
	size_t k = 0;

	memset(&g, 0, sizeof g);
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < n && k < FT_MAX_CLIENTS; i++)
		if (members[i] != creator)
			names[k++] = w->cl[members[i]].name;
	snprintf(cname, sizeof cname, "ft-%llu",
	         (unsigned long long)(chat_random_u64() % 1000000));
	g.creator = &w->cl[creator];
	g.req = chatc_create(g.creator->c, cname, names, k);
	pthread_mutex_unlock(&w->mu);
	g.members = members;
	g.n = n;
	if (!g.req || wait_for(w, got_reply, &g, ms) != 0 || !g.chan ||
	    wait_for(w, all_hold, &g, ms) != 0)
		return 0;
	pthread_mutex_lock(&w->mu);
	add_chan(g.creator, g.chan, send);
	for (size_t i = 0; i < n; i++)
		add_chan(&w->cl[members[i]], g.chan, send);
	pthread_mutex_unlock(&w->mu);
	return g.chan;
}

int ft_start(ft_crowd *w)
{
	if (w->started)
		return 0;
	atomic_store(&w->stop, 0);
	if (pthread_create(&w->thread, NULL, run, w) != 0)
		return -1;
	w->started = 1;
	return 0;
}

void ft_sending(ft_crowd *w, int on)
{
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; on && i < w->n; i++) {
		w->cl[i].last_rx_ms = 0; /* gaps count from now */
		w->cl[i].max_gap_ms = 0;
	}
	pthread_mutex_unlock(&w->mu);
	atomic_store(&w->sending, on ? 1 : 0);
}

void ft_lock(ft_crowd *w)
{
	pthread_mutex_lock(&w->mu);
}

void ft_unlock(ft_crowd *w)
{
	pthread_mutex_unlock(&w->mu);
}

ft_client *ft_get(ft_crowd *w, int i)
{
	return i >= 0 && (size_t)i < w->n ? &w->cl[i] : NULL;
}

size_t ft_count(ft_crowd *w)
{
	size_t n;
	pthread_mutex_lock(&w->mu);
	n = w->n;
	pthread_mutex_unlock(&w->mu);
	return n;
}

uint64_t ft_acked(ft_crowd *w)
{
	uint64_t n = 0;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->n; i++)
		for (size_t j = 0; j < w->cl[i].nsent; j++)
			n += w->cl[i].sent[j].ack_ms != 0;
	pthread_mutex_unlock(&w->mu);
	return n;
}

uint64_t ft_received(ft_crowd *w)
{
	uint64_t n = 0;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->n; i++)
		n += w->cl[i].received;
	pthread_mutex_unlock(&w->mu);
	return n;
}

static int online_avoiding(ft_crowd *w, void *arg)
{
	const char *avoid = arg;
	for (size_t i = 0; i < w->n; i++) {
		ft_client *k = &w->cl[i];
		if (chatc_state(k->c) != CHATC_ONLINE || k->resumed_ms == 0 ||
		    (k->down_ms && k->resumed_ms < k->down_ms))
			return 0;
		if (avoid && !strcmp(k->edge_id, avoid))
			return 0;
	}
	return 1;
}

int ft_wait_online(ft_crowd *w, const char *avoid, int ms)
{
	return wait_for(w, online_avoiding, (void *)avoid, ms);
}

int ft_wait_flow(ft_crowd *w, uint64_t n, int ms)
{
	uint64_t a0 = ft_acked(w), r0 = ft_received(w);
	int64_t deadline = now_ms() + ms;
	while (now_ms() < deadline) {
		if (ft_acked(w) >= a0 + n && ft_received(w) >= r0 + n)
			return 0;
		sleep_ms(20);
	}
	return -1;
}

/* ---- PostgreSQL -------------------------------------------------------- */

static PGconn *pg_open(void)
{
	char url[512];
	PGconn *pg;
	if (fleet_env("CHAT_STORE_DB", url, sizeof url) != 0) {
		fprintf(stderr, "ft: CHAT_STORE_DB unknown\n");
		return NULL;
	}
	pg = PQconnectdb(url);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "ft: PostgreSQL %s: %s", url,
		        PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

int ft_pg_int(const char *sql, long long *out)
{
	PGconn *pg = pg_open();
	PGresult *r;
	int rv = -1;
	if (!pg)
		return -1;
	r = PQexec(pg, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
		*out = PQgetisnull(r, 0, 0) ? 0
		                            : strtoll(PQgetvalue(r, 0, 0), NULL,
		                                      10);
		rv = 0;
	} else {
		fprintf(stderr, "ft: %s: %s", sql, PQerrorMessage(pg));
	}
	PQclear(r);
	PQfinish(pg);
	return rv;
}

/* max(seq) of a channel, or -1. */
static long long pg_max_seq(PGconn *pg, uint64_t ch)
{
	char sql[128];
	PGresult *r;
	long long v = -1;
	snprintf(sql, sizeof sql,
	         "SELECT coalesce(max(seq), 0) FROM messages WHERE "
	         "channel_id = %llu",
	         (unsigned long long)ch);
	r = PQexec(pg, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

/* Every channel some client checks, once. */
static size_t all_chans(ft_crowd *w, uint64_t *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < w->n; i++)
		for (size_t j = 0; j < w->cl[i].nchans; j++) {
			int seen = 0;
			for (size_t q = 0; q < n; q++)
				seen |= out[q] == w->cl[i].chans[j];
			if (!seen && n < max)
				out[n++] = w->cl[i].chans[j];
		}
	return n;
}

int ft_settle(ft_crowd *w, int ms, char *why, size_t whylen)
{
	uint64_t chans[FT_MAX_CLIENTS * FT_MAX_CHANS];
	long long maxs[FT_MAX_CLIENTS * FT_MAX_CHANS];
	int64_t deadline = now_ms() + ms;
	PGconn *pg = pg_open();
	size_t nch;

	ft_sending(w, 0);
	if (!pg) {
		snprintf(why, whylen, "cannot reach PostgreSQL");
		return -1;
	}
	pthread_mutex_lock(&w->mu);
	nch = all_chans(w, chans, sizeof chans / sizeof chans[0]);
	pthread_mutex_unlock(&w->mu);
	for (;;) {
		int ok = 1;
		why[0] = '\0';
		for (size_t q = 0; q < nch; q++)
			maxs[q] = pg_max_seq(pg, chans[q]);
		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; ok && i < w->n; i++) {
			ft_client *k = &w->cl[i];
			size_t pend = chatc_pending_count(k->c);
			if (pend) {
				const chatc_pending *p = chatc_pending_at(k->c,
				                                          0);
				snprintf(why, whylen,
				         "%s (on %s, %s) still has %zu sends "
				         "unconfirmed, e.g. %s acked=%d "
				         "attempts=%d",
				         k->name, k->edge_id,
				         chatc_state_name(chatc_state(k->c)),
				         pend, p->client_msg_id, p->acked,
				         p->attempts);
				ok = 0;
				break;
			}
			for (size_t j = 0; ok && j < k->nchans; j++) {
				const chatc_channel *ch =
				    chatc_channel_get(k->c, k->chans[j]);
				long long m = -1;
				for (size_t q = 0; q < nch; q++)
					if (chans[q] == k->chans[j])
						m = maxs[q];
				if (!ch || (long long)ch->held_seq != m ||
				    ch->n_early) {
					snprintf(why, whylen,
					         "%s (on %s) holds channel %llu "
					         "up to %llu (%zu early), "
					         "PostgreSQL up to %lld",
					         k->name, k->edge_id,
					         (unsigned long long)k->chans[j],
					         ch ? (unsigned long long)
					                  ch->held_seq
					            : 0ULL,
					         ch ? ch->n_early : 0, m);
					ok = 0;
				}
			}
		}
		pthread_mutex_unlock(&w->mu);
		if (ok) {
			PQfinish(pg);
			return 0;
		}
		if (now_ms() >= deadline)
			break;
		sleep_ms(200);
	}
	PQfinish(pg);
	return -1;
}

struct row {
	uint64_t seq, sender;
	char *cmid, *body;
	int matched;
};

static int verify_chan(ft_crowd *w, PGconn *pg, uint64_t ch, size_t *nrows,
                       int *matched, char *why, size_t whylen)
{
	char sql[256];
	PGresult *r;
	struct row *rows = NULL;
	size_t n;
	long long last = -1;
	int rv = -1;

	snprintf(sql, sizeof sql,
	         "SELECT seq, sender_id, client_msg_id, body FROM messages "
	         "WHERE channel_id = %llu ORDER BY seq",
	         (unsigned long long)ch);
	r = PQexec(pg, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(why, whylen, "query: %s", PQerrorMessage(pg));
		PQclear(r);
		return -1;
	}
	n = (size_t)PQntuples(r);
	rows = calloc(n ? n : 1, sizeof *rows);
	for (size_t i = 0; rows && i < n; i++) {
		rows[i].seq = strtoull(PQgetvalue(r, (int)i, 0), NULL, 10);
		rows[i].sender = strtoull(PQgetvalue(r, (int)i, 1), NULL, 10);
		rows[i].cmid = PQgetvalue(r, (int)i, 2);
		rows[i].body = PQgetvalue(r, (int)i, 3);
	}
	*nrows = n;
	if (!rows) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	/* seqs 1..n: contiguous, no repeat */
	for (size_t i = 0; i < n; i++)
		if (rows[i].seq != i + 1) {
			snprintf(why, whylen,
			         "channel %llu: row %zu has seq %llu (hole or "
			         "repeat)",
			         (unsigned long long)ch, i,
			         (unsigned long long)rows[i].seq);
			goto out;
		}
	{
		PGresult *l;
		snprintf(sql, sizeof sql,
		         "SELECT last_seq FROM channels WHERE id = %llu",
		         (unsigned long long)ch);
		l = PQexec(pg, sql);
		if (PQresultStatus(l) == PGRES_TUPLES_OK && PQntuples(l) == 1)
			last = strtoll(PQgetvalue(l, 0, 0), NULL, 10);
		PQclear(l);
		if (last != (long long)n) {
			snprintf(why, whylen,
			         "channel %llu: last_seq %lld but %zu messages",
			         (unsigned long long)ch, last, n);
			goto out;
		}
	}
	/* every row was sent by a client of the crowd, with that body, and
	 * matches one send */
	for (size_t i = 0; i < n; i++) {
		ft_client *k = NULL;
		ft_sent *s;
		for (size_t c = 0; c < w->n; c++)
			if (w->cl[c].user_id == rows[i].sender)
				k = &w->cl[c];
		if (!k) {
			snprintf(why, whylen,
			         "channel %llu seq %llu: sender %llu is no "
			         "client of the test",
			         (unsigned long long)ch,
			         (unsigned long long)rows[i].seq,
			         (unsigned long long)rows[i].sender);
			goto out;
		}
		s = sent_find(k, rows[i].cmid);
		if (!s || s->channel != ch || strcmp(s->body, rows[i].body)) {
			snprintf(why, whylen,
			         "channel %llu seq %llu: %s never sent %s "
			         "\"%s\" there",
			         (unsigned long long)ch,
			         (unsigned long long)rows[i].seq, k->name,
			         rows[i].cmid, rows[i].body);
			goto out;
		}
		s->echoed |= 2; /* found in PostgreSQL (once: UNIQUE) */
		(*matched)++;
	}
	/* each client's own sequence is the stored one */
	for (size_t c = 0; c < w->n; c++) {
		ft_client *k = &w->cl[c];
		const chatc_channel *cc;
		if (chan_idx(k, ch) < 0)
			continue;
		cc = chatc_channel_get(k->c, ch);
		if (!cc || cc->n_msgs != n || (n && cc->first_seq != 1) ||
		    cc->held_seq != n) {
			snprintf(why, whylen,
			         "%s holds %zu messages of channel %llu "
			         "(seqs %llu..%llu), PostgreSQL %zu",
			         k->name, cc ? cc->n_msgs : 0,
			         (unsigned long long)ch,
			         cc ? (unsigned long long)cc->first_seq : 0ULL,
			         cc ? (unsigned long long)cc->held_seq : 0ULL,
			         n);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			const chatc_msg *m = &cc->msgs[i];
			if (m->seq != rows[i].seq ||
			    strcmp(m->client_msg_id, rows[i].cmid) ||
			    strcmp(m->body, rows[i].body) ||
			    m->sender_id != rows[i].sender) {
				snprintf(why, whylen,
				         "%s: channel %llu position %zu holds "
				         "seq %llu \"%s\", PostgreSQL seq %llu "
				         "\"%s\"",
				         k->name, (unsigned long long)ch, i,
				         (unsigned long long)m->seq, m->body,
				         (unsigned long long)rows[i].seq,
				         rows[i].body);
				goto out;
			}
		}
	}
	rv = 0;
out:
	free(rows);
	PQclear(r);
	return rv;
}

int ft_verify(ft_crowd *w, char *why, size_t whylen)
{
	uint64_t chans[FT_MAX_CLIENTS * FT_MAX_CHANS];
	PGconn *pg = pg_open();
	size_t nch, total = 0;
	int matched = 0, rv = -1;
	long long sends = 0, acked = 0, retried = 0, drops = 0;

	if (!pg) {
		snprintf(why, whylen, "cannot reach PostgreSQL");
		return -1;
	}
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->n; i++)
		for (size_t j = 0; j < w->cl[i].nsent; j++)
			w->cl[i].sent[j].echoed &= 1;
	nch = all_chans(w, chans, sizeof chans / sizeof chans[0]);
	for (size_t q = 0; q < nch; q++) {
		size_t nrows = 0;
		if (verify_chan(w, pg, chans[q], &nrows, &matched, why,
		                whylen) != 0)
			goto out;
		total += nrows;
	}
	/* every send, acknowledged or not (all were retried until
	 * confirmed), is stored exactly once; none was refused for good */
	for (size_t i = 0; i < w->n; i++) {
		ft_client *k = &w->cl[i];
		if (k->bad_order) {
			snprintf(why, whylen,
			         "%s saw %d messages out of seq order", k->name,
			         k->bad_order);
			goto out;
		}
		drops += k->disconnects;
		for (size_t j = 0; j < k->nsent; j++) {
			ft_sent *s = &k->sent[j];
			sends++;
			acked += s->ack_ms != 0;
			retried += s->retry_errors != 0;
			if (s->failed_code) {
				snprintf(why, whylen,
				         "%s: send %s refused for good (code "
				         "%d)",
				         k->name, s->cmid, s->failed_code);
				goto out;
			}
			if (!(s->echoed & 2)) {
				snprintf(why, whylen,
				         "%s: send %s \"%s\" (channel %llu, "
				         "acked %s) is not in PostgreSQL",
				         k->name, s->cmid, s->body,
				         (unsigned long long)s->channel,
				         s->ack_ms ? "yes" : "no");
				goto out;
			}
		}
	}
	rv = 0;
	fprintf(stderr,
	        "ft: verified %zu channels, %zu stored messages: %lld sends "
	        "(%lld acknowledged, %lld retried after a retryable error), "
	        "%lld drops\n",
	        nch, total, sends, acked, retried, drops);
out:
	pthread_mutex_unlock(&w->mu);
	PQfinish(pg);
	return rv;
}

void ft_report(ft_crowd *w, const char *tag)
{
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->n; i++) {
		ft_client *k = &w->cl[i];
		size_t acked = 0;
		for (size_t j = 0; j < k->nsent; j++)
			acked += k->sent[j].ack_ms != 0;
		fprintf(stderr,
		        "ft[%s]: %-16s edge=%-8s %s sends=%zu acked=%zu "
		        "pending=%zu retryable_errors=%d drops=%d "
		        "resumes=%d received=%llu longest_silence_ms=%lld\n",
		        tag, k->name, k->edge_id,
		        chatc_state_name(chatc_state(k->c)), k->nsent, acked,
		        chatc_pending_count(k->c), k->retryable_errs,
		        k->disconnects, k->resumes,
		        (unsigned long long)k->received,
		        (long long)k->max_gap_ms);
	}
	pthread_mutex_unlock(&w->mu);
}

/* ---- Redis ------------------------------------------------------------- */

static redisContext *redis_open(void)
{
	char addr[256], *colon;
	struct timeval tv = {2, 0};
	redisContext *r;
	if (fleet_env("CHAT_REDIS", addr, sizeof addr) != 0 ||
	    !(colon = strrchr(addr, ':')))
		return NULL;
	*colon = '\0';
	r = redisConnectWithTimeout(addr, atoi(colon + 1), tv);
	if (!r || r->err) {
		if (r)
			redisFree(r);
		return NULL;
	}
	redisSetTimeout(r, tv);
	return r;
}

static int redis_int(const char *fmt, const char *a, const char *b,
                     long long *out)
{
	redisContext *c = redis_open();
	redisReply *r;
	int rv = -1;
	if (!c)
		return -1;
	r = b ? redisCommand(c, fmt, a, b) : redisCommand(c, fmt, a);
	if (r && r->type == REDIS_REPLY_INTEGER) {
		*out = r->integer;
		rv = 0;
	}
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return rv;
}

int ft_redis_exists(const char *key, long long *out)
{
	return redis_int("EXISTS %s", key, NULL, out);
}

int ft_redis_sismember(const char *key, const char *member, long long *out)
{
	return redis_int("SISMEMBER %s %s", key, member, out);
}

int ft_redis_sets_with(const char *pattern, const char *member,
                       long long *out)
{
	redisContext *c = redis_open();
	char cursor[32] = "0";
	long long n = 0;
	int rv = -1;
	if (!c)
		return -1;
	do {
		redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000",
		                             cursor, pattern);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			if (r)
				freeReplyObject(r);
			goto out;
		}
		snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			redisReply *m = redisCommand(
			    c, "SISMEMBER %s %s", r->element[1]->element[i]->str,
			    member);
			if (m && m->type == REDIS_REPLY_INTEGER && m->integer)
				n++;
			if (m)
				freeReplyObject(m);
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	*out = n;
	rv = 0;
out:
	redisFree(c);
	return rv;
}

int ft_redis_hash_has_value(const char *key, const char *val, long long *out)
{
	redisContext *c = redis_open();
	redisReply *r;
	int rv = -1;
	if (!c)
		return -1;
	r = redisCommand(c, "HVALS %s", key);
	if (r && r->type == REDIS_REPLY_ARRAY) {
		*out = 0;
		for (size_t i = 0; i < r->elements; i++)
			if (r->element[i]->type == REDIS_REPLY_STRING &&
			    !strcmp(r->element[i]->str, val))
				(*out)++;
		rv = 0;
	}
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return rv;
}

/* ---- the api ----------------------------------------------------------- */

static const char *json_str(const char *p, const char *key, char *out,
                            size_t outlen)
{
	char pat[32];
	const char *s, *e;
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	if (!(s = strstr(p, pat)))
		return NULL;
	s += strlen(pat);
	if (!(e = strchr(s, '"')) || (size_t)(e - s) >= outlen)
		return NULL;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return e + 1;
}

int ft_edges(const char *api_url, ft_edge *v, size_t max)
{
	chatc_url u;
	chatc_http_resp r;
	char err[256];
	const char *p;
	int n = 0;

	memset(&r, 0, sizeof r);
	if (chatc_url_parse(api_url, &u, err, sizeof err) != 0 ||
	    chatc_http_request(u.host, u.port, "GET", "/v1/edges", NULL, 5000,
	                       &r, err, sizeof err) != 0)
		return -1;
	if (r.head.status != 200) {
		chatc_http_resp_fini(&r);
		return -1;
	}
	p = r.body;
	while ((size_t)n < max &&
	       (p = json_str(p, "id", v[n].id, sizeof v[n].id)) &&
	       (p = json_str(p, "url", v[n].url, sizeof v[n].url))) {
		const char *l = strstr(p, "\"load\":");
		v[n].load = l ? strtoll(l + 7, NULL, 10) : -1;
		n++;
	}
	chatc_http_resp_fini(&r);
	return n;
}
