/* Rendering a run: the table and the JSON line. */
#include <math.h>
#include <string.h>

#include "bench_report.h"
#include "chat_json.h"

/* A finite number for JSON (NaN and infinities are not JSON). */
static double fin(double v)
{
	return isfinite(v) ? v : 0.0;
}

static const bench_step *headline(const bench_result *r)
{
	if (!r->nsteps)
		return NULL;
	if (r->best >= 0)
		return &r->steps[r->best];
	return &r->steps[r->nsteps - 1];
}

void bench_report_step(FILE *f, const bench_result *r, const bench_step *s)
{
	char backend[48] = "";

	if (r->backend_pids)
		snprintf(backend, sizeof backend, "backends %5.2f us/msg  ",
		         s->backend_cpu_us);
	fprintf(f,
	        "  rate %9.0f/s  sent %9.0f/s  delivered %10.0f/s  loss %llu  "
	        "err %llu  p50 %7.2f  p99 %8.2f  p99.9 %8.2f  max %8.2f ms  "
	        "srv %5.2f us/msg  %sbench %5.2f us/msg  %s\n",
	        s->rate, s->sent_per_s, s->delivered_per_s,
	        (unsigned long long)s->loss, (unsigned long long)s->errors,
	        s->p50, s->p99, s->p999, s->max, s->server_cpu_us, backend,
	        s->bench_cpu_us, s->ok ? "held" : "FAILED");
}

