/*
 * pdnd/pdnd_modi.c and pdnd/pdnd_anpr.c against send-sim's ANPR stand-in:
 * ModI INTEGRITY_REST_02 and AUDIT_REST_02 end to end (digest binding,
 * tampered body, tracking evidence not matching the voucher, signed
 * headers without digest), and C030/C001 outcomes from the fixture
 * registry (current residence, AIRE, deceased, cancelled, not registered).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_http.h"
#include "sb_time.h"
#include "pdnd.h"
#include "pdnd_anpr.h"
#include "th_pdnd.h"

static struct th_pdnd T;
static struct pdnd_client *C;
static struct sb_http *H;
static char C030_URL[256], C001_URL[256], C030_BASE[256], C001_BASE[256];

static const struct pdnd_audit_ctx WHO = { "vigile.rossi", "pm-workstation-3", "LoA3" };

static int setup(void **state)
{
	(void)state;
	if (th_pdnd_client_start(&T, &C, &H) < 0)
		return -1;
	snprintf(C030_URL, sizeof(C030_URL), "%s" TH_C030_PATH, T.sim.url);
	snprintf(C001_URL, sizeof(C001_URL), "%s" TH_C001_PATH, T.sim.url);
	snprintf(C030_BASE, sizeof(C030_BASE), "%.*s", (int)(strlen(C030_URL) - 18), C030_URL);
	snprintf(C001_BASE, sizeof(C001_BASE), "%.*s", (int)(strlen(C001_URL) - 18), C001_URL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_pdnd_client_stop(&T, C, H);
	return 0;
}

static const char BODY[] = "{\"idOperazioneClient\":\"t1\",\"criteriRicerca\":{\"codiceFiscale\":"
			   "\"RSSMRA80A01H501U\"},\"datiRichiesta\":{\"dataRiferimentoRichiesta\":"
			   "\"2026-01-01\",\"motivoRichiesta\":\"verbale 1\","
			   "\"casoUso\":\"C030\"}}";

static void test_pdnd_anpr__digest_header_matches_openssl(void **state)
{
	struct sb_buf d = SB_BUF_INIT(128), want = SB_BUF_INIT(128);
	char *cmd;

	(void)state;
	assert_int_equal(pdnd_modi_digest(BODY, strlen(BODY), &d), 0);
	cmd = sb_xasprintf("printf '%%s' '%s' | openssl dgst -sha256 -binary | openssl base64 -A",
			   BODY);
	assert_int_equal(th_sh(cmd, &want), 0);
	assert_memory_equal(d.buf, "SHA-256=", 8);
	assert_string_equal(d.buf + 8, want.buf);
	free(cmd);
	sb_buf_release(&d);
	sb_buf_release(&want);
}

static json_t *payload(const char *jws)
{
	struct sb_buf raw = SB_BUF_INIT(1u << 20);
	const char *a = strchr(jws, '.') + 1, *b = strchr(a, '.');
	json_t *v;

	assert_int_equal(sb_base64url_decode(a, (size_t)(b - a), &raw), 0);
	v = json_loadb(raw.buf, raw.len, 0, NULL);
	sb_buf_release(&raw);
	assert_non_null(v);
	return v;
}

static void test_pdnd_anpr__modi_tokens_claims(void **state)
{
	struct sb_buf sig = SB_BUF_INIT(1u << 20), te = SB_BUF_INIT(1u << 20);
	struct sb_err err = SB_ERR_INIT;
	json_t *p, *sh;

	(void)state;
	assert_int_equal(pdnd_modi_signature(C, TH_AUD_C030, "SHA-256=abc", "application/json",
					     &sig, &err), 0);
	p = payload(sig.buf);
	assert_string_equal(json_string_value(json_object_get(p, "aud")), TH_AUD_C030);
	assert_string_equal(json_string_value(json_object_get(p, "iss")), TH_CLIENT_ID);
	assert_string_equal(json_string_value(json_object_get(p, "sub")), TH_CLIENT_ID);
	assert_true(json_is_integer(json_object_get(p, "iat")));
	assert_true(json_is_integer(json_object_get(p, "exp")));
	sh = json_object_get(p, "signed_headers");
	assert_true(json_is_array(sh));
	assert_int_equal(json_array_size(sh), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(sh, 0), "digest")),
			    "SHA-256=abc");
	assert_string_equal(json_string_value(json_object_get(json_array_get(sh, 1),
								"content-type")),
			    "application/json");
	json_decref(p);
	assert_int_equal(pdnd_modi_tracking(C, TH_AUD_C030, TH_PURPOSE_C030, &WHO, &te, &err), 0);
	p = payload(te.buf);
	assert_string_equal(json_string_value(json_object_get(p, "userID")), "vigile.rossi");
	assert_string_equal(json_string_value(json_object_get(p, "userLocation")),
			    "pm-workstation-3");
	assert_string_equal(json_string_value(json_object_get(p, "LoA")), "LoA3");
	assert_string_equal(json_string_value(json_object_get(p, "purposeId")), TH_PURPOSE_C030);
	assert_true(json_integer_value(json_object_get(p, "dnonce")) >= 1000000000000LL);
	json_decref(p);
	/* A tracking evidence needs its audit fields. */
	sb_buf_reset(&te);
	assert_int_equal(pdnd_modi_tracking(C, TH_AUD_C030, TH_PURPOSE_C030,
					    &(struct pdnd_audit_ctx){ "op", NULL, "LoA3" },
					    &te, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "userLocation"));
	assert_int_equal(te.len, 0);
	sb_buf_release(&sig);
	sb_buf_release(&te);
}

