/*
 * The XMP packet of a PDF/A file (ISO 19005-1 6.7, 19005-2 6.6): parsed
 * with libxml2 with network access off and no entity substitution, the
 * pdfaid identification read from attributes or elements of any
 * rdf:Description, and, for part 1, the Info dictionary compared with its
 * XMP equivalents (6.7.3) including dates compared as instants.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <qpdf/qpdf-c.h>

#include "sb_common.h"
#include "agid_int.h"

#define NS_PDFAID "http://www.aiim.org/pdfa/ns/id/"
#define NS_RDF "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
#define NS_DC "http://purl.org/dc/elements/1.1/"
#define NS_XMP "http://ns.adobe.com/xap/1.0/"
#define NS_PDF "http://ns.adobe.com/pdf/1.3/"

#define XMP_MAX_NODES 100000u   /* elements looked at per search */

static bool ns_is(const xmlNode *n, const char *href)
{
	return n->ns && n->ns->href && !strcmp((const char *)n->ns->href, href);
}

/* Next element in document order (iterative, so deep nesting cannot exhaust the stack). */
static xmlNode *next_elem(xmlNode *n)
{
	if (n->children)
		for (xmlNode *k = n->children; k; k = k->next)
			if (k->type == XML_ELEMENT_NODE)
				return k;
	while (n) {
		for (xmlNode *s = n->next; s; s = s->next)
			if (s->type == XML_ELEMENT_NODE)
				return s;
		n = n->parent && n->parent->type == XML_ELEMENT_NODE ? n->parent : NULL;
	}
	return NULL;
}

static char *node_text(xmlNode *n)
{
	xmlChar *t = xmlNodeGetContent(n);
	char *s = sb_xstrdup(t ? (const char *)t : "");

	xmlFree(t);
	return s;
}

/* The value of an element property: text, or the first rdf:li of an rdf:Alt/Seq/Bag. */
static char *elem_value(xmlNode *e)
{
	for (xmlNode *k = e->children; k; k = k->next) {
		if (k->type != XML_ELEMENT_NODE || !ns_is(k, NS_RDF))
			continue;
		for (xmlNode *li = k->children; li; li = li->next)
			if (li->type == XML_ELEMENT_NODE && ns_is(li, NS_RDF) &&
			    !strcmp((const char *)li->name, "li"))
				return node_text(li);
	}
	return node_text(e);
}

char *agid_xmp_get(const struct agid_xmp *x, const char *ns, const char *name)
{
	xmlNode *root = x->doc ? xmlDocGetRootElement(x->doc) : NULL;
	size_t seen = 0;

	for (xmlNode *n = root; n && seen < XMP_MAX_NODES; n = next_elem(n), seen++) {
		xmlChar *a;

		if (ns_is(n, ns) && !strcmp((const char *)n->name, name))
			return elem_value(n);
		if (ns_is(n, NS_RDF) && !strcmp((const char *)n->name, "Description") &&
		    (a = xmlGetNsProp(n, (const xmlChar *)name, (const xmlChar *)ns))) {
			char *s = sb_xstrdup((const char *)a);

			xmlFree(a);
			return s;
		}
	}
	return NULL;
}

static void set_flavour(struct agid_xmp *x)
{
	char *part = agid_xmp_get(x, NS_PDFAID, "part");
	char *conf = agid_xmp_get(x, NS_PDFAID, "conformance");
	char want[3];
	enum agid_flavour f;

	if (!part && !conf)
		goto cleanup;
	if (!part) {
		snprintf(x->pdfaid_problem, sizeof(x->pdfaid_problem), "XMP lacks pdfaid:part");
		goto cleanup;
	}
	if (!conf) {
		snprintf(x->pdfaid_problem, sizeof(x->pdfaid_problem),
			 "XMP lacks pdfaid:conformance");
		goto cleanup;
	}
	if (strlen(part) != 1 || part[0] < '1' || part[0] > '3') {
		snprintf(x->pdfaid_problem, sizeof(x->pdfaid_problem),
			 "pdfaid:part is not 1, 2 or 3");
		goto cleanup;
	}
	/* The conformance level is one upper-case letter: A, B, or U (parts 2 and 3). */
	if (strlen(conf) != 1 || (conf[0] != 'A' && conf[0] != 'B' && conf[0] != 'U') ||
	    (part[0] == '1' && conf[0] == 'U')) {
		snprintf(x->pdfaid_problem, sizeof(x->pdfaid_problem),
			 "pdfaid:conformance is not a valid level for part %c", part[0]);
		goto cleanup;
	}
	want[0] = part[0];
	want[1] = (char)(conf[0] | 0x20);
	want[2] = '\0';
	if (agid_flavour_parse(want, &f, NULL) == 0)
		x->flavour = f;
cleanup:
	free(part);
	free(conf);
}

void agid_xmp_parse(struct agid_xmp *x, const unsigned char *p, size_t len)
{
	xmlDoc *doc;

	if (len > INT32_MAX) {
		x->error = "XMP metadata is too large";
		return;
	}
	doc = xmlReadMemory((const char *)p, (int)len, "xmp", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc || !xmlDocGetRootElement(doc)) {
		xmlFreeDoc(doc);
		x->error = "XMP metadata is not well-formed XML";
		return;
	}
	/*
	 * An XMP packet has no DTD; refusing one also keeps entity expansion
	 * (reading text through entity references) out of the picture.
	 */
	if (doc->intSubset || doc->extSubset) {
		xmlFreeDoc(doc);
		x->error = "XMP metadata has a DTD";
		return;
	}
	x->doc = doc;
	for (xmlNode *n = doc->children; n; n = n->next) {
		if (n->type == XML_PI_NODE && n->name &&
		    !strcmp((const char *)n->name, "xpacket") &&
		    n->content && (strstr((const char *)n->content, "bytes=") ||
				   strstr((const char *)n->content, "encoding=")))
			x->packet_attrs = true;
	}
	set_flavour(x);
}

