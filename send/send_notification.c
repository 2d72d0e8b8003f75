/*
 * Creating a notification and following its acceptance
 * (shared/specs/send/SUMMARY.md §3, §4, §7; schema NewNotificationRequestV25
 * and NewNotificationRequestStatusResponseV25 in the pn-delivery bundle).
 *
 * The request body is checked here against the schema and the server rules
 * that the schema does not show (fee policy, PG tax ids, duplicates,
 * provinces), so that a mistake is reported with the field's name before
 * anything is sent. Absent values are left out: SEND answers 400 to null
 * and to "" for an enum.
 */
#include <ctype.h>
#include <string.h>

#include "sb_common.h"
#include "sb_ids.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "send_int.h"

#define ROW_MAX 44

/* ---- address normalisation ------------------------------------------- */

/*
 * Latin-1 letters (U+00C0..U+00FF) to SEND's upper-case ASCII. Vowels with
 * a grave or acute accent keep the accent as an apostrophe, the way Italian
 * addresses are written in capitals ("CITTA'"); other marks are dropped.
 */
static const char *latin1_map(unsigned cp)
{
	static const char *const tab[64] = {
		"A'", "A'", "A", "A", "A", "A", "AE", "C",
		"E'", "E'", "E", "E", "I'", "I'", "I", "I",
		"D", "N", "O'", "O'", "O", "O", "O", NULL,
		"O", "U'", "U'", "U", "U", "Y'", "TH", "SS",
		"A'", "A'", "A", "A", "A", "A", "AE", "C",
		"E'", "E'", "E", "E", "I'", "I'", "I", "I",
		"D", "N", "O'", "O'", "O", "O", "O", NULL,
		"O", "U'", "U'", "U", "U", "Y'", "TH", "Y",
	};

	return cp >= 0xC0 && cp <= 0xFF ? tab[cp - 0xC0] : NULL;
}

static bool send_char_ok(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr(" ./'-@_", ch);
}

/* Rewrite one field; NULL or blank in gives NULL out. */
static char *norm_field(const char *in)
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT);
	const unsigned char *p = (const unsigned char *)in;
	char *out;

	if (!in)
		return NULL;
	while (*p) {
		const char *rep = NULL;
		char one[2] = { 0, 0 };

		if (*p < 0x80) {
			one[0] = (char)toupper(*p);
			rep = send_char_ok(one[0]) ? one : " ";
			p++;
		} else if ((*p & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) {
			unsigned cp = ((unsigned)(*p & 0x1F) << 6) | (p[1] & 0x3F);

			rep = latin1_map(cp);
			if (!rep)
				rep = " ";
			p += 2;
		} else {
			/* Anything else (other scripts, symbols, broken bytes) becomes a space. */
			p++;
			while ((*p & 0xC0) == 0x80)
				p++;
			rep = " ";
		}
		for (; *rep; rep++) {
			/* Collapse runs of spaces and drop leading ones. */
			if (*rep == ' ' && (b.len == 0 || b.buf[b.len - 1] == ' '))
				continue;
			sb_buf_addch(&b, *rep);
		}
	}
	while (b.len && b.buf[b.len - 1] == ' ')
		b.buf[--b.len] = '\0';
	if (!b.len) {
		sb_buf_release(&b);
		return NULL;
	}
	out = sb_buf_detach(&b, NULL);
	return out;
}

void send_address_norm_release(struct send_address_norm *a)
{
	if (!a)
		return;
	free(a->address);
	free(a->address_details);
	free(a->at);
	free(a->zip);
	free(a->municipality);
	free(a->municipality_details);
	free(a->province);
	free(a->foreign_state);
	memset(a, 0, sizeof(*a));
}

static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

/* Length of the printed row made of the non-empty parts separated by one space. */
static size_t row_len(const char *a, const char *b, const char *c)
{
	const char *parts[] = { a, b, c };
	size_t n = 0, k = 0;

	for (size_t i = 0; i < 3; i++) {
		if (!slen(parts[i]))
			continue;
		n += slen(parts[i]) + (k++ ? 1 : 0);
	}
	return n;
}

int send_address_normalize(const struct send_address *in, const char *where,
			   struct send_address_norm *out, struct sb_err *err)
{
	struct send_address_norm a = { 0 };
	bool italy;
	int rc = 0;

