/*
 * Logging (common/sb_log.c): one line per event even with hostile text,
 * levels filtered, and personal data only as keyed tags or masks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_log.h"
#include "th.h"

static void test_sb_log__lines_levels_and_reopen(void **state)
{
	char *dir = th_tmpdir("log"), *path = sb_xasprintf("%s/sb.log", dir);
	char *moved = sb_xasprintf("%s/sb.log.1", dir), *text;
	char quoted[64];
	const char remote[] = "bad\r\ninfo forged: line \"x\"\x01";

	(void)state;
	assert_int_equal(sb_log_open(path), 0);
	sb_log_set_level(SB_LOG_INFO);
	sb_log(SB_LOG_DEBUG, "test", "hidden id=%d", 1);
	sb_log(SB_LOG_INFO, "test", "shown id=%d", 2);
	sb_log(SB_LOG_WARN, "send", "platform said: %s",
	       sb_log_quote(remote, sizeof(remote) - 1, quoted, sizeof(quoted)));
	/* even unquoted newlines in a message cannot start a new line */
	sb_log(SB_LOG_ERROR, "test", "two\nlines");
	text = th_read(path, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "hidden"));
	assert_non_null(strstr(text, "info test: shown id=2\n"));
	assert_non_null(strstr(text, "warn send: platform said: bad\\x0d\\x0a"
			       "info forged: line \\\"x\\\"\\x01\n"));
	assert_non_null(strstr(text, "error test: two lines\n"));
	free(text);
	/* logrotate moves the file; a reopen starts a new one */
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(sb_log_reopen(), 0);
	sb_log(SB_LOG_INFO, "test", "after reopen");
	text = th_read(path, NULL);
	assert_non_null(text);
	assert_string_equal(text, "info test: after reopen\n");
	free(text);
	assert_int_equal(sb_log_open(NULL), 0);
	th_rmrf(dir);
	free(dir); free(path); free(moved);
}

static void test_sb_log__quote_cuts_long_text(void **state)
{
	char big[300], out[32];

	(void)state;
	memset(big, 'a', sizeof(big));
	sb_log_quote(big, sizeof(big), out, sizeof(out));
	assert_true(strlen(out) < sizeof(out));
	assert_non_null(strstr(out, "..."));
}

static void test_sb_log__pii_tags_are_keyed(void **state)
{
	char a[SB_PII_TAG_SIZE], b[SB_PII_TAG_SIZE], c[SB_PII_TAG_SIZE];
	const char k1[] = "0123456789abcdef0123456789abcdef";
	const char k2[] = "fedcba9876543210fedcba9876543210";

	(void)state;
	sb_pii_set_key(k1, 32);
	sb_pii_tag("cf", "TSTMRA80A01H501C", a, sizeof(a));
	sb_pii_tag("cf", "TSTMRA80A01H501C", b, sizeof(b));
	sb_pii_tag("cf", "TSTGLI85M52F205J", c, sizeof(c));
	assert_string_equal(a, b);               /* same person, same tag */
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), strlen("cf#") + 8);
	assert_null(strstr(a, "TST"));
	sb_pii_set_key(k2, 32);
	sb_pii_tag("cf", "TSTMRA80A01H501C", b, sizeof(b));
	assert_string_not_equal(a, b);           /* another installation, another tag */
}

static void test_sb_log__masks(void **state)
{
	char out[64];

	(void)state;
	assert_string_equal(sb_pii_mask(SB_PII_TAXID, "TSTMRA80A01H501C", out, sizeof(out)),
			    "TS************1C");
	assert_string_equal(sb_pii_mask(SB_PII_EMAIL, "giulia.test@pec.example.it",
					out, sizeof(out)),
			    "g***@pec.example.it");
	assert_string_equal(sb_pii_mask(SB_PII_NAME, "Giulia Test", out, sizeof(out)), "G. T.");
	assert_string_equal(sb_pii_mask(SB_PII_NAME, "\xc3\x89lodie Test", out, sizeof(out)),
			    "\xc3\x89. T.");
	assert_string_equal(sb_pii_mask(SB_PII_ADDRESS, "Via dei Test 1", out, sizeof(out)), "***");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sb_log__lines_levels_and_reopen),
		cmocka_unit_test(test_sb_log__quote_cuts_long_text),
		cmocka_unit_test(test_sb_log__pii_tags_are_keyed),
		cmocka_unit_test(test_sb_log__masks),
	};
	return cmocka_run_group_tests_name("sb_log", tests, NULL, NULL);
}
