/*
 * The REST adapter against the vendor stand-in in send-sim, over real HTTP
 * on 127.0.0.1: registration, segnatura delivery, receipts, annulment, and
 * the stand-in's errors, injected failures, 429, dropped connections and
 * timeouts (with the Idempotency-Key giving the same number on retry).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_http.h"
#include "sb_json.h"
#include "th.h"
#include "proto.h"
#include "proto_int.h"
#include "svc_store.h"
#include "proto_fixture.h"

struct rt {
	struct pf *f;
	struct th_sim sim;
	char *auth;
	char *url;
	struct proto *p;
	struct sb_http *http;
};

static int open_rest(struct rt *t, const char *auth_file, struct proto **out, struct sb_err *err)
{
	struct proto_opts o = t->f->o;

	o.backend = "rest";
	o.rest_url = t->url;
	o.rest_auth_file = auth_file;
	o.rest_timeout_ms = 1500;
	return proto_open(out, svc_store_db(t->f->store), &o, err);
}

static int setup(void **state)
{
	struct rt *t = sb_xcalloc(1, sizeof(*t));
	struct sb_err err = SB_ERR_INIT;

	t->f = pf_new("proto-rest");
	th_sim_start(&t->sim, NULL);
	t->auth = sb_xasprintf("%s/protocol.auth", t->f->dir);
	th_write_str(t->auth, "Bearer send-sim-protocol\n", 0600);
	t->url = sb_xasprintf("%s/protocol/v1/", t->sim.url);
	if (open_rest(t, t->auth, &t->p, &err) < 0)
		fail_msg("open rest: %s", err.msg);
	assert_int_equal(sb_http_new(&t->http, NULL, &err), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct rt *t = *state;

	proto_free(t->p);
	sb_http_free(t->http);
	th_sim_stop(&t->sim);
	pf_free(t->f);
	free(t->auth);
	free(t->url);
	free(t);
	return 0;
}

/* POST /_sim/faults */
static void faults(struct rt *t, const char *json)
{
	char *url = sb_xasprintf("%s/_sim/faults", t->sim.url);
	const char *h[] = { "Content-Type: application/json", NULL };
	struct sb_http_req req = { "POST", url, h, json, strlen(json), NULL, NULL, 0, 0 };
	struct sb_http_resp resp;
	struct sb_err err = SB_ERR_INIT;

	memset(&resp, 0, sizeof(resp));
	assert_int_equal(sb_http_do(t->http, &req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	sb_http_resp_release(&resp);
	free(url);
}

/* What the stand-in holds for id (GET), as JSON. */
static json_t *vendor_get(struct rt *t, const struct proto_id *id)
{
	char *url = sb_xasprintf("%s/protocol/v1/registrazioni/%s/%d/%07llu", t->sim.url, id->reg,
				 id->year, (unsigned long long)id->number);
	const char *h[] = { "Authorization: Bearer send-sim-protocol", NULL };
	struct sb_http_req req = { "GET", url, h, NULL, 0, NULL, NULL, 0, 0 };
	struct sb_http_resp resp;
	struct sb_err err = SB_ERR_INIT;
	json_t *j = NULL;

	memset(&resp, 0, sizeof(resp));
	assert_int_equal(sb_http_do(t->http, &req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(sb_json_parse(resp.body.buf, resp.body.len, 65536, "x", &j, &err), 0);
	sb_http_resp_release(&resp);
	free(url);
	return j;
}

static int count_rows(struct rt *t)
{
	sqlite3_stmt *st = NULL;
	int n;

	assert_int_equal(sqlite3_prepare_v2(svc_store_db(t->f->store),
					    "SELECT count(*) FROM proto_registrations", -1, &st,
					    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* The vendor's calls, as the daemon's metrics see them (sb_http_after_request). */
static int protocol_calls, other_calls;

static void count_call(const char *platform, long status, int rc)
{
	(void)status;
	(void)rc;
	if (platform && !strcmp(platform, "protocol"))
		protocol_calls++;
	else if (platform)
		other_calls++;
}

static void test_proto_rest__register_receipt_annul(void **state)
{
	struct rt *t = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *out = NULL, *again = NULL, *in = NULL, *look = NULL;
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_XML_SEGNATURA);
	struct proto_receipt rc_in;
	struct pf_act act;
	json_t *v;

	pf_act_init(t->f, &act, "rest-act-1");
	protocol_calls = other_calls = 0;
	sb_http_after_request(count_call);
	assert_int_equal(proto_register_outgoing(t->p, &act.in, &out, &err), 0);
	assert_int_equal(out->id.number, 500001);
	assert_string_equal(out->backend, "rest");
	assert_int_equal(strlen(out->date), 10);
	v = vendor_get(t, &out->id);
	assert_true(json_is_true(json_object_get(v, "segnatura")));
	assert_string_equal(json_string_value(json_object_get(v, "direzione")), "U");
	assert_string_equal(json_string_value(json_object_get(v, "data")), out->date);
	json_decref(v);
	/* The segnatura carries the vendor's number and verifies. */
	assert_int_equal(proto_segnatura_get(t->p, &out->id, &xml, &err), 0);
	assert_non_null(strstr(xml.buf, ">0500001<"));

	assert_int_equal(proto_register_outgoing(t->p, &act.in, &again, &err), 0);
	assert_int_equal(again->id.number, 500001);

	memset(&rc_in, 0, sizeof(rc_in));
	rc_in.legal_fact_id = "LF-REST-1";
	rc_in.category = "RECIPIENT_ACCESS";
	rc_in.iun = "ABCD-EFGH-IJKL-202611-M-1";
	rc_in.outgoing = out->id;
	rc_in.pdf_path = t->f->pdf2;
	assert_int_equal(proto_register_receipt(t->p, &rc_in, &in, &err), 0);
	assert_int_equal(in->id.number, 500002);
	assert_int_equal(in->link.number, 500001);
	v = vendor_get(t, &in->id);
	assert_string_equal(json_string_value(json_object_get(v, "direzione")), "E");
	json_decref(v);

	assert_int_equal(proto_annul(t->p, &out->id, "errore materiale", "resp", "det. 3/2026",
				     &err), 0);
	v = vendor_get(t, &out->id);
	assert_true(json_is_true(json_object_get(v, "annullata")));
	json_decref(v);
	sb_http_after_request(NULL);
	/* Registration, receipt and annulment at least, each reported as the protocol's. */
	assert_true(protocol_calls >= 3);
	assert_int_equal(other_calls, 0);
	assert_int_equal(proto_lookup(t->p, &out->id, &look, &err), 0);
	assert_true(look->annulled);
	proto_reg_free(out);
	proto_reg_free(again);
	proto_reg_free(in);
	proto_reg_free(look);
	sb_buf_release(&xml);
}

static void test_proto_rest__errors_and_faults(void **state)
{
	struct rt *t = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *r = NULL;
	struct proto *bad = NULL;
	struct pf_act act;
	char *wrong = sb_xasprintf("%s/wrong.auth", t->f->dir);

	pf_act_init(t->f, &act, "rest-act-err");
	/* Wrong credentials: refused, not retried. */
	th_write_str(wrong, "Bearer nope\n", 0600);
	assert_int_equal(open_rest(t, wrong, &bad, &err), 0);
	assert_int_equal(proto_register_outgoing(bad, &act.in, &r, &err), SB_EREJECT);
	assert_int_equal(err.code, SB_EREJECT);
	assert_int_equal(err.http, 401);
	assert_non_null(strstr(err.msg, "401"));
	assert_null(r);
	proto_free(bad);

	/* 503 on the next call. */
	faults(t, "{\"failNth\":1,\"pct5xx\":0}");
	sb_err_clear(&err);
	assert_int_equal(proto_register_outgoing(t->p, &act.in, &r, &err), SB_ETEMP);
	assert_int_equal(err.http, 503);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(count_rows(t), 0);
	faults(t, "{\"failNth\":0}");

	/* 429 with Retry-After. */
	faults(t, "{\"pct429\":100,\"retryAfter\":7}");
	sb_err_clear(&err);
	assert_int_equal(proto_register_outgoing(t->p, &act.in, &r, &err), SB_ETEMP);
	assert_int_equal(err.http, 429);
	assert_int_equal(err.retry_after, 7);
	faults(t, "{\"pct429\":0}");

	/* Dropped connection. */
	faults(t, "{\"pctDrop\":100}");
	sb_err_clear(&err);
	assert_int_equal(proto_register_outgoing(t->p, &act.in, &r, &err), SB_ETEMP);
	assert_true(err.msg[0] != '\0');
	faults(t, "{\"pctDrop\":0}");

	/* A reply slower than rest_timeout_ms: the vendor did register, we did not hear. */
	faults(t, "{\"latencyMs\":2500}");
	sb_err_clear(&err);
	assert_int_equal(proto_register_outgoing(t->p, &act.in, &r, &err), SB_ETEMP);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(count_rows(t), 0);
	faults(t, "{\"latencyMs\":0}");
	/* The retry carries the same Idempotency-Key: the vendor's first number, no second one. */
	assert_int_equal(proto_register_outgoing(t->p, &act.in, &r, &err), 0);
	assert_int_equal(r->id.number, 500001);
	assert_int_equal(count_rows(t), 1);
	proto_reg_free(r);

	free(wrong);
}

/* Fail each call of a registration in turn: it ends registered once, segnatura delivered. */
static void test_proto_rest__fail_each_call_in_turn(void **state)
{
	struct rt *t = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pf_act act;

	for (int nth = 1; nth <= 2; nth++) {
		struct proto_reg *r = NULL;
		char id[32], body[64];
		json_t *v;

		snprintf(id, sizeof(id), "rest-torture-%d", nth);
		pf_act_init(t->f, &act, id);
		snprintf(body, sizeof(body), "{\"failNth\":%d}", nth);
		/*
		 * failNth counts from the simulator's start: reset by asking
		 * for the current count.
		 */
		faults(t, "{\"failNth\":0}");
		{
			char *url = sb_xasprintf("%s/_sim/faults", t->sim.url);
			struct sb_http_req req = { "GET", url, NULL, NULL, 0, NULL, NULL, 0, 0 };
			struct sb_http_resp resp;
			json_t *j = NULL;
			int64_t calls = 0;

			memset(&resp, 0, sizeof(resp));
			assert_int_equal(sb_http_do(t->http, &req, &resp, &err), 0);
			assert_int_equal(sb_json_parse(resp.body.buf, resp.body.len, 4096, "f",
						       &j, &err), 0);
			assert_int_equal(sb_json_get_int(j, "calls", 0, INT64_MAX,
							 &calls, &err), 0);
			snprintf(body, sizeof(body), "{\"failNth\":%lld}", (long long)calls + nth);
			json_decref(j);
			sb_http_resp_release(&resp);
			free(url);
		}
		faults(t, body);
		sb_err_clear(&err);
		assert_int_equal(proto_register_outgoing(t->p, &act.in, &r, &err), SB_ETEMP);
		assert_int_equal(err.http, 503);
		assert_null(r);
		/* The retry completes what the failure left: same number, segnatura delivered. */
		assert_int_equal(proto_register_outgoing(t->p, &act.in, &r, &err), 0);
		v = vendor_get(t, &r->id);
		assert_true(json_is_true(json_object_get(v, "segnatura")));
		json_decref(v);
		assert_int_equal(count_rows(t), nth);
		proto_reg_free(r);
	}
}

static void test_proto_rest__malformed_replies_refused(void **state)
{
	static const char *const keys[] = { "sim-bad-number", "sim-bad-date", "sim-bad-register",
					     "sim-bad-json" };
	static const char *const says[] = { "numero", "data", "registro", "not JSON" };
	struct rt *t = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pf_act act;

	for (size_t i = 0; i < SB_ARRAY_SIZE(keys); i++) {
		struct proto_reg *r = NULL;

		pf_act_init(t->f, &act, keys[i]);
		sb_err_clear(&err);
		assert_int_equal(proto_register_outgoing(t->p, &act.in, &r, &err), SB_EREJECT);
		assert_int_equal(err.code, SB_EREJECT);
		if (!strstr(err.msg, says[i]))
			fail_msg("%s: '%s' does not say '%s'", keys[i], err.msg, says[i]);
		assert_null(r);
	}
	assert_int_equal(count_rows(t), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_proto_rest__register_receipt_annul, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_proto_rest__errors_and_faults,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_rest__fail_each_call_in_turn, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_proto_rest__malformed_replies_refused, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("proto_rest", tests, NULL, NULL);
}
