/*
 * The protocol commands of the send-bridge binary, and the daily register
 * they write: a real store populated through the library, a real
 * configuration, the binary run as a process; the register checked as XML,
 * PDF/A (Ghostscript output) and SHA-256 against openssl's digest.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_time.h"
#include "th.h"
#include "proto.h"
#include "proto_int.h"
#include "svc_store.h"
#include "proto_fixture.h"

struct ct {
	struct pf *f;
	char *ini;
	char *bin;
	char *out;
};

static int setup(void **state)
{
	struct ct *t = sb_xcalloc(1, sizeof(*t));
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *a = NULL, *b = NULL, *r = NULL;
	struct proto_receipt rc_in;
	struct pf_act act;
	char *api, *outbox, *ini_text;

	t->f = pf_new("cli-protocol");
	/* 2026-11-18: two acts, a receipt, a correction and an annulment. */
	pf_act_init(t->f, &act, "cli-act-1");
	assert_int_equal(proto_register_outgoing(t->f->p, &act.in, &a, &err), 0);
	act.in.act_id = "cli-act-2";
	act.in.subject = "Avviso di accertamento IMU 2024 (àèìòù)";
	assert_int_equal(proto_register_outgoing(t->f->p, &act.in, &b, &err), 0);
	memset(&rc_in, 0, sizeof(rc_in));
	rc_in.legal_fact_id = "LF-CLI-1";
	rc_in.category = "SENDER_ACK";
	rc_in.iun = "ABCD-EFGH-IJKL-202611-M-1";
	rc_in.outgoing = a->id;
	rc_in.pdf_path = t->f->pdf2;
	assert_int_equal(proto_register_receipt(t->f->p, &rc_in, &r, &err), 0);
	assert_int_equal(proto_correct(t->f->p, &a->id, "assignment", "tributi", "op.verdi",
				       "competenza", &err), 0);
	proto_reg_free(a);
	proto_reg_free(b);
	proto_reg_free(r);

	api = sb_xasprintf("%s/api.key", t->f->dir);
	th_write_str(api, "k\n", 0600);
	outbox = sb_xasprintf("%s/outbox", t->f->dir);
	th_mkdirs(outbox);
	t->out = sb_xasprintf("%s/daily", t->f->dir);
	th_mkdirs(t->out);
	ini_text = sb_xasprintf("[service]\nsender_denomination = Comune di Esempio\n"
				"sender_tax_id = 00000000000\n[outbox]\ndir = %s\n"
				"[store]\npath = %s\n[send]\napi_key_file = %s\n"
				"[protocol]\nipa_code = c_x000\naoo_code = A1B2C3D\n"
				"segnatura_xsd = %s\nseal_key_file = %s\nseal_cert_file = %s\n",
				outbox, t->f->db_path, api, t->f->xsd, t->f->key, t->f->cert);
	t->ini = sb_xasprintf("%s/send-bridge.ini", t->f->dir);
	th_write_str(t->ini, ini_text, 0600);
	t->bin = sb_xasprintf("%s/send-bridge", th_build_dir());
	free(api);
	free(outbox);
	free(ini_text);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct ct *t = *state;

	pf_free(t->f);
	free(t->ini);
	free(t->bin);
	free(t->out);
	free(t);
	return 0;
}

/* Run send-bridge -c INI protocol ARGS...; NULL-terminated. */
static int run(struct ct *t, struct sb_buf *out, struct sb_buf *errb, ...)
{
	const char *args[24] = { t->bin, "-c", t->ini, "protocol" };
	size_t n = 4;
	va_list ap;
	const char *a;

	va_start(ap, errb);
	while ((a = va_arg(ap, const char *)) && n < 23)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	sb_buf_reset(out);
	sb_buf_reset(errb);
	return pf_run(args, out, errb);
}

