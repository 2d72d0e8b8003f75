/*
 * PDF/A structural checks (ISO 19005-1/-2/-3) over libqpdf's C API.
 *
 * Spec: ../shared/specs/agid/SUMMARY.md section 1.2 (the rules a
 * structural checker can run, with the veraPDF clause of each), checked
 * against the veraPDF corpus files in ../shared/fixtures-external/pdfa/.
 *
 * Design:
 * - qpdf reads the structure; this file never tokenises PDF syntax. The
 *   only raw bytes looked at are the header lines and the tail after the
 *   last %%EOF, which ISO 19005 defines on bytes and qpdf hides.
 * - The object graph is walked from the trailer with an explicit stack of
 *   object numbers (no recursion across indirect objects, a visited
 *   bitmap, a cap on objects and a deadline), and every qpdf handle is
 *   released after each object, so memory stays flat on big files.
 * - Streams this module reads (XMP, ICC profiles, embedded files) are taken
 *   raw from qpdf and inflated here with a ceiling, so a decompression bomb
 *   in them costs at most max_stream bytes.
 * - Clauses differ per part; one table maps each rule to its clause.
 */
#include <jansson.h>
#include <qpdf/qpdf-c.h>
#include <zlib.h>

#include "sb_common.h"
#include "sb_log.h"
#include "agid_pdfa.h"
#include "agid_int.h"

enum rule {
	R_STRUCT, R_HEADER, R_TRAILER, R_EOF, R_LZW, R_EXTSTREAM, R_EMBED, R_OC, R_OUTPUT,
	R_TRANSP, R_FONT, R_ACTION, R_AA, R_NEEDAPP, R_XFA, R_XMP, R_XMPFILTER, R_XMPHEADER,
	R_PDFAID, R_INFO, R_LIMIT, R_TAGGED, R_NRULES
};

/* Clause per part (index 0: part 1, 1: part 2, 2: part 3); NULL: no such rule in that part. */
static const char *const clauses[3][R_NRULES] = {
	{ "6.1", "6.1.2", "6.1.3", "6.1.3", "6.1.10", "6.1.7", "6.1.11", "6.1.13", "6.2.2",
	  "6.4", "6.3.4", "6.6.1", "6.6.2", "6.9", "6.9", "6.7.2", "6.7.2", "6.7.5",
	  "6.7.11", "6.7.3", "6.1", "6.8.2.2" },
	{ "6.1", "6.1.2", "6.1.3", "6.1.3", "6.1.7.2", "6.1.7.1", "6.8", NULL, "6.2.3",
	  NULL, "6.2.11.4.1", "6.5.1", "6.5.2", "6.4.1", "6.4.2", "6.6.2.1", NULL, "6.6.2.1",
	  "6.6.4", NULL, "6.1", "6.7.2.2" },
	{ "6.1", "6.1.2", "6.1.3", "6.1.3", "6.1.7.2", "6.1.7.1", "6.8", NULL, "6.2.3",
	  NULL, "6.2.11.4.1", "6.5.1", "6.5.2", "6.4.1", "6.4.2", "6.6.2.1", NULL, "6.6.2.1",
	  "6.6.4", NULL, "6.1", "6.7.2.2" },
};

/* Action types no part allows (ISO 19005-1 6.6.1 with Cor.2, 19005-2 6.5.1). */
static const char *const forbidden_actions[] = {
	"/Launch", "/Sound", "/Movie", "/ResetForm", "/ImportData", "/JavaScript",
	"/SetState", "/NoOp", "/set-state", "/no-op", "/Hide",
};
/* Added by parts 2 and 3. */
static const char *const forbidden_actions_2[] = {
	"/SetOCGState", "/Rendition", "/Trans", "/GoTo3DView",
};
static const char *const allowed_named[] = { "/NextPage", "/PrevPage", "/FirstPage", "/LastPage" };

#define WALK_MAX_DEPTH 64     /* direct objects nested inside one indirect object */
#define WALK_MAX_KEYS  4096   /* keys of one dictionary */
#define FONT_MAX_DEPTH 4      /* form XObjects inside form XObjects */
#define EMBED_MAX      8      /* embedded files checked per document */
#define EMBED_MAX_DEPTH 1     /* an embedded file's own embedded files are not opened */

struct objref {
	int id, gen;
};

struct ctx {
	qpdf_data q;
	const unsigned char *data;
	size_t len;
	struct agid_pdfa_report *r;
	const struct agid_pdfa_opts *o;
	size_t max_objects, max_stream;
	int part;                   /* 1..3 of the profile applied */
	struct agid_clock clock;
	unsigned char *seen;        /* visited bitmap, one bit per object number */
	unsigned char *font_seen;   /* fonts and form XObjects already checked */
	size_t nbits;
	int *page_of;               /* object number -> page number (0: not a page) */
	struct objref *stack;
	size_t nstack, astack;
	struct objref embedded[EMBED_MAX];
	size_t nembedded;
	bool stop;                  /* a cap was hit: stop walking */
	bool device_colour;         /* a DeviceRGB/CMYK/Gray colour space is named
				       in a dictionary */
};

static void vadd(struct ctx *c, enum rule rule, int page, int obj, const char *fmt, va_list ap)
{
	const char *clause = clauses[c->part - 1][rule];

	if (!clause)
		return;
	agid_findings_vadd(&c->r->findings, &c->r->nfindings, &c->r->dropped, clause, page, obj,
			   fmt, ap);
}

static void add(struct ctx *c, enum rule rule, int page, int obj, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void add(struct ctx *c, enum rule rule, int page, int obj, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(c, rule, page, obj, fmt, ap);
	va_end(ap);
}

/* Record a cap that stopped the check: the file is then invalid, never "passed". */
static void limit(struct ctx *c, const char *what)
{
	if (c->stop)
		return;
	c->stop = true;
	c->r->limit_hit = true;
	add(c, R_LIMIT, 0, 0, "check stopped: %s", what);
}

static bool out_of_time(struct ctx *c)
{
	if (agid_clock_expired(&c->clock)) {
		limit(c, "time budget exhausted");
		return true;
	}
	return c->stop;
}

/* Drain qpdf's error and warnings after a call; returns true if there was an error. */
static bool qpdf_failed(struct ctx *c, int obj)
{
	bool failed = false;

	while (qpdf_more_warnings(c->q))
		(void)qpdf_next_warning(c->q);
	if (qpdf_has_error(c->q)) {
		qpdf_error e = qpdf_get_error(c->q);
		const char *msg = qpdf_get_error_message_detail(c->q, e);
		char detail[120];

		msg = msg ? msg : "unknown error";
		sb_log_quote(msg, strlen(msg), detail, sizeof(detail));
		add(c, R_STRUCT, 0, obj, "pdf structure cannot be read: %s", detail);
		failed = true;
	}
	return failed;
}

static bool is_name(struct ctx *c, qpdf_oh h, const char *name)
{
	return qpdf_oh_is_name_and_equals(c->q, h, name);
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, list[i]))
			return true;
	return false;
}

