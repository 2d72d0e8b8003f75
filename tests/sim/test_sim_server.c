/*
 * send-sim's server under concurrent calls, over real loopback HTTP: a
 * reply must not depend on simulator state that another request can change
 * after the handler has released the lock (the latency sleep comes after
 * the handler). The ASan build of `make test` turns a reply that still
 * points into moved state into a crash of send-sim, which these tests see
 * as a missing reply. Also the SEND faults that no other test of send-sim
 * itself covers (--send-stream-get-fault).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_http.h"
#include "sb_json.h"
#include "th.h"
#include "th_platform.h"

/* Long enough that the other calls of a test surely land inside one call's sleep. */
#define LATENCY_MS "400"

static const char *const key_hdrs[] = { "x-api-key: sim-send-key",
					"Content-Type: application/json", NULL };
static const char pdf[] = "%PDF-1.4 send-sim server test\n";

struct call {
	const char *base;
	const char *method;
	char path[256];
	const char *const *hdrs;
	const char *body;
	long status;
	char content_type[64];
	struct sb_buf reply;
};

static void call_do(struct call *c)
{
	struct sb_http *h = NULL;
	struct sb_http_resp r = { 0 };
	char *url = sb_xasprintf("%s%s", c->base, c->path);
	const char *ct;

	sb_buf_init(&c->reply, 1024 * 1024);
	c->status = -1;
	c->content_type[0] = '\0';
	if (sb_http_new(&h, NULL, NULL) < 0)
		abort();
	if (sb_http_do(h, &(struct sb_http_req){ .method = c->method, .url = url,
						 .headers = c->hdrs, .body = c->body,
						 .body_len = c->body ? strlen(c->body) : 0 },
		       &r, NULL) == 0) {
		c->status = r.status;
		ct = sb_http_resp_header(&r, "Content-Type");
		snprintf(c->content_type, sizeof(c->content_type), "%s", ct ? ct : "");
		sb_buf_add(&c->reply, r.body.buf ? r.body.buf : "", r.body.len);
	}
	sb_http_resp_release(&r);
	sb_http_free(h);
	free(url);
}

static void *call_thread(void *arg)
{
	call_do(arg);
	return NULL;
}

static long simple(const struct th_sim *sim, const char *method, const char *path,
		   const char *const *hdrs, const char *body, struct sb_buf *out)
{
	struct call c = { .base = sim->url, .method = method, .hdrs = hdrs, .body = body };
	long st;

	snprintf(c.path, sizeof(c.path), "%s", path);
	call_do(&c);
	if (out)
		sb_buf_add(out, c.reply.buf ? c.reply.buf : "", c.reply.len);
	st = c.status;
	sb_buf_release(&c.reply);
	return st;
}

/* Platform calls seen so far (GET /_sim/faults, never delayed). */
static long calls_seen(const struct th_sim *sim)
{
	struct sb_buf b = SB_BUF_INIT(4096);
	json_t *j = NULL;
	long n = -1;

	if (simple(sim, "GET", "/_sim/faults", NULL, NULL, &b) == 200 &&
	    sb_json_parse(b.buf, b.len, 4096, "faults", &j, NULL) == 0)
		n = (long)json_integer_value(json_object_get(j, "calls"));
	json_decref(j);
	sb_buf_release(&b);
	return n;
}

/* A preload body of n PDF items with the digest of pdf[]. */
static char *preload_body(int n)
{
	unsigned char d[SB_SHA256_LEN];
	struct sb_buf sha = SB_BUF_INIT(64), b = SB_BUF_INIT(65536);
	char *out;

	sb_sha256(pdf, strlen(pdf), d);
	sb_base64_encode(d, sizeof(d), &sha);
	sb_buf_adds(&b, "[");
	for (int i = 0; i < n; i++)
		sb_buf_addf(&b, "%s{\"preloadIdx\":\"i%d\",\"contentType\":\"application/pdf\","
			    "\"sha256\":\"%s\"}", i ? "," : "", i, sb_buf_cstr(&sha));
	sb_buf_adds(&b, "]");
	out = sb_xstrdup(sb_buf_cstr(&b));
	sb_buf_release(&sha);
	sb_buf_release(&b);
	return out;
}

