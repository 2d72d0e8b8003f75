/*
 * The pipeline's state machine, in process: a real outbox, a real SQLite
 * store, the sample acts with their real PDFs, and the fake platform of
 * tests/helpers/th_platform.h behind the steps. These are unit tests of the
 * scheduler (states, commits, retries, moves, recovery), not end-to-end
 * proof of the platform clients.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_json.h"
#include "sb_time.h"
#include "svc_metrics.h"
#include "svc_outbox.h"
#include "svc_pipeline.h"
#include "svc_store.h"
#include "../helpers/th.h"
#include "../helpers/th_platform.h"

struct fx {
	char *tmp, *root;
	struct svc_outbox *o;
	struct svc_store *s;
	struct th_platform plat;
	struct svc_steps steps;
	struct svc_pipeline_opts opts;
	struct svc_pipeline *p;
};

static void pipeline_make(struct fx *f)
{
	svc_pipeline_free(f->p);
	svc_pipeline_new(&f->p, NULL, f->o, &f->steps, &f->opts);
}

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));
	struct sb_err err = SB_ERR_INIT;
	char *db;

	f->tmp = th_tmpdir("pipeline");
	f->root = sb_xasprintf("%s/outbox", f->tmp);
	db = sb_xasprintf("%s/store.db", f->tmp);
	assert_int_equal(svc_outbox_open(&f->o, f->root, &err), 0);
	assert_int_equal(svc_store_open(&f->s, db, 5000, &err), 0);
	assert_int_equal(svc_pipeline_store_migrate(svc_store_db(f->s), &err), 0);
	th_platform_init(&f->plat, f->tmp);
	th_platform_steps(&f->plat, &f->steps);
	f->opts.retry_base_ms = 2;
	f->opts.retry_max_ms = 20;
	f->opts.max_attempts = 5;
	f->opts.poll_ms = 0;
	pipeline_make(f);
	svc_metrics_reset();
	free(db);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	svc_pipeline_free(f->p);
	svc_store_close(f->s);
	svc_outbox_free(f->o);
	th_platform_release(&f->plat);
	th_rmrf(f->tmp);
	free(f->tmp);
	free(f->root);
	free(f);
	return 0;
}

static void claim(struct fx *f, const char *id)
{
	struct sb_err err = SB_ERR_INIT;

	assert_int_equal(svc_outbox_claim(f->o, id, &err), 0);
}

static enum svc_progress process(struct fx *f, const char *id)
{
	struct sb_err err = SB_ERR_INIT;
	enum svc_progress pr = (enum svc_progress)-1;
	int rc = svc_pipeline_process(f->p, f->s, &f->plat, id, NULL, &pr, &err);

	if (rc != 0)
		fail_msg("process %s: %s", id, err.msg);
	return pr;
}

/* Process every act in work/ until none is left or 20 s pass (backoffs are milliseconds). */
static void drain(struct fx *f)
{
	struct sb_err err = SB_ERR_INIT;
	int64_t deadline = sb_mono_ms() + 20000;

	for (;;) {
		char **names = NULL;
		size_t n = 0;
		struct timespec ts = { 0, 1000000L };

		assert_int_equal(svc_outbox_list(f->o, "work", &names, &n, &err), 0);
		for (size_t i = 0; i < n; i++)
			process(f, names[i]);
		svc_outbox_names_free(names, n);
		if (n == 0)
			return;
		if (sb_mono_ms() > deadline)
			fail_msg("acts still in work/ after 20 s");
		nanosleep(&ts, NULL);
	}
}

