/*
 * INAD client: see pdnd_inad.h.
 * Spec: ../shared/specs/inad/inad_api_extraxtion.yaml, PDND-SUMMARY.md 9.
 *
 * - "No domicile" is INAD's 404 NOT_FOUND: an outcome, not an error.
 * - Entries past their dateEndValidity are kept in the result (the
 *   caller may want to show them) but never picked.
 * - The bulk flow follows the Location headers as INAD gives them; a
 *   relative one is resolved against the base URL's origin.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "pdnd_inad.h"
#include "pdnd_int.h"

void pdnd_inad_cfg_load(struct pdnd_inad_cfg *out, const struct sb_cfg *cfg)
{
	out->base_url = sb_cfg_str(cfg, "inad", "base_url");
	out->purpose = sb_cfg_str(cfg, "inad", "purpose_id");
}

void pdnd_inad_result_release(struct pdnd_inad_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->items[i].address);
		free(r->items[i].profession);
	}
	free(r->items);
	memset(r, 0, sizeof(*r));
}

static int parse_obj(const json_t *o, struct pdnd_inad_result *out, struct sb_err *err)
{
	const char *cf = json_string_value(json_object_get(o, "codiceFiscale"));
	json_t *list = json_object_get(o, "digitalAddress"), *e;
	struct pdnd_inad_result r = { 0 };
	size_t i;

	if (!cf || strlen(cf) >= sizeof(r.tax_id) || !json_is_array(list))
		return sb_err_set(err, SB_EINVAL, 0, "inad reply: codiceFiscale or digitalAddress "
				  "missing");
	snprintf(r.tax_id, sizeof(r.tax_id), "%s", cf);
	SB_ALLOC_ARRAY(r.items, json_array_size(list));
	json_array_foreach(list, i, e) {
		const char *addr = json_string_value(json_object_get(e, "digitalAddress"));
		const char *prof = json_string_value(json_object_get(e, "practicedProfession"));
		const char *end = json_string_value(json_object_get(json_object_get(e, "usageInfo"),
								   "dateEndValidity"));
		struct pdnd_domicile *d = &r.items[r.n];

		if (!addr)
			continue;
		d->address = sb_xstrdup(addr);
		d->profession = prof && *prof ? sb_xstrdup(prof) : NULL;
		if (end && *end && sb_time_parse_iso8601(end, &d->end_validity) < 0) {
			r.n++;
			pdnd_inad_result_release(&r);
			return sb_err_set(err, SB_EINVAL, 0, "inad reply: dateEndValidity is not a "
					  "date-time");
		}
		r.n++;
	}
	r.found = r.n > 0;
	*out = r;
	return 0;
}

int pdnd_inad_parse(const char *body, size_t len, struct pdnd_inad_result *out,
		    struct sb_err *err)
{
	json_t *root = NULL;
	int rc;

	rc = sb_json_parse(body, len, SB_MAX_JSON_BODY, "inad reply", &root, err);
	if (rc == 0)
		rc = parse_obj(root, out, err);
	json_decref(root);
	return rc;
}

const struct pdnd_domicile *pdnd_inad_pick(const struct pdnd_inad_result *r, int64_t now,
					   bool prefer_professional)
{
	const struct pdnd_domicile *personal = NULL, *prof = NULL;

	for (size_t i = 0; i < r->n; i++) {
		const struct pdnd_domicile *d = &r->items[i];

		if (d->end_validity && d->end_validity <= now)
			continue;
		if (d->profession && !prof)
			prof = d;
		else if (!d->profession && !personal)
			personal = d;
	}
	if (prefer_professional)
		return prof ? prof : personal;
	return personal ? personal : prof;
}

/* An INAD Errore{status,type,detail} reply into err. */
static int inad_error(const struct sb_http_resp *resp, const char *what, struct sb_err *err)
{
	json_t *root = NULL;
	const char *type = NULL, *detail = NULL;
	char qt[48] = "", qd[128] = "";
	int cls = sb_http_status_class(resp->status);

	if (sb_json_parse(resp->body.buf ? resp->body.buf : "", resp->body.len, SB_MAX_JSON_BODY,
			  "inad error", &root, NULL) == 0) {
		type = json_string_value(json_object_get(root, "type"));
		detail = json_string_value(json_object_get(root, "detail"));
	}
	if (type)
		sb_log_quote(type, strlen(type), qt, sizeof(qt));
	if (detail)
		sb_log_quote(detail, strlen(detail), qd, sizeof(qd));
	json_decref(root);
	sb_err_set(err, cls == SB_ETEMP ? SB_ETEMP : SB_EREJECT, 0, "inad %s: %ld %s%s%s%s", what,
		   resp->status, qt, qd[0] ? ": " : "", qd,
		   resp->status == 401 ? " (voucher refused: wrong environment or purpose?)" : "");
	if (err)
		err->http = (int)resp->status;
	return cls == SB_ETEMP ? SB_ETEMP : SB_EREJECT;
}

