/* fleet_harness: fleet.env look-ups and fleet.sh control for C tests. */
#include "fleet_harness.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Copies s into out when it fits (with its NUL); 0 or -1. */
static int copy_out(const char *s, size_t n, char *out, size_t outlen)
{
	if (n >= outlen)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int fleet_env(const char *name, char *out, size_t outlen)
{
	const char *dir = getenv("CHAT_FLEET_DIR"), *v;
	size_t nlen = name ? strlen(name) : 0;
	char path[4096], line[4096];
	int rc = -1, found = 0;
	FILE *f;

	if (nlen == 0 || !out || outlen == 0)
		return -1;
	if (dir && *dir &&
	    snprintf(path, sizeof(path), "%s/fleet.env", dir) <
	        (int)sizeof(path) &&
	    (f = fopen(path, "r")) != NULL) {
		while (!found && fgets(line, sizeof(line), f)) {
			size_t len = strlen(line);

			while (len > 0 &&
			       (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			if (len > nlen && strncmp(line, name, nlen) == 0 &&
			    line[nlen] == '=') {
				found = 1;
				rc = copy_out(line + nlen + 1, len - nlen - 1,
				              out, outlen);
			}
		}
		fclose(f);
		if (found)
			return rc;
	}
	v = getenv(name);
	if (!v)
		return -1;
	return copy_out(v, strlen(v), out, outlen);
}

int fleet_ctl(const char *verb, const char *name)
{
	const char *ctl = getenv("CHAT_FLEET_CTL");
	char *argv[5];
	pid_t pid;
	int status;

	if (!ctl || !*ctl || !verb || !name)
		return -1;
	if (strcmp(verb, "stop") != 0 && strcmp(verb, "start") != 0 &&
	    strcmp(verb, "restart") != 0 && strcmp(verb, "kill") != 0 &&
	    strcmp(verb, "add") != 0)
		return -1;
	argv[0] = (char *)"sh";
	argv[1] = (char *)ctl;
	argv[2] = (char *)verb;
	argv[3] = (char *)name;
	argv[4] = NULL;
	fflush(NULL);
	if (posix_spawnp(&pid, "sh", NULL, NULL, argv, environ) != 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
