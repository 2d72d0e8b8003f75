/*
 * libFuzzer target for proto_id_parse (protocol numbers typed by staff and
 * read from SEND's paProtocolNumber). There is no `make fuzz` rule yet
 * (TODO(#6): wire tests/fuzz/ into the Makefile); after `make MODE=asan test-build`:
 *   clang -fsanitize=fuzzer,address -D_GNU_SOURCE -Icommon -Iprotocol -Iservice \
 *     $(pkg-config --cflags libxml-2.0 xmlsec1-openssl) -o fuzz_proto_id \
 *     tests/fuzz/fuzz_proto_id.c protocol/proto.c common/sb_parse.c build/asan/libsb.a \
 *     $(pkg-config --libs libcurl openssl libxml-2.0 jansson zlib sqlite3 libqpdf \
 *     libmicrohttpd inih) -lxmlsec1 -lxmlsec1-openssl -lpthread -lm -lsystemd
 *   ./fuzz_proto_id -max_total_time=60
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
