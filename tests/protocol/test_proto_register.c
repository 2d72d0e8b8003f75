/*
 * The embedded register: numbering (progressive, 7 digits, per year, no gap
 * and no duplicate under 8 concurrent writers), atomic registration with
 * impronte, protected fields enforced by the store, corrections, annulment,
 * receipts, and every error path. Real SQLite files, real PDFs, keys made
 * by OpenSSL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "th.h"
#include "proto.h"
#include "svc_store.h"
#include "proto_int.h"
#include "proto_fixture.h"

static int setup(void **state)
{
	*state = pf_new("proto-register");
	return 0;
}

static int teardown(void **state)
{
	pf_free(*state);
	return 0;
}

/* SHA-256 of a file by the openssl tool: an answer not computed by the code under test. */
static void openssl_sha256(const char *path, char hex[65])
{
	const char *args[] = { "/usr/bin/openssl", "dgst", "-sha256", "-r", path, NULL };
	struct sb_buf out = SB_BUF_INIT(4096);

	assert_int_equal(pf_run(args, &out, NULL), 0);
	assert_true(out.len > 64);
	memcpy(hex, out.buf, 64);
	hex[64] = '\0';
	sb_buf_release(&out);
}

static sqlite3 *db(struct pf *f)
{
	return svc_store_db(f->store);
}

static void test_proto_register__outgoing_numbers_dates_impronte(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *a = NULL, *b = NULL, *again = NULL, *c = NULL;
	struct pf_act act;
	char hex[65];

	pf_act_init(f, &act, "act-0001");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &a, &err), 0);
	assert_string_equal(a->text, "PG/2026/0000001");
	assert_int_equal(a->id.number, 1);
	assert_int_equal(a->id.year, 2026);
	assert_int_equal(a->dir, PROTO_OUT);
	/* 08:53:20Z is 09:53:20 in Rome in November (CET). */
	assert_string_equal(a->date, "2026-11-18");
	assert_string_equal(a->time, "09:53:20");
	assert_int_equal(a->registered_at, f->now);
	assert_string_equal(a->subject, act.in.subject);
	assert_string_equal(a->act_id, "act-0001");
	assert_int_equal(a->nparties, 2);
	assert_string_equal(a->parties[0].name, "Mario Rossi");
	assert_int_equal(a->parties[1].type, PROTO_PG);
	assert_int_equal(a->ndocs, 2);
	openssl_sha256(f->pdf, hex);
	assert_string_equal(a->docs[0].sha256_hex, hex);
	openssl_sha256(f->pdf2, hex);
	assert_string_equal(a->docs[1].sha256_hex, hex);
	assert_string_equal(a->docs[1].mime_type, "application/pdf");
	assert_false(a->annulled);

	act.in.act_id = "act-0002";
	f->now += 60;
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &b, &err), 0);
	assert_string_equal(b->text, "PG/2026/0000002");

	/* The same act again: the same registration, and no number used up. */
	act.in.act_id = "act-0001";
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &again, &err), 0);
	assert_int_equal(again->id.number, 1);
	assert_int_equal(again->row_id, a->row_id);
	act.in.act_id = "act-0003";
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &c, &err), 0);
	assert_int_equal(c->id.number, 3);
	proto_reg_free(a);
	proto_reg_free(b);
	proto_reg_free(again);
	proto_reg_free(c);
	assert_int_equal(proto_lookup_act(f->p, "act-0002", &b, &err), 0);
	assert_int_equal(b->id.number, 2);
	proto_reg_free(b);
	assert_int_equal(proto_lookup_act(f->p, "no-such-act", &b, &err), SB_ENOTFOUND);
	assert_int_equal(err.code, SB_ENOTFOUND);
	assert_true(err.msg[0] != '\0');

	/* A hash the caller computed at intake is the impronta, in the row and the segnatura. */
	{
		struct sb_buf xml = SB_BUF_INIT(1 << 20), raw = SB_BUF_INIT(64),
			      b64 = SB_BUF_INIT(64);
		struct stat st;

		openssl_sha256(f->pdf, hex);
		assert_int_equal(stat(f->pdf, &st), 0);
		act.docs[0].sha256_hex = hex;
		act.docs[0].size = (uint64_t)st.st_size;
		act.in.act_id = "act-0004";
		assert_int_equal(proto_register_outgoing(f->p, &act.in, &c, &err), 0);
		assert_string_equal(c->docs[0].sha256_hex, hex);
		assert_int_equal(c->docs[0].size, (uint64_t)st.st_size);
		assert_int_equal(proto_segnatura_get(f->p, &c->id, &xml, &err), 0);
		assert_int_equal(sb_hex_decode(hex, 64, &raw), 0);
		sb_base64_encode(raw.buf, raw.len, &b64);
		assert_non_null(strstr(sb_buf_cstr(&xml), sb_buf_cstr(&b64)));
		proto_reg_free(c);
		sb_buf_release(&xml);
		sb_buf_release(&raw);
		sb_buf_release(&b64);
	}
}

