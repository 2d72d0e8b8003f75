/*
 * The pipeline state machine: see svc_pipeline.h, DESIGN.md "Pipeline
 * states" and "The outbox contract".
 *
 * Crash safety rests on three rules:
 * 1. every step's outcome (new state, protocol number, request id, IUN,
 *    receipts, attempts) is committed in one transaction before the next
 *    step starts, so a restart re-runs at most the step that was in flight,
 *    and steps are idempotent on replay (their contract);
 * 2. a final state is committed, with its reason in outcomes, before the
 *    folder leaves work/; a restart that finds a final act still in work/
 *    just finishes the move, writing reason.json from the stored reason;
 * 3. the store row and act.json identify an act together: a folder in
 *    work/ whose id is known with a different act.json, or whose act has
 *    already been moved out once, is a second act reusing an id and is
 *    rejected instead of being mistaken for the first.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_sql.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "svc_outbox.h"
#include "svc_pipeline.h"
#include "svc_store.h"

struct svc_pipeline {
	const struct sb_cfg *cfg;
	const struct svc_outbox *outbox;
	const struct svc_steps *steps;
	struct svc_pipeline_opts opts;
};

/* Which step moves an act out of which state, and which platform it talks to. */
struct stage {
	enum svc_state from;
	enum svc_platform platform;
	const char *name;
	size_t off;     /* of the svc_step_fn in struct svc_steps */
};

static const struct stage stages[] = {
	{ SVC_RECEIVED, SVC_PLATFORM_AGID, "check", offsetof(struct svc_steps, check) },
	{ SVC_CHECKED, SVC_PLATFORM_PDND, "resolve", offsetof(struct svc_steps, resolve) },
	{ SVC_RESOLVED, SVC_PLATFORM_PROTOCOL, "register",
	  offsetof(struct svc_steps, register_protocol) },
	{ SVC_REGISTERED, SVC_PLATFORM_SEND, "upload", offsetof(struct svc_steps, upload) },
	{ SVC_UPLOADED, SVC_PLATFORM_SEND, "create", offsetof(struct svc_steps, create) },
	{ SVC_SUBMITTED, SVC_PLATFORM_SEND, "acceptance", offsetof(struct svc_steps, acceptance) },
	{ SVC_ACCEPTED, SVC_PLATFORM_SEND, "track", offsetof(struct svc_steps, track) },
	{ SVC_DELIVERING, SVC_PLATFORM_SEND, "track", offsetof(struct svc_steps, track) },
};

static const struct stage *stage_of(enum svc_state st)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(stages); i++)
		if (stages[i].from == st)
			return &stages[i];
	return NULL;
}

static svc_step_fn stage_fn(const struct svc_steps *steps, const struct stage *sg)
{
	svc_step_fn fn;

	memcpy(&fn, (const char *)steps + sg->off, sizeof(fn));
	return fn;
}

const struct svc_steps *svc_steps_builtin(void)
{
	/* The platform clients are in svc_steps.c (svc_clients_steps). */
	static const struct svc_steps none;

	return &none;
}

void svc_pipeline_opts_from_cfg(struct svc_pipeline_opts *o, const struct sb_cfg *cfg)
{
	o->retry_base_ms = sb_cfg_int(cfg, "outbox", "retry_base") * 1000;
	o->retry_max_ms = sb_cfg_int(cfg, "outbox", "retry_max") * 1000;
	o->max_attempts = (int)sb_cfg_int(cfg, "outbox", "max_attempts");
	o->poll_ms = sb_cfg_int(cfg, "outbox", "poll_interval") * 1000;
}

void svc_pipeline_new(struct svc_pipeline **out, const struct sb_cfg *cfg,
		      const struct svc_outbox *outbox, const struct svc_steps *steps,
		      const struct svc_pipeline_opts *opts)
{
	struct svc_pipeline *p = sb_xcalloc(1, sizeof(*p));

	SB_ASSERT(outbox && steps && opts && opts->max_attempts >= 1 && opts->retry_base_ms >= 0);
	p->cfg = cfg;
	p->outbox = outbox;
	p->steps = steps;
	p->opts = *opts;
	*out = p;
}

void svc_pipeline_free(struct svc_pipeline *p)
{
	free(p);
}

const struct svc_steps *svc_pipeline_steps(const struct svc_pipeline *p)
{
	return p->steps;
}

int64_t svc_pipeline_backoff_ms(const struct svc_pipeline_opts *o, int n, long retry_after_s)
{
	int64_t delay = o->retry_base_ms, half;
	uint64_t r;

	for (int i = 1; i < n && delay < o->retry_max_ms; i++)
		delay *= 2;
	if (delay > o->retry_max_ms)
		delay = o->retry_max_ms;
	/* Jitter in the upper half: workers that failed together do not come back together. */
	half = delay / 2;
	sb_random_bytes(&r, sizeof(r));
	delay = half + (int64_t)(r % (uint64_t)(delay - half + 1));
	if (retry_after_s >= 0 && retry_after_s * 1000 > delay)
		delay = (int64_t)retry_after_s * 1000;
	return delay;
}

/* ---- SQL helpers ---------------------------------------------------------------------- */

static int sql_error(sqlite3 *db, struct sb_err *err, int rc, const char *what)
{
	return sb_err_set(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SB_ETEMP : SB_EIO, rc,
			  "store: %s: %s", what, sqlite3_errmsg(db));
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct sb_err *err)
{
	int rc = sb_sql_prepare(db, sql, st);

	return rc == SQLITE_OK ? 0 : sql_error(db, err, rc, "prepare");
}

/* Step a statement that returns no rows, then finalize it. */
static int run(sqlite3 *db, sqlite3_stmt *st, const char *what, struct sb_err *err)
{
	int rc = sqlite3_step(st);

	sb_sql_finish(st);
	return rc == SQLITE_DONE ? 0 : sql_error(db, err, rc, what);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? sb_xstrdup((const char *)t) : NULL;
}

static const char *const migrations[] = {
	/* 1: the final outcome of every act, with the reason written to reason.json */
	"CREATE TABLE outcomes ("
	"  id INTEGER PRIMARY KEY,"
	"  act_id TEXT NOT NULL,"
	"  act INTEGER REFERENCES acts(id),"
	"  state TEXT NOT NULL CHECK (state IN ('closed','rejected','refused','failed')),"
	"  step TEXT NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  folder TEXT,"
	"  at INTEGER NOT NULL"
	");"
	"CREATE INDEX outcomes_act ON outcomes (act);"
	"CREATE INDEX outcomes_act_id ON outcomes (act_id);",
	/*
	 * 2: acts owing a catch-up from their timeline after the stream was
	 * replaced; closed acts with events their track step has not seen
	 */
	"CREATE TABLE stream_catchup ("
	"  act INTEGER PRIMARY KEY REFERENCES acts(id),"
	"  marked_at INTEGER NOT NULL"
	");"
	"CREATE TABLE late_events ("
	"  act INTEGER PRIMARY KEY REFERENCES acts(id),"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_at INTEGER NOT NULL DEFAULT 0"
	");",
};

int svc_pipeline_store_migrate(struct sqlite3 *db, struct sb_err *err)
{
	return sb_sql_migrate(db, "schema.pipeline", migrations, SB_ARRAY_SIZE(migrations), err);
}

/* ---- the act's row --------------------------------------------------------------------- */

struct row {
	int64_t id;
	enum svc_state state;
	int attempts;
	int64_t next_at;
	char *manifest;
	char *last_error;
	char *protocol_number;
	char *request_id;
	char *iun;
	char **receipts;
	size_t nreceipts;
	bool moved;           /* an outcome of this act already names a folder */
	bool cancelled;       /* closed because SEND cancelled the notification */
	bool late;            /* closed, with events its track step has not seen (late_events) */
	int late_attempts;
	int64_t late_next_at;
	int64_t seen;         /* the newest events.id the last track step was given */
};

static void row_release(struct row *r)
{
	free(r->manifest);
	free(r->last_error);
	free(r->protocol_number);
	free(r->request_id);
	free(r->iun);
	svc_outbox_names_free(r->receipts, r->nreceipts);
	memset(r, 0, sizeof(*r));
}

