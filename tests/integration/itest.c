#include "itest.h"

#include "chat_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int read_ready(it_server *s)
{
	FILE *f = fopen(s->ready_file, "r");
	char line[512];
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "api_url=", 8))
			chat_strlcpy(s->api_url, line + 8, sizeof s->api_url);
		else if (!strncmp(line, "edge_url=", 9))
			chat_strlcpy(s->edge_url, line + 9, sizeof s->edge_url);
	}
	fclose(f);
	return s->api_url[0] && s->edge_url[0] ? 0 : -1;
}

int it_server_start(it_server *s, const char *chatd, const char *data_dir,
                    const char *const *extra)
{
	const char *ext = getenv("CHAT_TEST_API_URL");
	const char *argv[40];
	int n = 0;
	int64_t deadline;

	if (ext && *ext && !data_dir) {
		memset(s, 0, sizeof *s);
		s->external = 1;
		snprintf(s->api_url, sizeof s->api_url, "%s", ext);
		/* an edge for the tests that dial one with a token of their
		 * own (the fleet has several: any will do) */
		if ((ext = getenv("CHAT_TEST_EDGE_URL")) != NULL)
			snprintf(s->edge_url, sizeof s->edge_url, "%s", ext);
		return 0;
	}
	if (!data_dir) {
		memset(s, 0, sizeof *s);
		snprintf(s->data_dir, sizeof s->data_dir, "/tmp/chat-it-XXXXXX");
		if (!mkdtemp(s->data_dir))
			return -1;
	}
	snprintf(s->ready_file, sizeof s->ready_file, "%s/ready", s->data_dir);
	snprintf(s->log_file, sizeof s->log_file, "%s/chatd.log", s->data_dir);
	unlink(s->ready_file);
	s->api_url[0] = s->edge_url[0] = '\0';
	argv[n++] = chatd;
	argv[n++] = "--data-dir";
	argv[n++] = s->data_dir;
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--api-port";
	argv[n++] = "0";
	argv[n++] = "--ready-file";
	argv[n++] = s->ready_file;
	for (int i = 0; extra && extra[i] && n < 38; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		int fd = open(s->log_file, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		execv(chatd, (char *const *)argv);
		_exit(127);
	}
	deadline = chat_mono_ms() + 30000;
	while (chat_mono_ms() < deadline) {
		int st;
		if (read_ready(s) == 0)
			return 0;
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			fprintf(stderr, "chatd exited during start; log %s\n",
			        s->log_file);
			s->pid = 0;
			return -1;
		}
		usleep(20 * 1000);
	}
	fprintf(stderr, "chatd not ready in 30 s; log %s\n", s->log_file);
	it_server_stop(s, SIGKILL);
	return -1;
}

int it_server_stop(it_server *s, int sig)
{
	int st = 0;
	int64_t deadline;
	if (s->external || s->pid <= 0)
		return 0;
	kill(s->pid, sig);
	deadline = chat_mono_ms() + 20000;
	for (;;) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);
		if (r == s->pid)
			break;
		if (chat_mono_ms() > deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
			s->pid = 0;
			return -1;
		}
		usleep(10 * 1000);
	}
	s->pid = 0;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

void it_server_cleanup(it_server *s)
{
	char cmd[400];
	if (s->external || !s->data_dir[0] || strncmp(s->data_dir, "/tmp/chat-it-", 13))
		return;
	if (getenv("CHAT_TEST_KEEP"))
		return;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->data_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", s->data_dir);
}

void it_unique(char *out, size_t len, const char *prefix)
{
	static int counter;
	snprintf(out, len, "%s%d_%d", prefix, (int)getpid() % 100000, ++counter);
}

static void push_frame(it_client *c, Chat__ServerFrame *f)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->frames = realloc(c->frames, c->cap * sizeof *c->frames);
	}
	c->frames[c->n++] = f;
}

