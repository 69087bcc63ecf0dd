/* The store service: start/stop, and the fan-out of events to chat.fanout
 * (see store.h). */
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_log.h"
#include "chat_util.h"
#include "rpc.pb-c.h"
#include "store_internal.h"

/* Fan-out producer batching: a short linger; under load librdkafka
 * batches anyway while a request is out. */
#define FANOUT_LINGER_MS 1

static char *dup_or(const char *s, const char *def)
{
	return strdup(s && *s ? s : def);
}

void store_emit_members(struct store *s, Chat__MemberEvent *const *ev,
                        size_t n)
{
	for (size_t i = 0; i < n; i++) {
		Chat__Event e = CHAT__EVENT__INIT;
		uint64_t uid = ev[i]->user_id;
		e.channel_id = ev[i]->channel_id;
		e.n_user_ids = 1;
		e.user_ids = &uid;
		e.kind_case = CHAT__EVENT__KIND_MEMBER;
		e.member = ev[i];
		store_emit(s, ev[i]->channel_id, &e);
	}
}

/* A delivery report from chat.fanout: only failures matter here (the
 * events are already committed; a lost one shows to clients as a gap they
 * fill from history). */
static void fanout_dr(void *arg, const rd_kafka_message_t *m)
{
	struct store *s = arg;
	if (m->err) {
		atomic_fetch_add(&s->produce_errors, 1);
		chat_error(STORE_SVC, "fanout_failed", "partition=%" PRId32
		           " err=%s", m->partition, rd_kafka_err2name(m->err));
	}
}

/* Replace a producer that hit a fatal error (librdkafka 2.0.2's
 * idempotent producer can, after a broker restart): the failed one is
 * swapped for a new one under the write lock, then freed. Its undelivered
 * events are lost to the fan-out only (they are stored; clients fill the
 * gap from history). */
static void producer_renew(struct store *s, chat_producer *failed)
{
	chat_producer *old = NULL, *p;
	char err[256];

	pthread_rwlock_wrlock(&s->prod_lock);
	if (s->prod == failed) {
		p = chat_producer_new(s->kafka, s->client_id, FANOUT_LINGER_MS,
		                      fanout_dr, s, err, sizeof err);
		if (p) {
			old = s->prod;
			s->prod = p;
			chat_warn(STORE_SVC, "producer_renewed", "%s",
			          "reason=fatal");
		} else {
			chat_error(STORE_SVC, "producer_renew_failed",
			           "reason=\"%s\"", err);
		}
	}
	pthread_rwlock_unlock(&s->prod_lock);
	chat_producer_free(old);
}

static int send_event(struct store *s, const uint8_t *key, const void *buf,
                      size_t len, chat_producer **used)
{
	int rc;
	pthread_rwlock_rdlock(&s->prod_lock);
	*used = s->prod;
	rc = chat_producer_send(s->prod, CHAT_TOPIC_FANOUT, key, 8, buf, len,
	                        NULL);
	pthread_rwlock_unlock(&s->prod_lock);
	return rc;
}

void store_emit(struct store *s, uint64_t channel_id, const Chat__Event *ev)
{
	uint8_t key[8], stackbuf[1024], *buf = stackbuf;
	size_t len = protobuf_c_message_get_packed_size(&ev->base);
	chat_producer *used;
	int rc;

	if (len > sizeof stackbuf && !(buf = malloc(len))) {
		atomic_fetch_add(&s->produce_errors, 1);
		chat_error(STORE_SVC, "fanout_lost",
		           "channel=%" PRIu64 " reason=\"out of memory\"",
		           channel_id);
		return;
	}
	protobuf_c_message_pack(&ev->base, buf);
	chat_put_be64(key, channel_id);
	rc = send_event(s, key, buf, len, &used);
	if (rc == RD_KAFKA_RESP_ERR__FATAL) {
		producer_renew(s, used);
		rc = send_event(s, key, buf, len, &used);
	}
	if (rc != 0) {
		atomic_fetch_add(&s->produce_errors, 1);
		chat_error(STORE_SVC, "fanout_lost",
		           "channel=%" PRIu64 " reason=\"%s\"", channel_id,
		           rd_kafka_err2str((rd_kafka_resp_err_t)rc));
	} else {
		atomic_fetch_add(&s->events, 1);
	}
	if (buf != stackbuf)
		free(buf);
}

