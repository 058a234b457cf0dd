#pragma once

// Latency recording for glmproxy-bench: a log-linear histogram (fixed memory, so a long run
// does not grow) and the process's CPU time and memory.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

namespace glmproxy::bench {

using Clock = std::chrono::steady_clock;

inline std::uint64_t to_ns(Clock::duration d) {
  const auto n = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return n < 0 ? 0 : static_cast<std::uint64_t>(n);
}

/// Nanosecond latencies in 128 linear steps per power of two: values below 256 ns are kept
/// exactly, larger ones within 0.8% (a quantile is its bucket's midpoint). Values above ~275 s
/// are clamped. 32 KiB per histogram whatever the number of samples.
///
/// Thread safety: thread-compatible (one per recording thread, then merge()).
class Histogram {
 public:
  Histogram() : counts_(kBuckets, 0) {}

  void record(std::uint64_t ns) {
    ns = std::min(ns, kMaxValue);
    ++counts_[index(ns)];
    ++count_;
    sum_ += static_cast<double>(ns);
    max_ = std::max(max_, ns);
    min_ = std::min(min_, ns);
  }
  void record(Clock::duration d) { record(to_ns(d)); }

  void merge(const Histogram& other) {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    max_ = std::max(max_, other.max_);
    min_ = std::min(min_, other.min_);
  }

  std::uint64_t count() const noexcept { return count_; }
  double mean_ns() const noexcept { return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_); }
  std::uint64_t max_ns() const noexcept { return max_; }

  /// The value below which a fraction `q` of the samples lie (0 without samples).
  double quantile_ns(double q) const {
    if (count_ == 0) return 0.0;
    const auto rank = std::clamp<std::uint64_t>(
        static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))), 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const double mid =
            i < 2 * kSub ? static_cast<double>(i)
                         : static_cast<double>(lower(i)) + static_cast<double>(width(i)) / 2.0;
        return std::clamp(mid, static_cast<double>(min_), static_cast<double>(max_));
      }
    }
    return static_cast<double>(max_);
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr std::size_t kSub = std::size_t{1} << kSubBits;
  static constexpr int kMaxBit = 37;
  static constexpr std::size_t kBuckets = static_cast<std::size_t>(kMaxBit - kSubBits + 2) * kSub;
  static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << (kMaxBit + 1)) - 1;

  static std::size_t index(std::uint64_t v) {
    if (v < 2 * kSub) return static_cast<std::size_t>(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - kSubBits;
    return static_cast<std::size_t>(shift + 1) * kSub +
           static_cast<std::size_t>((v >> shift) - kSub);
  }
  static std::uint64_t lower(std::size_t i) {
    const auto shift = static_cast<int>(i / kSub) - 1;
    return static_cast<std::uint64_t>(kSub + i % kSub) << shift;
  }
  static std::uint64_t width(std::size_t i) {
    return std::uint64_t{1} << (static_cast<int>(i / kSub) - 1);
  }

  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
};

/// User + system CPU time of the whole process, in seconds.
inline double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

/// The process's peak resident set (getrusage ru_maxrss), in KiB.
inline long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/// The process's resident set now (/proc/self/statm), in bytes; 0 if unreadable.
inline std::int64_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<std::int64_t>(resident) * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace glmproxy::bench
