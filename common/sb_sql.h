/*
 * Small SQLite helpers for the modules that keep tables in the store
 * (service/, pdnd/, protocol/): the migration runner they share and the
 * binding helpers every prepared statement needs. The store itself is
 * opened by service/ only.
 */
#ifndef SB_SQL_H
#define SB_SQL_H

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

/* Bind a C string (copied) or NULL as SQL NULL. */
void sb_sql_bind_text(struct sqlite3_stmt *st, int i, const char *s);

/* Column i as a C string, borrowed until the next step or finalize; NULL for SQL NULL. */
const char *sb_sql_col(struct sqlite3_stmt *st, int i);

#endif