static void test_pdnd_anpr__call_accepted_end_to_end(void **state)
{
	struct sb_http_resp resp = { 0 };
	struct pdnd_call_trace t;
	struct sb_err err = SB_ERR_INIT;
	uint64_t before = pdnd_client_token_requests(C);

	(void)state;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pdnd_call_do(C, H, &(struct pdnd_call){
			.method = "POST", .url = C030_URL, .purpose_id = TH_PURPOSE_C030,
			.audience = TH_AUD_C030, .body = BODY, .body_len = strlen(BODY),
			.integrity = true, .audit = true, .who = WHO }, &resp, &t, &err), 0);
		assert_int_equal(resp.status, 200);
		assert_non_null(strstr(resp.body.buf, "AA10000BB"));
		assert_true(t.govway_id[0]);
		assert_true(t.voucher_jti[0]);
		sb_http_resp_release(&resp);
	}
	/* AUDIT_REST_02: a fresh voucher, bound to its evidence, for every call. */
	assert_int_equal(pdnd_client_token_requests(C) - before, 2);
}

/* Send body_sent with ModI headers built for body_signed, and a TE of our choice. */
static long raw_call(const char *body_signed, const char *body_sent, bool te_mismatch,
		     bool sh_without_digest, const char *purpose, char **log_out)
{
	struct sb_buf te = SB_BUF_INIT(1u << 20), te2 = SB_BUF_INIT(1u << 20);
	struct sb_buf dg = SB_BUF_INIT(128), sig = SB_BUF_INIT(1u << 20), hex = SB_BUF_INIT(65);
	struct sb_buf h1 = SB_BUF_INIT(1u << 20), h2 = SB_BUF_INIT(256), h3 = SB_BUF_INIT(1u << 20);
	struct sb_buf h4 = SB_BUF_INIT(1u << 20);
	struct pdnd_voucher v = { 0 };
	struct sb_http_resp resp = { 0 };
	struct sb_err err = SB_ERR_INIT;
	unsigned char d[32];
	long status;

	assert_int_equal(pdnd_modi_tracking(C, TH_AUD_C030, purpose, &WHO, &te, &err), 0);
	sb_sha256(te.buf, te.len, d);
	sb_hex_encode(d, sizeof(d), &hex);
	assert_int_equal(pdnd_voucher_request(C, purpose, hex.buf, &v, &err), 0);
	pdnd_modi_digest(body_signed, strlen(body_signed), &dg);
	if (sh_without_digest) {
		struct sb_pkey *k = NULL;
		char *claims = sb_xasprintf("{\"iss\":\"" TH_CLIENT_ID "\",\"sub\":\"" TH_CLIENT_ID
					    "\",\"aud\":\"" TH_AUD_C030 "\",\"jti\":\"j-%lld\","
					    "\"iat\":%lld,\"exp\":%lld,\"signed_headers\":"
					    "[{\"content-type\":\"application/json\"}]}",
					    (long long)sb_now_ms(), (long long)sb_now() - 5,
					    (long long)sb_now() + 300);
		char *hdr = sb_xasprintf("{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
					 pdnd_client_kid(C));

		assert_int_equal(sb_pkey_load(&k, T.key, &err), 0);
		assert_int_equal(sb_jwt_sign_rs256(k, hdr, claims, &sig, &err), 0);
		sb_pkey_free(k);
		free(claims);
		free(hdr);
	} else {
		assert_int_equal(pdnd_modi_signature(C, TH_AUD_C030, dg.buf, "application/json",
						     &sig, &err), 0);
	}
	if (te_mismatch)
		assert_int_equal(pdnd_modi_tracking(C, TH_AUD_C030, purpose, &WHO, &te2, &err), 0);
	sb_buf_addf(&h1, "Authorization: Bearer %s", v.token);
	sb_buf_addf(&h2, "Digest: %s", dg.buf);
	sb_buf_addf(&h3, "Agid-JWT-Signature: %s", sig.buf);
	sb_buf_addf(&h4, "Agid-JWT-TrackingEvidence: %s", te_mismatch ? te2.buf : te.buf);
	{
		const char *hdrs[] = { h1.buf, "Content-Type: application/json", h2.buf, h3.buf,
				       h4.buf, NULL };

		assert_int_equal(sb_http_do(H, &(struct sb_http_req){
			.method = "POST", .url = C030_URL, .headers = hdrs, .body = body_sent,
			.body_len = strlen(body_sent) }, &resp, &err), 0);
	}
	status = resp.status;
	if (status != 200)
		assert_non_null(strstr(resp.body.buf, "govway_id"));
	*log_out = th_pdnd_sim_log(&T);
	sb_http_resp_release(&resp);
	pdnd_voucher_release(&v);
	sb_buf_release(&te);
	sb_buf_release(&te2);
	sb_buf_release(&dg);
	sb_buf_release(&sig);
	sb_buf_release(&hex);
	sb_buf_release(&h1);
	sb_buf_release(&h2);
	sb_buf_release(&h3);
	sb_buf_release(&h4);
	return status;
}

