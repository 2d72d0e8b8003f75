/*
 * Bounded buffers: see sb_buf.h. The ceiling is checked before any growth,
 * so a hostile peer cannot make the process allocate past it.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"

void sb_buf_init(struct sb_buf *b, size_t max)
{
	b->buf = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max;
}

void sb_buf_release(struct sb_buf *b)
{
	if (!b)
		return;
	free(b->buf);
	b->buf = NULL;
	b->len = 0;
	b->alloc = 0;
}

void sb_buf_reset(struct sb_buf *b)
{
	b->len = 0;
	if (b->buf)
		b->buf[0] = '\0';
}

char *sb_buf_detach(struct sb_buf *b, size_t *len_out)
{
	char *p = b->buf;

	if (!p) {
		p = sb_xmalloc(1);
		p[0] = '\0';
	}
	if (len_out)
		*len_out = b->len;
	b->buf = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}

static int grow(struct sb_buf *b, size_t extra)
{
	size_t need, want;

	if (sb_size_add(&need, b->len, extra) < 0 || need > b->max)
		return SB_ETOOBIG;
	if (need + 1 <= b->alloc)
		return 0;
	want = b->alloc ? b->alloc : 64;
	while (want < need + 1)
		want = want > SIZE_MAX / 2 ? need + 1 : want * 2;
	b->buf = sb_xrealloc(b->buf, want);
	b->alloc = want;
	return 0;
}

int sb_buf_reserve(struct sb_buf *b, size_t extra)
{
	size_t need;

	if (sb_size_add(&need, b->len, extra) < 0 || need > b->max)
		return SB_ETOOBIG;
	if (need + 1 > b->alloc) {
		b->buf = sb_xrealloc(b->buf, need + 1);
		b->alloc = need + 1;
	}
	return 0;
}

int sb_buf_add(struct sb_buf *b, const void *p, size_t len)
{
	if (grow(b, len) < 0)
		return SB_ETOOBIG;
	if (len)
		memcpy(b->buf + b->len, p, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return 0;
}

int sb_buf_adds(struct sb_buf *b, const char *s)
{
	return sb_buf_add(b, s, strlen(s));
}

int sb_buf_addch(struct sb_buf *b, char c)
{
	return sb_buf_add(b, &c, 1);
}

int sb_buf_vaddf(struct sb_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return SB_EINVAL;
	if (grow(b, (size_t)n) < 0)
		return SB_ETOOBIG;
	vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int sb_buf_addf(struct sb_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = sb_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *sb_buf_cstr(const struct sb_buf *b)
{
	return b->buf ? b->buf : "";
}
