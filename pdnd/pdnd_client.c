/*
 * PDND client assertion, token request and voucher cache: see pdnd.h.
 * Spec: ../shared/specs/PDND-SUMMARY.md sections 3, 4 and 11.
 *
 * Design choices:
 * - Claims are built one by one with jansson, so the claim set is exactly
 *   what strict mode allows: no nbf, no client_id, nothing copied from a
 *   voucher.
 * - iat is set 5 s in the past: GovWay and PDND have refused tokens issued
 *   "in the future" by a clock a little ahead (section 11).
 * - PDND answers every refusal with the same 015-0008. The client explains
 *   it by looking at the assertion it sent as strict mode would
 *   (pdnd_assertion_diagnose) and by listing the usual causes, together
 *   with the correlationId that PDND support asks for.
 * - The cache holds one voucher per purpose. A renewal is done by one
 *   thread; the others wait on a condition variable and take its result
 *   (a voucher or its error), so a burst of calls makes one token request.
 */
#include <ctype.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "pdnd.h"
#include "pdnd_int.h"

#define ASSERTION_TYPE "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
/* Seconds iat is set back, for servers whose clock is a little behind ours. */
#define IAT_SKEW 5
#define MAX_PURPOSES 64

struct cache_entry {
	char purpose_id[64];
	struct pdnd_voucher v;      /* token NULL when empty */
	bool renewing;
	uint64_t gen;               /* bumped at the end of each renewal */
	int last_rc;
	struct sb_err last_err;
};

struct pdnd_client {
	char *token_url;
	char *client_id;
	char *audience;
	char *ca_file;
	char kid[PDND_KID_SIZE + 64];
	char key_kid[PDND_KID_SIZE];   /* thumbprint of the loaded key */
	struct sb_pkey *key;
	long timeout_ms;
	int64_t renew_before;
	int64_t ttl;
	int64_t (*clock)(void);

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cache_entry cache[MAX_PURPOSES];
	size_t ncache;
	uint64_t token_requests;      /* atomic: written by any thread */
};

bool pdnd_is_uuid(const char *s)
{
	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

static bool kid_well_formed(const char *kid)
{
	size_t n = strlen(kid);

	if (n != PDND_KID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)kid[i]) && kid[i] != '-' && kid[i] != '_')
			return false;
	return true;
}

static int bn_b64url(const EVP_PKEY *pk, const char *name, struct sb_buf *out)
{
	BIGNUM *bn = NULL;
	unsigned char *bin;
	int n, rc;

	if (EVP_PKEY_get_bn_param(pk, name, &bn) != 1)
		return SB_EINVAL;
	n = BN_num_bytes(bn);
	bin = sb_xmalloc((size_t)n + 1);
	BN_bn2bin(bn, bin);
	rc = sb_base64url_encode(bin, (size_t)n, out);
	free(bin);
	BN_free(bn);
	return rc;
}

static int kid_of_evp(const EVP_PKEY *pk, char out[PDND_KID_SIZE], struct sb_err *err)
{
	struct sb_buf jwk = SB_BUF_INIT(8192), kid = SB_BUF_INIT(PDND_KID_SIZE);
	unsigned char d[SB_SHA256_LEN];
	int rc = 0;

	if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
		rc = sb_err_set(err, SB_ECONFIG, 0, "the key is not an RSA key");
		goto cleanup;
	}
	/* RFC 7638: required members only, in lexicographic order, no white space. */
	if (sb_buf_adds(&jwk, "{\"e\":\"") < 0 || bn_b64url(pk, OSSL_PKEY_PARAM_RSA_E, &jwk) < 0 ||
	    sb_buf_adds(&jwk, "\",\"kty\":\"RSA\",\"n\":\"") < 0 ||
	    bn_b64url(pk, OSSL_PKEY_PARAM_RSA_N, &jwk) < 0 || sb_buf_adds(&jwk, "\"}") < 0) {
		rc = sb_err_set(err, SB_ECONFIG, 0, "cannot read the RSA public parameters");
		goto cleanup;
	}
	sb_sha256(jwk.buf, jwk.len, d);
	sb_base64url_encode(d, sizeof(d), &kid);
	memcpy(out, kid.buf, PDND_KID_SIZE);
cleanup:
	sb_buf_release(&jwk);
	sb_buf_release(&kid);
	return rc;
}

