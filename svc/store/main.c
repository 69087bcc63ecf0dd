/* chat-store: the store service as a program. Flags (or the environment)
 * give the database, the brokers and the RPC address; with --zk it
 * registers as service "store" (the edges, the api and presence find it
 * there). SIGTERM or SIGINT leaves ZooKeeper, finishes the batch in hand,
 * leaves the consumer group and exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat_discovery.h"
#include "chat_log.h"
#include "chat_opts.h"
#include "store.h"
#include "store_db.h"


/* Register as service "store" in ZooKeeper at hosts: rpc_url (the flag)
 * with the port the store bound. */
static int announce(const char *hosts, int timeout_ms, const char *id,
                    const char *rpc_url, int port, chat_disc **out,
                    char *err, size_t errlen)
{
	chat_disc_entry e;
	char json[CHAT_DISC_DATA_MAX], host[200];
	const char *colon, *h;
	chat_disc *d;

	if (strncmp(rpc_url, "tcp://", 6) != 0 || port <= 0 ||
	    !(colon = strrchr(rpc_url + 6, ':'))) {
		snprintf(err, errlen, "--rpc-url must be tcp://HOST:PORT with "
		                      "--zk (got %s)", rpc_url);
		return -1;
	}
	h = rpc_url + 6;
	snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
	if (!host[0] || !strcmp(host, "*") || !strcmp(host, "0.0.0.0") ||
	    !strcmp(host, "[::]")) {
		if (gethostname(host, sizeof host) != 0 || !host[0])
			snprintf(host, sizeof host, "127.0.0.1");
		host[sizeof host - 1] = '\0';
	}
	memset(&e, 0, sizeof e);
	snprintf(e.id, sizeof e.id, "%s", id && *id ? id : "store");
	snprintf(e.service, sizeof e.service, "store");
	snprintf(e.rpc, sizeof e.rpc, "tcp://%s:%d", host, port);
	snprintf(e.version, sizeof e.version, "%s", CHAT_VERSION);
	e.pid = (int64_t)getpid();
	d = chat_disc_new(hosts, timeout_ms, err, errlen);
	if (!d)
		return -1;
	if (chat_disc_format(&e, json, sizeof json) < 0 ||
	    chat_disc_register(d, "store", e.id, json, 0) < 0) {
		snprintf(err, errlen, "cannot register '%s' in ZooKeeper",
		         e.id);
		chat_disc_free(d);
		return -1;
	}
	chat_info("store", "registered", "id=%s rpc=%s", e.id, e.rpc);
	*out = d;
	return 0;
}

int main(int argc, char **argv)
{
	char *db = NULL, *kafka = NULL, *log_id = NULL, *rpc = NULL,
	     *instance = NULL, *level = NULL, *zk = NULL;
	int threads = 4, batch = 500, zk_timeout = 10000;
	const chat_opt opts[] = {
	    {"db", "CHAT_STORE_DB", CHAT_OPT_STR, &db, NULL, 0, 0,
	     "the database (required): a PostgreSQL URI "
	     "postgres://USER@HOST:PORT/DB (or postgresql://..., any libpq "
	     "URI; several stores may share it) or a SQLite file path "
	     "(created if missing; one store only)"},
	    {"kafka", "CHAT_KAFKA", CHAT_OPT_STR, &kafka, NULL, 0, 0,
	     "Kafka bootstrap servers host:port[,...] (required)"},
	    {"log-id", "CHAT_LOG_ID", CHAT_OPT_STR, &log_id, "kafka", 0, 0,
	     "names the log instance the stored offsets belong to"},
	    {"rpc-url", "CHAT_STORE_RPC", CHAT_OPT_STR, &rpc,
	     "tcp://127.0.0.1:7101", 0, 0,
	     "where chat.Store listens (tcp port 0: any free port; the bound "
	     "one is registered)"},
	    {"zk", "CHAT_ZK", CHAT_OPT_STR, &zk, NULL, 0, 0,
	     "ZooKeeper hosts: register as service store"},
	    {"zk-session-timeout", "CHAT_ZK_SESSION_TIMEOUT_MS", CHAT_OPT_INT,
	     &zk_timeout, "10000", 1000, 60000,
	     "ZooKeeper session timeout in ms"},
	    {"instance", "CHAT_INSTANCE", CHAT_OPT_STR, &instance, "store", 0,
	     0, "instance name for logs and health"},
	    {"rpc-threads", "CHAT_STORE_RPC_THREADS", CHAT_OPT_INT, &threads,
	     "4", 1, 256, "RPC handler threads"},
	    {"batch-max", "CHAT_STORE_BATCH_MAX", CHAT_OPT_INT, &batch, "500",
	     1, 100000, "ingress records per transaction"},
	    {"log-level", "CHAT_LOG_LEVEL", CHAT_OPT_STR, &level, "info", 0, 0,
	     "debug, info, warn, error or off"},
	    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
	};
	const char *summary = "chat-store: users, channels, messages; "
	                      "consumes chat.ingress, produces chat.fanout";
	store_config cfg;
	store *s = NULL;
	chat_disc *disc = NULL;
	char inproc[96];
	sigset_t sigs;
	char err[512];
	int rc, sig = 0;

	rc = chat_opts_parse(opts, argc, argv, summary, err, sizeof err);
	if (rc == 1)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "chat-store: %s\n", err);
		chat_opts_usage(stderr, opts, "chat-store", summary);
		return 2;
	}
	if (chat_log_set_level(level)) {
		fprintf(stderr, "chat-store: --log-level: unknown level '%s'\n",
		        level);
		return 2;
	}
	if (!db || !*db) {
		fprintf(stderr,
		        "chat-store: --db (CHAT_STORE_DB) is required\n");
		return 2;
	}
	if (!kafka || !*kafka) {
		fprintf(stderr,
		        "chat-store: --kafka (CHAT_KAFKA) is required\n");
		return 2;
	}
	/* --db (first in opts) may hold a password: logged redacted. */
	{
		char safe[256];
		store_db_url_redact(db, safe, sizeof safe);
		chat_debug("store", "config", "db=\"%s\"", safe);
		chat_opts_log(opts + 1, "store");
	}

	/* Every thread started from here on inherits the blocked signals;
	 * only sigwait below takes them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&cfg, 0, sizeof cfg);
	cfg.db_path = db;
	cfg.kafka_bootstrap = kafka;
	cfg.log_id = log_id;
	if (zk && *zk) {
		/* The store tells the bound port of its admin address only:
		 * serve chat.Store there, and on a private inproc address. */
		snprintf(inproc, sizeof inproc, "inproc://chat-store-%d",
		         (int)getpid());
		cfg.rpc_url = inproc;
		cfg.admin_url = rpc;
	} else {
		cfg.rpc_url = rpc;
	}
	cfg.instance = instance;
	cfg.rpc_threads = threads;
	cfg.batch_max = batch;
	if (store_start(&cfg, &s, err, sizeof err)) {
		chat_error("store", "start_failed", "reason=\"%s\"", err);
		fprintf(stderr, "chat-store: %s\n", err);
		return 1;
	}
	if (zk && *zk && announce(zk, zk_timeout, instance, rpc,
	                           store_admin_port(s), &disc, err,
	                           sizeof err) != 0) {
		fprintf(stderr, "chat-store: %s\n", err);
		store_stop(s);
		return 1;
	}
	while (sigwait(&sigs, &sig) != 0)
		;
	chat_info("store", "signal", "sig=%d", sig);
	/* Out of ZooKeeper first: calls go to the other stores. */
	chat_disc_free(disc);
	store_stop(s);
	return 0;
}
