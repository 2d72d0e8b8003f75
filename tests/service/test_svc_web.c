/*
 * The status page and the Prometheus endpoint, over real HTTP on loopback
 * (libmicrohttpd server, libcurl client), against a real store.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_http.h"
#include "svc_act.h"
#include "svc_metrics.h"
#include "svc_pipeline.h"
#include "svc_store.h"
#include "svc_web.h"
#include "../helpers/th.h"

struct fx {
	char *tmp, *db;
	struct svc_web *w;
	struct sb_http *http;
	char base[64];
};

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct svc_act *act = NULL;
	char *dir = th_fixture("acts/fine-pagopa"), *manifest;
	int64_t id;

	f->tmp = th_tmpdir("web");
	f->db = sb_xasprintf("%s/store.db", f->tmp);
	/* One act recorded the way intake does it. */
	assert_int_equal(svc_store_open(&s, f->db, 5000, &err), 0);
	assert_int_equal(svc_act_load(&act, dir, true, NULL, &err), 0);
	manifest = sb_xasprintf("%s/act.json", dir);
	free(dir);
	dir = th_read(manifest, NULL);
	assert_int_equal(svc_store_act_insert(s, act, dir, &id, &err), 0);
	svc_act_free(act);
	free(dir);
	free(manifest);
	svc_store_close(s);
	assert_int_equal(svc_web_start(&f->w, "127.0.0.1:0", f->db, 5000, &err), 0);
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", svc_web_port(f->w));
	assert_int_equal(sb_http_new(&f->http, NULL, &err), 0);
	svc_metrics_reset();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sb_http_free(f->http);
	svc_web_stop(f->w);
	th_rmrf(f->tmp);
	free(f->tmp);
	free(f->db);
	free(f);
	return 0;
}

static long get(struct fx *f, const char *method, const char *path, struct sb_http_resp *resp)
{
	char *url = sb_xasprintf("%s%s", f->base, path);
	struct sb_http_req req = { .method = method, .url = url };
	struct sb_err err = SB_ERR_INIT;

	memset(resp, 0, sizeof(*resp));
	assert_int_equal(sb_http_do(f->http, &req, resp, &err), 0);
	free(url);
	return resp->status;
}

static void test_svc_web__metrics_in_prometheus_text(void **state)
{
	struct fx *f = *state;
	struct sb_http_resp r;
	const char *body;
	char *readme;

	svc_metrics_step(SVC_PLATFORM_SEND, false);
	svc_metrics_step(SVC_PLATFORM_SEND, true);
	svc_metrics_step(SVC_PLATFORM_PDND, false);
	/* Requests: a 404 is an answer, no reply or another 4xx/5xx an error. */
	svc_metrics_request("send", 200, 0);
	svc_metrics_request("send", 503, 0);
	svc_metrics_request("send", 202, 0);
	svc_metrics_request("pdnd", 404, 0);
	svc_metrics_request("pdnd", 0, SB_ETEMP);
	svc_metrics_request("protocol", 400, 0);
	svc_metrics_request(NULL, 500, 0);
	svc_metrics_request("elsewhere", 500, 0);
	svc_metrics_retry();
	svc_metrics_set_queue(7, 3);
	svc_metrics_set_stream_lag(42);
	assert_int_equal(get(f, "GET", "/metrics", &r), 200);
	assert_string_equal(sb_http_resp_header(&r, "Content-Type"),
			    "text/plain; version=0.0.4; charset=utf-8");
	body = sb_buf_cstr(&r.body);
	assert_non_null(strstr(body, "# TYPE sendbridge_acts gauge\n"));
	assert_non_null(strstr(body, "\nsendbridge_acts{state=\"received\"} 1\n"));
	assert_non_null(strstr(body, "\nsendbridge_acts{state=\"closed\"} 0\n"));
	assert_non_null(strstr(body, "\nsendbridge_steps_total{platform=\"send\"} 2\n"));
	assert_non_null(strstr(body, "\nsendbridge_step_errors_total{platform=\"send\"} 1\n"));
	assert_non_null(strstr(body, "\nsendbridge_steps_total{platform=\"pdnd\"} 1\n"));
	assert_non_null(strstr(body, "\nsendbridge_step_errors_total{platform=\"pdnd\"} 0\n"));
	assert_non_null(strstr(body, "# TYPE sendbridge_api_calls_total counter\n"));
	assert_non_null(strstr(body, "\nsendbridge_api_calls_total{platform=\"send\"} 3\n"));
	assert_non_null(strstr(body, "\nsendbridge_api_errors_total{platform=\"send\"} 1\n"));
	assert_non_null(strstr(body, "\nsendbridge_api_calls_total{platform=\"pdnd\"} 2\n"));
	assert_non_null(strstr(body, "\nsendbridge_api_errors_total{platform=\"pdnd\"} 1\n"));
	assert_non_null(strstr(body, "\nsendbridge_api_calls_total{platform=\"protocol\"} 1\n"));
	assert_non_null(strstr(body, "\nsendbridge_api_errors_total{platform=\"protocol\"} 1\n"));
	assert_non_null(strstr(body, "\nsendbridge_api_calls_total{platform=\"agid\"} 0\n"));
	assert_non_null(strstr(body, "\nsendbridge_retries_total 1\n"));
	assert_non_null(strstr(body, "\nsendbridge_queue_depth 7\n"));
	assert_non_null(strstr(body, "\nsendbridge_in_flight 3\n"));
	assert_non_null(strstr(body, "\nsendbridge_stream_lag_seconds 42\n"));
	/* Every series is in the README's monitoring table. */
	readme = th_read("README.md", NULL);
	assert_non_null(readme);
	for (const char *t = strstr(body, "# TYPE "); t; t = strstr(t + 1, "# TYPE ")) {
		char name[80], needle[96];

		assert_int_equal(sscanf(t, "# TYPE %79s", name), 1);
		snprintf(needle, sizeof(needle), "| `%s", name);
		if (!strstr(readme, needle))
			fail_msg("series %s is not in the README's monitoring table", name);
	}
	free(readme);
	sb_http_resp_release(&r);
}

