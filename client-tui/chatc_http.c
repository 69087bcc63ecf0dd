/* Blocking HTTP/1.1 client and response parser. */
#include "chatc_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat_json.h"
#include "chat_util.h"

int chatc_url_parse(const char *url, chatc_url *out, char *err, size_t errlen)
{
	const char *p, *hs, *he, *ps;
	size_t n;

	memset(out, 0, sizeof *out);
	if (!url) {
		chat_errf(err, errlen, "no URL");
		return -1;
	}
	if (strncasecmp(url, "http://", 7) == 0) {
		strcpy(out->scheme, "http");
		p = url + 7;
	} else if (strncasecmp(url, "ws://", 5) == 0) {
		strcpy(out->scheme, "ws");
		p = url + 5;
	} else {
		chat_errf(err, errlen,
		       "unsupported URL '%s' (want http://HOST:PORT or "
		       "ws://HOST:PORT/PATH)",
		       url);
		return -1;
	}
	if (*p == '[') {
		hs = p + 1;
		he = strchr(hs, ']');
		if (!he) {
			chat_errf(err, errlen, "bad IPv6 host in URL '%s'", url);
			return -1;
		}
		p = he + 1;
	} else {
		hs = p;
		while (*p && *p != ':' && *p != '/' && *p != '?')
			p++;
		he = p;
	}
	n = (size_t)(he - hs);
	if (n == 0 || n >= sizeof out->host) {
		chat_errf(err, errlen, "bad host in URL '%s'", url);
		return -1;
	}
	memcpy(out->host, hs, n);
	out->host[n] = '\0';
	out->port = 80;
	if (*p == ':') {
		long v = 0;
		int digits = 0;
		p++;
		while (isdigit((unsigned char)*p) && digits < 6) {
			v = v * 10 + (*p - '0');
			p++;
			digits++;
		}
		if (digits == 0 || v < 1 || v > 65535) {
			chat_errf(err, errlen, "bad port in URL '%s'", url);
			return -1;
		}
		out->port = (int)v;
	}
	if (*p != '\0' && *p != '/' && *p != '?') {
		chat_errf(err, errlen, "bad URL '%s'", url);
		return -1;
	}
	ps = p;
	if (*ps == '\0') {
		strcpy(out->path, "/");
	} else {
		size_t pl = strlen(ps);
		if (pl + 2 > sizeof out->path) {
			chat_errf(err, errlen, "URL path too long");
			return -1;
		}
		if (*ps == '?')
			snprintf(out->path, sizeof out->path, "/%s", ps);
		else
			memcpy(out->path, ps, pl + 1);
	}
	for (const char *q = out->path; *q; q++) {
		if ((unsigned char)*q <= ' ' || *q == 0x7f) {
			chat_errf(err, errlen, "bad character in URL path");
			return -1;
		}
	}
	return 0;
}