static void test_proto_register__year_rollover_in_rome_time(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *r = NULL;
	struct pf_act act;
	char date[11], time_[9];
	int year;

	pf_act_init(f, &act, "act-dec-1");
	f->now = 1798757999;             /* 2026-12-31T22:59:59Z = 23:59:59 in Rome */
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &r, &err), 0);
	assert_string_equal(r->text, "PG/2026/0000001");
	assert_string_equal(r->date, "2026-12-31");
	assert_string_equal(r->time, "23:59:59");
	proto_reg_free(r);
	act.in.act_id = "act-dec-2";
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &r, &err), 0);
	assert_string_equal(r->text, "PG/2026/0000002");
	proto_reg_free(r);

	f->now = 1798758000;             /* 2026-12-31T23:00:00Z = 2027-01-01 00:00:00 in Rome */
	act.in.act_id = "act-jan-1";
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &r, &err), 0);
	assert_string_equal(r->text, "PG/2027/0000001");
	assert_string_equal(r->date, "2027-01-01");
	assert_string_equal(r->time, "00:00:00");
	proto_reg_free(r);

	/* Summer time: 2026-07-01T10:00:00Z is 12:00 in Rome; the last March Sunday switch. */
	proto_rome_time(1782900000, &year, date, time_);
	assert_string_equal(date, "2026-07-01");
	assert_string_equal(time_, "12:00:00");
	proto_rome_time(1774746000 - 1, NULL, date, time_);   /* 2026-03-29T00:59:59Z */
	assert_string_equal(time_, "01:59:59");
	proto_rome_time(1774746000, NULL, date, time_);       /* 01:00:00Z: 03:00 CEST */
	assert_string_equal(time_, "03:00:00");
}

struct worker {
	struct pf *f;
	int index;
	int failures;
	char first_error[256];
};

#define WRITERS 8
#define PER_WRITER 500

static void *writer(void *arg)
{
	struct worker *w = arg;
	struct svc_store *s = NULL;
	struct proto *p = NULL;
	struct proto_opts o = w->f->o;
	struct sb_err err = SB_ERR_INIT;
	struct pf_act act;

	o.clock = NULL;      /* the wall clock: every writer in the same year */
	if (svc_store_open(&s, w->f->db_path, 120000, &err) < 0 ||
	    proto_open(&p, svc_store_db(s), &o, &err) < 0) {
		w->failures = PER_WRITER;
		snprintf(w->first_error, sizeof(w->first_error), "%s", err.msg);
		goto done;
	}
	pf_act_init(w->f, &act, NULL);
	act.in.nrecipients = 1;
	act.in.ndocuments = 1;
	for (int i = 0; i < PER_WRITER; i++) {
		char id[64];
		struct proto_reg *r = NULL;

		snprintf(id, sizeof(id), "w%d-act-%d", w->index, i);
		act.in.act_id = id;
		if (proto_register_outgoing(p, &act.in, &r, &err) < 0) {
			if (!w->failures++)
				snprintf(w->first_error, sizeof(w->first_error), "%s", err.msg);
		}
		proto_reg_free(r);
	}
done:
	proto_free(p);
	svc_store_close(s);
	return NULL;
}

