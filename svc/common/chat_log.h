/* Logging: one line per event on stderr, a stable event name and key=value
 * fields: `ts=... level=info svc=store event=batch_commit n=42`.
 * The level is checked before anything is formatted. */
#ifndef CHAT_LOG_H
#define CHAT_LOG_H

#include <stdarg.h>

enum chat_log_level {
	CHAT_LOG_DEBUG = 0,
	CHAT_LOG_INFO = 1,
	CHAT_LOG_WARN = 2,
	CHAT_LOG_ERROR = 3,
	CHAT_LOG_OFF = 4,
};

extern int chat_log_level_current;

/* Set the level from a name ("debug", "info", "warn", "error", "off").
 * Returns 0, or -1 for an unknown name (level unchanged). */
int chat_log_set_level(const char *name);

/* Formats and writes one line. fmt holds the key=value fields. Thread-safe
 * (a single write(2) per line). Use the macros below. */
void chat_log_write(int level, const char *svc, const char *event,
                    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define CHAT_LOG(lvl, svc, event, ...)                                         \
	do {                                                                   \
		if ((lvl) >= chat_log_level_current)                           \
			chat_log_write((lvl), (svc), (event), __VA_ARGS__);    \
	} while (0)

#ifdef NDEBUG_LOG
#define chat_debug(svc, event, ...) ((void)0)
#else
#define chat_debug(svc, event, ...) CHAT_LOG(CHAT_LOG_DEBUG, svc, event, __VA_ARGS__)
#endif
#define chat_info(svc, event, ...) CHAT_LOG(CHAT_LOG_INFO, svc, event, __VA_ARGS__)
#define chat_warn(svc, event, ...) CHAT_LOG(CHAT_LOG_WARN, svc, event, __VA_ARGS__)
#define chat_error(svc, event, ...) CHAT_LOG(CHAT_LOG_ERROR, svc, event, __VA_ARGS__)

#endif
