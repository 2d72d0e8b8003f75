/*
 * The daily register (registro giornaliero di protocollo, DPR 445/2000 art.
 * 53 c.2; ../shared/specs/agid/SUMMARY.md R8): the registrations of one day
 * with the R1 fields and the register id, plus the annulments and changes
 * made that day, also on earlier registrations.
 *
 * Three files: an XML copy (our own documented format, namespace
 * urn:send-bridge:registro-giornaliero:1), a PDF/A-2b rendering of the same
 * content made by Ghostscript from PostScript written here (as
 * fixtures/make-fixtures.sh does: fonts embedded, sRGB output intent), and
 * a .sha256 file in sha256sum format for the conservation package. Each is
 * written to a temporary name and renamed, so a reader never sees half a
 * register.
 *
 * The day is a Europe/Rome civil day: registrations by their register date,
 * changes by their time between the two local midnights.
 */
#include <fcntl.h>
#include <glob.h>
#include <libxml/tree.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_sql.h"
#include "sb_crypto.h"
#include "sb_time.h"
#include "proto_int.h"

/* libxml2 takes const xmlChar * for names and text: no cast-away of const needed. */
#define XC(s) ((const xmlChar *)(s))

extern char **environ;

#define DAILY_NS "urn:send-bridge:registro-giornaliero:1"
#define LINE_WIDTH 92
#define LINES_PER_PAGE 52

struct line_list {
	char **v;
	size_t n, alloc;
};

static void add_line(struct line_list *l, const char *s)
{
	size_t len = strlen(s);

	/* Wrap long lines on a byte boundary that is not inside a UTF-8 sequence. */
	do {
		size_t cut = len;

		if (cut > LINE_WIDTH) {
			cut = LINE_WIDTH;
			while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
				cut--;
		}
		if (l->n == l->alloc) {
			l->alloc = l->alloc ? l->alloc * 2 : 64;
			l->v = sb_xrealloc(l->v, l->alloc * sizeof(*l->v));
		}
		l->v[l->n++] = sb_xstrndup(s, cut);
		s += cut;
		len -= cut;
	} while (len > 0);
}

static void add_linef(struct line_list *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add_linef(struct line_list *l, const char *fmt, ...)
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT);
	va_list ap;

	va_start(ap, fmt);
	sb_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	add_line(l, sb_buf_cstr(&b));
	sb_buf_release(&b);
}

