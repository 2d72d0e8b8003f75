/*
 * Helpers of the end-to-end tests (tests/e2e/): a protocol seal made with
 * the openssl tool, the AgID XSD, one-value SQL queries on the store the
 * daemon wrote, and SEND's ledger in send-sim.
 */
#ifndef TH_E2E_H
#define TH_E2E_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sqlite3;

/*
 * dir/seal.key (RSA 2048, 0600) and dir/seal.crt (self-signed), made with
 * openssl, and the AgID segnatura XSD from ../shared: a [protocol]
 * section with them, owned. The back end is left to its default
 * (embedded); a later [protocol] section may set backend = rest.
 */
char *th_e2e_protocol_ini(const char *dir);

/* One integer from sql with an optional text parameter ?1 (NULL: none); fails the test on error. */
int64_t th_e2e_int(struct sqlite3 *db, const char *sql, const char *param);
/* path opened read-only, closed when the test's scope ends (th.h); fails the test on error. */
struct sqlite3 *th_e2e_db(const char *path);
/* One text from sql with parameter ?1; owned, or NULL when there is no row or it is NULL. */
char *th_e2e_text(struct sqlite3 *db, const char *sql, const char *param);

/* GET sim_url/_sim/send/ledger[?paProtocolNumber=P] (protocol may be NULL): its "notifications". */
int64_t th_e2e_ledger_notifications(const char *sim_url, const char *protocol);
/* The same for any integer of the ledger ("notifications", "cancelled", ...). */
int64_t th_e2e_ledger_int(const char *sim_url, const char *protocol, const char *key);
/* Platform calls send-sim has received (its /_sim/faults "calls"; /_sim/ ones not counted). */
int64_t th_e2e_sim_calls(const char *sim_url);
/* The value of one series (name and labels, as printed) of the daemon's /metrics on port. */
int64_t th_e2e_metric(unsigned port, const char *series);

/*
 * SEND's price of a pagoPA notice as send-sim reports it to the sender
 * (GET /delivery/v2.3/price/80012345676/{noticeCode}, key sim-send-key):
 * totalPrice in eurocent.
 */
int64_t th_e2e_sim_price(const char *sim_url, const char *notice_code);

/*
 * One request to send-sim: path under sim_url (a SEND path gets the key
 * sim-send-key, as the daemon's SEND client sends it; a /_sim/ path none),
 * body may be NULL. Returns the HTTP status; fails the test when there was
 * no exchange.
 */
long th_e2e_sim_call(const char *sim_url, const char *method, const char *path,
		     const char *body);

/*
 * Wait (up to 60 s) until sql, on the store at db_path with parameter ?1
 * (may be NULL), gives an integer >= want; the daemon's log is shown when
 * it does not. Errors count as "not yet": the daemon may still be making
 * its tables.
 */
void th_e2e_wait_int(const char *db_path, const char *sql, const char *param, int64_t want,
		     const char *log);

/*
 * Wait (up to timeout_s) until n acts are in root's done/ or rejected/. A
 * daemon *pid (th_e2e_run) that ends meanwhile fails the test at once, with
 * its exit status; both failures show the end of its log.
 */
void th_e2e_wait_finished(const char *root, size_t n, pid_t *pid, const char *log,
			  int timeout_s);

/*
 * Write dir/<name>.ini for a daemon over dir/outbox (its new/ created) and
 * dir/<name>.db, SEND at sim_url, the embedded protocol register, office
 * polizia-municipale with operator agente.bianchi, short retries; extra is
 * appended ([outbox] keys may not be repeated). Returns the path, owned.
 */
char *th_e2e_config(const char *dir, const char *name, const char *sim_url, int workers,
		    const char *extra);

/* `send-bridge run -c cfg` with its output in log (th_spawn). */
pid_t th_e2e_run(const char *cfg, const char *log);

/*
 * The sample act of the end-to-end tests as act.json text (one PF recipient
 * with an address, atto.pdf, no payment), numbered n, with a PEC when pec.
 * Owned.
 */
char *th_e2e_act_json(int n, bool pec);

#endif
