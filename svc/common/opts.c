#include "chat_opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"

static int set(const chat_opt *o, const char *v, const char *src, char *err,
               size_t errlen)
{
	char *end;
	long n;
	switch (o->type) {
	case CHAT_OPT_STR:
		*(const char **)o->ptr = v ? v : "";
		return 0;
	case CHAT_OPT_BOOL:
		if (!v || !strcmp(v, "1") || !strcmp(v, "true") ||
		    !strcmp(v, "yes") || !strcmp(v, "on")) {
			*(int *)o->ptr = 1;
			return 0;
		}
		if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") ||
		    !strcmp(v, "off")) {
			*(int *)o->ptr = 0;
			return 0;
		}
		snprintf(err, errlen, "%s --%s: '%s' is not a boolean", src,
		         o->name, v);
		return -1;
	case CHAT_OPT_INT:
		if (!v || !*v) {
			*(int *)o->ptr = 0;
			return 0;
		}
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno || *end || n < o->min || n > o->max) {
			snprintf(err, errlen,
			         "%s --%s: '%s' is not an integer in [%ld, %ld]",
			         src, o->name, v, o->min, o->max);
			return -1;
		}
		*(int *)o->ptr = (int)n;
		return 0;
	}
	return -1;
}

void chat_opts_usage(FILE *f, const chat_opt *opts, const char *prog,
                     const char *summary)
{
	fprintf(f, "usage: %s [options]\n%s\n\noptions:\n", prog, summary);
	for (const chat_opt *o = opts; o->name; o++) {
		char lhs[64];
		snprintf(lhs, sizeof lhs, "--%s%s", o->name,
		         o->type == CHAT_OPT_BOOL ? "" : " VALUE");
		fprintf(f, "  %-26s %s", lhs, o->help ? o->help : "");
		if (o->def && *o->def)
			fprintf(f, " (default %s)", o->def);
		if (o->env)
			fprintf(f, " [env %s]", o->env);
		fputc('\n', f);
	}
	fprintf(f, "  %-26s %s\n  %-26s %s\n", "--help", "show this help",
	        "--version", "print the version");
}

int chat_opts_parse(const chat_opt *opts, int argc, char **argv,
                    const char *summary, char *err, size_t errlen)
{
	for (const chat_opt *o = opts; o->name; o++) {
		const char *e = o->env ? getenv(o->env) : NULL;
		if (set(o, o->def, "default", err, errlen))
			return -1;
		if (e && set(o, e, o->env, err, errlen))
			return -1;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL, *eq;
		const chat_opt *o;
		size_t nl;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			chat_opts_usage(stdout, opts, argv[0], summary);
			return 1;
		}
		if (!strcmp(a, "--version")) {
			printf("%s %s\n", argv[0], CHAT_VERSION);
			return 1;
		}
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument '%s'", a);
			return -1;
		}
		a += 2;
		eq = strchr(a, '=');
		nl = eq ? (size_t)(eq - a) : strlen(a);
		for (o = opts; o->name; o++)
			if (strlen(o->name) == nl && !strncmp(o->name, a, nl))
				break;
		if (!o->name) {
			snprintf(err, errlen, "unknown option '--%.*s' (see --help)",
			         (int)nl, a);
			return -1;
		}
		if (eq)
			v = eq + 1;
		else if (o->type != CHAT_OPT_BOOL) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "option --%s needs a value",
				         o->name);
				return -1;
			}
			v = argv[++i];
		}
		if (set(o, v, "flag", err, errlen))
			return -1;
	}
	return 0;
}

void chat_opts_log(const chat_opt *opts, const char *svc)
{
	for (const chat_opt *o = opts; o->name; o++) {
		if (o->type == CHAT_OPT_STR)
			chat_debug(svc, "config", "%s=\"%s\"", o->name,
			           *(const char **)o->ptr);
		else
			chat_debug(svc, "config", "%s=%d", o->name, *(int *)o->ptr);
	}
}
