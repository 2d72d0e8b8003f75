/*
 * send-sim's SEND, checked with raw HTTP (not through send/, whose own
 * checks would stop these requests before they left): every refusal that
 * SEND makes, with its status code and error shape, the S3-like upload
 * checks, the gateway's authentication rules and the asynchronous refusals.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sb_crypto.h"
#include "send_fixture.h"

static const char *const sim_args[] = { "--send-accept-ms", "50", NULL };
static const char *const key_hdrs[] = { "x-api-key: sim-send-key",
					"Content-Type: application/json", NULL };

static const char base_body[] =
	"{\"idempotenceToken\":\"t1\",\"paProtocolNumber\":\"P-BASE\",\"subject\":\"Verbale\","
	"\"abstract\":\"Sosta\",\"recipients\":[{\"recipientType\":\"PF\","
	"\"taxId\":\"RSSMRA80A01H501U\",\"denomination\":\"Mario Rossi\","
	"\"physicalAddress\":{\"address\":\"VIA ROMA 1\",\"zip\":\"00100\","
	"\"municipality\":\"ROMA\",\"province\":\"RM\"},\"payments\":[{\"pagoPa\":{"
	"\"noticeCode\":\"302010000000000001\",\"creditorTaxId\":\"80012345676\","
	"\"applyCost\":true}}]}],\"documents\":[{\"digests\":{\"sha256\":"
	"\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"},\"contentType\":\"application/pdf\","
	"\"ref\":{\"key\":\"PN_NOTIFICATION_ATTACHMENTS-abc.pdf\",\"versionToken\":\"v1\"}}],"
	"\"notificationFeePolicy\":\"DELIVERY_MODE\",\"physicalCommunicationType\":"
	"\"REGISTERED_LETTER_890\",\"senderDenomination\":\"Comune di Esempio\","
	"\"senderTaxId\":\"80012345676\",\"taxonomyCode\":\"010101P\",\"paFee\":100,\"vat\":22,"
	"\"pagoPaIntMode\":\"SYNC\"}";

static int setup(void **state)
{
	return sf_group_setup(state, sim_args);
}

/* Walk "a.b[1].c" in root, creating nothing; set (v != NULL, stolen) or delete the last member. */
static void set_path(json_t *root, const char *path, json_t *v)
{
	char buf[256], *p = buf, *dot;
	json_t *cur = root;

	snprintf(buf, sizeof(buf), "%s", path);
	for (;;) {
		char *br;
		size_t idx = SIZE_MAX;

		dot = strchr(p, '.');
		if (dot)
			*dot = '\0';
		br = strchr(p, '[');
		if (br) {
			*br = '\0';
			idx = strtoul(br + 1, NULL, 10);
		}
		if (!dot && idx == SIZE_MAX) {
			if (v)
				json_object_set_new(cur, p, v);
			else
				json_object_del(cur, p);
			return;
		}
		cur = json_object_get(cur, p);
		if (idx != SIZE_MAX) {
			if (!dot) {
				if (v && idx == json_array_size(cur))
					json_array_append_new(cur, v);
				else if (v)
					assert_int_equal(json_array_set_new(cur, idx, v), 0);
				return;
			}
			cur = json_array_get(cur, idx);
		}
		assert_non_null(cur);
		p = dot + 1;
	}
}

struct mutation {
	const char *path;
	const char *value;      /* JSON text; NULL deletes */
};

struct refusal_case {
	const char *name;
	struct mutation m[3];
	unsigned status;
	const char *element;    /* substring of some errors[].element */
	const char *code;       /* substring of that error's code */
};

