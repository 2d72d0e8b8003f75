/*
 * Segnatura: every segnatura the register produces validates against
 * ../shared/specs/agid/segnatura_protocollo.xsd with xmllint (an outside
 * check) and with libxml2; the seal verifies on read; tampering, another
 * key, a missing or moved signature all fail verification.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "th.h"
#include "proto.h"
#include "proto_int.h"
#include "svc_store.h"
#include "proto_fixture.h"

static int setup(void **state)
{
	*state = pf_new("proto-segnatura");
	return 0;
}

static int teardown(void **state)
{
	pf_free(*state);
	return 0;
}

static void xmllint_validates(struct pf *f, const char *xml, const char *name)
{
	char *path = sb_xasprintf("%s/%s", f->dir, name);
	const char *args[] = { "/usr/bin/xmllint", "--noout", "--nonet", "--schema", f->xsd, path,
			       NULL };
	struct sb_buf errb = SB_BUF_INIT(65536);

	th_write_str(path, xml, 0644);
	if (pf_run(args, NULL, &errb) != 0)
		fail_msg("xmllint refused %s: %s", name, sb_buf_cstr(&errb));
	sb_buf_release(&errb);
	free(path);
}

/* Replace the first occurrence of from by to in a copy of s. */
static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);

	assert_non_null(at);
	return sb_xasprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

static void test_proto_segnatura__outgoing_and_receipt_validate_and_verify(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *out = NULL, *in = NULL;
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_XML_SEGNATURA),
		      xml2 = SB_BUF_INIT(SB_MAX_XML_SEGNATURA);
	struct proto_receipt rc_in;
	struct pf_act act;
	unsigned char md[SB_SHA256_LEN];
	struct sb_buf b64 = SB_BUF_INIT(128);
	char *expect;

	pf_act_init(f, &act, "act-seg");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &out, &err), 0);
	assert_int_equal(proto_segnatura_get(f->p, &out->id, &xml, &err), 0);
	xmllint_validates(f, sb_buf_cstr(&xml), "out.xml");
	assert_int_equal(proto_seal_validate_xml(f->p->seal, xml.buf, xml.len, &err), 0);
	assert_non_null(strstr(xml.buf,
			       "<prot:NumeroRegistrazione>0000001</prot:NumeroRegistrazione>"));
	assert_non_null(strstr(xml.buf, "<prot:CodiceAmministrazione>c_x000<"));
	assert_non_null(strstr(xml.buf, "<prot:DataRegistrazione>2026-11-18<"));
	assert_non_null(strstr(xml.buf, "prot:nomeFile=\"verbale.pdf\""));
	assert_non_null(strstr(xml.buf, "<prot:Allegato"));
	assert_non_null(strstr(xml.buf, "rsa-sha256"));
	assert_non_null(strstr(xml.buf, "<ds:X509Certificate>"));
	assert_non_null(strstr(xml.buf, "<xades:SigningCertificateV2>"));
	assert_non_null(strstr(xml.buf, "Type=\"http://uri.etsi.org/01903#SignedProperties\""));
	assert_int_equal(sb_sha256_file(f->pdf, md, NULL, &err), 0);
	sb_base64_encode(md, sizeof(md), &b64);
	expect = sb_xasprintf("<prot:Impronta>%s</prot:Impronta>", sb_buf_cstr(&b64));
	assert_non_null(strstr(xml.buf, expect));
	free(expect);

	memset(&rc_in, 0, sizeof(rc_in));
	rc_in.legal_fact_id = "LF-1";
	rc_in.category = "PEC_RECEIPT";
	rc_in.iun = "ABCD-EFGH-IJKL-202611-M-1";
	rc_in.outgoing = out->id;
	rc_in.pdf_path = f->pdf2;
	assert_int_equal(proto_register_receipt(f->p, &rc_in, &in, &err), 0);
	assert_int_equal(proto_segnatura_get(f->p, &in->id, &xml2, &err), 0);
	xmllint_validates(f, sb_buf_cstr(&xml2), "in.xml");
	assert_non_null(strstr(xml2.buf, "<prot:Riferimenti>"));
	assert_non_null(strstr(xml2.buf, "PagoPA S.p.A. - SEND"));
	proto_reg_free(out);
	proto_reg_free(in);
	sb_buf_release(&xml);
	sb_buf_release(&xml2);
	sb_buf_release(&b64);
}

