/*
 * Shared set-up of the tests in tests/send/: send-sim on loopback, a real
 * configuration file with a 0600 API key file, a real client, real PDFs,
 * and a sleep hook that records every wait the client asks for (and sleeps
 * a shortened real time, so honouring a 1 s retryAfter does not cost 1 s).
 * Header-only (static functions): each test binary includes it once.
 */
#ifndef SEND_FIXTURE_H
#define SEND_FIXTURE_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_http.h"
#include "sb_json.h"
#include "send_client.h"
#include "th.h"

#define SF_MAX_SLEEPS 256

struct sf {
	struct th_sim sim;
	char *dir;
	struct sb_cfg *cfg;
	struct send_client *c;
	long slept[SF_MAX_SLEEPS];
	size_t nslept;
	struct send_retry retry;
	unsigned seq;             /* unique protocol numbers and notice codes */
};

static __attribute__((unused)) void sf_sleep(void *ctx, long ms)
{
	struct sf *f = ctx;
	long real = ms > 100 ? 100 : ms;
	struct timespec ts = { 0, real * 1000000L };

	if (f->nslept < SF_MAX_SLEEPS)
		f->slept[f->nslept++] = ms;
	nanosleep(&ts, NULL);
}

static __attribute__((unused)) bool sf_slept(const struct sf *f, long ms)
{
	for (size_t i = 0; i < f->nslept; i++)
		if (f->slept[i] == ms)
			return true;
	return false;
}

/* Write the configuration ([send] extra lines appended) and load it. */
static __attribute__((unused)) int sf_config(struct sf *f, const char *key, const char *extra,
					     struct sb_err *err)
{
	char *ini = sb_xasprintf("%s/send-bridge.ini", f->dir);
	char *keyf = sb_xasprintf("%s/api.key", f->dir);
	char *txt = sb_xasprintf("[service]\nsender_denomination = Comune di Esempio\n"
				 "sender_tax_id = 80012345676\n[outbox]\ndir = %s/outbox\n"
				 "[store]\npath = %s/store.db\n[send]\nbase_url = %s\n"
				 "api_key_file = %s\n%s\n", f->dir, f->dir, f->sim.url, keyf,
				 extra ? extra : "");
	struct sb_problems probs = SB_PROBLEMS_INIT;
	int rc;

	th_write_str(keyf, key ? key : "sim-send-key", 0600);
	th_write_str(ini, txt, 0600);
	sb_cfg_free(f->cfg);
	f->cfg = NULL;
	rc = sb_cfg_load(&f->cfg, ini, &probs, err);
	for (size_t i = 0; i < probs.n; i++)
		fprintf(stderr, "config: %s: %s\n", probs.items[i].where, probs.items[i].msg);
	sb_problems_release(&probs);
	free(ini);
	free(keyf);
	free(txt);
	return rc;
}

static __attribute__((unused)) void sf_start(struct sf *f, const char *const *sim_args)
{
	struct sb_err err = SB_ERR_INIT;
	static const struct send_retry r = SEND_RETRY_INIT;

	memset(f, 0, sizeof(*f));
	th_sim_start(&f->sim, sim_args);
	f->dir = th_tmpdir("send");
	f->retry = r;
	f->retry.sleep_ms = sf_sleep;
	f->retry.sleep_ctx = f;
	f->retry.base_ms = 50;
	if (sf_config(f, NULL, NULL, &err) < 0 || send_client_new(&f->c, f->cfg, NULL, &err) < 0) {
		fprintf(stderr, "fixture: %s\n", err.msg);
		abort();
	}
}

static __attribute__((unused)) void sf_stop(struct sf *f)
{
	send_client_free(f->c);
	sb_cfg_free(f->cfg);
	th_sim_stop(&f->sim);
	th_rmrf(f->dir);
	free(f->dir);
}

/* cmocka group set-up and tear-down: one simulator (with sim_args) for the whole group. */
static __attribute__((unused)) int sf_group_setup(void **state, const char *const *sim_args)
{
	struct sf *f = sb_xcalloc(1, sizeof(*f));

	sf_start(f, sim_args);
	*state = f;
	return 0;
}

static __attribute__((unused)) int sf_group_teardown(void **state)
{
	sf_stop(*state);
	free(*state);
	return 0;
}

