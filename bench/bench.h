/* chat-bench: the load generator's private header. One coordinator
 * process creates the users and channels over the store's admin RPC and
 * forks worker processes; each worker holds up to ~19k WebSocket sessions
 * in one epoll loop (the open-files limit is per process) and answers the
 * coordinator's commands over a socketpair. See docs/BENCHMARKS.md. */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "bench_hist.h"

#define BENCH_NAME_MAX   32
#define BENCH_PREFIX_MAX 12
#define BENCH_SECRET_MAX 512
#define BENCH_HOST_MAX   64
#define BENCH_EDGES_MAX  16 /* --edge-url list (the fleet has 3 by default) */
#define BENCH_PIDS_MAX   64 /* --server-pid and --backend-pid lists */

/* ---- topology: who is in which channel ---- */

typedef struct bench_topo {
	int scenario;    /* 'A'..'E' (F runs C's topology) */
	uint32_t n;      /* stable connections */
	uint32_t nchurn; /* E: churning connections */
	uint32_t nchan;  /* channels */
} bench_topo;

/* Fill t->nchan for scenario/n/nchurn. Returns 0, or -1 with a reason
 * when n does not fit the scenario (B: even; C/E: a multiple of 100). */
int bench_topo_init(bench_topo *t, int scenario, uint32_t n, uint32_t nchurn,
                    char *err, size_t errlen);

/* The channels (global indexes) of stable connection i: returns how many
 * (0..2) and fills ch. */
int bench_topo_chans(const bench_topo *t, uint32_t i, uint32_t ch[2]);

/* The channels of churning connection k (E). */
int bench_topo_churn_chans(const bench_topo *t, uint32_t k, uint32_t ch[2]);

/* Stable members of channel c (the recipients of each of its messages). */
uint32_t bench_topo_members(const bench_topo *t, uint32_t c);

/* User names: PREFIX_s<i> for stable, PREFIX_c<k> for churning ones. */
void bench_user_name(char out[BENCH_NAME_MAX + 1], const char *prefix,
                     int churn, uint32_t i);

/* ---- coordinator <-> worker messages ---- */

enum bench_cmd {
	BC_PLAN = 1, /* bench_plan + arrays           -> BR_OK */
	BC_CONNECT,  /* int64 deadline_ns             -> BR_CONNECTED */
	BC_RUN,      /* bench_run                     -> BR_OK */
	BC_STATUS,   /*                               -> BR_STATUS */
	BC_REPORT,   /*                               -> BR_REPORT + arrays */
	BC_LOSS,     /* acked[nchan], maxseq[nchan]   -> BR_LOSS */
	BC_QUIT,     /* close every session and exit */
	BR_OK = 100,
	BR_CONNECTED,
	BR_STATUS,
	BR_REPORT,
	BR_LOSS,
	BR_FAIL, /* a text reason; the worker exits */
};

/* One edge to connect to: an IPv4 literal and a port. */
typedef struct bench_edge {
	char host[BENCH_HOST_MAX];
	int32_t port;
} bench_edge;

/* The plan of one worker. Followed on the wire by: uint64 user_id[count],
 * uint64 churn_user_id[churn_count], uint64 chan_id[topo.nchan]. */
typedef struct bench_plan {
	bench_topo topo;
	uint32_t worker;
	uint32_t first, count;             /* stable connections owned */
	uint32_t churn_first, churn_count; /* churning connections owned */
	uint32_t body_size;
	uint32_t connect_conc; /* handshakes in flight */
	double connect_rate;   /* new sessions per second, 0: no cap */
	int32_t token_ttl_s;
	/* Session i (stable or churning index) goes to edge[i % nedges]:
	 * the same spread in every worker, whatever its share. */
	uint32_t nedges;
	bench_edge edge[BENCH_EDGES_MAX];
	char prefix[BENCH_PREFIX_MAX + 1];
	uint32_t secret_len;
	char secret[BENCH_SECRET_MAX];
} bench_plan;

typedef struct bench_connected {
	uint32_t ready, failed, retries;
	uint32_t http_refused;   /* upgrades answered with a non-101 */
	int64_t t_first, t_last; /* first connect started, last Welcome */
	char why[160];           /* the first failure */
} bench_connected;

typedef struct bench_run {
	uint32_t step;
	int64_t t0_ns;     /* CLOCK_MONOTONIC: the first intended send */
	int64_t dur_ns;    /* sending stops at t0 + dur */
	int64_t warmup_ns; /* measured window: [t0 + warmup, t0 + dur) */
	double rate;       /* this worker's sends per second */
	double churn_rate; /* this worker's reconnects per second (E) */
} bench_run;

