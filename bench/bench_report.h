/* The figures of a run and their two renderings: a table for people and
 * one JSON line for scripts. */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdio.h>

#include "bench.h"

#define BENCH_MAX_STEPS 64

/* One step at one rate (B-E), or the hold (A). */
typedef struct bench_step {
	double rate; /* sends/s asked for */
	double sent_per_s, delivered_per_s;
	uint64_t sent, delivered; /* in the measured window */
	uint64_t loss, errors, rate_limited, not_ready, unexpected_closes;
	uint64_t gaps, dups, unanswered;
	double p50, p90, p99, p999, max, mean; /* ms */
	uint64_t lat_count;
	/* stages (server stamps, ms): to the edge, to the store, to the
	 * client */
	double st_p50[3], st_p99[3], st_mean[3];
	double server_cpu_us, bench_cpu_us; /* per delivered message */
	double server_cpu_pct, bench_cpu_pct;
	/* --backend-pid (F: Kafka, PostgreSQL, Redis, ZooKeeper) */
	double backend_cpu_us, backend_cpu_pct;
	double other_cpu_pct; /* everything else on the machine */
	double rss_kib_per_conn;
	uint64_t rss_kib;
	double drain_s;
	double send_lag_max_ms;
	uint64_t held;
	/* D: time until every member had each message */
	uint64_t d_msgs, d_incomplete;
	double d_all_p50, d_all_p99, d_all_max; /* ms */
	/* E */
	double churn_connects_per_s, churn_disconnects_per_s;
	uint64_t churn_failed, churn_busy;
	uint64_t other_pushes;
	int ok;                /* p99 and loss within limits */
	char first_close[160]; /* why the first stable session was lost */
} bench_step;

typedef struct bench_result {
	char scenario;
	uint32_t conns, churn_conns, channels, workers;
	uint32_t edges;        /* --edge-url entries */
	uint32_t server_pids;  /* --server-pid entries: CPU and RSS sum */
	uint32_t backend_pids; /* --backend-pid entries (0: not measured) */
	uint32_t body_size;
	int duration_s, warmup_s;
	double setup_s;
	/* connect phase */
	uint32_t connected, connect_failed, retries;
	double connect_s, connect_per_s;
	double settle_s; /* until the pushes after connecting stopped */
	uint64_t settle_pushes;
	int settle_timeout;
	char connect_why[160];
	/* memory (A, and the baseline for every scenario) */
	uint64_t rss_base_kib, rss_conn_kib, hwm_kib;
	double rss_kib_per_conn, tcp_kib_per_conn, slab_kib_per_conn;
	uint64_t tcp_mem_pages_delta;
	uint64_t held_end;
	/* steps */
	int ramp;
	double p99_limit_ms;
	int nsteps;
	bench_step steps[BENCH_MAX_STEPS];
	int best;            /* index of the highest rate that held; -1 */
	char ramp_stop[256]; /* why the ramp stopped */
	int noise_retries;   /* steps run again for other load */
	int ok;
	char error[512];
} bench_result;

/* The human table on f. */
void bench_report_table(FILE *f, const bench_result *r);

/* One line of JSON (with the newline) on f. */
void bench_report_json(FILE *f, const bench_result *r);

/* The progress line of one step on f. */
void bench_report_step(FILE *f, const bench_result *r, const bench_step *s);

#endif
