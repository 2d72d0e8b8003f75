/*
 * The daemon: see svc_daemon.h.
 *
 * Threads: the main thread owns the file system side (inotify, claims,
 * rescans), signals, sd_notify and the dispatch of due acts; N workers pop
 * act names from one queue and call svc_pipeline_process; the web server
 * has its own thread. A name is "busy" from the moment it is queued until
 * its worker is done, so no two workers ever drive the same act, and the
 * dispatcher never queues it twice.
 *
 * The main loop sleeps in poll(2) on the inotify descriptor and a self-pipe
 * that signal handlers and workers write to, with a timeout that is the
 * nearest of: the next due act, the next rescan, the next watchdog ping.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_http.h"
#include "sb_log.h"
#include "sb_time.h"
#include "svc_daemon.h"
#include "svc_metrics.h"
#include "svc_outbox.h"
#include "svc_steps.h"
#include "svc_store.h"
#include "svc_web.h"

/* After a store or file system error on an act, leave it alone this long. */
#define COOLDOWN_MS 1000
/* Re-send STATUS= to systemd at most this often. */
#define STATUS_EVERY_MS 5000

struct busy {
	char *name;
	int64_t cooldown_until;    /* 0: queued or being processed; else resting after an error */
};

struct daemon {
	const struct svc_daemon_opts *o;
	const struct svc_steps *steps;
	struct svc_outbox *outbox;
	struct svc_pipeline *pipeline;
	struct svc_store *store;       /* the main thread's connection */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	char **queue;                  /* FIFO of names, under lock */
	size_t qlen, qcap;
	struct busy *busy;             /* queued, running or cooling down, under lock */
	size_t nbusy, busycap;
	int64_t running;
	bool rescan_work;              /* list work/ at the next rescan (an act hit an error) */

	atomic_bool stop;
	pthread_cond_t tracker_cond;   /* the tracker's sleep, cut short by a stop */
};

static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t got_stop, got_hup;

static void wake(void)
{
	int saved = errno;

	if (wake_pipe[1] >= 0)
		(void)!write(wake_pipe[1], "x", 1);
	errno = saved;
}

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_stop = 1;
	wake();
}

void svc_daemon_stop(void)
{
	got_stop = 1;
	wake();
}

void svc_daemon_opts_from_cfg(struct svc_daemon_opts *o, const struct sb_cfg *cfg)
{
	memset(o, 0, sizeof(*o));
	o->cfg = cfg;
	o->outbox_dir = sb_cfg_str(cfg, "outbox", "dir");
	o->store_path = sb_cfg_str(cfg, "store", "path");
	o->busy_timeout_ms = (int)sb_cfg_int(cfg, "store", "busy_timeout_ms");
	o->workers = (int)sb_cfg_int(cfg, "service", "workers");
	o->rescan_ms = sb_cfg_int(cfg, "outbox", "rescan_interval") * 1000;
	svc_pipeline_opts_from_cfg(&o->pipeline, cfg);
	o->web_listen = sb_cfg_bool(cfg, "web", "enabled") ?
			sb_cfg_str(cfg, "web", "listen") : NULL;
}

/* ---- queue and busy set (lock held) ---------------------------------------------------- */

static struct busy *busy_find(struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->nbusy; i++)
		if (!strcmp(d->busy[i].name, name))
			return &d->busy[i];
	return NULL;
}

static void busy_remove(struct daemon *d, struct busy *b)
{
	free(b->name);
	*b = d->busy[--d->nbusy];
}

/* Queue name unless it is busy; true when queued. */
static bool enqueue(struct daemon *d, const char *name)
{
	if (busy_find(d, name))
		return false;
	if (d->nbusy == d->busycap) {
		d->busycap = d->busycap ? d->busycap * 2 : 64;
		d->busy = sb_xrealloc(d->busy, d->busycap * sizeof(*d->busy));
	}
	d->busy[d->nbusy].name = sb_xstrdup(name);
	d->busy[d->nbusy++].cooldown_until = 0;
	if (d->qlen == d->qcap) {
		d->qcap = d->qcap ? d->qcap * 2 : 64;
		d->queue = sb_xrealloc(d->queue, d->qcap * sizeof(*d->queue));
	}
	d->queue[d->qlen++] = sb_xstrdup(name);
	pthread_cond_signal(&d->cond);
	return true;
}

