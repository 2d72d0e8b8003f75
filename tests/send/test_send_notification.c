/*
 * Building SEND's create body without the network: address normalisation
 * (table-driven), and every check that stops a request SEND would refuse,
 * each naming its field. The client points at a loopback port nobody
 * listens on: nothing here may leave the process.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "send_fixture.h"
#include "send_int.h"   /* send_scrub_pii: the module's own test */

struct addr_case {
	struct send_address in;
	const char *address, *zip, *municipality, *province;   /* expected, NULL: error */
	const char *err_field;
};

static const struct addr_case addr_cases[] = {
	{ { "Via dei Mille 12/a", NULL, NULL, "00100", "Roma", NULL, "rm", NULL },
	  "VIA DEI MILLE 12/A", "00100", "ROMA", "RM", NULL },
	{ { "Piazza Città, 3", NULL, NULL, "20100", "Milano", NULL, "MI", NULL },
	  "PIAZZA CITTA' 3", "20100", "MILANO", "MI", NULL },
	{ { "  Via   Perù  ", NULL, NULL, "10100", "Forlì", NULL, "TO", NULL },
	  "VIA PERU'", "10100", "FORLI'", "TO", NULL },
	{ { "Straße Nº 5 «bis»", NULL, NULL, "39100", "Bolzano", NULL, "BZ", NULL },
	  "STRASSE N 5 BIS", "39100", "BOLZANO", "BZ", NULL },
	{ { "VIA @OK_AR 1", NULL, NULL, "00100", "ROMA", NULL, "RM", NULL },
	  "VIA @OK_AR 1", "00100", "ROMA", "RM", NULL },
	{ { "Rue de Rivoli 1", NULL, NULL, "75001", "Paris", NULL, NULL, "Francia" },
	  "RUE DE RIVOLI 1", "75001", "PARIS", NULL, NULL },
	{ { "Via Roma 1", NULL, NULL, "00100", "Roma", NULL, NULL, NULL },
	  NULL, NULL, NULL, NULL, "province" },
	{ { "Via Roma 1", NULL, NULL, "00100", "Roma", NULL, "XX", "Italia" },
	  NULL, NULL, NULL, NULL, "province" },
	{ { "Via Roma 1", NULL, NULL, "001", "Roma", NULL, "RM", NULL },
	  NULL, NULL, NULL, NULL, "zip" },
	{ { "ä", NULL, NULL, "00100", "Roma", NULL, "RM", NULL },
	  NULL, NULL, NULL, NULL, "address" },
	{ { "Via Roma 1", NULL, NULL, "00100", NULL, NULL, "RM", NULL },
	  NULL, NULL, NULL, NULL, "municipality" },
	{ { "Via dei Lunghissimi Nomi di Strada Antichi 1234", NULL, NULL, "00100", "Roma", NULL,
	    "RM", NULL }, NULL, NULL, NULL, NULL, "address" },
	{ { "Via Roma 1", NULL, NULL, "00100",
	    "San Giovanni in Persiceto di Sopra e di Sotto", NULL, "BO", NULL },
	  NULL, NULL, NULL, NULL, "municipality" },
	{ { "Via Roma 1", NULL, "Presso lo studio del notaio Giovanni Battista", "00100", "Roma",
	    NULL, "RM", NULL }, NULL, NULL, NULL, NULL, "at" },
};

