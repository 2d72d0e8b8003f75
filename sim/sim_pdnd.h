/*
 * send-sim's PDND side, shared by sim_pdnd*.c, sim_anpr.c and sim_inad.c:
 * the token server's registered clients and purposes, its own signing key,
 * the e-service audiences, and the fixture registry of test subjects. All
 * of it comes from one JSON file given with --pdnd FILE (docs/pdnd.md).
 *
 * Written for the simulator only, from the specs: it shares no code with
 * pdnd/, so a misreading in the client is not repeated here.
 */
#ifndef SIM_PDND_H
#define SIM_PDND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sb_buf.h"
#include "sim.h"

/*
 * Read and remove "--pdnd FILE" from argv (before send-sim parses its own
 * options) and load FILE into s->pdnd. Without the option the PDND, ANPR
 * and INAD stand-ins are off (their paths answer 404). Returns 0, or -1
 * after printing why on stderr.
 */
int sim_pdnd_init(struct sim *s, int *argc, char **argv);

bool sim_pdnd_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs);
bool sim_anpr_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs);
bool sim_inad_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs);

/* Internal to the PDND stand-ins. */
struct sim_pdnd;

/* The loaded configuration (NULL when --pdnd was not given). */
struct sim_pdnd *sim_pdnd_state(struct sim *s);
/* Borrowed: the "subjects" and "domiciles" arrays of the registry. */
json_t *sim_pdnd_subjects(struct sim_pdnd *p);
json_t *sim_pdnd_domiciles(struct sim_pdnd *p);

/*
 * Check "Authorization: Bearer <voucher>" for eservice ("anpr-c030",
 * "anpr-c001", "inad"): signature by the token server's key, typ at+jwt,
 * aud the e-service audience, purposeId a purpose of that e-service, not
 * expired. On success *claims_out is a new reference to the claims. On
 * failure why says what, for the simulator's log.
 */
bool sim_pdnd_check_voucher(struct sim_pdnd *p, const char *authz, const char *eservice,
			    json_t **claims_out, char *why, size_t why_size);

/*
 * Check the ModI headers of rq against the voucher claims: Digest equal to
 * the SHA-256 of the body received, Agid-JWT-Signature signed by the
 * voucher's client with aud the e-service audience and signed_headers an
 * array holding that digest and the content type; when audit, an
 * Agid-JWT-TrackingEvidence whose SHA-256 is the voucher's digest.value.
 */
bool sim_pdnd_check_modi(struct sim_pdnd *p, const struct sim_request *rq, const json_t *voucher,
			 const char *eservice, bool audit, char *why, size_t why_size);

/* A fresh UUID string for ids (correlationId, govway_id). */
void sim_pdnd_uuid(char out[37]);

/* JWS helpers (sim_pdnd_jwt.c). */
struct evp_pkey_st;
/* RFC 7638 thumbprint of an RSA public key. */
int sim_jwk_thumbprint(const struct evp_pkey_st *k, char out[44]);
/* Verify an RS256 compact JWS with k; header and payload are new references on success. */
bool sim_jws_verify(const struct evp_pkey_st *k, const char *jws, size_t len, char *why,
		    size_t why_size);
/* Decode part 0 or 1 of a compact JWS; new reference or NULL. */
json_t *sim_jws_part(const char *jws, size_t len, int part);
/* Sign header and claims (RS256); appends the compact JWS to out. */
int sim_jws_sign(struct evp_pkey_st *k, const json_t *header, const json_t *claims,
		 struct sb_buf *out);

#endif
