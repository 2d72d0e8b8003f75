/*
 * The outbox folders (DESIGN.md "The outbox contract"), with Maildir
 * semantics:
 *
 *	outbox/tmp/<act-id>/       the writer builds the act here
 *	outbox/new/<act-id>/       one atomic rename publishes it
 *	outbox/work/<act-id>/      send-bridge claims it by atomic rename
 *	outbox/done/<act-id>/      closed acts
 *	outbox/rejected/<act-id>/  rejected, refused and failed acts, with reason.json
 *
 * Nothing is ever deleted and nothing is overwritten: every move uses
 * renameat2(RENAME_NOREPLACE), and a name already taken in done/ or
 * rejected/ gets a suffix (".1", ".2", ...).
 *
 * The functions only touch the file system; they are thread-safe as long as
 * two threads never move the same name at once (the daemon guarantees it
 * with its in-flight set).
 */
#ifndef SVC_OUTBOX_H
#define SVC_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_err.h"

struct svc_outbox;

/* Longest act id (folder name) the outbox accepts. */
#define SVC_OUTBOX_MAX_NAME 128

/*
 * Open the outbox rooted at root (absolute), creating root and its five
 * subfolders (mode 0750) when missing. Free with svc_outbox_free (NULL ok).
 * SB_EIO when a folder cannot be created.
 */
int svc_outbox_open(struct svc_outbox **out, const char *root, struct sb_err *err);
void svc_outbox_free(struct svc_outbox *o);

/* "<root>/<sub>/<name>" (name may be NULL for the folder itself); owned, free(). */
char *svc_outbox_path(const struct svc_outbox *o, const char *sub, const char *name);

/*
 * true when name is acceptable as an act id: 1..SVC_OUTBOX_MAX_NAME bytes of
 * [A-Za-z0-9._-], not starting with '.'. Entries whose name starts with '.'
 * are the writers' business and are never touched.
 */
bool svc_outbox_name_ok(const char *name);

/*
 * The entries of sub ("new" or "work"), sorted, skipping names that start
 * with '.'. *names_out is owned: free with svc_outbox_names_free.
 */
int svc_outbox_list(const struct svc_outbox *o, const char *sub, char ***names_out,
		    size_t *n_out, struct sb_err *err);
void svc_outbox_names_free(char **names, size_t n);

/*
 * Claim new/<name> by renaming it to work/<name>. Returns 0; SB_ENOTFOUND
 * when new/<name> is gone (claimed by someone else); SB_EINVAL when
 * work/<name> already exists (an act with that id is in progress), the
 * name is not acceptable or the entry is a symbolic link; SB_EIO otherwise.
 */
int svc_outbox_claim(const struct svc_outbox *o, const char *name, struct sb_err *err);
/*
 * The same, with the claim on disk only after svc_outbox_sync_work: one
 * directory sync for a batch of claims instead of one each (the daemon
 * claims everything in new/ at once, then syncs, then queues).
 */
int svc_outbox_claim_unsynced(const struct svc_outbox *o, const char *name,
			      struct sb_err *err);
void svc_outbox_sync_work(const struct svc_outbox *o);

/*
 * Move <from>/<name> ("new" or "work") to done/ (ok) or rejected/ (!ok),
 * under name or, when taken, the first free name.N. When reason_json is
 * not NULL it is written first as reason.json inside the folder (atomically:
 * temp file, fsync, rename), or beside it as <final>.reason.json when the
 * entry is not a folder. *final_out (may be NULL) gets the name used,
 * owned. SB_ENOTFOUND when the entry is missing, SB_EIO otherwise.
 */
int svc_outbox_finish(const struct svc_outbox *o, const char *from, const char *name, bool ok,
		      const char *reason_json, char **final_out, struct sb_err *err);

/*
 * Write reason_json as reason.json inside the finished folder <sub>/<name>
 * ("done" or "rejected"), atomically, replacing one there: for news about
 * an act after its folder left work/ (a cancellation at SEND after it
 * closed). SB_ENOTFOUND when the folder is not there, SB_EIO otherwise.
 */
int svc_outbox_write_reason(const struct svc_outbox *o, const char *sub, const char *name,
			    const char *reason_json, struct sb_err *err);

/*
 * An inotify descriptor (non-blocking, close-on-exec) that becomes readable
 * when an entry appears in new/. The caller polls it, calls
 * svc_outbox_watch_drain, then lists new/. Close it with close(2).
 */
int svc_outbox_watch(const struct svc_outbox *o, int *fd_out, struct sb_err *err);
/* Read and discard pending events; returns how many there were. */
int svc_outbox_watch_drain(int fd);

#endif
