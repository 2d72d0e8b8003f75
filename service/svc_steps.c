/*
 * The platform steps of the pipeline (svc_steps.h): each one turns one
 * state of an act into the next through one client module, and each is
 * idempotent on replay, as svc_pipeline.h asks:
 *
 *  check     agid_doc_check_file on every document with [office.NAME]'s
 *            policy, agid_f24_check_file on F24 metadata;
 *  resolve   persons through pdnd_resolve (INAD, ANPR, office policy,
 *            access trail) when PDND is configured, else the act's own
 *            data; what will be used is written to `resolutions`, replaced
 *            on replay;
 *  register  proto_register_outgoing, which returns the existing
 *            registration of an act id (a crash between the call and the
 *            pipeline's commit registers nothing twice); an act that already
 *            carries protocol.number keeps it;
 *  upload    svc_send_map + send_files_upload, with the SHA-256 recorded
 *            at intake (documents) instead of hashing the files again; the
 *            refs are kept in `send_uploads` for create and for the final
 *            document check;
 *  create    send_notification_create (token and preload indexes from the
 *            act id, a 409 reconciled by the client), only once the stream
 *            exists: it would not report a notification older than itself;
 *  acceptance  the IUN of the stream's REQUEST_ACCEPTED for the request
 *            when it came (it wakes the act), else send_request_status_get,
 *            first asked a second after create (ACCEPTANCE_FIRST_POLL_MS):
 *            WAITING is pending with SEND's retryAfter, REFUSED ends the act
 *            with SEND's codes;
 *  stream    one TIMELINE stream, created once under a title stored
 *            first (meta "send.stream_title", so a restart finds a stream
 *            whose id was lost), its id in meta "send.stream_id"; the
 *            position is the pipeline's; a stream SEND lost (404, absent
 *            from its list) is forgotten and replaced, the acts it tracked
 *            recorded first for a catch-up from their timeline
 *            (timeline_read; docs/decisions/0013);
 *  track     legal facts of the IUN's events downloaded into the act's
 *            folder (receipts/) and registered as incoming registrations
 *            linked to the outgoing one (idempotent on the legal fact key);
 *            at a final status the price (acts with a pagoPA payment) and
 *            the files SEND holds, documents and payment attachments
 *            (SHA-256 against the upload), are checked before the act
 *            closes; a CANCELLED notification closes the act as cancelled,
 *            without price or check; on an act already closed (job->closed)
 *            only the new legal facts and a cancellation.
 * Specs: ../shared/specs/send/SUMMARY.md, ../shared/specs/PDND-SUMMARY.md,
 * ../shared/specs/agid/SUMMARY.md.
 */
#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_sql.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "sb_ids.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "agid_doc.h"
#include "pdnd.h"
#include "pdnd_resolve.h"
#include "pdnd_store.h"
#include "proto.h"
#include "send_client.h"
#include "svc_send_map.h"
#include "svc_steps.h"
#include "svc_store.h"

/* How long one step may wait inside SEND's client for a legal fact or a document. */
#define STEP_MAX_WAIT_MS 30000

/*
 * SEND validates a new notification asynchronously, never within the create
 * call: a status request right after it only ever hears WAITING. The first
 * one waits this long (later ones wait SEND's retryAfter).
 */
#define ACCEPTANCE_FIRST_POLL_MS 1000

struct svc_clients {
	struct svc_steps steps;
	const struct sb_cfg *cfg;
	const char *store_path;
	int busy_ms;
	struct pdnd_client *pdnd;            /* NULL: no PDND agreements configured */
	struct sb_voucher_provider vp;       /* SEND's voucher through PDND, when asked */
	bool has_vp;
	struct proto_opts popts;
	atomic_bool said_no_pdnd;
};

struct worker {
	struct svc_clients *c;
	struct svc_store *store;
	struct send_client *send;
	struct proto *proto;
	struct sb_http *http;                /* e-service calls */
	struct pdnd_resolver *resolver;
	struct send_retry retry;
	int64_t stream_checked_ms;           /* the stream reader's last look for disabledDate */
};

/* ---- the steps' tables ------------------------------------------------------------------ */

static const char *const migrations[] = {
	/* 1: refs of the files held by SEND; where each recipient is notified */
	"CREATE TABLE send_uploads ("
	"  act_id TEXT NOT NULL,"
	"  preload_idx TEXT NOT NULL,"
	"  file_key TEXT NOT NULL,"
	"  version_token TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  PRIMARY KEY (act_id, preload_idx)"
	");"
	"CREATE TABLE resolutions ("
	"  act_id TEXT NOT NULL,"
	"  rec_idx INTEGER NOT NULL,"
	"  domicile TEXT,"
	"  domicile_source TEXT NOT NULL,"
	"  address_source TEXT NOT NULL,"
	"  addr_at TEXT, addr_line TEXT, addr_detail TEXT, addr_zip TEXT,"
	"  addr_municipality TEXT, addr_province TEXT, addr_state TEXT,"
	"  resolved_at INTEGER NOT NULL,"
	"  PRIMARY KEY (act_id, rec_idx)"
	");",
};

static int sql_err(sqlite3 *db, struct sb_err *err, int rc, const char *what)
{
	return sb_err_set(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SB_ETEMP : SB_EIO, rc,
			  "store: %s: %s", what, sqlite3_errmsg(db));
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct sb_err *err)
{
	int rc = sb_sql_prepare(db, sql, st);

	return rc == SQLITE_OK ? 0 : sql_err(db, err, rc, "prepare");
}

static void bind_str(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, (int)strlen(v), SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, struct sb_err *err)
{
	int rc = sqlite3_step(st);

	sb_sql_finish(st);
	return rc == SQLITE_DONE ? 0 : sql_err(db, err, rc, what);
}

int svc_steps_store_migrate(struct sqlite3 *db, struct sb_err *err)
{
	return sb_sql_migrate(db, "schema.steps", migrations, SB_ARRAY_SIZE(migrations), err);
}

int svc_steps_migrate_all(struct sqlite3 *db, struct sb_err *err)
{
	int rc = svc_pipeline_store_migrate(db, err);

	if (rc == 0)
		rc = proto_store_migrate(db, err);
	if (rc == 0)
		rc = pdnd_store_migrate(db, err);
	if (rc == 0)
		rc = svc_steps_store_migrate(db, err);
	return rc;
}

/* ---- clients ------------------------------------------------------------------------------ */

static bool pdnd_configured(const struct sb_cfg *cfg)
{
	return sb_cfg_isset(cfg, "pdnd", "client_id") &&
	       (sb_cfg_isset(cfg, "anpr", "c030_url") || sb_cfg_isset(cfg, "inad", "base_url"));
}

static void worker_release(void *data, void *wctx);