int pdnd_kid_compute(const struct sb_pkey *k, char out[PDND_KID_SIZE], struct sb_err *err)
{
	return kid_of_evp(sb_pkey_evp(k), out, err);
}

int pdnd_kid_file(const char *path, char out[PDND_KID_SIZE], struct sb_err *err)
{
	struct sb_pkey *k = NULL;
	EVP_PKEY *pub = NULL;
	FILE *f;
	int rc;

	f = fopen(path, "re");
	if (!f)
		return sb_err_set(err, SB_ENOTFOUND, errno, "cannot open '%s': %s", path,
				  strerror(errno));
	pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (pub) {
		if (EVP_PKEY_get_bits(pub) < 2048)
			rc = sb_err_set(err, SB_ECONFIG, 0,
					"key '%s' has fewer than 2048 bits: pdnd refuses it", path);
		else
			rc = kid_of_evp(pub, out, err);
		EVP_PKEY_free(pub);
		return rc;
	}
	/* Not a public key: it must be a private key, held as a secret. */
	rc = sb_pkey_load(&k, path, err);
	if (rc < 0)
		return rc;
	rc = pdnd_kid_compute(k, out, err);
	sb_pkey_free(k);
	return rc;
}

int pdnd_client_new(struct pdnd_client **out, const struct pdnd_client_opts *o,
		    struct sb_err *err)
{
	struct pdnd_client *c;
	struct sb_pkey *key = NULL;
	char thumb[PDND_KID_SIZE];
	int rc;

	if (!o->token_url || !*o->token_url)
		return sb_err_set(err, SB_ECONFIG, 0, "[pdnd] token_url is not set");
	if (!pdnd_is_uuid(o->client_id))
		return sb_err_set(err, SB_ECONFIG, 0, "[pdnd] client_id must be a uuid");
	if (!o->audience || !*o->audience)
		return sb_err_set(err, SB_ECONFIG, 0, "[pdnd] audience is not set");
	if (strstr(o->audience, "://"))
		return sb_err_set(err, SB_ECONFIG, 0,
				  "[pdnd] audience must not have a scheme "
				  "(pdnd refuses 'https://...'; "
				  "use e.g. 'auth.interop.pagopa.it/client-assertion')");
	if (o->kid && *o->kid && !kid_well_formed(o->kid))
		return sb_err_set(err, SB_ECONFIG, 0,
				  "[pdnd] kid must be 43 characters of [A-Za-z0-9_-]");
	if (!o->key_file)
		return sb_err_set(err, SB_ECONFIG, 0, "[pdnd] private_key_file is not set");
	rc = sb_pkey_load(&key, o->key_file, err);
	if (rc < 0)
		return rc;
	rc = pdnd_kid_compute(key, thumb, err);
	if (rc < 0) {
		sb_pkey_free(key);
		return rc;
	}
	c = sb_xcalloc(1, sizeof(*c));
	c->token_url = sb_xstrdup(o->token_url);
	c->client_id = sb_xstrdup(o->client_id);
	c->audience = sb_xstrdup(o->audience);
	c->ca_file = o->ca_file ? sb_xstrdup(o->ca_file) : NULL;
	c->key = key;
	memcpy(c->key_kid, thumb, sizeof(thumb));
	snprintf(c->kid, sizeof(c->kid), "%s", o->kid && *o->kid ? o->kid : thumb);
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	c->renew_before = o->renew_before >= 0 ? o->renew_before : 120;
	c->ttl = o->assertion_ttl > 0 ? o->assertion_ttl : 300;
	c->clock = o->clock ? o->clock : sb_now;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	*out = c;
	return 0;
}

int pdnd_client_from_cfg(struct pdnd_client **out, const struct sb_cfg *cfg, struct sb_err *err)
{
	struct pdnd_client_opts o = {
		.token_url = sb_cfg_str(cfg, "pdnd", "token_url"),
		.client_id = sb_cfg_str(cfg, "pdnd", "client_id"),
		.kid = sb_cfg_str(cfg, "pdnd", "kid"),
		.key_file = sb_cfg_str(cfg, "pdnd", "private_key_file"),
		.audience = sb_cfg_str(cfg, "pdnd", "audience"),
		.ca_file = sb_cfg_str(cfg, "pdnd", "ca_file"),
		.timeout_ms = (long)sb_cfg_int(cfg, "pdnd", "timeout_ms"),
		.renew_before = sb_cfg_int(cfg, "pdnd", "voucher_renew_before"),
		.assertion_ttl = sb_cfg_int(cfg, "pdnd", "assertion_ttl"),
	};

	return pdnd_client_new(out, &o, err);
}

