/*
 * send-bridge protocol show|segnatura|annul|daily-register
 *
 * Staff commands over the protocol register (protocol/proto.h). Names, tax
 * codes and addresses of correspondents are masked unless the user passes
 * --show-personal-data (STYLE.md 2.6).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_log.h"
#include "sb_time.h"
#include "cli_int.h"
#include "proto.h"
#include "svc_store.h"

void svc_help_protocol(FILE *out)
{
	fprintf(out,
		"usage: send-bridge protocol show NUMBER\n"
		"       send-bridge protocol segnatura NUMBER\n"
		"       send-bridge protocol annul NUMBER --reason R --authorised-by ACT "
		"[--author NAME]\n"
		"       send-bridge protocol daily-register --date YYYY-MM-DD --out DIR\n"
		"\n"
		"NUMBER is REG/YYYY/NNNNNNN, YYYY/NNNNNNN (configured register) or NNNNNNN\n"
		"(configured register, this year).\n"
		"\n"
		"  show            the registration, its corrections, annulment, receipts and the\n"
		"                  notification's status when known\n"
		"  segnatura       the sealed segnatura XML, after verifying its seal and schema\n"
		"  annul           annul a registration (art. 54 DPR 445/2000): it stays, marked;\n"
		"                  ACT is the authorising provvedimento; NAME defaults to $USER\n"
		"  daily-register  write the day's register as XML, PDF/A and SHA-256 into DIR\n"
		"\n"
		"exit: 0 ok, 1 not found or invalid, 2 usage or configuration, 3 protocol system,\n"
		"      4 local error\n");
}

struct ctx {
	struct sb_cfg *cfg;
	struct svc_store *store;
	struct proto *p;
};

static void ctx_release(struct ctx *c)
{
	proto_free(c->p);
	svc_store_close(c->store);
	sb_cfg_free(c->cfg);
}

static int ctx_open(const struct svc_cli *cli, struct ctx *c)
{
	struct sb_err err = SB_ERR_INIT;
	struct proto_opts o;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = svc_load_config(cli, &c->cfg);
	if (rc)
		return rc;
	rc = svc_store_open(&c->store, sb_cfg_str(c->cfg, "store", "path"),
			    (int)sb_cfg_int(c->cfg, "store", "busy_timeout_ms"), &err);
	if (rc == 0)
		rc = proto_store_migrate(svc_store_db(c->store), &err);
	if (rc == 0) {
		proto_opts_from_cfg(&o, c->cfg);
		rc = proto_open(&c->p, svc_store_db(c->store), &o, &err);
	}
	return rc < 0 ? svc_fail(&err) : 0;
}

static const char *mask(const struct svc_cli *cli, enum sb_pii_kind kind, const char *v,
			char *buf, size_t size)
{
	if (!v)
		return "-";
	return cli->show_personal ? v : sb_pii_mask(kind, v, buf, size);
}

static void print_reg(const struct svc_cli *cli, const struct proto_reg *r, const char *indent)
{
	char m1[128], m2[128], when[32];

	printf("%s%s  %s %s  %s%s\n", indent, r->text, r->date, r->time,
	       r->dir == PROTO_OUT ? "uscita" : "entrata",
	       r->annulled ? "  *** ANNULLATA ***" : "");
	printf("%s  oggetto: %s\n", indent, proto_reg_subject(r));
	if (strcmp(proto_reg_subject(r), r->subject))
		printf("%s  oggetto registrato: %s\n", indent, r->subject);
	printf("%s  classificazione: %s  assegnazione: %s  operatore: %s\n", indent,
	       r->classification, r->assignment ? r->assignment : "-", r->author);
	if (r->iun)
		printf("%s  %s  IUN %s\n", indent, r->category ? r->category : "", r->iun);
	for (size_t i = 0; i < r->nparties; i++) {
		bool pf = r->parties[i].type == PROTO_PF;

		printf("%s  %s: %s (%s)\n", indent,
		       r->dir == PROTO_OUT ? "destinatario" : "mittente",
		       pf ? mask(cli, SB_PII_NAME, r->parties[i].name, m1, sizeof(m1)) :
		       r->parties[i].name,
		       pf ? mask(cli, SB_PII_TAXID, r->parties[i].tax_id, m2, sizeof(m2)) :
		       r->parties[i].tax_id ? r->parties[i].tax_id : "-");
	}
	for (size_t i = 0; i < r->ndocs; i++)
		printf("%s  %s: %s sha256 %s (%llu bytes)\n", indent,
		       i ? "allegato" : "documento", r->docs[i].name, r->docs[i].sha256_hex,
		       (unsigned long long)r->docs[i].size);
	for (size_t i = 0; i < r->nchanges; i++) {
		const struct proto_change *c = &r->changes[i];

		sb_time_iso8601(c->at, when, sizeof(when));
		if (!strcmp(c->field, "annulment"))
			printf("%s  annullata il %s da %s, provvedimento %s, motivo: %s\n", indent,
			       when, c->author, c->new_value ? c->new_value : "-",
			       c->reason ? c->reason : "-");
		else
			printf("%s  modifica %s il %s da %s: '%s' -> '%s' (%s)\n", indent, c->field,
			       when, c->author, c->old_value ? c->old_value : "",
			       c->new_value ? c->new_value : "", c->reason ? c->reason : "-");
	}
}

/* The notification's status from the service's tables, when the act got that far. */
static void print_status(struct ctx *c, const struct proto_reg *r)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(svc_store_db(c->store), "SELECT iun, status FROM notifications"
			       " WHERE protocol_number = ?", -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, r->text, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW)
		printf("notifica: IUN %s, stato %s\n",
		       sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "-",
		       sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "-");
	else
		printf("notifica: stato non noto\n");
	sqlite3_finalize(st);
}

