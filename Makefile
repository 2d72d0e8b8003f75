# send-bridge: one Makefile, no recursion (see STYLE.md 2.9).
#
#   make            build bin/send-bridge and bin/send-sim (MODE=release)
#   make test       install deps, build with ASan+UBSan, run every test
#   make demo       install deps, build, run the pipeline on the simulators
#   make deps       install the Debian packages the project needs (idempotent)
#   make bench      benchmarks, results in docs/bench.md
#   make fuzz       libFuzzer targets (clang), bounded time
#   make install    PREFIX=/usr/local DESTDIR=
#   make lint       banned calls, // comments, sim/ including client modules
#   make check-headers   every header compiles on its own
#   make clean
#
# MODE=debug|release|asan selects build/$(MODE)/; V=1 shows the commands.

MODE    ?= release
B       := build/$(MODE)
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
ifeq ($(CC),cc)
CC      := gcc
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKGS      := libcurl openssl libxml-2.0 jansson zlib sqlite3 libqpdf libmicrohttpd inih
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lxmlsec1 -lxmlsec1-openssl -lpthread -lm
TEST_LIBS  = $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -std=c11 -Wall -Wextra -Werror -Wformat=2 -Wvla -Wwrite-strings -Wstrict-prototypes \
	-Wold-style-definition -Wshadow -Wcast-qual -Wno-format-nonliteral

ifeq ($(MODE),debug)
OPT := -O0 -g
else ifeq ($(MODE),asan)
OPT := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifeq ($(MODE),release)
OPT := -O2 -g
else ifeq ($(MODE),fuzz)
CC  := clang
OPT := -O1 -g -fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer
else
$(error MODE must be debug, release, asan or fuzz)
endif

CPPFLAGS += -D_GNU_SOURCE -Icommon -Iagid -Ipdnd -Isend -Iprotocol -Iservice -Itests/helpers $(PKG_CFLAGS) \
	-DSB_DATADIR='"$(PREFIX)/share/send-bridge"'
CFLAGS   += $(WARN) $(OPT) -pthread
LDFLAGS  += $(filter -fsanitize=%,$(OPT)) -pthread

include common/module.mk
include agid/module.mk
include pdnd/module.mk
include send/module.mk
include protocol/module.mk
include service/module.mk
include sim/module.mk
include tests/module.mk

LIB_SRCS  := $(AGID_SRCS) $(PDND_SRCS) $(SEND_SRCS) $(PROTOCOL_SRCS) $(SERVICE_SRCS)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(B)/%.o)
LIB_OBJS  := $(LIB_SRCS:%.c=$(B)/%.o)
MAIN_OBJ  := $(B)/service/main.o
SIM_OBJS  := $(SIM_SRCS:%.c=$(B)/%.o)
TH_OBJS   := $(TEST_HELPER_SRCS:%.c=$(B)/%.o)
TEST_BINS := $(TEST_SRCS:%.c=$(B)/%)
ALL_OBJS  := $(COMMON_OBJS) $(LIB_OBJS) $(MAIN_OBJ) $(SIM_OBJS) $(TH_OBJS) $(TEST_SRCS:%.c=$(B)/%.o) \
	$(FUZZ_SRCS:%.c=$(B)/%.o)

FLAGS := $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS)

.PHONY: all deps test test-build demo bench fuzz install clean lint check-headers fixtures FORCE

all: bin/send-bridge bin/send-sim

deps:
	$(Q)sh scripts/deps.sh

$(B)/%.o: %.c $(B)/.flags
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# Rewritten only when the flags change, so a change of flags rebuilds everything (git's GIT-CFLAGS).
$(B)/.flags: FORCE
	@mkdir -p $(@D)
	@echo '$(FLAGS)' | cmp -s - $@ || echo '$(FLAGS)' > $@

