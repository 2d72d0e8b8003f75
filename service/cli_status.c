/*
 * send-bridge status [QUERY] [--office O] [--state S] [--limit N] [--json]
 *
 * One line per act from the store (svc_status.h). Tax codes and names are
 * masked unless the global --show-personal-data is given.
 */
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "cli_int.h"
#include "svc_pipeline.h"
#include "svc_state.h"
#include "svc_status.h"
#include "svc_store.h"

void svc_help_status(FILE *out)
{
	fprintf(out,
		"usage: send-bridge [--show-personal-data] status [QUERY] [--office O]\n"
		"                   [--state S] [--limit N] [--json] [-c FILE]\n"
		"\n"
		"Lists the acts: act id, office, protocol number, IUN, state, last event,\n"
		"receipts registered, cost, first recipient (masked) and a note (the last\n"
		"error, or where a rejected act's reason.json is).\n"
		"\n"
		"  QUERY       an act id, a protocol number, an IUN or a recipient's tax code\n"
		"  --office O  only acts of office O\n"
		"  --state S   only acts in state S (received, ..., closed, rejected,\n"
		"              refused, failed)\n"
		"  --limit N   at most N acts, the most recently updated first\n"
		"  --json      a JSON array instead of a table\n"
		"\n"
		"exit: 0 at least one act listed, 1 none matched, 2 usage or configuration\n");
}

/* A JSON array, one object per act. */
static void print_json(const struct svc_status_row *rows, size_t n, bool personal)
{
	putchar('[');
	for (size_t i = 0; i < n; i++) {
		const struct svc_status_row *r = &rows[i];
		const char *fields[][2] = {
			{ "act", r->act_id }, { "office", r->office },
			{ "protocolNumber", r->protocol_number }, { "iun", r->iun },
			{ "state", r->state }, { "lastEvent", r->last_event }, { "note", r->note },
			{ "folder", r->folder },
		};
		char tax[64], name[128];

		fputs(i ? ",{" : "{", stdout);
		for (size_t k = 0; k < SB_ARRAY_SIZE(fields); k++) {
			printf("\"%s\":", fields[k][0]);
			if (fields[k][1])
				svc_json_str(stdout, fields[k][1]);
			else
				fputs("null", stdout);
			putchar(',');
		}
		fputs("\"recipientTaxId\":", stdout);
		if (r->tax_id)
			svc_json_str(stdout,
				     svc_status_recipient(r, personal, false, tax, sizeof(tax)));
		else
			fputs("null", stdout);
		fputs(",\"recipientName\":", stdout);
		if (r->denomination)
			svc_json_str(stdout,
				     svc_status_recipient(r, personal, true, name, sizeof(name)));
		else
			fputs("null", stdout);
		printf(",\"recipients\":%lld,\"receipts\":%lld,\"costCents\":",
		       (long long)r->nrecipients, (long long)r->receipts);
		if (r->cost_cents < 0)
			fputs("null", stdout);
		else
			printf("%lld", (long long)r->cost_cents);
		printf(",\"updatedAt\":%lld}", (long long)r->updated_at);
	}
	fputs("]\n", stdout);
}

int svc_cmd_status(const struct svc_cli *cli_in, int argc, char **argv)
{
	struct svc_cli cli = *cli_in;
	struct svc_status_filter f = { NULL, NULL, NULL, 0 };
	struct svc_status_row *rows = NULL;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct sb_cfg *cfg = NULL;
	enum svc_state st;
	bool json = false;
	size_t n = 0;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = svc_opt_common(&cli, argc, argv, &i, svc_help_status);

		if (r == SVC_OPT_TAKEN)
			continue;
		if (r != SVC_OPT_OTHER)
			return r;
		if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--office") || !strcmp(a, "--state") ||
			   !strcmp(a, "--limit")) {
			if (!v)
				return svc_usage("%s needs a value", a);
			i++;
			if (a[2] == 'o') {
				f.office = v;
			} else if (a[2] == 's') {
				if (svc_state_parse(v, &st) < 0)
					return svc_usage("--state: unknown state '%s'", v);
				f.state = v;
			} else {
				uint64_t lim;

				if (sb_parse_u64z(v, 1000000, &lim) < 0 || lim == 0)
					return svc_usage("--limit: "
							 "expected a number from 1 to 1000000");
				f.limit = (size_t)lim;
			}
		} else if (a[0] == '-') {
			return svc_usage("unknown option '%s'", a);
		} else if (!f.query) {
			f.query = a;
		} else {
			return svc_usage("unexpected argument '%s'", a);
		}
	}
	rc = svc_load_config(&cli, &cfg);
	if (rc)
		return rc;
	rc = svc_store_open(&s, sb_cfg_str(cfg, "store", "path"),
			    (int)sb_cfg_int(cfg, "store", "busy_timeout_ms"), &err);
	if (rc == 0)
		rc = svc_pipeline_store_migrate(svc_store_db(s), &err);
	if (rc == 0)
		rc = svc_status_list(s, &f, &rows, &n, &err);
	if (rc < 0) {
		rc = svc_fail(&err);
	} else {
		if (json)
			print_json(rows, n, cli.show_personal);
		else
			svc_status_print(stdout, rows, n, cli.show_personal);
		rc = n ? SVC_EXIT_OK : SVC_EXIT_INVALID;
	}
	svc_status_rows_free(rows, n);
	svc_store_close(s);
	sb_cfg_free(cfg);
	return rc;
}
