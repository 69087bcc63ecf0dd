/* chatctl against a real ZooKeeper (tests/lib/zk_server) and fake
 * instances: chat_rpc_servers written here, registered through
 * chat_disc_register, serving chat.Admin/Health (with counters),
 * chat.Edge/Kick and /Drain, chat.Store/AdminChannels and /AdminMembers.
 * One dispatcher is registered at a port where nothing listens. chatctl
 * runs in-process (ctl_run) with its output captured; the checks are on
 * what it prints, its exit code, and what the fakes received. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_arena.h"
#include "chat_discovery.h"
#include "chat_json.h"
#include "chat_rpc.h"
#include "chat_status.h"
#include "chat_util.h"
#include "ctl.h"
#include "edge.pb-c.h"
#include "redis_server.h" /* testsrv_free_port */
#include "rpc.pb-c.h"
#include "store.pb-c.h"
#include "zk_server.h"

/* ---- fake instances ---- */

struct fake {
	const char *service, *id;
	chat_rpc_server *srv; /* NULL: registered, nothing listening */
	chat_disc *disc;
	char url[64];
	int64_t sessions, sends; /* Health counters */
	pthread_mutex_t mu;
	int kicks, drains;
	uint64_t kick_user;
	char kick_reason[128], drain_reason[128];
	uint32_t kick_answer, drain_answer, drain_ps;
};

static zk_server g_zk;
static struct fake g_edge1, g_edge2, g_store, g_disp, g_dead;
static char g_hosts[80];

static void health(void *arg, chat_arena *a, size_t *n, void ***out)
{
	struct fake *f = arg;
	Chat__Counter **v = (Chat__Counter **)chat_arena_ptrs(a, 2);
	for (int i = 0; v && i < 2; i++) {
		v[i] = (Chat__Counter *)chat_arena_msg(
		    a, &chat__counter__descriptor);
		if (!v[i])
			return;
	}
	if (!v)
		return;
	v[0]->name = (char *)"sessions";
	v[0]->value = f->sessions;
	v[1]->name = (char *)"sends";
	v[1]->value = f->sends;
	*n = 2;
	*out = (void **)v;
}

static int h_kick(void *arg, chat_rpc_call *call)
{
	struct fake *f = arg;
	const Chat__KickReq *in = (const Chat__KickReq *)call->in;
	Chat__KickReply *out = (Chat__KickReply *)call->out;
	pthread_mutex_lock(&f->mu);
	f->kicks++;
	f->kick_user = in->user_id;
	chat_strlcpy(f->kick_reason, in->reason, sizeof f->kick_reason);
	out->sessions = f->kick_answer;
	pthread_mutex_unlock(&f->mu);
	return CHAT_OK;
}

static int h_drain(void *arg, chat_rpc_call *call)
{
	struct fake *f = arg;
	const Chat__DrainReq *in = (const Chat__DrainReq *)call->in;
	Chat__DrainReply *out = (Chat__DrainReply *)call->out;
	pthread_mutex_lock(&f->mu);
	f->drains++;
	f->drain_ps = in->per_second;
	chat_strlcpy(f->drain_reason, in->reason, sizeof f->drain_reason);
	out->sessions = f->drain_answer;
	pthread_mutex_unlock(&f->mu);
	return CHAT_OK;
}

/* The store: channels 1..5 ("c1".."c5"), paged as the real one pages;
 * channel 2 has members alice (1) and bob (2); others are not found. */
#define FAKE_CHANNELS 5

static int h_admin_channels(void *arg, chat_rpc_call *call)
{
	const Chat__AdminChannelsReq *in =
	    (const Chat__AdminChannelsReq *)call->in;
	Chat__AdminChannelList *out = (Chat__AdminChannelList *)call->out;
	uint32_t limit = in->limit ? in->limit : 100;
	size_t n = 0;
	(void)arg;
	out->channels =
	    (Chat__AdminChannel **)chat_arena_ptrs(call->arena, FAKE_CHANNELS);
	for (uint64_t id = in->after_id + 1; id <= FAKE_CHANNELS; id++) {
		Chat__AdminChannel *c;
		if (n == limit) {
			out->more = 1;
			break;
		}
		c = (Chat__AdminChannel *)chat_arena_msg(
		    call->arena, &chat__admin_channel__descriptor);
		c->id = id;
		c->name = chat_arena_printf(call->arena, "c%u", (unsigned)id);
		c->kind = CHAT__CHANNEL_KIND__KIND_GROUP;
		c->last_seq = id * 10;
		c->member_count = (uint32_t)id;
		out->channels[n++] = c;
	}
	out->n_channels = n;
	return CHAT_OK;
}

