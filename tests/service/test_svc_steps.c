/*
 * The platform steps (service/svc_steps.c) one by one, on their error
 * paths: configuration refused at start, a worker that cannot open the
 * protocol register, a document that is not PDF/A, an unreachable SEND,
 * a store newer than the build; and the upload and the protocol
 * registration, which use the hashes recorded at intake instead of hashing
 * again. The flow itself is proven
 * end to end by tests/e2e/test_e2e_pipeline.c.
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

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "svc_act.h"
#include "svc_steps.h"
#include "svc_store.h"
#include "../helpers/th.h"
#include "../helpers/th_e2e.h"
#include "../helpers/th_platform.h"

struct fx {
	char *dir, *db, *api, *proto;
	const char *send_url;                /* NULL: a port where nothing listens */
	struct sb_cfg *cfg;
	struct svc_clients *clients;
	struct svc_store *store;
	void *wctx;
};

/* A configuration over dir with extra INI text; SEND at f->send_url or where nothing listens. */
static struct sb_cfg *load_cfg(struct fx *f, const char *extra)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	char *path = sb_xasprintf("%s/steps.ini", f->dir);
	char *ini = sb_xasprintf(
		"[service]\nsender_denomination = Comune di Esempio\nsender_tax_id = 80012345676\n"
		"[outbox]\ndir = %s/outbox\n[store]\npath = %s\n"
		"[send]\nbase_url = %s\napi_key_file = %s\ntimeout_ms = 2000\n"
		"[office.polizia-municipale]\noperators = agente.bianchi\n%s",
		f->dir, f->db, f->send_url ? f->send_url : "http://127.0.0.1:1", f->api, extra);
	struct sb_cfg *cfg = NULL;

	th_write_str(path, ini, 0600);
	if (sb_cfg_load(&cfg, path, &probs, &err) < 0)
		fail_msg("config: %s %s", err.msg, probs.n ? probs.items[0].msg : "");
	sb_problems_release(&probs);
	free(ini);
	free(path);
	return cfg;
}

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));
	struct sb_err err = SB_ERR_INIT;

	/* The send-sim a test starts is stopped by teardown even when the test fails. */
	th_scope_begin();
	f->dir = th_tmpdir("steps");
	f->db = sb_xasprintf("%s/store.db", f->dir);
	f->api = sb_xasprintf("%s/api.key", f->dir);
	th_write_str(f->api, "sim-send-key\n", 0600);
	f->proto = th_e2e_protocol_ini(f->dir);
	assert_int_equal(svc_store_open(&f->store, f->db, 5000, &err), 0);
	assert_int_equal(svc_steps_migrate_all(svc_store_db(f->store), &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->wctx)
		svc_clients_steps(f->clients)->worker_release(NULL, f->wctx);
	svc_clients_free(f->clients);
	sb_cfg_free(f->cfg);
	svc_store_close(f->store);
	th_rmrf(f->dir);
	free(f->dir);
	free(f->db);
	free(f->api);
	free(f->proto);
	free(f);
	th_scope_end();
	return 0;
}

/* Clients and one worker over the full configuration. */
static const struct svc_steps *open_worker(struct fx *f)
{
	struct sb_err err = SB_ERR_INIT;
	const struct svc_steps *steps;

	f->cfg = load_cfg(f, f->proto);
	assert_int_equal(svc_clients_new(&f->clients, f->cfg, &err), 0);
	steps = svc_clients_steps(f->clients);
	if (steps->worker_init(steps->data, &f->wctx, &err) < 0)
		fail_msg("worker_init: %s", err.msg);
	return steps;
}

/* The act in dir/<id> (one document atto.pdf, replaced by doc when given). */
static struct svc_act *load_act(struct fx *f, const char *id, const char *doc)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	char *root = sb_xasprintf("%s/outbox", f->dir), *dir = sb_xasprintf("%s/new/%s", root, id);
	char *new_dir = sb_xasprintf("%s/new", root);
	struct svc_act *a = NULL;

	th_mkdirs(new_dir);
	th_outbox_publish_json(root, id, th_act_good);
	if (doc) {
		size_t len = 0;
		char *bytes = th_read(doc, &len), *dst = sb_xasprintf("%s/atto.pdf", dir);

		assert_non_null(bytes);
		th_write(dst, bytes, len, 0640);
		free(bytes);
		free(dst);
	}
	if (svc_act_load(&a, dir, true, &probs, &err) < 0)
		fail_msg("act: %s", probs.n ? probs.items[0].msg : err.msg);
	sb_problems_release(&probs);
	free(new_dir);
	free(dir);
	free(root);
	return a;
}

