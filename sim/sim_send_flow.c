/*
 * SEND in send-sim, after creation: asynchronous acceptance (the checks
 * SEND makes after its 202, SUMMARY.md §4), a timeline that moves in
 * compressed time (one step every --send-step-ms), event streams (§8),
 * legal facts as real PDF files (§6), the sent notification (§5),
 * attachments, price and cancellation (§9).
 *
 * Everything is lazy: each request first calls ss_advance(), which applies
 * whatever became due since the last one, so no thread of its own runs.
 *
 * Magic values (SUMMARY §11): a PEC whose domain starts with "fail." fails;
 * a physical address containing "@FAIL" makes the recipient unreachable
 * (COMPLETELY_UNREACHABLE), "@DECEDUTO" or "@DECEASED" deceased; anything
 * else is delivered. Reading by the recipient is triggered through
 * POST /_sim/send/view.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_ids.h"
#include "sb_json.h"
#include "sb_time.h"
#include "sim_send_int.h"

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- legal facts -------------------------------------------------------- */

static struct ss_legal_fact *fact_new(struct sim_send *ss, const char *iun, int rec,
				      const char *category)
{
	struct ss_legal_fact *f;
	char hex[33];

	ss->facts = sb_xrealloc(ss->facts, (ss->nfacts + 1) * sizeof(*ss->facts));
	f = &ss->facts[ss->nfacts++];
	memset(f, 0, sizeof(*f));
	ss_unique_hex(ss, false, hex);
	snprintf(f->key, sizeof(f->key), "PN_LEGAL_FACTS-%s.pdf", hex);
	snprintf(f->category, sizeof(f->category), "%s", category);
	snprintf(f->iun, sizeof(f->iun), "%s", iun);
	f->rec_index = rec;
	ss_index_add(&ss->by_fact, f->key, ss->nfacts - 1);
	ss_index_add(&ss->facts_by_iun, f->iun, ss->nfacts - 1);
	return f;
}

static struct ss_legal_fact *fact_find(struct sim_send *ss, const char *key)
{
	const json_t *v;
	size_t k;

	if (!strncmp(key, "safestorage://", 14))
		key += 14;
	json_array_foreach(ss_index_get(ss->by_fact, key), k, v) {
		struct ss_legal_fact *f = &ss->facts[json_integer_value(v)];

		if (!strcmp(f->key, key))
			return f;
	}
	return NULL;
}

/*
 * A one-page PDF 1.4 with the fact's text in Helvetica, xref offsets
 * computed, so that any reader (qpdf --check) accepts it.
 */