static int worker_init(void *data, void **wctx_out, struct sb_err *err)
{
	struct svc_clients *c = data;
	struct worker *w = sb_xcalloc(1, sizeof(*w));
	struct sb_http_opts ho = { 0 };
	unsigned char key[32];
	int rc;

	w->c = c;
	w->retry = (struct send_retry)SEND_RETRY_INIT;
	/* The pipeline retries with its own backoff; inside a step only short waits. */
	w->retry.max_attempts = 3;
	w->retry.base_ms = 200;
	w->retry.max_ms = 2000;
	rc = svc_store_open_shared(&w->store, c->store_path, c->busy_ms, err);
	if (rc == 0)
		rc = send_client_new(&w->send, c->cfg, c->has_vp ? &c->vp : NULL, err);
	if (rc == 0)
		rc = proto_open(&w->proto, svc_store_db(w->store), &c->popts, err);
	if (rc == 0 && c->pdnd) {
		ho.ca_file = sb_cfg_str(c->cfg, "pdnd", "ca_file");
		ho.timeout_ms = (long)sb_cfg_int(c->cfg, "pdnd", "timeout_ms");
		ho.platform = "pdnd";
		rc = sb_http_new(&w->http, &ho, err);
		if (rc == 0)
			rc = svc_store_pii_key(w->store, key, err);
		if (rc == 0)
			rc = pdnd_resolver_new(&w->resolver, c->cfg, c->pdnd,
					       svc_store_db(w->store), key, err);
		sb_wipe(key, sizeof(key));
	}
	if (rc < 0) {
		worker_release(c, w);
		return rc;
	}
	*wctx_out = w;
	return 0;
}

static void worker_release(void *data, void *wctx)
{
	struct worker *w = wctx;

	(void)data;
	if (!w)
		return;
	pdnd_resolver_free(w->resolver);
	sb_http_free(w->http);
	proto_free(w->proto);
	send_client_free(w->send);
	svc_store_close(w->store);
	free(w);
}

/* ---- check ------------------------------------------------------------------------------- */

static int check_step(void *wctx, const struct svc_job *job, struct svc_step_result *res,
		      struct sb_err *err)
{
	struct worker *w = wctx;
	const struct svc_act *a = job->act;
	struct agid_policy pol;
	int rc;

	rc = agid_policy_from_cfg(&pol, w->c->cfg, a->office, err);
	if (rc < 0)
		return rc == SB_ENOTFOUND ? sb_err_set(err, SB_ECONFIG, 0, "%s", err->msg) : rc;
	for (size_t i = 0; i < a->ndocuments; i++) {
		struct agid_doc_report *rep = NULL;
		char where[48];

		snprintf(where, sizeof(where), "documents[%zu].file", i);
		/* The report's hash is not used here: intake recorded the file's (documents). */
		rc = agid_doc_check_file_flags(&rep, a->documents[i].file.path, &pol,
					       AGID_PDFA_NONE, AGID_DOC_NO_SHA256, err);
		if (rc == SB_ENOTFOUND) {
			sb_problems_add(&res->problems, where, "'%s' cannot be read",
					a->documents[i].file.name);
			sb_err_clear(err);
			continue;
		}
		if (rc < 0)
			return rc;
		if (rep->verdict == AGID_INVALID) {
			struct agid_pdfa_report *p = rep->pdfa;
			size_t nf = 0;

			for (size_t k = 0; k < rep->nfindings; k++, nf++)
				sb_problems_add(&res->problems, where, "%s (%s): %s",
						a->documents[i].file.name, rep->findings[k].clause,
						rep->findings[k].msg);
			for (size_t k = 0; p && k < p->nfindings && k < 5; k++, nf++)
				sb_problems_add(&res->problems, where, "%s: ISO 19005 %s: %s",
						a->documents[i].file.name, p->findings[k].clause,
						p->findings[k].msg);
			if (!nf)
				sb_problems_add(&res->problems, where, "%s: not a valid document",
						a->documents[i].file.name);
		} else if (rep->verdict == AGID_VALID_WARN) {
			sb_log(SB_LOG_INFO, "steps",
			       "document accepted with warnings act=%s doc=%zu", job->act_id, i);
		}
		agid_doc_report_free(rep);
	}
	for (size_t i = 0; i < a->nrecipients; i++)
		for (size_t j = 0; j < a->recipients[i].npayments; j++) {
			const struct svc_act_payment *p = &a->recipients[i].payments[j];
			struct sb_err ferr = SB_ERR_INIT;

			if (p->has_f24 && agid_f24_check_file(p->f24_file.path, &ferr) < 0)
				sb_problems_add(&res->problems,
						"recipients[].payments[].f24.metadata",
						"recipients[%zu].payments[%zu]: %s",
						i, j, ferr.msg);
		}
	if (res->problems.n)
		return sb_err_set(err, SB_EINVAL, 0, "%zu document problem(s), the first: %s: %s",
				  res->problems.n, res->problems.items[0].where,
				  res->problems.items[0].msg);
	return 0;
}

/* ---- resolve ------------------------------------------------------------------------------ */

struct resolved {
	char *domicile;
	const char *domicile_source, *address_source;
	const struct pdnd_address *addr;     /* NULL: the act's */
};

static int resolution_put(sqlite3 *db, const char *act_id, size_t idx, const struct resolved *r,
			  struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prep(db, "INSERT INTO resolutions (act_id, rec_idx, domicile, domicile_source,"
		      " address_source, addr_at, addr_line, addr_detail, addr_zip,"
		      " addr_municipality, addr_province, addr_state, resolved_at)"
		      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
		      " ON CONFLICT (act_id, rec_idx) DO UPDATE SET domicile = excluded.domicile,"
		      " domicile_source = excluded.domicile_source,"
		      " address_source = excluded.address_source, addr_at = excluded.addr_at,"
		      " addr_line = excluded.addr_line, addr_detail = excluded.addr_detail,"
		      " addr_zip = excluded.addr_zip,"
		      " addr_municipality = excluded.addr_municipality,"
		      " addr_province = excluded.addr_province, addr_state = excluded.addr_state,"
		      " resolved_at = excluded.resolved_at", &st, err);

	if (rc < 0)
		return rc;
	bind_str(st, 1, act_id);
	sqlite3_bind_int64(st, 2, (int64_t)idx);
	bind_str(st, 3, r->domicile);
	bind_str(st, 4, r->domicile_source);
	bind_str(st, 5, r->address_source);
	bind_str(st, 6, r->addr ? r->addr->at : NULL);
	bind_str(st, 7, r->addr ? r->addr->line : NULL);
	bind_str(st, 8, r->addr ? r->addr->detail : NULL);
	bind_str(st, 9, r->addr ? r->addr->zip : NULL);
	bind_str(st, 10, r->addr ? r->addr->municipality : NULL);
	bind_str(st, 11, r->addr ? r->addr->province : NULL);
	bind_str(st, 12, r->addr && r->addr->foreign ? r->addr->state : NULL);
	sqlite3_bind_int64(st, 13, sb_now());
	return step_done(db, st, "recording resolution", err);
}

static void act_address(struct pdnd_address *out, const struct svc_act_address *in)
{
	memset(out, 0, sizeof(*out));
	/* Borrowed strings: the struct is never released. */
	out->at = in->at;
	out->line = in->address;
	out->detail = in->address_details;
	out->zip = in->zip;
	out->municipality = in->municipality;
	out->province = in->province;
	out->state = in->foreign_state;
	out->foreign = in->foreign_state && strcasecmp(in->foreign_state, "ITALIA") != 0;
}

