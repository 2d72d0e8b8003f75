/*
 * agid_pdfa: the veraPDF corpus with the verdicts and clauses its
 * SOURCES.md gives (read from ../shared at run time), and the project's own
 * fixtures made here: Ghostscript PDF/A-2b, plain PDF, encrypted (qpdf),
 * JavaScript, truncated, garbage, a decompression bomb and the caps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <zlib.h>

#include "sb_common.h"
#include "agid_pdfa.h"
#include "th.h"
#include "th_agid.h"

static char *tmp;
static char *gs_pdfa;   /* one Ghostscript PDF/A-2b shared by several tests */

static int setup(void **state)
{
	(void)state;
	tmp = th_tmpdir("agid-pdfa");
	gs_pdfa = tha_pdfa(tmp, "gs.pdf", "Verbale di prova", 3);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmrf(tmp);
	free(tmp);
	free(gs_pdfa);
	return 0;
}

static struct agid_pdfa_report *check(const char *path, enum agid_flavour profile)
{
	struct agid_pdfa_opts o = AGID_PDFA_OPTS_INIT;
	struct agid_pdfa_report *r = NULL;
	struct sb_err err = SB_ERR_INIT;

	o.profile = profile;
	assert_int_equal(agid_pdfa_check_file(&r, path, &o, &err), 0);
	assert_non_null(r);
	return r;
}

static void print_findings(const char *what, const struct agid_pdfa_report *r)
{
	for (size_t i = 0; i < r->nfindings; i++)
		print_message("  %s: %s %s\n", what, r->findings[i].clause, r->findings[i].msg);
}

/* Each corpus row: | file | bytes | sha | flavour | clause | **pass|fail** | ... */
static void test_agid_pdfa__verapdf_corpus(void **state)
{
	char *sources = th_shared("fixtures-external/pdfa/SOURCES.md"), *text, *line, *save = NULL;
	size_t n = 0, rows = 0, wrong = 0;

	(void)state;
	if (!sources)
		fail_msg("../shared/fixtures-external/pdfa/SOURCES.md is missing: "
			 "corpus not checked");
	text = th_read(sources, &n);
	assert_non_null(text);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char file[128], clause[32], flavour[8], verdict[16], *rel, *path;
		struct agid_pdfa_report *r;
		enum agid_flavour f;
		bool pass;

		if (sscanf(line, "| %127s | %*s | %*s | %7s | %31s | %15s |", file, flavour, clause,
			   verdict) != 4 || strncmp(file, "pdfa", 4))
			continue;
		pass = !strcmp(verdict, "**pass**");
		assert_true(pass || !strcmp(verdict, "**fail**"));
		assert_int_equal(agid_flavour_parse(flavour, &f, NULL), 0);
		rel = sb_xasprintf("fixtures-external/pdfa/%s", file);
		path = th_shared(rel);
		if (!path)
			fail_msg("corpus file %s is missing", file);
		r = check(path, f);
		rows++;
		if (r->valid != pass || (!pass && !agid_pdfa_has_clause(r, clause))) {
			print_message("%s: expected %s (clause %s), got %s\n", file, verdict,
				      clause, r->valid ? "valid" : "invalid");
			print_findings(file, r);
			wrong++;
		}
		agid_pdfa_report_free(r);
		free(path);
		free(rel);
	}
	assert_int_equal(rows, 20);
	assert_int_equal(wrong, 0);
	free(text);
	free(sources);
}

/* The PDF/A-3b corpus file embeds a text file: allowed in part 3 only. */
static void test_agid_pdfa__embedded_files_per_part(void **state)
{
	char *p = th_shared("fixtures-external/pdfa/pdfa3b_6-8-t02-pass-a.pdf");
	struct agid_pdfa_report *r;

	(void)state;
	if (!p)
		fail_msg("../shared/fixtures-external/pdfa is missing: embedded files not checked");
	r = check(p, AGID_PDFA_3B);
	assert_true(r->valid);
	agid_pdfa_report_free(r);
	r = check(p, AGID_PDFA_2B);     /* part 2: the embedded file must be PDF/A-1 or -2 */
	assert_false(r->valid);
	assert_true(agid_pdfa_has_clause(r, "6.8"));
	agid_pdfa_report_free(r);
	r = check(p, AGID_PDFA_1B);     /* part 1: no embedded file at all */
	assert_false(r->valid);
	assert_true(agid_pdfa_has_clause(r, "6.1.11"));
	agid_pdfa_report_free(r);
	free(p);
}

