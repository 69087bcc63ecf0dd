/* Service discovery on ZooKeeper (see chat_discovery.h).
 *
 * Threads: the library's IO and completion threads call watcher(), which
 * only sets flags under d->mu and wakes the discovery thread. The
 * discovery thread makes every (synchronous) ZooKeeper call, never while
 * holding d->mu: a sync call waits for the completion thread, which may
 * be waiting for d->mu in watcher(). Watch callbacks run on the discovery
 * thread under d->cb_mu only.
 *
 * Sessions: besides SESSION_EXPIRED from the server, a handle that has
 * not been connected for longer than its session timeout is given up
 * and replaced by a new session. The server has expired the old one by
 * then (or will soon: its node then disappears, and the newest node of an
 * id wins meanwhile), and a server that lost its data refuses the old
 * session without ever saying "expired" (it has not seen the client's
 * last zxid), so waiting for the server would wait forever. */
#include "chat_discovery.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include "chat_json.h"
#include "chat_log.h"
#include "chat_util.h"

#define SVC "discovery"
#define MAX_SERVICES 16
#define MAX_WATCHES 32
#define MAX_CHILDREN 4096
#define PATH_MAX_LEN 256
#define RETRY_MS 200    /* after a failed step */
#define TICK_MS 500     /* idle wake-up: local expiry checks */

/* ---- JSON -------------------------------------------------------------- */

int chat_disc_parse(const char *data, size_t len, chat_disc_entry *out)
{
	chat_disc_entry e;
	int64_t v;

	if (!data || len == 0 || len >= CHAT_DISC_DATA_MAX)
		return -1;
	memset(&e, 0, sizeof e);
	if (chat_json_get_string(data, len, "id", e.id, sizeof e.id) <= 0 ||
	    chat_json_get_string(data, len, "rpc", e.rpc, sizeof e.rpc) <= 0)
		return -1;
	/* Optional members: absent is fine, present with a bad type is not. */
	if (chat_json_get_string(data, len, "service", e.service,
	                         sizeof e.service) < -1 ||
	    chat_json_get_string(data, len, "public", e.pub, sizeof e.pub) <
	        -1 ||
	    chat_json_get_string(data, len, "version", e.version,
	                         sizeof e.version) < -1)
		return -1;
	switch (chat_json_get_int(data, len, "load", &v)) {
	case 0:
		e.load = v;
		break;
	case -1:
		break;
	default:
		return -1;
	}
	switch (chat_json_get_int(data, len, "pid", &v)) {
	case 0:
		e.pid = v;
		break;
	case -1:
		break;
	default:
		return -1;
	}
	memcpy(e.node, out->node, sizeof e.node);
	*out = e;
	return 0;
}

static int put_str(char *out, size_t outlen, size_t *pos, const char *key,
                   const char *val)
{
	char q[6 * CHAT_URL_MAX + 8]; /* \u00XX for every byte at worst */
	int n;
	if (chat_json_quote(val, q, sizeof q) < 0)
		return -1;
	n = snprintf(out + *pos, outlen - *pos, "%s\"%s\":%s",
	             *pos > 1 ? "," : "", key, q);
	if (n < 0 || (size_t)n >= outlen - *pos)
		return -1;
	*pos += (size_t)n;
	return 0;
}

int chat_disc_format(const chat_disc_entry *e, char *out, size_t outlen)
{
	size_t pos = 1;
	int n;
	if (outlen < 3)
		return -1;
	out[0] = '{';
	out[1] = '\0';
	if (put_str(out, outlen, &pos, "id", e->id) ||
	    put_str(out, outlen, &pos, "service", e->service) ||
	    put_str(out, outlen, &pos, "rpc", e->rpc) ||
	    (e->pub[0] && put_str(out, outlen, &pos, "public", e->pub)) ||
	    (e->version[0] &&
	     put_str(out, outlen, &pos, "version", e->version)))
		goto fail;
	n = snprintf(out + pos, outlen - pos, ",\"load\":%lld,\"pid\":%lld}",
	             (long long)e->load, (long long)e->pid);
	if (n < 0 || (size_t)n >= outlen - pos)
		goto fail;
	return (int)(pos + (size_t)n);
fail:
	out[0] = '\0';
	return -1;
}

