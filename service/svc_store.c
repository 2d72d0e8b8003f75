/*
 * The SQLite store: see svc_store.h.
 *
 * Migrations are an append-only list: migration N takes a file from
 * version N-1 to N inside one transaction together with the user_version
 * bump, so a crash mid-migration leaves the old version intact. Never edit
 * a migration that has shipped; add the next one.
 *
 * Design notes: foreign keys are on for every connection. An act's state
 * change must survive a power cut before the next external call is made
 * (DESIGN.md "Pipeline states"), so a commit returns only once its WAL
 * frames are on disk, as with synchronous=FULL. But FULL syncs inside the
 * commit, under SQLite's write lock, so N workers committing at once pay N
 * fsyncs one after the other. Here the connection runs with
 * synchronous=NORMAL and the WAL hook, which SQLite calls after a commit
 * has written its frames, notes the commit; it is made durable by one
 * fdatasync shared by every commit to the same file waiting at that moment
 * in this process (group commit; docs/decisions/0007). A transaction begun
 * with sb_sql_begin waits for that after it has released the connection
 * (sb_sql_end's after-commit callback), so a worker waiting for the disk
 * never holds up the others; a lone statement outside a transaction waits
 * inside the hook.
 *
 * The daemon's threads share one connection (svc_store_open_shared,
 * docs/decisions/0008): with a connection each, every commit made SQLite
 * throw away the page cache of every other connection, and writers polled
 * for the write lock. On that connection a commit does not wait for the
 * disk at all: the thread that made it waits in svc_store_barrier, which
 * the daemon calls before every platform request (sb_http_before_request),
 * before moving an act's folder and before a worker goes idle
 * (docs/decisions/0009). The commits made between two such points share
 * one wait.
 */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_sql.h"
#include "sb_audit.h"
#include "sb_crypto.h"
#include "sb_time.h"
#include "svc_store.h"

/* One SQLite connection: a handle's own, or one shared by every handle opened shared. */
struct conn {
	sqlite3 *db;
	char *shared_path;   /* NULL: a handle's own */
	int refs;
	int version;
	int busy_timeout_ms;
	bool lazy;           /* durability waits for svc_store_barrier */
	struct sb_audit_mac *audit_mac;   /* the audit chain's key; NULL: none configured */
	struct group *group;
	struct conn *next;
};

struct svc_store {
	struct conn *c;
	bool in_tx;
};

/*
 * Checkpoint once the WAL holds this many frames (40 MB at 4 KiB pages;
 * SQLite's default is 1000). The same few pages (the acts index, the tails
 * of the audit, events and register tables) are written again in every
 * window, so a wider one copies each of them to the file fewer times: per
 * act about 7% fewer writes and half the reads (perf stat, n=600).
 */
#define WAL_CHECKPOINT_FRAMES 10000

/*
 * Group commit state, one per store file: a sync of one file's WAL says
 * nothing about another's. Shared by the connections of this process that
 * have the file open (registry under groups_lock, the rest under g->lock).
 */
struct group {
	char *path;
	int refs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t written;   /* commits whose WAL frames have been written */
	uint64_t durable;   /* of those, known to be on disk */
	bool syncing;       /* the syncer alone touches wal_fd */
	int wal_fd;
	bool checkpoint_due, checkpointing;
	sqlite3 *checkpointer;   /* the checkpointer's own connection, opened when first due */
	struct group *next;
};

static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;
static struct group *groups;
static uint64_t total_commits, total_syncs;   /* for the metrics, under groups_lock */

/* The shared connections (under shared_lock, held across a whole open). */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *shared;

static int wait_pending(void);

/*
 * The last commit this thread made and has not seen on disk yet: sb_sql_end
 * waits for it on a connection of a handle's own, svc_store_barrier on the
 * shared one.
 */
static _Thread_local struct group *pending_group;
static _Thread_local uint64_t pending_commit;
static _Thread_local int64_t busy_since_ms;

static struct group *group_get(const char *path)
{
	struct group *g;

	pthread_mutex_lock(&groups_lock);
	for (g = groups; g && strcmp(g->path, path); g = g->next)
		;
	if (!g) {
		g = sb_xcalloc(1, sizeof(*g));
		g->path = sb_xstrdup(path);
		g->wal_fd = -1;
		pthread_mutex_init(&g->lock, NULL);
		pthread_cond_init(&g->cond, NULL);
		g->next = groups;
		groups = g;
	}
	g->refs++;
	pthread_mutex_unlock(&groups_lock);
	return g;
}

static void group_put(struct group *g)
{
	struct group **pp;

	if (!g)
		return;
	pthread_mutex_lock(&groups_lock);
	if (--g->refs > 0) {
		pthread_mutex_unlock(&groups_lock);
		return;
	}
	for (pp = &groups; *pp != g; pp = &(*pp)->next)
		;
	*pp = g->next;
	pthread_mutex_unlock(&groups_lock);
	if (g->checkpointer)
		sqlite3_close_v2(g->checkpointer);
	if (g->wal_fd >= 0)
		close(g->wal_fd);
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
	free(g->path);
	free(g);
}

/*
 * fdatasync works on the file, not on the descriptor: a descriptor of our
 * own on the WAL file makes durable every frame any connection wrote to it,
 * without touching SQLite's handle while another thread writes through it.
 * The WAL file stays the same file while this process has the store open
 * (SQLite removes it only when the last connection closes); its directory
 * entry is made durable once, when the descriptor is opened.
 */
