/*
 * HTTP over libcurl: see sb_http.h.
 *
 * Choices: TLS peer and host verification cannot be turned off (the
 * platforms are reached over the public internet with personal data on the
 * wire); redirects are not followed unless a caller asks (a platform that
 * redirects a POST is a misconfiguration to report, not to obey); bodies
 * have ceilings, and a request body can be streamed from a file so memory
 * does not grow with the size of a PDF.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_http.h"
#include "sb_time.h"
#include "sb_version.h"

struct sb_http {
	CURL *curl;
	struct sb_http_opts opts;
	char *ca_file;
	char *user_agent;
	char *platform;
};

struct xfer {
	struct sb_http_resp *resp;
	FILE *out;
	int (*out_fn)(void *ctx, const void *p, size_t len);
	void *out_ctx;
	uint64_t out_max;
	bool too_big;
	bool header_overflow;
	FILE *in;
};

int sb_http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : SB_EINTERNAL;
}

void sb_http_global_cleanup(void)
{
	curl_global_cleanup();
}

int sb_http_new(struct sb_http **out, const struct sb_http_opts *opts, struct sb_err *err)
{
	struct sb_http *h;

	h = sb_xcalloc(1, sizeof(*h));
	h->curl = curl_easy_init();
	if (!h->curl) {
		free(h);
		return sb_err_set(err, SB_EINTERNAL, 0, "curl_easy_init failed");
	}
	if (opts)
		h->opts = *opts;
	if (!h->opts.connect_timeout_ms)
		h->opts.connect_timeout_ms = 10000;
	if (!h->opts.timeout_ms)
		h->opts.timeout_ms = 60000;
	if (!h->opts.max_body)
		h->opts.max_body = SB_MAX_JSON_BODY;
	h->ca_file = h->opts.ca_file ? sb_xstrdup(h->opts.ca_file) : NULL;
	h->user_agent = sb_xstrdup(h->opts.user_agent ? h->opts.user_agent
						      : "send-bridge/" SB_VERSION);
	h->platform = h->opts.platform ? sb_xstrdup(h->opts.platform) : NULL;
	h->opts.ca_file = NULL;
	h->opts.user_agent = NULL;
	h->opts.platform = NULL;
	*out = h;
	return 0;
}

void sb_http_free(struct sb_http *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	free(h->ca_file);
	free(h->user_agent);
	free(h->platform);
	free(h);
}

void sb_http_resp_release(struct sb_http_resp *r)
{
	if (!r)
		return;
	sb_buf_release(&r->body);
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	r->headers = NULL;
	r->nheaders = 0;
	r->status = 0;
	r->file_len = 0;
}

static void headers_clear(struct sb_http_resp *r)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	r->nheaders = 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
	struct xfer *x = data;
	size_t len = size * n, nlen, vs, ve;
	const char *colon;

	if (len > SB_MAX_HEADER_LINE) {
		x->header_overflow = true;
		return 0;
	}
	/*
	 * A status line starts a new reply (after 100 Continue or a redirect):
	 * keep only the last.
	 */
	if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
		headers_clear(x->resp);
		return len;
	}
	colon = memchr(p, ':', len);
	if (!colon)
		return len;
	if (x->resp->nheaders >= SB_MAX_HEADERS) {
		x->header_overflow = true;
		return 0;
	}
	nlen = (size_t)(colon - p);
	for (vs = nlen + 1; vs < len && (p[vs] == ' ' || p[vs] == '\t'); vs++)
		;
	for (ve = len; ve > vs && strchr(" \t\r\n", p[ve - 1]); ve--)
		;
	x->resp->headers = sb_xrealloc(x->resp->headers,
				       (x->resp->nheaders + 1) * sizeof(*x->resp->headers));
	x->resp->headers[x->resp->nheaders].name = sb_xstrndup(p, nlen);
	x->resp->headers[x->resp->nheaders].value = sb_xstrndup(p + vs, ve - vs);
	x->resp->nheaders++;
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
	struct xfer *x = data;
	size_t len = size * n;

	if (x->out || x->out_fn) {
		if (x->resp->file_len + len > x->out_max) {
			x->too_big = true;
			return 0;
		}
		if (x->out ? fwrite(p, 1, len, x->out) != len : x->out_fn(x->out_ctx, p, len) < 0)
			return 0;
		x->resp->file_len += len;
		return len;
	}
	if (sb_buf_add(&x->resp->body, p, len) < 0) {
		x->too_big = true;
		return 0;
	}
	return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *data)
{
	struct xfer *x = data;
	size_t got = fread(p, size, n, x->in);

	if (got == 0 && ferror(x->in))
		return CURL_READFUNC_ABORT;
	return got;
}

