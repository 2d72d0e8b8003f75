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
 *
 * The chain has no secret and cannot see its own end, so pdnd_access_head
 * (one row, schema 2) records the row count and last hash, moved in the
 * same transaction as each append, and, once sealed, their HMAC-SHA256
 * with the audit key. Cutting the tail then disagrees with the head, and
 * recomputing the chain and the head without the key breaks the seal.
 * What remains is a rollback to an earlier sealed state (an old copy of
 * the file): only a head recorded outside the machine shows it, which is
 * why verify prints the head and accepts one to compare.
 */
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_sql.h"
#include "sb_audit.h"
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
	/*
	 * 2: the head of the trail, taken from the rows already there (an older store
	 * starts unsealed; `audit seal` seals it). It may only move forward.
	 */
	"CREATE TABLE pdnd_access_head ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  rows INTEGER NOT NULL,"
	"  hash TEXT NOT NULL,"
	"  mac TEXT"
	");"
	"INSERT INTO pdnd_access_head (id, rows, hash)"
	"  SELECT 1, count(*), coalesce((SELECT hash FROM pdnd_access ORDER BY id DESC LIMIT 1),"
	"  '" SB_AUDIT_GENESIS "') FROM pdnd_access;"
	"CREATE TRIGGER pdnd_access_head_no_delete BEFORE DELETE ON pdnd_access_head"
	"  BEGIN SELECT RAISE(ABORT, 'the access trail head cannot be deleted'); END;"
	"CREATE TRIGGER pdnd_access_head_no_rewind BEFORE UPDATE ON pdnd_access_head"
	"  WHEN NEW.rows < OLD.rows"
	"  BEGIN SELECT RAISE(ABORT, 'the access trail head cannot move back'); END;",
};

static const char genesis[] = SB_AUDIT_GENESIS;

static int db_error(sqlite3 *db, struct sb_err *err, int rc, const char *what)
{
	return sb_err_set(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SB_ETEMP : SB_EIO, rc,
			  "store: %s: %s", what, sqlite3_errmsg(db));
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct sb_err *err)
{
	int rc = sb_sql_prepare(db, sql, st);

	return rc == SQLITE_OK ? 0 : db_error(db, err, rc, "preparing a statement");
}

int pdnd_store_migrate(sqlite3 *db, struct sb_err *err)
{
	return sb_sql_migrate(db, "schema.pdnd", migrations, SB_ARRAY_SIZE(migrations), err);
}

void pdnd_subject_hash(const unsigned char key[32], const char *tax_id,
		       char out[PDND_SUBJECT_HASH_SIZE])
{
	sb_audit_hmac_hex(key, tax_id, strlen(tax_id), out);
}

#define NFIELDS 9

/* sha256(prev | id | at | each field as len:value), hex. */
static void row_hash(const char *prev, int64_t id, int64_t at, const char *const f[NFIELDS],
		     char out[65])
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT);

	sb_audit_row_encode(&b, prev, id, at, f, NFIELDS);
	sb_audit_sha256_hex(b.buf, b.len, out);
	sb_buf_release(&b);
}

/*
 * Alone: a transaction of its own (IMMEDIATE to write: the write lock is taken before
 * the last hash is read, so two writers cannot fork the chain). Inside the caller's
 * transaction (svc_store_begin is IMMEDIATE too): a savepoint, so a failure leaves the
 * caller's work alone.
 */
static int tx_begin(sqlite3 *db, bool write, bool *own, struct sb_err *err)
{
	int rc = sb_sql_begin(db, write);

	*own = true;   /* sb_sql_end ends this level, a savepoint when nested */
	if (rc == SQLITE_OK)
		return 0;
	*own = false;
	return sb_err_set(err, rc == SQLITE_BUSY ? SB_ETEMP : SB_EIO, rc,
			  "store: starting an access trail transaction: %s", sqlite3_errstr(rc));
}

static int tx_end(sqlite3 *db, bool own, int rc, struct sb_err *err)
{
	int src;

	if (!own)
		return rc;
	src = sb_sql_end(db, rc == 0);
	if (rc == 0 && src != SQLITE_OK)
		rc = sb_err_set(err, src == SQLITE_BUSY ? SB_ETEMP : SB_EIO, src,
				"store: committing the access trail: %s", sqlite3_errstr(src));
	return rc;
}

struct head {
	bool present, has_mac;
	int64_t rows;
	char hash[65], mac[65];
};

