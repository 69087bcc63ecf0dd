/* The input line of chat-tui: a wide-character editor with a history,
 * independent of curses so it can be tested alone. */
#ifndef TUI_INPUT_H
#define TUI_INPUT_H

#include <stddef.h>
#include <wchar.h>

#define TUI_INPUT_MAX 4000   /* characters in the line */
#define TUI_HISTORY_MAX 200  /* lines remembered */

typedef struct tui_input {
	wchar_t buf[TUI_INPUT_MAX + 1];
	size_t len;
	size_t cur;            /* cursor position, 0..len */
	char *hist[TUI_HISTORY_MAX];
	size_t n_hist;
	size_t hist_pos;       /* n_hist when not browsing */
	wchar_t saved[TUI_INPUT_MAX + 1]; /* the line being typed before
	                                   * browsing the history */
	size_t saved_len;
} tui_input;

/* An empty editor. */
void tui_input_init(tui_input *in);
/* Frees the history. Accepts NULL. */
void tui_input_fini(tui_input *in);

/* Editing. Each returns 1 when the line or cursor changed, else 0. */
int tui_input_insert(tui_input *in, wchar_t ch);
int tui_input_backspace(tui_input *in);
int tui_input_delete(tui_input *in);
int tui_input_left(tui_input *in);
int tui_input_right(tui_input *in);
int tui_input_home(tui_input *in);
int tui_input_end(tui_input *in);
int tui_input_kill_line(tui_input *in);   /* ctrl-u: delete before cursor */
int tui_input_kill_word(tui_input *in);   /* ctrl-w: the word before */
int tui_input_history_prev(tui_input *in); /* up */
int tui_input_history_next(tui_input *in); /* down */

/* Set the line from UTF-8 text (invalid bytes become U+FFFD). */
void tui_input_set(tui_input *in, const char *utf8);

/* The line as malloc'ed UTF-8 (NULL when out of memory). */
char *tui_input_text(const tui_input *in);

/* Take the line: returns it as malloc'ed UTF-8, adds it to the history
 * (when not empty and not a repeat of the last one), and clears the
 * line. */
char *tui_input_take(tui_input *in);

/* UTF-8 <-> wide conversion independent of the locale. utf8_to_wide
 * writes at most outlen-1 characters and a NUL, returns the count;
 * invalid sequences become U+FFFD. wide_to_utf8 returns a malloc'ed
 * string. */
size_t tui_utf8_to_wide(const char *s, size_t len, wchar_t *out,
                        size_t outlen);
char *tui_wide_to_utf8(const wchar_t *w, size_t n);

#endif
