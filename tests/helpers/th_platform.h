/*
 * A fake platform behind struct svc_steps, for the unit tests of the
 * pipeline's scheduler (NOT end-to-end proof: the real steps are the SEND,
 * PDND, AgID and protocol clients). It keeps its "remote" state in files
 * under a ledger folder, so it survives a SIGKILL of the process driving
 * it, and it is idempotent the way the real platforms are asked to be:
 * one protocol number, one notification, one registration per receipt
 * for each act, however often a step is replayed.
 *
 * The ledger's log file gets one line per remote side effect:
 *	"protocol <act>", "notification <act>", "receipt <act> <category>".
 */
#ifndef TH_PLATFORM_H
#define TH_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "svc_pipeline.h"

struct th_platform {
	char *dir;                 /* ledger folder (owned) */
	unsigned temp_pct;         /* share of step calls failing with SB_ETEMP */
	unsigned temp_first;       /* each step fails with SB_ETEMP this many times per act first */
	long retry_after;          /* err->retry_after of the injected failures (-1: none) */
	unsigned delay_us;         /* sleep in each step: widens the windows a SIGKILL can hit */
	const char *reject_act;    /* check rejects this act with two problems */
	const char *refuse_act;    /* acceptance refuses this act */
	const char *fail_act;      /* upload fails permanently (SB_EIO) for this act */
	bool stream;               /* acceptance publishes two events per act on a stream,
				      and track waits for them (job->events) */
};

/* A platform with its ledger in a new folder under dir_parent. */
void th_platform_init(struct th_platform *p, const char *dir_parent);
void th_platform_release(struct th_platform *p);
/* Every step set, worker_init/release included; stream_read when p->stream. */
void th_platform_steps(struct th_platform *p, struct svc_steps *out);
/* Lines of the log equal to line. */
int th_platform_count(const struct th_platform *p, const char *line);
/* Calls of step (e.g. "upload") made for act_id, successful or not. */
int th_platform_calls(const struct th_platform *p, const char *step, const char *act_id);



/*
 * Two act.json texts naming one document "atto.pdf": a valid one, and the
 * same without subject and with a wrong tax code check character.
 */
extern const char th_act_good[];
extern const char th_act_broken[];

/*
 * Publish fixtures/acts/<fixture> as act <id> in the outbox at root, the way
 * a writer does: copy into tmp/<id>, then one rename into new/<id>.
 */
void th_outbox_publish(const char *root, const char *fixture, const char *id);
/* Same with an act.json given as text and one valid PDF (atto.pdf) beside it. */
void th_outbox_publish_json(const char *root, const char *id, const char *act_json);

/* Entries of <root>/<sub> not starting with '.'; 0 when the folder is missing. */
size_t th_outbox_entries(const char *root, const char *sub);

/* Sleep ms milliseconds. */
void th_sleep_ms(int64_t ms);

#endif