static void test_agid_pdfa__ghostscript_pdfa2b_passes(void **state)
{
	struct agid_pdfa_report *r = check(gs_pdfa, AGID_PDFA_NONE);

	(void)state;
	print_findings("gs", r);
	assert_true(r->valid);
	assert_int_equal(r->claimed, AGID_PDFA_2B);
	assert_int_equal(r->profile, AGID_PDFA_2B);
	assert_int_equal(r->pages, 3);
	assert_string_equal(r->version, "1.7");
	assert_int_equal(r->nfindings, 0);
	assert_false(r->limit_hit);
	agid_pdfa_report_free(r);
	/* level a asks for a tagged document; Ghostscript's file is not tagged */
	r = check(gs_pdfa, AGID_PDFA_2A);
	assert_false(r->valid);
	assert_true(agid_pdfa_has_clause(r, "6.7.2.2"));
	agid_pdfa_report_free(r);
	/* the same file checked against part 1 rules: it claims part 2 */
	r = check(gs_pdfa, AGID_PDFA_1B);
	assert_false(r->valid);
	assert_true(agid_pdfa_has_clause(r, "6.7.11"));
	agid_pdfa_report_free(r);
}

static void test_agid_pdfa__plain_pdf_is_not_pdfa(void **state)
{
	char *p = tha_plain(tmp, "plain.pdf", NULL);
	struct agid_pdfa_report *r = check(p, AGID_PDFA_NONE);

	(void)state;
	assert_false(r->valid);
	assert_int_equal(r->claimed, AGID_PDFA_NONE);
	assert_true(agid_pdfa_has_clause(r, "6.6.4") || agid_pdfa_has_clause(r, "6.6.2.1"));
	agid_pdfa_report_free(r);
	free(p);
}

static void test_agid_pdfa__encrypted_file_fails_6_1_3(void **state)
{
	char *out = sb_xasprintf("%s/enc.pdf", tmp);
	const char *argv[] = { "qpdf", "--encrypt", "", "owner-secret", "256", "--",
			       gs_pdfa, out, NULL };
	struct agid_pdfa_report *r;

	(void)state;
	tha_run(argv);
	r = check(out, AGID_PDFA_2B);
	assert_false(r->valid);
	assert_true(agid_pdfa_has_clause(r, "6.1.3"));
	agid_pdfa_report_free(r);
	free(out);
}

static void test_agid_pdfa__javascript_fails(void **state)
{
	char *p = tha_plain(tmp, "js.pdf",
			    "[ {Catalog} << /OpenAction << /S /JavaScript /JS "
			    "(app.alert\\(1\\)) >> >> /PUT pdfmark");
	struct agid_pdfa_report *r = check(p, AGID_PDFA_2B);

	(void)state;
	assert_false(r->valid);
	assert_true(agid_pdfa_has_clause(r, "6.5.1"));
	agid_pdfa_report_free(r);
	r = check(p, AGID_PDFA_1B);
	assert_true(agid_pdfa_has_clause(r, "6.6.1"));
	agid_pdfa_report_free(r);
	free(p);
}

