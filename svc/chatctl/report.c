/* chatctl's reports: each command's result as a table or as one JSON
 * document, and the exit code it calls for. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chat_status.h"
#include "ctl.h"

const char *ctl_status_word(int status)
{
	static const char *const words[] = {
	    "ok",
	    "cancelled",
	    "unknown",
	    "invalid_argument",
	    "unreachable", /* DEADLINE_EXCEEDED */
	    "not_found",
	    "already_exists",
	    "permission_denied",
	    "resource_exhausted",
	    "failed_precondition",
	    "aborted",
	    "out_of_range",
	    "unimplemented",
	    "internal",
	    "unreachable", /* UNAVAILABLE */
	    "data_loss",
	    "unauthenticated",
	};
	if (status < 0 || (size_t)status >= sizeof words / sizeof words[0])
		return "unknown";
	return words[status];
}

static int ok(const ctl_inst *in)
{
	return in->called && in->status == CHAT_OK;
}

/* "unreachable (reason)" for a failed instance. */
static void status_cell(char *out, size_t len, const ctl_inst *in)
{
	if (ok(in))
		snprintf(out, len, "ok");
	else if (in->reason[0])
		snprintf(out, len, "%s (%s)", ctl_status_word(in->status),
		         in->reason);
	else
		snprintf(out, len, "%s", ctl_status_word(in->status));
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

/* The members every instance report shares. */
static void json_inst(ctl_json *j, const ctl_inst *in)
{
	ctl_json_str(j, "service", in->service);
	ctl_json_str(j, "id", in->id);
	if (in->node[0])
		ctl_json_str(j, "node", in->node);
	ctl_json_str(j, "rpc", in->rpc);
	ctl_json_str(j, "status", ctl_status_word(ok(in) ? 0 : in->status));
	if (!ok(in))
		ctl_json_str(j, "error",
		             in->reason[0] ? in->reason
		                           : chat_strerror(in->status));
}

static void json_error(ctl_json *j, const char *error)
{
	if (error)
		ctl_json_str(j, "error", error);
}

static size_t count_ok(const ctl_inst *v, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ok(&v[i]) ? 1 : 0;
	return k;
}

static int exit_code(size_t n, size_t n_ok, const char *error)
{
	return error || n == 0 || n_ok < n ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

/* ---- health ---- */

int ctl_print_health(FILE *f, int json, const ctl_inst *v, size_t n,
                     const char *error)
{
	static const char *const heads[] = {"SERVICE", "ID",     "RPC",
	                                    "VERSION", "UPTIME", "STATUS"};
	size_t n_ok = count_ok(v, n);
	ctl_table *t;

	if (json) {
		ctl_json j;
		ctl_json_init(&j, f);
		ctl_json_obj(&j, NULL);
		ctl_json_arr(&j, "instances");
		for (size_t i = 0; i < n; i++) {
			ctl_json_obj(&j, NULL);
			json_inst(&j, &v[i]);
			ctl_json_str(&j, "version", v[i].version);
			if (ok(&v[i]))
				ctl_json_int(&j, "uptime_ms", v[i].uptime_ms);
			if (v[i].node[0]) {
				ctl_json_int(&j, "load", v[i].load);
				ctl_json_int(&j, "pid", v[i].pid);
			}
			ctl_json_obj_end(&j);
		}
		ctl_json_arr_end(&j);
		ctl_json_uint(&j, "total", n);
		ctl_json_uint(&j, "ok", n_ok);
		ctl_json_uint(&j, "failed", n - n_ok);
		json_error(&j, error);
		ctl_json_obj_end(&j);
		ctl_json_end(&j);
		return exit_code(n, n_ok, error);
	}
	if (error)
		return CTL_EXIT_FAIL;
	if (!(t = ctl_table_new(6, heads, 0)))
		return CTL_EXIT_FAIL;
	for (size_t i = 0; i < n; i++) {
		char up[32], st[320];
		const char *row[6];
		ctl_fmt_duration(up, sizeof up, v[i].uptime_ms);
		status_cell(st, sizeof st, &v[i]);
		row[0] = or_dash(v[i].service);
		row[1] = or_dash(v[i].id);
		row[2] = v[i].rpc;
		row[3] = or_dash(v[i].version);
		row[4] = ok(&v[i]) ? up : "-";
		row[5] = st;
		ctl_table_add(t, row);
	}
	ctl_table_print(t, f);
	ctl_table_free(t);
	fprintf(f, "%zu instance%s: %zu ok, %zu failed\n", n, n == 1 ? "" : "s",
	        n_ok, n - n_ok);
	return exit_code(n, n_ok, error);
}

/* ---- counters ---- */

/* The sum of each counter over the instances that answered, in order of
 * first appearance. */
struct sums {
	const char **name;
	int64_t *value;
	size_t n;
};

static int sums_add(struct sums *s, const char *name, int64_t v)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->name[i], name)) {
			s->value[i] += v;
			return 0;
		}
	{
		const char **nn = realloc(s->name, (s->n + 1) * sizeof *nn);
		int64_t *nv;
		if (!nn)
			return -1;
		s->name = nn;
		if (!(nv = realloc(s->value, (s->n + 1) * sizeof *nv)))
			return -1;
		s->value = nv;
	}
	s->name[s->n] = name;
	s->value[s->n++] = v;
	return 0;
}

