/*
 * Contract test: the requests the client sends, and the replies send-sim
 * gives, checked against the official production bundle
 * (../shared/specs/send/pn-delivery_api-external-b2b-pa-bundle.main.yaml) by
 * an independent validator, Stoplight Prism in proxy mode, which forwards
 * every call and logs each violation of the bundle:
 *
 *   client --> prism (validates request and reply) --> send-sim
 *
 * Prism is installed from npm into <build>/tools on first use (or taken
 * from $SB_PRISM). Where ../shared or npm is missing the test says so and is
 * skipped: cmocka reports it as SKIPPED, never as passed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "send_fixture.h"

#define PRISM_VERSION "5.14.2"
#define SPEC "specs/send/pn-delivery_api-external-b2b-pa-bundle.main.yaml"

/*
 * What counts as a contract violation in Prism's log (run without --errors,
 * so that it forwards and reports): its validator's "Violation: <where>
 * <message>" lines, for requests and replies alike, and a route it does not
 * know. One exception, a defect of the bundle itself: a timeline element's
 * `details` is a oneOf of 45 schemas without a discriminator, several with
 * no required property, so no object can match exactly one of them (SEND's
 * own replies fail it too). Violations located in a reply's `...details` are
 * ignored; every request violation counts.
 */
static size_t count_violations(const char *log)
{
	size_t n = 0;

	for (const char *p = log; p && *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[1024];

		snprintf(line, sizeof(line), "%.*s",
			 (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
		if (strstr(line, "NO_PATH_MATCHED_ERROR") || strstr(line, "UNPROCESSABLE_ENTITY"))
			n++;
		else if (strstr(line, "Violation:")) {
			const char *where = strstr(line, "Violation:") + 10;
			const char *sp = strchr(where + 1, ' ');
			char loc[512];

			snprintf(loc, sizeof(loc), "%.*s", sp ? (int)(sp - where) : 0, where);
			if (!strstr(loc, "response") || !strstr(loc, ".details"))
				n++;
		}
		p = eol ? eol + 1 : NULL;
	}
	return n;
}

static void test_send_contract__violations_are_counted(void **state)
{
	static const struct {
		const char *log;
		size_t want;
	} cases[] = {
		{ "[HTTP SERVER] post /delivery/v2.5/requests info Request received\n"
		  "[PROXY] info The upstream call to /delivery/v2.5/requests has returned 202\n",
		  0 },
		{ "[VALIDATOR] warning Violation: request.body.recipients.0.taxId must match\n",
		  1 },
		{ "error Request terminated with error: https://stoplight.io/prism/errors#"
		  "UNPROCESSABLE_ENTITY: Invalid request\n"
		  "[VALIDATOR] error Violation: response.body must have required property 'iun'\n",
		  2 },
		{ "error https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR\n", 1 },
		/* the bundle's unsatisfiable oneOf on timeline details: not the client's fault */
		{ "error Violation: response.body.0.element.details Response body property "
		  "0.element.details must match exactly one schema in oneOf\n"
		  "error Violation: response.body.timeline.3.details must have required property\n"
		  "error Violation: request.body.recipients.0.details must be string\n", 1 },
	};

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++)
		assert_int_equal(count_violations(cases[i].log), cases[i].want);
}

/* Prism's path, installing it from npm when needed; NULL (with a reason printed) if impossible. */
static char *prism_path(void)
{
	const char *env = getenv("SB_PRISM");
	char *tools = sb_xasprintf("%s/tools", th_build_dir());
	char *bin = env && *env ? sb_xstrdup(env) :
		    sb_xasprintf("%s/node_modules/.bin/prism", tools);
	char *cmd;
	const char *argv[4];

	if (access(bin, X_OK) == 0) {
		free(tools);
		return bin;
	}
	cmd = sb_xasprintf("command -v npm >/dev/null 2>&1 || exit 3; mkdir -p '%s' && "
			   "npm install --prefix '%s' --no-audit --no-fund --silent "
			   "@stoplight/prism-cli@" PRISM_VERSION " >'%s/npm.log' 2>&1",
			   tools, tools, tools);
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = cmd;
	argv[3] = NULL;
	fprintf(stderr, "contract: installing @stoplight/prism-cli@%s into %s\n", PRISM_VERSION,
		tools);
	if (th_run(argv, NULL, NULL) != 0 || access(bin, X_OK) != 0) {
		fprintf(stderr, "contract: npm is missing or could not install prism"
			" (see %s/npm.log)\n", tools);
		free(bin);
		bin = NULL;
	}
	free(cmd);
	free(tools);
	return bin;
}

struct prism {
	pid_t pid;
	char url[64];
	char *log;
};

/* The running Prism, stopped by the group tear-down even when a check failed mid-test. */
static pid_t live_prism;

static bool prism_start(struct prism *p, const char *bin, const char *spec, const char *upstream,
			const char *dir)
{
	unsigned port = th_free_port();
	char portstr[16];

	snprintf(portstr, sizeof(portstr), "%u", port);
	snprintf(p->url, sizeof(p->url), "http://127.0.0.1:%u", port);
	p->log = sb_xasprintf("%s/prism.log", dir);
	p->pid = fork();
	if (p->pid == 0) {
		int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		setpgid(0, 0);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, "proxy", spec, upstream, "--host", "127.0.0.1", "--port", portstr,
		      (char *)NULL);
		_exit(127);
	}
	live_prism = p->pid;
	/* Prism reads the 450 KB bundle first: allow it a minute on a slow machine. */
	for (int i = 0; i < 600; i++) {
		char *txt = th_read(p->log, NULL);
		bool up = txt && strstr(txt, "Prism is listening");
		struct timespec ts = { 0, 100 * 1000000L };

		free(txt);
		if (up)
			return true;
		if (waitpid(p->pid, NULL, WNOHANG) == p->pid)
			return false;
		nanosleep(&ts, NULL);
	}
	return false;
}

