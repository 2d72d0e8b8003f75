/*
 * The outbox folders: see svc_outbox.h and DESIGN.md "The outbox contract".
 *
 * Design notes: every move is renameat2(RENAME_NOREPLACE), so a race with a
 * writer or a second instance can fail but never overwrite; the parent
 * folder is fsync'ed after a move so that a claim survives a power cut as
 * well as the store row that follows it. The store, not the file system,
 * is the authority on an act's progress: recovery (svc_pipeline.c) only
 * needs each act to be in exactly one of new/, work/, done/, rejected/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_common.h"
#include "svc_outbox.h"

struct svc_outbox {
	char *root;
};

static const char *const subdirs[] = { "tmp", "new", "work", "done", "rejected" };

/* Suffixes tried for a name already taken in done/ or rejected/ before giving up. */
#define MAX_SUFFIX 10000

static int mkdir_one(const char *path, struct sb_err *err)
{
	struct stat st;

	if (mkdir(path, 0750) == 0 || (errno == EEXIST && stat(path, &st) == 0 &&
					S_ISDIR(st.st_mode)))
		return 0;
	return sb_err_set(err, SB_EIO, errno, "outbox: cannot create folder '%s': %s", path,
			  strerror(errno));
}

int svc_outbox_open(struct svc_outbox **out, const char *root, struct sb_err *err)
{
	struct svc_outbox *o;
	int rc;

	if (!root || root[0] != '/')
		return sb_err_set(err, SB_EINVAL, 0, "outbox: root must be an absolute path");
	rc = mkdir_one(root, err);
	if (rc < 0)
		return rc;
	o = sb_xcalloc(1, sizeof(*o));
	o->root = sb_xstrdup(root);
	for (size_t i = 0; i < SB_ARRAY_SIZE(subdirs); i++) {
		char *p = svc_outbox_path(o, subdirs[i], NULL);

		rc = mkdir_one(p, err);
		free(p);
		if (rc < 0) {
			svc_outbox_free(o);
			return rc;
		}
	}
	*out = o;
	return 0;
}

void svc_outbox_free(struct svc_outbox *o)
{
	if (!o)
		return;
	free(o->root);
	free(o);
}

char *svc_outbox_path(const struct svc_outbox *o, const char *sub, const char *name)
{
	return name ? sb_xasprintf("%s/%s/%s", o->root, sub, name) :
		      sb_xasprintf("%s/%s", o->root, sub);
}

bool svc_outbox_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > SVC_OUTBOX_MAX_NAME || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void svc_outbox_names_free(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

int svc_outbox_list(const struct svc_outbox *o, const char *sub, char ***names_out,
		    size_t *n_out, struct sb_err *err)
{
	char *dir = svc_outbox_path(o, sub, NULL), **names = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = 0;

	if (!d) {
		rc = sb_err_set(err, SB_EIO, errno, "outbox: cannot list '%s': %s", dir,
				strerror(errno));
		free(dir);
		return rc;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == alloc) {
			size_t bytes;

			alloc = alloc ? alloc * 2 : 64;
			if (sb_size_mul(&bytes, alloc, sizeof(*names)) < 0)
				SB_ASSERT(!"outbox listing too large");
			names = sb_xrealloc(names, bytes);
		}
		names[n++] = sb_xstrdup(de->d_name);
	}
	closedir(d);
	free(dir);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	*names_out = names;
	*n_out = n;
	return 0;
}

/* fsync a folder so that a rename into it is durable; failures only cost durability. */
static void sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

void svc_outbox_sync_work(const struct svc_outbox *o)
{
	char *work = svc_outbox_path(o, "work", NULL);

	sync_dir(work);
	free(work);
}

int svc_outbox_claim(const struct svc_outbox *o, const char *name, struct sb_err *err)
{
	int rc = svc_outbox_claim_unsynced(o, name, err);

	if (rc == 0)
		svc_outbox_sync_work(o);
	return rc;
}

int svc_outbox_claim_unsynced(const struct svc_outbox *o, const char *name,
			      struct sb_err *err)
{
	char *from, *to;
	struct stat st;
	int rc = 0;

	if (!svc_outbox_name_ok(name))
		return sb_err_set(err, SB_EINVAL, 0, "outbox: unacceptable act folder name");
	from = svc_outbox_path(o, "new", name);
	to = svc_outbox_path(o, "work", name);
	if (lstat(from, &st) == 0 && S_ISLNK(st.st_mode)) {
		/* Followed, it would make send-bridge read an act from outside the outbox. */
		rc = sb_err_set(err, SB_EINVAL, 0,
				"outbox: '%s' is a symbolic link, not an act folder", name);
	} else if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
		if (errno == ENOENT)
			rc = sb_err_set(err, SB_ENOTFOUND, errno,
					"outbox: act '%s' is no longer in new/", name);
		else if (errno == EEXIST || errno == ENOTEMPTY)
			rc = sb_err_set(err, SB_EINVAL, errno,
					"outbox: an act with id '%s' is already in work/", name);
		else
			rc = sb_err_set(err, SB_EIO, errno, "outbox: cannot claim '%s': %s", name,
					strerror(errno));
	}
	free(from);
	free(to);
	return rc;
}

