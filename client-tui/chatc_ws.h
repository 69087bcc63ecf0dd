/* A WebSocket client (RFC 6455) over a plain TCP socket: the HTTP/1.1
 * upgrade, masked client frames, reassembly of fragmented messages, ping
 * answered with pong, the close handshake, and a cap on incoming message
 * size. The frame codec and the receive state machine are pure functions
 * usable without a socket (tests, fuzzing, a test server). No global
 * state. */
#ifndef CHATC_WS_H
#define CHATC_WS_H

#include <stddef.h>
#include <stdint.h>

enum chatc_ws_opcode {
	CHATC_WS_CONT = 0x0,
	CHATC_WS_TEXT = 0x1,
	CHATC_WS_BINARY = 0x2,
	CHATC_WS_CLOSE = 0x8,
	CHATC_WS_PING = 0x9,
	CHATC_WS_PONG = 0xA,
};

/* Largest incoming message (after reassembly) accepted. */
/* A history page of 500 full messages is about 2.1 MB. */
#define CHATC_WS_MAX_MESSAGE (4 * 1024 * 1024)

/* ---- codec ---- */

/* The Sec-WebSocket-Accept value for a Sec-WebSocket-Key: base64 of the
 * SHA-1 of key + the RFC 6455 GUID. out receives 28 characters and a NUL.
 * Returns 0, or -1 when the digest failed. */
int chatc_ws_accept_key(const char *key, char out[29]);

/* Length of the frame header for a payload of len bytes (2..14). */
size_t chatc_ws_header_len(size_t len, int masked);

/* Write one frame (header, then the payload masked with mask when mask is
 * not NULL) into out, which holds chatc_ws_header_len(len, mask != NULL) +
 * len bytes. fin is 0 or 1; opcode is written as given (any 4-bit value,
 * for tests of bad peers). Returns the bytes written. */
size_t chatc_ws_encode(uint8_t *out, int fin, int opcode, const void *payload,
                       size_t len, const uint8_t mask[4]);

/* One parsed frame. payload points into the parsed buffer (unmasked in
 * place when the frame was masked). */
typedef struct chatc_ws_frame {
	int fin;
	int rsv;    /* the three RSV bits */
	int opcode;
	int masked;
	uint8_t *payload;
	uint64_t len;
} chatc_ws_frame;

/* Parse one frame at buf[0..len). Returns the frame's total size (> 0),
 * 0 when more bytes are needed, -1 for a protocol error (64-bit length with
 * the top bit set, a control frame over 125 bytes or fragmented, RSV bits,
 * a mask where must_mask says none, or none where it says one), -2 when the
 * payload exceeds max_payload. must_mask: 1 = frames must be masked (a
 * server reading a client), 0 = must not be (a client), -1 = either.
 * Masked payloads are unmasked in place. err gets the reason. */
long chatc_ws_parse_frame(uint8_t *buf, size_t len, int must_mask,
                          uint64_t max_payload, chatc_ws_frame *f, char *err,
                          size_t errlen);

/* ---- receive state machine: bytes in, events out ---- */

enum chatc_ws_ev {
	CHATC_WS_EV_NONE = 0,   /* need more bytes */
	CHATC_WS_EV_MESSAGE,    /* a complete text or binary message */
	CHATC_WS_EV_PING,       /* answer with a pong carrying the payload */
	CHATC_WS_EV_PONG,
	CHATC_WS_EV_CLOSE,      /* close_code/close_reason filled */
	CHATC_WS_EV_ERROR,      /* protocol error or oversize; rx is dead */
};

typedef struct chatc_ws_rx chatc_ws_rx;

typedef struct chatc_ws_event {
	int type;        /* enum chatc_ws_ev */
	int opcode;      /* MESSAGE: CHATC_WS_TEXT or CHATC_WS_BINARY */
	const uint8_t *data; /* MESSAGE/PING/PONG payload; valid until the
	                      * next call on the rx */
	size_t len;
	int close_code;  /* CLOSE: 1005 when the frame had no code */
	char close_reason[128];
	int error_code;  /* ERROR: the close code to send (1002, 1009) */
	char error[160]; /* ERROR: why */
} chatc_ws_event;

