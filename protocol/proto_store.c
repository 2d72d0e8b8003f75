/*
 * The register's tables in the project's SQLite store (see proto.h).
 *
 * Spec: ../shared/specs/agid/SUMMARY.md section 2 (R1-R8). The rules that
 * matter for evidence are enforced by the store itself, not only by this
 * file, so that a hand-written UPDATE cannot break them:
 *  - the fields of art. 53 c.1 (number, date, correspondents, subject,
 *    impronte) and the segnatura are protected by a trigger;
 *  - classification and assignment may change, but only with an author and
 *    a time, and a trigger writes the old and new value to proto_changes;
 *  - an annulment is written once, needs reason, author and authorising
 *    act, and rows are never deleted;
 *  - a counter only moves forward by one, so numbers have no gap.
 *
 * Migrations are append-only, versioned in meta under "schema.protocol";
 * each runs in one transaction with its version bump.
 */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_sql.h"
#include "sb_json.h"
#include "proto_int.h"

#define META_KEY "schema.protocol"

static const char *const migrations[] = {
	/* 1: the register */
	"CREATE TABLE proto_counters ("
	"  register TEXT NOT NULL,"
	"  year INTEGER NOT NULL,"
	"  last INTEGER NOT NULL CHECK (last >= 1),"
	"  PRIMARY KEY (register, year)"
	");"
	"CREATE TRIGGER proto_counters_forward BEFORE UPDATE ON proto_counters"
	"  WHEN NEW.last <> OLD.last + 1 OR NEW.register IS NOT OLD.register"
	"    OR NEW.year IS NOT OLD.year"
	"  BEGIN SELECT RAISE(ABORT, 'protocol: a counter only moves forward by one'); END;"
	"CREATE TRIGGER proto_counters_no_delete BEFORE DELETE ON proto_counters"
	"  BEGIN SELECT RAISE(ABORT, 'protocol: counters cannot be deleted'); END;"
	"CREATE TABLE proto_registrations ("
	"  id INTEGER PRIMARY KEY,"
	"  register TEXT NOT NULL,"
	"  year INTEGER NOT NULL CHECK (year BETWEEN 1970 AND 9999),"
	"  number INTEGER NOT NULL CHECK (number >= 1),"
	"  direction TEXT NOT NULL CHECK (direction IN ('out','in')),"
	"  registered_at INTEGER NOT NULL,"
	"  reg_date TEXT NOT NULL,"
	"  reg_time TEXT NOT NULL,"
	"  subject TEXT NOT NULL CHECK (length(subject) > 0),"
	"  correspondents TEXT NOT NULL,"
	"  documents TEXT NOT NULL,"
	"  author TEXT NOT NULL,"
	"  act_id TEXT,"
	"  iun TEXT,"
	"  legal_fact_id TEXT UNIQUE,"
	"  category TEXT,"
	"  link INTEGER REFERENCES proto_registrations(id),"
	"  segnatura TEXT NOT NULL,"
	"  backend TEXT NOT NULL,"
	"  classification TEXT NOT NULL,"
	"  assignment TEXT,"
	"  changed_by TEXT,"
	"  changed_at INTEGER,"
	"  change_reason TEXT,"
	"  segnatura_sent INTEGER NOT NULL DEFAULT 0,"
	"  annulled_at INTEGER,"
	"  annul_reason TEXT,"
	"  annul_author TEXT,"
	"  annul_act TEXT,"
	"  UNIQUE (register, year, number),"
	"  CHECK (direction = 'in' OR act_id IS NOT NULL),"
	"  CHECK (direction = 'out' OR (legal_fact_id IS NOT NULL AND link IS NOT NULL)),"
	"  CHECK (annulled_at IS NULL OR (length(annul_reason) > 0 AND length(annul_author) > 0"
	"    AND length(annul_act) > 0))"
	");"
	"CREATE UNIQUE INDEX proto_reg_act ON proto_registrations (act_id)"
	"  WHERE direction = 'out' AND annulled_at IS NULL;"
	"CREATE INDEX proto_reg_link ON proto_registrations (link);"
	"CREATE INDEX proto_reg_at ON proto_registrations (registered_at);"
	"CREATE TABLE proto_changes ("
	"  id INTEGER PRIMARY KEY,"
	"  registration INTEGER NOT NULL REFERENCES proto_registrations(id),"
	"  field TEXT NOT NULL,"
	"  old_value TEXT,"
	"  new_value TEXT,"
	"  author TEXT NOT NULL CHECK (length(author) > 0),"
	"  reason TEXT,"
	"  at INTEGER NOT NULL"
	");"
	"CREATE INDEX proto_changes_at ON proto_changes (at);"
	"CREATE TRIGGER proto_changes_no_update BEFORE UPDATE ON proto_changes"
	"  BEGIN SELECT RAISE(ABORT, 'protocol: history cannot be changed'); END;"
	"CREATE TRIGGER proto_changes_no_delete BEFORE DELETE ON proto_changes"
	"  BEGIN SELECT RAISE(ABORT, 'protocol: history cannot be deleted'); END;"
	"CREATE TRIGGER proto_reg_protected BEFORE UPDATE OF register, year, number, direction,"
	"  registered_at, reg_date, reg_time, subject, correspondents, documents, author, act_id,"
	"  iun, legal_fact_id, category, link, segnatura, backend ON proto_registrations"
	"  BEGIN SELECT RAISE(ABORT, 'protocol: protected field cannot be changed'); END;"
	"CREATE TRIGGER proto_reg_no_delete BEFORE DELETE ON proto_registrations"
	"  BEGIN SELECT RAISE(ABORT, 'protocol: registrations cannot be deleted'); END;"
	"CREATE TRIGGER proto_reg_annul_once BEFORE UPDATE OF annulled_at, annul_reason,"
	"  annul_author, annul_act ON proto_registrations WHEN OLD.annulled_at IS NOT NULL"
	"  BEGIN SELECT RAISE(ABORT, 'protocol: an annulment cannot be changed'); END;"
	"CREATE TRIGGER proto_reg_annul_history AFTER UPDATE OF annulled_at ON proto_registrations"
	"  WHEN OLD.annulled_at IS NULL AND NEW.annulled_at IS NOT NULL"
	"  BEGIN INSERT INTO proto_changes (registration, field, old_value, new_value, author,"
	"    reason, at) VALUES (NEW.id, 'annulment', NULL, NEW.annul_act, NEW.annul_author,"
	"    NEW.annul_reason, NEW.annulled_at); END;"
	"CREATE TRIGGER proto_reg_change_check BEFORE UPDATE OF classification, assignment"
	"  ON proto_registrations"
	"  WHEN OLD.annulled_at IS NOT NULL OR NEW.changed_by IS NULL OR NEW.changed_by = ''"
	"    OR NEW.changed_at IS NULL"
	"  BEGIN SELECT RAISE(ABORT, 'protocol: a change needs a live registration, its author"
	" and time'); END;"
	"CREATE TRIGGER proto_reg_history_class AFTER UPDATE OF classification"
	"  ON proto_registrations WHEN OLD.classification IS NOT NEW.classification"
	"  BEGIN INSERT INTO proto_changes (registration, field, old_value, new_value, author,"
	"    reason, at) VALUES (NEW.id, 'classification', OLD.classification,"
	"    NEW.classification, NEW.changed_by, NEW.change_reason, NEW.changed_at); END;"
	"CREATE TRIGGER proto_reg_history_assign AFTER UPDATE OF assignment"
	"  ON proto_registrations WHEN OLD.assignment IS NOT NEW.assignment"
	"  BEGIN INSERT INTO proto_changes (registration, field, old_value, new_value, author,"
	"    reason, at) VALUES (NEW.id, 'assignment', OLD.assignment,"
	"    NEW.assignment, NEW.changed_by, NEW.change_reason, NEW.changed_at); END;"
	/* The author is consumed by the change: the next UPDATE must name its own. */
	"CREATE TRIGGER proto_reg_change_done AFTER UPDATE OF classification, assignment"
	"  ON proto_registrations"
	"  BEGIN UPDATE proto_registrations SET changed_by = NULL, changed_at = NULL,"
	"    change_reason = NULL WHERE id = NEW.id; END;",

	/* 2: reading a registration's history without scanning every change */
	"CREATE INDEX proto_changes_reg ON proto_changes (registration, id);"
};