static int head_read(sqlite3 *db, struct head *h, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(h, 0, sizeof(*h));
	rc = prepare(db, "SELECT rows, hash, mac FROM pdnd_access_head WHERE id = 1", &st, err);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		h->present = true;
		h->rows = sqlite3_column_int64(st, 0);
		snprintf(h->hash, sizeof(h->hash), "%s",
			 sb_sql_col(st, 1) ? sb_sql_col(st, 1) : "");
		h->has_mac = sb_sql_col(st, 2) != NULL;
		snprintf(h->mac, sizeof(h->mac), "%s", sb_sql_col(st, 2) ? sb_sql_col(st, 2) : "");
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = db_error(db, err, rc, "reading the access trail head");
	}
	sb_sql_finish(st);
	return rc;
}

/* hex(HMAC-SHA256(key, "pdnd_access_head|v1|rows|hash")). */
static void head_mac(const unsigned char *key, int64_t rows, const char *hash, char out[65])
{
	char msg[128];
	int len = snprintf(msg, sizeof(msg), "pdnd_access_head|v1|%lld|%s", (long long)rows, hash);

	SB_ASSERT(len > 0 && (size_t)len < sizeof(msg));
	sb_audit_hmac_hex(key, msg, (size_t)len, out);
}

/* The head against the chain's end (rows, last) and, with a key, a seal it carries. */
static int head_check(const struct head *h, int64_t rows, const char *last,
		      const unsigned char *key, struct sb_err *err)
{
	char mac[65];

	if (!h->present)
		return sb_err_set(err, SB_EINVAL, 0,
				  "access trail head is missing: deleted outside send-bridge");
	if (h->rows > rows)
		return sb_err_set(err, SB_EINVAL, 0,
				  "access trail broken: %lld rows but the head records %lld "
				  "(rows removed from the end)",
				  (long long)rows, (long long)h->rows);
	if (h->rows != rows || strcmp(h->hash, last))
		return sb_err_set(err, SB_EINVAL, 0,
				  "access trail broken: the head (%lld rows) "
				  "does not match the last row (%lld): "
				  "head or rows changed outside send-bridge",
				  (long long)h->rows, (long long)rows);
	if (!key || !h->has_mac)
		return 0;
	head_mac(key, h->rows, h->hash, mac);
	if (strlen(h->mac) != 64 || CRYPTO_memcmp(mac, h->mac, 64))
		return sb_err_set(err, SB_EINVAL, 0,
				  "access trail seal does not match the audit key: "
				  "the chain was recomputed without the key, "
				  "or [pdnd] audit_key_file is not the key that sealed it");
	return 0;
}

static int head_write(sqlite3 *db, int64_t rows, const char *hash, const unsigned char *key,
		      struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	char mac[65];
	int rc;

	rc = prepare(db, "UPDATE pdnd_access_head SET rows = ?1, hash = ?2, mac = ?3 WHERE id = 1",
		     &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, rows);
	sb_sql_bind_text(st, 2, hash);
	if (key)
		head_mac(key, rows, hash, mac);
	sb_sql_bind_text(st, 3, key ? mac : NULL);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0
		: db_error(db, err, sqlite3_errcode(db), "moving the access trail head");
	if (rc == 0 && sqlite3_changes(db) != 1)
		rc = sb_err_set(err, SB_EINVAL, 0,
				"access trail head is missing: deleted outside send-bridge");
	sb_sql_finish(st);
	return rc;
}

/*
 * The chain's last row (id 0 and the genesis when empty) and the head, checked as an
 * append needs: extending a trail whose head disagrees with it would bury the evidence
 * under a fresh head (and a fresh seal), so that is refused and verify still shows it.
 */
static int tail_check(sqlite3 *db, const unsigned char *key, int64_t *last_id, char last[65],
		      struct head *h, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(db, "SELECT id, hash FROM pdnd_access ORDER BY id DESC LIMIT 1", &st, err);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*last_id = sqlite3_column_int64(st, 0);
		snprintf(last, 65, "%s", sb_sql_col(st, 1) ? sb_sql_col(st, 1) : "");
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		*last_id = 0;
		memcpy(last, genesis, 65);
		rc = 0;
	} else {
		rc = db_error(db, err, rc, "reading the access trail");
	}
	sb_sql_finish(st);
	if (rc == 0)
		rc = head_read(db, h, err);
	if (rc == 0)
		rc = head_check(h, *last_id, last, key, err);
	if (rc == 0 && h->has_mac && !key)
		rc = sb_err_set(err, SB_ECONFIG, 0,
				"access trail is sealed: appending needs [pdnd] audit_key_file");
	return rc;
}

int pdnd_access_ready(sqlite3 *db, const unsigned char *key, struct sb_err *err)
{
	struct head h;
	char last[65];
	int64_t id;
	bool own_tx;
	int rc;

	rc = tx_begin(db, false, &own_tx, err);
	if (rc < 0)
		return rc;
	rc = tail_check(db, key, &id, last, &h, err);
	return tx_end(db, own_tx, rc, err);
}