static bool bit_get(const unsigned char *bits, size_t nbits, int id)
{
	return id > 0 && (size_t)id < nbits && (bits[id / 8] >> (id % 8)) & 1;
}

static void bit_set(unsigned char *bits, size_t nbits, int id)
{
	if (id > 0 && (size_t)id < nbits)
		bits[id / 8] |= (unsigned char)(1u << (id % 8));
}

static int page_of(struct ctx *c, int id)
{
	return id > 0 && (size_t)id < c->nbits ? c->page_of[id] : 0;
}

/* A name for a message: printable ASCII only, cut short (names can be chosen by an attacker). */
static void safe_name(const char *in, char *out, size_t size)
{
	size_t j = 0;

	for (size_t i = 0; in && in[i] && j + 1 < size && i < 64; i++)
		out[j++] = (in[i] > 0x20 && in[i] < 0x7f) ? in[i] : '?';
	out[j] = '\0';
}

/* ---- raw bytes: header and tail ---- */

static void check_header(struct ctx *c)
{
	const unsigned char *d = c->data;
	size_t n = c->len, i;
	int high = 0;

	if (n < 9 || memcmp(d, "%PDF-", 5) || d[6] != '.' || d[5] < '0' || d[5] > '9' ||
	    d[7] < '0' || d[7] > '9') {
		add(c, R_HEADER, 0, 0, "file does not start with a %%PDF-n.m header at byte 0");
		return;
	}
	memcpy(c->r->version, d + 5, 3);
	c->r->version[3] = '\0';
	if (d[5] != '1' || (c->part >= 2 && d[7] > '7'))
		add(c, R_HEADER, 0, 0, "header version %s is not allowed in PDF/A-%d",
		    c->r->version, c->part);
	for (i = 8; i < n && d[i] != '\r' && d[i] != '\n'; i++)
		;
	if (i != 8)
		add(c, R_HEADER, 0, 0, "header line has extra bytes after the version");
	if (i < n && d[i] == '\r')
		i++;
	if (i < n && d[i] == '\n')
		i++;
	if (i >= n || d[i] != '%') {
		add(c, R_HEADER, 0, 0, "no binary comment line after the header");
		return;
	}
	for (size_t k = i + 1; k < n && k < i + 1 + 4; k++)
		if (d[k] > 127)
			high++;
	if (high < 4)
		add(c, R_HEADER, 0, 0, "comment after the header has fewer than 4 bytes above 127");
}

static void check_tail(struct ctx *c)
{
	const unsigned char *d = c->data;
	size_t n = c->len, start = n > 1024 ? n - 1024 : 0, pos = SIZE_MAX, rest;

	for (size_t i = n >= 5 ? n - 5 : 0; n >= 5 && i + 1 > start; i--) {
		if (!memcmp(d + i, "%%EOF", 5)) {
			pos = i;
			break;
		}
		if (i == 0)
			break;
	}
	if (pos == SIZE_MAX) {
		add(c, R_EOF, 0, 0, "no %%%%EOF marker at the end of the file (truncated?)");
		return;
	}
	rest = n - pos - 5;
	if (rest == 0 || (rest == 1 && (d[pos + 5] == '\n' || d[pos + 5] == '\r')) ||
	    (rest == 2 && d[pos + 5] == '\r' && d[pos + 6] == '\n'))
		return;
	add(c, R_EOF, 0, 0, "%zu bytes follow the last %%%%EOF marker", rest);
}

/* ---- bounded stream decoding ---- */

/*
 * Raw stream data from qpdf, inflated here when /Filter is FlateDecode.
 * Returns 0 with *out (free()) or a negative code: SB_ETOOBIG past the cap,
 * SB_EINVAL for a filter this module does not decode or corrupt data.
 */
static int stream_bytes(struct ctx *c, qpdf_oh s, unsigned char **out, size_t *len_out,
			bool *filtered_out)
{
	unsigned char *raw = NULL, *dec = NULL;
	size_t rawlen = 0, declen = 0, alloc = 0;
	qpdf_oh dict = qpdf_oh_get_dict(c->q, s), f = qpdf_oh_get_key(c->q, dict, "/Filter");
	bool flate = false;
	z_stream z;
	int rc = SB_EINVAL, zr;

	if (qpdf_oh_is_array(c->q, f)) {
		if (qpdf_oh_get_array_n_items(c->q, f) == 1)
			f = qpdf_oh_get_array_item(c->q, f, 0);
		else if (qpdf_oh_get_array_n_items(c->q, f) > 1)
			return SB_EINVAL;
	}
	if (is_name(c, f, "/FlateDecode"))
		flate = true;
	else if (!qpdf_oh_is_null(c->q, f) && !qpdf_oh_is_array(c->q, f))
		return SB_EINVAL;
	if (qpdf_oh_get_stream_data(c->q, s, qpdf_dl_none, NULL, &raw, &rawlen) != QPDF_SUCCESS ||
	    !raw) {
		free(raw);
		return SB_EINVAL;
	}
	if (filtered_out)
		*filtered_out = flate;
	if (!flate) {
		if (rawlen > c->max_stream) {
			free(raw);
			return SB_ETOOBIG;
		}
		*out = raw;
		*len_out = rawlen;
		return 0;
	}
	memset(&z, 0, sizeof(z));
	if (inflateInit(&z) != Z_OK) {
		free(raw);
		return SB_EINTERNAL;
	}
	z.next_in = raw;
	z.avail_in = rawlen > UINT_MAX ? UINT_MAX : (unsigned)rawlen;
	do {
		if (declen == alloc) {
			if (alloc >= c->max_stream) {
				rc = SB_ETOOBIG;
				goto cleanup;
			}
			alloc = alloc ? alloc * 2 : 4096;
			if (alloc > c->max_stream)
				alloc = c->max_stream;
			dec = sb_xrealloc(dec, alloc);
		}
		z.next_out = dec + declen;
		z.avail_out = (unsigned)(alloc - declen);
		zr = inflate(&z, Z_NO_FLUSH);
		declen = alloc - z.avail_out;
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
			rc = SB_EINVAL;
			goto cleanup;
		}
		if (zr == Z_BUF_ERROR && z.avail_out)
			break;      /* input ended early: keep what was decoded, as readers do */
	} while (zr != Z_STREAM_END);
	*out = dec;
	*len_out = declen;
	dec = NULL;
	rc = 0;
