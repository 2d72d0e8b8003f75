/*
 * The send-bridge command line, run as a process (build/asan/send-bridge):
 * help for the program and every subcommand, exit codes, `config check`
 * and `act check` in human and JSON form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "th.h"

static char *bin;

static int run(const char *const *args, struct sb_buf *out, struct sb_buf *err)
{
	const char *argv[16];
	size_t n = 0;

	argv[n++] = bin;
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	sb_buf_reset(out);
	sb_buf_reset(err);
	return th_run(argv, out, err);
}

static int group_setup(void **state)
{
	(void)state;
	bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	/* the tests must not read a configuration from the machine they run on */
	unsetenv("SEND_BRIDGE_CONFIG");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(bin);
	return 0;
}

static void test_cli__help_and_usage_errors(void **state)
{
	struct sb_buf out = SB_BUF_INIT(1 << 20), err = SB_BUF_INIT(1 << 20),
		      sub = SB_BUF_INIT(1 << 20);
	const char *p;
	size_t n = 0;

	(void)state;
	assert_int_equal(run((const char *[]){ "--help", NULL }, &out, &err), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "exit codes"));
	/* every command the program lists has its own --help, exiting 0 */
	p = strstr(sb_buf_cstr(&out), "commands:\n");
	assert_non_null(p);
	for (p = strchr(p, '\n') + 1; *p == ' '; p = strchr(p, '\n') + 1) {
		char name[64];

		if (sscanf(p, " %63s", name) != 1)
			break;
		if (run((const char *[]){ name, "--help", NULL }, &sub, &err) != 0)
			fail_msg("'%s --help' failed: %s", name, sb_buf_cstr(&err));
		if (!strstr(sb_buf_cstr(&sub), "usage: send-bridge"))
			fail_msg("'%s --help' prints no usage line", name);
		n++;
	}
	assert_true(n >= 10);
	assert_int_equal(run((const char *[]){ "frobnicate", NULL }, &out, &err), 2);
	assert_non_null(strstr(sb_buf_cstr(&err), "unknown command 'frobnicate'"));
	assert_int_equal(run((const char *[]){ "--bogus", NULL }, &out, &err), 2);
	assert_int_equal(run((const char *[]){ NULL }, &out, &err), 2);
	assert_int_equal(run((const char *[]){ "act", NULL }, &out, &err), 2);
	assert_int_equal(run((const char *[]){ "version", NULL }, &out, &err), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "send-bridge 0."));
	sb_buf_release(&out);
	sb_buf_release(&err);
	sb_buf_release(&sub);
}

static void test_cli__act_check_exit_codes_and_json(void **state)
{
	struct sb_buf out = SB_BUF_INIT(1 << 20), err = SB_BUF_INIT(1 << 20);
	char *good = th_fixture("acts/fine-company"),
	     *bad = th_fixture("acts-broken/cf-check-char");
	json_error_t jerr;
	json_t *j, *p;

	(void)state;
	assert_int_equal(run((const char *[]){ "act", "check", good, NULL }, &out, &err), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "act fine-company: valid"));
	assert_int_equal(run((const char *[]){ "act", "check", bad, NULL }, &out, &err), 1);
	assert_non_null(strstr(sb_buf_cstr(&out),
			       "recipients[0].taxId: check character wrong (expected C)"));
	/* the tax code itself is not printed */
	assert_null(strstr(sb_buf_cstr(&out), "TSTMRA80A01H501"));
	assert_int_equal(run((const char *[]){ "act", "check", "--json", bad, NULL },
			     &out, &err), 1);
	j = json_loads(sb_buf_cstr(&out), 0, &jerr);
	assert_non_null(j);
	assert_true(json_is_false(json_object_get(j, "valid")));
	p = json_array_get(json_object_get(j, "problems"), 0);
	assert_string_equal(json_string_value(json_object_get(p, "path")), "recipients[0].taxId");
	json_decref(j);
	assert_int_equal(run((const char *[]){ "act", "check", "/nonexistent/act", NULL }, &out,
			     &err), 1);
	free(good);
	free(bad);
	sb_buf_release(&out);
	sb_buf_release(&err);
}

static void test_cli__config_check_and_office(void **state)
{
	struct sb_buf out = SB_BUF_INIT(1 << 20), err = SB_BUF_INIT(1 << 20);
	char *dir = th_tmpdir("cli"), *ini = sb_xasprintf("%s/sb.ini", dir);
	char *key = sb_xasprintf("%s/api.key", dir), *act = th_fixture("acts/imu-assessment");
	char *text;

	(void)state;
	th_write_str(key, "k\n", 0600);
	text = sb_xasprintf("[service]\nsender_denomination = Comune di Esempio\n"
			    "sender_tax_id = 80012345676\n[outbox]\ndir = %s/outbox\n"
			    "[store]\npath = %s/sb.db\n[send]\napi_key_file = api.key\n"
			    "[office.polizia-municipale]\noperators = agente.bianchi\n", dir, dir);
	th_write_str(ini, text, 0644);
	assert_int_equal(run((const char *[]){ "config", "check", "-c", ini, NULL },
			     &out, &err), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "is valid (1 office(s))"));
	/* the act's office is not configured: the act check says so when given the file */
	assert_int_equal(run((const char *[]){ "-c", ini, "act", "check", act, NULL },
			     &out, &err), 1);
	assert_non_null(strstr(sb_buf_cstr(&out), "office 'tributi' is not configured"));
	assert_int_equal(run((const char *[]){ "act", "check", act, NULL }, &out, &err), 0);

	free(text);
	text = sb_xasprintf("[service]\nworkers = 0\n[web]\nport = 80\n");
	th_write_str(ini, text, 0644);
	assert_int_equal(run((const char *[]){ "config", "check", "-c", ini, NULL },
			     &out, &err), 2);
	assert_non_null(strstr(sb_buf_cstr(&out),
			       "sb.ini:2: [service] workers: 0 is out of range"));
	assert_non_null(strstr(sb_buf_cstr(&out), "sb.ini:4: [web] port: unknown key"));
	assert_non_null(strstr(sb_buf_cstr(&out), "[store] path: required"));
	assert_int_equal(run((const char *[]){ "config", "check", "-c", "/nonexistent.ini", NULL },
			     &out, &err), 2);
	assert_int_equal(run((const char *[]){ "config", "keys", NULL }, &out, &err), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "api_key_file"));
	th_rmrf(dir);
	free(text); free(dir); free(ini); free(key); free(act);
	sb_buf_release(&out);
	sb_buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli__help_and_usage_errors),
		cmocka_unit_test(test_cli__act_check_exit_codes_and_json),
		cmocka_unit_test(test_cli__config_check_and_office),
	};
	return cmocka_run_group_tests_name("cli", tests, group_setup, group_teardown);
}