/* Write path atomically: path.tmp, fsync, rename. */
static int write_atomic(const char *path, const char *text, struct sb_err *err)
{
	char *tmp = sb_xasprintf("%s.tmp", path);
	size_t len = strlen(text), off = 0;
	int fd, rc = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		rc = sb_err_set(err, SB_EIO, errno, "outbox: cannot create '%s': %s", tmp,
				strerror(errno));
		goto cleanup;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = sb_err_set(err, SB_EIO, errno, "outbox: cannot write '%s': %s", tmp,
					strerror(errno));
			break;
		}
		off += (size_t)n;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = sb_err_set(err, SB_EIO, errno, "outbox: cannot sync '%s': %s", tmp,
				strerror(errno));
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = sb_err_set(err, SB_EIO, errno, "outbox: cannot rename '%s': %s", tmp,
				strerror(errno));
	if (rc < 0)
		unlink(tmp);
cleanup:
	free(tmp);
	return rc;
}

int svc_outbox_write_reason(const struct svc_outbox *o, const char *sub, const char *name,
			    const char *reason_json, struct sb_err *err)
{
	char *dir = svc_outbox_path(o, sub, name), *path = NULL;
	struct stat st;
	int rc;

	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		rc = sb_err_set(err, SB_ENOTFOUND, errno,
				"outbox: '%s/%s' is not there", sub, name);
		goto cleanup;
	}
	path = sb_xasprintf("%s/reason.json", dir);
	rc = write_atomic(path, reason_json, err);
cleanup:
	free(path);
	free(dir);
	return rc;
}

int svc_outbox_finish(const struct svc_outbox *o, const char *from, const char *name, bool ok,
		      const char *reason_json, char **final_out, struct sb_err *err)
{
	const char *to_sub = ok ? "done" : "rejected";
	char *src = svc_outbox_path(o, from, name), *dst_dir = svc_outbox_path(o, to_sub, NULL);
	char *final = NULL, *reason = NULL;
	bool is_dir;
	struct stat st;
	int rc = 0;

	if (lstat(src, &st) < 0) {
		rc = sb_err_set(err, errno == ENOENT ? SB_ENOTFOUND : SB_EIO, errno,
				"outbox: '%s/%s': %s", from, name, strerror(errno));
		goto cleanup;
	}
	is_dir = S_ISDIR(st.st_mode);
	if (reason_json && is_dir) {
		reason = sb_xasprintf("%s/reason.json", src);
		rc = write_atomic(reason, reason_json, err);
		if (rc < 0)
			goto cleanup;
	}
	for (unsigned n = 0; n < MAX_SUFFIX; n++) {
		char *dst;

		free(final);
		final = n ? sb_xasprintf("%s.%u", name, n) : sb_xstrdup(name);
		dst = sb_xasprintf("%s/%s", dst_dir, final);
		rc = renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE);
		free(dst);
		if (rc == 0 || (errno != EEXIST && errno != ENOTEMPTY))
			break;
	}
	if (rc < 0) {
		rc = sb_err_set(err, SB_EIO, errno, "outbox: cannot move '%s/%s' to %s/: %s", from,
				name, to_sub, strerror(errno));
		goto cleanup;
	}
	sync_dir(dst_dir);
	if (reason_json && !is_dir) {
		free(reason);
		reason = sb_xasprintf("%s/%s.reason.json", dst_dir, final);
		rc = write_atomic(reason, reason_json, err);
		if (rc < 0)
			goto cleanup;
	}
	if (final_out) {
		*final_out = final;
		final = NULL;
	}
cleanup:
	free(src);
	free(dst_dir);
	free(final);
	free(reason);
	return rc;
}

int svc_outbox_watch(const struct svc_outbox *o, int *fd_out, struct sb_err *err)
{
	char *dir = svc_outbox_path(o, "new", NULL);
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), rc = 0;

	if (fd < 0) {
		rc = sb_err_set(err, SB_EIO, errno, "outbox: inotify: %s", strerror(errno));
	} else if (inotify_add_watch(fd, dir, IN_MOVED_TO | IN_CREATE | IN_ONLYDIR) < 0) {
		rc = sb_err_set(err, SB_EIO, errno, "outbox: cannot watch '%s': %s", dir,
				strerror(errno));
		close(fd);
	} else {
		*fd_out = fd;
	}
	free(dir);
	return rc;
}

int svc_outbox_watch_drain(int fd)
{
	/* Aligned as inotify(7) asks; each read returns whole events. */
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int events = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(void *)p;

			events++;
			p += sizeof(*ev) + ev->len;
		}
	}
	return events;
}
