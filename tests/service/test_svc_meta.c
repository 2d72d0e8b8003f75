/*
 * Allegato 5 records built from an act (service/svc_meta.c) through
 * `send-bridge act metadata`: every document of the IMU sample gets a record
 * that validates against the Allegato 5 XSD in ../shared, the second one
 * names the first as its primary document, and missing configuration is
 * reported by key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/xmlschemas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "th.h"

static const char base_ini[] =
	"[service]\nsender_denomination = Comune di Esempio\nsender_tax_id = 80012345676\n"
	"[outbox]\ndir = outbox\n[store]\npath = sb.db\n[send]\napi_key_file = key\n"
	"[office.tributi]\nclassification = 4.3\nclassification_desc = Tributi - accertamenti\n"
	"[protocol]\nipa_code = c_x000\naoo_code = A1B2C3D\naoo_name = AOO Comune di Esempio\n";

static int run_meta(const char *dir, const char *ini_text, struct sb_buf *out, struct sb_buf *err)
{
	char *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	char *ini = sb_xasprintf("%s/sb.ini", dir), *key = sb_xasprintf("%s/key", dir);
	char *act = th_fixture("acts/imu-assessment");
	const char *argv[] = { bin, "-c", ini, "act", "metadata", act, "--protocol",
			       "PG/2026/0000042", "--date", "2026-11-24", "--out", dir, NULL };
	int rc;

	th_write_str(key, "k\n", 0600);
	th_write_str(ini, ini_text, 0644);
	rc = th_run(argv, out, err);
	free(bin); free(ini); free(key); free(act);
	return rc;
}

static xmlSchema *load_xsd(void)
{
	char *xsd = th_shared(
		"specs/agid/allegato5_thirdparty/documentoAmministrativoInformatico.xsd");
	xmlSchemaParserCtxt *pc;
	xmlSchema *schema;
	char *text, *typo;

	if (!xsd)
		fail_msg("../shared/specs/agid/allegato5_thirdparty is missing: "
			 "XSD validation not done");
	text = th_read(xsd, NULL);
	assert_non_null(text);
	/* The published transcription's CF pattern has a typo ("[0- 9...]") libxml2 refuses. */
	typo = strstr(text, "[0- 9LMNPQRSTUV]");
	if (typo)
		memmove(typo + 3, typo + 4, strlen(typo + 4) + 1);
	pc = xmlSchemaNewMemParserCtxt(text, (int)strlen(text));
	schema = xmlSchemaParse(pc);
	xmlSchemaFreeParserCtxt(pc);
	free(text);
	free(xsd);
	assert_non_null(schema);
	return schema;
}

static void test_svc_meta__records_validate_against_the_xsd(void **state)
{
	char *dir = th_tmpdir("meta"), *ini, *p1, *p2, *x1, *x2;
	struct sb_buf out = SB_BUF_INIT(1 << 20), err = SB_BUF_INIT(1 << 20);
	xmlSchema *schema = load_xsd();
	xmlSchemaValidCtxt *vc = xmlSchemaNewValidCtxt(schema);

	(void)state;
	ini = sb_xasprintf("%spec = protocollo@pec.comune.esempio.it\n", base_ini);
	if (run_meta(dir, ini, &out, &err) != 0)
		fail_msg("act metadata failed: %s", sb_buf_cstr(&err));
	p1 = sb_xasprintf("%s/avviso-accertamento.pdf.metadata.xml", dir);
	p2 = sb_xasprintf("%s/prospetto-calcolo.pdf.metadata.xml", dir);
	x1 = th_read(p1, NULL);
	x2 = th_read(p2, NULL);
	assert_non_null(x1);
	assert_non_null(x2);
	for (int i = 0; i < 2; i++) {
		const char *path = i ? p2 : p1;
		xmlDoc *doc = xmlReadFile(path, NULL, XML_PARSE_NONET);

		assert_non_null(doc);
		if (xmlSchemaValidateDoc(vc, doc) != 0)
			fail_msg("%s does not validate against the Allegato 5 XSD", path);
		xmlFreeDoc(doc);
	}
	/* from the act, the registration and the checks */
	assert_non_null(strstr(x1,
			       "<NumeroProtocolloDocumento>0000042</NumeroProtocolloDocumento>"));
	assert_non_null(strstr(x1, "<TipologiaDocumentale>Avviso di accertamento"
			       "</TipologiaDocumentale>"));
	assert_non_null(strstr(x1, "<Formato>PDF/A-2b</Formato>"));
	assert_non_null(strstr(x1, "<Identificativo>imu-assessment/prospetto-calcolo.pdf"
			       "</Identificativo>"));
	assert_non_null(strstr(x1, "<IndiceDiClassificazione>4.3</IndiceDiClassificazione>"));
	assert_non_null(strstr(x2, "imu-assessment/avviso-accertamento.pdf"));
	xmlSchemaFreeValidCtxt(vc);
	xmlSchemaFree(schema);
	th_rmrf(dir);
	free(dir); free(ini); free(p1); free(p2); free(x1); free(x2);
	sb_buf_release(&out);
	sb_buf_release(&err);
}

static void test_svc_meta__missing_configuration_named(void **state)
{
	char *dir = th_tmpdir("meta2");
	struct sb_buf out = SB_BUF_INIT(1 << 20), err = SB_BUF_INIT(1 << 20);

	(void)state;
	assert_int_equal(run_meta(dir, base_ini, &out, &err), 1);
	assert_non_null(strstr(sb_buf_cstr(&err), "[protocol] pec: needed for the Allegato 5"));
	th_rmrf(dir);
	free(dir);
	sb_buf_release(&out);
	sb_buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_svc_meta__records_validate_against_the_xsd),
		cmocka_unit_test(test_svc_meta__missing_configuration_named),
	};
	return cmocka_run_group_tests_name("svc_meta", tests, NULL, NULL);
}
