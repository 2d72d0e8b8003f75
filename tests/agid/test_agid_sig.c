/*
 * agid_sig: PAdES over real byte ranges signed here with a test CA, the
 * same file with one byte changed, an unsigned incremental tail, trust
 * store handling, the signed veraPDF corpus file, and .p7m envelopes made
 * by `openssl cms` (DER, base64, nested, detached, tampered).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sb_common.h"
#include "agid_pdfa.h"
#include "agid_sig.h"
#include "th.h"
#include "th_agid.h"

static char *tmp;

static int setup(void **state)
{
	(void)state;
	tmp = th_tmpdir("agid-sig");
	tha_make_ca(tmp);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmrf(tmp);
	free(tmp);
	return 0;
}

static char *path_in(const char *name)
{
	return sb_xasprintf("%s/%s", tmp, name);
}

/* agid_pdfa then agid_sig on (data, len). */
static int verify(const char *data, size_t len, const char *trust, struct agid_sig_report *out,
		  struct sb_err *err)
{
	struct agid_pdfa_report *pr = NULL;
	int rc;

	assert_int_equal(agid_pdfa_check_mem(&pr, data, len, NULL, NULL), 0);
	rc = agid_sig_check_pdf(out, pr, data, len, trust, err);
	agid_pdfa_report_free(pr);
	return rc;
}

static void test_agid_sig__pades_verifies_and_one_byte_breaks_it(void **state)
{
	char *p = tha_signed_pdf(tmp, "signed.pdf", "ETSI.CAdES.detached"), *data, *where;
	char *ca = path_in("ca.pem");
	struct agid_sig_report r = AGID_SIG_REPORT_INIT;
	size_t len = 0;

	(void)state;
	data = th_read(p, &len);
	assert_non_null(data);
	assert_int_equal(verify(data, len, NULL, &r, NULL), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.sigs[0].kind, AGID_SIG_PADES);
	assert_true(r.sigs[0].covers_file);
	assert_true(r.sigs[0].digest_ok);
	assert_true(r.sigs[0].signature_ok);
	assert_false(r.sigs[0].chain_checked);
	assert_true(r.sigs[0].valid);
	assert_true(r.signed_doc);
	assert_true(r.all_valid);
	assert_non_null(strstr(r.sigs[0].signer, "Funzionario di Prova"));
	assert_true(r.sigs[0].qualified);
	assert_false(r.sigs[0].seal);
	assert_true(r.sigs[0].cades);
	agid_sig_report_release(&r);

	/* chained to the test CA */
	assert_int_equal(verify(data, len, ca, &r, NULL), 0);
	assert_true(r.sigs[0].chain_checked);
	assert_true(r.sigs[0].chain_ok);
	assert_true(r.all_valid);
	agid_sig_report_release(&r);

	/* one byte of the signed page content changed after signing */
	where = strstr(data, "Avviso firmato");
	assert_non_null(where);
	where[0] = 'B';
	assert_int_equal(verify(data, len, NULL, &r, NULL), 0);
	assert_int_equal(r.n, 1);
	assert_false(r.sigs[0].digest_ok);
	assert_false(r.sigs[0].valid);
	assert_false(r.all_valid);
	assert_non_null(strstr(r.sigs[0].problem, "digest"));
	agid_sig_report_release(&r);
	free(data);
	free(ca);
	free(p);
}

static void test_agid_sig__untrusted_chain_and_unsigned_tail(void **state)
{
	char *p = tha_signed_pdf(tmp, "signed2.pdf", "adbe.pkcs7.detached"), *data, *longer;
	char *other = path_in("signer.pem");   /* a trust store that does not hold the CA */
	struct agid_sig_report r = AGID_SIG_REPORT_INIT;
	size_t len = 0;
	static const char tail[] = "\n% unsigned incremental update\n";

	(void)state;
	data = th_read(p, &len);
	assert_int_equal(verify(data, len, other, &r, NULL), 0);
	assert_int_equal(r.sigs[0].kind, AGID_SIG_PKCS7);
	assert_false(r.sigs[0].cades);
	assert_true(r.sigs[0].signature_ok);
	assert_true(r.sigs[0].chain_checked);
	assert_false(r.sigs[0].chain_ok);
	assert_false(r.sigs[0].valid);
	assert_non_null(strstr(r.sigs[0].problem, "chain"));
	agid_sig_report_release(&r);

	longer = sb_xmalloc(len + sizeof(tail));
	memcpy(longer, data, len);
	memcpy(longer + len, tail, sizeof(tail) - 1);
	assert_int_equal(verify(longer, len + sizeof(tail) - 1, NULL, &r, NULL), 0);
	assert_false(r.sigs[0].covers_file);
	assert_false(r.sigs[0].valid);
	agid_sig_report_release(&r);
	free(longer);
	free(data);
	free(other);
	free(p);
}

static void test_agid_sig__corpus_signed_file_detected(void **state)
{
	char *p = th_shared("fixtures-external/pdfa/pdfa2b_6-1-12-t02-pass-a.pdf"), *data;
	struct agid_sig_report r = AGID_SIG_REPORT_INIT;
	size_t len = 0;

	(void)state;
	if (!p)
		fail_msg("../shared/fixtures-external/pdfa is missing: "
			 "signed corpus file not checked");
	data = th_read(p, &len);
	assert_int_equal(verify(data, len, NULL, &r, NULL), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.sigs[0].kind, AGID_SIG_PKCS7);
	assert_true(r.sigs[0].covers_file);
	assert_true(r.signed_doc);
	agid_sig_report_release(&r);
	free(data);
	free(p);
}