static void test_agid_pdfa__truncated_and_garbage_are_invalid(void **state)
{
	size_t len = 0;
	char *data = th_read(gs_pdfa, &len), *p = sb_xasprintf("%s/cut.pdf", tmp);
	char *g = sb_xasprintf("%s/garbage.pdf", tmp), *e = sb_xasprintf("%s/empty.pdf", tmp);
	unsigned char junk[4096];
	uint32_t x = 12345;
	struct agid_pdfa_report *r;

	(void)state;
	assert_non_null(data);
	for (size_t cut = len / 4; cut < len; cut += len / 4) {
		th_write(p, data, cut, 0644);
		r = check(p, AGID_PDFA_2B);
		assert_false(r->valid);
		assert_true(agid_pdfa_has_clause(r, "6.1.3") || agid_pdfa_has_clause(r, "6.1"));
		agid_pdfa_report_free(r);
	}
	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (unsigned char)(x >> 16);
	}
	th_write(g, junk, sizeof(junk), 0644);
	r = check(g, AGID_PDFA_NONE);
	assert_false(r->valid);
	assert_false(r->readable);
	assert_true(agid_pdfa_has_clause(r, "6.1.2"));
	agid_pdfa_report_free(r);
	th_write(e, "", 0, 0644);
	r = check(e, AGID_PDFA_2B);
	assert_false(r->valid);
	agid_pdfa_report_free(r);
	free(data);
	free(p);
	free(g);
	free(e);
}

/* An XMP stream that inflates to 64 MiB from a few dozen KiB: stopped at the stream cap. */
static void test_agid_pdfa__decompression_bomb_is_capped(void **state)
{
	size_t big = 64u * 1024u * 1024u, zlen = compressBound(big);
	unsigned char *zeros = sb_xcalloc(big, 1), *z = sb_xmalloc(zlen);
	uLongf outlen = zlen;
	char *head, *path = sb_xasprintf("%s/bomb.pdf", tmp), *body;
	struct tha_obj objs[4];
	struct agid_pdfa_report *r;

	(void)state;
	assert_int_equal(compress2(z, &outlen, zeros, big, 9), Z_OK);
	head = sb_xasprintf("<< /Type /Metadata /Subtype /XML /Filter /FlateDecode"
			    " /Length %lu >>\nstream\n", (unsigned long)outlen);
	body = sb_xmalloc(strlen(head) + outlen + 16);
	memcpy(body, head, strlen(head));
	memcpy(body + strlen(head), z, outlen);
	memcpy(body + strlen(head) + outlen, "\nendstream", 10);
	objs[0] = (struct tha_obj){ "<< /Type /Catalog /Pages 2 0 R /Metadata 4 0 R >>", 0 };
	objs[1] = (struct tha_obj){ "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 0 };
	objs[2] = (struct tha_obj){ "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>", 0 };
	objs[3] = (struct tha_obj){ body, strlen(head) + outlen + 10 };
	for (int i = 0; i < 3; i++)
		objs[i].len = strlen(objs[i].body);
	tha_layout(path, objs, 4, NULL, NULL);
	r = check(path, AGID_PDFA_2B);
	assert_false(r->valid);
	assert_true(agid_pdfa_has_clause(r, "6.6.2.1"));
	assert_true(r->limit_hit);
	agid_pdfa_report_free(r);
	free(zeros);
	free(z);
	free(head);
	free(body);
	free(path);
}

/* XMP with a DTD and nested entities (billion laughs): refused, quickly, nothing expanded. */
static void test_agid_pdfa__xmp_with_entities_is_refused(void **state)
{
	static const char xmp[] =
		"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\">"
		"<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
		"<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
		"<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">"
		"<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">]>"
		"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">"
		"<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">"
		"<rdf:Description xmlns:pdfaid=\"http://www.aiim.org/pdfa/ns/id/\""
		" pdfaid:conformance=\"B\">"
		"<pdfaid:part>&e;</pdfaid:part></rdf:Description></rdf:RDF></x:xmpmeta>";
	char *meta = sb_xasprintf("<< /Type /Metadata /Subtype /XML /Length %zu >>\n"
				  "stream\n%s\nendstream", strlen(xmp), xmp);
	char *path = sb_xasprintf("%s/laughs.pdf", tmp);
	struct tha_obj objs[] = {
		{ "<< /Type /Catalog /Pages 2 0 R /Metadata 4 0 R >>", 0 },
		{ "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 0 },
		{ "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>", 0 },
		{ meta, 0 },
	};
	struct agid_pdfa_report *r;

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(objs); i++)
		objs[i].len = strlen(objs[i].body);
	tha_layout(path, objs, SB_ARRAY_SIZE(objs), NULL, NULL);
	r = check(path, AGID_PDFA_2B);
	assert_false(r->valid);
	assert_int_equal(r->claimed, AGID_PDFA_NONE);
	assert_true(agid_pdfa_has_clause(r, "6.6.2.1"));
	agid_pdfa_report_free(r);
	free(meta);
	free(path);
}

