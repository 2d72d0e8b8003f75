#!/bin/sh
# Runs each libFuzzer binary given as argument for FUZZ_SECONDS, with a seed corpus:
# tests/fuzz/corpus/<name>/ when it exists, else files from fixtures/ that fit the target.
# New inputs go to build/fuzz/corpus/<name>/, crashes to build/fuzz/crashes/.
set -eu
secs=${FUZZ_SECONDS:-300}
mkdir -p build/fuzz/crashes
status=0
for bin in "$@"; do
	name=$(basename "$bin")
	corpus=build/fuzz/corpus/$name
	mkdir -p "$corpus"
	case "$name" in
	fuzz_act) for f in fixtures/acts/*/act.json fixtures/acts-broken/*/act.json; do
			[ -f "$f" ] && cp "$f" "$corpus/$(echo "$f" | tr '/' '_')"; done ;;
	fuzz_pdf*|fuzz_agid*)
		# the fixture PDFs, the veraPDF corpus when ../shared is there, garbage and a cut PDF
		for f in fixtures/acts/*/*.pdf ../shared/fixtures-external/pdfa/*.pdf; do
			[ -f "$f" ] && cp "$f" "$corpus/$(basename "$f")"; done
		head -c 4096 /dev/urandom > "$corpus/garbage.bin"
		f=$(ls fixtures/acts/*/*.pdf 2>/dev/null | head -n 1)
		[ -n "$f" ] && head -c 2000 "$f" > "$corpus/truncated.pdf" ;;
	fuzz_platform_replies)
		# one reply per parser; the first byte picks it, the second the ANPR status
		printf '\000\000{"elementId":"e1","category":"SEND_DIGITAL_FEEDBACK","timestamp":"%s","legalFactsIds":[{"key":"safestorage://PN_LEGAL_FACTS-1.pdf","category":"PEC_RECEIPT"}],"details":{"recIndex":0}}' \
			2026-12-01T10:00:00Z > "$corpus/timeline.bin"
		printf '\001\000{"idOperazioneANPR":"1","listaSoggetti":{"datiSoggetto":[{"generalita":{"codiceFiscale":{"codFiscale":"RSSMRA80A01H501U"}},"identificativi":{"idANPR":"AA10000BB"},"residenza":[{"dataDecorrenzaResidenza":"2019-06-15","indirizzo":{"cap":"00153","comune":{"nomeComune":"ROMA","siglaProvinciaIstat":"RM"},"toponimo":{"specie":"VIA","denominazioneToponimo":"X"},"numeroCivico":{"numero":"1"}}}]}]}}' \
			> "$corpus/anpr.bin"
		printf '\001\001{"idOperazioneANPR":"2","listaErrori":[{"codiceErroreAnomalia":"EN122","tipoErroreAnomalia":"E","testoErroreAnomalia":"x"}]}' \
			> "$corpus/anpr-error.bin"
		printf '\002\000{"codiceFiscale":"RSSMRA80A01H501U","since":"2026-01-01T00:00:00Z","digitalAddress":[{"digitalAddress":"a@pec.it","usageInfo":{"motivation":"CESSAZIONE_VOLONTARIA","dateEndValidity":"2023-01-31T00:00:00Z"}},{"digitalAddress":"b@pec.it","practicedProfession":"Avvocato"}]}' \
			> "$corpus/inad.bin"
		printf '\003\000eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJhdWQiOiJzZW5kIiwiZXhwIjoxfQ.c2ln' \
			> "$corpus/voucher.bin" ;;
	esac
	[ -d "tests/fuzz/corpus/$name" ] && cp tests/fuzz/corpus/"$name"/* "$corpus/" 2>/dev/null || true
	echo "== $name for ${secs}s"
	if ! "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=1048576 \
		-artifact_prefix=build/fuzz/crashes/"$name"- "$corpus"; then
		echo "fuzz: $name found a crash: see build/fuzz/crashes/" >&2
		status=1
	fi
done
exit $status