/* ---- state ------------------------------------------------------------- */

struct service {
	char name[CHAT_DISC_SERVICE_MAX];
	int dirty;   /* needs a read */
	int read_ok; /* read at least once */
	chat_disc_entry *e;
	size_t n;
	uint64_t gen; /* bumped on every change of e */
};

struct watch {
	char service[CHAT_DISC_SERVICE_MAX];
	chat_disc_fn fn;
	void *arg;
	uint64_t seen_gen; /* 0: not called yet */
};

struct chat_disc {
	pthread_mutex_t mu;
	pthread_cond_t work; /* wakes the thread */
	pthread_cond_t done; /* wakes waiters on reads and registration */
	pthread_mutex_t cb_mu;
	pthread_t thread;
	int started, stop;

	char hosts[512];
	int timeout_ms;
	zhandle_t *zh;          /* the thread's (and free's after join) */

	/* Raised by watcher() (under mu). */
	int connected, expired;
	int64_t down_since_ms;  /* when the handle lost its connection */
	int reg_check;          /* verify the registered node */

	/* Registration (under mu). */
	int reg;
	char reg_service[CHAT_DISC_SERVICE_MAX], reg_id[CHAT_DISC_ID_MAX];
	char reg_json[CHAT_DISC_DATA_MAX];
	uint64_t reg_data_gen, reg_written_gen;
	char reg_path[PATH_MAX_LEN]; /* "" while it does not exist */

	struct service svcs[MAX_SERVICES];
	int nsvcs;
	struct watch watches[MAX_WATCHES];
	int nwatches;

	atomic_uint_fast64_t sessions, reads;
};

static int name_ok(const char *s, size_t max)
{
	size_t n = 0;
	if (!s)
		return 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return n > 0 && n < max;
}

static struct service *svc_find(chat_disc *d, const char *name)
{
	for (int i = 0; i < d->nsvcs; i++)
		if (strcmp(d->svcs[i].name, name) == 0)
			return &d->svcs[i];
	return NULL;
}

/* Find or add (under mu). */
static struct service *svc_get(chat_disc *d, const char *name)
{
	struct service *s = svc_find(d, name);
	if (s || d->nsvcs == MAX_SERVICES)
		return s;
	s = &d->svcs[d->nsvcs++];
	memset(s, 0, sizeof *s);
	chat_strlcpy(s->name, name, sizeof s->name);
	s->dirty = 1;
	pthread_cond_signal(&d->work);
	return s;
}

static void mark_all_dirty(chat_disc *d)
{
	for (int i = 0; i < d->nsvcs; i++)
		d->svcs[i].dirty = 1;
}

/* Mark the service of a path under CHAT_DISC_ROOT dirty (under mu). */
static void mark_path(chat_disc *d, const char *path)
{
	const size_t rl = sizeof CHAT_DISC_ROOT - 1;
	char name[CHAT_DISC_SERVICE_MAX];
	const char *p, *slash;
	struct service *s;
	size_t n;
	if (!path || strncmp(path, CHAT_DISC_ROOT "/", rl + 1) != 0)
		return;
	p = path + rl + 1;
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n == 0 || n >= sizeof name)
		return;
	memcpy(name, p, n);
	name[n] = '\0';
	if ((s = svc_find(d, name)))
		s->dirty = 1;
}