static int get(struct pdnd_client *c, struct sb_http *h, const struct pdnd_inad_cfg *cfg,
	       const char *method, const char *url, const char *body,
	       struct sb_http_resp *resp, struct pdnd_call_trace *trace, struct sb_err *err)
{
	if (!cfg->base_url || !cfg->purpose)
		return sb_err_set(err, SB_ECONFIG, 0, "[inad] base_url and purpose_id must be set");
	return pdnd_call_do(c, h, &(struct pdnd_call){ .method = method, .url = url,
						       .purpose_id = cfg->purpose, .body = body,
						       .body_len = body ? strlen(body) : 0 },
			    resp, trace, err);
}

static int check_args(const char *tax_id, const char *ref, struct sb_err *err)
{
	size_t n = tax_id ? strlen(tax_id) : 0;

	if (n != 16 && n != 11)
		return sb_err_set(err, SB_EINVAL, 0,
				  "inad: tax code must have 16 or 11 characters");
	if (!ref || !*ref)
		return sb_err_set(err, SB_EINVAL, 0, "inad: practicalReference is required");
	return 0;
}

int pdnd_inad_extract(struct pdnd_client *c, struct sb_http *h, const struct pdnd_inad_cfg *cfg,
		      const char *tax_id, const char *practical_ref, struct pdnd_inad_result *out,
		      struct pdnd_call_trace *trace, struct sb_err *err)
{
	struct sb_buf url = SB_BUF_INIT(4096);
	struct sb_http_resp resp = { 0 };
	int rc;

	rc = check_args(tax_id, practical_ref, err);
	if (rc < 0)
		return rc;
	sb_buf_addf(&url, "%s/extract/", cfg->base_url ? cfg->base_url : "");
	pdnd_url_escape(&url, tax_id);
	sb_buf_adds(&url, "?practicalReference=");
	pdnd_url_escape(&url, practical_ref);
	rc = get(c, h, cfg, "GET", url.buf, NULL, &resp, trace, err);
	if (rc < 0)
		goto cleanup;
	if (resp.status == 404) {
		memset(out, 0, sizeof(*out));
		snprintf(out->tax_id, sizeof(out->tax_id), "%s", tax_id);
		goto cleanup;
	}
	if (resp.status != 200) {
		rc = inad_error(&resp, "extract", err);
		goto cleanup;
	}
	rc = pdnd_inad_parse(resp.body.buf ? resp.body.buf : "", resp.body.len, out, err);
cleanup:
	sb_http_resp_release(&resp);
	sb_buf_release(&url);
	return rc;
}

int pdnd_inad_verify(struct pdnd_client *c, struct sb_http *h, const struct pdnd_inad_cfg *cfg,
		     const char *tax_id, const char *address, const char *date,
		     const char *practical_ref, bool *outcome_out, struct sb_err *err)
{
	struct sb_buf url = SB_BUF_INIT(4096);
	struct sb_http_resp resp = { 0 };
	json_t *root = NULL, *o;
	int64_t t;
	int rc;

	rc = check_args(tax_id, practical_ref, err);
	if (rc < 0)
		return rc;
	if (!address || !*address || !date || sb_time_parse_date(date, &t) < 0)
		return sb_err_set(err, SB_EINVAL, 0, "inad verify: address and since (YYYY-MM-DD) "
				  "are required");
	sb_buf_addf(&url, "%s/verify/", cfg->base_url ? cfg->base_url : "");
	pdnd_url_escape(&url, tax_id);
	sb_buf_adds(&url, "?digital_address=");
	pdnd_url_escape(&url, address);
	sb_buf_addf(&url, "&since=%s&practicalReference=", date);
	pdnd_url_escape(&url, practical_ref);
	rc = get(c, h, cfg, "GET", url.buf, NULL, &resp, NULL, err);
	if (rc < 0)
		goto cleanup;
	if (resp.status != 200) {
		rc = inad_error(&resp, "verify", err);
		goto cleanup;
	}
	rc = sb_json_parse(resp.body.buf ? resp.body.buf : "", resp.body.len, SB_MAX_JSON_BODY,
			   "inad verify reply", &root, err);
	if (rc < 0)
		goto cleanup;
	o = json_object_get(root, "outcome");
	if (!json_is_boolean(o)) {
		rc = sb_err_set(err, SB_EINVAL, 0, "inad verify reply: outcome missing");
		goto cleanup;
	}
	*outcome_out = json_is_true(o);
cleanup:
	json_decref(root);
	sb_http_resp_release(&resp);
	sb_buf_release(&url);
	return rc;
}