void bench_report_table(FILE *f, const bench_result *r)
{
	const bench_step *h = headline(r);

	fprintf(f, "\n== chat-bench scenario %c ==\n", r->scenario);
	fprintf(f, "%-34s %u (+%u churning) in %u worker process(es)\n",
	        "connections", r->conns, r->churn_conns, r->workers);
	fprintf(f, "%-34s %u\n", "channels", r->channels);
	if (r->edges > 1 || r->server_pids > 1 || r->backend_pids)
		fprintf(f,
		        "%-34s %u edge(s); server figures summed over %u "
		        "process(es), backing servers over %u\n",
		        "fleet", r->edges, r->server_pids, r->backend_pids);
	fprintf(f, "%-34s %.1f s\n", "setup (users, channels)", r->setup_s);
	fprintf(f,
	        "%-34s %u ready, %u failed, %u retries in %.2f s "
	        "(%.0f sessions/s)\n",
	        "connect", r->connected, r->connect_failed, r->retries,
	        r->connect_s, r->connect_per_s);
	fprintf(f,
	        "%-34s %.1f s after connecting, %llu pushes (presence, "
	        "member events)%s\n",
	        "server quiet again", r->settle_s,
	        (unsigned long long)r->settle_pushes,
	        r->settle_timeout ? " - NOT quiet, gave up waiting" : "");
	if (r->connect_why[0])
		fprintf(f, "%-34s %s\n", "first connect failure",
		        r->connect_why);
	fprintf(f,
	        "%-34s %llu KiB before connecting, %llu KiB connected "
	        "(peak %llu KiB)\n",
	        "server RSS", (unsigned long long)r->rss_base_kib,
	        (unsigned long long)r->rss_conn_kib,
	        (unsigned long long)r->hwm_kib);
	fprintf(f,
	        "%-34s %.2f KiB RSS, %.2f KiB kernel TCP buffers, "
	        "%.2f KiB slab (both socket ends)\n",
	        "memory per session", r->rss_kib_per_conn, r->tcp_kib_per_conn,
	        r->slab_kib_per_conn);
	if (r->scenario == 'A')
		fprintf(f, "%-34s %llu\n", "sessions held at the end",
		        (unsigned long long)r->held_end);
	if (r->nsteps) {
		fprintf(f,
		        "\nsteps (%s, window %d s after %d s warm-up, "
		        "body %u bytes):\n",
		        r->ramp ? "ramp" : "fixed rate",
		        r->duration_s - r->warmup_s, r->warmup_s, r->body_size);
		for (int i = 0; i < r->nsteps; i++)
			bench_report_step(f, r, &r->steps[i]);
		if (r->noise_retries)
			fprintf(f,
			        "  (%d step(s) ran again: other processes "
			        "took the CPU meanwhile)\n",
			        r->noise_retries);
	}
	if (h) {
		fprintf(f, "\n%s%s\n",
		        r->ramp ? "highest rate that held" : "result",
		        r->ramp && r->best < 0 ? ": none (last step shown)"
		                               : "");
		if (r->ramp && r->ramp_stop[0])
			fprintf(f, "  %-32s %s\n", "the ramp stopped because",
			        r->ramp_stop);
		fprintf(f, "  %-32s %llu\n", "connections held",
		        (unsigned long long)h->held);
		fprintf(f, "  %-32s %.0f/s asked, %.0f/s sent\n", "sends",
		        h->rate, h->sent_per_s);
		fprintf(f, "  %-32s %.0f/s\n", "deliveries",
		        h->delivered_per_s);
		fprintf(
		    f,
		    "  %-32s %llu (errors %llu, rate-limited %llu, "
		    "unanswered %llu, gaps %llu, closed %llu, not sent %llu)\n",
		    "loss", (unsigned long long)h->loss,
		    (unsigned long long)h->errors,
		    (unsigned long long)h->rate_limited,
		    (unsigned long long)h->unanswered,
		    (unsigned long long)h->gaps,
		    (unsigned long long)h->unexpected_closes,
		    (unsigned long long)h->not_ready);
		if (h->first_close[0])
			fprintf(f, "  %-32s %s\n", "first session lost",
			        h->first_close);
		fprintf(f,
		        "  %-32s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
		        "max %.3f ms (%llu samples)\n",
		        "latency", h->p50, h->p90, h->p99, h->p999, h->max,
		        (unsigned long long)h->lat_count);
		fprintf(f,
		        "  %-32s to the edge %.1f/%.1f, to the store "
		        "%.1f/%.1f, to the client %.1f/%.1f ms (p50/p99)\n",
		        "where it went (server stamps)", h->st_p50[0],
		        h->st_p99[0], h->st_p50[1], h->st_p99[1], h->st_p50[2],
		        h->st_p99[2]);
		fprintf(f, "  %-32s %.2f us/msg (%.0f %% of a core)\n",
		        "server CPU", h->server_cpu_us, h->server_cpu_pct);
		if (r->backend_pids)
			fprintf(f, "  %-32s %.2f us/msg (%.0f %% of a core)\n",
			        "backing servers' CPU", h->backend_cpu_us,
			        h->backend_cpu_pct);
		fprintf(f, "  %-32s %.2f us/msg (%.0f %% of a core)\n",
		        "bench CPU", h->bench_cpu_us, h->bench_cpu_pct);
		fprintf(f, "  %-32s %.0f %% of a core (should be near 0)\n",
		        "other processes", h->other_cpu_pct);
		fprintf(f, "  %-32s %.2f KiB (RSS %llu KiB)\n",
		        "server RSS per connection", h->rss_kib_per_conn,
		        (unsigned long long)h->rss_kib);
		fprintf(f, "  %-32s %.2f ms (worst send lateness %.2f ms)\n",
		        "drain", h->drain_s * 1000, h->send_lag_max_ms);
		if (r->scenario == 'D')
			fprintf(f,
			        "  %-32s p50 %.3f  p99 %.3f  max %.3f ms over "
			        "%llu messages (%llu incomplete)\n",
			        "all members had it after", h->d_all_p50,
			        h->d_all_p99, h->d_all_max,
			        (unsigned long long)h->d_msgs,
			        (unsigned long long)h->d_incomplete);
		if (r->scenario == 'E')
			fprintf(f,
			        "  %-32s %.0f connects/s, %.0f disconnects/s, "
			        "%llu failed, %llu busy\n",
			        "churn", h->churn_connects_per_s,
			        h->churn_disconnects_per_s,
			        (unsigned long long)h->churn_failed,
			        (unsigned long long)h->churn_busy);
	}
	if (r->error[0])
		fprintf(f, "\nERROR: %s\n", r->error);
	fprintf(f, "\n%s\n", r->ok ? "OK" : "NOT OK");
}

