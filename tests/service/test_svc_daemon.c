/*
 * The daemon in a child process (svc_daemon_run with the fake platform of
 * tests/helpers/th_platform.h, which keeps its remote state in files):
 * SIGKILL at random moments and restarts (with the stream reader thread
 * feeding the track step), SIGTERM, good and broken acts mixed, hostile
 * entries. The store, the outbox and the platform's ledger are then
 * checked for lost acts, duplicate rows and duplicate notifications or
 * receipts.
 *
 * These test the scheduler and its crash safety; the fake platform is
 * idempotent by construction (as the real clients must be), so the
 * exactly-once checks prove that the pipeline never skips a committed
 * state and never loses or forks an act, not that SEND's 409 handling works.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sb_time.h"
#include "svc_daemon.h"
#include "svc_pipeline.h"
#include "svc_store.h"
#include "../helpers/th.h"
#include "../helpers/th_platform.h"

struct fx {
	char *tmp, *root, *db, *log;
	struct th_platform plat;
	struct svc_daemon_opts opts;
	pid_t pid;
};

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));

	f->tmp = th_tmpdir("daemon");
	f->root = sb_xasprintf("%s/outbox", f->tmp);
	f->db = sb_xasprintf("%s/store.db", f->tmp);
	f->log = sb_xasprintf("%s/daemon.log", f->tmp);
	th_platform_init(&f->plat, f->tmp);
	{
		char *new_dir = sb_xasprintf("%s/new", f->root);

		th_mkdirs(new_dir);
		free(new_dir);
	}
	f->opts.outbox_dir = f->root;
	f->opts.store_path = f->db;
	f->opts.busy_timeout_ms = 10000;
	f->opts.workers = 4;
	f->opts.rescan_ms = 200;
	f->opts.pipeline.retry_base_ms = 5;
	f->opts.pipeline.retry_max_ms = 50;
	f->opts.pipeline.max_attempts = 1000;   /* the test's faults must never exhaust an act */
	f->opts.pipeline.poll_ms = 5;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->pid > 0)
		th_child_stop(&f->pid, SIGKILL);
	th_platform_release(&f->plat);
	th_rmrf(f->tmp);
	free(f->tmp);
	free(f->root);
	free(f->db);
	free(f->log);
	free(f);
	return 0;
}

/* The daemon in a child, logging to f->log; the parent keeps no thread or store open. */
static void start(struct fx *f)
{
	f->pid = th_fork();
	if (f->pid == 0) {
		struct svc_steps steps;
		struct sb_err err = SB_ERR_INIT;
		int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		int rc;

		if (fd >= 0)
			dup2(fd, 2);
		th_platform_steps(&f->plat, &steps);
		rc = svc_daemon_run(&f->opts, &steps, &err);
		if (rc < 0)
			fprintf(stderr, "daemon: %s\n", err.msg);
		_exit(rc < 0 ? 1 : 0);
	}
}

/* How many starts of the daemon completed, by its log. */
static int starts(struct fx *f)
{
	char *log = th_read(f->log, NULL), *p = log;
	int seen = 0;

	while (p && (p = strstr(p, "daemon: running ")) != NULL) {
		seen++;
		p++;
	}
	free(log);
	return seen;
}

/* Wait until more than n starts completed. */
static void wait_running(struct fx *f, int n)
{
	int64_t deadline = sb_mono_ms() + 30000;

	while (starts(f) <= n) {
		if (sb_mono_ms() > deadline)
			fail_msg("daemon start %d not seen in its log", n + 1);
		th_sleep_ms(10);
	}
}

/* Wait until done/ + rejected/ hold total entries and new/, work/ are empty. */
static void wait_all_finished(struct fx *f, size_t total, int64_t timeout_ms)
{
	int64_t deadline = sb_mono_ms() + timeout_ms;

	for (;;) {
		size_t done = th_outbox_entries(f->root, "done");
		size_t rejected = th_outbox_entries(f->root, "rejected");
		size_t work = th_outbox_entries(f->root, "work");
		size_t fresh = th_outbox_entries(f->root, "new");

		if (done + rejected >= total && !work && !fresh)
			return;
		if (sb_mono_ms() > deadline)
			fail_msg("not finished: done=%zu rejected=%zu work=%zu new=%zu of %zu",
				 done, rejected, work, fresh, total);
		th_sleep_ms(20);
	}
}

static int64_t count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static bool exists(struct fx *f, const char *sub, const char *name, const char *file)
{
	char *p = sb_xasprintf("%s/%s/%s/%s", f->root, sub, name, file);
	bool ok = access(p, F_OK) == 0;

	free(p);
	return ok;
}

