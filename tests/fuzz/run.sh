#!/usr/bin/env bash
# tests/fuzz/run.sh - build every libFuzzer target in tests/fuzz (each
# fuzz_*.c) with clang into build-fuzz/ and run each for a bounded time.
# Fails if any target does not build, crashes, leaks or trips a sanitizer;
# the input that did it is left in build-fuzz/artifacts/.
#
#   FUZZ_SECONDS    run time per target (default 60)
#   FUZZ_BUILD_DIR  build directory (default <repo>/build-fuzz)
#   FUZZ_CC         the clang to use (default clang)
#
# Seeds come from tests/fuzz/corpus/<target>/ (read only); what the fuzzer
# finds goes to build-fuzz/corpus/<target>/ and is reused by the next run.
# A <target>.dict next to the source is passed as libFuzzer's -dict.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
cc=${FUZZ_CC:-clang}

if ! command -v "$cc" >/dev/null; then
	echo "run.sh: $cc not found (apt-get install clang libclang-rt-14-dev)" >&2
	exit 1
fi

mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DKMSFS_FUZZ=ON -DBUILD_TESTING=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 ||
	{ cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" --target fuzz -j"$(nproc)"

mkdir -p "$build/artifacts"
failed=()
targets=0
for source in "$here"/fuzz_*.c; do
	[ -e "$source" ] || continue
	name=$(basename "$source" .c)
	binary="$build/tests/fuzz/$name"
	targets=$((targets + 1))
	corpus="$build/corpus/$name"
	mkdir -p "$corpus"
	args=(-max_total_time="$seconds" -print_final_stats=1
	      -artifact_prefix="$build/artifacts/$name-")
	[ -f "$here/$name.dict" ] && args+=(-dict="$here/$name.dict")
	dirs=("$corpus")
	[ -d "$here/corpus/$name" ] && dirs+=("$here/corpus/$name")
	echo "== $name: ${seconds}s"
	if ! "$binary" "${args[@]}" "${dirs[@]}" >"$build/$name.log" 2>&1; then
		tail -n 60 "$build/$name.log" >&2
		failed+=("$name")
	else
		grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|Done )' "$build/$name.log" || true
	fi
done

if [ "$targets" -eq 0 ]; then
	echo "run.sh: no fuzz_*.c targets in $here" >&2
	exit 1
fi
if [ "${#failed[@]}" -gt 0 ]; then
	echo "run.sh: FAILED: ${failed[*]} (logs in $build/, inputs in $build/artifacts/)" >&2
	exit 1
fi
echo "run.sh: $targets target(s) ran ${seconds}s each without a crash"
