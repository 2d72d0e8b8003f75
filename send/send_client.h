/*
 * send/: the SEND B2B client for PA senders (shared/specs/send/SUMMARY.md and
 * the pn-delivery bundle beside it).
 *
 * A struct send_client holds one HTTP handle, so it is used by one thread at
 * a time; give each worker its own (the configuration and the voucher
 * provider may be shared). Every call returns 0 or a negative enum sb_code
 * and fills err:
 *   SB_EREJECT  SEND said no (4xx other than 404/408/429); err->http and a
 *               message "<CODE> <element>: <detail>" from the Problem JSON,
 *               or the gateway's {"message"} for authorisation failures
 *   SB_ENOTFOUND 404 (unknown request, IUN, legal fact)
 *   SB_ETEMP    network failure, timeout, 5xx, 429; err->retry_after holds
 *               the seconds SEND asked to wait (-1 when it did not say)
 *   SB_EINVAL   the input cannot be sent as it is (names the field)
 *   SB_EIO, SB_ETOOBIG, SB_ECONFIG as usual
 * Outputs are written only on success.
 *
 * Authentication: x-api-key on every API call; Authorization: Bearer
 * <voucher> only when [send] pdnd_voucher is on. Neither header is ever
 * sent to the pre-signed upload and download URLs.
 */
#ifndef SEND_CLIENT_H
#define SEND_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_voucher.h"

struct sb_cfg;
struct send_client;

/* ---- client ---------------------------------------------------------- */

/*
 * Build a client from the [send] and [service] sections of cfg: base_url,
 * api_key_file (read now; refused when group/other can read it),
 * pdnd_voucher + purpose_id, ca_file, timeouts, group, version_* and the
 * sender's tax id. When pdnd_voucher is on, vp supplies vouchers; if vp is
 * NULL and voucher_file is set, a file provider is used; otherwise
 * SB_ECONFIG. vp (when given) is borrowed and must outlive the client.
 * cfg is only read during the call. Free with send_client_free (NULL ok).
 */
int send_client_new(struct send_client **out, const struct sb_cfg *cfg,
		    const struct sb_voucher_provider *vp, struct sb_err *err);
void send_client_free(struct send_client *c);

/* Borrowed, valid until send_client_free. */
const char *send_client_base_url(const struct send_client *c);
const char *send_client_sender_tax_id(const struct send_client *c);

/*
 * A voucher provider that reads the whole (trimmed) content of path on each
 * call; path must pass sb_secret_file_check. path is copied; release the
 * provider's context with send_voucher_file_release.
 */
void send_voucher_file_init(struct sb_voucher_provider *vp, const char *path);
void send_voucher_file_release(struct sb_voucher_provider *vp);

/* ---- retry ------------------------------------------------------------ */

struct send_retry {
	unsigned max_attempts;   /* total tries, >= 1 (default 5) */
	long base_ms;            /* first backoff (default 500) */
	long max_ms;             /* ceiling of one wait (default 60000) */
	/* Sleep hook (tests record the waits); NULL sleeps for real. */
	void (*sleep_ms)(void *ctx, long ms);
	void *sleep_ctx;
};

#define SEND_RETRY_INIT { 5, 500, 60000, NULL, NULL }

/*
 * The wait before attempt number `attempt` (1 = the first retry) after err:
 * Retry-After when SEND gave one (capped at max_ms), else base_ms * 2^(attempt-1)
 * capped at max_ms, then "full jitter" on the exponential part (a random
 * value in [half, full]) so that workers do not retry in lockstep.
 */
long send_retry_delay_ms(const struct send_retry *r, unsigned attempt, const struct sb_err *err);

/*
 * Run op until it returns anything but SB_ETEMP or the attempts run out,
 * waiting send_retry_delay_ms between tries. Returns op's last result;
 * err holds the last error.
 */
int send_retry_run(const struct send_retry *r, int (*op)(void *ctx, struct sb_err *err), void *ctx,
		   struct sb_err *err);

/* ---- files: preload and upload ----------------------------------------- */

#define SEND_CT_PDF "application/pdf"
#define SEND_CT_JSON "application/json"

/* A file held by SEND: what a notification references. */
struct send_file_ref {
	char key[513];             /* PN_NOTIFICATION_ATTACHMENTS-... or PN_F24_META-... */
	char version_token[257];   /* the x-amz-version-id of the upload */
	char sha256[45];           /* base64 of the raw digest */
	const char *content_type;  /* SEND_CT_PDF or SEND_CT_JSON (static) */
};

