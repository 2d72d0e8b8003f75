/*
 * Preload and upload (shared/specs/send/SUMMARY.md §2): each file is hashed
 * from disk (unless the caller already knows its hash), preloaded in
 * batches of at most 15, then sent to the pre-signed URL with the method
 * SEND chose. The file is streamed by libcurl from disk, so memory does not
 * grow with the size of a PDF (up to 200 MB).
 *
 * x-amz-checksum-sha256 is sent as a plain header rather than a trailer:
 * PagoPA's own client does so and the FAQ calls the trailer optional.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sb_log.h"
#include "send_int.h"

static bool preload_idx_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 512)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-", *s)))
			return false;
	return true;
}

/*
 * A known hash is trusted for the bytes it was computed from: the size is the
 * cheap check that they are still those, and SEND's storage checks the rest.
 */
static int known_hash(struct send_upload *u, size_t i, unsigned char d[SB_SHA256_LEN],
		      uint64_t *size, struct sb_err *err)
{
	struct sb_buf raw = SB_BUF_INIT(SB_SHA256_LEN);
	struct stat st;

	if (strlen(u->known_sha256) != 2 * SB_SHA256_LEN ||
	    sb_hex_decode(u->known_sha256, strlen(u->known_sha256), &raw) < 0 ||
	    raw.len != SB_SHA256_LEN) {
		sb_buf_release(&raw);
		return sb_err_set(err, SB_EINVAL, 0, "file %zu: known sha256 is not 64 hex digits",
				  i);
	}
	memcpy(d, raw.buf, SB_SHA256_LEN);
	sb_buf_release(&raw);
	if (stat(u->path, &st) < 0)
		return sb_err_set(err, errno == ENOENT ? SB_ENOTFOUND : SB_EIO, errno,
				  "file %zu: cannot read it: %s", i, strerror(errno));
	if ((uint64_t)st.st_size != u->known_size)
		return sb_err_set(err, SB_EIO, 0, "file %zu: %llu bytes, %llu when it was hashed: "
				  "changed since", i, (unsigned long long)st.st_size,
				  (unsigned long long)u->known_size);
	*size = u->known_size;
	return 0;
}

static int hash_file(struct send_upload *u, size_t i, struct sb_err *err)
{
	unsigned char d[SB_SHA256_LEN];
	struct sb_buf b = SB_BUF_INIT(64);
	uint64_t size = 0;
	int rc;

	if (u->known_sha256)
		rc = known_hash(u, i, d, &size, err);
	else
		rc = sb_sha256_file(u->path, d, &size, err);
	if (rc < 0)
		return rc;
	if (!strcmp(u->content_type, SEND_CT_PDF) && size > SB_MAX_PDF)
		return sb_err_set(err, SB_ETOOBIG, 0, "file %zu: larger than SEND's 200 MB", i);
	if (!strcmp(u->content_type, SEND_CT_JSON) && size > SB_MAX_F24_JSON)
		return sb_err_set(err, SB_ETOOBIG, 0, "file %zu: F24 metadata larger than %u bytes",
				  i, SB_MAX_F24_JSON);
	sb_base64_encode(d, sizeof(d), &b);
	SB_ASSERT(b.len == 44);
	memcpy(u->ref.sha256, b.buf, 45);
	sb_buf_release(&b);
	return 0;
}

struct preload_op {
	struct send_client *c;
	const char *body;
	json_t *reply;
};

static int preload_once(void *ctx, struct sb_err *err)
{
	struct preload_op *op = ctx;

	json_decref(op->reply);
	op->reply = NULL;
	return send_call(op->c, "POST", "/delivery/attachments/preload", op->body, &op->reply, NULL,
			 NULL, err);
}

struct put_op {
	struct send_client *c;
	struct send_upload *u;
	const char *method, *url, *secret;
};

static int put_once(void *ctx, struct sb_err *err)
{
	struct put_op *op = ctx;
	struct sb_http_resp resp = { 0 };
	struct sb_http_req req = { 0 };
	char *h_ct = sb_xasprintf("Content-Type: %s", op->u->content_type);
	char *h_secret = sb_xasprintf("x-amz-meta-secret: %s", op->secret);
	char *h_sum = sb_xasprintf("x-amz-checksum-sha256: %s", op->u->ref.sha256);
	const char *hdrs[] = { h_ct, h_secret, h_sum, NULL };
	const char *vid;
	int rc;

	/* No x-api-key and no Authorization here: the URL is pre-signed (SUMMARY §1). */
	req.method = op->method;
	req.url = op->url;
	req.headers = hdrs;
	req.body_file = op->u->path;
	req.timeout_ms = op->c->upload_timeout_ms;
	rc = sb_http_do(op->c->http, &req, &resp, err);
	if (rc < 0) {
		send_err_scrub_query(err);
		goto cleanup;
	}
	if (resp.status != 200) {
		rc = send_reply_error(&resp, "upload", err);
		goto cleanup;
	}
	vid = sb_http_resp_header(&resp, "x-amz-version-id");
	if (!vid || !*vid || strlen(vid) >= sizeof(op->u->ref.version_token)) {
		rc = sb_err_set(err, SB_EREJECT, 0,
				"upload: reply without a usable x-amz-version-id");
		goto cleanup;
	}
	memcpy(op->u->ref.version_token, vid, strlen(vid) + 1);
cleanup:
	sb_http_resp_release(&resp);
	free(h_ct);
	sb_secret_free(h_secret);
	free(h_sum);
	return rc;
}

