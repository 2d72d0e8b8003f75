/*
 * ANPR C030 and C001 clients: see pdnd_anpr.h.
 * Specs: ../shared/specs/anpr/C030-servizioAccertamentoIdUnicoNazionale.yaml,
 * ../shared/specs/anpr/C001-servizioNotifica.yaml, PDND-SUMMARY.md 7-8.
 *
 * - The body is serialised once and sent byte for byte (the Digest covers
 *   exactly those bytes).
 * - idOperazioneClient must be unique and alphanumeric: time in ms plus a
 *   random part, so two workers never collide and ANPR never replays an old
 *   answer for a reused id.
 * - Residence: SEND's mapping. Subjects other than the one asked are
 *   dropped; among residenza[] the latest dataDecorrenzaResidenza wins
 *   (YYYY-MM-DD compares as text). The street line is specie +
 *   denominazioneToponimo + numero + lettera (+ esponente1), "KM n" for a
 *   positive metrico, "SNC" for a positive progSNC; AIRE residents use the
 *   localitaEstera fields.
 * - Gateway errors (GovWay) are told apart from ANPR's own listaErrori, so
 *   a configuration problem is never reported as "subject not found".
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "pdnd_anpr.h"

void pdnd_address_release(struct pdnd_address *a)
{
	if (!a)
		return;
	free(a->at);
	free(a->line);
	free(a->detail);
	free(a->zip);
	free(a->municipality);
	free(a->province);
	free(a->state);
	memset(a, 0, sizeof(*a));
}

static char *dup_opt(const char *s)
{
	return s ? sb_xstrdup(s) : NULL;
}

void pdnd_address_copy(struct pdnd_address *dst, const struct pdnd_address *src)
{
	*dst = *src;
	dst->at = dup_opt(src->at);
	dst->line = dup_opt(src->line);
	dst->detail = dup_opt(src->detail);
	dst->zip = dup_opt(src->zip);
	dst->municipality = dup_opt(src->municipality);
	dst->province = dup_opt(src->province);
	dst->state = dup_opt(src->state);
}

/* Compare ignoring case, punctuation and runs of spaces ("Via  Roma, 10" == "VIA ROMA 10"). */
static bool loose_eq(const char *a, const char *b)
{
	a = a ? a : "";
	b = b ? b : "";
	for (;;) {
		while (*a && !isalnum((unsigned char)*a))
			a++;
		while (*b && !isalnum((unsigned char)*b))
			b++;
		if (!*a || !*b)
			return !*a && !*b;
		if (toupper((unsigned char)*a) != toupper((unsigned char)*b))
			return false;
		a++;
		b++;
	}
}

bool pdnd_address_same(const struct pdnd_address *a, const struct pdnd_address *b)
{
	return loose_eq(a->line, b->line) && loose_eq(a->zip, b->zip) &&
	       loose_eq(a->municipality, b->municipality) && a->foreign == b->foreign &&
	       (a->foreign || loose_eq(a->province, b->province)) &&
	       (!a->foreign || loose_eq(a->state, b->state));
}

void pdnd_address_format(const struct pdnd_address *a, struct sb_buf *out)
{
	if (a->at)
		sb_buf_addf(out, "c/o %s, ", a->at);
	sb_buf_addf(out, "%s", a->line ? a->line : "");
	if (a->detail)
		sb_buf_addf(out, " (%s)", a->detail);
	sb_buf_addf(out, ", %s %s", a->zip ? a->zip : "", a->municipality ? a->municipality : "");
	if (a->province)
		sb_buf_addf(out, " %s", a->province);
	if (a->state)
		sb_buf_addf(out, " %s", a->state);
}

void pdnd_anpr_cfg_load(struct pdnd_anpr_cfg *out, const struct sb_cfg *cfg)
{
	out->c030_url = sb_cfg_str(cfg, "anpr", "c030_url");
	out->c001_url = sb_cfg_str(cfg, "anpr", "c001_url");
	out->c030_audience = sb_cfg_str(cfg, "anpr", "c030_audience");
	out->c001_audience = sb_cfg_str(cfg, "anpr", "c001_audience");
	out->c030_purpose = sb_cfg_str(cfg, "anpr", "c030_purpose_id");
	out->c001_purpose = sb_cfg_str(cfg, "anpr", "c001_purpose_id");
}

void pdnd_anpr_result_release(struct pdnd_anpr_result *r)
{
	if (!r)
		return;
	pdnd_address_release(&r->residence);
	memset(r, 0, sizeof(*r));
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && *s ? s : NULL;
}

