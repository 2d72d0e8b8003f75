/*
 * Time helpers. Times are int64_t: seconds or milliseconds since the epoch,
 * UTC. Thread-safe (gmtime_r/timegm only).
 */
#ifndef SB_TIME_H
#define SB_TIME_H

#include <stddef.h>
#include <stdint.h>

int64_t sb_now(void);          /* wall clock, seconds */
int64_t sb_now_ms(void);       /* wall clock, milliseconds */
int64_t sb_mono_ms(void);      /* monotonic clock, milliseconds: for timeouts and backoff */

/* "2026-11-24T10:00:00Z" into out (>= 21 bytes); returns out. */
char *sb_time_iso8601(int64_t t, char *out, size_t out_size);
/* "2026-11-24" into out (>= 11 bytes). */
char *sb_time_date(int64_t t, char *out, size_t out_size);

/*
 * Parse an RFC 3339 / ISO 8601 UTC time "YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm)".
 * Returns 0 or SB_EINVAL.
 */
int sb_time_parse_iso8601(const char *s, int64_t *out);
/* Parse "YYYY-MM-DD" as midnight UTC; validates the calendar date. */
int sb_time_parse_date(const char *s, int64_t *out);

/*
 * Parse an HTTP date (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", plus the
 * obsolete RFC 850 and asctime forms as RFC 9110 asks). 0 or SB_EINVAL.
 */
int sb_time_parse_http(const char *s, int64_t *out);

#endif
