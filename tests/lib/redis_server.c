/* A throwaway redis-server for tests (see redis_server.h), and the
 * process helpers it shares with zk_server.c. */
#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- process helpers ---------------------------------------------------- */

#define MAX_CHILDREN 64

static pid_t children[MAX_CHILDREN];
static int atexit_done;

static void kill_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
}

static void remember(pid_t pid)
{
	if (!atexit_done) {
		atexit(kill_children);
		atexit_done = 1;
	}
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] <= 0) {
			children[i] = pid;
			return;
		}
}

static void forget(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int testsrv_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int testsrv_mkdtemp(const char *tag, char *out, size_t outlen)
{
	const char *tmp = getenv("TMPDIR");
	int n;
	if (!tmp || !tmp[0])
		tmp = "/tmp";
	n = snprintf(out, outlen, "%s/chat-%s-XXXXXX", tmp, tag);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	return mkdtemp(out) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void testsrv_rmtree(const char *path)
{
	if (path && path[0])
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

pid_t testsrv_spawn(char *const argv[], const char *log_path, char *err,
                    size_t errlen)
{
	int logfd, nullfd, ep[2];
	pid_t parent = getpid(), pid;
	ssize_t n;
	int child_errno = 0;

	logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0 || pipe2(ep, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "spawn %s: %s", argv[0], strerror(errno));
		if (logfd >= 0)
			close(logfd);
		if (nullfd >= 0)
			close(nullfd);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		sigset_t none;
		struct sigaction dfl;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &dfl, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		/* ep[1] is close-on-exec: it closes by itself on success. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != ep[1])
				close(fd);
		execvp(argv[0], argv);
		child_errno = errno;
		n = write(ep[1], &child_errno, sizeof child_errno);
		(void)n;
		_exit(127);
	}
	close(ep[1]);
	close(logfd);
	close(nullfd);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(ep[0]);
		return -1;
	}
	do
		n = read(ep[0], &child_errno, sizeof child_errno);
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == (ssize_t)sizeof child_errno) {
		waitpid(pid, NULL, 0);
		snprintf(err, errlen, "cannot run %s: %s%s", argv[0],
		         strerror(child_errno),
		         child_errno == ENOENT
		             ? " (not installed? scripts/deps.sh installs it)"
		             : "");
		return -1;
	}
	remember(pid);
	return pid;
}

int testsrv_exited(pid_t pid, int *status)
{
	int st = 0;
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (r == pid || (r < 0 && errno == ECHILD)) {
		if (status)
			*status = st;
		forget(pid);
		return 1;
	}
	return 0;
}

int testsrv_terminate(pid_t pid, int sig, int wait_ms)
{
	int64_t deadline;
	if (pid <= 0)
		return 0;
	kill(pid, SIGCONT); /* a paused process must be able to exit */
	kill(pid, sig);
	deadline = mono_ms() + wait_ms;
	while (!testsrv_exited(pid, NULL)) {
		if (mono_ms() >= deadline) {
			kill(pid, SIGKILL);
			if (waitpid(pid, NULL, 0) != pid && errno != ECHILD)
				return -1;
			forget(pid);
			break;
		}
		sleep_ms(10);
	}
	return 0;
}

int testsrv_probe(int port, const char *req, const char *want,
                  int timeout_ms)
{
	struct sockaddr_in sa;
	char buf[128];
	size_t got = 0, wl = strlen(want);
	int64_t deadline = mono_ms() + timeout_ms;
	int fd, ok = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		goto out;
	while (got < wl && got < sizeof buf) {
		struct pollfd p = {fd, POLLIN, 0};
		int left = (int)(deadline - mono_ms());
		ssize_t n;
		if (left <= 0 || poll(&p, 1, left) <= 0)
			goto out;
		n = recv(fd, buf + got, sizeof buf - got, 0);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	ok = got >= wl && memcmp(buf, want, wl) == 0;
out:
	close(fd);
	return ok;
}

/* ---- redis-server ------------------------------------------------------ */

static int redis_launch(redis_server *s, char *err, size_t errlen)
{
	char port[16];
	const char *bin = getenv("CHAT_REDIS_SERVER");
	char *argv[] = {(char *)(bin && bin[0] ? bin : "redis-server"),
	                (char *)"--port", port,
	                (char *)"--bind", (char *)"127.0.0.1",
	                (char *)"--save", (char *)"",
	                (char *)"--appendonly", (char *)"no",
	                (char *)"--daemonize", (char *)"no",
	                (char *)"--dir", s->root,
	                NULL};
	int64_t deadline;

	snprintf(port, sizeof port, "%d", s->port);
	s->pid = testsrv_spawn(argv, s->log_file, err, errlen);
	if (s->pid < 0) {
		s->pid = 0;
		return -1;
	}
	s->paused = 0;
	deadline = mono_ms() + 10000;
	while (mono_ms() < deadline) {
		if (testsrv_exited(s->pid, NULL)) {
			snprintf(err, errlen, "redis-server exited at start "
			                      "(port %d busy?), see %s",
			         s->port, s->log_file);
			s->pid = 0;
			return -1;
		}
		if (testsrv_probe(s->port, "PING\r\n", "+PONG", 500))
			return 0;
		sleep_ms(10);
	}
	snprintf(err, errlen, "redis-server on port %d did not answer PING "
	                      "in 10 s, see %s", s->port, s->log_file);
	testsrv_terminate(s->pid, SIGKILL, 1000);
	s->pid = 0;
	return -1;
}

int redis_server_start(redis_server *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	if (testsrv_mkdtemp("redis", s->root, sizeof s->root) != 0) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(s->log_file, sizeof s->log_file, "%s/redis.log", s->root);
	for (int attempt = 0; attempt < 3; attempt++) {
		s->port = testsrv_free_port();
		if (s->port <= 0) {
			snprintf(err, errlen, "no free port");
			break;
		}
		snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
		if (redis_launch(s, err, errlen) == 0)
			return 0;
		if (strstr(err, "cannot run"))
			break;
	}
	testsrv_rmtree(s->root);
	s->root[0] = '\0';
	return -1;
}

int redis_server_stop(redis_server *s)
{
	int rv = testsrv_terminate(s->pid, SIGTERM, 3000);
	s->pid = 0;
	s->paused = 0;
	return rv;
}

int redis_server_kill(redis_server *s)
{
	int rv = testsrv_terminate(s->pid, SIGKILL, 3000);
	s->pid = 0;
	s->paused = 0;
	return rv;
}

int redis_server_restart(redis_server *s, char *err, size_t errlen)
{
	int64_t deadline = mono_ms() + 5000;
	redis_server_kill(s);
	/* The old listener's port may take a moment to be free again. */
	for (;;) {
		if (redis_launch(s, err, errlen) == 0)
			return 0;
		if (mono_ms() >= deadline || strstr(err, "cannot run"))
			return -1;
		sleep_ms(100);
	}
}

int redis_server_pause(redis_server *s)
{
	if (s->pid <= 0 || kill(s->pid, SIGSTOP) != 0)
		return -1;
	s->paused = 1;
	return 0;
}

int redis_server_resume(redis_server *s)
{
	if (s->pid <= 0 || kill(s->pid, SIGCONT) != 0)
		return -1;
	s->paused = 0;
	return 0;
}

void redis_server_cleanup(redis_server *s)
{
	if (!s)
		return;
	redis_server_kill(s);
	if (s->root[0])
		testsrv_rmtree(s->root);
	s->root[0] = '\0';
}
