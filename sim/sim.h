/*
 * send-sim internals shared by the platform stand-ins (sim_*.c). The
 * simulators use common/ only, never the client modules they check.
 *
 * One HTTP server (libmicrohttpd) answers for every platform under its own
 * path prefix; a platform file provides a handler that claims the requests
 * it knows. Handlers run on the server's threads and take sim->lock around
 * shared state.
 */
#ifndef SIM_H
#define SIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sb_buf.h"

struct MHD_Connection;

struct sim_faults {
	unsigned latency_ms;      /* added to every platform reply */
	unsigned pct_5xx;         /* share of platform calls answered 503 */
	unsigned pct_429;         /* share answered 429 with Retry-After */
	unsigned pct_drop;        /* share whose connection is closed without a reply */
	unsigned pct_lost;        /* share carried out, then closed without the reply */
	unsigned retry_after_s;   /* Retry-After of injected 429 */
	uint64_t fail_nth;        /* when > 0, the Nth platform call (from 1) is answered 503 */
};

struct sim {
	pthread_mutex_t lock;
	struct sim_faults faults;
	uint64_t calls;           /* platform calls seen, for fail_nth */
	uint64_t seed;            /* PRNG state for fault shares */
	char base_url[128];       /* http://127.0.0.1:PORT */
	void *send;               /* per-platform state, owned by its sim_*.c */
	void *protocol;           /* sim_proto.c: the vendor protocol system's register */
	void *pdnd;               /* PDND, ANPR and INAD stand-ins (sim_pdnd.c) */
};

struct sim_request {
	const char *method;
	const char *path;          /* without the query string */
	struct MHD_Connection *conn;
	const char *body;          /* NUL-terminated copy of the body */
	size_t body_len;
	struct sb_buf *own;        /* where body lives: sim_request_take_body */
};

/*
 * Stored bytes (an uploaded file) shared by reference: a download sends them
 * as they are, with no copy of its own, and a new upload of the same key
 * replaces them without pulling them from under a download in flight.
 */
struct sim_blob;

/* The body as a blob, taken from the request (rq->body is empty afterwards). */
struct sim_blob *sim_request_take_body(const struct sim_request *rq);
struct sim_blob *sim_blob_ref(struct sim_blob *b);
void sim_blob_unref(struct sim_blob *b);    /* NULL is fine */
const char *sim_blob_data(const struct sim_blob *b);
size_t sim_blob_len(const struct sim_blob *b);

#define SIM_MAX_HEADERS 8

struct sim_response {
	unsigned status;
	struct sb_buf body;
	/*
	 * Everything here is owned, nothing borrowed from a platform's state: the
	 * reply is sent after the handler has released sim->lock and after the
	 * latency sleep, when another request may have moved that state (a
	 * borrowed content type crashed send-sim once the file table grew).
	 */
	char content_type[64];             /* "" for none; set with sim_reply_type */
	char *headers[SIM_MAX_HEADERS];   /* "Name: value", owned */
	size_t nheaders;
	bool drop;                         /* close the connection without answering */
	struct sim_blob *blob;             /* a reference: sent as the body instead of body */
};

/* Request helpers: header (case-insensitive) and query argument, borrowed; NULL if absent. */
const char *sim_header(const struct sim_request *rq, const char *name);
const char *sim_query(const struct sim_request *rq, const char *name);

/* Response helpers. */
void sim_reply_json(struct sim_response *rs, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void sim_reply_header(struct sim_response *rs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Set (copy) the reply's Content-Type; NULL for none. */
void sim_reply_type(struct sim_response *rs, const char *type);

/* A platform's handler: returns true when it claimed the request (and filled rs). */
typedef bool (*sim_handler_fn)(struct sim *s, const struct sim_request *rq,
			       struct sim_response *rs);

/* Platform entry points (each in its own file). */
bool sim_admin_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs);
bool sim_proto_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs);
bool sim_send_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs);
/* SEND: take the --send-* options out of argv (0, or -1 after a message); usage text. */
int sim_send_init(struct sim *s, int *argc, char **argv);
void sim_send_usage(FILE *out);

/* A random number in [0, n) from the simulator's PRNG (call with s->lock held). */
uint64_t sim_rand(struct sim *s, uint64_t n);

#endif
