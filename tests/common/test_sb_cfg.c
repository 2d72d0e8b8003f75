/*
 * Configuration loading (common/sb_cfg.c): good files, defaults, and every
 * kind of problem reported with file, line, section and key, all at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "th.h"

struct fx {
	char *dir;
	char *ini;
	char *key;
};

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));

	f->dir = th_tmpdir("cfg");
	f->ini = sb_xasprintf("%s/send-bridge.ini", f->dir);
	f->key = sb_xasprintf("%s/api.key", f->dir);
	th_write_str(f->key, "test-api-key\n", 0600);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	th_rmrf(f->dir);
	free(f->dir);
	free(f->ini);
	free(f->key);
	free(f);
	return 0;
}

static const char good[] =
	"; a minimal valid configuration\n"
	"[service]\n"
	"sender_denomination = Comune di Esempio\n"
	"sender_tax_id = 80012345676\n"
	"workers = 8\n"
	"[outbox]\n"
	"dir = outbox\n"
	"[store]\n"
	"path = state/send-bridge.db\n"
	"[send]\n"
	"base_url = http://127.0.0.1:9999\n"
	"api_key_file = api.key\n"
	"pdnd_voucher = off\n"
	"[office.polizia-municipale]\n"
	"operators = agente.bianchi, agente.verdi\n"
	"signature_required = no\n"
	"[office.tributi]\n"
	"pdfa_flavours = 1b,2b\n"
	"[office.anagrafe]\n";

static void test_sb_cfg__good_file_and_defaults(void **state)
{
	struct fx *f = *state;
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct sb_cfg *cfg = NULL;
	char *abs;

	th_write_str(f->ini, good, 0644);
	assert_int_equal(sb_cfg_load(&cfg, f->ini, &probs, &err), 0);
	assert_int_equal(probs.n, 0);
	assert_string_equal(sb_cfg_str(cfg, "service", "sender_denomination"), "Comune di Esempio");
	assert_int_equal(sb_cfg_int(cfg, "service", "workers"), 8);
	/* defaults from the schema */
	assert_int_equal(sb_cfg_int(cfg, "outbox", "rescan_interval"), 30);
	assert_string_equal(sb_cfg_str(cfg, "send", "version_requests"), "v2.5");
	assert_false(sb_cfg_bool(cfg, "send", "pdnd_voucher"));
	assert_true(sb_cfg_bool(cfg, "web", "enabled"));
	assert_false(sb_cfg_isset(cfg, "web", "enabled"));
	assert_true(sb_cfg_isset(cfg, "service", "workers"));
	/* relative paths are taken from the configuration's folder */
	abs = sb_xasprintf("%s/outbox", f->dir);
	assert_string_equal(sb_cfg_str(cfg, "outbox", "dir"), abs);
	free(abs);
	/* offices */
	/* an office section without keys still declares the office */
	assert_int_equal(sb_cfg_office_count(cfg), 3);
	assert_true(sb_cfg_has_office(cfg, "anagrafe"));
	assert_true(sb_cfg_has_office(cfg, "tributi"));
	assert_false(sb_cfg_has_office(cfg, "urbanistica"));
	assert_true(sb_cfg_list_has(cfg, "office.polizia-municipale", "operators", "agente.verdi"));
	assert_false(sb_cfg_list_has(cfg, "office.polizia-municipale", "operators", "agente"));
	assert_true(sb_cfg_list_has(cfg, "office.tributi", "pdfa_flavours", "2b"));
	assert_false(sb_cfg_list_has(cfg, "office.tributi", "pdfa_flavours", "2a"));
	/* an office without the key gets the default list */
	assert_true(sb_cfg_list_has(cfg, "office.polizia-municipale", "pdfa_flavours", "2a"));
	sb_cfg_free(cfg);
	sb_problems_release(&probs);
}

struct bad_case {
	const char *text;       /* appended to the good file */
	const char *where;      /* substring of the problem's location */
	const char *msg;        /* substring of the problem's message */
};