static int key_prefix_ok(const char *key, const char *ct)
{
	const char *want = !strcmp(ct, SEND_CT_PDF) ? "PN_NOTIFICATION_ATTACHMENTS" : "PN_F24_META";

	return !strncmp(key, want, strlen(want));
}

static int upload_batch(struct send_client *c, struct send_upload *items, size_t n,
			const struct send_retry *r, struct sb_err *err)
{
	struct preload_op pop = { c, NULL, NULL };
	struct sb_buf body = SB_BUF_INIT(SB_MAX_JSON_BODY);
	json_t *arr = json_array();
	int rc;

	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "preloadIdx", json_string(items[i].preload_idx));
		json_object_set_new(o, "contentType", json_string(items[i].content_type));
		json_object_set_new(o, "sha256", json_string(items[i].ref.sha256));
		json_array_append_new(arr, o);
	}
	rc = sb_json_dump(arr, &body, err);
	if (rc < 0)
		goto cleanup;
	pop.body = sb_buf_cstr(&body);
	rc = send_retry_run(r, preload_once, &pop, err);
	if (rc < 0) {
		sb_err_prefix(err, "preload");
		goto cleanup;
	}
	if (!json_is_array(pop.reply) || json_array_size(pop.reply) != n) {
		rc = sb_err_set(err, SB_EREJECT, 0, "preload: expected %zu items in the reply", n);
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++) {
		struct send_upload *u = &items[i];
		struct put_op op = { c, u, NULL, NULL, NULL };
		json_t *it = NULL;
		size_t k;
		json_t *v;

		/* Match by preloadIdx, not by position: that is what the index is for. */
		json_array_foreach(pop.reply, k, v) {
			const char *idx = json_string_value(json_object_get(v, "preloadIdx"));

			if (idx && !strcmp(idx, u->preload_idx))
				it = v;
		}
		if (!it) {
			rc = sb_err_set(err, SB_EREJECT, 0, "preload: no reply for preloadIdx '%s'",
					u->preload_idx);
			goto cleanup;
		}
		op.method = json_string_value(json_object_get(it, "httpMethod"));
		op.url = json_string_value(json_object_get(it, "url"));
		op.secret = json_string_value(json_object_get(it, "secret"));
		rc = send_copy_str(it, "key", u->ref.key, sizeof(u->ref.key), true, "preload", err);
		if (rc < 0)
			goto cleanup;
		if (!op.method || (strcmp(op.method, "PUT") && strcmp(op.method, "POST")) ||
		    !op.url || !op.secret) {
			rc = sb_err_set(err, SB_EREJECT, 0,
					"preload: item '%s' lacks httpMethod, url or secret",
					u->preload_idx);
			goto cleanup;
		}
		if (!key_prefix_ok(u->ref.key, u->content_type)) {
			rc = sb_err_set(err, SB_EREJECT, 0,
					"preload: key of '%s' does not match its content type",
					u->preload_idx);
			goto cleanup;
		}
		rc = send_retry_run(r, put_once, &op, err);
		if (rc < 0) {
			sb_err_prefix(err, "file '%s'", u->preload_idx);
			goto cleanup;
		}
		u->ref.content_type = !strcmp(u->content_type, SEND_CT_PDF) ? SEND_CT_PDF
									     : SEND_CT_JSON;
		sb_log(SB_LOG_DEBUG, "send", "uploaded preloadIdx=%s", u->preload_idx);
	}
cleanup:
	json_decref(pop.reply);
	json_decref(arr);
	sb_buf_release(&body);
	return rc;
}

int send_files_upload(struct send_client *c, struct send_upload *items, size_t n,
		      const struct send_retry *r, struct sb_err *err)
{
	int rc;

	if (n == 0)
		return sb_err_set(err, SB_EINVAL, 0, "no file to upload");
	for (size_t i = 0; i < n; i++) {
		const char *ct = items[i].content_type;

		if (!ct || (strcmp(ct, SEND_CT_PDF) && strcmp(ct, SEND_CT_JSON)))
			return sb_err_set(err, SB_EINVAL, 0,
					  "file %zu: content type must be application/pdf or "
					  "application/json", i);
		if (!preload_idx_ok(items[i].preload_idx))
			return sb_err_set(err, SB_EINVAL, 0, "file %zu: preloadIdx must match"
					  " ^[a-zA-Z0-9._-]{1,512}$", i);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(items[j].preload_idx, items[i].preload_idx))
				return sb_err_set(err, SB_EINVAL, 0,
						  "file %zu: preloadIdx repeated", i);
		memset(&items[i].ref, 0, sizeof(items[i].ref));
		rc = hash_file(&items[i], i, err);
		if (rc < 0)
			return rc;
	}
	for (size_t off = 0; off < n; off += SEND_MAX_PRELOAD) {
		size_t m = n - off < SEND_MAX_PRELOAD ? n - off : SEND_MAX_PRELOAD;

		rc = upload_batch(c, items + off, m, r, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}
