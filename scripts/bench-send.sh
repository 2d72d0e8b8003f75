#!/bin/sh
# SEND client benchmarks against a local send-sim (results: docs/bench.md).
#
#   sh scripts/bench-send.sh [N]      (from the project root, after `make`)
#
# 1. upload of a 200 MB PDF: time and the client's peak RSS (target < 32 MB:
#    the file is hashed and sent in 64 KiB pieces, never held in memory);
# 2. notifications created per second (N, default 200), sequential, one
#    client, with no latency and with 50 ms of latency on every call.
# The driver (scripts/bench_send.c) links build/release/libsb.a.
set -eu
cd "$(dirname "$0")/.."
N=${1:-200}
B=build/release
PKGS="libcurl openssl libxml-2.0 jansson zlib sqlite3 libqpdf libmicrohttpd inih"
WORK=$(mktemp -d)
SIM_PID=
cleanup() {
	[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$B/send-sim" ] && [ -f "$B/libsb.a" ] || make --no-print-directory MODE=release all "$B/libsb.a"
# shellcheck disable=SC2086
cc -std=c11 -O2 -D_GNU_SOURCE -Icommon -Isend $(pkg-config --cflags $PKGS) \
	-o "$WORK/bench_send" scripts/bench_send.c "$B/libsb.a" \
	$(pkg-config --libs $PKGS) -lxmlsec1 -lxmlsec1-openssl -lpthread -lm

start_sim() {
	[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
	rm -f "$WORK/port"
	"$B/send-sim" --port 0 --port-file "$WORK/port" "$@" >"$WORK/sim.log" 2>&1 &
	SIM_PID=$!
	while [ ! -s "$WORK/port" ]; do sleep 0.05; done
	printf 'sim-send-key' >"$WORK/key"
	chmod 600 "$WORK/key"
	cat >"$WORK/bench.ini" <<EOF
[service]
sender_denomination = Comune di Esempio
sender_tax_id = 80012345676
[outbox]
dir = $WORK/outbox
[store]
path = $WORK/store.db
[send]
base_url = http://127.0.0.1:$(cat "$WORK/port")
api_key_file = $WORK/key
EOF
	chmod 600 "$WORK/bench.ini"
}

echo "## upload of a 200 MB PDF"
{ printf '%%PDF-1.4\n'; head -c $((200 * 1024 * 1024 - 64)) /dev/zero; printf '\n%%%%EOF\n'; } \
	>"$WORK/big.pdf"
start_sim
"$WORK/bench_send" "$WORK/bench.ini" upload "$WORK/big.pdf"
rm -f "$WORK/big.pdf"

echo "## $N notifications created, no latency"
start_sim
"$WORK/bench_send" "$WORK/bench.ini" create "$N"

echo "## $N notifications created, 50 ms latency per call"
start_sim --latency-ms 50
"$WORK/bench_send" "$WORK/bench.ini" create "$N"
