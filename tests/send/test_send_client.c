/*
 * The client's core against send-sim: configuration, authentication
 * (x-api-key, PDND voucher on and off), error replies (Problem JSON and
 * gateway), retry with backoff and Retry-After, faults survived, preload
 * batches and uploads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <unistd.h>

#include "send_fixture.h"
#include "send_int.h"   /* send_fetch_url: the module's own test */
#include "sb_crypto.h"

/* A JWT-shaped voucher with typ at+jwt, as PDND issues (signature not checked by the sim). */
#define VOUCHER "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln"

static int setup(void **state)
{
	return sf_group_setup(state, NULL);
}

/* Upload one small PDF with client c; the rc of the whole preload + PUT. */
static int upload_one(struct sf *f, struct send_client *c, struct sb_err *err)
{
	char *pdf = sf_file(f, "one.pdf", "%PDF-1.4\n% tiny test file\n%%EOF\n");
	struct send_upload u = { .path = pdf, .content_type = SEND_CT_PDF, .preload_idx = "one" };
	struct send_retry r = f->retry;
	int rc;

	r.max_attempts = 1;
	rc = send_files_upload(c, &u, 1, &r, err);
	free(pdf);
	return rc;
}

static void test_send_client__config_errors(void **state)
{
	struct sf *f = *state;
	struct send_client *c = (struct send_client *)0x1;
	struct sb_err err = SB_ERR_INIT;
	char *keyf = sb_xasprintf("%s/api.key", f->dir);

	/* pdnd_voucher on with no voucher source */
	assert_int_equal(sf_config(f, NULL, "pdnd_voucher = on\npurpose_id = p-1", &err), 0);
	assert_int_equal(send_client_new(&c, f->cfg, NULL, &err), SB_ECONFIG);
	assert_non_null(strstr(err.msg, "voucher"));
	assert_ptr_equal(c, (struct send_client *)0x1);
	/* a voucher provider but no purpose to ask it for */
	assert_int_equal(sf_config(f, NULL, "pdnd_voucher = on", &err), 0);
	{
		struct sb_voucher_provider vp = { NULL, NULL };

		assert_int_equal(send_client_new(&c, f->cfg, &vp, &err), SB_ECONFIG);
		assert_non_null(strstr(err.msg, "purpose_id"));
	}
	/* a version that is not "vN.N" */
	assert_int_equal(sf_config(f, NULL, "version_requests = latest", &err), 0);
	assert_int_equal(send_client_new(&c, f->cfg, NULL, &err), SB_ECONFIG);
	assert_non_null(strstr(err.msg, "version_requests"));
	/* A pinned version is the one in the path: SEND (here the sim) has no v9.9 price. */
	assert_int_equal(sf_config(f, NULL, "version_price = v9.9", &err), 0);
	assert_int_equal(send_client_new(&c, f->cfg, NULL, &err), 0);
	{
		struct send_price p;

		assert_int_equal(send_price_get(c, "302010000000000001", &p, &err), SB_ENOTFOUND);
		assert_non_null(strstr(err.msg, "/delivery/v9.9/price/"));
	}
	send_client_free(c);
	c = (struct send_client *)0x1;
	/* an API key file readable by others, after the configuration was loaded */
	assert_int_equal(sf_config(f, NULL, NULL, &err), 0);
	chmod(keyf, 0644);
	assert_int_equal(send_client_new(&c, f->cfg, NULL, &err), SB_ECONFIG);
	assert_true(err.msg[0] != '\0');
	assert_ptr_equal(c, (struct send_client *)0x1);
	chmod(keyf, 0600);
	free(keyf);
}

static void test_send_client__auth_api_key(void **state)
{
	struct sf *f = *state;
	struct send_client *c = NULL;
	struct sb_err err = SB_ERR_INIT;

	assert_int_equal(upload_one(f, f->c, &err), 0);
	/* A wrong key: the gateway's 403 {"message"}, permanent. */
	assert_int_equal(sf_config(f, "wrong-key", NULL, &err), 0);
	assert_int_equal(send_client_new(&c, f->cfg, NULL, &err), 0);
	assert_int_equal(upload_one(f, c, &err), SB_EREJECT);
	assert_int_equal(err.http, 403);
	assert_non_null(strstr(err.msg, "gateway"));
	assert_non_null(strstr(err.msg, "explicit deny"));
	assert_null(strstr(err.msg, "wrong-key"));   /* the key never reaches a message */
	send_client_free(c);
}

