/* The SQLite engine of the store's database layer (see store_db.h).
 *
 * One file in WAL mode, two connections to it: writes go through the write
 * connection (one at a time, behind its mutex, each in BEGIN IMMEDIATE so
 * that check-then-insert is atomic even against another process), reads
 * through the read connection (behind its own mutex, multi-statement reads
 * inside one read transaction for a consistent snapshot). WAL lets the
 * readers run while a batch is being written. Statements are prepared once
 * per connection, on first use, and reset after every use (an un-reset
 * statement would pin a read snapshot). */
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_status.h"
#include "chat_util.h"
#include "store_db.h"

#define KIND_GROUP 1
#define KIND_DM 2

/* The schema, one entry per version; applied in order, never edited once
 * released (add a new entry instead). */
static const char *const migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE users("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " pass_hash TEXT NOT NULL,"
    " created_at_ms INTEGER NOT NULL);"
    "CREATE TABLE channels("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    " dm_key TEXT UNIQUE,"
    " created_by INTEGER NOT NULL REFERENCES users(id),"
    " created_at_ms INTEGER NOT NULL,"
    " last_seq INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE members("
    " channel_id INTEGER NOT NULL REFERENCES channels(id),"
    " user_id INTEGER NOT NULL REFERENCES users(id),"
    " joined_at_ms INTEGER NOT NULL,"
    " read_seq INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (channel_id, user_id)) WITHOUT ROWID;"
    "CREATE INDEX members_user ON members(user_id);"
    "CREATE TABLE messages("
    " channel_id INTEGER NOT NULL REFERENCES channels(id),"
    " seq INTEGER NOT NULL,"
    " sender_id INTEGER NOT NULL REFERENCES users(id),"
    " client_msg_id TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " sent_at_ms INTEGER NOT NULL,"
    " stored_at_ms INTEGER NOT NULL,"
    " PRIMARY KEY (channel_id, seq),"
    " UNIQUE (channel_id, sender_id, client_msg_id));"
    "CREATE TABLE consumer_offsets("
    " log_id TEXT NOT NULL,"
    " topic TEXT NOT NULL,"
    " partition INTEGER NOT NULL,"
    " next_offset INTEGER NOT NULL,"
    " PRIMARY KEY (log_id, topic, partition)) WITHOUT ROWID;",
    /* 2: when members left (STORE_LEAVE_GRACE_MS) */
    "CREATE TABLE departures("
    " channel_id INTEGER NOT NULL,"
    " user_id INTEGER NOT NULL,"
    " left_at_ms INTEGER NOT NULL,"
    " PRIMARY KEY (channel_id, user_id)) WITHOUT ROWID;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* The columns of a channel as one member sees it (see row_info). */
#define INFO_SELECT                                                            \
	"SELECT c.id, c.name, c.kind, c.last_seq, m.read_seq,"                 \
	" (SELECT count(*) FROM members x WHERE x.channel_id = c.id),"         \
	" pu.id, pu.name"                                                      \
	" FROM members m JOIN channels c ON c.id = m.channel_id"               \
	" LEFT JOIN members pm ON c.kind = 2 AND pm.channel_id = c.id"         \
	"  AND pm.user_id <> m.user_id"                                        \
	" LEFT JOIN users pu ON pu.id = pm.user_id"

#define MSG_SELECT                                                             \
	"SELECT m.seq, m.sender_id, u.name, m.client_msg_id, m.body,"          \
	" m.sent_at_ms, m.stored_at_ms"                                        \
	" FROM messages m JOIN users u ON u.id = m.sender_id"

enum stmt_id {
	S_BEGIN,
	S_BEGIN_IMM,
	S_COMMIT,
	S_ROLLBACK,
	S_USER_INSERT,
	S_USER_BY_NAME,
	S_USER_BY_ID,
	S_CHAN_GET,
	S_CHAN_BY_DMKEY,
	S_CHAN_INSERT,
	S_CHAN_SET_LAST,
	S_MEMBER_GET,
	S_MEMBER_INSERT,
	S_MEMBER_DELETE,
	S_DEPART_SET,
	S_MEMBER_SET_READ,
	S_INFO_ONE,
	S_INFO_LIST,
	S_HIST_BEFORE,
	S_HIST_AFTER,
	S_MEMBERS,
	S_PEERS,
	S_USER_CHANNELS,
	S_ING_CHECK,
	S_MSG_BY_CMID,
	S_MSG_INSERT,
	S_OFFSET_CAS,
	S_OFFSET_INSERT,
	S_OFFSET_GET,
	S_ADMIN_CHANNELS,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN",
    [S_BEGIN_IMM] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_USER_INSERT] = "INSERT INTO users(name, pass_hash, created_at_ms)"
                      " VALUES (?1, ?2, ?3)",
    [S_USER_BY_NAME] = "SELECT id, name, pass_hash, created_at_ms FROM users"
                       " WHERE name = ?1",
    [S_USER_BY_ID] = "SELECT id, name, pass_hash, created_at_ms FROM users"
                     " WHERE id = ?1",
    [S_CHAN_GET] = "SELECT kind, last_seq FROM channels WHERE id = ?1",
    [S_CHAN_BY_DMKEY] = "SELECT id FROM channels WHERE dm_key = ?1",
    [S_CHAN_INSERT] = "INSERT INTO channels(name, kind, dm_key, created_by,"
                      " created_at_ms, last_seq)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, 0)",
    [S_CHAN_SET_LAST] = "UPDATE channels SET last_seq = ?2 WHERE id = ?1",
    [S_MEMBER_GET] = "SELECT read_seq FROM members"
                     " WHERE channel_id = ?1 AND user_id = ?2",
    [S_MEMBER_INSERT] = "INSERT OR IGNORE INTO members(channel_id, user_id,"
                        " joined_at_ms, read_seq) VALUES (?1, ?2, ?3, 0)",
    [S_MEMBER_DELETE] = "DELETE FROM members"
                        " WHERE channel_id = ?1 AND user_id = ?2",
    [S_DEPART_SET] = "INSERT INTO departures(channel_id, user_id,"
                     " left_at_ms) VALUES (?1, ?2, ?3)"
                     " ON CONFLICT (channel_id, user_id)"
                     " DO UPDATE SET left_at_ms = excluded.left_at_ms",
    [S_MEMBER_SET_READ] = "UPDATE members SET read_seq = ?3"
                          " WHERE channel_id = ?1 AND user_id = ?2"
                          " AND read_seq < ?3",
    [S_INFO_ONE] = INFO_SELECT " WHERE m.user_id = ?1 AND c.id = ?2",
    [S_INFO_LIST] = INFO_SELECT " WHERE m.user_id = ?1 ORDER BY c.id",
    [S_HIST_BEFORE] = MSG_SELECT " WHERE m.channel_id = ?1 AND m.seq < ?2"
                                 " ORDER BY m.seq DESC LIMIT ?3",
    [S_HIST_AFTER] = MSG_SELECT " WHERE m.channel_id = ?1 AND m.seq > ?2"
                                " ORDER BY m.seq ASC LIMIT ?3",
    [S_MEMBERS] = "SELECT u.id, u.name, u.created_at_ms"
                  " FROM members m JOIN users u ON u.id = m.user_id"
                  " WHERE m.channel_id = ?1 ORDER BY u.id",
    [S_PEERS] = "SELECT DISTINCT u.id, u.name, u.created_at_ms"
                " FROM members a JOIN members b ON b.channel_id = a.channel_id"
                "  AND b.user_id <> a.user_id"
                " JOIN users u ON u.id = b.user_id"
                " WHERE a.user_id = ?1 ORDER BY u.id",
    [S_USER_CHANNELS] = "SELECT m.channel_id, (SELECT count(*) FROM members c"
                        " WHERE c.channel_id = m.channel_id)"
                        " FROM members m WHERE m.user_id = ?1"
                        " ORDER BY m.channel_id",
    /* a member, or one who left (and when) */
    [S_ING_CHECK] = "SELECT c.last_seq, u.name, m.user_id IS NOT NULL,"
                    " coalesce(d.left_at_ms, 0)"
                    " FROM channels c JOIN users u ON u.id = ?2"
                    " LEFT JOIN members m ON m.channel_id = c.id"
                    "  AND m.user_id = ?2"
                    " LEFT JOIN departures d ON d.channel_id = c.id"
                    "  AND d.user_id = ?2"
                    " WHERE c.id = ?1"
                    "  AND (m.user_id IS NOT NULL OR d.user_id IS NOT NULL)",
    [S_MSG_BY_CMID] = "SELECT seq, body, sent_at_ms, stored_at_ms"
                      " FROM messages WHERE channel_id = ?1"
                      " AND sender_id = ?2 AND client_msg_id = ?3",
    [S_MSG_INSERT] = "INSERT INTO messages(channel_id, seq, sender_id,"
                     " client_msg_id, body, sent_at_ms, stored_at_ms)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_OFFSET_CAS] = "UPDATE consumer_offsets SET next_offset = ?4"
                     " WHERE log_id = ?1 AND topic = ?2 AND partition = ?3"
                     " AND next_offset = ?5",
    [S_OFFSET_INSERT] = "INSERT OR IGNORE INTO consumer_offsets(log_id,"
                        " topic, partition, next_offset)"
                        " VALUES (?1, ?2, ?3, ?4)",
    [S_OFFSET_GET] = "SELECT next_offset FROM consumer_offsets"
                     " WHERE log_id = ?1 AND topic = ?2 AND partition = ?3",
    [S_ADMIN_CHANNELS] = "SELECT c.id, c.name, c.kind, c.last_seq,"
                         " (SELECT count(*) FROM members x"
                         "  WHERE x.channel_id = c.id)"
                         " FROM channels c WHERE c.id > ?1"
                         " ORDER BY c.id LIMIT ?2",
};