/* A positive number in text form ("0" and absent mean none). */
static bool positive(const char *s)
{
	uint64_t v;

	return s && sb_parse_u64z(s, UINT64_MAX, &v) == 0 && v > 0;
}

static void residence_map(const json_t *r, struct pdnd_address *a)
{
	const json_t *ind = json_object_get(r, "indirizzo"),
		*est = json_object_get(r, "localitaEstera");
	struct sb_buf line = SB_BUF_INIT(1024), det = SB_BUF_INIT(1024);

	memset(a, 0, sizeof(*a));
	snprintf(a->since, sizeof(a->since), "%s", jstr(r, "dataDecorrenzaResidenza") ?: "");
	a->at = dup_opt(jstr(r, "presso"));
	if (json_is_object(ind)) {
		const json_t *top = json_object_get(ind, "toponimo"),
			*num = json_object_get(ind, "numeroCivico");
		const json_t *in = json_object_get(num, "civicoInterno"),
			*com = json_object_get(ind, "comune");
		static const char *const inner[][2] = { { "corte", "corte" }, { "scala", "scala" },
			{ "interno1", "interno" }, { "espInterno1", "" }, { "interno2", "interno" },
			{ "piano", "piano" }, { "isolato", "isolato" } };

		sb_buf_addf(&line, "%s %s", jstr(top, "specie") ?: "",
			    jstr(top, "denominazioneToponimo") ?: "");
		if (positive(jstr(num, "metrico")))
			sb_buf_addf(&line, " KM %s", jstr(num, "metrico"));
		else if (jstr(num, "numero"))
			sb_buf_addf(&line, " %s%s%s%s", jstr(num, "numero"),
				    jstr(num, "lettera") ?: "",
				    jstr(num, "esponente1") ? "/" : "",
				    jstr(num, "esponente1") ?: "");
		if (positive(jstr(num, "progSNC")))
			sb_buf_adds(&line, " SNC");
		for (size_t i = 0; i < SB_ARRAY_SIZE(inner); i++)
			if (jstr(in, inner[i][0]))
				sb_buf_addf(&det, "%s%s%s%s", det.len ? " " : "", inner[i][1],
					    *inner[i][1] ? " " : "", jstr(in, inner[i][0]));
		if (jstr(ind, "frazione"))
			sb_buf_addf(&det, "%sfrazione %s", det.len ? " " : "",
				    jstr(ind, "frazione"));
		a->zip = dup_opt(jstr(ind, "cap"));
		a->municipality = dup_opt(jstr(com, "nomeComune"));
		a->province = dup_opt(jstr(com, "siglaProvinciaIstat"));
	} else if (json_is_object(est)) {
		const json_t *ie = json_object_get(est, "indirizzoEstero");
		const json_t *loc = json_object_get(ie, "localita"),
			*top = json_object_get(ie, "toponimo");

		a->foreign = true;
		sb_buf_addf(&line, "%s%s%s", jstr(top, "denominazione") ?: "",
			    jstr(top, "numeroCivico") ? " " : "", jstr(top, "numeroCivico") ?: "");
		a->zip = dup_opt(jstr(ie, "cap"));
		a->municipality = dup_opt(jstr(loc, "descrizioneLocalita"));
		a->state = dup_opt(jstr(loc, "descrizioneStato"));
		if (jstr(loc, "provinciaContea"))
			sb_buf_addf(&det, "%s", jstr(loc, "provinciaContea"));
	}
	a->line = sb_buf_detach(&line, NULL);
	a->detail = det.len ? sb_buf_detach(&det, NULL) : NULL;
	sb_buf_release(&det);
}

static int parse_ko(long status, const json_t *body, struct pdnd_anpr_result *out,
		    struct sb_err *err)
{
	const json_t *e0 = json_array_get(json_object_get(body, "listaErrori"), 0);
	const char *code = jstr(e0, "codiceErroreAnomalia"),
		*text = jstr(e0, "testoErroreAnomalia");
	const char *title = jstr(body, "title");
	char q[128], qt[96];

