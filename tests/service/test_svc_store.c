/*
 * The SQLite store (service/svc_store.c) on real files: migrations from an
 * empty file and from the previous schema version, refusal of a newer file,
 * all-or-nothing act insertion, conditional state changes, the installation
 * key, the audit chain, and many writers at once (group commit, busy waits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "svc_act.h"
#include "svc_store.h"
#include "th.h"

struct fx {
	char *dir;
	char *db;
};

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));

	f->dir = th_tmpdir("store");
	f->db = sb_xasprintf("%s/sb.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	th_rmrf(f->dir);
	free(f->dir);
	free(f->db);
	free(f);
	return 0;
}

static int64_t scalar(struct svc_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_prepare_v2(svc_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static struct svc_act *load_sample(const char *name)
{
	struct sb_err err = SB_ERR_INIT;
	struct svc_act *a = NULL;
	char *rel = sb_xasprintf("acts/%s", name), *dir = th_fixture(rel);

	if (svc_act_load(&a, dir, true, NULL, &err) != 0)
		fail_msg("sample %s: %s", name, err.msg);
	free(rel);
	free(dir);
	return a;
}

static void test_svc_store__fresh_file_is_latest_version(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(svc_store_version(s), SVC_STORE_VERSION);
	assert_int_equal(scalar(s, "PRAGMA user_version"), SVC_STORE_VERSION);
	assert_int_equal(scalar(s, "PRAGMA foreign_keys"), 1);
	assert_int_equal(scalar(s, "SELECT count(*) FROM sqlite_master WHERE name IN "
				"('acts','recipients','documents','notifications','events',"
				"'receipts','registrations','audit','meta')"), 9);
	svc_store_close(s);
	/* WAL mode is persistent in the file */
	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	{
		sqlite3_stmt *st = NULL;

		sqlite3_prepare_v2(svc_store_db(s), "PRAGMA journal_mode", -1, &st, NULL);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
	}
	svc_store_close(s);
}

static void test_svc_store__migrates_previous_version_keeping_data(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct svc_act *a = load_sample("fine-pagopa");
	enum svc_state st;
	int64_t id = 0, id2 = 0;

	/* A version-1 file with an act in it, as an older send-bridge left it. */
	assert_int_equal(svc_store_open_version(&s, f->db, 1000, 1, &err), 0);
	assert_int_equal(scalar(s, "PRAGMA user_version"), 1);
	assert_int_equal(scalar(s, "SELECT count(*) FROM sqlite_master WHERE name = 'audit'"), 0);
	assert_int_equal(sqlite3_exec(svc_store_db(s),
				      "INSERT INTO acts (act_id, office, subject, state, manifest,"
				      " created_at, updated_at) VALUES ('old-act', 'tributi', 's',"
				      " 'submitted', '{}', 1, 1)", NULL, NULL, NULL), SQLITE_OK);
	svc_store_close(s);

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(scalar(s, "PRAGMA user_version"), SVC_STORE_VERSION);
	assert_int_equal(svc_store_act_find(s, "old-act", &id, &st, &err), 0);
	assert_int_equal(st, SVC_SUBMITTED);
	/* version 2 brought the audit trail: new acts are recorded with it */
	assert_int_equal(svc_store_act_insert(s, a, "{}", &id2, &err), 0);
	assert_true(scalar(s, "SELECT count(*) FROM audit") >= 1);
	/*
	 * Version 4 wrote the CHECKs on state and kind as comparisons: the same
	 * values pass and fail, and the file is sound, for this connection and a new one.
	 */
	assert_int_equal(scalar(s, "SELECT count(*) FROM sqlite_master"
				" WHERE sql LIKE '%state IN (%' OR sql LIKE '%kind IN (%'"), 0);
	for (int pass = 0; pass < 2; pass++) {
		sqlite3 *db = svc_store_db(s);

		assert_int_equal(sqlite3_exec(db, "UPDATE acts SET state = 'delivering'"
					      " WHERE act_id = 'old-act'", NULL, NULL, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "UPDATE acts SET state = 'lost'"
					      " WHERE act_id = 'old-act'", NULL, NULL, NULL),
				 SQLITE_CONSTRAINT);
		assert_int_equal(sqlite3_exec(db, "UPDATE documents SET kind = 'pagopa'"
					      " WHERE kind = 'pagopa'", NULL, NULL, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "UPDATE documents SET kind = 'other'", NULL, NULL,
					      NULL), SQLITE_CONSTRAINT);
		assert_int_equal(scalar(s, "SELECT count(*) FROM pragma_integrity_check "
					   "WHERE integrity_check <> 'ok'"), 0);
		svc_store_close(s);
		assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	}
	svc_store_close(s);
	svc_act_free(a);
}

