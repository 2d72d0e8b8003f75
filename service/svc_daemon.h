/*
 * The daemon behind `send-bridge run`: watches outbox/new/ (inotify plus a
 * periodic rescan), claims acts into work/, and drives them through the
 * pipeline with a bounded pool of worker threads, each with its own store
 * connection and step context (HTTP handles). At start-up every folder left
 * in work/ by a crash is resumed from its state in the store.
 *
 * Signals: SIGTERM and SIGINT stop it (no new step starts; steps in flight
 * finish, bounded by their HTTP timeouts, and their outcome is committed);
 * SIGHUP reopens the log file. Under systemd (NOTIFY_SOCKET set) it sends
 * READY=1 once recovery is queued, STATUS= lines, WATCHDOG=1 at half the
 * unit's WatchdogSec, and STOPPING=1.
 */
#ifndef SVC_DAEMON_H
#define SVC_DAEMON_H

#include <stdint.h>

#include "sb_err.h"
#include "svc_pipeline.h"

struct sb_cfg;

struct svc_daemon_opts {
	const struct sb_cfg *cfg;        /* for the act's office check; may be NULL */
	const char *outbox_dir;          /* absolute */
	const char *store_path;
	int busy_timeout_ms;
	int workers;                     /* >= 1 */
	int64_t rescan_ms;               /* full listing of new/ at least this often */
	struct svc_pipeline_opts pipeline;
	const char *web_listen;          /* NULL: no web server */
};

/* Options from the configuration ([service], [outbox], [store], [web]); borrowed from cfg. */
void svc_daemon_opts_from_cfg(struct svc_daemon_opts *o, const struct sb_cfg *cfg);

/*
 * Run until SIGTERM/SIGINT (or svc_daemon_stop). Installs its own signal
 * handlers. steps is borrowed. Returns 0 after a clean stop, or the error
 * that prevented start-up (outbox, store, web address).
 */
int svc_daemon_run(const struct svc_daemon_opts *o, const struct svc_steps *steps,
		   struct sb_err *err);

/* Ask a running daemon to stop, as SIGTERM does (async-signal-safe). */
void svc_daemon_stop(void);

#endif
