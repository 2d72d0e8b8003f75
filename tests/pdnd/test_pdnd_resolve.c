/*
 * pdnd/pdnd_resolve.c end to end: a real configuration file, a real store,
 * send-sim's PDND, ANPR and INAD. Resolution policy (INAD domicile, ANPR
 * residence, act address and the office's policy), the results cache,
 * authorisation of operator and office before anything leaves the
 * machine, and the access trail (with no tax code in the store file).
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
#include <unistd.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_http.h"
#include "svc_store.h"
#include "pdnd.h"
#include "pdnd_resolve.h"
#include "pdnd_store.h"
#include "th_pdnd.h"

static const char OFFICES[] =
	"[office.pm]\noperators = vigile.rossi,vigile.bianchi\naddress_policy = anpr\n"
	"[office.tributi]\noperators = funz.verdi\naddress_policy = act\n"
	"[office.anagrafe]\noperators = funz.neri\neservices = inad\n"
	"[office.messi]\noperators = messo.gialli\npurposes = " TH_PURPOSE_OTHER "\n";

static struct th_pdnd T;

struct fx {
	struct sb_cfg *cfg;
	struct svc_store *store;
	struct pdnd_client *client;
	struct pdnd_resolver *r;
	struct sb_http *h;
	char *ini;
};

static int group_setup(void **state)
{
	(void)state;
	th_pdnd_start(&T, 600);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	th_pdnd_stop(&T);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));
	struct sb_err err = SB_ERR_INIT;
	unsigned char key[32];
	char *db;

	f->ini = th_pdnd_config(&T, OFFICES);
	db = sb_xasprintf("%s/store.db", T.dir);
	{
		char *wal = sb_xasprintf("%s-wal", db), *shm = sb_xasprintf("%s-shm", db);

		unlink(db);
		unlink(wal);
		unlink(shm);
		free(wal);
		free(shm);
	}
	if (sb_cfg_load(&f->cfg, f->ini, NULL, &err) < 0 ||
	    svc_store_open(&f->store, db, 1000, &err) < 0 ||
	    svc_store_pii_key(f->store, key, &err) < 0 ||
	    pdnd_client_from_cfg(&f->client, f->cfg, &err) < 0 ||
	    pdnd_resolver_new(&f->r, f->cfg, f->client, svc_store_db(f->store), key, &err) < 0 ||
	    sb_http_new(&f->h, NULL, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		free(db);
		return -1;
	}
	free(db);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sb_http_free(f->h);
	pdnd_resolver_free(f->r);
	pdnd_client_free(f->client);
	svc_store_close(f->store);
	sb_cfg_free(f->cfg);
	free(f->ini);
	free(f);
	return 0;
}

static int64_t count_rows(struct fx *f, const char *where)
{
	char *sql = sb_xasprintf("SELECT count(*) FROM pdnd_access WHERE %s", where);
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	assert_int_equal(sqlite3_prepare_v2(svc_store_db(f->store), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	free(sql);
	return n;
}

static struct pdnd_address addr(const char *line, const char *zip, const char *city,
				const char *prov)
{
	struct pdnd_address a = { 0 };

	a.line = (char *)(uintptr_t)line;          /* borrowed: copied by pdnd_resolve */
	a.zip = (char *)(uintptr_t)zip;
	a.municipality = (char *)(uintptr_t)city;
	a.province = (char *)(uintptr_t)prov;
	return a;
}

static void test_pdnd_resolve__person_inad_and_anpr_then_cache(void **state)
{
	struct fx *f = *state;
	struct pdnd_address act = addr("Viale Trastevere, 21/B", "00153", "Roma", "RM");
	struct pdnd_recipient rec = { PDND_PF, "RSSMRA80A01H501U", NULL, &act };
	struct pdnd_who who = { "vigile.rossi", "pm", "verbale 2026/10" };
	struct pdnd_resolution res = { 0 };
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head;

	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), 0);
	assert_string_equal(res.domicile, "mario.rossi@pec.example.it");
	assert_int_equal(res.domicile_source, PDND_SRC_INAD);
	assert_true(res.has_residence);
	assert_string_equal(res.residence.line, "VIALE TRASTEVERE 21B");
	assert_false(res.differs);                 /* same place, written differently */
	assert_int_equal(res.address_source, PDND_SRC_ANPR);
	assert_false(res.from_cache);
	/* INAD (1 cached voucher) + C030 + C001 (one bound voucher each). */
	assert_int_equal(pdnd_client_token_requests(f->client), 3);
	assert_int_equal(count_rows(f, "outcome = 'found'"), 3);
	assert_int_equal(count_rows(f, "eservice = 'anpr-c001' AND act_ref = 'verbale 2026/10' "
				       "AND operator = 'vigile.rossi' AND office = 'pm' "
				       "AND correlation LIKE 'govway=%'"), 1);
	pdnd_resolution_release(&res);

	/* Again within the cache's lifetime: nothing leaves the machine, nothing is traced. */
	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), 0);
	assert_true(res.from_cache);
	assert_string_equal(res.domicile, "mario.rossi@pec.example.it");
	assert_string_equal(res.residence.line, "VIALE TRASTEVERE 21B");
	assert_int_equal(pdnd_client_token_requests(f->client), 3);
	assert_int_equal(count_rows(f, "1"), 3);
	pdnd_resolution_release(&res);
	assert_int_equal(pdnd_access_verify(svc_store_db(f->store), NULL, NULL, &head, &err), 0);
	assert_int_equal(head.rows, 3);
}

