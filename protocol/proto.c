/*
 * The protocol register's front: input checks, hashing, the registration
 * transaction, and the choice of back end (see proto.h).
 *
 * Spec: ../shared/specs/agid/SUMMARY.md section 2. R2 asks for number,
 * date, segnatura and seal in one step. For the embedded register the
 * number and time are chosen, the segnatura built and sealed, and then the
 * number taken and the row written in one short transaction that checks the
 * number is still the next one; a failure anywhere (bad document, seal,
 * XSD) takes no number and leaves no gap. Sealing (most of a registration's
 * time) stays outside the transaction and outside any lock, so that the
 * daemon's workers seal side by side: in this process each registration
 * holds a ticket that fixes its number and the order in which the numbers
 * are taken (see struct ticket), and a registration made meanwhile by
 * another process sends this one round again with the next number. With
 * the REST back end the vendor assigns the number; the mirror row and the
 * segnatura are then written in one transaction.
 *
 * Register dates are civil dates in Italy: the year a number belongs to is
 * the Europe/Rome year, computed here with the EU summer-time rule so that
 * the result does not depend on the machine's TZ.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "sb_http.h"
#include "sb_sql.h"
#include "sb_time.h"
#include "proto_int.h"

const char *const proto_receipt_categories[] = {
	"SENDER_ACK", "DIGITAL_DELIVERY", "PEC_RECEIPT", "ANALOG_DELIVERY", "RECIPIENT_ACCESS",
	"ANALOG_FAILURE_DELIVERY", "NOTIFICATION_CANCELLED", NULL,
};

/* Subjects of the receipt registrations, in the order of proto_receipt_categories. */
static const char *const receipt_subjects[] = {
	"Attestazione di presa in carico (SENDER_ACK)",
	"Attestazione di avvenuta ricezione digitale (DIGITAL_DELIVERY)",
	"Ricevuta PEC (PEC_RECEIPT)",
	"Attestazione di consegna analogica (ANALOG_DELIVERY)",
	"Attestazione di avvenuto accesso del destinatario (RECIPIENT_ACCESS)",
	"Attestazione di mancato recapito analogico (ANALOG_FAILURE_DELIVERY)",
	"Attestazione di annullamento della notifica (NOTIFICATION_CANCELLED)",
};

#define MAX_FIELD 4096u

bool proto_receipt_category_valid(const char *category)
{
	for (size_t i = 0; category && proto_receipt_categories[i]; i++)
		if (!strcmp(category, proto_receipt_categories[i]))
			return true;
	return false;
}

char *proto_id_format(const struct proto_id *id, char *out, size_t out_size)
{
	snprintf(out, out_size, "%s/%04d/%07llu", id->reg, id->year,
		 (unsigned long long)id->number);
	return out;
}

