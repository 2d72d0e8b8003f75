/*
 * PAdES and CAdES verification with OpenSSL's CMS API (spec:
 * ../shared/specs/agid/SUMMARY.md 1.3). See agid_sig.h for what "valid"
 * means. Choices:
 * - The signed bytes of a PDF are the two ranges of /ByteRange, fed to
 *   CMS_verify as detached content through one memory BIO; the hole must be
 *   exactly the /Contents string so that no unsigned byte hides there.
 * - Without a trust store the chain is not checked (CMS_NO_SIGNER_CERT_VERIFY)
 *   and the report says so; with one, any purpose is accepted because
 *   Italian qualified certificates carry nonRepudiation without an EKU.
 * - OpenSSL's error queue is read for the reason and then cleared, so one
 *   bad signature does not leak errors into the next caller on the thread.
 */
#include <limits.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "agid_sig.h"

const char *agid_sig_kind_name(enum agid_sig_kind k)
{
	switch (k) {
	case AGID_SIG_PADES: return "PAdES";
	case AGID_SIG_PKCS7: return "PKCS#7";
	case AGID_SIG_TIMESTAMP: return "timestamp";
	case AGID_SIG_CADES: return "CAdES";
	default: return "other";
	}
}

void agid_sig_report_release(struct agid_sig_report *r)
{
	if (!r)
		return;
	free(r->sigs);
	r->sigs = NULL;
	r->n = 0;
	r->signed_doc = false;
	r->timestamped = false;
	r->all_valid = true;
}

static struct agid_sig *sig_add(struct agid_sig_report *r, enum agid_sig_kind kind)
{
	struct agid_sig *s;

