/*
 * send-sim: INAD stand-in ("INAD CONSULTAZIONE DD"): extract, verify and
 * the asynchronous bulk list. Spec: ../shared/specs/inad/inad_api_extraxtion.yaml
 * and PDND-SUMMARY.md section 9. Voucher only (no ModI headers); errors use
 * Errore{status, type, detail}.
 *
 * The bulk list is ready at the second state poll, so a client must follow
 * PRESA_IN_CARICO / IN_ELABORAZIONE and then the 303 to the response.
 */
#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_time.h"
#include "sim_pdnd.h"

#define INAD_PREFIX "/inad/rest/inad/v1/domiciliodigitale"
#define INAD_MAX_LIST 1000

static pthread_mutex_t bulk_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *bulk;     /* id -> {"polls": n, "list": [...]} */

static void reply(struct sim_response *rs, unsigned status, json_t *body)
{
	char *txt = json_dumps(body, JSON_COMPACT);

	sim_reply_json(rs, status, "%s", txt ? txt : "{}");
	free(txt);
	json_decref(body);
}

static void error(struct sim_response *rs, unsigned status, const char *type, const char *detail)
{
	char st[8];

	snprintf(st, sizeof(st), "%u", status);
	reply(rs, status, json_pack("{s:s,s:s,s:s}", "status", st, "type", type, "detail", detail));
}

static bool cf_shape(const char *cf)
{
	size_t n = cf ? strlen(cf) : 0;

	if (n != 16 && n != 11)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)cf[i]))
			return false;
	return true;
}

static json_t *domicile(struct sim_pdnd *p, const char *cf)
{
	size_t i;
	json_t *d;

	json_array_foreach(sim_pdnd_domiciles(p), i, d)
		if (!strcmp(json_string_value(json_object_get(d, "codiceFiscale")) ?: "", cf))
			return d;
	return NULL;
}

static json_t *extract_reply(json_t *d)
{
	char now[32];

	sb_time_iso8601(sb_now(), now, sizeof(now));
	return json_pack("{s:O,s:s,s:O}", "codiceFiscale", json_object_get(d, "codiceFiscale"),
			 "since", now, "digitalAddress", json_object_get(d, "digitalAddress"));
}

static void list_submit(struct sim_pdnd *p, const struct sim_request *rq, struct sim_response *rs)
{
	json_t *req = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, NULL);
	json_t *cfs = json_object_get(req, "codiciFiscali"), *list, *cf;
	char id[37], now[32];
	size_t i;

	if (!json_is_array(cfs) || !json_array_size(cfs) || json_array_size(cfs) > INAD_MAX_LIST ||
	    !json_is_string(json_object_get(req, "praticalReference"))) {
		error(rs, 400, "BAD_REQUEST",
		      "codiciFiscali (1..1000) and praticalReference are required");
		json_decref(req);
		return;
	}
	list = json_array();
	json_array_foreach(cfs, i, cf) {
		json_t *d = domicile(p, json_string_value(cf) ?: "");

		if (d)
			json_array_append_new(list, extract_reply(d));
	}
	sim_pdnd_uuid(id);
	pthread_mutex_lock(&bulk_lock);
	if (!bulk)
		bulk = json_object();
	json_object_set_new(bulk, id, json_pack("{s:i,s:o}", "polls", 0, "list", list));
	pthread_mutex_unlock(&bulk_lock);
	sb_time_iso8601(sb_now(), now, sizeof(now));
	sim_reply_header(rs, "Location: %s/listDigitalAddress/state/%s", INAD_PREFIX, id);
	reply(rs, 202, json_pack("{s:s,s:s,s:s,s:s}", "state", "PRESA_IN_CARICO",
				 "message", "Richiesta elenco presa in carico",
				 "id", id, "dateTimeRequest", now));
	json_decref(req);
}

