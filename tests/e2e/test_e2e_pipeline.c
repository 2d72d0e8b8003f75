/*
 * The whole job, end to end: the real `send-bridge run` against a real
 * send-sim (SEND, PDND token server, ANPR and INAD) with the embedded
 * protocol register (a seal key made for the test with OpenSSL, AgID's
 * XSD from ../shared), on the sample acts of fixtures/acts/, one act for a
 * person known to ANPR and INAD, and two broken acts (one refused at
 * intake, one whose document is not PDF/A and is refused by the AgID
 * check).
 *
 * What is proven: every good act is closed in done/ with its legal facts;
 * SEND's ledger holds exactly one notification per act; every receipt is
 * registered exactly once in the protocol, linked to the act's outgoing
 * registration; the person's INAD domicile and ANPR residence were used
 * (and the PDND access trail names the act); the broken acts are in
 * rejected/ with a reason.json naming the field; `status` shows it all,
 * with each pagoPA act's cost equal to the price send-sim reports for its
 * notice and no cost for the act without pagoPA.
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
#include <sys/stat.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_http.h"
#include "sb_json.h"
#include "pdnd_resolve.h"
#include "../helpers/th.h"
#include "../helpers/th_pdnd.h"
#include "../helpers/th_e2e.h"
#include "../helpers/th_platform.h"

struct fx {
	struct th_pdnd pd;
	char *dir, *root, *cfg, *db, *log;
	unsigned port;   /* [web] listen */
	pid_t pid;
};

static const char *const good[][2] = {
	{ "2026-PM-0001", "acts/fine-pagopa" },
	{ "2026-PM-0002", "acts/fine-pec" },
	{ "2026-PM-0003", "acts/fine-company" },
	{ "2026-TR-0001", "acts/imu-assessment" },
};
/* The pagoPA notice of each good act (its act.json). */
static const char *const good_notice[] = {
	"302010000000001001", "302010000000001002", "302010000000001003", "302010000000002001",
};
#define PDND_ACT "2026-PM-0004"
#define BAD_CF_ACT "2026-PM-0090"
#define BAD_PDF_ACT "2026-PM-0091"
#define NACTS (SB_ARRAY_SIZE(good) + 3)

/*
 * A person in the simulated registries: INAD domicile, ANPR residence elsewhere
 * than the act says.
 */
