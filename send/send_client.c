/*
 * The SEND client's core: configuration, authentication headers, one API
 * call, error replies, pre-signed downloads and retry with backoff.
 * Spec: shared/specs/send/SUMMARY.md §1 (auth), §7 (errors), §10 (429).
 *
 * Choices: the API key is read once at start (a rotated key needs a
 * restart, as every other secret); the voucher is asked of the provider on
 * every call, since the provider caches and knows the expiry. Error texts
 * from SEND go through sb_log_quote before they reach err.msg, because
 * err.msg ends up in logs and in the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "send_int.h"

static char *cfg_dup(const struct sb_cfg *cfg, const char *sec, const char *key)
{
	const char *v = sb_cfg_str(cfg, sec, key);

	return v && *v ? sb_xstrdup(v) : NULL;
}

/* A version segment goes into every path: keep it to what SEND uses ("v2.5"). */
static bool version_ok(const char *v)
{
	if (!v || v[0] != 'v' || !v[1])
		return false;
	for (const char *p = v + 1; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return false;
	return true;
}

int send_client_new(struct send_client **out, const struct sb_cfg *cfg,
		    const struct sb_voucher_provider *vp, struct sb_err *err)
{
	static const char *const vkeys[] = { "version_requests", "version_notifications",
					     "version_streams", "version_legal_facts",
					     "version_price", "version_cancel" };
	struct send_client *c = sb_xcalloc(1, sizeof(*c));
	struct sb_http_opts opts = { 0 };
	char **vslots[] = { &c->v_requests, &c->v_notifications, &c->v_streams,
			    &c->v_legal_facts, &c->v_price, &c->v_cancel };
	const char *key_file, *vfile;
	size_t len;
	int rc;

	c->base_url = cfg_dup(cfg, "send", "base_url");
	if (!c->base_url) {
		rc = sb_err_set(err, SB_ECONFIG, 0, "[send] base_url is not set");
		goto fail;
	}
	len = strlen(c->base_url);
	while (len > 0 && c->base_url[len - 1] == '/')
		c->base_url[--len] = '\0';
	for (size_t i = 0; i < SB_ARRAY_SIZE(vkeys); i++) {
		*vslots[i] = cfg_dup(cfg, "send", vkeys[i]);
		if (!version_ok(*vslots[i])) {
			rc = sb_err_set(err, SB_ECONFIG, 0,
					"[send] %s must look like 'v2.5'", vkeys[i]);
			goto fail;
		}
	}
	key_file = sb_cfg_str(cfg, "send", "api_key_file");
	if (!key_file) {
		rc = sb_err_set(err, SB_ECONFIG, 0, "[send] api_key_file is not set");
		goto fail;
	}
	rc = sb_secret_file_read(key_file, &c->api_key, err);
	if (rc < 0)
		goto fail;
	if (!*c->api_key || strpbrk(c->api_key, "\r\n")) {
		rc = sb_err_set(err, SB_ECONFIG, 0, "api key file '%s' must hold one line",
				key_file);
		goto fail;
	}
	c->pdnd = sb_cfg_bool(cfg, "send", "pdnd_voucher");
	c->purpose_id = cfg_dup(cfg, "send", "purpose_id");
	vfile = sb_cfg_str(cfg, "send", "voucher_file");
	if (c->pdnd) {
		if (vp) {
			c->vp = vp;
		} else if (vfile) {
			send_voucher_file_init(&c->file_vp, vfile);
			c->vp = &c->file_vp;
		} else {
			rc = sb_err_set(err, SB_ECONFIG, 0,
					"[send] pdnd_voucher is on but no voucher source is set");
			goto fail;
		}
		if (!c->purpose_id && c->vp != &c->file_vp) {
			rc = sb_err_set(err, SB_ECONFIG, 0,
					"[send] pdnd_voucher is on but purpose_id is not set");
			goto fail;
		}
	}
	c->group = cfg_dup(cfg, "send", "group");
	c->sender_tax_id = cfg_dup(cfg, "service", "sender_tax_id");
	c->stream_title = cfg_dup(cfg, "send", "stream_title");
	c->upload_timeout_ms = (long)sb_cfg_int(cfg, "send", "upload_timeout_ms");
	opts.timeout_ms = (long)sb_cfg_int(cfg, "send", "timeout_ms");
	opts.ca_file = sb_cfg_str(cfg, "send", "ca_file");
	opts.platform = "send";
	rc = sb_http_new(&c->http, &opts, err);
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	send_client_free(c);
	return rc;
}

void send_client_free(struct send_client *c)
{
	if (!c)
		return;
	sb_http_free(c->http);
	free(c->base_url);
	sb_secret_free(c->api_key);
	free(c->purpose_id);
	send_voucher_file_release(&c->file_vp);
	free(c->group);
	free(c->sender_tax_id);
	free(c->stream_title);
	free(c->v_requests);
	free(c->v_notifications);
	free(c->v_streams);
	free(c->v_legal_facts);
	free(c->v_price);
	free(c->v_cancel);
	free(c);
}

const char *send_client_base_url(const struct send_client *c)
{
	return c->base_url;
}

const char *send_client_sender_tax_id(const struct send_client *c)
{
	return c->sender_tax_id ? c->sender_tax_id : "";
}

/* ---- file voucher provider ------------------------------------------- */

static int voucher_file_get(void *ctx, const char *purpose_id, struct sb_buf *out,
			    struct sb_err *err)
{
	char *tok = NULL;
	int rc;

	(void)purpose_id;
	rc = sb_secret_file_read(ctx, &tok, err);
	if (rc < 0)
		return rc;
	if (!*tok || strpbrk(tok, "\r\n \t"))
		rc = sb_err_set(err, SB_ECONFIG, 0, "voucher file '%s' must hold one token",
				(const char *)ctx);
	else if (sb_buf_adds(out, tok) < 0)
		rc = sb_err_set(err, SB_ETOOBIG, 0, "voucher too long");
	sb_secret_free(tok);
	return rc;
}

void send_voucher_file_init(struct sb_voucher_provider *vp, const char *path)
{
	vp->get = voucher_file_get;
	vp->ctx = sb_xstrdup(path);
}

void send_voucher_file_release(struct sb_voucher_provider *vp)
{
	if (!vp)
		return;
	free(vp->ctx);
	vp->ctx = NULL;
	vp->get = NULL;
}

/* ---- calls ------------------------------------------------------------ */

int send_url_escape(const char *s, struct sb_buf *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		int rc;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch))
			rc = sb_buf_addch(out, (char)ch);
		else
			rc = sb_buf_addf(out, "%%%c%c", hex[ch >> 4], hex[ch & 15]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void send_err_scrub_query(struct sb_err *err)
{
	char *q;

	/* Each '?' starts a query that runs to the closing quote of the URL, or to the end. */
	while (err && (q = strchr(err->msg, '?')) != NULL) {
		char *end = strchr(q, '\'');

		if (end)
			memmove(q, end, strlen(end) + 1);
		else
			*q = '\0';
	}
}

static bool word_char(char c)
{
	/* c != 0 first: strchr() finds the terminator of its own string. */
	return c && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		     strchr("._%+-@", c));
}

