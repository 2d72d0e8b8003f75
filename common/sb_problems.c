/*
 * Problem lists: see sb_problems.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sb_common.h"
#include "sb_problems.h"

void sb_problems_init(struct sb_problems *p)
{
	p->items = NULL;
	p->n = 0;
	p->dropped = 0;
}

void sb_problems_release(struct sb_problems *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->items[i].where);
		free(p->items[i].msg);
	}
	free(p->items);
	sb_problems_init(p);
}

void sb_problems_add(struct sb_problems *p, const char *where, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->n >= SB_MAX_PROBLEMS) {
		p->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->items = sb_xrealloc(p->items, (p->n + 1) * sizeof(*p->items));
	p->items[p->n].where = sb_xstrdup(where);
	p->items[p->n].msg = sb_xstrdup(msg);
	p->n++;
}

size_t sb_problems_count(const struct sb_problems *p)
{
	return p->n + p->dropped;
}
