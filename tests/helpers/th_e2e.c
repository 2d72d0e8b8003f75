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

char *th_e2e_protocol_ini(const char *dir)
{
	char *k = sb_xasprintf("%s/seal.key", dir), *c = sb_xasprintf("%s/seal.crt", dir);
	char *xsd = th_shared("specs/agid/segnatura_protocollo.xsd"), *ini;
	const char *gen[] = { "/usr/bin/openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
			      "rsa_keygen_bits:2048", "-out", k, NULL };
	const char *req[] = { "/usr/bin/openssl", "req", "-new", "-x509", "-key", k, "-out", c,
			      "-days", "30", "-subj", "/C=IT/O=Comune di Esempio/CN=sigillo", NULL };

	assert_non_null(xsd);
	assert_int_equal(th_run(gen, NULL, NULL), 0);
	assert_int_equal(chmod(k, 0600), 0);
	assert_int_equal(th_run(req, NULL, NULL), 0);
	ini = sb_xasprintf("[protocol]\nbackend = embedded\nregister = PG\nipa_code = c_x000\n"
			   "aoo_code = AOO1\nseal_key_file = %s\nseal_cert_file = %s\n"
			   "segnatura_xsd = %s\n", k, c, xsd);
	free(k);
	free(c);
	free(xsd);
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
	int64_t v;

	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
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
	struct sb_err err = SB_ERR_INIT;
	struct sb_http *h = NULL;
	struct sb_http_resp resp = { 0 };
	struct sb_buf url = SB_BUF_INIT(1024);
	json_t *j = NULL;
	int64_t n;

	sb_buf_addf(&url, "%s/_sim/send/ledger", sim_url);
	if (protocol) {
		sb_buf_adds(&url, "?paProtocolNumber=");
		for (const char *p = protocol; *p; p++)
			if (*p == '/')
				sb_buf_adds(&url, "%2F");
			else
				sb_buf_addch(&url, *p);
	}
	resp.body = (struct sb_buf)SB_BUF_INIT(1 << 20);
	assert_int_equal(sb_http_new(&h, NULL, &err), 0);
	assert_int_equal(sb_http_do(h, &(struct sb_http_req){ .method = "GET",
					.url = sb_buf_cstr(&url) }, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(sb_json_parse(resp.body.buf, resp.body.len, 1 << 20, "ledger", &j, &err), 0);
	assert_true(json_is_integer(json_object_get(j, "notifications")));
	n = json_integer_value(json_object_get(j, "notifications"));
	json_decref(j);
	sb_http_resp_release(&resp);
	sb_http_free(h);
	sb_buf_release(&url);
	return n;
}