void ss_legal_fact_pdf(const struct ss_legal_fact *f, struct sb_buf *out)
{
	struct sb_buf content = SB_BUF_INIT(4096);
	size_t off[6];

	sb_buf_addf(&content,
		    "BT /F1 16 Tf 56 780 Td (Attestazione opponibile a terzi) Tj\n"
		    "/F1 11 Tf 0 -28 Td (Categoria: %s) Tj\n0 -18 Td (IUN: %s) Tj\n"
		    "0 -18 Td (Destinatario: %d) Tj\n0 -18 Td (Documento: %s) Tj\n"
		    "0 -36 Td (send-sim: documento simulato, senza valore legale) Tj ET\n",
		    f->category, f->iun, f->rec_index, f->key);
	sb_buf_reset(out);
	sb_buf_adds(out, "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");
	off[1] = out->len;
	sb_buf_adds(out, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
	off[2] = out->len;
	sb_buf_adds(out, "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n");
	off[3] = out->len;
	sb_buf_adds(out, "3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
		    "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>\nendobj\n");
	off[4] = out->len;
	sb_buf_addf(out, "4 0 obj\n<< /Length %zu >>\nstream\n", content.len);
	sb_buf_add(out, content.buf, content.len);
	sb_buf_adds(out, "endstream\nendobj\n");
	off[5] = out->len;
	sb_buf_adds(out, "5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\n"
		    "endobj\n");
	off[0] = out->len;
	sb_buf_adds(out, "xref\n0 6\n0000000000 65535 f \n");
	for (int i = 1; i < 6; i++)
		sb_buf_addf(out, "%010zu 00000 n \n", off[i]);
	sb_buf_addf(out, "trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", off[0]);
	sb_buf_release(&content);
}

/* ---- timeline ------------------------------------------------------------ */

static void stream_push(struct sim_send *ss, const struct ss_notif *n, const json_t *el,
			const char *new_status, int64_t now)
{
	for (size_t i = 0; i < ss->nstreams; i++) {
		struct ss_stream *st = &ss->streams[i];
		char id[40], ts[40];
		json_t *ev;

		if (st->created_ms > now || st->disabled_ms || (!st->timeline && !new_status))
			continue;
		snprintf(id, sizeof(id), "%038llu", (unsigned long long)++ss->next_event);
		ss_iso(now, ts, sizeof(ts));
		ev = json_object();
		json_object_set_new(ev, "eventId", json_string(id));
		json_object_set_new(ev, "timestamp", json_string(ts));
		json_object_set_new(ev, "notificationRequestId", json_string(n->request_id));
		if (n->state == SS_ACCEPTED)
			json_object_set_new(ev, "iun", json_string(n->iun));
		if (new_status)
			json_object_set_new(ev, "newStatus", json_string(new_status));
		/* Shared, not copied: a timeline element never changes once made. */
		if (st->timeline)
			json_object_set(ev, "element", (json_t *)(uintptr_t)el);
		json_array_append_new(st->events, ev);
	}
}

static void set_status(struct ss_notif *n, const char *status, const char *element_id,
		       int64_t now, const char **changed)
{
	char ts[40];
	json_t *h;

	if (!strcmp(n->status, status)) {
		h = json_array_get(n->history, json_array_size(n->history) - 1);
		if (h)
			json_array_append_new(json_object_get(h, "relatedTimelineElements"),
					      json_string(element_id));
		return;
	}
	snprintf(n->status, sizeof(n->status), "%s", status);
	ss_iso(now, ts, sizeof(ts));
	h = json_object();
	json_object_set_new(h, "status", json_string(status));
	json_object_set_new(h, "activeFrom", json_string(ts));
	json_object_set_new(h, "relatedTimelineElements", json_array());
	json_array_append_new(json_object_get(h, "relatedTimelineElements"),
			      json_string(element_id));
	json_array_append_new(n->history, h);
	*changed = n->status;
}

/* The status a category leads to, given the notification's current one (NULL: no change). */
static const char *status_after(struct ss_notif *n, const json_t *item, size_t nrec)
{
	const char *cat = jstr(item, "category"), *outcome = jstr(item, "outcome");

	if (!strcmp(cat, "REQUEST_ACCEPTED"))
		return "ACCEPTED";
	if (!strcmp(cat, "NOTIFICATION_CANCELLED"))
		return "CANCELLED";
	if (n->cancelled)
		return NULL;
	if (!strcmp(cat, "NOTIFICATION_VIEWED"))
		return "VIEWED";
	if (!strcmp(n->status, "VIEWED"))
		return NULL;
	if (!strcmp(cat, "SEND_DIGITAL_DOMICILE") || !strcmp(cat, "SEND_ANALOG_DOMICILE"))
		return !strcmp(n->status, "ACCEPTED") ? "DELIVERING" : NULL;
	if (outcome) {
		n->outcomes++;
		n->delivered += !strcmp(outcome, "delivered");
		if (n->outcomes < nrec)
			return NULL;
		return n->delivered ? "DELIVERED" : "UNREACHABLE";
	}
	if (!strcmp(cat, "REFINEMENT"))
		return !strcmp(n->status, "DELIVERED") ? "EFFECTIVE_DATE" : NULL;
	return NULL;
}

static void apply(struct sim_send *ss, struct ss_notif *n, const json_t *item, int64_t now)
{
	const char *cat = jstr(item, "category"), *lf = jstr(item, "legalFact");
	const char *changed = NULL, *st;
	json_int_t rec = json_integer_value(json_object_get(item, "recIndex"));
	bool has_rec = json_is_integer(json_object_get(item, "recIndex"));
	char id[160], ts[40], sent[40];
	json_t *el = json_object(), *lfs = json_array(), *details;

	snprintf(id, sizeof(id), "%s.IUN_%s%s", cat, n->iun, "");
	if (has_rec)
		snprintf(id + strlen(id), sizeof(id) - strlen(id), ".RECINDEX_%d", (int)rec);
	if (json_is_integer(json_object_get(item, "seq")))
		snprintf(id + strlen(id), sizeof(id) - strlen(id), ".IDX_%d",
			 (int)json_integer_value(json_object_get(item, "seq")));
	ss_iso(now, ts, sizeof(ts));
	ss_iso(n->sent_ms, sent, sizeof(sent));
	if (lf) {
		struct ss_legal_fact *f = fact_new(ss, n->iun, has_rec ? (int)rec : -1, lf);
		json_t *o = json_object();
		char key[128];

		snprintf(key, sizeof(key), "safestorage://%s", f->key);
		json_object_set_new(o, "key", json_string(key));
		json_object_set_new(o, "category", json_string(lf));
		json_array_append_new(lfs, o);
	}
	details = json_deep_copy(json_object_get(item, "details"));
	if (!details)
		details = json_object();
	if (has_rec)
		json_object_set_new(details, "recIndex", json_integer(rec));
	json_object_set_new(el, "elementId", json_string(id));
	json_object_set_new(el, "timestamp", json_string(ts));
	json_object_set_new(el, "ingestionTimestamp", json_string(ts));
	json_object_set_new(el, "eventTimestamp", json_string(ts));
	json_object_set_new(el, "notificationSentAt", json_string(sent));
	json_object_set_new(el, "legalFactsIds", lfs);
	json_object_set_new(el, "category", json_string(cat));
	json_object_set_new(el, "details", details);
	json_array_append(n->timeline, el);
	st = status_after(n, item, json_array_size(json_object_get(n->request, "recipients")));
	if (st)
		set_status(n, st, id, now, &changed);
	else if (json_array_size(n->history))
		set_status(n, n->status, id, now, &changed);
	stream_push(ss, n, el, changed, now);
	json_decref(el);
}

static void plan(json_t *pending, int64_t due, const char *cat, int rec, const char *lf,
		 const char *outcome, json_t *details)
{
	json_t *it = json_object();

	json_object_set_new(it, "due", json_integer(due));
	json_object_set_new(it, "category", json_string(cat));
	if (rec >= 0)
		json_object_set_new(it, "recIndex", json_integer(rec));
	if (lf)
		json_object_set_new(it, "legalFact", json_string(lf));
	if (outcome)
		json_object_set_new(it, "outcome", json_string(outcome));
	if (details)
		json_object_set_new(it, "details", details);
	json_array_append_new(pending, it);
}

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; hay && *hay; hay++)
		if (!strncasecmp(hay, needle, n))
			return true;
	return false;
}

