/*
 * The daemon's counters, kept in one place: steps and API calls per
 * platform with their failures, retries, intake, queue depth, acts in
 * flight and the event stream's lag. Process-wide atomics, so any thread
 * may bump them without a lock; acts per state are not counted here but read
 * from the store when rendered, so the number shown is always the committed
 * truth.
 */
#ifndef SVC_METRICS_H
#define SVC_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_err.h"

struct svc_store;

/* The platforms steps and requests talk to (labels of the per-platform series). */
enum svc_platform {
	SVC_PLATFORM_AGID,
	SVC_PLATFORM_PDND,
	SVC_PLATFORM_PROTOCOL,
	SVC_PLATFORM_SEND,
	SVC_PLATFORM_COUNT
};

/* "agid", "pdnd", "protocol", "send". */
const char *svc_platform_name(enum svc_platform p);

struct svc_metrics {
	uint64_t steps[SVC_PLATFORM_COUNT];    /* pipeline steps run */
	uint64_t step_errors[SVC_PLATFORM_COUNT]; /* of which failed (any code) */
	uint64_t calls[SVC_PLATFORM_COUNT];    /* HTTP requests sent */
	uint64_t errors[SVC_PLATFORM_COUNT];   /* of which failed (svc_metrics_request) */
	uint64_t retries;                      /* temporary failures scheduled again */
	uint64_t intake;                       /* act folders claimed */
	uint64_t intake_rejected;              /* of which rejected at intake */
	int64_t queue_depth;                   /* acts waiting for a worker */
	int64_t in_flight;                     /* acts a worker is driving */
	int64_t stream_lag_s;                  /* age of the newest event read, -1 if none yet */
};

void svc_metrics_step(enum svc_platform p, bool failed);
/*
 * One HTTP request to the platform named (sb_http_after_request's hook; an
 * unknown or NULL name is not counted). It failed when no reply came or the
 * reply was a 4xx or 5xx other than 404, which these APIs give as an answer
 * (no digital domicile in INAD, a request SEND does not know): decision 0016.
 */
void svc_metrics_request(const char *platform, long status, int rc);
void svc_metrics_retry(void);
void svc_metrics_intake(bool rejected);
void svc_metrics_set_queue(int64_t depth, int64_t in_flight);
void svc_metrics_set_stream_lag(int64_t seconds);
/* A consistent-enough copy (each field read atomically). */
void svc_metrics_get(struct svc_metrics *out);
/* Zero everything (tests, and the daemon at start). */
void svc_metrics_reset(void);

/*
 * Append the Prometheus text exposition (version 0.0.4) of the counters and
 * of the acts per state read from s. 0, or the store's error.
 */
int svc_metrics_render(struct svc_store *s, struct sb_buf *out, struct sb_err *err);

#endif
