/* The edge's private header: the edge object, sessions, the inbox that
 * other threads use to hand work to the lws service thread, and worker
 * jobs.
 *
 * Threads: the lws service thread owns every session, the subscription
 * maps and the routing reference counts. RPC workers, the Kafka
 * delivery-report thread and the chat.Edge handler threads never touch
 * them: they build an edge_ib, edge_post() it, and the service thread
 * drains the inbox on LWS_CALLBACK_EVENT_WAIT_CANCELLED. Items name
 * sessions by id, never by pointer. */
#ifndef EDGE_INT_H
#define EDGE_INT_H

#include <ev.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chat_arena.h"
#include "chat_auth.h"
#include "chat_buf.h"
#include "chat_discovery.h"
#include "chat_kafka.h"
#include "chat_map.h"
#include "chat_queue.h"
#include "chat_rpc.h"
#include "chat_workers.h"
#include "edge.h"
#include "edge_frame.h"

#define EDGE_SVC "edge"
#define EDGE_JWT_LEEWAY_S 30
#define EDGE_MAX_INFLIGHT 64       /* worker requests per session */
#define EDGE_TYPING_BACKLOG 256    /* drop typing beyond this backlog */
#define EDGE_RESUME_MAX 5000       /* messages replayed per channel */
#define EDGE_SHUTDOWN_GRACE_MS 2000
#define EDGE_CLOSE_TIMEOUT_S 5     /* peers that never read are dropped */
#define EDGE_NAME_MAX 64
#define EDGE_CLOSE_REASON_MAX 123  /* a close frame holds 125 bytes */
#define EDGE_TYPING_GAP_US 1000000 /* at most one typing notice a second */
#define EDGE_SETUP_RUNS 5          /* setup re-runs when membership moves */
#define EDGE_TICK_US 1000000
#define EDGE_DRAIN_TICK_US 100000 /* drain pacing step */

/* WebSocket close codes (docs/PROTOCOL.md). */
#define EDGE_CLOSE_GOING_AWAY 1001
#define EDGE_CLOSE_INTERNAL 1011
#define EDGE_CLOSE_TRY_LATER 1013
#define EDGE_CLOSE_KICKED 4000
#define EDGE_CLOSE_UNAUTHENTICATED 4401
#define EDGE_CLOSE_SLOW 4008

typedef struct edge_resume edge_resume;

/* A client session. Service thread only. */
typedef struct edge_sess {
	uint64_t id;
	struct lws *wsi;
	edge *e;
	uint64_t user_id;
	char user_name[EDGE_NAME_MAX];
	chat_u64map chans;   /* channel id -> (void *)1 */
	int ready;           /* Welcome queued; frames may be written */
	int setup_pending;   /* the setup job has not answered yet */
	int inflight;        /* requests out on workers */
	int rx_paused;       /* paused for too many requests in flight */
	/* reassembly of one client message */
	int rx_in_msg, rx_text, rx_skip;
	uint8_t *rx;
	size_t rxlen, rxcap;
	/* outbound ring of frames */
	chat_buf **q;
	size_t qcap, qhead, qlen, qbytes;
	/* set when closing; close_drain: after the queue is written */
	int close_code, close_drain;
	char close_reason[EDGE_CLOSE_REASON_MAX + 1];
	edge_bucket bucket;
	edge_resume *resume;
	uint64_t mark;       /* delivery generation (at most once) */
	/* membership changed while the setup job was out: its channel
	 * snapshot is stale and the setup runs again */
	int memb_changed, setup_runs;
	int64_t typing_next_us; /* typing notices before this are dropped */
	/* the routing operation that made its subscriptions: a resume reads
	 * history only once the routing thread has applied it */
	uint64_t route_seq;
	int64_t route_ready_us; /* 0, or when route_seq has settled */
	/* keepalive (edge_keepalive): the last frame or pong from the
	 * client, the last ping sent, a ping waiting for WRITEABLE */
	int64_t rx_ms, ping_ms;
	int ping_due;
} edge_sess;

/* The local sessions of one channel or one user. */
/* The routing thread (route.c). The service thread queues operations;
 * everything else is the routing thread's own. */
