/* A fixed pool of threads running submitted jobs in FIFO order. Used where a
 * blocking call (an RPC, a password hash) must not run on an event loop. */
#ifndef CHAT_WORKERS_H
#define CHAT_WORKERS_H

#include "chat_queue.h"

typedef struct chat_workers chat_workers;

typedef struct chat_job {
	chat_qnode node;
	void (*run)(struct chat_job *job); /* runs on a worker; owns job */
} chat_job;

/* Start n threads (n >= 1). NULL on failure. */
chat_workers *chat_workers_new(int n, const char *name);

/* Queue a job. Returns 0, or -1 after the pool began stopping (the caller
 * keeps the job). Thread-safe. */
int chat_workers_submit(chat_workers *w, chat_job *job);

/* Jobs queued and not yet started. */
size_t chat_workers_backlog(chat_workers *w);

/* Run every queued job, stop the threads and free the pool. Blocks.
 * Accepts NULL. */
void chat_workers_free(chat_workers *w);

#endif