static int resolve_step(void *wctx, const struct svc_job *job, struct svc_step_result *res,
			struct sb_err *err)
{
	struct worker *w = wctx;
	const struct svc_act *a = job->act;
	sqlite3 *db = svc_store_db(w->store);
	struct pdnd_who who = { a->operator_id, a->office, a->id };
	int rc = 0;

	if (!w->resolver && !atomic_exchange(&w->c->said_no_pdnd, true))
		sb_log(SB_LOG_INFO, "steps", "PDND is not configured ([pdnd], [anpr], [inad]): "
		       "recipients are notified at the act's own PEC and address");
	for (size_t i = 0; i < a->nrecipients && rc == 0; i++) {
		const struct svc_act_recipient *r = &a->recipients[i];
		struct pdnd_resolution pr;
		struct pdnd_address aa;
		struct resolved out = { r->pec, r->pec ? "act" : "none", "act", NULL };

		if (w->resolver && r->type == SVC_PF) {
			struct pdnd_recipient rec = { PDND_PF, r->tax_id, r->pec,
						      r->has_address ? &aa : NULL };

			if (r->has_address)
				act_address(&aa, &r->address);
			memset(&pr, 0, sizeof(pr));
			rc = pdnd_resolve(w->resolver, w->http, &who, &rec, &pr, err);
			if (rc == SB_EINVAL || rc == SB_EREJECT) {
				char where[40];

				snprintf(where, sizeof(where), "recipients[%zu]", i);
				sb_problems_add(&res->problems, where, "%s", err->msg);
				break;
			}
			if (rc < 0)
				break;
			if (pr.deceased)
				sb_log(SB_LOG_WARN, "steps",
				       "recipient reported deceased by ANPR act=%s recipient=%zu",
				       job->act_id, i);
			out.domicile = pr.domicile;
			out.domicile_source = pdnd_source_name(pr.domicile_source);
			out.addr = pdnd_resolution_address(&pr);
			out.address_source = pdnd_source_name(pr.address_source);
			if (out.addr == &pr.act_address || !out.addr)
				out.addr = NULL;
			rc = resolution_put(db, job->act_id, i, &out, err);
			pdnd_resolution_release(&pr);
		} else {
			rc = resolution_put(db, job->act_id, i, &out, err);
		}
	}
	return rc;
}

/* What resolve recorded, applied to the map's recipients (strings owned by *keep). */
struct kept {
	char **s;
	size_t n;
};

static const char *keep_col(struct kept *k, sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	if (!t)
		return NULL;
	k->s = sb_xrealloc(k->s, (k->n + 1) * sizeof(*k->s));
	k->s[k->n] = sb_xstrdup((const char *)t);
	return k->s[k->n++];
}

static void kept_release(struct kept *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->s[i]);
	free(k->s);
	memset(k, 0, sizeof(*k));
}

static int apply_resolutions(sqlite3 *db, const char *act_id, struct svc_send_map *m,
			     struct kept *k, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prep(db, "SELECT rec_idx, domicile, address_source, addr_at, addr_line,"
		      " addr_detail, addr_zip, addr_municipality, addr_province, addr_state"
		      " FROM resolutions WHERE act_id = ?1", &st, err);

	if (rc < 0)
		return rc;
	bind_str(st, 1, act_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t i = sqlite3_column_int64(st, 0);
		struct send_recipient *r;

		if (i < 0 || (size_t)i >= m->n.nrecipients)
			continue;
		r = &m->recipients[i];
		r->pec = keep_col(k, st, 1);
		if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
			r->has_address = true;
			r->address = (struct send_address){ 0 };
			r->address.at = keep_col(k, st, 3);
			r->address.address = keep_col(k, st, 4);
			r->address.address_details = keep_col(k, st, 5);
			r->address.zip = keep_col(k, st, 6);
			r->address.municipality = keep_col(k, st, 7);
			r->address.province = keep_col(k, st, 8);
			r->address.foreign_state = keep_col(k, st, 9);
		}
	}
	sb_sql_finish(st);
	return rc == SQLITE_DONE ? 0 : sql_err(db, err, rc, "reading resolutions");
}

/* ---- register ---------------------------------------------------------------------------- */

/*
 * The SHA-256 and size intake recorded for each document, given to the
 * protocol register so that it does not read and hash the files again (as
 * known_hashes does for the upload); a document without its row is hashed by
 * the register.
 */