static int load_receipts(sqlite3 *db, struct row *r, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(db, "SELECT legal_fact_key FROM receipts WHERE act = ?1 ORDER BY id", &st,
			 err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, r->id);
	svc_outbox_names_free(r->receipts, r->nreceipts);
	r->receipts = NULL;
	r->nreceipts = 0;
	/* A scan of several rows: no other worker's statement in between (shared connection). */
	sb_sql_lock(db);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r->receipts = sb_xrealloc(r->receipts, (r->nreceipts + 1) * sizeof(*r->receipts));
		r->receipts[r->nreceipts++] = col_dup(st, 0);
	}
	sb_sql_finish(st);
	sb_sql_unlock(db);
	return rc == SQLITE_DONE ? 0 : sql_error(db, err, rc, "reading receipts");
}

/* SB_ENOTFOUND when the act id is unknown. */
static int load_row(sqlite3 *db, const char *name, struct row *r, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = prepare(db, "SELECT a.id, a.state, a.attempts, a.next_attempt_at, a.manifest,"
		     " a.last_error, n.protocol_number, n.request_id, n.iun,"
		     " EXISTS (SELECT 1 FROM outcomes o WHERE o.act = a.id"
		     " AND o.folder IS NOT NULL),"
		     " coalesce(n.status = 'CANCELLED', 0), l.act IS NOT NULL,"
		     " coalesce(l.attempts, 0), coalesce(l.next_at, 0)"
		     " FROM acts a LEFT JOIN notifications n ON n.act = a.id"
		     " LEFT JOIN late_events l ON l.act = a.id WHERE a.act_id = ?1",
		     &st, err);
	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sb_sql_finish(st);
		return SB_ENOTFOUND;
	}
	if (rc != SQLITE_ROW) {
		sb_sql_finish(st);
		return sql_error(db, err, rc, "reading act");
	}
	r->id = sqlite3_column_int64(st, 0);
	if (svc_state_parse((const char *)sqlite3_column_text(st, 1), &r->state) < 0) {
		sb_sql_finish(st);
		return sb_err_set(err, SB_EIO, 0, "store: act id=%lld has an unknown state",
				  (long long)r->id);
	}
	r->attempts = sqlite3_column_int(st, 2);
	r->next_at = sqlite3_column_int64(st, 3);
	r->manifest = col_dup(st, 4);
	r->last_error = col_dup(st, 5);
	r->protocol_number = col_dup(st, 6);
	r->request_id = col_dup(st, 7);
	r->iun = col_dup(st, 8);
	r->moved = sqlite3_column_int(st, 9) != 0;
	r->cancelled = sqlite3_column_int(st, 10) != 0;
	r->late = sqlite3_column_int(st, 11) != 0;
	r->late_attempts = sqlite3_column_int(st, 12);
	r->late_next_at = sqlite3_column_int64(st, 13);
	sb_sql_finish(st);
	rc = load_receipts(db, r, err);
	if (rc < 0)
		row_release(r);
	return rc;
}

/* ---- reasons and moves ----------------------------------------------------------------- */

static char *reason_json(const char *name, enum svc_state state, const char *step,
			 const struct sb_problems *probs, const char *msg)
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT);
	json_t *root, *list = json_array();
	char when[32];

	for (size_t i = 0; probs && i < probs->n; i++)
		json_array_append_new(list, json_pack("{s:s, s:s}", "path", probs->items[i].where,
						      "message", probs->items[i].msg));
	if (json_array_size(list) == 0 && msg)
		json_array_append_new(list, json_pack("{s:s, s:s}", "path", step, "message", msg));
	root = json_pack("{s:s, s:s, s:s, s:s, s:o}", "act", name, "state", svc_state_name(state),
			 "step", step, "at", sb_time_iso8601(sb_now(), when, sizeof(when)),
			 "problems", list);
	if (probs && probs->dropped)
		json_object_set_new(root, "more", json_integer((json_int_t)probs->dropped));
	SB_ASSERT(root && sb_json_dump(root, &b, NULL) == 0);
	json_decref(root);
	sb_buf_addch(&b, '\n');
	return sb_buf_detach(&b, NULL);
}

static int outcome_insert(sqlite3 *db, const char *name, int64_t act, enum svc_state state,
			  const char *step, const char *reason, const char *folder,
			  struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(db, "INSERT INTO outcomes (act_id, act, state, step, reason, folder, at)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", &st, err);

	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, name);
	if (act > 0)
		sqlite3_bind_int64(st, 2, act);
	else
		sqlite3_bind_null(st, 2);
	sb_sql_bind_text(st, 3, svc_state_name(state));
	sb_sql_bind_text(st, 4, step);
	sb_sql_bind_text(st, 5, reason);
	sb_sql_bind_text(st, 6, folder);
	sqlite3_bind_int64(st, 7, sb_now());
	return run(db, st, "recording outcome", err);
}

/*
 * Reject a folder that has no act row (bad act, reused id). The outcome is
 * recorded first, without a folder, then the folder moves with its
 * reason.json, then the outcome gets the folder's name: a crash anywhere
 * leaves at most a record without a folder, and a replay reuses that
 * record instead of adding a second one.
 */
static int reject_unrecorded(const struct svc_pipeline *p, struct svc_store *s, const char *from,
			     const char *name, const char *step, const struct sb_problems *probs,
			     const char *msg, struct sb_err *err)
{
	char *reason = reason_json(name, SVC_REJECTED, step, probs, msg), *final = NULL;
	sqlite3 *db = svc_store_db(s);
	sqlite3_stmt *st = NULL;
	int64_t outcome = 0;
	int rc;

	rc = prepare(db, "SELECT id FROM outcomes WHERE act_id = ?1 AND act IS NULL"
		     " AND folder IS NULL ORDER BY id DESC LIMIT 1", &st, err);
	if (rc < 0)
		goto cleanup;
	sb_sql_bind_text(st, 1, name);
	if (sqlite3_step(st) == SQLITE_ROW)
		outcome = sqlite3_column_int64(st, 0);
	sb_sql_finish(st);
	if (!outcome) {
		/* The rowid is the connection's: no other worker's insert in between. */
		sb_sql_lock(db);
		rc = outcome_insert(db, name, 0, SVC_REJECTED, step, reason, NULL, err);
		outcome = sqlite3_last_insert_rowid(db);
		sb_sql_unlock(db);
		if (rc < 0)
			goto cleanup;
	}
	/* The folder moves only once what it records is on disk. */
	rc = svc_store_barrier(err);
	if (rc == 0)
		rc = svc_outbox_finish(p->outbox, from, name, false, reason, &final, err);
	if (rc < 0)
		goto cleanup;
	rc = prepare(db, "UPDATE outcomes SET folder = ?1, reason = ?2 WHERE id = ?3", &st, err);
	if (rc < 0)
		goto cleanup;
	sb_sql_bind_text(st, 1, final);
	sb_sql_bind_text(st, 2, reason);
	sqlite3_bind_int64(st, 3, outcome);
	rc = run(db, st, "recording folder", err);
	if (rc == 0)
		sb_log(SB_LOG_WARN, "outbox", "act rejected act=%s step=%s folder=rejected/%s",
		       name, step, final);
cleanup:
	free(reason);
	free(final);
	return rc;
}

int svc_pipeline_reject_new(const struct svc_pipeline *p, struct svc_store *s, const char *name,
			    const char *why, struct sb_err *err)
{
	svc_metrics_intake(true);
	return reject_unrecorded(p, s, "new", name, "intake", NULL, why, err);
}

