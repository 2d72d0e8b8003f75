/*
 * send-sim: ANPR stand-ins for C030 (tax code to idANPR) and C001
 * (notification residence), behind a GovWay-like gateway that checks the
 * voucher and the ModI headers (INTEGRITY_REST_02, AUDIT_REST_02) first.
 * Specs: ../shared/specs/anpr/C030-*.yaml, C001-*.yaml and
 * PDND-SUMMARY.md sections 7 and 8.
 *
 * Paths (the real ones after the host):
 *   POST /anpr/MinInternoPortaANPR-PDND/C030-servizioAccertamentoIdUnicoNazionale/v1/
 *        anpr-service-e002
 *   POST /anpr/MinInternoPortaANPR-PDND/C001-servizioNotifica/v1/anpr-service-e002
 * Gateway errors: 404 "Unknown API Request" for a missing or invalid
 * voucher, 400 InteroperabilityInvalidRequest for ModI problems, each with
 * a govway_id; ANPR errors: RispostaKO with listaErrori (EN122 for a
 * subject not registered or cancelled). A search by tax code carries the
 * EN148 warning, as ANPR does since DM 3 Mar 2023.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_json.h"
#include "sb_time.h"
#include "sim_pdnd.h"

#define ANPR_PREFIX "/anpr/MinInternoPortaANPR-PDND/"

static void reply_json_t(struct sim_response *rs, unsigned status, json_t *body, const char *ctype)
{
	char *txt = json_dumps(body, JSON_COMPACT);

	sim_reply_json(rs, status, "%s", txt ? txt : "{}");
	sim_reply_type(rs, ctype);
	free(txt);
	json_decref(body);
}

static void gateway_error(struct sim_response *rs, unsigned status, const char *title,
			  const char *detail, const char *govway_id, const char *why)
{
	fprintf(stderr, "anpr-sim: refused govway_id=%s: %s\n", govway_id, why);
	reply_json_t(rs, status, json_pack("{s:s,s:s,s:i,s:s,s:s}", "type",
					   "https://govway.org/handling-errors/400/"
					   "InteroperabilityInvalidRequest.html",
					   "title", title, "status", (int)status, "detail", detail,
					   "govway_id", govway_id),
		     "application/problem+json");
}

static void anpr_ko(struct sim_response *rs, unsigned status, const char *code, const char *text,
		    const char *field)
{
	char op[37];

	sim_pdnd_uuid(op);
	reply_json_t(rs, status,
		     json_pack("{s:s,s:[{s:s,s:s,s:s,s:s}]}", "idOperazioneANPR", op, "listaErrori",
			       "codiceErroreAnomalia", code, "tipoErroreAnomalia", "E",
			       "testoErroreAnomalia", text,
			       "campoErroreAnomalia", field ? field : ""),
		     "application/problem+json");
}

static json_t *find_subject(struct sim_pdnd *p, const char *cf, const char *id)
{
	size_t i;
	json_t *s;

	json_array_foreach(sim_pdnd_subjects(p), i, s) {
		const char *scf = json_string_value(json_object_get(json_object_get(
			json_object_get(s, "generalita"), "codiceFiscale"), "codFiscale"));
		const char *sid = json_string_value(json_object_get(json_object_get(s,
							"identificativi"), "idANPR"));

		if ((cf && scf && !strcmp(cf, scf)) || (id && sid && !strcmp(id, sid)))
			return s;
	}
	return NULL;
}

static void e002(struct sim_pdnd *p, const struct sim_request *rq, struct sim_response *rs,
		 const char *eservice)
{
	json_t *req = NULL, *voucher = NULL, *crit, *dati, *subj, *out, *ds, *anom;
	const char *cf, *id;
	char why[256], gw[37], op[37];

	sim_pdnd_uuid(gw);
	sim_reply_header(rs, "GovWay-Transaction-ID: %s", gw);
	if (!sim_pdnd_check_voucher(p, sim_header(rq, "Authorization"), eservice, &voucher, why,
				    sizeof(why))) {
		gateway_error(rs, 404, "NotFound", "Unknown API Request", gw, why);
		return;
	}
	if (!sim_pdnd_check_modi(p, rq, voucher, eservice, true, why, sizeof(why))) {
		gateway_error(rs, 400, "InteroperabilityInvalidRequest",
			      "Received request is not conform to the required interoperability "
			      "profile", gw, why);
		goto done;
	}
	req = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, NULL);
	crit = json_object_get(req, "criteriRicerca");
	dati = json_object_get(req, "datiRichiesta");
	if (!json_is_object(req) || !json_is_string(json_object_get(req, "idOperazioneClient"))) {
		anpr_ko(rs, 400, "999",
			"Operazione non effettuabile: idOperazioneClient obbligatorio",
			"idOperazioneClient");
		goto done;
	}
	if (!json_is_object(dati) || !json_is_string(json_object_get(dati, "motivoRichiesta")) ||
	    !json_is_string(json_object_get(dati, "dataRiferimentoRichiesta")) ||
	    !json_is_string(json_object_get(dati, "casoUso"))) {
		anpr_ko(rs, 400, "999", "Operazione non effettuabile: datiRichiesta incompleti",
			"datiRichiesta");
		goto done;
	}
	cf = json_string_value(json_object_get(crit, "codiceFiscale"));
	id = json_string_value(json_object_get(crit, "idANPR"));
	if (!cf && !id) {
		anpr_ko(rs, 400, "999", "Operazione non effettuabile: criteri di ricerca assenti",
			"criteriRicerca");
		goto done;
	}
	subj = find_subject(p, cf, id);
	if (!subj) {
		anpr_ko(rs, 404, "EN122", "Soggetto non registrato in ANPR", "criteriRicerca");
		goto done;
	}
	if (json_is_true(json_object_get(subj, "cancellato"))) {
		anpr_ko(rs, 404, "EN122", "Soggetto cancellato da ANPR", "criteriRicerca");
		goto done;
	}
	ds = json_object();
	if (!strcmp(eservice, "anpr-c030")) {
		json_object_set_new(ds, "generalita", json_pack("{s:O}", "codiceFiscale",
			json_object_get(json_object_get(subj, "generalita"), "codiceFiscale")));
		json_object_set(ds, "identificativi", json_object_get(subj, "identificativi"));
	} else {
		static const char *const parts[] = { "generalita", "residenza", "identificativi",
						     "infoSoggettoEnte", "datiDecesso" };

		for (size_t i = 0; i < SB_ARRAY_SIZE(parts); i++)
			if (json_object_get(subj, parts[i]))
				json_object_set(ds, parts[i], json_object_get(subj, parts[i]));
	}
	sim_pdnd_uuid(op);
	out = json_pack("{s:s,s:{s:[o]}}", "idOperazioneANPR", op, "listaSoggetti", "datiSoggetto",
			ds);
	if (cf) {
		anom = json_pack("[{s:s,s:s,s:s}]", "codiceErroreAnomalia", "EN148",
				 "tipoErroreAnomalia", "W", "testoErroreAnomalia",
				 "Accesso per codice fiscale deprecato: usare idANPR");
		json_object_set_new(out, "listaAnomalie", anom);
	}
	reply_json_t(rs, 200, out, "application/json");
done:
	json_decref(req);
	json_decref(voucher);
}

bool sim_anpr_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs)
{
	struct sim_pdnd *p = sim_pdnd_state(s);
	const char *rest;

	if (!p || strncmp(rq->path, ANPR_PREFIX, strlen(ANPR_PREFIX)))
		return false;
	rest = rq->path + strlen(ANPR_PREFIX);
	/* GET .../v1/status: the health check every ANPR e-service has (no voucher needed). */
	if (!strcmp(rq->method, "GET") && strlen(rest) > 10 &&
	    !strcmp(rest + strlen(rest) - 10, "/v1/status")) {
		sim_reply_json(rs, 200, "{\"status\":\"ok\"}");
		return true;
	}
	if (strcmp(rq->method, "POST")) {
		sim_reply_json(rs, 404,
			       "{\"title\":\"NotFound\",\"detail\":\"Unknown API Request\"}");
		return true;
	}
	if (!strcmp(rest, "C030-servizioAccertamentoIdUnicoNazionale/v1/anpr-service-e002"))
		e002(p, rq, rs, "anpr-c030");
	else if (!strcmp(rest, "C001-servizioNotifica/v1/anpr-service-e002"))
		e002(p, rq, rs, "anpr-c001");
	else
		sim_reply_json(rs, 404,
			       "{\"title\":\"NotFound\",\"detail\":\"Unknown API Request\"}");
	return true;
}
