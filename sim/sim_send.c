/*
 * SEND in send-sim, as strict as production: the same paths, bodies, status
 * codes and error shapes as the pn-delivery bundle in
 * shared/specs/send/ and the server rules of SUMMARY.md that the schema
 * does not show. This file: options, authentication (API gateway), preload
 * and the S3-like upload, creation with its synchronous checks, the request
 * status and the /_sim/send/ ledger. Acceptance, timeline, streams, legal
 * facts and the rest are in sim_send_flow.c.
 *
 * Written from the spec, not from send/: the simulator must not share code
 * with the client it checks.
 *
 * Deliberate strictness beyond the schema: unknown fields in a create
 * request are refused (production ignores them, which would hide a client
 * typo), and any "" value is refused, as SEND does for enums.
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

/* ---- small predicates (the spec's patterns) ------------------------------ */

static bool digits_only(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static bool p_digits18(const char *s) { return digits_only(s) && strlen(s) == 18; }
static bool p_digits11(const char *s) { return digits_only(s) && strlen(s) == 11; }
static bool p_digits3(const char *s) { return digits_only(s) && strlen(s) <= 3; }

static bool p_printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

static bool p_oneline(const char *s)
{
	/* ^.*$ in Java: no line terminators. */
	return !strpbrk(s, "\r\n");
}

static bool p_sha256(const char *s)
{
	struct sb_buf b = SB_BUF_INIT(64);
	bool ok = strlen(s) == 44 && sb_base64_decode(s, 44, &b) == 0 && b.len == 32;

	sb_buf_release(&b);
	return ok;
}

static bool p_key(const char *s)
{
	if (!strncmp(s, "safestorage://", 14))
		s += 14;
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return false;
	return true;
}

static bool p_zip(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_ -", *s))
			return false;
	return true;
}

static bool p_taxid(const char *s)
{
	/* The schema: a personal codice fiscale shape, or 11 digits. */
	size_t n = strlen(s);

	if (n == 11)
		return digits_only(s);
	if (n != 16)
		return false;
	for (size_t i = 0; i < 16; i++) {
		bool letter = isupper((unsigned char)s[i]);
		bool digit = isdigit((unsigned char)s[i]);

		if ((i < 6 || i == 8 || i == 11 || i == 15) ? !letter : !(letter || digit))
			return false;
	}
	return true;
}

static bool p_email(const char *s) { return sb_email_valid(s); }
static bool p_iun(const char *s) { return sb_iun_valid(s); }
static bool p_taxonomy(const char *s) { return sb_taxonomy_code_valid(s); }

static bool p_date(const char *s)
{
	int64_t t;

	return strlen(s) == 10 && sb_time_parse_date(s, &t) == 0;
}

static bool p_latin1(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (*p == '|')
			return false;
		if (*p >= 0x80 && *p != 0xC2 && *p != 0xC3)
			return false;
		if (*p >= 0x80)
			p++;
	}
	return true;
}

/* ---- options ----------------------------------------------------------- */

void sim_send_usage(FILE *out)
{
	fprintf(out,
		"\n"
		"SEND (see sim/README.md):\n"
		"  --send-api-key KEY        x-api-key that must come without a voucher\n"
		"                            (default sim-send-key)\n"
		"  --send-pdnd-key KEY       x-api-key that needs Authorization: Bearer <voucher>\n"
		"                            (default sim-send-pdnd-key)\n"
		"  --send-pa-tax-id ID       the sender PA's tax id (default 80012345676)\n"
		"  --send-accept-ms N        time a request stays WAITING (default 300)\n"
		"  --send-step-ms N          time between timeline steps (default 200)\n"
		"  --send-stream-interval-ms N  retry-after of an empty stream page "
		"(default 1000)\n"
		"  --send-legal-fact-retry N retryAfter answers before a legal fact's url "
		"(default 1)\n"
		"  --send-cancel-ms N        cancellation request to NOTIFICATION_CANCELLED\n"
		"                            (default: --send-step-ms)\n"
		"  --send-corrupt-notice CODE  fault: the pagoPA notice PDF of notice CODE is\n"
		"                            downloaded with its last byte changed\n"
		"  --send-stream-get-fault KIND  fault: GET /streams/{id} answers something\n"
		"                            that is not that stream: 'other' a 200 with\n"
		"                            another streamId, 'deny' the gateway's 403\n"
		"  admin: GET /_sim/send/ledger[?paProtocolNumber=P],\n"
		"         POST /_sim/send/view?iun=IUN&recIndex=N (the recipient reads it)\n");
}

