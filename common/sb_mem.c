/*
 * Allocation helpers: see sb_mem.h. Running out of memory ends the process;
 * the outbox state is in SQLite and a restart resumes where it stopped.
 */

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb_common.h"

static _Noreturn void oom(size_t n)
{
	char line[96];
	int len = snprintf(line, sizeof(line), "fatal: out of memory (%zu bytes)\n", n);

	/* No stdio buffering and no allocation on this path. */
	if (len > 0 && write(2, line, (size_t)len) < 0)
		abort();
	abort();
}

void *sb_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *sb_xcalloc(size_t count, size_t size)
{
	void *p;

	if (size && count > SIZE_MAX / size)
		oom(SIZE_MAX);
	p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		oom(count * size);
	return p;
}

void *sb_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

char *sb_xstrdup(const char *s)
{
	return sb_xstrndup(s, strlen(s));
}

char *sb_xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = sb_xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *sb_xasprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	SB_ASSERT(n >= 0);
	p = sb_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

int sb_size_add(size_t *out, size_t a, size_t b)
{
	size_t r;

	if (__builtin_add_overflow(a, b, &r))
		return SB_ETOOBIG;
	*out = r;
	return 0;
}

int sb_size_mul(size_t *out, size_t a, size_t b)
{
	size_t r;

	if (__builtin_mul_overflow(a, b, &r))
		return SB_ETOOBIG;
	*out = r;
	return 0;
}

void sb_assert_fail(const char *expr, const char *file, int line)
{
	char msg[512];
	int len = snprintf(msg, sizeof(msg), "fatal: assertion failed at %s:%d: %s\n",
			   file, line, expr);

	if (len > 0 && write(2, msg, (size_t)len) < 0)
		abort();
	abort();
}

void sb_wipe(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

void sb_secret_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}