struct conn {
	sqlite3 *db;
	pthread_mutex_t mu;
	int mu_init;
	sqlite3_stmt *st[S_COUNT];
};

typedef struct sq {
	store_db base;
	struct conn w; /* writes */
	struct conn r; /* reads */
} sq;

static int64_t now_ms(store_ctx *cx)
{
	return cx->now_ms ? cx->now_ms : chat_now_ms();
}

/* Map a SQLite failure to a status with a reason. */
static int dberr(store_ctx *cx, struct conn *c, int rc, const char *what)
{
	int prim = rc & 0xff;
	const char *msg = c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
	chat_error("store", "db_error", "op=%s rc=%d msg=\"%s\"", what, rc,
	           msg);
	if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
		return store_ctx_fail(cx, CHAT_UNAVAILABLE,
		                      "database busy (%s)", what);
	return store_ctx_fail(cx, CHAT_INTERNAL, "database error in %s: %s",
	                      what, msg);
}

static int oom(store_ctx *cx)
{
	return store_ctx_fail(cx, CHAT_RESOURCE_EXHAUSTED, "out of memory");
}

/* The cached statement id, reset and unbound, or NULL (reason in cx). */
static sqlite3_stmt *stmt(struct conn *c, store_ctx *cx, int id)
{
	sqlite3_stmt *st = c->st[id];
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	int rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1,
	                            SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		dberr(cx, c, rc, "prepare");
		return NULL;
	}
	c->st[id] = st;
	return st;
}

static void bind_i64(sqlite3_stmt *st, int i, uint64_t v)
{
	sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_STATIC);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);
	return v < 0 ? 0 : (uint64_t)v;
}

/* A copy of a text column in the arena ("" for NULL); NULL when out of
 * memory. */
static char *col_str(store_ctx *cx, sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	int n = sqlite3_column_bytes(st, i);
	if (!t)
		return chat_arena_strdup(cx->arena, "");
	return chat_arena_strndup(cx->arena, (const char *)t, (size_t)n);
}

/* Run a statement that returns no rows. */
static int exec_stmt(struct conn *c, store_ctx *cx, sqlite3_stmt *st,
                     const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return dberr(cx, c, rc, what);
	return CHAT_OK;
}

static int tx(struct conn *c, store_ctx *cx, int id)
{
	sqlite3_stmt *st = stmt(c, cx, id);
	if (!st)
		return CHAT_INTERNAL;
	return exec_stmt(c, cx, st, stmt_sql[id]);
}

static void rollback(struct conn *c)
{
	store_ctx scratch = {0};
	if (sqlite3_get_autocommit(c->db))
		return;
	tx(c, &scratch, S_ROLLBACK);
}

/* Commit, or roll back when the commit fails (a failed COMMIT may leave
 * the transaction open). */
static int commit(struct conn *c, store_ctx *cx)
{
	int st = tx(c, cx, S_COMMIT);
	if (st != CHAT_OK)
		rollback(c);
	return st;
}

/* A growable array of pointers in the arena. */
struct vec {
	void **v;
	size_t n, cap;
};

static int vec_push(chat_arena *a, struct vec *v, void *p)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		void **nv = chat_arena_ptrs(a, cap);
		if (!nv)
			return -1;
		if (v->n)
			memcpy(nv, v->v, v->n * sizeof *nv);
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = p;
	return 0;
}

/* ---- lookups shared by several operations (caller holds c->mu) ---- */

struct user_row {
	uint64_t id;
	char *name;
	char *pass_hash;
	int64_t created_at_ms;
};

/* A user by name (name != NULL) or id: CHAT_OK, NOT_FOUND or an error. */
static int user_get(struct conn *c, store_ctx *cx, const char *name,
                    uint64_t id, struct user_row *u)
{
	sqlite3_stmt *st = stmt(c, cx, name ? S_USER_BY_NAME : S_USER_BY_ID);
	int rc, ret = CHAT_OK;
	if (!st)
		return CHAT_INTERNAL;
	if (name)
		bind_text(st, 1, name);
	else
		bind_i64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		u->id = col_u64(st, 0);
		u->name = col_str(cx, st, 1);
		u->pass_hash = col_str(cx, st, 2);
		u->created_at_ms = sqlite3_column_int64(st, 3);
		if (!u->name || !u->pass_hash)
			ret = oom(cx);
	} else if (rc == SQLITE_DONE) {
		if (name)
			ret = store_ctx_fail(cx, CHAT_NOT_FOUND,
			                     "no user named %s", name);
		else
			ret = store_ctx_fail(cx, CHAT_NOT_FOUND,
			                     "no user with id %" PRIu64, id);
	} else {
		ret = dberr(cx, c, rc, "user lookup");
	}
	sqlite3_reset(st);
	return ret;
}

