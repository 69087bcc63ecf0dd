/* chat-bench: the load generator and benchmark scenarios for chatd.
 *
 * The coordinator (this process) forks its workers first, before any
 * thread exists, then creates the run's users and channels through the
 * store's admin RPC, mints nothing itself (each worker signs its own
 * sessions' tokens with the server's secret: the bench runs on the
 * server's machine as its operator), and drives the phases: connect,
 * then one step per rate (send for --duration, drain, report, check for
 * loss). Figures: docs/BENCHMARKS.md. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_report.h"
#include "bench_setup.h"
#include "chat_auth.h"
#include "chat_json.h"
#include "chat_log.h"
#include "chat_opts.h"
#include "chat_rpc.h"
#include "chat_util.h"

#define FD_MARGIN 100 /* descriptors a worker keeps for itself */
#define SEC       1000000000LL

struct cfg {
	const char *scenario, *ready_file, *edge_url, *admin_url, *data_dir;
	const char *secret_file, *server_pid, *backend_pid;
	const char *prefix, *ramp_factor, *check_json;
	int conns, rate, duration, warmup, drain, size, ramp;
	int ramp_max, p99_limit_ms, workers, per_worker, connect_conc;
	int connect_rate, max_other_pct, noise_retries;
	int churn_rate, churn_conns, settle, settle_max, connect_timeout, quiet;
};

struct wk {
	pid_t pid;
	int fd;
	bench_plan plan;
};

struct run {
	struct cfg c;
	bench_topo topo;
	bench_result res;
	struct wk *w;
	int nw;
	int fleet; /* scenario F: C's topology on the fleet */
	int pids[BENCH_PIDS_MAX], npids;   /* the server's processes */
	int bpids[BENCH_PIDS_MAX], nbpids; /* its backing servers' */
	bench_edge edges[BENCH_EDGES_MAX];
	int nedges;
	char admin[256];
	char secret[BENCH_SECRET_MAX];
	size_t secret_len;
	uint64_t *uid, *cuid, *chan_id;
	uint64_t *acked, *maxseq;
	bench_proc base;
	long hz;
};

static const char summary[] =
    "Load generator and benchmark scenarios for chatd (docs/BENCHMARKS.md).\n"
    "Point it at a running chatd (--ready-file, or --edge-url, --admin-url,\n"
    "--data-dir and --server-pid) or at the fleet (--edge-url with every\n"
    "edge, --admin-url of a store, --secret-file, --server-pid with every\n"
    "service's pid); it creates its own users and channels.\n"
    "\n"
    "scenarios:\n"
    "  A  idle hold of --conns sessions: connect rate, memory per session\n"
    "  B  1:1 direct messages: --conns/2 pairs, --rate sends/s in total\n"
    "  C  groups of 10, each session in two channels (Centrifugo's setup)\n"
    "  D  one channel with --conns members; each send reaches all of them\n"
    "  E  C while --churn-conns more sessions connect and disconnect at\n"
    "     --churn-rate per second (loss counted for the stable ones)\n"
    "  F  C on the fleet of compose/ (real Kafka with acks=all and\n"
    "     idempotence, PostgreSQL): scripts/bench.sh F brings one up\n"
    "--ramp (B, C, D, F) multiplies the rate by --ramp-factor after each\n"
    "step until p99 passes --p99-limit-ms or a message is lost, and reports\n"
    "the highest rate that held. The last line of output is one JSON object.";

/* ---- workers ---- */

static int spawn_workers(struct run *r)
{
	r->w = calloc((size_t)r->nw, sizeof *r->w);
	if (!r->w)
		return -1;
	fflush(NULL);
	for (int i = 0; i < r->nw; i++) {
		int sv[2];
		pid_t pid;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			return -1;
		pid = fork();
		if (pid < 0)
			return -1;
		if (pid == 0) {
			for (int k = 0; k < i; k++)
				close(r->w[k].fd);
			close(sv[0]);
			/* exit(), not _exit(): sanitizer builds check the
			 * worker for leaks at exit. */
			exit(bench_worker_main(sv[1]));
		}
		close(sv[1]);
		r->w[i].pid = pid;
		r->w[i].fd = sv[0];
	}
	return 0;
}

static void stop_workers(struct run *r)
{
	for (int i = 0; r->w && i < r->nw; i++) {
		if (r->w[i].fd >= 0) {
			bench_ipc_send(r->w[i].fd, BC_QUIT, NULL, 0, NULL, 0);
			close(r->w[i].fd);
			r->w[i].fd = -1;
		}
	}
	for (int i = 0; r->w && i < r->nw; i++) {
		int st = 0;
		if (r->w[i].pid <= 0 || waitpid(r->w[i].pid, &st, 0) < 0)
			continue;
		if ((!WIFEXITED(st) || WEXITSTATUS(st) != 0) &&
		    !r->res.error[0]) {
			snprintf(r->res.error, sizeof r->res.error,
			         "worker %d ended badly (status 0x%x)", i, st);
			r->res.ok = 0;
		}
	}
}

/* Wait for one reply of type want from worker i; *buf malloc'ed. */
static int expect(struct run *r, int i, uint32_t want, void **buf, size_t *len,
                  size_t minlen)
{
	uint32_t type;
	if (bench_ipc_recv(r->w[i].fd, &type, buf, len) != 0) {
		snprintf(r->res.error, sizeof r->res.error,
		         "worker %d went away", i);
		return -1;
	}
	if (type == BR_FAIL) {
		snprintf(r->res.error, sizeof r->res.error, "worker %d: %.*s",
		         i, (int)*len, *buf ? (char *)*buf : "");
		free(*buf);
		*buf = NULL;
		return -1;
	}
	if (type != want || *len < minlen) {
		snprintf(r->res.error, sizeof r->res.error,
		         "worker %d: unexpected reply %u", i, type);
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return 0;
}

static int send_all(struct run *r, uint32_t type, const void *p, size_t n)
{
	for (int i = 0; i < r->nw; i++)
		if (bench_ipc_send(r->w[i].fd, type, p, n, NULL, 0) != 0) {
			snprintf(r->res.error, sizeof r->res.error,
			         "worker %d went away", i);
			return -1;
		}
	return 0;
}

/* ---- the server ---- */

static int read_ready(struct run *r, char *err, size_t errlen)
{
	static char edge[1024], admin[256], ddir[1024], pid[32];
	char *text = NULL, *line, *save = NULL;
	size_t n;

	if (chat_read_file(r->c.ready_file, 65536, &text, &n) != 0) {
		snprintf(err, errlen, "cannot read --ready-file %s: %s",
		         r->c.ready_file, strerror(errno));
		return -1;
	}
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "edge_url=", 9) && !r->c.edge_url[0]) {
			chat_strlcpy(edge, line + 9, sizeof edge);
			r->c.edge_url = edge;
		} else if (!strncmp(line, "edge_urls=", 10) &&
		           (!r->c.edge_url[0] || r->c.edge_url == edge)) {
			/* chatd --edges N: all of them */
			chat_strlcpy(edge, line + 10, sizeof edge);
			r->c.edge_url = edge;
		} else if (!strncmp(line, "admin_url=", 10) &&
		           !r->c.admin_url[0]) {
			chat_strlcpy(admin, line + 10, sizeof admin);
			r->c.admin_url = admin;
		} else if (!strncmp(line, "data_dir=", 9) &&
		           !r->c.data_dir[0]) {
			chat_strlcpy(ddir, line + 9, sizeof ddir);
			r->c.data_dir = ddir;
		} else if (!strncmp(line, "pid=", 4) && !r->c.server_pid[0]) {
			chat_strlcpy(pid, line + 4, sizeof pid);
			r->c.server_pid = pid;
		}
	}
	free(text);
	return 0;
}

