/*
 * The REST adapter for a vendor protocol system (docs/protocol-adapters.md).
 *
 *   POST {rest_url}/registrazioni                       register, returns number and date
 *   PUT  {rest_url}/registrazioni/{reg}/{year}/{n}/segnatura   the sealed segnatura (XML)
 *   POST {rest_url}/registrazioni/{reg}/{year}/{n}/annullamento
 *
 * Every call carries the Authorization header read from rest_auth_file
 * (mode 0600, never logged). Registration carries an Idempotency-Key (the
 * act id or the legal fact id), so that a retry after a lost reply gets the
 * same number back instead of a second registration.
 *
 * Errors: network failures, timeouts, 408/429/5xx are SB_ETEMP (retried by
 * the outbox); other 4xx are SB_EREJECT with the vendor's message quoted
 * (sb_log_quote: the text is remote). A 2xx reply without a valid number
 * and date is SB_EREJECT too: we never invent a number.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_http.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "proto_int.h"

/* Documents travel base64-encoded inside the JSON body: 64 MiB of files at most per call. */
#define PROTO_REST_MAX_DOCS (64u * 1024u * 1024u)

int proto_rest_open(struct proto *p, const struct proto_opts *o, struct sb_err *err)
{
	struct sb_http_opts ho;
	int rc;

	if (!o->rest_url || !*o->rest_url)
		return sb_err_set(err, SB_ECONFIG, 0,
				  "protocol.rest_url is not set (backend rest)");
	if (!o->rest_auth_file)
		return sb_err_set(err, SB_ECONFIG, 0,
				  "protocol.rest_auth_file is not set (backend rest)");
	rc = sb_secret_file_read(o->rest_auth_file, &p->rest_auth, err);
	if (rc < 0)
		return rc == SB_ENOTFOUND ? sb_err_set(err, SB_ECONFIG, 0,
						       "protocol.rest_auth_file not found") : rc;
	for (const char *c = p->rest_auth; *c; c++)
		if ((unsigned char)*c < 0x20)
			return sb_err_set(err, SB_ECONFIG, 0, "protocol.rest_auth_file"
					  " must hold one header value on one line");
	memset(&ho, 0, sizeof(ho));
	ho.timeout_ms = o->rest_timeout_ms > 0 ? o->rest_timeout_ms : 30000;
	ho.connect_timeout_ms = ho.timeout_ms < 10000 ? ho.timeout_ms : 10000;
	ho.ca_file = o->rest_ca_file;
	ho.platform = "protocol";
	rc = sb_http_new(&p->http, &ho, err);
	if (rc < 0)
		return rc;
	p->rest_url = sb_xstrdup(o->rest_url);
	{
		size_t n = strlen(p->rest_url);

		while (n > 0 && p->rest_url[n - 1] == '/')
			p->rest_url[--n] = '\0';
	}
	p->rest_timeout_ms = ho.timeout_ms;
	return 0;
}

/* One exchange; the reply JSON (2xx) goes to *reply when reply is not NULL. */
static int call(struct proto *p, const char *method, const char *url, const char *ctype,
		const char *idem, const void *body, size_t len, json_t **reply,
		struct sb_err *err)
{
	struct sb_http_resp resp;
	struct sb_http_req req;
	char *auth = sb_xasprintf("Authorization: %s", p->rest_auth);
	char *ct = sb_xasprintf("Content-Type: %s", ctype);
	char *ik = idem ? sb_xasprintf("Idempotency-Key: %s", idem) : NULL;
	const char *headers[] = { auth, ct, "Accept: application/json", ik, NULL };
	int rc, cls;

	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	req.method = method;
	req.url = url;
	req.headers = headers;
	req.body = body;
	req.body_len = len;
	rc = sb_http_do(p->http, &req, &resp, err);
	if (rc < 0) {
		sb_err_prefix(err, "protocol system");
		goto cleanup;
	}
	cls = sb_http_status_class(resp.status);
	if (cls != SB_OK) {
		char quoted[160];
		json_t *e = NULL;
		const char *msg = NULL;

		if (sb_json_parse(resp.body.buf, resp.body.len, 65536, "reply", &e, NULL) == 0)
			msg = json_string_value(json_object_get(e, "message"));
		sb_log_quote(msg ? msg : "", msg ? strlen(msg) : 0, quoted, sizeof(quoted));
		rc = sb_err_set(err, cls == SB_ENOTFOUND ? SB_EREJECT : cls, 0,
				"protocol system answered %ld: %s", resp.status,
				msg ? quoted : "no message");
		if (err) {
			const char *ra = sb_http_resp_header(&resp, "Retry-After");
			int64_t secs;

			err->http = (int)resp.status;
			if (ra && sb_http_retry_after(ra, sb_now(), &secs) == 0)
				err->retry_after = (long)secs;
		}
		json_decref(e);
		goto cleanup;
	}
	if (reply) {
		rc = sb_json_parse(resp.body.buf, resp.body.len, SB_MAX_JSON_BODY,
				   "protocol system reply", reply, err);
		if (rc < 0)
			rc = sb_err_set(err, SB_EREJECT, 0, "protocol system reply is not JSON");
	}
cleanup:
	sb_http_resp_release(&resp);
	free(auth);
	free(ct);
	free(ik);
	return rc;
}