static void take(it_client *c, size_t i)
{
	memmove(&c->frames[i], &c->frames[i + 1], (c->n - i - 1) * sizeof *c->frames);
	c->n--;
}

/* Read everything available now; returns -1 once the connection is gone. */
static int read_some(it_client *c)
{
	char err[256];
	if (!c->ws)
		return -1;
	if (chatc_ws_flush(c->ws, err, sizeof err) != 0) {
		c->closed = 1;
		return -1;
	}
	for (;;) {
		const uint8_t *data;
		size_t len;
		int op, r = chatc_ws_read(c->ws, &data, &len, &op, err, sizeof err);
		if (r == 0)
			return 0;
		if (r < 0) {
			c->closed = 1;
			c->close_code = chatc_ws_close_code(c->ws);
			chat_strlcpy(c->close_reason,
			             chatc_ws_close_reason(c->ws) ? chatc_ws_close_reason(c->ws) : err,
			             sizeof c->close_reason);
			return -1;
		}
		if (op == CHATC_WS_BINARY) {
			Chat__ServerFrame *f = chat__server_frame__unpack(NULL, len, data);
			if (f)
				push_frame(c, f);
			else
				fprintf(stderr, "it: undecodable server frame (%zu bytes)\n", len);
		}
	}
}

void it_pump(it_client *c, int ms, int (*stop)(it_client *, void *), void *arg)
{
	int64_t deadline = chat_mono_ms() + ms;
	for (;;) {
		struct pollfd p;
		int64_t left;
		if (read_some(c) < 0)
			return;
		if (stop && stop(c, arg))
			return;
		left = deadline - chat_mono_ms();
		if (left <= 0)
			return;
		p.fd = chatc_ws_fd(c->ws);
		p.events = POLLIN | (chatc_ws_want_write(c->ws) ? POLLOUT : 0);
		poll(&p, 1, (int)(left > 50 ? 50 : left));
	}
}

struct find {
	uint64_t req_id;
	int kind;
	int (*match)(const Chat__ServerFrame *, void *);
	void *arg;
	ssize_t at;
};

static int find_reply(it_client *c, void *arg)
{
	struct find *fd = arg;
	for (size_t i = 0; i < c->n; i++)
		if (c->frames[i]->req_id == fd->req_id &&
		    (fd->req_id != 0 ||
		     c->frames[i]->kind_case == CHAT__SERVER_FRAME__KIND_ERROR)) {
			fd->at = (ssize_t)i;
			return 1;
		}
	return 0;
}

static int find_push(it_client *c, void *arg)
{
	struct find *fd = arg;
	for (size_t i = 0; i < c->n; i++)
		if (c->frames[i]->req_id == 0 &&
		    (int)c->frames[i]->kind_case == fd->kind &&
		    (!fd->match || fd->match(c->frames[i], fd->arg))) {
			fd->at = (ssize_t)i;
			return 1;
		}
	return 0;
}

Chat__ServerFrame *it_wait_reply(it_client *c, uint64_t req_id, int ms)
{
	struct find fd = {req_id, 0, NULL, NULL, -1};
	Chat__ServerFrame *f;
	if (!find_reply(c, &fd))
		it_pump(c, ms, find_reply, &fd);
	if (fd.at < 0)
		return NULL;
	f = c->frames[fd.at];
	take(c, (size_t)fd.at);
	return f;
}

Chat__ServerFrame *it_wait_push(it_client *c, Chat__ServerFrame__KindCase kind,
                                int (*match)(const Chat__ServerFrame *, void *),
                                void *arg, int ms)
{
	struct find fd = {0, (int)kind, match, arg, -1};
	Chat__ServerFrame *f;
	if (!find_push(c, &fd))
		it_pump(c, ms, find_push, &fd);
	if (fd.at < 0)
		return NULL;
	f = c->frames[fd.at];
	take(c, (size_t)fd.at);
	return f;
}