static void sums_free(struct sums *s)
{
	free(s->name);
	free(s->value);
	memset(s, 0, sizeof *s);
}

/* The services present in v: those of ctl_services in that order, then
 * any other ("" = not known: an --rpc instance that did not answer) in
 * order of appearance. out has room for n. */
static size_t service_groups(const ctl_inst *v, size_t n, const char **out)
{
	size_t k = 0;
	for (size_t s = 0; s < ctl_n_services; s++)
		for (size_t i = 0; i < n; i++)
			if (!strcmp(v[i].service, ctl_services[s])) {
				out[k++] = ctl_services[s];
				break;
			}
	for (size_t i = 0; i < n; i++) {
		int seen = 0;
		for (size_t q = 0; q < k && !seen; q++)
			seen = !strcmp(out[q], v[i].service);
		if (!seen)
			out[k++] = v[i].service;
	}
	return k;
}

static void counters_json(FILE *f, const ctl_inst *v, size_t n,
                          const char **groups, size_t ng, const char *error)
{
	size_t n_ok = count_ok(v, n);
	ctl_json j;

	ctl_json_init(&j, f);
	ctl_json_obj(&j, NULL);
	ctl_json_arr(&j, "services");
	for (size_t g = 0; g < ng; g++) {
		struct sums sum = {0};
		ctl_json_obj(&j, NULL);
		ctl_json_str(&j, "service", groups[g]);
		ctl_json_arr(&j, "instances");
		for (size_t i = 0; i < n; i++) {
			if (strcmp(v[i].service, groups[g]))
				continue;
			ctl_json_obj(&j, NULL);
			json_inst(&j, &v[i]);
			if (ok(&v[i])) {
				ctl_json_int(&j, "uptime_ms", v[i].uptime_ms);
				ctl_json_obj(&j, "counters");
				for (size_t c = 0; c < v[i].n_counters; c++) {
					const Chat__Counter *ct =
					    v[i].counters[c];
					ctl_json_int(&j, ct->name, ct->value);
					sums_add(&sum, ct->name, ct->value);
				}
				ctl_json_obj_end(&j);
			}
			ctl_json_obj_end(&j);
		}
		ctl_json_arr_end(&j);
		ctl_json_obj(&j, "totals");
		for (size_t c = 0; c < sum.n; c++)
			ctl_json_int(&j, sum.name[c], sum.value[c]);
		ctl_json_obj_end(&j);
		ctl_json_obj_end(&j);
		sums_free(&sum);
	}
	ctl_json_arr_end(&j);
	ctl_json_uint(&j, "total", n);
	ctl_json_uint(&j, "ok", n_ok);
	ctl_json_uint(&j, "failed", n - n_ok);
	json_error(&j, error);
	ctl_json_obj_end(&j);
	ctl_json_end(&j);
}

