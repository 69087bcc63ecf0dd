/* The edge: start and stop, the inbox, and producing sends to
 * chat.ingress (the delivery report answers the client). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_log.h"
#include "chat_util.h"
#include "edge_int.h"
#include "log.pb-c.h"

#define KAFKA_LINGER_MS 1

/* ---- inbox items ---- */

edge_ib *edge_ib_new(int op)
{
	edge_ib *ib = calloc(1, sizeof *ib);
	if (ib)
		ib->op = op;
	return ib;
}

void edge_ib_set_buf(edge_ib *ib, chat_buf *b)
{
	if (!b)
		return;
	ib->one = b;
	ib->bufs = &ib->one;
	ib->nbufs = 1;
}

void edge_ib_free(edge_ib *ib)
{
	if (!ib)
		return;
	for (size_t i = 0; i < ib->nbufs; i++)
		chat_buf_rele(ib->bufs[i]);
	for (size_t i = 0; i < ib->nevs; i++)
		chat_buf_rele(ib->evs[i].buf);
	if (ib->kick) {
		pthread_mutex_lock(&ib->kick->mu);
		ib->kick->done = 1;
		pthread_cond_signal(&ib->kick->cv);
		pthread_mutex_unlock(&ib->kick->mu);
	}
	chat_arena_free(ib->arena);
	free(ib);
}

void edge_wake(edge *e)
{
	pthread_mutex_lock(&e->wake_mu);
	if (e->ctx_live)
		lws_cancel_service(e->ctx);
	pthread_mutex_unlock(&e->wake_mu);
}

void edge_post(edge *e, edge_ib *ib)
{
	if (!ib)
		return;
	int first = 0;
	if (chat_queue_push_first(&e->inbox, &ib->node, &first) != 0) {
		edge_ib_free(ib);
		return;
	}
	/* The service thread takes the whole inbox per wake: only the push
	 * that found it empty needs to wake it. */
	if (first)
		edge_wake(e);
}

static void inbox_dispose(edge *e)
{
	chat_qnode *n = chat_queue_take_all(&e->inbox);
	while (n) {
		chat_qnode *next = n->next;
		edge_ib_free(CHAT_CONTAINER_OF(n, edge_ib, node));
		n = next;
	}
}

/* ---- sends ---- */

/* What a delivery report needs to answer; the producer's opaque. */
struct send_ctx {
	uint64_t sid, req_id, channel_id, user_id;
	char cmid[EDGE_MAX_CMID + 1];
};

static void on_delivery(void *arg, const rd_kafka_message_t *m)
{
	edge *e = arg;
	struct send_ctx *c = m->_private;
	edge_ib *ib;
	chat_buf *b;

	if (!c)
		return;
	b = NULL;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && e->cfg.ack_after_store) {
		/* answered when the stored copy comes back (acks.c) */
	} else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		Chat__ServerFrame f = CHAT__SERVER_FRAME__INIT;
		Chat__SendAck ack = CHAT__SEND_ACK__INIT;
		ack.channel_id = c->channel_id;
		ack.client_msg_id = c->cmid;
		f.req_id = c->req_id;
		f.kind_case = CHAT__SERVER_FRAME__KIND_SEND_ACK;
		f.send_ack = &ack;
		b = edge_pack(&f, EDGE_BUF_NORMAL);
		atomic_fetch_add(&e->n_acked, 1);
	} else {
		char reason[200];
		snprintf(reason, sizeof reason, "message not stored: %s",
		         rd_kafka_err2str(m->err));
		b = edge_pack_error(c->req_id, CHAT_UNAVAILABLE, reason,
		                    c->channel_id, c->cmid);
		chat_warn(EDGE_SVC, "produce_failed", "sid=%" PRIu64
		          " channel=%" PRIu64 " err=%s", c->sid, c->channel_id,
		          rd_kafka_err2name(m->err));
	}
	ib = edge_ib_new(IB_SEND_DONE);
	if (ib) {
		ib->ok = m->err == RD_KAFKA_RESP_ERR_NO_ERROR;
		ib->sid = c->sid;
		ib->user_id = c->user_id;
		ib->channel_id = c->channel_id;
		chat_strlcpy(ib->cmid, c->cmid, sizeof ib->cmid);
		edge_ib_set_buf(ib, b);
		edge_post(e, ib);
	} else {
		chat_buf_rele(b);
	}
	free(c);
}