void pdnd_client_free(struct pdnd_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->ncache; i++)
		pdnd_voucher_release(&c->cache[i].v);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	sb_pkey_free(c->key);
	free(c->token_url);
	free(c->client_id);
	free(c->audience);
	free(c->ca_file);
	free(c);
}

const char *pdnd_client_kid(const struct pdnd_client *c)
{
	return c->kid;
}

const char *pdnd_client_id(const struct pdnd_client *c)
{
	return c->client_id;
}

uint64_t pdnd_client_token_requests(const struct pdnd_client *c)
{
	return __atomic_load_n(&c->token_requests, __ATOMIC_RELAXED);
}

int pdnd_jws_sign(struct pdnd_client *c, json_t *claims, struct sb_buf *out, struct sb_err *err)
{
	struct sb_buf header = SB_BUF_INIT(1024), body = SB_BUF_INIT(SB_MAX_JSON_BODY);
	json_t *h = json_object();
	int rc;

	json_object_set_new(h, "alg", json_string("RS256"));
	json_object_set_new(h, "kid", json_string(c->kid));
	json_object_set_new(h, "typ", json_string("JWT"));
	rc = sb_json_dump(h, &header, err);
	if (rc == 0)
		rc = sb_json_dump(claims, &body, err);
	if (rc == 0)
		rc = sb_jwt_sign_rs256(c->key, header.buf, body.buf, out, err);
	json_decref(h);
	sb_buf_release(&header);
	sb_buf_release(&body);
	return rc;
}

/* iss, aud, jti, iat, exp: the claims every token send-bridge signs starts with. */
json_t *pdnd_claims_base(struct pdnd_client *c, const char *aud, bool with_sub)
{
	json_t *claims = json_object();
	char jti[37];
	int64_t now = sb_now();

	sb_uuid4(jti);
	json_object_set_new(claims, "iss", json_string(c->client_id));
	if (with_sub)
		json_object_set_new(claims, "sub", json_string(c->client_id));
	json_object_set_new(claims, "aud", json_string(aud));
	json_object_set_new(claims, "jti", json_string(jti));
	json_object_set_new(claims, "iat", json_integer(now - IAT_SKEW));
	json_object_set_new(claims, "exp", json_integer(now + c->ttl));
	return claims;
}

bool pdnd_is_hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

int pdnd_assertion_sign(struct pdnd_client *c, const char *purpose_id, const char *digest_hex,
			struct sb_buf *out, struct sb_err *err)
{
	json_t *claims;
	int rc;

	if (!pdnd_is_uuid(purpose_id))
		return sb_err_set(err, SB_EINVAL, 0, "purpose id must be a uuid");
	if (digest_hex && !pdnd_is_hex64(digest_hex))
		return sb_err_set(err, SB_EINVAL, 0, "assertion digest must be 64 hex digits");
	claims = pdnd_claims_base(c, c->audience, true);
	json_object_set_new(claims, "purposeId", json_string(purpose_id));
	if (digest_hex)
		json_object_set_new(claims, "digest",
				    json_pack("{s:s,s:s}", "alg", "SHA256", "value", digest_hex));
	rc = pdnd_jws_sign(c, claims, out, err);
	json_decref(claims);
	return rc;
}

int pdnd_jws_decode_part(const char *jws, int part, json_t **out, struct sb_err *err)
{
	struct sb_buf raw = SB_BUF_INIT(SB_MAX_JSON_BODY);
	const char *p = jws, *end;
	int rc;

	for (int i = 0; i < part; i++) {
		p = strchr(p, '.');
		if (!p)
			return sb_err_set(err, SB_EINVAL, 0, "not a compact jws");
		p++;
	}
	end = strchr(p, '.');
	if (!end && part < 2)
		return sb_err_set(err, SB_EINVAL, 0, "not a compact jws");
	if (!end)
		end = p + strlen(p);
	if (sb_base64url_decode(p, (size_t)(end - p), &raw) < 0) {
		sb_buf_release(&raw);
		return sb_err_set(err, SB_EINVAL, 0, "jws part %d is not base64url", part);
	}
	rc = sb_json_parse(raw.buf ? raw.buf : "", raw.len, SB_MAX_JSON_BODY, "jws", out, err);
	if (rc == 0 && !json_is_object(*out)) {
		json_decref(*out);
		rc = sb_err_set(err, SB_EINVAL, 0, "jws part %d is not a json object", part);
	}
	sb_wipe(raw.buf, raw.alloc);
	sb_buf_release(&raw);
	return rc;
}

