/*
 * JSON helpers over jansson: bounded parsing, typed getters that write a
 * clear error naming the JSON path, and serialisation into an sb_buf.
 * jansson rules apply: getters return borrowed references.
 */
#ifndef SB_JSON_H
#define SB_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_err.h"

/*
 * Parse (p, len) as one JSON value, refusing more than max bytes, invalid
 * UTF-8 and duplicate object keys (an ambiguous document is an error, not a
 * guess). what names the document in messages ("act.json", "SEND reply"; NULL: "json").
 * *out is a new reference. 0, SB_EINVAL or SB_ETOOBIG.
 */
int sb_json_parse(const void *p, size_t len, size_t max, const char *what, json_t **out,
		  struct sb_err *err);

/* Serialise compactly (keys in insertion order) and append to out. */
int sb_json_dump(const json_t *v, struct sb_buf *out, struct sb_err *err);

/*
 * Borrowed string member, or NULL when missing. A present member of another
 * type is SB_EINVAL with "<key>: expected string".
 */
int sb_json_get_str(const json_t *obj, const char *key, const char **out, struct sb_err *err);
/* Integer member in [min, max]. SB_ENOTFOUND when missing (err untouched). */
int sb_json_get_int(const json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out,
		    struct sb_err *err);

/* Set a string member only when value is non-NULL and non-empty (SEND refuses null and ""). */
void sb_json_set_str_opt(json_t *obj, const char *key, const char *value);

#endif
