/*
 * A notification cancelled at SEND while the daemon tracks it: the real
 * `send-bridge run` against send-sim, whose timeline steps are an hour
 * apart so the act is still being delivered when `send-bridge cancel IUN`
 * is run (send-sim then completes the cancellation after
 * --send-cancel-ms).
 *
 * What is proven: the act ends `closed` with its notification recorded as
 * CANCELLED and no cost; its folder leaves work/ for done/ with a
 * reason.json that says it was cancelled; SEND's NOTIFICATION_CANCELLED
 * legal fact is registered once in the protocol, linked to the act's
 * outgoing registration, and kept with the act; `status` shows the
 * cancellation; the audit trail records the request under the act; SEND's
 * ledger holds one notification for the act, cancelled.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "../helpers/th.h"
#include "../helpers/th_e2e.h"
#include "../helpers/th_platform.h"

#define ACT "2026-CANC-1"

static const char *const extra_sim[] = {
	"--send-step-ms", "3600000", "--send-accept-ms", "50", "--send-legal-fact-retry", "0",
	"--send-stream-interval-ms", "200", "--send-cancel-ms", "100", NULL,
};

/* The act's IUN once it is tracked (accepted or delivering); owned. */
static char *wait_tracked(const char *db_path, const char *log)
{
	for (int waited = 0;; waited++) {
		sqlite3 *db = NULL;
		char *iun = NULL;

		sqlite3_stmt *st = NULL;

		/* Errors are expected until the daemon has made its tables. */
		if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
		    sqlite3_busy_timeout(db, 2000) == SQLITE_OK &&
		    sqlite3_prepare_v2(db, "SELECT n.iun FROM notifications n JOIN acts a"
				       " ON a.id = n.act WHERE a.act_id = ?1 AND n.iun IS NOT NULL"
				       " AND a.state IN ('accepted', 'delivering')", -1, &st,
				       NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, ACT, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW)
				iun = sb_xstrdup((const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_finalize(st);
		sqlite3_close(db);
		if (iun)
			return iun;
		if (waited > 600) {
			char *text = th_read(log, NULL);

			fail_msg("act not accepted after 60 s; log:\n%s", text ? text : "");
		}
		th_sleep_ms(100);
	}
}

/*
 * The act closed and its notification CANCELLED; SEND's attestation of the
 * cancellation registered once, linked to the act's outgoing registration;
 * no receipt left unregistered; its legal facts kept with the act.
 */
static void assert_cancelled(sqlite3 *db, const char *root, const char *iun)
{
	char *text, *path;

	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts WHERE act_id = ?1"
				    " AND state = 'closed'", ACT), 1);
	text = th_e2e_text(db, "SELECT n.status FROM notifications n JOIN acts a ON a.id = n.act"
			   " WHERE a.act_id = ?1", ACT);
	assert_non_null(text);
	assert_string_equal(text, "CANCELLED");
	free(text);
	assert_int_equal(th_e2e_int(db,
				    "SELECT count(*) FROM receipts r JOIN acts a ON a.id = r.act"
				    " WHERE a.act_id = ?1 AND r.category = 'NOTIFICATION_CANCELLED'"
				    " AND r.protocol_number IS NOT NULL", ACT), 1);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations p"
				    " WHERE p.direction = 'in' AND p.iun = ?1"
				    " AND p.legal_fact_id = (SELECT legal_fact_key FROM receipts"
				    "   WHERE iun = ?1 AND category = 'NOTIFICATION_CANCELLED')"
				    " AND p.link = (SELECT id FROM proto_registrations"
				    "   WHERE act_id = '" ACT "' AND direction = 'out')", iun), 1);
	assert_int_equal(th_e2e_int(db,
				    "SELECT count(*) FROM receipts r JOIN acts a ON a.id = r.act"
				    " WHERE a.act_id = ?1 AND r.protocol_number IS NULL", ACT), 0);
	path = sb_xasprintf("%s/done/%s/receipts", root, ACT);
	assert_int_equal((int64_t)th_outbox_entries(path, "."),
			 th_e2e_int(db, "SELECT count(*) FROM receipts WHERE iun = ?1", iun));
	free(path);
}

