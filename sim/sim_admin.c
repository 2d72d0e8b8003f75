/*
 * /_sim/: the tests' channel to the simulator (health, faults). Never
 * faulted, never delayed.
 */
#include <jansson.h>
#include <string.h>

#include "sb_common.h"
#include "sb_json.h"
#include "sim.h"

static void faults_json(struct sim *s, struct sim_response *rs)
{
	sim_reply_json(rs, 200,
		       "{\"latencyMs\":%u,\"pct5xx\":%u,\"pct429\":%u,\"pctDrop\":%u,"
		       "\"pctLost\":%u,\"retryAfter\":%u,\"failNth\":%llu,\"calls\":%llu}",
		       s->faults.latency_ms, s->faults.pct_5xx, s->faults.pct_429,
		       s->faults.pct_drop, s->faults.pct_lost, s->faults.retry_after_s,
		       (unsigned long long)s->faults.fail_nth, (unsigned long long)s->calls);
}

static bool set_faults(struct sim *s, const struct sim_request *rq, struct sim_response *rs)
{
	static const char *const keys[] = { "latencyMs", "pct5xx", "pct429", "pctDrop",
					    "retryAfter", "failNth", "pctLost" };
	struct sb_err err = SB_ERR_INIT;
	struct sim_faults f = s->faults;
	unsigned *fields[] = { &f.latency_ms, &f.pct_5xx, &f.pct_429, &f.pct_drop,
			       &f.retry_after_s, NULL, &f.pct_lost };
	json_t *root = NULL;

	if (sb_json_parse(rq->body, rq->body_len, 65536, "faults", &root, &err) < 0 ||
	    !json_is_object(root)) {
		sim_reply_json(rs, 400, "{\"message\":\"body must be a JSON object\"}");
		json_decref(root);
		return true;
	}
	for (size_t i = 0; i < SB_ARRAY_SIZE(keys); i++) {
		int64_t v;
		int rc = sb_json_get_int(root, keys[i], 0,
					 i == 0 ? 60000 : i == 5 ? INT64_MAX : 100, &v, &err);

		if (rc == SB_ENOTFOUND)
			continue;
		if (rc < 0) {
			sim_reply_json(rs, 400, "{\"message\":\"%s\"}", err.msg);
			json_decref(root);
			return true;
		}
		if (fields[i])
			*fields[i] = (unsigned)v;
		else
			f.fail_nth = (uint64_t)v;
	}
	json_decref(root);
	if (f.pct_5xx + f.pct_429 + f.pct_drop + f.pct_lost > 100) {
		sim_reply_json(rs, 400, "{\"message\":\"fault shares add up to more than 100\"}");
		return true;
	}
	s->faults = f;
	s->calls = 0;
	faults_json(s, rs);
	return true;
}

bool sim_admin_handle(struct sim *s, const struct sim_request *rq, struct sim_response *rs)
{
	bool done = false;

	pthread_mutex_lock(&s->lock);
	if (!strcmp(rq->path, "/_sim/health") && !strcmp(rq->method, "GET")) {
		sim_reply_json(rs, 200, "{\"status\":\"ok\"}");
		done = true;
	} else if (!strcmp(rq->path, "/_sim/faults")) {
		if (!strcmp(rq->method, "GET"))
			faults_json(s, rs);
		else if (!strcmp(rq->method, "POST"))
			set_faults(s, rq, rs);
		else
			sim_reply_json(rs, 405, "{\"message\":\"Method Not Allowed\"}");
		done = true;
	}
	pthread_mutex_unlock(&s->lock);
	return done;
}
