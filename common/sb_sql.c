/*
 * SQLite helpers: see sb_sql.h.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
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
	int (*after_commit)(void *arg);
	void *after_commit_arg;
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

void sb_sql_after_commit(sqlite3 *db, int (*fn)(void *arg), void *arg)
{
	struct conn_cache *c;

	pthread_mutex_lock(&cache_lock);
	c = conn_find(db, NULL);
	SB_ASSERT(c);
	c->after_commit = fn;
	c->after_commit_arg = arg;
	pthread_mutex_unlock(&cache_lock);
}

/*
 * This thread's open transactions, per connection: the depth, and which
 * levels are savepoints (bit k: level k+1). A thread works on one or two
 * connections at a time, never more than TX_CONNS with a transaction open.
 */
#define TX_CONNS 4

struct tx_level {
	sqlite3 *db;
	int depth;
	unsigned savepoints;
};

static _Thread_local struct tx_level tx_levels[TX_CONNS];

static struct tx_level *tx_find(sqlite3 *db, bool add)
{
	struct tx_level *free_slot = NULL;

	for (size_t i = 0; i < TX_CONNS; i++) {
		if (tx_levels[i].db == db && tx_levels[i].depth > 0)
			return &tx_levels[i];
		if (!free_slot && tx_levels[i].depth == 0)
			free_slot = &tx_levels[i];
	}
	if (!add)
		return NULL;
	SB_ASSERT(free_slot);
	free_slot->db = db;
	free_slot->savepoints = 0;
	return free_slot;
}

int sb_sql_depth(sqlite3 *db)
{
	struct tx_level *t = tx_find(db, false);

	return t ? t->depth : 0;
}

void sb_sql_lock(sqlite3 *db)
{
	sqlite3_mutex_enter(sqlite3_db_mutex(db));
}

void sb_sql_unlock(sqlite3 *db)
{
	sqlite3_mutex_leave(sqlite3_db_mutex(db));
}

int sb_sql_begin(sqlite3 *db, bool write)
{
	struct tx_level *t;
	char sql[40];
	bool savepoint;
	int rc;

	sb_sql_lock(db);
	t = tx_find(db, true);
	SB_ASSERT(t->depth < 30);
	savepoint = t->depth > 0 || !sqlite3_get_autocommit(db);
	if (savepoint)
		snprintf(sql, sizeof(sql), "SAVEPOINT sb_sql_%d", t->depth + 1);
	else
		snprintf(sql, sizeof(sql), "%s", write ? "BEGIN IMMEDIATE" : "BEGIN");
	rc = sb_sql_run(db, sql);
	if (rc != SQLITE_OK) {
		sb_sql_unlock(db);
		return rc;
	}
	if (savepoint)
		t->savepoints |= 1u << t->depth;
	t->depth++;
	return SQLITE_OK;
}

int sb_sql_end(sqlite3 *db, bool commit)
{
	struct tx_level *t = tx_find(db, false);
	int (*after)(void *) = NULL;
	void *arg = NULL;
	struct conn_cache *c;
	char sql[40];
	int rc = SQLITE_OK, level;

	SB_ASSERT(t && t->depth > 0);
	level = t->depth;
	if (t->savepoints & (1u << (level - 1))) {
		if (commit) {
			snprintf(sql, sizeof(sql), "RELEASE sb_sql_%d", level);
			rc = sb_sql_run(db, sql);
		}
		if (!commit || rc != SQLITE_OK) {
			snprintf(sql, sizeof(sql), "ROLLBACK TO sb_sql_%d", level);
			sb_sql_run(db, sql);
			snprintf(sql, sizeof(sql), "RELEASE sb_sql_%d", level);
			sb_sql_run(db, sql);
		}
		t->savepoints &= ~(1u << (level - 1));
		t->depth--;
		sb_sql_unlock(db);
		return rc;
	}
	/* The store's WAL hook runs inside COMMIT and asks sb_sql_depth: keep it until after. */
	if (commit)
		rc = sb_sql_run(db, "COMMIT");
	if ((!commit || rc != SQLITE_OK) && !sqlite3_get_autocommit(db))
		sb_sql_run(db, "ROLLBACK");
	t->depth--;
	sb_sql_unlock(db);
	if (!commit || rc != SQLITE_OK)
		return rc;
	pthread_mutex_lock(&cache_lock);
	c = conn_find(db, NULL);
	if (c) {
		after = c->after_commit;
		arg = c->after_commit_arg;
	}
	pthread_mutex_unlock(&cache_lock);
	return after ? after(arg) : SQLITE_OK;
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
				  "store: %s %d is newer than this send-bridge (%d): "
				  "upgrade send-bridge", key, have, (int)n);
	for (int v = have + 1; v <= (int)n; v++) {
		rc = sb_sql_begin(db, true);
		if (rc != SQLITE_OK)
			return sql_fail(db, err, rc, key, "starting a migration");
		rc = apply(db, key, list[v - 1], v, err);
		if (rc < 0) {
			sb_sql_end(db, false);
			return rc;
		}
		rc = sb_sql_end(db, true);
		if (rc != SQLITE_OK)
			return sql_fail(db, err, rc, key, "committing a migration");
	}
	return 0;
}
