#!/usr/bin/env bash
# Builds the SSE parser fuzzer (clang, libFuzzer + ASan + UBSan; fuzz/) into build/fuzz and runs
# it against the corpus in build/fuzz/corpus, seeded from fuzz/corpus/sse/.
#   ./scripts/fuzz.sh        60 seconds
#   ./scripts/fuzz.sh 600    ten minutes
# Exits non-zero when the build fails or the fuzzer finds a crash, a sanitizer report or a
# result that depends on how the stream was cut; the input is saved as build/fuzz/crash-*
# (replay it: build/fuzz/sse_fuzzer build/fuzz/crash-...).
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds == 0)); then
  echo "usage: $0 [seconds]" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build/fuzz"

"$root/scripts/install-deps.sh"

cmake -S "$root/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build"

# The first directory is where new inputs go (it grows from run to run); the seeds are read-only.
mkdir -p "$build/corpus"
"$build/sse_fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=30 \
  -artifact_prefix="$build/" -print_final_stats=1 "$build/corpus" "$root/fuzz/corpus/sse"
