/*
 * PDND client: the client assertion, the token request, the voucher cache
 * and the ModI security headers (INTEGRITY_REST_02, AUDIT_REST_02).
 * Spec: ../shared/specs/PDND-SUMMARY.md sections 3 to 7, and
 * ../shared/specs/pdnd/authorizationServerApi.yml.
 *
 * A struct pdnd_client is thread-safe: any number of threads may ask it
 * for vouchers and ModI headers at once. Each thread brings its own
 * struct sb_http for e-service calls (sb_http.h).
 */
#ifndef PDND_H
#define PDND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_crypto.h"
#include "sb_err.h"
#include "sb_http.h"
#include "sb_voucher.h"

struct sb_cfg;
struct pdnd_client;

/* A kid is the RFC 7638 thumbprint: base64url(SHA-256) is always 43 characters. */
#define PDND_KID_LEN 43
#define PDND_KID_SIZE 44

/*
 * RFC 7638 JWK thumbprint of an RSA key's public half, as PDND computes
 * the kid it shows for a key: SHA-256 of {"e":..,"kty":"RSA","n":..}.
 */
int pdnd_kid_compute(const struct sb_pkey *k, char out[PDND_KID_SIZE], struct sb_err *err);

/*
 * The kid of a PEM file holding a public key (SPKI) or a private key; a
 * private key file must pass sb_secret_file_check. SB_ENOTFOUND,
 * SB_ECONFIG (not a usable RSA key, bad mode).
 */
int pdnd_kid_file(const char *path, char out[PDND_KID_SIZE], struct sb_err *err);

struct pdnd_client_opts {
	const char *token_url;      /* PDND token endpoint */
	const char *client_id;      /* a UUID: iss and sub of the assertion */
	const char *kid;            /* NULL or "": the thumbprint of the key */
	const char *key_file;       /* RSA private key, mode 0600 */
	const char *audience;       /* aud of the assertion, without scheme */
	const char *ca_file;        /* NULL: system store */
	long timeout_ms;            /* token request; 0: 30 s */
	int64_t renew_before;       /* seconds before exp a cached voucher is renewed; <0: 120 */
	int64_t assertion_ttl;      /* exp - iat of assertions and ModI tokens; 0: 300 */
	/* Clock for cache decisions only (tests move time with it); NULL: sb_now. */
	int64_t (*clock)(void);
};

/*
 * Check the options (client_id a UUID, audience without scheme, key RSA >=
 * 2048 bits and not readable by others, kid well formed) and load the key.
 * SB_ECONFIG naming the option at fault. Free with pdnd_client_free.
 */
int pdnd_client_new(struct pdnd_client **out, const struct pdnd_client_opts *opts,
		    struct sb_err *err);
/* Same from the [pdnd] section of the configuration. */
int pdnd_client_from_cfg(struct pdnd_client **out, const struct sb_cfg *cfg, struct sb_err *err);
void pdnd_client_free(struct pdnd_client *c);

/* Borrowed until pdnd_client_free. */
const char *pdnd_client_kid(const struct pdnd_client *c);
const char *pdnd_client_id(const struct pdnd_client *c);
/* Token requests sent so far (each POST to the token endpoint counts once). */
uint64_t pdnd_client_token_requests(const struct pdnd_client *c);

/*
 * Sign a client assertion for purpose_id (a UUID): header alg, kid, typ;
 * claims exactly iss, sub, aud, purposeId, jti, iat, exp, plus digest when
 * digest_hex (64 hex digits, the SHA-256 of a TrackingEvidence) is given.
 * Appends the compact JWS to out (a secret). SB_EINVAL for a bad argument.
 */
int pdnd_assertion_sign(struct pdnd_client *c, const char *purpose_id, const char *digest_hex,
			struct sb_buf *out, struct sb_err *err);

/*
 * Look at an assertion as PDND's strict mode would (header members, alg,
 * kid against this client's key, aud, sub/iss against client_id, iat/exp
 * against now, the exact claim set, digest shape) and write the first
 * problem found into out, or "" when none is visible locally. Used to
 * explain PDND's opaque 015-0008.
 */
void pdnd_assertion_diagnose(const struct pdnd_client *c, const char *assertion,
			     const char *client_id, char *out, size_t out_size);

/* A voucher and what send-bridge reads from it (it is otherwise opaque). */
struct pdnd_voucher {
	char *token;                /* the Bearer token: a secret, wiped by release */
	char aud[512];              /* the e-service audience */
	char purpose_id[64];
	char jti[64];
	char digest[65];            /* digest.value when the voucher is bound to one, else "" */
	int64_t iat, exp;
	int64_t expires_in;
};

