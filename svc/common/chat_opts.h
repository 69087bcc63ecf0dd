/* Configuration as a table: each setting has a flag (--name VALUE or
 * --name=VALUE), an environment variable, a default, and bounds. Flags win
 * over the environment, which wins over the default. Bad values are
 * refused at start with a message naming the setting. */
#ifndef CHAT_OPTS_H
#define CHAT_OPTS_H

#include <stdio.h>

typedef enum chat_opt_type {
	CHAT_OPT_STR,  /* ptr is char ** (points into argv/environ/def) */
	CHAT_OPT_INT,  /* ptr is int * */
	CHAT_OPT_BOOL, /* ptr is int *; flag without a value means 1 */
} chat_opt_type;

typedef struct chat_opt {
	const char *name; /* flag name without dashes; NULL ends the table */
	const char *env;  /* environment variable, or NULL */
	chat_opt_type type;
	void *ptr;
	const char *def;  /* default as text, or NULL (empty string / 0) */
	long min, max;    /* bounds for INT */
	const char *help;
} chat_opt;

/* Parse. Returns 0 on success, 1 when --help or --version was printed
 * (exit 0), -1 with a message in err on a bad flag or value. Leftover
 * arguments are refused. */
int chat_opts_parse(const chat_opt *opts, int argc, char **argv,
                    const char *summary, char *err, size_t errlen);

/* Print usage to f. */
void chat_opts_usage(FILE *f, const chat_opt *opts, const char *prog,
                     const char *summary);

/* Log the effective configuration at debug level. */
void chat_opts_log(const chat_opt *opts, const char *svc);

#endif