/* Forget names whose cool-down is over; the next dispatch may queue them again. */
static void busy_expire(struct daemon *d, int64_t now)
{
	for (size_t i = 0; i < d->nbusy;) {
		if (d->busy[i].cooldown_until && d->busy[i].cooldown_until <= now)
			busy_remove(d, &d->busy[i]);
		else
			i++;
	}
}

static void publish_queue(struct daemon *d)
{
	svc_metrics_set_queue((int64_t)d->qlen, d->running);
}

/*
 * A thread's own store connection and step context. On failure the whole
 * daemon stops: running with fewer workers than configured would hide it.
 */
static int thread_open(struct daemon *d, const char *who, struct svc_store **s_out,
		       void **wctx_out)
{
	struct sb_err err = SB_ERR_INIT;
	int rc;

	rc = svc_store_open_shared(s_out, d->o->store_path, d->o->busy_timeout_ms, &err);
	if (rc == 0 && d->steps->worker_init)
		rc = d->steps->worker_init(d->steps->data, wctx_out, &err);
	if (rc < 0) {
		sb_log(SB_LOG_ERROR, "daemon", "%s cannot start: %s", who, err.msg);
		svc_store_close(*s_out);
		*s_out = NULL;
		atomic_store(&d->stop, true);
		svc_daemon_stop();
	}
	return rc;
}

/* ---- workers --------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	struct daemon *d = arg;
	struct svc_store *s = NULL;
	struct sb_err err = SB_ERR_INIT;
	void *wctx = NULL;

	if (thread_open(d, "worker", &s, &wctx) < 0)
		return NULL;
	for (;;) {
		enum svc_progress progress = SVC_PROGRESS_WAITING;
		char *name;
		struct busy *b;
		int rc;

		pthread_mutex_lock(&d->lock);
		while (!atomic_load(&d->stop) && d->qlen == 0)
			pthread_cond_wait(&d->cond, &d->lock);
		if (atomic_load(&d->stop)) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		name = d->queue[0];
		memmove(d->queue, d->queue + 1, --d->qlen * sizeof(*d->queue));
		d->running++;
		publish_queue(d);
		pthread_mutex_unlock(&d->lock);

		sb_err_clear(&err);
		rc = svc_pipeline_process(d->pipeline, s, wctx, name, &d->stop, &progress, &err);
		if (rc < 0 && rc != SB_ENOTFOUND)
			sb_log(SB_LOG_WARN, "daemon", "act left for later act=%s: %s",
			       name, err.msg);
		/* Between acts, nothing this worker committed waits for the disk. */
		sb_err_clear(&err);
		if (svc_store_barrier(&err) < 0) {
			sb_log(SB_LOG_WARN, "daemon", "act left for later act=%s: %s",
			       name, err.msg);
			if (rc >= 0)
				rc = SB_EIO;
		}

		pthread_mutex_lock(&d->lock);
		d->running--;
		b = busy_find(d, name);
		SB_ASSERT(b);
		if (rc < 0) {
			b->cooldown_until = sb_now_ms() + COOLDOWN_MS;
			d->rescan_work = true;
		} else {
			busy_remove(d, b);
		}
		publish_queue(d);
		pthread_mutex_unlock(&d->lock);
		free(name);
		wake();
	}
	if (d->steps->worker_release)
		d->steps->worker_release(d->steps->data, wctx);
	svc_store_close(s);
	return NULL;
}

/*
 * The stream consumer: one thread reads SEND's event stream for every act
 * (svc_pipeline_stream_step) and wakes the main loop when events arrived,
 * so the acts they concern are dispatched at once.
 */