static void test_proto_segnatura__tampering_fails_verification(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *out = NULL;
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_XML_SEGNATURA);
	struct pf_act act;
	char *t;

	pf_act_init(f, &act, "act-tamper");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &out, &err), 0);
	assert_int_equal(proto_segnatura_get(f->p, &out->id, &xml, &err), 0);
	assert_int_equal(proto_segnatura_verify(f->p, xml.buf, xml.len, &err), 0);

	/* A changed subject, number, or impronta. */
	t = replace(xml.buf, "Verbale di accertamento n. 1001", "Verbale di accertamento n. 1002");
	assert_int_equal(proto_segnatura_verify(f->p, t, strlen(t), &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "does not verify"));
	free(t);
	t = replace(xml.buf, ">0000001<", ">0000002<");
	assert_int_equal(proto_segnatura_verify(f->p, t, strlen(t), &err), SB_EINVAL);
	free(t);
	/* The XAdES signing time or certificate digest changed. */
	{
		const char *st = strstr(xml.buf, "<xades:SigningTime>");
		char *when;

		assert_non_null(st);
		when = sb_xasprintf("<xades:SigningTime>%.19s", st + strlen("<xades:SigningTime>"));
		t = replace(xml.buf, when, "<xades:SigningTime>2020-01-01T00:00:00");
		sb_err_clear(&err);
		assert_int_equal(proto_segnatura_verify(f->p, t, strlen(t), &err), SB_EINVAL);
		assert_non_null(strstr(err.msg, "seal"));
		free(t);
		free(when);
	}
	/* A second reference dropped (the seal must cover its xades properties). */
	{
		const char *first = strstr(xml.buf, "<ds:Reference");
		const char *a = first ? strstr(first + 1, "<ds:Reference") : NULL;
		const char *b = a ? strstr(a, "</ds:Reference>") : NULL;

		assert_non_null(b);
		t = sb_xasprintf("%.*s%s", (int)(a - xml.buf), xml.buf,
				 b + strlen("</ds:Reference>"));
		sb_err_clear(&err);
		assert_int_equal(proto_segnatura_verify(f->p, t, strlen(t), &err), SB_EINVAL);
		assert_true(err.msg[0] != '\0');
		free(t);
	}
	/* The signature removed. */
	{
		const char *s = strstr(xml.buf, "<ds:Signature");
		const char *e = strstr(xml.buf, "</ds:Signature>");

		assert_non_null(s);
		assert_non_null(e);
		t = sb_xasprintf("%.*s%s", (int)(s - xml.buf), xml.buf,
				 e + strlen("</ds:Signature>"));
		sb_err_clear(&err);
		assert_int_equal(proto_segnatura_verify(f->p, t, strlen(t), &err), SB_EINVAL);
		assert_true(err.msg[0] != '\0');
		free(t);
	}
	/* Not XML at all. */
	assert_int_equal(proto_segnatura_verify(f->p, "<prot:Segn", 10, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "well-formed"));
	proto_reg_free(out);
	sb_buf_release(&xml);
}