static int db_err(sqlite3 *db, struct sb_err *err, int rc, const char *what)
{
	enum sb_code code = SB_EIO;

	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		code = SB_ETEMP;
	else if (rc == SQLITE_CONSTRAINT)
		code = SB_EINVAL;
	return sb_err_set(err, code, rc, "protocol store: %s: %s", what, sqlite3_errmsg(db));
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct sb_err *err)
{
	int rc = sb_sql_prepare(db, sql, st);

	return rc == SQLITE_OK ? 0 : db_err(db, err, rc, "prepare");
}

/* Bind register, year, number as parameters 1..3. */
static void bind_id(sqlite3_stmt *st, const struct proto_id *id)
{
	sb_sql_bind_text(st, 1, id->reg);
	sqlite3_bind_int(st, 2, id->year);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)id->number);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? sb_xstrdup((const char *)t) : NULL;
}

int proto_store_migrate(struct sqlite3 *db, struct sb_err *err)
{
	return sb_sql_migrate(db, META_KEY, migrations, SB_ARRAY_SIZE(migrations), err);
}

/* sb_sql_begin: the store's connection may be shared by the daemon's workers. */
int proto_db_begin(struct proto *p, struct sb_err *err)
{
	int rc = sb_sql_begin(p->db, true);

	if (rc != SQLITE_OK) {
		sb_err_set(err, rc == SQLITE_BUSY ? SB_ETEMP : SB_EIO, rc,
			   "protocol store: begin: %s", sqlite3_errstr(rc));
		return rc == SQLITE_BUSY ? SB_ETEMP : SB_EIO;
	}
	p->in_tx = true;
	return 0;
}

