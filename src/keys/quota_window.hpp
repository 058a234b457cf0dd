#pragma once

// Tokens used over a rolling 5-hour window, kept in 5-minute buckets: adding and reading are
// O(1) amortised (buckets leave the window as time passes, each once), memory is fixed. A use
// counts until its bucket is 5 hours old (so for 4 h 55 min to 5 h): five hours after a
// tenant's quota ran out, its earlier use has certainly left the window.
//
// Counts are untrusted (an upstream's report, a hand-edited file): a negative one adds nothing,
// and buckets and the window's total stop at INT64_MAX instead of overflowing.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "core/saturating.hpp"

namespace glmproxy::detail {

/// Thread safety: thread-compatible (its owner locks).
class QuotaWindow {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  static constexpr std::chrono::minutes kBucket{5};
  static constexpr std::int64_t kBuckets = 60;  // 60 x 5 min = 5 h
  static constexpr std::chrono::minutes kWindow = kBucket * kBuckets;

  /// The bucket that holds `t`, and when it starts.
  static std::int64_t bucket_of(TimePoint t) noexcept {
    const auto since_epoch = std::chrono::duration_cast<std::chrono::minutes>(t.time_since_epoch());
    const std::int64_t m = since_epoch.count();
    const std::int64_t w = kBucket.count();
    return m >= 0 ? m / w : (m - w + 1) / w;
  }
  static TimePoint bucket_start(std::int64_t bucket) noexcept {
    return TimePoint(std::chrono::duration_cast<TimePoint::duration>(kBucket * bucket));
  }

  void add(TimePoint now, std::int64_t tokens) { add_to_bucket(bucket_of(now), tokens, now); }

  /// Adds to a given bucket (loading history); ignored when it has left the window at `now`.
  /// A negative `tokens` counts as 0.
  void add_to_bucket(std::int64_t bucket, std::int64_t tokens, TimePoint now) {
    advance(now);
    if (bucket <= current_ - kBuckets || bucket > current_) return;
    tokens = non_negative(tokens);
    Slot& s = slot(bucket);
    if (s.bucket != bucket) s = Slot{bucket, 0};
    s.tokens = saturating_add(s.tokens, tokens);
    sum_ = saturating_add(sum_, tokens);
    if (bucket < first_) first_ = bucket;
  }

  /// Tokens in the window at `now` (INT64_MAX when they would not fit).
  std::int64_t used(TimePoint now) {
    advance(now);
    return sum_;
  }

  /// How long until the window's tokens drop below `limit` as old buckets leave it; nullopt when
  /// they already are below.
  std::optional<std::chrono::milliseconds> time_until_below(TimePoint now, std::int64_t limit) {
    advance(now);
    if (sum_ < limit) return std::nullopt;
    // Summed from the newest bucket back, so no subtraction from a total that may have stopped
    // at INT64_MAX: the first bucket that brings the newer ones to the limit is the last that
    // has to leave.
    std::int64_t newer = 0;  // tokens in the buckets after b
    for (std::int64_t b = current_; b >= first_; --b) {
      const Slot& s = slot(b);
      newer = saturating_add(newer, s.bucket == b ? s.tokens : 0);
      if (newer >= limit) {
        // Bucket b leaves the window when bucket b + kBuckets begins.
        return std::chrono::ceil<std::chrono::milliseconds>(bucket_start(b + kBuckets) - now);
      }
    }
    return std::chrono::ceil<std::chrono::milliseconds>(bucket_start(current_ + kBuckets) - now);
  }

  /// Start of the oldest bucket in the window that holds tokens (nullopt: none).
  std::optional<TimePoint> oldest_use(TimePoint now) {
    advance(now);
    for (std::int64_t b = first_; b <= current_; ++b) {
      const Slot& s = slot(b);
      if (s.bucket == b && s.tokens != 0) return bucket_start(b);
    }
    return std::nullopt;
  }

  /// (bucket start, tokens) of every non-empty bucket in the window, oldest first.
  std::vector<std::pair<TimePoint, std::int64_t>> buckets(TimePoint now) {
    advance(now);
    std::vector<std::pair<TimePoint, std::int64_t>> out;
    for (std::int64_t b = first_; b <= current_; ++b) {
      const Slot& s = slot(b);
      if (s.bucket == b && s.tokens != 0) out.emplace_back(bucket_start(b), s.tokens);
    }
    return out;
  }

 private:
  struct Slot {
    std::int64_t bucket = INT64_MIN;
    std::int64_t tokens = 0;
  };

  Slot& slot(std::int64_t bucket) noexcept {
    const std::int64_t i = ((bucket % kBuckets) + kBuckets) % kBuckets;
    return slots_[static_cast<std::size_t>(i)];
  }

  // Moves the window to `now`: every bucket that left it is dropped, each once.
  void advance(TimePoint now) {
    const std::int64_t cur = bucket_of(now);
    if (cur <= current_) return;  // time does not go back for the window
    current_ = cur;
    const std::int64_t keep_from = cur - kBuckets + 1;
    if (first_ < keep_from - kBuckets) {
      // A gap longer than the window: everything left it.
      slots_ = {};
      sum_ = 0;
      first_ = keep_from;
      return;
    }
    // Below INT64_MAX, sum_ is the exact sum of the slots; at it, the slots may hold more, so
    // subtracting would undercount: they are summed again instead.
    const bool exact = sum_ < kInt64Max;
    for (; first_ < keep_from; ++first_) {
      Slot& s = slot(first_);
      if (s.bucket == first_) {
        if (exact) sum_ -= s.tokens;
        s = Slot{};
      }
    }
    if (!exact) {
      sum_ = 0;
      for (const Slot& s : slots_) {
        if (s.bucket >= keep_from && s.bucket <= current_) sum_ = saturating_add(sum_, s.tokens);
      }
    }
  }

  std::array<Slot, kBuckets> slots_{};
  std::int64_t sum_ = 0;
  std::int64_t current_ = INT64_MIN / 2;  // the bucket of the latest `now` seen
  std::int64_t first_ = INT64_MAX / 2;    // no bucket before this one holds tokens
};

}  // namespace glmproxy::detail
