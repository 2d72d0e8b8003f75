# tests/: one cmocka binary per tests/<module>/test_<unit>.c, linked with libsb.a and
# tests/helpers (see tests/README.md).
# tests/helpers/test_*.c test the helpers themselves: binaries, not part of libth.a.
TEST_HELPER_SRCS := $(filter-out tests/helpers/test_%,$(wildcard tests/helpers/*.c))
TEST_SRCS := $(sort $(wildcard tests/*/test_*.c))
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
