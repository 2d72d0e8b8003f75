/*
 * Test helpers: see th.h. Failures here abort the test with a message:
 * a helper that cannot set up is a broken test, never a pass.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sb_common.h"
#include "th.h"

static void die(const char *what, const char *arg)
{
	fprintf(stderr, "test helper: %s '%s': %s\n", what, arg ? arg : "", strerror(errno));
	abort();
}

/*
 * One record per thing a scope releases: a child (pid, with send-sim's
 * folder name) or a deferred call. Records of children stopped by the test
 * itself stay with pid 0 until their scope ends.
 */
struct item {
	pid_t pid;
	char *dir;
	void (*fn)(void *);
	void *arg;
};

static struct item *items;
static size_t n_items, cap_items;
/* This process forked through th_fork, so it is the subreaper of its children's children. */
static bool adopting;
/* Where each open scope starts in items; deeper than a group and a test is a bug. */
static size_t marks[8];
static size_t n_marks;

static void release_all(void)
{
	while (n_marks)
		th_scope_end();
	th_scope_end();
}

static void add_item(const struct item *it)
{
	static bool at_exit;

	if (!at_exit) {
		/* Runs before LeakSanitizer's check at exit, which was registered first. */
		atexit(release_all);
		at_exit = true;
	}
	if (n_items == cap_items) {
		cap_items = cap_items ? 2 * cap_items : 32;
		items = sb_xrealloc(items, cap_items * sizeof(*items));
	}
	items[n_items++] = *it;
}

static struct item *find_child(pid_t pid)
{
	for (size_t i = 0; i < n_items; i++)
		if (items[i].pid == pid)
			return &items[i];
	return NULL;
}

/* The test stopped pid itself: the scope must not signal it again (its pid may be reused). */
static void forget_child(pid_t pid)
{
	struct item *it = find_child(pid);

	if (it) {
		it->pid = 0;
		it->dir = NULL;
	}
}

static void release(struct item *it)
{
	if (it->pid > 0) {
		/*
		 * No SIGTERM grace: the test is over, and a daemon stuck in
		 * shutdown must not hang it.
		 */
		kill(it->pid, SIGKILL);
		while (waitpid(it->pid, NULL, 0) < 0 && errno == EINTR)
			;
		fprintf(stderr,
			"test helper: killed pid %d, still running when its test ended%s%s\n",
			(int)it->pid, it->dir ? "; its folder is left: " : "",
			it->dir ? it->dir : "");
	}
	free(it->dir);
	if (it->fn)
		it->fn(it->arg);
}

void th_scope_begin(void)
{
	if (n_marks == sizeof(marks) / sizeof(marks[0]))
		die("too many nested scopes", NULL);
	marks[n_marks++] = n_items;
}

char th_proc_state(pid_t pid, pid_t *ppid_out)
{
	char path[64], text[1024], state = 0;
	const char *end;
	int fd, ppid = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	text[n > 0 ? n : 0] = '\0';
	/* The command name, in parentheses, may itself hold spaces and ')'. */
	end = strrchr(text, ')');
	if (!end || sscanf(end + 1, " %c %d", &state, &ppid) != 2)
		return 0;
	if (ppid_out)
		*ppid_out = ppid;
	return state;
}

/*
 * Reap the ended children that no scope records: orphans adopted as their
 * subreaper (their parent, a child of this process, died without its
 * scopes), already killed by PR_SET_PDEATHSIG when the helpers forked them.
 * Those still running are left to a later scope's end.
 */
static void reap_orphans(void)
{
	DIR *d = adopting ? opendir("/proc") : NULL;
	pid_t self = getpid();
	struct dirent *e;

	while (d && (e = readdir(d))) {
		uint64_t n;
		pid_t pid, ppid = 0;

		if (sb_parse_u64z(e->d_name, INT32_MAX, &n) < 0)
			continue;
		pid = (pid_t)n;
		if (th_proc_state(pid, &ppid) != 'Z' || ppid != self || find_child(pid))
			continue;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			fprintf(stderr, "test helper: reaped pid %d, orphaned by its parent\n",
				(int)pid);
	}
	if (d)
		closedir(d);
}

