/* Kill -9 the presence service, then the api, while clients keep sending
 * (run under run_with_fleet.sh: one presence, one api).
 *
 * Four chatc clients talk in a group channel. Then:
 *   - presence-1 is killed: messages keep flowing (presence is not on
 *     the message path); when it is started again, a status change is
 *     seen by the other members again (it keeps nothing of its own:
 *     statuses and sessions live in Redis);
 *   - api-1 is killed: connected clients keep talking, a sign-up is
 *     refused with a clear error; started again, sign-up and log-in work
 *     and the new user talks with the others;
 *   - in the end every send is stored exactly once, seqs are contiguous,
 *     and every client's sequence equals PostgreSQL's. */
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
#include "client.pb-c.h"
#include "fleet_harness.h"
#include "fleet_traffic.h"

#define NCLIENTS 4

static char api_url[256];

/* Whether client `who` sees user `user` with status st (under the lock). */
static int sees_status(ft_crowd *w, int who, uint64_t user, int st)
{
	const chatc_user *u;
	int yes;
	ft_lock(w);
	u = chatc_user_get(ft_get(w, who)->c, user);
	yes = u && u->status == st;
	ft_unlock(w);
	return yes;
}

/* Client i sets status st; client j must see it within ms. Returns the
 * time it took, or -1. */
static int64_t status_seen(ft_crowd *w, int i, int j, int st, int ms)
{
	int64_t t0 = chat_mono_ms();
	uint64_t user;
	ft_lock(w);
	user = ft_get(w, i)->user_id;
	chatc_set_status(ft_get(w, i)->c, st);
	ft_unlock(w);
	while (chat_mono_ms() - t0 < ms) {
		if (sees_status(w, j, user, st))
			return chat_mono_ms() - t0;
		usleep(50 * 1000);
	}
	return -1;
}

static void test_presence_and_api_kill(void **state)
{
	ft_crowd *w;
	char err[256], why[512];
	int idx[NCLIENTS], pair[2], k;
	int64_t took, t0;
	uint64_t g;
	(void)state;

	w = ft_new(api_url, 150, 20);
	assert_non_null(w);
	for (int i = 0; i < NCLIENTS; i++) {
		idx[i] = ft_add(w, "sk", NULL, err, sizeof err);
		if (idx[i] < 0)
			fail_msg("client %d: %s", i, err);
	}
	g = ft_group(w, idx[0], idx, NCLIENTS, 1, 10000);
	assert_true(g != 0);
	assert_int_equal(ft_start(w), 0);
	ft_sending(w, 1);
	if (ft_wait_flow(w, 40, 15000) != 0)
		fail_msg("no traffic before the kills");
	took = status_seen(w, idx[0], idx[1], CHAT__STATUS__STATUS_AWAY, 10000);
	if (took < 0)
		fail_msg("a status change is not seen before the kills");

	/* presence away: messages go on */
	assert_int_equal(fleet_ctl("kill", "presence-1"), 0);
	if (ft_wait_flow(w, 60, 15000) != 0) {
		ft_report(w, "presence down");
		fail_msg("traffic stopped with presence killed");
	}
	t0 = chat_mono_ms();
	assert_int_equal(fleet_ctl("start", "presence-1"), 0);
	took = status_seen(w, idx[2], idx[3], CHAT__STATUS__STATUS_BUSY,
	                   20000);
	if (took < 0)
		fail_msg("a status change is not seen after presence came back");
	fprintf(stderr,
	        "presence killed: traffic went on; status seen again %lld ms "
	        "after its restart began\n",
	        (long long)(chat_mono_ms() - t0));
	/* what Redis kept: the status set before the kill */
	if (!sees_status(w, idx[1], ft_get(w, idx[0])->user_id,
	                 CHAT__STATUS__STATUS_AWAY))
		fail_msg("the status set before the kill was lost");

	/* the api away: connected clients go on, sign-up is refused */
	assert_int_equal(fleet_ctl("kill", "api-1"), 0);
	if (ft_wait_flow(w, 60, 15000) != 0) {
		ft_report(w, "api down");
		fail_msg("traffic stopped with the api killed");
	}
	k = ft_add(w, "noapi", NULL, err, sizeof err);
	if (k >= 0)
		fail_msg("a sign-up worked with the api killed");
	fprintf(stderr, "api killed: sign-up refused: %s\n", err);
	assert_int_equal(fleet_ctl("start", "api-1"), 0);
	k = ft_add(w, "back", NULL, err, sizeof err);
	if (k < 0)
		fail_msg("sign-up after the api came back: %s", err);
	pair[0] = idx[1];
	pair[1] = k;
	if (!ft_group(w, idx[1], pair, 2, 1, 10000))
		fail_msg("a channel with the user who signed up afterwards");
	if (ft_wait_flow(w, 60, 15000) != 0) {
		ft_report(w, "after");
		fail_msg("no traffic after the api came back");
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
	    cmocka_unit_test(test_presence_and_api_kill),
	};
	if (fleet_env("CHAT_API_URL", api_url, sizeof api_url) != 0) {
		fprintf(stderr, "CHAT_API_URL unknown: run under "
		                "tests/fleet/run_with_fleet.sh\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