/* RS256 check of a compact JWS against the client's own key (the public half). */
static bool signature_ok(const struct pdnd_client *c, const char *jws)
{
	struct sb_buf sig = SB_BUF_INIT(8192);
	const char *dot = strrchr(jws, '.');
	EVP_MD_CTX *md = NULL;
	bool ok = false;

	if (!dot || sb_base64url_decode(dot + 1, strlen(dot + 1), &sig) < 0)
		goto cleanup;
	md = EVP_MD_CTX_new();
	SB_ASSERT(md);
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, sb_pkey_evp(c->key)) == 1 &&
	     EVP_DigestVerify(md, (const unsigned char *)sig.buf, sig.len,
			      (const unsigned char *)jws, (size_t)(dot - jws)) == 1;
cleanup:
	EVP_MD_CTX_free(md);
	sb_buf_release(&sig);
	return ok;
}

static const char *const allowed_claims[] = { "iss", "sub", "aud", "purposeId", "jti", "iat",
					      "exp", "digest" };

void pdnd_assertion_diagnose(const struct pdnd_client *c, const char *assertion,
			     const char *client_id, char *out, size_t out_size)
{
	json_t *h = NULL, *p = NULL, *v;
	const char *key;
	int64_t now = sb_now();

	out[0] = '\0';
	if (pdnd_jws_decode_part(assertion, 0, &h, NULL) < 0 ||
	    pdnd_jws_decode_part(assertion, 1, &p, NULL) < 0) {
		snprintf(out, out_size, "the assertion is not a compact jws");
		goto cleanup;
	}
	json_object_foreach(h, key, v) {
		if (strcmp(key, "alg") && strcmp(key, "kid") && strcmp(key, "typ")) {
			snprintf(out, out_size, "header member '%s' is not allowed", key);
			goto cleanup;
		}
	}
	if (!json_is_string(json_object_get(h, "alg")) ||
	    strcmp(json_string_value(json_object_get(h, "alg")), "RS256")) {
		snprintf(out, out_size, "alg is not RS256 (the only algorithm pdnd accepts)");
		goto cleanup;
	}
	v = json_object_get(h, "kid");
	if (!json_is_string(v) || !kid_well_formed(json_string_value(v))) {
		snprintf(out, out_size, "kid is missing or not 43 characters of [A-Za-z0-9_-]");
		goto cleanup;
	}
	if (strcmp(json_string_value(v), c->key_kid)) {
		snprintf(out, out_size, "kid is not the thumbprint of the signing key (%s): "
			 "wrong key or kid", c->key_kid);
		goto cleanup;
	}
	if (!signature_ok(c, assertion)) {
		snprintf(out, out_size, "the signature does not verify with the configured key");
		goto cleanup;
	}
	json_object_foreach(p, key, v) {
		bool ok = false;

		for (size_t i = 0; i < SB_ARRAY_SIZE(allowed_claims); i++)
			ok = ok || !strcmp(key, allowed_claims[i]);
		if (!ok) {
			snprintf(out, out_size, "extra claim '%s' (strict mode allows only "
				 "iss, sub, aud, purposeId, jti, iat, exp, digest)", key);
			goto cleanup;
		}
	}
	v = json_object_get(p, "aud");
	if (!json_is_string(v)) {
		snprintf(out, out_size, "aud is missing");
		goto cleanup;
	}
	if (strstr(json_string_value(v), "://")) {
		snprintf(out, out_size, "aud has a scheme: pdnd wants it without 'https://'");
		goto cleanup;
	}
	if (strcmp(json_string_value(v), c->audience)) {
		snprintf(out, out_size, "aud is not the configured audience '%s'", c->audience);
		goto cleanup;
	}
	v = json_object_get(p, "sub");
	if (!json_is_string(v) || !client_id || strcmp(json_string_value(v), client_id)) {
		snprintf(out, out_size, "sub is not equal to the client_id sent with it");
		goto cleanup;
	}
	if (!json_is_string(json_object_get(p, "iss"))) {
		snprintf(out, out_size, "iss is missing");
		goto cleanup;
	}
	if (!pdnd_is_uuid(json_string_value(json_object_get(p, "purposeId")))) {
		snprintf(out, out_size, "purposeId is missing or not a uuid");
		goto cleanup;
	}
	if (!json_is_string(json_object_get(p, "jti"))) {
		snprintf(out, out_size, "jti is missing");
		goto cleanup;
	}
	v = json_object_get(p, "exp");
	if (!json_is_integer(v) || json_integer_value(v) <= now) {
		snprintf(out, out_size, "the assertion is expired (exp is past or missing)");
		goto cleanup;
	}
	v = json_object_get(p, "iat");
	if (!json_is_integer(v) || json_integer_value(v) > now + 60) {
		snprintf(out, out_size, "iat is missing or in the future (check the clock)");
		goto cleanup;
	}
	v = json_object_get(p, "digest");
	if (v && (!json_is_object(v) || json_object_size(v) != 2 ||
		  !json_is_string(json_object_get(v, "alg")) ||
		  strcmp(json_string_value(json_object_get(v, "alg")), "SHA256") ||
		  !pdnd_is_hex64(json_string_value(json_object_get(v, "value"))))) {
		snprintf(out, out_size, "digest must be {\"alg\":\"SHA256\",\"value\":<64 hex>}");
		goto cleanup;
	}
cleanup:
	json_decref(h);
	json_decref(p);
}

