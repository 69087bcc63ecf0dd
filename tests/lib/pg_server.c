/* A throwaway PostgreSQL 15 server for tests (see pg_server.h). */
#include "pg_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_BIN_DEFAULT "/usr/lib/postgresql/15/bin"
#define CMD_TIMEOUT_MS 120000

extern char **environ;

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The last bytes of a file, one line, for error messages. */
static void tail(const char *path, char *out, size_t outlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t end;
	ssize_t n;
	size_t want = outlen > 1 ? outlen - 1 : 0;
	out[0] = '\0';
	if (fd < 0 || want == 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	end = lseek(fd, 0, SEEK_END);
	if (end > (off_t)want)
		lseek(fd, end - (off_t)want, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, out, want);
	close(fd);
	if (n < 0)
		n = 0;
	out[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (out[i] == '\n' || out[i] == '\r')
			out[i] = '|';
}

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Run bin_dir/prog with args (NULL-terminated), as `postgres` when
 * as_postgres, in root, output appended to cmd_log, with no inherited
 * descriptors beyond 0-2. Returns the exit status (0 = success), or -1
 * when it could not run or timed out. */
static int run(pg_server *s, const char *prog, const char *const *args,
               char *err, size_t errlen)
{
	const char *argv[32];
	char path[256];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int n = 0, rc, status = 0, logfd;
	long long end;

	snprintf(path, sizeof path, "%s/%s", s->bin_dir, prog);
	if (s->as_postgres) {
		argv[n++] = access("/usr/sbin/runuser", X_OK) == 0
		                ? "/usr/sbin/runuser"
		                : "/sbin/runuser";
		argv[n++] = "-u";
		argv[n++] = "postgres";
		argv[n++] = "--";
	}
	argv[n++] = path;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	logfd = open(s->cmd_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	             0644);
	if (logfd < 0) {
		errf(err, errlen, "cannot open %s: %s", s->cmd_log,
		     strerror(errno));
		return -1;
	}
	dprintf(logfd, "+ %s %s\n", prog, args[0] ? args[0] : "");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, logfd, 1);
	posix_spawn_file_actions_adddup2(&fa, logfd, 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawn_file_actions_addchdir_np(&fa, s->root);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv,
	                 environ);
	posix_spawn_file_actions_destroy(&fa);
	close(logfd);
	if (rc != 0) {
		errf(err, errlen, "cannot run %s: %s", argv[0], strerror(rc));
		return -1;
	}
	end = mono_ms() + CMD_TIMEOUT_MS;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			errf(err, errlen, "waitpid: %s", strerror(errno));
			return -1;
		}
		if (mono_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			errf(err, errlen, "%s %s timed out after %d s", prog,
			     args[0] ? args[0] : "", CMD_TIMEOUT_MS / 1000);
			return -1;
		}
		sleep_ms(10);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	{
		char t[400];
		tail(s->cmd_log, t, sizeof t);
		errf(err, errlen, "%s failed (status %d); %s ends: %s", prog,
		     WIFEXITED(status) ? WEXITSTATUS(status) : -1, s->cmd_log,
		     t);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static int give_to_postgres(pg_server *s, const char *path, char *err,
                            size_t errlen)
{
	struct passwd *pw;
	if (!s->as_postgres)
		return 0;
	pw = getpwnam("postgres");
	if (!pw) {
		errf(err, errlen,
		     "running as root but there is no `postgres` user to run "
		     "initdb as (install the postgresql package)");
		return -1;
	}
	if (chown(path, pw->pw_uid, pw->pw_gid) != 0) {
		errf(err, errlen, "chown %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The state letter of a process from /proc (0 when it does not exist). */
static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512], st = 0;
	FILE *f;
	size_t n;
	char *p;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p && p[1] == ' ' && p[2]) {
		st = p[2];
		if (ppid)
			*ppid = (pid_t)strtol(p + 4, NULL, 10);
	}
	return st;
}

/* Whether pid is alive (a zombie is not; one of ours is reaped). */
static int alive(pid_t pid)
{
	char st;
	waitpid(pid, NULL, WNOHANG);
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 0;
	st = proc_state(pid, NULL);
	return st != 0 && st != 'Z' && st != 'X';
}

/* The pids whose parent is ppid (at most max), from /proc. */
static size_t children(pid_t ppid, pid_t *out, size_t max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL && n < max) {
		pid_t pid, pp = 0;
		char *end;
		pid = (pid_t)strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		if (proc_state(pid, &pp) && pp == ppid)
			out[n++] = pid;
	}
	closedir(d);
	return n;
}

/* Wait up to ms until none of pids is alive. */
static int wait_gone(const pid_t *pids, size_t n, int ms)
{
	long long end = mono_ms() + ms;
	for (;;) {
		size_t left = 0;
		for (size_t i = 0; i < n; i++)
			left += alive(pids[i]) ? 1 : 0;
		if (!left)
			return 0;
		if (mono_ms() > end)
			return -1;
		sleep_ms(5);
	}
}

static pid_t read_pid(const pg_server *s)
{
	char path[256];
	long v = 0;
	FILE *f;
	snprintf(path, sizeof path, "%s/postmaster.pid", s->data_dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &v) != 1)
		v = 0;
	fclose(f);
	return (pid_t)v;
}

