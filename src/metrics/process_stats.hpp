#pragma once

// The process's resident memory and CPU time (Linux: /proc/self/statm and getrusage), and CPU
// usage as a percentage over an interval rather than a cumulative total.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace glmproxy::detail {

struct ProcessSample {
  std::uint64_t rss_bytes = 0;       ///< resident now (0 when /proc is not readable)
  std::uint64_t peak_rss_bytes = 0;  ///< the most resident so far
  double cpu_seconds = 0;            ///< user + system time of the whole process
  std::chrono::steady_clock::time_point at;
};

ProcessSample sample_process() noexcept;

/// CPU usage over the last completed interval of at least `interval`: (CPU seconds spent) /
/// (wall seconds passed) x 100, so one busy core is 100 and two are 200.
///
/// Thread safety: thread-safe.
class CpuMeter {
 public:
  explicit CpuMeter(std::chrono::milliseconds interval)
      : interval_(interval), base_(sample_process()) {}

  struct Reading {
    double percent = 0;
    double interval_seconds = 0;  ///< the interval `percent` covers
  };

  /// Measures against the last sample at least `interval` old; the first calls measure since
  /// the meter was made.
  Reading read(const ProcessSample& now) {
    std::lock_guard lock(mu_);
    const auto elapsed = now.at - base_.at;
    const double wall = std::chrono::duration<double>(elapsed).count();
    const bool complete = elapsed >= interval_;
    if (wall > 0 && (complete || last_.interval_seconds == 0)) {
      last_.percent = std::max(0.0, (now.cpu_seconds - base_.cpu_seconds) / wall * 100.0);
      last_.interval_seconds = wall;
    }
    if (complete) base_ = now;
    return last_;
  }

 private:
  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  ProcessSample base_;  // guarded by mu_
  Reading last_;        // guarded by mu_
};

}  // namespace glmproxy::detail
