#!/bin/sh
# make bench: runs every scripts/bench-*.sh with the release build; each
# prints a markdown table (copy the results into docs/bench.md).
set -eu
for s in scripts/bench-*.sh; do
	[ -f "$s" ] || continue
	echo "== $s"
	sh "$s"
done
