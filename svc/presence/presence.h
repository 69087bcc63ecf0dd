/* The presence service: each user's status across all of their sessions,
 * and last seen. A user with no session is offline; with sessions, the
 * status they last chose (online by default; offline = invisible). Every
 * change is published through the dispatcher to the users who share a
 * channel (chat.Event with channel_ids = the user's channels, user_ids =
 * the user), at most once.
 *
 * State lives in memory (embedded mode: a restart forgets every session
 * and chosen status) or, with redis_addr, in Redis (fleet: shared by every
 * presence instance; keys in pres_backend.h). In Redis a session counts
 * only while its edge is alive, that is while the edge's routing key
 * P edge:{edge_id} exists (refreshed by the edge's routing heartbeat): a
 * sweep every sweep_ms ends the sessions of dead edges and publishes the
 * users who went offline, so an edge killed with -9 leaves no ghost once
 * its TTL runs out. After a Redis restart (empty) the edges must send
 * SessionUp again for their live sessions once their routing heartbeat
 * reports the loss (it is idempotent); chosen statuses are lost then. */
#ifndef PRESENCE_H
#define PRESENCE_H

#include <stddef.h>

#include "chat_discovery.h"

/* Strings are used during pres_start only. */
typedef struct pres_config {
	const char *rpc_url;         /* where chat.Presence listens */
	const char *store_url;       /* for the user's channels */
	const char *dispatcher_url;  /* to publish changes */
	const char *instance;
	int rpc_timeout_ms;          /* store/dispatcher calls, default 2000 */

	/* Fleet. */
	const char *redis_addr;      /* "host:port"; NULL or "": in memory */
	const char *redis_prefix;    /* key prefix, NULL: "chat:" (must be
	                                the routing table's) */
	int redis_timeout_ms;        /* per Redis step, default 500 */
	int sweep_ms;                /* dead-edge sweep period, default 2000 */
	/* Discovery (owned by the caller, outlives the service): when set,
	 * a NULL or "" store_url / dispatcher_url means "every instance of
	 * service store / dispatcher", and the service registers itself as
	 * service "presence", id = instance, rpc = rpc_url with its bound
	 * port. */
	chat_disc *disc;
} pres_config;

typedef struct pres pres;

/* Serve chat.Presence (and chat.Admin/Health with counters users,
 * sessions, publishes, publish_failed, publish_skipped, publish_backlog,
 * and with Redis swept_offline and backend_errors; users is -1 there)
 * on cfg->rpc_url. Returns 0 with *out set, or -1 with a reason in err.
 * Does not block (Redis and ZooKeeper are not waited for). */
int pres_start(const pres_config *cfg, pres **out, char *err, size_t errlen);

/* Stop serving, drop unpublished changes, free. Blocks for at most one
 * publish and one sweep in progress. Accepts NULL. */
void pres_stop(pres *p);

#endif
