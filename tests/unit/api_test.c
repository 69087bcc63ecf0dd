/* The HTTP api against a fake chat.Store (an RPC server in this file, on
 * inproc://) through a tiny blocking HTTP client: every endpoint, every
 * error answer, a client that leaves early, and a store that goes away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "chat_auth.h"
#include "chat_json.h"
#include "chat_rpc.h"
#include "chat_util.h"
#include "store.pb-c.h"

#define STORE_URL "inproc://api-test-store"
static const char KEY[] = "0123456789abcdef0123456789abcdef-test-key";
static const char OTHER_KEY[] = "another-key-another-key-another-key";
static const char ALICE[] =
    "{\"name\":\"alice\",\"password\":\"correct horse\"}";
static const api_edge EDGES[] = {{"edge-1", "ws://127.0.0.1:7001/ws"},
                                 {"edge-2", "ws://127.0.0.1:7002/ws"}};

/* ---- the fake store ---------------------------------------------------- */

struct fake_user {
	uint64_t id;
	char name[64];
	char hash[CHAT_PASS_HASH_MAX];
};

static struct {
	pthread_mutex_t mu;
	struct fake_user users[32];
	int n;
	int calls;
} fake = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 0};

static struct fake_user *find_user(const char *name)
{
	for (int i = 0; i < fake.n; i++)
		if (!strcmp(fake.users[i].name, name))
			return &fake.users[i];
	return NULL;
}

static int create_user(void *arg, chat_rpc_call *call)
{
	const Chat__CreateUserReq *in = (const Chat__CreateUserReq *)call->in;
	Chat__User *out = (Chat__User *)call->out;
	struct fake_user *u;
	(void)arg;
	pthread_mutex_lock(&fake.mu);
	fake.calls++;
	if (find_user(in->name) || fake.n == 32) {
		pthread_mutex_unlock(&fake.mu);
		return chat_rpc_fail(call, CHAT_ALREADY_EXISTS, "name taken");
	}
	u = &fake.users[fake.n++];
	u->id = 1000 + (uint64_t)fake.n;
	chat_strlcpy(u->name, in->name, sizeof u->name);
	chat_strlcpy(u->hash, in->pass_hash, sizeof u->hash);
	out->id = u->id;
	out->name = chat_arena_strdup(call->arena, u->name);
	pthread_mutex_unlock(&fake.mu);
	return CHAT_OK;
}

static int get_user(void *arg, chat_rpc_call *call)
{
	const Chat__GetUserReq *in = (const Chat__GetUserReq *)call->in;
	Chat__UserRecord *out = (Chat__UserRecord *)call->out;
	struct fake_user *u;
	(void)arg;
	pthread_mutex_lock(&fake.mu);
	fake.calls++;
	u = find_user(in->name);
	if (!u) {
		pthread_mutex_unlock(&fake.mu);
		return chat_rpc_fail(call, CHAT_NOT_FOUND, "no user %s",
		                     in->name);
	}
	out->id = u->id;
	out->name = chat_arena_strdup(call->arena, u->name);
	out->pass_hash = chat_arena_strdup(call->arena, u->hash);
	pthread_mutex_unlock(&fake.mu);
	return CHAT_OK;
}

static chat_rpc_server *start_fake_store(void)
{
	static chat_rpc_fn fns[13];
	char err[256];
	chat_rpc_server *s = chat_rpc_server_new("store", "fake", 2);
	fns[0] = create_user;
	fns[1] = get_user;
		assert_non_null(s);
	assert_int_equal(chat_rpc_server_add(s, &chat__store__descriptor,
	                                     CHAT_RPC_TABLE(fns), NULL),
	                 0);
	assert_int_equal(chat_rpc_server_listen(s, STORE_URL, NULL, err,
	                                        sizeof err),
	                 0);
	assert_int_equal(chat_rpc_server_start(s), 0);
	return s;
}

/* ---- a tiny blocking HTTP client --------------------------------------- */

struct resp {
	int status;
	char head[4096];
	char body[8192];
	size_t body_len;
};

