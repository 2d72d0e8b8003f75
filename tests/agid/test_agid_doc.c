/*
 * agid_doc: SEND limits, office policy from a real configuration file,
 * .p7m around a PDF/A, F24 metadata JSON, and `send-bridge validate` run as
 * a process (exit codes, JSON report, signer shown only on request).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "agid_doc.h"
#include "th.h"
#include "th_agid.h"

static char *tmp, *pdfa, *signed_pdf, *ini;

static int setup(void **state)
{
	char *outbox, *api;

	(void)state;
	tmp = th_tmpdir("agid-doc");
	pdfa = tha_pdfa(tmp, "atto.pdf", "Avviso di accertamento IMU", 2);
	tha_make_ca(tmp);
	signed_pdf = tha_signed_pdf(tmp, "firmato.pdf", "ETSI.CAdES.detached");
	outbox = sb_xasprintf("%s/outbox", tmp);
	api = sb_xasprintf("%s/api", tmp);
	ini = sb_xasprintf("%s/sb.ini", tmp);
	th_mkdirs(outbox);
	th_write_str(api, "test-key\n", 0600);
	{
		char *text = sb_xasprintf(
			"[service]\nsender_denomination = Comune di Esempio\n"
			"sender_tax_id = 00000000000\n"
			"[outbox]\ndir = %s\n[store]\npath = %s/store.db\n"
			"[send]\napi_key_file = %s\n"
			"[office.tributi]\npdfa_flavours = 2b,3b\nsignature_required = on\n"
			"signature_trust_store = %s/ca.pem\n"
			"[office.polizia-municipale]\naddress_policy = anpr\n",
			outbox, tmp, api, tmp);

		th_write_str(ini, text, 0644);
		free(text);
	}
	free(outbox);
	free(api);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmrf(tmp);
	free(tmp);
	free(pdfa);
	free(signed_pdf);
	free(ini);
	return 0;
}

static bool has_finding(const struct agid_doc_report *r, const char *clause, const char *text)
{
	for (size_t i = 0; i < r->nfindings; i++)
		if (!strcmp(r->findings[i].clause, clause) && strstr(r->findings[i].msg, text))
			return true;
	return false;
}

static struct agid_doc_report *doc(const char *path, const struct agid_policy *pol)
{
	struct agid_doc_report *r = NULL;
	struct sb_err err = SB_ERR_INIT;

	assert_int_equal(agid_doc_check_file(&r, path, pol, AGID_PDFA_NONE, &err), 0);
	assert_non_null(r);
	return r;
}

/* A valid unsigned PDF/A whose report carries the SHA-256 of the file's bytes. */
static void assert_valid_with_hash(const char *path)
{
	struct agid_doc_report *r = doc(path, NULL);
	unsigned char md[SB_SHA256_LEN];
	struct sb_buf hex = SB_BUF_INIT(128);

	assert_int_equal(r->verdict, AGID_VALID);
	assert_string_equal(r->mime, "application/pdf");
	assert_int_equal(r->nfindings, 0);
	assert_int_equal(r->sig.n, 0);
	assert_int_equal(sb_sha256_file(path, md, NULL, NULL), 0);
	sb_hex_encode(md, sizeof(md), &hex);
	assert_string_equal(r->sha256, sb_buf_cstr(&hex));
	sb_buf_release(&hex);
	agid_doc_report_free(r);
}

static void test_agid_doc__pdfa_passes_with_its_hash(void **state)
{
	(void)state;
	assert_valid_with_hash(pdfa);
}

/*
 * A document above 1 MiB is mapped rather than read into memory (the two
 * ways agid_map_file has): the same verdict and the same hash.
 */
static void test_agid_doc__a_large_pdfa_is_checked_the_same(void **state)
{
	char *big = tha_pdfa_photo(tmp, "foto.pdf", "Verbale con fotografia", 2, 900);
	struct stat st;

	(void)state;
	assert_int_equal(stat(big, &st), 0);
	assert_true(st.st_size > 1024 * 1024);
	assert_valid_with_hash(big);
	free(big);
}