static int intake_hashes(sqlite3 *db, const struct svc_job *job, struct proto_doc *docs,
			 char (*hashes)[65], struct sb_err *err)
{
	const struct svc_act *a = job->act;
	sqlite3_stmt *st = NULL;
	int rc = prep(db, "SELECT idx, path, size, sha256 FROM documents"
		      " WHERE act = ?1 AND kind = 'document'", &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, job->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t i = sqlite3_column_int64(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *hex = (const char *)sqlite3_column_text(st, 3);

		/* The row must name the same file of the same manifest, or it is not used. */
		if (i < 0 || (size_t)i >= a->ndocuments || !name ||
		    strcmp(name, a->documents[i].file.name) || !hex || strlen(hex) != 64 ||
		    sqlite3_column_int64(st, 2) <= 0)
			continue;
		snprintf(hashes[i], sizeof(hashes[i]), "%s", hex);
		docs[i].sha256_hex = hashes[i];
		docs[i].size = (uint64_t)sqlite3_column_int64(st, 2);
	}
	sb_sql_finish(st);
	return rc == SQLITE_DONE ? 0 : sql_err(db, err, rc, "reading documents");
}

static int register_step(void *wctx, const struct svc_job *job, struct svc_step_result *res,
			 struct sb_err *err)
{
	struct worker *w = wctx;
	const struct svc_act *a = job->act;
	struct proto_party *parties = NULL;
	struct proto_doc *docs = NULL;
	struct proto_reg *reg = NULL;
	char (*hashes)[65] = NULL;
	char section[80];
	int rc;

	if (a->protocol_number && *a->protocol_number) {
		/* Registered by the office's own system: SEND gets that number. */
		snprintf(res->value, sizeof(res->value), "%s", a->protocol_number);
		return 0;
	}
	SB_ALLOC_ARRAY(parties, a->nrecipients);
	SB_ALLOC_ARRAY(docs, a->ndocuments);
	SB_ALLOC_ARRAY(hashes, a->ndocuments);
	for (size_t i = 0; i < a->nrecipients; i++)
		parties[i] = (struct proto_party){
			.type = a->recipients[i].type == SVC_PF ? PROTO_PF : PROTO_PG,
			.name = a->recipients[i].denomination, .tax_id = a->recipients[i].tax_id,
		};
	for (size_t i = 0; i < a->ndocuments; i++) {
		const char *slash = strrchr(a->documents[i].file.name, '/');

		docs[i] = (struct proto_doc){
			.path = a->documents[i].file.path,
			.name = slash ? slash + 1 : a->documents[i].file.name,
			.title = a->documents[i].title,
		};
	}
	rc = intake_hashes(svc_store_db(w->store), job, docs, hashes, err);
	if (rc < 0)
		goto cleanup;
	snprintf(section, sizeof(section), "office.%s", a->office);
	{
		struct proto_outgoing in = {
			.act_id = a->id, .subject = a->subject,
			.classification = sb_cfg_str(w->c->cfg, section, "classification"),
			.assignment = a->office, .author = a->operator_id,
			.recipients = parties, .nrecipients = a->nrecipients,
			.documents = docs, .ndocuments = a->ndocuments,
		};

		/* Idempotent on act_id: a replay after a crash returns the first registration. */
		rc = proto_register_outgoing(w->proto, &in, &reg, err);
	}
	if (rc == 0)
		snprintf(res->value, sizeof(res->value), "%s", reg->text);
cleanup:
	proto_reg_free(reg);
	free(parties);
	free(docs);
	free(hashes);
	return rc;
}

/* ---- upload, create ------------------------------------------------------------------------ */

static int uploads_load(sqlite3 *db, const char *act_id, struct svc_send_map *m, struct sb_err *err)
{
	for (size_t i = 0; i < m->nuploads; i++) {
		sqlite3_stmt *st = NULL;
		struct send_file_ref *ref = &m->uploads[i].ref;
		int rc = prep(db, "SELECT file_key, version_token, sha256 FROM send_uploads"
			      " WHERE act_id = ?1 AND preload_idx = ?2", &st, err);

		if (rc < 0)
			return rc;
		bind_str(st, 1, act_id);
		bind_str(st, 2, m->uploads[i].preload_idx);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			sb_sql_finish(st);
			return rc == SQLITE_DONE ?
				sb_err_set(err, SB_EINTERNAL, 0,
					   "upload '%s' of act '%s' is not recorded",
					   m->uploads[i].preload_idx, act_id) :
				sql_err(db, err, rc, "reading uploads");
		}
		snprintf(ref->key, sizeof(ref->key), "%s", sqlite3_column_text(st, 0));
		snprintf(ref->version_token, sizeof(ref->version_token), "%s",
			 sqlite3_column_text(st, 1));
		snprintf(ref->sha256, sizeof(ref->sha256), "%s", sqlite3_column_text(st, 2));
		ref->content_type = m->uploads[i].content_type;
		sb_sql_finish(st);
	}
	svc_send_map_apply_uploads(m);
	return 0;
}

static int uploads_save(struct svc_store *s, const char *act_id, const struct svc_send_map *m,
			struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	int rc = svc_store_begin(s, err);

	for (size_t i = 0; i < m->nuploads && rc == 0; i++) {
		sqlite3_stmt *st = NULL;

		rc = prep(db,
			  "INSERT INTO send_uploads (act_id, preload_idx, file_key, version_token,"
			  " sha256) VALUES (?1, ?2, ?3, ?4, ?5)"
			  " ON CONFLICT (act_id, preload_idx)"
			  " DO UPDATE SET file_key = excluded.file_key,"
			  " version_token = excluded.version_token, sha256 = excluded.sha256",
			  &st, err);
		if (rc < 0)
			break;
		bind_str(st, 1, act_id);
		bind_str(st, 2, m->uploads[i].preload_idx);
		bind_str(st, 3, m->uploads[i].ref.key);
		bind_str(st, 4, m->uploads[i].ref.version_token);
		bind_str(st, 5, m->uploads[i].ref.sha256);
		rc = step_done(db, st, "recording upload", err);
	}
	if (rc == 0)
		rc = svc_store_commit(s, err);
	if (rc < 0)
		svc_store_rollback(s);
	return rc;
}

/* The act's file that a documents row names, or NULL. */
static const struct svc_act_file *document_file(const struct svc_act *a, const char *kind,
						int64_t rec, int64_t idx)
{
	const struct svc_act_payment *p;

	if (!strcmp(kind, "document"))
		return idx >= 0 && (size_t)idx < a->ndocuments ? &a->documents[idx].file : NULL;
	if (rec < 0 || (size_t)rec >= a->nrecipients || idx < 0 ||
	    (size_t)idx >= a->recipients[rec].npayments)
		return NULL;
	p = &a->recipients[rec].payments[idx];
	if (!strcmp(kind, "pagopa"))
		return p->has_pagopa_file ? &p->pagopa_file : NULL;
	if (!strcmp(kind, "f24"))
		return p->has_f24 ? &p->f24_file : NULL;
	return NULL;
}

/*
 * The SHA-256 and size recorded at intake for each file to upload, so that
 * send/ does not read and hash them again: intake hashed these same files in
 * the act's folder in work/, which only the daemon writes. An upload left
 * without a row is hashed by send/ as before.
 */
static int known_hashes(sqlite3 *db, const struct svc_job *job, struct svc_send_map *m,
			struct kept *k, struct sb_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = prep(db, "SELECT kind, recipient_idx, idx, path, size, sha256 FROM documents"
		      " WHERE act = ?1", &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, job->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 3);
		const struct svc_act_file *f;

		f = kind ? document_file(job->act, kind, sqlite3_column_type(st, 1) == SQLITE_NULL ?
					 -1 : sqlite3_column_int64(st, 1),
					 sqlite3_column_int64(st, 2)) : NULL;
		/* The row must name the same file of the same manifest, or it is not used. */
		if (!f || !f->path || !name || strcmp(name, f->name) ||
		    sqlite3_column_int64(st, 4) <= 0)
			continue;
		for (size_t i = 0; i < m->nuploads; i++)
			if (m->uploads[i].path && !strcmp(m->uploads[i].path, f->path) &&
			    !m->uploads[i].known_sha256) {
				m->uploads[i].known_size = (uint64_t)sqlite3_column_int64(st, 4);
				m->uploads[i].known_sha256 = keep_col(k, st, 5);
			}
	}
	sb_sql_finish(st);
	return rc == SQLITE_DONE ? 0 : sql_err(db, err, rc, "reading documents");
}

static int upload_step(void *wctx, const struct svc_job *job, struct svc_step_result *res,
		       struct sb_err *err)
{
	struct worker *w = wctx;
	struct kept k = { NULL, 0 };
	struct svc_send_map m;
	int rc;

	(void)res;
	rc = svc_send_map_init(&m, job->act, w->c->cfg, job->protocol_number, err);
	if (rc == 0)
		rc = known_hashes(svc_store_db(w->store), job, &m, &k, err);
	if (rc == 0)
		rc = send_files_upload(w->send, m.uploads, m.nuploads, &w->retry, err);
	/* A replay uploads again: SEND keeps both copies, the notification names the last. */
	if (rc == 0)
		rc = uploads_save(w->store, job->act_id, &m, err);
	svc_send_map_release(&m);
	kept_release(&k);
	return rc;
}