int ctl_print_counters(FILE *f, int json, const ctl_inst *v, size_t n,
                       const char *error)
{
	static const char *const heads[] = {"SERVICE", "INSTANCE", "COUNTER",
	                                    "VALUE"};
	size_t n_ok = count_ok(v, n), ng;
	const char **groups = calloc(n ? n : 1, sizeof *groups);
	ctl_table *t = NULL;

	if (!groups)
		return CTL_EXIT_FAIL;
	ng = service_groups(v, n, groups);
	if (json) {
		counters_json(f, v, n, groups, ng, error);
		free(groups);
		return exit_code(n, n_ok, error);
	}
	if (error || !(t = ctl_table_new(4, heads, 1u << 3))) {
		free(groups);
		return CTL_EXIT_FAIL;
	}
	for (size_t g = 0; g < ng; g++) {
		struct sums sum = {0};
		const char *svc = or_dash(groups[g]);
		size_t answered = 0;
		for (size_t i = 0; i < n; i++) {
			char val[32], st[320];
			const char *row[4] = {svc, or_dash(v[i].id), NULL,
			                      NULL};
			if (strcmp(v[i].service, groups[g]))
				continue;
			if (!ok(&v[i])) {
				status_cell(st, sizeof st, &v[i]);
				row[2] = st;
				row[3] = "-";
				ctl_table_add(t, row);
				continue;
			}
			answered++;
			if (!v[i].n_counters) {
				row[2] = "(none)";
				row[3] = "-";
				ctl_table_add(t, row);
			}
			for (size_t c = 0; c < v[i].n_counters; c++) {
				const Chat__Counter *ct = v[i].counters[c];
				snprintf(val, sizeof val, "%" PRId64,
				         ct->value);
				row[2] = ct->name;
				row[3] = val;
				ctl_table_add(t, row);
				sums_add(&sum, ct->name, ct->value);
			}
		}
		/* One instance's total is itself: not repeated. */
		for (size_t c = 0; answered > 1 && c < sum.n; c++) {
			char val[32];
			const char *row[4] = {svc, "(total)", sum.name[c], val};
			snprintf(val, sizeof val, "%" PRId64, sum.value[c]);
			ctl_table_add(t, row);
		}
		sums_free(&sum);
	}
	ctl_table_print(t, f);
	ctl_table_free(t);
	free(groups);
	fprintf(f, "%zu instance%s: %zu ok, %zu failed\n", n, n == 1 ? "" : "s",
	        n_ok, n - n_ok);
	return exit_code(n, n_ok, error);
}

/* ---- kick ---- */

