/*
 * send-sim: the PDND token server (POST /pdnd/token.oauth2), as strict as
 * production with FEATURE_FLAG_CLIENT_ASSERTION_STRICT_CLAIMS_VALIDATION
 * on. Spec: ../shared/specs/PDND-SUMMARY.md sections 3 and 4, and
 * ../shared/specs/pdnd/authorizationServerApi.yml.
 *
 * Like production it answers every refusal with the same opaque 400
 * 015-0008 and a correlationId; the reason is written to the simulator's
 * log next to that correlationId (the role of PDND's "Debug client
 * assertion" page), so tests can tell which rule refused a request.
 *
 * Registered clients, their public keys and purposes, the e-service
 * audiences and the fixture registry come from the --pdnd FILE (see
 * docs/pdnd.md). Vouchers are signed with a key generated at start.
 */
#include <ctype.h>
#include <jansson.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "sim_pdnd.h"

#define MAX_KEYS 32
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

struct sim_key {
	char kid[44];
	EVP_PKEY *pub;
	char client_id[64];
};

struct sim_pdnd {
	pthread_mutex_t lock;
	json_t *cfg;
	json_t *registry;
	EVP_PKEY *sign_key;
	char sign_kid[44];
	struct sim_key keys[MAX_KEYS];
	size_t nkeys;
	json_t *seen;       /* jti (assertions and ModI tokens) -> exp, to refuse replays */
};

/* The loaded state, freed at exit (after main has stopped the server's threads). */
static struct sim_pdnd *live;

static void state_free(struct sim_pdnd *p)
{
	if (!p)
		return;
	for (size_t k = 0; k < p->nkeys; k++)
		EVP_PKEY_free(p->keys[k].pub);
	EVP_PKEY_free(p->sign_key);
	json_decref(p->cfg);
	json_decref(p->registry);
	json_decref(p->seen);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static void free_live(void)
{
	state_free(live);
	live = NULL;
}

struct sim_pdnd *sim_pdnd_state(struct sim *s)
{
	return s->pdnd;
}

json_t *sim_pdnd_subjects(struct sim_pdnd *p)
{
	return json_object_get(p->registry, "subjects");
}

json_t *sim_pdnd_domiciles(struct sim_pdnd *p)
{
	return json_object_get(p->registry, "domiciles");
}

void sim_pdnd_uuid(char out[37])
{
	sb_uuid4(out);
}

static bool is_uuid(const char *s)
{
	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-'
							       : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static char *path_near(const char *cfg_path, const char *rel)
{
	char *dup, *dir, *p;

	if (rel[0] == '/')
		return sb_xstrdup(rel);
	dup = sb_xstrdup(cfg_path);
	dir = dirname(dup);
	p = sb_xasprintf("%s/%s", dir, rel);
	free(dup);
	return p;
}

static json_t *load_json(const char *path)
{
	json_error_t je;
	json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &je);

	if (!v)
		fprintf(stderr, "send-sim: %s:%d: %s\n", path, je.line, je.text);
	return v;
}

static int load_keys(struct sim_pdnd *p, const char *cfg_path)
{
	size_t i, j;
	json_t *cl, *k;

	json_array_foreach(json_object_get(p->cfg, "clients"), i, cl) {
		const char *id = json_string_value(json_object_get(cl, "clientId"));

		if (!is_uuid(id)) {
			fprintf(stderr,
				"send-sim: --pdnd: clients[%zu].clientId must be a uuid\n", i);
			return -1;
		}
		json_array_foreach(json_object_get(cl, "keys"), j, k) {
			char *path;
			FILE *f;
			struct sim_key *sk;

			if (!json_is_string(k) || p->nkeys >= MAX_KEYS) {
				fprintf(stderr,
					"send-sim: --pdnd: clients[%zu].keys[%zu]: a file name, "
					"at most %d keys in all\n", i, j, MAX_KEYS);
				return -1;
			}
			path = path_near(cfg_path, json_string_value(k));
			f = fopen(path, "re");
			sk = &p->keys[p->nkeys];
			sk->pub = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
			if (f)
				fclose(f);
			if (!sk->pub || sim_jwk_thumbprint(sk->pub, sk->kid) < 0) {
				fprintf(stderr, "send-sim: --pdnd: '%s' is not an RSA public key\n",
					path);
				EVP_PKEY_free(sk->pub);
				sk->pub = NULL;
				free(path);
				return -1;
			}
			free(path);
			snprintf(sk->client_id, sizeof(sk->client_id), "%s", id);
			p->nkeys++;
		}
	}
	return 0;
}

int sim_pdnd_init(struct sim *s, int *argc, char **argv)
{
	struct sim_pdnd *p;
	const char *file = NULL, *reg;
	int i, o;

	for (i = 1, o = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--pdnd") && i + 1 < *argc)
			file = argv[++i];
		else
			argv[o++] = argv[i];
	}
	*argc = o;
	argv[o] = NULL;
	if (!file)
		return 0;
	p = sb_xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->seen = json_object();
	p->cfg = load_json(file);
	if (!p->cfg || !json_is_string(json_object_get(p->cfg, "audience")))
		goto fail;
	reg = json_string_value(json_object_get(p->cfg, "registryFile"));
	if (reg) {
		char *rp = path_near(file, reg);

		p->registry = load_json(rp);
		free(rp);
		if (!p->registry)
			goto fail;
	} else {
		p->registry = json_incref(p->cfg);
	}
	if (load_keys(p, file) < 0)
		goto fail;
	p->sign_key = EVP_RSA_gen(2048);
	if (!p->sign_key || sim_jwk_thumbprint(p->sign_key, p->sign_kid) < 0)
		goto fail;
	s->pdnd = p;
	live = p;
	atexit(free_live);
	return 0;
fail:
	fprintf(stderr, "send-sim: cannot use --pdnd '%s' (needs audience, clients, purposes, "
		"eservices; see docs/pdnd.md)\n", file);
	state_free(p);
	return -1;
}

/* The purpose object with this id, borrowed; NULL if not registered. */
static json_t *purpose_find(struct sim_pdnd *p, const char *id)
{
	size_t i;
	json_t *pu;

	json_array_foreach(json_object_get(p->cfg, "purposes"), i, pu)
		if (id && !strcmp(json_string_value(json_object_get(pu, "id")) ?: "", id))
			return pu;
	return NULL;
}

static bool client_has_purpose(struct sim_pdnd *p, const char *client_id, const char *purpose)
{
	size_t i, j;
	json_t *cl, *pu;

	json_array_foreach(json_object_get(p->cfg, "clients"), i, cl) {
		if (strcmp(json_string_value(json_object_get(cl, "clientId")) ?: "", client_id))
			continue;
		json_array_foreach(json_object_get(cl, "purposes"), j, pu)
			if (json_is_string(pu) && !strcmp(json_string_value(pu), purpose))
				return true;
	}
	return false;
}

static const char *eservice_audience(struct sim_pdnd *p, const char *eservice)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(p->cfg,
				"eservices"), eservice), "audience"));
}