/* SEND's "CODE element: detail" as problems; the client already masked personal data. */
static void reject_problems(struct svc_step_result *res, const struct sb_err *err)
{
	if (err->msg[0])
		sb_problems_add(&res->problems, "send", "%s", err->msg);
}

static int create_step(void *wctx, const struct svc_job *job, struct svc_step_result *res,
		       struct sb_err *err)
{
	struct worker *w = wctx;
	char request_id[SEND_REQUEST_ID_MAX];
	struct kept k = { NULL, 0 };
	struct svc_send_map m;
	bool existing = false;
	int rc;

	/*
	 * SEND's stream reports only what happens after the stream exists: a
	 * notification created before it (the daemon's first start, with the
	 * stream's creation refused or slow) would never be tracked. The stream
	 * reader creates it at start; until then the act waits here.
	 */
	char *stream_id = NULL;

	rc = svc_store_meta_get(w->store, "send.stream_id", &stream_id, err);
	free(stream_id);
	if (rc == SB_ENOTFOUND) {
		sb_err_clear(err);
		res->pending = true;
		res->wait_ms = 1000;
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = svc_send_map_init(&m, job->act, w->c->cfg, job->protocol_number, err);
	if (rc == 0)
		rc = uploads_load(svc_store_db(w->store), job->act_id, &m, err);
	if (rc == 0)
		rc = apply_resolutions(svc_store_db(w->store), job->act_id, &m, &k, err);
	if (rc == 0)
		rc = send_notification_create(w->send, &m.n, &w->retry, request_id, &existing, err);
	if (rc == 0) {
		snprintf(res->value, sizeof(res->value), "%s", request_id);
		res->wait_ms = ACCEPTANCE_FIRST_POLL_MS;
		if (existing)
			sb_log(SB_LOG_INFO, "steps", "notification request already at SEND act=%s "
			       "(reconciled)", job->act_id);
	} else if (rc == SB_EREJECT || rc == SB_EINVAL) {
		reject_problems(res, err);
	}
	svc_send_map_release(&m);
	kept_release(&k);
	return rc;
}

/*
 * The IUN that SEND's stream gave with REQUEST_ACCEPTED for request_id
 * (the stream's events are SEND's word as much as the status reply);
 * iun[0] stays '\0' when none came yet.
 */
static int accepted_on_stream(struct worker *w, const char *request_id, char iun[32],
			      struct sb_err *err)
{
	sqlite3 *db = svc_store_db(w->store);
	sqlite3_stmt *st = NULL;
	int rc = prep(db, "SELECT iun FROM events WHERE request_id = ?1"
		      " AND category = 'REQUEST_ACCEPTED' AND iun IS NOT NULL", &st, err);

	iun[0] = '\0';
	if (rc < 0)
		return rc;
	sb_sql_bind_text(st, 1, request_id);
	sb_sql_lock(db);
	while (!iun[0] && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		if (sb_iun_valid(v))
			snprintf(iun, 32, "%s", v);
	}
	sb_sql_finish(st);
	sb_sql_unlock(db);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_err(db, err, rc, "reading events");
}

static int acceptance_step(void *wctx, const struct svc_job *job, struct svc_step_result *res,
			   struct sb_err *err)
{
	struct worker *w = wctx;
	struct send_request_status st;
	char iun[32];
	int rc = accepted_on_stream(w, job->request_id, iun, err);

	if (rc == 0 && iun[0]) {
		snprintf(res->value, sizeof(res->value), "%s", iun);
		return 0;
	}
	if (rc == 0)
		rc = send_request_status_get(w->send, job->request_id, &st, err);
	if (rc < 0)
		return rc;
	switch (st.state) {
	case SEND_WAITING:
		res->pending = true;
		res->wait_ms = st.retry_after > 0 ? (int64_t)st.retry_after * 1000 : 0;
		return 0;
	case SEND_ACCEPTED:
		snprintf(res->value, sizeof(res->value), "%s", st.iun);
		return 0;
	case SEND_REFUSED:
		break;
	}
	/* SEND's detail may quote a tax code or an address: keep only the code and the field. */
	for (size_t i = 0; i < st.nrefusals; i++)
		sb_problems_add(&res->problems, st.refusals[i].element[0] ? st.refusals[i].element :
				"notification", "%s", st.refusals[i].code);
	return sb_err_set(err, SB_EREJECT, 0, "SEND refused the notification: %s",
			  st.nrefusals ? st.refusals[0].code : "no code given");
}

/* ---- the stream ---------------------------------------------------------------------------- */

/* The element as stored in events.element: what track reads back. */
static char *element_json(const struct send_timeline_element *t, const char *new_status)
{
	json_t *o = json_object(), *lf = json_array();
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT);

	sb_json_set_str_opt(o, "elementId", t->element_id);
	sb_json_set_str_opt(o, "category", t->category);
	sb_json_set_str_opt(o, "timestamp", t->timestamp);
	sb_json_set_str_opt(o, "newStatus", new_status);
	json_object_set_new(o, "recIndex", json_integer(t->rec_index));
	for (size_t i = 0; i < t->nlegal_facts; i++) {
		json_t *f = json_object();

		sb_json_set_str_opt(f, "key", t->legal_facts[i].key);
		sb_json_set_str_opt(f, "category", t->legal_facts[i].category);
		json_array_append_new(lf, f);
	}
	json_object_set_new(o, "legalFacts", lf);
	if (sb_json_dump(o, &b, NULL) < 0)
		sb_buf_release(&b);
	json_decref(o);
	return b.len ? sb_buf_detach(&b, NULL) : NULL;
}

static int stream_store(void *ctx, const struct send_event *events, size_t n, struct sb_err *err)
{
	struct svc_event_batch *b = ctx;

	(void)err;
	for (size_t i = 0; i < n; i++) {
		char *el = element_json(&events[i].element, events[i].new_status);

		svc_event_batch_add(b, events[i].event_id, events[i].request_id, events[i].iun,
				    events[i].element.category ? events[i].element.category :
				    events[i].new_status ? events[i].new_status : "UNKNOWN",
				    events[i].element.timestamp, el);
		free(el);
	}
	return 0;
}

/*
 * Acts closed since this time (Unix seconds; 0: none) are caught up too: a
 * cancellation can reach a notification that is already final.
 */
static int64_t closed_since(const struct worker *w)
{
	int64_t days = sb_cfg_int(w->c->cfg, "send", "stream_catchup_closed_days");

	return days > 0 ? sb_now() - days * 86400 : 0;
}

/*
 * A new stream carries nothing that happened before it: the acts SEND may
 * already be notifying are recorded for a catch-up from their timeline
 * (svc_pipeline_stream_replaced), committed before the create call so that
 * a crash cannot lose the record. On the first start no act is there yet.
 */
static int stream_mark_gap(struct worker *w, struct sb_err *err)
{
	int rc = svc_store_begin(w->store, err);

	if (rc == 0)
		rc = svc_pipeline_stream_replaced(w->store, closed_since(w), err);
	if (rc == 0)
		rc = svc_store_commit(w->store, err);
	if (rc < 0)
		svc_store_rollback(w->store);
	return rc;
}