static void test_sb_cfg__each_problem_named(void **state)
{
	static const struct bad_case cases[] = {
		{ "[service]\nfoo = 1\n", ":21: [service] foo", "unknown key" },
		{ "[send]\napi_key = abc\n", ":21: [send] api_key", "put it in a file" },
		{ "[nonsense]\nx = 1\n", ":20: [nonsense]", "unknown section" },
		{ "[office.Bad Name]\nx = 1\n", "[office.Bad Name]", "unknown section" },
		{ "[outbox]\nrescan_interval = 0\n", "[outbox] rescan_interval",
		  "out of range 1..3600" },
		{ "[outbox]\nrescan_interval = ten\n", "[outbox] rescan_interval",
		  "not a whole number" },
		{ "[outbox]\nrescan_interval = 5\nrescan_interval = 6\n",
		  ":22: [outbox] rescan_interval", "set twice (first at line 21)" },
		{ "[web]\nenabled = maybe\n", "[web] enabled", "not on/off" },
		{ "[protocol]\nbackend = paper\n", "[protocol] backend",
		  "not one of embedded|rest" },
		{ "[office.tributi]\neservices = anpr-c001,facebook\n", "eservices",
		  "'facebook' is not one of" },
		{ "[pdnd]\ntoken_url = http://auth.example.it/token\n", "[pdnd] token_url",
		  "plain http is allowed only to loopback" },
		{ "[pdnd]\ntoken_url = ftp://x\n", "[pdnd] token_url", "must start with https://" },
		{ "[service]\nlog_level = chatty\n", "[service] log_level", "not one of debug" },
		{ "[pdnd]\nprivate_key_file = missing.pem\n", "[pdnd] private_key_file",
		  "No such file" },
		{ "[send]\nca_file = /nonexistent/ca.pem\n", "[send] ca_file", "cannot read" },
		{ "[service]\nsender_denomination = Comune\n", "sender_denomination", "set twice" },
		{ "this is not ini\n", ":20", "syntax error" },
		{ "[send]\nstream_title = \n", NULL, NULL },   /* empty value is fine for text */
	};
	struct fx *f = *state;

	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		struct sb_problems probs = SB_PROBLEMS_INIT;
		struct sb_err err = SB_ERR_INIT;
		struct sb_cfg *cfg = NULL;
		char *text = sb_xasprintf("%s%s", good, cases[i].text);
		bool found = false;
		int rc;

		th_write_str(f->ini, text, 0644);
		rc = sb_cfg_load(&cfg, f->ini, &probs, &err);
		if (!cases[i].where) {
			assert_int_equal(rc, 0);
			sb_cfg_free(cfg);
			free(text);
			continue;
		}
		if (rc != SB_ECONFIG)
			fail_msg("case %zu: rc %d, expected SB_ECONFIG", i, rc);
		assert_null(cfg);
		assert_true(strlen(err.msg) > 0);
		for (size_t k = 0; k < probs.n; k++) {
			/* every location names the file */
			assert_non_null(strstr(probs.items[k].where, "send-bridge.ini"));
			if (strstr(probs.items[k].where, cases[i].where) &&
			    strstr(probs.items[k].msg, cases[i].msg))
				found = true;
		}
		if (!found) {
			for (size_t k = 0; k < probs.n; k++)
				fprintf(stderr, "  got: %s: %s\n", probs.items[k].where,
					probs.items[k].msg);
			fail_msg("case %zu: no problem '%s' ~ '%s'", i, cases[i].where,
				 cases[i].msg);
		}
		sb_problems_release(&probs);
		free(text);
	}
}

static void test_sb_cfg__all_problems_at_once(void **state)
{
	struct fx *f = *state;
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct sb_cfg *cfg = NULL;

	th_write_str(f->ini,
		     "[service]\nsender_tax_id = 80012345670\nworkers = 1000\n"
		     "[web]\nlisten = 127.0.0.1:8088\nbogus = 1\n", 0644);
	assert_int_equal(sb_cfg_load(&cfg, f->ini, &probs, &err), SB_ECONFIG);
	/* check digit, range, unknown key, and four required keys missing */
	assert_int_equal(probs.n, 7);
	assert_non_null(strstr(err.msg, "7 problem(s)"));
	sb_problems_release(&probs);
}

static void test_sb_cfg__secret_file_permissions(void **state)
{
	struct fx *f = *state;
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct sb_cfg *cfg = NULL;

	th_write_str(f->ini, good, 0644);
	assert_int_equal(chmod(f->key, 0640), 0);
	assert_int_equal(sb_cfg_load(&cfg, f->ini, &probs, &err), SB_ECONFIG);
	assert_int_equal(probs.n, 1);
	assert_non_null(strstr(probs.items[0].where, "[send] api_key_file"));
	assert_non_null(strstr(probs.items[0].msg, "accessible by group or others (mode 0640)"));
	sb_problems_release(&probs);

	assert_int_equal(chmod(f->key, 0600), 0);
	assert_int_equal(sb_cfg_load(&cfg, f->ini, &probs, &err), 0);
	sb_cfg_free(cfg);
}

static void test_sb_cfg__missing_file_and_long_line(void **state)
{
	struct fx *f = *state;
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct sb_cfg *cfg = NULL;
	char *text, *missing = sb_xasprintf("%s/nope.ini", f->dir);
	char longline[400];

	assert_int_equal(sb_cfg_load(&cfg, missing, &probs, &err), SB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "nope.ini"));
	free(missing);

	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	text = sb_xasprintf("%s[send]\nstream_title = %s\n", good, longline);
	th_write_str(f->ini, text, 0644);
	assert_int_equal(sb_cfg_load(&cfg, f->ini, &probs, &err), SB_ECONFIG);
	assert_true(probs.n >= 1);
	assert_non_null(strstr(probs.items[0].where, ":21"));
	assert_non_null(strstr(probs.items[0].msg, "line longer than"));
	sb_problems_release(&probs);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sb_cfg__good_file_and_defaults,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_cfg__each_problem_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_cfg__all_problems_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_cfg__secret_file_permissions,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sb_cfg__missing_file_and_long_line, setup,
						teardown),
	};
	return cmocka_run_group_tests_name("sb_cfg", tests, NULL, NULL);
}
