/* Fuzz the RPC server's request path: envelope, service and method lookup,
 * input decode, a handler, reply encode. The reply must always decode. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "chat_rpc.h"
#include "edge.pb-c.h"
#include "rpc.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int kick(void *arg, chat_rpc_call *call)
{
	const Chat__KickReq *in = (const Chat__KickReq *)call->in;
	(void)arg;
	if (!in->reason[0])
		return chat_rpc_fail(call, CHAT_NOT_FOUND, "empty");
	((Chat__KickReply *)call->out)->sessions = (uint32_t)in->user_id;
	return CHAT_OK;
}

static const chat_rpc_fn fns[] = {NULL, kick};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static chat_rpc_server *s;
	chat_arena *a;
	size_t n = 0;
	void *rep;
	Chat__RpcReply *r;
	if (!s) {
		s = chat_rpc_server_new("fuzz", "fuzz", 1);
		chat_rpc_server_add(s, &chat__edge__descriptor, CHAT_RPC_TABLE(fns),
		                    NULL);
	}
	a = chat_arena_new();
	rep = chat_rpc_server_handle(s, a, data, size, &n);
	if (!rep)
		abort();
	r = chat__rpc_reply__unpack(NULL, n, rep);
	if (!r)
		abort();
	chat__rpc_reply__free_unpacked(r, NULL);
	chat_arena_free(a);
	return 0;
}
