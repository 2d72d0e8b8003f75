#!/bin/sh
# make bench: runs every scripts/bench-*.sh (one per module), each printing lines that
# start with "bench:"; results are kept in docs/bench.md by hand with the machine's
# description (benchmarks never run inside `make test`).
set -eu
cd "$(dirname "$0")/.."
found=0
for b in scripts/bench-*.sh; do
	[ -f "$b" ] || continue
	found=1
	echo "== $b"
	sh "$b"
done
[ "$found" -eq 1 ] || echo "bench: no benchmark scripts yet"
