/* chatctl's targets: the instances registered in ZooKeeper under
 * /chat/services/<service>/, read once through the discovery module's
 * watches (which report a service with no instance too, unlike
 * chat_disc_list, which waits for at least one), or the --rpc URLs. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#include "chat_util.h"
#include "ctl.h"

#define SERVICES_MAX  16
#define ZK_SESSION_MS 6000

struct disc_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *const *services;
	size_t n_services;
	int read[SERVICES_MAX];
	chat_disc_entry *e[SERVICES_MAX];
	size_t n[SERVICES_MAX];
	int oom;
};

/* A watch callback (the discovery thread): keep the latest list. */
static void on_service(void *arg, const char *service,
                       const chat_disc_entry *entries, size_t n)
{
	struct disc_wait *w = arg;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->n_services; i++) {
		chat_disc_entry *copy = NULL;
		if (strcmp(w->services[i], service))
			continue;
		if (n && !(copy = malloc(n * sizeof *copy))) {
			w->oom = 1;
			break;
		}
		if (n)
			memcpy(copy, entries, n * sizeof *copy);
		free(w->e[i]);
		w->e[i] = copy;
		w->n[i] = n;
		w->read[i] = 1;
	}
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int all_read(const struct disc_wait *w)
{
	for (size_t i = 0; i < w->n_services; i++)
		if (!w->read[i])
			return 0;
	return 1;
}

/* ZooKeeper's C client logs to stderr by itself: only with --verbose. */
static void quiet_zookeeper(int verbose)
{
	static FILE *devnull;
	if (verbose)
		return;
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	if (devnull)
		zoo_set_log_stream(devnull);
}

static int from_zk(const ctl_args *a, const char *const *services,
                   size_t n_services, ctl_inst **out, size_t *n, char *err,
                   size_t errlen)
{
	struct disc_wait w;
	struct timespec ts;
	chat_disc *d;
	ctl_inst *v = NULL;
	size_t total = 0, k = 0;
	int rv = -1, timed_out = 0;

	if (n_services > SERVICES_MAX) {
		snprintf(err, errlen, "too many services");
		return -1;
	}
	memset(&w, 0, sizeof w);
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	w.services = services;
	w.n_services = n_services;

	quiet_zookeeper(a->verbose);
	if (!(d = chat_disc_new(a->zk, ZK_SESSION_MS, err, errlen)))
		goto out;
	for (size_t i = 0; i < n_services; i++)
		if (chat_disc_watch(d, services[i], on_service, &w)) {
			snprintf(err, errlen, "cannot watch service %s",
			         services[i]);
			goto out;
		}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += a->timeout_ms / 1000;
	ts.tv_nsec += (long)(a->timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w.mu);
	while (!all_read(&w) && !w.oom)
		if (pthread_cond_timedwait(&w.cv, &w.mu, &ts) != 0) {
			timed_out = !all_read(&w);
			break;
		}
	pthread_mutex_unlock(&w.mu);
	/* From here on the callback does not run. */
	chat_disc_unwatch(d, on_service, &w);
	if (w.oom) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (timed_out) {
		snprintf(err, errlen,
		         "ZooKeeper at %s did not answer within %d ms%s", a->zk,
		         a->timeout_ms,
		         chat_disc_connected(d) ? "" : " (not connected)");
		goto out;
	}
	for (size_t i = 0; i < n_services; i++)
		total += w.n[i];
	if (!(v = calloc(total ? total : 1, sizeof *v))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_services; i++)
		for (size_t j = 0; j < w.n[i]; j++) {
			const chat_disc_entry *e = &w.e[i][j];
			ctl_inst *in = &v[k++];
			chat_strlcpy(in->service,
			             e->service[0] ? e->service : services[i],
			             sizeof in->service);
			chat_strlcpy(in->id, e->id, sizeof in->id);
			chat_strlcpy(in->node, e->node, sizeof in->node);
			chat_strlcpy(in->rpc, e->rpc, sizeof in->rpc);
			chat_strlcpy(in->version, e->version,
			             sizeof in->version);
			in->load = e->load;
			in->pid = e->pid;
		}
	*out = v;
	*n = total;
	v = NULL;
	rv = 0;
out:
	chat_disc_free(d);
	free(v);
	for (size_t i = 0; i < n_services; i++)
		free(w.e[i]);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return rv;
}

int ctl_targets(const ctl_args *a, const char *const *services,
                size_t n_services, ctl_inst **out, size_t *n, char *err,
                size_t errlen)
{
	ctl_inst *v;

	*out = NULL;
	*n = 0;
	if (!a->n_rpc)
		return from_zk(a, services, n_services, out, n, err, errlen);
	if (!(v = calloc(a->n_rpc, sizeof *v))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < a->n_rpc; i++)
		chat_strlcpy(v[i].rpc, a->rpc[i], sizeof v[i].rpc);
	*out = v;
	*n = a->n_rpc;
	return 0;
}