static int sync_wal(struct group *g)
{
	if (g->wal_fd < 0) {
		char *wal = sb_xasprintf("%s-wal", g->path);
		char *dir = sb_xstrdup(g->path), *slash = strrchr(dir, '/');
		int dfd;

		g->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
		free(wal);
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		dfd = g->wal_fd < 0 ? -1 : open(slash ? dir : ".",
						O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		free(dir);
		if (dfd < 0 || fsync(dfd) < 0) {
			if (dfd >= 0)
				close(dfd);
			if (g->wal_fd >= 0)
				close(g->wal_fd);
			g->wal_fd = -1;
			return SQLITE_IOERR_FSYNC;
		}
		close(dfd);
	}
	return fdatasync(g->wal_fd) == 0 ? SQLITE_OK : SQLITE_IOERR_FSYNC;
}

/*
 * The first committer to arrive syncs for everyone who committed before it
 * started, and those arriving meanwhile wait for the next round. An error
 * fails the commit's caller (the commit itself has happened): it retries
 * its step, which is idempotent on replay.
 */
static int make_durable(struct group *g, uint64_t mine)
{
	uint64_t target;
	int rc = SQLITE_OK, syncs = 0;

	if (!mine)
		return SQLITE_OK;
	pthread_mutex_lock(&g->lock);
	while (g->durable < mine) {
		if (g->syncing) {
			pthread_cond_wait(&g->cond, &g->lock);
			continue;
		}
		g->syncing = true;
		target = g->written;
		pthread_mutex_unlock(&g->lock);
		rc = sync_wal(g);
		syncs++;
		pthread_mutex_lock(&g->lock);
		g->syncing = false;
		if (rc == SQLITE_OK && target > g->durable)
			g->durable = target;
		pthread_cond_broadcast(&g->cond);
		if (rc != SQLITE_OK)
			break;
	}
	pthread_mutex_unlock(&g->lock);
	if (syncs) {
		pthread_mutex_lock(&groups_lock);
		total_syncs += (uint64_t)syncs;
		pthread_mutex_unlock(&groups_lock);
	}
	return rc;
}

/*
 * Setting a WAL hook replaces SQLite's auto-checkpoint, so do its job, on a
 * connection of its own: a passive checkpoint runs beside the writers, and
 * the one who noticed it was due runs it after its own commit is durable,
 * holding nobody up.
 */
static void checkpoint(struct group *g)
{
	bool run;

	pthread_mutex_lock(&g->lock);
	run = g->checkpoint_due && !g->checkpointing;
	if (run) {
		g->checkpoint_due = false;
		g->checkpointing = true;
	}
	pthread_mutex_unlock(&g->lock);
	if (!run)
		return;
	if (!g->checkpointer &&
	    sqlite3_open_v2(g->path, &g->checkpointer, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		sqlite3_close_v2(g->checkpointer);
		g->checkpointer = NULL;
	}
	if (g->checkpointer) {
		sqlite3_exec(g->checkpointer, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
		sqlite3_wal_checkpoint_v2(g->checkpointer, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
					  NULL);
	}
	pthread_mutex_lock(&g->lock);
	g->checkpointing = false;
	pthread_mutex_unlock(&g->lock);
}

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct conn *c = arg;
	struct group *g = c->group;
	uint64_t mine;
	int rc;

	(void)name;
	pthread_mutex_lock(&g->lock);
	mine = ++g->written;
	if (frames >= WAL_CHECKPOINT_FRAMES)
		g->checkpoint_due = true;
	pthread_mutex_unlock(&g->lock);
	pthread_mutex_lock(&groups_lock);
	total_commits++;
	pthread_mutex_unlock(&groups_lock);
	if (pending_group && pending_group != g && wait_pending() != SQLITE_OK)
		return SQLITE_IOERR_FSYNC;   /* another file's commit, owed by this thread */
	if (sb_sql_depth(db) > 0 || c->lazy) {
		/*
		 * sb_sql_end calls after_commit once it has let the connection go;
		 * on a lazy connection svc_store_barrier waits, before the thread's
		 * next external step. (A later commit of this thread covers this one:
		 * the WAL is synced in order.)
		 */
		pending_group = g;
		pending_commit = mine;
		return SQLITE_OK;
	}
	rc = make_durable(g, mine);
	if (rc == SQLITE_OK)
		checkpoint(g);
	return rc;
}

static int wait_pending(void)
{
	struct group *g = pending_group;
	uint64_t mine = pending_commit;
	int rc;

	if (!g)
		return SQLITE_OK;
	pending_group = NULL;
	pending_commit = 0;
	rc = make_durable(g, mine);
	if (rc == SQLITE_OK)
		checkpoint(g);
	else {
		/* Still owed: the next barrier tries again. */
		pending_group = g;
		pending_commit = mine;
	}
	return rc;
}

static int after_commit(void *arg)
{
	struct conn *c = arg;

	return c->lazy ? SQLITE_OK : wait_pending();
}

int svc_store_barrier(struct sb_err *err)
{
	int rc = wait_pending();

	if (rc != SQLITE_OK)
		return sb_err_set(err, SB_EIO, rc,
				  "store: cannot make the last changes durable: %s",
				  sqlite3_errstr(rc));
	return 0;
}

void svc_store_sync_stats(uint64_t *commits, uint64_t *syncs)
{
	pthread_mutex_lock(&groups_lock);
	*commits = total_commits;
	*syncs = total_syncs;
	pthread_mutex_unlock(&groups_lock);
}

/*
 * Waiting for another process's writer (the CLI, the web page's
 * connection). SQLite's default handler sleeps 1, 2, 5 ... up to 100 ms at
 * a time, far longer than a commit here holds the write lock
 * (microseconds: the fsync happens after it is released). Poll at 50 us,
 * doubling up to 2 ms, within [store] busy_timeout_ms.
 */
static int on_busy(void *arg, int n)
{
	struct conn *c = arg;
	int64_t now = sb_mono_ms();
	long us = 50L << (n < 6 ? n : 6);
	struct timespec ts;

	if (c->busy_timeout_ms == 0)
		return 0;
	if (n == 0)
		busy_since_ms = now;
	else if (now - busy_since_ms >= c->busy_timeout_ms)
		return 0;
	if (us > 2000)
		us = 2000;
	ts.tv_sec = 0;
	ts.tv_nsec = us * 1000;
	nanosleep(&ts, NULL);
	return 1;
}

/* Migration 1's CHECKs, as SQLite keeps their text; migration 4 rewrites them. */
#define ACTS_STATE_CHECK_V1 \
	"CHECK (state IN ('received','checked','resolved','registered'," \
	"    'uploaded','submitted','accepted','delivering','closed','rejected'," \
	"'refused','failed'))"
#define DOCUMENTS_KIND_CHECK_V1 "CHECK (kind IN ('document','pagopa','f24'))"

static const char *const migrations[] = {
	/* 1: acts and what hangs off them */
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL"
	");"
	"CREATE TABLE acts ("
	"  id INTEGER PRIMARY KEY,"
	"  act_id TEXT NOT NULL UNIQUE,"
	"  office TEXT NOT NULL,"
	"  operator TEXT,"
	"  subject TEXT NOT NULL,"
	"  taxonomy_code TEXT,"
	"  state TEXT NOT NULL " ACTS_STATE_CHECK_V1 ","
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_at INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT,"
	"  manifest TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL"
	");"
	"CREATE TABLE recipients ("
	"  id INTEGER PRIMARY KEY,"
	"  act INTEGER NOT NULL REFERENCES acts(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  type TEXT NOT NULL CHECK (type IN ('PF','PG')),"
	"  tax_id TEXT NOT NULL,"
	"  denomination TEXT NOT NULL,"
	"  UNIQUE (act, idx),"
	"  UNIQUE (act, tax_id)"
	");"
	"CREATE TABLE documents ("
	"  id INTEGER PRIMARY KEY,"
	"  act INTEGER NOT NULL REFERENCES acts(id) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL " DOCUMENTS_KIND_CHECK_V1 ","
	"  recipient_idx INTEGER,"
	"  idx INTEGER NOT NULL,"
	"  path TEXT NOT NULL,"
	"  title TEXT,"
	"  size INTEGER NOT NULL CHECK (size > 0),"
	"  sha256 TEXT NOT NULL CHECK (length(sha256) = 64),"
	"  content_type TEXT NOT NULL,"
	"  upload_key TEXT,"
	"  version_token TEXT,"
	"  UNIQUE (act, kind, recipient_idx, idx)"
	");"
	"CREATE TABLE notifications ("
	"  id INTEGER PRIMARY KEY,"
	"  act INTEGER NOT NULL UNIQUE REFERENCES acts(id),"
	"  protocol_number TEXT NOT NULL,"
	"  idempotence_token TEXT NOT NULL,"
	"  request_id TEXT UNIQUE,"
	"  iun TEXT UNIQUE,"
	"  status TEXT,"
	"  refusal TEXT,"
	"  cost_cents INTEGER,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL"
	");"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY,"
	"  event_id TEXT NOT NULL UNIQUE,"
	"  iun TEXT,"
	"  category TEXT NOT NULL,"
	"  event_timestamp TEXT,"
	"  element TEXT NOT NULL,"
	"  received_at INTEGER NOT NULL"
	");"
	"CREATE TABLE receipts ("
	"  id INTEGER PRIMARY KEY,"
	"  act INTEGER NOT NULL REFERENCES acts(id),"
	"  iun TEXT NOT NULL,"
	"  legal_fact_key TEXT NOT NULL UNIQUE,"
	"  category TEXT NOT NULL,"
	"  path TEXT,"
	"  sha256 TEXT,"
	"  protocol_number TEXT,"
	"  registered_at INTEGER"
	");"
	"CREATE TABLE registrations ("
	"  id INTEGER PRIMARY KEY,"
	"  act INTEGER REFERENCES acts(id),"
	"  direction TEXT NOT NULL CHECK (direction IN ('out','in')),"
	"  number TEXT NOT NULL,"
	"  registered_at INTEGER NOT NULL,"
	"  receipt INTEGER REFERENCES receipts(id),"
	"  UNIQUE (direction, number)"
	");",

	/* 2: the audit trail (append-only, hash-chained) and the scheduler's index */
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  office TEXT,"
	"  action TEXT NOT NULL,"
	"  subject TEXT,"
	"  detail TEXT,"
	"  prev_hash TEXT NOT NULL,"
	"  hash TEXT NOT NULL"
	");"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit rows cannot be changed'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit rows cannot be deleted'); END;"
	"CREATE INDEX acts_due ON acts (state, next_attempt_at);"
	"CREATE INDEX notifications_iun ON notifications (iun);",

	/*
	 * 3: indexes for the lookups made once per act and step, which scanned
	 * whole tables and slowed the pipeline as the store grew
	 */
	"CREATE INDEX events_iun ON events (iun, id);"
	"CREATE INDEX receipts_act ON receipts (act, id);"
	"CREATE INDEX notifications_protocol ON notifications (protocol_number);",

	/* 4: rewrite_checks (C: it edits the schema's text) */
	NULL,

	/*
	 * 5: the audit trail's head, taken from the rows already there, which keep
	 * their unkeyed hashes and verify as before. It starts unsealed: the key is
	 * not known here, and sealing is the deliberate `audit seal`, which anchors
	 * the existing rows under the key with a row saying so (docs/decisions/0014).
	 */
	"CREATE TABLE audit_head ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  last_id INTEGER NOT NULL,"
	"  hash TEXT NOT NULL,"
	"  keyed_from INTEGER,"
	"  seal TEXT,"
	"  CHECK ((keyed_from IS NULL) = (seal IS NULL))"
	");"
	"INSERT INTO audit_head (id, last_id, hash)"
	"  SELECT 1, coalesce(max(id), 0),"
	" coalesce((SELECT hash FROM audit ORDER BY id DESC LIMIT 1),"
	"  '" SB_AUDIT_GENESIS "') FROM audit;"
	"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head"
	"  BEGIN SELECT RAISE(ABORT, 'the audit head cannot be deleted'); END;"
	"CREATE TRIGGER audit_head_no_rewind BEFORE UPDATE ON audit_head"
	"  WHEN NEW.last_id < OLD.last_id"
	"  BEGIN SELECT RAISE(ABORT, 'the audit head cannot move back'); END;"
	"CREATE TRIGGER audit_head_stays_sealed BEFORE UPDATE ON audit_head"
	"  WHEN OLD.keyed_from IS NOT NULL"
	"  AND (NEW.keyed_from IS NOT OLD.keyed_from OR NEW.seal IS NULL)"
	"  BEGIN SELECT RAISE(ABORT, 'the audit head stays sealed'); END;",

	/*
	 * 6: the notificationRequestId of stream events, so that an act waiting
	 * for acceptance learns its IUN from REQUEST_ACCEPTED instead of asking
	 * SEND (docs/decisions/0015)
	 */
	"ALTER TABLE events ADD COLUMN request_id TEXT;"
	"CREATE INDEX events_accepted ON events (request_id) WHERE category = 'REQUEST_ACCEPTED';",
};


static int db_error(struct svc_store *s, struct sb_err *err, int rc, const char *what)
{
	return sb_err_set(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SB_ETEMP : SB_EIO, rc,
			  "store: %s: %s", what, sqlite3_errmsg(s->c->db));
}

static int exec(struct svc_store *s, const char *sql, struct sb_err *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->c->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		sb_err_set(err, rc == SQLITE_BUSY ? SB_ETEMP : SB_EIO, rc, "store: %s",
			   msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return err ? err->code : SB_EIO;
	}
	return 0;
}

/*
 * Migration 4. SQLite checks "x IN (three or more constants)" by building a
 * temporary b-tree of the list each time, and acts.state is checked at every
 * state change of every act: about 2% of the daemon's CPU, in the store's
 * critical section. The same rules written as comparisons cost nothing.
 * SQLite cannot alter a CHECK; its documented way for a change that leaves
 * every row valid (lang_altertable.html, the simpler procedure) is to edit
 * the table's text in sqlite_schema and bump schema_version, inside the
 * migration's transaction. The new rule accepts exactly the old values.
 */
struct check_rewrite {
	const char *table, *from, *to;
};

static const struct check_rewrite check_rewrites[] = {
	{ "acts", ACTS_STATE_CHECK_V1,
	  "CHECK (state = 'received' OR state = 'checked' OR state = 'resolved'"
	  " OR state = 'registered' OR state = 'uploaded' OR state = 'submitted'"
	  " OR state = 'accepted' OR state = 'delivering' OR state = 'closed'"
	  " OR state = 'rejected' OR state = 'refused' OR state = 'failed')" },
	{ "documents", DOCUMENTS_KIND_CHECK_V1,
	  "CHECK (kind = 'document' OR kind = 'pagopa' OR kind = 'f24')" },
};

static int int_pragma(struct svc_store *s, const char *sql, int *out, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->c->db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : db_error(s, err, rc, sql);
}

/* Inside the migration's transaction. */
static int rewrite_checks(struct svc_store *s, struct sb_err *err)
{
	char sql[96];
	int version = 0, rc;

	rc = int_pragma(s, "PRAGMA schema_version", &version, err);
	if (rc == 0)
		rc = exec(s, "PRAGMA writable_schema = ON", err);
	for (size_t i = 0; i < SB_ARRAY_SIZE(check_rewrites) && rc == 0; i++) {
		const struct check_rewrite *w = &check_rewrites[i];
		sqlite3_stmt *st = NULL;

		rc = sqlite3_prepare_v2(s->c->db,
					"UPDATE sqlite_schema SET sql = replace(sql, ?1, ?2)"
					" WHERE type = 'table' AND name = ?3"
					" AND instr(sql, ?1) > 0", -1, &st, NULL);
		if (rc == SQLITE_OK) {
			sb_sql_bind_text(st, 1, w->from);
			sb_sql_bind_text(st, 2, w->to);
			sb_sql_bind_text(st, 3, w->table);
			rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK :
			     sqlite3_errcode(s->c->db);
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_OK)
			rc = db_error(s, err, rc, "rewriting a CHECK");
		else if (sqlite3_changes(s->c->db) != 1)
			rc = sb_err_set(err, SB_EIO, 0,
					"store: table %s is not as migration 1 made it", w->table);
	}
	snprintf(sql, sizeof(sql), "PRAGMA schema_version = %d", version + 1);
	if (rc == 0)
		rc = exec(s, sql, err);
	/* Off even after a failure: the rollback takes the edits back. */
	if (exec(s, "PRAGMA writable_schema = OFF", rc < 0 ? NULL : err) < 0 && rc == 0)
		rc = SB_EIO;
	return rc;
}

/*
 * Group commit depends on WAL, and SQLite silently keeps another journal
 * mode where WAL is impossible (some network file systems).
 */
static int use_wal(struct svc_store *s, const char *path, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	const char *mode;
	int rc = sb_sql_prepare(s->c->db, "PRAGMA journal_mode = WAL", &st);

	if (rc != SQLITE_OK)
		return db_error(s, err, rc, "setting the journal mode");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sb_sql_finish(st);
		return db_error(s, err, rc, "setting the journal mode");
	}
	mode = (const char *)sqlite3_column_text(st, 0);
	rc = mode && !strcmp(mode, "wal") ? 0 :
		sb_err_set(err, SB_ECONFIG, 0, "store '%s': SQLite cannot use write-ahead logging "
			   "there (journal mode stays '%s'); "
			   "put [store] path on a local file system", path, mode ? mode : "?");
	sb_sql_finish(st);
	return rc;
}

