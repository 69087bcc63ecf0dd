/* Decoding, validation and batching of chat.ingress records (see
 * store_ingress.h). */
#include "store_ingress.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_status.h"
#include "chat_util.h"

static int bad(char *why, size_t whylen, const char *reason)
{
	snprintf(why, whylen, "%s", reason);
	return CHAT_INVALID_ARGUMENT;
}

int store_ingress_decode(chat_arena *arena, const void *key, size_t keylen,
                         const void *val, size_t len,
                         Chat__IngressRecord **out, char *why, size_t whylen)
{
	Chat__IngressRecord *r;
	size_t n;

	*out = NULL;
	if (len > STORE_INGRESS_MAX_RECORD) {
		snprintf(why, whylen, "record of %zu bytes is too large", len);
		return CHAT_INVALID_ARGUMENT;
	}
	if (!val && len)
		return bad(why, whylen, "record without a value");
	r = (Chat__IngressRecord *)chat_arena_unpack(
	    arena, &chat__ingress_record__descriptor, val ? val : "", len);
	if (!r)
		return bad(why, whylen, "not a chat.IngressRecord");
	if (r->channel_id == 0)
		return bad(why, whylen, "no channel_id");
	if (r->sender_id == 0)
		return bad(why, whylen, "no sender_id");
	if (key && keylen) {
		if (keylen != 8 ||
		    chat_get_be64((const uint8_t *)key) != r->channel_id)
			return bad(why, whylen,
			           "key is not the channel id as 8 big-endian "
			           "bytes");
	}
	n = strlen(r->client_msg_id);
	if (n < 1 || n > STORE_CLIENT_MSG_ID_MAX ||
	    !chat_utf8_valid_text(r->client_msg_id, n))
		return bad(why, whylen, "bad client_msg_id");
	n = strlen(r->body);
	if (n < 1 || n > STORE_BODY_MAX)
		return bad(why, whylen, "body must be 1 to 4000 bytes");
	if (!chat_utf8_valid_text(r->body, n))
		return bad(why, whylen, "body is not UTF-8 text");
	*out = r;
	return CHAT_OK;
}

static int raw_cmp(const void *a, const void *b)
{
	const store_ingress_raw *x = a, *y = b;
	int t = strcmp(x->topic ? x->topic : "", y->topic ? y->topic : "");
	if (t)
		return t;
	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return 0;
}

void store_ingress_sort(store_ingress_raw *raws, size_t n)
{
	if (n > 1)
		qsort(raws, n, sizeof *raws, raw_cmp);
}

static int same_partition(const store_ingress_raw *a,
                          const store_ingress_raw *b)
{
	return a->partition == b->partition &&
	       !strcmp(a->topic ? a->topic : "", b->topic ? b->topic : "");
}

int store_ingress_apply_fenced(store_db *db, store_ctx *cx,
                               const char *log_id, store_ingress_raw *raws,
                               size_t n, store_ingest_item *items,
                               store_expect_fn expect, void *arg)
{
	store_offset *offs = NULL;
	size_t n_offs = 0, first = 0;

	if (n) {
		store_ingress_sort(raws, n);
		offs = chat_arena_alloc(cx->arena, n * sizeof *offs);
		if (!offs)
			return store_ctx_fail(cx, CHAT_RESOURCE_EXHAUSTED,
			                      "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		store_ingest_item *it = &items[i];
		Chat__IngressRecord *r = NULL;
		memset(it, 0, sizeof *it);
		if (store_ingress_decode(cx->arena, raws[i].key,
		                         raws[i].keylen, raws[i].val,
		                         raws[i].len, &r, it->why,
		                         sizeof it->why) != CHAT_OK)
			it->outcome = STORE_INGEST_REJECTED;
		it->rec = r;
		if (i > 0 && !same_partition(&raws[i - 1], &raws[i]))
			first = i;
		/* Sorted: a partition's last raw has its highest offset. */
		if (i + 1 == n || !same_partition(&raws[i], &raws[i + 1])) {
			store_offset *o = &offs[n_offs++];
			int64_t want = STORE_OFFSET_UNKNOWN;
			o->topic = raws[i].topic ? raws[i].topic : "";
			o->partition = raws[i].partition;
			o->next_offset = raws[i].offset + 1;
			if (expect)
				want = expect(arg, o->topic, o->partition);
			if (want == STORE_OFFSET_UNKNOWN) {
				o->expect = raws[first].offset;
				o->absent_ok = 1;
			} else if (want < 0) {
				o->expect = -1;
				o->absent_ok = 1;
			} else {
				o->expect = want;
				o->absent_ok = 0;
			}
		}
	}
	return store_db_ingest(db, cx, log_id, items, n, offs, n_offs);
}

int store_ingress_apply(store_db *db, store_ctx *cx, const char *log_id,
                        store_ingress_raw *raws, size_t n,
                        store_ingest_item *items)
{
	return store_ingress_apply_fenced(db, cx, log_id, raws, n, items, NULL,
	                                  NULL);
}
