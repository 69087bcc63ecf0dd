/* The api's request bodies and response bodies, apart from any transport so
 * that the fuzz target and the tests reach them without libwebsockets.
 * Private to svc/api. */
#ifndef API_BODY_H
#define API_BODY_H

#include <stddef.h>
#include <stdint.h>

#define API_BODY_MAX (16 * 1024) /* largest request body accepted */
#define API_NAME_MAX 32
#define API_PASS_MIN 8
#define API_PASS_MAX 256

typedef enum api_form {
	API_FORM_SIGNUP, /* name and password rules of a new account */
	API_FORM_LOGIN,  /* name rules; any password of 1..256 bytes */
} api_form;

typedef struct api_creds {
	char name[API_NAME_MAX + 1];
	char password[API_PASS_MAX + 1];
} api_creds;

/* Whether name is 1..32 bytes of A-Z a-z 0-9 _ . - */
int api_name_valid(const char *name, size_t len);

/* Parse and validate a {"name","password"} body of len bytes (any bytes;
 * need not be NUL-terminated). Returns 0 with out filled, or -1 with a
 * static reason meant for the client in *reason (the answer is then 400
 * INVALID_ARGUMENT). Unknown members are ignored. Never blocks. */
int api_parse_creds(const char *body, size_t len, api_form form,
                    api_creds *out, const char **reason);

/* Wipe the password from out. */
void api_creds_wipe(api_creds *c);

/* A malloc'ed error body {"error":"CODE","reason":"..."} plus, when
 * no_such_user, "no_such_user":true. *len receives its length. pre bytes of
 * headroom are reserved before the text (the text starts at the returned
 * pointer + pre). NULL when out of memory. */
char *api_error_body(const char *code, const char *reason, int no_such_user,
                     size_t pre, size_t *len);

/* A malloc'ed {"user_id","name","token","edge_url","expires_at"} body,
 * with pre bytes of headroom as above. NULL when out of memory or when a
 * string does not fit. */
char *api_auth_body(uint64_t user_id, const char *name, const char *token,
                    const char *edge_url, int64_t expires_at, size_t pre,
                    size_t *len);

#endif