int proto_db_commit(struct proto *p, struct sb_err *err)
{
	int rc;

	SB_ASSERT(p->in_tx);
	p->in_tx = false;   /* committed or rolled back, the level is over */
	rc = sb_sql_end(p->db, true);
	if (rc != SQLITE_OK) {
		sb_err_set(err, rc == SQLITE_BUSY ? SB_ETEMP : SB_EIO, rc,
			   "protocol store: commit: %s", sqlite3_errstr(rc));
		return rc == SQLITE_BUSY ? SB_ETEMP : SB_EIO;
	}
	return 0;
}

void proto_db_rollback(struct proto *p)
{
	if (!p->in_tx)
		return;
	p->in_tx = false;
	sb_sql_end(p->db, false);
}

int proto_db_take_number(struct proto *p, const char *reg, int year, uint64_t number,
			 bool *taken, struct sb_err *err)
{
	/*
	 * The caller holds the write lock (BEGIN IMMEDIATE): the check and the bump
	 * cannot interleave with another registration. A plain statement and
	 * sqlite3_changes, not RETURNING: RETURNING buffers its rows in a temporary
	 * b-tree, a pager opened and freed at every registration.
	 */
	sqlite3_stmt *st = NULL;
	int rc = prepare(p->db, number == 1 ?
			 "INSERT OR IGNORE INTO proto_counters (register, year, last)"
			 " VALUES (?1, ?2, 1)" :
			 "UPDATE proto_counters SET last = ?3"
			 " WHERE register = ?1 AND year = ?2 AND last = ?3 - 1", &st, err);

	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, reg);
	sqlite3_bind_int(st, 2, year);
	if (number != 1)
		sqlite3_bind_int64(st, 3, (sqlite3_int64)number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		*taken = sqlite3_changes(p->db) == 1;
		rc = 0;
	} else {
		rc = db_err(p->db, err, rc, "numbering");
	}
	sb_sql_finish(st);
	return rc;
}

int proto_db_peek_number(struct proto *p, const char *reg, int year, uint64_t *out,
			 struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(p->db, "SELECT last FROM proto_counters WHERE register = ? AND year = ?",
			 &st, err);

	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, reg);
	sqlite3_bind_int(st, 2, year);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		/* No row: a new year, nothing taken yet. */
		*out = (rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0) + 1;
		rc = 0;
	} else {
		rc = db_err(p->db, err, rc, "numbering");
	}
	sb_sql_finish(st);
	return rc;
}

