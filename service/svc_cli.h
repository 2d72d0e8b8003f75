/*
 * The send-bridge command line (cli.c): parses global options and runs one
 * subcommand. Returns the process exit code (README "Exit codes").
 */
#ifndef SVC_CLI_H
#define SVC_CLI_H

int svc_cli_main(int argc, char **argv);

#endif
