/*
 * Reading what SEND holds about a notification: the sent notification with
 * its status history and timeline, legal facts, notified documents and
 * payment attachments, price; and cancellation.
 * Spec: shared/specs/send/SUMMARY.md §5, §6, §9.
 *
 * Timeline categories and notification statuses are kept as text: SEND adds
 * categories without a version change, and an unknown one must not stop the
 * tracking of a notification.
 */
#include <string.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_ids.h"
#include "sb_json.h"
#include "sb_log.h"
#include "send_int.h"

static char *dup_opt(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? sb_xstrdup(v) : NULL;
}

static int check_iun(const char *iun, struct sb_err *err)
{
	if (!iun || !sb_iun_valid(iun))
		return sb_err_set(err, SB_EINVAL, 0, "iun: not a SEND IUN");
	return 0;
}

void send_timeline_release(struct send_timeline_element *e)
{
	if (!e)
		return;
	free(e->element_id);
	free(e->category);
	free(e->timestamp);
	for (size_t i = 0; i < e->nlegal_facts; i++) {
		free(e->legal_facts[i].key);
		free(e->legal_facts[i].category);
	}
	free(e->legal_facts);
	memset(e, 0, sizeof(*e));
}

int send_timeline_parse(const json_t *j, struct send_timeline_element *out, struct sb_err *err)
{
	struct send_timeline_element e = { 0 };
	const json_t *lf = json_object_get(j, "legalFactsIds");
	const json_t *ri = json_object_get(json_object_get(j, "details"), "recIndex");

	if (!json_is_object(j) || !json_is_string(json_object_get(j, "category")) ||
	    !json_is_string(json_object_get(j, "elementId")))
		return sb_err_set(err, SB_EREJECT, 0,
				  "timeline element without elementId or category");
	e.element_id = dup_opt(j, "elementId");
	e.category = dup_opt(j, "category");
	e.timestamp = dup_opt(j, "eventTimestamp");
	if (!e.timestamp)
		e.timestamp = dup_opt(j, "timestamp");
	e.rec_index = json_is_integer(ri) && json_integer_value(ri) >= 0 &&
		      json_integer_value(ri) < 1000 ? (int)json_integer_value(ri) : -1;
	if (json_is_array(lf) && json_array_size(lf)) {
		size_t i;
		json_t *v;

		SB_ALLOC_ARRAY(e.legal_facts, json_array_size(lf));
		json_array_foreach(lf, i, v) {
			if (!json_is_string(json_object_get(v, "key")))
				continue;
			e.legal_facts[e.nlegal_facts].key = dup_opt(v, "key");
			e.legal_facts[e.nlegal_facts].category = dup_opt(v, "category");
			e.nlegal_facts++;
		}
	}
	*out = e;
	return 0;
}

void send_sent_notification_free(struct send_sent_notification *n)
{
	if (!n)
		return;
	free(n->iun);
	free(n->status);
	free(n->sent_at);
	free(n->protocol_number);
	for (size_t i = 0; i < n->nhistory; i++) {
		free(n->history[i].status);
		free(n->history[i].active_from);
	}
	free(n->history);
	for (size_t i = 0; i < n->ntimeline; i++)
		send_timeline_release(&n->timeline[i]);
	free(n->timeline);
	free(n);
}

int send_notification_get(struct send_client *c, const char *iun,
			  struct send_sent_notification **out, struct sb_err *err)
{
	struct send_sent_notification *n = NULL;
	const json_t *h, *t;
	char *path = NULL;
	json_t *j = NULL;
	int rc;

