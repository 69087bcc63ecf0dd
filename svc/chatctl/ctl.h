/* chatctl, the admin CLI: its private interface, split so that argument
 * parsing, output formatting and the RPC fan-out can be tested apart.
 *
 * Flow of one run (ctl_run): parse the command line (ctl_args_parse),
 * find the instances to talk to (ctl_targets: ZooKeeper's
 * /chat/services/<service>/ or the --rpc URLs), call them in parallel
 * (ctl_call_all, one thread and one RPC client per instance, each call
 * bounded by --timeout-ms), then print a table or one JSON document
 * (ctl_print_*). Exit codes: CTL_EXIT_OK, CTL_EXIT_FAIL (some instance
 * failed or was unreachable, or nothing was found; the rest is still
 * printed), CTL_EXIT_USAGE. */
#ifndef CTL_H
#define CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "chat_arena.h"
#include "chat_discovery.h"
#include "chat_rpc.h"
#include "rpc.pb-c.h"
#include "store.pb-c.h"

#define CTL_EXIT_OK    0
#define CTL_EXIT_FAIL  1
#define CTL_EXIT_USAGE 2

#define CTL_TIMEOUT_DEFAULT 2000 /* ms per call */
#define CTL_TIMEOUT_MAX     600000
#define CTL_RPC_MAX         16   /* --rpc given several times */
#define CTL_REASON_MAX      512  /* --reason bytes */
#define CTL_LIMIT_MAX       1000 /* channels --limit */

typedef enum ctl_cmd {
	CTL_CMD_NONE = 0,
	CTL_CMD_HEALTH,
	CTL_CMD_COUNTERS,
	CTL_CMD_CHANNELS,
	CTL_CMD_MEMBERS,
	CTL_CMD_KICK,
	CTL_CMD_DRAIN,
} ctl_cmd;

/* The services an instance may register as, in display order. */
extern const char *const ctl_services[];
extern const size_t ctl_n_services;

/* The parsed command line. Strings point into argv or the environment. */
typedef struct ctl_args {
	ctl_cmd cmd;
	int help, version; /* print and exit 0 */
	int json, verbose;
	const char *zk;               /* ZooKeeper hosts ("" = none) */
	const char *rpc[CTL_RPC_MAX]; /* --rpc URLs: used instead of zk */
	size_t n_rpc;
	int timeout_ms;
	const char *service; /* health/counters: only this service, or NULL */
	uint64_t after;      /* channels --after */
	uint32_t limit;      /* channels --limit (0: the store's default) */
	int all;             /* channels --all: every page */
	uint64_t channel;    /* members CHANNEL */
	uint64_t user_id;    /* kick USER_ID */
	const char *edge_id; /* drain EDGE_ID */
	uint32_t per_second; /* drain --per-second (0: all at once) */
	const char *reason;  /* kick/drain --reason ("" = the edge's) */
} ctl_args;

/* An environment lookup (getenv, or a stub in tests). */
typedef const char *(*ctl_getenv_fn)(const char *name);

/* Parse argv[1..argc) into *a. Options may come before or after the
 * command, as --name VALUE or --name=VALUE; "--" ends them. CHAT_ZK (via
 * env, NULL = getenv) gives --zk's default; --rpc wins over CHAT_ZK, both
 * flags at once are refused. Returns 0, or -1 with a message in err (a
 * usage error: exit CTL_EXIT_USAGE). With --help or --version it returns
 * 0 with a->help / a->version set and nothing else checked. */
int ctl_args_parse(ctl_args *a, int argc, char **argv, ctl_getenv_fn env,
                   char *err, size_t errlen);

/* The help text. */
void ctl_usage(FILE *f);

/* ---- instances and calls ---- */

/* One instance and what became of the call to it. */
typedef struct ctl_inst {
	/* known before the call (from its znode, or the --rpc URL) */
	char service[CHAT_DISC_SERVICE_MAX]; /* "" when not known yet */
	char id[CHAT_DISC_ID_MAX];           /* "" when not known yet */
	char node[CHAT_DISC_ID_MAX + 16];    /* znode name, "" for --rpc */
	char rpc[CHAT_URL_MAX];
	char version[32];
	int64_t load, pid; /* from the znode; 0 unknown */
	/* the outcome */
	int called;       /* a call was made */
	int status;       /* its chat_status */
	char reason[256]; /* when status != CHAT_OK */
	int64_t uptime_ms;
	size_t n_counters;
	Chat__Counter **counters; /* in arena */
	uint32_t sessions;        /* Kick / Drain */
	chat_arena *arena;        /* this instance's replies */
} ctl_inst;

/* "ok", "unreachable" (UNAVAILABLE, DEADLINE_EXCEEDED), "unimplemented",
 * or the lower-case status name ("not_found"). */
const char *ctl_status_word(int status);

/* Free what the instances hold, then the array. Accepts NULL. */
void ctl_insts_free(ctl_inst *v, size_t n);

