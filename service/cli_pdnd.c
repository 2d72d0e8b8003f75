/*
 * send-bridge pdnd kid KEYFILE
 * send-bridge pdnd token --purpose ID
 * send-bridge resolve TAXID [--act REF] [--office NAME] [--operator ID] [--type PF|PG]
 * send-bridge audit verify [--expect-rows N --expect-head HASH]
 * send-bridge audit seal
 * send-bridge audit report --from YYYY-MM-DD --to YYYY-MM-DD
 *
 * The PDND side of the command line (pdnd/). Nothing here prints a voucher
 * or a client assertion; tax codes, PEC addresses and residences are masked
 * unless --show-personal-data is given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_http.h"
#include "sb_log.h"
#include "sb_time.h"
#include "cli_int.h"
#include "pdnd.h"
#include "pdnd_resolve.h"
#include "pdnd_store.h"
#include "svc_store.h"

void svc_help_pdnd(FILE *out)
{
	fprintf(out,
		"usage: send-bridge pdnd kid KEYFILE\n"
		"       send-bridge pdnd token --purpose ID [-c FILE]\n"
		"\n"
		"kid    prints the kid PDND shows for a key: the RFC 7638 thumbprint of the\n"
		"       RSA public key in KEYFILE (a public key, or a private key with mode 0600)\n"
		"token  asks PDND for a voucher for purpose ID with the [pdnd] configuration\n"
		"       and prints its audience, purpose, id and expiry (never the token);\n"
		"       on refusal prints PDND's code, correlationId and the likely cause\n"
		"\n"
		"exit: 0 ok, 2 usage or configuration error, 3 PDND refused or unreachable\n");
}

void svc_help_resolve(FILE *out)
{
	fprintf(out,
		"usage: send-bridge resolve TAXID [--act REF] [--office NAME] [--operator ID]\n"
		"                           [--type PF|PG] [-c FILE]\n"
		"\n"
		"Resolves one recipient as the pipeline does: digital domicile from INAD,\n"
		"residence from ANPR (C030 then C001), each with its source. The query is\n"
		"authorised for the operator and office and written to the access trail.\n"
		"Personal data is masked unless --show-personal-data is given before the\n"
		"command.\n"
		"\n"
		"  --act REF       act reference (motivoRichiesta, practicalReference)\n"
		"  --office NAME   default: the only configured office\n"
		"  --operator ID   default: $USER\n"
		"\n"
		"exit: 0 ok, 1 invalid tax code, 2 usage or configuration error,\n"
		"      3 refused (not authorised, or by the e-service) or unreachable\n");
}

void svc_help_audit(FILE *out)
{
	fprintf(out,
		"usage: send-bridge audit verify [--expect-rows N --expect-head HASH] [-c FILE]\n"
		"       send-bridge audit seal [-c FILE]\n"
		"       send-bridge audit report --from YYYY-MM-DD --to YYYY-MM-DD [-c FILE]\n"
		"\n"
		"verify  walks the chains of the PDND access trail and of the store's audit\n"
		"        trail and checks each one's head (and its seal, with [pdnd]\n"
		"        audit_key_file); exit 1 naming the first altered, removed or moved row,\n"
		"        rows cut from the end, or a seal that does not match the key.\n"
		"        Prints the heads (rows and last hash): record the access trail's outside\n"
		"        the machine (e.g. in the daily register) and check it later with\n"
		"        --expect-rows and --expect-head (row N must still carry HASH)\n"
		"seal    seals both heads with [pdnd] audit_key_file, once, after checking the\n"
		"        chains; from then on each new row keeps them sealed (and the store's\n"
		"        audit rows are chained with the key)\n"
		"report  counts e-service queries per operator, e-service and purpose between\n"
		"        the two dates (inclusive) and lists the queries not tied to an act\n");
}

/* Parse "-c FILE" and --name VALUE options; positional arguments go to pos[]. */
struct opts {
	const char *purpose, *act, *office, *op, *type, *from, *to, *expect_rows, *expect_head;
	const char *pos[3];
	int npos;
};