static void test_svc_store__newer_file_refused(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), SB_ECONFIG);
	assert_null(s);
	assert_non_null(strstr(err.msg, "newer than this send-bridge"));
}

static void test_svc_store__insert_is_all_or_nothing(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct svc_act *a = load_sample("imu-assessment");
	int64_t id = 0;
	char *saved;

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	/* Break the second document after the act row would be written: its sha256 is invalid. */
	saved = sb_xstrdup(a->documents[1].file.sha256);
	a->documents[1].file.sha256[10] = '\0';
	assert_int_equal(svc_store_act_insert(s, a, "{}", &id, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_non_null(strstr(err.msg, "recording document"));
	assert_int_equal(id, 0);
	/* nothing of it stayed: no act, no recipient, no document, no audit row */
	assert_int_equal(svc_store_act_find(s, "imu-assessment", NULL, NULL, &err), SB_ENOTFOUND);
	assert_int_equal(scalar(s, "SELECT count(*) FROM recipients"), 0);
	assert_int_equal(scalar(s, "SELECT count(*) FROM documents"), 0);
	assert_int_equal(scalar(s, "SELECT count(*) FROM audit"), 0);

	memcpy(a->documents[1].file.sha256, saved, 65);
	assert_int_equal(svc_store_act_insert(s, a, "{}", &id, &err), 0);
	assert_true(id > 0);
	assert_int_equal(scalar(s, "SELECT count(*) FROM documents"), 2);
	assert_int_equal(scalar(s, "SELECT count(*) FROM recipients"), 1);
	/* the same act twice is refused, and the first stays */
	assert_int_equal(svc_store_act_insert(s, a, "{}", &id, &err), SB_EINVAL);
	assert_int_equal(scalar(s, "SELECT count(*) FROM acts"), 1);
	free(saved);
	svc_act_free(a);
	svc_store_close(s);
}

static void test_svc_store__transitions_are_conditional(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct svc_act *a = load_sample("fine-pec");
	enum svc_state st;
	int64_t id = 0, n = 0;

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(svc_store_act_insert(s, a, "{}", &id, &err), 0);
	assert_int_equal(svc_store_act_transition(s, id, SVC_RECEIVED, SVC_CHECKED, NULL, &err), 0);
	/* a second worker that still thinks the act is received must not move it */
	assert_int_equal(svc_store_act_transition(s, id, SVC_RECEIVED, SVC_REJECTED, "x", &err),
			 SB_EINVAL);
	assert_non_null(strstr(err.msg, "not in state received"));
	assert_int_equal(svc_store_act_find(s, "fine-pec", NULL, &st, &err), 0);
	assert_int_equal(st, SVC_CHECKED);
	assert_int_equal(svc_store_act_count(s, SVC_CHECKED, &n, &err), 0);
	assert_int_equal(n, 1);
	/* the schema itself refuses a state that does not exist */
	assert_int_not_equal(sqlite3_exec(svc_store_db(s), "UPDATE acts SET state = 'lost'", NULL,
					  NULL, NULL), SQLITE_OK);
	svc_act_free(a);
	svc_store_close(s);
}

static void test_svc_store__pii_key_is_stable(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	unsigned char k1[32], k2[32], zero[32] = { 0 };

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(svc_store_pii_key(s, k1, &err), 0);
	svc_store_close(s);
	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(svc_store_pii_key(s, k2, &err), 0);
	assert_memory_equal(k1, k2, 32);
	assert_memory_not_equal(k1, zero, 32);
	svc_store_close(s);
}

static void test_svc_store__audit_chain_detects_tampering(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	sqlite3 *db;
	struct svc_store_audit_head head;

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	db = svc_store_db(s);
	for (int i = 0; i < 5; i++) {
		char subject[16];

		snprintf(subject, sizeof(subject), "act#%d", i);
		assert_int_equal(svc_store_begin(s, &err), 0);
		assert_int_equal(svc_store_audit(s, "operator", "tributi", "test", subject, NULL,
						 &err), 0);
		assert_int_equal(svc_store_commit(s, &err), 0);
	}
	assert_int_equal(svc_store_audit_verify(s, &head, &err), 0);
	assert_int_equal(head.rows, 5);
	/* the triggers refuse changes and deletions */
	assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET actor = 'x' WHERE id = 2", NULL,
					  NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit WHERE id = 2", NULL, NULL, NULL),
			     SQLITE_OK);
	/* someone with the file drops the triggers and edits a row: the chain shows it */
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER audit_no_update;"
				      " DROP TRIGGER audit_no_delete;"
				      "UPDATE audit SET actor = 'intruder' WHERE id = 3",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "row 3: altered"));
	assert_int_equal(sqlite3_exec(db, "UPDATE audit SET actor = 'operator' WHERE id = 3;"
				      "DELETE FROM audit WHERE id = 2", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "row 2 missing"));
	svc_store_close(s);
}

