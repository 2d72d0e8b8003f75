/*
 * HTTP client over libcurl: the one place that sets timeouts, TLS
 * verification (always on, with an optional CA bundle), the response size
 * cap and connection reuse. Status codes are data, not errors: a call that
 * got any HTTP reply returns 0 and the caller reads resp->status.
 *
 * A struct sb_http is used by one thread at a time (it keeps one libcurl
 * handle and its connection cache); give each worker its own.
 */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_err.h"

struct sb_http;

struct sb_http_opts {
	long connect_timeout_ms;   /* 0: 10 s */
	long timeout_ms;           /* whole exchange; 0: 60 s */
	const char *ca_file;       /* PEM bundle; NULL: the system store */
	size_t max_body;           /* in-memory reply ceiling; 0: SB_MAX_JSON_BODY */
	const char *user_agent;    /* NULL: "send-bridge/<version>" */
	const char *platform;      /* named to the sb_http_after_request hook; NULL: none */
};

struct sb_http_header {
	char *name;
	char *value;
};

struct sb_http_req {
	const char *method;             /* "GET", "POST", "PUT", "DELETE" */
	const char *url;
	const char *const *headers;     /* NULL-terminated "Name: value" list, or NULL */
	const void *body;               /* request body in memory ... */
	size_t body_len;
	const char *body_file;          /* ... or streamed from this file */
	const char *out_file;           /* write a 2xx reply body here (0600) instead of memory */
	uint64_t out_file_max;          /* ceiling for out_file; 0: SB_MAX_PDF */
	long timeout_ms;                /* > 0 overrides the handle's timeout */
};

struct sb_http_resp {
	long status;                    /* 0 until a reply arrived */
	struct sb_buf body;             /* the reply body (empty when written to out_file) */
	uint64_t file_len;              /* bytes written to out_file */
	struct sb_http_header *headers; /* of the final reply, in order */
	size_t nheaders;
};

/* Create a handle; opts may be NULL for the defaults. Free with sb_http_free (NULL ok). */
int sb_http_new(struct sb_http **out, const struct sb_http_opts *opts, struct sb_err *err);
void sb_http_free(struct sb_http *h);

/*
 * Perform one exchange. resp must be zeroed or released before; it is
 * filled even on some failures (status, headers) and must always be released
 * with sb_http_resp_release. Returns 0 when a reply arrived (any status),
 * SB_ETEMP for network failures and timeouts (err->cause is the CURLcode),
 * SB_ETOOBIG when the reply exceeds the ceiling, SB_EIO for local file
 * errors, SB_EINVAL for a bad request.
 */
int sb_http_do(struct sb_http *h, const struct sb_http_req *req, struct sb_http_resp *resp,
	       struct sb_err *err);
void sb_http_resp_release(struct sb_http_resp *r);

/*
 * sb_http_do with a 2xx reply body handed to out_fn piece by piece instead
 * of memory or req->out_file (to hash a download without writing it), with
 * req->out_file_max as its ceiling (SB_ETOOBIG beyond). out_fn returns 0, or
 * < 0 to stop the transfer (SB_EIO). resp->file_len counts the bytes.
 */
int sb_http_do_sink(struct sb_http *h, const struct sb_http_req *req, struct sb_http_resp *resp,
		    int (*out_fn)(void *ctx, const void *p, size_t len), void *out_ctx,
		    struct sb_err *err);

/*
 * A check every request of this process passes first, from the requesting
 * thread (the daemon's store makes its commits durable there: a state change
 * is on disk before the call it leads to). A failure stops the request with
 * the hook's error. NULL removes it; set it before the threads start.
 */
void sb_http_before_request(int (*fn)(struct sb_err *err));

/*
 * A report of every exchange of this process that libcurl attempted, from
 * the requesting thread once it ended: the handle's opts.platform, the reply's
 * status (0 when none arrived) and sb_http_do's result (the daemon's metrics
 * count API calls with it). NULL removes it; set it before the threads start.
 */
void sb_http_after_request(void (*fn)(const char *platform, long status, int rc));

/* Value of the last header called name (case-insensitive), borrowed; NULL if absent. */
const char *sb_http_resp_header(const struct sb_http_resp *r, const char *name);

/*
 * Parse a Retry-After value: delta-seconds or an HTTP date (relative to
 * now, seconds since the epoch). Past dates give 0. 0 or SB_EINVAL.
 */
int sb_http_retry_after(const char *value, int64_t now, int64_t *secs_out);

/*
 * Classify a status: 2xx -> SB_OK; 408, 425, 429 and 5xx -> SB_ETEMP;
 * 404 -> SB_ENOTFOUND; other 4xx and anything else -> SB_EREJECT.
 */
int sb_http_status_class(long status);

/* libcurl's global set-up; call once from main before threads start. */
int sb_http_global_init(void);
void sb_http_global_cleanup(void);

#endif