	a.address = norm_field(in->address);
	a.address_details = norm_field(in->address_details);
	a.at = norm_field(in->at);
	a.zip = norm_field(in->zip);
	a.municipality = norm_field(in->municipality);
	a.municipality_details = norm_field(in->municipality_details);
	a.province = norm_field(in->province);
	a.foreign_state = norm_field(in->foreign_state);
	/* SEND treats an empty foreignState or one starting with ITAL as Italy. */
	italy = !a.foreign_state || !strncmp(a.foreign_state, "ITAL", 4);

	if (slen(a.address) < 2)
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.address: required (at least 2 characters)",
				where);
	else if (slen(a.municipality) < 2)
		rc = sb_err_set(err, SB_EINVAL, 0,
				"%s.municipality: required (at least 2 characters)", where);
	else if (italy && !a.province)
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.province: required for an Italian address",
				where);
	else if (italy && !sb_province_valid(a.province))
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.province: not an Italian province code",
				where);
	else if (italy && (!a.zip || !sb_cap_valid(a.zip)))
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.zip: an Italian address needs a 5-digit CAP",
				where);
	else if (a.zip && slen(a.zip) > 15)
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.zip: longer than 15 characters", where);
	else if (slen(a.address) > ROW_MAX)
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.address: printed row longer than %d",
				where, ROW_MAX);
	else if (slen(a.address_details) > ROW_MAX)
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.addressDetails: printed row longer than %d",
				where, ROW_MAX);
	else if (row_len(a.at, a.municipality_details, NULL) > ROW_MAX)
		rc = sb_err_set(err, SB_EINVAL, 0,
				"%s.at: printed row (at + municipalityDetails) longer than %d",
				where, ROW_MAX);
	else if (row_len(a.zip, a.municipality, a.province) > ROW_MAX)
		rc = sb_err_set(err, SB_EINVAL, 0,
				"%s.municipality: printed row (zip + municipality + province) "
				"longer than %d", where, ROW_MAX);
	else if (slen(a.foreign_state) > ROW_MAX)
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.foreignState: printed row longer than %d",
				where, ROW_MAX);
	if (rc < 0) {
		send_address_norm_release(&a);
		return rc;
	}
	*out = a;
	return 0;
}

/* ---- request body ------------------------------------------------------ */