static void test_e2e_cancel__cancelled_while_tracked_closes_the_act(void **state)
{
	struct th_sim sim;
	char *dir = th_tmpdir("e2e-cancel"), *root = sb_xasprintf("%s/outbox", dir);
	char *log = sb_xasprintf("%s/send-bridge.log", dir);
	char *db_path = sb_xasprintf("%s/cancel.db", dir), *cfg, *json, *iun, *proto, *text, *path;
	char *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	struct sb_buf out = SB_BUF_INIT(1 << 20);
	sqlite3 *db = NULL;
	pid_t pid;

	(void)state;
	th_sim_start(&sim, extra_sim);
	cfg = th_e2e_config(dir, "cancel", sim.url, 2, NULL);
	json = th_e2e_act_json(1, true);
	th_outbox_publish_json(root, ACT, json);
	pid = th_e2e_run(cfg, log);
	iun = wait_tracked(db_path, log);
	{
		const char *argv[] = { bin, "cancel", iun, "-c", cfg, NULL };

		assert_int_equal(th_run(argv, &out, NULL), 0);
		assert_non_null(strstr(sb_buf_cstr(&out), "cancellation of"));
		assert_non_null(strstr(sb_buf_cstr(&out), "act " ACT ":"));
	}
	th_e2e_wait_finished(root, 1, &pid, log, 60);
	assert_int_equal(th_child_stop(&pid, SIGTERM), 0);
	assert_int_equal(th_outbox_entries(root, "done"), 1);
	assert_int_equal(th_outbox_entries(root, "work"), 0);

	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_cancelled(db, root, iun);
	assert_int_equal(th_e2e_int(db, "SELECT n.cost_cents IS NULL FROM notifications n"
				    " JOIN acts a ON a.id = n.act WHERE a.act_id = ?1", ACT), 1);
	/* Who asked, in the audit trail under the act. */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM audit"
				    " WHERE action = 'notification.cancel'"
				    " AND subject = '" ACT "' AND detail = ?1", iun), 1);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM outcomes WHERE act_id = ?1"
				    " AND state = 'closed' AND folder IS NOT NULL", ACT), 1);
	proto = th_e2e_text(db, "SELECT n.protocol_number FROM notifications n JOIN acts a"
			    " ON a.id = n.act WHERE a.act_id = ?1", ACT);
	assert_non_null(proto);
	sqlite3_close(db);
	path = sb_xasprintf("%s/done/%s/reason.json", root, ACT);
	text = th_read(path, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"state\":\"closed\""));
	assert_non_null(strstr(text, "cancelled at SEND"));
	free(text);
	free(path);

	/* SEND's ledger: one notification for the act's protocol number, and it is cancelled. */
	assert_int_equal(th_e2e_ledger_notifications(sim.url, proto), 1);
	assert_int_equal(th_e2e_ledger_int(sim.url, proto, "cancelled"), 1);

	/* What staff see. */
	{
		const char *argv[] = { bin, "status", ACT, "-c", cfg, NULL };
		const char *line;

		sb_buf_reset(&out);
		assert_int_equal(th_run(argv, &out, NULL), 0);
		line = strstr(sb_buf_cstr(&out), ACT);
		assert_non_null(line);
		assert_non_null(strstr(line, " closed "));
		assert_non_null(strstr(line, iun));
		assert_non_null(strstr(line, "NOTIFICATION_CANCELLED"));
		assert_non_null(strstr(line, "cancelled at SEND"));
	}
	th_sim_stop(&sim);
	th_rmrf(dir);
	sb_buf_release(&out);
	free(proto);
	free(iun);
	free(json);
	free(cfg);
	free(bin);
	free(db_path);
	free(log);
	free(root);
	free(dir);
}

/*
 * The act sent, read by its recipient (VIEWED, final) and closed into
 * done/ by the daemon started here (*pid, with its configuration *cfg,
 * named name: its store is dir/name.db); returns its IUN, owned.
 */
