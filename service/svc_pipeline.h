/*
 * The pipeline: drives one act through the states of svc_state.h
 * (DESIGN.md "Pipeline states"), committing each transition to the store
 * before the next external call, and moves its folder to done/ or
 * rejected/ at the end.
 *
 * The external steps (AgID check, PDND resolution, protocol registration,
 * SEND upload, create, acceptance, tracking) go through one seam, struct
 * svc_steps, so that the platform clients plug in without the state
 * machine knowing them. A step left NULL is "not wired in this build": acts
 * wait in the state before it, with a note in last_error, and are picked up
 * as soon as a build with the step runs.
 *
 * Plugging the clients in (what svc_steps_builtin() will return):
 *
 *	static int send_create_step(void *wctx, const struct svc_job *job,
 *				    struct svc_step_result *res, struct sb_err *err)
 *	{
 *		struct worker *w = wctx;           (its own HTTP handle, from worker_init)
 *		return send_notification_create(w->send, job->act, job->protocol_number,
 *						res->value, sizeof(res->value), err);
 *	}
 *	static const struct svc_steps steps = { .data = &clients,
 *		.worker_init = worker_init, .worker_release = worker_release,
 *		.check = agid_step, ..., .create = send_create_step, ...,
 *		.stream_read = send_stream_step };
 *
 * Retry policy: a step that returns SB_ETEMP is tried again after
 * min(retry_max, retry_base * 2^(attempts-1)) with jitter (a random point in
 * the upper half of that delay), and never before err->retry_after; after
 * max_attempts temporary failures in one state the act ends as failed.
 * acts.next_attempt_at holds the earliest time of the next attempt in
 * MILLISECONDS since the epoch (0: due now).
 */
#ifndef SVC_PIPELINE_H
#define SVC_PIPELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_problems.h"
#include "svc_act.h"
#include "svc_metrics.h"
#include "svc_state.h"

struct sb_cfg;
struct sqlite3;
struct svc_outbox;
struct svc_store;

/* One event of SEND's stream, as stored in the events table. */
struct svc_event {
	char *event_id;      /* SEND's eventId: unique, the stream's position */
	char *request_id;    /* notificationRequestId (stream events), or NULL */
	char *iun;
	char *category;      /* timeline element category
				(SEND_DIGITAL_DOMICILE, REFINEMENT, ...) */
	char *timestamp;     /* ISO 8601, as SEND gives it */
	char *element;       /* the event or timeline element as JSON text */
};

/* A batch read from the stream; the pipeline frees it with svc_event_batch_release. */
struct svc_event_batch {
	struct svc_event *events;
	size_t n;
	char *position;      /* where the next read starts (lastEventId); NULL: unchanged */
	long retry_after_ms; /* what SEND asked to wait before the next read; -1: none */
};

/* Append one event (copies the texts; request_id, iun and element may be NULL). */
void svc_event_batch_add(struct svc_event_batch *b, const char *event_id, const char *request_id,
			 const char *iun, const char *category, const char *timestamp,
			 const char *element);
void svc_event_batch_release(struct svc_event_batch *b);

/* What a step sees of one act. Everything is borrowed for the call only. */
struct svc_job {
	int64_t id;                       /* acts.id */
	const char *act_id;               /* folder name */
	const char *dir;                  /* outbox/work/<act-id>, absolute */
	const struct svc_act *act;        /* the manifest, parsed from the stored copy */
	const char *protocol_number;      /* from registered on, else NULL */
	const char *request_id;           /* notificationRequestId, from submitted on */
	const char *iun;                  /* from accepted on */
	int attempt;                      /* temporary failures so far in this state */
	const char *const *receipts;      /* legal fact keys already registered */
	size_t nreceipts;
	const struct svc_event *events;   /* track: the stream's events for this IUN,
					     oldest first */
	size_t nevents;
	bool closed;                      /* track: the act is already closed (events came after
					     it closed): register new legal facts and report a
					     cancellation, nothing else; act is then NULL and dir
					     is its folder in done/ */
};

#define SVC_STEP_MAX_RECEIPTS 8

/* A legal fact registered in the protocol by the track step. */
struct svc_receipt {
	char key[256];                    /* SEND's legal fact key: unique, the idempotence key */
	char category[64];                /* SENDER_ACK, DIGITAL_DELIVERY, ANALOG_DELIVERY, ... */
	char protocol_number[64];         /* incoming registration of the receipt */
};

/*
 * What a step returns besides its code. The pipeline zeroes it (and sets
 * cost_cents to -1) before each call and releases problems after.
 */