/* Everything a finished run must show: each act once, where it belongs, remote effects once. */
static void check_books(struct fx *f, size_t good, size_t broken)
{
	struct svc_store *s = NULL;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store_audit_head head;
	sqlite3 *db;

	assert_int_equal(th_outbox_entries(f->root, "done"), good);
	assert_int_equal(th_outbox_entries(f->root, "rejected"), broken);
	assert_int_equal(svc_store_open(&s, f->db, 5000, &err), 0);
	db = svc_store_db(s);
	assert_int_equal(count(db, "SELECT count(*) FROM acts"), (int64_t)good);
	assert_int_equal(count(db, "SELECT count(DISTINCT act_id) FROM acts"), (int64_t)good);
	assert_int_equal(count(db, "SELECT count(*) FROM acts WHERE state = 'closed'"),
			 (int64_t)good);
	assert_int_equal(count(db, "SELECT count(*) FROM notifications n"
			       " JOIN acts a ON a.id = n.act"
			       " WHERE n.protocol_number = 'PG/' || a.act_id"
			       " AND n.request_id = 'req-' || a.act_id"
			       " AND n.iun = 'IUN-' || a.act_id"), (int64_t)good);
	assert_int_equal(count(db, "SELECT count(*) FROM notifications"), (int64_t)good);
	assert_int_equal(count(db, "SELECT count(*) FROM receipts"), (int64_t)good * 2);
	assert_int_equal(count(db, "SELECT count(*) FROM (SELECT act FROM receipts GROUP BY act"
			       " HAVING count(*) = 2)"), (int64_t)good);
	assert_int_equal(count(db, "SELECT count(*) FROM outcomes WHERE act IS NULL"),
			 (int64_t)broken);
	if (f->plat.stream)     /* two events per act, however often they were published */
		assert_int_equal(count(db, "SELECT count(*) FROM events"), (int64_t)good * 2);
	assert_int_equal(svc_store_audit_verify(s, &head, &err), 0);
	svc_store_close(s);
	/*
	 * The platform's log proves "never twice"; a SIGKILL between making a
	 * remote object and logging it can drop a line, so "exactly once" is
	 * proven by the objects the store recorded (checked above: one
	 * notification row per act with the platform's ids, two receipts).
	 */
	for (size_t i = 0; i < good; i++) {
		static const char *const what[] = { "notification", "protocol",
						    "receipt %s SENDER_ACK",
						    "receipt %s DIGITAL_DELIVERY" };
		char id[32], line[96];

		snprintf(id, sizeof(id), "act-%03zu", i);
		if (!exists(f, "done", id, "act.json"))
			fail_msg("%s is not in done/", id);
		for (size_t k = 0; k < SB_ARRAY_SIZE(what); k++) {
			if (k < 2)
				snprintf(line, sizeof(line), "%s %s", what[k], id);
			else
				snprintf(line, sizeof(line), what[k], id);
			if (th_platform_count(&f->plat, line) > 1)
				fail_msg("platform log: '%s' more than once", line);
		}
	}
	for (size_t i = 0; i < broken; i++) {
		char id[32];

		snprintf(id, sizeof(id), "bad-%03zu", i);
		if (!exists(f, "rejected", id, "reason.json"))
			fail_msg("%s has no rejected/%s/reason.json", id, id);
	}
}

static void publish(struct fx *f, size_t from, size_t to, bool with_broken)
{
	static const char *const fixtures[] = { "acts/fine-pagopa", "acts/fine-pec",
						"acts/fine-company", "acts/imu-assessment" };

	for (size_t i = from; i < to; i++) {
		char id[32];

		snprintf(id, sizeof(id), "act-%03zu", i);
		th_outbox_publish(f->root, fixtures[i % SB_ARRAY_SIZE(fixtures)], id);
		if (with_broken && i % 5 == 0) {
			snprintf(id, sizeof(id), "bad-%03zu", i / 5);
			th_outbox_publish_json(f->root, id, th_act_broken);
		}
	}
}

static void test_svc_daemon__sigkill_at_random_moments_loses_nothing(void **state)
{
	struct fx *f = *state;
	const size_t good = 120, broken = good / 5;
	int kills = 0, before = 0;

	f->plat.temp_pct = 15;
	f->plat.delay_us = 500;
	f->plat.stream = true;     /* tracking through the stream reader thread */
	/*
	 * Half before the first start (found by the start-up scan), half while
	 * it runs (inotify).
	 */
	start(f);
	th_sleep_ms(100);
	publish(f, 0, good / 2, true);
	for (int round = 0; round < 14; round++) {
		uint32_t r;

		sb_random_bytes(&r, sizeof(r));
		th_sleep_ms(40 + r % 260);
		if (round == 3)
			publish(f, good / 2, good, true);
		assert_int_equal(th_child_stop(&f->pid, SIGKILL), 128 + SIGKILL);
		kills++;
		before = starts(f);
		start(f);
	}
	wait_all_finished(f, good + broken, 120000);
	wait_running(f, before);
	assert_int_equal(th_child_stop(&f->pid, SIGTERM), 0);
	assert_true(kills >= 10);
	check_books(f, good, broken);
}