static void *tracker_main(void *arg)
{
	struct daemon *d = arg;
	struct svc_store *s = NULL;
	struct sb_err err = SB_ERR_INIT;
	void *wctx = NULL;

	if (thread_open(d, "stream reader", &s, &wctx) < 0)
		return NULL;
	while (!atomic_load(&d->stop)) {
		int64_t wait_ms = 0;
		struct timespec until;
		int rc;

		sb_err_clear(&err);
		rc = svc_pipeline_stream_step(d->pipeline, s, wctx, &wait_ms, &err);
		if (rc < 0)
			sb_log(SB_LOG_WARN, "daemon", "stream read failed, retry in %lld ms: %s",
			       (long long)wait_ms, err.msg);
		else if (rc > 0 || wait_ms == 0)
			wake();
		if (wait_ms <= 0)
			continue;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)(wait_ms / 1000);
		until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&d->lock);
		if (!atomic_load(&d->stop))
			pthread_cond_timedwait(&d->tracker_cond, &d->lock, &until);
		pthread_mutex_unlock(&d->lock);
	}
	if (d->steps->worker_release)
		d->steps->worker_release(d->steps->data, wctx);
	svc_store_close(s);
	return NULL;
}

/* ---- the main thread's side ------------------------------------------------------------ */

static void queue_names(struct daemon *d, char **names, size_t n)
{
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < n; i++)
		enqueue(d, names[i]);
	publish_queue(d);
	pthread_mutex_unlock(&d->lock);
}

/* Claim everything in new/ and queue it. */
static void scan_new(struct daemon *d)
{
	struct sb_err err = SB_ERR_INIT;
	char **names = NULL, **claimed;
	size_t n = 0, nclaimed = 0;

	if (svc_outbox_list(d->outbox, "new", &names, &n, &err) < 0) {
		sb_log(SB_LOG_ERROR, "outbox", "%s", err.msg);
		return;
	}
	SB_ALLOC_ARRAY(claimed, n);
	for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
		int rc;

		sb_err_clear(&err);
		if (!svc_outbox_name_ok(names[i])) {
			rc = svc_pipeline_reject_new(d->pipeline, d->store, names[i],
						     "the folder name must be 1-128 characters of "
						     "A-Z a-z 0-9 . _ - not starting with '.'",
						     &err);
		} else {
			rc = svc_outbox_claim_unsynced(d->outbox, names[i], &err);
			if (rc == 0)
				claimed[nclaimed++] = names[i];
			else if (rc == SB_EINVAL) {
				char why[sizeof(err.msg)];

				snprintf(why, sizeof(why), "%s", err.msg);
				rc = svc_pipeline_reject_new(d->pipeline, d->store, names[i], why,
							     &err);
			}
		}
		if (rc < 0 && rc != SB_ENOTFOUND)
			sb_log(SB_LOG_WARN, "outbox", "cannot take in new/ entry: %s", err.msg);
	}
	/* Every claim on disk before any of them is worked on: one sync for the batch. */
	if (nclaimed)
		svc_outbox_sync_work(d->outbox);
	queue_names(d, claimed, nclaimed);
	free(claimed);
	svc_outbox_names_free(names, n);
}

/* Queue every folder in work/: at start-up (crash recovery) and after errors. */
static void scan_work(struct daemon *d)
{
	struct sb_err err = SB_ERR_INIT;
	char **names = NULL;
	size_t n = 0;

	if (svc_outbox_list(d->outbox, "work", &names, &n, &err) < 0) {
		sb_log(SB_LOG_ERROR, "outbox", "%s", err.msg);
		return;
	}
	queue_names(d, names, n);
	svc_outbox_names_free(names, n);
}