static const char *party_type(enum proto_party_type t)
{
	return t == PROTO_PF ? "PF" : t == PROTO_PG ? "PG" : "PA";
}

static int read_file(const char *path, uint64_t size, struct sb_buf *out, struct sb_err *err)
{
	FILE *f = fopen(path, "rb");
	char chunk[SB_FILE_CHUNK];
	size_t n;
	uint64_t got = 0;

	if (!f)
		return sb_err_set(err, SB_EIO, errno, "cannot open document '%s'", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		got += n;
		if (sb_buf_add(out, chunk, n) < 0) {
			fclose(f);
			return sb_err_set(err, SB_ETOOBIG, 0,
					  "documents larger than %u bytes for the protocol system",
					  PROTO_REST_MAX_DOCS);
		}
	}
	fclose(f);
	if (got != size)
		return sb_err_set(err, SB_EIO, 0, "document '%s' changed while registering", path);
	return 0;
}

static int body_json(struct proto *p, const struct proto_row *row, struct sb_buf *out,
		     struct sb_err *err)
{
	json_t *o = json_object(), *parties = json_array(), *docs = json_array();
	struct sb_buf content = SB_BUF_INIT(PROTO_REST_MAX_DOCS);
	int rc = 0;

	json_object_set_new(o, "registro", json_string(p->reg));
	json_object_set_new(o, "codiceAmministrazione", json_string(p->ipa_code));
	json_object_set_new(o, "codiceAOO", json_string(p->aoo_code));
	json_object_set_new(o, "direzione", json_string(row->dir == PROTO_OUT ? "U" : "E"));
	json_object_set_new(o, "oggetto", json_string(row->subject));
	json_object_set_new(o, "classificazione", json_string(row->classification));
	if (row->assignment)
		json_object_set_new(o, "assegnatario", json_string(row->assignment));
	json_object_set_new(o, "autore", json_string(row->author));
	for (size_t i = 0; i < row->nparties; i++) {
		json_t *c = json_object();

		json_object_set_new(c, "tipo", json_string(party_type(row->parties[i].type)));
		json_object_set_new(c, "denominazione", json_string(row->parties[i].name));
		if (row->parties[i].tax_id)
			json_object_set_new(c, "codiceFiscale",
					    json_string(row->parties[i].tax_id));
		if (row->parties[i].ipa_code)
			json_object_set_new(c, "codiceIPA", json_string(row->parties[i].ipa_code));
		json_array_append_new(parties, c);
	}
	json_object_set_new(o, "corrispondenti", parties);
	for (size_t i = 0; i < row->ndocs && rc == 0; i++) {
		const struct proto_hdoc *d = &row->docs[i];
		struct sb_buf b64 = SB_BUF_INIT(PROTO_REST_MAX_DOCS / 3 * 4 + 4);
		json_t *j = json_object();

		sb_buf_reset(&content);
		rc = read_file(d->path, d->size, &content, err);
		if (rc == 0 && sb_base64_encode(content.buf, content.len, &b64) < 0)
			rc = sb_err_set(err, SB_ETOOBIG, 0, "documents too large for the protocol"
					" system");
		json_object_set_new(j, "nomeFile", json_string(d->name));
		json_object_set_new(j, "mimeType", json_string(d->mime_type));
		if (d->title)
			json_object_set_new(j, "descrizione", json_string(d->title));
		json_object_set_new(j, "impronta", json_string(d->sha256_b64));
		json_object_set_new(j, "algoritmo", json_string("SHA-256"));
		json_object_set_new(j, "dimensione", json_integer((json_int_t)d->size));
		json_object_set_new(j, "contenuto", json_string(sb_buf_cstr(&b64)));
		json_object_set_new(j, "primario", json_boolean(i == 0));
		json_array_append_new(docs, j);
		sb_buf_release(&b64);
	}
	json_object_set_new(o, "documenti", docs);
	if (row->link) {
		json_t *l = json_object();

		json_object_set_new(l, "registro", json_string(row->link->id.reg));
		json_object_set_new(l, "anno", json_integer(row->link->id.year));
		json_object_set_new(l, "numero", json_integer((json_int_t)row->link->id.number));
		json_object_set_new(o, "riferimento", l);
		json_object_set_new(o, "iun", json_string(row->iun));
		json_object_set_new(o, "categoria", json_string(row->category));
	}
	if (rc == 0)
		rc = sb_json_dump(o, out, err);
	json_decref(o);
	sb_buf_release(&content);
	return rc;
}

