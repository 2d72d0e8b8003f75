/*
 * The send-bridge binary as systemd runs it: `send-bridge run -c FILE`
 * with a real configuration, NOTIFY_SOCKET, the web endpoint, SIGHUP,
 * SIGKILL and restart, SIGTERM; and `send-bridge status` on what it did.
 *
 * SEND is configured at a loopback port where nothing listens, so acts go
 * through intake, the AgID check, resolution and protocol registration and
 * then wait in "registered", retrying the upload: what is proven here is
 * the process around the pipeline; the notification flow is proven by
 * tests/e2e/test_e2e_pipeline.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_http.h"
#include "sb_json.h"
#include "sb_time.h"
#include "../helpers/th.h"
#include "../helpers/th_platform.h"

struct fx {
	char *tmp, *root, *cfg, *db, *log, *out, *sock_path;
	int sock;
	struct sb_buf notes;   /* notifications read and not yet matched */
	unsigned port;
	pid_t pid;
};

static int setup(void **state)
{
	struct fx *f = sb_xcalloc(1, sizeof(*f));
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *key, *text, *new_dir, *seal, *cert,
	     *xsd = th_shared("specs/agid/segnatura_protocollo.xsd");

	/* The daemon's scope: whatever ends the test, the tear-down kills and reaps it. */
	th_scope_begin();
	f->tmp = th_tmpdir("run");
	f->notes = (struct sb_buf)SB_BUF_INIT(1u << 20);
	f->root = sb_xasprintf("%s/outbox", f->tmp);
	f->cfg = sb_xasprintf("%s/send-bridge.ini", f->tmp);
	f->db = sb_xasprintf("%s/store.db", f->tmp);
	f->log = sb_xasprintf("%s/send-bridge.log", f->tmp);
	f->out = sb_xasprintf("%s/stderr.txt", f->tmp);
	f->sock_path = sb_xasprintf("%s/notify.sock", f->tmp);
	key = sb_xasprintf("%s/api-key", f->tmp);
	th_write_str(key, "test-api-key\n", 0600);
	seal = sb_xasprintf("%s/seal.key", f->tmp);
	cert = sb_xasprintf("%s/seal.crt", f->tmp);
	assert_non_null(xsd);
	{
		const char *gen[] = { "/usr/bin/openssl", "genpkey", "-algorithm", "RSA",
				      "-pkeyopt", "rsa_keygen_bits:2048", "-out", seal, NULL };
		const char *req[] = { "/usr/bin/openssl", "req", "-new", "-x509", "-key", seal,
				      "-out", cert, "-days", "30", "-subj", "/CN=sigillo", NULL };

		assert_int_equal(th_run(gen, NULL, NULL), 0);
		assert_int_equal(chmod(seal, 0600), 0);
		assert_int_equal(th_run(req, NULL, NULL), 0);
	}
	f->port = th_free_port();
	assert_true(f->port > 0);
	text = sb_xasprintf(
		"[service]\n"
		"sender_denomination = Comune di Esempio\n"
		"sender_tax_id = 80012345676\n"
		"workers = 2\n"
		"log_file = %s\n"
		"[outbox]\n"
		"dir = %s\n"
		"rescan_interval = 1\n"
		"[store]\n"
		"path = %s\n"
		"[send]\n"
		/* Nothing listens there: uploads fail as temporary errors and are retried. */
		"base_url = http://127.0.0.1:1\n"
		"api_key_file = %s\n"
		"[protocol]\n"
		"ipa_code = c_x000\n"
		"aoo_code = AOO1\n"
		"seal_key_file = %s\n"
		"seal_cert_file = %s\n"
		"segnatura_xsd = %s\n"
		"[web]\n"
		"listen = 127.0.0.1:%u\n"
		/* An office section needs a key to exist for sb_cfg (inih reports keys only). */
		"[office.polizia-municipale]\n"
		"classification = 7.1\n"
		"[office.tributi]\n"
		"operators = funz.rossi\n",
		f->log, f->root, f->db, key, seal, cert, xsd, f->port);
	th_write_str(f->cfg, text, 0600);
	free(text);
	free(key);
	free(seal);
	free(cert);
	free(xsd);
	new_dir = sb_xasprintf("%s/new", f->root);
	th_mkdirs(new_dir);
	free(new_dir);
	/* systemd's side of sd_notify: a datagram socket named by NOTIFY_SOCKET. */
	f->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->sock >= 0);
	assert_true(strlen(f->sock_path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, f->sock_path, strlen(f->sock_path) + 1);
	assert_int_equal(bind(f->sock, (struct sockaddr *)&sun, sizeof(sun)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	th_scope_end();
	close(f->sock);
	sb_buf_release(&f->notes);
	th_rmrf(f->tmp);
	free(f->tmp);
	free(f->root);
	free(f->cfg);
	free(f->db);
	free(f->log);
	free(f->out);
	free(f->sock_path);
	free(f);
	return 0;
}

static char *bin(void)
{
	return sb_xasprintf("%s/send-bridge", th_build_dir());
}

static void start(struct fx *f)
{
	char *b = bin();

	f->pid = th_fork();
	if (f->pid == 0) {
		int fd = open(f->out, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setenv("NOTIFY_SOCKET", f->sock_path, 1);
		/* As systemd sets it for WatchdogSec=0.4: pings every 0.2 s. */
		setenv("WATCHDOG_USEC", "400000", 1);
		execl(b, b, "-c", f->cfg, "run", (char *)NULL);
		_exit(127);
	}
	free(b);
}

/*
 * Read what is waiting on the notify socket. The kernel queues only a few
 * datagrams (net.unix.max_dgram_qlen, often 10) and sd_notify blocks when
 * the queue is full, as it would with a systemd that stopped reading: the
 * test drains it whenever it waits, as systemd does.
 */
static void drain_notify(struct fx *f)
{
	char msg[1024];
	ssize_t n;

	while ((n = recv(f->sock, msg, sizeof(msg) - 1, MSG_DONTWAIT)) > 0) {
		msg[n] = '\0';
		if (f->notes.len > (1u << 19))
			sb_buf_reset(&f->notes);
		sb_buf_adds(&f->notes, msg);
		sb_buf_addch(&f->notes, '\n');
	}
}

/* Read notifications until one contains want; fails after 30 s. */
static void wait_notify(struct fx *f, const char *want)
{
	int64_t deadline = sb_mono_ms() + 30000;

	for (;;) {
		struct pollfd p = { f->sock, POLLIN, 0 };

		drain_notify(f);
		if (strstr(sb_buf_cstr(&f->notes), want)) {
			sb_buf_reset(&f->notes);
			return;
		}
		if (sb_mono_ms() > deadline)
			fail_msg("no '%s' from sd_notify", want);
		poll(&p, 1, 200);
	}
}

/* SIGTERM, reading notifications while the daemon stops; its exit status. */
static int stop_term(struct fx *f)
{
	int64_t deadline = sb_mono_ms() + 60000;
	int status;

	assert_int_equal(kill(f->pid, SIGTERM), 0);
	while ((status = th_child_poll(&f->pid)) < 0) {
		if (sb_mono_ms() > deadline)
			fail_msg("send-bridge did not stop after SIGTERM");
		drain_notify(f);
		th_sleep_ms(20);
	}
	if (status != 0) {
		char *out = th_read(f->out, NULL), *log = th_read(f->log, NULL);

		fprintf(stderr, "send-bridge stderr:\n%s\nlog:\n%s\n",
			out ? out : "", log ? log : "");
		free(out);
		free(log);
	}
	return status;
}

static void wait_entries(struct fx *f, const char *sub, size_t want)
{
	int64_t deadline = sb_mono_ms() + 30000;

	while (th_outbox_entries(f->root, sub) != want) {
		if (sb_mono_ms() > deadline)
			fail_msg("%s/ has %zu entries, expected %zu", sub,
				 th_outbox_entries(f->root, sub), want);
		drain_notify(f);
		th_sleep_ms(20);
	}
}

static int64_t acts_in_store(struct fx *f, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Acts checked, resolved and registered, waiting for SEND. */
static void wait_registered(struct fx *f, int64_t want)
{
	int64_t deadline = sb_mono_ms() + 60000;

	while (acts_in_store(f, "SELECT count(*) FROM acts WHERE state = 'registered'") != want) {
		if (sb_mono_ms() > deadline)
			fail_msg("store does not hold %lld registered acts", (long long)want);
		drain_notify(f);
		th_sleep_ms(20);
	}
}

/* send-bridge [extra] -c cfg status args...; stdout into out. */
static int status(struct fx *f, bool personal, struct sb_buf *out, const char *a1,
		  const char *a2, const char *a3)
{
	char *b = bin();
	const char *argv[10];
	size_t n = 0;
	int rc;

	argv[n++] = b;
	if (personal)
		argv[n++] = "--show-personal-data";
	argv[n++] = "-c";
	argv[n++] = f->cfg;
	argv[n++] = "status";
	if (a1)
		argv[n++] = a1;
	if (a2)
		argv[n++] = a2;
	if (a3)
		argv[n++] = a3;
	argv[n] = NULL;
	sb_buf_reset(out);
	rc = th_run(argv, out, NULL);
	free(b);
	return rc;
}

static size_t lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void publish_batch(struct fx *f)
{
	th_outbox_publish(f->root, "acts/fine-pagopa", "fine-1");
	th_outbox_publish(f->root, "acts/fine-company", "company-1");
	th_outbox_publish(f->root, "acts/fine-pec", "pec-1");
	th_outbox_publish_json(f->root, "broken-1", th_act_broken);
	/* Valid act, but its operator is not in [office.tributi] operators. */
	th_outbox_publish(f->root, "acts/imu-assessment", "imu-1");
}

static void test_svc_run__a_service_under_systemd(void **state)
{
	struct fx *f = *state;
	struct sb_buf out = SB_BUF_INIT(1 << 20);
	struct sb_http *http = NULL;
	struct sb_http_resp resp;
	struct sb_err err = SB_ERR_INIT;
	char url[64], *rotated, *log;
	json_t *arr = NULL;

	publish_batch(f);
	start(f);
	wait_notify(f, "READY=1\nSTATUS=queue ");
	wait_notify(f, "WATCHDOG=1");
	wait_entries(f, "rejected", 2);
	wait_registered(f, 3);
	assert_int_equal(th_outbox_entries(f->root, "work"), 3);
	assert_int_equal(th_outbox_entries(f->root, "new"), 0);

	/* The endpoint of [web] listen, over loopback. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", f->port);
	assert_int_equal(sb_http_new(&http, NULL, &err), 0);
	memset(&resp, 0, sizeof(resp));
	assert_int_equal(sb_http_do(http, &(struct sb_http_req){ .method = "GET", .url = url },
				    &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_non_null(strstr(sb_buf_cstr(&resp.body),
			       "sendbridge_acts{state=\"registered\"} 3\n"));
	assert_non_null(strstr(sb_buf_cstr(&resp.body), "sendbridge_intake_total 5\n"));
	assert_non_null(strstr(sb_buf_cstr(&resp.body), "sendbridge_intake_rejected_total 2\n"));
	{
		/* Every commit made durable, by at most one sync each. */
		const char *c = strstr(sb_buf_cstr(&resp.body),
				       "\nsendbridge_store_commits_total ");
		const char *y = strstr(sb_buf_cstr(&resp.body), "\nsendbridge_store_syncs_total ");

		assert_non_null(c);
		assert_non_null(y);
		c = strchr(c + 1, ' ');
		y = strchr(y + 1, ' ');
		assert_true(strtoull(c, NULL, 10) >= 5);   /* at least the five intakes */
		assert_true(strtoull(y, NULL, 10) >= 1);
		assert_true(strtoull(y, NULL, 10) <= strtoull(c, NULL, 10));
	}
	sb_http_resp_release(&resp);
	sb_http_free(http);

	/* SIGHUP after logrotate moved the file: a new one is opened. */
	rotated = sb_xasprintf("%s.1", f->log);
	assert_int_equal(rename(f->log, rotated), 0);
	assert_int_equal(kill(f->pid, SIGHUP), 0);
	for (int i = 0; i < 500 && access(f->log, F_OK) != 0; i++) {
		drain_notify(f);
		th_sleep_ms(10);
	}
	for (int i = 0; i < 500; i++) {
		log = th_read(f->log, NULL);
		if (log && strstr(log, "log reopened"))
			break;
		free(log);
		log = NULL;
		drain_notify(f);
		th_sleep_ms(10);
	}
	assert_non_null(log);
	free(log);
	log = th_read(rotated, NULL);
	assert_non_null(strstr(log, "daemon: running"));
	/* No tax code or name in clear in the log. */
	assert_null(strstr(log, "TSTMRA80A01H501C"));
	assert_null(strstr(log, "Mario Test"));
	free(log);
	free(rotated);

	/* SIGKILL during intake of a second batch, then a restart: nothing lost, nothing twice. */
	for (int i = 0; i < 12; i++) {
		char id[32];

		snprintf(id, sizeof(id), "more-%02d", i);
		th_outbox_publish(f->root, "acts/fine-pagopa", id);
	}
	th_sleep_ms(30);
	assert_int_equal(th_child_stop(&f->pid, SIGKILL), 128 + SIGKILL);
	start(f);
	wait_notify(f, "READY=1");
	wait_registered(f, 15);
	assert_int_equal(acts_in_store(f, "SELECT count(DISTINCT act_id) FROM acts"), 15);
	assert_int_equal(acts_in_store(f, "SELECT count(*) FROM recipients"), 15);
	wait_entries(f, "work", 15);
	assert_int_equal(th_outbox_entries(f->root, "rejected"), 2);
	assert_int_equal(th_outbox_entries(f->root, "new"), 0);

	/* SIGTERM: a clean stop, announced to systemd. */
	assert_int_equal(stop_term(f), 0);
	wait_notify(f, "STOPPING=1");

	/* status: one line per act, personal data masked unless asked for. */
	assert_int_equal(status(f, false, &out, NULL, NULL, NULL), 0);
	assert_int_equal(lines(sb_buf_cstr(&out)), 1 + 15 + 2);
	assert_non_null(strstr(sb_buf_cstr(&out), "TS************1C"));
	assert_null(strstr(sb_buf_cstr(&out), "TSTMRA80A01H501C"));
	assert_int_equal(status(f, true, &out, "TSTMRA80A01H501C", NULL, NULL), 0);
	assert_int_equal(lines(sb_buf_cstr(&out)), 1 + 13);   /* fine-1 and the 12 copies */
	assert_non_null(strstr(sb_buf_cstr(&out), "TSTMRA80A01H501C"));
	assert_int_equal(status(f, false, &out, "company-1", NULL, NULL), 0);
	assert_int_equal(lines(sb_buf_cstr(&out)), 2);
	assert_non_null(strstr(sb_buf_cstr(&out), "upload: "));
	/* The rejected ones say what was wrong and where reason.json is. */
	assert_int_equal(status(f, false, &out, "--state", "rejected", NULL), 0);
	assert_int_equal(lines(sb_buf_cstr(&out)), 3);
	assert_non_null(strstr(sb_buf_cstr(&out), "subject: required reason: rejected/broken-1"));
	assert_non_null(strstr(sb_buf_cstr(&out),
			       "operator.userId: "
			       "operator is not listed in [office.tributi] operators"));
	assert_int_equal(status(f, false, &out, "--office", "polizia-municipale", "--json"), 0);
	assert_int_equal(sb_json_parse(out.buf, out.len, 1 << 20, "status", &arr, &err), 0);
	assert_int_equal(json_array_size(arr), 15);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "state")),
			    "registered");
	assert_non_null(strstr(sb_buf_cstr(&out), "\"recipientName\":\"M. T.\""));
	json_decref(arr);
	assert_int_equal(status(f, false, &out, "no-such-act", NULL, NULL), 1);
	assert_int_equal(status(f, false, &out, "--state", "bogus", NULL), 2);
	sb_buf_release(&out);
}