	r->sigs = sb_xrealloc(r->sigs, (r->n + 1) * sizeof(*r->sigs));
	s = &r->sigs[r->n++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	return s;
}

static void problem(struct agid_sig *s, const char *what)
{
	if (!s->problem[0])
		snprintf(s->problem, sizeof(s->problem), "%s", what);
}

/* The last OpenSSL reason as a short text, then clear the queue. */
static void openssl_problem(struct agid_sig *s, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	if (!s->problem[0])
		snprintf(s->problem, sizeof(s->problem), "%s: %s", what,
			 reason ? reason : "unknown");
	ERR_clear_error();
}

static int load_store(X509_STORE **out, const char *path, struct sb_err *err)
{
	X509_STORE *st;

	*out = NULL;
	if (!path)
		return 0;
	st = X509_STORE_new();
	if (!st || X509_STORE_load_file(st, path) != 1) {
		X509_STORE_free(st);
		ERR_clear_error();
		return sb_err_set(err, SB_ECONFIG, 0,
				  "trust store cannot be loaded (PEM CA bundle)");
	}
	X509_STORE_set_purpose(st, X509_PURPOSE_ANY);
	*out = st;
	return 0;
}

/*
 * QC statements of a certificate (ETSI EN 319 412-5, id-pe-qcStatements):
 * QcCompliance (0.4.0.1862.1.1) makes it qualified, QcType eseal
 * (0.4.0.1862.1.6.2) a seal. Whether the issuer is on the EU trusted list
 * is the trust store's business, not this function's.
 */
static void qc_statements(struct agid_sig *s, X509 *cert)
{
	int idx = X509_get_ext_by_NID(cert, NID_qcStatements, -1);
	ASN1_OCTET_STRING *der = idx >= 0 ? X509_EXTENSION_get_data(X509_get_ext(cert, idx)) : NULL;
	const unsigned char *p = der ? ASN1_STRING_get0_data(der) : NULL;
	STACK_OF(ASN1_TYPE) *list = p ? d2i_ASN1_SEQUENCE_ANY(NULL, &p, ASN1_STRING_length(der)) :
				    NULL;
	ASN1_OBJECT *compliance = OBJ_txt2obj("0.4.0.1862.1.1", 1);
	ASN1_OBJECT *qctype = OBJ_txt2obj("0.4.0.1862.1.6", 1),
		*eseal = OBJ_txt2obj("0.4.0.1862.1.6.2", 1);

	for (int i = 0; list && i < sk_ASN1_TYPE_num(list); i++) {
		ASN1_TYPE *t = sk_ASN1_TYPE_value(list, i);
		const unsigned char *q;
		STACK_OF(ASN1_TYPE) *st;
		ASN1_TYPE *id;

		if (t->type != V_ASN1_SEQUENCE)
			continue;
		q = ASN1_STRING_get0_data(t->value.sequence);
		st = d2i_ASN1_SEQUENCE_ANY(NULL, &q, ASN1_STRING_length(t->value.sequence));
		id = st && sk_ASN1_TYPE_num(st) > 0 ? sk_ASN1_TYPE_value(st, 0) : NULL;
		if (id && id->type == V_ASN1_OBJECT && !OBJ_cmp(id->value.object, compliance))
			s->qualified = true;
		/* QcType: a SEQUENCE OF OID after the statement's own OID */
		if (id && id->type == V_ASN1_OBJECT && !OBJ_cmp(id->value.object, qctype) &&
		    sk_ASN1_TYPE_num(st) > 1 &&
		    sk_ASN1_TYPE_value(st, 1)->type == V_ASN1_SEQUENCE) {
			ASN1_STRING *types = sk_ASN1_TYPE_value(st, 1)->value.sequence;
			const unsigned char *r = ASN1_STRING_get0_data(types);
			STACK_OF(ASN1_TYPE) *tl = d2i_ASN1_SEQUENCE_ANY(NULL, &r,
									ASN1_STRING_length(types));

			for (int k = 0; tl && k < sk_ASN1_TYPE_num(tl); k++)
				if (sk_ASN1_TYPE_value(tl, k)->type == V_ASN1_OBJECT &&
				    !OBJ_cmp(sk_ASN1_TYPE_value(tl, k)->value.object, eseal))
					s->seal = true;
			sk_ASN1_TYPE_pop_free(tl, ASN1_TYPE_free);
		}
		sk_ASN1_TYPE_pop_free(st, ASN1_TYPE_free);
	}
	sk_ASN1_TYPE_pop_free(list, ASN1_TYPE_free);
	ASN1_OBJECT_free(compliance);
	ASN1_OBJECT_free(qctype);
	ASN1_OBJECT_free(eseal);
	ERR_clear_error();
}

/* Signer subject, seal flag, CAdES attribute, single SignerInfo. */
static void signer_info(struct agid_sig *s, CMS_ContentInfo *cms)
{
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	STACK_OF(X509) *certs = CMS_get1_certs(cms);
	CMS_SignerInfo *si;
	X509 *signer = NULL;

	if (!sis || sk_CMS_SignerInfo_num(sis) != 1) {
		problem(s, "CMS must hold exactly one SignerInfo");
		goto cleanup;
	}
	si = sk_CMS_SignerInfo_value(sis, 0);
	s->cades = CMS_signed_get_attr_by_NID(si, NID_id_smime_aa_signingCertificateV2, -1) >= 0;
	for (int i = 0; certs && i < sk_X509_num(certs); i++)
		if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(certs, i)) == 0)
			signer = sk_X509_value(certs, i);
	if (!signer) {
		problem(s, "the signer certificate is not in the CMS");
		goto cleanup;
	}
	X509_NAME_oneline(X509_get_subject_name(signer), s->signer, sizeof(s->signer));
	/* A seal's certificate names a legal person: organizationIdentifier (ETSI EN 319 412-3). */
	s->seal = X509_NAME_get_index_by_NID(X509_get_subject_name(signer),
					     NID_organizationIdentifier, -1) >= 0;
	qc_statements(s, signer);
cleanup:
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
}

/*
 * Verify cms over detached content dcont (NULL: enclosed content, written
 * to out when out is not NULL). Sets digest_ok/signature_ok/chain_*.
 */