static const char act_person[] =
	"{\"version\":1,\"office\":\"polizia-municipale\","
	"\"operator\":{\"userId\":\"agente.verdi\"},"
	"\"subject\":\"Verbale n. 2004/2026 - art. 7 Codice della Strada\","
	"\"taxonomyCode\":\"010101P\",\"physicalCommunicationType\":\"AR_REGISTERED_LETTER\","
	"\"feePolicy\":{\"type\":\"FLAT_RATE\"},"
	"\"recipients\":[{\"type\":\"PF\",\"taxId\":\"RSSMRA80A01H501U\","
	"\"denomination\":\"Mario Rossi\",\"physicalAddress\":{\"address\":\"Via Vecchia 1\","
	"\"zip\":\"00184\",\"municipality\":\"Roma\",\"province\":\"RM\"}}],"
	"\"documents\":[{\"file\":\"atto.pdf\",\"title\":\"Verbale n. 2004/2026\"}]}";

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));
	char *api, *proto, *pdnd, *ini;

	th_pdnd_start(&f->pd, 600);
	f->dir = sb_xstrdup(f->pd.dir);
	f->root = sb_xasprintf("%s/outbox", f->dir);
	f->cfg = sb_xasprintf("%s/e2e.ini", f->dir);
	f->db = sb_xasprintf("%s/e2e.db", f->dir);
	f->log = sb_xasprintf("%s/send-bridge.log", f->dir);
	proto = th_e2e_protocol_ini(f->dir);
	pdnd = th_pdnd_ini(&f->pd);
	api = sb_xasprintf("%s/send-api.key", f->dir);
	th_write_str(api, "sim-send-key\n", 0600);
	f->port = th_free_port();
	assert_true(f->port > 0);
	ini = sb_xasprintf(
		"[service]\nsender_denomination = Comune di Esempio\nsender_tax_id = 80012345676\n"
		"workers = 3\n"
		"[outbox]\ndir = %s\nretry_base = 1\nretry_max = 4\npoll_interval = 1\n"
		"rescan_interval = 2\n"
		"[store]\npath = %s\n"
		"[send]\nbase_url = %s\napi_key_file = %s\n"
		"%s"
		"[web]\nlisten = 127.0.0.1:%u\n"
		"%s"
		"[office.polizia-municipale]\noperators = agente.bianchi, agente.verdi\n"
		"classification = 6.3\n"
		"[office.tributi]\noperators = funz.neri\n",
		f->root, f->db, f->pd.sim.url, api, proto, f->port, pdnd);
	th_write_str(f->cfg, ini, 0600);
	for (const char *const *sub = (const char *const[]){ "tmp", "new", "work", "done",
							      "rejected", NULL }; *sub; sub++) {
		char *d = sb_xasprintf("%s/%s", f->root, *sub);

		th_mkdirs(d);
		free(d);
	}
	free(ini);
	free(api);
	free(proto);
	free(pdnd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->pid > 0)
		th_child_stop(&f->pid, SIGKILL);
	th_pdnd_stop(&f->pd);
	free(f->dir);
	free(f->root);
	free(f->cfg);
	free(f->db);
	free(f->log);
	free(f);
	return 0;
}

static void start_daemon(struct fx *f)
{
	f->pid = th_e2e_run(f->cfg, f->log);
}

/*
 * The daemon's count of API calls per platform against send-sim's count of
 * the calls it received (the daemon is its only client): equal once no call
 * is on the way (read between two equal counts of the simulator), with no
 * failed call in a run without faults.
 */
static void api_calls_match_the_simulator(const struct fx *f)
{
	static const char send[] = "sendbridge_api_calls_total{platform=\"send\"}";
	static const char pdnd[] = "sendbridge_api_calls_total{platform=\"pdnd\"}";
	int64_t before = -1, after = -2, ns = 0, np = 0;

	for (int i = 0; i < 100; i++) {
		before = th_e2e_sim_calls(f->pd.sim.url);
		ns = th_e2e_metric(f->port, send);
		np = th_e2e_metric(f->port, pdnd);
		after = th_e2e_sim_calls(f->pd.sim.url);
		if (before == after && ns + np == after)
			break;
		th_sleep_ms(50);
	}
	if (before != after || ns + np != after)
		fail_msg("api calls: send %lld + pdnd %lld, send-sim %lld then %lld",
			 (long long)ns, (long long)np, (long long)before, (long long)after);
	/* PDND: a voucher, then INAD and ANPR for the person; SEND: more than a step per act. */
	assert_true(np >= 3);
	assert_true(ns > th_e2e_metric(f->port, "sendbridge_steps_total{platform=\"send\"}"));
	assert_int_equal(th_e2e_metric(f->port,
				       "sendbridge_api_errors_total{platform=\"send\"}"), 0);
	assert_int_equal(th_e2e_metric(f->port,
				       "sendbridge_api_errors_total{platform=\"pdnd\"}"), 0);
}

static size_t entries(const char *dir)
{
	return th_outbox_entries(dir, ".");
}

