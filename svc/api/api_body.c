/* Request and response bodies of the HTTP api (see api_body.h). */
#include "api_body.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_json.h"

int api_name_valid(const char *name, size_t len)
{
	if (len < 1 || len > API_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

/* Whether the first byte after white space opens an object. */
static int is_object(const char *p, size_t len)
{
	size_t i = 0;
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' ||
	                   p[i] == '\r'))
		i++;
	return i < len && p[i] == '{';
}

int api_parse_creds(const char *body, size_t len, api_form form,
                    api_creds *out, const char **reason)
{
	static const char name_rule[] =
	    "name must be 1 to 32 bytes of A-Z a-z 0-9 _ . -";
	int n;

	memset(out, 0, sizeof *out);
	if (!body || len == 0 || len > API_BODY_MAX ||
	    !chat_json_valid(body, len) || !is_object(body, len)) {
		*reason = "body must be a JSON object {\"name\",\"password\"}";
		return -1;
	}
	n = chat_json_get_string(body, len, "name", out->name,
	                         sizeof out->name);
	if (n == -1) {
		*reason = "missing name";
		goto fail;
	}
	if (n == -2) {
		*reason = "name must be a string";
		goto fail;
	}
	if (n < 0 || !api_name_valid(out->name, (size_t)n)) {
		*reason = name_rule;
		goto fail;
	}
	n = chat_json_get_string(body, len, "password", out->password,
	                         sizeof out->password);
	if (n == -1) {
		*reason = "missing password";
		goto fail;
	}
	if (n == -2) {
		*reason = "password must be a string";
		goto fail;
	}
	/* Log-in accepts any password a hash could be made of (older rules
	 * stay usable); only the size is capped, to bound the work. */
	if (n < 0 || n > API_PASS_MAX ||
	    n < (form == API_FORM_SIGNUP ? API_PASS_MIN : 1)) {
		*reason = form == API_FORM_SIGNUP
		              ? "password must be 8 to 256 bytes"
		              : "password must be 1 to 256 bytes";
		goto fail;
	}
	return 0;
fail:
	api_creds_wipe(out);
	return -1;
}

void api_creds_wipe(api_creds *c)
{
	explicit_bzero(c->password, sizeof c->password);
}

/* Append the quoted s to buf at *off (cap bytes in all). */
static int put_str(char *buf, size_t cap, size_t *off, const char *s)
{
	int n = chat_json_quote(s, buf + *off, cap - *off);
	if (n < 0)
		return -1;
	*off += (size_t)n;
	return 0;
}

static int put_raw(char *buf, size_t cap, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int put_raw(char *buf, size_t cap, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, cap - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *off)
		return -1;
	*off += (size_t)n;
	return 0;
}

char *api_error_body(const char *code, const char *reason, int no_such_user,
                     size_t pre, size_t *len)
{
	size_t cap = pre + 64 + 6 * (strlen(code) + strlen(reason)), off = pre;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	if (put_raw(buf, cap, &off, "{\"error\":") ||
	    put_str(buf, cap, &off, code) ||
	    put_raw(buf, cap, &off, ",\"reason\":") ||
	    put_str(buf, cap, &off, reason) ||
	    put_raw(buf, cap, &off, "%s}",
	            no_such_user ? ",\"no_such_user\":true" : "")) {
		free(buf);
		return NULL;
	}
	*len = off - pre;
	return buf;
}

char *api_auth_body(uint64_t user_id, const char *name, const char *token,
                    const char *edge_url, int64_t expires_at, size_t pre,
                    size_t *len)
{
	size_t cap = pre + 128 +
	             6 * (strlen(name) + strlen(token) + strlen(edge_url)),
	       off = pre;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	if (put_raw(buf, cap, &off, "{\"user_id\":%" PRIu64 ",\"name\":",
	            user_id) ||
	    put_str(buf, cap, &off, name) ||
	    put_raw(buf, cap, &off, ",\"token\":") ||
	    put_str(buf, cap, &off, token) ||
	    put_raw(buf, cap, &off, ",\"edge_url\":") ||
	    put_str(buf, cap, &off, edge_url) ||
	    put_raw(buf, cap, &off, ",\"expires_at\":%" PRId64 "}",
	            expires_at)) {
		free(buf);
		return NULL;
	}
	*len = off - pre;
	return buf;
}
