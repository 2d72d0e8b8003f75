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
#include "svc_meta.h"
#include "agid_doc.h"
#include "sb_buf.h"
#include "svc_pipeline.h"

void svc_help_act(FILE *out)
{
	fprintf(out,
		"usage: send-bridge act check DIR [--json] [-c FILE]\n"
		"       send-bridge act metadata DIR --protocol NUMBER --date YYYY-MM-DD\n"
		"                                [--time hh:mm:ss] [--out DIR] -c FILE\n"
		"\n"
		"Validates the act folder DIR (act.json and the files it names) and prints\n"
		"every problem with its JSON path, e.g.\n"
		"  recipients[0].taxId: check character wrong (expected K)\n"
		"With a configuration (-c or $SEND_BRIDGE_CONFIG) it also checks that the\n"
		"office and the operator are configured.\n"
		"\n"
		"  --json   print {\"act\", \"valid\", \"problems\": [{\"path\", \"message\"}]}\n"
		"\n"
		"metadata prints (or writes into --out, one FILE.metadata.xml per document)\n"
		"the Allegato 5 record of each document, for the outgoing registration\n"
		"NUMBER of date YYYY-MM-DD; it needs [protocol] ipa_code, aoo_code,\n"
		"aoo_name, pec and the office's classification keys.\n"
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

/* Check every document (the records carry their hashes and formats), then one record each. */
static int metadata(const struct svc_cli *cli, const char *dir, const struct svc_meta_reg *reg,
		    const char *out_dir)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct agid_doc_report **reports = NULL;
	struct sb_buf xml = SB_BUF_INIT(SB_MAX_DEFAULT);
	struct agid_policy pol;
	struct svc_act *act = NULL;
	struct sb_cfg *cfg = NULL;
	int rc;

	if (!cli->config_given)
		return svc_usage("act metadata needs a configuration (-c FILE)");
	rc = svc_load_config(cli, &cfg);
	if (rc)
		return rc;
	if (svc_act_load(&act, dir, false, &probs, &err) < 0) {
		svc_print_problems(stderr, &probs);
		rc = svc_fail(&err);
		goto cleanup;
	}
	if (agid_policy_from_cfg(&pol, cfg, act->office, &err) < 0) {
		rc = svc_fail(&err);
		goto cleanup;
	}
	SB_ALLOC_ARRAY(reports, act->ndocuments);
	for (size_t i = 0; i < act->ndocuments; i++) {
		if (agid_doc_check_file(&reports[i], act->documents[i].file.path, &pol,
					AGID_PDFA_NONE, &err) < 0) {
			rc = svc_fail(&err);
			goto cleanup;
		}
	}
	for (size_t i = 0; i < act->ndocuments; i++) {
		sb_buf_reset(&xml);
		if (svc_meta_document_xml(cfg, act, i,
					  (const struct agid_doc_report *const *)reports,
					  reg, &xml, &probs, &err) < 0) {
			svc_print_problems(stderr, &probs);
			rc = svc_fail(&err);
			goto cleanup;
		}
		if (out_dir) {
			char *path = sb_xasprintf("%s/%s.metadata.xml", out_dir,
						  act->documents[i].file.name);
			FILE *f = fopen(path, "w");

			if (!f || fwrite(xml.buf, 1, xml.len, f) != xml.len || fclose(f) != 0) {
				fprintf(stderr, "send-bridge: cannot write '%s'\n", path);
				free(path);
				rc = SVC_EXIT_LOCAL;
				goto cleanup;
			}
			printf("%s\n", path);
			free(path);
		} else {
			fwrite(xml.buf, 1, xml.len, stdout);
		}
	}
	rc = SVC_EXIT_OK;
cleanup:
	for (size_t i = 0; act && reports && i < act->ndocuments; i++)
		agid_doc_report_free(reports[i]);
	free(reports);
	sb_buf_release(&xml);
	svc_act_free(act);
	sb_cfg_free(cfg);
	sb_problems_release(&probs);
	return rc;
}

int svc_cmd_act(const struct svc_cli *cli_in, int argc, char **argv)
{
	struct svc_cli cli = *cli_in;
	const char *verb = NULL, *dir = NULL, *out_dir = NULL;
	struct svc_meta_reg reg = { NULL, NULL, NULL, NULL };
	bool json = false;

	for (int i = 1; i < argc; i++) {
		int r = svc_opt_common(&cli, argc, argv, &i, svc_help_act);

		if (r == SVC_OPT_TAKEN)
			continue;
		if (r != SVC_OPT_OTHER)
			return r;
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--protocol") && i + 1 < argc)
			reg.number = argv[++i];
		else if (!strcmp(argv[i], "--date") && i + 1 < argc)
			reg.date = argv[++i];
		else if (!strcmp(argv[i], "--time") && i + 1 < argc)
			reg.time = argv[++i];
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out_dir = argv[++i];
		else if (argv[i][0] == '-')
			return svc_usage("unknown option '%s'", argv[i]);
		else if (!verb)
			verb = argv[i];
		else if (!dir)
			dir = argv[i];
		else
			return svc_usage("unexpected argument '%s'", argv[i]);
	}
	if (!verb || (strcmp(verb, "check") && strcmp(verb, "metadata")))
		return svc_usage("act needs: check DIR, or metadata DIR");
	if (!dir)
		return svc_usage("act %s needs a folder", verb);
	if (!strcmp(verb, "metadata")) {
		if (!reg.number || !reg.date)
			return svc_usage("act metadata needs --protocol NUMBER "
					 "and --date YYYY-MM-DD");
		return metadata(&cli, dir, &reg, out_dir);
	}
	return check(&cli, dir, json);
}
