/* The chat.Store RPC handlers: unpack, call the database layer, emit the
 * events of what was committed, answer. Every failure answers with the
 * database layer's code and reason. */
#include <stdio.h>
#include <string.h>

#include "chat_log.h"
#include "chat_status.h"
#include "store_internal.h"

static void ctx_init(store_ctx *cx, chat_rpc_call *call)
{
	memset(cx, 0, sizeof *cx);
	cx->arena = call->arena;
}

static int fail(chat_rpc_call *call, int st, const store_ctx *cx)
{
	return chat_rpc_fail(call, st, "%s",
	                     cx->why[0] ? cx->why : chat_strerror(st));
}

#define OUT(call, T, v) (*(T *)(call)->out = *(v))

static int h_create_user(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__CreateUserReq *in = (const Chat__CreateUserReq *)call->in;
	Chat__User *u;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_create_user(s->db, &cx, in->name, in->pass_hash, &u);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__User, u);
	return CHAT_OK;
}

static int h_get_user(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__GetUserReq *in = (const Chat__GetUserReq *)call->in;
	Chat__UserRecord *u;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_get_user(s->db, &cx, in->name, in->id, &u);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__UserRecord, u);
	return CHAT_OK;
}

static int h_create_channel(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__StoreCreateChannelReq *in =
	    (const Chat__StoreCreateChannelReq *)call->in;
	Chat__ChannelInfo *ci;
	Chat__MemberEvent **ev;
	size_t nev;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_create_channel(s->db, &cx, in->user_id, in->name,
	                             in->members, in->n_members, &ci, &ev,
	                             &nev);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	store_emit_members(s, ev, nev);
	OUT(call, Chat__ChannelInfo, ci);
	return CHAT_OK;
}

static int h_open_dm(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__StoreOpenDmReq *in = (const Chat__StoreOpenDmReq *)call->in;
	Chat__ChannelInfo *ci;
	Chat__MemberEvent **ev;
	size_t nev;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_open_dm(s->db, &cx, in->user_id, in->peer_name, &ci, &ev,
	                      &nev);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	store_emit_members(s, ev, nev);
	OUT(call, Chat__ChannelInfo, ci);
	return CHAT_OK;
}

static int h_join(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__MembershipReq *in = (const Chat__MembershipReq *)call->in;
	Chat__ChannelInfo *ci;
	Chat__MemberEvent **ev;
	size_t nev;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_join(s->db, &cx, in->user_id, in->channel_id, &ci, &ev,
	                   &nev);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	store_emit_members(s, ev, nev);
	OUT(call, Chat__ChannelInfo, ci);
	return CHAT_OK;
}

static int h_leave(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__MembershipReq *in = (const Chat__MembershipReq *)call->in;
	Chat__MemberEvent *left;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_leave(s->db, &cx, in->user_id, in->channel_id, &left);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	store_emit_members(s, &left, 1);
	return CHAT_OK;
}

static int h_get_channel(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__MembershipReq *in = (const Chat__MembershipReq *)call->in;
	Chat__ChannelInfo *ci;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_get_channel(s->db, &cx, in->user_id, in->channel_id, &ci);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__ChannelInfo, ci);
	return CHAT_OK;
}

static int h_list_channels(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__UserReq *in = (const Chat__UserReq *)call->in;
	Chat__ChannelList *l;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_list_channels(s->db, &cx, in->user_id, &l);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__ChannelList, l);
	return CHAT_OK;
}

static int h_history(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__StoreHistoryReq *in =
	    (const Chat__StoreHistoryReq *)call->in;
	Chat__HistoryPage *p;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_history(
	    s->db, &cx, in->user_id, in->channel_id, in->anchor_seq,
	    in->direction == CHAT__HISTORY_REQ__DIRECTION__AFTER, in->limit,
	    &p);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__HistoryPage, p);
	return CHAT_OK;
}

static int h_mark_read(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__StoreMarkReadReq *in =
	    (const Chat__StoreMarkReadReq *)call->in;
	Chat__ReadReceipt *r;
	store_ctx cx;
	int st, moved = 0;

	ctx_init(&cx, call);
	st = store_db_mark_read(s->db, &cx, in->user_id, in->channel_id,
	                        in->seq, &r, &moved);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	if (moved) {
		Chat__Event e = CHAT__EVENT__INIT;
		e.channel_id = r->channel_id;
		e.kind_case = CHAT__EVENT__KIND_READ;
		e.read = r;
		store_emit(s, r->channel_id, &e);
	}
	OUT(call, Chat__ReadReceipt, r);
	return CHAT_OK;
}

static int h_members(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__MembershipReq *in = (const Chat__MembershipReq *)call->in;
	Chat__UserList *l;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_members(s->db, &cx, in->user_id, in->channel_id, &l);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__UserList, l);
	return CHAT_OK;
}

static int h_peers(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__UserReq *in = (const Chat__UserReq *)call->in;
	Chat__UserList *l;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_peers(s->db, &cx, in->user_id, &l);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__UserList, l);
	return CHAT_OK;
}

static int h_user_channels(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__UserReq *in = (const Chat__UserReq *)call->in;
	Chat__ChannelIds *ids;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_user_channels(s->db, &cx, in->user_id, &ids);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__ChannelIds, ids);
	return CHAT_OK;
}

static int h_admin_channels(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__AdminChannelsReq *in =
	    (const Chat__AdminChannelsReq *)call->in;
	Chat__AdminChannelList *l;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_admin_channels(s->db, &cx, in->after_id, in->limit, &l);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__AdminChannelList, l);
	return CHAT_OK;
}

static int h_admin_members(void *arg, chat_rpc_call *call)
{
	struct store *s = arg;
	const Chat__AdminMembersReq *in =
	    (const Chat__AdminMembersReq *)call->in;
	Chat__UserList *l;
	store_ctx cx;
	int st;

	ctx_init(&cx, call);
	st = store_db_admin_members(s->db, &cx, in->channel_id, &l);
	if (st != CHAT_OK)
		return fail(call, st, &cx);
	OUT(call, Chat__UserList, l);
	return CHAT_OK;
}

static const struct {
	const char *method;
	chat_rpc_fn fn;
} handlers[] = {
    {"CreateUser", h_create_user},     {"GetUser", h_get_user},
    {"CreateChannel", h_create_channel}, {"OpenDm", h_open_dm},
    {"Join", h_join},                   {"Leave", h_leave},
    {"GetChannel", h_get_channel},      {"ListChannels", h_list_channels},
    {"History", h_history},             {"MarkRead", h_mark_read},
    {"Members", h_members},             {"Peers", h_peers},
    {"UserChannels", h_user_channels},
    {"AdminChannels", h_admin_channels},
    {"AdminMembers", h_admin_members},
};

int store_rpc_register(struct store *s)
{
	const ProtobufCServiceDescriptor *d = &chat__store__descriptor;
	chat_rpc_fn *fns = s->rpc_fns;

	if (d->n_methods > STORE_RPC_FNS_MAX)
		return -1;
	for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
		const ProtobufCMethodDescriptor *m =
		    protobuf_c_service_descriptor_get_method_by_name(
		        d, handlers[i].method);
		if (!m) {
			chat_error(STORE_SVC, "rpc_unknown_method", "method=%s",
			           handlers[i].method);
			return -1;
		}
		fns[m - d->methods] = handlers[i].fn;
	}
	for (unsigned i = 0; i < d->n_methods; i++)
		if (!fns[i])
			chat_warn(STORE_SVC, "rpc_unimplemented", "method=%s",
			          d->methods[i].name);
	return chat_rpc_server_add(s->rpc, d, fns, d->n_methods, s);
}