static int parse(struct svc_cli *cli, int argc, char **argv, struct opts *o,
		 void (*help)(FILE *), bool *done)
{
	static const char *const names[] = { "--purpose", "--act", "--office", "--operator",
					     "--type", "--from", "--to", "--expect-rows",
					     "--expect-head" };

	memset(o, 0, sizeof(*o));
	*done = false;
	for (int i = 1; i < argc; i++) {
		const char **slot[] = { &o->purpose, &o->act, &o->office, &o->op, &o->type,
					&o->from, &o->to, &o->expect_rows, &o->expect_head };
		int r = svc_opt_config(cli, argc, argv, &i);
		size_t k;

		if (r < 0)
			return svc_usage("-c needs a file name");
		if (r)
			continue;
		if (svc_is_help(argv[i])) {
			help(stdout);
			*done = true;
			return SVC_EXIT_OK;
		}
		for (k = 0; k < SB_ARRAY_SIZE(names) && strcmp(argv[i], names[k]); k++)
			;
		if (k < SB_ARRAY_SIZE(names)) {
			if (i + 1 >= argc)
				return svc_usage("%s needs a value", argv[i]);
			*slot[k] = argv[++i];
		} else if (argv[i][0] == '-') {
			return svc_usage("unknown option '%s'", argv[i]);
		} else if (o->npos < 3) {
			o->pos[o->npos++] = argv[i];
		} else {
			return svc_usage("unexpected argument '%s'", argv[i]);
		}
	}
	return 0;
}

static int cmd_kid(const char *file)
{
	struct sb_err err = SB_ERR_INIT;
	char kid[PDND_KID_SIZE];

	if (pdnd_kid_file(file, kid, &err) < 0)
		return svc_fail(&err);
	printf("%s\n", kid);
	return SVC_EXIT_OK;
}

static int cmd_token(const struct svc_cli *cli, const char *purpose)
{
	struct sb_cfg *cfg = NULL;
	struct pdnd_client *c = NULL;
	struct pdnd_voucher v = { 0 };
	struct sb_err err = SB_ERR_INIT;
	char iat[32], exp[32];
	int rc;

	if (!purpose)
		return svc_usage("pdnd token needs --purpose ID");
	rc = svc_load_config(cli, &cfg);
	if (rc)
		return rc;
	if (pdnd_client_from_cfg(&c, cfg, &err) < 0 ||
	    pdnd_voucher_request(c, purpose, NULL, &v, &err) < 0) {
		rc = svc_fail(&err);
		goto cleanup;
	}
	printf("client_id: %s\nkid: %s\naud: %s\npurposeId: %s\njti: %s\n", pdnd_client_id(c),
	       pdnd_client_kid(c), v.aud, v.purpose_id, v.jti);
	printf("iat: %s\nexp: %s\nexpires_in: %lld\n", sb_time_iso8601(v.iat, iat, sizeof(iat)),
	       sb_time_iso8601(v.exp, exp, sizeof(exp)), (long long)v.expires_in);
	rc = SVC_EXIT_OK;
cleanup:
	pdnd_voucher_release(&v);
	pdnd_client_free(c);
	sb_cfg_free(cfg);
	return rc;
}

int svc_cmd_pdnd(const struct svc_cli *cli_in, int argc, char **argv)
{
	struct svc_cli cli = *cli_in;
	struct opts o;
	bool done;
	int rc = parse(&cli, argc, argv, &o, svc_help_pdnd, &done);

	if (rc || done)
		return rc;
	if (o.npos == 2 && !strcmp(o.pos[0], "kid"))
		return cmd_kid(o.pos[1]);
	if (o.npos == 1 && !strcmp(o.pos[0], "token"))
		return cmd_token(&cli, o.purpose);
	return svc_usage("pdnd needs 'kid KEYFILE' or 'token --purpose ID'");
}

/* Open the store named by the configuration, with pdnd/'s tables migrated. */
static int open_store(const struct sb_cfg *cfg, struct svc_store **out, struct sb_err *err)
{
	int rc = svc_store_open(out, sb_cfg_str(cfg, "store", "path"),
				(int)sb_cfg_int(cfg, "store", "busy_timeout_ms"), err);

	if (rc == 0 && (rc = pdnd_store_migrate(svc_store_db(*out), err)) < 0) {
		svc_store_close(*out);
		*out = NULL;
	}
	return rc;
}

