/*
 * The base every send-bridge source includes: error contract, memory,
 * buffers, limits, parsing of numbers, and (last) the banned functions.
 */
#ifndef SB_COMMON_H
#define SB_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_limits.h"
#include "sb_err.h"
#include "sb_mem.h"
#include "sb_buf.h"

#define SB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Parse a decimal unsigned number of (s, len) bytes, no sign, no spaces,
 * no leading '+'; at most max. Returns 0, or SB_EINVAL (not a number) or
 * SB_ETOOBIG (above max); out untouched on failure.
 */
int sb_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);

/* Same for a NUL-terminated string. */
int sb_parse_u64z(const char *s, uint64_t max, uint64_t *out);

/* true if (s, len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool sb_utf8_valid(const char *s, size_t len);

/* Number of code points in a valid UTF-8 string. */
size_t sb_utf8_len(const char *s);

#include "sb_banned.h"

#endif
