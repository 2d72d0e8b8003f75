/*
 * What the daemon checks of SEND itself, with the real `send-bridge run`
 * against send-sim:
 *
 * - SEND's copy of a pagoPA notice PDF differs from the upload (send-sim's
 *   --send-corrupt-notice changes one byte of it): the act does not close,
 *   it ends `failed` with a reason naming the attachment, while an act whose
 *   files SEND holds unchanged closes;
 * - a crash right after the event stream was created at SEND and before its
 *   id was stored (made here by deleting the stored id): the restart finds
 *   that stream again instead of creating a second one, and tracks through it;
 * - SEND's answer to "is the stream disabled?" (GET /streams/{id}) makes no
 *   sense, another stream or a gateway's 403 (send-sim's
 *   --send-stream-get-fault): the acts close all the same, through the same
 *   stream, and the daemon says so in a warning that names the problem, no
 *   more often than [send] stream_check_interval allows.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_http.h"
#include "sb_json.h"
#include "sb_time.h"
#include "../helpers/th.h"
#include "../helpers/th_e2e.h"
#include "../helpers/th_platform.h"

#define CORRUPT_NOTICE "302010000000001001"   /* fixtures/acts/fine-pagopa */

static void test_e2e_send_checks__a_changed_payment_notice_fails_the_act(void **state)
{
	static const char *const extra_sim[] = {
		"--send-step-ms", "20", "--send-accept-ms", "50", "--send-legal-fact-retry", "0",
		"--send-stream-interval-ms", "200", "--send-corrupt-notice", CORRUPT_NOTICE, NULL,
	};
	struct th_sim sim;
	char *dir = th_own(th_tmpdir("e2e-checks")), *root = th_own(sb_xasprintf("%s/outbox", dir));
	char *log = th_own(sb_xasprintf("%s/send-bridge.log", dir));
	char *db_path = th_own(sb_xasprintf("%s/checks.db", dir)), *cfg, *text;
	sqlite3 *db;
	pid_t pid;

	(void)state;
	th_sim_start(&sim, extra_sim);
	cfg = th_own(th_e2e_config(dir, "checks", sim.url, 2, NULL));
	th_outbox_publish(root, "acts/fine-pagopa", "2026-CHK-BAD");
	th_outbox_publish(root, "acts/fine-pec", "2026-CHK-GOOD");
	pid = th_e2e_run(cfg, log);
	th_e2e_wait_finished(root, 2, &pid, log, 60);
	assert_int_equal(th_child_stop(&pid, SIGTERM), 0);

	db = th_e2e_db(db_path);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts WHERE act_id = ?1"
				    " AND state = 'failed'", "2026-CHK-BAD"), 1);
	text = th_own(th_e2e_text(db, "SELECT last_error FROM acts WHERE act_id = ?1",
				  "2026-CHK-BAD"));
	assert_non_null(text);
	assert_non_null(strstr(text, "recipients[0].payments[0] pagoPA notice"));
	assert_non_null(strstr(text, "differs from the upload"));
	/* It was notified, once: only the final check failed. */
	text = th_own(th_e2e_text(db, "SELECT n.protocol_number FROM notifications n JOIN acts a"
				  " ON a.id = n.act WHERE a.act_id = ?1", "2026-CHK-BAD"));
	assert_non_null(text);
	assert_int_equal(th_e2e_ledger_notifications(sim.url, text), 1);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts WHERE act_id = ?1"
				    " AND state = 'closed'", "2026-CHK-GOOD"), 1);
	/* Its document and notice were compared too, and its price recorded. */
	assert_true(th_e2e_int(db, "SELECT n.cost_cents FROM notifications n JOIN acts a"
			       " ON a.id = n.act WHERE a.act_id = ?1", "2026-CHK-GOOD") > 0);
	text = th_own(th_read(th_own(sb_xasprintf("%s/rejected/2026-CHK-BAD/reason.json", root)),
			      NULL));
	assert_non_null(text);
	assert_non_null(strstr(text, "\"state\":\"failed\""));
	assert_non_null(strstr(text, "pagoPA notice"));
	assert_true(th_outbox_entries(th_own(sb_xasprintf("%s/done/2026-CHK-GOOD/receipts", root)),
				      ".") >= 2);
	assert_int_equal(th_outbox_entries(root, "done"), 1);
	assert_int_equal(th_outbox_entries(root, "rejected"), 1);

	th_sim_stop(&sim);
	th_rmrf(dir);
}

