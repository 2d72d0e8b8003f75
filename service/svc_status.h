/*
 * What staff see of the acts: one row per act (act id, office, protocol
 * number, IUN, state, last event, receipts, cost, first recipient, note),
 * for `send-bridge status` and the web page. Acts rejected before they had
 * a row (a broken act.json) are listed too, from the pipeline's outcomes.
 *
 * Personal data (the recipient's tax code and name) is masked with
 * sb_pii_mask unless the caller asks for it in clear.
 */
#ifndef SVC_STATUS_H
#define SVC_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sb_buf.h"
#include "sb_err.h"

struct svc_store;

struct svc_status_filter {
	const char *query;    /* act id, protocol number, IUN or a recipient's tax code;
				 NULL: all */
	const char *office;   /* NULL: all */
	const char *state;    /* a state name (checked by the caller); NULL: all */
	size_t limit;         /* 0: no limit; the most recently updated first */
};

struct svc_status_row {
	char *act_id;
	char *office;            /* NULL for an act rejected at intake */
	char *protocol_number;   /* NULL until registered */
	char *iun;               /* NULL until accepted */
	char *state;
	char *last_event;        /* category of the newest stream event, or NULL */
	char *note;              /* last error, or where the reason is */
	char *tax_id;            /* first recipient, or NULL */
	char *denomination;
	int64_t nrecipients;
	int64_t receipts;
	int64_t cost_cents;      /* -1 when unknown */
	int64_t updated_at;
	char *folder;            /* "done/<name>" or "rejected/<name>" once moved */
};

/* Rows matching f; *rows_out owned (svc_status_rows_free). */
int svc_status_list(struct svc_store *s, const struct svc_status_filter *f,
		    struct svc_status_row **rows_out, size_t *n_out, struct sb_err *err);
void svc_status_rows_free(struct svc_status_row *rows, size_t n);

/*
 * The recipient's tax code (name when name is true) as shown: masked unless
 * personal is true; "" when the act has no recipient. Returns v or buf.
 */
const char *svc_status_recipient(const struct svc_status_row *r, bool personal, bool name,
				 char *buf, size_t size);

/* A table, one line per act, with a header line. */
void svc_status_print(FILE *out, const struct svc_status_row *rows, size_t n, bool personal);
/* An HTML table (escaped, personal data always masked) appended to b. */
int svc_status_html(struct sb_buf *b, const struct svc_status_row *rows, size_t n);

#endif
