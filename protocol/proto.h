/*
 * The protocol register (DPR 445/2000 artt. 53-57): one interface, two back
 * ends.
 *
 *  - embedded: the register lives in the project's SQLite store (tables
 *    proto_*, created by proto_store_migrate). Numbers are progressive per
 *    register and year, zero-padded to 7 digits, restart on 1 January
 *    (Europe/Rome), and are assigned in the same transaction that writes the
 *    whole registration, so there is no gap and no duplicate.
 *  - rest: a vendor protocol system over HTTPS assigns number and date; the
 *    registration is mirrored into the same tables so that look-ups,
 *    receipts and the daily register work the same way (docs/protocol-adapters.md).
 *
 * Every registration gets a segnatura (AgID 2021 schema) that is sealed with
 * an enveloped XML signature, validated against the XSD before it is
 * stored, and verified again whenever it is read (proto_segnatura_get).
 *
 * A struct proto is used by one thread at a time (it borrows one SQLite
 * connection and keeps one HTTP handle); give each worker its own.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_err.h"

struct proto;
struct sqlite3;
struct sb_cfg;

/* A registration's identity: register code, year, number. */
struct proto_id {
	char reg[17];            /* CodiceRegistro, [A-Za-z0-9_.-]{1,16} */
	int year;
	uint64_t number;
};

/* "PG/2026/0000123" (at least 7 digits): the text form, also SEND's paProtocolNumber. */
#define PROTO_ID_TEXT_SIZE 48
char *proto_id_format(const struct proto_id *id, char *out, size_t out_size);

/*
 * Parse "REG/YYYY/NNNNNNN", "YYYY/NNNNNNN" (register def_reg) or "NNNNNNN"
 * (register def_reg, year def_year). 0 or SB_EINVAL naming what is wrong;
 * out untouched on failure.
 */
int proto_id_parse(const char *s, const char *def_reg, int def_year, struct proto_id *out,
		   struct sb_err *err);

/* The Europe/Rome civil year of t (seconds, UTC): the year a number belongs to. */
int proto_rome_year(int64_t t);

enum proto_dir { PROTO_OUT, PROTO_IN };
enum proto_party_type { PROTO_PF, PROTO_PG, PROTO_PA };

/* A correspondent (recipient of an outgoing act, sender of an incoming one). */
struct proto_party {
	enum proto_party_type type;
	const char *name;         /* denomination; for PF "Nome Cognome"
				     when the parts are unknown */
	const char *given_name;   /* PF only, optional */
	const char *family_name;  /* PF only, optional */
	const char *tax_id;       /* codice fiscale / partita IVA, optional */
	const char *ipa_code;     /* PA only */
};

/*
 * A document to register: the file is hashed (SHA-256) at registration,
 * unless the caller gives the hash it computed when it took the file in (the
 * daemon's intake); then only the file's size is checked against it.
 */
struct proto_doc {
	const char *path;
	const char *name;         /* file name in the segnatura (nomeFile) */
	const char *mime_type;    /* NULL: application/pdf */
	const char *title;        /* optional description */
	const char *sha256_hex;   /* NULL, or 64 hex digits with size */
	uint64_t size;
};

/* An outgoing act. documents[0] is the primary document, the rest attachments. */
struct proto_outgoing {
	const char *act_id;           /* idempotency: the same act gives the same registration */
	const char *subject;          /* oggetto */
	const char *classification;   /* titolario code (CodiceFlat); NULL: "0" (not classified) */
	const char *classification_name;
	const char *assignment;       /* internal office (UOR) */
	const char *author;           /* operator who asked for the registration */
	const struct proto_party *recipients;
	size_t nrecipients;
	const struct proto_doc *documents;
	size_t ndocuments;
};

/* SEND legal fact categories that become incoming registrations. */
extern const char *const proto_receipt_categories[];   /* NULL-terminated */
bool proto_receipt_category_valid(const char *category);

