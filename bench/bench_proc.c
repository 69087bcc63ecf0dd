/* Figures from /proc: a process's CPU ticks and memory, the kernel's TCP
 * socket memory and slab; and the clocks the bench runs on. */
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

/* utime and stime: fields 14 and 15, counted after the ')' that ends the
 * command name (which may hold spaces). */
static int read_stat(int pid, uint64_t *ticks)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
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
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	           &ut, &st) != 2)
		return -1;
	*ticks = (uint64_t)ut + st;
	return 0;
}

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
			p->rss_kib = v;
		else if (sscanf(line, "VmHWM: %llu", &v) == 1)
			p->hwm_kib = v;
		else if (sscanf(line, "Threads: %llu", &v) == 1)
			p->threads = v;
	}
	fclose(f);
	return 0;
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

int bench_proc_sample(int pid, bench_proc *p)
{
	memset(p, 0, sizeof *p);
	p->t_ns = bench_now_ns();
	read_sockstat(p);
	read_meminfo(p);
	read_sysstat(p);
	if (pid <= 0)
		return 0;
	if (read_stat(pid, &p->cpu_ticks) != 0 || read_status(pid, p) != 0)
		return -1;
	return 0;
}