/* Queue the acts that are due, keeping the queue short so new arrivals are not starved. */
static int64_t dispatch_due(struct daemon *d)
{
	struct sb_err err = SB_ERR_INIT;
	char **names = NULL;
	size_t n = 0, room;
	int64_t now = sb_now_ms(), next = INT64_MAX;

	pthread_mutex_lock(&d->lock);
	busy_expire(d, now);
	room = d->qlen < (size_t)d->o->workers * 4 ? (size_t)d->o->workers * 4 - d->qlen : 0;
	pthread_mutex_unlock(&d->lock);
	if (room && svc_pipeline_due(d->pipeline, d->store, now, room + (size_t)d->o->workers,
				     &names, &n, &err) < 0) {
		sb_log(SB_LOG_WARN, "daemon", "%s", err.msg);
		return now + COOLDOWN_MS;
	}
	queue_names(d, names, n);
	svc_outbox_names_free(names, n);
	if (svc_pipeline_next_due(d->pipeline, d->store, &next, &err) < 0)
		return now + COOLDOWN_MS;
	pthread_mutex_lock(&d->lock);
	/* Acts due but busy come back when their worker wakes us; cooling ones when they expire. */
	for (size_t i = 0; i < d->nbusy; i++)
		if (d->busy[i].cooldown_until && d->busy[i].cooldown_until < next)
			next = d->busy[i].cooldown_until;
	pthread_mutex_unlock(&d->lock);
	return next;
}