/* Digital delivery with a PEC, analog (890 or AR) otherwise; magic values decide the outcome. */
static void plan_delivery(struct sim_send *ss, struct ss_notif *n, int64_t t0)
{
	const json_t *recs = json_object_get(n->request, "recipients"), *r;
	const char *service = jstr(n->request, "physicalCommunicationType");
	int64_t step = ss->step_ms;
	size_t i;

	plan(n->pending, t0, "REQUEST_ACCEPTED", -1, "SENDER_ACK", NULL, NULL);
	json_array_foreach(recs, i, r) {
		const json_t *dd = json_object_get(r, "digitalDomicile");
		const char *addr = jstr(json_object_get(r, "physicalAddress"), "address");
		int ri = (int)i;
		json_t *d;

		plan(n->pending, t0, "AAR_GENERATION", ri, NULL, NULL, NULL);
		if (dd) {
			const char *pec = jstr(dd, "address");
			const char *at = pec ? strchr(pec, '@') : NULL;
			bool ko = at && !strncasecmp(at + 1, "fail.", 5);

			d = json_object();
			json_object_set_new(d, "digitalAddress", json_deep_copy(dd));
			plan(n->pending, t0 + step, "SEND_DIGITAL_DOMICILE", ri, NULL, NULL, d);
			d = json_object();
			json_object_set_new(d, "responseStatus", json_string(ko ? "KO" : "OK"));
			plan(n->pending, t0 + 2 * step, "SEND_DIGITAL_FEEDBACK", ri,
			     "PEC_RECEIPT", NULL, d);
			plan(n->pending, t0 + 2 * step, ko ? "DIGITAL_FAILURE_WORKFLOW" :
			     "DIGITAL_SUCCESS_WORKFLOW", ri, "DIGITAL_DELIVERY", "delivered", NULL);
			if (ko)
				plan(n->pending, t0 + 3 * step, "SEND_SIMPLE_REGISTERED_LETTER", ri,
				     NULL, NULL, NULL);
			plan(n->pending, t0 + 4 * step, "REFINEMENT", ri, NULL, NULL, NULL);
			continue;
		}
		d = json_object();
		json_object_set_new(d, "serviceLevel", json_string(service));
		plan(n->pending, t0 + step, "SEND_ANALOG_DOMICILE", ri, NULL, NULL, d);
		plan(n->pending, t0 + 2 * step, "SEND_ANALOG_PROGRESS", ri, "ANALOG_DELIVERY", NULL,
		     NULL);
		plan(n->pending, t0 + 3 * step, "SEND_ANALOG_FEEDBACK", ri, "ANALOG_DELIVERY", NULL,
		     NULL);
		if (contains_ci(addr, "@DECEDUTO") || contains_ci(addr, "@DECEASED")) {
			plan(n->pending, t0 + 3 * step, "ANALOG_WORKFLOW_RECIPIENT_DECEASED", ri,
			     NULL, "delivered", NULL);
		} else if (contains_ci(addr, "@FAIL")) {
			plan(n->pending, t0 + 3 * step, "ANALOG_FAILURE_WORKFLOW", ri,
			     NULL, NULL, NULL);
			plan(n->pending, t0 + 3 * step, "COMPLETELY_UNREACHABLE", ri,
			     "ANALOG_FAILURE_DELIVERY", "unreachable", NULL);
			continue;
		} else {
			plan(n->pending, t0 + 3 * step, "ANALOG_SUCCESS_WORKFLOW", ri,
			     NULL, "delivered", NULL);
		}
		plan(n->pending, t0 + 4 * step, "REFINEMENT", ri, NULL, NULL, NULL);
	}
}

/* ---- asynchronous validation ------------------------------------------- */

static void refuse(json_t *errs, const char *code, const char *element, const char *detail,
		   int rec)
{
	json_t *e = json_object();

	json_object_set_new(e, "code", json_string(code));
	json_object_set_new(e, "element", json_string(element));
	json_object_set_new(e, "detail", json_string(detail));
	if (rec >= 0)
		json_object_set_new(e, "recIndex", json_integer(rec));
	json_array_append_new(errs, e);
}

static void check_file(struct sim_send *ss, const json_t *att, const char *el, bool pdf, int rec,
		       json_t *errs)
{
	const struct ss_file *f = ss_file_find(ss, jstr(json_object_get(att, "ref"), "key"));
	const char *sha = jstr(json_object_get(att, "digests"), "sha256");
	json_t *j = NULL;

	if (!f || !f->uploaded) {
		refuse(errs, "FILE_NOTFOUND", el, "file not found", rec);
		return;
	}
	if (!sha || strcmp(sha, f->actual)) {
		refuse(errs, "FILE_SHA_ERROR", el, "sha256 does not match the uploaded file", rec);
		return;
	}
	if (pdf && sim_blob_len(f->blob) > 200ull * 1024 * 1024)
		refuse(errs, "FILE_PDF_TOOBIG_ERROR", el, "pdf larger than 200 MB", rec);
	else if (pdf && (sim_blob_len(f->blob) < 5 || memcmp(sim_blob_data(f->blob), "%PDF-", 5)))
		refuse(errs, "FILE_PDF_INVALID_ERROR", el, "not a pdf file", rec);
	else if (!pdf && sb_json_parse(sim_blob_data(f->blob), sim_blob_len(f->blob), 1024 * 1024,
				       "f24", &j, NULL) < 0)
		refuse(errs, "F24_METADATA_NOT_VALID", el, "f24 metadata is not valid json", rec);
	json_decref(j);
}

