#!/bin/sh
# run.sh - the whole kmsfs test suite, as CI runs it (.ci/run calls this).
#
# Installs the dependencies (apt-get), then builds kmsfs twice with
# warnings as errors - a normal build and an AddressSanitizer +
# UndefinedBehaviorSanitizer build - and runs every test (unit tests and
# the FUSE integration tests, which mount kmsfs for real) against each.
# Needs root (or sudo) for apt-get and /dev/fuse.
#
# Then the libFuzzer targets in tests/fuzz (kmsd's request handler, the
# SigV4 parser) run for a bounded time each (FUZZ_SECONDS, default 60).
#
#   tests/run.sh            both builds, then the fuzzers
#   tests/run.sh plain      only the normal build
#   tests/run.sh asan       only the sanitizer build
#   tests/run.sh fuzz       only the fuzzers
set -eu
cd "$(dirname "$0")/.."

tools/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
variants=${1:-"plain asan fuzz"}
status=0
for variant in $variants; do
	case $variant in
	plain) flags="-DCMAKE_BUILD_TYPE=RelWithDebInfo" ;;
	asan)  flags="-DCMAKE_BUILD_TYPE=Debug -DKMSFS_SANITIZE=ON" ;;
	fuzz)
		echo "==> fuzz targets (${FUZZ_SECONDS:-60}s each)"
		tests/fuzz/run.sh || status=1
		continue ;;
	*) echo "run.sh: unknown variant $variant (plain, asan or fuzz)" >&2; exit 2 ;;
	esac
	dir=build-test-$variant
	echo "==> $variant build ($dir)"
	# shellcheck disable=SC2086
	cmake -S . -B "$dir" -DKMSFS_WERROR=ON $flags >/dev/null
	cmake --build "$dir" -j"$jobs"
	echo "==> $variant tests"
	if ! ctest --test-dir "$dir" --output-on-failure -j"$jobs"; then
		status=1
	fi
done
exit $status
