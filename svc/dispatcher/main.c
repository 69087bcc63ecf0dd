/* chat-dispatcher: the dispatcher as a program of its own.
 *
 * Note: the only routing table so far is the in-memory one, which lives in
 * one process: edges in other processes cannot register in it, so a
 * standalone dispatcher routes nothing until the fleet routing table
 * (Redis) exists. chatd, where every service shares one in-memory table,
 * is the embedded deployment that works today. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "chat_log.h"
#include "chat_opts.h"
#include "chat_routing.h"
#include "dispatcher.h"

int main(int argc, char **argv)
{
	const char *kafka, *rpc_url, *instance, *level;
	int batch_max, timeout;
	const chat_opt opts[] = {
	    {"kafka", "CHAT_KAFKA", CHAT_OPT_STR, &kafka, "127.0.0.1:9092", 0,
	     0, "Kafka bootstrap servers"},
	    {"rpc-url", "CHAT_DISPATCHER_URL", CHAT_OPT_STR, &rpc_url,
	     "tcp://127.0.0.1:7200", 0, 0, "where chat.Dispatcher listens"},
	    {"instance", "CHAT_INSTANCE", CHAT_OPT_STR, &instance,
	     "dispatcher-1", 0, 0, "instance name (Kafka client.id, Health)"},
	    {"batch-max", "CHAT_DISPATCHER_BATCH", CHAT_OPT_INT, &batch_max,
	     "1000", 1, 100000, "events per batch and per Deliver"},
	    {"deliver-timeout", "CHAT_DELIVER_TIMEOUT_MS", CHAT_OPT_INT,
	     &timeout, "2000", 50, 60000, "Deliver call deadline in ms"},
	    {"log-level", "CHAT_LOG_LEVEL", CHAT_OPT_STR, &level, "info", 0, 0,
	     "debug, info, warn, error or off"},
	    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
	};
	disp_config cfg;
	disp *d = NULL;
	chat_routing *routing;
	char err[512];
	sigset_t sigs;
	int rv, sig;

	rv = chat_opts_parse(opts, argc, argv,
	                     "The chat dispatcher: routes chat.fanout and "
	                     "published events to the edges.",
	                     err, sizeof err);
	if (rv != 0) {
		if (rv < 0)
			fprintf(stderr, "chat-dispatcher: %s\n", err);
		return rv < 0 ? 2 : 0;
	}
	if (chat_log_set_level(level) != 0) {
		fprintf(stderr,
		        "chat-dispatcher: --log-level: unknown level '%s'\n",
		        level);
		return 2;
	}
	chat_opts_log(opts, "dispatcher");
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	routing = chat_routing_mem_new();
	if (!routing) {
		fprintf(stderr, "chat-dispatcher: out of memory\n");
		return 1;
	}
	memset(&cfg, 0, sizeof cfg);
	cfg.kafka_bootstrap = kafka;
	cfg.rpc_url = rpc_url;
	cfg.instance = instance;
	cfg.routing = routing;
	cfg.batch_max = batch_max;
	cfg.deliver_timeout_ms = timeout;
	if (disp_start(&cfg, &d, err, sizeof err) != 0) {
		fprintf(stderr, "chat-dispatcher: %s\n", err);
		chat_routing_free(routing);
		return 1;
	}
	sigwait(&sigs, &sig);
	chat_info("dispatcher", "stopping", "signal=%d", sig);
	disp_stop(d);
	chat_routing_free(routing);
	return 0;
}
