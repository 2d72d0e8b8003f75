/*
 * Recipient resolution: see pdnd_resolve.h. Policy from the issue and
 * SEND's own (PDND-SUMMARY.md sections 8 and 9):
 * - a person's digital domicile is the INAD entry valid today (a personal
 *   one first); otherwise the PEC the act gives, if any;
 * - the residence is ANPR's (C030 for the idANPR, then C001 by idANPR);
 *   when the act's address differs, both are kept and the office's
 *   address_policy (anpr|act) chooses;
 * - companies (PG) keep the act's PEC and address for now.
 *
 * Authorisation comes before the cache as well as before the network: an
 * operator who may not query ANPR does not get ANPR's data from the cache
 * either. Refusals and queries go to the access trail; cache hits do not
 * (nothing was asked of an e-service).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_ids.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "pdnd_resolve.h"
#include "pdnd_store.h"

struct pdnd_resolver {
	const struct sb_cfg *cfg;
	struct pdnd_client *client;
	struct sqlite3 *db;
	unsigned char key[32];
	unsigned char audit_key[SB_AUDIT_KEY_SIZE];
	bool has_audit_key;
	struct pdnd_anpr_cfg anpr;
	struct pdnd_inad_cfg inad;
	int64_t anpr_ttl, inad_ttl;
	size_t bulk_threshold;
	const char *user_location;
	const char *loa;
	char host[256];
};

int pdnd_authorize(const struct sb_cfg *cfg, const char *office, const char *operator_id,
		   const char *eservice, const char *purpose_id, struct sb_err *err)
{
	char sect[128];

	if (!office || !*office || !sb_cfg_has_office(cfg, office))
		return sb_err_set(err, SB_EREJECT, 0, "office '%s' is not configured",
				  office ? office : "");
	snprintf(sect, sizeof(sect), "office.%s", office);
	if (!operator_id || !*operator_id || !sb_cfg_list_has(cfg, sect, "operators", operator_id))
		return sb_err_set(err, SB_EREJECT, 0,
				  "operator '%s' is not in the operators of office '%s'",
				  operator_id ? operator_id : "", office);
	if (!sb_cfg_list_has(cfg, sect, "eservices", eservice))
		return sb_err_set(err, SB_EREJECT, 0, "office '%s' may not query %s", office,
				  eservice);
	if (!purpose_id || !*purpose_id)
		return sb_err_set(err, SB_ECONFIG, 0, "no purpose id configured for %s", eservice);
	if (sb_cfg_isset(cfg, sect, "purposes") &&
	    !sb_cfg_list_has(cfg, sect, "purposes", purpose_id))
		return sb_err_set(err, SB_EREJECT, 0,
				  "office '%s' may not use purpose %s (not in its purposes)",
				  office, purpose_id);
	return 0;
}

int pdnd_resolver_new(struct pdnd_resolver **out, const struct sb_cfg *cfg,
		      struct pdnd_client *c, struct sqlite3 *db, const unsigned char key[32],
		      struct sb_err *err)
{
	struct pdnd_resolver *r;
	int rc;

	rc = pdnd_store_migrate(db, err);
	if (rc < 0)
		return rc;
	r = sb_xcalloc(1, sizeof(*r));
	rc = sb_audit_key_load(cfg, r->audit_key, &r->has_audit_key, err);
	if (rc < 0) {
		free(r);
		return rc;
	}
	r->cfg = cfg;
	r->client = c;
	r->db = db;
	memcpy(r->key, key, sizeof(r->key));
	pdnd_anpr_cfg_load(&r->anpr, cfg);
	pdnd_inad_cfg_load(&r->inad, cfg);
	r->anpr_ttl = sb_cfg_int(cfg, "anpr", "cache_ttl");
	r->inad_ttl = sb_cfg_int(cfg, "inad", "cache_ttl");
	r->bulk_threshold = (size_t)sb_cfg_int(cfg, "inad", "bulk_threshold");
	/* userLocation names the system when [pdnd] user_location is not set. */
	if (gethostname(r->host, sizeof(r->host) - 1) < 0)
		snprintf(r->host, sizeof(r->host), "send-bridge");
	r->user_location = sb_cfg_str(cfg, "pdnd", "user_location");
	if (!r->user_location)
		r->user_location = r->host;
	r->loa = sb_cfg_str(cfg, "pdnd", "loa");
	*out = r;
	return 0;
}

