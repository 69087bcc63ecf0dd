/* Service discovery on ZooKeeper 3.8 (libzookeeper_mt).
 *
 * Layout: each instance is an EPHEMERAL_SEQUENTIAL znode
 *   /chat/services/<service>/<instance-id>-<10-digit sequence>
 * whose data is a small JSON object, for example
 *   {"id":"edge-1","service":"edge","rpc":"tcp://127.0.0.1:7001",
 *    "public":"ws://127.0.0.1:8001/ws","load":12,"version":"0.1.0",
 *    "pid":1234}
 * (`public` only for edges and the api). Parents are created as needed
 * (persistent, open ACL).
 *
 * One background thread per handle does every ZooKeeper call (the
 * library's own threads only raise flags), so no public function blocks
 * on ZooKeeper for longer than it says. Clients of a service watch its
 * children and each child's data; watches fire once and are re-armed by
 * re-reading the service. The cache of a service is replaced only by a
 * successful read: while ZooKeeper is unreachable every cache stays as it
 * was and calls keep answering from it. On CONNECTION_LOSS the thread
 * retries (a create that "may have happened" is found again by its
 * ephemeral owner before creating another). On SESSION_EXPIRED it makes a
 * new handle, re-creates its node (a new sequence number) and re-reads
 * every watched service. */
#ifndef CHAT_DISCOVERY_H
#define CHAT_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "chat_routing.h" /* CHAT_URL_MAX */
#include "chat_rpc.h"

#define CHAT_DISC_ROOT "/chat/services"
#define CHAT_DISC_SERVICE_MAX 32
#define CHAT_DISC_ID_MAX 64
#define CHAT_DISC_DATA_MAX 1024 /* largest node data accepted or written */

/* One instance of a service, as read from its znode. */
typedef struct chat_disc_entry {
	char node[CHAT_DISC_ID_MAX + 16]; /* znode name, "edge-1-0000000003" */
	char id[CHAT_DISC_ID_MAX];        /* "edge-1" */
	char service[CHAT_DISC_SERVICE_MAX];
	char rpc[CHAT_URL_MAX];           /* "tcp://127.0.0.1:7001" */
	char pub[CHAT_URL_MAX];           /* "public"; "" when absent */
	char version[32];                 /* "" when absent */
	int64_t load;                     /* 0 when absent */
	int64_t pid;                      /* 0 when absent */
} chat_disc_entry;

/* Parse a node's JSON data (untrusted bytes; len need not be
 * NUL-terminated). Requires a JSON object with non-empty string members
 * "id" and "rpc" that fit; "service", "public", "version" (strings),
 * "load" and "pid" (integers) are optional; other members are ignored.
 * Returns 0 with *out filled (out->node untouched), or -1. */
int chat_disc_parse(const char *data, size_t len, chat_disc_entry *out);

/* Write e (id, service, rpc, and pub/version when not empty, load, pid)
 * as the JSON object above. Returns its length, or -1 when it does not
 * fit in outlen. */
int chat_disc_format(const chat_disc_entry *e, char *out, size_t outlen);

typedef struct chat_disc chat_disc;

/* A handle on the ensemble hosts ("127.0.0.1:2181,host2:2181"), with the
 * session timeout to ask for (<= 0: 10000 ms; the server clamps it to
 * [2, 20] ticks). Connects in the background; does not wait. NULL with a
 * reason in err on bad arguments or when out of memory. */
chat_disc *chat_disc_new(const char *hosts, int session_timeout_ms, char *err,
                         size_t errlen);

/* Register this process as instance id of service with data json (at
 * most CHAT_DISC_DATA_MAX-1 bytes). One registration per handle. The node
 * is (re)created by the background thread whenever it is missing (first
 * connect, session expiry, a wiped server). Waits up to wait_ms for the
 * node to exist. Returns 0 when it exists, 1 when it is still pending
 * (ZooKeeper unreachable: it will be created when it comes back), -1 on
 * bad arguments or a second registration. */
int chat_disc_register(chat_disc *d, const char *service, const char *id,
                       const char *json, int wait_ms);

/* Replace the data of the registered node (load updates). Does not
 * block: the background thread writes it (again after a reconnect).
 * Returns 0, or -1 when nothing is registered or json is too long. */
int chat_disc_set_data(chat_disc *d, const char *json);

/* The full path of the registered node, "" while it does not exist.
 * Returns 0 when it exists, -1 otherwise. */
int chat_disc_node_path(chat_disc *d, char *out, size_t outlen);

/* Called on the background thread with the current instances of service
 * (sorted by id, one per id: the newest node wins), once after the first
 * successful read and then after every change. entries live only during
 * the call. It may call chat_disc_list, chat_rpc_client_set_urls and the
 * like, but not chat_disc_watch/unwatch/bind/free. */
typedef void (*chat_disc_fn)(void *arg, const char *service,
                             const chat_disc_entry *entries, size_t n);

/* Watch a service (services are also watched implicitly by
 * chat_disc_list). Does not block. Returns 0 or -1 (bad name, too many
 * watches, out of memory). */
int chat_disc_watch(chat_disc *d, const char *service, chat_disc_fn fn,
                    void *arg);

/* Remove the watches registered with fn and arg. When it returns, fn is
 * not running and will not be called with arg again. */
void chat_disc_unwatch(chat_disc *d, chat_disc_fn fn, void *arg);

/* Copy up to max cached instances of service into entries (sorted by id)
 * and return how many there are in the cache (which may exceed max). A
 * service not yet watched starts being watched; the call then waits up to
 * wait_ms for its first read. Never waits on ZooKeeper otherwise. */
size_t chat_disc_list(chat_disc *d, const char *service,
                      chat_disc_entry *entries, size_t max, int wait_ms);

/* The cached instance of service with the lowest load (ties: the first
 * by id) into *out. 0, or -1 when there is none. */
int chat_disc_least_loaded(chat_disc *d, const char *service,
                           chat_disc_entry *out, int wait_ms);

/* Wait until the cache of service (watched from now on) holds at least
 * min_n instances, or up to wait_ms. Returns the number cached. For
 * starting up and for tests. */
size_t chat_disc_wait(chat_disc *d, const char *service, size_t min_n,
                      int wait_ms);

/* Keep client's URL set equal to the "rpc" of service's instances
 * (chat_rpc_client_set_urls on every change; an empty set makes calls
 * fail with UNAVAILABLE at once). Unbind before freeing the client. */
int chat_disc_bind_client(chat_disc *d, const char *service,
                          chat_rpc_client *client);
void chat_disc_unbind_client(chat_disc *d, chat_rpc_client *client);

/* Whether the handle is connected now (1) or not (0). */
int chat_disc_connected(chat_disc *d);

/* Counters for Admin.Health and tests: sessions established (the first
 * one included; > 1 means an expiry was survived) and reads done. */
uint64_t chat_disc_sessions(chat_disc *d);

/* Delete the registered node, close the session, stop the thread, free.
 * Blocks for at most about 3 s when ZooKeeper is away. Accepts NULL. */
void chat_disc_free(chat_disc *d);

#endif