static const struct refusal_case refusals[] = {
	{ "null optional", { { "abstract", "null" } }, 400, "abstract", "INVALIDPARAMETER" },
	{ "empty enum", { { "pagoPaIntMode", "\"\"" } }, 400, "pagoPaIntMode", "INVALIDPARAMETER" },
	{ "missing subject", { { "subject", NULL } }, 400, "subject", "REQUIRED" },
	{ "long subject", { { "subject", "\"" "0123456789012345678901234567890123456789"
			      "0123456789012345678901234567890123456789012345678901234567890"
			      "12345678901234567890123456789012345\"" } }, 400, "subject",
	  "MAX_LENGTH" },
	{ "no province in Italy", { { "recipients[0].physicalAddress.province", NULL } }, 400,
	  "recipients[0]", "INVALIDPARAMETER" },
	{ "no physical address", { { "recipients[0].physicalAddress", NULL } }, 400,
	  "recipients[0]", "INVALIDPARAMETER" },
	{ "PG tax id not numeric", { { "recipients[0].recipientType", "\"PG\"" } }, 400,
	  "recipients[0]", "INVALIDPARAMETER" },
	{ "duplicate tax ids", { { "recipients[1]", "{\"recipientType\":\"PF\",\"taxId\":"
				   "\"RSSMRA80A01H501U\",\"denomination\":\"Altro\","
				   "\"physicalAddress\":{\"address\":\"VIA PO 2\","
				   "\"zip\":\"00100\",\"municipality\":\"ROMA\","
				   "\"province\":\"RM\"}}" } }, 400,
	  "recipients[1]", "INVALIDPARAMETER" },
	{ "notice code repeated", { { "recipients[0].payments[1]", "{\"pagoPa\":{\"noticeCode\":"
				      "\"302010000000000001\",\"creditorTaxId\":\"80012345676\","
				      "\"applyCost\":true}}" } }, 400,
	  "recipients[0].payments[1]", "INVALIDPARAMETER" },
	{ "delivery mode without paFee", { { "paFee", NULL } }, 400, "notificationFeePolicy",
	  "INVALIDPARAMETER" },
	{ "delivery mode without applyCost", { { "recipients[0].payments[0].pagoPa.applyCost",
						 "false" } }, 400, "notificationFeePolicy",
	  "INVALIDPARAMETER" },
	{ "flat rate with applyCost", { { "notificationFeePolicy", "\"FLAT_RATE\"" } }, 400,
	  "notificationFeePolicy", "INVALIDPARAMETER" },
	{ "key prefix vs content type", { { "documents[0].ref.key", "\"PN_F24_META-x.json\"" } },
	  400, "documents[0]", "INVALIDPARAMETER" },
	{ "unknown field", { { "foo", "1" } }, 400, "foo", "INVALIDPARAMETER" },
	{ "sender tax id of another PA", { { "senderTaxId", "\"00000000000\"" } }, 400,
	  "senderTaxId", "INVALIDPARAMETER" },
	{ "taxonomy pattern", { { "taxonomyCode", "\"0101\"" } }, 400, "taxonomyCode",
	  "INVALIDPARAMETER" },
	{ "hex sha256", { { "documents[0].digests.sha256", "\"e3b0c44298fc1c149afbf4c8996fb924"
			    "27ae41e4649b934ca495991b7852b855\"" } }, 400,
	  "documents[0].digests.sha256", "INVALIDPARAMETER" },
	{ "language not allowed", { { "additionalLanguages", "[\"EN\"]" } }, 400,
	  "additionalLanguages[0]", "INVALIDPARAMETER" },
	{ "no documents", { { "documents", "[]" } }, 400, "documents", "SIZE" },
	{ "notice code 17 digits", { { "recipients[0].payments[0].pagoPa.noticeCode",
				       "\"30201000000000001\"" } }, 400, "noticeCode", "LENGTH" },
	{ "vat above 100", { { "vat", "101" } }, 400, "vat", "MAX" },
	{ "pec not an address", { { "recipients[0].digitalDomicile", "{\"type\":\"PEC\","
				    "\"address\":\"not-an-email\"}" } }, 400,
	  "digitalDomicile.address", "PATTERN" },
};

static json_t *body_with(const struct mutation *m, size_t n)
{
	json_t *j = NULL;

	assert_int_equal(sb_json_parse(base_body, strlen(base_body), 65536, "base", &j, NULL), 0);
	for (size_t i = 0; i < n && (m[i].path); i++) {
		json_t *v = m[i].value ? json_loads(m[i].value, JSON_DECODE_ANY, NULL) : NULL;

		if (m[i].value)
			assert_non_null(v);
		set_path(j, m[i].path, v);
	}
	return j;
}

static long post_json(struct sf *f, const char *path, json_t *j, json_t **reply)
{
	struct sb_buf out = SB_BUF_INIT(1 << 20), b = SB_BUF_INIT(1 << 20);
	long st;

	assert_int_equal(sb_json_dump(j, &b, NULL), 0);
	st = sf_raw(f, "POST", path, key_hdrs, sb_buf_cstr(&b), &out, NULL);
	*reply = NULL;
	sb_json_parse(out.buf, out.len, 1 << 20, "reply", reply, NULL);
	sb_buf_release(&out);
	sb_buf_release(&b);
	return st;
}

