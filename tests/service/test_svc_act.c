/*
 * The act parser (service/svc_act.c) on the project's sample acts and on
 * every broken act in fixtures/acts-broken/: each broken folder has a file
 * `expect` with "JSON path<TAB>message fragment", and the parser must
 * report exactly that path with that message. Plus a 10 MB manifest made
 * here (not committed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "svc_act.h"
#include "th.h"

static void test_svc_act__sample_fine_pagopa(void **state)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct svc_act *a = NULL;
	char *dir = th_fixture("acts/fine-pagopa"), *pdf;
	unsigned char d[SB_SHA256_LEN];
	struct sb_buf hex = SB_BUF_INIT(65);

	(void)state;
	assert_int_equal(svc_act_load(&a, dir, true, &probs, &err), 0);
	assert_int_equal(probs.n, 0);
	assert_string_equal(a->id, "fine-pagopa");
	assert_string_equal(a->office, "polizia-municipale");
	assert_string_equal(a->operator_id, "agente.bianchi");
	assert_string_equal(a->taxonomy_code, "010101P");
	assert_int_equal(a->fee_policy, SVC_FEE_DELIVERY_MODE);
	assert_int_equal(a->pa_fee, 100);
	assert_int_equal(a->vat, 22);
	assert_int_equal(a->comm_type, SVC_REGISTERED_LETTER_890);
	assert_true(a->has_amount);
	assert_int_equal(a->amount, 4200);
	assert_int_equal(a->nrecipients, 1);
	assert_int_equal(a->recipients[0].type, SVC_PF);
	assert_string_equal(a->recipients[0].address.province, "RM");
	assert_null(a->recipients[0].pec);
	assert_int_equal(a->recipients[0].npayments, 1);
	assert_string_equal(a->recipients[0].payments[0].notice_code, "302010000000001001");
	assert_true(a->recipients[0].payments[0].has_pagopa_file);
	assert_int_equal(a->ndocuments, 1);
	/* the document's hash is the file's real SHA-256, and its path is inside the folder */
	pdf = th_fixture("acts/fine-pagopa/verbale.pdf");
	assert_int_equal(sb_sha256_file(pdf, d, NULL, &err), 0);
	sb_hex_encode(d, sizeof(d), &hex);
	assert_string_equal(a->documents[0].file.sha256, hex.buf);
	assert_non_null(strstr(a->documents[0].file.path,
			       "/fixtures/acts/fine-pagopa/verbale.pdf"));
	assert_true(a->documents[0].file.size > 1000);
	sb_buf_release(&hex);
	svc_act_free(a);
	free(dir);
	free(pdf);
}

static void test_svc_act__all_samples_valid(void **state)
{
	static const char *const samples[] = { "fine-pagopa", "fine-pec", "fine-company",
					       "imu-assessment" };
	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(samples); i++) {
		struct sb_problems probs = SB_PROBLEMS_INIT;
		struct sb_err err = SB_ERR_INIT;
		struct svc_act *a = NULL;
		char *rel = sb_xasprintf("acts/%s", samples[i]), *dir = th_fixture(rel);

		if (svc_act_load(&a, dir, false, &probs, &err) != 0)
			fail_msg("%s: %s (%s: %s)", samples[i], err.msg,
				 probs.n ? probs.items[0].where : "",
				 probs.n ? probs.items[0].msg : "");
		svc_act_free(a);
		free(rel);
		free(dir);
	}
}