/* A channel's kind and last_seq: CHAT_OK, NOT_FOUND or an error. */
static int chan_get(struct conn *c, store_ctx *cx, uint64_t channel_id,
                    int *kind, uint64_t *last_seq)
{
	sqlite3_stmt *st = stmt(c, cx, S_CHAN_GET);
	int rc, ret = CHAT_OK;
	if (!st)
		return CHAT_INTERNAL;
	bind_i64(st, 1, channel_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*kind = sqlite3_column_int(st, 0);
		*last_seq = col_u64(st, 1);
	} else if (rc == SQLITE_DONE) {
		ret = store_ctx_fail(cx, CHAT_NOT_FOUND,
		                     "no channel %" PRIu64, channel_id);
	} else {
		ret = dberr(cx, c, rc, "channel lookup");
	}
	sqlite3_reset(st);
	return ret;
}

/* A member's read position: CHAT_OK, NOT_FOUND (not a member) or an
 * error. */
static int member_get(struct conn *c, store_ctx *cx, uint64_t channel_id,
                      uint64_t user_id, uint64_t *read_seq)
{
	sqlite3_stmt *st = stmt(c, cx, S_MEMBER_GET);
	int rc, ret = CHAT_OK;
	if (!st)
		return CHAT_INTERNAL;
	bind_i64(st, 1, channel_id);
	bind_i64(st, 2, user_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (read_seq)
			*read_seq = col_u64(st, 0);
	} else if (rc == SQLITE_DONE) {
		ret = store_ctx_fail(cx, CHAT_NOT_FOUND, "not a member");
	} else {
		ret = dberr(cx, c, rc, "member lookup");
	}
	sqlite3_reset(st);
	return ret;
}

/* The channel exists and user_id is a member: CHAT_OK, NOT_FOUND,
 * PERMISSION_DENIED or an error. */
static int member_access(struct conn *c, store_ctx *cx, uint64_t user_id,
                         uint64_t channel_id, int *kind, uint64_t *last_seq,
                         uint64_t *read_seq)
{
	int k, ret;
	uint64_t last;
	ret = chan_get(c, cx, channel_id, &k, &last);
	if (ret != CHAT_OK)
		return ret;
	ret = member_get(c, cx, channel_id, user_id, read_seq);
	if (ret == CHAT_NOT_FOUND)
		return store_ctx_fail(cx, CHAT_PERMISSION_DENIED,
		                      "not a member of channel %" PRIu64,
		                      channel_id);
	if (ret != CHAT_OK)
		return ret;
	if (kind)
		*kind = k;
	if (last_seq)
		*last_seq = last;
	return CHAT_OK;
}

/* The current row of S_INFO_ONE / S_INFO_LIST as a ChannelInfo. */
static Chat__ChannelInfo *row_info(store_ctx *cx, sqlite3_stmt *st)
{
	Chat__ChannelInfo *ci = (Chat__ChannelInfo *)chat_arena_msg(
	    cx->arena, &chat__channel_info__descriptor);
	if (!ci)
		return NULL;
	ci->id = col_u64(st, 0);
	ci->name = col_str(cx, st, 1);
	ci->kind = sqlite3_column_int(st, 2) == KIND_DM
	               ? CHAT__CHANNEL_KIND__KIND_DM
	               : CHAT__CHANNEL_KIND__KIND_GROUP;
	ci->last_seq = col_u64(st, 3);
	ci->read_seq = col_u64(st, 4);
	ci->unread = ci->last_seq > ci->read_seq ? ci->last_seq - ci->read_seq
	                                         : 0;
	ci->member_count = (uint32_t)sqlite3_column_int64(st, 5);
	if (ci->kind == CHAT__CHANNEL_KIND__KIND_DM &&
	    sqlite3_column_type(st, 6) != SQLITE_NULL) {
		ci->dm_peer_id = col_u64(st, 6);
		ci->dm_peer = col_str(cx, st, 7);
		if (!ci->dm_peer)
			return NULL;
	}
	if (!ci->name)
		return NULL;
	return ci;
}

/* channel_id as user_id (a member) sees it. */
static int info_one(struct conn *c, store_ctx *cx, uint64_t user_id,
                    uint64_t channel_id, Chat__ChannelInfo **out)
{
	sqlite3_stmt *st = stmt(c, cx, S_INFO_ONE);
	int rc, ret = CHAT_OK;
	if (!st)
		return CHAT_INTERNAL;
	bind_i64(st, 1, user_id);
	bind_i64(st, 2, channel_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = row_info(cx, st);
		if (!*out)
			ret = oom(cx);
	} else if (rc == SQLITE_DONE) {
		ret = store_ctx_fail(cx, CHAT_PERMISSION_DENIED,
		                     "not a member of channel %" PRIu64,
		                     channel_id);
	} else {
		ret = dberr(cx, c, rc, "channel info");
	}
	sqlite3_reset(st);
	return ret;
}

static Chat__MemberEvent *member_event(store_ctx *cx, uint64_t channel_id,
                                       uint64_t user_id, const char *name,
                                       int kind, uint64_t by_id,
                                       const char *by_name)
{
	Chat__MemberEvent *e = (Chat__MemberEvent *)chat_arena_msg(
	    cx->arena, &chat__member_event__descriptor);
	if (!e)
		return NULL;
	e->channel_id = channel_id;
	e->user_id = user_id;
	e->user_name = (char *)name;
	e->kind = (Chat__MemberEvent__Kind)kind;
	e->by_user_id = by_id;
	e->by_user_name = (char *)by_name;
	return e;
}

/* Add user_id to channel_id; when it was not a member, append a JOINED
 * event to ev. */
static int member_add(struct conn *c, store_ctx *cx, uint64_t channel_id,
                      uint64_t user_id, const char *name, uint64_t by_id,
                      const char *by_name, Chat__MemberEvent **ev, size_t *n)
{
	sqlite3_stmt *st = stmt(c, cx, S_MEMBER_INSERT);
	int ret;
	if (!st)
		return CHAT_INTERNAL;
	bind_i64(st, 1, channel_id);
	bind_i64(st, 2, user_id);
	sqlite3_bind_int64(st, 3, now_ms(cx));
	ret = exec_stmt(c, cx, st, "member insert");
	if (ret != CHAT_OK)
		return ret;
	if (sqlite3_changes(c->db) == 0)
		return CHAT_OK;
	ev[*n] = member_event(cx, channel_id, user_id, name,
	                      CHAT__MEMBER_EVENT__KIND__JOINED, by_id, by_name);
	if (!ev[*n])
		return oom(cx);
	(*n)++;
	return CHAT_OK;
}

static int chan_insert(struct conn *c, store_ctx *cx, const char *name,
                       int kind, const char *dm_key, uint64_t by,
                       uint64_t *id)
{
	sqlite3_stmt *st = stmt(c, cx, S_CHAN_INSERT);
	int ret;
	if (!st)
		return CHAT_INTERNAL;
	bind_text(st, 1, name);
	sqlite3_bind_int(st, 2, kind);
	if (dm_key)
		bind_text(st, 3, dm_key);
	else
		sqlite3_bind_null(st, 3);
	bind_i64(st, 4, by);
	sqlite3_bind_int64(st, 5, now_ms(cx));
	ret = exec_stmt(c, cx, st, "channel insert");
	if (ret == CHAT_OK)
		*id = (uint64_t)sqlite3_last_insert_rowid(c->db);
	return ret;
}

/* ---- operations ---- */

