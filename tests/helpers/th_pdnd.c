/*
 * PDND test helpers: see th_pdnd.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sb_common.h"
#include "sb_http.h"
#include "th_pdnd.h"

int th_sh(const char *cmd, struct sb_buf *out)
{
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };

	return th_run(argv, out, NULL);
}

static void genkey(const char *key, const char *pub)
{
	char *cmd = sb_xasprintf("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
				 "-out '%s' 2>/dev/null && chmod 600 '%s' && "
				 "openssl pkey -in '%s' -pubout -out '%s'", key, key, key, pub);

	if (th_sh(cmd, NULL) != 0) {
		fprintf(stderr, "th_pdnd: openssl genpkey failed\n");
		abort();
	}
	free(cmd);
}

void th_pdnd_start(struct th_pdnd *t, int lifespan)
{
	char *reg = th_fixture("pdnd/registry.json"), *abs_reg, *cfg;
	const char *extra[] = { "--pdnd", NULL, NULL };

	memset(t, 0, sizeof(*t));
	t->dir = th_tmpdir("pdnd");
	t->key = sb_xasprintf("%s/client.key", t->dir);
	t->pub = sb_xasprintf("%s/client.pub", t->dir);
	t->key2 = sb_xasprintf("%s/other.key", t->dir);
	t->pub2 = sb_xasprintf("%s/other.pub", t->dir);
	t->sim_cfg = sb_xasprintf("%s/pdnd-sim.json", t->dir);
	genkey(t->key, t->pub);
	genkey(t->key2, t->pub2);
	abs_reg = realpath(reg, NULL);
	if (!abs_reg) {
		fprintf(stderr, "th_pdnd: fixture '%s' missing\n", reg);
		abort();
	}
	cfg = sb_xasprintf(
		"{\"audience\":\"" TH_AUD "\",\"issuer\":\"sim.interop.pagopa.it\","
		"\"registryFile\":\"%s\","
		"\"clients\":[{\"clientId\":\"" TH_CLIENT_ID "\",\"keys\":[\"client.pub\"],"
		"\"purposes\":[\"" TH_PURPOSE_C030 "\",\"" TH_PURPOSE_C001 "\","
		"\"" TH_PURPOSE_INAD "\"]},"
		"{\"clientId\":\"9f0e0d0c-0b0a-4090-8070-605040302010\",\"keys\":[],"
		"\"purposes\":[\"" TH_PURPOSE_OTHER "\"]}],"
		"\"purposes\":[{\"id\":\"" TH_PURPOSE_C030 "\",\"eservice\":\"anpr-c030\","
		"\"lifespan\":%d},"
		"{\"id\":\"" TH_PURPOSE_C001 "\",\"eservice\":\"anpr-c001\",\"lifespan\":%d},"
		"{\"id\":\"" TH_PURPOSE_INAD "\",\"eservice\":\"inad\",\"lifespan\":%d},"
		"{\"id\":\"" TH_PURPOSE_OTHER "\",\"eservice\":\"inad\",\"lifespan\":%d}],"
		"\"eservices\":{\"anpr-c030\":{\"audience\":\"" TH_AUD_C030 "\"},"
		"\"anpr-c001\":{\"audience\":\"" TH_AUD_C001 "\"},"
		"\"inad\":{\"audience\":\"" TH_AUD_INAD "\"}}}",
		abs_reg, lifespan, lifespan, lifespan, lifespan);
	th_write_str(t->sim_cfg, cfg, 0644);
	extra[1] = t->sim_cfg;
	th_sim_start(&t->sim, extra);
	snprintf(t->token_url, sizeof(t->token_url), "%s/pdnd/token.oauth2", t->sim.url);
	free(cfg);
	free(abs_reg);
	free(reg);
}

void th_pdnd_stop(struct th_pdnd *t)
{
	th_sim_stop(&t->sim);
	th_rmrf(t->dir);
	free(t->dir);
	free(t->key);
	free(t->pub);
	free(t->key2);
	free(t->pub2);
	free(t->sim_cfg);
	memset(t, 0, sizeof(*t));
}

int th_pdnd_client_start(struct th_pdnd *t, struct pdnd_client **client_out,
			 struct sb_http **http_out)
{
	struct pdnd_client_opts o;

	th_pdnd_start(t, 600);
	th_pdnd_opts(t, &o);
	if (pdnd_client_new(client_out, &o, NULL) < 0 || sb_http_new(http_out, NULL, NULL) < 0)
		return -1;
	return 0;
}

void th_pdnd_client_stop(struct th_pdnd *t, struct pdnd_client *client, struct sb_http *http)
{
	sb_http_free(http);
	pdnd_client_free(client);
	th_pdnd_stop(t);
}

void th_pdnd_opts(const struct th_pdnd *t, struct pdnd_client_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->token_url = t->token_url;
	o->client_id = TH_CLIENT_ID;
	o->key_file = t->key;
	o->audience = TH_AUD;
	o->renew_before = 120;
}

char *th_pdnd_sim_log(const struct th_pdnd *t)
{
	char *p = sb_xasprintf("%s/sim.log", t->sim.dir), *txt = th_read(p, NULL);

	free(p);
	return txt ? txt : sb_xstrdup("");
}

void th_pdnd_faults(const struct th_pdnd *t, const char *json)
{
	static const char *const hdr[] = { "Content-Type: application/json", NULL };
	struct sb_http *h = NULL;
	struct sb_http_resp r = { 0 };
	char *url = sb_xasprintf("%s/_sim/faults", t->sim.url);

	if (sb_http_new(&h, NULL, NULL) < 0 ||
	    sb_http_do(h, &(struct sb_http_req){ .method = "POST", .url = url, .headers = hdr,
						 .body = json, .body_len = strlen(json) },
		       &r, NULL) < 0 || r.status != 200) {
		fprintf(stderr, "th_pdnd: cannot set faults\n");
		abort();
	}
	sb_http_resp_release(&r);
	sb_http_free(h);
	free(url);
}

char *th_pdnd_ini(const struct th_pdnd *t)
{
	return sb_xasprintf(
		"[pdnd]\ntoken_url = %s\nclient_id = " TH_CLIENT_ID "\nprivate_key_file = %s\n"
		"audience = " TH_AUD "\nuser_location = test-host\n"
		"[anpr]\nc030_url = %s/anpr/MinInternoPortaANPR-PDND/"
		"C030-servizioAccertamentoIdUnicoNazionale/v1\n"
		"c001_url = %s/anpr/MinInternoPortaANPR-PDND/C001-servizioNotifica/v1\n"
		"c030_audience = " TH_AUD_C030 "\nc001_audience = " TH_AUD_C001 "\n"
		"c030_purpose_id = " TH_PURPOSE_C030 "\nc001_purpose_id = " TH_PURPOSE_C001 "\n"
		"[inad]\nbase_url = %s" TH_INAD_PATH "\naudience = " TH_AUD_INAD "\n"
		"purpose_id = " TH_PURPOSE_INAD "\n",
		t->token_url, t->key, t->sim.url, t->sim.url, t->sim.url);
}

char *th_pdnd_config(const struct th_pdnd *t, const char *offices)
{
	char *key = sb_xasprintf("%s/api.key", t->dir), *path = sb_xasprintf("%s/sb.ini", t->dir);
	char *pdnd = th_pdnd_ini(t), *ini;

	th_write_str(key, "test-api-key", 0600);
	ini = sb_xasprintf(
		"[service]\nsender_denomination = Comune di Prova\nsender_tax_id = 01234567897\n"
		"[outbox]\ndir = %s/outbox\n"
		"[store]\npath = %s/store.db\n"
		"[send]\napi_key_file = %s\n"
		"%sbulk_threshold = 3\n"
		"%s",
		t->dir, t->dir, key, pdnd, offices ? offices : "");
	th_write_str(path, ini, 0600);
	free(pdnd);
	free(ini);
	free(key);
	return path;
}