static bool printable_ascii(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

static bool digits(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* ISO-8859-1 representable and no '|' (SEND's rule for denominations). */
static bool latin1_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!sb_utf8_valid(s, strlen(s)))
		return false;
	for (; *p; p++) {
		if (*p == '|' || *p < 0x20)
			return false;
		if (*p >= 0x80) {
			if (*p != 0xC2 && *p != 0xC3)
				return false;
			p++;
		}
	}
	return true;
}

static bool set(const char *s)
{
	return s && *s;
}

static bool key_ok(const char *k)
{
	const char *p = k;

	if (!set(k) || strlen(k) > 512)
		return false;
	if (!strncmp(p, "safestorage://", 14))
		p += 14;
	if (!*p)
		return false;
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return false;
	return true;
}

static int ref_json(const struct send_file_ref *r, const char *want_ct, const char *where,
		    json_t **out, struct sb_err *err)
{
	json_t *o, *ref, *dg;

	if (strlen(r->sha256) != 44)
		return sb_err_set(err, SB_EINVAL, 0, "%s.digests.sha256: not a base64 SHA-256",
				  where);
	if (!key_ok(r->key))
		return sb_err_set(err, SB_EINVAL, 0, "%s.ref.key: missing or malformed", where);
	if (!set(r->version_token))
		return sb_err_set(err, SB_EINVAL, 0, "%s.ref.versionToken: required", where);
	if (!r->content_type || strcmp(r->content_type, want_ct))
		return sb_err_set(err, SB_EINVAL, 0, "%s.contentType: must be %s", where, want_ct);
	o = json_object();
	dg = json_object();
	json_object_set_new(dg, "sha256", json_string(r->sha256));
	json_object_set_new(o, "digests", dg);
	json_object_set_new(o, "contentType", json_string(want_ct));
	ref = json_object();
	json_object_set_new(ref, "key", json_string(r->key));
	json_object_set_new(ref, "versionToken", json_string(r->version_token));
	json_object_set_new(o, "ref", ref);
	*out = o;
	return 0;
}

static int check_len(const char *v, size_t lo, size_t hi, const char *where, struct sb_err *err)
{
	size_t n = v ? sb_utf8_len(v) : 0;

	if (v && !sb_utf8_valid(v, strlen(v)))
		return sb_err_set(err, SB_EINVAL, 0, "%s: not valid UTF-8", where);
	if (n == 0 && lo > 0)
		return sb_err_set(err, SB_EINVAL, 0, "%s: required", where);
	if (n < lo)
		return sb_err_set(err, SB_EINVAL, 0, "%s: shorter than %zu characters", where, lo);
	if (n > hi)
		return sb_err_set(err, SB_EINVAL, 0, "%s: longer than %zu characters", where, hi);
	return 0;
}

struct cost_count {
	size_t pagopa, pagopa_cost, f24, f24_cost;
};

static int payment_json(const struct send_payment *p, const char *where, struct cost_count *cc,
			json_t **out, struct sb_err *err)
{
	json_t *o = json_object(), *sub = NULL, *att = NULL;
	char w[160];
	int rc = 0;

	if (!p->has_pagopa && !p->has_f24) {
		rc = sb_err_set(err, SB_EINVAL, 0, "%s: needs pagoPa or f24", where);
		goto fail;
	}
	if (p->has_pagopa) {
		if (!digits(p->notice_code, 18)) {
			rc = sb_err_set(err, SB_EINVAL, 0,
					"%s.pagoPa.noticeCode: must be 18 digits", where);
			goto fail;
		}
		if (!digits(p->creditor_tax_id, 11)) {
			rc = sb_err_set(err, SB_EINVAL, 0,
					"%s.pagoPa.creditorTaxId: must be 11 digits", where);
			goto fail;
		}
		sub = json_object();
		json_object_set_new(sub, "noticeCode", json_string(p->notice_code));
		json_object_set_new(sub, "creditorTaxId", json_string(p->creditor_tax_id));
		json_object_set_new(sub, "applyCost", json_boolean(p->pagopa_apply_cost));
		if (p->has_pagopa_attachment) {
			snprintf(w, sizeof(w), "%s.pagoPa.attachment", where);
			rc = ref_json(&p->pagopa_attachment, SEND_CT_PDF, w, &att, err);
			if (rc < 0)
				goto fail;
			json_object_set_new(sub, "attachment", att);
		}
		json_object_set_new(o, "pagoPa", sub);
		sub = NULL;
		cc->pagopa++;
		cc->pagopa_cost += p->pagopa_apply_cost;
	}
	if (p->has_f24) {
		snprintf(w, sizeof(w), "%s.f24.title", where);
		rc = check_len(p->f24_title, 1, 512, w, err);
		if (rc < 0)
			goto fail;
		snprintf(w, sizeof(w), "%s.f24.metadataAttachment", where);
		rc = ref_json(&p->f24_metadata, SEND_CT_JSON, w, &att, err);
		if (rc < 0)
			goto fail;
		sub = json_object();
		json_object_set_new(sub, "title", json_string(p->f24_title));
		json_object_set_new(sub, "applyCost", json_boolean(p->f24_apply_cost));
		json_object_set_new(sub, "metadataAttachment", att);
		json_object_set_new(o, "f24", sub);
		sub = NULL;
		cc->f24++;
		cc->f24_cost += p->f24_apply_cost;
	}
	*out = o;
	return 0;
fail:
	json_decref(sub);
	json_decref(o);
	return rc;
}

static json_t *address_obj(const struct send_address_norm *a)
{
	json_t *o = json_object();

	sb_json_set_str_opt(o, "at", a->at);
	json_object_set_new(o, "address", json_string(a->address));
	sb_json_set_str_opt(o, "addressDetails", a->address_details);
	sb_json_set_str_opt(o, "zip", a->zip);
	json_object_set_new(o, "municipality", json_string(a->municipality));
	sb_json_set_str_opt(o, "municipalityDetails", a->municipality_details);
	sb_json_set_str_opt(o, "province", a->province);
	sb_json_set_str_opt(o, "foreignState", a->foreign_state);
	return o;
}

static int recipient_json(const struct send_recipient *r, size_t i,
			  const struct send_notification *n, struct cost_count *cc,
			  json_t **out, struct sb_err *err)
{
	json_t *o = json_object(), *pays = NULL;
	struct sb_err tmp = SB_ERR_INIT;
	char w[64], pw[100];
	int rc;

	snprintf(w, sizeof(w), "recipients[%zu]", i);
	json_object_set_new(o, "recipientType", json_string(r->type == SEND_PG ? "PG" : "PF"));
	if (!set(r->tax_id)) {
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.taxId: required", w);
		goto fail;
	}
	if (r->type == SEND_PG && sb_piva_check(r->tax_id, &tmp) < 0) {
		/* The server requires PG ids to be numeric (SUMMARY §3). */
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.taxId: a PG needs an 11-digit tax id (%s)",
				w, tmp.msg);
		goto fail;
	}
	if (r->type == SEND_PF && sb_taxid_check(r->tax_id, &tmp) < 0) {
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.taxId: %s", w, tmp.msg);
		goto fail;
	}
	for (size_t j = 0; j < i; j++) {
		if (!strcmp(n->recipients[j].tax_id, r->tax_id)) {
			rc = sb_err_set(err, SB_EINVAL, 0,
					"%s.taxId: same as recipients[%zu]", w, j);
			goto fail;
		}
	}
	json_object_set_new(o, "taxId", json_string(r->tax_id));
	snprintf(pw, sizeof(pw), "%s.denomination", w);
	rc = check_len(r->denomination, 1, 88, pw, err);
	if (rc < 0)
		goto fail;
	if (!latin1_text(r->denomination)) {
		rc = sb_err_set(err, SB_EINVAL, 0, "%s: only ISO-8859-1 characters, no '|'", pw);
		goto fail;
	}
	json_object_set_new(o, "denomination", json_string(r->denomination));
	if (set(r->pec)) {
		json_t *dd = json_object();

		if (!sb_email_valid(r->pec)) {
			json_decref(dd);
			rc = sb_err_set(err, SB_EINVAL, 0,
					"%s.digitalDomicile.address: not an e-mail address", w);
			goto fail;
		}
		json_object_set_new(dd, "type", json_string("PEC"));
		json_object_set_new(dd, "address", json_string(r->pec));
		json_object_set_new(o, "digitalDomicile", dd);
	}
	if (!r->has_address) {
		/* Optional in the schema, required by the server (no address lookup for us). */
		rc = sb_err_set(err, SB_EINVAL, 0, "%s.physicalAddress: required", w);
		goto fail;
	} else {
		struct send_address_norm a;

		snprintf(pw, sizeof(pw), "%s.physicalAddress", w);
		rc = send_address_normalize(&r->address, pw, &a, err);
		if (rc < 0)
			goto fail;
		json_object_set_new(o, "physicalAddress", address_obj(&a));
		send_address_norm_release(&a);
	}
	if (r->npayments > SEND_MAX_PAYMENTS) {
		rc = sb_err_set(err, SB_ETOOBIG, 0, "%s.payments: more than %u", w,
				SEND_MAX_PAYMENTS);
		goto fail;
	}
	if (r->npayments) {
		pays = json_array();
		for (size_t k = 0; k < r->npayments; k++) {
			json_t *p = NULL;

			snprintf(pw, sizeof(pw), "%s.payments[%zu]", w, k);
			rc = payment_json(&r->payments[k], pw, cc, &p, err);
			if (rc < 0)
				goto fail;
			json_array_append_new(pays, p);
		}
		json_object_set_new(o, "payments", pays);
		pays = NULL;
	}
	*out = o;
	return 0;
fail:
	json_decref(pays);
	json_decref(o);
	return rc;
}

