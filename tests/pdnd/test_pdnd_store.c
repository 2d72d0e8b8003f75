/*
 * pdnd/pdnd_store.c on a real store file: migrations, the hash-chained
 * access trail (append, verify, tampering by someone editing the file:
 * altered, removed and reordered rows), the report, the subject hash and
 * the results cache.
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
#include "svc_store.h"
#include "pdnd_store.h"
#include "th.h"

static const unsigned char KEY[32] = "0123456789abcdef0123456789abcde";

struct fx {
	char *dir;
	struct svc_store *store;
	sqlite3 *db;
};

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));
	struct sb_err err = SB_ERR_INIT;
	char *path;

	f->dir = th_tmpdir("pdnd-store");
	path = sb_xasprintf("%s/store.db", f->dir);
	if (svc_store_open(&f->store, path, 1000, &err) < 0 ||
	    pdnd_store_migrate(svc_store_db(f->store), &err) < 0) {
		free(path);
		return -1;
	}
	f->db = svc_store_db(f->store);
	free(path);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	svc_store_close(f->store);
	th_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static void append_rows(sqlite3 *db, int n)
{
	char subject[PDND_SUBJECT_HASH_SIZE];
	struct sb_err err = SB_ERR_INIT;

	pdnd_subject_hash(KEY, "RSSMRA80A01H501U", subject);
	for (int i = 0; i < n; i++) {
		struct pdnd_access a = {
			.operator_id = i % 2 ? "vigile.rossi" : "vigile.bianchi",
			.office = "polizia-municipale", .eservice = i % 3 ? "anpr-c030" : "inad",
			.purpose_id = "0c5b1a4e-3b8f-4f7e-9d3c-1a2b3c4d5e01",
			.act_ref = i == 2 ? NULL : "verbale 2026/1", .subject = subject,
			.outcome = i == 4 ? "refused" : "found", .correlation = "govway=x",
		};

		assert_int_equal(pdnd_access_append(db, &a, &err), 0);
	}
}

static void test_pdnd_store__migrate_is_idempotent_and_versioned(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *v = NULL;

	assert_int_equal(pdnd_store_migrate(f->db, &err), 0);
	assert_int_equal(svc_store_meta_get(f->store, "schema.pdnd", &v, &err), 0);
	assert_string_equal(v, "1");
	free(v);
	/* A file written by a newer send-bridge is refused, not misread. */
	exec_ok(f->db, "UPDATE meta SET value = '99' WHERE key = 'schema.pdnd'");
	assert_int_equal(pdnd_store_migrate(f->db, &err), SB_ECONFIG);
	assert_int_equal(err.code, SB_ECONFIG);
	assert_non_null(strstr(err.msg, "newer"));
	exec_ok(f->db, "UPDATE meta SET value = '1' WHERE key = 'schema.pdnd'");
}