static int user_version(struct svc_store *s, int *out, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sb_sql_prepare(s->c->db, "PRAGMA user_version", &st);

	if (rc != SQLITE_OK)
		return db_error(s, err, rc, "reading schema version");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	sb_sql_finish(st);
	return rc == SQLITE_ROW ? 0 : db_error(s, err, rc, "reading schema version");
}

static int migrate(struct svc_store *s, int target, struct sb_err *err)
{
	int have = 0, rc;

	rc = user_version(s, &have, err);
	if (rc < 0)
		return rc;
	if (have > (int)SB_ARRAY_SIZE(migrations))
		return sb_err_set(err, SB_ECONFIG, 0,
				  "store schema version %d is newer than this send-bridge (%d): "
				  "upgrade send-bridge", have, (int)SB_ARRAY_SIZE(migrations));
	for (int v = have + 1; v <= target; v++) {
		char bump[64];

		rc = svc_store_begin(s, err);
		if (rc < 0)
			return rc;
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v);
		rc = migrations[v - 1] ? exec(s, migrations[v - 1], err) : rewrite_checks(s, err);
		if (rc == 0)
			rc = exec(s, bump, err);
		if (rc == 0)
			rc = svc_store_commit(s, err);
		if (rc < 0) {
			svc_store_rollback(s);
			return sb_err_prefix(err, "migration to schema version %d", v);
		}
	}
	s->c->version = target > have ? target : have;
	return 0;
}