static struct sim_key *key_find(struct sim_pdnd *p, const char *kid)
{
	for (size_t i = 0; kid && i < p->nkeys; i++)
		if (!strcmp(p->keys[i].kid, kid))
			return &p->keys[i];
	return NULL;
}

/* Record a jti; false when it was seen before (a replay). */
static bool jti_fresh(struct sim_pdnd *p, const char *ns, const char *jti, int64_t exp)
{
	char key[160];
	bool fresh;

	snprintf(key, sizeof(key), "%s:%s", ns, jti);
	pthread_mutex_lock(&p->lock);
	/*
	 * Forget jtis whose token expired long ago (a replay would be refused
	 * as expired anyway).
	 */
	if (json_object_size(p->seen) > 10000) {
		const char *k;
		json_t *v, *tmp;
		int64_t now = sb_now();

		json_object_foreach_safe(p->seen, tmp, k, v)
			if (json_integer_value(v) < now - 3600)
				json_object_del(p->seen, k);
	}
	fresh = !json_object_get(p->seen, key);
	if (fresh)
		json_object_set_new(p->seen, key, json_integer(exp));
	pthread_mutex_unlock(&p->lock);
	return fresh;
}

static int hexval(char c)
{
	return isdigit((unsigned char)c) ? c - '0' : (tolower((unsigned char)c) - 'a' + 10);
}