/* Preload and upload pdf[]; returns the upload URL's path (/sim-s3/KEY), owned. */
static char *upload_one(const struct th_sim *sim)
{
	struct sb_buf out = SB_BUF_INIT(65536), sha = SB_BUF_INIT(64);
	unsigned char d[SB_SHA256_LEN];
	char *body = preload_body(1), *h_secret, *h_sum, *path;
	json_t *j = NULL, *it;

	assert_int_equal(simple(sim, "POST", "/delivery/attachments/preload", key_hdrs, body, &out),
			 200);
	assert_int_equal(sb_json_parse(out.buf, out.len, 65536, "preload", &j, NULL), 0);
	it = json_array_get(j, 0);
	sb_sha256(pdf, strlen(pdf), d);
	sb_base64_encode(d, sizeof(d), &sha);
	h_secret = sb_xasprintf("x-amz-meta-secret: %s",
				json_string_value(json_object_get(it, "secret")));
	h_sum = sb_xasprintf("x-amz-checksum-sha256: %s", sb_buf_cstr(&sha));
	path = sb_xasprintf("/sim-s3/%s", json_string_value(json_object_get(it, "key")));
	{
		const char *put[] = { "Content-Type: application/pdf", h_secret, h_sum, NULL };

		assert_int_equal(simple(sim, "PUT", path, put, pdf, NULL), 200);
	}
	free(h_secret);
	free(h_sum);
	free(body);
	json_decref(j);
	sb_buf_release(&sha);
	sb_buf_release(&out);
	return path;
}

/*
 * The download of an uploaded file is answered with the file's content type
 * after the latency sleep; preloads made during that sleep grow (and move)
 * the table of files. The reply must still carry the right type, and
 * send-sim must still be there.
 */
static void test_sim_server__download_while_preloading(void **state)
{
	static const char *const args[] = { "--latency-ms", LATENCY_MS, NULL };
	struct th_sim sim;
	struct call get = { .method = "GET" };
	pthread_t t;
	char *path, *many;
	long before;
	int spins = 0;

	(void)state;
	th_sim_start(&sim, args);
	path = upload_one(&sim);
	get.base = sim.url;
	snprintf(get.path, sizeof(get.path), "%s", path);
	before = calls_seen(&sim);
	assert_true(before > 0);
	assert_int_equal(pthread_create(&t, NULL, call_thread, &get), 0);
	/* Wait until send-sim has taken the download (counted before its handler runs). */
	while (calls_seen(&sim) == before && spins++ < 5000)
		th_sleep_ms(1);
	assert_true(calls_seen(&sim) > before);
	many = preload_body(15);
	for (int i = 0; i < 2; i++)
		assert_int_equal(simple(&sim, "POST", "/delivery/attachments/preload", key_hdrs,
					many, NULL), 200);
	pthread_join(t, NULL);
	assert_int_equal(get.status, 200);
	assert_string_equal(get.content_type, "application/pdf");
	assert_int_equal(get.reply.len, strlen(pdf));
	assert_memory_equal(get.reply.buf, pdf, strlen(pdf));
	assert_int_equal(simple(&sim, "GET", "/_sim/health", NULL, NULL, NULL), 200);
	sb_buf_release(&get.reply);
	free(many);
	free(path);
	th_sim_stop(&sim);
}

/*
 * Many clients at once, each uploading and reading back its own file while
 * the others preload: every reply arrives, whole and with its own type.
 */
#define NCLIENTS 24

struct client {
	const struct th_sim *sim;
	int ok;
};

static void *client_thread(void *arg)
{
	struct client *c = arg;
	struct call get = { .base = c->sim->url, .method = "GET" };
	struct call pre = { .base = c->sim->url, .method = "POST", .hdrs = key_hdrs };
	struct sb_buf out = SB_BUF_INIT(65536), sha = SB_BUF_INIT(64);
	unsigned char d[SB_SHA256_LEN];
	char *body = preload_body(3), *h_secret = NULL, *h_sum = NULL;
	json_t *j = NULL, *it;

	snprintf(pre.path, sizeof(pre.path), "/delivery/attachments/preload");
	pre.body = body;
	call_do(&pre);
	if (pre.status != 200 ||
	    sb_json_parse(pre.reply.buf, pre.reply.len, 65536, "preload", &j, NULL) < 0)
		goto done;
	it = json_array_get(j, 1);
	sb_sha256(pdf, strlen(pdf), d);
	sb_base64_encode(d, sizeof(d), &sha);
	h_secret = sb_xasprintf("x-amz-meta-secret: %s",
				json_string_value(json_object_get(it, "secret")));
	h_sum = sb_xasprintf("x-amz-checksum-sha256: %s", sb_buf_cstr(&sha));
	snprintf(get.path, sizeof(get.path), "/sim-s3/%s",
		 json_string_value(json_object_get(it, "key")));
	{
		const char *put[] = { "Content-Type: application/pdf", h_secret, h_sum, NULL };

		if (simple(c->sim, "PUT", get.path, put, pdf, NULL) != 200)
			goto done;
	}
	call_do(&get);
	c->ok = get.status == 200 && !strcmp(get.content_type, "application/pdf") &&
		get.reply.len == strlen(pdf) && !memcmp(get.reply.buf, pdf, strlen(pdf));
done:
	free(h_secret);
	free(h_sum);
	free(body);
	json_decref(j);
	sb_buf_release(&sha);
	sb_buf_release(&out);
	sb_buf_release(&pre.reply);
	sb_buf_release(&get.reply);
	return NULL;
}

