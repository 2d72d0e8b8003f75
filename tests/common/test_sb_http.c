/*
 * The HTTP layer (common/sb_http.c) over real loopback HTTP against
 * send-sim's admin channel and its fault injection: status as data,
 * headers, Retry-After in both forms, the response ceiling, streaming a
 * request body from a file and a reply body to a file, connection errors,
 * and a streamed upload resent whole after the server dropped a reused
 * connection (a raw loopback server of the test's own).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_http.h"
#include "sb_time.h"
#include "th.h"

static struct th_sim sim;

static int group_setup(void **state)
{
	(void)state;
	sb_http_global_init();
	th_sim_start(&sim, NULL);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	th_sim_stop(&sim);
	sb_http_global_cleanup();
	return 0;
}

static char *url(const char *path)
{
	return sb_xasprintf("%s%s", sim.url, path);
}

static void test_sb_http__get_status_headers_body(void **state)
{
	struct sb_http *h = NULL;
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;
	char *u = url("/_sim/health"), *nf = url("/no/such/path");
	struct sb_http_req req = { "GET", u, NULL, NULL, 0, NULL, NULL, 0, 0 };

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(sb_buf_cstr(&r.body), "{\"status\":\"ok\"}");
	assert_string_equal(sb_http_resp_header(&r, "content-type"), "application/json");
	assert_string_equal(sb_http_resp_header(&r, "CONTENT-TYPE"), "application/json");
	assert_null(sb_http_resp_header(&r, "x-nothing"));
	/* a 404 is a reply, not a transport error; the connection is reused */
	req.url = nf;
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(r.status, 404);
	assert_int_equal(sb_http_status_class(r.status), SB_ENOTFOUND);
	sb_http_resp_release(&r);
	sb_http_free(h);
	free(u);
	free(nf);
}

static void set_faults(struct sb_http *h, const char *json)
{
	char *u = url("/_sim/faults");
	struct sb_http_req req = { "POST", u, NULL, json, strlen(json), NULL, NULL, 0, 0 };
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;

	memset(&r, 0, sizeof(r));
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	if (r.status != 200)
		fail_msg("faults: %ld %s", r.status, sb_buf_cstr(&r.body));
	sb_http_resp_release(&r);
	free(u);
}

static void test_sb_http__injected_429_and_503(void **state)
{
	struct sb_http *h = NULL;
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;
	char *u = url("/no-platform/anything");
	struct sb_http_req req = { "GET", u, NULL, NULL, 0, NULL, NULL, 0, 0 };
	int64_t secs = -1;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	set_faults(h, "{\"pct429\":100,\"retryAfter\":7}");
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(r.status, 429);
	assert_int_equal(sb_http_status_class(r.status), SB_ETEMP);
	assert_int_equal(sb_http_retry_after(sb_http_resp_header(&r, "Retry-After"),
					     sb_now(), &secs), 0);
	assert_int_equal(secs, 7);
	set_faults(h, "{\"pct429\":0,\"failNth\":2}");
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(r.status, 404);
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(r.status, 503);
	assert_int_equal(sb_http_status_class(r.status), SB_ETEMP);
	set_faults(h, "{\"failNth\":0,\"pctDrop\":100}");
	assert_int_equal(sb_http_do(h, &req, &r, &err), SB_ETEMP);
	assert_int_equal(err.code, SB_ETEMP);
	assert_true(err.cause != 0);
	assert_true(strlen(err.msg) > 0);
	set_faults(h, "{\"pctDrop\":0}");
	sb_http_resp_release(&r);
	sb_http_free(h);
	free(u);
}

static void test_sb_http__reply_ceiling(void **state)
{
	struct sb_http_opts o = { .max_body = 8 };
	struct sb_http *h = NULL;
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;
	char *u = url("/_sim/faults");
	struct sb_http_req req = { "GET", u, NULL, NULL, 0, NULL, NULL, 0, 0 };

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sb_http_new(&h, &o, &err), 0);
	assert_int_equal(sb_http_do(h, &req, &r, &err), SB_ETOOBIG);
	assert_int_equal(err.code, SB_ETOOBIG);
	assert_true(r.body.len <= 8);
	sb_http_resp_release(&r);
	sb_http_free(h);
	free(u);
}

