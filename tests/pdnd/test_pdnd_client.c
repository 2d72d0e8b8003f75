/*
 * pdnd/pdnd_client.c: kid, client assertion, token request against
 * send-sim's strict token server, the reasons of every refusal, and the
 * voucher cache (lifetime, renewal, concurrent callers).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_time.h"
#include "pdnd.h"
#include "th_pdnd.h"

static struct th_pdnd T;

static int setup(void **state)
{
	(void)state;
	th_pdnd_start(&T, 600);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_pdnd_stop(&T);
	return 0;
}

static struct pdnd_client *client(const char *key, const char *aud)
{
	struct pdnd_client_opts o;
	struct pdnd_client *c = NULL;
	struct sb_err err = SB_ERR_INIT;

	th_pdnd_opts(&T, &o);
	if (key)
		o.key_file = key;
	if (aud)
		o.audience = aud;
	assert_int_equal(pdnd_client_new(&c, &o, &err), 0);
	return c;
}

static json_t *part(const char *jws, int i)
{
	json_t *v = NULL;
	const char *p = jws, *end;
	struct sb_buf raw = SB_BUF_INIT(1u << 20);

	while (i-- > 0)
		p = strchr(p, '.') + 1;
	end = strchr(p, '.');
	assert_non_null(end);
	assert_int_equal(sb_base64url_decode(p, (size_t)(end - p), &raw), 0);
	v = json_loadb(raw.buf, raw.len, 0, NULL);
	assert_non_null(v);
	sb_buf_release(&raw);
	return v;
}

/* The kid computed from the modulus that the openssl command line prints. */
static void test_pdnd_client__kid_is_rfc7638_thumbprint(void **state)
{
	struct sb_buf mod = SB_BUF_INIT(8192), bin = SB_BUF_INIT(1024), jwk = SB_BUF_INIT(8192);
	struct sb_buf want = SB_BUF_INIT(64);
	struct sb_err err = SB_ERR_INIT;
	char kid[PDND_KID_SIZE], kid2[PDND_KID_SIZE], *cmd;
	unsigned char d[SB_SHA256_LEN];
	struct pdnd_client *c;

	(void)state;
	cmd = sb_xasprintf("openssl rsa -pubin -in '%s' -modulus -noout | sed 's/^Modulus=//' && "
			   "openssl rsa -pubin -in '%s' -text -noout | grep -q 'Exponent: 65537'",
			   T.pub, T.pub);
	assert_int_equal(th_sh(cmd, &mod), 0);
	free(cmd);
	mod.buf[strcspn(mod.buf, "\n")] = '\0';
	assert_int_equal(sb_hex_decode(mod.buf, strlen(mod.buf), &bin), 0);
	sb_buf_adds(&jwk, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"");
	sb_base64url_encode(bin.buf, bin.len, &jwk);
	sb_buf_adds(&jwk, "\"}");
	sb_sha256(jwk.buf, jwk.len, d);
	sb_base64url_encode(d, sizeof(d), &want);

	assert_int_equal(pdnd_kid_file(T.pub, kid, &err), 0);
	assert_string_equal(kid, want.buf);
	assert_int_equal(strlen(kid), PDND_KID_LEN);
	assert_int_equal(pdnd_kid_file(T.key, kid2, &err), 0);   /* the private half: same kid */
	assert_string_equal(kid2, kid);
	c = client(NULL, NULL);
	assert_string_equal(pdnd_client_kid(c), kid);
	pdnd_client_free(c);
	sb_buf_release(&mod);
	sb_buf_release(&bin);
	sb_buf_release(&jwk);
	sb_buf_release(&want);
}

static void test_pdnd_client__kid_file_errors(void **state)
{
	struct sb_err err = SB_ERR_INIT;
	char kid[PDND_KID_SIZE] = "untouched", *p = sb_xasprintf("%s/open.key", T.dir);
	char *cmd = sb_xasprintf("cp '%s' '%s' && chmod 644 '%s'", T.key, p, p);

	(void)state;
	assert_int_equal(pdnd_kid_file("/nonexistent/key.pem", kid, &err), SB_ENOTFOUND);
	assert_int_equal(err.code, SB_ENOTFOUND);
	assert_true(err.msg[0]);
	assert_int_equal(th_sh(cmd, NULL), 0);
	sb_err_clear(&err);
	assert_int_equal(pdnd_kid_file(p, kid, &err), SB_ECONFIG);
	assert_non_null(strstr(err.msg, "group or others"));
	assert_string_equal(kid, "untouched");
	free(cmd);
	free(p);
}

