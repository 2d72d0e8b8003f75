/*
 * struct sb_buf: a growable byte buffer with a hard ceiling (curl's dynbuf,
 * git's strbuf). Always NUL-terminated, binary-safe through len.
 *
 *	struct sb_buf b = SB_BUF_INIT(SB_MAX_JSON_BODY);
 *	if (sb_buf_addf(&b, "n=%d", n) < 0) ...
 *	sb_buf_release(&b);
 *
 * Appending past max returns SB_ETOOBIG and leaves the buffer as it was.
 * Not thread-safe; a buffer belongs to one thread at a time.
 */
#ifndef SB_BUF_H
#define SB_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct sb_buf {
	char *buf;      /* NULL until the first append; sb_buf_cstr() never returns NULL */
	size_t len;
	size_t alloc;
	size_t max;     /* content may not exceed this many bytes */
};

#define SB_BUF_INIT(maxlen) { NULL, 0, 0, (maxlen) }

/* Set up an empty buffer with a ceiling; allocates nothing. */
void sb_buf_init(struct sb_buf *b, size_t max);
/* Free the contents; the buffer can be reused (same max). NULL is a no-op. */
void sb_buf_release(struct sb_buf *b);
/* Keep the allocation, drop the contents. */
void sb_buf_reset(struct sb_buf *b);
/* Hand the contents to the caller (free with free(), never NULL); the buffer is left empty. */
char *sb_buf_detach(struct sb_buf *b, size_t *len_out);

/*
 * Make room for extra more bytes in one allocation (a body whose length is
 * announced); 0, or SB_ETOOBIG past the ceiling (buffer unchanged).
 */
int sb_buf_reserve(struct sb_buf *b, size_t extra);

/* Append; 0 or SB_ETOOBIG (buffer unchanged). */
int sb_buf_add(struct sb_buf *b, const void *p, size_t len);
int sb_buf_adds(struct sb_buf *b, const char *s);
int sb_buf_addch(struct sb_buf *b, char c);
int sb_buf_addf(struct sb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sb_buf_vaddf(struct sb_buf *b, const char *fmt, va_list ap);

/* Contents as a C string; "" for an empty buffer. Borrowed until the next change. */
const char *sb_buf_cstr(const struct sb_buf *b);

#endif
