/*
 * A vendor protocol system's stand-in, under /protocol/v1/, speaking the
 * REST contract of docs/protocol-adapters.md. Written from that document,
 * not from protocol/ (sim/ links common/ only).
 *
 *   POST /protocol/v1/registrazioni                       201 {registro, anno, numero, data, ora}
 *   PUT  /protocol/v1/registrazioni/{reg}/{anno}/{n}/segnatura   204
 *   POST /protocol/v1/registrazioni/{reg}/{anno}/{n}/annullamento 200
 *   GET  /protocol/v1/registrazioni/{reg}/{anno}/{n}      200 (for tests: what it holds)
 *
 * It is as strict as a careful vendor: Authorization must be
 * "Bearer send-sim-protocol" (401), every required field must be there
 * (400 naming it), each document's impronta must be the SHA-256 of its
 * contenuto (400), a segnatura must carry the registration's number (400).
 * The same Idempotency-Key gives the same registration back (200). The keys
 * sim-bad-number, sim-bad-date, sim-bad-register and sim-bad-json get a
 * malformed 201, to exercise the client's checks of the reply.
 * Faults (5xx, 429, drops, lost replies, latency) come from the common injector.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_json.h"
#include "sim.h"

#define PREFIX "/protocol/v1/registrazioni"
#define SIM_PROTO_TOKEN "Bearer send-sim-protocol"
#define SIM_PROTO_MAX 100000u

struct sim_proto_reg {
	char key[128];
	int year;
	unsigned long number;
	char date[11];
	char time[9];
	char direction[2];
	bool has_segnatura;
	bool annulled;
};

struct sim_proto {
	struct sim_proto_reg *regs;
	size_t n, alloc;
	unsigned long last[2];     /* [0] year last[1]: counter of that year */
};

/* Call with s->lock held: the first call sets s->protocol. */
static struct sim_proto *state(struct sim *s)
{
	/* Static storage: the register stays reachable until exit (no leak report). */
	static struct sim_proto the_register;

	if (!s->protocol)
		s->protocol = &the_register;
	return s->protocol;
}

static struct sim_proto_reg *find_num(struct sim_proto *sp, int year, unsigned long n)
{
	for (size_t i = 0; i < sp->n; i++)
		if (sp->regs[i].year == year && sp->regs[i].number == n)
			return &sp->regs[i];
	return NULL;
}

static void reply_reg(struct sim_response *rs, unsigned status, const struct sim_proto_reg *r)
{
	sim_reply_json(rs, status, "{\"registro\":\"PG\",\"anno\":%d,\"numero\":\"%07lu\","
		       "\"data\":\"%s\",\"ora\":\"%s\",\"direzione\":\"%s\",\"segnatura\":%s,"
		       "\"annullata\":%s}", r->year, r->number, r->date, r->time, r->direction,
		       r->has_segnatura ? "true" : "false", r->annulled ? "true" : "false");
}

/* Each document: impronta must be base64(SHA-256(base64-decoded contenuto)). */
static const char *check_docs(json_t *docs)
{
	size_t i;
	json_t *d;

	if (!json_is_array(docs) || json_array_size(docs) == 0)
		return "documenti: at least one document is required";
	json_array_foreach(docs, i, d) {
		const char *c = json_string_value(json_object_get(d, "contenuto"));
		const char *imp = json_string_value(json_object_get(d, "impronta"));
		struct sb_buf raw = SB_BUF_INIT(SB_MAX_PDF), b64 = SB_BUF_INIT(128);
		unsigned char md[SB_SHA256_LEN];
		bool ok;

		if (!json_string_value(json_object_get(d, "nomeFile")) || !c || !imp)
			return "documenti: nomeFile, impronta and contenuto are required";
		ok = sb_base64_decode(c, strlen(c), &raw) == 0;
		if (ok) {
			sb_sha256(raw.buf, raw.len, md);
			sb_base64_encode(md, sizeof(md), &b64);
			ok = !strcmp(sb_buf_cstr(&b64), imp);
		}
		sb_buf_release(&raw);
		sb_buf_release(&b64);
		if (!ok)
			return "documenti: impronta does not match contenuto";
	}
	return NULL;
}