/* One text column of the first row of sql with ?1 = act_id; owned, NULL when none. */
static char *q(struct fx *f, const char *sql, const char *act_id)
{
	sqlite3_stmt *st = NULL;
	char *v = NULL;

	assert_int_equal(sqlite3_prepare_v2(svc_store_db(f->s), sql, -1, &st, NULL), SQLITE_OK);
	if (act_id)
		sqlite3_bind_text(st, 1, act_id, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		v = sb_xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

static int64_t qi(struct fx *f, const char *sql, const char *act_id)
{
	char *v = q(f, sql, act_id);
	int64_t n = v ? strtoll(v, NULL, 10) : -1;

	free(v);
	return n;
}

static void assert_state(struct fx *f, const char *id, const char *state)
{
	char *st = q(f, "SELECT state FROM acts WHERE act_id = ?1", id), got[32];

	snprintf(got, sizeof(got), "%s", st ? st : "(none)");
	free(st);
	if (strcmp(got, state))
		fail_msg("act %s: state %s, expected %s", id, got, state);
}

static bool in(struct fx *f, const char *sub, const char *name, const char *file)
{
	char *p = file ? sb_xasprintf("%s/%s/%s/%s", f->root, sub, name, file) :
			 sb_xasprintf("%s/%s/%s", f->root, sub, name);
	struct stat st;
	bool ok = stat(p, &st) == 0;

	free(p);
	return ok;
}

/* reason.json of rejected/<name>, parsed. */
static json_t *reason(struct fx *f, const char *name)
{
	char *p = sb_xasprintf("%s/rejected/%s/reason.json", f->root, name);
	size_t len = 0;
	char *txt = th_read(p, &len);
	json_t *root = NULL;
	struct sb_err err = SB_ERR_INIT;

	if (!txt)
		fail_msg("no reason.json for %s", name);
	assert_int_equal(sb_json_parse(txt, len, 1 << 20, "reason.json", &root, &err), 0);
	free(txt);
	free(p);
	return root;
}

static const char *problem(json_t *r, size_t i, const char *field)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(r, "problems"), i),
						 field));
}

static void test_svc_pipeline__an_act_goes_from_outbox_to_done(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store_audit_head head;
	static const unsigned char key[SB_AUDIT_KEY_SIZE] = "pipeline audit key, 32 bytes ..";
	char *v;

	/* Sealed first, so that every row the act leaves is chained with the key. */
	assert_int_equal(svc_store_audit_key(f->s, key, &err), 0);
	assert_int_equal(svc_store_audit_seal(f->s, NULL, &err), 0);
	th_outbox_publish(f->root, "acts/fine-pagopa", "fine-1");
	claim(f, "fine-1");
	assert_int_equal(process(f, "fine-1"), SVC_PROGRESS_WAITING);   /* acceptance pending */
	assert_state(f, "fine-1", "submitted");
	drain(f);
	assert_state(f, "fine-1", "closed");
	assert_true(in(f, "done", "fine-1", "act.json"));
	assert_true(in(f, "done", "fine-1", "verbale.pdf"));
	assert_false(in(f, "done", "fine-1", "reason.json"));
	assert_false(in(f, "work", "fine-1", NULL));
	v = q(f, "SELECT protocol_number || ' ' || request_id || ' ' || iun || ' ' || cost_cents"
	      " FROM notifications n JOIN acts a ON a.id = n.act WHERE a.act_id = ?1", "fine-1");
	assert_string_equal(v, "PG/fine-1 req-fine-1 IUN-fine-1 1234");
	free(v);
	assert_int_equal(qi(f, "SELECT count(*) FROM receipts r JOIN acts a ON a.id = r.act"
			    " WHERE a.act_id = ?1", "fine-1"), 2);
	v = q(f, "SELECT folder FROM outcomes WHERE act_id = ?1 AND state = 'closed'", "fine-1");
	assert_string_equal(v, "fine-1");
	free(v);
	assert_int_equal(th_platform_count(&f->plat, "notification fine-1"), 1);
	assert_int_equal(th_platform_count(&f->plat, "protocol fine-1"), 1);
	assert_int_equal(th_platform_count(&f->plat, "receipt fine-1 SENDER_ACK"), 1);
	assert_int_equal(th_platform_count(&f->plat, "receipt fine-1 DIGITAL_DELIVERY"), 1);
	/* Every transition is in the audit trail, and the chain holds. */
	assert_int_equal(svc_store_audit_verify(f->s, &head, &err), 0);
	assert_int_equal(head.rows, 10);   /* the seal's row, received, 8 transitions */
	assert_int_equal(head.keyed_from, 1);
	assert_true(head.seal_checked);
}