cleanup:
	inflateEnd(&z);
	free(raw);
	free(dec);
	return rc;
}

/* ---- the object walk ---- */

static void push(struct ctx *c, qpdf_oh h)
{
	int id = qpdf_oh_get_object_id(c->q, h);

	if (id <= 0 || bit_get(c->seen, c->nbits, id))
		return;
	if ((size_t)id >= c->nbits) {
		/* qpdf resolves numbers past /Size to null; nothing to visit */
		return;
	}
	bit_set(c->seen, c->nbits, id);
	if (c->nstack == c->astack) {
		c->astack = c->astack ? c->astack * 2 : 256;
		c->stack = sb_xrealloc(c->stack, c->astack * sizeof(*c->stack));
	}
	c->stack[c->nstack].id = id;
	c->stack[c->nstack].gen = qpdf_oh_get_generation(c->q, h);
	c->nstack++;
}

static void walk_value(struct ctx *c, qpdf_oh h, int depth, int obj);
static void walk_typed(struct ctx *c, qpdf_oh h, enum qpdf_object_type_e t, int depth, int obj);

static void check_action(struct ctx *c, qpdf_oh d, const char *s, int page, int obj)
{
	qpdf_oh type = qpdf_oh_get_key(c->q, d, "/Type");

	if (!qpdf_oh_is_null(c->q, type) && !is_name(c, type, "/Action"))
		return;
	if (in_list(s, forbidden_actions, SB_ARRAY_SIZE(forbidden_actions)) ||
	    (c->part >= 2 && in_list(s, forbidden_actions_2, SB_ARRAY_SIZE(forbidden_actions_2))))
		add(c, R_ACTION, page, obj, "forbidden action %s", s + 1);
	if (!strcmp(s, "/Named")) {
		const char *n = qpdf_oh_get_name(c->q, qpdf_oh_get_key(c->q, d, "/N"));
		char name[64];

		if (!n || !in_list(n, allowed_named, SB_ARRAY_SIZE(allowed_named))) {
			safe_name(n && n[0] ? n + 1 : "?", name, sizeof(name));
			add(c, R_ACTION, page, obj, "named action %s is not allowed", name);
		}
	}
}

static void check_filter(struct ctx *c, qpdf_oh f, int page, int obj)
{
	int n;

	if (is_name(c, f, "/LZWDecode")) {
		add(c, R_LZW, page, obj, "stream uses the LZWDecode filter");
		return;
	}
	if (!qpdf_oh_is_array(c->q, f))
		return;
	n = qpdf_oh_get_array_n_items(c->q, f);
	for (int i = 0; i < n && i < 32; i++)
		if (is_name(c, qpdf_oh_get_array_item(c->q, f, i), "/LZWDecode"))
			add(c, R_LZW, page, obj, "stream uses the LZWDecode filter");
}

static void check_filespec(struct ctx *c, qpdf_oh d, int page, int obj)
{
	qpdf_oh ef = qpdf_oh_get_key(c->q, d, "/EF"), s;

	if (c->part == 1) {
		add(c, R_EMBED, page, obj, "embedded file (EF) is not allowed in PDF/A-1");
		return;
	}
	s = qpdf_oh_get_key(c->q, ef, "/F");
	if (!qpdf_oh_has_key(c->q, d, "/F") || !qpdf_oh_has_key(c->q, d, "/UF"))
		add(c, R_EMBED, page, obj, "embedded file specification lacks F or UF");
	if (c->part == 3) {
		if (!qpdf_oh_has_key(c->q, d, "/AFRelationship"))
			add(c, R_EMBED, page, obj,
			    "embedded file specification lacks AFRelationship");
		if (qpdf_oh_is_stream(c->q, s) &&
		    !qpdf_oh_is_name(c->q,
				     qpdf_oh_get_key(c->q, qpdf_oh_get_dict(c->q, s), "/Subtype")))
			add(c, R_EMBED, page, obj, "embedded file stream lacks a MIME Subtype");
		return;
	}
	if (qpdf_oh_is_stream(c->q, s) && c->nembedded < EMBED_MAX) {
		c->embedded[c->nembedded].id = qpdf_oh_get_object_id(c->q, s);
		c->embedded[c->nembedded].gen = qpdf_oh_get_generation(c->q, s);
		c->nembedded++;
	}
}

static void note_signature(struct ctx *c, qpdf_oh d, int obj)
{
	struct agid_pdf_sig *sig;
	qpdf_oh br = qpdf_oh_get_key(c->q, d, "/ByteRange"),
		ct = qpdf_oh_get_key(c->q, d, "/Contents");
	const char *sf = qpdf_oh_get_name(c->q, qpdf_oh_get_key(c->q, d, "/SubFilter"));
	const char *bytes;
	size_t n = 0;

	if (c->r->nsigs >= AGID_MAX_SIGS || !qpdf_oh_is_string(c->q, ct))
		return;
	if (!c->r->sigs)
		SB_ALLOC_ARRAY(c->r->sigs, AGID_MAX_SIGS);
	sig = &c->r->sigs[c->r->nsigs++];
	sig->obj = obj;
	sig->doc_timestamp = is_name(c, qpdf_oh_get_key(c->q, d, "/Type"), "/DocTimeStamp");
	safe_name(sf && sf[0] ? sf + 1 : "", sig->subfilter, sizeof(sig->subfilter));
	sig->range_ok = qpdf_oh_is_array(c->q, br) && qpdf_oh_get_array_n_items(c->q, br) == 4;
	for (int i = 0; i < 4; i++) {
		long long v = -1;
		qpdf_oh it = sig->range_ok ? qpdf_oh_get_array_item(c->q, br, i) : 0;

		if (!sig->range_ok || !qpdf_oh_get_value_as_longlong(c->q, it, &v) || v < 0)
			sig->range_ok = false;
		sig->range[i] = sig->range_ok ? v : -1;
	}
	if (!sig->range_ok)
		for (int i = 0; i < 4; i++)
			sig->range[i] = -1;
	bytes = qpdf_oh_get_binary_string_value(c->q, ct, &n);
	if (bytes && n) {
		sig->contents = sb_xmalloc(n);
		memcpy(sig->contents, bytes, n);
		sig->contents_len = n;
	}
}

