/*
 * Segnatura di protocollo (DPR 445/2000 art. 55) in the AgID 2021 schema,
 * sealed with an enveloped XML signature and checked against the XSD.
 *
 * Spec: ../shared/specs/agid/segnatura_protocollo.xsd (namespace
 * http://www.agid.gov.it/protocollo/, version 3.0.0) and SUMMARY.md
 * section 3. Schema gotchas that shape this file:
 *  - attributeFormDefault is "qualified": versione, lang, nomeFile,
 *    mimeType are written prot:-prefixed;
 *  - NumeroRegistrazione is [0-9]{7,}: zero-padded;
 *  - ds:Signature is required, so the document is validated after sealing;
 *  - CAPType wants 6 digits, so postal addresses are never written;
 *  - CodiceFiscaleType is the 16-character personal pattern and PartitaIVA
 *    11 digits: a tax id that does not match is left out rather than
 *    written wrong.
 *
 * The seal is an XML-DSig enveloped signature (RSA-SHA256, exclusive C14N)
 * with the seal certificate in KeyInfo and XAdES baseline-B signed
 * properties (SigningTime, SigningCertificateV2): one Reference with URI=""
 * over the whole document, one to the SignedProperties. Verification uses
 * the configured certificate, not the one in the document, accepts only
 * same-document references, requires exactly those two, the certificate
 * digest of the configured certificate, and the signature as the root's
 * last child, so a wrapped or re-signed document does not pass.
 *
 * libxml2 and xmlsec are initialised once per process (pthread_once).
 * Parsing never touches the network (XML_PARSE_NONET) and never expands
 * external entities.
 */
#include <libxml/parser.h>
#include <libxml/valid.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>
#include <libxml/xmlschemastypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xmlsec/crypto.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_time.h"
#include "proto_int.h"

/* libxml2 takes const xmlChar * for names and text: no cast-away of const needed. */
#define XC(s) ((const xmlChar *)(s))

#define PROT_NS "http://www.agid.gov.it/protocollo/"
#define DS_NS "http://www.w3.org/2000/09/xmldsig#"
#define XADES_NS "http://uri.etsi.org/01903/v1.3.2#"
#define XADES_SP_TYPE "http://uri.etsi.org/01903#SignedProperties"
#define SIG_ID "segnatura-sigillo"
#define PROPS_ID "segnatura-sigillo-proprieta"
/* No network, and no error text on stderr (it could quote personal data). */
#define PARSE_OPTS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

struct proto_seal {
	xmlSecKeyPtr sign_key;     /* private key + certificate */
	xmlSecKeyPtr verify_key;   /* the certificate's public key */
	xmlSchemaPtr schema;
	char cert_digest[45];      /* base64 SHA-256 of the certificate's DER
				      (SigningCertificateV2) */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static void lib_init(void)
{
	xmlInitParser();
	/*
	 * libxml2 2.9 (Debian 12) builds its table of XSD types at the first
	 * schema parse, without a lock: workers opening the register side by
	 * side raced on it and leaked. Built here, once, before any parse.
	 */
	xmlSchemaInitTypes();
	/* libxml2 would print parse errors on stderr: they may quote personal data. */
	xmlSetGenericErrorFunc(NULL, silent);
	if (xmlSecInit() < 0 || xmlSecCheckVersion() != 1 || xmlSecCryptoAppInit(NULL) < 0 ||
	    xmlSecCryptoInit() < 0)
		init_rc = -1;
}

struct first_error {
	int line;
	char element[64];
	bool set;
};

static void record_error(void *ctx, xmlErrorPtr e)
{
	struct first_error *fe = ctx;

	if (fe->set || !e)
		return;
	fe->set = true;
	fe->line = e->line;
	/* The element name only: the message could quote a value (a tax code). */
	if (e->node && ((xmlNodePtr)e->node)->name)
		snprintf(fe->element, sizeof(fe->element), "%s",
			 (const char *)((xmlNodePtr)e->node)->name);
}

/* base64(SHA-256(DER)) of the PEM certificate in path. */
static int cert_digest(const char *path, char out[45], struct sb_err *err)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	unsigned char *der = NULL, md[SB_SHA256_LEN];
	struct sb_buf b64 = SB_BUF_INIT(64);
	int len;

