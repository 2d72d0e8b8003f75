/*
 * service/cli_pdnd.c through the real send-bridge binary against send-sim:
 * pdnd kid, pdnd token (claims shown, token never), resolve (masked unless
 * --show-personal-data; refused operators), audit verify (and tampering)
 * and audit report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_time.h"
#include "pdnd.h"
#include "th_pdnd.h"

static struct th_pdnd T;
static char *INI;

static int setup(void **state)
{
	(void)state;
	th_pdnd_start(&T, 600);
	INI = th_pdnd_config(&T, "[office.pm]\noperators = vigile.rossi\n");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(INI);
	th_pdnd_stop(&T);
	return 0;
}

/* Run send-bridge with args (NULL-terminated); stdout and stderr into the buffers. */
static int run(struct sb_buf *out, struct sb_buf *err, ...)
{
	char *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	const char *argv[16];
	int n = 0, rc;
	va_list ap;
	const char *a;

	argv[n++] = bin;
	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) && n < 15)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	sb_buf_reset(out);
	sb_buf_reset(err);
	rc = th_run(argv, out, err);
	free(bin);
	return rc;
}

static void test_cli_pdnd__kid(void **state)
{
	struct sb_buf out = SB_BUF_INIT(1u << 20), err = SB_BUF_INIT(1u << 20);
	char kid[PDND_KID_SIZE];

	(void)state;
	assert_int_equal(pdnd_kid_file(T.pub, kid, NULL), 0);
	assert_int_equal(run(&out, &err, "pdnd", "kid", T.pub, NULL), 0);
	assert_int_equal(strncmp(sb_buf_cstr(&out), kid, PDND_KID_LEN), 0);
	assert_int_equal(run(&out, &err, "pdnd", "kid", "/nonexistent", NULL), 1);
	assert_non_null(strstr(sb_buf_cstr(&err), "cannot open"));
	assert_int_equal(run(&out, &err, "pdnd", "kid", NULL), 2);
	sb_buf_release(&out);
	sb_buf_release(&err);
}

static void test_cli_pdnd__token_shows_claims_never_the_token(void **state)
{
	struct sb_buf out = SB_BUF_INIT(1u << 20), err = SB_BUF_INIT(1u << 20);

	(void)state;
	assert_int_equal(run(&out, &err, "-c", INI, "pdnd", "token", "--purpose", TH_PURPOSE_C030,
			     NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "aud: " TH_AUD_C030));
	assert_non_null(strstr(sb_buf_cstr(&out), "purposeId: " TH_PURPOSE_C030));
	assert_non_null(strstr(sb_buf_cstr(&out), "expires_in: 600"));
	assert_null(strstr(sb_buf_cstr(&out), "eyJ"));      /* no JWS, of any kind */
	assert_null(strstr(sb_buf_cstr(&err), "eyJ"));
	/* A purpose that is not the client's: PDND's refusal with its correlationId. */
	assert_int_equal(run(&out, &err, "-c", INI, "pdnd", "token", "--purpose", TH_PURPOSE_OTHER,
			     NULL), 3);
	assert_non_null(strstr(sb_buf_cstr(&err), "015-0008"));
	assert_non_null(strstr(sb_buf_cstr(&err), "correlationId="));
	assert_null(strstr(sb_buf_cstr(&err), "eyJ"));
	assert_int_equal(run(&out, &err, "-c", INI, "pdnd", "token", NULL), 2);
	sb_buf_release(&out);
	sb_buf_release(&err);
}

static void test_cli_pdnd__resolve_and_audit(void **state)
{
	struct sb_buf out = SB_BUF_INIT(1u << 20), err = SB_BUF_INIT(1u << 20);
	char today[16], *db, *sql;
	sqlite3 *h = NULL;

	(void)state;
	assert_int_equal(run(&out, &err, "-c", INI, "resolve", "RSSMRA80A01H501U", "--act",
			     "verbale 2026/20", "--operator", "vigile.rossi", NULL), 0);
	assert_null(strstr(sb_buf_cstr(&out), "RSSMRA80A01H501U"));
	assert_null(strstr(sb_buf_cstr(&out), "mario.rossi@pec"));
	assert_non_null(strstr(sb_buf_cstr(&out), "(source inad)"));
	assert_non_null(strstr(sb_buf_cstr(&out), "(source anpr, since 2019-06-15)"));
	assert_non_null(strstr(sb_buf_cstr(&out), "cache: miss"));
	assert_int_equal(run(&out, &err, "--show-personal-data", "-c", INI, "resolve",
			     "RSSMRA80A01H501U", "--act", "verbale 2026/20", "--operator",
			     "vigile.rossi", NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "tax code: RSSMRA80A01H501U"));
	assert_non_null(strstr(sb_buf_cstr(&out), "mario.rossi@pec.example.it"));
	assert_non_null(strstr(sb_buf_cstr(&out), "VIALE TRASTEVERE 21B"));
	assert_non_null(strstr(sb_buf_cstr(&out), "cache: hit"));
	/* Not authorised: refused before leaving the machine, exit 3. */
	assert_int_equal(run(&out, &err, "-c", INI, "resolve", "BNCLCU75M45F205E", "--operator",
			     "intruso", NULL), 3);
	assert_non_null(strstr(sb_buf_cstr(&err), "operator 'intruso'"));
	assert_null(strstr(sb_buf_cstr(&err), "BNCLCU75M45F205E"));
	assert_int_equal(run(&out, &err, "-c", INI, "resolve", "BNCLCU75M45F205X", "--operator",
			     "vigile.rossi", NULL), 1);

	assert_int_equal(run(&out, &err, "-c", INI, "audit", "verify", NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "access trail: 4 rows, chain intact"));
	sb_time_date(sb_now(), today, sizeof(today));
	assert_int_equal(run(&out, &err, "-c", INI, "audit", "report", "--from", today, "--to",
			     today, NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "intruso"));
	assert_non_null(strstr(sb_buf_cstr(&out), "queries not tied to an act"));
	assert_non_null(strstr(sb_buf_cstr(&out), "operator=intruso"));
	assert_int_equal(run(&out, &err, "-c", INI, "audit", "report", "--from", "yesterday", NULL),
			 2);

	/* Someone edits the file: verify names the row and fails. */
	db = sb_xasprintf("%s/store.db", T.dir);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	sql = sb_xasprintf("DROP TRIGGER pdnd_access_no_update;"
			   "UPDATE pdnd_access SET operator = 'vigile.rossi' WHERE operator = 'intruso'");
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(run(&out, &err, "-c", INI, "audit", "verify", NULL), 1);
	assert_non_null(strstr(sb_buf_cstr(&err), "row 4: altered"));
	free(sql);
	free(db);
	sb_buf_release(&out);
	sb_buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_pdnd__kid),
		cmocka_unit_test(test_cli_pdnd__token_shows_claims_never_the_token),
		cmocka_unit_test(test_cli_pdnd__resolve_and_audit),
	};

	return cmocka_run_group_tests_name("cli_pdnd", tests, setup, teardown);
}