typedef struct edge_rt {
	pthread_t thread;
	int started;
	pthread_mutex_t mu;  /* ops, n, stop, leave, left */
	pthread_cond_t cv;   /* wakes the routing thread */
	pthread_cond_t done; /* leave finished */
	chat_route_op *ops;  /* queued, in order */
	size_t n, cap;
	int stop, leave, left;
	uint64_t queued;     /* ops queued so far (service thread writes) */
	atomic_uint_fast64_t applied; /* ops taken and applied so far */
	atomic_int_fast64_t applied_us; /* when (chat_mono_us) */
	/* routing thread only */
	chat_u64map mirror[2]; /* [is_user] key -> (void *)1: what is
	                        * published */
	int need_full;       /* register and publish the whole mirror */
	int announced;       /* presence has heard of the sessions once */
	int64_t next_hb_ms, next_load_ms, retry_ms;
	int64_t last_load;
	chat_disc *reg;      /* the ZooKeeper registration (left on drain) */
} edge_rt;

typedef struct edge_set {
	size_t n, cap;
	edge_sess **v;
	/* user sets: a ChannelList refresh is out / another is wanted */
	uint8_t list_inflight, list_again;
} edge_set;

struct edge {
	edge_config cfg;     /* strings point at copies owned here */
	char *strs[9];
	unsigned char *key;
	char public_url[CHAT_URL_MAX];
	int port;

	struct lws_context *ctx;
	struct ev_loop *evloop; /* our epoll loop, lent to lws (foreign) */
	pthread_t thread;
	int thread_started;
	pthread_mutex_t wake_mu;
	int ctx_live;        /* lws_cancel_service allowed; under wake_mu */
	atomic_int stopping;
	atomic_int svc_done;
	atomic_int nsessions;
	atomic_int presence_dead; /* a SessionDown failed during stop */

	chat_queue inbox;
	chat_workers *workers;
	chat_rpc_client *store, *presence, *dispatcher;
	chat_producer *producer;
	chat_rpc_server *rpc;
	char rpc_adv[CHAT_URL_MAX]; /* chat.Edge as others dial it */
	edge_rt rt;
	int inited;          /* the locks and maps above exist */
	chat_disc *disc;     /* finds store, presence, dispatchers */
	atomic_int draining; /* refuse upgrades (503) */
	/* SessionDown jobs hold it shared, a re-announce exclusively per
	 * session: a SessionUp re-sent for a closing session never lands
	 * after its SessionDown */
	pthread_rwlock_t pres_lock;
	pthread_mutex_t live_mu;
	chat_u64map live;    /* ids of open sessions (under live_mu) */

	/* service thread only */
	chat_u64map sessions;   /* session id -> edge_sess */
	chat_u64map chan_subs;  /* channel id -> edge_set */
	chat_u64map user_sess;  /* user id -> edge_set */
	uint64_t next_sid;
	uint64_t gen;           /* delivery generation */
	int shutdown_begun;
	int64_t shutdown_deadline_us;

	/* ack_after_store: sends waiting for their stored copy (service
	 * thread; acks.c) */
	chat_u64map acks;
	size_t nacks;
	lws_sorted_usec_list_t tick; /* 1 s service-thread timer */

	/* service thread: resumes waiting for the routing thread (sid ->
	 * (void *)1), and a drain in progress */
	chat_u64map route_wait;
	lws_sorted_usec_list_t route_tick; /* while some wait to settle */
	int route_tick_on;
	uint64_t *drain_sids;
	size_t drain_n, drain_i;
	int64_t drain_t0_us;
	int drain_rate;
	char drain_reason[EDGE_CLOSE_REASON_MAX + 1];
	lws_sorted_usec_list_t drain_tick;

	/* counters (any thread) */
	atomic_uint_fast64_t n_sent, n_acked, n_delivered, n_overflow;
};

/* ---- inbox items ---- */

enum edge_ib_op {
	IB_FRAMES,      /* queue bufs on session sid */
	IB_SETUP,       /* a session's setup finished (ok) or failed */
	IB_CHAN_ADD,    /* user_id is in channel_id now; then IB_FRAMES */
	IB_CHAN_DEL,    /* user_id left channel_id; then IB_FRAMES */
	IB_USER_FRAMES, /* queue bufs on every session of user_id */
	IB_DELIVER,     /* a chat.Edge/Deliver batch */
	IB_KICK,        /* close every session of a user */
	IB_RESUME_PAGE, /* one history page of a resume */
	IB_SEND_DONE,   /* a delivery report: ok, or an error frame */
	IB_ROUTED,      /* the routing thread applied ops up to a point */
	IB_REANNOUNCE,  /* tell presence about every session again */
	IB_DRAIN,       /* close every session, paced (kick holds the
	                 * rate, the reason, and waits for the count) */
};