/*
 * A codice fiscale's shape: letters at 0-5, 8, 11 and 15, letters or digits
 * elsewhere, and at least one digit (an all-letter code needs seven omocodia
 * substitutions; a 16-letter word, e.g. part of an error code, is not one).
 */
static bool cf_shape(const char *w, size_t n)
{
	bool digit = false;

	if (n != 16)
		return false;
	for (size_t i = 0; i < 16; i++) {
		char c = (char)(w[i] & ~0x20);
		bool letter = c >= 'A' && c <= 'Z';
		bool num = w[i] >= '0' && w[i] <= '9';

		if ((i < 6 || i == 8 || i == 11 || i == 15) ? !letter : !(letter || num))
			return false;
		digit |= num;
	}
	return digit;
}

void send_scrub_pii(char *s)
{
	char *p = s;

	while (*p) {
		size_t n = 0;
		const char *rep = NULL;

		if (!word_char(*p)) {
			p++;
			continue;
		}
		while (word_char(p[n]))
			n++;
		if (memchr(p, '@', n))
			rep = "[email]";
		else if (cf_shape(p, n))
			rep = "[cf]";
		if (rep) {
			/* Both replacements are shorter than what they replace. */
			memcpy(p, rep, strlen(rep));
			memmove(p + strlen(rep), p + n, strlen(p + n) + 1);
			n = strlen(rep);
		}
		p += n;
	}
}

