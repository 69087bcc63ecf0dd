/* chatctl's commands: find the targets, call them, print the report. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_status.h"
#include "chat_util.h"
#include "ctl.h"

#define MSG_MAX 768

/* The services a command looks at: one, or every known one. */
static void pick_services(const ctl_args *a, const char *const **svcs,
                          size_t *n)
{
	if (a->service) {
		*svcs = &a->service;
		*n = 1;
	} else {
		*svcs = ctl_services;
		*n = ctl_n_services;
	}
}

/* What to say when nothing was found. */
static void nothing_found(const ctl_args *a, const char *what, char *msg,
                          size_t len)
{
	if (a->n_rpc)
		snprintf(msg, len, "no %s among the --rpc instances", what);
	else
		snprintf(msg, len,
		         "no %s registered in ZooKeeper at %s (under "
		         "%s/)",
		         what, a->zk, CHAT_DISC_ROOT);
}

/* --rpc SERVICE filter: keep the instances that said they are service,
 * and those that did not answer (nobody knows what they are). */
static size_t keep_service(ctl_inst *v, size_t n, const char *service)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].service[0] && strcmp(v[i].service, service)) {
			chat_arena_free(v[i].arena);
			continue;
		}
		v[k++] = v[i];
	}
	return k;
}

/* health and counters: Admin/Health on every instance. */
static int cmd_health(const ctl_args *a, FILE *out, FILE *err)
{
	const char *const *svcs;
	ctl_inst *v = NULL;
	size_t nsvc, n = 0;
	char msg[MSG_MAX];
	const char *error = NULL;
	int rc;

	pick_services(a, &svcs, &nsvc);
	if (ctl_targets(a, svcs, nsvc, &v, &n, msg, sizeof msg)) {
		error = msg;
	} else {
		if (ctl_call_all(v, n, ctl_call_health, a))
			fprintf(err, "chatctl: some calls were not made "
			             "(out of memory)\n");
		if (a->n_rpc && a->service)
			n = keep_service(v, n, a->service);
		if (n == 0) {
			nothing_found(a, a->service ? a->service : "instance",
			              msg, sizeof msg);
			error = msg;
		}
	}
	if (a->cmd == CTL_CMD_COUNTERS)
		rc = ctl_print_counters(out, a->json, v, n, error);
	else
		rc = ctl_print_health(out, a->json, v, n, error);
	if (error)
		fprintf(err, "chatctl: %s\n", error);
	ctl_insts_free(v, n);
	return rc;
}

static int cmd_kick(const ctl_args *a, FILE *out, FILE *err)
{
	static const char *const edge[] = {"edge"};
	ctl_inst *v = NULL;
	size_t n = 0;
	char msg[MSG_MAX];
	const char *error = NULL;
	int rc;

	if (ctl_targets(a, edge, 1, &v, &n, msg, sizeof msg)) {
		error = msg;
	} else if (n == 0) {
		nothing_found(a, "edge", msg, sizeof msg);
		error = msg;
	} else if (ctl_call_all(v, n, ctl_call_kick, a)) {
		fprintf(err, "chatctl: some calls were not made (out of "
		             "memory)\n");
	}
	rc = ctl_print_kick(out, a->json, a->user_id, v, n, error);
	if (error)
		fprintf(err, "chatctl: %s\n", error);
	ctl_insts_free(v, n);
	return rc;
}

/* The ids of v as "a, b (unreachable), c" for a message. */
static void list_ids(const ctl_inst *v, size_t n, char *out, size_t len)
{
	size_t k = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && k + 1 < len; i++) {
		int failed = v[i].called && v[i].status != CHAT_OK;
		int w = snprintf(out + k, len - k, "%s%s%s%s%s", i ? ", " : "",
		                 v[i].id[0] ? v[i].id : v[i].rpc,
		                 failed ? " (" : "",
		                 failed ? ctl_status_word(v[i].status) : "",
		                 failed ? ")" : "");
		if (w < 0)
			break;
		k += (size_t)w;
	}
	if (!n)
		snprintf(out, len, "none");
}