static void print_value(const struct svc_cli *cli, enum sb_pii_kind kind, const char *v)
{
	char m[256];

	printf("%s", cli->show_personal ? v : sb_pii_mask(kind, v, m, sizeof(m)));
}

static void print_address(const struct svc_cli *cli, const char *label,
			  const struct pdnd_address *a, const char *source)
{
	struct sb_buf b = SB_BUF_INIT(4096);

	pdnd_address_format(a, &b);
	printf("%s: ", label);
	print_value(cli, SB_PII_ADDRESS, b.buf);
	printf(" (source %s%s%s)\n", source, a->since[0] ? ", since " : "", a->since);
	sb_buf_release(&b);
}

static const char *default_office(const struct sb_cfg *cfg)
{
	return sb_cfg_office_count(cfg) == 1 ? sb_cfg_office_name(cfg, 0) : NULL;
}

static int cmd_resolve(const struct svc_cli *cli, const struct opts *o)
{
	struct sb_cfg *cfg = NULL;
	struct svc_store *store = NULL;
	struct pdnd_client *c = NULL;
	struct pdnd_resolver *r = NULL;
	struct sb_http *h = NULL;
	struct pdnd_resolution res = { 0 };
	struct sb_err err = SB_ERR_INIT;
	unsigned char key[32];
	const char *office, *op = o->op ? o->op : getenv("USER");
	struct pdnd_recipient rec = { PDND_PF, o->pos[0], NULL, NULL };
	struct sb_http_opts ho = { 0 };
	int rc;

	if (o->type && strcmp(o->type, "PF") && strcmp(o->type, "PG"))
		return svc_usage("--type must be PF or PG");
	if (o->type && !strcmp(o->type, "PG"))
		rec.type = PDND_PG;
	rc = svc_load_config(cli, &cfg);
	if (rc)
		return rc;
	office = o->office ? o->office : default_office(cfg);
	if (!office) {
		rc = svc_usage("more than one office is configured: name one with --office");
		goto cleanup;
	}
	ho.ca_file = sb_cfg_str(cfg, "pdnd", "ca_file");
	ho.timeout_ms = (long)sb_cfg_int(cfg, "pdnd", "timeout_ms");
	ho.platform = "pdnd";
	if (open_store(cfg, &store, &err) < 0 || svc_store_pii_key(store, key, &err) < 0 ||
	    pdnd_client_from_cfg(&c, cfg, &err) < 0 ||
	    pdnd_resolver_new(&r, cfg, c, svc_store_db(store), key, &err) < 0 ||
	    sb_http_new(&h, &ho, &err) < 0 ||
	    pdnd_resolve(r, h, &(struct pdnd_who){ op, office, o->act }, &rec, &res, &err) < 0) {
		rc = svc_fail(&err);
		goto cleanup;
	}
	printf("tax code: ");
	print_value(cli, SB_PII_TAXID, rec.tax_id);
	printf("\ndomicile: ");
	if (res.domicile) {
		print_value(cli, SB_PII_EMAIL, res.domicile);
		printf(" (source %s)\n", pdnd_source_name(res.domicile_source));
	} else {
		printf("none\n");
	}
	if (res.anpr_queried)
		printf("anpr: %s%s%s\n", res.anpr_outcome == PDND_ANPR_FOUND ? "found" :
		       res.anpr_outcome == PDND_ANPR_CANCELLED ? "cancelled" : "not registered",
		       res.deceased ? ", deceased" : "",
		       res.aire ? ", registered abroad (AIRE)" : "");
	if (res.has_residence)
		print_address(cli, "residence", &res.residence, "anpr");
	if (res.has_act_address)
		print_address(cli, "act address", &res.act_address, "act");
	printf("address used: %s%s\n", pdnd_source_name(res.address_source),
	       res.differs ? " (act and anpr differ)" : "");
	printf("cache: %s\n", res.from_cache ? "hit" : "miss");
	rc = SVC_EXIT_OK;
cleanup:
	sb_wipe(key, sizeof(key));
	pdnd_resolution_release(&res);
	sb_http_free(h);
	pdnd_resolver_free(r);
	pdnd_client_free(c);
	svc_store_close(store);
	sb_cfg_free(cfg);
	return rc;
}