/* Signature checked by `openssl dgst -verify`, then every claim one by one. */
static void test_pdnd_client__assertion_verifies_with_openssl(void **state)
{
	struct sb_buf a = SB_BUF_INIT(1u << 20), a2 = SB_BUF_INIT(1u << 20),
		      sig = SB_BUF_INIT(1024);
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_client *c = client(NULL, NULL);
	char *in = sb_xasprintf("%s/input", T.dir), *sg = sb_xasprintf("%s/sig", T.dir), *cmd;
	const char *dot;
	json_t *h, *p, *p2;
	const char *k;
	json_t *v;
	int64_t now = sb_now();

	(void)state;
	assert_int_equal(pdnd_assertion_sign(c, TH_PURPOSE_C030, NULL, &a, &err), 0);
	dot = strrchr(a.buf, '.');
	th_write(in, a.buf, (size_t)(dot - a.buf), 0600);
	assert_int_equal(sb_base64url_decode(dot + 1, strlen(dot + 1), &sig), 0);
	th_write(sg, sig.buf, sig.len, 0600);
	cmd = sb_xasprintf("openssl dgst -sha256 -verify '%s' -signature '%s' '%s'", T.pub, sg, in);
	assert_int_equal(th_sh(cmd, NULL), 0);
	/* The same check fails on a changed byte: the verification is real. */
	th_write(in, "x", 1, 0600);
	assert_int_not_equal(th_sh(cmd, NULL), 0);

	h = part(a.buf, 0);
	assert_int_equal(json_object_size(h), 3);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
	assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), pdnd_client_kid(c));
	p = part(a.buf, 1);
	json_object_foreach(p, k, v) {
		static const char *const allowed = " iss sub aud purposeId jti iat exp ";
		char word[64];

		snprintf(word, sizeof(word), " %s ", k);
		assert_non_null(strstr(allowed, word));
	}
	assert_int_equal(json_object_size(p), 7);
	assert_string_equal(json_string_value(json_object_get(p, "iss")), TH_CLIENT_ID);
	assert_string_equal(json_string_value(json_object_get(p, "sub")), TH_CLIENT_ID);
	assert_string_equal(json_string_value(json_object_get(p, "aud")), TH_AUD);
	assert_string_equal(json_string_value(json_object_get(p, "purposeId")), TH_PURPOSE_C030);
	assert_int_equal(strlen(json_string_value(json_object_get(p, "jti"))), 36);
	assert_true(json_is_integer(json_object_get(p, "iat")));
	assert_true(json_is_integer(json_object_get(p, "exp")));
	assert_true(json_integer_value(json_object_get(p, "iat")) <= now);
	assert_true(json_integer_value(json_object_get(p, "exp")) > now);

	/* A second assertion has a fresh jti; with a digest it carries exactly alg and value. */
	assert_int_equal(pdnd_assertion_sign(c, TH_PURPOSE_C030,
					     "00112233445566778899aabbccddeeff"
					     "00112233445566778899aabbccddeeff",
					     &a2, &err), 0);
	p2 = part(a2.buf, 1);
	assert_string_not_equal(json_string_value(json_object_get(p2, "jti")),
				json_string_value(json_object_get(p, "jti")));
	assert_int_equal(json_object_size(p2), 8);
	assert_int_equal(json_object_size(json_object_get(p2, "digest")), 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(p2, "digest"),
							      "alg")),
			    "SHA256");
	json_decref(h);
	json_decref(p);
	json_decref(p2);
	sb_buf_release(&a);
	sb_buf_release(&a2);
	sb_buf_release(&sig);
	free(in);
	free(sg);
	free(cmd);
	pdnd_client_free(c);
}

