/* Where presence keeps its state: in memory (one process, lost on
 * restart: the embedded mode) or in Redis (shared by every presence
 * instance, sessions tied to the liveness of their edge: the fleet).
 * Internal to the presence service.
 *
 * The service calls a backend under its own lock, one call at a time, so
 * a backend need not lock; the visible changes it reports are published
 * in the order they happened (in one process). */
#ifndef PRES_BACKEND_H
#define PRES_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "presence.pb-c.h"

#define PRES_NAME_MAX 64

/* What others see of a user. */
typedef struct pres_view {
	char name[PRES_NAME_MAX];
	Chat__Status status;  /* OFFLINE without a session, else as chosen */
	int64_t last_seen_ms; /* now while visible, else the last time a
	                         session ended (0: never) */
} pres_view;

typedef struct pres_backend pres_backend;

/* A user whose visible status changed in a sweep. */
typedef void (*pres_change_fn)(void *arg, uint64_t user_id,
                               const pres_view *v);

/* Every call returns CHAT_OK or a chat_status (RESOURCE_EXHAUSTED,
 * UNAVAILABLE when Redis cannot be reached), fills *v with the user's
 * view after the call, and sets *changed when the visible status changed.
 * name "" leaves the known name. */
typedef struct pres_backend_ops {
	int (*session_up)(pres_backend *b, uint64_t user, const char *name,
	                  uint64_t session, const char *edge, int64_t now,
	                  pres_view *v, int *changed);
	/* Idempotent: an unknown session changes nothing. */
	int (*session_down)(pres_backend *b, uint64_t user, const char *name,
	                    uint64_t session, int64_t now, pres_view *v,
	                    int *changed);
	int (*set_status)(pres_backend *b, uint64_t user, const char *name,
	                  Chat__Status status, int64_t now, pres_view *v,
	                  int *changed);
	/* Views of n users (unknown ones: OFFLINE, "", 0). */
	int (*query)(pres_backend *b, const uint64_t *users, size_t n,
	             int64_t now, pres_view *out);
	/* End the sessions of edges that are no longer alive, calling fn for
	 * every user whose visible status changed. NULL when there is
	 * nothing to sweep (memory). */
	int (*sweep)(pres_backend *b, int64_t now, pres_change_fn fn,
	             void *arg);
	/* Users and sessions known (-1: not counted). */
	void (*counters)(pres_backend *b, int64_t *users, int64_t *sessions);
	void (*free)(pres_backend *b);
} pres_backend_ops;

struct pres_backend {
	const pres_backend_ops *ops;
};

/* NULL when out of memory. */
pres_backend *pres_mem_new(void);

/* Keys (prefix P, NULL: "chat:", the same as the routing table's, whose
 * P edge:{id} keys say which edges are alive):
 *   P pres:status:{user}  STRING the chosen status (absent: ONLINE)
 *   P pres:seen:{user}    STRING last seen, ms since the epoch
 *   P pres:name:{user}    STRING the user's name
 *   P pres:sess:{user}    HASH session id -> edge id
 *   P pres:edge:{edge}    SET "user:session" of the edge, for the sweep
 *   P pres:edges          SET of edges that had sessions
 * timeout_ms bounds each Redis step (<= 0: 500). Does not connect yet.
 * NULL with a reason in err. */
pres_backend *pres_redis_new(const char *addr, const char *prefix,
                             int timeout_ms, char *err, size_t errlen);

#endif
