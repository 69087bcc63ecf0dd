/* The log-linear histogram: index = the value itself below 256, else
 * shift * 128 + (v >> shift) with shift = msb - 7, so each power of two
 * above 255 is cut into 128 equal buckets. */
#include <string.h>

#include "bench_hist.h"

void bench_hist_init(bench_hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

unsigned bench_hist_index(uint64_t v)
{
	unsigned msb, shift, i;

	if (v < 2 * BENCH_HIST_SUB)
		return (unsigned)v;
	if (v >> BENCH_HIST_MAXBIT)
		return BENCH_HIST_N - 1;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - 7;
	i = shift * BENCH_HIST_SUB + (unsigned)(v >> shift);
	return i < BENCH_HIST_N ? i : BENCH_HIST_N - 1;
}

uint64_t bench_hist_upper(unsigned i)
{
	unsigned shift, sub;

	if (i < 2 * BENCH_HIST_SUB)
		return i;
	shift = i / BENCH_HIST_SUB - 1;
	sub = i - shift * BENCH_HIST_SUB;
	return (((uint64_t)sub + 1) << shift) - 1;
}

void bench_hist_add(bench_hist *h, uint64_t v)
{
	h->c[bench_hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
	if (v < h->min)
		h->min = v;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
	if (!src->count)
		return;
	for (unsigned i = 0; i < BENCH_HIST_N; i++)
		dst->c[i] += src->c[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
	if (src->min < dst->min)
		dst->min = src->min;
}

uint64_t bench_hist_pct(const bench_hist *h, double p)
{
	uint64_t want, seen = 0;

	if (!h->count)
		return 0;
	if (p >= 100.0)
		return h->max;
	if (p < 0)
		p = 0;
	/* The smallest value with at least p % of the counts at or below
	 * it. */
	want = (uint64_t)((p / 100.0) * (double)h->count + 0.999999);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < BENCH_HIST_N; i++) {
		seen += h->c[i];
		if (seen >= want) {
			uint64_t u = bench_hist_upper(i);
			return u < h->max ? u : h->max;
		}
	}
	return h->max;
}