/* A file in the fixture's folder with content, returned path owned. */
static __attribute__((unused)) char *sf_file(struct sf *f, const char *name, const char *content)
{
	char *p = sb_xasprintf("%s/%s", f->dir, name);

	th_write_str(p, content, 0600);
	return p;
}

/* One raw call to the simulator (tests of the simulator itself). */
static __attribute__((unused)) long sf_raw(struct sf *f, const char *method, const char *path,
					   const char *const *hdrs, const char *body,
					   struct sb_buf *reply, struct sb_http_resp *resp_out)
{
	struct sb_http *h = NULL;
	struct sb_http_resp resp = { 0 };
	struct sb_http_req req = { 0 };
	char *url = sb_xasprintf("%s%s", strncmp(path, "http", 4) ? f->sim.url : "", path);
	long status = -1;

	if (sb_http_new(&h, NULL, NULL) < 0)
		abort();
	req.method = method;
	req.url = url;
	req.headers = hdrs;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	if (sb_http_do(h, &req, &resp, NULL) == 0)
		status = resp.status;
	if (reply)
		sb_buf_add(reply, resp.body.buf ? resp.body.buf : "", resp.body.len);
	if (resp_out)
		*resp_out = resp;
	else
		sb_http_resp_release(&resp);
	sb_http_free(h);
	free(url);
	return status;
}

/* GET /_sim/send/ledger[?paProtocolNumber=p] and return one integer member. */
static __attribute__((unused)) long sf_ledger(struct sf *f, const char *proto, const char *member)
{
	struct sb_buf b = SB_BUF_INIT(65536);
	char *path = proto ? sb_xasprintf("/_sim/send/ledger?paProtocolNumber=%s", proto)
			   : sb_xstrdup("/_sim/send/ledger");
	json_t *j = NULL;
	long v = -1;

	if (sf_raw(f, "GET", path, NULL, NULL, &b, NULL) == 200 &&
	    sb_json_parse(b.buf, b.len, 65536, "ledger", &j, NULL) == 0)
		v = (long)json_integer_value(json_object_get(j, member));
	json_decref(j);
	sb_buf_release(&b);
	free(path);
	return v;
}

/* POST /_sim/faults with a JSON body. */
static __attribute__((unused)) void sf_faults(struct sf *f, const char *json)
{
	const char *hdrs[] = { "Content-Type: application/json", NULL };

	if (sf_raw(f, "POST", "/_sim/faults", hdrs, json, NULL, NULL) != 200)
		abort();
}

/* A notification with one recipient, one document and one pagoPA payment with its notice PDF. */
struct sf_notif {
	struct send_notification n;
	struct send_recipient rec[2];
	struct send_payment pay[2];
	struct send_document doc[2];
	struct send_upload up[3];
	char proto[64], notice[2][24], token[32];
};

static __attribute__((unused)) void sf_notif_init(struct sf *f, struct sf_notif *x, const char *pec,
						  const char *street)
{
	char *doc = th_fixture("acts/fine-pagopa/verbale.pdf");
	char *avv = th_fixture("acts/fine-pagopa/avviso-pagopa.pdf");

	memset(x, 0, sizeof(*x));
	f->seq++;
	snprintf(x->proto, sizeof(x->proto), "PROT-%u-%ld", f->seq, (long)time(NULL));
	snprintf(x->token, sizeof(x->token), "tok-%u", f->seq);
	for (int i = 0; i < 2; i++)
		snprintf(x->notice[i], sizeof(x->notice[i]), "3020100%06u%05ld", f->seq * 2 + i,
			 (long)(time(NULL) % 100000));
	x->up[0].path = doc;
	x->up[0].content_type = SEND_CT_PDF;
	x->up[0].preload_idx = "doc0";
	x->up[1].path = avv;
	x->up[1].content_type = SEND_CT_PDF;
	x->up[1].preload_idx = "pay0";
	x->pay[0].has_pagopa = true;
	x->pay[0].notice_code = x->notice[0];
	x->pay[0].creditor_tax_id = "80012345676";
	x->pay[0].pagopa_apply_cost = true;
	x->rec[0].type = SEND_PF;
	x->rec[0].tax_id = "RSSMRA80A01H501U";
	x->rec[0].denomination = "Mario Rossi";
	x->rec[0].pec = pec;
	x->rec[0].has_address = true;
	x->rec[0].address.address = street ? street : "Via Roma 1";
	x->rec[0].address.zip = "00100";
	x->rec[0].address.municipality = "Roma";
	x->rec[0].address.province = "RM";
	x->rec[0].payments = x->pay;
	x->rec[0].npayments = 1;
	x->doc[0].title = "Verbale di prova";
	x->n.protocol_number = x->proto;
	x->n.idempotence_token = x->token;
	x->n.subject = "Verbale di accertamento";
	x->n.abstract = "Sosta vietata";
	x->n.taxonomy_code = "010101P";
	x->n.sender_denomination = "Comune di Esempio";
	x->n.fee_policy = SEND_FEE_DELIVERY_MODE;
	x->n.has_pa_fee = true;
	x->n.pa_fee = 100;
	x->n.has_vat = true;
	x->n.vat = 22;
	x->n.comm_type = SEND_REGISTERED_LETTER_890;
	x->n.pagopa_int_mode = "SYNC";
	x->n.recipients = x->rec;
	x->n.nrecipients = 1;
	x->n.documents = x->doc;
	x->n.ndocuments = 1;
}

