/*
 * pdnd/pdnd_store.c on a real store file: migrations, the hash-chained
 * access trail (append, verify, tampering by someone editing the file:
 * altered, removed and reordered rows), its head and seal (rows cut from
 * the end, a chain recomputed without the audit key, a seal stripped, a
 * head recorded elsewhere, an older store migrated), the report, the
 * subject hash and the results cache.
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
#include "sb_crypto.h"
#include "sb_time.h"
#include "svc_store.h"
#include "pdnd_store.h"
#include "th.h"

static const unsigned char KEY[32] = "0123456789abcdef0123456789abcde";
/* The audit key, and another one (a forger's guess, or the wrong file configured). */
static const unsigned char AKEY[SB_AUDIT_KEY_SIZE] = "audit key of thirty-two bytes..";
static const unsigned char OTHER[SB_AUDIT_KEY_SIZE] = "not the audit key, 32 bytes long";

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

static void append_rows_key(sqlite3 *db, const unsigned char *key, int n)
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

		assert_int_equal(pdnd_access_append(db, key, &a, &err), 0);
	}
}

static void append_rows(sqlite3 *db, int n)
{
	append_rows_key(db, NULL, n);
}

static int append_one(sqlite3 *db, const unsigned char *key, struct sb_err *err)
{
	char subject[PDND_SUBJECT_HASH_SIZE];

	pdnd_subject_hash(KEY, "BNCLCU75M45F205E", subject);
	return pdnd_access_append(db, key, &(struct pdnd_access){
		.operator_id = "vigile.rossi", .office = "polizia-municipale",
		.eservice = "anpr-c030", .purpose_id = "p", .act_ref = "verbale 2026/2",
		.subject = subject, .outcome = "found" }, err);
}

static void expect_fail(int rc, const struct sb_err *err, int code, const char *says)
{
	assert_int_equal(rc, code);
	assert_int_equal(err->code, code);
	if (!strstr(err->msg, says))
		fail_msg("'%s' does not say '%s'", err->msg, says);
}

static void test_pdnd_store__migrate_is_idempotent_and_versioned(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *v = NULL;

	assert_int_equal(pdnd_store_migrate(f->db, &err), 0);
	assert_int_equal(svc_store_meta_get(f->store, "schema.pdnd", &v, &err), 0);
	assert_string_equal(v, "2");
	free(v);
	/* A file written by a newer send-bridge is refused, not misread. */
	exec_ok(f->db, "UPDATE meta SET value = '99' WHERE key = 'schema.pdnd'");
	assert_int_equal(pdnd_store_migrate(f->db, &err), SB_ECONFIG);
	assert_int_equal(err.code, SB_ECONFIG);
	assert_non_null(strstr(err.msg, "newer"));
	exec_ok(f->db, "UPDATE meta SET value = '2' WHERE key = 'schema.pdnd'");
}

static void test_pdnd_store__trail_appends_and_verifies(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head = { .rows = -1 };

	append_rows(f->db, 6);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 6);
	assert_int_equal(strlen(head.hash), 64);
	assert_false(head.sealed);
	assert_false(head.seal_checked);
	/* SQL cannot change or delete a row. */
	assert_int_not_equal(sqlite3_exec(f->db,
					  "UPDATE pdnd_access SET outcome = 'x' WHERE id = 1",
					  NULL, NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(f->db, "DELETE FROM pdnd_access WHERE id = 1", NULL, NULL,
					  NULL), SQLITE_OK);
	/* Incomplete rows are refused. */
	assert_int_equal(pdnd_access_append(f->db, NULL,
					    &(struct pdnd_access){ .operator_id = "x" },
					    &err), SB_EINVAL);
	assert_true(err.msg[0]);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 6);
	/* Nor can the head be deleted or moved back. */
	assert_int_not_equal(sqlite3_exec(f->db, "DELETE FROM pdnd_access_head", NULL, NULL, NULL),
			     SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(f->db, "UPDATE pdnd_access_head SET rows = 5", NULL, NULL,
					  NULL), SQLITE_OK);
}

/* Tampering by someone who edits the file: the triggers are dropped first. */
static void tamper(void **state, const char *sql, const char *expect)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head = { .rows = -1 };

	append_rows(f->db, 5);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, NULL, &err), 0);
	exec_ok(f->db, "DROP TRIGGER pdnd_access_no_update; DROP TRIGGER pdnd_access_no_delete;"
		       "DROP TRIGGER pdnd_access_head_no_delete;"
		       "DROP TRIGGER pdnd_access_head_no_rewind");
	exec_ok(f->db, sql);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &head, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_int_equal(head.rows, -1);
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