static const char *party_type_name(enum proto_party_type t)
{
	return t == PROTO_PF ? "PF" : t == PROTO_PG ? "PG" : "PA";
}

static int parties_json(const struct proto_row *row, struct sb_buf *out, struct sb_err *err)
{
	json_t *a = json_array();
	int rc;

	for (size_t i = 0; i < row->nparties; i++) {
		const struct proto_party *pp = &row->parties[i];
		json_t *o = json_object();

		json_object_set_new(o, "type", json_string(party_type_name(pp->type)));
		json_object_set_new(o, "name", json_string(pp->name));
		if (pp->tax_id)
			json_object_set_new(o, "taxId", json_string(pp->tax_id));
		json_array_append_new(a, o);
	}
	rc = sb_json_dump(a, out, err);
	json_decref(a);
	return rc;
}

static int docs_json(const struct proto_row *row, struct sb_buf *out, struct sb_err *err)
{
	json_t *a = json_array();
	int rc;

	for (size_t i = 0; i < row->ndocs; i++) {
		const struct proto_hdoc *d = &row->docs[i];
		json_t *o = json_object();

		json_object_set_new(o, "name", json_string(d->name));
		json_object_set_new(o, "mimeType", json_string(d->mime_type));
		if (d->title)
			json_object_set_new(o, "title", json_string(d->title));
		json_object_set_new(o, "sha256", json_string(d->sha256_hex));
		json_object_set_new(o, "size", json_integer((json_int_t)d->size));
		json_array_append_new(a, o);
	}
	rc = sb_json_dump(a, out, err);
	json_decref(a);
	return rc;
}

int proto_db_insert(struct proto *p, const struct proto_row *row, const char *segnatura,
		    int64_t *row_id, struct sb_err *err)
{
	struct sb_buf parties = SB_BUF_INIT(SB_MAX_JSON_BODY), docs = SB_BUF_INIT(SB_MAX_JSON_BODY);
	sqlite3_stmt *st = NULL;
	int rc;

	rc = parties_json(row, &parties, err);
	if (rc == 0)
		rc = docs_json(row, &docs, err);
	if (rc == 0)
		rc = prepare(p->db, "INSERT INTO proto_registrations (register, year, number,"
			     " direction, registered_at, reg_date, reg_time, subject,"
			     " correspondents, documents, author, act_id, iun, legal_fact_id,"
			     " category, link,"
			     " segnatura, backend, classification, assignment)"
			     " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &st, err);
	if (rc < 0)
		goto cleanup;
	sb_sql_bind_text(st, 1, row->id.reg);
	sqlite3_bind_int(st, 2, row->id.year);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)row->id.number);
	sb_sql_bind_text(st, 4, row->dir == PROTO_OUT ? "out" : "in");
	sqlite3_bind_int64(st, 5, row->registered_at);
	sb_sql_bind_text(st, 6, row->date);
	sb_sql_bind_text(st, 7, row->time);
	sb_sql_bind_text(st, 8, row->subject);
	sb_sql_bind_text(st, 9, sb_buf_cstr(&parties));
	sb_sql_bind_text(st, 10, sb_buf_cstr(&docs));
	sb_sql_bind_text(st, 11, row->author);
	sb_sql_bind_text(st, 12, row->act_id);
	sb_sql_bind_text(st, 13, row->iun);
	sb_sql_bind_text(st, 14, row->legal_fact_id);
	sb_sql_bind_text(st, 15, row->category);
	if (row->link)
		sqlite3_bind_int64(st, 16, row->link->row_id);
	else
		sqlite3_bind_null(st, 16);
	sb_sql_bind_text(st, 17, segnatura);
	sb_sql_bind_text(st, 18, row->backend);
	sb_sql_bind_text(st, 19, row->classification);
	sb_sql_bind_text(st, 20, row->assignment);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		*row_id = sqlite3_last_insert_rowid(p->db);
		rc = 0;
	} else {
		rc = db_err(p->db, err, rc, "registration");
	}