static void test_proto_register__concurrent_writers_no_gap_no_duplicate(void **state)
{
	struct pf *f = *state;
	struct worker w[WRITERS];
	pthread_t t[WRITERS];
	sqlite3_stmt *st = NULL;

	for (int i = 0; i < WRITERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].f = f;
		w[i].index = i;
		assert_int_equal(pthread_create(&t[i], NULL, writer, &w[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(t[i], NULL);
		if (w[i].failures)
			fail_msg("writer %d: %d failures, first: %s", i, w[i].failures,
				 w[i].first_error);
	}
	assert_int_equal(sqlite3_prepare_v2(db(f),
					    "SELECT count(*), count(DISTINCT number), min(number),"
					    " max(number), count(DISTINCT year)"
					    " FROM proto_registrations WHERE register = 'PG'",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), WRITERS * PER_WRITER);
	assert_int_equal(sqlite3_column_int(st, 1), WRITERS * PER_WRITER);
	assert_int_equal(sqlite3_column_int(st, 2), 1);
	assert_int_equal(sqlite3_column_int(st, 3), WRITERS * PER_WRITER);
	assert_int_equal(sqlite3_column_int(st, 4), 1);
	sqlite3_finalize(st);
	/*
	 * The writers sealed side by side, but the numbers went into the store in
	 * their order: rows written in number order, times that never go back.
	 */
	assert_int_equal(sqlite3_prepare_v2(db(f),
					    "SELECT count(*) FROM proto_registrations a"
					    " JOIN proto_registrations b ON b.number = a.number + 1"
					    " WHERE b.id < a.id"
					    " OR b.registered_at < a.registered_at",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
}

/* Run sql; return the SQLite result code and the message. */
static int sql(struct pf *f, const char *q, char *msg, size_t msg_size)
{
	char *m = NULL;
	int rc = sqlite3_exec(db(f), q, NULL, NULL, &m);

	snprintf(msg, msg_size, "%s", m ? m : "");
	sqlite3_free(m);
	return rc;
}

/* A clock that, at its call number intrude_at, plays another process registering. */
struct intruding_clock {
	struct pf *f;
	int calls, intrude_at;
};

static int64_t intruding_clock(void *arg)
{
	struct intruding_clock *c = arg;
	sqlite3 *other = NULL;

	if (++c->calls == c->intrude_at) {
		/* Its own connection, as another process would have: number 2 for another act. */
		assert_int_equal(sqlite3_open(c->f->db_path, &other), SQLITE_OK);
		sqlite3_busy_timeout(other, 5000);
		assert_int_equal(sqlite3_exec(other,
			"BEGIN IMMEDIATE;"
			"UPDATE proto_counters SET last = last + 1;"
			"INSERT INTO proto_registrations (register, year, number, direction,"
			" registered_at, reg_date, reg_time, subject, correspondents,"
			" documents, author, act_id, segnatura, backend, classification)"
			" SELECT register, year, 2, direction, registered_at, reg_date,"
			" reg_time, subject, correspondents, documents, author, 'act-elsewhere',"
			" segnatura, backend, classification"
			" FROM proto_registrations WHERE number = 1;"
			"COMMIT", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(other);
	}
	return c->f->now;
}

/*
 * The segnatura is sealed before the number is taken (outside the store's
 * lock): when another process takes the chosen number meanwhile, the
 * registration goes round again and gets the next number, with a segnatura
 * built for that number, and no gap or duplicate.
 */
static void test_proto_register__number_taken_meanwhile_goes_round_again(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct intruding_clock clk = { f, 0, 0 };
	struct proto *p = NULL;
	struct proto_reg *a = NULL, *b = NULL;
	struct sb_buf xml = SB_BUF_INIT(1 << 20);
	struct pf_act act;
	struct proto_opts o = f->o;

	o.clock = intruding_clock;
	o.clock_arg = &clk;
	assert_int_equal(proto_open(&p, db(f), &o, &err), 0);
	pf_act_init(f, &act, "act-0001");
	assert_int_equal(proto_register_outgoing(p, &act.in, &a, &err), 0);
	assert_int_equal(a->id.number, 1);
	/* The second call of a round is the seal's signing time: number 2 is chosen by then. */
	clk.calls = 0;
	clk.intrude_at = 2;
	act.in.act_id = "act-0002";
	assert_int_equal(proto_register_outgoing(p, &act.in, &b, &err), 0);
	assert_int_equal(b->id.number, 3);
	assert_true(clk.calls >= 4);   /* two rounds */
	assert_int_equal(proto_segnatura_get(p, &b->id, &xml, &err), 0);
	assert_non_null(strstr(sb_buf_cstr(&xml), ">0000003<"));
	assert_null(strstr(sb_buf_cstr(&xml), ">0000002<"));
	assert_int_equal(proto_segnatura_verify(p, sb_buf_cstr(&xml), xml.len, &err), 0);
	proto_reg_free(b);
	assert_int_equal(proto_lookup_act(p, "act-elsewhere", &b, &err), 0);
	assert_int_equal(b->id.number, 2);
	sb_buf_release(&xml);
	proto_reg_free(a);
	proto_reg_free(b);
	proto_free(p);
}

/* Two registrations in this process: A seals while B queues behind it. */
struct queued {
	struct pf *f;
	pthread_mutex_t m;
	pthread_cond_t c;
	int a_calls, b_calls;
	bool b_queued;
	struct proto_reg *a;
	int a_rc;
	char a_error[256];
};

/*
 * A's clock: at its seal (call 2) another process takes A's number, and A
 * waits until B has taken the ticket behind it.
 */
static int64_t queued_clock_a(void *arg)
{
	struct queued *q = arg;
	struct intruding_clock intruder = { q->f, 0, 1 };

	pthread_mutex_lock(&q->m);
	q->a_calls++;
	pthread_cond_broadcast(&q->c);
	if (q->a_calls == 2) {
		pthread_mutex_unlock(&q->m);
		(void)intruding_clock(&intruder);
		pthread_mutex_lock(&q->m);
		while (!q->b_queued)
			pthread_cond_wait(&q->c, &q->m);
	}
	pthread_mutex_unlock(&q->m);
	return q->f->now;
}

static int64_t queued_clock_b(void *arg)
{
	struct queued *q = arg;

	pthread_mutex_lock(&q->m);
	q->b_calls++;
	q->b_queued = true;
	pthread_cond_broadcast(&q->c);
	pthread_mutex_unlock(&q->m);
	return q->f->now;
}

static struct proto *queued_proto(struct queued *q, struct svc_store **s,
				  int64_t (*clock)(void *))
{
	struct sb_err err = SB_ERR_INIT;
	struct proto_opts o = q->f->o;
	struct proto *p = NULL;

	o.clock = clock;
	o.clock_arg = q;
	assert_int_equal(svc_store_open(s, q->f->db_path, 5000, &err), 0);
	assert_int_equal(proto_open(&p, svc_store_db(*s), &o, &err), 0);
	return p;
}

static void *queued_a(void *arg)
{
	struct queued *q = arg;
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *s = NULL;
	struct proto *p = queued_proto(q, &s, queued_clock_a);
	struct pf_act act;

	pf_act_init(q->f, &act, "act-a");
	q->a_rc = proto_register_outgoing(p, &act.in, &q->a, &err);
	snprintf(q->a_error, sizeof(q->a_error), "%s", err.msg);
	proto_free(p);
	svc_store_close(s);
	return NULL;
}

/* The segnatura of r verifies and carries r's own number. */
static void assert_sealed_with_own_number(struct proto *p, const struct proto_reg *r)
{
	struct sb_err err = SB_ERR_INIT;
	struct sb_buf xml = SB_BUF_INIT(1 << 20);
	char want[32];

	snprintf(want, sizeof(want), ">%07llu<", (unsigned long long)r->id.number);
	assert_int_equal(proto_segnatura_get(p, &r->id, &xml, &err), 0);
	assert_non_null(strstr(sb_buf_cstr(&xml), want));
	assert_int_equal(proto_segnatura_verify(p, sb_buf_cstr(&xml), xml.len, &err), 0);
	sb_buf_release(&xml);
}

/*
 * Registrations in one process seal side by side and take their numbers in
 * ticket order. When the first one's number is taken by another process
 * while it seals, it goes round again, and so does the one queued behind
 * it, whose number counted on the first: both end with numbers of their own
 * and segnature sealed for those numbers, with no gap or duplicate.
 */
static void test_proto_register__a_failed_ticket_sends_the_ones_behind_round_again(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct queued q;
	struct svc_store *s = NULL;
	struct proto *pb;
	struct proto_reg *first = NULL, *b = NULL, *other = NULL;
	struct pf_act act;
	pthread_t t;

	memset(&q, 0, sizeof(q));
	q.f = f;
	pthread_mutex_init(&q.m, NULL);
	pthread_cond_init(&q.c, NULL);
	pf_act_init(f, &act, "act-0001");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &first, &err), 0);
	assert_int_equal(first->id.number, 1);

	pb = queued_proto(&q, &s, queued_clock_b);
	assert_int_equal(pthread_create(&t, NULL, queued_a, &q), 0);
	/* B starts once A holds its ticket (number 2): B's is number 3, behind it. */
	pthread_mutex_lock(&q.m);
	while (q.a_calls < 1)
		pthread_cond_wait(&q.c, &q.m);
	pthread_mutex_unlock(&q.m);
	pf_act_init(f, &act, "act-b");
	assert_int_equal(proto_register_outgoing(pb, &act.in, &b, &err), 0);
	pthread_join(t, NULL);
	if (q.a_rc != 0)
		fail_msg("A: %s", q.a_error);

	assert_int_equal(proto_lookup_act(pb, "act-elsewhere", &other, &err), 0);
	assert_int_equal(other->id.number, 2);
	assert_int_equal(q.a->id.number + b->id.number, 3 + 4);
	assert_true(q.a->id.number == 3 || q.a->id.number == 4);
	/* B sealed twice: its first number went with A's failure. */
	assert_true(q.b_calls >= 4);
	assert_sealed_with_own_number(pb, q.a);
	assert_sealed_with_own_number(pb, b);
	{
		sqlite3_stmt *st = NULL;

		assert_int_equal(sqlite3_prepare_v2(db(f), "SELECT count(*), max(number)"
						    " FROM proto_registrations", -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 4);
		assert_int_equal(sqlite3_column_int(st, 1), 4);
		sqlite3_finalize(st);
	}
	proto_reg_free(first);
	proto_reg_free(other);
	proto_reg_free(q.a);
	proto_reg_free(b);
	proto_free(pb);
	svc_store_close(s);
	pthread_cond_destroy(&q.c);
	pthread_mutex_destroy(&q.m);
}

static void test_proto_register__protected_fields_refused_by_the_store(void **state)
{
	static const char *const attempts[] = {
		"UPDATE proto_registrations SET subject = 'altro' WHERE number = 1",
		"UPDATE proto_registrations SET number = 99 WHERE number = 1",
		"UPDATE proto_registrations SET reg_date = '2020-01-01' WHERE number = 1",
		"UPDATE proto_registrations SET correspondents = '[]' WHERE number = 1",
		"UPDATE proto_registrations SET documents = '[]' WHERE number = 1",
		"UPDATE proto_registrations SET segnatura = '<x/>' WHERE number = 1",
		"DELETE FROM proto_registrations WHERE number = 1",
		"UPDATE proto_registrations SET classification = 'I.1' WHERE number = 1",
		"UPDATE proto_counters SET last = last + 2",
		"UPDATE proto_counters SET last = last - 1",
		"DELETE FROM proto_counters",
	};
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *r = NULL;
	struct pf_act act;
	char msg[256], hex[65];

	pf_act_init(f, &act, "act-protected");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &r, &err), 0);
	proto_reg_free(r);
	for (size_t i = 0; i < SB_ARRAY_SIZE(attempts); i++) {
		assert_int_equal(sql(f, attempts[i], msg, sizeof(msg)), SQLITE_CONSTRAINT);
		assert_non_null(strstr(msg, "protocol:"));
	}
	/* History rows are as protected as the registrations. */
	assert_int_equal(proto_correct(f->p, &(struct proto_id){ "PG", 2026, 1 }, "assignment",
				       "tributi", "op.verdi", "assegnazione errata", &err), 0);
	assert_int_equal(sql(f, "UPDATE proto_changes SET author = 'x'", msg, sizeof(msg)),
			 SQLITE_CONSTRAINT);
	assert_int_equal(sql(f, "DELETE FROM proto_changes", msg, sizeof(msg)), SQLITE_CONSTRAINT);
	/* A raw classification change with an author goes into the history by trigger. */
	assert_int_equal(sql(f, "UPDATE proto_registrations SET classification = 'I.1',"
			     " changed_by = 'dba', changed_at = 1794992100, change_reason = 'sql'"
			     " WHERE number = 1", msg, sizeof(msg)), SQLITE_OK);
	assert_int_equal(proto_lookup(f->p, &(struct proto_id){ "PG", 2026, 1 }, &r, &err), 0);
	assert_string_equal(r->subject, act.in.subject);
	assert_string_equal(r->classification, "I.1");
	assert_int_equal(r->nchanges, 2);
	assert_string_equal(r->changes[1].field, "classification");
	assert_string_equal(r->changes[1].old_value, "VI.4");
	assert_string_equal(r->changes[1].author, "dba");
	openssl_sha256(f->pdf, hex);
	assert_string_equal(r->docs[0].sha256_hex, hex);
	proto_reg_free(r);
	/* The author was consumed: the next raw change must name its own. */
	assert_int_equal(sql(f, "UPDATE proto_registrations SET classification = 'I.2'"
			     " WHERE number = 1", msg, sizeof(msg)), SQLITE_CONSTRAINT);
}

static void test_proto_register__correction_keeps_old_value(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *r = NULL;
	struct proto_id id = { "PG", 2026, 1 };
	struct pf_act act;

	pf_act_init(f, &act, "act-correct");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &r, &err), 0);
	proto_reg_free(r);
	f->now += 3600;
	assert_int_equal(proto_correct(f->p, &id, "subject", "Verbale n. 1001/2026 (rettificato)",
				       "op.verdi", "refuso nell'oggetto", &err), 0);
	assert_int_equal(proto_correct(f->p, &id, "classification", "VI.5", "op.verdi",
				       "titolario", &err), 0);
	assert_int_equal(proto_lookup(f->p, &id, &r, &err), 0);
	assert_string_equal(r->subject, act.in.subject);
	assert_string_equal(proto_reg_subject(r), "Verbale n. 1001/2026 (rettificato)");
	assert_string_equal(r->classification, "VI.5");
	assert_int_equal(r->nchanges, 2);
	assert_string_equal(r->changes[0].field, "subject");
	assert_string_equal(r->changes[0].old_value, act.in.subject);
	assert_string_equal(r->changes[0].author, "op.verdi");
	assert_string_equal(r->changes[0].reason, "refuso nell'oggetto");
	assert_int_equal(r->changes[0].at, f->now);
	assert_string_equal(r->changes[1].old_value, "VI.4");
	assert_string_equal(r->changes[1].new_value, "VI.5");
	proto_reg_free(r);

	/* Error paths. */
	{
		static const struct {
			const char *field, *value, *author, *reason;
		} bad[] = {
			{ "number", "2", "a", "r" },
			{ "correspondents", "x", "a", "r" },
			{ NULL, "x", "a", "r" },
			{ "subject", "", "a", "r" },
			{ "subject", "x", "", "r" },
			{ "subject", "x", "a", NULL },
			{ "subject", "\xff\xfe", "a", "r" },
		};

		for (size_t i = 0; i < SB_ARRAY_SIZE(bad); i++) {
			sb_err_clear(&err);
			assert_int_equal(proto_correct(f->p, &id, bad[i].field, bad[i].value,
						       bad[i].author, bad[i].reason, &err),
					 SB_EINVAL);
			assert_int_equal(err.code, SB_EINVAL);
			assert_true(err.msg[0] != '\0');
		}
		sb_err_clear(&err);
		assert_int_equal(proto_correct(f->p, &(struct proto_id){ "PG", 2026, 77 },
					       "subject", "x", "a", "r", &err), SB_ENOTFOUND);
		assert_true(err.msg[0] != '\0');
	}
}

static void test_proto_register__annulment_kept_and_marked(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *r = NULL;
	struct proto_id id = { "PG", 2026, 1 };
	struct pf_act act;
	char msg[256];

	pf_act_init(f, &act, "act-annul");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &r, &err), 0);
	proto_reg_free(r);
	assert_int_equal(proto_annul(f->p, &id, "", "resp", "det. 1/2026", &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "reason"));
	assert_int_equal(proto_annul(f->p, &id, "errore", NULL, "det. 1/2026", &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "author"));
	assert_int_equal(proto_annul(f->p, &id, "errore", "resp", "", &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "authorising"));
	assert_int_equal(proto_annul(f->p, &(struct proto_id){ "PG", 2025, 1 }, "errore", "resp",
				     "det. 1/2026", &err), SB_ENOTFOUND);

	f->now += 120;
	assert_int_equal(proto_annul(f->p, &id, "destinatario errato", "resp.protocollo",
				     "determina 12/2026", &err), 0);
	assert_int_equal(proto_lookup(f->p, &id, &r, &err), 0);
	assert_true(r->annulled);
	assert_int_equal(r->annulled_at, f->now);
	assert_string_equal(r->annul_reason, "destinatario errato");
	assert_string_equal(r->annul_author, "resp.protocollo");
	assert_string_equal(r->annul_act, "determina 12/2026");
	assert_string_equal(r->subject, act.in.subject);
	assert_int_equal(r->nchanges, 1);
	assert_string_equal(r->changes[0].field, "annulment");
	proto_reg_free(r);

	sb_err_clear(&err);
	assert_int_equal(proto_annul(f->p, &id, "ancora", "resp", "det", &err), SB_EINVAL);
	assert_non_null(strstr(err.msg, "already annulled"));
	assert_int_equal(proto_correct(f->p, &id, "assignment", "tributi", "a", "r", &err),
			 SB_EINVAL);
	assert_int_equal(sql(f, "UPDATE proto_registrations SET annul_reason = 'x'", msg,
			     sizeof(msg)), SQLITE_CONSTRAINT);
	assert_int_equal(sql(f, "UPDATE proto_registrations SET annulled_at = NULL", msg,
			     sizeof(msg)), SQLITE_CONSTRAINT);
	/* An annulled act can be registered again, with a new number. */
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &r, &err), 0);
	assert_string_equal(r->text, "PG/2026/0000002");
	proto_reg_free(r);
}