/* Copy at most outlen-1 bytes of [s, s+n) trimmed of spaces and tabs. */
static void copy_trim(char *out, size_t outlen, const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

static const char *find_crlf(const char *p, const char *end)
{
	for (; p + 1 < end; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return NULL;
}

static int parse_status_line(const char *p, const char *eol,
                             chatc_http_head *h, char *err, size_t errlen)
{
	if (eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
	    !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
	    !isdigit((unsigned char)p[11]) || (eol - p > 12 && p[12] != ' ')) {
		chat_errf(err, errlen, "bad HTTP status line");
		return -1;
	}
	h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (h->status < 100 || h->status > 599) {
		chat_errf(err, errlen, "bad HTTP status %d", h->status);
		return -1;
	}
	if (eol - p > 13)
		copy_trim(h->reason, sizeof h->reason, p + 13,
		          (size_t)(eol - p - 13));
	return 0;
}

static int parse_content_length(const char *v, chatc_http_head *h, char *err,
                                 size_t errlen)
{
	int64_t n = 0;
	if (!*v)
		goto bad;
	for (const char *q = v; *q; q++) {
		if (!isdigit((unsigned char)*q))
			goto bad;
		n = n * 10 + (*q - '0');
		if (n > CHATC_HTTP_MAX_BODY) {
			chat_errf(err, errlen,
			       "response body too large (Content-Length %s, "
			       "limit %d)",
			       v, CHATC_HTTP_MAX_BODY);
			return -1;
		}
	}
	if (h->content_length >= 0 && h->content_length != n) {
		chat_errf(err, errlen, "conflicting Content-Length headers");
		return -1;
	}
	h->content_length = n;
	return 0;
bad:
	chat_errf(err, errlen, "bad Content-Length '%s'", v);
	return -1;
}

static int parse_header_line(const char *p, const char *eol,
                             chatc_http_head *h, char *err, size_t errlen)
{
	const char *colon = memchr(p, ':', (size_t)(eol - p));
	chatc_http_header *hd;
	size_t nl;

	if (*p == ' ' || *p == '\t') {
		chat_errf(err, errlen,
		       "folded HTTP header lines are not supported");
		return -1;
	}
	if (!colon || colon == p) {
		chat_errf(err, errlen, "bad HTTP header line");
		return -1;
	}
	nl = (size_t)(colon - p);
	for (size_t i = 0; i < nl; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch <= ' ' || ch >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?={}", ch)) {
			chat_errf(err, errlen, "bad HTTP header name");
			return -1;
		}
	}
	if (nl >= sizeof hd->name) {
		chat_errf(err, errlen, "HTTP header name too long");
		return -1;
	}
	if ((size_t)(eol - colon - 1) >= sizeof hd->value) {
		chat_errf(err, errlen, "HTTP header value too long");
		return -1;
	}
	if (h->n_headers >= CHATC_HTTP_MAX_HEADERS) {
		chat_errf(err, errlen, "too many HTTP headers (limit %d)",
		       CHATC_HTTP_MAX_HEADERS);
		return -1;
	}
	hd = &h->headers[h->n_headers++];
	memcpy(hd->name, p, nl);
	hd->name[nl] = '\0';
	copy_trim(hd->value, sizeof hd->value, colon + 1,
	          (size_t)(eol - colon - 1));
	if (strcasecmp(hd->name, "Content-Length") == 0)
		return parse_content_length(hd->value, h, err, errlen);
	if (strcasecmp(hd->name, "Transfer-Encoding") == 0) {
		chat_errf(err, errlen,
		       "unsupported Transfer-Encoding '%s' (chunked "
		       "responses are not supported)",
		       hd->value);
		return -1;
	}
	return 0;
}

int chatc_http_parse_head(const char *buf, size_t len, chatc_http_head *h,
                          char *err, size_t errlen)
{
	const char *end, *p, *eol;
	size_t scan = len < CHATC_HTTP_MAX_HEAD ? len : CHATC_HTTP_MAX_HEAD;

	memset(h, 0, sizeof *h);
	h->content_length = -1;
	end = buf + scan;
	/* Find the blank line first so a partial head costs nothing. */
	p = NULL;
	for (const char *q = buf; q + 3 < end; q++) {
		if (q[0] == '\r' && q[1] == '\n' && q[2] == '\r' &&
		    q[3] == '\n') {
			p = q;
			break;
		}
	}
	if (!p) {
		if (len >= CHATC_HTTP_MAX_HEAD) {
			chat_errf(err, errlen, "HTTP response head over %d bytes",
			       CHATC_HTTP_MAX_HEAD);
			return -1;
		}
		/* A status line can be checked early. */
		if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0) {
			chat_errf(err, errlen, "not an HTTP response");
			return -1;
		}
		return 0;
	}
	end = p + 2; /* the last header line's CRLF */
	h->head_len = (size_t)(p - buf) + 4;
	p = buf;
	eol = find_crlf(p, end);
	if (!eol || parse_status_line(p, eol, h, err, errlen) != 0)
		goto fail;
	p = eol + 2;
	while (p < end) {
		eol = find_crlf(p, end);
		if (!eol)
			break;
		if (parse_header_line(p, eol, h, err, errlen) != 0)
			goto fail;
		p = eol + 2;
	}
	return 1;
fail:
	if (err && errlen && !err[0])
		chat_errf(err, errlen, "malformed HTTP response head");
	return -1;
}

const char *chatc_http_header_get(const chatc_http_head *h, const char *name)
{
	for (int i = 0; i < h->n_headers; i++)
		if (strcasecmp(h->headers[i].name, name) == 0)
			return h->headers[i].value;
	return NULL;
}