/* The instances to call: with a->n_rpc, one per --rpc URL (service and id
 * unknown: Health tells); otherwise every instance of the services in
 * services[0..n_services) registered in ZooKeeper (a->zk), in that order,
 * each sorted by id. Waits up to a->timeout_ms for ZooKeeper. Returns 0
 * with *out (free with ctl_insts_free; may be empty), or -1 with err
 * (ZooKeeper unreachable, out of memory). */
int ctl_targets(const ctl_args *a, const char *const *services,
                size_t n_services, ctl_inst **out, size_t *n, char *err,
                size_t errlen);

/* Make one call on an instance: fill in->status and the outcome. c is a
 * client of in->rpc; in->arena holds the reply. */
typedef void (*ctl_call_fn)(ctl_inst *in, chat_rpc_client *c,
                            const ctl_args *a);

/* Call fn on every instance, in parallel, each with its own client and
 * arena. Returns 0, or -1 when out of memory (the instances left are
 * marked failed). */
int ctl_call_all(ctl_inst *v, size_t n, ctl_call_fn fn, const ctl_args *a);

/* The calls (ctl_call_fn): chat.Admin/Health (fills service, id, version,
 * uptime and counters from the reply), chat.Edge/Kick and chat.Edge/Drain
 * (fill sessions). */
void ctl_call_health(ctl_inst *in, chat_rpc_client *c, const ctl_args *a);
void ctl_call_kick(ctl_inst *in, chat_rpc_client *c, const ctl_args *a);
void ctl_call_drain(ctl_inst *in, chat_rpc_client *c, const ctl_args *a);

/* ---- output ---- */

/* A text table: columns padded to their widest cell (UTF-8 aware),
 * numeric columns right-aligned, control characters shown as '?'. */
typedef struct ctl_table ctl_table;

/* A table with ncols (<= 8) headings; right_mask bit i right-aligns column
 * i. NULL when out of memory. */
ctl_table *ctl_table_new(size_t ncols, const char *const *heads,
                         unsigned right_mask);
/* Append a row of ncols cells (copied; NULL prints as "-"). 0 or -1. */
int ctl_table_add(ctl_table *t, const char *const *cells);
void ctl_table_print(const ctl_table *t, FILE *f);
void ctl_table_free(ctl_table *t);

/* A JSON writer on a FILE: compact, one document; members get commas by
 * themselves. key is the member name inside an object, NULL inside an
 * array or at the top. Strings are escaped; invalid UTF-8 becomes
 * U+FFFD, so the output is always valid JSON. */
#define CTL_JSON_DEPTH 16
typedef struct ctl_json {
	FILE *f;
	int depth;
	int first[CTL_JSON_DEPTH];
} ctl_json;

void ctl_json_init(ctl_json *j, FILE *f);
void ctl_json_obj(ctl_json *j, const char *key);
void ctl_json_obj_end(ctl_json *j);
void ctl_json_arr(ctl_json *j, const char *key);
void ctl_json_arr_end(ctl_json *j);
void ctl_json_str(ctl_json *j, const char *key, const char *s);
void ctl_json_int(ctl_json *j, const char *key, int64_t v);
void ctl_json_uint(ctl_json *j, const char *key, uint64_t v);
void ctl_json_bool(ctl_json *j, const char *key, int v);
/* Ends the document with a newline. */
void ctl_json_end(ctl_json *j);

/* Durations and times as shown in tables: "850ms", "12s", "5m07s",
 * "1h02m03s", "3d04h05m"; "2025-01-02 03:04:05Z" (UTC). */
void ctl_fmt_duration(char *out, size_t len, int64_t ms);
void ctl_fmt_time(char *out, size_t len, int64_t ms);

/* The reports. error (NULL when none) is a failure of the whole command
 * (ZooKeeper unreachable, no instance), and so is a failed call of
 * channels, members or drain: a table run prints nothing for it (the
 * caller says it on stderr), a JSON run includes it ("error", and
 * "status" where the document has one). A failed instance among several
 * (health, counters, kick) is a row of the report. Each returns the exit
 * code the result calls for. */
int ctl_print_health(FILE *f, int json, const ctl_inst *v, size_t n,
                     const char *error);
int ctl_print_counters(FILE *f, int json, const ctl_inst *v, size_t n,
                       const char *error);
int ctl_print_kick(FILE *f, int json, uint64_t user_id, const ctl_inst *v,
                   size_t n, const char *error);
int ctl_print_drain(FILE *f, int json, const char *edge_id, uint32_t per_second,
                    const ctl_inst *e, const char *error);
/* st is the store's answer (store names the store(s) asked); on CHAT_OK
 * the channels (all pages gathered) and whether more exist. */
int ctl_print_channels(FILE *f, int json, const ctl_inst *st,
                       Chat__AdminChannel *const *ch, size_t n, int more);
int ctl_print_members(FILE *f, int json, uint64_t channel, const ctl_inst *st,
                      const Chat__UserList *l);

/* ---- the program ---- */

/* Run chatctl with argv, writing the report to out and messages to err.
 * Returns the exit code. */
int ctl_run(int argc, char **argv, FILE *out, FILE *err);

#endif
