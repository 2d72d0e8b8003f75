# tests/: one cmocka binary per tests/<module>/test_<unit>.c, linked with libsb.a and
# tests/helpers (see tests/README.md).
TEST_HELPER_SRCS := $(wildcard tests/helpers/*.c)
TEST_SRCS := $(sort $(wildcard tests/*/test_*.c))
# libFuzzer targets: make fuzz (tests/fuzz/README.md)
-include tests/fuzz/fuzz.mk