static void test_send_client__auth_pdnd_voucher(void **state)
{
	struct sf *f = *state;
	struct send_client *c = NULL;
	struct sb_err err = SB_ERR_INIT;
	char *vf = sf_file(f, "voucher", VOUCHER "\n");
	char *extra = sb_xasprintf("pdnd_voucher = on\nvoucher_file = %s", vf);

	/* The PDND key with the voucher: accepted; uploads carry no auth (ledger says so). */
	assert_int_equal(sf_config(f, "sim-send-pdnd-key", extra, &err), 0);
	assert_int_equal(send_client_new(&c, f->cfg, NULL, &err), 0);
	assert_int_equal(upload_one(f, c, &err), 0);
	assert_int_equal(sf_ledger(f, NULL, "authHeadersOnPresignedUrls"), 0);
	send_client_free(c);
	c = NULL;

	/* The PDND key without the voucher: denied. */
	assert_int_equal(sf_config(f, "sim-send-pdnd-key", NULL, &err), 0);
	assert_int_equal(send_client_new(&c, f->cfg, NULL, &err), 0);
	assert_int_equal(upload_one(f, c, &err), SB_EREJECT);
	assert_int_equal(err.http, 403);
	send_client_free(c);
	c = NULL;

	/* A key that needs no voucher, with one: denied too. */
	assert_int_equal(sf_config(f, "sim-send-key", extra, &err), 0);
	assert_int_equal(send_client_new(&c, f->cfg, NULL, &err), 0);
	assert_int_equal(upload_one(f, c, &err), SB_EREJECT);
	assert_int_equal(err.http, 403);
	send_client_free(c);
	c = NULL;

	/* A voucher file others can read is refused at use, with a message naming it. */
	chmod(vf, 0644);
	assert_int_equal(sf_config(f, "sim-send-pdnd-key", extra, &err), SB_ECONFIG);
	chmod(vf, 0600);
	free(extra);
	free(vf);
	assert_int_equal(sf_config(f, NULL, NULL, &err), 0);
}

static int fake_voucher(void *ctx, const char *purpose_id, struct sb_buf *out, struct sb_err *err)
{
	int *calls = ctx;

	(*calls)++;
	if (!purpose_id || strcmp(purpose_id, "purpose-42"))
		return sb_err_set(err, SB_ECONFIG, 0, "wrong purpose");
	return sb_buf_adds(out, VOUCHER);
}

static int failing_voucher(void *ctx, const char *purpose_id, struct sb_buf *out,
			   struct sb_err *err)
{
	(void)ctx;
	(void)purpose_id;
	(void)out;
	return sb_err_set(err, SB_ETEMP, 0, "token server unreachable");
}

static void test_send_client__voucher_provider_interface(void **state)
{
	struct sf *f = *state;
	struct send_client *c = NULL;
	struct sb_err err = SB_ERR_INIT;
	int calls = 0;
	struct sb_voucher_provider vp = { fake_voucher, &calls };
	struct sb_voucher_provider bad = { failing_voucher, NULL };

	assert_int_equal(sf_config(f, "sim-send-pdnd-key",
				   "pdnd_voucher = on\npurpose_id = purpose-42", &err), 0);
	assert_int_equal(send_client_new(&c, f->cfg, &vp, &err), 0);
	assert_int_equal(upload_one(f, c, &err), 0);
	assert_int_equal(calls, 1);   /* the preload only: never for the pre-signed PUT */
	send_client_free(c);
	c = NULL;
	assert_int_equal(send_client_new(&c, f->cfg, &bad, &err), 0);
	assert_int_equal(upload_one(f, c, &err), SB_ETEMP);
	assert_non_null(strstr(err.msg, "token server"));
	send_client_free(c);
	assert_int_equal(sf_config(f, NULL, NULL, &err), 0);
}

static void test_send_client__problem_json_parsed(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	char id[SEND_REQUEST_ID_MAX] = "untouched";
	struct sb_err err = SB_ERR_INIT;

	sf_notif_init(f, &x, NULL, NULL);
	assert_int_equal(sf_upload(f, &x, &err), 0);
	/* A valid tax id that is not the sim's PA: SEND's 400 names the element. */
	x.n.sender_tax_id = "00000000000";
	assert_int_equal(send_notification_create(f->c, &x.n, &f->retry,
						  id, NULL, &err), SB_EREJECT);
	assert_int_equal(err.code, SB_EREJECT);
	assert_int_equal(err.http, 400);
	assert_non_null(strstr(err.msg, "PN_GENERIC_INVALIDPARAMETER"));
	assert_non_null(strstr(err.msg, "senderTaxId"));
	assert_string_equal(id, "untouched");
	sf_notif_release(&x);
}

