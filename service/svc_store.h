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

#include "sb_err.h"
#include "svc_act.h"
#include "svc_state.h"

struct svc_store;
struct sqlite3;

/* The schema version this build writes. */
#define SVC_STORE_VERSION 4

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
 * Append to the audit trail: who did what to which subject. Rows cannot be
 * changed or deleted (triggers), and each carries the SHA-256 of the previous
 * one so that a removed or altered row shows.
 */
int svc_store_audit(struct svc_store *s, const char *actor, const char *office,
		    const char *action, const char *subject, const char *detail,
		    struct sb_err *err);
/* Walk the chain; SB_EINVAL with the first bad row id in err when broken. */
int svc_store_audit_verify(struct svc_store *s, int64_t *rows_out, struct sb_err *err);

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
