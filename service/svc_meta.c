/*
 * Allegato 5 metadata from an act: see svc_meta.h. The record's rules and
 * XML live in agid/agid_meta.c; this file only decides where each value
 * comes from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "agid_doc.h"
#include "agid_meta.h"
#include "svc_meta.h"

/* LG Allegato 5 TipologiaDocumentale, from SEND's taxonomy (SUMMARY.md §3). */
static const char *tipologia(const struct svc_act *a)
{
	if (!strncmp(a->taxonomy_code, "0101", 4))
		return "Verbale di accertamento";
	if (!strncmp(a->taxonomy_code, "0102", 4))
		return "Avviso di accertamento";
	if (!strncmp(a->taxonomy_code, "0108", 4))
		return "Atto di riscossione coattiva";
	return "Atto amministrativo";
}

static void need_cfg(struct sb_problems *p, const char *section, const char *key,
		     const char *value)
{
	char where[96];

	if (value && *value)
		return;
	/* Section and key names are short; a cut one still names the place. */
	if (snprintf(where, sizeof(where), "[%s] %s", section, key) < 0)
		where[0] = '\0';
	sb_problems_add(p, where, "needed for the Allegato 5 metadata record");
}

/* "PG/2026/0000012" -> "0000012"; a bare number stays as it is. */
static const char *number_part(const char *n)
{
	const char *slash = strrchr(n, '/');

	return slash ? slash + 1 : n;
}

int svc_meta_document_xml(const struct sb_cfg *cfg, const struct svc_act *a, size_t doc,
			  const struct agid_doc_report *const *reports,
			  const struct svc_meta_reg *reg,
			  struct sb_buf *out, struct sb_problems *probs, struct sb_err *err)
{
	struct sb_problems local = SB_PROBLEMS_INIT;
	struct sb_problems *p = probs ? probs : &local;
	struct agid_party *parties = NULL;
	struct agid_attachment *atts = NULL;
	char **owned = NULL, office[80];
	size_t nparties = 0, natts = 0, nowned = 0, before = sb_problems_count(p);
	const char *keywords[2];
	struct agid_meta m;
	int rc;

	SB_ASSERT(doc < a->ndocuments);
	snprintf(office, sizeof(office), "office.%s", a->office);
	memset(&m, 0, sizeof(m));
	agid_meta_from_report(&m, reports[doc]);

	SB_ALLOC_ARRAY(parties, a->nrecipients + 2);
	SB_ALLOC_ARRAY(owned, 2 * a->ndocuments + 2 * a->nrecipients + 2);
	parties[nparties++] = (struct agid_party){
		.role = AGID_ROLE_AMMINISTRAZIONE, .kind = AGID_PAI,
		.ipa_amm = sb_cfg_str(cfg, "protocol", "ipa_code"),
		.ipa_amm_name = sb_cfg_str(cfg, "service", "sender_denomination"),
		.ipa_aoo = sb_cfg_str(cfg, "protocol", "aoo_code"),
		.ipa_aoo_name = sb_cfg_str(cfg, "protocol", "aoo_name"),
		.digital_address = sb_cfg_str(cfg, "protocol", "pec"),
	};
	need_cfg(p, "protocol", "ipa_code", parties[0].ipa_amm);
	need_cfg(p, "protocol", "aoo_code", parties[0].ipa_aoo);
	need_cfg(p, "protocol", "aoo_name", parties[0].ipa_aoo_name);
	need_cfg(p, "protocol", "pec", parties[0].digital_address);
	for (size_t i = 0; i < a->nrecipients; i++) {
		const struct svc_act_recipient *r = &a->recipients[i];
		struct agid_party *q = &parties[nparties++];

		q->role = AGID_ROLE_DESTINATARIO;
		if (r->type == SVC_PG) {
			q->kind = AGID_PG;
			q->denomination = r->denomination;
			q->vat = r->tax_id;
		} else {
			const char *space = strchr(r->denomination, ' ');

			q->kind = AGID_PF;
			q->tax_id = r->tax_id;
			if (space) {
				owned[nowned] = sb_xstrndup(r->denomination,
							    (size_t)(space - r->denomination));
				q->name = owned[nowned++];
				q->surname = space + 1;
			} else {
				q->surname = r->denomination;
				q->name = r->denomination;
			}
		}
		if (r->pec)
			q->digital_address = r->pec;
	}
	parties[nparties++] = (struct agid_party){ .role = AGID_ROLE_PRODUTTORE, .kind = AGID_SW,
						   .denomination = "send-bridge" };

	/* The first document is the act; the others and the pagoPA notices are attachments. */
	owned[nowned] = sb_xasprintf("%s/%s", a->id, a->documents[doc].file.name);
	m.id = owned[nowned++];
	if (doc == 0) {
		SB_ALLOC_ARRAY(atts, a->ndocuments);
		for (size_t i = 1; i < a->ndocuments; i++) {
			owned[nowned] = sb_xasprintf("%s/%s", a->id, a->documents[i].file.name);
			atts[natts++] = (struct agid_attachment){ reports[i]->sha256,
								  owned[nowned++],
								  a->documents[i].title };
		}
	} else {
		owned[nowned] = sb_xasprintf("%s/%s", a->id, a->documents[0].file.name);
		m.primary_id = owned[nowned++];
		m.primary_sha256_hex = reports[0]->sha256;
	}
	m.attachments = atts;
	m.nattachments = natts;
	m.formation = AGID_FORM_A;   /* made with software by the office (LG 2.1.1 a) */
	m.tipologia = tipologia(a);
	m.flow = 'U';
	m.protocol = true;
	m.reg_date = reg ? reg->date : NULL;
	m.reg_time = reg ? reg->time : NULL;
	m.reg_number = reg && reg->number ? number_part(reg->number) : NULL;
	m.reg_code = sb_cfg_str(cfg, "protocol", "register");
	m.segnatura = reg ? reg->segnatura : NULL;
	m.parties = parties;
	m.nparties = nparties;
	m.subject = a->subject;
	keywords[0] = a->office;
	keywords[1] = a->taxonomy_code;
	m.keywords = keywords;
	m.nkeywords = 2;
	m.class_index = sb_cfg_str(cfg, office, "classification");
	m.class_desc = sb_cfg_str(cfg, office, "classification_desc");
	need_cfg(p, office, "classification", m.class_index);
	need_cfg(p, office, "classification_desc", m.class_desc);
	m.agg_type = "Fascicolo";
	m.agg_id = a->id;
	m.file_name = a->documents[doc].file.name;
	m.version = 1;
	m.retention_years = (int)sb_cfg_int(cfg, office, "retention_years");
	m.sw_name = "send-bridge";

	if (sb_problems_count(p) > before)
		rc = sb_err_set(err, SB_EINVAL, 0, "metadata of '%s' incomplete: %zu problem(s)",
				a->documents[doc].file.name, sb_problems_count(p) - before);
	else
		rc = agid_meta_to_xml(&m, out, p, err);
	for (size_t i = 0; i < nowned; i++)
		free(owned[i]);
	free(owned);
	free(parties);
	free(atts);
	sb_problems_release(&local);
	return rc;
}