void pdnd_resolver_free(struct pdnd_resolver *r)
{
	if (!r)
		return;
	sb_wipe(r->key, sizeof(r->key));
	sb_wipe(r->audit_key, sizeof(r->audit_key));
	free(r);
}

const char *pdnd_source_name(enum pdnd_source s)
{
	switch (s) {
	case PDND_SRC_INAD: return "inad";
	case PDND_SRC_ANPR: return "anpr";
	case PDND_SRC_ACT: return "act";
	case PDND_SRC_NONE: break;
	}
	return "none";
}

void pdnd_resolution_release(struct pdnd_resolution *res)
{
	if (!res)
		return;
	free(res->domicile);
	pdnd_address_release(&res->residence);
	pdnd_address_release(&res->act_address);
	memset(res, 0, sizeof(*res));
}

const struct pdnd_address *pdnd_resolution_address(const struct pdnd_resolution *res)
{
	if (res->address_source == PDND_SRC_ANPR)
		return &res->residence;
	if (res->address_source == PDND_SRC_ACT)
		return &res->act_address;
	return NULL;
}

/* The audit key for the trail's seal, NULL when [pdnd] audit_key_file is not set. */
static const unsigned char *audit_key(const struct pdnd_resolver *r)
{
	return r->has_audit_key ? r->audit_key : NULL;
}

/* Append one trail row; a failure to trace fails the query (nothing untraced). */
static int trace(struct pdnd_resolver *r, const struct pdnd_who *who, const char *eservice,
		 const char *purpose, const char *subject, const char *outcome,
		 const struct pdnd_call_trace *t, struct sb_err *err)
{
	char corr[256] = "";

	if (t && (t->govway_id[0] || t->voucher_jti[0]))
		snprintf(corr, sizeof(corr), "govway=%s voucher=%s", t->govway_id, t->voucher_jti);
	return pdnd_access_append(r->db, audit_key(r), &(struct pdnd_access){
		.operator_id = who->operator_id ? who->operator_id : "",
		.office = who->office ? who->office : "", .eservice = eservice,
		.purpose_id = purpose, .act_ref = who->act_ref, .subject = subject,
		.outcome = outcome, .correlation = corr[0] ? corr : NULL }, err);
}

/*
 * Authorise, and trace a refusal before returning it. An authorised query also needs a
 * trail it can be written to (its head intact and, once sealed, the audit key): the
 * trace follows the call, so this is checked before anything leaves the machine.
 */
static int authorize(struct pdnd_resolver *r, const struct pdnd_who *who, const char *eservice,
		     const char *purpose, const char *subject, struct sb_err *err)
{
	struct sb_err terr = SB_ERR_INIT;
	int rc;

	rc = pdnd_authorize(r->cfg, who->office, who->operator_id, eservice, purpose, err);
	if (rc == 0)
		return pdnd_access_ready(r->db, audit_key(r), err);
	if (rc != SB_EREJECT)
		return rc;
	sb_log(SB_LOG_WARN, "pdnd", "query refused before sending: operator=%s office=%s "
	       "eservice=%s: %s", who->operator_id ? who->operator_id : "-",
	       who->office ? who->office : "-", eservice, err ? err->msg : "");
	if (trace(r, who, eservice, purpose, subject, "refused", NULL, &terr) < 0)
		sb_log(SB_LOG_ERROR, "pdnd", "cannot trace a refused query: %s", terr.msg);
	return rc;
}

static void outcome_of_err(const struct sb_err *e, char *out, size_t size)
{
	snprintf(out, size, "error: %s", e->msg);
}