static const unsigned char AKEY[SB_AUDIT_KEY_SIZE] = "store audit key, thirty-two b...";
static const unsigned char OTHER_KEY[SB_AUDIT_KEY_SIZE] = "not the store audit key, 32 b...";

static void audit_rows(struct svc_store *s, int n)
{
	struct sb_err err = SB_ERR_INIT;

	for (int i = 0; i < n; i++) {
		char subject[16];

		snprintf(subject, sizeof(subject), "act#%d", i);
		assert_int_equal(svc_store_audit(s, "operator", i % 2 ? NULL : "tributi", "test",
						 subject, NULL, &err), 0);
	}
}

/* What someone holding the file runs, on a connection of its own, past the triggers. */
static void attack(const char *path, const char *sql)
{
	sqlite3 *h = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("attack: %s", msg);
	sqlite3_close(h);
}

/* The unkeyed hash every row had before schema 5: what anyone can recompute. */
static void unkeyed_hash(const char *prev, int64_t id, int64_t at, const char *const f[5],
			 char out[65])
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT), hex = SB_BUF_INIT(65);
	unsigned char d[SB_SHA256_LEN];

	sb_buf_addf(&b, "%zu:%s|%lld|%lld", strlen(prev), prev, (long long)id, (long long)at);
	for (int i = 0; i < 5; i++)
		sb_buf_addf(&b, "|%zu:%s", f[i] ? strlen(f[i]) : 0, f[i] ? f[i] : "");
	sb_sha256(b.buf, b.len, d);
	sb_hex_encode(d, sizeof(d), &hex);
	memcpy(out, hex.buf, 65);
	sb_buf_release(&b);
	sb_buf_release(&hex);
}

/*
 * Rewrite rows from..last of the file at path with actor, recomputing every
 * unkeyed hash and link and the head's hash, as an attacker without the key
 * would: the best that can be done with SQL and SHA-256.
 */
