/*
 * The error contract of send-bridge (STYLE.md 2.3): a function that can fail
 * returns 0 or a negative enum sb_code, and fills a caller-supplied
 * struct sb_err (which may be NULL). No thread-local state.
 */
#ifndef SB_ERR_H
#define SB_ERR_H

enum sb_code {
	SB_OK = 0,
	SB_EINVAL = -1,
	SB_ENOTFOUND = -2,
	SB_ETOOBIG = -3,
	SB_EIO = -4,
	SB_ETEMP = -5,      /* network, timeout, HTTP 429/5xx: retried later */
	SB_EREJECT = -6,    /* the platform said no (4xx, validation): never retried as is */
	SB_ECONFIG = -7,
	SB_EINTERNAL = -8,
};

struct sb_err {
	enum sb_code code;
	int cause;          /* errno, CURLcode or SQLite rc; 0 if none */
	int http;           /* HTTP status, 0 if there was no exchange */
	long retry_after;   /* seconds the platform asked to wait, -1 if it did not say */
	char msg[256];      /* one line, never personal data */
};

#define SB_ERR_INIT { SB_OK, 0, 0, -1, "" }

/*
 * Fill err (if not NULL) with code, cause and a printf-style message, and
 * return code so that callers can write `return sb_err_set(...)`. The
 * message is cut at sizeof(msg) - 1. Control characters are replaced so
 * that the text is always one line.
 */
int sb_err_set(struct sb_err *err, enum sb_code code, int cause, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Prefix the existing message with "what: " (context while passing an error
 * up); returns err->code.
 */
int sb_err_prefix(struct sb_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset err to SB_ERR_INIT; NULL is a no-op. */
void sb_err_clear(struct sb_err *err);

/* A static lower-case name for the code ("invalid", "temporary", ...). */
const char *sb_code_name(int code);

#endif
