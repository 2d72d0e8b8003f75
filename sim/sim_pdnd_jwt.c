/*
 * Compact JWS for the PDND stand-ins: RS256 verification and signing, and
 * the RFC 7638 thumbprint, written against OpenSSL directly so that the
 * simulator checks the client's tokens by a path of its own.
 */
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sim_pdnd.h"

static int bn_param(const EVP_PKEY *k, const char *name, struct sb_buf *out)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	int n, rc;

	if (EVP_PKEY_get_bn_param(k, name, &bn) != 1)
		return -1;
	n = BN_bn2bin(bn, buf);
	BN_free(bn);
	if (n <= 0 || n > (int)sizeof(buf))
		return -1;
	rc = sb_base64url_encode(buf, (size_t)n, out);
	return rc;
}

int sim_jwk_thumbprint(const struct evp_pkey_st *k, char out[44])
{
	struct sb_buf jwk = SB_BUF_INIT(8192), t = SB_BUF_INIT(64);
	unsigned char d[32];
	int rc = -1;

	sb_buf_adds(&jwk, "{\"e\":\"");
	if (bn_param(k, OSSL_PKEY_PARAM_RSA_E, &jwk) < 0)
		goto done;
	sb_buf_adds(&jwk, "\",\"kty\":\"RSA\",\"n\":\"");
	if (bn_param(k, OSSL_PKEY_PARAM_RSA_N, &jwk) < 0)
		goto done;
	sb_buf_adds(&jwk, "\"}");
	sb_sha256(jwk.buf, jwk.len, d);
	sb_base64url_encode(d, sizeof(d), &t);
	snprintf(out, 44, "%s", t.buf);
	rc = 0;
done:
	sb_buf_release(&jwk);
	sb_buf_release(&t);
	return rc;
}

json_t *sim_jws_part(const char *jws, size_t len, int part)
{
	struct sb_buf raw = SB_BUF_INIT(1024u * 1024u);
	const char *p = jws, *end = jws + len, *stop;
	json_t *v = NULL;

	for (int i = 0; i < part; i++) {
		p = memchr(p, '.', (size_t)(end - p));
		if (!p)
			return NULL;
		p++;
	}
	stop = memchr(p, '.', (size_t)(end - p));
	if (!stop)
		return NULL;
	if (sb_base64url_decode(p, (size_t)(stop - p), &raw) == 0)
		v = json_loadb(raw.buf ? raw.buf : "", raw.len, JSON_REJECT_DUPLICATES, NULL);
	sb_buf_release(&raw);
	if (v && !json_is_object(v)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

bool sim_jws_verify(const struct evp_pkey_st *k, const char *jws, size_t len, char *why,
		    size_t why_size)
{
	struct sb_buf sig = SB_BUF_INIT(8192);
	const char *dot1, *dot2;
	EVP_MD_CTX *md;
	bool ok = false;

	dot1 = memchr(jws, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jws)) : NULL;
	if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jws))) {
		snprintf(why, why_size, "not a compact jws");
		return false;
	}
	if (sb_base64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - jws), &sig) < 0) {
		snprintf(why, why_size, "signature is not base64url");
		sb_buf_release(&sig);
		return false;
	}
	md = EVP_MD_CTX_new();
	/* OpenSSL takes a non-const key here but does not change it. */
	if (md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
				       (EVP_PKEY *)(uintptr_t)k) == 1 &&
	    EVP_DigestVerify(md, (const unsigned char *)sig.buf, sig.len,
			     (const unsigned char *)jws, (size_t)(dot2 - jws)) == 1)
		ok = true;
	else
		snprintf(why, why_size, "signature does not verify with the key of that kid");
	EVP_MD_CTX_free(md);
	sb_buf_release(&sig);
	return ok;
}

int sim_jws_sign(struct evp_pkey_st *k, const json_t *header, const json_t *claims,
		 struct sb_buf *out)
{
	char *h = json_dumps(header, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
	struct sb_buf input = SB_BUF_INIT(1024u * 1024u);
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = -1;

	if (!h || !c || !md)
		goto done;
	sb_base64url_encode(h, strlen(h), &input);
	sb_buf_addch(&input, '.');
	sb_base64url_encode(c, strlen(c), &input);
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input.buf, input.len) != 1)
		goto done;
	sb_buf_add(out, input.buf, input.len);
	sb_buf_addch(out, '.');
	rc = sb_base64url_encode(sig, siglen, out);
done:
	EVP_MD_CTX_free(md);
	free(h);
	free(c);
	sb_buf_release(&input);
	return rc;
}
