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
 *
 * The chain alone cannot show rows cut from its end, nor a chain recomputed
 * by someone holding the file (it uses no secret). So the store also keeps
 * a head (row count and last hash), updated with each append, and once
 * `audit seal` has run, an HMAC-SHA256 of the head with the audit key
 * ([pdnd] audit_key_file, which is never in the database; sb_audit_key_load). A head is
 * sealed only by pdnd_access_seal(), a deliberate act: an append never
 * seals an unsealed head, or someone who stripped the seal and rewrote the
 * chain would have it blessed by the next query.
 */
#ifndef PDND_STORE_H
#define PDND_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sb_audit.h"
#include "sb_err.h"

struct sqlite3;

#define PDND_STORE_VERSION 2
#define PDND_SUBJECT_HASH_SIZE 65
#define PDND_HEAD_HASH_SIZE 65

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
 * Append a row (time now) linked to the previous one by SHA-256, and move
 * the head to it. key is the audit key, or NULL when none is configured.
 * Refused (SB_EINVAL) when the head does not match the chain's end or its
 * seal does not match key, and (SB_ECONFIG) when the head is sealed and no
 * key is given: the trail is not extended past tampering. Rows cannot be
 * changed or deleted through SQL (triggers refuse it). Works alone (its
 * own BEGIN IMMEDIATE) or inside the caller's transaction (a savepoint:
 * the row commits with the caller's work).
 */
int pdnd_access_append(struct sqlite3 *db, const unsigned char *key, const struct pdnd_access *a,
		       struct sb_err *err);

/*
 * Whether a row could be appended now with key (may be NULL): the same
 * refusals as pdnd_access_append, checked before a query leaves the
 * machine, so a query that could not be traced is not made at all.
 */
int pdnd_access_ready(struct sqlite3 *db, const unsigned char *key, struct sb_err *err);

/* The end of the chain as verify found it. */
struct pdnd_access_head {
	int64_t rows;
	char hash[PDND_HEAD_HASH_SIZE];     /* the last row's hash; 64 zeros when empty */
	bool sealed;                        /* the head carries a seal */
	bool seal_checked;                  /* ... and it matched the key given to verify */
};

/*
 * Walk the chain and check it against the head: SB_EINVAL naming the first
 * row that was altered, removed or moved, rows cut from the end, a head
 * changed by hand. With key (may be NULL): the head must be sealed, and
 * the seal must match, which also shows a chain recomputed without the
 * key. With expect (may be NULL; only rows and hash are read): row
 * expect->rows must still exist and carry expect->hash, a head recorded
 * earlier outside the machine. head_out (may be NULL) is written on
 * success only.
 */
int pdnd_access_verify(struct sqlite3 *db, const unsigned char *key,
		       const struct pdnd_access_head *expect, struct pdnd_access_head *head_out,
		       struct sb_err *err);

/*
 * Seal the head with key after verifying the chain and the head (its own
 * transaction, or a savepoint in the caller's). A head already sealed
 * with key is left as it is; one sealed with another key, or a broken
 * chain, is refused with SB_EINVAL. head_out (may be NULL) as for verify.
 */
int pdnd_access_seal(struct sqlite3 *db, const unsigned char key[SB_AUDIT_KEY_SIZE],
		     struct pdnd_access_head *head_out, struct sb_err *err);

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