static void do_register(struct sim *s, const struct sim_request *rq, struct sim_response *rs)
{
	struct sim_proto *sp;
	const char *key = sim_header(rq, "Idempotency-Key");
	const char *problem = NULL, *dir;
	json_t *body = NULL;
	struct sim_proto_reg *r;
	struct tm tm;
	time_t now = time(NULL);

	if (sb_json_parse(rq->body, rq->body_len, SB_MAX_PDF, "body", &body, NULL) < 0 ||
	    !json_is_object(body)) {
		sim_reply_json(rs, 400, "{\"message\":\"body must be a JSON object\"}");
		goto done;
	}
	dir = json_string_value(json_object_get(body, "direzione"));
	if (!key || !*key || strlen(key) >= sizeof(r->key))
		problem = "Idempotency-Key header is required";
	else if (!json_is_string(json_object_get(body, "registro")) ||
		 strcmp(json_string_value(json_object_get(body, "registro")), "PG"))
		problem = "registro: only PG is kept here";
	else if (!dir || (strcmp(dir, "U") && strcmp(dir, "E")))
		problem = "direzione: U or E";
	else if (!json_string_value(json_object_get(body, "oggetto")) ||
		 !*json_string_value(json_object_get(body, "oggetto")))
		problem = "oggetto is required";
	else if (!json_is_array(json_object_get(body, "corrispondenti")) ||
		 !json_array_size(json_object_get(body, "corrispondenti")))
		problem = "corrispondenti: at least one is required";
	else if (!strcmp(dir, "E") && !json_is_object(json_object_get(body, "riferimento")))
		problem = "riferimento is required for an incoming receipt";
	else
		problem = check_docs(json_object_get(body, "documenti"));
	if (problem) {
		sim_reply_json(rs, 400, "{\"message\":\"%s\"}", problem);
		goto done;
	}
	/*
	 * Misbehaviour on request, for the client's reply checks: an
	 * Idempotency-Key naming one gets a broken 201 and nothing is kept.
	 */
	if (!strcmp(key, "sim-bad-number")) {
		sim_reply_json(rs, 201, "{\"registro\":\"PG\",\"anno\":2026,\"numero\":\"12\","
			       "\"data\":\"2026-11-24\",\"ora\":\"10:00:00\"}");
		goto done;
	} else if (!strcmp(key, "sim-bad-date")) {
		sim_reply_json(rs, 201, "{\"registro\":\"PG\",\"anno\":2026,\"numero\":\"0000012\","
			       "\"data\":\"2025-13-01\",\"ora\":\"10:00:00\"}");
		goto done;
	} else if (!strcmp(key, "sim-bad-register")) {
		sim_reply_json(rs, 201, "{\"registro\":\"XX\",\"anno\":2026,\"numero\":\"0000012\","
			       "\"data\":\"2026-11-24\",\"ora\":\"10:00:00\"}");
		goto done;
	} else if (!strcmp(key, "sim-bad-json")) {
		sim_reply_json(rs, 201, "<html>registrato</html>");
		goto done;
	}
	pthread_mutex_lock(&s->lock);
	sp = state(s);
	for (size_t i = 0; i < sp->n; i++)
		if (!strcmp(sp->regs[i].key, key)) {
			reply_reg(rs, 200, &sp->regs[i]);
			pthread_mutex_unlock(&s->lock);
			goto done;
		}
	if (sp->n >= SIM_PROTO_MAX) {
		pthread_mutex_unlock(&s->lock);
		sim_reply_json(rs, 507, "{\"message\":\"register full\"}");
		goto done;
	}
	if (sp->n == sp->alloc) {
		sp->alloc = sp->alloc ? sp->alloc * 2 : 16;
		sp->regs = sb_xrealloc(sp->regs, sp->alloc * sizeof(*sp->regs));
	}
	localtime_r(&now, &tm);
	if (sp->last[0] != (unsigned long)tm.tm_year + 1900) {
		sp->last[0] = (unsigned long)tm.tm_year + 1900;
		sp->last[1] = 0;
	}
	r = &sp->regs[sp->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->key, sizeof(r->key), "%s", key);
	r->year = tm.tm_year + 1900;
	/* Vendor numbers start high so tests can tell them from embedded ones. */
	r->number = 500000 + ++sp->last[1];
	strftime(r->date, sizeof(r->date), "%Y-%m-%d", &tm);
	strftime(r->time, sizeof(r->time), "%H:%M:%S", &tm);
	snprintf(r->direction, sizeof(r->direction), "%s", dir);
	reply_reg(rs, 201, r);
	pthread_mutex_unlock(&s->lock);
done:
	json_decref(body);
}

