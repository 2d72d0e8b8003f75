/*
 * svc_send_map: the sample acts in fixtures/acts/ become SEND notifications
 * with the right fields, uploads named after the act, and are accepted by
 * send-sim end to end; plus the send-bridge CLI's SEND commands (the real
 * binary) against the same simulator.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sb_ids.h"
#include "sb_problems.h"
#include "svc_act.h"
#include "svc_send_map.h"
#include "../send/send_fixture.h"

static const char *const sim_args[] = { "--send-accept-ms", "50", "--send-step-ms", "30",
					"--send-legal-fact-retry", "0", NULL };

static int setup(void **state)
{
	return sf_group_setup(state, sim_args);
}

static struct svc_act *load(const char *name)
{
	char *dir = th_fixture(name);
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct svc_act *a = NULL;
	struct sb_err err = SB_ERR_INIT;

	if (svc_act_load(&a, dir, false, &probs, &err) < 0) {
		for (size_t i = 0; i < probs.n; i++)
			fprintf(stderr, "%s: %s\n", probs.items[i].where, probs.items[i].msg);
		fail_msg("cannot load %s: %s", name, err.msg);
	}
	sb_problems_release(&probs);
	free(dir);
	return a;
}

static void test_svc_send_map__fields_of_a_fine(void **state)
{
	struct sf *f = *state;
	struct svc_act *a = load("acts/fine-pagopa");
	struct svc_send_map m;
	struct sb_err err = SB_ERR_INIT;
	char *json = NULL;

	assert_int_equal(svc_send_map_init(&m, a, f->cfg, "2026/0001234", &err), 0);
	assert_string_equal(m.n.protocol_number, "2026/0001234");
	assert_string_equal(m.n.idempotence_token, "fine-pagopa.v1");
	assert_string_equal(m.n.sender_denomination, "Comune di Esempio");
	assert_int_equal(m.n.fee_policy, SEND_FEE_DELIVERY_MODE);
	assert_true(m.n.has_pa_fee && m.n.pa_fee == 100 && m.n.has_vat && m.n.vat == 22);
	assert_int_equal(m.n.comm_type, SEND_REGISTERED_LETTER_890);
	assert_int_equal(m.n.nrecipients, 1);
	assert_int_equal(m.n.recipients[0].npayments, 1);
	assert_string_equal(m.n.recipients[0].payments[0].notice_code, "302010000000001001");
	/* the document and the pagoPA notice, indexes derived from the act id */
	assert_int_equal(m.nuploads, 2);
	assert_string_equal(m.uploads[0].preload_idx, "fine-pagopa.doc0");
	assert_string_equal(m.uploads[1].preload_idx, "fine-pagopa.r0p0.pagopa");
	assert_true(m.n.recipients[0].payments[0].has_pagopa_attachment);

	/* Before the uploads the refs are empty: SEND's body cannot be built. */
	assert_int_equal(send_notification_json(f->c, &m.n, &json, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "digests.sha256"));
	assert_int_equal(send_files_upload(f->c, m.uploads, m.nuploads, &f->retry, &err), 0);
	svc_send_map_apply_uploads(&m);
	assert_int_equal(send_notification_json(f->c, &m.n, &json, &err), 0);
	/* Addresses normalised; absent values left out, never null. */
	assert_non_null(strstr(json, "\"address\":\"VIA DEI TEST 1\""));
	assert_non_null(strstr(json, "\"municipality\":\"ROMA\""));
	assert_null(strstr(json, "null"));
	assert_null(strstr(json, "\"\""));
	assert_null(strstr(json, "digitalDomicile"));
	free(json);
	svc_send_map_release(&m);
	svc_act_free(a);
}

static void test_svc_send_map__every_sample_act_is_accepted(void **state)
{
	static const char *const acts[] = { "acts/fine-pec", "acts/fine-company",
					    "acts/imu-assessment" };
	struct sf *f = *state;

	for (size_t i = 0; i < SB_ARRAY_SIZE(acts); i++) {
		struct svc_act *a = load(acts[i]);
		struct svc_send_map m;
		struct send_request_status st;
		struct sb_err err = SB_ERR_INIT;
		char id[SEND_REQUEST_ID_MAX];

		assert_int_equal(svc_send_map_init(&m, a, f->cfg, NULL, &err), 0);
		assert_int_equal(send_files_upload(f->c, m.uploads, m.nuploads,
						   &f->retry, &err), 0);
		svc_send_map_apply_uploads(&m);
		if (send_notification_create(f->c, &m.n, &f->retry, id, NULL, &err) < 0)
			fail_msg("%s: %s", acts[i], err.msg);
		assert_int_equal(send_request_wait(f->c, id, 30000, &f->retry, &st, &err), 0);
		if (st.state != SEND_ACCEPTED)
			fail_msg("%s refused: %s %s", acts[i], st.refusals[0].code,
				 st.refusals[0].element);
		assert_true(sb_iun_valid(st.iun));
		assert_int_equal(sf_ledger(f, m.n.protocol_number, "notifications"), 1);
		svc_send_map_release(&m);
		svc_act_free(a);
	}
}

