/* Drawing chat-tui with ncursesw: channel list, messages, status, input. */
#include "tui_ui.h"

#include <langinfo.h>
#include <locale.h>
#include <ncursesw/curses.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "chat_util.h"

#define LEFT_MAX 28
#define ROW_MAX 512

enum { PAIR_LIST = 1, PAIR_SYS, PAIR_NAME, PAIR_ME, PAIR_STATUS, PAIR_ERR };

void tui_sys(tui *t, uint64_t channel, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	const chatc_channel *ch = chatc_channel_get(t->c, channel);
	tui_sysline *ns;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (t->log)
		fprintf(t->log, "ui sys channel=%llu %s\n",
		        (unsigned long long)channel, buf);
	if (t->n_sys >= TUI_MAX_SYSLINES) {
		free(t->sys[0].text);
		memmove(t->sys, t->sys + 1, (t->n_sys - 1) * sizeof *t->sys);
		t->n_sys--;
	}
	ns = realloc(t->sys, (t->n_sys + 1) * sizeof *ns);
	if (!ns)
		return;
	t->sys = ns;
	ns[t->n_sys].channel = channel;
	ns[t->n_sys].after_seq = ch ? ch->held_seq : 0;
	ns[t->n_sys].time_ms = chat_now_ms();
	ns[t->n_sys].text = strdup(buf);
	if (ns[t->n_sys].text)
		t->n_sys++;
	t->dirty = 1;
}

void tui_ui_fini(tui *t)
{
	for (size_t i = 0; i < t->n_sys; i++)
		free(t->sys[i].text);
	free(t->sys);
	t->sys = NULL;
	t->n_sys = 0;
}

int tui_ui_start(tui *t)
{
	setlocale(LC_ALL, "");
	if (strcmp(nl_langinfo(CODESET), "UTF-8") != 0)
		setlocale(LC_CTYPE, "C.UTF-8");
	set_escdelay(50);
	if (!initscr())
		return -1;
	raw();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	if (has_colors()) {
		start_color();
		use_default_colors();
		init_pair(PAIR_LIST, COLOR_CYAN, -1);
		init_pair(PAIR_SYS, COLOR_YELLOW, -1);
		init_pair(PAIR_NAME, COLOR_GREEN, -1);
		init_pair(PAIR_ME, COLOR_MAGENTA, -1);
		init_pair(PAIR_STATUS, COLOR_BLACK, COLOR_CYAN);
		init_pair(PAIR_ERR, COLOR_RED, -1);
	}
	t->curses_on = 1;
	t->dirty = 1;
	return 0;
}

void tui_ui_stop(tui *t)
{
	if (!t->curses_on)
		return;
	endwin();
	t->curses_on = 0;
}

static int left_width(void)
{
	int w = COLS / 4;
	if (COLS < 50)
		return 0;
	return w > LEFT_MAX ? LEFT_MAX : w;
}

int tui_pane_rows(void)
{
	int r = LINES - 2;
	return r < 1 ? 1 : r;
}

/* A printable wide character: controls and unprintables become '?'. */
static wchar_t clean(wchar_t ch, int *w)
{
	int cw;
	if (ch == L'\t')
		ch = L' ';
	cw = wcwidth(ch);
	if (ch < 0x20 || (ch >= 0x7f && ch < 0xa0) || cw < 0) {
		*w = 1;
		return L'?';
	}
	*w = cw;
	return ch;
}

/* Write up to maxw columns of UTF-8 s at (y, x). Returns columns used. */
static int put_utf8(int y, int x, int maxw, const char *s)
{
	wchar_t wb[ROW_MAX], out[ROW_MAX];
	size_t n = tui_utf8_to_wide(s, strlen(s), wb, ROW_MAX);
	int used = 0, o = 0;
	for (size_t i = 0; i < n && o < ROW_MAX - 1; i++) {
		int w;
		wchar_t ch = clean(wb[i], &w);
		if (ch == L'\n')
			ch = L' ';
		if (used + w > maxw)
			break;
		out[o++] = ch;
		used += w;
	}
	if (o > 0)
		mvaddnwstr(y, x, out, o);
	return used;
}

static void fmt_time(int64_t ms, char out[8])
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&s, &tm);
	snprintf(out, 8, "%02d:%02d", tm.tm_hour, tm.tm_min);
}

