/*
 * The fake platform of th_platform.h. Each remote object is a file made
 * with O_EXCL, so a replayed step finds it instead of making a second one.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "th.h"
#include "th_platform.h"

const char th_act_good[] =
	"{\"version\":1,\"office\":\"polizia-municipale\","
	"\"operator\":{\"userId\":\"agente.bianchi\"},"
	"\"subject\":\"Verbale n. 7/2026\",\"taxonomyCode\":\"010101P\","
	"\"physicalCommunicationType\":\"REGISTERED_LETTER_890\","
	"\"feePolicy\":{\"type\":\"FLAT_RATE\"},"
	"\"recipients\":[{\"type\":\"PF\",\"taxId\":\"TSTMRA80A01H501C\","
	"\"denomination\":\"Mario Test\","
	"\"physicalAddress\":{\"address\":\"Via dei Test 1\",\"zip\":\"00100\","
	"\"municipality\":\"Roma\","
	"\"province\":\"RM\"}}],\"documents\":[{\"file\":\"atto.pdf\",\"title\":\"Verbale\"}]}";

/* The same act with no subject and a wrong check character in the tax code. */
const char th_act_broken[] =
	"{\"version\":1,\"office\":\"polizia-municipale\","
	"\"operator\":{\"userId\":\"agente.bianchi\"},"
	"\"taxonomyCode\":\"010101P\","
	"\"physicalCommunicationType\":\"REGISTERED_LETTER_890\","
	"\"feePolicy\":{\"type\":\"FLAT_RATE\"},"
	"\"recipients\":[{\"type\":\"PF\",\"taxId\":\"TSTMRA80A01H501X\","
	"\"denomination\":\"Mario Test\","
	"\"physicalAddress\":{\"address\":\"Via dei Test 1\",\"zip\":\"00100\","
	"\"municipality\":\"Roma\","
	"\"province\":\"RM\"}}],\"documents\":[{\"file\":\"atto.pdf\",\"title\":\"Verbale\"}]}";

void th_platform_init(struct th_platform *p, const char *dir_parent)
{
	memset(p, 0, sizeof(*p));
	p->dir = sb_xasprintf("%s/ledger", dir_parent);
	th_mkdirs(p->dir);
	p->retry_after = -1;
}

void th_platform_release(struct th_platform *p)
{
	free(p->dir);
	p->dir = NULL;
}

static void log_line(const struct th_platform *p, const char *fmt, const char *a, const char *b)
{
	char *path = sb_xasprintf("%s/log", p->dir), line[512];
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	int n = snprintf(line, sizeof(line), fmt, a, b);

	/* One write(2) with O_APPEND: lines from concurrent workers never interleave. */
	if (fd < 0 || n <= 0 || write(fd, line, (size_t)n) != n)
		abort();
	close(fd);
	free(path);
}

/*
 * The remote object <act>.<what>: made with value if absent (true), else its
 * stored value is copied to out (false).
 */