/* One line from remote text, quoted, cut and masked: it ends up in logs and in the store. */
static void quote(const char *s, char *out, size_t n)
{
	sb_log_quote(s ? s : "", s ? strlen(s) : 0, out, n);
	send_scrub_pii(out);
}

int send_reply_error(const struct sb_http_resp *resp, const char *what, struct sb_err *err)
{
	int code = sb_http_status_class(resp->status);
	const char *ra = sb_http_resp_header(resp, "Retry-After");
	json_t *j = NULL;
	struct sb_err jerr = SB_ERR_INIT;
	char a[80], b[100], d[120];
	int64_t secs = -1;
	int rc;

	if (code == SB_OK)
		code = SB_EREJECT;   /* a 2xx the caller could not use */
	if (ra && sb_http_retry_after(ra, sb_now(), &secs) < 0)
		secs = -1;
	if (resp->body.len)
		sb_json_parse(resp->body.buf, resp->body.len, SB_MAX_JSON_BODY, "SEND reply", &j,
			      &jerr);
	if (json_is_object(j) && json_is_array(json_object_get(j, "errors")) &&
	    json_array_size(json_object_get(j, "errors")) > 0) {
		json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
		size_t n = json_array_size(json_object_get(j, "errors"));

		quote(json_string_value(json_object_get(e0, "code")), a, sizeof(a));
		quote(json_string_value(json_object_get(e0, "element")), b, sizeof(b));
		quote(json_string_value(json_object_get(e0, "detail")), d, sizeof(d));
		rc = sb_err_set(err, code, 0, "%s: http %ld %s%s%s%s%s%s", what, resp->status, a,
				*b ? " " : "", b, *d ? ": " : "", d,
				n > 1 ? " (and more)" : "");
	} else if (json_is_object(j) && json_is_string(json_object_get(j, "detail"))) {
		quote(json_string_value(json_object_get(j, "detail")), d, sizeof(d));
		rc = sb_err_set(err, code, 0, "%s: http %ld: %s", what, resp->status, d);
	} else if (json_is_object(j) && json_is_string(json_object_get(j, "message"))) {
		/* The API gateway's own errors (authorizer, throttling) are not Problem JSON. */
		quote(json_string_value(json_object_get(j, "message")), d, sizeof(d));
		rc = sb_err_set(err, code, 0, "%s: http %ld (gateway): %s", what, resp->status, d);
	} else {
		rc = sb_err_set(err, code, 0, "%s: http %ld", what, resp->status);
	}
	if (err) {
		err->http = (int)resp->status;
		err->retry_after = secs >= 0 ? (long)secs : -1;
	}
	json_decref(j);
	return rc;
}

static int auth_headers(struct send_client *c, char **key_hdr, char **bearer_hdr,
			struct sb_err *err)
{
	struct sb_buf tok = SB_BUF_INIT(SB_MAX_SECRET_FILE);
	int rc = 0;

	*key_hdr = sb_xasprintf("x-api-key: %s", c->api_key);
	*bearer_hdr = NULL;
	if (!c->pdnd)
		return 0;
	rc = c->vp->get(c->vp->ctx, c->purpose_id, &tok, err);
	if (rc == 0)
		*bearer_hdr = sb_xasprintf("Authorization: Bearer %s", sb_buf_cstr(&tok));
	if (tok.buf)
		sb_wipe(tok.buf, tok.len);
	sb_buf_release(&tok);
	return rc;
}