static void test_send_client__retry_delay(void **state)
{
	struct send_retry r = SEND_RETRY_INIT;
	struct sb_err err = SB_ERR_INIT;

	(void)state;
	r.base_ms = 400;
	r.max_ms = 5000;
	err.retry_after = 3;
	assert_int_equal(send_retry_delay_ms(&r, 1, &err), 3000);
	err.retry_after = 3600;   /* capped, never waits longer than max_ms */
	assert_int_equal(send_retry_delay_ms(&r, 1, &err), 5000);
	err.retry_after = -1;
	for (unsigned a = 1; a <= 6; a++) {
		long full = 400L << (a - 1) > 5000 ? 5000 : 400L << (a - 1);

		for (int k = 0; k < 20; k++) {
			long d = send_retry_delay_ms(&r, a, &err);

			assert_true(d >= full / 2 && d <= full);
		}
	}
}

static void test_send_client__fail_nth_survived(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct sb_err err = SB_ERR_INIT;

	for (unsigned nth = 1; nth <= 6; nth++) {
		char body[64];

		/*
		 * Each call of the flow in turn answers 503: the client retries
		 * and gets through.
		 */
		snprintf(body, sizeof(body), "{\"failNth\":%u}", nth);
		sf_faults(f, body);
		sf_notif_init(f, &x, NULL, NULL);
		f->nslept = 0;
		assert_int_equal(sf_submit(f, &x, &st, &err), 0);
		assert_int_equal(st.state, SEND_ACCEPTED);
		assert_true(f->nslept >= 1);
		assert_int_equal(sf_ledger(f, x.proto, "notifications"), 1);
		sf_notif_release(&x);
	}
	sf_faults(f, "{\"failNth\":0}");
}

static void test_send_client__429_retry_after_honoured(void **state)
{
	struct sf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *pdf = sf_file(f, "r.pdf", "%PDF-1.4\n%%EOF\n");
	struct send_upload u = { .path = pdf, .content_type = SEND_CT_PDF, .preload_idx = "r" };
	struct send_retry r = f->retry;

	sf_faults(f, "{\"pct429\":100,\"retryAfter\":2}");
	r.max_attempts = 3;
	f->nslept = 0;
	assert_int_equal(send_files_upload(f->c, &u, 1, &r, &err), SB_ETEMP);
	assert_int_equal(err.code, SB_ETEMP);
	assert_int_equal(err.http, 429);
	assert_int_equal(err.retry_after, 2);
	assert_int_equal(f->nslept, 2);
	assert_int_equal(f->slept[0], 2000);
	assert_int_equal(f->slept[1], 2000);

	/* 503 shares and dropped connections: temporary, retried with backoff. */
	sf_faults(f, "{\"pct429\":0,\"pct5xx\":100}");
	assert_int_equal(send_files_upload(f->c, &u, 1, &r, &err), SB_ETEMP);
	assert_int_equal(err.http, 503);
	sf_faults(f, "{\"pct5xx\":0,\"pctDrop\":100}");
	assert_int_equal(send_files_upload(f->c, &u, 1, &r, &err), SB_ETEMP);
	assert_true(err.cause != 0);   /* the CURLcode of the dropped connection */
	sf_faults(f, "{\"pctDrop\":50}");
	r.max_attempts = 12;
	assert_int_equal(send_files_upload(f->c, &u, 1, &r, &err), 0);
	sf_faults(f, "{\"pctDrop\":0}");
	free(pdf);
}

static void test_send_client__timeout_is_temporary(void **state)
{
	struct sf *f = *state;
	struct send_client *c = NULL;
	struct sb_err err = SB_ERR_INIT;

	/* SEND slower than [send] timeout_ms: the call gives up, as a temporary failure. */
	assert_int_equal(sf_config(f, NULL, "timeout_ms = 1000", &err), 0);
	assert_int_equal(send_client_new(&c, f->cfg, NULL, &err), 0);
	sf_faults(f, "{\"latencyMs\":1600}");
	assert_int_equal(upload_one(f, c, &err), SB_ETEMP);
	assert_int_equal(err.code, SB_ETEMP);
	assert_int_equal(err.cause, 28);   /* CURLE_OPERATION_TIMEDOUT */
	assert_true(err.msg[0] != '\0');
	sf_faults(f, "{\"latencyMs\":0}");
	send_client_free(c);
	assert_int_equal(sf_config(f, NULL, NULL, &err), 0);
}

