/* chatc: a chat protocol session (docs/PROTOCOL.md). It logs in over HTTP,
 * holds a WebSocket to an edge, keeps the channel table and the messages in
 * memory with per-channel sequencing (dedupe, gap fill), tracks sends until
 * acknowledged, and reconnects with resume. One chatc is driven by one
 * thread; several may live in one process (no global state, no curses).
 *
 * The state machine can be driven without a socket: set opts.send_hook to
 * capture outgoing ClientFrames, call chatc_test_online(), and feed
 * ServerFrame bytes with chatc_feed(). */
#ifndef CHATC_H
#define CHATC_H

#include <stddef.h>
#include <stdint.h>

#include "chatc_ws.h"
#include "client.pb-c.h"
#include "common.pb-c.h"

typedef struct chatc chatc;

/* Length of a client_msg_id buffer: 16 hex characters and a NUL. */
#define CHATC_CMID_LEN 17

enum chatc_state {
	CHATC_IDLE = 0,    /* never connected */
	CHATC_CONNECTING,  /* inside a blocking connect */
	CHATC_ONLINE,      /* WebSocket up */
	CHATC_WAITING,     /* disconnected; a reconnect is scheduled */
	CHATC_STOPPED,     /* disconnected for good (closed, refused, or
	                    * auto-reconnect off) */
};

/* A message held in memory. */
typedef struct chatc_msg {
	uint64_t channel_id;
	uint64_t seq;
	uint64_t sender_id;
	char *sender_name;
	char *client_msg_id;
	char *body;
	int64_t sent_at_ms;
	int64_t stored_at_ms;
} chatc_msg;

/* Another member's read position, learnt from read receipts. */
typedef struct chatc_reader {
	uint64_t user_id;
	char *name;
	uint64_t seq;
} chatc_reader;

/* A channel of which the user is a member. Read-only for callers. */
typedef struct chatc_channel {
	uint64_t id;
	char *name;
	int kind;            /* Chat__ChannelKind */
	uint64_t last_seq;   /* highest seq the server told of */
	uint64_t read_seq;   /* my read position */
	uint64_t unread;
	uint32_t member_count;
	char *dm_peer;       /* DM: the other user ("" otherwise) */
	uint64_t dm_peer_id;
	int dm_peer_status;  /* Chat__Status */

	/* Messages held: seqs first_seq..held_seq, contiguous, ascending.
	 * Empty when first_seq == held_seq + 1. */
	chatc_msg *msgs;
	size_t n_msgs;
	uint64_t held_seq;   /* "last" of the protocol: highest seq held */
	uint64_t first_seq;
	int more_before;     /* older messages exist on the server */

	chatc_reader *readers;
	size_t n_readers;

	/* private */
	size_t cap;
	uint64_t gap_req;    /* req_id of the history AFTER filling a gap */
	chatc_msg *early;    /* messages beyond a gap, ascending */
	size_t n_early;
	uint64_t before_req; /* req_id of an outstanding history BEFORE */
} chatc_channel;

/* A user seen through presence or who. */
typedef struct chatc_user {
	uint64_t id;
	char *name;
	int status;          /* Chat__Status */
	int64_t last_seen_ms;
} chatc_user;

/* A send not yet confirmed by its own message coming back. */
typedef struct chatc_pending {
	char client_msg_id[65];
	uint64_t channel_id;
	char *body;
	int acked;           /* send_ack received */
	uint64_t req_id;     /* of the last transmission (0: not sent) */
	uint64_t sent_gen;   /* connection generation of that transmission */
	int attempts;
	int64_t retry_at_ms; /* after a retryable error: resend then */
} chatc_pending;

enum chatc_event_type {
	CHATC_EV_CONNECTED = 1, /* WebSocket up (first time) */
	CHATC_EV_RECONNECTED,   /* WebSocket up again; resume follows */
	CHATC_EV_DISCONNECTED,  /* reason/code say why; state tells what next */
	CHATC_EV_WELCOME,
	CHATC_EV_CHANNELS,      /* the channel table changed */
	CHATC_EV_CHANNEL,       /* a reply to create/open_dm/join (channel) */
	CHATC_EV_MESSAGE,       /* msg appended (in seq order) */
	CHATC_EV_HISTORY,       /* a page applied: count added, older ones
	                         * when older is 1, more = server has more */
	CHATC_EV_READ,          /* a read receipt applied */
	CHATC_EV_PRESENCE,
	CHATC_EV_TYPING,
	CHATC_EV_MEMBER,
	CHATC_EV_ERROR,         /* an Error frame: code, reason, req_kind */
	CHATC_EV_SEND_ACK,      /* client_msg_id accepted */
	CHATC_EV_SEND_FAILED,   /* client_msg_id refused for good */
	CHATC_EV_WHO,
	CHATC_EV_PONG,
	CHATC_EV_OK,            /* reply to leave / set_status */
	CHATC_EV_RESUME_DONE,
	CHATC_EV_STATE,         /* the connection state changed */
};