static void test_svc_daemon__sigterm_stops_cleanly_and_resumes(void **state)
{
	struct fx *f = *state;
	struct svc_store *s = NULL;
	struct sb_err err = SB_ERR_INIT;
	const size_t good = 24;
	int64_t t0;

	/* Slow steps: SIGTERM arrives while several are in flight. */
	f->plat.delay_us = 30000;
	publish(f, 0, good, false);
	start(f);
	wait_running(f, 0);
	th_sleep_ms(300);
	t0 = sb_mono_ms();
	assert_int_equal(th_child_stop(&f->pid, SIGTERM), 0);
	/* In-flight steps finish (30 ms each) and nothing new starts: a quick exit. */
	assert_true(sb_mono_ms() - t0 < 5000);
	/* Every act recorded so far is in a committed state; none is finished yet. */
	assert_int_equal(svc_store_open(&s, f->db, 5000, &err), 0);
	assert_true(count(svc_store_db(s), "SELECT count(*) FROM acts") > 0);
	assert_int_equal(count(svc_store_db(s), "SELECT count(*) FROM acts WHERE state = 'closed'"),
			 (int64_t)th_outbox_entries(f->root, "done"));
	svc_store_close(s);
	assert_true(th_outbox_entries(f->root, "done") < good);
	start(f);
	wait_all_finished(f, good, 60000);
	wait_running(f, 1);
	assert_int_equal(th_child_stop(&f->pid, SIGTERM), 0);
	check_books(f, good, 0);
}

/* Text of rejected/<file>, which must exist. */
static char *rejected_text(struct fx *f, const char *file)
{
	char *p = sb_xasprintf("%s/rejected/%s", f->root, file), *txt = th_read(p, NULL);

	if (!txt)
		fail_msg("no rejected/%s", file);
	free(p);
	return txt;
}

static void assert_reason(struct fx *f, const char *file, const char *needle)
{
	char *txt = rejected_text(f, file);
	bool found = strstr(txt, needle) != NULL;

	free(txt);
	if (!found)
		fail_msg("rejected/%s does not say '%s'", file, needle);
}