struct svc_step_result {
	char value[128];          /* register: protocol number; create: notificationRequestId;
				     acceptance: IUN; track, with closed: SEND's final status
				     (VIEWED, EFFECTIVE_DATE, UNREACHABLE, ...) */
	bool pending;             /* acceptance, track: nothing new yet; ask again after wait_ms */
	int64_t wait_ms;          /* with pending: the platform's own delay (SEND's retryAfter),
				     0: poll_ms; when the act moves on: the next step is not
				     due before this (0: at once) */
	bool delivering;          /* track: SEND is delivering (accepted -> delivering) */
	bool closed;              /* track: notification final and every receipt registered */
	bool cancelled;           /* track, with closed: SEND cancelled the notification */
	int64_t cost_cents;       /* track: notification price when known, else -1 */
	struct svc_receipt receipts[SVC_STEP_MAX_RECEIPTS];   /* track: newly registered */
	size_t nreceipts;
	struct sb_problems problems;   /* on a permanent error: what was wrong, field by field */
};

/*
 * One external step. Contract for every step:
 * - idempotent on replay: after a crash the same step runs again for the
 *   same act (derive idempotence keys from job->act_id, reconcile a 409);
 * - returns 0 on success, SB_ETEMP for anything worth retrying (network,
 *   429, 5xx; set err->retry_after when the platform said how long),
 *   SB_EINVAL or SB_EREJECT when the act itself is wrong (check, resolve:
 *   the act is rejected; create, acceptance: it is refused, with the
 *   platform's codes in res->problems), any other code for a permanent
 *   failure (the act is failed with err->msg);
 * - err->msg and res->problems are stored and shown to staff: no personal
 *   data in clear (sb_pii_mask).
 * wctx is the worker's own context (HTTP handles), from worker_init.
 */
typedef int (*svc_step_fn)(void *wctx, const struct svc_job *job, struct svc_step_result *res,
			   struct sb_err *err);

struct svc_steps {
	void *data;   /* the clients (SEND, PDND, AgID, protocol), shared by every worker */
	/* Optional: make and free a worker's context (one HTTP handle per thread). */
	int (*worker_init)(void *data, void **wctx_out, struct sb_err *err);
	void (*worker_release)(void *data, void *wctx);
	svc_step_fn check;              /* received -> checked: documents (agid/) */
	svc_step_fn resolve;            /* checked -> resolved: domiciles, residences (pdnd/) */
	svc_step_fn register_protocol;  /* resolved -> registered:
					   res->value = number (protocol/) */
	svc_step_fn upload;             /* registered -> uploaded: preload and upload (send/) */
	svc_step_fn create;             /* uploaded -> submitted: res->value = request id (send/) */
	svc_step_fn acceptance;         /* submitted -> accepted: res->value = IUN, or pending,
					   or SB_EREJECT for a refusal (send/) */
	svc_step_fn track;              /* accepted/delivering -> delivering/closed, registering
					   receipts (send/ + protocol/), from job->events */
	/*
	 * Optional: read SEND's event stream after position (NULL: from its
	 * start), one consumer for every act. Called by one thread only, with
	 * a context from worker_init. 0 with out filled (n may be 0), or
	 * SB_ETEMP (read again after a backoff) or another error (logged,
	 * read again after retry_max). The pipeline stores the events and the
	 * position in one transaction and wakes the acts they concern.
	 */
	int (*stream_read)(void *wctx, const char *position, struct svc_event_batch *out,
			   struct sb_err *err);
	/*
	 * Optional, with stream_read: the whole timeline of one notification
	 * as events (SEND's sent notification), for the one-time catch-up of
	 * an act after the stream was replaced (svc_pipeline_stream_replaced).
	 * Event ids must differ from the stream's and be the same on a replay;
	 * the last event carries the notification's current status. Called by
	 * the stream reader's thread, with its context.
	 */
	int (*timeline_read)(void *wctx, const char *iun, struct svc_event_batch *out,
			     struct sb_err *err);
};

/*
 * The steps that need no platform (none): what `send-bridge run` had before
 * the clients were wired in; the real ones are in svc_steps.h.
 */
const struct svc_steps *svc_steps_builtin(void);

struct svc_pipeline_opts {
	int64_t retry_base_ms;   /* first retry delay */
	int64_t retry_max_ms;    /* longest retry delay */
	int max_attempts;        /* temporary failures in one state before failing the act */
	int64_t poll_ms;         /* re-check of a pending acceptance or tracking */
};

/* Options from [outbox] retry_base, retry_max, max_attempts, poll_interval. */
void svc_pipeline_opts_from_cfg(struct svc_pipeline_opts *o, const struct sb_cfg *cfg);

struct svc_pipeline;

/*
 * A pipeline over an outbox and a steps table, both borrowed for its life.
 * cfg (may be NULL: no office check) is used at intake to check that the
 * act's office is configured and its operator allowed. Read-only after
 * creation: one pipeline is shared by every worker.
 */
void svc_pipeline_new(struct svc_pipeline **out, const struct sb_cfg *cfg,
		      const struct svc_outbox *outbox, const struct svc_steps *steps,
		      const struct svc_pipeline_opts *opts);