static void test_sim_server__concurrent_clients(void **state)
{
	static const char *const args[] = { "--latency-ms", "50", NULL };
	struct th_sim sim;
	struct client cl[NCLIENTS];
	pthread_t t[NCLIENTS];
	int ok = 0;

	(void)state;
	th_sim_start(&sim, args);
	for (int i = 0; i < NCLIENTS; i++) {
		cl[i] = (struct client){ .sim = &sim };
		assert_int_equal(pthread_create(&t[i], NULL, client_thread, &cl[i]), 0);
	}
	for (int i = 0; i < NCLIENTS; i++) {
		pthread_join(t[i], NULL);
		ok += cl[i].ok;
	}
	assert_int_equal(ok, NCLIENTS);
	assert_int_equal(simple(&sim, "GET", "/_sim/health", NULL, NULL, NULL), 200);
	th_sim_stop(&sim);
}

/*
 * A create request with the given protocol number and notice code; its document
 * was never uploaded.
 */
static char *request_body(const char *proto, const char *notice)
{
	return sb_xasprintf(
		"{\"idempotenceToken\":\"t1\",\"paProtocolNumber\":\"%s\",\"subject\":\"Verbale\","
		"\"recipients\":[{\"recipientType\":\"PF\",\"taxId\":\"RSSMRA80A01H501U\","
		"\"denomination\":\"Mario Rossi\",\"physicalAddress\":{\"address\":\"VIA ROMA 1\","
		"\"zip\":\"00100\",\"municipality\":\"ROMA\",\"province\":\"RM\"},"
		"\"payments\":[{\"pagoPa\":{\"noticeCode\":\"%s\","
		"\"creditorTaxId\":\"80012345676\","
		"\"applyCost\":false}}]}],\"documents\":[{\"digests\":{\"sha256\":"
		"\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"},"
		"\"contentType\":\"application/pdf\","
		"\"ref\":{\"key\":\"PN_NOTIFICATION_ATTACHMENTS-none.pdf\","
		"\"versionToken\":\"v1\"}}],"
		"\"notificationFeePolicy\":\"FLAT_RATE\",\"physicalCommunicationType\":"
		"\"AR_REGISTERED_LETTER\",\"senderDenomination\":\"Comune di Esempio\","
		"\"senderTaxId\":\"80012345676\",\"taxonomyCode\":\"010101P\"}", proto, notice);
}

/* notificationRequestStatus (and the id into id_out when given) of the latest request for proto. */
static char *status_of(const struct th_sim *sim, const char *proto, char id_out[64])
{
	struct sb_buf b = SB_BUF_INIT(1 << 20);
	char *path = sb_xasprintf("/delivery/v2.5/requests?paProtocolNumber=%s&idempotenceToken=t1",
				  proto);
	json_t *j = NULL;
	char *st = NULL;

	if (simple(sim, "GET", path, key_hdrs, NULL, &b) == 200 &&
	    sb_json_parse(b.buf, b.len, 1 << 20, "status", &j, NULL) == 0) {
		st = sb_xstrdup(json_string_value(json_object_get(j, "notificationRequestStatus")));
		if (id_out)
			snprintf(id_out, 64, "%s",
				 json_string_value(json_object_get(j, "notificationRequestId")));
	}
	json_decref(j);
	sb_buf_release(&b);
	free(path);
	return st;
}

