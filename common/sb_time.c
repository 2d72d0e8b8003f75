/*
 * Time helpers: see sb_time.h. Calendar conversions use timegm/gmtime_r
 * only; the process never depends on the local time zone.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sb_common.h"
#include "sb_time.h"

int64_t sb_now(void)
{
	return (int64_t)time(NULL);
}

int64_t sb_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sb_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *sb_time_iso8601(int64_t t, char *out, size_t out_size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, out_size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

char *sb_time_date(int64_t t, char *out, size_t out_size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, out_size, "%Y-%m-%d", &tm);
	return out;
}

static int digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return SB_EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int days_in_month(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return d[m - 1];
}

static int parse_ymd(const char *s, struct tm *tm)
{
	int y, m, d;

	if (strlen(s) < 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &y) ||
	    digits(s + 5, 2, &m) || digits(s + 8, 2, &d))
		return SB_EINVAL;
	if (y < 1900 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return SB_EINVAL;
	memset(tm, 0, sizeof(*tm));
	tm->tm_year = y - 1900;
	tm->tm_mon = m - 1;
	tm->tm_mday = d;
	return 0;
}

int sb_time_parse_date(const char *s, int64_t *out)
{
	struct tm tm;

	if (strlen(s) != 10 || parse_ymd(s, &tm) < 0)
		return SB_EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}

int sb_time_parse_iso8601(const char *s, int64_t *out)
{
	struct tm tm;
	const char *p;
	int hh, mm, ss, off = 0;

	if (parse_ymd(s, &tm) < 0 || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
		return SB_EINVAL;
	p = s + 11;
	if (strlen(p) < 8 || p[2] != ':' || p[5] != ':' || digits(p, 2, &hh) ||
	    digits(p + 3, 2, &mm) || digits(p + 6, 2, &ss) || hh > 23 || mm > 59 || ss > 60)
		return SB_EINVAL;
	p += 8;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return SB_EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;

		if (strlen(p) != 6 || p[3] != ':' || digits(p + 1, 2, &oh) ||
		    digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return SB_EINVAL;
		off = (oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return SB_EINVAL;
	}
	if (*p)
		return SB_EINVAL;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	*out = (int64_t)timegm(&tm) - off;
	return 0;
}

int sb_time_parse_http(const char *s, int64_t *out)
{
	struct tm tm;
	char *end;

	memset(&tm, 0, sizeof(tm));
	/* IMF-fixdate, RFC 850 and asctime, in that order (RFC 9110 5.6.7). */
	end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%A, %d-%b-%y %H:%M:%S GMT", &tm);
	}
	if (!end || *end) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%a %b %e %H:%M:%S %Y", &tm);
	}
	if (!end || *end)
		return SB_EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}