static void test_pdnd_client__assertion_bad_arguments(void **state)
{
	struct sb_buf a = SB_BUF_INIT(1u << 20);
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_client *c = client(NULL, NULL);

	(void)state;
	assert_int_equal(pdnd_assertion_sign(c, "not-a-uuid", NULL, &a, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_non_null(strstr(err.msg, "purpose"));
	assert_int_equal(a.len, 0);
	sb_err_clear(&err);
	assert_int_equal(pdnd_assertion_sign(c, TH_PURPOSE_C030, "abc", &a, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "digest"));
	assert_int_equal(a.len, 0);
	sb_buf_release(&a);
	pdnd_client_free(c);
}

static void test_pdnd_client__new_refuses_bad_options(void **state)
{
	static const struct {
		const char *field, *value, *expect;
	} cases[] = {
		{ "audience", "https://" TH_AUD, "scheme" },
		{ "audience", "", "audience" },
		{ "client_id", "client-1", "client_id" },
		{ "kid", "short", "kid" },
		{ "token_url", NULL, "token_url" },
		{ "key_file", "/nonexistent.pem", "nonexistent" },
	};
	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		struct pdnd_client_opts o;
		struct pdnd_client *c = NULL;
		struct sb_err err = SB_ERR_INIT;
		int rc;

		th_pdnd_opts(&T, &o);
		if (!strcmp(cases[i].field, "audience"))
			o.audience = cases[i].value;
		else if (!strcmp(cases[i].field, "client_id"))
			o.client_id = cases[i].value;
		else if (!strcmp(cases[i].field, "kid"))
			o.kid = cases[i].value;
		else if (!strcmp(cases[i].field, "token_url"))
			o.token_url = cases[i].value;
		else
			o.key_file = cases[i].value;
		rc = pdnd_client_new(&c, &o, &err);
		assert_true(rc == SB_ECONFIG || rc == SB_ENOTFOUND);
		assert_int_equal(err.code, rc);
		assert_null(c);
		if (!strstr(err.msg, cases[i].expect))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].expect);
	}
}

static void test_pdnd_client__voucher_request_ok(void **state)
{
	struct pdnd_voucher v = { 0 };
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_client *c = client(NULL, NULL);
	json_t *h;

	(void)state;
	assert_int_equal(pdnd_voucher_request(c, TH_PURPOSE_C030, NULL, &v, &err), 0);
	assert_string_equal(v.aud, TH_AUD_C030);
	assert_string_equal(v.purpose_id, TH_PURPOSE_C030);
	assert_int_equal(v.expires_in, 600);
	assert_true(v.exp > sb_now() + 500);
	assert_string_equal(v.digest, "");
	h = part(v.token, 0);
	assert_string_equal(json_string_value(json_object_get(h, "typ")), "at+jwt");
	json_decref(h);
	assert_int_equal(pdnd_client_token_requests(c), 1);
	pdnd_voucher_release(&v);
	pdnd_client_free(c);
}

/* Sign any header and claims with a key: to send the token server what a buggy client would. */
static char *craft(const char *keyfile, const char *header, const char *claims)
{
	struct sb_pkey *k = NULL;
	struct sb_buf out = SB_BUF_INIT(1u << 20);
	struct sb_err err = SB_ERR_INIT;

	assert_int_equal(sb_pkey_load(&k, keyfile, &err), 0);
	assert_int_equal(sb_jwt_sign_rs256(k, header, claims, &out, &err), 0);
	sb_pkey_free(k);
	return sb_buf_detach(&out, NULL);
}

struct refusal {
	const char *name;
	const char *header;       /* %s: kid */
	const char *claims;       /* %s jti, %lld iat, %lld exp */
	int64_t iat_off, exp_off;
	bool other_key;           /* sign with the unregistered key */
	bool wrong_aud_client;    /* the client is configured for another environment */
	const char *sim_reason;   /* what the simulator logs */
	const char *client_says;  /* what the client's message must say */
};

#define STD_H "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}"
#define CLAIMS(extra, aud, sub) \
	"{\"iss\":\"" TH_CLIENT_ID "\",\"sub\":\"" sub "\",\"aud\":\"" aud "\",\"purposeId\":\"" \
	TH_PURPOSE_C030 "\",\"jti\":\"%s\",\"iat\":%lld,\"exp\":%lld" extra "}"
#define GOOD CLAIMS("", TH_AUD, TH_CLIENT_ID)