static void test_send_client__preload_batches_of_15(void **state)
{
	struct sf *f = *state;
	struct send_upload u[17];
	char *paths[17], idx[17][16];
	struct sb_err err = SB_ERR_INIT;
	long before = sf_ledger(f, NULL, "files");
	long calls_before, calls_after;
	struct sb_buf b = SB_BUF_INIT(4096);

	for (int i = 0; i < 17; i++) {
		char name[32], content[64];

		snprintf(name, sizeof(name), "f%d.%s", i, i == 16 ? "json" : "pdf");
		snprintf(content, sizeof(content), i == 16 ? "{\"f24\":%d}" : "%%PDF-1.4\n%d\n", i);
		paths[i] = sf_file(f, name, content);
		snprintf(idx[i], sizeof(idx[i]), "i%d", i);
		memset(&u[i], 0, sizeof(u[i]));
		u[i].path = paths[i];
		u[i].content_type = i == 16 ? SEND_CT_JSON : SEND_CT_PDF;
		u[i].preload_idx = idx[i];
	}
	sf_raw(f, "GET", "/_sim/faults", NULL, NULL, &b, NULL);
	calls_before = strstr(b.buf, "\"calls\":") ?
		       strtol(strstr(b.buf, "\"calls\":") + 8, NULL, 10) : -1;
	assert_int_equal(send_files_upload(f->c, u, 17, &f->retry, &err), 0);
	sb_buf_reset(&b);
	sf_raw(f, "GET", "/_sim/faults", NULL, NULL, &b, NULL);
	calls_after = strtol(strstr(b.buf, "\"calls\":") + 8, NULL, 10);
	/* Two preload calls (15 + 2) and 17 uploads. */
	assert_int_equal(calls_after - calls_before, 2 + 17);
	assert_int_equal(sf_ledger(f, NULL, "files") - before, 17);
	assert_int_equal(strncmp(u[16].ref.key, "PN_F24_META", 11), 0);
	assert_string_equal(u[16].ref.content_type, SEND_CT_JSON);
	for (int i = 0; i < 17; i++)
		for (int j = 0; j < i; j++)
			assert_string_not_equal(u[i].ref.key, u[j].ref.key);
	for (int i = 0; i < 17; i++)
		free(paths[i]);
	sb_buf_release(&b);
}

static void test_send_client__upload_input_errors(void **state)
{
	struct sf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *pdf = sf_file(f, "e.pdf", "%PDF-1.4\n%%EOF\n");
	char *missing = sb_xasprintf("%s/missing.pdf", f->dir);
	struct send_upload u[2] = {
		{ .path = pdf, .content_type = SEND_CT_PDF, .preload_idx = "same" },
		{ .path = pdf, .content_type = SEND_CT_PDF, .preload_idx = "same" },
	};

	assert_int_equal(send_files_upload(f->c, u, 2, &f->retry, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "preloadIdx"));
	u[0].preload_idx = "bad idx!";
	assert_int_equal(send_files_upload(f->c, u, 1, &f->retry, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "preloadIdx"));
	u[0].preload_idx = "ok";
	u[0].content_type = "text/plain";
	assert_int_equal(send_files_upload(f->c, u, 1, &f->retry, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "content type"));
	u[0].content_type = SEND_CT_PDF;
	u[0].path = missing;
	assert_int_equal(send_files_upload(f->c, u, 1, &f->retry, &err), SB_ENOTFOUND);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(send_files_upload(f->c, u, 0, &f->retry, &err), SB_EINVAL);
	free(pdf);
	free(missing);
}

/*
 * A download lands whole under its name, written through one descriptor and
 * synced; a failed one leaves neither the file nor its .part.
 */
static void test_send_client__fetch_url_writes_whole_or_nothing(void **state)
{
	struct sf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *out = sb_xasprintf("%s/fetched.json", f->dir);
	char *part = sb_xasprintf("%s.part", out);
	char *ok_url = sb_xasprintf("%s/_sim/faults", f->sim.url);
	char *bad_url = sb_xasprintf("%s/_sim/no-such-file", f->sim.url);
	unsigned char md[SB_SHA256_LEN], file_md[SB_SHA256_LEN];
	char *bytes;
	uint64_t len = 0;
	size_t got = 0;

	assert_int_equal(send_fetch_url(f->c, ok_url, out, 65536, &len, md, &err), 0);
	bytes = th_read(out, &got);
	assert_non_null(bytes);
	assert_int_equal(got, len);
	assert_non_null(strstr(bytes, "\"calls\":"));
	assert_int_equal(access(part, F_OK), -1);
	/* The digest given back is the one of the bytes on disk. */
	sb_sha256(bytes, got, file_md);
	assert_memory_equal(md, file_md, sizeof(md));
	free(bytes);

	unlink(out);
	assert_true(send_fetch_url(f->c, bad_url, out, 65536, &len, NULL, &err) < 0);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(access(part, F_OK), -1);

	/* Larger than allowed: stopped, nothing kept. */
	sb_err_clear(&err);
	assert_int_equal(send_fetch_url(f->c, ok_url, out, 4, &len, NULL, &err), SB_ETOOBIG);
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(access(part, F_OK), -1);
	free(out);
	free(part);
	free(ok_url);
	free(bad_url);
}