static void test_svc_act__every_broken_fixture(void **state)
{
	char *root = th_fixture("acts-broken");
	DIR *d = opendir(root);
	struct dirent *e;
	size_t checked = 0;

	(void)state;
	assert_non_null(d);
	while ((e = readdir(d))) {
		struct sb_problems probs = SB_PROBLEMS_INIT;
		struct sb_err err = SB_ERR_INIT;
		struct svc_act *a = NULL;
		char *dir, *expect_path, *expect, *tab, *nl;
		bool found = false;
		int rc;

		if (e->d_name[0] == '.')
			continue;
		dir = sb_xasprintf("%s/%s", root, e->d_name);
		expect_path = sb_xasprintf("%s/expect", dir);
		expect = th_read(expect_path, NULL);
		if (!expect)
			fail_msg("%s has no expect file", e->d_name);
		tab = strchr(expect, '\t');
		assert_non_null(tab);
		*tab = '\0';
		nl = strchr(tab + 1, '\n');
		if (nl)
			*nl = '\0';
		rc = svc_act_load(&a, dir, true, &probs, &err);
		if (rc == 0)
			fail_msg("%s: accepted, expected '%s: %s'", e->d_name, expect, tab + 1);
		assert_null(a);
		assert_true(err.code == rc);
		assert_true(strlen(err.msg) > 0);
		for (size_t i = 0; i < probs.n; i++)
			if (!strcmp(probs.items[i].where, expect) &&
			    strstr(probs.items[i].msg, tab + 1))
				found = true;
		if (!found) {
			for (size_t i = 0; i < probs.n; i++)
				fprintf(stderr, "  %s got: %s: %s\n", e->d_name,
					probs.items[i].where, probs.items[i].msg);
			fail_msg("%s: no problem '%s: %s'", e->d_name, expect, tab + 1);
		}
		/* No message repeats a tax code from the fixtures (personal data). */
		for (size_t i = 0; i < probs.n; i++)
			assert_null(strstr(probs.items[i].msg, "TSTMRA80A01H501"));
		checked++;
		sb_problems_release(&probs);
		free(expect);
		free(expect_path);
		free(dir);
	}
	closedir(d);
	free(root);
	/* The foundation issue asks for at least 30 broken acts. */
	assert_true(checked >= 30);
}

static void test_svc_act__ten_megabyte_manifest(void **state)
{
	char *dir = th_tmpdir("bigact"), *path = sb_xasprintf("%s/act.json", dir);
	size_t n = 10u * 1024u * 1024u;
	char *big = sb_xmalloc(n);
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct svc_act *a = NULL;

	(void)state;
	/* valid JSON all the way through, so only the size can be the reason */
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 2] = '}';
	big[n - 1] = '\n';
	th_write(path, big, n, 0644);
	assert_int_equal(svc_act_load(&a, dir, false, &probs, &err), SB_ETOOBIG);
	assert_null(a);
	assert_int_equal(probs.n, 1);
	assert_string_equal(probs.items[0].where, "act.json");
	assert_non_null(strstr(probs.items[0].msg, "too large (10485760 bytes"));
	sb_problems_release(&probs);
	th_rmrf(dir);
	free(dir);
	free(path);
	free(big);
}

static void test_svc_act__problems_are_collected_not_first_only(void **state)
{
	char *dir = th_tmpdir("multi"), *path = sb_xasprintf("%s/act.json", dir);
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct svc_act *a = NULL;

	(void)state;
	th_write_str(path,
		     "{\"version\":1,\"office\":\"x\",\"operator\":{\"userId\":\"u\"},"
		     "\"subject\":\"\",\"taxonomyCode\":\"bad\","
		     "\"feePolicy\":{\"type\":\"FLAT_RATE\"},"
		     "\"physicalCommunicationType\":\"AR_REGISTERED_LETTER\","
		     "\"recipients\":[{\"type\":\"PF\",\"taxId\":\"TSTMRA80A01H501X\","
		     "\"denomination\":\"M\",\"physicalAddress\":{\"address\":\"Via A 1\","
		     "\"municipality\":\"Roma\",\"zip\":\"00100\",\"province\":\"ZZ\"}}],"
		     "\"documents\":[{\"file\":\"nope.pdf\",\"title\":\"T\"}]}", 0644);
	assert_int_equal(svc_act_load(&a, dir, false, &probs, &err), SB_EINVAL);
	/* subject empty, taxonomy, check character, province, missing file */
	assert_int_equal(probs.n, 5);
	assert_string_equal(probs.items[0].where, "subject");
	assert_non_null(strstr(err.msg, "5 problem(s)"));
	sb_problems_release(&probs);
	th_rmrf(dir);
	free(dir);
	free(path);
}