/* A creditorTaxId + noticeCode pair may not repeat in one notification (server rule). */
static int check_notice_unique(const struct send_notification *n, struct sb_err *err)
{
	for (size_t i = 0; i < n->nrecipients; i++)
		for (size_t k = 0; k < n->recipients[i].npayments; k++) {
			const struct send_payment *p = &n->recipients[i].payments[k];

			if (!p->has_pagopa)
				continue;
			for (size_t j = 0; j <= i; j++)
				for (size_t l = 0;
				     l < (j == i ? k : n->recipients[j].npayments); l++) {
					const struct send_payment *q =
						&n->recipients[j].payments[l];

					if (q->has_pagopa &&
					    !strcmp(q->notice_code, p->notice_code) &&
					    !strcmp(q->creditor_tax_id, p->creditor_tax_id))
						return sb_err_set(err, SB_EINVAL, 0,
								  "recipients[%zu].payments[%zu]"
								  ".pagoPa.noticeCode: repeated",
								  i, k);
				}
		}
	return 0;
}

static int top_checks(const struct send_client *c, const struct send_notification *n,
		      const char **tax_id, struct sb_err *err)
{
	static const char *const modes[] = { "NONE", "SYNC", "ASYNC" };
	int64_t t;
	int rc;

	if ((rc = check_len(n->protocol_number, 1, 256, "paProtocolNumber", err)) < 0 ||
	    (rc = check_len(n->subject, 1, 134, "subject", err)) < 0 ||
	    (rc = check_len(n->sender_denomination, 1, 88, "senderDenomination", err)) < 0)
		return rc;
	if (set(n->abstract) && (rc = check_len(n->abstract, 0, 1024, "abstract", err)) < 0)
		return rc;
	if (set(n->idempotence_token) &&
	    (strlen(n->idempotence_token) > 256 || !printable_ascii(n->idempotence_token)))
		return sb_err_set(err, SB_EINVAL, 0,
				  "idempotenceToken: printable ASCII, at most 256 characters");
	if (!n->taxonomy_code || !sb_taxonomy_code_valid(n->taxonomy_code))
		return sb_err_set(err, SB_EINVAL, 0, "taxonomyCode: must match ^[0-9]{6}[A-Z]$");
	*tax_id = set(n->sender_tax_id) ? n->sender_tax_id : c->sender_tax_id;
	if (!digits(*tax_id, 11))
		return sb_err_set(err, SB_EINVAL, 0, "senderTaxId: must be 11 digits");
	if (set(n->pagopa_int_mode)) {
		bool ok = false;

		for (size_t i = 0; i < SB_ARRAY_SIZE(modes); i++)
			ok |= !strcmp(modes[i], n->pagopa_int_mode);
		if (!ok)
			return sb_err_set(err, SB_EINVAL, 0,
					  "pagoPaIntMode: must be NONE, SYNC or ASYNC");
	}
	if (set(n->payment_expiration_date) &&
	    (strlen(n->payment_expiration_date) != 10 ||
	     sb_time_parse_date(n->payment_expiration_date, &t) < 0))
		return sb_err_set(err, SB_EINVAL, 0, "paymentExpirationDate: must be YYYY-MM-DD");
	if (set(n->cancelled_iun) && !sb_iun_valid(n->cancelled_iun))
		return sb_err_set(err, SB_EINVAL, 0, "cancelledIun: not an IUN");
	if (n->has_amount && (n->amount < 0 || n->amount > INT32_MAX))
		return sb_err_set(err, SB_EINVAL, 0, "amount: out of range");
	if (n->has_pa_fee && (n->pa_fee < 0 || n->pa_fee > 100))
		return sb_err_set(err, SB_EINVAL, 0, "paFee: must be 0..100 eurocent");
	if (n->has_vat && (n->vat < 0 || n->vat > 100))
		return sb_err_set(err, SB_EINVAL, 0, "vat: must be 0..100");
	if (n->fee_policy == SEND_FEE_DELIVERY_MODE && (!n->has_pa_fee || !n->has_vat))
		return sb_err_set(err, SB_EINVAL, 0,
				  "notificationFeePolicy: DELIVERY_MODE needs paFee and vat");
	if (n->nrecipients < 1 || n->nrecipients > SEND_MAX_RECIPIENTS)
		return sb_err_set(err, SB_EINVAL, 0, "recipients: 1 to %u needed",
				  SEND_MAX_RECIPIENTS);
	if (n->ndocuments < 1 || n->ndocuments > SEND_MAX_DOCUMENTS)
		return sb_err_set(err, SB_EINVAL, 0, "documents: 1 to %u needed",
				  SEND_MAX_DOCUMENTS);
	return check_notice_unique(n, err);
}