int pdnd_access_append(sqlite3 *db, const unsigned char *key, const struct pdnd_access *a,
		       struct sb_err *err)
{
	const char *f[NFIELDS] = { a->operator_id, a->office, a->eservice, a->purpose_id,
				   a->act_ref, a->subject, a->outcome, a->correlation, NULL };
	sqlite3_stmt *st = NULL;
	struct head h;
	char prev[65], hash[65];
	int64_t id = 0, at = sb_now();
	bool own_tx;
	int rc;

	if (!a->operator_id || !a->office || !a->eservice || !a->subject || !a->outcome ||
	    strlen(a->subject) != 64)
		return sb_err_set(err, SB_EINVAL, 0,
				  "access trail: operator, office, e-service, subject hash and "
				  "outcome are required");
	rc = tx_begin(db, true, &own_tx, err);
	if (rc < 0)
		return rc;
	rc = tail_check(db, key, &id, prev, &h, err);
	if (rc < 0)
		goto cleanup;
	id++;
	row_hash(prev, id, at, f, hash);
	rc = prepare(db, "INSERT INTO pdnd_access (id, at, operator, office, eservice, purpose_id,"
		     " act_ref, subject, outcome, correlation, prev_hash, hash)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", &st, err);
	if (rc < 0)
		goto cleanup;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, at);
	for (int i = 0; i < 8; i++)
		sb_sql_bind_text(st, 3 + i, f[i]);
	sb_sql_bind_text(st, 11, prev);
	sb_sql_bind_text(st, 12, hash);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0
		: db_error(db, err, sqlite3_errcode(db), "appending to the access trail");
	/* An unsealed head stays unsealed: only pdnd_access_seal() seals (see the header). */
	if (rc == 0)
		rc = head_write(db, id, hash, h.has_mac ? key : NULL, err);
cleanup:
	sb_sql_finish(st);
	return tx_end(db, own_tx, rc, err);
}

/* Walk the chain from the genesis: row count and last hash out, expect checked on the way. */
static int chain_walk(sqlite3 *db, const struct pdnd_access_head *expect, int64_t *rows_out,
		      char last[65], struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	char prev[65], hash[65];
	int64_t expect_id = 1, rows = 0;
	int rc;

	memcpy(prev, genesis, sizeof(prev));
	if (expect && expect->rows == 0 && strcmp(expect->hash, genesis))
		return sb_err_set(err, SB_EINVAL, 0,
				  "recorded head: a head of 0 rows has the hash of 64 zeros");
	rc = prepare(db, "SELECT id, at, operator, office, eservice, purpose_id, act_ref, subject,"
		     " outcome, correlation, prev_hash, hash"
		     " FROM pdnd_access ORDER BY id", &st, err);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const char *f[NFIELDS] = { sb_sql_col(st, 2), sb_sql_col(st, 3), sb_sql_col(st, 4),
					   sb_sql_col(st, 5), sb_sql_col(st, 6), sb_sql_col(st, 7),
					   sb_sql_col(st, 8), sb_sql_col(st, 9), NULL };

		if (id != expect_id) {
			rc = sb_err_set(err, SB_EINVAL, 0, "access trail broken: row %lld missing",
					(long long)expect_id);
			goto cleanup;
		}
		if (!sb_sql_col(st, 10) || strcmp(sb_sql_col(st, 10), prev)) {
			rc = sb_err_set(err, SB_EINVAL, 0,
					"access trail broken at row %lld: not linked to row %lld "
					"(removed or reordered rows)",
					(long long)id, (long long)id - 1);
			goto cleanup;
		}
		row_hash(prev, id, sqlite3_column_int64(st, 1), f, hash);
		if (!sb_sql_col(st, 11) || strcmp(sb_sql_col(st, 11), hash)) {
			rc = sb_err_set(err, SB_EINVAL, 0,
					"access trail broken at row %lld: altered", (long long)id);
			goto cleanup;
		}
		if (expect && id == expect->rows && strcmp(hash, expect->hash)) {
			rc = sb_err_set(err, SB_EINVAL, 0,
					"access trail does not match the recorded head: "
					"row %lld has another hash "
					"(rows up to it changed, or the chain rewritten)",
					(long long)id);
			goto cleanup;
		}
		memcpy(prev, hash, sizeof(prev));
		expect_id++;
		rows++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_error(db, err, rc, "reading the access trail");
		goto cleanup;
	}
	rc = 0;
	if (expect && rows < expect->rows) {
		rc = sb_err_set(err, SB_EINVAL, 0,
				"access trail has %lld rows, "
				"fewer than the %lld of the recorded head "
				"(rows removed from the end)",
				(long long)rows, (long long)expect->rows);
		goto cleanup;
	}
	*rows_out = rows;
	memcpy(last, prev, 65);