/* SEND's address normalisation refuses what a postal service cannot print (SUMMARY §3). */
static bool address_printable(const json_t *a)
{
	static const char *const keys[] = { "address", "addressDetails", "at", "zip",
					    "municipality", "municipalityDetails", "province",
					    "foreignState" };
	const char *at = jstr(a, "at"), *md = jstr(a, "municipalityDetails");
	const char *zip = jstr(a, "zip"), *mun = jstr(a, "municipality"), *pr = jstr(a, "province");

	for (size_t i = 0; i < SB_ARRAY_SIZE(keys); i++) {
		const char *v = jstr(a, keys[i]);

		for (; v && *v; v++)
			if (!isalnum((unsigned char)*v) && !strchr(" ./'-@_", *v))
				return false;
		if (jstr(a, keys[i]) && strlen(jstr(a, keys[i])) > 44)
			return false;
	}
	if ((at ? strlen(at) + 1 : 0) + (md ? strlen(md) : 0) > 45)
		return false;
	return (zip ? strlen(zip) + 1 : 0) + (mun ? strlen(mun) : 0) + (pr ? strlen(pr) + 1 : 0) <=
	       44;
}

static void validate(struct sim_send *ss, struct ss_notif *n)
{
	const json_t *recs = json_object_get(n->request, "recipients"), *r, *d;
	json_t *errs = json_array();
	size_t i;

	json_array_foreach(json_object_get(n->request, "documents"), i, d) {
		char el[48];

		snprintf(el, sizeof(el), "documents[%zu]", i);
		check_file(ss, d, el, true, -1, errs);
	}
	json_array_foreach(recs, i, r) {
		const char *tax = jstr(r, "taxId");
		const json_t *p;
		char el[96];
		size_t k;

		if (!strcmp(jstr(r, "recipientType"), "PF") ? sb_cf_person_check(tax, NULL) < 0
							       : sb_piva_check(tax, NULL) < 0)
			refuse(errs, "TAXID_NOT_VALID", "taxId", "tax id not valid", (int)i);
		if (!address_printable(json_object_get(r, "physicalAddress")))
			refuse(errs, "NOT_VALID_ADDRESS", "physicalAddress",
			       "address cannot be normalised", (int)i);
		json_array_foreach(json_object_get(r, "payments"), k, p) {
			const json_t *pg = json_object_get(p, "pagoPa"),
				*f24 = json_object_get(p, "f24");

			snprintf(el, sizeof(el), "recipients[%zu].payments[%zu]", i, k);
			if (pg && json_object_get(pg, "attachment"))
				check_file(ss, json_object_get(pg, "attachment"),
					   el, true, (int)i, errs);
			if (f24)
				check_file(ss, json_object_get(f24, "metadataAttachment"),
					   el, false, (int)i, errs);
		}
	}
	if (json_array_size(errs)) {
		json_t *el = json_object();
		char id[80];

		n->state = SS_REFUSED;
		n->errors = errs;
		snprintf(n->status, sizeof(n->status), "REFUSED");
		snprintf(id, sizeof(id), "REQUEST_REFUSED.%s", n->request_id);
		json_object_set_new(el, "elementId", json_string(id));
		json_object_set_new(el, "category", json_string("REQUEST_REFUSED"));
		json_object_set_new(el, "details", json_pack("{s:O}", "refusalReasons", errs));
		stream_push(ss, n, el, "REFUSED", ss_now_ms());
		json_decref(el);
		return;
	}
	json_decref(errs);
	n->state = SS_ACCEPTED;
}

void ss_advance(struct sim *s, struct sim_send *ss, int64_t now)
{
	size_t keep = 0;

	(void)s;
	/* Only the notifications with something still to happen (ss->active), in index order. */
	for (size_t a = 0; a < ss->nactive; a++) {
		struct ss_notif *n = &ss->notifs[ss->active[a]];
		json_t *it;
		size_t k;

		if (n->state == SS_WAITING && now >= n->created_ms + ss->accept_ms) {
			validate(ss, n);
			if (n->state == SS_ACCEPTED) {
				n->sent_ms = n->created_ms;
				plan_delivery(ss, n, n->created_ms + ss->accept_ms);
			}
			n->next_due = 0;
		}
		/* Due items, in plan order (the plan is written in time order per recipient). */
		while (n->next_due <= now) {
			json_t *best = NULL;
			size_t bi = 0;

			json_array_foreach(n->pending, k, it) {
				if (json_integer_value(json_object_get(it, "due")) > now)
					continue;
				if (!best || json_integer_value(json_object_get(it, "due")) <
					     json_integer_value(json_object_get(best, "due"))) {
					best = it;
					bi = k;
				}
			}
			if (!best)
				break;
			json_incref(best);
			json_array_remove(n->pending, bi);
			apply(ss, n, best, json_integer_value(json_object_get(best, "due")));
			json_decref(best);
		}
		n->next_due = INT64_MAX;
		json_array_foreach(n->pending, k, it)
			if (json_integer_value(json_object_get(it, "due")) < n->next_due)
				n->next_due = json_integer_value(json_object_get(it, "due"));
		if (n->state == SS_WAITING || json_array_size(n->pending))
			ss->active[keep++] = ss->active[a];
		else
			n->active = false;
	}
	ss->nactive = keep;
}

/* ---- reading ------------------------------------------------------------- */

static struct ss_notif *notif_or_404(struct sim_send *ss, const char *iun, struct sim_response *rs)
{
	struct ss_notif *n = ss_notif_by_iun(ss, iun);

	if (!n)
		ss_problem(rs, 404, "PN_DELIVERY_NOTIFICATION_NOT_FOUND", "iun",
			   "notification not found");
	return n;
}