/* Open and set up one connection, migrated up to version. */
static int conn_open(struct conn **out, const char *path, int busy_timeout_ms, int version,
		     int cache_kib, struct sb_err *err)
{
	struct conn *c = sb_xcalloc(1, sizeof(*c));
	struct svc_store tmp = { c, false };
	char pragma[64];
	int rc;

	c->refs = 1;
	rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = sb_err_set(err, SB_EIO, rc, "cannot open store '%s': %s", path,
				c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sb_sql_cache_enable(c->db);
	c->busy_timeout_ms = busy_timeout_ms;
	sqlite3_busy_handler(c->db, on_busy, c);
	sqlite3_extended_result_codes(c->db, 0);
	rc = use_wal(&tmp, path, err);
	if (rc == 0)
		rc = exec(&tmp, "PRAGMA synchronous = NORMAL", err);
	if (rc == 0) {
		const char *file = sqlite3_db_filename(c->db, "main");

		c->group = group_get(file && *file ? file : path);
		sqlite3_wal_hook(c->db, on_wal_commit, c);
		sb_sql_after_commit(c->db, after_commit, c);
	}
	if (rc == 0)
		rc = exec(&tmp, "PRAGMA foreign_keys = ON", err);
	/*
	 * A bounded page cache keeps the daemon's memory a matter of its
	 * connections, not of how many acts the store holds; the OS page cache
	 * serves the rest.
	 */
	snprintf(pragma, sizeof(pragma), "PRAGMA cache_size = -%d", cache_kib);
	if (rc == 0)
		rc = exec(&tmp, pragma, err);
	if (rc == 0)
		rc = migrate(&tmp, version, err);
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	c->refs = 0;
	if (c->db) {
		sb_sql_cache_forget(c->db);
		sqlite3_close_v2(c->db);
	}
	group_put(c->group);
	free(c);
	return rc;
}

static void conn_put(struct conn *c)
{
	if (c->shared_path) {
		struct conn **pp;

		pthread_mutex_lock(&shared_lock);
		if (--c->refs > 0) {
			pthread_mutex_unlock(&shared_lock);
			return;
		}
		for (pp = &shared; *pp != c; pp = &(*pp)->next)
			;
		*pp = c->next;
		pthread_mutex_unlock(&shared_lock);
	}
	sb_sql_cache_forget(c->db);
	sqlite3_close_v2(c->db);
	group_put(c->group);
	sb_audit_mac_free(c->audit_mac);
	free(c->shared_path);
	free(c);
}

int svc_store_open_version(struct svc_store **out, const char *path, int busy_timeout_ms,
			   int version, struct sb_err *err)
{
	struct conn *c = NULL;
	int rc;

	SB_ASSERT(version >= 1 && version <= (int)SB_ARRAY_SIZE(migrations));
	/* A connection per handle: 1 MiB of page cache each. */
	rc = conn_open(&c, path, busy_timeout_ms, version, 1024, err);
	if (rc < 0)
		return rc;
	*out = sb_xcalloc(1, sizeof(**out));
	(*out)->c = c;
	return 0;
}

int svc_store_open(struct svc_store **out, const char *path, int busy_timeout_ms,
		   struct sb_err *err)
{
	return svc_store_open_version(out, path, busy_timeout_ms, SVC_STORE_VERSION, err);
}

int svc_store_open_shared(struct svc_store **out, const char *path, int busy_timeout_ms,
			  struct sb_err *err)
{
	struct conn *c;
	int rc = 0;

	pthread_mutex_lock(&shared_lock);
	for (c = shared; c && strcmp(c->shared_path, path); c = c->next)
		;
	if (c) {
		c->refs++;
	} else {
		/* One connection for every thread: its page cache can be larger. */
		rc = conn_open(&c, path, busy_timeout_ms, SVC_STORE_VERSION, 8192, err);
		if (rc == 0) {
			c->shared_path = sb_xstrdup(path);
			c->lazy = true;
			c->next = shared;
			shared = c;
		}
	}
	pthread_mutex_unlock(&shared_lock);
	if (rc < 0)
		return rc;
	*out = sb_xcalloc(1, sizeof(**out));
	(*out)->c = c;
	return 0;
}

void svc_store_close(struct svc_store *s)
{
	if (!s)
		return;
	if (s->in_tx)
		svc_store_rollback(s);
	/*
	 * What this thread committed is on disk before its connection may go. If
	 * the disk refuses, the debt is dropped with the connection: its group may
	 * be freed below.
	 */
	if (wait_pending() != SQLITE_OK && pending_group == s->c->group) {
		pending_group = NULL;
		pending_commit = 0;
	}
	conn_put(s->c);
	free(s);
}

struct sqlite3 *svc_store_db(struct svc_store *s)
{
	return s->c->db;
}

int svc_store_version(struct svc_store *s)
{
	return s->c->version;
}

int svc_store_begin(struct svc_store *s, struct sb_err *err)
{
	int rc;

	SB_ASSERT(!s->in_tx);
	rc = sb_sql_begin(s->c->db, true);
	if (rc != SQLITE_OK)
		return sb_err_set(err, rc == SQLITE_BUSY ? SB_ETEMP : SB_EIO, rc,
				  "store: begin: %s", sqlite3_errstr(rc));
	s->in_tx = true;
	return 0;
}

int svc_store_commit(struct svc_store *s, struct sb_err *err)
{
	int rc;

	SB_ASSERT(s->in_tx);
	/* Committed or rolled back, the transaction is over either way. */
	s->in_tx = false;
	rc = sb_sql_end(s->c->db, true);
	if (rc != SQLITE_OK)
		return sb_err_set(err, rc == SQLITE_BUSY ? SB_ETEMP : SB_EIO, rc,
				  "store: commit: %s", sqlite3_errstr(rc));
	return 0;
}

void svc_store_rollback(struct svc_store *s)
{
	if (!s->in_tx)
		return;
	sb_sql_end(s->c->db, false);
	s->in_tx = false;
}

void svc_store_lock(struct svc_store *s)
{
	sb_sql_lock(s->c->db);
}

void svc_store_unlock(struct svc_store *s)
{
	sb_sql_unlock(s->c->db);
}

static int prepare(struct svc_store *s, const char *sql, sqlite3_stmt **st, struct sb_err *err)
{
	int rc = sb_sql_prepare(s->c->db, sql, st);

	return rc == SQLITE_OK ? 0 : db_error(s, err, rc, "prepare");
}

/* Run a statement that returns no rows; finalizes it. */
static int run(struct svc_store *s, sqlite3_stmt *st, const char *what, struct sb_err *err)
{
	int rc = sqlite3_step(st);

	sb_sql_finish(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT)
		return sb_err_set(err, SB_EINVAL, rc, "store: %s: %s", what,
				  sqlite3_errmsg(s->c->db));
	return db_error(s, err, rc, what);
}

int svc_store_meta_get(struct svc_store *s, const char *key, char **value_out,
		       struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(s, "SELECT value FROM meta WHERE key = ?1", &st, err);
	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*value_out = sb_xstrdup((const char *)sqlite3_column_text(st, 0));
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = SB_ENOTFOUND;
	} else {
		rc = db_error(s, err, rc, "reading meta");
	}
	sb_sql_finish(st);
	return rc;
}