/* One ws://IPV4:PORT/ws (len bytes of u) into e. */
static int parse_one_edge(const char *u, size_t len, bench_edge *e, char *err,
                          size_t errlen)
{
	char url[256], *h, *colon;
	size_t hl;

	if (len >= sizeof url || len < 5 || strncmp(u, "ws://", 5) != 0) {
		snprintf(err, errlen,
		         "--edge-url must be ws://IPV4:PORT/ws[,...], got "
		         "'%.*s'",
		         (int)(len > 200 ? 200 : len), u);
		return -1;
	}
	memcpy(url, u, len);
	url[len] = '\0';
	h = url + 5;
	colon = strchr(h, ':');
	if (!colon || (hl = (size_t)(colon - h)) == 0 || hl >= sizeof e->host) {
		snprintf(err, errlen, "--edge-url: no host:port in '%s'", url);
		return -1;
	}
	memcpy(e->host, h, hl);
	e->host[hl] = '\0';
	e->port = atoi(colon + 1);
	if (e->port <= 0 || e->port > 65535) {
		snprintf(err, errlen, "--edge-url: bad port in '%s'", url);
		return -1;
	}
	if (!strcmp(e->host, "localhost"))
		chat_strlcpy(e->host, "127.0.0.1", sizeof e->host);
	return 0;
}

/* --edge-url: one URL, or a comma-separated list (the fleet's edges:
 * sessions are spread over them by index). */
static int parse_edge_urls(struct run *r, char *err, size_t errlen)
{
	const char *u = r->c.edge_url;

	r->nedges = 0;
	for (;;) {
		const char *comma = strchr(u, ',');
		size_t len = comma ? (size_t)(comma - u) : strlen(u);
		if (r->nedges == BENCH_EDGES_MAX) {
			snprintf(err, errlen, "--edge-url: at most %d edges",
			         BENCH_EDGES_MAX);
			return -1;
		}
		if (parse_one_edge(u, len, &r->edges[r->nedges], err,
		                   errlen) != 0)
			return -1;
		r->nedges++;
		if (!comma)
			return 0;
		u = comma + 1;
	}
}

/* --server-pid and --backend-pid: lists of pids. */
static int parse_pid_lists(struct run *r, char *err, size_t errlen)
{
	r->npids = bench_parse_pids(r->c.server_pid, r->pids, BENCH_PIDS_MAX);
	r->nbpids =
	    bench_parse_pids(r->c.backend_pid, r->bpids, BENCH_PIDS_MAX);
	if (r->npids < 0 || r->nbpids < 0) {
		snprintf(err, errlen,
		         "--%s: '%.200s' is not a list of at most %d pids "
		         "(PID[,PID...])",
		         r->npids < 0 ? "server-pid" : "backend-pid",
		         r->npids < 0 ? r->c.server_pid : r->c.backend_pid,
		         BENCH_PIDS_MAX);
		return -1;
	}
	return 0;
}

static int load_secret(struct run *r, char *err, size_t errlen)
{
	char path[1200], *text = NULL;
	size_t n;

	/* The fleet keeps it apart (RUN/jwt.secret, CHAT_JWT_SECRET_FILE);
	 * chatd in its data dir. */
	if (r->c.secret_file[0])
		chat_strlcpy(path, r->c.secret_file, sizeof path);
	else
		snprintf(path, sizeof path, "%s/jwt.secret", r->c.data_dir);
	if (chat_read_file(path, 4096, &text, &n) != 0) {
		snprintf(
		    err, errlen,
		    "cannot read the server's token secret %.200s: %s (the "
		    "bench runs as the server's operator)",
		    path, strerror(errno));
		return -1;
	}
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' ||
	             text[n - 1] == ' '))
		text[--n] = '\0';
	if (n < 32 || n > BENCH_SECRET_MAX) {
		snprintf(err, errlen, "%.200s: unexpected secret length %zu",
		         path, n);
		free(text);
		return -1;
	}
	memcpy(r->secret, text, n);
	r->secret_len = n;
	memset(text, 0, n);
	free(text);
	return 0;
}

/* The server's processes (and the backing servers', when given) and the
 * machine. A process that is gone zeroes its group's figures, so that no
 * CPU or memory is reported for the step. */
static void sample(struct run *r, bench_proc *p)
{
	uint64_t bt = 0;

	if (bench_proc_sample(r->pids, r->npids, p) != 0)
		bench_proc_sample(NULL, 0, p);
	if (r->nbpids && bench_proc_tree_ticks(r->bpids, r->nbpids, &bt) == 0)
		p->backend_ticks = bt;
}

/* ---- phases ---- */

