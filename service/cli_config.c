/*
 * send-bridge config check | keys
 */
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_problems.h"
#include "cli_int.h"

void svc_help_config(FILE *out)
{
	fprintf(out,
		"usage: send-bridge config check [-c FILE]\n"
		"       send-bridge config keys [--markdown]\n"
		"\n"
		"check  reads the configuration and reports every problem at once (file,\n"
		"       line, section and key); exit 0 when valid, 2 otherwise\n"
		"keys   lists every configuration key with its type, default and meaning\n");
}

static const char *type_name(enum sb_cfg_type t)
{
	switch (t) {
	case SB_CFG_STR: return "text";
	case SB_CFG_INT: return "number";
	case SB_CFG_BOOL: return "on/off";
	case SB_CFG_ENUM: return "choice";
	case SB_CFG_LIST: return "list";
	case SB_CFG_PATH: return "path";
	case SB_CFG_DIR: return "folder";
	case SB_CFG_SECRET: return "secret file";
	case SB_CFG_FILE: return "file";
	case SB_CFG_URL: return "url";
	case SB_CFG_LEVEL: return "log level";
	case SB_CFG_TAXID11: return "tax id";
	}
	return "?";
}

/* The README's configuration reference is this output (see tests/service/test_readme.c). */
static int keys_markdown(void)
{
	const char *section = "";

	for (const struct sb_cfg_key *k = sb_cfg_keys; k->section; k++) {
		if (strcmp(section, k->section)) {
			section = k->section;
			printf("%s#### [%s]\n\n"
			       "| key | type | default | meaning |\n|---|---|---|---|\n",
			       k == sb_cfg_keys ? "" : "\n",
			       strcmp(section, "office.*") ? section : "office.NAME");
		}
		printf("| `%s` | %s | %s | %s", k->key, type_name(k->type),
		       k->def ? k->def : (k->required ? "**required**" : ""), k->doc);
		if (k->choices) {
			/* '|' would end the table cell */
			fputs(" (one of: ", stdout);
			for (const char *c = k->choices; *c; c++)
				fputs(*c == '|' ? ", " : (char[]){ *c, '\0' }, stdout);
			fputs(")", stdout);
		}
		fputs(" |\n", stdout);
	}
	return SVC_EXIT_OK;
}

static int keys(void)
{
	const char *section = "";

	for (const struct sb_cfg_key *k = sb_cfg_keys; k->section; k++) {
		if (strcmp(section, k->section)) {
			section = k->section;
			printf("%s[%s]\n", k == sb_cfg_keys ? "" : "\n",
			       strcmp(section, "office.*") ? section : "office.NAME");
		}
		printf("  %-22s %-11s %s%s%s%s%s\n", k->key, type_name(k->type),
		       k->required ? "(required) " : "", k->doc,
		       k->def ? " [default: " : "", k->def ? k->def : "", k->def ? "]" : "");
		if (k->choices)
			printf("  %-22s %-11s one of: %s\n", "", "", k->choices);
	}
	return SVC_EXIT_OK;
}

static int check(const struct svc_cli *cli)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct sb_cfg *cfg = NULL;
	int rc;

	rc = sb_cfg_load(&cfg, cli->config_path, &probs, &err);
	if (rc < 0) {
		svc_print_problems(stdout, &probs);
		printf("%s\n", err.msg);
		sb_problems_release(&probs);
		return SVC_EXIT_USAGE;
	}
	printf("configuration '%s' is valid (%zu office(s))\n", sb_cfg_path(cfg),
	       sb_cfg_office_count(cfg));
	sb_cfg_free(cfg);
	return SVC_EXIT_OK;
}

int svc_cmd_config(const struct svc_cli *cli_in, int argc, char **argv)
{
	struct svc_cli cli = *cli_in;
	const char *verb = NULL;
	bool markdown = false;

	for (int i = 1; i < argc; i++) {
		int r = svc_opt_common(&cli, argc, argv, &i, svc_help_config);

		if (r == SVC_OPT_TAKEN)
			continue;
		if (r != SVC_OPT_OTHER)
			return r;
		if (!strcmp(argv[i], "--markdown")) {
			markdown = true;
			continue;
		}
		if (verb)
			return svc_usage("unexpected argument '%s'", argv[i]);
		verb = argv[i];
	}
	if (!verb)
		return svc_usage("config needs check or keys");
	if (!strcmp(verb, "check"))
		return check(&cli);
	if (!strcmp(verb, "keys"))
		return markdown ? keys_markdown() : keys();
	return svc_usage("unknown config command '%s'", verb);
}
