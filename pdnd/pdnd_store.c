/*
 * pdnd/'s tables: access trail and results cache. See pdnd_store.h.
 *
 * The trail is hash-chained: each row's hash covers the previous row's
 * hash and every field with its length, so an altered row, a removed row
 * (ids are consecutive and each row names its predecessor's hash) and a
 * reordering all break the chain. Triggers refuse UPDATE and DELETE, so
 * only someone editing the file itself can try, and verify shows it.
 * Writers hold BEGIN IMMEDIATE while reading the last hash and appending,
 * so two processes cannot fork the chain.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_time.h"
#include "pdnd_store.h"

static const char *const migrations[] = {
	/* 1: access trail and results cache */
	"CREATE TABLE pdnd_access ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  operator TEXT NOT NULL,"
	"  office TEXT NOT NULL,"
	"  eservice TEXT NOT NULL,"
	"  purpose_id TEXT,"
	"  act_ref TEXT,"
	"  subject TEXT NOT NULL CHECK (length(subject) = 64),"
	"  outcome TEXT NOT NULL,"
	"  correlation TEXT,"
	"  prev_hash TEXT NOT NULL,"
	"  hash TEXT NOT NULL"
	");"
	"CREATE INDEX pdnd_access_at ON pdnd_access (at);"
	"CREATE TRIGGER pdnd_access_no_update BEFORE UPDATE ON pdnd_access"
	"  BEGIN SELECT RAISE(ABORT, 'access trail rows cannot be changed'); END;"
	"CREATE TRIGGER pdnd_access_no_delete BEFORE DELETE ON pdnd_access"
	"  BEGIN SELECT RAISE(ABORT, 'access trail rows cannot be deleted'); END;"
	"CREATE TABLE pdnd_cache ("
	"  kind TEXT NOT NULL,"
	"  subject TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  fetched_at INTEGER NOT NULL,"
	"  PRIMARY KEY (kind, subject)"
	");",
};

static const char genesis[] = "0000000000000000000000000000000000000000000000000000000000000000";

static int db_error(sqlite3 *db, struct sb_err *err, int rc, const char *what)
{
	return sb_err_set(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SB_ETEMP : SB_EIO, rc,
			  "store: %s: %s", what, sqlite3_errmsg(db));
}

static int exec(sqlite3 *db, const char *sql, const char *what, struct sb_err *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_error(db, err, rc, what);
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct sb_err *err)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);

	return rc == SQLITE_OK ? 0 : db_error(db, err, rc, "preparing a statement");
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, (int)strlen(s), SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static const char *col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static int schema_version(sqlite3 *db, int *out, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	uint64_t v = 0;
	int rc;

	rc = prepare(db, "SELECT value FROM meta WHERE key = 'schema.pdnd'", &st, err);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (!col(st, 0) || sb_parse_u64z(col(st, 0), 1000, &v) < 0) {
			sqlite3_finalize(st);
			return sb_err_set(err, SB_EIO, 0, "store: meta schema.pdnd is damaged");
		}
	} else if (rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return db_error(db, err, rc, "reading schema.pdnd");
	}
	sqlite3_finalize(st);
	*out = (int)v;
	return 0;
}

int pdnd_store_migrate(sqlite3 *db, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int have = 0, rc;

	rc = schema_version(db, &have, err);
	if (rc < 0)
		return rc;
	if (have > (int)SB_ARRAY_SIZE(migrations))
		return sb_err_set(err, SB_ECONFIG, 0,
				  "store: pdnd schema version %d is newer than this send-bridge (%d)",
				  have, (int)SB_ARRAY_SIZE(migrations));
	for (int v = have + 1; v <= (int)SB_ARRAY_SIZE(migrations); v++) {
		rc = exec(db, "BEGIN IMMEDIATE", "starting pdnd migration", err);
		if (rc < 0)
			return rc;
		rc = exec(db, migrations[v - 1], "pdnd migration", err);
		if (rc == 0)
			rc = prepare(db, "INSERT INTO meta (key, value) VALUES ('schema.pdnd', ?1) "
				     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", &st, err);
		if (rc == 0) {
			sqlite3_bind_int(st, 1, v);
			rc = sqlite3_step(st) == SQLITE_DONE ? 0
				: db_error(db, err, sqlite3_errcode(db), "writing schema.pdnd");
			sqlite3_finalize(st);
			st = NULL;
		}
		if (rc == 0)
			rc = exec(db, "COMMIT", "committing pdnd migration", err);
		if (rc < 0) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return sb_err_prefix(err, "pdnd migration to version %d", v);
		}
	}
	return 0;
}

