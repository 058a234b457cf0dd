#pragma once

// glmproxy-bench's output: tables on stdout and one JSON document (schema in
// docs/benchmarking.md).

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "load/memory_runs.hpp"
#include "load/run.hpp"

namespace glmproxy::bench {

struct Report {
  std::vector<std::string> command;
  std::string started_at;  ///< UTC, ISO 8601
  double wall_seconds = 0;
  int nproc = 0;
  std::string cpu_model, kernel;
  std::string loadavg_start, loadavg_end;  ///< /proc/loadavg: was the machine quiet?

  std::string upstream_kind, base_url, mock_binary;
  bool pinned = false, stats_available = false;  ///< pinned: the first pinning is "pinned"
  int bench_cpu = -1, mock_cpu = -1;             ///< the CPUs of pinned steps; -1 when none
  std::vector<std::string> pinnings;             ///< "pinned" and/or "unpinned", in run order

  bool quick = false;
  Limits limits, warmup;
  std::vector<int> concurrency;
  double rate = 0;
  std::vector<std::string> workloads;

  std::optional<IdleRss> idle;
  std::vector<RunResult> runs;
  std::optional<SoakResult> soak;
};

/// For each run, the index of its baseline (the raw libcurl run of the same workload, mode,
/// pinning and concurrency or rate), or -1 (baselines themselves, or none ran).
std::vector<int> match_baselines(const std::vector<RunResult>& runs);

/// The tables per workload and mode, the idle RSS, the soak, then the targets.
void print_tables(std::FILE* out, const Report& report);
std::string to_json(const Report& report);

}  // namespace glmproxy::bench
