#!/bin/sh
# make lint: the checks a compiler does not make.
#  - banned calls (sb_banned.h catches them at compile time; this also covers files
#    that do not include it, such as tests)
#  - C++ comments (STYLE.md 2.7)
#  - sim/ including client modules (DESIGN.md: a bug shared by client and simulator
#    would pass every test)
#  - SQL built with printf-style formatting (prepared statements only)
#  - lines over 100 columns, tabs counted as 8 (STYLE.md 2: 80-100 columns)
set -u
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build/*')
for f in $files; do
	case "$f" in common/sb_banned.h) continue ;; esac
	if grep -nE '\b(strcpy|strcat|strncpy|strncat|sprintf|vsprintf|gets|strtok|atoi|atol|gmtime|localtime|ctime|asctime)[[:space:]]*\(' "$f" |
	   grep -vE 'snprintf|vsnprintf|gmtime_r|localtime_r|strtok_r' >/dev/null; then
		echo "$f: banned function:"
		grep -nE '\b(strcpy|strcat|strncpy|strncat|sprintf|vsprintf|gets|strtok|atoi|atol|gmtime|localtime|ctime|asctime)[[:space:]]*\(' "$f" |
			grep -vE 'snprintf|vsnprintf|gmtime_r|localtime_r|strtok_r'
		status=1
	fi
	if grep -nE '^[[:space:]]*//|[;{}][[:space:]]*//[^"]*$' "$f" | grep -v 'http' >/dev/null; then
		echo "$f: // comment (use /* */)"
		status=1
	fi
done
for f in $(ls sim/*.c sim/*.h 2>/dev/null); do
	if grep -nE '#include[[:space:]]+"(send_|pdnd_|agid_|proto_|svc_)' "$f"; then
		echo "$f: sim/ must not include client or service modules"
		status=1
	fi
done
for f in $files; do
	case "$f" in tests/*) continue ;; esac   # tests may build SQL from their own constants
	if grep -nE '(snprintf|sb_buf_addf|sb_xasprintf)\(.*"(SELECT|INSERT|UPDATE|DELETE)[^"]*%' "$f"; then
		echo "$f: SQL built with a format string: use a prepared statement"
		status=1
	fi
done
for f in $files; do
	if expand -t 8 "$f" | awk 'length > 100 { found = 1 } END { exit !found }'; then
		expand -t 8 "$f" | awk -v f="$f" 'length > 100 { print f ":" NR ": over 100 columns" }'
		status=1
	fi
done
[ "$status" -eq 0 ] && echo "lint ok"
exit "$status"
