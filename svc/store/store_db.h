/* The store's database layer: users, channels, members, messages, read
 * positions and the ingress consumer's offsets, behind one interface so
 * that another engine (PostgreSQL) can be added without touching the
 * callers.
 *
 * A store_db is a table of operations (store_db_ops) plus the engine's
 * state. Callers use the store_db_* functions below: they check the
 * arguments that do not need the database (name syntax, limits) and then
 * call the engine, so every engine sees only well-formed input and answers
 * with the same codes.
 *
 * Every operation takes a store_ctx: outputs are allocated in cx->arena
 * (protobuf messages from gen/, ready to be packed), cx->now_ms is the
 * clock used for created_at/joined_at/stored_at (0 = the wall clock), and
 * on failure cx->why holds a human reason. Operations return a chat_status:
 * CHAT_OK, a semantic code (NOT_FOUND, PERMISSION_DENIED, ...) or, when the
 * database itself failed, CHAT_UNAVAILABLE (busy/locked, connection lost,
 * server restarting: retry) or CHAT_INTERNAL. A failed write changes
 * nothing. All functions are thread-safe and block on the database.
 *
 * Engines: SQLite (store_db_sqlite.c: one file, writes serialised on one
 * connection) and PostgreSQL (store_db_pg.c: several store processes may
 * share one database; every operation below keeps its contract when two
 * of them run it at the same time, e.g. two OpenDm of the same pair create
 * one channel). */
#ifndef STORE_DB_H
#define STORE_DB_H

#include <stddef.h>
#include <stdint.h>

#include "chat_arena.h"
#include "client.pb-c.h"
#include "common.pb-c.h"
#include "log.pb-c.h"
#include "store.pb-c.h"

/* Limits shared by every engine (semantics in the contracts below). */
#define STORE_USER_NAME_MAX 32
#define STORE_PASS_HASH_MAX 1024
#define STORE_CHANNEL_NAME_MAX 64
#define STORE_MEMBERS_MAX 100
#define STORE_HISTORY_DEFAULT 50
#define STORE_HISTORY_MAX 500
#define STORE_ADMIN_CHANNELS_DEFAULT 100
#define STORE_ADMIN_CHANNELS_MAX 1000

typedef struct store_ctx {
	chat_arena *arena; /* outputs live here; required */
	int64_t now_ms;    /* clock for new rows; 0 = chat_now_ms() */
	char why[256];     /* the reason when an operation fails */
} store_ctx;