static Chat__Counter *counter(chat_arena *a, const char *name, uint64_t v)
{
	Chat__Counter *c =
	    (Chat__Counter *)chat_arena_msg(a, &chat__counter__descriptor);
	if (c) {
		c->name = (char *)name;
		c->value = (int64_t)v;
	}
	return c;
}

static void health(void *arg, chat_arena *a, size_t *n, void ***out)
{
	struct store *s = arg;
	void **v = (void **)chat_arena_ptrs(a, 9);
	size_t k = 0;
	if (!v)
		return;
	v[k++] = counter(a, "ready", (uint64_t)atomic_load(&s->ready));
	v[k++] = counter(a, "stored", atomic_load(&s->stored));
	v[k++] = counter(a, "duplicates", atomic_load(&s->dups));
	v[k++] = counter(a, "rejected", atomic_load(&s->rejected));
	v[k++] = counter(a, "batches", atomic_load(&s->batches));
	v[k++] = counter(a, "batch_failures", atomic_load(&s->batch_failures));
	v[k++] = counter(a, "fenced", atomic_load(&s->fenced));
	v[k++] = counter(a, "events", atomic_load(&s->events));
	v[k++] = counter(a, "produce_errors", atomic_load(&s->produce_errors));
	for (size_t i = 0; i < k; i++)
		if (!v[i])
			return;
	*n = k;
	*out = v;
}