	if (f)
		fclose(f);
	if (!x)
		return sb_err_set(err, SB_ECONFIG, 0,
				  "seal certificate '%s' is not a PEM certificate", path);
	len = i2d_X509(x, &der);
	X509_free(x);
	if (len <= 0)
		return sb_err_set(err, SB_ECONFIG, 0,
				  "seal certificate '%s' cannot be encoded", path);
	sb_sha256(der, (size_t)len, md);
	OPENSSL_free(der);
	sb_base64_encode(md, sizeof(md), &b64);
	snprintf(out, 45, "%s", sb_buf_cstr(&b64));
	sb_buf_release(&b64);
	return 0;
}

int proto_seal_open(struct proto_seal **out, const char *key_file, const char *cert_file,
		    const char *xsd_path, struct sb_err *err)
{
	struct proto_seal *s = NULL;
	xmlSchemaParserCtxtPtr pctx = NULL;
	char *pem = NULL;
	int rc = 0;

	pthread_once(&init_once, lib_init);
	if (init_rc < 0)
		return sb_err_set(err, SB_EINTERNAL, 0, "xmlsec initialisation failed");
	/* libxml2's error handler is per thread: silence it in this one too. */
	xmlSetGenericErrorFunc(NULL, silent);
	if (access(xsd_path, R_OK) < 0)
		return sb_err_set(err, SB_ECONFIG, errno, "segnatura schema '%s' not readable"
				  " (set protocol.segnatura_xsd, see docs/protocol-adapters.md)",
				  xsd_path);
	rc = sb_secret_file_read(key_file, &pem, err);
	if (rc < 0)
		return rc == SB_ENOTFOUND ?
		       sb_err_set(err, SB_ECONFIG, 0, "seal key '%s' not found", key_file) : rc;
	s = sb_xcalloc(1, sizeof(*s));
	s->sign_key = xmlSecCryptoAppKeyLoadMemory((const xmlSecByte *)pem, strlen(pem),
						   xmlSecKeyDataFormatPem, NULL, NULL, NULL);
	if (!s->sign_key) {
		rc = sb_err_set(err, SB_ECONFIG, 0,
				"seal key '%s' is not a PEM private key", key_file);
		goto cleanup;
	}
	if (xmlSecCryptoAppKeyCertLoad(s->sign_key, cert_file, xmlSecKeyDataFormatPem) < 0) {
		rc = sb_err_set(err, SB_ECONFIG, 0, "seal certificate '%s' cannot be loaded",
				cert_file);
		goto cleanup;
	}
	s->verify_key = xmlSecCryptoAppKeyLoad(cert_file, xmlSecKeyDataFormatCertPem, NULL, NULL,
					       NULL);
	if (!s->verify_key) {
		rc = sb_err_set(err, SB_ECONFIG, 0, "seal certificate '%s' cannot be loaded",
				cert_file);
		goto cleanup;
	}
	rc = cert_digest(cert_file, s->cert_digest, err);
	if (rc < 0)
		goto cleanup;
	pctx = xmlSchemaNewParserCtxt(xsd_path);
	if (pctx) {
		xmlSchemaSetParserStructuredErrors(pctx, NULL, NULL);
		xmlSchemaSetParserErrors(pctx, NULL, NULL, NULL);
		s->schema = xmlSchemaParse(pctx);
	}
	if (!s->schema) {
		rc = sb_err_set(err, SB_ECONFIG, 0, "segnatura schema '%s' cannot be parsed (its"
				" import_schemas/ folder must sit beside it)", xsd_path);
		goto cleanup;
	}
cleanup:
	xmlSchemaFreeParserCtxt(pctx);
	sb_secret_free(pem);
	if (rc < 0) {
		proto_seal_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void proto_seal_free(struct proto_seal *s)
{
	if (!s)
		return;
	if (s->sign_key)
		xmlSecKeyDestroy(s->sign_key);
	if (s->verify_key)
		xmlSecKeyDestroy(s->verify_key);
	xmlSchemaFree(s->schema);
	free(s);
}

static int validate_doc(struct proto_seal *s, xmlDocPtr doc, struct sb_err *err)
{
	struct first_error fe = { 0, "", false };
	xmlSchemaValidCtxtPtr v = xmlSchemaNewValidCtxt(s->schema);
	int rc;

	if (!v)
		return sb_err_set(err, SB_EINTERNAL, 0,
				  "segnatura: cannot create validation context");
	xmlSchemaSetValidStructuredErrors(v, record_error, &fe);
	rc = xmlSchemaValidateDoc(v, doc);
	xmlSchemaFreeValidCtxt(v);
	if (rc == 0)
		return 0;
	return sb_err_set(err, SB_EINVAL, 0, "segnatura does not validate against the 2021 xsd:"
			  " element '%s' at line %d", fe.element[0] ? fe.element : "?", fe.line);
}

static xmlDocPtr parse(const char *xml, size_t len, struct sb_err *err)
{
	xmlDocPtr doc;

	if (len > SB_MAX_XML_SEGNATURA) {
		sb_err_set(err, SB_ETOOBIG, 0,
			   "segnatura larger than %u bytes", SB_MAX_XML_SEGNATURA);
		return NULL;
	}
	doc = xmlReadMemory(xml, (int)len, "segnatura.xml", "UTF-8", PARSE_OPTS);
	if (!doc)
		sb_err_set(err, SB_EINVAL, 0, "segnatura is not well-formed xml");
	return doc;
}

int proto_seal_validate_xml(struct proto_seal *s, const char *xml, size_t len,
			    struct sb_err *err)
{
	xmlDocPtr doc = parse(xml, len, err);
	int rc;

	if (!doc)
		return err ? err->code : SB_EINVAL;
	rc = validate_doc(s, doc, err);
	xmlFreeDoc(doc);
	return rc;
}

static xmlNodePtr el(xmlNodePtr parent, xmlNsPtr ns, const char *name, const char *text)
{
	return xmlNewTextChild(parent, ns, XC(name), text ? XC(text) : NULL);
}

static bool is_cf(const char *s)
{
	/* CodiceFiscaleType of the XSD (omocodia letters included). */
	static const char *const cls[16] = {
		"A", "A", "A", "A", "A", "A", "D", "D", "M", "D", "D", "A", "D", "D", "D", "A",
	};

	if (!s || strlen(s) != 16)
		return false;
	for (int i = 0; i < 16; i++) {
		char c = s[i];
		bool alpha = c >= 'A' && c <= 'Z';
		bool digit = (c >= '0' && c <= '9') || (c && strchr("LMNPQRSTUV", c));

		if (cls[i][0] == 'A' && !alpha)
			return false;
		if (cls[i][0] == 'D' && !digit)
			return false;
		if (cls[i][0] == 'M' && !(c && strchr("ABCDEHLMPRST", c)))
			return false;
	}
	return true;
}

static bool is_piva(const char *s)
{
	if (!s || strlen(s) != 11)
		return false;
	for (int i = 0; i < 11; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static void ente(struct proto *p, xmlNodePtr parent, xmlNsPtr ns)
{
	xmlNodePtr a = el(parent, ns, "Amministrazione", NULL);

	el(a, ns, "DenominazioneAmministrazione", p->ente_name);
	if (p->ente_tax_id)
		el(a, ns, "CFAmministrazione", p->ente_tax_id);
	el(a, ns, "CodiceIPAAmministrazione", p->ipa_code);
	el(a, ns, "CodiceIPAAOO", p->aoo_code);
}

static void party(xmlNodePtr parent, xmlNsPtr ns, const struct proto_party *pp)
{
	xmlNodePtr n;

	switch (pp->type) {
	case PROTO_PF: {
		const char *space = strchr(pp->name, ' ');
		char *given = NULL;

		n = el(parent, ns, "PersonaFisica", NULL);
		if (pp->given_name && pp->family_name) {
			el(n, ns, "Nome", pp->given_name);
			el(n, ns, "Cognome", pp->family_name);
		} else {
			/* SEND's denomination is "Nome Cognome": split at the first space. */
			given = space ? sb_xstrndup(pp->name, (size_t)(space - pp->name)) : NULL;
			el(n, ns, "Nome", given ? given : "");
			el(n, ns, "Cognome", space ? space + 1 : pp->name);
			free(given);
		}
		if (is_cf(pp->tax_id))
			el(n, ns, "CodiceFiscale", pp->tax_id);
		break;
	}
	case PROTO_PG:
		n = el(parent, ns, "PersonaGiuridica", NULL);
		el(n, ns, "Denominazione", pp->name);
		if (is_piva(pp->tax_id))
			el(n, ns, "PIVAoCF", pp->tax_id);
		break;
	case PROTO_PA:
		n = el(parent, ns, "Amministrazione", NULL);
		el(n, ns, "DenominazioneAmministrazione", pp->name);
		if (is_piva(pp->tax_id))
			el(n, ns, "CFAmministrazione", pp->tax_id);
		el(n, ns, "CodiceIPAAmministrazione", pp->ipa_code);
		break;
	}
}

static void identificatore(struct proto *p, xmlNodePtr parent, xmlNsPtr ns, const char *name,
			   const struct proto_id *id, const char *date, const char *time_)
{
	xmlNodePtr n = el(parent, ns, name, NULL);
	char num[32];

	snprintf(num, sizeof(num), "%07llu", (unsigned long long)id->number);
	el(n, ns, "CodiceAmministrazione", p->ipa_code);
	el(n, ns, "CodiceAOO", p->aoo_code);
	el(n, ns, "CodiceRegistro", id->reg);
	el(n, ns, "NumeroRegistrazione", num);
	el(n, ns, "DataRegistrazione", date);
	if (time_)
		el(n, ns, "OraRegistrazione", time_);
}

static void classifica(xmlNodePtr parent, xmlNsPtr ns, const char *name, const char *code)
{
	xmlNodePtr n = el(parent, ns, "Classifica", NULL);

	el(n, ns, "Denominazione", name);
	el(n, ns, "CodiceFlat", code);
}

static void document(xmlNodePtr parent, xmlNsPtr ns, const char *name,
		     const struct proto_hdoc *d)
{
	xmlNodePtr n = el(parent, ns, name, NULL);

	xmlNewNsProp(n, ns, XC("nomeFile"), XC(d->name));
	xmlNewNsProp(n, ns, XC("mimeType"), XC(d->mime_type));
	if (d->title)
		el(n, ns, "Descrizione", d->title);
	el(n, ns, "Impronta", d->sha256_b64);
}

static xmlDocPtr build_doc(struct proto *p, const struct proto_row *row)
{
	xmlDocPtr doc = xmlNewDoc(XC("1.0"));
	xmlNodePtr root = xmlNewNode(NULL, XC("SegnaturaInformatica"));
	xmlNsPtr ns = xmlNewNs(root, XC(PROT_NS), XC("prot"));
	xmlNodePtr head, descr, n;

	xmlSetNs(root, ns);
	xmlNewNs(root, XC(DS_NS), XC("ds"));
	xmlDocSetRootElement(doc, root);
	xmlNewNsProp(root, ns, XC("versione"), XC("3.0.0"));
	xmlNewNsProp(root, ns, XC("lang"), XC("it"));

	head = el(root, ns, "Intestazione", NULL);
	identificatore(p, head, ns, "Identificatore", &row->id, row->date, row->time);
	el(head, ns, "Oggetto", row->subject);
	classifica(head, ns, row->classification_name, row->classification);
	if (row->link) {
		/* R10: a receipt refers to the outgoing registration it concerns. */
		n = el(root, ns, "Riferimenti", NULL);
		identificatore(p, n, ns, "Identificatore", &row->link->id, row->link->date,
			       row->link->time);
		el(n, ns, "Oggetto", proto_reg_subject(row->link));
		classifica(n, ns, "Classificazione dell'atto", row->link->classification);
	}
	descr = el(root, ns, "Descrizione", NULL);
	n = el(descr, ns, "Mittente", NULL);
	if (row->dir == PROTO_OUT) {
		ente(p, n, ns);
		for (size_t i = 0; i < row->nparties; i++)
			party(el(descr, ns, "Destinatario", NULL), ns, &row->parties[i]);
	} else {
		for (size_t i = 0; i < row->nparties; i++)
			party(n, ns, &row->parties[i]);
		ente(p, el(descr, ns, "Destinatario", NULL), ns);
	}
	document(descr, ns, "DocumentoPrimario", &row->docs[0]);
	for (size_t i = 1; i < row->ndocs; i++)
		document(descr, ns, "Allegato", &row->docs[i]);
	return doc;
}

/*
 * XAdES baseline B (ETSI EN 319 132-1, asked by Allegato 6): the signing
 * time and the seal certificate's digest, in SignedProperties, covered by a
 * second reference so that neither can be swapped.
 */
static int xades_object(struct proto_seal *s, xmlDocPtr doc, xmlNodePtr sig, int64_t now,
			struct sb_err *err)
{
	xmlNodePtr obj = xmlSecTmplSignatureAddObject(sig, NULL, NULL, NULL);
	xmlNsPtr ds = xmlSearchNsByHref(doc, sig, XC(DS_NS)), xa;
	xmlNodePtr qp, sp, ssp, cd, dm;
	xmlAttrPtr id;
	char when[32];

	if (!obj || !ds)
		return sb_err_set(err, SB_EINTERNAL, 0, "segnatura: xades object failed");
	qp = xmlNewChild(obj, NULL, XC("QualifyingProperties"), NULL);
	xa = xmlNewNs(qp, XC(XADES_NS), XC("xades"));
	xmlSetNs(qp, xa);
	xmlNewProp(qp, XC("Target"), XC("#" SIG_ID));
	sp = xmlNewChild(qp, xa, XC("SignedProperties"), NULL);
	id = xmlNewProp(sp, XC("Id"), XC(PROPS_ID));
	/* The reference "#id" is resolved through the document's ID table. */
	xmlAddID(NULL, doc, XC(PROPS_ID), id);
	ssp = xmlNewChild(sp, xa, XC("SignedSignatureProperties"), NULL);
	xmlNewTextChild(ssp, xa, XC("SigningTime"), XC(sb_time_iso8601(now, when, sizeof(when))));
	cd = xmlNewChild(xmlNewChild(xmlNewChild(ssp, xa, XC("SigningCertificateV2"), NULL), xa,
				     XC("Cert"), NULL), xa, XC("CertDigest"), NULL);
	dm = xmlNewChild(cd, ds, XC("DigestMethod"), NULL);
	xmlNewProp(dm, XC("Algorithm"), XC("http://www.w3.org/2001/04/xmlenc#sha256"));
	xmlNewTextChild(cd, ds, XC("DigestValue"), XC(s->cert_digest));
	return 0;
}

/*
 * The context borrows the seal's key instead of a copy: xmlSecKeyDuplicate
 * re-decodes the certificate through OpenSSL 3's decoders, 3% of the
 * daemon's CPU in issue 7's profile. xmlsec only reads signKey (the sign
 * transform takes its own reference to the EVP_PKEY), but
 * xmlSecDSigCtxDestroy frees it, so destroy_ctx takes it back first. A
 * struct proto_seal is used by one thread at a time, so lending is safe.
 */
static xmlSecDSigCtxPtr lend_key(xmlSecDSigCtxPtr ctx, xmlSecKeyPtr key)
{
	ctx->signKey = key;
	return ctx;
}

static void destroy_ctx(xmlSecDSigCtxPtr ctx)
{
	if (!ctx)
		return;
	ctx->signKey = NULL;
	xmlSecDSigCtxDestroy(ctx);
}

static int seal(struct proto_seal *s, xmlDocPtr doc, int64_t now, struct sb_err *err)
{
	xmlNodePtr sig, ref, ref2, ki;
	xmlSecDSigCtxPtr ctx = NULL;
	int rc = 0;

	sig = xmlSecTmplSignatureCreateNsPref(doc, xmlSecTransformExclC14NId,
					      xmlSecTransformRsaSha256Id, XC(SIG_ID), XC("ds"));
	if (!sig)
		return sb_err_set(err, SB_EINTERNAL, 0, "segnatura: signature template failed");
	xmlAddChild(xmlDocGetRootElement(doc), sig);
	ref = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id, NULL, XC(""), NULL);
	if (!ref || !xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId) ||
	    !xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId))
		return sb_err_set(err, SB_EINTERNAL, 0, "segnatura: reference template failed");
	ref2 = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id, NULL,
					       XC("#" PROPS_ID), XC(XADES_SP_TYPE));
	if (!ref2 || !xmlSecTmplReferenceAddTransform(ref2, xmlSecTransformExclC14NId))
		return sb_err_set(err, SB_EINTERNAL, 0, "segnatura: reference template failed");
	ki = xmlSecTmplSignatureEnsureKeyInfo(sig, NULL);
	if (!ki || !xmlSecTmplKeyInfoAddX509Data(ki))
		return sb_err_set(err, SB_EINTERNAL, 0, "segnatura: key info template failed");
	rc = xades_object(s, doc, sig, now, err);
	if (rc < 0)
		return rc;
	ctx = xmlSecDSigCtxCreate(NULL);
	if (!ctx)
		return sb_err_set(err, SB_EINTERNAL, 0, "segnatura: signature context failed");
	if (xmlSecDSigCtxSign(lend_key(ctx, s->sign_key), sig) < 0)
		rc = sb_err_set(err, SB_EINTERNAL, 0, "segnatura: sealing failed");
	destroy_ctx(ctx);
	return rc;
}