static int send_plans(struct run *r)
{
	uint32_t per = (r->topo.n + (uint32_t)r->nw - 1) / (uint32_t)r->nw;
	uint32_t cper =
	    (r->topo.nchurn + (uint32_t)r->nw - 1) / (uint32_t)r->nw;

	for (int i = 0; i < r->nw; i++) {
		bench_plan *p = &r->w[i].plan;
		size_t an, bn, cn;
		uint8_t *arr;
		int rc;

		memset(p, 0, sizeof *p);
		p->topo = r->topo;
		p->worker = (uint32_t)i;
		p->first = per * (uint32_t)i;
		if (p->first > r->topo.n)
			p->first = r->topo.n;
		p->count =
		    r->topo.n - p->first < per ? r->topo.n - p->first : per;
		p->churn_first = cper * (uint32_t)i;
		if (p->churn_first > r->topo.nchurn)
			p->churn_first = r->topo.nchurn;
		p->churn_count = r->topo.nchurn - p->churn_first < cper
		                     ? r->topo.nchurn - p->churn_first
		                     : cper;
		p->body_size = (uint32_t)r->c.size;
		p->connect_conc = (uint32_t)r->c.connect_conc;
		p->connect_rate = r->c.connect_rate > 0
		                      ? (double)r->c.connect_rate *
		                            (double)p->count /
		                            (double)(r->topo.n ? r->topo.n : 1)
		                      : 0;
		p->token_ttl_s = 86400;
		p->nedges = (uint32_t)r->nedges;
		memcpy(p->edge, r->edges, sizeof p->edge);
		chat_strlcpy(p->prefix, r->c.prefix, sizeof p->prefix);
		p->secret_len = (uint32_t)r->secret_len;
		memcpy(p->secret, r->secret, r->secret_len);
		an = 8 * (size_t)p->count;
		bn = 8 * (size_t)p->churn_count;
		cn = 8 * (size_t)r->topo.nchan;
		arr = malloc(an + bn + cn + 1);
		if (!arr)
			return -1;
		memcpy(arr, r->uid + p->first, an);
		memcpy(arr + an, r->cuid + p->churn_first, bn);
		memcpy(arr + an + bn, r->chan_id, cn);
		rc = bench_ipc_send(r->w[i].fd, BC_PLAN, p, sizeof *p, arr,
		                    an + bn + cn);
		free(arr);
		if (rc != 0)
			return -1;
	}
	for (int i = 0; i < r->nw; i++) {
		void *buf;
		size_t len;
		if (expect(r, i, BR_OK, &buf, &len, 0) != 0)
			return -1;
		free(buf);
	}
	return 0;
}

static int status_all(struct run *r, bench_status *sum)
{
	memset(sum, 0, sizeof *sum);
	if (send_all(r, BC_STATUS, NULL, 0) != 0)
		return -1;
	for (int i = 0; i < r->nw; i++) {
		bench_status *s;
		size_t len;
		if (expect(r, i, BR_STATUS, (void **)&s, &len, sizeof *s) != 0)
			return -1;
		sum->sent += s->sent;
		sum->answered += s->answered;
		sum->expect += s->expect;
		sum->delivered += s->delivered;
		sum->pushes += s->pushes;
		free(s);
	}
	return 0;
}

/* After connecting, the server may still be pushing (every member's
 * presence to every other member of a channel): wait until no push has
 * arrived for a second, at least --settle and at most --settle-max
 * seconds. Returns 0 or -1. */
static int settle(struct run *r)
{
	int64_t t0 = bench_now_ns(), quiet_since = t0;
	int64_t min_end = t0 + (int64_t)r->c.settle * SEC;
	int64_t max_end = t0 + (int64_t)r->c.settle_max * SEC;
	uint64_t last = UINT64_MAX;
	bench_status st;

	for (;;) {
		int64_t now;
		if (status_all(r, &st) != 0)
			return -1;
		now = bench_now_ns();
		if (st.pushes != last) {
			last = st.pushes;
			quiet_since = now;
		}
		if (now >= min_end && now - quiet_since >= SEC)
			break;
		if (now >= max_end) {
			r->res.settle_timeout = 1;
			break;
		}
		bench_sleep_until(now + 100 * 1000000LL);
	}
	r->res.settle_s = (double)(bench_now_ns() - t0) / 1e9;
	r->res.settle_pushes = st.pushes;
	if (!r->c.quiet)
		fprintf(stderr,
		        "chat-bench: settled after %.1f s (%llu pushes "
		        "such as presence received)%s\n",
		        r->res.settle_s, (unsigned long long)st.pushes,
		        r->res.settle_timeout ? " - gave up waiting" : "");
	return 0;
}

static int connect_all(struct run *r)
{
	int64_t deadline = bench_now_ns() + (int64_t)r->c.connect_timeout * SEC;
	int64_t t_first = INT64_MAX, t_last = 0;
	bench_proc after;

	if (send_all(r, BC_CONNECT, &deadline, sizeof deadline) != 0)
		return -1;
	for (int i = 0; i < r->nw; i++) {
		bench_connected *c;
		size_t len;
		if (expect(r, i, BR_CONNECTED, (void **)&c, &len, sizeof *c) !=
		    0)
			return -1;
		r->res.connected += c->ready;
		r->res.connect_failed += c->failed;
		r->res.retries += c->retries;
		if (c->t_first && c->t_first < t_first)
			t_first = c->t_first;
		if (c->t_last > t_last)
			t_last = c->t_last;
		if (c->why[0] && !r->res.connect_why[0])
			chat_strlcpy(r->res.connect_why, c->why,
			             sizeof r->res.connect_why);
		free(c);
	}
	if (t_last > t_first) {
		r->res.connect_s = (double)(t_last - t_first) / 1e9;
		r->res.connect_per_s = r->res.connected / r->res.connect_s;
	}
	if (settle(r) != 0)
		return -1;
	sample(r, &after);
	r->res.rss_conn_kib = after.rss_kib;
	r->res.hwm_kib = after.hwm_kib;
	if (r->res.connected) {
		double n = r->res.connected;
		r->res.rss_kib_per_conn =
		    ((double)after.rss_kib - (double)r->base.rss_kib) / n;
		r->res.tcp_kib_per_conn = ((double)after.tcp_mem_pages -
		                           (double)r->base.tcp_mem_pages) *
		                          4.0 / n;
		r->res.slab_kib_per_conn =
		    ((double)after.slab_kib - (double)r->base.slab_kib) / n;
	}
	if (!r->c.quiet)
		fprintf(stderr,
		        "chat-bench: %u sessions up in %.2f s (%u failed); "
		        "server RSS %llu -> %llu KiB\n",
		        r->res.connected, r->res.connect_s,
		        r->res.connect_failed,
		        (unsigned long long)r->base.rss_kib,
		        (unsigned long long)after.rss_kib);
	if (r->res.connect_failed && r->topo.scenario != 'A') {
		snprintf(r->res.error, sizeof r->res.error,
		         "%u of %u sessions could not connect: %s",
		         r->res.connect_failed, r->topo.n, r->res.connect_why);
		return -1;
	}
	return 0;
}

