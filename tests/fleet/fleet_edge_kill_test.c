/* Kill -9 an edge with connected clients mid-conversation (run under
 * run_with_fleet.sh, 3 edges).
 *
 * Six chatc clients talk in two group channels, three of them on the
 * victim edge. The victim is killed with SIGKILL while everyone sends.
 * Then:
 *   - the api stops handing the dead edge out at once (its ZooKeeper
 *     session lives on for 10 s): it is not listed and no log-in gets it;
 *   - the victim's clients reconnect through the api to other edges and
 *     resume; everybody's sequence per channel ends equal to PostgreSQL's
 *     (no gap, no duplicate), and every send is stored exactly once;
 *   - the victim's routing entries (chat:route:* sets, its lease and
 *     index) and presence sessions leave Redis once its lease runs out;
 *   - presence shows a user who stayed away (a session that does not
 *     reconnect) offline, and the users who moved online. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_util.h"
#include "fleet_harness.h"
#include "fleet_traffic.h"
#include "itest.h"

#define MAX_EDGES 8

static char api_url[256];

/* Whether every Redis trace of edge id is gone; what is left in why. */
static int redis_clean(const char *id, const uint64_t *users, size_t nusers,
                       char *why, size_t whylen)
{
	char key[128];
	long long v = -1;

	snprintf(key, sizeof key, "chat:edge:%s", id);
	if (ft_redis_exists(key, &v) != 0 || v) {
		snprintf(why, whylen, "lease %s still there", key);
		return 0;
	}
	if (ft_redis_sets_with("chat:route:*", id, &v) != 0 || v) {
		snprintf(why, whylen, "%lld chat:route:* sets still hold %s", v,
		         id);
		return 0;
	}
	snprintf(key, sizeof key, "chat:edge:%s:ch", id);
	if (ft_redis_exists(key, &v) != 0 || v) {
		snprintf(why, whylen, "index %s still there", key);
		return 0;
	}
	snprintf(key, sizeof key, "chat:edge:%s:user", id);
	if (ft_redis_exists(key, &v) != 0 || v) {
		snprintf(why, whylen, "index %s still there", key);
		return 0;
	}
	if (ft_redis_sismember("chat:pres:edges", id, &v) != 0 || v) {
		snprintf(why, whylen, "chat:pres:edges still holds %s", id);
		return 0;
	}
	snprintf(key, sizeof key, "chat:pres:edge:%s", id);
	if (ft_redis_exists(key, &v) != 0 || v) {
		snprintf(why, whylen, "%s still there", key);
		return 0;
	}
	for (size_t i = 0; i < nusers; i++) {
		snprintf(key, sizeof key, "chat:pres:sess:%llu",
		         (unsigned long long)users[i]);
		if (ft_redis_hash_has_value(key, id, &v) != 0 || v) {
			snprintf(why, whylen, "%s still has a session on %s",
			         key, id);
			return 0;
		}
	}
	return 1;
}

/* Ask who(ch) from client i and read the statuses it learns. */
static int statuses(ft_crowd *w, int i, uint64_t ch, const uint64_t *users,
                    int *st, size_t n)
{
	uint64_t req;
	int64_t deadline;
	ft_lock(w);
	req = chatc_who(ft_get(w, i)->c, ch);
	ft_unlock(w);
	if (!req)
		return -1;
	usleep(300 * 1000); /* the answer is applied by the crowd's thread */
	deadline = chat_mono_ms() + 5000;
	for (;;) {
		int all = 1;
		ft_lock(w);
		for (size_t k = 0; k < n; k++) {
			const chatc_user *u =
			    chatc_user_get(ft_get(w, i)->c, users[k]);
			st[k] = u ? u->status : -1;
			all &= u != NULL;
		}
		ft_unlock(w);
		if (all || chat_mono_ms() > deadline)
			return all ? 0 : -1;
		usleep(50 * 1000);
	}
}