cleanup:
	sb_sql_finish(st);
	sb_buf_release(&parties);
	sb_buf_release(&docs);
	return rc;
}

static enum proto_party_type party_type_parse(const char *s)
{
	if (s && !strcmp(s, "PF"))
		return PROTO_PF;
	if (s && !strcmp(s, "PG"))
		return PROTO_PG;
	return PROTO_PA;
}

static int load_parties(struct proto_reg *r, const char *text, struct sb_err *err)
{
	json_t *a = NULL;
	int rc = sb_json_parse(text, strlen(text), SB_MAX_JSON_BODY, "correspondents", &a, err);

	if (rc < 0)
		return rc;
	if (!json_is_array(a)) {
		json_decref(a);
		return sb_err_set(err, SB_EIO, 0, "protocol store: correspondents is not an array");
	}
	r->nparties = json_array_size(a);
	SB_ALLOC_ARRAY(r->parties, r->nparties);
	for (size_t i = 0; i < r->nparties; i++) {
		json_t *o = json_array_get(a, i);
		const char *tax_id = json_string_value(json_object_get(o, "taxId"));

		r->parties[i].type =
			party_type_parse(json_string_value(json_object_get(o, "type")));
		r->parties[i].name = sb_xstrdup(json_string_value(json_object_get(o, "name")) ?
						json_string_value(json_object_get(o, "name")) : "");
		r->parties[i].tax_id = tax_id ? sb_xstrdup(tax_id) : NULL;
	}
	json_decref(a);
	return 0;
}

static int load_docs(struct proto_reg *r, const char *text, struct sb_err *err)
{
	json_t *a = NULL;
	int rc = sb_json_parse(text, strlen(text), SB_MAX_JSON_BODY, "documents", &a, err);

	if (rc < 0)
		return rc;
	if (!json_is_array(a)) {
		json_decref(a);
		return sb_err_set(err, SB_EIO, 0, "protocol store: documents is not an array");
	}
	r->ndocs = json_array_size(a);
	SB_ALLOC_ARRAY(r->docs, r->ndocs);
	for (size_t i = 0; i < r->ndocs; i++) {
		json_t *o = json_array_get(a, i);
		const char *name = json_string_value(json_object_get(o, "name"));
		const char *mime = json_string_value(json_object_get(o, "mimeType"));
		const char *title = json_string_value(json_object_get(o, "title"));
		const char *sha = json_string_value(json_object_get(o, "sha256"));

		r->docs[i].name = sb_xstrdup(name ? name : "");
		r->docs[i].mime_type = sb_xstrdup(mime ? mime : "");
		r->docs[i].title = title ? sb_xstrdup(title) : NULL;
		snprintf(r->docs[i].sha256_hex, sizeof(r->docs[i].sha256_hex), "%s",
			 sha ? sha : "");
		r->docs[i].size = (uint64_t)json_integer_value(json_object_get(o, "size"));
	}
	json_decref(a);
	return 0;
}

static int load_changes(struct proto *p, struct proto_reg *r, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	size_t alloc = 0;
	int rc;

	rc = prepare(p->db, "SELECT field, old_value, new_value, author, reason, at"
		     " FROM proto_changes WHERE registration = ? ORDER BY id", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, r->row_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct proto_change *c;

		if (r->nchanges == alloc) {
			alloc = alloc ? alloc * 2 : 4;
			r->changes = sb_xrealloc(r->changes, alloc * sizeof(*r->changes));
		}
		c = &r->changes[r->nchanges++];
		c->field = col_dup(st, 0);
		c->old_value = col_dup(st, 1);
		c->new_value = col_dup(st, 2);
		c->author = col_dup(st, 3);
		c->reason = col_dup(st, 4);
		c->at = sqlite3_column_int64(st, 5);
	}
	rc = rc == SQLITE_DONE ? 0 : db_err(p->db, err, rc, "reading history");
	sb_sql_finish(st);
	return rc;
}

