/*
 * Test helpers for the PDND, ANPR and INAD tests: RSA keys generated with
 * the openssl command line, a send-sim started with a --pdnd file that
 * registers the test client, its purposes and the fixture registry, and
 * client options pointing at it.
 */
#ifndef TH_PDND_H
#define TH_PDND_H

#include <stdint.h>

#include "pdnd.h"
#include "th.h"

#define TH_CLIENT_ID     "6b1e1f4e-0d3a-4c41-9a59-2f1f5e0c8a11"
#define TH_PURPOSE_C030  "0c5b1a4e-3b8f-4f7e-9d3c-1a2b3c4d5e01"
#define TH_PURPOSE_C001  "0c5b1a4e-3b8f-4f7e-9d3c-1a2b3c4d5e02"
#define TH_PURPOSE_INAD  "0c5b1a4e-3b8f-4f7e-9d3c-1a2b3c4d5e03"
#define TH_PURPOSE_OTHER "0c5b1a4e-3b8f-4f7e-9d3c-1a2b3c4d5e09"  /* not the client's */
#define TH_AUD           "auth.sim.interop.pagopa.it/client-assertion"
#define TH_AUD_C030 "https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR/" \
	"C030-servizioAccertamentoIdUnicoNazionale/v1"
#define TH_AUD_C001 "https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR/" \
	"C001-servizioNotifica/v1"
#define TH_AUD_INAD "https://domiciliodigitaleapi.oscl.infocamere.it/rest/inad/v1/domiciliodigitale"
#define TH_C030_PATH "/anpr/MinInternoPortaANPR-PDND/C030-servizioAccertamentoIdUnicoNazionale/" \
	"v1/anpr-service-e002"
#define TH_C001_PATH "/anpr/MinInternoPortaANPR-PDND/C001-servizioNotifica/v1/anpr-service-e002"
#define TH_INAD_PATH "/inad/rest/inad/v1/domiciliodigitale"

struct th_pdnd {
	char *dir;
	char *key;          /* registered client key (0600) */
	char *pub;
	char *key2;         /* a second key, never registered */
	char *pub2;
	char *sim_cfg;
	struct th_sim sim;
	char token_url[160];
};

/* Keys (once per test binary is enough), sim config, sim started; lifespan of vouchers in s. */
void th_pdnd_start(struct th_pdnd *t, int lifespan);
void th_pdnd_stop(struct th_pdnd *t);
/*
 * th_pdnd_start (vouchers of 600 s) with a PDND client for the sim and a
 * plain HTTP handle: the group set-up of the e-service tests. Returns -1,
 * for cmocka, when either cannot be made; th_pdnd_client_stop releases all.
 */
int th_pdnd_client_start(struct th_pdnd *t, struct pdnd_client **client_out,
			 struct sb_http **http_out);
void th_pdnd_client_stop(struct th_pdnd *t, struct pdnd_client *client, struct sb_http *http);
/* Client options for the started sim (strings borrowed from t). */
void th_pdnd_opts(const struct th_pdnd *t, struct pdnd_client_opts *o);
/* The simulator's log so far (owned). */
char *th_pdnd_sim_log(const struct th_pdnd *t);
/* POST a JSON body to send-sim's /_sim/faults. */
void th_pdnd_faults(const struct th_pdnd *t, const char *json);
/*
 * Write a send-bridge configuration for the started sim into t->dir and
 * return its path (owned): [pdnd], [anpr], [inad] pointing at the sim,
 * store in t->dir/store.db, and the offices given as INI text.
 */
char *th_pdnd_config(const struct th_pdnd *t, const char *offices);
/* The [pdnd], [anpr] and [inad] sections for the started sim ([inad] last), owned. */
char *th_pdnd_ini(const struct th_pdnd *t);

/* Run a shell command line; returns its exit status; output appended to out (may be NULL). */
int th_sh(const char *cmd, struct sb_buf *out);

#endif