static void test_sb_http__body_from_file_and_reply_to_file(void **state)
{
	char *dir = th_tmpdir("http"), *in = sb_xasprintf("%s/in.json", dir);
	char *out = sb_xasprintf("%s/out.json", dir), *u = url("/_sim/faults"), *got;
	struct sb_http *h = NULL;
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;
	struct sb_http_req req = { "POST", u, NULL, NULL, 0, in, out, 0, 0 };
	const char *hdrs[] = { "Content-Type: application/json", NULL };
	size_t len = 0;

	(void)state;
	memset(&r, 0, sizeof(r));
	req.headers = hdrs;
	th_write_str(in, "{\"latencyMs\":0,\"retryAfter\":3}", 0600);
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 0);   /* the 2xx body went to the file */
	got = th_read(out, &len);
	assert_non_null(got);
	assert_int_equal(r.file_len, len);
	assert_non_null(strstr(got, "\"retryAfter\":3"));
	free(got);
	/* an error reply stays in memory to be parsed, and the file is left empty */
	th_write_str(in, "not json", 0600);
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(sb_buf_cstr(&r.body), "JSON object"));
	assert_int_equal(r.file_len, 0);
	/* a missing body file is a local error */
	req.body_file = "/nonexistent/body";
	assert_int_equal(sb_http_do(h, &req, &r, &err), SB_EIO);
	assert_non_null(strstr(err.msg, "/nonexistent/body"));
	sb_http_resp_release(&r);
	sb_http_free(h);
	th_rmrf(dir);
	free(dir); free(in); free(out); free(u);
}

/*
 * A server that answers the first request on a connection, then reads the
 * whole next request and closes without a word (as a server does when it
 * times out an idle connection just as the client reuses it); on the next
 * connection it reads a whole request and reports how many body bytes it got.
 */
struct dropper {
	int fd;
	uint16_t port;
	size_t body_seen;
};

/* Read until the end of the head; returns the body bytes read past it, or -1. */
static ssize_t read_head(int c, char *buf, size_t cap, size_t *content_length)
{
	size_t n = 0;

	*content_length = 0;
	while (n < cap - 1) {
		ssize_t k = read(c, buf + n, cap - 1 - n);
		char *end, *cl;

		if (k <= 0)
			return -1;
		n += (size_t)k;
		buf[n] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		cl = strcasestr(buf, "Content-Length:");
		if (cl && cl < end)
			*content_length = strtoul(cl + 15, NULL, 10);
		return (ssize_t)(n - (size_t)(end + 4 - buf));
	}
	return -1;
}

static void *dropper_main(void *arg)
{
	struct dropper *d = arg;
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	char buf[8192];
	size_t cl = 0;
	ssize_t extra;
	int c = accept(d->fd, NULL, NULL);

	if (c < 0 || read_head(c, buf, sizeof(buf), &cl) < 0 ||
	    write(c, ok, sizeof(ok) - 1) != (ssize_t)sizeof(ok) - 1)
		goto out;
	extra = read_head(c, buf, sizeof(buf), &cl);
	for (size_t got = extra < 0 ? cl : (size_t)extra; got < cl;) {
		ssize_t k = read(c, buf, sizeof(buf));

		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(c);
	c = accept(d->fd, NULL, NULL);
	extra = c < 0 ? -1 : read_head(c, buf, sizeof(buf), &cl);
	if (extra < 0)
		goto out;
	d->body_seen = (size_t)extra;
	while (d->body_seen < cl) {
		ssize_t k = read(c, buf, sizeof(buf));

		if (k <= 0)
			break;
		d->body_seen += (size_t)k;
	}
	if (write(c, ok, sizeof(ok) - 1) < 0)
		d->body_seen = 0;
out:
	if (c >= 0)
		close(c);
	return NULL;
}

static void test_sb_http__upload_resent_after_dropped_connection(void **state)
{
	char *dir = th_tmpdir("http"), *in = sb_xasprintf("%s/big.bin", dir), *u;
	struct sb_http *h = NULL;
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct dropper d = { -1, 0, 0 };
	pthread_t t;
	char *big = sb_xmalloc(300000);
	FILE *f;

	(void)state;
	memset(&r, 0, sizeof(r));
	memset(big, 'x', 300000);
	f = fopen(in, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(big, 1, 300000, f), 300000);
	fclose(f);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d.fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(d.fd >= 0);
	assert_int_equal(bind(d.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(d.fd, 4), 0);
	assert_int_equal(getsockname(d.fd, (struct sockaddr *)&sa, &sl), 0);
	d.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&t, NULL, dropper_main, &d), 0);
	u = sb_xasprintf("http://127.0.0.1:%u/up", (unsigned)d.port);
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	{
		struct sb_http_req first = { "GET", u, NULL, NULL, 0, NULL, NULL, 0, 0 };
		struct sb_http_req up = { "PUT", u, NULL, NULL, 0, in, NULL, 0, 0 };

		assert_int_equal(sb_http_do(h, &first, &r, &err), 0);
		assert_int_equal(r.status, 200);
		sb_http_resp_release(&r);
		memset(&r, 0, sizeof(r));
		if (sb_http_do(h, &up, &r, &err) != 0)
			fail_msg("upload on a dropped reused connection: %s", err.msg);
		assert_int_equal(r.status, 200);
	}
	pthread_join(t, NULL);
	assert_int_equal(d.body_seen, 300000);   /* the whole file, from its first byte */
	sb_http_resp_release(&r);
	sb_http_free(h);
	close(d.fd);
	th_rmrf(dir);
	free(dir); free(in); free(u); free(big);
}