static void walk_dict(struct ctx *c, qpdf_oh d, int depth, bool stream, int obj)
{
	char **keys = NULL;
	size_t nkeys = 0, akeys = 0;
	int page = page_of(c, obj);

	qpdf_oh_begin_dict_key_iter(c->q, d);
	while (qpdf_oh_dict_more_keys(c->q)) {
		const char *k = qpdf_oh_dict_next_key(c->q);

		if (nkeys == WALK_MAX_KEYS) {
			limit(c, "a dictionary has too many keys");
			break;
		}
		if (nkeys == akeys) {
			akeys = akeys ? akeys * 2 : 16;
			keys = sb_xrealloc(keys, akeys * sizeof(*keys));
		}
		keys[nkeys++] = sb_xstrdup(k);
	}
	for (size_t i = 0; i < nkeys && !c->stop; i++) {
		const char *k = keys[i];
		qpdf_oh v = qpdf_oh_get_key(c->q, d, k);
		/*
		 * One type query per value instead of one per question (is it a
		 * name, an array, a dictionary): each C API call costs a handle
		 * lookup in qpdf, and a document has thousands of keys.
		 */
		enum qpdf_object_type_e t = qpdf_oh_get_type_code(c->q, v);
		const char *name = t == ot_name ? qpdf_oh_get_name(c->q, v) : NULL;

		if (!strcmp(k, "/S") && name) {
			if (!strcmp(name, "/Transparency"))
				add(c, R_TRANSP, page, obj, "transparency group is not allowed");
			else
				check_action(c, d, name, page, obj);
		} else if (!strcmp(k, "/AA")) {
			add(c, R_AA, page, obj,
			    "additional-actions (AA) dictionary is not allowed");
		} else if (!strcmp(k, "/JavaScript") && !stream) {
			add(c, R_ACTION, page, obj, "document-level JavaScript is not allowed");
		} else if (!strcmp(k, "/SMask") && !(name && !strcmp(name, "/None"))) {
			add(c, R_TRANSP, page, obj, "soft mask (SMask) is not allowed");
		} else if (!strcmp(k, "/BM") && !(name && (!strcmp(name, "/Normal") ||
							   !strcmp(name, "/Compatible")))) {
			add(c, R_TRANSP, page, obj, "blend mode other than Normal is not allowed");
		} else if ((!strcmp(k, "/CA") || !strcmp(k, "/ca")) && qpdf_oh_is_number(c->q, v) &&
			   qpdf_oh_get_numeric_value(c->q, v) != 1.0) {
			add(c, R_TRANSP, page, obj, "constant alpha %s is not 1.0", k + 1);
		} else if (!strcmp(k, "/EF")) {
			check_filespec(c, d, page, obj);
		} else if (!strcmp(k, "/EmbeddedFiles") && c->part == 1) {
			add(c, R_EMBED, page, obj,
			    "EmbeddedFiles name tree is not allowed in PDF/A-1");
		} else if (stream && !strcmp(k, "/Filter")) {
			check_filter(c, v, page, obj);
		} else if (stream && (!strcmp(k, "/F") || !strcmp(k, "/FFilter") ||
				      !strcmp(k, "/FDecodeParms"))) {
			add(c, R_EXTSTREAM, page, obj,
			    "stream refers to external data (%s)", k + 1);
		} else if (!strcmp(k, "/OCProperties")) {
			add(c, R_OC, page, obj, "optional content (OCProperties) is not allowed");
		} else if (!strcmp(k, "/XFA") || !strcmp(k, "/NeedsRendering")) {
			if (strcmp(k, "/NeedsRendering") || qpdf_oh_get_bool_value(c->q, v))
				add(c, R_XFA, page, obj, "XFA forms are not allowed (%s)", k + 1);
		} else if (!strcmp(k, "/NeedAppearances") && qpdf_oh_is_bool(c->q, v) &&
			   qpdf_oh_get_bool_value(c->q, v)) {
			add(c, R_NEEDAPP, page, obj, "NeedAppearances is true");
		} else if ((!strcmp(k, "/ColorSpace") || !strcmp(k, "/CS")) && name &&
			   (!strcmp(name, "/DeviceRGB") || !strcmp(name, "/DeviceCMYK") ||
			    !strcmp(name, "/DeviceGray"))) {
			c->device_colour = true;
		} else if (!strcmp(k, "/ByteRange") && !stream) {
			note_signature(c, d, obj);
		} else if (!strcmp(k, "/SigFlags") && qpdf_oh_is_integer(c->q, v) &&
			   (qpdf_oh_get_int_value(c->q, v) & 1)) {
			c->r->acroform_sigflags = true;
		}
		if (qpdf_oh_is_indirect(c->q, v))
			push(c, v);
		else
			walk_typed(c, v, t, depth + 1, obj);
	}
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
}

/*
 * h of type t (qpdf_oh_get_type_code: an indirect h is typed by what it
 * refers to), once the caller has queued it instead when it is indirect
 * below the top.
 */
static void walk_typed(struct ctx *c, qpdf_oh h, enum qpdf_object_type_e t, int depth, int obj)
{
	if (c->stop)
		return;
	if (depth > WALK_MAX_DEPTH) {
		limit(c, "objects nested too deeply");
		return;
	}
	if (t == ot_dictionary) {
		walk_dict(c, h, depth, false, obj);
	} else if (t == ot_array) {
		int n = qpdf_oh_get_array_n_items(c->q, h);

		for (int i = 0; i < n && !c->stop; i++)
			walk_value(c, qpdf_oh_get_array_item(c->q, h, i), depth + 1, obj);
	}
}

