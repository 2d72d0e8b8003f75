/*
 * send-sim's PDND, ANPR and INAD stand-ins seen from outside with raw
 * HTTP: malformed token requests, calls without voucher or ModI headers,
 * wrong paths, the error shapes of each platform, and the --pdnd option.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_http.h"
#include "pdnd.h"
#include "th_pdnd.h"

static struct th_pdnd T;
static struct sb_http *H;

static int setup(void **state)
{
	(void)state;
	th_pdnd_start(&T, 600);
	return sb_http_new(&H, NULL, NULL) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	sb_http_free(H);
	th_pdnd_stop(&T);
	return 0;
}

static long call(const char *method, const char *path, const char *const *headers,
		 const char *body, struct sb_buf *reply)
{
	struct sb_http_resp r = { 0 };
	char *url = sb_xasprintf("%s%s", T.sim.url, path);
	long status;

	assert_int_equal(sb_http_do(H, &(struct sb_http_req){ .method = method, .url = url,
							      .headers = headers, .body = body,
							      .body_len = body ? strlen(body) : 0 },
				    &r, NULL), 0);
	status = r.status;
	sb_buf_reset(reply);
	sb_buf_adds(reply, sb_buf_cstr(&r.body));
	sb_http_resp_release(&r);
	free(url);
	return status;
}

static void test_sim_pdnd__token_requests_malformed(void **state)
{
	static const char *const json_h[] = { "Content-Type: application/json", NULL };
	static const char *const form_h[] = { "Content-Type: application/x-www-form-urlencoded",
					      NULL };
	struct sb_buf b = SB_BUF_INIT(1u << 20);

	(void)state;
	assert_int_equal(call("POST", "/pdnd/token.oauth2", json_h, "{\"client_assertion\":\"x\"}",
			      &b), 400);
	assert_non_null(strstr(b.buf, "015-9000"));
	assert_int_equal(call("POST", "/pdnd/token.oauth2", form_h, "client_assertion=a.b.c&"
			      "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
			      "client-assertion-type%3Ajwt-bearer", &b), 400);
	assert_non_null(strstr(b.buf, "015-9000"));            /* grant_type missing */
	assert_int_equal(call("POST", "/pdnd/token.oauth2", form_h, "client_assertion=%ZZ", &b),
			 400);
	assert_non_null(strstr(b.buf, "015-9000"));
	assert_int_equal(call("POST", "/pdnd/token.oauth2", form_h, "client_assertion=a.b.c&"
			      "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
			      "client-assertion-type%3Ajwt-bearer&grant_type=client_credentials",
			      &b), 400);
	assert_non_null(strstr(b.buf, "015-0008"));
	assert_non_null(strstr(b.buf, "correlationId"));
	assert_int_equal(call("GET", "/pdnd/token.oauth2", NULL, NULL, &b), 405);
	sb_buf_release(&b);
}

