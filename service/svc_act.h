/*
 * The act: what the Comune's software writes in the outbox (act.json plus
 * the files it names), parsed and validated completely. The format is
 * documented in docs/act-format.md (version 1).
 *
 * svc_act_load() reports every problem at once, each with its JSON path
 * ("recipients[0].taxId: check character wrong (expected K)"). File names
 * are confined to the act's folder: absolute paths, ".." and symlinks that
 * leave the folder are refused.
 */
#ifndef SVC_ACT_H
#define SVC_ACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_problems.h"

#define SVC_ACT_VERSION 1

/* A file of the act, resolved and measured. */
struct svc_act_file {
	char *name;          /* as written in act.json, relative to the folder */
	char *path;          /* absolute, inside the folder */
	uint64_t size;
	char sha256[65];     /* hex; filled by svc_act_load */
};

struct svc_act_address {
	char *address;
	char *address_details;
	char *at;
	char *zip;
	char *municipality;
	char *municipality_details;
	char *province;
	char *foreign_state;
};

struct svc_act_payment {
	bool has_pagopa;
	char *notice_code;
	char *creditor_tax_id;
	bool pagopa_apply_cost;
	bool has_pagopa_file;
	struct svc_act_file pagopa_file;   /* the pagoPA notice PDF, optional */
	bool has_f24;
	char *f24_title;
	bool f24_apply_cost;
	struct svc_act_file f24_file;      /* F24 metadata JSON */
};

enum svc_recipient_type { SVC_PF, SVC_PG };

struct svc_act_recipient {
	enum svc_recipient_type type;
	char *tax_id;
	char *denomination;
	char *pec;                          /* digital domicile given by the act, or NULL */
	bool has_address;
	struct svc_act_address address;
	struct svc_act_payment *payments;
	size_t npayments;
};

struct svc_act_document {
	char *title;
	struct svc_act_file file;
};

enum svc_fee_policy { SVC_FEE_FLAT_RATE, SVC_FEE_DELIVERY_MODE };
enum svc_comm_type { SVC_AR_REGISTERED_LETTER, SVC_REGISTERED_LETTER_890 };

struct svc_act {
	char *id;                 /* the folder name */
	char *dir;                /* absolute folder path */
	int version;
	char *office;
	char *operator_id;
	char *operator_office;
	char *subject;
	char *abstract;
	char *taxonomy_code;
	char *group;
	char *pagopa_int_mode;    /* NONE, SYNC, ASYNC or NULL */
	char *protocol_number;    /* an existing registration, or NULL */
	char *protocol_date;
	char *payment_expiration_date;
	bool has_amount;
	int64_t amount;           /* eurocent */
	enum svc_fee_policy fee_policy;
	bool has_pa_fee;
	int64_t pa_fee;           /* eurocent 0..100 */
	bool has_vat;
	int64_t vat;              /* percent 0..100 */
	enum svc_comm_type comm_type;
	struct svc_act_recipient *recipients;
	size_t nrecipients;
	struct svc_act_document *documents;
	size_t ndocuments;
};

/*
 * Load dir/act.json and the files it names. On any problem, every one found
 * is added to probs (each with its JSON path as where), *out is untouched
 * and SB_EINVAL is returned (SB_ENOTFOUND when dir or act.json is missing).
 * When hash is true each file's SHA-256 is computed (streamed).
 * Free with svc_act_free (NULL is fine).
 */
int svc_act_load(struct svc_act **out, const char *dir, bool hash, struct sb_problems *probs,
		 struct sb_err *err);
void svc_act_free(struct svc_act *a);

/* Same checks on a manifest in memory; files are looked up in dir. */
int svc_act_parse(struct svc_act **out, const char *dir, const char *json, size_t len,
		  bool hash, struct sb_problems *probs, struct sb_err *err);

const char *svc_fee_policy_name(enum svc_fee_policy p);
const char *svc_comm_type_name(enum svc_comm_type t);

#endif
