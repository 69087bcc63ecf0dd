/* Kill -9 one of the two stores and one of the two dispatchers while
 * clients keep sending (run under run_with_fleet.sh: 2 stores, 2
 * dispatchers, 3 edges).
 *
 * Eight chatc clients (spread over the edges by the api) talk in four
 * group channels. store-1 is killed, then dispatcher-1, mid-stream; the
 * clients keep sending. The survivors take over the partitions (the
 * consumer groups move them after the dead member's session times out),
 * so in the end:
 *   - every send (acknowledged or resent) is stored exactly once, seqs
 *     are contiguous per channel, and every client's sequence per channel
 *     equals PostgreSQL's (delivered: live, or filled from history when a
 *     seq gap shows);
 *   - PostgreSQL's stored offsets of chat.ingress reach the end of every
 *     partition: the surviving store consumed the dead one's share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_util.h"
#include "fleet_harness.h"
#include "fleet_traffic.h"

#define NCLIENTS 8
#define NCHANS 4

static char api_url[256];

/* Whether the stored offsets of every chat.ingress partition equal its
 * high watermark; *behind says how many records are not stored yet. */
static int ingress_consumed(long long *behind, char *why, size_t whylen)
{
	char kafka[256], parts[16], err[256], sql[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	int np, ok = 1;

	*behind = 0;
	if (fleet_env("CHAT_KAFKA", kafka, sizeof kafka) != 0 ||
	    fleet_env("CHAT_KAFKA_PARTITIONS", parts, sizeof parts) != 0) {
		rd_kafka_conf_destroy(conf);
		snprintf(why, whylen, "CHAT_KAFKA unknown");
		return 0;
	}
	np = atoi(parts);
	rd_kafka_conf_set(conf, "bootstrap.servers", kafka, err, sizeof err);
	rd_kafka_conf_set(conf, "group.id", "fleet-test-probe", err,
	                  sizeof err);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!rk) {
		snprintf(why, whylen, "rd_kafka_new: %s", err);
		return 0;
	}
	for (int p = 0; p < np; p++) {
		int64_t lo = 0, hi = 0;
		long long stored = 0;
		rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
		    rk, "chat.ingress", p, &lo, &hi, 5000);
		if (e) {
			snprintf(why, whylen, "watermarks of partition %d: %s",
			         p, rd_kafka_err2str(e));
			ok = 0;
			break;
		}
		snprintf(sql, sizeof sql,
		         "SELECT coalesce(max(next_offset), 0) FROM "
		         "consumer_offsets WHERE topic = 'chat.ingress' AND "
		         "partition = %d",
		         p);
		if (ft_pg_int(sql, &stored) != 0) {
			snprintf(why, whylen, "cannot read the offsets");
			ok = 0;
			break;
		}
		if (stored != hi) {
			*behind += hi - stored;
			snprintf(why, whylen,
			         "partition %d: stored up to %lld, log ends at "
			         "%lld",
			         p, stored, (long long)hi);
			ok = 0;
		}
	}
	rd_kafka_destroy(rk);
	return ok;
}

static void test_store_and_dispatcher_kill(void **state)
{
	ft_crowd *w;
	char err[256], why[512];
	int idx[NCLIENTS];
	uint64_t ch[NCHANS];
	long long behind = 0;
	int64_t t0, t_kill;
	(void)state;

	w = ft_new(api_url, 120, 20);
	assert_non_null(w);
	for (int i = 0; i < NCLIENTS; i++) {
		idx[i] = ft_add(w, "bk", NULL, err, sizeof err);
		if (idx[i] < 0)
			fail_msg("client %d: %s", i, err);
	}
	/* four channels of four: channel k holds clients k..k+3 */
	for (int k = 0; k < NCHANS; k++) {
		int m[4];
		for (int j = 0; j < 4; j++)
			m[j] = idx[(k * 2 + j) % NCLIENTS];
		ch[k] = ft_group(w, m[0], m, 4, 1, 10000);
		assert_true(ch[k] != 0);
	}
	assert_int_equal(ft_start(w), 0);
	ft_sending(w, 1);
	if (ft_wait_flow(w, 100, 15000) != 0)
		fail_msg("no traffic before the kills");

	t_kill = chat_mono_ms();
	assert_int_equal(fleet_ctl("kill", "store-1"), 0);
	if (ft_wait_flow(w, 20, 15000) != 0)
		fail_msg("no traffic after the store kill");
	assert_int_equal(fleet_ctl("kill", "dispatcher-1"), 0);
	fprintf(stderr, "killed store-1 and dispatcher-1 after %lld ms\n",
	        (long long)(chat_mono_ms() - t_kill));

	/* the clients keep sending across the rebalances (the groups move
	 * a dead member's partitions after its 10 s session timeout) */
	sleep(14);
	if (ft_wait_flow(w, 100, 20000) != 0) {
		ft_report(w, "flow");
		fail_msg("no traffic after the rebalances");
	}

	if (ft_settle(w, 45000, why, sizeof why) != 0) {
		ft_report(w, "settle");
		fail_msg("not settled 45 s after the traffic stopped: %s", why);
	}
	fprintf(stderr, "settled %lld ms after the first kill\n",
	        (long long)(chat_mono_ms() - t_kill));
	ft_report(w, "end");
	if (ft_verify(w, why, sizeof why) != 0)
		fail_msg("%s", why);
	/* the surviving store consumed every partition to its end */
	t0 = chat_mono_ms();
	while (!ingress_consumed(&behind, why, sizeof why)) {
		if (chat_mono_ms() - t0 > 15000)
			fail_msg("chat.ingress not consumed: %s (%lld behind)",
			         why, behind);
		usleep(200 * 1000);
	}
	ft_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_store_and_dispatcher_kill),
	};
	if (fleet_env("CHAT_API_URL", api_url, sizeof api_url) != 0) {
		fprintf(stderr, "CHAT_API_URL unknown: run under "
		                "tests/fleet/run_with_fleet.sh\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