static chat_producer *producer_new(edge *e, char *err, size_t errlen)
{
	char id[CHAT_EDGE_ID_MAX + 8];
	snprintf(id, sizeof id, "chat-%s", e->cfg.edge_id);
	return chat_producer_new(e->cfg.kafka_bootstrap, id, KAFKA_LINGER_MS,
	                         on_delivery, e, err, errlen);
}

/* librdkafka 2.0.2's idempotent producer can fail fatally after a broker
 * restart (fixed in 2.3.0) and then refuses every message. Replace it; the
 * old one is flushed and freed on a worker (its last reports answer their
 * clients with a retryable error, and the clients resend). Service
 * thread. Returns 0 when replaced. */
static int producer_renew(edge *e)
{
	char err[256];
	chat_producer *old = e->producer;
	chat_producer *np = producer_new(e, err, sizeof err);
	edge_job *j;

	if (!np) {
		chat_error(EDGE_SVC, "producer_renew_failed", "reason=\"%s\"",
		           err);
		return -1;
	}
	chat_warn(EDGE_SVC, "producer_renewed", "edge=%s", e->cfg.edge_id);
	e->producer = np;
	j = edge_job_new(e, JOB_FREE_PRODUCER);
	if (j) {
		j->ptr = old;
		if (edge_job_submit(e, j) == 0)
			return 0;
	}
	chat_producer_free(old); /* no pool left: flush here */
	return 0;
}

void edge_produce(edge *e, edge_sess *s, const edge_act *act)
{
	const Chat__SendReq *sr = act->frame->send;
	Chat__IngressRecord r = CHAT__INGRESS_RECORD__INIT;
	struct send_ctx *c = calloc(1, sizeof *c);
	uint8_t key[8], *val = NULL;
	size_t n;
	int rv = -1;

	r.channel_id = sr->channel_id;
	r.sender_id = s->user_id;
	r.sender_name = s->user_name;
	r.client_msg_id = sr->client_msg_id;
	r.body = sr->body;
	r.sent_at_ms = chat_now_ms();
	r.edge_id = (char *)e->cfg.edge_id;
	n = protobuf_c_message_get_packed_size(&r.base);
	val = malloc(n ? n : 1);
	if (c && val) {
		protobuf_c_message_pack(&r.base, val);
		c->sid = s->id;
		c->req_id = act->req_id;
		c->channel_id = sr->channel_id;
		c->user_id = s->user_id;
		chat_strlcpy(c->cmid, sr->client_msg_id, sizeof c->cmid);
		chat_put_be64(key, sr->channel_id);
		rv = chat_producer_send(e->producer, CHAT_TOPIC_INGRESS, key,
		                        sizeof key, val, n, c);
		if (rv == RD_KAFKA_RESP_ERR__FATAL && producer_renew(e) == 0)
			rv = chat_producer_send(e->producer, CHAT_TOPIC_INGRESS,
			                        key, sizeof key, val, n, c);
	}
	free(val);
	if (rv != 0) {
		char reason[200];
		snprintf(reason, sizeof reason, "cannot queue message: %s",
		         rv > 0 ? rd_kafka_err2str((rd_kafka_resp_err_t)rv)
		                : "out of memory");
		free(c);
		edge_sess_push(s, edge_pack_error(act->req_id, CHAT_UNAVAILABLE,
		                                  reason, sr->channel_id,
		                                  sr->client_msg_id));
		return;
	}
	if (e->cfg.ack_after_store)
		edge_acks_add(e, s->id, act->req_id, sr->channel_id, s->user_id,
		              sr->client_msg_id);
	atomic_fetch_add(&e->n_sent, 1);
}

/* ---- start / stop ---- */