static void test_svc_steps__pdnd_without_its_key_is_a_configuration_error(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_clients *c = NULL;

	f->cfg = load_cfg(f, "[pdnd]\nclient_id = 6b1e1f4e-0d3a-4c41-9a59-2f1f5e0c8a11\n"
			  "[inad]\nbase_url = https://127.0.0.1:9/inad\n");
	assert_int_equal(svc_clients_new(&c, f->cfg, &err), SB_ECONFIG);
	assert_int_equal(err.code, SB_ECONFIG);
	assert_true(err.msg[0] != '\0');
	assert_null(c);
}

static void test_svc_steps__a_worker_without_protocol_seal_does_not_start(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	const struct svc_steps *steps;
	void *w = NULL;

	f->cfg = load_cfg(f, "");
	assert_int_equal(svc_clients_new(&f->clients, f->cfg, &err), 0);
	steps = svc_clients_steps(f->clients);
	/* Every step is wired, the stream too. */
	assert_non_null(steps->check);
	assert_non_null(steps->resolve);
	assert_non_null(steps->register_protocol);
	assert_non_null(steps->upload);
	assert_non_null(steps->create);
	assert_non_null(steps->acceptance);
	assert_non_null(steps->track);
	assert_non_null(steps->stream_read);
	assert_int_equal(steps->worker_init(steps->data, &w, &err), SB_ECONFIG);
	assert_int_equal(err.code, SB_ECONFIG);
	assert_true(err.msg[0] != '\0');
	assert_null(w);
}

