/*
 * fleet_harness: what a C integration test needs from the local fleet it
 * runs on (started by tests/fleet/run_with_fleet.sh, which sets
 * CHAT_FLEET_DIR and CHAT_FLEET_CTL).
 */
#ifndef FLEET_HARNESS_H
#define FLEET_HARNESS_H

#include <stddef.h>

/*
 * Copies the value of NAME from the fleet's fleet.env (read afresh on each
 * call: `fleet.sh add` rewrites it) into out, NUL-terminated. Falls back to
 * the environment variable NAME when the file has no such line. Returns 0,
 * or -1 when the name is unknown or the value does not fit in outlen.
 */
int fleet_env(const char *name, char *out, size_t outlen);

/*
 * Runs `fleet.sh VERB NAME` (VERB: stop, start, restart, kill; NAME: zk,
 * redis, pg, kafka or an instance such as edge-2), or `fleet.sh add NAME`
 * for VERB "add", on this test's fleet. Blocks until it exits (a start
 * returns once the server or instance is ready). Its output goes to this
 * process's stdout and stderr. Returns 0 when it exited 0, -1 otherwise
 * (also for an unknown VERB).
 */
int fleet_ctl(const char *verb, const char *name);

#endif