void svc_pipeline_free(struct svc_pipeline *p);
const struct svc_steps *svc_pipeline_steps(const struct svc_pipeline *p);

/*
 * The tables the pipeline keeps beside svc_store's (outcomes: the final
 * reason of every act, including those rejected before they had a row),
 * migrated forward under meta key "schema.pipeline". Call after
 * svc_store_open, before anything else; idempotent.
 */
int svc_pipeline_store_migrate(struct sqlite3 *db, struct sb_err *err);


/*
 * The act check that needs the configuration: the act's office must have an
 * [office.NAME] section, and its operator must be in that office's
 * operators when the list is set. Problems are added to probs.
 */
void svc_pipeline_check_office(const struct sb_cfg *cfg, const struct svc_act *a,
			       struct sb_problems *probs);

enum svc_progress {
	SVC_PROGRESS_FINISHED,   /* final state committed, folder moved out of work/ */
	SVC_PROGRESS_WAITING,    /* committed; next attempt at acts.next_attempt_at */
	SVC_PROGRESS_STOPPED,    /* *stop was set: left between two committed steps */
};

/*
 * Take the act in work/<name> as far as it can go now:
 * - not in the store: intake (load and check the act, record it as
 *   received, or reject it to rejected/ with reason.json);
 * - in the store with the same act.json: resume from its state (after a
 *   crash or a wait), finishing the move of a final act;
 * - in the store with a different act.json, or already finished: a second
 *   act with a used id, rejected to rejected/.
 * Then run steps until the act is final, must wait, or *stop (may be NULL)
 * is set. wctx goes to the steps. Only one thread may process a given name
 * at a time. Returns 0 with *out set, or an error of the store or the file
 * system (the act stays in work/ and is retried by the next rescan).
 */
int svc_pipeline_process(const struct svc_pipeline *p, struct svc_store *s, void *wctx,
			 const char *name, const atomic_bool *stop, enum svc_progress *out,
			 struct sb_err *err);

/*
 * Reject new/<name> without claiming it (its name is unacceptable, or an
 * act with that id is already in work/): moved to rejected/ with a
 * reason.json naming the problem, and recorded in outcomes.
 */
int svc_pipeline_reject_new(const struct svc_pipeline *p, struct svc_store *s, const char *name,
			    const char *why, struct sb_err *err);

/*
 * Names of acts due now (not final, next_attempt_at <= now_ms, in a state
 * whose step is wired; or closed with events not yet tracked, when track
 * is wired), oldest due first, at most max. *names_out owned:
 * svc_outbox_names_free.
 */
int svc_pipeline_due(const struct svc_pipeline *p, struct svc_store *s, int64_t now_ms,
		     size_t max, char ***names_out, size_t *n_out, struct sb_err *err);

/* The earliest next_attempt_at of a waiting act (ms), or INT64_MAX when none. */
int svc_pipeline_next_due(const struct svc_pipeline *p, struct svc_store *s, int64_t *out,
			  struct sb_err *err);

/*
 * Read the stream once through steps->stream_read (which must be set):
 * store the new events (an event id seen before is skipped) and the
 * position, wake the acts in accepted or delivering whose IUN has a new
 * event, mark a closed act whose IUN has one (its track step runs once
 * more for the new legal facts: a cancellation after it closed), and
 * publish the stream's lag; then run the catch-ups owed (see
 * svc_pipeline_stream_replaced). *wait_ms_out gets how long to wait
 * before the next read: 0 when the batch was not empty, else SEND's
 * retry_after_ms when positive, else poll_ms. Returns 1 when new events
 * were stored (acts were woken), 0 when none, or an error of the store or
 * of stream_read (the position is then unchanged).
 */
int svc_pipeline_stream_step(const struct svc_pipeline *p, struct svc_store *s, void *wctx,
			     int64_t *wait_ms_out, struct sb_err *err);

/*
 * SEND's stream only carries what happens after it was created: a stream
 * that replaces a lost one (deleted at SEND) misses the events of the gap.
 * Call this inside the caller's transaction, committed before the new
 * stream is created: it forgets the old stream's position and records every
 * act SEND may be notifying (uploaded to delivering), and every act closed
 * at or after closed_since (Unix seconds; 0: none), as owing a catch-up.
 * A closed act's timeline brings what happened to it in the gap (a
 * cancellation), which its late track step then registers.
 * Once a read of the new stream succeeds, svc_pipeline_stream_step reads
 * each of those notifications' timeline once (steps->timeline_read), stores
 * it like stream events and drops the act's record in the same
 * transaction, so a crash leaves the catch-up to be finished, not lost.
 */
int svc_pipeline_stream_replaced(struct svc_store *s, int64_t closed_since, struct sb_err *err);

/* The retry delay (ms) after the n-th (>= 1) temporary failure, jitter included. */
int64_t svc_pipeline_backoff_ms(const struct svc_pipeline_opts *o, int n, long retry_after_s);

#endif