int svc_store_meta_set(struct svc_store *s, const char *key, const char *value,
		       struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(s, "INSERT INTO meta (key, value) VALUES (?1, ?2) "
		     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", &st, err);
	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, key);
	sb_sql_bind_text(st, 2, value);
	return run(s, st, "writing meta", err);
}

int svc_store_pii_key(struct svc_store *s, unsigned char key[32], struct sb_err *err)
{
	struct sb_buf raw = SB_BUF_INIT(64), hex = SB_BUF_INIT(65);
	char *value = NULL;
	int rc;

	rc = svc_store_meta_get(s, "pii_key", &value, err);
	if (rc == SB_ENOTFOUND) {
		unsigned char fresh[32];

		sb_random_bytes(fresh, sizeof(fresh));
		sb_hex_encode(fresh, sizeof(fresh), &hex);
		sb_wipe(fresh, sizeof(fresh));
		/* INSERT OR IGNORE: when two processes race, both end up with the first key. */
		{
			sqlite3_stmt *st = NULL;

			rc = prepare(s, "INSERT OR IGNORE INTO meta (key, value) VALUES"
				     " ('pii_key', ?1)", &st, err);
			if (rc == 0) {
				sb_sql_bind_text(st, 1, sb_buf_cstr(&hex));
				rc = run(s, st, "writing pii key", err);
			}
		}
		if (rc == 0)
			rc = svc_store_meta_get(s, "pii_key", &value, err);
	}
	if (rc < 0)
		goto cleanup;
	if (sb_hex_decode(value, strlen(value), &raw) < 0 || raw.len != 32) {
		rc = sb_err_set(err, SB_EIO, 0, "store: pii_key in meta is damaged");
		goto cleanup;
	}
	memcpy(key, raw.buf, 32);
cleanup:
	sb_secret_free(value);
	sb_wipe(raw.buf, raw.alloc);
	sb_wipe(hex.buf, hex.alloc);
	sb_buf_release(&raw);
	sb_buf_release(&hex);
	return rc;
}

static int insert_document(struct svc_store *s, int64_t act, const char *kind, int rec_idx,
			   size_t idx, const struct svc_act_file *f, const char *title,
			   const char *content_type, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(s, "INSERT INTO documents (act, kind, recipient_idx, idx, path, title, size,"
		     " sha256, content_type) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
		     &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, act);
	sb_sql_bind_text(st, 2, kind);
	if (rec_idx >= 0)
		sqlite3_bind_int(st, 3, rec_idx);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_int64(st, 4, (int64_t)idx);
	sb_sql_bind_text(st, 5, f->name);
	sb_sql_bind_text(st, 6, title);
	sqlite3_bind_int64(st, 7, (int64_t)f->size);
	sb_sql_bind_text(st, 8, f->sha256);
	sb_sql_bind_text(st, 9, content_type);
	return run(s, st, "recording document", err);
}