static int h_admin_members(void *arg, chat_rpc_call *call)
{
	const Chat__AdminMembersReq *in =
	    (const Chat__AdminMembersReq *)call->in;
	Chat__UserList *out = (Chat__UserList *)call->out;
	static const char *const names[] = {"alice", "bob"};
	(void)arg;
	if (in->channel_id != 2)
		return chat_rpc_fail(call, CHAT_NOT_FOUND, "no channel %llu",
		                     (unsigned long long)in->channel_id);
	out->users = (Chat__User **)chat_arena_ptrs(call->arena, 2);
	for (size_t i = 0; i < 2; i++) {
		Chat__User *u = (Chat__User *)chat_arena_msg(
		    call->arena, &chat__user__descriptor);
		u->id = i + 1;
		u->name = (char *)names[i];
		u->created_at_ms = 1735787045000LL;
		out->users[i] = u;
	}
	out->n_users = 2;
	return CHAT_OK;
}

static void fake_register(struct fake *f)
{
	chat_disc_entry e;
	char json[CHAT_DISC_DATA_MAX], err[256];

	f->disc = chat_disc_new(g_zk.hosts, 4000, err, sizeof err);
	if (!f->disc)
		fail_msg("chat_disc_new: %s", err);
	memset(&e, 0, sizeof e);
	chat_strlcpy(e.id, f->id, sizeof e.id);
	chat_strlcpy(e.service, f->service, sizeof e.service);
	chat_strlcpy(e.rpc, f->url, sizeof e.rpc);
	chat_strlcpy(e.version, "0.1.0", sizeof e.version);
	e.load = f->sessions;
	e.pid = getpid();
	assert_true(chat_disc_format(&e, json, sizeof json) > 0);
	assert_int_equal(
	    chat_disc_register(f->disc, f->service, f->id, json, 5000), 0);
}

/* A fake serving Health; edges also Kick (and Drain when with_drain),
 * the store its admin calls. listen 0: registered only. */
static void fake_start(struct fake *f, const char *service, const char *id,
                       int listen, int with_drain)
{
	char err[256];
	int port = 0;

	memset(f, 0, sizeof *f);
	pthread_mutex_init(&f->mu, NULL);
	f->service = service;
	f->id = id;
	if (!listen) {
		snprintf(f->url, sizeof f->url, "tcp://127.0.0.1:%d",
		         testsrv_free_port());
		fake_register(f);
		return;
	}
	f->srv = chat_rpc_server_new(service, id, 2);
	assert_non_null(f->srv);
	if (!strcmp(service, "edge")) {
		/* Deliver, Kick, Drain: without Drain the table is shorter,
		 * as an edge built before Drain existed. */
		static const chat_rpc_fn fns[] = {NULL, h_kick, h_drain};
		assert_int_equal(
		    chat_rpc_server_add(f->srv, &chat__edge__descriptor, fns,
		                        with_drain ? 3 : 2, f),
		    0);
	} else if (!strcmp(service, "store")) {
		static chat_rpc_fn fns[32];
		const ProtobufCServiceDescriptor *d = &chat__store__descriptor;
		fns[protobuf_c_service_descriptor_get_method_by_name(
		        d, "AdminChannels") -
		    d->methods] = h_admin_channels;
		fns[protobuf_c_service_descriptor_get_method_by_name(
		        d, "AdminMembers") -
		    d->methods] = h_admin_members;
		assert_int_equal(
		    chat_rpc_server_add(f->srv, d, fns, d->n_methods, f), 0);
	}
	chat_rpc_server_set_health(f->srv, health, f);
	if (chat_rpc_server_listen(f->srv, "tcp://127.0.0.1:0", &port, err,
	                           sizeof err))
		fail_msg("listen: %s", err);
	assert_int_equal(chat_rpc_server_start(f->srv), 0);
	snprintf(f->url, sizeof f->url, "tcp://127.0.0.1:%d", port);
	fake_register(f);
}

static void fake_stop(struct fake *f)
{
	chat_disc_free(f->disc);
	chat_rpc_server_free(f->srv);
	pthread_mutex_destroy(&f->mu);
	memset(f, 0, sizeof *f);
}