static char presence_mark(int status)
{
	switch (status) {
	case CHAT__STATUS__STATUS_ONLINE:
		return '+';
	case CHAT__STATUS__STATUS_AWAY:
		return '~';
	case CHAT__STATUS__STATUS_BUSY:
		return '!';
	default:
		return '-';
	}
}

static void draw_list(tui *t, int lw)
{
	int rows = tui_pane_rows(), y = 1;
	size_t n = chatc_channel_count(t->c), first = 0;

	attron(A_BOLD);
	put_utf8(0, 0, lw, "Channels");
	attroff(A_BOLD);
	/* Keep the current channel visible. */
	for (size_t i = 0; i < n; i++)
		if (chatc_channel_at(t->c, i)->id == t->cur &&
		    (int)i >= rows - 1)
			first = i - (size_t)(rows - 2);
	for (size_t i = first; i < n && y < rows; i++, y++) {
		const chatc_channel *ch = chatc_channel_at(t->c, i);
		char line[160], un[32] = "";
		int w;
		if (ch->kind == CHAT__CHANNEL_KIND__KIND_DM)
			snprintf(line, sizeof line, "%c%llu @%s %c",
			         ch->id == t->cur ? '>' : ' ',
			         (unsigned long long)ch->id, ch->dm_peer,
			         presence_mark(ch->dm_peer_status));
		else
			snprintf(line, sizeof line, "%c%llu %s",
			         ch->id == t->cur ? '>' : ' ',
			         (unsigned long long)ch->id, ch->name);
		if (ch->unread)
			snprintf(un, sizeof un, " (%llu)",
			         (unsigned long long)ch->unread);
		if (ch->id == t->cur)
			attron(A_REVERSE);
		else if (ch->unread)
			attron(A_BOLD);
		w = (int)strlen(un);
		put_utf8(y, 0, lw - w > 4 ? lw - w : lw, line);
		if (w && lw - w > 4)
			put_utf8(y, lw - w, w, un);
		attroff(A_REVERSE | A_BOLD);
	}
	mvvline(0, lw, ACS_VLINE, rows);
}

/* ---- the message pane ---- */

typedef struct row {
	wchar_t text[ROW_MAX];
	int n;
	int attr; /* colour pair of the prefix */
	int prefix; /* characters drawn with attr */
} row;

typedef struct rows {
	row *r;
	size_t n, cap;
} rows;

/* Wrap one item into rows of width w, appended to out. */
static void wrap(rows *out, const char *prefix, const char *body, int attr,
                 int w)
{
	wchar_t wb[8192];
	size_t np = tui_utf8_to_wide(prefix, strlen(prefix), wb, 8192);
	size_t n = np + tui_utf8_to_wide(body, strlen(body), wb + np,
	                                 8192 - np);
	size_t i = 0;
	int indent = 0;

	if (w < 8)
		w = 8;
	if (w > ROW_MAX - 1)
		w = ROW_MAX - 1;
	do {
		row *r;
		int used = indent;
		size_t start = i, last_space = 0;
		if (out->n == out->cap) {
			size_t nc = out->cap ? out->cap * 2 : 64;
			row *nr = realloc(out->r, nc * sizeof *nr);
			if (!nr)
				return;
			out->r = nr;
			out->cap = nc;
		}
		r = &out->r[out->n++];
		memset(r, 0, sizeof *r);
		for (int k = 0; k < indent; k++)
			r->text[r->n++] = L' ';
		r->attr = start == 0 ? attr : 0;
		r->prefix = start == 0 ? (int)np : 0;
		while (i < n) {
			int cw;
			wchar_t ch;
			if (wb[i] == L'\n') {
				i++;
				break;
			}
			ch = clean(wb[i], &cw);
			if (used + cw > w) {
				/* Break at the last space when there is one. */
				if (last_space > start &&
				    i - last_space < (size_t)w / 2) {
					r->n -= (int)(i - last_space);
					i = last_space;
				}
				break;
			}
			if (ch == L' ')
				last_space = i + 1;
			r->text[r->n++] = ch;
			used += cw;
			i++;
		}
		indent = 6;
	} while (i < n);
}

