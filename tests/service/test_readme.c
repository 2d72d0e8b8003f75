/*
 * The README tells the truth: its configuration reference is exactly what
 * the schema says, and every command the program lists is documented.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "th.h"

static void test_readme__config_reference_matches_schema(void **state)
{
	char *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	const char *argv[] = { bin, "config", "keys", "--markdown", NULL };
	struct sb_buf out = SB_BUF_INIT(1 << 20);
	char *readme = th_read("README.md", NULL), *begin, *end;

	(void)state;
	assert_non_null(readme);
	assert_int_equal(th_run(argv, &out, NULL), 0);
	begin = strstr(readme, "<!-- config-keys:begin -->\n");
	end = strstr(readme, "<!-- config-keys:end -->");
	assert_non_null(begin);
	assert_non_null(end);
	begin += strlen("<!-- config-keys:begin -->\n");
	if ((size_t)(end - begin) != out.len || memcmp(begin, out.buf, out.len))
		fail_msg("README's configuration reference is stale: "
			 "run sh scripts/readme-keys.sh");
	free(readme);
	free(bin);
	sb_buf_release(&out);
}

static void test_readme__every_command_documented(void **state)
{
	char *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	const char *argv[] = { bin, "--help", NULL };
	struct sb_buf out = SB_BUF_INIT(1 << 20);
	char *readme = th_read("README.md", NULL), *p, *line;
	size_t n = 0;

	(void)state;
	assert_int_equal(th_run(argv, &out, NULL), 0);
	p = strstr(out.buf, "commands:\n");
	assert_non_null(p);
	for (line = strchr(p, '\n') + 1; line && *line == ' '; line = strchr(line, '\n') + 1) {
		char name[64], needle[80];

		if (sscanf(line, " %63s", name) != 1)
			break;
		snprintf(needle, sizeof(needle), "| `%s", name);
		if (!strstr(readme, needle))
			fail_msg("command '%s' is not in the README's command table", name);
		n++;
	}
	assert_true(n >= 3);
	free(readme);
	free(bin);
	sb_buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readme__config_reference_matches_schema),
		cmocka_unit_test(test_readme__every_command_documented),
	};
	return cmocka_run_group_tests_name("readme", tests, NULL, NULL);
}