int ctl_print_kick(FILE *f, int json, uint64_t user_id, const ctl_inst *v,
                   size_t n, const char *error)
{
	static const char *const heads[] = {"EDGE", "RPC", "SESSIONS",
	                                    "STATUS"};
	size_t n_ok = count_ok(v, n);
	uint64_t total = 0;
	ctl_table *t;

	for (size_t i = 0; i < n; i++)
		if (ok(&v[i]))
			total += v[i].sessions;
	if (json) {
		ctl_json j;
		ctl_json_init(&j, f);
		ctl_json_obj(&j, NULL);
		ctl_json_uint(&j, "user_id", user_id);
		ctl_json_arr(&j, "edges");
		for (size_t i = 0; i < n; i++) {
			ctl_json_obj(&j, NULL);
			json_inst(&j, &v[i]);
			if (ok(&v[i]))
				ctl_json_uint(&j, "sessions", v[i].sessions);
			ctl_json_obj_end(&j);
		}
		ctl_json_arr_end(&j);
		ctl_json_uint(&j, "sessions", total);
		ctl_json_uint(&j, "total", n);
		ctl_json_uint(&j, "ok", n_ok);
		ctl_json_uint(&j, "failed", n - n_ok);
		json_error(&j, error);
		ctl_json_obj_end(&j);
		ctl_json_end(&j);
		return exit_code(n, n_ok, error);
	}
	if (error || !(t = ctl_table_new(4, heads, 1u << 2)))
		return CTL_EXIT_FAIL;
	for (size_t i = 0; i < n; i++) {
		char num[16], st[320];
		const char *row[4];
		snprintf(num, sizeof num, "%u", v[i].sessions);
		status_cell(st, sizeof st, &v[i]);
		row[0] = or_dash(v[i].id);
		row[1] = v[i].rpc;
		row[2] = ok(&v[i]) ? num : "-";
		row[3] = st;
		ctl_table_add(t, row);
	}
	ctl_table_print(t, f);
	ctl_table_free(t);
	fprintf(f,
	        "user %" PRIu64 ": %" PRIu64 " session%s closed on %zu "
	        "edge%s",
	        user_id, total, total == 1 ? "" : "s", n_ok,
	        n_ok == 1 ? "" : "s");
	if (n_ok < n)
		fprintf(f, "; %zu edge%s failed", n - n_ok,
		        n - n_ok == 1 ? "" : "s");
	fputc('\n', f);
	return exit_code(n, n_ok, error);
}

/* ---- drain ---- */

int ctl_print_drain(FILE *f, int json, const char *edge_id, uint32_t per_second,
                    const ctl_inst *e, const char *error)
{
	int good = !error && e && ok(e);
	if (json) {
		ctl_json j;
		ctl_json_init(&j, f);
		ctl_json_obj(&j, NULL);
		ctl_json_str(&j, "edge", edge_id);
		if (e && e->rpc[0])
			ctl_json_str(&j, "rpc", e->rpc);
		if (error) {
			ctl_json_str(&j, "status", "failed");
			ctl_json_str(&j, "error", error);
		} else {
			ctl_json_str(&j, "status",
			             ctl_status_word(good ? 0 : e->status));
			if (good) {
				ctl_json_uint(&j, "sessions", e->sessions);
				ctl_json_uint(&j, "per_second", per_second);
			} else {
				ctl_json_str(&j, "error",
				             e->reason[0]
				                 ? e->reason
				                 : chat_strerror(e->status));
			}
		}
		ctl_json_obj_end(&j);
		ctl_json_end(&j);
		return good ? CTL_EXIT_OK : CTL_EXIT_FAIL;
	}
	if (!good)
		return CTL_EXIT_FAIL;
	fprintf(f, "%s (%s): draining %u session%s, ", edge_id, e->rpc,
	        e->sessions, e->sessions == 1 ? "" : "s");
	if (per_second)
		fprintf(f, "%u per second\n", per_second);
	else
		fprintf(f, "all at once\n");
	return CTL_EXIT_OK;
}

/* ---- channels and members ---- */

static const char *kind_word(int kind)
{
	return kind == CHAT__CHANNEL_KIND__KIND_DM      ? "dm"
	       : kind == CHAT__CHANNEL_KIND__KIND_GROUP ? "group"
	                                                : "unknown";
}

static void json_store_status(ctl_json *j, const ctl_inst *st)
{
	ctl_json_str(j, "status", ctl_status_word(ok(st) ? 0 : st->status));
	if (!ok(st))
		ctl_json_str(j, "error",
		             st->reason[0] ? st->reason
		                           : chat_strerror(st->status));
}