/* Move a final act's folder out of work/, with the stored reason, and note where it went. */
static int finish_move(const struct svc_pipeline *p, struct svc_store *s, const char *name,
		       const struct row *r, struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	sqlite3_stmt *st = NULL;
	char *reason = NULL, *final = NULL;
	int64_t outcome = 0;
	int rc;

	rc = prepare(db, "SELECT id, reason FROM outcomes WHERE act = ?1 ORDER BY id DESC LIMIT 1",
		     &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, r->id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		outcome = sqlite3_column_int64(st, 0);
		reason = col_dup(st, 1);
	}
	sb_sql_finish(st);
	/* A cancelled act goes to done/ too, with reason.json saying that SEND cancelled it. */
	rc = svc_store_barrier(err);
	if (rc < 0)
		return rc;
	rc = svc_outbox_finish(p->outbox, "work", name, r->state == SVC_CLOSED,
			       r->state == SVC_CLOSED && !r->cancelled ? NULL : reason,
			       &final, err);
	if (rc == SB_ENOTFOUND) {
		/* Moved before a crash that lost only the folder name: nothing left to do. */
		sb_err_clear(err);
		rc = 0;
	} else if (rc == 0 && outcome) {
		rc = svc_store_begin(s, err);
		if (rc == 0)
			rc = prepare(db, "UPDATE outcomes SET folder = ?1 WHERE id = ?2", &st, err);
		if (rc == 0) {
			sb_sql_bind_text(st, 1, final);
			sqlite3_bind_int64(st, 2, outcome);
			rc = run(db, st, "recording folder", err);
		}
		if (rc == 0)
			rc = svc_store_commit(s, err);
		if (rc < 0)
			svc_store_rollback(s);
	}
	if (rc == 0 && final)
		sb_log(SB_LOG_INFO, "pipeline", "act finished act=%s state=%s folder=%s/%s",
		       name, svc_state_name(r->state),
		       r->state == SVC_CLOSED ? "done" : "rejected", final);
	free(reason);
	free(final);
	return rc;
}

/* ---- intake ---------------------------------------------------------------------------- */

void svc_pipeline_check_office(const struct sb_cfg *cfg, const struct svc_act *a,
			       struct sb_problems *probs)
{
	char section[80];

	if (!sb_cfg_has_office(cfg, a->office)) {
		sb_problems_add(probs, "office", "office '%s' is not configured (no [office.%s])",
				a->office, a->office);
		return;
	}
	snprintf(section, sizeof(section), "office.%s", a->office);
	if (sb_cfg_isset(cfg, section, "operators") &&
	    !sb_cfg_list_has(cfg, section, "operators", a->operator_id))
		sb_problems_add(probs, "operator.userId",
				"operator is not listed in [%s] operators", section);
}

/* act.json of dir as text (the parser has already bounded and checked it). */
static char *read_manifest(const char *dir)
{
	char *path = sb_xasprintf("%s/act.json", dir);
	struct sb_buf b = SB_BUF_INIT(SB_MAX_MANIFEST);
	char chunk[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	free(path);
	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (sb_buf_add(&b, chunk, (size_t)n) < 0) {
			close(fd);
			sb_buf_release(&b);
			return NULL;
		}
	}
	close(fd);
	return n < 0 ? (sb_buf_release(&b), NULL) : sb_buf_detach(&b, NULL);
}

/* Record work/<name> as received, or reject it. *recorded tells which. */
static int intake(const struct svc_pipeline *p, struct svc_store *s, const char *name,
		  const char *dir, bool *recorded, struct sb_err *err)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err lerr = SB_ERR_INIT;
	struct svc_act *act = NULL;
	char *manifest = NULL;
	int64_t id;
	int rc;

	*recorded = false;
	rc = svc_act_load(&act, dir, true, &probs, &lerr);
	if (rc == SB_ENOTFOUND && probs.n == 0) {
		/* The folder itself is gone: nothing to reject. */
		rc = sb_err_set(err, SB_ENOTFOUND, lerr.cause, "%s", lerr.msg);
		goto cleanup;
	}
	if (rc == 0 && p->cfg)
		svc_pipeline_check_office(p->cfg, act, &probs);
	if (rc == 0 && probs.n == 0) {
		manifest = read_manifest(dir);
		if (!manifest)
			sb_problems_add(&probs, "act.json", "changed or vanished while being read");
	}
	if (rc < 0 || probs.n) {
		if (probs.n == 0)
			sb_problems_add(&probs, "act.json", "%s", lerr.msg);
		svc_metrics_intake(true);
		rc = reject_unrecorded(p, s, "work", name, "intake", &probs, NULL, err);
		goto cleanup;
	}
	rc = svc_store_act_insert(s, act, manifest, &id, err);
	if (rc == SB_EINVAL) {
		/* A constraint of the store that the parser does not know about. */
		char msg[sizeof(err->msg)];

		snprintf(msg, sizeof(msg), "%s", err->msg);
		sb_err_clear(err);
		svc_metrics_intake(true);
		rc = reject_unrecorded(p, s, "work", name, "intake", NULL, msg, err);
		goto cleanup;
	}
	if (rc == 0) {
		svc_metrics_intake(false);
		*recorded = true;
		sb_log(SB_LOG_INFO, "pipeline", "act received act=%s id=%lld office=%s", name,
		       (long long)id, act->office);
	}
cleanup:
	svc_act_free(act);
	free(manifest);
	sb_problems_release(&probs);
	return rc;
}

/* ---- the event stream ------------------------------------------------------------------ */

static char *dup_opt(const char *v)
{
	return v ? sb_xstrdup(v) : NULL;
}

void svc_event_batch_add(struct svc_event_batch *b, const char *event_id, const char *request_id,
			 const char *iun, const char *category, const char *timestamp,
			 const char *element)
{
	struct svc_event *e;

	b->events = sb_xrealloc(b->events, (b->n + 1) * sizeof(*b->events));
	e = &b->events[b->n++];
	e->event_id = dup_opt(event_id);
	e->request_id = dup_opt(request_id);
	e->iun = dup_opt(iun);
	e->category = dup_opt(category);
	e->timestamp = dup_opt(timestamp);
	e->element = dup_opt(element);
}

static void events_free(struct svc_event *ev, size_t n)
{
	for (size_t i = 0; ev && i < n; i++) {
		free(ev[i].event_id);
		free(ev[i].request_id);
		free(ev[i].iun);
		free(ev[i].category);
		free(ev[i].timestamp);
		free(ev[i].element);
	}
	free(ev);
}

void svc_event_batch_release(struct svc_event_batch *b)
{
	events_free(b->events, b->n);
	free(b->position);
	memset(b, 0, sizeof(*b));
	b->retry_after_ms = -1;
}

/* The stored events of one IUN, oldest first; *seen gets the newest one's row id (0: none). */
static int load_events(sqlite3 *db, const char *iun, struct svc_event **out, size_t *n_out,
		       int64_t *seen, struct sb_err *err)
{
	struct svc_event_batch b = { NULL, 0, NULL, -1 };
	sqlite3_stmt *st = NULL;
	int rc = prepare(db, "SELECT event_id, iun, category, event_timestamp, element, id,"
			 " request_id FROM events WHERE iun = ?1 ORDER BY id", &st, err);

	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, iun);
	*seen = 0;
	sb_sql_lock(db);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		svc_event_batch_add(&b, (const char *)sqlite3_column_text(st, 0),
				    (const char *)sqlite3_column_text(st, 6),
				    (const char *)sqlite3_column_text(st, 1),
				    (const char *)sqlite3_column_text(st, 2),
				    (const char *)sqlite3_column_text(st, 3),
				    (const char *)sqlite3_column_text(st, 4));
		*seen = sqlite3_column_int64(st, 5);
	}
	sb_sql_finish(st);
	sb_sql_unlock(db);
	if (rc != SQLITE_DONE) {
		svc_event_batch_release(&b);
		return sql_error(db, err, rc, "reading events");
	}
	*out = b.events;
	*n_out = b.n;
	return 0;
}

/* Run sql, whose one parameter ?1 is an IUN. */
static int run_iun(sqlite3 *db, const char *sql, const char *iun, const char *what,
		   struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(db, sql, &st, err);

	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, iun);
	return run(db, st, what, err);
}

