/*
 * SEND's event stream deleted while the daemon tracks acts: the real
 * `send-bridge run` against send-sim, whose timeline steps are an hour
 * apart, so each act waits in tracking after its SENDER_ACK. The daemon is
 * frozen (SIGSTOP), its stream deleted at SEND with SEND's own DELETE
 * /streams/{id}, and every notification read by its recipient
 * (NOTIFICATION_VIEWED, a final status, and a RECIPIENT_ACCESS legal
 * fact): those events happen while no stream exists, so no stream will
 * ever carry them. Then the daemon goes on (SIGCONT).
 *
 * What is proven: every act closes; each has its SENDER_ACK and its
 * RECIPIENT_ACCESS registered exactly once in the protocol, linked to its
 * outgoing registration, and kept in done/<act>/receipts/; the events of
 * the gap came from the timeline (the catch-up), the installation has a
 * new stream, and no catch-up is left owed. The second test disables the
 * stream instead of deleting it: SEND still answers its reads, with
 * nothing. The third kills the daemon (SIGKILL) once the catch-up is
 * recorded and before it is done: a restart finishes it, with the same
 * result.
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

#define NACTS 3

static const char *const extra_sim[] = {
	"--send-step-ms", "3600000", "--send-accept-ms", "50", "--send-legal-fact-retry", "0",
	"--send-stream-interval-ms", "200", NULL,
};

struct run {
	struct th_sim sim;
	char *dir, *root, *log, *db_path, *cfg;
	char *iuns[NACTS];
	char *stream_id;      /* the stream deleted at SEND */
	pid_t pid;
};

static char *act_name(int i)
{
	return sb_xasprintf("2026-STRM-%d", i);
}

/*
 * The acts tracked, each with its SENDER_ACK registered: the first stream
 * worked. extra: more configuration, or NULL.
 */
static void start(struct run *r, const char *tag, const char *extra)
{
	sqlite3 *db = NULL;

	memset(r, 0, sizeof(*r));
	th_sim_start(&r->sim, extra_sim);
	r->dir = th_tmpdir(tag);
	r->root = sb_xasprintf("%s/outbox", r->dir);
	r->log = sb_xasprintf("%s/send-bridge.log", r->dir);
	r->db_path = sb_xasprintf("%s/stream.db", r->dir);
	r->cfg = th_e2e_config(r->dir, "stream", r->sim.url, 2, extra);
	for (int i = 0; i < NACTS; i++) {
		char *id = act_name(i), *json = th_e2e_act_json(i, i != 1);

		th_outbox_publish_json(r->root, id, json);
		free(json);
		free(id);
	}
	r->pid = th_e2e_run(r->cfg, r->log);
	th_e2e_wait_int(r->db_path, "SELECT count(*) FROM acts a JOIN receipts c ON c.act = a.id"
			" WHERE a.state IN ('accepted', 'delivering') AND c.category = 'SENDER_ACK'"
			" AND c.protocol_number IS NOT NULL", NULL, NACTS, r->log);
	assert_int_equal(sqlite3_open_v2(r->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (int i = 0; i < NACTS; i++) {
		char *id = act_name(i);

		r->iuns[i] = th_e2e_text(db, "SELECT n.iun FROM notifications n JOIN acts a"
					 " ON a.id = n.act WHERE a.act_id = ?1", id);
		assert_non_null(r->iuns[i]);
		free(id);
	}
	r->stream_id = th_e2e_text(db, "SELECT value FROM meta WHERE key = 'send.stream_id'", NULL);
	assert_non_null(r->stream_id);
	sqlite3_close(db);
}

/*
 * With the daemon frozen: its stream deleted at SEND (or disabled, still
 * there but getting nothing new), and every notification viewed (final).
 */
static void open_a_gap(struct run *r, bool disable)
{
	char *path = sb_xasprintf("/delivery-progresses/v2.9/streams/%s", r->stream_id);
	char *off = sb_xasprintf("%s/action/disable", path);

	assert_int_equal(kill(r->pid, SIGSTOP), 0);
	if (disable) {
		assert_int_equal(th_e2e_sim_call(r->sim.url, "POST", off, NULL), 200);
		assert_int_equal(th_e2e_sim_call(r->sim.url, "GET", path, NULL), 200);
	} else {
		assert_int_equal(th_e2e_sim_call(r->sim.url, "DELETE", path, NULL), 204);
		assert_int_equal(th_e2e_sim_call(r->sim.url, "GET", path, NULL), 404);
	}
	free(off);
	for (int i = 0; i < NACTS; i++) {
		char *view = sb_xasprintf("/_sim/send/view?iun=%s&recIndex=0", r->iuns[i]);

		assert_int_equal(th_e2e_sim_call(r->sim.url, "POST", view, NULL), 200);
		free(view);
	}
	free(path);
}

/* Every act closed, each legal fact registered once, and nothing owed. */
static void check_closed(struct run *r)
{
	sqlite3 *db = NULL;
	char *text;

	th_e2e_wait_int(r->db_path, "SELECT count(*) FROM acts WHERE state = 'closed'", NULL,
			NACTS, r->log);
	assert_int_equal(th_child_stop(&r->pid, SIGTERM), 0);
	assert_int_equal(th_outbox_entries(r->root, "done"), NACTS);
	assert_int_equal(sqlite3_open_v2(r->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (int i = 0; i < NACTS; i++) {
		char *id = act_name(i), *path;

		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM receipts WHERE iun = ?1"
					    " AND category = 'SENDER_ACK'", r->iuns[i]), 1);
		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM receipts WHERE iun = ?1"
					    " AND category = 'RECIPIENT_ACCESS'"
					    " AND protocol_number IS NOT NULL", r->iuns[i]), 1);
		/* Once each in the protocol, linked to the act's outgoing registration. */
		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations"
					    " WHERE direction = 'in' AND iun = ?1", r->iuns[i]),
				 th_e2e_int(db, "SELECT count(*) FROM receipts WHERE iun = ?1",
					    r->iuns[i]));
		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations p"
					    " WHERE p.direction = 'in'"
					    " AND p.iun = (SELECT n.iun FROM"
					    "  notifications n JOIN acts a ON a.id = n.act WHERE"
					    "  a.act_id = ?1) AND p.link IS NOT (SELECT id FROM"
					    "  proto_registrations WHERE act_id = ?1"
					    "  AND direction = 'out')", id), 0);
		path = sb_xasprintf("%s/done/%s/receipts", r->root, id);
		assert_int_equal((int64_t)th_outbox_entries(path, "."),
				 th_e2e_int(db, "SELECT count(*) FROM receipts WHERE iun = ?1",
					    r->iuns[i]));
		free(path);
		free(id);
	}
	assert_int_equal(th_e2e_ledger_notifications(r->sim.url, NULL), NACTS);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations WHERE direction"
				    " = 'in'", NULL),
			 th_e2e_int(db, "SELECT count(DISTINCT legal_fact_id) FROM"
				    " proto_registrations WHERE direction = 'in'", NULL));
	/* The gap's events came from the notifications' timelines, once each. */
	assert_int_equal(th_e2e_int(db, "SELECT count(DISTINCT iun) FROM events"
				    " WHERE event_id LIKE 'timeline:%'"
				    " AND category = 'NOTIFICATION_VIEWED'", NULL), NACTS);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM stream_catchup", NULL), 0);
	text = th_e2e_text(db, "SELECT value FROM meta WHERE key = 'send.stream_id'", NULL);
	assert_non_null(text);
	assert_string_not_equal(text, r->stream_id);
	free(text);
	sqlite3_close(db);
}

