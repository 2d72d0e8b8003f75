/*
 * JSON helpers: see sb_json.h.
 */
#include <string.h>

#include "sb_common.h"
#include "sb_json.h"

int sb_json_parse(const void *p, size_t len, size_t max, const char *what, json_t **out,
		  struct sb_err *err)
{
	json_error_t jerr;
	json_t *v;

	if (!what)
		what = "json";
	if (len > max)
		return sb_err_set(err, SB_ETOOBIG, 0, "%s: too large (%zu bytes, max %zu)", what,
				  len, max);
	v = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		/*
		 * jansson's text names the line and what it expected; it holds
		 * no document content.
		 */
		return sb_err_set(err, SB_EINVAL, 0,
				  "not valid JSON in %s at line %d column %d: %s",
				  what, jerr.line, jerr.column, jerr.text);
	}
	*out = v;
	return 0;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
	return sb_buf_add(data, buffer, size) < 0 ? -1 : 0;
}

int sb_json_dump(const json_t *v, struct sb_buf *out, struct sb_err *err)
{
	if (json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0)
		return sb_err_set(err, SB_ETOOBIG, 0, "json document larger than %zu bytes",
				  out->max);
	return 0;
}

int sb_json_get_str(const json_t *obj, const char *key, const char **out, struct sb_err *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v) {
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return sb_err_set(err, SB_EINVAL, 0, "%s: expected string", key);
	*out = json_string_value(v);
	return 0;
}

int sb_json_get_int(const json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out,
		    struct sb_err *err)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	if (!v)
		return SB_ENOTFOUND;
	if (!json_is_integer(v))
		return sb_err_set(err, SB_EINVAL, 0, "%s: expected integer", key);
	n = json_integer_value(v);
	if (n < min || n > max)
		return sb_err_set(err, SB_EINVAL, 0, "%s: %lld out of range %lld..%lld", key,
				  (long long)n, (long long)min, (long long)max);
	*out = (int64_t)n;
	return 0;
}

void sb_json_set_str_opt(json_t *obj, const char *key, const char *value)
{
	if (value && *value)
		json_object_set_new(obj, key, json_string(value));
}
