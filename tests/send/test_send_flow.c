/*
 * The SEND client against send-sim over loopback, end to end: upload,
 * create, acceptance (retryAfter honoured), 409 reconciliation, refusals,
 * timeline progression, legal facts, attachments, price, cancellation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <unistd.h>

#include "sb_crypto.h"
#include "sb_ids.h"
#include "send_fixture.h"

static const char *const sim_args[] = { "--send-accept-ms", "150", "--send-step-ms", "60", NULL };

static int setup(void **state)
{
	return sf_group_setup(state, sim_args);
}

static void test_send_flow__submit_accepted_with_iun(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct sb_err err = SB_ERR_INIT;

	sf_notif_init(f, &x, NULL, NULL);
	f->nslept = 0;
	assert_int_equal(sf_submit(f, &x, &st, &err), 0);
	assert_int_equal(st.state, SEND_ACCEPTED);
	assert_true(sb_iun_valid(st.iun));
	/* The sim answered WAITING with retryAfter=1 (seconds): the client waited 1000 ms. */
	assert_true(sf_slept(f, 1000));
	assert_int_equal(strlen(x.up[0].ref.sha256), 44);
	assert_true(x.up[0].ref.version_token[0] != '\0');
	assert_int_equal(strncmp(x.up[0].ref.key, "PN_NOTIFICATION_ATTACHMENTS", 27), 0);
	assert_int_equal(sf_ledger(f, x.proto, "notifications"), 1);
	assert_int_equal(sf_ledger(f, NULL, "authHeadersOnPresignedUrls"), 0);
	sf_notif_release(&x);
}

static void test_send_flow__409_reconciled_never_twice(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	char id1[SEND_REQUEST_ID_MAX], id2[SEND_REQUEST_ID_MAX];
	struct sb_err err = SB_ERR_INIT;
	bool existing = true;

	sf_notif_init(f, &x, NULL, NULL);
	assert_int_equal(sf_upload(f, &x, &err), 0);
	assert_int_equal(send_notification_create(f->c, &x.n, &f->retry, id1, &existing, &err), 0);
	assert_false(existing);
	/* A replay (crash after the POST): SEND says 409, the client finds the first request. */
	assert_int_equal(send_notification_create(f->c, &x.n, &f->retry, id2, &existing, &err), 0);
	assert_true(existing);
	assert_string_equal(id1, id2);
	assert_int_equal(sf_ledger(f, x.proto, "requests"), 1);
	sf_notif_release(&x);
}

static void test_send_flow__find_by_protocol_and_token(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	char id[SEND_REQUEST_ID_MAX];
	struct send_request_status st;
	struct sb_err err = SB_ERR_INIT;

	sf_notif_init(f, &x, NULL, NULL);
	assert_int_equal(sf_create(f, &x, id, &err), 0);
	assert_int_equal(send_request_status_find(f->c, x.proto, x.token, &st, &err), 0);
	assert_string_equal(st.request_id, id);
	assert_int_equal(send_request_status_get(f->c, id, &st, &err), 0);
	assert_string_equal(st.request_id, id);

	memset(&st, 0x5a, sizeof(st));
	assert_int_equal(send_request_status_find(f->c, "NO-SUCH-PROTOCOL", "x", &st, &err),
			 SB_ENOTFOUND);
	assert_int_equal(err.code, SB_ENOTFOUND);
	assert_int_equal(err.http, 404);
	assert_non_null(strstr(err.msg, "PN_DELIVERY_NOTIFICATION_NOT_FOUND"));
	assert_int_equal(((unsigned char *)&st)[0], 0x5a);   /* output untouched */
	assert_int_equal(send_request_status_get(f->c, "", &st, &err), SB_EINVAL);
	assert_true(err.msg[0] != '\0');
	sf_notif_release(&x);
}

