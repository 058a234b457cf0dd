#pragma once

// The performance targets (issue 15, item 2), each a difference or ratio against raw libcurl on
// the same server in the same run, evaluated for every pinning the run used.

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "load/run.hpp"

namespace glmproxy::bench {

/// One target under one pinning.
struct TargetResult {
  std::string pinning;                ///< "pinned" or "unpinned"
  int run_id = -1, baseline_id = -1;  ///< indexes in the runs; -1: no such step in this run
  double glmproxy = 0, baseline = 0;  ///< the two figures compared (µs, or requests/s)
  double measured = 0;                ///< added µs, or the ratio glmproxy / baseline
  bool met = false;
  double missed_by = 0;      ///< how far from the goal when missed, in the unit of `measured`
  std::uint64_t errors = 0;  ///< errors of the two steps together (a figure to distrust)

  bool measured_in_run() const noexcept { return run_id >= 0 && baseline_id >= 0; }
};

struct Target {
  std::string id;    ///< stable key, e.g. "sequential_complete_p50"
  std::string name;  ///< what is measured, e.g. "sequential complete() p50"
  std::string goal;  ///< e.g. "≤ raw libcurl + 10 µs"
  std::string unit;  ///< "us" (microseconds added) or "x" (a ratio)
  double threshold = 0;
  bool at_most = true;                ///< met when measured ≤ threshold (else ≥)
  std::vector<TargetResult> results;  ///< one per entry of `pinnings`, in that order
};

/// Every target, measured in each of `pinnings` from `runs` (baselines[i]: the index of run i's
/// baseline, as match_baselines() gives it).
std::vector<Target> evaluate_targets(const std::vector<RunResult>& runs,
                                     const std::vector<int>& baselines,
                                     const std::vector<std::string>& pinnings);

/// "+12.3 µs met", "0.85× missed by 0.05×", "not measured".
std::string describe(const Target& target, const TargetResult& result);

/// The targets table of the stdout report: a row per target, a column per pinning.
void print_targets(std::FILE* out, const std::vector<Target>& targets,
                   const std::vector<std::string>& pinnings);

}  // namespace glmproxy::bench
