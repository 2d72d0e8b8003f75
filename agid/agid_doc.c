/*
 * A document checked as a whole (agid_doc.h): SEND's file rules (spec:
 * ../shared/specs/send/SUMMARY.md; SB_MAX_PDF in sb_limits.h), the PDF/A
 * profile, signatures, and the office's policy.
 *
 * The format is told by magic bytes, never by the file name (SUMMARY.md
 * 1.5): "%PDF-" in the first KiB (as PDF readers accept it) or a CMS
 * SignedData. A .p7m is unwrapped so that the PDF inside is checked too,
 * but it stays invalid for SEND, which takes application/pdf only.
 */
#include <jansson.h>
#include <sys/stat.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "agid_doc.h"
#include "agid_int.h"

#define PDF_MAGIC_WINDOW 1024   /* readers accept %PDF- anywhere in the first KiB */

void agid_policy_default(struct agid_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->flavours = 1u << AGID_PDFA_1A | 1u << AGID_PDFA_1B | 1u << AGID_PDFA_2A |
		      1u << AGID_PDFA_2B | 1u << AGID_PDFA_2U;
}

int agid_policy_from_cfg(struct agid_policy *out, const struct sb_cfg *cfg, const char *office,
			 struct sb_err *err)
{
	struct agid_policy p;
	char section[96];

	if (!office || !sb_cfg_has_office(cfg, office))
		return sb_err_set(err, SB_ENOTFOUND, 0, "office '%.40s' is not configured",
				  office ? office : "");
	snprintf(section, sizeof(section), "office.%s", office);
	memset(&p, 0, sizeof(p));
	for (int f = AGID_PDFA_1A; f < AGID_PDFA_COUNT; f++)
		if (sb_cfg_list_has(cfg, section, "pdfa_flavours",
				    agid_flavour_name((enum agid_flavour)f)))
			p.flavours |= 1u << f;
	p.signature_required = sb_cfg_bool(cfg, section, "signature_required");
	p.trust_store = sb_cfg_str(cfg, section, "signature_trust_store");
	*out = p;
	return 0;
}

const char *agid_verdict_name(enum agid_verdict v)
{
	switch (v) {
	case AGID_VALID: return "valid";
	case AGID_VALID_WARN: return "valid with warnings";
	default: return "invalid";
	}
}