static void test_sim_pdnd__eservices_without_credentials(void **state)
{
	static const char *const bad_bearer[] = { "Authorization: Bearer a.b.c", NULL };
	struct sb_buf b = SB_BUF_INIT(1u << 20);
	struct pdnd_client_opts o;
	struct pdnd_client *c = NULL;
	struct pdnd_voucher v = { 0 };
	char *auth;

	(void)state;
	assert_int_equal(call("POST", TH_C030_PATH, NULL, "{}", &b), 404);
	assert_non_null(strstr(b.buf, "Unknown API Request"));
	assert_non_null(strstr(b.buf, "govway_id"));
	assert_int_equal(call("POST", TH_C001_PATH, bad_bearer, "{}", &b), 404);
	assert_int_equal(call("GET", TH_C030_PATH, NULL, NULL, &b), 404);
	assert_int_equal(call("GET", "/anpr/MinInternoPortaANPR-PDND/"
			      "C001-servizioNotifica/v1/status", NULL, NULL, &b), 200);
	/* A valid voucher without ModI headers: the gateway's interoperability error. */
	th_pdnd_opts(&T, &o);
	assert_int_equal(pdnd_client_new(&c, &o, NULL), 0);
	assert_int_equal(pdnd_voucher_request(c, TH_PURPOSE_C030, NULL, &v, NULL), 0);
	auth = sb_xasprintf("Authorization: Bearer %s", v.token);
	{
		const char *const h[] = { auth, "Content-Type: application/json", NULL };

		assert_int_equal(call("POST", TH_C030_PATH, h, "{}", &b), 400);
		assert_non_null(strstr(b.buf, "InteroperabilityInvalidRequest"));
		/* The same voucher is not INAD's. */
		assert_int_equal(call("GET", TH_INAD_PATH "/extract/RSSMRA80A01H501U?"
				      "practicalReference=x", h, NULL, &b), 401);
		assert_non_null(strstr(b.buf, "\"type\":\"UNAUTHORIZED\""));
		assert_non_null(strstr(b.buf, "\"status\":\"401\""));
	}
	free(auth);
	pdnd_voucher_release(&v);
	assert_int_equal(pdnd_voucher_request(c, TH_PURPOSE_INAD, NULL, &v, NULL), 0);
	auth = sb_xasprintf("Authorization: Bearer %s", v.token);
	{
		const char *const h[] = { auth, NULL };

		assert_int_equal(call("GET", TH_INAD_PATH "/extract/RSSMRA80A01H501U", h, NULL, &b),
				 400);
		assert_non_null(strstr(b.buf, "practicalReference"));
		assert_int_equal(call("GET", TH_INAD_PATH "/listDigitalAddress/state/nope", h, NULL,
				      &b), 404);
		assert_int_equal(call("GET", TH_INAD_PATH "/nothing", h, NULL, &b), 404);
		assert_int_equal(call("POST", TH_INAD_PATH "/listDigitalAddress", h,
				      "{\"codiciFiscali\":[]}", &b), 400);
		assert_non_null(strstr(b.buf, "BAD_REQUEST"));
	}
	free(auth);
	pdnd_voucher_release(&v);
	pdnd_client_free(c);
	sb_buf_release(&b);
}

static void test_sim_pdnd__option(void **state)
{
	struct th_sim plain;
	struct sb_buf b = SB_BUF_INIT(1u << 20), out = SB_BUF_INIT(1u << 20);
	char *bin = sb_xasprintf("%s/send-sim", th_build_dir()), *bad = sb_xasprintf("%s/bad.json",
										     T.dir);
	const char *argv[] = { bin, "--pdnd", bad, NULL };
	struct sb_http_resp r = { 0 };
	char *url;

	(void)state;
	/* Without --pdnd the stand-ins are off. */
	th_sim_start(&plain, NULL);
	url = sb_xasprintf("%s/pdnd/token.oauth2", plain.url);
	assert_int_equal(sb_http_do(H, &(struct sb_http_req){ .method = "POST", .url = url,
							      .body = "", .body_len = 0 },
				    &r, NULL), 0);
	assert_int_equal(r.status, 404);
	sb_http_resp_release(&r);
	th_sim_stop(&plain);
	/* A broken file stops send-sim with a message, before it listens. */
	th_write_str(bad, "{\"audience\":\"x\",\"clients\":[{\"clientId\":\"nope\"}]}", 0600);
	assert_int_equal(th_run(argv, &out, &b), 2);
	assert_non_null(strstr(b.buf, "clientId must be a uuid"));
	free(url);
	free(bin);
	free(bad);
	sb_buf_release(&b);
	sb_buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(test_sim_pdnd__token_requests_malformed),
		th_unit_test(test_sim_pdnd__eservices_without_credentials),
		th_unit_test(test_sim_pdnd__option),
	};

	return cmocka_run_group_tests_name("sim_pdnd", tests, setup, teardown);
}