static const struct refusal refusals[] = {
	{ "wrong alg", "{\"alg\":\"RS512\",\"kid\":\"%s\",\"typ\":\"JWT\"}", GOOD, -5, 300, false,
	  false, "alg is not RS256", "alg is not RS256" },
	{ "header extra", "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWT\",\"x5c\":[]}", GOOD, -5,
	  300, false, false, "header member not allowed", "header member 'x5c'" },
	{ "aud with scheme", STD_H, CLAIMS("", "https://" TH_AUD, TH_CLIENT_ID), -5, 300, false,
	  false, "audience (has a scheme)", "aud has a scheme" },
	{ "aud other environment", STD_H,
	  CLAIMS("", "auth.interop.pagopa.it/client-assertion", TH_CLIENT_ID), -5, 300, false, true,
	  "audience (another environment)", "for another environment" },
	{ "sub not client_id", STD_H, CLAIMS("", TH_AUD, "11111111-2222-4333-8444-555555555555"),
	  -5, 300, false, false, "sub is not equal to client_id",
	  "sub is not equal to the client_id" },
	{ "expired", STD_H, GOOD, -600, -10, false, false, "assertion expired", "expired" },
	{ "future", STD_H, GOOD, 3600, 4000, false, false, "issued in the future",
	  "in the future" },
	{ "extra claim nbf", STD_H, CLAIMS(",\"nbf\":0", TH_AUD, TH_CLIENT_ID), -5, 300, false,
	  false, "extra claim 'nbf'", "extra claim 'nbf'" },
	{ "malformed digest", STD_H,
	  CLAIMS(",\"digest\":{\"alg\":\"SHA256\",\"value\":\"abc\"}", TH_AUD, TH_CLIENT_ID), -5,
	  300, false, false, "malformed digest", "digest must be" },
	{ "bad signature", STD_H, GOOD, -5, 300, true, false, "invalid signature",
	  "signature does not verify" },
};

static void expect_refusal(struct pdnd_client *c, const char *form_client, const char *assertion,
			   const char *sim_reason, const char *client_says)
{
	struct pdnd_voucher v = { 0 };
	struct sb_err err = SB_ERR_INIT;
	char *log;
	int rc;

	rc = pdnd_token_post(c, form_client, assertion, &v, &err);
	assert_int_equal(rc, SB_EREJECT);
	assert_int_equal(err.code, SB_EREJECT);
	assert_int_equal(err.http, 400);
	assert_null(v.token);
	assert_non_null(strstr(err.msg, "015-0008"));
	assert_non_null(strstr(err.msg, "correlationId="));
	assert_null(strstr(err.msg, "correlationId=none"));
	if (!strstr(err.msg, client_says))
		fail_msg("client message '%s' does not explain '%s'", err.msg, client_says);
	log = th_pdnd_sim_log(&T);
	if (!strstr(log, sim_reason))
		fail_msg("the simulator did not refuse for '%s'", sim_reason);
	free(log);
}

static void test_pdnd_client__every_refusal_is_explained(void **state)
{
	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(refusals); i++) {
		const struct refusal *r = &refusals[i];
		struct pdnd_client *c = client(NULL, r->wrong_aud_client ?
					       "auth.interop.pagopa.it/client-assertion" : NULL);
		char jti[37], *hdr, *cl, *a;
		int64_t now = sb_now();

		sb_uuid4(jti);
		hdr = sb_xasprintf(r->header, pdnd_client_kid(c));
		cl = sb_xasprintf(r->claims, jti, (long long)(now + r->iat_off),
				  (long long)(now + r->exp_off));
		a = craft(r->other_key ? T.key2 : T.key, hdr, cl);
		print_message("refusal: %s\n", r->name);
		expect_refusal(c, TH_CLIENT_ID, a, r->sim_reason, r->client_says);
		free(hdr);
		free(cl);
		free(a);
		pdnd_client_free(c);
	}
}

/* Refusals the client cannot see locally: its message lists them among the usual causes. */
static void test_pdnd_client__opaque_refusals_list_causes(void **state)
{
	struct pdnd_client *c = client(NULL, NULL), *other = client(T.key2, NULL);
	struct sb_buf a = SB_BUF_INIT(1u << 20);
	struct pdnd_voucher v = { 0 };
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	/* The kid of a key never registered on PDND. */
	assert_int_equal(pdnd_assertion_sign(other, TH_PURPOSE_C030, NULL, &a, &err), 0);
	expect_refusal(other, TH_CLIENT_ID, a.buf, "unknown kid", "unknown kid");
	/* A replayed assertion: accepted once, refused the second time. */
	sb_buf_reset(&a);
	assert_int_equal(pdnd_assertion_sign(c, TH_PURPOSE_C030, NULL, &a, &err), 0);
	assert_int_equal(pdnd_token_post(c, TH_CLIENT_ID, a.buf, &v, &err), 0);
	pdnd_voucher_release(&v);
	expect_refusal(c, TH_CLIENT_ID, a.buf, "jti already used", "reused jti");
	/* A purpose that is not the client's. */
	sb_buf_reset(&a);
	assert_int_equal(pdnd_assertion_sign(c, TH_PURPOSE_OTHER, NULL, &a, &err), 0);
	expect_refusal(c, TH_CLIENT_ID, a.buf, "purpose not found or not associated",
		       "purpose/agreement inactive");
	/* Through the normal path too: pdnd_voucher_request reports the same way. */
	sb_err_clear(&err);
	assert_int_equal(pdnd_voucher_request(other, TH_PURPOSE_C030, NULL, &v, &err), SB_EREJECT);
	assert_non_null(strstr(err.msg, "015-0008"));
	sb_buf_release(&a);
	pdnd_client_free(c);
	pdnd_client_free(other);
}