static void test_cli_protocol__show_segnatura_annul(void **state)
{
	struct ct *t = *state;
	struct sb_buf out = SB_BUF_INIT(SB_MAX_DEFAULT), errb = SB_BUF_INIT(65536);
	char *path;
	const char *lint[] = { "/usr/bin/xmllint", "--noout", "--nonet", "--schema", t->f->xsd,
			       NULL, NULL };

	assert_int_equal(run(t, &out, &errb, "show", "PG/2026/0000001", NULL), 0);
	assert_non_null(strstr(out.buf, "PG/2026/0000001  2026-11-18"));
	assert_non_null(strstr(out.buf, "ricevute: 1"));
	assert_non_null(strstr(out.buf, "SENDER_ACK"));
	assert_non_null(strstr(out.buf, "modifica assignment"));
	assert_non_null(strstr(out.buf, "notifica: stato non noto"));
	/* Once the service has a notification for that number, show reports its status. */
	assert_int_equal(sqlite3_exec(svc_store_db(t->f->store),
				      "INSERT INTO acts"
				      " (id, act_id, office, subject, state, manifest,"
				      " created_at, updated_at) VALUES"
				      " (1, 'cli-act-1', 'tributi', 's',"
				      " 'delivering', '{}', 0, 0);"
				      "INSERT INTO notifications"
				      " (act, protocol_number, idempotence_token,"
				      " iun, status, created_at, updated_at) VALUES"
				      " (1, 'PG/2026/0000001',"
				      " 't', 'ABCD-EFGH-IJKL-202611-M-1', 'DELIVERING', 0, 0)",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(run(t, &out, &errb, "show", "PG/2026/0000001", NULL), 0);
	assert_non_null(strstr(out.buf,
			       "notifica: IUN ABCD-EFGH-IJKL-202611-M-1, stato DELIVERING"));
	/* Personal data masked unless asked for. */
	assert_null(strstr(out.buf, "Mario Rossi"));
	assert_null(strstr(out.buf, "RSSMRA80A01H501U"));
	assert_int_equal(run(t, &out, &errb, "show", "--show-personal-data", "2026/0000001", NULL),
			 0);
	assert_non_null(strstr(out.buf, "Mario Rossi"));

	assert_int_equal(run(t, &out, &errb, "segnatura", "PG/2026/0000003", NULL), 0);
	assert_int_equal(strncmp(out.buf, "<?xml", 5), 0);
	path = sb_xasprintf("%s/seg.xml", t->f->dir);
	th_write_str(path, out.buf, 0644);
	lint[5] = path;
	assert_int_equal(pf_run(lint, NULL, NULL), 0);
	free(path);

	assert_int_equal(run(t, &out, &errb, "annul", "PG/2026/0000002", "--reason",
			     "destinatario errato", "--authorised-by", "determina 5/2026",
			     "--author", "resp.protocollo", NULL), 0);
	assert_int_equal(run(t, &out, &errb, "show", "PG/2026/0000002", NULL), 0);
	assert_non_null(strstr(out.buf, "*** ANNULLATA ***"));
	assert_non_null(strstr(out.buf, "determina 5/2026"));
	/* Errors: annul twice, unknown number, bad number, missing options. */
	assert_int_equal(run(t, &out, &errb, "annul", "PG/2026/0000002", "--reason", "x",
			     "--authorised-by", "y", "--author", "z", NULL), 1);
	assert_non_null(strstr(errb.buf, "already annulled"));
	assert_int_equal(run(t, &out, &errb, "show", "PG/2026/0000099", NULL), 1);
	assert_true(errb.len > 0);
	assert_int_equal(run(t, &out, &errb, "show", "PG/26/x", NULL), 2);
	assert_int_equal(run(t, &out, &errb, "annul", "PG/2026/0000001", "--reason", "x", NULL), 2);
	assert_non_null(strstr(errb.buf, "authorised-by"));
	assert_int_equal(run(t, &out, &errb, "frobnicate", NULL), 2);
	sb_buf_release(&out);
	sb_buf_release(&errb);
}

static char *file_in(struct ct *t, const char *name)
{
	return sb_xasprintf("%s/%s", t->out, name);
}

static void test_cli_protocol__daily_register(void **state)
{
	struct ct *t = *state;
	struct sb_buf out = SB_BUF_INIT(SB_MAX_DEFAULT), errb = SB_BUF_INIT(65536);
	char *xml_path = file_in(t, "registro-giornaliero-PG-2026-11-18.xml");
	char *pdf_path = file_in(t, "registro-giornaliero-PG-2026-11-18.pdf");
	char *sum_path = file_in(t, "registro-giornaliero-PG-2026-11-18.sha256");
	char *xml, *pdf, *sums;
	size_t pdf_len;
	const char *paths[] = { xml_path, pdf_path };

	assert_int_equal(run(t, &out, &errb, "daily-register", "--date", "2026-11-18", "--out",
			     t->out, NULL), 0);
	assert_non_null(strstr(out.buf, xml_path));
	xml = th_read(xml_path, NULL);
	pdf = th_read(pdf_path, &pdf_len);
	sums = th_read(sum_path, NULL);
	assert_non_null(xml);
	assert_non_null(pdf);
	assert_non_null(sums);
	assert_non_null(strstr(xml, "numero=\"PG/2026/0000001\""));
	assert_non_null(strstr(xml, "numero=\"PG/2026/0000002\""));
	assert_non_null(strstr(xml, "numero=\"PG/2026/0000003\""));
	assert_non_null(strstr(xml, "<Riferimento>PG/2026/0000001</Riferimento>"));
	assert_non_null(strstr(xml, "campo=\"assignment\""));
	assert_non_null(strstr(xml, "registrazioni=\"3\""));
	assert_non_null(strstr(xml, "àèìòù"));
	/* A PDF/A-2 as Ghostscript writes it: identification in XMP, sRGB output intent. */
	assert_true(pdf_len > 1000);
	assert_int_equal(memcmp(pdf, "%PDF-", 5), 0);
	assert_non_null(memmem(pdf, pdf_len, "pdfaid:part", 11));
	assert_non_null(memmem(pdf, pdf_len, "GTS_PDFA1", 9));
	/* The digests, checked by openssl. */
	for (size_t i = 0; i < 2; i++) {
		const char *args[] = { "/usr/bin/openssl", "dgst", "-sha256", "-r",
				       paths[i], NULL };
		char line[256];

		sb_buf_reset(&out);
		assert_int_equal(pf_run(args, &out, NULL), 0);
		snprintf(line, sizeof(line), "%.64s  %s\n", out.buf, strrchr(paths[i], '/') + 1);
		if (!strstr(sums, line))
			fail_msg("%s not in the .sha256 file", line);
	}
	free(xml);
	free(pdf);
	free(sums);

	/* Today's register lists today's annulment of an earlier registration. */
	{
		char today[11], *x2_path, *x2;

		assert_int_equal(run(t, &out, &errb, "annul", "PG/2026/0000003",
				     "--reason", "doppia", "--authorised-by", "det. 6/2026",
				     "--author", "resp", NULL), 0);
		proto_rome_time(sb_now(), NULL, today, NULL);
		assert_int_equal(run(t, &out, &errb, "daily-register", "--date", today, "--out",
				     t->out, NULL), 0);
		x2_path = sb_xasprintf("%s/registro-giornaliero-PG-%s.xml", t->out, today);
		x2 = th_read(x2_path, NULL);
		assert_non_null(x2);
		assert_non_null(strstr(x2,
				       "registrazione=\"PG/2026/0000003\" campo=\"annulment\""));
		assert_non_null(strstr(x2, "<Provvedimento>det. 6/2026</Provvedimento>"));
		free(x2);
		free(x2_path);
	}
	/* Errors: a bad date, a missing folder, missing options. */
	assert_int_equal(run(t, &out, &errb, "daily-register", "--date", "2026-02-30", "--out",
			     t->out, NULL), 1);
	assert_non_null(strstr(errb.buf, "date"));
	assert_int_equal(run(t, &out, &errb, "daily-register", "--date", "2026-11-18", "--out",
			     "/nonexistent/dir", NULL), 1);
	assert_int_equal(run(t, &out, &errb, "daily-register", "--date", "2026-11-18", NULL), 2);
	sb_buf_release(&out);
	sb_buf_release(&errb);
	free(xml_path);
	free(pdf_path);
	free(sum_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cli_protocol__show_segnatura_annul, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cli_protocol__daily_register, setup, teardown),
	};

	return cmocka_run_group_tests_name("cli_protocol", tests, NULL, NULL);
}