typedef struct bench_status {
	uint64_t sent, answered;    /* cumulative over the run */
	uint64_t expect, delivered; /* stable deliveries: acked x members,
	                             * and received */
	uint64_t pushes;            /* other server pushes received */
} bench_status;

/* One worker's report for the last BC_RUN. Followed by uint64
 * acked[nchan] and uint64 maxseq[nchan] (cumulative), then, for D,
 * ndone entries of bench_done. */
typedef struct bench_wreport {
	uint64_t sent_win, sent_step; /* sends intended in the window/step */
	uint64_t acked_step, errors_step, rate_limited_step;
	uint64_t not_ready_step; /* due sends with the session down */
	uint64_t deliv_win;      /* stable deliveries received in the
	                          * window */
	uint64_t deliv_step;
	uint64_t dup, gaps;         /* cumulative */
	uint64_t other_pushes;      /* presence, member, ... */
	uint64_t unexpected_closes; /* stable sessions lost since the
	                             * connect phase (cumulative) */
	uint64_t churn_connects, churn_disconnects, churn_failed, churn_busy;
	uint64_t send_lag_max_ns; /* worst lateness of a send */
	uint64_t cpu_win_ns;      /* this worker's CPU in the window */
	uint64_t held;            /* stable sessions open now */
	uint32_t ndone;
	uint32_t pad;
	char first_close[160]; /* why the first one was lost */
	bench_hist hist;       /* intended send -> receipt */
	/* the same latency cut where the server stamps the message (wall
	 * clock, ms): intended send -> the edge accepted it, -> the store
	 * committed it, -> received */
	bench_hist stage[3];
} bench_wreport;

/* D: per message of the window, its intended time, the latest receipt
 * among this worker's recipients, and how many of them got it. */
typedef struct bench_done {
	uint64_t seq;
	int64_t intended;
	int64_t maxlat;
	uint64_t nrecv;
} bench_done;

typedef struct bench_lossrep {
	uint64_t missing; /* acked messages some stable member lacks */
	uint64_t members_short;
} bench_lossrep;

/* Write one message (type, len, payload in up to two parts). Blocks.
 * Returns 0 or -1. */
int bench_ipc_send(int fd, uint32_t type, const void *a, size_t alen,
                   const void *b, size_t blen);

/* Read one message; *buf is malloc'ed (NULL when empty). Blocks. Returns
 * 0, or -1 on EOF or error. */
int bench_ipc_recv(int fd, uint32_t *type, void **buf, size_t *len);

/* ---- the worker ---- */

/* The worker process body: serve commands on fd until BC_QUIT or EOF.
 * Returns the exit status. */
int bench_worker_main(int fd);

/* ---- /proc ---- */

/* The process figures are sums over a list of pids, each with every
 * process below it (PostgreSQL works in the postmaster's children). */
typedef struct bench_proc {
	uint64_t cpu_ticks; /* utime + stime, plus cutime + cstime (the
	                     * children already reaped, so the sum does not
	                     * drop when one exits) */
	uint64_t rss_kib;   /* VmRSS */
	uint64_t hwm_kib;   /* VmHWM (a sum of each process's peak) */
	uint64_t threads;
	uint64_t backend_ticks; /* the same CPU sum over --backend-pid */
	uint64_t tcp_mem_pages; /* /proc/net/sockstat TCP mem */
	uint64_t tcp_inuse;
	uint64_t slab_kib;            /* /proc/meminfo Slab */
	uint64_t sys_busy, sys_total; /* /proc/stat cpu line, ticks */
	int64_t t_ns;
} bench_proc;

/* Sample the processes pids[0..npids) and their descendants into the
 * process fields of p, and the system-wide figures (npids 0: only
 * those). Returns 0, or -1 when a listed pid is gone (the process
 * fields are then 0). */
int bench_proc_sample(const int *pids, int npids, bench_proc *p);

/* The CPU ticks of pids[0..npids) and their descendants, counted as in
 * bench_proc. Returns 0, or -1 when a listed pid is gone. */
int bench_proc_tree_ticks(const int *pids, int npids, uint64_t *ticks);

/* Parse "PID[,PID...]" into out (at most max). Returns how many, or -1
 * on a malformed list. */
int bench_parse_pids(const char *s, int *out, int max);

/* Clock ticks per second (sysconf). */
long bench_proc_hz(void);

/* CLOCK_MONOTONIC in ns. */
int64_t bench_now_ns(void);

/* Sleep until the monotonic time t (ns). */
void bench_sleep_until(int64_t t);

/* This process's user+system CPU in ns. */
uint64_t bench_self_cpu_ns(void);

/* Raise the soft open-files limit to the hard one; returns the limit. */
long bench_raise_nofile(void);

#endif
