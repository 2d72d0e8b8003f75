/*
 * The real platform steps behind struct svc_steps (svc_pipeline.h): AgID
 * document checks, PDND resolution, protocol registration, SEND upload,
 * create, acceptance, the event stream and tracking with receipts.
 *
 * One struct svc_clients is shared by every worker (configuration, the
 * PDND client with its voucher cache); each worker gets its own context
 * from worker_init: a store connection, a SEND client, a protocol register
 * and an HTTP handle for the e-services, so that no handle is shared
 * between threads.
 *
 * What the steps keep beside the pipeline's tables (the refs of the files
 * uploaded to SEND, the address and domicile each recipient was notified
 * at) lives in tables migrated by svc_steps_store_migrate under meta key
 * "schema.steps".
 */
#ifndef SVC_STEPS_H
#define SVC_STEPS_H

#include "sb_err.h"
#include "svc_pipeline.h"

struct sb_cfg;
struct sqlite3;
struct svc_clients;

/*
 * Build the shared clients from cfg (borrowed: it must outlive the
 * clients). PDND is used when [pdnd] client_id and an e-service ([anpr]
 * c030_url or [inad] base_url) are set; otherwise recipients keep the act's
 * own data. SB_ECONFIG naming the setting at fault. Free with
 * svc_clients_free (NULL is fine).
 */
int svc_clients_new(struct svc_clients **out, const struct sb_cfg *cfg, struct sb_err *err);
void svc_clients_free(struct svc_clients *c);

/* The steps table over c: every step set, stream_read included. Borrowed from c. */
const struct svc_steps *svc_clients_steps(const struct svc_clients *c);

/*
 * Create or upgrade the steps' tables (send_uploads, resolutions) in db;
 * idempotent. Call after svc_store_open. 0, SB_EIO, or SB_ECONFIG when the
 * tables are newer than this build.
 */
int svc_steps_store_migrate(struct sqlite3 *db, struct sb_err *err);

/*
 * Every migration the daemon's store needs: the pipeline's, the protocol
 * register's, PDND's (access trail, cache) and the steps'. Idempotent.
 */
int svc_steps_migrate_all(struct sqlite3 *db, struct sb_err *err);

#endif