static void walk_value(struct ctx *c, qpdf_oh h, int depth, int obj)
{
	if (c->stop)
		return;
	/* An indirect value below the top is only queued: not resolved here. */
	if (depth > 0 && qpdf_oh_is_indirect(c->q, h)) {
		push(c, h);
		return;
	}
	walk_typed(c, h, qpdf_oh_get_type_code(c->q, h), depth, obj);
}

static void walk(struct ctx *c)
{
	qpdf_oh t = qpdf_get_trailer(c->q);

	walk_dict(c, t, 0, false, 0);
	qpdf_oh_release_all(c->q);
	while (c->nstack && !out_of_time(c)) {
		struct objref ref = c->stack[--c->nstack];
		qpdf_oh h;

		if (++c->r->objects > c->max_objects) {
			limit(c, "too many objects");
			break;
		}
		h = qpdf_get_object_by_id(c->q, ref.id, ref.gen);
		if (qpdf_oh_is_stream(c->q, h))
			walk_dict(c, qpdf_oh_get_dict(c->q, h), 0, true, ref.id);
		else if (qpdf_oh_is_dictionary(c->q, h) || qpdf_oh_is_array(c->q, h))
			walk_value(c, h, 0, ref.id);
		qpdf_oh_release_all(c->q);
		if (qpdf_failed(c, ref.id)) {
			limit(c, "unreadable object");
			break;
		}
	}
}

/* ---- pages and fonts ---- */

static void check_font(struct ctx *c, qpdf_oh font, const char *key, int page)
{
	qpdf_oh sub = qpdf_oh_get_key(c->q, font, "/Subtype"), fd, desc;
	int id = qpdf_oh_get_object_id(c->q, font);
	char name[64];

	if (id > 0) {
		if (bit_get(c->font_seen, c->nbits, id))
			return;
		bit_set(c->font_seen, c->nbits, id);
	}
	if (is_name(c, sub, "/Type3"))
		return;
	desc = font;
	if (is_name(c, sub, "/Type0"))
		desc = qpdf_oh_get_array_item(c->q,
					      qpdf_oh_get_key(c->q, font, "/DescendantFonts"), 0);
	fd = qpdf_oh_get_key(c->q, desc, "/FontDescriptor");
	if (qpdf_oh_has_key(c->q, fd, "/FontFile") || qpdf_oh_has_key(c->q, fd, "/FontFile2") ||
	    qpdf_oh_has_key(c->q, fd, "/FontFile3"))
		return;
	{
		const char *base = qpdf_oh_get_name(c->q, qpdf_oh_get_key(c->q, font, "/BaseFont"));

		safe_name(base && base[0] ? base + 1 : key + 1, name, sizeof(name));
	}
	add(c, R_FONT, page, id > 0 ? id : 0, "font %s is not embedded", name);
}

static void check_resources(struct ctx *c, qpdf_oh res, int page, int depth)
{
	qpdf_oh fonts = qpdf_oh_get_key(c->q, res, "/Font"),
		xobj = qpdf_oh_get_key(c->q, res, "/XObject");
	char **keys = NULL;
	size_t n = 0;

	if (depth > FONT_MAX_DEPTH || c->stop)
		return;
	for (int pass = 0; pass < 2; pass++) {
		qpdf_oh dict = pass ? xobj : fonts;

		if (!qpdf_oh_is_dictionary(c->q, dict))
			continue;
		n = 0;
		qpdf_oh_begin_dict_key_iter(c->q, dict);
		while (qpdf_oh_dict_more_keys(c->q) && n < WALK_MAX_KEYS) {
			keys = sb_xrealloc(keys, (n + 1) * sizeof(*keys));
			keys[n++] = sb_xstrdup(qpdf_oh_dict_next_key(c->q));
		}
		for (size_t i = 0; i < n; i++) {
			qpdf_oh v = qpdf_oh_get_key(c->q, dict, keys[i]);
			int id = qpdf_oh_get_object_id(c->q, v);

			if (!pass && qpdf_oh_is_dictionary(c->q, v)) {
				check_font(c, v, keys[i], page);
			} else if (pass && qpdf_oh_is_stream(c->q, v) &&
				   is_name(c, qpdf_oh_get_key(c->q, qpdf_oh_get_dict(c->q, v),
							      "/Subtype"),
					   "/Form") && !bit_get(c->font_seen, c->nbits, id)) {
				bit_set(c->font_seen, c->nbits, id);
				check_resources(c, qpdf_oh_get_key(c->q, qpdf_oh_get_dict(c->q, v),
								   "/Resources"), page, depth + 1);
			}
			free(keys[i]);
		}
	}
	free(keys);
}

static void check_pages(struct ctx *c)
{
	int n = qpdf_get_num_pages(c->q);

	if (qpdf_failed(c, 0) || n < 0) {
		c->r->readable = false;
		return;
	}
	c->r->pages = n;
	for (int i = 0; i < n && !out_of_time(c); i++) {
		qpdf_oh p = qpdf_get_page_n(c->q, (size_t)i), res = 0;
		int id = qpdf_oh_get_object_id(c->q, p);

		if (id > 0 && (size_t)id < c->nbits)
			c->page_of[id] = i + 1;
		/* Resources may be inherited from the page tree; the chain is capped. */
		for (int up = 0; up < 32 && qpdf_oh_is_dictionary(c->q, p); up++) {
			res = qpdf_oh_get_key(c->q, p, "/Resources");
			if (qpdf_oh_is_dictionary(c->q, res))
				break;
			p = qpdf_oh_get_key(c->q, p, "/Parent");
		}
		if (res && qpdf_oh_is_dictionary(c->q, res))
			check_resources(c, res, i + 1, 0);
		qpdf_oh_release_all(c->q);
		if (qpdf_failed(c, id)) {
			limit(c, "unreadable page");
			break;
		}
	}
	qpdf_failed(c, 0);
}

/* ---- output intents ---- */