static void test_send_notification__address_normalisation(void **state)
{
	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(addr_cases); i++) {
		const struct addr_case *c = &addr_cases[i];
		struct send_address_norm a;
		struct sb_err err = SB_ERR_INIT;
		int rc;

		memset(&a, 0x5a, sizeof(a));
		rc = send_address_normalize(&c->in, "recipients[0].physicalAddress", &a, &err);
		if (!c->err_field) {
			if (rc != 0)
				fail_msg("case %zu: %s", i, err.msg);
			assert_string_equal(a.address, c->address);
			assert_string_equal(a.zip, c->zip);
			assert_string_equal(a.municipality, c->municipality);
			if (c->province)
				assert_string_equal(a.province, c->province);
			else
				assert_null(a.province);
			send_address_norm_release(&a);
		} else {
			char want[96];

			snprintf(want, sizeof(want), "recipients[0].physicalAddress.%s",
				 c->err_field);
			assert_int_equal(rc, SB_EINVAL);
			assert_int_equal(err.code, SB_EINVAL);
			if (!strstr(err.msg, want))
				fail_msg("case %zu: '%s' does not name %s", i, err.msg, want);
			assert_int_equal(((unsigned char *)&a)[0], 0x5a);   /* untouched */
		}
	}
}

static struct sf *fx;

static int setup(void **state)
{
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	fx = sb_xcalloc(1, sizeof(*fx));
	fx->dir = th_tmpdir("send-notif");
	/* Port 9 (discard) on loopback: no sim, and nothing is sent anyway. */
	snprintf(fx->sim.url, sizeof(fx->sim.url), "http://127.0.0.1:9");
	if (sf_config(fx, NULL, "group = gruppo-multe", &err) < 0 ||
	    send_client_new(&fx->c, fx->cfg, NULL, &err) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	send_client_free(fx->c);
	sb_cfg_free(fx->cfg);
	th_rmrf(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

/* A complete notification with made-up refs (well-formed, never uploaded). */
static void valid(struct sf_notif *x)
{
	sf_notif_init(fx, x, "mario.rossi@pec.example.it", NULL);
	for (int i = 0; i < 2; i++) {
		struct send_file_ref *r = i ? &x->pay[0].pagopa_attachment : &x->doc[0].ref;

		snprintf(r->key, sizeof(r->key), "PN_NOTIFICATION_ATTACHMENTS-%d.pdf", i);
		snprintf(r->version_token, sizeof(r->version_token), "v%d", i);
		snprintf(r->sha256, sizeof(r->sha256),
			 "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
		r->content_type = SEND_CT_PDF;
	}
	x->pay[0].has_pagopa_attachment = true;
}

static void test_send_notification__body_complete(void **state)
{
	struct sf_notif x;
	struct sb_err err = SB_ERR_INIT;
	char *json = NULL;
	json_t *j = NULL, *r;

	(void)state;
	valid(&x);
	assert_int_equal(send_notification_json(fx->c, &x.n, &json, &err), 0);
	assert_int_equal(sb_json_parse(json, strlen(json), 1 << 20, "body", &j, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(j, "senderTaxId")), "80012345676");
	assert_string_equal(json_string_value(json_object_get(j, "group")), "gruppo-multe");
	assert_string_equal(json_string_value(json_object_get(j, "notificationFeePolicy")),
			    "DELIVERY_MODE");
	assert_int_equal(json_integer_value(json_object_get(j, "paFee")), 100);
	assert_string_equal(json_string_value(json_object_get(j, "physicalCommunicationType")),
			    "REGISTERED_LETTER_890");
	r = json_array_get(json_object_get(j, "recipients"), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r,
				"digitalDomicile"), "type")), "PEC");
	assert_string_equal(json_string_value(json_object_get(json_object_get(r,
				"physicalAddress"), "address")), "VIA ROMA 1");
	assert_true(json_is_true(json_object_get(json_object_get(json_array_get(
		json_object_get(r, "payments"), 0), "pagoPa"), "applyCost")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(j, "documents"), 0), "docIdx")), "0");
	/* Absent values are left out. */
	assert_null(json_object_get(j, "cancelledIun"));
	assert_null(json_object_get(j, "amount"));
	assert_null(strstr(json, "null"));
	json_decref(j);
	free(json);
	sf_notif_release(&x);
}