static void test_pdnd_anpr__modi_binding_refusals(void **state)
{
	char tampered[sizeof(BODY)], *log = NULL;

	(void)state;
	/* The honest call through the same path passes: the refusals below are real. */
	assert_int_equal(raw_call(BODY, BODY, false, false, TH_PURPOSE_C030, &log), 200);
	free(log);

	memcpy(tampered, BODY, sizeof(BODY));
	tampered[strlen(BODY) - 4] = 'X';       /* one byte of the body changed in transit */
	assert_int_equal(raw_call(BODY, tampered, false, false, TH_PURPOSE_C030, &log), 400);
	assert_non_null(strstr(log, "Digest header missing or not the SHA-256 of the body"));
	free(log);

	assert_int_equal(raw_call(BODY, BODY, true, false, TH_PURPOSE_C030, &log), 400);
	assert_non_null(strstr(log, "voucher digest does not match the tracking evidence"));
	free(log);

	assert_int_equal(raw_call(BODY, BODY, false, true, TH_PURPOSE_C030, &log), 400);
	assert_non_null(strstr(log, "Header HTTP 'Digest' non presente"));
	free(log);

	/* A voucher for another e-service (C001's purpose) is not this API's: 404. */
	assert_int_equal(raw_call(BODY, BODY, false, false, TH_PURPOSE_C001, &log), 404);
	assert_non_null(strstr(log, "voucher audience is not this e-service's"));
	free(log);
}

static void test_pdnd_anpr__gateway_refusal_is_reported(void **state)
{
	struct pdnd_anpr_cfg cfg = { C030_BASE, C001_BASE, TH_AUD_C001, TH_AUD_C001,
				     TH_PURPOSE_C030, TH_PURPOSE_C001 };
	struct pdnd_anpr_query q = { WHO, "verbale 2026/1" };
	struct pdnd_anpr_result r = { 0 };
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	/* C001's audience copied into a C030 call (italia/anpr#4874): ModI refused. */
	assert_int_equal(pdnd_anpr_c030(C, H, &cfg, &q, "RSSMRA80A01H501U", &r, NULL, &err),
			 SB_EREJECT);
	assert_int_equal(err.code, SB_EREJECT);
	assert_int_equal(err.http, 400);
	assert_non_null(strstr(err.msg, "InteroperabilityInvalidRequest"));
	assert_non_null(strstr(err.msg, "modi headers"));
	assert_int_equal(r.outcome, 0);
	assert_null(r.residence.line);
	/* Missing configuration never reaches the network. */
	cfg.c030_url = NULL;
	sb_err_clear(&err);
	assert_int_equal(pdnd_anpr_c030(C, H, &cfg, &q, "RSSMRA80A01H501U", &r, NULL, &err),
			 SB_ECONFIG);
	assert_non_null(strstr(err.msg, "[anpr]"));
	cfg.c030_url = C030_BASE;
	q.reason = NULL;
	sb_err_clear(&err);
	assert_int_equal(pdnd_anpr_c030(C, H, &cfg, &q, "RSSMRA80A01H501U", &r, NULL, &err),
			 SB_EINVAL);
	assert_non_null(strstr(err.msg, "motivoRichiesta"));
	q.reason = "verbale 2026/1";
	sb_err_clear(&err);
	assert_int_equal(pdnd_anpr_c030(C, H, &cfg, &q, "", &r, NULL, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "tax code"));
	sb_err_clear(&err);
	assert_int_equal(pdnd_anpr_c001(C, H, &cfg, &q, NULL, NULL, &r, NULL, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "idANPR"));
	/* ANPR down: temporary, with the status. */
	cfg.c030_audience = TH_AUD_C030;
	th_pdnd_faults(&T, "{\"failNth\":2}");   /* call 1: the token; call 2: ANPR */
	sb_err_clear(&err);
	assert_int_equal(pdnd_anpr_c030(C, H, &cfg, &q, "RSSMRA80A01H501U", &r, NULL, &err),
			 SB_ETEMP);
	assert_int_equal(err.http, 503);
	assert_true(err.msg[0]);
	th_pdnd_faults(&T, "{\"failNth\":0}");
	assert_null(r.residence.line);
}