static void check_icc(struct ctx *c, qpdf_oh prof, int obj)
{
	unsigned char *icc = NULL;
	size_t len = 0;
	long long ncomp = 0;
	int rc = stream_bytes(c, prof, &icc, &len, NULL);

	if (rc == SB_ETOOBIG) {
		limit(c, "ICC profile larger than the stream cap");
		return;
	}
	if (rc < 0 || len < 128) {
		add(c, R_OUTPUT, 0, obj, "output intent ICC profile cannot be read");
		goto cleanup;
	}
	if (memcmp(icc + 12, "prtr", 4) && memcmp(icc + 12, "mntr", 4))
		add(c, R_OUTPUT, 0, obj, "ICC profile device class is not prtr or mntr");
	if (c->part == 1 && icc[8] >= 4)
		add(c, R_OUTPUT, 0, obj,
		    "ICC profile version %u is newer than PDF/A-1 allows", icc[8]);
	(void)qpdf_oh_get_value_as_longlong(c->q,
					    qpdf_oh_get_key(c->q, qpdf_oh_get_dict(c->q, prof),
							    "/N"),
					    &ncomp);
	if (!((ncomp == 3 && !memcmp(icc + 16, "RGB ", 4)) ||
	      (ncomp == 4 && !memcmp(icc + 16, "CMYK", 4)) ||
	      (ncomp == 1 && !memcmp(icc + 16, "GRAY", 4))))
		add(c, R_OUTPUT, 0, obj, "ICC profile colour space does not match its N entry");
cleanup:
	free(icc);
}

static void check_output_intents(struct ctx *c, qpdf_oh root)
{
	qpdf_oh ois = qpdf_oh_get_key(c->q, root, "/OutputIntents");
	int n = qpdf_oh_is_array(c->q, ois) ? qpdf_oh_get_array_n_items(c->q, ois) : 0;
	int found = 0, first = 0;

	for (int i = 0; i < n && i < 64; i++) {
		qpdf_oh oi = qpdf_oh_get_array_item(c->q, ois, i), prof;
		int oid = qpdf_oh_get_object_id(c->q, oi), pid;

		if (!is_name(c, qpdf_oh_get_key(c->q, oi, "/S"), "/GTS_PDFA1"))
			continue;
		found++;
		prof = qpdf_oh_get_key(c->q, oi, "/DestOutputProfile");
		if (!qpdf_oh_is_stream(c->q, prof)) {
			add(c, R_OUTPUT, 0, oid,
			    "GTS_PDFA1 output intent has no DestOutputProfile");
			continue;
		}
		pid = qpdf_oh_get_object_id(c->q, prof);
		if (!first)
			first = pid;
		else if (pid != first)
			add(c, R_OUTPUT, 0, oid,
			    "output intents have different DestOutputProfiles");
		check_icc(c, prof, pid);
	}
	/*
	 * ISO 19005 requires the output intent only when device-dependent colour
	 * is used. Colour spaces named in dictionaries (images, resources) are
	 * seen by the walk; colour set by content-stream operators is not, so
	 * without an intent and without such a name the report says so as a
	 * warning rather than passing it silently.
	 */
	if (!found && c->device_colour)
		add(c, R_OUTPUT, 0, 0,
		    "device colour is used but there is no GTS_PDFA1 output intent");
	else if (!found)
		agid_findings_add(&c->r->warnings, &c->r->nwarnings, &c->r->wdropped,
				  clauses[c->part - 1][R_OUTPUT], 0, 0,
				  "no output intent: "
				  "device colour in content streams not verified");
}

/* ---- embedded files (part 2: each must be PDF/A-1 or PDF/A-2) ---- */

static void check_embedded(struct ctx *c)
{
	for (size_t i = 0; i < c->nembedded && !out_of_time(c); i++) {
		qpdf_oh s = qpdf_get_object_by_id(c->q, c->embedded[i].id, c->embedded[i].gen);
		struct agid_pdfa_opts sub = AGID_PDFA_OPTS_INIT;
		struct agid_pdfa_report *er = NULL;
		unsigned char *bytes = NULL;
		size_t len = 0;
		int rc;

		rc = stream_bytes(c, s, &bytes, &len, NULL);
		qpdf_oh_release_all(c->q);
		if (rc == SB_ETOOBIG) {
			limit(c, "embedded file larger than the stream cap");
			break;
		}
		if (rc < 0 || c->o->depth >= EMBED_MAX_DEPTH) {
			add(c, R_EMBED, 0, c->embedded[i].id, "embedded file cannot be checked");
			free(bytes);
			continue;
		}
		sub.max_objects = c->max_objects;
		sub.max_stream = c->max_stream;
		sub.time_budget_ms = agid_clock_left_ms(&c->clock);
		sub.depth = c->o->depth + 1;
		if (agid_pdfa_check_mem(&er, bytes, len, &sub, NULL) < 0 || !er->valid ||
		    agid_flavour_part(er->claimed) > 2 || agid_flavour_part(er->claimed) < 1)
			add(c, R_EMBED, 0, c->embedded[i].id,
			    "embedded file is not a valid PDF/A-1 or PDF/A-2 document");
		agid_pdfa_report_free(er);
		free(bytes);
	}
}

/* ---- containers qpdf inflates by itself ---- */

#define PRECHECK_MAX_JSON    (1024u * 1024u)   /* qpdf's JSON header and one object */
#define PRECHECK_MAX_STREAMS 4096u                   /* object and xref streams per file */

static int json_sink(const char *data, size_t len, void *ud)
{
	return sb_buf_add(ud, data, len) < 0 ? 1 : 0;
}

static void drain(qpdf_data q)
{
	while (qpdf_more_warnings(q))
		(void)qpdf_next_warning(q);
	if (qpdf_has_error(q))
		(void)qpdf_get_error(q);
}

/* Inflate one object or xref stream of q1 within the caps; false when a cap stops the check. */
static bool precheck_one(struct ctx *c, qpdf_data q1, int id, int gen, size_t *total)
{
	qpdf_data saved = c->q;
	unsigned char *buf = NULL;
	size_t blen = 0;
	int rc;

	c->q = q1;
	rc = stream_bytes(c, qpdf_get_object_by_id(q1, id, gen), &buf, &blen, NULL);
	qpdf_oh_release_all(q1);
	drain(q1);
	c->q = saved;
	free(buf);
	if (rc == SB_ETOOBIG || (rc == 0 && sb_size_add(total, *total, blen) < 0) ||
	    *total > 4 * (size_t)c->max_stream) {
		limit(c, "object streams inflate past the stream cap (decompression bomb)");
		return false;
	}
	if (rc < 0) {
		limit(c, "an object stream uses a filter this checker cannot bound, or is corrupt");
		return false;
	}
	return !out_of_time(c);
}