static int sq_create_user(store_db *db, store_ctx *cx, const char *name,
                          const char *pass_hash, Chat__User **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->w;
	int64_t now = now_ms(cx);
	sqlite3_stmt *st;
	int rc, ret;
	Chat__User *u;

	pthread_mutex_lock(&c->mu);
	st = stmt(c, cx, S_USER_INSERT);
	if (!st) {
		ret = CHAT_INTERNAL;
		goto out;
	}
	bind_text(st, 1, name);
	bind_text(st, 2, pass_hash);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE ||
	    rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		ret = store_ctx_fail(cx, CHAT_ALREADY_EXISTS, "name taken");
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = dberr(cx, c, rc, "user insert");
		goto out;
	}
	u = (Chat__User *)chat_arena_msg(cx->arena, &chat__user__descriptor);
	if (!u || !(u->name = chat_arena_strdup(cx->arena, name))) {
		ret = oom(cx);
		goto out;
	}
	u->id = (uint64_t)sqlite3_last_insert_rowid(c->db);
	u->created_at_ms = now;
	*out = u;
	ret = CHAT_OK;
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

static int sq_get_user(store_db *db, store_ctx *cx, const char *name,
                       uint64_t id, Chat__UserRecord **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->r;
	struct user_row u;
	Chat__UserRecord *r;
	int ret;

	pthread_mutex_lock(&c->mu);
	ret = user_get(c, cx, name, id, &u);
	pthread_mutex_unlock(&c->mu);
	if (ret != CHAT_OK)
		return ret;
	r = (Chat__UserRecord *)chat_arena_msg(cx->arena,
	                                       &chat__user_record__descriptor);
	if (!r)
		return oom(cx);
	r->id = u.id;
	r->name = u.name;
	r->pass_hash = u.pass_hash;
	*out = r;
	return CHAT_OK;
}