static int cmp_done(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* D: merge the per-message receipts of every worker by seq. */
static void merge_done(struct run *r, bench_step *st, bench_done **parts,
                       uint32_t *nparts)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	int64_t *lat;
	uint64_t *cnt, n, k = 0;

	for (int i = 0; i < r->nw; i++)
		for (uint32_t j = 0; j < nparts[i]; j++) {
			if (!parts[i][j].nrecv)
				continue;
			if (parts[i][j].seq < lo)
				lo = parts[i][j].seq;
			if (parts[i][j].seq > hi)
				hi = parts[i][j].seq;
		}
	if (lo > hi)
		return;
	n = hi - lo + 1;
	lat = calloc(n, sizeof *lat);
	cnt = calloc(n, sizeof *cnt);
	if (!lat || !cnt)
		goto out;
	for (int i = 0; i < r->nw; i++)
		for (uint32_t j = 0; j < nparts[i]; j++) {
			const bench_done *d = &parts[i][j];
			if (!d->nrecv)
				continue;
			if (d->maxlat > lat[d->seq - lo])
				lat[d->seq - lo] = d->maxlat;
			cnt[d->seq - lo] += d->nrecv;
		}
	for (uint64_t i = 0; i < n; i++) {
		if (!cnt[i])
			continue;
		st->d_msgs++;
		if (cnt[i] < r->topo.n) {
			st->d_incomplete++;
			continue;
		}
		lat[k++] = lat[i];
	}
	if (k) {
		qsort(lat, k, sizeof *lat, cmp_done);
		st->d_all_p50 = (double)lat[(k - 1) / 2] / 1e6;
		st->d_all_p99 =
		    (double)lat[(size_t)ceil(0.99 * (double)k) - 1] / 1e6;
		st->d_all_max = (double)lat[k - 1] / 1e6;
	}
out:
	free(lat);
	free(cnt);
}

/* Collect the reports and the loss of the step into st. */
static int collect(struct run *r, bench_step *st, double window_s)
{
	uint32_t nchan = r->topo.nchan;
	bench_hist *h = malloc(sizeof *h);
	bench_hist *sg = malloc(3 * sizeof *sg);
	bench_done **parts = calloc((size_t)r->nw, sizeof *parts);
	uint32_t *nparts = calloc((size_t)r->nw, sizeof *nparts);
	uint64_t cpu_ns = 0, missing = 0;
	int rc = -1;

	if (!h || !sg || !parts || !nparts)
		goto out;
	bench_hist_init(h);
	for (int k = 0; k < 3; k++)
		bench_hist_init(&sg[k]);
	memset(r->acked, 0, 8 * (size_t)nchan);
	memset(r->maxseq, 0, 8 * (size_t)nchan);
	if (send_all(r, BC_REPORT, NULL, 0) != 0)
		goto out;
	for (int i = 0; i < r->nw; i++) {
		bench_wreport *w;
		size_t len, need;
		const uint64_t *a, *m;
		if (expect(r, i, BR_REPORT, (void **)&w, &len, sizeof *w) != 0)
			goto out;
		need = sizeof *w + 16 * (size_t)nchan +
		       (size_t)w->ndone * sizeof(bench_done);
		if (len != need) {
			snprintf(r->res.error, sizeof r->res.error,
			         "worker %d: report of %zu bytes, %zu expected",
			         i, len, need);
			free(w);
			goto out;
		}
		a = (const uint64_t *)(w + 1);
		m = a + nchan;
		for (uint32_t c = 0; c < nchan; c++) {
			r->acked[c] += a[c];
			if (m[c] > r->maxseq[c])
				r->maxseq[c] = m[c];
		}
		if (w->ndone) {
			parts[i] =
			    malloc((size_t)w->ndone * sizeof(bench_done));
			if (parts[i]) {
				memcpy(parts[i], m + nchan,
				       (size_t)w->ndone * sizeof(bench_done));
				nparts[i] = w->ndone;
			}
		}
		bench_hist_merge(h, &w->hist);
		for (int k = 0; k < 3; k++)
			bench_hist_merge(&sg[k], &w->stage[k]);
		st->sent += w->sent_win;
		st->delivered += w->deliv_win;
		st->errors += w->errors_step;
		st->rate_limited += w->rate_limited_step;
		st->not_ready += w->not_ready_step;
		st->unexpected_closes += w->unexpected_closes;
		if (w->first_close[0] && !st->first_close[0])
			memcpy(st->first_close, w->first_close,
			       sizeof st->first_close);
		st->gaps += w->gaps;
		st->dups += w->dup;
		st->other_pushes += w->other_pushes;
		st->held += w->held;
		st->churn_connects_per_s += (double)w->churn_connects;
		st->churn_disconnects_per_s += (double)w->churn_disconnects;
		st->churn_failed += w->churn_failed;
		st->churn_busy += w->churn_busy;
		if ((double)w->send_lag_max_ns / 1e6 > st->send_lag_max_ms)
			st->send_lag_max_ms = (double)w->send_lag_max_ns / 1e6;
		cpu_ns += w->cpu_win_ns;
		free(w);
	}
	{
		uint8_t *lb = malloc(16 * (size_t)nchan + 1);
		if (!lb)
			goto out;
		memcpy(lb, r->acked, 8 * (size_t)nchan);
		memcpy(lb + 8 * (size_t)nchan, r->maxseq, 8 * (size_t)nchan);
		rc = send_all(r, BC_LOSS, lb, 16 * (size_t)nchan);
		free(lb);
		if (rc != 0)
			goto out;
		rc = -1;
	}
	for (int i = 0; i < r->nw; i++) {
		bench_lossrep *l;
		size_t len;
		if (expect(r, i, BR_LOSS, (void **)&l, &len, sizeof *l) != 0)
			goto out;
		missing += l->missing;
		free(l);
	}
	st->loss = missing;
	st->sent_per_s = (double)st->sent / window_s;
	st->delivered_per_s = (double)st->delivered / window_s;
	st->lat_count = h->count;
	st->p50 = (double)bench_hist_pct(h, 50) / 1e6;
	st->p90 = (double)bench_hist_pct(h, 90) / 1e6;
	st->p99 = (double)bench_hist_pct(h, 99) / 1e6;
	st->p999 = (double)bench_hist_pct(h, 99.9) / 1e6;
	st->max = (double)h->max / 1e6;
	st->mean = h->count ? h->sum / (double)h->count / 1e6 : 0;
	for (int k = 0; k < 3; k++) {
		st->st_p50[k] = (double)bench_hist_pct(&sg[k], 50) / 1e6;
		st->st_p99[k] = (double)bench_hist_pct(&sg[k], 99) / 1e6;
		st->st_mean[k] =
		    sg[k].count ? sg[k].sum / (double)sg[k].count / 1e6 : 0;
	}
	st->bench_cpu_us =
	    st->delivered ? (double)cpu_ns / 1e3 / (double)st->delivered : 0;
	st->bench_cpu_pct = (double)cpu_ns / 1e9 / window_s * 100;
	st->churn_connects_per_s /= (double)r->c.duration;
	st->churn_disconnects_per_s /= (double)r->c.duration;
	if (r->topo.scenario == 'D')
		merge_done(r, st, parts, nparts);
	rc = 0;
out:
	for (int i = 0; parts && i < r->nw; i++)
		free(parts[i]);
	free(parts);
	free(nparts);
	free(h);
	free(sg);
	return rc;
}