	rc = check_iun(iun, err);
	if (rc < 0)
		return rc;
	path = sb_xasprintf("/delivery/%s/notifications/sent/%s", c->v_notifications, iun);
	rc = send_call(c, "GET", path, NULL, &j, NULL, NULL, err);
	if (rc < 0)
		goto cleanup;
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "iun")) ||
	    strcmp(json_string_value(json_object_get(j, "iun")), iun)) {
		rc = sb_err_set(err, SB_EREJECT, 0, "sent notification: reply for another iun");
		goto cleanup;
	}
	n = sb_xcalloc(1, sizeof(*n));
	n->iun = dup_opt(j, "iun");
	n->status = dup_opt(j, "notificationStatus");
	n->sent_at = dup_opt(j, "sentAt");
	n->protocol_number = dup_opt(j, "paProtocolNumber");
	n->ndocuments = json_array_size(json_object_get(j, "documents"));
	n->nrecipients = json_array_size(json_object_get(j, "recipients"));
	h = json_object_get(j, "notificationStatusHistory");
	if (json_array_size(h)) {
		size_t i;
		json_t *v;

		SB_ALLOC_ARRAY(n->history, json_array_size(h));
		json_array_foreach(h, i, v) {
			n->history[n->nhistory].status = dup_opt(v, "status");
			n->history[n->nhistory].active_from = dup_opt(v, "activeFrom");
			if (n->history[n->nhistory].status)
				n->nhistory++;
		}
	}
	t = json_object_get(j, "timeline");
	if (json_array_size(t)) {
		size_t i;
		json_t *v;

		SB_ALLOC_ARRAY(n->timeline, json_array_size(t));
		json_array_foreach(t, i, v) {
			rc = send_timeline_parse(v, &n->timeline[n->ntimeline], err);
			if (rc < 0)
				goto cleanup;
			n->ntimeline++;
		}
	}
	*out = n;
	n = NULL;
cleanup:
	send_sent_notification_free(n);
	json_decref(j);
	free(path);
	return rc;
}

void send_legal_facts_free(struct send_legal_fact *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++) {
		free(f[i].key);
		free(f[i].category);
		sb_secret_free(f[i].tax_id);
	}
	free(f);
}

int send_legal_facts_list(struct send_client *c, const char *iun, struct send_legal_fact **out,
			  size_t *n_out, struct sb_err *err)
{
	struct send_legal_fact *f = NULL;
	char *path = NULL;
	json_t *j = NULL, *v;
	size_t i, n = 0;
	int rc;

	rc = check_iun(iun, err);
	if (rc < 0)
		return rc;
	path = sb_xasprintf("/delivery-push/%s/%s/legal-facts", c->v_legal_facts, iun);
	rc = send_call(c, "GET", path, NULL, &j, NULL, NULL, err);
	if (rc < 0)
		goto cleanup;
	if (!json_is_array(j)) {
		rc = sb_err_set(err, SB_EREJECT, 0, "legal facts: reply is not a list");
		goto cleanup;
	}
	SB_ALLOC_ARRAY(f, json_array_size(j));
	json_array_foreach(j, i, v) {
		const json_t *id = json_object_get(v, "legalFactsId");

		if (!json_is_string(json_object_get(id, "key")) ||
		    !json_is_string(json_object_get(id, "category"))) {
			rc = sb_err_set(err, SB_EREJECT, 0,
					"legal facts: item %zu without legalFactsId", i);
			goto cleanup;
		}
		f[n].key = dup_opt(id, "key");
		f[n].category = dup_opt(id, "category");
		f[n].tax_id = dup_opt(v, "taxId");
		n++;
	}
	*out = f;
	*n_out = n;
	f = NULL;
cleanup:
	send_legal_facts_free(f, n);
	json_decref(j);
	free(path);
	return rc;
}

/*
 * Ask for download metadata until it carries a url (SEND answers retryAfter
 * while the file is being made or restored from the archive).
 */
struct meta_op {
	struct send_client *c;
	const char *path;
	json_t *reply;
};

static int meta_once(void *ctx, struct sb_err *err)
{
	struct meta_op *op = ctx;

	json_decref(op->reply);
	op->reply = NULL;
	return send_call(op->c, "GET", op->path, NULL, &op->reply, NULL, NULL, err);
}

static int metadata_wait(struct send_client *c, const char *path, long max_wait_ms,
			 const struct send_retry *r, json_t **out, struct sb_err *err)
{
	struct meta_op op = { c, path, NULL };
	long waited = 0;
	int rc;

	for (;;) {
		const json_t *ra;
		long wait;

		rc = send_retry_run(r, meta_once, &op, err);
		if (rc < 0)
			goto fail;
		if (json_is_string(json_object_get(op.reply, "url")))
			break;
		ra = json_object_get(op.reply, "retryAfter");
		if (!json_is_integer(ra)) {
			rc = sb_err_set(err, SB_EREJECT, 0,
					"download metadata without url or retryAfter");
			goto fail;
		}
		/* retryAfter is in seconds here (SUMMARY §6). */
		wait = json_integer_value(ra) <= 0 ? 100 :
		       json_integer_value(ra) > 86400 ? 86400000L :
		       (long)json_integer_value(ra) * 1000;
		if (waited + wait > max_wait_ms) {
			rc = sb_err_set(err, SB_ETEMP, 0, "file not ready after %ld ms", waited);
			if (err)
				err->retry_after = wait / 1000;
			goto fail;
		}
		send_sleep_ms(r, wait);
		waited += wait;
	}
	*out = op.reply;
	return 0;
fail:
	json_decref(op.reply);
	return rc;
}