void pdnd_subject_hash(const unsigned char key[32], const char *tax_id,
		       char out[PDND_SUBJECT_HASH_SIZE])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	struct sb_buf hex = SB_BUF_INIT(PDND_SUBJECT_HASH_SIZE);

	HMAC(EVP_sha256(), key, 32, (const unsigned char *)tax_id, strlen(tax_id), mac, &n);
	sb_hex_encode(mac, n, &hex);
	snprintf(out, PDND_SUBJECT_HASH_SIZE, "%s", hex.buf);
	sb_buf_release(&hex);
}

#define NFIELDS 9

/* sha256(prev | id | at | each field as len:value), hex. */
static void row_hash(const char *prev, int64_t id, int64_t at, const char *const f[NFIELDS],
		     char out[65])
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT), hex = SB_BUF_INIT(65);
	unsigned char d[SB_SHA256_LEN];

	sb_buf_addf(&b, "%s|%lld|%lld", prev, (long long)id, (long long)at);
	for (int i = 0; i < NFIELDS; i++) {
		/* NULL and "" differ: a NULL act_ref must not be replaced by "" unnoticed. */
		if (f[i])
			sb_buf_addf(&b, "|%zu:%s", strlen(f[i]), f[i]);
		else
			sb_buf_adds(&b, "|-");
	}
	sb_sha256(b.buf, b.len, d);
	sb_hex_encode(d, sizeof(d), &hex);
	memcpy(out, hex.buf, 65);
	sb_buf_release(&b);
	sb_buf_release(&hex);
}

int pdnd_access_append(sqlite3 *db, const struct pdnd_access *a, struct sb_err *err)
{
	const char *f[NFIELDS] = { a->operator_id, a->office, a->eservice, a->purpose_id,
				   a->act_ref, a->subject, a->outcome, a->correlation, NULL };
	sqlite3_stmt *st = NULL;
	char prev[65], hash[65];
	int64_t id = 1, at = sb_now();
	bool own_tx;
	int rc;

	if (!a->operator_id || !a->office || !a->eservice || !a->subject || !a->outcome ||
	    strlen(a->subject) != 64)
		return sb_err_set(err, SB_EINVAL, 0,
				  "access trail: operator, office, e-service, subject hash and "
				  "outcome are required");
	/*
	 * Alone: BEGIN IMMEDIATE takes the write lock before the last hash is read, so two
	 * writers cannot fork the chain. Inside the caller's transaction (svc_store_begin
	 * is IMMEDIATE too): a savepoint, so a failed append leaves the caller's work alone.
	 */
	own_tx = sqlite3_get_autocommit(db) != 0;
	rc = exec(db, own_tx ? "BEGIN IMMEDIATE" : "SAVEPOINT pdnd_access",
		  "starting access trail append", err);
	if (rc < 0)
		return rc;
	rc = prepare(db, "SELECT id, hash FROM pdnd_access ORDER BY id DESC LIMIT 1", &st, err);
	if (rc < 0)
		goto cleanup;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0) + 1;
		snprintf(prev, sizeof(prev), "%s", col(st, 1) ? col(st, 1) : "");
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		memcpy(prev, genesis, sizeof(prev));
		rc = 0;
	} else {
		rc = db_error(db, err, rc, "reading the access trail");
		goto cleanup;
	}
	sqlite3_finalize(st);
	st = NULL;
	row_hash(prev, id, at, f, hash);
	rc = prepare(db, "INSERT INTO pdnd_access (id, at, operator, office, eservice, purpose_id,"
		     " act_ref, subject, outcome, correlation, prev_hash, hash)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", &st, err);
	if (rc < 0)
		goto cleanup;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, at);
	for (int i = 0; i < 8; i++)
		bind_text(st, 3 + i, f[i]);
	bind_text(st, 11, prev);
	bind_text(st, 12, hash);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0
		: db_error(db, err, sqlite3_errcode(db), "appending to the access trail");
	if (rc == 0)
		rc = exec(db, own_tx ? "COMMIT" : "RELEASE pdnd_access",
			  "committing the access trail", err);
cleanup:
	sqlite3_finalize(st);
	if (rc < 0)
		sqlite3_exec(db, own_tx ? "ROLLBACK" : "ROLLBACK TO pdnd_access; RELEASE pdnd_access",
			     NULL, NULL, NULL);
	return rc;
}