static void list_state(const char *id, struct sim_response *rs, bool response)
{
	json_t *b, *list = NULL;
	int64_t polls = -1;

	pthread_mutex_lock(&bulk_lock);
	b = bulk ? json_object_get(bulk, id) : NULL;
	if (b) {
		polls = json_integer_value(json_object_get(b, "polls"));
		if (!response)
			json_object_set_new(b, "polls", json_integer(polls + 1));
		else if (polls >= 1)
			list = json_incref(json_object_get(b, "list"));
	}
	pthread_mutex_unlock(&bulk_lock);
	if (polls < 0) {
		error(rs, 404, "NOT_FOUND", "request id not found");
	} else if (response) {
		if (list)
			reply(rs, 200, json_pack("{s:o}", "list", list));
		else
			error(rs, 404, "NOT_FOUND", "list not ready");
	} else if (polls == 0) {
		reply(rs, 200, json_pack("{s:s,s:s}", "state", "IN_ELABORAZIONE", "message",
					 "Richiesta elenco in fase di processamento"));
	} else {
		sim_reply_header(rs, "Location: %s/listDigitalAddress/response/%s",
				 INAD_PREFIX, id);
		reply(rs, 303, json_pack("{s:s,s:s}", "state", "DISPONIBILE", "message",
					 "Elenco disponibile"));
	}
}

bool sim_inad_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs)
{
	struct sim_pdnd *p = sim_pdnd_state(s);
	const char *rest, *ref;
	json_t *voucher = NULL, *d;
	char why[256];

	if (!p || strncmp(rq->path, INAD_PREFIX "/", strlen(INAD_PREFIX) + 1))
		return false;
	rest = rq->path + strlen(INAD_PREFIX);
	if (!sim_pdnd_check_voucher(p, sim_header(rq, "Authorization"), "inad", &voucher, why,
				    sizeof(why))) {
		fprintf(stderr, "inad-sim: refused: %s\n", why);
		error(rs, 401, "UNAUTHORIZED", "Invalid Bearer JWT Token");
		return true;
	}
	json_decref(voucher);
	if (!strcmp(rq->method, "POST") && !strcmp(rest, "/listDigitalAddress")) {
		list_submit(p, rq, rs);
	} else if (!strcmp(rq->method, "GET") && !strncmp(rest, "/listDigitalAddress/state/", 26)) {
		list_state(rest + 26, rs, false);
	} else if (!strcmp(rq->method, "GET") &&
		   !strncmp(rest, "/listDigitalAddress/response/", 29)) {
		list_state(rest + 29, rs, true);
	} else if (!strcmp(rq->method, "GET") && (!strncmp(rest, "/extract/", 9) ||
						   !strncmp(rest, "/verify/", 8))) {
		bool verify = rest[1] == 'v';
		const char *cf = rest + (verify ? 8 : 9);

		ref = sim_query(rq, "practicalReference");
		if (!ref || !*ref) {
			error(rs, 400, "BAD_REQUEST", "practicalReference is required");
		} else if (!cf_shape(cf)) {
			error(rs, 400, "BAD_REQUEST", "codice_fiscale is not valid");
		} else if (verify) {
			const char *addr = sim_query(rq, "digital_address");
			bool found = false;
			size_t i;
			json_t *e;
			char now[32];

			d = domicile(p, cf);
			json_array_foreach(json_object_get(d, "digitalAddress"), i, e)
				found = found || (addr && !strcmp(json_string_value(json_object_get(
						e, "digitalAddress")) ?: "", addr));
			sb_time_iso8601(sb_now(), now, sizeof(now));
			reply(rs, 200,
			      json_pack("{s:b,s:s}", "outcome", found, "dateTimeCheck", now));
		} else if (!(d = domicile(p, cf))) {
			error(rs, 404, "NOT_FOUND", "Domicilio digitale non presente");
		} else {
			reply(rs, 200, extract_reply(d));
		}
	} else {
		error(rs, 404, "NOT_FOUND", "Unknown API Request");
	}
	return true;
}