static void lines_free(struct line_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* Local midnight of date (a YYYY-MM-DD already validated) in UTC seconds. */
static int64_t rome_midnight(int64_t utc_midnight)
{
	static const int64_t offs[] = { 3600, 7200 };

	for (size_t i = 0; i < SB_ARRAY_SIZE(offs); i++) {
		char time_[9];

		proto_rome_time(utc_midnight - offs[i], NULL, NULL, time_);
		if (!strcmp(time_, "00:00:00"))
			return utc_midnight - offs[i];
	}
	return utc_midnight - 3600;
}

static const char *dir_name(const char *d)
{
	return !strcmp(d, "out") ? "U" : "E";
}

static void reg_xml(xmlNodePtr parent, xmlNsPtr ns, sqlite3_stmt *st, struct line_list *l)
{
	xmlNodePtr r = xmlNewChild(parent, ns, XC("Registrazione"), NULL);
	const char *reg = (const char *)sqlite3_column_text(st, 0);
	int year = sqlite3_column_int(st, 1);
	unsigned long long num = (unsigned long long)sqlite3_column_int64(st, 2);
	const char *dir = (const char *)sqlite3_column_text(st, 3);
	const char *date = (const char *)sqlite3_column_text(st, 4);
	const char *time_ = (const char *)sqlite3_column_text(st, 5);
	const char *subject = (const char *)sqlite3_column_text(st, 6);
	const char *corr = (const char *)sqlite3_column_text(st, 7);
	const char *docs = (const char *)sqlite3_column_text(st, 8);
	const char *classif = (const char *)sqlite3_column_text(st, 9);
	const char *author = (const char *)sqlite3_column_text(st, 10);
	const char *link = (const char *)sqlite3_column_text(st, 11);
	bool annulled = sqlite3_column_type(st, 12) != SQLITE_NULL;
	char id[PROTO_ID_TEXT_SIZE], buf[32];

	snprintf(id, sizeof(id), "%s/%04d/%07llu", reg, year, num);
	xmlNewProp(r, XC("numero"), XC(id));
	xmlNewProp(r, XC("data"), XC(date));
	xmlNewProp(r, XC("ora"), XC(time_));
	xmlNewProp(r, XC("direzione"), XC(dir_name(dir)));
	xmlNewProp(r, XC("annullata"), XC(annulled ? "true" : "false"));
	xmlNewTextChild(r, ns, XC("Oggetto"), XC(subject));
	xmlNewTextChild(r, ns, XC("Classificazione"), XC(classif));
	xmlNewTextChild(r, ns, XC("Operatore"), XC(author));
	xmlNewTextChild(r, ns, XC("Corrispondenti"), XC(corr));
	xmlNewTextChild(r, ns, XC("Documenti"), XC(docs));
	if (link)
		xmlNewTextChild(r, ns, XC("Riferimento"), XC(link));
	snprintf(buf, sizeof(buf), "%s", annulled ? "  [ANNULLATA]" : "");
	add_linef(l, "%s  %s %s  %s%s", id, date, time_, !strcmp(dir, "out") ? "uscita" :
		  "entrata", buf);
	add_linef(l, "    Oggetto: %s", subject);
	add_linef(l, "    Classificazione: %s   Operatore: %s", classif, author);
	add_linef(l, "    Corrispondenti: %s", corr);
	add_linef(l, "    Documenti e impronte SHA-256: %s", docs);
	if (link)
		add_linef(l, "    Riferimento: %s", link);
}

static void change_xml(xmlNodePtr parent, xmlNsPtr ns, sqlite3_stmt *st, struct line_list *l)
{
	xmlNodePtr c = xmlNewChild(parent, ns, XC("Modifica"), NULL);
	const char *id = (const char *)sqlite3_column_text(st, 0);
	const char *field = (const char *)sqlite3_column_text(st, 1);
	const char *old = (const char *)sqlite3_column_text(st, 2);
	const char *nw = (const char *)sqlite3_column_text(st, 3);
	const char *author = (const char *)sqlite3_column_text(st, 4);
	const char *reason = (const char *)sqlite3_column_text(st, 5);
	char when[32];

	sb_time_iso8601(sqlite3_column_int64(st, 6), when, sizeof(when));
	xmlNewProp(c, XC("registrazione"), XC(id));
	xmlNewProp(c, XC("campo"), XC(field));
	xmlNewProp(c, XC("autore"), XC(author));
	xmlNewProp(c, XC("quando"), XC(when));
	if (old)
		xmlNewTextChild(c, ns, XC("ValorePrecedente"), XC(old));
	if (nw)
		xmlNewTextChild(c, ns, XC(strcmp(field, "annulment") ? "NuovoValore" :
					       "Provvedimento"), XC(nw));
	if (reason)
		xmlNewTextChild(c, ns, XC("Motivo"), XC(reason));
	add_linef(l, "%s  %s  %s  di %s", id, !strcmp(field, "annulment") ? "ANNULLAMENTO" :
		  field, when, author);
	if (old)
		add_linef(l, "    valore precedente: %s", old);
	if (nw)
		add_linef(l, "    %s: %s", strcmp(field, "annulment") ? "nuovo valore" :
			  "provvedimento", nw);
	if (reason)
		add_linef(l, "    motivo: %s", reason);
}

static int collect(struct proto *p, const char *date, xmlDocPtr doc, struct line_list *l,
		   struct sb_err *err)
{
	xmlNodePtr root = xmlDocGetRootElement(doc), regs, chg, tot;
	xmlNsPtr ns = root->ns;
	sqlite3_stmt *st = NULL;
	int64_t t0, start, end;
	int rc, nregs = 0, nchg = 0;
	char num[24];

	sb_time_parse_date(date, &t0);
	start = rome_midnight(t0);
	end = rome_midnight(t0 + 86400);
	regs = xmlNewChild(root, ns, XC("Registrazioni"), NULL);
	add_line(l, "REGISTRAZIONI DEL GIORNO");
	rc = sb_sql_prepare(p->db, "SELECT r.register, r.year, r.number, r.direction,"
			    " r.reg_date, r.reg_time, r.subject, r.correspondents, r.documents,"
			    " r.classification, r.author,"
			    " CASE WHEN l.id IS NULL THEN NULL ELSE"
			    "  l.register || '/' || l.year || '/' || printf('%07d', l.number) END,"
			    " r.annulled_at"
			    " FROM proto_registrations r LEFT JOIN proto_registrations l"
			    "  ON l.id = r.link"
			    " WHERE r.register = ? AND r.reg_date = ?"
			    " ORDER BY r.year, r.number", &st);
	if (rc != SQLITE_OK)
		goto db_fail;
	sqlite3_bind_text(st, 1, p->reg, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, date, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		reg_xml(regs, ns, st, l);
		nregs++;
	}
	if (rc != SQLITE_DONE)
		goto db_fail;
	sb_sql_finish(st);
	st = NULL;
	if (nregs == 0)
		add_line(l, "    nessuna registrazione");
	add_line(l, "");
	add_line(l, "ANNULLAMENTI E MODIFICHE DEL GIORNO");
	chg = xmlNewChild(root, ns, XC("AnnullamentiEModifiche"), NULL);
	rc = sb_sql_prepare(p->db, "SELECT r.register || '/' || r.year || '/' ||"
			    " printf('%07d', r.number), c.field, c.old_value, c.new_value,"
			    " c.author, c.reason, c.at"
			    " FROM proto_changes c JOIN proto_registrations r"
			    "  ON r.id = c.registration"
			    " WHERE r.register = ? AND c.at >= ? AND c.at < ? ORDER BY c.id", &st);
	if (rc != SQLITE_OK)
		goto db_fail;
	sqlite3_bind_text(st, 1, p->reg, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, start);
	sqlite3_bind_int64(st, 3, end);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		change_xml(chg, ns, st, l);
		nchg++;
	}
	if (rc != SQLITE_DONE)
		goto db_fail;
	sb_sql_finish(st);
	if (nchg == 0)
		add_line(l, "    nessun annullamento o modifica");
	tot = xmlNewChild(root, ns, XC("Totali"), NULL);
	snprintf(num, sizeof(num), "%d", nregs);
	xmlNewProp(tot, XC("registrazioni"), XC(num));
	snprintf(num, sizeof(num), "%d", nchg);
	xmlNewProp(tot, XC("annullamentiEModifiche"), XC(num));
	add_line(l, "");
	add_linef(l, "Totale registrazioni: %d   Totale annullamenti e modifiche: %d", nregs, nchg);
	return 0;
db_fail:
	sb_err_set(err, SB_EIO, rc, "daily register: %s", sqlite3_errmsg(p->db));
	sb_sql_finish(st);
	return SB_EIO;
}