static int sq_create_channel(store_db *db, store_ctx *cx, uint64_t user_id,
                             const char *name, char *const *members,
                             size_t n_members, Chat__ChannelInfo **out,
                             Chat__MemberEvent ***joined, size_t *n_joined)
{
	sq *q = (sq *)db;
	struct conn *c = &q->w;
	struct user_row me, *mu = NULL;
	Chat__MemberEvent **ev;
	size_t nev = 0;
	uint64_t chan = 0;
	int ret;

	ev = (Chat__MemberEvent **)chat_arena_ptrs(cx->arena, n_members + 1);
	if (n_members)
		mu = chat_arena_alloc(cx->arena, n_members * sizeof *mu);
	if (!ev || (n_members && !mu))
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if ((ret = tx(c, cx, S_BEGIN_IMM)) != CHAT_OK)
		goto out;
	if ((ret = user_get(c, cx, NULL, user_id, &me)) != CHAT_OK)
		goto fail;
	for (size_t i = 0; i < n_members; i++)
		if ((ret = user_get(c, cx, members[i], 0, &mu[i])) != CHAT_OK)
			goto fail;
	if ((ret = chan_insert(c, cx, name, KIND_GROUP, NULL, me.id,
	                       &chan)) != CHAT_OK)
		goto fail;
	if ((ret = member_add(c, cx, chan, me.id, me.name, me.id, me.name, ev,
	                      &nev)) != CHAT_OK)
		goto fail;
	for (size_t i = 0; i < n_members; i++)
		if ((ret = member_add(c, cx, chan, mu[i].id, mu[i].name, me.id,
		                      me.name, ev, &nev)) != CHAT_OK)
			goto fail;
	if ((ret = info_one(c, cx, me.id, chan, out)) != CHAT_OK)
		goto fail;
	if ((ret = commit(c, cx)) != CHAT_OK)
		goto out;
	*joined = ev;
	*n_joined = nev;
	goto out;
fail:
	rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

static int sq_open_dm(store_db *db, store_ctx *cx, uint64_t user_id,
                      const char *peer_name, Chat__ChannelInfo **out,
                      Chat__MemberEvent ***joined, size_t *n_joined)
{
	sq *q = (sq *)db;
	struct conn *c = &q->w;
	struct user_row me, peer;
	Chat__MemberEvent **ev;
	size_t nev = 0;
	uint64_t chan = 0;
	char key[48];
	sqlite3_stmt *st;
	int rc, ret;

	ev = (Chat__MemberEvent **)chat_arena_ptrs(cx->arena, 2);
	if (!ev)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if ((ret = tx(c, cx, S_BEGIN_IMM)) != CHAT_OK)
		goto out;
	if ((ret = user_get(c, cx, NULL, user_id, &me)) != CHAT_OK)
		goto fail;
	if ((ret = user_get(c, cx, peer_name, 0, &peer)) != CHAT_OK)
		goto fail;
	if (peer.id == me.id) {
		ret = store_ctx_fail(cx, CHAT_INVALID_ARGUMENT,
		                     "cannot open a direct message with "
		                     "yourself");
		goto fail;
	}
	snprintf(key, sizeof key, "%" PRIu64 ":%" PRIu64,
	         me.id < peer.id ? me.id : peer.id,
	         me.id < peer.id ? peer.id : me.id);
	if (!(st = stmt(c, cx, S_CHAN_BY_DMKEY))) {
		ret = CHAT_INTERNAL;
		goto fail;
	}
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		chan = col_u64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		ret = dberr(cx, c, rc, "dm lookup");
		goto fail;
	}
	if (rc == SQLITE_DONE) {
		int first_me = strcmp(me.name, peer.name) < 0;
		char *name = chat_arena_printf(
		    cx->arena, "%s,%s", first_me ? me.name : peer.name,
		    first_me ? peer.name : me.name);
		if (!name) {
			ret = oom(cx);
			goto fail;
		}
		if ((ret = chan_insert(c, cx, name, KIND_DM, key, me.id,
		                       &chan)) != CHAT_OK ||
		    (ret = member_add(c, cx, chan, me.id, me.name, me.id,
		                      me.name, ev, &nev)) != CHAT_OK ||
		    (ret = member_add(c, cx, chan, peer.id, peer.name, me.id,
		                      me.name, ev, &nev)) != CHAT_OK)
			goto fail;
	}
	if ((ret = info_one(c, cx, me.id, chan, out)) != CHAT_OK)
		goto fail;
	if ((ret = commit(c, cx)) != CHAT_OK)
		goto out;
	*joined = ev;
	*n_joined = nev;
	goto out;
fail:
	rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

static int sq_join(store_db *db, store_ctx *cx, uint64_t user_id,
                   uint64_t channel_id, Chat__ChannelInfo **out,
                   Chat__MemberEvent ***joined, size_t *n_joined)
{
	sq *q = (sq *)db;
	struct conn *c = &q->w;
	struct user_row me;
	Chat__MemberEvent **ev;
	size_t nev = 0;
	uint64_t last;
	int kind, ret;

	ev = (Chat__MemberEvent **)chat_arena_ptrs(cx->arena, 1);
	if (!ev)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if ((ret = tx(c, cx, S_BEGIN_IMM)) != CHAT_OK)
		goto out;
	if ((ret = chan_get(c, cx, channel_id, &kind, &last)) != CHAT_OK)
		goto fail;
	if (kind == KIND_DM) {
		ret = store_ctx_fail(cx, CHAT_PERMISSION_DENIED,
		                     "cannot join a direct message channel");
		goto fail;
	}
	if ((ret = user_get(c, cx, NULL, user_id, &me)) != CHAT_OK)
		goto fail;
	if ((ret = member_add(c, cx, channel_id, me.id, me.name, me.id,
	                      me.name, ev, &nev)) != CHAT_OK)
		goto fail;
	if ((ret = info_one(c, cx, me.id, channel_id, out)) != CHAT_OK)
		goto fail;
	if ((ret = commit(c, cx)) != CHAT_OK)
		goto out;
	*joined = ev;
	*n_joined = nev;
	goto out;
fail:
	rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

static int sq_leave(store_db *db, store_ctx *cx, uint64_t user_id,
                    uint64_t channel_id, Chat__MemberEvent **left)
{
	sq *q = (sq *)db;
	struct conn *c = &q->w;
	struct user_row me;
	sqlite3_stmt *st;
	Chat__MemberEvent *e;
	uint64_t last;
	int kind, ret;

	pthread_mutex_lock(&c->mu);
	if ((ret = tx(c, cx, S_BEGIN_IMM)) != CHAT_OK)
		goto out;
	if ((ret = chan_get(c, cx, channel_id, &kind, &last)) != CHAT_OK)
		goto fail;
	ret = member_get(c, cx, channel_id, user_id, NULL);
	if (ret == CHAT_NOT_FOUND)
		ret = store_ctx_fail(cx, CHAT_FAILED_PRECONDITION,
		                     "not a member");
	if (ret != CHAT_OK)
		goto fail;
	if (kind == KIND_DM) {
		ret = store_ctx_fail(cx, CHAT_FAILED_PRECONDITION,
		                     "cannot leave a direct message channel");
		goto fail;
	}
	if ((ret = user_get(c, cx, NULL, user_id, &me)) != CHAT_OK)
		goto fail;
	if (!(st = stmt(c, cx, S_MEMBER_DELETE))) {
		ret = CHAT_INTERNAL;
		goto fail;
	}
	bind_i64(st, 1, channel_id);
	bind_i64(st, 2, user_id);
	if ((ret = exec_stmt(c, cx, st, "member delete")) != CHAT_OK)
		goto fail;
	if (!(st = stmt(c, cx, S_DEPART_SET))) {
		ret = CHAT_INTERNAL;
		goto fail;
	}
	bind_i64(st, 1, channel_id);
	bind_i64(st, 2, user_id);
	sqlite3_bind_int64(st, 3, now_ms(cx));
	if ((ret = exec_stmt(c, cx, st, "departure")) != CHAT_OK)
		goto fail;
	e = member_event(cx, channel_id, me.id, me.name,
	                 CHAT__MEMBER_EVENT__KIND__LEFT, me.id, me.name);
	if (!e) {
		ret = oom(cx);
		goto fail;
	}
	if ((ret = commit(c, cx)) != CHAT_OK)
		goto out;
	*left = e;
	goto out;
fail:
	rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

static int sq_get_channel(store_db *db, store_ctx *cx, uint64_t user_id,
                          uint64_t channel_id, Chat__ChannelInfo **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->r;
	int ret;

	pthread_mutex_lock(&c->mu);
	if ((ret = tx(c, cx, S_BEGIN)) != CHAT_OK)
		goto out;
	ret = member_access(c, cx, user_id, channel_id, NULL, NULL, NULL);
	if (ret == CHAT_OK)
		ret = info_one(c, cx, user_id, channel_id, out);
	if (ret == CHAT_OK)
		ret = commit(c, cx);
	else
		rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

static int sq_list_channels(store_db *db, store_ctx *cx, uint64_t user_id,
                            Chat__ChannelList **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->r;
	struct vec v = {0};
	sqlite3_stmt *st;
	Chat__ChannelList *l;
	int rc, ret = CHAT_OK;

	l = (Chat__ChannelList *)chat_arena_msg(
	    cx->arena, &chat__channel_list__descriptor);
	if (!l)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if (!(st = stmt(c, cx, S_INFO_LIST))) {
		ret = CHAT_INTERNAL;
		goto out;
	}
	bind_i64(st, 1, user_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		Chat__ChannelInfo *ci = row_info(cx, st);
		if (!ci || vec_push(cx->arena, &v, ci)) {
			ret = oom(cx);
			break;
		}
	}
	if (ret == CHAT_OK && rc != SQLITE_DONE)
		ret = dberr(cx, c, rc, "list channels");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&c->mu);
	if (ret != CHAT_OK)
		return ret;
	l->channels = (Chat__ChannelInfo **)v.v;
	l->n_channels = v.n;
	*out = l;
	return CHAT_OK;
}

static Chat__Message *row_message(store_ctx *cx, sqlite3_stmt *st,
                                  uint64_t channel_id)
{
	Chat__Message *m = (Chat__Message *)chat_arena_msg(
	    cx->arena, &chat__message__descriptor);
	if (!m)
		return NULL;
	m->channel_id = channel_id;
	m->seq = col_u64(st, 0);
	m->sender_id = col_u64(st, 1);
	m->sender_name = col_str(cx, st, 2);
	m->client_msg_id = col_str(cx, st, 3);
	m->body = col_str(cx, st, 4);
	m->sent_at_ms = sqlite3_column_int64(st, 5);
	m->stored_at_ms = sqlite3_column_int64(st, 6);
	if (!m->sender_name || !m->client_msg_id || !m->body)
		return NULL;
	return m;
}

static int sq_history(store_db *db, store_ctx *cx, uint64_t user_id,
                      uint64_t channel_id, uint64_t anchor_seq, int after,
                      uint32_t limit, Chat__HistoryPage **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->r;
	Chat__HistoryPage *p;
	Chat__Message **msgs;
	sqlite3_stmt *st;
	uint64_t last = 0;
	size_t n = 0;
	int rc, ret;

	p = (Chat__HistoryPage *)chat_arena_msg(
	    cx->arena, &chat__history_page__descriptor);
	msgs = (Chat__Message **)chat_arena_ptrs(cx->arena, (size_t)limit + 1);
	if (!p || !msgs)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if ((ret = tx(c, cx, S_BEGIN)) != CHAT_OK)
		goto out;
	ret = member_access(c, cx, user_id, channel_id, NULL, &last, NULL);
	if (ret != CHAT_OK)
		goto fail;
	if (!(st = stmt(c, cx, after ? S_HIST_AFTER : S_HIST_BEFORE))) {
		ret = CHAT_INTERNAL;
		goto fail;
	}
	bind_i64(st, 1, channel_id);
	if (!after && anchor_seq == 0)
		sqlite3_bind_int64(st, 2, INT64_MAX);
	else
		bind_i64(st, 2, anchor_seq);
	/* One more than asked: whether it comes tells `more`. */
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!(msgs[n] = row_message(cx, st, channel_id))) {
			ret = oom(cx);
			break;
		}
		n++;
	}
	if (ret == CHAT_OK && rc != SQLITE_DONE)
		ret = dberr(cx, c, rc, "history");
	sqlite3_reset(st);
	if (ret != CHAT_OK)
		goto fail;
	ret = commit(c, cx);
	goto out;
fail:
	rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	if (ret != CHAT_OK)
		return ret;
	p->more = n > limit;
	if (n > limit)
		n = limit; /* BEFORE: drops the oldest; AFTER: the newest */
	if (!after) /* rows came newest first */
		for (size_t i = 0; i < n / 2; i++) {
			Chat__Message *t = msgs[i];
			msgs[i] = msgs[n - 1 - i];
			msgs[n - 1 - i] = t;
		}
	p->channel_id = channel_id;
	p->messages = msgs;
	p->n_messages = n;
	p->last_seq = last;
	*out = p;
	return CHAT_OK;
}

static int sq_mark_read(store_db *db, store_ctx *cx, uint64_t user_id,
                        uint64_t channel_id, uint64_t seq,
                        Chat__ReadReceipt **out, int *moved)
{
	sq *q = (sq *)db;
	struct conn *c = &q->w;
	struct user_row me;
	Chat__ReadReceipt *r;
	sqlite3_stmt *st;
	uint64_t last = 0, cur = 0, target;
	int ret;

	r = (Chat__ReadReceipt *)chat_arena_msg(
	    cx->arena, &chat__read_receipt__descriptor);
	if (!r)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if ((ret = tx(c, cx, S_BEGIN_IMM)) != CHAT_OK)
		goto out;
	ret = member_access(c, cx, user_id, channel_id, NULL, &last, &cur);
	if (ret != CHAT_OK)
		goto fail;
	if ((ret = user_get(c, cx, NULL, user_id, &me)) != CHAT_OK)
		goto fail;
	target = (seq == 0 || seq > last) ? last : seq;
	if (target > cur) {
		if (!(st = stmt(c, cx, S_MEMBER_SET_READ))) {
			ret = CHAT_INTERNAL;
			goto fail;
		}
		bind_i64(st, 1, channel_id);
		bind_i64(st, 2, user_id);
		bind_i64(st, 3, target);
		if ((ret = exec_stmt(c, cx, st, "mark read")) != CHAT_OK)
			goto fail;
	}
	if ((ret = commit(c, cx)) != CHAT_OK)
		goto out;
	r->channel_id = channel_id;
	r->user_id = me.id;
	r->user_name = me.name;
	r->seq = target > cur ? target : cur;
	*moved = target > cur;
	*out = r;
	goto out;
fail:
	rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

/* Run a statement listing users (id, name, created_at_ms). */
static int user_rows(struct conn *c, store_ctx *cx, sqlite3_stmt *st,
                     Chat__UserList *l)
{
	struct vec v = {0};
	int rc, ret = CHAT_OK;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		Chat__User *u = (Chat__User *)chat_arena_msg(
		    cx->arena, &chat__user__descriptor);
		if (!u || !(u->name = col_str(cx, st, 1)) ||
		    vec_push(cx->arena, &v, u)) {
			ret = oom(cx);
			break;
		}
		u->id = col_u64(st, 0);
		u->created_at_ms = sqlite3_column_int64(st, 2);
	}
	if (ret == CHAT_OK && rc != SQLITE_DONE)
		ret = dberr(cx, c, rc, "user list");
	sqlite3_reset(st);
	l->users = (Chat__User **)v.v;
	l->n_users = v.n;
	return ret;
}

static int sq_members(store_db *db, store_ctx *cx, uint64_t user_id,
                      uint64_t channel_id, Chat__UserList **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->r;
	Chat__UserList *l;
	sqlite3_stmt *st;
	int ret;

	l = (Chat__UserList *)chat_arena_msg(cx->arena,
	                                     &chat__user_list__descriptor);
	if (!l)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if ((ret = tx(c, cx, S_BEGIN)) != CHAT_OK)
		goto out;
	ret = member_access(c, cx, user_id, channel_id, NULL, NULL, NULL);
	if (ret == CHAT_OK) {
		if ((st = stmt(c, cx, S_MEMBERS)) != NULL) {
			bind_i64(st, 1, channel_id);
			ret = user_rows(c, cx, st, l);
		} else {
			ret = CHAT_INTERNAL;
		}
	}
	if (ret == CHAT_OK)
		ret = commit(c, cx);
	else
		rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	if (ret == CHAT_OK)
		*out = l;
	return ret;
}

static int sq_peers(store_db *db, store_ctx *cx, uint64_t user_id,
                    Chat__UserList **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->r;
	Chat__UserList *l;
	sqlite3_stmt *st;
	int ret;

	l = (Chat__UserList *)chat_arena_msg(cx->arena,
	                                     &chat__user_list__descriptor);
	if (!l)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if ((st = stmt(c, cx, S_PEERS)) != NULL) {
		bind_i64(st, 1, user_id);
		ret = user_rows(c, cx, st, l);
	} else {
		ret = CHAT_INTERNAL;
	}
	pthread_mutex_unlock(&c->mu);
	if (ret == CHAT_OK)
		*out = l;
	return ret;
}

static int sq_user_channels(store_db *db, store_ctx *cx, uint64_t user_id,
                            Chat__ChannelIds **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->r;
	Chat__ChannelIds *ids;
	sqlite3_stmt *st;
	uint64_t *v = NULL;
	uint32_t *cnt = NULL;
	size_t n = 0, cap = 0;
	int rc, ret = CHAT_OK;

	ids = (Chat__ChannelIds *)chat_arena_msg(
	    cx->arena, &chat__channel_ids__descriptor);
	if (!ids)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if (!(st = stmt(c, cx, S_USER_CHANNELS))) {
		ret = CHAT_INTERNAL;
		goto out;
	}
	bind_i64(st, 1, user_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			uint64_t *nv =
			    chat_arena_alloc(cx->arena, ncap * sizeof *nv);
			uint32_t *nc =
			    chat_arena_alloc(cx->arena, ncap * sizeof *nc);
			if (!nv || !nc) {
				ret = oom(cx);
				break;
			}
			if (n) {
				memcpy(nv, v, n * sizeof *nv);
				memcpy(nc, cnt, n * sizeof *nc);
			}
			v = nv;
			cnt = nc;
			cap = ncap;
		}
		cnt[n] = (uint32_t)sqlite3_column_int64(st, 1);
		v[n++] = col_u64(st, 0);
	}
	if (ret == CHAT_OK && rc != SQLITE_DONE)
		ret = dberr(cx, c, rc, "user channels");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&c->mu);
	if (ret != CHAT_OK)
		return ret;
	ids->ids = v;
	ids->n_ids = n;
	ids->member_counts = cnt;
	ids->n_member_counts = n;
	*out = ids;
	return CHAT_OK;
}