static bool reg_code_valid(const char *s, size_t len)
{
	if (len < 1 || len > 16)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

int proto_id_parse(const char *s, const char *def_reg, int def_year, struct proto_id *out,
		   struct sb_err *err)
{
	struct proto_id id;
	const char *parts[3], *p;
	size_t lens[3], n = 0;
	uint64_t v;

	memset(&id, 0, sizeof(id));
	if (!s || !*s || strlen(s) >= PROTO_ID_TEXT_SIZE)
		return sb_err_set(err, SB_EINVAL, 0, "protocol number: expected REG/YYYY/NNNNNNN");
	for (p = s; n < 3; n++) {
		const char *slash = strchr(p, '/');

		parts[n] = p;
		lens[n] = slash ? (size_t)(slash - p) : strlen(p);
		if (!slash) {
			n++;
			break;
		}
		p = slash + 1;
		if (n == 2)
			return sb_err_set(err, SB_EINVAL, 0,
					  "protocol number: too many parts (REG/YYYY/NNNNNNN)");
	}
	if (n == 3) {
		if (!reg_code_valid(parts[0], lens[0]))
			return sb_err_set(err, SB_EINVAL, 0,
					  "protocol number: register code must be 1..16 of"
					  " [A-Za-z0-9_.-]");
		memcpy(id.reg, parts[0], lens[0]);
	} else {
		if (!def_reg || !reg_code_valid(def_reg, strlen(def_reg)))
			return sb_err_set(err, SB_EINVAL, 0, "protocol number: register missing");
		snprintf(id.reg, sizeof(id.reg), "%s", def_reg);
	}
	if (n >= 2) {
		if (sb_parse_u64(parts[n - 2], lens[n - 2], 9999, &v) < 0 || v < 1970)
			return sb_err_set(err, SB_EINVAL, 0,
					  "protocol number: year must be 1970..9999");
		id.year = (int)v;
	} else {
		id.year = def_year;
	}
	if (sb_parse_u64(parts[n - 1], lens[n - 1], 999999999999ull, &v) < 0 || v == 0)
		return sb_err_set(err, SB_EINVAL, 0, "protocol number: number must be a positive"
				  " integer");
	id.number = v;
	*out = id;
	return 0;
}

/* Seconds since the epoch of the last Sunday of month (0-based) of year, 01:00 UTC. */
static int64_t last_sunday_0100(int year, int month)
{
	struct tm tm = { 0 };
	int64_t t;

	tm.tm_year = year - 1900;
	tm.tm_mon = month + 1;      /* the first day of the next month ... */
	tm.tm_mday = 1;
	tm.tm_hour = 1;
	t = (int64_t)timegm(&tm) - 86400;   /* ... minus one day: the last day of month */
	{
		time_t tt = (time_t)t;
		struct tm d;

		gmtime_r(&tt, &d);
		t -= (int64_t)d.tm_wday * 86400;
	}
	return t;
}

void proto_rome_time(int64_t t, int *year, char date[11], char time_[9])
{
	struct tm tm;
	time_t tt = (time_t)t;
	int64_t off;

	gmtime_r(&tt, &tm);
	off = 3600;
	if (t >= last_sunday_0100(tm.tm_year + 1900, 2) &&
	    t < last_sunday_0100(tm.tm_year + 1900, 9))
		off = 7200;
	tt = (time_t)(t + off);
	gmtime_r(&tt, &tm);
	if (year)
		*year = tm.tm_year + 1900;
	if (date)
		strftime(date, 11, "%Y-%m-%d", &tm);
	if (time_)
		strftime(time_, 9, "%H:%M:%S", &tm);
}

int proto_rome_year(int64_t t)
{
	int y;

	proto_rome_time(t, &y, NULL, NULL);
	return y;
}

int64_t proto_now(const struct proto *p)
{
	return p->clock ? p->clock(p->clock_arg) : sb_now();
}

void proto_opts_from_cfg(struct proto_opts *o, const struct sb_cfg *cfg)
{
	memset(o, 0, sizeof(*o));
	o->backend = sb_cfg_str(cfg, "protocol", "backend");
	o->register_code = sb_cfg_str(cfg, "protocol", "register");
	o->ipa_code = sb_cfg_str(cfg, "protocol", "ipa_code");
	o->aoo_code = sb_cfg_str(cfg, "protocol", "aoo_code");
	o->ente_name = sb_cfg_str(cfg, "service", "sender_denomination");
	o->ente_tax_id = sb_cfg_str(cfg, "service", "sender_tax_id");
	o->xsd_path = sb_cfg_str(cfg, "protocol", "segnatura_xsd");
	o->seal_key_file = sb_cfg_str(cfg, "protocol", "seal_key_file");
	o->seal_cert_file = sb_cfg_str(cfg, "protocol", "seal_cert_file");
	o->rest_url = sb_cfg_str(cfg, "protocol", "rest_url");
	o->rest_auth_file = sb_cfg_str(cfg, "protocol", "rest_auth_file");
	o->rest_timeout_ms = (long)sb_cfg_int(cfg, "protocol", "rest_timeout_ms");
	o->rest_ca_file = sb_cfg_str(cfg, "protocol", "rest_ca_file");
}

static bool digits(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int proto_open(struct proto **out, struct sqlite3 *db, const struct proto_opts *o,
	       struct sb_err *err)
{
	struct proto *p;
	const char *reg = o->register_code ? o->register_code : "PG";
	int rc;

	if (!reg_code_valid(reg, strlen(reg)))
		return sb_err_set(err, SB_ECONFIG, 0,
				  "protocol.register: must be 1..16 of [A-Za-z0-9_.-]");
	if (!o->ipa_code || !*o->ipa_code)
		return sb_err_set(err, SB_ECONFIG, 0, "protocol.ipa_code is not set");
	if (!o->aoo_code || !*o->aoo_code)
		return sb_err_set(err, SB_ECONFIG, 0, "protocol.aoo_code is not set");
	if (!o->ente_name || !*o->ente_name)
		return sb_err_set(err, SB_ECONFIG, 0, "service.sender_denomination is not set");
	if (!o->seal_key_file || !o->seal_cert_file)
		return sb_err_set(err, SB_ECONFIG, 0, "protocol.seal_key_file and"
				  " protocol.seal_cert_file are needed to seal segnature");
	if (o->backend && strcmp(o->backend, "embedded") && strcmp(o->backend, "rest"))
		return sb_err_set(err, SB_ECONFIG, 0,
				  "protocol.backend: '%s' is not embedded or rest", o->backend);
	p = sb_xcalloc(1, sizeof(*p));
	p->db = db;
	snprintf(p->reg, sizeof(p->reg), "%s", reg);
	p->ipa_code = sb_xstrdup(o->ipa_code);
	p->aoo_code = sb_xstrdup(o->aoo_code);
	p->ente_name = sb_xstrdup(o->ente_name);
	p->ente_tax_id = digits(o->ente_tax_id, 11) ? sb_xstrdup(o->ente_tax_id) : NULL;
	p->clock = o->clock;
	p->clock_arg = o->clock_arg;
	rc = proto_seal_open(&p->seal, o->seal_key_file, o->seal_cert_file,
			     o->xsd_path ? o->xsd_path : PROTO_DEFAULT_XSD, err);
	if (rc == 0 && o->backend && !strcmp(o->backend, "rest")) {
		p->backend = PROTO_REST;
		rc = proto_rest_open(p, o, err);
	}
	if (rc < 0) {
		proto_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void proto_free(struct proto *p)
{
	if (!p)
		return;
	proto_seal_free(p->seal);
	sb_http_free(p->http);
	sb_secret_free(p->rest_auth);
	free(p->rest_url);
	free(p->ipa_code);
	free(p->aoo_code);
	free(p->ente_name);
	free(p->ente_tax_id);
	free(p);
}

const char *proto_register_code(const struct proto *p)
{
	return p->reg;
}

static void change_free(struct proto_change *c)
{
	free(c->field);
	free(c->old_value);
	free(c->new_value);
	free(c->author);
	free(c->reason);
}

void proto_reg_free(struct proto_reg *r)
{
	if (!r)
		return;
	free(r->subject);
	free(r->classification);
	free(r->assignment);
	free(r->author);
	free(r->act_id);
	free(r->iun);
	free(r->legal_fact_id);
	free(r->category);
	for (size_t i = 0; i < r->nparties; i++) {
		free(r->parties[i].name);
		free(r->parties[i].tax_id);
	}
	free(r->parties);
	for (size_t i = 0; i < r->ndocs; i++) {
		free(r->docs[i].name);
		free(r->docs[i].mime_type);
		free(r->docs[i].title);
	}
	free(r->docs);
	for (size_t i = 0; i < r->nchanges; i++)
		change_free(&r->changes[i]);
	free(r->changes);
	free(r->annul_reason);
	free(r->annul_author);
	free(r->annul_act);
	free(r->backend);
	free(r);
}

const char *proto_reg_subject(const struct proto_reg *r)
{
	for (size_t i = r->nchanges; i > 0; i--)
		if (!strcmp(r->changes[i - 1].field, "subject") && r->changes[i - 1].new_value)
			return r->changes[i - 1].new_value;
	return r->subject;
}

/* A text field: present when required, bounded, valid UTF-8 without control characters. */
static int check_text(const char *what, const char *s, bool required, struct sb_err *err)
{
	size_t len;

	if (!s) {
		if (required)
			return sb_err_set(err, SB_EINVAL, 0, "%s is required", what);
		return 0;
	}
	len = strlen(s);
	if (required && len == 0)
		return sb_err_set(err, SB_EINVAL, 0, "%s is empty", what);
	if (len > MAX_FIELD)
		return sb_err_set(err, SB_ETOOBIG, 0,
				  "%s is longer than %u bytes", what, MAX_FIELD);
	if (!sb_utf8_valid(s, len))
		return sb_err_set(err, SB_EINVAL, 0, "%s is not valid UTF-8", what);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t')
			return sb_err_set(err, SB_EINVAL, 0, "%s has a control character", what);
	return 0;
}

/* Hash the documents (streamed) into hd[]. */
/*
 * A hash given with the document (struct proto_doc): its digest, once the
 * file is seen to be a file of the size given (errors other than a bad hash
 * are named by the caller).
 */
static int known_hash(const struct proto_doc *d, size_t i, unsigned char md[SB_SHA256_LEN],
		      uint64_t *size, struct sb_err *err)
{
	struct sb_buf raw = SB_BUF_INIT(64);
	struct stat st;
	int rc = 0;

	if (strlen(d->sha256_hex) != 64 || sb_hex_decode(d->sha256_hex, 64, &raw) < 0 ||
	    raw.len != SB_SHA256_LEN)
		rc = sb_err_set(err, SB_EINVAL, 0, "documents[%zu].sha256_hex is not a SHA-256", i);
	else if (stat(d->path, &st) < 0)
		rc = sb_err_set(err, errno == ENOENT ? SB_ENOTFOUND : SB_EIO, errno,
				"cannot read '%s': %s", d->path, strerror(errno));
	else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != d->size)
		rc = sb_err_set(err, SB_EIO, 0, "changed since it was hashed (%llu bytes, not"
				" %llu)", (unsigned long long)st.st_size,
				(unsigned long long)d->size);
	if (rc == 0) {
		memcpy(md, raw.buf, SB_SHA256_LEN);
		*size = d->size;
	}
	sb_buf_release(&raw);
	return rc;
}

static int hash_docs(const struct proto_doc *docs, size_t n, struct proto_hdoc *hd,
		     struct sb_err *err)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char md[SB_SHA256_LEN];
		struct sb_buf b64 = SB_BUF_INIT(64), hex = SB_BUF_INIT(80);
		char what[48];
		int rc;

		snprintf(what, sizeof(what), "documents[%zu].name", i);
		rc = check_text(what, docs[i].name, true, err);
		if (rc == 0) {
			snprintf(what, sizeof(what), "documents[%zu].title", i);
			rc = check_text(what, docs[i].title, false, err);
		}
		if (rc == 0 && !docs[i].path)
			rc = sb_err_set(err, SB_EINVAL, 0, "documents[%zu].path is required", i);
		if (rc == 0 && docs[i].sha256_hex)
			rc = known_hash(&docs[i], i, md, &hd[i].size, err);
		else if (rc == 0)
			rc = sb_sha256_file(docs[i].path, md, &hd[i].size, err);
		if (rc < 0)
			return rc == SB_ENOTFOUND || rc == SB_EIO ?
				sb_err_prefix(err, "documents[%zu]", i) : rc;
		if (hd[i].size == 0)
			return sb_err_set(err, SB_EINVAL, 0, "documents[%zu] is an empty file", i);
		sb_base64_encode(md, sizeof(md), &b64);
		sb_hex_encode(md, sizeof(md), &hex);
		snprintf(hd[i].sha256_b64, sizeof(hd[i].sha256_b64), "%s", sb_buf_cstr(&b64));
		snprintf(hd[i].sha256_hex, sizeof(hd[i].sha256_hex), "%s", sb_buf_cstr(&hex));
		sb_buf_release(&b64);
		sb_buf_release(&hex);
		hd[i].path = docs[i].path;
		hd[i].name = docs[i].name;
		hd[i].title = docs[i].title;
		hd[i].mime_type = docs[i].mime_type ? docs[i].mime_type : "application/pdf";
	}
	return 0;
}

static int check_outgoing(const struct proto_outgoing *in, struct sb_err *err)
{
	int rc;

	if ((rc = check_text("act_id", in->act_id, true, err)) < 0 ||
	    (rc = check_text("subject", in->subject, true, err)) < 0 ||
	    (rc = check_text("author", in->author, true, err)) < 0 ||
	    (rc = check_text("classification", in->classification, false, err)) < 0 ||
	    (rc = check_text("classification_name", in->classification_name, false, err)) < 0 ||
	    (rc = check_text("assignment", in->assignment, false, err)) < 0)
		return rc;
	if (in->nrecipients == 0 || !in->recipients)
		return sb_err_set(err, SB_EINVAL, 0, "recipients: at least one is required");
	if (in->nrecipients > 64)
		return sb_err_set(err, SB_ETOOBIG, 0, "recipients: more than 64");
	if (in->ndocuments == 0 || !in->documents)
		return sb_err_set(err, SB_EINVAL, 0, "documents: the primary document is required");
	if (in->ndocuments > 256)
		return sb_err_set(err, SB_ETOOBIG, 0, "documents: more than 256");
	for (size_t i = 0; i < in->nrecipients; i++) {
		const struct proto_party *pp = &in->recipients[i];
		char what[48];

		snprintf(what, sizeof(what), "recipients[%zu].name", i);
		if ((rc = check_text(what, pp->name, true, err)) < 0)
			return rc;
		snprintf(what, sizeof(what), "recipients[%zu].tax_id", i);
		if ((rc = check_text(what, pp->tax_id, false, err)) < 0)
			return rc;
		if (pp->type == PROTO_PA && (!pp->ipa_code || !*pp->ipa_code))
			return sb_err_set(err, SB_EINVAL, 0, "recipients[%zu].ipa_code is required"
					  " for a public administration", i);
	}
	return 0;
}

/*
 * Write row (the vendor's number) with its sealed segnatura. Runs inside the
 * caller's transaction.
 */
static int write_row(struct proto *p, struct proto_row *row, int64_t *row_id,
		     struct sb_err *err)
{
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_XML_SEGNATURA);
	int rc = proto_segnatura_build(p, row, &xml, err);

	if (rc == 0)
		rc = proto_db_insert(p, row, sb_buf_cstr(&xml), row_id, err);
	sb_buf_release(&xml);
	return rc;
}