static int insert_act_rows(struct svc_store *s, const struct svc_act *a, const char *manifest,
			   int64_t *id_out, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t now = sb_now(), id;
	int rc;

	rc = prepare(s, "INSERT INTO acts (act_id, office, operator, subject, taxonomy_code, state,"
		     " manifest, created_at, updated_at)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, 'received', ?6, ?7, ?7)", &st, err);
	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, a->id);
	sb_sql_bind_text(st, 2, a->office);
	sb_sql_bind_text(st, 3, a->operator_id);
	sb_sql_bind_text(st, 4, a->subject);
	sb_sql_bind_text(st, 5, a->taxonomy_code);
	sb_sql_bind_text(st, 6, manifest);
	sqlite3_bind_int64(st, 7, now);
	rc = run(s, st, "recording act", err);
	if (rc < 0)
		return rc;
	id = sqlite3_last_insert_rowid(s->c->db);
	for (size_t i = 0; i < a->nrecipients; i++) {
		const struct svc_act_recipient *r = &a->recipients[i];

		rc = prepare(s, "INSERT INTO recipients (act, idx, type, tax_id, denomination)"
			     " VALUES (?1, ?2, ?3, ?4, ?5)", &st, err);
		if (rc < 0)
			return rc;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		sb_sql_bind_text(st, 3, r->type == SVC_PG ? "PG" : "PF");
		sb_sql_bind_text(st, 4, r->tax_id);
		sb_sql_bind_text(st, 5, r->denomination);
		rc = run(s, st, "recording recipient", err);
		if (rc < 0)
			return rc;
		for (size_t k = 0; k < r->npayments; k++) {
			const struct svc_act_payment *p = &r->payments[k];

			if (p->has_pagopa_file)
				rc = insert_document(s, id, "pagopa", (int)i, k, &p->pagopa_file,
						     NULL, "application/pdf", err);
			if (rc == 0 && p->has_f24)
				rc = insert_document(s, id, "f24", (int)i, k, &p->f24_file,
						     p->f24_title, "application/json", err);
			if (rc < 0)
				return rc;
		}
	}
	for (size_t i = 0; i < a->ndocuments; i++) {
		rc = insert_document(s, id, "document", -1, i, &a->documents[i].file,
				     a->documents[i].title, "application/pdf", err);
		if (rc < 0)
			return rc;
	}
	*id_out = id;
	return 0;
}

int svc_store_act_insert(struct svc_store *s, const struct svc_act *a, const char *manifest,
			 int64_t *id_out, struct sb_err *err)
{
	int64_t id = 0;
	int rc;

	rc = svc_store_begin(s, err);
	if (rc < 0)
		return rc;
	rc = insert_act_rows(s, a, manifest, &id, err);
	if (rc == 0)
		rc = svc_store_audit(s, "send-bridge", a->office, "act.received", a->id, NULL, err);
	if (rc == 0)
		rc = svc_store_commit(s, err);
	if (rc < 0) {
		svc_store_rollback(s);
		return rc;
	}
	*id_out = id;
	return 0;
}

int svc_store_act_find(struct svc_store *s, const char *act_id, int64_t *id_out,
		       enum svc_state *state_out, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	enum svc_state state;
	int rc;

	rc = prepare(s, "SELECT id, state FROM acts WHERE act_id = ?1", &st, err);
	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, act_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (svc_state_parse((const char *)sqlite3_column_text(st, 1), &state) < 0) {
			rc = sb_err_set(err, SB_EIO, 0, "store: act has an unknown state");
		} else {
			if (id_out)
				*id_out = sqlite3_column_int64(st, 0);
			if (state_out)
				*state_out = state;
			rc = 0;
		}
	} else if (rc == SQLITE_DONE) {
		rc = SB_ENOTFOUND;
	} else {
		rc = db_error(s, err, rc, "finding act");
	}
	sb_sql_finish(st);
	return rc;
}

int svc_store_act_transition(struct svc_store *s, int64_t id, enum svc_state from,
			     enum svc_state to, const char *last_error, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	bool own_tx = !s->in_tx;
	char detail[64], subject[32];
	int rc;

	if (own_tx && (rc = svc_store_begin(s, err)) < 0)
		return rc;
	rc = prepare(s, "UPDATE acts SET state = ?1, last_error = ?2, updated_at = ?3"
		     " WHERE id = ?4 AND state = ?5", &st, err);
	if (rc < 0)
		goto done;
	sb_sql_bind_text(st, 1, svc_state_name(to));
	sb_sql_bind_text(st, 2, last_error);
	sqlite3_bind_int64(st, 3, sb_now());
	sqlite3_bind_int64(st, 4, id);
	sb_sql_bind_text(st, 5, svc_state_name(from));
	rc = run(s, st, "changing act state", err);
	if (rc == 0 && sqlite3_changes(s->c->db) != 1)
		rc = sb_err_set(err, SB_EINVAL, 0, "act id=%lld is not in state %s",
				(long long)id, svc_state_name(from));
	if (rc == 0) {
		snprintf(subject, sizeof(subject), "act#%lld", (long long)id);
		snprintf(detail, sizeof(detail), "%s->%s", svc_state_name(from),
			 svc_state_name(to));
		rc = svc_store_audit(s, "send-bridge", NULL, "act.state", subject, detail, err);
	}
done:
	if (own_tx) {
		if (rc == 0)
			rc = svc_store_commit(s, err);
		if (rc < 0)
			svc_store_rollback(s);
	}
	return rc;
}

int svc_store_act_count(struct svc_store *s, enum svc_state state, int64_t *out,
			struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(s, "SELECT count(*) FROM acts WHERE state = ?1", &st, err);
	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, svc_state_name(state));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = db_error(s, err, rc, "counting acts");
	}
	sb_sql_finish(st);
	return rc;
}

/*
 * The audit trail (docs/decisions/0014). Rows are chained: each names the
 * previous row's hash and its own hash covers that and every field. Until
 * the trail is sealed the hash is an unkeyed SHA-256 (audit_legacy_hash, the
 * only kind before schema 5); from audit_head.keyed_from on it is the link
 * half of sb_audit_mac_row with the key derived from the audit key, whose
 * seal half goes into the head and into the next row's MAC. The head (last
 * row id, its hash, the seal) moves in the same transaction as each row, so
 * an append costs the head's read (where the last row's used to be), one
 * hash or MAC, and the head's UPDATE.
 */
#define AUDIT_NFIELDS 5
#define AUDIT_KEY_LABEL "send-bridge store audit v1"

static const char genesis[] = SB_AUDIT_GENESIS;

/* hash = sha256(prev_hash | id | at | actor | office | action | subject | detail), hex. */
static void audit_legacy_hash(const char *prev, int64_t id, int64_t at,
			      const char *const f[AUDIT_NFIELDS], char out[65])
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT);

	/* Lengths before each field make the encoding unambiguous (NULL reads as ""). */
	sb_buf_addf(&b, "%zu:%s|%lld|%lld", strlen(prev), prev, (long long)id, (long long)at);
	for (int i = 0; i < AUDIT_NFIELDS; i++)
		sb_buf_addf(&b, "|%zu:%s", f[i] ? strlen(f[i]) : 0, f[i] ? f[i] : "");
	sb_audit_sha256_hex(b.buf, b.len, out);
	sb_buf_release(&b);
}

static void audit_keyed_hash(const struct sb_audit_mac *m, const char *prev_seal, const char *prev,
			     int64_t id, int64_t at, const char *const f[AUDIT_NFIELDS],
			     char link[65], char seal[65])
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT);

	sb_audit_row_encode(&b, prev, id, at, f, AUDIT_NFIELDS);
	sb_audit_mac_row(m, prev_seal, b.buf, b.len, link, seal);
	sb_buf_release(&b);
}