/* A PostScript string literal of UTF-8 text in ISO Latin-1 (other characters become '?'). */
static void ps_string(struct sb_buf *out, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	sb_buf_addch(out, '(');
	while (*u) {
		unsigned cp = *u++;

		if (cp >= 0xC0 && cp < 0xE0 && (*u & 0xC0) == 0x80) {
			cp = ((cp & 0x1F) << 6) | (*u++ & 0x3F);
		} else if (cp >= 0x80) {
			while ((*u & 0xC0) == 0x80)
				u++;
			cp = '?';
		}
		if (cp == '(' || cp == ')' || cp == '\\')
			sb_buf_addf(out, "\\%c", (char)cp);
		else if (cp < 0x20 || cp > 0x7E)
			sb_buf_addf(out, "\\%03o", cp >= 0xA0 && cp <= 0xFF ? cp : '?');
		else
			sb_buf_addch(out, (char)cp);
	}
	sb_buf_addch(out, ')');
}

static int write_file(const char *path, const void *p, size_t len, struct sb_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	const char *c = p;

	if (fd < 0)
		return sb_err_set(err, SB_EIO, errno,
				  "cannot create '%s': %s", path, strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return sb_err_set(err, SB_EIO, errno, "cannot write '%s'", path);
		}
		c += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		return sb_err_set(err, SB_EIO, errno, "cannot write '%s'", path);
	return 0;
}

static int find_icc(char *out, size_t out_size, struct sb_err *err)
{
	static const char *const patterns[] = {
		"/usr/share/ghostscript/*/iccprofiles/default_rgb.icc",
		"/usr/share/color/icc/ghostscript/default_rgb.icc",
	};

	for (size_t i = 0; i < SB_ARRAY_SIZE(patterns); i++) {
		glob_t g;

		if (glob(patterns[i], 0, NULL, &g) == 0 && g.gl_pathc > 0) {
			snprintf(out, out_size, "%s", g.gl_pathv[0]);
			globfree(&g);
			return 0;
		}
		globfree(&g);
	}
	return sb_err_set(err, SB_ECONFIG, 0, "daily register: Ghostscript's default_rgb.icc not"
			  " found (install ghostscript)");
}

