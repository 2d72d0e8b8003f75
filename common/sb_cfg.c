/*
 * Configuration loader: see sb_cfg.h.
 *
 * inih does the INI syntax; this file counts lines itself (Debian's inih is
 * built without line numbers in the handler) by feeding inih through its own
 * reader, then checks every value against the schema in sb_cfg_keys.c.
 * Problems are collected rather than returned one by one, so that
 * `send-bridge config check` shows all of them in one run.
 */
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "sb_ids.h"
#include "sb_log.h"

struct entry {
	char *section;
	char *key;
	char *value;
	int line;
};

struct sb_cfg {
	char *path;
	char *dir;
	struct entry *e;
	size_t n;
	char **offices;
	size_t noffices;
};

struct load_ctx {
	struct sb_cfg *cfg;
	struct sb_problems *probs;
	FILE *f;
	int line;           /* line of the text inih is handling now */
	bool at_line_start;
	char **sections_seen;
	size_t nsections;
};

static const char *const known_sections[] = {
	"service", "outbox", "store", "send", "pdnd", "anpr", "inad", "protocol", "web",
};

static void problem(struct load_ctx *x, int line, const char *section, const char *key,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void problem(struct load_ctx *x, int line, const char *section, const char *key,
		    const char *fmt, ...)
{
	char where[512], msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0 && key)
		snprintf(where, sizeof(where), "%s:%d: [%s] %s", x->cfg->path, line, section, key);
	else if (line > 0)
		snprintf(where, sizeof(where), "%s:%d: [%s]", x->cfg->path, line, section);
	else if (key)
		snprintf(where, sizeof(where), "%s: [%s] %s", x->cfg->path, section, key);
	else
		snprintf(where, sizeof(where), "%s: [%s]", x->cfg->path, section);
	if (x->probs)
		sb_problems_add(x->probs, where, "%s", msg);
}

static void note_section(struct load_ctx *x, const char *section);

/*
 * A "[name]" line: inih reports sections only with their keys, so an empty
 * [office.NAME] would go unseen; the reader notes every header itself.
 */
static void header_line(struct load_ctx *x, const char *line)
{
	const char *p = line, *end;
	char name[256];

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '[')
		return;
	end = strchr(p, ']');
	if (!end || (size_t)(end - p - 1) >= sizeof(name))
		return;
	memcpy(name, p + 1, (size_t)(end - p - 1));
	name[end - p - 1] = '\0';
	note_section(x, name);
}

/* Line-counting reader for inih; an over-long line is reported and skipped. */
static char *reader(char *str, int num, void *stream)
{
	struct load_ctx *x = stream;
	size_t len;
	int c;

	if (!fgets(str, num, x->f))
		return NULL;
	if (x->at_line_start)
		x->line++;
	len = strlen(str);
	x->at_line_start = len > 0 && str[len - 1] == '\n';
	if (!x->at_line_start && !feof(x->f)) {
		while ((c = fgetc(x->f)) != EOF && c != '\n')
			;
		x->at_line_start = true;
		if (x->probs) {
			char where[300];

			snprintf(where, sizeof(where), "%s:%d", x->cfg->path, x->line);
			sb_problems_add(x->probs, where, "line longer than %d characters", num - 1);
		}
		str[0] = '\n';
		str[1] = '\0';
	}
	header_line(x, str);
	return str;
}

static bool is_office_section(const char *s)
{
	if (strncmp(s, "office.", 7) || !s[7])
		return false;
	for (const char *p = s + 7; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_'))
			return false;
	return true;
}

static const struct sb_cfg_key *schema_find(const char *section, const char *key)
{
	bool office = is_office_section(section);

	for (const struct sb_cfg_key *k = sb_cfg_keys; k->section; k++) {
		if (strcmp(k->key, key))
			continue;
		if (office ? !strcmp(k->section, "office.*") : !strcmp(k->section, section))
			return k;
	}
	return NULL;
}

static bool section_known(const char *s)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(known_sections); i++)
		if (!strcmp(s, known_sections[i]))
			return true;
	return is_office_section(s);
}

static struct entry *entry_find(const struct sb_cfg *c, const char *section, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->e[i].section, section) && !strcmp(c->e[i].key, key))
			return &c->e[i];
	return NULL;
}

