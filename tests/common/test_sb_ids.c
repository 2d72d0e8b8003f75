/*
 * Validators of Italian identifiers (common/sb_ids.c), table-driven.
 * The codici fiscali are synthetic (surname TST/PRV), built with the
 * Agenzia delle Entrate algorithm; the omocodia cases replace digits from
 * the right with LMNPQRSTUV as the Agenzia does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sb_common.h"
#include "sb_ids.h"

struct cf_case {
	const char *cf;
	int rc;
	const char *msg;   /* substring of err.msg when rc < 0 */
};

static void test_sb_ids__codice_fiscale_table(void **state)
{
	static const struct cf_case cases[] = {
		{ "TSTMRA80A01H501C", 0, NULL },
		{ "TSTGLI85M52F205J", 0, NULL },            /* woman: day 52 = 12 + 40 */
		{ "PRVLCU70T10L219H", 0, NULL },
		{ "TSTNNA92D45A662W", 0, NULL },
		/* omocodia: last digit of the place code 1 -> M, check char recomputed */
		{ "TSTMRA80A01H50MU", 0, NULL },
		/* omocodia on the day: 01 -> 0M */
		{ "TSTMRA80A0MH501U", 0, NULL },
		/* full omocodia: every digit replaced */
		{ "TSTMRAUPALMHRPMT", 0, NULL },
		/* Agenzia's published example of a valid code (not a real person's) */
		{ "RSSMRA85T10A562S", 0, NULL },
		{ "TSTMRA80A01H501X", SB_EINVAL, "check character wrong (expected C)" },
		{ "TSTMRA80A01H50MC", SB_EINVAL, "check character wrong (expected U)" },
		{ "TSTMRA80Z01H501C", SB_EINVAL, "month letter" },
		{ "TSTMRA80A32H501C", SB_EINVAL, "day of birth 32" },
		{ "TSTMRA80A00H501C", SB_EINVAL, "day of birth 0" },
		{ "TSTMRA80A01H501", SB_EINVAL, "must be 16 characters" },
		{ "TSTMRA80A01H501CC", SB_EINVAL, "must be 16 characters" },
		{ "tstmra80a01h501c", SB_EINVAL, "upper-case" },
		{ "TST1RA80A01H501C", SB_EINVAL, "characters 1-6 must be letters" },
		{ "TSTMRA8AA01H501C", SB_EINVAL,
		  "character 8 must be a digit or an omocodia letter" },
		{ "TSTMRA80A011501C", SB_EINVAL, "character 12 must be a letter" },
		{ "TSTMRA80A01H5011", SB_EINVAL, "check character must be a letter" },
		{ "TSTMRA80A01H501 ", SB_EINVAL, "not an upper-case letter or digit" },
		{ "", SB_EINVAL, "must be 16 characters" },
	};
	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		struct sb_err err = SB_ERR_INIT;
		int rc = sb_cf_person_check(cases[i].cf, &err);

		if (rc != cases[i].rc)
			fail_msg("case %zu '%s': rc %d, expected %d (%s)", i, cases[i].cf, rc,
				 cases[i].rc, err.msg);
		if (cases[i].msg && !strstr(err.msg, cases[i].msg))
			fail_msg("case %zu '%s': message '%s' lacks '%s'", i, cases[i].cf, err.msg,
				 cases[i].msg);
		if (rc < 0) {
			assert_int_equal(err.code, SB_EINVAL);
			/* The message never repeats the value (it is personal data). */
			if (cases[i].cf[0])
				assert_null(strstr(err.msg, cases[i].cf));
		}
	}
}

