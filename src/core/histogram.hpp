#pragma once

// A latency histogram with log-linear buckets: each power of two of microseconds is split into
// four, from 1 µs to about 38 hours, so a bucket's upper edge is at most 25% above any value
// recorded in it (the value at most 20% below the edge). Recording is a few relaxed atomic
// increments (no lock); two histograms merge by adding their buckets.

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
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

  /// The nearest-rank quantile: the upper edge of the bucket holding the ceil(q × count)-th
  /// smallest sample, in µs (so the p99 of five samples is the slowest of them, not the fourth).
  std::uint64_t quantile_us(double q) const noexcept {
    if (count == 0) return 0;
    const auto rank = std::clamp<std::uint64_t>(
        static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count))), 1, count);
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

  /// Back to empty (callers make sure nobody records meanwhile, or accept losing those samples).
  void reset() noexcept {
    for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
    count_.store(0, std::memory_order_relaxed);
    sum_us_.store(0, std::memory_order_relaxed);
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

#include <mutex>
#include <vector>

namespace glmproxy::detail {

/// A LatencyHistogram per aggregation interval, kept for the retention window
/// (METRICS_AGGREGATION_INTERVAL_MS, METRICS_RETENTION_MS): snapshot() merges the intervals still
/// inside the window, so percentiles and rates describe recent traffic, not all of it.
///
/// Thread safety: thread-safe. Recording takes a lock only when it is the first in a new
/// interval (to clear the interval's old counts); samples racing with that clearing can be lost.
class WindowedHistogram {
 public:
  using Clock = std::chrono::steady_clock;

  WindowedHistogram(std::chrono::milliseconds retention, std::chrono::milliseconds interval)
      : interval_ms_(std::max<std::int64_t>(1, interval.count())),
        slots_(static_cast<std::size_t>(std::clamp<std::int64_t>(
            (retention.count() + interval_ms_ - 1) / interval_ms_, 1, 3600))) {}

  /// The requests of the window: their latencies, and how many were errors and cache hits.
  struct Window {
    HistogramSnapshot latency;
    std::uint64_t errors = 0, cache_hits = 0;
  };

  void record(Clock::time_point now, std::chrono::microseconds d, bool error, bool cache_hit) {
    const std::int64_t epoch = epoch_of(now);
    Slot& s = slots_[index_of(epoch)];
    if (s.epoch.load(std::memory_order_acquire) != epoch) {
      std::lock_guard lock(rotate_);
      if (s.epoch.load(std::memory_order_relaxed) != epoch) {
        s.histogram.reset();
        s.errors.store(0, std::memory_order_relaxed);
        s.cache_hits.store(0, std::memory_order_relaxed);
        s.epoch.store(epoch, std::memory_order_release);
      }
    }
    s.histogram.record(d);
    if (error) s.errors.fetch_add(1, std::memory_order_relaxed);
    if (cache_hit) s.cache_hits.fetch_add(1, std::memory_order_relaxed);
  }

  /// The samples of the intervals inside the retention window at `now`.
  Window snapshot(Clock::time_point now) const {
    const std::int64_t epoch = epoch_of(now);
    const auto n = static_cast<std::int64_t>(slots_.size());
    Window out;
    for (const Slot& s : slots_) {
      const std::int64_t e = s.epoch.load(std::memory_order_acquire);
      if (e <= epoch && e > epoch - n) {
        out.latency += s.histogram.snapshot();
        out.errors += s.errors.load(std::memory_order_relaxed);
        out.cache_hits += s.cache_hits.load(std::memory_order_relaxed);
      }
    }
    return out;
  }

  /// How much time snapshot() covers (the retention window, in whole intervals).
  std::chrono::milliseconds window() const noexcept {
    return std::chrono::milliseconds(interval_ms_ * static_cast<std::int64_t>(slots_.size()));
  }

 private:
  struct Slot {
    std::atomic<std::int64_t> epoch{INT64_MIN};
    LatencyHistogram histogram;
    std::atomic<std::uint64_t> errors{0}, cache_hits{0};
  };

  std::int64_t epoch_of(Clock::time_point t) const noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() /
           interval_ms_;
  }
  std::size_t index_of(std::int64_t epoch) const noexcept {
    const auto n = static_cast<std::int64_t>(slots_.size());
    return static_cast<std::size_t>(((epoch % n) + n) % n);
  }

  const std::int64_t interval_ms_;
  std::vector<Slot> slots_;
  std::mutex rotate_;
};

}  // namespace glmproxy::detail