static void verify_cms(struct agid_sig *s, CMS_ContentInfo *cms, BIO *dcont, BIO *out,
		       X509_STORE *store)
{
	unsigned flags = CMS_BINARY | (store ? 0 : CMS_NO_SIGNER_CERT_VERIFY);
	unsigned long e;

	s->chain_checked = store != NULL;
	if (CMS_verify(cms, NULL, store, dcont, out, flags) == 1) {
		s->digest_ok = s->signature_ok = true;
		s->chain_ok = store != NULL;
		return;
	}
	e = ERR_peek_last_error();
	if (ERR_GET_REASON(e) == CMS_R_CERTIFICATE_VERIFY_ERROR) {
		openssl_problem(s, "certificate chain not trusted");
		/* the chain failed first; check the cryptography on its own */
		if (CMS_verify(cms, NULL, NULL, dcont, out, flags | CMS_NO_SIGNER_CERT_VERIFY) == 1)
			s->digest_ok = s->signature_ok = true;
		ERR_clear_error();
		return;
	}
	s->digest_ok = ERR_GET_REASON(e) != CMS_R_CONTENT_VERIFY_ERROR;
	openssl_problem(s, ERR_GET_REASON(e) == CMS_R_CONTENT_VERIFY_ERROR ?
			   "message digest does not match the signed bytes" :
			   "signature does not verify");
}

/* RFC 3161 document timestamp: the token verifies and its imprint is the digest of the ranges. */
static void verify_timestamp(struct agid_sig *s, CMS_ContentInfo *cms,
			     const unsigned char *signed_bytes, size_t n, X509_STORE *store)
{
	BIO *out = BIO_new(BIO_s_mem());
	TS_TST_INFO *tst = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	const EVP_MD *alg;
	TS_MSG_IMPRINT *mi;
	ASN1_OCTET_STRING *want;

	verify_cms(s, cms, NULL, out, store);
	s->digest_ok = false;
	if (!s->signature_ok)
		goto cleanup;
	tst = d2i_TS_TST_INFO_bio(out, NULL);
	mi = tst ? TS_TST_INFO_get_msg_imprint(tst) : NULL;
	if (!mi) {
		openssl_problem(s, "timestamp token has no TSTInfo");
		goto cleanup;
	}
	alg = EVP_get_digestbyobj(TS_MSG_IMPRINT_get_algo(mi)->algorithm);
	want = TS_MSG_IMPRINT_get_msg(mi);
	if (!alg || !EVP_Digest(signed_bytes, n, md, &mdlen, alg, NULL) ||
	    (int)mdlen != ASN1_STRING_length(want) ||
	    memcmp(md, ASN1_STRING_get0_data(want), mdlen)) {
		problem(s, "timestamp imprint does not match the signed bytes");
		goto cleanup;
	}
	s->digest_ok = true;
cleanup:
	TS_TST_INFO_free(tst);
	BIO_free(out);
	ERR_clear_error();
}

static enum agid_sig_kind kind_of(const struct agid_pdf_sig *ps)
{
	if (!strcmp(ps->subfilter, "ETSI.CAdES.detached"))
		return AGID_SIG_PADES;
	if (!strcmp(ps->subfilter, "adbe.pkcs7.detached") ||
	    !strcmp(ps->subfilter, "adbe.pkcs7.sha1"))
		return AGID_SIG_PKCS7;
	if (!strcmp(ps->subfilter, "ETSI.RFC3161") || ps->doc_timestamp)
		return AGID_SIG_TIMESTAMP;
	return AGID_SIG_OTHER;
}