static void test_e2e_pipeline__sample_acts_end_to_end(void **state)
{
	struct fx *f = *state;
	char *bad_pdf = th_shared("fixtures-external/pdfa/pdfa2b_6-1-3-t02-fail-a.pdf");
	char *path, *text, *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	struct sb_buf out = SB_BUF_INIT(1 << 20);
	sqlite3 *db = NULL;
	size_t len = 0;

	assert_non_null(bad_pdf);
	/*
	 * Some acts wait in new/ before the daemon starts (the rescan), the
	 * rest come while it runs.
	 */
	th_outbox_publish(f->root, good[0][1], good[0][0]);
	th_outbox_publish(f->root, "acts-broken/cf-check-char", BAD_CF_ACT);
	start_daemon(f);
	for (size_t i = 1; i < SB_ARRAY_SIZE(good); i++)
		th_outbox_publish(f->root, good[i][1], good[i][0]);
	th_outbox_publish_json(f->root, PDND_ACT, act_person);
	{
		/*
		 * Written in tmp/, its document replaced by one that is not
		 * PDF/A, then published.
		 */
		char *tmp = sb_xasprintf("%s/tmp/%s", f->root, BAD_PDF_ACT);
		char *doc = sb_xasprintf("%s/atto.pdf", tmp), *dst;
		char *manifest = sb_xasprintf("%s/act.json", tmp);
		char *bytes = th_read(bad_pdf, &len);

		th_mkdirs(tmp);
		th_write_str(manifest, act_person, 0640);
		free(manifest);
		th_write(doc, bytes, len, 0640);
		dst = sb_xasprintf("%s/new/%s", f->root, BAD_PDF_ACT);
		assert_int_equal(rename(tmp, dst), 0);
		free(bytes);
		free(doc);
		free(tmp);
		free(dst);
	}

	th_e2e_wait_finished(f->root, NACTS, &f->pid, f->log, 120);
	api_calls_match_the_simulator(f);
	assert_int_equal(th_child_stop(&f->pid, SIGTERM), 0);

	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (size_t i = 0; i < SB_ARRAY_SIZE(good) + 1; i++) {
		const char *id = i < SB_ARRAY_SIZE(good) ? good[i][0] : PDND_ACT;
		char *proto, *iun, *dir;
		int64_t nrec;

		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts"
					    " WHERE act_id = ?1 AND state = 'closed'", id), 1);
		proto = th_e2e_text(db, "SELECT n.protocol_number FROM notifications n JOIN acts a"
			       " ON a.id = n.act WHERE a.act_id = ?1", id);
		iun = th_e2e_text(db, "SELECT n.iun FROM notifications n"
				  " JOIN acts a ON a.id = n.act WHERE a.act_id = ?1", id);
		assert_non_null(proto);
		assert_non_null(iun);
		assert_true(!strncmp(proto, "PG/", 3));
		/* The notification keeps SEND's own final status, the last its events gave. */
		assert_int_equal(th_e2e_int(db, "SELECT n.status ="
					    " (SELECT json_extract(e.element, '$.newStatus')"
					    " FROM events e WHERE e.iun = n.iun"
					    " AND json_extract(e.element, '$.newStatus')"
					    " IN ('VIEWED', 'EFFECTIVE_DATE', 'UNREACHABLE')"
					    " ORDER BY e.id DESC LIMIT 1)"
					    " FROM notifications n JOIN acts a ON a.id = n.act"
					    " WHERE a.act_id = ?1", id), 1);
		/* Exactly one notification at SEND for the act's protocol number. */
		assert_int_equal(th_e2e_ledger_notifications(f->pd.sim.url, proto), 1);
		/* The outgoing registration is the act's, once. */
		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations"
					    " WHERE act_id = ?1 AND direction = 'out'", id), 1);
		/*
		 * Receipts: at least the acceptance and a delivery, each
		 * registered exactly once.
		 */
		nrec = th_e2e_int(db, "SELECT count(*) FROM receipts r JOIN acts a ON a.id = r.act"
			     " WHERE a.act_id = ?1", id);
		assert_true(nrec >= 2);
		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM receipts r"
					    " JOIN acts a ON a.id = r.act WHERE a.act_id = ?1"
					    " AND r.protocol_number IS NULL", id), 0);
		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM receipts r"
					    " JOIN acts a ON a.id = r.act"
					    " JOIN proto_registrations p"
					    " ON p.legal_fact_id = r.legal_fact_key"
					    " AND p.direction = 'in' AND p.iun = r.iun"
					    " AND p.link = (SELECT id FROM proto_registrations"
					    "   WHERE act_id = a.act_id AND direction = 'out')"
					    " WHERE a.act_id = ?1", id), nrec);
		assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM receipts r"
					    " JOIN acts a ON a.id = r.act WHERE a.act_id = ?1"
					    " AND r.category = 'SENDER_ACK'", id), 1);
		/* The legal facts themselves, kept with the act. */
		dir = sb_xasprintf("%s/done/%s/receipts", f->root, id);
		assert_int_equal((int64_t)entries(dir), nrec);
		free(dir);
		free(proto);
		free(iun);
	}
	/* No legal fact registered twice, across every act. */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) - count(DISTINCT legal_fact_id) FROM"
			       " proto_registrations WHERE direction = 'in'", NULL), 0);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM proto_registrations"
				    " WHERE direction = 'in'", NULL),
			 th_e2e_int(db, "SELECT count(*) FROM receipts", NULL));
	/* Acts with a pagoPA payment have SEND's price. */
	assert_true(th_e2e_int(db, "SELECT n.cost_cents FROM notifications n"
			       " JOIN acts a ON a.id = n.act"
			       " WHERE a.act_id = ?1", good[0][0]) > 0);
	assert_int_equal(th_e2e_int(db, "SELECT n.cost_cents IS NULL FROM notifications n"
				    " JOIN acts a ON a.id = n.act"
				    " WHERE a.act_id = ?1", PDND_ACT), 1);

	/* The person: INAD's domicile and ANPR's residence were used, and reached SEND. */
	text = th_e2e_text(db, "SELECT domicile FROM resolutions WHERE act_id = ?1 AND rec_idx = 0",
		      PDND_ACT);
	assert_string_equal(text, "mario.rossi@pec.example.it");
	free(text);
	text = th_e2e_text(db, "SELECT domicile_source FROM resolutions"
			   " WHERE act_id = ?1", PDND_ACT);
	assert_string_equal(text, pdnd_source_name(PDND_SRC_INAD));
	free(text);
	text = th_e2e_text(db, "SELECT addr_line FROM resolutions WHERE act_id = ?1", PDND_ACT);
	assert_non_null(text);
	assert_non_null(strstr(text, "TRASTEVERE"));
	free(text);
	assert_true(th_e2e_int(db, "SELECT count(*) FROM events e"
			       " JOIN notifications n ON n.iun = e.iun"
			       " JOIN acts a ON a.id = n.act WHERE a.act_id = ?1"
			       " AND e.category = 'SEND_DIGITAL_DOMICILE'", PDND_ACT) >= 1);
	assert_true(th_e2e_int(db, "SELECT count(*) FROM pdnd_access WHERE act_ref = ?1"
			  " AND operator = 'agente.verdi'", PDND_ACT) >= 2);
	/* Companies are not looked up; without PDND data the act's own PEC stays. */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM pdnd_access WHERE act_ref = ?1",
			       good[2][0]), 0);
	text = th_e2e_text(db, "SELECT domicile_source FROM resolutions"
			   " WHERE act_id = ?1", good[2][0]);
	assert_string_equal(text, "act");
	free(text);

	/* The broken acts: rejected with the field named, never sent. */
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM notifications n"
				    " JOIN acts a ON a.id = n.act"
				    " WHERE a.act_id = ?1", BAD_PDF_ACT), 0);
	assert_int_equal(th_e2e_int(db, "SELECT count(*) FROM acts WHERE act_id = ?1 AND state = "
			       "'rejected'", BAD_PDF_ACT), 1);
	sqlite3_close(db);
	path = sb_xasprintf("%s/rejected/%s/reason.json", f->root, BAD_CF_ACT);
	text = th_read(path, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "recipients[0].taxId"));
	free(text);
	free(path);
	path = sb_xasprintf("%s/rejected/%s/reason.json", f->root, BAD_PDF_ACT);
	text = th_read(path, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"step\":\"check\""));
	assert_non_null(strstr(text, "documents[0].file"));
	assert_non_null(strstr(text, "6.1.3"));
	free(text);
	free(path);

	/* What staff see. */
	{
		const char *argv[] = { bin, "status", "-c", f->cfg, NULL };

		assert_int_equal(th_run(argv, &out, NULL), 0);
	}
	for (size_t i = 0; i < SB_ARRAY_SIZE(good); i++) {
		const char *line = strstr(sb_buf_cstr(&out), good[i][0]);
		const char *eol = line ? strchr(line, '\n') : NULL;
		char *l;

		assert_non_null(line);
		l = sb_xasprintf("%.*s", (int)(eol ? eol - line : (ptrdiff_t)strlen(line)), line);
		assert_non_null(strstr(l, "closed"));
		assert_non_null(strstr(l, "PG/"));
		free(l);
	}
	assert_non_null(strstr(sb_buf_cstr(&out), BAD_CF_ACT));
	/* Tax codes masked by default. */
	assert_null(strstr(sb_buf_cstr(&out), "RSSMRA80A01H501U"));
	assert_null(strstr(sb_buf_cstr(&out), "TSTGLI85M52F205J"));
	sb_buf_release(&out);
	{
		const char *argv[] = { bin, "status", "--state", "rejected", "--json", "-c", f->cfg,
				       NULL };
		json_t *j = NULL;
		struct sb_err err = SB_ERR_INIT;

		out = (struct sb_buf)SB_BUF_INIT(1 << 20);
		assert_int_equal(th_run(argv, &out, NULL), 0);
		assert_int_equal(sb_json_parse(out.buf, out.len, 1 << 20, "status", &j, &err), 0);
		assert_int_equal(json_array_size(j), 2);
		json_decref(j);
	}
	{
		/*
		 * The cost staff see is SEND's price of the notice; an act
		 * without pagoPA has none.
		 */
		const char *argv[] = { bin, "status", "--json", "-c", f->cfg, NULL };
		struct sb_err err = SB_ERR_INIT;
		json_t *j = NULL, *row;
		size_t k, seen = 0;

		sb_buf_release(&out);
		out = (struct sb_buf)SB_BUF_INIT(1 << 20);
		assert_int_equal(th_run(argv, &out, NULL), 0);
		assert_int_equal(sb_json_parse(out.buf, out.len, 1 << 20, "status", &j, &err), 0);
		json_array_foreach(j, k, row) {
			const char *id = json_string_value(json_object_get(row, "act"));
			const json_t *cost = json_object_get(row, "costCents");

			assert_non_null(id);
			if (!strcmp(id, PDND_ACT)) {
				assert_true(json_is_null(cost));
				seen++;
			}
			for (size_t i = 0; i < SB_ARRAY_SIZE(good); i++) {
				if (strcmp(id, good[i][0]))
					continue;
				assert_true(json_is_integer(cost));
				assert_int_equal(json_integer_value(cost),
						 th_e2e_sim_price(f->pd.sim.url, good_notice[i]));
				seen++;
			}
		}
		assert_int_equal(seen, SB_ARRAY_SIZE(good) + 1);
		json_decref(j);
	}
	/* Nothing personal in the daemon's log. */
	text = th_read(f->log, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "RSSMRA80A01H501U"));
	assert_null(strstr(text, "mario.rossi@pec"));
	assert_null(strstr(text, "TRASTEVERE"));
	free(text);
	sb_buf_release(&out);
	free(bad_pdf);
	free(bin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_e2e_pipeline__sample_acts_end_to_end, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("e2e_pipeline", tests, NULL, NULL);
}
