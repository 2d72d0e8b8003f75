/*
 * send-bridge run [-c FILE]: the daemon (svc_daemon.h), as systemd runs it
 * (contrib/send-bridge.service).
 */
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "sb_log.h"
#include "cli_int.h"
#include "svc_daemon.h"
#include "svc_pipeline.h"
#include "svc_steps.h"
#include "svc_store.h"

void svc_help_run(FILE *out)
{
	fprintf(out,
		"usage: send-bridge run [-c FILE]\n"
		"\n"
		"Runs the service: takes the acts written to the outbox's new/ folder,\n"
		"drives each through check, resolution, protocol registration and SEND,\n"
		"and moves it to done/ or rejected/ (with reason.json).\n"
		"\n"
		"SIGTERM stops it cleanly, SIGHUP reopens the log file. Under systemd it\n"
		"reports readiness and pings the watchdog (Type=notify, WatchdogSec).\n");
}

/* The key behind the tags that stand for tax codes in logs: a file, or the store's own. */
static int load_pii_key(const struct sb_cfg *cfg, struct sb_err *err)
{
	const char *file = sb_cfg_str(cfg, "service", "pii_key_file");
	unsigned char key[32];
	struct svc_store *s = NULL;
	char *secret = NULL;
	int rc;

	if (file) {
		rc = sb_secret_file_read(file, &secret, err);
		if (rc == 0 && strlen(secret) < 16)
			rc = sb_err_set(err, SB_ECONFIG, 0,
					"[service] pii_key_file: shorter than 16 bytes");
		if (rc == 0)
			sb_pii_set_key(secret, strlen(secret));
		sb_secret_free(secret);
		return rc;
	}
	rc = svc_store_open(&s, sb_cfg_str(cfg, "store", "path"),
			    (int)sb_cfg_int(cfg, "store", "busy_timeout_ms"), err);
	if (rc == 0)
		rc = svc_store_pii_key(s, key, err);
	if (rc == 0)
		sb_pii_set_key(key, sizeof(key));
	sb_wipe(key, sizeof(key));
	svc_store_close(s);
	return rc;
}

int svc_cmd_run(const struct svc_cli *cli_in, int argc, char **argv)
{
	struct svc_cli cli = *cli_in;
	struct sb_err err = SB_ERR_INIT;
	struct svc_daemon_opts opts;
	struct sb_cfg *cfg = NULL;
	struct svc_clients *clients = NULL;
	enum sb_log_level lvl;
	const char *log_file;
	int rc;

	for (int i = 1; i < argc; i++) {
		int r = svc_opt_common(&cli, argc, argv, &i, svc_help_run);

		if (r == SVC_OPT_TAKEN)
			continue;
		if (r != SVC_OPT_OTHER)
			return r;
		return svc_usage("unexpected argument '%s'", argv[i]);
	}
	rc = svc_load_config(&cli, &cfg);
	if (rc)
		return rc;
	if (sb_log_level_parse(sb_cfg_str(cfg, "service", "log_level"), &lvl) == 0)
		sb_log_set_level(lvl);
	log_file = sb_cfg_str(cfg, "service", "log_file");
	if (log_file && sb_log_open(log_file) < 0) {
		sb_err_set(&err, SB_ECONFIG, 0, "[service] log_file: cannot open '%s'", log_file);
		goto fail;
	}
	if (load_pii_key(cfg, &err) < 0)
		goto fail;
	svc_daemon_opts_from_cfg(&opts, cfg);
	if (svc_clients_new(&clients, cfg, &err) < 0)
		goto fail;
	if (svc_daemon_run(&opts, svc_clients_steps(clients), &err) < 0)
		goto fail;
	svc_clients_free(clients);
	sb_cfg_free(cfg);
	return SVC_EXIT_OK;
fail:
	sb_log(SB_LOG_ERROR, "daemon", "%s", err.msg);
	rc = svc_fail(&err);
	svc_clients_free(clients);
	sb_cfg_free(cfg);
	return rc;
}
