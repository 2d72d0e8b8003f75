/*
 * Logging and personal-data masking: see sb_log.h.
 * Each line is formatted into a stack buffer and written with one write(2)
 * so that lines from worker threads never interleave.
 */

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_log.h"

static atomic_int log_level = SB_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = 2;
static char *log_path;

static pthread_mutex_t pii_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char pii_key[32];
static size_t pii_key_len;

void sb_log_set_level(enum sb_log_level lvl)
{
	atomic_store(&log_level, (int)lvl);
}

bool sb_log_enabled(enum sb_log_level lvl)
{
	return (int)lvl >= atomic_load(&log_level);
}

int sb_log_level_parse(const char *name, enum sb_log_level *out)
{
	static const struct { const char *name; enum sb_log_level lvl; } names[] = {
		{ "debug", SB_LOG_DEBUG }, { "info", SB_LOG_INFO },
		{ "warn", SB_LOG_WARN }, { "warning", SB_LOG_WARN },
		{ "error", SB_LOG_ERROR },
	};
	for (size_t i = 0; i < SB_ARRAY_SIZE(names); i++) {
		if (!strcmp(name, names[i].name)) {
			*out = names[i].lvl;
			return 0;
		}
	}
	return SB_EINVAL;
}

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int sb_log_open(const char *path)
{
	int fd = 2;

	if (path) {
		fd = open_log(path);
		if (fd < 0)
			return SB_EIO;
	}
	pthread_mutex_lock(&log_lock);
	if (log_fd != 2)
		close(log_fd);
	log_fd = fd;
	free(log_path);
	log_path = path ? sb_xstrdup(path) : NULL;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

int sb_log_reopen(void)
{
	int rc = 0;

	pthread_mutex_lock(&log_lock);
	if (log_path) {
		int fd = open_log(log_path);

		if (fd < 0) {
			rc = SB_EIO;
		} else {
			close(log_fd);
			log_fd = fd;
		}
	}
	pthread_mutex_unlock(&log_lock);
	return rc;
}

static const char *level_name(enum sb_log_level lvl)
{
	switch (lvl) {
	case SB_LOG_DEBUG: return "debug";
	case SB_LOG_INFO: return "info";
	case SB_LOG_WARN: return "warn";
	case SB_LOG_ERROR: return "error";
	}
	return "?";
}

void sb_log(enum sb_log_level lvl, const char *component, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n, m;
	size_t len;

	if (!sb_log_enabled(lvl))
		return;
	n = snprintf(line, sizeof(line), "%s %s: ", level_name(lvl), component);
	if (n < 0)
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	len = (size_t)n + (size_t)m;
	if (len >= sizeof(line) - 1)
		len = sizeof(line) - 2;
	/* A message is one line whatever it contains. */
	for (size_t i = (size_t)n; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	pthread_mutex_lock(&log_lock);
	if (write(log_fd, line, len) < 0) {
		/* Nowhere left to report it. */
	}
	pthread_mutex_unlock(&log_lock);
}

char *sb_log_quote(const char *s, size_t len, char *out, size_t out_size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	SB_ASSERT(out_size >= 8);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[4];
		size_t n;

		if (c == '"' || c == '\\') {
			tmp[0] = '\\'; tmp[1] = (char)c; n = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			tmp[0] = '\\'; tmp[1] = 'x'; tmp[2] = hex[c >> 4]; tmp[3] = hex[c & 15];
			n = 4;
		} else {
			tmp[0] = (char)c; n = 1;
		}
		if (o + n + 4 > out_size) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, tmp, n);
		o += n;
	}
	out[o] = '\0';
	return out;
}

void sb_pii_set_key(const void *key, size_t len)
{
	SB_ASSERT(len >= 16);
	pthread_mutex_lock(&pii_lock);
	pii_key_len = len < sizeof(pii_key) ? len : sizeof(pii_key);
	memcpy(pii_key, key, pii_key_len);
	pthread_mutex_unlock(&pii_lock);
}

char *sb_pii_tag(const char *prefix, const char *value, char *out, size_t out_size)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;

	pthread_mutex_lock(&pii_lock);
	if (!pii_key_len) {
		if (RAND_bytes(pii_key, sizeof(pii_key)) != 1)
			SB_ASSERT(!"RAND_bytes failed");
		pii_key_len = sizeof(pii_key);
	}
	HMAC(EVP_sha256(), pii_key, (int)pii_key_len, (const unsigned char *)value,
	     strlen(value), mac, &mac_len);
	pthread_mutex_unlock(&pii_lock);
	snprintf(out, out_size, "%s#%02x%02x%02x%02x", prefix, mac[0], mac[1], mac[2], mac[3]);
	return out;
}

char *sb_pii_mask(enum sb_pii_kind kind, const char *v, char *out, size_t out_size)
{
	size_t len = strlen(v), o = 0;

	SB_ASSERT(out_size >= 8);
	out[0] = '\0';
	switch (kind) {
	case SB_PII_TAXID:
		for (size_t i = 0; i < len && o + 1 < out_size; i++)
			out[o++] = (i < 2 || i + 2 >= len) ? v[i] : '*';
		out[o] = '\0';
		break;
	case SB_PII_EMAIL: {
		const char *at = strchr(v, '@');

		snprintf(out, out_size, "%c***%s", len ? v[0] : '?', at ? at : "");
		break;
	}
	case SB_PII_NAME: {
		bool start = true;

		for (size_t i = 0; i < len && o + 4 < out_size; i++) {
			if (v[i] == ' ') {
				start = true;
			} else if (start) {
				if (o)
					out[o++] = ' ';
				out[o++] = v[i];
				/* Keep a whole UTF-8 character as the initial. */
				while (i + 1 < len && ((unsigned char)v[i + 1] & 0xc0) == 0x80 &&
				       o + 4 < out_size)
					out[o++] = v[++i];
				out[o++] = '.';
				start = false;
			}
		}
		out[o] = '\0';
		break;
	}
	case SB_PII_ADDRESS:
		snprintf(out, out_size, "***");
		break;
	}
	return out;
}