static int dial(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

/* Read one response: headers, then Content-Length bytes (or up to EOF). */
static void read_resp(int fd, struct resp *r)
{
	char buf[16384];
	size_t have = 0, want = (size_t)-1;
	char *hend = NULL;
	int64_t deadline = chat_mono_us() + 20 * 1000000;

	memset(r, 0, sizeof *r);
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t n;
		if (hend && have - (size_t)(hend + 4 - buf) >= want)
			break;
		assert_true(chat_mono_us() < deadline);
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = recv(fd, buf + have, sizeof buf - 1 - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0);
		if (n == 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		if (!hend && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(buf, "content-length:");
			if (cl && cl < hend)
				want = (size_t)strtoul(cl + 15, NULL, 10);
		}
	}
	assert_non_null(hend);
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
	memcpy(r->head, buf, (size_t)(hend - buf));
	r->body_len = have - (size_t)(hend + 4 - buf);
	if (want != (size_t)-1)
		assert_int_equal(r->body_len, want);
	assert_true(r->body_len < sizeof r->body);
	memcpy(r->body, hend + 4, r->body_len);
}

static int g_port;

static void request(const char *method, const char *path, const char *body,
                    struct resp *r)
{
	char head[512];
	int fd = dial(g_port), n;
	if (body)
		n = snprintf(head, sizeof head,
		             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		             "Connection: close\r\nContent-Type: "
		             "application/json\r\nContent-Length: %zu\r\n\r\n",
		             method, path, strlen(body));
	else
		n = snprintf(head, sizeof head,
		             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		             "Connection: close\r\n\r\n",
		             method, path);
	send_all(fd, head, (size_t)n);
	if (body)
		send_all(fd, body, strlen(body));
	read_resp(fd, r);
	close(fd);
}

static void post(const char *path, const char *body, struct resp *r)
{
	request("POST", path, body, r);
}

/* The answer is JSON with this status and, for errors, this code. */
static void expect(const struct resp *r, int status, const char *code)
{
	char v[64];
	if (r->status != status)
		fail_msg("expected %d, got %d: %.*s", status, r->status,
		         (int)r->body_len, r->body);
	assert_non_null(strcasestr(r->head, "content-type: application/json"));
	assert_true(chat_json_valid(r->body, r->body_len));
	if (code) {
		assert_true(chat_json_get_string(r->body, r->body_len, "error",
		                                 v, sizeof v) > 0);
		assert_string_equal(v, code);
		assert_true(chat_json_get_string(r->body, r->body_len,
		                                 "reason", v, sizeof v) > 0);
	}
}

static int has_no_such_user(const struct resp *r)
{
	return strstr(r->body, "\"no_such_user\":true") != NULL;
}

/* ---- fixture ----------------------------------------------------------- */

static chat_rpc_server *g_store;
static api *g_api;

static int setup(void **state)
{
	api_config cfg;
	char err[256];
	(void)state;
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	g_store = start_fake_store();
	memset(&cfg, 0, sizeof cfg);
	cfg.port = 0;
	cfg.store_url = STORE_URL;
	cfg.jwt_key = (const unsigned char *)KEY;
	cfg.jwt_key_len = strlen(KEY);
	cfg.token_ttl_s = 3600;
	cfg.edges = EDGES;
	cfg.n_edges = 2;
	cfg.workers = 2;
	cfg.rpc_timeout_ms = 500;
	if (api_start(&cfg, &g_api, err, sizeof err) != 0) {
		fprintf(stderr, "api_start: %s\n", err);
		return -1;
	}
	g_port = api_port(g_api);
	return g_port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	api_stop(g_api);
	chat_rpc_server_free(g_store);
	return 0;
}

/* ---- tests ------------------------------------------------------------- */

static void test_bad_config(void **state)
{
	api_config cfg;
	api *a = NULL;
	char err[256];
	(void)state;
	memset(&cfg, 0, sizeof cfg);
	cfg.store_url = STORE_URL;
	cfg.jwt_key = (const unsigned char *)"short";
	cfg.jwt_key_len = 5;
	cfg.edges = EDGES;
	cfg.n_edges = 1;
	assert_int_equal(api_start(&cfg, &a, err, sizeof err), -1);
	assert_null(a);
	assert_non_null(strstr(err, "32 bytes"));
	cfg.jwt_key = (const unsigned char *)KEY;
	cfg.jwt_key_len = strlen(KEY);
	cfg.n_edges = 0;
	assert_int_equal(api_start(&cfg, &a, err, sizeof err), -1);
	assert_non_null(strstr(err, "edge"));
	/* The port is taken. */
	cfg.n_edges = 1;
	cfg.port = g_port;
	assert_int_equal(api_start(&cfg, &a, err, sizeof err), -1);
	assert_non_null(strstr(err, "listen"));
}

static void test_healthz_edges_keepalive(void **state)
{
	struct resp r;
	char v[128];
	const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *req2 = "GET /v1/edges HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd;
	(void)state;

	request("GET", "/healthz", NULL, &r);
	expect(&r, 200, NULL);
	assert_true(chat_json_get_string(r.body, r.body_len, "status", v,
	                                 sizeof v) == 2);
	assert_string_equal(v, "ok");

	request("GET", "/v1/edges", NULL, &r);
	expect(&r, 200, NULL);
	assert_string_equal(r.body,
	                    "{\"edges\":[{\"id\":\"edge-1\",\"url\":"
	                    "\"ws://127.0.0.1:7001/ws\"},{\"id\":\"edge-2\","
	                    "\"url\":\"ws://127.0.0.1:7002/ws\"}]}");

	/* Two requests on one kept-alive connection. */
	fd = dial(g_port);
	send_all(fd, req, strlen(req));
	read_resp(fd, &r);
	expect(&r, 200, NULL);
	send_all(fd, req2, strlen(req2));
	read_resp(fd, &r);
	expect(&r, 200, NULL);
	assert_non_null(strstr(r.body, "edge-2"));
	close(fd);
}

static void check_grant(const struct resp *r, const char *name,
                        uint64_t *uid, char *edge, size_t edgelen)
{
	char tok[1024], why[128], v[64];
	int64_t id = 0, exp = 0;
	chat_claims c;
	assert_true(chat_json_get_int(r->body, r->body_len, "user_id", &id) ==
	            0);
	assert_true(id > 0);
	assert_true(chat_json_get_string(r->body, r->body_len, "name", v,
	                                 sizeof v) > 0);
	assert_string_equal(v, name);
	assert_true(chat_json_get_string(r->body, r->body_len, "token", tok,
	                                 sizeof tok) > 0);
	assert_true(chat_json_get_int(r->body, r->body_len, "expires_at",
	                              &exp) == 0);
	assert_true(chat_json_get_string(r->body, r->body_len, "edge_url",
	                                 edge, edgelen) > 0);
	assert_true(!strcmp(edge, EDGES[0].url) || !strcmp(edge, EDGES[1].url));
	if (chat_jwt_verify((const unsigned char *)KEY, strlen(KEY), tok, 0, &c,
	                    why, sizeof why) != 0)
		fail_msg("token refused: %s", why);
	assert_int_equal(c.user_id, (uint64_t)id);
	assert_string_equal(c.name, name);
	assert_int_equal(c.exp, exp);
	assert_true(exp > time(NULL) + 3500 && exp <= time(NULL) + 3600);
	/* A token signed with another key is refused. */
	assert_int_not_equal(
	    chat_jwt_verify((const unsigned char *)OTHER_KEY, strlen(OTHER_KEY),
	                    tok, 0, &c, why, sizeof why),
	    0);
	*uid = (uint64_t)id;
}

static uint64_t g_alice;

static void test_signup(void **state)
{
	struct resp r;
	char edge[128];
	(void)state;
	post("/v1/signup", ALICE, &r);
	expect(&r, 201, NULL);
	assert_non_null(strcasestr(r.head, "cache-control: no-store"));
	check_grant(&r, "alice", &g_alice, edge, sizeof edge);
	pthread_mutex_lock(&fake.mu);
	assert_non_null(find_user("alice"));
	/* The store only ever sees a hash. */
	assert_non_null(strstr(find_user("alice")->hash, "$argon2id$"));
	pthread_mutex_unlock(&fake.mu);

	post("/v1/signup", "{\"name\":\"alice\",\"password\":\"another one\"}",
	     &r);
	expect(&r, 409, "ALREADY_EXISTS");
	assert_non_null(strstr(r.body, "name taken"));
}

static void test_signup_bad_input(void **state)
{
	static const char *const bodies[] = {
	    "{\"name\":\"al ice\",\"password\":\"12345678\"}",
	    "{\"name\":\"\",\"password\":\"12345678\"}",
	    "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
	    "\"password\":\"12345678\"}",
	    "{\"name\":\"b\\u00e9\",\"password\":\"12345678\"}",
	    "{\"name\":\"bob\",\"password\":\"short\"}",
	    "{\"name\":\"bob\",\"password\":\"p\\u0000ssword\"}",
	    "{\"name\":\"bob\",\"password\":12345678}",
	    "{\"name\":\"bob\"}",
	    "{\"password\":\"12345678\"}",
	    "{\"name\":\"bob\",\"password\":\"1234",
	    "[\"bob\",\"12345678\"]",
	    "not json",
	    "",
	};
	struct resp r;
	int calls;
	(void)state;
	pthread_mutex_lock(&fake.mu);
	calls = fake.calls;
	pthread_mutex_unlock(&fake.mu);
	for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
		post("/v1/signup", bodies[i], &r);
		expect(&r, 400, "INVALID_ARGUMENT");
	}
	/* A 257-byte password. */
	{
		char body[400];
		int n = snprintf(body, sizeof body,
		                 "{\"name\":\"bob\",\"password\":\"");
		memset(body + n, 'x', 257);
		strcpy(body + n + 257, "\"}");
		post("/v1/signup", body, &r);
		expect(&r, 400, "INVALID_ARGUMENT");
		assert_non_null(strstr(r.body, "8 to 256"));
	}
	/* None of it reached the store. */
	pthread_mutex_lock(&fake.mu);
	assert_int_equal(fake.calls, calls);
	assert_null(find_user("bob"));
	pthread_mutex_unlock(&fake.mu);
}

