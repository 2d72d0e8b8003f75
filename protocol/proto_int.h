/*
 * Shared by the protocol/ sources only: the body of struct proto and the pieces the
 * back ends have in common (store rows, segnatura, Rome time).
 */
#ifndef PROTO_INT_H
#define PROTO_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "sb_buf.h"
#include "sb_err.h"

struct sqlite3;
struct sb_http;
struct proto_seal;

enum proto_backend { PROTO_EMBEDDED, PROTO_REST };

struct proto {
	enum proto_backend backend;
	struct sqlite3 *db;               /* borrowed */
	bool in_tx;                       /* proto_db_begin's level is open */
	char reg[17];
	char *ipa_code;
	char *aoo_code;
	char *ente_name;
	char *ente_tax_id;                /* NULL unless 11 digits */
	struct proto_seal *seal;
	/* rest */
	struct sb_http *http;
	char *rest_url;
	char *rest_auth;                  /* secret: the Authorization header value */
	long rest_timeout_ms;
	int64_t (*clock)(void *arg);
	void *clock_arg;
};

/* The correspondent every SEND receipt comes from. */
#define PROTO_SEND_NAME "PagoPA S.p.A. - SEND"
#define PROTO_SEND_TAX_ID "15376371009"

/* A hashed document (what gets stored and sealed). */
struct proto_hdoc {
	const char *path;
	const char *name;
	const char *mime_type;
	const char *title;
	char sha256_hex[65];
	char sha256_b64[45];
	uint64_t size;
};

/* Everything one registration row holds when it is written. */
struct proto_row {
	struct proto_id id;
	enum proto_dir dir;
	int64_t registered_at;
	char date[11];
	char time[9];
	const char *subject;
	const char *classification;
	const char *classification_name;
	const char *assignment;
	const char *author;
	const char *act_id;
	const char *iun;
	const char *legal_fact_id;
	const char *category;
	const struct proto_reg *link;       /* receipts: the outgoing registration */
	const struct proto_party *parties;
	size_t nparties;
	const struct proto_hdoc *docs;
	size_t ndocs;
	const char *backend;
};

/* Europe/Rome civil time of t (CET/CEST by the EU rule), independent of TZ. */
void proto_rome_time(int64_t t, int *year, char date[11], char time_[9]);
int64_t proto_now(const struct proto *p);

/* store (proto_store.c) */
int proto_db_begin(struct proto *p, struct sb_err *err);
int proto_db_commit(struct proto *p, struct sb_err *err);
void proto_db_rollback(struct proto *p);
/*
 * Inside a transaction: take number for (reg, year) if it is the next one
 * (*taken true), or leave the counter as it is (*taken false: another
 * registration has it).
 */
int proto_db_take_number(struct proto *p, const char *reg, int year, uint64_t number,
			 bool *taken, struct sb_err *err);
/* The number proto_db_next_number would give now (read only; 1 for a new year). */
int proto_db_peek_number(struct proto *p, const char *reg, int year, uint64_t *out,
			 struct sb_err *err);
int proto_db_insert(struct proto *p, const struct proto_row *row, const char *segnatura,
		    int64_t *row_id, struct sb_err *err);
/* key is "act" (act_id of a live outgoing row) or "fact" (legal_fact_id). */
int proto_db_find(struct proto *p, const char *key, const char *value, struct proto_reg **out,
		  struct sb_err *err);
int proto_db_get(struct proto *p, const struct proto_id *id, struct proto_reg **out,
		 struct sb_err *err);
int proto_db_segnatura(struct proto *p, const struct proto_id *id, char **out,
		       struct sb_err *err);
int proto_db_set_flag(struct proto *p, int64_t row_id, const char *flag, struct sb_err *err);
int proto_db_flag(struct proto *p, int64_t row_id, const char *flag, bool *out,
		  struct sb_err *err);

/* segnatura (proto_segnatura.c) */
int proto_seal_open(struct proto_seal **out, const char *key_file, const char *cert_file,
		    const char *xsd_path, struct sb_err *err);
void proto_seal_free(struct proto_seal *s);
/* Build, seal and validate the segnatura of row; the XML is appended to out. */
int proto_segnatura_build(struct proto *p, const struct proto_row *row, struct sb_buf *out,
			  struct sb_err *err);
/* Validate an XML document in memory against the XSD. */
int proto_seal_validate_xml(struct proto_seal *s, const char *xml, size_t len,
			    struct sb_err *err);

/* rest (proto_rest.c) */
int proto_rest_open(struct proto *p, const struct proto_opts *o, struct sb_err *err);
/* Ask the vendor system for a registration of row (number and date come back in row). */
int proto_rest_register(struct proto *p, struct proto_row *row, struct sb_err *err);
int proto_rest_put_segnatura(struct proto *p, const struct proto_id *id, const char *xml,
			     struct sb_err *err);
int proto_rest_annul(struct proto *p, const struct proto_id *id, const char *reason,
		     const char *author, const char *act, struct sb_err *err);

#endif