/*
 * qpdf inflates object streams and cross-reference streams itself, and its
 * C API has no ceiling for that: a 600 KB file can ask for gigabytes. So
 * before the real read the file is opened once with xref streams ignored:
 * qpdf then finds the objects by scanning, the compressed containers show
 * up as ordinary streams, and each is inflated here within the caps. The
 * highest object number comes from qpdf's JSON header (asked for one
 * object only). A classic file (an xref table and no XRefStm) opens without
 * warnings and skips the rest. Returns false when a cap stopped the check.
 */
static bool precheck_streams(struct ctx *c)
{
	static const char *const one[] = { "obj:1 0 R", NULL };
	qpdf_data q1 = qpdf_init();
	struct sb_buf js = SB_BUF_INIT(PRECHECK_MAX_JSON);
	json_t *root = NULL;
	json_int_t maxid;
	size_t n = 0, total = 0;
	bool ok = true, warned;

	qpdf_silence_errors(q1);
	qpdf_set_suppress_warnings(q1, QPDF_TRUE);
	qpdf_set_ignore_xref_streams(q1, QPDF_TRUE);
	/* a file with only xref streams has no trailer for qpdf here: an error is expected */
	warned = qpdf_read_memory(q1, "document", (const char *)c->data, c->len, "") !=
		 QPDF_SUCCESS;
	drain(q1);
	if (!warned && !qpdf_oh_has_key(q1, qpdf_get_trailer(q1), "/XRefStm"))
		goto cleanup;
	(void)qpdf_write_json(q1, 2, json_sink, &js, qpdf_dl_none, qpdf_sj_none, "", one);
	drain(q1);
	root = json_loadb(sb_buf_cstr(&js), js.len, 0, NULL);
	maxid = json_integer_value(json_object_get(json_array_get(json_object_get(root, "qpdf"), 0),
						   "maxobjectid"));
	if (maxid > (json_int_t)c->max_objects) {
		limit(c, "too many objects");
		ok = false;
		goto cleanup;
	}
	for (int id = 1; id <= (int)maxid && ok; id++) {
		qpdf_oh h = qpdf_get_object_by_id(q1, id, 0);
		qpdf_oh type = qpdf_oh_is_stream(q1, h) ?
			       qpdf_oh_get_key(q1, qpdf_oh_get_dict(q1, h), "/Type") : 0;
		bool container = type && (qpdf_oh_is_name_and_equals(q1, type, "/ObjStm") ||
					  qpdf_oh_is_name_and_equals(q1, type, "/XRef"));

		qpdf_oh_release_all(q1);
		drain(q1);
		if (!container)
			continue;
		if (++n > PRECHECK_MAX_STREAMS) {
			limit(c, "too many object streams");
			ok = false;
			break;
		}
		ok = precheck_one(c, q1, id, 0, &total);
	}
cleanup:
	json_decref(root);
	sb_buf_release(&js);
	drain(q1);
	qpdf_cleanup(&q1);
	return ok;
}

/* ---- entry points ---- */

static void run(struct ctx *c)
{
	qpdf_oh trailer, root, meta;
	struct agid_xmp xmp = AGID_XMP_INIT;
	unsigned char *xbytes = NULL;
	size_t xlen = 0;
	bool filtered = false;
	uint64_t size = 0;
	int rc;

	c->r->readable = true;
	c->part = c->o->profile ? agid_flavour_part(c->o->profile) : 2;
	qpdf_silence_errors(c->q);
	qpdf_set_suppress_warnings(c->q, QPDF_TRUE);
	if (!precheck_streams(c)) {
		check_header(c);
		check_tail(c);
		return;
	}
	if (qpdf_read_memory(c->q, "document", (const char *)c->data, c->len, "") & QPDF_ERRORS) {
		qpdf_failed(c, 0);
		c->r->readable = false;
		check_header(c);
		check_tail(c);
		return;
	}
	trailer = qpdf_get_trailer(c->q);
	root = qpdf_get_root(c->q);
	if (qpdf_failed(c, 0)) {
		/* no catalog: nothing else can be read, and further calls would only fail */
		c->r->readable = false;
		check_header(c);
		check_tail(c);
		return;
	}
	meta = qpdf_oh_get_key(c->q, root, "/Metadata");
	if (qpdf_oh_is_stream(c->q, meta)) {
		rc = stream_bytes(c, meta, &xbytes, &xlen, &filtered);
		if (rc == 0)
			agid_xmp_parse(&xmp, xbytes, xlen);
		else if (rc == SB_ETOOBIG)
			xmp.error = "XMP metadata stream larger than the stream cap";
		else
			xmp.error = "XMP metadata stream cannot be decoded";
		c->r->limit_hit = rc == SB_ETOOBIG;
	} else {
		xmp.error = "the catalog has no Metadata stream";
	}
	c->r->claimed = xmp.flavour;
	c->r->profile = c->o->profile ? c->o->profile : xmp.flavour;
	c->part = c->r->profile ? agid_flavour_part(c->r->profile) : 2;

	check_header(c);
	check_tail(c);
	if (!qpdf_oh_has_key(c->q, trailer, "/ID"))
		add(c, R_TRAILER, 0, 0, "trailer has no ID");
	if (qpdf_oh_has_key(c->q, trailer, "/Encrypt") || qpdf_is_encrypted(c->q))
		add(c, R_TRAILER, 0, 0, "file is encrypted (trailer has Encrypt)");

	if (xmp.error) {
		add(c, R_XMP, 0, qpdf_oh_get_object_id(c->q, meta), "%s", xmp.error);
	} else {
		if (filtered)
			add(c, R_XMPFILTER, 0, qpdf_oh_get_object_id(c->q, meta),
			    "metadata stream is compressed");
		if (xmp.packet_attrs)
			add(c, R_XMPHEADER, 0, 0,
			    "xpacket header has bytes or encoding attributes");
	}
	if (!xmp.error && xmp.pdfaid_problem[0])
		add(c, R_PDFAID, 0, 0, "%s", xmp.pdfaid_problem);
	else if (!xmp.error && !xmp.flavour)
		add(c, R_PDFAID, 0, 0, "XMP has no pdfaid identification");
	else if (c->o->profile && xmp.flavour &&
		 agid_flavour_part(xmp.flavour) != agid_flavour_part(c->o->profile))
		add(c, R_PDFAID, 0, 0, "file claims PDF/A-%s, checked as PDF/A-%s",
		    agid_flavour_name(xmp.flavour), agid_flavour_name(c->o->profile));
	if (c->part == 1 && !xmp.error)
		agid_xmp_check_info(&xmp, c->q, c->r, clauses[0][R_INFO]);
	/* level a: a tagged document (the structure tree itself is not checked) */
	if (c->r->profile == AGID_PDFA_1A || c->r->profile == AGID_PDFA_2A ||
	    c->r->profile == AGID_PDFA_3A) {
		QPDF_BOOL marked = QPDF_FALSE;

		(void)qpdf_oh_get_value_as_bool(c->q,
			qpdf_oh_get_key(c->q, qpdf_oh_get_key(c->q, root, "/MarkInfo"), "/Marked"),
			&marked);
		if (!marked)
			add(c, R_TAGGED, 0, 0, "level a needs MarkInfo Marked true in the catalog");
		if (!qpdf_oh_has_key(c->q, root, "/StructTreeRoot"))
			add(c, R_TAGGED, 0, 0, "level a needs a StructTreeRoot");
	}
	qpdf_oh_release_all(c->q);
	qpdf_failed(c, 0);

	/* trailer /Size bounds the object numbers qpdf will resolve */
	trailer = qpdf_get_trailer(c->q);
	if (!qpdf_oh_get_value_as_ulonglong(c->q, qpdf_oh_get_key(c->q, trailer, "/Size"),
					    (unsigned long long *)&size) || size == 0)
		size = 1;
	qpdf_oh_release_all(c->q);
	if (size > c->max_objects + 1) {
		limit(c, "too many objects");
		goto cleanup;
	}
	c->nbits = (size_t)size + 1;
	c->seen = sb_xcalloc(c->nbits / 8 + 1, 1);
	c->font_seen = sb_xcalloc(c->nbits / 8 + 1, 1);
	c->page_of = sb_xcalloc(c->nbits, sizeof(int));
	check_pages(c);
	if (!c->stop)
		walk(c);
	root = qpdf_get_root(c->q);
	if (!c->stop && qpdf_oh_is_dictionary(c->q, root))
		check_output_intents(c, root);
	qpdf_oh_release_all(c->q);
	if (!c->stop && c->part == 2)
		check_embedded(c);
cleanup:
	agid_xmp_release(&xmp);
	free(xbytes);
}