struct sink {
	struct sb_buf got;
	bool fail;
};

static int sink_add(void *ctx, const void *p, size_t len)
{
	struct sink *k = ctx;

	if (k->fail)
		return -1;
	sb_buf_add(&k->got, p, len);
	return 0;
}

static void test_sb_http__reply_to_a_sink(void **state)
{
	struct sb_http *h = NULL;
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;
	char *u = url("/_sim/faults");
	struct sb_http_req req = { .method = "GET", .url = u };
	struct sink k = { SB_BUF_INIT(1 << 16), false };

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	assert_int_equal(sb_http_do_sink(h, &req, &r, sink_add, &k, &err), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 0);   /* the 2xx body went to the sink */
	assert_true(k.got.len > 0);
	assert_int_equal(r.file_len, k.got.len);
	assert_non_null(strstr(sb_buf_cstr(&k.got), "latencyMs"));
	/* the ceiling holds for a sink as for a file */
	req.out_file_max = 4;
	assert_int_equal(sb_http_do_sink(h, &req, &r, sink_add, &k, &err), SB_ETOOBIG);
	/* a sink that gives up stops the transfer: a local error */
	req.out_file_max = 0;
	k.fail = true;
	assert_int_equal(sb_http_do_sink(h, &req, &r, sink_add, &k, &err), SB_EIO);
	sb_buf_release(&k.got);
	sb_http_resp_release(&r);
	sb_http_free(h);
	free(u);
}

static void test_sb_http__connection_refused_is_temporary(void **state)
{
	struct sb_http *h = NULL;
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;
	/* port 1 on loopback: nothing listens there */
	struct sb_http_req req = { "GET", "http://127.0.0.1:1/", NULL, NULL, 0, NULL, NULL, 0, 0 };

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	assert_int_equal(sb_http_do(h, &req, &r, &err), SB_ETEMP);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(err.msg, "127.0.0.1:1"));
	req.url = "gopher://127.0.0.1/";
	assert_int_equal(sb_http_do(h, &req, &r, &err), SB_EINVAL);
	sb_http_resp_release(&r);
	sb_http_free(h);
}

static void test_sb_http__retry_after_forms(void **state)
{
	static const struct { const char *v; int rc; int64_t secs; } c[] = {
		{ "0", 0, 0 },
		{ "120", 0, 120 },
		{ "999999999", 0, 86400 },                       /* capped at one day */
		{ "Sun, 06 Nov 1994 08:49:47 GMT", 0, 10 },     /* IMF-fixdate */
		{ "Sunday, 06-Nov-94 08:49:47 GMT", 0, 10 },    /* RFC 850 */
		{ "Sun Nov  6 08:49:47 1994", 0, 10 },          /* asctime */
		{ "Sun, 06 Nov 1994 08:49:27 GMT", 0, 0 },      /* in the past */
		{ "-5", SB_EINVAL, 0 },
		{ "soon", SB_EINVAL, 0 },
		{ "", SB_EINVAL, 0 },
		{ "12 ", SB_EINVAL, 0 },
	};
	int64_t now = 784111777;   /* Sun, 06 Nov 1994 08:49:37 GMT */

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(c); i++) {
		int64_t secs = -1;
		int rc = sb_http_retry_after(c[i].v, now, &secs);

		if (rc != c[i].rc || (rc == 0 && secs != c[i].secs))
			fail_msg("'%s': rc %d secs %lld", c[i].v, rc, (long long)secs);
	}
	assert_int_equal(sb_http_retry_after(NULL, now, NULL), SB_EINVAL);
}