static void test_sim_send__create_refusals(void **state)
{
	struct sf *f = *state;

	for (size_t i = 0; i < SB_ARRAY_SIZE(refusals); i++) {
		const struct refusal_case *c = &refusals[i];
		json_t *j = body_with(c->m, 3), *reply = NULL, *e;
		long st = post_json(f, "/delivery/v2.5/requests", j, &reply);
		bool found = false;
		size_t k;

		if (st != (long)c->status)
			fprintf(stderr, "case '%s': status %ld\n", c->name, st);
		assert_int_equal(st, c->status);
		assert_int_equal(json_integer_value(json_object_get(reply, "status")), c->status);
		assert_true(json_array_size(json_object_get(reply, "errors")) >= 1);
		json_array_foreach(json_object_get(reply, "errors"), k, e) {
			const char *el = json_string_value(json_object_get(e, "element"));
			const char *code = json_string_value(json_object_get(e, "code"));

			found |= el && code && strstr(el, c->element) && strstr(code, c->code);
		}
		if (!found) {
			char *t = json_dumps(reply, 0);

			fprintf(stderr, "case '%s': %s\n", c->name, t);
			free(t);
		}
		assert_true(found);
		json_decref(j);
		json_decref(reply);
	}
	/* None of them became a request. */
	assert_int_equal(sf_ledger(f, NULL, "requests"), 0);
}

static void test_sim_send__create_202_then_409(void **state)
{
	struct sf *f = *state;
	struct mutation m[] = { { "paProtocolNumber", "\"P-409\"" },
				{ "recipients[0].payments[0].pagoPa.noticeCode",
				  "\"302010000000000409\"" } };
	struct mutation other[] = { { "paProtocolNumber", "\"P-409-OTHER\"" },
				    { "recipients[0].payments[0].pagoPa.noticeCode",
				      "\"302010000000000409\"" } };
	json_t *j = body_with(m, 2), *reply = NULL;
	const char *id;

	assert_int_equal(post_json(f, "/delivery/v2.5/requests", j, &reply), 202);
	id = json_string_value(json_object_get(reply, "notificationRequestId"));
	assert_non_null(id);
	assert_int_equal(strlen(id), 36);
	assert_string_equal(json_string_value(json_object_get(reply, "paProtocolNumber")), "P-409");
	json_decref(reply);
	/* Same protocol number and token: 409 naming the clash. */
	assert_int_equal(post_json(f, "/delivery/v2.5/requests", j, &reply), 409);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(reply, "errors"), 0), "code")),
			    "PN_GENERIC_INVALIDPARAMETER_DUPLICATED");
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(
		json_object_get(reply, "errors"), 0), "element")), "paProtocolNumber"));
	json_decref(reply);
	json_decref(j);
	/* Another protocol number reusing a live notice code: 409 on creditorTaxId##noticeCode. */
	j = body_with(other, 2);
	assert_int_equal(post_json(f, "/delivery/v2.5/requests", j, &reply), 409);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(reply, "errors"), 0), "element")), "creditorTaxId##noticeCode");
	json_decref(reply);
	json_decref(j);
	assert_int_equal(sf_ledger(f, "P-409", "requests"), 1);
}

static json_t *status_by_protocol(struct sf *f, const char *proto)
{
	struct sb_buf out = SB_BUF_INIT(1 << 20);
	char *path = sb_xasprintf("/delivery/v2.5/requests?paProtocolNumber=%s&idempotenceToken=t1",
				  proto);
	json_t *j = NULL;

	for (int i = 0; i < 100; i++) {
		struct timespec ts = { 0, 20 * 1000000L };

		sb_buf_reset(&out);
		json_decref(j);
		j = NULL;
		assert_int_equal(sf_raw(f, "GET", path, key_hdrs, NULL, &out, NULL), 200);
		assert_int_equal(sb_json_parse(out.buf, out.len, 1 << 20, "s", &j, NULL), 0);
		if (strcmp(json_string_value(json_object_get(j, "notificationRequestStatus")),
			   "WAITING"))
			break;
		assert_true(json_integer_value(json_object_get(j, "retryAfter")) >= 1);
		nanosleep(&ts, NULL);
	}
	sb_buf_release(&out);
	free(path);
	return j;
}

