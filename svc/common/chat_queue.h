/* A locked multi-producer queue of caller-defined nodes. Producers on any
 * thread push; one consumer takes everything at once. Intrusive: embed a
 * chat_qnode in your item and recover it with CHAT_CONTAINER_OF. */
#ifndef CHAT_QUEUE_H
#define CHAT_QUEUE_H

#include <pthread.h>
#include <stddef.h>

#define CHAT_CONTAINER_OF(ptr, type, member)                                   \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

typedef struct chat_qnode {
	struct chat_qnode *next;
} chat_qnode;

typedef struct chat_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	chat_qnode *head, *tail;
	size_t len;
	int closed;
} chat_queue;

void chat_queue_init(chat_queue *q);
void chat_queue_fini(chat_queue *q);

/* Append a node. Returns 0, or -1 when the queue is closed (the caller still
 * owns the node). */
int chat_queue_push(chat_queue *q, chat_qnode *n);

/* Like chat_queue_push, and *was_empty tells whether the queue held
 * nothing before: only that push needs to wake a consumer that drains
 * everything at once (later pushes find it still awake or about to be). */
int chat_queue_push_first(chat_queue *q, chat_qnode *n, int *was_empty);

/* Detach every queued node, oldest first, as a NULL-terminated list.
 * Never blocks. */
chat_qnode *chat_queue_take_all(chat_queue *q);

/* Remove the oldest node, waiting while the queue is empty and open.
 * NULL once the queue is closed and empty. */
chat_qnode *chat_queue_pop_wait(chat_queue *q);

/* Wake every waiter; further pushes fail. Queued nodes stay for the
 * consumer to take. */
void chat_queue_close(chat_queue *q);

size_t chat_queue_len(chat_queue *q);

#endif
