/*
 * The outbox folders on a real file system: claim by rename, moves that
 * never overwrite, reason.json, listing and the inotify watch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_json.h"
#include "svc_outbox.h"
#include "../helpers/th.h"

struct fx {
	char *root;
	struct svc_outbox *o;
};

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));
	char *tmp = th_tmpdir("outbox");
	struct sb_err err = SB_ERR_INIT;

	f->root = sb_xasprintf("%s/outbox", tmp);
	free(tmp);
	assert_int_equal(svc_outbox_open(&f->o, f->root, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char *parent = sb_xstrndup(f->root, strrchr(f->root, '/') - f->root);

	svc_outbox_free(f->o);
	th_rmrf(parent);
	free(parent);
	free(f->root);
	free(f);
	return 0;
}

/* sub/name/act.json with content. */
static void make_act(struct fx *f, const char *sub, const char *name, const char *content)
{
	char *dir = svc_outbox_path(f->o, sub, name), *file = sb_xasprintf("%s/act.json", dir);

	th_mkdirs(dir);
	th_write_str(file, content, 0640);
	free(file);
	free(dir);
}

static char *read_in(struct fx *f, const char *sub, const char *name, const char *file)
{
	char *p = sb_xasprintf("%s/%s/%s/%s", f->root, sub, name, file), *txt = th_read(p, NULL);

	free(p);
	return txt;
}

static bool exists(struct fx *f, const char *sub, const char *name)
{
	char *p = svc_outbox_path(f->o, sub, name);
	struct stat st;
	bool ok = lstat(p, &st) == 0;

	free(p);
	return ok;
}

static void test_svc_outbox__open_makes_the_five_folders(void **state)
{
	struct fx *f = *state;
	static const char *const subs[] = { "tmp", "new", "work", "done", "rejected" };

	for (size_t i = 0; i < SB_ARRAY_SIZE(subs); i++)
		assert_true(exists(f, subs[i], NULL));
}

