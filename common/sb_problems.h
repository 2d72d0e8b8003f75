/*
 * A list of problems found while checking something as a whole (a
 * configuration file, an act manifest), so that a user sees every mistake
 * at once instead of one per run. Each problem has a location ("act.json
 * recipients[0].taxId", "send-bridge.ini:12 [send] base_url") and a message.
 * At most SB_MAX_PROBLEMS are kept; the rest are counted in dropped.
 */
#ifndef SB_PROBLEMS_H
#define SB_PROBLEMS_H

#include <stddef.h>

struct sb_problem {
	char *where;
	char *msg;
};

struct sb_problems {
	struct sb_problem *items;
	size_t n;
	size_t dropped;
};

#define SB_PROBLEMS_INIT { NULL, 0, 0 }

void sb_problems_init(struct sb_problems *p);
/* Free every entry; NULL is fine. */
void sb_problems_release(struct sb_problems *p);
/* Record one problem (copies both texts). */
void sb_problems_add(struct sb_problems *p, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Total found, including the dropped ones. */
size_t sb_problems_count(const struct sb_problems *p);

#endif