static char *dup_or_null(const char *s)
{
	return s ? sb_xstrdup(s) : NULL;
}

/*
 * The registration just committed, as proto_db_get would read it back: the
 * same fields from the row that was written, without a second look-up (a
 * query, two JSON parses and the history query: about 1% of a
 * registration's instructions). A new row has no history and no
 * annulment: only UPDATE triggers write those. test_proto_register pins
 * the equivalence.
 */
static struct proto_reg *reg_from_written(const struct proto_row *row, int64_t row_id)
{
	struct proto_reg *r = sb_xcalloc(1, sizeof(*r));

	r->row_id = row_id;
	r->id = row->id;
	proto_id_format(&r->id, r->text, sizeof(r->text));
	r->dir = row->dir;
	r->registered_at = row->registered_at;
	snprintf(r->date, sizeof(r->date), "%s", row->date);
	snprintf(r->time, sizeof(r->time), "%s", row->time);
	r->subject = dup_or_null(row->subject);
	r->classification = dup_or_null(row->classification);
	r->assignment = dup_or_null(row->assignment);
	r->author = dup_or_null(row->author);
	r->act_id = dup_or_null(row->act_id);
	r->iun = dup_or_null(row->iun);
	r->legal_fact_id = dup_or_null(row->legal_fact_id);
	r->category = dup_or_null(row->category);
	if (row->link) {
		r->has_link = true;
		r->link = row->link->id;
	}
	r->nparties = row->nparties;
	SB_ALLOC_ARRAY(r->parties, r->nparties);
	for (size_t i = 0; i < row->nparties; i++) {
		r->parties[i].type = row->parties[i].type;
		r->parties[i].name = sb_xstrdup(row->parties[i].name ? row->parties[i].name : "");
		r->parties[i].tax_id = dup_or_null(row->parties[i].tax_id);
	}
	r->ndocs = row->ndocs;
	SB_ALLOC_ARRAY(r->docs, r->ndocs);
	for (size_t i = 0; i < row->ndocs; i++) {
		r->docs[i].name = sb_xstrdup(row->docs[i].name);
		r->docs[i].mime_type = sb_xstrdup(row->docs[i].mime_type);
		r->docs[i].title = dup_or_null(row->docs[i].title);
		snprintf(r->docs[i].sha256_hex, sizeof(r->docs[i].sha256_hex), "%s",
			 row->docs[i].sha256_hex);
		r->docs[i].size = row->docs[i].size;
	}
	r->backend = sb_xstrdup(row->backend);
	return r;
}

