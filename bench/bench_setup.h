/* A run's users and channels, created through the store's admin RPC. */
#ifndef BENCH_SETUP_H
#define BENCH_SETUP_H

#include "bench.h"
#include "chat_auth.h"
#include "chat_rpc.h"

typedef struct bench_setup {
	chat_rpc_client *rpc; /* the store (chatd --admin-url) */
	const bench_topo *topo;
	const char *prefix; /* user and channel names start with it */
	uint64_t *uid;      /* out: topo->n user ids */
	uint64_t *cuid;     /* out: topo->nchurn user ids */
	uint64_t *chan_id;  /* out: topo->nchan channel ids */
	char hash[CHAT_PASS_HASH_MAX];
} bench_setup;

/* Create every user (one argon2id hash shared by all), then the channels
 * of the scenario with their members (bench_topo). Blocks; runs several
 * calls at a time. Returns 0, or -1 with the first failure in err. */
int bench_setup_run(bench_setup *s, char *err, size_t errlen);

#endif
