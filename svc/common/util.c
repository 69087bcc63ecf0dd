#include "chat_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t chat_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t chat_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t chat_mono_ms(void)
{
	return chat_mono_us() / 1000;
}

void chat_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint64_t chat_random_u64(void)
{
	uint64_t v;
	do {
		randombytes_buf(&v, sizeof v);
	} while (v == 0);
	return v;
}

void chat_random_hex(char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	if (len == 0)
		return;
	for (size_t i = 0; i + 1 < len; i++)
		buf[i] = hex[randombytes_uniform(16)];
	buf[len - 1] = '\0';
}

int chat_read_file(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n = 0, cap = 4096;

	if (!f)
		return -1;
	buf = malloc(cap);
	if (!buf)
		goto fail;
	for (;;) {
		size_t r;
		if (n + 1 >= cap) {
			char *nb;
			if (cap > max + 1) {
				errno = EFBIG;
				goto fail;
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb)
				goto fail;
			buf = nb;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f) || n > max) {
		errno = ferror(f) ? EIO : EFBIG;
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
fail:
	free(buf);
	fclose(f);
	return -1;
}

int chat_mkdirs(const char *path, unsigned mode)
{
	char tmp[4096];
	size_t n = chat_strlcpy(tmp, path, sizeof tmp);
	if (n >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

int chat_secret_load_or_create(const char *path, size_t bytes, char **secret,
                               size_t *len, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t n = 0;

	if (bytes < 32)
		bytes = 32;
	if (chat_read_file(path, 4096, &buf, &n) == 0) {
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
		                 buf[n - 1] == ' '))
			buf[--n] = '\0';
		if (n < 32) {
			snprintf(err, errlen,
			         "secret file %s holds %zu bytes; at least 32 needed",
			         path, n);
			free(buf);
			return -1;
		}
		*secret = buf;
		*len = n;
		return 0;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "cannot read secret file %s: %s", path,
		         strerror(errno));
		return -1;
	}
	{
		char dir[4096];
		char *slash;
		chat_strlcpy(dir, path, sizeof dir);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (chat_mkdirs(dir, 0700) != 0) {
				snprintf(err, errlen, "cannot create %s: %s", dir,
				         strerror(errno));
				return -1;
			}
		}
	}
	{
		size_t hexlen = bytes * 2;
		unsigned char *raw = malloc(bytes);
		int fd;
		buf = malloc(hexlen + 2);
		if (!raw || !buf) {
			free(raw);
			free(buf);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		randombytes_buf(raw, bytes);
		sodium_bin2hex(buf, hexlen + 1, raw, bytes);
		sodium_memzero(raw, bytes);
		free(raw);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0) {
			snprintf(err, errlen, "cannot create secret file %s: %s",
			         path, strerror(errno));
			free(buf);
			return -1;
		}
		buf[hexlen] = '\n';
		if (write(fd, buf, hexlen + 1) != (ssize_t)(hexlen + 1) ||
		    fsync(fd) != 0) {
			snprintf(err, errlen, "cannot write secret file %s: %s",
			         path, strerror(errno));
			close(fd);
			free(buf);
			return -1;
		}
		close(fd);
		buf[hexlen] = '\0';
		*secret = buf;
		*len = hexlen;
	}
	return 0;
}

size_t chat_strlcpy(char *dst, const char *src, size_t dstlen)
{
	size_t n = strlen(src);
	if (dstlen) {
		size_t c = n < dstlen - 1 ? n : dstlen - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

int chat_utf8_valid_text(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		size_t need;
		unsigned cp;
		if (c < 0x80) {
			if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i <= need)
			return 0;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		/* C1 controls are as unwelcome as C0 ones. */
		if (cp >= 0x80 && cp < 0xa0)
			return 0;
		i += need + 1;
	}
	return 1;
}

void chat_put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

uint64_t chat_get_be64(const uint8_t in[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | in[i];
	return v;
}

long chat_raise_nofile(void)
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