static int copy_cfg(edge *e, const edge_config *cfg, char *err, size_t errlen)
{
	const char **fields[] = {
	    &e->cfg.edge_id,      &e->cfg.host,          &e->cfg.public_url,
	    &e->cfg.rpc_url,      &e->cfg.store_url,     &e->cfg.presence_url,
	    &e->cfg.dispatcher_url, &e->cfg.kafka_bootstrap, &e->cfg.zk_hosts,
	};
	_Static_assert(sizeof fields / sizeof fields[0] ==
	                   sizeof e->strs / sizeof e->strs[0],
	               "one copy per string field");
	e->cfg = *cfg;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		if (!*fields[i] || !**fields[i]) {
			*fields[i] = NULL;
			continue;
		}
		e->strs[i] = strdup(*fields[i]);
		if (!e->strs[i]) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		*fields[i] = e->strs[i];
	}
	if (!e->cfg.host)
		e->cfg.host = "127.0.0.1";
	if (e->cfg.workers <= 0)
		e->cfg.workers = 4;
	if (e->cfg.max_queue_frames <= 0)
		e->cfg.max_queue_frames = 4096;
	if (e->cfg.max_queue_bytes <= 0)
		e->cfg.max_queue_bytes = 4 << 20;
	if (e->cfg.send_rate <= 0)
		e->cfg.send_rate = 100;
	if (e->cfg.send_burst <= 0)
		e->cfg.send_burst = 200;
	if (e->cfg.rpc_threads <= 0)
		e->cfg.rpc_threads = 2;
	if (e->cfg.rpc_timeout_ms <= 0)
		e->cfg.rpc_timeout_ms = 3000;
	if (e->cfg.ack_timeout_ms <= 0)
		e->cfg.ack_timeout_ms = 30000;
	if (e->cfg.ping_secs <= 0)
		e->cfg.ping_secs = 30;
	if (e->cfg.ping_secs > 3600)
		e->cfg.ping_secs = 3600;
	if (e->cfg.zk_timeout_ms <= 0)
		e->cfg.zk_timeout_ms = 10000;
	if (e->cfg.heartbeat_ms <= 0)
		e->cfg.heartbeat_ms = 3000;
	if (e->cfg.load_ms <= 0)
		e->cfg.load_ms = 2000;

	if (!e->cfg.edge_id || strlen(e->cfg.edge_id) >= CHAT_EDGE_ID_MAX) {
		snprintf(err, errlen, "edge_id: required, at most %d bytes",
		         CHAT_EDGE_ID_MAX - 1);
		return -1;
	}
	if (!e->cfg.rpc_url || strlen(e->cfg.rpc_url) >= CHAT_URL_MAX) {
		snprintf(err, errlen, "rpc_url: required");
		return -1;
	}
	if (!e->cfg.zk_hosts && (!e->cfg.store_url || !e->cfg.presence_url)) {
		snprintf(err, errlen, "store_url and presence_url are "
		                      "required (or zk_hosts)");
		return -1;
	}
	if (!e->cfg.kafka_bootstrap) {
		snprintf(err, errlen, "kafka_bootstrap: required");
		return -1;
	}
	if (!e->cfg.routing) {
		snprintf(err, errlen, "routing: required");
		return -1;
	}
	if (!cfg->jwt_key || cfg->jwt_key_len < 32) {
		snprintf(err, errlen, "jwt_key: at least 32 bytes required");
		return -1;
	}
	if (e->cfg.port < 0 || e->cfg.port > 65535) {
		snprintf(err, errlen, "port: %d is not in [0, 65535]",
		         e->cfg.port);
		return -1;
	}
	if (e->cfg.send_burst < 1 || e->cfg.max_queue_frames < 2) {
		snprintf(err, errlen,
		         "send_burst / max_queue_frames too small");
		return -1;
	}
	e->key = malloc(cfg->jwt_key_len);
	if (!e->key) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(e->key, cfg->jwt_key, cfg->jwt_key_len);
	e->cfg.jwt_key = e->key;
	return 0;
}

/* A client of url, or, with discovery and no url, of every registered
 * instance of service. NULL with a reason when url is bad. */
static chat_rpc_client *client(edge *e, const char *url, const char *service,
                               const char *what, char *err, size_t errlen)
{
	char why[200];
	int bind = !url && e->disc;
	chat_rpc_client *c = chat_rpc_client_new(bind ? NULL : url, why,
	                                          sizeof why);
	if (!c) {
		snprintf(err, errlen, "%s: %s", what, why);
		return NULL;
	}
	if (bind && chat_disc_bind_client(e->disc, service, c) != 0) {
		snprintf(err, errlen, "%s: cannot follow service %s", what,
		         service);
		chat_rpc_client_free(c);
		return NULL;
	}
	return c;
}

/* The address others dial for a listener on url bound to port: the url's
 * host (this machine's name for a wildcard host) and the bound port. */
static void advertise(const char *url, int port, char *out, size_t outlen)
{
	const char *h, *colon;
	char host[200];

	if (strncmp(url, "tcp://", 6) != 0 || port <= 0 ||
	    !(colon = strrchr(url + 6, ':'))) {
		chat_strlcpy(out, url, outlen);
		return;
	}
	h = url + 6;
	snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
	if (!host[0] || !strcmp(host, "*") || !strcmp(host, "0.0.0.0") ||
	    !strcmp(host, "[::]")) {
		if (gethostname(host, sizeof host) != 0 || !host[0])
			chat_strlcpy(host, "127.0.0.1", sizeof host);
		host[sizeof host - 1] = '\0';
	}
	snprintf(out, outlen, "tcp://%s:%d", host, port);
}