static int cmd_drain(const ctl_args *a, FILE *out, FILE *err)
{
	static const char *const edge[] = {"edge"};
	ctl_inst *v = NULL, *e = NULL;
	size_t n = 0;
	char msg[MSG_MAX], ids[400];
	const char *error = NULL;
	int rc;

	if (ctl_targets(a, edge, 1, &v, &n, msg, sizeof msg)) {
		error = msg;
		goto report;
	}
	/* --rpc: ask each instance who it is; draining the wrong edge is
	 * not something to do by mistake. */
	if (a->n_rpc)
		ctl_call_all(v, n, ctl_call_health, a);
	for (size_t i = 0; i < n && !e; i++)
		if (!strcmp(v[i].id, a->edge_id) &&
		    (!a->n_rpc || v[i].status == CHAT_OK))
			e = &v[i];
	if (!e) {
		list_ids(v, n, ids, sizeof ids);
		if (a->n_rpc)
			snprintf(msg, sizeof msg,
			         "no --rpc instance answered as '%s' "
			         "(answered: %s)",
			         a->edge_id, ids);
		else
			snprintf(msg, sizeof msg,
			         "no edge '%s' registered in ZooKeeper "
			         "(edges: %s)",
			         a->edge_id, ids);
		error = msg;
		goto report;
	}
	if (a->n_rpc && strcmp(e->service, "edge")) {
		snprintf(msg, sizeof msg, "'%s' at %s is a %s, not an edge",
		         a->edge_id, e->rpc, e->service);
		error = msg;
		goto report;
	}
	e->called = 0;
	e->status = CHAT_OK;
	e->reason[0] = '\0';
	if (ctl_call_all(e, 1, ctl_call_drain, a)) {
		snprintf(msg, sizeof msg, "cannot call %s: %s", e->rpc,
		         e->reason);
		error = msg;
	}
report:
	rc = ctl_print_drain(out, a->json, a->edge_id, a->per_second, e, error);
	if (error)
		fprintf(err, "chatctl: drain %s: %s\n", a->edge_id, error);
	else if (e->status != CHAT_OK)
		fprintf(err, "chatctl: drain %s (%s): %s: %s\n", a->edge_id,
		        e->rpc, ctl_status_word(e->status), e->reason);
	ctl_insts_free(v, n);
	return rc;
}

/* A client of the store(s): every registered store (any will do: they
 * share the database) or the --rpc URLs. st describes them for reports;
 * on failure st holds the status and the reason. */
static chat_rpc_client *store_client(const ctl_args *a, ctl_inst *st)
{
	static const char *const store[] = {"store"};
	ctl_inst *v = NULL;
	size_t n = 0, k = 0;
	const char *urls[64];
	chat_rpc_client *c = NULL;
	char msg[MSG_MAX];

	memset(st, 0, sizeof *st);
	st->called = 1;
	chat_strlcpy(st->service, "store", sizeof st->service);
	if (ctl_targets(a, store, 1, &v, &n, msg, sizeof msg)) {
		st->status = CHAT_UNAVAILABLE;
		chat_strlcpy(st->reason, msg, sizeof st->reason);
		return NULL;
	}
	if (n == 0) {
		nothing_found(a, "store", msg, sizeof msg);
		st->status = CHAT_UNAVAILABLE;
		chat_strlcpy(st->reason, msg, sizeof st->reason);
		ctl_insts_free(v, n);
		return NULL;
	}
	for (size_t i = 0; i < n && k < sizeof urls / sizeof urls[0]; i++) {
		size_t used = strlen(st->rpc);
		urls[k++] = v[i].rpc;
		snprintf(st->rpc + used, sizeof st->rpc - used, "%s%s",
		         used ? "," : "", v[i].rpc);
	}
	if (!(c = chat_rpc_client_new(NULL, msg, sizeof msg))) {
		st->status = CHAT_RESOURCE_EXHAUSTED;
		chat_strlcpy(st->reason, msg, sizeof st->reason);
	} else if (chat_rpc_client_set_urls(c, urls, k) && k == 1) {
		st->status = CHAT_INVALID_ARGUMENT;
		snprintf(st->reason, sizeof st->reason, "cannot dial %s",
		         urls[0]);
		chat_rpc_client_free(c);
		c = NULL;
	}
	ctl_insts_free(v, n);
	return c;
}

static void store_failed(FILE *err, const char *what, const ctl_inst *st)
{
	fprintf(err, "chatctl: %s: %s: %s\n", what, ctl_status_word(st->status),
	        st->reason[0] ? st->reason : chat_strerror(st->status));
}

