/*
 * One document of an act checked as a whole before it leaves the outbox:
 * SEND's limits (application/pdf only, at most 200 MB; F24 metadata is
 * JSON), the PDF/A profile (agid_pdfa.h), signatures (agid_sig.h, a .p7m
 * being unwrapped to check the PDF inside) and the office's policy from
 * the configuration ([office.NAME] pdfa_flavours, signature_required,
 * signature_trust_store).
 *
 * The verdict is one of valid, valid with warnings (e.g. PDF/A-3b where the
 * office accepts it, which SUMMARY.md 1.1 flags), invalid, or "could not
 * check" (the function's return code). Thread-safe.
 */
#ifndef AGID_DOC_H
#define AGID_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "agid_pdfa.h"
#include "agid_sig.h"

struct sb_cfg;

struct agid_policy {
	unsigned flavours;           /* accepted: bit (1u << enum agid_flavour) */
	bool signature_required;     /* a valid signature (not only a timestamp) is required */
	const char *trust_store;     /* PEM CA bundle, or NULL: chain not checked (borrowed) */
};

/* The configuration's defaults: 1a, 1b, 2a, 2b, 2u; no signature required; no trust store. */
void agid_policy_default(struct agid_policy *p);

/*
 * The policy of office NAME from cfg ([office.NAME]); strings borrowed from
 * cfg. SB_ENOTFOUND naming the office when it has no section.
 */
int agid_policy_from_cfg(struct agid_policy *out, const struct sb_cfg *cfg, const char *office,
			 struct sb_err *err);

enum agid_verdict { AGID_VALID = 0, AGID_VALID_WARN, AGID_INVALID };

const char *agid_verdict_name(enum agid_verdict v);

struct agid_doc_report {
	enum agid_verdict verdict;
	uint64_t size;
	char sha256[65];              /* hex of the bytes checked (IdDoc impronta);
					 "" if NO_SHA256 */
	const char *mime;             /* "application/pdf", "application/pkcs7-mime", or
					 "application/octet-stream" */
	int p7m_layers;               /* CAdES envelopes removed to reach the PDF */
	struct agid_pdfa_report *pdfa;   /* NULL when there was no PDF to check */
	struct agid_sig_report sig;
	/* SEND and policy findings: clause is "SEND" or "policy" */
	struct agid_finding *findings;
	size_t nfindings, dropped;
	struct agid_finding *warnings;
	size_t nwarnings, wdropped;
};

/*
 * Check the file at path against pol with PDF/A rules profile (NONE: the
 * claimed flavour). Returns 0 with *out (free with agid_doc_report_free),
 * or SB_ENOTFOUND / SB_EIO when it cannot be read, SB_ECONFIG for a bad
 * trust store; *out untouched then. A file above 200 MB is reported
 * invalid without being read.
 */
int agid_doc_check_file(struct agid_doc_report **out, const char *path,
			const struct agid_policy *pol, enum agid_flavour profile,
			struct sb_err *err);

enum agid_doc_flags {
	/* Leave report->sha256 empty: the caller already holds the file's hash. */
	AGID_DOC_NO_SHA256 = 1u << 0,
};

/* agid_doc_check_file with flags (enum agid_doc_flags); the same returns. */
int agid_doc_check_file_flags(struct agid_doc_report **out, const char *path,
			      const struct agid_policy *pol, enum agid_flavour profile,
			      unsigned flags, struct sb_err *err);
void agid_doc_report_free(struct agid_doc_report *r);

/*
 * F24 metadata for SEND: a JSON object of at most SB_MAX_F24_JSON bytes.
 * 0, or SB_EINVAL / SB_ETOOBIG / SB_ENOTFOUND with err naming the rule.
 */
int agid_f24_check_file(const char *path, struct sb_err *err);

#endif
