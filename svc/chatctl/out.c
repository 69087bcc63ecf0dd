/* chatctl's output primitives: aligned text tables, a small JSON writer,
 * durations and times. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#define TABLE_COLS_MAX 8

struct ctl_table {
	size_t ncols;
	char *head[TABLE_COLS_MAX];
	unsigned right;
	char **cells; /* nrows * ncols */
	size_t nrows, cap;
};

/* Display width of a cell: UTF-8 continuation bytes take no column. */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* A copy with control characters replaced (a name must not move the
 * cursor or break the line of a table). */
static char *clean_dup(const char *s)
{
	char *d = strdup(s ? s : "-");
	if (!d)
		return NULL;
	for (char *p = d; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return d;
}

ctl_table *ctl_table_new(size_t ncols, const char *const *heads,
                         unsigned right_mask)
{
	ctl_table *t;
	if (ncols == 0 || ncols > TABLE_COLS_MAX)
		return NULL;
	if (!(t = calloc(1, sizeof *t)))
		return NULL;
	t->ncols = ncols;
	t->right = right_mask;
	for (size_t i = 0; i < ncols; i++)
		if (!(t->head[i] = clean_dup(heads[i]))) {
			ctl_table_free(t);
			return NULL;
		}
	return t;
}

int ctl_table_add(ctl_table *t, const char *const *cells)
{
	if (!t)
		return -1;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = realloc(t->cells, cap * t->ncols * sizeof *nc);
		if (!nc)
			return -1;
		t->cells = nc;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		char *c = clean_dup(cells[i]);
		if (!c) {
			while (i--)
				free(t->cells[t->nrows * t->ncols + i]);
			return -1;
		}
		t->cells[t->nrows * t->ncols + i] = c;
	}
	t->nrows++;
	return 0;
}

static void print_row(const ctl_table *t, FILE *f, char *const *row,
                      const size_t *w)
{
	for (size_t i = 0; i < t->ncols; i++) {
		size_t cw = width(row[i]);
		size_t pad = w[i] > cw ? w[i] - cw : 0;
		int last = i + 1 == t->ncols;
		if (i)
			fputs("  ", f);
		if (t->right & (1u << i))
			fprintf(f, "%*s", (int)pad, "");
		fputs(row[i], f);
		if (!(t->right & (1u << i)) && !last)
			fprintf(f, "%*s", (int)pad, "");
	}
	fputc('\n', f);
}

void ctl_table_print(const ctl_table *t, FILE *f)
{
	size_t w[TABLE_COLS_MAX];
	if (!t)
		return;
	for (size_t i = 0; i < t->ncols; i++) {
		w[i] = width(t->head[i]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t cw = width(t->cells[r * t->ncols + i]);
			if (cw > w[i])
				w[i] = cw;
		}
	}
	print_row(t, f, t->head, w);
	for (size_t r = 0; r < t->nrows; r++)
		print_row(t, f, t->cells + r * t->ncols, w);
}

void ctl_table_free(ctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ncols; i++)
		free(t->head[i]);
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* ---- JSON ---- */

void ctl_json_init(ctl_json *j, FILE *f)
{
	memset(j, 0, sizeof *j);
	j->f = f;
	j->first[0] = 1;
}

/* The length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static void put_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	fputc('"', f);
	while (*p) {
		size_t n;
		if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p++, f);
			continue;
		}
		if (*p < 0x20 || *p == 0x7f) {
			switch (*p) {
			case '\n':
				fputs("\\n", f);
				break;
			case '\t':
				fputs("\\t", f);
				break;
			case '\r':
				fputs("\\r", f);
				break;
			default:
				fprintf(f, "\\u%04x", *p);
			}
			p++;
			continue;
		}
		if (!(n = utf8_len(p))) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		fwrite(p, 1, n, f);
		p += n;
	}
	fputc('"', f);
}

/* The comma and the key before a value. */
static void prefix(ctl_json *j, const char *key)
{
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = 0;
	if (key) {
		put_string(j->f, key);
		fputc(':', j->f);
	}
}

static void open_(ctl_json *j, const char *key, int c)
{
	prefix(j, key);
	fputc(c, j->f);
	if (j->depth + 1 < CTL_JSON_DEPTH)
		j->depth++;
	j->first[j->depth] = 1;
}

static void close_(ctl_json *j, int c)
{
	fputc(c, j->f);
	if (j->depth > 0)
		j->depth--;
}

void ctl_json_obj(ctl_json *j, const char *key)
{
	open_(j, key, '{');
}

void ctl_json_obj_end(ctl_json *j)
{
	close_(j, '}');
}

void ctl_json_arr(ctl_json *j, const char *key)
{
	open_(j, key, '[');
}

void ctl_json_arr_end(ctl_json *j)
{
	close_(j, ']');
}

void ctl_json_str(ctl_json *j, const char *key, const char *s)
{
	prefix(j, key);
	put_string(j->f, s);
}

void ctl_json_int(ctl_json *j, const char *key, int64_t v)
{
	prefix(j, key);
	fprintf(j->f, "%" PRId64, v);
}

void ctl_json_uint(ctl_json *j, const char *key, uint64_t v)
{
	prefix(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void ctl_json_bool(ctl_json *j, const char *key, int v)
{
	prefix(j, key);
	fputs(v ? "true" : "false", j->f);
}

void ctl_json_end(ctl_json *j)
{
	fputc('\n', j->f);
}

/* ---- durations and times ---- */

void ctl_fmt_duration(char *out, size_t len, int64_t ms)
{
	int64_t s, m, h, d;
	if (ms < 0)
		ms = 0;
	if (ms < 1000) {
		snprintf(out, len, "%" PRId64 "ms", ms);
		return;
	}
	s = ms / 1000;
	m = s / 60;
	h = m / 60;
	d = h / 24;
	if (d)
		snprintf(out, len, "%" PRId64 "d%02" PRId64 "h%02" PRId64 "m",
		         d, h % 24, m % 60);
	else if (h)
		snprintf(out, len, "%" PRId64 "h%02" PRId64 "m%02" PRId64 "s",
		         h, m % 60, s % 60);
	else if (m)
		snprintf(out, len, "%" PRId64 "m%02" PRId64 "s", m, s % 60);
	else
		snprintf(out, len, "%" PRId64 "s", s);
}

void ctl_fmt_time(char *out, size_t len, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || !gmtime_r(&t, &tm) ||
	    !strftime(out, len, "%Y-%m-%d %H:%M:%SZ", &tm))
		snprintf(out, len, "-");
}