static int opt_num(const char *name, const char *v, uint64_t max, unsigned *out)
{
	uint64_t n;

	if (!v || sb_parse_u64z(v, max, &n) < 0) {
		fprintf(stderr, "send-sim: %s needs a number up to %llu\n", name,
			(unsigned long long)max);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

static int opt_stream_get_fault(const char *name, const char *v,
				enum ss_stream_get_fault *out)
{
	if (v && !strcmp(v, "other")) {
		*out = SS_STREAM_GET_OTHER;
	} else if (v && !strcmp(v, "deny")) {
		*out = SS_STREAM_GET_DENY;
	} else {
		fprintf(stderr, "send-sim: %s needs 'other' or 'deny'\n", name);
		return -1;
	}
	return 0;
}

static struct sim_send *atexit_state;

static void sim_send_atexit(void)
{
	struct sim_send *ss = atexit_state;

	if (!ss)
		return;
	ss_flow_free(ss);
	free(ss->api_key);
	free(ss->pdnd_key);
	free(ss->pa_tax_id);
	free(ss->corrupt_notice);
	free(ss);
}

int sim_send_init(struct sim *s, int *argc, char **argv)
{
	struct sim_send *ss = sb_xcalloc(1, sizeof(*ss));
	int out = 1;

	ss->api_key = sb_xstrdup("sim-send-key");
	ss->pdnd_key = sb_xstrdup("sim-send-pdnd-key");
	ss->pa_tax_id = sb_xstrdup("80012345676");
	ss->accept_ms = 300;
	ss->step_ms = 200;
	ss->stream_interval_ms = 1000;
	ss->legal_fact_retry = 1;
	for (int k = 0; k < 2; k++) {
		unsigned char rnd[8];
		struct sb_buf hex = SB_BUF_INIT(64);

		sb_random_bytes(rnd, sizeof(rnd));
		sb_hex_encode(rnd, sizeof(rnd), &hex);
		snprintf(ss->salt[k], sizeof(ss->salt[k]), "%s", sb_buf_cstr(&hex));
		sb_buf_release(&hex);
	}
	s->send = ss;
	atexit_state = ss;
	atexit(sim_send_atexit);
	/* Take the --send-* options out of argv; the rest is main's. */
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i], *v = i + 1 < *argc ? argv[i + 1] : NULL;
		char **str = NULL;
		unsigned *num = NULL;

		if (strncmp(a, "--send-", 7)) {
			argv[out++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--send-api-key"))
			str = &ss->api_key;
		else if (!strcmp(a, "--send-pdnd-key"))
			str = &ss->pdnd_key;
		else if (!strcmp(a, "--send-pa-tax-id"))
			str = &ss->pa_tax_id;
		else if (!strcmp(a, "--send-accept-ms"))
			num = &ss->accept_ms;
		else if (!strcmp(a, "--send-step-ms"))
			num = &ss->step_ms;
		else if (!strcmp(a, "--send-stream-interval-ms"))
			num = &ss->stream_interval_ms;
		else if (!strcmp(a, "--send-legal-fact-retry"))
			num = &ss->legal_fact_retry;
		else if (!strcmp(a, "--send-cancel-ms"))
			num = &ss->cancel_ms;
		else if (!strcmp(a, "--send-corrupt-notice"))
			str = &ss->corrupt_notice;
		else if (!strcmp(a, "--send-stream-get-fault")) {
			if (opt_stream_get_fault(a, v, &ss->stream_get_fault) < 0)
				return -1;
			i++;
			continue;
		}
		if (!str && !num) {
			fprintf(stderr, "send-sim: unknown option '%s' (try --help)\n", a);
			return -1;
		}
		if (str) {
			if (!v || !*v) {
				fprintf(stderr, "send-sim: %s needs a value\n", a);
				return -1;
			}
			free(*str);
			*str = sb_xstrdup(v);
		} else if (opt_num(a, v, num == &ss->legal_fact_retry ? 100 : 3600000, num) < 0) {
			return -1;
		}
		i++;
	}
	argv[out] = NULL;
	*argc = out;
	if (!digits_only(ss->pa_tax_id) || strlen(ss->pa_tax_id) != 11) {
		fprintf(stderr, "send-sim: --send-pa-tax-id must be 11 digits\n");
		return -1;
	}
	return 0;
}

/* ---- replies ------------------------------------------------------------- */

int64_t ss_now_ms(void)
{
	return sb_now_ms();
}

void ss_iso(int64_t ms, char *out, size_t n)
{
	char base[32];

	sb_time_iso8601(ms / 1000, base, sizeof(base));
	/* "…:ssZ" -> "…:ss.mmmZ": SEND's timestamps carry milliseconds. */
	base[strlen(base) - 1] = '\0';
	snprintf(out, n, "%s.%03dZ", base, (int)(ms % 1000));
}

static int dump_to_buf(const char *p, size_t n, void *data)
{
	return sb_buf_add(data, p, n) < 0 ? -1 : 0;
}

void ss_reply(struct sim_response *rs, unsigned status, json_t *v)
{
	/* Straight into the reply: no intermediate string, no printf over a whole page. */
	rs->status = status;
	sim_reply_type(rs, "application/json");
	sb_buf_reset(&rs->body);
	if (!v || json_dump_callback(v, dump_to_buf, &rs->body,
				     JSON_COMPACT | JSON_PRESERVE_ORDER) < 0) {
		sb_buf_reset(&rs->body);
		sb_buf_adds(&rs->body, "null");
	}
	json_decref(v);
}

static json_t *problem_obj(unsigned status, json_t *errors)
{
	char ts[40], trace[37];
	json_t *p = json_object();

	ss_iso(ss_now_ms(), ts, sizeof(ts));
	sb_uuid4(trace);
	json_object_set_new(p, "status", json_integer(status));
	json_object_set_new(p, "title", json_string(status == 409 ? "Conflict" :
						     status == 404 ? "Not Found" : "Bad Request"));
	json_object_set_new(p, "detail", json_string(status == 409 ? "Duplicated notification" :
						      "See errors for details"));
	json_object_set_new(p, "traceId", json_string(trace));
	json_object_set_new(p, "timestamp", json_string(ts));
	json_object_set_new(p, "errors", errors);
	return p;
}

static json_t *error_item(const char *code, const char *element, const char *detail)
{
	json_t *e = json_object();

	json_object_set_new(e, "code", json_string(code));
	if (element)
		json_object_set_new(e, "element", json_string(element));
	if (detail)
		json_object_set_new(e, "detail", json_string(detail));
	return e;
}

void ss_problem(struct sim_response *rs, unsigned status, const char *code, const char *element,
		const char *detail)
{
	json_t *errs = json_array();

	json_array_append_new(errs, error_item(code, element, detail));
	ss_reply(rs, status, problem_obj(status, errs));
	sim_reply_type(rs, "application/problem+json");
}

static void s3_error(struct sim_response *rs, unsigned status, const char *code, const char *msg)
{
	rs->status = status;
	sim_reply_type(rs, "application/xml");
	sb_buf_reset(&rs->body);
	sb_buf_addf(&rs->body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
		    "<Message>%s</Message></Error>", code, msg);
}

/* ---- lookups ------------------------------------------------------------- */

void ss_unique_hex(struct sim_send *ss, bool secret, char out[33])
{
	snprintf(out, 33, "%s%016llx", ss->salt[secret], (unsigned long long)++ss->counter);
}

void ss_index_add(json_t **idx, const char *key, size_t i)
{
	json_t *arr;
	size_t n;

	if (!*idx)
		*idx = json_object();
	arr = json_object_get(*idx, key);
	if (!arr) {
		arr = json_array();
		/* Keys are request data: not necessarily UTF-8, and that is no reason to refuse. */
		json_object_set_new_nocheck(*idx, key, arr);
	}
	n = json_array_size(arr);
	if (!n || json_integer_value(json_array_get(arr, n - 1)) != (json_int_t)i)
		json_array_append_new(arr, json_integer((json_int_t)i));
}

const json_t *ss_index_get(const json_t *idx, const char *key)
{
	return idx && key ? json_object_get(idx, key) : NULL;
}

void ss_activate(struct sim_send *ss, size_t i)
{
	size_t at;

	ss->notifs[i].next_due = 0;
	if (ss->notifs[i].active)
		return;
	ss->notifs[i].active = true;
	ss->active = sb_xrealloc(ss->active, (ss->nactive + 1) * sizeof(*ss->active));
	/* Kept ascending, so that due steps are applied in the order a full scan had. */
	for (at = ss->nactive; at > 0 && ss->active[at - 1] > i; at--)
		ss->active[at] = ss->active[at - 1];
	ss->active[at] = i;
	ss->nactive++;
}

struct ss_file *ss_file_find(struct sim_send *ss, const char *key)
{
	const json_t *v;
	size_t k;

	if (key && !strncmp(key, "safestorage://", 14))
		key += 14;
	json_array_foreach(ss_index_get(ss->by_file, key), k, v) {
		struct ss_file *f = &ss->files[json_integer_value(v)];

		if (!strcmp(f->key, key))
			return f;
	}
	return NULL;
}

struct ss_notif *ss_notif_by_iun(struct sim_send *ss, const char *iun)
{
	const json_t *v;
	size_t k;

	json_array_foreach(ss_index_get(ss->by_iun, iun), k, v) {
		struct ss_notif *n = &ss->notifs[json_integer_value(v)];

		if (n->state == SS_ACCEPTED && !strcmp(n->iun, iun))
			return n;
	}
	return NULL;
}

/* ---- the API gateway ------------------------------------------------------ */

/*
 * pn-auth-fleet's apikeyAuthorizerV2: the key decides whether a voucher
 * must come (pdnd=true) or must not (pdnd=false). The voucher is checked
 * for shape and typ=at+jwt; its signature is PDND's sim's business.
 */
static bool voucher_shape_ok(const char *tok)
{
	const char *dot = strchr(tok, '.');
	struct sb_buf hdr = SB_BUF_INIT(4096);
	json_t *h = NULL;
	bool ok = false;

	if (!dot || !strchr(dot + 1, '.') || strchr(strchr(dot + 1, '.') + 1, '.'))
		return false;
	if (sb_base64url_decode(tok, (size_t)(dot - tok), &hdr) == 0 &&
	    sb_json_parse(hdr.buf, hdr.len, 4096, "jwt header", &h, NULL) == 0) {
		const char *typ = json_string_value(json_object_get(h, "typ"));

		ok = typ && !strcmp(typ, "at+jwt");
	}
	json_decref(h);
	sb_buf_release(&hdr);
	return ok;
}

static bool auth_ok(struct sim_send *ss, const struct sim_request *rq, struct sim_response *rs)
{
	const char *key = sim_header(rq, "x-api-key");
	const char *authz = sim_header(rq, "Authorization");
	bool pdnd;

	if (!key || !*key) {
		sim_reply_json(rs, 401, "{\"message\":\"Unauthorized\"}");
		return false;
	}
	if (!strcmp(key, ss->api_key))
		pdnd = false;
	else if (!strcmp(key, ss->pdnd_key))
		pdnd = true;
	else {
		sim_reply_json(rs, 403, "%s", SS_GATEWAY_DENY);
		return false;
	}
	if (!pdnd && authz) {
		sim_reply_json(rs, 403, "%s", SS_GATEWAY_DENY);
		return false;
	}
	if (pdnd && (!authz || strncmp(authz, "Bearer ", 7) || !voucher_shape_ok(authz + 7))) {
		sim_reply_json(rs, 403, "%s", SS_GATEWAY_DENY);
		return false;
	}
	return true;
}

/* ---- preload and upload -------------------------------------------------- */

static void preload(struct sim *s, struct sim_send *ss, const struct sim_request *rq,
		    struct sim_response *rs)
{
	json_t *body = NULL, *out = NULL, *it;
	size_t i;

	if (sb_json_parse(rq->body, rq->body_len, SB_MAX_JSON_BODY, "preload", &body, NULL) < 0 ||
	    !json_is_array(body)) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER", "body", "must be a JSON array");
		goto done;
	}
	if (json_array_size(body) < 1 || json_array_size(body) > 15) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER_SIZE", "body",
			   "size must be between 1 and 15");
		goto done;
	}
	json_array_foreach(body, i, it) {
		const char *idx = json_string_value(json_object_get(it, "preloadIdx"));
		const char *ct = json_string_value(json_object_get(it, "contentType"));
		const char *sha = json_string_value(json_object_get(it, "sha256"));
		char el[48];
		bool idx_ok = idx && *idx && strlen(idx) <= 512;

		for (const char *p = idx; idx_ok && *p; p++)
			idx_ok = isalnum((unsigned char)*p) || strchr("._-", *p);
		snprintf(el, sizeof(el), "[%zu]", i);
		if (!json_is_object(it) || !idx_ok) {
			ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER_PATTERN", el,
				   "preloadIdx must match ^[a-zA-Z0-9._-]{1,512}$");
			goto done;
		}
		if (!ct || (strcmp(ct, "application/pdf") && strcmp(ct, "application/json"))) {
			ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER", el,
				   "contentType must be application/pdf or application/json");
			goto done;
		}
		if (!sha || !p_sha256(sha)) {
			ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER_REQUIRED", el,
				   "sha256 must be the base64 of a SHA-256 digest");
			goto done;
		}
	}
	out = json_array();
	json_array_foreach(body, i, it) {
		const char *ct = json_string_value(json_object_get(it, "contentType"));
		bool pdf = !strcmp(ct, "application/pdf");
		struct ss_file *f;
		char hex[33], url[256];
		json_t *o = json_object();

		ss->files = sb_xrealloc(ss->files, (ss->nfiles + 1) * sizeof(*ss->files));
		f = &ss->files[ss->nfiles++];
		memset(f, 0, sizeof(*f));
		ss_unique_hex(ss, false, hex);
		snprintf(f->key, sizeof(f->key), "%s-%s.%s", pdf ? "PN_NOTIFICATION_ATTACHMENTS" :
			 "PN_F24_META", hex, pdf ? "pdf" : "json");
		ss_index_add(&ss->by_file, f->key, ss->nfiles - 1);
		ss_unique_hex(ss, true, hex);
		snprintf(f->secret, sizeof(f->secret), "%s", hex);
		snprintf(f->content_type, sizeof(f->content_type), "%s", ct);
		snprintf(f->sha256, sizeof(f->sha256), "%s",
			 json_string_value(json_object_get(it, "sha256")));
		snprintf(url, sizeof(url), "%s/sim-s3/%s", s->base_url, f->key);
		json_object_set_new(o, "preloadIdx", json_copy(json_object_get(it, "preloadIdx")));
		json_object_set_new(o, "secret", json_string(f->secret));
		json_object_set_new(o, "httpMethod", json_string("PUT"));
		json_object_set_new(o, "url", json_string(url));
		json_object_set_new(o, "key", json_string(f->key));
		json_array_append_new(out, o);
	}
	ss_reply(rs, 200, out);