void th_scope_end(void)
{
	size_t mark = n_marks ? marks[--n_marks] : 0;

	/* Last in, first out: a handle is closed before the memory it was made from. */
	while (n_items > mark)
		release(&items[--n_items]);
	reap_orphans();
}

int th_setup(void **state)
{
	(void)state;
	th_scope_begin();
	return 0;
}

int th_teardown(void **state)
{
	(void)state;
	th_scope_end();
	return 0;
}

pid_t th_fork(void)
{
	pid_t parent = getpid(), pid;

	/*
	 * The orphans of a child killed without its scopes come to this process
	 * rather than to pid 1, which in a container may never reap them.
	 */
	if (!adopting && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die("prctl PR_SET_CHILD_SUBREAPER", NULL);
	adopting = true;
	pid = fork();
	if (pid < 0)
		die("fork", NULL);
	if (pid == 0) {
		/*
		 * The parent's children are not the child's to stop; its other
		 * records (copies) are released with the child's outermost scope.
		 * Nor is the child a subreaper (fork does not pass it on) before
		 * it forks through the helpers itself.
		 */
		for (size_t i = 0; i < n_items; i++)
			items[i].pid = 0;
		n_marks = 0;
		adopting = false;
		/*
		 * The check after prctl closes the window in which the parent
		 * died before the death signal was asked for.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(127);
		return 0;
	}
	add_item(&(struct item){ .pid = pid });
	return pid;
}

void th_defer(void (*fn)(void *), void *arg)
{
	add_item(&(struct item){ .fn = fn, .arg = arg });
}

void *th_own(void *p)
{
	th_defer(free, p);
	return p;
}

const char *th_build_dir(void)
{
	const char *b = getenv("SB_BUILD");

	return b && *b ? b : "build/asan";
}

char *th_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *tmpl = sb_xasprintf("%s/sb-%s-XXXXXX", base && *base ? base : "/tmp", tag);

	if (!mkdtemp(tmpl))
		die("mkdtemp", tmpl);
	return tmpl;
}

void th_rmrf(const char *path)
{
	const char *argv[] = { "/bin/rm", "-rf", path, NULL };

	if (path && th_run(argv, NULL, NULL) != 0)
		die("rm -rf", path);
}

void th_mkdirs(const char *path)
{
	const char *argv[] = { "/bin/mkdir", "-p", path, NULL };

	if (th_run(argv, NULL, NULL) != 0)
		die("mkdir -p", path);
}

void th_copy_tree(const char *src, const char *dst)
{
	const char *argv[] = { "/bin/cp", "-a", src, dst, NULL };

	if (th_run(argv, NULL, NULL) != 0)
		die("cp -a", src);
}

void th_write(const char *path, const void *content, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0)
		die("create", path);
	if (len && write(fd, content, len) != (ssize_t)len)
		die("write", path);
	if (fchmod(fd, mode) < 0)
		die("chmod", path);
	close(fd);
}

void th_write_str(const char *path, const char *content, mode_t mode)
{
	th_write(path, content, strlen(content), mode);
}

char *th_read(const char *path, size_t *len_out)
{
	struct sb_buf b = SB_BUF_INIT(512u * 1024u * 1024u);
	char chunk[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (sb_buf_add(&b, chunk, (size_t)n) < 0)
			die("file too large", path);
	close(fd);
	return sb_buf_detach(&b, len_out);
}

char *th_fixture(const char *rel)
{
	const char *base = getenv("SB_FIXTURES");

	return sb_xasprintf("%s/%s", base && *base ? base : "fixtures", rel);
}

char *th_shared(const char *rel)
{
	const char *base = getenv("SB_SHARED");
	char *p = sb_xasprintf("%s/%s", base && *base ? base : "../shared", rel);
	char *abs = realpath(p, NULL);

	/*
	 * Absolute: the path often goes into a configuration written in a
	 * temporary folder, where a relative one would be read against that
	 * folder (sb_cfg resolves paths against the file's own folder).
	 */
	free(p);
	return abs;
}

static void drain(int fd, struct sb_buf *b)
{
	char chunk[4096];
	ssize_t n;

	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (b)
			sb_buf_add(b, chunk, (size_t)n);
}

/* execv wants char *const[]: give it owned copies rather than casting const away. */
static void exec_copy(const char *const argv[])
{
	size_t n = 0;
	char **v;

	while (argv[n])
		n++;
	v = sb_xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = sb_xstrdup(argv[i]);
	execv(v[0], v);
	_exit(127);
}

int th_run(const char *const argv[], struct sb_buf *out, struct sb_buf *err)
{
	int po[2], pe[2], status;
	pid_t pid;

	if (pipe(po) < 0 || pipe(pe) < 0)
		die("pipe", argv[0]);
	pid = th_fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		dup2(devnull, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		exec_copy(argv);
	}
	close(po[1]);
	close(pe[1]);
	/* stderr is drained after stdout: fine for the short outputs tests produce. */
	drain(po[0], out);
	drain(pe[0], err);
	close(po[0]);
	close(pe[0]);
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid", argv[0]);
	forget_child(pid);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

void th_sim_start(struct th_sim *s, const char *const *extra)
{
	char *bin = sb_xasprintf("%s/send-sim", th_build_dir());
	char *port_file;
	const char *argv[32];
	size_t n = 0;

	memset(s, 0, sizeof(*s));
	s->dir = th_tmpdir("sim");
	port_file = sb_xasprintf("%s/port", s->dir);
	argv[n++] = bin;
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--port-file";
	argv[n++] = port_file;
	for (const char *const *e = extra; e && *e && n < 30; e++)
		argv[n++] = *e;
	argv[n] = NULL;
	s->pid = th_fork();
	if (s->pid == 0) {
		char *log = sb_xasprintf("%s/sim.log", s->dir);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		exec_copy(argv);
	}
	for (int i = 0; i < 500; i++) {
		char *txt = th_read(port_file, NULL);
		struct timespec ts = { 0, 20 * 1000000L };

		if (txt) {
			uint64_t port = 0;

			txt[strcspn(txt, "\n")] = '\0';
			if (sb_parse_u64z(txt, 65535, &port) == 0)
				s->port = (unsigned)port;
			free(txt);
			break;
		}
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
			die("send-sim exited at start", bin);
		nanosleep(&ts, NULL);
	}
	if (!s->port)
		die("send-sim did not start", bin);
	/* The folder is freed with the child when the test ends before th_sim_stop. */
	find_child(s->pid)->dir = s->dir;
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", s->port);
	free(port_file);
	free(bin);
}

void th_sim_stop(struct th_sim *s)
{
	th_kill(s->pid);
	s->pid = 0;
	th_rmrf(s->dir);
	free(s->dir);
	s->dir = NULL;
}

pid_t th_spawn(const char *const argv[], const char *log_path)
{
	pid_t pid = th_fork();

	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int devnull = open("/dev/null", O_RDONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (devnull >= 0)
			dup2(devnull, 0);
		exec_copy(argv);
	}
	return pid;
}

unsigned th_free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned port = 0;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

bool th_wait_port(unsigned port)
{
	for (int i = 0; i < 250; i++) {
		struct sockaddr_in sin;
		struct timespec ts = { 0, 20 * 1000000L };
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
			close(fd);
			return true;
		}
		if (fd >= 0)
			close(fd);
		nanosleep(&ts, NULL);
	}
	return false;
}

void th_kill(pid_t pid)
{
	if (pid > 0)
		th_child_stop(&pid, SIGTERM);
}

/* The child *pid was reaped with status: the scope forgets it; its exit status or 128 + sig. */
static int child_reaped(pid_t *pid, int status)
{
	forget_child(*pid);
	*pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int th_child_stop(pid_t *pid, int sig)
{
	int status = 0;

	if (kill(*pid, sig) < 0 || waitpid(*pid, &status, 0) != *pid)
		die("stop child", NULL);
	return child_reaped(pid, status);
}

int th_child_poll(pid_t *pid)
{
	int status = 0;
	pid_t got = waitpid(*pid, &status, WNOHANG);

	if (got < 0)
		die("poll child", NULL);
	return got == *pid ? child_reaped(pid, status) : -1;
}
