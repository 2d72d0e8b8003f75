/*
 * The scopes of tests/helpers/th.h, checked from outside. A test that
 * fails on purpose runs in a forked child, in a cmocka run of its own with
 * its output in a file, so its failure is data here and not a failure of
 * this binary. The child stops itself once its run is over: its processes
 * are then checked before any exit handler could have cleaned up for the
 * scopes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sb_common.h"
#include "th.h"
#include "th_platform.h"

/* The child's folder: its log and the pids its failing test started. */
static const char *child_dir;

/* Running or a zombie nobody reaped: either way a scope did not do its job. */
static bool exists(pid_t pid)
{
	return kill(pid, 0) == 0 || errno != ESRCH;
}

/*
 * The pids the child's test wrote, and send-sim's folder, which a scope
 * leaves for reading (removed here); fails the test when they are missing.
 */
static void read_pids(pid_t pids[2])
{
	char *path = th_own(sb_xasprintf("%s/pids", child_dir));
	char *text = th_own(th_read(path, NULL));
	char *dir = th_own(sb_xcalloc(1, 4096));
	int a = 0, b = 0;

	assert_non_null(text);
	assert_int_equal(sscanf(text, "%d %d %4095s", &a, &b, dir), 3);
	pids[0] = a;
	pids[1] = b;
	th_rmrf(dir);
}

static void child_fails_with_children(void **state)
{
	struct th_sim sim;
	char *bin = th_own(sb_xasprintf("%s/send-sim", th_build_dir()));
	char *port_file = th_own(sb_xasprintf("%s/port", child_dir));
	char *log = th_own(sb_xasprintf("%s/spawned.log", child_dir));
	char *pids = th_own(sb_xasprintf("%s/pids", child_dir));
	pid_t spawned;

	(void)state;
	th_sim_start(&sim, NULL);
	spawned = th_spawn((const char *[]){ bin, "--port", "0", "--port-file", port_file, NULL },
			   log);
	th_write_str(pids, th_own(sb_xasprintf("%d %d %s\n", (int)sim.pid, (int)spawned, sim.dir)),
		     0600);
	assert_true(exists(sim.pid) && exists(spawned));
	fail_msg("failed on purpose with send-sim pids %d and %d running", (int)sim.pid,
		 (int)spawned);
}

static void child_next_test_finds_none(void **state)
{
	pid_t pids[2];

	(void)state;
	read_pids(pids);
	assert_false(exists(pids[0]));
	assert_false(exists(pids[1]));
}

static void child_killed_with_children(void **state)
{
	struct th_sim sim;
	char *pids = th_own(sb_xasprintf("%s/pids", child_dir));

	(void)state;
	th_sim_start(&sim, NULL);
	th_write_str(pids, th_own(sb_xasprintf("%d 0 %s\n", (int)sim.pid, sim.dir)), 0600);
	/* As run.sh's timeout or a sanitizer would end it: no scope, no exit handler. */
	raise(SIGKILL);
}

/*
 * LeakSanitizer scans stacks conservatively: a pointer left in the dead
 * frames of the child's tests would hide a leak from its check at exit.
 */
static __attribute__((noinline)) void scrub_stack(void)
{
	char pad[256 * 1024];

	explicit_bzero(pad, sizeof(pad));
}

/* In the forked child: run tests with the output in child_dir/log, stop, then exit. */
static void child_run(const struct CMUnitTest *tests, size_t n)
{
	char *log = sb_xasprintf("%s/log", child_dir);
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int failed;

	free(log);
	if (fd < 0)
		_exit(126);
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);
	failed = _cmocka_run_group_tests("th_child", tests, n, NULL, NULL);
	fflush(stdout);
	scrub_stack();
	raise(SIGSTOP);
	exit(failed);
}

/* Fail with the child's log, which says what its run did. */
static void fail_child(const char *why)
{
	char *log = th_own(sb_xasprintf("%s/log", child_dir));
	char *text = th_own(th_read(log, NULL));

	fail_msg("%s; the child's log:\n%s", why, text ? text : "(none)");
}

/*
 * Wait (up to 60 s) until child stops or ends, leaving it waitable so that
 * th_child_stop reaps it; CLD_STOPPED, CLD_EXITED, CLD_KILLED..., or -1.
 */
static int wait_child(pid_t child)
{
	for (int i = 0; i < 6000; i++) {
		siginfo_t info;

		memset(&info, 0, sizeof(info));
		if (waitid(P_PID, (id_t)child, &info, WEXITED | WSTOPPED | WNOHANG | WNOWAIT) < 0)
			return -1;
		if (info.si_pid == child)
			return info.si_code;
		th_sleep_ms(10);
	}
	return -1;
}

