/*
 * libFuzzer target for the parsers of what the platforms answer: a reply
 * comes over the network, so a proxy's error page, a truncated body or a
 * hostile gateway must give an error, never a crash. The first byte picks
 * the parser, the rest is the reply:
 *   0  send_timeline_parse (a SEND timeline element, as the event stream
 *      and the sent notification carry it)
 *   1  pdnd_anpr_parse (an ANPR C030/C001 reply; the second byte picks the
 *      HTTP status and whether the subject's tax code is given)
 *   2  pdnd_inad_parse, then pdnd_inad_pick on what it found
 *   3  pdnd_jws_decode_part (a voucher's header and payload)
 * Invariants: an error has a message; what a success returns is within
 * what it claims (counts, picked domicile among the items).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sb_common.h"
#include "sb_json.h"
#include "pdnd_anpr.h"
#include "pdnd_inad.h"
#include "pdnd_int.h"
#include "send_client.h"
#include "send_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void timeline(const char *body, size_t len)
{
	struct sb_err err = SB_ERR_INIT;
	struct send_timeline_element e;
	json_t *j = NULL;

	if (sb_json_parse(body, len, SB_MAX_JSON_BODY, "fuzz", &j, &err) < 0) {
		SB_ASSERT(err.msg[0]);
		return;
	}
	if (send_timeline_parse(j, &e, &err) == 0) {
		SB_ASSERT(e.element_id && e.category);
		SB_ASSERT(e.rec_index >= -1 && e.rec_index < 1000);
		for (size_t i = 0; i < e.nlegal_facts; i++)
			SB_ASSERT(e.legal_facts[i].key);
		send_timeline_release(&e);
	} else {
		SB_ASSERT(err.msg[0]);
	}
	json_decref(j);
}

static void anpr(uint8_t how, const char *body, size_t len)
{
	static const long statuses[] = { 200, 400, 404, 500 };
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_anpr_result r;

	memset(&r, 0, sizeof(r));
	if (pdnd_anpr_parse(statuses[how % 4], body, len, how & 4 ? NULL : "RSSMRA80A01H501U",
			    &r, &err) < 0)
		SB_ASSERT(err.msg[0]);
	pdnd_anpr_result_release(&r);
}

static void inad(const char *body, size_t len)
{
	struct sb_err err = SB_ERR_INIT;
	struct pdnd_inad_result r;

	memset(&r, 0, sizeof(r));
	if (pdnd_inad_parse(body, len, &r, &err) == 0) {
		const struct pdnd_domicile *d = pdnd_inad_pick(&r, 1767225600, false);

		SB_ASSERT(r.n == 0 || r.items);
		SB_ASSERT(!d || (d >= r.items && d < r.items + r.n));
	} else {
		SB_ASSERT(err.msg[0]);
	}
	pdnd_inad_result_release(&r);
}

static void jws(const char *s)
{
	for (int part = 0; part < 2; part++) {
		struct sb_err err = SB_ERR_INIT;
		json_t *j = NULL;

		if (pdnd_jws_decode_part(s, part, &j, &err) == 0)
			SB_ASSERT(json_is_object(j));
		else
			SB_ASSERT(err.msg[0]);
		json_decref(j);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body;
	size_t len;

	if (size < 2)
		return 0;
	/* A NUL-terminated copy: the parsers get a length, jws a C string. */
	len = size - 2;
	body = sb_xmalloc(len + 1);
	memcpy(body, data + 2, len);
	body[len] = '\0';
	switch (data[0] % 4) {
	case 0:
		timeline(body, len);
		break;
	case 1:
		anpr(data[1], body, len);
		break;
	case 2:
		inad(body, len);
		break;
	default:
		jws(body);
		break;
	}
	free(body);
	return 0;
}
