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
				"('acts','recipients','documents','notifications','events','receipts',"
				"'registrations','audit','meta')"), 9);
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
	assert_int_equal(scalar(s, "SELECT count(*) FROM sqlite_master WHERE sql LIKE '%state IN (%'"
				" OR sql LIKE '%kind IN (%'"), 0);
	for (int pass = 0; pass < 2; pass++) {
		sqlite3 *db = svc_store_db(s);

		assert_int_equal(sqlite3_exec(db, "UPDATE acts SET state = 'delivering'"
					      " WHERE act_id = 'old-act'", NULL, NULL, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "UPDATE acts SET state = 'lost'"
					      " WHERE act_id = 'old-act'", NULL, NULL, NULL),
				 SQLITE_CONSTRAINT);
		assert_int_equal(sqlite3_exec(db, "UPDATE documents SET kind = 'pagopa'"
					      " WHERE kind = 'pagopa'", NULL, NULL, NULL), SQLITE_OK);
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
	int64_t rows = 0;

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
	assert_int_equal(svc_store_audit_verify(s, &rows, &err), 0);
	assert_int_equal(rows, 5);
	/* the triggers refuse changes and deletions */
	assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET actor = 'x' WHERE id = 2", NULL,
					  NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit WHERE id = 2", NULL, NULL, NULL),
			     SQLITE_OK);
	/* someone with the file drops the triggers and edits a row: the chain shows it */
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;"
				      "UPDATE audit SET actor = 'intruder' WHERE id = 3", NULL, NULL,
				      NULL), SQLITE_OK);
	assert_int_equal(svc_store_audit_verify(s, &rows, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "row 3: altered"));
	assert_int_equal(sqlite3_exec(db, "UPDATE audit SET actor = 'operator' WHERE id = 3;"
				      "DELETE FROM audit WHERE id = 2", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(svc_store_audit_verify(s, &rows, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "row 2 missing"));
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
		cmocka_unit_test_setup_teardown(test_svc_store__migrates_previous_version_keeping_data,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__newer_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__insert_is_all_or_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__transitions_are_conditional, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__pii_key_is_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__audit_chain_detects_tampering, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__concurrent_writers_all_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__shared_connection_writers_all_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__shared_transaction_keeps_others_out,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__shared_commits_wait_for_the_barrier,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_store__busy_writer_times_out, setup,
						teardown),
	};
	return cmocka_run_group_tests_name("svc_store", tests, NULL, NULL);
}
