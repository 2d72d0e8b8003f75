/*
 * agid_meta: the Allegato 5 record of a checked document, exported as XML
 * and validated against the XSD in ../shared (read at run time), plus the
 * required-field rules, each named by its element path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/xmlschemas.h>

#include "sb_common.h"
#include "agid_doc.h"
#include "agid_meta.h"
#include "th.h"
#include "th_agid.h"

static char *tmp, *pdf;

static int setup(void **state)
{
	(void)state;
	tmp = th_tmpdir("agid-meta");
	pdf = tha_pdfa(tmp, "verbale.pdf", "Verbale di accertamento n. 1001/2026", 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmrf(tmp);
	free(tmp);
	free(pdf);
	return 0;
}

static const struct agid_party parties[] = {
	{ .role = AGID_ROLE_AMMINISTRAZIONE, .kind = AGID_PAI, .ipa_amm = "c_x000",
	  .ipa_amm_name = "Comune di Esempio", .ipa_aoo = "A1B2C3D",
	  .ipa_aoo_name = "AOO Comune di Esempio",
	  .digital_address = "protocollo@pec.comune.esempio.it" },
	{ .role = AGID_ROLE_DESTINATARIO, .kind = AGID_PF, .surname = "Rossi", .name = "Mario",
	  .tax_id = "RSSMRA80A01H501U" },
	{ .role = AGID_ROLE_DESTINATARIO, .kind = AGID_PG,
	  .denomination = "Esempio S.r.l. & Figli <test>", .vat = "01234567890" },
	{ .role = AGID_ROLE_OPERATORE, .kind = AGID_PF, .surname = "Bianchi", .name = "Anna" },
	{ .role = AGID_ROLE_PRODUTTORE, .kind = AGID_SW, .denomination = "send-bridge" },
};

static const char *const keywords[] = { "verbale", "codice della strada" };

static void fill(struct agid_meta *m, const struct agid_doc_report *r)
{
	memset(m, 0, sizeof(*m));
	agid_meta_from_report(m, r);
	m->id = "act-0001/verbale.pdf";
	m->segnatura = "c_x000|A1B2C3D|PG|0001234|2026-01-15";
	m->formation = AGID_FORM_A;
	m->tipologia = "Verbale di accertamento CdS";
	m->flow = 'U';
	m->protocol = true;
	m->reg_date = "2026-01-15";
	m->reg_time = "10:30:00";
	m->reg_number = "0001234";
	m->reg_code = "PG";
	m->parties = parties;
	m->nparties = SB_ARRAY_SIZE(parties);
	m->subject = "Verbale di accertamento n. 1001/2026";
	m->keywords = keywords;
	m->nkeywords = SB_ARRAY_SIZE(keywords);
	m->class_index = "6.4";
	m->class_desc = "Polizia locale - sanzioni";
	m->agg_type = "Fascicolo";
	m->agg_id = "2026-6.4-0001";
	m->file_name = "verbale.pdf";
	m->version = 1;
	m->retention_years = 10;
	m->sw_name = "send-bridge";
}

static void test_agid_meta__xml_validates_against_the_xsd(void **state)
{
	char *xsd = th_shared(
		"specs/agid/allegato5_thirdparty/documentoAmministrativoInformatico.xsd");
	struct agid_doc_report *r = NULL;
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_DEFAULT);
	struct sb_problems probs = SB_PROBLEMS_INIT;
	xmlSchemaParserCtxt *pc;
	xmlSchema *schema;
	xmlSchemaValidCtxt *vc;
	xmlDoc *doc;
	struct agid_meta m;
	char *xsd_text, *typo;
	size_t xsd_len = 0;

	(void)state;
	if (!xsd)
		fail_msg("../shared/specs/agid/allegato5_thirdparty is missing: "
			 "XSD validation not done");
	assert_int_equal(agid_doc_check_file(&r, pdf, NULL, AGID_PDFA_NONE, NULL), 0);
	fill(&m, r);
	assert_int_equal(m.flavour, AGID_PDFA_2B);
	assert_false(m.signed_doc);
	assert_int_equal(agid_meta_to_xml(&m, &xml, &probs, NULL), 0);
	assert_int_equal(probs.n, 0);
	assert_non_null(strstr(sb_buf_cstr(&xml), "<Formato>PDF/A-2b</Formato>"));
	assert_non_null(strstr(sb_buf_cstr(&xml),
			       "<FirmatoDigitalmente>false</FirmatoDigitalmente>"));
	assert_non_null(strstr(sb_buf_cstr(&xml), "&amp; Figli &lt;test&gt;"));
	assert_non_null(strstr(sb_buf_cstr(&xml),
			       "<TempoDiConservazione>10</TempoDiConservazione>"));

	/*
	 * The third-party transcription has a typo in the CF pattern ("[0- 9...]",
	 * an invalid regular expression that libxml2 refuses): it is mended in
	 * memory, the file in ../shared stays as published.
	 */
	xsd_text = th_read(xsd, &xsd_len);
	assert_non_null(xsd_text);
	typo = strstr(xsd_text, "[0- 9LMNPQRSTUV]");
	assert_non_null(typo);
	memmove(typo + 3, typo + 4, strlen(typo + 4) + 1);
	pc = xmlSchemaNewMemParserCtxt(xsd_text, (int)strlen(xsd_text));
	schema = xmlSchemaParse(pc);
	assert_non_null(schema);
	vc = xmlSchemaNewValidCtxt(schema);
	doc = xmlReadMemory(xml.buf, (int)xml.len, "meta.xml", NULL, XML_PARSE_NONET);
	assert_non_null(doc);
	assert_int_equal(xmlSchemaValidateDoc(vc, doc), 0);
	xmlFreeDoc(doc);

	/* a repertorio registration with an attachment validates too */
	{
		struct agid_attachment att = { r->sha256, "act-0001/avviso.pdf",
					       "Avviso di pagamento" };

		m.protocol = false;
		m.reg_number = "2026/77";
		m.reg_code = "REP-PM";
		m.attachments = &att;
		m.nattachments = 1;
		m.primary_id = "act-0001/verbale.pdf";
		m.primary_sha256_hex = r->sha256;
		sb_buf_reset(&xml);
		assert_int_equal(agid_meta_to_xml(&m, &xml, NULL, NULL), 0);
		doc = xmlReadMemory(xml.buf, (int)xml.len, "meta.xml", NULL, XML_PARSE_NONET);
		assert_int_equal(xmlSchemaValidateDoc(vc, doc), 0);
		xmlFreeDoc(doc);
	}
	xmlSchemaFreeValidCtxt(vc);
	xmlSchemaFree(schema);
	xmlSchemaFreeParserCtxt(pc);
	sb_buf_release(&xml);
	agid_doc_report_free(r);
	free(xsd_text);
	free(xsd);
}