int chatc_http_parse_response(const char *buf, size_t len, int eof,
                              chatc_http_resp *r, char *err, size_t errlen)
{
	int rc;
	size_t have, want;

	if (err && errlen)
		err[0] = '\0';
	memset(r, 0, sizeof *r);
	rc = chatc_http_parse_head(buf, len, &r->head, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		if (eof) {
			chat_errf(err, errlen,
			       "connection closed before the HTTP response "
			       "head was complete");
			return -1;
		}
		return 0;
	}
	have = len - r->head.head_len;
	if (r->head.status < 200 || r->head.status == 204 ||
	    r->head.status == 304) {
		want = 0;
	} else if (r->head.content_length >= 0) {
		want = (size_t)r->head.content_length;
		if (have < want) {
			if (eof) {
				chat_errf(err, errlen,
				       "connection closed after %zu of %zu "
				       "body bytes",
				       have, want);
				return -1;
			}
			return 0;
		}
	} else {
		if (have > CHATC_HTTP_MAX_BODY) {
			chat_errf(err, errlen, "response body over %d bytes",
			       CHATC_HTTP_MAX_BODY);
			return -1;
		}
		if (!eof)
			return 0;
		want = have;
	}
	r->body = malloc(want + 1);
	if (!r->body) {
		chat_errf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(r->body, buf + r->head.head_len, want);
	r->body[want] = '\0';
	r->body_len = want;
	return 1;
}

void chatc_http_resp_fini(chatc_http_resp *r)
{
	if (!r)
		return;
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

int chatc_tcp_connect(const char *host, int port, int timeout_ms, char *err,
                      size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16];
	int fd = -1, rc, last_errno = 0;
	int64_t deadline = chat_mono_ms() + timeout_ms;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof portstr, "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		chat_errf(err, errlen, "cannot resolve '%s': %s", host,
		       gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int flags, one = 1;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		flags = fcntl(fd, F_GETFL, 0);
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
		rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (rc != 0 && errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int64_t left = deadline - chat_mono_ms();
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (left < 0)
				left = 0;
			do {
				rc = poll(&pfd, 1, (int)left);
			} while (rc < 0 && errno == EINTR);
			if (rc == 0) {
				last_errno = ETIMEDOUT;
				rc = -1;
			} else if (rc > 0 &&
			           getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
			                      &sl) == 0 &&
			           soerr == 0) {
				rc = 0;
			} else {
				last_errno = soerr ? soerr : errno;
				rc = -1;
			}
		} else if (rc != 0) {
			last_errno = errno;
		}
		if (rc == 0) {
			fcntl(fd, F_SETFL, flags);
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			           sizeof one);
			break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		chat_errf(err, errlen, "cannot connect to %s:%d: %s", host, port,
		       strerror(last_errno ? last_errno : ECONNREFUSED));
	return fd;
}

int chatc_write_all(int fd, const void *vdata, size_t len, int timeout_ms,
                    char *err, size_t errlen)
{
	const char *data = vdata;
	int64_t deadline = chat_mono_ms() + timeout_ms;

	while (len > 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int64_t left = deadline - chat_mono_ms();
		ssize_t n;
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			chat_errf(err, errlen, "timed out sending the request");
			return -1;
		}
		n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			chat_errf(err, errlen, "send: %s", strerror(errno));
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int chatc_http_request(const char *host, int port, const char *method,
                       const char *path, const char *json_body, int timeout_ms,
                       chatc_http_resp *r, char *err, size_t errlen)
{
	int64_t deadline = chat_mono_ms() + timeout_ms;
	size_t blen = json_body ? strlen(json_body) : 0;
	size_t cap = 4096, len = 0;
	char *req = NULL, *buf = NULL;
	int fd, n, rc = -1;

	memset(r, 0, sizeof *r);
	fd = chatc_tcp_connect(host, port, timeout_ms, err, errlen);
	if (fd < 0)
		return -1;
	req = malloc(blen + 1024 + strlen(path) + strlen(host));
	buf = malloc(cap);
	if (!req || !buf) {
		chat_errf(err, errlen, "out of memory");
		goto done;
	}
	n = sprintf(req,
	            "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: chatc\r\n"
	            "Accept: application/json\r\nConnection: close\r\n",
	            method, path, host, port);
	if (json_body)
		n += sprintf(req + n,
		             "Content-Type: application/json\r\n"
		             "Content-Length: %zu\r\n",
		             blen);
	n += sprintf(req + n, "\r\n");
	if (json_body) {
		memcpy(req + n, json_body, blen);
		n += (int)blen;
	}
	if (chatc_write_all(fd, req, (size_t)n, (int)(deadline - chat_mono_ms()),
	                    err, errlen) != 0)
		goto done;
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - chat_mono_ms();
		ssize_t got;
		int eof = 0, prc;
		if (len + 1 >= cap) {
			char *nb;
			if (cap >= CHATC_HTTP_MAX_HEAD + CHATC_HTTP_MAX_BODY) {
				chat_errf(err, errlen, "HTTP response too large");
				goto done;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				chat_errf(err, errlen, "out of memory");
				goto done;
			}
			buf = nb;
			cap *= 2;
		}
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			chat_errf(err, errlen,
			       "timed out waiting for the answer of %s:%d%s",
			       host, port, path);
			goto done;
		}
		got = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno != ECONNRESET) {
				chat_errf(err, errlen, "recv: %s",
				       strerror(errno));
				goto done;
			}
			got = 0;
		}
		if (got == 0)
			eof = 1;
		len += (size_t)got;
		prc = chatc_http_parse_response(buf, len, eof, r, err, errlen);
		if (prc < 0)
			goto done;
		if (prc > 0) {
			rc = 0;
			break;
		}
	}