static void finish(struct run *r)
{
	th_sim_stop(&r->sim);
	th_rmrf(r->dir);
	for (int i = 0; i < NACTS; i++)
		free(r->iuns[i]);
	free(r->stream_id);
	free(r->cfg);
	free(r->db_path);
	free(r->log);
	free(r->root);
	free(r->dir);
}

/* The gap opened while the daemon is frozen, then the daemon goes on. */
static void replaced_and_caught_up(const char *tag, const char *extra, bool disable)
{
	struct run r;

	start(&r, tag, extra);
	open_a_gap(&r, disable);
	assert_int_equal(kill(r.pid, SIGCONT), 0);
	check_closed(&r);
	finish(&r);
}

static void test_e2e_stream__a_stream_deleted_at_send_is_replaced_and_caught_up(void **state)
{
	(void)state;
	replaced_and_caught_up("e2e-stream", NULL, false);
}

/*
 * Disabled rather than deleted (by an administrator, or by a stream made to
 * replace it): SEND keeps answering its reads, empty, for 14 days. The
 * daemon looks for disabledDate (every stream_check_interval seconds, here
 * 1) and replaces it the same way.
 */
static void test_e2e_stream__a_stream_disabled_at_send_is_replaced_and_caught_up(void **state)
{
	(void)state;
	replaced_and_caught_up("e2e-stream-off", "[send]\nstream_check_interval = 1\n", true);
}

static void test_e2e_stream__a_crash_during_the_catch_up_is_finished_after_restart(void **state)
{
	struct run r;
	sqlite3 *db = NULL;

	(void)state;
	start(&r, "e2e-stream-crash", NULL);
	open_a_gap(&r, false);
	/* Slow SEND: the catch-up is recorded long before its calls are done. */
	assert_int_equal(th_e2e_sim_call(r.sim.url, "POST", "/_sim/faults",
					 "{\"latencyMs\":1500}"), 200);
	assert_int_equal(kill(r.pid, SIGCONT), 0);
	th_e2e_wait_int(r.db_path, "SELECT count(*) FROM stream_catchup", NULL, 1, r.log);
	assert_int_equal(th_child_stop(&r.pid, SIGKILL), 128 + SIGKILL);
	assert_int_equal(sqlite3_open_v2(r.db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_true(th_e2e_int(db, "SELECT count(*) FROM stream_catchup", NULL) >= 1);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts WHERE state = 'closed'", NULL),
			 0);
	sqlite3_close(db);
	assert_int_equal(th_e2e_sim_call(r.sim.url, "POST", "/_sim/faults", "{\"latencyMs\":0}"),
			 200);
	r.pid = th_e2e_run(r.cfg, r.log);
	check_closed(&r);
	finish(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(
			test_e2e_stream__a_stream_deleted_at_send_is_replaced_and_caught_up),
		th_unit_test(
			test_e2e_stream__a_stream_disabled_at_send_is_replaced_and_caught_up),
		th_unit_test(
			test_e2e_stream__a_crash_during_the_catch_up_is_finished_after_restart),
	};

	return cmocka_run_group_tests_name("e2e_stream", tests, NULL, NULL);
}