static void test_proto_register__receipts_linked_and_idempotent(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *out = NULL, *r1 = NULL, *r2 = NULL, *r3 = NULL, **list = NULL;
	struct pf_act act;
	struct proto_receipt rc_in;
	size_t n = 0;
	char hex[65];

	pf_act_init(f, &act, "act-receipts");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &out, &err), 0);
	memset(&rc_in, 0, sizeof(rc_in));
	rc_in.legal_fact_id = "PN_LEGAL_FACTS-0001";
	rc_in.category = "DIGITAL_DELIVERY";
	rc_in.iun = "ABCD-EFGH-IJKL-202611-M-1";
	rc_in.outgoing = out->id;
	rc_in.pdf_path = f->pdf2;
	f->now += 86400;
	assert_int_equal(proto_register_receipt(f->p, &rc_in, &r1, &err), 0);
	assert_int_equal(r1->dir, PROTO_IN);
	assert_string_equal(r1->text, "PG/2026/0000002");
	assert_true(r1->has_link);
	assert_string_equal(r1->link.reg, "PG");
	assert_int_equal(r1->link.year, out->id.year);
	assert_int_equal(r1->link.number, out->id.number);
	assert_non_null(strstr(r1->subject, "DIGITAL_DELIVERY"));
	assert_non_null(strstr(r1->subject, rc_in.iun));
	assert_non_null(strstr(r1->subject, "PG/2026/0000001"));
	assert_int_equal(r1->nparties, 1);
	assert_string_equal(r1->parties[0].name, "PagoPA S.p.A. - SEND");
	openssl_sha256(f->pdf2, hex);
	assert_string_equal(r1->docs[0].sha256_hex, hex);
	assert_string_equal(r1->iun, rc_in.iun);
	assert_string_equal(r1->category, "DIGITAL_DELIVERY");
	assert_string_equal(r1->classification, out->classification);

	/* The same legal fact twice: the same registration. */
	assert_int_equal(proto_register_receipt(f->p, &rc_in, &r2, &err), 0);
	assert_int_equal(r2->row_id, r1->row_id);
	assert_string_equal(r2->text, r1->text);
	rc_in.legal_fact_id = "PN_LEGAL_FACTS-0002";
	rc_in.category = "SENDER_ACK";
	assert_int_equal(proto_register_receipt(f->p, &rc_in, &r3, &err), 0);
	assert_string_equal(r3->text, "PG/2026/0000003");
	assert_int_equal(proto_receipts_list(f->p, &out->id, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0]->legal_fact_id, "PN_LEGAL_FACTS-0001");
	assert_string_equal(list[1]->legal_fact_id, "PN_LEGAL_FACTS-0002");
	proto_reg_list_free(list, n);

	/* Error paths, each with its code and a message. */
	{
		struct proto_receipt bad = rc_in;
		struct proto_reg *none = NULL;

		bad.legal_fact_id = "PN_LEGAL_FACTS-0009";
		bad.category = "SOMETHING_ELSE";
		assert_int_equal(proto_register_receipt(f->p, &bad, &none, &err), SB_EINVAL);
		assert_non_null(strstr(err.msg, "category"));
		bad.category = "PEC_RECEIPT";
		bad.outgoing.number = 999;
		assert_int_equal(proto_register_receipt(f->p, &bad, &none, &err), SB_ENOTFOUND);
		assert_true(err.msg[0] != '\0');
		bad.outgoing = r1->id;      /* an incoming registration */
		assert_int_equal(proto_register_receipt(f->p, &bad, &none, &err), SB_EINVAL);
		assert_non_null(strstr(err.msg, "not an outgoing"));
		bad.outgoing = out->id;
		bad.pdf_path = "/nonexistent/legal-fact.pdf";
		assert_int_equal(proto_register_receipt(f->p, &bad, &none, &err), SB_ENOTFOUND);
		assert_true(err.msg[0] != '\0');
		bad.pdf_path = f->pdf2;
		bad.iun = "";
		assert_int_equal(proto_register_receipt(f->p, &bad, &none, &err), SB_EINVAL);
		assert_non_null(strstr(err.msg, "iun"));
		assert_null(none);
		/* Failures used no number. */
		bad.iun = rc_in.iun;
		assert_int_equal(proto_register_receipt(f->p, &bad, &none, &err), 0);
		assert_string_equal(none->text, "PG/2026/0000004");
		proto_reg_free(none);
	}
	/*
	 * Given the hash taken as it was downloaded, the register files that
	 * one and does not read the file again (a same-size file with other
	 * bytes keeps it); a file whose size changed meanwhile is refused.
	 */
	{
		static const char digits[] = "0123456789abcdef0123456789abcdef"
					     "0123456789abcdef0123456789abcdef";
		struct proto_receipt known = rc_in;
		struct proto_reg *kr = NULL;
		struct stat st;

		assert_int_equal(stat(f->pdf2, &st), 0);
		known.legal_fact_id = "PN_LEGAL_FACTS-0010";
		known.category = "PEC_RECEIPT";
		known.sha256_hex = digits;
		known.size = (uint64_t)st.st_size + 1;
		assert_int_equal(proto_register_receipt(f->p, &known, &kr, &err), SB_EIO);
		assert_non_null(strstr(err.msg, "changed since it was hashed"));
		assert_null(kr);
		known.size = (uint64_t)st.st_size;
		assert_int_equal(proto_register_receipt(f->p, &known, &kr, &err), 0);
		assert_string_equal(kr->text, "PG/2026/0000005");
		assert_string_equal(kr->docs[0].sha256_hex, digits);
		assert_int_equal(kr->docs[0].size, (uint64_t)st.st_size);
		proto_reg_free(kr);
	}
	proto_reg_free(out);
	proto_reg_free(r1);
	proto_reg_free(r2);
	proto_reg_free(r3);
}