/*
 * The seal that sealing puts on a head of last_id rows ending in hash: the
 * anchor of the keyed rows that follow. "anchor|" cannot begin a row's
 * encoding, which begins with 64 hex digits.
 */
static void audit_anchor(const struct sb_audit_mac *m, int64_t last_id, const char *hash,
			 char seal[65])
{
	char msg[128], link[65];
	int len = snprintf(msg, sizeof(msg), "anchor|%lld|%s", (long long)last_id, hash);

	SB_ASSERT(len > 0 && (size_t)len < sizeof(msg));
	sb_audit_mac_row(m, genesis, msg, (size_t)len, link, seal);
}

int svc_store_audit_key(struct svc_store *s, const unsigned char *key, struct sb_err *err)
{
	unsigned char derived[SB_AUDIT_KEY_SIZE];
	sqlite3_stmt *st = NULL;
	int rc;

	sb_audit_mac_free(s->c->audit_mac);
	s->c->audit_mac = NULL;
	if (key) {
		sb_audit_key_derive(key, AUDIT_KEY_LABEL, derived);
		s->c->audit_mac = sb_audit_mac_new(derived);
		sb_wipe(derived, sizeof(derived));
		return 0;
	}
	rc = prepare(s, "SELECT keyed_from IS NOT NULL FROM audit_head WHERE id = 1", &st, err);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = sqlite3_column_int(st, 0) ?
			sb_err_set(err, SB_ECONFIG, 0, "the store's audit trail is sealed: writing "
				   "to it needs [pdnd] audit_key_file") : 0;
	else if (rc == SQLITE_DONE)
		rc = 0;   /* the head is missing: verify and the next append say so */
	else
		rc = db_error(s, err, rc, "reading the audit head");
	sb_sql_finish(st);
	return rc;
}

int svc_store_audit_key_load(struct svc_store *s, const struct sb_cfg *cfg, struct sb_err *err)
{
	unsigned char key[SB_AUDIT_KEY_SIZE];
	bool have = false;
	int rc = cfg ? sb_audit_key_load(cfg, key, &have, err) : 0;

	if (rc == 0)
		rc = svc_store_audit_key(s, have ? key : NULL, err);
	sb_wipe(key, sizeof(key));
	return rc;
}

struct audit_head {
	int64_t last_id, keyed_from;   /* keyed_from 0: not sealed */
	char hash[65], seal[65];
};

static int audit_head_read(struct svc_store *s, struct audit_head *h, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(h, 0, sizeof(*h));
	rc = prepare(s, "SELECT last_id, hash, keyed_from, seal FROM audit_head WHERE id = 1", &st,
		     err);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		h->last_id = sqlite3_column_int64(st, 0);
		snprintf(h->hash, sizeof(h->hash), "%s",
			 sb_sql_col(st, 1) ? sb_sql_col(st, 1) : "");
		h->keyed_from = sqlite3_column_int64(st, 2);
		snprintf(h->seal, sizeof(h->seal), "%s",
			 sb_sql_col(st, 3) ? sb_sql_col(st, 3) : "");
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = sb_err_set(err, SB_EINVAL, 0,
				"store audit head is missing: deleted outside send-bridge");
	} else {
		rc = db_error(s, err, rc, "reading the audit head");
	}
	sb_sql_finish(st);
	return rc;
}

static int audit_head_write(struct svc_store *s, const struct audit_head *h, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(s, "UPDATE audit_head SET last_id = ?1, hash = ?2, keyed_from = ?3, seal = ?4"
		     " WHERE id = 1", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, h->last_id);
	sb_sql_bind_text(st, 2, h->hash);
	if (h->keyed_from)
		sqlite3_bind_int64(st, 3, h->keyed_from);
	sb_sql_bind_text(st, 4, h->keyed_from ? h->seal : NULL);
	return run(s, st, "moving the audit head", err);
}

/* Append inside the caller's transaction. */
static int audit_append(struct svc_store *s, const char *const f[AUDIT_NFIELDS],
			struct sb_err *err)
{
	const struct sb_audit_mac *m = s->c->audit_mac;
	sqlite3_stmt *st = NULL;
	struct audit_head h;
	char prev[65], seal[65];
	int64_t at = sb_now();
	int rc;

	rc = audit_head_read(s, &h, err);
	if (rc < 0)
		return rc;
	/*
	 * Not past a sealed head without the key: unkeyed rows after keyed ones
	 * would be a downgrade anyone could forge. An unsealed head stays unsealed
	 * even with the key: only svc_store_audit_seal seals, or someone who
	 * stripped the seal and rewrote the rows would have them blessed here.
	 */
	if (h.keyed_from && !m)
		return sb_err_set(err, SB_ECONFIG, 0, "the store's audit trail is sealed: writing "
				  "to it needs [pdnd] audit_key_file");
	memcpy(prev, h.hash, sizeof(prev));
	h.last_id++;
	if (h.keyed_from) {
		/*
		 * The head's seal enters this row's MAC unchecked (checking it would be
		 * a second HMAC per row): a forged head makes this row fail verify.
		 */
		audit_keyed_hash(m, h.seal, prev, h.last_id, at, f, h.hash, seal);
		memcpy(h.seal, seal, sizeof(seal));
	} else {
		audit_legacy_hash(prev, h.last_id, at, f, h.hash);
	}
	rc = prepare(s, "INSERT INTO audit (id, at, actor, office, action, subject, detail,"
		     " prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, h.last_id);
	sqlite3_bind_int64(st, 2, at);
	for (int i = 0; i < AUDIT_NFIELDS; i++)
		sb_sql_bind_text(st, 3 + i, f[i]);
	sb_sql_bind_text(st, 8, prev);
	sb_sql_bind_text(st, 9, h.hash);
	/* A row already there with this id was added past the head: refused, verify names it. */
	rc = run(s, st, "appending audit row", err);
	if (rc == 0)
		rc = audit_head_write(s, &h, err);
	return rc;
}

int svc_store_audit(struct svc_store *s, const char *actor, const char *office,
		    const char *action, const char *subject, const char *detail,
		    struct sb_err *err)
{
	const char *const f[AUDIT_NFIELDS] = { actor, office, action, subject, detail };
	bool own_tx = sb_sql_depth(s->c->db) == 0;
	int rc;

