/* Authentication: argon2id password hashes (libsodium) and HS256 JWTs
 * (libjwt) with the algorithm pinned and exp/nbf/iss/aud checked here,
 * since libjwt 1.10 checks no claims at all. */
#ifndef CHAT_AUTH_H
#define CHAT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_JWT_ISSUER "chat-api"
#define CHAT_JWT_AUDIENCE "chat-edge"
#define CHAT_PASS_HASH_MAX 128  /* crypto_pwhash_STRBYTES */

/* Call once before any other auth function (initialises libsodium).
 * Returns 0 or -1. */
int chat_auth_init(void);

/* Hash a password with argon2id (INTERACTIVE limits) into out (at least
 * CHAT_PASS_HASH_MAX bytes). Slow by design (tens of ms, 64 MiB): never on
 * an event loop. Returns 0 or -1 (out of memory). */
int chat_password_hash(const char *password, char *out);

/* Whether password matches the stored hash. Same cost as hashing. */
int chat_password_verify(const char *hash, const char *password);

typedef struct chat_claims {
	uint64_t user_id;
	char name[64];
	int64_t exp;  /* seconds since the epoch */
} chat_claims;

/* Issue an HS256 token for user_id/name valid for ttl_s seconds, signed with
 * key (at least 32 bytes). Returns a malloc'ed token, or NULL. */
char *chat_jwt_issue(const unsigned char *key, size_t keylen, uint64_t user_id,
                     const char *name, int64_t ttl_s);

/* Verify a token: HS256 only, signature with key, exp in the future (with
 * leeway_s), nbf not in the future, iss and aud ours, sub a user id.
 * Returns 0 with the claims filled, or -1 with a reason in err (meant for
 * the client: "token expired", "wrong algorithm", ...). */
int chat_jwt_verify(const unsigned char *key, size_t keylen, const char *token,
                    int64_t leeway_s, chat_claims *claims, char *err,
                    size_t errlen);

#endif