/*
 * Embedded numbering in this process. A registration takes a ticket under
 * `numbering`: its time and the number after the last ticket of the same
 * register (or the store's next one). It seals without the mutex, so that
 * registrations seal side by side, and then takes its number in the store in
 * ticket order: a ticket waits until no earlier ticket of its register is
 * left. A ticket that fails (seal, store, or its number taken meanwhile by
 * another process) leaves with every ticket behind it, whose numbers counted
 * on it; they go round again with fresh numbers. The store's check that the
 * number is still the next one stays the final word, so the tickets only
 * decide the order, never a number on their own.
 */
struct ticket {
	struct ticket *next;
	const char *file;        /* the store's file: every connection to it shares the order */
	const char *reg;
	int year;
	uint64_t number;
	bool stale;              /* left with a failed ticket ahead: go round again */
	pthread_cond_t turn;     /* signalled when it comes first, or goes stale */
};

static pthread_mutex_t numbering = PTHREAD_MUTEX_INITIALIZER;
static struct ticket *tickets;   /* in the order taken */

/* Rounds lost (another process's registration, or a failed ticket ahead) before SB_ETEMP. */
#define NUMBERING_ROUNDS 8

static bool same_register(const struct ticket *a, const struct ticket *b)
{
	return !strcmp(a->file, b->file) && !strcmp(a->reg, b->reg);
}

