/*
 * Event streams (shared/specs/send/SUMMARY.md §8): one TIMELINE stream,
 * read page by page. Passing lastEventId acknowledges that event and every
 * earlier one, and SEND then purges them; so the cursor moves only after
 * the caller has stored the page, and a crash between the two replays the
 * page instead of losing it. retry-after here is in MILLISECONDS.
 */
#include <string.h>
#include <strings.h>

#include "sb_common.h"
#include "sb_json.h"
#include "sb_log.h"
#include "send_int.h"

#define STREAM_MAX_EVENTS 50u

int send_stream_create(struct send_client *c, char stream_id_out[37], struct sb_err *err)
{
	return send_stream_create_titled(c, send_stream_title(c), stream_id_out, err);
}

const char *send_stream_title(const struct send_client *c)
{
	return c->stream_title ? c->stream_title : "send-bridge";
}

int send_stream_create_titled(struct send_client *c, const char *title, char stream_id_out[37],
			      struct sb_err *err)
{
	struct sb_buf body = SB_BUF_INIT(8192);
	json_t *o, *groups, *reply = NULL;
	char *path;
	char id[37];
	int rc;

	if (!title || !*title || strlen(title) > 256)
		return sb_err_set(err, SB_EINVAL, 0, "stream title: 1 to 256 characters");
	o = json_object();
	groups = json_array();
	path = sb_xasprintf("/delivery-progresses/%s/streams", c->v_streams);
	json_object_set_new(o, "title", json_string(title));
	json_object_set_new(o, "eventType", json_string("TIMELINE"));
	if (c->group)
		json_array_append_new(groups, json_string(c->group));
	json_object_set_new(o, "groups", groups);
	rc = sb_json_dump(o, &body, err);
	if (rc < 0)
		goto cleanup;
	rc = send_call(c, "POST", path, sb_buf_cstr(&body), &reply, NULL, NULL, err);
	if (rc < 0)
		goto cleanup;
	rc = send_copy_str(reply, "streamId", id, sizeof(id), true, "create stream", err);
	if (rc < 0)
		goto cleanup;
	if (strlen(id) != 36) {
		rc = sb_err_set(err, SB_EREJECT, 0, "create stream: streamId is not a uuid");
		goto cleanup;
	}
	memcpy(stream_id_out, id, sizeof(id));
	sb_log(SB_LOG_INFO, "send", "stream created id=%s", id);
cleanup:
	json_decref(o);
	json_decref(reply);
	sb_buf_release(&body);
	free(path);
	return rc;
}

int send_stream_find(struct send_client *c, const char *title, char stream_id_out[37],
		     struct sb_err *err)
{
	char *path = sb_xasprintf("/delivery-progresses/%s/streams", c->v_streams);
	json_t *reply = NULL, *it;
	size_t i;
	int rc;

	rc = send_call(c, "GET", path, NULL, &reply, NULL, NULL, err);
	if (rc < 0)
		goto cleanup;
	if (!json_is_array(reply)) {
		rc = sb_err_set(err, SB_EREJECT, 0, "list streams: reply is not an array");
		goto cleanup;
	}
	rc = SB_ENOTFOUND;
	json_array_foreach(reply, i, it) {
		const char *t = json_string_value(json_object_get(it, "title"));
		const char *id = json_string_value(json_object_get(it, "streamId"));

		if (!t || !id || strcmp(t, title) || strlen(id) != 36)
			continue;
		memcpy(stream_id_out, id, 37);
		rc = 0;
		break;
	}
	if (rc == SB_ENOTFOUND)
		sb_err_set(err, SB_ENOTFOUND, 0, "list streams: none titled '%s'", title);
cleanup:
	json_decref(reply);
	free(path);
	return rc;
}

int send_stream_disabled(struct send_client *c, const char *stream_id, bool *disabled,
			 struct sb_err *err)
{
	char *path = sb_xasprintf("/delivery-progresses/%s/streams/%s", c->v_streams, stream_id);
	json_t *reply = NULL, *d = NULL;
	const char *id = NULL;
	int rc = send_call(c, "GET", path, NULL, &reply, NULL, NULL, err);

	if (rc == 0) {
		id = json_string_value(json_object_get(reply, "streamId"));
		d = json_object_get(reply, "disabledDate");
	}
	/* Whatever else it says, a reply about another stream (or none) tells nothing. */
	if (rc == 0 && (!id || strcasecmp(id, stream_id)))
		rc = sb_err_set(err, SB_EREJECT, 0, "get stream: the reply is not stream %s",
				stream_id);
	else if (rc == 0 && d && !json_is_null(d) && !json_is_string(d))
		rc = sb_err_set(err, SB_EREJECT, 0, "get stream: disabledDate is not a date");
	else if (rc == 0)
		*disabled = json_is_string(d) && json_string_length(d) > 0;
	json_decref(reply);
	free(path);
	return rc;
}

