#!/usr/bin/env bash
# Runs glmproxy-bench (benchmarks/glmproxy_bench.cpp) in full: every workload (chat, stream,
# cache hits, coalescing, batched embeddings) in closed loop at concurrency 1, 8, 32 and 128 and
# in open loop at 5000 requests/s, each against raw libcurl in the same run and each step both
# pinned (mock on one core, the tool on the other) and unpinned, plus the idle-client RSS and a
# 1,000,000-request soak. Writes docs/generated/load-benchmark.json, turns it into
# docs/generated/perf-load.md (scripts/perf-load.py: the targets pinned and unpinned) and
# reassembles docs/performance.md.
#   ./scripts/bench-load.sh [extra glmproxy-bench flags]    (about 10 minutes on 2 cores)
# Run it on a quiet machine: the JSON records the load average at start and end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/install-deps.sh" --bench
cmake --preset release >/dev/null
# Only what this script runs (the whole tree also builds the tests).
cmake --build --preset release -j2 --target glmproxy-bench glmproxy-mock-upstream >/dev/null

out="$root/docs/generated"
mkdir -p "$out"
echo "bench-load: load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
rm -f "$out/load-benchmark.json"  # never a page from an older run
status=0
build/release/benchmarks/glmproxy-bench --rate 5000 --soak --pinning both \
  --output "$out/load-benchmark.json" "$@" || status=$?
# A run with errors still gets its page (the tables show them); the exit status says so.
if [[ ! -s "$out/load-benchmark.json" ]]; then
  echo "bench-load: glmproxy-bench wrote no JSON (exit $status)" >&2
  exit 1
fi
python3 "$root/scripts/perf-load.py" "$out/load-benchmark.json" > "$out/perf-load.md"
"$root/scripts/perf-doc.sh"
echo "bench-load: wrote docs/generated/load-benchmark.json, docs/generated/perf-load.md," \
  "docs/performance.md" >&2
exit "$status"