static bool seen_section(struct load_ctx *x, const char *section)
{
	for (size_t i = 0; i < x->nsections; i++)
		if (!strcmp(x->sections_seen[i], section))
			return true;
	return false;
}

static void note_section(struct load_ctx *x, const char *section)
{
	if (seen_section(x, section))
		return;
	x->sections_seen = sb_xrealloc(x->sections_seen,
				       (x->nsections + 1) * sizeof(*x->sections_seen));
	x->sections_seen[x->nsections++] = sb_xstrdup(section);
	if (!section_known(section)) {
		problem(x, x->line, section, NULL,
			"unknown section (expected service, outbox, store, send, pdnd, anpr, inad, "
			"protocol, web or office.NAME)");
		return;
	}
	if (is_office_section(section)) {
		struct sb_cfg *c = x->cfg;

		c->offices = sb_xrealloc(c->offices, (c->noffices + 1) * sizeof(*c->offices));
		c->offices[c->noffices++] = sb_xstrdup(section + 7);
	}
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *x = user;
	const struct sb_cfg_key *k;
	struct sb_cfg *c = x->cfg;
	struct entry *prev;
	char file_key[128];

	if (!name) {
		/* inih announces a section with a NULL name when built that way; ours is not. */
		return 1;
	}
	note_section(x, section);
	if (!section_known(section))
		return 1;
	k = schema_find(section, name);
	if (!k) {
		snprintf(file_key, sizeof(file_key), "%s_file", name);
		if (schema_find(section, file_key))
			problem(x, x->line, section, name,
				"secrets are not written in the configuration: put it in a file "
				"readable only by the service and name that file with '%s'",
				file_key);
		else
			problem(x, x->line, section, name, "unknown key");
		return 1;
	}
	prev = entry_find(c, section, name);
	if (prev) {
		problem(x, x->line, section, name, "set twice (first at line %d)", prev->line);
		return 1;
	}
	c->e = sb_xrealloc(c->e, (c->n + 1) * sizeof(*c->e));
	c->e[c->n].section = sb_xstrdup(section);
	c->e[c->n].key = sb_xstrdup(name);
	c->e[c->n].value = sb_xstrdup(value);
	c->e[c->n].line = x->line;
	c->n++;
	return 1;
}

static bool choice_ok(const char *choices, const char *word, size_t len)
{
	const char *p = choices;

	while (*p) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);

		if (n == len && !strncmp(p, word, len))
			return true;
		if (!bar)
			break;
		p = bar + 1;
	}
	return false;
}

