/*
 * Counters of the daemon: see svc_metrics.h. The exposition follows
 * Prometheus' text format 0.0.4: HELP and TYPE lines, then samples.
 */
#include <stdatomic.h>
#include <string.h>

#include "sb_common.h"
#include "svc_metrics.h"
#include "svc_state.h"
#include "svc_store.h"

static atomic_uint_fast64_t steps[SVC_PLATFORM_COUNT], step_errors[SVC_PLATFORM_COUNT];
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

void svc_metrics_step(enum svc_platform p, bool failed)
{
	SB_ASSERT((unsigned)p < SVC_PLATFORM_COUNT);
	atomic_fetch_add(&steps[p], 1);
	if (failed)
		atomic_fetch_add(&step_errors[p], 1);
}

void svc_metrics_request(const char *platform, long status, int rc)
{
	for (int p = 0; platform && p < SVC_PLATFORM_COUNT; p++) {
		if (strcmp(platform, platform_names[p]))
			continue;
		atomic_fetch_add(&calls[p], 1);
		if (rc < 0 || (status >= 400 && status != 404))
			atomic_fetch_add(&errors[p], 1);
		return;
	}
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
		out->steps[i] = atomic_load(&steps[i]);
		out->step_errors[i] = atomic_load(&step_errors[i]);
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
		atomic_store(&steps[i], 0);
		atomic_store(&step_errors[i], 0);
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

static int per_platform(struct sb_buf *out, const char *name, const char *help,
			const uint64_t v[SVC_PLATFORM_COUNT])
{
	int rc = family(out, name, "counter", help);

	for (int p = 0; p < SVC_PLATFORM_COUNT; p++)
		rc |= sb_buf_addf(out, "%s{platform=\"%s\"} %llu\n", name, platform_names[p],
				  (unsigned long long)v[p]);
	return rc;
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
	rc |= per_platform(out, "sendbridge_api_calls_total",
			   "HTTP requests sent, per platform.", m.calls);
	rc |= per_platform(out, "sendbridge_api_errors_total",
			   "HTTP requests with no reply or a 4xx/5xx reply other than 404.",
			   m.errors);
	rc |= per_platform(out, "sendbridge_steps_total",
			   "Pipeline steps run, per platform they talk to.", m.steps);
	rc |= per_platform(out, "sendbridge_step_errors_total",
			   "Pipeline steps that failed, per platform.", m.step_errors);
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