static int run_step(struct run *r, double rate, bench_step *st)
{
	int64_t t0 = bench_now_ns() + 300 * 1000000LL;
	int64_t dur = (int64_t)r->c.duration * SEC;
	int64_t warm = (int64_t)r->c.warmup * SEC;
	double window_s = (double)(dur - warm) / 1e9;
	bench_proc s1, s2;
	bench_status ss;
	int64_t drain_end, t_end;

	memset(st, 0, sizeof *st);
	st->rate = rate;
	for (int i = 0; i < r->nw; i++) {
		bench_run ru;
		const bench_plan *p = &r->w[i].plan;
		memset(&ru, 0, sizeof ru);
		ru.t0_ns = t0;
		ru.dur_ns = dur;
		ru.warmup_ns = warm;
		ru.rate = rate * (double)p->count / (double)r->topo.n;
		ru.churn_rate = r->topo.nchurn ? (double)r->c.churn_rate *
		                                     (double)p->churn_count /
		                                     (double)r->topo.nchurn
		                               : 0;
		if (bench_ipc_send(r->w[i].fd, BC_RUN, &ru, sizeof ru, NULL,
		                   0) != 0)
			return -1;
	}
	for (int i = 0; i < r->nw; i++) {
		void *buf;
		size_t len;
		if (expect(r, i, BR_OK, &buf, &len, 0) != 0)
			return -1;
		free(buf);
	}
	bench_sleep_until(t0 + warm);
	sample(r, &s1);
	bench_sleep_until(t0 + dur);
	sample(r, &s2);
	/* Drain: every send answered and every acked message delivered to
	 * every stable member, or the drain time is up. */
	t_end = bench_now_ns();
	drain_end = t_end + (int64_t)r->c.drain * SEC;
	for (;;) {
		if (status_all(r, &ss) != 0)
			return -1;
		if (ss.answered >= ss.sent && ss.delivered >= ss.expect)
			break;
		if (bench_now_ns() > drain_end)
			break;
		bench_sleep_until(bench_now_ns() + 20 * 1000000LL);
	}
	st->drain_s = (double)(bench_now_ns() - t_end) / 1e9;
	st->unanswered = ss.sent - ss.answered;
	if (collect(r, st, window_s) != 0)
		return -1;
	if (st->delivered && r->nbpids && s1.backend_ticks &&
	    s2.backend_ticks >= s1.backend_ticks) {
		double b_s = (double)(s2.backend_ticks - s1.backend_ticks) /
		             (double)r->hz;
		st->backend_cpu_us = b_s * 1e6 / (double)st->delivered;
		st->backend_cpu_pct = b_s / window_s * 100;
	}
	if (st->delivered && s2.cpu_ticks >= s1.cpu_ticks) {
		double cpu_s =
		    (double)(s2.cpu_ticks - s1.cpu_ticks) / (double)r->hz;
		st->server_cpu_us = cpu_s * 1e6 / (double)st->delivered;
		st->server_cpu_pct = cpu_s / window_s * 100;
		/* The backing servers are part of the system under test,
		 * not other load. */
		if (s2.sys_busy >= s1.sys_busy)
			st->other_cpu_pct =
			    (double)(s2.sys_busy - s1.sys_busy) /
			        (double)r->hz / window_s * 100 -
			    st->server_cpu_pct - st->backend_cpu_pct -
			    st->bench_cpu_pct;
	}
	st->rss_kib = s2.rss_kib;
	if (st->held)
		st->rss_kib_per_conn =
		    ((double)s2.rss_kib - (double)r->base.rss_kib) /
		    (double)st->held;
	st->ok = st->loss == 0 && st->errors == 0 && st->unanswered == 0 &&
	         st->unexpected_closes == 0 && st->not_ready == 0 &&
	         st->lat_count > 0 && st->p99 <= r->c.p99_limit_ms &&
	         (r->topo.scenario != 'D' || st->d_incomplete == 0);
	return 0;
}

/* Why a step did not hold, in words, into out. */
static void explain(const struct run *r, const bench_step *s, char *out,
                    size_t len)
{
	if (s->unexpected_closes)
		snprintf(out, len,
		         "%llu sessions were closed by the server (first: %s)",
		         (unsigned long long)s->unexpected_closes,
		         s->first_close);
	else if (s->loss)
		snprintf(out, len, "%llu deliveries lost",
		         (unsigned long long)s->loss);
	else if (s->errors || s->unanswered)
		snprintf(out, len, "%llu error replies, %llu sends unanswered",
		         (unsigned long long)s->errors,
		         (unsigned long long)s->unanswered);
	else if (s->not_ready)
		snprintf(out, len, "%llu sends found their session down",
		         (unsigned long long)s->not_ready);
	else if (!s->lat_count)
		snprintf(out, len, "no message was delivered in the window");
	else if (r->topo.scenario == 'D' && s->d_incomplete)
		snprintf(out, len, "%llu messages did not reach every member",
		         (unsigned long long)s->d_incomplete);
	else if (s->p99 > r->c.p99_limit_ms)
		snprintf(out, len, "p99 %.1f ms is over the %d ms limit",
		         s->p99, r->c.p99_limit_ms);
}

