/* Figures from /proc: the CPU ticks and memory of a list of processes
 * with their descendants, the kernel's TCP socket memory and slab; and
 * the clocks the bench runs on. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

int64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_until(int64_t t)
{
	struct timespec ts;
	ts.tv_sec = t / 1000000000;
	ts.tv_nsec = t % 1000000000;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

uint64_t bench_self_cpu_ns(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
	           1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
	           1000u;
}

long bench_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return -1;
	}
	return (long)rl.rlim_cur;
}

long bench_proc_hz(void)
{
	long hz = sysconf(_SC_CLK_TCK);
	return hz > 0 ? hz : 100;
}

/* VmRSS, VmHWM and Threads of pid, added into p. */
static int read_status(int pid, bench_proc *p)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long long v;
		if (sscanf(line, "VmRSS: %llu", &v) == 1)
			p->rss_kib += v;
		else if (sscanf(line, "VmHWM: %llu", &v) == 1)
			p->hwm_kib += v;
		else if (sscanf(line, "Threads: %llu", &v) == 1)
			p->threads += v;
	}
	fclose(f);
	return 0;
}

/* One process of /proc: its parent and the CPU it has used. */
struct pent {
	int pid, ppid;
	uint64_t ticks;
};

/* ppid, and utime + stime + cutime + cstime: fields 4 and 14-17,
 * counted after the ')' that ends the command name (which may hold
 * spaces). The reaped children's time keeps a tree's sum from dropping
 * when one of its processes exits. */
static int read_stat(int pid, int *ppid, uint64_t *ticks)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	long cut = 0, cst = 0;
	int pp = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2,
	                 "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
	                 "%ld %ld",
	                 &pp, &ut, &st, &cut, &cst) != 5)
		return -1;
	*ppid = pp;
	*ticks = (uint64_t)ut + st + (uint64_t)(cut > 0 ? cut : 0) +
	         (uint64_t)(cst > 0 ? cst : 0);
	return 0;
}

/* Every process in /proc; *n entries, malloc'ed (NULL on failure). */
static struct pent *scan_proc(size_t *n)
{
	struct pent *e = NULL;
	size_t cap = 0;
	struct dirent *d;
	DIR *dir = opendir("/proc");

	*n = 0;
	if (!dir)
		return NULL;
	while ((d = readdir(dir)) != NULL) {
		char *end;
		long pid = strtol(d->d_name, &end, 10);
		struct pent pe;
		if (*end || pid <= 0)
			continue;
		pe.pid = (int)pid;
		/* It may have exited since readdir saw it. */
		if (read_stat(pe.pid, &pe.ppid, &pe.ticks) != 0)
			continue;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 512;
			struct pent *ne = realloc(e, nc * sizeof *ne);
			if (!ne) {
				free(e);
				closedir(dir);
				*n = 0;
				return NULL;
			}
			e = ne;
			cap = nc;
		}
		e[(*n)++] = pe;
	}
	closedir(dir);
	return e;
}

/* Mark in m the entries that are one of pids or below one of them.
 * Returns 0, or -1 when a listed pid is not running. */
static int mark_tree(const struct pent *e, size_t n, const int *pids,
                     int npids, unsigned char *m)
{
	int changed;

	memset(m, 0, n);
	for (int k = 0; k < npids; k++) {
		size_t i = 0;
		while (i < n && e[i].pid != pids[k])
			i++;
		if (i == n)
			return -1;
		m[i] = 1;
	}
	/* One pass per level: the trees here are one or two deep. */
	do {
		changed = 0;
		for (size_t i = 0; i < n; i++) {
			if (m[i])
				continue;
			for (size_t j = 0; j < n; j++)
				if (m[j] && e[j].pid == e[i].ppid) {
					m[i] = 1;
					changed = 1;
					break;
				}
		}
	} while (changed);
	return 0;
}

/* The CPU sum of the pid trees into *ticks, and each of their
 * processes' memory added into p when p is given. Returns 0 or -1. */
static int tree_sum(const int *pids, int npids, uint64_t *ticks, bench_proc *p)
{
	size_t n;
	struct pent *e = scan_proc(&n);
	unsigned char *m = e ? malloc(n + 1) : NULL;
	int rc = -1;

	*ticks = 0;
	if (!m || mark_tree(e, n, pids, npids, m) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!m[i])
			continue;
		*ticks += e[i].ticks;
		if (p)
			read_status(e[i].pid, p);
	}
	rc = 0;
out:
	free(m);
	free(e);
	return rc;
}

static void read_sockstat(bench_proc *p)
{
	char line[256];
	FILE *f = fopen("/proc/net/sockstat", "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		unsigned long long inuse, mem;
		char *m;
		if (strncmp(line, "TCP:", 4) != 0)
			continue;
		if (sscanf(line, "TCP: inuse %llu", &inuse) == 1)
			p->tcp_inuse = inuse;
		m = strstr(line, " mem ");
		if (m && sscanf(m, " mem %llu", &mem) == 1)
			p->tcp_mem_pages = mem;
	}
	fclose(f);
}

static void read_meminfo(bench_proc *p)
{
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		unsigned long long v;
		if (sscanf(line, "Slab: %llu", &v) == 1)
			p->slab_kib = v;
	}
	fclose(f);
}

/* The machine's busy and total CPU ticks (all cores) from /proc/stat. */
static void read_sysstat(bench_proc *p)
{
	unsigned long long v[10] = {0};
	char line[512];
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return;
	if (fgets(line, sizeof line, f) &&
	    sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
	           &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) >= 4) {
		uint64_t total = 0;
		for (int i = 0; i < 8; i++)
			total += v[i];
		p->sys_total = total;
		/* minus idle, iowait and steal (the hypervisor's) */
		p->sys_busy = total - v[3] - v[4] - v[7];
	}
	fclose(f);
}

int bench_proc_sample(const int *pids, int npids, bench_proc *p)
{
	memset(p, 0, sizeof *p);
	p->t_ns = bench_now_ns();
	read_sockstat(p);
	read_meminfo(p);
	read_sysstat(p);
	if (npids <= 0)
		return 0;
	if (tree_sum(pids, npids, &p->cpu_ticks, p) != 0) {
		p->cpu_ticks = p->rss_kib = p->hwm_kib = p->threads = 0;
		return -1;
	}
	return 0;
}

int bench_proc_tree_ticks(const int *pids, int npids, uint64_t *ticks)
{
	return tree_sum(pids, npids, ticks, NULL);
}

int bench_parse_pids(const char *s, int *out, int max)
{
	int n = 0;

	while (*s) {
		char *end;
		long v;
		errno = 0;
		v = strtol(s, &end, 10);
		if (end == s || errno || v <= 0 || v > (1L << 30) ||
		    n == max || (*end && *end != ','))
			return -1;
		out[n++] = (int)v;
		s = end;
		if (*s == ',' && !*++s)
			return -1; /* a trailing comma */
	}
	return n;
}
