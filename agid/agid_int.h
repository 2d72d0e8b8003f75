/*
 * Declarations shared by the agid/ sources only (curl's -int.h): findings lists, the
 * per-file clock, read-only file mapping and the XMP reader.
 */
#ifndef AGID_INT_H
#define AGID_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "agid_pdfa.h"

/*
 * Append a finding (copied, cut to fit); past AGID_MAX_FINDINGS only *dropped
 * grows. Exact duplicates are skipped.
 */
void agid_findings_add(struct agid_finding **list, size_t *n, size_t *dropped, const char *clause,
		       int page, int obj, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
void agid_findings_vadd(struct agid_finding **list, size_t *n, size_t *dropped, const char *clause,
			int page, int obj, const char *fmt, va_list ap);

/* A monotonic deadline. */
struct agid_clock {
	uint64_t deadline_ms;
};
void agid_clock_start(struct agid_clock *c, unsigned budget_ms);
bool agid_clock_expired(const struct agid_clock *c);
/* Milliseconds left, at least 1. */
unsigned agid_clock_left_ms(const struct agid_clock *c);

/* A file mapped read-only (an empty file gives data NULL, len 0). */
struct agid_map {
	const unsigned char *data;
	size_t len;
	bool mapped;                 /* mmap'd (large file), else read into the heap */
};
/* SB_ENOTFOUND, SB_EIO, or SB_ETOOBIG above max; err names the rule, not the path's content. */
int agid_map_file(struct agid_map *m, const char *path, uint64_t max, struct sb_err *err);
void agid_unmap(struct agid_map *m);

/* The XMP packet of a PDF, parsed with libxml2. */
struct agid_xmp {
	void *doc;                   /* xmlDocPtr */
	enum agid_flavour flavour;   /* from pdfaid:part + conformance,
					NONE if missing or invalid */
	char pdfaid_problem[160];    /* why the identification is invalid, "" if fine or absent */
	bool packet_attrs;           /* the xpacket header has bytes= or encoding= */
	const char *error;           /* static text when the packet is missing or not well formed */
};
#define AGID_XMP_INIT { NULL, AGID_PDFA_NONE, "", false, NULL }

/* Parse (p, len); sets x->error when it is not well-formed XML. Network access is off. */
void agid_xmp_parse(struct agid_xmp *x, const unsigned char *p, size_t len);
void agid_xmp_release(struct agid_xmp *x);
/*
 * A simple XMP property (attribute or element of any rdf:Description; for
 * rdf:Alt/Seq/Bag the first rdf:li) as a new string (free()), or NULL.
 */
char *agid_xmp_get(const struct agid_xmp *x, const char *ns, const char *name);

/* PDF/A-1 6.7.3: Info dictionary entries equivalent to their XMP properties (q is a qpdf_data). */
void agid_xmp_check_info(const struct agid_xmp *x, void *q, struct agid_pdfa_report *r,
			 const char *clause);

#endif