static void watcher(zhandle_t *zh, int type, int state, const char *path,
                    void *ctx)
{
	chat_disc *d = ctx;
	(void)zh;
	pthread_mutex_lock(&d->mu);
	if (type == ZOO_SESSION_EVENT) {
		if (state == ZOO_CONNECTED_STATE) {
			if (!d->connected)
				chat_info(SVC, "zk_connected", "hosts=%s",
				          d->hosts);
			d->connected = 1;
			d->reg_check = 1;
			mark_all_dirty(d);
		} else if (state == ZOO_EXPIRED_SESSION_STATE ||
		           state == ZOO_AUTH_FAILED_STATE) {
			d->connected = 0;
			d->expired = 1;
		} else {
			if (d->connected) {
				chat_warn(SVC, "zk_disconnected",
				          "hosts=%s state=%d", d->hosts,
				          state);
				d->down_since_ms = chat_mono_ms();
			}
			d->connected = 0;
		}
	} else {
		if (path && d->reg_path[0] && strcmp(path, d->reg_path) == 0)
			d->reg_check = 1;
		if (type == ZOO_NOTWATCHING_EVENT)
			mark_all_dirty(d);
		else
			mark_path(d, path);
	}
	pthread_cond_signal(&d->work);
	pthread_mutex_unlock(&d->mu);
}

static void zk_log(const char *message)
{
	chat_debug(SVC, "zookeeper", "msg=\"%s\"", message);
}

/* ---- the discovery thread's steps (no lock held on ZooKeeper calls) ---- */

static int new_session(chat_disc *d)
{
	zhandle_t *zh;
	if (d->zh) {
		zookeeper_close(d->zh);
		d->zh = NULL;
	}
	/* Reset before the new handle exists: its IO thread may report
	 * CONNECTED before zookeeper_init2 even returns, and clearing
	 * `connected` after that would leave the session unused until it is
	 * given up a session timeout later. */
	pthread_mutex_lock(&d->mu);
	d->expired = 0;
	d->connected = 0;
	d->down_since_ms = chat_mono_ms();
	d->reg_path[0] = '\0';
	d->reg_written_gen = 0;
	mark_all_dirty(d);
	pthread_mutex_unlock(&d->mu);
	zh = zookeeper_init2(d->hosts, watcher, d->timeout_ms, NULL, d, 0,
	                     zk_log);
	if (!zh) {
		chat_warn(SVC, "zk_init_failed", "hosts=%s errno=%d", d->hosts,
		          errno);
		return -1;
	}
	d->zh = zh;
	atomic_fetch_add(&d->sessions, 1);
	return 0;
}