typedef struct chatc_event {
	int type;
	uint64_t req_id;      /* 0 for pushes and local events */
	int req_kind;         /* Chat__ClientFrame__KindCase of the request
	                       * answered (0 when unknown or a push) */
	uint64_t channel_id;
	const chatc_channel *channel; /* when the channel is held */
	const chatc_msg *msg;         /* MESSAGE */
	size_t count;                 /* HISTORY */
	int older;                    /* HISTORY: prepended older messages */
	int more;                     /* HISTORY */
	const char *client_msg_id;    /* SEND_ACK, SEND_FAILED, ERROR */
	int code;                     /* ERROR, SEND_FAILED: chat.Code;
	                               * DISCONNECTED: the close code or 0 */
	const char *reason;           /* ERROR, SEND_FAILED, DISCONNECTED */
	int retryable;
	const Chat__ServerFrame *frame; /* the frame (NULL for local events);
	                                 * valid during the callback only */
} chatc_event;

typedef void (*chatc_event_fn)(void *user, chatc *c, const chatc_event *ev);
typedef void (*chatc_log_fn)(void *user, const char *line);
typedef int (*chatc_send_hook)(void *user, const uint8_t *frame, size_t len);

/* Options; a zeroed struct gives the defaults. Strings are copied. */
typedef struct chatc_opts {
	const char *api_url;   /* "http://host:port"; NULL: use edge_url and
	                        * token as given, no log-in */
	const char *name;
	const char *password;
	int signup;            /* sign up first; when taken, log in */
	const char *edge_url;  /* optional initial credentials (from an */
	const char *token;     /* earlier chatc_login): used before any */
	int64_t expires_at;    /* log-in */
	int timeout_ms;        /* each blocking step; default 5000 */
	int no_reconnect;      /* do not reconnect after a drop */
	size_t max_held;       /* messages kept per channel; default 10000 */
	int keepalive_ms;      /* ping after this much silence; default
	                        * 20000; < 0 disables */
	chatc_event_fn on_event;
	chatc_log_fn log;      /* debug lines; NULL: none */
	chatc_send_hook send_hook; /* tests: take outgoing frames instead of
	                            * a socket */
	void *user;            /* passed to the callbacks */
} chatc_opts;

/* A new session (not connected). NULL with a reason in err for bad
 * options (no api_url and no edge_url, no name) or out of memory. */
chatc *chatc_new(const chatc_opts *o, char *err, size_t errlen);

/* Closes the connection (no close handshake) and frees everything.
 * Accepts NULL. Must not be called from the event callback. */
void chatc_free(chatc *c);

/* Log in (or sign up) over HTTP when needed, then open the WebSocket.
 * Blocks up to a few timeout_ms. Returns 0 (state ONLINE), or a chat.Code
 * with a reason in err and in chatc_last_error(): UNAUTHENTICATED (wrong
 * name or password), ALREADY_EXISTS, INVALID_ARGUMENT (refused name or
 * password), UNAVAILABLE (cannot reach the api or edge; when
 * auto-reconnect is on, a retry is scheduled and the state is WAITING). */
int chatc_connect(chatc *c, char *err, size_t errlen);

/* The socket to poll (-1 when not connected), and whether to poll it for
 * POLLOUT too. */
int chatc_fd(const chatc *c);
int chatc_want_write(const chatc *c);

/* Milliseconds until chatc_process() has timed work (reconnect, resend,
 * keepalive): 0 = now, -1 = none. */
int chatc_next_timer_ms(const chatc *c);

/* Do the work that is ready: wait up to timeout_ms for the socket (0 = do
 * not wait), read and dispatch every complete frame (events go to
 * on_event), write queued output, run timers (a due reconnect blocks for
 * its connect). Returns 0, or -1 when the session is STOPPED. */
int chatc_process(chatc *c, int timeout_ms);

