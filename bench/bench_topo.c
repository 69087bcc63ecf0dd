/* Who is in which channel, per scenario. A pure function of the
 * connection index, so the coordinator (which creates the channels) and
 * the workers (which send and check) agree without exchanging lists.
 *
 * B: pairs (2j, 2j+1) share DM channel j.
 * C, E: groups of 10, each connection in two channels (Centrifugo's
 *   setup): channel i/10 (ten neighbours), and, within each block of 100,
 *   channel n/10 + (i/100)*10 + i%10 (ten connections with the same last
 *   digit), so a connection's two channels share no one but itself.
 *   E adds churning connections, each a member of two of those channels
 *   beyond the ten stable members.
 * D: one channel holding every connection. */
#include <stdio.h>

#include "bench.h"

int bench_topo_init(bench_topo *t, int scenario, uint32_t n, uint32_t nchurn,
                    char *err, size_t errlen)
{
	t->scenario = scenario;
	t->n = n;
	t->nchurn = scenario == 'E' ? nchurn : 0;
	t->nchan = 0;
	if (n == 0) {
		snprintf(err, errlen, "--conns must be at least 1");
		return -1;
	}
	switch (scenario) {
	case 'A':
		return 0;
	case 'B':
		if (n % 2) {
			snprintf(
			    err, errlen,
			    "scenario B pairs connections: --conns must be "
			    "even (got %u)",
			    n);
			return -1;
		}
		t->nchan = n / 2;
		return 0;
	case 'C':
	case 'E':
		if (n % 100) {
			snprintf(
			    err, errlen,
			    "scenario %c builds groups of 10 in blocks of "
			    "100: --conns must be a multiple of 100 (got %u)",
			    scenario, n);
			return -1;
		}
		t->nchan = n / 5;
		return 0;
	case 'D':
		t->nchan = 1;
		return 0;
	default:
		snprintf(err, errlen, "unknown scenario '%c'", scenario);
		return -1;
	}
}

int bench_topo_chans(const bench_topo *t, uint32_t i, uint32_t ch[2])
{
	switch (t->scenario) {
	case 'B':
		ch[0] = i / 2;
		return 1;
	case 'C':
	case 'E':
		ch[0] = i / 10;
		ch[1] = t->n / 10 + (i / 100) * 10 + i % 10;
		return 2;
	case 'D':
		ch[0] = 0;
		return 1;
	default:
		return 0;
	}
}

int bench_topo_churn_chans(const bench_topo *t, uint32_t k, uint32_t ch[2])
{
	uint32_t half = t->n / 10;

	if (t->scenario != 'E' || half == 0)
		return 0;
	ch[0] = k % half;
	ch[1] = half + (uint32_t)(((uint64_t)k * 7 + 3) % half);
	return 2;
}

uint32_t bench_topo_members(const bench_topo *t, uint32_t c)
{
	switch (t->scenario) {
	case 'B':
		return 2;
	case 'C':
	case 'E':
		return 10;
	case 'D':
		return t->n;
	default:
		return 0;
	}
}

void bench_user_name(char out[BENCH_NAME_MAX + 1], const char *prefix,
                     int churn, uint32_t i)
{
	snprintf(out, BENCH_NAME_MAX + 1, "%s_%c%u", prefix, churn ? 'c' : 's',
	         i);
}