/* Location as an absolute URL: relative ones are taken from the base URL's origin. */
static char *absolute(const char *base, const char *loc)
{
	const char *p = strstr(base, "://");
	const char *slash = p ? strchr(p + 3, '/') : NULL;

	if (!strncmp(loc, "http://", 7) || !strncmp(loc, "https://", 8))
		return sb_xstrdup(loc);
	if (!slash)
		return sb_xasprintf("%s%s", base, loc);
	return sb_xasprintf("%.*s%s", (int)(slash - base), base, loc);
}

int pdnd_inad_bulk(struct pdnd_client *c, struct sb_http *h, const struct pdnd_inad_cfg *cfg,
		   const char *const *tax_ids, size_t n, const char *practical_ref, long poll_ms,
		   int max_polls, struct pdnd_inad_result *out, struct sb_err *err)
{
	struct sb_buf body = SB_BUF_INIT(SB_MAX_JSON_BODY), url = SB_BUF_INIT(4096);
	struct sb_http_resp resp = { 0 };
	json_t *req = NULL, *root = NULL, *e;
	char *next = NULL;
	size_t i;
	int rc = 0, polls;

	if (n == 0 || n > PDND_INAD_MAX_BULK)
		return sb_err_set(err, SB_EINVAL, 0,
				  "inad bulk: 1 to %d tax codes", PDND_INAD_MAX_BULK);
	for (i = 0; i < n; i++) {
		rc = check_args(tax_ids[i], practical_ref, err);
		if (rc < 0)
			return sb_err_prefix(err, "tax code %zu", i);
	}
	/* "praticalReference": INAD's own spelling in this request. */
	req = json_pack("{s:[],s:s}", "codiciFiscali", "praticalReference", practical_ref);
	for (i = 0; i < n; i++)
		json_array_append_new(json_object_get(req, "codiciFiscali"),
				      json_string(tax_ids[i]));
	rc = sb_json_dump(req, &body, err);
	if (rc < 0)
		goto cleanup;
	sb_buf_addf(&url, "%s/listDigitalAddress", cfg->base_url ? cfg->base_url : "");
	rc = get(c, h, cfg, "POST", url.buf, body.buf, &resp, NULL, err);
	if (rc < 0)
		goto cleanup;
	if (resp.status != 202 || !sb_http_resp_header(&resp, "Location")) {
		rc = resp.status == 202 ?
		     sb_err_set(err, SB_EINVAL, 0, "inad bulk: 202 without Location") :
		     inad_error(&resp, "bulk submit", err);
		goto cleanup;
	}
	next = absolute(cfg->base_url, sb_http_resp_header(&resp, "Location"));
	for (polls = 0;; polls++) {
		if (polls >= max_polls) {
			rc = sb_err_set(err, SB_ETEMP, 0,
					"inad bulk: list not ready after %d polls", max_polls);
			goto cleanup;
		}
		if (polls && poll_ms > 0) {
			struct timespec ts = { poll_ms / 1000, (poll_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		sb_http_resp_release(&resp);
		rc = get(c, h, cfg, "GET", next, NULL, &resp, NULL, err);
		if (rc < 0)
			goto cleanup;
		if (resp.status == 303 && sb_http_resp_header(&resp, "Location")) {
			free(next);
			next = absolute(cfg->base_url, sb_http_resp_header(&resp, "Location"));
			break;
		}
		if (resp.status != 200) {
			rc = inad_error(&resp, "bulk state", err);
			goto cleanup;
		}
	}
	sb_http_resp_release(&resp);
	rc = get(c, h, cfg, "GET", next, NULL, &resp, NULL, err);
	if (rc < 0)
		goto cleanup;
	if (resp.status != 200) {
		rc = inad_error(&resp, "bulk response", err);
		goto cleanup;
	}
	rc = sb_json_parse(resp.body.buf ? resp.body.buf : "", resp.body.len, SB_MAX_JSON_BODY,
			   "inad bulk reply", &root, err);
	if (rc < 0)
		goto cleanup;
	if (!json_is_array(json_object_get(root, "list"))) {
		rc = sb_err_set(err, SB_EINVAL, 0, "inad bulk reply: list missing");
		goto cleanup;
	}
	for (i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		snprintf(out[i].tax_id, sizeof(out[i].tax_id), "%s", tax_ids[i]);
	}
	json_array_foreach(json_object_get(root, "list"), i, e) {
		struct pdnd_inad_result r;
		size_t k;

		if (parse_obj(e, &r, NULL) < 0)
			continue;
		for (k = 0; k < n && strcmp(tax_ids[k], r.tax_id); k++)
			;
		if (k < n && !out[k].found) {
			out[k] = r;
			continue;
		}
		pdnd_inad_result_release(&r);
	}
cleanup:
	free(next);
	json_decref(req);
	json_decref(root);
	sb_http_resp_release(&resp);
	sb_buf_release(&body);
	sb_buf_release(&url);
	return rc;
}