static void events_release(struct send_event *ev, size_t n)
{
	for (size_t i = 0; ev && i < n; i++) {
		free(ev[i].event_id);
		free(ev[i].request_id);
		free(ev[i].iun);
		free(ev[i].new_status);
		send_timeline_release(&ev[i].element);
	}
	free(ev);
}

static bool event_id_ok(const char *s)
{
	/* ^0\d{37}$ (the spec's lastEventId pattern): compared as text, so fixed width. */
	if (!s || strlen(s) != 38 || s[0] != '0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static long retry_after_ms(const struct sb_http_resp *resp)
{
	const char *v = sb_http_resp_header(resp, "retry-after");
	uint64_t ms;

	if (!v || sb_parse_u64z(v, 86400000ull, &ms) < 0)
		return -1;
	return (long)ms;
}

int send_stream_poll(struct send_client *c, const char *stream_id,
		     char cursor[SEND_EVENT_ID_MAX], send_event_store_fn store, void *ctx,
		     size_t *n_out, long *retry_after_ms_out, struct sb_err *err)
{
	struct sb_http_resp resp = { 0 };
	struct sb_buf path = SB_BUF_INIT(512);
	struct send_event *ev = NULL;
	json_t *j = NULL, *v;
	size_t i, n = 0;
	long ra;
	int rc;

	if (!stream_id || strlen(stream_id) != 36)
		return sb_err_set(err, SB_EINVAL, 0, "streamId: not a uuid");
	if (cursor[0] && !event_id_ok(cursor))
		return sb_err_set(err, SB_EINVAL, 0, "lastEventId: must match ^0\\d{37}$");
	sb_buf_addf(&path, "/delivery-progresses/%s/streams/", c->v_streams);
	send_url_escape(stream_id, &path);
	sb_buf_adds(&path, "/events");
	if (cursor[0])
		sb_buf_addf(&path, "?lastEventId=%s", cursor);
	rc = send_call(c, "GET", sb_buf_cstr(&path), NULL, &j, NULL, &resp, err);
	if (rc < 0) {
		/* The stream's 429 carries milliseconds in retry-after, not seconds. */
		if (rc == SB_ETEMP && err && err->http == 429 && err->retry_after >= 0)
			err->retry_after = (err->retry_after + 999) / 1000;
		goto cleanup;
	}
	/* An empty page is "[]": no body at all is a broken reply, not a quiet stream. */
	if (!json_is_array(j)) {
		rc = sb_err_set(err, SB_EREJECT, 0, "stream events: reply is not a list");
		goto cleanup;
	}
	if (json_array_size(j) > STREAM_MAX_EVENTS) {
		rc = sb_err_set(err, SB_EREJECT, 0, "stream events: more than %u in one page",
				STREAM_MAX_EVENTS);
		goto cleanup;
	}
	SB_ALLOC_ARRAY(ev, json_array_size(j));
	json_array_foreach(j, i, v) {
		const char *id = json_string_value(json_object_get(v, "eventId"));

		if (!event_id_ok(id) || (n > 0 && strcmp(id, ev[n - 1].event_id) <= 0) ||
		    !json_is_string(json_object_get(v, "notificationRequestId"))) {
			rc = sb_err_set(err, SB_EREJECT, 0, "stream events: event %zu malformed "
					"or out of order", i);
			goto cleanup;
		}
		ev[n].event_id = sb_xstrdup(id);
		ev[n].request_id = sb_xstrdup(json_string_value(json_object_get(v,
						"notificationRequestId")));
		ev[n].iun = json_is_string(json_object_get(v, "iun")) ?
			    sb_xstrdup(json_string_value(json_object_get(v, "iun"))) : NULL;
		ev[n].new_status = json_is_string(json_object_get(v, "newStatus")) ?
				   sb_xstrdup(json_string_value(json_object_get(v, "newStatus"))) :
				   NULL;
		n++;
		if (json_is_object(json_object_get(v, "element"))) {
			rc = send_timeline_parse(json_object_get(v, "element"), &ev[n - 1].element,
						 err);
			if (rc < 0)
				goto cleanup;
		}
	}
	ra = retry_after_ms(&resp);
	if (n) {
		rc = store(ctx, ev, n, err);
		if (rc < 0) {
			sb_err_prefix(err, "storing stream events");
			goto cleanup;
		}
		/* Stored: now, and only now, the next read acknowledges them. */
		memcpy(cursor, ev[n - 1].event_id, strlen(ev[n - 1].event_id) + 1);
	}
	if (n_out)
		*n_out = n;
	if (retry_after_ms_out)
		*retry_after_ms_out = ra < 0 ? (n ? 0 : 60000) : ra;
cleanup:
	events_release(ev, n);
	json_decref(j);
	sb_http_resp_release(&resp);
	sb_buf_release(&path);
	return rc;
}
