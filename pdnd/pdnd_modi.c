/*
 * ModI security headers and the e-service call: see pdnd.h.
 * Spec: ../shared/specs/PDND-SUMMARY.md sections 5, 6 and 7.
 *
 * - INTEGRITY_REST_02: the body is serialised once by the caller and the
 *   same bytes are hashed for Digest and sent; signed_headers is an array
 *   of one-key objects with digest first (GovWay refuses anything else).
 * - AUDIT_REST_02: the TrackingEvidence is built first, its SHA-256 (hex)
 *   goes into the assertion's digest claim, and the voucher obtained with
 *   it is used for this call only (it is bound to this evidence).
 * - The ModI tokens' aud is the e-service audience; when not configured it
 *   is copied from the voucher, which PDND fills with the provider's value.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sb_log.h"
#include "pdnd.h"
#include "pdnd_int.h"

int pdnd_modi_digest(const void *body, size_t len, struct sb_buf *out)
{
	unsigned char d[SB_SHA256_LEN];

	sb_sha256(body, len, d);
	if (sb_buf_adds(out, "SHA-256=") < 0)
		return SB_ETOOBIG;
	return sb_base64_encode(d, sizeof(d), out);
}

int pdnd_modi_signature(struct pdnd_client *c, const char *aud, const char *digest_header,
			const char *content_type, struct sb_buf *out, struct sb_err *err)
{
	json_t *claims, *sh;
	int rc;

	if (!aud || !*aud)
		return sb_err_set(err, SB_EINVAL, 0, "agid-jwt-signature: no audience");
	claims = pdnd_claims_base(c, aud, true);
	sh = json_array();
	json_array_append_new(sh, json_pack("{s:s}", "digest", digest_header));
	json_array_append_new(sh, json_pack("{s:s}", "content-type", content_type));
	json_object_set_new(claims, "signed_headers", sh);
	rc = pdnd_jws_sign(c, claims, out, err);
	json_decref(claims);
	return rc;
}

int pdnd_modi_tracking(struct pdnd_client *c, const char *aud, const char *purpose_id,
		       const struct pdnd_audit_ctx *who, struct sb_buf *out, struct sb_err *err)
{
	json_t *claims;
	uint64_t nonce;
	int rc;

	if (!aud || !*aud)
		return sb_err_set(err, SB_EINVAL, 0, "agid-jwt-trackingevidence: no audience");
	if (!who || !who->user_id || !*who->user_id)
		return sb_err_set(err, SB_EINVAL, 0, "agid-jwt-trackingevidence: userID missing");
	if (!who->user_location || !*who->user_location)
		return sb_err_set(err, SB_EINVAL, 0,
				  "agid-jwt-trackingevidence: userLocation missing "
				  "([pdnd] user_location)");
	if (!who->loa || !*who->loa)
		return sb_err_set(err, SB_EINVAL, 0, "agid-jwt-trackingevidence: LoA missing");
	/* dnonce: a 13-digit random number, as SEND sends it. */
	sb_random_bytes(&nonce, sizeof(nonce));
	nonce = 1000000000000ull + nonce % 9000000000000ull;
	claims = pdnd_claims_base(c, aud, false);
	json_object_set_new(claims, "purposeId", json_string(purpose_id));
	json_object_set_new(claims, "dnonce", json_integer((json_int_t)nonce));
	json_object_set_new(claims, "userID", json_string(who->user_id));
	json_object_set_new(claims, "userLocation", json_string(who->user_location));
	json_object_set_new(claims, "LoA", json_string(who->loa));
	rc = pdnd_jws_sign(c, claims, out, err);
	json_decref(claims);
	return rc;
}

static void trace_fill(const struct sb_http_resp *resp, const struct pdnd_voucher *v,
		       struct pdnd_call_trace *trace)
{
	const char *g = sb_http_resp_header(resp, "GovWay-Transaction-ID");
	char q[128];

	if (!trace)
		return;
	memset(trace, 0, sizeof(*trace));
	snprintf(trace->voucher_jti, sizeof(trace->voucher_jti), "%s", v->jti);
	if (g) {
		sb_log_quote(g, strlen(g), q, sizeof(q));
		snprintf(trace->govway_id, sizeof(trace->govway_id), "%s", q);
	}
}

