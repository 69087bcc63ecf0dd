/* Password hashing and JWT checks: signature, pinned algorithm (alg:none
 * and HS512 refused), exp/nbf/iss/aud/sub, key length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_auth.h"

static const unsigned char key[] = "0123456789abcdef0123456789abcdef-test-key";
#define KEYLEN (sizeof key - 1)

static void test_password(void **state)
{
	char h[CHAT_PASS_HASH_MAX], h2[CHAT_PASS_HASH_MAX];
	(void)state;
	assert_int_equal(chat_password_hash("correct horse", h), 0);
	assert_true(strncmp(h, "$argon2id$", 10) == 0);
	assert_true(chat_password_verify(h, "correct horse"));
	assert_false(chat_password_verify(h, "correct horsE"));
	assert_false(chat_password_verify(h, ""));
	assert_false(chat_password_verify("garbage", "correct horse"));
	assert_false(chat_password_verify(NULL, "x"));
	/* Salted: the same password hashes differently. */
	assert_int_equal(chat_password_hash("correct horse", h2), 0);
	assert_string_not_equal(h, h2);
}

static char *make(jwt_alg_t alg, const unsigned char *k, size_t kl,
                  const char *iss, const char *aud, const char *sub,
                  long exp_off, int with_exp, long nbf_off)
{
	jwt_t *j;
	char *t;
	time_t now = time(NULL);
	assert_int_equal(jwt_new(&j), 0);
	if (sub)
		jwt_add_grant(j, "sub", sub);
	jwt_add_grant(j, "name", "alice");
	if (iss)
		jwt_add_grant(j, "iss", iss);
	if (aud)
		jwt_add_grant(j, "aud", aud);
	if (with_exp)
		jwt_add_grant_int(j, "exp", (long)now + exp_off);
	jwt_add_grant_int(j, "nbf", (long)now + nbf_off);
	assert_int_equal(jwt_set_alg(j, alg, k, (int)kl), 0);
	t = jwt_encode_str(j);
	jwt_free(j);
	return t;
}

static void expect_reject(const char *tok, const char *why)
{
	chat_claims c;
	char err[128];
	assert_int_equal(chat_jwt_verify(key, KEYLEN, tok, 30, &c, err, sizeof err),
	                 -1);
	assert_string_equal(err, why);
}

static char *b64url(const char *s)
{
	size_t n = sodium_base64_encoded_len(strlen(s),
	                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *o = malloc(n);
	sodium_bin2base64(o, n, (const unsigned char *)s, strlen(s),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return o;
}

static void test_jwt(void **state)
{
	chat_claims c;
	char err[128];
	char *t;
	(void)state;
	assert_int_equal(chat_auth_init(), 0);

	t = chat_jwt_issue(key, KEYLEN, 42, "alice", 3600);
	assert_non_null(t);
	assert_int_equal(chat_jwt_verify(key, KEYLEN, t, 30, &c, err, sizeof err), 0);
	assert_int_equal(c.user_id, 42);
	assert_string_equal(c.name, "alice");
	assert_true(c.exp > time(NULL));
	/* Another key. */
	assert_int_equal(chat_jwt_verify((const unsigned char *)
	                                 "another-key-another-key-another-key",
	                                 35, t, 30, &c, err, sizeof err), -1);
	/* Tampered payload. */
	{
		char *dot = strchr(t, '.');
		dot[3] = dot[3] == 'A' ? 'B' : 'A';
		expect_reject(t, "invalid token (bad signature or format)");
	}
	free(t);
	/* An empty or short key is refused before libjwt sees it (libjwt
	 * would accept ANY token with an empty key). */
	t = chat_jwt_issue(key, KEYLEN, 1, "alice", 60);
	assert_int_equal(chat_jwt_verify(NULL, 0, t, 30, &c, err, sizeof err), -1);
	assert_int_equal(chat_jwt_verify(key, 10, t, 30, &c, err, sizeof err), -1);
	assert_null(chat_jwt_issue(key, 10, 1, "alice", 60));
	free(t);

	t = chat_jwt_issue(key, KEYLEN, 7, "alice", -120);
	expect_reject(t, "token expired");
	free(t);

	t = make(JWT_ALG_HS512, key, KEYLEN, CHAT_JWT_ISSUER, CHAT_JWT_AUDIENCE,
	         "7", 600, 1, 0);
	expect_reject(t, "wrong algorithm");
	free(t);
	t = make(JWT_ALG_HS256, key, KEYLEN, "someone-else", CHAT_JWT_AUDIENCE,
	         "7", 600, 1, 0);
	expect_reject(t, "wrong issuer");
	free(t);
	t = make(JWT_ALG_HS256, key, KEYLEN, CHAT_JWT_ISSUER, "other", "7", 600,
	         1, 0);
	expect_reject(t, "wrong audience");
	free(t);
	t = make(JWT_ALG_HS256, key, KEYLEN, CHAT_JWT_ISSUER, CHAT_JWT_AUDIENCE,
	         "7", 600, 0, 0);
	expect_reject(t, "token has no exp");
	free(t);
	t = make(JWT_ALG_HS256, key, KEYLEN, CHAT_JWT_ISSUER, CHAT_JWT_AUDIENCE,
	         "7", 600, 1, 3600);
	expect_reject(t, "token not yet valid");
	free(t);
	t = make(JWT_ALG_HS256, key, KEYLEN, CHAT_JWT_ISSUER, CHAT_JWT_AUDIENCE,
	         "-3", 600, 1, 0);
	expect_reject(t, "bad subject");
	free(t);
	t = make(JWT_ALG_HS256, key, KEYLEN, CHAT_JWT_ISSUER, CHAT_JWT_AUDIENCE,
	         NULL, 600, 1, 0);
	expect_reject(t, "bad subject");
	free(t);

	/* alg: none, with claims that would otherwise pass. */
	{
		char payload[256], tok[1024];
		char *h = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}"), *p;
		snprintf(payload, sizeof payload,
		         "{\"sub\":\"7\",\"name\":\"alice\",\"iss\":\"%s\","
		         "\"aud\":\"%s\",\"exp\":%ld}",
		         CHAT_JWT_ISSUER, CHAT_JWT_AUDIENCE, (long)time(NULL) + 600);
		p = b64url(payload);
		snprintf(tok, sizeof tok, "%s.%s.", h, p);
		assert_int_equal(chat_jwt_verify(key, KEYLEN, tok, 30, &c, err,
		                                 sizeof err), -1);
		free(h);
		free(p);
	}
	expect_reject("", "no token");
	expect_reject("not-a-token", "invalid token (bad signature or format)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password),
		cmocka_unit_test(test_jwt),
	};
	if (chat_auth_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
