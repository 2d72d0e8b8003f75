/* Helpers of the end-to-end tests: see th_e2e.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sb_common.h"
#include "sb_http.h"
#include "sb_json.h"
#include "th.h"
#include "th_e2e.h"
#include "th_platform.h"

char *th_e2e_protocol_ini(const char *dir)
{
	char *k = sb_xasprintf("%s/seal.key", dir), *c = sb_xasprintf("%s/seal.crt", dir);
	char *xsd = th_shared("specs/agid/segnatura_protocollo.xsd"), *ini;
	const char *gen[] = { "/usr/bin/openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
			      "rsa_keygen_bits:2048", "-out", k, NULL };
	const char *req[] = { "/usr/bin/openssl", "req", "-new", "-x509", "-key", k,
			      "-out", c, "-days", "30",
			      "-subj", "/C=IT/O=Comune di Esempio/CN=sigillo", NULL };

	/* Owned by the scope: a failed check below must not leak them. */
	th_own(k);
	th_own(c);
	th_own(xsd);
	assert_non_null(xsd);
	assert_int_equal(th_run(gen, NULL, NULL), 0);
	assert_int_equal(chmod(k, 0600), 0);
	assert_int_equal(th_run(req, NULL, NULL), 0);
	ini = sb_xasprintf("[protocol]\nregister = PG\nipa_code = c_x000\n"
			   "aoo_code = AOO1\nseal_key_file = %s\nseal_cert_file = %s\n"
			   "segnatura_xsd = %s\n", k, c, xsd);
	return ini;
}

static sqlite3_stmt *query(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
	if (param)
		sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
	return st;
}

int64_t th_e2e_int(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *st = query(db, sql, param);
	int rc = sqlite3_step(st);
	int64_t v = sqlite3_column_int64(st, 0);

	sqlite3_finalize(st);
	assert_int_equal(rc, SQLITE_ROW);
	return v;
}

static void db_close(void *db)
{
	sqlite3_close(db);
}

sqlite3 *th_e2e_db(const char *path)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);

	/* Even a failed open returns a handle to close. */
	th_defer(db_close, db);
	if (rc != SQLITE_OK)
		fail_msg("open '%s': %s", path, sqlite3_errmsg(db));
	return db;
}