static void test_sb_ids__partita_iva_table(void **state)
{
	static const struct cf_case cases[] = {
		{ "01234567897", 0, NULL },
		{ "80012345676", 0, NULL },
		{ "09876543217", 0, NULL },
		{ "00000000000", 0, NULL },
		/* the Agenzia delle Entrate's own partita IVA */
		{ "06363391001", 0, NULL },
		{ "01234567890", SB_EINVAL, "check digit wrong (expected 7)" },
		{ "80012345670", SB_EINVAL, "check digit wrong (expected 6)" },
		{ "0123456789", SB_EINVAL, "must be 11 digits" },
		{ "012345678977", SB_EINVAL, "must be 11 digits" },
		{ "0123456789A", SB_EINVAL, "must be 11 digits" },
	};
	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		struct sb_err err = SB_ERR_INIT;
		int rc = sb_piva_check(cases[i].cf, &err);

		if (rc != cases[i].rc)
			fail_msg("case %zu '%s': rc %d, expected %d (%s)", i, cases[i].cf, rc,
				 cases[i].rc, err.msg);
		if (cases[i].msg && !strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, cases[i].msg);
	}
}

static void test_sb_ids__taxid_by_length(void **state)
{
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	assert_int_equal(sb_taxid_check("TSTMRA80A01H501C", &err), 0);
	assert_int_equal(sb_taxid_check("01234567897", &err), 0);
	assert_int_equal(sb_taxid_check("12345", &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "16 characters (person) or 11 digits"));
}

struct bool_case {
	const char *s;
	bool ok;
};

static void run_bool(bool (*fn)(const char *), const struct bool_case *c, size_t n,
		     const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (fn(c[i].s) != c[i].ok)
			fail_msg("%s('%s') should be %s", name, c[i].s,
				 c[i].ok ? "valid" : "invalid");
}

static void test_sb_ids__province_cap_notice_taxonomy_iun(void **state)
{
	static const struct bool_case prov[] = {
		{ "RM", true }, { "MI", true }, { "SU", true }, { "VV", true }, { "AO", true },
		{ "XX", false }, { "rm", false }, { "R", false }, { "RMA", false }, { "", false },
		{ "EE", false },
	};
	static const struct bool_case cap[] = {
		{ "00100", true }, { "20121", true }, { "98168", true }, { "00000", false },
		{ "0010", false }, { "001000", false }, { "0010A", false },
	};
	static const struct bool_case notice[] = {
		{ "302010000000001001", true }, { "000000000000000000", true },
		{ "30201000000000100", false }, { "3020100000000010011", false },
		{ "30201000000000100A", false },
	};
	static const struct bool_case tax[] = {
		{ "010101P", true }, { "010202N", true }, { "10101P", false }, { "010101p", false },
		{ "0101010", false }, { "010101PP", false },
	};
	static const struct bool_case iun[] = {
		{ "ABCD-EFGH-IJKL-202611-A-1", true }, { "ABCD-EFGH-IJKL-202611-A-", false },
		{ "abcd-EFGH-IJKL-202611-A-1", false }, { "ABCD-EFGH-IJKL-2026111-A-1", false },
		{ "ABCD_EFGH-IJKL-202611-A-1", false },
	};
	static const struct bool_case email[] = {
		{ "giulia.test@pec.example.it", true }, { "a@b.it", true }, { "a@b", false },
		{ "@b.it", false }, { "a b@c.it", false }, { "a@@b.it", false }, { "a@.it", false },
	};
	(void)state;
	run_bool(sb_province_valid, prov, SB_ARRAY_SIZE(prov), "province");
	run_bool(sb_cap_valid, cap, SB_ARRAY_SIZE(cap), "cap");
	run_bool(sb_notice_code_valid, notice, SB_ARRAY_SIZE(notice), "notice code");
	run_bool(sb_taxonomy_code_valid, tax, SB_ARRAY_SIZE(tax), "taxonomy code");
	run_bool(sb_iun_valid, iun, SB_ARRAY_SIZE(iun), "iun");
	run_bool(sb_email_valid, email, SB_ARRAY_SIZE(email), "email");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sb_ids__codice_fiscale_table),
		cmocka_unit_test(test_sb_ids__partita_iva_table),
		cmocka_unit_test(test_sb_ids__taxid_by_length),
		cmocka_unit_test(test_sb_ids__province_cap_notice_taxonomy_iun),
	};
	return cmocka_run_group_tests_name("sb_ids", tests, NULL, NULL);
}