/* Run bin/send-bridge with the fixture's configuration. */
static int cli(struct sf *f, struct sb_buf *out, struct sb_buf *errout, const char *a1,
	       const char *a2, const char *a3, const char *a4)
{
	char *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	char *ini = sb_xasprintf("%s/send-bridge.ini", f->dir);
	const char *argv[] = { bin, "-c", ini, a1, a2, a3, a4, NULL };
	int rc;

	sb_buf_reset(out);
	sb_buf_reset(errout);
	rc = th_run(argv, out, errout);
	free(bin);
	free(ini);
	return rc;
}

static void test_svc_send_map__cli_commands(void **state)
{
	struct sf *f = *state;
	struct sb_buf out = SB_BUF_INIT(1 << 20), errout = SB_BUF_INIT(1 << 20);
	char *act = th_fixture("acts/fine-pagopa");
	char *lfdir = sb_xasprintf("%s/lf", f->dir);
	char iun[32];
	struct send_sent_notification *n;

	assert_int_equal(cli(f, &out, &errout, "submit", act, "--protocol", "CLI-1"), 0);
	assert_int_equal(out.len, 26);   /* the IUN and a newline */
	snprintf(iun, sizeof(iun), "%.25s", out.buf);
	assert_true(sb_iun_valid(iun));
	/* Again: the same request is found (409), no second notification. */
	assert_int_equal(cli(f, &out, &errout, "submit", act, "--protocol", "CLI-1"), 0);
	assert_int_equal(strncmp(out.buf, iun, 25), 0);
	assert_non_null(strstr(errout.buf, "existing request"));
	assert_int_equal(sf_ledger(f, "CLI-1", "requests"), 1);

	n = sf_wait_status(f, iun, "EFFECTIVE_DATE");
	assert_non_null(n);
	send_sent_notification_free(n);
	assert_int_equal(cli(f, &out, &errout, "notification", iun, "--json", NULL), 0);
	assert_non_null(strstr(out.buf, "\"status\":\"EFFECTIVE_DATE\""));
	assert_non_null(strstr(out.buf, "SEND_ANALOG_DOMICILE"));
	/* No personal data in the output. */
	assert_null(strstr(out.buf, "TSTMRA80A01H501C"));
	assert_null(strstr(out.buf, "Mario"));

	assert_int_equal(cli(f, &out, &errout, "legal-facts", iun, "--out", lfdir), 0);
	assert_non_null(strstr(out.buf, "SENDER_ACK.pdf"));
	assert_int_equal(cli(f, &out, &errout, "price", "302010000000001001", NULL, NULL), 0);
	assert_non_null(strstr(out.buf, iun));
	assert_int_equal(cli(f, &out, &errout, "cancel", iun, NULL, NULL), 0);

	/* Errors: usage (2); not found, SEND's 404 or a missing act folder (1). */
	assert_int_equal(cli(f, &out, &errout, "cancel", "not-an-iun", NULL, NULL), 2);
	assert_int_equal(cli(f, &out, &errout, "legal-facts", iun, NULL, NULL), 2);
	assert_int_equal(cli(f, &out, &errout, "price", "302010999999999999", NULL, NULL), 1);
	assert_true(errout.len > 0);
	assert_int_equal(cli(f, &out, &errout, "submit", "/nonexistent/act", NULL, NULL), 1);
	sb_buf_release(&out);
	sb_buf_release(&errout);
	free(act);
	free(lfdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_svc_send_map__fields_of_a_fine),
		cmocka_unit_test(test_svc_send_map__every_sample_act_is_accepted),
		cmocka_unit_test(test_svc_send_map__cli_commands),
	};

	sb_http_global_init();
	return cmocka_run_group_tests_name("svc_send_map", tests, setup, sf_group_teardown);
}
