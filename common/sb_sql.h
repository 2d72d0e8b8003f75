/*
 * Small SQLite helpers for the modules that keep tables in the store
 * (service/, pdnd/, protocol/): the migration runner they share and the
 * binding helpers every prepared statement needs. The store itself is
 * opened by service/ only.
 */
#ifndef SB_SQL_H
#define SB_SQL_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_err.h"

struct sqlite3;
struct sqlite3_stmt;

/*
 * Bring one module's tables up to date: list[i] is the SQL that takes them
 * from version i to i+1 (append-only; never edit a shipped entry). The
 * version is kept in the store's meta table under key ("schema.pdnd").
 * Each migration runs in one transaction with its version bump, so a crash
 * leaves the previous version intact. SB_ECONFIG when the tables are newer
 * than list (an older send-bridge must not misread them), SB_EIO (or
 * SB_ETEMP when busy) otherwise. Idempotent.
 */
int sb_sql_migrate(struct sqlite3 *db, const char *key, const char *const *list, size_t n,
		   struct sb_err *err);

/*
 * Prepared statements kept per connection. Parsing SQL was a sixth of the
 * daemon's CPU: every step prepares the same few dozen statements again.
 * A connection opts in with sb_sql_cache_enable (the store does, for every
 * connection it opens) and must call sb_sql_cache_forget before it is
 * closed. sb_sql_prepare returns a statement reset and unbound, cached or
 * freshly prepared (for a connection not enabled, or a full cache);
 * sb_sql_finish gives it back (a cached one is reset and unbound, any other
 * finalized), NULL allowed. A statement is never handed to two callers at
 * once. Both are safe from any thread. sb_sql_prepare returns SQLite's code.
 */
void sb_sql_cache_enable(struct sqlite3 *db);
void sb_sql_cache_forget(struct sqlite3 *db);
int sb_sql_prepare(struct sqlite3 *db, const char *sql, struct sqlite3_stmt **out);
void sb_sql_finish(struct sqlite3_stmt *st);

/*
 * Transactions on a connection that threads may share. The daemon's workers
 * share one store connection (svc_store_open_shared): SQLite serializes each
 * call on it, and sb_sql_begin also holds the connection's mutex until the
 * matching sb_sql_end, so no other thread's statement lands inside the
 * transaction. (On a connection opened without a mutex both are plain
 * BEGIN and COMMIT.) Called again by the thread that holds a transaction on
 * db, or inside a transaction opened by other means, begin makes a
 * savepoint instead, so a nested failure undoes only the nested work.
 * write takes the write lock at BEGIN (IMMEDIATE) so that a writer never
 * fails half-way on a lock. sb_sql_end commits, or rolls back when commit
 * is false or the commit fails; it always ends the level begun. After the
 * outermost commit it releases the mutex and then runs the connection's
 * after-commit callback, where the store makes the commit durable without
 * holding the connection. Both return SQLite's code.
 */
int sb_sql_begin(struct sqlite3 *db, bool write);
int sb_sql_end(struct sqlite3 *db, bool commit);
/* How many levels of transaction this thread holds on db (0: none). */
int sb_sql_depth(struct sqlite3 *db);
/*
 * Hold db for a sequence of statements outside a transaction that must not
 * interleave with another thread's (a scan of many rows, a last rowid).
 * Recursive; never across an external call.
 */
void sb_sql_lock(struct sqlite3 *db);
void sb_sql_unlock(struct sqlite3 *db);
/*
 * The callback sb_sql_end runs after an outermost commit, outside the lock;
 * an error it returns (SQLite's code) is the commit's. The connection must
 * have its statement cache enabled; NULL removes it.
 */
void sb_sql_after_commit(struct sqlite3 *db, int (*fn)(void *arg), void *arg);

/* Run one statement that returns no rows (cached, no bindings); SQLite's code. */
int sb_sql_run(struct sqlite3 *db, const char *sql);

/* Bind a C string (copied) or NULL as SQL NULL. */
void sb_sql_bind_text(struct sqlite3_stmt *st, int i, const char *s);

/* Column i as a C string, borrowed until the next step or finalize; NULL for SQL NULL. */
const char *sb_sql_col(struct sqlite3_stmt *st, int i);

#endif
