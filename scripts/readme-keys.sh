#!/bin/sh
# Rewrites the configuration reference in README.md (between the config-keys markers)
# from the schema, via `send-bridge config keys --markdown`.
# usage: sh scripts/readme-keys.sh [path/to/send-bridge]
set -eu
cd "$(dirname "$0")/.."
bin=${1:-bin/send-bridge}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$bin" config keys --markdown > "$tmp"
awk -v keys="$tmp" '
	/<!-- config-keys:begin -->/ { print; while ((getline line < keys) > 0) print line; skip = 1; next }
	/<!-- config-keys:end -->/ { skip = 0 }
	!skip { print }
' README.md > README.md.new
mv README.md.new README.md