enum mut {
	M_NO_SUBJECT, M_LONG_SUBJECT, M_BAD_TAXONOMY, M_PG_CF, M_DUP_TAXID, M_NO_ADDRESS,
	M_DELIVERY_NO_FEE, M_DELIVERY_NO_COST, M_FLAT_WITH_COST, M_NOTICE_REPEATED,
	M_BAD_NOTICE, M_BAD_SHA, M_BAD_KEY, M_SAME_DOC, M_BAD_PEC, M_PIPE_NAME, M_BAD_DATE,
	M_BAD_CANCELLED, M_BAD_MODE, M_TOKEN_CTRL, M_BAD_TAXID, M_NO_RECIPIENTS, M_F24_PDF,
};

struct body_case {
	enum mut m;
	const char *field;
};

static const struct body_case body_cases[] = {
	{ M_NO_SUBJECT, "subject" },
	{ M_LONG_SUBJECT, "subject" },
	{ M_BAD_TAXONOMY, "taxonomyCode" },
	{ M_PG_CF, "recipients[0].taxId" },
	{ M_DUP_TAXID, "recipients[1].taxId" },
	{ M_NO_ADDRESS, "recipients[0].physicalAddress" },
	{ M_DELIVERY_NO_FEE, "notificationFeePolicy" },
	{ M_DELIVERY_NO_COST, "payments" },
	{ M_FLAT_WITH_COST, "payments" },
	{ M_NOTICE_REPEATED, "recipients[0].payments[1].pagoPa.noticeCode" },
	{ M_BAD_NOTICE, "recipients[0].payments[0].pagoPa.noticeCode" },
	{ M_BAD_SHA, "documents[0].digests.sha256" },
	{ M_BAD_KEY, "documents[0].ref.key" },
	{ M_SAME_DOC, "documents[1].ref.key" },
	{ M_BAD_PEC, "recipients[0].digitalDomicile.address" },
	{ M_PIPE_NAME, "recipients[0].denomination" },
	{ M_BAD_DATE, "paymentExpirationDate" },
	{ M_BAD_CANCELLED, "cancelledIun" },
	{ M_BAD_MODE, "pagoPaIntMode" },
	{ M_TOKEN_CTRL, "idempotenceToken" },
	{ M_BAD_TAXID, "recipients[0].taxId" },
	{ M_NO_RECIPIENTS, "recipients" },
	{ M_F24_PDF, "f24.metadataAttachment.contentType" },
};

static void mutate(struct sf_notif *x, enum mut m)
{
	static const char long_subject[] =
		"Verbale di accertamento numero molto lungo per una violazione del codice della "
		"strada con un oggetto che supera il limite di SEND di 134 caratteri";

	switch (m) {
	case M_NO_SUBJECT: x->n.subject = NULL; break;
	case M_LONG_SUBJECT: x->n.subject = long_subject; break;
	case M_BAD_TAXONOMY: x->n.taxonomy_code = "010101"; break;
	case M_PG_CF: x->rec[0].type = SEND_PG; break;
	case M_DUP_TAXID:
		x->rec[1] = x->rec[0];
		x->rec[1].npayments = 0;
		x->n.nrecipients = 2;
		break;
	case M_NO_ADDRESS: x->rec[0].has_address = false; break;
	case M_DELIVERY_NO_FEE: x->n.has_pa_fee = false; break;
	case M_DELIVERY_NO_COST: x->pay[0].pagopa_apply_cost = false; break;
	case M_FLAT_WITH_COST: x->n.fee_policy = SEND_FEE_FLAT_RATE; break;
	case M_NOTICE_REPEATED:
		x->pay[1] = x->pay[0];
		x->rec[0].npayments = 2;
		break;
	case M_BAD_NOTICE: x->pay[0].notice_code = "12345"; break;
	case M_BAD_SHA: snprintf(x->doc[0].ref.sha256, sizeof(x->doc[0].ref.sha256), "abc"); break;
	case M_BAD_KEY: snprintf(x->doc[0].ref.key, sizeof(x->doc[0].ref.key), "bad key!"); break;
	case M_SAME_DOC:
		x->doc[1] = x->doc[0];
		x->n.ndocuments = 2;
		break;
	case M_BAD_PEC: x->rec[0].pec = "not an address"; break;
	case M_PIPE_NAME: x->rec[0].denomination = "Rossi | Mario"; break;
	case M_BAD_DATE: x->n.payment_expiration_date = "2026-02-30"; break;
	case M_BAD_CANCELLED: x->n.cancelled_iun = "ABCD"; break;
	case M_BAD_MODE: x->n.pagopa_int_mode = "LATER"; break;
	case M_TOKEN_CTRL: x->n.idempotence_token = "tok\n1"; break;
	case M_BAD_TAXID: x->rec[0].tax_id = "RSSMRA80A01H501A"; break;
	case M_NO_RECIPIENTS: x->n.nrecipients = 0; break;
	case M_F24_PDF:
		x->pay[0].has_f24 = true;
		x->pay[0].f24_title = "F24";
		x->pay[0].f24_apply_cost = true;
		x->pay[0].f24_metadata = x->doc[0].ref;   /* a PDF where JSON is needed */
		break;
	}
}

