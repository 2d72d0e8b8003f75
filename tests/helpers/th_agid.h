/*
 * Fixture makers for the agid/ tests and the fuzz seed corpus: PDFs made by
 * Ghostscript (PDF/A-2b through fixtures/make-fixtures.sh, or plain PDF
 * with extra pdfmarks), minimal PDFs laid out here with a correct xref,
 * and a test CA with a signer certificate made by the openssl command.
 * Every function aborts the test on failure.
 */
#ifndef TH_AGID_H
#define TH_AGID_H

#include <stddef.h>

/* A PDF/A-2b of pages pages at dir/name (Ghostscript); returns the path (free()). */
char *tha_pdfa(const char *dir, const char *name, const char *title, int pages);
/* The same with a photo_px x photo_px picture on the first page, like a fine's camera shot. */
char *tha_pdfa_photo(const char *dir, const char *name, const char *title, int pages,
		     int photo_px);

/*
 * A plain PDF (no PDF/A) made by Ghostscript with the PostScript ps_extra
 * before one page of text.
 */
char *tha_plain(const char *dir, const char *name, const char *ps_extra);

/* One object body for tha_layout (may hold binary bytes). */
struct tha_obj {
	const char *body;
	size_t len;
};

/*
 * A PDF 1.7 with objects 1..n (object 1 is the catalog), a binary comment,
 * an xref table and a trailer with /ID; written to path, returned in *out
 * (free()) with its length.
 */
void tha_layout(const char *path, const struct tha_obj *objs, size_t n, char **out,
		size_t *len_out);

/*
 * A test CA and two certificates issued by it, in dir: ca.pem/ca.key,
 * signer.pem/signer.key (with a QcCompliance statement, "qualified") and
 * plain.pem/plain.key (without).
 */
void tha_make_ca(const char *dir);

/*
 * A one-page PDF with a PAdES signature field (subfilter, e.g.
 * "ETSI.CAdES.detached") signed over its /ByteRange with dir/signer.*;
 * returns the path (free()).
 */
char *tha_signed_pdf(const char *dir, const char *name, const char *subfilter);
/* Same, signed with dir/WHO.pem and dir/WHO.key. */
char *tha_signed_pdf_by(const char *dir, const char *name, const char *subfilter, const char *who);

/* Run a command (argv NULL-terminated); abort the test unless it exits 0. */
void tha_run(const char *const *argv);

#endif