int send_call(struct send_client *c, const char *method, const char *path, const char *body,
	      json_t **reply_out, long *status_out, struct sb_http_resp *resp_out,
	      struct sb_err *err)
{
	struct sb_http_resp resp = { 0 };
	struct sb_http_req req = { 0 };
	char *url = sb_xasprintf("%s%s", c->base_url, path);
	char *key_hdr = NULL, *bearer = NULL;
	const char *hdrs[6];
	json_t *reply = NULL;
	char what[160];
	size_t n = 0;
	int rc;

	rc = auth_headers(c, &key_hdr, &bearer, err);
	if (rc < 0)
		goto cleanup;
	hdrs[n++] = key_hdr;
	if (bearer)
		hdrs[n++] = bearer;
	hdrs[n++] = "Accept: application/json, application/problem+json";
	if (body)
		hdrs[n++] = "Content-Type: application/json";
	hdrs[n] = NULL;
	req.method = method;
	req.url = url;
	req.headers = hdrs;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	rc = sb_http_do(c->http, &req, &resp, err);
	if (rc < 0) {
		/* The query can hold a protocol number or a cursor: noise in a log line. */
		send_err_scrub_query(err);
		goto cleanup;
	}
	snprintf(what, sizeof(what), "%s %.*s", method, 120, path);
	/* Cut the query string: it can hold a protocol number, not personal but noisy. */
	what[strcspn(what, "?")] = '\0';
	if (resp.status < 200 || resp.status >= 300) {
		rc = send_reply_error(&resp, what, err);
		goto cleanup;
	}
	if (reply_out && resp.body.len) {
		rc = sb_json_parse(resp.body.buf, resp.body.len, SB_MAX_JSON_BODY, "SEND reply",
				   &reply, err);
		if (rc < 0) {
			/* A 2xx we cannot read is SEND's fault, and usually a truncated body. */
			rc = sb_err_set(err, SB_ETEMP, 0, "%s: unreadable reply from SEND", what);
			goto cleanup;
		}
	}
	if (status_out)
		*status_out = resp.status;
	if (reply_out)
		*reply_out = reply;
	else
		json_decref(reply);
	reply = NULL;
	if (resp_out) {
		*resp_out = resp;
		memset(&resp, 0, sizeof(resp));
	}
cleanup:
	json_decref(reply);
	sb_http_resp_release(&resp);
	sb_secret_free(key_hdr);
	sb_secret_free(bearer);
	free(url);
	return rc;
}

struct file_sink {
	int fd;
	struct sb_sha256_ctx *sha;    /* NULL: not hashed */
};

