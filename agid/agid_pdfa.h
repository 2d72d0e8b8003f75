/*
 * PDF/A profile checks (ISO 19005 parts 1, 2 and 3) over the PDF structure
 * read by libqpdf, with the XMP packet parsed by libxml2. The rules are the
 * ones a structural checker can run without a content-stream interpreter;
 * see ../shared/specs/agid/SUMMARY.md section 1.2 and agid/README.md for
 * the list, and AGID_PDFA_NOT_VERIFIED for what is left to veraPDF.
 *
 *	struct agid_pdfa_report *r = NULL;
 *	struct agid_pdfa_opts o = AGID_PDFA_OPTS_INIT;
 *	if (agid_pdfa_check_file(&r, "atto.pdf", &o, &err) < 0) ... could not check
 *	r->valid, r->findings[i].clause ...
 *	agid_pdfa_report_free(r);
 *
 * Work is bounded: the input size, the number of objects visited, the size
 * of any stream this module decodes and the wall-clock time are capped; a
 * file that hits a cap is reported invalid with a finding saying which.
 * Thread-safe: every call uses its own qpdf and libxml2 state.
 */
#ifndef AGID_PDFA_H
#define AGID_PDFA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

enum agid_flavour {
	AGID_PDFA_NONE = 0,   /* no (valid) PDF/A identification */
	AGID_PDFA_1A, AGID_PDFA_1B,
	AGID_PDFA_2A, AGID_PDFA_2B, AGID_PDFA_2U,
	AGID_PDFA_3A, AGID_PDFA_3B, AGID_PDFA_3U,
	AGID_PDFA_COUNT
};

/* "1b" etc.; "none" for AGID_PDFA_NONE. Static string. */
const char *agid_flavour_name(enum agid_flavour f);
/* Parse "1a".."3u" (case-insensitive); SB_EINVAL naming the value otherwise. */
int agid_flavour_parse(const char *s, enum agid_flavour *out, struct sb_err *err);
/* 1, 2 or 3 (0 for NONE). */
int agid_flavour_part(enum agid_flavour f);

/* Defaults of the caps (agid_pdfa_opts fields left at 0 take these). */
#define AGID_MAX_OBJECTS       500000u                 /* objects visited in one file */
/* One decoded stream (XMP, ICC profile, embedded file). */
#define AGID_MAX_STREAM        (16u * 1024u * 1024u)
#define AGID_TIME_BUDGET_MS    20000u                  /* wall clock per file */
#define AGID_MAX_FINDINGS      64u

/* What this checker does not verify: reported, never counted as a pass. */
#define AGID_PDFA_NOT_VERIFIED \
	"content streams (device colour spaces, fonts selected by operators, render modes), " \
	"font program completeness, ICC profile internals beyond the header, " \
	"the structure tree of level a beyond MarkInfo and StructTreeRoot, " \
	"Unicode mapping (level u)"

struct agid_pdfa_opts {
	enum agid_flavour profile;   /* rules to apply; NONE: the flavour the file claims */
	size_t max_objects;
	size_t max_stream;
	unsigned time_budget_ms;
	int depth;                   /* internal: nesting of embedded files, 0 for callers */
};

#define AGID_PDFA_OPTS_INIT { AGID_PDFA_NONE, 0, 0, 0, 0 }

struct agid_finding {
	char clause[16];   /* ISO 19005 clause ("6.1.3"), or "6.1" when the structure
			      is unreadable */
	int page;          /* 1-based page, 0 when not known */
	int obj;           /* indirect object number, 0 when not known */
	char msg[200];     /* one line; never document text */
};

/* A signature dictionary found in the file (for agid_sig.h). */
struct agid_pdf_sig {
	int obj;
	long long range[4];        /* /ByteRange; all -1 when missing or malformed */
	bool range_ok;             /* four non-negative integers */
	char subfilter[40];        /* "ETSI.CAdES.detached", ... or "" */
	bool doc_timestamp;        /* /Type /DocTimeStamp */
	unsigned char *contents;   /* /Contents bytes (DER, zero padding included) */
	size_t contents_len;
};

#define AGID_MAX_SIGS 16u

struct agid_pdfa_report {
	enum agid_flavour claimed;   /* from XMP pdfaid:part/conformance */
	enum agid_flavour profile;   /* rules applied (opts->profile or claimed) */
	bool valid;                  /* no finding against the applied profile */
	bool readable;               /* qpdf could read the structure */
	bool limit_hit;              /* a cap (objects, stream, time) stopped the check */
	char version[4];             /* "1.7" from the header, "" if none */
	int pages;
	size_t objects;              /* indirect objects visited */
	struct agid_finding *findings;
	size_t nfindings;
	size_t dropped;              /* findings past AGID_MAX_FINDINGS */
	struct agid_finding *warnings;   /* worth a look, not a failure (e.g. unverifiable rules) */
	size_t nwarnings;
	size_t wdropped;
	struct agid_pdf_sig *sigs;
	size_t nsigs;
	bool acroform_sigflags;      /* /AcroForm /SigFlags has bit 1 */
};

/*
 * Check (data, len), a whole PDF file in memory (not copied; it must stay
 * valid during the call). Returns 0 with *out set (valid or not), or
 * SB_EINVAL for a NULL argument. Free *out with agid_pdfa_report_free.
 */
int agid_pdfa_check_mem(struct agid_pdfa_report **out, const void *data, size_t len,
			const struct agid_pdfa_opts *opts, struct sb_err *err);

/*
 * Same for a file (mapped read-only). SB_ENOTFOUND / SB_EIO when it cannot
 * be read, SB_ETOOBIG above SB_MAX_PDF; *out untouched then.
 */
int agid_pdfa_check_file(struct agid_pdfa_report **out, const char *path,
			 const struct agid_pdfa_opts *opts, struct sb_err *err);

/* Free a report; NULL is a no-op. */
void agid_pdfa_report_free(struct agid_pdfa_report *r);

/* true if the report has a finding for clause (exact match). */
bool agid_pdfa_has_clause(const struct agid_pdfa_report *r, const char *clause);

#endif