static void test_send_flow__refused_file_sha_error(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	char id[SEND_REQUEST_ID_MAX];
	struct send_request_status st;
	struct sb_err err = SB_ERR_INIT;

	sf_notif_init(f, &x, NULL, NULL);
	assert_int_equal(sf_upload(f, &x, &err), 0);
	/* Declare the notice's digest for the document: well-formed, but not its bytes. */
	memcpy(x.doc[0].ref.sha256, x.up[1].ref.sha256, sizeof(x.doc[0].ref.sha256));
	assert_int_equal(send_notification_create(f->c, &x.n, &f->retry, id, NULL, &err), 0);
	assert_int_equal(send_request_wait(f->c, id, 30000, &f->retry, &st, &err), 0);
	assert_int_equal(st.state, SEND_REFUSED);
	assert_true(st.nrefusals >= 1);
	assert_string_equal(st.refusals[0].code, "FILE_SHA_ERROR");
	assert_string_equal(st.refusals[0].element, "documents[0]");
	assert_int_equal(sf_ledger(f, x.proto, "refused"), 1);
	assert_int_equal(sf_ledger(f, x.proto, "notifications"), 0);
	sf_notif_release(&x);
}

static void test_send_flow__refused_file_not_found(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	char id[SEND_REQUEST_ID_MAX];
	struct send_request_status st;
	struct sb_err err = SB_ERR_INIT;
	bool nf = false;

	sf_notif_init(f, &x, NULL, NULL);
	assert_int_equal(sf_upload(f, &x, &err), 0);
	snprintf(x.doc[0].ref.key, sizeof(x.doc[0].ref.key),
		 "PN_NOTIFICATION_ATTACHMENTS-never-uploaded.pdf");
	assert_int_equal(send_notification_create(f->c, &x.n, &f->retry, id, NULL, &err), 0);
	assert_int_equal(send_request_wait(f->c, id, 30000, &f->retry, &st, &err), 0);
	assert_int_equal(st.state, SEND_REFUSED);
	for (size_t i = 0; i < st.nrefusals; i++)
		nf |= !strcmp(st.refusals[i].code, "FILE_NOTFOUND");
	assert_true(nf);
	sf_notif_release(&x);
}

static void test_send_flow__refused_not_a_pdf(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct sb_err err = SB_ERR_INIT;
	char *txt = sf_file(f, "not-a-pdf.pdf", "plain text pretending to be a PDF\n");

	sf_notif_init(f, &x, NULL, NULL);
	free((char *)(uintptr_t)x.up[0].path);
	x.up[0].path = sb_xstrdup(txt);
	assert_int_equal(sf_submit(f, &x, &st, &err), 0);
	assert_int_equal(st.state, SEND_REFUSED);
	assert_string_equal(st.refusals[0].code, "FILE_PDF_INVALID_ERROR");
	free(txt);
	sf_notif_release(&x);
}

static void test_send_flow__f24_metadata_uploaded_and_checked(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct send_attachment_sel sel = { SEND_ATT_F24, 0, 0 };
	struct sb_err err = SB_ERR_INIT;
	char *json = sf_file(f, "f24.json", "{\"f24Standard\":{\"taxPayer\":{}}}");
	char *out = sb_xasprintf("%s/f24-out.json", f->dir);
	char sha[45];

	sf_notif_init(f, &x, NULL, NULL);
	x.up[2].path = json;
	x.up[2].content_type = SEND_CT_JSON;
	x.up[2].preload_idx = "f24";
	assert_int_equal(send_files_upload(f->c, x.up, 3, &f->retry, &err), 0);
	assert_int_equal(strncmp(x.up[2].ref.key, "PN_F24_META", 11), 0);
	x.doc[0].ref = x.up[0].ref;
	x.pay[0].has_pagopa_attachment = true;
	x.pay[0].pagopa_attachment = x.up[1].ref;
	x.pay[0].has_f24 = true;
	x.pay[0].f24_title = "F24 IMU";
	x.pay[0].f24_apply_cost = true;
	x.pay[0].f24_metadata = x.up[2].ref;
	{
		char id[SEND_REQUEST_ID_MAX];

		assert_int_equal(send_notification_create(f->c, &x.n, &f->retry,
							  id, NULL, &err), 0);
		assert_int_equal(send_request_wait(f->c, id, 30000, &f->retry, &st, &err), 0);
	}
	assert_int_equal(st.state, SEND_ACCEPTED);
	assert_int_equal(send_attachment_download(f->c, st.iun, &sel, x.up[2].ref.sha256, out,
						  10000, &f->retry, sha, &err), 0);
	assert_string_equal(sha, x.up[2].ref.sha256);
	free(json);
	free(out);
	sf_notif_release(&x);
}

