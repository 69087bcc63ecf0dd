#include "chat_json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

struct cur {
	const char *p, *end;
};

static void ws(struct cur *c)
{
	while (c->p < c->end &&
	       (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		*v = (*v << 4) | (unsigned)h;
	}
	return 0;
}

static size_t put_utf8(unsigned cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Parse a string at c->p (on the quote). With out, unescape into it
 * (outlen bytes incl. NUL); *n gets the unescaped length. Returns 0, -1
 * (invalid), -3 (does not fit / \u0000). */
static int string(struct cur *c, char *out, size_t outlen, size_t *n)
{
	size_t o = 0;
	int toolong = 0;
	if (c->p >= c->end || *c->p != '"')
		return -1;
	c->p++;
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p;
		char tmp[4];
		size_t tl = 0;
		if (ch == '"') {
			c->p++;
			if (out && !toolong)
				out[o] = '\0';
			if (n)
				*n = o;
			return toolong ? -3 : 0;
		}
		if (ch < 0x20)
			return -1;
		if (ch != '\\') {
			tmp[0] = (char)ch;
			tl = 1;
			c->p++;
		} else {
			if (c->end - c->p < 2)
				return -1;
			switch (c->p[1]) {
			case '"': tmp[0] = '"'; break;
			case '\\': tmp[0] = '\\'; break;
			case '/': tmp[0] = '/'; break;
			case 'b': tmp[0] = '\b'; break;
			case 'f': tmp[0] = '\f'; break;
			case 'n': tmp[0] = '\n'; break;
			case 'r': tmp[0] = '\r'; break;
			case 't': tmp[0] = '\t'; break;
			case 'u': {
				unsigned cp, lo;
				if (c->end - c->p < 6 || hex4(c->p + 2, &cp))
					return -1;
				c->p += 6;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (c->end - c->p < 6 || c->p[0] != '\\' ||
					    c->p[1] != 'u' || hex4(c->p + 2, &lo) ||
					    lo < 0xdc00 || lo > 0xdfff)
						return -1;
					c->p += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					return -1;
				}
				if (cp == 0)
					toolong = 1; /* refuse embedded NUL */
				tl = put_utf8(cp, tmp);
				goto emit;
			}
			default:
				return -1;
			}
			tl = 1;
			c->p += 2;
		}
	emit:
		if (out && !toolong) {
			if (o + tl >= outlen)
				toolong = 1;
			else
				memcpy(out + o, tmp, tl);
		}
		o += tl;
	}
	return -1;
}

static int number(struct cur *c)
{
	const char *s = c->p;
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (c->p >= c->end)
		return -1;
	if (*c->p == '0')
		c->p++;
	else if (*c->p >= '1' && *c->p <= '9')
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	else
		return -1;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9')
			return -1;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9')
			return -1;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
			c->p++;
	}
	return c->p > s ? 0 : -1;
}

static int literal(struct cur *c, const char *word)
{
	size_t l = strlen(word);
	if ((size_t)(c->end - c->p) < l || memcmp(c->p, word, l) != 0)
		return -1;
	c->p += l;
	return 0;
}

static int value(struct cur *c, int depth);

static int object(struct cur *c, int depth)
{
	c->p++; /* { */
	ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		return 0;
	}
	for (;;) {
		ws(c);
		if (string(c, NULL, 0, NULL) == -1)
			return -1;
		ws(c);
		if (c->p >= c->end || *c->p != ':')
			return -1;
		c->p++;
		if (value(c, depth + 1))
			return -1;
		ws(c);
		if (c->p >= c->end)
			return -1;
		if (*c->p == '}') {
			c->p++;
			return 0;
		}
		if (*c->p != ',')
			return -1;
		c->p++;
	}
}

static int array(struct cur *c, int depth)
{
	c->p++; /* [ */
	ws(c);
	if (c->p < c->end && *c->p == ']') {
		c->p++;
		return 0;
	}
	for (;;) {
		if (value(c, depth + 1))
			return -1;
		ws(c);
		if (c->p >= c->end)
			return -1;
		if (*c->p == ']') {
			c->p++;
			return 0;
		}
		if (*c->p != ',')
			return -1;
		c->p++;
	}
}

static int value(struct cur *c, int depth)
{
	if (depth > MAX_DEPTH)
		return -1;
	ws(c);
	if (c->p >= c->end)
		return -1;
	switch (*c->p) {
	case '{': return object(c, depth);
	case '[': return array(c, depth);
	case '"': return string(c, NULL, 0, NULL) == -1 ? -1 : 0;
	case 't': return literal(c, "true");
	case 'f': return literal(c, "false");
	case 'n': return literal(c, "null");
	default: return number(c);
	}
}

int chat_json_valid(const char *data, size_t len)
{
	struct cur c = {data, data + len};
	if (value(&c, 0))
		return 0;
	ws(&c);
	return c.p == c.end;
}

/* Position c at the value of top-level member key. 0 found, -1 not. */
static int find_member(const char *data, size_t len, const char *key,
                       struct cur *c)
{
	char name[128];
	if (!chat_json_valid(data, len))
		return -1;
	c->p = data;
	c->end = data + len;
	ws(c);
	if (*c->p != '{')
		return -1;
	c->p++;
	for (;;) {
		size_t n;
		int r;
		ws(c);
		if (*c->p == '}')
			return -1;
		r = string(c, name, sizeof name, &n);
		ws(c);
		c->p++; /* ':' (the document is valid) */
		ws(c);
		if (r == 0 && strlen(key) == n && memcmp(name, key, n) == 0)
			return 0;
		value(c, 1);
		ws(c);
		if (*c->p == '}')
			return -1;
		c->p++; /* ',' */
	}
}

int chat_json_get_string(const char *data, size_t len, const char *key,
                         char *out, size_t outlen)
{
	struct cur c;
	size_t n = 0;
	int r;
	if (find_member(data, len, key, &c))
		return -1;
	if (*c.p != '"')
		return -2;
	r = string(&c, out, outlen, &n);
	if (r)
		return r == -3 ? -3 : -1;
	return (int)n;
}

int chat_json_get_int(const char *data, size_t len, const char *key,
                      int64_t *out)
{
	struct cur c;
	char buf[32];
	const char *s;
	char *end;
	long long v;
	if (find_member(data, len, key, &c))
		return -1;
	s = c.p;
	if (number(&c) || (size_t)(c.p - s) >= sizeof buf)
		return -2;
	memcpy(buf, s, (size_t)(c.p - s));
	buf[c.p - s] = '\0';
	if (strpbrk(buf, ".eE"))
		return -2;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || *end)
		return -2;
	*out = v;
	return 0;
}

int chat_json_quote(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
#define PUT(ch)                                                                \
	do {                                                                   \
		if (o + 1 >= outlen)                                           \
			goto full;                                             \
		out[o++] = (ch);                                               \
	} while (0)
	PUT('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			PUT('\\');
			PUT((char)ch);
		} else if (ch == '\n') {
			PUT('\\');
			PUT('n');
		} else if (ch == '\t') {
			PUT('\\');
			PUT('t');
		} else if (ch < 0x20) {
			PUT('\\');
			PUT('u');
			PUT('0');
			PUT('0');
			PUT(hex[ch >> 4]);
			PUT(hex[ch & 15]);
		} else {
			PUT((char)ch);
		}
	}
	PUT('"');
	out[o] = '\0';
	return (int)o;
full:
	if (outlen)
		out[0] = '\0';
	return -1;
#undef PUT
}