/* Record a reason in cx->why and return status. */
int store_ctx_fail(store_ctx *cx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* What became of one ingress record in store_db_ingest. */
typedef enum store_ingest_outcome {
	STORE_INGEST_NEW = 0,      /* stored with a new seq: fan it out */
	STORE_INGEST_DUP = 1,      /* (channel, sender, client_msg_id) known */
	STORE_INGEST_REJECTED = 2, /* not stored; why says why */
} store_ingest_outcome;

/* One record of an ingress batch. The caller fills rec (NULL when the
 * record was already rejected, e.g. it did not decode: then it sets
 * outcome = STORE_INGEST_REJECTED and why itself); the engine fills the
 * rest. */
typedef struct store_ingest_item {
	const Chat__IngressRecord *rec; /* in: validated record, or NULL */
	int outcome;                    /* out: store_ingest_outcome */
	uint64_t seq;                   /* out: NEW: its seq; DUP: the first */
	Chat__Message *msg;             /* out: NEW and DUP: the stored message
	                                 * (DUP: the first copy; may be NULL
	                                 * when out of memory) with
	                                 * sender_name and stored_at_ms, in
	                                 * cx->arena (strings may point into
	                                 * rec) */
	char why[128];                  /* out: REJECTED: the reason */
} store_ingest_item;

/* The consumer position to store with a batch: the next offset to read
 * for (topic, partition) under the batch's log_id, fenced: the upsert only
 * happens when the stored row still says what this writer believes it
 * says, i.e. nobody else (another store instance that briefly owned the
 * partition too) committed this partition since. Precisely, it succeeds
 * when a row exists with next_offset == expect, or when no row exists and
 * absent_ok is set; otherwise the whole ingest fails with CHAT_ABORTED
 * and nothing is written. */
typedef struct store_offset {
	const char *topic;
	int32_t partition;
	int64_t next_offset; /* to store */
	int64_t expect;      /* the stored next_offset required (-1: none) */
	int absent_ok;       /* a missing row is accepted too */
} store_offset;

typedef struct store_db store_db;

/* The operations an engine implements. Arguments arrive checked by the
 * store_db_* wrappers; see each wrapper for the contract. */
typedef struct store_db_ops {
	const char *name; /* "sqlite", "postgresql" */
	void (*close)(store_db *db);
	int (*create_user)(store_db *db, store_ctx *cx, const char *name,
	                   const char *pass_hash, Chat__User **out);
	int (*get_user)(store_db *db, store_ctx *cx, const char *name,
	                uint64_t id, Chat__UserRecord **out);
	int (*create_channel)(store_db *db, store_ctx *cx, uint64_t user_id,
	                      const char *name, char *const *members,
	                      size_t n_members, Chat__ChannelInfo **out,
	                      Chat__MemberEvent ***joined, size_t *n_joined);
	int (*open_dm)(store_db *db, store_ctx *cx, uint64_t user_id,
	               const char *peer_name, Chat__ChannelInfo **out,
	               Chat__MemberEvent ***joined, size_t *n_joined);
	int (*join)(store_db *db, store_ctx *cx, uint64_t user_id,
	            uint64_t channel_id, Chat__ChannelInfo **out,
	            Chat__MemberEvent ***joined, size_t *n_joined);
	int (*leave)(store_db *db, store_ctx *cx, uint64_t user_id,
	             uint64_t channel_id, Chat__MemberEvent **left);
	int (*get_channel)(store_db *db, store_ctx *cx, uint64_t user_id,
	                   uint64_t channel_id, Chat__ChannelInfo **out);
	int (*list_channels)(store_db *db, store_ctx *cx, uint64_t user_id,
	                     Chat__ChannelList **out);
	int (*history)(store_db *db, store_ctx *cx, uint64_t user_id,
	               uint64_t channel_id, uint64_t anchor_seq, int after,
	               uint32_t limit, Chat__HistoryPage **out);
	int (*mark_read)(store_db *db, store_ctx *cx, uint64_t user_id,
	                 uint64_t channel_id, uint64_t seq,
	                 Chat__ReadReceipt **out, int *moved);
	int (*members)(store_db *db, store_ctx *cx, uint64_t user_id,
	               uint64_t channel_id, Chat__UserList **out);
	int (*peers)(store_db *db, store_ctx *cx, uint64_t user_id,
	             Chat__UserList **out);
	int (*user_channels)(store_db *db, store_ctx *cx, uint64_t user_id,
	                     Chat__ChannelIds **out);
	int (*ingest)(store_db *db, store_ctx *cx, const char *log_id,
	              store_ingest_item *items, size_t n,
	              const store_offset *offs, size_t n_offs);
	int (*load_offset)(store_db *db, store_ctx *cx, const char *log_id,
	                   const char *topic, int32_t partition,
	                   int64_t *next_offset);
	int (*admin_channels)(store_db *db, store_ctx *cx, uint64_t after_id,
	                      uint32_t limit, Chat__AdminChannelList **out);
	int (*admin_members)(store_db *db, store_ctx *cx, uint64_t channel_id,
	                     Chat__UserList **out);
} store_db_ops;

/* Every engine's state begins with this. */
struct store_db {
	const store_db_ops *ops;
};

/* Open the database named by url: "postgres://..." or "postgresql://..."
 * is a PostgreSQL database (a libpq connection URI, e.g.
 * postgresql://chat@127.0.0.1:5432/chat); "sqlite:PATH" or a plain PATH is
 * a SQLite file (created if missing). The schema is created or migrated to
 * the current version. Returns 0 with *out, or -1 with a reason in err.
 * Blocks. */
int store_db_open(const char *url, store_db **out, char *err, size_t errlen);

/* The SQLite engine: WAL, synchronous=NORMAL, busy_timeout 5000, foreign
 * keys on, one write and one read connection (each behind a mutex) on the
 * same file, prepared statements cached per connection. */
int store_db_open_sqlite(const char *path, store_db **out, char *err,
                         size_t errlen);

/* The PostgreSQL engine (libpq). url is a libpq connection URI;
 * connect_timeout defaults to 5 s and application_name to chat-store.
 * One connection for ingress (one batch at a time) and a pool of up to 8
 * (CHAT_STORE_PG_POOL, 1..64, overrides) for the other operations, each
 * used by one thread at a time, statements prepared once per connection.
 * A connection that breaks (server restarted) is opened again on next
 * use: the operation in flight returns UNAVAILABLE, unless nothing of it
 * can have been committed yet, in which case it is retried once on a new
 * connection. Writes run in READ COMMITTED transactions with row locks and
 * unique constraints where two stores could race, retried (up to 4 times)
 * on serialization failures and deadlocks (SQLSTATE 40001, 40P01). The
 * schema (the same logical schema as SQLite's) is versioned in
 * schema_version and migrated under pg_advisory_xact_lock, so stores
 * starting together do not both migrate; a database newer than the
 * program is refused. */
int store_db_open_pg(const char *url, store_db **out, char *err,
                     size_t errlen);

/* url with any password replaced by *** (user:***@host, password=***),
 * for logs and messages. Truncated to outlen - 1 bytes. */
void store_db_url_redact(const char *url, char *out, size_t outlen);

/* Close the connections and free. Accepts NULL. */
void store_db_close(store_db *db);

/* Whether name is a valid user name: 1..32 bytes of [A-Za-z0-9_.-]. */
int store_user_name_valid(const char *name);

/* Whether name is a valid channel name: 1..64 bytes of UTF-8 with no
 * control character (tab and newline included). */
int store_channel_name_valid(const char *name);

/* A new user. INVALID_ARGUMENT for a bad name or an empty/over-long
 * pass_hash (opaque text, at most 1024 bytes); ALREADY_EXISTS "name
 * taken". *out = {id, name, created_at_ms}. */
int store_db_create_user(store_db *db, store_ctx *cx, const char *name,
                         const char *pass_hash, Chat__User **out);

/* A user by name when name is non-empty, else by id. NOT_FOUND when there
 * is none (a malformed name is simply not found). */
int store_db_get_user(store_db *db, store_ctx *cx, const char *name,
                      uint64_t id, Chat__UserRecord **out);

/* A group channel created by user_id, with the named users as members
 * too (duplicates and the creator's own name are ignored). INVALID_ARGUMENT
 * for a bad channel name or more than 100 member names; NOT_FOUND "no user
 * named X" for an unknown member (nothing is created) or an unknown
 * creator. *out is the channel as the creator sees it; *joined lists one
 * MemberEvent (JOINED, by the creator) per new member, the creator
 * first. */
int store_db_create_channel(store_db *db, store_ctx *cx, uint64_t user_id,
                            const char *name, char *const *members,
                            size_t n_members, Chat__ChannelInfo **out,
                            Chat__MemberEvent ***joined, size_t *n_joined);

/* The one DM channel between user_id and peer_name, created on first use
 * with both as members (its name: both names sorted, "alice,bob").
 * NOT_FOUND for an unknown peer; INVALID_ARGUMENT for oneself. *joined
 * lists the two JOINED events (caller first) when it was created, none
 * otherwise. dm_peer/dm_peer_id in *out are the peer. */
int store_db_open_dm(store_db *db, store_ctx *cx, uint64_t user_id,
                     const char *peer_name, Chat__ChannelInfo **out,
                     Chat__MemberEvent ***joined, size_t *n_joined);

/* Join a group channel. NOT_FOUND for an unknown channel or user;
 * PERMISSION_DENIED for a DM. Joining again is not an error (no event).
 * A new member starts at read_seq 0. *joined holds the JOINED event (by
 * the user) when the user was not a member before. */
int store_db_join(store_db *db, store_ctx *cx, uint64_t user_id,
                  uint64_t channel_id, Chat__ChannelInfo **out,
                  Chat__MemberEvent ***joined, size_t *n_joined);

/* Leave a group channel. NOT_FOUND for an unknown channel;
 * FAILED_PRECONDITION "not a member", or "cannot leave a direct message
 * channel". *left is the LEFT event (by the user). The time of leaving is
 * kept (table departures) for STORE_LEAVE_GRACE_MS. */
int store_db_leave(store_db *db, store_ctx *cx, uint64_t user_id,
                   uint64_t channel_id, Chat__MemberEvent **left);

/* A channel as user_id sees it: NOT_FOUND for an unknown channel,
 * PERMISSION_DENIED when user_id is not a member. */
int store_db_get_channel(store_db *db, store_ctx *cx, uint64_t user_id,
                         uint64_t channel_id, Chat__ChannelInfo **out);

/* Every channel user_id is in, ordered by id, with last_seq, read_seq,
 * unread, member_count and the DM peer. An unknown user has none. */
int store_db_list_channels(store_db *db, store_ctx *cx, uint64_t user_id,
                           Chat__ChannelList **out);

/* A page of history for a member (PERMISSION_DENIED otherwise; NOT_FOUND
 * for an unknown channel). limit 0 means 50, more than 500 means 500.
 * BEFORE (after = 0): seq < anchor_seq, anchor 0 = after the newest;
 * AFTER: seq > anchor_seq. Messages ascend; more says whether others
 * exist beyond the page in that direction; last_seq is the channel's. */
int store_db_history(store_db *db, store_ctx *cx, uint64_t user_id,
                     uint64_t channel_id, uint64_t anchor_seq, int after,
                     uint32_t limit, Chat__HistoryPage **out);

/* Move user_id's read position in a channel forward to seq (0 or beyond
 * last_seq means last_seq). Member only (NOT_FOUND, PERMISSION_DENIED).
 * *out holds the position after the call (unchanged when seq was behind
 * it); *moved says whether it moved. */
int store_db_mark_read(store_db *db, store_ctx *cx, uint64_t user_id,
                       uint64_t channel_id, uint64_t seq,
                       Chat__ReadReceipt **out, int *moved);

/* The members of a channel, by id; member only (NOT_FOUND,
 * PERMISSION_DENIED). */
int store_db_members(store_db *db, store_ctx *cx, uint64_t user_id,
                     uint64_t channel_id, Chat__UserList **out);

/* Every other user sharing at least one channel with user_id, by id. */
int store_db_peers(store_db *db, store_ctx *cx, uint64_t user_id,
                   Chat__UserList **out);

/* The ids of the channels user_id is in, ascending. */
int store_db_user_channels(store_db *db, store_ctx *cx, uint64_t user_id,
                           Chat__ChannelIds **out);

/* How long after leaving a channel a member's messages are still stored
 * when they were sent (sent_at_ms, stamped by the edge) before the leave,
 * or up to this long after it. An edge acknowledges a send once the log
 * holds it (fleet), so a message sent just before a Leave can reach the
 * store after it; the edge's view of membership also trails the store's
 * by the time a member event takes to reach it. Rejecting such a message
 * would lose an acknowledged send. The margin covers both and the clock
 * skew between an edge and a store. */
#define STORE_LEAVE_GRACE_MS 10000

/* Store a batch of ingress records and the consumer offsets in ONE
 * transaction, in the order given. A record whose channel does not exist
 * or whose sender is not a member (nor left less than
 * STORE_LEAVE_GRACE_MS before sending it) is REJECTED; a repeated (channel,
 * sender, client_msg_id), in the database or earlier in the batch, is a
 * DUP keeping the first seq and body; any other gets seq = last_seq + 1,
 * is inserted, becomes the channel's last_seq and the sender's read
 * position. offs are upserted under log_id, fenced (see store_offset):
 * when another writer moved one of them the status is ABORTED, and the
 * caller should re-read the stored offsets and go on from there. On any
 * failure nothing is written, the outcomes are meaningless and the status
 * is ABORTED (fenced), UNAVAILABLE (busy, connection lost: retry) or
 * INTERNAL. */
int store_db_ingest(store_db *db, store_ctx *cx, const char *log_id,
                    store_ingest_item *items, size_t n,
                    const store_offset *offs, size_t n_offs);

/* The stored next offset for (log_id, topic, partition): CHAT_OK with
 * *next_offset, or NOT_FOUND when none was stored. */
int store_db_load_offset(store_db *db, store_ctx *cx, const char *log_id,
                         const char *topic, int32_t partition,
                         int64_t *next_offset);

/* Admin (chatctl): every channel with id > after_id, ascending, at most
 * limit of them (0 means 100, more than 1000 means 1000), each with its
 * name, kind, last_seq and member_count; more says whether channels exist
 * beyond the page (ask again with after_id = the last id). No acting
 * user: for trusted callers only. */
int store_db_admin_channels(store_db *db, store_ctx *cx, uint64_t after_id,
                            uint32_t limit, Chat__AdminChannelList **out);

/* Admin (chatctl): the members of a channel, by id; NOT_FOUND for an
 * unknown channel. No acting user, no membership check. */
int store_db_admin_members(store_db *db, store_ctx *cx, uint64_t channel_id,
                           Chat__UserList **out);

#endif