static bool has_code(const json_t *st, const char *code)
{
	const json_t *e;
	size_t i;

	json_array_foreach(json_object_get(st, "errors"), i, e)
		if (!strcmp(json_string_value(json_object_get(e, "code")), code))
			return true;
	return false;
}

static void test_sim_send__async_refusals(void **state)
{
	struct sf *f = *state;
	/* An address SEND cannot print, a tax id with the wrong check character, no file. */
	struct mutation m[] = { { "paProtocolNumber", "\"P-ASYNC\"" },
				{ "recipients[0].physicalAddress.address",
				  "\"Via Garibaldi, 1 \\u00e0 destra\"" },
				{ "recipients[0].taxId", "\"RSSMRA80A01H501A\"" } };
	json_t *j = body_with(m, 3), *reply = NULL, *st;

	json_object_set_new(json_object_get(json_array_get(json_object_get(json_array_get(
		json_object_get(j, "recipients"), 0), "payments"), 0), "pagoPa"), "noticeCode",
		json_string("302010000000000777"));
	assert_int_equal(post_json(f, "/delivery/v2.5/requests", j, &reply), 202);
	json_decref(reply);
	st = status_by_protocol(f, "P-ASYNC");
	assert_string_equal(json_string_value(json_object_get(st, "notificationRequestStatus")),
			    "REFUSED");
	assert_true(has_code(st, "NOT_VALID_ADDRESS"));
	assert_true(has_code(st, "TAXID_NOT_VALID"));
	assert_true(has_code(st, "FILE_NOTFOUND"));
	assert_null(json_object_get(st, "iun"));
	json_decref(st);
	json_decref(j);
}

static void test_sim_send__status_query_errors(void **state)
{
	struct sf *f = *state;
	struct sb_buf out = SB_BUF_INIT(65536);

	assert_int_equal(sf_raw(f, "GET", "/delivery/v2.5/requests", key_hdrs, NULL, &out, NULL),
			 400);
	assert_non_null(strstr(out.buf, "\"errors\""));
	assert_int_equal(sf_raw(f, "GET", "/delivery/v2.5/requests?notificationRequestId=nope",
				key_hdrs, NULL, NULL, NULL), 404);
	/* A version SEND does not publish: the gateway has no such route. */
	assert_int_equal(sf_raw(f, "GET", "/delivery/v9.9/requests?notificationRequestId=x",
				key_hdrs, NULL, NULL, NULL), 404);
	sb_buf_release(&out);
}

static void test_sim_send__gateway_auth(void **state)
{
	struct sf *f = *state;
	const char *none[] = { "Content-Type: application/json", NULL };
	const char *wrong[] = { "x-api-key: nope", NULL };
	const char *pdnd_no_voucher[] = { "x-api-key: sim-send-pdnd-key", NULL };
	const char *pdnd_bad_voucher[] = { "x-api-key: sim-send-pdnd-key",
					   "Authorization: Bearer not-a-jwt", NULL };
	const char *key_with_bearer[] = { "x-api-key: sim-send-key",
					  "Authorization: Bearer a.b.c", NULL };
	struct sb_buf out = SB_BUF_INIT(65536);

	assert_int_equal(sf_raw(f, "GET", "/delivery/v2.5/requests?notificationRequestId=x", none,
				NULL, &out, NULL), 401);
	assert_string_equal(out.buf, "{\"message\":\"Unauthorized\"}");
	assert_int_equal(sf_raw(f, "GET", "/delivery/v2.5/requests?notificationRequestId=x", wrong,
				NULL, NULL, NULL), 403);
	assert_int_equal(sf_raw(f, "GET", "/delivery/v2.5/requests?notificationRequestId=x",
				pdnd_no_voucher, NULL, NULL, NULL), 403);
	assert_int_equal(sf_raw(f, "GET", "/delivery/v2.5/requests?notificationRequestId=x",
				pdnd_bad_voucher, NULL, NULL, NULL), 403);
	assert_int_equal(sf_raw(f, "GET", "/delivery/v2.5/requests?notificationRequestId=x",
				key_with_bearer, NULL, NULL, NULL), 403);
	sb_buf_release(&out);
}