/* One xref stream row with /W [1 4 2]: type, field 2, field 3, big-endian. */
static void put_row(struct sb_buf *b, unsigned type, uint32_t f2, uint16_t f3)
{
	unsigned char row[7] = { (unsigned char)type,
				 (unsigned char)(f2 >> 24), (unsigned char)(f2 >> 16),
				 (unsigned char)(f2 >> 8), (unsigned char)f2,
				 (unsigned char)(f3 >> 8), (unsigned char)f3 };

	assert_int_equal(sb_buf_add(b, row, sizeof(row)), 0);
}

/*
 * An object stream that qpdf itself would inflate to 600 MiB (object 5
 * lives in it, referenced from the catalog), reached through an xref
 * stream: the pre-read must stop it at the stream cap.
 */
static void test_agid_pdfa__object_stream_bomb_is_capped(void **state)
{
	size_t big = 600u * 1024u * 1024u, zlen = compressBound(big), off[5];
	unsigned char *body = sb_xmalloc(big), *z = sb_xmalloc(zlen);
	uLongf outlen = zlen;
	struct sb_buf f = SB_BUF_INIT(SB_MAX_DEFAULT), rows = SB_BUF_INIT(4096);
	char *path = sb_xasprintf("%s/objstm-bomb.pdf", tmp),
	     *os = sb_xasprintf("%s/objstm.pdf", tmp);
	const char *argv[] = { "qpdf", "--object-streams=generate", gs_pdfa, os, NULL };
	static const char *const objs[] = {
		"<< /Type /Catalog /Pages 2 0 R /X 5 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
	};
	struct agid_pdfa_report *r;

	(void)state;
	memset(body, ' ', big);
	memcpy(body, "5 0       << /A 1 >>", 20);
	assert_int_equal(compress2(z, &outlen, body, big, 9), Z_OK);
	assert_int_equal(sb_buf_adds(&f, "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), 0);
	for (size_t i = 0; i < 3; i++) {
		off[i] = f.len;
		assert_int_equal(sb_buf_addf(&f, "%zu 0 obj\n%s\nendobj\n", i + 1, objs[i]), 0);
	}
	off[3] = f.len;
	assert_int_equal(sb_buf_addf(&f, "4 0 obj\n<< /Type /ObjStm /N 1 /First 10 "
				     "/Filter /FlateDecode "
				     "/Length %lu >>\nstream\n", (unsigned long)outlen), 0);
	assert_int_equal(sb_buf_add(&f, z, outlen), 0);
	assert_int_equal(sb_buf_adds(&f, "\nendstream\nendobj\n"), 0);
	off[4] = f.len;
	put_row(&rows, 0, 0, 65535);
	for (size_t i = 0; i < 4; i++)
		put_row(&rows, 1, (uint32_t)off[i], 0);
	put_row(&rows, 2, 4, 0);   /* object 5: index 0 of object stream 4 */
	put_row(&rows, 1, (uint32_t)off[4], 0);
	assert_int_equal(sb_buf_addf(&f, "6 0 obj\n<< /Type /XRef /Size 7 /W [1 4 2] /Root 1 0 R "
				     "/ID [<00><00>] /Length %zu >>\nstream\n", rows.len), 0);
	assert_int_equal(sb_buf_add(&f, rows.buf, rows.len), 0);
	assert_int_equal(sb_buf_addf(&f, "\nendstream\nendobj\nstartxref\n%zu\n%%%%EOF\n",
				     off[4]), 0);
	th_write(path, f.buf, f.len, 0644);

	r = check(path, AGID_PDFA_2B);
	assert_false(r->valid);
	assert_true(r->limit_hit);
	assert_true(agid_pdfa_has_clause(r, "6.1"));
	agid_pdfa_report_free(r);

	/* object streams within the caps are read: a valid PDF/A stays valid */
	tha_run(argv);
	r = check(os, AGID_PDFA_NONE);
	assert_true(r->valid);
	assert_int_equal(r->pages, 3);
	agid_pdfa_report_free(r);
	sb_buf_release(&f);
	sb_buf_release(&rows);
	free(body);
	free(z);
	free(path);
	free(os);
}

/* Check path with caps; limit: whether a cap must stop the check (then the file is invalid). */
static void check_capped(const char *path, size_t max_objects, unsigned budget_ms, bool limit)
{
	struct agid_pdfa_opts o = AGID_PDFA_OPTS_INIT;
	struct agid_pdfa_report *r = NULL;

	o.max_objects = max_objects;
	o.time_budget_ms = budget_ms;
	assert_int_equal(agid_pdfa_check_file(&r, path, &o, NULL), 0);
	assert_int_equal(r->limit_hit, limit);
	assert_int_equal(r->valid, !limit);
	assert_int_equal(agid_pdfa_has_clause(r, "6.1"), limit);
	agid_pdfa_report_free(r);
}

static void test_agid_pdfa__object_cap_and_time_budget(void **state)
{
	char *big = tha_pdfa(tmp, "big.pdf", "Cento pagine", 100);

	(void)state;
	check_capped(gs_pdfa, 5, 0, true);
	check_capped(big, 0, 1, true);
	check_capped(big, 0, 0, false);
	free(big);
}

static void test_agid_pdfa__errors(void **state)
{
	struct agid_pdfa_report *r = NULL;
	struct sb_err err = SB_ERR_INIT;
	enum agid_flavour f = AGID_PDFA_NONE;
	char *dir = sb_xasprintf("%s/adir", tmp);

	(void)state;
	assert_int_equal(agid_pdfa_check_file(&r, "/nonexistent/x.pdf", NULL, &err), SB_ENOTFOUND);
	assert_int_equal(err.code, SB_ENOTFOUND);
	assert_true(err.msg[0] != '\0');
	assert_null(r);
	th_mkdirs(dir);
	sb_err_clear(&err);
	assert_int_equal(agid_pdfa_check_file(&r, dir, NULL, &err), SB_EIO);
	assert_int_equal(err.code, SB_EIO);
	assert_true(err.msg[0] != '\0');
	assert_null(r);
	sb_err_clear(&err);
	assert_int_equal(agid_pdfa_check_mem(NULL, "x", 1, NULL, &err), SB_EINVAL);
	assert_true(err.msg[0] != '\0');
	sb_err_clear(&err);
	assert_int_equal(agid_flavour_parse("4x", &f, &err), SB_EINVAL);
	assert_int_equal(err.code, SB_EINVAL);
	assert_non_null(strstr(err.msg, "4x"));
	assert_int_equal(f, AGID_PDFA_NONE);
	assert_int_equal(agid_flavour_parse("2U", &f, NULL), 0);
	assert_int_equal(f, AGID_PDFA_2U);
	assert_string_equal(agid_flavour_name(AGID_PDFA_3B), "3b");
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agid_pdfa__verapdf_corpus),
		cmocka_unit_test(test_agid_pdfa__embedded_files_per_part),
		cmocka_unit_test(test_agid_pdfa__ghostscript_pdfa2b_passes),
		cmocka_unit_test(test_agid_pdfa__plain_pdf_is_not_pdfa),
		cmocka_unit_test(test_agid_pdfa__encrypted_file_fails_6_1_3),
		cmocka_unit_test(test_agid_pdfa__javascript_fails),
		cmocka_unit_test(test_agid_pdfa__truncated_and_garbage_are_invalid),
		cmocka_unit_test(test_agid_pdfa__decompression_bomb_is_capped),
		cmocka_unit_test(test_agid_pdfa__xmp_with_entities_is_refused),
		cmocka_unit_test(test_agid_pdfa__object_stream_bomb_is_capped),
		cmocka_unit_test(test_agid_pdfa__object_cap_and_time_budget),
		cmocka_unit_test(test_agid_pdfa__errors),
	};

	return cmocka_run_group_tests_name("agid_pdfa", tests, setup, teardown);
}