static bool url_ok(const char *v, const char **why)
{
	const char *host;

	if (!strncmp(v, "https://", 8)) {
		host = v + 8;
	} else if (!strncmp(v, "http://", 7)) {
		host = v + 7;
		/* Plain HTTP carries personal data in clear: only to this machine (simulators). */
		if (strncmp(host, "127.", 4) && strncmp(host, "[::1]", 5) &&
		    strncmp(host, "localhost", 9)) {
			*why = "plain http is allowed only to loopback "
			       "(127.0.0.1, [::1], localhost); use https";
			return false;
		}
	} else {
		*why = "must start with https://";
		return false;
	}
	if (!*host || *host == '/' || strchr(v, ' ')) {
		*why = "has no host";
		return false;
	}
	return true;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	for (size_t i = 0; i < SB_ARRAY_SIZE(yes); i++) {
		if (!strcmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return SB_EINVAL;
}

static int parse_int(const char *v, int64_t *out)
{
	uint64_t u;
	bool neg = v[0] == '-';

	if (sb_parse_u64z(v + neg, INT64_MAX, &u) < 0)
		return SB_EINVAL;
	*out = neg ? -(int64_t)u : (int64_t)u;
	return 0;
}

static char *absolute(const struct sb_cfg *c, const char *v)
{
	if (v[0] == '/')
		return sb_xstrdup(v);
	return sb_xasprintf("%s/%s", c->dir, v);
}

static void check_value(struct load_ctx *x, struct entry *e, const struct sb_cfg_key *k)
{
	const char *v = e->value, *why = NULL;
	struct sb_err err = SB_ERR_INIT;
	enum sb_log_level lvl;
	struct stat st;
	int64_t n;
	bool b;

	if (!sb_utf8_valid(v, strlen(v))) {
		problem(x, e->line, e->section, e->key, "not valid UTF-8");
		return;
	}
	switch (k->type) {
	case SB_CFG_STR:
		if (k->max > 0 && sb_utf8_len(v) > (size_t)k->max)
			problem(x, e->line, e->section, e->key, "longer than %lld characters",
				(long long)k->max);
		break;
	case SB_CFG_INT:
		if (parse_int(v, &n) < 0)
			problem(x, e->line, e->section, e->key, "'%s' is not a whole number", v);
		else if (n < k->min || n > k->max)
			problem(x, e->line, e->section, e->key, "%lld is out of range %lld..%lld",
				(long long)n, (long long)k->min, (long long)k->max);
		break;
	case SB_CFG_BOOL:
		if (parse_bool(v, &b) < 0)
			problem(x, e->line, e->section, e->key,
				"'%s' is not on/off (also yes/no, true/false, 1/0)", v);
		break;
	case SB_CFG_ENUM:
		if (!choice_ok(k->choices, v, strlen(v)))
			problem(x, e->line, e->section, e->key, "'%s' is not one of %s", v,
				k->choices);
		break;
	case SB_CFG_LIST: {
		const char *p = v;

		while (*p) {
			size_t len;

			while (*p == ' ' || *p == ',')
				p++;
			len = strcspn(p, ", ");
			if (!len)
				break;
			if (k->choices && !choice_ok(k->choices, p, len))
				problem(x, e->line, e->section, e->key, "'%.*s' is not one of %s",
					(int)(len > 64 ? 64 : len), p, k->choices);
			p += len;
		}
		break;
	}
	case SB_CFG_PATH:
	case SB_CFG_DIR:
	case SB_CFG_SECRET:
	case SB_CFG_FILE: {
		char *abs;

		if (!*v) {
			problem(x, e->line, e->section, e->key, "empty path");
			break;
		}
		abs = absolute(x->cfg, v);
		free(e->value);
		e->value = abs;
		if (k->type == SB_CFG_DIR && (stat(abs, &st) < 0 || !S_ISDIR(st.st_mode)))
			problem(x, e->line, e->section, e->key, "'%s' is not a folder", abs);
		if (k->type == SB_CFG_FILE && access(abs, R_OK) < 0)
			problem(x, e->line, e->section, e->key, "cannot read '%s': %s", abs,
				strerror(errno));
		if (k->type == SB_CFG_SECRET && sb_secret_file_check(abs, &err) < 0)
			problem(x, e->line, e->section, e->key, "%s", err.msg);
		break;
	}
	case SB_CFG_URL:
		if (!url_ok(v, &why))
			problem(x, e->line, e->section, e->key, "'%s' %s", v, why);
		break;
	case SB_CFG_LEVEL:
		if (sb_log_level_parse(v, &lvl) < 0)
			problem(x, e->line, e->section, e->key,
				"'%s' is not one of debug, info, warn, error", v);
		break;
	case SB_CFG_TAXID11:
		if (sb_piva_check(v, &err) < 0)
			problem(x, e->line, e->section, e->key, "%s", err.msg);
		break;
	}
}

void sb_cfg_free(struct sb_cfg *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->e[i].section);
		free(c->e[i].key);
		free(c->e[i].value);
	}
	for (size_t i = 0; i < c->noffices; i++)
		free(c->offices[i]);
	free(c->offices);
	free(c->e);
	free(c->path);
	free(c->dir);
	free(c);
}

int sb_cfg_load(struct sb_cfg **out, const char *path, struct sb_problems *probs,
		struct sb_err *err)
{
	struct sb_problems local = SB_PROBLEMS_INIT;
	struct load_ctx x;
	struct sb_cfg *c;
	char real[PATH_MAX];
	size_t before;
	struct stat st;
	char *slash;
	int rc = 0, syntax;