int proto_segnatura_build(struct proto *p, const struct proto_row *row, struct sb_buf *out,
			  struct sb_err *err)
{
	xmlDocPtr doc = build_doc(p, row);
	xmlChar *mem = NULL;
	int size = 0, rc;

	rc = seal(p->seal, doc, proto_now(p), err);
	if (rc == 0) {
		xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
		if (!mem || size <= 0)
			rc = sb_err_set(err, SB_EINTERNAL, 0, "segnatura: serialisation failed");
	}
	/* Validate the bytes that will be stored, not the tree they came from. */
	if (rc == 0)
		rc = proto_seal_validate_xml(p->seal, (const char *)mem, (size_t)size, err);
	if (rc == 0 && sb_buf_add(out, mem, (size_t)size) < 0)
		rc = sb_err_set(err, SB_ETOOBIG, 0, "segnatura larger than %u bytes",
				SB_MAX_XML_SEGNATURA);
	xmlFree(mem);
	xmlFreeDoc(doc);
	return rc;
}

/* The first element child of n named name in namespace ns, or NULL. */
static xmlNodePtr child(xmlNodePtr n, const char *name, const char *ns)
{
	for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && xmlSecCheckNodeName(c, XC(name), XC(ns)))
			return c;
	return NULL;
}

/*
 * Find this signature's SignedProperties, register its Id so "#id"
 * resolves, and check the certificate digest it carries.
 */
