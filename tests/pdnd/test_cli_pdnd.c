/*
 * service/cli_pdnd.c through the real send-bridge binary against send-sim:
 * pdnd kid, pdnd token (claims shown, token never), resolve (masked unless
 * --show-personal-data; refused operators), audit verify (and tampering;
 * the head it prints, a head recorded elsewhere, the seal with [pdnd]
 * audit_key_file and what is not guaranteed without it), audit seal and
 * audit report.
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
	assert_non_null(strstr(sb_buf_cstr(&out), "access trail head: rows=4 hash="));
	/* No key: verify passes and says plainly what it cannot guarantee. */
	assert_non_null(strstr(sb_buf_cstr(&out), "access trail seal: NOT CHECKED (no [pdnd] "
				     "audit_key_file configured): rows cut from the end"));
	assert_non_null(strstr(sb_buf_cstr(&out), "would NOT show"));
	assert_int_equal(run(&out, &err, "-c", INI, "audit", "seal", NULL), 2);
	assert_non_null(strstr(sb_buf_cstr(&err), "audit_key_file"));
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
			   "UPDATE pdnd_access SET operator = 'vigile.rossi'"
			   " WHERE operator = 'intruso'");
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(run(&out, &err, "-c", INI, "audit", "verify", NULL), 1);
	assert_non_null(strstr(sb_buf_cstr(&err), "row 4: altered"));
	free(sql);
	free(db);
	sb_buf_release(&out);
	sb_buf_release(&err);
}

/* INI with its own store and, if key is not NULL, [pdnd] audit_key_file = key. */
static char *ini_with_key(const char *name, const char *key)
{
	char *txt = th_read(INI, NULL), *path = sb_xasprintf("%s/%s.ini", T.dir, name);
	char *store = strstr(txt, "/store.db\n"), *pdnd = strstr(txt, "[pdnd]\n"), *ini;

	assert_non_null(store);
	assert_non_null(pdnd);
	assert_true(pdnd > store);
	*store = '\0';
	pdnd[0] = '\0';
	ini = sb_xasprintf("%s/%s.db\n%s[pdnd]\n%s%s%s%s", txt, name, store + strlen("/store.db\n"),
			   key ? "audit_key_file = " : "", key ? key : "", key ? "\n" : "",
			   pdnd + strlen("[pdnd]\n"));
	th_write_str(path, ini, 0600);
	free(ini);
	free(txt);
	return path;
}

/* "access trail head: rows=N hash=H" from verify's output. */
static void parse_head(const char *out, char rows[32], char hash[65])
{
	const char *p = strstr(out, "access trail head: rows=");

	assert_non_null(p);
	assert_int_equal(sscanf(p, "access trail head: rows=%31s hash=%64s", rows, hash), 2);
	assert_int_equal(strlen(hash), 64);
}