static char *close_one(const struct th_sim *sim, const char *dir, const char *name,
		       const char *db_path, const char *log, char **cfg, pid_t *pid)
{
	char *root = sb_xasprintf("%s/outbox", dir), *json = th_e2e_act_json(2, true), *iun, *view;

	*cfg = th_e2e_config(dir, name, sim->url, 2, NULL);
	th_outbox_publish_json(root, ACT, json);
	*pid = th_e2e_run(*cfg, log);
	iun = wait_tracked(db_path, log);
	view = sb_xasprintf("/_sim/send/view?iun=%s&recIndex=0", iun);
	assert_int_equal(th_e2e_sim_call(sim->url, "POST", view, NULL), 200);
	th_e2e_wait_int(db_path, "SELECT count(*) FROM outcomes WHERE act_id = ?1"
			" AND state = 'closed' AND folder IS NOT NULL", ACT, 1, log);
	assert_int_equal(th_outbox_entries(root, "done"), 1);
	free(view);
	free(json);
	free(root);
	return iun;
}

/*
 * Once the cancellation of the closed act is registered and no late event
 * is left, the daemon stopped, the act still in done/ and assert_cancelled;
 * returns the store, open read-only.
 */
static sqlite3 *stop_when_registered(const char *db_path, const char *log, const char *root,
				     const char *iun, pid_t *pid)
{
	sqlite3 *db = NULL;

	th_e2e_wait_int(db_path, "SELECT count(*) FROM receipts WHERE iun = ?1"
			" AND category = 'NOTIFICATION_CANCELLED'", iun, 1, log);
	th_e2e_wait_int(db_path, "SELECT count(*) = 0 FROM late_events", NULL, 1, log);
	assert_int_equal(th_child_stop(pid, SIGTERM), 0);
	assert_int_equal(th_outbox_entries(root, "done"), 1);
	assert_int_equal(th_outbox_entries(root, "rejected"), 0);
	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_cancelled(db, root, iun);
	return db;
}

/*
 * Cancelled at SEND after the act closed: the act is read by its recipient
 * (VIEWED, final), closes and goes to done/; then `send-bridge cancel IUN`.
 * SEND's NOTIFICATION_CANCELLED legal fact must still be registered once,
 * linked to the outgoing registration, and kept in done/<act>/receipts/;
 * the notification is recorded as CANCELLED, the act stays closed, its
 * folder gets a reason.json saying so, and status tells staff.
 */
static void test_e2e_cancel__cancelled_after_closing_registers_the_receipt(void **state)
{
	struct th_sim sim;
	char *dir = th_tmpdir("e2e-cancel-late"), *root = sb_xasprintf("%s/outbox", dir);
	char *log = sb_xasprintf("%s/send-bridge.log", dir);
	char *db_path = sb_xasprintf("%s/late.db", dir), *cfg, *iun, *text, *path;
	char *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	struct sb_buf out = SB_BUF_INIT(1 << 20);
	sqlite3 *db = NULL;
	int64_t before;
	pid_t pid;

	(void)state;
	th_sim_start(&sim, extra_sim);
	iun = close_one(&sim, dir, "late", db_path, log, &cfg, &pid);
	{
		const char *argv[] = { bin, "cancel", iun, "-c", cfg, NULL };

		assert_int_equal(th_run(argv, &out, NULL), 0);
	}
	/* The one who asked was told that the act stays closed. */
	assert_non_null(strstr(sb_buf_cstr(&out), "already closed"));
	db = stop_when_registered(db_path, log, root, iun, &pid);
	/* Every legal fact once: the ones before closing and the cancellation. */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM receipts WHERE iun = ?1"
				    " AND category IN ('SENDER_ACK', 'RECIPIENT_ACCESS')", iun), 2);
	before = th_e2e_int(db, "SELECT count(*) FROM receipts WHERE iun = ?1", iun);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations WHERE"
				    " direction = 'in' AND iun = ?1", iun), before);
	sqlite3_close(db);
	path = sb_xasprintf("%s/done/%s/reason.json", root, ACT);
	text = th_read(path, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"state\":\"closed\""));
	assert_non_null(strstr(text, "cancelled at SEND after the act had closed"));
	free(text);
	free(path);

	/* What staff see: still closed, and why the notification shows as cancelled. */
	{
		const char *argv[] = { bin, "status", ACT, "-c", cfg, NULL };
		const char *line;

		sb_buf_reset(&out);
		assert_int_equal(th_run(argv, &out, NULL), 0);
		line = strstr(sb_buf_cstr(&out), ACT);
		assert_non_null(line);
		assert_non_null(strstr(line, " closed "));
		assert_non_null(strstr(line, "cancelled at SEND after it was notified"));
	}

	/* A restart does not register it again. */
	pid = th_e2e_run(cfg, log);
	th_sleep_ms(1500);
	assert_int_equal(th_child_stop(&pid, SIGTERM), 0);
	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations WHERE"
				    " direction = 'in' AND iun = ?1", iun), before);
	sqlite3_close(db);
	assert_int_equal(th_e2e_ledger_int(sim.url, NULL, "cancelled"), 1);

	th_sim_stop(&sim);
	th_rmrf(dir);
	sb_buf_release(&out);
	free(iun);
	free(cfg);
	free(bin);
	free(db_path);
	free(log);
	free(root);
	free(dir);
}