void pdnd_voucher_release(struct pdnd_voucher *v)
{
	if (!v)
		return;
	sb_secret_free(v->token);
	memset(v, 0, sizeof(*v));
}

void pdnd_voucher_copy(struct pdnd_voucher *dst, const struct pdnd_voucher *src)
{
	*dst = *src;
	dst->token = src->token ? sb_xstrdup(src->token) : NULL;
}

static void copy_str(char *dst, size_t size, const json_t *v)
{
	snprintf(dst, size, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* Read the claims send-bridge needs from a voucher: it is otherwise opaque. */
static int voucher_parse(const char *token, int64_t expires_in, struct pdnd_voucher *out,
			 struct sb_err *err)
{
	json_t *p = NULL, *aud;
	int rc;

	rc = pdnd_jws_decode_part(token, 1, &p, err);
	if (rc < 0)
		return sb_err_prefix(err, "pdnd voucher");
	memset(out, 0, sizeof(*out));
	aud = json_object_get(p, "aud");
	if (json_is_array(aud))
		aud = json_array_get(aud, 0);
	copy_str(out->aud, sizeof(out->aud), aud);
	copy_str(out->purpose_id, sizeof(out->purpose_id), json_object_get(p, "purposeId"));
	copy_str(out->jti, sizeof(out->jti), json_object_get(p, "jti"));
	copy_str(out->digest, sizeof(out->digest),
		 json_object_get(json_object_get(p, "digest"), "value"));
	out->iat = json_integer_value(json_object_get(p, "iat"));
	out->exp = json_integer_value(json_object_get(p, "exp"));
	out->expires_in = expires_in;
	/* expires_in is what PDND promises; trust the shorter of the two if they disagree. */
	if (!out->exp || out->exp > sb_now() + expires_in)
		out->exp = sb_now() + expires_in;
	out->token = sb_xstrdup(token);
	json_decref(p);
	return 0;
}

/* Kept short: it must fit in err.msg after the code and the correlationId. */
static const char usual_causes[] =
	"causes: aud with scheme or for another environment, sub!=client_id, unknown kid, "
	"expired/future, reused jti, extra claim, bad digest, purpose/agreement inactive";

static int token_error(struct pdnd_client *c, const char *form_client_id, const char *assertion,
		       const struct sb_http_resp *resp, struct sb_err *err)
{
	json_t *body = NULL, *e0;
	char code[32] = "", corr[128] = "", diag[200], q[160];
	int64_t secs;
	int rc = sb_http_status_class(resp->status);

	if (sb_json_parse(resp->body.buf ? resp->body.buf : "", resp->body.len, SB_MAX_JSON_BODY,
			  "pdnd reply", &body, NULL) == 0) {
		e0 = json_array_get(json_object_get(body, "errors"), 0);
		copy_str(code, sizeof(code), json_object_get(e0, "code"));
		copy_str(corr, sizeof(corr), json_object_get(body, "correlationId"));
	}
	json_decref(body);
	sb_log_quote(corr, strlen(corr), q, sizeof(q));
	if (rc == SB_ETEMP) {
		sb_err_set(err, SB_ETEMP, 0, "pdnd token endpoint answered %ld%s%s%s%s",
			   resp->status, code[0] ? " " : "", code, corr[0] ? " correlationId=" : "",
			   q);
		if (err && sb_http_retry_after(sb_http_resp_header(resp, "Retry-After"), sb_now(),
					       &secs) == 0)
			err->retry_after = (long)secs;
		if (err)
			err->http = (int)resp->status;
		return SB_ETEMP;
	}
	pdnd_assertion_diagnose(c, assertion, form_client_id, diag, sizeof(diag));
	sb_err_set(err, SB_EREJECT, 0,
		   "pdnd refused token (%ld %s, correlationId=%s): %s%s%s", resp->status,
		   code[0] ? code : "no code", q[0] ? q : "none", diag[0] ? "found: " : "", diag,
		   diag[0] ? "" : usual_causes);
	if (err)
		err->http = (int)resp->status;
	return SB_EREJECT;
}

void pdnd_url_escape(struct sb_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (isalnum(ch) || strchr("-._~", ch))
			sb_buf_addch(b, (char)ch);
		else
			sb_buf_addf(b, "%%%02X", ch);
	}
}

int pdnd_token_post(struct pdnd_client *c, const char *form_client_id, const char *assertion,
		    struct pdnd_voucher *out, struct sb_err *err)
{
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded", "Accept: application/json", NULL
	};
	struct sb_http_opts ho = { .timeout_ms = c->timeout_ms, .ca_file = c->ca_file,
				   .platform = "pdnd" };
	struct sb_buf form = SB_BUF_INIT(SB_MAX_JSON_BODY);
	struct sb_http_resp resp = { 0 };
	struct sb_http *h = NULL;
	json_t *reply = NULL;
	const char *tok = NULL, *type = NULL;
	int64_t expires_in = 0;
	int rc;

	sb_buf_init(&resp.body, SB_MAX_JSON_BODY);
	if (form_client_id) {
		sb_buf_adds(&form, "client_id=");
		pdnd_url_escape(&form, form_client_id);
		sb_buf_addch(&form, '&');
	}
	sb_buf_adds(&form, "client_assertion=");
	pdnd_url_escape(&form, assertion);
	rc = sb_buf_adds(&form, "&client_assertion_type=" ASSERTION_TYPE
			 "&grant_type=client_credentials");
	if (rc < 0) {
		rc = sb_err_set(err, SB_ETOOBIG, 0, "token request too large");
		goto cleanup;
	}
	rc = sb_http_new(&h, &ho, err);
	if (rc < 0)
		goto cleanup;
	__atomic_fetch_add(&c->token_requests, 1, __ATOMIC_RELAXED);
	rc = sb_http_do(h, &(struct sb_http_req){ .method = "POST", .url = c->token_url,
						  .headers = headers, .body = form.buf,
						  .body_len = form.len },
			&resp, err);
	if (rc < 0) {
		sb_err_prefix(err, "pdnd token request");
		goto cleanup;
	}
	if (resp.status != 200) {
		rc = token_error(c, form_client_id, assertion, &resp, err);
		sb_log(SB_LOG_WARN, "pdnd", "token request refused: %s", err ? err->msg : "");
		goto cleanup;
	}
	rc = sb_json_parse(resp.body.buf ? resp.body.buf : "", resp.body.len, SB_MAX_JSON_BODY,
			   "pdnd token reply", &reply, err);
	if (rc < 0)
		goto cleanup;
	if (sb_json_get_str(reply, "access_token", &tok, err) < 0 || !tok || !*tok ||
	    sb_json_get_str(reply, "token_type", &type, err) < 0 || !type ||
	    strcmp(type, "Bearer") ||
	    sb_json_get_int(reply, "expires_in", 1, 86400 * 30, &expires_in, err) < 0) {
		rc = sb_err_set(err, SB_EINVAL, 0, "pdnd token reply: missing or invalid "
				"access_token, token_type Bearer or expires_in");
		goto cleanup;
	}
	rc = voucher_parse(tok, expires_in, out, err);
cleanup:
	json_decref(reply);
	sb_http_free(h);
	sb_wipe(form.buf, form.alloc);
	sb_buf_release(&form);
	if (resp.body.buf)
		sb_wipe(resp.body.buf, resp.body.alloc);
	sb_http_resp_release(&resp);
	return rc;
}