/* INAD result <-> cache JSON. */
static char *inad_to_json(const struct pdnd_inad_result *res)
{
	json_t *o = json_pack("{s:b,s:[]}", "found", res->found, "items");
	char *txt;

	for (size_t i = 0; i < res->n; i++) {
		json_t *it = json_pack("{s:s,s:I}", "address", res->items[i].address, "end",
				       (json_int_t)res->items[i].end_validity);

		if (res->items[i].profession)
			json_object_set_new(it, "profession",
					    json_string(res->items[i].profession));
		json_array_append_new(json_object_get(o, "items"), it);
	}
	txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return txt;
}

static int inad_from_json(const char *txt, struct pdnd_inad_result *res)
{
	json_t *o = json_loads(txt, 0, NULL), *it;
	size_t i;

	if (!o)
		return SB_EINVAL;
	memset(res, 0, sizeof(*res));
	res->found = json_is_true(json_object_get(o, "found"));
	SB_ALLOC_ARRAY(res->items, json_array_size(json_object_get(o, "items")));
	json_array_foreach(json_object_get(o, "items"), i, it) {
		const char *a = json_string_value(json_object_get(it, "address"));
		const char *p = json_string_value(json_object_get(it, "profession"));

		if (!a)
			continue;
		res->items[res->n].address = sb_xstrdup(a);
		res->items[res->n].profession = p ? sb_xstrdup(p) : NULL;
		res->items[res->n].end_validity = json_integer_value(json_object_get(it, "end"));
		res->n++;
	}
	json_decref(o);
	return 0;
}