struct send_upload {
	const char *path;          /* the file, streamed from disk */
	const char *content_type;  /* SEND_CT_PDF or SEND_CT_JSON */
	const char *preload_idx;   /* ^[a-zA-Z0-9._-]{1,512}$, unique in the call */
	struct send_file_ref ref;  /* output */
	/*
	 * Optional (NULL: hashed here): the file's SHA-256 in hex and its size,
	 * from an earlier read of these bytes that the caller trusts, such as
	 * the hash recorded at intake. The file is then not read to be hashed,
	 * only its size is compared; a change of the same size is still caught,
	 * by SEND's storage, which checks x-amz-checksum-sha256 against what it
	 * receives (SB_EREJECT).
	 */
	const char *known_sha256;
	uint64_t known_size;
};

/*
 * Upload n files: hash each one (streamed) unless its hash is known (a known
 * hash that is not 64 hex digits is SB_EINVAL, a file whose size is not the
 * known size SB_EIO, both before any request), preload them in batches of at
 * most SEND_MAX_PRELOAD, then send each with the method and URL SEND
 * returned (Content-Type, x-amz-meta-secret, x-amz-checksum-sha256; the file
 * streamed from disk, no auth headers) and keep x-amz-version-id. Each
 * transient failure is retried with r (NULL: defaults). On success every
 * items[i].ref is filled; on failure the refs are unspecified.
 */
int send_files_upload(struct send_client *c, struct send_upload *items, size_t n,
		      const struct send_retry *r, struct sb_err *err);

/* ---- the notification ------------------------------------------------- */

struct send_address {
	const char *address;              /* required */
	const char *address_details;
	const char *at;
	const char *zip;
	const char *municipality;         /* required */
	const char *municipality_details;
	const char *province;             /* required in Italy */
	const char *foreign_state;        /* NULL or "ITALIA": Italy */
};

/* An address rewritten into SEND's character set; strings owned (send_address_norm_release). */
struct send_address_norm {
	char *address, *address_details, *at, *zip, *municipality, *municipality_details,
		*province, *foreign_state;
};

/*
 * Make an address acceptable to SEND: upper case, accents transliterated
 * ("à" -> "A'"), characters outside [0-9A-Z ./'-] replaced by a space,
 * spaces collapsed; province required (two letters) in Italy, zip five
 * digits in Italy; each printed row within 44 characters (address;
 * addressDetails; at + municipalityDetails; zip + municipality + province;
 * foreignState). where prefixes field names in messages
 * ("recipients[0].physicalAddress"). 0 or SB_EINVAL naming the field.
 */
int send_address_normalize(const struct send_address *in, const char *where,
			   struct send_address_norm *out, struct sb_err *err);
void send_address_norm_release(struct send_address_norm *a);

enum send_recipient_type { SEND_PF, SEND_PG };
enum send_fee_policy { SEND_FEE_FLAT_RATE, SEND_FEE_DELIVERY_MODE };
enum send_comm_type { SEND_AR_REGISTERED_LETTER, SEND_REGISTERED_LETTER_890 };

struct send_payment {
	bool has_pagopa;
	const char *notice_code;           /* 18 digits */
	const char *creditor_tax_id;       /* 11 digits */
	bool pagopa_apply_cost;
	bool has_pagopa_attachment;
	struct send_file_ref pagopa_attachment;
	bool has_f24;
	const char *f24_title;
	bool f24_apply_cost;
	struct send_file_ref f24_metadata; /* application/json */
};

struct send_recipient {
	enum send_recipient_type type;
	const char *tax_id;
	const char *denomination;
	const char *pec;                   /* digital domicile, or NULL */
	bool has_address;
	struct send_address address;
	const struct send_payment *payments;
	size_t npayments;
};

struct send_document {
	const char *title;                 /* optional */
	struct send_file_ref ref;          /* application/pdf */
};

/*
 * Everything NewNotificationRequestV25 carries. Strings are borrowed; NULL
 * (or "") means absent and the field is left out of the request.
 */
struct send_notification {
	const char *protocol_number;       /* paProtocolNumber, required */
	const char *idempotence_token;
	const char *subject;               /* required, <= 134 */
	const char *abstract;
	const char *taxonomy_code;         /* required */
	const char *sender_denomination;   /* required */
	const char *sender_tax_id;         /* NULL: the client's */
	const char *group;                 /* NULL: the client's [send] group */
	const char *pagopa_int_mode;       /* NONE, SYNC, ASYNC or NULL */
	const char *payment_expiration_date;
	const char *cancelled_iun;
	bool has_amount;
	int64_t amount;
	enum send_fee_policy fee_policy;
	bool has_pa_fee;
	int pa_fee;
	bool has_vat;
	int vat;
	enum send_comm_type comm_type;
	const struct send_recipient *recipients;
	size_t nrecipients;
	const struct send_document *documents;
	size_t ndocuments;
};