static void test_proto_segnatura__another_key_does_not_verify(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *out = NULL;
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_XML_SEGNATURA);
	struct proto *other = NULL;
	struct proto_opts o = f->o;
	struct pf_act act;
	char *key2 = NULL, *cert2 = NULL;

	pf_make_seal(f->dir, "other", &key2, &cert2);
	o.seal_key_file = key2;
	o.seal_cert_file = cert2;
	assert_int_equal(proto_open(&other, svc_store_db(f->store), &o, &err), 0);
	/* Sealed by "other", checked with our certificate. */
	pf_act_init(f, &act, "act-other-key");
	assert_int_equal(proto_register_outgoing(other, &act.in, &out, &err), 0);
	assert_int_equal(proto_segnatura_get(other, &out->id, &xml, &err), 0);
	sb_buf_reset(&xml);
	assert_int_equal(proto_segnatura_get(f->p, &out->id, &xml, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "another certificate"));
	assert_int_equal(xml.len, 0);
	proto_reg_free(out);
	proto_free(other);
	sb_buf_release(&xml);
	free(key2);
	free(cert2);
}

/*
 * The seal's key and certificate are lent to every signature and
 * verification instead of copied: many of them on one handle, with failed
 * verifications in between, must leave the key intact and every seal valid.
 */
static void test_proto_segnatura__one_handle_seals_and_verifies_many(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *regs[24] = { NULL };
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_XML_SEGNATURA);
	struct pf_act act;

	for (size_t i = 0; i < SB_ARRAY_SIZE(regs); i++) {
		char act_id[32];
		char *t;

		snprintf(act_id, sizeof(act_id), "act-many-%zu", i);
		pf_act_init(f, &act, act_id);
		assert_int_equal(proto_register_outgoing(f->p, &act.in, &regs[i], &err), 0);
		assert_int_equal(regs[i]->id.number, i + 1);
		sb_buf_reset(&xml);
		assert_int_equal(proto_segnatura_get(f->p, &regs[i]->id, &xml, &err), 0);
		/* A failed verification must not take the key with it. */
		t = replace(xml.buf, "Verbale di accertamento n. 1001",
			    "Verbale di accertamento n. 1009");
		assert_int_equal(proto_segnatura_verify(f->p, t, strlen(t), &err), SB_EINVAL);
		free(t);
	}
	for (size_t i = 0; i < SB_ARRAY_SIZE(regs); i++) {
		sb_buf_reset(&xml);
		sb_err_clear(&err);
		assert_int_equal(proto_segnatura_get(f->p, &regs[i]->id, &xml, &err), 0);
		assert_int_equal(proto_segnatura_verify(f->p, xml.buf, xml.len, &err), 0);
		proto_reg_free(regs[i]);
	}
	xmllint_validates(f, sb_buf_cstr(&xml), "last.xml");
	sb_buf_release(&xml);
}

static void test_proto_segnatura__schema_errors_name_the_element(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *example = th_shared("specs/agid/examples/segnatura_minimal_structural.xml");
	char *text, *bad;

	assert_non_null(example);
	text = th_read(example, NULL);
	assert_non_null(text);
	/* The AgID example is schema-valid (its signature is a placeholder). */
	assert_int_equal(proto_seal_validate_xml(f->p->seal, text, strlen(text), &err), 0);
	bad = replace(text, ">0001234<", ">123<");
	assert_int_equal(proto_seal_validate_xml(f->p->seal, bad, strlen(bad), &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "NumeroRegistrazione"));
	free(bad);
	bad = replace(text, " prot:nomeFile=", " nomeFile=");
	assert_int_equal(proto_seal_validate_xml(f->p->seal, bad, strlen(bad), &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "DocumentoPrimario"));
	free(bad);
	/* And its placeholder seal does not verify. */
	assert_int_equal(proto_segnatura_verify(f->p, text, strlen(text), &err), SB_EINVAL);
	free(text);
	free(example);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_proto_segnatura__outgoing_and_receipt_validate_and_verify,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_segnatura__tampering_fails_verification,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_segnatura__another_key_does_not_verify,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_proto_segnatura__schema_errors_name_the_element, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_proto_segnatura__one_handle_seals_and_verifies_many, setup, teardown),
	};

	return cmocka_run_group_tests_name("proto_segnatura", tests, NULL, NULL);
}
