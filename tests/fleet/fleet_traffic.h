/*
 * fleet_traffic: a crowd of chat clients that keeps talking while a test
 * breaks parts of the fleet, and the checks that follow.
 *
 * The clients are client-tui's chatc sessions (client-tui/chatc.h): they
 * reconnect through the api, resume, fill gaps from history, drop
 * duplicates by seq, and resend what was not acknowledged with the same
 * client_msg_id, as the protocol asks of every client. One thread drives
 * them all (each sends a message every interval_ms while sending is on,
 * with at most max_pending unconfirmed sends each) and records what
 * happened to every send: acknowledged, refused (retryable or not), its
 * own copy seen back.
 *
 * The checks compare three views that must agree:
 *   - PostgreSQL (the source of truth): per channel, seqs 1..max with no
 *     hole and no repeat; every acknowledged send stored exactly once,
 *     with its body, under its sender; nothing stored that no client sent;
 *   - each client's own sequence per channel (what chatc holds after its
 *     seq rules): exactly the stored messages, in seq order;
 *   - the records: no send refused for good.
 *
 * Thread-safety: every function but ft_lock/ft_get takes the crowd's lock
 * itself; ft_get's result may only be used between ft_lock and ft_unlock.
 */
#ifndef FLEET_TRAFFIC_H
#define FLEET_TRAFFIC_H

#include <stddef.h>
#include <stdint.h>

#include "chatc.h"

#define FT_MAX_CLIENTS 24
#define FT_MAX_CHANS 8

/* One send of a client. */
typedef struct ft_sent {
	char cmid[CHATC_CMID_LEN];
	uint64_t channel;
	char body[48];
	int64_t t_ms;       /* first sent (monotonic ms) */
	int64_t ack_ms;     /* acknowledged (0: not yet) */
	int echoed;         /* its own copy came back (live or history) */
	int retry_errors;   /* retryable errors answered (then resent) */
	int failed_code;    /* refused for good: the chat.Code (0: not) */
} ft_sent;

typedef struct ft_client {
	int idx;
	chatc *c;
	char name[64], password[64];
	uint64_t user_id;
	char edge_id[64];    /* from the last Welcome */
	int welcomes, disconnects, resumes;
	int64_t down_ms;     /* when the last drop happened (0: none) */
	int64_t resumed_ms;  /* when the last resume finished */
	int sends_on;        /* this client sends while the crowd does */
	ft_sent *sent;
	size_t nsent, capsent;
	uint64_t chans[FT_MAX_CHANS]; /* channels it sends to and checks */
	uint64_t last_seq[FT_MAX_CHANS]; /* last seq appended, per chans[] */
	size_t nchans, next_chan;
	int64_t next_send_ms;
	uint64_t reply_req, reply_chan; /* the last Channel reply */
	uint64_t received;   /* messages appended (any channel) */
	int bad_order;       /* appended out of seq order (must stay 0) */
	int retryable_errs;  /* retryable errors on sends */
	int64_t last_rx_ms;  /* the last message appended */
	int64_t max_gap_ms;  /* the longest silence between two appended
	                      * messages while the crowd sent */
} ft_client;

typedef struct ft_crowd ft_crowd;

/* A crowd talking through the api at api_url; each client sends every
 * interval_ms (jittered by up to a quarter) while sending is on, and holds
 * back while it has max_pending unconfirmed sends. NULL when out of
 * memory. */
ft_crowd *ft_new(const char *api_url, int interval_ms, int max_pending);

/* Stop the thread, close every client (close frame), free. Accepts NULL. */
void ft_free(ft_crowd *w);

/* Sign up a new user named prefix + a unique suffix and connect it: to
 * edge_url when given (the token is valid on every edge), else where the
 * api says. Later reconnects go through the api. Blocks until the session
 * has its channel list (10 s at most). Returns the client's index, or -1
 * with a reason in err. */
int ft_add(ft_crowd *w, const char *prefix, const char *edge_url, char *err,
           size_t errlen);

/* Client `creator` creates a group channel with the clients in members[]
 * (indexes); waits until every one of them holds it (ms at most). The
 * channel joins each member's send list when send is set (every member's
 * check list in any case). Returns the channel id, or 0. */
uint64_t ft_group(ft_crowd *w, int creator, const int *members, size_t n,
                  int send, int ms);

/* Start the driving thread (clients are driven by it from now on). */
int ft_start(ft_crowd *w);

/* Turn sending on or off for the whole crowd. */
void ft_sending(ft_crowd *w, int on);

/* Direct access: ft_get(w, i) between ft_lock and ft_unlock only. */
void ft_lock(ft_crowd *w);
void ft_unlock(ft_crowd *w);
ft_client *ft_get(ft_crowd *w, int i);
size_t ft_count(ft_crowd *w);

/* Totals over the crowd (locked inside). */
uint64_t ft_acked(ft_crowd *w);
uint64_t ft_received(ft_crowd *w);

/* Wait up to ms until every client is online with its resume done (and,
 * when not NULL, none on the edge named avoid). 0, or -1 on timeout. */
int ft_wait_online(ft_crowd *w, const char *avoid, int ms);

/* Wait up to ms until at least n more sends were acknowledged and n more
 * messages received than when called: traffic flows. 0 or -1. */
int ft_wait_flow(ft_crowd *w, uint64_t n, int ms);

/* Stop sending, then wait up to ms until every client has every send
 * confirmed (its own copy back) and holds each of its channels up to the
 * last seq stored in PostgreSQL. 0, or -1 with what is missing in why. */
int ft_settle(ft_crowd *w, int ms, char *why, size_t whylen);

/* The checks above, against PostgreSQL (CHAT_STORE_DB of fleet.env).
 * 0, or -1 with the first disagreement in why. Prints a summary line. */
int ft_verify(ft_crowd *w, char *why, size_t whylen);

/* Print one line per client (edge, sends, acks, errors, drops) to stderr. */
void ft_report(ft_crowd *w, const char *tag);

/* ---- the fleet's servers, for the checks of tests ---------------------- */

/* Run one SQL query on the fleet's PostgreSQL; the first column of the
 * first row as an integer into *out. 0, or -1 (error printed). */
int ft_pg_int(const char *sql, long long *out);

/* Redis commands on the fleet's Redis (CHAT_REDIS). Each 0 or -1 on
 * failure. */
/* *out = EXISTS key. */
int ft_redis_exists(const char *key, long long *out);
/* *out = SISMEMBER key member. */
int ft_redis_sismember(const char *key, const char *member, long long *out);
/* *out = how many keys matching pattern (SCAN) are sets holding member. */
int ft_redis_sets_with(const char *pattern, const char *member,
                       long long *out);
/* *out = whether the hash key has a field whose value is val. */
int ft_redis_hash_has_value(const char *key, const char *val, long long *out);

/* GET /v1/edges on the api: up to max edge ids and urls. The count, or -1
 * when the api did not answer 200. */
typedef struct ft_edge {
	char id[64];
	char url[256];
	long long load;
} ft_edge;
int ft_edges(const char *api_url, ft_edge *out, size_t max);

#endif