done:
	json_decref(body);
}

static void s3_put(struct sim_send *ss, const char *key, const struct sim_request *rq,
		   struct sim_response *rs)
{
	struct ss_file *f = ss_file_find(ss, key);
	const char *secret = sim_header(rq, "x-amz-meta-secret");
	const char *sum = sim_header(rq, "x-amz-checksum-sha256");
	const char *ct = sim_header(rq, "Content-Type");
	unsigned char d[SB_SHA256_LEN];
	struct sb_buf b = SB_BUF_INIT(64);

	if (!f) {
		s3_error(rs, 404, "NoSuchKey", "The specified key does not exist.");
		return;
	}
	if (strcmp(rq->method, "PUT")) {
		s3_error(rs, 405, "MethodNotAllowed", "The method is not allowed for this url.");
		return;
	}
	if (!secret || strcmp(secret, f->secret) || !ct || strcmp(ct, f->content_type)) {
		s3_error(rs, 400, "SignatureDoesNotMatch",
			 "The request signature we calculated does not match the signature you "
			 "provided.");
		return;
	}
	if (!sum || !p_sha256(sum)) {
		s3_error(rs, 400, "InvalidRequest",
			 "Value for x-amz-checksum-sha256 header is invalid.");
		return;
	}
	if (strcmp(sum, f->sha256)) {
		/*
		 * The checksum is part of the pre-signed request: a different
		 * one breaks the signature.
		 */
		s3_error(rs, 400, "SignatureDoesNotMatch",
			 "The request signature we calculated does not match the signature you "
			 "provided.");
		return;
	}
	sb_sha256(rq->body, rq->body_len, d);
	sb_base64_encode(d, sizeof(d), &b);
	if (strcmp(sb_buf_cstr(&b), sum)) {
		sb_buf_release(&b);
		s3_error(rs, 400, "BadDigest",
			 "The SHA256 you specified did not match the calculated checksum.");
		return;
	}
	snprintf(f->actual, sizeof(f->actual), "%s", sb_buf_cstr(&b));
	sb_buf_release(&b);
	/* Kept as received, not copied: a download in flight keeps the old bytes alive. */
	sim_blob_unref(f->blob);
	f->blob = sim_request_take_body(rq);
	f->uploaded = true;
	snprintf(f->version, sizeof(f->version), "v%llu.sim",
		 (unsigned long long)++ss->counter);
	rs->status = 200;
	sim_reply_type(rs, NULL);
	sb_buf_reset(&rs->body);
	sim_reply_header(rs, "x-amz-version-id: %s", f->version);
}

