/* chatctl's command line: options anywhere, one command and its
 * operands, every value checked with a message that names the flag. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

const char *const ctl_services[] = {"edge", "api", "store", "dispatcher",
                                    "presence"};
const size_t ctl_n_services = sizeof ctl_services / sizeof ctl_services[0];

enum opt_id {
	O_HELP,
	O_VERSION,
	O_JSON,
	O_VERBOSE,
	O_ZK,
	O_RPC,
	O_TIMEOUT,
	O_AFTER,
	O_LIMIT,
	O_ALL,
	O_REASON,
	O_PER_SECOND,
};

#define ANY_CMD    0xffu
#define CMD_BIT(c) (1u << (c))

static const struct opt {
	const char *name;
	int id;
	int takes_value;
	unsigned cmds; /* the commands it applies to */
} opts[] = {
    {"help", O_HELP, 0, ANY_CMD},
    {"version", O_VERSION, 0, ANY_CMD},
    {"json", O_JSON, 0, ANY_CMD},
    {"verbose", O_VERBOSE, 0, ANY_CMD},
    {"zk", O_ZK, 1, ANY_CMD},
    {"rpc", O_RPC, 1, ANY_CMD},
    {"timeout-ms", O_TIMEOUT, 1, ANY_CMD},
    {"after", O_AFTER, 1, CMD_BIT(CTL_CMD_CHANNELS)},
    {"limit", O_LIMIT, 1, CMD_BIT(CTL_CMD_CHANNELS)},
    {"all", O_ALL, 0, CMD_BIT(CTL_CMD_CHANNELS)},
    {"reason", O_REASON, 1, CMD_BIT(CTL_CMD_KICK) | CMD_BIT(CTL_CMD_DRAIN)},
    {"per-second", O_PER_SECOND, 1, CMD_BIT(CTL_CMD_DRAIN)},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static const struct cmd {
	const char *name;
	ctl_cmd cmd;
	int min_args, max_args;
	const char *operands; /* for messages */
} cmds[] = {
    {"health", CTL_CMD_HEALTH, 0, 1, "[SERVICE]"},
    {"counters", CTL_CMD_COUNTERS, 0, 1, "[SERVICE]"},
    {"channels", CTL_CMD_CHANNELS, 0, 0, ""},
    {"members", CTL_CMD_MEMBERS, 1, 1, "CHANNEL"},
    {"kick", CTL_CMD_KICK, 1, 1, "USER_ID"},
    {"drain", CTL_CMD_DRAIN, 1, 1, "EDGE_ID"},
};
#define N_CMDS (sizeof cmds / sizeof cmds[0])

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* A decimal number in [min, max] with nothing else around it. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!s || !*s)
		return -1;
	for (const char *p = s; *p; p++) {
		unsigned d;
		if (*p < '0' || *p > '9')
			return -1;
		d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static const struct opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strlen(opts[i].name) == len &&
		    !strncmp(opts[i].name, name, len))
			return &opts[i];
	return NULL;
}

static int is_service(const char *s)
{
	for (size_t i = 0; i < ctl_n_services; i++)
		if (!strcmp(s, ctl_services[i]))
			return 1;
	return 0;
}

/* Apply one option's value. */
static int set_opt(ctl_args *a, const struct opt *o, const char *v,
                   int *zk_flag, char *err, size_t errlen)
{
	uint64_t n;
	switch (o->id) {
	case O_HELP:
		a->help = 1;
		return 0;
	case O_VERSION:
		a->version = 1;
		return 0;
	case O_JSON:
		a->json = 1;
		return 0;
	case O_VERBOSE:
		a->verbose = 1;
		return 0;
	case O_ALL:
		a->all = 1;
		return 0;
	case O_ZK:
		if (!*v || strlen(v) >= 256)
			return fail(err, errlen,
			            "--zk: give ZooKeeper hosts as "
			            "HOST:PORT[,HOST:PORT...]");
		a->zk = v;
		*zk_flag = 1;
		return 0;
	case O_RPC:
		if (strncmp(v, "tcp://", 6) && strncmp(v, "ipc://", 6) &&
		    strncmp(v, "inproc://", 9))
			return fail(err, errlen,
			            "--rpc: '%s' is not an nng URL "
			            "(tcp://HOST:PORT, ipc://PATH)",
			            v);
		if (strlen(v) >= CHAT_URL_MAX)
			return fail(err, errlen, "--rpc: URL too long");
		if (a->n_rpc == CTL_RPC_MAX)
			return fail(err, errlen, "--rpc: at most %d URLs",
			            CTL_RPC_MAX);
		a->rpc[a->n_rpc++] = v;
		return 0;
	case O_TIMEOUT:
		if (parse_u64(v, 1, CTL_TIMEOUT_MAX, &n))
			return fail(err, errlen,
			            "--timeout-ms: '%s' is not a number of "
			            "milliseconds in [1, %d]",
			            v, CTL_TIMEOUT_MAX);
		a->timeout_ms = (int)n;
		return 0;
	case O_AFTER:
		if (parse_u64(v, 0, INT64_MAX, &n))
			return fail(err, errlen,
			            "--after: '%s' is not a channel id", v);
		a->after = n;
		return 0;
	case O_LIMIT:
		if (parse_u64(v, 1, CTL_LIMIT_MAX, &n))
			return fail(err, errlen,
			            "--limit: '%s' is not a number in [1, %d]",
			            v, CTL_LIMIT_MAX);
		a->limit = (uint32_t)n;
		return 0;
	case O_REASON:
		if (strlen(v) > CTL_REASON_MAX)
			return fail(err, errlen,
			            "--reason: longer than %d bytes",
			            CTL_REASON_MAX);
		a->reason = v;
		return 0;
	case O_PER_SECOND:
		if (parse_u64(v, 0, 1000000, &n))
			return fail(err, errlen,
			            "--per-second: '%s' is not a number in "
			            "[0, 1000000]",
			            v);
		a->per_second = (uint32_t)n;
		return 0;
	}
	return fail(err, errlen, "internal: option %s", o->name);
}