#define REG_COLUMNS \
	"r.id, r.register, r.year, r.number, r.direction, r.registered_at, r.reg_date," \
	" r.reg_time, r.subject, r.correspondents, r.documents, r.author, r.act_id, r.iun," \
	" r.legal_fact_id, r.category, l.register, l.year, l.number, r.classification," \
	" r.assignment, r.annulled_at, r.annul_reason, r.annul_author, r.annul_act, r.backend" \
	" FROM proto_registrations r LEFT JOIN proto_registrations l ON l.id = r.link"

static int reg_from_row(struct proto *p, sqlite3_stmt *st, struct proto_reg **out,
			struct sb_err *err)
{
	struct proto_reg *r = sb_xcalloc(1, sizeof(*r));
	const char *t;
	int rc;

	r->row_id = sqlite3_column_int64(st, 0);
	t = (const char *)sqlite3_column_text(st, 1);
	snprintf(r->id.reg, sizeof(r->id.reg), "%s", t ? t : "");
	r->id.year = sqlite3_column_int(st, 2);
	r->id.number = (uint64_t)sqlite3_column_int64(st, 3);
	proto_id_format(&r->id, r->text, sizeof(r->text));
	t = (const char *)sqlite3_column_text(st, 4);
	r->dir = t && !strcmp(t, "in") ? PROTO_IN : PROTO_OUT;
	r->registered_at = sqlite3_column_int64(st, 5);
	t = (const char *)sqlite3_column_text(st, 6);
	snprintf(r->date, sizeof(r->date), "%s", t ? t : "");
	t = (const char *)sqlite3_column_text(st, 7);
	snprintf(r->time, sizeof(r->time), "%s", t ? t : "");
	r->subject = col_dup(st, 8);
	r->author = col_dup(st, 11);
	r->act_id = col_dup(st, 12);
	r->iun = col_dup(st, 13);
	r->legal_fact_id = col_dup(st, 14);
	r->category = col_dup(st, 15);
	if (sqlite3_column_type(st, 16) != SQLITE_NULL) {
		r->has_link = true;
		t = (const char *)sqlite3_column_text(st, 16);
		snprintf(r->link.reg, sizeof(r->link.reg), "%s", t ? t : "");
		r->link.year = sqlite3_column_int(st, 17);
		r->link.number = (uint64_t)sqlite3_column_int64(st, 18);
	}
	r->classification = col_dup(st, 19);
	r->assignment = col_dup(st, 20);
	r->annulled = sqlite3_column_type(st, 21) != SQLITE_NULL;
	r->annulled_at = sqlite3_column_int64(st, 21);
	r->annul_reason = col_dup(st, 22);
	r->annul_author = col_dup(st, 23);
	r->annul_act = col_dup(st, 24);
	r->backend = col_dup(st, 25);
	rc = load_parties(r, (const char *)sqlite3_column_text(st, 9), err);
	if (rc == 0)
		rc = load_docs(r, (const char *)sqlite3_column_text(st, 10), err);
	if (rc == 0)
		rc = load_changes(p, r, err);
	if (rc < 0) {
		proto_reg_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Run a prepared look-up that yields at most one registration. */
static int find_one(struct proto *p, sqlite3_stmt *st, struct proto_reg **out, const char *what,
		    struct sb_err *err)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return reg_from_row(p, st, out, err);
	if (rc == SQLITE_DONE)
		return sb_err_set(err, SB_ENOTFOUND, 0, "no protocol registration for %s", what);
	return db_err(p->db, err, rc, "look-up");
}

int proto_db_find(struct proto *p, const char *key, const char *value, struct proto_reg **out,
		  struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	bool act = !strcmp(key, "act");
	int rc;

	rc = prepare(p->db, act ?
		     "SELECT " REG_COLUMNS " WHERE r.act_id = ? AND r.direction = 'out'"
		     " AND r.annulled_at IS NULL" :
		     "SELECT " REG_COLUMNS " WHERE r.legal_fact_id = ?", &st, err);
	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, value);
	rc = find_one(p, st, out, act ? "this act" : "this legal fact", err);
	sb_sql_finish(st);
	return rc;
}