/* Store one event; *fresh tells whether it was new. */
static int store_event(sqlite3 *db, const struct svc_event *e, bool *fresh, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*fresh = false;
	if (!e->event_id || !e->event_id[0] || !e->category || !e->category[0])
		return sb_err_set(err, SB_EINVAL, 0, "stream: an event without id or category");
	rc = prepare(db, "INSERT INTO events (event_id, iun, category, event_timestamp, element,"
		     " received_at, request_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
		     " ON CONFLICT (event_id) DO NOTHING", &st, err);
	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, e->event_id);
	sb_sql_bind_text(st, 2, e->iun);
	sb_sql_bind_text(st, 3, e->category);
	sb_sql_bind_text(st, 4, e->timestamp);
	sb_sql_bind_text(st, 5, e->element ? e->element : "{}");
	sqlite3_bind_int64(st, 6, sb_now());
	sb_sql_bind_text(st, 7, e->request_id);
	rc = run(db, st, "recording event", err);
	if (rc < 0 || sqlite3_changes(db) != 1 || !e->iun)
		return rc;
	*fresh = true;
	/* SEND accepted a request: the act waiting for it reads its IUN there (acceptance). */
	if (e->request_id && !strcmp(e->category, "REQUEST_ACCEPTED")) {
		rc = prepare(db, "UPDATE acts SET next_attempt_at = 0 WHERE id = (SELECT act FROM"
			     " notifications WHERE request_id = ?1) AND state = 'submitted'",
			     &st, err);
		if (rc < 0)
			return rc;
		sb_sql_bind_text(st, 1, e->request_id);
		rc = run(db, st, "waking an act", err);
		if (rc < 0)
			return rc;
	}
	/*
	 * The act this event concerns is due now: its track step reads it. (An
	 * IUN is unique; "id IN (...)" made SQLite walk every act being tracked.)
	 */
	rc = run_iun(db, "UPDATE acts SET next_attempt_at = 0"
		     " WHERE id = (SELECT act FROM notifications WHERE iun = ?1)"
		     " AND state IN ('accepted','delivering')", e->iun, "waking acts", err);
	/*
	 * A closed act can still hear from SEND: a cancellation after it was
	 * notified brings a legal fact that must be registered like the others.
	 */
	if (rc == 0)
		rc = run_iun(db, "INSERT INTO late_events (act) SELECT a.id FROM notifications n"
			     " JOIN acts a ON a.id = n.act WHERE n.iun = ?1 AND a.state = 'closed'"
			     " ON CONFLICT (act) DO UPDATE SET next_at = 0", e->iun,
			     "marking a closed act", err);
	return rc;
}

int svc_pipeline_stream_replaced(struct svc_store *s, int64_t closed_since, struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	sqlite3_stmt *st = NULL;
	int rc;

	/*
	 * The old stream's lastEventId means nothing to the new one, and
	 * might acknowledge its events.
	 */
	rc = prepare(db, "DELETE FROM meta WHERE key = 'stream.position'", &st, err);
	if (rc == 0)
		rc = run(db, st, "forgetting the stream position", err);
	/* uploaded too: a create in flight may reach SEND before the new stream exists. */
	if (rc == 0)
		rc = prepare(db, "INSERT OR IGNORE INTO stream_catchup (act, marked_at)"
			     " SELECT id, ?1 FROM acts WHERE state IN"
			     " ('uploaded', 'submitted', 'accepted', 'delivering')"
			     " OR (?2 > 0 AND state = 'closed' AND id IN (SELECT act FROM outcomes"
			     "  WHERE state = 'closed' AND at >= ?2))", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, sb_now());
	sqlite3_bind_int64(st, 2, closed_since);
	rc = run(db, st, "recording the catch-up", err);
	if (rc == 0 && sqlite3_changes(db) > 0)
		sb_log(SB_LOG_WARN, "pipeline", "stream replaced: %d act(s) will be caught up from "
		       "their timeline", sqlite3_changes(db));
	return rc;
}

/*
 * Store a batch of events (and the position, when it moved) in one
 * transaction, with the catch-up record of act done_act (> 0) dropped in
 * it; *fresh gets how many events were new.
 */
static int store_batch(struct svc_store *s, const struct svc_event_batch *b, int64_t done_act,
		       size_t *fresh, struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	int rc = svc_store_begin(s, err);

	*fresh = 0;
	for (size_t i = 0; i < b->n && rc == 0; i++) {
		bool is_new = false;

		rc = store_event(db, &b->events[i], &is_new, err);
		*fresh += is_new;
	}
	if (rc == 0 && b->position)
		rc = svc_store_meta_set(s, "stream.position", b->position, err);
	if (rc == 0 && done_act > 0) {
		sqlite3_stmt *st = NULL;

		rc = prepare(db, "DELETE FROM stream_catchup WHERE act = ?1", &st, err);
		if (rc == 0) {
			sqlite3_bind_int64(st, 1, done_act);
			rc = run(db, st, "recording the catch-up", err);
		}
	}
	if (rc == 0)
		rc = svc_store_commit(s, err);
	if (rc < 0)
		svc_store_rollback(s);
	return rc;
}

/* Catch-ups listed at a time; how many are done is bounded by time (catch_up). */
#define CATCHUP_BATCH 50

/*
 * The catch-ups owed (svc_pipeline_stream_replaced), once the new stream
 * exists: each act with an IUN gets its timeline stored as events, which
 * wakes it like stream events do. An act without an IUN yet keeps its
 * record until acceptance gives it one; an act that ended without a
 * notification loses it. Each is one call to SEND, done while the stream
 * would be idle anyway: at least one, then only until until_ms, when the
 * next read is due (reading earlier is a 429). *tried: how many were asked.
 */
static int catch_up(const struct svc_pipeline *p, struct svc_store *s, void *wctx,
		    int64_t until_ms, size_t *fresh_out, size_t *tried, struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	sqlite3_stmt *st = NULL;
	int64_t ids[CATCHUP_BATCH];
	char *iuns[CATCHUP_BATCH];
	size_t n = 0;
	int rc;

	*tried = 0;
	if (!p->steps->timeline_read)
		return 0;
	/* Nearly always nothing is owed: one read, not a write, on every stream read. */
	rc = prepare(db, "SELECT EXISTS (SELECT 1 FROM stream_catchup)", &st, err);
	if (rc < 0)
		return rc;
	sb_sql_lock(db);
	rc = sqlite3_step(st);
	n = rc == SQLITE_ROW ? (size_t)sqlite3_column_int(st, 0) : 0;
	sb_sql_finish(st);
	sb_sql_unlock(db);
	if (rc != SQLITE_ROW)
		return sql_error(db, err, rc, "reading catch-ups");
	if (n == 0)
		return 0;
	n = 0;
	rc = prepare(db, "DELETE FROM stream_catchup WHERE act IN (SELECT id FROM acts"
		     " WHERE state IN ('rejected', 'refused', 'failed'))", &st, err);
	if (rc == 0)
		rc = run(db, st, "dropping catch-ups", err);
	if (rc == 0)
		rc = prepare(db, "SELECT c.act, n.iun FROM stream_catchup c"
			     " JOIN notifications n ON n.act = c.act WHERE n.iun IS NOT NULL"
			     " ORDER BY c.act LIMIT ?1", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, CATCHUP_BATCH);
	sb_sql_lock(db);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < CATCHUP_BATCH) {
		ids[n] = sqlite3_column_int64(st, 0);
		iuns[n++] = col_dup(st, 1);
	}
	sb_sql_finish(st);
	sb_sql_unlock(db);
	rc = rc == SQLITE_DONE ? 0 : sql_error(db, err, rc, "listing catch-ups");
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct svc_event_batch b = { NULL, 0, NULL, -1 };
		struct sb_err terr = SB_ERR_INIT;
		size_t fresh = 0;
		int trc = p->steps->timeline_read(wctx, iuns[i], &b, &terr);

		(*tried)++;
		svc_metrics_step(SVC_PLATFORM_SEND, trc < 0);
		if (trc == 0)
			rc = store_batch(s, &b, ids[i], &fresh, err);
		svc_event_batch_release(&b);
		if (trc == 0 && rc == 0) {
			*fresh_out += fresh;
			sb_log(SB_LOG_INFO, "pipeline",
			       "caught up from the timeline iun=%s new=%zu", iuns[i], fresh);
		} else if (trc < 0) {
			/*
			 * Kept: the next stream read tries again; a 429 or a
			 * 5xx ends this round.
			 */
			sb_log(SB_LOG_WARN, "pipeline", "catch-up postponed iun=%s: %s", iuns[i],
			       terr.msg);
			if (trc == SB_ETEMP)
				break;
		}
		if (sb_now_ms() >= until_ms)
			break;
	}
	for (size_t i = 0; i < n; i++)
		free(iuns[i]);
	return rc;
}