/* The command's operands. */
static int set_operands(ctl_args *a, const struct cmd *c, char **pos,
                        size_t npos, char *err, size_t errlen)
{
	uint64_t n;
	if ((int)npos < c->min_args || (int)npos > c->max_args) {
		if (npos > (size_t)c->max_args)
			return fail(err, errlen,
			            "%s: unexpected argument '%s' (usage: "
			            "chatctl %s %s)",
			            c->name, pos[c->max_args], c->name,
			            c->operands);
		return fail(err, errlen,
		            "%s: missing %s (usage: chatctl %s %s)", c->name,
		            c->operands, c->name, c->operands);
	}
	switch (c->cmd) {
	case CTL_CMD_HEALTH:
	case CTL_CMD_COUNTERS:
		if (npos && !is_service(pos[0]))
			return fail(err, errlen,
			            "%s: unknown service '%s' (one of edge, "
			            "api, store, dispatcher, presence)",
			            c->name, pos[0]);
		a->service = npos ? pos[0] : NULL;
		return 0;
	case CTL_CMD_MEMBERS:
		if (parse_u64(pos[0], 1, INT64_MAX, &n))
			return fail(err, errlen,
			            "members: '%s' is not a channel id",
			            pos[0]);
		a->channel = n;
		return 0;
	case CTL_CMD_KICK:
		if (parse_u64(pos[0], 1, INT64_MAX, &n))
			return fail(err, errlen, "kick: '%s' is not a user id",
			            pos[0]);
		a->user_id = n;
		return 0;
	case CTL_CMD_DRAIN:
		if (!*pos[0] || strlen(pos[0]) >= CHAT_DISC_ID_MAX)
			return fail(err, errlen,
			            "drain: '%s' is not an instance id",
			            pos[0]);
		a->edge_id = pos[0];
		return 0;
	default:
		return 0;
	}
}

static const char *env_default(const char *name)
{
	return getenv(name);
}

