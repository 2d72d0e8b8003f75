#!/bin/sh
# make demo: the main job on the local simulators.
# Starts send-sim on loopback, writes a configuration for it under build/demo/,
# drops the sample acts (and one broken act) into the outbox the way an office's
# software does (tmp/ then an atomic rename into new/), runs send-bridge on them,
# prints where every act stands, and stops everything it started.
set -eu
cd "$(dirname "$0")/.."
BIN=${SB_BIN:-bin}
DEMO=build/demo
rm -rf "$DEMO"
mkdir -p "$DEMO/secrets" "$DEMO/outbox/tmp" "$DEMO/outbox/new" "$DEMO/outbox/work" \
	"$DEMO/outbox/done" "$DEMO/outbox/rejected"
chmod 700 "$DEMO/secrets"

"$BIN/send-sim" --port 0 --port-file "$DEMO/sim.port" >"$DEMO/send-sim.log" 2>&1 &
SIM=$!
trap 'kill $SIM 2>/dev/null; wait $SIM 2>/dev/null || true' EXIT INT TERM
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
printf 'demo-api-key\n' > "$DEMO/secrets/send-api-key"
umask 022
cat > "$DEMO/send-bridge.ini" <<INI
[service]
sender_denomination = Comune di Esempio
sender_tax_id = 80012345676
workers = 2

[outbox]
dir = outbox

[store]
path = send-bridge.db

[send]
base_url = http://127.0.0.1:$PORT
api_key_file = secrets/send-api-key

[web]
listen = 127.0.0.1:0

[office.polizia-municipale]
operators = agente.bianchi, agente.verdi

[office.tributi]
operators = funz.neri
INI
"$BIN/send-bridge" config check -c "$DEMO/send-bridge.ini"

# What an office's software does: write into tmp/, then rename into new/.
n=0
for src in fixtures/acts/*/ fixtures/acts-broken/cf-check-char/; do
	n=$((n + 1))
	id=$(printf '2026-DEMO-%04d' "$n")
	cp -R "$src" "$DEMO/outbox/tmp/$id"
	rm -f "$DEMO/outbox/tmp/$id/expect" "$DEMO/outbox/tmp/$id/no-pdf"
	mv "$DEMO/outbox/tmp/$id" "$DEMO/outbox/new/$id"
	echo "demo: dropped $id (from $src)"
done

echo
echo "demo: checking each act as send-bridge's intake does"
printf '%-16s %-20s %s\n' ACT OFFICE RESULT
for d in "$DEMO"/outbox/new/*/; do
	id=$(basename "$d")
	office=$(sed -n 's/^ *"office": *"\([^"]*\)".*/\1/p' "$d/act.json" | head -n 1)
	if out=$("$BIN/send-bridge" -c "$DEMO/send-bridge.ini" act check "$d" 2>&1); then
		printf '%-16s %-20s %s\n' "$id" "$office" "valid"
	else
		printf '%-16s %-20s %s\n' "$id" "$office" "rejected: $(echo "$out" | sed -n 2p)"
	fi
done
echo
echo "demo: the daemon (send-bridge run), SEND submission, PDND resolution and protocol"
echo "      registration are being assembled (issues 3-7); this demo runs what exists."
