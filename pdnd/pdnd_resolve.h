/*
 * Resolution of a recipient before notification: digital domicile from
 * INAD, residence from ANPR (C030 then C001), the act's own address and
 * PEC, and the office's policy when they differ. Every e-service query is
 * authorised first (operator and office against the configuration) and
 * written to the access trail; results are cached in the store.
 *
 * A struct pdnd_resolver uses one store connection and is used by one
 * thread at a time (give each worker its own; the pdnd_client can be
 * shared).
 */
#ifndef PDND_RESOLVE_H
#define PDND_RESOLVE_H

#include <stdbool.h>

#include "pdnd.h"
#include "pdnd_anpr.h"
#include "pdnd_inad.h"

struct sb_cfg;
struct sqlite3;
struct pdnd_resolver;

/* Who queries and why: the access trail's columns and ModI's userID. */
struct pdnd_who {
	const char *operator_id;
	const char *office;
	const char *act_ref;        /* NULL: not tied to an act (reported as such) */
};

/*
 * May operator_id of office query eservice ("anpr-c030", "anpr-c001",
 * "inad") for purpose_id? The office must be configured, list the operator
 * in operators and the e-service in eservices, and list the purpose in
 * purposes when that key is set. SB_EREJECT saying which rule refused.
 */
int pdnd_authorize(const struct sb_cfg *cfg, const char *office, const char *operator_id,
		   const char *eservice, const char *purpose_id, struct sb_err *err);

/*
 * cfg, c and db are borrowed and must outlive the resolver; key is the
 * installation key for subject hashes (copied). Reads [anpr], [inad] and
 * [pdnd] user_location / loa, and the audit key ([pdnd] audit_key_file:
 * SB_ECONFIG when it cannot be read) that keeps the trail's seal.
 */
int pdnd_resolver_new(struct pdnd_resolver **out, const struct sb_cfg *cfg,
		      struct pdnd_client *c, struct sqlite3 *db, const unsigned char key[32],
		      struct sb_err *err);
void pdnd_resolver_free(struct pdnd_resolver *r);

enum pdnd_recipient_type { PDND_PF, PDND_PG };

struct pdnd_recipient {
	enum pdnd_recipient_type type;
	const char *tax_id;
	const char *act_pec;                    /* NULL if the act gives none */
	const struct pdnd_address *act_address; /* NULL if the act gives none */
};

enum pdnd_source { PDND_SRC_NONE, PDND_SRC_INAD, PDND_SRC_ANPR, PDND_SRC_ACT };

const char *pdnd_source_name(enum pdnd_source s);

struct pdnd_resolution {
	char *domicile;                  /* PEC to notify, or NULL */
	enum pdnd_source domicile_source;
	bool has_residence;              /* from ANPR */
	struct pdnd_address residence;
	bool has_act_address;
	struct pdnd_address act_address;
	bool differs;                    /* both known and not the same place */
	enum pdnd_source address_source; /* which of the two to use (NONE: neither) */
	bool anpr_queried;
	enum pdnd_anpr_outcome anpr_outcome;
	bool deceased;
	bool aire;
	bool from_cache;                 /* every part came from the cache */
};

void pdnd_resolution_release(struct pdnd_resolution *res);
/* The address to use (borrowed from res), or NULL. */
const struct pdnd_address *pdnd_resolution_address(const struct pdnd_resolution *res);

/*
 * Resolve one recipient through h (the caller's). Persons (PF): INAD and
 * ANPR as above; companies (PG) keep the act's PEC and address, no query.
 * Returns 0, SB_EINVAL (bad tax code), SB_EREJECT (not authorised: nothing
 * left the machine, and the refusal is in the trail; or an e-service
 * refused), SB_ETEMP, SB_EIO (store).
 */
int pdnd_resolve(struct pdnd_resolver *r, struct sb_http *h, const struct pdnd_who *who,
		 const struct pdnd_recipient *rec, struct pdnd_resolution *out, struct sb_err *err);

/*
 * For a batch of persons (an act with many recipients, a day's acts): when
 * n is at least [inad] bulk_threshold, ask INAD once with the bulk list (in
 * chunks of 1,000) for the tax codes not already cached, trace and cache
 * each answer, so that the pdnd_resolve() calls that follow take INAD from
 * the cache. Below the threshold nothing is done. *fetched_out (may be
 * NULL) gets the count asked. Same returns as pdnd_resolve().
 */
int pdnd_resolve_prefetch(struct pdnd_resolver *r, struct sb_http *h, const struct pdnd_who *who,
			  const char *const *tax_ids, size_t n, size_t *fetched_out,
			  struct sb_err *err);

#endif
