/* Small helpers: clocks, ids, files. */
#ifndef CHAT_UTIL_H
#define CHAT_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the epoch. */
int64_t chat_now_ms(void);

/* Monotonic clock in microseconds (for latency and deadlines in-process). */
int64_t chat_mono_us(void);

/* Monotonic clock in milliseconds. */
int64_t chat_mono_ms(void);

/* Format a reason into err (errlen bytes; nothing when err is NULL or
 * errlen 0). For the "char *err, size_t errlen" out-parameters. */
void chat_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A random 64-bit value from libsodium (never 0). */
uint64_t chat_random_u64(void);

/* Fill buf with a random hex id of len-1 characters and a NUL. */
void chat_random_hex(char *buf, size_t len);

/* Read a whole file into a malloc'ed buffer (NUL-terminated; *len excludes
 * the NUL). Refuses files larger than max. Returns 0 or -1 with errno. */
int chat_read_file(const char *path, size_t max, char **out, size_t *len);

/* Load the secret in path; when the file does not exist, create it (mode
 * 0600, parent directories 0700) holding `bytes` random bytes in hex. The
 * secret is at least 32 bytes. Returns 0 or -1 with a reason in err. */
int chat_secret_load_or_create(const char *path, size_t bytes, char **secret,
                               size_t *len, char *err, size_t errlen);

/* mkdir -p with the given mode. Returns 0 or -1 with errno. */
int chat_mkdirs(const char *path, unsigned mode);

/* Copy at most dstlen-1 bytes and NUL-terminate. Returns strlen(src). */
size_t chat_strlcpy(char *dst, const char *src, size_t dstlen);

/* Whether s is valid UTF-8 of len bytes with no NUL and no C0 control
 * character other than tab and newline (what a chat body may hold). */
int chat_utf8_valid_text(const char *s, size_t len);

/* Raise the soft limit on open files to the hard limit (many sessions
 * need many descriptors; libwebsockets sizes its tables from the limit at
 * context creation, so call this first). Returns the new soft limit, or
 * -1. */
long chat_raise_nofile(void);

/* Store/load a uint64 as 8 big-endian bytes (Kafka keys). */
void chat_put_be64(uint8_t out[8], uint64_t v);
uint64_t chat_get_be64(const uint8_t in[8]);

#endif