static void test_send_flow__wait_gives_up_as_temporary(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	char id[SEND_REQUEST_ID_MAX];
	struct send_request_status st;
	struct sb_err err = SB_ERR_INIT;

	sf_notif_init(f, &x, NULL, NULL);
	assert_int_equal(sf_create(f, &x, id, &err), 0);
	/* Less time than the retryAfter SEND asks for: still WAITING, a temporary state. */
	assert_int_equal(send_request_wait(f->c, id, 10, &f->retry, &st, &err), SB_ETEMP);
	assert_int_equal(err.code, SB_ETEMP);
	assert_non_null(strstr(err.msg, "WAITING"));
	assert_int_equal(err.retry_after, 1);
	sf_notif_release(&x);
}

static void test_send_flow__digital_delivery_timeline(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct send_sent_notification *n;

	n = sf_deliver(f, &x, "mario.rossi@pec.example.it", NULL, "EFFECTIVE_DATE", &st);
	assert_non_null(n);
	assert_string_equal(n->iun, st.iun);
	assert_string_equal(n->protocol_number, x.proto);
	assert_true(sf_has_category(n, "REQUEST_ACCEPTED"));
	assert_true(sf_has_category(n, "SEND_DIGITAL_DOMICILE"));
	assert_true(sf_has_category(n, "DIGITAL_SUCCESS_WORKFLOW"));
	assert_true(sf_has_category(n, "REFINEMENT"));
	assert_false(sf_has_category(n, "SEND_ANALOG_DOMICILE"));
	/* An internal category (AAR_GENERATION) is kept, not refused: the set is open. */
	assert_true(sf_has_category(n, "AAR_GENERATION"));
	assert_true(n->nhistory >= 4);
	assert_string_equal(n->history[0].status, "ACCEPTED");
	assert_string_equal(n->history[1].status, "DELIVERING");
	assert_string_equal(n->history[2].status, "DELIVERED");
	send_sent_notification_free(n);
	sf_notif_release(&x);
}

static void test_send_flow__analog_unreachable_and_deceased(void **state)
{
	struct sf *f = *state;
	struct sf_notif x, y;
	struct send_request_status st, st2;
	struct send_sent_notification *n;

	n = sf_deliver(f, &x, NULL, "Via @FAIL-Irreperibile_AR 1", "UNREACHABLE", &st);
	assert_non_null(n);
	assert_true(sf_has_category(n, "SEND_ANALOG_DOMICILE"));
	assert_true(sf_has_category(n, "COMPLETELY_UNREACHABLE"));
	send_sent_notification_free(n);

	n = sf_deliver(f, &y, NULL, "Via @DECEDUTO 2", "EFFECTIVE_DATE", &st2);
	assert_non_null(n);
	assert_true(sf_has_category(n, "ANALOG_WORKFLOW_RECIPIENT_DECEASED"));
	send_sent_notification_free(n);
	sf_notif_release(&x);
	sf_notif_release(&y);
}

static void test_send_flow__pec_failure_falls_back(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct send_sent_notification *n;

	n = sf_deliver(f, &x, "prova@fail.it", NULL, "EFFECTIVE_DATE", &st);
	assert_non_null(n);
	assert_true(sf_has_category(n, "DIGITAL_FAILURE_WORKFLOW"));
	assert_true(sf_has_category(n, "SEND_SIMPLE_REGISTERED_LETTER"));
	send_sent_notification_free(n);
	sf_notif_release(&x);
}

static bool pdf_ok(const char *path)
{
	const char *argv[] = { "/usr/bin/qpdf", "--check", path, NULL };
	size_t len = 0;
	char *txt = th_read(path, &len);
	bool ok = txt && len > 20 && !memcmp(txt, "%PDF-", 5) && strstr(txt, "%%EOF");

	free(txt);
	/* qpdf is a dependency of the project (libqpdf); its CLI checks the xref table. */
	if (ok && access(argv[0], X_OK) == 0)
		ok = th_run(argv, NULL, NULL) == 0;
	return ok;
}