int proto_db_get(struct proto *p, const struct proto_id *id, struct proto_reg **out,
		 struct sb_err *err)
{
	char text[PROTO_ID_TEXT_SIZE];
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(p->db, "SELECT " REG_COLUMNS
		     " WHERE r.register = ? AND r.year = ? AND r.number = ?", &st, err);
	if (rc < 0)
		return rc;
	bind_id(st, id);
	rc = find_one(p, st, out, proto_id_format(id, text, sizeof(text)), err);
	sb_sql_finish(st);
	return rc;
}

int proto_db_segnatura(struct proto *p, const struct proto_id *id, char **out,
		       struct sb_err *err)
{
	char text[PROTO_ID_TEXT_SIZE];
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(p->db, "SELECT segnatura FROM proto_registrations"
		     " WHERE register = ? AND year = ? AND number = ?", &st, err);
	if (rc < 0)
		return rc;
	bind_id(st, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = col_dup(st, 0);
		rc = *out ? 0 : sb_err_set(err, SB_EIO, 0, "protocol store: empty segnatura");
	} else if (rc == SQLITE_DONE) {
		rc = sb_err_set(err, SB_ENOTFOUND, 0, "no protocol registration %s",
				proto_id_format(id, text, sizeof(text)));
	} else {
		rc = db_err(p->db, err, rc, "reading segnatura");
	}
	sb_sql_finish(st);
	return rc;
}

int proto_db_set_flag(struct proto *p, int64_t row_id, const char *flag, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	SB_ASSERT(!strcmp(flag, "segnatura_sent"));
	rc = prepare(p->db, "UPDATE proto_registrations SET segnatura_sent = 1 WHERE id = ?",
		     &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, row_id);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(p->db, err, rc, "marking segnatura sent");
	sb_sql_finish(st);
	return rc;
}

int proto_db_flag(struct proto *p, int64_t row_id, const char *flag, bool *out,
		  struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	SB_ASSERT(!strcmp(flag, "segnatura_sent"));
	rc = prepare(p->db, "SELECT segnatura_sent FROM proto_registrations"
		     " WHERE id = ?", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, row_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0) != 0;
		rc = 0;
	} else {
		rc = db_err(p->db, err, rc == SQLITE_DONE ? SQLITE_NOTFOUND : rc, "reading flag");
	}
	sb_sql_finish(st);
	return rc;
}

int proto_receipts_list(struct proto *p, const struct proto_id *id, struct proto_reg ***out,
			size_t *n, struct sb_err *err)
{
	struct proto_reg **list = NULL, *r;
	size_t count = 0, alloc = 0;
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(p->db, "SELECT " REG_COLUMNS " WHERE l.register = ? AND l.year = ?"
		     " AND l.number = ? ORDER BY r.id", &st, err);
	if (rc < 0)
		return rc;
	bind_id(st, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = reg_from_row(p, st, &r, err);
		if (rc < 0)
			goto fail;
		if (count == alloc) {
			alloc = alloc ? alloc * 2 : 8;
			list = sb_xrealloc(list, alloc * sizeof(*list));
		}
		list[count++] = r;
	}
	if (rc != SQLITE_DONE) {
		rc = db_err(p->db, err, rc, "listing receipts");
		goto fail;
	}
	sb_sql_finish(st);
	*out = list;
	*n = count;
	return 0;
fail:
	sb_sql_finish(st);
	proto_reg_list_free(list, count);
	return rc;
}

void proto_reg_list_free(struct proto_reg **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		proto_reg_free(list[i]);
	free(list);
}