/*
 * The duplicate checks keep their meaning over many requests: a live request
 * (even one still in validation) blocks its protocol number and its notice
 * code; once SEND refuses it, both are free again, and the status query
 * answers for the latest request.
 */
static void test_sim_server__duplicates_freed_by_refusal(void **state)
{
	static const char *const args[] = { "--send-accept-ms", "50", NULL };
	struct th_sim sim;
	char *a = request_body("P-DUP", "302010000000000777");
	char *other = request_body("P-DUP-OTHER", "302010000000000777");
	char *st, first[64], latest[64];
	int spins = 0;

	(void)state;
	th_sim_start(&sim, args);
	/* Unrelated requests first, so that the lookups have company. */
	for (int i = 0; i < 30; i++) {
		char proto[32], notice[32], *b;

		snprintf(proto, sizeof(proto), "P-FILL-%d", i);
		snprintf(notice, sizeof(notice), "3020100000000%05d", i);
		b = request_body(proto, notice);
		assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs, b, NULL),
				 202);
		free(b);
	}
	assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs, a, NULL), 202);
	assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs, a, NULL), 409);
	assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs,
				other, NULL), 409);
	st = status_of(&sim, "P-DUP", first);
	assert_non_null(st);
	/* The document was never uploaded: SEND refuses it (FILE_NOTFOUND) after validation. */
	while (strcmp(st, "REFUSED") && spins++ < 500) {
		free(st);
		th_sleep_ms(10);
		st = status_of(&sim, "P-DUP", NULL);
		assert_non_null(st);
	}
	assert_string_equal(st, "REFUSED");
	free(st);
	assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs, a, NULL), 202);
	st = status_of(&sim, "P-DUP", latest);
	assert_string_not_equal(st, "REFUSED");
	assert_string_not_equal(first, latest);
	free(st);
	/* The new request holds the notice code again. */
	assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs,
				other, NULL), 409);
	free(a);
	free(other);
	th_sim_stop(&sim);
}

/* A lost reply: the call is carried out, only its reply goes (unlike a dropped one). */
static void test_sim_server__lost_reply_is_carried_out(void **state)
{
	/* Still in validation when asked again: a refusal (no upload) would free the number. */
	static const char *const args[] = { "--send-accept-ms", "600000", NULL };
	struct th_sim sim;
	struct sb_buf b = SB_BUF_INIT(4096);
	char *a = request_body("P-LOST", "302010000000000888");
	char *c = request_body("P-DROP", "302010000000000889");

	(void)state;
	th_sim_start(&sim, args);
	assert_int_equal(simple(&sim, "POST", "/_sim/faults", NULL, "{\"pctLost\":100}", &b), 200);
	assert_non_null(strstr(sb_buf_cstr(&b), "\"pctLost\":100"));
	/* No reply at all: the connection closes (status -1, no HTTP status). */
	assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs, a, NULL), -1);
	assert_int_equal(simple(&sim, "POST", "/_sim/faults", NULL,
				"{\"pctLost\":0,\"pctDrop\":100}", NULL), 200);
	assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs, c, NULL), -1);
	assert_int_equal(simple(&sim, "POST", "/_sim/faults", NULL, "{\"pctDrop\":0}", NULL), 200);
	/* The lost one was created: SEND now says it is a duplicate. The dropped one was not. */
	assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs, a, NULL), 409);
	assert_int_equal(simple(&sim, "POST", "/delivery/v2.5/requests", key_hdrs, c, NULL), 202);
	/* Shares over 100 in all are refused, lost ones included. */
	assert_int_equal(simple(&sim, "POST", "/_sim/faults", NULL,
				"{\"pctLost\":60,\"pct5xx\":50}", NULL), 400);
	free(a);
	free(c);
	sb_buf_release(&b);
	th_sim_stop(&sim);
}

/* POST a STATUS stream; its streamId into id (37). */
static void stream_new(const struct th_sim *sim, char id[37])
{
	struct sb_buf b = SB_BUF_INIT(4096);
	json_t *j = NULL;
	long st = simple(sim, "POST", "/delivery-progresses/v2.9/streams", key_hdrs,
			 "{\"title\":\"sim test\",\"eventType\":\"STATUS\",\"groups\":[]}", &b);

	id[0] = '\0';
	if (st == 200 && sb_json_parse(b.buf, b.len, 4096, "stream", &j, NULL) == 0 &&
	    json_string_length(json_object_get(j, "streamId")) == 36)
		snprintf(id, 37, "%s", json_string_value(json_object_get(j, "streamId")));
	json_decref(j);
	sb_buf_release(&b);
	assert_int_equal(strlen(id), 36);
}