/* Without the hash the verdict is the same and sha256 is left empty, as the flag says. */
static void test_agid_doc__no_sha256_flag_leaves_the_hash_out(void **state)
{
	struct agid_doc_report *r = NULL;
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	assert_int_equal(agid_doc_check_file_flags(&r, pdfa, NULL, AGID_PDFA_NONE,
						   AGID_DOC_NO_SHA256, &err), 0);
	assert_non_null(r);
	assert_int_equal(r->verdict, AGID_VALID);
	assert_int_equal(r->nfindings, 0);
	assert_string_equal(r->sha256, "");
	agid_doc_report_free(r);
	r = NULL;
	assert_int_equal(agid_doc_check_file_flags(&r, "/nonexistent/a.pdf", NULL, AGID_PDFA_NONE,
						   AGID_DOC_NO_SHA256, &err), SB_ENOTFOUND);
	assert_null(r);
	assert_true(err.msg[0] != '\0');
}

static void test_agid_doc__policy_from_configuration(void **state)
{
	struct sb_cfg *cfg = NULL;
	struct agid_policy pol, def;
	struct sb_err err = SB_ERR_INIT;
	struct agid_doc_report *r;
	char *pdfa3 = th_shared("fixtures-external/pdfa/pdfa3b_6-8-t02-pass-a.pdf");
	char *plain_signed = tha_signed_pdf_by(tmp, "plain-signed.pdf",
					       "ETSI.CAdES.detached", "plain");

	(void)state;
	assert_int_equal(sb_cfg_load(&cfg, ini, NULL, &err), 0);
	assert_int_equal(agid_policy_from_cfg(&pol, cfg, "tributi", &err), 0);
	assert_true(pol.signature_required);
	assert_non_null(pol.trust_store);
	assert_int_equal(pol.flavours, 1u << AGID_PDFA_2B | 1u << AGID_PDFA_3B);
	assert_int_equal(agid_policy_from_cfg(&def, cfg, "polizia-municipale", &err), 0);
	assert_false(def.signature_required);
	assert_int_equal(def.flavours,
			 1u << AGID_PDFA_1A | 1u << AGID_PDFA_1B | 1u << AGID_PDFA_2A |
			 1u << AGID_PDFA_2B | 1u << AGID_PDFA_2U);

	/* tributi: the unsigned PDF/A-2b is refused for lack of a signature */
	r = doc(pdfa, &pol);
	assert_int_equal(r->verdict, AGID_INVALID);
	assert_true(has_finding(r, "policy", "requires a qualified signature"));
	agid_doc_report_free(r);
	/* the signed one satisfies the signature rule (chain checked against the test CA) */
	r = doc(signed_pdf, &pol);
	assert_false(has_finding(r, "policy", "requires a qualified signature"));
	assert_int_equal(r->sig.n, 1);
	assert_true(r->sig.sigs[0].chain_ok);
	assert_true(r->sig.all_valid);
	agid_doc_report_free(r);
	/* a valid signature whose certificate has no QcCompliance is not a qualified one */
	r = doc(plain_signed, &pol);
	assert_true(r->sig.all_valid);
	assert_false(r->sig.sigs[0].qualified);
	assert_true(has_finding(r, "policy", "qualified certificate"));
	agid_doc_report_free(r);

	if (!pdfa3)
		fail_msg("../shared/fixtures-external/pdfa is missing: "
			 "PDF/A-3b policy not checked");
	/* PDF/A-3b: refused by default, accepted with a warning where listed */
	r = doc(pdfa3, &def);
	assert_int_equal(r->verdict, AGID_INVALID);
	assert_true(has_finding(r, "policy", "PDF/A-3b is not among"));
	agid_doc_report_free(r);
	pol.signature_required = false;
	r = doc(pdfa3, &pol);
	assert_int_equal(r->verdict, AGID_VALID_WARN);
	assert_true(r->nwarnings > 0);
	agid_doc_report_free(r);

	sb_err_clear(&err);
	assert_int_equal(agid_policy_from_cfg(&pol, cfg, "anagrafe", &err), SB_ENOTFOUND);
	assert_int_equal(err.code, SB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "anagrafe"));
	sb_cfg_free(cfg);
	free(pdfa3);
	free(plain_signed);
}

