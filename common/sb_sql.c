/*
 * SQLite helpers: see sb_sql.h.
 */
#include <sqlite3.h>
#include <string.h>

#include "sb_common.h"
#include "sb_sql.h"

void sb_sql_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, (int)strlen(s), SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

const char *sb_sql_col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static int sql_fail(sqlite3 *db, struct sb_err *err, int rc, const char *key, const char *what)
{
	return sb_err_set(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SB_ETEMP : SB_EIO, rc,
			  "store: %s: %s: %s", key, what, sqlite3_errmsg(db));
}

static int read_version(sqlite3 *db, const char *key, int *out, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	uint64_t v = 0;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(db, err, rc, key, "reading its version");
	sb_sql_bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (!sb_sql_col(st, 0) || sb_parse_u64z(sb_sql_col(st, 0), 1000, &v) < 0) {
			sqlite3_finalize(st);
			return sb_err_set(err, SB_EIO, 0, "store: meta %s is damaged", key);
		}
	} else if (rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return sql_fail(db, err, rc, key, "reading its version");
	}
	sqlite3_finalize(st);
	*out = (int)v;
	return 0;
}

static int apply(sqlite3 *db, const char *key, const char *sql, int v, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		sb_err_set(err, SB_EIO, rc, "store: %s migration %d: %s", key, v,
			   msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return SB_EIO;
	}
	rc = sqlite3_prepare_v2(db, "INSERT INTO meta (key, value) VALUES (?1, ?2)"
				" ON CONFLICT (key) DO UPDATE SET value = excluded.value", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sb_sql_bind_text(st, 1, key);
		sqlite3_bind_int(st, 2, v);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_fail(db, err, rc, key, "recording its version");
}

int sb_sql_migrate(sqlite3 *db, const char *key, const char *const *list, size_t n,
		   struct sb_err *err)
{
	int have = 0, rc;

	rc = read_version(db, key, &have, err);
	if (rc < 0)
		return rc;
	if (have > (int)n)
		return sb_err_set(err, SB_ECONFIG, 0,
				  "store: %s %d is newer than this send-bridge (%d): upgrade send-bridge",
				  key, have, (int)n);
	for (int v = have + 1; v <= (int)n; v++) {
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return sql_fail(db, err, rc, key, "starting a migration");
		rc = apply(db, key, list[v - 1], v, err);
		if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			rc = sql_fail(db, err, sqlite3_errcode(db), key, "committing a migration");
		if (rc < 0) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
	}
	return 0;
}