done:
	close(fd);
	free(req);
	free(buf);
	return rc;
}

static int auth_call(const char *api_url, const char *path, const char *name,
                     const char *password, int timeout_ms, chatc_auth *out,
                     char *err, size_t errlen)
{
	chatc_url u;
	chatc_http_resp r;
	char qn[256], *qp = NULL, *body = NULL;
	size_t plen;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (chatc_url_parse(api_url, &u, err, errlen) != 0)
		return -1;
	if (strcmp(u.scheme, "http") != 0) {
		chat_errf(err, errlen, "the api URL must be http:// (got '%s')",
		       api_url);
		return -1;
	}
	plen = strlen(password) * 6 + 3;
	qp = malloc(plen);
	body = malloc(plen + sizeof qn + 64);
	if (!qp || !body) {
		chat_errf(err, errlen, "out of memory");
		goto done;
	}
	body[0] = '\0';
	if (chat_json_quote(name, qn, sizeof qn) < 0 ||
	    chat_json_quote(password, qp, plen) < 0) {
		chat_errf(err, errlen, "name or password too long");
		goto done;
	}
	sprintf(body, "{\"name\":%s,\"password\":%s}", qn, qp);
	if (chatc_http_request(u.host, u.port, "POST", path, body, timeout_ms,
	                       &r, err, errlen) != 0)
		goto done;
	if (r.head.status != 200 && r.head.status != 201) {
		char reason[512], code[64];
		if (chat_json_get_string(r.body, r.body_len, "reason", reason,
		                         sizeof reason) >= 0) {
			chat_errf(err, errlen, "%s", reason);
		} else if (chat_json_get_string(r.body, r.body_len, "error",
		                                code, sizeof code) >= 0) {
			chat_errf(err, errlen, "%s", code);
		} else {
			chat_errf(err, errlen, "HTTP %d %s: %.200s",
			       r.head.status, r.head.reason, r.body);
		}
		rc = r.head.status;
		chatc_http_resp_fini(&r);
		goto done;
	}
	{
		int64_t uid = 0, exp = 0;
		if (chat_json_get_string(r.body, r.body_len, "token",
		                         out->token, sizeof out->token) <= 0 ||
		    chat_json_get_string(r.body, r.body_len, "edge_url",
		                         out->edge_url,
		                         sizeof out->edge_url) <= 0 ||
		    chat_json_get_int(r.body, r.body_len, "user_id", &uid) !=
		        0) {
			chat_errf(err, errlen,
			       "malformed answer from %s (missing token, "
			       "edge_url or user_id)",
			       path);
			chatc_http_resp_fini(&r);
			goto done;
		}
		out->user_id = (uint64_t)uid;
		if (chat_json_get_int(r.body, r.body_len, "expires_at",
		                      &exp) == 0)
			out->expires_at = exp;
		if (chat_json_get_string(r.body, r.body_len, "name", out->name,
		                         sizeof out->name) <= 0)
			snprintf(out->name, sizeof out->name, "%s", name);
	}
	chatc_http_resp_fini(&r);
	rc = 0;
done:
	if (qp) {
		memset(qp, 0, plen);
		free(qp);
	}
	if (body) {
		memset(body, 0, strlen(body));
		free(body);
	}
	return rc;
}

int chatc_signup(const char *api_url, const char *name, const char *password,
                 int timeout_ms, chatc_auth *out, char *err, size_t errlen)
{
	return auth_call(api_url, "/v1/signup", name, password, timeout_ms,
	                 out, err, errlen);
}

int chatc_login(const char *api_url, const char *name, const char *password,
                int timeout_ms, chatc_auth *out, char *err, size_t errlen)
{
	return auth_call(api_url, "/v1/login", name, password, timeout_ms, out,
	                 err, errlen);
}
