/*
 * SEND in send-sim: state shared by sim/sim_send*.c only. Every function
 * here runs with sim->lock held.
 */
#ifndef SIM_SEND_INT_H
#define SIM_SEND_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sb_buf.h"
#include "sim.h"

struct ss_file {
	char key[96];
	char secret[40];
	char content_type[24];
	char sha256[48];          /* declared at preload (base64) */
	char actual[48];          /* of the bytes uploaded (base64) */
	char version[40];
	bool uploaded;
	struct sim_blob *blob;    /* the bytes uploaded; NULL before */
};

enum ss_state { SS_WAITING, SS_ACCEPTED, SS_REFUSED };

/* --send-stream-get-fault: what GET /streams/{id} answers instead of that stream. */
enum ss_stream_get_fault {
	SS_STREAM_GET_OK,         /* the stream asked for (default) */
	SS_STREAM_GET_OTHER,      /* 200 about another stream: another streamId */
	SS_STREAM_GET_DENY,       /* the API gateway's 403 explicit deny */
};

/* The API gateway's refusal (AWS API Gateway's wording), the body of its 403s. */
#define SS_GATEWAY_DENY \
	"{\"message\":\"User is not authorized to access this resource with an explicit deny\"}"

struct ss_notif {
	char request_id[40];
	char iun[26];
	char *protocol;
	char *token;              /* "" when absent */
	json_t *request;          /* the body as received */
	int64_t created_ms;
	enum ss_state state;
	json_t *errors;           /* REFUSED: [{code, element, detail}] */
	json_t *timeline;         /* [TimelineElementV28] */
	json_t *history;          /* [{status, activeFrom, relatedTimelineElements}] */
	json_t *pending;          /* [{due, category, recIndex, legalFact, ...}] planned */
	char status[32];
	int64_t sent_ms;
	bool cancelled;
	unsigned outcomes;        /* recipients whose delivery workflow ended */
	unsigned delivered;       /* ... of which reached */
	bool active;              /* listed in sim_send.active */
	int64_t next_due;         /* earliest "due" in pending; 0: not known */
};

struct ss_legal_fact {
	char key[96];
	char category[40];
	char iun[26];
	int rec_index;            /* -1: the notification's */
	unsigned asked;           /* download-metadata requests so far */
};

struct ss_stream {
	char id[37];
	char title[257];
	bool timeline;            /* TIMELINE (else STATUS) */
	int64_t created_ms;
	int64_t disabled_ms;      /* 0: active; else no new events, not counted in the 10 */
	int64_t next_read_ms;     /* an empty read sets it; earlier reads get 429 */
	json_t *events;           /* not yet acknowledged */
};

struct sim_send {
	/* configuration (command line) */
	char *api_key;            /* a key that must come without a voucher */
	char *pdnd_key;           /* a key that needs a PDND voucher */
	char *pa_tax_id;
	unsigned accept_ms, step_ms, stream_interval_ms, legal_fact_retry;
	unsigned cancel_ms;       /* cancellation request to NOTIFICATION_CANCELLED; 0: step_ms */
	char *corrupt_notice;     /* fault: this notice's pagoPA PDF is served
				     with a byte changed */
	enum ss_stream_get_fault stream_get_fault;
	/* state */
	struct ss_file *files;
	size_t nfiles;
	struct ss_notif *notifs;
	size_t nnotifs;
	struct ss_legal_fact *facts;
	size_t nfacts;
	struct ss_stream *streams;
	size_t nstreams;
	uint64_t next_event;
	uint64_t counter;         /* for keys, secrets, versions */
	char salt[2][17];         /* random per run, hex: [0] for keys, [1] for secrets */
	uint64_t bad_auth_uploads; /* uploads/downloads that carried API auth headers */
	/*
	 * Indexes, so that a request never scans every notification, file or
	 * legal fact (that made send-sim's CPU per call grow with the run):
	 * key -> [indices in creation order]. A lookup still checks each
	 * candidate with the full condition, so keys that collide only add
	 * candidates and the answers are those of a scan.
	 */
	json_t *by_notice;        /* "creditorTaxId|noticeCode" of each pagoPa payment -> notifs */
	json_t *by_protocol;      /* paProtocolNumber, idempotenceToken -> notifs */
	json_t *by_request_id;    /* notificationRequestId -> notifs */
	json_t *by_iun;           /* iun -> notifs */
	json_t *by_file;          /* key -> files */
	json_t *by_fact;          /* key -> facts */
	json_t *facts_by_iun;     /* iun -> facts */
	/* Notifications still WAITING or with planned steps, ascending: all ss_advance visits. */
	size_t *active;
	size_t nactive;
};

/* Reply with SEND's Problem JSON: one error {code, element, detail}. */
void ss_problem(struct sim_response *rs, unsigned status, const char *code, const char *element,
		const char *detail);
/* Reply with a JSON value (stolen). */
void ss_reply(struct sim_response *rs, unsigned status, json_t *v);

/* Now in milliseconds, and as ISO 8601 with milliseconds into out (>= 32). */
int64_t ss_now_ms(void);
void ss_iso(int64_t ms, char *out, size_t n);

/*
 * A name no other file, fact or secret of this run or of another run has (32 hex
 * digits into out): the run's salt and a counter, cheaper than random bytes each time.
 */
void ss_unique_hex(struct sim_send *ss, bool secret, char out[33]);

struct ss_file *ss_file_find(struct sim_send *ss, const char *key);
/* Index helpers (see struct sim_send): add i under key; the indices under key, or NULL. */
void ss_index_add(json_t **idx, const char *key, size_t i);
const json_t *ss_index_get(const json_t *idx, const char *key);
/* Notification i has new planned steps (or is new): ss_advance must visit it. */
void ss_activate(struct sim_send *ss, size_t i);
struct ss_notif *ss_notif_by_iun(struct sim_send *ss, const char *iun);

/* Move every notification forward to now: acceptance, timeline, streams. */
void ss_advance(struct sim *s, struct sim_send *ss, int64_t now);

/* Handlers of sim_send_flow.c: return true when they claimed the request. */
bool ss_flow_handle(struct sim *s, struct sim_send *ss, const struct sim_request *rq,
		    struct sim_response *rs);

/* A small valid PDF whose text names the legal fact; written into out. */
void ss_legal_fact_pdf(const struct ss_legal_fact *f, struct sb_buf *out);

void ss_flow_free(struct sim_send *ss);

#endif