static void notify_status(struct daemon *d, const char *prefix)
{
	struct svc_metrics m;

	(void)d;
	svc_metrics_get(&m);
	sd_notifyf(0, "%sSTATUS=queue %lld, in flight %lld, taken in %llu, retries %llu", prefix,
		   (long long)m.queue_depth, (long long)m.in_flight, (unsigned long long)m.intake,
		   (unsigned long long)m.retries);
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int open_wake_pipe(struct sb_err *err)
{
	if (pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return sb_err_set(err, SB_EIO, errno, "daemon: pipe: %s", strerror(errno));
	return 0;
}

static void close_wake_pipe(void)
{
	for (int i = 0; i < 2; i++) {
		if (wake_pipe[i] >= 0)
			close(wake_pipe[i]);
		wake_pipe[i] = -1;
	}
}

static void main_loop(struct daemon *d, int inotify_fd)
{
	uint64_t watchdog_us = 0;
	int64_t now = sb_mono_ms(), next_rescan = now + d->o->rescan_ms, next_ping = INT64_MAX;
	int64_t next_status = now + STATUS_EVERY_MS;

	if (sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us >= 2000)
		next_ping = now;
	while (!got_stop) {
		struct pollfd fds[2] = { { wake_pipe[0], POLLIN, 0 }, { inotify_fd, POLLIN, 0 } };
		int64_t due, timeout;
		char junk[256];

		now = sb_mono_ms();
		if (next_ping <= now) {
			sd_notify(0, "WATCHDOG=1");
			next_ping = now + (int64_t)(watchdog_us / 2000);
		}
		if (next_status <= now) {
			notify_status(d, "");
			next_status = now + STATUS_EVERY_MS;
		}
		if (got_hup) {
			got_hup = 0;
			if (sb_log_reopen() < 0)
				sb_log(SB_LOG_ERROR, "daemon", "cannot reopen the log file");
			else
				sb_log(SB_LOG_INFO, "daemon", "log reopened");
		}
		if (next_rescan <= now) {
			bool work;

			pthread_mutex_lock(&d->lock);
			work = d->rescan_work;
			d->rescan_work = false;
			pthread_mutex_unlock(&d->lock);
			scan_new(d);
			if (work)
				scan_work(d);
			next_rescan = now + d->o->rescan_ms;
		}
		due = dispatch_due(d);
		timeout = next_rescan - now;
		if (next_ping - now < timeout)
			timeout = next_ping - now;
		if (next_status - now < timeout)
			timeout = next_status - now;
		/*
		 * An act already due was not queued because a worker holds it or the
		 * queue is full: a worker's wake-up brings us back, no timer needed
		 * (a timer here would spin for as long as the step runs).
		 */
		if (due != INT64_MAX && due > sb_now_ms() && due - sb_now_ms() < timeout)
			timeout = due - sb_now_ms();
		if (timeout < 0)
			timeout = 0;
		if (poll(fds, 2, (int)(timeout > 60000 ? 60000 : timeout)) > 0) {
			while (read(wake_pipe[0], junk, sizeof(junk)) > 0)
				;
			if (fds[1].revents & POLLIN && svc_outbox_watch_drain(inotify_fd) > 0)
				scan_new(d);
		}
	}
}

int svc_daemon_run(const struct svc_daemon_opts *o, const struct svc_steps *steps,
		   struct sb_err *err)
{
	struct daemon d;
	struct svc_web *web = NULL;
	pthread_t *threads = NULL;
	int inotify_fd = -1, started = 0, rc;

	SB_ASSERT(o->workers >= 1 && o->rescan_ms > 0);
	memset(&d, 0, sizeof(d));
	d.o = o;
	d.steps = steps;
	pthread_mutex_init(&d.lock, NULL);
	pthread_cond_init(&d.cond, NULL);
	pthread_cond_init(&d.tracker_cond, NULL);
	got_stop = 0;
	got_hup = 0;
	svc_metrics_reset();
	rc = open_wake_pipe(err);
	/* First, so that a SIGTERM during start-up is a clean stop too. */
	if (rc == 0)
		install_signals();
	if (rc == 0)
		rc = svc_outbox_open(&d.outbox, o->outbox_dir, err);
	if (rc == 0)
		rc = svc_store_open_shared(&d.store, o->store_path, o->busy_timeout_ms, err);
	if (rc == 0)
		rc = svc_steps_migrate_all(svc_store_db(d.store), err);
	/* On the connection every worker shares, before any of them starts. */
	if (rc == 0)
		rc = svc_store_audit_key_load(d.store, o->cfg, err);
	if (rc == 0)
		rc = svc_outbox_watch(d.outbox, &inotify_fd, err);
	if (rc == 0 && o->web_listen)
		rc = svc_web_start(&web, o->web_listen, o->store_path, o->busy_timeout_ms, err);
	if (rc < 0)
		goto cleanup;
	svc_pipeline_new(&d.pipeline, o->cfg, d.outbox, steps, &o->pipeline);
	/* A state change is on disk before the platform call that follows it (decision 0009). */
	sb_http_before_request(svc_store_barrier);
	sb_http_after_request(svc_metrics_request);
	SB_ALLOC_ARRAY(threads, (size_t)o->workers + 1);
	for (; started < o->workers + (steps->stream_read ? 1 : 0); started++) {
		if (pthread_create(&threads[started], NULL,
				   started < o->workers ? worker_main : tracker_main, &d) != 0) {
			rc = sb_err_set(err, SB_EINTERNAL, errno, "daemon: cannot start worker %d",
					started);
			atomic_store(&d.stop, true);
			goto join;
		}
	}
	/* Recovery first: whatever a crash left in work/ resumes before new acts are taken. */
	scan_work(&d);
	scan_new(&d);
	if (web)
		sb_log(SB_LOG_INFO, "daemon", "running workers=%d outbox=%s web_port=%u",
		       o->workers, o->outbox_dir, svc_web_port(web));
	else
		sb_log(SB_LOG_INFO, "daemon", "running workers=%d outbox=%s web=off", o->workers,
		       o->outbox_dir);
	notify_status(&d, "READY=1\n");
	main_loop(&d, inotify_fd);
	sb_log(SB_LOG_INFO, "daemon", "stopping: letting steps in flight finish");
	sd_notify(0, "STOPPING=1");
join:
	pthread_mutex_lock(&d.lock);
	atomic_store(&d.stop, true);
	pthread_cond_broadcast(&d.cond);
	pthread_cond_broadcast(&d.tracker_cond);
	pthread_mutex_unlock(&d.lock);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (rc == 0)
		sb_log(SB_LOG_INFO, "daemon", "stopped");
cleanup:
	sb_http_before_request(NULL);
	sb_http_after_request(NULL);
	svc_web_stop(web);
	if (inotify_fd >= 0)
		close(inotify_fd);
	for (size_t i = 0; i < d.qlen; i++)
		free(d.queue[i]);
	free(d.queue);
	for (size_t i = 0; i < d.nbusy; i++)
		free(d.busy[i].name);
	free(d.busy);
	free(threads);
	svc_pipeline_free(d.pipeline);
	svc_store_close(d.store);
	svc_outbox_free(d.outbox);
	close_wake_pipe();
	pthread_cond_destroy(&d.cond);
	pthread_cond_destroy(&d.tracker_cond);
	pthread_mutex_destroy(&d.lock);
	return rc;
}