static int hook_calls;
static bool hook_fails;

static int before(struct sb_err *err)
{
	hook_calls++;
	return hook_fails ? sb_err_set(err, SB_EIO, 0, "store: not durable") : 0;
}

/*
 * The process-wide check runs before every request, from the requesting
 * thread, and a failing one stops the request before anything is sent.
 */
static void test_sb_http__before_request_hook_gates_requests(void **state)
{
	struct sb_http *h = NULL;
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;
	char *u = url("/_sim/health");
	struct sb_http_req req = { "GET", u, NULL, NULL, 0, NULL, NULL, 0, 0 };

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	hook_calls = 0;
	hook_fails = false;
	sb_http_before_request(before);
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(hook_calls, 1);
	sb_http_resp_release(&r);
	hook_fails = true;
	assert_int_equal(sb_http_do(h, &req, &r, &err), SB_EIO);
	assert_string_equal(err.msg, "store: not durable");
	assert_int_equal(r.status, 0);
	assert_int_equal(hook_calls, 2);
	sb_http_before_request(NULL);
	sb_err_clear(&err);
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(hook_calls, 2);
	sb_http_resp_release(&r);
	sb_http_free(h);
	free(u);
}

static int after_calls;
static char after_platform[16];
static long after_status;
static int after_rc;

static void after(const char *platform, long status, int rc)
{
	after_calls++;
	snprintf(after_platform, sizeof(after_platform), "%s", platform ? platform : "(none)");
	after_status = status;
	after_rc = rc;
}

/*
 * The process-wide report follows every exchange with the handle's platform,
 * the status and the result: replies of any status, and failures with no
 * reply; a request the before-request check stopped never went out.
 */
static void test_sb_http__after_request_hook_reports_each_exchange(void **state)
{
	struct sb_http *h = NULL, *anon = NULL;
	struct sb_http_resp r;
	struct sb_err err = SB_ERR_INIT;
	char *u = url("/_sim/health"), *nf = url("/no/such/path");
	struct sb_http_req req = { "GET", u, NULL, NULL, 0, NULL, NULL, 0, 0 };

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sb_http_new(&h, &(struct sb_http_opts){ .platform = "send" }, &err), 0);
	assert_int_equal(sb_http_new(&anon, NULL, &err), 0);
	after_calls = 0;
	sb_http_after_request(after);
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(after_calls, 1);
	assert_string_equal(after_platform, "send");
	assert_int_equal(after_status, 200);
	assert_int_equal(after_rc, 0);
	req.url = nf;
	assert_int_equal(sb_http_do(anon, &req, &r, &err), 0);
	assert_int_equal(after_calls, 2);
	assert_string_equal(after_platform, "(none)");
	assert_int_equal(after_status, 404);
	req.url = "http://127.0.0.1:1/";
	assert_int_equal(sb_http_do(h, &req, &r, &err), SB_ETEMP);
	assert_int_equal(after_calls, 3);
	assert_string_equal(after_platform, "send");
	assert_int_equal(after_status, 0);
	assert_int_equal(after_rc, SB_ETEMP);
	hook_fails = true;
	sb_http_before_request(before);
	assert_int_equal(sb_http_do(h, &req, &r, &err), SB_EIO);
	assert_int_equal(after_calls, 3);
	sb_http_before_request(NULL);
	sb_http_after_request(NULL);
	req.url = u;
	assert_int_equal(sb_http_do(h, &req, &r, &err), 0);
	assert_int_equal(after_calls, 3);
	sb_http_resp_release(&r);
	sb_http_free(h);
	sb_http_free(anon);
	free(u);
	free(nf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sb_http__get_status_headers_body),
		cmocka_unit_test(test_sb_http__injected_429_and_503),
		cmocka_unit_test(test_sb_http__reply_ceiling),
		cmocka_unit_test(test_sb_http__body_from_file_and_reply_to_file),
		cmocka_unit_test(test_sb_http__reply_to_a_sink),
		cmocka_unit_test(test_sb_http__connection_refused_is_temporary),
		cmocka_unit_test(test_sb_http__upload_resent_after_dropped_connection),
		cmocka_unit_test(test_sb_http__retry_after_forms),
		cmocka_unit_test(test_sb_http__before_request_hook_gates_requests),
		cmocka_unit_test(test_sb_http__after_request_hook_reports_each_exchange),
	};
	return cmocka_run_group_tests_name("sb_http", tests, group_setup, group_teardown);
}