static void s3_request(struct sim_send *ss, const struct sim_request *rq, struct sim_response *rs)
{
	const char *key = rq->path + strlen("/sim-s3/");

	/*
	 * Pre-signed URLs: an API key or a Bearer token here is a client bug
	 * (and S3 refuses it).
	 */
	if (sim_header(rq, "x-api-key") || sim_header(rq, "Authorization")) {
		ss->bad_auth_uploads++;
		s3_error(rs, 400, "InvalidArgument",
			 "Only one auth mechanism allowed; "
			 "API credentials sent to a pre-signed url");
		return;
	}
	if (!strcmp(rq->method, "GET")) {
		struct ss_file *f = ss_file_find(ss, key);

		if (!f || !f->uploaded) {
			s3_error(rs, 404, "NoSuchKey", "The specified key does not exist.");
			return;
		}
		rs->status = 200;
		sim_reply_type(rs, f->content_type);
		sb_buf_reset(&rs->body);
		if (!sim_query(rq, "corrupt")) {
			rs->blob = sim_blob_ref(f->blob);
			return;
		}
		/* --send-corrupt-notice: SEND's copy is not what was uploaded. */
		sb_buf_add(&rs->body, sim_blob_data(f->blob), sim_blob_len(f->blob));
		if (rs->body.len)
			rs->body.buf[rs->body.len - 1] ^= 0x01;
		return;
	}
	s3_put(ss, key, rq, rs);
}

/* ---- the create request: schema (NewNotificationRequestV25) ------------- */

enum ft { F_STR, F_INT, F_BOOL, F_OBJ, F_ARR };

struct fspec {
	const char *name;
	enum ft t;
	bool req;
	size_t minl, maxl;                 /* string length / array size */
	bool (*pat)(const char *);
	const char *enums;                 /* "A|B|C" */
	const struct fspec *sub;           /* object members, or array items' members */
	int64_t minv, maxv;                /* integers */
	enum ft item;                      /* array items */
};

#define END { NULL, F_STR, false, 0, 0, NULL, NULL, NULL, 0, 0, F_STR }
#define S(n, r, lo, hi, p, e) { n, F_STR, r, lo, hi, p, e, NULL, 0, 0, F_STR }
#define O(n, r, sub) { n, F_OBJ, r, 0, 0, NULL, NULL, sub, 0, 0, F_STR }
#define A(n, r, lo, hi, sub, it, e) { n, F_ARR, r, lo, hi, NULL, e, sub, 0, 0, it }
#define I(n, r, lo, hi) { n, F_INT, r, 0, 0, NULL, NULL, NULL, lo, hi, F_STR }
#define B(n, r) { n, F_BOOL, r, 0, 0, NULL, NULL, NULL, 0, 0, F_STR }

