/*
 * Bad input never crashes pdnd/'s parsers: every prefix and thousands of
 * seeded byte mutations of valid ANPR and INAD replies, and of a client
 * assertion given to the diagnosis, run under ASan and UBSan. Each call
 * must either succeed or fail with a code and a message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "pdnd.h"
#include "pdnd_anpr.h"
#include "pdnd_inad.h"
#include "th_pdnd.h"

static const char ANPR_OK[] =
	"{\"idOperazioneANPR\":\"1\",\"listaSoggetti\":{\"datiSoggetto\":[{\"generalita\":"
	"{\"codiceFiscale\":{\"codFiscale\":\"RSSMRA80A01H501U\"},\"soggettoAIRE\":\"S\"},"
	"\"identificativi\":{\"idANPR\":\"AA10000BB\"},"
	"\"datiDecesso\":{\"dataEvento\":\"2024-01-01\"},"
	"\"infoSoggettoEnte\":[{\"id\":\"1015\",\"valoreData\":\"2024-01-01\"}],\"residenza\":["
	"{\"dataDecorrenzaResidenza\":\"2019-06-15\",\"presso\":\"X\","
	"\"indirizzo\":{\"cap\":\"00153\","
	"\"frazione\":\"F\",\"comune\":{\"nomeComune\":\"ROMA\",\"siglaProvinciaIstat\":\"RM\"},"
	"\"toponimo\":{\"specie\":\"VIA\",\"denominazioneToponimo\":\"X\"},\"numeroCivico\":"
	"{\"numero\":\"1\",\"lettera\":\"A\",\"esponente1\":\"2\",\"metrico\":\"3\","
	"\"progSNC\":\"4\","
	"\"civicoInterno\":{\"scala\":\"A\",\"interno1\":\"4\",\"piano\":\"2\"}}}},"
	"{\"dataDecorrenzaResidenza\":\"2020-01-01\",\"localitaEstera\":{\"indirizzoEstero\":"
	"{\"cap\":\"75011\",\"localita\":{\"descrizioneLocalita\":\"PARIS\",\"descrizioneStato\":"
	"\"FRANCIA\",\"provinciaContea\":\"IDF\"},\"toponimo\":{\"denominazione\":\"RUE\","
	"\"numeroCivico\":\"4\"}}}}]}]},\"listaAnomalie\":[{\"codiceErroreAnomalia\":\"EN148\"}]}";

static const char ANPR_KO[] =
	"{\"idOperazioneANPR\":\"2\",\"listaErrori\":[{\"codiceErroreAnomalia\":\"EN122\","
	"\"tipoErroreAnomalia\":\"E\",\"testoErroreAnomalia\":\"Soggetto cancellato da ANPR\"}]}";

static const char INAD_OK[] =
	"{\"codiceFiscale\":\"RSSMRA80A01H501U\",\"since\":\"2026-01-01T00:00:00Z\","
	"\"digitalAddress\":[{\"digitalAddress\":\"a@pec.it\",\"usageInfo\":{\"motivation\":"
	"\"CESSAZIONE_VOLONTARIA\",\"dateEndValidity\":\"2023-01-31T00:00:00Z\"}},"
	"{\"digitalAddress\":\"b@pec.it\",\"practicedProfession\":\"Avvocato\"}]}";

static uint64_t seed = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

typedef void (*parse_fn)(const char *p, size_t len, long status);

static void anpr(const char *p, size_t len, long status)
{
	struct pdnd_anpr_result r = { 0 };
	struct sb_err err = SB_ERR_INIT;
	int rc = pdnd_anpr_parse(status, p, len, "RSSMRA80A01H501U", &r, &err);

	if (rc < 0) {
		assert_int_equal(err.code, rc);
		assert_true(err.msg[0]);
	} else {
		struct sb_buf b = SB_BUF_INIT(1u << 20);

		if (r.has_residence)
			pdnd_address_format(&r.residence, &b);
		sb_buf_release(&b);
	}
	pdnd_anpr_result_release(&r);
}

static void inad(const char *p, size_t len, long status)
{
	struct pdnd_inad_result r = { 0 };
	struct sb_err err = SB_ERR_INIT;
	int rc = pdnd_inad_parse(p, len, &r, &err);

	(void)status;
	if (rc < 0) {
		assert_int_equal(err.code, rc);
		assert_true(err.msg[0]);
	} else {
		(void)pdnd_inad_pick(&r, 0, false);
	}
	pdnd_inad_result_release(&r);
}

static void torture(parse_fn fn, const char *doc, long status)
{
	size_t len = strlen(doc);
	char *buf = sb_xmalloc(len + 1);

	for (size_t n = 0; n <= len; n++) {
		memcpy(buf, doc, n);
		fn(buf, n, status);
	}
	for (int i = 0; i < 3000; i++) {
		int flips = 1 + (int)(rnd() % 4);

		memcpy(buf, doc, len + 1);
		while (flips--) {
			size_t at = rnd() % len;
			static const char alphabet[] = "{}[]\":,0123456789aZ \\\x01\xff";

			buf[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
		}
		fn(buf, len, status);
	}
	free(buf);
}

static void test_pdnd_parse__anpr_replies(void **state)
{
	(void)state;
	torture(anpr, ANPR_OK, 200);
	torture(anpr, ANPR_KO, 404);
	torture(anpr, ANPR_KO, 500);
}

static void test_pdnd_parse__inad_replies(void **state)
{
	(void)state;
	torture(inad, INAD_OK, 200);
}

static void test_pdnd_parse__assertion_diagnosis(void **state)
{
	char *dir = th_tmpdir("pdnd-parse"), *key = sb_xasprintf("%s/k.pem", dir), *cmd, diag[256];
	struct pdnd_client_opts o = { .token_url = "http://127.0.0.1:1/t",
				      .client_id = TH_CLIENT_ID, .key_file = key,
				      .audience = TH_AUD, .renew_before = -1 };
	struct pdnd_client *c = NULL;
	struct sb_buf a = SB_BUF_INIT(1u << 20);
	char *buf;

	(void)state;
	cmd = sb_xasprintf("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '%s' "
			   "2>/dev/null && chmod 600 '%s'", key, key);
	assert_int_equal(th_sh(cmd, NULL), 0);
	assert_int_equal(pdnd_client_new(&c, &o, NULL), 0);
	assert_int_equal(pdnd_assertion_sign(c, TH_PURPOSE_C030, NULL, &a, NULL), 0);
	pdnd_assertion_diagnose(c, a.buf, TH_CLIENT_ID, diag, sizeof(diag));
	assert_string_equal(diag, "");          /* a good assertion has nothing to report */
	buf = sb_xstrdup(a.buf);
	for (int i = 0; i < 3000; i++) {
		size_t at = rnd() % a.len;

		memcpy(buf, a.buf, a.len + 1);
		buf[at] = "A.-_=x\x01"[rnd() % 7];
		if (i % 7 == 0)
			buf[rnd() % a.len] = '\0';
		pdnd_assertion_diagnose(c, buf, TH_CLIENT_ID, diag, sizeof(diag));
	}
	pdnd_assertion_diagnose(c, "", NULL, diag, sizeof(diag));
	assert_true(diag[0]);
	free(buf);
	free(cmd);
	free(key);
	sb_buf_release(&a);
	pdnd_client_free(c);
	th_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pdnd_parse__anpr_replies),
		cmocka_unit_test(test_pdnd_parse__inad_replies),
		cmocka_unit_test(test_pdnd_parse__assertion_diagnosis),
	};

	return cmocka_run_group_tests_name("pdnd_parse", tests, NULL, NULL);
}