/*
 * The one stream of this installation, created once (again only when SEND
 * lost it). Its title, with a random suffix, is stored before the create: a
 * crash between SEND's reply and storing the id leaves a stream that the
 * restart finds by that title in SEND's list, instead of creating a second
 * one (at most 10 per PA).
 */
static int stream_open(struct worker *w, char id[37], struct sb_err *err)
{
	char *title = NULL;
	int rc = svc_store_meta_get(w->store, "send.stream_title", &title, err);

	if (rc == SB_ENOTFOUND) {
		unsigned char r[4];

		sb_err_clear(err);
		sb_random_bytes(r, sizeof(r));
		title = sb_xasprintf("%.246s %02x%02x%02x%02x", send_stream_title(w->send), r[0],
				     r[1], r[2], r[3]);
		rc = svc_store_meta_set(w->store, "send.stream_title", title, err);
	}
	if (rc == 0)
		rc = send_stream_find(w->send, title, id, err);
	if (rc == 0) {
		sb_log(SB_LOG_INFO, "steps", "stream found again at SEND id=%s", id);
	} else if (rc == SB_ENOTFOUND || rc == SB_EREJECT) {
		/* A key that may create streams but not list them: as before, create. */
		if (rc == SB_EREJECT)
			sb_log(SB_LOG_WARN, "steps", "streams cannot be listed, creating: %s",
			       err->msg);
		sb_err_clear(err);
		rc = stream_mark_gap(w, err);
		if (rc == 0)
			rc = send_stream_create_titled(w->send, title, id, err);
	}
	if (rc == 0)
		rc = svc_store_meta_set(w->store, "send.stream_id", id, err);
	free(title);
	return rc;
}

/*
 * A 404 on the stream's events: gone for good only when SEND's list, which
 * answers, does not have it either (a 404 from a misrouted gateway must not
 * replace a working stream). A key that cannot list streams trusts the 404.
 */
static bool stream_gone(struct worker *w, const char *stream_id)
{
	struct sb_err lerr = SB_ERR_INIT;
	char *title = NULL;
	char id[37];
	int rc = svc_store_meta_get(w->store, "send.stream_title", &title, &lerr);

	if (rc == 0)
		rc = send_stream_find(w->send, title, id, &lerr);
	free(title);
	return rc == SB_ENOTFOUND || rc == SB_EREJECT || (rc == 0 && strcmp(id, stream_id));
}

/*
 * A disabled stream (by an administrator, or replaced by another stream)
 * gets no new events, and SEND deletes it only 14 days later: until then
 * its reads succeed, empty. So after an empty page, at most once every
 * [send] stream_check_interval seconds (and on the first one), the reader
 * asks SEND whether it is disabled. An empty page of a disabled stream
 * means that everything it held was read; what came after is caught up.
 */
static bool stream_disabled(struct worker *w, const char *stream_id)
{
	struct sb_err lerr = SB_ERR_INIT;
	int64_t every = sb_cfg_int(w->c->cfg, "send", "stream_check_interval") * 1000;
	bool disabled = false;
	int rc;

	if (w->stream_checked_ms && sb_now_ms() - w->stream_checked_ms < every)
		return false;
	w->stream_checked_ms = sb_now_ms();
	rc = send_stream_disabled(w->send, stream_id, &disabled, &lerr);
	if (rc < 0) {
		/*
		 * A 404 is for the events read to judge (stream_gone); the rest waits
		 * the next look. A reply that makes no sense is worth a warning, once
		 * per interval: a disabled stream would go unnoticed while it lasts.
		 */
		sb_log(rc == SB_EREJECT ? SB_LOG_WARN : SB_LOG_DEBUG, "steps",
		       "stream check failed: %s", lerr.msg);
		return false;
	}
	return disabled;
}

/*
 * Forget a stream SEND no longer has (deleted by an administrator, or
 * purged 14 days after it was disabled) or that gets no new events
 * (disabled): its id and title go, so that the
 * next stream_open creates another under a new title; the acts that were
 * being tracked are marked for a catch-up in the same transaction.
 */
static int stream_forget(struct worker *w, const char *stream_id, const char *why,
			 struct sb_err *err)
{
	sqlite3 *db = svc_store_db(w->store);
	sqlite3_stmt *st = NULL;
	int rc;

	sb_log(SB_LOG_WARN, "steps", "stream %s at SEND id=%s: creating another, the acts being "
	       "tracked are caught up from their timeline", why, stream_id);
	rc = svc_store_begin(w->store, err);
	if (rc == 0)
		rc = svc_pipeline_stream_replaced(w->store, closed_since(w), err);
	if (rc == 0)
		rc = prep(db,
			  "DELETE FROM meta WHERE key IN ('send.stream_id', 'send.stream_title')",
			  &st, err);
	if (rc == 0)
		rc = step_done(db, st, "forgetting the stream", err);
	if (rc == 0)
		rc = svc_store_commit(w->store, err);
	if (rc < 0)
		svc_store_rollback(w->store);
	return rc;
}

static int stream_read(void *wctx, const char *position, struct svc_event_batch *out,
		       struct sb_err *err)
{
	struct worker *w = wctx;
	char cursor[SEND_EVENT_ID_MAX] = "", id[37];
	char *stream_id = NULL;
	bool open = false;
	long retry_ms = -1;
	int rc;

	rc = svc_store_meta_get(w->store, "send.stream_id", &stream_id, err);
	if (rc == SB_ENOTFOUND) {
		sb_err_clear(err);
		open = true;
		rc = 0;
	} else if (rc == 0) {
		if (position)
			snprintf(cursor, sizeof(cursor), "%s", position);
		rc = send_stream_poll(w->send, stream_id, cursor, stream_store, out, NULL,
				      &retry_ms, err);
		if (rc == SB_ENOTFOUND && err && err->http == 404 && stream_gone(w, stream_id)) {
			svc_event_batch_release(out);
			sb_err_clear(err);
			rc = stream_forget(w, stream_id, "gone", err);
			open = rc == 0;
		} else if (rc == 0 && out->n == 0 && stream_disabled(w, stream_id)) {
			rc = stream_forget(w, stream_id, "disabled", err);
			open = rc == 0;
		}
	}
	if (open) {
		/* A new stream: the position given belongs to the old one, or to none. */
		free(stream_id);
		stream_id = NULL;
		cursor[0] = '\0';
		position = NULL;
		rc = stream_open(w, id, err);
		if (rc == 0) {
			stream_id = sb_xstrdup(id);
			rc = send_stream_poll(w->send, stream_id, cursor, stream_store, out, NULL,
					      &retry_ms, err);
		}
	}
	if (rc < 0) {
		svc_event_batch_release(out);
		goto cleanup;
	}
	if (cursor[0] && (!position || strcmp(cursor, position)))
		out->position = sb_xstrdup(cursor);
	/* SEND gives it in milliseconds; rounded up to seconds, a 200 ms wait would be 1 s. */
	out->retry_after_ms = retry_ms > 0 ? retry_ms : out->n ? 0 : -1;
cleanup:
	free(stream_id);
	return rc;
}