int ctl_args_parse(ctl_args *a, int argc, char **argv, ctl_getenv_fn env,
                   char *err, size_t errlen)
{
	char *pos[8];
	size_t npos = 0;
	unsigned seen = 0; /* bit per opt index given */
	const struct cmd *cmd = NULL;
	int zk_flag = 0, dashdash = 0;

	memset(a, 0, sizeof *a);
	a->timeout_ms = CTL_TIMEOUT_DEFAULT;
	a->reason = "";
	if (!env)
		env = env_default;

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const struct opt *o;
		const char *eq, *v = NULL;
		size_t len;

		if (dashdash || s[0] != '-' || !s[1]) {
			if (npos == sizeof pos / sizeof pos[0])
				return fail(err, errlen, "too many arguments");
			pos[npos++] = argv[i];
			continue;
		}
		if (!strcmp(s, "--")) {
			dashdash = 1;
			continue;
		}
		if (!strcmp(s, "-h"))
			s = "--help";
		else if (!strcmp(s, "-v"))
			s = "--verbose";
		if (s[1] != '-')
			return fail(err, errlen,
			            "unknown option '%s' (see chatctl --help)",
			            s);
		s += 2;
		eq = strchr(s, '=');
		len = eq ? (size_t)(eq - s) : strlen(s);
		if (!(o = find_opt(s, len)))
			return fail(err, errlen,
			            "unknown option '--%.*s' (see chatctl "
			            "--help)",
			            (int)len, s);
		if (o->takes_value) {
			if (eq)
				v = eq + 1;
			else if (i + 1 < argc)
				v = argv[++i];
			else
				return fail(err, errlen, "--%s needs a value",
				            o->name);
		} else if (eq) {
			return fail(err, errlen, "--%s takes no value",
			            o->name);
		}
		if (o->id != O_RPC && (seen & (1u << (o - opts))) &&
		    o->takes_value)
			return fail(err, errlen, "--%s given twice", o->name);
		seen |= 1u << (o - opts);
		if (set_opt(a, o, v, &zk_flag, err, errlen))
			return -1;
	}
	if (a->help || a->version)
		return 0;
	if (npos == 0)
		return fail(err, errlen,
		            "no command given (health, counters, channels, "
		            "members, kick, drain; see chatctl --help)");
	if (!strcmp(pos[0], "help")) {
		a->help = 1;
		return 0;
	}
	for (size_t i = 0; i < N_CMDS; i++)
		if (!strcmp(pos[0], cmds[i].name))
			cmd = &cmds[i];
	if (!cmd)
		return fail(err, errlen,
		            "unknown command '%s' (health, counters, channels, "
		            "members, kick, drain)",
		            pos[0]);
	a->cmd = cmd->cmd;
	for (size_t i = 0; i < N_OPTS; i++)
		if ((seen & (1u << i)) && !(opts[i].cmds & CMD_BIT(a->cmd)))
			return fail(err, errlen, "--%s does not apply to %s",
			            opts[i].name, cmd->name);
	if (set_operands(a, cmd, pos + 1, npos - 1, err, errlen))
		return -1;

	/* The target: --rpc, else --zk, else CHAT_ZK. */
	if (a->n_rpc && zk_flag)
		return fail(err, errlen, "give --zk or --rpc, not both");
	if (a->n_rpc) {
		a->zk = "";
	} else if (!zk_flag) {
		const char *e = env("CHAT_ZK");
		a->zk = e ? e : "";
		if (strlen(a->zk) >= 256)
			return fail(err, errlen, "CHAT_ZK: too long");
	}
	if (!a->n_rpc && !*a->zk)
		return fail(err, errlen,
		            "no target: give --zk HOSTS (or set CHAT_ZK) to "
		            "reach every instance, or --rpc URL for one");
	return 0;
}

void ctl_usage(FILE *f)
{
	fputs("usage: chatctl [options] COMMAND [ARGS]\n"
	      "The chat fleet's admin tool: talks to the services over their "
	      "nng RPC\naddresses, found in ZooKeeper (--zk) or given "
	      "directly (--rpc).\n"
	      "\n"
	      "commands:\n"
	      "  health [SERVICE]        every instance: service, id, rpc "
	      "URL, version,\n"
	      "                          uptime, ok or unreachable "
	      "(chat.Admin/Health)\n"
	      "  counters [SERVICE]      each instance's counters, and their "
	      "sums per service\n"
	      "  channels [--after ID] [--limit N] [--all]\n"
	      "                          channels by id with kind, last seq "
	      "and member count\n"
	      "                          (one page of N, default 100; --all: "
	      "every page)\n"
	      "  members CHANNEL         the members of a channel\n"
	      "  kick USER_ID [--reason TEXT]\n"
	      "                          close every session of a user, on "
	      "every edge\n"
	      "  drain EDGE_ID [--per-second N] [--reason TEXT]\n"
	      "                          stop an edge taking sessions and "
	      "move its clients to\n"
	      "                          the other edges (N closed per "
	      "second; 0 = all at once)\n"
	      "SERVICE is one of edge, api, store, dispatcher, presence.\n"
	      "\n"
	      "options:\n"
	      "  --zk HOSTS              ZooKeeper (HOST:PORT[,...]); default "
	      "$CHAT_ZK\n"
	      "  --rpc URL               one instance directly "
	      "(tcp://HOST:PORT), instead of\n"
	      "                          ZooKeeper; may be given several "
	      "times\n"
	      "  --timeout-ms N          per call and for ZooKeeper (default "
	      "2000)\n"
	      "  --json                  one JSON document on stdout, for "
	      "scripts\n"
	      "  -v, --verbose           log what happens on stderr\n"
	      "  -h, --help              this text\n"
	      "  --version               the version\n"
	      "\n"
	      "exit status: 0 ok, 1 some instance failed or was unreachable "
	      "(the rest is\nstill printed) or nothing was found, 2 usage "
	      "error.\n",
	      f);
}