static int run_steps(struct run *r)
{
	double rate = r->c.rate, factor = 1.5;
	int retries = 0;
	char *end;

	if (r->c.ramp_factor[0]) {
		factor = strtod(r->c.ramp_factor, &end);
		if (*end || !(factor > 1.0 && factor <= 10.0)) {
			snprintf(
			    r->res.error, sizeof r->res.error,
			    "--ramp-factor: '%s' is not a number in (1, 10]",
			    r->c.ramp_factor);
			return -1;
		}
	}
	r->res.best = -1;
	for (;;) {
		bench_step *st = &r->res.steps[r->res.nsteps];
		if (!r->c.quiet)
			fprintf(stderr,
			        "chat-bench: step %d: %.0f sends/s for "
			        "%d s\n",
			        r->res.nsteps + 1, rate, r->c.duration);
		if (run_step(r, rate, st) != 0)
			return -1;
		if (!r->c.quiet)
			bench_report_step(stderr, &r->res, st);
		/* On a shared machine another process may have taken the
		 * CPU: a step that failed meanwhile runs again. */
		if (!st->ok && st->other_cpu_pct > r->c.max_other_pct &&
		    retries < r->c.noise_retries) {
			retries++;
			r->res.noise_retries++;
			if (!r->c.quiet)
				fprintf(stderr,
				        "chat-bench: other processes used "
				        "%.0f %% of a core meanwhile; running "
				        "the step again\n",
				        st->other_cpu_pct);
			continue;
		}
		retries = 0;
		r->res.nsteps++;
		if (st->ok)
			r->res.best = r->res.nsteps - 1;
		if (!r->c.ramp || !st->ok || r->res.nsteps == BENCH_MAX_STEPS)
			break;
		rate *= factor;
		if (r->c.ramp_max && rate > r->c.ramp_max)
			break;
	}
	return 0;
}

/* ---- defaults and checks ---- */

static int scenario_defaults(struct run *r, char *err, size_t errlen)
{
	struct cfg *c = &r->c;
	int s = r->topo.scenario;

	if (!c->conns)
		c->conns = s == 'D' ? 10000 : s == 'A' ? 10000 : 1000;
	if (!c->rate)
		c->rate = s == 'B' ? 1000 : s == 'D' ? 10 : 2000;
	if (!c->churn_conns && s == 'E')
		c->churn_conns = c->conns / 10 ? c->conns / 10 : 1;
	if (c->warmup >= c->duration) {
		snprintf(
		    err, errlen,
		    "--warmup (%d s) must be shorter than --duration (%d s)",
		    c->warmup, c->duration);
		return -1;
	}
	if (c->ramp && (s == 'A' || s == 'E')) {
		snprintf(err, errlen, "--ramp is for scenarios B, C and D");
		return -1;
	}
	return 0;
}

/* --check-json FILE: whether the last line of FILE is one valid JSON
 * object; prints its "ok" and "loss" (for the smoke test). */
static int check_json(const char *path)
{
	char *text = NULL, *last;
	size_t n;
	int64_t loss = -1;

	if (chat_read_file(path, 64u << 20, &text, &n) != 0) {
		fprintf(stderr, "chat-bench: cannot read %s\n", path);
		return 2;
	}
	while (n && text[n - 1] == '\n')
		text[--n] = '\0';
	last = strrchr(text, '\n');
	last = last ? last + 1 : text;
	if (!chat_json_valid(last, strlen(last)) || last[0] != '{') {
		fprintf(stderr,
		        "chat-bench: the last line is not a JSON "
		        "object: %.200s\n",
		        last);
		free(text);
		return 1;
	}
	if (chat_json_get_int(last, strlen(last), "loss", &loss) != 0) {
		fprintf(stderr, "chat-bench: the JSON line has no integer "
		                "\"loss\"\n");
		free(text);
		return 1;
	}
	printf("loss=%lld ok=%s\n", (long long)loss,
	       strstr(last, "\"ok\":true") ? "true" : "false");
	free(text);
	return 0;
}