int send_notification_json(const struct send_client *c, const struct send_notification *n,
			   char **json_out, struct sb_err *err)
{
	struct cost_count cc = { 0 };
	struct sb_buf b = SB_BUF_INIT(SB_MAX_JSON_BODY);
	const char *tax_id = NULL, *group;
	json_t *o = NULL, *arr;
	int rc;

	rc = top_checks(c, n, &tax_id, err);
	if (rc < 0)
		return rc;
	o = json_object();
	sb_json_set_str_opt(o, "idempotenceToken", n->idempotence_token);
	json_object_set_new(o, "paProtocolNumber", json_string(n->protocol_number));
	json_object_set_new(o, "subject", json_string(n->subject));
	sb_json_set_str_opt(o, "abstract", n->abstract);
	arr = json_array();
	json_object_set_new(o, "recipients", arr);
	for (size_t i = 0; i < n->nrecipients; i++) {
		json_t *r = NULL;

		rc = recipient_json(&n->recipients[i], i, n, &cc, &r, err);
		if (rc < 0)
			goto cleanup;
		json_array_append_new(arr, r);
	}
	arr = json_array();
	json_object_set_new(o, "documents", arr);
	for (size_t i = 0; i < n->ndocuments; i++) {
		const struct send_document *d = &n->documents[i];
		char w[48];
		json_t *dj = NULL;

		snprintf(w, sizeof(w), "documents[%zu]", i);
		rc = ref_json(&d->ref, SEND_CT_PDF, w, &dj, err);
		if (rc < 0)
			goto cleanup;
		json_array_append_new(arr, dj);
		if (set(d->title)) {
			snprintf(w, sizeof(w), "documents[%zu].title", i);
			rc = check_len(d->title, 1, 512, w, err);
			if (rc < 0)
				goto cleanup;
			json_object_set_new(dj, "title", json_string(d->title));
		}
		json_object_set_new(dj, "docIdx", json_sprintf("%zu", i));
		for (size_t j = 0; j < i; j++)
			if (!strcmp(n->documents[j].ref.key, d->ref.key)) {
				rc = sb_err_set(err, SB_EINVAL, 0,
						"documents[%zu].ref.key: "
						"same file as documents[%zu]", i, j);
				goto cleanup;
			}
	}
	json_object_set_new(o, "notificationFeePolicy",
			    json_string(n->fee_policy == SEND_FEE_DELIVERY_MODE ? "DELIVERY_MODE"
										: "FLAT_RATE"));
	/* Fee-policy rules checked by SEND's server (SUMMARY §3 payments). */
	if (n->fee_policy == SEND_FEE_DELIVERY_MODE &&
	    ((cc.pagopa && !cc.pagopa_cost) || (cc.f24 && !cc.f24_cost))) {
		rc = sb_err_set(err, SB_EINVAL, 0, "payments: DELIVERY_MODE needs applyCost=true "
				"on at least one pagoPa%s item", cc.f24 ? " and one f24" : "");
		goto cleanup;
	}
	if (n->fee_policy == SEND_FEE_FLAT_RATE && (cc.pagopa_cost || cc.f24_cost)) {
		rc = sb_err_set(err, SB_EINVAL, 0, "payments: FLAT_RATE allows no applyCost=true");
		goto cleanup;
	}
	sb_json_set_str_opt(o, "cancelledIun", n->cancelled_iun);
	json_object_set_new(o, "physicalCommunicationType",
			    json_string(n->comm_type == SEND_REGISTERED_LETTER_890 ?
					"REGISTERED_LETTER_890" : "AR_REGISTERED_LETTER"));
	json_object_set_new(o, "senderDenomination", json_string(n->sender_denomination));
	json_object_set_new(o, "senderTaxId", json_string(tax_id));
	group = set(n->group) ? n->group : c->group;
	if (set(group) && (strlen(group) > 1024 || !printable_ascii(group))) {
		rc = sb_err_set(err, SB_EINVAL, 0, "group: printable ASCII, at most 1024");
		goto cleanup;
	}
	sb_json_set_str_opt(o, "group", group);
	json_object_set_new(o, "taxonomyCode", json_string(n->taxonomy_code));
	if (n->has_amount)
		json_object_set_new(o, "amount", json_integer(n->amount));
	sb_json_set_str_opt(o, "paymentExpirationDate", n->payment_expiration_date);
	if (n->has_pa_fee)
		json_object_set_new(o, "paFee", json_integer(n->pa_fee));
	if (n->has_vat)
		json_object_set_new(o, "vat", json_integer(n->vat));
	sb_json_set_str_opt(o, "pagoPaIntMode", n->pagopa_int_mode);
	rc = sb_json_dump(o, &b, err);
	if (rc < 0)
		goto cleanup;
	*json_out = sb_buf_detach(&b, NULL);
cleanup:
	json_decref(o);
	sb_buf_release(&b);
	return rc;
}