void edge_set_rpc_port(edge *e, int port)
{
	advertise(e->cfg.rpc_url, port, e->rpc_adv, sizeof e->rpc_adv);
}

int edge_start(const edge_config *cfg, edge **out, char *err, size_t errlen)
{
	edge *e = calloc(1, sizeof *e);

	*out = NULL;
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	chat_queue_init(&e->inbox);
	pthread_mutex_init(&e->wake_mu, NULL);
	pthread_mutex_init(&e->rt.mu, NULL);
	pthread_cond_init(&e->rt.cv, NULL);
	pthread_cond_init(&e->rt.done, NULL);
	pthread_rwlock_init(&e->pres_lock, NULL);
	pthread_mutex_init(&e->live_mu, NULL);
	chat_u64map_init(&e->live);
	chat_u64map_init(&e->rt.mirror[0]);
	chat_u64map_init(&e->rt.mirror[1]);
	chat_u64map_init(&e->sessions);
	chat_u64map_init(&e->chan_subs);
	chat_u64map_init(&e->user_sess);
	chat_u64map_init(&e->acks);
	chat_u64map_init(&e->route_wait);
	e->inited = 1;
	/* Random start: session ids stay unique across restarts. */
	e->next_sid = chat_random_u64() >> 16;
	if (copy_cfg(e, cfg, err, errlen) != 0)
		goto fail;
	if (e->cfg.zk_hosts &&
	    !(e->disc = chat_disc_new(e->cfg.zk_hosts, e->cfg.zk_timeout_ms,
	                              err, errlen)))
		goto fail;
	if (!(e->store = client(e, e->cfg.store_url, "store", "store_url",
	                        err, errlen)) ||
	    !(e->presence = client(e, e->cfg.presence_url, "presence",
	                           "presence_url", err, errlen)))
		goto fail;
	if ((e->cfg.dispatcher_url || e->disc) &&
	    !(e->dispatcher = client(e, e->cfg.dispatcher_url, "dispatcher",
	                             "dispatcher_url", err, errlen)))
		goto fail;
	/* The first sessions find the services already known (a bound client
	 * with no URL yet fails at once). Not waiting on ZooKeeper longer. */
	if (e->disc)
		for (int i = 0; i < 3; i++)
			chat_disc_list(e->disc,
			               (const char *[]){"store", "presence",
			                                "dispatcher"}[i],
			               NULL, 0, 2000);
	e->workers = chat_workers_new(e->cfg.workers, "edge-worker");
	if (!e->workers) {
		snprintf(err, errlen, "cannot start the worker threads");
		goto fail;
	}
	e->producer = producer_new(e, err, errlen);
	if (!e->producer)
		goto fail;
	if (edge_ws_start(e, err, errlen) != 0)
		goto fail;
	if (e->cfg.public_url) {
		chat_strlcpy(e->public_url, e->cfg.public_url,
		             sizeof e->public_url);
	} else {
		const char *h = e->cfg.host;
		char name[200];
		if (!strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !*h) {
			h = "127.0.0.1";
			if (e->cfg.zk_hosts && gethostname(name, sizeof name) ==
			                           0 && name[0]) {
				name[sizeof name - 1] = '\0';
				h = name;
			}
		}
		snprintf(e->public_url, sizeof e->public_url, "ws://%s:%d/ws",
		         h, e->port);
	}
	if (edge_rpc_start(e, err, errlen) != 0)
		goto fail;
	if (pthread_create(&e->thread, NULL, edge_ws_main, e) != 0) {
		snprintf(err, errlen, "cannot start the service thread");
		goto fail;
	}
	e->thread_started = 1;
	pthread_setname_np(e->thread, "edge-lws");
	/* Last: ZooKeeper hands the edge out from here on. */
	if (edge_route_start(e, err, errlen) != 0)
		goto fail;
	chat_info(EDGE_SVC, "started", "edge=%s url=%s rpc=%s discovery=%s",
	          e->cfg.edge_id, e->public_url, e->rpc_adv,
	          e->cfg.zk_hosts ? e->cfg.zk_hosts : "none");
	*out = e;
	return 0;
fail:
	edge_stop(e);
	return -1;
}