static const struct fspec f_digests[] = { S("sha256", true, 44, 44, p_sha256, NULL), END };
static const struct fspec f_ref[] = {
	S("key", true, 1, 512, p_key, NULL), S("versionToken", true, 1, 256, p_oneline, NULL), END
};
static const struct fspec f_pdf_att[] = {
	O("digests", true, f_digests), S("contentType", true, 1, 64, NULL, "application/pdf"),
	O("ref", true, f_ref), END
};
static const struct fspec f_json_att[] = {
	O("digests", true, f_digests), S("contentType", true, 1, 64, NULL, "application/json"),
	O("ref", true, f_ref), END
};
static const struct fspec f_document[] = {
	O("digests", true, f_digests), S("contentType", true, 1, 64, NULL, "application/pdf"),
	O("ref", true, f_ref), S("title", false, 1, 512, p_oneline, NULL),
	S("docIdx", false, 1, 3, p_digits3, NULL), END
};
static const struct fspec f_pagopa[] = {
	S("noticeCode", true, 18, 18, p_digits18, NULL),
	S("creditorTaxId", true, 11, 11, p_digits11, NULL), B("applyCost", true),
	O("attachment", false, f_pdf_att), END
};
static const struct fspec f_f24[] = {
	S("title", true, 1, 512, p_oneline, NULL), B("applyCost", true),
	O("metadataAttachment", true, f_json_att), END
};
static const struct fspec f_payment[] = {
	O("pagoPa", false, f_pagopa), O("f24", false, f_f24), END
};
static const struct fspec f_domicile[] = {
	S("type", true, 1, 8, NULL, "PEC"), S("address", true, 1, 320, p_email, NULL), END
};
static const struct fspec f_address[] = {
	S("at", false, 1, 44, p_oneline, NULL), S("address", true, 2, 1024, p_oneline, NULL),
	S("addressDetails", false, 1, 1024, p_oneline, NULL), S("zip", false, 1, 15, p_zip, NULL),
	S("municipality", true, 2, 256, p_oneline, NULL),
	S("municipalityDetails", false, 1, 256, p_oneline, NULL),
	S("province", false, 1, 256, p_oneline, NULL),
	S("foreignState", false, 1, 256, p_oneline, NULL), END
};
static const struct fspec f_recipient[] = {
	S("recipientType", true, 2, 2, NULL, "PF|PG"), S("taxId", true, 11, 16, p_taxid, NULL),
	S("denomination", true, 1, 88, p_latin1, NULL), O("digitalDomicile", false, f_domicile),
	O("physicalAddress", false, f_address), A("payments", false, 0, 15, f_payment, F_OBJ, NULL),
	END
};
static const struct fspec f_request[] = {
	S("idempotenceToken", false, 1, 256, p_printable, NULL),
	S("paProtocolNumber", true, 1, 256, p_oneline, NULL),
	S("subject", true, 1, 134, p_oneline, NULL), S("abstract", false, 1, 1024, p_oneline, NULL),
	A("recipients", true, 1, 15, f_recipient, F_OBJ, NULL),
	A("documents", true, 1, 15, f_document, F_OBJ, NULL),
	S("notificationFeePolicy", true, 1, 32, NULL, "FLAT_RATE|DELIVERY_MODE"),
	S("cancelledIun", false, 25, 25, p_iun, NULL),
	S("physicalCommunicationType", true, 1, 32, NULL,
	  "AR_REGISTERED_LETTER|REGISTERED_LETTER_890"),
	S("senderDenomination", true, 1, 88, p_oneline, NULL),
	S("senderTaxId", true, 11, 11, p_digits11, NULL),
	S("group", false, 1, 1024, p_printable, NULL),
	S("taxonomyCode", true, 7, 7, p_taxonomy, NULL),
	I("amount", false, 0, INT32_MAX), S("paymentExpirationDate", false, 10, 10, p_date, NULL),
	I("paFee", false, 0, 100), I("vat", false, 0, 100),
	S("pagoPaIntMode", false, 1, 8, NULL, "NONE|SYNC|ASYNC"),
	A("additionalLanguages", false, 0, 1, NULL, F_STR, "DE|SI|FR"),
	END
};

static bool in_enum(const char *enums, const char *v)
{
	size_t n = strlen(v);

	for (const char *p = enums; p; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL)
		if (!strncmp(p, v, n) && (p[n] == '|' || p[n] == '\0'))
			return true;
	return false;
}

static void add_err(json_t *errs, const char *code, const char *el, const char *detail)
{
	if (json_array_size(errs) < 50)
		json_array_append_new(errs, error_item(code, el, detail));
}

static void check_obj(const json_t *o, const struct fspec *spec, const char *path, json_t *errs);

static void check_value(const json_t *v, const struct fspec *f, const char *el, enum ft t,
			json_t *errs)
{
	switch (t) {
	case F_STR: {
		const char *s = json_string_value(v);
		size_t n;

		if (!json_is_string(v)) {
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER_TYPE_MISMATCH", el,
				"expected a string");
			return;
		}
		n = sb_utf8_valid(s, strlen(s)) ? sb_utf8_len(s) : strlen(s);
		if (n == 0)
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el, "must not be empty");
		else if (f->enums && !in_enum(f->enums, s))
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el, "not an allowed value");
		else if (f->maxl && (n < f->minl || n > f->maxl))
			add_err(errs, n > f->maxl ? "PN_GENERIC_INVALIDPARAMETER_MAX_LENGTH" :
				"PN_GENERIC_INVALIDPARAMETER_MIN_LENGTH", el,
				"length out of range");
		else if (f->pat && !f->pat(s))
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER_PATTERN", el,
				"does not match the pattern");
		return;
	}
	case F_INT:
		if (!json_is_integer(v))
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER_TYPE_MISMATCH", el,
				"expected an integer");
		else if (json_integer_value(v) < f->minv || json_integer_value(v) > f->maxv)
			add_err(errs, json_integer_value(v) < f->minv ?
				"PN_GENERIC_INVALIDPARAMETER_MIN" :
				"PN_GENERIC_INVALIDPARAMETER_MAX",
				el, "out of range");
		return;
	case F_BOOL:
		if (!json_is_boolean(v))
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER_TYPE_MISMATCH", el,
				"expected a boolean");
		return;
	case F_OBJ:
		if (!json_is_object(v))
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER_TYPE_MISMATCH", el,
				"expected an object");
		else
			check_obj(v, f->sub, el, errs);
		return;
	case F_ARR: {
		size_t i;
		json_t *it;

		if (!json_is_array(v)) {
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER_TYPE_MISMATCH", el,
				"expected an array");
			return;
		}
		if (json_array_size(v) < f->minl || json_array_size(v) > f->maxl) {
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER_SIZE", el, "size out of range");
			return;
		}
		json_array_foreach(v, i, it) {
			char sub[256];
			struct fspec item = *f;

			snprintf(sub, sizeof(sub), "%s[%zu]", el, i);
			item.maxl = f->item == F_STR ? 64 : 0;
			item.minl = 1;
			if (json_is_null(it))
				add_err(errs, "PN_GENERIC_INVALIDPARAMETER", sub,
					"must not be null");
			else
				check_value(it, &item, sub, f->item, errs);
		}
		return;
	}
	}
}

