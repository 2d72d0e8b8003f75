/*
 * The store: one SQLite file in WAL mode that holds the state of every act,
 * its recipients, documents, notification, events, receipts, protocol
 * registrations and the audit trail. Only service/ opens it; other modules
 * that keep data in it (the embedded protocol register) receive the handle.
 *
 * The schema is versioned (PRAGMA user_version) and migrated forward at
 * open; every write runs in a transaction; statements are prepared, never
 * built from strings.
 *
 * A struct svc_store is used by one thread at a time. Handles opened with
 * svc_store_open have a connection each; the daemon's threads open theirs
 * with svc_store_open_shared and share one connection (docs/decisions/0008).
 * On a shared connection, every transaction goes through svc_store_begin or
 * sb_sql_begin, which keep other threads out of it until it ends, and a
 * sequence of statements that must see no other thread's work in between
 * (a scan of many rows, a last insert rowid) runs under svc_store_lock.
 */
#ifndef SVC_STORE_H
#define SVC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_audit.h"
#include "sb_err.h"
#include "svc_act.h"
#include "svc_state.h"

struct svc_store;
struct sqlite3;
struct sb_cfg;

/* The schema version this build writes. */
#define SVC_STORE_VERSION 6

/*
 * Open (creating if needed) and migrate to SVC_STORE_VERSION. A file newer
 * than this build is refused (SB_ECONFIG) rather than misread.
 */
int svc_store_open(struct svc_store **out, const char *path, int busy_timeout_ms,
		   struct sb_err *err);
/* Same, migrating only up to version (tests build older files with it). */
int svc_store_open_version(struct svc_store **out, const char *path, int busy_timeout_ms,
			   int version, struct sb_err *err);
/*
 * Same, but every handle opened this way on the same path in this process
 * shares one connection, and so its page cache.
 */
int svc_store_open_shared(struct svc_store **out, const char *path, int busy_timeout_ms,
			  struct sb_err *err);
void svc_store_close(struct svc_store *s);

/* The connection, borrowed, for modules that keep tables in the store. */
struct sqlite3 *svc_store_db(struct svc_store *s);
int svc_store_version(struct svc_store *s);

/* Transactions (BEGIN IMMEDIATE: a writer takes the lock up front, so it never has to retry). */
int svc_store_begin(struct svc_store *s, struct sb_err *err);
int svc_store_commit(struct svc_store *s, struct sb_err *err);
/* Safe to call when no transaction is open. */
void svc_store_rollback(struct svc_store *s);
/* Hold the connection outside a transaction (recursive; never across an external call). */
void svc_store_lock(struct svc_store *s);
void svc_store_unlock(struct svc_store *s);

/* meta: small key/value settings (installation key, stream id, last event id). */
int svc_store_meta_get(struct svc_store *s, const char *key, char **value_out,
		       struct sb_err *err);            /* SB_ENOTFOUND when absent; free() */
int svc_store_meta_set(struct svc_store *s, const char *key, const char *value,
		       struct sb_err *err);

/* The installation's key for sb_pii_tag, created on first use (32 random bytes). */
int svc_store_pii_key(struct svc_store *s, unsigned char key[32], struct sb_err *err);

/*
 * Record a newly received act with its recipients and documents, in state
 * received, in one transaction: all rows or none. SB_EINVAL if an act with
 * the same id exists. manifest is act.json as read.
 */
int svc_store_act_insert(struct svc_store *s, const struct svc_act *act, const char *manifest,
			 int64_t *id_out, struct sb_err *err);

/* An act's row id and state by act id; SB_ENOTFOUND if unknown. */
int svc_store_act_find(struct svc_store *s, const char *act_id, int64_t *id_out,
		       enum svc_state *state_out, struct sb_err *err);

/*
 * Move an act from state from to state to, recording last_error (may be
 * NULL) and an audit row. SB_EINVAL when the act is not in from any more
 * (another worker moved it): the caller must re-read, never overwrite.
 */