int ctl_print_channels(FILE *f, int json, const ctl_inst *st,
                       Chat__AdminChannel *const *ch, size_t n, int more)
{
	static const char *const heads[] = {"ID", "KIND", "LAST_SEQ", "MEMBERS",
	                                    "NAME"};
	ctl_table *t;

	if (json) {
		ctl_json j;
		ctl_json_init(&j, f);
		ctl_json_obj(&j, NULL);
		json_store_status(&j, st);
		if (ok(st)) {
			ctl_json_arr(&j, "channels");
			for (size_t i = 0; i < n; i++) {
				ctl_json_obj(&j, NULL);
				ctl_json_uint(&j, "id", ch[i]->id);
				ctl_json_str(&j, "name", ch[i]->name);
				ctl_json_str(&j, "kind",
				             kind_word(ch[i]->kind));
				ctl_json_uint(&j, "last_seq", ch[i]->last_seq);
				ctl_json_uint(&j, "member_count",
				              ch[i]->member_count);
				ctl_json_obj_end(&j);
			}
			ctl_json_arr_end(&j);
			ctl_json_bool(&j, "more", more);
			if (more && n)
				ctl_json_uint(&j, "next_after", ch[n - 1]->id);
		}
		ctl_json_obj_end(&j);
		ctl_json_end(&j);
		return ok(st) ? CTL_EXIT_OK : CTL_EXIT_FAIL;
	}
	if (!ok(st) || !(t = ctl_table_new(5, heads, 0xdu)))
		return CTL_EXIT_FAIL;
	for (size_t i = 0; i < n; i++) {
		char id[24], seq[24], mem[16];
		const char *row[5] = {id, kind_word(ch[i]->kind), seq, mem,
		                      ch[i]->name};
		snprintf(id, sizeof id, "%" PRIu64, ch[i]->id);
		snprintf(seq, sizeof seq, "%" PRIu64, ch[i]->last_seq);
		snprintf(mem, sizeof mem, "%u", ch[i]->member_count);
		ctl_table_add(t, row);
	}
	ctl_table_print(t, f);
	ctl_table_free(t);
	fprintf(f, "%zu channel%s", n, n == 1 ? "" : "s");
	if (more && n)
		fprintf(f, "; more: chatctl channels --after %" PRIu64,
		        ch[n - 1]->id);
	fputc('\n', f);
	return CTL_EXIT_OK;
}

int ctl_print_members(FILE *f, int json, uint64_t channel, const ctl_inst *st,
                      const Chat__UserList *l)
{
	static const char *const heads[] = {"ID", "NAME", "CREATED"};
	size_t n = ok(st) && l ? l->n_users : 0;
	ctl_table *t;

	if (json) {
		ctl_json j;
		ctl_json_init(&j, f);
		ctl_json_obj(&j, NULL);
		ctl_json_uint(&j, "channel", channel);
		json_store_status(&j, st);
		if (ok(st)) {
			ctl_json_arr(&j, "members");
			for (size_t i = 0; i < n; i++) {
				const Chat__User *u = l->users[i];
				ctl_json_obj(&j, NULL);
				ctl_json_uint(&j, "id", u->id);
				ctl_json_str(&j, "name", u->name);
				ctl_json_int(&j, "created_at_ms",
				             u->created_at_ms);
				ctl_json_obj_end(&j);
			}
			ctl_json_arr_end(&j);
		}
		ctl_json_obj_end(&j);
		ctl_json_end(&j);
		return ok(st) ? CTL_EXIT_OK : CTL_EXIT_FAIL;
	}
	if (!ok(st) || !(t = ctl_table_new(3, heads, 1u)))
		return CTL_EXIT_FAIL;
	for (size_t i = 0; i < n; i++) {
		const Chat__User *u = l->users[i];
		char id[24], when[40];
		const char *row[3] = {id, u->name, when};
		snprintf(id, sizeof id, "%" PRIu64, u->id);
		ctl_fmt_time(when, sizeof when, u->created_at_ms);
		ctl_table_add(t, row);
	}
	ctl_table_print(t, f);
	ctl_table_free(t);
	fprintf(f, "channel %" PRIu64 ": %zu member%s\n", channel, n,
	        n == 1 ? "" : "s");
	return CTL_EXIT_OK;
}