/*
 * One act folder per case, made from the sample act, whose manifest names
 * NAME as its document; LINK (a symbolic link to TO) or a named pipe at NAME
 * is what the case adds. TO "@outside" is a PDF outside the folder (by
 * absolute path), "@tmp" the folder that holds the cases. EXPECT "=F": the
 * act loads and its document is the folder's F; "!M": the document's one
 * problem says M.
 */
struct confined_case {
	const char *name, *link, *to;
	bool subdir, fifo;
	const char *expect;
};

static const struct confined_case confined_cases[] = {
	{ "verbale.pdf", NULL, NULL, false, false, "=verbale.pdf" },
	{ "./verbale.pdf", NULL, NULL, false, false, "=verbale.pdf" },
	/* links between the folder's own files are followed, through ".." too */
	{ "alias.pdf", "alias.pdf", "verbale.pdf", false, false, "=verbale.pdf" },
	{ "sub/alias.pdf", "sub/alias.pdf", "../verbale.pdf", true, false, "=verbale.pdf" },
	{ "out.pdf", "out.pdf", "../outside.pdf", false, false, "!leaves the act folder" },
	{ "out.pdf", "out.pdf", "@outside", false, false, "!leaves the act folder" },
	{ "sub/outside.pdf", "sub", "@tmp", false, false, "!leaves the act folder" },
	{ "gone.pdf", "gone.pdf", "nothing-here.pdf", false, false, "!not found" },
	/* refused without waiting for a writer that never comes */
	{ "pipe.pdf", NULL, NULL, false, true, "!not a regular file" },
	{ "sub", NULL, NULL, true, false, "!not a regular file" },
};

static void confined_make(const char *tmp)
{
	char *src = th_fixture("acts/fine-pagopa"), *outside = sb_xasprintf("%s/outside.pdf", tmp);
	char *pdf = sb_xasprintf("%s/verbale.pdf", src), *bytes;
	size_t len;

	bytes = th_read(pdf, &len);
	th_write(outside, bytes, len, 0644);
	for (size_t i = 0; i < sizeof(confined_cases) / sizeof(confined_cases[0]); i++) {
		const struct confined_case *k = &confined_cases[i];
		char *dir = sb_xasprintf("%s/case-%zu", tmp, i);
		char *manifest = sb_xasprintf("%s/act.json", dir), *json, *at, *out;

		th_copy_tree(src, dir);
		json = th_read(manifest, NULL);
		at = strstr(json, "\"verbale.pdf\"");
		assert_non_null(at);
		*at = '\0';
		out = sb_xasprintf("%s\"%s\"%s", json, k->name, at + strlen("\"verbale.pdf\""));
		th_write_str(manifest, out, 0644);
		if (k->subdir)
			th_mkdirs(th_own(sb_xasprintf("%s/sub", dir)));
		if (k->link) {
			const char *to = !strcmp(k->to, "@outside") ? outside :
					 !strcmp(k->to, "@tmp")     ? tmp : k->to;

			assert_int_equal(symlink(to, th_own(sb_xasprintf("%s/%s", dir, k->link))),
					 0);
		}
		if (k->fifo)
			assert_int_equal(mkfifo(th_own(sb_xasprintf("%s/%s", dir, k->name)), 0600),
					 0);
		free(out);
		free(json);
		free(manifest);
		free(dir);
	}
	free(bytes);
	free(pdf);
	free(outside);
	free(src);
}

/*
 * NULL when every case loads as expected, else what went wrong (owned).
 * No cmocka here: a child runs it too.
 */