static void test_svc_outbox__open_refuses_relative_and_blocked_roots(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct svc_outbox *o = NULL;
	char *file = sb_xasprintf("%s/blocker", f->root), *below = sb_xasprintf("%s/x", file);

	assert_int_equal(svc_outbox_open(&o, "relative/outbox", &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_true(err.msg[0]);
	assert_null(o);
	th_write_str(file, "not a folder", 0600);
	sb_err_clear(&err);
	assert_int_equal(svc_outbox_open(&o, below, &err), SB_EIO);
	assert_int_equal(err.code, SB_EIO);
	assert_non_null(strstr(err.msg, "cannot create folder"));
	assert_null(o);
	free(file);
	free(below);
}

static void test_svc_outbox__name_rules(void **state)
{
	static const struct { const char *name; bool ok; } cases[] = {
		{ "verbale-1001_2026", true }, { "a", true }, { "A.b-c_9", true },
		{ "", false }, { ".hidden", false }, { "with space", false }, { "a/b", false },
		{ "perc%", false }, { "accentè", false },
		{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", true },   /* 128 */
		{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", false },  /* 129 */
	};

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++)
		assert_int_equal(svc_outbox_name_ok(cases[i].name), cases[i].ok);
}

static void test_svc_outbox__claim_moves_new_to_work(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *txt;

	make_act(f, "new", "act-1", "{\"v\":1}");
	assert_int_equal(svc_outbox_claim(f->o, "act-1", &err), 0);
	assert_false(exists(f, "new", "act-1"));
	txt = read_in(f, "work", "act-1", "act.json");
	assert_string_equal(txt, "{\"v\":1}");
	free(txt);
	/* A second claim finds nothing: someone else (we) took it. */
	assert_int_equal(svc_outbox_claim(f->o, "act-1", &err), SB_ENOTFOUND);
	assert_int_equal(err.code, SB_ENOTFOUND);
	assert_true(err.msg[0]);
	/* The daemon's batch form moves the same way; the sync comes once, after. */
	make_act(f, "new", "act-2", "{\"v\":2}");
	make_act(f, "new", "act-3", "{\"v\":3}");
	assert_int_equal(svc_outbox_claim_unsynced(f->o, "act-2", &err), 0);
	assert_int_equal(svc_outbox_claim_unsynced(f->o, "act-3", &err), 0);
	assert_int_equal(svc_outbox_claim_unsynced(f->o, "act-3", &err), SB_ENOTFOUND);
	svc_outbox_sync_work(f->o);
	assert_false(exists(f, "new", "act-2"));
	txt = read_in(f, "work", "act-3", "act.json");
	assert_string_equal(txt, "{\"v\":3}");
	free(txt);
}

static void test_svc_outbox__claim_never_replaces_an_act_in_work(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *txt;

	make_act(f, "work", "dup", "first");
	make_act(f, "new", "dup", "second");
	assert_int_equal(svc_outbox_claim(f->o, "dup", &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_non_null(strstr(err.msg, "already in work/"));
	txt = read_in(f, "work", "dup", "act.json");
	assert_string_equal(txt, "first");
	free(txt);
	txt = read_in(f, "new", "dup", "act.json");
	assert_string_equal(txt, "second");
	free(txt);
	sb_err_clear(&err);
	assert_int_equal(svc_outbox_claim(f->o, "../escape", &err), SB_EINVAL);
	assert_true(err.msg[0]);
}

static void test_svc_outbox__claim_refuses_a_symbolic_link(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *target = sb_xasprintf("%s/tmp/outside", f->root), *link = NULL;

	make_act(f, "tmp", "outside", "{}");
	link = svc_outbox_path(f->o, "new", "linked");
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(svc_outbox_claim(f->o, "linked", &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_non_null(strstr(err.msg, "symbolic link"));
	assert_true(exists(f, "new", "linked"));
	assert_false(exists(f, "work", "linked"));
	free(target);
	free(link);
}

static void test_svc_outbox__finish_never_overwrites(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *final = NULL, *txt;

	for (int i = 0; i < 3; i++) {
		char content[32];

		snprintf(content, sizeof(content), "round %d", i);
		make_act(f, "work", "same", content);
		assert_int_equal(svc_outbox_finish(f->o, "work", "same", true, NULL,
						   &final, &err), 0);
		assert_string_equal(final, i == 0 ? "same" : i == 1 ? "same.1" : "same.2");
		txt = read_in(f, "done", final, "act.json");
		assert_string_equal(txt, content);
		free(txt);
		free(final);
		final = NULL;
	}
	/* Closed acts get no reason.json. */
	txt = read_in(f, "done", "same", "reason.json");
	assert_null(txt);
}

static void test_svc_outbox__finish_writes_reason_json(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	const char *reason = "{\"act\":\"bad\",\"problems\":[{\"path\":\"subject\","
			     "\"message\":\"x\"}]}";
	char *final = NULL, *txt, *tmp;

	make_act(f, "work", "bad", "{}");
	assert_int_equal(svc_outbox_finish(f->o, "work", "bad", false, reason, &final, &err), 0);
	assert_string_equal(final, "bad");
	txt = read_in(f, "rejected", "bad", "reason.json");
	assert_string_equal(txt, reason);
	free(txt);
	/* The act's own files are kept, and no temp file is left behind. */
	txt = read_in(f, "rejected", "bad", "act.json");
	assert_string_equal(txt, "{}");
	free(txt);
	tmp = read_in(f, "rejected", "bad", "reason.json.tmp");
	assert_null(tmp);
	free(final);
}

static void test_svc_outbox__a_stray_file_gets_a_reason_beside_it(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *path = svc_outbox_path(f->o, "new", "stray.pdf"), *final = NULL, *txt;

	th_write_str(path, "%PDF-", 0640);
	assert_int_equal(svc_outbox_finish(f->o, "new", "stray.pdf", false, "{\"r\":1}\n", &final,
					   &err), 0);
	assert_string_equal(final, "stray.pdf");
	free(path);
	path = sb_xasprintf("%s/rejected/stray.pdf.reason.json", f->root);
	txt = th_read(path, NULL);
	assert_string_equal(txt, "{\"r\":1}\n");
	free(txt);
	free(path);
	free(final);
}

static void test_svc_outbox__finish_of_a_missing_entry_fails(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char *final = (char *)&err;   /* sentinel: must stay untouched */

	assert_int_equal(svc_outbox_finish(f->o, "work", "ghost", true, NULL, &final, &err),
			 SB_ENOTFOUND);
	assert_int_equal(err.code, SB_ENOTFOUND);
	assert_true(err.msg[0]);
	assert_ptr_equal(final, (char *)&err);
}

static void test_svc_outbox__list_is_sorted_and_skips_dot_entries(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char **names = NULL;
	size_t n = 0;

	make_act(f, "new", "b", "{}");
	make_act(f, "new", "a", "{}");
	make_act(f, "new", ".writing", "{}");
	assert_int_equal(svc_outbox_list(f->o, "new", &names, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "a");
	assert_string_equal(names[1], "b");
	svc_outbox_names_free(names, n);
	assert_int_equal(svc_outbox_list(f->o, "nowhere", &names, &n, &err), SB_EIO);
	assert_true(err.msg[0]);
}

static void test_svc_outbox__watch_sees_a_published_act(void **state)
{
	struct fx *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct pollfd pfd;
	char *from, *to;
	int fd = -1;

	assert_int_equal(svc_outbox_watch(f->o, &fd, &err), 0);
	assert_int_equal(svc_outbox_watch_drain(fd), 0);
	/* The Maildir way: build in tmp/, publish with one rename. */
	make_act(f, "tmp", "fresh", "{}");
	from = svc_outbox_path(f->o, "tmp", "fresh");
	to = svc_outbox_path(f->o, "new", "fresh");
	assert_int_equal(rename(from, to), 0);
	pfd.fd = fd;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_true(svc_outbox_watch_drain(fd) >= 1);
	close(fd);
	free(from);
	free(to);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_svc_outbox__open_makes_the_five_folders,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_outbox__open_refuses_relative_and_blocked_roots, setup, teardown),
		cmocka_unit_test(test_svc_outbox__name_rules),
		cmocka_unit_test_setup_teardown(test_svc_outbox__claim_moves_new_to_work,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_outbox__claim_never_replaces_an_act_in_work, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_outbox__claim_refuses_a_symbolic_link,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_outbox__finish_never_overwrites,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_outbox__finish_writes_reason_json,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_outbox__a_stray_file_gets_a_reason_beside_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_outbox__finish_of_a_missing_entry_fails,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_outbox__list_is_sorted_and_skips_dot_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_outbox__watch_sees_a_published_act,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("svc_outbox", tests, NULL, NULL);
}