void pdnd_voucher_release(struct pdnd_voucher *v);
/* Deep copy (the token too). */
void pdnd_voucher_copy(struct pdnd_voucher *dst, const struct pdnd_voucher *src);

/*
 * Ask the token endpoint for a new voucher (no cache): for AUDIT_REST_02
 * pass digest_hex, which binds the voucher to one TrackingEvidence.
 * Returns 0, SB_ETEMP (network, 429, 5xx; err->retry_after set when PDND
 * said), SB_EREJECT (PDND refused: err->msg has code, correlationId and
 * the likely causes), SB_EINVAL (a reply that is not a voucher).
 */
int pdnd_voucher_request(struct pdnd_client *c, const char *purpose_id, const char *digest_hex,
			 struct pdnd_voucher *out, struct sb_err *err);

/*
 * Post a ready-made assertion with this form client_id (tests and
 * `pdnd token --debug` use it to see PDND's answer to any assertion).
 * Same returns as pdnd_voucher_request.
 */
int pdnd_token_post(struct pdnd_client *c, const char *form_client_id, const char *assertion,
		    struct pdnd_voucher *out, struct sb_err *err);

/*
 * A voucher for purpose_id from the cache, renewed renew_before seconds
 * before it expires. Concurrent callers share one renewal: one thread asks
 * PDND while the others wait for its answer (and share its error).
 */
int pdnd_voucher_get(struct pdnd_client *c, const char *purpose_id, struct pdnd_voucher *out,
		     struct sb_err *err);

/* Drop every cached voucher (after a 401 from an e-service). */
void pdnd_voucher_forget(struct pdnd_client *c, const char *purpose_id);

/* The provider the SEND client uses (common/sb_voucher.h); c must outlive it. */
struct sb_voucher_provider pdnd_voucher_provider(struct pdnd_client *c);

/* ModI. */

/* "SHA-256=<base64 of SHA-256(body)>", appended to out. */
int pdnd_modi_digest(const void *body, size_t len, struct sb_buf *out);

/*
 * Agid-JWT-Signature (INTEGRITY_REST_02): iss = sub = client_id, aud, iat,
 * exp, jti, signed_headers [{"digest":..},{"content-type":..}]. Appended
 * to out.
 */
int pdnd_modi_signature(struct pdnd_client *c, const char *aud, const char *digest_header,
			const char *content_type, struct sb_buf *out, struct sb_err *err);

/* Who is behind an e-service query (AUDIT_REST_02 and the access trail). */
struct pdnd_audit_ctx {
	const char *user_id;        /* operator or service user */
	const char *user_location;  /* workstation or system */
	const char *loa;            /* e.g. "LoA3" */
};

/*
 * Agid-JWT-TrackingEvidence (AUDIT_REST_02): iss, aud, purposeId, jti, iat,
 * exp, dnonce, userID, userLocation, LoA. Appended to out.
 */
int pdnd_modi_tracking(struct pdnd_client *c, const char *aud, const char *purpose_id,
		       const struct pdnd_audit_ctx *who, struct sb_buf *out, struct sb_err *err);

/* One call to an e-service protected with ModI. */
struct pdnd_call {
	const char *method;          /* "POST" or "GET" */
	const char *url;
	const char *purpose_id;
	const char *audience;        /* NULL: the voucher's aud */
	const char *body;            /* JSON, sent byte for byte; NULL for GET */
	size_t body_len;
	bool integrity;              /* INTEGRITY_REST_02: Digest + Agid-JWT-Signature */
	bool audit;                  /* AUDIT_REST_02: TrackingEvidence + a fresh bound voucher */
	struct pdnd_audit_ctx who;   /* used when audit */
};

/* Correlation ids of one call, for the access trail and support requests. */
struct pdnd_call_trace {
	char govway_id[128];         /* GovWay-Transaction-ID, or the body's govway_id */
	char voucher_jti[64];
};

/*
 * Perform call through h (the caller's, one per thread): voucher (cached
 * unless audit), ModI headers, request. resp is filled as sb_http_do does
 * (status is data: the caller interprets it). On 401 the cached voucher is
 * dropped and the call retried once with a new one.
 */
int pdnd_call_do(struct pdnd_client *c, struct sb_http *h, const struct pdnd_call *call,
		 struct sb_http_resp *resp, struct pdnd_call_trace *trace, struct sb_err *err);

#endif