static void test_send_flow__legal_facts_listed_and_downloaded(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct send_sent_notification *n;
	struct send_legal_fact *lf = NULL;
	struct sb_err err = SB_ERR_INIT;
	size_t nlf = 0, ack = SIZE_MAX;
	uint64_t size = 0, file_size = 0;
	unsigned char md[SB_SHA256_LEN], file_md[SB_SHA256_LEN];
	char *out = sb_xasprintf("%s/ack.pdf", f->dir);

	n = sf_deliver(f, &x, "mario.rossi@pec.example.it", NULL, "DELIVERED|EFFECTIVE_DATE", &st);
	assert_non_null(n);
	send_sent_notification_free(n);
	assert_int_equal(send_legal_facts_list(f->c, st.iun, &lf, &nlf, &err), 0);
	assert_true(nlf >= 3);
	for (size_t i = 0; i < nlf; i++)
		if (!strcmp(lf[i].category, "SENDER_ACK"))
			ack = i;
	assert_true(ack != SIZE_MAX);
	assert_int_equal(strncmp(lf[ack].key, "safestorage://", 14), 0);
	f->nslept = 0;
	assert_int_equal(send_legal_fact_download(f->c, st.iun, lf[ack].key, out, 30000, &f->retry,
						  &size, md, &err), 0);
	/* The first metadata answer was retryAfter=1 (seconds): honoured. */
	assert_true(sf_slept(f, 1000));
	assert_true(size > 100);
	assert_true(pdf_ok(out));
	/* Hashed as it arrived: the digest is the file's. */
	assert_int_equal(sb_sha256_file(out, file_md, &file_size, &err), 0);
	assert_int_equal(file_size, size);
	assert_memory_equal(md, file_md, sizeof(md));

	/* Errors: unknown key, bad IUN; nothing written. */
	unlink(out);
	assert_int_equal(send_legal_fact_download(f->c, st.iun, "PN_LEGAL_FACTS-nope.pdf", out,
						  1000, &f->retry, NULL, NULL, &err), SB_ENOTFOUND);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(send_legal_facts_list(f->c, "not-an-iun", &lf, &nlf, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "iun"));
	send_legal_facts_free(lf, nlf);
	free(out);
	sf_notif_release(&x);
}

static void test_send_flow__attachments_match_upload(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct send_attachment_sel doc = { SEND_ATT_DOCUMENT, 0, -1 };
	struct send_attachment_sel pay = { SEND_ATT_PAGOPA, 0, 0 };
	struct send_attachment_sel f24 = { SEND_ATT_F24, 0, 0 };
	struct sb_err err = SB_ERR_INIT;
	char sha[45];
	char *out = sb_xasprintf("%s/doc.pdf", f->dir);
	size_t a = 0, b = 0;
	char *orig, *got;

	sf_notif_init(f, &x, NULL, NULL);
	assert_int_equal(sf_submit(f, &x, &st, &err), 0);
	assert_int_equal(send_attachment_download(f->c, st.iun, &doc, x.up[0].ref.sha256, out,
						  10000, &f->retry, sha, &err), 0);
	assert_string_equal(sha, x.up[0].ref.sha256);
	orig = th_read(x.up[0].path, &a);
	got = th_read(out, &b);
	assert_int_equal(a, b);
	assert_memory_equal(orig, got, a);
	free(orig);
	free(got);
	assert_int_equal(send_attachment_download(f->c, st.iun, &pay, x.up[1].ref.sha256, out,
						  10000, &f->retry, sha, &err), 0);
	assert_string_equal(sha, x.up[1].ref.sha256);
	/* Only hashed, never written: the same checks without a file. */
	memset(sha, 0, sizeof(sha));
	assert_int_equal(send_attachment_download(f->c, st.iun, &pay, x.up[1].ref.sha256, NULL,
						  10000, &f->retry, sha, &err), 0);
	assert_string_equal(sha, x.up[1].ref.sha256);
	assert_int_equal(send_attachment_download(f->c, st.iun, &doc, x.up[0].ref.sha256, NULL,
						  10000, &f->retry, NULL, &err), 0);

	/* What SEND holds is not what we uploaded: refused, named. */
	assert_int_equal(send_attachment_download(f->c, st.iun, &doc, x.up[1].ref.sha256, out,
						  10000, &f->retry, sha, &err), SB_EREJECT);
	assert_int_equal(err.code, SB_EREJECT);
	assert_non_null(strstr(err.msg, "sha256"));
	/* No F24 for this recipient: 404. */
	assert_int_equal(send_attachment_download(f->c, st.iun, &f24, NULL, out, 10000, &f->retry,
						  NULL, &err), SB_ENOTFOUND);
	free(out);
	sf_notif_release(&x);
}

