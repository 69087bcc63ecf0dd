/* Parsing of chat-tui command lines. */
#include "tui_cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tui_cmd_help[] = {
    "/create NAME [user ...]   create a channel (quote names with spaces)",
    "/join ID                  join a channel",
    "/leave [ID]               leave a channel",
    "/read [ID]                open a channel and mark it read",
    "/msg TEXT or plain text   send to the current channel",
    "/status online|away|busy|offline",
    "/dm USER                  open the direct channel with USER",
    "/who                      the current channel's members",
    "/switch ID, Tab, alt-left/right   change channel",
    "PgUp/PgDn scroll (older history loads at the top), /help, /quit",
    NULL,
};

void tui_cmd_fini(tui_cmd *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->argc; i++)
		free(c->argv[i]);
	c->argc = 0;
	free(c->text);
	c->text = NULL;
}

static int fail(tui_cmd *c, const char *msg)
{
	snprintf(c->err, sizeof c->err, "%s", msg);
	c->kind = TUI_CMD_ERROR;
	return c->kind;
}

/* Split s into words. Returns 0 or -1 (err set). */
static int split(tui_cmd *c, const char *s)
{
	size_t n = strlen(s);
	char *w = malloc(n + 1);
	if (!w)
		return fail(c, "out of memory"), -1;
	while (*s) {
		size_t o = 0;
		int quoted = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		while (*s && (quoted || (*s != ' ' && *s != '\t'))) {
			if (*s == '"') {
				quoted = !quoted;
				s++;
			} else if (quoted && *s == '\\' &&
			           (s[1] == '"' || s[1] == '\\')) {
				w[o++] = s[1];
				s += 2;
			} else {
				w[o++] = *s++;
			}
		}
		if (quoted) {
			free(w);
			return fail(c, "unterminated quote"), -1;
		}
		if (c->argc >= TUI_CMD_MAX_ARGS) {
			free(w);
			return fail(c, "too many arguments"), -1;
		}
		c->argv[c->argc] = malloc(o + 1);
		if (!c->argv[c->argc]) {
			free(w);
			return fail(c, "out of memory"), -1;
		}
		memcpy(c->argv[c->argc], w, o);
		c->argv[c->argc][o] = '\0';
		c->argc++;
	}
	free(w);
	return 0;
}

static int parse_id(const char *s, uint64_t *id)
{
	uint64_t v = 0;
	if (*s == '#')
		s++;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s) || v > UINT64_MAX / 10 - 1)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v == 0)
		return -1;
	*id = v;
	return 0;
}

/* Optional or required channel id in argv[1]. */
static int want_id(tui_cmd *c, int required, const char *usage)
{
	if (c->argc < 2) {
		if (required)
			return fail(c, usage);
		return c->kind;
	}
	if (c->argc > 2)
		return fail(c, usage);
	if (parse_id(c->argv[1], &c->id) != 0) {
		char m[160];
		snprintf(m, sizeof m, "not a channel id: '%.40s' (%s)",
		         c->argv[1], usage);
		return fail(c, m);
	}
	c->has_id = 1;
	return c->kind;
}

static int set_text(tui_cmd *c, const char *s)
{
	c->text = strdup(s);
	if (!c->text)
		return fail(c, "out of memory");
	return c->kind;
}

int tui_cmd_parse(const char *line, tui_cmd *c)
{
	const char *name;

	memset(c, 0, sizeof *c);
	while (*line == ' ' || *line == '\t')
		line++;
	if (!*line)
		return c->kind = TUI_CMD_NONE;
	if (line[0] != '/') {
		c->kind = TUI_CMD_TEXT;
		return set_text(c, line);
	}
	if (line[1] == '/') {
		c->kind = TUI_CMD_TEXT;
		return set_text(c, line + 1);
	}
	if (strncmp(line, "/msg", 4) == 0 &&
	    (line[4] == ' ' || line[4] == '\0')) {
		const char *t = line + 4;
		while (*t == ' ')
			t++;
		if (!*t)
			return fail(c, "usage: /msg TEXT");
		c->kind = TUI_CMD_TEXT;
		return set_text(c, t);
	}
	if (split(c, line) != 0)
		return c->kind;
	name = c->argv[0] + 1;
	if (strcmp(name, "create") == 0) {
		c->kind = TUI_CMD_CREATE;
		if (c->argc < 2 || !c->argv[1][0])
			return fail(c, "usage: /create NAME [user ...]");
		/* argv[0] becomes the name */
		free(c->argv[0]);
		memmove(c->argv, c->argv + 1, (size_t)(c->argc - 1) *
		                                  sizeof(char *));
		c->argc--;
		return c->kind;
	}
	if (strcmp(name, "join") == 0) {
		c->kind = TUI_CMD_JOIN;
		return want_id(c, 1, "usage: /join ID");
	}
	if (strcmp(name, "leave") == 0 || strcmp(name, "part") == 0) {
		c->kind = TUI_CMD_LEAVE;
		return want_id(c, 0, "usage: /leave [ID]");
	}
	if (strcmp(name, "read") == 0) {
		c->kind = TUI_CMD_READ;
		return want_id(c, 0, "usage: /read [ID]");
	}
	if (strcmp(name, "switch") == 0 || strcmp(name, "sw") == 0) {
		c->kind = TUI_CMD_SWITCH;
		return want_id(c, 1, "usage: /switch ID");
	}
	if (strcmp(name, "status") == 0) {
		static const char *const names[] = {"offline", "online", "away",
		                                    "busy"};
		c->kind = TUI_CMD_STATUS;
		if (c->argc != 2)
			return fail(c, "usage: /status "
			                "online|away|busy|offline");
		for (int i = 0; i < 4; i++) {
			if (strcmp(c->argv[1], names[i]) == 0) {
				c->status = i;
				return c->kind;
			}
		}
		return fail(c, "usage: /status online|away|busy|offline");
	}
	if (strcmp(name, "dm") == 0) {
		c->kind = TUI_CMD_DM;
		if (c->argc != 2 || !c->argv[1][0])
			return fail(c, "usage: /dm USER");
		free(c->argv[0]);
		c->argv[0] = c->argv[1];
		c->argc = 1;
		return c->kind;
	}
	if (strcmp(name, "who") == 0) {
		c->kind = TUI_CMD_WHO;
		return c->kind;
	}
	if (strcmp(name, "help") == 0 || strcmp(name, "h") == 0 ||
	    strcmp(name, "?") == 0) {
		c->kind = TUI_CMD_HELP;
		return c->kind;
	}
	if (strcmp(name, "quit") == 0 || strcmp(name, "exit") == 0 ||
	    strcmp(name, "q") == 0) {
		c->kind = TUI_CMD_QUIT;
		return c->kind;
	}
	{
		char m[160];
		snprintf(m, sizeof m, "unknown command /%.40s (try /help)",
		         name);
		return fail(c, m);
	}
}