size_t it_drain(it_client *c, Chat__ServerFrame__KindCase kind)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n;) {
		if (c->frames[i]->kind_case == kind) {
			chat__server_frame__free_unpacked(c->frames[i], NULL);
			take(c, i);
			n++;
		} else {
			i++;
		}
	}
	return n;
}

size_t it_count(it_client *c, Chat__ServerFrame__KindCase kind)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->frames[i]->kind_case == kind)
			n++;
	return n;
}

static int connect_ws(it_client *c, char *err, size_t errlen)
{
	int status = 0;
	c->closed = 0;
	c->close_code = 0;
	c->close_reason[0] = '\0';
	return chatc_ws_connect(c->auth.edge_url, c->auth.token, 5000, &c->ws,
	                        &status, err, errlen);
}

int it_client_open(it_client *c, const it_server *s, const char *name,
                   int signup, char *err, size_t errlen)
{
	int r;
	memset(c, 0, sizeof *c);
	snprintf(c->name, sizeof c->name, "%s", name);
	snprintf(c->password, sizeof c->password, "pw-%.40s-secret", name);
	r = signup ? chatc_signup(s->api_url, name, c->password, 10000, &c->auth,
	                          err, errlen)
	           : chatc_login(s->api_url, name, c->password, 10000, &c->auth,
	                         err, errlen);
	if (r != 0)
		return -1;
	return connect_ws(c, err, errlen);
}

int it_client_reconnect(it_client *c, char *err, size_t errlen)
{
	if (c->ws)
		chatc_ws_free(c->ws);
	c->ws = NULL;
	return connect_ws(c, err, errlen);
}

void it_client_drop(it_client *c)
{
	chatc_ws_free(c->ws);
	c->ws = NULL;
}

void it_client_close(it_client *c)
{
	chatc_ws_free(c->ws);
	c->ws = NULL;
	for (size_t i = 0; i < c->n; i++)
		chat__server_frame__free_unpacked(c->frames[i], NULL);
	free(c->frames);
	c->frames = NULL;
	c->n = c->cap = 0;
}

uint64_t it_send(it_client *c, Chat__ClientFrame *f)
{
	size_t n;
	uint8_t *buf;
	int r;
	char err[128];
	if (!c->ws)
		return 0;
	if (!f->req_id)
		f->req_id = ++c->next_req;
	n = chat__client_frame__get_packed_size(f);
	buf = malloc(n ? n : 1);
	chat__client_frame__pack(f, buf);
	r = chatc_ws_send(c->ws, CHATC_WS_BINARY, buf, n);
	free(buf);
	if (r != 0 || chatc_ws_flush(c->ws, err, sizeof err) != 0)
		return 0;
	return f->req_id;
}

static Chat__ServerFrame *roundtrip(it_client *c, Chat__ClientFrame *f)
{
	uint64_t id = it_send(c, f);
	return id ? it_wait_reply(c, id, 5000) : NULL;
}

Chat__ServerFrame *it_create(it_client *c, const char *name,
                             const char *const *members)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__CreateChannelReq r = CHAT__CREATE_CHANNEL_REQ__INIT;
	size_t n = 0;
	while (members && members[n])
		n++;
	r.name = (char *)name;
	r.n_members = n;
	r.members = (char **)members;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_CREATE_CHANNEL;
	f.create_channel = &r;
	return roundtrip(c, &f);
}

Chat__ServerFrame *it_join(it_client *c, uint64_t channel)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__JoinReq r = CHAT__JOIN_REQ__INIT;
	r.channel_id = channel;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_JOIN;
	f.join = &r;
	return roundtrip(c, &f);
}

Chat__ServerFrame *it_leave(it_client *c, uint64_t channel)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__LeaveReq r = CHAT__LEAVE_REQ__INIT;
	r.channel_id = channel;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_LEAVE;
	f.leave = &r;
	return roundtrip(c, &f);
}