static void check_obj(const json_t *o, const struct fspec *spec, const char *path, json_t *errs)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)(uintptr_t)o, k, v) {   /* jansson's macro is not const */
		const struct fspec *f = NULL;
		char el[256];

		snprintf(el, sizeof(el), "%s%s%s", path, *path ? "." : "", k);
		for (const struct fspec *p = spec; p->name && !f; p++)
			if (!strcmp(p->name, k))
				f = p;
		if (!f)
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el, "unknown field");
		else if (json_is_null(v))
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el, "must not be null");
		else
			check_value(v, f, el, f->t, errs);
	}
	for (const struct fspec *p = spec; p->name; p++) {
		char el[256];

		if (p->req && !json_object_get(o, p->name)) {
			snprintf(el, sizeof(el), "%s%s%s", path, *path ? "." : "", p->name);
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER_REQUIRED", el, "required");
		}
	}
}

/* ---- the create request: server rules (NotificationReceiverValidator) ---- */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void check_ref_prefix(const json_t *att, const char *el, json_t *errs)
{
	const char *ct = jstr(att, "contentType"), *key = jstr(json_object_get(att, "ref"), "key");
	const char *want;

	if (!ct || !key)
		return;
	if (!strncmp(key, "safestorage://", 14))
		key += 14;
	want = !strcmp(ct, "application/json") ? "PN_F24_META" : "PN_NOTIFICATION_ATTACHMENTS";
	if (strncmp(key, want, strlen(want)))
		add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el,
			"file key prefix does not match the content type");
}

static void server_rules(struct sim_send *ss, const json_t *req, json_t *errs)
{
	const json_t *recs = json_object_get(req, "recipients"), *docs = json_object_get(req,
								"documents");
	const char *policy = jstr(req, "notificationFeePolicy");
	bool delivery = policy && !strcmp(policy, "DELIVERY_MODE");
	size_t npagopa = 0, npagopa_cost = 0, nf24 = 0, nf24_cost = 0, i;
	json_t *r, *d;

	if (strcmp(jstr(req, "senderTaxId"), ss->pa_tax_id))
		add_err(errs, "PN_GENERIC_INVALIDPARAMETER", "senderTaxId",
			"does not match the sender PA");
	if (delivery && (!json_object_get(req, "paFee") || !json_object_get(req, "vat")))
		add_err(errs, "PN_GENERIC_INVALIDPARAMETER", "notificationFeePolicy",
			"DELIVERY_MODE requires paFee and vat");
	json_array_foreach(recs, i, r) {
		const json_t *addr = json_object_get(r, "physicalAddress");
		const json_t *pays = json_object_get(r, "payments");
		const char *fs;
		char el[96];
		size_t k;
		json_t *p;

		snprintf(el, sizeof(el), "recipients[%zu]", i);
		if (!strcmp(jstr(r, "recipientType"), "PG") && !digits_only(jstr(r, "taxId")))
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el,
				"taxId of a PG must be numeric");
		for (size_t j = 0; j < i; j++)
			if (!strcmp(jstr(r, "taxId"), jstr(json_array_get(recs, j), "taxId")))
				add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el,
					"duplicated taxId");
		if (!addr) {
			add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el,
				"physicalAddress is required");
		} else {
			fs = jstr(addr, "foreignState");
			if ((!fs || !strncasecmp(fs, "ITAL", 4)) && !jstr(addr, "province"))
				add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el,
					"province is required for an Italian address");
		}
		json_array_foreach(pays, k, p) {
			const json_t *pg = json_object_get(p, "pagoPa"),
				*f24 = json_object_get(p, "f24");
			char pel[128];

			snprintf(pel, sizeof(pel), "%s.payments[%zu]", el, k);
			if (!pg && !f24)
				add_err(errs, "PN_GENERIC_INVALIDPARAMETER", pel,
					"needs pagoPa or f24");
			if (pg) {
				npagopa++;
				npagopa_cost += json_is_true(json_object_get(pg, "applyCost"));
				if (json_object_get(pg, "attachment"))
					check_ref_prefix(json_object_get(pg, "attachment"),
							 pel, errs);
				/* A creditorTaxId + noticeCode pair may not repeat in a request. */
				for (size_t j = 0; j <= i; j++) {
					const json_t *pj = json_object_get(json_array_get(recs, j),
									   "payments");
					size_t l, lim = j == i ? k : json_array_size(pj);

					for (l = 0; l < lim; l++) {
						const json_t *q =
							json_object_get(json_array_get(pj, l),
									"pagoPa");

						if (q && !strcmp(jstr(q, "noticeCode"),
								 jstr(pg, "noticeCode")) &&
						    !strcmp(jstr(q, "creditorTaxId"),
							    jstr(pg, "creditorTaxId")))
							add_err(errs, "PN_GENERIC_INVALIDPARAMETER",
								pel, "noticeCode repeated");
					}
				}
			}
			if (f24) {
				nf24++;
				nf24_cost += json_is_true(json_object_get(f24, "applyCost"));
				check_ref_prefix(json_object_get(f24, "metadataAttachment"),
						 pel, errs);
			}
		}
	}
	if (delivery && ((npagopa && !npagopa_cost) || (nf24 && !nf24_cost)))
		add_err(errs, "PN_GENERIC_INVALIDPARAMETER", "notificationFeePolicy",
			"DELIVERY_MODE needs applyCost=true on at least one payment");
	if (!delivery && (npagopa_cost || nf24_cost))
		add_err(errs, "PN_GENERIC_INVALIDPARAMETER", "notificationFeePolicy",
			"FLAT_RATE allows no applyCost=true");
	json_array_foreach(docs, i, d) {
		char el[48];

		snprintf(el, sizeof(el), "documents[%zu]", i);
		check_ref_prefix(d, el, errs);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(jstr(json_object_get(d, "ref"), "key"),
				    jstr(json_object_get(json_array_get(docs, j), "ref"), "key")))
				add_err(errs, "PN_GENERIC_INVALIDPARAMETER", el,
					"same file as an earlier document");
	}
}