static int setup(void **state)
{
	char err[512];
	(void)state;
	if (zk_server_start(&g_zk, err, sizeof err) != 0) {
		fprintf(stderr, "zk_server_start: %s\n", err);
		return -1;
	}
	snprintf(g_hosts, sizeof g_hosts, "%s", g_zk.hosts);
	fake_start(&g_edge1, "edge", "edge-1", 1, 1);
	g_edge1.sessions = 3;
	g_edge1.sends = 10;
	g_edge1.kick_answer = 2;
	g_edge1.drain_answer = 7;
	fake_start(&g_edge2, "edge", "edge-2", 1, 0);
	g_edge2.sessions = 4;
	g_edge2.sends = 1;
	g_edge2.kick_answer = 1;
	fake_start(&g_store, "store", "store-1", 1, 0);
	fake_start(&g_disp, "dispatcher", "disp-1", 1, 0);
	g_disp.sessions = 0;
	g_disp.sends = 5;
	fake_start(&g_dead, "dispatcher", "disp-dead", 0, 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_stop(&g_dead);
	fake_stop(&g_disp);
	fake_stop(&g_store);
	fake_stop(&g_edge2);
	fake_stop(&g_edge1);
	zk_server_cleanup(&g_zk);
	return 0;
}

/* ---- running chatctl ---- */

struct run {
	int rc;
	char *out, *err;
	int64_t ms;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof *r);
}

/* chatctl ARGS... (NULL-terminated) in-process. */
static struct run run(const char *first, ...)
{
	struct run r;
	char *argv[32];
	int argc = 0;
	size_t lo = 0, le = 0;
	FILE *fo, *fe;
	va_list ap;
	int64_t t0;

	memset(&r, 0, sizeof r);
	argv[argc++] = (char *)"chatctl";
	argv[argc++] = (char *)first;
	va_start(ap, first);
	for (char *s; (s = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = s;
	va_end(ap);
	argv[argc] = NULL;
	fo = open_memstream(&r.out, &lo);
	fe = open_memstream(&r.err, &le);
	assert_true(fo && fe);
	t0 = chat_mono_ms();
	r.rc = ctl_run(argc, argv, fo, fe);
	r.ms = chat_mono_ms() - t0;
	fclose(fo);
	fclose(fe);
	return r;
}

#define RUN(...) run(__VA_ARGS__, (char *)NULL)

static int64_t json_int(const char *s, const char *key)
{
	int64_t v = -1;
	if (!chat_json_valid(s, strlen(s)))
		fail_msg("not JSON: %s", s);
	if (chat_json_get_int(s, strlen(s), key, &v) != 0)
		fail_msg("no %s in %s", key, s);
	return v;
}

static void has(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("'%s' not in:\n%s", needle, hay);
}

static void test_health(void **state)
{
	struct run r;
	(void)state;

	r = RUN("--zk", g_hosts, "--timeout-ms", "1500", "health", "--json");
	assert_int_equal(r.rc, CTL_EXIT_FAIL); /* disp-dead */
	assert_int_equal(json_int(r.out, "total"), 5);
	assert_int_equal(json_int(r.out, "ok"), 4);
	assert_int_equal(json_int(r.out, "failed"), 1);
	has(r.out, "{\"service\":\"edge\",\"id\":\"edge-1\",\"node\":"
	           "\"edge-1-");
	has(r.out, "\"id\":\"disp-dead\"");
	has(r.out, "\"status\":\"unreachable\"");
	/* the calls ran in parallel: one timeout, not one per instance */
	assert_true(r.ms < 1500 + 1400);
	run_free(&r);

	r = RUN("--zk", g_hosts, "--timeout-ms", "1500", "health");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.out, "SERVICE     ID         RPC");
	has(r.out, "edge        edge-1     ");
	has(r.out, "dispatcher  disp-dead  ");
	has(r.out, "5 instances: 4 ok, 1 failed\n");
	/* edges first, then store, then dispatchers */
	assert_true(strstr(r.out, "edge-2") < strstr(r.out, "store-1"));
	assert_true(strstr(r.out, "store-1") < strstr(r.out, "disp-1"));
	run_free(&r);

	/* one service, all healthy: exit 0 */
	r = RUN("--zk", g_hosts, "health", "edge");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	has(r.out, "2 instances: 2 ok, 0 failed\n");
	assert_null(strstr(r.out, "store"));
	assert_string_equal(r.err, "");
	run_free(&r);

	/* nothing registered for a service: exit 1, said on stderr */
	r = RUN("--zk", g_hosts, "health", "api");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.err, "no api registered in ZooKeeper");
	run_free(&r);
}