int pdnd_access_verify(sqlite3 *db, int64_t *rows_out, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	char prev[65], hash[65];
	int64_t expect = 1, rows = 0;
	int rc;

	memcpy(prev, genesis, sizeof(prev));
	rc = prepare(db, "SELECT id, at, operator, office, eservice, purpose_id, act_ref, subject,"
		     " outcome, correlation, prev_hash, hash FROM pdnd_access ORDER BY id", &st, err);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const char *f[NFIELDS] = { col(st, 2), col(st, 3), col(st, 4), col(st, 5),
					   col(st, 6), col(st, 7), col(st, 8), col(st, 9), NULL };

		if (id != expect) {
			rc = sb_err_set(err, SB_EINVAL, 0, "access trail broken: row %lld missing",
					(long long)expect);
			goto cleanup;
		}
		if (!col(st, 10) || strcmp(col(st, 10), prev)) {
			rc = sb_err_set(err, SB_EINVAL, 0,
					"access trail broken at row %lld: not linked to row %lld "
					"(removed or reordered rows)", (long long)id, (long long)id - 1);
			goto cleanup;
		}
		row_hash(prev, id, sqlite3_column_int64(st, 1), f, hash);
		if (!col(st, 11) || strcmp(col(st, 11), hash)) {
			rc = sb_err_set(err, SB_EINVAL, 0, "access trail broken at row %lld: altered",
					(long long)id);
			goto cleanup;
		}
		memcpy(prev, hash, sizeof(prev));
		expect++;
		rows++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_error(db, err, rc, "reading the access trail");
		goto cleanup;
	}
	rc = 0;
	if (rows_out)
		*rows_out = rows;
cleanup:
	sqlite3_finalize(st);
	return rc;
}

int pdnd_access_report(sqlite3 *db, int64_t from, int64_t to, FILE *out, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	char when[32];
	int rc, n = 0;

	rc = prepare(db, "SELECT operator, eservice, coalesce(purpose_id, '-'), count(*),"
		     " sum(outcome = 'refused') FROM pdnd_access WHERE at >= ?1 AND at < ?2"
		     " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	fprintf(out, "queries per operator, e-service and purpose\n");
	fprintf(out, "%-20s %-10s %-36s %8s %8s\n", "operator", "e-service", "purpose", "queries",
		"refused");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fprintf(out, "%-20s %-10s %-36s %8lld %8lld\n", col(st, 0), col(st, 1), col(st, 2),
			(long long)sqlite3_column_int64(st, 3),
			(long long)sqlite3_column_int64(st, 4));
	if (rc != SQLITE_DONE) {
		rc = db_error(db, err, rc, "reading the access trail");
		goto cleanup;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = prepare(db, "SELECT id, at, operator, office, eservice, outcome FROM pdnd_access"
		     " WHERE at >= ?1 AND at < ?2 AND (act_ref IS NULL OR act_ref = '') ORDER BY id",
		     &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	fprintf(out, "\nqueries not tied to an act\n");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sb_time_iso8601(sqlite3_column_int64(st, 1), when, sizeof(when));
		fprintf(out, "row %lld %s operator=%s office=%s eservice=%s outcome=%s\n",
			(long long)sqlite3_column_int64(st, 0), when, col(st, 2), col(st, 3),
			col(st, 4), col(st, 5));
		n++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_error(db, err, rc, "reading the access trail");
		goto cleanup;
	}
	if (!n)
		fprintf(out, "none\n");
	rc = 0;
cleanup:
	sqlite3_finalize(st);
	return rc;
}

int pdnd_cache_get(sqlite3 *db, const char *kind, const char *subject, int64_t max_age,
		   char **json_out, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(db, "SELECT value FROM pdnd_cache WHERE kind = ?1 AND subject = ?2"
		     " AND fetched_at > ?3", &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, kind);
	bind_text(st, 2, subject);
	sqlite3_bind_int64(st, 3, sb_now() - max_age);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*json_out = sb_xstrdup(col(st, 0) ? col(st, 0) : "");
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = SB_ENOTFOUND;
	} else {
		rc = db_error(db, err, rc, "reading the pdnd cache");
	}
	sqlite3_finalize(st);
	return rc;
}

int pdnd_cache_put(sqlite3 *db, const char *kind, const char *subject, const char *json,
		   struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(db, "INSERT INTO pdnd_cache (kind, subject, value, fetched_at)"
		     " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind, subject) DO UPDATE SET"
		     " value = excluded.value, fetched_at = excluded.fetched_at", &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, kind);
	bind_text(st, 2, subject);
	bind_text(st, 3, json);
	sqlite3_bind_int64(st, 4, sb_now());
	rc = sqlite3_step(st) == SQLITE_DONE ? 0
		: db_error(db, err, sqlite3_errcode(db), "writing the pdnd cache");
	sqlite3_finalize(st);
	return rc;
}