	/* The row and the head move together, or not at all. */
	if (own_tx && (rc = svc_store_begin(s, err)) < 0)
		return rc;
	rc = audit_append(s, f, err);
	if (own_tx) {
		if (rc == 0)
			rc = svc_store_commit(s, err);
		if (rc < 0)
			svc_store_rollback(s);
	}
	return rc;
}

/*
 * Walk the rows from the genesis and check them and the head, inside the
 * caller's transaction, with the key m (NULL: the keyed rows' MACs and the
 * seal go unchecked, counted in res->unchecked).
 */
static int audit_check(struct svc_store *s, const struct sb_audit_mac *m,
		       const struct audit_head *h, struct svc_store_audit_head *res,
		       struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	char prev[65], hash[65], seal[65] = "";
	int64_t expect_id = 1;
	int rc;

	memset(res, 0, sizeof(*res));
	memcpy(prev, genesis, sizeof(prev));
	res->keyed_from = h->keyed_from;
	res->sealed = h->keyed_from != 0;
	if (h->keyed_from == 1 && m)
		audit_anchor(m, 0, genesis, seal);
	rc = prepare(s, "SELECT id, at, actor, office, action, subject, detail, prev_hash, hash"
		     " FROM audit ORDER BY id", &st, err);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0), at = sqlite3_column_int64(st, 1);
		const char *f[AUDIT_NFIELDS] = { sb_sql_col(st, 2), sb_sql_col(st, 3),
						 sb_sql_col(st, 4), sb_sql_col(st, 5),
						 sb_sql_col(st, 6) };
		const char *stored = sb_sql_col(st, 8);
		bool keyed = h->keyed_from && id >= h->keyed_from;

		if (id != expect_id) {
			rc = sb_err_set(err, SB_EINVAL, 0, "store audit broken: row %lld missing "
					"(deleted outside send-bridge)", (long long)expect_id);
			goto cleanup;
		}
		if (!sb_sql_col(st, 7) || strcmp(sb_sql_col(st, 7), prev)) {
			rc = sb_err_set(err, SB_EINVAL, 0, "store audit broken at row %lld:"
					" not linked to row %lld (removed or reordered rows)",
					(long long)id, (long long)id - 1);
			goto cleanup;
		}
		if (keyed && m) {
			char next[65];

			audit_keyed_hash(m, seal, prev, id, at, f, hash, next);
			memcpy(seal, next, sizeof(seal));
		} else if (keyed) {
			res->unchecked++;
			snprintf(hash, sizeof(hash), "%s", stored ? stored : "");
		} else {
			audit_legacy_hash(prev, id, at, f, hash);
		}
		if (!stored || strcmp(stored, hash)) {
			rc = sb_err_set(err, SB_EINVAL, 0, keyed ?
					"store audit broken at row %lld: altered (its MAC does not "
					"match the audit key: rewritten without the key)" :
					"store audit broken at row %lld: altered", (long long)id);
			goto cleanup;
		}
		memcpy(prev, hash, sizeof(prev));
		if (m && id + 1 == h->keyed_from)
			audit_anchor(m, id, prev, seal);
		res->rows = id;
		expect_id++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_error(s, err, rc, "reading the audit trail");
		goto cleanup;
	}
	memcpy(res->hash, prev, sizeof(prev));
	if (h->last_id > res->rows)
		rc = sb_err_set(err, SB_EINVAL, 0, "store audit broken: %lld rows but the head "
				"records %lld (rows removed from the end)", (long long)res->rows,
				(long long)h->last_id);
	else if (h->last_id != res->rows || strcmp(h->hash, prev) ||
		 h->keyed_from > res->rows + 1)
		rc = sb_err_set(err, SB_EINVAL, 0, "store audit broken: the head (row %lld) does "
				"not match the last row (%lld): head or rows changed outside "
				"send-bridge", (long long)h->last_id, (long long)res->rows);
	else if (h->keyed_from && m &&
		 (strlen(h->seal) != 64 || CRYPTO_memcmp(seal, h->seal, 64)))
		rc = sb_err_set(err, SB_EINVAL, 0, "store audit seal does not match the audit key: "
				"rows removed from the end with the head moved back, "
				"rows rewritten without the key, "
				"or [pdnd] audit_key_file is not the key that sealed it");
	else if (!h->keyed_from && m)
		rc = sb_err_set(err, SB_EINVAL, 0, "store audit is not sealed: "
				"if 'send-bridge audit seal' was never run with this key, run it; "
				"otherwise the seal was removed "
				"and the trail may have been rewritten");
	else
		rc = 0;
	res->seal_checked = rc == 0 && h->keyed_from && m;
cleanup:
	sb_sql_finish(st);
	return rc;
}

/* A transaction of its own, or a savepoint inside the caller's. */
static int audit_tx(struct svc_store *s, bool write, struct sb_err *err)
{
	int rc = sb_sql_begin(s->c->db, write);

	return rc == SQLITE_OK ? 0 : db_error(s, err, rc, "starting an audit transaction");
}

static int audit_tx_end(struct svc_store *s, int rc, struct sb_err *err)
{
	int src = sb_sql_end(s->c->db, rc == 0);

	if (rc == 0 && src != SQLITE_OK)
		rc = db_error(s, err, src, "committing the audit trail");
	return rc;
}

int svc_store_audit_verify(struct svc_store *s, struct svc_store_audit_head *head_out,
			   struct sb_err *err)
{
	struct svc_store_audit_head res;
	struct audit_head h;
	int rc;

	rc = audit_tx(s, false, err);
	if (rc < 0)
		return rc;
	rc = audit_head_read(s, &h, err);
	if (rc == 0)
		rc = audit_check(s, s->c->audit_mac, &h, &res, err);
	rc = audit_tx_end(s, rc, err);
	if (rc == 0 && head_out)
		*head_out = res;
	return rc;
}

int svc_store_audit_seal(struct svc_store *s, struct svc_store_audit_head *head_out,
			 struct sb_err *err)
{
	const char *f[AUDIT_NFIELDS] = { "send-bridge", NULL, "audit.sealed", NULL, NULL };
	struct svc_store_audit_head res;
	struct audit_head h;
	char detail[96];
	int rc;

	if (!s->c->audit_mac)
		return sb_err_set(err, SB_ECONFIG, 0,
				  "sealing the store's audit trail needs [pdnd] audit_key_file");
	rc = audit_tx(s, true, err);
	if (rc < 0)
		return rc;
	rc = audit_head_read(s, &h, err);
	if (rc == 0 && h.keyed_from) {
		/* sealed already: this key? */
		rc = audit_check(s, s->c->audit_mac, &h, &res, err);
		goto done;
	}
	/* Checked as unsealed: the rows so far must verify before the key vouches for them. */
	if (rc == 0)
		rc = audit_check(s, NULL, &h, &res, err);
	if (rc < 0)
		goto done;
	h.keyed_from = h.last_id + 1;
	audit_anchor(s->c->audit_mac, h.last_id, h.hash, h.seal);
	rc = audit_head_write(s, &h, err);
	/* The re-anchoring, in the trail itself: the rows before this one had no key. */
	snprintf(detail, sizeof(detail), "rows 1-%lld chained without a key, anchored here",
		 (long long)h.last_id);
	f[4] = detail;
	if (rc == 0)
		rc = audit_append(s, f, err);
	if (rc == 0)
		rc = audit_head_read(s, &h, err);
	if (rc == 0)
		rc = audit_check(s, s->c->audit_mac, &h, &res, err);
done:
	rc = audit_tx_end(s, rc, err);
	if (rc == 0 && head_out)
		*head_out = res;
	return rc;
}