static const struct pdnd_anpr_cfg *cfg_ok(void)
{
	static struct pdnd_anpr_cfg cfg;

	cfg = (struct pdnd_anpr_cfg){ C030_BASE, C001_BASE, TH_AUD_C030, TH_AUD_C001,
				      TH_PURPOSE_C030, TH_PURPOSE_C001 };
	return &cfg;
}

static void test_pdnd_anpr__c030_then_c001_current_residence(void **state)
{
	struct pdnd_anpr_query q = { WHO, "verbale 2026/1" };
	struct pdnd_anpr_result id = { 0 }, r = { 0 };
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	assert_int_equal(pdnd_anpr_c030(C, H, cfg_ok(), &q, "RSSMRA80A01H501U",
					&id, NULL, &err), 0);
	assert_int_equal(id.outcome, PDND_ANPR_FOUND);
	assert_string_equal(id.id_anpr, "AA10000BB");
	assert_string_equal(id.warnings, "EN148");     /* searched by tax code */
	assert_int_equal(pdnd_anpr_c001(C, H, cfg_ok(), &q, "RSSMRA80A01H501U", id.id_anpr, &r,
					NULL, &err), 0);
	assert_int_equal(r.outcome, PDND_ANPR_FOUND);
	assert_string_equal(r.warnings, "");           /* by idANPR: no deprecation warning */
	assert_true(r.has_residence);
	/* Two residences in the registry: the one that started last (2019) is current. */
	assert_string_equal(r.residence.since, "2019-06-15");
	assert_string_equal(r.residence.line, "VIALE TRASTEVERE 21B");
	assert_string_equal(r.residence.detail, "scala A interno 4");
	assert_string_equal(r.residence.zip, "00153");
	assert_string_equal(r.residence.municipality, "ROMA");
	assert_string_equal(r.residence.province, "RM");
	assert_false(r.residence.foreign);
	assert_false(r.deceased);
	pdnd_anpr_result_release(&id);
	pdnd_anpr_result_release(&r);
}

static void test_pdnd_anpr__outcomes_from_registry(void **state)
{
	struct pdnd_anpr_query q = { WHO, "verbale 2026/2" };
	struct pdnd_anpr_result r = { 0 };
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	/* AIRE: the foreign address started after the Italian one. */
	assert_int_equal(pdnd_anpr_c001(C, H, cfg_ok(), &q, "NREANN90D52A944V", NULL, &r, NULL,
					&err), 0);
	assert_true(r.aire);
	assert_true(r.residence.foreign);
	assert_string_equal(r.residence.line, "RUE DE LA ROQUETTE 44");
	assert_string_equal(r.residence.municipality, "PARIS");
	assert_string_equal(r.residence.state, "FRANCIA");
	assert_null(r.residence.province);
	pdnd_anpr_result_release(&r);
	/* Deceased. */
	assert_int_equal(pdnd_anpr_c001(C, H, cfg_ok(), &q, "VRDGPP62T10L219Z", NULL, &r, NULL,
					&err), 0);
	assert_true(r.deceased);
	assert_string_equal(r.death_date, "2024-02-20");
	pdnd_anpr_result_release(&r);
	/* Positive metrico/progSNC are absent: a plain civic number. */
	assert_int_equal(pdnd_anpr_c001(C, H, cfg_ok(), &q, "CSTLGU70H15B354X", NULL, &r, NULL,
					&err), 0);
	assert_string_equal(r.residence.line, "PIAZZA YENNE 2");
	pdnd_anpr_result_release(&r);
	/* EN122, cancelled and never registered: outcomes, not errors. */
	assert_int_equal(pdnd_anpr_c030(C, H, cfg_ok(), &q, "GLLPLA55C08G273M", &r, NULL, &err), 0);
	assert_int_equal(r.outcome, PDND_ANPR_CANCELLED);
	assert_false(r.has_residence);
	pdnd_anpr_result_release(&r);
	assert_int_equal(pdnd_anpr_c030(C, H, cfg_ok(), &q, "FRRSRA88E60D612B", &r, NULL, &err), 0);
	assert_int_equal(r.outcome, PDND_ANPR_NOT_REGISTERED);
	pdnd_anpr_result_release(&r);
}

