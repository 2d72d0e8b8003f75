/*
 * pdnd/'s tables in the store: the access trail of every e-service query
 * (Circolare 73/2023 of the Ministry of the Interior: each Comune traces
 * its users' access to ANPR) and the cache of resolution results.
 *
 * The tables are pdnd/'s own: pdnd_store_migrate() creates and upgrades
 * them from an append-only list, versioned in meta under "schema.pdnd".
 * The service calls it after svc_store_open(); functions here take the
 * store's connection (svc_store_db()) and use it from one thread at a time.
 *
 * The trail holds no tax code: a subject is a keyed hash (HMAC-SHA256 with
 * the installation key), which cannot be reversed by enumerating tax codes
 * without the key but still lets an auditor with the key find one
 * person's queries.
 */
#ifndef PDND_STORE_H
#define PDND_STORE_H

#include <stdint.h>
#include <stdio.h>

#include "sb_err.h"

struct sqlite3;

#define PDND_STORE_VERSION 1
#define PDND_SUBJECT_HASH_SIZE 65

/* Create or upgrade pdnd/'s tables in one transaction. SB_ECONFIG for a newer schema. */
int pdnd_store_migrate(struct sqlite3 *db, struct sb_err *err);

/* hex(HMAC-SHA256(key, tax code)) into out. */
void pdnd_subject_hash(const unsigned char key[32], const char *tax_id,
		       char out[PDND_SUBJECT_HASH_SIZE]);

/* One row of the access trail. Strings may be NULL where noted. */
struct pdnd_access {
	const char *operator_id;    /* operator or service user */
	const char *office;
	const char *eservice;       /* "anpr-c030", "anpr-c001", "inad" */
	const char *purpose_id;
	const char *act_ref;        /* NULL: a query not tied to an act */
	const char *subject;        /* pdnd_subject_hash() of the tax code */
	const char *outcome;        /* "found", "not-found", "refused", "error: ..." */
	const char *correlation;    /* GovWay / PDND ids, may be NULL */
};

/*
 * Append a row (time now) linked to the previous one by SHA-256. Rows
 * cannot be changed or deleted through SQL (triggers refuse it). Works
 * alone (its own BEGIN IMMEDIATE) or inside the caller's transaction (a
 * savepoint: the row commits with the caller's work).
 */
int pdnd_access_append(struct sqlite3 *db, const struct pdnd_access *a, struct sb_err *err);

/*
 * Walk the chain: SB_EINVAL naming the first row that was altered, removed
 * or moved. rows_out (may be NULL) gets the count checked.
 */
int pdnd_access_verify(struct sqlite3 *db, int64_t *rows_out, struct sb_err *err);

/*
 * Report for [from, to) (seconds since the epoch): queries counted per
 * operator, e-service and purpose, then the queries not tied to an act,
 * written to out as text.
 */
int pdnd_access_report(struct sqlite3 *db, int64_t from, int64_t to, FILE *out,
		       struct sb_err *err);

/*
 * Result cache: kind ("anpr", "inad") and subject hash to a JSON text.
 * get returns SB_ENOTFOUND when absent or older than max_age seconds;
 * *json_out is freed with free().
 */
int pdnd_cache_get(struct sqlite3 *db, const char *kind, const char *subject, int64_t max_age,
		   char **json_out, struct sb_err *err);
int pdnd_cache_put(struct sqlite3 *db, const char *kind, const char *subject, const char *json,
		   struct sb_err *err);

#endif
