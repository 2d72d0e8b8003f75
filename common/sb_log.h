/*
 * Logging: one line per event on stderr (journald adds time and unit), or in
 * a file reopened on SIGHUP. Format: "<level> <component>: <message>" where
 * the message carries ids as key=value.
 *
 * Personal data never appears in clear (STYLE.md 2.6): use sb_pii_tag() to
 * follow one person across lines, sb_log_quote() for text from a platform.
 * All functions are thread-safe; a line is written with one write(2).
 */
#ifndef SB_LOG_H
#define SB_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum sb_log_level {
	SB_LOG_DEBUG = 0,
	SB_LOG_INFO = 1,
	SB_LOG_WARN = 2,
	SB_LOG_ERROR = 3,
};

/* Lines below this level are dropped before formatting. Default: INFO. */
void sb_log_set_level(enum sb_log_level lvl);
/* "debug", "info", "warn"/"warning", "error" -> level; SB_EINVAL for anything else. */
int sb_log_level_parse(const char *name, enum sb_log_level *out);
bool sb_log_enabled(enum sb_log_level lvl);

/*
 * Send lines to path (appended, created 0640) instead of stderr; NULL goes
 * back to stderr. Returns 0 or SB_EIO (the previous target is kept).
 */
int sb_log_open(const char *path);
/* Reopen the current file (after logrotate): called from the main loop on SIGHUP. */
int sb_log_reopen(void);

void sb_log(enum sb_log_level lvl, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Escape untrusted text for a log line or err.msg: control characters and
 * non-ASCII bytes become \xNN, '"' and '\' are escaped, and the result is
 * cut at out_size - 1 with "..." when longer. Returns out.
 */
char *sb_log_quote(const char *s, size_t len, char *out, size_t out_size);

/*
 * Installation key for sb_pii_tag (at least 16 bytes). Until it is set, a
 * random per-process key is used, so tags are stable only within one run.
 */
void sb_pii_set_key(const void *key, size_t len);

/*
 * A short keyed tag for a personal value (tax code, PEC), "cf#3f9a1c2e":
 * an HMAC-SHA256 truncated to 32 bits, so lines about one person can be
 * matched without the value being recoverable by enumeration.
 * prefix is a short label ("cf", "pec"). Writes into out (>= 16 bytes).
 */
char *sb_pii_tag(const char *prefix, const char *value, char *out, size_t out_size);

#define SB_PII_TAG_SIZE 24

/*
 * Mask a value for display to staff who did not ask for personal data:
 * keeps the first and last two characters of a tax code
 * ("RS************1U"), and for an e-mail address the first character and
 * the domain ("m***@pec.example.it"); names keep their initials ("M. R.").
 */
enum sb_pii_kind { SB_PII_TAXID, SB_PII_EMAIL, SB_PII_NAME, SB_PII_ADDRESS };
char *sb_pii_mask(enum sb_pii_kind kind, const char *value, char *out, size_t out_size);

#endif
