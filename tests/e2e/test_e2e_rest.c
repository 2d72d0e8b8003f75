/*
 * The pipeline with [protocol] backend = rest: the vendor protocol system
 * stand-in of send-sim (/protocol/v1/, docs/protocol-adapters.md) assigns
 * the numbers of the outgoing acts and of their receipts; send-bridge keeps
 * its mirror. Four acts through the real `send-bridge run`, with one reply
 * in seven lost after the platform acted on the call: closed, one
 * notification each, every registration made by the vendor system once.
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

#define NACTS 4

static const char *const extra_sim[] = {
	"--send-step-ms", "20", "--send-accept-ms", "50", "--send-legal-fact-retry", "0",
	"--send-stream-interval-ms", "200", "--fault-lost", "15", "--seed", "11", NULL,
};

static void test_e2e_rest__the_vendor_system_numbers_acts_and_receipts(void **state)
{
	struct th_sim sim;
	char *dir = th_own(th_tmpdir("e2e-rest")), *root = th_own(sb_xasprintf("%s/outbox", dir));
	char *log = th_own(sb_xasprintf("%s/send-bridge.log", dir));
	char *auth = th_own(sb_xasprintf("%s/auth", dir));
	char *db_path = th_own(sb_xasprintf("%s/rest.db", dir)), *extra, *cfg;
	sqlite3 *db;
	pid_t pid;

	(void)state;
	th_sim_start(&sim, extra_sim);
	th_write_str(auth, "Bearer send-sim-protocol\n", 0600);
	extra = th_own(sb_xasprintf("[protocol]\nbackend = rest\nrest_url = %s/protocol/v1\n"
			     "rest_auth_file = %s\n", sim.url, auth));
	cfg = th_own(th_e2e_config(dir, "rest", sim.url, 2, extra));
	for (int i = 0; i < NACTS; i++) {
		char id[32], *json = th_e2e_act_json(i, i == 0);

		snprintf(id, sizeof(id), "2026-REST-%d", i);
		th_outbox_publish_json(root, id, json);
		free(json);
	}
	pid = th_e2e_run(cfg, log);
	th_e2e_wait_finished(root, NACTS, &pid, log, 60);
	assert_int_equal(th_child_stop(&pid, SIGTERM), 0);
	assert_int_equal(th_outbox_entries(root, "done"), NACTS);
	db = th_e2e_db(db_path);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts WHERE state = 'closed'", NULL),
			 NACTS);
	/* Every registration, outgoing and receipts, came from the vendor system. */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations"
				    " WHERE backend <> 'rest'", NULL), 0);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations"
				    " WHERE direction = 'out'", NULL), NACTS);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations"
				    " WHERE direction = 'in'", NULL),
			 th_e2e_int(db, "SELECT count(*) FROM receipts", NULL));
	assert_true(th_e2e_int(db, "SELECT count(*) FROM receipts", NULL) >= 2 * NACTS);
	/*
	 * The vendor numbers every registration it makes in one sequence: a
	 * registration made twice (a lost reply retried without its
	 * Idempotency-Key) would leave a number the mirror never learned.
	 */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM (SELECT year FROM proto_registrations"
				    " GROUP BY year HAVING min(number) <> 500001"
				    " OR max(number) - 500000 <> count(*))", NULL), 0);
	for (int i = 0; i < NACTS; i++) {
		char id[32], *number;

		snprintf(id, sizeof(id), "2026-REST-%d", i);
		number = th_own(th_e2e_text(db, "SELECT n.protocol_number FROM notifications n"
					    " JOIN acts a ON a.id = n.act"
					    " WHERE a.act_id = ?1", id));
		assert_non_null(number);
		assert_int_equal(th_e2e_ledger_notifications(sim.url, number), 1);
	}
	th_sim_stop(&sim);
	th_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(test_e2e_rest__the_vendor_system_numbers_acts_and_receipts),
	};

	return cmocka_run_group_tests_name("e2e_rest", tests, NULL, NULL);
}