static void test_send_flow__price_and_cancel(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct send_sent_notification *n;
	struct send_price p;
	struct sb_err err = SB_ERR_INIT;

	sf_notif_init(f, &x, NULL, NULL);
	assert_int_equal(sf_submit(f, &x, &st, &err), 0);
	assert_int_equal(send_price_get(f->c, x.notice[0], &p, &err), 0);
	assert_string_equal(p.iun, st.iun);
	assert_int_equal(p.pa_fee, 100);
	assert_int_equal(p.vat, 22);
	assert_true(p.total_price >= p.partial_price);
	assert_int_equal(send_price_get(f->c, "302010999999999999", &p, &err), SB_ENOTFOUND);
	assert_int_equal(err.http, 404);
	assert_int_equal(send_price_get(f->c, "12345", &p, &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "noticeCode"));

	assert_int_equal(send_notification_cancel(f->c, st.iun, &err), 0);
	n = sf_wait_status(f, st.iun, "CANCELLED");
	assert_non_null(n);
	assert_true(sf_has_category(n, "NOTIFICATION_CANCELLATION_REQUEST"));
	assert_true(sf_has_category(n, "NOTIFICATION_CANCELLED"));
	send_sent_notification_free(n);
	assert_int_equal(send_notification_cancel(f->c, "AAAA-BBBB-CCCC-202601-A-1", &err),
			 SB_ENOTFOUND);
	assert_int_equal(send_notification_cancel(f->c, "bad", &err), SB_EINVAL);
	assert_true(err.msg[0] != '\0');
	sf_notif_release(&x);
}

static void test_send_flow__viewed_by_recipient(void **state)
{
	struct sf *f = *state;
	struct sf_notif x;
	struct send_request_status st;
	struct send_sent_notification *n;
	struct sb_err err = SB_ERR_INIT;
	char *path;

	sf_notif_init(f, &x, NULL, NULL);
	assert_int_equal(sf_submit(f, &x, &st, &err), 0);
	path = sb_xasprintf("/_sim/send/view?iun=%s&recIndex=0", st.iun);
	assert_int_equal(sf_raw(f, "POST", path, NULL, "", NULL, NULL), 200);
	n = sf_wait_status(f, st.iun, "VIEWED");
	assert_non_null(n);
	assert_true(sf_has_category(n, "NOTIFICATION_VIEWED"));
	send_sent_notification_free(n);
	assert_int_equal(send_notification_get(f->c, "ZZZZ-ZZZZ-ZZZZ-202601-Z-9", &n, &err),
			 SB_ENOTFOUND);
	free(path);
	sf_notif_release(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_flow__submit_accepted_with_iun),
		cmocka_unit_test(test_send_flow__409_reconciled_never_twice),
		cmocka_unit_test(test_send_flow__find_by_protocol_and_token),
		cmocka_unit_test(test_send_flow__refused_file_sha_error),
		cmocka_unit_test(test_send_flow__refused_file_not_found),
		cmocka_unit_test(test_send_flow__refused_not_a_pdf),
		cmocka_unit_test(test_send_flow__f24_metadata_uploaded_and_checked),
		cmocka_unit_test(test_send_flow__wait_gives_up_as_temporary),
		cmocka_unit_test(test_send_flow__digital_delivery_timeline),
		cmocka_unit_test(test_send_flow__analog_unreachable_and_deceased),
		cmocka_unit_test(test_send_flow__pec_failure_falls_back),
		cmocka_unit_test(test_send_flow__legal_facts_listed_and_downloaded),
		cmocka_unit_test(test_send_flow__attachments_match_upload),
		cmocka_unit_test(test_send_flow__price_and_cancel),
		cmocka_unit_test(test_send_flow__viewed_by_recipient),
	};

	sb_http_global_init();
	return cmocka_run_group_tests_name("send_flow", tests, setup, sf_group_teardown);
}