static void test_pdnd_store__deleted_head_detected(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;

	tamper(state, "DELETE FROM pdnd_access_head", "head is missing");
	expect_fail(append_one(f->db, NULL, &err), &err, SB_EINVAL, "head is missing");
	expect_fail(pdnd_access_ready(f->db, NULL, &err), &err, SB_EINVAL, "head is missing");
}

static void test_pdnd_store__rehashed_row_detected(void **state)
{
	/* Even a forger who recomputes one row's hash breaks the link of the next. */
	tamper(state, "UPDATE pdnd_access SET outcome = 'found',"
		      " hash = '1111111111111111111111111111111111111111111111111111111111111111'"
		      " WHERE id = 2", "row 2");
}

static void drop_triggers(sqlite3 *db)
{
	exec_ok(db, "DROP TRIGGER pdnd_access_no_update; DROP TRIGGER pdnd_access_no_delete;"
		    "DROP TRIGGER pdnd_access_head_no_delete;"
		    " DROP TRIGGER pdnd_access_head_no_rewind");
}

/* Move the head to the last row left, as someone editing the file would after cutting. */
static void move_head_to_last_row(sqlite3 *db)
{
	exec_ok(db, "UPDATE pdnd_access_head SET rows = (SELECT count(*) FROM pdnd_access),"
		    " hash = (SELECT hash FROM pdnd_access ORDER BY id DESC LIMIT 1)");
}

/*
 * What a forger holding the file does: change a row, then recompute every hash from
 * the format in pdnd_store.c (sha256 of prev|id|at|len:field...|-, in hex) and move
 * the head's hash. Written here from the format, not by calling the code under test.
 */
static void forge_chain(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL, *up = NULL;
	char prev[65] = "0000000000000000000000000000000000000000000000000000000000000000";

	exec_ok(db, sql);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, at, operator, office, eservice,"
					    " purpose_id, act_ref, subject, outcome, correlation"
					    " FROM pdnd_access ORDER BY id", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE pdnd_access SET prev_hash = ?1,"
					    " hash = ?2 WHERE id = ?3", -1, &up, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct sb_buf b = SB_BUF_INIT(1u << 16), hex = SB_BUF_INIT(65);
		unsigned char d[SB_SHA256_LEN];

		sb_buf_addf(&b, "%s|%lld|%lld", prev, (long long)sqlite3_column_int64(st, 0),
			    (long long)sqlite3_column_int64(st, 1));
		for (int i = 2; i < 11; i++) {
			const char *v = i < 10 ? (const char *)sqlite3_column_text(st, i) : NULL;

			if (v)
				sb_buf_addf(&b, "|%zu:%s", strlen(v), v);
			else
				sb_buf_adds(&b, "|-");
		}
		sb_sha256(b.buf, b.len, d);
		sb_hex_encode(d, sizeof(d), &hex);
		sqlite3_bind_text(up, 1, prev, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(up, 2, hex.buf, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(up, 3, sqlite3_column_int64(st, 0));
		assert_int_equal(sqlite3_step(up), SQLITE_DONE);
		sqlite3_reset(up);
		snprintf(prev, sizeof(prev), "%s", hex.buf);
		sb_buf_release(&b);
		sb_buf_release(&hex);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(up);
	move_head_to_last_row(db);
}

static void test_pdnd_store__tail_cut_detected(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head = { .rows = -1 };

	append_rows(f->db, 5);
	drop_triggers(f->db);
	exec_ok(f->db, "DELETE FROM pdnd_access WHERE id >= 4");
	/* Rows 1-3 still form a valid chain: only the head shows the cut. */
	expect_fail(pdnd_access_verify(f->db, NULL, NULL, &head, &err), &err, SB_EINVAL,
		    "3 rows but the head records 5 (rows removed from the end)");
	assert_int_equal(head.rows, -1);
	/* Nor is the trail extended past the cut, which would bury it under a new head. */
	expect_fail(append_one(f->db, NULL, &err), &err, SB_EINVAL, "removed from the end");
	expect_fail(pdnd_access_seal(f->db, AKEY, NULL, &err), &err, SB_EINVAL,
		    "removed from the end");
}

static void test_pdnd_store__tail_cut_with_head_moved_needs_the_seal(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head = { .rows = -1 };

	assert_int_equal(pdnd_access_seal(f->db, AKEY, &head, &err), 0);
	assert_int_equal(head.rows, 0);
	append_rows_key(f->db, AKEY, 5);
	drop_triggers(f->db);
	exec_ok(f->db, "DELETE FROM pdnd_access WHERE id >= 4");
	move_head_to_last_row(f->db);
	/* Without the key the cut cannot be seen, and verify says the seal was not checked. */
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 3);
	assert_true(head.sealed);
	assert_false(head.seal_checked);
	head.rows = -1;
	expect_fail(pdnd_access_verify(f->db, AKEY, NULL, &head, &err), &err, SB_EINVAL,
		    "seal does not match the audit key");
	assert_int_equal(head.rows, -1);
	expect_fail(append_one(f->db, AKEY, &err), &err, SB_EINVAL, "seal does not match");
	expect_fail(append_one(f->db, NULL, &err), &err, SB_ECONFIG, "audit_key_file");
	expect_fail(pdnd_access_seal(f->db, AKEY, NULL, &err), &err, SB_EINVAL, "seal");
}

static void test_pdnd_store__chain_recomputed_without_the_key_detected(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head = { .rows = -1 }, before;

	assert_int_equal(pdnd_access_seal(f->db, AKEY, NULL, &err), 0);
	append_rows_key(f->db, AKEY, 5);
	assert_int_equal(pdnd_access_verify(f->db, AKEY, NULL, &before, &err), 0);
	assert_true(before.seal_checked);
	drop_triggers(f->db);
	forge_chain(f->db, "UPDATE pdnd_access SET operator = 'vigile.bianchi' WHERE id = 2");
	/* The forgery is a valid chain with a matching head: the seal is all that is left. */
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 5);
	assert_string_not_equal(head.hash, before.hash);
	expect_fail(pdnd_access_verify(f->db, AKEY, NULL, &head, &err), &err, SB_EINVAL,
		    "recomputed without the key");
	/* A forger who also strips the seal is told apart from a trail never sealed. */
	exec_ok(f->db, "UPDATE pdnd_access_head SET mac = NULL");
	expect_fail(pdnd_access_verify(f->db, AKEY, NULL, &head, &err), &err, SB_EINVAL,
		    "not sealed");
	assert_non_null(strstr(err.msg, "seal was removed"));
	/* A forger who seals with a key of their own fails too. */
	assert_int_equal(pdnd_access_seal(f->db, OTHER, NULL, &err), 0);
	expect_fail(pdnd_access_verify(f->db, AKEY, NULL, &head, &err), &err, SB_EINVAL,
		    "seal does not match");
	/* And a head recorded before the forgery shows it without any key. */
	expect_fail(pdnd_access_verify(f->db, NULL, &before, &head, &err), &err, SB_EINVAL,
		    "row 5 has another hash");
}

