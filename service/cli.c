/*
 * The send-bridge command line: global options, the subcommand table, help
 * and exit codes. Subcommands never print personal data unless the user
 * passes --show-personal-data.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_problems.h"
#include "sb_http.h"
#include "sb_version.h"
#include "cli_int.h"
#include "svc_cli.h"

#define DEFAULT_CONFIG "/etc/send-bridge/send-bridge.ini"

static int cmd_version(const struct svc_cli *cli, int argc, char **argv);
static void help_version(FILE *out);

static const struct svc_cmd commands[] = {
	{ "version", "print the version", cmd_version, help_version },
	{ "config", "check the configuration, list its keys", svc_cmd_config, svc_help_config },
	{ "act", "validate an act folder", svc_cmd_act, svc_help_act },
	{ "protocol", "protocol register: show, segnatura, annul, daily-register",
	  svc_cmd_protocol, svc_help_protocol },
	{ "pdnd", "PDND key id and voucher check", svc_cmd_pdnd, svc_help_pdnd },
	{ "resolve", "resolve a recipient through INAD and ANPR",
	  svc_cmd_resolve, svc_help_resolve },
	{ "audit", "verify and seal the audit trails, report queries",
	  svc_cmd_audit, svc_help_audit },
	{ "validate", "check documents: PDF/A, signatures, SEND limits",
	  svc_cmd_validate, svc_help_validate },
	{ "submit", "notify one act folder through SEND, print the IUN",
	  svc_cmd_send, svc_help_send },
	{ "notification", "status and timeline of a SEND notification",
	  svc_cmd_send, svc_help_send },
	{ "legal-facts", "download a notification's legal facts", svc_cmd_send, svc_help_send },
	{ "price", "SEND's cost for a pagoPA notice code", svc_cmd_send, svc_help_send },
	{ "cancel", "cancel a SEND notification", svc_cmd_send, svc_help_send },
	{ "run", "run the service (the daemon)", svc_cmd_run, svc_help_run },
	{ "status", "list the acts and their state", svc_cmd_status, svc_help_status },
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: send-bridge [-c FILE] [--show-personal-data] COMMAND [ARGS]\n"
		"\n"
		"Notifies a Comune's acts through SEND, with protocol registration.\n"
		"\n"
		"options:\n"
		"  -c, --config FILE        configuration file (default: $SEND_BRIDGE_CONFIG or\n"
		"                           " DEFAULT_CONFIG ")\n"
		"  --show-personal-data     print tax codes, names and addresses in clear\n"
		"  -h, --help               this help; COMMAND --help for a command's\n"
		"  -V, --version            print the version\n"
		"\n"
		"commands:\n");
	for (size_t i = 0; i < SB_ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
		"\n"
		"exit codes: 0 ok, 1 invalid input, 2 usage or configuration error,\n"
		"            3 platform error, 4 local error (store, disk)\n");
}

static void help_version(FILE *out)
{
	fprintf(out, "usage: send-bridge version\n\nPrints the version of send-bridge.\n");
}

static int cmd_version(const struct svc_cli *cli, int argc, char **argv)
{
	(void)cli;
	if (argc > 1 && svc_is_help(argv[1])) {
		help_version(stdout);
		return SVC_EXIT_OK;
	}
	if (argc > 1)
		return svc_usage("version takes no arguments");
	printf("send-bridge %s\n", SB_VERSION);
	return SVC_EXIT_OK;
}

bool svc_is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

int svc_exit_for(int code)
{
	switch (code) {
	case SB_OK: return SVC_EXIT_OK;
	case SB_EINVAL:
	case SB_ETOOBIG:
	case SB_ENOTFOUND: return SVC_EXIT_INVALID;
	case SB_ECONFIG: return SVC_EXIT_USAGE;
	case SB_ETEMP:
	case SB_EREJECT: return SVC_EXIT_PLATFORM;
	default: return SVC_EXIT_LOCAL;
	}
}

int svc_fail(const struct sb_err *err)
{
	fprintf(stderr, "send-bridge: %s\n", err->msg[0] ? err->msg : sb_code_name(err->code));
	return svc_exit_for(err->code);
}

int svc_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("send-bridge: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (try --help)\n", stderr);
	return SVC_EXIT_USAGE;
}

int svc_opt_config(struct svc_cli *cli, int argc, char **argv, int *i)
{
	const char *a = argv[*i];

	if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
		if (*i + 1 >= argc)
			return -SVC_EXIT_USAGE;
		cli->config_path = argv[++*i];
		cli->config_given = true;
		return 1;
	}
	if (!strncmp(a, "--config=", 9)) {
		cli->config_path = a + 9;
		cli->config_given = true;
		return 1;
	}
	return 0;
}

int svc_opt_common(struct svc_cli *cli, int argc, char **argv, int *i, void (*help)(FILE *out))
{
	int r = svc_opt_config(cli, argc, argv, i);

	if (r < 0)
		return svc_usage("-c needs a file name");
	if (r)
		return SVC_OPT_TAKEN;
	if (svc_is_help(argv[*i])) {
		help(stdout);
		return SVC_EXIT_OK;
	}
	return SVC_OPT_OTHER;
}

void svc_print_problems(FILE *out, const struct sb_problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		fprintf(out, "%s: %s\n", p->items[i].where, p->items[i].msg);
	if (p->dropped)
		fprintf(out, "... and %zu more\n", p->dropped);
}

int svc_load_config(const struct svc_cli *cli, struct sb_cfg **out)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	int rc;

	rc = sb_cfg_load(out, cli->config_path, &probs, &err);
	if (rc < 0) {
		svc_print_problems(stderr, &probs);
		fprintf(stderr, "send-bridge: %s\n", err.msg);
		rc = SVC_EXIT_USAGE;
	}
	sb_problems_release(&probs);
	return rc;
}

void svc_json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

int svc_cli_main(int argc, char **argv)
{
	struct svc_cli cli = { NULL, false, false };
	const char *env = getenv("SEND_BRIDGE_CONFIG");
	int i, rc;

	if (env && *env) {
		cli.config_path = env;
		cli.config_given = true;
	} else {
		cli.config_path = DEFAULT_CONFIG;
	}
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
			if (i + 1 >= argc)
				return svc_usage("%s needs a file name", argv[i]);
			cli.config_path = argv[++i];
			cli.config_given = true;
		} else if (!strncmp(argv[i], "--config=", 9)) {
			cli.config_path = argv[i] + 9;
			cli.config_given = true;
		} else if (!strcmp(argv[i], "--show-personal-data")) {
			cli.show_personal = true;
		} else if (svc_is_help(argv[i])) {
			usage(stdout);
			return SVC_EXIT_OK;
		} else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
			printf("send-bridge %s\n", SB_VERSION);
			return SVC_EXIT_OK;
		} else {
			return svc_usage("unknown option '%s'", argv[i]);
		}
	}
	if (i >= argc) {
		usage(stderr);
		return SVC_EXIT_USAGE;
	}
	for (size_t k = 0; k < SB_ARRAY_SIZE(commands); k++) {
		if (strcmp(argv[i], commands[k].name))
			continue;
		if (sb_http_global_init() < 0) {
			fprintf(stderr, "send-bridge: libcurl initialisation failed\n");
			return SVC_EXIT_LOCAL;
		}
		rc = commands[k].run(&cli, argc - i, argv + i);
		sb_http_global_cleanup();
		return rc;
	}
	return svc_usage("unknown command '%s'", argv[i]);
}