int svc_store_act_transition(struct svc_store *s, int64_t id, enum svc_state from,
			     enum svc_state to, const char *last_error, struct sb_err *err);

/* Count acts in a state (for status and metrics). */
int svc_store_act_count(struct svc_store *s, enum svc_state state, int64_t *out,
			struct sb_err *err);

/*
 * The audit trail: who did what to which subject, one row each, chained so
 * that a row altered, removed or moved shows, with a head (last row id, its
 * hash and a seal) moved with each row so that rows cut from the end show
 * too. Once sealed (svc_store_audit_seal), rows are chained by a MAC with a
 * key derived from the audit key ([pdnd] audit_key_file), never stored in
 * the file, so that someone who can write the file cannot recompute the
 * chain or move the head back to an earlier row either (docs/decisions/0014).
 */

/*
 * Use key (sb_audit_key_load; copied) for the audit trail on s's
 * connection, shared by every handle on it: call it before other threads
 * use the connection. With key NULL, SB_ECONFIG when the trail is sealed
 * (a process that writes audit rows could not): the daemon and the CLI
 * commands that write call it at start either way.
 */
int svc_store_audit_key(struct svc_store *s, const unsigned char *key, struct sb_err *err);
/* The same with the key read from cfg (may be NULL: no key); SB_ECONFIG for a bad key file. */
int svc_store_audit_key_load(struct svc_store *s, const struct sb_cfg *cfg, struct sb_err *err);

/*
 * Append a row (time now), and move the head, in the caller's transaction or
 * one of its own. Rows cannot be changed or deleted through SQL (triggers).
 * SB_ECONFIG when the trail is sealed and no key was given; SB_EINVAL when
 * the head is missing or a row already has the next id.
 */
int svc_store_audit(struct svc_store *s, const char *actor, const char *office,
		    const char *action, const char *subject, const char *detail,
		    struct sb_err *err);

/* The end of the trail as verify or seal found it. */
struct svc_store_audit_head {
	int64_t rows;                   /* the last row's id (ids run from 1 without gaps) */
	char hash[SB_AUDIT_HEX_SIZE];   /* its hash; 64 zeros when empty */
	int64_t keyed_from;             /* first row chained with the key; 0: not sealed */
	bool sealed;
	bool seal_checked;              /* the seal and every keyed row matched the key */
	int64_t unchecked;              /* keyed rows not checked: no key given */
};

/*
 * Walk the chain and check it against the head: SB_EINVAL naming the first
 * row altered, missing or out of place, rows cut from the end, a head that
 * does not match the last row. With a key (svc_store_audit_key): every
 * keyed row's MAC and the head's seal must match it, and the trail must be
 * sealed, so a chain recomputed without the key and a head moved back show.
 * head_out (may be NULL) is written on success only.
 */
int svc_store_audit_verify(struct svc_store *s, struct svc_store_audit_head *head_out,
			   struct sb_err *err);

/*
 * Seal the trail with the key given to svc_store_audit_key (SB_ECONFIG
 * without one), after verifying it: the head gets its seal and a row
 * "audit.sealed" says which earlier rows were chained without the key. A
 * trail already sealed with this key is left as it is; with another key,
 * or broken, SB_EINVAL. Its own transaction, or a savepoint in the caller's.
 */
int svc_store_audit_seal(struct svc_store *s, struct svc_store_audit_head *head_out,
			 struct sb_err *err);

/*
 * On a shared connection a commit returns before it is on disk; this waits
 * until every commit the calling thread made is (one sync for all of them,
 * shared with other threads). The daemon calls it before each platform
 * request, before moving an act's folder and before a worker goes idle;
 * svc_store_close calls it too. SB_EIO when the disk refuses.
 */
int svc_store_barrier(struct sb_err *err);

/*
 * Commits made by this process's connections and the WAL syncs that made
 * them durable (group commit: several commits share one sync).
 */
void svc_store_sync_stats(uint64_t *commits, uint64_t *syncs);

#endif