static void test_sim_send__preload_and_s3_checks(void **state)
{
	struct sf *f = *state;
	const char content[] = "%PDF-1.4 upload check\n";
	unsigned char d[SB_SHA256_LEN];
	struct sb_buf sha = SB_BUF_INIT(64), hex = SB_BUF_INIT(128), out = SB_BUF_INIT(65536);
	struct sb_http_resp resp = { 0 };
	json_t *reply = NULL, *it;
	char *req, *h_secret, *h_sum, *h_hex, *h_bad, *url;
	const char *secret;
	long before = sf_ledger(f, NULL, "authHeadersOnPresignedUrls");

	sb_sha256(content, strlen(content), d);
	sb_base64_encode(d, sizeof(d), &sha);
	sb_hex_encode(d, sizeof(d), &hex);
	/* 16 items, hex digests and unknown types are refused at preload. */
	{
		struct sb_buf many = SB_BUF_INIT(65536);

		sb_buf_adds(&many, "[");
		for (int i = 0; i < 16; i++)
			sb_buf_addf(&many, "%s{\"preloadIdx\":\"i%d\",\"contentType\":"
				    "\"application/pdf\",\"sha256\":\"%s\"}", i ? "," : "", i,
				    sb_buf_cstr(&sha));
		sb_buf_adds(&many, "]");
		assert_int_equal(sf_raw(f, "POST", "/delivery/attachments/preload", key_hdrs,
					many.buf, NULL, NULL), 400);
		sb_buf_release(&many);
	}
	req = sb_xasprintf("[{\"preloadIdx\":\"a\",\"contentType\":\"application/pdf\","
			   "\"sha256\":\"%s\"}]", sb_buf_cstr(&hex));
	assert_int_equal(sf_raw(f, "POST", "/delivery/attachments/preload", key_hdrs, req, NULL,
				NULL), 400);
	free(req);
	req = sb_xasprintf("[{\"preloadIdx\":\"a\",\"contentType\":\"text/plain\","
			   "\"sha256\":\"%s\"}]", sb_buf_cstr(&sha));
	assert_int_equal(sf_raw(f, "POST", "/delivery/attachments/preload", key_hdrs, req, NULL,
				NULL), 400);
	free(req);

	req = sb_xasprintf("[{\"preloadIdx\":\"a\",\"contentType\":\"application/pdf\","
			   "\"sha256\":\"%s\"}]", sb_buf_cstr(&sha));
	assert_int_equal(sf_raw(f, "POST", "/delivery/attachments/preload", key_hdrs, req, &out,
				NULL), 200);
	assert_int_equal(sb_json_parse(out.buf, out.len, 65536, "p", &reply, NULL), 0);
	it = json_array_get(reply, 0);
	assert_string_equal(json_string_value(json_object_get(it, "httpMethod")), "PUT");
	assert_int_equal(strncmp(json_string_value(json_object_get(it, "key")),
				 "PN_NOTIFICATION_ATTACHMENTS-", 28), 0);
	secret = json_string_value(json_object_get(it, "secret"));
	url = sb_xstrdup(json_string_value(json_object_get(it, "url")));
	/* The upload URL is served by send-sim itself, on loopback. */
	assert_int_equal(strncmp(url, f->sim.url, strlen(f->sim.url)), 0);
	h_secret = sb_xasprintf("x-amz-meta-secret: %s", secret);
	h_sum = sb_xasprintf("x-amz-checksum-sha256: %s", sb_buf_cstr(&sha));
	h_hex = sb_xasprintf("x-amz-checksum-sha256: %s", sb_buf_cstr(&hex));
	h_bad = sb_xasprintf("x-amz-checksum-sha256: %s",
			     "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	{
		const char *wrong_secret[] = { "Content-Type: application/pdf",
					       "x-amz-meta-secret: nope", h_sum, NULL };
		const char *hex_sum[] = { "Content-Type: application/pdf", h_secret, h_hex, NULL };
		const char *other_sum[] = { "Content-Type: application/pdf",
					    h_secret, h_bad, NULL };
		const char *with_key[] = { "Content-Type: application/pdf", h_secret, h_sum,
					   "x-api-key: sim-send-key", NULL };
		const char *good[] = { "Content-Type: application/pdf", h_secret, h_sum, NULL };

		sb_buf_reset(&out);
		assert_int_equal(sf_raw(f, "PUT", url, wrong_secret, content, &out, NULL), 400);
		assert_non_null(strstr(out.buf, "SignatureDoesNotMatch"));
		sb_buf_reset(&out);
		assert_int_equal(sf_raw(f, "PUT", url, hex_sum, content, &out, NULL), 400);
		assert_non_null(strstr(out.buf, "x-amz-checksum-sha256 header is invalid"));
		assert_int_equal(sf_raw(f, "PUT", url, other_sum, content, NULL, NULL), 400);
		/* The right headers over other bytes: S3 computes the digest itself. */
		sb_buf_reset(&out);
		assert_int_equal(sf_raw(f, "PUT", url, good, "%PDF-other bytes", &out, NULL), 400);
		assert_non_null(strstr(out.buf, "BadDigest"));
		assert_int_equal(sf_raw(f, "PUT", url, with_key, content, NULL, NULL), 400);
		assert_int_equal(sf_ledger(f, NULL, "authHeadersOnPresignedUrls"), before + 1);
		assert_int_equal(sf_raw(f, "PUT", url, good, content, NULL, &resp), 200);
		assert_non_null(sb_http_resp_header(&resp, "x-amz-version-id"));
		sb_http_resp_release(&resp);
	}
	free(h_secret);
	free(h_sum);
	free(h_hex);
	free(h_bad);
	free(url);
	free(req);
	json_decref(reply);
	sb_buf_release(&sha);
	sb_buf_release(&hex);
	sb_buf_release(&out);
}

