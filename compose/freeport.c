/*
 * chat-freeport: port helpers for the local fleet scripts (POSIX sh has no
 * sockets).
 *
 *   chat-freeport [COUNT]          print COUNT (default 1) distinct TCP
 *                                  ports free on 127.0.0.1, one a line
 *   chat-freeport --check HOST PORT [TIMEOUT_MS]
 *                                  exit 0 when a TCP connect to HOST:PORT
 *                                  succeeds within TIMEOUT_MS (default 1000),
 *                                  1 otherwise
 *   chat-freeport --ask HOST PORT WORD [TIMEOUT_MS]
 *                                  connect, send WORD (e.g. ZooKeeper's
 *                                  "ruok"), print the reply (at most 64 KiB,
 *                                  until the peer closes); 1 on failure
 *
 * Ports are found by binding port 0 (the kernel picks an unused one); all
 * COUNT sockets stay bound until every port is known, so the ports are
 * distinct. Between this program's exit and the server's bind another
 * process may take a port: callers retry a server that fails to bind.
 * Exit status 2 means bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FREEPORT_MAX 64

static int usage(void)
{
	fputs("usage: chat-freeport [COUNT]\n"
	      "       chat-freeport --check HOST PORT [TIMEOUT_MS]\n"
	      "       chat-freeport --ask HOST PORT WORD [TIMEOUT_MS]\n",
	      stderr);
	return 2;
}

/* Parses a decimal in [lo, hi] into *out; 0 on success, -1 otherwise. */
static int parse_num(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Binds COUNT sockets to 127.0.0.1:0 and prints their ports. */
static int print_free_ports(long count)
{
	int fds[FREEPORT_MAX];
	long i, n = 0;
	int rc = 1;

	for (i = 0; i < count; i++) {
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0) {
			perror("chat-freeport: socket");
			goto fail;
		}
		fds[n++] = fd;
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = 0;
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
			perror("chat-freeport: bind");
			goto fail;
		}
		printf("%u\n", (unsigned)ntohs(sa.sin_port));
	}
	rc = fflush(stdout) == 0 ? 0 : 1;
fail:
	for (i = 0; i < n; i++)
		close(fds[i]);
	return rc;
}

/*
 * Connects to host:port within timeout_ms. Returns a connected, blocking
 * socket, or -1.
 */
static int connect_to(const char *host, const char *port, long timeout_ms)
{
	struct addrinfo hints, *res = NULL, *ai;
	int out = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL && out < 0; ai = ai->ai_next) {
		struct pollfd p;
		int err = 0, ok = 0;
		socklen_t elen = sizeof(err);
		int fd = socket(ai->ai_family, ai->ai_socktype, 0);

		if (fd < 0)
			continue;
		if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
			close(fd);
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			ok = 1;
		} else if (errno == EINPROGRESS) {
			p.fd = fd;
			p.events = POLLOUT;
			p.revents = 0;
			if (poll(&p, 1, (int)timeout_ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) ==
			        0 &&
			    err == 0)
				ok = 1;
		}
		if (ok && fcntl(fd, F_SETFL, 0) == 0)
			out = fd;
		else
			close(fd);
	}
	freeaddrinfo(res);
	return out;
}

/* Sends word, prints what comes back until EOF or timeout_ms of silence. */
static int ask(int fd, const char *word, long timeout_ms)
{
	static char buf[65536];
	size_t len = strlen(word), got = 0;
	struct pollfd p;

	if (write(fd, word, len) != (ssize_t)len)
		return 1;
	for (;;) {
		ssize_t n;

		p.fd = fd;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, (int)timeout_ms) != 1)
			return 1;
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n < 0)
			return 1;
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == sizeof(buf))
			break;
	}
	if (got == 0)
		return 1;
	return fwrite(buf, 1, got, stdout) == got && fflush(stdout) == 0 ? 0
	                                                                 : 1;
}

int main(int argc, char **argv)
{
	long count = 1, timeout_ms = 1000, port;
	int fd, rc;

	if (argc >= 2 && strcmp(argv[1], "--check") == 0) {
		if (argc < 4 || argc > 5 || parse_num(argv[3], 1, 65535, &port))
			return usage();
		if (argc == 5 && parse_num(argv[4], 1, 600000, &timeout_ms))
			return usage();
		fd = connect_to(argv[2], argv[3], timeout_ms);
		if (fd < 0)
			return 1;
		close(fd);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--ask") == 0) {
		if (argc < 5 || argc > 6 || parse_num(argv[3], 1, 65535, &port))
			return usage();
		if (argc == 6 && parse_num(argv[5], 1, 600000, &timeout_ms))
			return usage();
		fd = connect_to(argv[2], argv[3], timeout_ms);
		if (fd < 0)
			return 1;
		rc = ask(fd, argv[4], timeout_ms);
		close(fd);
		return rc;
	}
	if (argc > 2)
		return usage();
	if (argc == 2 && parse_num(argv[1], 1, FREEPORT_MAX, &count))
		return usage();
	return print_free_ports(count);
}