/*
 * The JSON body of POST /delivery/{v}/requests, checked (required fields,
 * lengths, patterns, fee-policy rules) and with addresses normalised.
 * *json_out is owned (free()). 0 or SB_EINVAL naming the field.
 */
int send_notification_json(const struct send_client *c, const struct send_notification *n,
			   char **json_out, struct sb_err *err);

#define SEND_REQUEST_ID_MAX 64

/*
 * Create the notification. On 202 request_id_out gets the
 * notificationRequestId. On 409 (already submitted) the existing request
 * is looked up by protocol number and idempotence token and its id is
 * returned, with *existing_out = true (never a second creation). Because
 * of that, transient failures (5xx, 429, lost replies) are retried with r
 * (NULL: defaults): a retry of a request SEND did take ends in the 409
 * path. existing_out may be NULL.
 */
int send_notification_create(struct send_client *c, const struct send_notification *n,
			     const struct send_retry *r, char request_id_out[SEND_REQUEST_ID_MAX],
			     bool *existing_out, struct sb_err *err);

/* ---- acceptance -------------------------------------------------------- */

enum send_request_state { SEND_WAITING, SEND_ACCEPTED, SEND_REFUSED };

#define SEND_MAX_REFUSALS 16

struct send_refusal {
	char code[64];
	char element[128];
	char detail[256];
};

struct send_request_status {
	enum send_request_state state;
	char request_id[SEND_REQUEST_ID_MAX];
	char iun[32];                     /* when ACCEPTED */
	long retry_after;                 /* seconds, when WAITING; -1 if not given */
	size_t nrefusals;                 /* when REFUSED (at most SEND_MAX_REFUSALS kept) */
	struct send_refusal refusals[SEND_MAX_REFUSALS];
};

/* GET /delivery/{v}/requests?notificationRequestId=. SB_ENOTFOUND for an unknown id. */
int send_request_status_get(struct send_client *c, const char *request_id,
			    struct send_request_status *out, struct sb_err *err);
/* Same by ?paProtocolNumber=&idempotenceToken= (token may be NULL). */
int send_request_status_find(struct send_client *c, const char *protocol_number,
			     const char *idempotence_token, struct send_request_status *out,
			     struct sb_err *err);

/*
 * Poll until the request is no longer WAITING, sleeping retryAfter seconds
 * (through r->sleep_ms when set) between polls, at most max_wait_ms in all;
 * transient failures are retried with r. Returns 0 with out ACCEPTED or
 * REFUSED, or SB_ETEMP when still WAITING after max_wait_ms (err->retry_after
 * then holds SEND's last retryAfter, in seconds).
 */
int send_request_wait(struct send_client *c, const char *request_id, long max_wait_ms,
		      const struct send_retry *r, struct send_request_status *out,
		      struct sb_err *err);

/* ---- reading a notification ------------------------------------------ */

struct send_legal_fact_id {
	char *key;
	char *category;                   /* open set: kept as text */
};

struct send_timeline_element {
	char *element_id;
	char *category;                   /* open set: unknown categories are kept */
	char *timestamp;                  /* eventTimestamp (or timestamp) */
	int rec_index;                    /* details.recIndex, -1 if none */
	struct send_legal_fact_id *legal_facts;
	size_t nlegal_facts;
};

struct send_status_change {
	char *status;
	char *active_from;
};

struct send_sent_notification {
	char *iun;
	char *status;                     /* notificationStatus, open set */
	char *sent_at;
	char *protocol_number;
	struct send_status_change *history;
	size_t nhistory;
	struct send_timeline_element *timeline;
	size_t ntimeline;
	size_t ndocuments;
	size_t nrecipients;
};

/* GET /delivery/{v}/notifications/sent/{iun}. Free with send_sent_notification_free. */
int send_notification_get(struct send_client *c, const char *iun,
			  struct send_sent_notification **out, struct sb_err *err);
void send_sent_notification_free(struct send_sent_notification *n);

/* ---- legal facts -------------------------------------------------------- */

struct send_legal_fact {
	char *key;
	char *category;
	char *tax_id;                      /* personal data: never log */
};

/* GET /delivery-push/{v}/{iun}/legal-facts. Free the array with send_legal_facts_free. */
int send_legal_facts_list(struct send_client *c, const char *iun, struct send_legal_fact **out,
			  size_t *n_out, struct sb_err *err);
void send_legal_facts_free(struct send_legal_fact *f, size_t n);

/*
 * Download one legal fact to out_path (0600, replaced atomically): asks
 * /delivery-push/{iun}/download/legal-facts/{id} (the key without
 * "safestorage://"), waits retryAfter seconds while the file is being made
 * (at most max_wait_ms), downloads the url without auth headers and checks
 * that the length equals contentLength. size_out and sha256_out (the
 * SHA-256 of the bytes written, hashed as they arrived) may be NULL.
 */