static bool valid_time(const char *s)
{
	return s && strlen(s) == 8 && s[2] == ':' && s[5] == ':' &&
	       s[0] >= '0' && s[0] <= '2' && s[1] >= '0' && s[1] <= '9' && s[3] >= '0' &&
	       s[3] <= '5' && s[4] >= '0' && s[4] <= '9' && s[6] >= '0' && s[6] <= '5' &&
	       s[7] >= '0' && s[7] <= '9';
}

/* Read number, year, date and time from the vendor's reply into row. */
static int parse_reply(struct proto *p, json_t *reply, struct proto_row *row,
		       struct sb_err *err)
{
	const char *reg = NULL, *num = NULL, *date = NULL, *time_ = NULL;
	int64_t year, t;
	uint64_t n;

	if (!json_is_object(reply) ||
	    sb_json_get_str(reply, "registro", &reg, err) < 0 ||
	    sb_json_get_str(reply, "numero", &num, err) < 0 ||
	    sb_json_get_str(reply, "data", &date, err) < 0 ||
	    sb_json_get_str(reply, "ora", &time_, err) < 0)
		return sb_err_set(err, SB_EREJECT, 0, "protocol system reply: expected registro,"
				  " numero, data, ora as strings");
	if (sb_json_get_int(reply, "anno", 1970, 9999, &year, err) < 0)
		return sb_err_set(err, SB_EREJECT, 0, "protocol system reply: anno missing or not"
				  " 1970..9999");
	if (!reg || strcmp(reg, p->reg))
		return sb_err_set(err, SB_EREJECT, 0, "protocol system reply: registro is not '%s'",
				  p->reg);
	if (!num || strlen(num) < 7 || sb_parse_u64z(num, 999999999999ull, &n) < 0 || n == 0)
		return sb_err_set(err, SB_EREJECT, 0, "protocol system reply: numero must be at"
				  " least 7 digits");
	if (!date || sb_time_parse_date(date, &t) < 0 ||
	    (date[0] - '0') * 1000 + (date[1] - '0') * 100 + (date[2] - '0') * 10 +
	    (date[3] - '0') != year)
		return sb_err_set(err, SB_EREJECT, 0, "protocol system reply: data must be"
				  " YYYY-MM-DD in anno");
	if (time_ && !valid_time(time_))
		return sb_err_set(err, SB_EREJECT, 0,
				  "protocol system reply: ora must be hh:mm:ss");
	row->id.year = (int)year;
	row->id.number = n;
	snprintf(row->date, sizeof(row->date), "%s", date);
	if (time_)
		snprintf(row->time, sizeof(row->time), "%s", time_);
	else
		proto_rome_time(proto_now(p), NULL, NULL, row->time);
	row->registered_at = proto_now(p);
	return 0;
}

int proto_rest_register(struct proto *p, struct proto_row *row, struct sb_err *err)
{
	struct sb_buf body = SB_BUF_INIT(PROTO_REST_MAX_DOCS * 2);
	char *url = sb_xasprintf("%s/registrazioni", p->rest_url);
	json_t *reply = NULL;
	int rc;

	rc = body_json(p, row, &body, err);
	if (rc == 0)
		rc = call(p, "POST", url, "application/json",
			  row->act_id ? row->act_id : row->legal_fact_id,
			  body.buf, body.len, &reply, err);
	if (rc == 0)
		rc = parse_reply(p, reply, row, err);
	json_decref(reply);
	sb_buf_release(&body);
	free(url);
	return rc;
}

int proto_rest_put_segnatura(struct proto *p, const struct proto_id *id, const char *xml,
			     struct sb_err *err)
{
	char *url = sb_xasprintf("%s/registrazioni/%s/%d/%07llu/segnatura", p->rest_url, id->reg,
				 id->year, (unsigned long long)id->number);
	int rc = call(p, "PUT", url, "application/xml", NULL, xml, strlen(xml), NULL, err);

	free(url);
	return rc;
}

int proto_rest_annul(struct proto *p, const struct proto_id *id, const char *reason,
		     const char *author, const char *act, struct sb_err *err)
{
	char *url = sb_xasprintf("%s/registrazioni/%s/%d/%07llu/annullamento", p->rest_url,
				 id->reg, id->year, (unsigned long long)id->number);
	struct sb_buf body = SB_BUF_INIT(SB_MAX_JSON_BODY);
	json_t *o = json_object();
	int rc;

	json_object_set_new(o, "motivo", json_string(reason));
	json_object_set_new(o, "autore", json_string(author));
	json_object_set_new(o, "provvedimento", json_string(act));
	rc = sb_json_dump(o, &body, err);
	if (rc == 0)
		rc = call(p, "POST", url, "application/json", NULL, body.buf, body.len, NULL, err);
	json_decref(o);
	sb_buf_release(&body);
	free(url);
	return rc;
}