static int xades_check(struct proto_seal *s, xmlDocPtr doc, xmlNodePtr sig, struct sb_err *err)
{
	xmlNodePtr sp = child(child(child(sig, "Object", DS_NS), "QualifyingProperties", XADES_NS),
			      "SignedProperties", XADES_NS);
	xmlNodePtr cd = child(child(child(child(sp, "SignedSignatureProperties", XADES_NS),
					    "SigningCertificateV2", XADES_NS), "Cert", XADES_NS),
			      "CertDigest", XADES_NS);
	xmlNodePtr dv = child(cd, "DigestValue", DS_NS);
	xmlAttrPtr id = sp ? xmlHasProp(sp, XC("Id")) : NULL;
	xmlChar *v;
	bool same;

	if (!sp || !id || !dv)
		return sb_err_set(err, SB_EINVAL, 0, "segnatura: the seal has no xades signed"
				  " properties");
	v = xmlNodeGetContent(dv);
	same = v && !strcmp((const char *)v, s->cert_digest);
	xmlFree(v);
	if (!same)
		return sb_err_set(err, SB_EINVAL, 0,
				  "segnatura: the seal names another certificate");
	v = xmlNodeGetContent((xmlNodePtr)id);
	if (!v || strcmp((const char *)v, PROPS_ID)) {
		xmlFree(v);
		return sb_err_set(err, SB_EINVAL, 0, "segnatura: unexpected signed properties id");
	}
	if (!xmlGetID(doc, v))
		xmlAddID(NULL, doc, v, id);
	xmlFree(v);
	return 0;
}