$(B)/libsbcommon.a: $(COMMON_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/libsb.a: $(LIB_OBJS) $(COMMON_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/send-bridge: $(MAIN_OBJ) $(B)/libsb.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(B)/libsb.a $(PKG_LIBS) -lsystemd

# The simulators link common/ only: they must not share code with the clients they check.
$(B)/send-sim: $(SIM_OBJS) $(B)/libsbcommon.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(SIM_OBJS) $(B)/libsbcommon.a $(PKG_LIBS)

# Compared, not dated: after `make MODE=asan all` an older release build must still
# replace bin/'s copies (a bench or demo on ASan binaries measures the sanitiser).
bin/send-bridge: $(B)/send-bridge FORCE
	@mkdir -p bin && { cmp -s $< $@ || cp $< $@; }
bin/send-sim: $(B)/send-sim FORCE
	@mkdir -p bin && { cmp -s $< $@ || cp $< $@; }

$(B)/libth.a: $(TH_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

# The fixture PDFs come with every test binary, so one binary runs alone on a fresh clone.
$(B)/tests/%: $(B)/tests/%.o $(B)/libth.a $(B)/libsb.a | fixtures
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(B)/libth.a $(B)/libsb.a $(PKG_LIBS) $(TEST_LIBS) -lsystemd

fixtures:
	$(Q)sh fixtures/make-fixtures.sh

# make fuzz: every tests/fuzz/fuzz_*.c under libFuzzer with ASan+UBSan, FUZZ_SECONDS each
# (default 300), seed corpus from the fixtures; crashes are written to build/fuzz/crashes/.
FUZZ_SECONDS ?= 300
FUZZ_BINS := $(FUZZ_SRCS:%.c=build/fuzz/%)
$(B)/tests/fuzz/%: $(B)/tests/fuzz/%.o $(B)/libsb.a
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(B)/libsb.a $(PKG_LIBS) -lsystemd

fuzz:
	$(Q)SB_DEPS_EXTRA="clang libclang-rt-14-dev" sh scripts/deps.sh
	$(Q)$(MAKE) --no-print-directory MODE=fuzz $(FUZZ_BINS)
	$(Q)sh fixtures/make-fixtures.sh
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) sh scripts/fuzz.sh $(FUZZ_BINS)

# make test: the release build (so -O2-only warnings fail it too), the ASan+UBSan build of
# everything, then every test binary; the summary line is "N passed, N failed" and the exit
# status is non-zero on any failure.
test: deps
	$(Q)$(MAKE) --no-print-directory MODE=release all
	$(Q)$(MAKE) --no-print-directory MODE=asan test-build
	$(Q)SB_BUILD=build/asan sh tests/run.sh $(TEST_SRCS:%.c=build/asan/%)

test-build: $(TEST_BINS) $(B)/send-bridge $(B)/send-sim

demo: deps
	$(Q)$(MAKE) --no-print-directory MODE=release all
	$(Q)sh fixtures/make-fixtures.sh
	$(Q)sh scripts/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory MODE=release all
	$(Q)sh scripts/bench.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/send-bridge \
		$(DESTDIR)$(PREFIX)/share/doc/send-bridge
	install -m 0755 bin/send-bridge bin/send-sim $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 contrib/* $(DESTDIR)$(PREFIX)/share/send-bridge/
	install -m 0644 README.md docs/act-format.md $(DESTDIR)$(PREFIX)/share/doc/send-bridge/

lint:
	$(Q)sh scripts/lint.sh

check-headers: $(B)/.flags
	$(Q)for h in common/*.h agid/*.h pdnd/*.h send/*.h protocol/*.h service/*.h sim/*.h; do \
		[ -f "$$h" ] || continue; \
		printf '#include "%s"\n' "$$(basename $$h)" | \
		$(CC) $(CPPFLAGS) $(CFLAGS) -I$$(dirname $$h) -Isim -x c -fsyntax-only - || \
		{ echo "header does not compile alone: $$h"; exit 1; }; \
	done; echo "headers ok"

clean:
	rm -rf build bin fixtures/generated

FORCE:

-include $(ALL_OBJS:.o=.d)