static void check_one(struct agid_sig *s, const struct agid_pdf_sig *ps, const unsigned char *d,
		      size_t len, bool last, X509_STORE *store)
{
	const long long *r = ps->range;
	const unsigned char *p = ps->contents;
	CMS_ContentInfo *cms = NULL;
	unsigned char *signed_bytes = NULL;
	size_t a, b, c, n;
	BIO *dcont = NULL;

	s->obj = ps->obj;
	if (!ps->range_ok || r[0] != 0 || r[1] >= r[2] || (unsigned long long)r[2] > len ||
	    (unsigned long long)r[3] > len - (size_t)r[2]) {
		problem(s, "ByteRange is malformed or outside the file");
		return;
	}
	a = (size_t)r[1];
	b = (size_t)r[2];
	c = (size_t)r[3];
	s->covers_file = b + c == len;
	if (last && !s->covers_file)
		problem(s, "bytes after the last signed range are not signed (incremental update)");
	/* the hole is the hex string <...> and nothing else */
	if (d[a] != '<' || d[b - 1] != '>' || b - a - 2 != 2 * ps->contents_len)
		problem(s, "the ByteRange hole is not exactly the Contents string");
	if (!p || ps->contents_len > LONG_MAX ||
	    !(cms = d2i_CMS_ContentInfo(NULL, &p, (long)ps->contents_len)) ||
	    OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		openssl_problem(s, "Contents is not a CMS SignedData");
		goto cleanup;
	}
	signer_info(s, cms);
	n = a + c;
	signed_bytes = sb_xmalloc(n ? n : 1);
	memcpy(signed_bytes, d, a);
	memcpy(signed_bytes + a, d + b, c);
	if (s->kind == AGID_SIG_TIMESTAMP) {
		verify_timestamp(s, cms, signed_bytes, n, store);
	} else {
		dcont = BIO_new_mem_buf(signed_bytes, n > INT_MAX ? INT_MAX : (int)n);
		verify_cms(s, cms, dcont, NULL, store);
	}
cleanup:
	BIO_free(dcont);
	free(signed_bytes);
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
}

static void finish(struct agid_sig_report *r)
{
	r->all_valid = true;
	for (size_t i = 0; i < r->n; i++) {
		struct agid_sig *s = &r->sigs[i];

		s->valid = !s->problem[0] && s->digest_ok && s->signature_ok &&
			   (!s->chain_checked || s->chain_ok);
		if (!s->valid && !s->problem[0])
			problem(s, "signature does not verify");
		if (s->kind == AGID_SIG_TIMESTAMP)
			r->timestamped = true;
		else
			r->signed_doc = true;
		r->all_valid = r->all_valid && s->valid;
	}
}

int agid_sig_check_pdf(struct agid_sig_report *out, const struct agid_pdfa_report *pr,
		       const void *data, size_t len, const char *trust_store, struct sb_err *err)
{
	struct agid_sig_report r = AGID_SIG_REPORT_INIT;
	X509_STORE *store = NULL;
	long long last_end = -1;
	size_t last = 0;
	int rc;

	if (!out || !pr || (!data && len))
		return sb_err_set(err, SB_EINVAL, 0, "signature check: no input");
	rc = load_store(&store, trust_store, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < pr->nsigs; i++) {
		if (pr->sigs[i].range_ok &&
		    pr->sigs[i].range[2] + pr->sigs[i].range[3] > last_end) {
			last_end = pr->sigs[i].range[2] + pr->sigs[i].range[3];
			last = i;
		}
	}
	for (size_t i = 0; i < pr->nsigs; i++) {
		struct agid_sig *s = sig_add(&r, kind_of(&pr->sigs[i]));

		check_one(s, &pr->sigs[i], data, len, i == last, store);
	}
	finish(&r);
	X509_STORE_free(store);
	*out = r;
	return 0;
}

/* ---- CAdES .p7m ---- */

/* DER SignedData with enclosed content, or NULL. */
static CMS_ContentInfo *parse_der(const unsigned char *p, size_t len)
{
	CMS_ContentInfo *cms;

	if (len < 2 || p[0] != 0x30 || len > LONG_MAX)
		return NULL;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	if (cms && OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		CMS_ContentInfo_free(cms);
		cms = NULL;
	}
	ERR_clear_error();
	return cms;
}