int pdnd_voucher_request(struct pdnd_client *c, const char *purpose_id, const char *digest_hex,
			 struct pdnd_voucher *out, struct sb_err *err)
{
	struct sb_buf a = SB_BUF_INIT(SB_MAX_JSON_BODY);
	int rc;

	rc = pdnd_assertion_sign(c, purpose_id, digest_hex, &a, err);
	if (rc == 0)
		rc = pdnd_token_post(c, c->client_id, a.buf, out, err);
	sb_wipe(a.buf, a.alloc);
	sb_buf_release(&a);
	return rc;
}

/* Call with c->lock held. */
static struct cache_entry *cache_find(struct pdnd_client *c, const char *purpose_id, bool add)
{
	for (size_t i = 0; i < c->ncache; i++)
		if (!strcmp(c->cache[i].purpose_id, purpose_id))
			return &c->cache[i];
	if (!add || c->ncache >= MAX_PURPOSES)
		return NULL;
	snprintf(c->cache[c->ncache].purpose_id, sizeof(c->cache[0].purpose_id), "%s", purpose_id);
	return &c->cache[c->ncache++];
}

int pdnd_voucher_get(struct pdnd_client *c, const char *purpose_id, struct pdnd_voucher *out,
		     struct sb_err *err)
{
	struct pdnd_voucher fresh = { 0 };
	struct sb_err ferr = SB_ERR_INIT;
	struct cache_entry *e;
	uint64_t gen;
	int rc;