char *th_e2e_text(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *st = query(db, sql, param);
	char *v = NULL;

	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		v = sb_xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

int64_t th_e2e_ledger_notifications(const char *sim_url, const char *protocol)
{
	return th_e2e_ledger_int(sim_url, protocol, "notifications");
}

/*
 * GET url from send-sim and the integer key of its JSON reply; everything
 * is released before the checks, so a failed one leaks nothing.
 */
static int64_t sim_get_int(const char *url, const char *const *headers, const char *key)
{
	struct sb_err err = SB_ERR_INIT;
	struct sb_http *h = NULL;
	struct sb_http_resp resp = { .body = SB_BUF_INIT(1 << 20) };
	json_t *j = NULL;
	int rc = sb_http_new(&h, NULL, &err);
	bool is_int;
	long status;
	int64_t n;

	if (rc == 0)
		rc = sb_http_do(h, &(struct sb_http_req){ .method = "GET", .url = url,
						       .headers = headers }, &resp, &err);
	if (rc == 0 && resp.status == 200)
		rc = sb_json_parse(resp.body.buf, resp.body.len, 1 << 20, "sim reply", &j, &err);
	status = resp.status;
	is_int = json_is_integer(json_object_get(j, key));
	n = json_integer_value(json_object_get(j, key));
	json_decref(j);
	sb_http_resp_release(&resp);
	sb_http_free(h);
	if (rc < 0)
		fail_msg("GET %s: %s", url, err.msg);
	assert_int_equal(status, 200);
	if (!is_int)
		fail_msg("GET %s: no integer \"%s\"", url, key);
	return n;
}

int64_t th_e2e_ledger_int(const char *sim_url, const char *protocol, const char *key)
{
	struct sb_buf url = SB_BUF_INIT(1024);

	sb_buf_addf(&url, "%s/_sim/send/ledger", sim_url);
	if (protocol) {
		sb_buf_adds(&url, "?paProtocolNumber=");
		for (const char *p = protocol; *p; p++)
			if (*p == '/')
				sb_buf_adds(&url, "%2F");
			else
				sb_buf_addch(&url, *p);
	}
	return sim_get_int(th_own(sb_buf_detach(&url, NULL)), NULL, key);
}

int64_t th_e2e_sim_calls(const char *sim_url)
{
	return sim_get_int(th_own(sb_xasprintf("%s/_sim/faults", sim_url)), NULL, "calls");
}

int64_t th_e2e_metric(unsigned port, const char *series)
{
	struct sb_err err = SB_ERR_INIT;
	struct sb_http *h = NULL;
	struct sb_http_resp resp = { .body = SB_BUF_INIT(1 << 20) };
	char *url = th_own(sb_xasprintf("http://127.0.0.1:%u/metrics", port));
	char *line = th_own(sb_xasprintf("\n%s ", series));
	const char *at = NULL;
	int rc = sb_http_new(&h, NULL, &err);
	long status;
	int64_t n = -1;

	if (rc == 0)
		rc = sb_http_do(h, &(struct sb_http_req){ .method = "GET", .url = url }, &resp,
				&err);
	status = resp.status;
	if (rc == 0 && status == 200)
		at = strstr(sb_buf_cstr(&resp.body), line);
	if (at)
		n = strtoll(at + strlen(line), NULL, 10);
	sb_http_resp_release(&resp);
	sb_http_free(h);
	if (rc < 0)
		fail_msg("GET %s: %s", url, err.msg);
	assert_int_equal(status, 200);
	if (n < 0)
		fail_msg("GET %s: no series %s", url, series);
	return n;
}

long th_e2e_sim_call(const char *sim_url, const char *method, const char *path,
		     const char *body)
{
	static const char *const send_headers[] = { "x-api-key: sim-send-key",
						    "Content-Type: application/json", NULL };
	static const char *const sim_headers[] = { "Content-Type: application/json", NULL };
	struct sb_err err = SB_ERR_INIT;
	struct sb_http *h = NULL;
	struct sb_http_resp resp = { 0 };
	char *url = sb_xasprintf("%s%s", sim_url, path);
	long status;

	resp.body = (struct sb_buf)SB_BUF_INIT(1 << 16);
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	if (sb_http_do(h, &(struct sb_http_req){ .method = method, .url = url,
			.headers = strncmp(path, "/_sim/", 6) ? send_headers : sim_headers,
			.body = body, .body_len = body ? strlen(body) : 0 }, &resp, &err) < 0)
		fail_msg("%s %s: %s", method, path, err.msg);
	status = resp.status;
	sb_http_resp_release(&resp);
	sb_http_free(h);
	free(url);
	return status;
}

void th_e2e_wait_int(const char *db_path, const char *sql, const char *param, int64_t want,
		     const char *log)
{
	for (int waited = 0;; waited++) {
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;
		bool done = false;

		if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
		    sqlite3_busy_timeout(db, 2000) == SQLITE_OK &&
		    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
			if (param)
				sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
			done = sqlite3_step(st) == SQLITE_ROW &&
			       sqlite3_column_int64(st, 0) >= want;
		}
		sqlite3_finalize(st);
		sqlite3_close(db);
		if (done)
			return;
		if (waited > 1200) {
			char *text = th_read(log, NULL);

			fail_msg("not reached after 60 s: %s; log:\n%s", sql, text ? text : "");
		}
		th_sleep_ms(50);
	}
}

/* The last 8 KB of a log, for a failure message; owned (th_own). */
static const char *log_tail(const char *log)
{
	size_t len = 0;
	char *text = th_own(th_read(log, &len));
	size_t cut = len > 8192 ? len - 8192 : 0;

	return text ? text + cut : "(no log)";
}