struct fetch_op {
	struct send_client *c;
	const char *url, *out_path;
	uint64_t max, len;
	unsigned char digest[SB_SHA256_LEN];   /* of the bytes */
};

static int fetch_once(void *ctx, struct sb_err *err)
{
	struct fetch_op *op = ctx;

	if (!op->out_path)
		return send_fetch_url_sha256(op->c, op->url, op->max, op->digest, &op->len, err);
	return send_fetch_url(op->c, op->url, op->out_path, op->max, &op->len, op->digest, err);
}

/*
 * Download url after metadata, checking the declared length: to out_path,
 * or with out_path NULL only hashed; digest (may be NULL) gets the SHA-256.
 */
static int fetch_checked(struct send_client *c, const json_t *meta, const char *out_path,
			 const struct send_retry *r, uint64_t *len_out,
			 unsigned char digest[SB_SHA256_LEN], struct sb_err *err)
{
	struct fetch_op op = { c, json_string_value(json_object_get(meta, "url")), out_path, 0, 0,
			       { 0 } };
	const json_t *cl = json_object_get(meta, "contentLength");
	int rc;

	if (!json_is_integer(cl) || json_integer_value(cl) < 0 ||
	    (uint64_t)json_integer_value(cl) > SB_MAX_PDF)
		return sb_err_set(err, SB_EREJECT, 0, "download metadata: bad contentLength");
	op.max = (uint64_t)json_integer_value(cl);
	if (op.max == 0)
		op.max = 1;   /* sb_http treats 0 as "the default ceiling" */
	rc = send_retry_run(r, fetch_once, &op, err);
	if (rc < 0)
		return rc;
	if (op.len != (uint64_t)json_integer_value(cl)) {
		if (out_path)
			remove(out_path);
		return sb_err_set(err, SB_EREJECT, 0,
				  "downloaded %llu bytes, SEND declared %lld",
				  (unsigned long long)op.len, (long long)json_integer_value(cl));
	}
	if (len_out)
		*len_out = op.len;
	if (digest)
		memcpy(digest, op.digest, sizeof(op.digest));
	return 0;
}

int send_legal_fact_download(struct send_client *c, const char *iun, const char *key,
			     const char *out_path, long max_wait_ms, const struct send_retry *r,
			     uint64_t *size_out, unsigned char sha256_out[SB_SHA256_LEN],
			     struct sb_err *err)
{
	struct sb_buf path = SB_BUF_INIT(2048);
	json_t *meta = NULL;
	int rc;

	rc = check_iun(iun, err);
	if (rc < 0)
		return rc;
	if (!key || !*key || strlen(key) > 512)
		return sb_err_set(err, SB_EINVAL, 0, "legal fact key: missing or too long");
	/* PagoPA's own client passes the key without the safestorage:// prefix. */
	if (!strncmp(key, "safestorage://", 14))
		key += 14;
	sb_buf_addf(&path, "/delivery-push/%s/download/legal-facts/", iun);
	send_url_escape(key, &path);
	rc = metadata_wait(c, sb_buf_cstr(&path), max_wait_ms, r, &meta, err);
	if (rc == 0)
		rc = fetch_checked(c, meta, out_path, r, size_out, sha256_out, err);
	if (rc < 0)
		sb_err_prefix(err, "legal fact");
	json_decref(meta);
	sb_buf_release(&path);
	return rc;
}

