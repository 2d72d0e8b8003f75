/*
 * Small pieces shared by the agid/ checks: the findings list, the clock
 * that enforces the per-file time budget, and read-only file mapping (so a
 * 200 MB PDF is not copied to be checked and hashed).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sb_common.h"
#include "agid_int.h"

void agid_findings_vadd(struct agid_finding **list, size_t *n, size_t *dropped, const char *clause,
			int page, int obj, const char *fmt, va_list ap)
{
	struct agid_finding f;

	memset(&f, 0, sizeof(f));
	snprintf(f.clause, sizeof(f.clause), "%s", clause);
	f.page = page;
	f.obj = obj;
	vsnprintf(f.msg, sizeof(f.msg), fmt, ap);
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*list)[i].clause, f.clause) && !strcmp((*list)[i].msg, f.msg) &&
		    (*list)[i].obj == obj && (*list)[i].page == page)
			return;
	if (*n >= AGID_MAX_FINDINGS) {
		(*dropped)++;
		return;
	}
	if (!*list)
		SB_ALLOC_ARRAY(*list, AGID_MAX_FINDINGS);
	(*list)[(*n)++] = f;
}

void agid_findings_add(struct agid_finding **list, size_t *n, size_t *dropped, const char *clause,
		       int page, int obj, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	agid_findings_vadd(list, n, dropped, clause, page, obj, fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void agid_clock_start(struct agid_clock *c, unsigned budget_ms)
{
	c->deadline_ms = now_ms() + budget_ms;
}

bool agid_clock_expired(const struct agid_clock *c)
{
	return now_ms() >= c->deadline_ms;
}

unsigned agid_clock_left_ms(const struct agid_clock *c)
{
	uint64_t now = now_ms();

	return now >= c->deadline_ms ? 1u : (unsigned)(c->deadline_ms - now);
}

/*
 * Files up to this size are read, not mapped: in the daemon's threads an
 * munmap costs a TLB shootdown on every other core, more than reading a
 * typical act (about 100 KB). Larger ones are mapped, so that memory does
 * not grow with a 200 MB document.
 */
#define AGID_READ_MAX (1024 * 1024)

static int read_whole(int fd, size_t len, struct agid_map *m, struct sb_err *err)
{
	unsigned char *buf = sb_xmalloc(len);
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : 0;

			free(buf);
			return sb_err_set(err, SB_EIO, e, "cannot read document: %s",
					  n < 0 ? strerror(e) : "it shrank while being read");
		}
		got += (size_t)n;
	}
	m->data = buf;
	m->len = len;
	return 0;
}

int agid_map_file(struct agid_map *m, const char *path, uint64_t max, struct sb_err *err)
{
	struct stat st;
	void *p;
	int fd;

	m->data = NULL;
	m->len = 0;
	m->mapped = false;
	/* O_NONBLOCK: a named pipe is refused below, not waited on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return sb_err_set(err, errno == ENOENT ? SB_ENOTFOUND : SB_EIO, errno,
				  "cannot open document: %s", strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return sb_err_set(err, SB_EIO, errno, "document is not a regular file");
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return sb_err_set(err, SB_ETOOBIG, 0,
				  "document is %lld bytes, above the limit of %llu",
				  (long long)st.st_size, (unsigned long long)max);
	}
	if (st.st_size == 0) {
		close(fd);
		return 0;
	}
	if (st.st_size <= AGID_READ_MAX) {
		int rc = read_whole(fd, (size_t)st.st_size, m, err);

		close(fd);
		return rc;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return sb_err_set(err, SB_EIO, errno, "cannot map document: %s", strerror(errno));
	m->data = p;
	m->len = (size_t)st.st_size;
	m->mapped = true;
	return 0;
}

void agid_unmap(struct agid_map *m)
{
	/* casting away const: the memory is ours, read-only, and ends here */
	if (m && m->data && m->mapped)
		munmap((void *)(uintptr_t)m->data, m->len);
	else if (m)
		free((void *)(uintptr_t)m->data);
	if (m) {
		m->data = NULL;
		m->len = 0;
		m->mapped = false;
	}
}
