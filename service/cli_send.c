/*
 * SEND from the command line, for staff and for testing an installation:
 *
 *   send-bridge submit ACT_DIR [--protocol NUMBER] [--wait SECONDS]
 *   send-bridge notification IUN [--json]
 *   send-bridge legal-facts IUN --out DIR
 *   send-bridge price NOTICE_CODE
 *   send-bridge cancel IUN
 *
 * submit takes one act folder through upload, creation and acceptance
 * without the daemon's store: it is the manual path, the daemon is the
 * normal one. Nothing personal is printed: IUNs, statuses, categories and
 * file names only.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_ids.h"
#include "sb_problems.h"
#include "sb_sql.h"
#include "cli_int.h"
#include "send_client.h"
#include "svc_act.h"
#include "svc_send_map.h"
#include "svc_store.h"

void svc_help_send(FILE *out)
{
	fprintf(out,
		"usage: send-bridge submit ACT_DIR [--protocol NUMBER] [--wait SECONDS]\n"
		"       send-bridge notification IUN [--json]\n"
		"       send-bridge legal-facts IUN --out DIR\n"
		"       send-bridge price NOTICE_CODE\n"
		"       send-bridge cancel IUN\n"
		"\n"
		"submit        upload the act's files, create the notification and wait for\n"
		"              SEND's acceptance (default 600 s); prints the IUN. The protocol\n"
		"              number is --protocol, else the act's own, else the act id.\n"
		"notification  status, status history and timeline of a notification\n"
		"legal-facts   download every legal fact (attestazione) of IUN into DIR\n"
		"price         what SEND charges for the notification of a pagoPA notice\n"
		"cancel        ask SEND to cancel a notification (recorded in the store's audit\n"
		"              trail, under its act, when the store exists)\n"
		"\n"
		"All take -c FILE. exit: 0 ok, 1 invalid input, 2 usage or configuration,\n"
		"3 SEND refused or failed, 4 local error\n");
}

struct send_args {
	struct svc_cli cli;
	const char *arg;         /* the positional argument */
	const char *protocol;
	const char *out_dir;
	long wait_s;
	bool json;
};

static int parse(const struct svc_cli *cli_in, int argc, char **argv, struct send_args *a)
{
	memset(a, 0, sizeof(*a));
	a->cli = *cli_in;
	a->wait_s = 600;
	for (int i = 1; i < argc; i++) {
		const char *n = i + 1 < argc ? argv[i + 1] : NULL;
		int r = svc_opt_config(&a->cli, argc, argv, &i);

		if (r < 0)
			return svc_usage("-c needs a file name");
		if (r)
			continue;
		if (svc_is_help(argv[i])) {
			svc_help_send(stdout);
			return -1;
		}
		if (!strcmp(argv[i], "--json")) {
			a->json = true;
		} else if (!strcmp(argv[i], "--protocol") && n) {
			a->protocol = n;
			i++;
		} else if (!strcmp(argv[i], "--out") && n) {
			a->out_dir = n;
			i++;
		} else if (!strcmp(argv[i], "--wait") && n) {
			uint64_t v;

			if (sb_parse_u64z(n, 86400, &v) < 0)
				return svc_usage("--wait needs seconds (0..86400)");
			a->wait_s = (long)v;
			i++;
		} else if (argv[i][0] == '-') {
			return svc_usage("unknown option '%s'", argv[i]);
		} else if (!a->arg) {
			a->arg = argv[i];
		} else {
			return svc_usage("unexpected argument '%s'", argv[i]);
		}
	}
	if (!a->arg)
		return svc_usage("%s needs an argument (see --help)", argv[0]);
	return 0;
}

/* Configuration and client; 0 or an exit code (the message already printed). */
static int open_client(const struct send_args *a, struct sb_cfg **cfg, struct send_client **c)
{
	struct sb_err err = SB_ERR_INIT;
	int rc = svc_load_config(&a->cli, cfg);

	if (rc)
		return rc;
	if (send_client_new(c, *cfg, NULL, &err) < 0) {
		sb_cfg_free(*cfg);
		*cfg = NULL;
		return svc_fail(&err);
	}
	return 0;
}