int agid_pdfa_check_mem(struct agid_pdfa_report **out, const void *data, size_t len,
			const struct agid_pdfa_opts *opts, struct sb_err *err)
{
	struct agid_pdfa_opts def = AGID_PDFA_OPTS_INIT;
	struct ctx c;

	if (!out || (!data && len))
		return sb_err_set(err, SB_EINVAL, 0, "pdf check: no input");
	if (!opts)
		opts = &def;
	memset(&c, 0, sizeof(c));
	c.data = data;
	c.len = len;
	c.o = opts;
	c.max_objects = opts->max_objects ? opts->max_objects : AGID_MAX_OBJECTS;
	c.max_stream = opts->max_stream ? opts->max_stream : AGID_MAX_STREAM;
	agid_clock_start(&c.clock,
			 opts->time_budget_ms ? opts->time_budget_ms : AGID_TIME_BUDGET_MS);
	c.r = sb_xcalloc(1, sizeof(*c.r));
	c.q = qpdf_init();
	run(&c);
	/* an error left in qpdf_data is printed by qpdf_cleanup: take it as a finding first */
	qpdf_failed(&c, 0);
	qpdf_cleanup(&c.q);
	free(c.seen);
	free(c.font_seen);
	free(c.page_of);
	free(c.stack);
	if (!c.r->profile)
		agid_findings_add(&c.r->findings, &c.r->nfindings, &c.r->dropped,
				  c.part == 1 ? "6.7.11" : "6.6.4", 0, 0,
				  "no PDF/A flavour claimed or requested");
	c.r->valid = c.r->nfindings == 0 && c.r->dropped == 0;
	*out = c.r;
	return 0;
}

int agid_pdfa_check_file(struct agid_pdfa_report **out, const char *path,
			 const struct agid_pdfa_opts *opts, struct sb_err *err)
{
	struct agid_map m;
	int rc;

	if (!out || !path)
		return sb_err_set(err, SB_EINVAL, 0, "pdf check: no file");
	rc = agid_map_file(&m, path, SB_MAX_PDF, err);
	if (rc < 0)
		return rc;
	rc = agid_pdfa_check_mem(out, m.data, m.len, opts, err);
	agid_unmap(&m);
	return rc;
}

void agid_pdfa_report_free(struct agid_pdfa_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nsigs; i++)
		free(r->sigs[i].contents);
	free(r->sigs);
	free(r->findings);
	free(r->warnings);
	free(r);
}

bool agid_pdfa_has_clause(const struct agid_pdfa_report *r, const char *clause)
{
	for (size_t i = 0; r && i < r->nfindings; i++)
		if (!strcmp(r->findings[i].clause, clause))
			return true;
	return false;
}

static const char *const flavour_names[AGID_PDFA_COUNT] = {
	"none", "1a", "1b", "2a", "2b", "2u", "3a", "3b", "3u",
};

const char *agid_flavour_name(enum agid_flavour f)
{
	return (unsigned)f < AGID_PDFA_COUNT ? flavour_names[f] : "none";
}

int agid_flavour_part(enum agid_flavour f)
{
	switch (f) {
	case AGID_PDFA_1A: case AGID_PDFA_1B: return 1;
	case AGID_PDFA_2A: case AGID_PDFA_2B: case AGID_PDFA_2U: return 2;
	case AGID_PDFA_3A: case AGID_PDFA_3B: case AGID_PDFA_3U: return 3;
	default: return 0;
	}
}

int agid_flavour_parse(const char *s, enum agid_flavour *out, struct sb_err *err)
{
	for (int i = 1; s && i < AGID_PDFA_COUNT; i++) {
		if (strlen(s) == 2 && s[0] == flavour_names[i][0] &&
		    (s[1] | 0x20) == flavour_names[i][1]) {
			*out = (enum agid_flavour)i;
			return 0;
		}
	}
	return sb_err_set(err, SB_EINVAL, 0,
			  "unknown PDF/A flavour '%.8s' (1a, 1b, 2a, 2b, 2u, 3a, 3b, 3u)",
			  s ? s : "");
}