static void test_svc_run__a_bad_configuration_is_refused(void **state)
{
	struct fx *f = *state;
	struct sb_buf err_out = SB_BUF_INIT(1 << 16);
	char *b = bin(), *missing = sb_xasprintf("%s/none.ini", f->tmp);
	const char *argv[] = { b, "-c", missing, "run", NULL };
	const char *argv2[] = { b, "run", "extra", NULL };

	assert_int_equal(th_run(argv, NULL, &err_out), 2);
	assert_true(err_out.len > 0);
	assert_int_equal(th_run(argv2, NULL, NULL), 2);
	free(b);
	free(missing);
	sb_buf_release(&err_out);
}

static void test_svc_run__a_group_readable_pii_key_stops_the_start(void **state)
{
	struct fx *f = *state;
	struct sb_buf err_out = SB_BUF_INIT(1 << 16);
	char *b = bin(), *key = sb_xasprintf("%s/pii.key", f->tmp), *line, *cfg;
	const char *argv[] = { b, "-c", f->cfg, "run", NULL };

	th_write_str(key, "0123456789abcdef0123456789abcdef\n", 0640);
	/* [service] is the first section: put the key right under its header. */
	cfg = th_read(f->cfg, NULL);
	line = sb_xasprintf("[service]\npii_key_file = %s\n%s", key, cfg + strlen("[service]\n"));
	th_write_str(f->cfg, line, 0600);
	assert_int_equal(th_run(argv, NULL, &err_out), 2);
	assert_non_null(strstr(sb_buf_cstr(&err_out), "pii_key_file"));
	/* Too short a key, with the right mode: refused by run itself. */
	th_write_str(key, "short\n", 0600);
	sb_buf_reset(&err_out);
	assert_int_equal(th_run(argv, NULL, &err_out), 2);
	assert_non_null(strstr(sb_buf_cstr(&err_out), "shorter than 16 bytes"));
	free(cfg);
	free(line);
	free(key);
	free(b);
	sb_buf_release(&err_out);
}