static int submit(const struct send_args *a, struct sb_cfg *cfg, struct send_client *c)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct svc_send_map m;
	struct send_request_status st;
	struct svc_act *act = NULL;
	char id[SEND_REQUEST_ID_MAX];
	bool existing = false;
	int rc;

	memset(&m, 0, sizeof(m));
	rc = svc_act_load(&act, a->arg, false, &probs, &err);
	if (rc < 0) {
		svc_print_problems(stderr, &probs);
		sb_problems_release(&probs);
		return svc_fail(&err);
	}
	rc = svc_send_map_init(&m, act, cfg, a->protocol, &err);
	if (rc == 0)
		rc = send_files_upload(c, m.uploads, m.nuploads, NULL, &err);
	if (rc == 0) {
		svc_send_map_apply_uploads(&m);
		rc = send_notification_create(c, &m.n, NULL, id, &existing, &err);
	}
	if (rc == 0) {
		fprintf(stderr, "send-bridge: %s request %s, waiting for acceptance\n",
			existing ? "existing" : "created", id);
		rc = send_request_wait(c, id, a->wait_s * 1000, NULL, &st, &err);
	}
	if (rc == 0 && st.state == SEND_ACCEPTED) {
		printf("%s\n", st.iun);
	} else if (rc == 0) {
		fprintf(stderr, "send-bridge: SEND refused the notification:\n");
		for (size_t i = 0; i < st.nrefusals; i++)
			fprintf(stderr, "  %s %s: %s\n", st.refusals[i].code,
				st.refusals[i].element, st.refusals[i].detail);
		rc = SVC_EXIT_PLATFORM;
	} else {
		rc = svc_fail(&err);
	}
	svc_send_map_release(&m);
	svc_act_free(act);
	sb_problems_release(&probs);
	return rc;
}

static int notification(const struct send_args *a, struct send_client *c)
{
	struct send_sent_notification *n = NULL;
	struct sb_err err = SB_ERR_INIT;

	if (send_notification_get(c, a->arg, &n, &err) < 0)
		return svc_fail(&err);
	if (a->json) {
		printf("{\"iun\":");
		svc_json_str(stdout, n->iun);
		printf(",\"status\":");
		svc_json_str(stdout, n->status ? n->status : "");
		printf(",\"history\":[");
		for (size_t i = 0; i < n->nhistory; i++) {
			printf("%s{\"status\":", i ? "," : "");
			svc_json_str(stdout, n->history[i].status);
			printf(",\"activeFrom\":");
			svc_json_str(stdout,
				     n->history[i].active_from ? n->history[i].active_from : "");
			printf("}");
		}
		printf("],\"timeline\":[");
		for (size_t i = 0; i < n->ntimeline; i++) {
			printf("%s{\"category\":", i ? "," : "");
			svc_json_str(stdout, n->timeline[i].category);
			printf(",\"timestamp\":");
			svc_json_str(stdout,
				     n->timeline[i].timestamp ? n->timeline[i].timestamp : "");
			printf(",\"recIndex\":%d}", n->timeline[i].rec_index);
		}
		printf("]}\n");
	} else {
		printf("iun %s\nstatus %s\n", n->iun, n->status ? n->status : "?");
		for (size_t i = 0; i < n->nhistory; i++)
			printf("  %-24s %s\n", n->history[i].status,
			       n->history[i].active_from ? n->history[i].active_from : "");
		printf("timeline (%zu):\n", n->ntimeline);
		for (size_t i = 0; i < n->ntimeline; i++)
			printf("  %-28s %s%s\n",
			       n->timeline[i].timestamp ? n->timeline[i].timestamp : "",
			       n->timeline[i].category,
			       n->timeline[i].nlegal_facts ? " [legal fact]" : "");
	}
	send_sent_notification_free(n);
	return SVC_EXIT_OK;
}

static int legal_facts(const struct send_args *a, struct send_client *c)
{
	struct send_legal_fact *lf = NULL;
	struct sb_err err = SB_ERR_INIT;
	size_t n = 0;
	int rc = SVC_EXIT_OK;

	if (!a->out_dir)
		return svc_usage("legal-facts needs --out DIR");
	if (mkdir(a->out_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "send-bridge: cannot create '%s': %s\n",
			a->out_dir, strerror(errno));
		return SVC_EXIT_LOCAL;
	}
	if (send_legal_facts_list(c, a->arg, &lf, &n, &err) < 0)
		return svc_fail(&err);
	for (size_t i = 0; i < n; i++) {
		char *path = sb_xasprintf("%s/%02zu-%s.pdf", a->out_dir, i, lf[i].category);
		uint64_t size = 0;

		if (send_legal_fact_download(c, a->arg, lf[i].key, path, 600000, NULL, &size, NULL,
					     &err) < 0) {
			rc = svc_fail(&err);
			free(path);
			break;
		}
		printf("%s %llu\n", path, (unsigned long long)size);
		free(path);
	}
	send_legal_facts_free(lf, n);
	return rc;
}

