#!/bin/sh
# make demo: the whole job on the local simulators.
# Starts send-sim on loopback, writes a configuration for it under build/demo/
# (a protocol seal key made for the demo; no PDND agreements, so recipients are
# notified at the act's own PEC and address), drops the sample acts (and one
# broken act) into the outbox the way an office's software does (tmp/ then an
# atomic rename into new/), runs `send-bridge run` until every act is closed or
# rejected, prints the status table and where the rejected act's reason is, and
# stops everything it started.
set -eu
cd "$(dirname "$0")/.."
BIN=${SB_BIN:-bin}
DEMO=build/demo
TIMEOUT=${DEMO_TIMEOUT:-180}
XSD=${SB_SEGNATURA_XSD:-}
for x in ../shared/specs/agid/segnatura_protocollo.xsd \
	/usr/local/share/send-bridge/agid/segnatura_protocollo.xsd; do
	[ -n "$XSD" ] && break
	[ -f "$x" ] && XSD=$(cd "$(dirname "$x")" && pwd)/$(basename "$x")
done
if [ -z "$XSD" ]; then
	echo "demo: AgID's segnatura_protocollo.xsd not found: set SB_SEGNATURA_XSD" \
		"(see docs/protocol-adapters.md)" >&2
	exit 1
fi
rm -rf "$DEMO"
mkdir -p "$DEMO/secrets" "$DEMO/outbox/tmp" "$DEMO/outbox/new" "$DEMO/outbox/work" \
	"$DEMO/outbox/done" "$DEMO/outbox/rejected"
chmod 700 "$DEMO/secrets"
DEMO=$(cd "$DEMO" && pwd)

SIM=
RUN=
stop_all() {
	[ -n "$RUN" ] && kill "$RUN" 2>/dev/null && wait "$RUN" 2>/dev/null || true
	[ -n "$SIM" ] && kill "$SIM" 2>/dev/null && wait "$SIM" 2>/dev/null || true
}
trap stop_all EXIT INT TERM

"$BIN/send-sim" --port 0 --port-file "$DEMO/sim.port" --send-step-ms 100 \
	>"$DEMO/send-sim.log" 2>&1 &
SIM=$!
i=0
while [ ! -s "$DEMO/sim.port" ]; do
	i=$((i + 1))
	if [ $i -gt 250 ] || ! kill -0 $SIM 2>/dev/null; then
		echo "demo: send-sim did not start; see $DEMO/send-sim.log" >&2
		exit 1
	fi
	sleep 0.02
done
PORT=$(cat "$DEMO/sim.port")
echo "demo: send-sim listening on 127.0.0.1:$PORT"

umask 077
printf 'sim-send-key\n' > "$DEMO/secrets/send-api-key"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DEMO/secrets/seal.key" \
	2>/dev/null
umask 022
openssl req -new -x509 -key "$DEMO/secrets/seal.key" -out "$DEMO/seal.crt" -days 30 \
	-subj "/C=IT/O=Comune di Esempio/CN=sigillo protocollo (demo)" 2>/dev/null
cat > "$DEMO/send-bridge.ini" <<INI
[service]
sender_denomination = Comune di Esempio
sender_tax_id = 80012345676
workers = 2

[outbox]
dir = outbox
retry_base = 1
retry_max = 10
poll_interval = 2
rescan_interval = 5

[store]
path = send-bridge.db

[send]
base_url = http://127.0.0.1:$PORT
api_key_file = secrets/send-api-key

[protocol]
backend = embedded
register = PG
ipa_code = c_x000
aoo_code = AOO1
seal_key_file = secrets/seal.key
seal_cert_file = seal.crt
segnatura_xsd = $XSD

[web]
listen = 127.0.0.1:0

[office.polizia-municipale]
operators = agente.bianchi, agente.verdi
classification = 6.3

[office.tributi]
operators = funz.neri
classification = 4.2
INI
"$BIN/send-bridge" config check -c "$DEMO/send-bridge.ini" >/dev/null

"$BIN/send-bridge" run -c "$DEMO/send-bridge.ini" >"$DEMO/send-bridge.log" 2>&1 &
RUN=$!
echo "demo: send-bridge run started (log: $DEMO/send-bridge.log)"

# What an office's software does: write into tmp/, then rename into new/.
n=0
for src in fixtures/acts/*/ fixtures/acts-broken/cf-check-char/; do
	n=$((n + 1))
	id=$(printf '2026-DEMO-%04d' "$n")
	cp -R "$src" "$DEMO/outbox/tmp/$id"
	rm -f "$DEMO/outbox/tmp/$id/expect" "$DEMO/outbox/tmp/$id/no-pdf"
	mv "$DEMO/outbox/tmp/$id" "$DEMO/outbox/new/$id"
	echo "demo: dropped $id ($(basename "$src"))"
done

echo "demo: waiting until every act is closed or rejected (at most ${TIMEOUT}s)"
t=0
while :; do
	fin=$(( $(ls "$DEMO/outbox/done" | wc -l) + $(ls "$DEMO/outbox/rejected" | wc -l) ))
	[ "$fin" -ge "$n" ] && break
	if ! kill -0 "$RUN" 2>/dev/null; then
		echo "demo: send-bridge stopped; see $DEMO/send-bridge.log" >&2
		exit 1
	fi
	t=$((t + 1))
	if [ $t -gt $((TIMEOUT * 2)) ]; then
		echo "demo: not finished after ${TIMEOUT}s; see $DEMO/send-bridge.log" >&2
		"$BIN/send-bridge" status -c "$DEMO/send-bridge.ini" || true
		exit 1
	fi
	sleep 0.5
done
# The daemon's own count of its platform calls, read where a monitoring system would.
WEB=$(sed -n 's/.* web_port=\([0-9]*\).*/\1/p' "$DEMO/send-bridge.log" | head -n 1)
CALLS=
[ -n "$WEB" ] && CALLS=$(curl -s "http://127.0.0.1:$WEB/metrics" 2>/dev/null |
	sed -n 's/^sendbridge_api_calls_total{platform="\([a-z]*\)"} \([1-9][0-9]*\)$/\1 \2/p' |
	paste -sd, - | sed 's/,/, /g')
kill "$RUN"
wait "$RUN" || true
RUN=

echo
"$BIN/send-bridge" status -c "$DEMO/send-bridge.ini" || true
echo
for d in "$DEMO"/outbox/done/*/; do
	[ -d "$d/receipts" ] && echo "demo: $(basename "$d"): $(ls "$d/receipts" | wc -l) legal facts in $d""receipts/"
done
for r in "$DEMO"/outbox/rejected/*/reason.json; do
	[ -f "$r" ] && echo "demo: rejected act, reason in $r" && sed 's/^/    /' "$r"
done
[ -n "$CALLS" ] && echo "demo: platform calls by send-bridge (its /metrics while it ran): $CALLS"
echo "demo: SEND's ledger: $(curl -s "http://127.0.0.1:$PORT/_sim/send/ledger" 2>/dev/null | head -c 300 || true)"