/* Handle the bytes of one ServerFrame as if received (tests, fuzzing).
 * Returns 0, or CHAT_INVALID_ARGUMENT when they do not decode. */
int chatc_feed(chatc *c, const uint8_t *data, size_t len);

/* Tests without a socket: mark the session ONLINE as if a WebSocket had
 * just opened. resumed = 1 acts as a reconnect (the next ChannelList sends
 * Resume; ResumeDone resends unacknowledged sends). */
void chatc_test_online(chatc *c, int resumed);

/* Drop the connection abruptly (no close frame), as a network failure
 * would; when auto-reconnect is on a reconnect is scheduled. */
void chatc_drop(chatc *c);

/* Turn automatic reconnection on or off. */
void chatc_set_reconnect(chatc *c, int on);

/* Close gracefully (close frame with code 1000) and stop. */
void chatc_close(chatc *c);

int chatc_state(const chatc *c);
const char *chatc_state_name(int state);
/* While WAITING: milliseconds until the next attempt; else -1. */
int64_t chatc_reconnect_in_ms(const chatc *c);
const char *chatc_last_error(const chatc *c);

uint64_t chatc_user_id(const chatc *c);
const char *chatc_user_name(const chatc *c);
int chatc_my_status(const chatc *c); /* Chat__Status */
/* Limits from Welcome (0 before it). */
uint32_t chatc_max_body(const chatc *c);

/* Channels, ascending by id. The pointers stay valid until the next call
 * into chatc that processes frames. */
size_t chatc_channel_count(const chatc *c);
const chatc_channel *chatc_channel_at(const chatc *c, size_t i);
const chatc_channel *chatc_channel_get(const chatc *c, uint64_t id);

/* Users seen through presence or who; NULL when unknown. */
const chatc_user *chatc_user_get(const chatc *c, uint64_t id);
const chatc_user *chatc_user_by_name(const chatc *c, const char *name);

/* Sends not yet seen back. */
size_t chatc_pending_count(const chatc *c);
const chatc_pending *chatc_pending_at(const chatc *c, size_t i);
const chatc_pending *chatc_pending_get(const chatc *c, const char *cmid);

/* The WebSocket, for tests that send raw frames (NULL when offline). */
chatc_ws *chatc_ws_conn(chatc *c);

/* ---- requests ----
 * Each returns the req_id (> 0), or 0 when it could not be sent (offline,
 * bad argument, out of memory; chatc_last_error() says why). The answer
 * comes as an event carrying the same req_id. */

/* Send body (1..4000 bytes of UTF-8) to a channel. The client_msg_id (16
 * random hex characters) is written to cmid_out (may be NULL) and the send
 * is tracked until acknowledged. Offline or while resuming, it is queued
 * and sent after the resume. Returns 0, or a chat.Code (INVALID_ARGUMENT
 * for a bad body, RESOURCE_EXHAUSTED when too many sends are pending). */
int chatc_send(chatc *c, uint64_t channel, const char *body,
               char cmid_out[CHATC_CMID_LEN]);
/* Same with a given client_msg_id (1..64 bytes; tests of retries). */
int chatc_send_with_id(chatc *c, uint64_t channel, const char *body,
                       const char *cmid);

uint64_t chatc_create(chatc *c, const char *name, const char *const *members,
                      size_t n_members);
uint64_t chatc_open_dm(chatc *c, const char *user_name);
uint64_t chatc_join(chatc *c, uint64_t channel);
uint64_t chatc_leave(chatc *c, uint64_t channel);
uint64_t chatc_list_channels(chatc *c);
/* History before anchor (0: before the oldest message held). Older
 * messages contiguous with those held are prepended. */
uint64_t chatc_history_before(chatc *c, uint64_t channel, uint64_t anchor,
                              uint32_t limit);
/* History after anchor; messages that continue the held ones are
 * appended. */
uint64_t chatc_history_after(chatc *c, uint64_t channel, uint64_t anchor,
                             uint32_t limit);
uint64_t chatc_mark_read(chatc *c, uint64_t channel, uint64_t seq);
uint64_t chatc_set_status(chatc *c, int status);
uint64_t chatc_typing(chatc *c, uint64_t channel);
uint64_t chatc_who(chatc *c, uint64_t channel);
uint64_t chatc_ping(chatc *c);

/* Names of Chat__Status values ("online", "away", "busy", "offline") and
 * back (-1 for an unknown name). */
const char *chatc_status_name(int status);
int chatc_status_parse(const char *name);

#endif