static void test_sim_send__stream_rules(void **state)
{
	struct sf *f = *state;
	struct sb_buf out = SB_BUF_INIT(65536);
	struct sb_http_resp resp = { 0 };
	json_t *j = NULL;
	char *path;

	assert_int_equal(sf_raw(f, "POST", "/delivery-progresses/v2.9/streams", key_hdrs,
				"{\"title\":\"t\",\"eventType\":\"OTHER\",\"groups\":[]}",
				NULL, NULL), 400);
	assert_int_equal(sf_raw(f, "POST", "/delivery-progresses/v2.9/streams", key_hdrs,
				"{\"title\":\"t\",\"eventType\":\"TIMELINE\"}", NULL, NULL), 400);
	assert_int_equal(sf_raw(f, "POST", "/delivery-progresses/v2.9/streams", key_hdrs,
				"{\"title\":\"t\",\"eventType\":\"TIMELINE\",\"groups\":[]}", &out,
				NULL), 200);
	assert_int_equal(sb_json_parse(out.buf, out.len, 65536, "s", &j, NULL), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(j, "streamId"))), 36);
	assert_non_null(json_object_get(j, "activationDate"));
	path = sb_xasprintf("/delivery-progresses/v2.9/streams/%s/events",
			    json_string_value(json_object_get(j, "streamId")));
	/* An empty page says when to come back, in milliseconds ... */
	assert_int_equal(sf_raw(f, "GET", path, key_hdrs, NULL, NULL, &resp), 200);
	assert_string_equal(sb_http_resp_header(&resp, "retry-after"), "1000");
	sb_http_resp_release(&resp);
	/* ... and coming back earlier is a 429 with the time left. */
	assert_int_equal(sf_raw(f, "GET", path, key_hdrs, NULL, NULL, &resp), 429);
	assert_non_null(sb_http_resp_header(&resp, "retry-after"));
	assert_true(strtol(sb_http_resp_header(&resp, "retry-after"), NULL, 10) <= 1000);
	sb_http_resp_release(&resp);
	free(path);
	path = sb_xasprintf("/delivery-progresses/v2.9/streams/%s/events?lastEventId=12",
			    json_string_value(json_object_get(j, "streamId")));
	assert_int_equal(sf_raw(f, "GET", path, key_hdrs, NULL, NULL, NULL), 400);
	assert_int_equal(sf_raw(f, "GET", "/delivery-progresses/v2.9/streams/"
				"00000000-0000-4000-8000-000000000000/events", key_hdrs, NULL, NULL,
				NULL), 404);
	free(path);
	json_decref(j);
	sb_buf_release(&out);
}