/* An incoming SEND receipt (legal fact) for an earlier outgoing registration. */
struct proto_receipt {
	const char *legal_fact_id;    /* idempotency: SEND's legal fact key */
	const char *category;         /* one of proto_receipt_categories */
	const char *iun;
	struct proto_id outgoing;     /* the act's registration */
	const char *pdf_path;         /* the legal fact as downloaded */
	const char *sha256_hex;       /* NULL, or its SHA-256 (64 hex digits) with size, as
					 hashed on download: the file is not read again */
	uint64_t size;
	const char *author;           /* NULL: "send-bridge" */
};

/* A correction kept in the history (DPR 445 art. 54, DPCM 3/12/2013 art. 8). */
struct proto_change {
	char *field;              /* subject, classification, assignment, annulment */
	char *old_value;
	char *new_value;
	char *author;
	char *reason;
	int64_t at;
};

struct proto_party_rec {
	enum proto_party_type type;
	char *name;
	char *tax_id;             /* NULL when not given */
};

struct proto_doc_rec {
	char *name;
	char *mime_type;
	char *title;
	char sha256_hex[65];
	uint64_t size;
};

/* A registration as stored. Free with proto_reg_free. */
struct proto_reg {
	int64_t row_id;
	struct proto_id id;
	char text[PROTO_ID_TEXT_SIZE];
	enum proto_dir dir;
	int64_t registered_at;        /* seconds, UTC */
	char date[11];                /* Europe/Rome date, YYYY-MM-DD */
	char time[9];                 /* Europe/Rome time, hh:mm:ss */
	char *subject;                /* as registered (corrections are in changes) */
	char *classification;         /* current value */
	char *assignment;             /* current value, may be NULL */
	char *author;
	char *act_id;                 /* outgoing only */
	char *iun;                    /* receipts only */
	char *legal_fact_id;
	char *category;
	bool has_link;
	struct proto_id link;         /* receipts: the outgoing registration */
	struct proto_party_rec *parties;
	size_t nparties;
	struct proto_doc_rec *docs;
	size_t ndocs;
	bool annulled;
	int64_t annulled_at;
	char *annul_reason;
	char *annul_author;
	char *annul_act;              /* the authorising provvedimento */
	struct proto_change *changes; /* oldest first */
	size_t nchanges;
	char *backend;                /* "embedded" or "rest" */
};
void proto_reg_free(struct proto_reg *r);
/* The current subject: the last correction, or the registered one. Borrowed. */
const char *proto_reg_subject(const struct proto_reg *r);

/* Options: proto_opts_from_cfg fills them from [service] and [protocol]. */
struct proto_opts {
	const char *backend;          /* "embedded" (default) or "rest" */
	const char *register_code;    /* NULL: "PG" */
	const char *ipa_code;
	const char *aoo_code;
	const char *ente_name;        /* Mittente of outgoing acts */
	const char *ente_tax_id;
	const char *xsd_path;         /* segnatura_protocollo.xsd; NULL: PROTO_DEFAULT_XSD */
	const char *seal_key_file;
	const char *seal_cert_file;
	const char *rest_url;
	const char *rest_auth_file;
	long rest_timeout_ms;
	const char *rest_ca_file;
	/* Clock for registration times (tests); NULL: the wall clock. */
	int64_t (*clock)(void *arg);
	void *clock_arg;
};

#ifndef SB_DATADIR
#define SB_DATADIR "/usr/local/share/send-bridge"
#endif
#define PROTO_DEFAULT_XSD SB_DATADIR "/agid/segnatura_protocollo.xsd"

/* Fill o from cfg (strings borrowed from cfg). */
void proto_opts_from_cfg(struct proto_opts *o, const struct sb_cfg *cfg);

/*
 * Create the proto_* tables in db or bring them up to date (append-only
 * migrations, version in meta under "schema.protocol"). Call after
 * svc_store_open. 0, SB_EIO, or SB_ECONFIG when the tables are newer than
 * this build.
 */
int proto_store_migrate(struct sqlite3 *db, struct sb_err *err);