static void test_agid_doc__send_limits(void **state)
{
	char *big = sb_xasprintf("%s/big.pdf", tmp), *txt = sb_xasprintf("%s/note.pdf", tmp);
	char *p7m = sb_xasprintf("%s/atto.pdf.p7m", tmp),
	     *cert = sb_xasprintf("%s/signer.pem", tmp);
	char *key = sb_xasprintf("%s/signer.key", tmp);
	const char *argv[] = { "openssl", "cms", "-sign", "-binary", "-nodetach", "-in", pdfa,
			       "-signer", cert, "-inkey", key,
			       "-outform", "DER", "-out", p7m, NULL };
	struct agid_doc_report *r;

	(void)state;
	/* a sparse file one byte above 200 MB: refused without being read */
	th_write(big, "%PDF-1.7\n", 9, 0644);
	assert_int_equal(truncate(big, (off_t)SB_MAX_PDF + 1), 0);
	r = doc(big, NULL);
	assert_int_equal(r->verdict, AGID_INVALID);
	assert_true(has_finding(r, "SEND", "200 MB"));
	assert_null(r->pdfa);
	agid_doc_report_free(r);

	th_write_str(txt, "this is not a PDF, whatever its name says\n", 0644);
	r = doc(txt, NULL);
	assert_int_equal(r->verdict, AGID_INVALID);
	assert_true(has_finding(r, "SEND", "application/pdf"));
	agid_doc_report_free(r);

	/* a .p7m: unwrapped and its PDF/A checked, but SEND takes PDF only */
	tha_run(argv);
	r = doc(p7m, NULL);
	assert_int_equal(r->verdict, AGID_INVALID);
	assert_string_equal(r->mime, "application/pkcs7-mime");
	assert_int_equal(r->p7m_layers, 1);
	assert_non_null(r->pdfa);
	assert_true(r->pdfa->valid);
	assert_true(r->sig.all_valid);
	assert_true(has_finding(r, "SEND", "CAdES envelope"));
	agid_doc_report_free(r);
	free(big);
	free(txt);
	free(p7m);
	free(cert);
	free(key);
}

static void test_agid_doc__errors(void **state)
{
	struct agid_doc_report *r = NULL;
	struct sb_err err = SB_ERR_INIT;
	struct agid_policy pol;
	char *bad = sb_xasprintf("%s/bad-store.pem", tmp);

	(void)state;
	assert_int_equal(agid_doc_check_file(&r, "/nonexistent/a.pdf", NULL, AGID_PDFA_NONE, &err),
			 SB_ENOTFOUND);
	assert_int_equal(err.code, SB_ENOTFOUND);
	assert_true(err.msg[0] != '\0');
	assert_null(r);
	th_write_str(bad, "garbage\n", 0644);
	agid_policy_default(&pol);
	pol.trust_store = bad;
	sb_err_clear(&err);
	assert_int_equal(agid_doc_check_file(&r, signed_pdf, &pol,
					     AGID_PDFA_NONE, &err), SB_ECONFIG);
	assert_int_equal(err.code, SB_ECONFIG);
	assert_true(err.msg[0] != '\0');
	assert_null(r);
	free(bad);
}

static void test_agid_doc__f24_metadata(void **state)
{
	static const struct {
		const char *content;
		int rc;
		const char *msg;
	} cases[] = {
		{ "{\"f24\": {\"taxPayer\": {}}}", 0, NULL },
		{ "[1, 2]", SB_EINVAL, "JSON object" },
		{ "{\"a\": RSSMRA80A01H501U}", SB_EINVAL, "line 1" },
		{ "", SB_EINVAL, "not valid JSON" },
		{ "{\"a\": 1, \"a\": 2}", SB_EINVAL, "not valid JSON" },
	};
	char *p = sb_xasprintf("%s/f24.json", tmp);
	char *big;

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		struct sb_err err = SB_ERR_INIT;

		th_write_str(p, cases[i].content, 0644);
		assert_int_equal(agid_f24_check_file(p, &err), cases[i].rc);
		if (cases[i].msg) {
			assert_int_equal(err.code, cases[i].rc);
			assert_non_null(strstr(err.msg, cases[i].msg));
			/* the message never quotes the input (a tax code here) */
			assert_null(strstr(err.msg, "RSSMRA"));
		}
	}
	big = sb_xcalloc(SB_MAX_F24_JSON + 2, 1);
	memset(big, ' ', SB_MAX_F24_JSON + 1);
	th_write(p, big, SB_MAX_F24_JSON + 1, 0644);
	assert_int_equal(agid_f24_check_file(p, NULL), SB_ETOOBIG);
	free(big);
	free(p);
}

