/*
 * send-sim: local stand-ins for the national platforms, for `make demo` and
 * the tests. One server on loopback; each platform answers under its own
 * prefix. Faults (latency, 5xx, 429, dropped connections, fail the Nth
 * call) are set on the command line or at run time through /_sim/faults.
 *
 * usage: send-sim [--listen ADDR] [--port N] [--port-file F] [--latency-ms N]
 *                 [--fault-5xx PCT] [--fault-429 PCT] [--fault-drop PCT]
 *                 [--fail-nth N] [--seed N]
 */
#include <errno.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_log.h"
#include "sb_version.h"
#include "sim.h"
#include "sim_pdnd.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

/* Requests larger than this are refused with 413 (SEND's gateway limit is lower still). */
#define SIM_MAX_BODY (256u * 1024u * 1024u)

struct conn_state {
	struct sb_buf body;
	bool too_big;
};

struct sim_blob {
	atomic_uint refs;
	size_t len;
	char *data;
};

struct sim_blob *sim_request_take_body(const struct sim_request *rq)
{
	struct sim_blob *b = sb_xcalloc(1, sizeof(*b));

	atomic_init(&b->refs, 1);
	b->data = sb_buf_detach(rq->own, &b->len);
	return b;
}

struct sim_blob *sim_blob_ref(struct sim_blob *b)
{
	atomic_fetch_add(&b->refs, 1);
	return b;
}

void sim_blob_unref(struct sim_blob *b)
{
	if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
		free(b->data);
		free(b);
	}
}

const char *sim_blob_data(const struct sim_blob *b)
{
	return b->data;
}

size_t sim_blob_len(const struct sim_blob *b)
{
	return b->len;
}

static void blob_sent(void *cls)
{
	sim_blob_unref(cls);
}