static void rewrite_unkeyed(const char *path, int64_t from, const char *actor)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL, *up = NULL;
	char prev[65];

	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "DROP TRIGGER IF EXISTS audit_no_update",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT id, at, actor, office, action, subject,"
					    " detail, prev_hash FROM audit WHERE id >= ?1"
					    " ORDER BY id", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "UPDATE audit SET actor = ?1, prev_hash = ?2,"
					    " hash = ?3 WHERE id = ?4", -1, &up, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, from);
	prev[0] = '\0';
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const char *f[5] = { actor, (const char *)sqlite3_column_text(st, 3),
				     (const char *)sqlite3_column_text(st, 4),
				     (const char *)sqlite3_column_text(st, 5),
				     (const char *)sqlite3_column_text(st, 6) };
		char hash[65];

		if (!prev[0])
			snprintf(prev, sizeof(prev), "%s",
				 (const char *)sqlite3_column_text(st, 7));
		unkeyed_hash(prev, id, sqlite3_column_int64(st, 1), f, hash);
		sqlite3_bind_text(up, 1, actor, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(up, 2, prev, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(up, 3, hash, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(up, 4, id);
		assert_int_equal(sqlite3_step(up), SQLITE_DONE);
		sqlite3_reset(up);
		memcpy(prev, hash, sizeof(prev));
	}
	sqlite3_finalize(st);
	sqlite3_finalize(up);
	assert_int_equal(sqlite3_exec(h, "DROP TRIGGER IF EXISTS audit_head_stays_sealed",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "UPDATE audit_head SET hash = ?1", -1, &up, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(up, 1, prev, -1, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(up), SQLITE_DONE);
	sqlite3_finalize(up);
	sqlite3_close(h);
}

static void test_svc_store__audit_rows_cut_from_the_end_show(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct svc_store_audit_head head;

	/* Unsealed (no key): the head alone shows rows deleted from the end. */
	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	audit_rows(s, 6);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), 0);
	assert_false(head.sealed);
	attack(f->db, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id >= 5");
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg,
			       "4 rows but the head records 6 (rows removed from the end)"));
	svc_store_close(s);
}

static void test_svc_store__audit_cut_with_the_head_moved_back_shows_with_the_key(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct svc_store_audit_head head;

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	audit_rows(s, 3);
	assert_int_equal(svc_store_audit_key(s, AKEY, &err), 0);
	assert_int_equal(svc_store_audit_seal(s, &head, &err), 0);
	assert_int_equal(head.keyed_from, 4);     /* row 4 records the sealing */
	audit_rows(s, 4);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), 0);
	assert_true(head.seal_checked);
	assert_int_equal(head.rows, 8);
	/*
	 * Cut rows 7 and 8, and move the head back to row 6: all anyone can do
	 * without the key, since row 6 carries no seal.
	 */
	attack(f->db, "DROP TRIGGER audit_no_delete; DROP TRIGGER audit_head_no_rewind;"
	       "DELETE FROM audit WHERE id >= 7;"
	       "UPDATE audit_head SET last_id = 6, hash = (SELECT hash FROM audit WHERE id = 6)");
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "store audit seal does not match the audit key"));
	/* Rows written after the cut do not bless it: each covers the head's seal. */
	audit_rows(s, 1);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "row 7: altered (its MAC does not match the audit key"));
	/* Without the key, the keyed rows cannot be checked, and verify says so. */
	svc_store_close(s);
	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(svc_store_audit_key(s, NULL, &err), SB_ECONFIG);
	assert_non_null(strstr(err.msg, "needs [pdnd] audit_key_file"));
	assert_int_equal(svc_store_audit(s, "operator", NULL, "test", NULL, NULL, &err),
			 SB_ECONFIG);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), 0);
	assert_true(head.sealed);
	assert_false(head.seal_checked);
	assert_int_equal(head.unchecked, 4);
	svc_store_close(s);
}

