/*
 * Event streams through the client against send-sim: one TIMELINE stream,
 * pages of at most 50 events, the cursor advanced only after the page is
 * stored, retry-after in milliseconds and 429 when read too early; a
 * stream found again by its title.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "send_fixture.h"

static const char *const sim_args[] = { "--send-accept-ms", "50", "--send-step-ms", "20",
					"--send-stream-interval-ms", "700", NULL };

static const char *const key_hdrs[] = { "x-api-key: sim-send-key", NULL };

static int setup(void **state)
{
	return sf_group_setup(state, sim_args);
}

/* A store that keeps event ids and categories in memory, and can be told to fail. */
struct store {
	size_t n;
	char ids[512][SEND_EVENT_ID_MAX];
	char cats[512][48];
	bool fail;
	bool saw_element;
};

static int store_events(void *ctx, const struct send_event *ev, size_t n, struct sb_err *err)
{
	struct store *s = ctx;

	if (s->fail)
		return sb_err_set(err, SB_EIO, 0, "disk full");
	for (size_t i = 0; i < n && s->n < 512; i++) {
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", ev[i].event_id);
		snprintf(s->cats[s->n], sizeof(s->cats[0]), "%s",
			 ev[i].element.category ? ev[i].element.category : "");
		s->saw_element |= ev[i].element.element_id != NULL && ev[i].request_id != NULL;
		s->n++;
	}
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void test_send_stream__events_stored_then_acknowledged(void **state)
{
	struct sf *f = *state;
	struct store *s = sb_xcalloc(1, sizeof(*s));
	char stream[37], cursor[SEND_EVENT_ID_MAX] = "";
	struct sf_notif x;
	struct send_request_status st;
	struct send_sent_notification *n;
	struct sb_err err = SB_ERR_INIT;
	size_t got = 0;
	long ra = -1;
	char first[SEND_EVENT_ID_MAX];

	assert_int_equal(send_stream_create(f->c, stream, &err), 0);
	assert_int_equal(strlen(stream), 36);
	n = sf_deliver(f, &x, "mario.rossi@pec.example.it", NULL, "EFFECTIVE_DATE", &st);
	assert_non_null(n);
	send_sent_notification_free(n);

	/* The store fails: the cursor does not move, the same events come again. */
	s->fail = true;
	assert_int_equal(send_stream_poll(f->c, stream, cursor, store_events, s, &got, &ra, &err),
			 SB_EIO);
	assert_non_null(strstr(err.msg, "disk full"));
	assert_string_equal(cursor, "");
	s->fail = false;
	assert_int_equal(send_stream_poll(f->c, stream, cursor, store_events, s,
					  &got, &ra, &err), 0);
	assert_true(got >= 6);
	assert_int_equal(ra, 0);   /* a page with events: read again now */
	assert_string_equal(cursor, s->ids[s->n - 1]);
	assert_string_equal(s->cats[0], "REQUEST_ACCEPTED");
	assert_true(s->saw_element);
	memcpy(first, s->ids[0], sizeof(first));
	for (size_t i = 1; i < s->n; i++)
		assert_true(strcmp(s->ids[i - 1], s->ids[i]) < 0);

	/* Acknowledged: the next page is empty and says when to come back, in ms. */
	assert_int_equal(send_stream_poll(f->c, stream, cursor, store_events, s,
					  &got, &ra, &err), 0);
	assert_int_equal(got, 0);
	assert_int_equal(ra, 700);
	/* Too early: 429, temporary, with the wait in seconds rounded up. */
	assert_int_equal(send_stream_poll(f->c, stream, cursor, store_events, s, &got, &ra, &err),
			 SB_ETEMP);
	assert_int_equal(err.http, 429);
	assert_int_equal(err.retry_after, 1);
	sleep_ms(750);
	assert_int_equal(send_stream_poll(f->c, stream, cursor, store_events, s,
					  &got, &ra, &err), 0);
	assert_int_equal(got, 0);
	assert_string_not_equal(cursor, first);

	/* A dropped connection: temporary, and the URL's query is not in the message. */
	sf_faults(f, "{\"pctDrop\":100}");
	assert_int_equal(send_stream_poll(f->c, stream, cursor, store_events, s, &got, &ra, &err),
			 SB_ETEMP);
	assert_non_null(strstr(err.msg, "/events"));
	assert_null(strstr(err.msg, "lastEventId"));
	sf_faults(f, "{\"pctDrop\":0}");

	/* Input errors. */
	assert_int_equal(send_stream_poll(f->c, "short", cursor, store_events, s, &got, &ra, &err),
			 SB_EINVAL);
	snprintf(cursor, sizeof(cursor), "12");
	assert_int_equal(send_stream_poll(f->c, stream, cursor, store_events, s, &got, &ra, &err),
			 SB_EINVAL);
	assert_non_null(strstr(err.msg, "lastEventId"));
	free(s);
	sf_notif_release(&x);
}

static void test_send_stream__pages_of_at_most_50(void **state)
{
	struct sf *f = *state;
	struct store *s = sb_xcalloc(1, sizeof(*s));
	char stream[37], cursor[SEND_EVENT_ID_MAX] = "";
	struct sb_err err = SB_ERR_INIT;
	struct send_sent_notification *n;
	char iuns[10][32];
	size_t got = 0, pages = 0;
	long ra = -1;

	assert_int_equal(send_stream_create(f->c, stream, &err), 0);
	for (int i = 0; i < 10; i++) {
		struct sf_notif x;
		struct send_request_status st;

		sf_notif_init(f, &x, NULL, NULL);
		assert_int_equal(sf_submit(f, &x, &st, &err), 0);
		memcpy(iuns[i], st.iun, sizeof(iuns[i]));
		sf_notif_release(&x);
	}
	for (int i = 0; i < 10; i++) {
		n = sf_wait_status(f, iuns[i], "EFFECTIVE_DATE");
		assert_non_null(n);
		send_sent_notification_free(n);
	}
	/* 10 analog notifications make about 80 events: more than one page. */
	do {
		assert_int_equal(send_stream_poll(f->c, stream, cursor, store_events, s, &got, &ra,
						  &err), 0);
		assert_true(got <= 50);
		if (got == 50)
			assert_int_equal(ra, 0);
		pages++;
	} while (got > 0 && pages < 10);
	assert_true(pages >= 3);
	assert_true(s->n > 50);
	for (size_t i = 1; i < s->n; i++)
		assert_true(strcmp(s->ids[i - 1], s->ids[i]) < 0);
	free(s);
}

/* A stream is found again by its title in SEND's list (the daemon's recovery after a crash). */
static void test_send_stream__found_again_by_title(void **state)
{
	struct sf *f = *state;
	struct sb_err err = SB_ERR_INIT;
	char made[37], found[37] = "";

	assert_int_equal(send_stream_find(f->c, "send-bridge test 0badcafe", found, &err),
			 SB_ENOTFOUND);
	sb_err_clear(&err);
	assert_int_equal(send_stream_create_titled(f->c, "send-bridge test 0badcafe", made, &err),
			 0);
	assert_int_equal(send_stream_find(f->c, "send-bridge test 0badcafe", found, &err), 0);
	assert_string_equal(found, made);
	assert_int_equal(send_stream_find(f->c, "send-bridge test", found, &err), SB_ENOTFOUND);
	sb_err_clear(&err);
	assert_int_equal(send_stream_create_titled(f->c, "", made, &err), SB_EINVAL);
}

/* Every event waiting on stream, read page by page: how many. */
static size_t drain(struct sf *f, const char *stream, char cursor[SEND_EVENT_ID_MAX],
		    struct store *s)
{
	struct sb_err err = SB_ERR_INIT;
	size_t got = 0, before = s->n;
	long ra = -1;

	do
		assert_int_equal(send_stream_poll(f->c, stream, cursor, store_events, s, &got, &ra,
						  &err), 0);
	while (got > 0);
	return s->n - before;
}

/*
 * A disabled stream (SEND's POST /streams/{id}/action/disable, as an
 * administrator would) is told apart from a working one, keeps serving
 * the events it held, and gets no new ones: a later notification's events
 * reach only the working stream. An unknown stream is SB_ENOTFOUND.
 */
static void test_send_stream__a_disabled_stream_is_told_apart(void **state)
{
	struct sf *f = *state;
	struct store *s = sb_xcalloc(1, sizeof(*s));
	char old[37], live[37], c_old[SEND_EVENT_ID_MAX] = "", c_live[SEND_EVENT_ID_MAX] = "";
	struct sb_err err = SB_ERR_INIT;
	struct send_sent_notification *n;
	struct send_request_status st;
	struct sf_notif x;
	bool disabled = true;
	char *path;

	assert_int_equal(send_stream_create(f->c, old, &err), 0);
	assert_int_equal(send_stream_disabled(f->c, old, &disabled, &err), 0);
	assert_false(disabled);
	n = sf_deliver(f, &x, "mario.rossi@pec.example.it", NULL, "EFFECTIVE_DATE", &st);
	assert_non_null(n);
	send_sent_notification_free(n);
	sf_notif_release(&x);

	path = sb_xasprintf("/delivery-progresses/v2.9/streams/%s/action/disable", old);
	assert_int_equal(sf_raw(f, "POST", path, key_hdrs, NULL, NULL, NULL), 200);
	assert_int_equal(send_stream_disabled(f->c, old, &disabled, &err), 0);
	assert_true(disabled);
	assert_int_equal(send_stream_create(f->c, live, &err), 0);
	assert_int_equal(send_stream_disabled(f->c, live, &disabled, &err), 0);
	assert_false(disabled);

	/* What it held before: still there. */
	assert_true(drain(f, old, c_old, s) >= 6);
	n = sf_deliver(f, &x, "mario.rossi@pec.example.it", NULL, "EFFECTIVE_DATE", &st);
	assert_non_null(n);
	send_sent_notification_free(n);
	sf_notif_release(&x);
	/* After an empty page, the next read waits out its retry-after (700 ms). */
	sleep_ms(750);
	assert_int_equal(drain(f, old, c_old, s), 0);
	assert_true(drain(f, live, c_live, s) >= 6);

	assert_int_equal(send_stream_disabled(f->c, "00000000-0000-4000-8000-000000000000",
					      &disabled, &err), SB_ENOTFOUND);
	free(path);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_stream__events_stored_then_acknowledged),
		cmocka_unit_test(test_send_stream__pages_of_at_most_50),
		cmocka_unit_test(test_send_stream__found_again_by_title),
		cmocka_unit_test(test_send_stream__a_disabled_stream_is_told_apart),
	};

	sb_http_global_init();
	return cmocka_run_group_tests_name("send_stream", tests, setup, sf_group_teardown);
}
