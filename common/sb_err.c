/*
 * Error reporting: see sb_err.h. Messages are kept to one line because they
 * end up in log lines and in the store's last_error column.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sb_common.h"

static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

int sb_err_set(struct sb_err *err, enum sb_code code, int cause, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->cause = cause;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	one_line(err->msg);
	return code;
}

int sb_err_prefix(struct sb_err *err, const char *fmt, ...)
{
	char prefix[128];
	char old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return SB_EINTERNAL;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Cutting the tail of a long message is intended: it stays one bounded line. */
	if (snprintf(err->msg, sizeof(err->msg), "%s: %.*s", prefix, (int)(sizeof(old) - 1),
		     old) < 0)
		err->msg[0] = '\0';
	one_line(err->msg);
	return err->code;
}

void sb_err_clear(struct sb_err *err)
{
	static const struct sb_err init = SB_ERR_INIT;

	if (err)
		*err = init;
}

const char *sb_code_name(int code)
{
	switch (code) {
	case SB_OK: return "ok";
	case SB_EINVAL: return "invalid";
	case SB_ENOTFOUND: return "not found";
	case SB_ETOOBIG: return "too big";
	case SB_EIO: return "i/o error";
	case SB_ETEMP: return "temporary";
	case SB_EREJECT: return "rejected";
	case SB_ECONFIG: return "configuration";
	case SB_EINTERNAL: return "internal";
	}
	return "unknown";
}