static void test_svc_web__status_page_masks_personal_data(void **state)
{
	struct fx *f = *state;
	struct sb_http_resp r;
	const char *body;

	assert_int_equal(get(f, "GET", "/", &r), 200);
	body = sb_buf_cstr(&r.body);
	assert_non_null(strstr(body, "<td>fine-pagopa</td>"));
	assert_non_null(strstr(body, "<td>received</td>"));
	assert_non_null(strstr(body, "TS************1C"));
	assert_null(strstr(body, "TSTMRA80A01H501C"));
	assert_null(strstr(body, "Mario"));
	sb_http_resp_release(&r);
}

static void test_svc_web__other_paths_and_methods(void **state)
{
	struct fx *f = *state;
	struct sb_http_resp r;

	assert_int_equal(get(f, "GET", "/nope", &r), 404);
	sb_http_resp_release(&r);
	assert_int_equal(get(f, "DELETE", "/metrics", &r), 405);
	sb_http_resp_release(&r);
}

static void test_svc_web__bad_addresses_are_refused(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = { "localhost:8088", "127.0.0.1", "127.0.0.1:99999",
					   ":8088", "[::1:80" };
	struct sb_err err = SB_ERR_INIT;
	struct svc_web *w = NULL;
	char taken[64];

	for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
		sb_err_clear(&err);
		assert_int_equal(svc_web_start(&w, bad[i], f->db, 5000, &err), SB_ECONFIG);
		assert_int_equal(err.code, SB_ECONFIG);
		assert_non_null(strstr(err.msg, "[web] listen"));
		assert_null(w);
	}
	/* The port of the running server is taken. */
	snprintf(taken, sizeof(taken), "127.0.0.1:%u", svc_web_port(f->w));
	sb_err_clear(&err);
	assert_int_equal(svc_web_start(&w, taken, f->db, 5000, &err), SB_EIO);
	assert_non_null(strstr(err.msg, "cannot listen"));
	assert_null(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_svc_web__metrics_in_prometheus_text,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_web__status_page_masks_personal_data,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_web__other_paths_and_methods,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_web__bad_addresses_are_refused,
						setup, teardown),
	};
	int rc;

	sb_http_global_init();
	rc = cmocka_run_group_tests_name("svc_web", tests, NULL, NULL);
	sb_http_global_cleanup();
	return rc;
}