static int pg_ctl_start(pg_server *s, char *err, size_t errlen)
{
	const char *args[] = {"-D", s->data_dir, "-l", s->log_file, "-w",
	                      "-t", "60", "-s", "start", NULL};
	if (run(s, "pg_ctl", args, err, errlen) != 0) {
		char t[400];
		size_t l = strlen(err);
		tail(s->log_file, t, sizeof t);
		errf(err + l, errlen > l ? errlen - l : 0,
		     "; server log %s ends: %s", s->log_file, t);
		return -1;
	}
	s->pid = read_pid(s);
	if (s->pid <= 0) {
		errf(err, errlen, "the server started but %s/postmaster.pid "
		     "gives no pid", s->data_dir);
		return -1;
	}
	return 0;
}

static int write_conf(pg_server *s, char *err, size_t errlen)
{
	char path[256];
	FILE *f;
	snprintf(path, sizeof path, "%s/postgresql.conf", s->data_dir);
	f = fopen(path, "ae");
	if (!f) {
		errf(err, errlen, "cannot append to %s: %s", path,
		     strerror(errno));
		return -1;
	}
	fprintf(f,
	        "\n# pg_server (tests): throwaway data, speed over safety\n"
	        "listen_addresses = '127.0.0.1'\n"
	        "port = %d\n"
	        "unix_socket_directories = '%s'\n"
	        "fsync = off\n"
	        "full_page_writes = off\n"
	        "max_connections = 200\n"
	        "shared_buffers = 64MB\n"
	        "log_min_messages = warning\n"
	        "log_min_error_statement = panic\n",
	        s->port, s->sock_dir);
	if (fclose(f) != 0) {
		errf(err, errlen, "cannot write %s", path);
		return -1;
	}
	return 0;
}

static int admin_exec(pg_server *s, const char *sql, char *err,
                      size_t errlen)
{
	char url[200];
	snprintf(url, sizeof url, "postgresql://chat@127.0.0.1:%d/postgres",
	         s->port);
	return pg_server_exec(url, sql, err, errlen);
}

int pg_server_start(pg_server *s, char *err, size_t errlen)
{
	const char *bin = getenv("CHAT_PG_BIN");
	const char *tmp = getenv("TMPDIR");
	char path[256];

	memset(s, 0, sizeof *s);
	snprintf(s->bin_dir, sizeof s->bin_dir, "%s",
	         bin && *bin ? bin : PG_BIN_DEFAULT);
	snprintf(path, sizeof path, "%s/initdb", s->bin_dir);
	if (access(path, X_OK) != 0) {
		errf(err, errlen,
		     "PostgreSQL 15 is not installed: %s not found (install "
		     "the Debian package postgresql-15, as scripts/deps.sh "
		     "does, or point CHAT_PG_BIN at its bin directory)",
		     path);
		return -1;
	}
	snprintf(path, sizeof path, "%s/pg_ctl", s->bin_dir);
	if (access(path, X_OK) != 0) {
		errf(err, errlen, "PostgreSQL is incomplete: %s not found",
		     path);
		return -1;
	}
	/* pg_ctl leaves the postmaster orphaned: as a subreaper this process
	 * inherits it and reaps it (and its children) by pid, so that no
	 * zombie keeps its lock files alive after a kill. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	s->as_postgres = geteuid() == 0;
	/* /tmp, not a long TMPDIR: the socket path must stay short. */
	snprintf(s->root, sizeof s->root, "%s/chat-pg.XXXXXX",
	         tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(s->root)) {
		errf(err, errlen, "mkdtemp %s: %s", s->root, strerror(errno));
		s->root[0] = '\0';
		return -1;
	}
	snprintf(s->data_dir, sizeof s->data_dir, "%s/data", s->root);
	snprintf(s->sock_dir, sizeof s->sock_dir, "%s/sock", s->root);
	snprintf(s->log_file, sizeof s->log_file, "%s/postgres.log", s->root);
	snprintf(s->cmd_log, sizeof s->cmd_log, "%s/commands.log", s->root);
	if (mkdir(s->sock_dir, 0700) != 0) {
		errf(err, errlen, "mkdir %s: %s", s->sock_dir,
		     strerror(errno));
		goto fail;
	}
	if (give_to_postgres(s, s->root, err, errlen) ||
	    give_to_postgres(s, s->sock_dir, err, errlen))
		goto fail;
	{
		const char *args[] = {"-D", s->data_dir, "--auth=trust",
		                      "-U", "chat", "-E", "UTF8",
		                      "--locale=C.UTF-8", "--no-sync", NULL};
		if (run(s, "initdb", args, err, errlen) != 0)
			goto fail;
	}
	s->port = free_port();
	if (s->port <= 0) {
		errf(err, errlen, "no free port on 127.0.0.1");
		goto fail;
	}
	if (write_conf(s, err, errlen) || pg_ctl_start(s, err, errlen))
		goto fail;
	if (admin_exec(s, "CREATE DATABASE chat", err, errlen))
		goto fail;
	snprintf(s->url, sizeof s->url, "postgresql://chat@127.0.0.1:%d/chat",
	         s->port);
	return 0;
fail:
	pg_server_cleanup(s);
	return -1;
}