/* Exactly two references: URI="" (the whole document) and "#PROPS_ID" (xades). */
static int references_check(xmlSecDSigCtxPtr ctx, struct sb_err *err)
{
	bool whole = false, props = false;
	xmlSecSize n = xmlSecPtrListGetSize(&ctx->signedInfoReferences);

	for (xmlSecSize i = 0; i < n; i++) {
		xmlSecDSigReferenceCtxPtr r = xmlSecPtrListGetItem(&ctx->signedInfoReferences, i);
		const char *uri = r && r->uri ? (const char *)r->uri : "";

		if (!r || r->status != xmlSecDSigStatusSucceeded)
			return sb_err_set(err, SB_EINVAL, 0, "segnatura: a seal reference does not"
					  " verify");
		if (!*uri)
			whole = true;
		else if (!strcmp(uri, "#" PROPS_ID) && r->type &&
			 !strcmp((const char *)r->type, XADES_SP_TYPE))
			props = true;
	}
	if (n != 2 || !whole || !props)
		return sb_err_set(err, SB_EINVAL, 0, "segnatura: the seal must cover the whole"
				  " document and its xades properties");
	return 0;
}

int proto_segnatura_verify(struct proto *p, const char *xml, size_t len, struct sb_err *err)
{
	xmlDocPtr doc = parse(xml, len, err);
	xmlNodePtr root, sig = NULL;
	xmlSecDSigCtxPtr ctx = NULL;
	int rc = 0;

	if (!doc)
		return err ? err->code : SB_EINVAL;
	root = xmlDocGetRootElement(doc);
	for (xmlNodePtr n = root ? root->last : NULL; n; n = n->prev)
		if (n->type == XML_ELEMENT_NODE) {
			sig = n;
			break;
		}
	if (!sig || !xmlSecCheckNodeName(sig, xmlSecNodeSignature, xmlSecDSigNs)) {
		rc = sb_err_set(err, SB_EINVAL, 0, "segnatura: ds:Signature is not the last element"
				" of the root");
		goto cleanup;
	}
	rc = xades_check(p->seal, doc, sig, err);
	if (rc < 0)
		goto cleanup;
	ctx = xmlSecDSigCtxCreate(NULL);
	if (!ctx) {
		rc = sb_err_set(err, SB_EINTERNAL, 0, "segnatura: signature context failed");
		goto cleanup;
	}
	/* Same-document references only: no external fetches. */
	ctx->enabledReferenceUris = xmlSecTransformUriTypeEmpty |
				    xmlSecTransformUriTypeSameDocument;
	if (xmlSecDSigCtxVerify(lend_key(ctx, p->seal->verify_key), sig) < 0) {
		rc = sb_err_set(err, SB_EINVAL, 0, "segnatura: the seal cannot be checked");
		goto cleanup;
	}
	if (ctx->status != xmlSecDSigStatusSucceeded) {
		rc = sb_err_set(err, SB_EINVAL, 0, "segnatura: the seal does not verify (altered"
				" or sealed with another key)");
		goto cleanup;
	}
	rc = references_check(ctx, err);
	if (rc == 0)
		rc = validate_doc(p->seal, doc, err);
cleanup:
	destroy_ctx(ctx);
	xmlFreeDoc(doc);
	return rc;
}
