/*
 * ANPR e-services through PDND: C030 (tax code to idANPR) and C001
 * (residence for notification purposes), both POST /anpr-service-e002 with
 * INTEGRITY_REST_02 and AUDIT_REST_02. Specs: ../shared/specs/anpr/C030-*.yaml,
 * C001-*.yaml, PDND-SUMMARY.md sections 7 and 8.
 *
 * Thread-safe as far as the pdnd_client is; each thread passes its own
 * struct sb_http. Results hold personal data: never log them.
 */
#ifndef PDND_ANPR_H
#define PDND_ANPR_H

#include <stdbool.h>
#include <stddef.h>

#include "pdnd.h"

struct sb_cfg;

/* A postal address as SEND needs it (physicalAddress), Italian or foreign. */
struct pdnd_address {
	char *at;             /* presso, or NULL */
	char *line;           /* "VIA ROMA 10B" */
	char *detail;         /* "scala A interno 4", or NULL */
	char *zip;
	char *municipality;
	char *province;       /* sigla; NULL abroad */
	char *state;          /* NULL in Italy, the country abroad */
	bool foreign;
	char since[11];       /* dataDecorrenzaResidenza, "" if unknown */
};

void pdnd_address_release(struct pdnd_address *a);
void pdnd_address_copy(struct pdnd_address *dst, const struct pdnd_address *src);
/* true when both name the same place (case and spacing ignored). */
bool pdnd_address_same(const struct pdnd_address *a, const struct pdnd_address *b);
/* One line for display ("VIA ROMA 10, 00100 ROMA RM"), appended to out. */
void pdnd_address_format(const struct pdnd_address *a, struct sb_buf *out);

/* Where and for what the e-services are called ([anpr] in the configuration). */
struct pdnd_anpr_cfg {
	const char *c030_url;       /* the .../v1 base; "/anpr-service-e002" is appended */
	const char *c001_url;
	const char *c030_audience;
	const char *c001_audience;
	const char *c030_purpose;
	const char *c001_purpose;
};

/* Fill from [anpr]; strings borrowed from cfg. */
void pdnd_anpr_cfg_load(struct pdnd_anpr_cfg *out, const struct sb_cfg *cfg);

enum pdnd_anpr_outcome {
	PDND_ANPR_FOUND,
	PDND_ANPR_NOT_REGISTERED,  /* EN122 "Soggetto non registrato in ANPR" */
	PDND_ANPR_CANCELLED,       /* EN122 "Soggetto cancellato da ANPR" */
};

struct pdnd_anpr_result {
	enum pdnd_anpr_outcome outcome;
	char id_anpr[32];
	bool deceased;
	char death_date[11];
	bool aire;                       /* registered abroad */
	bool has_residence;
	struct pdnd_address residence;   /* the one with the latest start date */
	char warnings[64];               /* codes of listaAnomalie, e.g. "EN148" */
	char id_operazione[64];          /* idOperazioneANPR, for support */
};

void pdnd_anpr_result_release(struct pdnd_anpr_result *r);

/* Who asks and why: userID of the tracking evidence and motivoRichiesta. */
struct pdnd_anpr_query {
	struct pdnd_audit_ctx who;
	const char *reason;         /* motivoRichiesta: the act reference or protocol number */
};

/*
 * C030: tax code to idANPR. Returns 0 with out->outcome (FOUND, or one of
 * the EN122 cases), SB_EREJECT for other ANPR errors (listaErrori code and
 * text in err) and gateway refusals (InteroperabilityInvalidRequest,
 * "Unknown API Request"), SB_ETEMP for network, 429 and 5xx.
 */
int pdnd_anpr_c030(struct pdnd_client *c, struct sb_http *h, const struct pdnd_anpr_cfg *cfg,
		   const struct pdnd_anpr_query *q, const char *tax_id,
		   struct pdnd_anpr_result *out, struct pdnd_call_trace *trace, struct sb_err *err);

/* C001 by idANPR (preferred) or, when id_anpr is NULL, by tax code. Same returns. */
int pdnd_anpr_c001(struct pdnd_client *c, struct sb_http *h, const struct pdnd_anpr_cfg *cfg,
		   const struct pdnd_anpr_query *q, const char *tax_id, const char *id_anpr,
		   struct pdnd_anpr_result *out, struct pdnd_call_trace *trace, struct sb_err *err);

/*
 * Interpret an ANPR reply (status and body) for tax_id: exposed for tests.
 * Keeps only subjects whose codFiscale equals tax_id (or all when tax_id is
 * NULL) and takes the residence with the latest dataDecorrenzaResidenza.
 */
int pdnd_anpr_parse(long status, const char *body, size_t len, const char *tax_id,
		    struct pdnd_anpr_result *out, struct sb_err *err);

#endif