/* application/x-www-form-urlencoded into a JSON object; NULL if malformed or repeated. */
static json_t *form_parse(const char *body, size_t len)
{
	json_t *form = json_object();
	const char *p = body, *end = body + len;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *eq;
		struct sb_buf k = SB_BUF_INIT(65536), v = SB_BUF_INIT(65536), *cur = &k;

		if (!amp)
			amp = end;
		eq = memchr(p, '=', (size_t)(amp - p));
		if (!eq)
			goto bad;
		for (const char *q = p; q < amp; q++) {
			if (q == eq) {
				cur = &v;
				continue;
			}
			if (*q == '%') {
				if (amp - q < 3 || !isxdigit((unsigned char)q[1]) ||
				    !isxdigit((unsigned char)q[2]))
					goto bad;
				sb_buf_addch(cur, (char)(hexval(q[1]) << 4 | hexval(q[2])));
				q += 2;
			} else {
				sb_buf_addch(cur, *q == '+' ? ' ' : *q);
			}
		}
		if (json_object_get(form, sb_buf_cstr(&k))) {
bad:
			sb_buf_release(&k);
			sb_buf_release(&v);
			json_decref(form);
			return NULL;
		}
		json_object_set_new(form, sb_buf_cstr(&k), json_string(sb_buf_cstr(&v)));
		sb_buf_release(&k);
		sb_buf_release(&v);
		p = amp + 1;
	}
	return form;
}

static void refuse(struct sim_response *rs, const char *why)
{
	char corr[37];

	sim_pdnd_uuid(corr);
	/* The one place the reason shows, as on PDND's debug page: never in the reply. */
	fprintf(stderr, "pdnd-sim: token refused correlationId=%s: %s\n", corr, why);
	sim_reply_json(rs, 400,
		       "{\"type\":\"about:blank\","
		       "\"title\":\"The request contains bad syntax or cannot be fulfilled.\","
		       "\"status\":400,\"detail\":\"Bad request\","
		       "\"errors\":[{\"code\":\"015-0008\","
		       "\"detail\":\"Unable to generate a token for the given request\"}],"
		       "\"correlationId\":\"%s\"}", corr);
	sim_reply_type(rs, "application/problem+json");
}

static const char *const allowed_claims[] = { "iss", "sub", "aud", "purposeId", "jti", "iat",
					      "exp", "digest" };

/* Strict-mode checks of the assertion's header and claims; NULL when they pass. */
static const char *assertion_problem(struct sim_pdnd *p, json_t *h, json_t *c,
				     const char *form_client, struct sim_key **key_out,
				     char *why, size_t why_size)
{
	const char *k, *kid, *sub, *aud;
	json_t *v, *d;
	struct sim_key *key;
	int64_t now = sb_now();

	json_object_foreach(h, k, v)
		if (strcmp(k, "alg") && strcmp(k, "kid") && strcmp(k, "typ"))
			return "header member not allowed";
	if (strcmp(json_string_value(json_object_get(h, "alg")) ?: "", "RS256"))
		return "alg is not RS256";
	kid = json_string_value(json_object_get(h, "kid"));
	key = key_find(p, kid);
	if (!key)
		return "unknown kid";
	json_object_foreach(c, k, v) {
		bool ok = false;

		for (size_t i = 0; i < SB_ARRAY_SIZE(allowed_claims); i++)
			ok = ok || !strcmp(k, allowed_claims[i]);
		if (!ok) {
			snprintf(why, why_size, "extra claim '%s' (strict claims validation)", k);
			return why;
		}
	}
	if (!json_is_string(json_object_get(c, "iss")))
		return "iss missing";
	sub = json_string_value(json_object_get(c, "sub"));
	if (!is_uuid(sub))
		return "sub is not a uuid";
	if (form_client && strcmp(form_client, sub))
		return "sub is not equal to client_id";
	if (strcmp(key->client_id, sub))
		return "kid belongs to another client than sub";
	v = json_object_get(c, "aud");
	aud = json_string_value(v);
	if (json_is_array(v)) {
		size_t i;
		json_t *a;

		json_array_foreach(v, i, a)
			if (!strcmp(json_string_value(a) ?: "",
				    json_string_value(json_object_get(p->cfg, "audience"))))
				aud = json_string_value(a);
	}
	if (!aud || strcmp(aud, json_string_value(json_object_get(p->cfg, "audience")))) {
		snprintf(why, why_size, "unexpected client assertion audience%s",
			 aud && strstr(aud, "://") ? " (has a scheme)" : " (another environment)");
		return why;
	}
	if (!is_uuid(json_string_value(json_object_get(c, "purposeId"))))
		return "purposeIdNotProvided (missing or not a uuid)";
	if (!json_is_string(json_object_get(c, "jti")))
		return "jti missing";
	if (!json_is_integer(json_object_get(c, "iat")))
		return "iat missing or not an integer";
	if (!json_is_integer(json_object_get(c, "exp")))
		return "exp missing or not an integer";
	if (json_integer_value(json_object_get(c, "exp")) <= now)
		return "assertion expired";
	if (json_integer_value(json_object_get(c, "iat")) > now + 5)
		return "assertion issued in the future";
	d = json_object_get(c, "digest");
	if (d) {
		const char *val = json_string_value(json_object_get(d, "value"));

		if (!json_is_object(d) || json_object_size(d) != 2 ||
		    strcmp(json_string_value(json_object_get(d, "alg")) ?: "", "SHA256") ||
		    !val || strlen(val) != 64)
			return "malformed digest";
	}
	*key_out = key;
	return NULL;
}