static void test_svc_pipeline__temporary_errors_are_retried_with_backoff(void **state)
{
	struct fx *f = *state;
	struct svc_metrics m;
	int64_t next, before = sb_now_ms();
	char *last;

	f->plat.temp_first = 2;
	th_outbox_publish(f->root, "acts/imu-assessment", "imu-1");
	claim(f, "imu-1");
	assert_int_equal(process(f, "imu-1"), SVC_PROGRESS_WAITING);
	/* Recorded, then the first check failed: one attempt, scheduled later, reason kept. */
	assert_state(f, "imu-1", "received");
	assert_int_equal(qi(f, "SELECT attempts FROM acts WHERE act_id = ?1", "imu-1"), 1);
	next = qi(f, "SELECT next_attempt_at FROM acts WHERE act_id = ?1", "imu-1");
	assert_true(next >= before + 1 && next <= sb_now_ms() + 2);
	last = q(f, "SELECT last_error FROM acts WHERE act_id = ?1", "imu-1");
	assert_non_null(strstr(last, "check: check: injected 503 (call 1) (attempt 1)"));
	free(last);
	drain(f);
	assert_state(f, "imu-1", "closed");
	/* Each step: two failures, one success. */
	assert_int_equal(th_platform_calls(&f->plat, "check", "imu-1"), 3);
	assert_int_equal(th_platform_calls(&f->plat, "create", "imu-1"), 3);
	assert_int_equal(th_platform_count(&f->plat, "notification imu-1"), 1);
	svc_metrics_get(&m);
	assert_true(m.retries >= 14);      /* 7 steps x 2 */
	assert_true(m.step_errors[SVC_PLATFORM_SEND] >= 8);
	assert_int_equal(qi(f, "SELECT attempts FROM acts WHERE act_id = ?1", "imu-1"), 0);
}

static void test_svc_pipeline__retry_after_is_honoured(void **state)
{
	struct fx *f = *state;
	int64_t next;

	f->plat.temp_first = 1;
	f->plat.retry_after = 30;
	th_outbox_publish(f->root, "acts/fine-pec", "pec-1");
	claim(f, "pec-1");
	assert_int_equal(process(f, "pec-1"), SVC_PROGRESS_WAITING);
	next = qi(f, "SELECT next_attempt_at FROM acts WHERE act_id = ?1", "pec-1");
	assert_true(next >= sb_now_ms() + 29000);
	/* Not due yet: processing again does not call the platform. */
	assert_int_equal(process(f, "pec-1"), SVC_PROGRESS_WAITING);
	assert_int_equal(th_platform_calls(&f->plat, "check", "pec-1"), 1);
}

static svc_step_fn real_create;

/* The platform's create, asking for the next step to wait a minute (as SEND's acceptance does). */
static int create_then_hold(void *wctx, const struct svc_job *job, struct svc_step_result *res,
			    struct sb_err *err)
{
	int rc = real_create(wctx, job, res, err);

	if (rc == 0)
		res->wait_ms = 60000;
	return rc;
}

