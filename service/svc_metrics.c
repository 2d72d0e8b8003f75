/*
 * Counters of the daemon: see svc_metrics.h. The exposition follows
 * Prometheus' text format 0.0.4: HELP and TYPE lines, then samples.
 */
#include <stdatomic.h>

#include "sb_common.h"
#include "svc_metrics.h"
#include "svc_state.h"
#include "svc_store.h"

static atomic_uint_fast64_t calls[SVC_PLATFORM_COUNT], errors[SVC_PLATFORM_COUNT];
static atomic_uint_fast64_t retries, intake, intake_rejected;
static atomic_int_fast64_t queue_depth, in_flight, stream_lag = -1;

static const char *const platform_names[SVC_PLATFORM_COUNT] = {
	"agid", "pdnd", "protocol", "send",
};

const char *svc_platform_name(enum svc_platform p)
{
	return (unsigned)p < SVC_PLATFORM_COUNT ? platform_names[p] : "unknown";
}

void svc_metrics_call(enum svc_platform p, bool failed)
{
	SB_ASSERT((unsigned)p < SVC_PLATFORM_COUNT);
	atomic_fetch_add(&calls[p], 1);
	if (failed)
		atomic_fetch_add(&errors[p], 1);
}

void svc_metrics_retry(void)
{
	atomic_fetch_add(&retries, 1);
}

void svc_metrics_intake(bool rejected)
{
	atomic_fetch_add(&intake, 1);
	if (rejected)
		atomic_fetch_add(&intake_rejected, 1);
}

void svc_metrics_set_queue(int64_t depth, int64_t flying)
{
	atomic_store(&queue_depth, depth);
	atomic_store(&in_flight, flying);
}

void svc_metrics_set_stream_lag(int64_t seconds)
{
	atomic_store(&stream_lag, seconds);
}

void svc_metrics_get(struct svc_metrics *out)
{
	for (int i = 0; i < SVC_PLATFORM_COUNT; i++) {
		out->calls[i] = atomic_load(&calls[i]);
		out->errors[i] = atomic_load(&errors[i]);
	}
	out->retries = atomic_load(&retries);
	out->intake = atomic_load(&intake);
	out->intake_rejected = atomic_load(&intake_rejected);
	out->queue_depth = atomic_load(&queue_depth);
	out->in_flight = atomic_load(&in_flight);
	out->stream_lag_s = atomic_load(&stream_lag);
}

void svc_metrics_reset(void)
{
	for (int i = 0; i < SVC_PLATFORM_COUNT; i++) {
		atomic_store(&calls[i], 0);
		atomic_store(&errors[i], 0);
	}
	atomic_store(&retries, 0);
	atomic_store(&intake, 0);
	atomic_store(&intake_rejected, 0);
	atomic_store(&queue_depth, 0);
	atomic_store(&in_flight, 0);
	atomic_store(&stream_lag, -1);
}

static int family(struct sb_buf *out, const char *name, const char *type, const char *help)
{
	return sb_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int svc_metrics_render(struct svc_store *s, struct sb_buf *out, struct sb_err *err)
{
	struct svc_metrics m;
	uint64_t commits = 0, syncs = 0;
	int rc = 0;

	svc_metrics_get(&m);
	rc |= family(out, "sendbridge_acts", "gauge", "Acts in the store per pipeline state.");
	for (int st = 0; st < SVC_STATE_COUNT; st++) {
		int64_t n = 0;
		int r = svc_store_act_count(s, (enum svc_state)st, &n, err);

		if (r < 0)
			return r;
		rc |= sb_buf_addf(out, "sendbridge_acts{state=\"%s\"} %lld\n",
				  svc_state_name((enum svc_state)st), (long long)n);
	}
	rc |= family(out, "sendbridge_api_calls_total", "counter",
		     "External steps run, per platform.");
	for (int p = 0; p < SVC_PLATFORM_COUNT; p++)
		rc |= sb_buf_addf(out, "sendbridge_api_calls_total{platform=\"%s\"} %llu\n",
				  platform_names[p], (unsigned long long)m.calls[p]);
	rc |= family(out, "sendbridge_api_errors_total", "counter",
		     "External steps that failed, per platform.");
	for (int p = 0; p < SVC_PLATFORM_COUNT; p++)
		rc |= sb_buf_addf(out, "sendbridge_api_errors_total{platform=\"%s\"} %llu\n",
				  platform_names[p], (unsigned long long)m.errors[p]);
	rc |= family(out, "sendbridge_retries_total", "counter",
		     "Temporary failures scheduled for another attempt.");
	rc |= sb_buf_addf(out, "sendbridge_retries_total %llu\n", (unsigned long long)m.retries);
	rc |= family(out, "sendbridge_intake_total", "counter", "Act folders claimed from new/.");
	rc |= sb_buf_addf(out, "sendbridge_intake_total %llu\n", (unsigned long long)m.intake);
	rc |= family(out, "sendbridge_intake_rejected_total", "counter",
		     "Act folders rejected at intake.");
	rc |= sb_buf_addf(out, "sendbridge_intake_rejected_total %llu\n",
			  (unsigned long long)m.intake_rejected);
	rc |= family(out, "sendbridge_queue_depth", "gauge", "Acts due and waiting for a worker.");
	rc |= sb_buf_addf(out, "sendbridge_queue_depth %lld\n", (long long)m.queue_depth);
	rc |= family(out, "sendbridge_in_flight", "gauge", "Acts a worker is driving now.");
	rc |= sb_buf_addf(out, "sendbridge_in_flight %lld\n", (long long)m.in_flight);
	svc_store_sync_stats(&commits, &syncs);
	rc |= family(out, "sendbridge_store_commits_total", "counter",
		     "Transactions committed to the store by this process.");
	rc |= sb_buf_addf(out, "sendbridge_store_commits_total %llu\n",
			  (unsigned long long)commits);
	rc |= family(out, "sendbridge_store_syncs_total", "counter",
		     "WAL syncs that made them durable "
		     "(one sync serves the commits made together).");
	rc |= sb_buf_addf(out, "sendbridge_store_syncs_total %llu\n", (unsigned long long)syncs);
	rc |= family(out, "sendbridge_stream_lag_seconds", "gauge",
		     "Age of the newest event read from SEND's stream (-1: none read yet).");
	rc |= sb_buf_addf(out, "sendbridge_stream_lag_seconds %lld\n", (long long)m.stream_lag_s);
	if (rc < 0)
		return sb_err_set(err, SB_ETOOBIG, 0, "metrics: exposition larger than its buffer");
	return 0;
}
