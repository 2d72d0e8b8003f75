/*
 * Declarations shared by the pdnd/ sources only (curl's -int.h): JWS helpers and
 * small validators. No other module includes this header.
 */
#ifndef PDND_INT_H
#define PDND_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "sb_buf.h"
#include "sb_err.h"

struct pdnd_client;

/* 8-4-4-4-12 hex digits. */
bool pdnd_is_uuid(const char *s);
/* Exactly 64 hex digits. */
bool pdnd_is_hex64(const char *s);

/*
 * New claims object with iss (and sub when with_sub), aud, jti (fresh
 * UUID), iat (now - 5 s) and exp (iat + ttl): the start of every token
 * send-bridge signs. Caller owns the reference.
 */
json_t *pdnd_claims_base(struct pdnd_client *c, const char *aud, bool with_sub);

/* Sign claims with header {"alg":"RS256","kid":..,"typ":"JWT"}; append the JWS to out. */
int pdnd_jws_sign(struct pdnd_client *c, json_t *claims, struct sb_buf *out, struct sb_err *err);

/* Decode part 0 (header) or 1 (payload) of a compact JWS as a JSON object (new reference). */
int pdnd_jws_decode_part(const char *jws, int part, json_t **out, struct sb_err *err);

/* Percent-encode s (all but unreserved characters) and append it to b. */
void pdnd_url_escape(struct sb_buf *b, const char *s);

#endif