static int fd_sink(void *ctx, const void *p, size_t len)
{
	const struct file_sink *fs = ctx;
	const char *b = p;

	if (fs->sha)
		sb_sha256_update(fs->sha, p, len);
	while (len) {
		ssize_t n = write(fs->fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return SB_EIO;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int send_fetch_url(struct send_client *c, const char *url, const char *out_path, uint64_t max,
		   uint64_t *len_out, unsigned char digest[SB_SHA256_LEN], struct sb_err *err)
{
	struct sb_http_resp resp = { 0 };
	struct sb_http_req req = { 0 };
	char *tmp = sb_xasprintf("%s.part", out_path);
	struct file_sink fs = { -1, NULL };
	int rc, fd;

	/* Our own descriptor, so that the one written is the one synced: no second open. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = sb_err_set(err, SB_EIO, errno, "cannot create '%s': %s", tmp, strerror(errno));
		free(tmp);
		return rc;
	}
	fs.fd = fd;
	/* Hashed on the way in: whoever files the download need not read it back. */
	if (digest)
		fs.sha = sb_sha256_begin();
	/* Pre-signed URLs carry their own authorisation: no x-api-key, no Bearer. */
	req.method = "GET";
	req.url = url;
	req.out_file_max = max;
	req.timeout_ms = c->upload_timeout_ms;
	rc = sb_http_do_sink(c->http, &req, &resp, fd_sink, &fs, err);
	if (rc < 0) {
		send_err_scrub_query(err);
		goto cleanup;
	}
	if (resp.status != 200) {
		rc = send_reply_error(&resp, "download", err);
		goto cleanup;
	}
	if (fsync(fd) < 0) {
		rc = sb_err_set(err, SB_EIO, errno, "cannot sync '%s': %s", tmp, strerror(errno));
		goto cleanup;
	}
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		rc = sb_err_set(err, SB_EIO, errno, "cannot write '%s': %s", tmp, strerror(errno));
		goto cleanup;
	}
	if (rename(tmp, out_path) < 0) {
		rc = sb_err_set(err, SB_EIO, errno, "cannot rename to '%s': %s", out_path,
				strerror(errno));
		goto cleanup;
	}
	if (len_out)
		*len_out = resp.file_len;
cleanup:
	if (fs.sha)
		sb_sha256_end(fs.sha, digest);
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(tmp);
	sb_http_resp_release(&resp);
	free(tmp);
	return rc;
}

static int sha256_sink(void *ctx, const void *p, size_t len)
{
	sb_sha256_update(ctx, p, len);
	return 0;
}

int send_fetch_url_sha256(struct send_client *c, const char *url, uint64_t max,
			  unsigned char digest[SB_SHA256_LEN], uint64_t *len_out,
			  struct sb_err *err)
{
	struct sb_http_resp resp = { 0 };
	struct sb_http_req req = { 0 };
	struct sb_sha256_ctx *h = sb_sha256_begin();
	int rc;

	/* Pre-signed URLs carry their own authorisation: no x-api-key, no Bearer. */
	req.method = "GET";
	req.url = url;
	req.out_file_max = max;
	req.timeout_ms = c->upload_timeout_ms;
	rc = sb_http_do_sink(c->http, &req, &resp, sha256_sink, h, err);
	if (rc < 0)
		send_err_scrub_query(err);
	else if (resp.status != 200)
		rc = send_reply_error(&resp, "download", err);
	sb_sha256_end(h, digest);
	if (rc == 0 && len_out)
		*len_out = resp.file_len;
	sb_http_resp_release(&resp);
	return rc;
}

int send_copy_str(const json_t *obj, const char *key, char *out, size_t n, bool required,
		  const char *what, struct sb_err *err)
{
	const char *v = json_string_value(json_object_get(obj, key));

	if (!v) {
		if (!required) {
			out[0] = '\0';
			return 0;
		}
		return sb_err_set(err, SB_EREJECT, 0, "%s: reply without '%s'", what, key);
	}
	if (strlen(v) >= n)
		return sb_err_set(err, SB_EREJECT, 0, "%s: '%s' in reply too long", what, key);
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* ---- retry ------------------------------------------------------------ */

void send_sleep_ms(const struct send_retry *r, long ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	if (r && r->sleep_ms) {
		r->sleep_ms(r->sleep_ctx, ms);
		return;
	}
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

long send_retry_delay_ms(const struct send_retry *r, unsigned attempt, const struct sb_err *err)
{
	long base = r->base_ms > 0 ? r->base_ms : 500;
	long cap = r->max_ms > 0 ? r->max_ms : 60000;
	long d = base;
	uint32_t rnd;

	if (err && err->retry_after >= 0) {
		/* SEND said how long: obey it, never retry earlier. */
		if (err->retry_after > cap / 1000)
			return cap;
		return err->retry_after * 1000;
	}
	for (unsigned i = 1; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	sb_random_bytes(&rnd, sizeof(rnd));
	return d / 2 + (long)(rnd % (uint32_t)(d / 2 + 1));
}

int send_retry_run(const struct send_retry *r, int (*op)(void *ctx, struct sb_err *err), void *ctx,
		   struct sb_err *err)
{
	static const struct send_retry defaults = SEND_RETRY_INIT;
	unsigned max;
	int rc = SB_ETEMP;

	if (!r)
		r = &defaults;
	max = r->max_attempts ? r->max_attempts : 1;
	for (unsigned attempt = 1; attempt <= max; attempt++) {
		if (err)
			sb_err_clear(err);
		rc = op(ctx, err);
		if (rc != SB_ETEMP || attempt == max)
			break;
		sb_log(SB_LOG_INFO, "send", "retry attempt=%u: %s", attempt, err ? err->msg : "");
		send_sleep_ms(r, send_retry_delay_ms(r, attempt, err));
	}
	return rc;
}
