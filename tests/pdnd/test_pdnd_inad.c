/*
 * pdnd/pdnd_inad.c against send-sim's INAD stand-in: extract, the choice
 * of the domicile valid today, verify, the asynchronous bulk list, and
 * INAD's error shapes.
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
#include "sb_http.h"
#include "sb_time.h"
#include "pdnd.h"
#include "pdnd_inad.h"
#include "th_pdnd.h"

static struct th_pdnd T;
static struct pdnd_client *C;
static struct sb_http *H;
static struct pdnd_inad_cfg CFG;
static char BASE[256];

static int setup(void **state)
{
	(void)state;
	if (th_pdnd_client_start(&T, &C, &H) < 0)
		return -1;
	snprintf(BASE, sizeof(BASE), "%s" TH_INAD_PATH, T.sim.url);
	CFG.base_url = BASE;
	CFG.purpose = TH_PURPOSE_INAD;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_pdnd_client_stop(&T, C, H);
	return 0;
}

static void test_pdnd_inad__extract_found_and_not_found(void **state)
{
	struct pdnd_inad_result r = { 0 };
	struct sb_err err = SB_ERR_INIT;
	const struct pdnd_domicile *d;
	uint64_t before = pdnd_client_token_requests(C);

	(void)state;
	assert_int_equal(pdnd_inad_extract(C, H, &CFG, "RSSMRA80A01H501U", "verbale 2026/7", &r,
					   NULL, &err), 0);
	assert_true(r.found);
	assert_int_equal(r.n, 1);
	d = pdnd_inad_pick(&r, sb_now(), false);
	assert_non_null(d);
	assert_string_equal(d->address, "mario.rossi@pec.example.it");
	pdnd_inad_result_release(&r);
	/* No domicile: INAD's 404 is an outcome. */
	assert_int_equal(pdnd_inad_extract(C, H, &CFG, "BNCLCU75M45F205E", "verbale 2026/7", &r,
					   NULL, &err), 0);
	assert_false(r.found);
	assert_null(pdnd_inad_pick(&r, sb_now(), false));
	pdnd_inad_result_release(&r);
	/* INAD is voucher only: both calls used the one cached voucher. */
	assert_true(pdnd_client_token_requests(C) - before <= 1);
}

static void test_pdnd_inad__pick_skips_ended_and_prefers_personal(void **state)
{
	struct pdnd_inad_result r = { 0 };
	struct sb_err err = SB_ERR_INIT;
	const struct pdnd_domicile *d;

	(void)state;
	/* One ended in 2023, one professional still valid. */
	assert_int_equal(pdnd_inad_extract(C, H, &CFG, "NREANN90D52A944V", "ref",
					   &r, NULL, &err), 0);
	assert_int_equal(r.n, 2);
	d = pdnd_inad_pick(&r, sb_now(), false);
	assert_non_null(d);
	assert_string_equal(d->address, "studio.neri@pec.example.it");
	/* Before the end date the personal one was still the choice. */
	d = pdnd_inad_pick(&r, 1640995200 /* 2022-01-01 */, false);
	assert_string_equal(d->address, "anna.neri.old@pec.example.it");
	pdnd_inad_result_release(&r);
	/* Personal and professional both valid: personal first, unless asked otherwise. */
	assert_int_equal(pdnd_inad_extract(C, H, &CFG, "CSTLGU70H15B354X", "ref",
					   &r, NULL, &err), 0);
	assert_string_equal(pdnd_inad_pick(&r, sb_now(), false)->address,
			    "luigi.costa@pec.example.it");
	assert_string_equal(pdnd_inad_pick(&r, sb_now(), true)->address,
			    "ing.costa@pec.example.it");
	pdnd_inad_result_release(&r);
}

static void test_pdnd_inad__verify(void **state)
{
	struct sb_err err = SB_ERR_INIT;
	bool ok = false;

	(void)state;
	assert_int_equal(pdnd_inad_verify(C, H, &CFG, "RSSMRA80A01H501U",
					  "mario.rossi@pec.example.it", "2026-01-01", "ref", &ok,
					  &err), 0);
	assert_true(ok);
	assert_int_equal(pdnd_inad_verify(C, H, &CFG, "RSSMRA80A01H501U", "other@pec.example.it",
					  "2026-01-01", "ref", &ok, &err), 0);
	assert_false(ok);
	ok = true;
	assert_int_equal(pdnd_inad_verify(C, H, &CFG, "RSSMRA80A01H501U", "x@pec.example.it",
					  "01/01/2026", "ref", &ok, &err), SB_EINVAL);
	assert_true(err.msg[0]);
	assert_true(ok);
}