static void test_svc_pipeline__a_step_can_hold_the_next_one_back(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char **names = NULL;
	size_t n = 9;

	real_create = f->steps.create;
	f->steps.create = create_then_hold;
	pipeline_make(f);
	th_outbox_publish(f->root, "acts/fine-pec", "held");
	claim(f, "held");
	assert_int_equal(process(f, "held"), SVC_PROGRESS_WAITING);
	assert_state(f, "held", "submitted");
	assert_true(qi(f, "SELECT next_attempt_at FROM acts WHERE act_id = ?1", "held") >=
		    sb_now_ms() + 59000);
	/* Moved on, but the next step is not due: no status request yet, however often asked. */
	assert_int_equal(process(f, "held"), SVC_PROGRESS_WAITING);
	assert_int_equal(th_platform_calls(&f->plat, "acceptance", "held"), 0);
	assert_int_equal(svc_pipeline_due(f->p, f->s, sb_now_ms(), 10, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(svc_pipeline_due(f->p, f->s, sb_now_ms() + 61000, 10,
					  &names, &n, &err), 0);
	assert_int_equal(n, 1);
	svc_outbox_names_free(names, n);
}

static void test_svc_pipeline__backoff_doubles_with_jitter_and_a_ceiling(void **state)
{
	struct svc_pipeline_opts o = { 1000, 8000, 10, 0 };

	(void)state;
	for (int i = 0; i < 200; i++) {
		int64_t d1 = svc_pipeline_backoff_ms(&o, 1, -1),
			d3 = svc_pipeline_backoff_ms(&o, 3, -1);
		int64_t d30 = svc_pipeline_backoff_ms(&o, 30, -1),
			ra = svc_pipeline_backoff_ms(&o, 1, 20);

		assert_true(d1 >= 500 && d1 <= 1000);
		assert_true(d3 >= 2000 && d3 <= 4000);
		assert_true(d30 >= 4000 && d30 <= 8000);
		assert_int_equal(ra, 20000);
	}
}

static void test_svc_pipeline__gives_up_after_max_attempts(void **state)
{
	struct fx *f = *state;
	json_t *r;
	char *last;

	f->plat.temp_first = 1000;
	f->opts.max_attempts = 3;
	pipeline_make(f);
	th_outbox_publish(f->root, "acts/fine-company", "co-1");
	claim(f, "co-1");
	drain(f);
	assert_state(f, "co-1", "failed");
	assert_int_equal(th_platform_calls(&f->plat, "check", "co-1"), 3);
	last = q(f, "SELECT last_error FROM acts WHERE act_id = ?1", "co-1");
	assert_non_null(strstr(last, "gave up after 3 attempts"));
	free(last);
	r = reason(f, "co-1");
	assert_string_equal(json_string_value(json_object_get(r, "state")), "failed");
	assert_string_equal(problem(r, 0, "path"), "check");
	assert_non_null(strstr(problem(r, 0, "message"), "injected 503"));
	json_decref(r);
}

static void test_svc_pipeline__a_permanent_check_error_rejects_field_by_field(void **state)
{
	struct fx *f = *state;
	json_t *r;

	f->plat.reject_act = "bad-docs";
	th_outbox_publish(f->root, "acts/fine-pagopa", "bad-docs");
	claim(f, "bad-docs");
	assert_int_equal(process(f, "bad-docs"), SVC_PROGRESS_FINISHED);
	assert_state(f, "bad-docs", "rejected");
	assert_int_equal(th_platform_calls(&f->plat, "check", "bad-docs"), 1);   /* never retried */
	assert_int_equal(th_platform_calls(&f->plat, "resolve", "bad-docs"), 0);
	r = reason(f, "bad-docs");
	assert_string_equal(json_string_value(json_object_get(r, "state")), "rejected");
	assert_string_equal(json_string_value(json_object_get(r, "step")), "check");
	assert_string_equal(problem(r, 0, "path"), "documents[0].file");
	assert_string_equal(problem(r, 0, "message"), "not a PDF/A file");
	assert_string_equal(problem(r, 1, "path"), "documents[0].title");
	json_decref(r);
	assert_true(in(f, "rejected", "bad-docs", "verbale.pdf"));
}

static void test_svc_pipeline__a_refusal_keeps_sends_codes(void **state)
{
	struct fx *f = *state;
	json_t *r;
	char *refusal;

	f->plat.refuse_act = "refused-1";
	th_outbox_publish(f->root, "acts/fine-pagopa", "refused-1");
	claim(f, "refused-1");
	drain(f);
	assert_state(f, "refused-1", "refused");
	refusal = q(f, "SELECT refusal FROM notifications n JOIN acts a ON a.id = n.act"
		    " WHERE a.act_id = ?1", "refused-1");
	assert_non_null(refusal);
	assert_non_null(strstr(refusal, "FILE_SHA_ERROR"));
	free(refusal);
	r = reason(f, "refused-1");
	assert_string_equal(json_string_value(json_object_get(r, "state")), "refused");
	assert_string_equal(problem(r, 0, "path"), "FILE_SHA_ERROR");
	json_decref(r);
}

static void test_svc_pipeline__a_permanent_platform_error_fails_the_act(void **state)
{
	struct fx *f = *state;
	char *last;

	f->plat.fail_act = "broken-up";
	th_outbox_publish(f->root, "acts/fine-pagopa", "broken-up");
	claim(f, "broken-up");
	drain(f);
	assert_state(f, "broken-up", "failed");
	last = q(f, "SELECT last_error FROM acts WHERE act_id = ?1", "broken-up");
	assert_string_equal(last, "upload: upload: safe storage answered with a bad key");
	free(last);
	assert_int_equal(th_platform_calls(&f->plat, "upload", "broken-up"), 1);
	assert_int_equal(th_platform_count(&f->plat, "notification broken-up"), 0);
	assert_true(in(f, "rejected", "broken-up", "reason.json"));
}

static void test_svc_pipeline__a_bad_act_among_good_ones(void **state)
{
	struct fx *f = *state;
	json_t *r;
	struct svc_metrics m;

	th_outbox_publish_json(f->root, "good-a", th_act_good);
	th_outbox_publish_json(f->root, "broken", th_act_broken);
	th_outbox_publish_json(f->root, "good-b", th_act_good);
	claim(f, "good-a");
	claim(f, "broken");
	claim(f, "good-b");
	drain(f);
	assert_state(f, "good-a", "closed");
	assert_state(f, "good-b", "closed");
	/* The broken one never got a row: it is rejected at intake with every problem. */
	assert_int_equal(qi(f, "SELECT count(*) FROM acts WHERE act_id = ?1", "broken"), 0);
	r = reason(f, "broken");
	assert_string_equal(json_string_value(json_object_get(r, "step")), "intake");
	assert_string_equal(problem(r, 0, "path"), "subject");
	assert_string_equal(problem(r, 0, "message"), "required");
	assert_string_equal(problem(r, 1, "path"), "recipients[0].taxId");
	assert_non_null(strstr(problem(r, 1, "message"), "check character"));
	json_decref(r);
	assert_int_equal(qi(f, "SELECT count(*) FROM outcomes WHERE act_id = ?1 AND act IS NULL"
			    " AND folder = 'broken'", "broken"), 1);
	svc_metrics_get(&m);
	assert_int_equal(m.intake, 3);
	assert_int_equal(m.intake_rejected, 1);
}

static void test_svc_pipeline__a_crash_before_the_move_is_finished_at_restart(void **state)
{
	struct fx *f = *state;
	char *from, *to, *p;
	json_t *r;

	f->plat.reject_act = "crashy";
	th_outbox_publish(f->root, "acts/fine-pagopa", "crashy");
	claim(f, "crashy");
	drain(f);
	/* Put things back as a crash between the final commit and the move leaves them. */
	from = sb_xasprintf("%s/rejected/crashy", f->root);
	to = sb_xasprintf("%s/work/crashy", f->root);
	assert_int_equal(rename(from, to), 0);
	p = sb_xasprintf("%s/reason.json", to);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(sqlite3_exec(svc_store_db(f->s), "UPDATE outcomes SET folder = NULL",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(process(f, "crashy"), SVC_PROGRESS_FINISHED);
	assert_false(in(f, "work", "crashy", NULL));
	r = reason(f, "crashy");       /* rewritten from the store */
	assert_string_equal(problem(r, 0, "path"), "documents[0].file");
	json_decref(r);
	assert_int_equal(th_platform_calls(&f->plat, "check", "crashy"), 1);
	free(from);
	free(to);
	free(p);
}

static void test_svc_pipeline__an_unrecorded_claim_is_taken_in_at_restart(void **state)
{
	struct fx *f = *state;

	/* Claimed, then killed before the store row: the folder alone is in work/. */
	th_outbox_publish(f->root, "acts/fine-pagopa", "lost-claim");
	claim(f, "lost-claim");
	assert_int_equal(qi(f, "SELECT count(*) FROM acts WHERE act_id = ?1", "lost-claim"), 0);
	drain(f);
	assert_state(f, "lost-claim", "closed");
	assert_int_equal(qi(f, "SELECT count(*) FROM acts WHERE act_id = ?1", "lost-claim"), 1);
}

static void test_svc_pipeline__a_reused_act_id_is_rejected(void **state)
{
	struct fx *f = *state;
	json_t *r;

	th_outbox_publish_json(f->root, "twice", th_act_good);
	claim(f, "twice");
	drain(f);
	assert_state(f, "twice", "closed");
	/* The same id again, identical: it was finished, so this is a second act. */
	th_outbox_publish_json(f->root, "twice", th_act_good);
	claim(f, "twice");
	assert_int_equal(process(f, "twice"), SVC_PROGRESS_FINISHED);
	r = reason(f, "twice");
	assert_non_null(strstr(problem(r, 0, "message"), "already received"));
	json_decref(r);
	/* The same id with another act.json. */
	th_outbox_publish(f->root, "acts/fine-pec", "twice");
	claim(f, "twice");
	assert_int_equal(process(f, "twice"), SVC_PROGRESS_FINISHED);
	assert_true(in(f, "rejected", "twice.1", "reason.json"));
	/* The first act is untouched, and the platform saw one notification. */
	assert_state(f, "twice", "closed");
	assert_true(in(f, "done", "twice", NULL));
	assert_int_equal(qi(f, "SELECT count(*) FROM acts WHERE act_id = ?1", "twice"), 1);
	assert_int_equal(th_platform_count(&f->plat, "notification twice"), 1);
}

static void test_svc_pipeline__stop_leaves_the_act_between_steps(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	enum svc_progress pr;
	atomic_bool stop = true;

	th_outbox_publish(f->root, "acts/fine-pagopa", "stopped");
	claim(f, "stopped");
	assert_int_equal(svc_pipeline_process(f->p, f->s, &f->plat, "stopped",
					      &stop, &pr, &err), 0);
	assert_int_equal(pr, SVC_PROGRESS_STOPPED);
	assert_state(f, "stopped", "received");
	assert_int_equal(th_platform_calls(&f->plat, "check", "stopped"), 0);
	drain(f);
	assert_state(f, "stopped", "closed");
}

static void test_svc_pipeline__an_unwired_step_parks_the_act(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char **names = NULL, *last;
	size_t n = 9;
	int64_t next = 0;

	f->steps.resolve = NULL;
	pipeline_make(f);
	th_outbox_publish(f->root, "acts/fine-pagopa", "parked");
	claim(f, "parked");
	assert_int_equal(process(f, "parked"), SVC_PROGRESS_WAITING);
	assert_state(f, "parked", "checked");
	last = q(f, "SELECT last_error FROM acts WHERE act_id = ?1", "parked");
	assert_string_equal(last, "waiting: step 'resolve' is not available in this build");
	free(last);
	/* Not due, and nothing to wake up for. */
	assert_int_equal(svc_pipeline_due(f->p, f->s, INT64_MAX - 1, 10, &names, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(svc_pipeline_next_due(f->p, f->s, &next, &err), 0);
	assert_int_equal(next, INT64_MAX);
	/* A build with the step picks it up. */
	th_platform_steps(&f->plat, &f->steps);
	pipeline_make(f);
	assert_int_equal(svc_pipeline_due(f->p, f->s, sb_now_ms(), 10, &names, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "parked");
	svc_outbox_names_free(names, n);
	drain(f);
	assert_state(f, "parked", "closed");
}

static void test_svc_pipeline__builtin_steps_keep_acts_in_received(void **state)
{
	struct fx *f = *state;

	svc_pipeline_free(f->p);
	svc_pipeline_new(&f->p, NULL, f->o, svc_steps_builtin(), &f->opts);
	th_outbox_publish(f->root, "acts/fine-pagopa", "early");
	claim(f, "early");
	assert_int_equal(process(f, "early"), SVC_PROGRESS_WAITING);
	assert_state(f, "early", "received");
	assert_true(in(f, "work", "early", "act.json"));
}

static void test_svc_pipeline__a_missing_folder_fails_the_act(void **state)
{
	struct fx *f = *state;
	char *dir;

	f->steps.resolve = NULL;
	pipeline_make(f);
	th_outbox_publish(f->root, "acts/fine-pagopa", "vanished");
	claim(f, "vanished");
	assert_int_equal(process(f, "vanished"), SVC_PROGRESS_WAITING);
	dir = sb_xasprintf("%s/work/vanished", f->root);
	th_rmrf(dir);
	free(dir);
	th_platform_steps(&f->plat, &f->steps);
	pipeline_make(f);
	assert_int_equal(process(f, "vanished"), SVC_PROGRESS_FINISHED);
	assert_state(f, "vanished", "failed");
}

static void test_svc_pipeline__stream_events_drive_tracking(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_metrics m;
	int64_t wait = -1;
	char *pos = NULL, *stream, *txt;

	f->plat.stream = true;
	th_platform_steps(&f->plat, &f->steps);
	f->opts.poll_ms = 60000;      /* no polling: only the stream can move it on */
	pipeline_make(f);
	th_outbox_publish(f->root, "acts/fine-pagopa", "streamed");
	claim(f, "streamed");
	assert_int_equal(process(f, "streamed"), SVC_PROGRESS_WAITING);
	assert_state(f, "streamed", "submitted");
	/* The acceptance poll comes round (here at once rather than in poll_ms). */
	assert_int_equal(sqlite3_exec(svc_store_db(f->s), "UPDATE acts SET next_attempt_at = 0",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(process(f, "streamed"), SVC_PROGRESS_WAITING);
	/* Accepted, and the track step found no event yet: it waits a full poll. */
	assert_state(f, "streamed", "accepted");
	assert_true(qi(f, "SELECT next_attempt_at FROM acts WHERE act_id = ?1", "streamed") >
		    sb_now_ms() + 50000);
	/* The stream holds its two events, the second one twice (a replayed publication). */
	stream = sb_xasprintf("%s/stream", f->plat.dir);
	txt = th_read(stream, NULL);
	assert_non_null(txt);
	th_write_str(stream, "evt-other-1 IUN-other REQUEST_ACCEPTED\n", 0600);
	{
		char *all = sb_xasprintf("evt-other-1 IUN-other REQUEST_ACCEPTED\n%s"
					 "evt-streamed-2 IUN-streamed SEND_DIGITAL_FEEDBACK\n",
					 txt);

		th_write_str(stream, all, 0600);
		free(all);
	}
	free(txt);
	assert_int_equal(svc_pipeline_stream_step(f->p, f->s, &f->plat, &wait, &err), 1);
	assert_int_equal(wait, 0);
	assert_int_equal(qi(f, "SELECT count(*) FROM events", NULL), 3);
	assert_int_equal(qi(f, "SELECT count(*) FROM events WHERE iun = ?1", "IUN-streamed"), 2);
	assert_int_equal(svc_store_meta_get(f->s, "stream.position", &pos, &err), 0);
	assert_string_equal(pos, "4");
	free(pos);
	/* Woken: due now. */
	assert_int_equal(qi(f, "SELECT next_attempt_at FROM acts"
			    " WHERE act_id = ?1", "streamed"), 0);
	svc_metrics_get(&m);
	assert_true(m.stream_lag_s >= 0);
	/* Nothing new: read again after poll_ms. */
	assert_int_equal(svc_pipeline_stream_step(f->p, f->s, &f->plat, &wait, &err), 0);
	assert_int_equal(wait, 60000);
	assert_int_equal(qi(f, "SELECT count(*) FROM events", NULL), 3);
	drain(f);
	assert_state(f, "streamed", "closed");
	assert_int_equal(th_platform_count(&f->plat, "receipt streamed DIGITAL_DELIVERY"), 1);
	free(stream);
}

/*
 * SEND's REQUEST_ACCEPTED on the stream names the request it accepted: the
 * act waiting for that request's acceptance is due at once (its step then
 * reads the IUN from the event, test_svc_steps), and no other act is.
 */
static void test_svc_pipeline__request_accepted_on_the_stream_wakes_its_act(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	int64_t wait = -1;
	char *stream, *req, *line;

	f->plat.stream = true;
	th_platform_steps(&f->plat, &f->steps);
	f->opts.poll_ms = 60000;
	pipeline_make(f);
	th_outbox_publish(f->root, "acts/fine-pagopa", "waiting");
	claim(f, "waiting");
	assert_int_equal(process(f, "waiting"), SVC_PROGRESS_WAITING);
	assert_state(f, "waiting", "submitted");
	assert_true(qi(f, "SELECT next_attempt_at FROM acts WHERE act_id = ?1", "waiting") > 0);
	req = q(f, "SELECT n.request_id FROM notifications n JOIN acts a ON a.id = n.act"
		" WHERE a.act_id = ?1", "waiting");
	assert_non_null(req);
	stream = sb_xasprintf("%s/stream", f->plat.dir);

	/* Another request's acceptance: this act stays where it was. */
	th_write_str(stream, "evt-1 IUN-other REQUEST_ACCEPTED UkVRLW90aGVy\n", 0600);
	assert_int_equal(svc_pipeline_stream_step(f->p, f->s, &f->plat, &wait, &err), 1);
	assert_true(qi(f, "SELECT next_attempt_at FROM acts WHERE act_id = ?1", "waiting") > 0);

	line = sb_xasprintf("evt-1 IUN-other REQUEST_ACCEPTED UkVRLW90aGVy\n"
			    "evt-2 IUN-waiting REQUEST_ACCEPTED %s\n", req);
	th_write_str(stream, line, 0600);
	assert_int_equal(svc_pipeline_stream_step(f->p, f->s, &f->plat, &wait, &err), 1);
	assert_int_equal(qi(f, "SELECT next_attempt_at FROM acts WHERE act_id = ?1", "waiting"), 0);
	assert_int_equal(qi(f, "SELECT count(*) FROM events WHERE request_id = ?1"
			    " AND category = 'REQUEST_ACCEPTED'", req), 1);
	free(line);
	free(stream);
	free(req);
}

static void test_svc_pipeline__a_stream_error_keeps_the_position(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	int64_t wait = -1;
	char *pos = NULL;

	f->plat.stream = true;
	f->plat.temp_pct = 100;
	th_platform_steps(&f->plat, &f->steps);
	pipeline_make(f);
	assert_int_equal(svc_pipeline_stream_step(f->p, f->s, &f->plat, &wait, &err), SB_ETEMP);
	assert_int_equal(err.code, SB_ETEMP);
	assert_true(err.msg[0]);
	assert_true(wait >= 1 && wait <= f->opts.retry_base_ms);
	assert_int_equal(svc_store_meta_get(f->s, "stream.position", &pos, &err), SB_ENOTFOUND);
}

static void test_svc_pipeline__migration_is_idempotent_and_versioned(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	sqlite3 *db = svc_store_db(f->s);
	char *v;

	assert_int_equal(svc_pipeline_store_migrate(db, &err), 0);
	v = q(f, "SELECT value FROM meta WHERE key = 'schema.pipeline'", NULL);
	assert_string_equal(v, "2");
	free(v);
	assert_int_equal(sqlite3_exec(db,
				      "UPDATE meta SET value = '99' WHERE key = 'schema.pipeline'",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(svc_pipeline_store_migrate(db, &err), SB_ECONFIG);
	assert_int_equal(err.code, SB_ECONFIG);
	assert_non_null(strstr(err.msg, "newer"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(test_svc_pipeline__##name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(an_act_goes_from_outbox_to_done),
		T(temporary_errors_are_retried_with_backoff),
		T(retry_after_is_honoured),
		T(a_step_can_hold_the_next_one_back),
		cmocka_unit_test(test_svc_pipeline__backoff_doubles_with_jitter_and_a_ceiling),
		T(gives_up_after_max_attempts),
		T(a_permanent_check_error_rejects_field_by_field),
		T(a_refusal_keeps_sends_codes),
		T(a_permanent_platform_error_fails_the_act),
		T(a_bad_act_among_good_ones),
		T(a_crash_before_the_move_is_finished_at_restart),
		T(an_unrecorded_claim_is_taken_in_at_restart),
		T(a_reused_act_id_is_rejected),
		T(stop_leaves_the_act_between_steps),
		T(an_unwired_step_parks_the_act),
		T(builtin_steps_keep_acts_in_received),
		T(a_missing_folder_fails_the_act),
		T(stream_events_drive_tracking),
		T(request_accepted_on_the_stream_wakes_its_act),
		T(a_stream_error_keeps_the_position),
		T(migration_is_idempotent_and_versioned),
	};
#undef T

	return cmocka_run_group_tests_name("svc_pipeline", tests, NULL, NULL);
}
