/* The input line editor. */
#include "tui_input.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

void tui_input_init(tui_input *in)
{
	memset(in, 0, sizeof *in);
}

void tui_input_fini(tui_input *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < in->n_hist; i++)
		free(in->hist[i]);
	in->n_hist = 0;
}

int tui_input_insert(tui_input *in, wchar_t ch)
{
	if (in->len >= TUI_INPUT_MAX)
		return 0;
	memmove(in->buf + in->cur + 1, in->buf + in->cur,
	        (in->len - in->cur) * sizeof(wchar_t));
	in->buf[in->cur++] = ch;
	in->len++;
	in->buf[in->len] = 0;
	return 1;
}

int tui_input_backspace(tui_input *in)
{
	if (in->cur == 0)
		return 0;
	in->cur--;
	return tui_input_delete(in);
}

int tui_input_delete(tui_input *in)
{
	if (in->cur >= in->len)
		return 0;
	memmove(in->buf + in->cur, in->buf + in->cur + 1,
	        (in->len - in->cur - 1) * sizeof(wchar_t));
	in->len--;
	in->buf[in->len] = 0;
	return 1;
}

int tui_input_left(tui_input *in)
{
	if (in->cur == 0)
		return 0;
	in->cur--;
	return 1;
}

int tui_input_right(tui_input *in)
{
	if (in->cur >= in->len)
		return 0;
	in->cur++;
	return 1;
}

int tui_input_home(tui_input *in)
{
	int moved = in->cur != 0;
	in->cur = 0;
	return moved;
}

int tui_input_end(tui_input *in)
{
	int moved = in->cur != in->len;
	in->cur = in->len;
	return moved;
}

int tui_input_kill_line(tui_input *in)
{
	if (in->cur == 0)
		return 0;
	memmove(in->buf, in->buf + in->cur,
	        (in->len - in->cur) * sizeof(wchar_t));
	in->len -= in->cur;
	in->cur = 0;
	in->buf[in->len] = 0;
	return 1;
}

int tui_input_kill_word(tui_input *in)
{
	size_t start = in->cur;
	if (start == 0)
		return 0;
	while (start > 0 && iswspace((wint_t)in->buf[start - 1]))
		start--;
	while (start > 0 && !iswspace((wint_t)in->buf[start - 1]))
		start--;
	memmove(in->buf + start, in->buf + in->cur,
	        (in->len - in->cur) * sizeof(wchar_t));
	in->len -= in->cur - start;
	in->cur = start;
	in->buf[in->len] = 0;
	return 1;
}

static void set_wide(tui_input *in, const wchar_t *w, size_t n)
{
	if (n > TUI_INPUT_MAX)
		n = TUI_INPUT_MAX;
	memcpy(in->buf, w, n * sizeof(wchar_t));
	in->len = n;
	in->cur = n;
	in->buf[n] = 0;
}

void tui_input_set(tui_input *in, const char *utf8)
{
	in->len = tui_utf8_to_wide(utf8, strlen(utf8), in->buf,
	                           TUI_INPUT_MAX + 1);
	in->cur = in->len;
}

int tui_input_history_prev(tui_input *in)
{
	if (in->n_hist == 0 || in->hist_pos == 0)
		return 0;
	if (in->hist_pos >= in->n_hist) {
		memcpy(in->saved, in->buf, in->len * sizeof(wchar_t));
		in->saved_len = in->len;
		in->hist_pos = in->n_hist;
	}
	in->hist_pos--;
	tui_input_set(in, in->hist[in->hist_pos]);
	return 1;
}

int tui_input_history_next(tui_input *in)
{
	if (in->hist_pos >= in->n_hist)
		return 0;
	in->hist_pos++;
	if (in->hist_pos == in->n_hist)
		set_wide(in, in->saved, in->saved_len);
	else
		tui_input_set(in, in->hist[in->hist_pos]);
	return 1;
}

char *tui_input_text(const tui_input *in)
{
	return tui_wide_to_utf8(in->buf, in->len);
}

char *tui_input_take(tui_input *in)
{
	char *s = tui_input_text(in);
	if (!s)
		return NULL;
	if (s[0] && (in->n_hist == 0 ||
	             strcmp(in->hist[in->n_hist - 1], s) != 0)) {
		char *h = strdup(s);
		if (h) {
			if (in->n_hist == TUI_HISTORY_MAX) {
				free(in->hist[0]);
				memmove(in->hist, in->hist + 1,
				        (TUI_HISTORY_MAX - 1) * sizeof(char *));
				in->n_hist--;
			}
			in->hist[in->n_hist++] = h;
		}
	}
	in->hist_pos = in->n_hist;
	in->len = in->cur = 0;
	in->buf[0] = 0;
	in->saved_len = 0;
	return s;
}

size_t tui_utf8_to_wide(const char *s, size_t len, wchar_t *out,
                        size_t outlen)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0;

	if (outlen == 0)
		return 0;
	while (i < len && o + 1 < outlen) {
		uint32_t cp;
		int n;
		unsigned char b = p[i];
		if (b < 0x80) {
			cp = b;
			n = 0;
		} else if ((b & 0xe0) == 0xc0) {
			cp = b & 0x1f;
			n = 1;
		} else if ((b & 0xf0) == 0xe0) {
			cp = b & 0x0f;
			n = 2;
		} else if ((b & 0xf8) == 0xf0) {
			cp = b & 0x07;
			n = 3;
		} else {
			out[o++] = 0xfffd;
			i++;
			continue;
		}
		{
			int ok = 1;
			for (int k = 1; k <= n; k++) {
				if (i + (size_t)k >= len) {
					/* Truncated at the end: one
					 * replacement for all of it. */
					out[o++] = 0xfffd;
					i = len;
					ok = -1;
					break;
				}
				if ((p[i + k] & 0xc0) != 0x80) {
					ok = 0;
					break;
				}
				cp = (cp << 6) | (p[i + k] & 0x3f);
			}
			if (ok < 0)
				break;
			if (!ok || (n == 1 && cp < 0x80) ||
			    (n == 2 && cp < 0x800) ||
			    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
			    (cp >= 0xd800 && cp <= 0xdfff)) {
				out[o++] = 0xfffd;
				i++;
				continue;
			}
		}
		out[o++] = (wchar_t)cp;
		i += (size_t)n + 1;
	}
	out[o] = 0;
	return o;
}

char *tui_wide_to_utf8(const wchar_t *w, size_t n)
{
	char *s = malloc(n * 4 + 1), *o = s;
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		uint32_t cp = (uint32_t)w[i];
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			cp = 0xfffd;
		if (cp < 0x80) {
			*o++ = (char)cp;
		} else if (cp < 0x800) {
			*o++ = (char)(0xc0 | (cp >> 6));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			*o++ = (char)(0xe0 | (cp >> 12));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else {
			*o++ = (char)(0xf0 | (cp >> 18));
			*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		}
	}
	*o = '\0';
	return s;
}
