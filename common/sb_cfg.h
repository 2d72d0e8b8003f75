/*
 * Configuration: one INI file (libinih) with the sections [service],
 * [outbox], [store], [send], [pdnd], [anpr], [inad], [protocol], [web], and
 * one [office.NAME] section per office with its policies.
 *
 * Every key is declared in a schema (sb_cfg_keys.c) with its type, range and
 * default; unknown keys, duplicates and bad values are problems that name
 * the file, line, section and key. Secrets are never written inline: keys
 * ending in _file name a file that must be readable by its owner only.
 * Relative paths are taken from the directory of the configuration file.
 *
 * A loaded struct sb_cfg is read-only and may be shared between threads.
 */
#ifndef SB_CFG_H
#define SB_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_problems.h"

struct sb_cfg;

enum sb_cfg_type {
	SB_CFG_STR,
	SB_CFG_INT,
	SB_CFG_BOOL,      /* on/off, yes/no, true/false, 1/0 */
	SB_CFG_ENUM,      /* one of a '|' separated list */
	SB_CFG_LIST,      /* comma-separated words, each from the enum list when one is given */
	SB_CFG_PATH,      /* a path; made absolute against the config file's folder */
	SB_CFG_DIR,       /* an existing folder */
	SB_CFG_SECRET,    /* a secret file: must exist with mode 0600 or stricter */
	SB_CFG_FILE,      /* an existing readable file (certificates, CA bundles) */
	SB_CFG_URL,       /* https://..., or http:// to a loopback address only */
	SB_CFG_LEVEL,     /* log level */
	SB_CFG_TAXID11,   /* 11 digits with check digit (ente's codice fiscale) */
};

struct sb_cfg_key {
	const char *section;      /* "send", or "office.*" for every office section */
	const char *key;
	enum sb_cfg_type type;
	const char *def;          /* default as text; NULL: none */
	int64_t min, max;         /* SB_CFG_INT range; SB_CFG_STR maximum length when max > 0 */
	const char *choices;      /* SB_CFG_ENUM / SB_CFG_LIST: "a|b|c" */
	bool required;
	const char *doc;          /* one line for `send-bridge config keys` and the README */
};

/* The schema, terminated by an entry with section NULL. */
extern const struct sb_cfg_key sb_cfg_keys[];

/*
 * Load and check path. Every problem goes to probs (may be NULL); if there
 * is any, *out is left untouched and SB_ECONFIG is returned with err saying
 * how many. SB_ENOTFOUND when the file cannot be opened.
 */
int sb_cfg_load(struct sb_cfg **out, const char *path, struct sb_problems *probs,
		struct sb_err *err);
void sb_cfg_free(struct sb_cfg *c);

/* The file it was loaded from (absolute), borrowed. */
const char *sb_cfg_path(const struct sb_cfg *c);

/*
 * Getters return the value or the schema default; NULL / 0 / false when the
 * key is unset and has no default. Asking for a key missing from the schema
 * is a programmer error (SB_ASSERT). For office sections pass "office.NAME".
 * Strings are borrowed until sb_cfg_free.
 */
const char *sb_cfg_str(const struct sb_cfg *c, const char *section, const char *key);
int64_t sb_cfg_int(const struct sb_cfg *c, const char *section, const char *key);
bool sb_cfg_bool(const struct sb_cfg *c, const char *section, const char *key);
/* true when the key was written in the file (not a default). */
bool sb_cfg_isset(const struct sb_cfg *c, const char *section, const char *key);
/* true when word is one of the comma-separated values of a SB_CFG_LIST key. */
bool sb_cfg_list_has(const struct sb_cfg *c, const char *section, const char *key,
		     const char *word);

/* Offices declared as [office.NAME] sections: count and borrowed names. */
size_t sb_cfg_office_count(const struct sb_cfg *c);
const char *sb_cfg_office_name(const struct sb_cfg *c, size_t i);
bool sb_cfg_has_office(const struct sb_cfg *c, const char *name);

#endif
