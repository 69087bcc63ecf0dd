#include "chat_queue.h"

void chat_queue_init(chat_queue *q)
{
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->head = q->tail = NULL;
	q->len = 0;
	q->closed = 0;
}

void chat_queue_fini(chat_queue *q)
{
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
}

int chat_queue_push(chat_queue *q, chat_qnode *n)
{
	int was_empty;
	return chat_queue_push_first(q, n, &was_empty);
}

chat_qnode *chat_queue_take_all(chat_queue *q)
{
	chat_qnode *h;
	pthread_mutex_lock(&q->mu);
	h = q->head;
	q->head = q->tail = NULL;
	q->len = 0;
	pthread_mutex_unlock(&q->mu);
	return h;
}

chat_qnode *chat_queue_pop_wait(chat_queue *q)
{
	chat_qnode *n;
	pthread_mutex_lock(&q->mu);
	while (!q->head && !q->closed)
		pthread_cond_wait(&q->cv, &q->mu);
	n = q->head;
	if (n) {
		q->head = n->next;
		if (!q->head)
			q->tail = NULL;
		q->len--;
		n->next = NULL;
	}
	pthread_mutex_unlock(&q->mu);
	return n;
}

void chat_queue_close(chat_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

size_t chat_queue_len(chat_queue *q)
{
	size_t n;
	pthread_mutex_lock(&q->mu);
	n = q->len;
	pthread_mutex_unlock(&q->mu);
	return n;
}

int chat_queue_push_first(chat_queue *q, chat_qnode *n, int *was_empty)
{
	n->next = NULL;
	pthread_mutex_lock(&q->mu);
	if (q->closed) {
		pthread_mutex_unlock(&q->mu);
		return -1;
	}
	*was_empty = q->head == NULL;
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	q->len++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return 0;
}