static char *confined_mismatch(const char *tmp)
{
	char *why = NULL;

	for (size_t i = 0; !why && i < sizeof(confined_cases) / sizeof(confined_cases[0]); i++) {
		const struct confined_case *k = &confined_cases[i];
		struct sb_problems probs = SB_PROBLEMS_INIT;
		struct sb_err err = SB_ERR_INIT;
		struct svc_act *a = NULL;
		char *dir = sb_xasprintf("%s/case-%zu", tmp, i);
		int rc = svc_act_load(&a, dir, true, &probs, &err);

		if (k->expect[0] == '=') {
			char *want = sb_xasprintf("%s/%s", dir, k->expect + 1);
			char *real = realpath(want, NULL);

			if (rc != 0)
				why = sb_xasprintf("case %zu (%s): refused: %s", i, k->name,
						   probs.n ? probs.items[0].msg : err.msg);
			else if (!real || strcmp(a->documents[0].file.path, real))
				why = sb_xasprintf("case %zu (%s): path '%s', not '%s'", i, k->name,
						   a->documents[0].file.path, real ? real : want);
			else if (strlen(a->documents[0].file.sha256) != 64)
				why = sb_xasprintf("case %zu (%s): no SHA-256", i, k->name);
			free(real);
			free(want);
		} else if (rc == 0) {
			why = sb_xasprintf("case %zu (%s): accepted", i, k->name);
		} else if (probs.n != 1 || strcmp(probs.items[0].where, "documents[0].file") ||
			   !strstr(probs.items[0].msg, k->expect + 1)) {
			why = sb_xasprintf("case %zu (%s): %zu problem(s), first '%s: %s'", i,
					   k->name, probs.n, probs.n ? probs.items[0].where : "",
					   probs.n ? probs.items[0].msg : err.msg);
		}
		svc_act_free(a);
		sb_problems_release(&probs);
		free(dir);
	}
	return why;
}

/* In a child: openat2 answers ENOSYS, as on Linux before 5.6 or in a sandbox that filters it. */
static void without_openat2(const char *tmp)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	char *why;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
							      &prog)) {
		fprintf(stderr, "seccomp: %s\n", strerror(errno));
		_exit(2);
	}
	if (syscall(SYS_openat2, AT_FDCWD, ".", NULL, 0) != -1 || errno != ENOSYS) {
		fprintf(stderr, "openat2 still answers\n");
		_exit(3);
	}
	why = confined_mismatch(tmp);
	if (why)
		fprintf(stderr, "without openat2: %s\n", why);
	fflush(stderr);
	_exit(why ? 1 : 0);
}

/*
 * File names from the manifest stay inside the act's folder, symbolic links
 * included: to outside (relative or absolute, or through a linked folder) is
 * refused, between two of the folder's own files is followed, and the path
 * the act keeps is the real one. A name that is not a regular file is refused
 * without opening it for good: a pipe would hold the worker until a writer
 * came. The same holds where the kernel has no openat2.
 */
static void test_svc_act__files_confined_to_the_folder(void **state)
{
	char *tmp = th_tmpdir("confined"), *why;
	pid_t child;
	int status = -1;

	(void)state;
	confined_make(tmp);
	why = confined_mismatch(tmp);
	if (why)
		fail_msg("%s", why);
	child = th_fork();
	if (child == 0)
		without_openat2(tmp);
	for (int i = 0; i < 600 && (status = th_child_poll(&child)) < 0; i++)
		usleep(50 * 1000);
	assert_int_equal(status, 0);
	th_rmrf(tmp);
	free(tmp);
}

/* An act.json that is a named pipe is refused, not waited on. */
static void test_svc_act__manifest_pipe_refused(void **state)
{
	char *dir = th_tmpdir("piped"), *path = sb_xasprintf("%s/act.json", dir);
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct svc_act *a = NULL;

	(void)state;
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(svc_act_load(&a, dir, true, &probs, &err), SB_EINVAL);
	assert_null(a);
	assert_int_equal(probs.n, 1);
	assert_string_equal(probs.items[0].where, "act.json");
	assert_string_equal(probs.items[0].msg, "not a regular file");
	sb_problems_release(&probs);
	th_rmrf(dir);
	free(path);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_svc_act__sample_fine_pagopa),
		cmocka_unit_test(test_svc_act__all_samples_valid),
		cmocka_unit_test(test_svc_act__every_broken_fixture),
		cmocka_unit_test(test_svc_act__ten_megabyte_manifest),
		cmocka_unit_test(test_svc_act__problems_are_collected_not_first_only),
		cmocka_unit_test(test_svc_act__files_confined_to_the_folder),
		cmocka_unit_test(test_svc_act__manifest_pipe_refused),
	};
	return cmocka_run_group_tests_name("svc_act", tests, NULL, NULL);
}