int pg_server_stop(pg_server *s, char *err, size_t errlen)
{
	const char *args[] = {"-D", s->data_dir, "-m", "fast", "-w",
	                      "-t", "60", "-s", "stop", NULL};
	pid_t pid = s->pid, kids[256];
	size_t n;
	if (pid <= 0)
		return 0;
	n = children(pid, kids, 255);
	kids[n++] = pid;
	if (run(s, "pg_ctl", args, err, errlen) != 0)
		return -1;
	if (wait_gone(kids, n, 10000)) {
		errf(err, errlen,
		     "postmaster %d stopped but some of its processes remain",
		     (int)pid);
		return -1;
	}
	s->pid = 0;
	return 0;
}

int pg_server_kill(pg_server *s)
{
	pid_t pid = s->pid, kids[256];
	char path[256];
	size_t n;
	if (pid <= 0)
		return 0;
	/* Every server process calls setsid, so there is no process group
	 * to signal: freeze the postmaster (it can start no new child),
	 * list its children, then kill them all by pid. */
	kill(pid, SIGSTOP);
	n = children(pid, kids, 255);
	for (size_t i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	kill(pid, SIGKILL);
	kids[n++] = pid;
	if (wait_gone(kids, n, 10000))
		return -1;
	s->pid = 0;
	/* Lock files naming a pid that is gone are ignored at the next start;
	 * ones naming a zombie nobody reaped would not be: drop them. */
	if (kill(pid, 0) == 0) {
		snprintf(path, sizeof path, "%s/postmaster.pid", s->data_dir);
		unlink(path);
		snprintf(path, sizeof path, "%s/.s.PGSQL.%d.lock", s->sock_dir,
		         s->port);
		unlink(path);
	}
	return 0;
}

int pg_server_restart(pg_server *s, char *err, size_t errlen)
{
	if (s->pid > 0) {
		errf(err, errlen, "the server is still running (pid %d)",
		     (int)s->pid);
		return -1;
	}
	if (!s->root[0]) {
		errf(err, errlen, "no server was started");
		return -1;
	}
	return pg_ctl_start(s, err, errlen);
}

int pg_server_create_db(pg_server *s, const char *name, char *url,
                        size_t urllen, char *err, size_t errlen)
{
	char sql[160];
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > 48 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
	                                    "0123456789_") != n) {
		errf(err, errlen, "bad database name");
		return -1;
	}
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)",
	         name);
	if (admin_exec(s, sql, err, errlen))
		return -1;
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	if (admin_exec(s, sql, err, errlen))
		return -1;
	snprintf(url, urllen, "postgresql://chat@127.0.0.1:%d/%s", s->port,
	         name);
	return 0;
}

static void notice_ignore(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static PGconn *connect_url(const char *url, char *err, size_t errlen)
{
	const char *keys[] = {"connect_timeout", "dbname", NULL};
	const char *vals[] = {"10", url, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		errf(err, errlen, "cannot connect to %s: %s", url,
		     c ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, notice_ignore, NULL);
	return c;
}

int pg_server_exec(const char *url, const char *sql, char *err,
                   size_t errlen)
{
	PGconn *c = connect_url(url, err, errlen);
	PGresult *r;
	int ok;
	if (!c)
		return -1;
	r = PQexec(c, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
	     PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		errf(err, errlen, "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

int pg_server_query_i64(const char *url, const char *sql, long long *out,
                        char *err, size_t errlen)
{
	PGconn *c = connect_url(url, err, errlen);
	PGresult *r;
	int ret = -1;
	if (!c)
		return -1;
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		errf(err, errlen, "%s: %s", sql, PQerrorMessage(c));
	else if (PQntuples(r) < 1 || PQnfields(r) < 1)
		errf(err, errlen, "%s: no rows", sql);
	else if (PQgetisnull(r, 0, 0))
		errf(err, errlen, "%s: NULL", sql);
	else {
		*out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		ret = 0;
	}
	PQclear(r);
	PQfinish(c);
	return ret;
}

void pg_server_cleanup(pg_server *s)
{
	char err[256];
	if (!s)
		return;
	if (s->pid > 0 && pg_server_stop(s, err, sizeof err) != 0) {
		fprintf(stderr, "pg_server: clean stop failed (%s); killing\n",
		        err);
		pg_server_kill(s);
	}
	s->pid = 0;
	if (s->root[0] && getenv("CHAT_PG_KEEP") && *getenv("CHAT_PG_KEEP")) {
		fprintf(stderr, "pg_server: kept %s (CHAT_PG_KEEP)\n", s->root);
		s->root[0] = '\0';
	}
	if (s->root[0]) {
		nftw(s->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		s->root[0] = '\0';
	}
}
