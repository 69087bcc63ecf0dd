/* Unit tests of the load generator's pure parts: the histogram's
 * precision and percentiles, the hand-coded protobuf against protobuf-c,
 * the scenario topologies; and the pid lists and process-tree CPU sums
 * of /proc (scenario F sums the fleet's processes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench.h"
#include "bench_hist.h"
#include "bench_pb.h"
#include "client.pb-c.h"

/* ---- histogram ---- */

static void hist_index_is_monotonic_and_tight(void **state)
{
	unsigned prev = 0;
	(void)state;
	for (uint64_t v = 0; v < (1ull << 39);
	     v = v < 4096 ? v + 1 : v + v / 97) {
		unsigned i = bench_hist_index(v);
		uint64_t up = bench_hist_upper(i);
		assert_true(i >= prev);
		assert_true(i < BENCH_HIST_N);
		assert_true(up >= v);
		/* within 1/128 of the value */
		assert_true((double)(up - v) <= (double)v / 128.0 + 1.0);
		/* the upper bound maps back to the same bucket */
		assert_int_equal(bench_hist_index(up), i);
		prev = i;
	}
	assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_N - 1);
}

static void hist_percentiles(void **state)
{
	bench_hist *h = malloc(sizeof *h), *g = malloc(sizeof *g);
	(void)state;
	assert_non_null(h);
	assert_non_null(g);
	bench_hist_init(h);
	bench_hist_init(g);
	assert_int_equal(bench_hist_pct(h, 99), 0);
	/* 1..10000 us in ns */
	for (uint64_t v = 1; v <= 10000; v++)
		bench_hist_add(v <= 5000 ? h : g, v * 1000);
	bench_hist_merge(h, g);
	assert_int_equal(h->count, 10000);
	assert_int_equal(h->max, 10000 * 1000);
	assert_int_equal(h->min, 1000);
	{
		double p50 = (double)bench_hist_pct(h, 50);
		double p99 = (double)bench_hist_pct(h, 99);
		double p999 = (double)bench_hist_pct(h, 99.9);
		assert_true(p50 >= 5000e3 && p50 <= 5000e3 * 1.0079);
		assert_true(p99 >= 9900e3 && p99 <= 9900e3 * 1.0079);
		assert_true(p999 >= 9990e3 && p999 <= 10000e3);
		assert_int_equal(bench_hist_pct(h, 100), 10000 * 1000);
	}
	free(h);
	free(g);
}

/* ---- protobuf ---- */

static void pb_send_matches_protobuf_c(void **state)
{
	uint8_t buf[BENCH_PB_SEND_MAX];
	char body[4000];
	const size_t sizes[] = {1, 24, 127, 128, 300, 4000};
	(void)state;
	memset(body, 'x', sizeof body);
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t n = bench_pb_send(buf, 300 + k, 1ull << 40, "00ff", 4,
		                         body, sizes[k]);
		Chat__ClientFrame *f = chat__client_frame__unpack(NULL, n, buf);
		assert_non_null(f);
		assert_int_equal(f->req_id, 300 + k);
		assert_int_equal(f->kind_case, CHAT__CLIENT_FRAME__KIND_SEND);
		assert_int_equal(f->send->channel_id, 1ull << 40);
		assert_string_equal(f->send->client_msg_id, "00ff");
		assert_int_equal(strlen(f->send->body), sizes[k]);
		assert_int_equal(n, chat__client_frame__get_packed_size(f));
		chat__client_frame__free_unpacked(f, NULL);
	}
}

static size_t pack_server(Chat__ServerFrame *f, uint8_t *out)
{
	assert_true(chat__server_frame__get_packed_size(f) < 4096);
	return chat__server_frame__pack(f, out);
}