/* Add to the findings (warn false) or the warnings (warn true). */
static void note(struct agid_doc_report *r, bool warn, const char *rule, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void note(struct agid_doc_report *r, bool warn, const char *rule, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (warn)
		agid_findings_vadd(&r->warnings, &r->nwarnings, &r->wdropped, rule, 0, 0, fmt, ap);
	else
		agid_findings_vadd(&r->findings, &r->nfindings, &r->dropped, rule, 0, 0, fmt, ap);
	va_end(ap);
}

static bool looks_pdf(const unsigned char *d, size_t len)
{
	return memmem(d, len < PDF_MAGIC_WINDOW ? len : PDF_MAGIC_WINDOW, "%PDF-", 5) != NULL;
}

/* Append src's signatures to dst (p7m layers first, then those inside the PDF). */
static void sig_merge(struct agid_sig_report *dst, struct agid_sig_report *src)
{
	if (!src->n)
		return;
	dst->sigs = sb_xrealloc(dst->sigs, (dst->n + src->n) * sizeof(*dst->sigs));
	memcpy(dst->sigs + dst->n, src->sigs, src->n * sizeof(*src->sigs));
	dst->n += src->n;
	dst->signed_doc = dst->signed_doc || src->signed_doc;
	dst->timestamped = dst->timestamped || src->timestamped;
	dst->all_valid = dst->all_valid && src->all_valid;
	agid_sig_report_release(src);
}

static void apply_policy(struct agid_doc_report *r, const struct agid_policy *pol)
{
	enum agid_flavour f = r->pdfa ? r->pdfa->profile : AGID_PDFA_NONE;

	if (r->pdfa && f != AGID_PDFA_NONE && !(pol->flavours & (1u << f)))
		note(r, false, "policy", "PDF/A-%s is not among the flavours this office accepts",
			agid_flavour_name(f));
	else if (f != AGID_PDFA_NONE && agid_flavour_part(f) == 3)
		note(r, true, "policy",
		     "PDF/A-%s may carry attachments of any type (accepted with a warning)",
		     agid_flavour_name(f));
	for (size_t i = 0; i < r->sig.n; i++)
		if (!r->sig.sigs[i].valid)
			note(r, false, "signature", "%s %zu is not valid: %s",
			     agid_sig_kind_name(r->sig.sigs[i].kind), i + 1,
			     r->sig.sigs[i].problem);
	if (pol->signature_required) {
		bool qualified = false;

		for (size_t i = 0; i < r->sig.n; i++)
			qualified = qualified || (r->sig.sigs[i].valid &&
						  r->sig.sigs[i].qualified &&
						  r->sig.sigs[i].kind != AGID_SIG_TIMESTAMP);
		if (!r->sig.signed_doc)
			note(r, false, "policy", "this office requires a qualified signature "
			     "and the document has none");
		else if (!qualified)
			note(r, false, "policy",
			     "this office requires a qualified signature: no valid signature "
			     "has a qualified certificate (QcCompliance)");
	}
}

int agid_doc_check_file(struct agid_doc_report **out, const char *path,
			const struct agid_policy *pol, enum agid_flavour profile,
			struct sb_err *err)
{
	return agid_doc_check_file_flags(out, path, pol, profile, 0, err);
}

int agid_doc_check_file_flags(struct agid_doc_report **out, const char *path,
			      const struct agid_policy *pol, enum agid_flavour profile,
			      unsigned flags, struct sb_err *err)
{
	struct agid_policy def;
	struct agid_doc_report *r = NULL;
	struct agid_pdfa_opts o = AGID_PDFA_OPTS_INIT;
	struct agid_sig_report inner = AGID_SIG_REPORT_INIT;
	struct agid_map m = { NULL, 0, false };
	struct sb_buf hex = SB_BUF_INIT(2 * SB_SHA256_LEN);
	unsigned char md[SB_SHA256_LEN], *content = NULL;
	const unsigned char *pdf;
	size_t pdflen = 0, clen = 0;
	struct stat st;
	int rc;

	if (!out || !path)
		return sb_err_set(err, SB_EINVAL, 0, "document check: no file");
	if (!pol) {
		agid_policy_default(&def);
		pol = &def;
	}
	if (stat(path, &st) < 0)
		return sb_err_set(err, errno == ENOENT ? SB_ENOTFOUND : SB_EIO, errno,
				  "cannot read document: %s", strerror(errno));
	r = sb_xcalloc(1, sizeof(*r));
	r->sig = (struct agid_sig_report)AGID_SIG_REPORT_INIT;
	r->mime = "application/octet-stream";
	r->size = (uint64_t)st.st_size;
	if (S_ISREG(st.st_mode) && r->size > SB_MAX_PDF) {
		note(r, false, "SEND", "file is %llu bytes, above SEND's limit of 200 MB",
			(unsigned long long)r->size);
		r->verdict = AGID_INVALID;
		*out = r;
		return 0;
	}
	rc = agid_map_file(&m, path, SB_MAX_PDF, err);
	if (rc < 0)
		goto cleanup;
	if (!(flags & AGID_DOC_NO_SHA256)) {
		sb_sha256(m.data ? (const void *)m.data : "", m.len, md);
		sb_hex_encode(md, sizeof(md), &hex);
		snprintf(r->sha256, sizeof(r->sha256), "%s", sb_buf_cstr(&hex));
	}
	pdf = m.data;
	pdflen = m.len;
	/* an enveloping .p7m holds the PDF's header in its first KiB too: test it first */
	if (m.len && memcmp(m.data, "%PDF-", m.len < 5 ? m.len : 5) &&
	    agid_p7m_detect(m.data, m.len)) {
		r->mime = "application/pkcs7-mime";
		note(r, false, "SEND", "SEND accepts application/pdf documents only, "
		     "this is a CAdES envelope (.p7m): send a PAdES-signed PDF");
		rc = agid_p7m_unwrap(m.data, m.len, pol->trust_store, &content, &clen,
				     &r->sig, err);
		if (rc == SB_ECONFIG)
			goto cleanup;
		if (rc < 0) {
			note(r, false, "signature", "%s",
			     err ? err->msg : "envelope cannot be read");
			sb_err_clear(err);
			rc = 0;
		}
		r->p7m_layers = (int)r->sig.n;
		pdf = content;
		pdflen = clen;
	}
	if (!pdf || !looks_pdf(pdf, pdflen)) {
		note(r, false, "SEND",
		     "not a PDF (no %%PDF- header): SEND accepts application/pdf only");
	} else {
		if (!content)
			r->mime = "application/pdf";
		o.profile = profile;
		rc = agid_pdfa_check_mem(&r->pdfa, pdf, pdflen, &o, err);
		if (rc < 0)
			goto cleanup;
		rc = agid_sig_check_pdf(&inner, r->pdfa, pdf, pdflen, pol->trust_store, err);
		if (rc < 0)
			goto cleanup;
		sig_merge(&r->sig, &inner);
		for (size_t i = 0; i < r->pdfa->nwarnings; i++)
			note(r, true, r->pdfa->warnings[i].clause, "%s", r->pdfa->warnings[i].msg);
	}
	apply_policy(r, pol);
	r->verdict = r->nfindings || r->dropped || !r->pdfa || !r->pdfa->valid ? AGID_INVALID :
		     r->nwarnings ? AGID_VALID_WARN : AGID_VALID;
	*out = r;
	r = NULL;
cleanup:
	agid_doc_report_free(r);
	agid_sig_report_release(&inner);
	agid_unmap(&m);
	sb_buf_release(&hex);
	free(content);
	return rc;
}

void agid_doc_report_free(struct agid_doc_report *r)
{
	if (!r)
		return;
	agid_pdfa_report_free(r->pdfa);
	agid_sig_report_release(&r->sig);
	free(r->findings);
	free(r->warnings);
	free(r);
}

int agid_f24_check_file(const char *path, struct sb_err *err)
{
	struct agid_map m = { NULL, 0, false };
	json_error_t jerr;
	json_t *j = NULL;
	int rc;

	rc = agid_map_file(&m, path, SB_MAX_F24_JSON, err);
	if (rc < 0)
		return rc;
	j = m.len ? json_loadb((const char *)m.data, m.len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if (!j)
		/* jerr.text can quote the input (tax codes): only the position is reported */
		rc = sb_err_set(err, SB_EINVAL, 0,
				"F24 metadata is not valid JSON (line %d, column %d)",
				m.len ? jerr.line : 0, m.len ? jerr.column : 0);
	else if (!json_is_object(j))
		rc = sb_err_set(err, SB_EINVAL, 0, "F24 metadata must be a JSON object");
	json_decref(j);
	agid_unmap(&m);
	return rc;
}