static int create_parents(chat_disc *d, const char *svc_path)
{
	const char *paths[3] = {"/chat", CHAT_DISC_ROOT, svc_path};
	for (int i = 0; i < 3; i++) {
		int rc = zoo_create(d->zh, paths[i], NULL, -1,
		                    &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
		if (rc != ZOK && rc != ZNODEEXISTS) {
			chat_debug(SVC, "create_failed", "path=%s rc=%s",
			           paths[i], zerror(rc));
			return -1;
		}
	}
	return 0;
}

/* A node of ours (this session) for the registered id, created by an
 * attempt whose answer was lost. 1 found (path in out), 0 none, -1 error. */
static int find_own(chat_disc *d, const char *svc_path, const char *id,
                    char *out, size_t outlen)
{
	struct String_vector kids = {0, NULL};
	const clientid_t *cid = zoo_client_id(d->zh);
	size_t idlen = strlen(id);
	int found = 0, rc;

	rc = zoo_get_children(d->zh, svc_path, 0, &kids);
	if (rc == ZNONODE)
		return 0;
	if (rc != ZOK)
		return -1;
	for (int i = 0; i < kids.count && !found; i++) {
		struct Stat st;
		char path[PATH_MAX_LEN];
		if (strncmp(kids.data[i], id, idlen) != 0 ||
		    kids.data[i][idlen] != '-')
			continue;
		snprintf(path, sizeof path, "%s/%s", svc_path, kids.data[i]);
		if (zoo_exists(d->zh, path, 0, &st) == ZOK && cid &&
		    st.ephemeralOwner == cid->client_id) {
			chat_strlcpy(out, path, outlen);
			found = 1;
		}
	}
	deallocate_String_vector(&kids);
	return found;
}

/* Make sure the registered node exists and holds the latest data. */
static int ensure_registered(chat_disc *d)
{
	char svc[CHAT_DISC_SERVICE_MAX], id[CHAT_DISC_ID_MAX];
	char json[CHAT_DISC_DATA_MAX], path[PATH_MAX_LEN], svc_path[128];
	char base[PATH_MAX_LEN], created[PATH_MAX_LEN];
	uint64_t gen, written;
	struct Stat st;
	int check, rc;

	pthread_mutex_lock(&d->mu);
	if (!d->reg) {
		pthread_mutex_unlock(&d->mu);
		return 0;
	}
	memcpy(svc, d->reg_service, sizeof svc);
	memcpy(id, d->reg_id, sizeof id);
	memcpy(json, d->reg_json, sizeof json);
	memcpy(path, d->reg_path, sizeof path);
	gen = d->reg_data_gen;
	written = d->reg_written_gen;
	check = d->reg_check;
	d->reg_check = 0;
	pthread_mutex_unlock(&d->mu);

	if (path[0] && check) {
		rc = zoo_exists(d->zh, path, 0, &st);
		if (rc == ZNONODE) {
			chat_warn(SVC, "node_lost", "path=%s", path);
			path[0] = '\0';
		} else if (rc != ZOK) {
			pthread_mutex_lock(&d->mu);
			d->reg_check = 1;
			pthread_mutex_unlock(&d->mu);
			return -1;
		}
	}
	snprintf(svc_path, sizeof svc_path, "%s/%s", CHAT_DISC_ROOT, svc);
	if (!path[0]) {
		if (create_parents(d, svc_path) != 0)
			return -1;
		rc = find_own(d, svc_path, id, path, sizeof path);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			written = 0; /* rewrite the data to be sure */
		} else {
			snprintf(base, sizeof base, "%s/%s-", svc_path, id);
			rc = zoo_create(d->zh, base, json, (int)strlen(json),
			                &ZOO_OPEN_ACL_UNSAFE,
			                ZOO_EPHEMERAL_SEQUENTIAL, created,
			                sizeof created);
			if (rc != ZOK) {
				/* CONNECTION_LOSS: it may exist; find_own
				 * finds it next time. */
				chat_debug(SVC, "register_failed",
				           "path=%s rc=%s", base, zerror(rc));
				return -1;
			}
			chat_strlcpy(path, created, sizeof path);
			written = gen;
			chat_info(SVC, "registered", "path=%s", path);
		}
		pthread_mutex_lock(&d->mu);
		chat_strlcpy(d->reg_path, path, sizeof d->reg_path);
		d->reg_written_gen = written;
		pthread_cond_broadcast(&d->done);
		pthread_mutex_unlock(&d->mu);
	}
	if (written != gen) {
		rc = zoo_set(d->zh, path, json, (int)strlen(json), -1);
		if (rc == ZNONODE) {
			pthread_mutex_lock(&d->mu);
			d->reg_path[0] = '\0';
			pthread_mutex_unlock(&d->mu);
			return -1;
		}
		if (rc != ZOK)
			return -1;
		pthread_mutex_lock(&d->mu);
		d->reg_written_gen = gen;
		pthread_mutex_unlock(&d->mu);
	}
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const chat_disc_entry *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	/* Same id: the newest node (largest sequence) first. */
	return c ? c : -strcmp(x->node, y->node);
}