static void test_cli_pdnd__audit_seal_and_recorded_head(void **state)
{
	struct sb_buf out = SB_BUF_INIT(1u << 20), err = SB_BUF_INIT(1u << 20);
	char *key = sb_xasprintf("%s/audit.key", T.dir),
	     *shortkey = sb_xasprintf("%s/short.key", T.dir);
	char *ini = ini_with_key("sealed", key), *bad = ini_with_key("short", shortkey), *db, *sql;
	char rows[32], hash[65], more[32];
	sqlite3 *h = NULL;

	(void)state;
	th_write_str(key, "c2VuZC1icmlkZ2UgYXVkaXQga2V5IGZvciB0ZXN0cw==\n", 0600);
	th_write_str(shortkey, "too short\n", 0600);
	/* A key that cannot be used stops the command with the key's name. */
	assert_int_equal(run(&out, &err, "-c", bad, "audit", "verify", NULL), 2);
	assert_non_null(strstr(sb_buf_cstr(&err), "[pdnd] audit_key_file: shorter than 16 bytes"));
	th_write_str(shortkey, "a key long enough but readable by others\n", 0644);
	assert_int_equal(run(&out, &err, "-c", bad, "audit", "verify", NULL), 2);
	assert_non_null(strstr(sb_buf_cstr(&err), "audit_key_file"));
	assert_null(strstr(sb_buf_cstr(&out), "chain intact"));
	/* With the key and no seal yet, verify fails and says what to do. */
	assert_int_equal(run(&out, &err, "-c", ini, "audit", "verify", NULL), 1);
	assert_non_null(strstr(sb_buf_cstr(&err), "not sealed"));
	assert_non_null(strstr(sb_buf_cstr(&err), "audit seal"));
	assert_int_equal(run(&out, &err, "-c", ini, "audit", "seal", NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "access trail sealed: rows=0 hash=0000"));
	assert_int_equal(run(&out, &err, "-c", ini, "resolve", "RSSMRA80A01H501U", "--act",
			     "verbale 2026/21", "--operator", "vigile.rossi", NULL), 0);
	assert_int_equal(run(&out, &err, "-c", ini, "audit", "verify", NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "access trail seal: valid (audit key)"));
	assert_non_null(strstr(sb_buf_cstr(&out), "store audit seal: valid (audit key)"));
	parse_head(sb_buf_cstr(&out), rows, hash);
	/* The head recorded elsewhere still matches after more queries. */
	assert_int_equal(run(&out, &err, "-c", ini, "resolve", "BNCLCU75M45F205E", "--operator",
			     "vigile.rossi", NULL), 0);
	for (char *c = hash; *c; c++)      /* staff may copy it in upper case */
		*c = (char)(*c >= 'a' && *c <= 'f' ? *c - 'a' + 'A' : *c);
	assert_int_equal(run(&out, &err, "-c", ini, "audit", "verify", "--expect-rows", rows,
			     "--expect-head", hash, NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "matches the recorded head"));
	parse_head(sb_buf_cstr(&out), more, hash);
	assert_int_equal(run(&out, &err, "-c", ini, "audit", "verify", "--expect-rows", rows, NULL),
			 2);
	assert_int_equal(run(&out, &err, "-c", ini, "audit", "verify", "--expect-rows", rows,
			     "--expect-head", "abc", NULL), 2);
	assert_non_null(strstr(sb_buf_cstr(&err), "64 hex digits"));
	assert_int_equal(run(&out, &err, "-c", ini, "audit", "verify", "--expect-rows", "x",
			     "--expect-head", hash, NULL), 2);

	/* Someone holding the file cuts the last row and moves the head: the seal shows it. */
	db = sb_xasprintf("%s/sealed.db", T.dir);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	sql = sb_xasprintf("DROP TRIGGER pdnd_access_no_delete;"
			   " DROP TRIGGER pdnd_access_head_no_rewind;"
			   "DELETE FROM pdnd_access WHERE id = %s;"
			   "UPDATE pdnd_access_head SET rows = rows - 1,"
			   " hash = (SELECT hash FROM pdnd_access ORDER BY id DESC LIMIT 1)", more);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(run(&out, &err, "-c", ini, "audit", "verify", NULL), 1);
	assert_non_null(strstr(sb_buf_cstr(&err), "seal does not match"));
	/* The next query is refused rather than traced past the cut. */
	assert_int_not_equal(run(&out, &err, "-c", ini, "resolve", "VRDGPP62T10L219Z", "--operator",
				 "vigile.rossi", NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&err), "seal does not match"));
	/* The store's own trail cut at its end is reported too, beside the access trail. */
	free(sql);
	sql = sb_xasprintf("DROP TRIGGER audit_no_delete;"
			   "DELETE FROM audit WHERE id = (SELECT max(id) FROM audit)");
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(run(&out, &err, "-c", ini, "audit", "verify", NULL), 1);
	assert_non_null(strstr(sb_buf_cstr(&err), "store audit broken"));
	assert_non_null(strstr(sb_buf_cstr(&err), "(rows removed from the end)"));
	free(sql);
	free(db);
	free(bad);
	free(ini);
	free(shortkey);
	free(key);
	sb_buf_release(&out);
	sb_buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_pdnd__kid),
		cmocka_unit_test(test_cli_pdnd__token_shows_claims_never_the_token),
		cmocka_unit_test(test_cli_pdnd__resolve_and_audit),
		cmocka_unit_test(test_cli_pdnd__audit_seal_and_recorded_head),
	};

	return cmocka_run_group_tests_name("cli_pdnd", tests, setup, teardown);
}