static void test_login(void **state)
{
	struct resp r;
	char e1[128], e2[128];
	uint64_t id = 0;
	(void)state;
	post("/v1/login", ALICE, &r);
	expect(&r, 200, NULL);
	check_grant(&r, "alice", &id, e1, sizeof e1);
	assert_int_equal(id, g_alice);
	/* Round-robin over the two edges. */
	post("/v1/login", ALICE, &r);
	expect(&r, 200, NULL);
	check_grant(&r, "alice", &id, e2, sizeof e2);
	assert_string_not_equal(e1, e2);

	post("/v1/login", "{\"name\":\"alice\",\"password\":\"wrong horse\"}",
	     &r);
	expect(&r, 401, "UNAUTHENTICATED");
	assert_non_null(strstr(r.body, "wrong name or password"));
	assert_false(has_no_such_user(&r));

	post("/v1/login", "{\"name\":\"nobody\",\"password\":\"whatever1\"}",
	     &r);
	expect(&r, 401, "UNAUTHENTICATED");
	assert_non_null(strstr(r.body, "wrong name or password"));
	assert_true(has_no_such_user(&r));

	/* Log-in does not apply the sign-up password length rule... */
	post("/v1/login", "{\"name\":\"alice\",\"password\":\"x\"}", &r);
	expect(&r, 401, "UNAUTHENTICATED");
	/* ...but does refuse bad JSON and bad names. */
	post("/v1/login", "{\"name\":\"alice\"", &r);
	expect(&r, 400, "INVALID_ARGUMENT");
	post("/v1/login", "{\"name\":\"a/b\",\"password\":\"12345678\"}", &r);
	expect(&r, 400, "INVALID_ARGUMENT");
}