static void test_svc_store__audit_row_rewritten_without_the_key_shows(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct svc_store_audit_head head;

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(svc_store_audit_key(s, AKEY, &err), 0);
	assert_int_equal(svc_store_audit_seal(s, NULL, &err), 0);
	audit_rows(s, 5);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), 0);
	assert_true(head.seal_checked);
	/* Row 3 and all after it rewritten, links and head made to agree. */
	rewrite_unkeyed(f->db, 3, "intruder");
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "row 3: altered (its MAC does not match the audit key"));
	/* ... and the seal stripped, to pass the rows off as never keyed. */
	attack(f->db, "UPDATE audit_head SET keyed_from = NULL, seal = NULL");
	rewrite_unkeyed(f->db, 1, "intruder");
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "store audit is not sealed"));
	/* Another key is no key: the seal does not match. */
	assert_int_equal(svc_store_audit_key(s, OTHER_KEY, &err), 0);
	/* what a careless operator does */
	assert_int_equal(svc_store_audit_seal(s, NULL, &err), 0);
	assert_int_equal(svc_store_audit_key(s, AKEY, &err), 0);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "row 7: altered"));
	svc_store_close(s);
}

static void test_svc_store__audit_of_a_version_4_store_verifies_and_seals(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct svc_store_audit_head head;
	sqlite3_stmt *st = NULL;
	char prev[65] = SB_AUDIT_GENESIS;

	/* Three rows as the previous schema wrote them: unkeyed, no head. */
	assert_int_equal(svc_store_open_version(&s, f->db, 1000, 4, &err), 0);
	assert_int_equal(scalar(s, "SELECT count(*) FROM sqlite_master"
				" WHERE name = 'audit_head'"), 0);
	assert_int_equal(sqlite3_prepare_v2(svc_store_db(s),
					    "INSERT INTO audit (id, at, actor, office,"
					    " action, subject, detail, prev_hash, hash)"
					    " VALUES (?1, 1700000000, 'send-bridge', ?2,"
					    " 'act.state', ?3, 'received->checked', ?4, ?5)",
					    -1, &st, NULL), SQLITE_OK);
	for (int64_t id = 1; id <= 3; id++) {
		char subject[32], hash[65];
		const char *fields[5] = { "send-bridge", id == 2 ? "tributi" : NULL, "act.state",
					  subject, "received->checked" };

		snprintf(subject, sizeof(subject), "act#%lld", (long long)id);
		unkeyed_hash(prev, id, 1700000000, fields, hash);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, fields[1], -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, subject, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, prev, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 5, hash, -1, SQLITE_TRANSIENT);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
		memcpy(prev, hash, sizeof(prev));
	}
	sqlite3_finalize(st);
	svc_store_close(s);

	/* Migrated: the old chain verifies as it was, and grows. */
	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(scalar(s, "PRAGMA user_version"), SVC_STORE_VERSION);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), 0);
	assert_int_equal(head.rows, 3);
	assert_string_equal(head.hash, prev);
	assert_false(head.sealed);
	audit_rows(s, 2);
	/* Sealing anchors them under the key, with a row saying so. */
	assert_int_equal(svc_store_audit_key(s, AKEY, &err), 0);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "audit seal"));
	assert_int_equal(svc_store_audit_seal(s, &head, &err), 0);
	assert_int_equal(head.rows, 6);
	assert_int_equal(head.keyed_from, 6);
	assert_true(head.seal_checked);
	assert_int_equal(scalar(s, "SELECT count(*) FROM audit"
				" WHERE id = 6 AND action = 'audit.sealed'"
				" AND detail LIKE 'rows 1-5 chained without a key%'"), 1);
	assert_int_equal(svc_store_audit_seal(s, &head, &err), 0);      /* once is enough */
	assert_int_equal(head.rows, 6);
	audit_rows(s, 2);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), 0);
	assert_true(head.seal_checked);
	/* The unkeyed rows are under the key now: one rewritten with its links shows. */
	rewrite_unkeyed(f->db, 2, "intruder");
	assert_int_equal(svc_store_audit_verify(s, &head, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "row 6: altered"));
	svc_store_close(s);
}

#define WRITERS 8
#define WRITES 100

struct writer {
	const char *db;
	int id;
	int failures;
	bool shared;
};