static void addr_set(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

static char *anpr_to_json(const struct pdnd_anpr_result *a)
{
	json_t *o = json_pack("{s:i,s:s,s:b,s:b}", "outcome", (int)a->outcome, "idANPR", a->id_anpr,
			      "deceased", a->deceased, "aire", a->aire);
	char *txt;

	if (a->has_residence) {
		json_t *r = json_pack("{s:b,s:s}", "foreign", a->residence.foreign, "since",
				      a->residence.since);

		addr_set(r, "at", a->residence.at);
		addr_set(r, "line", a->residence.line);
		addr_set(r, "detail", a->residence.detail);
		addr_set(r, "zip", a->residence.zip);
		addr_set(r, "municipality", a->residence.municipality);
		addr_set(r, "province", a->residence.province);
		addr_set(r, "state", a->residence.state);
		json_object_set_new(o, "residence", r);
	}
	txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return txt;
}

static char *jdup(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? sb_xstrdup(s) : NULL;
}

static int anpr_from_json(const char *txt, struct pdnd_anpr_result *a)
{
	json_t *o = json_loads(txt, 0, NULL), *r;

	if (!o)
		return SB_EINVAL;
	memset(a, 0, sizeof(*a));
	a->outcome = (enum pdnd_anpr_outcome)json_integer_value(json_object_get(o, "outcome"));
	snprintf(a->id_anpr, sizeof(a->id_anpr), "%s",
		 json_string_value(json_object_get(o, "idANPR")) ?: "");
	a->deceased = json_is_true(json_object_get(o, "deceased"));
	a->aire = json_is_true(json_object_get(o, "aire"));
	r = json_object_get(o, "residence");
	if (json_is_object(r)) {
		a->has_residence = true;
		a->residence.foreign = json_is_true(json_object_get(r, "foreign"));
		snprintf(a->residence.since, sizeof(a->residence.since), "%s",
			 json_string_value(json_object_get(r, "since")) ?: "");
		a->residence.at = jdup(r, "at");
		a->residence.line = jdup(r, "line");
		a->residence.detail = jdup(r, "detail");
		a->residence.zip = jdup(r, "zip");
		a->residence.municipality = jdup(r, "municipality");
		a->residence.province = jdup(r, "province");
		a->residence.state = jdup(r, "state");
	}
	json_decref(o);
	return 0;
}

static int resolve_inad(struct pdnd_resolver *r, struct sb_http *h, const struct pdnd_who *who,
			const char *cf, const char *subject, struct pdnd_inad_result *out,
			bool *cached, struct sb_err *err)
{
	struct pdnd_call_trace t = { 0 };
	char *txt = NULL, outcome[300];
	int rc;

	rc = authorize(r, who, "inad", r->inad.purpose, subject, err);
	if (rc < 0)
		return rc;
	if (r->inad_ttl > 0 &&
	    pdnd_cache_get(r->db, "inad", subject, r->inad_ttl, &txt, NULL) == 0 &&
	    inad_from_json(txt, out) == 0) {
		free(txt);
		*cached = true;
		return 0;
	}
	free(txt);
	*cached = false;
	rc = pdnd_inad_extract(r->client, h, &r->inad, cf,
			       who->act_ref ? who->act_ref : "send-bridge", out, &t, err);
	if (rc < 0)
		outcome_of_err(err, outcome, sizeof(outcome));
	else
		snprintf(outcome, sizeof(outcome), "%s", out->found ? "found" : "not-found");
	if (trace(r, who, "inad", r->inad.purpose, subject, outcome, &t,
		  rc < 0 ? NULL : err) < 0 && rc == 0) {
		pdnd_inad_result_release(out);
		return err ? err->code : SB_EIO;
	}
	if (rc < 0)
		return rc;
	txt = inad_to_json(out);
	if (r->inad_ttl > 0 && pdnd_cache_put(r->db, "inad", subject, txt, err) < 0) {
		free(txt);
		pdnd_inad_result_release(out);
		return err ? err->code : SB_EIO;
	}
	free(txt);
	return 0;
}

static const char *anpr_outcome_name(const struct pdnd_anpr_result *a)
{
	return a->outcome == PDND_ANPR_FOUND ? "found" :
	       a->outcome == PDND_ANPR_CANCELLED ? "cancelled" : "not-found";
}

static int anpr_step(struct pdnd_resolver *r, struct sb_http *h, const struct pdnd_who *who,
		     const char *eservice, const char *cf, const char *id_anpr, const char *subject,
		     struct pdnd_anpr_result *out, struct sb_err *err)
{
	struct pdnd_anpr_query q = {
		.who = { .user_id = who->operator_id, .user_location = r->user_location,
			 .loa = r->loa },
		.reason = who->act_ref ? who->act_ref : "send-bridge",
	};
	struct pdnd_call_trace t = { 0 };
	char outcome[300];
	const char *purpose = strcmp(eservice, "anpr-c030") ? r->anpr.c001_purpose
							       : r->anpr.c030_purpose;
	int rc;

	rc = authorize(r, who, eservice, purpose, subject, err);
	if (rc < 0)
		return rc;
	if (!strcmp(eservice, "anpr-c030"))
		rc = pdnd_anpr_c030(r->client, h, &r->anpr, &q, cf, out, &t, err);
	else
		rc = pdnd_anpr_c001(r->client, h, &r->anpr, &q, cf, id_anpr, out, &t, err);
	if (rc < 0)
		outcome_of_err(err, outcome, sizeof(outcome));
	else
		snprintf(outcome, sizeof(outcome), "%s", anpr_outcome_name(out));
	if (trace(r, who, eservice, purpose, subject, outcome, &t, rc < 0 ? NULL : err) < 0 &&
	    rc == 0) {
		pdnd_anpr_result_release(out);
		return err ? err->code : SB_EIO;
	}
	return rc;
}

static int resolve_anpr(struct pdnd_resolver *r, struct sb_http *h, const struct pdnd_who *who,
			const char *cf, const char *subject, struct pdnd_anpr_result *out,
			bool *cached, struct sb_err *err)
{
	struct pdnd_anpr_result id = { 0 };
	char *txt = NULL;
	int rc;

	/* Both e-services must be allowed before the cache of either is read. */
	rc = authorize(r, who, "anpr-c030", r->anpr.c030_purpose, subject, err);
	if (rc == 0)
		rc = authorize(r, who, "anpr-c001", r->anpr.c001_purpose, subject, err);
	if (rc < 0)
		return rc;
	if (r->anpr_ttl > 0 &&
	    pdnd_cache_get(r->db, "anpr", subject, r->anpr_ttl, &txt, NULL) == 0 &&
	    anpr_from_json(txt, out) == 0) {
		free(txt);
		*cached = true;
		return 0;
	}
	free(txt);
	*cached = false;
	rc = anpr_step(r, h, who, "anpr-c030", cf, NULL, subject, &id, err);
	if (rc < 0)
		return rc;
	if (id.outcome != PDND_ANPR_FOUND || !id.id_anpr[0]) {
		*out = id;
	} else {
		/* Search by idANPR: by tax code ANPR answers with the EN148 deprecation warning. */
		rc = anpr_step(r, h, who, "anpr-c001", cf, id.id_anpr, subject, out, err);
		pdnd_anpr_result_release(&id);
		if (rc < 0)
			return rc;
	}
	txt = anpr_to_json(out);
	if (r->anpr_ttl > 0 && pdnd_cache_put(r->db, "anpr", subject, txt, err) < 0) {
		free(txt);
		pdnd_anpr_result_release(out);
		return err ? err->code : SB_EIO;
	}
	free(txt);
	return 0;
}

int pdnd_resolve(struct pdnd_resolver *r, struct sb_http *h, const struct pdnd_who *who,
		 const struct pdnd_recipient *rec, struct pdnd_resolution *out, struct sb_err *err)
{
	struct pdnd_resolution res = { 0 };
	struct pdnd_inad_result inad = { 0 };
	struct pdnd_anpr_result anpr = { 0 };
	const struct pdnd_domicile *dom;
	char subject[PDND_SUBJECT_HASH_SIZE], sect[128];
	bool inad_cached = false, anpr_cached = false;
	const char *policy;
	int rc;

	if (!rec->tax_id)
		return sb_err_set(err, SB_EINVAL, 0, "recipient tax code missing");
	rc = rec->type == PDND_PF ? sb_cf_person_check(rec->tax_id, err)
				  : sb_taxid_check(rec->tax_id, err);
	if (rc < 0)
		return sb_err_prefix(err, "recipient tax code");
	if (rec->act_address) {
		pdnd_address_copy(&res.act_address, rec->act_address);
		res.has_act_address = true;
	}
	if (rec->type == PDND_PG) {
		res.domicile = rec->act_pec ? sb_xstrdup(rec->act_pec) : NULL;
		res.domicile_source = rec->act_pec ? PDND_SRC_ACT : PDND_SRC_NONE;
		res.address_source = res.has_act_address ? PDND_SRC_ACT : PDND_SRC_NONE;
		*out = res;
		return 0;
	}
	pdnd_subject_hash(r->key, rec->tax_id, subject);
	rc = resolve_inad(r, h, who, rec->tax_id, subject, &inad, &inad_cached, err);
	if (rc < 0)
		goto cleanup;
	rc = resolve_anpr(r, h, who, rec->tax_id, subject, &anpr, &anpr_cached, err);
	if (rc < 0)
		goto cleanup;
	dom = pdnd_inad_pick(&inad, sb_now(), false);
	if (dom) {
		res.domicile = sb_xstrdup(dom->address);
		res.domicile_source = PDND_SRC_INAD;
	} else if (rec->act_pec) {
		res.domicile = sb_xstrdup(rec->act_pec);
		res.domicile_source = PDND_SRC_ACT;
	}
	res.anpr_queried = true;
	res.anpr_outcome = anpr.outcome;
	res.deceased = anpr.deceased;
	res.aire = anpr.aire;
	if (anpr.has_residence) {
		res.residence = anpr.residence;
		memset(&anpr.residence, 0, sizeof(anpr.residence));
		res.has_residence = true;
	}
	snprintf(sect, sizeof(sect), "office.%s", who->office ? who->office : "");
	policy = sb_cfg_str(r->cfg, sect, "address_policy");
	if (res.has_residence && res.has_act_address) {
		res.differs = !pdnd_address_same(&res.residence, &res.act_address);
		res.address_source = res.differs && policy && !strcmp(policy, "act")
				     ? PDND_SRC_ACT : PDND_SRC_ANPR;
	} else {
		res.address_source = res.has_residence ? PDND_SRC_ANPR :
				     res.has_act_address ? PDND_SRC_ACT : PDND_SRC_NONE;
	}
	res.from_cache = inad_cached && anpr_cached;
	*out = res;
	memset(&res, 0, sizeof(res));
cleanup:
	pdnd_resolution_release(&res);
	pdnd_inad_result_release(&inad);
	pdnd_anpr_result_release(&anpr);
	return rc;
}

/* Bulk lists are usually ready within seconds: poll every 250 ms for up to a minute. */
#define BULK_POLL_MS 250
#define BULK_MAX_POLLS 240

static int prefetch_chunk(struct pdnd_resolver *r, struct sb_http *h, const struct pdnd_who *who,
			  const char *const *cfs, char (*subjects)[PDND_SUBJECT_HASH_SIZE],
			  size_t n, struct sb_err *err)
{
	struct pdnd_inad_result *res;
	char outcome[300];
	size_t i;
	int rc;

	SB_ALLOC_ARRAY(res, n);
	rc = pdnd_inad_bulk(r->client, h, &r->inad, cfs, n, who->act_ref ? who->act_ref
					: "send-bridge", BULK_POLL_MS, BULK_MAX_POLLS, res, err);
	for (i = 0; i < n; i++) {
		char *txt;

		if (rc < 0)
			outcome_of_err(err, outcome, sizeof(outcome));
		else
			snprintf(outcome, sizeof(outcome), "%s (bulk)",
				 res[i].found ? "found" : "not-found");
		if (trace(r, who, "inad", r->inad.purpose, subjects[i], outcome, NULL,
			  rc < 0 ? NULL : err) < 0 && rc == 0)
			rc = err ? err->code : SB_EIO;
		if (rc < 0)
			continue;
		txt = inad_to_json(&res[i]);
		if (r->inad_ttl > 0 && pdnd_cache_put(r->db, "inad", subjects[i], txt, err) < 0)
			rc = err ? err->code : SB_EIO;
		free(txt);
	}
	for (i = 0; i < n; i++)
		pdnd_inad_result_release(&res[i]);
	free(res);
	return rc;
}

int pdnd_resolve_prefetch(struct pdnd_resolver *r, struct sb_http *h, const struct pdnd_who *who,
			  const char *const *tax_ids, size_t n, size_t *fetched_out,
			  struct sb_err *err)
{
	const char **todo = NULL;
	char (*subjects)[PDND_SUBJECT_HASH_SIZE] = NULL;
	size_t m = 0, i;
	int rc = 0;

	if (fetched_out)
		*fetched_out = 0;
	if (n < r->bulk_threshold)
		return 0;
	SB_ALLOC_ARRAY(todo, n);
	SB_ALLOC_ARRAY(subjects, n);
	for (i = 0; i < n; i++) {
		char *txt = NULL;

		rc = sb_cf_person_check(tax_ids[i], err);
		if (rc < 0) {
			sb_err_prefix(err, "recipient %zu tax code", i);
			goto cleanup;
		}
		pdnd_subject_hash(r->key, tax_ids[i], subjects[m]);
		if (r->inad_ttl > 0 &&
		    pdnd_cache_get(r->db, "inad", subjects[m], r->inad_ttl, &txt, NULL) == 0) {
			free(txt);
			continue;
		}
		todo[m++] = tax_ids[i];
	}
	if (!m)
		goto cleanup;
	/* One decision for the batch; a refusal is traced for every subject it covered. */
	rc = authorize(r, who, "inad", r->inad.purpose, subjects[0], err);
	for (i = 1; rc == SB_EREJECT && i < m; i++) {
		struct sb_err terr = SB_ERR_INIT;

		if (trace(r, who, "inad", r->inad.purpose, subjects[i], "refused", NULL, &terr) < 0)
			sb_log(SB_LOG_ERROR, "pdnd", "cannot trace a refused query: %s", terr.msg);
	}
	if (rc < 0)
		goto cleanup;
	for (i = 0; i < m && rc == 0; i += PDND_INAD_MAX_BULK) {
		size_t k = m - i < PDND_INAD_MAX_BULK ? m - i : PDND_INAD_MAX_BULK;

		rc = prefetch_chunk(r, h, who, todo + i, subjects + i, k, err);
	}
	if (rc == 0 && fetched_out)
		*fetched_out = m;
cleanup:
	free(todo);
	free(subjects);
	return rc;
}