static __attribute__((unused)) void sf_notif_release(struct sf_notif *x)
{
	free((char *)(uintptr_t)x->up[0].path);   /* owned by the fixture, const in the API */
	free((char *)(uintptr_t)x->up[1].path);
}

/* Upload the document and the notice, and put their refs into the notification. */
static __attribute__((unused)) int sf_upload(struct sf *f, struct sf_notif *x, struct sb_err *err)
{
	int rc = send_files_upload(f->c, x->up, 2, &f->retry, err);

	if (rc < 0)
		return rc;
	x->doc[0].ref = x->up[0].ref;
	x->pay[0].has_pagopa_attachment = true;
	x->pay[0].pagopa_attachment = x->up[1].ref;
	return 0;
}

/* Upload and create; the notificationRequestId goes to id. */
static __attribute__((unused)) int sf_create(struct sf *f, struct sf_notif *x,
					     char id[SEND_REQUEST_ID_MAX], struct sb_err *err)
{
	int rc = sf_upload(f, x, err);

	if (rc == 0)
		rc = send_notification_create(f->c, &x->n, &f->retry, id, NULL, err);
	return rc;
}

/* Upload, create and wait for acceptance (or refusal) into st. */
static __attribute__((unused)) int sf_submit(struct sf *f, struct sf_notif *x,
					     struct send_request_status *st, struct sb_err *err)
{
	char id[SEND_REQUEST_ID_MAX];
	int rc = sf_create(f, x, id, err);

	if (rc == 0)
		rc = send_request_wait(f->c, id, 30000, &f->retry, st, err);
	return rc;
}

/* Poll the sent notification until its status is one of want ("A|B"), at most ~10 s. */
static __attribute__((unused)) struct send_sent_notification *sf_wait_status(struct sf *f,
									     const char *iun,
									     const char *want)
{
	for (int i = 0; i < 200; i++) {
		struct send_sent_notification *n = NULL;
		struct sb_err err = SB_ERR_INIT;
		struct timespec ts = { 0, 50 * 1000000L };

		if (send_notification_get(f->c, iun, &n, &err) == 0 && n->status) {
			size_t l = strlen(n->status);
			const char *p = strstr(want, n->status);

			if (p && (p == want || p[-1] == '|') && (p[l] == '\0' || p[l] == '|'))
				return n;
		}
		send_sent_notification_free(n);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/*
 * A notification (sf_notif_init with pec and street) submitted, accepted and
 * followed until its status is one of want; the caller frees the result and
 * releases x.
 */
static __attribute__((unused)) struct send_sent_notification *
sf_deliver(struct sf *f, struct sf_notif *x, const char *pec, const char *street,
	   const char *want, struct send_request_status *st)
{
	struct sb_err err = SB_ERR_INIT;

	sf_notif_init(f, x, pec, street);
	if (sf_submit(f, x, st, &err) < 0 || st->state != SEND_ACCEPTED) {
		fprintf(stderr, "fixture: submit failed: %s\n", err.msg);
		return NULL;
	}
	return sf_wait_status(f, st->iun, want);
}

static __attribute__((unused)) bool sf_has_category(const struct send_sent_notification *n,
						    const char *cat)
{
	for (size_t i = 0; i < n->ntimeline; i++)
		if (!strcmp(n->timeline[i].category, cat))
			return true;
	return false;
}

#endif