/* /{reg}/{year}/{n}[/{what}] after the prefix. */
static bool parse_path(const char *p, int *year, unsigned long *n, const char **what)
{
	unsigned long long y, num;
	char reg[17];
	int used = 0;

	if (sscanf(p, "/%16[^/]/%4llu/%12llu%n", reg, &y, &num, &used) != 3 || strcmp(reg, "PG"))
		return false;
	*year = (int)y;
	*n = (unsigned long)num;
	*what = p + used;
	return true;
}

bool sim_proto_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs)
{
	const char *auth, *what;
	struct sim_proto_reg *r;
	unsigned long n;
	int year;

	if (strncmp(rq->path, PREFIX, strlen(PREFIX)))
		return false;
	auth = sim_header(rq, "Authorization");
	if (!auth || strcmp(auth, SIM_PROTO_TOKEN)) {
		sim_reply_json(rs, 401, "{\"message\":\"missing or wrong Authorization\"}");
		return true;
	}
	if (!strcmp(rq->path, PREFIX)) {
		if (strcmp(rq->method, "POST"))
			sim_reply_json(rs, 405, "{\"message\":\"POST only\"}");
		else
			do_register(s, rq, rs);
		return true;
	}
	if (!parse_path(rq->path + strlen(PREFIX), &year, &n, &what)) {
		sim_reply_json(rs, 404, "{\"message\":\"no such registration\"}");
		return true;
	}
	pthread_mutex_lock(&s->lock);
	r = find_num(state(s), year, n);
	if (!r) {
		sim_reply_json(rs, 404, "{\"message\":\"no such registration\"}");
	} else if (!*what && !strcmp(rq->method, "GET")) {
		reply_reg(rs, 200, r);
	} else if (!strcmp(what, "/segnatura") && !strcmp(rq->method, "PUT")) {
		char num[64];

		snprintf(num, sizeof(num), "<prot:NumeroRegistrazione>%07lu<", r->number);
		if (!rq->body_len || !strstr(rq->body, "<prot:SegnaturaInformatica") ||
		    !strstr(rq->body, num)) {
			sim_reply_json(rs, 400, "{\"message\":\"segnatura does not carry this"
				       " registration\"}");
		} else {
			r->has_segnatura = true;
			rs->status = 204;
		}
	} else if (!strcmp(what, "/annullamento") && !strcmp(rq->method, "POST")) {
		json_t *b = NULL;

		if (sb_json_parse(rq->body, rq->body_len, 65536, "body", &b, NULL) < 0 ||
		    !json_string_value(json_object_get(b, "motivo")) ||
		    !json_string_value(json_object_get(b, "provvedimento")))
			sim_reply_json(rs, 400,
				       "{\"message\":\"motivo and provvedimento are required\"}");
		else if (r->annulled)
			sim_reply_json(rs, 409, "{\"message\":\"already annulled\"}");
		else
			r->annulled = true, reply_reg(rs, 200, r);
		json_decref(b);
	} else {
		sim_reply_json(rs, 405, "{\"message\":\"method not allowed\"}");
	}
	pthread_mutex_unlock(&s->lock);
	return true;
}