/* ---- acceptance ------------------------------------------------------- */

static int status_parse(const json_t *j, struct send_request_status *out, struct sb_err *err)
{
	struct send_request_status st;
	const char *s = json_string_value(json_object_get(j, "notificationRequestStatus"));
	const json_t *errs = json_object_get(j, "errors");
	json_int_t ra;
	int rc;

	memset(&st, 0, sizeof(st));
	st.retry_after = -1;
	if (!s)
		return sb_err_set(err, SB_EREJECT, 0, "request status: reply without a status");
	if (!strcmp(s, "WAITING"))
		st.state = SEND_WAITING;
	else if (!strcmp(s, "ACCEPTED"))
		st.state = SEND_ACCEPTED;
	else if (!strcmp(s, "REFUSED"))
		st.state = SEND_REFUSED;
	else
		return sb_err_set(err, SB_EREJECT, 0, "request status: unknown status");
	rc = send_copy_str(j, "notificationRequestId", st.request_id, sizeof(st.request_id), true,
			   "request status", err);
	if (rc < 0)
		return rc;
	if (json_is_integer(json_object_get(j, "retryAfter"))) {
		ra = json_integer_value(json_object_get(j, "retryAfter"));
		st.retry_after = ra < 0 ? 0 : (ra > 86400 ? 86400 : (long)ra);
	}
	if (st.state == SEND_ACCEPTED) {
		rc = send_copy_str(j, "iun", st.iun, sizeof(st.iun), true, "request status", err);
		if (rc < 0)
			return rc;
		if (!sb_iun_valid(st.iun))
			return sb_err_set(err, SB_EREJECT, 0, "request status: malformed iun");
	}
	if (json_is_array(errs)) {
		size_t i;
		json_t *e;

		json_array_foreach(errs, i, e) {
			struct send_refusal *r;

			if (st.nrefusals >= SEND_MAX_REFUSALS)
				break;
			r = &st.refusals[st.nrefusals++];
			sb_log_quote(json_string_value(json_object_get(e, "code")) ?
				     json_string_value(json_object_get(e, "code")) : "",
				     json_string_length(json_object_get(e, "code")), r->code,
				     sizeof(r->code));
			sb_log_quote(json_string_value(json_object_get(e, "element")) ?
				     json_string_value(json_object_get(e, "element")) : "",
				     json_string_length(json_object_get(e, "element")), r->element,
				     sizeof(r->element));
			sb_log_quote(json_string_value(json_object_get(e, "detail")) ?
				     json_string_value(json_object_get(e, "detail")) : "",
				     json_string_length(json_object_get(e, "detail")), r->detail,
				     sizeof(r->detail));
		}
	}
	for (size_t i = 0; i < st.nrefusals; i++) {
		send_scrub_pii(st.refusals[i].element);
		send_scrub_pii(st.refusals[i].detail);
	}
	if (st.state == SEND_REFUSED && st.nrefusals == 0)
		return sb_err_set(err, SB_EREJECT, 0, "request status: REFUSED without errors");
	*out = st;
	return 0;
}