/* Under numbering: t's time and number, and t queued. */
static int ticket_take(struct proto *p, struct proto_row *row, struct ticket *t,
		       struct sb_err *err)
{
	const struct ticket *last = NULL;
	struct ticket **end = &tickets;
	int rc = 0;

	for (; *end; end = &(*end)->next)
		if (same_register(*end, t))
			last = *end;
	row->registered_at = proto_now(p);
	proto_rome_time(row->registered_at, &row->id.year, row->date, row->time);
	if (last && last->year == row->id.year)
		row->id.number = last->number + 1;
	else
		rc = proto_db_peek_number(p, row->id.reg, row->id.year, &row->id.number, err);
	if (rc < 0)
		return rc;
	t->year = row->id.year;
	t->number = row->id.number;
	t->stale = false;
	t->next = NULL;
	*end = t;
	return 0;
}

/* Under numbering: no ticket of t's register is ahead of it. */
static bool ticket_first(const struct ticket *t)
{
	for (const struct ticket *q = tickets; q && q != t; q = q->next)
		if (same_register(q, t))
			return false;
	return true;
}

/* Under numbering: until t's turn, or until a failed ticket ahead takes it out. */
static void ticket_wait_turn(struct ticket *t)
{
	while (!t->stale && !ticket_first(t))
		pthread_cond_wait(&t->turn, &numbering);
}