static int call_once(struct pdnd_client *c, struct sb_http *h, const struct pdnd_call *call,
		     struct sb_http_resp *resp, struct pdnd_call_trace *trace, struct sb_err *err)
{
	struct sb_buf te = SB_BUF_INIT(SB_MAX_JSON_BODY), sig = SB_BUF_INIT(SB_MAX_JSON_BODY);
	struct sb_buf digest = SB_BUF_INIT(128), auth = SB_BUF_INIT(SB_MAX_JSON_BODY);
	struct sb_buf h_digest = SB_BUF_INIT(256), h_sig = SB_BUF_INIT(SB_MAX_JSON_BODY);
	struct sb_buf h_te = SB_BUF_INIT(SB_MAX_JSON_BODY), tehex = SB_BUF_INIT(65);
	struct pdnd_voucher v = { 0 };
	const char *headers[8];
	const char *aud = call->audience;
	size_t nh = 0;
	int rc;

	if (call->audit) {
		unsigned char d[SB_SHA256_LEN];

		/* The evidence needs the audience before the voucher exists: configure it. */
		if (!aud || !*aud)
			return sb_err_set(err, SB_ECONFIG, 0,
					  "audit_rest_02 needs the e-service audience configured");
		rc = pdnd_modi_tracking(c, aud, call->purpose_id, &call->who, &te, err);
		if (rc < 0)
			goto cleanup;
		sb_sha256(te.buf, te.len, d);
		sb_hex_encode(d, sizeof(d), &tehex);
		rc = pdnd_voucher_request(c, call->purpose_id, tehex.buf, &v, err);
	} else {
		rc = pdnd_voucher_get(c, call->purpose_id, &v, err);
	}
	if (rc < 0)
		goto cleanup;
	if (!aud || !*aud)
		aud = v.aud;
	sb_buf_addf(&auth, "Authorization: Bearer %s", v.token);
	headers[nh++] = auth.buf;
	headers[nh++] = "Accept: application/json";
	if (call->body)
		headers[nh++] = "Content-Type: application/json";
	if (call->integrity) {
		pdnd_modi_digest(call->body ? call->body : "", call->body ? call->body_len : 0,
				 &digest);
		rc = pdnd_modi_signature(c, aud, digest.buf, "application/json", &sig, err);
		if (rc < 0)
			goto cleanup;
		sb_buf_addf(&h_digest, "Digest: %s", digest.buf);
		sb_buf_addf(&h_sig, "Agid-JWT-Signature: %s", sig.buf);
		headers[nh++] = h_digest.buf;
		headers[nh++] = h_sig.buf;
	}
	if (call->audit) {
		sb_buf_addf(&h_te, "Agid-JWT-TrackingEvidence: %s", te.buf);
		headers[nh++] = h_te.buf;
	}
	headers[nh] = NULL;
	rc = sb_http_do(h, &(struct sb_http_req){ .method = call->method, .url = call->url,
						  .headers = headers, .body = call->body,
						  .body_len = call->body_len },
			resp, err);
	trace_fill(resp, &v, trace);
cleanup:
	pdnd_voucher_release(&v);
	sb_wipe(auth.buf, auth.alloc);
	sb_buf_release(&auth);
	sb_buf_release(&te);
	sb_buf_release(&sig);
	sb_buf_release(&digest);
	sb_buf_release(&h_digest);
	sb_buf_release(&h_sig);
	sb_buf_release(&h_te);
	sb_buf_release(&tehex);
	return rc;
}

int pdnd_call_do(struct pdnd_client *c, struct sb_http *h, const struct pdnd_call *call,
		 struct sb_http_resp *resp, struct pdnd_call_trace *trace, struct sb_err *err)
{
	int rc;

	rc = call_once(c, h, call, resp, trace, err);
	/* A cached voucher may be revoked or its clock off: retry once with a new one (as SEND). */
	if (rc == 0 && resp->status == 401 && !call->audit) {
		pdnd_voucher_forget(c, call->purpose_id);
		sb_http_resp_release(resp);
		rc = call_once(c, h, call, resp, trace, err);
	}
	return rc;
}