int svc_pipeline_stream_step(const struct svc_pipeline *p, struct svc_store *s, void *wctx,
			     int64_t *wait_ms_out, struct sb_err *err)
{
	struct svc_event_batch b = { NULL, 0, NULL, -1 };
	char *position = NULL;
	size_t fresh = 0;
	size_t caught = 0;
	int64_t t, pause, start;
	int rc;

	SB_ASSERT(p->steps->stream_read);
	rc = svc_store_meta_get(s, "stream.position", &position, err);
	if (rc < 0 && rc != SB_ENOTFOUND)
		return rc;
	rc = p->steps->stream_read(wctx, position, &b, err);
	svc_metrics_step(SVC_PLATFORM_SEND, rc < 0);
	if (rc < 0) {
		*wait_ms_out = rc == SB_ETEMP ?
			svc_pipeline_backoff_ms(&p->opts, 1, err ? err->retry_after : -1) :
			p->opts.retry_max_ms;
		goto cleanup;
	}
	/* An empty page asks for a pause before the next read; a full one does not. */
	pause = b.n ? 0 : b.retry_after_ms > 0 ? (int64_t)b.retry_after_ms : p->opts.poll_ms;
	start = sb_now_ms();
	rc = store_batch(s, &b, 0, &fresh, err);
	/* After a successful read the stream exists: what it cannot carry is read now. */
	if (rc == 0)
		rc = catch_up(p, s, wctx, start + pause, &fresh, &caught, err);
	if (rc < 0)
		goto cleanup;
	if (b.n == 0)
		svc_metrics_set_stream_lag(0);
	else if (b.events[b.n - 1].timestamp &&
		 sb_time_parse_iso8601(b.events[b.n - 1].timestamp, &t) == 0)
		svc_metrics_set_stream_lag(sb_now() > t ? sb_now() - t : 0);
	if (fresh)
		sb_log(SB_LOG_DEBUG, "pipeline", "stream events=%zu new=%zu", b.n, fresh);
	/* A catch-up used part of the pause: the next read comes when it was due. */
	*wait_ms_out = pause;
	if (caught)
		*wait_ms_out = start + pause > sb_now_ms() ? start + pause - sb_now_ms() : 0;
	rc = fresh > 0;
cleanup:
	svc_event_batch_release(&b);
	free(position);
	return rc;
}

/* ---- driving one act ------------------------------------------------------------------- */

static int set_schedule(sqlite3 *db, int64_t id, enum svc_state state, int attempts,
			int64_t next_at, const char *last_error, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(db, "UPDATE acts SET attempts = ?1, next_attempt_at = ?2, last_error = ?3,"
			 " updated_at = ?4 WHERE id = ?5 AND state = ?6", &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, attempts);
	sqlite3_bind_int64(st, 2, next_at);
	sb_sql_bind_text(st, 3, last_error);
	sqlite3_bind_int64(st, 4, sb_now());
	sqlite3_bind_int64(st, 5, id);
	sb_sql_bind_text(st, 6, svc_state_name(state));
	return run(db, st, "scheduling act", err);
}

/* set_schedule in a transaction of its own: made durable without holding the connection. */
static int schedule(struct svc_store *s, int64_t id, enum svc_state state, int attempts,
		    int64_t next_at, const char *last_error, struct sb_err *err)
{
	int rc = svc_store_begin(s, err);

	if (rc == 0)
		rc = set_schedule(svc_store_db(s), id, state, attempts, next_at, last_error, err);
	if (rc == 0)
		rc = svc_store_commit(s, err);
	if (rc < 0)
		svc_store_rollback(s);
	return rc;
}

