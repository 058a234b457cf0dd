#pragma once

// A latency histogram with log-linear buckets: each power of two of microseconds is split into
// four, from 1 µs to about 38 hours, so any recorded value is within 19% of its bucket's upper
// edge. Recording is a few relaxed atomic increments (no lock); two histograms merge by adding
// their buckets.

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>

namespace glmproxy::detail {

/// A point-in-time copy of a LatencyHistogram (plain numbers; merge with +=).
struct HistogramSnapshot {
  static constexpr int kSub = 4;
  static constexpr int kOctaves = 37;
  static constexpr int kBuckets = kSub * kOctaves + 1;  // + the bucket of 0 µs

  std::array<std::uint64_t, kBuckets> counts{};
  std::uint64_t count = 0;
  std::uint64_t sum_us = 0;

  /// Upper edge of bucket i, in microseconds.
  static std::uint64_t upper_us(int i) noexcept {
    if (i == 0) return 0;
    const int octave = (i - 1) / kSub, sub = (i - 1) % kSub;
    const std::uint64_t base = std::uint64_t{1} << octave;  // values in [base, 2 base)
    return base + (base * static_cast<std::uint64_t>(sub + 1)) / kSub;
  }
  static int bucket_of(std::uint64_t us) noexcept {
    if (us == 0) return 0;
    const int octave = static_cast<int>(std::bit_width(us)) - 1;
    if (octave >= kOctaves) return kBuckets - 1;
    const std::uint64_t base = std::uint64_t{1} << octave;
    const int sub = static_cast<int>(((us - base) * kSub) / base);
    return 1 + octave * kSub + sub;
  }

  HistogramSnapshot& operator+=(const HistogramSnapshot& o) noexcept {
    for (int i = 0; i < kBuckets; ++i) {
      counts[static_cast<std::size_t>(i)] += o.counts[static_cast<std::size_t>(i)];
    }
    count += o.count;
    sum_us += o.sum_us;
    return *this;
  }

  /// The value below which a fraction `q` of the samples lie (a bucket's upper edge), in µs.
  std::uint64_t quantile_us(double q) const noexcept {
    if (count == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count - 1)) + 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts[static_cast<std::size_t>(i)];
      if (seen >= rank) return upper_us(i);
    }
    return upper_us(kBuckets - 1);
  }
};

/// Thread safety: thread-safe; record() is lock-free.
class LatencyHistogram {
 public:
  void record(std::chrono::microseconds d) noexcept {
    const auto us = static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count());
    counts_[static_cast<std::size_t>(HistogramSnapshot::bucket_of(us))].fetch_add(
        1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(us, std::memory_order_relaxed);
  }

  /// Buckets read one by one: a snapshot taken while others record may be off by those records.
  HistogramSnapshot snapshot() const noexcept {
    HistogramSnapshot s;
    for (std::size_t i = 0; i < s.counts.size(); ++i) {
      s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    }
    s.count = count_.load(std::memory_order_relaxed);
    s.sum_us = sum_us_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::array<std::atomic<std::uint64_t>, HistogramSnapshot::kBuckets> counts_{};
  std::atomic<std::uint64_t> count_{0}, sum_us_{0};
};

}  // namespace glmproxy::detail
