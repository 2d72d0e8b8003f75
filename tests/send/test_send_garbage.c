/*
 * The SEND client against a platform that answers garbage: a loopback
 * server of the test's own gives every request the same canned reply (not
 * JSON, truncated JSON, the wrong shape, wrong types, invalid UTF-8, nesting
 * deeper than the parser takes, a body over the ceiling, an HTML error page).
 * Every call that reads a reply must fail with a message, never crash (the
 * tests run under ASan and UBSan) and never take garbage for an answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "send_fixture.h"

struct canned {
	int fd;
	unsigned port;
	pthread_t thread;
	pthread_mutex_t lock;
	char *reply;          /* the whole HTTP reply, headers and body */
	size_t reply_len;
	unsigned served;
	bool stop;
};

struct gx {
	struct sf f;          /* send-sim, for the notification the create call sends */
	struct canned srv;
	struct send_client *c;   /* the client whose base_url is the canned server */
	struct sf_notif x;
};

/* Read a request up to the end of its headers and its Content-Length body, at most 1 MiB. */
static void read_request(int c)
{
	static char buf[1 << 20];
	size_t len = 0, want = 0;
	char *end = NULL;

	while (len < sizeof(buf) - 1) {
		struct pollfd p = { .fd = c, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 2000) <= 0)
			return;
		n = read(c, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		buf[len] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			const char *cl = strcasestr(buf, "\r\ncontent-length:");

			want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
		}
		if (end && len >= want)
			return;
	}
}

static void *canned_main(void *arg)
{
	struct canned *s = arg;

	for (;;) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		size_t off = 0;
		int c;

		pthread_mutex_lock(&s->lock);
		if (s->stop) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		pthread_mutex_unlock(&s->lock);
		if (poll(&p, 1, 50) <= 0)
			continue;
		c = accept(s->fd, NULL, NULL);
		if (c < 0)
			continue;
		read_request(c);
		pthread_mutex_lock(&s->lock);
		s->served++;
		while (off < s->reply_len) {
			ssize_t n = write(c, s->reply + off, s->reply_len - off);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
		pthread_mutex_unlock(&s->lock);
		close(c);
	}
}

static void canned_set(struct canned *s, long status, const char *type, const char *body,
		       size_t body_len)
{
	struct sb_buf b = SB_BUF_INIT(32u << 20);

	sb_buf_addf(&b, "HTTP/1.1 %ld Whatever\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n", status, type, body_len);
	sb_buf_add(&b, body, body_len);
	pthread_mutex_lock(&s->lock);
	free(s->reply);
	s->reply = sb_buf_detach(&b, &s->reply_len);
	s->served = 0;
	pthread_mutex_unlock(&s->lock);
}

