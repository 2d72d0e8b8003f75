/*
 * Memory: allocation that aborts on exhaustion (as in git and Redis, so there
 * are no OOM branches), checked size arithmetic for sizes that come from
 * input, assertions for programmer mistakes, and wiping of secrets.
 */
#ifndef SB_MEM_H
#define SB_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Allocation: never return NULL; abort with a log line on exhaustion. Thread-safe. */
void *sb_xmalloc(size_t n);
void *sb_xcalloc(size_t count, size_t size);
void *sb_xrealloc(void *p, size_t n);
char *sb_xstrdup(const char *s);
char *sb_xstrndup(const char *s, size_t n);
/* printf into a new string; free with free(). */
char *sb_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Checked arithmetic: 0 on success, SB_ETOOBIG on overflow (out untouched). */
int sb_size_add(size_t *out, size_t a, size_t b);
int sb_size_mul(size_t *out, size_t a, size_t b);

/* Allocate an array of n elements of *p, aborting on overflow. */
#define SB_ALLOC_ARRAY(p, n) ((p) = sb_xcalloc((n) ? (n) : 1, sizeof(*(p))))

/* Programmer errors: log file:line (never data) and abort. */
#define SB_ASSERT(x) \
	((x) ? (void)0 : sb_assert_fail(#x, __FILE__, __LINE__))
_Noreturn void sb_assert_fail(const char *expr, const char *file, int line);

/* Wipe n bytes (not optimised away). */
void sb_wipe(void *p, size_t n);
/* Wipe a NUL-terminated secret, then free it. NULL is a no-op. */
void sb_secret_free(char *s);

#endif