static void test_svc_daemon__hostile_entries_in_new_are_rejected(void **state)
{
	struct fx *f = *state;
	char *p, *outside = sb_xasprintf("%s/outside", f->tmp), *big;
	unsigned char junk[4096];

	th_outbox_publish(f->root, "acts/fine-pagopa", "good");
	th_outbox_publish(f->root, "acts/fine-pagopa", "tmp-space");
	p = sb_xasprintf("%s/new/", f->root);
	{
		char *from = sb_xasprintf("%stmp-space", p), *to = sb_xasprintf("%swith space", p);

		assert_int_equal(rename(from, to), 0);
		free(from);
		free(to);
	}
	/* A symbolic link to an act outside the outbox. */
	{
		char *src = th_fixture("acts/fine-pagopa");

		th_copy_tree(src, outside);
		free(src);
	}
	free(p);
	p = sb_xasprintf("%s/new/linked", f->root);
	assert_int_equal(symlink(outside, p), 0);
	free(p);
	/* A stray file, an empty folder, binary junk, a folder for act.json, a huge act.json. */
	p = sb_xasprintf("%s/new/stray.pdf", f->root);
	th_write_str(p, "%PDF-1.7 not an act", 0640);
	free(p);
	p = sb_xasprintf("%s/new/empty", f->root);
	th_mkdirs(p);
	free(p);
	sb_random_bytes(junk, sizeof(junk));
	p = sb_xasprintf("%s/tmp/garbage", f->root);
	th_mkdirs(p);
	free(p);
	p = sb_xasprintf("%s/tmp/garbage/act.json", f->root);
	th_write(p, junk, sizeof(junk), 0640);
	free(p);
	p = sb_xasprintf("%s/tmp/dir-manifest/act.json", f->root);
	th_mkdirs(p);
	free(p);
	big = sb_xcalloc(1, 2u * 1024u * 1024u + 1);
	memset(big, ' ', 2u * 1024u * 1024u);
	p = sb_xasprintf("%s/tmp/huge", f->root);
	th_mkdirs(p);
	free(p);
	p = sb_xasprintf("%s/tmp/huge/act.json", f->root);
	th_write_str(p, big, 0640);
	free(p);
	free(big);
	for (int i = 0; i < 3; i++) {
		static const char *const names[] = { "garbage", "dir-manifest", "huge" };
		char *from = sb_xasprintf("%s/tmp/%s", f->root, names[i]);
		char *to = sb_xasprintf("%s/new/%s", f->root, names[i]);

		assert_int_equal(rename(from, to), 0);
		free(from);
		free(to);
	}
	/* A manifest naming a file outside its folder. */
	th_outbox_publish_json(f->root, "escape",
			       "{\"version\":1,\"office\":\"polizia-municipale\","
			       "\"operator\":{\"userId\":\"a\"},\"subject\":\"s\","
			       "\"documents\":[{\"file\":\"../../../etc/passwd\","
			       "\"title\":\"t\"}]}");
	/* Named pipes, as act.json and as the document: refused, not waited on. */
	p = sb_xasprintf("%s/tmp/piped", f->root);
	th_mkdirs(p);
	free(p);
	p = sb_xasprintf("%s/tmp/piped/act.json", f->root);
	assert_int_equal(mkfifo(p, 0600), 0);
	free(p);
	{
		char *src = th_fixture("acts/fine-pagopa");

		p = sb_xasprintf("%s/tmp/piped-doc", f->root);
		th_copy_tree(src, p);
		free(p);
		free(src);
	}
	p = sb_xasprintf("%s/tmp/piped-doc/verbale.pdf", f->root);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkfifo(p, 0600), 0);
	free(p);
	for (int i = 0; i < 2; i++) {
		static const char *const names[] = { "piped", "piped-doc" };
		char *from = sb_xasprintf("%s/tmp/%s", f->root, names[i]);
		char *to = sb_xasprintf("%s/new/%s", f->root, names[i]);

		assert_int_equal(rename(from, to), 0);
		free(from);
		free(to);
	}
	/* The writers' own hidden entries are left alone. */
	p = sb_xasprintf("%s/new/.in-progress", f->root);
	th_mkdirs(p);
	free(p);

	start(f);
	/* 10 rejected entries plus the reason files beside the two that are not folders. */
	wait_all_finished(f, 1 + 10 + 2, 60000);
	wait_running(f, 0);
	assert_int_equal(th_child_stop(&f->pid, SIGTERM), 0);
	assert_int_equal(th_outbox_entries(f->root, "done"), 1);
	assert_reason(f, "with space/reason.json", "folder name");
	assert_reason(f, "linked.reason.json", "symbolic link");
	assert_reason(f, "stray.pdf.reason.json", "act.json");
	assert_reason(f, "empty/reason.json", "missing or unreadable");
	assert_reason(f, "garbage/reason.json", "\"path\":\"act.json\"");
	assert_reason(f, "dir-manifest/reason.json", "\"path\":\"act.json\"");
	assert_reason(f, "huge/reason.json", "too large");
	assert_reason(f, "escape/reason.json", "documents[0].file");
	assert_reason(f, "piped/reason.json", "not a regular file");
	assert_reason(f, "piped-doc/reason.json", "not a regular file");
	assert_reason(f, "piped-doc/reason.json", "documents[0].file");
	/* The link was moved, not followed: the act it pointed to is where it was. */
	p = sb_xasprintf("%s/act.json", outside);
	assert_int_equal(access(p, F_OK), 0);
	free(p);
	p = sb_xasprintf("%s/new/.in-progress", f->root);
	assert_int_equal(access(p, F_OK), 0);
	free(p);
	free(outside);
}

static void test_svc_daemon__start_up_errors_are_reported(void **state)
{
	struct fx *f = *state;
	struct svc_steps steps;
	struct sb_err err = SB_ERR_INIT;

	th_platform_steps(&f->plat, &steps);
	f->opts.outbox_dir = "relative";
	assert_int_equal(svc_daemon_run(&f->opts, &steps, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_true(err.msg[0]);
	f->opts.outbox_dir = f->root;
	f->opts.store_path = f->tmp;      /* a folder, not a database */
	sb_err_clear(&err);
	assert_int_equal(svc_daemon_run(&f->opts, &steps, &err), SB_EIO);
	assert_non_null(strstr(err.msg, "store"));
	f->opts.store_path = f->db;
	f->opts.web_listen = "localhost:80:80";
	sb_err_clear(&err);
	assert_int_equal(svc_daemon_run(&f->opts, &steps, &err), SB_ECONFIG);
	assert_non_null(strstr(err.msg, "[web] listen"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_svc_daemon__sigkill_at_random_moments_loses_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_daemon__sigterm_stops_cleanly_and_resumes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_daemon__hostile_entries_in_new_are_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_daemon__start_up_errors_are_reported,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("svc_daemon", tests, NULL, NULL);
}
