/* chat-presence: the presence service as a program of its own. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "chat_discovery.h"
#include "chat_log.h"
#include "chat_opts.h"
#include "presence.h"

int main(int argc, char **argv)
{
	const char *rpc_url, *store_url, *disp_url, *instance, *level, *zk,
	    *redis;
	int timeout, zk_timeout;
	const chat_opt opts[] = {
	    {"rpc-url", "CHAT_PRESENCE_URL", CHAT_OPT_STR, &rpc_url,
	     "tcp://127.0.0.1:7300", 0, 0,
	     "where chat.Presence listens (tcp port 0: any free port)"},
	    {"store-url", "CHAT_STORE_URL", CHAT_OPT_STR, &store_url, NULL, 0,
	     0, "chat.Store RPC address (default: from --zk, else "
	        "tcp://127.0.0.1:7100)"},
	    {"dispatcher-url", "CHAT_DISPATCHER_URL", CHAT_OPT_STR, &disp_url,
	     NULL, 0, 0, "chat.Dispatcher RPC address (default: from --zk, "
	                 "else tcp://127.0.0.1:7200)"},
	    {"instance", "CHAT_INSTANCE", CHAT_OPT_STR, &instance, "presence-1",
	     0, 0, "instance name (Admin.Health, ZooKeeper)"},
	    {"rpc-timeout", "CHAT_RPC_TIMEOUT_MS", CHAT_OPT_INT, &timeout,
	     "2000", 100, 60000, "store/dispatcher call deadline in ms"},
	    {"redis", "CHAT_REDIS", CHAT_OPT_STR, &redis, NULL, 0, 0,
	     "HOST:PORT of Redis for the state (default: in memory)"},
	    {"zk", "CHAT_ZK", CHAT_OPT_STR, &zk, NULL, 0, 0,
	     "ZooKeeper hosts: register, and find stores and dispatchers"},
	    {"zk-session-timeout", "CHAT_ZK_SESSION_TIMEOUT_MS", CHAT_OPT_INT,
	     &zk_timeout, "10000", 1000, 60000,
	     "ZooKeeper session timeout in ms"},
	    {"log-level", "CHAT_LOG_LEVEL", CHAT_OPT_STR, &level, "info", 0, 0,
	     "debug, info, warn, error or off"},
	    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
	};
	pres_config cfg;
	pres *p = NULL;
	chat_disc *disc = NULL;
	char err[512];
	sigset_t sigs;
	int rv, sig;

	rv = chat_opts_parse(opts, argc, argv,
	                     "The chat presence service: status and last seen "
	                     "of every user.",
	                     err, sizeof err);
	if (rv != 0) {
		if (rv < 0)
			fprintf(stderr, "chat-presence: %s\n", err);
		return rv < 0 ? 2 : 0;
	}
	if (chat_log_set_level(level) != 0) {
		fprintf(stderr,
		        "chat-presence: --log-level: unknown level '%s'\n",
		        level);
		return 2;
	}
	chat_opts_log(opts, "presence");
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&cfg, 0, sizeof cfg);
	if (zk && zk[0]) {
		disc = chat_disc_new(zk, zk_timeout, err, sizeof err);
		if (!disc) {
			fprintf(stderr, "chat-presence: --zk: %s\n", err);
			return 2;
		}
	} else {
		if (!store_url || !store_url[0])
			store_url = "tcp://127.0.0.1:7100";
		if (!disp_url || !disp_url[0])
			disp_url = "tcp://127.0.0.1:7200";
	}
	cfg.rpc_url = rpc_url;
	cfg.store_url = store_url;
	cfg.dispatcher_url = disp_url;
	cfg.instance = instance;
	cfg.rpc_timeout_ms = timeout;
	cfg.redis_addr = redis;
	cfg.disc = disc;
	if (pres_start(&cfg, &p, err, sizeof err) != 0) {
		fprintf(stderr, "chat-presence: %s\n", err);
		chat_disc_free(disc);
		return 1;
	}
	sigwait(&sigs, &sig);
	chat_info("presence", "stopping", "signal=%d", sig);
	pres_stop(p);
	chat_disc_free(disc); /* leaves ZooKeeper */
	return 0;
}
