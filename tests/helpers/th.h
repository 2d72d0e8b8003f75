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
 * Run argv (argv[0] a path) with stdin from /dev/null, capturing stdout and
 * stderr into out (either may be NULL). Returns the exit status, or 128+sig.
 */
int th_run(const char *const argv[], struct sb_buf *out, struct sb_buf *err);

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