	if (code && !strcmp(code, "EN122")) {
		memset(out, 0, sizeof(*out));
		out->outcome = text && strcasestr(text, "cancellat") ? PDND_ANPR_CANCELLED
								    : PDND_ANPR_NOT_REGISTERED;
		snprintf(out->id_operazione, sizeof(out->id_operazione), "%s",
			 jstr(body, "idOperazioneANPR") ?: "");
		return 0;
	}
	sb_log_quote(text ? text : "", text ? strlen(text) : 0, q, sizeof(q));
	if (code)
		return sb_err_set(err, status >= 500 ? SB_ETEMP : SB_EREJECT, 0,
				  "anpr error %s: %s", code, q);
	/* No listaErrori: the gateway answered (ModI, voucher, URL), not ANPR. */
	sb_log_quote(title ? title : "", title ? strlen(title) : 0, qt, sizeof(qt));
	text = jstr(body, "detail");
	sb_log_quote(text ? text : "", text ? strlen(text) : 0, q, sizeof(q));
	if (sb_http_status_class(status) == SB_ETEMP)
		return sb_err_set(err, SB_ETEMP, 0, "anpr gateway answered %ld %s", status, qt);
	return sb_err_set(err, SB_EREJECT, 0, "anpr gateway refused the call (%ld %s: %s)%s",
			  status, qt[0] ? qt : "no title", q,
			  status == 404 ? ": wrong url or method, or voucher missing or invalid" :
			  status == 400 ? ": modi headers (audience, digest, signed headers, "
					  "tracking evidence) not accepted" : "");
}

int pdnd_anpr_parse(long status, const char *body, size_t len, const char *tax_id,
		    struct pdnd_anpr_result *out, struct sb_err *err)
{
	json_t *root = NULL, *subjects, *s, *r;
	struct pdnd_anpr_result res;
	size_t i, j;
	const json_t *best = NULL;
	int rc;

	if (status != 200 && !len)
		return sb_err_set(err,
				  sb_http_status_class(status) == SB_ETEMP ? SB_ETEMP : SB_EREJECT,
				  0, "anpr answered %ld with no body", status);
	rc = sb_json_parse(body, len, SB_MAX_JSON_BODY, "anpr reply", &root, err);
	if (rc < 0)
		return status >= 500 ?
		       sb_err_set(err, SB_ETEMP, 0, "anpr answered %ld", status) : rc;
	if (status != 200) {
		rc = parse_ko(status, root, out, err);
		json_decref(root);
		return rc;
	}
	memset(&res, 0, sizeof(res));
	res.outcome = PDND_ANPR_NOT_REGISTERED;
	snprintf(res.id_operazione, sizeof(res.id_operazione), "%s",
		 jstr(root, "idOperazioneANPR") ?: "");
	json_array_foreach(json_object_get(root, "listaAnomalie"), i, s) {
		const char *code = jstr(s, "codiceErroreAnomalia");

		if (code && strlen(res.warnings) + strlen(code) + 2 < sizeof(res.warnings))
			snprintf(res.warnings + strlen(res.warnings),
				 sizeof(res.warnings) - strlen(res.warnings), "%s%s",
				 res.warnings[0] ? "," : "", code);
	}
	subjects = json_object_get(json_object_get(root, "listaSoggetti"), "datiSoggetto");
	json_array_foreach(subjects, i, s) {
		const json_t *g = json_object_get(s, "generalita");
		const char *cf = jstr(json_object_get(g, "codiceFiscale"), "codFiscale");
		const json_t *info;

		if (tax_id && (!cf || strcmp(cf, tax_id)))
			continue;
		res.outcome = PDND_ANPR_FOUND;
		snprintf(res.id_anpr, sizeof(res.id_anpr), "%s",
			 jstr(json_object_get(s, "identificativi"), "idANPR") ?: "");
		res.aire = jstr(g, "soggettoAIRE") && !strcmp(jstr(g, "soggettoAIRE"), "S");
		if (json_is_object(json_object_get(s, "datiDecesso"))) {
			res.deceased = true;
			snprintf(res.death_date, sizeof(res.death_date), "%s",
				 jstr(json_object_get(s, "datiDecesso"), "dataEvento") ?: "");
		}
		/* Death also shows as infoSoggettoEnte id 1015 "Data decesso". */
		json_array_foreach(json_object_get(s, "infoSoggettoEnte"), j, info) {
			if (jstr(info, "id") && !strcmp(jstr(info, "id"), "1015")) {
				res.deceased = true;
				if (!res.death_date[0])
					snprintf(res.death_date, sizeof(res.death_date), "%s",
						 jstr(info, "valoreData") ?: "");
			}
		}
		json_array_foreach(json_object_get(s, "residenza"), j, r) {
			const char *d = jstr(r, "dataDecorrenzaResidenza") ?: "";

			if (!best || strcmp(d, jstr(best, "dataDecorrenzaResidenza") ?: "") > 0)
				best = r;
		}
		break;
	}
	if (best) {
		residence_map(best, &res.residence);
		res.has_residence = true;
	}
	json_decref(root);
	*out = res;
	return 0;
}