/* Parser cases the registry does not produce: table-driven. */
static void test_pdnd_anpr__parse_table(void **state)
{
	static const struct {
		long status;
		const char *body;
		int rc;
		const char *line;       /* expected residence line, or NULL */
	} cases[] = {
		{ 200, "{\"listaSoggetti\":{\"datiSoggetto\":[{\"generalita\":{\"codiceFiscale\":"
		  "{\"codFiscale\":\"OTHER\"}},"
		  "\"residenza\":[{\"indirizzo\":{\"toponimo\":{\"specie\":"
		  "\"VIA\",\"denominazioneToponimo\":\"X\"}}}]}]}}", 0, NULL },
		{ 200, "{\"listaSoggetti\":{\"datiSoggetto\":[{\"generalita\":{\"codiceFiscale\":"
		  "{\"codFiscale\":\"RSSMRA80A01H501U\"}},"
		  "\"residenza\":[{\"dataDecorrenzaResidenza\":"
		  "\"2001-01-01\",\"indirizzo\":{\"toponimo\":{\"specie\":\"STRADA\","
		  "\"denominazioneToponimo\":\"PROVINCIALE 12\"},"
		  "\"numeroCivico\":{\"metrico\":\"7\","
		  "\"progSNC\":\"1\"}}}]}]}}", 0, "STRADA PROVINCIALE 12 KM 7 SNC" },
		{ 400,
		  "{\"listaErrori\":[{\"codiceErroreAnomalia\":\"999\",\"testoErroreAnomalia\":"
		  "\"Operazione non effettuabile\"}]}", SB_EREJECT, NULL },
		{ 500,
		  "{\"listaErrori\":[{\"codiceErroreAnomalia\":\"500\",\"testoErroreAnomalia\":"
		  "\"errore\"}]}", SB_ETEMP, NULL },
		{ 404, "{\"title\":\"NotFound\",\"detail\":\"Unknown API Request\"}",
		  SB_EREJECT, NULL },
		{ 503, "", SB_ETEMP, NULL },
		{ 200, "not json", SB_EINVAL, NULL },
	};
	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		struct pdnd_anpr_result r = { 0 };
		struct sb_err err = SB_ERR_INIT;
		int rc = pdnd_anpr_parse(cases[i].status, cases[i].body, strlen(cases[i].body),
					 "RSSMRA80A01H501U", &r, &err);

		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d, expected %d (%s)", i, rc, cases[i].rc, err.msg);
		if (rc < 0) {
			assert_int_equal(err.code, rc);
			assert_true(err.msg[0]);
		} else if (cases[i].line) {
			assert_string_equal(r.residence.line, cases[i].line);
		} else {
			assert_int_equal(r.outcome, PDND_ANPR_NOT_REGISTERED);
			assert_false(r.has_residence);
		}
		pdnd_anpr_result_release(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pdnd_anpr__digest_header_matches_openssl),
		cmocka_unit_test(test_pdnd_anpr__modi_tokens_claims),
		cmocka_unit_test(test_pdnd_anpr__call_accepted_end_to_end),
		cmocka_unit_test(test_pdnd_anpr__modi_binding_refusals),
		cmocka_unit_test(test_pdnd_anpr__gateway_refusal_is_reported),
		cmocka_unit_test(test_pdnd_anpr__c030_then_c001_current_residence),
		cmocka_unit_test(test_pdnd_anpr__outcomes_from_registry),
		cmocka_unit_test(test_pdnd_anpr__parse_table),
	};

	return cmocka_run_group_tests_name("pdnd_anpr", tests, setup, teardown);
}
