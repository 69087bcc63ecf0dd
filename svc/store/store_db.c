/* The engine-independent half of the database layer: argument checks that
 * need no database, then a call through the engine's operation table. */
#include "store_db.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat_status.h"
#include "chat_util.h"

int store_ctx_fail(store_ctx *cx, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cx->why, sizeof cx->why, fmt, ap);
	va_end(ap);
	return status;
}

static void ctx_begin(store_ctx *cx)
{
	cx->why[0] = '\0';
}

int store_user_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > STORE_USER_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

int store_channel_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > STORE_CHANNEL_NAME_MAX)
		return 0;
	/* chat_utf8_valid_text lets tab and newline through (bodies may
	 * hold them); a channel name is one line. */
	if (strchr(name, '\t') || strchr(name, '\n'))
		return 0;
	return chat_utf8_valid_text(name, n);
}

int store_db_open(const char *url, store_db **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!url || !*url) {
		snprintf(err, errlen, "no database given");
		return -1;
	}
	if (!strncmp(url, "postgres://", 11) ||
	    !strncmp(url, "postgresql://", 13)) {
		return store_db_open_pg(url, out, err, errlen);
	}
	if (!strncmp(url, "sqlite:", 7))
		url += 7;
	return store_db_open_sqlite(url, out, err, errlen);
}

void store_db_close(store_db *db)
{
	if (db)
		db->ops->close(db);
}

int store_db_create_user(store_db *db, store_ctx *cx, const char *name,
                         const char *pass_hash, Chat__User **out)
{
	size_t hl = pass_hash ? strlen(pass_hash) : 0;
	ctx_begin(cx);
	if (!store_user_name_valid(name))
		return store_ctx_fail(cx, CHAT_INVALID_ARGUMENT,
		                      "a user name is 1 to 32 bytes of "
		                      "A-Z a-z 0-9 _ . -");
	if (hl < 1 || hl > STORE_PASS_HASH_MAX)
		return store_ctx_fail(cx, CHAT_INVALID_ARGUMENT,
		                      "the password hash must be 1 to %d bytes",
		                      STORE_PASS_HASH_MAX);
	return db->ops->create_user(db, cx, name, pass_hash, out);
}