static void json_step(FILE *f, const bench_step *s, const bench_result *r)
{
	char scenario = r->scenario;

	fprintf(
	    f,
	    "\"rate\":%.1f,\"sent_per_s\":%.1f,\"delivered_per_s\":%.1f,"
	    "\"sent\":%llu,\"delivered\":%llu,\"loss\":%llu,\"errors\":%llu,"
	    "\"rate_limited\":%llu,\"unanswered\":%llu,\"gaps\":%llu,"
	    "\"unexpected_closes\":%llu,\"connections_held\":%llu,"
	    "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
	    "\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f,\"count\":%llu},"
	    "\"server_cpu_us_per_msg\":%.3f,\"bench_cpu_us_per_msg\":%.3f,"
	    "\"server_cpu_pct\":%.1f,\"bench_cpu_pct\":%.1f,\"other_cpu_pct\":%"
	    ".1f,"
	    "\"server_rss_kib\":%llu,\"server_rss_kib_per_conn\":%.3f,"
	    "\"drain_s\":%.3f,\"send_lag_max_ms\":%.3f,\"held\":%s",
	    fin(s->rate), fin(s->sent_per_s), fin(s->delivered_per_s),
	    (unsigned long long)s->sent, (unsigned long long)s->delivered,
	    (unsigned long long)s->loss, (unsigned long long)s->errors,
	    (unsigned long long)s->rate_limited,
	    (unsigned long long)s->unanswered, (unsigned long long)s->gaps,
	    (unsigned long long)s->unexpected_closes,
	    (unsigned long long)s->held, fin(s->p50), fin(s->p90), fin(s->p99),
	    fin(s->p999), fin(s->max), fin(s->mean),
	    (unsigned long long)s->lat_count, fin(s->server_cpu_us),
	    fin(s->bench_cpu_us), fin(s->server_cpu_pct), fin(s->bench_cpu_pct),
	    fin(s->other_cpu_pct), (unsigned long long)s->rss_kib,
	    fin(s->rss_kib_per_conn), fin(s->drain_s), fin(s->send_lag_max_ms),
	    s->ok ? "true" : "false");
	{
		char q[400];
		if (chat_json_quote(s->first_close, q, sizeof q) < 0)
			strcpy(q, "\"\"");
		fprintf(f, ",\"not_ready\":%llu,\"first_close\":%s",
		        (unsigned long long)s->not_ready, q);
	}
	/* null, not 0, when the backing servers were not measured */
	if (r->backend_pids)
		fprintf(f,
		        ",\"backend_cpu_us_per_msg\":%.3f,"
		        "\"backend_cpu_pct\":%.1f",
		        fin(s->backend_cpu_us), fin(s->backend_cpu_pct));
	else
		fputs(",\"backend_cpu_us_per_msg\":null,"
		      "\"backend_cpu_pct\":null",
		      f);
	fprintf(f,
	        ",\"stages_ms\":{\"to_edge\":{\"p50\":%.3f,\"p99\":%.3f,"
	        "\"mean\":%.3f},\"to_store\":{\"p50\":%.3f,\"p99\":%.3f,"
	        "\"mean\":%.3f},\"to_client\":{\"p50\":%.3f,\"p99\":%.3f,"
	        "\"mean\":%.3f}}",
	        fin(s->st_p50[0]), fin(s->st_p99[0]), fin(s->st_mean[0]),
	        fin(s->st_p50[1]), fin(s->st_p99[1]), fin(s->st_mean[1]),
	        fin(s->st_p50[2]), fin(s->st_p99[2]), fin(s->st_mean[2]));
	if (scenario == 'D')
		fprintf(f,
		        ",\"all_delivered_ms\":{\"p50\":%.3f,\"p99\":%.3f,"
		        "\"max\":%.3f,\"messages\":%llu,\"incomplete\":%llu}",
		        fin(s->d_all_p50), fin(s->d_all_p99), fin(s->d_all_max),
		        (unsigned long long)s->d_msgs,
		        (unsigned long long)s->d_incomplete);
	if (scenario == 'E')
		fprintf(
		    f,
		    ",\"churn\":{\"connects_per_s\":%.1f,"
		    "\"disconnects_per_s\":%.1f,\"failed\":%llu,\"busy\":%llu}",
		    fin(s->churn_connects_per_s),
		    fin(s->churn_disconnects_per_s),
		    (unsigned long long)s->churn_failed,
		    (unsigned long long)s->churn_busy);
}

