/* chat-dispatcher: the dispatcher as a program of its own. With --redis it
 * reads the fleet's routing table (the edges write it); with --zk it
 * registers (service "dispatcher") so that edges and presence find it for
 * Publish. Several dispatchers share chat.fanout through their consumer
 * group. SIGTERM leaves ZooKeeper, stops consuming, delivers what is
 * queued, leaves the group and exits 0. Without --redis the routing table
 * is private to this process (no edge elsewhere can be found): that is
 * for tests only; chatd is the embedded deployment. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "chat_discovery.h"
#include "chat_log.h"
#include "chat_opts.h"
#include "chat_routing.h"
#include "dispatcher.h"

int main(int argc, char **argv)
{
	const char *kafka, *rpc_url, *instance, *level, *redis, *zk;
	int batch_max, timeout, route_ttl, redis_timeout, cache_ms,
	    zk_timeout;
	const chat_opt opts[] = {
	    {"kafka", "CHAT_KAFKA", CHAT_OPT_STR, &kafka, "127.0.0.1:9092", 0,
	     0, "Kafka bootstrap servers"},
	    {"rpc-url", "CHAT_DISPATCHER_URL", CHAT_OPT_STR, &rpc_url,
	     "tcp://127.0.0.1:7200", 0, 0,
	     "where chat.Dispatcher listens (tcp port 0: any free port; the "
	     "bound one is registered)"},
	    {"instance", "CHAT_INSTANCE", CHAT_OPT_STR, &instance,
	     "dispatcher-1", 0, 0,
	     "instance name (Kafka client.id, ZooKeeper, Health)"},
	    {"batch-max", "CHAT_DISPATCHER_BATCH", CHAT_OPT_INT, &batch_max,
	     "1000", 1, 100000, "events per batch and per Deliver"},
	    {"deliver-timeout", "CHAT_DELIVER_TIMEOUT_MS", CHAT_OPT_INT,
	     &timeout, "2000", 50, 60000, "Deliver call deadline in ms"},
	    {"redis", "CHAT_REDIS", CHAT_OPT_STR, &redis, NULL, 0, 0,
	     "HOST:PORT of Redis holding the routing table (the fleet)"},
	    {"route-ttl", "CHAT_ROUTE_TTL", CHAT_OPT_INT, &route_ttl, "10", 2,
	     3600, "the edges' routing lease in seconds (a lookup served "
	           "from the cache while Redis is away is at most this old)"},
	    {"route-cache-ms", "CHAT_ROUTE_CACHE_MS", CHAT_OPT_INT, &cache_ms,
	     "100", 0, 10000,
	     "how long a routing lookup is cached; edges wait as long "
	     "before a resume reads history (same setting there)"},
	    {"redis-timeout", "CHAT_REDIS_TIMEOUT_MS", CHAT_OPT_INT,
	     &redis_timeout, "500", 10, 60000,
	     "bound of each Redis step in ms"},
	    {"zk", "CHAT_ZK", CHAT_OPT_STR, &zk, NULL, 0, 0,
	     "ZooKeeper hosts: register as service dispatcher"},
	    {"zk-session-timeout", "CHAT_ZK_SESSION_TIMEOUT_MS", CHAT_OPT_INT,
	     &zk_timeout, "10000", 1000, 60000,
	     "ZooKeeper session timeout in ms"},
	    {"log-level", "CHAT_LOG_LEVEL", CHAT_OPT_STR, &level, "info", 0, 0,
	     "debug, info, warn, error or off"},
	    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
	};
	disp_config cfg;
	disp *d = NULL;
	chat_routing *routing;
	chat_disc *disc = NULL;
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

	if (redis && redis[0]) {
		routing = chat_routing_redis_new(redis, NULL, route_ttl,
		                                 redis_timeout, err,
		                                 sizeof err);
		if (!routing) {
			fprintf(stderr, "chat-dispatcher: --redis: %s\n", err);
			return 2;
		}
		chat_routing_redis_set_cache_ms(routing, cache_ms);
	} else {
		chat_warn("dispatcher", "routing_local", "%s",
		          "reason=\"no --redis: no edge of another process "
		          "can be found\"");
		routing = chat_routing_mem_new();
		if (!routing) {
			fprintf(stderr, "chat-dispatcher: out of memory\n");
			return 1;
		}
	}
	if (zk && zk[0]) {
		disc = chat_disc_new(zk, zk_timeout, err, sizeof err);
		if (!disc) {
			fprintf(stderr, "chat-dispatcher: --zk: %s\n", err);
			chat_routing_free(routing);
			return 2;
		}
	}
	memset(&cfg, 0, sizeof cfg);
	cfg.kafka_bootstrap = kafka;
	cfg.rpc_url = rpc_url;
	cfg.instance = instance;
	cfg.routing = routing;
	cfg.batch_max = batch_max;
	cfg.deliver_timeout_ms = timeout;
	cfg.route_cache_ms = redis && redis[0] ? cache_ms : 0;
	cfg.disc = disc;
	if (disp_start(&cfg, &d, err, sizeof err) != 0) {
		fprintf(stderr, "chat-dispatcher: %s\n", err);
		chat_disc_free(disc);
		chat_routing_free(routing);
		return 1;
	}
	sigwait(&sigs, &sig);
	chat_info("dispatcher", "stopping", "signal=%d", sig);
	/* Out of ZooKeeper first: Publish calls go to the others. */
	chat_disc_free(disc);
	disp_stop(d);
	chat_routing_free(routing);
	return 0;
}