static void test_pdnd_store__trail_appends_and_verifies(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	int64_t rows = -1;

	append_rows(f->db, 6);
	assert_int_equal(pdnd_access_verify(f->db, &rows, &err), 0);
	assert_int_equal(rows, 6);
	/* SQL cannot change or delete a row. */
	assert_int_not_equal(sqlite3_exec(f->db, "UPDATE pdnd_access SET outcome = 'x' WHERE id = 1",
					  NULL, NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(f->db, "DELETE FROM pdnd_access WHERE id = 1", NULL, NULL,
					  NULL), SQLITE_OK);
	/* Incomplete rows are refused. */
	assert_int_equal(pdnd_access_append(f->db, &(struct pdnd_access){ .operator_id = "x" }, &err),
			 SB_EINVAL);
	assert_true(err.msg[0]);
	assert_int_equal(pdnd_access_verify(f->db, &rows, &err), 0);
	assert_int_equal(rows, 6);
}

/* Tampering by someone who edits the file: the triggers are dropped first. */
static void tamper(void **state, const char *sql, const char *expect)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	int64_t rows = -1;

	append_rows(f->db, 5);
	assert_int_equal(pdnd_access_verify(f->db, NULL, &err), 0);
	exec_ok(f->db, "DROP TRIGGER pdnd_access_no_update; DROP TRIGGER pdnd_access_no_delete");
	exec_ok(f->db, sql);
	assert_int_equal(pdnd_access_verify(f->db, &rows, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_int_equal(rows, -1);
	if (!strstr(err.msg, expect))
		fail_msg("'%s' does not say '%s'", err.msg, expect);
}

static void test_pdnd_store__altered_row_detected(void **state)
{
	tamper(state, "UPDATE pdnd_access SET operator = 'someone.else' WHERE id = 3",
	       "row 3: altered");
}

static void test_pdnd_store__null_act_ref_replaced_detected(void **state)
{
	tamper(state, "UPDATE pdnd_access SET act_ref = '' WHERE id = 3", "row 3: altered");
}

static void test_pdnd_store__removed_row_detected(void **state)
{
	tamper(state, "DELETE FROM pdnd_access WHERE id = 2", "row 2 missing");
}

static void test_pdnd_store__reordered_rows_detected(void **state)
{
	tamper(state, "UPDATE pdnd_access SET id = 100 WHERE id = 2;"
		      "UPDATE pdnd_access SET id = 2 WHERE id = 3;"
		      "UPDATE pdnd_access SET id = 3 WHERE id = 100", "row 2");
}

static void test_pdnd_store__rehashed_row_detected(void **state)
{
	/* Even a forger who recomputes one row's hash breaks the link of the next. */
	tamper(state, "UPDATE pdnd_access SET outcome = 'found',"
		      " hash = '1111111111111111111111111111111111111111111111111111111111111111'"
		      " WHERE id = 2", "row 2");
}

static void test_pdnd_store__report(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *path = sb_xasprintf("%s/report.txt", f->dir), *txt;
	FILE *out;

	append_rows(f->db, 6);
	out = fopen(path, "w");
	assert_non_null(out);
	assert_int_equal(pdnd_access_report(f->db, sb_now() - 60, sb_now() + 60, out, &err), 0);
	fclose(out);
	txt = th_read(path, NULL);
	/* rows 1,3,5 (odd i) by rossi: i=1 c030, i=3 inad, i=5 c030 */
	assert_non_null(strstr(txt, "vigile.rossi"));
	assert_non_null(strstr(txt, "anpr-c030"));
	assert_non_null(strstr(txt, "queries not tied to an act"));
	assert_non_null(strstr(txt, "row 3 "));           /* i == 2 had no act */
	assert_null(strstr(txt, "RSSMRA80A01H501U"));
	free(txt);
	/* An empty period. */
	out = fopen(path, "w");
	assert_int_equal(pdnd_access_report(f->db, 0, 1, out, &err), 0);
	fclose(out);
	txt = th_read(path, NULL);
	assert_non_null(strstr(txt, "none"));
	free(txt);
	free(path);
}

/* Inside the caller's transaction the row commits, or rolls back, with the caller's work. */
static void test_pdnd_store__append_inside_a_transaction(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	int64_t rows = -1;

	append_rows(f->db, 1);
	assert_int_equal(svc_store_begin(f->store, &err), 0);
	append_rows(f->db, 2);
	svc_store_rollback(f->store);
	assert_int_equal(pdnd_access_verify(f->db, &rows, &err), 0);
	assert_int_equal(rows, 1);
	assert_int_equal(svc_store_begin(f->store, &err), 0);
	append_rows(f->db, 2);
	assert_int_equal(svc_store_commit(f->store, &err), 0);
	assert_int_equal(pdnd_access_verify(f->db, &rows, &err), 0);
	assert_int_equal(rows, 3);
}

static void test_pdnd_store__subject_hash_is_keyed(void **state)
{
	static const unsigned char other[32] = "another key of thirty-two bytes";
	char a[PDND_SUBJECT_HASH_SIZE], b[PDND_SUBJECT_HASH_SIZE], c[PDND_SUBJECT_HASH_SIZE];

	(void)state;
	pdnd_subject_hash(KEY, "RSSMRA80A01H501U", a);
	pdnd_subject_hash(KEY, "RSSMRA80A01H501U", b);
	pdnd_subject_hash(other, "RSSMRA80A01H501U", c);
	assert_int_equal(strlen(a), 64);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	pdnd_subject_hash(KEY, "BNCLCU75M45F205E", b);
	assert_string_not_equal(a, b);
}

static void test_pdnd_store__cache_ttl(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *v = NULL;

	assert_int_equal(pdnd_cache_get(f->db, "inad", "s1", 100, &v, &err), SB_ENOTFOUND);
	assert_int_equal(pdnd_cache_put(f->db, "inad", "s1", "{\"a\":1}", &err), 0);
	assert_int_equal(pdnd_cache_get(f->db, "inad", "s1", 100, &v, &err), 0);
	assert_string_equal(v, "{\"a\":1}");
	free(v);
	v = NULL;
	assert_int_equal(pdnd_cache_get(f->db, "anpr", "s1", 100, &v, &err), SB_ENOTFOUND);
	/* Older than max_age: a miss. */
	exec_ok(f->db, "UPDATE pdnd_cache SET fetched_at = fetched_at - 200");
	assert_int_equal(pdnd_cache_get(f->db, "inad", "s1", 100, &v, &err), SB_ENOTFOUND);
	assert_null(v);
	assert_int_equal(pdnd_cache_put(f->db, "inad", "s1", "{\"a\":2}", &err), 0);
	assert_int_equal(pdnd_cache_get(f->db, "inad", "s1", 100, &v, &err), 0);
	assert_string_equal(v, "{\"a\":2}");
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pdnd_store__migrate_is_idempotent_and_versioned,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__trail_appends_and_verifies, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__altered_row_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__null_act_ref_replaced_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__removed_row_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__reordered_rows_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__rehashed_row_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__append_inside_a_transaction, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__subject_hash_is_keyed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__cache_ttl, setup, teardown),
	};

	return cmocka_run_group_tests_name("pdnd_store", tests, NULL, NULL);
}