static int same_entries(const chat_disc_entry *a, size_t na,
                        const chat_disc_entry *b, size_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* Read the children of a service and their data, re-arming the watches.
 * On success replaces the cache (bumping gen on a change). */
static int read_service(chat_disc *d, const char *name)
{
	struct String_vector kids = {0, NULL};
	chat_disc_entry *e = NULL;
	char path[PATH_MAX_LEN], buf[CHAT_DISC_DATA_MAX];
	struct service *s;
	size_t n = 0;
	int rc, ok = 0, nkids;

	snprintf(path, sizeof path, "%s/%.31s", CHAT_DISC_ROOT, name);
	rc = zoo_wget_children(d->zh, path, watcher, d, &kids);
	if (rc == ZNONODE) {
		struct Stat st;
		/* Nobody registered yet: watch for the parent's creation. */
		rc = zoo_wexists(d->zh, path, watcher, d, &st);
		if (rc != ZNONODE && rc != ZOK)
			return -1;
		if (rc == ZOK) /* created meanwhile: read again */
			return -1;
		kids.count = 0;
	} else if (rc != ZOK) {
		return -1;
	}
	nkids = kids.count < MAX_CHILDREN ? kids.count : MAX_CHILDREN;
	if (nkids > 0 && !(e = calloc((size_t)nkids, sizeof *e)))
		goto out;
	for (int i = 0; i < nkids; i++) {
		char cpath[PATH_MAX_LEN];
		int len = (int)sizeof buf - 1;
		struct Stat st;
		if (strlen(kids.data[i]) >= sizeof e[n].node)
			continue;
		snprintf(cpath, sizeof cpath, "%.127s/%.79s", path,
		         kids.data[i]);
		rc = zoo_wget(d->zh, cpath, watcher, d, buf, &len, &st);
		if (rc == ZNONODE)
			continue; /* gone meanwhile; the child watch fired */
		if (rc != ZOK)
			goto out;
		if (len <= 0)
			continue;
		chat_strlcpy(e[n].node, kids.data[i], sizeof e[n].node);
		if (chat_disc_parse(buf, (size_t)len, &e[n]) != 0) {
			chat_debug(SVC, "bad_node", "path=%s", cpath);
			continue;
		}
		if (!e[n].service[0])
			chat_strlcpy(e[n].service, name, sizeof e[n].service);
		n++;
	}
	/* Sort by id, newest first within an id, keep the first of each. */
	if (n > 1) {
		size_t k = 1;
		qsort(e, n, sizeof *e, cmp_entry);
		for (size_t i = 1; i < n; i++)
			if (strcmp(e[i].id, e[k - 1].id) != 0)
				e[k++] = e[i];
		n = k;
	}
	ok = 1;
	atomic_fetch_add(&d->reads, 1);
	pthread_mutex_lock(&d->mu);
	if ((s = svc_find(d, name))) {
		if (!s->read_ok || !same_entries(s->e, s->n, e, n)) {
			free(s->e);
			s->e = e;
			s->n = n;
			s->gen++;
			e = NULL;
		}
		s->read_ok = 1;
		pthread_cond_broadcast(&d->done);
	}
	pthread_mutex_unlock(&d->mu);
out:
	free(e);
	deallocate_String_vector(&kids);
	return ok ? 0 : -1;
}

/* Call the watches whose service changed since they last saw it. */
static void run_callbacks(chat_disc *d)
{
	pthread_mutex_lock(&d->cb_mu);
	for (int i = 0;; i++) {
		struct watch w;
		struct service *s;
		chat_disc_entry *copy = NULL;
		size_t n = 0;
		uint64_t gen;

		pthread_mutex_lock(&d->mu);
		if (i >= d->nwatches) {
			pthread_mutex_unlock(&d->mu);
			break;
		}
		w = d->watches[i];
		s = svc_find(d, w.service);
		if (!s || !s->read_ok || s->gen == w.seen_gen) {
			pthread_mutex_unlock(&d->mu);
			continue;
		}
		gen = s->gen;
		n = s->n;
		if (n && !(copy = malloc(n * sizeof *copy))) {
			pthread_mutex_unlock(&d->mu);
			continue; /* retried on the next change */
		}
		if (n)
			memcpy(copy, s->e, n * sizeof *copy);
		d->watches[i].seen_gen = gen;
		pthread_mutex_unlock(&d->mu);
		w.fn(w.arg, w.service, copy, n);
		free(copy);
	}
	pthread_mutex_unlock(&d->cb_mu);
}

/* Whether the thread has something it can do now (under mu). */
static int work_pending(chat_disc *d)
{
	if (d->stop || d->expired || !d->zh)
		return 1;
	if (!d->connected)
		return 0; /* the tick checks for a session to give up */
	if (d->reg && (!d->reg_path[0] || d->reg_check ||
	               d->reg_written_gen != d->reg_data_gen))
		return 1;
	for (int i = 0; i < d->nsvcs; i++)
		if (d->svcs[i].dirty)
			return 1;
	for (int i = 0; i < d->nwatches; i++) {
		struct service *s = svc_find(d, d->watches[i].service);
		if (s && s->read_ok && s->gen != d->watches[i].seen_gen)
			return 1;
	}
	return 0;
}

static void *disc_thread(void *arg)
{
	chat_disc *d = arg;
	int failed = 0;

	for (;;) {
		char dirty[MAX_SERVICES][CHAT_DISC_SERVICE_MAX];
		int ndirty = 0, expired, connected, need_reg;
		int64_t now = chat_mono_ms();
		struct timespec ts;

		pthread_mutex_lock(&d->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(failed ? RETRY_MS : TICK_MS) * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (failed || !work_pending(d))
			pthread_cond_timedwait(&d->work, &d->mu, &ts);
		if (d->stop) {
			pthread_mutex_unlock(&d->mu);
			break;
		}
		now = chat_mono_ms();
		expired = d->expired || !d->zh;
		connected = d->connected;
		if (!expired && !connected && d->zh &&
		    now - d->down_since_ms > zoo_recv_timeout(d->zh)) {
			chat_warn(SVC, "session_given_up",
			          "hosts=%s down_ms=%lld", d->hosts,
			          (long long)(now - d->down_since_ms));
			expired = 1;
		}
		need_reg = d->reg && (!d->reg_path[0] || d->reg_check ||
		                      d->reg_written_gen != d->reg_data_gen);
		for (int i = 0; i < d->nsvcs; i++)
			if (d->svcs[i].dirty) {
				d->svcs[i].dirty = 0;
				memcpy(dirty[ndirty++], d->svcs[i].name,
				       CHAT_DISC_SERVICE_MAX);
			}
		pthread_mutex_unlock(&d->mu);

		failed = 0;
		if (expired) {
			if (d->zh)
				chat_warn(SVC, "session_expired", "hosts=%s",
				          d->hosts);
			failed = new_session(d) != 0;
			continue;
		}
		if (!connected || zoo_state(d->zh) != ZOO_CONNECTED_STATE) {
			/* Keep the work for later. */
			failed = 1;
			pthread_mutex_lock(&d->mu);
			for (int i = 0; i < ndirty; i++) {
				struct service *s = svc_find(d, dirty[i]);
				if (s)
					s->dirty = 1;
			}
			pthread_mutex_unlock(&d->mu);
			continue;
		}
		if (need_reg && ensure_registered(d) != 0)
			failed = 1;
		for (int i = 0; i < ndirty; i++) {
			if (read_service(d, dirty[i]) == 0)
				continue;
			failed = 1;
			pthread_mutex_lock(&d->mu);
			struct service *s = svc_find(d, dirty[i]);
			if (s)
				s->dirty = 1;
			pthread_mutex_unlock(&d->mu);
		}
		run_callbacks(d);
	}
	return NULL;
}

/* ---- public API -------------------------------------------------------- */

chat_disc *chat_disc_new(const char *hosts, int session_timeout_ms, char *err,
                         size_t errlen)
{
	chat_disc *d;
	if (!hosts || !hosts[0] || strlen(hosts) >= sizeof d->hosts) {
		chat_errf(err, errlen, "discovery: bad ZooKeeper hosts '%s'",
		          hosts ? hosts : "");
		return NULL;
	}
	d = calloc(1, sizeof *d);
	if (!d) {
		chat_errf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->cb_mu, NULL);
	pthread_cond_init(&d->work, NULL);
	pthread_cond_init(&d->done, NULL);
	chat_strlcpy(d->hosts, hosts, sizeof d->hosts);
	d->timeout_ms = session_timeout_ms > 0 ? session_timeout_ms : 10000;
	zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
	if (new_session(d) != 0) {
		chat_errf(err, errlen, "discovery: cannot use ZooKeeper hosts "
		                       "'%s'", hosts);
		goto fail;
	}
	if (pthread_create(&d->thread, NULL, disc_thread, d) != 0) {
		chat_errf(err, errlen, "discovery: cannot start its thread");
		goto fail;
	}
	d->started = 1;
	return d;
fail:
	chat_disc_free(d);
	return NULL;
}

static void abs_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int chat_disc_register(chat_disc *d, const char *service, const char *id,
                       const char *json, int wait_ms)
{
	struct timespec ts;
	int rv;
	if (!name_ok(service, CHAT_DISC_SERVICE_MAX) ||
	    !name_ok(id, CHAT_DISC_ID_MAX) || !json ||
	    strlen(json) >= CHAT_DISC_DATA_MAX)
		return -1;
	pthread_mutex_lock(&d->mu);
	if (d->reg) {
		pthread_mutex_unlock(&d->mu);
		return -1;
	}
	d->reg = 1;
	chat_strlcpy(d->reg_service, service, sizeof d->reg_service);
	chat_strlcpy(d->reg_id, id, sizeof d->reg_id);
	chat_strlcpy(d->reg_json, json, sizeof d->reg_json);
	d->reg_data_gen = 1;
	pthread_cond_signal(&d->work);
	abs_deadline(&ts, wait_ms > 0 ? wait_ms : 0);
	while (!d->reg_path[0] && wait_ms > 0 &&
	       pthread_cond_timedwait(&d->done, &d->mu, &ts) == 0)
		;
	rv = d->reg_path[0] ? 0 : 1;
	pthread_mutex_unlock(&d->mu);
	return rv;
}

int chat_disc_set_data(chat_disc *d, const char *json)
{
	if (!json || strlen(json) >= CHAT_DISC_DATA_MAX)
		return -1;
	pthread_mutex_lock(&d->mu);
	if (!d->reg) {
		pthread_mutex_unlock(&d->mu);
		return -1;
	}
	if (strcmp(d->reg_json, json) != 0) {
		chat_strlcpy(d->reg_json, json, sizeof d->reg_json);
		d->reg_data_gen++;
		pthread_cond_signal(&d->work);
	}
	pthread_mutex_unlock(&d->mu);
	return 0;
}

int chat_disc_node_path(chat_disc *d, char *out, size_t outlen)
{
	int rv;
	pthread_mutex_lock(&d->mu);
	chat_strlcpy(out, d->reg_path, outlen);
	rv = d->reg_path[0] ? 0 : -1;
	pthread_mutex_unlock(&d->mu);
	return rv;
}

int chat_disc_watch(chat_disc *d, const char *service, chat_disc_fn fn,
                    void *arg)
{
	int rv = -1;
	if (!name_ok(service, CHAT_DISC_SERVICE_MAX) || !fn)
		return -1;
	pthread_mutex_lock(&d->mu);
	if (d->nwatches < MAX_WATCHES && svc_get(d, service)) {
		struct watch *w = &d->watches[d->nwatches++];
		memset(w, 0, sizeof *w);
		chat_strlcpy(w->service, service, sizeof w->service);
		w->fn = fn;
		w->arg = arg;
		pthread_cond_signal(&d->work); /* a cached service: call now */
		rv = 0;
	}
	pthread_mutex_unlock(&d->mu);
	return rv;
}

void chat_disc_unwatch(chat_disc *d, chat_disc_fn fn, void *arg)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->cb_mu); /* no callback runs */
	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < d->nwatches;) {
		if (d->watches[i].fn == fn && d->watches[i].arg == arg)
			d->watches[i] = d->watches[--d->nwatches];
		else
			i++;
	}
	pthread_mutex_unlock(&d->mu);
	pthread_mutex_unlock(&d->cb_mu);
}

