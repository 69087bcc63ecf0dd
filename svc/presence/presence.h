/* The presence service: each user's status across all of their sessions,
 * and last seen. A user with no session is offline; with sessions, the
 * status they last chose (online by default; offline = invisible). Every
 * change is published through the dispatcher to the users who share a
 * channel (chat.Event with channel_ids = the user's channels, user_ids =
 * the user), at most once. */
#ifndef PRESENCE_H
#define PRESENCE_H

#include <stddef.h>

/* Strings are used during pres_start only. */
typedef struct pres_config {
	const char *rpc_url;         /* where chat.Presence listens */
	const char *store_url;       /* for the user's channels */
	const char *dispatcher_url;  /* to publish changes */
	const char *instance;
	int rpc_timeout_ms;          /* store/dispatcher calls, default 2000 */
} pres_config;

typedef struct pres pres;

/* Serve chat.Presence (and chat.Admin/Health with counters users,
 * sessions, publishes, publish_failed, publish_skipped, publish_backlog)
 * on cfg->rpc_url. State lives in memory: a restart forgets every session
 * and chosen status. Returns 0 with *out set, or -1 with a reason in err.
 * Does not block. */
int pres_start(const pres_config *cfg, pres **out, char *err, size_t errlen);

/* Stop serving, drop unpublished changes, free. Blocks for at most one
 * publish in progress. Accepts NULL. */
void pres_stop(pres *p);

#endif