/* Requests answered since the last call. */
static unsigned canned_served(struct canned *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->served;
	s->served = 0;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static int setup(void **state)
{
	struct gx *g = sb_xcalloc(1, sizeof(*g));
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	struct sb_err err = SB_ERR_INIT;
	char sim_url[sizeof(g->f.sim.url)];

	sf_start(&g->f, NULL);
	sf_notif_init(&g->f, &g->x, NULL, NULL);
	if (sf_upload(&g->f, &g->x, &err) < 0) {
		fprintf(stderr, "upload: %s\n", err.msg);
		abort();
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g->srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(g->srv.fd >= 0);
	assert_int_equal(bind(g->srv.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(g->srv.fd, 16), 0);
	assert_int_equal(getsockname(g->srv.fd, (struct sockaddr *)&a, &len), 0);
	g->srv.port = ntohs(a.sin_port);
	pthread_mutex_init(&g->srv.lock, NULL);
	canned_set(&g->srv, 200, "application/json", "{}", 2);
	assert_int_equal(pthread_create(&g->srv.thread, NULL, canned_main, &g->srv), 0);
	/* A second client, configured like the first but with the canned server as SEND. */
	memcpy(sim_url, g->f.sim.url, sizeof(sim_url));
	snprintf(g->f.sim.url, sizeof(g->f.sim.url), "http://127.0.0.1:%u", g->srv.port);
	assert_int_equal(sf_config(&g->f, NULL, NULL, &err), 0);
	assert_int_equal(send_client_new(&g->c, g->f.cfg, NULL, &err), 0);
	memcpy(g->f.sim.url, sim_url, sizeof(sim_url));
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct gx *g = *state;

	pthread_mutex_lock(&g->srv.lock);
	g->srv.stop = true;
	pthread_mutex_unlock(&g->srv.lock);
	pthread_join(g->srv.thread, NULL);
	close(g->srv.fd);
	pthread_mutex_destroy(&g->srv.lock);
	free(g->srv.reply);
	send_client_free(g->c);
	sf_notif_release(&g->x);
	sf_stop(&g->f);
	free(g);
	return 0;
}

enum call {
	C_UPLOAD, C_CREATE, C_STATUS, C_NOTIFICATION, C_FACTS, C_FACT_DOWNLOAD, C_ATTACHMENT,
	C_PRICE, C_STREAM_CREATE, C_STREAM_FIND, C_STREAM_DISABLED, C_STREAM_POLL, C_COUNT
};

static const char *const call_names[C_COUNT] = {
	"upload", "create", "request status", "notification", "legal facts list",
	"legal fact download", "attachment download", "price", "stream create", "stream find",
	"stream disabled", "stream poll",
};

static int no_store(void *ctx, const struct send_event *ev, size_t n, struct sb_err *err)
{
	(void)ev;
	(*(size_t *)ctx) += n;
	return sb_err_set(err, SB_EINTERNAL, 0, "garbage reached the store (%zu events)", n);
}

/* Run one client call against the canned reply; its result, with err filled. */
static int run(struct gx *g, enum call k, struct sb_err *err)
{
	struct send_retry r = g->f.retry;
	char *out = sb_xasprintf("%s/garbage.out", g->f.dir);
	int rc = SB_EINTERNAL;

	r.max_attempts = 1;   /* garbage is not worth retrying here */

	switch (k) {
	case C_UPLOAD: {
		struct send_upload u = g->x.up[0];

		rc = send_files_upload(g->c, &u, 1, &r, err);
		break;
	}
	case C_CREATE: {
		char id[SEND_REQUEST_ID_MAX] = "";

		rc = send_notification_create(g->c, &g->x.n, &r, id, NULL, err);
		break;
	}
	case C_STATUS: {
		struct send_request_status st;

		rc = send_request_status_get(g->c, "UkVRLTIwMjYtMDAwMQ==", &st, err);
		break;
	}
	case C_NOTIFICATION: {
		struct send_sent_notification *n = NULL;

		rc = send_notification_get(g->c, "ABCD-EFGH-IJKL-202612-M-1", &n, err);
		send_sent_notification_free(n);
		break;
	}
	case C_FACTS: {
		struct send_legal_fact *lf = NULL;
		size_t n = 0;

		rc = send_legal_facts_list(g->c, "ABCD-EFGH-IJKL-202612-M-1", &lf, &n, err);
		send_legal_facts_free(lf, n);
		break;
	}
	case C_FACT_DOWNLOAD:
		rc = send_legal_fact_download(g->c, "ABCD-EFGH-IJKL-202612-M-1",
					      "safestorage://PN_LEGAL_FACTS-0001.pdf", out, 0, &r,
					      NULL, NULL, err);
		break;
	case C_ATTACHMENT:
		rc = send_attachment_download(g->c, "ABCD-EFGH-IJKL-202612-M-1",
					      &(struct send_attachment_sel){ SEND_ATT_DOCUMENT, 0,
									     -1 },
					      NULL, out, 0, &r, NULL, err);
		break;
	case C_PRICE: {
		struct send_price p;

		rc = send_price_get(g->c, "302010000000001001", &p, err);
		break;
	}
	case C_STREAM_CREATE: {
		char id[37];

		rc = send_stream_create(g->c, id, err);
		break;
	}
	case C_STREAM_FIND: {
		char id[37];

		rc = send_stream_find(g->c, send_stream_title(g->c), id, err);
		break;
	}
	case C_STREAM_DISABLED: {
		bool disabled = false;

		rc = send_stream_disabled(g->c, "11111111-2222-4333-8444-555555555555", &disabled,
					  err);
		break;
	}
	case C_STREAM_POLL: {
		char cursor[SEND_EVENT_ID_MAX] = "";
		size_t stored = 0;
		long wait_ms = 0;

		rc = send_stream_poll(g->c, "11111111-2222-4333-8444-555555555555", cursor,
				      no_store, &stored, NULL, &wait_ms, err);
		/* Garbage never reaches the store, and the cursor does not move. */
		assert_int_equal(stored, 0);
		assert_string_equal(cursor, "");
		break;
	}
	case C_COUNT:
		break;
	}
	free(out);
	return rc;
}

static void expect_failure(struct gx *g, const char *what)
{
	for (int k = 0; k < C_COUNT; k++) {
		struct sb_err err = SB_ERR_INIT;
		int rc = run(g, (enum call)k, &err);

		if (rc >= 0)
			fail_msg("%s: %s took it for an answer", what, call_names[k]);
		if (!err.msg[0])
			fail_msg("%s: %s failed (%d) without a message", what, call_names[k], rc);
		if (canned_served(&g->srv) == 0)
			fail_msg("%s: %s never asked the server", what, call_names[k]);
	}
}

static void test_send_garbage__replies_that_are_not_json(void **state)
{
	static const char *const bodies[] = {
		"", "not json", "<html><body>It works!</body></html>", "{\"truncated\":",
		"{\"a\":1}{\"b\":2}", "\"just a string\"", "null", "42",
	};
	struct gx *g = *state;
	struct sb_err err = SB_ERR_INIT;

	for (size_t i = 0; i < SB_ARRAY_SIZE(bodies); i++) {
		canned_set(&g->srv, 200, "application/json", bodies[i], strlen(bodies[i]));
		expect_failure(g, bodies[i]);
	}
	/* The message names the call, without its query (a request id, a protocol number). */
	assert_int_equal(run(g, C_STATUS, &err), SB_ETEMP);
	assert_string_equal(err.msg, "GET /delivery/v2.5/requests: unreadable reply from SEND");
}

/*
 * JSON, but not what was asked: an array for an object and an object for an
 * array, fields of the wrong type, text that is not UTF-8.
 */
static void test_send_garbage__json_of_the_wrong_shape(void **state)
{
	static const char *const bodies[] = {
		"[1, \"two\", null, {}]",
		"{\"notificationRequestId\":5,\"notificationRequestStatus\":[],"
		"\"iun\":{},\"retryAfter\":\"soon\",\"timeline\":\"none\","
		"\"notificationStatusHistory\":7,\"streamId\":false,\"disabledDate\":3,"
		"\"url\":9,\"contentLength\":\"big\",\"key\":[],\"totalPrice\":\"free\","
		"\"sha256\":1,\"secret\":{},\"httpMethod\":2}",
		"{\"iun\":\"\xff\xfe\",\"streamId\":\"\xc3\x28\"}",
	};
	struct gx *g = *state;

	for (size_t i = 0; i < SB_ARRAY_SIZE(bodies); i++) {
		canned_set(&g->srv, 200, "application/json", bodies[i], strlen(bodies[i]));
		expect_failure(g, bodies[i]);
	}
}

/* Nesting deeper than the parser takes, and a body over the reply ceiling. */
static void test_send_garbage__too_deep_and_too_big(void **state)
{
	struct gx *g = *state;
	size_t deep = 100000, big = SB_MAX_JSON_BODY + 4096;
	char *b = sb_xmalloc(big);

	memset(b, '[', deep);
	canned_set(&g->srv, 200, "application/json", b, deep);
	expect_failure(g, "100000 [");
	b[0] = '"';
	memset(b + 1, 'a', big - 2);
	b[big - 1] = '"';
	canned_set(&g->srv, 200, "application/json", b, big);
	expect_failure(g, "a string over the ceiling");
	free(b);
}

/* An error status whose body is not SEND's problem JSON still fails with the status named. */
static void test_send_garbage__error_pages_that_are_not_problems(void **state)
{
	static const char page[] = "<html><h1>502 Bad Gateway</h1></html>";
	struct gx *g = *state;

	canned_set(&g->srv, 400, "text/html", page, strlen(page));
	expect_failure(g, "400 html");
	canned_set(&g->srv, 502, "text/html", page, strlen(page));
	expect_failure(g, "502 html");
	canned_set(&g->srv, 400, "application/problem+json", "{\"status\":\"x\",\"errors\":7}",
		   strlen("{\"status\":\"x\",\"errors\":7}"));
	expect_failure(g, "400 problem of the wrong shape");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_garbage__replies_that_are_not_json),
		cmocka_unit_test(test_send_garbage__json_of_the_wrong_shape),
		cmocka_unit_test(test_send_garbage__too_deep_and_too_big),
		cmocka_unit_test(test_send_garbage__error_pages_that_are_not_problems),
	};
	return cmocka_run_group_tests_name("send_garbage", tests, setup, teardown);
}