static void test_agid_sig__errors(void **state)
{
	char *p = tha_signed_pdf(tmp, "signed3.pdf", "ETSI.CAdES.detached"), *data;
	char *bad = path_in("not-a-store.pem");
	struct agid_sig_report r = AGID_SIG_REPORT_INIT;
	struct sb_err err = SB_ERR_INIT;
	size_t len = 0;

	(void)state;
	th_write_str(bad, "not a certificate\n", 0644);
	data = th_read(p, &len);
	assert_int_equal(verify(data, len, bad, &r, &err), SB_ECONFIG);
	assert_int_equal(err.code, SB_ECONFIG);
	assert_true(err.msg[0] != '\0');
	assert_null(r.sigs);
	sb_err_clear(&err);
	assert_int_equal(agid_sig_check_pdf(&r, NULL, data, len, NULL, &err), SB_EINVAL);
	assert_true(err.msg[0] != '\0');
	free(data);
	free(bad);
	free(p);
}

/* openssl cms -sign around in, to out (DER, enclosed unless detached). */
static void cms_sign(const char *in, const char *out, bool detached)
{
	char *cert = path_in("signer.pem"), *key = path_in("signer.key");
	const char *argv[] = { "openssl", "cms", "-sign", "-binary", "-in", in, "-signer", cert,
			       "-inkey", key, "-outform", "DER", "-out", out,
			       detached ? NULL : "-nodetach", NULL };

	tha_run(argv);
	free(cert);
	free(key);
}

/* Unwrap the envelope at path: layers valid signatures around exactly orig. */
static void expect_unwrap(const char *path, const char *trust, size_t layers, const char *orig,
			  size_t olen)
{
	struct agid_sig_report r = AGID_SIG_REPORT_INIT;
	unsigned char *content = NULL;
	size_t len = 0, clen = 0;
	char *data = th_read(path, &len);

	assert_non_null(data);
	assert_true(agid_p7m_detect(data, len));
	assert_int_equal(agid_p7m_unwrap(data, len, trust, &content, &clen, &r, NULL), 0);
	assert_int_equal(r.n, layers);
	assert_true(r.all_valid);
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.sigs[i].chain_ok, trust != NULL);
	assert_int_equal(clen, olen);
	assert_memory_equal(content, orig, olen);
	free(content);
	agid_sig_report_release(&r);
	free(data);
}

static void test_agid_sig__p7m_der_base64_nested(void **state)
{
	char *pdf = tha_pdfa(tmp, "atto.pdf", "Avviso di accertamento", 1);
	char *p1 = path_in("atto.pdf.p7m"), *p2 = path_in("atto.pdf.p7m.p7m"),
	     *b64 = path_in("b64.p7m");
	const char *argv[] = { "openssl", "base64", "-in", p1, "-out", b64, NULL };
	char *ca = path_in("ca.pem"), *orig;
	size_t olen = 0;

	(void)state;
	cms_sign(pdf, p1, false);
	cms_sign(p1, p2, false);
	tha_run(argv);
	orig = th_read(pdf, &olen);
	expect_unwrap(p1, ca, 1, orig, olen);
	expect_unwrap(p2, NULL, 2, orig, olen);
	expect_unwrap(b64, NULL, 1, orig, olen);
	free(orig);
	free(pdf);
	free(p1);
	free(p2);
	free(b64);
	free(ca);
}

static void test_agid_sig__p7m_tampered_detached_and_not_p7m(void **state)
{
	char *pdf = tha_pdfa(tmp, "atto2.pdf", "Avviso di accertamento", 1);
	char *p1 = path_in("t.p7m"), *p7s = path_in("t.p7s"), *data, *hit;
	static unsigned char sentinel[] = "untouched";
	unsigned char *content = NULL;
	size_t len = 0, clen = 0;
	struct agid_sig_report r = AGID_SIG_REPORT_INIT;
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	cms_sign(pdf, p1, false);
	data = th_read(p1, &len);
	hit = memmem(data, len, "%%EOF", 5);
	assert_non_null(hit);
	hit[2] = 'X';   /* a byte of the enclosed PDF */
	assert_int_equal(agid_p7m_unwrap(data, len, NULL, &content, &clen, &r, NULL), 0);
	assert_int_equal(r.n, 1);
	assert_false(r.all_valid);
	assert_false(r.sigs[0].digest_ok);
	free(content);
	agid_sig_report_release(&r);
	free(data);

	cms_sign(pdf, p7s, true);
	data = th_read(p7s, &len);
	content = sentinel;
	assert_int_equal(agid_p7m_unwrap(data, len, NULL, &content, &clen, &r, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_non_null(strstr(err.msg, "detached"));
	assert_string_equal((const char *)content, "untouched");
	free(data);

	sb_err_clear(&err);
	data = th_read(pdf, &len);
	assert_false(agid_p7m_detect(data, len));
	assert_int_equal(agid_p7m_unwrap(data, len, NULL, &content, &clen, &r, &err), SB_EINVAL);
	assert_true(err.msg[0] != '\0');
	assert_null(r.sigs);
	free(data);
	free(pdf);
	free(p1);
	free(p7s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agid_sig__pades_verifies_and_one_byte_breaks_it),
		cmocka_unit_test(test_agid_sig__untrusted_chain_and_unsigned_tail),
		cmocka_unit_test(test_agid_sig__corpus_signed_file_detected),
		cmocka_unit_test(test_agid_sig__errors),
		cmocka_unit_test(test_agid_sig__p7m_der_base64_nested),
		cmocka_unit_test(test_agid_sig__p7m_tampered_detached_and_not_p7m),
	};

	return cmocka_run_group_tests_name("agid_sig", tests, setup, teardown);
}