static int status_query(struct send_client *c, const char *query, struct send_request_status *out,
			struct sb_err *err)
{
	char *path = sb_xasprintf("/delivery/%s/requests?%s", c->v_requests, query);
	json_t *j = NULL;
	int rc;

	rc = send_call(c, "GET", path, NULL, &j, NULL, NULL, err);
	if (rc == 0)
		rc = status_parse(j, out, err);
	json_decref(j);
	free(path);
	return rc;
}

int send_request_status_get(struct send_client *c, const char *request_id,
			    struct send_request_status *out, struct sb_err *err)
{
	struct sb_buf q = SB_BUF_INIT(1024);
	int rc;

	if (!set(request_id) || strlen(request_id) >= SEND_REQUEST_ID_MAX)
		return sb_err_set(err, SB_EINVAL, 0, "notificationRequestId: missing or too long");
	sb_buf_adds(&q, "notificationRequestId=");
	send_url_escape(request_id, &q);
	rc = status_query(c, sb_buf_cstr(&q), out, err);
	sb_buf_release(&q);
	return rc;
}

int send_request_status_find(struct send_client *c, const char *protocol_number,
			     const char *idempotence_token, struct send_request_status *out,
			     struct sb_err *err)
{
	struct sb_buf q = SB_BUF_INIT(4096);
	int rc;