const char *sim_header(const struct sim_request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *sim_query(const struct sim_request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

void sim_reply_json(struct sim_response *rs, unsigned status, const char *fmt, ...)
{
	va_list ap;

	rs->status = status;
	sim_reply_type(rs, "application/json");
	sb_buf_reset(&rs->body);
	va_start(ap, fmt);
	sb_buf_vaddf(&rs->body, fmt, ap);
	va_end(ap);
}

void sim_reply_type(struct sim_response *rs, const char *type)
{
	snprintf(rs->content_type, sizeof(rs->content_type), "%s", type ? type : "");
}

void sim_reply_header(struct sim_response *rs, const char *fmt, ...)
{
	va_list ap;
	char line[512];

	if (rs->nheaders >= SIM_MAX_HEADERS)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	rs->headers[rs->nheaders++] = sb_xstrdup(line);
}

uint64_t sim_rand(struct sim *s, uint64_t n)
{
	/* xorshift64*: reproducible with --seed, good enough for fault shares. */
	s->seed ^= s->seed >> 12;
	s->seed ^= s->seed << 25;
	s->seed ^= s->seed >> 27;
	return n ? (s->seed * 2685821657736338717ull) % n : 0;
}

/*
 * Injected faults apply to platform calls only, never to /_sim/ (the tests' own channel).
 * A lost reply is not a fault in place of the call: the platform carries the call out and
 * only its reply goes (*lost), as when a timeout or a proxy cuts it on its way back.
 */
static bool inject_fault(struct sim *s, struct sim_response *rs, unsigned *latency, bool *lost)
{
	bool fault = false;
	uint64_t r;

	pthread_mutex_lock(&s->lock);
	s->calls++;
	*latency = s->faults.latency_ms;
	r = sim_rand(s, 100);
	if (s->faults.fail_nth && s->calls == s->faults.fail_nth) {
		sim_reply_json(rs, 503, "{\"message\":\"injected failure of call %llu\"}",
			       (unsigned long long)s->calls);
		fault = true;
	} else if (r < s->faults.pct_drop) {
		rs->drop = true;
		fault = true;
	} else if (r < s->faults.pct_drop + s->faults.pct_5xx) {
		sim_reply_json(rs, 503, "{\"message\":\"Service Unavailable\"}");
		fault = true;
	} else if (r < s->faults.pct_drop + s->faults.pct_5xx + s->faults.pct_429) {
		sim_reply_json(rs, 429, "{\"message\":\"Too Many Requests\"}");
		sim_reply_header(rs, "Retry-After: %u", s->faults.retry_after_s);
		fault = true;
	} else if (r < s->faults.pct_drop + s->faults.pct_5xx + s->faults.pct_429 +
			   s->faults.pct_lost) {
		*lost = true;
	}
	pthread_mutex_unlock(&s->lock);
	return fault;
}

static const sim_handler_fn handlers[] = {
	sim_admin_handle,
	sim_proto_handle,
	sim_pdnd_handle,
	sim_anpr_handle,
	sim_inad_handle,
	sim_send_handle,
};

static MHD_RESULT on_request(void *cls, struct MHD_Connection *conn, const char *url,
			     const char *method, const char *version, const char *upload_data,
			     size_t *upload_size, void **con_cls)
{
	struct sim *s = cls;
	struct conn_state *cs = *con_cls;
	struct sim_response rs;
	struct sim_request rq;
	struct MHD_Response *resp;
	unsigned latency = 0;
	bool claimed = false, lost = false;
	MHD_RESULT ret;

	(void)version;
	if (!cs) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t len = 0;

		cs = sb_xcalloc(1, sizeof(*cs));
		sb_buf_init(&cs->body, SIM_MAX_BODY);
		/* An upload in one allocation, not a dozen doublings (the body stays bounded). */
		if (cl && sb_parse_u64z(cl, SIM_MAX_BODY, &len) == 0 && len > 0)
			(void)sb_buf_reserve(&cs->body, (size_t)len);
		*con_cls = cs;
		return MHD_YES;
	}
	if (*upload_size) {
		if (sb_buf_add(&cs->body, upload_data, *upload_size) < 0)
			cs->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}

	memset(&rs, 0, sizeof(rs));
	sb_buf_init(&rs.body, SB_MAX_DEFAULT * 4);
	rq.method = method;
	rq.path = url;
	rq.conn = conn;
	rq.body = sb_buf_cstr(&cs->body);
	rq.body_len = cs->body.len;
	rq.own = &cs->body;

	if (cs->too_big) {
		sim_reply_json(&rs, 413, "{\"message\":\"Request Entity Too Large\"}");
		claimed = true;
	} else if (!strncmp(url, "/_sim/", 6)) {
		claimed = sim_admin_handle(s, &rq, &rs);
		/* A platform's own admin paths (/_sim/<platform>/...): unfaulted too. */
		for (size_t i = 1; i < SB_ARRAY_SIZE(handlers) && !claimed; i++)
			claimed = handlers[i](s, &rq, &rs);
	} else if (!inject_fault(s, &rs, &latency, &lost)) {
		for (size_t i = 0; i < SB_ARRAY_SIZE(handlers) && !claimed; i++)
			claimed = handlers[i](s, &rq, &rs);
		rs.drop = rs.drop || lost;
	} else {
		claimed = true;
	}
	if (!claimed)
		sim_reply_json(&rs, 404, "{\"message\":\"Not Found\"}");
	if (latency) {
		struct timespec ts = { latency / 1000, (long)(latency % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	if (rs.drop) {
		ret = MHD_NO;
	} else {
		/* MHD 0.9.75 takes void *; it only reads the buffer. */
		if (rs.blob) {
			/* Sent from the stored bytes; the reference goes when MHD is done. */
			resp = MHD_create_response_from_buffer_with_free_callback_cls(
				rs.blob->len, rs.blob->data, blob_sent, rs.blob);
			if (resp)
				rs.blob = NULL;
		} else {
			resp = MHD_create_response_from_buffer(
				rs.body.len, (void *)(uintptr_t)sb_buf_cstr(&rs.body),
				MHD_RESPMEM_MUST_COPY);
		}
		if (*rs.content_type)
			MHD_add_response_header(resp, "Content-Type", rs.content_type);
		for (size_t i = 0; i < rs.nheaders; i++) {
			char *colon = strchr(rs.headers[i], ':');

			if (!colon)
				continue;
			*colon = '\0';
			MHD_add_response_header(resp, rs.headers[i], colon + 1 + (colon[1] == ' '));
		}
		ret = MHD_queue_response(conn, rs.status, resp);
		MHD_destroy_response(resp);
	}
	for (size_t i = 0; i < rs.nheaders; i++)
		free(rs.headers[i]);
	sim_blob_unref(rs.blob);
	sb_buf_release(&rs.body);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn_state *cs = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (cs) {
		sb_buf_release(&cs->body);
		free(cs);
		*con_cls = NULL;
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: send-sim [options]\n"
		"\n"
		"Local stand-ins for SEND, PDND, ANPR, INAD and a protocol system.\n"
		"Listens on loopback only.\n"
		"\n"
		"  --listen ADDR      127.0.0.1 (default) or ::1\n"
		"  --port N           port, 0 for any free one (default 0)\n"
		"  --port-file F      write the chosen port to F once listening\n"
		"  --latency-ms N     delay every platform reply by N ms\n"
		"  --fault-5xx PCT    answer PCT%% of platform calls with 503\n"
		"  --fault-429 PCT    answer PCT%% with 429 and Retry-After\n"
		"  --fault-drop PCT   close PCT%% of connections without a reply\n"
		"  --fault-lost PCT   carry out PCT%% of platform calls, then close the\n"
		"                     connection without the reply\n"
		"  --fail-nth N       answer the Nth platform call with 503\n"
		"  --seed N           seed for the fault choices (reproducible runs)\n"
		"  --pdnd FILE        PDND clients, keys and purposes, ANPR/INAD registry\n"
		"                     (JSON; see docs/pdnd.md)\n"
		"  -h, --help         this help\n"
		"\n"
		"Admin endpoints (not platform calls, never faulted):\n"
		"  GET /_sim/health, GET|POST /_sim/faults\n");
	sim_send_usage(out);
}

static int num_arg(const char *opt, const char *v, uint64_t max, uint64_t *out)
{
	if (!v || sb_parse_u64z(v, max, out) < 0) {
		fprintf(stderr, "send-sim: %s needs a number up to %llu\n", opt,
			(unsigned long long)max);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct MHD_Daemon *d;
	struct sim s;
	const char *listen_addr = "127.0.0.1", *port_file = NULL;
	uint64_t port = 0, v;
	const union MHD_DaemonInfo *info;
	struct sockaddr_storage ss;
	sigset_t stop_signals;
	int sig = 0;
	/*
	 * AUTO: poll() in each connection's thread, not select() (cheaper, and
	 * no FD_SETSIZE cap).
	 */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_AUTO | MHD_USE_ERROR_LOG;

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	s.faults.retry_after_s = 1;
	s.seed = 0x5eed5eed5eedull;
	if (sim_pdnd_init(&s, &argc, argv) < 0 || sim_send_init(&s, &argc, argv) < 0)
		return 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--listen") && n) {
			listen_addr = n; i++;
		} else if (!strcmp(a, "--port")) {
			if (num_arg(a, n, 65535, &port) < 0) return 2;
			i++;
		} else if (!strcmp(a, "--port-file") && n) {
			port_file = n; i++;
		} else if (!strcmp(a, "--latency-ms")) {
			if (num_arg(a, n, 60000, &v) < 0) return 2;
			s.faults.latency_ms = (unsigned)v; i++;
		} else if (!strcmp(a, "--fault-5xx")) {
			if (num_arg(a, n, 100, &v) < 0) return 2;
			s.faults.pct_5xx = (unsigned)v; i++;
		} else if (!strcmp(a, "--fault-429")) {
			if (num_arg(a, n, 100, &v) < 0) return 2;
			s.faults.pct_429 = (unsigned)v; i++;
		} else if (!strcmp(a, "--fault-drop")) {
			if (num_arg(a, n, 100, &v) < 0) return 2;
			s.faults.pct_drop = (unsigned)v; i++;
		} else if (!strcmp(a, "--fault-lost")) {
			if (num_arg(a, n, 100, &v) < 0) return 2;
			s.faults.pct_lost = (unsigned)v; i++;
		} else if (!strcmp(a, "--fail-nth")) {
			if (num_arg(a, n, UINT64_MAX, &s.faults.fail_nth) < 0) return 2;
			i++;
		} else if (!strcmp(a, "--seed")) {
			if (num_arg(a, n, UINT64_MAX, &v) < 0) return 2;
			s.seed = v ? v : 1; i++;
		} else {
			fprintf(stderr, "send-sim: unknown option '%s' (try --help)\n", a);
			return 2;
		}
	}
	if (s.faults.pct_5xx + s.faults.pct_429 + s.faults.pct_drop + s.faults.pct_lost > 100) {
		fprintf(stderr, "send-sim: fault shares add up to more than 100%%\n");
		return 2;
	}

	memset(&ss, 0, sizeof(ss));
	if (!strcmp(listen_addr, "127.0.0.1")) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (!strcmp(listen_addr, "::1")) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sin6->sin6_addr = in6addr_loopback;
		flags |= MHD_USE_IPv6;
	} else {
		/*
		 * The simulators hold fake personal data and have no
		 * authentication of their own.
		 */
		fprintf(stderr, "send-sim: --listen must be 127.0.0.1 or ::1\n");
		return 2;
	}
	/*
	 * SIGINT and SIGTERM blocked in every thread (MHD's inherit the mask) and
	 * taken by sigwait below: a flag checked around pause() could miss a
	 * signal that arrived between the check and the pause, or that a server
	 * thread took, and the simulator would never stop.
	 */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, &s,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
			     MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "send-sim: cannot listen on %s port %llu: %s\n", listen_addr,
			(unsigned long long)port, strerror(errno));
		return 1;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	port = info ? info->port : port;
	snprintf(s.base_url, sizeof(s.base_url), strcmp(listen_addr, "::1") ?
		 "http://127.0.0.1:%u" : "http://[::1]:%u", (unsigned)port);
	if (port_file) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", (unsigned)port) < 0 || fclose(f) != 0 ||
		    rename(tmp, port_file) < 0) {
			fprintf(stderr, "send-sim: cannot write port file '%s'\n", port_file);
			MHD_stop_daemon(d);
			return 1;
		}
	}
	fprintf(stderr, "send-sim %s listening on %s\n", SB_VERSION, s.base_url);
	while (sigwait(&stop_signals, &sig) != 0)
		;
	MHD_stop_daemon(d);
	pthread_mutex_destroy(&s.lock);
	return 0;
}