/* send-sim's streams of the PA: how many, and the first one's id into id (37). */
static size_t sim_streams(const char *sim_url, char *id)
{
	static const char *const headers[] = { "x-api-key: sim-send-key", NULL };
	struct sb_err err = SB_ERR_INIT;
	struct sb_http *h = NULL;
	struct sb_http_resp resp = { 0 };
	char *url = sb_xasprintf("%s/delivery-progresses/v2.9/streams", sim_url);
	json_t *j = NULL;
	size_t n;

	resp.body = (struct sb_buf)SB_BUF_INIT(1 << 16);
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	assert_int_equal(sb_http_do(h, &(struct sb_http_req){ .method = "GET", .url = url,
					.headers = headers }, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(sb_json_parse(resp.body.buf, resp.body.len, 1 << 16, "streams", &j, &err),
			 0);
	n = json_array_size(j);
	if (n)
		snprintf(id, 37, "%s",
			 json_string_value(json_object_get(json_array_get(j, 0), "streamId")));
	json_decref(j);
	sb_http_resp_release(&resp);
	sb_http_free(h);
	free(url);
	return n;
}

static char *meta(const char *db_path, const char *key)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *v = NULL;

	/* Errors are expected until the daemon has made its tables. */
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_busy_timeout(db, 2000) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) ==
		    SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sb_xstrdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void test_e2e_send_checks__a_stream_whose_id_was_lost_is_found_again(void **state)
{
	static const char *const extra_sim[] = {
		"--send-step-ms", "20", "--send-accept-ms", "50", "--send-legal-fact-retry", "0",
		"--send-stream-interval-ms", "200", NULL,
	};
	struct th_sim sim;
	char *dir = th_own(th_tmpdir("e2e-stream")), *root = th_own(sb_xasprintf("%s/outbox", dir));
	char *log = th_own(sb_xasprintf("%s/send-bridge.log", dir));
	char *db_path = th_own(sb_xasprintf("%s/stream.db", dir)), *cfg, *json, *first, *text;
	char at_sim[37] = "";
	sqlite3 *db = NULL;
	pid_t pid;
	int waited = 0;

	(void)state;
	th_sim_start(&sim, extra_sim);
	cfg = th_own(th_e2e_config(dir, "stream", sim.url, 2, NULL));
	pid = th_e2e_run(cfg, log);
	while (!(first = meta(db_path, "send.stream_id"))) {
		if (waited++ > 600) {
			text = th_own(th_read(log, NULL));
			fail_msg("no stream after 60 s; log:\n%s", text ? text : "");
		}
		th_sleep_ms(100);
	}
	th_own(first);
	assert_int_equal(th_child_stop(&pid, SIGKILL), 128 + SIGKILL);
	assert_int_equal(sim_streams(sim.url, at_sim), 1);
	assert_string_equal(at_sim, first);

	/* The state a crash between SEND's reply and storing the id leaves. */
	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM meta WHERE key = 'send.stream_id'", NULL,
				      NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	json = th_own(th_e2e_act_json(1, true));
	th_outbox_publish_json(root, "2026-STREAM-1", json);
	pid = th_e2e_run(cfg, log);
	th_e2e_wait_finished(root, 1, &pid, log, 60);
	assert_int_equal(th_child_stop(&pid, SIGTERM), 0);

	/* Still one stream at SEND, the first, and the act was tracked through it. */
	assert_int_equal(sim_streams(sim.url, at_sim), 1);
	assert_string_equal(at_sim, first);
	text = th_own(meta(db_path, "send.stream_id"));
	assert_non_null(text);
	assert_string_equal(text, first);
	assert_int_equal(th_e2e_int(th_e2e_db(db_path),
				    "SELECT count(*) FROM acts WHERE act_id = ?1"
				    " AND state = 'closed'", "2026-STREAM-1"), 1);

	th_sim_stop(&sim);
	th_rmrf(dir);
}

/* Lines of text holding needle; the first such line into first (may be NULL), owned. */
static size_t log_lines(const char *text, const char *needle, char **first)
{
	size_t n = 0;

	for (const char *p = text; p && *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (memmem(p, len, needle, strlen(needle))) {
			if (first && !n)
				*first = th_own(sb_xasprintf("%.*s", (int)len, p));
			n++;
		}
		p += len + (end != NULL);
	}
	return n;
}

#define CHECK_WARN "warn steps: stream check failed: "

/*
 * The daemon over send-sim with --send-stream-get-fault kind and a check
 * every second: two acts (one by PEC, one by post) close with their
 * receipts, the stream is kept, and the warning says what was wrong (want,
 * where "%s" is the stream's id) at most once a second.
 */
static void stream_check_fault(const char *kind, const char *want)
{
	const char *const extra_sim[] = {
		"--send-step-ms", "20", "--send-accept-ms", "50", "--send-legal-fact-retry", "0",
		"--send-stream-interval-ms", "200", "--send-stream-get-fault", kind, NULL,
	};
	struct th_sim sim;
	char *dir = th_own(th_tmpdir("e2e-check")), *root = th_own(sb_xasprintf("%s/outbox", dir));
	char *log = th_own(sb_xasprintf("%s/send-bridge.log", dir));
	char *db_path = th_own(sb_xasprintf("%s/check.db", dir)), *cfg, *text, *stream_id;
	char *first = NULL, at_sim[37] = "";
	int64_t t0, t1;
	size_t n = 0;
	sqlite3 *db;
	pid_t pid;

	th_sim_start(&sim, extra_sim);
	cfg = th_own(th_e2e_config(dir, "check", sim.url, 2,
				   "[send]\nstream_check_interval = 1\n"));
	for (int i = 1; i <= 2; i++) {
		char *id = th_own(sb_xasprintf("2026-CHECK-%d", i));

		th_outbox_publish_json(root, id, th_own(th_e2e_act_json(i, i == 1)));
	}
	t0 = sb_now_ms();
	pid = th_e2e_run(cfg, log);
	th_e2e_wait_finished(root, 2, &pid, log, 60);
	/*
	 * A few checks, to see that they repeat, over 3 s at least: time for a
	 * reader that checked at each empty page (5 a second) to show it.
	 */
	for (int waited = 0;; waited++) {
		text = th_read(log, NULL);
		n = log_lines(text, CHECK_WARN, NULL);
		free(text);
		if (n >= 3 && sb_now_ms() - t0 >= 3000)
			break;
		if (waited > 300 || th_child_poll(&pid) >= 0)
			fail_msg("%zu stream check warnings after %d s; log:\n%s", n, waited / 10,
				 th_own(th_read(log, NULL)));
		th_sleep_ms(100);
	}
	assert_int_equal(th_child_stop(&pid, SIGTERM), 0);
	t1 = sb_now_ms();

	db = th_e2e_db(db_path);
	stream_id = th_own(th_e2e_text(db, "SELECT value FROM meta WHERE key = 'send.stream_id'",
				       NULL));
	assert_non_null(stream_id);
	/* The reply told nothing: the stream is not taken for disabled, nor replaced. */
	assert_int_equal(sim_streams(sim.url, at_sim), 1);
	assert_string_equal(at_sim, stream_id);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM stream_catchup", NULL), 0);
	for (int i = 1; i <= 2; i++) {
		char *id = th_own(sb_xasprintf("2026-CHECK-%d", i));

		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts WHERE act_id = ?1"
					    " AND state = 'closed'", id), 1);
		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM receipts c JOIN acts a"
					    " ON a.id = c.act WHERE a.act_id = ?1"
					    " AND c.category = 'SENDER_ACK'"
					    " AND c.protocol_number IS NOT NULL", id), 1);
		assert_true(th_outbox_entries(th_own(sb_xasprintf("%s/done/%s/receipts", root, id)),
					      ".") >= 2);
	}
	assert_int_equal(th_e2e_ledger_notifications(sim.url, NULL), 2);

	text = th_own(th_read(log, NULL));
	assert_non_null(text);
	n = log_lines(text, CHECK_WARN, &first);
	assert_true(n >= 3);
	assert_non_null(strstr(first, th_own(sb_xasprintf(want, stream_id))));
	/* Every check is at least a second after the one before, all within [t0, t1]. */
	if ((int64_t)(n - 1) * 1000 > t1 - t0)
		fail_msg("%zu stream check warnings in %lld ms, at most one a second; log:\n%s",
			 n, (long long)(t1 - t0), text);
	/* Personal data stays out of the log (the acts' recipient). */
	assert_null(strstr(text, "TSTMRA80A01H501C"));
	assert_null(strstr(text, "Mario Test"));
	assert_null(strstr(text, "mario.test@pec.example.it"));

	th_sim_stop(&sim);
	th_rmrf(dir);
}

static void test_e2e_send_checks__a_stream_check_about_another_stream_warns(void **state)
{
	(void)state;
	stream_check_fault("other", "get stream: the reply is not stream %s");
}

static void test_e2e_send_checks__a_stream_check_denied_by_the_gateway_warns(void **state)
{
	(void)state;
	stream_check_fault("deny", "GET /delivery-progresses/v2.9/streams/%s: http 403 (gateway):"
			   " User is not authorized");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(test_e2e_send_checks__a_changed_payment_notice_fails_the_act),
		th_unit_test(test_e2e_send_checks__a_stream_whose_id_was_lost_is_found_again),
		th_unit_test(test_e2e_send_checks__a_stream_check_about_another_stream_warns),
		th_unit_test(test_e2e_send_checks__a_stream_check_denied_by_the_gateway_warns),
	};

	sb_http_global_init();
	return cmocka_run_group_tests_name("e2e_send_checks", tests, NULL, NULL);
}