static void test_pdnd_resolve__address_policy(void **state)
{
	struct fx *f = *state;
	struct pdnd_address act = addr("VIA ALTROVE 1", "20100", "MILANO", "MI");
	struct pdnd_recipient rec = { PDND_PF, "BNCLCU75M45F205E", "lucia@pec.example.it", &act };
	struct pdnd_who pm = { "vigile.bianchi", "pm", "verbale 2026/11" };
	struct pdnd_who trib = { "funz.verdi", "tributi", "avviso 2026/3" };
	struct pdnd_resolution res = { 0 };
	struct sb_err err = SB_ERR_INIT;

	/* No INAD domicile: the act's PEC; the act's address differs from ANPR's. */
	assert_int_equal(pdnd_resolve(f->r, f->h, &pm, &rec, &res, &err), 0);
	assert_string_equal(res.domicile, "lucia@pec.example.it");
	assert_int_equal(res.domicile_source, PDND_SRC_ACT);
	assert_true(res.differs);
	assert_true(res.has_act_address);
	assert_true(res.has_residence);           /* both are recorded */
	assert_int_equal(res.address_source, PDND_SRC_ANPR);
	assert_string_equal(pdnd_resolution_address(&res)->line, "CORSO GARIBALDI 5");
	pdnd_resolution_release(&res);
	/* The tax office's policy is the act's address. */
	assert_int_equal(pdnd_resolve(f->r, f->h, &trib, &rec, &res, &err), 0);
	assert_true(res.differs);
	assert_int_equal(res.address_source, PDND_SRC_ACT);
	assert_string_equal(pdnd_resolution_address(&res)->line, "VIA ALTROVE 1");
	pdnd_resolution_release(&res);
}

static void test_pdnd_resolve__cancelled_and_deceased(void **state)
{
	struct fx *f = *state;
	struct pdnd_address act = addr("VIA VECCHIA 2", "10100", "TORINO", "TO");
	struct pdnd_who who = { "vigile.rossi", "pm", "verbale 2026/12" };
	struct pdnd_recipient rec = { PDND_PF, "GLLPLA55C08G273M", NULL, &act };
	struct pdnd_resolution res = { 0 };
	struct sb_err err = SB_ERR_INIT;

	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), 0);
	assert_int_equal(res.anpr_outcome, PDND_ANPR_CANCELLED);
	assert_false(res.has_residence);
	assert_int_equal(res.address_source, PDND_SRC_ACT);
	assert_null(res.domicile);
	assert_int_equal(count_rows(f, "outcome = 'cancelled'"), 1);
	/* Cancelled at C030: C001 is not asked. */
	assert_int_equal(count_rows(f, "eservice = 'anpr-c001'"), 0);
	pdnd_resolution_release(&res);
	rec.tax_id = "VRDGPP62T10L219Z";
	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), 0);
	assert_true(res.deceased);
	pdnd_resolution_release(&res);
}