	if (!pdnd_is_uuid(purpose_id))
		return sb_err_set(err, SB_EINVAL, 0, "purpose id must be a uuid");
	pthread_mutex_lock(&c->lock);
	e = cache_find(c, purpose_id, true);
	if (!e) {
		pthread_mutex_unlock(&c->lock);
		return sb_err_set(err, SB_ECONFIG, 0, "more than %d pdnd purposes in use",
				  MAX_PURPOSES);
	}
	for (;;) {
		if (e->v.token && c->clock() < e->v.exp - c->renew_before) {
			pdnd_voucher_copy(out, &e->v);
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (!e->renewing)
			break;
		/* Another thread is renewing: take its result, voucher or error. */
		gen = e->gen;

		while (e->renewing && e->gen == gen)
			pthread_cond_wait(&c->cond, &c->lock);
		if (e->last_rc < 0) {
			rc = e->last_rc;
			if (err)
				*err = e->last_err;
			pthread_mutex_unlock(&c->lock);
			return rc;
		}
	}
	e->renewing = true;
	pthread_mutex_unlock(&c->lock);

	rc = pdnd_voucher_request(c, purpose_id, NULL, &fresh, &ferr);

	pthread_mutex_lock(&c->lock);
	e->renewing = false;
	e->gen++;
	e->last_rc = rc;
	e->last_err = ferr;
	if (rc == 0) {
		pdnd_voucher_release(&e->v);
		e->v = fresh;
		pdnd_voucher_copy(out, &e->v);
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (rc < 0 && err)
		*err = ferr;
	return rc;
}

void pdnd_voucher_forget(struct pdnd_client *c, const char *purpose_id)
{
	struct cache_entry *e;

	pthread_mutex_lock(&c->lock);
	e = cache_find(c, purpose_id, false);
	if (e && !e->renewing)
		pdnd_voucher_release(&e->v);
	pthread_mutex_unlock(&c->lock);
}

static int provider_get(void *ctx, const char *purpose_id, struct sb_buf *out, struct sb_err *err)
{
	struct pdnd_voucher v = { 0 };
	int rc;

	rc = pdnd_voucher_get(ctx, purpose_id, &v, err);
	if (rc == 0 && sb_buf_adds(out, v.token) < 0)
		rc = sb_err_set(err, SB_ETOOBIG, 0, "voucher larger than the caller's buffer");
	pdnd_voucher_release(&v);
	return rc;
}

struct sb_voucher_provider pdnd_voucher_provider(struct pdnd_client *c)
{
	struct sb_voucher_provider p = { provider_get, c };

	return p;
}