static int cmd_channels(const ctl_args *a, FILE *out, FILE *err)
{
	ctl_inst st;
	chat_rpc_client *c = store_client(a, &st);
	chat_arena *arena = chat_arena_new();
	Chat__AdminChannel **all = NULL;
	size_t n = 0, cap = 0;
	uint64_t after = a->after;
	int more = 0, rc;

	if (c && !arena) {
		st.status = CHAT_RESOURCE_EXHAUSTED;
		chat_strlcpy(st.reason, "out of memory", sizeof st.reason);
	}
	while (c && arena) {
		Chat__AdminChannelsReq req = CHAT__ADMIN_CHANNELS_REQ__INIT;
		Chat__AdminChannelList *l = NULL;
		req.after_id = after;
		req.limit = a->limit;
		st.status = chat_rpc_invoke(
		    c, &chat__store__descriptor, "AdminChannels", &req.base,
		    arena, (ProtobufCMessage **)&l, a->timeout_ms, st.reason,
		    sizeof st.reason);
		if (st.status != CHAT_OK)
			break;
		if (n + l->n_channels > cap) {
			size_t ncap = (n + l->n_channels) * 2;
			Chat__AdminChannel **na =
			    realloc(all, ncap * sizeof *na);
			if (!na) {
				st.status = CHAT_RESOURCE_EXHAUSTED;
				chat_strlcpy(st.reason, "out of memory",
				             sizeof st.reason);
				break;
			}
			all = na;
			cap = ncap;
		}
		for (size_t i = 0; i < l->n_channels; i++)
			all[n++] = l->channels[i];
		more = l->more;
		if (!a->all || !more || !l->n_channels)
			break;
		after = l->channels[l->n_channels - 1]->id;
	}
	rc = ctl_print_channels(out, a->json, &st, all, n, more);
	if (st.status != CHAT_OK)
		store_failed(err, "channels", &st);
	free(all);
	chat_arena_free(arena);
	chat_rpc_client_free(c);
	return rc;
}

static int cmd_members(const ctl_args *a, FILE *out, FILE *err)
{
	ctl_inst st;
	chat_rpc_client *c = store_client(a, &st);
	chat_arena *arena = chat_arena_new();
	Chat__UserList *l = NULL;
	char what[64];
	int rc;

	if (c && !arena) {
		st.status = CHAT_RESOURCE_EXHAUSTED;
		chat_strlcpy(st.reason, "out of memory", sizeof st.reason);
	} else if (c) {
		Chat__AdminMembersReq req = CHAT__ADMIN_MEMBERS_REQ__INIT;
		req.channel_id = a->channel;
		st.status =
		    chat_rpc_invoke(c, &chat__store__descriptor, "AdminMembers",
		                    &req.base, arena, (ProtobufCMessage **)&l,
		                    a->timeout_ms, st.reason, sizeof st.reason);
	}
	rc = ctl_print_members(out, a->json, a->channel, &st, l);
	if (st.status != CHAT_OK) {
		snprintf(what, sizeof what, "members %" PRIu64, a->channel);
		store_failed(err, what, &st);
	}
	chat_arena_free(arena);
	chat_rpc_client_free(c);
	return rc;
}

int ctl_run(int argc, char **argv, FILE *out, FILE *err)
{
	ctl_args a;
	char msg[MSG_MAX];
	int rc = CTL_EXIT_USAGE;

	if (ctl_args_parse(&a, argc, argv, NULL, msg, sizeof msg)) {
		fprintf(err, "chatctl: %s\n", msg);
		return CTL_EXIT_USAGE;
	}
	if (a.help) {
		ctl_usage(out);
		return CTL_EXIT_OK;
	}
	if (a.version) {
		fprintf(out, "chatctl %s\n", CHAT_VERSION);
		return CTL_EXIT_OK;
	}
	chat_log_set_level(a.verbose ? "debug" : "off");
	switch (a.cmd) {
	case CTL_CMD_HEALTH:
	case CTL_CMD_COUNTERS:
		rc = cmd_health(&a, out, err);
		break;
	case CTL_CMD_CHANNELS:
		rc = cmd_channels(&a, out, err);
		break;
	case CTL_CMD_MEMBERS:
		rc = cmd_members(&a, out, err);
		break;
	case CTL_CMD_KICK:
		rc = cmd_kick(&a, out, err);
		break;
	case CTL_CMD_DRAIN:
		rc = cmd_drain(&a, out, err);
		break;
	case CTL_CMD_NONE:
		break;
	}
	fflush(out);
	return rc;
}
