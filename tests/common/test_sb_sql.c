/*
 * The statement cache (common/sb_sql.c) on a real SQLite file: a statement
 * comes back reset and unbound, is never handed to two callers at once, is
 * reused once given back, and every cached statement is finalized by
 * sb_sql_cache_forget (AddressSanitizer reports any leak). Connections that
 * did not opt in get plain prepare and finalize.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_sql.h"
#include "th.h"

struct fx {
	char *dir;
	sqlite3 *db;
};

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));
	char *path;

	f->dir = th_tmpdir("sql");
	path = sb_xasprintf("%s/t.db", f->dir);
	assert_int_equal(sqlite3_open(path, &f->db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(f->db, "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER);"
				      "INSERT INTO t VALUES ('a', 1), ('b', 2)", NULL, NULL, NULL),
			 SQLITE_OK);
	free(path);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sb_sql_cache_forget(f->db);
	assert_int_equal(sqlite3_close(f->db), SQLITE_OK);   /* BUSY if a statement leaked */
	th_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static const char *const q = "SELECT v FROM t WHERE k = ?1";

static int64_t value_of(sqlite3_stmt *st, const char *k)
{
	int64_t v = -1;

	sb_sql_bind_text(st, 1, k);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	return v;
}

static void test_sb_sql__cached_statement_is_reused_reset_and_unbound(void **state)
{
	struct fx *f = *state;
	sqlite3_stmt *a = NULL, *b = NULL, *c = NULL;

	sb_sql_cache_enable(f->db);
	assert_int_equal(sb_sql_prepare(f->db, q, &a), SQLITE_OK);
	assert_int_equal(value_of(a, "a"), 1);
	/* Still held: the same text gives another statement. */
	assert_int_equal(sb_sql_prepare(f->db, q, &b), SQLITE_OK);
	assert_ptr_not_equal(a, b);
	assert_int_equal(value_of(b, "b"), 2);
	sb_sql_finish(a);
	assert_int_equal(sb_sql_prepare(f->db, q, &c), SQLITE_OK);
	assert_ptr_equal(c, a);
	/* Given back reset and unbound: no row left over, ?1 is NULL again. */
	assert_int_equal(sqlite3_bind_parameter_count(c), 1);
	assert_int_equal(sqlite3_step(c), SQLITE_DONE);
	sb_sql_finish(c);
	assert_int_equal(sb_sql_prepare(f->db, q, &c), SQLITE_OK);
	assert_int_equal(value_of(c, "b"), 2);
	sb_sql_finish(c);
	sb_sql_finish(b);
	/* A different text is a different statement. */
	assert_int_equal(sb_sql_prepare(f->db, "SELECT count(*) FROM t", &a), SQLITE_OK);
	assert_ptr_not_equal(a, b);
	assert_int_equal(sqlite3_step(a), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(a, 0), 2);
	sb_sql_finish(a);
	assert_int_equal(sb_sql_run(f->db, "UPDATE t SET v = v + 10"), SQLITE_OK);
	assert_int_equal(sb_sql_run(f->db, "UPDATE nope SET v = 1"), SQLITE_ERROR);
	assert_int_equal(sb_sql_prepare(f->db, q, &a), SQLITE_OK);
	assert_int_equal(value_of(a, "a"), 11);
	sb_sql_finish(a);
}

/* Without sb_sql_cache_enable every statement is finalized when given back. */
static void test_sb_sql__connection_without_cache_finalizes(void **state)
{
	struct fx *f = *state;
	sqlite3_stmt *a = NULL;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(sb_sql_prepare(f->db, q, &a), SQLITE_OK);
		assert_int_equal(value_of(a, "a"), 1);
		sb_sql_finish(a);
		assert_null(sqlite3_next_stmt(f->db, NULL));
	}
	assert_int_not_equal(sb_sql_prepare(f->db, "SELEKT 1", &a), SQLITE_OK);
	assert_null(a);
	sb_sql_finish(NULL);
}