/* ---- create, status, ledger -------------------------------------------- */

static void make_iun(struct sim *s, char out[26])
{
	char date[16];
	char l[13];

	for (int i = 0; i < 12; i++)
		l[i] = (char)('A' + sim_rand(s, 26));
	sb_time_date(sb_now(), date, sizeof(date));
	snprintf(out, 26, "%.4s-%.4s-%.4s-%.4s%.2s-%c-%u", l, l + 4, l + 8, date, date + 5,
		 (char)('A' + sim_rand(s, 26)), (unsigned)sim_rand(s, 10));
}

/* The index keys of a pagoPa notice and of a protocol number with its token (owned). */
static char *notice_key(const char *creditor, const char *notice)
{
	return sb_xasprintf("%s|%s", creditor, notice);
}

static char *protocol_key(const char *proto, const char *token)
{
	return sb_xasprintf("%s\x1f%s", proto, token);
}

/* A live notice: in a notification that is not refused and not cancelled. */
static bool notice_in_use(struct sim_send *ss, const char *creditor, const char *notice)
{
	char *key = notice_key(creditor, notice);
	const json_t *v;
	size_t c;
	bool used = false;

	json_array_foreach(ss_index_get(ss->by_notice, key), c, v) {
		const struct ss_notif *n = &ss->notifs[json_integer_value(v)];
		const json_t *recs = json_object_get(n->request, "recipients"), *r;
		size_t k;

		if (n->state == SS_REFUSED || n->cancelled)
			continue;
		json_array_foreach(recs, k, r) {
			const json_t *p;
			size_t l;

			json_array_foreach(json_object_get(r, "payments"), l, p) {
				const json_t *pg = json_object_get(p, "pagoPa");

				if (pg && !strcmp(jstr(pg, "noticeCode"), notice) &&
				    !strcmp(jstr(pg, "creditorTaxId"), creditor))
					used = true;
			}
		}
		if (used)
			break;
	}
	free(key);
	return used;
}

/* Index a new notification (at i) under everything the lookups search it by. */
static void index_notif(struct sim_send *ss, size_t i)
{
	const struct ss_notif *n = &ss->notifs[i];
	const json_t *r, *p;
	size_t k, l;
	char *key = protocol_key(n->protocol, n->token);

	ss_index_add(&ss->by_protocol, key, i);
	free(key);
	ss_index_add(&ss->by_request_id, n->request_id, i);
	ss_index_add(&ss->by_iun, n->iun, i);
	json_array_foreach(json_object_get(n->request, "recipients"), k, r)
		json_array_foreach(json_object_get(r, "payments"), l, p) {
			const json_t *pg = json_object_get(p, "pagoPa");

			if (!pg)
				continue;
			key = notice_key(jstr(pg, "creditorTaxId"), jstr(pg, "noticeCode"));
			ss_index_add(&ss->by_notice, key, i);
			free(key);
		}
	ss_activate(ss, i);
}

static void create(struct sim *s, struct sim_send *ss, const struct sim_request *rq,
		   struct sim_response *rs)
{
	json_t *req = NULL, *errs = json_array(), *out;
	struct ss_notif *n;
	const char *proto, *token;
	struct sb_buf b64 = SB_BUF_INIT(64);

	if (sb_json_parse(rq->body, rq->body_len, SB_MAX_JSON_BODY, "request", &req, NULL) < 0 ||
	    !json_is_object(req)) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER", "body", "not a JSON object");
		goto done;
	}
	check_obj(req, f_request, "", errs);
	if (!json_array_size(errs))
		server_rules(ss, req, errs);
	if (json_array_size(errs)) {
		ss_reply(rs, 400, problem_obj(400, errs));
		sim_reply_type(rs, "application/problem+json");
		errs = NULL;
		goto done;
	}
	proto = jstr(req, "paProtocolNumber");
	token = jstr(req, "idempotenceToken") ? jstr(req, "idempotenceToken") : "";
	{
		char *key = protocol_key(proto, token);
		const json_t *v;
		size_t c;
		bool dup = false;

		json_array_foreach(ss_index_get(ss->by_protocol, key), c, v) {
			n = &ss->notifs[json_integer_value(v)];
			dup = dup || (n->state != SS_REFUSED && !strcmp(n->protocol, proto) &&
				      !strcmp(n->token, token));
		}
		free(key);
		if (dup) {
			ss_problem(rs, 409, "PN_GENERIC_INVALIDPARAMETER_DUPLICATED",
				   "senderPaId##paProtocolNumber##idempotenceToken",
				   "Duplicated notification for senderPaId##paProtocolNumber##"
				   "idempotenceToken");
			goto done;
		}
	}
	{
		const json_t *r, *p;
		size_t i, k;

		json_array_foreach(json_object_get(req, "recipients"), i, r)
			json_array_foreach(json_object_get(r, "payments"), k, p) {
				const json_t *pg = json_object_get(p, "pagoPa");

				if (pg && notice_in_use(ss, jstr(pg, "creditorTaxId"),
							jstr(pg, "noticeCode"))) {
					ss_problem(rs, 409,
						   "PN_GENERIC_INVALIDPARAMETER_DUPLICATED",
						   "creditorTaxId##noticeCode",
						   "noticeCode already used by "
						   "another notification");
					goto done;
				}
			}
	}
	ss->notifs = sb_xrealloc(ss->notifs, (ss->nnotifs + 1) * sizeof(*ss->notifs));
	n = &ss->notifs[ss->nnotifs++];
	memset(n, 0, sizeof(*n));
	do {
		make_iun(s, n->iun);
	} while (ss_notif_by_iun(ss, n->iun));
	/* notificationRequestId is the base64 of the IUN (SUMMARY §4: not to be relied on). */
	sb_base64_encode(n->iun, strlen(n->iun), &b64);
	snprintf(n->request_id, sizeof(n->request_id), "%s", sb_buf_cstr(&b64));
	n->protocol = sb_xstrdup(proto);
	n->token = sb_xstrdup(token);
	n->request = req;
	req = NULL;
	n->created_ms = ss_now_ms();
	n->state = SS_WAITING;
	n->timeline = json_array();
	n->history = json_array();
	n->pending = json_array();
	snprintf(n->status, sizeof(n->status), "IN_VALIDATION");
	index_notif(ss, ss->nnotifs - 1);
	out = json_object();
	json_object_set_new(out, "notificationRequestId", json_string(n->request_id));
	json_object_set_new(out, "paProtocolNumber", json_string(n->protocol));
	if (*n->token)
		json_object_set_new(out, "idempotenceToken", json_string(n->token));
	ss_reply(rs, 202, out);
