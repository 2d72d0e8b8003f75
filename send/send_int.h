/*
 * Shared by the send/ sources only: the client's body and the request helpers.
 */
#ifndef SEND_INT_H
#define SEND_INT_H

#include <jansson.h>

#include "sb_http.h"
#include "send_client.h"

struct send_client {
	struct sb_http *http;
	char *base_url;            /* without a trailing '/' */
	char *api_key;             /* secret */
	bool pdnd;
	char *purpose_id;
	const struct sb_voucher_provider *vp;
	struct sb_voucher_provider file_vp;   /* when voucher_file is used */
	long upload_timeout_ms;
	char *group;
	char *sender_tax_id;
	char *stream_title;
	char *v_requests, *v_notifications, *v_streams, *v_legal_facts, *v_price, *v_cancel;
};

/*
 * One call to the SEND API at base_url + path (path already escaped) with
 * the auth headers. body (JSON text) may be NULL. On a 2xx reply *reply_out
 * gets the parsed body (NULL for an empty body; may be NULL to ignore) and
 * status_out the status; anything else becomes an error (send_reply_error).
 * resp_out, when not NULL, receives the response (headers) and must be
 * released by the caller.
 */
int send_call(struct send_client *c, const char *method, const char *path, const char *body,
	      json_t **reply_out, long *status_out, struct sb_http_resp *resp_out,
	      struct sb_err *err);

/*
 * Turn a non-2xx reply into err: Problem JSON (errors[].code, element,
 * detail; detail at the top level otherwise) or the gateway's {"message"};
 * SB_EREJECT/SB_ENOTFOUND/SB_ETEMP by status; Retry-After into retry_after.
 * what names the call ("create notification").
 */
int send_reply_error(const struct sb_http_resp *resp, const char *what, struct sb_err *err);

/*
 * GET a pre-signed URL to out_path (0600, temp + rename) with no auth headers;
 * digest (may be NULL) gets the SHA-256 of the bytes written, hashed as they arrive.
 */
int send_fetch_url(struct send_client *c, const char *url, const char *out_path, uint64_t max,
		   uint64_t *len_out, unsigned char digest[32], struct sb_err *err);
/* The same, the bytes only hashed (SHA-256 into digest), never written. */
int send_fetch_url_sha256(struct send_client *c, const char *url, uint64_t max,
			  unsigned char digest[32], uint64_t *len_out, struct sb_err *err);

/*
 * Remove query strings from err->msg: a pre-signed URL's query holds its
 * signature, which must not reach a log or the store.
 */
void send_err_scrub_query(struct sb_err *err);

/*
 * Mask what looks like personal data in remote text before it reaches
 * err.msg (logged and stored): codici fiscali ("[cf]") and e-mail addresses
 * ("[email]"). SEND's details sometimes repeat the value they refuse.
 */
void send_scrub_pii(char *s);

/* Percent-encode s for a path segment or query value. */
int send_url_escape(const char *s, struct sb_buf *out);

/* Sleep through r's hook or for real. */
void send_sleep_ms(const struct send_retry *r, long ms);

/* Copy a string member of obj into out (size n); missing or too long is SB_EREJECT naming what. */
int send_copy_str(const json_t *obj, const char *key, char *out, size_t n, bool required,
		  const char *what, struct sb_err *err);

/* Parse one TimelineElementV28 (open category set). */
int send_timeline_parse(const json_t *j, struct send_timeline_element *out, struct sb_err *err);
void send_timeline_release(struct send_timeline_element *e);

#endif