/* Store one validated record inside the open ingest transaction. A
 * rejection is an outcome, not an error; errors abort the batch. */
static int ingest_one(struct conn *c, store_ctx *cx, store_ingest_item *it,
                      int64_t now)
{
	const Chat__IngressRecord *r = it->rec;
	sqlite3_stmt *st;
	Chat__Message *m;
	uint64_t last = 0, seq;
	char *sender_name = NULL;
	int rc, ret;

	/* The sender is a member of an existing channel? */
	if (!(st = stmt(c, cx, S_ING_CHECK)))
		return CHAT_INTERNAL;
	bind_i64(st, 1, r->channel_id);
	bind_i64(st, 2, r->sender_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && !sqlite3_column_int(st, 2) &&
	    r->sent_at_ms > sqlite3_column_int64(st, 3) + STORE_LEAVE_GRACE_MS)
		rc = SQLITE_DONE; /* left before sending it */
	else if (rc == SQLITE_ROW) {
		last = col_u64(st, 0);
		sender_name = col_str(cx, st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dberr(cx, c, rc, "ingest check");
	if (rc == SQLITE_DONE) {
		int kind;
		uint64_t l2;
		it->outcome = STORE_INGEST_REJECTED;
		ret = chan_get(c, cx, r->channel_id, &kind, &l2);
		if (ret == CHAT_NOT_FOUND) {
			snprintf(it->why, sizeof it->why,
			         "no channel %" PRIu64, r->channel_id);
			return CHAT_OK;
		}
		if (ret != CHAT_OK)
			return ret;
		snprintf(it->why, sizeof it->why,
		         "sender %" PRIu64 " is not a member of channel "
		         "%" PRIu64,
		         r->sender_id, r->channel_id);
		return CHAT_OK;
	}
	if (!sender_name)
		return oom(cx);

	/* Seen before (in the database or earlier in this batch)? */
	if (!(st = stmt(c, cx, S_MSG_BY_CMID)))
		return CHAT_INTERNAL;
	bind_i64(st, 1, r->channel_id);
	bind_i64(st, 2, r->sender_id);
	bind_text(st, 3, r->client_msg_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		/* The first copy, as stored, so it can be sent again. */
		m = (Chat__Message *)chat_arena_msg(cx->arena,
		                                    &chat__message__descriptor);
		if (m) {
			m->channel_id = r->channel_id;
			m->seq = col_u64(st, 0);
			m->sender_id = r->sender_id;
			m->sender_name = sender_name;
			m->client_msg_id = r->client_msg_id;
			m->body = col_str(cx, st, 1);
			m->sent_at_ms = sqlite3_column_int64(st, 2);
			m->stored_at_ms = sqlite3_column_int64(st, 3);
			if (!m->body)
				m = NULL;
		}
		it->outcome = STORE_INGEST_DUP;
		it->seq = col_u64(st, 0);
		it->msg = m;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return CHAT_OK;
	if (rc != SQLITE_DONE)
		return dberr(cx, c, rc, "ingest dedupe");

	seq = last + 1;
	if (!(st = stmt(c, cx, S_MSG_INSERT)))
		return CHAT_INTERNAL;
	bind_i64(st, 1, r->channel_id);
	bind_i64(st, 2, seq);
	bind_i64(st, 3, r->sender_id);
	bind_text(st, 4, r->client_msg_id);
	bind_text(st, 5, r->body);
	sqlite3_bind_int64(st, 6, r->sent_at_ms);
	sqlite3_bind_int64(st, 7, now);
	if ((ret = exec_stmt(c, cx, st, "message insert")) != CHAT_OK)
		return ret;
	if (!(st = stmt(c, cx, S_CHAN_SET_LAST)))
		return CHAT_INTERNAL;
	bind_i64(st, 1, r->channel_id);
	bind_i64(st, 2, seq);
	if ((ret = exec_stmt(c, cx, st, "last_seq update")) != CHAT_OK)
		return ret;
	/* One's own message is read. */
	if (!(st = stmt(c, cx, S_MEMBER_SET_READ)))
		return CHAT_INTERNAL;
	bind_i64(st, 1, r->channel_id);
	bind_i64(st, 2, r->sender_id);
	bind_i64(st, 3, seq);
	if ((ret = exec_stmt(c, cx, st, "sender read_seq")) != CHAT_OK)
		return ret;

	m = (Chat__Message *)chat_arena_msg(cx->arena,
	                                    &chat__message__descriptor);
	if (!m)
		return oom(cx);
	m->channel_id = r->channel_id;
	m->seq = seq;
	m->sender_id = r->sender_id;
	m->sender_name = sender_name;
	m->client_msg_id = r->client_msg_id;
	m->body = r->body;
	m->sent_at_ms = r->sent_at_ms;
	m->stored_at_ms = now;
	it->outcome = STORE_INGEST_NEW;
	it->seq = seq;
	it->msg = m;
	return CHAT_OK;
}

/* Move one partition's stored offset, fenced (see store_offset): CHAT_OK,
 * ABORTED when another writer moved it, or an error. */
static int offset_put(struct conn *c, store_ctx *cx, const char *log_id,
                      const store_offset *o)
{
	sqlite3_stmt *st = stmt(c, cx, S_OFFSET_CAS);
	int ret;
	if (!st)
		return CHAT_INTERNAL;
	bind_text(st, 1, log_id);
	bind_text(st, 2, o->topic);
	sqlite3_bind_int(st, 3, o->partition);
	sqlite3_bind_int64(st, 4, o->next_offset);
	sqlite3_bind_int64(st, 5, o->expect);
	if ((ret = exec_stmt(c, cx, st, "offset update")) != CHAT_OK)
		return ret;
	if (sqlite3_changes(c->db) == 1)
		return CHAT_OK;
	if (o->absent_ok) {
		if (!(st = stmt(c, cx, S_OFFSET_INSERT)))
			return CHAT_INTERNAL;
		bind_text(st, 1, log_id);
		bind_text(st, 2, o->topic);
		sqlite3_bind_int(st, 3, o->partition);
		sqlite3_bind_int64(st, 4, o->next_offset);
		if ((ret = exec_stmt(c, cx, st, "offset insert")) != CHAT_OK)
			return ret;
		if (sqlite3_changes(c->db) == 1)
			return CHAT_OK;
	}
	return store_ctx_fail(cx, CHAT_ABORTED,
	                      "the stored offset of %s/%d moved (another "
	                      "writer committed it)",
	                      o->topic, (int)o->partition);
}

static int sq_ingest(store_db *db, store_ctx *cx, const char *log_id,
                     store_ingest_item *items, size_t n,
                     const store_offset *offs, size_t n_offs)
{
	sq *q = (sq *)db;
	struct conn *c = &q->w;
	int64_t now = now_ms(cx);
	int ret;

	pthread_mutex_lock(&c->mu);
	if ((ret = tx(c, cx, S_BEGIN_IMM)) != CHAT_OK)
		goto out;
	/* The fence first: a stale writer stops before any work. */
	for (size_t i = 0; i < n_offs; i++)
		if ((ret = offset_put(c, cx, log_id, &offs[i])) != CHAT_OK)
			goto fail;
	for (size_t i = 0; i < n; i++) {
		if (!items[i].rec)
			continue;
		items[i].msg = NULL;
		items[i].why[0] = '\0';
		if ((ret = ingest_one(c, cx, &items[i], now)) != CHAT_OK)
			goto fail;
	}
	ret = commit(c, cx);
	goto out;
fail:
	rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

static int sq_load_offset(store_db *db, store_ctx *cx, const char *log_id,
                          const char *topic, int32_t partition,
                          int64_t *next_offset)
{
	sq *q = (sq *)db;
	struct conn *c = &q->w;
	sqlite3_stmt *st;
	int rc, ret = CHAT_OK;

	pthread_mutex_lock(&c->mu);
	if (!(st = stmt(c, cx, S_OFFSET_GET))) {
		ret = CHAT_INTERNAL;
		goto out;
	}
	bind_text(st, 1, log_id);
	bind_text(st, 2, topic);
	sqlite3_bind_int(st, 3, partition);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*next_offset = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		ret = store_ctx_fail(cx, CHAT_NOT_FOUND, "no stored offset");
	else
		ret = dberr(cx, c, rc, "offset lookup");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

/* ---- open / close ---- */

/* ---- admin ---- */

static int sq_admin_channels(store_db *db, store_ctx *cx, uint64_t after_id,
                             uint32_t limit, Chat__AdminChannelList **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->r;
	struct vec v = {0};
	Chat__AdminChannelList *l;
	sqlite3_stmt *st;
	int rc, ret = CHAT_OK, more = 0;

	l = (Chat__AdminChannelList *)chat_arena_msg(
	    cx->arena, &chat__admin_channel_list__descriptor);
	if (!l)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	if (!(st = stmt(c, cx, S_ADMIN_CHANNELS))) {
		ret = CHAT_INTERNAL;
		goto out;
	}
	bind_i64(st, 1, after_id);
	/* One row beyond the page tells whether there is more. */
	bind_i64(st, 2, (uint64_t)limit + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		Chat__AdminChannel *ch;
		if (v.n == limit) {
			more = 1;
			continue;
		}
		ch = (Chat__AdminChannel *)chat_arena_msg(
		    cx->arena, &chat__admin_channel__descriptor);
		if (!ch || !(ch->name = col_str(cx, st, 1)) ||
		    vec_push(cx->arena, &v, ch)) {
			ret = oom(cx);
			break;
		}
		ch->id = col_u64(st, 0);
		ch->kind = sqlite3_column_int(st, 2) == KIND_DM
		               ? CHAT__CHANNEL_KIND__KIND_DM
		               : CHAT__CHANNEL_KIND__KIND_GROUP;
		ch->last_seq = col_u64(st, 3);
		ch->member_count = (uint32_t)sqlite3_column_int64(st, 4);
	}
	if (ret == CHAT_OK && rc != SQLITE_DONE)
		ret = dberr(cx, c, rc, "admin channels");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&c->mu);
	if (ret != CHAT_OK)
		return ret;
	l->channels = (Chat__AdminChannel **)v.v;
	l->n_channels = v.n;
	l->more = more;
	*out = l;
	return CHAT_OK;
}

static int sq_admin_members(store_db *db, store_ctx *cx, uint64_t channel_id,
                            Chat__UserList **out)
{
	sq *q = (sq *)db;
	struct conn *c = &q->r;
	Chat__UserList *l;
	sqlite3_stmt *st;
	uint64_t last;
	int ret, kind;

	l = (Chat__UserList *)chat_arena_msg(cx->arena,
	                                     &chat__user_list__descriptor);
	if (!l)
		return oom(cx);
	pthread_mutex_lock(&c->mu);
	/* One read transaction: the channel and its members agree. */
	if ((ret = tx(c, cx, S_BEGIN)) != CHAT_OK)
		goto out;
	ret = chan_get(c, cx, channel_id, &kind, &last);
	if (ret == CHAT_OK) {
		if ((st = stmt(c, cx, S_MEMBERS)) != NULL) {
			bind_i64(st, 1, channel_id);
			ret = user_rows(c, cx, st, l);
		} else {
			ret = CHAT_INTERNAL;
		}
	}
	if (ret == CHAT_OK)
		ret = commit(c, cx);
	else
		rollback(c);
out:
	pthread_mutex_unlock(&c->mu);
	if (ret == CHAT_OK)
		*out = l;
	return ret;
}

static void conn_close(struct conn *c)
{
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	if (c->db)
		sqlite3_close(c->db);
	if (c->mu_init)
		pthread_mutex_destroy(&c->mu);
	memset(c, 0, sizeof *c);
}

static void sq_close(store_db *db)
{
	sq *q = (sq *)db;
	conn_close(&q->r);
	conn_close(&q->w);
	free(q);
}

static const store_db_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .create_user = sq_create_user,
    .get_user = sq_get_user,
    .create_channel = sq_create_channel,
    .open_dm = sq_open_dm,
    .join = sq_join,
    .leave = sq_leave,
    .get_channel = sq_get_channel,
    .list_channels = sq_list_channels,
    .history = sq_history,
    .mark_read = sq_mark_read,
    .members = sq_members,
    .peers = sq_peers,
    .user_channels = sq_user_channels,
    .ingest = sq_ingest,
    .load_offset = sq_load_offset,
    .admin_channels = sq_admin_channels,
    .admin_members = sq_admin_members,
};

static int pragma_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", sql, msg ? msg : "failed");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int conn_open(struct conn *c, const char *path, int writer, char *err,
                     size_t errlen)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
	            (writer ? SQLITE_OPEN_CREATE : 0);
	int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		         c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		return -1;
	}
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		snprintf(err, errlen, "cannot create a mutex");
		return -1;
	}
	c->mu_init = 1;
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, 5000);
	if (pragma_exec(c->db, "PRAGMA foreign_keys = ON", err, errlen) ||
	    pragma_exec(c->db, "PRAGMA synchronous = NORMAL", err, errlen))
		return -1;
	if (!writer &&
	    pragma_exec(c->db, "PRAGMA query_only = ON", err, errlen))
		return -1;
	return 0;
}