static bool has_problem(const struct sb_problems *p, const char *where)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->items[i].where, where))
			return true;
	return false;
}

static void test_agid_meta__required_fields(void **state)
{
	static const struct agid_party bad_parties[] = {
		{ .role = AGID_ROLE_OPERATORE, .kind = AGID_PG, .denomination = "x" },
		{ .role = AGID_ROLE_DESTINATARIO, .kind = AGID_PF, .surname = "Rossi",
		  .name = "Mario", .tax_id = "RSSMRA80A01H501X" },
	};
	static const char *const six[] = { "a", "b", "c", "d", "e", "f" };
	struct agid_doc_report rep;
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_DEFAULT);
	struct sb_err err = SB_ERR_INIT;
	struct agid_meta m;

	(void)state;
	memset(&rep, 0, sizeof(rep));
	snprintf(rep.sha256, sizeof(rep.sha256), "%s", "abc");
	fill(&m, &rep);
	m.id = "";
	m.flow = 'X';
	m.reg_number = "123";
	m.reg_date = "15/01/2026";
	m.reg_code = "codice registro troppo lungo";
	m.parties = bad_parties;
	m.nparties = SB_ARRAY_SIZE(bad_parties);
	m.keywords = six;
	m.nkeywords = 6;
	m.agg_type = "Cartella";
	m.version = 2;
	m.retention_years = 0;
	m.subject = NULL;
	assert_int_equal(agid_meta_to_xml(&m, &xml, &probs, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(xml.len, 0);
	assert_true(has_problem(&probs, "IdDoc/ImprontaCrittograficaDelDocumento/Impronta"));
	assert_true(has_problem(&probs, "IdDoc/Identificativo"));
	assert_true(has_problem(&probs, "DatiDiRegistrazione/TipologiaDiFlusso"));
	assert_true(has_problem(&probs, "DatiDiRegistrazione/NumeroProtocolloDocumento"));
	assert_true(has_problem(&probs, "DatiDiRegistrazione/Data"));
	assert_true(has_problem(&probs, "DatiDiRegistrazione/CodiceRegistro"));
	assert_true(has_problem(&probs, "Soggetti/Ruolo[0]"));
	assert_true(has_problem(&probs, "Soggetti/Ruolo[1]"));
	assert_true(has_problem(&probs, "Soggetti"));
	assert_true(has_problem(&probs, "ChiaveDescrittiva/Oggetto"));
	assert_true(has_problem(&probs, "ChiaveDescrittiva/ParoleChiave"));
	assert_true(has_problem(&probs, "Agg/TipoAgg/TipoAggregazione"));
	assert_true(has_problem(&probs, "TracciatureModificheDocumento"));
	assert_true(has_problem(&probs, "TempoDiConservazione"));
	sb_problems_release(&probs);
	sb_buf_release(&xml);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agid_meta__xml_validates_against_the_xsd),
		cmocka_unit_test(test_agid_meta__required_fields),
	};

	return cmocka_run_group_tests_name("agid_meta", tests, setup, teardown);
}
