#!/bin/sh
# install-deps.sh - install what kmsfs needs on Debian 12, with apt-get.
#   tools/install-deps.sh          build + test dependencies
#   tools/install-deps.sh --bench  also the peers and workloads tools/bench uses
# Runs apt-get through sudo when not root. Safe to run again (no-op when present).
set -eu

pkgs="build-essential cmake pkg-config git
      libfuse3-dev fuse3 libssl-dev libsodium-dev libinih-dev libsqlite3-dev libjansson-dev
      libp11-kit-dev softhsm2
      libmicrohttpd-dev libcurl4-openssl-dev awscli python3-boto3 python3-cryptography faketime
      clang libclang-rt-14-dev
      attr python3 python3-pytest e2fsprogs util-linux"
if [ "${1:-}" = "--bench" ]; then
	pkgs="$pkgs gocryptfs securefs encfs fio linux-source-6.1 xz-utils wrk"
fi

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "install-deps: need root (or sudo) to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