/* idOperazioneClient: unique and alphanumeric (ms time + 8 random hex digits). */
static void operation_id(char out[40])
{
	unsigned char r[4];

	sb_random_bytes(r, sizeof(r));
	snprintf(out, 40, "%lld%02x%02x%02x%02x", (long long)sb_now_ms(), r[0], r[1], r[2], r[3]);
}

static int e002(struct pdnd_client *c, struct sb_http *h, const char *base, const char *aud,
		const char *purpose, const char *use_case, const struct pdnd_anpr_query *q,
		const char *tax_id, const char *id_anpr, struct pdnd_anpr_result *out,
		struct pdnd_call_trace *trace, struct sb_err *err)
{
	struct sb_buf body = SB_BUF_INIT(65536), url = SB_BUF_INIT(2048);
	struct sb_http_resp resp = { 0 };
	char opid[40], today[16];
	json_t *req;
	int rc;

	if (!base || !aud || !purpose)
		return sb_err_set(err, SB_ECONFIG, 0, "[anpr] %s url, audience and purpose id must "
				  "be set", use_case);
	if (!q || !q->reason || !*q->reason)
		return sb_err_set(err, SB_EINVAL, 0, "anpr %s: motivoRichiesta (act reference) "
				  "is required", use_case);
	operation_id(opid);
	sb_time_date(sb_now(), today, sizeof(today));
	req = json_pack("{s:s,s:{},s:{s:s,s:s,s:s}}", "idOperazioneClient", opid, "criteriRicerca",
			"datiRichiesta", "dataRiferimentoRichiesta", today, "motivoRichiesta",
			q->reason, "casoUso", use_case);
	if (id_anpr)
		json_object_set_new(json_object_get(req, "criteriRicerca"), "idANPR",
				    json_string(id_anpr));
	else
		json_object_set_new(json_object_get(req, "criteriRicerca"), "codiceFiscale",
				    json_string(tax_id));
	rc = sb_json_dump(req, &body, err);
	json_decref(req);
	if (rc < 0)
		goto cleanup;
	sb_buf_addf(&url, "%s%sanpr-service-e002", base,
		    base[0] && base[strlen(base) - 1] == '/' ? "" : "/");
	rc = pdnd_call_do(c, h, &(struct pdnd_call){ .method = "POST", .url = url.buf,
						     .purpose_id = purpose, .audience = aud,
						     .body = body.buf, .body_len = body.len,
						     .integrity = true, .audit = true,
						     .who = q->who },
			  &resp, trace, err);
	if (rc < 0)
		goto cleanup;
	rc = pdnd_anpr_parse(resp.status, resp.body.buf ? resp.body.buf : "", resp.body.len,
			     tax_id, out, err);
	if (rc < 0) {
		if (err)
			err->http = (int)resp.status;
		sb_err_prefix(err, "anpr %s", use_case);
	}
cleanup:
	sb_http_resp_release(&resp);
	sb_buf_release(&body);
	sb_buf_release(&url);
	return rc;
}

int pdnd_anpr_c030(struct pdnd_client *c, struct sb_http *h, const struct pdnd_anpr_cfg *cfg,
		   const struct pdnd_anpr_query *q, const char *tax_id,
		   struct pdnd_anpr_result *out, struct pdnd_call_trace *trace, struct sb_err *err)
{
	if (!tax_id || !*tax_id)
		return sb_err_set(err, SB_EINVAL, 0, "anpr C030: tax code is required");
	return e002(c, h, cfg->c030_url, cfg->c030_audience, cfg->c030_purpose, "C030", q, tax_id,
		    NULL, out, trace, err);
}

int pdnd_anpr_c001(struct pdnd_client *c, struct sb_http *h, const struct pdnd_anpr_cfg *cfg,
		   const struct pdnd_anpr_query *q, const char *tax_id, const char *id_anpr,
		   struct pdnd_anpr_result *out, struct pdnd_call_trace *trace, struct sb_err *err)
{
	if ((!tax_id || !*tax_id) && (!id_anpr || !*id_anpr))
		return sb_err_set(err, SB_EINVAL, 0, "anpr C001: tax code or idANPR is required");
	return e002(c, h, cfg->c001_url, cfg->c001_audience, cfg->c001_purpose, "C001", q, tax_id,
		    id_anpr && *id_anpr ? id_anpr : NULL, out, trace, err);
}