/* Wait (under mu) until service s is read and holds min_n entries. */
static struct service *wait_read(chat_disc *d, const char *service,
                                 size_t min_n, int wait_ms)
{
	struct service *s = svc_get(d, service);
	struct timespec ts;
	abs_deadline(&ts, wait_ms > 0 ? wait_ms : 0);
	while (s && wait_ms > 0 && (!s->read_ok || s->n < min_n)) {
		if (pthread_cond_timedwait(&d->done, &d->mu, &ts) != 0)
			break;
		s = svc_find(d, service);
	}
	return s;
}

size_t chat_disc_list(chat_disc *d, const char *service,
                      chat_disc_entry *entries, size_t max, int wait_ms)
{
	struct service *s;
	size_t n = 0;
	if (!name_ok(service, CHAT_DISC_SERVICE_MAX))
		return 0;
	pthread_mutex_lock(&d->mu);
	s = wait_read(d, service, 1, wait_ms);
	if (s) {
		n = s->n;
		if (n && max)
			memcpy(entries, s->e,
			       (n < max ? n : max) * sizeof *entries);
	}
	pthread_mutex_unlock(&d->mu);
	return n;
}

int chat_disc_least_loaded(chat_disc *d, const char *service,
                           chat_disc_entry *out, int wait_ms)
{
	struct service *s;
	int rv = -1;
	if (!name_ok(service, CHAT_DISC_SERVICE_MAX))
		return -1;
	pthread_mutex_lock(&d->mu);
	s = wait_read(d, service, 1, wait_ms);
	for (size_t i = 0; s && i < s->n; i++)
		if (rv < 0 || s->e[i].load < out->load) {
			*out = s->e[i];
			rv = 0;
		}
	pthread_mutex_unlock(&d->mu);
	return rv;
}