static int run_cli(const char *const *args, struct sb_buf *out)
{
	const char *argv[16];
	char *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	size_t n = 0;
	int rc;

	argv[n++] = bin;
	for (size_t i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	rc = th_run(argv, out, NULL);
	free(bin);
	return rc;
}

static void test_agid_doc__cli_validate(void **state)
{
	struct sb_buf out = SB_BUF_INIT(SB_MAX_DEFAULT);
	char *corpus_fail = th_shared("fixtures-external/pdfa/pdfa2b_6-5-1-t01-fail-k.pdf");
	json_t *j;
	json_error_t jerr;
	const char *a_ok[] = { "validate", pdfa, NULL };
	const char *a_json[] = { "validate", "--json", pdfa, signed_pdf, NULL };
	const char *a_personal[] = { "--show-personal-data", "validate", signed_pdf, NULL };
	const char *a_missing[] = { "validate", "/nonexistent/x.pdf", NULL };
	const char *a_profile[] = { "validate", "--profile", "9z", pdfa, NULL };
	const char *a_office[] = { "validate", "-c", ini, "--office", "tributi", pdfa, NULL };

	(void)state;
	assert_int_equal(run_cli(a_ok, &out), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), ": valid"));
	sb_buf_reset(&out);

	assert_int_equal(run_cli(a_json, &out), 1);
	j = json_loads(sb_buf_cstr(&out), 0, &jerr);
	assert_non_null(j);
	assert_int_equal(json_array_size(j), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "verdict")),
			    "valid");
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "verdict")),
			    "invalid");
	assert_int_equal(json_array_size(json_object_get(json_array_get(j, 1), "signatures")), 1);
	/* the signer is personal data: absent without --show-personal-data */
	assert_null(strstr(sb_buf_cstr(&out), "Funzionario"));
	json_decref(j);
	sb_buf_reset(&out);

	assert_int_equal(run_cli(a_personal, &out), 1);
	assert_non_null(strstr(sb_buf_cstr(&out), "Funzionario di Prova"));
	sb_buf_reset(&out);

	if (corpus_fail) {
		const char *a_fail[] = { "validate", corpus_fail, NULL };

		assert_int_equal(run_cli(a_fail, &out), 1);
		assert_non_null(strstr(sb_buf_cstr(&out), "[6.5.1]"));
		sb_buf_reset(&out);
	} else {
		fail_msg("../shared/fixtures-external/pdfa is missing: "
			 "CLI corpus case not checked");
	}
	assert_int_equal(run_cli(a_missing, &out), 2);
	sb_buf_reset(&out);
	assert_int_equal(run_cli(a_profile, &out), 2);
	sb_buf_reset(&out);
	assert_int_equal(run_cli(a_office, &out), 1);
	assert_non_null(strstr(sb_buf_cstr(&out), "requires a qualified signature"));
	sb_buf_release(&out);
	free(corpus_fail);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agid_doc__pdfa_passes_with_its_hash),
		cmocka_unit_test(test_agid_doc__a_large_pdfa_is_checked_the_same),
		cmocka_unit_test(test_agid_doc__no_sha256_flag_leaves_the_hash_out),
		cmocka_unit_test(test_agid_doc__policy_from_configuration),
		cmocka_unit_test(test_agid_doc__send_limits),
		cmocka_unit_test(test_agid_doc__errors),
		cmocka_unit_test(test_agid_doc__f24_metadata),
		cmocka_unit_test(test_agid_doc__cli_validate),
	};

	return cmocka_run_group_tests_name("agid_doc", tests, setup, teardown);
}