static void test_not_found_and_method(void **state)
{
	struct resp r;
	(void)state;
	request("GET", "/nope", NULL, &r);
	expect(&r, 404, "NOT_FOUND");
	post("/v1/nope", "{\"name\":\"alice\",\"password\":\"12345678\"}", &r);
	expect(&r, 404, "NOT_FOUND");
	request("GET", "/v1/signup/", NULL, &r);
	expect(&r, 404, "NOT_FOUND");

	request("GET", "/v1/signup", NULL, &r);
	expect(&r, 405, "UNIMPLEMENTED");
	assert_non_null(strcasestr(r.head, "allow: POST"));
	request("PUT", "/v1/login", "{}", &r);
	expect(&r, 405, "UNIMPLEMENTED");
	request("DELETE", "/healthz", NULL, &r);
	expect(&r, 405, "UNIMPLEMENTED");
	post("/v1/edges", "{}", &r);
	expect(&r, 405, "UNIMPLEMENTED");
	assert_non_null(strcasestr(r.head, "allow: GET"));
}

static void test_too_large(void **state)
{
	struct resp r;
	char *big;
	const char *head = "POST /v1/signup HTTP/1.1\r\nHost: x\r\n"
	                   "Content-Length: 20000\r\n\r\n";
	int fd;
	(void)state;

	/* Refused on the Content-Length alone: no body is ever sent. */
	fd = dial(g_port);
	send_all(fd, head, strlen(head));
	read_resp(fd, &r);
	expect(&r, 413, "RESOURCE_EXHAUSTED");
	assert_non_null(strcasestr(r.head, "connection: close"));
	close(fd);

	/* No Content-Length (chunked, or none at all): refused at once,
	 * without waiting for a body. */
	fd = dial(g_port);
	head = "POST /v1/login HTTP/1.1\r\nHost: x\r\n"
	       "Transfer-Encoding: chunked\r\n\r\n";
	send_all(fd, head, strlen(head));
	read_resp(fd, &r);
	expect(&r, 411, "INVALID_ARGUMENT");
	assert_non_null(strcasestr(r.head, "connection: close"));
	close(fd);
	fd = dial(g_port);
	head = "POST /nope HTTP/1.1\r\nHost: x\r\n\r\n";
	send_all(fd, head, strlen(head));
	read_resp(fd, &r);
	expect(&r, 411, "INVALID_ARGUMENT");
	close(fd);

	/* Exactly 16 KiB is accepted (and then judged on its content). */
	big = malloc(16385);
	assert_non_null(big);
	memset(big, ' ', 16384);
	memcpy(big, "{\"name\":\"alice\",\"password\":\"x\"}", 32);
	big[16384] = '\0';
	post("/v1/login", big, &r);
	expect(&r, 401, "UNAUTHENTICATED");
	free(big);
}