void agid_xmp_release(struct agid_xmp *x)
{
	if (!x)
		return;
	xmlFreeDoc(x->doc);
	x->doc = NULL;
}

/* ---- Info vs XMP (PDF/A-1 6.7.3) ---- */

struct instant {
	int64_t seconds;   /* seconds since 0000-03-01 in UTC, comparable */
	bool ok;
};

static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (int)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe;
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* f: year, month, day, hour, minute, second; tz in minutes east of UTC. */
static struct instant make_instant(const int f[6], int tz)
{
	struct instant t = { 0, true };

	if (f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 || f[4] > 59 || f[5] > 60)
		t.ok = false;
	t.seconds = days_from_civil(f[0], f[1], f[2]) * 86400 + f[3] * 3600 + f[4] * 60 + f[5] -
		    (int64_t)tz * 60;
	return t;
}

/* PDF date: D:YYYYMMDDHHmmSSOHH'mm' with every part after the year optional. */
static struct instant pdf_date(const char *s)
{
	int f[6] = { 0, 1, 1, 0, 0, 0 }, width[6] = { 4, 2, 2, 2, 2, 2 }, tz = 0, h = 0, m = 0;
	struct instant bad = { 0, false };

	if (!strncmp(s, "D:", 2))
		s += 2;
	for (int i = 0; i < 6; i++) {
		if (!digits(s, width[i], &f[i])) {
			if (i == 0)
				return bad;
			break;
		}
		s += width[i];
	}
	if (*s == '+' || *s == '-') {
		int sign = *s == '-' ? -1 : 1;

		s++;
		if (digits(s, 2, &h)) {
			s += 2;
			if (*s == '\'')
				s++;
			if (digits(s, 2, &m))
				s += 2;
		}
		tz = sign * (h * 60 + m);
	}
	return make_instant(f, tz);
}

/* XMP date: YYYY[-MM[-DD[Thh:mm[:ss[.frac]][Z|+hh:mm]]]]. */
static struct instant xmp_date(const char *s)
{
	int f[6] = { 0, 1, 1, 0, 0, 0 }, tz = 0, h = 0, m = 0;
	struct instant bad = { 0, false };
	static const char seps[6] = { 0, '-', '-', 'T', ':', ':' };
	static const int width[6] = { 4, 2, 2, 2, 2, 2 };

	for (int i = 0; i < 6; i++) {
		if (i > 0) {
			if (*s != seps[i])
				break;
			s++;
		}
		if (!digits(s, width[i], &f[i]))
			return bad;
		s += width[i];
	}
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	if ((*s == '+' || *s == '-') && digits(s + 1, 2, &h) && s[3] == ':' && digits(s + 4, 2, &m))
		tz = (*s == '-' ? -1 : 1) * (h * 60 + m);
	return make_instant(f, tz);
}

static const struct {
	const char *info, *ns, *prop;
	bool date;
} info_map[] = {
	{ "/Title", NS_DC, "title", false },
	{ "/Author", NS_DC, "creator", false },
	{ "/Subject", NS_DC, "description", false },
	{ "/Keywords", NS_PDF, "Keywords", false },
	{ "/Creator", NS_XMP, "CreatorTool", false },
	{ "/Producer", NS_PDF, "Producer", false },
	{ "/CreationDate", NS_XMP, "CreateDate", true },
	{ "/ModDate", NS_XMP, "ModifyDate", true },
};

void agid_xmp_check_info(const struct agid_xmp *x, void *qv, struct agid_pdfa_report *r,
			 const char *clause)
{
	qpdf_data q = qv;
	qpdf_oh info = qpdf_oh_get_key(q, qpdf_get_trailer(q), "/Info");

	if (!qpdf_oh_is_dictionary(q, info))
		return;
	for (size_t i = 0; i < SB_ARRAY_SIZE(info_map); i++) {
		qpdf_oh v = qpdf_oh_get_key(q, info, info_map[i].info);
		const char *iv;
		char *xv;
		bool same;

		if (!qpdf_oh_is_string(q, v))
			continue;
		iv = qpdf_oh_get_utf8_value(q, v);
		xv = agid_xmp_get(x, info_map[i].ns, info_map[i].prop);
		if (!xv) {
			agid_findings_add(&r->findings, &r->nfindings, &r->dropped, clause, 0, 0,
					  "Info %s has no XMP equivalent", info_map[i].info + 1);
			continue;
		}
		if (info_map[i].date) {
			struct instant a = pdf_date(iv ? iv : ""), b = xmp_date(xv);

			same = a.ok && b.ok && a.seconds == b.seconds;
		} else {
			same = iv && !strcmp(iv, xv);
		}
		if (!same)
			agid_findings_add(&r->findings, &r->nfindings, &r->dropped, clause, 0, 0,
					  "Info %s is not equivalent to its XMP property",
					  info_map[i].info + 1);
		free(xv);
	}
}