/* Each writer: its own connection (or the shared one), WRITES transactions of two rows each. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;

	if ((w->shared ? svc_store_open_shared(&s, w->db, 10000, &err) :
			 svc_store_open(&s, w->db, 10000, &err)) != 0) {
		w->failures = WRITES;
		return NULL;
	}
	for (int i = 0; i < WRITES; i++) {
		char k1[64], k2[64];

		snprintf(k1, sizeof(k1), "w%d.%d.a", w->id, i);
		snprintf(k2, sizeof(k2), "w%d.%d.b", w->id, i);
		if (svc_store_begin(s, &err) != 0 || svc_store_meta_set(s, k1, "1", &err) != 0 ||
		    svc_store_meta_set(s, k2, "2", &err) != 0 || svc_store_commit(s, &err) != 0) {
			svc_store_rollback(s);
			w->failures++;
		}
	}
	svc_store_close(s);
	return NULL;
}

/*
 * WRITERS threads at once; then a fresh private connection sees every row
 * (committed, not just cached) and the file is sound.
 */
static void run_writers(struct fx *f, bool shared)
{
	struct sb_err err = SB_ERR_INIT;
	struct writer w[WRITERS];
	pthread_t t[WRITERS];
	struct svc_store *s = NULL;

	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ f->db, i, 0, shared };
		assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(scalar(s, "SELECT count(*) FROM meta WHERE key LIKE 'w%'"),
			 WRITERS * WRITES * 2);
	assert_int_equal(scalar(s, "SELECT count(*) FROM pragma_integrity_check "
				   "WHERE integrity_check <> 'ok'"), 0);
	svc_store_close(s);
}

/*
 * Commits from many connections at once, each made durable by the shared
 * WAL sync after SQLite released its write lock: every transaction lands
 * whole, none is lost or fails for being busy, and the file reopens clean.
 */
static void test_svc_store__concurrent_writers_all_commit(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	assert_int_equal(scalar(s, "PRAGMA synchronous"), 1);   /* NORMAL: see svc_store.c */
	svc_store_close(s);
	run_writers(f, false);
}

/*
 * The daemon's way: threads share one connection. Every transaction lands
 * whole and is counted as made durable by the group sync; the handles
 * really share the connection, and it is closed with the last one.
 */
static void test_svc_store__shared_connection_writers_all_commit(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL, *other = NULL;
	uint64_t commits0, syncs0, commits1, syncs1;

	assert_int_equal(svc_store_open_shared(&s, f->db, 1000, &err), 0);
	assert_int_equal(svc_store_open_shared(&other, f->db, 1000, &err), 0);
	assert_ptr_equal(svc_store_db(s), svc_store_db(other));
	svc_store_close(other);
	svc_store_sync_stats(&commits0, &syncs0);
	run_writers(f, true);
	svc_store_sync_stats(&commits1, &syncs1);
	assert_true(commits1 - commits0 >= WRITERS * WRITES);
	assert_true(syncs1 > syncs0);
	svc_store_close(s);
}

/*
 * A private handle's commit is on disk when commit returns; a shared
 * handle's waits for svc_store_barrier (decision 0009), which syncs once for
 * every commit the thread made before it, and has nothing to do after.
 */