/* A new receiver. must_mask as for chatc_ws_parse_frame; max_message caps
 * a reassembled message (0 = CHATC_WS_MAX_MESSAGE). NULL when out of
 * memory. */
chatc_ws_rx *chatc_ws_rx_new(int must_mask, size_t max_message);
void chatc_ws_rx_free(chatc_ws_rx *rx); /* accepts NULL */

/* Append received bytes. Returns 0, or -1 when out of memory. */
int chatc_ws_rx_feed(chatc_ws_rx *rx, const void *data, size_t len);

/* The next event from the bytes fed so far (CHATC_WS_EV_NONE when more are
 * needed). After an ERROR every call returns ERROR again. Control frames
 * between the fragments of a message are returned as they come. */
int chatc_ws_rx_next(chatc_ws_rx *rx, chatc_ws_event *ev);

/* ---- the client connection ---- */

typedef struct chatc_ws chatc_ws;

/* Connect to url ("ws://host:port/path"), sending token (if not NULL) as
 * `Authorization: Bearer TOKEN`, and complete the upgrade, all within
 * timeout_ms. Blocks. On success *out is a connection whose socket is
 * non-blocking. On failure returns -1 with a reason in err; *http_status
 * (when not NULL) receives the HTTP status of a refused upgrade (err then
 * reads "HTTP 401: <body text>") or 0 for other failures. */
int chatc_ws_connect(const char *url, const char *token, int timeout_ms,
                     chatc_ws **out, int *http_status, char *err,
                     size_t errlen);

/* Wrap an already-upgraded connected socket (tests; the fd is owned by the
 * connection afterwards). NULL when out of memory. */
chatc_ws *chatc_ws_from_fd(int fd);

/* Closes the socket and frees. Accepts NULL. */
void chatc_ws_free(chatc_ws *ws);

/* The socket, for poll(). */
int chatc_ws_fd(const chatc_ws *ws);

/* Queue a message (CHATC_WS_BINARY or CHATC_WS_TEXT) as one masked frame.
 * Never blocks: the bytes are written by chatc_ws_flush(). Returns 0, or -1
 * when the connection is closing/dead or out of memory. */
int chatc_ws_send(chatc_ws *ws, int opcode, const void *data, size_t len);

/* Raw helpers for tests that misbehave on purpose: queue one masked frame
 * with any fin/opcode, or arbitrary bytes. Returns 0 or -1. */
int chatc_ws_send_frame(chatc_ws *ws, int fin, int opcode, const void *data,
                        size_t len);
int chatc_ws_send_raw(chatc_ws *ws, const void *data, size_t len);

/* Whether queued output waits for the socket (poll for POLLOUT). */
int chatc_ws_want_write(const chatc_ws *ws);

/* Bytes of output queued. */
size_t chatc_ws_pending(const chatc_ws *ws);

/* Write as much queued output as the socket takes. Returns 0, or -1 when
 * the connection failed (err filled). */
int chatc_ws_flush(chatc_ws *ws, char *err, size_t errlen);

/* Read what the socket has and return the next complete message. Returns
 * 1 with *data, *len and *opcode set (valid until the next call on ws), 0 when
 * nothing complete is available yet, -1 on a failure (err filled; the
 * connection is dead), -2 when the peer closed (chatc_ws_close_code and
 * err tell how). Pings are answered and pongs swallowed here. Never
 * blocks. */
int chatc_ws_read(chatc_ws *ws, const uint8_t **data, size_t *len,
                  int *opcode, char *err, size_t errlen);

/* Start the close handshake: queue a close frame with code and reason
 * (truncated to 123 bytes). Further sends fail. Returns 0 or -1. */
int chatc_ws_close(chatc_ws *ws, int code, const char *reason);

/* The close code the peer sent (0 when none yet; 1005 without a code), and
 * its reason. */
int chatc_ws_close_code(const chatc_ws *ws);
const char *chatc_ws_close_reason(const chatc_ws *ws);

#endif