static void sent_notification(struct sim_send *ss, const char *iun, struct sim_response *rs)
{
	struct ss_notif *n = notif_or_404(ss, iun, rs);
	char ts[40];
	json_t *o;

	if (!n)
		return;
	ss_iso(n->sent_ms, ts, sizeof(ts));
	/* A shallow copy: only its own members are set, the values are shared and never changed. */
	o = json_copy(n->request);
	json_object_set_new(o, "senderPaId", json_string("00000000-0000-4000-8000-000000000001"));
	json_object_set_new(o, "iun", json_string(n->iun));
	json_object_set_new(o, "sentAt", json_string(ts));
	json_object_set_new(o, "documentsAvailable", json_true());
	json_object_set_new(o, "notificationStatus", json_string(n->status));
	json_object_set(o, "notificationStatusHistory", n->history);
	json_object_set(o, "timeline", n->timeline);
	ss_reply(rs, 200, o);
}

static void legal_facts_list(struct sim_send *ss, const char *iun, struct sim_response *rs)
{
	struct ss_notif *n = notif_or_404(ss, iun, rs);
	const json_t *recs;
	json_t *out;

	if (!n)
		return;
	recs = json_object_get(n->request, "recipients");
	out = json_array();
	for (size_t i = 0; i < json_array_size(ss_index_get(ss->facts_by_iun, iun)); i++) {
		const struct ss_legal_fact *f = &ss->facts[json_integer_value(
			json_array_get(ss_index_get(ss->facts_by_iun, iun), i))];
		char key[128];
		json_t *o;

		if (strcmp(f->iun, iun))
			continue;
		snprintf(key, sizeof(key), "safestorage://%s", f->key);
		o = json_object();
		if (f->rec_index >= 0)
			json_object_set_new(o, "taxId", json_string(jstr(json_array_get(recs,
							(size_t)f->rec_index), "taxId")));
		json_object_set_new(o, "iun", json_string(iun));
		json_object_set_new(o, "legalFactsId",
				    json_pack("{s:s,s:s}", "key", key, "category", f->category));
		json_array_append_new(out, o);
	}
	ss_reply(rs, 200, out);
}

static void legal_fact_meta(struct sim *s, struct sim_send *ss, const char *iun, const char *id,
			    struct sim_response *rs)
{
	struct ss_legal_fact *f = fact_find(ss, id);
	struct sb_buf pdf = SB_BUF_INIT(64 * 1024);
	json_t *o;

	if (!notif_or_404(ss, iun, rs))
		return;
	if (!f || strcmp(f->iun, iun)) {
		ss_problem(rs, 404, "PN_DELIVERYPUSH_NOTFOUND", "legalFactId",
			   "legal fact not found");
		return;
	}
	ss_legal_fact_pdf(f, &pdf);
	o = json_object();
	json_object_set_new(o, "filename", json_string(f->key));
	json_object_set_new(o, "contentLength", json_integer((json_int_t)pdf.len));
	/* The first answers say "not ready yet", as SEND does while it makes the PDF. */
	if (f->asked++ < ss->legal_fact_retry) {
		json_object_set_new(o, "retryAfter", json_integer(1));
	} else {
		char url[256];

		snprintf(url, sizeof(url), "%s/sim-s3/lf/%s", s->base_url, f->key);
		json_object_set_new(o, "url", json_string(url));
	}
	sb_buf_release(&pdf);
	ss_reply(rs, 200, o);
}

static void attachment_meta(struct sim *s, struct sim_send *ss, struct ss_notif *n,
			    const json_t *att, bool corrupt, struct sim_response *rs)
{
	const struct ss_file *f = att ? ss_file_find(ss, jstr(json_object_get(att, "ref"), "key"))
				      : NULL;
	char url[256];
	json_t *o;

	(void)n;
	if (!f || !f->uploaded) {
		ss_problem(rs, 404, "PN_DELIVERY_FILEINFONOTFOUND", "attachment",
			   "attachment not found");
		return;
	}
	snprintf(url, sizeof(url), "%s/sim-s3/%s%s", s->base_url, f->key,
		 corrupt ? "?corrupt=1" : "");
	o = json_object();
	json_object_set_new(o, "filename", json_string(f->key));
	json_object_set_new(o, "contentType", json_string(f->content_type));
	json_object_set_new(o, "contentLength", json_integer((json_int_t)sim_blob_len(f->blob)));
	json_object_set_new(o, "sha256", json_string(f->actual));
	json_object_set_new(o, "url", json_string(url));
	ss_reply(rs, 200, o);
}

static void price(struct sim_send *ss, const char *tax_id, const char *notice,
		  struct sim_response *rs)
{
	char *key = sb_xasprintf("%s|%s", tax_id, notice);   /* sim_send.c's notice_key */
	const json_t *cands = ss_index_get(ss->by_notice, key);

	free(key);
	for (size_t c = 0; c < json_array_size(cands); c++) {
		struct ss_notif *n = &ss->notifs[json_integer_value(json_array_get(cands, c))];
		const json_t *r, *p;
		size_t k, l;

		if (n->state != SS_ACCEPTED)
			continue;
		json_array_foreach(json_object_get(n->request, "recipients"), k, r)
			json_array_foreach(json_object_get(r, "payments"), l, p) {
				const json_t *pg = json_object_get(p, "pagoPa");
				json_int_t fee =
					json_integer_value(json_object_get(n->request, "paFee"));
				json_int_t vat =
					json_integer_value(json_object_get(n->request, "vat"));
				json_int_t analog = json_object_get(r, "digitalDomicile") ? 0 : 850;
				json_t *o;

				if (!pg || strcmp(jstr(pg, "noticeCode"), notice) ||
				    strcmp(jstr(pg, "creditorTaxId"), tax_id))
					continue;
				o = json_object();
				json_object_set_new(o, "iun", json_string(n->iun));
				json_object_set_new(o, "partialPrice", json_integer(100 + analog));
				json_object_set_new(o, "totalPrice",
						    json_integer(100 + fee + analog +
								 analog * vat / 100));
				json_object_set_new(o, "vat", json_integer(vat));
				json_object_set_new(o, "paFee", json_integer(fee));
				json_object_set_new(o, "sendFee", json_integer(100));
				json_object_set_new(o, "analogCost", json_integer(analog));
				ss_reply(rs, 200, o);
				return;
			}
	}
	ss_problem(rs, 404, "PN_DELIVERY_NOTIFICATIONCOSTNOTFOUND", "noticeCode",
		   "no notification for this notice code");
}