static int price(const struct send_args *a, struct send_client *c)
{
	struct send_price p;
	struct sb_err err = SB_ERR_INIT;

	if (send_price_get(c, a->arg, &p, &err) < 0)
		return svc_fail(&err);
	printf("iun %s\ntotalPrice %lld\npartialPrice %lld\nsendFee %lld\nanalogCost %lld\n"
	       "paFee %lld\nvat %lld\n", p.iun, (long long)p.total_price,
	       (long long)p.partial_price, (long long)p.send_fee, (long long)p.analog_cost,
	       (long long)p.pa_fee, (long long)p.vat);
	return SVC_EXIT_OK;
}

/*
 * The cancellation in the store's audit trail, under the act it belongs to
 * when the daemon sent it: SEND only knows the installation, the trail
 * keeps who asked. Best effort: SEND has already taken the request.
 */
static void cancel_record(const struct sb_cfg *cfg, const char *iun)
{
	const char *path = sb_cfg_str(cfg, "store", "path");
	const char *who = getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	sqlite3_stmt *st = NULL;
	char *act = NULL, *office = NULL;
	bool closed = false;
	struct stat sb;

	if (!path || stat(path, &sb) < 0)
		return;   /* no store: a notification sent by hand, nothing to record */
	if (svc_store_open(&s, path, (int)sb_cfg_int(cfg, "store", "busy_timeout_ms"), &err) < 0 ||
	    svc_store_audit_key_load(s, cfg, &err) < 0)
		goto out;
	if (sb_sql_prepare(svc_store_db(s), "SELECT a.act_id, a.office, a.state = 'closed'"
			   " FROM acts a JOIN notifications n ON n.act = a.id"
			   " WHERE n.iun = ?1", &st) == SQLITE_OK) {
		sb_sql_bind_text(st, 1, iun);
		if (sqlite3_step(st) == SQLITE_ROW) {
			act = sb_xstrdup(sb_sql_col(st, 0));
			office = sb_sql_col(st, 1) ? sb_xstrdup(sb_sql_col(st, 1)) : NULL;
			closed = sqlite3_column_int(st, 2) != 0;
		}
		sb_sql_finish(st);
	}
	if (svc_store_audit(s, who && *who ? who : "unknown", office, "notification.cancel",
			    act ? act : iun, iun, &err) == 0 && act)
		printf(closed ? "act %s: already closed (notified); it stays closed, and SEND's "
		       "NOTIFICATION_CANCELLED receipt is registered when SEND confirms it\n" :
		       "act %s: closed as cancelled when SEND confirms it\n", act);
out:
	if (err.msg[0])
		fprintf(stderr, "send-bridge: cancellation not recorded in the audit trail: %s\n",
			err.msg);
	svc_store_close(s);
	free(act);
	free(office);
}

static int cancel(const struct send_args *a, const struct sb_cfg *cfg, struct send_client *c)
{
	struct sb_err err = SB_ERR_INIT;

	if (send_notification_cancel(c, a->arg, &err) < 0)
		return svc_fail(&err);
	printf("cancellation of %s requested\n", a->arg);
	cancel_record(cfg, a->arg);
	return SVC_EXIT_OK;
}

int svc_cmd_send(const struct svc_cli *cli, int argc, char **argv)
{
	struct send_args a;
	struct sb_cfg *cfg = NULL;
	struct send_client *c = NULL;
	int rc = parse(cli, argc, argv, &a);

	if (rc < 0)
		return SVC_EXIT_OK;   /* --help */
	if (rc)
		return rc;
	if (strcmp(argv[0], "submit") && strcmp(argv[0], "price") && !sb_iun_valid(a.arg))
		return svc_usage("'%s' is not an IUN", a.arg);
	rc = open_client(&a, &cfg, &c);
	if (rc)
		return rc;
	if (!strcmp(argv[0], "submit"))
		rc = submit(&a, cfg, c);
	else if (!strcmp(argv[0], "notification"))
		rc = notification(&a, c);
	else if (!strcmp(argv[0], "legal-facts"))
		rc = legal_facts(&a, c);
	else if (!strcmp(argv[0], "price"))
		rc = price(&a, c);
	else
		rc = cancel(&a, cfg, c);
	send_client_free(c);
	sb_cfg_free(cfg);
	return rc;
}
