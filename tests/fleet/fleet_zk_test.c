/* Stop ZooKeeper for a while under traffic (run under run_with_fleet.sh).
 *
 * Six chatc clients talk in two group channels. ZooKeeper is stopped for
 * longer than the services' session timeout (10 s), then started again:
 *   - running traffic goes on meanwhile (every service keeps the instance
 *     lists it had), and a new user can sign up, get an edge and talk;
 *   - when it is back, every instance is registered again (sessions that
 *     expired meanwhile are renewed and the nodes re-created), new log-ins
 *     still get an edge, and an edge started afterwards is found: the api
 *     lists it and hands it out, and a user on it talks with the others
 *     (it found the stores, presence and dispatchers in ZooKeeper, and the
 *     dispatchers route to it);
 *   - in the end nothing was lost or stored twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_discovery.h"
#include "chat_util.h"
#include "fleet_harness.h"
#include "fleet_traffic.h"

#define NCLIENTS 6
#define OUTAGE_MS 12000

static char api_url[256];

/* How many instances of each service ZooKeeper lists now. */
static void registered(int *edge, int *store, int *disp, int *pres, int *api)
{
	static const char *const svc[] = {"edge", "store", "dispatcher",
	                                  "presence", "api"};
	int *out[] = {edge, store, disp, pres, api};
	chat_disc_entry ents[16];
	char zk[256], err[256];
	chat_disc *d;

	for (int i = 0; i < 5; i++)
		*out[i] = -1;
	if (fleet_env("CHAT_ZK", zk, sizeof zk) != 0 ||
	    !(d = chat_disc_new(zk, 10000, err, sizeof err)))
		return;
	for (int i = 0; i < 5; i++)
		*out[i] = (int)chat_disc_list(d, svc[i], ents, 16, 5000);
	chat_disc_free(d);
}

static void test_zk_outage(void **state)
{
	ft_crowd *w;
	char err[256], why[512];
	int idx[NCLIENTS], all[NCLIENTS], half[3], pair[2], k, ne, ns, nd, np,
	    na;
	uint64_t g1, g2, g3;
	int64_t t0;
	ft_edge ev[8];
	const ft_edge *e4 = NULL;
	(void)state;

	w = ft_new(api_url, 150, 20);
	assert_non_null(w);
	for (int i = 0; i < NCLIENTS; i++) {
		idx[i] = ft_add(w, "zk", NULL, err, sizeof err);
		if (idx[i] < 0)
			fail_msg("client %d: %s", i, err);
		all[i] = idx[i];
	}
	g1 = ft_group(w, idx[0], all, NCLIENTS, 1, 10000);
	assert_true(g1 != 0);
	half[0] = idx[0];
	half[1] = idx[2];
	half[2] = idx[4];
	g2 = ft_group(w, idx[2], half, 3, 1, 10000);
	assert_true(g2 != 0);
	assert_int_equal(ft_start(w), 0);
	ft_sending(w, 1);
	if (ft_wait_flow(w, 60, 15000) != 0)
		fail_msg("no traffic before the outage");

	/* ZooKeeper away: traffic goes on */
	t0 = chat_mono_ms();
	assert_int_equal(fleet_ctl("stop", "zk"), 0);
	if (ft_wait_flow(w, 100, 10000) != 0) {
		ft_report(w, "outage");
		fail_msg("traffic stopped with ZooKeeper");
	}
	/* a new user signs up, gets an edge (the api's cached list) and
	 * talks with a client of the crowd */
	k = ft_add(w, "during", NULL, err, sizeof err);
	if (k < 0)
		fail_msg("sign-up during the outage: %s", err);
	pair[0] = idx[1];
	pair[1] = k;
	g3 = ft_group(w, idx[1], pair, 2, 1, 10000);
	if (!g3)
		fail_msg("a channel created during the outage");
	{
		int64_t left = OUTAGE_MS - (chat_mono_ms() - t0);
		if (left > 0)
			usleep((useconds_t)left * 1000);
	}
	if (ft_wait_flow(w, 60, 10000) != 0) {
		ft_report(w, "outage");
		fail_msg("traffic stopped with ZooKeeper");
	}
	assert_int_equal(fleet_ctl("start", "zk"), 0);
	fprintf(stderr, "ZooKeeper was down %lld ms\n",
	        (long long)(chat_mono_ms() - t0));

	/* every instance registered again */
	t0 = chat_mono_ms();
	for (;;) {
		registered(&ne, &ns, &nd, &np, &na);
		if (ne == 3 && ns == 2 && nd == 2 && np == 1 && na == 1)
			break;
		if (chat_mono_ms() - t0 > 20000)
			fail_msg("registered after the outage: %d edges, %d "
			         "stores, %d dispatchers, %d presence, %d api",
			         ne, ns, nd, np, na);
		usleep(200 * 1000);
	}
	fprintf(stderr, "all instances registered %lld ms after the restart\n",
	        (long long)(chat_mono_ms() - t0));

	/* a new edge is found: listed by the api, handed out (it is the
	 * least loaded) and its user talks with the others */
	assert_int_equal(fleet_ctl("add", "edge"), 0);
	t0 = chat_mono_ms();
	for (;;) {
		int n = ft_edges(api_url, ev, 8);
		for (int i = 0; i < n; i++)
			if (!strcmp(ev[i].id, "edge-4"))
				e4 = &ev[i];
		if (e4)
			break;
		if (chat_mono_ms() - t0 > 15000)
			fail_msg("the api does not list edge-4");
		usleep(100 * 1000);
	}
	k = ft_add(w, "after", NULL, err, sizeof err);
	if (k < 0)
		fail_msg("sign-up after the outage: %s", err);
	ft_lock(w);
	if (strcmp(ft_get(w, k)->edge_id, "edge-4") != 0)
		fail_msg("the least loaded edge is edge-4, the api handed out "
		         "%s",
		         ft_get(w, k)->edge_id);
	ft_unlock(w);
	pair[0] = idx[3];
	pair[1] = k;
	g3 = ft_group(w, idx[3], pair, 2, 1, 10000);
	if (!g3)
		fail_msg("a channel with a user on edge-4");
	if (ft_wait_flow(w, 100, 15000) != 0) {
		ft_report(w, "after");
		fail_msg("no traffic after the outage");
	}

	if (ft_settle(w, 30000, why, sizeof why) != 0) {
		ft_report(w, "settle");
		fail_msg("not settled 30 s after the traffic stopped: %s", why);
	}
	ft_report(w, "end");
	if (ft_verify(w, why, sizeof why) != 0)
		fail_msg("%s", why);
	ft_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_zk_outage),
	};
	if (fleet_env("CHAT_API_URL", api_url, sizeof api_url) != 0) {
		fprintf(stderr, "CHAT_API_URL unknown: run under "
		                "tests/fleet/run_with_fleet.sh\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
