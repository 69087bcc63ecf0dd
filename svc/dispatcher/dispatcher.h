/* The dispatcher: consumes chat.fanout (group "chat-dispatcher"), groups a
 * batch by destination edge using the routing table, and sends each edge
 * one chat.Edge/Deliver holding its whole share. Also serves
 * chat.Dispatcher/Publish for ephemeral events (typing, presence), routed
 * the same way. */
#ifndef DISPATCHER_H
#define DISPATCHER_H

#include <stddef.h>

#include "chat_routing.h"

typedef struct disp_config {
	const char *kafka_bootstrap;
	const char *rpc_url;    /* where chat.Dispatcher listens */
	const char *instance;
	chat_routing *routing;  /* not owned */
	int batch_max;          /* events per poll batch, default 1000 */
} disp_config;

typedef struct disp disp;

int disp_start(const disp_config *cfg, disp **out, char *err, size_t errlen);
int disp_ready(disp *d);  /* holds its partition assignment */
void disp_stop(disp *d);

#endif