/* Rows of one message. */
static void msg_rows(rows *out, const chatc_msg *m, uint64_t me, int w)
{
	char prefix[200], tm[8];
	fmt_time(m->stored_at_ms ? m->stored_at_ms : m->sent_at_ms, tm);
	snprintf(prefix, sizeof prefix, "%s %s: ", tm, m->sender_name);
	wrap(out, prefix, m->body, m->sender_id == me ? PAIR_ME : PAIR_NAME, w);
}

static void sys_rows(rows *out, const tui_sysline *sl, int w)
{
	char prefix[32], tm[8];
	fmt_time(sl->time_ms, tm);
	snprintf(prefix, sizeof prefix, "%s -- ", tm);
	wrap(out, prefix, sl->text, PAIR_SYS, w);
}

/* Build the rows of the current channel, newest last: at least need rows
 * when that many exist (older messages are not wrapped at all). */
static void build_rows(tui *t, rows *out, int w, int need)
{
	const chatc_channel *ch = chatc_channel_get(t->c, t->cur);
	uint64_t me = chatc_user_id(t->c);
	size_t nm = ch ? ch->n_msgs : 0, from = nm, s = 0;
	char prefix[200];
	rows scratch = {0};
	int have = 0;

	/* Find the oldest message needed. */
	while (from > 0 && have < need) {
		scratch.n = 0;
		msg_rows(&scratch, &ch->msgs[from - 1], me, w);
		have += (int)scratch.n;
		from--;
	}
	free(scratch.r);
	/* System lines before the first message shown. */
	for (; s < t->n_sys; s++) {
		const tui_sysline *sl = &t->sys[s];
		if (sl->channel != t->cur)
			continue;
		if (from < nm && sl->after_seq >= ch->msgs[from].seq)
			break;
		if (from == 0 || from == nm)
			sys_rows(out, sl, w);
	}
	for (size_t i = from; i < nm; i++) {
		const chatc_msg *m = &ch->msgs[i];
		uint64_t next = i + 1 < nm ? ch->msgs[i + 1].seq : UINT64_MAX;
		msg_rows(out, m, me, w);
		for (; s < t->n_sys; s++) {
			const tui_sysline *sl = &t->sys[s];
			if (sl->channel != t->cur)
				continue;
			if (sl->after_seq >= next)
				break;
			sys_rows(out, sl, w);
		}
	}
	/* Read receipts under the last message. */
	if (ch && nm) {
		char line[512] = "";
		size_t len = 0;
		uint64_t last = ch->msgs[nm - 1].seq;
		for (size_t r = 0; r < ch->n_readers; r++) {
			const chatc_reader *rd = &ch->readers[r];
			if (rd->user_id == me || rd->seq < last)
				continue;
			len += (size_t)snprintf(line + len, sizeof line - len,
			                        "%s%s", len ? ", " : "",
			                        rd->name);
			if (len >= sizeof line - 1)
				break;
		}
		if (line[0])
			wrap(out, "      read by ", line, PAIR_SYS, w);
	}
	/* My messages on their way. */
	for (size_t p = 0; p < chatc_pending_count(t->c); p++) {
		const chatc_pending *pd = chatc_pending_at(t->c, p);
		if (pd->channel_id != t->cur)
			continue;
		snprintf(prefix, sizeof prefix, "      %s (%s): ",
		         chatc_user_name(t->c), pd->acked ? "sent" : "sending");
		wrap(out, prefix, pd->body, PAIR_ME, w);
	}
}

static void draw_pane(tui *t, int x, int w)
{
	int h = tui_pane_rows();
	rows rs = {0};
	size_t start, end;
	const chatc_channel *ch = chatc_channel_get(t->c, t->cur);

	build_rows(t, &rs, w, h + t->scroll);
	if (t->scroll > 0 && (size_t)t->scroll + (size_t)h > rs.n)
		t->scroll = rs.n > (size_t)h ? (int)(rs.n - (size_t)h) : 0;
	end = rs.n - (size_t)t->scroll;
	start = end > (size_t)h ? end - (size_t)h : 0;
	t->at_top = start == 0;
	if (start == 0 && ch && ch->more_before) {
		attron(COLOR_PAIR(PAIR_SYS));
		put_utf8(0, x, w, "-- older messages: PgUp --");
		attroff(COLOR_PAIR(PAIR_SYS));
	}
	for (size_t i = start; i < end; i++) {
		const row *r = &rs.r[i];
		int y = (int)(h - (int)(end - i));
		if (ch && ch->more_before && y == 0 && start == 0)
			continue;
		if (r->prefix > 0 && r->attr) {
			attron(COLOR_PAIR(r->attr));
			mvaddnwstr(y, x, r->text, r->prefix < r->n ? r->prefix
			                                           : r->n);
			attroff(COLOR_PAIR(r->attr));
			if (r->n > r->prefix)
				addnwstr(r->text + r->prefix, r->n - r->prefix);
		} else if (r->n > 0) {
			mvaddnwstr(y, x, r->text, r->n);
		}
	}
	free(rs.r);
}