/* base64 (optionally PEM-armoured) to DER; 0 or SB_EINVAL. */
static int unbase64(const unsigned char *p, size_t len, struct sb_buf *der)
{
	struct sb_buf clean = SB_BUF_INIT(len + 1);
	int rc = SB_EINVAL;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '-') {
			/* skip an armour line: -----BEGIN ...----- / -----END ...----- */
			while (i < len && p[i] != '\n')
				i++;
			continue;
		}
		if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')
			continue;
		if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') ||
		      (p[i] >= '0' && p[i] <= '9') || p[i] == '+' || p[i] == '/' || p[i] == '='))
			goto cleanup;
		sb_buf_addch(&clean, (char)p[i]);
	}
	if (clean.len < 4)
		goto cleanup;
	rc = sb_base64_decode(clean.buf, clean.len, der) < 0 ? SB_EINVAL : 0;
cleanup:
	sb_buf_release(&clean);
	return rc;
}

bool agid_p7m_detect(const void *data, size_t len)
{
	struct sb_buf der = SB_BUF_INIT(len);
	CMS_ContentInfo *cms = parse_der(data, len);
	bool yes = cms != NULL;

	if (!yes && len && unbase64(data, len, &der) == 0) {
		cms = parse_der((const unsigned char *)der.buf, der.len);
		yes = cms != NULL;
	}
	CMS_ContentInfo_free(cms);
	sb_buf_release(&der);
	return yes;
}

int agid_p7m_unwrap(const void *data, size_t len, const char *trust_store,
		    unsigned char **content_out, size_t *content_len, struct agid_sig_report *sig,
		    struct sb_err *err)
{
	struct agid_sig_report r = AGID_SIG_REPORT_INIT;
	X509_STORE *store = NULL;
	unsigned char *cur = sb_xmalloc(len ? len : 1);
	size_t curlen = len;
	int rc = 0, layer;

	memcpy(cur, data, len);
	rc = load_store(&store, trust_store, err);
	if (rc < 0)
		goto cleanup;
	for (layer = 0;; layer++) {
		struct sb_buf der = SB_BUF_INIT(curlen);
		CMS_ContentInfo *cms = parse_der(cur, curlen);
		BIO *out;
		struct agid_sig *s;
		char *body;
		long blen;

		if (!cms && unbase64(cur, curlen, &der) == 0)
			cms = parse_der((const unsigned char *)der.buf, der.len);
		sb_buf_release(&der);
		if (!cms) {
			if (layer > 0)
				break;      /* the content under the last envelope */
			rc = sb_err_set(err, SB_EINVAL, 0, "not a CAdES envelope (CMS SignedData)");
			goto cleanup;
		}
		if (layer == AGID_P7M_MAX_LAYERS) {
			CMS_ContentInfo_free(cms);
			rc = sb_err_set(err, SB_ETOOBIG, 0,
					"more than %d nested signature envelopes",
					AGID_P7M_MAX_LAYERS);
			goto cleanup;
		}
		if (!CMS_get0_content(cms) || !*CMS_get0_content(cms)) {
			CMS_ContentInfo_free(cms);
			rc = sb_err_set(err, SB_EINVAL, 0,
					"detached signature: "
					"the envelope does not enclose the document");
			goto cleanup;
		}
		s = sig_add(&r, AGID_SIG_CADES);
		s->covers_file = true;
		signer_info(s, cms);
		out = BIO_new(BIO_s_mem());
		verify_cms(s, cms, NULL, out, store);
		if (!s->signature_ok) {
			/*
			 * read the content without verifying, so the inner
			 * document can still be checked
			 */
			ASN1_OCTET_STRING **pos = CMS_get0_content(cms);

			(void)BIO_reset(out);
			BIO_write(out, ASN1_STRING_get0_data(*pos), ASN1_STRING_length(*pos));
		}
		blen = BIO_get_mem_data(out, &body);
		free(cur);
		cur = sb_xmalloc(blen > 0 ? (size_t)blen : 1);
		curlen = blen > 0 ? (size_t)blen : 0;
		memcpy(cur, body, curlen);
		BIO_free(out);
		CMS_ContentInfo_free(cms);
	}
	finish(&r);
	*content_out = cur;
	*content_len = curlen;
	cur = NULL;
	*sig = r;
	r.sigs = NULL;
cleanup:
	agid_sig_report_release(&r);
	X509_STORE_free(store);
	free(cur);
	ERR_clear_error();
	return rc;
}