static void test_pdnd_inad__bulk_list(void **state)
{
	static const char *const cfs[] = { "RSSMRA80A01H501U", "BNCLCU75M45F205E",
					   "CSTLGU70H15B354X", "FRRSRA88E60D612B" };
	struct pdnd_inad_result out[4];
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	assert_int_equal(pdnd_inad_bulk(C, H, &CFG, cfs, 4, "lotto 2026/1", 10, 10, out, &err), 0);
	assert_true(out[0].found);
	assert_string_equal(out[0].items[0].address, "mario.rossi@pec.example.it");
	assert_false(out[1].found);
	assert_string_equal(out[1].tax_id, "BNCLCU75M45F205E");
	assert_int_equal(out[2].n, 2);
	assert_true(out[3].found);
	for (int i = 0; i < 4; i++)
		pdnd_inad_result_release(&out[i]);
	/* Too many, or a bad one: refused before anything is sent. */
	assert_int_equal(pdnd_inad_bulk(C, H, &CFG, cfs, 0, "x", 10, 10, out, &err), SB_EINVAL);
	assert_true(err.msg[0]);
	{
		const char *bad[] = { "RSSMRA80A01H501U", "SHORT" };

		sb_err_clear(&err);
		assert_int_equal(pdnd_inad_bulk(C, H, &CFG, bad, 2, "x", 10, 10, out, &err),
				 SB_EINVAL);
		assert_non_null(strstr(err.msg, "tax code 1"));
	}
	/* A list that is not ready within the polls allowed is temporary. */
	sb_err_clear(&err);
	assert_int_equal(pdnd_inad_bulk(C, H, &CFG, cfs, 1, "x", 0, 1, out, &err), SB_ETEMP);
	assert_non_null(strstr(err.msg, "not ready"));
}

static void test_pdnd_inad__errors(void **state)
{
	struct pdnd_inad_result r = { 0 };
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_inad_cfg wrong = CFG;

	(void)state;
	assert_int_equal(pdnd_inad_extract(C, H, &CFG, "RSSMRA80A01H501U", "", &r, NULL, &err),
			 SB_EINVAL);
	assert_non_null(strstr(err.msg, "practicalReference"));
	assert_int_equal(pdnd_inad_extract(C, H, &CFG, "RSS", "ref", &r, NULL, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "tax code"));
	/* A voucher for C030 (another e-service) is refused by INAD with 401. */
	wrong.purpose = TH_PURPOSE_C030;
	sb_err_clear(&err);
	assert_int_equal(pdnd_inad_extract(C, H, &wrong, "RSSMRA80A01H501U", "ref", &r, NULL, &err),
			 SB_EREJECT);
	assert_int_equal(err.http, 401);
	assert_non_null(strstr(err.msg, "UNAUTHORIZED"));
	assert_false(r.found);
	/* 5xx: temporary. */
	th_pdnd_faults(&T, "{\"pct5xx\":100}");
	sb_err_clear(&err);
	assert_int_equal(pdnd_inad_extract(C, H, &CFG, "RSSMRA80A01H501U", "ref", &r, NULL, &err),
			 SB_ETEMP);
	assert_int_equal(err.http, 503);
	th_pdnd_faults(&T, "{\"pct5xx\":0}");
	wrong.base_url = NULL;
	sb_err_clear(&err);
	assert_int_equal(pdnd_inad_extract(C, H, &wrong, "RSSMRA80A01H501U", "ref", &r, NULL, &err),
			 SB_ECONFIG);
	assert_non_null(strstr(err.msg, "[inad]"));
	/* Parser: a bad date-time is refused, not guessed. */
	{
		static const char bad[] = "{\"codiceFiscale\":\"X\",\"digitalAddress\":[{"
					  "\"digitalAddress\":\"a@b.it\",\"usageInfo\":{"
					  "\"dateEndValidity\":\"tomorrow\"}}]}";

		assert_int_equal(pdnd_inad_parse(bad, strlen(bad), &r, &err), SB_EINVAL);
	}
	assert_non_null(strstr(err.msg, "dateEndValidity"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pdnd_inad__extract_found_and_not_found),
		cmocka_unit_test(test_pdnd_inad__pick_skips_ended_and_prefers_personal),
		cmocka_unit_test(test_pdnd_inad__verify),
		cmocka_unit_test(test_pdnd_inad__bulk_list),
		cmocka_unit_test(test_pdnd_inad__errors),
	};

	return cmocka_run_group_tests_name("pdnd_inad", tests, setup, teardown);
}
