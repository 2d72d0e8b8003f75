#!/bin/sh
# Runs each libFuzzer binary for SECONDS with a seed corpus made of the
# project's fixture PDFs and, when ../shared is there, the veraPDF corpus.
# New inputs are kept in build/fuzz/corpus-NAME (not in the tree); crashes
# go to build/fuzz/artifacts/. Exit status: non-zero on any finding.
# usage: sh tests/fuzz/run.sh SECONDS BINARY...
set -eu
secs=$1
shift
seeds=build/fuzz/seeds
rm -rf "$seeds"
mkdir -p "$seeds" build/fuzz/artifacts
for f in fixtures/acts/*/*.pdf ${SB_SHARED:-../shared}/fixtures-external/pdfa/*.pdf; do
	[ -f "$f" ] && cp "$f" "$seeds/$(echo "$f" | tr '/' '_')"
done
printf 'not a pdf' > "$seeds/garbage"
head -c 600 fixtures/acts/fine-pagopa/verbale.pdf > "$seeds/truncated.pdf" 2>/dev/null || true
for bin in "$@"; do
	name=$(basename "$bin")
	mkdir -p "build/fuzz/corpus-$name"
	echo "== $name: $secs s"
	ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/ \
		"build/fuzz/corpus-$name" "$seeds"
done