/* One event of a Deliver batch, encoded once. */
typedef struct edge_ev {
	chat_buf *buf;
	uint64_t channel_id;
	const uint64_t *chans;
	size_t nchans;
	const uint64_t *users;
	size_t nusers;
	uint64_t skip_user;
	int member;          /* -1, or a Chat__MemberEvent__Kind */
	uint64_t member_user, member_channel;
	uint64_t msg_sender; /* message events: sender and client_msg_id */
	const char *msg_cmid;
} edge_ev;

/* A Kick waiting for the service thread. */
typedef struct edge_kick {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	uint32_t count;
	uint64_t user_id;
	int per_second;      /* IB_DRAIN */
	char reason[EDGE_CLOSE_REASON_MAX + 1];
} edge_kick;

typedef struct edge_ib {
	chat_qnode node;
	int op;
	int ends_req;        /* answers a request counted in inflight */
	int ok;
	uint64_t sid, user_id, channel_id, req_id;
	char user_name[EDGE_NAME_MAX];
	int status;          /* IB_SETUP: presence status */
	int presence_up;     /* IB_SETUP: SessionUp succeeded */
	chat_buf *one;       /* storage when nbufs == 1 */
	chat_buf **bufs;
	size_t nbufs;
	uint64_t *chans;     /* IB_SETUP: channels to subscribe */
	size_t nchans;
	edge_ev *evs;        /* IB_DELIVER */
	size_t nevs;
	edge_kick *kick;     /* IB_KICK (owned by the waiting thread) */
	uint64_t last_seq;   /* IB_RESUME_PAGE */
	int more;
	size_t count;
	int chanlist;        /* IB_USER_FRAMES: the answer of a refresh */
	char cmid[EDGE_MAX_CMID + 1]; /* IB_SEND_DONE */
	chat_arena *arena;   /* owns the arrays above when set */
} edge_ib;

/* A new item (zeroed), or NULL when out of memory. */
edge_ib *edge_ib_new(int op);

/* Attach one frame (takes the reference; NULL is ignored). */
void edge_ib_set_buf(edge_ib *ib, chat_buf *b);

/* Release the frames, complete a kick, free. Accepts NULL. */
void edge_ib_free(edge_ib *ib);

/* Hand an item to the service thread and wake it. Any thread. Takes
 * ownership (the item is freed when the inbox is closed). */
void edge_post(edge *e, edge_ib *ib);

/* Wake the service thread (lws_cancel_service when the context lives). */
void edge_wake(edge *e);

/* ---- worker jobs ---- */

enum edge_job_op {
	JOB_SETUP,        /* ListChannels + SessionUp + presence of DM peers */
	JOB_REQ,          /* one client request (frame) */
	JOB_SESSION_DOWN, /* Presence.SessionDown, fire and forget */
	JOB_TYPING,       /* Dispatcher.Publish of a typing notice */
	JOB_CHANLIST,     /* push a fresh ChannelList to a user's sessions */
	JOB_RESUME_PAGE,  /* one Store.History page for a resume */
	JOB_FREE_PRODUCER, /* flush and free a replaced producer */
	JOB_REANNOUNCE,   /* Presence.SessionUp for each of a list */
};

/* One session of a re-announce. */
typedef struct edge_reann {
	uint64_t sid, user_id;
	char user_name[EDGE_NAME_MAX];
} edge_reann;

typedef struct edge_job {
	chat_job job;
	edge *e;
	int op;
	uint64_t sid, user_id, req_id;
	char user_name[EDGE_NAME_MAX];
	chat_arena *arena;              /* owned; holds frame */
	const Chat__ClientFrame *frame; /* JOB_REQ, JOB_TYPING */
	uint64_t channel_id, after_seq; /* JOB_RESUME_PAGE */
	uint32_t limit;
	void *ptr;                      /* JOB_FREE_PRODUCER */
	edge_reann *reann;              /* JOB_REANNOUNCE, in arena */
	size_t nreann;
} edge_job;

/* A job for op with a fresh arena, or NULL. */
edge_job *edge_job_new(edge *e, int op);

/* Submit; on failure frees the job and returns -1. */
int edge_job_submit(edge *e, edge_job *j);

