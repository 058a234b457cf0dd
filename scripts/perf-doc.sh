#!/usr/bin/env bash
# Assembles docs/performance.md from the sections the benchmark scripts generate
# (docs/generated/perf-*.md). Nothing in it is typed by hand except this frame.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gen="$root/docs/generated"
{
  cat <<'MD'
# Performance

Every figure on this page comes from JSON files in [generated/](generated/) written by the
benchmark scripts named in each section; none is typed by hand. Rerun a script to refresh its
section (`scripts/perf-doc.sh` reassembles this page). The machines are shared and noisy:
compare the rows of one run, not figures across runs.

Each section says when it ran. The runs on this page predate the hardening and truth changes of
2026-12-01 (streams resolve at their end marker; `complete_async()` keeps one shared
exactly-once record per call; a cancelled stream frees its slots before its read-out): those
are not measured here yet, and the page is regenerated from a new run with the core redesign.

MD
  for section in load complete stream cache; do
    if [[ -f "$gen/perf-$section.md" ]]; then
      cat "$gen/perf-$section.md"
      echo
    fi
  done
  cat <<'MD'
## The mock upstream

The server every benchmark talks to serves far more than any client here needs; see
[generated/mock-upstream-throughput.md](generated/mock-upstream-throughput.md)
(`./scripts/measure-mock.sh`).
MD
} > "$root/docs/performance.md"
