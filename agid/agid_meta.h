/*
 * Allegato 5 (AgID Linee Guida, 2021 structure): the metadata record of a
 * "documento amministrativo informatico", one per document, exported as
 * XML in the element order and with the fixed texts of
 * ../shared/specs/agid/allegato5_thirdparty/documentoAmministrativoInformatico.xsd
 * (SUMMARY.md 1.4). TempoDiConservazione is always written (2020 draft).
 *
 * The caller (service/) fills struct agid_meta from the act, the protocol
 * registration and the office's configuration; agid_meta_from_report()
 * fills what comes from the document checks (impronta, format, Verifica).
 * Every string is borrowed for the duration of the call.
 */
#ifndef AGID_META_H
#define AGID_META_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_buf.h"
#include "sb_err.h"
#include "sb_problems.h"
#include "agid_pdfa.h"

struct agid_doc_report;

/* LG 2.1.1 letters a..d. */
enum agid_formation { AGID_FORM_A, AGID_FORM_B, AGID_FORM_C, AGID_FORM_D };

enum agid_role {
	AGID_ROLE_AMMINISTRAZIONE,   /* AmministrazioneCheEffettuaLaRegistrazione: PAI */
	AGID_ROLE_DESTINATARIO,      /* PF, PG or PAI */
	AGID_ROLE_MITTENTE,          /* PF, PG or PAI */
	AGID_ROLE_AUTORE,            /* PF, PG or PAI */
	AGID_ROLE_OPERATORE,         /* PF */
	AGID_ROLE_RESP_GESTIONE,     /* PF */
	AGID_ROLE_RESP_PROTOCOLLO,   /* PF */
	AGID_ROLE_PRODUTTORE,        /* SW */
};

enum agid_party_kind { AGID_PF, AGID_PG, AGID_PAI, AGID_SW };

struct agid_party {
	enum agid_role role;
	enum agid_party_kind kind;
	const char *surname, *name, *tax_id;       /* PF (tax_id optional) */
	const char *denomination, *vat;            /* PG (vat: 11 digits, optional);
						      SW system name */
	const char *ipa_amm, *ipa_amm_name;        /* PAI */
	const char *ipa_aoo, *ipa_aoo_name;        /* PAI */
	const char *digital_address;               /* PEC: required for PAI */
};

struct agid_attachment {
	const char *sha256_hex;
	const char *id;
	const char *description;
};

struct agid_meta {
	const char *sha256_hex;       /* of the exact bytes sent (agid_doc_report.sha256) */
	const char *id;               /* Identificativo: unique, persistent */
	const char *segnatura;        /* optional; expected when protocolled */
	enum agid_formation formation;
	const char *tipologia;        /* "Verbale di accertamento CdS", ... */
	char flow;                    /* 'E' incoming, 'U' outgoing, 'I' internal */
	bool protocol;                /* protocol register (true) or repertorio (false) */
	const char *reg_date;         /* YYYY-MM-DD */
	const char *reg_time;         /* hh:mm:ss, optional */
	const char *reg_number;       /* protocol: at least 7 digits */
	const char *reg_code;         /* [A-Za-z0-9_.-]{1,16} */
	const struct agid_party *parties;
	size_t nparties;
	const char *subject;          /* Oggetto */
	const char *const *keywords;  /* at most 5 */
	size_t nkeywords;
	const struct agid_attachment *attachments;
	size_t nattachments;
	const char *class_index, *class_desc, *class_plan;   /* plan optional */
	bool reserved;
	enum agid_flavour flavour;    /* Formato: "PDF/A-2b"; NONE: "PDF" */
	const char *sw_name, *sw_version, *sw_producer;      /* optional */
	bool signed_doc, sealed, timestamped, copy_conformity;
	const char *agg_type;         /* "Fascicolo", "Serie Documentale", "Serie Di Fascicoli" */
	const char *agg_id;
	const char *primary_id;       /* optional: IdDoc of the main document (for attachments) */
	const char *primary_sha256_hex;
	const char *file_name;        /* NomeDelDocumento */
	int version;                  /* 1; later versions need TracciatureModifiche
					 (not supported) */
	int retention_years;          /* 1..9999, 9999 = permanent */
	const char *note;             /* optional */
};

/* impronta, format and Verifica from the document checks (r stays the owner of the hash). */
void agid_meta_from_report(struct agid_meta *m, const struct agid_doc_report *r);

/*
 * Check every required field and value rule; each problem is added to
 * probs with the element's path ("DatiDiRegistrazione/NumeroProtocolloDocumento").
 * 0, or SB_EINVAL with err saying how many.
 */
int agid_meta_validate(const struct agid_meta *m, struct sb_problems *probs, struct sb_err *err);

/* Validate, then append the XML (UTF-8, indented) to out. SB_EINVAL / SB_ETOOBIG. */
int agid_meta_to_xml(const struct agid_meta *m, struct sb_buf *out, struct sb_problems *probs,
		     struct sb_err *err);

#endif