/*
 * Cancelled at SEND after the act closed, while SEND had lost the daemon's
 * event stream: the daemon is frozen (SIGSTOP) once the act is closed, its
 * stream deleted with SEND's DELETE /streams/{id} and the notification
 * cancelled with SEND's own cancel call, so no stream will ever carry the
 * cancellation. Resumed, the daemon replaces the stream and reads the
 * timeline of the acts closed in the last stream_catchup_closed_days too:
 * the NOTIFICATION_CANCELLED legal fact is registered once, like the one
 * a stream brings, and no catch-up is left owed.
 */
static void test_e2e_cancel__cancelled_after_closing_while_the_stream_was_lost(void **state)
{
	struct th_sim sim;
	char *dir = th_tmpdir("e2e-cancel-gap"), *root = sb_xasprintf("%s/outbox", dir);
	char *log = sb_xasprintf("%s/send-bridge.log", dir);
	char *db_path = sb_xasprintf("%s/gap.db", dir), *cfg, *iun, *stream, *path, *cancel, *text;
	sqlite3 *db = NULL;
	pid_t pid;

	(void)state;
	th_sim_start(&sim, extra_sim);
	iun = close_one(&sim, dir, "gap", db_path, log, &cfg, &pid);

	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	stream = th_e2e_text(db, "SELECT value FROM meta WHERE key = 'send.stream_id'", NULL);
	assert_non_null(stream);
	sqlite3_close(db);
	path = sb_xasprintf("/delivery-progresses/v2.9/streams/%s", stream);
	cancel = sb_xasprintf("/delivery-push/v2.0/notifications/cancel/%s", iun);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_int_equal(th_e2e_sim_call(sim.url, "DELETE", path, NULL), 204);
	assert_int_equal(th_e2e_sim_call(sim.url, "PUT", cancel, NULL), 202);
	/* send-sim completes a cancellation after --send-cancel-ms (100): well inside the gap. */
	th_sleep_ms(1000);
	assert_int_equal(th_e2e_ledger_int(sim.url, NULL, "cancelled"), 1);
	assert_int_equal(kill(pid, SIGCONT), 0);

	db = stop_when_registered(db_path, log, root, iun, &pid);
	/* It came from the timeline, and the daemon follows a new stream with nothing owed. */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM events WHERE iun = ?1"
				    " AND event_id LIKE 'timeline:%'"
				    " AND category = 'NOTIFICATION_CANCELLED'", iun), 1);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM stream_catchup", NULL), 0);
	text = th_e2e_text(db, "SELECT value FROM meta WHERE key = 'send.stream_id'", NULL);
	assert_non_null(text);
	assert_string_not_equal(text, stream);
	free(text);
	sqlite3_close(db);

	th_sim_stop(&sim);
	th_rmrf(dir);
	free(cancel);
	free(path);
	free(stream);
	free(iun);
	free(cfg);
	free(db_path);
	free(log);
	free(root);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(test_e2e_cancel__cancelled_while_tracked_closes_the_act),
		th_unit_test(test_e2e_cancel__cancelled_after_closing_registers_the_receipt),
		th_unit_test(test_e2e_cancel__cancelled_after_closing_while_the_stream_was_lost),
	};

	return cmocka_run_group_tests_name("e2e_cancel", tests, NULL, NULL);
}