static int add_receipts(sqlite3 *db, const struct row *r, const struct svc_step_result *res,
			struct sb_err *err)
{
	for (size_t i = 0; i < res->nreceipts && i < SVC_STEP_MAX_RECEIPTS; i++) {
		const struct svc_receipt *rc_ = &res->receipts[i];
		sqlite3_stmt *st = NULL;
		int rc;

		if (!rc_->key[0])
			return sb_err_set(err, SB_EINTERNAL, 0,
					  "track step returned a receipt without key");
		/* The legal fact key is unique: a replayed step cannot register a receipt twice. */
		rc = prepare(db, "INSERT INTO receipts (act, iun, legal_fact_key, category,"
			     " protocol_number, registered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
			     " ON CONFLICT (legal_fact_key) DO NOTHING", &st, err);
		if (rc < 0)
			return rc;
		sqlite3_bind_int64(st, 1, r->id);
		sb_sql_bind_text(st, 2, r->iun ? r->iun : "");
		sb_sql_bind_text(st, 3, rc_->key);
		sb_sql_bind_text(st, 4, rc_->category[0] ? rc_->category : "UNKNOWN");
		sb_sql_bind_text(st, 5, rc_->protocol_number[0] ? rc_->protocol_number : NULL);
		sqlite3_bind_int64(st, 6, sb_now());
		rc = run(db, st, "recording receipt", err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The notification row's side of a successful step. */
static int record_value(sqlite3 *db, const char *name, const struct row *r, enum svc_state to,
			const struct svc_step_result *res, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	switch (to) {
	case SVC_REGISTERED: {
		unsigned char d[SB_SHA256_LEN];
		struct sb_buf token = SB_BUF_INIT(65);

		/*
		 * The idempotenceToken derives from the act id, so a replayed
		 * create is recognised.
		 */
		sb_sha256(name, strlen(name), d);
		sb_hex_encode(d, 16, &token);
		rc = prepare(db,
			     "INSERT INTO notifications (act, protocol_number, idempotence_token,"
			     " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)"
			     " ON CONFLICT (act) DO UPDATE"
			     " SET protocol_number = excluded.protocol_number,"
			     " updated_at = excluded.updated_at", &st, err);
		if (rc == 0) {
			sqlite3_bind_int64(st, 1, r->id);
			sb_sql_bind_text(st, 2, res->value);
			sb_sql_bind_text(st, 3, sb_buf_cstr(&token));
			sqlite3_bind_int64(st, 4, sb_now());
			rc = run(db, st, "recording protocol number", err);
		}
		sb_buf_release(&token);
		return rc;
	}
	case SVC_SUBMITTED:
		rc = prepare(db, "UPDATE notifications SET request_id = ?1, updated_at = ?2"
			     " WHERE act = ?3", &st, err);
		break;
	case SVC_ACCEPTED:
		rc = prepare(db, "UPDATE notifications SET iun = ?1, status = 'ACCEPTED',"
			     " updated_at = ?2 WHERE act = ?3", &st, err);
		break;
	case SVC_DELIVERING:
		rc = prepare(db, "UPDATE notifications SET status = 'DELIVERING', updated_at = ?2"
			     " WHERE act = ?3", &st, err);
		break;
	case SVC_CLOSED:
		rc = prepare(db, "UPDATE notifications SET status = ?4, updated_at = ?2,"
			     " cost_cents = CASE WHEN ?1 >= 0 THEN ?1 ELSE cost_cents END"
			     " WHERE act = ?3", &st, err);
		if (rc == 0) {
			sqlite3_bind_int64(st, 1, res->cost_cents);
			sb_sql_bind_text(st, 4, res->cancelled ? "CANCELLED" :
					 res->value[0] ? res->value : "CLOSED");
		}
		break;
	default:
		return 0;
	}
	if (rc < 0)
		return rc;
	if (to == SVC_SUBMITTED || to == SVC_ACCEPTED)
		sb_sql_bind_text(st, 1, res->value);
	sqlite3_bind_int64(st, 2, sb_now());
	sqlite3_bind_int64(st, 3, r->id);
	return run(db, st, "recording notification", err);
}

/*
 * Events of the act's IUN stored after those its track step was given
 * (r->seen), stored while the step ran: the act closes with them owed to a
 * late track step instead of losing them (late_events). Inside the
 * caller's transaction.
 */
static int late_mark(sqlite3 *db, const struct row *r, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(db, "INSERT INTO late_events (act) SELECT ?1 WHERE EXISTS"
			 " (SELECT 1 FROM events WHERE iun = ?2 AND id > ?3)"
			 " ON CONFLICT (act) DO UPDATE SET next_at = 0", &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, r->id);
	sb_sql_bind_text(st, 2, r->iun ? r->iun : "");
	sqlite3_bind_int64(st, 3, r->seen);
	return run(db, st, "marking a closed act", err);
}

/*
 * Commit from -> to (with the step's data), in one transaction. When the act
 * stays where it is (to is its state), next_at is when to ask again.
 */
static int commit_step(struct svc_store *s, const char *name, struct row *r, enum svc_state to,
		       const struct svc_step_result *res, int64_t next_at, struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	int rc = svc_store_begin(s, err);

	if (rc < 0)
		return rc;
	rc = add_receipts(db, r, res, err);
	if (rc == 0 && to != r->state)
		rc = svc_store_act_transition(s, r->id, r->state, to, NULL, err);
	if (rc == 0 && to != r->state)
		rc = record_value(db, name, r, to, res, err);
	if (rc == 0 && to == SVC_CLOSED) {
		char *reason = reason_json(name, SVC_CLOSED, "track", NULL, res->cancelled ?
					   "the notification was cancelled at SEND "
					   "(NOTIFICATION_CANCELLED)" : NULL);

		rc = outcome_insert(db, name, r->id, SVC_CLOSED, "track", reason, NULL, err);
		free(reason);
	}
	if (rc == 0 && to == SVC_CLOSED)
		rc = late_mark(db, r, err);
	if (rc == 0)
		rc = set_schedule(db, r->id, to, 0, next_at, NULL, err);
	if (rc == 0)
		rc = svc_store_commit(s, err);
	if (rc < 0) {
		svc_store_rollback(s);
		return rc;
	}
	r->next_at = next_at;
	r->state = to;
	r->attempts = 0;
	r->cancelled = to == SVC_CLOSED && res->cancelled;
	if (to == SVC_REGISTERED) {
		free(r->protocol_number);
		r->protocol_number = sb_xstrdup(res->value);
	} else if (to == SVC_SUBMITTED) {
		free(r->request_id);
		r->request_id = sb_xstrdup(res->value);
	} else if (to == SVC_ACCEPTED) {
		free(r->iun);
		r->iun = sb_xstrdup(res->value);
	}
	return res->nreceipts ? load_receipts(db, r, err) : 0;
}

/* Commit a final state with its reason (rejected, refused, failed). */
static int commit_final(struct svc_store *s, const char *name, struct row *r, enum svc_state to,
			const char *step, const struct sb_problems *probs, const char *msg,
			struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	char *reason = reason_json(name, to, step, probs, msg);
	char last[512];
	int rc;

	snprintf(last, sizeof(last), "%s: %s", step, msg && *msg ? msg :
		 probs && probs->n ? probs->items[0].msg : "no detail");
	rc = svc_store_begin(s, err);
	if (rc < 0)
		goto cleanup;
	rc = svc_store_act_transition(s, r->id, r->state, to, last, err);
	if (rc == 0)
		rc = outcome_insert(db, name, r->id, to, step, reason, NULL, err);
	if (rc == 0 && to == SVC_REFUSED) {
		sqlite3_stmt *st = NULL;

		rc = prepare(db, "UPDATE notifications SET refusal = ?1, status = 'REFUSED',"
			     " updated_at = ?2 WHERE act = ?3", &st, err);
		if (rc == 0) {
			sb_sql_bind_text(st, 1, reason);
			sqlite3_bind_int64(st, 2, sb_now());
			sqlite3_bind_int64(st, 3, r->id);
			rc = run(db, st, "recording refusal", err);
		}
	}
	if (rc == 0)
		rc = svc_store_commit(s, err);
	if (rc < 0)
		svc_store_rollback(s);
	else
		r->state = to;
cleanup:
	free(reason);
	return rc;
}

/* The state a successful step leads to; the same state means "ask again later". */
static enum svc_state next_state(enum svc_state from, const struct svc_step_result *res)
{
	if (res->pending)
		return from;
	if (from == SVC_ACCEPTED || from == SVC_DELIVERING) {
		if (res->closed)
			return SVC_CLOSED;
		return res->delivering ? SVC_DELIVERING : from;
	}
	return (enum svc_state)(from + 1);
}

/* Where a permanent error of a step leaves the act. */
static enum svc_state permanent_state(enum svc_state from, int code)
{
	if (code != SB_EINVAL && code != SB_EREJECT)
		return SVC_FAILED;
	if (from == SVC_RECEIVED || from == SVC_CHECKED)
		return SVC_REJECTED;
	if (from == SVC_UPLOADED || from == SVC_SUBMITTED)
		return SVC_REFUSED;
	return SVC_FAILED;
}

static bool needs_value(enum svc_state to)
{
	return to == SVC_REGISTERED || to == SVC_SUBMITTED || to == SVC_ACCEPTED;
}

/* Note once in last_error that the act waits for a step this build does not have. */
static int note_unwired(sqlite3 *db, const struct row *r, const struct stage *sg,
			struct sb_err *err)
{
	char note[128];

	snprintf(note, sizeof(note), "waiting: step '%s' is not available in this build", sg->name);
	if (r->last_error && !strcmp(r->last_error, note))
		return 0;
	return set_schedule(db, r->id, r->state, r->attempts, r->next_at, note, err);
}

/* Run one step and commit its outcome. *progress is set when the act stops moving. */
static int run_step(const struct svc_pipeline *p, struct svc_store *s, void *wctx,
		    const char *name, const char *dir, const struct svc_act *act, struct row *r,
		    const struct stage *sg, svc_step_fn fn, enum svc_progress *progress,
		    struct sb_err *err)
{
	struct svc_step_result res;
	struct sb_err serr = SB_ERR_INIT;
	struct svc_job job = {
		.id = r->id, .act_id = name, .dir = dir, .act = act,
		.protocol_number = r->protocol_number, .request_id = r->request_id, .iun = r->iun,
		.attempt = r->attempts, .receipts = (const char *const *)r->receipts,
		.nreceipts = r->nreceipts,
	};
	sqlite3 *db = svc_store_db(s);
	struct svc_event *events = NULL;
	size_t nevents = 0;
	enum svc_state to;
	int rc, src;

	if ((r->state == SVC_ACCEPTED || r->state == SVC_DELIVERING) && r->iun) {
		rc = load_events(db, r->iun, &events, &nevents, &r->seen, err);
		if (rc < 0)
			return rc;
		job.events = events;
		job.nevents = nevents;
	}
	memset(&res, 0, sizeof(res));
	res.cost_cents = -1;
	src = fn(wctx, &job, &res, &serr);
	events_free(events, nevents);
	if (src == 0 && !res.pending && needs_value(next_state(r->state, &res)) &&
	    (!res.value[0] || !memchr(res.value, '\0', sizeof(res.value))))
		src = sb_err_set(&serr, SB_EINTERNAL, 0, "step %s returned no value", sg->name);
	if (src < 0 && !serr.msg[0])
		sb_err_set(&serr, src, 0, "step %s failed (%s)", sg->name, sb_code_name(src));
	svc_metrics_step(sg->platform, src < 0);
	if (src == 0) {
		enum svc_state from = r->state;

		int64_t next_at;

		to = next_state(from, &res);
		/* Asked again later, or the next step held back: outcome and time in one commit. */
		if (to == from)
			next_at = sb_now_ms() + (res.wait_ms > 0 ? res.wait_ms : p->opts.poll_ms);
		else
			next_at = res.wait_ms > 0 ? sb_now_ms() + res.wait_ms : 0;
		rc = commit_step(s, name, r, to, &res, next_at, err);
		if (rc == 0 && to == from)
			*progress = SVC_PROGRESS_WAITING;
	} else if (src == SB_ETEMP && r->attempts + 1 < p->opts.max_attempts) {
		char last[300];
		int64_t delay = svc_pipeline_backoff_ms(&p->opts, r->attempts + 1,
							serr.retry_after);

		snprintf(last, sizeof(last), "%s: %s (attempt %d)", sg->name, serr.msg,
			 r->attempts + 1);
		rc = schedule(s, r->id, r->state, r->attempts + 1, sb_now_ms() + delay, last, err);
		svc_metrics_retry();
		sb_log(SB_LOG_INFO, "pipeline", "step postponed act=%s step=%s attempt=%d "
		       "delay_ms=%lld: %s", name, sg->name, r->attempts + 1, (long long)delay,
		       serr.msg);
		*progress = SVC_PROGRESS_WAITING;
	} else {
		char msg[300];

		if (src == SB_ETEMP)
			snprintf(msg, sizeof(msg), "gave up after %d attempts: %s", r->attempts + 1,
				 serr.msg);
		else
			snprintf(msg, sizeof(msg), "%s", serr.msg);
		to = src == SB_ETEMP ? SVC_FAILED : permanent_state(r->state, src);
		sb_log(SB_LOG_WARN, "pipeline", "act %s act=%s step=%s: %s",
		       svc_state_name(to), name, sg->name, msg);
		rc = commit_final(s, name, r, to, sg->name, &res.problems, msg, err);
	}
	sb_problems_release(&res.problems);
	return rc;
}

/* The reason of a cancellation that came after the act closed (reason.json and outcomes). */
#define LATE_CANCEL_MSG "the notification was cancelled at SEND after the act had closed " \
	"(NOTIFICATION_CANCELLED); the act stays closed: it was notified"

/*
 * A late track step's outcome, in one transaction: its receipts, a
 * cancellation (the notification's status and a second closed outcome
 * naming the same folder), and the end of the act's late_events record
 * unless events came while the step ran, or it asked to run again.
 */
static int commit_late(struct svc_store *s, const char *name, struct row *r,
		       const struct svc_step_result *res, const char *reason, const char *folder,
		       struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	sqlite3_stmt *st = NULL;
	int rc = svc_store_begin(s, err);

	if (rc < 0)
		return rc;
	rc = add_receipts(db, r, res, err);
	if (rc == 0 && reason) {
		rc = prepare(db, "UPDATE notifications SET status = 'CANCELLED', updated_at = ?1"
			     " WHERE act = ?2", &st, err);
		if (rc == 0) {
			sqlite3_bind_int64(st, 1, sb_now());
			sqlite3_bind_int64(st, 2, r->id);
			rc = run(db, st, "recording the cancellation", err);
		}
		if (rc == 0)
			rc = outcome_insert(db, name, r->id, SVC_CLOSED, "late", reason,
					    folder, err);
	}
	if (rc == 0)
		rc = prepare(db, res->pending ?
			     "UPDATE late_events SET attempts = 0, next_at = 0 WHERE act = ?1" :
			     "DELETE FROM late_events WHERE act = ?1 AND NOT EXISTS"
			     " (SELECT 1 FROM events WHERE iun = ?2 AND id > ?3)", &st, err);
	if (rc == 0) {
		sqlite3_bind_int64(st, 1, r->id);
		if (!res->pending) {
			sb_sql_bind_text(st, 2, r->iun);
			sqlite3_bind_int64(st, 3, r->seen);
		}
		rc = run(db, st, "ending the late step", err);
	}
	if (rc == 0)
		rc = svc_store_commit(s, err);
	if (rc < 0) {
		svc_store_rollback(s);
		return rc;
	}
	r->cancelled = r->cancelled || reason;
	return 0;
}

/*
 * A late step that failed: tried again with the pipeline's backoff, or,
 * after max_attempts or on a permanent error, given up with the reason in
 * the act's last_error, which status shows beside the closed act.
 */
static int fail_late(const struct svc_pipeline *p, struct svc_store *s, const char *name,
		     struct row *r, int src, const struct sb_err *serr, struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	sqlite3_stmt *st = NULL;
	bool again = src == SB_ETEMP && r->late_attempts + 1 < p->opts.max_attempts;
	char last[300];
	int rc = svc_store_begin(s, err);

	if (rc < 0)
		return rc;
	rc = prepare(db,
		     again ? "UPDATE late_events SET attempts = ?2, next_at = ?3 WHERE act = ?1" :
		     "DELETE FROM late_events WHERE act = ?1", &st, err);
	if (rc == 0) {
		sqlite3_bind_int64(st, 1, r->id);
		if (again) {
			sqlite3_bind_int(st, 2, r->late_attempts + 1);
			sqlite3_bind_int64(st, 3, sb_now_ms() +
					   svc_pipeline_backoff_ms(&p->opts, r->late_attempts + 1,
								   serr->retry_after));
		}
		rc = run(db, st, "scheduling the late step", err);
	}
	if (rc == 0 && !again) {
		snprintf(last, sizeof(last), "after closing: %s", serr->msg);
		rc = set_schedule(db, r->id, SVC_CLOSED, r->attempts, 0, last, err);
	}
	if (rc == 0)
		rc = svc_store_commit(s, err);
	if (rc < 0)
		svc_store_rollback(s);
	else
		sb_log(again ? SB_LOG_INFO : SB_LOG_ERROR, "pipeline", "late track step %s act=%s "
		       "attempt=%d: %s", again ? "postponed" : "given up", name,
		       r->late_attempts + 1, serr->msg);
	return rc;
}

/*
 * A closed act with events its track step has not seen (late_events): the
 * track step runs once more in closed mode (job.closed) on the act's folder
 * in done/, so that the legal facts SEND produced after the act closed (a
 * cancellation) are registered like the others. The act stays closed: it
 * was notified. A cancellation's reason.json goes into the folder before
 * the commit that records it, so a replay writes it again rather than
 * never.
 */
static int run_late(const struct svc_pipeline *p, struct svc_store *s, void *wctx,
		    const char *name, struct row *r, struct sb_err *err)
{
	svc_step_fn fn = p->steps->track;
	sqlite3 *db = svc_store_db(s);
	struct svc_step_result res;
	struct sb_err serr = SB_ERR_INIT;
	struct svc_event *events = NULL;
	sqlite3_stmt *st = NULL;
	char *folder = NULL, *dir = NULL, *reason = NULL;
	size_t nevents = 0;
	int rc, src;

	memset(&res, 0, sizeof(res));
	if (!fn || !r->iun || r->late_next_at > sb_now_ms())
		return 0;
	rc = prepare(db, "SELECT folder FROM outcomes WHERE act = ?1 AND folder IS NOT NULL"
		     " ORDER BY id DESC LIMIT 1", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, r->id);
	if (sqlite3_step(st) == SQLITE_ROW)
		folder = col_dup(st, 0);
	sb_sql_finish(st);
	if (!folder)
		folder = sb_xstrdup(name);   /* moved before a crash that lost only its name */
	dir = svc_outbox_path(p->outbox, "done", folder);
	rc = load_events(db, r->iun, &events, &nevents, &r->seen, err);
	if (rc < 0)
		goto cleanup;
	{
		struct svc_job job = {
			.id = r->id, .act_id = name, .dir = dir, .act = NULL,
			.protocol_number = r->protocol_number, .request_id = r->request_id,
			.iun = r->iun, .attempt = r->late_attempts,
			.receipts = (const char *const *)r->receipts, .nreceipts = r->nreceipts,
			.events = events, .nevents = nevents, .closed = true,
		};

		res.cost_cents = -1;
		src = fn(wctx, &job, &res, &serr);
	}
	svc_metrics_step(SVC_PLATFORM_SEND, src < 0);
	if (src < 0) {
		if (!serr.msg[0])
			sb_err_set(&serr, src, 0, "track failed (%s)", sb_code_name(src));
		rc = fail_late(p, s, name, r, src, &serr, err);
		goto cleanup;
	}
	if (res.cancelled && !r->cancelled) {
		reason = reason_json(name, SVC_CLOSED, "late", NULL, LATE_CANCEL_MSG);
		rc = svc_store_barrier(err);
		if (rc == 0)
			rc = svc_outbox_write_reason(p->outbox, "done", folder, reason, err);
		if (rc < 0)
			goto cleanup;
	}
	rc = commit_late(s, name, r, &res, reason, folder, err);
	if (rc == 0 && reason)
		sb_log(SB_LOG_WARN, "pipeline",
		       "notification cancelled at SEND after the act closed "
		       "act=%s iun=%s folder=done/%s", name, r->iun, folder);
	if (rc == 0 && res.nreceipts)
		rc = load_receipts(db, r, err);
cleanup:
	sb_problems_release(&res.problems);
	events_free(events, nevents);
	free(reason);
	free(folder);
	free(dir);
	return rc;
}

static int drive(const struct svc_pipeline *p, struct svc_store *s, void *wctx,
		 const char *name, const char *dir, struct row *r, const atomic_bool *stop,
		 enum svc_progress *out, struct sb_err *err)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct svc_act *act = NULL;
	int rc = 0;

	for (;;) {
		enum svc_progress progress = (enum svc_progress)-1;
		const struct stage *sg;
		svc_step_fn fn;

		if (svc_state_final(r->state)) {
			rc = finish_move(p, s, name, r, err);
			if (rc == 0 && r->state == SVC_CLOSED && r->late)
				rc = run_late(p, s, wctx, name, r, err);
			*out = SVC_PROGRESS_FINISHED;
			break;
		}
		sg = stage_of(r->state);
		SB_ASSERT(sg);
		fn = stage_fn(p->steps, sg);
		if (!fn) {
			rc = note_unwired(svc_store_db(s), r, sg, err);
			*out = SVC_PROGRESS_WAITING;
			break;
		}
		if (r->next_at > sb_now_ms()) {
			*out = SVC_PROGRESS_WAITING;
			break;
		}
		if (stop && atomic_load(stop)) {
			*out = SVC_PROGRESS_STOPPED;
			break;
		}
		if (!act) {
			struct sb_err perr = SB_ERR_INIT;

			/* The stored manifest is the act; the folder must still hold its files. */
			if (svc_act_parse(&act, dir, r->manifest, strlen(r->manifest), false,
					  &probs, &perr) < 0) {
				rc = commit_final(s, name, r, SVC_FAILED, "resume", &probs,
						  probs.n ? "the act's folder changed" : perr.msg,
						  err);
				if (rc < 0)
					break;
				continue;
			}
		}
		rc = run_step(p, s, wctx, name, dir, act, r, sg, fn, &progress, err);
		if (rc < 0)
			break;
		if (progress == SVC_PROGRESS_WAITING) {
			*out = progress;
			break;
		}
	}
	svc_act_free(act);
	sb_problems_release(&probs);
	return rc;
}

int svc_pipeline_process(const struct svc_pipeline *p, struct svc_store *s, void *wctx,
			 const char *name, const atomic_bool *stop, enum svc_progress *out,
			 struct sb_err *err)
{
	char *dir = svc_outbox_path(p->outbox, "work", name), *current = NULL;
	sqlite3 *db = svc_store_db(s);
	struct row r;
	bool recorded;
	int rc;

	rc = load_row(db, name, &r, err);
	if (rc == SB_ENOTFOUND) {
		rc = intake(p, s, name, dir, &recorded, err);
		if (rc < 0)
			goto cleanup;
		if (!recorded) {
			*out = SVC_PROGRESS_FINISHED;
			goto cleanup;
		}
		rc = load_row(db, name, &r, err);
	}
	if (rc < 0)
		goto cleanup;
	current = read_manifest(dir);
	if (current && (strcmp(current, r.manifest) || (svc_state_final(r.state) && r.moved))) {
		/* A second act with a used id; the first one's row stays as it is. */
		char msg[256];

		snprintf(msg, sizeof(msg), "an act with id '%s' was already received (%s)", name,
			 strcmp(current, r.manifest) ? "with a different act.json" :
						       "and has been finished");
		svc_metrics_intake(true);
		rc = reject_unrecorded(p, s, "work", name, "intake", NULL, msg, err);
		*out = SVC_PROGRESS_FINISHED;
		goto cleanup;
	}
	if (!current && !svc_state_final(r.state)) {
		char *in_new = svc_outbox_path(p->outbox, "new", name);
		struct stat st;
		bool waiting = stat(in_new, &st) == 0;

		free(in_new);
		if (waiting) {
			/*
			 * A claim lost by a power cut: the rescan claims it
			 * again, then it resumes.
			 */
			rc = sb_err_set(err, SB_ENOTFOUND, 0, "act '%s' is back in new/", name);
			goto cleanup;
		}
		if (stat(dir, &st) < 0) {
			/* Without its folder the act cannot go on: its documents are gone. */
			rc = commit_final(s, name, &r, SVC_FAILED, "resume", NULL,
					  "the act's folder is missing from work/", err);
			*out = SVC_PROGRESS_FINISHED;
			goto cleanup;
		}
	}
	rc = drive(p, s, wctx, name, dir, &r, stop, out, err);
cleanup:
	row_release(&r);
	free(current);
	free(dir);
	return rc;
}

/* "state IN (?1, ?2, ...)" over the states whose step is wired; 0 states: nothing is due. */
static size_t wired_states(const struct svc_pipeline *p, enum svc_state *out)
{
	size_t n = 0;

	for (size_t i = 0; i < SB_ARRAY_SIZE(stages); i++)
		if (stage_fn(p->steps, &stages[i]))
			out[n++] = stages[i].from;
	return n;
}

static int due_query(const struct svc_pipeline *p, sqlite3 *db, const char *head,
		     const char *tail, sqlite3_stmt **st, int *nbound, struct sb_err *err)
{
	enum svc_state states[SB_ARRAY_SIZE(stages)];
	size_t n = wired_states(p, states);
	struct sb_buf sql = SB_BUF_INIT(4096);
	int rc;

	if (n == 0)
		return SB_ENOTFOUND;
	/* Only placeholders are added to the text: the values are bound. */
	sb_buf_adds(&sql, head);
	for (size_t i = 0; i < n; i++)
		sb_buf_addf(&sql, "%s?%zu", i ? ", " : "", i + 1);
	sb_buf_adds(&sql, tail);
	rc = prepare(db, sb_buf_cstr(&sql), st, err);
	sb_buf_release(&sql);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		sb_sql_bind_text(*st, (int)i + 1, svc_state_name(states[i]));
	*nbound = (int)n;
	return 0;
}

/* Closed acts whose late track step is due, appended to names[0..*n) up to max. */
static int late_due(sqlite3 *db, int64_t now_ms, size_t max, char ***names, size_t *n,
		    struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(db, "SELECT a.act_id FROM late_events l JOIN acts a ON a.id = l.act"
			 " WHERE l.next_at <= ?1 AND a.state = 'closed' ORDER BY l.next_at, l.act"
			 " LIMIT ?2", &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int64(st, 2, (int64_t)(max - *n));
	sb_sql_lock(db);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*names = sb_xrealloc(*names, (*n + 1) * sizeof(**names));
		(*names)[(*n)++] = col_dup(st, 0);
	}
	sb_sql_finish(st);
	sb_sql_unlock(db);
	return rc == SQLITE_DONE ? 0 : sql_error(db, err, rc, "listing closed acts with events");
}

int svc_pipeline_due(const struct svc_pipeline *p, struct svc_store *s, int64_t now_ms,
		     size_t max, char ***names_out, size_t *n_out, struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	sqlite3_stmt *st = NULL;
	char **names = NULL;
	size_t n = 0;
	int nb = 0, rc;

	rc = due_query(p, db, "SELECT act_id FROM acts WHERE state IN (",
		       ") AND next_attempt_at <= ?9 ORDER BY next_attempt_at, id LIMIT ?10", &st,
		       &nb, err);
	if (rc == SB_ENOTFOUND) {
		*names_out = NULL;
		*n_out = 0;
		return 0;
	}
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 9, now_ms);
	sqlite3_bind_int64(st, 10, (int64_t)max);
	sb_sql_lock(db);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		names = sb_xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = col_dup(st, 0);
	}
	sb_sql_finish(st);
	sb_sql_unlock(db);
	if (rc == SQLITE_DONE && p->steps->track && n < max) {
		rc = late_due(db, now_ms, max, &names, &n, err);
		if (rc < 0) {
			svc_outbox_names_free(names, n);
			return rc;
		}
		rc = SQLITE_DONE;
	}
	if (rc != SQLITE_DONE) {
		svc_outbox_names_free(names, n);
		return sql_error(db, err, rc, "listing due acts");
	}
	*names_out = names;
	*n_out = n;
	return 0;
}

int svc_pipeline_next_due(const struct svc_pipeline *p, struct svc_store *s, int64_t *out,
			  struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	sqlite3_stmt *st = NULL;
	int nb = 0, rc;

	*out = INT64_MAX;
	rc = due_query(p, db, "SELECT min(next_attempt_at) FROM acts WHERE state IN (", ")", &st,
		       &nb, err);
	if (rc == SB_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(st, 0);
	sb_sql_finish(st);
	if (rc != SQLITE_ROW)
		return sql_error(db, err, rc, "finding the next due act");
	if (!p->steps->track)
		return 0;
	rc = prepare(db, "SELECT min(l.next_at) FROM late_events l JOIN acts a ON a.id = l.act"
		     " WHERE a.state = 'closed'", &st, err);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL &&
	    sqlite3_column_int64(st, 0) < *out)
		*out = sqlite3_column_int64(st, 0);
	sb_sql_finish(st);
	return rc == SQLITE_ROW ? 0 : sql_error(db, err, rc, "finding the next due act");
}
