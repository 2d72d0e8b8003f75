/*
 * libFuzzer target for proto_id_parse (protocol numbers typed by staff and
 * read from SEND's paProtocolNumber); `make fuzz` builds and runs it.
 * Invariant: a parsed id formats back to a text that parses to the same id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = sb_xstrndup((const char *)data, size);
	struct proto_id id, again;
	char text[PROTO_ID_TEXT_SIZE];

	if (proto_id_parse(s, "PG", 2026, &id, NULL) == 0) {
		proto_id_format(&id, text, sizeof(text));
		SB_ASSERT(proto_id_parse(text, NULL, 0, &again, NULL) == 0);
		SB_ASSERT(!strcmp(id.reg, again.reg) && id.year == again.year &&
			  id.number == again.number);
	}
	free(s);
	return 0;
}