static void token(struct sim_pdnd *p, const struct sim_request *rq, struct sim_response *rs)
{
	const char *ctype = sim_header(rq, "Content-Type");
	const char *assertion, *form_client, *why_p, *purpose_id, *eservice, *aud;
	json_t *form = NULL, *h = NULL, *c = NULL, *pu, *vh = NULL, *vc = NULL;
	struct sb_buf voucher = SB_BUF_INIT(65536);
	struct sim_key *key = NULL;
	char why[256] = "", jti[37];
	int64_t now = sb_now(), life;

	if (!ctype || strncasecmp(ctype, "application/x-www-form-urlencoded", 33) ||
	    !(form = form_parse(rq->body, rq->body_len)) ||
	    !json_is_string(json_object_get(form, "client_assertion")) ||
	    strcmp(json_string_value(json_object_get(form, "client_assertion_type")) ?: "",
		   ASSERTION_TYPE) ||
	    strcmp(json_string_value(json_object_get(form, "grant_type")) ?: "",
		   "client_credentials")) {
		fprintf(stderr, "pdnd-sim: token refused: invalid form\n");
		sim_reply_json(rs, 400, "{\"title\":\"Bad Request\",\"status\":400,\"detail\":"
			       "\"Invalid parameter found\",\"errors\":[{\"code\":\"015-9000\","
			       "\"detail\":\"Invalid parameter found\"}]}");
		sim_reply_type(rs, "application/problem+json");
		goto done;
	}
	assertion = json_string_value(json_object_get(form, "client_assertion"));
	form_client = json_string_value(json_object_get(form, "client_id"));
	h = sim_jws_part(assertion, strlen(assertion), 0);
	c = sim_jws_part(assertion, strlen(assertion), 1);
	if (!h || !c) {
		refuse(rs, "client assertion is not a compact jws");
		goto done;
	}
	why_p = assertion_problem(p, h, c, form_client, &key, why, sizeof(why));
	if (why_p) {
		refuse(rs, why_p);
		goto done;
	}
	if (!sim_jws_verify(key->pub, assertion, strlen(assertion), why, sizeof(why))) {
		refuse(rs, "invalid signature");
		goto done;
	}
	purpose_id = json_string_value(json_object_get(c, "purposeId"));
	pu = purpose_find(p, purpose_id);
	if (!pu || !client_has_purpose(p, key->client_id, purpose_id)) {
		refuse(rs, "purpose not found or not associated with the client");
		goto done;
	}
	/* Replays are checked last, so a refused assertion does not burn its jti. */
	if (!jti_fresh(p, "assertion", json_string_value(json_object_get(c, "jti")),
		       json_integer_value(json_object_get(c, "exp")))) {
		refuse(rs, "jti already used");
		goto done;
	}
	eservice = json_string_value(json_object_get(pu, "eservice"));
	aud = eservice_audience(p, eservice ?: "");
	life = json_integer_value(json_object_get(pu, "lifespan"));
	if (life <= 0)
		life = 600;
	sim_pdnd_uuid(jti);
	vh = json_pack("{s:s,s:s,s:s,s:s}", "alg", "RS256", "use", "sig", "typ", "at+jwt", "kid",
		       p->sign_kid);
	vc = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I}",
		       "iss", json_string_value(json_object_get(p->cfg, "issuer")) ?:
			      "sim.interop.pagopa.it",
		       "aud", aud ?: "", "sub", key->client_id, "client_id", key->client_id,
		       "purposeId", purpose_id, "jti", jti, "iat", (json_int_t)now,
		       "nbf", (json_int_t)now, "exp", (json_int_t)(now + life));
	if (json_object_get(c, "digest"))
		json_object_set(vc, "digest", json_object_get(c, "digest"));
	sim_jws_sign(p->sign_key, vh, vc, &voucher);
	sim_reply_json(rs, 200, "{\"access_token\":\"%s\",\"token_type\":\"Bearer\","
		       "\"expires_in\":%lld}", voucher.buf, (long long)life);
	sim_reply_header(rs, "Cache-Control: no-cache, no-store");
	sim_reply_header(rs, "X-Rate-Limit-Limit: 1000");
	sim_reply_header(rs, "X-Rate-Limit-Remaining: 999");
	sim_reply_header(rs, "X-Rate-Limit-Interval: 1000");
	fprintf(stderr, "pdnd-sim: voucher issued jti=%s purpose=%s\n", jti, purpose_id);