static void test_pdnd_store__seal(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head = { .rows = -1 };

	/* With a key, an unsealed head is an error, even on an empty trail. */
	expect_fail(pdnd_access_verify(f->db, AKEY, NULL, &head, &err), &err, SB_EINVAL,
		    "audit seal");
	/* Appending with the key does not seal: sealing is a deliberate act. */
	assert_int_equal(append_one(f->db, AKEY, &err), 0);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &head, &err), 0);
	assert_false(head.sealed);
	assert_int_equal(pdnd_access_seal(f->db, AKEY, &head, &err), 0);
	assert_int_equal(head.rows, 1);
	assert_true(head.seal_checked);
	append_rows_key(f->db, AKEY, 3);
	assert_int_equal(pdnd_access_verify(f->db, AKEY, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 4);
	assert_true(head.sealed);
	assert_true(head.seal_checked);
	/* Sealing again changes nothing; another key is refused, to seal or to verify. */
	assert_int_equal(pdnd_access_seal(f->db, AKEY, &head, &err), 0);
	assert_int_equal(head.rows, 4);
	expect_fail(pdnd_access_seal(f->db, OTHER, NULL, &err), &err, SB_EINVAL,
		    "not the key that sealed it");
	expect_fail(pdnd_access_verify(f->db, OTHER, NULL, NULL, &err), &err, SB_EINVAL,
		    "seal does not match");
	/* A sealed trail is not extended without its key. */
	expect_fail(append_one(f->db, NULL, &err), &err, SB_ECONFIG, "needs [pdnd] audit_key_file");
	assert_int_equal(pdnd_access_verify(f->db, AKEY, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 4);
}

static void test_pdnd_store__recorded_head(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head rec, head, bad;

	append_rows(f->db, 3);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &rec, &err), 0);
	append_rows(f->db, 2);
	/* The trail grew since the record: row 3 still carries the recorded hash. */
	assert_int_equal(pdnd_access_verify(f->db, NULL, &rec, &head, &err), 0);
	assert_int_equal(head.rows, 5);
	bad = rec;
	bad.hash[10] = bad.hash[10] == 'a' ? 'b' : 'a';
	expect_fail(pdnd_access_verify(f->db, NULL, &bad, &head, &err), &err, SB_EINVAL,
		    "recorded head: row 3 has another hash");
	bad = head;
	bad.rows = 9;
	expect_fail(pdnd_access_verify(f->db, NULL, &bad, &head, &err), &err, SB_EINVAL,
		    "5 rows, fewer than the 9 of the recorded head");
	bad = (struct pdnd_access_head){ .rows = 0 };
	memset(bad.hash, '0', 64);
	assert_int_equal(pdnd_access_verify(f->db, NULL, &bad, &head, &err), 0);
	bad.hash[0] = '1';
	expect_fail(pdnd_access_verify(f->db, NULL, &bad, &head, &err), &err, SB_EINVAL,
		    "0 rows");
	/* A cut with the head moved, unseen without the key, is seen against the record. */
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &rec, &err), 0);
	drop_triggers(f->db);
	exec_ok(f->db, "DELETE FROM pdnd_access WHERE id = 5");
	move_head_to_last_row(f->db);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &head, &err), 0);
	expect_fail(pdnd_access_verify(f->db, NULL, &rec, &head, &err), &err, SB_EINVAL,
		    "4 rows, fewer than the 5");
}