static int run_gs(const char *ps_path, const char *pdf_path, const char *icc, struct sb_err *err)
{
	char *out_arg = sb_xasprintf("-sOutputFile=%s", pdf_path);
	char *perm = sb_xasprintf("--permit-file-read=%s", icc);
	const char *const args[] = {
		"gs", "-q", "-dSAFER", "-dPDFA=2", "-dBATCH", "-dNOPAUSE", "-dNOOUTERSAVE",
		"-sColorConversionStrategy=RGB", "-dPDFACompatibilityPolicy=1", "-sDEVICE=pdfwrite",
		perm, out_arg, ps_path,
	};
	char *argv[SB_ARRAY_SIZE(args) + 1];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc, status = 0;

	/* posix_spawn wants char *const[]: give it copies rather than casting const away. */
	for (size_t i = 0; i < SB_ARRAY_SIZE(args); i++)
		argv[i] = sb_xstrdup(args[i]);
	argv[SB_ARRAY_SIZE(args)] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, "gs", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc == 0) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			rc = sb_err_set(err, SB_EIO, 0,
					"daily register: ghostscript failed (status %d)", status);
	} else {
		rc = sb_err_set(err, SB_ECONFIG, rc, "daily register: cannot run ghostscript: %s",
				strerror(rc));
	}
	for (size_t i = 0; i < SB_ARRAY_SIZE(args); i++)
		free(argv[i]);
	free(out_arg);
	free(perm);
	return rc;
}

static int write_pdf(struct proto *p, const char *date, const struct line_list *l,
		     const char *ps_path, const char *pdf_path, struct sb_err *err)
{
	struct sb_buf ps = SB_BUF_INIT(SB_MAX_DEFAULT * 4);
	char icc[4096];
	size_t pages = l->n / LINES_PER_PAGE + 1;
	int rc;

	rc = find_icc(icc, sizeof(icc), err);
	if (rc < 0)
		return rc;
	sb_buf_adds(&ps, "%!PS\n[ /Title ");
	ps_string(&ps, "Registro giornaliero di protocollo");
	sb_buf_adds(&ps, " /Author ");
	ps_string(&ps, p->ente_name);
	sb_buf_adds(&ps, " /DOCINFO pdfmark\n/ICCProfile ");
	ps_string(&ps, icc);
	sb_buf_adds(&ps, " def\n"
		    "[/_objdef {icc_PDFA} /type /stream /OBJ pdfmark\n"
		    "[{icc_PDFA} << /N 3 >> /PUT pdfmark\n"
		    "[{icc_PDFA} ICCProfile (r) file /PUT pdfmark\n"
		    "[/_objdef {OutputIntent_PDFA} /type /dict /OBJ pdfmark\n"
		    "[{OutputIntent_PDFA} << /Type /OutputIntent /S /GTS_PDFA1\n"
		    "  /DestOutputProfile {icc_PDFA}"
		    " /OutputConditionIdentifier (sRGB) >> /PUT pdfmark\n"
		    "[{Catalog} << /OutputIntents [ {OutputIntent_PDFA} ] >> /PUT pdfmark\n"
		    "<< /PageSize [595 842] >> setpagedevice\n"
		    "/L1 { findfont dup length dict begin { 1 index /FID ne { def } { pop pop }"
		    " ifelse } forall /Encoding ISOLatin1Encoding def currentdict end } def\n"
		    "/Courier-L1 /Courier L1 definefont pop\n"
		    "/Helvetica-Bold-L1 /Helvetica-Bold L1 definefont pop\n");
	for (size_t pg = 0; pg < pages; pg++) {
		int y = 770;
		struct sb_buf head = SB_BUF_INIT(1024);

		sb_buf_addf(&head, "%s - AOO %s - registro %s - registro giornaliero del %s",
			    p->ente_name, p->aoo_code, p->reg, date);
		sb_buf_adds(&ps, "/Helvetica-Bold-L1 findfont 10 scalefont setfont 40 800 moveto ");
		ps_string(&ps, sb_buf_cstr(&head));
		sb_buf_adds(&ps, " show\n/Courier-L1 findfont 7.5 scalefont setfont\n");
		sb_buf_release(&head);
		for (size_t i = pg * LINES_PER_PAGE;
		     i < l->n && i < (pg + 1) * LINES_PER_PAGE; i++) {
			sb_buf_addf(&ps, "40 %d moveto ", y);
			ps_string(&ps, l->v[i]);
			sb_buf_adds(&ps, " show\n");
			y -= 14;
		}
		sb_buf_addf(&ps, "40 30 moveto (Pagina %zu di %zu) show showpage\n", pg + 1, pages);
	}
	rc = write_file(ps_path, ps.buf, ps.len, err);
	if (rc == 0)
		rc = run_gs(ps_path, pdf_path, icc, err);
	unlink(ps_path);
	sb_buf_release(&ps);
	return rc;
}