done:
	json_decref(form);
	json_decref(h);
	json_decref(c);
	json_decref(vh);
	json_decref(vc);
	sb_buf_release(&voucher);
}

bool sim_pdnd_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs)
{
	struct sim_pdnd *p = s->pdnd;

	if (!p || strcmp(rq->path, "/pdnd/token.oauth2"))
		return false;
	if (strcmp(rq->method, "POST")) {
		sim_reply_json(rs, 405, "{\"title\":\"Method Not Allowed\",\"status\":405}");
		return true;
	}
	token(p, rq, rs);
	return true;
}

bool sim_pdnd_check_voucher(struct sim_pdnd *p, const char *authz, const char *eservice,
			    json_t **claims_out, char *why, size_t why_size)
{
	const char *tok, *aud = eservice_audience(p, eservice);
	json_t *h = NULL, *c = NULL, *pu;
	int64_t now = sb_now();
	bool ok = false;

	if (!authz || strncmp(authz, "Bearer ", 7)) {
		snprintf(why, why_size, "no bearer voucher");
		return false;
	}
	tok = authz + 7;
	h = sim_jws_part(tok, strlen(tok), 0);
	c = sim_jws_part(tok, strlen(tok), 1);
	if (!h || !c) {
		snprintf(why, why_size, "voucher is not a jws");
	} else if (strcmp(json_string_value(json_object_get(h, "typ")) ?: "", "at+jwt") ||
		   strcmp(json_string_value(json_object_get(h, "kid")) ?: "", p->sign_kid)) {
		snprintf(why, why_size, "voucher not issued by this pdnd");
	} else if (!sim_jws_verify(p->sign_key, tok, strlen(tok), why, why_size)) {
		/* why already says it */
	} else if (!aud || strcmp(json_string_value(json_object_get(c, "aud")) ?: "", aud)) {
		snprintf(why, why_size, "voucher audience is not this e-service's");
	} else if (!(pu = purpose_find(p, json_string_value(json_object_get(c, "purposeId")))) ||
		   strcmp(json_string_value(json_object_get(pu, "eservice")) ?: "", eservice)) {
		snprintf(why, why_size, "voucher purpose is not for this e-service");
	} else if (json_integer_value(json_object_get(c, "exp")) <= now) {
		snprintf(why, why_size, "voucher expired");
	} else {
		ok = true;
		*claims_out = json_incref(c);
	}
	json_decref(h);
	json_decref(c);
	return ok;
}

/* Verify a ModI JWS signed by the voucher's client; claims returned on success. */
static json_t *modi_jws(struct sim_pdnd *p, const char *jws, const json_t *voucher,
			const char *aud, const char *what, char *why, size_t why_size)
{
	json_t *h = sim_jws_part(jws, strlen(jws), 0), *c = sim_jws_part(jws, strlen(jws), 1);
	struct sim_key *key = h ? key_find(p, json_string_value(json_object_get(h, "kid"))) : NULL;
	const char *client = json_string_value(json_object_get(voucher, "sub"));
	char vwhy[128];
	int64_t now = sb_now();

	if (!h || !c) {
		snprintf(why, why_size, "%s is not a jws", what);
	} else if (strcmp(json_string_value(json_object_get(h, "alg")) ?: "", "RS256")) {
		snprintf(why, why_size, "%s alg is not RS256", what);
	} else if (!key || strcmp(key->client_id, client ?: "")) {
		snprintf(why, why_size, "%s kid is not a key of the voucher's client", what);
	} else if (!sim_jws_verify(key->pub, jws, strlen(jws), vwhy, sizeof(vwhy))) {
		snprintf(why, why_size, "%s: %s", what, vwhy);
	} else if (strcmp(json_string_value(json_object_get(c, "aud")) ?: "", aud)) {
		snprintf(why, why_size, "%s aud is not the e-service audience", what);
	} else if (!json_is_integer(json_object_get(c, "iat")) ||
		   !json_is_integer(json_object_get(c, "exp")) ||
		   json_integer_value(json_object_get(c, "exp")) <= now) {
		snprintf(why, why_size, "%s iat/exp missing, not integers or expired", what);
	} else if (!json_is_string(json_object_get(c, "jti")) ||
		   !jti_fresh(p, what, json_string_value(json_object_get(c, "jti")),
			      json_integer_value(json_object_get(c, "exp")))) {
		snprintf(why, why_size, "%s jti missing or already used", what);
	} else {
		json_decref(h);
		return c;
	}
	json_decref(h);
	json_decref(c);
	return NULL;
}