	memset(&x, 0, sizeof(x));
	if (!probs)
		probs = &local;
	before = sb_problems_count(probs);
	x.f = fopen(path, "re");
	if (!x.f)
		return sb_err_set(err, errno == ENOENT ? SB_ENOTFOUND : SB_ECONFIG, errno,
				  "cannot open configuration '%s': %s", path, strerror(errno));
	if (fstat(fileno(x.f), &st) == 0 && st.st_size > (off_t)SB_MAX_CONFIG_FILE) {
		fclose(x.f);
		return sb_err_set(err, SB_ECONFIG, 0, "configuration '%s' larger than %u bytes",
				  path, SB_MAX_CONFIG_FILE);
	}
	c = sb_xcalloc(1, sizeof(*c));
	c->path = sb_xstrdup(realpath(path, real) ? real : path);
	c->dir = sb_xstrdup(c->path);
	slash = strrchr(c->dir, '/');
	if (slash)
		*(slash == c->dir ? slash + 1 : slash) = '\0';
	else
		c->dir[0] = '.', c->dir[1] = '\0';
	x.cfg = c;
	x.probs = probs;
	x.at_line_start = true;

	syntax = ini_parse_stream(reader, &x, handler, &x);
	fclose(x.f);
	if (syntax > 0) {
		char where[300];

		snprintf(where, sizeof(where), "%s:%d", c->path, syntax);
		sb_problems_add(probs, where,
				"syntax error (expected [section], key = value or a ; comment)");
	}

	for (size_t i = 0; i < c->n; i++)
		check_value(&x, &c->e[i], schema_find(c->e[i].section, c->e[i].key));
	for (const struct sb_cfg_key *k = sb_cfg_keys; k->section; k++) {
		if (!k->required || !strcmp(k->section, "office.*"))
			continue;
		if (!entry_find(c, k->section, k->key))
			problem(&x, 0, k->section, k->key, "required but not set (%s)", k->doc);
	}
	for (size_t i = 0; i < x.nsections; i++)
		free(x.sections_seen[i]);
	free(x.sections_seen);

	if (sb_problems_count(probs) > before) {
		rc = sb_err_set(err, SB_ECONFIG, 0, "configuration '%s' has %zu problem(s)",
				c->path, sb_problems_count(probs) - before);
		sb_cfg_free(c);
	} else {
		*out = c;
	}
	sb_problems_release(&local);
	return rc;
}

const char *sb_cfg_path(const struct sb_cfg *c)
{
	return c->path;
}

static const struct sb_cfg_key *schema_get(const char *section, const char *key)
{
	const struct sb_cfg_key *k = schema_find(section, key);

	if (!k) {
		sb_log(SB_LOG_ERROR, "config", "no key [%s] %s in the schema", section, key);
		SB_ASSERT(!"configuration key missing from sb_cfg_keys");
	}
	return k;
}

const char *sb_cfg_str(const struct sb_cfg *c, const char *section, const char *key)
{
	const struct sb_cfg_key *k = schema_get(section, key);
	const struct entry *e = entry_find(c, section, key);

	return e ? e->value : k->def;
}

int64_t sb_cfg_int(const struct sb_cfg *c, const char *section, const char *key)
{
	const char *v = sb_cfg_str(c, section, key);
	int64_t n = 0;

	if (v && parse_int(v, &n) < 0)
		SB_ASSERT(!"schema default is not an integer");
	return n;
}

bool sb_cfg_bool(const struct sb_cfg *c, const char *section, const char *key)
{
	const char *v = sb_cfg_str(c, section, key);
	bool b = false;

	if (v && parse_bool(v, &b) < 0)
		SB_ASSERT(!"schema default is not a boolean");
	return b;
}

bool sb_cfg_isset(const struct sb_cfg *c, const char *section, const char *key)
{
	schema_get(section, key);
	return entry_find(c, section, key) != NULL;
}

bool sb_cfg_list_has(const struct sb_cfg *c, const char *section, const char *key,
		     const char *word)
{
	const char *p = sb_cfg_str(c, section, key);
	size_t wlen = strlen(word);

	while (p && *p) {
		size_t len;

		while (*p == ' ' || *p == ',')
			p++;
		len = strcspn(p, ", ");
		if (len == wlen && !strncmp(p, word, len))
			return true;
		p += len;
	}
	return false;
}

size_t sb_cfg_office_count(const struct sb_cfg *c)
{
	return c->noffices;
}

const char *sb_cfg_office_name(const struct sb_cfg *c, size_t i)
{
	SB_ASSERT(i < c->noffices);
	return c->offices[i];
}

bool sb_cfg_has_office(const struct sb_cfg *c, const char *name)
{
	for (size_t i = 0; i < c->noffices; i++)
		if (!strcmp(c->offices[i], name))
			return true;
	return false;
}