/* The api speaks no WebSocket: an upgrade is refused (closed). */
static void test_websocket_refused(void **state)
{
	const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
	                  "Connection: Upgrade\r\nUpgrade: websocket\r\n"
	                  "Sec-WebSocket-Version: 13\r\n"
	                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
	char buf[1024];
	size_t have = 0;
	int64_t deadline = chat_mono_us() + 10 * 1000000;
	int fd = dial(g_port);
	(void)state;
	send_all(fd, req, strlen(req));
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t n;
		assert_true(chat_mono_us() < deadline);
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = recv(fd, buf + have, sizeof buf - 1 - have, 0);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	buf[have] = '\0';
	assert_null(strstr(buf, " 101 "));
	close(fd);
}

/* Clients that hang up while a worker has their request. */
static void test_client_leaves_early(void **state)
{
	const char *body = ALICE;
	char head[256];
	struct resp r;
	int calls;
	(void)state;
	pthread_mutex_lock(&fake.mu);
	calls = fake.calls;
	pthread_mutex_unlock(&fake.mu);
	for (int i = 0; i < 4; i++) {
		int fd = dial(g_port);
		int n = snprintf(head, sizeof head,
		                 "POST /v1/login HTTP/1.1\r\nHost: x\r\n"
		                 "Content-Length: %zu\r\n\r\n%s",
		                 strlen(body), body);
		send_all(fd, head, (size_t)n);
		close(fd);
	}
	/* Still serving, and the answers went nowhere harmful. */
	post("/v1/login", body, &r);
	expect(&r, 200, NULL);
	/* Let the abandoned requests finish with the store before the next
	 * test stops it (nng 1.5 can leak a reply in flight at close). */
	{
		int64_t deadline = chat_mono_us() + 20 * 1000000;
		for (;;) {
			int n;
			pthread_mutex_lock(&fake.mu);
			n = fake.calls;
			pthread_mutex_unlock(&fake.mu);
			if (n >= calls + 5)
				break;
			assert_true(chat_mono_us() < deadline);
			usleep(2000);
		}
	}
}

static void test_store_down(void **state)
{
	struct resp r;
	(void)state;
	chat_rpc_server_free(g_store);
	g_store = NULL;
	post("/v1/signup", "{\"name\":\"carol\",\"password\":\"12345678\"}",
	     &r);
	expect(&r, 503, "UNAVAILABLE");
	assert_non_null(strstr(r.body, "retry"));
	assert_non_null(strcasestr(r.head, "retry-after: 1"));
	post("/v1/login", ALICE, &r);
	expect(&r, 503, "UNAVAILABLE");
	/* The store is back: so is the api. */
	g_store = start_fake_store();
	for (int i = 0; i < 50; i++) {
		post("/v1/login", ALICE, &r);
		if (r.status == 200)
			break;
	}
	expect(&r, 200, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_config),
	    cmocka_unit_test(test_healthz_edges_keepalive),
	    cmocka_unit_test(test_signup),
	    cmocka_unit_test(test_signup_bad_input),
	    cmocka_unit_test(test_login),
	    cmocka_unit_test(test_not_found_and_method),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_websocket_refused),
	    cmocka_unit_test(test_client_leaves_early),
	    cmocka_unit_test(test_store_down),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