static void test_counters(void **state)
{
	struct run r;
	(void)state;

	r = RUN("counters", "edge", "--json", "--zk", g_hosts);
	assert_int_equal(r.rc, CTL_EXIT_OK);
	has(r.out, "\"counters\":{\"sessions\":3,\"sends\":10}");
	has(r.out, "\"counters\":{\"sessions\":4,\"sends\":1}");
	has(r.out, "\"totals\":{\"sessions\":7,\"sends\":11}");
	assert_int_equal(json_int(r.out, "ok"), 2);
	run_free(&r);

	r = RUN("--zk", g_hosts, "--timeout-ms", "800", "counters",
	        "dispatcher");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.out, "dispatcher  disp-1     sends ");
	has(r.out, "dispatcher  disp-dead  unreachable (");
	has(r.out, "2 instances: 1 ok, 1 failed\n");
	run_free(&r);

	/* every service: sums per service */
	r = RUN("--zk", g_hosts, "--timeout-ms", "800", "counters");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.out, "edge        (total)    sessions ");
	has(r.out, "store       store-1    sends ");
	run_free(&r);
}

static void test_kick(void **state)
{
	struct run r;
	(void)state;

	r = RUN("--zk", g_hosts, "kick", "42", "--reason", "bye now", "--json");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	assert_int_equal(json_int(r.out, "sessions"), 3);
	assert_int_equal(json_int(r.out, "user_id"), 42);
	assert_int_equal(json_int(r.out, "ok"), 2);
	pthread_mutex_lock(&g_edge1.mu);
	assert_int_equal(g_edge1.kicks, 1);
	assert_int_equal(g_edge1.kick_user, 42);
	assert_string_equal(g_edge1.kick_reason, "bye now");
	pthread_mutex_unlock(&g_edge1.mu);
	pthread_mutex_lock(&g_edge2.mu);
	assert_int_equal(g_edge2.kicks, 1);
	assert_int_equal(g_edge2.kick_user, 42);
	pthread_mutex_unlock(&g_edge2.mu);
	run_free(&r);

	r = RUN("--zk", g_hosts, "kick", "43");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	has(r.out, "edge-1  ");
	has(r.out, "user 43: 3 sessions closed on 2 edges\n");
	assert_string_equal(g_edge2.kick_reason, "");
	run_free(&r);
}

/* An edge whose process is gone but whose znode is still there (it
 * lingers until the session expires): kick reports it and the rest. */
static void test_kick_edge_down(void **state)
{
	struct fake e3;
	struct run r;
	(void)state;

	fake_start(&e3, "edge", "edge-3", 1, 1);
	e3.kick_answer = 5;
	chat_rpc_server_free(e3.srv);
	e3.srv = NULL;
	r = RUN("--zk", g_hosts, "--timeout-ms", "700", "kick", "7", "--json");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	assert_int_equal(json_int(r.out, "sessions"), 3); /* 2 + 1 */
	assert_int_equal(json_int(r.out, "total"), 3);
	assert_int_equal(json_int(r.out, "failed"), 1);
	has(r.out, "\"id\":\"edge-3\",\"node\":\"edge-3-");
	has(r.out, "\"status\":\"unreachable\"");
	run_free(&r);
	r = RUN("--zk", g_hosts, "--timeout-ms", "700", "kick", "7");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.out, "user 7: 3 sessions closed on 2 edges; 1 edge failed\n");
	run_free(&r);
	fake_stop(&e3);
}

static void test_drain(void **state)
{
	struct run r;
	(void)state;

	r = RUN("--zk", g_hosts, "drain", "edge-1", "--per-second", "5",
	        "--reason", "maintenance", "--json");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	assert_int_equal(json_int(r.out, "sessions"), 7);
	assert_int_equal(json_int(r.out, "per_second"), 5);
	has(r.out, "\"edge\":\"edge-1\"");
	pthread_mutex_lock(&g_edge1.mu);
	assert_int_equal(g_edge1.drains, 1);
	assert_int_equal(g_edge1.drain_ps, 5);
	assert_string_equal(g_edge1.drain_reason, "maintenance");
	pthread_mutex_unlock(&g_edge1.mu);
	assert_int_equal(g_edge2.drains, 0); /* only the one named */
	run_free(&r);

	r = RUN("--zk", g_hosts, "drain", "edge-1");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	has(r.out, "edge-1 (tcp://127.0.0.1:");
	has(r.out, "): draining 7 sessions, all at once\n");
	run_free(&r);

	/* an edge without Drain: a clean failure that says why */
	r = RUN("--zk", g_hosts, "drain", "edge-2", "--json");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.out, "\"status\":\"unimplemented\"");
	has(r.err, "does not implement Edge.Drain");
	run_free(&r);
	r = RUN("--zk", g_hosts, "drain", "edge-2");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	assert_string_equal(r.out, "");
	has(r.err, "chatctl: drain edge-2 (tcp://127.0.0.1:");
	has(r.err, "unimplemented: this edge does not implement Edge.Drain");
	run_free(&r);

	/* not an edge, or no such edge */
	r = RUN("--zk", g_hosts, "drain", "disp-1");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.err, "no edge 'disp-1' registered in ZooKeeper (edges: "
	           "edge-1, edge-2)");
	run_free(&r);
}