static void assert_same_str(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Every field of two registrations, as proto.h lists them. */
static void assert_same_reg(const struct proto_reg *a, const struct proto_reg *b)
{
	assert_int_equal(a->row_id, b->row_id);
	assert_string_equal(a->id.reg, b->id.reg);
	assert_int_equal(a->id.year, b->id.year);
	assert_int_equal(a->id.number, b->id.number);
	assert_string_equal(a->text, b->text);
	assert_int_equal(a->dir, b->dir);
	assert_int_equal(a->registered_at, b->registered_at);
	assert_string_equal(a->date, b->date);
	assert_string_equal(a->time, b->time);
	assert_same_str(a->subject, b->subject);
	assert_same_str(a->classification, b->classification);
	assert_same_str(a->assignment, b->assignment);
	assert_same_str(a->author, b->author);
	assert_same_str(a->act_id, b->act_id);
	assert_same_str(a->iun, b->iun);
	assert_same_str(a->legal_fact_id, b->legal_fact_id);
	assert_same_str(a->category, b->category);
	assert_int_equal(a->has_link, b->has_link);
	assert_string_equal(a->link.reg, b->link.reg);
	assert_int_equal(a->link.year, b->link.year);
	assert_int_equal(a->link.number, b->link.number);
	assert_int_equal(a->nparties, b->nparties);
	for (size_t i = 0; i < a->nparties; i++) {
		assert_int_equal(a->parties[i].type, b->parties[i].type);
		assert_same_str(a->parties[i].name, b->parties[i].name);
		assert_same_str(a->parties[i].tax_id, b->parties[i].tax_id);
	}
	assert_int_equal(a->ndocs, b->ndocs);
	for (size_t i = 0; i < a->ndocs; i++) {
		assert_same_str(a->docs[i].name, b->docs[i].name);
		assert_same_str(a->docs[i].mime_type, b->docs[i].mime_type);
		assert_same_str(a->docs[i].title, b->docs[i].title);
		assert_string_equal(a->docs[i].sha256_hex, b->docs[i].sha256_hex);
		assert_int_equal(a->docs[i].size, b->docs[i].size);
	}
	assert_int_equal(a->annulled, b->annulled);
	assert_int_equal(a->annulled_at, b->annulled_at);
	assert_same_str(a->annul_reason, b->annul_reason);
	assert_same_str(a->annul_author, b->annul_author);
	assert_same_str(a->annul_act, b->annul_act);
	assert_int_equal(a->nchanges, b->nchanges);
	assert_same_str(a->backend, b->backend);
}

/*
 * A new registration is returned from what was written, not read back:
 * it must equal what a look-up reads from the store, optional fields
 * left out included.
 */
static void test_proto_register__returned_registration_is_what_is_stored(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *out = NULL, *in = NULL, *bare = NULL, *got = NULL;
	struct proto_receipt rc_in;
	struct pf_act act;

	pf_act_init(f, &act, "act-same");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &out, &err), 0);
	assert_int_equal(proto_lookup(f->p, &out->id, &got, &err), 0);
	assert_same_reg(out, got);
	proto_reg_free(got);

	memset(&rc_in, 0, sizeof(rc_in));
	rc_in.legal_fact_id = "LF-same";
	rc_in.category = "DIGITAL_DELIVERY";
	rc_in.iun = "ABCD-EFGH-IJKL-202611-M-2";
	rc_in.outgoing = out->id;
	rc_in.pdf_path = f->pdf2;
	assert_int_equal(proto_register_receipt(f->p, &rc_in, &in, &err), 0);
	assert_true(in->has_link);
	assert_int_equal(proto_lookup(f->p, &in->id, &got, &err), 0);
	assert_same_reg(in, got);
	proto_reg_free(got);

	/*
	 * No assignment, no classification, a recipient without tax id, a
	 * document without title.
	 */
	pf_act_init(f, &act, "act-same-bare");
	act.in.assignment = NULL;
	act.in.classification = NULL;
	act.in.classification_name = NULL;
	act.rcpt[0].tax_id = NULL;
	act.in.nrecipients = 1;
	act.in.ndocuments = 1;
	act.docs[0].title = NULL;
	act.docs[0].mime_type = NULL;
	f->now += 3600;
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &bare, &err), 0);
	assert_null(bare->assignment);
	assert_null(bare->parties[0].tax_id);
	assert_int_equal(proto_lookup(f->p, &bare->id, &got, &err), 0);
	assert_same_reg(bare, got);
	proto_reg_free(got);
	/* And found again by act: the stored row, same as the one returned. */
	assert_int_equal(proto_lookup_act(f->p, "act-same-bare", &got, &err), 0);
	assert_same_reg(bare, got);
	proto_reg_free(got);
	proto_reg_free(out);
	proto_reg_free(in);
	proto_reg_free(bare);
}