/* What a look at one stream got, and whether the stream's other reads were right. */
struct stream_look {
	long status;
	json_t *body;         /* the reply parsed; NULL if it was not JSON */
	bool names_it;        /* the reply holds the id asked for */
	bool events_ok;       /* GET .../events answered 200 */
	bool listed;          /* SEND's list of streams has it */
};

static void look_release(void *p)
{
	json_decref(((struct stream_look *)p)->body);
	free(p);
}

/*
 * GET /streams/{id} under --send-stream-get-fault KIND (NULL: without it),
 * and the reads the fault must leave alone (the events, the list). Owned by
 * the test's scope.
 */
static const struct stream_look *stream_look(const char *kind)
{
	const char *args[] = { "--send-stream-get-fault", kind, NULL };
	struct stream_look *l = sb_xcalloc(1, sizeof(*l));
	struct sb_buf b = SB_BUF_INIT(4096), list = SB_BUF_INIT(4096);
	struct th_sim sim;
	char id[37], *path, *events;

	th_defer(look_release, l);
	th_sim_start(&sim, kind ? args : NULL);
	stream_new(&sim, id);
	path = th_own(sb_xasprintf("/delivery-progresses/v2.9/streams/%s", id));
	events = th_own(sb_xasprintf("%s/events", path));
	l->status = simple(&sim, "GET", path, key_hdrs, NULL, &b);
	sb_json_parse(b.buf, b.len, 4096, "stream", &l->body, NULL);
	l->names_it = strstr(sb_buf_cstr(&b), id) != NULL;
	l->events_ok = simple(&sim, "GET", events, key_hdrs, NULL, NULL) == 200;
	l->listed = simple(&sim, "GET", "/delivery-progresses/v2.9/streams", key_hdrs, NULL,
			   &list) == 200 && strstr(sb_buf_cstr(&list), id);
	sb_buf_release(&list);
	sb_buf_release(&b);
	th_sim_stop(&sim);
	return l;
}

/*
 * The fault for a client's look at one stream: off by default (the reply is
 * that stream); "other" is a 200 about another stream, "deny" the gateway's
 * 403; either way the stream's events and the list answer as usual. Any
 * other kind is refused at start.
 */
static void test_sim_server__stream_get_fault(void **state)
{
	const struct stream_look *l;
	const char *id;
	char *bin = th_own(sb_xasprintf("%s/send-sim", th_build_dir()));
	const char *argv[] = { bin, "--send-stream-get-fault", "garbage", NULL };
	struct sb_buf err = SB_BUF_INIT(4096);
	bool said;
	int rc;

	(void)state;
	l = stream_look(NULL);
	assert_int_equal(l->status, 200);
	assert_true(l->names_it);
	assert_string_equal(json_string_value(json_object_get(l->body, "title")), "sim test");
	assert_null(json_object_get(l->body, "disabledDate"));
	assert_true(l->events_ok && l->listed);

	l = stream_look("other");
	assert_int_equal(l->status, 200);
	assert_false(l->names_it);
	id = json_string_value(json_object_get(l->body, "streamId"));
	assert_non_null(id);
	assert_int_equal(strlen(id), 36);
	assert_true(l->events_ok && l->listed);

	l = stream_look("deny");
	assert_int_equal(l->status, 403);
	assert_non_null(strstr(json_string_value(json_object_get(l->body, "message")),
			       "explicit deny"));
	assert_true(l->events_ok && l->listed);

	rc = th_run(argv, NULL, &err);
	said = strstr(sb_buf_cstr(&err), "needs 'other' or 'deny'") != NULL;
	sb_buf_release(&err);
	assert_int_equal(rc, 2);
	assert_true(said);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(test_sim_server__download_while_preloading),
		th_unit_test(test_sim_server__concurrent_clients),
		th_unit_test(test_sim_server__duplicates_freed_by_refusal),
		th_unit_test(test_sim_server__lost_reply_is_carried_out),
		th_unit_test(test_sim_server__stream_get_fault),
	};

	sb_http_global_init();
	return cmocka_run_group_tests_name("sim_server", tests, NULL, NULL);
}
