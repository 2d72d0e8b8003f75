# protocol/: see protocol/README.md
PROTOCOL_SRCS := \
	protocol/proto.c \
	protocol/proto_daily.c \
	protocol/proto_rest.c \
	protocol/proto_segnatura.c \
	protocol/proto_store.c

# xmlsec's headers need its own flags (XMLSEC_NO_SIZE_T changes its ABI).
$(B)/protocol/proto_segnatura.o: CPPFLAGS += $(shell pkg-config --cflags xmlsec1-openssl 2>/dev/null)