static void test_proto_register__bad_input_named_and_no_gap(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto_reg *r = NULL;
	struct pf_act act;
	char *empty = sb_xasprintf("%s/empty.pdf", f->dir);
	const char *known = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	struct {
		const char *what;
		int code;
	} cases[] = {
		{ "subject", SB_EINVAL }, { "act_id", SB_EINVAL }, { "author", SB_EINVAL },
		{ "recipients", SB_EINVAL }, { "documents", SB_EINVAL },
		{ "recipients[0].name", SB_EINVAL }, { "documents[1]", SB_ENOTFOUND },
		{ "documents[0] is an empty", SB_EINVAL },
		{ "subject is not valid UTF-8", SB_EINVAL },
		{ "subject has a control", SB_EINVAL },
		{ "documents[0].sha256_hex is not a SHA-256", SB_EINVAL },
		{ "documents[0]: changed since it was hashed", SB_EIO },
		{ "documents[1]", SB_ENOTFOUND },
	};

	th_write(empty, "", 0, 0644);
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		pf_act_init(f, &act, "act-bad");
		switch (i) {
		case 0: act.in.subject = NULL; break;
		case 1: act.in.act_id = ""; break;
		case 2: act.in.author = NULL; break;
		case 3: act.in.nrecipients = 0; break;
		case 4: act.in.ndocuments = 0; break;
		case 5: act.rcpt[0].name = ""; break;
		case 6: act.docs[1].path = "/nonexistent/file.pdf"; break;
		case 7: act.docs[0].path = empty; break;
		case 8: act.in.subject = "Verbale \xc3\x28"; break;
		case 9: act.in.subject = "Verbale\r\nX-Injected: 1"; break;
		/* A hash given by the caller: well formed, and for a file of its size. */
		case 10:
			act.docs[0].sha256_hex = "zz";
			act.docs[0].size = 1;
			break;
		case 11:
			act.docs[0].sha256_hex = known;
			act.docs[0].size = 7;
			break;
		case 12:
			act.docs[1].path = "/nonexistent/file.pdf";
			act.docs[1].sha256_hex = known;
			act.docs[1].size = 7;
			break;
		}
		sb_err_clear(&err);
		r = NULL;
		assert_int_equal(proto_register_outgoing(f->p, &act.in, &r, &err), cases[i].code);
		assert_int_equal(err.code, cases[i].code);
		if (!strstr(err.msg, cases[i].what))
			fail_msg("case %zu: '%s' does not name '%s'", i, err.msg, cases[i].what);
		assert_null(r);
	}
	pf_act_init(f, &act, "act-good");
	assert_int_equal(proto_register_outgoing(f->p, &act.in, &r, &err), 0);
	assert_string_equal(r->text, "PG/2026/0000001");
	proto_reg_free(r);
	free(empty);
}