void edge_job_free(edge_job *j);

/* ---- sessions (session.c, service thread) ---- */

edge_sess *edge_sess_new(edge *e, struct lws *wsi, const chat_claims *c);

/* The close path: unsubscribe, unregister, free. */
void edge_sess_free(edge_sess *s);

edge_sess *edge_sess_find(edge *e, uint64_t sid);

/* Queue a frame (takes the reference). Typing notices are dropped when
 * the queue is over half full; an overflow closes the session with 4008.
 * Returns 0 when queued, -1 when dropped. */
int edge_sess_push(edge_sess *s, chat_buf *b);

/* Queue frames ahead of everything already queued (Welcome). */
int edge_sess_push_front(edge_sess *s, chat_buf **bufs, size_t n);

/* The next frame to write, or NULL. */
chat_buf *edge_sess_pop(edge_sess *s);

/* Close with code and reason: at once (dropping the queue) or, with
 * drain, after the queued frames are written. */
void edge_sess_close(edge_sess *s, int code, const char *reason, int drain);

/* Subscribe / unsubscribe the session to a channel (idempotent). */
void edge_sess_chan_add(edge_sess *s, uint64_t channel_id);
void edge_sess_chan_del(edge_sess *s, uint64_t channel_id);

/* The local sessions of a user or a channel, or NULL. */
edge_set *edge_user_sessions(edge *e, uint64_t user_id);
edge_set *edge_chan_sessions(edge *e, uint64_t channel_id);

/* Free a resume in progress. */
void edge_resume_free(edge_resume *r);

/* ---- the service thread (ws.c) ---- */

/* Create the lws context listening on cfg host/port. */
int edge_ws_start(edge *e, char *err, size_t errlen);

/* The service thread's body. */
void *edge_ws_main(void *arg);

/* Take and handle every inbox item (service thread). */
void edge_drain_inbox(edge *e);

/* ---- sending (edge.c) ---- */

/* Produce a validated send; answers come back through the inbox. */
void edge_produce(edge *e, edge_sess *s, const edge_act *act);

/* ---- acknowledge after store (acks.c, service thread) ---- */

/* Remember a produced send until its stored copy comes back. */
void edge_acks_add(edge *e, uint64_t sid, uint64_t req_id, uint64_t channel,
                   uint64_t user, const char *cmid);

/* The log refused the send: forget it (the error is answered already). */
void edge_acks_drop(edge *e, uint64_t sid, uint64_t channel, uint64_t user,
                    const char *cmid);

/* A stored message arrived: answer SendAck to every session waiting. */
void edge_acks_stored(edge *e, uint64_t channel, uint64_t user,
                      const char *cmid);

/* Answer UNAVAILABLE (retryable) to sends waiting past the timeout.
 * Cheap when called often. */
void edge_acks_sweep(edge *e);

void edge_acks_fini(edge *e);

/* ---- chat.Edge (rpc.c) ---- */

int edge_rpc_start(edge *e, char *err, size_t errlen);

/* Record the bound chat.Edge port: rpc_adv (edge.c). */
void edge_set_rpc_port(edge *e, int port);

/* ---- the routing thread (route.c) ---- */

/* Start it (after edge_rpc_start: it registers rpc_adv). With zk_hosts
 * it also registers the edge in ZooKeeper. Returns 0 or -1. */
int edge_route_start(edge *e, char *err, size_t errlen);

/* Service thread: queue one routing change; returns its sequence number
 * (compare with rt.applied). */
uint64_t edge_route(edge *e, int is_user, uint64_t key, int add);

/* Leave ZooKeeper now (drain, stop); waits until done. Any thread but
 * the routing thread. */
void edge_route_leave(edge *e);

/* Apply what is queued, drop the edge from the routing table, leave
 * ZooKeeper, join the thread, free. After the service thread ended. */
void edge_route_stop(edge *e);

/* The JSON registered in ZooKeeper for this edge with load. */
int edge_disc_json(edge *e, int64_t load, char *out, size_t outlen);

/* ---- session services (ws.c, service thread) ---- */

/* IB_ROUTED: resumes waiting for their routes continue. */
void edge_routed(edge *e);

/* IB_REANNOUNCE: one job sending SessionUp for every open session. */
void edge_reannounce(edge *e);

/* IB_DRAIN: start closing every session (paced). */
void edge_drain_begin(edge *e, edge_kick *k);

#endif
