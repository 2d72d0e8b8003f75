/*
 * send-bridge act check DIR [--json]
 *
 * Validates one act folder exactly as the daemon will at intake, so that the
 * offices' software vendors can test their output before dropping it in the
 * outbox. With a configuration (-c), also checks that the office and the
 * operator are known to it.
 */
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_log.h"
#include "sb_problems.h"
#include "cli_int.h"
#include "svc_act.h"
#include "svc_pipeline.h"

void svc_help_act(FILE *out)
{
	fprintf(out,
		"usage: send-bridge act check DIR [--json] [-c FILE]\n"
		"\n"
		"Validates the act folder DIR (act.json and the files it names) and prints\n"
		"every problem with its JSON path, e.g.\n"
		"  recipients[0].taxId: check character wrong (expected K)\n"
		"With a configuration (-c or $SEND_BRIDGE_CONFIG) it also checks that the\n"
		"office and the operator are configured.\n"
		"\n"
		"  --json   print {\"act\", \"valid\", \"problems\": [{\"path\", \"message\"}]}\n"
		"\n"
		"exit: 0 valid, 1 invalid, 2 usage or configuration error\n");
}

static void print_json(const char *id, const struct sb_problems *p)
{
	printf("{\"act\":");
	svc_json_str(stdout, id);
	printf(",\"valid\":%s,\"problems\":[", p->n ? "false" : "true");
	for (size_t i = 0; i < p->n; i++) {
		printf("%s{\"path\":", i ? "," : "");
		svc_json_str(stdout, p->items[i].where);
		printf(",\"message\":");
		svc_json_str(stdout, p->items[i].msg);
		printf("}");
	}
	printf("]%s}\n", p->dropped ? ",\"truncated\":true" : "");
}

/* The act id is the folder's name: "outbox/new/2026-PM-1/" gives "2026-PM-1". */
static void folder_name(const char *dir, char *out, size_t size)
{
	size_t end = strlen(dir), start;

	while (end > 1 && dir[end - 1] == '/')
		end--;
	start = end;
	while (start > 0 && dir[start - 1] != '/')
		start--;
	snprintf(out, size, "%.*s", (int)(end - start), dir + start);
}

static int check(const struct svc_cli *cli, const char *dir, bool json)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct svc_act *act = NULL;
	struct sb_cfg *cfg = NULL;
	char id[256];
	size_t payments = 0;
	int rc;

	folder_name(dir, id, sizeof(id));
	if (cli->config_given) {
		rc = svc_load_config(cli, &cfg);
		if (rc)
			return rc;
	}
	rc = svc_act_load(&act, dir, false, &probs, &err);
	if (rc == SB_ENOTFOUND && probs.n == 0) {
		sb_cfg_free(cfg);
		return svc_fail(&err);
	}
	if (rc == 0 && cfg)
		svc_pipeline_check_office(cfg, act, &probs);
	if (json) {
		print_json(id, &probs);
	} else if (probs.n) {
		printf("act %s: %zu problem(s)\n", id, sb_problems_count(&probs));
		svc_print_problems(stdout, &probs);
	} else {
		for (size_t i = 0; i < act->nrecipients; i++)
			payments += act->recipients[i].npayments;
		printf("act %s: valid (office %s, %zu recipient(s), %zu document(s), "
		       "%zu payment(s))\n", id, act->office, act->nrecipients, act->ndocuments,
		       payments);
	}
	rc = probs.n ? SVC_EXIT_INVALID : SVC_EXIT_OK;
	svc_act_free(act);
	sb_cfg_free(cfg);
	sb_problems_release(&probs);
	return rc;
}

int svc_cmd_act(const struct svc_cli *cli_in, int argc, char **argv)
{
	struct svc_cli cli = *cli_in;
	const char *verb = NULL, *dir = NULL;
	bool json = false;

	for (int i = 1; i < argc; i++) {
		int r = svc_opt_config(&cli, argc, argv, &i);

		if (r < 0)
			return svc_usage("-c needs a file name");
		if (r)
			continue;
		if (svc_is_help(argv[i])) {
			svc_help_act(stdout);
			return SVC_EXIT_OK;
		}
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-')
			return svc_usage("unknown option '%s'", argv[i]);
		else if (!verb)
			verb = argv[i];
		else if (!dir)
			dir = argv[i];
		else
			return svc_usage("unexpected argument '%s'", argv[i]);
	}
	if (!verb || strcmp(verb, "check"))
		return svc_usage("act needs: check DIR");
	if (!dir)
		return svc_usage("act check needs a folder");
	return check(&cli, dir, json);
}