/*
 * Under numbering: t leaves the queue; with behind_too, so does every later
 * ticket of its register, marked stale (their numbers assumed t's taken).
 */
static void ticket_leave(struct ticket *t, bool behind_too)
{
	struct ticket **pp = &tickets;
	bool after = false;

	while (*pp) {
		struct ticket *q = *pp;

		if (q == t) {
			*pp = q->next;
			after = true;
			continue;
		}
		if (after && behind_too && same_register(q, t)) {
			q->stale = true;
			*pp = q->next;
			pthread_cond_signal(&q->turn);
			continue;
		}
		pp = &q->next;
	}
	/* Wake only the ticket that now comes first in t's register. */
	for (struct ticket *q = tickets; q; q = q->next)
		if (same_register(q, t)) {
			pthread_cond_signal(&q->turn);
			break;
		}
}

/*
 * The embedded register's registration: a ticket (time and number), the row
 * sealed with it outside any lock, and the number taken in one short
 * transaction, in ticket order, only if it is still the next one.
 */
static int register_embedded(struct proto *p, struct proto_row *row, const char *key,
			     const char *value, struct proto_reg **out, struct sb_err *err)
{
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_XML_SEGNATURA);
	struct proto_reg *r = NULL;
	struct ticket t;
	const char *file = sqlite3_db_filename(p->db, "main");
	char own[32];
	int64_t row_id = 0;
	bool taken = false;
	int rc = 0;

	/*
	 * Never inside the caller's transaction: it would hold the store (shared by
	 * the daemon's workers) through the sealing and the wait for this ticket's
	 * turn, which may depend on another worker's commit.
	 */
	SB_ASSERT(sb_sql_depth(p->db) == 0);
	if (!file || !*file) {
		/* A temporary or in-memory store: only this connection sees it. */
		snprintf(own, sizeof(own), "%p", (void *)p->db);
		file = own;
	}
	memset(&t, 0, sizeof(t));
	t.file = file;
	t.reg = row->id.reg;
	pthread_cond_init(&t.turn, NULL);
	for (int round = 0; rc == 0; round++) {
		bool committed = false, elsewhere = false;

		if (round == NUMBERING_ROUNDS) {
			rc = sb_err_set(err, SB_ETEMP, 0, "protocol: other registrations"
					" kept taking the next number; try again");
			break;
		}
		/*
		 * Registered by someone else since the caller's first look (made just
		 * before round 0): that one stands.
		 */
		if (round > 0) {
			rc = proto_db_find(p, key, value, &r, err);
			if (rc != SB_ENOTFOUND)
				break;
			sb_err_clear(err);
			rc = 0;
		}
		pthread_mutex_lock(&numbering);
		rc = ticket_take(p, row, &t, err);
		pthread_mutex_unlock(&numbering);
		if (rc < 0)
			break;
		sb_buf_reset(&xml);
		rc = proto_segnatura_build(p, row, &xml, err);
		pthread_mutex_lock(&numbering);
		if (rc == 0)
			ticket_wait_turn(&t);
		pthread_mutex_unlock(&numbering);
		if (rc == 0 && t.stale)
			continue;        /* a failed ticket ahead has taken this one out */
		if (rc == 0)
			rc = proto_db_begin(p, err);
		if (rc == 0) {
			rc = proto_db_find(p, key, value, &r, err);
			if (rc == SB_ENOTFOUND) {
				sb_err_clear(err);
				rc = proto_db_take_number(p, row->id.reg, row->id.year,
							  row->id.number, &taken, err);
				/* Taken meanwhile by another process: round again. */
				elsewhere = rc == 0 && !taken;
				if (rc == 0 && !elsewhere)
					rc = proto_db_insert(p, row, sb_buf_cstr(&xml),
							     &row_id, err);
				if (rc == 0 && !elsewhere)
					rc = proto_db_commit(p, err);
				committed = rc == 0 && !elsewhere;
			}
			if (!committed)
				proto_db_rollback(p);
		}
		/* Unless this number is now in the store, the tickets behind counted on it. */
		pthread_mutex_lock(&numbering);
		ticket_leave(&t, !committed);
		pthread_mutex_unlock(&numbering);
		if (elsewhere)
			continue;
		if (committed)
			r = reg_from_written(row, row_id);
		break;
	}
	pthread_cond_destroy(&t.turn);
	sb_buf_release(&xml);
	if (rc == 0)
		*out = r;
	return rc;
}