	if (!set(protocol_number) || strlen(protocol_number) > 256)
		return sb_err_set(err, SB_EINVAL, 0, "paProtocolNumber: missing or too long");
	if (set(idempotence_token) && strlen(idempotence_token) > 256)
		return sb_err_set(err, SB_EINVAL, 0, "idempotenceToken: too long");
	sb_buf_adds(&q, "paProtocolNumber=");
	send_url_escape(protocol_number, &q);
	if (set(idempotence_token)) {
		sb_buf_adds(&q, "&idempotenceToken=");
		send_url_escape(idempotence_token, &q);
	}
	rc = status_query(c, sb_buf_cstr(&q), out, err);
	sb_buf_release(&q);
	return rc;
}

struct create_op {
	struct send_client *c;
	const char *path, *body;
	json_t *reply;
};

static int create_once(void *ctx, struct sb_err *err)
{
	struct create_op *op = ctx;

	json_decref(op->reply);
	op->reply = NULL;
	return send_call(op->c, "POST", op->path, op->body, &op->reply, NULL, NULL, err);
}

int send_notification_create(struct send_client *c, const struct send_notification *n,
			     const struct send_retry *r, char request_id_out[SEND_REQUEST_ID_MAX],
			     bool *existing_out, struct sb_err *err)
{
	struct send_request_status st;
	struct create_op op = { c, NULL, NULL, NULL };
	char *body = NULL, *path = NULL;
	char id[SEND_REQUEST_ID_MAX];
	bool existing = false;
	int rc;

	rc = send_notification_json(c, n, &body, err);
	if (rc < 0)
		return rc;
	path = sb_xasprintf("/delivery/%s/requests", c->v_requests);
	op.path = path;
	op.body = body;
	rc = send_retry_run(r, create_once, &op, err);
	if (rc == SB_EREJECT && err && err->http == 409) {
		/*
		 * Already submitted (a replay after a crash, or a retry after a lost
		 * reply): look the request up instead of creating a second one (SUMMARY §7).
		 */
		sb_log(SB_LOG_INFO, "send", "create answered 409, reconciling: %s", err->msg);
		sb_err_clear(err);
		rc = send_request_status_find(c, n->protocol_number, n->idempotence_token, &st,
					      err);
		if (rc == SB_ENOTFOUND)
			rc = sb_err_set(err, SB_EREJECT, 0,
					"create answered 409 "
					"but no request has this protocol number and token "
					"(notice code used by another notification?)");
		if (rc < 0)
			goto cleanup;
		memcpy(id, st.request_id, sizeof(id));
		existing = true;
	} else if (rc < 0) {
		goto cleanup;
	} else {
		rc = send_copy_str(op.reply, "notificationRequestId", id, sizeof(id), true,
				   "create notification", err);
		if (rc < 0)
			goto cleanup;
	}
	memcpy(request_id_out, id, SEND_REQUEST_ID_MAX);
	if (existing_out)
		*existing_out = existing;
cleanup:
	json_decref(op.reply);
	free(body);
	free(path);
	return rc;
}

struct status_op {
	struct send_client *c;
	const char *id;
	struct send_request_status *st;
};

static int status_once(void *ctx, struct sb_err *err)
{
	struct status_op *op = ctx;

	return send_request_status_get(op->c, op->id, op->st, err);
}

int send_request_wait(struct send_client *c, const char *request_id, long max_wait_ms,
		      const struct send_retry *r, struct send_request_status *out,
		      struct sb_err *err)
{
	struct send_request_status st;
	struct status_op op = { c, request_id, &st };
	long waited = 0;
	int rc;

	for (;;) {
		long wait;

		rc = send_retry_run(r, status_once, &op, err);
		if (rc < 0)
			return rc;
		if (st.state != SEND_WAITING)
			break;
		/* retryAfter is in seconds (unlike the stream's retry-after). */
		wait = st.retry_after >= 0 ? st.retry_after * 1000 : 1000;
		if (wait == 0)
			wait = 100;
		if (waited + wait > max_wait_ms) {
			sb_err_set(err, SB_ETEMP, 0, "request still WAITING after %ld ms", waited);
			/* Tell the caller when to ask again: SEND's own retryAfter. */
			if (err)
				err->retry_after = wait / 1000;
			return SB_ETEMP;
		}
		send_sleep_ms(r, wait);
		waited += wait;
	}
	*out = st;
	return 0;
}
