/*
 * INAD ("INAD CONSULTAZIONE DD") through PDND: extract by tax code,
 * verify, and the asynchronous bulk list. Voucher only (no ModI headers),
 * so the voucher comes from the cache. Spec:
 * ../shared/specs/inad/inad_api_extraxtion.yaml, PDND-SUMMARY.md section 9.
 * Results hold personal data (PEC addresses): never log them.
 */
#ifndef PDND_INAD_H
#define PDND_INAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pdnd.h"

struct sb_cfg;

struct pdnd_inad_cfg {
	const char *base_url;       /* .../rest/inad/v1/domiciliodigitale */
	const char *purpose;
};

void pdnd_inad_cfg_load(struct pdnd_inad_cfg *out, const struct sb_cfg *cfg);

struct pdnd_domicile {
	char *address;              /* PEC */
	char *profession;           /* practicedProfession, NULL for a personal domicile */
	int64_t end_validity;       /* 0: none */
};

struct pdnd_inad_result {
	bool found;                 /* false: INAD has no domicile for the tax code (404) */
	char tax_id[17];
	struct pdnd_domicile *items;
	size_t n;
};

void pdnd_inad_result_release(struct pdnd_inad_result *r);

/*
 * GET /extract/{tax_id}?practicalReference=ref. 0 with out->found false
 * when INAD has none; SB_EREJECT (400/401/403, with INAD's detail),
 * SB_ETEMP (network, 429, 5xx), SB_EINVAL (bad arguments or reply).
 */
int pdnd_inad_extract(struct pdnd_client *c, struct sb_http *h, const struct pdnd_inad_cfg *cfg,
		      const char *tax_id, const char *practical_ref, struct pdnd_inad_result *out,
		      struct pdnd_call_trace *trace, struct sb_err *err);

/* GET /verify: *outcome_out true when address is tax_id's domicile on date (YYYY-MM-DD). */
int pdnd_inad_verify(struct pdnd_client *c, struct sb_http *h, const struct pdnd_inad_cfg *cfg,
		     const char *tax_id, const char *address, const char *date,
		     const char *practical_ref, bool *outcome_out, struct sb_err *err);

/*
 * The bulk list for up to 1,000 tax codes: submit, poll the state every
 * poll_ms (at most max_polls times), follow the 303 to the result, read it.
 * out[i] is filled for tax_ids[i] (found false when absent from the list).
 */
#define PDND_INAD_MAX_BULK 1000
int pdnd_inad_bulk(struct pdnd_client *c, struct sb_http *h, const struct pdnd_inad_cfg *cfg,
		   const char *const *tax_ids, size_t n, const char *practical_ref, long poll_ms,
		   int max_polls, struct pdnd_inad_result *out, struct sb_err *err);

/*
 * The domicile to use at time now: entries whose dateEndValidity is past
 * are skipped; a personal one is preferred unless prefer_professional
 * (SEND's newer workflow), with the other kind as fallback. NULL if none.
 */
const struct pdnd_domicile *pdnd_inad_pick(const struct pdnd_inad_result *r, int64_t now,
					   bool prefer_professional);

/* Parse a Response_Request_Digital_Address object (exposed for tests). */
int pdnd_inad_parse(const char *body, size_t len, struct pdnd_inad_result *out,
		    struct sb_err *err);

#endif