int svc_cmd_resolve(const struct svc_cli *cli_in, int argc, char **argv)
{
	struct svc_cli cli = *cli_in;
	struct opts o;
	bool done;
	int rc = parse(&cli, argc, argv, &o, svc_help_resolve, &done);

	if (rc || done)
		return rc;
	if (o.npos != 1)
		return svc_usage("resolve needs one TAXID");
	return cmd_resolve(&cli, &o);
}

/* --expect-rows N --expect-head HASH, both or neither. */
static int parse_expect(const struct opts *o, struct pdnd_access_head *e, bool *have)
{
	uint64_t n;
	size_t i;

	*have = o->expect_rows || o->expect_head;
	if (!*have)
		return 0;
	if (!o->expect_rows || !o->expect_head)
		return svc_usage("--expect-rows and --expect-head go together");
	if (sb_parse_u64z(o->expect_rows, INT64_MAX, &n) < 0)
		return svc_usage("--expect-rows needs a row count");
	for (i = 0; o->expect_head[i] && i < 64 && strchr("0123456789abcdefABCDEF",
							   o->expect_head[i]); i++)
		e->hash[i] = (char)(o->expect_head[i] | 0x20);   /* hex digits to lower case */
	if (i != 64 || o->expect_head[i])
		return svc_usage("--expect-head needs the 64 hex digits audit verify printed");
	e->hash[64] = '\0';
	e->rows = (int64_t)n;
	return 0;
}

/* The store, and the audit key when one is configured (given to the store for its own trail). */
static int open_audit(const struct svc_cli *cli, struct sb_cfg **cfg, struct svc_store **store,
		      unsigned char key[SB_AUDIT_KEY_SIZE], bool *have_key)
{
	struct sb_err err = SB_ERR_INIT;
	int rc = svc_load_config(cli, cfg);

	if (rc)
		return rc;
	if (sb_audit_key_load(*cfg, key, have_key, &err) < 0 || open_store(*cfg, store, &err) < 0 ||
	    (*have_key && svc_store_audit_key(*store, key, &err) < 0))
		return svc_fail(&err);
	return 0;
}

/* The store's own audit trail: what verify found, and what it could not check. */
static int verify_store_audit(struct svc_store *store)
{
	struct sb_err err = SB_ERR_INIT;
	struct svc_store_audit_head head;

	if (svc_store_audit_verify(store, &head, &err) < 0)
		return svc_fail(&err);
	printf("store audit: %lld rows, chain intact\n", (long long)head.rows);
	printf("store audit head: rows=%lld hash=%s\n", (long long)head.rows, head.hash);
	if (head.seal_checked)
		printf("store audit seal: valid (audit key), rows keyed from row %lld: "
		       "rows cut from the end or rewritten without the key would show\n",
		       (long long)head.keyed_from);
	else if (head.sealed)
		printf("store audit seal: NOT CHECKED (the trail is sealed but no [pdnd] "
		       "audit_key_file is configured; %lld keyed rows not checked): rows cut from "
		       "the end together with the head, or rewritten, would NOT show\n",
		       (long long)head.unchecked);
	else
		printf("store audit seal: NOT CHECKED (no [pdnd] audit_key_file configured): rows "
		       "cut from the end together with the head, or a chain and head recomputed by "
		       "someone holding the file, would NOT show; configure the key and run "
		       "'send-bridge audit seal' (docs/pdnd.md)\n");
	return SVC_EXIT_OK;
}