static void test_proto_register__open_refuses_bad_configuration(void **state)
{
	struct pf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	struct proto *p = NULL;
	struct proto_opts o;
	char *loose = sb_xasprintf("%s/loose.key", f->dir);
	char *notkey = sb_xasprintf("%s/notkey.key", f->dir);
	char *key_text = th_read(f->key, NULL);

	th_write_str(loose, key_text, 0644);
	th_write_str(notkey, "this is not a key\n", 0600);
	for (int i = 0; i < 8; i++) {
		o = f->o;
		switch (i) {
		case 0: o.ipa_code = NULL; break;
		case 1: o.aoo_code = ""; break;
		case 2: o.seal_key_file = NULL; break;
		case 3: o.seal_key_file = loose; break;
		case 4: o.seal_key_file = notkey; break;
		case 5: o.xsd_path = "/nonexistent/segnatura_protocollo.xsd"; break;
		case 6: o.backend = "carrier-pigeon"; break;
		case 7: o.register_code = "PG/2026"; break;
		}
		sb_err_clear(&err);
		assert_int_equal(proto_open(&p, db(f), &o, &err), SB_ECONFIG);
		assert_int_equal(err.code, SB_ECONFIG);
		assert_true(err.msg[0] != '\0');
		assert_null(p);
	}
	o = f->o;
	o.backend = "rest";      /* without rest_url */
	assert_int_equal(proto_open(&p, db(f), &o, &err), SB_ECONFIG);
	assert_non_null(strstr(err.msg, "rest_url"));
	free(loose);
	free(notkey);
	free(key_text);
}