static void test_edge_kill(void **state)
{
	ft_edge ev[MAX_EDGES];
	ft_crowd *w;
	const ft_edge *victim, *others[2];
	it_client ghost;
	char err[256], why[512];
	int n, idx[6], all[6] = {0, 1, 2, 3, 4, 5}, few[3];
	uint64_t g1, g2, vusers[4];
	int64_t t_kill, t_gone = -1, t_moved, t_clean = -1;
	Chat__ServerFrame *f;
	(void)state;

	n = ft_edges(api_url, ev, MAX_EDGES);
	assert_true(n >= 3);
	victim = &ev[1];
	others[0] = &ev[0];
	others[1] = &ev[2];

	w = ft_new(api_url, 150, 20);
	assert_non_null(w);
	/* three on the victim, the others elsewhere */
	for (int i = 0; i < 6; i++) {
		const ft_edge *on = i < 3 ? victim : others[i % 2];
		idx[i] = ft_add(w, i < 3 ? "moved" : "stay", on->url, err,
		                sizeof err);
		if (idx[i] < 0)
			fail_msg("client %d: %s", i, err);
	}
	g1 = ft_group(w, idx[3], all, 6, 1, 10000);
	assert_true(g1 != 0);
	few[0] = idx[0];
	few[1] = idx[4];
	few[2] = idx[1];
	g2 = ft_group(w, idx[4], few, 3, 1, 10000);
	assert_true(g2 != 0);

	/* a user on the victim who will not come back: joins g1, sends
	 * nothing, never reconnects */
	memset(&ghost, 0, sizeof ghost);
	it_unique(ghost.name, sizeof ghost.name, "ghost");
	snprintf(ghost.password, sizeof ghost.password, "pw-%.40s-secret",
	         ghost.name);
	if (chatc_signup(api_url, ghost.name, ghost.password, 10000,
	                 &ghost.auth, err, sizeof err) != 0)
		fail_msg("ghost signup: %s", err);
	snprintf(ghost.auth.edge_url, sizeof ghost.auth.edge_url, "%s",
	         victim->url);
	if (it_client_reconnect(&ghost, err, sizeof err) != 0)
		fail_msg("ghost: %s", err);
	f = it_join(&ghost, g1);
	assert_non_null(f);
	assert_int_equal(f->kind_case, CHAT__SERVER_FRAME__KIND_CHANNEL);
	chat__server_frame__free_unpacked(f, NULL);

	assert_int_equal(ft_start(w), 0);
	ft_sending(w, 1);
	if (ft_wait_flow(w, 60, 15000) != 0)
		fail_msg("no traffic before the kill");

	/* kill -9 mid-conversation */
	t_kill = chat_mono_ms();
	assert_int_equal(fleet_ctl("kill", victim->id), 0);
	fprintf(stderr, "killed %s (%s)\n", victim->id, victim->url);

	/* the api stops listing and handing it out within a few seconds,
	 * long before ZooKeeper drops its session */
	for (;;) {
		ft_edge now[MAX_EDGES];
		int k = ft_edges(api_url, now, MAX_EDGES), listed = 0;
		for (int i = 0; i < k; i++)
			listed |= !strcmp(now[i].id, victim->id);
		if (k > 0 && !listed) {
			t_gone = chat_mono_ms() - t_kill;
			break;
		}
		if (chat_mono_ms() - t_kill > 4000)
			fail_msg("the api still lists %s 4 s after its kill",
			         victim->id);
		usleep(50 * 1000);
	}
	for (int i = 0; i < 6; i++) {
		chatc_auth a;
		char name[64];
		it_unique(name, sizeof name, "after");
		if (chatc_signup(api_url, name, "pw-after-secret", 10000, &a,
		                 err, sizeof err) != 0)
			fail_msg("signup after the kill: %s", err);
		if (!strcmp(a.edge_url, victim->url))
			fail_msg("log-in %d after the kill was handed the dead "
			         "edge %s", i, victim->id);
	}

	/* its clients come back on the other edges */
	if (ft_wait_online(w, victim->id, 20000) != 0) {
		ft_report(w, "reconnect");
		fail_msg("the victim's clients did not all resume elsewhere");
	}
	t_moved = chat_mono_ms() - t_kill;
	if (ft_wait_flow(w, 60, 15000) != 0) {
		ft_report(w, "flow");
		fail_msg("no traffic after the reconnects");
	}

	/* its traces leave Redis when its lease (10 s) runs out, and the
	 * presence sweep (2 s) ends its sessions */
	ft_lock(w);
	for (int i = 0; i < 3; i++)
		vusers[i] = ft_get(w, idx[i])->user_id;
	ft_unlock(w);
	vusers[3] = ghost.auth.user_id;
	for (;;) {
		if (redis_clean(victim->id, vusers, 4, why, sizeof why)) {
			t_clean = chat_mono_ms() - t_kill;
			break;
		}
		if (chat_mono_ms() - t_kill > 25000)
			fail_msg("25 s after the kill: %s", why);
		usleep(250 * 1000);
	}

	/* presence: the ghost is offline; the users who moved are online */
	{
		int st[4];
		int64_t deadline = chat_mono_ms() + 10000;
		for (;;) {
			if (statuses(w, idx[4], g1, vusers, st, 4) == 0 &&
			    st[3] == CHAT__STATUS__STATUS_OFFLINE &&
			    st[0] == CHAT__STATUS__STATUS_ONLINE &&
			    st[1] == CHAT__STATUS__STATUS_ONLINE &&
			    st[2] == CHAT__STATUS__STATUS_ONLINE)
				break;
			if (chat_mono_ms() > deadline)
				fail_msg("presence after the kill: moved %d %d "
				         "%d, ghost %d",
				         st[0], st[1], st[2], st[3]);
		}
	}

	/* nothing lost, nothing twice, everyone's sequence is the history */
	if (ft_settle(w, 30000, why, sizeof why) != 0) {
		ft_report(w, "settle");
		fail_msg("not settled 30 s after the traffic stopped: %s", why);
	}
	ft_report(w, "end");
	if (ft_verify(w, why, sizeof why) != 0)
		fail_msg("%s", why);
	fprintf(stderr,
	        "edge kill: api stopped handing out %s after %lld ms; its "
	        "clients resumed elsewhere after %lld ms; Redis clean after "
	        "%lld ms\n",
	        victim->id, (long long)t_gone, (long long)t_moved,
	        (long long)t_clean);
	it_client_close(&ghost);
	ft_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_edge_kill),
	};
	if (fleet_env("CHAT_API_URL", api_url, sizeof api_url) != 0) {
		fprintf(stderr, "CHAT_API_URL unknown: run under "
		                "tests/fleet/run_with_fleet.sh\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
