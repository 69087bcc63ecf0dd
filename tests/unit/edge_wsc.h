/* A small blocking WebSocket client for the edge tests: enough of RFC 6455
 * to upgrade, send masked (optionally fragmented) frames, and read frames
 * with a timeout, answering pings. Not for production use. */
#ifndef EDGE_WSC_H
#define EDGE_WSC_H

#include <stddef.h>
#include <stdint.h>

#define WSC_TEXT 1
#define WSC_BINARY 2
#define WSC_CLOSE 8
#define WSC_PING 9
#define WSC_PONG 10

typedef struct wsc wsc;

/* Open ws://127.0.0.1:port + path (path may hold ?query), with an extra
 * header line (e.g. "Authorization: Bearer X") or NULL. Returns 101 with
 * *out set when upgraded; else the HTTP status (body copied into body),
 * or -1 when the connection failed. */
int wsc_connect(int port, const char *path, const char *extra_header,
                wsc **out, char *body, size_t bodylen);

/* Receive buffer size for the sockets opened next (0 = the default):
 * small buffers let a test make the server's writes block. */
void wsc_set_rcvbuf(int bytes);

/* Plain HTTP GET; returns the status and copies the body. */
int wsc_http_get(int port, const char *path, char *body, size_t bodylen);

/* Send one frame (masked). fin = 0 leaves the message open; continue it
 * with opcode 0. Returns 0 or -1. */
int wsc_send_frame(wsc *c, int opcode, int fin, const void *data, size_t len);

/* Send a whole binary message in one frame. */
int wsc_send(wsc *c, const void *data, size_t len);

/* Receive the next message. Returns its opcode (WSC_TEXT / WSC_BINARY,
 * payload in *data (malloc'ed, free it) and *len), WSC_CLOSE with the code
 * in *close_code and the reason in reason, or -1 on timeout / error.
 * Pings are answered and skipped. */
int wsc_recv(wsc *c, int timeout_ms, uint8_t **data, size_t *len,
             int *close_code, char *reason, size_t reasonlen);

/* Whether the server closed the TCP connection within timeout_ms (reads
 * and drops anything before that). */
int wsc_wait_eof(wsc *c, int timeout_ms);

/* Pings received (and answered) so far. */
int wsc_pings(wsc *c);

/* Close the socket and free. Accepts NULL. */
void wsc_free(wsc *c);

#endif
