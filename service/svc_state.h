/*
 * The pipeline states of an act (DESIGN.md "Pipeline states"), in order.
 * rejected, refused and failed are final, like closed.
 */
#ifndef SVC_STATE_H
#define SVC_STATE_H

#include <stdbool.h>

enum svc_state {
	SVC_RECEIVED,
	SVC_CHECKED,
	SVC_RESOLVED,
	SVC_REGISTERED,   /* outgoing protocol number assigned */
	SVC_UPLOADED,
	SVC_SUBMITTED,    /* notificationRequestId known */
	SVC_ACCEPTED,     /* IUN known */
	SVC_DELIVERING,
	SVC_CLOSED,
	SVC_REJECTED,     /* bad input, never retried */
	SVC_REFUSED,      /* SEND refused it, with codes */
	SVC_FAILED,       /* gave up after retries, with the last error */
	SVC_STATE_COUNT
};

/* Lower-case name as stored and shown ("received"); NULL for an invalid value. */
const char *svc_state_name(enum svc_state s);
/* Name to state: 0 or SB_EINVAL. */
int svc_state_parse(const char *name, enum svc_state *out);
bool svc_state_final(enum svc_state s);

#endif
