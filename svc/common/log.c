#include "chat_log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int chat_log_level_current = CHAT_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "off"};

int chat_log_set_level(const char *name)
{
	for (int i = 0; i <= CHAT_LOG_OFF; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			chat_log_level_current = i;
			return 0;
		}
	}
	return -1;
}

void chat_log_write(int level, const char *svc, const char *event,
                    const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int r;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	r = snprintf(line, sizeof line,
	             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s svc=%s event=%s",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	             tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
	             level_names[level < 0 ? 0 : level > 3 ? 3 : level], svc,
	             event);
	n = r < 0 ? 0 : (size_t)r;
	if (fmt && fmt[0] && n < sizeof line - 2) {
		va_list ap;
		line[n++] = ' ';
		va_start(ap, fmt);
		r = vsnprintf(line + n, sizeof line - n, fmt, ap);
		va_end(ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	/* One write per line keeps lines from different threads whole. */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
}