int send_attachment_download(struct send_client *c, const char *iun,
			     const struct send_attachment_sel *sel, const char *expected_sha256,
			     const char *out_path, long max_wait_ms, const struct send_retry *r,
			     char sha256_out[45], struct sb_err *err)
{
	struct sb_buf path = SB_BUF_INIT(512), b64 = SB_BUF_INIT(64);
	unsigned char d[SB_SHA256_LEN];
	const char *declared;
	json_t *meta = NULL;
	int rc;

	rc = check_iun(iun, err);
	if (rc < 0)
		return rc;
	if (sel->index > 999)
		return sb_err_set(err, SB_EINVAL, 0, "attachment index out of range");
	if (sel->kind == SEND_ATT_DOCUMENT)
		sb_buf_addf(&path, "/delivery/notifications/sent/%s/attachments/documents/%u", iun,
			    sel->index);
	else
		sb_buf_addf(&path, "/delivery/notifications/sent/%s/attachments/payment/%u/%s%s",
			    iun, sel->index, sel->kind == SEND_ATT_PAGOPA ? "PAGOPA" : "F24",
			    sel->attachment_idx >= 0 ? "?attachmentIdx=" : "");
	if (sel->kind != SEND_ATT_DOCUMENT && sel->attachment_idx >= 0)
		sb_buf_addf(&path, "%d", sel->attachment_idx);
	rc = metadata_wait(c, sb_buf_cstr(&path), max_wait_ms, r, &meta, err);
	if (rc < 0)
		goto cleanup;
	declared = json_string_value(json_object_get(meta, "sha256"));
	if (!declared || strlen(declared) != 44) {
		rc = sb_err_set(err, SB_EREJECT, 0, "attachment metadata without sha256");
		goto cleanup;
	}
	if (expected_sha256 && strcmp(declared, expected_sha256)) {
		rc = sb_err_set(err, SB_EREJECT, 0,
				"attachment: SEND holds a different file "
				"(sha256 differs from upload)");
		goto cleanup;
	}
	rc = fetch_checked(c, meta, out_path, r, NULL, d, err);
	if (rc < 0)
		goto cleanup;
	sb_base64_encode(d, sizeof(d), &b64);
	if (strcmp(sb_buf_cstr(&b64), declared)) {
		if (out_path)
			remove(out_path);
		rc = sb_err_set(err, SB_EREJECT, 0,
				"attachment: downloaded bytes do not match the declared sha256");
		goto cleanup;
	}
	if (sha256_out)
		memcpy(sha256_out, b64.buf, 45);
cleanup:
	if (rc < 0)
		sb_err_prefix(err, "attachment");
	json_decref(meta);
	sb_buf_release(&path);
	sb_buf_release(&b64);
	return rc;
}

static int64_t int_or(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

int send_price_get(struct send_client *c, const char *notice_code, struct send_price *out,
		   struct sb_err *err)
{
	struct send_price p;
	char *path;
	json_t *j = NULL;
	int rc;

	if (!sb_notice_code_valid(notice_code))
		return sb_err_set(err, SB_EINVAL, 0, "noticeCode: must be 18 digits");
	if (!c->sender_tax_id)
		return sb_err_set(err, SB_ECONFIG, 0, "[service] sender_tax_id is not set");
	path = sb_xasprintf("/delivery/%s/price/%s/%s", c->v_price, c->sender_tax_id, notice_code);
	rc = send_call(c, "GET", path, NULL, &j, NULL, NULL, err);
	if (rc < 0)
		goto cleanup;
	memset(&p, 0, sizeof(p));
	rc = send_copy_str(j, "iun", p.iun, sizeof(p.iun), true, "price", err);
	if (rc < 0)
		goto cleanup;
	p.partial_price = int_or(j, "partialPrice");
	p.total_price = int_or(j, "totalPrice");
	p.vat = int_or(j, "vat");
	p.pa_fee = int_or(j, "paFee");
	p.send_fee = int_or(j, "sendFee");
	p.analog_cost = int_or(j, "analogCost");
	if ((rc = send_copy_str(j, "refinementDate", p.refinement_date, sizeof(p.refinement_date),
				false, "price", err)) < 0 ||
	    (rc = send_copy_str(j, "notificationViewDate", p.view_date, sizeof(p.view_date), false,
				"price", err)) < 0)
		goto cleanup;
	*out = p;
cleanup:
	json_decref(j);
	free(path);
	return rc;
}

int send_notification_cancel(struct send_client *c, const char *iun, struct sb_err *err)
{
	char *path;
	json_t *j = NULL;
	long status = 0;
	int rc;

	rc = check_iun(iun, err);
	if (rc < 0)
		return rc;
	path = sb_xasprintf("/delivery-push/%s/notifications/cancel/%s", c->v_cancel, iun);
	rc = send_call(c, "PUT", path, NULL, &j, &status, NULL, err);
	if (rc == 0 && status != 202)
		rc = sb_err_set(err, SB_EREJECT, 0, "cancel: expected 202, got %ld", status);
	else if (rc == 0 && !json_is_string(json_object_get(j, "status")))
		rc = sb_err_set(err, SB_EREJECT, 0, "cancel: reply without status");
	else if (rc == 0)
		sb_log(SB_LOG_INFO, "send", "cancellation requested iun=%s", iun);
	json_decref(j);
	free(path);
	return rc;
}