/* Requests send-sim has answered so far. */
static long sim_calls(struct sf *f)
{
	struct sb_buf b = SB_BUF_INIT(4096);
	const char *p;
	long n;

	sf_raw(f, "GET", "/_sim/faults", NULL, NULL, &b, NULL);
	p = strstr(sb_buf_cstr(&b), "\"calls\":");
	assert_non_null(p);
	n = strtol(p + 8, NULL, 10);
	sb_buf_release(&b);
	return n;
}

/*
 * A hash known from intake is sent as it is, the file not hashed again; a
 * file whose size is not the hashed one is stopped before any request, and
 * one changed at the same size is refused by SEND's checksum check.
 */
static void test_send_client__upload_with_known_hash(void **state)
{
	struct sf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	const char *content = "%PDF-1.4\n% known hash\n%%EOF\n";
	char *pdf = sf_file(f, "k.pdf", content);
	unsigned char d[SB_SHA256_LEN];
	struct sb_buf hex = SB_BUF_INIT(80), b64 = SB_BUF_INIT(64);
	struct send_upload u = { .path = pdf, .content_type = SEND_CT_PDF, .preload_idx = "known" };
	long files = sf_ledger(f, NULL, "files"), calls;

	sb_sha256(content, strlen(content), d);
	sb_hex_encode(d, sizeof(d), &hex);
	sb_base64_encode(d, sizeof(d), &b64);
	u.known_sha256 = sb_buf_cstr(&hex);
	u.known_size = strlen(content);
	assert_int_equal(send_files_upload(f->c, &u, 1, &f->retry, &err), 0);
	assert_string_equal(u.ref.sha256, sb_buf_cstr(&b64));
	assert_int_equal(sf_ledger(f, NULL, "files") - files, 1);

	/* Another size than the hashed one: the file changed, nothing is sent. */
	calls = sim_calls(f);
	u.known_size = strlen(content) + 1;
	assert_int_equal(send_files_upload(f->c, &u, 1, &f->retry, &err), SB_EIO);
	assert_int_equal(err.code, SB_EIO);
	assert_non_null(strstr(err.msg, "changed"));
	assert_int_equal(sim_calls(f), calls);

	/* The same size, other bytes: SEND's storage recomputes the checksum and refuses them. */
	free(sf_file(f, "k.pdf", "%PDF-1.4\n% KNOWN HASH\n%%EOF\n"));
	u.known_size = strlen(content);
	sb_err_clear(&err);
	assert_int_equal(send_files_upload(f->c, &u, 1, &f->retry, &err), SB_EREJECT);
	assert_int_equal(err.code, SB_EREJECT);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(err.http, 400);

	/* A known hash that is not a hex digest: refused before any request. */
	calls = sim_calls(f);
	u.known_sha256 = "not-a-digest";
	assert_int_equal(send_files_upload(f->c, &u, 1, &f->retry, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "sha256"));
	assert_int_equal(sim_calls(f), calls);
	sb_buf_release(&hex);
	sb_buf_release(&b64);
	free(pdf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_client__config_errors),
		cmocka_unit_test(test_send_client__auth_api_key),
		cmocka_unit_test(test_send_client__auth_pdnd_voucher),
		cmocka_unit_test(test_send_client__voucher_provider_interface),
		cmocka_unit_test(test_send_client__problem_json_parsed),
		cmocka_unit_test(test_send_client__retry_delay),
		cmocka_unit_test(test_send_client__fail_nth_survived),
		cmocka_unit_test(test_send_client__429_retry_after_honoured),
		cmocka_unit_test(test_send_client__timeout_is_temporary),
		cmocka_unit_test(test_send_client__preload_batches_of_15),
		cmocka_unit_test(test_send_client__upload_input_errors),
		cmocka_unit_test(test_send_client__upload_with_known_hash),
		cmocka_unit_test(test_send_client__fetch_url_writes_whole_or_nothing),
	};

	sb_http_global_init();
	return cmocka_run_group_tests_name("send_client", tests, setup, sf_group_teardown);
}