static void pb_parse_server_frames(void **state)
{
	uint8_t out[4096];
	bench_sframe s;
	Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
	Chat__Message m = CHAT__MESSAGE__INIT;
	Chat__SendAck a = CHAT__SEND_ACK__INIT;
	Chat__Error e = CHAT__ERROR__INIT;
	Chat__Welcome w = CHAT__WELCOME__INIT;
	size_t n;
	(void)state;

	m.channel_id = 77;
	m.seq = 123456789;
	m.sender_id = 5;
	m.sender_name = (char *)"bob";
	m.client_msg_id = (char *)"abc";
	m.body = (char *)"0000000000001234hello";
	m.sent_at_ms = 1700000000000;
	m.stored_at_ms = 1700000000001;
	f.kind_case = CHAT__SERVER_FRAME__KIND_MESSAGE;
	f.message = &m;
	n = pack_server(&f, out);
	assert_int_equal(bench_pb_parse(out, n, &s), 0);
	assert_int_equal(s.kind, BENCH_K_MESSAGE);
	assert_int_equal(s.channel_id, 77);
	assert_int_equal(s.seq, 123456789);
	assert_int_equal(s.sender_id, 5);
	assert_int_equal(s.sent_at_ms, 1700000000000);
	assert_int_equal(s.stored_at_ms, 1700000000001);
	assert_int_equal(s.body_len, strlen(m.body));
	assert_memory_equal(s.body, m.body, s.body_len);

	f.req_id = 99;
	a.channel_id = 78;
	a.client_msg_id = (char *)"x";
	f.kind_case = CHAT__SERVER_FRAME__KIND_SEND_ACK;
	f.send_ack = &a;
	n = pack_server(&f, out);
	assert_int_equal(bench_pb_parse(out, n, &s), 0);
	assert_int_equal(s.kind, BENCH_K_SEND_ACK);
	assert_int_equal(s.req_id, 99);
	assert_int_equal(s.channel_id, 78);

	e.code = CHAT__CODE__RESOURCE_EXHAUSTED;
	e.reason = (char *)"slow down";
	e.retryable = 1;
	e.channel_id = 9;
	f.kind_case = CHAT__SERVER_FRAME__KIND_ERROR;
	f.error = &e;
	n = pack_server(&f, out);
	assert_int_equal(bench_pb_parse(out, n, &s), 0);
	assert_int_equal(s.kind, BENCH_K_ERROR);
	assert_int_equal(s.code, 8);
	assert_int_equal(s.retryable, 1);
	assert_int_equal(s.channel_id, 9);
	assert_int_equal(s.req_id, 99);

	f.req_id = 0;
	w.user_id = 4242;
	w.user_name = (char *)"alice";
	f.kind_case = CHAT__SERVER_FRAME__KIND_WELCOME;
	f.welcome = &w;
	n = pack_server(&f, out);
	assert_int_equal(bench_pb_parse(out, n, &s), 0);
	assert_int_equal(s.kind, BENCH_K_WELCOME);
	assert_int_equal(s.user_id, 4242);

	/* every truncation of a valid frame parses or fails, never reads
	 * past the end (ASan watches) */
	f.kind_case = CHAT__SERVER_FRAME__KIND_MESSAGE;
	n = pack_server(&f, out);
	for (size_t k = 0; k < n; k++) {
		uint8_t *cut = malloc(k ? k : 1);
		assert_non_null(cut);
		memcpy(cut, out, k);
		(void)bench_pb_parse(cut, k, &s);
		free(cut);
	}
}