static void test_store(void **state)
{
	struct run r;
	(void)state;

	r = RUN("--zk", g_hosts, "channels", "--limit", "2", "--json");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	has(r.out, "{\"status\":\"ok\",\"channels\":[{\"id\":1,\"name\":\"c1\","
	           "\"kind\":\"group\",\"last_seq\":10,\"member_count\":1},"
	           "{\"id\":2,");
	has(r.out, "\"more\":true,\"next_after\":2}");
	run_free(&r);

	r = RUN("--zk", g_hosts, "channels", "--limit", "2", "--after", "4");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	has(r.out, "5  group        50        5  c5\n1 channel\n");
	run_free(&r);

	/* --all walks the pages */
	r = RUN("--zk", g_hosts, "channels", "--limit", "2", "--all");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	has(r.out, "c1\n");
	has(r.out, "c5\n5 channels\n");
	run_free(&r);

	r = RUN("--zk", g_hosts, "members", "2");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	has(r.out, "ID  NAME   CREATED\n 1  alice  2025-01-02 03:04:05Z\n");
	has(r.out, "channel 2: 2 members\n");
	run_free(&r);

	r = RUN("--zk", g_hosts, "members", "3");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err,
	                    "chatctl: members 3: not_found: no channel 3\n");
	run_free(&r);
}

/* --rpc: one instance directly, no ZooKeeper. */
static void test_rpc_direct(void **state)
{
	struct run r;
	(void)state;

	r = RUN("--rpc", g_edge1.url, "--rpc", g_dead.url, "--timeout-ms",
	        "700", "health");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.out, "edge     edge-1  ");
	has(r.out, "2 instances: 1 ok, 1 failed\n");
	run_free(&r);

	/* a SERVICE filter keeps what answered as that service */
	r = RUN("--rpc", g_edge1.url, "--rpc", g_store.url, "counters", "store",
	        "--json");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	assert_int_equal(json_int(r.out, "total"), 1);
	has(r.out, "\"id\":\"store-1\"");
	run_free(&r);

	r = RUN("--rpc", g_edge2.url, "kick", "9", "--json");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	assert_int_equal(json_int(r.out, "sessions"), 1);
	run_free(&r);

	r = RUN("--rpc", g_store.url, "members", "2", "--json");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	has(r.out, "\"name\":\"bob\"");
	run_free(&r);

	/* drain checks who answers at the URL before draining it */
	r = RUN("--rpc", g_edge2.url, "drain", "edge-1");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.err, "no --rpc instance answered as 'edge-1' (answered: "
	           "edge-2)");
	run_free(&r);
	r = RUN("--rpc", g_store.url, "drain", "store-1");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.err, "is a store, not an edge");
	run_free(&r);
	r = RUN("--rpc", g_edge1.url, "drain", "edge-1", "--json");
	assert_int_equal(r.rc, CTL_EXIT_OK);
	assert_int_equal(json_int(r.out, "sessions"), 7);
	run_free(&r);
}

/* ZooKeeper not there: exit 1 within about the timeout, with a reason. */
static void test_zk_down(void **state)
{
	struct run r;
	char hosts[64];
	(void)state;

	snprintf(hosts, sizeof hosts, "127.0.0.1:%d", testsrv_free_port());
	r = RUN("--zk", hosts, "--timeout-ms", "500", "health");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	assert_string_equal(r.out, "");
	has(r.err, "ZooKeeper at ");
	has(r.err, "did not answer within 500 ms");
	run_free(&r);

	r = RUN("--zk", hosts, "--timeout-ms", "500", "kick", "1", "--json");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.out, "\"error\":\"ZooKeeper at ");
	assert_int_equal(json_int(r.out, "total"), 0);
	run_free(&r);

	r = RUN("--zk", hosts, "--timeout-ms", "500", "channels", "--json");
	assert_int_equal(r.rc, CTL_EXIT_FAIL);
	has(r.out, "{\"status\":\"unreachable\",\"error\":\"ZooKeeper at ");
	run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_health),
	    cmocka_unit_test(test_counters),
	    cmocka_unit_test(test_kick),
	    cmocka_unit_test(test_kick_edge_down),
	    cmocka_unit_test(test_drain),
	    cmocka_unit_test(test_store),
	    cmocka_unit_test(test_rpc_direct),
	    cmocka_unit_test(test_zk_down),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