/*
 * The common tail of both registrations: the embedded register's
 * (register_embedded), or the vendor call, then row and segnatura in one
 * transaction, then the segnatura to the vendor.
 */
static int register_row(struct proto *p, struct proto_row *row, const char *key,
			const char *value, struct proto_reg **out, struct sb_err *err)
{
	struct proto_reg *r = NULL;
	int64_t row_id = 0;
	int rc;

	row->backend = p->backend == PROTO_REST ? "rest" : "embedded";
	snprintf(row->id.reg, sizeof(row->id.reg), "%s", p->reg);
	row->id.number = 0;
	if (p->backend == PROTO_EMBEDDED)
		return register_embedded(p, row, key, value, out, err);
	rc = proto_rest_register(p, row, err);
	if (rc < 0)
		return rc;
	rc = proto_db_begin(p, err);
	if (rc < 0)
		return rc;
	/* Another worker may have registered the same act since our first look. */
	rc = proto_db_find(p, key, value, &r, err);
	if (rc == 0) {
		proto_db_rollback(p);
		*out = r;
		return 0;
	}
	if (rc != SB_ENOTFOUND)
		goto fail;
	sb_err_clear(err);
	rc = write_row(p, row, &row_id, err);
	if (rc == 0)
		rc = proto_db_commit(p, err);
	if (rc < 0)
		goto fail;
	r = reg_from_written(row, row_id);
	if (p->backend == PROTO_REST) {
		char *xml = NULL;

		rc = proto_db_segnatura(p, &row->id, &xml, err);
		if (rc == 0)
			rc = proto_rest_put_segnatura(p, &row->id, xml, err);
		if (rc == 0)
			rc = proto_db_set_flag(p, r->row_id, "segnatura_sent", err);
		free(xml);
		if (rc < 0) {
			proto_reg_free(r);
			return rc;
		}
	}
	*out = r;
	return 0;
fail:
	proto_db_rollback(p);
	return rc;
}

/* With REST, a registration found again may still owe the vendor its segnatura. */
static int finish_existing(struct proto *p, struct proto_reg *r, struct sb_err *err)
{
	char *xml = NULL;
	bool sent;
	int rc;

	if (p->backend != PROTO_REST || !strcmp(r->backend, "embedded"))
		return 0;
	rc = proto_db_flag(p, r->row_id, "segnatura_sent", &sent, err);
	if (rc < 0 || sent)
		return rc;
	rc = proto_db_segnatura(p, &r->id, &xml, err);
	if (rc == 0)
		rc = proto_rest_put_segnatura(p, &r->id, xml, err);
	if (rc == 0)
		rc = proto_db_set_flag(p, r->row_id, "segnatura_sent", err);
	free(xml);
	return rc;
}

static int found_or_register(struct proto *p, struct proto_row *row, const char *key,
			     const char *value, struct proto_reg **out, struct sb_err *err)
{
	struct proto_reg *r = NULL;
	int rc = proto_db_find(p, key, value, &r, err);

	if (rc == 0) {
		rc = finish_existing(p, r, err);
		if (rc < 0) {
			proto_reg_free(r);
			return rc;
		}
		*out = r;
		return 0;
	}
	if (rc != SB_ENOTFOUND)
		return rc;
	sb_err_clear(err);
	return register_row(p, row, key, value, out, err);
}

int proto_register_outgoing(struct proto *p, const struct proto_outgoing *in,
			    struct proto_reg **out, struct sb_err *err)
{
	struct proto_hdoc *hd = NULL;
	struct proto_row row;
	int rc;

	rc = check_outgoing(in, err);
	if (rc < 0)
		return rc;
	SB_ALLOC_ARRAY(hd, in->ndocuments);
	rc = hash_docs(in->documents, in->ndocuments, hd, err);
	if (rc < 0)
		goto cleanup;
	memset(&row, 0, sizeof(row));
	row.dir = PROTO_OUT;
	row.subject = in->subject;
	row.classification = in->classification ? in->classification : "0";
	row.classification_name = in->classification_name ? in->classification_name :
				  "Non classificato";
	row.assignment = in->assignment;
	row.author = in->author;
	row.act_id = in->act_id;
	row.parties = in->recipients;
	row.nparties = in->nrecipients;
	row.docs = hd;
	row.ndocs = in->ndocuments;
	rc = found_or_register(p, &row, "act", in->act_id, out, err);
cleanup:
	free(hd);
	return rc;
}

static size_t category_index(const char *category)
{
	size_t i;

	for (i = 0; proto_receipt_categories[i]; i++)
		if (!strcmp(category, proto_receipt_categories[i]))
			break;
	return i;
}