int proto_annul(struct proto *p, const struct proto_id *id, const char *reason,
		const char *author, const char *authorising_act, struct sb_err *err)
{
	struct proto_reg *r = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	if (!reason || !*reason)
		return sb_err_set(err, SB_EINVAL, 0, "annulment: reason is required");
	if (!author || !*author)
		return sb_err_set(err, SB_EINVAL, 0, "annulment: author is required");
	if (!authorising_act || !*authorising_act)
		return sb_err_set(err, SB_EINVAL, 0,
				  "annulment: the authorising act is required (art. 54)");
	rc = proto_db_get(p, id, &r, err);
	if (rc < 0)
		return rc;
	if (r->annulled) {
		rc = sb_err_set(err, SB_EINVAL, 0, "registration %s is already annulled", r->text);
		goto cleanup;
	}
	if (p->backend == PROTO_REST) {
		rc = proto_rest_annul(p, id, reason, author, authorising_act, err);
		if (rc < 0)
			goto cleanup;
	}
	rc = prepare(p->db, "UPDATE proto_registrations SET annulled_at = ?, annul_reason = ?,"
		     " annul_author = ?, annul_act = ? WHERE id = ? AND annulled_at IS NULL",
		     &st, err);
	if (rc < 0)
		goto cleanup;
	sqlite3_bind_int64(st, 1, proto_now(p));
	sb_sql_bind_text(st, 2, reason);
	sb_sql_bind_text(st, 3, author);
	sb_sql_bind_text(st, 4, authorising_act);
	sqlite3_bind_int64(st, 5, r->row_id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		rc = db_err(p->db, err, rc, "annulment");
	else if (sqlite3_changes(p->db) != 1)
		rc = sb_err_set(err, SB_EINVAL, 0, "registration %s is already annulled", r->text);
	else
		rc = 0;
cleanup:
	sb_sql_finish(st);
	proto_reg_free(r);
	return rc;
}

int proto_correct(struct proto *p, const struct proto_id *id, const char *field,
		  const char *value, const char *author, const char *reason,
		  struct sb_err *err)
{
	struct proto_reg *r = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	if (!field || (strcmp(field, "subject") && strcmp(field, "classification") &&
		       strcmp(field, "assignment")))
		return sb_err_set(err, SB_EINVAL, 0, "correction: field '%s' cannot be corrected"
				  " (subject, classification or assignment)", field ? field : "");
	if (!value || !*value || strlen(value) > 4096 || !sb_utf8_valid(value, strlen(value)))
		return sb_err_set(err, SB_EINVAL, 0, "correction: %s: value must be 1..4096 bytes"
				  " of UTF-8", field);
	if (!author || !*author)
		return sb_err_set(err, SB_EINVAL, 0, "correction: author is required");
	if (!reason || !*reason)
		return sb_err_set(err, SB_EINVAL, 0, "correction: reason is required");
	rc = proto_db_get(p, id, &r, err);
	if (rc < 0)
		return rc;
	if (r->annulled) {
		rc = sb_err_set(err, SB_EINVAL, 0, "registration %s is annulled", r->text);
		goto cleanup;
	}
	if (!strcmp(field, "subject")) {
		/*
		 * The registered subject is protected (art. 53): the correction is a
		 * new history row and the old value stays readable beside it.
		 */
		rc = prepare(p->db, "INSERT INTO proto_changes (registration, field, old_value,"
			     " new_value, author, reason, at) VALUES (?, 'subject', ?, ?, ?, ?, ?)",
			     &st, err);
		if (rc < 0)
			goto cleanup;
		sqlite3_bind_int64(st, 1, r->row_id);
		sb_sql_bind_text(st, 2, proto_reg_subject(r));
	} else {
		rc = prepare(p->db, !strcmp(field, "classification") ?
			     "UPDATE proto_registrations SET classification = ?2, changed_by = ?3,"
			     " change_reason = ?4, changed_at = ?5 WHERE id = ?1" :
			     "UPDATE proto_registrations SET assignment = ?2, changed_by = ?3,"
			     " change_reason = ?4, changed_at = ?5 WHERE id = ?1", &st, err);
		if (rc < 0)
			goto cleanup;
		sqlite3_bind_int64(st, 1, r->row_id);
	}
	sb_sql_bind_text(st, 2 + !strcmp(field, "subject"), value);
	sb_sql_bind_text(st, 3 + !strcmp(field, "subject"), author);
	sb_sql_bind_text(st, 4 + !strcmp(field, "subject"), reason);
	sqlite3_bind_int64(st, 5 + !strcmp(field, "subject"), proto_now(p));
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(p->db, err, rc, "correction");
cleanup:
	sb_sql_finish(st);
	proto_reg_free(r);
	return rc;
}
