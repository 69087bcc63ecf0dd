/* Length-prefixed messages between the coordinator and its workers over a
 * socketpair: {uint32 type, uint32 len} then len bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define IPC_MAX (256u << 20)

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n)
{
	char *c = p;
	while (n) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

int bench_ipc_send(int fd, uint32_t type, const void *a, size_t alen,
                   const void *b, size_t blen)
{
	uint32_t h[2];

	if (alen + blen > IPC_MAX)
		return -1;
	h[0] = type;
	h[1] = (uint32_t)(alen + blen);
	if (write_all(fd, h, sizeof h) != 0)
		return -1;
	if (alen && write_all(fd, a, alen) != 0)
		return -1;
	if (blen && write_all(fd, b, blen) != 0)
		return -1;
	return 0;
}

int bench_ipc_recv(int fd, uint32_t *type, void **buf, size_t *len)
{
	uint32_t h[2];
	void *p = NULL;

	*buf = NULL;
	*len = 0;
	if (read_all(fd, h, sizeof h) != 0 || h[1] > IPC_MAX)
		return -1;
	if (h[1]) {
		p = malloc(h[1]);
		if (!p || read_all(fd, p, h[1]) != 0) {
			free(p);
			return -1;
		}
	}
	*type = h[0];
	*buf = p;
	*len = h[1];
	return 0;
}
