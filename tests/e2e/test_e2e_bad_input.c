/*
 * Bad input mixed with good (issue 7, "Proof"): every broken act of
 * fixtures/acts-broken/ (each with its `expect`: JSON path and message)
 * and 50 good acts dropped together into the outbox of the real
 * `send-bridge run` against send-sim. Every broken act ends in rejected/
 * with a reason.json naming the field and the rule, and never reaches
 * SEND; every good one is closed, one notification each.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "../helpers/th.h"
#include "../helpers/th_e2e.h"
#include "../helpers/th_platform.h"

#define NGOOD 50

static const char *const extra_sim[] = {
	"--send-step-ms", "20", "--send-accept-ms", "50", "--send-legal-fact-retry", "0",
	"--send-stream-interval-ms", "200", NULL,
};

/*
 * Names of fixtures/acts-broken/ in readdir order, unsorted: the order does
 * not matter, as each act is checked by its name and the daemon, started
 * once all are published, claims new/ in its own (sorted) order. *n_out
 * set; freed with the test's scope.
 */
static char **broken_names(size_t *n_out)
{
	char *dir = th_fixture("acts-broken");
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		names = sb_xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = th_own(sb_xstrdup(e->d_name));
	}
	closedir(d);
	free(dir);
	*n_out = n;
	return th_own(names);
}

static void test_e2e_bad_input__broken_acts_rejected_good_ones_closed(void **state)
{
	struct th_sim sim;
	char *dir = th_own(th_tmpdir("bad-input")), *root = th_own(sb_xasprintf("%s/outbox", dir));
	char *log = th_own(sb_xasprintf("%s/send-bridge.log", dir)), *cfg;
	size_t nbroken = 0;
	char **broken = broken_names(&nbroken);
	pid_t pid;

	(void)state;
	assert_true(nbroken >= 50);
	th_sim_start(&sim, extra_sim);
	cfg = th_own(th_e2e_config(dir, "bad", sim.url, 4, NULL));
	/* Interleaved, the way a day's output of several offices arrives. */
	for (size_t i = 0; i < nbroken || i < NGOOD; i++) {
		char id[96];

		if (i < nbroken) {
			char *fixture = sb_xasprintf("acts-broken/%s", broken[i]);

			snprintf(id, sizeof(id), "bad-%s", broken[i]);
			th_outbox_publish(root, fixture, id);
			free(fixture);
		}
		if (i < NGOOD) {
			char *json = th_e2e_act_json((int)i, i % 2 == 0);

			snprintf(id, sizeof(id), "good-%02zu", i);
			th_outbox_publish_json(root, id, json);
			free(json);
		}
	}
	pid = th_e2e_run(cfg, log);
	th_e2e_wait_finished(root, nbroken + NGOOD, &pid, log, 180);
	assert_int_equal(th_child_stop(&pid, SIGTERM), 0);

	assert_int_equal(th_outbox_entries(root, "done"), NGOOD);
	assert_int_equal(th_outbox_entries(root, "rejected"), nbroken);
	for (size_t i = 0; i < nbroken; i++) {
		char *rel = th_own(sb_xasprintf("acts-broken/%s/expect", broken[i]));
		char *expect = th_own(th_read(th_own(th_fixture(rel)), NULL));
		char *reason_path = th_own(sb_xasprintf("%s/rejected/bad-%s/reason.json", root,
							broken[i]));
		char *reason = th_own(th_read(reason_path, NULL)), *tab, *nl;

		assert_non_null(expect);
		if (!reason)
			fail_msg("no reason.json for broken act '%s'", broken[i]);
		tab = strchr(expect, '\t');
		assert_non_null(tab);
		*tab = '\0';
		nl = strchr(tab + 1, '\n');
		if (nl)
			*nl = '\0';
		/* The field by its JSON path, and the rule. */
		if (!strstr(reason, expect))
			fail_msg("reason.json of '%s' does not name '%s': %s",
				 broken[i], expect, reason);
		if (!strchr(tab + 1, '"') && !strchr(tab + 1, '\\') && !strstr(reason, tab + 1))
			fail_msg("reason.json of '%s' does not say '%s': %s",
				 broken[i], tab + 1, reason);
		assert_non_null(strstr(reason, "\"state\":\"rejected\""));
	}
	/* Only the good ones reached SEND, once each. */
	assert_int_equal(th_e2e_ledger_notifications(sim.url, NULL), NGOOD);
	{
		sqlite3 *db = th_e2e_db(th_own(sb_xasprintf("%s/bad.db", dir)));

		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts WHERE state = 'closed'",
					    NULL), NGOOD);
		assert_int_equal(th_e2e_int(db,
					    "SELECT count(*) FROM outcomes WHERE state = 'rejected'"
					    " AND folder IS NOT NULL", NULL), (int64_t)nbroken);
	}
	th_sim_stop(&sim);
	th_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(test_e2e_bad_input__broken_acts_rejected_good_ones_closed),
	};

	return cmocka_run_group_tests_name("e2e_bad_input", tests, NULL, NULL);
}