static bool once(const struct th_platform *p, const char *act, const char *what,
		 const char *value, char *out, size_t out_size)
{
	char *path = sb_xasprintf("%s/%s.%s", p->dir, act, what), *tmp;
	bool made = false;
	int fd;

	/* Written to a temp name and linked into place: the object appears whole or not at all. */
	tmp = sb_xasprintf("%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, value, strlen(value)) != (ssize_t)strlen(value))
		abort();
	close(fd);
	if (link(tmp, path) == 0)
		made = true;
	else if (errno != EEXIST)
		abort();
	unlink(tmp);
	free(tmp);
	if (out) {
		char *got = th_read(path, NULL);

		if (!got)
			abort();
		snprintf(out, out_size, "%s", got);
		free(got);
	}
	free(path);
	return made;
}

/* Count one call of step for act; returns the number of calls before this one. */
static int count_call(const struct th_platform *p, const char *act, const char *step)
{
	char *path = sb_xasprintf("%s/%s.calls.%s", p->dir, act, step);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	off_t before;

	if (fd < 0)
		abort();
	before = lseek(fd, 0, SEEK_END);
	if (write(fd, "x", 1) != 1)
		abort();
	close(fd);
	free(path);
	return (int)before;
}

int th_platform_calls(const struct th_platform *p, const char *step, const char *act_id)
{
	char *path = sb_xasprintf("%s/%s.calls.%s", p->dir, act_id, step);
	size_t len = 0;
	char *txt = th_read(path, &len);

	free(path);
	free(txt);
	return (int)len;
}

int th_platform_count(const struct th_platform *p, const char *line)
{
	char *path = sb_xasprintf("%s/log", p->dir), *txt = th_read(path, NULL), *save = NULL;
	int n = 0;

	free(path);
	if (!txt)
		return 0;
	for (char *l = strtok_r(txt, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		n += !strcmp(l, line);
	free(txt);
	return n;
}

/* Common prologue: count the call, sleep, inject temporary failures. */
static int enter(const struct th_platform *p, const struct svc_job *job, const char *step,
		 struct sb_err *err)
{
	int before = count_call(p, job->act_id, step);
	uint32_t r;

	if (p->delay_us) {
		struct timespec ts = { 0, (long)p->delay_us * 1000L };

		nanosleep(&ts, NULL);
	}
	sb_random_bytes(&r, sizeof(r));
	if ((unsigned)before < p->temp_first || r % 100 < p->temp_pct) {
		sb_err_set(err, SB_ETEMP, 0, "%s: injected 503 (call %d)", step, before + 1);
		err->http = 503;
		err->retry_after = p->retry_after;
		return SB_ETEMP;
	}
	return 0;
}

static bool is(const char *want, const struct svc_job *job)
{
	return want && !strcmp(want, job->act_id);
}

static int step_check(void *wctx, const struct svc_job *job, struct svc_step_result *res,
		      struct sb_err *err)
{
	const struct th_platform *p = wctx;
	int rc = enter(p, job, "check", err);

	if (rc < 0)
		return rc;
	if (!job->act || strcmp(job->act->id, job->act_id))
		return sb_err_set(err, SB_EINTERNAL, 0, "check: job without its act");
	if (is(p->reject_act, job)) {
		sb_problems_add(&res->problems, "documents[0].file", "not a PDF/A file");
		sb_problems_add(&res->problems, "documents[0].title", "longer than 512 characters");
		return sb_err_set(err, SB_EINVAL, 0, "2 documents problems");
	}
	return 0;
}

static int step_resolve(void *wctx, const struct svc_job *job, struct svc_step_result *res,
			struct sb_err *err)
{
	(void)res;
	return enter(wctx, job, "resolve", err);
}

static int step_register(void *wctx, const struct svc_job *job, struct svc_step_result *res,
			 struct sb_err *err)
{
	const struct th_platform *p = wctx;
	char number[64];
	int rc = enter(p, job, "register", err);

	if (rc < 0)
		return rc;
	snprintf(number, sizeof(number), "PG/%s", job->act_id);
	if (once(p, job->act_id, "protocol", number, res->value, sizeof(res->value)))
		log_line(p, "protocol %s%s\n", job->act_id, "");
	return 0;
}

static int step_upload(void *wctx, const struct svc_job *job, struct svc_step_result *res,
		       struct sb_err *err)
{
	const struct th_platform *p = wctx;
	int rc = enter(p, job, "upload", err);

	(void)res;
	if (rc < 0)
		return rc;
	if (!job->protocol_number)
		return sb_err_set(err, SB_EINTERNAL, 0, "upload before registration");
	if (is(p->fail_act, job))
		return sb_err_set(err, SB_EIO, 0, "upload: safe storage answered with a bad key");
	return 0;
}

static int step_create(void *wctx, const struct svc_job *job, struct svc_step_result *res,
		       struct sb_err *err)
{
	const struct th_platform *p = wctx;
	char id[64];
	int rc = enter(p, job, "create", err);

	if (rc < 0)
		return rc;
	snprintf(id, sizeof(id), "req-%s", job->act_id);
	/* A replay is SEND's 409 on the same idempotenceToken, reconciled to the first request. */
	if (once(p, job->act_id, "notification", id, res->value, sizeof(res->value)))
		log_line(p, "notification %s%s\n", job->act_id, "");
	return 0;
}

static bool has(const struct th_platform *p, const char *act, const char *what)
{
	char *path = sb_xasprintf("%s/%s.%s", p->dir, act, what);
	bool ok = access(path, F_OK) == 0;

	free(path);
	return ok;
}

/* One line "<event id> <iun> <category>" on the stream file. */
static void stream_append(const struct th_platform *p, const char *act, const char *iun, int n,
			  const char *category)
{
	char *path = sb_xasprintf("%s/stream", p->dir), line[256];
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	int len = snprintf(line, sizeof(line), "evt-%s-%d %s %s\n", act, n, iun, category);

	if (fd < 0 || len <= 0 || write(fd, line, (size_t)len) != len)
		abort();
	close(fd);
	free(path);
}

/* The stream: lines after position (a line count), at most 50 per read. */
static int stream_read(void *wctx, const char *position, struct svc_event_batch *out,
		       struct sb_err *err)
{
	const struct th_platform *p = wctx;
	char *path = sb_xasprintf("%s/stream", p->dir), *txt = th_read(path, NULL), *save = NULL;
	uint64_t from = 0, line = 0;
	uint32_t r;

	free(path);
	sb_random_bytes(&r, sizeof(r));
	if (r % 100 < p->temp_pct) {
		free(txt);
		return sb_err_set(err, SB_ETEMP, 0, "stream: injected 503");
	}
	if (position && sb_parse_u64z(position, UINT64_MAX, &from) < 0)
		abort();
	for (char *l = txt ? strtok_r(txt, "\n", &save) : NULL; l && line < from + 50;
	     l = strtok_r(NULL, "\n", &save)) {
		char id[128], iun[64], cat[64], req[128];
		int got;

		if (line++ < from)
			continue;
		/* "id iun category [notificationRequestId]" */
		got = sscanf(l, "%127s %63s %63s %127s", id, iun, cat, req);
		if (got < 3)
			abort();
		svc_event_batch_add(out, id, got == 4 ? req : NULL, iun, cat,
				    "2026-11-24T10:00:00Z", "{\"fake\":true}");
	}
	free(txt);
	out->position = sb_xasprintf("%llu", (unsigned long long)line);
	out->retry_after_ms = -1;
	return 0;
}

static int step_acceptance(void *wctx, const struct svc_job *job, struct svc_step_result *res,
			   struct sb_err *err)
{
	const struct th_platform *p = wctx;
	char iun[64];
	int rc = enter(p, job, "acceptance", err);

	if (rc < 0)
		return rc;
	if (!job->request_id)
		return sb_err_set(err, SB_EINTERNAL, 0, "acceptance without a request id");
	/* SEND validates asynchronously: the first look finds it still in progress. */
	if (once(p, job->act_id, "validating", "1", NULL, 0)) {
		res->pending = true;
		return 0;
	}
	if (is(p->refuse_act, job)) {
		sb_problems_add(&res->problems, "FILE_SHA_ERROR", "sha256 of documents[0] differs");
		return sb_err_set(err, SB_EREJECT, 0, "notification refused: FILE_SHA_ERROR");
	}
	snprintf(iun, sizeof(iun), "IUN-%s", job->act_id);
	once(p, job->act_id, "iun", iun, res->value, sizeof(res->value));
	if (p->stream && !has(p, job->act_id, "published")) {
		/* Killed between these lines, a replay publishes the events again: same ids. */
		stream_append(p, job->act_id, iun, 1, "REQUEST_ACCEPTED");
		stream_append(p, job->act_id, iun, 2, "SEND_DIGITAL_FEEDBACK");
		once(p, job->act_id, "published", "1", NULL, 0);
	}
	return 0;
}

static bool has_receipt(const struct svc_job *job, const char *key)
{
	for (size_t i = 0; i < job->nreceipts; i++)
		if (!strcmp(job->receipts[i], key))
			return true;
	return false;
}

static int step_track(void *wctx, const struct svc_job *job, struct svc_step_result *res,
		      struct sb_err *err)
{
	static const char *const cats[] = { "SENDER_ACK", "DIGITAL_DELIVERY" };
	const struct th_platform *p = wctx;
	int rc = enter(p, job, "track", err);

	if (rc < 0)
		return rc;
	if (!job->iun || strcmp(job->iun + 4, job->act_id))
		return sb_err_set(err, SB_EINTERNAL, 0, "track without the act's IUN");
	if (p->stream) {
		size_t mine = 0;

		for (size_t i = 0; i < job->nevents; i++)
			mine += !strcmp(job->events[i].iun, job->iun);
		if (mine != job->nevents)
			return sb_err_set(err, SB_EINTERNAL, 0, "track given another act's events");
		/* The acceptance receipt needs the first event, the delivery the second. */
		if (job->nevents < job->nreceipts + 1) {
			res->pending = true;
			return 0;
		}
	}
	/* One new legal fact per call: the acceptance receipt, then the delivery. */
	for (size_t i = 0; i < SB_ARRAY_SIZE(cats); i++) {
		struct svc_receipt *r = &res->receipts[0];
		char key[256];

		snprintf(key, sizeof(key), "%s-%s", cats[i], job->act_id);
		if (has_receipt(job, key))
			continue;
		snprintf(r->key, sizeof(r->key), "%s", key);
		snprintf(r->category, sizeof(r->category), "%s", cats[i]);
		if (once(p, job->act_id, cats[i], "registered", NULL, 0))
			log_line(p, "receipt %s %s\n", job->act_id, cats[i]);
		snprintf(r->protocol_number, sizeof(r->protocol_number), "PG/in/%zu", i);
		res->nreceipts = 1;
		res->delivering = i == 0;
		res->closed = i == 1;
		if (res->closed)
			res->cost_cents = 1234;
		return 0;
	}
	res->closed = true;
	return 0;
}

static int worker_init(void *data, void **wctx_out, struct sb_err *err)
{
	(void)err;
	*wctx_out = data;
	return 0;
}

static void worker_release(void *data, void *wctx)
{
	(void)data;
	(void)wctx;
}

void th_platform_steps(struct th_platform *p, struct svc_steps *out)
{
	memset(out, 0, sizeof(*out));
	out->data = p;
	out->worker_init = worker_init;
	out->worker_release = worker_release;
	out->check = step_check;
	out->resolve = step_resolve;
	out->register_protocol = step_register;
	out->upload = step_upload;
	out->create = step_create;
	out->acceptance = step_acceptance;
	out->track = step_track;
	out->stream_read = p->stream ? stream_read : NULL;
}

static void publish_dir(const char *root, const char *tmp, const char *id)
{
	char *dst = sb_xasprintf("%s/new/%s", root, id);

	if (rename(tmp, dst) < 0)
		abort();
	free(dst);
}

void th_outbox_publish(const char *root, const char *fixture, const char *id)
{
	char *src = th_fixture(fixture), *tmp = sb_xasprintf("%s/tmp/%s", root, id);

	th_mkdirs(tmp);
	th_rmrf(tmp);
	th_copy_tree(src, tmp);
	publish_dir(root, tmp, id);
	free(src);
	free(tmp);
}

void th_outbox_publish_json(const char *root, const char *id, const char *act_json)
{
	char *tmp = sb_xasprintf("%s/tmp/%s", root, id), *file = sb_xasprintf("%s/act.json", tmp);
	char *pdf = th_fixture("acts/fine-pagopa/verbale.pdf");
	char *dst = sb_xasprintf("%s/atto.pdf", tmp);
	size_t len = 0;
	char *bytes;

	th_mkdirs(tmp);
	th_write_str(file, act_json, 0640);
	bytes = th_read(pdf, &len);
	if (!bytes)
		abort();
	th_write(dst, bytes, len, 0640);
	publish_dir(root, tmp, id);
	free(bytes);
	free(dst);
	free(pdf);
	free(file);
	free(tmp);
}

size_t th_outbox_entries(const char *root, const char *sub)
{
	char *dir = sb_xasprintf("%s/%s", root, sub);
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	free(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

void th_sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}
