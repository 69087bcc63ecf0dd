/* chat-tui: the terminal chat client. The chatc library speaks the
 * protocol; this file turns keys into calls and events into screen state,
 * driven by poll() on the terminal and the socket. */
#include <errno.h>
#include <getopt.h>
#include <ncursesw/curses.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "chat_status.h"
#include "chat_util.h"
#include "chatc.h"
#include "chatc_http.h"
#include "tui_cmd.h"
#include "tui_input.h"
#include "tui_ui.h"

#define READ_DEBOUNCE_MS 1000
#define TYPING_SEND_MS 3000
#define TYPING_SHOW_MS 5000
#define HISTORY_PAGE 50

static void ulog(tui *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ulog(tui *t, const char *fmt, ...)
{
	va_list ap;
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	if (!t->log)
		return;
	localtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%H:%M:%S", &tm);
	fprintf(t->log, "%s ", ts);
	va_start(ap, fmt);
	vfprintf(t->log, fmt, ap);
	va_end(ap);
	fputc('\n', t->log);
	fflush(t->log);
}

static void lib_log(void *user, const char *line)
{
	ulog(user, "chatc %s", line);
}

static void set_error(tui *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(tui *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->last_error, sizeof t->last_error, fmt, ap);
	va_end(ap);
	ulog(t, "error %s", t->last_error);
	t->dirty = 1;
}

static void schedule_read(tui *t, uint64_t channel)
{
	if (t->read_due_ms && t->read_due_chan == channel)
		return;
	t->read_due_chan = channel;
	t->read_due_ms = chat_now_ms() + READ_DEBOUNCE_MS;
}

/* Show a channel; load its latest history when nothing is held. */
static void switch_to(tui *t, uint64_t id)
{
	const chatc_channel *ch = chatc_channel_get(t->c, id);
	if (t->cur != id) {
		t->cur = id;
		t->scroll = 0;
	}
	t->dirty = 1;
	if (!ch)
		return;
	if (ch->n_msgs == 0 && ch->more_before)
		chatc_history_before(t->c, id, 0, HISTORY_PAGE);
	if (ch->unread || ch->held_seq > ch->read_seq)
		schedule_read(t, id);
}

static void switch_rel(tui *t, int dir)
{
	size_t n = chatc_channel_count(t->c), i;
	if (n == 0)
		return;
	for (i = 0; i < n; i++)
		if (chatc_channel_at(t->c, i)->id == t->cur)
			break;
	if (i == n)
		i = dir > 0 ? n - 1 : 0;
	i = (i + n + (size_t)(dir > 0 ? 1 : n - 1)) % n;
	switch_to(t, chatc_channel_at(t->c, i)->id);
}

static void remember_switch(tui *t, uint64_t req)
{
	if (!req)
		return;
	memmove(t->switch_req + 1, t->switch_req,
	        sizeof t->switch_req - sizeof t->switch_req[0]);
	t->switch_req[0] = req;
}

static int take_switch(tui *t, uint64_t req)
{
	for (size_t i = 0; i < sizeof t->switch_req / sizeof *t->switch_req;
	     i++) {
		if (req && t->switch_req[i] == req) {
			t->switch_req[i] = 0;
			return 1;
		}
	}
	return 0;
}

static void fmt_seen(int64_t ms, char *out, size_t len)
{
	time_t s;
	struct tm tm;
	if (ms <= 0) {
		snprintf(out, len, "never");
		return;
	}
	s = (time_t)(ms / 1000);
	localtime_r(&s, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M", &tm);
}

static void on_who(tui *t, const chatc_event *ev)
{
	const Chat__WhoReply *w = ev->frame->who;
	uint64_t ch = t->cur;
	if (w->channel_id)
		tui_sys(t, ch, "members of #%llu (%zu):",
		        (unsigned long long)w->channel_id, w->n_users);
	else
		tui_sys(t, ch, "people sharing a channel with you (%zu):",
		        w->n_users);
	for (size_t i = 0; i < w->n_users; i++) {
		const Chat__PresenceUpdate *p = w->users[i];
		char seen[32];
		fmt_seen(p->last_seen_ms, seen, sizeof seen);
		tui_sys(t, ch, "  %-20s %-8s last seen %s", p->user_name,
		        chatc_status_name(p->status), seen);
	}
}

static void on_event(void *user, chatc *c, const chatc_event *ev)
{
	tui *t = user;
	(void)c;
	t->dirty = 1;
	switch (ev->type) {
	case CHATC_EV_CONNECTED:
		tui_sys(t, t->cur, "connected as %s", chatc_user_name(t->c));
		break;
	case CHATC_EV_RECONNECTED:
		tui_sys(t, t->cur, "reconnected");
		t->last_error[0] = '\0';
		break;
	case CHATC_EV_DISCONNECTED:
		set_error(t, "disconnected: %s", ev->reason ? ev->reason : "");
		break;
	case CHATC_EV_CHANNELS:
		if (!chatc_channel_get(t->c, t->cur) &&
		    chatc_channel_count(t->c) > 0) {
			if (t->cur)
				t->cur = 0;
			switch_to(t, chatc_channel_at(t->c, 0)->id);
		} else if (t->cur && !chatc_channel_get(t->c, t->cur)) {
			t->cur = 0;
		}
		break;
	case CHATC_EV_CHANNEL:
		if (take_switch(t, ev->req_id))
			switch_to(t, ev->channel_id);
		break;
	case CHATC_EV_MESSAGE:
		if (ev->channel_id == t->cur && ev->msg->sender_id !=
		                                    chatc_user_id(t->c))
			schedule_read(t, ev->channel_id);
		for (int i = 0; i < t->n_typing; i++)
			if (t->typing[i].channel == ev->channel_id &&
			    strcmp(t->typing[i].name,
			           ev->msg->sender_name) == 0)
				t->typing[i].until_ms = 0;
		if (ev->channel_id == t->cur && t->scroll > 0)
			t->scroll++; /* keep the view still while scrolled */
		break;
	case CHATC_EV_HISTORY:
		if (ev->channel_id == t->cur && ev->older && ev->count &&
		    t->scroll > 0)
			t->scroll += 1;
		if (ev->channel_id == t->cur && !ev->older)
			schedule_read(t, ev->channel_id);
		break;
	case CHATC_EV_TYPING: {
		const Chat__Typing *ty = ev->frame->typing;
		int slot = -1;
		for (int i = 0; i < t->n_typing; i++)
			if (t->typing[i].channel == ty->channel_id &&
			    strcmp(t->typing[i].name, ty->user_name) == 0)
				slot = i;
		if (slot < 0) {
			if (t->n_typing < TUI_MAX_TYPING)
				slot = t->n_typing++;
			else
				slot = 0;
		}
		t->typing[slot].channel = ty->channel_id;
		snprintf(t->typing[slot].name, sizeof t->typing[slot].name,
		         "%s", ty->user_name);
		t->typing[slot].until_ms = chat_now_ms() + TYPING_SHOW_MS;
		break;
	}
	case CHATC_EV_MEMBER: {
		const Chat__MemberEvent *m = ev->frame->member;
		if (m->kind == CHAT__MEMBER_EVENT__KIND__JOINED &&
		    m->by_user_name && m->by_user_name[0] &&
		    m->by_user_id != m->user_id)
			tui_sys(t, m->channel_id, "%s was added by %s",
			        m->user_name, m->by_user_name);
		else
			tui_sys(t, m->channel_id, "%s %s", m->user_name,
			        m->kind == CHAT__MEMBER_EVENT__KIND__JOINED
			            ? "joined"
			            : "left");
		break;
	}
	case CHATC_EV_ERROR:
		set_error(t, "error: %s: %s", chat_strerror(ev->code),
		          ev->reason);
		break;
	case CHATC_EV_SEND_FAILED:
		set_error(t, "message not sent: %s: %s",
		          chat_strerror(ev->code), ev->reason);
		break;
	case CHATC_EV_WHO:
		on_who(t, ev);
		break;
	case CHATC_EV_OK:
		if (ev->req_kind == CHAT__CLIENT_FRAME__KIND_LEAVE)
			tui_sys(t, t->cur, "left #%llu",
			        (unsigned long long)ev->channel_id);
		break;
	default:
		break;
	}
}

static void show_help(tui *t)
{
	for (int i = 0; tui_cmd_help[i]; i++)
		tui_sys(t, t->cur, "%s", tui_cmd_help[i]);
}

static int need_channel(tui *t)
{
	if (t->cur && chatc_channel_get(t->c, t->cur))
		return 1;
	set_error(t, "no channel open: /create, /join or /dm first");
	return 0;
}

static void run_command(tui *t, const char *line)
{
	tui_cmd cmd;
	uint64_t req = 0;

	tui_cmd_parse(line, &cmd);
	ulog(t, "command kind=%d line=\"%s\"", cmd.kind, line);
	switch (cmd.kind) {
	case TUI_CMD_NONE:
		break;
	case TUI_CMD_ERROR:
		set_error(t, "%s", cmd.err);
		break;
	case TUI_CMD_TEXT: {
		char id[CHATC_CMID_LEN];
		int rc;
		if (!need_channel(t))
			break;
		rc = chatc_send(t->c, t->cur, cmd.text, id);
		if (rc != 0)
			set_error(t, "not sent: %s", chatc_last_error(t->c));
		t->scroll = 0;
		break;
	}
	case TUI_CMD_CREATE:
		req = chatc_create(t->c, cmd.argv[0],
		                   (const char *const *)cmd.argv + 1,
		                   (size_t)cmd.argc - 1);
		remember_switch(t, req);
		break;
	case TUI_CMD_JOIN:
		req = chatc_join(t->c, cmd.id);
		remember_switch(t, req);
		break;
	case TUI_CMD_LEAVE:
		if (!cmd.has_id) {
			if (!need_channel(t))
				break;
			cmd.id = t->cur;
		}
		req = chatc_leave(t->c, cmd.id);
		break;
	case TUI_CMD_READ: {
		uint64_t id = cmd.has_id ? cmd.id : t->cur;
		if (!id) {
			need_channel(t);
			break;
		}
		if (chatc_channel_get(t->c, id))
			switch_to(t, id);
		req = chatc_mark_read(t->c, id, 0);
		t->read_due_ms = 0;
		break;
	}
	case TUI_CMD_STATUS:
		req = chatc_set_status(t->c, cmd.status);
		break;
	case TUI_CMD_DM:
		req = chatc_open_dm(t->c, cmd.argv[0]);
		remember_switch(t, req);
		break;
	case TUI_CMD_WHO:
		req = chatc_who(t->c, t->cur);
		break;
	case TUI_CMD_SWITCH:
		if (!chatc_channel_get(t->c, cmd.id)) {
			set_error(t, "not in channel #%llu (try /join %llu)",
			          (unsigned long long)cmd.id,
			          (unsigned long long)cmd.id);
			break;
		}
		switch_to(t, cmd.id);
		break;
	case TUI_CMD_HELP:
		show_help(t);
		break;
	case TUI_CMD_QUIT:
		t->quit = 1;
		break;
	}
	if (!req && cmd.kind >= TUI_CMD_CREATE && cmd.kind <= TUI_CMD_WHO &&
	    cmd.kind != TUI_CMD_ERROR && !t->last_error[0] &&
	    chatc_state(t->c) != CHATC_ONLINE)
		set_error(t, "not connected: %s", chatc_last_error(t->c));
	tui_cmd_fini(&cmd);
	t->dirty = 1;
}

static void maybe_typing(tui *t)
{
	int64_t now = chat_now_ms();
	if (t->in.len == 0 || !t->cur || t->in.buf[0] == L'/')
		return;
	if (now - t->last_typing_ms < TYPING_SEND_MS)
		return;
	if (chatc_typing(t->c, t->cur))
		t->last_typing_ms = now;
}

static void scroll_by(tui *t, int rows)
{
	t->scroll += rows;
	if (t->scroll < 0)
		t->scroll = 0;
	if (rows > 0 && t->at_top) {
		const chatc_channel *ch = chatc_channel_get(t->c, t->cur);
		if (ch && ch->more_before)
			chatc_history_before(t->c, t->cur, 0, HISTORY_PAGE);
	}
	t->dirty = 1;
}

/* An escape sequence curses did not decode (alt-arrows on terminals
 * whose terminfo lacks them). */
static void handle_escape(tui *t)
{
	char seq[16];
	int n = 0;
	wint_t ch;
	while (n < (int)sizeof seq - 1 && get_wch(&ch) != ERR) {
		seq[n++] = (char)ch;
		if (n >= 2 && ((ch >= 'A' && ch <= 'Z') || ch == '~' ||
		               (ch >= 'a' && ch <= 'z')))
			break;
		if (n == 1 && ch != '[' && ch != 'O')
			break;
	}
	seq[n] = '\0';
	if (strcmp(seq, "[1;3D") == 0 || strcmp(seq, "[1;9D") == 0 ||
	    strcmp(seq, "b") == 0)
		switch_rel(t, -1);
	else if (strcmp(seq, "[1;3C") == 0 || strcmp(seq, "[1;9C") == 0 ||
	         strcmp(seq, "f") == 0)
		switch_rel(t, 1);
}

static void handle_key(tui *t, int is_key, wint_t ch)
{
	static int alt_left = -1, alt_right = -1;
	int changed = 0;

	if (alt_left == -1) {
		alt_left = key_defined("\033[1;3D");
		alt_right = key_defined("\033[1;3C");
		if (alt_left <= 0)
			alt_left = key_defined("kLFT3");
		if (alt_right <= 0)
			alt_right = key_defined("kRIT3");
	}
	t->dirty = 1;
	if (is_key) {
		if ((int)ch == alt_left && alt_left > 0) {
			switch_rel(t, -1);
			return;
		}
		if ((int)ch == alt_right && alt_right > 0) {
			switch_rel(t, 1);
			return;
		}
		switch (ch) {
		case KEY_LEFT:
			tui_input_left(&t->in);
			break;
		case KEY_RIGHT:
			tui_input_right(&t->in);
			break;
		case KEY_HOME:
			tui_input_home(&t->in);
			break;
		case KEY_END:
			tui_input_end(&t->in);
			break;
		case KEY_BACKSPACE:
			changed = tui_input_backspace(&t->in);
			break;
		case KEY_DC:
			changed = tui_input_delete(&t->in);
			break;
		case KEY_UP:
			tui_input_history_prev(&t->in);
			break;
		case KEY_DOWN:
			tui_input_history_next(&t->in);
			break;
		case KEY_PPAGE:
			scroll_by(t, tui_pane_rows() - 1);
			break;
		case KEY_NPAGE:
			scroll_by(t, -(tui_pane_rows() - 1));
			break;
		case KEY_RESIZE:
			clearok(curscr, TRUE);
			break;
		case KEY_ENTER: {
			char *line = tui_input_take(&t->in);
			if (line)
				run_command(t, line);
			free(line);
			break;
		}
		case KEY_BTAB:
			switch_rel(t, -1);
			break;
		default:
			break;
		}
	} else {
		switch (ch) {
		case '\r':
		case '\n': {
			char *line = tui_input_take(&t->in);
			if (line)
				run_command(t, line);
			free(line);
			break;
		}
		case 1: /* ctrl-a */
			tui_input_home(&t->in);
			break;
		case 5: /* ctrl-e */
			tui_input_end(&t->in);
			break;
		case 2: /* ctrl-b */
			tui_input_left(&t->in);
			break;
		case 6: /* ctrl-f */
			tui_input_right(&t->in);
			break;
		case 21: /* ctrl-u */
			changed = tui_input_kill_line(&t->in);
			break;
		case 23: /* ctrl-w */
			changed = tui_input_kill_word(&t->in);
			break;
		case 4: /* ctrl-d: delete, or quit on an empty line */
			if (t->in.len == 0)
				t->quit = 1;
			else
				changed = tui_input_delete(&t->in);
			break;
		case 3: /* ctrl-c */
			t->quit = 1;
			break;
		case 12: /* ctrl-l */
			clearok(curscr, TRUE);
			break;
		case 8:
		case 127:
			changed = tui_input_backspace(&t->in);
			break;
		case '\t':
			switch_rel(t, 1);
			break;
		case 27:
			handle_escape(t);
			break;
		default:
			if (ch >= 0x20)
				changed = tui_input_insert(&t->in, (wchar_t)ch);
			break;
		}
	}
	if (changed)
		maybe_typing(t);
}

static void read_keys(tui *t)
{
	wint_t ch;
	int rc;
	for (int n = 0; n < 4096; n++) {
		rc = get_wch(&ch);
		if (rc == ERR)
			break;
		handle_key(t, rc == KEY_CODE_YES, ch);
		if (t->quit)
			break;
	}
}

static void run_timers(tui *t)
{
	int64_t now = chat_now_ms();
	if (t->read_due_ms && now >= t->read_due_ms) {
		const chatc_channel *ch = chatc_channel_get(t->c,
		                                            t->read_due_chan);
		t->read_due_ms = 0;
		if (ch && ch->id == t->cur && ch->held_seq > ch->read_seq &&
		    chatc_state(t->c) == CHATC_ONLINE)
			chatc_mark_read(t->c, ch->id, ch->held_seq);
	}
	for (int i = 0; i < t->n_typing; i++) {
		if (t->typing[i].until_ms && t->typing[i].until_ms <= now) {
			t->typing[i] = t->typing[--t->n_typing];
			i--;
			t->dirty = 1;
		}
	}
}

static int next_timeout(tui *t)
{
	int64_t now = chat_now_ms();
	int to = chatc_next_timer_ms(t->c);
	if (t->read_due_ms) {
		int64_t d = t->read_due_ms - now;
		if (d < 0)
			d = 0;
		if (to < 0 || d < to)
			to = (int)d;
	}
	for (int i = 0; i < t->n_typing; i++) {
		int64_t d = t->typing[i].until_ms - now;
		if (d < 0)
			d = 0;
		if (to < 0 || d < to)
			to = (int)d;
	}
	/* The reconnect countdown ticks each second. */
	if (chatc_state(t->c) == CHATC_WAITING && (to < 0 || to > 1000))
		to = 1000;
	return to;
}

static void loop(tui *t)
{
	while (!t->quit) {
		struct pollfd p[2];
		int n = 1, fd, rc;

		if (t->dirty)
			tui_draw(t);
		p[0].fd = STDIN_FILENO;
		p[0].events = POLLIN;
		p[0].revents = 0;
		fd = chatc_fd(t->c);
		if (fd >= 0) {
			p[1].fd = fd;
			p[1].events = POLLIN;
			if (chatc_want_write(t->c))
				p[1].events |= POLLOUT;
			p[1].revents = 0;
			n = 2;
		}
		rc = poll(p, (nfds_t)n, next_timeout(t));
		if (rc < 0 && errno != EINTR)
			break;
		if (rc < 0) {
			/* SIGWINCH: curses reports KEY_RESIZE on read. */
			read_keys(t);
			continue;
		}
		if (p[0].revents & (POLLIN | POLLHUP)) {
			if (p[0].revents & POLLHUP && !(p[0].revents & POLLIN))
				break; /* the terminal is gone */
			read_keys(t);
		}
		chatc_process(t->c, 0);
		run_timers(t);
		if (chatc_state(t->c) == CHATC_WAITING)
			t->dirty = 1;
	}
}

/* ---- start-up: flags, prompts, log-in ---- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: chat-tui [--server URL] [--user NAME] "
	        "[--password-file PATH] [--signup] [--log FILE]\n"
	        "  --server URL          the chat api (default "
	        "http://127.0.0.1:7000; env CHAT_SERVER)\n"
	        "  --user NAME           user name (env CHAT_USER)\n"
	        "  --password-file PATH  read the password from PATH (or env "
	        "CHAT_PASSWORD)\n"
	        "  --signup              create the account first (log in "
	        "when it exists)\n"
	        "  --log FILE            write a debug log to FILE\n");
}

static int prompt_line(const char *prompt, char *out, size_t len, int echo)
{
	struct termios old, noecho_t;
	int tty = isatty(STDIN_FILENO), changed = 0;
	size_t n;

	fprintf(stderr, "%s", prompt);
	fflush(stderr);
	if (!echo && tty && tcgetattr(STDIN_FILENO, &old) == 0) {
		noecho_t = old;
		noecho_t.c_lflag &= ~(tcflag_t)ECHO;
		changed = tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho_t) == 0;
	}
	if (!fgets(out, (int)len, stdin))
		out[0] = '\0';
	if (changed) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return n > 0 ? 0 : -1;
}

static int read_password_file(const char *path, char *out, size_t len)
{
	char *data = NULL;
	size_t n = 0;
	if (chat_read_file(path, 4096, &data, &n) != 0) {
		fprintf(stderr,
		        "chat-tui: cannot read --password-file %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	n = strcspn(data, "\r\n");
	data[n] = '\0';
	if (n == 0 || n >= len) {
		fprintf(stderr, "chat-tui: --password-file %s: %s\n", path,
		        n == 0 ? "empty" : "too long");
		free(data);
		return -1;
	}
	memcpy(out, data, n + 1);
	memset(data, 0, n);
	free(data);
	return 0;
}

/* Log in, or sign up as asked. Returns 0 with a filled. */
static int authenticate(const char *api, const char *name, const char *pw,
                        int signup, chatc_auth *a)
{
	char err[512];
	int rc;

	if (signup) {
		rc = chatc_signup(api, name, pw, 10000, a, err, sizeof err);
		if (rc == 409)
			rc = chatc_login(api, name, pw, 10000, a, err,
			                 sizeof err);
	} else {
		rc = chatc_login(api, name, pw, 10000, a, err, sizeof err);
		if (rc == 401 && isatty(STDIN_FILENO)) {
			char ans[16];
			fprintf(stderr, "Log-in failed: %s\n", err);
			if (prompt_line("No such user or a wrong password. "
			                "Sign up as this user? [y/N] ",
			                ans, sizeof ans, 1) == 0 &&
			    (ans[0] == 'y' || ans[0] == 'Y'))
				rc = chatc_signup(api, name, pw, 10000, a, err,
				                  sizeof err);
		}
	}
	if (rc != 0) {
		fprintf(stderr, "chat-tui: %s %s: %s\n",
		        signup ? "sign-up as" : "log-in as", name, err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
	    {"server", required_argument, NULL, 's'},
	    {"user", required_argument, NULL, 'u'},
	    {"password-file", required_argument, NULL, 'p'},
	    {"signup", no_argument, NULL, 'S'},
	    {"log", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *server = getenv("CHAT_SERVER");
	const char *pwfile = NULL, *logpath = NULL;
	char name[64] = "", pw[512] = "", err[512];
	int signup = 0, opt, rc = 1;
	chatc_auth auth;
	chatc_opts o;
	tui t;

	memset(&t, 0, sizeof t);
	tui_input_init(&t.in);
	if (getenv("CHAT_USER"))
		snprintf(name, sizeof name, "%s", getenv("CHAT_USER"));
	while ((opt = getopt_long(argc, argv, "s:u:p:Sl:h", longs, NULL)) !=
	       -1) {
		switch (opt) {
		case 's':
			server = optarg;
			break;
		case 'u':
			snprintf(name, sizeof name, "%s", optarg);
			break;
		case 'p':
			pwfile = optarg;
			break;
		case 'S':
			signup = 1;
			break;
		case 'l':
			logpath = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "chat-tui: unexpected argument '%s'\n",
		        argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!server || !server[0])
		server = "http://127.0.0.1:7000";
	{
		chatc_url u;
		if (chatc_url_parse(server, &u, err, sizeof err) != 0 ||
		    strcmp(u.scheme, "http") != 0) {
			fprintf(stderr, "chat-tui: --server: %s\n",
			        err[0] ? err : "want http://HOST:PORT");
			return 2;
		}
	}
	if (logpath) {
		t.log = fopen(logpath, "a");
		if (!t.log) {
			fprintf(stderr, "chat-tui: cannot open --log %s: %s\n",
			        logpath, strerror(errno));
			return 2;
		}
	}
	if (!name[0] && prompt_line("user: ", name, sizeof name, 1) != 0) {
		fprintf(stderr, "chat-tui: no user name\n");
		goto out;
	}
	if (pwfile) {
		if (read_password_file(pwfile, pw, sizeof pw) != 0)
			goto out;
	} else if (getenv("CHAT_PASSWORD") && getenv("CHAT_PASSWORD")[0]) {
		snprintf(pw, sizeof pw, "%s", getenv("CHAT_PASSWORD"));
	} else if (prompt_line("password: ", pw, sizeof pw, 0) != 0) {
		fprintf(stderr, "chat-tui: no password\n");
		goto out;
	}
	ulog(&t, "start server=%s user=%s", server, name);
	if (authenticate(server, name, pw, signup, &auth) != 0)
		goto out;

	memset(&o, 0, sizeof o);
	o.api_url = server;
	o.name = name;
	o.password = pw;
	o.edge_url = auth.edge_url;
	o.token = auth.token;
	o.expires_at = auth.expires_at;
	o.on_event = on_event;
	o.log = t.log ? lib_log : NULL;
	o.user = &t;
	t.c = chatc_new(&o, err, sizeof err);
	memset(&auth, 0, sizeof auth);
	memset(pw, 0, sizeof pw);
	if (!t.c) {
		fprintf(stderr, "chat-tui: %s\n", err);
		goto out;
	}
	if (chatc_connect(t.c, err, sizeof err) != 0) {
		fprintf(stderr, "chat-tui: cannot connect: %s\n", err);
		goto out;
	}
	if (tui_ui_start(&t) != 0) {
		fprintf(stderr, "chat-tui: cannot start the terminal UI\n");
		goto out;
	}
	tui_sys(&t, 0, "type /help for commands");
	loop(&t);
	chatc_close(t.c);
	rc = 0;
out:
	tui_ui_stop(&t);
	chatc_free(t.c);
	tui_ui_fini(&t);
	tui_input_fini(&t.in);
	memset(pw, 0, sizeof pw);
	if (t.log) {
		ulog(&t, "exit rc=%d", rc);
		fclose(t.log);
	}
	return rc;
}
