#include "chat_auth.h"

#include <errno.h>
#include <inttypes.h>
#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_util.h"

int chat_auth_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

int chat_password_hash(const char *password, char *out)
{
	return crypto_pwhash_str(out, password, strlen(password),
	                         crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                         crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
	           ? 0
	           : -1;
}

int chat_password_verify(const char *hash, const char *password)
{
	if (!hash || strlen(hash) >= crypto_pwhash_STRBYTES)
		return 0;
	return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

char *chat_jwt_issue(const unsigned char *key, size_t keylen, uint64_t user_id,
                     const char *name, int64_t ttl_s)
{
	jwt_t *j = NULL;
	char sub[24];
	char *tok = NULL;
	time_t now = time(NULL);

	if (keylen < 32 || jwt_new(&j) != 0)
		return NULL;
	snprintf(sub, sizeof sub, "%" PRIu64, user_id);
	if (jwt_add_grant(j, "sub", sub) || jwt_add_grant(j, "name", name) ||
	    jwt_add_grant(j, "iss", CHAT_JWT_ISSUER) ||
	    jwt_add_grant(j, "aud", CHAT_JWT_AUDIENCE) ||
	    jwt_add_grant_int(j, "iat", (long)now) ||
	    jwt_add_grant_int(j, "nbf", (long)now) ||
	    jwt_add_grant_int(j, "exp", (long)(now + ttl_s)) ||
	    jwt_set_alg(j, JWT_ALG_HS256, key, (int)keylen))
		goto out;
	tok = jwt_encode_str(j);
out:
	jwt_free(j);
	return tok;
}

int chat_jwt_verify(const unsigned char *key, size_t keylen, const char *token,
                    int64_t leeway_s, chat_claims *claims, char *err,
                    size_t errlen)
{
	jwt_t *j = NULL;
	const char *s;
	long v;
	time_t now = time(NULL);
	char *end;
	unsigned long long uid;

	memset(claims, 0, sizeof *claims);
	/* libjwt accepts ANY token with an empty key: never allow that. */
	if (!key || keylen < 32) {
		snprintf(err, errlen, "server has no signing key");
		return -1;
	}
	if (!token || !token[0]) {
		snprintf(err, errlen, "no token");
		return -1;
	}
	if (strlen(token) > 4096) {
		snprintf(err, errlen, "token too long");
		return -1;
	}
	if (jwt_decode(&j, token, key, (int)keylen) != 0 || !j) {
		snprintf(err, errlen, "invalid token (bad signature or format)");
		return -1;
	}
	if (jwt_get_alg(j) != JWT_ALG_HS256) {
		snprintf(err, errlen, "wrong algorithm");
		goto fail;
	}
	errno = 0;
	v = jwt_get_grant_int(j, "exp");
	if (errno == ENOENT) {
		snprintf(err, errlen, "token has no exp");
		goto fail;
	}
	if ((int64_t)v + leeway_s < (int64_t)now) {
		snprintf(err, errlen, "token expired");
		goto fail;
	}
	errno = 0;
	v = jwt_get_grant_int(j, "nbf");
	if (errno != ENOENT && (int64_t)v - leeway_s > (int64_t)now) {
		snprintf(err, errlen, "token not yet valid");
		goto fail;
	}
	claims->exp = jwt_get_grant_int(j, "exp");
	s = jwt_get_grant(j, "iss");
	if (!s || strcmp(s, CHAT_JWT_ISSUER) != 0) {
		snprintf(err, errlen, "wrong issuer");
		goto fail;
	}
	s = jwt_get_grant(j, "aud");
	if (!s || strcmp(s, CHAT_JWT_AUDIENCE) != 0) {
		snprintf(err, errlen, "wrong audience");
		goto fail;
	}
	s = jwt_get_grant(j, "sub");
	errno = 0;
	if (!s || !*s || *s == '-' ||
	    ((uid = strtoull(s, &end, 10)), *end != '\0') || errno || uid == 0) {
		snprintf(err, errlen, "bad subject");
		goto fail;
	}
	claims->user_id = (uint64_t)uid;
	s = jwt_get_grant(j, "name");
	if (!s || !*s || strlen(s) >= sizeof claims->name) {
		snprintf(err, errlen, "bad name claim");
		goto fail;
	}
	chat_strlcpy(claims->name, s, sizeof claims->name);
	jwt_free(j);
	return 0;
fail:
	jwt_free(j);
	return -1;
}