static void test_proto_register__id_parse_table(void **state)
{
	static const struct {
		const char *in;
		int rc;
		const char *reg;
		int year;
		uint64_t number;
	} cases[] = {
		{ "PG/2026/0000123", 0, "PG", 2026, 123 },
		{ "REP.PM/2025/1", 0, "REP.PM", 2025, 1 },
		{ "2024/0000007", 0, "PG", 2024, 7 },
		{ "0000042", 0, "PG", 2030, 42 },
		{ "", SB_EINVAL, NULL, 0, 0 },
		{ "PG/2026/0", SB_EINVAL, NULL, 0, 0 },
		{ "PG/26/0000001", SB_EINVAL, NULL, 0, 0 },
		{ "P G/2026/1", SB_EINVAL, NULL, 0, 0 },
		{ "PG/2026/1/2", SB_EINVAL, NULL, 0, 0 },
		{ "PG/2026/-1", SB_EINVAL, NULL, 0, 0 },
		{ "PG/2026/12x", SB_EINVAL, NULL, 0, 0 },
		{ "ABCDEFGHIJKLMNOPQ/2026/1", SB_EINVAL, NULL, 0, 0 },
	};
	char text[PROTO_ID_TEXT_SIZE];

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(cases); i++) {
		struct proto_id id = { "untouched", 1, 1 };
		struct sb_err err = SB_ERR_INIT;
		int rc = proto_id_parse(cases[i].in, "PG", 2030, &id, &err);

		if (rc != cases[i].rc)
			fail_msg("'%s': rc %d, expected %d", cases[i].in, rc, cases[i].rc);
		if (rc < 0) {
			assert_true(err.msg[0] != '\0');
			assert_string_equal(id.reg, "untouched");
			continue;
		}
		assert_string_equal(id.reg, cases[i].reg);
		assert_int_equal(id.year, cases[i].year);
		assert_int_equal(id.number, cases[i].number);
	}
	assert_string_equal(proto_id_format(&(struct proto_id){ "PG", 2026, 12345678 }, text,
					    sizeof(text)), "PG/2026/12345678");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_proto_register__outgoing_numbers_dates_impronte, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_proto_register__number_taken_meanwhile_goes_round_again,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_proto_register__a_failed_ticket_sends_the_ones_behind_round_again,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_register__year_rollover_in_rome_time,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_proto_register__concurrent_writers_no_gap_no_duplicate,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_proto_register__protected_fields_refused_by_the_store,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_register__correction_keeps_old_value,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_register__annulment_kept_and_marked,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_register__receipts_linked_and_idempotent,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_proto_register__returned_registration_is_what_is_stored,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_register__bad_input_named_and_no_gap,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_register__open_refuses_bad_configuration,
						setup, teardown),
		cmocka_unit_test(test_proto_register__id_parse_table),
	};

	return cmocka_run_group_tests_name("proto_register", tests, NULL, NULL);
}
