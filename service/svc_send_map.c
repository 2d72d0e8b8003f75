/*
 * Act -> SEND notification description: see svc_send_map.h.
 * The act was validated at intake (svc_act.c); send/ checks again what SEND
 * would refuse, so this file only maps fields and names uploads.
 */
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "svc_act.h"
#include "svc_send_map.h"

/* A preload index from the act id: ^[a-zA-Z0-9._-]{1,512}$, stable across runs. */
static char *preload_idx(const char *act_id, const char *what)
{
	char *s = sb_xasprintf("%.400s.%s", act_id, what);

	for (char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("._-", *p)))
			*p = '_';
	return s;
}

static void add_upload(struct svc_send_map *m, const struct svc_act *a, const char *path,
		       const char *ct, const char *what, struct send_file_ref *target)
{
	size_t i = m->nuploads++;

	m->idx[i] = preload_idx(a->id, what);
	m->uploads[i].path = path;
	m->uploads[i].content_type = ct;
	m->uploads[i].preload_idx = m->idx[i];
	m->targets[i].ref = target;
}

static void map_address(struct send_address *o, const struct svc_act_address *in)
{
	o->address = in->address;
	o->address_details = in->address_details;
	o->at = in->at;
	o->zip = in->zip;
	o->municipality = in->municipality;
	o->municipality_details = in->municipality_details;
	o->province = in->province;
	o->foreign_state = in->foreign_state;
}

int svc_send_map_init(struct svc_send_map *m, const struct svc_act *a, const struct sb_cfg *cfg,
		      const char *protocol_number, struct sb_err *err)
{
	size_t npay = 0, nfiles, k = 0;
	char section[96];

	memset(m, 0, sizeof(*m));
	if (!a->nrecipients || !a->ndocuments)
		return sb_err_set(err, SB_EINVAL, 0,
				  "act '%s': no recipient or no document", a->id);
	for (size_t i = 0; i < a->nrecipients; i++)
		npay += a->recipients[i].npayments;
	nfiles = a->ndocuments + 2 * npay;
	SB_ALLOC_ARRAY(m->recipients, a->nrecipients);
	SB_ALLOC_ARRAY(m->payments, npay);
	SB_ALLOC_ARRAY(m->documents, a->ndocuments);
	SB_ALLOC_ARRAY(m->uploads, nfiles);
	SB_ALLOC_ARRAY(m->idx, nfiles);
	SB_ALLOC_ARRAY(m->targets, nfiles);

	for (size_t i = 0; i < a->ndocuments; i++) {
		char what[32];

		m->documents[i].title = a->documents[i].title;
		snprintf(what, sizeof(what), "doc%zu", i);
		add_upload(m, a, a->documents[i].file.path, SEND_CT_PDF, what,
			   &m->documents[i].ref);
	}
	for (size_t i = 0; i < a->nrecipients; i++) {
		const struct svc_act_recipient *r = &a->recipients[i];
		struct send_recipient *o = &m->recipients[i];

		o->type = r->type == SVC_PG ? SEND_PG : SEND_PF;
		o->tax_id = r->tax_id;
		o->denomination = r->denomination;
		o->pec = r->pec;
		o->has_address = r->has_address;
		if (r->has_address)
			map_address(&o->address, &r->address);
		o->payments = &m->payments[k];
		o->npayments = r->npayments;
		for (size_t j = 0; j < r->npayments; j++, k++) {
			const struct svc_act_payment *p = &r->payments[j];
			struct send_payment *q = &m->payments[k];
			char what[96];

			q->has_pagopa = p->has_pagopa;
			q->notice_code = p->notice_code;
			q->creditor_tax_id = p->creditor_tax_id;
			q->pagopa_apply_cost = p->pagopa_apply_cost;
			q->has_pagopa_attachment = p->has_pagopa && p->has_pagopa_file;
			if (q->has_pagopa_attachment) {
				snprintf(what, sizeof(what), "r%zup%zu.pagopa", i, j);
				add_upload(m, a, p->pagopa_file.path, SEND_CT_PDF, what,
					   &q->pagopa_attachment);
			}
			q->has_f24 = p->has_f24;
			q->f24_title = p->f24_title;
			q->f24_apply_cost = p->f24_apply_cost;
			if (p->has_f24) {
				snprintf(what, sizeof(what), "r%zup%zu.f24", i, j);
				add_upload(m, a, p->f24_file.path, SEND_CT_JSON, what,
					   &q->f24_metadata);
			}
		}
	}

	/* The token names the act: a replay of the act is recognised (409), a new act is not. */
	m->token = preload_idx(a->id, "v1");
	m->protocol = sb_xstrdup(protocol_number && *protocol_number ? protocol_number :
				 a->protocol_number && *a->protocol_number ? a->protocol_number :
				 a->id);
	m->n.protocol_number = m->protocol;
	m->n.idempotence_token = m->token;
	m->n.subject = a->subject;
	m->n.abstract = a->abstract;
	m->n.taxonomy_code = a->taxonomy_code;
	m->n.sender_denomination = sb_cfg_str(cfg, "service", "sender_denomination");
	snprintf(section, sizeof(section), "office.%s", a->office ? a->office : "");
	m->n.group = a->group && *a->group ? a->group :
		     a->office && sb_cfg_has_office(cfg, a->office) ?
		     sb_cfg_str(cfg, section, "send_group") : NULL;
	m->n.pagopa_int_mode = a->pagopa_int_mode;
	m->n.payment_expiration_date = a->payment_expiration_date;
	m->n.has_amount = a->has_amount;
	m->n.amount = a->amount;
	m->n.fee_policy = a->fee_policy == SVC_FEE_DELIVERY_MODE ? SEND_FEE_DELIVERY_MODE
								 : SEND_FEE_FLAT_RATE;
	m->n.has_pa_fee = a->has_pa_fee;
	m->n.pa_fee = (int)a->pa_fee;
	m->n.has_vat = a->has_vat;
	m->n.vat = (int)a->vat;
	m->n.comm_type = a->comm_type == SVC_REGISTERED_LETTER_890 ? SEND_REGISTERED_LETTER_890
								    : SEND_AR_REGISTERED_LETTER;
	m->n.recipients = m->recipients;
	m->n.nrecipients = a->nrecipients;
	m->n.documents = m->documents;
	m->n.ndocuments = a->ndocuments;
	return 0;
}

void svc_send_map_apply_uploads(struct svc_send_map *m)
{
	for (size_t i = 0; i < m->nuploads; i++)
		*m->targets[i].ref = m->uploads[i].ref;
}

void svc_send_map_release(struct svc_send_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nuploads; i++)
		free(m->idx[i]);
	free(m->idx);
	free(m->targets);
	free(m->uploads);
	free(m->recipients);
	free(m->payments);
	free(m->documents);
	free(m->token);
	free(m->protocol);
	memset(m, 0, sizeof(*m));
}