cleanup:
	sb_sql_finish(st);
	return rc;
}

/* Chain, head and (with key) seal, inside the caller's transaction. */
static int check_all(sqlite3 *db, const unsigned char *key, const struct pdnd_access_head *expect,
		     struct pdnd_access_head *res, struct head *h, struct sb_err *err)
{
	int rc;

	memset(res, 0, sizeof(*res));
	memset(h, 0, sizeof(*h));
	rc = chain_walk(db, expect, &res->rows, res->hash, err);
	if (rc == 0)
		rc = head_read(db, h, err);
	if (rc == 0)
		rc = head_check(h, res->rows, res->hash, key, err);
	res->sealed = h->has_mac;
	res->seal_checked = rc == 0 && key && h->has_mac;
	return rc;
}

int pdnd_access_verify(sqlite3 *db, const unsigned char *key,
		       const struct pdnd_access_head *expect, struct pdnd_access_head *head_out,
		       struct sb_err *err)
{
	struct pdnd_access_head res;
	struct head h;
	bool own_tx;
	int rc;

	rc = tx_begin(db, false, &own_tx, err);
	if (rc < 0)
		return rc;
	rc = check_all(db, key, expect, &res, &h, err);
	/*
	 * With a key, an unsealed head is an error, not a warning: stripping the seal is
	 * exactly what someone who recomputed the chain without the key would do.
	 */
	if (rc == 0 && key && !h.has_mac)
		rc = sb_err_set(err, SB_EINVAL, 0,
				"access trail head is not sealed: "
				"if 'send-bridge audit seal' was never run, run it; "
				"otherwise the seal was removed "
				"and the chain may have been rewritten");
	rc = tx_end(db, own_tx, rc, err);
	if (rc == 0 && head_out)
		*head_out = res;
	return rc;
}

int pdnd_access_seal(sqlite3 *db, const unsigned char key[SB_AUDIT_KEY_SIZE],
		     struct pdnd_access_head *head_out, struct sb_err *err)
{
	struct pdnd_access_head res;
	struct head h;
	bool own_tx;
	int rc;

	rc = tx_begin(db, true, &own_tx, err);
	if (rc < 0)
		return rc;
	rc = check_all(db, key, NULL, &res, &h, err);
	if (rc == 0 && !h.has_mac) {
		rc = head_write(db, res.rows, res.hash, key, err);
		res.sealed = res.seal_checked = true;
	}
	rc = tx_end(db, own_tx, rc, err);
	if (rc == 0 && head_out)
		*head_out = res;
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
		fprintf(out, "%-20s %-10s %-36s %8lld %8lld\n",
			sb_sql_col(st, 0), sb_sql_col(st, 1), sb_sql_col(st, 2),
			(long long)sqlite3_column_int64(st, 3),
			(long long)sqlite3_column_int64(st, 4));
	if (rc != SQLITE_DONE) {
		rc = db_error(db, err, rc, "reading the access trail");
		goto cleanup;
	}
	sb_sql_finish(st);
	st = NULL;
	rc = prepare(db, "SELECT id, at, operator, office, eservice, outcome FROM pdnd_access"
		     " WHERE at >= ?1 AND at < ?2"
		     " AND (act_ref IS NULL OR act_ref = '') ORDER BY id", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	fprintf(out, "\nqueries not tied to an act\n");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sb_time_iso8601(sqlite3_column_int64(st, 1), when, sizeof(when));
		fprintf(out, "row %lld %s operator=%s office=%s eservice=%s outcome=%s\n",
			(long long)sqlite3_column_int64(st, 0), when, sb_sql_col(st, 2),
			sb_sql_col(st, 3), sb_sql_col(st, 4), sb_sql_col(st, 5));
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
	sb_sql_finish(st);
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
	sb_sql_bind_text(st, 1, kind);
	sb_sql_bind_text(st, 2, subject);
	sqlite3_bind_int64(st, 3, sb_now() - max_age);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*json_out = sb_xstrdup(sb_sql_col(st, 0) ? sb_sql_col(st, 0) : "");
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = SB_ENOTFOUND;
	} else {
		rc = db_error(db, err, rc, "reading the pdnd cache");
	}
	sb_sql_finish(st);
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
	sb_sql_bind_text(st, 1, kind);
	sb_sql_bind_text(st, 2, subject);
	sb_sql_bind_text(st, 3, json);
	sqlite3_bind_int64(st, 4, sb_now());
	rc = sqlite3_step(st) == SQLITE_DONE ? 0
		: db_error(db, err, sqlite3_errcode(db), "writing the pdnd cache");
	sb_sql_finish(st);
	return rc;
}
