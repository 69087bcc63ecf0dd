/* The set of edges the api hands out: a static list (embedded mode) or
 * the live instances of service "edge" in ZooKeeper (fleet), replaced as
 * a whole on every change. Thread-safe.
 *
 * A log-in gets the edge with the lowest load + handed, where load is
 * what the edge last reported (its live sessions, every ~2 s) and handed
 * counts the times it was handed out in the last 2-3 s and not yet in a
 * report (so a burst of log-ins between two reports spreads instead of
 * piling onto one edge). Ties go to the first by id: over a static list
 * (load 0) this is round-robin. */
#ifndef API_EDGES_H
#define API_EDGES_H

#include <stddef.h>
#include <stdint.h>

#include "chat_discovery.h"

typedef struct api_edges api_edges;

/* An empty set; with_load: GET /v1/edges shows each edge's load. NULL
 * when out of memory. */
api_edges *api_edges_new(int with_load);

void api_edges_free(api_edges *s);

/* Replace the set with the entries that have an id and a public url
 * (others are skipped). An edge that stays keeps its handed count unless
 * its load changed. 0, or -1 when out of memory (the set is unchanged). */
int api_edges_set(api_edges *s, const chat_disc_entry *e, size_t n);

/* Pick an edge as above and count it as handed out: its url into url
 * (and its id into id when not NULL). 0, or -1 when the set is empty. */
int api_edges_pick(api_edges *s, char *url, size_t urllen, char *id,
                   size_t idlen);

/* Check that every edge's RPC port takes a TCP connection, all edges at
 * once, waiting at most timeout_ms (plus name resolution). An edge whose
 * port refuses (its process died: kill -9, crash) or does not answer in
 * time is marked down, one that answers up again. A down edge is neither
 * handed out nor listed, unless every edge is down: then they all are, as
 * if none were (the probe itself may be what fails). ZooKeeper forgets a
 * dead edge only when its session expires (10 s by default); this makes
 * the api stop handing it out within one probe period. Entries whose rpc
 * is not tcp://HOST:PORT, and names that do not resolve, are left as
 * they are. Blocking; call it from one thread. Returns how many edges are
 * down after the round. */
int api_edges_probe(api_edges *s, int timeout_ms);

/* Whether the edge id is marked down by the probe (0 when unknown). */
int api_edges_down(api_edges *s, const char *id);

/* How many edges the set holds. */
size_t api_edges_count(api_edges *s);

/* The GET /v1/edges body, {"edges":[{"id":...,"url":...}...]} (with
 * "load" when with_load), malloc'ed with pre bytes of headroom before
 * it; *len is the body's length. NULL when out of memory. */
char *api_edges_json(api_edges *s, size_t pre, size_t *len);

#endif
