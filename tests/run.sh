#!/bin/sh
# Runs each test binary given as argument, prints its output, and ends with
# one line "N passed, N failed" summed over every binary (cmocka's own lines
# are read for the counts). A binary that crashes, times out or exits
# non-zero without saying how many failed counts as one failure more.
# Exit status: 0 only when nothing failed.
set -u
passed=0
failed=0
broken=""
timeout_s=${SB_TEST_TIMEOUT:-600}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for t in "$@"; do
	name=${t#${SB_BUILD:-build/asan}/}
	echo "== $name"
	timeout "$timeout_s" "$t" >"$out" 2>&1
	rc=$?
	cat "$out"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$out" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		failed=$((failed + 1))
		broken="$broken $name(exit $rc)"
	elif [ "$rc" -eq 0 ] && [ "$p" -eq 0 ]; then
		failed=$((failed + 1))
		broken="$broken $name(ran no test)"
	fi
done
[ -n "$broken" ] && echo "broken test binaries:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