static void test_svc_steps__a_document_that_is_not_pdfa_is_named(void **state)
{
	struct fx *f = *state;
	char *bad = th_shared("fixtures-external/pdfa/pdfa2b_6-1-3-t02-fail-a.pdf");
	const struct svc_steps *steps = open_worker(f);
	struct sb_err err = SB_ERR_INIT;
	struct svc_step_result res;
	struct svc_act *a;
	struct svc_job job = { 0 };

	assert_non_null(bad);
	a = load_act(f, "bad-doc", bad);
	job.act_id = a->id;
	job.dir = a->dir;
	job.act = a;
	memset(&res, 0, sizeof(res));
	assert_int_equal(steps->check(f->wctx, &job, &res, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_non_null(strstr(err.msg, "documents[0].file"));
	assert_true(res.problems.n >= 1);
	assert_string_equal(res.problems.items[0].where, "documents[0].file");
	assert_non_null(strstr(res.problems.items[0].msg, "atto.pdf"));
	sb_problems_release(&res.problems);
	svc_act_free(a);
	free(bad);
}

/*
 * No notification is created before the event stream exists (SEND's stream
 * reports only what happens after its creation): create waits, and goes
 * on once the stream's id is stored.
 */
static void test_svc_steps__create_waits_for_the_stream(void **state)
{
	struct fx *f = *state;
	const struct svc_steps *steps = open_worker(f);
	struct sb_err err = SB_ERR_INIT;
	struct svc_step_result res;
	struct svc_act *a = load_act(f, "good-2", NULL);
	struct svc_job job = { 0 };

	job.act_id = a->id;
	job.dir = a->dir;
	job.act = a;
	job.protocol_number = "PG/2026/0000001";
	memset(&res, 0, sizeof(res));
	assert_int_equal(steps->create(f->wctx, &job, &res, &err), 0);
	assert_true(res.pending);
	assert_true(res.wait_ms > 0);
	assert_int_equal(svc_store_meta_set(f->store, "send.stream_id",
					    "df568178-32be-46ba-a46f-db3005efe263", &err), 0);
	memset(&res, 0, sizeof(res));
	/* Now it goes on, and stops at the next thing missing: this act was never uploaded. */
	assert_int_not_equal(steps->create(f->wctx, &job, &res, &err), 0);
	assert_false(res.pending);
	assert_non_null(strstr(err.msg, "is not recorded"));
	svc_act_free(a);
}

static void test_svc_steps__a_good_act_is_checked_resolved_and_registered_once(void **state)
{
	struct fx *f = *state;
	const struct svc_steps *steps = open_worker(f);
	struct sb_err err = SB_ERR_INIT;
	struct svc_step_result res;
	struct svc_act *a = load_act(f, "good-1", NULL);
	struct svc_job job = { 0 };
	char first[128];
	char *src;

	job.act_id = a->id;
	job.dir = a->dir;
	job.act = a;
	memset(&res, 0, sizeof(res));
	assert_int_equal(steps->check(f->wctx, &job, &res, &err), 0);
	assert_int_equal(steps->resolve(f->wctx, &job, &res, &err), 0);
	/* Without PDND the act's own data is recorded. */
	src = th_e2e_text(svc_store_db(f->store), "SELECT address_source || '/' || domicile_source"
			  " FROM resolutions WHERE act_id = ?1", "good-1");
	assert_string_equal(src, "act/none");
	free(src);
	assert_int_equal(steps->register_protocol(f->wctx, &job, &res, &err), 0);
	assert_true(!strncmp(res.value, "PG/", 3));
	snprintf(first, sizeof(first), "%s", res.value);
	/* A replay (a crash before the pipeline's commit) gets the same number. */
	memset(&res, 0, sizeof(res));
	assert_int_equal(steps->register_protocol(f->wctx, &job, &res, &err), 0);
	assert_string_equal(res.value, first);
	assert_int_equal(th_e2e_int(svc_store_db(f->store),
				    "SELECT count(*) FROM proto_registrations"
				    " WHERE act_id = ?1", "good-1"), 1);
	/* SEND cannot be reached: a temporary error, retried by the pipeline. */
	job.protocol_number = first;
	assert_int_equal(steps->upload(f->wctx, &job, &res, &err), SB_ETEMP);
	assert_int_equal(err.code, SB_ETEMP);
	assert_true(err.msg[0] != '\0');
	svc_act_free(a);
}

/* Record a as intake does (documents with their SHA-256) and point job at it. */
static void intake_act(struct fx *f, struct svc_act *a, struct svc_job *job)
{
	struct sb_err err = SB_ERR_INIT;
	char *json = sb_xasprintf("%s/act.json", a->dir), *bytes;
	size_t len = 0;
	int64_t id = 0;

	bytes = th_read(json, &len);
	assert_non_null(bytes);
	assert_int_equal(svc_store_act_insert(f->store, a, bytes, &id, &err), 0);
	free(bytes);
	free(json);
	job->id = id;
	job->act_id = a->id;
	job->dir = a->dir;
	job->act = a;
}

/* The bytes of doc (returned, with their length), and doc made one byte longer. */
static char *grow_file(const char *doc, size_t *len)
{
	char *bytes = th_read(doc, len), *longer;

	assert_non_null(bytes);
	longer = sb_xmalloc(*len + 1);
	memcpy(longer, bytes, *len);
	longer[*len] = '\n';
	th_write(doc, longer, *len + 1, 0640);
	free(longer);
	return bytes;
}

/*
 * Upload sends the SHA-256 that intake recorded (documents) and does not hash
 * the files again: a document whose size changed in the act's folder after
 * intake is stopped before SEND sees it, and the unchanged one goes up with
 * the recorded hash.
 */
static void test_svc_steps__upload_uses_the_hash_recorded_at_intake(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_step_result res;
	struct svc_job job = { 0 };
	struct th_sim sim;
	const struct svc_steps *steps;
	struct svc_act *a;
	char *doc, *bytes, *sent, *recorded;
	size_t len = 0;

	th_sim_start(&sim, NULL);
	f->send_url = sim.url;
	steps = open_worker(f);
	a = load_act(f, "hash-1", NULL);
	doc = sb_xasprintf("%s/atto.pdf", a->dir);
	intake_act(f, a, &job);
	job.protocol_number = "c_x000|2026|0000001";

	bytes = grow_file(doc, &len);
	memset(&res, 0, sizeof(res));
	assert_int_equal(steps->upload(f->wctx, &job, &res, &err), SB_EIO);
	assert_int_equal(err.code, SB_EIO);
	assert_non_null(strstr(err.msg, "changed"));
	assert_int_equal(th_e2e_int(svc_store_db(f->store), "SELECT count(*) FROM send_uploads"
				    " WHERE act_id = ?1", "hash-1"), 0);

	th_write(doc, bytes, len, 0640);
	sb_err_clear(&err);
	assert_int_equal(steps->upload(f->wctx, &job, &res, &err), 0);
	sent = th_e2e_text(svc_store_db(f->store), "SELECT sha256 FROM send_uploads"
			   " WHERE act_id = ?1", "hash-1");
	recorded = th_e2e_text(svc_store_db(f->store), "SELECT d.sha256 FROM documents d"
			       " JOIN acts a ON a.id = d.act WHERE a.act_id = ?1", "hash-1");
	{
		struct sb_buf raw = SB_BUF_INIT(64), b64 = SB_BUF_INIT(64);

		assert_int_equal(sb_hex_decode(recorded, strlen(recorded), &raw), 0);
		sb_base64_encode(raw.buf, raw.len, &b64);
		assert_string_equal(sent, sb_buf_cstr(&b64));
		sb_buf_release(&raw);
		sb_buf_release(&b64);
	}
	free(sent);
	free(recorded);
	free(bytes);
	free(doc);
	svc_act_free(a);
	th_sim_stop(&sim);
}

/*
 * An empty page of the stream says, in milliseconds, when to read again:
 * the wait is SEND's to the millisecond, not rounded up to whole seconds
 * (a 250 ms interval must not become 1 s behind every event).
 */
static void test_svc_steps__an_empty_stream_page_waits_what_send_says(void **state)
{
	static const char *const extra[] = { "--send-stream-interval-ms", "250", NULL };
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_event_batch b = { NULL, 0, NULL, -1 };
	const struct svc_steps *steps;
	struct th_sim sim;

	th_sim_start(&sim, extra);
	f->send_url = sim.url;
	steps = open_worker(f);
	if (steps->stream_read(f->wctx, NULL, &b, &err) < 0)
		fail_msg("stream_read: %s", err.msg);
	assert_int_equal(b.n, 0);
	assert_int_equal(b.retry_after_ms, 250);
	svc_event_batch_release(&b);
	th_sim_stop(&sim);
}

/*
 * The protocol registration takes the SHA-256 recorded at intake as the
 * documents' impronta and does not hash them again: a document whose size
 * changed in the act's folder after intake takes no number; one changed in
 * place is registered with the impronta of what intake checked (SEND then
 * refuses its upload by checksum, test_sim_send), not of the new bytes.
 */
static void test_svc_steps__register_uses_the_hash_recorded_at_intake(void **state)
{
	struct fx *f = *state;
	const struct svc_steps *steps = open_worker(f);
	struct sb_err err = SB_ERR_INIT;
	struct svc_step_result res;
	struct svc_act *a = load_act(f, "hash-2", NULL);
	struct svc_job job = { 0 };
	char *doc = sb_xasprintf("%s/atto.pdf", a->dir), *bytes, *recorded, *registered, *want;
	size_t len = 0;

	intake_act(f, a, &job);
	bytes = grow_file(doc, &len);
	memset(&res, 0, sizeof(res));
	assert_int_equal(steps->register_protocol(f->wctx, &job, &res, &err), SB_EIO);
	assert_non_null(strstr(err.msg, "documents[0]"));
	assert_non_null(strstr(err.msg, "changed"));
	assert_int_equal(th_e2e_int(svc_store_db(f->store),
				    "SELECT count(*) FROM proto_registrations"
				    " WHERE act_id = ?1", "hash-2"), 0);

	/* Same size, one byte changed: the impronta stays the one intake recorded. */
	bytes[len / 2] ^= 0x01;
	th_write(doc, bytes, len, 0640);
	sb_err_clear(&err);
	assert_int_equal(steps->register_protocol(f->wctx, &job, &res, &err), 0);
	recorded = th_e2e_text(svc_store_db(f->store), "SELECT d.sha256 FROM documents d"
			       " JOIN acts a ON a.id = d.act WHERE a.act_id = ?1", "hash-2");
	registered = th_e2e_text(svc_store_db(f->store), "SELECT json_extract(documents,"
				 " '$[0].sha256') FROM proto_registrations WHERE act_id = ?1",
				 "hash-2");
	assert_int_equal(strlen(recorded), 64);
	assert_string_equal(registered, recorded);
	want = sb_xasprintf("%s", recorded);
	{
		unsigned char md[SB_SHA256_LEN];
		struct sb_buf hex = SB_BUF_INIT(80);
		uint64_t size = 0;

		assert_int_equal(sb_sha256_file(doc, md, &size, &err), 0);
		sb_hex_encode(md, sizeof(md), &hex);
		assert_string_not_equal(sb_buf_cstr(&hex), want);
		sb_buf_release(&hex);
	}
	free(want);
	free(registered);
	free(recorded);
	free(bytes);
	free(doc);
	svc_act_free(a);
}

/*
 * Acceptance takes the IUN that SEND's stream gave with REQUEST_ACCEPTED
 * for the act's request, without asking SEND: here SEND is where nothing
 * listens, so asking fails (as it does before the event is stored, and
 * for another request's event, or one with a malformed IUN).
 */
static void test_svc_steps__acceptance_reads_the_iun_the_stream_gave(void **state)
{
	struct fx *f = *state;
	const struct svc_steps *steps = open_worker(f);
	struct sb_err err = SB_ERR_INIT;
	struct svc_step_result res;
	struct svc_job job = { 0 };
	sqlite3 *db = svc_store_db(f->store);

	job.act_id = "accepted-1";
	job.request_id = "UkVRLTIwMjYxMjA2LTAwMQ";
	memset(&res, 0, sizeof(res));
	assert_true(steps->acceptance(f->wctx, &job, &res, &err) < 0);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO events (event_id, iun, category, element,"
				      " received_at, request_id) VALUES"
				      " ('01', 'ABCD-EFGH-IJKL-202612-A-1', 'REQUEST_ACCEPTED',"
				      "  '{}', 1, 'UkVRLW90aGVy'),"
				      " ('02', 'not an iun', 'REQUEST_ACCEPTED', '{}', 1,"
				      "  'UkVRLTIwMjYxMjA2LTAwMQ')", NULL, NULL, NULL), SQLITE_OK);
	sb_err_clear(&err);
	memset(&res, 0, sizeof(res));
	assert_true(steps->acceptance(f->wctx, &job, &res, &err) < 0);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO events (event_id, iun, category, element,"
				      " received_at, request_id) VALUES"
				      " ('03', 'QWER-TYUI-OPAS-202612-D-3', 'REQUEST_ACCEPTED',"
				      "  '{}', 1, 'UkVRLTIwMjYxMjA2LTAwMQ')", NULL, NULL, NULL),
			 SQLITE_OK);
	sb_err_clear(&err);
	memset(&res, 0, sizeof(res));
	assert_int_equal(steps->acceptance(f->wctx, &job, &res, &err), 0);
	assert_false(res.pending);
	assert_string_equal(res.value, "QWER-TYUI-OPAS-202612-D-3");
}

static void test_svc_steps__a_newer_store_is_refused(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	sqlite3 *db = svc_store_db(f->store);

	assert_int_equal(th_e2e_int(db, "SELECT value FROM meta"
				    " WHERE key = 'schema.steps'", NULL), 1);
	assert_int_equal(svc_steps_store_migrate(db, &err), 0);
	assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value = '7' WHERE key = 'schema.steps'",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(svc_steps_store_migrate(db, &err), SB_ECONFIG);
	assert_int_equal(err.code, SB_ECONFIG);
	assert_non_null(strstr(err.msg, "newer"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(test_svc_steps__##name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(pdnd_without_its_key_is_a_configuration_error),
		T(a_worker_without_protocol_seal_does_not_start),
		T(a_document_that_is_not_pdfa_is_named),
		T(create_waits_for_the_stream),
		T(a_good_act_is_checked_resolved_and_registered_once),
		T(upload_uses_the_hash_recorded_at_intake),
		T(an_empty_stream_page_waits_what_send_says),
		T(register_uses_the_hash_recorded_at_intake),
		T(acceptance_reads_the_iun_the_stream_gave),
		T(a_newer_store_is_refused),
	};

	return cmocka_run_group_tests_name("svc_steps", tests, NULL, NULL);
}
