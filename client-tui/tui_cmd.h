/* chat-tui's command line: "/create \"team chat\" bob carol", "/join 5",
 * plain text, ... parsed into a struct, independent of curses. */
#ifndef TUI_CMD_H
#define TUI_CMD_H

#include <stdint.h>

#define TUI_CMD_MAX_ARGS 64

enum tui_cmd_kind {
	TUI_CMD_NONE = 0, /* an empty line */
	TUI_CMD_ERROR,    /* err says why */
	TUI_CMD_TEXT,     /* text to send to the current channel */
	TUI_CMD_CREATE,   /* argv[0] = name, argv[1..] = members */
	TUI_CMD_JOIN,     /* id */
	TUI_CMD_LEAVE,    /* id (has_id 0: the current channel) */
	TUI_CMD_READ,     /* id (has_id 0: the current channel) */
	TUI_CMD_STATUS,   /* status (Chat__Status) */
	TUI_CMD_DM,       /* argv[0] = user */
	TUI_CMD_WHO,
	TUI_CMD_SWITCH,   /* id */
	TUI_CMD_HELP,
	TUI_CMD_QUIT,
};

typedef struct tui_cmd {
	int kind;
	int argc;
	char *argv[TUI_CMD_MAX_ARGS]; /* malloc'ed */
	char *text;       /* TEXT: malloc'ed */
	uint64_t id;
	int has_id;
	int status;
	char err[160];
} tui_cmd;

/* Parse one input line (UTF-8). Words are separated by spaces; double
 * quotes group words ("team chat"), with \" and \\ inside. A line not
 * starting with '/' is TEXT; "//x" sends "/x"; "/msg TEXT" sends TEXT.
 * Returns out->kind; free with tui_cmd_fini. */
int tui_cmd_parse(const char *line, tui_cmd *out);

/* Frees what tui_cmd_parse allocated. Accepts NULL. */
void tui_cmd_fini(tui_cmd *c);

/* The help text, one command per line. */
extern const char *const tui_cmd_help[];

#endif
