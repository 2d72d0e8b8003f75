/*
 * Digital signatures on documents (../shared/specs/agid/SUMMARY.md 1.3):
 * PAdES inside a PDF (signature dictionaries found by agid_pdfa) and CAdES
 * .p7m envelopes around a document, verified with OpenSSL's CMS API.
 *
 * A PDF signature is valid when its /ByteRange is [0 a b c] with the hole
 * a..b holding exactly the /Contents hex string, the CMS has one
 * SignerInfo whose messageDigest matches the bytes of the two ranges and
 * whose signature verifies with the signer certificate, and, when a trust
 * store is given, that certificate chains to it. The last signature must
 * also end at the end of the file (no unsigned incremental update after
 * it). Document timestamps (ETSI.RFC3161) are verified on their token and
 * message imprint and reported as timestamps, not signatures.
 *
 * Signer subjects are personal data: callers print them only on request and
 * never log them. Thread-safe.
 */
#ifndef AGID_SIG_H
#define AGID_SIG_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_err.h"
#include "agid_pdfa.h"

enum agid_sig_kind {
	AGID_SIG_PADES,       /* ETSI.CAdES.detached */
	AGID_SIG_PKCS7,       /* adbe.pkcs7.detached (or sha1, deprecated) */
	AGID_SIG_TIMESTAMP,   /* ETSI.RFC3161 document timestamp */
	AGID_SIG_CADES,       /* one layer of a .p7m envelope */
	AGID_SIG_OTHER,
};

struct agid_sig {
	enum agid_sig_kind kind;
	int obj;                 /* PDF signature dictionary object, 0 for .p7m */
	bool covers_file;        /* ByteRange ends at the end of the file (PDF) */
	bool digest_ok;          /* messageDigest / imprint matches the signed bytes */
	bool signature_ok;       /* the CMS signature verifies with the signer certificate */
	bool chain_checked;      /* a trust store was given */
	bool chain_ok;
	bool cades;              /* signing-certificate-v2 attribute present (CAdES-BES) */
	bool seal;               /* certificate issued to a legal person (electronic seal) */
	bool qualified;          /* certificate declares QcCompliance (ETSI EN 319 412-5) */
	bool valid;              /* everything above that applies holds */
	char signer[200];        /* certificate subject: personal data */
	char problem[200];       /* why not valid, "" when valid */
};

struct agid_sig_report {
	struct agid_sig *sigs;
	size_t n;
	bool signed_doc;         /* at least one signature (timestamps excluded) */
	bool timestamped;
	bool all_valid;          /* every signature and timestamp is valid
				    (true when there is none) */
};

#define AGID_SIG_REPORT_INIT { NULL, 0, false, false, true }

/* Free the contents; NULL is a no-op. */
void agid_sig_report_release(struct agid_sig_report *r);

/*
 * Verify the signatures agid_pdfa found in (data, len), the same bytes it
 * checked. trust_store: a PEM CA bundle, or NULL to skip the chain check.
 * Returns 0 with *out filled (valid or not); SB_ECONFIG when the trust
 * store cannot be loaded (*out untouched).
 */
int agid_sig_check_pdf(struct agid_sig_report *out, const struct agid_pdfa_report *pr,
		       const void *data, size_t len, const char *trust_store, struct sb_err *err);

/* true if (data, len) looks like a CAdES envelope: DER SignedData, or base64 / PEM of one. */
bool agid_p7m_detect(const void *data, size_t len);

#define AGID_P7M_MAX_LAYERS 4

/*
 * Unwrap a .p7m (DER or base64, nested up to AGID_P7M_MAX_LAYERS): each
 * layer is verified and recorded in sig (outermost first), and *content_out
 * gets the innermost content (free()). Returns 0 when the envelope could be
 * read, even if a signature is invalid (see sig); SB_EINVAL when it is not
 * a SignedData with enclosed content (detached .p7s), SB_ECONFIG for a bad
 * trust store, SB_ETOOBIG past the layer cap. Outputs untouched on failure.
 */
int agid_p7m_unwrap(const void *data, size_t len, const char *trust_store,
		    unsigned char **content_out, size_t *content_len, struct agid_sig_report *sig,
		    struct sb_err *err);

const char *agid_sig_kind_name(enum agid_sig_kind k);

#endif
