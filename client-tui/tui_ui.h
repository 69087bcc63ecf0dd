/* chat-tui's screen: the state the UI keeps besides the chatc session, and
 * the ncurses drawing of it. */
#ifndef TUI_UI_H
#define TUI_UI_H

#include <stdint.h>
#include <stdio.h>

#include "chatc.h"
#include "tui_input.h"

/* A line of the UI's own in a channel's pane (joins, who, help, ...),
 * shown after the message with seq after_seq. */
typedef struct tui_sysline {
	uint64_t channel;
	uint64_t after_seq;
	int64_t time_ms;
	char *text;
} tui_sysline;

typedef struct tui_typing {
	uint64_t channel;
	char name[64];
	int64_t until_ms;
} tui_typing;

#define TUI_MAX_TYPING 16
#define TUI_MAX_SYSLINES 2000

typedef struct tui {
	chatc *c;
	tui_input in;
	uint64_t cur;           /* the channel shown; 0 = none */
	int scroll;             /* rows scrolled up from the newest */
	int at_top;             /* the last draw showed the oldest held */
	tui_sysline *sys;
	size_t n_sys;
	tui_typing typing[TUI_MAX_TYPING];
	int n_typing;
	char last_error[256];
	uint64_t switch_req[8]; /* requests whose channel reply we switch
	                         * to (create, dm, join) */
	int64_t read_due_ms;    /* debounced auto mark-read */
	uint64_t read_due_chan;
	int64_t last_typing_ms;
	int dirty;
	int quit;
	FILE *log;
	int curses_on;
} tui;

/* Add a line of text to a channel's pane (0: the pane shown when no
 * channel is open). */
void tui_sys(tui *t, uint64_t channel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Free the UI's lines. */
void tui_ui_fini(tui *t);

/* Start and stop curses (locale, colours, raw keys). */
int tui_ui_start(tui *t);
void tui_ui_stop(tui *t);

/* Redraw everything. */
void tui_draw(tui *t);

/* Rows in the message pane (for PgUp/PgDn). */
int tui_pane_rows(void);

#endif