size_t chat_disc_wait(chat_disc *d, const char *service, size_t min_n,
                      int wait_ms)
{
	struct service *s;
	size_t n = 0;
	if (!name_ok(service, CHAT_DISC_SERVICE_MAX))
		return 0;
	pthread_mutex_lock(&d->mu);
	s = wait_read(d, service, min_n, wait_ms);
	if (s)
		n = s->n;
	pthread_mutex_unlock(&d->mu);
	return n;
}

static void bind_fn(void *arg, const char *service,
                    const chat_disc_entry *e, size_t n)
{
	chat_rpc_client *c = arg;
	const char **urls = n ? calloc(n, sizeof *urls) : NULL;
	size_t k = 0;
	if (n && !urls)
		return;
	for (size_t i = 0; i < n; i++)
		if (e[i].rpc[0])
			urls[k++] = e[i].rpc;
	chat_debug(SVC, "bind_update", "service=%s urls=%zu", service, k);
	chat_rpc_client_set_urls(c, urls, k);
	free(urls);
}

int chat_disc_bind_client(chat_disc *d, const char *service,
                          chat_rpc_client *client)
{
	if (!client)
		return -1;
	return chat_disc_watch(d, service, bind_fn, client);
}

void chat_disc_unbind_client(chat_disc *d, chat_rpc_client *client)
{
	chat_disc_unwatch(d, bind_fn, client);
}

int chat_disc_connected(chat_disc *d)
{
	int c;
	pthread_mutex_lock(&d->mu);
	c = d->connected;
	pthread_mutex_unlock(&d->mu);
	return c;
}

uint64_t chat_disc_sessions(chat_disc *d)
{
	return atomic_load(&d->sessions);
}

void chat_disc_free(chat_disc *d)
{
	char path[PATH_MAX_LEN];
	if (!d)
		return;
	if (d->started) {
		pthread_mutex_lock(&d->mu);
		d->stop = 1;
		pthread_cond_signal(&d->work);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->thread, NULL);
	}
	chat_strlcpy(path, d->reg_path, sizeof path);
	if (d->zh) {
		/* Deleting first makes the node vanish for watchers now,
		 * whatever closing the session does. */
		if (path[0] && zoo_state(d->zh) == ZOO_CONNECTED_STATE)
			zoo_delete(d->zh, path, -1);
		zookeeper_close(d->zh);
	}
	for (int i = 0; i < d->nsvcs; i++)
		free(d->svcs[i].e);
	pthread_cond_destroy(&d->work);
	pthread_cond_destroy(&d->done);
	pthread_mutex_destroy(&d->cb_mu);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