int send_legal_fact_download(struct send_client *c, const char *iun, const char *key,
			     const char *out_path, long max_wait_ms, const struct send_retry *r,
			     uint64_t *size_out, unsigned char sha256_out[32], struct sb_err *err);

/* ---- attachments --------------------------------------------------------- */

enum send_attachment_kind { SEND_ATT_DOCUMENT, SEND_ATT_PAGOPA, SEND_ATT_F24 };

struct send_attachment_sel {
	enum send_attachment_kind kind;
	unsigned index;                    /* docIdx, or the recipient's index */
	int attachment_idx;                /* payment attachmentIdx, -1 to leave out */
};

/*
 * Download a notified document or a payment attachment to out_path, check
 * its length and that its SHA-256 equals both what SEND declares and, when
 * expected_sha256 (base64) is not NULL, what was uploaded. A mismatch is
 * SB_EREJECT naming the attachment. sha256_out (45 bytes) may be NULL.
 * out_path NULL: the bytes are only hashed as they arrive, never written
 * (the same checks, with the contentLength ceiling).
 */
int send_attachment_download(struct send_client *c, const char *iun,
			     const struct send_attachment_sel *sel, const char *expected_sha256,
			     const char *out_path, long max_wait_ms, const struct send_retry *r,
			     char sha256_out[45], struct sb_err *err);

/* ---- price and cancellation ------------------------------------------- */

struct send_price {
	char iun[32];
	int64_t partial_price, total_price;   /* eurocent; -1 when absent */
	int64_t vat, pa_fee, send_fee, analog_cost;
	char refinement_date[40];
	char view_date[40];
};

/* GET /delivery/{v}/price/{senderTaxId}/{noticeCode}. */
int send_price_get(struct send_client *c, const char *notice_code, struct send_price *out,
		   struct sb_err *err);

/* PUT /delivery-push/{v}/notifications/cancel/{iun}; 202 means the request was taken. */
int send_notification_cancel(struct send_client *c, const char *iun, struct sb_err *err);

/* ---- event streams ---------------------------------------------------- */

#define SEND_EVENT_ID_MAX 40

/*
 * Create a TIMELINE stream titled [send] stream_title (groups = the client's
 * group, or []) and return its streamId (a uuid). Call once and keep the id.
 */
int send_stream_create(struct send_client *c, char stream_id_out[37], struct sb_err *err);
/* The same with an explicit title (1..256 characters). */
int send_stream_create_titled(struct send_client *c, const char *title, char stream_id_out[37],
			      struct sb_err *err);
/* [send] stream_title, or its default. */
const char *send_stream_title(const struct send_client *c);
/*
 * GET /delivery-progresses/{v}/streams: the id of the first stream titled
 * title, so that a stream created just before a crash is found again.
 * SB_ENOTFOUND when there is none.
 */
int send_stream_find(struct send_client *c, const char *title, char stream_id_out[37],
		     struct sb_err *err);

/*
 * GET /delivery-progresses/{v}/streams/{id}: *disabled tells whether the
 * stream was disabled (disabledDate set: by an administrator, or by a
 * stream created to replace it). A disabled stream still serves what it
 * holds but gets no new events; SEND deletes it after 14 days.
 * SB_ENOTFOUND when SEND does not have it.
 */
int send_stream_disabled(struct send_client *c, const char *stream_id, bool *disabled,
			 struct sb_err *err);

struct send_event {
	char *event_id;
	char *request_id;
	char *iun;                        /* may be NULL */
	char *new_status;                 /* may be NULL */
	struct send_timeline_element element;
};

/*
 * Store callback: keep events[0..n) durably; return 0 when they are stored.
 * Anything else stops the poll and the cursor is not advanced.
 */
typedef int (*send_event_store_fn)(void *ctx, const struct send_event *events, size_t n,
				   struct sb_err *err);

/*
 * One read of GET /delivery-progresses/{v}/streams/{id}/events with
 * lastEventId = *cursor ("" for none). The page (at most 50 events) goes to
 * store; only when store returns 0 is cursor advanced to the last eventId.
 * retry_after_ms_out gets the retry-after header (milliseconds; 0 means read
 * again now). 429 is SB_ETEMP with err->retry_after in seconds (rounded up).
 * n_out (may be NULL) gets the number of events.
 */
int send_stream_poll(struct send_client *c, const char *stream_id,
		     char cursor[SEND_EVENT_ID_MAX], send_event_store_fn store, void *ctx,
		     size_t *n_out, long *retry_after_ms_out, struct sb_err *err);

#endif