/*
 * Open the register over db (borrowed: it must outlive the struct proto,
 * and proto_store_migrate must have run). Loads the seal key and
 * certificate and parses the XSD; SB_ECONFIG naming the missing or bad
 * setting. Free with proto_free (NULL is fine).
 */
int proto_open(struct proto **out, struct sqlite3 *db, const struct proto_opts *o,
	       struct sb_err *err);
void proto_free(struct proto *p);
/* The register code this struct proto numbers in (borrowed). */
const char *proto_register_code(const struct proto *p);

/*
 * Register an outgoing act: hashes every document, assigns number, date
 * and time, builds, seals and validates the segnatura, and stores it all
 * in one transaction. When act_id was registered before (and not annulled)
 * the existing registration is returned. *out is owned (proto_reg_free).
 * SB_EINVAL names the bad field; SB_ENOTFOUND/SB_EIO for unreadable files;
 * SB_ETEMP/SB_EREJECT from the REST back end.
 */
int proto_register_outgoing(struct proto *p, const struct proto_outgoing *in,
			    struct proto_reg **out, struct sb_err *err);

/*
 * Register a SEND legal fact as an incoming registration linked to its
 * outgoing one (correspondent "PagoPA S.p.A. - SEND"). Idempotent on
 * legal_fact_id: a second call returns the existing registration.
 * SB_ENOTFOUND when the outgoing registration does not exist; SB_EINVAL
 * when it is annulled or not outgoing.
 */
int proto_register_receipt(struct proto *p, const struct proto_receipt *in,
			   struct proto_reg **out, struct sb_err *err);

/* Look a registration up (with its changes). SB_ENOTFOUND if absent. */
int proto_lookup(struct proto *p, const struct proto_id *id, struct proto_reg **out,
		 struct sb_err *err);
/* The outgoing registration of an act; SB_ENOTFOUND if the act has none. */
int proto_lookup_act(struct proto *p, const char *act_id, struct proto_reg **out,
		     struct sb_err *err);

/*
 * Incoming registrations linked to id (receipts), oldest first. *out is an
 * array of *n owned registrations: free with proto_reg_list_free.
 */
int proto_receipts_list(struct proto *p, const struct proto_id *id, struct proto_reg ***out,
			size_t *n, struct sb_err *err);
void proto_reg_list_free(struct proto_reg **list, size_t n);

/*
 * Annul a registration (art. 54): reason, author and authorising act are
 * required. The registration stays, marked. SB_EINVAL if already annulled.
 */
int proto_annul(struct proto *p, const struct proto_id *id, const char *reason,
		const char *author, const char *authorising_act, struct sb_err *err);

/*
 * Correct a field: "subject" (the registered value stays; the correction is
 * history), "classification" or "assignment" (the current value changes and
 * the old one is kept). author and reason are required.
 */
int proto_correct(struct proto *p, const struct proto_id *id, const char *field,
		  const char *value, const char *author, const char *reason,
		  struct sb_err *err);

/*
 * The sealed segnatura XML of a registration, after verifying its seal
 * and its schema. Appended to out. SB_EINVAL when the seal does not verify.
 */
int proto_segnatura_get(struct proto *p, const struct proto_id *id, struct sb_buf *out,
			struct sb_err *err);

/*
 * Verify a sealed segnatura in memory: enveloped signature over the whole
 * document with the configured seal certificate, and the XSD. 0 or
 * SB_EINVAL with the reason.
 */
int proto_segnatura_verify(struct proto *p, const char *xml, size_t len, struct sb_err *err);

/*
 * The daily register (art. 53 c.2) of date (YYYY-MM-DD, Europe/Rome): the
 * day's registrations, annulments and changes, written to dir as
 * registro-giornaliero-REG-DATE.xml, .pdf (PDF/A-2b through Ghostscript)
 * and .sha256 (sha256sum format, both files). The files are written to
 * temporary names and renamed. paths_out (may be NULL) gets the three paths,
 * one per line.
 */
int proto_daily_register(struct proto *p, const char *date, const char *dir,
			 struct sb_buf *paths_out, struct sb_err *err);

#endif