int main(int argc, char **argv)
{
	static struct run R;
	struct run *r = &R;
	struct cfg *c = &r->c;
	char err[512], prefix[BENCH_PREFIX_MAX + 1];
	const chat_opt opts[] = {
	    {"scenario", NULL, CHAT_OPT_STR, &c->scenario, "C", 0, 0,
	     "A, B, C, D, E, or F (C on the fleet)"},
	    {"ready-file", NULL, CHAT_OPT_STR, &c->ready_file, NULL, 0, 0,
	     "chatd's --ready-file (gives the urls, data dir and pid)"},
	    {"edge-url", NULL, CHAT_OPT_STR, &c->edge_url, NULL, 0, 0,
	     "ws://IPV4:PORT/ws of the edge, or a comma-separated list of "
	     "edges (session i goes to the (i mod count)-th)"},
	    {"admin-url", NULL, CHAT_OPT_STR, &c->admin_url, NULL, 0, 0,
	     "the store's admin RPC (chatd --admin-url; on the fleet a "
	     "store's RPC URL)"},
	    {"data-dir", NULL, CHAT_OPT_STR, &c->data_dir, NULL, 0, 0,
	     "chatd's data dir (the token secret is read from it)"},
	    {"secret-file", NULL, CHAT_OPT_STR, &c->secret_file, NULL, 0, 0,
	     "the token secret itself, instead of DATA_DIR/jwt.secret (the "
	     "fleet's RUN/jwt.secret)"},
	    {"server-pid", NULL, CHAT_OPT_STR, &c->server_pid, NULL, 0, 0,
	     "PID[,PID...]: chatd, or every chat service of the fleet; CPU "
	     "and RSS are summed over them (and their child processes)"},
	    {"backend-pid", NULL, CHAT_OPT_STR, &c->backend_pid, NULL, 0, 0,
	     "PID[,PID...]: the backing servers (Kafka, PostgreSQL, Redis, "
	     "ZooKeeper) and their child processes; their CPU is reported "
	     "apart"},
	    {"conns", NULL, CHAT_OPT_INT, &c->conns, NULL, 0, 10000000,
	     "sessions (default A 10000, B/C/E 1000, D 10000)"},
	    {"rate", NULL, CHAT_OPT_INT, &c->rate, NULL, 0, 100000000,
	     "sends per second in total (default B 1000, C/E 2000, D 10); "
	     "the first step of a ramp"},
	    {"duration", NULL, CHAT_OPT_INT, &c->duration, "10", 1, 86400,
	     "seconds per step (A: seconds to hold)"},
	    {"warmup", NULL, CHAT_OPT_INT, &c->warmup, "2", 0, 3600,
	     "seconds of each step not measured"},
	    {"drain", NULL, CHAT_OPT_INT, &c->drain, "10", 1, 3600,
	     "seconds to wait after a step for every delivery"},
	    {"size", NULL, CHAT_OPT_INT, &c->size, "64", 24, 4000,
	     "message body bytes"},
	    {"ramp", NULL, CHAT_OPT_BOOL, &c->ramp, "0", 0, 0,
	     "raise the rate step by step (B, C, D)"},
	    {"ramp-factor", NULL, CHAT_OPT_STR, &c->ramp_factor, "1.5", 0, 0,
	     "rate multiplier between steps"},
	    {"ramp-max", NULL, CHAT_OPT_INT, &c->ramp_max, NULL, 0, 100000000,
	     "stop the ramp above this rate (0: no limit)"},
	    {"p99-limit-ms", NULL, CHAT_OPT_INT, &c->p99_limit_ms, "50", 1,
	     100000, "a step holds while p99 stays at or below this"},
	    {"max-other-pct", NULL, CHAT_OPT_INT, &c->max_other_pct, "30", 0,
	     10000,
	     "a failed step runs again when other processes used more than "
	     "this % of a core meanwhile (a shared machine)"},
	    {"noise-retries", NULL, CHAT_OPT_INT, &c->noise_retries, "2", 0,
	     100, "how many times a step may run again for that"},
	    {"workers", NULL, CHAT_OPT_INT, &c->workers, NULL, 0, 256,
	     "worker processes (0: as many as the fd limit needs)"},
	    {"per-worker", NULL, CHAT_OPT_INT, &c->per_worker, NULL, 0,
	     10000000, "sessions per worker at most (0: fd limit - 100)"},
	    {"connect-concurrency", NULL, CHAT_OPT_INT, &c->connect_conc, "256",
	     1, 100000, "handshakes in flight per worker"},
	    {"connect-rate", NULL, CHAT_OPT_INT, &c->connect_rate, NULL, 0,
	     10000000,
	     "new sessions per second in total (0: as fast as "
	     "--connect-concurrency allows)"},
	    {"connect-timeout", NULL, CHAT_OPT_INT, &c->connect_timeout, "300",
	     1, 86400, "seconds for every session to come up"},
	    {"settle", NULL, CHAT_OPT_INT, &c->settle, "2", 0, 600,
	     "seconds at least after connecting before memory is measured "
	     "and sending starts"},
	    {"settle-max", NULL, CHAT_OPT_INT, &c->settle_max, "900", 1, 86400,
	     "seconds at most to wait for the pushes that follow "
	     "connecting (presence) to stop"},
	    {"churn-rate", NULL, CHAT_OPT_INT, &c->churn_rate, "100", 0,
	     1000000, "E: reconnects per second"},
	    {"churn-conns", NULL, CHAT_OPT_INT, &c->churn_conns, NULL, 0,
	     10000000, "E: churning sessions (default conns/10)"},
	    {"prefix", NULL, CHAT_OPT_STR, &c->prefix, NULL, 0, 0,
	     "user name prefix (default: random)"},
	    {"quiet", NULL, CHAT_OPT_BOOL, &c->quiet, "0", 0, 0,
	     "no progress on stderr"},
	    {"check-json", NULL, CHAT_OPT_STR, &c->check_json, NULL, 0, 0,
	     "only check that FILE ends with a valid JSON result line"},
	    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
	};
	bench_setup setup;
	chat_rpc_client *rpc = NULL;
	long nofile;
	int64_t t;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	rc = chat_opts_parse(opts, argc, argv, summary, err, sizeof err);
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "chat-bench: %s\n", err);
		return rc < 0 ? 2 : 0;
	}
	if (c->check_json[0])
		return check_json(c->check_json);
	chat_log_set_level("warn");
	signal(SIGPIPE, SIG_IGN);
	if (strlen(c->scenario) != 1 ||
	    !strchr("ABCDEF", c->scenario[0] & ~0x20)) {
		fprintf(stderr,
		        "chat-bench: --scenario: '%s' is not one of "
		        "A, B, C, D, E, F\n",
		        c->scenario);
		return 2;
	}
	r->topo.scenario = c->scenario[0] & ~0x20;
	if (r->topo.scenario == 'F') {
		/* F is C's load and checks; only the server differs. A
		 * chatd ready file would make it C under another name. */
		if (c->ready_file[0]) {
			fprintf(stderr,
			        "chat-bench: scenario F (C on the fleet: real "
			        "Kafka with acks=all and idempotence, "
			        "PostgreSQL) needs the fleet, not a chatd "
			        "--ready-file: give --edge-url (every edge), "
			        "--admin-url (a store's RPC), --secret-file "
			        "and --server-pid, or run scripts/bench.sh "
			        "F\n");
			return 2;
		}
		r->fleet = 1;
		r->topo.scenario = 'C';
	}
	if (scenario_defaults(r, err, sizeof err) != 0 ||
	    (c->ready_file[0] && read_ready(r, err, sizeof err) != 0) ||
	    bench_topo_init(&r->topo, r->topo.scenario, (uint32_t)c->conns,
	                    (uint32_t)c->churn_conns, err, sizeof err) != 0) {
		fprintf(stderr, "chat-bench: %s\n", err);
		return 2;
	}
	if (!c->edge_url[0] || !c->admin_url[0] ||
	    (!c->data_dir[0] && !c->secret_file[0])) {
		fprintf(stderr,
		        "chat-bench: give --ready-file, or --edge-url, "
		        "--admin-url and --data-dir (or --secret-file)\n");
		return 2;
	}
	if (parse_edge_urls(r, err, sizeof err) != 0 ||
	    parse_pid_lists(r, err, sizeof err) != 0) {
		fprintf(stderr, "chat-bench: %s\n", err);
		return 2;
	}
	if (!c->prefix[0]) {
		/* b + 7 random letters: unique per run on a shared server. */
		uint64_t x =
		    (uint64_t)bench_now_ns() ^ ((uint64_t)getpid() << 20);
		prefix[0] = 'b';
		for (int i = 1; i < 8; i++) {
			prefix[i] = (char)('a' + x % 26);
			x /= 26;
		}
		prefix[8] = '\0';
		c->prefix = prefix;
	} else if (strlen(c->prefix) > BENCH_PREFIX_MAX) {
		fprintf(stderr, "chat-bench: --prefix: at most %d bytes\n",
		        BENCH_PREFIX_MAX);
		return 2;
	}
	r->hz = bench_proc_hz();
	nofile = bench_raise_nofile();
	if (!c->per_worker)
		c->per_worker =
		    nofile > FD_MARGIN * 2 ? (int)(nofile - FD_MARGIN) : 100;
	r->nw = c->workers ? c->workers
	                   : (int)((r->topo.n + r->topo.nchurn +
	                            (uint32_t)c->per_worker - 1) /
	                           (uint32_t)c->per_worker);
	if (r->nw < 1)
		r->nw = 1;
	if ((r->topo.n + r->topo.nchurn + (uint32_t)r->nw - 1) /
	            (uint32_t)r->nw +
	        FD_MARGIN >
	    (uint64_t)nofile) {
		fprintf(stderr,
		        "chat-bench: %d worker(s) cannot hold %u sessions with "
		        "an open-files limit of %ld per process; use more "
		        "--workers\n",
		        r->nw, r->topo.n + r->topo.nchurn, nofile);
		return 2;
	}
	memset(&r->res, 0, sizeof r->res);
	r->res.scenario = r->fleet ? 'F' : (char)r->topo.scenario;
	r->res.edges = (uint32_t)r->nedges;
	r->res.server_pids = (uint32_t)r->npids;
	r->res.backend_pids = (uint32_t)r->nbpids;
	r->res.conns = r->topo.n;
	r->res.churn_conns = r->topo.nchurn;
	r->res.channels = r->topo.nchan;
	r->res.workers = (uint32_t)r->nw;
	r->res.body_size = (uint32_t)c->size;
	r->res.duration_s = c->duration;
	r->res.warmup_s = c->warmup;
	r->res.ramp = c->ramp;
	r->res.p99_limit_ms = c->p99_limit_ms;
	r->res.best = -1;

	/* Fork before any thread exists (nng's, the setup pool's). */
	if (spawn_workers(r) != 0) {
		snprintf(r->res.error, sizeof r->res.error,
		         "cannot start workers: %s", strerror(errno));
		goto done;
	}
	if (chat_auth_init() != 0 || load_secret(r, err, sizeof err) != 0) {
		snprintf(r->res.error, sizeof r->res.error, "%s", err);
		goto done;
	}
	r->uid = calloc((size_t)r->topo.n + 1, 8);
	r->cuid = calloc((size_t)r->topo.nchurn + 1, 8);
	r->chan_id = calloc((size_t)r->topo.nchan + 1, 8);
	r->acked = calloc((size_t)r->topo.nchan + 1, 8);
	r->maxseq = calloc((size_t)r->topo.nchan + 1, 8);
	if (!r->uid || !r->cuid || !r->chan_id || !r->acked || !r->maxseq) {
		snprintf(r->res.error, sizeof r->res.error, "out of memory");
		goto done;
	}
	rpc = chat_rpc_client_new(c->admin_url, err, sizeof err);
	if (!rpc) {
		snprintf(r->res.error, sizeof r->res.error,
		         "--admin-url: %.400s", err);
		goto done;
	}
	if (!c->quiet)
		fprintf(stderr,
		        "chat-bench: scenario %c: creating %u users and "
		        "%u channels (prefix %s)\n",
		        r->res.scenario, r->topo.n + r->topo.nchurn,
		        r->topo.nchan, c->prefix);
	memset(&setup, 0, sizeof setup);
	setup.rpc = rpc;
	setup.topo = &r->topo;
	setup.prefix = c->prefix;
	setup.uid = r->uid;
	setup.cuid = r->cuid;
	setup.chan_id = r->chan_id;
	t = bench_now_ns();
	if (bench_setup_run(&setup, err, sizeof err) != 0) {
		snprintf(r->res.error, sizeof r->res.error, "setup: %.400s",
		         err);
		goto done;
	}
	r->res.setup_s = (double)(bench_now_ns() - t) / 1e9;
	chat_rpc_client_free(rpc);
	rpc = NULL;
	if (send_plans(r) != 0)
		goto done;
	sample(r, &r->base);
	r->res.rss_base_kib = r->base.rss_kib;
	if (!c->quiet)
		fprintf(stderr,
		        "chat-bench: setup took %.1f s; connecting %u "
		        "sessions with %d worker(s)\n",
		        r->res.setup_s, r->topo.n, r->nw);
	if (connect_all(r) != 0)
		goto done;
	if (r->topo.scenario == 'A') {
		bench_step st;
		bench_proc p;
		bench_sleep_until(bench_now_ns() + (int64_t)c->duration * SEC);
		sample(r, &p);
		memset(&st, 0, sizeof st);
		if (collect(r, &st, 1.0) != 0)
			goto done;
		r->res.held_end = st.held;
		if (p.hwm_kib > r->res.hwm_kib)
			r->res.hwm_kib = p.hwm_kib;
		r->res.ok =
		    r->res.connected > 0 && r->res.held_end == r->res.connected;
		if (!r->res.ok && !r->res.error[0])
			snprintf(
			    r->res.error, sizeof r->res.error,
			    "%llu of %u sessions still open after the hold",
			    (unsigned long long)r->res.held_end,
			    r->res.connected);
		goto done;
	}
	if (run_steps(r) != 0)
		goto done;
	r->res.ok = r->res.ramp ? r->res.best >= 0 : r->res.steps[0].ok;
	if (!r->res.ok)
		explain(r, &r->res.steps[r->res.nsteps - 1], r->res.error,
		        sizeof r->res.error);
	else if (r->res.ramp)
		explain(r, &r->res.steps[r->res.nsteps - 1], r->res.ramp_stop,
		        sizeof r->res.ramp_stop);
done:
	chat_rpc_client_free(rpc);
	stop_workers(r);
	bench_report_table(stdout, &r->res);
	bench_report_json(stdout, &r->res);
	free(r->uid);
	free(r->cuid);
	free(r->chan_id);
	free(r->acked);
	free(r->maxseq);
	free(r->w);
	return r->res.ok ? 0 : 1;
}