static void test_pdnd_resolve__unauthorised_refused_and_traced(void **state)
{
	static const struct {
		const char *op, *office, *eservice, *says;
	} cases[] = {
		{ "intruso", "pm", "inad", "operator 'intruso'" },
		{ "vigile.rossi", "tributi", "inad", "operator 'vigile.rossi'" },
		{ "vigile.rossi", "nowhere", "inad", "office 'nowhere'" },
		{ "messo.gialli", "messi", "inad", "may not use purpose" },
	};
	struct fx *f = *state;
	struct pdnd_recipient rec = { PDND_PF, "RSSMRA80A01H501U", NULL, NULL };
	struct pdnd_resolution res = { 0 };
	char *log_before = th_pdnd_sim_log(&T), *log_after;
	struct pdnd_access_head head;

	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		struct pdnd_who who = { cases[i].op, cases[i].office, "verbale 2026/13" };
		struct sb_err err = SB_ERR_INIT;
		char *where = sb_xasprintf("outcome = 'refused' AND operator = '%s'"
					   " AND office = '%s' AND eservice = '%s'",
					   cases[i].op, cases[i].office, cases[i].eservice);

		assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), SB_EREJECT);
		assert_int_equal(err.code, SB_EREJECT);
		if (!strstr(err.msg, cases[i].says))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].says);
		assert_null(res.domicile);
		assert_int_equal(count_rows(f, where), 1);
		free(where);
	}
	/* Nothing left the machine: no token request, nothing new at the simulator. */
	assert_int_equal(pdnd_client_token_requests(f->client), 0);
	log_after = th_pdnd_sim_log(&T);
	assert_string_equal(log_after, log_before);
	/* An office without ANPR gets INAD, then is refused ANPR (and that is traced). */
	{
		struct pdnd_who who = { "funz.neri", "anagrafe", NULL };
		struct sb_err err = SB_ERR_INIT;

		assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), SB_EREJECT);
		assert_non_null(strstr(err.msg, "may not query anpr-c030"));
		assert_int_equal(count_rows(f, "eservice = 'inad' AND operator = 'funz.neri' AND "
					       "outcome = 'found' AND act_ref IS NULL"), 1);
		assert_int_equal(count_rows(f, "eservice = 'anpr-c030'"
					    " AND outcome = 'refused'"), 1);
	}
	assert_int_equal(pdnd_access_verify(svc_store_db(f->store), NULL, NULL, &head, NULL), 0);
	assert_int_equal(head.rows, 6);
	free(log_before);
	free(log_after);
}

static void test_pdnd_resolve__company_and_bad_input(void **state)
{
	struct fx *f = *state;
	struct pdnd_address act = addr("VIA DELLE IMPRESE 3", "20100", "MILANO", "MI");
	struct pdnd_recipient rec = { PDND_PG, "01234567897", "impresa@pec.example.it", &act };
	struct pdnd_who who = { "vigile.rossi", "pm", "verbale 2026/14" };
	struct pdnd_resolution res = { 0 };
	struct sb_err err = SB_ERR_INIT;

	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), 0);
	assert_string_equal(res.domicile, "impresa@pec.example.it");
	assert_int_equal(res.domicile_source, PDND_SRC_ACT);
	assert_int_equal(res.address_source, PDND_SRC_ACT);
	assert_false(res.anpr_queried);
	pdnd_resolution_release(&res);
	rec = (struct pdnd_recipient){ PDND_PF, "RSSMRA80A01H501X", NULL, NULL };
	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_non_null(strstr(err.msg, "recipient tax code"));
	assert_null(strstr(err.msg, "RSSMRA"));
	assert_null(res.domicile);
	assert_int_equal(count_rows(f, "1"), 0);
	assert_int_equal(pdnd_client_token_requests(f->client), 0);
}

/* The store file never holds a tax code in clear, only keyed hashes. */
static void test_pdnd_resolve__no_tax_code_in_store(void **state)
{
	struct fx *f = *state;
	struct pdnd_recipient rec = { PDND_PF, "CSTLGU70H15B354X", NULL, NULL };
	struct pdnd_who who = { "vigile.rossi", "pm", "verbale 2026/15" };
	struct pdnd_resolution res = { 0 };
	struct sb_err err = SB_ERR_INIT;
	char *cmd;

	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), 0);
	assert_string_equal(res.domicile, "luigi.costa@pec.example.it");
	pdnd_resolution_release(&res);
	assert_int_equal(sqlite3_exec(svc_store_db(f->store), "PRAGMA wal_checkpoint(TRUNCATE)",
				      NULL, NULL, NULL), SQLITE_OK);
	cmd = sb_xasprintf("cat '%s'/store.db* | grep -a -c CSTLGU70H15B354X", T.dir);
	assert_int_not_equal(th_sh(cmd, NULL), 0);      /* grep finds nothing */
	free(cmd);
	cmd = sb_xasprintf("cat '%s'/store.db* | grep -a -c 'luigi.costa@pec'", T.dir);
	assert_int_equal(th_sh(cmd, NULL), 0);          /* the check itself can see the file */
	free(cmd);
}

