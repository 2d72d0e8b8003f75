/*
 * Test helpers shared by every test binary: temporary folders, files,
 * fixture paths, running the project's binaries, and starting send-sim on
 * loopback. Include after cmocka's prerequisites.
 */
#ifndef TH_H
#define TH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sb_buf.h"

/* Build folder of the binaries under test ($SB_BUILD, default build/asan). */
const char *th_build_dir(void);

/* A fresh folder under $TMPDIR; the returned string is owned (free()). */
char *th_tmpdir(const char *tag);
/* rm -rf path (tests only). */
void th_rmrf(const char *path);
/* Create path with content (len bytes) and mode; aborts the test on failure. */
void th_write(const char *path, const void *content, size_t len, mode_t mode);
void th_write_str(const char *path, const char *content, mode_t mode);
/* Read a whole file into a new string; NULL if unreadable. */
char *th_read(const char *path, size_t *len_out);
/* mkdir -p */
void th_mkdirs(const char *path);
/* cp -a src dst (a folder tree). */
void th_copy_tree(const char *src, const char *dst);

/* Project fixture path (fixtures/...), owned. */
char *th_fixture(const char *rel);
/* A path in ../shared, owned, or NULL when that folder is missing (a user's clone). */
char *th_shared(const char *rel);

/*
 * Test scopes. A failed cmocka assertion longjmps out of the test and past
 * its own clean-up code, so whatever must not outlive a test is recorded
 * here and released when its scope ends, whether it passed or failed: the
 * children started by these helpers (killed with SIGKILL and reaped) and
 * memory or handles given to th_defer/th_own. Scopes nest; what is
 * recorded outside any scope (a group set-up's send-sim) is released at
 * exit. Children also die with the test binary (PR_SET_PDEATHSIG), so an
 * abort, a sanitizer report or run.sh's timeout leaves none behind.
 * A process that forked through th_fork is the subreaper of its children's
 * children: those orphaned when a child died without its scopes (killed)
 * become its own, and a scope's end reaps the ones that have ended, so
 * they are not left as zombies to a pid 1 that may not reap them. Any
 * ended child that no scope records is reaped there, so a child forked
 * without these helpers must be reaped before its scope ends.
 * Not thread-safe: call from the test's thread.
 */
void th_scope_begin(void);
void th_scope_end(void);
/* cmocka set-up and tear-down opening and closing one test's scope (state is left alone). */
int th_setup(void **state);
int th_teardown(void **state);
/* A test with its own scope: cmocka_unit_test with th_setup and th_teardown. */
#define th_unit_test(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

/*
 * fork(): the child is recorded in the current scope. In the child, which
 * returns 0, no scope is open, the parent's children are forgotten (not
 * its own to stop), and SIGKILL is due when the forking thread ends.
 */
pid_t th_fork(void);
/*
 * The state letter of process pid in /proc/pid/stat ('R', 'S', 'Z'...), its
 * parent's pid in *ppid_out (may be NULL); 0 when there is no such process.
 */
char th_proc_state(pid_t pid, pid_t *ppid_out);
/* Call fn(arg) when the current scope ends; arg must not live on the test's stack. */
void th_defer(void (*fn)(void *), void *arg);
/* free(p) when the current scope ends (the caller must not free it); returns p. */
void *th_own(void *p);

/*
 * Run argv (argv[0] a path) with stdin from /dev/null, capturing stdout and
 * stderr into out (either may be NULL). Returns the exit status, or 128+sig.
 */
int th_run(const char *const argv[], struct sb_buf *out, struct sb_buf *err);

/* Start argv in the background (stdout and stderr to log_path); returns its pid. */
pid_t th_spawn(const char *const argv[], const char *log_path);
/* Wait until 127.0.0.1:port accepts connections (up to ~5 s); true when it does. */
bool th_wait_port(unsigned port);
/* A free loopback port (bound and released: the small race is acceptable in a test); 0 on error. */
unsigned th_free_port(void);
/* Stop a process started with th_spawn (SIGTERM, then reap); pid <= 0 is a no-op. */
void th_kill(pid_t pid);
/*
 * Send sig to the child *pid (th_spawn, th_fork), reap it and set *pid to
 * 0; returns its exit status, or 128 + the signal that ended it.
 */
int th_child_stop(pid_t *pid, int sig);
/*
 * Without blocking: when the child *pid has ended, reap it, set *pid to 0
 * and return its exit status, or 128 + the signal that ended it; -1 while
 * it runs. For a test that must keep working while a child stops.
 */
int th_child_poll(pid_t *pid);

/* send-sim started on 127.0.0.1 with an ephemeral port. */
struct th_sim {
	pid_t pid;
	unsigned port;
	char url[64];     /* http://127.0.0.1:PORT */
	char *dir;
};

/* Start send-sim with extra arguments (NULL-terminated, may be NULL); waits until it listens. */
void th_sim_start(struct th_sim *s, const char *const *extra);
void th_sim_stop(struct th_sim *s);

#endif
