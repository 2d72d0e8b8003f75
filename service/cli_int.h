/*
 * The send-bridge command line, shared by service/cli*.c only.
 * Each subcommand group lives in its own file (cli_config.c, cli_act.c, ...)
 * and is listed in the table in cli.c.
 */
#ifndef SVC_CLI_INT_H
#define SVC_CLI_INT_H

#include <stdbool.h>
#include <stdio.h>

#include "sb_err.h"

/* Exit codes (README "Exit codes"). */
enum svc_exit {
	SVC_EXIT_OK = 0,
	SVC_EXIT_INVALID = 1,     /* the input (act, file, value) is invalid */
	SVC_EXIT_USAGE = 2,       /* bad command line or configuration */
	SVC_EXIT_PLATFORM = 3,    /* a platform (SEND, PDND, protocol) failed or refused */
	SVC_EXIT_LOCAL = 4,       /* local failure: store, disk, internal error */
};

struct svc_cli {
	const char *config_path;   /* -c FILE, $SEND_BRIDGE_CONFIG, or the default */
	bool config_given;         /* -c or the environment named it */
	bool show_personal;        /* --show-personal-data */
};

struct svc_cmd {
	const char *name;
	const char *summary;
	int (*run)(const struct svc_cli *cli, int argc, char **argv);
	void (*help)(FILE *out);
};

/* argv[0] is the subcommand's name; returns an enum svc_exit. */
int svc_cmd_config(const struct svc_cli *cli, int argc, char **argv);
void svc_help_config(FILE *out);
int svc_cmd_act(const struct svc_cli *cli, int argc, char **argv);
void svc_help_act(FILE *out);
int svc_cmd_protocol(const struct svc_cli *cli, int argc, char **argv);
void svc_help_protocol(FILE *out);
/* cli_pdnd.c: pdnd kid|token, resolve, audit verify|report */
int svc_cmd_pdnd(const struct svc_cli *cli, int argc, char **argv);
void svc_help_pdnd(FILE *out);
int svc_cmd_resolve(const struct svc_cli *cli, int argc, char **argv);
void svc_help_resolve(FILE *out);
int svc_cmd_audit(const struct svc_cli *cli, int argc, char **argv);
void svc_help_audit(FILE *out);
int svc_cmd_validate(const struct svc_cli *cli, int argc, char **argv);
void svc_help_validate(FILE *out);
/* submit, notification, legal-facts, price, cancel (cli_send.c); argv[0] says which. */
int svc_cmd_send(const struct svc_cli *cli, int argc, char **argv);
void svc_help_send(FILE *out);
int svc_cmd_run(const struct svc_cli *cli, int argc, char **argv);
void svc_help_run(FILE *out);
int svc_cmd_status(const struct svc_cli *cli, int argc, char **argv);
void svc_help_status(FILE *out);

/* Map an sb_code to an exit code. */
int svc_exit_for(int code);
/* Print "send-bridge: <msg>" to stderr and return the exit code for err. */
int svc_fail(const struct sb_err *err);
/* Print a usage error and return SVC_EXIT_USAGE. */
int svc_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* true if argv[i] is -h or --help. */
bool svc_is_help(const char *arg);

/*
 * Consume "-c FILE" / "--config FILE" / "--config=FILE" at argv[*i] into cli
 * (subcommands accept it after their name too). Returns 1 if consumed, 0 if
 * argv[*i] is something else, SVC_EXIT_USAGE negated if FILE is missing.
 */
int svc_opt_config(struct svc_cli *cli, int argc, char **argv, int *i);

/*
 * The options every subcommand shares, at argv[*i]: -c FILE (see
 * svc_opt_config) and -h/--help (prints help to stdout). Returns
 * SVC_OPT_TAKEN when consumed, SVC_OPT_OTHER when argv[*i] is the caller's,
 * or an exit code the caller returns at once (0 after help, 2 on a usage error).
 */
#define SVC_OPT_TAKEN (-1)
#define SVC_OPT_OTHER (-2)
int svc_opt_common(struct svc_cli *cli, int argc, char **argv, int *i, void (*help)(FILE *out));

struct sb_cfg;
struct sb_problems;
/* Load cli->config_path; on failure print every problem and return the exit code (else 0). */
int svc_load_config(const struct svc_cli *cli, struct sb_cfg **out);
/* Print problems as "where: message" lines. */
void svc_print_problems(FILE *out, const struct sb_problems *p);

/* Write s as a JSON string literal (with quotes) to out. */
void svc_json_str(FILE *out, const char *s);

#endif