static void cancel(struct sim_send *ss, const char *iun, struct sim_response *rs)
{
	struct ss_notif *n = notif_or_404(ss, iun, rs);
	int64_t now = ss_now_ms();
	json_t *it;

	if (!n)
		return;
	if (n->cancelled) {
		ss_reply(rs, 202, json_pack("{s:s,s:[{s:s,s:s,s:s}]}", "status", "OK", "details",
					    "code", "NOTIFICATION_ALREADY_CANCELLED", "level",
					    "WARNING", "detail", "notification already cancelled"));
		return;
	}
	n->cancelled = true;
	json_array_clear(n->pending);
	it = json_pack("{s:s}", "category", "NOTIFICATION_CANCELLATION_REQUEST");
	apply(ss, n, it, now);
	json_decref(it);
	plan(n->pending, now + (ss->cancel_ms ? ss->cancel_ms : ss->step_ms),
	     "NOTIFICATION_CANCELLED", -1, "NOTIFICATION_CANCELLED", NULL, NULL);
	ss_activate(ss, (size_t)(n - ss->notifs));
	ss_reply(rs, 202, json_pack("{s:s,s:[]}", "status", "OK", "details"));
}

/* ---- streams ---------------------------------------------------------- */

static struct ss_stream *stream_find(struct sim_send *ss, const char *id)
{
	for (size_t i = 0; i < ss->nstreams; i++)
		if (!strcmp(ss->streams[i].id, id))
			return &ss->streams[i];
	return NULL;
}

static json_t *stream_meta(const struct ss_stream *st)
{
	char ts[40];
	json_t *o;

	ss_iso(st->created_ms, ts, sizeof(ts));
	o = json_pack("{s:s,s:s,s:[],s:s,s:s,s:s}", "title", st->title, "eventType",
		      st->timeline ? "TIMELINE" : "STATUS", "groups", "streamId", st->id,
		      "activationDate", ts, "version", "v29");
	if (st->disabled_ms) {
		ss_iso(st->disabled_ms, ts, sizeof(ts));
		json_object_set_new(o, "disabledDate", json_string(ts));
	}
	return o;
}

/*
 * GET /streams/{id}. With --send-stream-get-fault it answers something that
 * is not that stream, as a gateway or proxy in front of SEND can: "other" a
 * 200 about another stream (routed to another deployment, whose stream has
 * another id), "deny" the gateway's own 403. Only this read: the events, the
 * list and the rest stay right, so a client keeps working and only its look
 * at the stream (is it disabled?) learns nothing.
 */
static void stream_get(const struct sim_send *ss, const struct ss_stream *st,
		       struct sim_response *rs)
{
	char other[37];
	json_t *o;

	if (ss->stream_get_fault == SS_STREAM_GET_DENY) {
		sim_reply_json(rs, 403, "%s", SS_GATEWAY_DENY);
		return;
	}
	o = stream_meta(st);
	if (ss->stream_get_fault == SS_STREAM_GET_OTHER) {
		/* A fresh id: no stream of this PA, as another deployment's would be. */
		sb_uuid4(other);
		json_object_set_new(o, "streamId", json_string(other));
	}
	ss_reply(rs, 200, o);
}

/*
 * POST /streams/{id}/action/disable (one way): the stream keeps what it
 * holds for reading and gets nothing new. Disabling it again, like any
 * change to a disabled stream, is refused.
 */
static void stream_disable(struct ss_stream *st, struct sim_response *rs)
{
	if (st->disabled_ms) {
		ss_problem(rs, 403, "PN_WEBHOOK_STREAM_DISABLED", "streamId",
			   "the stream is already disabled");
		return;
	}
	st->disabled_ms = ss_now_ms();
	ss_reply(rs, 200, stream_meta(st));
}

static size_t streams_active(const struct sim_send *ss)
{
	size_t n = 0;

	for (size_t i = 0; i < ss->nstreams; i++)
		n += !ss->streams[i].disabled_ms;
	return n;
}

static void stream_create(struct sim_send *ss, const struct sim_request *rq,
			  struct sim_response *rs)
{
	json_t *b = NULL, *rep;
	const char *title, *type;
	struct ss_stream *st, *replaced = NULL;

