#!/usr/bin/env bash
# Runs benchmarks/complete_benchmark — raw libcurl easy-handle reuse vs ProxyClient::complete()
# against the same mock upstream in the same run, plus the bare cost of one thread hand-off
# round trip — in two set-ups, writes docs/generated/perf-complete.md from the JSON and
# reassembles docs/performance.md (scripts/perf-doc.sh):
#   pinned:     the mock as a separate process on core 0, the benchmark on core 1
#   in-process: the mock inside the benchmark process, no pinning
#   ./scripts/bench-complete.sh [repetitions]     (default 5)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
reps="${1:-5}"

"$root/scripts/install-deps.sh" --bench
cmake --preset release >/dev/null
cmake --build --preset release --target complete_benchmark glmproxy-mock-upstream >/dev/null

bench="$root/build/release/benchmarks/complete_benchmark"
out="$root/docs/generated"
mkdir -p "$out"
tmp="$(mktemp -d)"
mock_pid=""
cleanup() { [[ -n "$mock_pid" ]] && kill "$mock_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

pin_mock=""; pin_bench=""
if (( $(nproc) >= 2 )) && command -v taskset >/dev/null; then
  pin_mock="taskset -c 0"; pin_bench="taskset -c 1"
fi
$pin_mock "$root/build/release/mock/glmproxy-mock-upstream" --port 0 > "$tmp/mock.out" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do grep -q listening "$tmp/mock.out" && break; sleep 0.05; done
url="$(sed -n 's/^listening on //p' "$tmp/mock.out")"
[[ -n "$url" ]] || { echo "mock upstream did not start" >&2; exit 1; }

echo "== pinned: mock process ($pin_mock), benchmark ($pin_bench)" >&2
GLMPROXY_BENCH_UPSTREAM="$url" $pin_bench "$bench" --benchmark_repetitions="$reps" \
  --benchmark_out="$out/complete-benchmark-pinned.json" --benchmark_out_format=json >&2
echo "== in-process mock, unpinned" >&2
"$bench" --benchmark_repetitions="$reps" \
  --benchmark_out="$out/complete-benchmark-inprocess.json" --benchmark_out_format=json >&2

python3 - "$out" "$reps" "$([[ -n $pin_bench ]] && echo yes || echo no)" \
  > "$out/perf-complete.md" <<'PY'
import json, statistics, sys, subprocess
out, reps, pinned = sys.argv[1], sys.argv[2], sys.argv[3] == "yes"

def load(path):
    data = json.load(open(path))
    runs = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "iteration":
            runs.setdefault(b["run_name"].split("/")[0], []).append(b)
    return data["context"], runs

def med(runs, name, key):
    return statistics.median(r[key] for r in runs[name])

raw, cli, hop = "BM_RawCurlEasyReuse", "BM_ProxyClientComplete", "BM_ThreadHandoffRoundTrip"
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                     capture_output=True, text=True).stdout.strip()

def section(title, path, note):
    ctx, runs = load(path)
    rows = []
    for n, label in ((raw, "raw libcurl, one easy handle reused"),
                     (cli, "ProxyClient::complete()"),
                     (hop, "bare thread hand-off round trip (no HTTP)")):
        rows.append(f"| {label} | {med(runs,n,'p50_us'):.1f} | {med(runs,n,'p99_us'):.1f} |")
    added = med(runs, cli, "p50_us") - med(runs, raw, "p50_us")
    ratio = med(runs, cli, "p50_us") / med(runs, raw, "p50_us")
    handoff = med(runs, hop, "p50_us")
    verdict = "met" if added <= 10.0 else f"missed by {added - 10.0:.1f} µs"
    return ctx, added, handoff, f"""### {title}

{note}

| client | p50 µs | p99 µs |
|---|---:|---:|
""" + "\n".join(rows) + f"""

complete() adds **{added:.1f} µs** at p50 over raw libcurl (ratio {ratio:.2f}×); target ≤ 10 µs:
{verdict}. On its own, a bare hand-off round trip costs {handoff:.1f} µs at p50 in this set-up.
"""

ctx, added_p, hop_p, pinned_md = section(
    "Mock in a separate process, pinned" if pinned else "Mock in a separate process",
    f"{out}/complete-benchmark-pinned.json",
    "The mock upstream runs as its own process on core 0 and the benchmark on core 1, so the "
    "caller and glmproxy's I/O thread share one core." if pinned else
    "Fewer than two cores (or no taskset): nothing is pinned.")
_, added_i, hop_i, inproc_md = section(
    "Mock inside the benchmark process, unpinned", f"{out}/complete-benchmark-inprocess.json",
    "Caller, I/O thread and mock thread float over all cores.")

if max(added_p, added_i) <= 10:
    why = """### Why the target is met

Both set-ups stay within 10 µs of raw libcurl at p50, the two thread hand-offs of every
blocking call included.
"""
else:
    why = """### Why the target is missed

Raw libcurl does the whole exchange on the calling thread. glmproxy, by design, lets only its I/O
thread touch curl handles, so every blocking `complete()` is two hand-offs: the caller wakes the
I/O thread (`curl_multi_wakeup`: a socketpair write, then `poll()` returning and the socketpair
drained) and the I/O thread wakes the caller (a futex). Each wake-up is a context switch, and on
this virtual machine a wake-up that crosses cores costs tens of microseconds (compare the
hand-off row of the two set-ups; with the mock in-process, part of the hand-off overlaps the
upstream's own wake-ups). The rest of the difference is system calls that raw reuse does not
make (the wake-up socketpair, an extra `poll()` round per request, the futex) and the work per
request in curl's multi interface and in glmproxy (writing the JSON, parsing it with simdjson,
retry and timeout bookkeeping); `strace -f -c` and `valgrind --tool=callgrind` on the benchmark
show where. Two things were tried and measured before settling: busy-waiting for the answer in
the caller and for the next request in the I/O thread (slower on two cores: the spinning
threads took the core the upstream needed), and skipping `curl_easy_reset` on reused handles
(no change beyond noise). Throughput under concurrency, where one I/O thread serves many callers
and the hand-off is amortised, is the subject of the load benchmark.
"""

print(f"""## Sequential complete() against raw libcurl

Generated by `./scripts/bench-complete.sh {reps}` from
[generated/complete-benchmark-pinned.json](generated/complete-benchmark-pinned.json) and
[generated/complete-benchmark-inprocess.json](generated/complete-benchmark-inprocess.json).

Method: `benchmarks/complete_benchmark.cpp` sends the same small OpenAI chat request one at a
time (a) with a raw libcurl easy handle reused across requests, on the calling thread, and
(b) with `ProxyClient::complete()` (default Config), against the same mock upstream in the same
run. Each benchmark records every request's latency; tables give the median over {reps}
repetitions of each repetition's p50 and p99. A third benchmark times the bare hand-off that
the architecture requires — the caller wakes a thread blocked in `poll()` through a socketpair
(as `curl_multi_wakeup` does) and waits on a promise for its answer — without any HTTP.

Machine: {ctx.get('num_cpus')} CPUs ({cpu}), {ctx.get('mhz_per_cpu')} MHz; run on
{ctx.get('date')}. glmproxy and the benchmark are built with the `release` preset.

{pinned_md}
{inproc_md}
{why}""")
PY
"$root/scripts/perf-doc.sh"