/*
 * One notification's timeline from SEND's sent notification, as events of
 * ids "timeline:<iun>:<elementId>" (never a stream's ^0\d{37}$, and the
 * same on a replay, so a catch-up stored twice is stored once). Only the
 * current status is known, not when each element set it: it goes on the
 * last element, which is all track needs to see a final status.
 */
static int timeline_read(void *wctx, const char *iun, struct svc_event_batch *out,
			 struct sb_err *err)
{
	struct worker *w = wctx;
	struct send_sent_notification *n = NULL;
	int rc = send_notification_get(w->send, iun, &n, err);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n->ntimeline; i++) {
		const struct send_timeline_element *t = &n->timeline[i];
		char *el = element_json(t, i + 1 == n->ntimeline ? n->status : NULL);
		char *id = t->element_id ? sb_xasprintf("timeline:%s:%s", iun, t->element_id) :
			   sb_xasprintf("timeline:%s:#%zu", iun, i);

		svc_event_batch_add(out, id, NULL, iun, t->category ? t->category : "UNKNOWN",
				    t->timestamp, el);
		free(id);
		free(el);
	}
	send_sent_notification_free(n);
	return 0;
}

/* ---- track --------------------------------------------------------------------------------- */

static bool final_status(const char *s)
{
	static const char *const finals[] = { "EFFECTIVE_DATE", "VIEWED", "UNREACHABLE",
					      "CANCELLED", "REFUSED", NULL };

	for (size_t i = 0; s && finals[i]; i++)
		if (!strcmp(s, finals[i]))
			return true;
	return false;
}

static bool have_receipt(const struct svc_job *job, const struct svc_step_result *res,
			 const char *key)
{
	for (size_t i = 0; i < job->nreceipts; i++)
		if (!strcmp(job->receipts[i], key))
			return true;
	for (size_t i = 0; i < res->nreceipts; i++)
		if (!strcmp(res->receipts[i].key, key))
			return true;
	return false;
}

/*
 * dir/receipts/<key with unsafe characters replaced>.pdf, owned; the folder
 * is made when *made is false, once per track step rather than per legal fact.
 */