static void prism_kill(pid_t pid)
{
	if (pid > 0) {
		kill(-pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	if (pid == live_prism)
		live_prism = 0;
}

static void prism_stop(struct prism *p)
{
	prism_kill(p->pid);
	free(p->log);
}

static int noop_store(void *ctx, const struct send_event *ev, size_t n, struct sb_err *err)
{
	(void)ev;
	(void)err;
	*(size_t *)ctx += n;
	return 0;
}

/* Every endpoint the client uses, once, through Prism. */
static void contract_flow(struct sf *f)
{
	struct sf_notif x;
	struct send_request_status st;
	struct send_sent_notification *n;
	struct send_legal_fact *lf = NULL;
	struct send_price price;
	struct send_attachment_sel doc = { SEND_ATT_DOCUMENT, 0, -1 };
	struct send_attachment_sel pay = { SEND_ATT_PAGOPA, 0, 0 };
	struct sb_err err = SB_ERR_INIT;
	char stream[37], cursor[SEND_EVENT_ID_MAX] = "", id[SEND_REQUEST_ID_MAX];
	char *out = sb_xasprintf("%s/contract.pdf", f->dir);
	size_t nlf = 0, events = 0, got = 0;
	bool existing = false;
	long ra;

#define OK(call) do { if ((call) != 0) fail_msg("%s: %s", #call, err.msg); } while (0)
	OK(send_stream_create(f->c, stream, &err));
	n = sf_deliver(f, &x, "mario.rossi@pec.example.it", NULL, "EFFECTIVE_DATE", &st);
	assert_non_null(n);
	send_sent_notification_free(n);
	OK(send_notification_create(f->c, &x.n, &f->retry, id, &existing, &err));
	assert_true(existing);   /* the 409 and its reconciliation went through Prism too */
	OK(send_request_status_find(f->c, x.proto, x.token, &st, &err));
	OK(send_legal_facts_list(f->c, st.iun, &lf, &nlf, &err));
	assert_true(nlf > 0);
	OK(send_legal_fact_download(f->c, st.iun, lf[0].key, out, 30000, &f->retry, NULL, NULL,
				    &err));
	OK(send_attachment_download(f->c, st.iun, &doc, x.up[0].ref.sha256, out, 10000, &f->retry,
				    NULL, &err));
	OK(send_attachment_download(f->c, st.iun, &pay, x.up[1].ref.sha256, out, 10000, &f->retry,
				    NULL, &err));
	OK(send_price_get(f->c, x.notice[0], &price, &err));
	do {
		OK(send_stream_poll(f->c, stream, cursor, noop_store, &events, &got, &ra, &err));
	} while (got > 0);
	assert_true(events > 0);
	OK(send_notification_cancel(f->c, st.iun, &err));
#undef OK
	send_legal_facts_free(lf, nlf);
	sf_notif_release(&x);
	free(out);
}

static void test_send_contract__requests_and_replies_match_the_bundle(void **state)
{
	struct sf *f = *state;
	char *spec = th_shared(SPEC);
	char *bin = NULL, *extra = NULL, *log;
	struct prism p = { 0 };
	struct sb_err err = SB_ERR_INIT;
	size_t bad;

	if (!spec) {
		fprintf(stderr, "contract: ../shared/" SPEC " is missing: contract NOT checked\n");
		skip();
	}
	bin = prism_path();
	if (!bin) {
		free(spec);
		fprintf(stderr, "contract: prism unavailable: contract NOT checked\n");
		skip();
	}
	if (!prism_start(&p, bin, spec, f->sim.url, f->dir)) {
		log = th_read(p.log, NULL);
		fprintf(stderr, "contract: prism did not start:\n%s\n", log ? log : "");
		free(log);
		prism_stop(&p);
		fail_msg("prism did not start");
	}
	/*
	 * The client talks to Prism; pre-signed URLs still point at send-sim
	 * (S3 is not SEND's API).
	 */
	snprintf(f->sim.url, sizeof(f->sim.url), "%s", p.url);
	assert_int_equal(sf_config(f, NULL, NULL, &err), 0);
	send_client_free(f->c);
	assert_int_equal(send_client_new(&f->c, f->cfg, NULL, &err), 0);
	contract_flow(f);
	log = th_read(p.log, NULL);
	bad = count_violations(log);
	if (bad) {
		for (char *line = strtok_r(log, "\n", &extra); line;
		     line = strtok_r(NULL, "\n", &extra))
			if (count_violations(line))
				fprintf(stderr, "contract: %s\n", line);
		free(log);
		log = th_read(p.log, NULL);
	}
	assert_int_equal(bad, 0);
	/* requests really went through */
	assert_non_null(strstr(log ? log : "", "has returned 202"));
	free(log);
	prism_stop(&p);
	free(bin);
	free(spec);
}

static int setup(void **state)
{
	static const char *const args[] = { "--send-accept-ms", "50",
					    "--send-step-ms", "30", NULL };

	return sf_group_setup(state, args);
}

static int teardown(void **state)
{
	prism_kill(live_prism);
	return sf_group_teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_contract__violations_are_counted),
		cmocka_unit_test(test_send_contract__requests_and_replies_match_the_bundle),
	};

	sb_http_global_init();
	return cmocka_run_group_tests_name("send_contract", tests, setup, teardown);
}