static void test_pdnd_resolve__bulk_prefetch_fills_the_cache(void **state)
{
	static const char *const cfs[] = { "RSSMRA80A01H501U", "BNCLCU75M45F205E",
					   "CSTLGU70H15B354X", "NREANN90D52A944V" };
	struct fx *f = *state;
	struct pdnd_who who = { "vigile.rossi", "pm", "lotto 2026/5" };
	struct pdnd_who intruder = { "intruso", "pm", "lotto 2026/5" };
	struct pdnd_recipient rec = { PDND_PF, "CSTLGU70H15B354X", NULL, NULL };
	struct pdnd_resolution res = { 0 };
	struct sb_err err = SB_ERR_INIT;
	size_t fetched = 99;

	/* Below bulk_threshold (3): nothing is asked. */
	assert_int_equal(pdnd_resolve_prefetch(f->r, f->h, &who, cfs, 2, &fetched, &err), 0);
	assert_int_equal(fetched, 0);
	assert_int_equal(pdnd_client_token_requests(f->client), 0);
	/* Not authorised: every subject of the batch is traced as refused, nothing sent. */
	assert_int_equal(pdnd_resolve_prefetch(f->r, f->h, &intruder, cfs, 4, &fetched, &err),
			 SB_EREJECT);
	assert_non_null(strstr(err.msg, "operator 'intruso'"));
	assert_int_equal(count_rows(f, "outcome = 'refused' AND operator = 'intruso'"), 4);
	assert_int_equal(pdnd_client_token_requests(f->client), 0);
	/* One bulk list for four subjects, each traced. */
	assert_int_equal(pdnd_resolve_prefetch(f->r, f->h, &who, cfs, 4, &fetched, &err), 0);
	assert_int_equal(fetched, 4);
	assert_int_equal(count_rows(f, "eservice = 'inad' AND outcome = 'found (bulk)'"), 3);
	assert_int_equal(count_rows(f, "eservice = 'inad' AND outcome = 'not-found (bulk)'"), 1);
	/* Cached now: a second prefetch asks nothing, and resolve takes INAD from the cache. */
	assert_int_equal(pdnd_resolve_prefetch(f->r, f->h, &who, cfs, 4, &fetched, &err), 0);
	assert_int_equal(fetched, 0);
	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), 0);
	assert_string_equal(res.domicile, "luigi.costa@pec.example.it");
	assert_int_equal(count_rows(f, "eservice = 'inad'"), 8);
	pdnd_resolution_release(&res);
	/* A bad tax code in the batch is named by position, not by value. */
	{
		const char *bad[] = { "RSSMRA80A01H501U", "RSSMRA80A01H501X", "CSTLGU70H15B354X" };

		sb_err_clear(&err);
		assert_int_equal(pdnd_resolve_prefetch(f->r, f->h, &who, bad, 3, &fetched, &err),
				 SB_EINVAL);
		assert_non_null(strstr(err.msg, "recipient 1 tax code"));
		assert_null(strstr(err.msg, "RSSMRA"));
	}
}

/* Platform calls the simulator has answered so far (GET /_sim/faults, "calls"). */
static unsigned long long sim_calls(struct fx *f)
{
	char *url = sb_xasprintf("%s/_sim/faults", T.sim.url);
	struct sb_http_resp r = { 0 };
	unsigned long long n = 0;
	const char *p;

	assert_int_equal(sb_http_do(f->h, &(struct sb_http_req){ .method = "GET", .url = url },
				    &r, NULL), 0);
	p = strstr(sb_buf_cstr(&r.body), "\"calls\":");
	assert_non_null(p);
	assert_int_equal(sscanf(p, "\"calls\":%llu", &n), 1);
	sb_http_resp_release(&r);
	free(url);
	return n;
}

/* A trail that cannot take the trace (rows cut from its end): nothing leaves the machine. */
static void test_pdnd_resolve__broken_trail_stops_queries_before_sending(void **state)
{
	struct fx *f = *state;
	struct pdnd_recipient rec = { PDND_PF, "BNCLCU75M45F205E", NULL, NULL };
	struct pdnd_who who = { "vigile.rossi", "pm", "verbale 2026/11" };
	struct pdnd_resolution res = { 0 };
	struct sb_err err = SB_ERR_INIT;
	sqlite3 *db = svc_store_db(f->store);
	unsigned long long calls;
	int64_t before;

	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), 0);
	pdnd_resolution_release(&res);
	before = pdnd_client_token_requests(f->client);
	calls = sim_calls(f);
	assert_true(calls > 0);
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER pdnd_access_no_delete;"
				      "DELETE FROM pdnd_access"
				      " WHERE id = (SELECT max(id) FROM pdnd_access)",
				      NULL, NULL, NULL), SQLITE_OK);
	rec.tax_id = "VRDGPP62T10L219Z";
	assert_int_equal(pdnd_resolve(f->r, f->h, &who, &rec, &res, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_non_null(strstr(err.msg, "removed from the end"));
	assert_int_equal(pdnd_client_token_requests(f->client), before);
	assert_null(res.domicile);
	/* The simulator saw no call either. */
	assert_int_equal(sim_calls(f), calls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pdnd_resolve__person_inad_and_anpr_then_cache,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_resolve__address_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_pdnd_resolve__broken_trail_stops_queries_before_sending,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_resolve__cancelled_and_deceased, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_resolve__unauthorised_refused_and_traced,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_resolve__company_and_bad_input, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_resolve__no_tax_code_in_store, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pdnd_resolve__bulk_prefetch_fills_the_cache,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("pdnd_resolve", tests, group_setup, group_teardown);
}