/* A new stream of the sim's PA through the raw API: its id (36 characters) in id, or the status. */
static long stream_new(struct sf *f, const char *replaced, char id[37])
{
	struct sb_buf out = SB_BUF_INIT(65536);
	char *body = replaced ?
		sb_xasprintf("{\"title\":\"t\",\"eventType\":\"TIMELINE\",\"groups\":[],"
			     "\"replacedStreamId\":\"%s\"}", replaced) :
		sb_xstrdup("{\"title\":\"t\",\"eventType\":\"TIMELINE\",\"groups\":[]}");
	long status = sf_raw(f, "POST", "/delivery-progresses/v2.9/streams", key_hdrs, body, &out,
			     NULL);
	json_t *j = NULL;

	id[0] = '\0';
	if (status == 200 && sb_json_parse(out.buf, out.len, 65536, "s", &j, NULL) == 0 &&
	    json_is_string(json_object_get(j, "streamId")))
		snprintf(id, 37, "%s", json_string_value(json_object_get(j, "streamId")));
	json_decref(j);
	free(body);
	sb_buf_release(&out);
	return status;
}

/* POST /streams/{id}/action/disable, or GET /streams/{id} (disable false): the status, *dated. */
static long stream_call(struct sf *f, const char *id, bool disable, bool *dated)
{
	struct sb_buf out = SB_BUF_INIT(65536);
	char *path = sb_xasprintf("/delivery-progresses/v2.9/streams/%s%s", id,
				  disable ? "/action/disable" : "");
	long status = sf_raw(f, disable ? "POST" : "GET", path, key_hdrs, NULL, &out, NULL);
	json_t *j = NULL;

	*dated = status == 200 && sb_json_parse(out.buf, out.len, 65536, "s", &j, NULL) == 0 &&
		 json_is_string(json_object_get(j, "disabledDate"));
	json_decref(j);
	free(path);
	sb_buf_release(&out);
	return status;
}

/*
 * Disabling is one way, dated, and refused twice; a stream created with
 * replacedStreamId disables the one it replaces; disabled streams are not
 * counted in the 10 a PA may have. (Last: it fills the PA's streams.)
 */
static void test_sim_send__stream_disable_and_replace(void **state)
{
	struct sf *f = *state;
	char a[37], b[37], c[37];
	bool dated = false;
	size_t made = 0;

	assert_int_equal(stream_new(f, NULL, a), 200);
	assert_int_equal(stream_call(f, a, false, &dated), 200);
	assert_false(dated);
	assert_int_equal(stream_call(f, a, true, &dated), 200);
	assert_true(dated);
	assert_int_equal(stream_call(f, a, false, &dated), 200);
	assert_true(dated);
	assert_int_equal(stream_call(f, a, true, &dated), 403);

	assert_int_equal(stream_new(f, NULL, b), 200);
	assert_int_equal(stream_new(f, b, c), 200);
	assert_int_equal(stream_call(f, b, false, &dated), 200);
	assert_true(dated);
	assert_int_equal(stream_call(f, c, false, &dated), 200);
	assert_false(dated);
	assert_int_equal(stream_new(f, b, a), 403);       /* already replaced */
	assert_int_equal(stream_new(f, "x", a), 400);
	assert_int_equal(stream_new(f, "00000000-0000-4000-8000-000000000000", a), 404);

	/* Fill the PA's 10 active streams; a disabled one frees a place. */
	while (stream_new(f, NULL, b) == 200) {
		memcpy(a, b, sizeof(a));
		assert_true(++made <= 10);
	}
	assert_int_equal(stream_new(f, NULL, b), 409);
	assert_int_equal(stream_call(f, a, true, &dated), 200);
	assert_int_equal(stream_new(f, NULL, b), 200);
	assert_int_equal(stream_new(f, NULL, b), 409);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sim_send__create_refusals),
		cmocka_unit_test(test_sim_send__create_202_then_409),
		cmocka_unit_test(test_sim_send__async_refusals),
		cmocka_unit_test(test_sim_send__status_query_errors),
		cmocka_unit_test(test_sim_send__gateway_auth),
		cmocka_unit_test(test_sim_send__preload_and_s3_checks),
		cmocka_unit_test(test_sim_send__stream_rules),
		cmocka_unit_test(test_sim_send__stream_disable_and_replace),
	};

	sb_http_global_init();
	return cmocka_run_group_tests_name("sim_send", tests, setup, sf_group_teardown);
}
