/* The presence service: each user's status across all of their sessions,
 * and last seen. A user with no session is offline; with sessions, the
 * status they last chose (online by default; offline = invisible). Every
 * change is published through the dispatcher to the users who share a
 * channel (chat.Event with channel_ids = the user's channels, user_ids =
 * the user), at most once. */
#ifndef PRESENCE_H
#define PRESENCE_H

#include <stddef.h>

typedef struct pres_config {
	const char *rpc_url;         /* where chat.Presence listens */
	const char *store_url;       /* for the user's channels */
	const char *dispatcher_url;  /* to publish changes */
	const char *instance;
} pres_config;

typedef struct pres pres;

int pres_start(const pres_config *cfg, pres **out, char *err, size_t errlen);
void pres_stop(pres *p);

#endif
