/* A log-linear latency histogram in the style of HdrHistogram: values in
 * nanoseconds, 256 sub-buckets per power of two (the upper 128 of each
 * range linear), so a recorded value is reported within 1/128 (0.8 %) of
 * its true value. Values up to 2^40 ns (about 18 minutes) are kept apart;
 * larger ones land in the last bucket. The maximum is kept exactly.
 * Fixed size (no allocation), so it can be copied over a pipe as is. Not
 * thread-safe: one owner. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB    128 /* linear sub-buckets per power of two */
#define BENCH_HIST_MAXBIT 40
#define BENCH_HIST_N                                                           \
	((BENCH_HIST_MAXBIT - 8) * BENCH_HIST_SUB + 2 * BENCH_HIST_SUB)

typedef struct bench_hist {
	uint64_t count;
	uint64_t max;
	uint64_t min;
	double sum;
	uint64_t c[BENCH_HIST_N];
} bench_hist;

/* Empty the histogram. */
void bench_hist_init(bench_hist *h);

/* Record one value (ns). */
void bench_hist_add(bench_hist *h, uint64_t v);

/* Add every count of src into dst. */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);

/* The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding it (never below the true value), capped by the maximum.
 * 0 when empty. */
uint64_t bench_hist_pct(const bench_hist *h, double p);

/* The bucket index of v and the highest value of bucket i (tests). */
unsigned bench_hist_index(uint64_t v);
uint64_t bench_hist_upper(unsigned i);

#endif