static int parse_number(struct ctx *c, const char *s, struct proto_id *id)
{
	struct sb_err err = SB_ERR_INIT;

	if (proto_id_parse(s, proto_register_code(c->p), proto_rome_year(sb_now()), id, &err) < 0)
		return svc_usage("%s", err.msg);
	return 0;
}

static int cmd_show(const struct svc_cli *cli, struct ctx *c, const char *number)
{
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *r = NULL, **list = NULL;
	struct proto_id id;
	size_t n = 0;
	int rc;

	rc = parse_number(c, number, &id);
	if (rc)
		return rc;
	if (proto_lookup(c->p, &id, &r, &err) < 0)
		return svc_fail(&err);
	print_reg(cli, r, "");
	if (r->has_link) {
		char t[PROTO_ID_TEXT_SIZE];

		printf("riferimento: %s\n", proto_id_format(&r->link, t, sizeof(t)));
	}
	if (r->dir == PROTO_OUT) {
		rc = proto_receipts_list(c->p, &id, &list, &n, &err);
		if (rc < 0) {
			proto_reg_free(r);
			return svc_fail(&err);
		}
		printf("ricevute: %zu\n", n);
		for (size_t i = 0; i < n; i++)
			print_reg(cli, list[i], "  ");
		proto_reg_list_free(list, n);
		print_status(c, r);
	}
	proto_reg_free(r);
	return SVC_EXIT_OK;
}

static int cmd_segnatura(struct ctx *c, const char *number)
{
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_XML_SEGNATURA);
	struct sb_err err = SB_ERR_INIT;
	struct proto_id id;
	int rc;

	rc = parse_number(c, number, &id);
	if (rc)
		return rc;
	if (proto_segnatura_get(c->p, &id, &xml, &err) < 0) {
		sb_buf_release(&xml);
		return svc_fail(&err);
	}
	fwrite(xml.buf, 1, xml.len, stdout);
	if (xml.len && xml.buf[xml.len - 1] != '\n')
		putchar('\n');
	sb_buf_release(&xml);
	return SVC_EXIT_OK;
}

