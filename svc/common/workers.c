#include "chat_workers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct chat_workers {
	chat_queue q;
	int n;
	pthread_t *threads;
};

static void *worker_main(void *arg)
{
	chat_workers *w = arg;
	chat_qnode *n;
	while ((n = chat_queue_pop_wait(&w->q)) != NULL) {
		chat_job *job = CHAT_CONTAINER_OF(n, chat_job, node);
		job->run(job);
	}
	return NULL;
}

chat_workers *chat_workers_new(int n, const char *name)
{
	chat_workers *w = calloc(1, sizeof *w);
	if (!w || n < 1)
		goto fail;
	chat_queue_init(&w->q);
	w->threads = calloc((size_t)n, sizeof *w->threads);
	if (!w->threads)
		goto fail_q;
	for (w->n = 0; w->n < n; w->n++) {
		if (pthread_create(&w->threads[w->n], NULL, worker_main, w) != 0)
			break;
		if (name) {
			char tn[16];
			size_t l = strlen(name);
			memcpy(tn, name, l < 15 ? l : 15);
			tn[l < 15 ? l : 15] = '\0';
			pthread_setname_np(w->threads[w->n], tn);
		}
	}
	if (w->n == 0)
		goto fail_q;
	return w;
fail_q:
	free(w->threads);
	chat_queue_fini(&w->q);
fail:
	free(w);
	return NULL;
}

int chat_workers_submit(chat_workers *w, chat_job *job)
{
	return chat_queue_push(&w->q, &job->node);
}

size_t chat_workers_backlog(chat_workers *w)
{
	return chat_queue_len(&w->q);
}

void chat_workers_free(chat_workers *w)
{
	if (!w)
		return;
	chat_queue_close(&w->q);
	for (int i = 0; i < w->n; i++)
		pthread_join(w->threads[i], NULL);
	free(w->threads);
	chat_queue_fini(&w->q);
	free(w);
}