static int cmd_audit_verify(const struct svc_cli *cli, const struct opts *o)
{
	struct sb_cfg *cfg = NULL;
	struct svc_store *store = NULL;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head, expect = { 0 };
	unsigned char key[SB_AUDIT_KEY_SIZE];
	bool have_key = false, have_expect;
	int rc, store_rc;

	rc = parse_expect(o, &expect, &have_expect);
	if (rc == 0)
		rc = open_audit(cli, &cfg, &store, key, &have_key);
	if (rc)
		goto cleanup;
	if (pdnd_access_verify(svc_store_db(store), have_key ? key : NULL,
			       have_expect ? &expect : NULL, &head, &err) < 0) {
		rc = svc_fail(&err);
	} else {
		printf("access trail: %lld rows, chain intact\n", (long long)head.rows);
		printf("access trail head: rows=%lld hash=%s\n", (long long)head.rows, head.hash);
		if (head.seal_checked)
			printf("access trail seal: valid (audit key): rows cut from the end "
			       "or a chain recomputed without the key would show\n");
		else
			printf("access trail seal: NOT CHECKED (%s): "
			       "rows cut from the end together with the head, "
			       "or a chain and head recomputed by someone holding the file, "
			       "would NOT show; configure [pdnd] audit_key_file (docs/pdnd.md) "
			       "or compare the head with one recorded elsewhere "
			       "(--expect-rows, --expect-head)\n",
			       head.sealed ?
			       "the head is sealed but no [pdnd] audit_key_file is configured" :
			       "no [pdnd] audit_key_file configured");
		if (have_expect)
			printf("access trail: row %lld matches the recorded head\n",
			       (long long)expect.rows);
	}
	/* Both trails are reported: one broken says nothing of the other. */
	store_rc = verify_store_audit(store);
	if (rc == SVC_EXIT_OK)
		rc = store_rc;
cleanup:
	sb_wipe(key, sizeof(key));
	svc_store_close(store);
	sb_cfg_free(cfg);
	return rc;
}

static int cmd_audit_seal(const struct svc_cli *cli)
{
	struct sb_cfg *cfg = NULL;
	struct svc_store *store = NULL;
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_access_head head;
	struct svc_store_audit_head shead;
	unsigned char key[SB_AUDIT_KEY_SIZE];
	bool have_key = false;
	int rc;

	rc = open_audit(cli, &cfg, &store, key, &have_key);
	if (rc)
		goto cleanup;
	if (!have_key) {
		rc = svc_usage("audit seal needs [pdnd] audit_key_file in the configuration");
		goto cleanup;
	}
	if (pdnd_access_seal(svc_store_db(store), key, &head, &err) < 0 ||
	    svc_store_audit_seal(store, &shead, &err) < 0) {
		rc = svc_fail(&err);
		goto cleanup;
	}
	printf("access trail sealed: rows=%lld hash=%s\n", (long long)head.rows, head.hash);
	printf("store audit sealed: rows=%lld hash=%s (keyed from row %lld; the rows before it "
	       "were chained without a key)\n", (long long)shead.rows, shead.hash,
	       (long long)shead.keyed_from);
	rc = SVC_EXIT_OK;
cleanup:
	sb_wipe(key, sizeof(key));
	svc_store_close(store);
	sb_cfg_free(cfg);
	return rc;
}

static int cmd_audit_report(const struct svc_cli *cli, const struct opts *o)
{
	struct sb_cfg *cfg = NULL;
	struct svc_store *store = NULL;
	struct sb_err err = SB_ERR_INIT;
	int64_t from, to;
	int rc;

	if (!o->from || !o->to || sb_time_parse_date(o->from, &from) < 0 ||
	    sb_time_parse_date(o->to, &to) < 0)
		return svc_usage("audit report needs --from and --to as YYYY-MM-DD");
	if (to < from)
		return svc_usage("--to is before --from");
	rc = svc_load_config(cli, &cfg);
	if (rc)
		return rc;
	printf("pdnd e-service queries from %s to %s (inclusive)\n\n", o->from, o->to);
	if (open_store(cfg, &store, &err) < 0 ||
	    pdnd_access_report(svc_store_db(store), from, to + 86400, stdout, &err) < 0)
		rc = svc_fail(&err);
	svc_store_close(store);
	sb_cfg_free(cfg);
	return rc;
}

int svc_cmd_audit(const struct svc_cli *cli_in, int argc, char **argv)
{
	struct svc_cli cli = *cli_in;
	struct opts o;
	bool done;
	int rc = parse(&cli, argc, argv, &o, svc_help_audit, &done);

	if (rc || done)
		return rc;
	if (o.npos == 1 && !strcmp(o.pos[0], "verify"))
		return cmd_audit_verify(&cli, &o);
	if (o.npos == 1 && !strcmp(o.pos[0], "seal"))
		return cmd_audit_seal(&cli);
	if (o.npos == 1 && !strcmp(o.pos[0], "report"))
		return cmd_audit_report(&cli, &o);
	return svc_usage("audit needs 'verify', 'seal' or 'report --from D --to D'");
}
