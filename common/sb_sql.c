/*
 * SQLite helpers: see sb_sql.h.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "sb_common.h"
#include "sb_sql.h"

/*
 * The statement cache: for each enabled connection, up to CACHE_STMTS
 * statements, found by a hash of their text and then compared in full.
 * One process-wide lock, held only to look up and mark entries: preparing,
 * resetting and finalizing happen outside it.
 */
#define CACHE_CONNS 128
#define CACHE_STMTS 96

struct cached {
	uint32_t hash;
	bool busy;
	sqlite3_stmt *st;
};

struct conn_cache {
	sqlite3 *db;
	size_t n;
	struct cached e[CACHE_STMTS];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn_cache *conns[CACHE_CONNS];
static size_t nconns;

static uint32_t sql_hash(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Under cache_lock. */
static struct conn_cache *conn_find(sqlite3 *db, size_t *idx)
{
	for (size_t i = 0; i < nconns; i++)
		if (conns[i]->db == db) {
			if (idx)
				*idx = i;
			return conns[i];
		}
	return NULL;
}

void sb_sql_cache_enable(sqlite3 *db)
{
	pthread_mutex_lock(&cache_lock);
	if (!conn_find(db, NULL) && nconns < CACHE_CONNS) {
		conns[nconns] = sb_xcalloc(1, sizeof(**conns));
		conns[nconns++]->db = db;
	}
	pthread_mutex_unlock(&cache_lock);
}

void sb_sql_cache_forget(sqlite3 *db)
{
	struct conn_cache *c;
	size_t i = 0;

	pthread_mutex_lock(&cache_lock);
	c = conn_find(db, &i);
	if (c)
		conns[i] = conns[--nconns];
	pthread_mutex_unlock(&cache_lock);
	if (!c)
		return;
	for (size_t k = 0; k < c->n; k++)
		sqlite3_finalize(c->e[k].st);
	free(c);
}

int sb_sql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
	uint32_t h = sql_hash(sql);
	struct conn_cache *c;
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&cache_lock);
	c = conn_find(db, NULL);
	for (size_t i = 0; c && i < c->n; i++)
		if (c->e[i].hash == h && !c->e[i].busy && !strcmp(sqlite3_sql(c->e[i].st), sql)) {
			c->e[i].busy = true;
			st = c->e[i].st;
			break;
		}
	pthread_mutex_unlock(&cache_lock);
	if (st) {
		*out = st;
		return SQLITE_OK;
	}
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(st);
		return rc;
	}
	pthread_mutex_lock(&cache_lock);
	c = conn_find(db, NULL);
	if (c && c->n < CACHE_STMTS && st)
		c->e[c->n++] = (struct cached){ h, true, st };
	pthread_mutex_unlock(&cache_lock);
	*out = st;
	return SQLITE_OK;
}

void sb_sql_finish(sqlite3_stmt *st)
{
	struct conn_cache *c;
	bool cached = false;

	if (!st)
		return;
	/* Reset first: a statement left stepping holds a read snapshot open. */
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_lock(&cache_lock);
	c = conn_find(sqlite3_db_handle(st), NULL);
	for (size_t i = 0; c && i < c->n; i++)
		if (c->e[i].st == st) {
			SB_ASSERT(c->e[i].busy);
			c->e[i].busy = false;
			cached = true;
			break;
		}
	pthread_mutex_unlock(&cache_lock);
	if (!cached)
		sqlite3_finalize(st);
}

int sb_sql_run(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int rc = sb_sql_prepare(db, sql, &st);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	sb_sql_finish(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

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

	rc = sb_sql_prepare(db, "SELECT value FROM meta WHERE key = ?1", &st);
	if (rc != SQLITE_OK)
		return sql_fail(db, err, rc, key, "reading its version");
	sb_sql_bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (!sb_sql_col(st, 0) || sb_parse_u64z(sb_sql_col(st, 0), 1000, &v) < 0) {
			sb_sql_finish(st);
			return sb_err_set(err, SB_EIO, 0, "store: meta %s is damaged", key);
		}
	} else if (rc != SQLITE_DONE) {
		sb_sql_finish(st);
		return sql_fail(db, err, rc, key, "reading its version");
	}
	sb_sql_finish(st);
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
	rc = sb_sql_prepare(db, "INSERT INTO meta (key, value) VALUES (?1, ?2)"
			    " ON CONFLICT (key) DO UPDATE SET value = excluded.value", &st);
	if (rc == SQLITE_OK) {
		sb_sql_bind_text(st, 1, key);
		sqlite3_bind_int(st, 2, v);
		rc = sqlite3_step(st);
	}
	sb_sql_finish(st);
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