static void test_th__failed_test_leaves_no_child_and_no_leak(void **state)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(child_fails_with_children),
		th_unit_test(child_next_test_finds_none),
	};
	pid_t pids[2], child;
	int status = 0;
	char *log;

	(void)state;
	child_dir = th_own(th_tmpdir("th"));
	child = th_fork();
	if (child == 0)
		child_run(tests, sizeof(tests) / sizeof(tests[0]));
	if (wait_child(child) != CLD_STOPPED)
		fail_child("the child did not stop after its run");
	read_pids(pids);
	assert_false(exists(pids[0]));
	assert_false(exists(pids[1]));
	/* Exactly the failure on purpose: one failed test, and where it should have failed. */
	status = th_child_stop(&child, SIGCONT);
	if (status != 1)
		fail_child(th_own(sb_xasprintf("the child's run exited with %d, not 1", status)));
	log = th_own(th_read(th_own(sb_xasprintf("%s/log", child_dir)), NULL));
	if (!strstr(log, "failed on purpose"))
		fail_child("the child's test failed, but not where it should have");
	/* Read, not the exit status: in a forked child LeakSanitizer keeps the status it had. */
	if (strstr(log, "LeakSanitizer"))
		fail_child("the child's failed test leaked");
	th_rmrf(child_dir);
}

static void test_th__children_die_with_a_killed_test_binary(void **state)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(child_killed_with_children),
	};
	pid_t pids[2], child;
	bool gone = false;

	(void)state;
	child_dir = th_own(th_tmpdir("th"));
	child = th_fork();
	if (child == 0)
		child_run(tests, 1);
	if (wait_child(child) != CLD_KILLED)
		fail_child("the child did not die of its SIGKILL");
	assert_int_equal(th_child_stop(&child, SIGKILL), 128 + SIGKILL);
	read_pids(pids);
	/*
	 * send-sim dies of its SIGKILL as an orphan of this process (th_fork
	 * made it their subreaper): allow it a moment, and a zombie counts as
	 * gone (this test's scope reaps it).
	 */
	for (int i = 0; i < 500 && !gone; i++) {
		char st = th_proc_state(pids[0], NULL);

		gone = !st || st == 'Z';
		if (!gone)
			th_sleep_ms(10);
	}
	assert_true(gone);
	th_rmrf(child_dir);
}

static void test_th__an_orphan_is_reaped_when_its_scope_ends(void **state)
{
	int fds[2];
	pid_t child, orphan = 0, ppid = 0;
	char st = 0;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	th_scope_begin();
	child = th_fork();
	if (child == 0) {
		/* The child's own child, forked through the helpers: it dies with the child. */
		pid_t pid = th_fork();

		if (pid == 0)
			for (;;)
				pause();
		if (write(fds[1], &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
			_exit(126);
		for (;;)
			pause();
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &orphan, sizeof(orphan)), sizeof(orphan));
	close(fds[0]);
	/* Killed as run.sh's timeout would: no scope of the child ends, its child is orphaned. */
	assert_int_equal(th_child_stop(&child, SIGKILL), 128 + SIGKILL);
	for (int i = 0; i < 500 && (st = th_proc_state(orphan, &ppid)) != 'Z'; i++)
		th_sleep_ms(10);
	assert_int_equal(st, 'Z');
	/* Adopted by this process, not by pid 1, and reaped by the scope. */
	assert_int_equal(ppid, getpid());
	th_scope_end();
	assert_int_equal(th_proc_state(orphan, NULL), 0);
}

static void test_th__a_polled_child_is_reaped_once_it_ends(void **state)
{
	int go[2];
	pid_t child, pid;
	int status = -1;

	(void)state;
	assert_int_equal(pipe(go), 0);
	child = th_fork();
	if (child == 0) {
		char c;

		/* Runs until the test writes its byte, then ends with a status of its own. */
		close(go[1]);
		_exit(read(go[0], &c, 1) == 1 ? 3 : 126);
	}
	close(go[0]);
	pid = child;
	assert_int_equal(th_child_poll(&child), -1);
	assert_int_equal(child, pid);
	assert_int_equal(write(go[1], "x", 1), 1);
	close(go[1]);
	for (int i = 0; i < 500 && status < 0; i++) {
		status = th_child_poll(&child);
		if (status < 0)
			th_sleep_ms(10);
	}
	assert_int_equal(status, 3);
	assert_int_equal(child, 0);
	assert_false(exists(pid));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(test_th__failed_test_leaves_no_child_and_no_leak),
		th_unit_test(test_th__children_die_with_a_killed_test_binary),
		th_unit_test(test_th__a_polled_child_is_reaped_once_it_ends),
		th_unit_test(test_th__an_orphan_is_reaped_when_its_scope_ends),
	};

	return cmocka_run_group_tests_name("th", tests, NULL, NULL);
}