static bool signed_header_has(const json_t *sh, const char *name, const char *value)
{
	size_t i;
	json_t *o;

	json_array_foreach(sh, i, o) {
		const char *v = json_string_value(json_object_get(o, name));

		if (json_is_object(o) && json_object_size(o) == 1 && v && value &&
		    !strcmp(v, value))
			return true;
	}
	return false;
}

bool sim_pdnd_check_modi(struct sim_pdnd *p, const struct sim_request *rq, const json_t *voucher,
			 const char *eservice, bool audit, char *why, size_t why_size)
{
	const char *aud = eservice_audience(p, eservice) ?: "";
	const char *digest = sim_header(rq, "Digest"), *sig = sim_header(rq, "Agid-JWT-Signature");
	const char *te = sim_header(rq, "Agid-JWT-TrackingEvidence");
	struct sb_buf want = SB_BUF_INIT(128), tehex = SB_BUF_INIT(65);
	json_t *sc = NULL, *tc = NULL, *sh;
	unsigned char d[32];
	bool ok = false;

	sb_sha256(rq->body, rq->body_len, d);
	sb_buf_adds(&want, "SHA-256=");
	sb_base64_encode(d, sizeof(d), &want);
	if (!digest || strcmp(digest, want.buf)) {
		snprintf(why, why_size, "Digest header missing or not the SHA-256 of the body");
		goto done;
	}
	if (!sig) {
		snprintf(why, why_size, "Agid-JWT-Signature missing");
		goto done;
	}
	sc = modi_jws(p, sig, voucher, aud, "agid-jwt-signature", why, why_size);
	if (!sc)
		goto done;
	sh = json_object_get(sc, "signed_headers");
	if (!json_is_array(sh)) {
		snprintf(why, why_size,
			 "Claim 'signed_headers' con un formato non valido; atteso un array");
		goto done;
	}
	if (!signed_header_has(sh, "digest", digest)) {
		snprintf(why, why_size,
			 "Header HTTP 'Digest' non presente nella lista degli header firmati");
		goto done;
	}
	if (!signed_header_has(sh, "content-type", sim_header(rq, "Content-Type"))) {
		snprintf(why, why_size, "Header HTTP 'Content-Type' non firmato o diverso");
		goto done;
	}
	if (audit) {
		const char *vd = json_string_value(json_object_get(json_object_get(voucher,
										   "digest"),
								   "value"));

		if (!te) {
			snprintf(why, why_size, "Agid-JWT-TrackingEvidence missing");
			goto done;
		}
		tc = modi_jws(p, te, voucher, aud, "agid-jwt-trackingevidence", why, why_size);
		if (!tc)
			goto done;
		if (!json_is_string(json_object_get(tc, "userID")) ||
		    !json_is_string(json_object_get(tc, "userLocation")) ||
		    !json_is_string(json_object_get(tc, "LoA")) || !json_object_get(tc, "dnonce")) {
			snprintf(why, why_size,
				 "tracking evidence lacks userID, userLocation, LoA or dnonce");
			goto done;
		}
		if (strcmp(json_string_value(json_object_get(tc, "purposeId")) ?: "",
			   json_string_value(json_object_get(voucher, "purposeId")) ?: "-")) {
			snprintf(why, why_size,
				 "tracking evidence purposeId differs from the voucher's");
			goto done;
		}
		sb_sha256(te, strlen(te), d);
		sb_hex_encode(d, sizeof(d), &tehex);
		if (!vd || strcasecmp(vd, tehex.buf)) {
			snprintf(why, why_size,
				 "voucher digest does not match the tracking evidence "
				 "(digest not passed in the client assertion, or voucher reused)");
			goto done;
		}
	}
	ok = true;
done:
	json_decref(sc);
	json_decref(tc);
	sb_buf_release(&want);
	sb_buf_release(&tehex);
	return ok;
}