void bench_report_json(FILE *f, const bench_result *r)
{
	const bench_step *h = headline(r);
	char err[1100];

	if (chat_json_quote(r->error, err, sizeof err) < 0)
		strcpy(err, "\"(unprintable)\"");
	fprintf(
	    f,
	    "{\"bench\":\"chat-bench\",\"version\":1,\"scenario\":\"%c\","
	    "\"ok\":%s,\"error\":%s,\"conns\":%u,\"churn_conns\":%u,"
	    "\"channels\":%u,\"workers\":%u,\"body_bytes\":%u,"
	    "\"duration_s\":%d,\"warmup_s\":%d,\"setup_s\":%.2f,"
	    "\"connected\":%u,\"connect_failed\":%u,\"connect_s\":%.3f,"
	    "\"connect_per_s\":%.1f,\"settle_s\":%.2f,\"settle_pushes\":%llu,"
	    "\"settle_timeout\":%s,\"server_rss_base_kib\":%llu,"
	    "\"server_rss_connected_kib\":%llu,\"server_rss_peak_kib\":%llu,"
	    "\"rss_kib_per_conn\":%.3f,\"tcp_kib_per_conn\":%.3f,"
	    "\"slab_kib_per_conn\":%.3f,\"edges\":%u,\"server_pids\":%u,"
	    "\"backend_pids\":%u",
	    r->scenario, r->ok ? "true" : "false", err, r->conns,
	    r->churn_conns, r->channels, r->workers, r->body_size,
	    r->duration_s, r->warmup_s, fin(r->setup_s), r->connected,
	    r->connect_failed, fin(r->connect_s), fin(r->connect_per_s),
	    fin(r->settle_s), (unsigned long long)r->settle_pushes,
	    r->settle_timeout ? "true" : "false",
	    (unsigned long long)r->rss_base_kib,
	    (unsigned long long)r->rss_conn_kib, (unsigned long long)r->hwm_kib,
	    fin(r->rss_kib_per_conn), fin(r->tcp_kib_per_conn),
	    fin(r->slab_kib_per_conn), r->edges, r->server_pids,
	    r->backend_pids);
	if (r->scenario == 'A')
		fprintf(f, ",\"connections_held\":%llu,\"loss\":0",
		        (unsigned long long)r->held_end);
	if (h) {
		fputc(',', f);
		json_step(f, h, r);
		fprintf(f, ",\"ramp\":%s,\"p99_limit_ms\":%.1f",
		        r->ramp ? "true" : "false", fin(r->p99_limit_ms));
		fprintf(f, ",\"noise_retries\":%d", r->noise_retries);
		if (r->ramp) {
			char q[600];
			if (chat_json_quote(r->ramp_stop, q, sizeof q) < 0)
				strcpy(q, "\"\"");
			fprintf(f, ",\"ramp_stop\":%s", q);
			if (r->best >= 0)
				fprintf(f, ",\"max_rate_held\":%.1f",
				        fin(r->steps[r->best].rate));
			else
				fprintf(f, ",\"max_rate_held\":null");
		}
		fprintf(f, ",\"steps\":[");
		for (int i = 0; i < r->nsteps; i++) {
			fputs(i ? ",{" : "{", f);
			json_step(f, &r->steps[i], r);
			fputc('}', f);
		}
		fputc(']', f);
	} else if (r->scenario != 'A') {
		fprintf(f, ",\"loss\":null");
	}
	fputs("}\n", f);
}
