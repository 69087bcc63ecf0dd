/* A small blocking HTTP/1.1 client for the chat api (sign-up, log-in), the
 * URL and response parsers it shares with the WebSocket client, and the
 * account helpers. No global state; no libwebsockets. */
#ifndef CHATC_HTTP_H
#define CHATC_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define CHATC_HTTP_MAX_HEAD (16 * 1024)
#define CHATC_HTTP_MAX_BODY (1024 * 1024)
#define CHATC_HTTP_MAX_HEADERS 32

/* A parsed "scheme://host[:port][/path]" URL. http/ws default to port 80.
 * IPv6 literals are written in brackets ("ws://[::1]:7001/ws"). */
typedef struct chatc_url {
	char scheme[8]; /* "http" or "ws", lower case */
	char host[256];
	int port;
	char path[1024]; /* starts with '/'; the query string is kept */
} chatc_url;

/* Parse url. Only http:// and ws:// are accepted (no TLS). Returns 0, or -1
 * with a reason in err. */
int chatc_url_parse(const char *url, chatc_url *out, char *err, size_t errlen);

typedef struct chatc_http_header {
	char name[64];
	char value[1024];
} chatc_http_header;

/* The status line and headers of a response. */
typedef struct chatc_http_head {
	int status;          /* 100..599 */
	char reason[128];    /* the reason phrase, possibly truncated */
	size_t head_len;     /* bytes up to and including the blank line */
	int64_t content_length; /* -1 when absent */
	int n_headers;
	chatc_http_header headers[CHATC_HTTP_MAX_HEADERS];
} chatc_http_head;

/* Parse the head of a response in buf[0..len). Returns 1 when the head is
 * complete (h filled), 0 when more bytes are needed, -1 on a malformed or
 * refused head (err says why: bad status line, header too long, more than
 * CHATC_HTTP_MAX_HEADERS headers, head over CHATC_HTTP_MAX_HEAD, a bad or
 * conflicting Content-Length, any Transfer-Encoding). Pure; never blocks. */
int chatc_http_parse_head(const char *buf, size_t len, chatc_http_head *h,
                          char *err, size_t errlen);

/* The value of header name (case-insensitive), or NULL. */
const char *chatc_http_header_get(const chatc_http_head *h, const char *name);

/* A whole response; body is malloc'ed and NUL-terminated (may be empty). */
typedef struct chatc_http_resp {
	chatc_http_head head;
	char *body;
	size_t body_len;
} chatc_http_resp;

/* Parse a whole response in buf[0..len). eof says the peer closed the
 * connection (a body without Content-Length runs to the close). Returns 1
 * when complete (r filled; free it with chatc_http_resp_fini), 0 when more
 * bytes are needed, -1 on error (err filled; nothing to free). Bodies over
 * CHATC_HTTP_MAX_BODY are refused. Pure; never blocks. */
int chatc_http_parse_response(const char *buf, size_t len, int eof,
                              chatc_http_resp *r, char *err, size_t errlen);

/* Frees the body. Accepts NULL and a zeroed response. */
void chatc_http_resp_fini(chatc_http_resp *r);

/* Open a TCP connection to host:port, waiting at most timeout_ms. Returns a
 * blocking socket, or -1 with a reason in err. */
int chatc_tcp_connect(const char *host, int port, int timeout_ms, char *err,
                      size_t errlen);

/* One blocking request: method ("GET"/"POST") on http://host:port/path with
 * an optional JSON body (NULL for none), the whole exchange bounded by
 * timeout_ms. Returns 0 with r filled (any HTTP status; free with
 * chatc_http_resp_fini), or -1 with a reason in err (connect, timeout,
 * malformed answer). */
int chatc_http_request(const char *host, int port, const char *method,
                       const char *path, const char *json_body, int timeout_ms,
                       chatc_http_resp *r, char *err, size_t errlen);

/* Write all of data to the (blocking or not) socket fd within timeout_ms.
 * Returns 0, or -1 with a reason in err. */
int chatc_write_all(int fd, const void *data, size_t len, int timeout_ms,
                    char *err, size_t errlen);

/* What sign-up and log-in answer. */
typedef struct chatc_auth {
	uint64_t user_id;
	char name[64];
	char token[4096];
	char edge_url[512];
	int64_t expires_at; /* seconds since the epoch; 0 when not given */
} chatc_auth;

/* POST /v1/signup or /v1/login on api_url ("http://host:port") with
 * {"name","password"}. Blocks up to timeout_ms. Returns 0 with out filled;
 * the HTTP status (400, 401, 409, 503, ...) with the server's "reason" in
 * err; or -1 for a transport or parse failure, with a reason in err. */
int chatc_signup(const char *api_url, const char *name, const char *password,
                 int timeout_ms, chatc_auth *out, char *err, size_t errlen);
int chatc_login(const char *api_url, const char *name, const char *password,
                int timeout_ms, chatc_auth *out, char *err, size_t errlen);

#endif
