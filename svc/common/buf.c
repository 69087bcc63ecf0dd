#include "chat_buf.h"

#include <stdlib.h>
#include <string.h>

chat_buf *chat_buf_new(size_t len)
{
	chat_buf *b;
	if (len > UINT32_MAX - CHAT_BUF_PRE)
		return NULL;
	b = malloc(sizeof *b + CHAT_BUF_PRE + len);
	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->len = (uint32_t)len;
	b->kind = 0;
	return b;
}

chat_buf *chat_buf_copy(const void *data, size_t len)
{
	chat_buf *b = chat_buf_new(len);
	if (b && len)
		memcpy(chat_buf_data(b), data, len);
	return b;
}

chat_buf *chat_buf_hold(chat_buf *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

void chat_buf_rele(chat_buf *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
}