static void test_pdnd_client__server_errors_are_temporary(void **state)
{
	struct pdnd_client *c = client(NULL, NULL);
	struct pdnd_voucher v = { 0 };
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_client_opts o;
	struct pdnd_client *dead = NULL;

	(void)state;
	th_pdnd_faults(&T, "{\"failNth\":1}");
	assert_int_equal(pdnd_voucher_request(c, TH_PURPOSE_C030, NULL, &v, &err), SB_ETEMP);
	assert_int_equal(err.code, SB_ETEMP);
	assert_int_equal(err.http, 503);
	assert_true(err.msg[0]);
	assert_null(v.token);
	th_pdnd_faults(&T, "{\"failNth\":0,\"pct429\":100,\"retryAfter\":7}");
	sb_err_clear(&err);
	assert_int_equal(pdnd_voucher_request(c, TH_PURPOSE_C030, NULL, &v, &err), SB_ETEMP);
	assert_int_equal(err.http, 429);
	assert_int_equal(err.retry_after, 7);
	th_pdnd_faults(&T, "{\"pct429\":0}");
	/* Nobody listening: a network error is temporary too. */
	th_pdnd_opts(&T, &o);
	o.token_url = "http://127.0.0.1:1/pdnd/token.oauth2";
	assert_int_equal(pdnd_client_new(&dead, &o, &err), 0);
	sb_err_clear(&err);
	assert_int_equal(pdnd_voucher_request(dead, TH_PURPOSE_C030, NULL, &v, &err), SB_ETEMP);
	assert_true(err.msg[0]);
	pdnd_client_free(dead);
	pdnd_client_free(c);
}

static int64_t clock_offset;

static int64_t fake_clock(void)
{
	return sb_now() + __atomic_load_n(&clock_offset, __ATOMIC_SEQ_CST);
}

static struct pdnd_client *clocked_client(void)
{
	struct pdnd_client_opts o;
	struct pdnd_client *c = NULL;

	th_pdnd_opts(&T, &o);
	o.clock = fake_clock;
	assert_int_equal(pdnd_client_new(&c, &o, NULL), 0);
	return c;
}

static void test_pdnd_client__cache_one_request_then_renewal(void **state)
{
	struct pdnd_client *c;
	struct pdnd_voucher first = { 0 }, v = { 0 };
	struct sb_err err = SB_ERR_INIT;
	struct sb_voucher_provider prov;
	struct sb_buf tok = SB_BUF_INIT(1u << 20);

	(void)state;
	clock_offset = 0;
	c = clocked_client();
	assert_int_equal(pdnd_voucher_get(c, TH_PURPOSE_INAD, &first, &err), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(pdnd_voucher_get(c, TH_PURPOSE_INAD, &v, &err), 0);
		assert_string_equal(v.token, first.token);
		pdnd_voucher_release(&v);
	}
	/* The provider SEND uses is the same cache. */
	prov = pdnd_voucher_provider(c);
	assert_int_equal(prov.get(prov.ctx, TH_PURPOSE_INAD, &tok, &err), 0);
	assert_string_equal(tok.buf, first.token);
	assert_int_equal(pdnd_client_token_requests(c), 1);
	/* Another purpose has its own voucher. */
	assert_int_equal(pdnd_voucher_get(c, TH_PURPOSE_C001, &v, &err), 0);
	assert_string_equal(v.aud, TH_AUD_C001);
	pdnd_voucher_release(&v);
	assert_int_equal(pdnd_client_token_requests(c), 2);
	/* Just before the renewal window (exp - 120 s) the cached voucher is kept ... */
	clock_offset = first.exp - sb_now() - 125;
	assert_int_equal(pdnd_voucher_get(c, TH_PURPOSE_INAD, &v, &err), 0);
	assert_string_equal(v.token, first.token);
	pdnd_voucher_release(&v);
	assert_int_equal(pdnd_client_token_requests(c), 2);
	/* ... and inside it a new one is fetched, before the old one expires. */
	clock_offset = first.exp - sb_now() - 115;
	assert_int_equal(pdnd_voucher_get(c, TH_PURPOSE_INAD, &v, &err), 0);
	assert_string_not_equal(v.jti, first.jti);
	assert_int_equal(pdnd_client_token_requests(c), 3);
	pdnd_voucher_release(&v);
	/* A bad purpose never reaches PDND. */
	assert_int_equal(pdnd_voucher_get(c, "nope", &v, &err), SB_EINVAL);
	assert_true(err.msg[0]);
	assert_int_equal(pdnd_client_token_requests(c), 3);
	clock_offset = 0;
	pdnd_voucher_release(&first);
	sb_wipe(tok.buf, tok.alloc);
	sb_buf_release(&tok);
	pdnd_client_free(c);
}