static void test_svc_store__shared_commits_wait_for_the_barrier(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	uint64_t c0, s0, c1, s1;

	assert_int_equal(svc_store_open(&s, f->db, 1000, &err), 0);
	svc_store_sync_stats(&c0, &s0);
	assert_int_equal(svc_store_begin(s, &err), 0);
	assert_int_equal(svc_store_meta_set(s, "private", "1", &err), 0);
	assert_int_equal(svc_store_commit(s, &err), 0);
	svc_store_sync_stats(&c1, &s1);
	assert_int_equal(c1 - c0, 1);
	assert_int_equal(s1 - s0, 1);
	svc_store_close(s);

	assert_int_equal(svc_store_open_shared(&s, f->db, 1000, &err), 0);
	svc_store_sync_stats(&c0, &s0);
	for (int i = 0; i < 3; i++) {
		char key[32];

		snprintf(key, sizeof(key), "shared%d", i);
		assert_int_equal(svc_store_begin(s, &err), 0);
		assert_int_equal(svc_store_meta_set(s, key, "1", &err), 0);
		assert_int_equal(svc_store_commit(s, &err), 0);
	}
	assert_int_equal(svc_store_meta_set(s, "lone", "1", &err), 0);   /* outside a transaction */
	svc_store_sync_stats(&c1, &s1);
	assert_int_equal(c1 - c0, 4);
	assert_int_equal(s1 - s0, 0);
	assert_int_equal(svc_store_barrier(&err), 0);
	svc_store_sync_stats(&c1, &s1);
	assert_int_equal(s1 - s0, 1);
	assert_int_equal(svc_store_barrier(&err), 0);
	svc_store_sync_stats(&c1, &s1);
	assert_int_equal(s1 - s0, 1);
	svc_store_close(s);
}

struct outsider {
	const char *db;
	int rc;
};

static void *outsider_main(void *arg)
{
	struct outsider *o = arg;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;

	o->rc = svc_store_open_shared(&s, o->db, 10000, &err);
	if (o->rc == 0)
		o->rc = svc_store_meta_set(s, "outsider", "1", &err);
	svc_store_close(s);
	return NULL;
}

/*
 * On a shared connection another thread's statement must not land inside a
 * transaction: it waits for the end, so a rollback takes back only the
 * transaction's own work.
 */
static void test_svc_store__shared_transaction_keeps_others_out(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct outsider o = { f->db, -1 };
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	char *v = NULL;
	pthread_t t;

	assert_int_equal(svc_store_open_shared(&s, f->db, 1000, &err), 0);
	assert_int_equal(svc_store_begin(s, &err), 0);
	assert_int_equal(svc_store_meta_set(s, "inside", "1", &err), 0);
	assert_int_equal(pthread_create(&t, NULL, outsider_main, &o), 0);
	/* Give the other thread time to try: if it got in, the rollback would take its row. */
	nanosleep(&pause, NULL);
	svc_store_rollback(s);
	pthread_join(t, NULL);
	assert_int_equal(o.rc, 0);
	assert_int_equal(svc_store_meta_get(s, "inside", &v, &err), SB_ENOTFOUND);
	assert_int_equal(svc_store_meta_get(s, "outsider", &v, &err), 0);
	assert_string_equal(v, "1");
	free(v);
	svc_store_close(s);
}

/* A writer that holds the lock past another's busy_timeout makes it give up with SB_ETEMP. */
static void test_svc_store__busy_writer_times_out(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *a = NULL, *b = NULL;

	assert_int_equal(svc_store_open(&a, f->db, 1000, &err), 0);
	assert_int_equal(svc_store_open(&b, f->db, 50, &err), 0);
	assert_int_equal(svc_store_begin(a, &err), 0);
	assert_int_equal(svc_store_begin(b, &err), SB_ETEMP);
	assert_int_equal(svc_store_commit(a, &err), 0);
	assert_int_equal(svc_store_begin(b, &err), 0);
	assert_int_equal(svc_store_commit(b, &err), 0);
	svc_store_close(b);
	svc_store_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_svc_store__fresh_file_is_latest_version, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_store__migrates_previous_version_keeping_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__newer_file_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__insert_is_all_or_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__transitions_are_conditional, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__pii_key_is_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__audit_rows_cut_from_the_end_show,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_store__audit_cut_with_the_head_moved_back_shows_with_the_key,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_store__audit_row_rewritten_without_the_key_shows, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_store__audit_of_a_version_4_store_verifies_and_seals,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__audit_chain_detects_tampering,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__concurrent_writers_all_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_store__shared_connection_writers_all_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__shared_transaction_keeps_others_out,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__shared_commits_wait_for_the_barrier,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__busy_writer_times_out, setup,
						teardown),
	};
	return cmocka_run_group_tests_name("svc_store", tests, NULL, NULL);
}