	if (sb_json_parse(rq->body, rq->body_len, 65536, "stream", &b, NULL) < 0 ||
	    !json_is_object(b)) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER", "body", "not a JSON object");
		goto done;
	}
	title = jstr(b, "title");
	type = jstr(b, "eventType");
	if (!title || !*title || strlen(title) > 256) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER_REQUIRED", "title",
			   "required, at most 256");
		goto done;
	}
	if (!type || (strcmp(type, "TIMELINE") && strcmp(type, "STATUS"))) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER", "eventType",
			   "must be STATUS or TIMELINE");
		goto done;
	}
	if (!json_is_array(json_object_get(b, "groups"))) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER_REQUIRED", "groups",
			   "required (may be empty)");
		goto done;
	}
	/* replacedStreamId: the new stream takes over, the old one is disabled. */
	rep = json_object_get(b, "replacedStreamId");
	if (rep && (!json_is_string(rep) || json_string_length(rep) != 36)) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER_PATTERN", "replacedStreamId",
			   "must be a uuid");
		goto done;
	}
	if (rep && !(replaced = stream_find(ss, json_string_value(rep)))) {
		ss_problem(rs, 404, "PN_WEBHOOK_STREAM_NOT_FOUND", "replacedStreamId",
			   "stream not found");
		goto done;
	}
	if (replaced && replaced->disabled_ms) {
		ss_problem(rs, 403, "PN_WEBHOOK_STREAM_DISABLED", "replacedStreamId",
			   "the stream is already disabled");
		goto done;
	}
	if (streams_active(ss) - (replaced != NULL) >= 10) {
		ss_problem(rs, 409, "PN_WEBHOOK_MAX_STREAMS_COUNT_REACHED", NULL,
			   "at most 10 streams per PA");
		goto done;
	}
	if (replaced)
		replaced->disabled_ms = ss_now_ms();
	ss->streams = sb_xrealloc(ss->streams, (ss->nstreams + 1) * sizeof(*ss->streams));
	st = &ss->streams[ss->nstreams++];
	memset(st, 0, sizeof(*st));
	sb_uuid4(st->id);
	snprintf(st->title, sizeof(st->title), "%s", title);
	st->timeline = !strcmp(type, "TIMELINE");
	st->created_ms = ss_now_ms();
	st->events = json_array();
	ss_reply(rs, 200, stream_meta(st));
done:
	json_decref(b);
}

static bool event_id_ok(const char *s)
{
	if (strlen(s) != 38 || s[0] != '0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static void stream_events(struct sim_send *ss, struct ss_stream *st, const struct sim_request *rq,
			  struct sim_response *rs)
{
	const char *last = sim_query(rq, "lastEventId");
	int64_t now = ss_now_ms();
	json_t *page;

	if (last && !event_id_ok(last)) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER_PATTERN", "lastEventId",
			   "must match ^0\\d{37}$");
		return;
	}
	if (now < st->next_read_ms) {
		/* Polled again before the retry-after of an empty page (pn-stream's 429). */
		ss_problem(rs, 429, "PN_STREAM_TOO_MANY_REQUESTS", NULL, "too many requests");
		sim_reply_header(rs, "retry-after: %lld", (long long)(st->next_read_ms - now));
		return;
	}
	/* lastEventId acknowledges that event and every earlier one: purge them. */
	while (last && json_array_size(st->events) &&
	       strcmp(jstr(json_array_get(st->events, 0), "eventId"), last) <= 0)
		json_array_remove(st->events, 0);
	page = json_array();
	for (size_t i = 0; i < json_array_size(st->events) && i < 50; i++)
		json_array_append(page, json_array_get(st->events, i));
	if (json_array_size(page)) {
		st->next_read_ms = 0;
		sim_reply_header(rs, "retry-after: 0");
	} else {
		st->next_read_ms = now + ss->stream_interval_ms;
		sim_reply_header(rs, "retry-after: %u", ss->stream_interval_ms);
	}
	ss_reply(rs, 200, page);
}

/* ---- routing ------------------------------------------------------------ */

/* Split "/a/b/c" after prefix into up to n segments (copies into buf). */
static size_t segments(const char *path, const char *prefix, char *buf, size_t bufsz,
		       char **seg, size_t n)
{
	size_t k = 0;
	char *p;

	if (strncmp(path, prefix, strlen(prefix)))
		return 0;
	snprintf(buf, bufsz, "%s", path + strlen(prefix));
	for (p = buf; *p && k < n;) {
		seg[k++] = p;
		p = strchr(p, '/');
		if (!p)
			break;
		*p++ = '\0';
	}
	return p && *p ? n + 1 : k;   /* more segments than asked: no match */
}

bool ss_flow_handle(struct sim *s, struct sim_send *ss, const struct sim_request *rq,
		    struct sim_response *rs)
{
	bool get = !strcmp(rq->method, "GET");
	char buf[1024];
	char *g[6];
	size_t k;