struct worker {
	struct pdnd_client *c;
	const char *purpose;
	struct pdnd_voucher v;
	int rc;
	struct sb_err err;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	w->rc = pdnd_voucher_get(w->c, w->purpose, &w->v, &w->err);
	return NULL;
}

static void run_workers(struct pdnd_client *c, const char *purpose, struct worker *w, size_t n)
{
	pthread_t th[16];

	for (size_t i = 0; i < n; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].c = c;
		w[i].purpose = purpose;
		assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (size_t i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

static void test_pdnd_client__concurrent_callers_share_one_renewal(void **state)
{
	struct pdnd_client *c;
	struct worker w[12];

	(void)state;
	clock_offset = 0;
	c = clocked_client();
	/* Slow token server: every thread arrives while the first request is in flight. */
	th_pdnd_faults(&T, "{\"latencyMs\":400}");
	run_workers(c, TH_PURPOSE_INAD, w, SB_ARRAY_SIZE(w));
	for (size_t i = 0; i < SB_ARRAY_SIZE(w); i++) {
		assert_int_equal(w[i].rc, 0);
		assert_string_equal(w[i].v.token, w[0].v.token);
	}
	for (size_t i = 0; i < SB_ARRAY_SIZE(w); i++)
		pdnd_voucher_release(&w[i].v);
	assert_int_equal(pdnd_client_token_requests(c), 1);

	/* A failed renewal is shared too: one request, every caller gets its error. */
	clock_offset = 100000;
	th_pdnd_faults(&T, "{\"latencyMs\":400,\"failNth\":1}");
	run_workers(c, TH_PURPOSE_INAD, w, SB_ARRAY_SIZE(w));
	for (size_t i = 0; i < SB_ARRAY_SIZE(w); i++) {
		assert_int_equal(w[i].rc, SB_ETEMP);
		assert_int_equal(w[i].err.code, SB_ETEMP);
		assert_true(w[i].err.msg[0]);
		assert_null(w[i].v.token);
	}
	assert_int_equal(pdnd_client_token_requests(c), 2);
	th_pdnd_faults(&T, "{\"latencyMs\":0,\"failNth\":0}");
	clock_offset = 0;
	pdnd_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pdnd_client__kid_is_rfc7638_thumbprint),
		cmocka_unit_test(test_pdnd_client__kid_file_errors),
		cmocka_unit_test(test_pdnd_client__assertion_verifies_with_openssl),
		cmocka_unit_test(test_pdnd_client__assertion_bad_arguments),
		cmocka_unit_test(test_pdnd_client__new_refuses_bad_options),
		cmocka_unit_test(test_pdnd_client__voucher_request_ok),
		cmocka_unit_test(test_pdnd_client__every_refusal_is_explained),
		cmocka_unit_test(test_pdnd_client__opaque_refusals_list_causes),
		cmocka_unit_test(test_pdnd_client__server_errors_are_temporary),
		cmocka_unit_test(test_pdnd_client__cache_one_request_then_renewal),
		cmocka_unit_test(test_pdnd_client__concurrent_callers_share_one_renewal),
	};

	return cmocka_run_group_tests_name("pdnd_client", tests, setup, teardown);
}
