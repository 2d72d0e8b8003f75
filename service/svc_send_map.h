/*
 * From an act (service/svc_act.h) to SEND's notification description
 * (send/send_client.h): the one place where the act's fields meet SEND's, so
 * that send/ never depends on service/.
 *
 * The preload indexes and the idempotence token derive from the act id, so
 * a replay of the same act after a crash asks SEND for the same things.
 */
#ifndef SVC_SEND_MAP_H
#define SVC_SEND_MAP_H

#include <stddef.h>

#include "sb_err.h"
#include "send_client.h"

struct sb_cfg;
struct svc_act;

struct svc_send_map {
	struct send_notification n;        /* borrows from the act and from this struct */
	struct send_recipient *recipients;
	struct send_payment *payments;     /* all recipients' payments, in order */
	struct send_document *documents;
	struct send_upload *uploads;       /* every file to upload, in a stable order */
	size_t nuploads;
	char *token;
	char *protocol;
	char **idx;                        /* preload indexes (owned) */
	struct {
		struct send_file_ref *ref;      /* where the upload's ref goes */
	} *targets;
};

/*
 * Describe act a for SEND. protocol_number is the registration's number
 * (NULL: the act's own protocol number, else the act id). cfg gives the
 * sender's denomination and the office's SEND group. The act must outlive
 * m. 0 or SB_EINVAL naming the field.
 */
int svc_send_map_init(struct svc_send_map *m, const struct svc_act *a, const struct sb_cfg *cfg,
		      const char *protocol_number, struct sb_err *err);

/* After send_files_upload(m->uploads, m->nuploads): copy the refs into the notification. */
void svc_send_map_apply_uploads(struct svc_send_map *m);

/* Free what init allocated; NULL is fine. */
void svc_send_map_release(struct svc_send_map *m);

#endif