static char *receipt_path(const char *dir, const char *key, bool *made)
{
	struct sb_buf b = SB_BUF_INIT(4096);
	const char *k = strncmp(key, "safestorage://", 14) ? key : key + 14;

	sb_buf_addf(&b, "%s/receipts", dir);
	if (!*made && mkdir(sb_buf_cstr(&b), 0700) < 0 && errno != EEXIST) {
		sb_buf_release(&b);
		return NULL;
	}
	*made = true;
	sb_buf_addch(&b, '/');
	for (; *k && b.len < 400; k++)
		sb_buf_addch(&b, (*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
			     (*k >= '0' && *k <= '9') || *k == '-' || *k == '_' ? *k : '_');
	sb_buf_adds(&b, ".pdf");
	return sb_buf_detach(&b, NULL);
}

static int register_legal_fact(struct worker *w, const struct svc_job *job, const char *key,
			       const char *category, bool *dir_made, struct svc_step_result *res,
			       struct sb_err *err)
{
	struct svc_receipt *out = &res->receipts[res->nreceipts];
	struct sb_buf hex = SB_BUF_INIT(80);
	struct proto_reg *reg = NULL;
	struct proto_id outgoing;
	char *path = receipt_path(job->dir, key, dir_made);
	unsigned char md[SB_SHA256_LEN];
	uint64_t size = 0;
	int rc;

	if (!path)
		return sb_err_set(err, SB_EIO, errno, "cannot create '%s/receipts'", job->act_id);
	rc = send_legal_fact_download(w->send, job->iun, key, path, STEP_MAX_WAIT_MS, &w->retry,
				      &size, md, err);
	if (rc == 0)
		sb_hex_encode(md, sizeof(md), &hex);
	if (rc == 0 && !proto_receipt_category_valid(category)) {
		sb_log(SB_LOG_WARN, "steps", "legal fact kept, not registered act=%s iun=%s "
		       "category=%s: not a protocol receipt category", job->act_id, job->iun,
		       category);
	} else if (rc == 0) {
		rc = proto_id_parse(job->protocol_number, proto_register_code(w->proto),
				    proto_rome_year(sb_now()), &outgoing, err);
		if (rc == 0) {
			/* The impronta is the hash of the bytes as they arrived. */
			struct proto_receipt in = { .legal_fact_id = key, .category = category,
						    .iun = job->iun, .outgoing = outgoing,
						    .pdf_path = path,
						    .sha256_hex = sb_buf_cstr(&hex),
						    .size = size };

			/* Idempotent on the key: a replay returns the first registration. */
			rc = proto_register_receipt(w->proto, &in, &reg, err);
		}
		if (rc == SB_ENOTFOUND || rc == SB_EINVAL) {
			/* An act registered by the office's own system: not in this register. */
			sb_log(SB_LOG_WARN, "steps",
			       "legal fact kept, not registered act=%s iun=%s: %s",
			       job->act_id, job->iun, err->msg);
			sb_err_clear(err);
			rc = 0;
		}
	}
	if (rc == 0) {
		snprintf(out->key, sizeof(out->key), "%s", key);
		snprintf(out->category, sizeof(out->category), "%s", category);
		snprintf(out->protocol_number, sizeof(out->protocol_number), "%s",
			 reg ? reg->text : "");
		res->nreceipts++;
	}
	proto_reg_free(reg);
	sb_buf_release(&hex);
	free(path);
	return rc;
}

/* The notification's price, for an act with a pagoPA payment; -1 when it has none. */
static int price_of(struct worker *w, const struct svc_act *a, int64_t *cents, struct sb_err *err)
{
	*cents = -1;
	for (size_t i = 0; i < a->nrecipients; i++)
		for (size_t j = 0; j < a->recipients[i].npayments; j++) {
			const struct svc_act_payment *p = &a->recipients[i].payments[j];
			struct send_price pr;
			int rc;

			if (!p->has_pagopa)
				continue;
			rc = send_price_get(w->send, p->notice_code, &pr, err);
			if (rc < 0)
				return rc;
			*cents = pr.total_price >= 0 ? pr.total_price : pr.partial_price;
			return 0;
		}
	return 0;
}

/*
 * One file SEND holds, downloaded and compared with the upload's SHA-256
 * (hashed as it arrives, never written); what names it.
 */
static int held_match(struct worker *w, const struct svc_job *job,
		      const struct send_attachment_sel *sel, const struct send_file_ref *ref,
		      const char *what, struct sb_err *err)
{
	int rc = send_attachment_download(w->send, job->iun, sel, ref->sha256, NULL,
					  STEP_MAX_WAIT_MS, &w->retry, NULL, err);

	return rc < 0 ? sb_err_prefix(err, "%s", what) : 0;
}

/*
 * What SEND holds, compared with what was uploaded: the documents and the
 * payment attachments (pagoPA notice PDFs, F24 metadata), the ones a
 * recipient downloads.
 */
static int documents_match(struct worker *w, const struct svc_job *job, struct sb_err *err)
{
	struct svc_send_map m;
	char what[96];
	int rc;

	rc = svc_send_map_init(&m, job->act, w->c->cfg, job->protocol_number, err);
	if (rc == 0)
		rc = uploads_load(svc_store_db(w->store), job->act_id, &m, err);
	for (size_t i = 0; rc == 0 && i < m.n.ndocuments; i++) {
		struct send_attachment_sel sel = { SEND_ATT_DOCUMENT, (unsigned)i, -1 };

		snprintf(what, sizeof(what), "documents[%zu]", i);
		rc = held_match(w, job, &sel, &m.documents[i].ref, what, err);
	}
	for (size_t i = 0; rc == 0 && i < m.n.nrecipients; i++)
		for (size_t j = 0; rc == 0 && j < m.n.recipients[i].npayments; j++) {
			const struct send_payment *p = &m.n.recipients[i].payments[j];
			struct send_attachment_sel sel = { SEND_ATT_PAGOPA, (unsigned)i, (int)j };

			if (p->has_pagopa && p->has_pagopa_attachment) {
				snprintf(what, sizeof(what),
					 "recipients[%zu].payments[%zu] pagoPA notice", i, j);
				rc = held_match(w, job, &sel, &p->pagopa_attachment, what, err);
			}
			if (rc == 0 && p->has_f24) {
				sel.kind = SEND_ATT_F24;
				snprintf(what, sizeof(what),
					 "recipients[%zu].payments[%zu] F24 metadata", i, j);
				rc = held_match(w, job, &sel, &p->f24_metadata, what, err);
			}
		}
	svc_send_map_release(&m);
	return rc;
}

static int track_step(void *wctx, const struct svc_job *job, struct svc_step_result *res,
		      struct sb_err *err)
{
	struct worker *w = wctx;
	bool final = false, more = false, cancelled = false, dir_made = false;
	int rc = 0;

	for (size_t i = 0; i < job->nevents && rc == 0; i++) {
		json_t *el = NULL, *lfs;
		size_t k;
		json_t *lf;
		const char *status;

		if (!job->events[i].element ||
		    sb_json_parse(job->events[i].element, strlen(job->events[i].element),
				  SB_MAX_JSON_BODY, "event", &el, NULL) < 0)
			continue;
		status = json_string_value(json_object_get(el, "newStatus"));
		if (final_status(status)) {
			final = true;
			/*
			 * The last one SEND gave: the act's outcome as staff
			 * read it (VIEWED, ...).
			 */
			snprintf(res->value, sizeof(res->value), "%s", status);
		}
		if (status && !strcmp(status, "CANCELLED"))
			cancelled = true;
		lfs = json_object_get(el, "legalFacts");
		json_array_foreach(lfs, k, lf) {
			const char *key = json_string_value(json_object_get(lf, "key"));
			const char *cat = json_string_value(json_object_get(lf, "category"));

			if (!key || !*key || have_receipt(job, res, key))
				continue;
			if (res->nreceipts == SVC_STEP_MAX_RECEIPTS) {
				more = true;
				break;
			}
			rc = register_legal_fact(w, job, key, cat ? cat : "UNKNOWN", &dir_made, res,
						 err);
			if (rc < 0)
				break;
		}
		json_decref(el);
	}
	if (rc < 0 && res->nreceipts) {
		/* Keep what was registered: the pipeline commits it, the rest comes next time. */
		sb_log(SB_LOG_INFO, "steps", "receipts postponed act=%s: %s",
		       job->act_id, err->msg);
		sb_err_clear(err);
		rc = 0;
		more = true;
	}
	if (rc < 0)
		return rc;
	if (job->closed) {
		/*
		 * Events after the act closed: their legal facts are registered
		 * above, and a cancellation is reported; the act was notified
		 * and checked when it closed, so nothing else is done again.
		 */
		res->cancelled = cancelled;
		res->pending = more;
		return 0;
	}
	res->delivering = job->nevents > 0;
	if (!final || more) {
		res->pending = !res->delivering && res->nreceipts == 0;
		return 0;
	}
	if (cancelled) {
		/*
		 * Withdrawn by the sender (send-bridge cancel or SEND's own
		 * console): its NOTIFICATION_CANCELLED legal fact is registered
		 * above. The pagoPA notice is no longer bound to it (a corrected
		 * act reuses it through cancelledIun), so no price is recorded,
		 * and what SEND still holds of it is not compared.
		 */
		sb_log(SB_LOG_INFO, "steps", "notification cancelled at SEND act=%s iun=%s",
		       job->act_id, job->iun);
		res->cancelled = true;
		res->closed = true;
		return 0;
	}
	rc = documents_match(w, job, err);
	if (rc == SB_EREJECT) {
		/* What SEND holds is not what was sent: staff must look, the act does not close. */
		sb_log(SB_LOG_ERROR, "steps",
		       "a file at SEND differs from the upload act=%s iun=%s: %s",
		       job->act_id, job->iun, err->msg);
		/* Permanent (failed), not a refusal: SEND accepted the act as it was sent. */
		sb_err_prefix(err, "SEND's copy differs from the upload");
		err->code = SB_EIO;
		return SB_EIO;
	}
	if (rc == 0)
		rc = price_of(w, job->act, &res->cost_cents, err);
	if (rc == 0)
		res->closed = true;
	return rc;
}

/* ---- the table ----------------------------------------------------------------------------- */

int svc_clients_new(struct svc_clients **out, const struct sb_cfg *cfg, struct sb_err *err)
{
	struct svc_clients *c = sb_xcalloc(1, sizeof(*c));
	int rc = 0;

	c->cfg = cfg;
	c->store_path = sb_cfg_str(cfg, "store", "path");
	c->busy_ms = (int)sb_cfg_int(cfg, "store", "busy_timeout_ms");
	proto_opts_from_cfg(&c->popts, cfg);
	if (pdnd_configured(cfg))
		rc = pdnd_client_from_cfg(&c->pdnd, cfg, err);
	if (rc == 0 && sb_cfg_bool(cfg, "send", "pdnd_voucher") && c->pdnd &&
	    !sb_cfg_isset(cfg, "send", "voucher_file")) {
		c->vp = pdnd_voucher_provider(c->pdnd);
		c->has_vp = true;
	}
	if (rc < 0) {
		svc_clients_free(c);
		return rc;
	}
	c->steps = (struct svc_steps){
		.data = c,
		.worker_init = worker_init,
		.worker_release = worker_release,
		.check = check_step,
		.resolve = resolve_step,
		.register_protocol = register_step,
		.upload = upload_step,
		.create = create_step,
		.acceptance = acceptance_step,
		.track = track_step,
		.stream_read = stream_read,
		.timeline_read = timeline_read,
	};
	*out = c;
	return 0;
}

void svc_clients_free(struct svc_clients *c)
{
	if (!c)
		return;
	pdnd_client_free(c->pdnd);
	free(c);
}

const struct svc_steps *svc_clients_steps(const struct svc_clients *c)
{
	return &c->steps;
}
