/*
 * Status page and /metrics over libmicrohttpd: see svc_web.h.
 *
 * Design notes: one internal polling thread serves every connection, so
 * the store connection is only ever used by that thread (and each request
 * is short: a few aggregate queries). Only GET and HEAD are answered, and
 * the listen address must be numeric: no name resolution at start-up.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_log.h"
#include "sb_time.h"
#include "svc_metrics.h"
#include "svc_pipeline.h"
#include "svc_state.h"
#include "svc_status.h"
#include "svc_store.h"
#include "svc_web.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

/* Acts listed on the page: the most recently updated; status --json has them all. */
#define WEB_MAX_ROWS 200

struct svc_web {
	struct MHD_Daemon *d;
	struct svc_store *store;
	unsigned port;
};

/* "a.b.c.d:port" or "[v6]:port" into ss. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, bool *v6,
			struct sb_err *err)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	uint64_t port;
	size_t hlen;

	if (!colon || sb_parse_u64z(colon + 1, 65535, &port) < 0)
		goto bad;
	hlen = (size_t)(colon - listen);
	if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']') {
		listen++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, listen, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*v6 = false;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*v6 = true;
		return 0;
	}
bad:
	return sb_err_set(err, SB_ECONFIG, 0,
			  "[web] listen: expected a numeric address and port, e.g. 127.0.0.1:8088");
}

static MHD_RESULT reply(struct MHD_Connection *conn, unsigned status, const char *type,
			struct sb_buf *body)
{
	struct MHD_Response *resp;
	MHD_RESULT ret;

	/* MHD 0.9.75 takes void *; with MUST_COPY it only reads the buffer. */
	resp = MHD_create_response_from_buffer(body->len, (void *)(uintptr_t)sb_buf_cstr(body),
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static int page(struct svc_web *w, struct sb_buf *b, struct sb_err *err)
{
	struct svc_status_filter f = { NULL, NULL, NULL, WEB_MAX_ROWS };
	struct svc_status_row *rows = NULL;
	struct svc_metrics m;
	size_t n = 0;
	int rc = 0;

	svc_metrics_get(&m);
	rc |= sb_buf_adds(b, "<!doctype html><html><head><meta charset=\"utf-8\">"
			  "<meta http-equiv=\"refresh\" content=\"15\">"
			  "<title>send-bridge</title><style>body{font-family:sans-serif}"
			  "td,th{padding:2px 8px;text-align:left}</style></head><body>"
			  "<h1>send-bridge</h1><h2>Acts per state</h2><table><tr>");
	for (int st = 0; st < SVC_STATE_COUNT; st++)
		rc |= sb_buf_addf(b, "<th>%s</th>", svc_state_name((enum svc_state)st));
	rc |= sb_buf_adds(b, "</tr><tr>");
	for (int st = 0; st < SVC_STATE_COUNT; st++) {
		int64_t c = 0;
		int r = svc_store_act_count(w->store, (enum svc_state)st, &c, err);

		if (r < 0)
			return r;
		rc |= sb_buf_addf(b, "<td>%lld</td>", (long long)c);
	}
	rc |= sb_buf_addf(b, "</tr></table><p>queue %lld, in flight %lld, retries %llu</p>"
			  "<h2>Latest acts</h2>\n", (long long)m.queue_depth,
			  (long long)m.in_flight, (unsigned long long)m.retries);
	if (rc < 0)
		return sb_err_set(err, SB_ETOOBIG, 0, "web: page larger than its buffer");
	rc = svc_status_list(w->store, &f, &rows, &n, err);
	if (rc == 0)
		rc = svc_status_html(b, rows, n);
	svc_status_rows_free(rows, n);
	if (rc == 0)
		rc = sb_buf_adds(b, "<p><a href=\"/metrics\">metrics</a></p></body></html>\n");
	return rc;
}

static MHD_RESULT on_request(void *cls, struct MHD_Connection *conn, const char *url,
			     const char *method, const char *version, const char *upload_data,
			     size_t *upload_size, void **con_cls)
{
	struct svc_web *w = cls;
	struct sb_buf body = SB_BUF_INIT(SB_MAX_JSON_BODY);
	struct sb_err err = SB_ERR_INIT;
	MHD_RESULT ret;
	int rc;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_size) {
		/* No endpoint takes a body: drop it. */
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		sb_buf_adds(&body, "method not allowed\n");
		ret = reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", &body);
	} else if (!strcmp(url, "/metrics")) {
		rc = svc_metrics_render(w->store, &body, &err);
		if (rc < 0) {
			sb_buf_reset(&body);
			sb_buf_addf(&body, "%s\n", err.msg);
		}
		ret = reply(conn, rc < 0 ? 503 : 200,
			    rc < 0 ? "text/plain" : "text/plain; version=0.0.4; charset=utf-8",
			    &body);
	} else if (!strcmp(url, "/")) {
		rc = page(w, &body, &err);
		if (rc < 0) {
			sb_buf_reset(&body);
			sb_buf_addf(&body, "%s\n", err.msg);
		}
		ret = reply(conn, rc < 0 ? 503 : 200,
			    rc < 0 ? "text/plain" : "text/html; charset=utf-8", &body);
	} else {
		sb_buf_adds(&body, "not found\n");
		ret = reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", &body);
	}
	sb_buf_release(&body);
	return ret;
}

int svc_web_start(struct svc_web **out, const char *listen, const char *store_path,
		  int busy_timeout_ms, struct sb_err *err)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	struct svc_web *w;
	bool v6 = false;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	int rc;

	rc = parse_listen(listen, &ss, &v6, err);
	if (rc < 0)
		return rc;
	w = sb_xcalloc(1, sizeof(*w));
	rc = svc_store_open(&w->store, store_path, busy_timeout_ms, err);
	if (rc == 0)
		rc = svc_pipeline_store_migrate(svc_store_db(w->store), err);
	if (rc < 0)
		goto fail;
	if (v6)
		flags |= MHD_USE_IPv6;
	w->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				MHD_OPTION_END);
	if (!w->d) {
		rc = sb_err_set(err, SB_EIO, 0, "web: cannot listen on %s", listen);
		goto fail;
	}
	info = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_BIND_PORT);
	w->port = info ? info->port : 0;
	*out = w;
	return 0;
fail:
	svc_web_stop(w);
	return rc;
}

unsigned svc_web_port(const struct svc_web *w)
{
	return w->port;
}

void svc_web_stop(struct svc_web *w)
{
	if (!w)
		return;
	if (w->d)
		MHD_stop_daemon(w->d);
	svc_store_close(w->store);
	free(w);
}
