/*
 * Pipeline state names: see svc_state.h. The names are also the CHECK list
 * of acts.state in the store schema (svc_store.c); keep both in step.
 */
#include <string.h>

#include "sb_common.h"
#include "svc_state.h"

static const char *const names[SVC_STATE_COUNT] = {
	"received", "checked", "resolved", "registered", "uploaded", "submitted",
	"accepted", "delivering", "closed", "rejected", "refused", "failed",
};

const char *svc_state_name(enum svc_state s)
{
	return (unsigned)s < SVC_STATE_COUNT ? names[s] : NULL;
}

int svc_state_parse(const char *name, enum svc_state *out)
{
	for (int i = 0; i < SVC_STATE_COUNT; i++) {
		if (!strcmp(name, names[i])) {
			*out = (enum svc_state)i;
			return 0;
		}
	}
	return SB_EINVAL;
}

bool svc_state_final(enum svc_state s)
{
	return s == SVC_CLOSED || s == SVC_REJECTED || s == SVC_REFUSED || s == SVC_FAILED;
}
