# tests/fuzz/: libFuzzer targets (clang), see tests/fuzz/README.md.
#   make fuzz                 build, then run each target for FUZZ_TIME seconds
#   make fuzz FUZZ_TIME=60
FUZZ_B    := build/fuzz
FUZZ_TIME ?= 300
FUZZ_CC   ?= clang
FUZZ_SRCS := $(COMMON_SRCS) $(AGID_SRCS)
FUZZ_BINS := $(FUZZ_B)/fuzz_agid_pdfa

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRCS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) -D_GNU_SOURCE -Icommon -Iagid $(PKG_CFLAGS) -std=c11 -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
		-o $@ $^ $(PKG_LIBS)

fuzz: $(FUZZ_BINS)
	$(Q)sh fixtures/make-fixtures.sh
	$(Q)sh tests/fuzz/run.sh $(FUZZ_TIME) $(FUZZ_BINS)