/* A store written before the head existed: schema 1, rows and no pdnd_access_head. */
static void make_v1(sqlite3 *db)
{
	exec_ok(db, "DROP TRIGGER pdnd_access_head_no_delete;"
		    "DROP TRIGGER pdnd_access_head_no_rewind; DROP TABLE pdnd_access_head;"
		    "UPDATE meta SET value = '1' WHERE key = 'schema.pdnd'");
}

static void test_pdnd_store__old_store_migrates(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head = { .rows = -1 }, v1;
	char *v = NULL;

	append_rows(f->db, 4);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &v1, &err), 0);
	make_v1(f->db);
	assert_int_equal(pdnd_store_migrate(f->db, &err), 0);
	assert_int_equal(svc_store_meta_get(f->store, "schema.pdnd", &v, &err), 0);
	assert_string_equal(v, "2");
	free(v);
	/* The old rows verify, and the head starts at their end, unsealed. */
	assert_int_equal(pdnd_access_verify(f->db, NULL, &v1, &head, &err), 0);
	assert_int_equal(head.rows, 4);
	assert_string_equal(head.hash, v1.hash);
	assert_false(head.sealed);
	append_rows(f->db, 1);
	assert_int_equal(pdnd_access_seal(f->db, AKEY, &head, &err), 0);
	assert_int_equal(head.rows, 5);
	append_rows_key(f->db, AKEY, 1);
	assert_int_equal(pdnd_access_verify(f->db, AKEY, &v1, &head, &err), 0);
	assert_int_equal(head.rows, 6);
	assert_true(head.seal_checked);
}

static void test_pdnd_store__old_empty_store_migrates(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head = { .rows = -1 };

	make_v1(f->db);
	assert_int_equal(pdnd_store_migrate(f->db, &err), 0);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 0);
	assert_int_equal(strspn(head.hash, "0"), 64);
	append_rows(f->db, 2);
	assert_int_equal(pdnd_access_verify(f->db, NULL, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 2);
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
	struct pdnd_access_head head = { .rows = -1 };

	append_rows(f->db, 1);
	assert_int_equal(pdnd_access_seal(f->db, AKEY, NULL, &err), 0);
	assert_int_equal(svc_store_begin(f->store, &err), 0);
	append_rows_key(f->db, AKEY, 2);
	svc_store_rollback(f->store);
	/* The head rolled back with the rows. */
	assert_int_equal(pdnd_access_verify(f->db, AKEY, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 1);
	assert_int_equal(svc_store_begin(f->store, &err), 0);
	append_rows_key(f->db, AKEY, 2);
	assert_int_equal(svc_store_commit(f->store, &err), 0);
	assert_int_equal(pdnd_access_verify(f->db, AKEY, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 3);
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
		cmocka_unit_test_setup_teardown(
			test_pdnd_store__migrate_is_idempotent_and_versioned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__trail_appends_and_verifies, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__altered_row_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__null_act_ref_replaced_detected,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__removed_row_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__reordered_rows_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__deleted_head_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__rehashed_row_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__tail_cut_detected,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_pdnd_store__tail_cut_with_head_moved_needs_the_seal, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_pdnd_store__chain_recomputed_without_the_key_detected,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__seal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__recorded_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__old_store_migrates,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_store__old_empty_store_migrates, setup,
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