/* More distinct texts than the cache holds: the extra ones are plain statements. */
static void test_sb_sql__full_cache_still_works(void **state)
{
	struct fx *f = *state;
	sqlite3_stmt *st[200];

	sb_sql_cache_enable(f->db);
	for (int i = 0; i < 200; i++) {
		char sql[64];

		snprintf(sql, sizeof(sql), "SELECT %d + v FROM t WHERE k = 'a'", i);
		assert_int_equal(sb_sql_prepare(f->db, sql, &st[i]), SQLITE_OK);
		assert_int_equal(sqlite3_step(st[i]), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st[i], 0), i + 1);
	}
	for (int i = 0; i < 200; i++)
		sb_sql_finish(st[i]);
}

static int64_t count_rows(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	assert_int_equal(sb_sql_prepare(db, "SELECT count(*) FROM t", &st), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sb_sql_finish(st);
	return n;
}

static int after_calls;

static int count_after(void *arg)
{
	int *depth_seen = arg;

	after_calls++;
	*depth_seen = -1;
	return SQLITE_OK;
}

/*
 * Transactions nest as savepoints: an inner rollback takes back only the
 * inner work, the outer commit keeps the rest, and the after-commit
 * callback runs once, for the outermost commit only, after the level is over.
 */
static void test_sb_sql__transactions_nest_and_call_back_once(void **state)
{
	struct fx *f = *state;
	int seen = 0;

	sb_sql_cache_enable(f->db);
	sb_sql_after_commit(f->db, count_after, &seen);
	after_calls = 0;
	assert_int_equal(sb_sql_depth(f->db), 0);
	assert_int_equal(sb_sql_begin(f->db, true), SQLITE_OK);
	assert_int_equal(sb_sql_run(f->db, "INSERT INTO t VALUES ('c', 3)"), SQLITE_OK);
	assert_int_equal(sb_sql_begin(f->db, true), SQLITE_OK);
	assert_int_equal(sb_sql_depth(f->db), 2);
	assert_int_equal(sb_sql_run(f->db, "INSERT INTO t VALUES ('d', 4)"), SQLITE_OK);
	assert_int_equal(sb_sql_end(f->db, false), SQLITE_OK);
	assert_int_equal(count_rows(f->db), 3);
	assert_int_equal(sb_sql_begin(f->db, false), SQLITE_OK);
	assert_int_equal(sb_sql_run(f->db, "INSERT INTO t VALUES ('e', 5)"), SQLITE_OK);
	assert_int_equal(sb_sql_end(f->db, true), SQLITE_OK);
	assert_int_equal(after_calls, 0);
	assert_int_equal(sb_sql_end(f->db, true), SQLITE_OK);
	assert_int_equal(after_calls, 1);
	assert_int_equal(seen, -1);
	assert_int_equal(sb_sql_depth(f->db), 0);
	assert_int_not_equal(sqlite3_get_autocommit(f->db), 0);
	assert_int_equal(count_rows(f->db), 4);
	/* A rollback of the outermost level: nothing kept, no callback. */
	assert_int_equal(sb_sql_begin(f->db, true), SQLITE_OK);
	assert_int_equal(sb_sql_run(f->db, "DELETE FROM t"), SQLITE_OK);
	assert_int_equal(sb_sql_end(f->db, false), SQLITE_OK);
	assert_int_equal(after_calls, 1);
	assert_int_equal(count_rows(f->db), 4);
	/* A commit that fails (a constraint checked at commit) rolls back and ends the level. */
	assert_int_equal(sqlite3_exec(f->db, "CREATE TABLE p (id INTEGER PRIMARY KEY);"
				      "CREATE TABLE c (p INTEGER REFERENCES p(id)"
				      " DEFERRABLE INITIALLY DEFERRED);"
				      "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sb_sql_begin(f->db, true), SQLITE_OK);
	assert_int_equal(sb_sql_run(f->db, "INSERT INTO c VALUES (42)"), SQLITE_OK);
	assert_int_not_equal(sb_sql_end(f->db, true), SQLITE_OK);
	assert_int_equal(after_calls, 1);
	assert_int_equal(sb_sql_depth(f->db), 0);
	assert_int_not_equal(sqlite3_get_autocommit(f->db), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_sb_sql__cached_statement_is_reused_reset_and_unbound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_sql__connection_without_cache_finalizes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_sql__full_cache_still_works,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_sql__transactions_nest_and_call_back_once,
						setup, teardown),
	};
	return cmocka_run_group_tests_name("sb_sql", tests, NULL, NULL);
}