int store_start(const store_config *cfg, store **out, char *err,
                size_t errlen)
{
	struct store *s;
	int port = 0;

	*out = NULL;
	if (!cfg->db_path || !*cfg->db_path) {
		snprintf(err, errlen, "db_path: no database given");
		return -1;
	}
	if (!cfg->kafka_bootstrap || !*cfg->kafka_bootstrap) {
		snprintf(err, errlen, "kafka_bootstrap: no brokers given");
		return -1;
	}
	if (cfg->rpc_threads < 0 || cfg->rpc_threads > 256) {
		snprintf(err, errlen, "rpc_threads: %d is not in [1, 256]",
		         cfg->rpc_threads);
		return -1;
	}
	if (cfg->batch_max < 0 || cfg->batch_max > 100000) {
		snprintf(err, errlen, "batch_max: %d is not in [1, 100000]",
		         cfg->batch_max);
		return -1;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->db_path = strdup(cfg->db_path);
	s->kafka = strdup(cfg->kafka_bootstrap);
	s->log_id = dup_or(cfg->log_id, "kafka");
	s->rpc_url = dup_or(cfg->rpc_url, "tcp://127.0.0.1:7101");
	s->instance = dup_or(cfg->instance, "store");
	s->rpc_threads = cfg->rpc_threads ? cfg->rpc_threads : 4;
	s->batch_max = cfg->batch_max ? cfg->batch_max : 500;
	atomic_store(&s->fail_commits,
	             cfg->test_fail_commits > 0 ? cfg->test_fail_commits : 0);
	if (!s->db_path || !s->kafka || !s->log_id || !s->rpc_url ||
	    !s->instance) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->batch = calloc((size_t)s->batch_max, sizeof *s->batch);
	s->raws = calloc((size_t)s->batch_max, sizeof *s->raws);
	s->items = calloc((size_t)s->batch_max, sizeof *s->items);
	s->batch_arena = chat_arena_new();
	if (!s->batch || !s->raws || !s->items || !s->batch_arena) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	if (store_db_open(s->db_path, &s->db, err, errlen))
		goto fail;

	if (pthread_rwlock_init(&s->prod_lock, NULL) != 0) {
		snprintf(err, errlen, "cannot create a lock");
		goto fail;
	}
	s->prod_lock_init = 1;
	if (pthread_mutex_init(&s->pos_lock, NULL) != 0) {
		snprintf(err, errlen, "cannot create a lock");
		goto fail;
	}
	s->pos_lock_init = 1;
	snprintf(s->client_id, sizeof s->client_id, "chat-store-%s",
	         s->instance);
	s->prod = chat_producer_new(s->kafka, s->client_id, FANOUT_LINGER_MS,
	                            fanout_dr, s, err, errlen);
	if (!s->prod)
		goto fail;

	s->rpc = chat_rpc_server_new(STORE_SVC, s->instance, s->rpc_threads);
	if (!s->rpc) {
		snprintf(err, errlen, "cannot create the RPC server");
		goto fail;
	}
	chat_rpc_server_set_health(s->rpc, health, s);
	if (store_rpc_register(s)) {
		snprintf(err, errlen, "cannot register chat.Store");
		goto fail;
	}
	if (chat_rpc_server_listen(s->rpc, s->rpc_url, &port, err, errlen))
		goto fail;
	if (cfg->admin_url && cfg->admin_url[0]) {
		s->admin_url = strdup(cfg->admin_url);
		if (!s->admin_url ||
		    chat_rpc_server_listen(s->rpc, s->admin_url, &s->admin_port,
		                           err, errlen))
			goto fail;
	}
	if (chat_rpc_server_start(s->rpc)) {
		snprintf(err, errlen, "cannot start the RPC threads");
		goto fail;
	}

	s->consumer = chat_consumer_new(s->kafka, "chat-store", s->client_id,
	                                CHAT_TOPIC_INGRESS, 1,
	                                store_rebalance_cb, s,
	                                cfg->fetch_wait_ms, err, errlen);
	if (!s->consumer)
		goto fail;
	if (store_consumer_start(s, err, errlen))
		goto fail;
	{
		char safe[256];
		store_db_url_redact(s->db_path, safe, sizeof safe);
		chat_info(STORE_SVC, "started",
		          "instance=%s db=%s engine=%s rpc=%s port=%d "
		          "log_id=%s batch_max=%d",
		          s->instance, safe, s->db->ops->name, s->rpc_url,
		          port, s->log_id, s->batch_max);
	}
	*out = s;
	return 0;
fail:
	store_stop(s);
	return -1;
}

int store_ready(store *s)
{
	return s ? atomic_load(&s->ready) : 0;
}

void store_stop(store *s)
{
	if (!s)
		return;
	/* Consumer first: it finishes the batch in hand and leaves the
	 * group. Then the RPC server, so that no handler can emit on a
	 * producer being freed; then the producer (flushes what the batch
	 * and the handlers queued); the database last. */
	store_consumer_join(s);
	if (s->consumer) {
		chat_consumer_free(s->consumer);
		s->consumer = NULL;
	}
	if (s->pos_lock_init) {
		store_positions_clear(s);
		pthread_mutex_destroy(&s->pos_lock);
	}
	chat_rpc_server_free(s->rpc);
	chat_producer_free(s->prod);
	if (s->prod_lock_init)
		pthread_rwlock_destroy(&s->prod_lock);
	store_db_close(s->db);
	if (s->thread_started || s->db)
		chat_info(STORE_SVC, "stopped", "instance=%s stored=%" PRIu64,
		          s->instance ? s->instance : "?",
		          (uint64_t)atomic_load(&s->stored));
	chat_arena_free(s->batch_arena);
	free(s->batch);
	free(s->raws);
	free(s->items);
	free(s->db_path);
	free(s->kafka);
	free(s->log_id);
	free(s->rpc_url);
	free(s->admin_url);
	free(s->instance);
	free(s);
}

int store_admin_port(store *s)
{
	return s ? s->admin_port : 0;
}