static void draw_status(tui *t)
{
	char line[1024], who[256] = "";
	const chatc_channel *ch = chatc_channel_get(t->c, t->cur);
	int st = chatc_state(t->c), y = LINES - 2;
	int64_t now = chat_now_ms();
	size_t len;

	if (st == CHATC_WAITING)
		len = (size_t)snprintf(line, sizeof line,
		                       "[reconnecting in %llds]",
		                       (long long)(chatc_reconnect_in_ms(t->c) +
		                                   999) / 1000);
	else
		len = (size_t)snprintf(line, sizeof line, "[%s]",
		                       chatc_state_name(st));
	len += (size_t)snprintf(line + len, sizeof line - len, " %s (%s)",
	                        chatc_user_name(t->c),
	                        chatc_status_name(chatc_my_status(t->c)));
	if (ch && len < sizeof line) {
		if (ch->kind == CHAT__CHANNEL_KIND__KIND_DM)
			len += (size_t)snprintf(line + len, sizeof line - len,
			                        " | #%llu @%s",
			                        (unsigned long long)ch->id,
			                        ch->dm_peer);
		else
			len += (size_t)snprintf(line + len, sizeof line - len,
			                        " | #%llu %s (%u members)",
			                        (unsigned long long)ch->id,
			                        ch->name, ch->member_count);
	}
	for (int i = 0; i < t->n_typing; i++) {
		size_t wl = strlen(who);
		if (t->typing[i].channel != t->cur ||
		    t->typing[i].until_ms < now)
			continue;
		snprintf(who + wl, sizeof who - wl, "%s%s", wl ? ", " : "",
		         t->typing[i].name);
	}
	if (who[0] && len < sizeof line)
		len += (size_t)snprintf(line + len, sizeof line - len,
		                        " | %s %s typing...", who,
		                        strchr(who, ',') ? "are" : "is");
	if (t->last_error[0] && len < sizeof line)
		snprintf(line + len, sizeof line - len, " | %s", t->last_error);
	attron(COLOR_PAIR(PAIR_STATUS) | A_REVERSE);
	mvhline(y, 0, ' ', COLS);
	put_utf8(y, 0, COLS, line);
	attroff(COLOR_PAIR(PAIR_STATUS) | A_REVERSE);
}

static void draw_input(tui *t)
{
	int y = LINES - 1, avail = COLS - 3, used = 0, cx;
	size_t first = 0;
	wchar_t out[ROW_MAX];
	int o = 0;

	if (avail < 1)
		avail = 1;
	/* Scroll so the cursor is visible. */
	for (;;) {
		int wsum = 0;
		for (size_t i = first; i < t->in.cur; i++) {
			int cw;
			clean(t->in.buf[i], &cw);
			wsum += cw;
		}
		if (wsum < avail || first >= t->in.cur)
			break;
		first++;
	}
	mvaddstr(y, 0, "> ");
	cx = 2;
	for (size_t i = first; i < t->in.len && o < ROW_MAX - 1; i++) {
		int cw;
		wchar_t ch = clean(t->in.buf[i], &cw);
		if (used + cw > avail)
			break;
		out[o++] = ch;
		if (i < t->in.cur)
			cx += cw;
		used += cw;
	}
	if (o)
		addnwstr(out, o);
	move(y, cx);
}

void tui_draw(tui *t)
{
	int lw;
	if (!t->curses_on)
		return;
	erase();
	lw = left_width();
	if (lw > 0)
		draw_list(t, lw);
	if (LINES >= 3)
		draw_pane(t, lw > 0 ? lw + 1 : 0, COLS - (lw > 0 ? lw + 1 : 0));
	if (LINES >= 2)
		draw_status(t);
	draw_input(t);
	refresh();
	t->dirty = 0;
}