done:
	sb_buf_release(&b64);
	json_decref(errs);
	json_decref(req);
}

static void request_status(struct sim *s, struct sim_send *ss, const struct sim_request *rq,
			   struct sim_response *rs)
{
	const char *id = sim_query(rq, "notificationRequestId");
	const char *proto = sim_query(rq, "paProtocolNumber");
	const char *token = sim_query(rq, "idempotenceToken");
	struct ss_notif *n = NULL;
	json_t *out;

	if (!id && !proto) {
		ss_problem(rs, 400, "PN_GENERIC_INVALIDPARAMETER", "notificationRequestId",
			   "notificationRequestId or paProtocolNumber is required");
		return;
	}
	ss_advance(s, ss, ss_now_ms());
	{
		char *key = id ? NULL : protocol_key(proto, token ? token : "");
		const json_t *cands = ss_index_get(id ? ss->by_request_id : ss->by_protocol,
						   id ? id : key);

		/* The latest request that matches. */
		for (size_t i = json_array_size(cands); i > 0 && !n; i--) {
			struct ss_notif *c = &ss->notifs[json_integer_value(json_array_get(cands,
											  i - 1))];

			if (id ? !strcmp(c->request_id, id) :
			    !strcmp(c->protocol, proto) && !strcmp(c->token, token ? token : ""))
				n = c;
		}
		free(key);
	}
	if (!n) {
		ss_problem(rs, 404, "PN_DELIVERY_NOTIFICATION_NOT_FOUND", NULL,
			   "notification request not found");
		return;
	}
	/* A shallow copy: only its own members are set, the request's values are shared. */
	out = json_copy(n->request);
	json_object_set_new(out, "notificationRequestId", json_string(n->request_id));
	json_object_set_new(out, "notificationRequestStatus",
			    json_string(n->state == SS_WAITING ? "WAITING" :
					n->state == SS_ACCEPTED ? "ACCEPTED" : "REFUSED"));
	if (n->state == SS_WAITING) {
		int64_t left = n->created_ms + ss->accept_ms - ss_now_ms();

		/* Seconds, rounded up: never invite a poll before the answer can change. */
		json_object_set_new(out, "retryAfter",
				    json_integer(left <= 0 ? 1 : (left + 999) / 1000));
	} else if (n->state == SS_ACCEPTED) {
		json_object_set_new(out, "iun", json_string(n->iun));
	} else {
		json_object_set(out, "errors", n->errors);
	}
	ss_reply(rs, 200, out);
}

static void ledger(struct sim_send *ss, const struct sim_request *rq, struct sim_response *rs)
{
	const char *proto = sim_query(rq, "paProtocolNumber");
	size_t requests = 0, accepted = 0, refused = 0, waiting = 0, cancelled = 0;
	json_t *out = json_object();

	for (size_t i = 0; i < ss->nnotifs; i++) {
		const struct ss_notif *n = &ss->notifs[i];

		if (proto && strcmp(n->protocol, proto))
			continue;
		requests++;
		accepted += n->state == SS_ACCEPTED;
		refused += n->state == SS_REFUSED;
		waiting += n->state == SS_WAITING;
		cancelled += n->cancelled;
	}
	if (proto)
		json_object_set_new(out, "paProtocolNumber", json_string(proto));
	json_object_set_new(out, "requests", json_integer((json_int_t)requests));
	/* A notification is a request that was not refused (accepted or still in validation). */
	json_object_set_new(out, "notifications", json_integer((json_int_t)(accepted + waiting)));
	json_object_set_new(out, "accepted", json_integer((json_int_t)accepted));
	json_object_set_new(out, "refused", json_integer((json_int_t)refused));
	json_object_set_new(out, "cancelled", json_integer((json_int_t)cancelled));
	json_object_set_new(out, "files", json_integer((json_int_t)ss->nfiles));
	json_object_set_new(out, "authHeadersOnPresignedUrls",
			    json_integer((json_int_t)ss->bad_auth_uploads));
	ss_reply(rs, 200, out);
}

/* ---- routing ------------------------------------------------------------ */

static bool is(const struct sim_request *rq, const char *method, const char *path)
{
	return !strcmp(rq->method, method) && !strcmp(rq->path, path);
}

bool sim_send_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs)
{
	struct sim_send *ss = s->send;
	bool claimed = true;

	if (!ss)
		return false;
	if (strncmp(rq->path, "/delivery", 9) && strncmp(rq->path, "/sim-s3/", 8) &&
	    strncmp(rq->path, "/_sim/send/", 11))
		return false;
	pthread_mutex_lock(&s->lock);
	ss_advance(s, ss, ss_now_ms());
	if (!strncmp(rq->path, "/_sim/send/", 11)) {
		if (is(rq, "GET", "/_sim/send/ledger"))
			ledger(ss, rq, rs);
		else
			claimed = ss_flow_handle(s, ss, rq, rs);
	} else if (!strncmp(rq->path, "/sim-s3/", 8)) {
		if (!ss_flow_handle(s, ss, rq, rs))
			s3_request(ss, rq, rs);
	} else if (!auth_ok(ss, rq, rs)) {
		/* rs holds the gateway's refusal */
	} else if (is(rq, "POST", "/delivery/attachments/preload")) {
		preload(s, ss, rq, rs);
	} else if (is(rq, "POST", "/delivery/v2.5/requests")) {
		create(s, ss, rq, rs);
	} else if (is(rq, "GET", "/delivery/v2.5/requests")) {
		request_status(s, ss, rq, rs);
	} else {
		claimed = ss_flow_handle(s, ss, rq, rs);
	}
	pthread_mutex_unlock(&s->lock);
	return claimed;
}