static void test_svc_run__status_reports_a_store_it_cannot_open(void **state)
{
	struct fx *f = *state;
	struct sb_buf out = SB_BUF_INIT(1 << 16), err_out = SB_BUF_INIT(1 << 16);
	char *b = bin(), *cfg = th_read(f->cfg, NULL), *bad;
	const char *argv[] = { b, "-c", f->cfg, "status", NULL };

	/* The store path names a folder. */
	bad = sb_xasprintf("%.*s%s%s", (int)(strstr(cfg, f->db) - cfg), cfg, f->tmp,
			   strstr(cfg, f->db) + strlen(f->db));
	th_write_str(f->cfg, bad, 0600);
	assert_int_equal(th_run(argv, &out, &err_out), 4);
	assert_int_equal(out.len, 0);
	assert_non_null(strstr(sb_buf_cstr(&err_out), "store"));
	free(bad);
	free(cfg);
	free(b);
	sb_buf_release(&out);
	sb_buf_release(&err_out);
}

static void test_svc_run__the_example_configuration_is_valid(void **state)
{
	struct fx *f = *state;
	char *example = th_read("contrib/send-bridge.ini.example", NULL), *b = bin();
	char *key = sb_xasprintf("%s/secret", f->tmp),
	     *ini = sb_xasprintf("%s/example.ini", f->tmp);
	const char *argv[] = { b, "-c", ini, "config",
			 "check", NULL };
	struct sb_buf text = SB_BUF_INIT(1 << 20), out = SB_BUF_INIT(1 << 16);
	static const char *const paths[] = { "/srv/send-bridge/outbox",
					     "/var/lib/send-bridge/send-bridge.db",
					     "/etc/send-bridge/send-api-key",
					     "/etc/send-bridge/pdnd-client.pem" };

	assert_non_null(example);
	th_write_str(key, "not really a key\n", 0600);
	/* The same file with its paths moved into the test's folder. */
	for (const char *p = example; *p;) {
		size_t k;

		for (k = 0; k < SB_ARRAY_SIZE(paths); k++)
			if (!strncmp(p, paths[k], strlen(paths[k])))
				break;
		if (k < SB_ARRAY_SIZE(paths)) {
			sb_buf_adds(&text, k < 2 ? f->tmp : key);
			if (k == 1)
				sb_buf_adds(&text, "/example.db");
			p += strlen(paths[k]);
		} else {
			sb_buf_addch(&text, *p++);
		}
	}
	th_write_str(ini, sb_buf_cstr(&text), 0600);
	assert_int_equal(th_run(argv, &out, NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&out), "is valid (2 office(s))"));
	sb_buf_release(&text);
	sb_buf_release(&out);
	free(example);
	free(b);
	free(key);
	free(ini);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_svc_run__a_service_under_systemd,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_run__a_bad_configuration_is_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_svc_run__the_example_configuration_is_valid,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_svc_run__a_group_readable_pii_key_stops_the_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_run__status_reports_a_store_it_cannot_open,
						setup, teardown),
	};
	int rc;

	sb_http_global_init();
	rc = cmocka_run_group_tests_name("svc_run", tests, NULL, NULL);
	sb_http_global_cleanup();
	return rc;
}
