#!/bin/sh
# make deps: install the Debian packages send-bridge needs, only those missing.
# Idempotent; works as root or through sudo. SB_SKIP_DEPS=1 skips it (packagers).
set -eu
[ "${SB_SKIP_DEPS:-0}" = 1 ] && exit 0
pkgs="gcc make pkg-config libcurl4-openssl-dev libssl-dev openssl libxml2-dev libxml2-utils
libjansson-dev zlib1g-dev libsqlite3-dev sqlite3 libqpdf-dev qpdf libmicrohttpd-dev
libinih-dev libcmocka-dev libxmlsec1-dev libsystemd-dev ghostscript curl ${SB_DEPS_EXTRA:-}"
missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing packages:$missing (no apt-get here: install them by hand)" >&2
	exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps: missing packages:$missing; run 'make deps' as root" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