	if (!strncmp(rq->path, "/sim-s3/lf/", 11) && get) {
		struct ss_legal_fact *f = fact_find(ss, rq->path + 11);

		if (sim_header(rq, "x-api-key") || sim_header(rq, "Authorization")) {
			ss->bad_auth_uploads++;
			sim_reply_json(rs, 400,
				       "{\"message\":\"credentials sent to a pre-signed url\"}");
			return true;
		}
		if (!f || f->asked <= ss->legal_fact_retry) {
			sim_reply_json(rs, 404, "{\"message\":\"NoSuchKey\"}");
			return true;
		}
		rs->status = 200;
		sim_reply_type(rs, "application/pdf");
		ss_legal_fact_pdf(f, &rs->body);
		return true;
	}
	if (!strncmp(rq->path, "/sim-s3/", 8))
		return false;
	if (!strcmp(rq->path, "/_sim/send/view") && !strcmp(rq->method, "POST")) {
		struct ss_notif *n = ss_notif_by_iun(ss, sim_query(rq, "iun"));
		uint64_t rec = 0;
		json_t *it;

		if (!n || !sim_query(rq, "recIndex") ||
		    sb_parse_u64z(sim_query(rq, "recIndex"), 14, &rec) < 0) {
			sim_reply_json(rs, 404, "{\"message\":\"unknown iun or recIndex\"}");
			return true;
		}
		it = json_pack("{s:s,s:I,s:s}", "category", "NOTIFICATION_VIEWED", "recIndex",
			       (json_int_t)rec, "legalFact", "RECIPIENT_ACCESS");
		apply(ss, n, it, ss_now_ms());
		json_decref(it);
		sim_reply_json(rs, 200, "{\"status\":\"%s\"}", n->status);
		return true;
	}
	if ((k = segments(rq->path, "/delivery/v2.8/notifications/sent/", buf, sizeof(buf),
			  g, 5)) && k == 1 && get) {
		sent_notification(ss, g[0], rs);
	} else if ((k = segments(rq->path, "/delivery/notifications/sent/", buf, sizeof(buf),
				 g, 6)) && k >= 4 && get && !strcmp(g[1], "attachments")) {
		struct ss_notif *n = notif_or_404(ss, g[0], rs);
		uint64_t idx = 0, att = 0;

		if (!n)
			return true;
		if (k == 4 && !strcmp(g[2], "documents") && sb_parse_u64z(g[3], 999, &idx) == 0) {
			attachment_meta(s, ss, n, json_array_get(json_object_get(n->request,
						"documents"), idx), false, rs);
		} else if (k == 5 && !strcmp(g[2], "payment") &&
			   sb_parse_u64z(g[3], 999, &idx) == 0 &&
			   (!strcmp(g[4], "PAGOPA") || !strcmp(g[4], "F24"))) {
			const json_t *pays =
				json_object_get(json_array_get(json_object_get(n->request,
						"recipients"), idx), "payments");
			const char *ai = sim_query(rq, "attachmentIdx");
			const json_t *p;
			bool pagopa = !strcmp(g[4], "PAGOPA");

			if (ai && sb_parse_u64z(ai, 999, &att) < 0) {
				ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER", "attachmentIdx",
					   "not a number");
				return true;
			}
			p = json_object_get(json_array_get(pays, att), pagopa ? "pagoPa" : "f24");
			attachment_meta(s, ss, n, json_object_get(p, pagopa ? "attachment" :
								  "metadataAttachment"),
					pagopa && ss->corrupt_notice && jstr(p, "noticeCode") &&
					!strcmp(jstr(p, "noticeCode"), ss->corrupt_notice), rs);
		} else {
			ss_problem(rs, 404, "PN_GENERIC_NOT_FOUND", NULL, "not found");
		}
	} else if ((k = segments(rq->path, "/delivery/v2.3/price/", buf, sizeof(buf), g, 2)) &&
		   k == 2 && get) {
		price(ss, g[0], g[1], rs);
	} else if ((k = segments(rq->path, "/delivery-push/v2.0/notifications/cancel/", buf,
				 sizeof(buf), g, 1)) == 1 && !strcmp(rq->method, "PUT")) {
		cancel(ss, g[0], rs);
	} else if ((k = segments(rq->path, "/delivery-push/v2.0/", buf, sizeof(buf), g, 2)) == 2 &&
		   get && !strcmp(g[1], "legal-facts")) {
		legal_facts_list(ss, g[0], rs);
	} else if ((k = segments(rq->path, "/delivery-push/", buf, sizeof(buf), g, 4)) == 4 &&
		   get && !strcmp(g[1], "download") && !strcmp(g[2], "legal-facts")) {
		legal_fact_meta(s, ss, g[0], g[3], rs);
	} else if (!strcmp(rq->path, "/delivery-progresses/v2.9/streams")) {
		if (!strcmp(rq->method, "POST")) {
			stream_create(ss, rq, rs);
		} else if (get) {
			json_t *out = json_array();

			for (size_t i = 0; i < ss->nstreams; i++)
				json_array_append_new(out, json_pack("{s:s,s:s}", "title",
							ss->streams[i].title, "streamId",
							ss->streams[i].id));
			ss_reply(rs, 200, out);
		} else {
			return false;
		}
	} else if ((k = segments(rq->path, "/delivery-progresses/v2.9/streams/", buf, sizeof(buf),
				 g, 3)) >= 1 && k <= 3) {
		struct ss_stream *st = stream_find(ss, g[0]);

		if (!st) {
			ss_problem(rs, 404, "PN_WEBHOOK_STREAM_NOT_FOUND", "streamId",
				   "stream not found");
		} else if (k == 2 && get && !strcmp(g[1], "events")) {
			stream_events(ss, st, rq, rs);
		} else if (k == 3 && !strcmp(rq->method, "POST") && !strcmp(g[1], "action") &&
			   !strcmp(g[2], "disable")) {
			stream_disable(st, rs);
		} else if (k == 1 && get) {
			stream_get(ss, st, rs);
		} else if (k == 1 && !strcmp(rq->method, "DELETE")) {
			json_decref(st->events);
			*st = ss->streams[--ss->nstreams];
			rs->status = 204;
			sb_buf_reset(&rs->body);
		} else {
			return false;
		}
	} else {
		return false;
	}
	return true;
}

void ss_flow_free(struct sim_send *ss)
{
	for (size_t i = 0; i < ss->nfiles; i++)
		sim_blob_unref(ss->files[i].blob);
	free(ss->files);
	for (size_t i = 0; i < ss->nnotifs; i++) {
		struct ss_notif *n = &ss->notifs[i];

		free(n->protocol);
		free(n->token);
		json_decref(n->request);
		json_decref(n->errors);
		json_decref(n->timeline);
		json_decref(n->history);
		json_decref(n->pending);
	}
	free(ss->notifs);
	free(ss->facts);
	free(ss->active);
	json_decref(ss->by_notice);
	json_decref(ss->by_protocol);
	json_decref(ss->by_request_id);
	json_decref(ss->by_iun);
	json_decref(ss->by_file);
	json_decref(ss->by_fact);
	json_decref(ss->facts_by_iun);
	for (size_t i = 0; i < ss->nstreams; i++)
		json_decref(ss->streams[i].events);
	free(ss->streams);
}