void th_e2e_wait_finished(const char *root, size_t n, pid_t *pid, const char *log,
			  int timeout_s)
{
	for (int waited = 0;; waited++) {
		size_t done = th_outbox_entries(root, "done") + th_outbox_entries(root, "rejected");
		int status;

		if (done >= n)
			return;
		status = th_child_poll(pid);
		if (status >= 0)
			fail_msg("send-bridge ended (status %d) with %zu of %zu acts finished; "
				 "end of %s:\n%s", status, done, n, log, log_tail(log));
		if (waited > timeout_s * 10)
			fail_msg("%zu of %zu acts finished after %d s; end of %s:\n%s", done, n,
				 timeout_s, log, log_tail(log));
		th_sleep_ms(100);
	}
}

int64_t th_e2e_sim_price(const char *sim_url, const char *notice_code)
{
	static const char *const headers[] = { "x-api-key: sim-send-key", NULL };
	char *url = sb_xasprintf("%s/delivery/v2.3/price/80012345676/%s", sim_url, notice_code);

	return sim_get_int(th_own(url), headers, "totalPrice");
}

char *th_e2e_config(const char *dir, const char *name, const char *sim_url, int workers,
		    const char *extra)
{
	char *api = sb_xasprintf("%s/%s-api.key", dir, name);
	char *path = sb_xasprintf("%s/%s.ini", dir, name),
	     *newd = sb_xasprintf("%s/outbox/new", dir);
	char *proto = th_e2e_protocol_ini(dir), *ini;

	th_write_str(api, "sim-send-key\n", 0600);
	th_mkdirs(newd);
	ini = sb_xasprintf(
		"[service]\nsender_denomination = Comune di Esempio\nsender_tax_id = 80012345676\n"
		"workers = %d\n"
		"[outbox]\ndir = %s/outbox\nretry_base = 1\nretry_max = 2\nmax_attempts = 1000\n"
		"poll_interval = 1\nrescan_interval = 1\n"
		"[store]\npath = %s/%s.db\n"
		"[send]\nbase_url = %s\napi_key_file = %s\n%s"
		"[web]\nenabled = off\n"
		"[office.polizia-municipale]\noperators = agente.bianchi\n%s",
		workers, dir, dir, name, sim_url, api, proto, extra ? extra : "");
	th_write_str(path, ini, 0600);
	free(ini);
	free(proto);
	free(newd);
	free(api);
	return path;
}

pid_t th_e2e_run(const char *cfg, const char *log)
{
	char *bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	const char *argv[] = { bin, "run", "-c", cfg, NULL };
	pid_t pid = th_spawn(argv, log);

	free(bin);
	return pid;
}

char *th_e2e_act_json(int n, bool pec)
{
	return sb_xasprintf(
		"{\"version\":1,\"office\":\"polizia-municipale\","
		"\"operator\":{\"userId\":\"agente.bianchi\"},"
		"\"subject\":\"Verbale n. %d/2026 - art. 7 Codice della Strada\","
		"\"taxonomyCode\":\"010101P\","
		"\"physicalCommunicationType\":\"AR_REGISTERED_LETTER\","
		"\"feePolicy\":{\"type\":\"FLAT_RATE\"},"
		"\"recipients\":[{\"type\":\"PF\",\"taxId\":\"TSTMRA80A01H501C\","
		"\"denomination\":\"Mario Test\","
		"%s\"physicalAddress\":{\"address\":\"Via Prova %d\","
		"\"zip\":\"20121\",\"municipality\":\"Milano\",\"province\":\"MI\"}}],"
		"\"documents\":[{\"file\":\"atto.pdf\",\"title\":\"Verbale\"}]}",
		n, pec ? "\"digitalDomicile\":{\"type\":\"PEC\",\"address\":"
		"\"mario.test@pec.example.it\"}," : "", n);
}