static void pb_parse_rejects_garbage(void **state)
{
	bench_sframe s;
	const uint8_t overlong[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
	                            0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	const uint8_t badlen[] = {0x7a, 0x05, 0x08}; /* 15: len 5, 1 byte */
	const uint8_t badwire[] = {0x0b};            /* wire type 3 */
	const uint8_t field0[] = {0x00, 0x01};
	(void)state;
	assert_int_equal(bench_pb_parse(overlong, sizeof overlong, &s), -1);
	assert_int_equal(bench_pb_parse(badlen, sizeof badlen, &s), -1);
	assert_int_equal(bench_pb_parse(badwire, sizeof badwire, &s), -1);
	assert_int_equal(bench_pb_parse(field0, sizeof field0, &s), -1);
	assert_int_equal(bench_pb_parse(NULL, 0, &s), 0);
	assert_int_equal(s.kind, BENCH_K_NONE);
}

/* ---- topology ---- */

static void topo_groups_of_ten(void **state)
{
	bench_topo t;
	char err[200];
	uint32_t *count, ch[2];
	(void)state;

	assert_int_equal(bench_topo_init(&t, 'C', 150, 0, err, sizeof err), -1);
	assert_int_equal(bench_topo_init(&t, 'B', 7, 0, err, sizeof err), -1);
	assert_int_equal(bench_topo_init(&t, 'C', 1000, 0, err, sizeof err), 0);
	assert_int_equal(t.nchan, 200);
	count = calloc(t.nchan, sizeof *count);
	assert_non_null(count);
	for (uint32_t i = 0; i < t.n; i++) {
		assert_int_equal(bench_topo_chans(&t, i, ch), 2);
		assert_true(ch[0] < t.nchan && ch[1] < t.nchan);
		assert_true(ch[0] != ch[1]);
		count[ch[0]]++;
		count[ch[1]]++;
	}
	for (uint32_t c = 0; c < t.nchan; c++) {
		assert_int_equal(count[c], 10);
		assert_int_equal(bench_topo_members(&t, c), 10);
	}
	/* two connections share at most one channel */
	for (uint32_t i = 0; i < 200; i++)
		for (uint32_t j = i + 1; j < 200; j++) {
			uint32_t a[2], b[2];
			int shared = 0;
			bench_topo_chans(&t, i, a);
			bench_topo_chans(&t, j, b);
			for (int x = 0; x < 2; x++)
				for (int y = 0; y < 2; y++)
					shared += a[x] == b[y];
			assert_true(shared <= 1);
		}
	free(count);
	assert_int_equal(bench_topo_init(&t, 'E', 100, 10, err, sizeof err), 0);
	for (uint32_t k = 0; k < 10; k++) {
		assert_int_equal(bench_topo_churn_chans(&t, k, ch), 2);
		assert_true(ch[0] < 10 && ch[1] >= 10 && ch[1] < 20);
	}
	assert_int_equal(bench_topo_init(&t, 'D', 10000, 0, err, sizeof err),
	                 0);
	assert_int_equal(t.nchan, 1);
	assert_int_equal(bench_topo_members(&t, 0), 10000);
}

/* ---- /proc ---- */

static void pid_lists(void **state)
{
	int p[4];
	(void)state;

	assert_int_equal(bench_parse_pids("", p, 4), 0);
	assert_int_equal(bench_parse_pids("12", p, 4), 1);
	assert_int_equal(p[0], 12);
	assert_int_equal(bench_parse_pids("12,34,5", p, 4), 3);
	assert_int_equal(p[1], 34);
	assert_int_equal(p[2], 5);
	assert_int_equal(bench_parse_pids("1,2,3,4,5", p, 4), -1);
	assert_int_equal(bench_parse_pids("1,,2", p, 4), -1);
	assert_int_equal(bench_parse_pids("1,", p, 4), -1);
	assert_int_equal(bench_parse_pids(",1", p, 4), -1);
	assert_int_equal(bench_parse_pids("0", p, 4), -1);
	assert_int_equal(bench_parse_pids("-3", p, 4), -1);
	assert_int_equal(bench_parse_pids("7x", p, 4), -1);
}

/* Burn about ms of CPU. */
static void spin_cpu(int ms)
{
	int64_t end = bench_now_ns() + (int64_t)ms * 1000000;
	volatile uint64_t x = 0;
	while (bench_now_ns() < end)
		x++;
}

/* A process's tree counts its children's CPU, alive and, once reaped,
 * through the parent's cutime: the sum never drops when a child exits
 * (PostgreSQL's backends are the postmaster's children). */
static void proc_tree_counts_children(void **state)
{
	int self = (int)getpid(), gone = 0x3fffffff, fds[2];
	uint64_t t0, t1, t2;
	bench_proc p;
	pid_t kid;
	char c;
	(void)state;

	assert_int_equal(bench_proc_tree_ticks(&self, 1, &t0), 0);
	assert_int_equal(pipe(fds), 0);
	kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		close(fds[1]);
		spin_cpu(300);
		/* stay alive until the parent has looked */
		if (read(fds[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[0]);
	/* wait until the child has used its CPU (wall time may be longer
	 * on a busy machine) */
	for (int i = 0; i < 200; i++) {
		int k = (int)kid;
		uint64_t kt = 0;
		if (bench_proc_tree_ticks(&k, 1, &kt) == 0 &&
		    kt >= (uint64_t)bench_proc_hz() / 5)
			break;
		bench_sleep_until(bench_now_ns() + 50 * 1000000LL);
	}
	assert_int_equal(bench_proc_tree_ticks(&self, 1, &t1), 0);
	assert_true(t1 >= t0 + (uint64_t)bench_proc_hz() / 5);
	close(fds[1]);
	assert_int_equal(waitpid(kid, NULL, 0), kid);
	assert_int_equal(bench_proc_tree_ticks(&self, 1, &t2), 0);
	assert_true(t2 >= t1);
	/* memory of the listed processes, and a pid that does not run */
	assert_int_equal(bench_proc_sample(&self, 1, &p), 0);
	assert_true(p.rss_kib > 0 && p.threads >= 1);
	assert_int_equal(bench_proc_sample(&gone, 1, &p), -1);
	assert_int_equal(p.cpu_ticks, 0);
	assert_int_equal(bench_proc_tree_ticks(&gone, 1, &t2), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(hist_index_is_monotonic_and_tight),
	    cmocka_unit_test(hist_percentiles),
	    cmocka_unit_test(pb_send_matches_protobuf_c),
	    cmocka_unit_test(pb_parse_server_frames),
	    cmocka_unit_test(pb_parse_rejects_garbage),
	    cmocka_unit_test(topo_groups_of_ten),
	    cmocka_unit_test(pid_lists),
	    cmocka_unit_test(proc_tree_counts_children),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