Chat__ServerFrame *it_open_dm(it_client *c, const char *user)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__OpenDmReq r = CHAT__OPEN_DM_REQ__INIT;
	r.user_name = (char *)user;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_OPEN_DM;
	f.open_dm = &r;
	return roundtrip(c, &f);
}

Chat__ServerFrame *it_history(it_client *c, uint64_t channel, uint64_t anchor,
                              int after, uint32_t limit)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__HistoryReq r = CHAT__HISTORY_REQ__INIT;
	r.channel_id = channel;
	r.anchor_seq = anchor;
	r.direction = after ? CHAT__HISTORY_REQ__DIRECTION__AFTER
	                    : CHAT__HISTORY_REQ__DIRECTION__BEFORE;
	r.limit = limit;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_HISTORY;
	f.history = &r;
	return roundtrip(c, &f);
}

Chat__ServerFrame *it_mark_read(it_client *c, uint64_t channel, uint64_t seq)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__MarkReadReq r = CHAT__MARK_READ_REQ__INIT;
	r.channel_id = channel;
	r.seq = seq;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_MARK_READ;
	f.mark_read = &r;
	return roundtrip(c, &f);
}

Chat__ServerFrame *it_set_status(it_client *c, Chat__Status st)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__SetStatusReq r = CHAT__SET_STATUS_REQ__INIT;
	r.status = st;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_SET_STATUS;
	f.set_status = &r;
	return roundtrip(c, &f);
}

Chat__ServerFrame *it_who(it_client *c, uint64_t channel)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__WhoReq r = CHAT__WHO_REQ__INIT;
	r.channel_id = channel;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_WHO;
	f.who = &r;
	return roundtrip(c, &f);
}

Chat__ServerFrame *it_ping(it_client *c)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__PingReq r = CHAT__PING_REQ__INIT;
	r.client_time_ms = 1234;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_PING;
	f.ping = &r;
	return roundtrip(c, &f);
}

Chat__ServerFrame *it_send_msg(it_client *c, uint64_t channel,
                               const char *client_msg_id, const char *body)
{
	Chat__ClientFrame f = CHAT__CLIENT_FRAME__INIT;
	Chat__SendReq r = CHAT__SEND_REQ__INIT;
	char id[32];
	if (!client_msg_id) {
		snprintf(id, sizeof id, "%08x%08x", (unsigned)rand(), (unsigned)rand());
		client_msg_id = id;
	}
	r.channel_id = channel;
	r.client_msg_id = (char *)client_msg_id;
	r.body = (char *)body;
	f.kind_case = CHAT__CLIENT_FRAME__KIND_SEND;
	f.send = &r;
	return roundtrip(c, &f);
}

struct coll {
	uint64_t channel;
	size_t want;
};

static int have_messages(it_client *c, void *arg)
{
	struct coll *k = arg;
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->frames[i]->kind_case == CHAT__SERVER_FRAME__KIND_MESSAGE &&
		    c->frames[i]->message->channel_id == k->channel)
			n++;
	return n >= k->want;
}

size_t it_collect(it_client *c, uint64_t channel, size_t count, uint64_t *seqs,
                  char (*bodies)[64], int ms)
{
	struct coll k = {channel, count};
	size_t got = 0;
	if (!have_messages(c, &k))
		it_pump(c, ms, have_messages, &k);
	for (size_t i = 0; i < c->n && got < count;) {
		Chat__ServerFrame *f = c->frames[i];
		if (f->kind_case == CHAT__SERVER_FRAME__KIND_MESSAGE &&
		    f->message->channel_id == channel) {
			if (seqs)
				seqs[got] = f->message->seq;
			if (bodies)
				snprintf(bodies[got], 64, "%s", f->message->body);
			got++;
			chat__server_frame__free_unpacked(f, NULL);
			take(c, i);
		} else {
			i++;
		}
	}
	return got;
}
