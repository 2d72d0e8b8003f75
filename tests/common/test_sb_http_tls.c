/*
 * TLS verification is always on (common/sb_http.c): against a real TLS
 * server on loopback (`openssl s_server`) with a certificate from a CA made
 * for the test, a request fails without that CA and succeeds once the CA
 * bundle is configured; a certificate for another name fails even then.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_http.h"
#include "th.h"

static char *dir;

static void openssl(const char *const *args)
{
	const char *argv[32];
	size_t n = 0;
	struct sb_buf err = SB_BUF_INIT(1 << 16);

	argv[n++] = "/usr/bin/openssl";
	for (; *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (th_run(argv, NULL, &err) != 0)
		fail_msg("openssl %s failed: %s", argv[1], sb_buf_cstr(&err));
	sb_buf_release(&err);
}

static char *p(const char *name)
{
	return sb_xasprintf("%s/%s", dir, name);
}

/* A CA, and a server certificate for subject_alt (e.g. "IP:127.0.0.1") signed by it. */
static void make_pki(const char *tag, const char *subject_alt)
{
	char *ca = p("ca.pem"), *cakey = p("ca.key"), *ext = p("ext.cnf");
	char *key = sb_xasprintf("%s/%s.key", dir, tag), *csr = sb_xasprintf("%s/%s.csr", dir, tag);
	char *crt = sb_xasprintf("%s/%s.pem", dir, tag), *line;

	if (access(ca, F_OK) != 0)
		openssl((const char *[]){ "req", "-x509", "-newkey", "rsa:2048", "-nodes",
					  "-keyout", cakey, "-out", ca, "-days", "2",
					  "-subj", "/CN=Test CA", NULL });
	line = sb_xasprintf("subjectAltName=%s\n", subject_alt);
	th_write_str(ext, line, 0600);
	openssl((const char *[]){ "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
				  csr, "-subj", "/CN=server", NULL });
	openssl((const char *[]){ "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey,
				  "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext,
				  NULL });
	free(ca); free(cakey); free(ext); free(key); free(csr); free(crt); free(line);
}

static pid_t serve(const char *tag, unsigned *port_out)
{
	char *key = sb_xasprintf("%s/%s.key", dir, tag), *crt = sb_xasprintf("%s/%s.pem", dir, tag);
	char *log = sb_xasprintf("%s/%s.log", dir, tag);
	pid_t pid = 0;

	/* s_server cannot pick a free port by itself: try a few in the dynamic range. */
	for (unsigned attempt = 0; attempt < 20 && !pid; attempt++) {
		unsigned port = 20000 + (unsigned)((getpid() * 7 + attempt * 131) % 30000);
		char accept[32];

		snprintf(accept, sizeof(accept), "127.0.0.1:%u", port);
		pid = th_spawn((const char *[]){ "/usr/bin/openssl", "s_server", "-accept", accept,
						 "-cert", crt, "-key", key, "-www", "-quiet",
						 NULL }, log);
		if (th_wait_port(port)) {
			*port_out = port;
		} else {
			th_kill(pid);
			pid = 0;
		}
	}
	assert_true(pid > 0);
	free(key); free(crt); free(log);
	return pid;
}

static int get(const char *ca_file, unsigned port, long *status, struct sb_err *err)
{
	struct sb_http_opts o = { .timeout_ms = 5000, .ca_file = ca_file };
	struct sb_http *h = NULL;
	struct sb_http_resp r;
	char url[64];
	struct sb_http_req req = { "GET", url, NULL, NULL, 0, NULL, NULL, 0, 0 };
	int rc;

	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/", port);
	assert_int_equal(sb_http_new(&h, &o, err), 0);
	rc = sb_http_do(h, &req, &r, err);
	*status = r.status;
	sb_http_resp_release(&r);
	sb_http_free(h);
	return rc;
}

static void test_sb_http_tls__verification_cannot_be_skipped(void **state)
{
	struct sb_err err = SB_ERR_INIT;
	char *ca = p("ca.pem");
	unsigned port = 0;
	long status = 0;
	pid_t pid;

	(void)state;
	make_pki("good", "IP:127.0.0.1");
	pid = serve("good", &port);
	/* the system store does not know the test CA */
	assert_int_equal(get(NULL, port, &status, &err), SB_ECONFIG);
	assert_int_equal(err.code, SB_ECONFIG);
	assert_non_null(strstr(err.msg, "tls verification failed"));
	/* with the CA bundle configured it works */
	assert_int_equal(get(ca, port, &status, &err), 0);
	assert_int_equal(status, 200);
	th_kill(pid);

	/* a certificate for another name fails even with the right CA */
	make_pki("other", "DNS:protocollo.example.it");
	pid = serve("other", &port);
	assert_int_equal(get(ca, port, &status, &err), SB_ECONFIG);
	assert_non_null(strstr(err.msg, "tls verification failed"));
	th_kill(pid);
	free(ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		th_unit_test(test_sb_http_tls__verification_cannot_be_skipped),
	};
	int rc;

	sb_http_global_init();
	dir = th_tmpdir("tls");
	rc = cmocka_run_group_tests_name("sb_http_tls", tests, NULL, NULL);
	th_rmrf(dir);
	free(dir);
	sb_http_global_cleanup();
	return rc;
}
