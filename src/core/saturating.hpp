#pragma once

// Sums of untrusted counts (token numbers from an upstream, counters from a hand-edited file)
// that stop at the ends of std::int64_t instead of overflowing: signed overflow is undefined
// behaviour, and a count pinned at INT64_MAX is still "more than any limit".

#include <cstdint>
#include <limits>

namespace glmproxy::detail {

inline constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t kInt64Min = std::numeric_limits<std::int64_t>::min();

/// `v`, or 0 when it is negative: for a count that cannot be below zero.
constexpr std::int64_t non_negative(std::int64_t v) noexcept { return v < 0 ? 0 : v; }

/// a + b, held at INT64_MAX (or INT64_MIN) where the exact sum would not fit.
/// To add an untrusted count that must not lower the total: saturating_add(a, non_negative(b)).
/// Example:
///   total = saturating_add(total, non_negative(reported_tokens));
constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
  if (b > 0 && a > kInt64Max - b) return kInt64Max;
  if (b < 0 && a < kInt64Min - b) return kInt64Min;
  return a + b;
}

/// a - b, held at INT64_MAX (or INT64_MIN) where the exact difference would not fit.
constexpr std::int64_t saturating_sub(std::int64_t a, std::int64_t b) noexcept {
  if (b < 0 && a > kInt64Max + b) return kInt64Max;
  if (b > 0 && a < kInt64Min + b) return kInt64Min;
  return a - b;
}

}  // namespace glmproxy::detail
