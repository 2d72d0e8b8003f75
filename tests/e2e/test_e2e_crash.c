/*
 * Crash safety of the whole pipeline (issue 7, "Proof"): N acts (default
 * 300, SB_E2E_CRASH_N overrides) through the real `send-bridge run` against
 * send-sim injecting 5xx, 429, dropped connections and lost replies (the
 * call carried out, its reply never sent) on every platform call, the
 * daemon killed with SIGKILL at random moments (at least 10
 * times) and restarted. At the end: every act closed and its folder in
 * done/, exactly one notification per act in SEND's ledger, one outgoing
 * registration per act, every receipt registered once.
 *
 * The random moments come from a seed printed at the start (SB_E2E_SEED
 * replays a run).
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
#include <time.h>
#include <unistd.h>

#include "sb_common.h"
#include "../helpers/th.h"
#include "../helpers/th_e2e.h"
#include "../helpers/th_platform.h"

#define KILLS 10

static const char *const extra_sim[] = {
	"--send-step-ms", "20", "--send-accept-ms", "50", "--send-legal-fact-retry", "0",
	"--send-stream-interval-ms", "200", "--fault-5xx", "4", "--fault-429", "3",
	"--fault-drop", "3", "--fault-lost", "3", "--seed", "7", NULL,
};

/* Start the daemon with its own log, dir/run-<i>.log. */
static pid_t start(const char *cfg, const char *dir, int i)
{
	return th_e2e_run(cfg, th_own(sb_xasprintf("%s/run-%02d.log", dir, i)));
}

/* Wait until the daemon logged that it runs (its signal handlers are in place). */
static void wait_running(const char *dir, int i)
{
	char *log = th_own(sb_xasprintf("%s/run-%02d.log", dir, i));

	for (int t = 0; t < 3000; t++) {
		char *text = th_read(log, NULL);
		bool up = text && strstr(text, "daemon: running");

		free(text);
		if (up)
			return;
		th_sleep_ms(10);
	}
	fail_msg("send-bridge did not start; see %s", log);
}

static void test_e2e_crash__sigkill_at_random_moments(void **state)
{
	const char *env_n = getenv("SB_E2E_CRASH_N"), *env_seed = getenv("SB_E2E_SEED");
	int n = env_n ? (int)strtol(env_n, NULL, 10) : 300;
	unsigned seed = env_seed ? (unsigned)strtoul(env_seed, NULL, 10) : (unsigned)time(NULL);
	struct th_sim sim;
	char *dir = th_own(th_tmpdir("crash")), *root = th_own(sb_xasprintf("%s/outbox", dir));
	char *cfg, *db_path = th_own(sb_xasprintf("%s/crash.db", dir));
	sqlite3 *db;
	pid_t pid;
	int kills = 0;

	(void)state;
	assert_true(n >= 1);
	fprintf(stderr, "crash test: n=%d seed=%u (SB_E2E_SEED replays it)\n", n, seed);
	srand(seed);
	th_sim_start(&sim, extra_sim);
	cfg = th_own(th_e2e_config(dir, "crash", sim.url, 4, NULL));
	for (int i = 0; i < n; i++) {
		char id[32], *json;

		snprintf(id, sizeof(id), "2026-CR-%04d", i);
		/* One act in three has a PEC: the digital workflow; the rest go by post. */
		json = th_e2e_act_json(i, i % 3 == 0);
		th_outbox_publish_json(root, id, json);
		free(json);
	}

	pid = start(cfg, dir, 0);
	while (kills < KILLS) {
		/* 0.2 to 2 s: some kills land in intake, most in the middle of steps. */
		th_sleep_ms(200 + rand() % 1800);
		assert_int_equal(th_child_stop(&pid, SIGKILL), 128 + SIGKILL);
		kills++;
		pid = start(cfg, dir, kills);
	}
	th_e2e_wait_finished(root, (size_t)n, &pid,
			     th_own(sb_xasprintf("%s/run-%02d.log", dir, kills)), 300);
	wait_running(dir, kills);
	assert_int_equal(th_child_stop(&pid, SIGTERM), 0);

	assert_int_equal(th_outbox_entries(root, "done"), (size_t)n);
	assert_int_equal(th_outbox_entries(root, "rejected"), 0);
	assert_int_equal(th_outbox_entries(root, "work"), 0);
	assert_int_equal(th_outbox_entries(root, "new"), 0);
	db = th_e2e_db(db_path);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts"
				    " WHERE state = 'closed'", NULL), n);
	/* One outgoing registration per act, one notification per act. */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations"
				    " WHERE direction = 'out'", NULL), n);
	assert_int_equal(th_e2e_int(db, "SELECT count(DISTINCT act_id) FROM proto_registrations"
				    " WHERE direction = 'out'", NULL), n);
	assert_int_equal(th_e2e_ledger_notifications(sim.url, NULL), n);
	for (int i = 0; i < n; i++) {
		char id[32], *number;

		snprintf(id, sizeof(id), "2026-CR-%04d", i);
		number = th_own(th_e2e_text(db, "SELECT n.protocol_number FROM notifications n"
					    " JOIN acts a ON a.id = n.act"
					    " WHERE a.act_id = ?1", id));
		assert_non_null(number);
		assert_int_equal(th_e2e_ledger_notifications(sim.url, number), 1);
		/* Acceptance and delivery at least, each registered. */
		assert_true(th_e2e_int(db, "SELECT count(*) FROM receipts r"
				       " JOIN acts a ON a.id = r.act WHERE a.act_id = ?1"
				       " AND r.protocol_number IS NOT NULL", id) >= 2);
	}
	/* Every receipt registered exactly once. */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations"
				    " WHERE direction = 'in'", NULL),
			 th_e2e_int(db, "SELECT count(*) FROM receipts", NULL));
	assert_int_equal(th_e2e_int(db, "SELECT count(*) - count(DISTINCT legal_fact_id)"
				    " FROM proto_registrations WHERE direction = 'in'", NULL), 0);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM receipts r WHERE NOT EXISTS"
				    " (SELECT 1 FROM proto_registrations p"
				    "  WHERE p.legal_fact_id = r.legal_fact_key)", NULL), 0);
	th_sim_stop(&sim);
	th_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(test_e2e_crash__sigkill_at_random_moments),
	};

	return cmocka_run_group_tests_name("e2e_crash", tests, NULL, NULL);
}