/* --name VALUE or --name=VALUE at argv[*i]; 1 if consumed, -1 if VALUE is missing. */
static int opt(int argc, char **argv, int *i, const char *name, const char **out)
{
	size_t n = strlen(name);

	if (!strcmp(argv[*i], name)) {
		if (*i + 1 >= argc)
			return -1;
		*out = argv[++*i];
		return 1;
	}
	if (!strncmp(argv[*i], name, n) && argv[*i][n] == '=') {
		*out = argv[*i] + n + 1;
		return 1;
	}
	return 0;
}

int svc_cmd_protocol(const struct svc_cli *cli_in, int argc, char **argv)
{
	static const char *const names[] = { "--reason", "--authorised-by", "--author", "--date",
					     "--out" };
	const char *vals[SB_ARRAY_SIZE(names)] = { NULL };
	struct svc_cli cli = *cli_in;
	const char *sub = NULL, *number = NULL;
	struct sb_err err = SB_ERR_INIT;
	struct sb_buf paths = SB_BUF_INIT(8192);
	struct ctx c;
	int rc;

	for (int i = 1; i < argc; i++) {
		bool done = false;

		if (svc_is_help(argv[i])) {
			svc_help_protocol(stdout);
			return SVC_EXIT_OK;
		}
		rc = svc_opt_config(&cli, argc, argv, &i);
		if (rc < 0)
			return svc_usage("-c needs a file name");
		if (rc > 0)
			continue;
		for (size_t k = 0; k < SB_ARRAY_SIZE(names) && !done; k++) {
			rc = opt(argc, argv, &i, names[k], &vals[k]);
			if (rc < 0)
				return svc_usage("%s needs a value", names[k]);
			done = rc > 0;
		}
		if (done)
			continue;
		if (!strcmp(argv[i], "--show-personal-data"))
			cli.show_personal = true;
		else if (argv[i][0] == '-')
			return svc_usage("protocol: unknown option '%s'", argv[i]);
		else if (!sub)
			sub = argv[i];
		else if (!number)
			number = argv[i];
		else
			return svc_usage("protocol: too many arguments");
	}
	if (!sub)
		return svc_usage("protocol: which command? show, segnatura, annul, daily-register");
	if (strcmp(sub, "show") && strcmp(sub, "segnatura") && strcmp(sub, "annul") &&
	    strcmp(sub, "daily-register"))
		return svc_usage("protocol: unknown command '%s'", sub);
	if (strcmp(sub, "daily-register") && !number)
		return svc_usage("protocol %s: NUMBER is required", sub);
	if (!strcmp(sub, "daily-register") && (number || !vals[3] || !vals[4]))
		return svc_usage("protocol daily-register: --date D and --out DIR are required");
	if (!strcmp(sub, "annul")) {
		if (!vals[0] || !vals[1])
			return svc_usage("protocol annul: "
					 "--reason and --authorised-by are required");
		if (!vals[2])
			vals[2] = getenv("USER");
		if (!vals[2] || !*vals[2])
			return svc_usage("protocol annul: --author is required ($USER is not set)");
	}
	rc = ctx_open(&cli, &c);
	if (rc) {
		ctx_release(&c);
		return rc;
	}
	if (!strcmp(sub, "show")) {
		rc = cmd_show(&cli, &c, number);
	} else if (!strcmp(sub, "segnatura")) {
		rc = cmd_segnatura(&c, number);
	} else if (!strcmp(sub, "annul")) {
		struct proto_id id;

		rc = parse_number(&c, number, &id);
		if (rc == 0 && proto_annul(c.p, &id, vals[0], vals[2], vals[1], &err) < 0)
			rc = svc_fail(&err);
		else if (rc == 0)
			sb_log(SB_LOG_INFO, "protocol", "annulled %s", number);
	} else {
		if (proto_daily_register(c.p, vals[3], vals[4], &paths, &err) < 0)
			rc = svc_fail(&err);
		else
			fputs(sb_buf_cstr(&paths), stdout);
	}
	sb_buf_release(&paths);
	ctx_release(&c);
	return rc;
}