int store_db_get_user(store_db *db, store_ctx *cx, const char *name,
                      uint64_t id, Chat__UserRecord **out)
{
	ctx_begin(cx);
	if (name && *name) {
		if (!store_user_name_valid(name))
			return store_ctx_fail(cx, CHAT_NOT_FOUND,
			                      "no such user");
		return db->ops->get_user(db, cx, name, 0, out);
	}
	if (id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no such user");
	return db->ops->get_user(db, cx, NULL, id, out);
}

int store_db_create_channel(store_db *db, store_ctx *cx, uint64_t user_id,
                            const char *name, char *const *members,
                            size_t n_members, Chat__ChannelInfo **out,
                            Chat__MemberEvent ***joined, size_t *n_joined)
{
	ctx_begin(cx);
	*n_joined = 0;
	*joined = NULL;
	if (!store_channel_name_valid(name))
		return store_ctx_fail(cx, CHAT_INVALID_ARGUMENT,
		                      "a channel name is 1 to %d bytes of "
		                      "UTF-8 text without control "
		                      "characters",
		                      STORE_CHANNEL_NAME_MAX);
	if (n_members > STORE_MEMBERS_MAX)
		return store_ctx_fail(cx, CHAT_INVALID_ARGUMENT,
		                      "at most %d members may be named",
		                      STORE_MEMBERS_MAX);
	for (size_t i = 0; i < n_members; i++)
		if (!store_user_name_valid(members[i]))
			return store_ctx_fail(cx, CHAT_NOT_FOUND,
			                      "no such user (member %zu is not "
			                      "a valid user name)",
			                      i + 1);
	if (user_id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no user with id 0");
	return db->ops->create_channel(db, cx, user_id, name, members,
	                               n_members, out, joined, n_joined);
}

int store_db_open_dm(store_db *db, store_ctx *cx, uint64_t user_id,
                     const char *peer_name, Chat__ChannelInfo **out,
                     Chat__MemberEvent ***joined, size_t *n_joined)
{
	ctx_begin(cx);
	*n_joined = 0;
	*joined = NULL;
	if (!store_user_name_valid(peer_name))
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no such user");
	if (user_id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no user with id 0");
	return db->ops->open_dm(db, cx, user_id, peer_name, out, joined,
	                        n_joined);
}

int store_db_join(store_db *db, store_ctx *cx, uint64_t user_id,
                  uint64_t channel_id, Chat__ChannelInfo **out,
                  Chat__MemberEvent ***joined, size_t *n_joined)
{
	ctx_begin(cx);
	*n_joined = 0;
	*joined = NULL;
	if (channel_id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no channel 0");
	if (user_id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no user with id 0");
	return db->ops->join(db, cx, user_id, channel_id, out, joined,
	                     n_joined);
}

int store_db_leave(store_db *db, store_ctx *cx, uint64_t user_id,
                   uint64_t channel_id, Chat__MemberEvent **left)
{
	ctx_begin(cx);
	*left = NULL;
	if (channel_id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no channel 0");
	return db->ops->leave(db, cx, user_id, channel_id, left);
}

int store_db_get_channel(store_db *db, store_ctx *cx, uint64_t user_id,
                         uint64_t channel_id, Chat__ChannelInfo **out)
{
	ctx_begin(cx);
	if (channel_id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no channel 0");
	return db->ops->get_channel(db, cx, user_id, channel_id, out);
}

int store_db_list_channels(store_db *db, store_ctx *cx, uint64_t user_id,
                           Chat__ChannelList **out)
{
	ctx_begin(cx);
	return db->ops->list_channels(db, cx, user_id, out);
}

int store_db_history(store_db *db, store_ctx *cx, uint64_t user_id,
                     uint64_t channel_id, uint64_t anchor_seq, int after,
                     uint32_t limit, Chat__HistoryPage **out)
{
	ctx_begin(cx);
	if (channel_id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no channel 0");
	if (limit == 0)
		limit = STORE_HISTORY_DEFAULT;
	if (limit > STORE_HISTORY_MAX)
		limit = STORE_HISTORY_MAX;
	/* Sequence numbers are stored as SQL integers (signed 64-bit). */
	if (anchor_seq > (uint64_t)INT64_MAX)
		anchor_seq = after ? (uint64_t)INT64_MAX : 0;
	return db->ops->history(db, cx, user_id, channel_id, anchor_seq,
	                        after ? 1 : 0, limit, out);
}

int store_db_mark_read(store_db *db, store_ctx *cx, uint64_t user_id,
                       uint64_t channel_id, uint64_t seq,
                       Chat__ReadReceipt **out, int *moved)
{
	ctx_begin(cx);
	*moved = 0;
	if (channel_id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no channel 0");
	if (seq > (uint64_t)INT64_MAX)
		seq = 0; /* beyond any last_seq: means last_seq */
	return db->ops->mark_read(db, cx, user_id, channel_id, seq, out,
	                          moved);
}

int store_db_members(store_db *db, store_ctx *cx, uint64_t user_id,
                     uint64_t channel_id, Chat__UserList **out)
{
	ctx_begin(cx);
	if (channel_id == 0)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no channel 0");
	return db->ops->members(db, cx, user_id, channel_id, out);
}

int store_db_peers(store_db *db, store_ctx *cx, uint64_t user_id,
                   Chat__UserList **out)
{
	ctx_begin(cx);
	return db->ops->peers(db, cx, user_id, out);
}

int store_db_user_channels(store_db *db, store_ctx *cx, uint64_t user_id,
                           Chat__ChannelIds **out)
{
	ctx_begin(cx);
	return db->ops->user_channels(db, cx, user_id, out);
}

int store_db_ingest(store_db *db, store_ctx *cx, const char *log_id,
                    store_ingest_item *items, size_t n,
                    const store_offset *offs, size_t n_offs)
{
	ctx_begin(cx);
	if (!log_id)
		log_id = "";
	return db->ops->ingest(db, cx, log_id, items, n, offs, n_offs);
}

int store_db_load_offset(store_db *db, store_ctx *cx, const char *log_id,
                         const char *topic, int32_t partition,
                         int64_t *next_offset)
{
	ctx_begin(cx);
	if (!log_id)
		log_id = "";
	return db->ops->load_offset(db, cx, log_id, topic, partition,
	                            next_offset);
}

int store_db_admin_channels(store_db *db, store_ctx *cx, uint64_t after_id,
                            uint32_t limit, Chat__AdminChannelList **out)
{
	ctx_begin(cx);
	if (limit == 0)
		limit = STORE_ADMIN_CHANNELS_DEFAULT;
	if (limit > STORE_ADMIN_CHANNELS_MAX)
		limit = STORE_ADMIN_CHANNELS_MAX;
	/* Ids are SQL integers (signed 64-bit): nothing lies beyond. */
	if (after_id > (uint64_t)INT64_MAX)
		after_id = (uint64_t)INT64_MAX;
	return db->ops->admin_channels(db, cx, after_id, limit, out);
}

int store_db_admin_members(store_db *db, store_ctx *cx, uint64_t channel_id,
                           Chat__UserList **out)
{
	ctx_begin(cx);
	if (channel_id == 0 || channel_id > (uint64_t)INT64_MAX)
		return store_ctx_fail(cx, CHAT_NOT_FOUND, "no channel %" PRIu64,
		                      channel_id);
	return db->ops->admin_members(db, cx, channel_id, out);
}

void store_db_url_redact(const char *url, char *out, size_t outlen)
{
	const char *auth, *end, *colon;
	size_t n = 0;

	if (!outlen)
		return;
	out[0] = '\0';
	if (!url)
		return;
	/* scheme://user:password@host...: the password goes */
	auth = strstr(url, "://");
	auth = auth ? auth + 3 : NULL;
	end = auth ? strpbrk(auth, "@/?") : NULL;
	colon = auth ? strchr(auth, ':') : NULL;
	for (const char *s = url; *s && n + 1 < outlen;) {
		if (end && *end == '@' && colon && colon < end &&
		    s == colon + 1) {
			s = end;
			for (const char *m = "***"; *m && n + 1 < outlen; m++)
				out[n++] = *m;
			continue;
		}
		/* ...password=...: in a query string or a conninfo */
		if (!strncmp(s, "password=", 9) &&
		    (s == url || s[-1] == '?' || s[-1] == '&' ||
		     s[-1] == ' ')) {
			for (const char *m = "password=***";
			     *m && n + 1 < outlen; m++)
				out[n++] = *m;
			s += 9;
			s += strcspn(s, "& ");
			continue;
		}
		out[n++] = *s++;
	}
	out[n] = '\0';
}