int edge_port(edge *e)
{
	return e->port;
}

const char *edge_public_url(edge *e)
{
	return e->public_url;
}

const char *edge_rpc_url(edge *e)
{
	return e->rpc_adv;
}

int edge_sessions(edge *e)
{
	return atomic_load(&e->nsessions);
}

int edge_drain(edge *e, int per_second, const char *reason)
{
	edge_kick k;
	edge_ib *ib;

	atomic_store(&e->draining, 1);
	edge_route_leave(e);
	memset(&k, 0, sizeof k);
	k.per_second = per_second > 0 ? per_second : 0;
	chat_strlcpy(k.reason, reason && *reason ? reason : "server draining",
	             sizeof k.reason);
	ib = edge_ib_new(IB_DRAIN);
	if (!ib)
		return -1;
	pthread_mutex_init(&k.mu, NULL);
	pthread_cond_init(&k.cv, NULL);
	ib->kick = &k;
	/* Completed by the service thread or by the inbox's disposal. */
	edge_post(e, ib);
	pthread_mutex_lock(&k.mu);
	while (!k.done)
		pthread_cond_wait(&k.cv, &k.mu);
	pthread_mutex_unlock(&k.mu);
	pthread_mutex_destroy(&k.mu);
	pthread_cond_destroy(&k.cv);
	chat_info(EDGE_SVC, "drain", "edge=%s sessions=%u per_second=%d",
	          e->cfg.edge_id, k.count, k.per_second);
	return (int)k.count;
}

void edge_stop(edge *e)
{
	if (!e)
		return;
	/* First out of ZooKeeper: the api stops handing this edge out. */
	if (e->rt.started)
		edge_route_leave(e);
	atomic_store(&e->stopping, 1);
	if (e->thread_started) {
		/* The service thread closes every session with 1001, waits a
		 * moment for them to go, then destroys the lws context (which
		 * runs the close path of any left). Keep waking it so that it
		 * notices its deadline. */
		while (!atomic_load(&e->svc_done)) {
			struct timespec ts = {0, 20 * 1000 * 1000};
			edge_wake(e);
			nanosleep(&ts, NULL);
		}
		pthread_join(e->thread, NULL);
	} else if (e->ctx) {
		pthread_mutex_lock(&e->wake_mu);
		e->ctx_live = 0;
		pthread_mutex_unlock(&e->wake_mu);
		lws_context_destroy(e->ctx);
		e->ctx = NULL;
	}
	/* From here on, posts fail and free their item (a waiting Kick is
	 * answered with 0). */
	chat_queue_close(&e->inbox);
	inbox_dispose(e);
	chat_rpc_server_free(e->rpc);
	chat_workers_free(e->workers);
	chat_producer_free(e->producer);
	inbox_dispose(e);
	/* Publishes what the closes queued, then drops the edge from the
	 * routing table and leaves ZooKeeper. */
	if (e->inited)
		edge_route_stop(e);
	inbox_dispose(e);
	if (e->disc) {
		chat_disc_unbind_client(e->disc, e->store);
		chat_disc_unbind_client(e->disc, e->presence);
		chat_disc_unbind_client(e->disc, e->dispatcher);
	}
	chat_rpc_client_free(e->store);
	chat_rpc_client_free(e->presence);
	chat_rpc_client_free(e->dispatcher);
	chat_disc_free(e->disc);
	chat_u64map_fini(&e->sessions);
	chat_u64map_fini(&e->chan_subs);
	chat_u64map_fini(&e->user_sess);
	chat_u64map_fini(&e->route_wait);
	free(e->drain_sids);
	edge_acks_fini(e);
	chat_queue_fini(&e->inbox);
	pthread_mutex_destroy(&e->wake_mu);
	if (e->inited) {
		chat_u64map_fini(&e->live);
		pthread_mutex_destroy(&e->live_mu);
		pthread_rwlock_destroy(&e->pres_lock);
		pthread_cond_destroy(&e->rt.done);
		pthread_cond_destroy(&e->rt.cv);
		pthread_mutex_destroy(&e->rt.mu);
	}
	if (e->cfg.edge_id)
		chat_info(EDGE_SVC, "stopped", "edge=%s", e->cfg.edge_id);
	for (size_t i = 0; i < sizeof e->strs / sizeof e->strs[0]; i++)
		free(e->strs[i]);
	free(e->key);
	free(e);
}