static int hash_line(const char *path, const char *name, struct sb_buf *out, struct sb_err *err)
{
	unsigned char md[SB_SHA256_LEN];
	int rc = sb_sha256_file(path, md, NULL, err);

	if (rc < 0)
		return rc;
	sb_hex_encode(md, sizeof(md), out);
	sb_buf_addf(out, "  %s\n", name);
	return 0;
}

int proto_daily_register(struct proto *p, const char *date, const char *dir,
			 struct sb_buf *paths_out, struct sb_err *err)
{
	struct line_list lines = { NULL, 0, 0 };
	struct sb_buf sums = SB_BUF_INIT(4096);
	xmlDocPtr doc = NULL;
	xmlNodePtr root;
	xmlNsPtr ns;
	xmlChar *mem = NULL;
	int64_t t0;
	int size = 0, rc;
	char *base = NULL, *xml_path = NULL, *pdf_path = NULL, *sum_path = NULL;
	char *tmp_xml = NULL, *tmp_pdf = NULL, *tmp_sum = NULL, *tmp_ps = NULL;
	char now[32];
	struct stat sst;

	if (!date || strlen(date) != 10 || sb_time_parse_date(date, &t0) < 0)
		return sb_err_set(err, SB_EINVAL, 0, "date: expected YYYY-MM-DD");
	if (!dir || stat(dir, &sst) < 0 || !S_ISDIR(sst.st_mode))
		return sb_err_set(err, SB_EINVAL, 0, "out: '%s' is not a folder", dir ? dir : "");
	base = sb_xasprintf("registro-giornaliero-%s-%s", p->reg, date);
	xml_path = sb_xasprintf("%s/%s.xml", dir, base);
	pdf_path = sb_xasprintf("%s/%s.pdf", dir, base);
	sum_path = sb_xasprintf("%s/%s.sha256", dir, base);
	tmp_xml = sb_xasprintf("%s/.%s.xml.tmp", dir, base);
	tmp_pdf = sb_xasprintf("%s/.%s.pdf.tmp", dir, base);
	tmp_sum = sb_xasprintf("%s/.%s.sha256.tmp", dir, base);
	tmp_ps = sb_xasprintf("%s/.%s.ps.tmp", dir, base);

	doc = xmlNewDoc(XC("1.0"));
	root = xmlNewNode(NULL, XC("RegistroGiornaliero"));
	ns = xmlNewNs(root, XC(DAILY_NS), NULL);
	xmlSetNs(root, ns);
	xmlDocSetRootElement(doc, root);
	xmlNewProp(root, XC("versione"), XC("1"));
	xmlNewProp(root, XC("codiceAmministrazione"), XC(p->ipa_code));
	xmlNewProp(root, XC("codiceAOO"), XC(p->aoo_code));
	xmlNewProp(root, XC("registro"), XC(p->reg));
	xmlNewProp(root, XC("data"), XC(date));
	xmlNewProp(root, XC("generato"), XC(sb_time_iso8601(proto_now(p), now, sizeof(now))));
	rc = collect(p, date, doc, &lines, err);
	if (rc < 0)
		goto cleanup;
	xmlDocDumpFormatMemoryEnc(doc, &mem, &size, "UTF-8", 1);
	rc = write_file(tmp_xml, mem, (size_t)size, err);
	if (rc == 0)
		rc = write_pdf(p, date, &lines, tmp_ps, tmp_pdf, err);
	if (rc == 0)
		rc = hash_line(tmp_xml, strrchr(xml_path, '/') + 1, &sums, err);
	if (rc == 0)
		rc = hash_line(tmp_pdf, strrchr(pdf_path, '/') + 1, &sums, err);
	if (rc == 0)
		rc = write_file(tmp_sum, sums.buf, sums.len, err);
	if (rc == 0 && (rename(tmp_xml, xml_path) < 0 || rename(tmp_pdf, pdf_path) < 0 ||
			rename(tmp_sum, sum_path) < 0))
		rc = sb_err_set(err, SB_EIO, errno, "daily register: cannot rename into '%s'", dir);
	if (rc == 0 && paths_out)
		sb_buf_addf(paths_out, "%s\n%s\n%s\n", xml_path, pdf_path, sum_path);
cleanup:
	unlink(tmp_xml);
	unlink(tmp_pdf);
	unlink(tmp_sum);
	xmlFree(mem);
	xmlFreeDoc(doc);
	lines_free(&lines);
	sb_buf_release(&sums);
	free(base);
	free(xml_path);
	free(pdf_path);
	free(sum_path);
	free(tmp_xml);
	free(tmp_pdf);
	free(tmp_sum);
	free(tmp_ps);
	return rc;
}