static int set_wal(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int ok = 0;
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st,
	                       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *m = sqlite3_column_text(st, 0);
		ok = m && !strcmp((const char *)m, "wal");
	}
	sqlite3_finalize(st);
	if (!ok)
		snprintf(err, errlen,
		         "%s: cannot use WAL mode (an in-memory or read-only "
		         "database?)",
		         path);
	return ok ? 0 : -1;
}

/* Create or migrate the schema, inside one write transaction. */
static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int have = 0;

	if (pragma_exec(db, "BEGIN IMMEDIATE", err, errlen))
		return -1;
	if (pragma_exec(db,
	                "CREATE TABLE IF NOT EXISTS schema_version("
	                " version INTEGER PRIMARY KEY,"
	                " applied_at_ms INTEGER NOT NULL)",
	                err, errlen))
		goto fail;
	if (sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM "
	                           "schema_version",
	                       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		snprintf(err, errlen, "%s: cannot read the schema version: %s",
		         path, sqlite3_errmsg(db));
		goto fail;
	}
	have = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (have > SCHEMA_VERSION) {
		snprintf(err, errlen,
		         "%s: schema version %d is newer than this program's "
		         "(%d)",
		         path, have, SCHEMA_VERSION);
		goto fail;
	}
	for (int v = have + 1; v <= SCHEMA_VERSION; v++) {
		char sql[128];
		if (pragma_exec(db, migrations[v - 1], err, errlen))
			goto fail;
		snprintf(sql, sizeof sql,
		         "INSERT INTO schema_version VALUES (%d, %" PRId64 ")",
		         v, chat_now_ms());
		if (pragma_exec(db, sql, err, errlen))
			goto fail;
		chat_info("store", "schema_migrated", "path=%s version=%d",
		          path, v);
	}
	if (pragma_exec(db, "COMMIT", err, errlen))
		goto fail;
	return 0;
fail:
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int store_db_open_sqlite(const char *path, store_db **out, char *err,
                         size_t errlen)
{
	sq *q;
	*out = NULL;
	if (!path || !*path || !strcmp(path, ":memory:")) {
		snprintf(err, errlen, "the SQLite store needs a file path");
		return -1;
	}
	q = calloc(1, sizeof *q);
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	q->base.ops = &sq_ops;
	if (conn_open(&q->w, path, 1, err, errlen) ||
	    set_wal(q->w.db, path, err, errlen) ||
	    migrate(q->w.db, path, err, errlen) ||
	    conn_open(&q->r, path, 0, err, errlen))
		goto fail;
	*out = &q->base;
	return 0;
fail:
	sq_close(&q->base);
	return -1;
}
