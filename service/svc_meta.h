/*
 * The Allegato 5 metadata record (AgID Linee Guida) of each document of an
 * act, built from the act, the outgoing protocol registration, the
 * configuration ([service], [protocol], [office.NAME]) and the document
 * checks (agid_doc_check_file), and exported with agid_meta_to_xml.
 *
 * Choices (docs/decisions/0006-allegato5-from-the-act.md): the record's
 * Identificativo is "<act id>/<file name>"; the aggregation is the act
 * (Fascicolo, id = act id); the first document is the primary one and the
 * others, with the pagoPA notices, are its attachments; a person's
 * denomination is split at its first space into Nome and Cognome.
 */
#ifndef SVC_META_H
#define SVC_META_H

#include <stddef.h>

#include "sb_buf.h"
#include "sb_err.h"
#include "sb_problems.h"
#include "svc_act.h"

struct sb_cfg;
struct agid_doc_report;

/* The outgoing registration the record refers to. */
struct svc_meta_reg {
	const char *number;     /* "PG/2026/0000012", or the 7-digit part alone */
	const char *date;       /* YYYY-MM-DD */
	const char *time;       /* hh:mm:ss, or NULL */
	const char *segnatura;  /* optional */
};

/*
 * Append the XML record of act->documents[doc] to out. reports[i] is the
 * check of act->documents[i] (every document: the attachments' hashes come
 * from them). Missing configuration or data is reported in probs with the
 * key or field to fill ("[protocol] pec", "DatiDiRegistrazione/Data").
 * 0, SB_EINVAL or SB_ETOOBIG.
 */
int svc_meta_document_xml(const struct sb_cfg *cfg, const struct svc_act *act, size_t doc,
			  const struct agid_doc_report *const *reports,
			  const struct svc_meta_reg *reg,
			  struct sb_buf *out, struct sb_problems *probs, struct sb_err *err);

#endif