int proto_register_receipt(struct proto *p, const struct proto_receipt *in,
			   struct proto_reg **out, struct sb_err *err)
{
	struct proto_reg *link = NULL, *existing = NULL;
	struct proto_party sender = { PROTO_PG, PROTO_SEND_NAME, NULL, NULL, PROTO_SEND_TAX_ID,
				      NULL };
	struct proto_doc doc = { 0 };
	struct proto_hdoc hd;
	struct proto_row row;
	struct sb_buf subject = SB_BUF_INIT(MAX_FIELD), name = SB_BUF_INIT(256);
	char out_text[PROTO_ID_TEXT_SIZE];
	int rc;

	if ((rc = check_text("legal_fact_id", in->legal_fact_id, true, err)) < 0 ||
	    (rc = check_text("iun", in->iun, true, err)) < 0 ||
	    (rc = check_text("author", in->author, false, err)) < 0)
		return rc;
	if (!proto_receipt_category_valid(in->category))
		return sb_err_set(err, SB_EINVAL, 0, "category: '%s' is not a SEND legal fact"
				  " category", in->category ? in->category : "");
	if (!in->pdf_path)
		return sb_err_set(err, SB_EINVAL, 0, "pdf_path is required");
	/* Idempotent first: a legal fact seen again needs neither its file nor its act. */
	rc = proto_db_find(p, "fact", in->legal_fact_id, &existing, err);
	if (rc == 0) {
		rc = finish_existing(p, existing, err);
		if (rc < 0)
			proto_reg_free(existing);
		else
			*out = existing;
		return rc;
	}
	if (rc != SB_ENOTFOUND)
		return rc;
	sb_err_clear(err);
	rc = proto_db_get(p, &in->outgoing, &link, err);
	if (rc < 0)
		return rc;
	if (link->dir != PROTO_OUT) {
		rc = sb_err_set(err, SB_EINVAL, 0, "outgoing: %s is not an outgoing registration",
				link->text);
		goto cleanup;
	}
	if (link->annulled) {
		rc = sb_err_set(err, SB_EINVAL, 0, "outgoing: %s is annulled", link->text);
		goto cleanup;
	}
	proto_id_format(&in->outgoing, out_text, sizeof(out_text));
	rc = sb_buf_addf(&subject, "%s - IUN %s - protocollo in uscita %s",
			 receipt_subjects[category_index(in->category)], in->iun, out_text);
	if (rc == 0)
		rc = sb_buf_addf(&name, "%s-%s.pdf", in->category, in->iun);
	if (rc < 0) {
		rc = sb_err_set(err, SB_ETOOBIG, 0, "iun is too long");
		goto cleanup;
	}
	doc.path = in->pdf_path;
	doc.sha256_hex = in->sha256_hex;
	doc.size = in->size;
	doc.name = sb_buf_cstr(&name);
	doc.mime_type = "application/pdf";
	doc.title = receipt_subjects[category_index(in->category)];
	memset(&hd, 0, sizeof(hd));
	rc = hash_docs(&doc, 1, &hd, err);
	if (rc < 0)
		goto cleanup;
	memset(&row, 0, sizeof(row));
	row.dir = PROTO_IN;
	row.subject = sb_buf_cstr(&subject);
	/* R10: the receipt is filed with the act it concerns. */
	row.classification = link->classification;
	row.classification_name = "Ricevute SEND";
	row.assignment = link->assignment;
	row.author = in->author ? in->author : "send-bridge";
	row.iun = in->iun;
	row.legal_fact_id = in->legal_fact_id;
	row.category = in->category;
	row.link = link;
	row.parties = &sender;
	row.nparties = 1;
	row.docs = &hd;
	row.ndocs = 1;
	rc = register_row(p, &row, "fact", in->legal_fact_id, out, err);
cleanup:
	sb_buf_release(&subject);
	sb_buf_release(&name);
	proto_reg_free(link);
	return rc;
}

int proto_lookup(struct proto *p, const struct proto_id *id, struct proto_reg **out,
		 struct sb_err *err)
{
	return proto_db_get(p, id, out, err);
}

int proto_lookup_act(struct proto *p, const char *act_id, struct proto_reg **out,
		     struct sb_err *err)
{
	if (!act_id || !*act_id)
		return sb_err_set(err, SB_EINVAL, 0, "act_id is required");
	return proto_db_find(p, "act", act_id, out, err);
}

int proto_segnatura_get(struct proto *p, const struct proto_id *id, struct sb_buf *out,
			struct sb_err *err)
{
	char *xml = NULL;
	int rc;

	rc = proto_db_segnatura(p, id, &xml, err);
	if (rc == 0)
		rc = proto_segnatura_verify(p, xml, strlen(xml), err);
	if (rc == 0 && sb_buf_adds(out, xml) < 0)
		rc = sb_err_set(err, SB_ETOOBIG, 0, "segnatura larger than the buffer");
	free(xml);
	return rc;
}
