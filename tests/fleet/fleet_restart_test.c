/* Restart Redis, then PostgreSQL, then the Kafka broker while clients keep
 * sending (run under run_with_fleet.sh).
 *
 * Six chatc clients (spread over the edges by the api) talk in two group
 * channels. Each server is restarted in turn (compose/fleet.sh restart)
 * under that traffic, and traffic must flow again after each. Sends
 * during an outage are either acknowledged and later delivered, or
 * refused with a retryable error and resent by the client with the same
 * client_msg_id; none is refused for good. In the end every send is
 * stored exactly once, seqs are contiguous, and every client's sequence
 * per channel equals PostgreSQL's.
 *
 * librdkafka 2.0.2's idempotent producer can fail fatally after a broker
 * restart; the edges and stores then replace it. Whenever a service log
 * shows such a fatal error, it must also show the replacement, and sends
 * must flow again (checked by the traffic after the broker restart). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_util.h"
#include "fleet_harness.h"
#include "fleet_traffic.h"

#define NCLIENTS 6

static char api_url[256];

/* Lines holding needle in the service logs (RUN/logs/PREFIX*.log). */
static int log_count(const char *prefix, const char *needle)
{
	const char *dir = getenv("CHAT_FLEET_DIR");
	char path[4096], line[4096];
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (!dir)
		return -1;
	snprintf(path, sizeof path, "%s/logs", dir);
	if (!(d = opendir(path)))
		return -1;
	while ((de = readdir(d)) != NULL) {
		FILE *f;
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    !strstr(de->d_name, ".log"))
			continue;
		snprintf(path, sizeof path, "%s/logs/%s", dir, de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		while (fgets(line, sizeof line, f))
			n += strstr(line, needle) != NULL;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* Take server name down (verb "stop" or "kill") for down_ms under
 * traffic, start it again; traffic must flow again within ms. Prints how
 * long the outage and the recovery took. */
static void outage(ft_crowd *w, const char *verb, const char *name,
                   int down_ms, int ms)
{
	int64_t t0 = chat_mono_ms(), t1;
	uint64_t a0 = ft_acked(w);
	if (fleet_ctl(verb, name) != 0)
		fail_msg("fleet.sh %s %s failed", verb, name);
	usleep((useconds_t)down_ms * 1000);
	if (fleet_ctl("start", name) != 0)
		fail_msg("fleet.sh start %s failed", name);
	t1 = chat_mono_ms();
	if (ft_wait_flow(w, 40, ms) != 0) {
		ft_report(w, name);
		fail_msg("no traffic %d s after restarting %s", ms / 1000,
		         name);
	}
	fprintf(stderr,
	        "%s %s: down %lld ms; traffic flowing again %lld ms later "
	        "(%llu sends acknowledged meanwhile)\n",
	        verb, name, (long long)(t1 - t0), (long long)(chat_mono_ms() - t1),
	        (unsigned long long)(ft_acked(w) - a0));
}

/* The pid of instance id, from RUN/svc/ID.pid; 0 when unknown. */
static pid_t pid_of(const char *id)
{
	const char *dir = getenv("CHAT_FLEET_DIR");
	char path[4096];
	long pid = 0;
	FILE *f;

	if (!dir)
		return 0;
	snprintf(path, sizeof path, "%s/svc/%s.pid", dir, id);
	if (!(f = fopen(path, "r")))
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/* Every producer of the edges and stores fails fatally at once (SIGUSR2
 * with CHAT_TEST_FAULTS=1: rd_kafka_test_fatal_error, what librdkafka
 * 2.0.2's idempotent producer may do after a broker restart); they must
 * replace it, and sends flow again. */
static void fatal_producers(ft_crowd *w)
{
	static const char *const ids[] = {"edge-1", "edge-2", "edge-3",
	                                  "store-1", "store-2"};
	int64_t t0 = chat_mono_ms();
	int edges, stores;

	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		pid_t pid = pid_of(ids[i]);
		if (pid <= 0 || kill(pid, SIGUSR2) != 0)
			fail_msg("cannot signal %s", ids[i]);
	}
	if (ft_wait_flow(w, 60, 30000) != 0) {
		ft_report(w, "fatal");
		fail_msg("no traffic after the producers failed fatally");
	}
	/* each edge had sends, so each replaced its producer; a store
	 * replaces it at its next fan-out (those holding the channels'
	 * partitions) */
	for (;;) {
		edges = log_count("edge-", "event=producer_renewed");
		stores = log_count("store-", "event=producer_renewed");
		if (edges >= 3 && stores >= 1)
			break;
		if (chat_mono_ms() - t0 > 20000)
			fail_msg("producers replaced: %d edges, %d stores", edges,
			         stores);
		usleep(100 * 1000);
	}
	fprintf(stderr,
	        "fatal producer errors: %d raised, replaced in %d edges and "
	        "%d stores, traffic flowing after %lld ms\n",
	        log_count("", "event=fatal_error"), edges, stores,
	        (long long)(chat_mono_ms() - t0));
}

static void test_restarts(void **state)
{
	ft_crowd *w;
	char err[256], why[512];
	int idx[NCLIENTS], all[NCLIENTS], half[3];
	uint64_t g1, g2;
	(void)state;

	w = ft_new(api_url, 150, 20);
	assert_non_null(w);
	for (int i = 0; i < NCLIENTS; i++) {
		idx[i] = ft_add(w, "rs", NULL, err, sizeof err);
		if (idx[i] < 0)
			fail_msg("client %d: %s", i, err);
		all[i] = idx[i];
	}
	g1 = ft_group(w, idx[0], all, NCLIENTS, 1, 10000);
	assert_true(g1 != 0);
	half[0] = idx[1];
	half[1] = idx[3];
	half[2] = idx[5];
	g2 = ft_group(w, idx[1], half, 3, 1, 10000);
	assert_true(g2 != 0);
	assert_int_equal(ft_start(w), 0);
	ft_sending(w, 1);
	if (ft_wait_flow(w, 60, 15000) != 0)
		fail_msg("no traffic before the restarts");

	outage(w, "stop", "redis", 3000, 30000);
	outage(w, "stop", "pg", 3000, 30000);
	outage(w, "stop", "kafka", 3000, 60000);
	outage(w, "kill", "kafka", 1000, 60000);
	fatal_producers(w);
	/* and a while longer, so that late deliveries and resends show */
	if (ft_wait_flow(w, 100, 30000) != 0) {
		ft_report(w, "after");
		fail_msg("traffic stopped after the broker restart");
	}

	if (ft_settle(w, 60000, why, sizeof why) != 0) {
		ft_report(w, "settle");
		fail_msg("not settled 60 s after the traffic stopped: %s", why);
	}
	ft_report(w, "end");
	if (ft_verify(w, why, sizeof why) != 0)
		fail_msg("%s", why);

	ft_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_restarts),
	};
	if (fleet_env("CHAT_API_URL", api_url, sizeof api_url) != 0) {
		fprintf(stderr, "CHAT_API_URL unknown: run under "
		                "tests/fleet/run_with_fleet.sh\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