/*
 * libcurl rewinds the body when it must send it again: a reused connection
 * that the server had closed, a redirect, an authentication round. Without
 * this the upload fails ("rewinding of the data stream failed") and waits for
 * the caller's retry.
 */
static int on_seek(void *data, curl_off_t offset, int origin)
{
	struct xfer *x = data;

	if (origin != SEEK_SET || offset < 0)
		return CURL_SEEKFUNC_CANTSEEK;
	return fseeko(x->in, (off_t)offset, SEEK_SET) == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

struct xfer_ctx {
	struct xfer x;
	CURL *curl;
	FILE *file;
	int (*out_fn)(void *ctx, const void *p, size_t len);
};

/* The reply body goes to out_file only for a 2xx; an error reply is kept in memory to be parsed. */
static size_t on_body_switch(char *p, size_t size, size_t n, void *data)
{
	struct xfer_ctx *c = data;
	long status = 0;

	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	c->x.out = (status >= 200 && status < 300) ? c->file : NULL;
	c->x.out_fn = (status >= 200 && status < 300) ? c->out_fn : NULL;
	return on_body(p, size, n, &c->x);
}

static int map_curl_error(CURLcode cc, const struct xfer_ctx *c, const char *url,
			  struct sb_err *err)
{
	if (c->x.too_big)
		return sb_err_set(err, SB_ETOOBIG, (int)cc, "reply from '%s' larger than allowed",
				  url);
	if (c->x.header_overflow)
		return sb_err_set(err, SB_ETOOBIG, (int)cc, "reply headers from '%s' too large",
				  url);
	switch (cc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return sb_err_set(err, SB_EINVAL, (int)cc, "bad url '%s': %s", url,
				  curl_easy_strerror(cc));
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		/* Not retried: a certificate problem does not fix itself. */
		return sb_err_set(err, SB_ECONFIG, (int)cc, "tls verification failed for '%s': %s",
				  url, curl_easy_strerror(cc));
	case CURLE_WRITE_ERROR:
	case CURLE_READ_ERROR:
		return sb_err_set(err, SB_EIO, (int)cc, "local i/o error with '%s': %s", url,
				  curl_easy_strerror(cc));
	default:
		return sb_err_set(err, SB_ETEMP, (int)cc, "request to '%s' failed: %s", url,
				  curl_easy_strerror(cc));
	}
}

static int (*before_request)(struct sb_err *err);
static void (*after_request)(const char *platform, long status, int rc);

void sb_http_before_request(int (*fn)(struct sb_err *err))
{
	before_request = fn;
}

void sb_http_after_request(void (*fn)(const char *platform, long status, int rc))
{
	after_request = fn;
}

int sb_http_do(struct sb_http *h, const struct sb_http_req *req, struct sb_http_resp *resp,
	       struct sb_err *err)
{
	return sb_http_do_sink(h, req, resp, NULL, NULL, err);
}

int sb_http_do_sink(struct sb_http *h, const struct sb_http_req *req, struct sb_http_resp *resp,
		    int (*out_fn)(void *ctx, const void *p, size_t len), void *out_ctx,
		    struct sb_err *err)
{
	struct curl_slist *hdrs = NULL;
	struct xfer_ctx c;
	CURL *cu = h->curl;
	CURLcode cc;
	FILE *in = NULL;
	int rc = 0, out_fd = -1;
	long status = 0;

	memset(&c, 0, sizeof(c));
	if (!req->url || !req->method)
		return sb_err_set(err, SB_EINVAL, 0, "http request without url or method");
	if (before_request) {
		rc = before_request(err);
		if (rc < 0)
			return rc;
	}
	sb_http_resp_release(resp);
	sb_buf_init(&resp->body, h->opts.max_body);
	c.x.resp = resp;
	c.curl = cu;
	c.x.out_max = req->out_file_max ? req->out_file_max : SB_MAX_PDF;
	c.out_fn = req->out_file ? NULL : out_fn;
	c.x.out_ctx = out_ctx;

	curl_easy_reset(cu);
	curl_easy_setopt(cu, CURLOPT_URL, req->url);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(cu, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(cu, CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->ca_file)
		curl_easy_setopt(cu, CURLOPT_CAINFO, h->ca_file);
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, h->opts.connect_timeout_ms);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms
								    : h->opts.timeout_ms);
	curl_easy_setopt(cu, CURLOPT_USERAGENT, h->user_agent);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, &c.x);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body_switch);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(cu, CURLOPT_ACCEPT_ENCODING, "");

	/* 100-continue costs a round trip per upload and some gateways mishandle it. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	for (const char *const *p = req->headers; p && *p; p++)
		hdrs = curl_slist_append(hdrs, *p);
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdrs);

	if (req->body_file) {
		struct stat st;

		in = fopen(req->body_file, "rbe");
		if (!in || fstat(fileno(in), &st) < 0) {
			rc = sb_err_set(err, SB_EIO, errno, "cannot open '%s': %s", req->body_file,
					strerror(errno));
			goto cleanup;
		}
		c.x.in = in;
		curl_easy_setopt(cu, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(cu, CURLOPT_READDATA, &c.x);
		curl_easy_setopt(cu, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(cu, CURLOPT_SEEKDATA, &c.x);
		if (!strcmp(req->method, "PUT")) {
			curl_easy_setopt(cu, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(cu, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
		} else {
			curl_easy_setopt(cu, CURLOPT_POST, 1L);
			curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
			curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, req->method);
		}
	} else if (req->body || !strcmp(req->method, "POST") || !strcmp(req->method, "PUT")) {
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
		curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		if (strcmp(req->method, "POST"))
			curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, req->method);
	} else if (strcmp(req->method, "GET")) {
		curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, req->method);
	}

	if (req->out_file) {
		out_fd = open(req->out_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (out_fd < 0 || !(c.file = fdopen(out_fd, "wb"))) {
			rc = sb_err_set(err, SB_EIO, errno, "cannot create '%s': %s", req->out_file,
					strerror(errno));
			if (out_fd >= 0)
				close(out_fd);
			goto cleanup;
		}
	}

	cc = curl_easy_perform(cu);
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
	resp->status = status;
	if (c.file && fclose(c.file) != 0 && cc == CURLE_OK)
		cc = CURLE_WRITE_ERROR;
	c.file = NULL;
	if (cc != CURLE_OK)
		rc = map_curl_error(cc, &c, req->url, err);
	else if (err)
		err->http = (int)status;
	if (after_request)
		after_request(h->platform, status, rc);
cleanup:
	if (c.file)
		fclose(c.file);
	if (in)
		fclose(in);
	curl_slist_free_all(hdrs);
	return rc;
}

const char *sb_http_resp_header(const struct sb_http_resp *r, const char *name)
{
	for (size_t i = r->nheaders; i > 0; i--)
		if (!strcasecmp(r->headers[i - 1].name, name))
			return r->headers[i - 1].value;
	return NULL;
}

int sb_http_retry_after(const char *value, int64_t now, int64_t *secs_out)
{
	uint64_t n;
	int64_t when;

	if (!value)
		return SB_EINVAL;
	/* A day is more than any platform asks for; a larger value is capped, not trusted. */
	if (sb_parse_u64z(value, UINT64_MAX, &n) == 0) {
		*secs_out = n > 86400 ? 86400 : (int64_t)n;
		return 0;
	}
	if (sb_time_parse_http(value, &when) < 0)
		return SB_EINVAL;
	when -= now;
	*secs_out = when < 0 ? 0 : (when > 86400 ? 86400 : when);
	return 0;
}

int sb_http_status_class(long status)
{
	if (status >= 200 && status < 300)
		return SB_OK;
	if (status == 408 || status == 425 || status == 429 || (status >= 500 && status < 600))
		return SB_ETEMP;
	if (status == 404)
		return SB_ENOTFOUND;
	return SB_EREJECT;
}