static void test_send_notification__body_refusals_name_the_field(void **state)
{
	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(body_cases); i++) {
		struct sf_notif x;
		struct sb_err err = SB_ERR_INIT;
		char *json = (char *)(uintptr_t)"untouched";
		int rc;

		valid(&x);
		mutate(&x, body_cases[i].m);
		rc = send_notification_json(fx->c, &x.n, &json, &err);
		if (rc != SB_EINVAL && rc != SB_ETOOBIG)
			fail_msg("case %zu: rc %d", i, rc);
		if (!strstr(err.msg, body_cases[i].field))
			fail_msg("case %zu: '%s' does not name '%s'", i, err.msg,
				 body_cases[i].field);
		assert_string_equal(json, "untouched");
		sf_notif_release(&x);
	}
}

static void test_send_notification__create_refused_before_sending(void **state)
{
	struct sf_notif x;
	struct sb_err err = SB_ERR_INIT;
	char id[SEND_REQUEST_ID_MAX] = "";

	(void)state;
	valid(&x);
	x.n.subject = NULL;
	/* Nothing listens on port 9: a request that left would fail as ETEMP, not EINVAL. */
	assert_int_equal(send_notification_create(fx->c, &x.n, NULL, id, NULL, &err), SB_EINVAL);
	assert_string_equal(id, "");
	sf_notif_release(&x);
}

static void test_send_notification__remote_text_masked(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "taxId RSSMRA80A01H501U not valid", "taxId [cf] not valid" },
		{ "pec mario.rossi@pec.example.it refused", "pec [email] refused" },
		{ "rssmra80a01h501u,x", "[cf],x" },
		{ "notice 302010000000000001 repeated", "notice 302010000000000001 repeated" },
		{ "PN_GENERIC_INVALIDPARAMETER recipients[0].taxId", "PN_GENERIC_INVALIDPARAMETER "
		  "recipients[0].taxId" },
		{ "PN_GENERIC_INVALIDPARAMETER_DUPLICATED",
		  "PN_GENERIC_INVALIDPARAMETER_DUPLICATED" },
		{ "code INVALIDPARAMETERS here", "code INVALIDPARAMETERS here" },
		{ "ends with RSSMRA80A01H501U", "ends with [cf]" },
		{ "", "" },
	};

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		char buf[128];

		snprintf(buf, sizeof(buf), "%s", cases[i].in);
		send_scrub_pii(buf);
		assert_string_equal(buf, cases[i].out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_notification__address_normalisation),
		cmocka_unit_test(test_send_notification__body_complete),
		cmocka_unit_test(test_send_notification__body_refusals_name_the_field),
		cmocka_unit_test(test_send_notification__create_refused_before_sending),
		cmocka_unit_test(test_send_notification__remote_text_masked),
	};

	return cmocka_run_group_tests_name("send_notification", tests, setup, teardown);
}
