/* Just enough JSON for the HTTP api: validate a document, read top-level
 * string and integer members of an object, and write escaped strings. */
#ifndef CHAT_JSON_H
#define CHAT_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Whether data[0..len) is one valid JSON value (RFC 8259), nesting at
 * most 32 deep. */
int chat_json_valid(const char *data, size_t len);

/* Find top-level member key of the object in data and copy its string
 * value, unescaped, NUL-terminated, into out. Returns the value's length,
 * -1 when the document is not a valid object or the member is missing,
 * -2 when the member is not a string, -3 when it does not fit in outlen-1
 * bytes or holds \u0000. */
int chat_json_get_string(const char *data, size_t len, const char *key,
                         char *out, size_t outlen);

/* Same for an integer member. Returns 0, -1 (missing or invalid
 * document), -2 (not an integer or out of range). */
int chat_json_get_int(const char *data, size_t len, const char *key,
                      int64_t *out);

/* Write s as a JSON string literal (with quotes) into out. Returns the
 * length written, or -1 when it does not fit (out is then ""). */
int chat_json_quote(const char *s, char *out, size_t outlen);

#endif
